#include "runtime/param_file.h"

#include <cstring>
#include <set>

#include "runtime/error.h"
#include "runtime/file_util.h"
#include "runtime/proto_util.h"

namespace kiln {
namespace {
constexpr char kParamMagic[] = "kiln.params";
constexpr uint32_t kParamFormatVersion = 1;
}  // namespace

proto::TensorProto TensorToProto(const Tensor& tensor, const std::string& name) {
  proto::TensorProto proto;
  proto.set_name(name);
  proto.set_dtype(static_cast<int32_t>(tensor.dtype()));
  for (const int64_t dim : tensor.shape()) proto.add_shape(dim);
  proto.set_data(static_cast<const char*>(tensor.data()), tensor.nbytes());
  return proto;
}

Tensor TensorFromProto(const proto::TensorProto& proto, const std::string& what) {
  if (!IsValidDTypeCode(proto.dtype())) {
    throw Error(what + ": unknown dtype code " + std::to_string(proto.dtype()) + " (expected 0 to " +
                std::to_string(kNumDTypes - 1) + ")");
  }
  const DType dtype = static_cast<DType>(proto.dtype());
  Shape shape(proto.shape().begin(), proto.shape().end());
  for (const int64_t dim : shape) {
    if (dim < 0) throw Error(what + ": negative dimension in shape " + ShapeToString(shape));
  }
  int64_t count = 0;
  try {
    count = NumElements(shape);
  } catch (const Error& e) {
    throw Error(what + ": " + e.what());
  }
  const size_t elem = DTypeSize(dtype);
  if (static_cast<uint64_t>(count) > proto.data().size() / elem + 1 ||
      static_cast<size_t>(count) * elem != proto.data().size()) {
    throw Error(what + ": data is " + std::to_string(proto.data().size()) + " bytes, expected " +
                (static_cast<uint64_t>(count) > (uint64_t{1} << 60) / elem
                     ? std::string("more than 2^60")
                     : std::to_string(static_cast<size_t>(count) * elem)) +
                " for " + std::string(DTypeName(dtype)) + " shape " + ShapeToString(shape));
  }
  Tensor tensor(std::move(shape), dtype);
  if (tensor.nbytes()) std::memcpy(tensor.data(), proto.data().data(), tensor.nbytes());
  return tensor;
}

std::map<std::string, Tensor> ParamList::AsMap() const {
  std::map<std::string, Tensor> map;
  for (const auto& [name, tensor] : tensors) map[name] = tensor;
  return map;
}

std::string SerializeParams(const ParamList& params) {
  proto::ParamFileProto file;
  file.set_magic(kParamMagic);
  file.set_format_version(kParamFormatVersion);
  file.set_named(params.named);
  for (const auto& [name, tensor] : params.tensors) *file.add_tensors() = TensorToProto(tensor, name);
  file.set_complete(true);
  std::string bytes;
  if (!file.SerializeToString(&bytes)) throw Error("cannot serialize parameters (over 2 GiB?)");
  return bytes;
}

ParamList ParseParams(std::string_view bytes, const std::string& source) {
  QuietProtobufLogs();
  proto::ParamFileProto file;
  if (!file.ParseFromArray(bytes.data(), static_cast<int>(std::min<size_t>(bytes.size(), INT32_MAX))) ||
      file.magic() != kParamMagic) {
    throw Error("'" + source + "' is not a kiln parameter file");
  }
  if (file.format_version() > kParamFormatVersion || file.format_version() == 0) {
    throw Error("'" + source + "': parameter file format version " + std::to_string(file.format_version()) +
                " is not supported (this kiln reads version " + std::to_string(kParamFormatVersion) + ")");
  }
  if (!file.complete()) throw Error("'" + source + "' is truncated (no end marker)");
  ParamList params;
  params.named = file.named();
  std::set<std::string> seen;
  for (int i = 0; i < file.tensors_size(); ++i) {
    const auto& proto = file.tensors(i);
    const std::string what =
        "'" + source + "': tensor " + std::to_string(i) + (proto.name().empty() ? "" : " ('" + proto.name() + "')");
    if (params.named && !seen.insert(proto.name()).second) throw Error(what + ": duplicate name");
    params.tensors.emplace_back(proto.name(), TensorFromProto(proto, what));
  }
  return params;
}

void SaveParams(const std::string& path, const std::map<std::string, Tensor>& params) {
  ParamList list;
  list.named = true;
  for (const auto& [name, tensor] : params) list.tensors.emplace_back(name, tensor);
  WriteFileAtomic(path, SerializeParams(list));
}

void SaveParamList(const std::string& path, const std::vector<Tensor>& tensors) {
  ParamList list;
  list.named = false;
  for (const auto& tensor : tensors) list.tensors.emplace_back("", tensor);
  WriteFileAtomic(path, SerializeParams(list));
}

ParamList LoadParams(const std::string& path) {
  return ParseParams(ReadFile(path), path);
}

}  // namespace kiln
