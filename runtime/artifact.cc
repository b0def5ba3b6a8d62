#include "runtime/artifact.h"

#include <cpuid.h>

#include <cstring>

#include "runtime/error.h"
#include "runtime/file_util.h"
#include "runtime/kernel_abi.h"
#include "runtime/proto_util.h"
#include "runtime/version.h"

// Header-only: the runtime links no hashing library.
#define XXH_INLINE_ALL
#include <xxhash.h>

namespace kiln {
namespace {

constexpr size_t kHeaderBytes = 16;
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

std::string SerializeArtifact(const proto::ArtifactProto& artifact) {
  std::string body;
  if (!artifact.SerializeToString(&body)) throw Error("cannot serialize the artifact (over 2 GiB?)");
  std::string out(kArtifactFileMagic);
  const uint64_t checksum = ArtifactChecksum(body);
  for (int i = 0; i < 8; ++i) out += static_cast<char>((checksum >> (8 * i)) & 0xff);
  return out + body;
}

bool LooksLikeArtifact(std::string_view bytes) {
  return bytes.starts_with(kArtifactFileMagic) || LooksSigned(bytes);
}

proto::ArtifactProto ParseArtifact(std::string_view file_bytes, const std::string& source,
                                   const std::vector<PublicKey>& trusted_keys) {
  const std::string where = "'" + source + "'";
  // Refuses anything that is not an artifact, and checks the signature and trust policy;
  // what it returns starts with kArtifactFileMagic.
  const std::string_view bytes = OpenArtifactEnvelope(file_bytes, trusted_keys, source).artifact_bytes;
  if (bytes.size() < kHeaderBytes) throw Error(where + " is truncated (no checksum)");
  uint64_t stored = 0;
  for (int i = 0; i < 8; ++i) stored |= static_cast<uint64_t>(static_cast<unsigned char>(bytes[8 + i])) << (8 * i);
  const std::string_view body = bytes.substr(kHeaderBytes);
  if (ArtifactChecksum(body) != stored) {
    // Earlier artifacts carried a byte-at-a-time FNV-1a checksum (130 ms for ResNet-50's
    // weights): name them as old rather than corrupted.
    if (Fnv1a64(body) == stored)
      throw Error(where + " was written by an older kiln (FNV checksum); recompile the model");
    throw Error(where + " is corrupted or truncated (checksum mismatch)");
  }
  QuietProtobufLogs();
  proto::ArtifactProto artifact;
  if (body.size() > static_cast<size_t>(INT32_MAX) ||
      !artifact.ParseFromArray(body.data(), static_cast<int>(body.size())) || artifact.magic() != kArtifactMagic) {
    throw Error(where + " is not a kiln artifact (bad message)");
  }
  if (artifact.format_version() == 0 || artifact.format_version() > kArtifactFormatVersion) {
    throw Error(where + ": artifact format version " + std::to_string(artifact.format_version()) +
                " is not supported (this kiln " + kKilnVersion + " reads versions 1 to " +
                std::to_string(kArtifactFormatVersion) + "; written by kiln " + artifact.producer_version() +
                "); recompile the model");
  }
  if (artifact.kernel_abi_version() != kKernelAbiVersion) {
    throw Error(where + ": kernel ABI version " + std::to_string(artifact.kernel_abi_version()) +
                " does not match this runtime's (" + std::to_string(kKernelAbiVersion) + "); recompile the model");
  }
  return artifact;
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
  return ParseArtifact(ReadFile(path), path, trusted_keys);
}

}  // namespace kiln
