// Reading and writing compiled artifacts (proto/artifact.proto behind a checksummed
// header). Loading checks the magic, checksum, format and ABI versions and that this CPU
// can run the code, and reports the first problem clearly.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "proto/artifact.pb.h"
#include "runtime/signing.h"

namespace kiln {

inline constexpr uint32_t kArtifactFormatVersion = 1;

// FNV-1a, 64 bits.
// The checksum of an artifact's body (XXH3, 64 bits: memory bandwidth, about 10 GB/s).
uint64_t ArtifactChecksum(std::string_view bytes);
// The checksum of artifacts written before XXH3, recognized to say so.
uint64_t Fnv1a64(std::string_view bytes);

std::string SerializeArtifact(const proto::ArtifactProto& artifact);
// Checks everything but the target (see CheckTarget). A signed artifact's signature is
// verified first; with `trusted_keys`, an artifact not signed by one of them is refused
// before anything else is read.
proto::ArtifactProto ParseArtifact(std::string_view bytes, const std::string& source = "<bytes>",
                                   const std::vector<PublicKey>& trusted_keys = {});
// True when `bytes` start like an artifact, signed or not (for tools that accept graphs
// and artifacts).
bool LooksLikeArtifact(std::string_view bytes);

// Throws when this machine cannot run code built for `target`: another architecture, or
// a CPU feature this CPU lacks (named).
void CheckTarget(const proto::TargetProto& target, const std::string& source);
// The features this CPU has among those kiln checks (sse4.2, avx, avx2, fma, f16c,
// avx512f, ...), in LLVM's spelling without '+'.
std::vector<std::string> HostCpuFeatures();

// Signed with `signer` when given.
void SaveArtifact(const std::string& path, const proto::ArtifactProto& artifact, const KeyPair* signer = nullptr);
proto::ArtifactProto LoadArtifact(const std::string& path, const std::vector<PublicKey>& trusted_keys = {});

}  // namespace kiln
