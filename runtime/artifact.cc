#include "runtime/artifact.h"

#include <cpuid.h>
#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>

#include <cstring>
#include <set>
#include <unordered_map>

#include "runtime/error.h"
#include "runtime/file_util.h"
#include "runtime/kernel_abi.h"
#include "runtime/proto_util.h"
#include "runtime/tensor.h"
#include "runtime/version.h"

// Header-only: the runtime links no hashing library.
#define XXH_INLINE_ALL
#include <xxhash.h>

namespace kiln {
namespace {

constexpr char kArtifactMagic[] = "kiln.artifact";

// The CPU features a kernel may require that this runtime knows how to ask the CPU about.
struct Feature {
  const char* name;
  bool (*present)();
};
#define KILN_FEATURE(name, builtin)                           \
  {                                                           \
    name, [] { return __builtin_cpu_supports(builtin) != 0; } \
  }
// clang 14's __builtin_cpu_supports does not know "f16c": CPUID leaf 1, ECX bit 29, which
// is usable when AVX is (the OS saves the YMM registers).
bool HasF16c() {
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
  return __get_cpuid(1, &eax, &ebx, &ecx, &edx) != 0 && (ecx & (1u << 29)) != 0 && __builtin_cpu_supports("avx") != 0;
}
const Feature kFeatures[] = {
    KILN_FEATURE("sse4.1", "sse4.1"),
    KILN_FEATURE("sse4.2", "sse4.2"),
    KILN_FEATURE("avx", "avx"),
    KILN_FEATURE("avx2", "avx2"),
    KILN_FEATURE("fma", "fma"),
    KILN_FEATURE("bmi2", "bmi2"),
    {"f16c", HasF16c},
    KILN_FEATURE("avx512f", "avx512f"),
    KILN_FEATURE("avx512bw", "avx512bw"),
    KILN_FEATURE("avx512vl", "avx512vl"),
    KILN_FEATURE("avx512dq", "avx512dq"),
    KILN_FEATURE("avx512cd", "avx512cd"),
};
#undef KILN_FEATURE

}  // namespace

uint64_t ArtifactChecksum(std::string_view bytes) {
  return XXH3_64bits(bytes.data(), bytes.size());
}

uint64_t Fnv1a64(std::string_view bytes) {
  uint64_t hash = 1469598103934665603ull;
  for (const unsigned char c : bytes) {
    hash ^= c;
    hash *= 1099511628211ull;
  }
  return hash;
}

namespace {

void PutU64(std::string& out, size_t at, uint64_t value) {
  for (int i = 0; i < 8; ++i) out[at + i] = static_cast<char>((value >> (8 * i)) & 0xff);
}

uint64_t GetU64(std::string_view bytes, size_t at) {
  uint64_t value = 0;
  for (int i = 0; i < 8; ++i) value |= static_cast<uint64_t>(static_cast<unsigned char>(bytes[at + i])) << (8 * i);
  return value;
}

uint64_t RoundUp(uint64_t value, uint64_t multiple) {
  return (value + multiple - 1) / multiple * multiple;
}

// Header fields (see artifact.h).
constexpr size_t kChecksumAt = 8;
constexpr size_t kMessageSizeAt = 16;
constexpr size_t kDataOffsetAt = 24;
constexpr size_t kDataSizeAt = 32;
constexpr size_t kReservedAt = 40;

// How format 1 (the message right after a 16-byte header) began: field 1, the magic.
constexpr std::string_view kFormat1Body{"\x0a\x0dkiln.artifact", 15};

// The data section being written: each piece at the next aligned offset, and bytes equal
// to a piece already placed (the weights of several batch specializations) not again.
class DataSection {
 public:
  proto::DataRef Place(std::string_view bytes) {
    const uint64_t hash = ArtifactChecksum(bytes);
    const auto [first, last] = placed_.equal_range(hash);
    for (auto it = first; it != last; ++it) {
      if (it->second.size() == bytes.size() &&
          std::string_view(data_).substr(it->second.offset(), bytes.size()) == bytes) {
        return it->second;
      }
    }
    data_.resize(RoundUp(data_.size(), kArtifactDataAlignment), '\0');
    proto::DataRef ref;
    ref.set_offset(data_.size());
    ref.set_size(bytes.size());
    data_.append(bytes);
    placed_.emplace(hash, ref);
    return ref;
  }
  const std::string& bytes() const { return data_; }

 private:
  std::string data_;
  std::unordered_multimap<uint64_t, proto::DataRef> placed_;
};

// The message of `artifact` (and of its batch variants) without parameter bytes or code,
// which go to `data`.
proto::ArtifactProto MoveBytesOut(const proto::ArtifactProto& artifact, DataSection& data) {
  proto::ArtifactProto message = artifact;
  message.clear_code();
  message.clear_param_data();
  message.clear_batch_variants();
  for (int i = 0; i < artifact.param_values_size(); ++i) {
    *message.add_param_data() = data.Place(artifact.param_values(i).data());
    message.mutable_param_values(i)->clear_data();
  }
  *message.mutable_code_data() = data.Place(artifact.code());
  for (const proto::ArtifactProto& variant : artifact.batch_variants()) {
    *message.add_batch_variants() = MoveBytesOut(variant, data);
  }
  return message;
}

// A DataRef of the message, checked against the data section; `what` names it.
std::string_view Resolve(const proto::DataRef& ref, std::string_view data, const std::string& what) {
  if (ref.offset() > data.size() || ref.size() > data.size() - ref.offset()) {
    throw Error(what + ": bytes [" + std::to_string(ref.offset()) + ", +" + std::to_string(ref.size()) +
                ") lie outside the data section of " + std::to_string(data.size()) + " bytes");
  }
  if (ref.offset() % kArtifactDataAlignment != 0) {
    throw Error(what + ": offset " + std::to_string(ref.offset()) + " is not a multiple of " +
                std::to_string(kArtifactDataAlignment));
  }
  return data.substr(ref.offset(), ref.size());
}

}  // namespace

std::string SerializeArtifact(const proto::ArtifactProto& artifact) {
  // The message goes without the bytes; they go to the data section.
  DataSection section;
  const proto::ArtifactProto message = MoveBytesOut(artifact, section);
  const std::string& data = section.bytes();

  // Deterministic (map fields in key order): the same model compiles to the same bytes.
  std::string body;
  {
    google::protobuf::io::StringOutputStream stream(&body);
    google::protobuf::io::CodedOutputStream coded(&stream);
    coded.SetSerializationDeterministic(true);
    if (!message.SerializeToCodedStream(&coded)) throw Error("cannot serialize the artifact's message");
  }
  const uint64_t data_offset = RoundUp(kArtifactHeaderBytes + body.size(), kArtifactDataSectionAlignment);
  std::string out(kArtifactHeaderBytes, '\0');
  out.replace(0, kArtifactFileMagic.size(), kArtifactFileMagic);
  PutU64(out, kMessageSizeAt, body.size());
  PutU64(out, kDataOffsetAt, data_offset);
  PutU64(out, kDataSizeAt, data.size());
  out.reserve(data_offset + data.size());
  out += body;
  out.resize(data_offset, '\0');
  out += data;
  PutU64(out, kChecksumAt, ArtifactChecksum(std::string_view(out).substr(kMessageSizeAt)));
  return out;
}

bool LooksLikeArtifact(std::string_view bytes) {
  return bytes.starts_with(kArtifactFileMagic) || LooksSigned(bytes);
}

namespace {

// Checks that the message's parameters and code lie in the data section with the sizes
// their tensors need, and points `view` at them.
void ResolveBytes(std::string_view data, const std::string& where, ArtifactView& view) {
  const proto::ArtifactProto& artifact = view.message;
  if (artifact.param_data_size() != artifact.param_values_size() || !artifact.code().empty()) {
    throw Error(where + " is not a kiln artifact (bad message: " + std::to_string(artifact.param_values_size()) +
                " parameter values, " + std::to_string(artifact.param_data_size()) + " data references)");
  }
  for (int i = 0; i < artifact.param_values_size(); ++i) {
    const proto::TensorProto& value = artifact.param_values(i);
    const std::string what = where + ": parameter '" + Abbreviate(value.name()) + "'";
    if (!IsValidDTypeCode(value.dtype())) {
      throw Error(what + " has an unknown dtype code " + std::to_string(value.dtype()) + " (expected 0 to " +
                  std::to_string(kNumDTypes - 1) + ")");
    }
    const Shape shape(value.shape().begin(), value.shape().end());
    const auto dtype = static_cast<DType>(value.dtype());
    uint64_t expected = 0;
    try {
      expected = CheckedByteSize(shape, dtype);
    } catch (const Error& e) {
      throw Error(what + ": " + e.what());
    }
    if (!value.data().empty() || artifact.param_data(i).size() != expected) {
      throw Error(what + ": " + std::string(DTypeName(dtype)) + " " + ShapeToString(shape) + " needs " +
                  std::to_string(expected) + " bytes, the artifact gives " +
                  std::to_string(artifact.param_data(i).size() + value.data().size()));
    }
    view.param_data.push_back(Resolve(artifact.param_data(i), data, what));
  }
  view.code = Resolve(artifact.code_data(), data, where + ": the code object");
}

}  // namespace

ArtifactView OpenArtifact(std::string_view file_bytes, const std::string& source,
                          const std::vector<PublicKey>& trusted_keys) {
  const std::string where = "'" + source + "'";
  // Refuses anything that is not an artifact, and checks the signature and trust policy;
  // what it returns starts with kArtifactFileMagic.
  const VerifiedArtifact opened = OpenArtifactEnvelope(file_bytes, trusted_keys, source);
  const std::string_view bytes = opened.artifact_bytes;
  if (bytes.size() < kMessageSizeAt) throw Error(where + " is truncated (no checksum)");
  const uint64_t stored = GetU64(bytes, kChecksumAt);
  const std::string_view checked = bytes.substr(kMessageSizeAt);
  if (ArtifactChecksum(checked) != stored) {
    // Earlier artifacts carried a byte-at-a-time FNV-1a checksum (130 ms for ResNet-50's
    // weights): name them as old rather than corrupted.
    if (Fnv1a64(checked) == stored)
      throw Error(where + " was written by an older kiln (FNV checksum); recompile the model");
    throw Error(where + " is corrupted or truncated (checksum mismatch)");
  }
  if (checked.starts_with(kFormat1Body)) {
    throw Error(where + " was written by an older kiln (artifact format 1, weights inside the message); " +
                "recompile the model");
  }
  if (bytes.size() < kArtifactHeaderBytes)
    throw Error(where + " is truncated (header of " + std::to_string(bytes.size()) + " bytes, expected 64)");
  const uint64_t message_size = GetU64(bytes, kMessageSizeAt);
  const uint64_t data_offset = GetU64(bytes, kDataOffsetAt);
  const uint64_t data_size = GetU64(bytes, kDataSizeAt);
  bool reserved_zero = true;
  for (size_t i = kReservedAt; i < kArtifactHeaderBytes; ++i) reserved_zero = reserved_zero && bytes[i] == 0;
  const uint64_t file_size = bytes.size();
  if (!reserved_zero || data_offset < kArtifactHeaderBytes || data_offset > file_size ||
      data_offset % kArtifactDataSectionAlignment != 0 || message_size > data_offset - kArtifactHeaderBytes ||
      message_size > static_cast<uint64_t>(INT32_MAX) || data_size != file_size - data_offset) {
    throw Error(where + " has an inconsistent header (message " + std::to_string(message_size) +
                " bytes, data section at " + std::to_string(data_offset) + " of " + std::to_string(data_size) +
                " bytes, file " + std::to_string(file_size) + " bytes)");
  }
  QuietProtobufLogs();
  ArtifactView view;
  proto::ArtifactProto& artifact = view.message;
  if (!artifact.ParseFromArray(bytes.data() + kArtifactHeaderBytes, static_cast<int>(message_size)) ||
      artifact.magic() != kArtifactMagic) {
    throw Error(where + " is not a kiln artifact (bad message)");
  }
  if (artifact.format_version() != kArtifactFormatVersion) {
    throw Error(where + ": artifact format version " + std::to_string(artifact.format_version()) +
                " is not supported (this kiln " + kKilnVersion + " reads version " +
                std::to_string(kArtifactFormatVersion) + "; written by kiln " + artifact.producer_version() +
                "); recompile the model");
  }
  if (artifact.kernel_abi_version() != kKernelAbiVersion) {
    throw Error(where + ": kernel ABI version " + std::to_string(artifact.kernel_abi_version()) +
                " does not match this runtime's (" + std::to_string(kKernelAbiVersion) + "); recompile the model");
  }
  const std::string_view data = bytes.substr(data_offset);
  ResolveBytes(data, where, view);
  std::set<int64_t> batch_sizes;
  for (int v = 0; v < artifact.batch_variants_size(); ++v) {
    ArtifactView& variant = view.batch_variants.emplace_back();
    variant.message = std::move(*artifact.mutable_batch_variants(v));
    const int64_t batch = variant.message.batch_size();
    const std::string variant_where = where + ": batch specialization " + std::to_string(v);
    if (artifact.batch_size() <= 0 || batch <= 0 || !batch_sizes.insert(batch).second ||
        batch == artifact.batch_size() || variant.message.batch_variants_size() > 0) {
      throw Error(variant_where + " is malformed (batch size " + std::to_string(batch) + ", the artifact's " +
                  std::to_string(artifact.batch_size()) + ")");
    }
    ResolveBytes(data, variant_where, variant);
  }
  artifact.clear_batch_variants();
  view.signature = opened.signature;
  return view;
}

namespace {

// The message of `view` with its parameter bytes, code and batch variants inside.
proto::ArtifactProto MoveBytesIn(ArtifactView& view) {
  proto::ArtifactProto artifact = std::move(view.message);
  for (size_t i = 0; i < view.param_data.size(); ++i) {
    artifact.mutable_param_values(static_cast<int>(i))->set_data(view.param_data[i].data(), view.param_data[i].size());
  }
  artifact.set_code(view.code.data(), view.code.size());
  artifact.clear_param_data();
  artifact.clear_code_data();
  for (ArtifactView& variant : view.batch_variants) *artifact.add_batch_variants() = MoveBytesIn(variant);
  return artifact;
}

}  // namespace

proto::ArtifactProto ParseArtifact(std::string_view file_bytes, const std::string& source,
                                   const std::vector<PublicKey>& trusted_keys) {
  ArtifactView view = OpenArtifact(file_bytes, source, trusted_keys);
  return MoveBytesIn(view);
}

std::vector<std::string> HostCpuFeatures() {
  __builtin_cpu_init();
  std::vector<std::string> present;
  for (const auto& feature : kFeatures) {
    if (feature.present()) present.emplace_back(feature.name);
  }
  return present;
}

void CheckTarget(const proto::TargetProto& target, const std::string& source) {
  const std::string where = "'" + source + "'";
#if defined(__x86_64__)
  const std::string host_arch = "x86_64";
#elif defined(__aarch64__)
  const std::string host_arch = "aarch64";
#else
  const std::string host_arch = "unknown";
#endif
  const std::string arch = target.triple().substr(0, target.triple().find('-'));
  if (arch != host_arch) {
    throw Error(where + " was compiled for " + (target.triple().empty() ? "an unknown target" : target.triple()) +
                ", this machine is " + host_arch + "; recompile with kiln compile for this target");
  }
  const auto host = HostCpuFeatures();
  for (const auto& needed : target.features()) {
    bool known = false;
    for (const auto& feature : kFeatures) known = known || needed == feature.name;
    if (!known) continue;  // features the runtime cannot query are the compiler's concern
    bool have = false;
    for (const auto& h : host) have = have || h == needed;
    if (!have) {
      throw Error(where + " needs the CPU feature '" + needed + "' (compiled for cpu '" + target.cpu() +
                  "'), which this CPU lacks; recompile with --cpu for this machine (e.g. --cpu x86-64-v2)");
    }
  }
}

void SaveArtifact(const std::string& path, const proto::ArtifactProto& artifact, const KeyPair* signer) {
  const std::string bytes = SerializeArtifact(artifact);
  WriteFileAtomic(path, signer != nullptr ? SignArtifactBytes(bytes, *signer) : bytes);
}

proto::ArtifactProto LoadArtifact(const std::string& path, const std::vector<PublicKey>& trusted_keys) {
  return ParseArtifact(FileBytes::Open(path)->bytes(), path, trusted_keys);
}

}  // namespace kiln
