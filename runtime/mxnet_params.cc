#include "runtime/mxnet_params.h"

#include <cstring>
#include <set>

#include "runtime/error.h"
#include "runtime/file_util.h"

namespace kiln {
namespace {

constexpr uint64_t kListMagic = 0x112;
constexpr uint32_t kArrayV1Magic = 0xF993FAC8;
constexpr uint32_t kArrayV2Magic = 0xF993FAC9;
constexpr uint32_t kArrayV3Magic = 0xF993FACA;
// More dimensions than any MXNet tensor has: a count beyond it is a corrupt file.
constexpr int64_t kMaxDims = 32;

const char* StorageName(int32_t storage) {
  switch (storage) {
    case 1: return "row_sparse";
    case 2: return "csr";
    default: return "an unknown storage type";
  }
}

// Little-endian fields read with bounds checks; every error names the file and what was
// being read.
class Reader {
 public:
  Reader(std::string_view bytes, const std::string& source) : bytes_(bytes), source_(source) {}

  template <typename T>
  T Get(const std::string& what) {
    Need(sizeof(T), what);
    T value;
    std::memcpy(&value, bytes_.data() + at_, sizeof(T));
    at_ += sizeof(T);
    return value;
  }
  std::string_view Take(uint64_t size, const std::string& what) {
    Need(size, what);
    const std::string_view piece = bytes_.substr(at_, size);
    at_ += size;
    return piece;
  }
  uint64_t left() const { return bytes_.size() - at_; }
  [[noreturn]] void Fail(const std::string& what) const {
    throw Error("'" + source_ + "': " + what + " (at byte " + std::to_string(at_) + " of " +
                std::to_string(bytes_.size()) + ")");
  }

 private:
  void Need(uint64_t size, const std::string& what) const {
    if (size > left()) {
      Fail("truncated: " + what + " needs " + std::to_string(size) + " bytes, " + std::to_string(left()) + " left");
    }
  }

  std::string_view bytes_;
  const std::string& source_;
  size_t at_ = 0;
};

Tensor ReadArray(Reader& in, const std::string& what) {
  const uint32_t magic = in.Get<uint32_t>(what + ": version magic");
  const bool v2_or_v3 = magic == kArrayV2Magic || magic == kArrayV3Magic;
  const bool np_shape = magic == kArrayV3Magic;
  if (v2_or_v3) {
    const auto storage = in.Get<int32_t>(what + ": storage type");
    if (storage != 0) {
      in.Fail(what + " is stored as " + StorageName(storage) + " (" + std::to_string(storage) +
              "); kiln reads dense arrays only: save it with .tostype('default')");
    }
  }
  // The shape: i32 ndim and i64 dimensions (V1-V3), or the legacy u32 ndim (the word just
  // read) and u32 dimensions.
  int64_t ndim = 0;
  const bool legacy = !v2_or_v3 && magic != kArrayV1Magic;
  if (legacy) {
    ndim = magic;
  } else {
    ndim = in.Get<int32_t>(what + ": number of dimensions");
  }
  const bool none = np_shape ? ndim == -1 : ndim == 0;
  if (none) in.Fail(what + " is an empty (none) NDArray, which holds no value");
  if (ndim < 0 || ndim > kMaxDims) {
    in.Fail(what + " claims " + std::to_string(ndim) + " dimensions (expected 0 to " + std::to_string(kMaxDims) +
            (legacy ? "; not an MXNet array: its first word is neither a version magic nor a dimension count" : "") +
            ")");
  }
  Shape shape(static_cast<size_t>(ndim));
  for (int64_t d = 0; d < ndim; ++d) {
    const std::string field = what + ": dimension " + std::to_string(d);
    shape[static_cast<size_t>(d)] = legacy ? in.Get<uint32_t>(field) : in.Get<int64_t>(field);
    if (shape[static_cast<size_t>(d)] < 0) {
      in.Fail(what + " has dimension " + std::to_string(d) + " = " + std::to_string(shape[static_cast<size_t>(d)]) +
              (np_shape ? " (unknown)" : ""));
    }
  }
  in.Get<int32_t>(what + ": device type");
  in.Get<int32_t>(what + ": device id");
  const auto flag = in.Get<int32_t>(what + ": dtype");
  // kiln's DType codes are MXNet's type flags (mshadow::TypeFlag 0-12).
  if (!IsValidDTypeCode(flag)) {
    in.Fail(what + " has dtype flag " + std::to_string(flag) + ", which is not an MXNet type flag kiln knows (0 to " +
            std::to_string(kNumDTypes - 1) + ")");
  }
  const auto dtype = static_cast<DType>(flag);
  uint64_t bytes = 0;
  try {
    bytes = CheckedByteSize(shape, dtype);
  } catch (const Error& e) {
    in.Fail(what + ": " + e.what());
  }
  const std::string_view data =
      in.Take(bytes, what + ": " + std::to_string(NumElements(shape)) + " " + std::string(DTypeName(dtype)) +
                         " elements of shape " + ShapeToString(shape));
  Tensor tensor(shape, dtype);
  if (bytes > 0) std::memcpy(tensor.data(), data.data(), bytes);
  return tensor;
}

// A little-endian field of exactly T's width (kiln runs on little-endian hosts only).
template <typename T>
void Put(std::string& out, T value) {
  out.append(reinterpret_cast<const char*>(&value), sizeof value);
}

}  // namespace

bool LooksLikeMxnetParams(std::string_view bytes) {
  uint64_t magic = 0;
  if (bytes.size() < sizeof magic) return false;
  std::memcpy(&magic, bytes.data(), sizeof magic);
  return magic == kListMagic;
}

ParamList ParseMxnetParams(std::string_view bytes, const std::string& source) {
  Reader in(bytes, source);
  if (in.Get<uint64_t>("the list magic") != kListMagic) {
    throw Error("'" + source + "' is not an MXNet NDArray file (it does not start with the magic 0x112)");
  }
  in.Get<uint64_t>("the reserved word");
  const auto count = in.Get<uint64_t>("the number of arrays");
  // An array takes at least 4 bytes: a larger count is a corrupt file, not an allocation.
  if (count > in.left() / 4) {
    in.Fail("truncated or corrupt: claims " + std::to_string(count) + " arrays in " + std::to_string(in.left()) +
            " bytes");
  }
  std::vector<Tensor> arrays;
  arrays.reserve(count);
  for (uint64_t i = 0; i < count; ++i) arrays.push_back(ReadArray(in, "array " + std::to_string(i)));
  const auto names = in.Get<uint64_t>("the number of names");
  if (names != 0 && names != count) {
    in.Fail("has " + std::to_string(names) + " names for " + std::to_string(count) + " arrays (expected 0 or " +
            std::to_string(count) + ")");
  }
  ParamList list;
  list.named = names != 0;
  std::set<std::string, std::less<>> seen;
  for (uint64_t i = 0; i < count; ++i) {
    std::string name;
    if (list.named) {
      const std::string what = "the name of array " + std::to_string(i);
      const auto length = in.Get<uint64_t>(what + ": length");
      name = in.Take(length, what);
      if (!seen.insert(name).second) in.Fail("names two arrays '" + Abbreviate(name) + "'");
    }
    list.tensors.emplace_back(std::move(name), std::move(arrays[i]));
  }
  if (in.left() != 0) in.Fail(std::to_string(in.left()) + " bytes follow the last name");
  return list;
}

std::string SerializeMxnetParams(const ParamList& params) {
  // NumPy shape semantics only when an array needs them (V2 reads ndim 0 as "none", so
  // a 0-d array cannot be said; a zero dimension can, as MXNet writes it): MXNet loads
  // V2 files in its default mode.
  bool np_shape = false;
  for (const auto& [name, tensor] : params.tensors) {
    if (!tensor.defined()) throw Error("array '" + Abbreviate(name) + "' has no value");
    np_shape = np_shape || tensor.ndim() == 0;
  }
  std::string out;
  Put<uint64_t>(out, kListMagic);
  Put<uint64_t>(out, 0);
  Put<uint64_t>(out, params.tensors.size());
  for (const auto& [name, tensor] : params.tensors) {
    Put<uint32_t>(out, np_shape ? kArrayV3Magic : kArrayV2Magic);
    Put<int32_t>(out, 0);  // dense
    Put<int32_t>(out, static_cast<int32_t>(tensor.ndim()));
    for (const int64_t dim : tensor.shape()) Put<int64_t>(out, dim);
    Put<int32_t>(out, 1);  // cpu
    Put<int32_t>(out, 0);
    Put<int32_t>(out, static_cast<int32_t>(tensor.dtype()));
    out.append(static_cast<const char*>(tensor.data()), tensor.nbytes());
  }
  Put<uint64_t>(out, params.named ? params.tensors.size() : 0);
  if (params.named) {
    for (const auto& [name, tensor] : params.tensors) {
      Put<uint64_t>(out, name.size());
      out += name;
    }
  }
  return out;
}

ParamList LoadMxnetParams(const std::string& path) {
  return ParseMxnetParams(FileBytes::Open(path)->bytes(), path);
}

void SaveMxnetParams(const std::string& path, const ParamList& params) {
  WriteFileAtomic(path, SerializeMxnetParams(params));
}

}  // namespace kiln
