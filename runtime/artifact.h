// Reading and writing compiled artifacts. Loading checks the magic, checksum, layout,
// format and ABI versions and that this CPU can run the code, and reports the first
// problem clearly.
//
// The file (format 2; a signed artifact wraps it in the envelope of runtime/signing.h):
//
//   offset       size  field
//        0          8  magic "KILNART\0"
//        8          8  checksum: XXH3-64 of every byte from offset 16 to the end, u64 LE
//       16          8  P, the size of the message, u64 LE
//       24          8  D, the data section's offset (a multiple of 4096), u64 LE
//       32          8  the data section's size, u64 LE; D + size is the file's size
//       40         24  zero
//       64          P  proto::ArtifactProto, without parameter bytes or code
//   64 + P          -  zero padding up to D
//        D          -  the data section: each parameter value and the code object at an
//                      offset that is a multiple of kArtifactDataAlignment, zero padding
//                      between; the message's DataRefs say where. Pieces with equal
//                      bytes (the weights of batch specializations) are stored once.
//
// so that a runtime maps the file and uses the weights where they lie.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "proto/artifact.pb.h"
#include "runtime/signing.h"

namespace kiln {

inline constexpr uint32_t kArtifactFormatVersion = 2;
inline constexpr size_t kArtifactHeaderBytes = 64;
// The data section starts at a page boundary and each piece in it at this alignment.
inline constexpr uint64_t kArtifactDataSectionAlignment = 4096;
inline constexpr uint64_t kArtifactDataAlignment = 64;

// The checksum of an artifact's body (XXH3, 64 bits: memory bandwidth, about 10 GB/s).
uint64_t ArtifactChecksum(std::string_view bytes);
// The checksum of artifacts written before XXH3, recognized to say so.
uint64_t Fnv1a64(std::string_view bytes);

// The file image of an artifact whose message holds its parameter values and code (as
// the compiler makes it; param_data and code_data are ignored and rewritten).
std::string SerializeArtifact(const proto::ArtifactProto& artifact);

// An artifact opened where it lies: the message without parameter bytes or code, and
// views of those in the file image given to OpenArtifact.
struct ArtifactView {
  // param_values carry names, dtypes and shapes; their data and `code` are empty.
  proto::ArtifactProto message;
  // The bytes of message.param_values(i), each of the size its dtype and shape give.
  std::vector<std::string_view> param_data;
  std::string_view code;
  SignatureInfo signature;
  // The batch specializations besides this one (kiln compile --batch-sizes), opened
  // likewise; message.batch_variants is then empty.
  std::vector<ArtifactView> batch_variants;
};

// Checks everything but the target (see CheckTarget): envelope, checksum, layout,
// message, versions, and that every DataRef lies inside the data section and has the
// size its tensor needs. A signed artifact's signature is verified first; with
// `trusted_keys`, an artifact not signed by one of them is refused before anything else
// is read. The views point into `file_bytes`, which must outlive them.
ArtifactView OpenArtifact(std::string_view file_bytes, const std::string& source = "<bytes>",
                          const std::vector<PublicKey>& trusted_keys = {});
// OpenArtifact, with the parameter bytes and code copied into the message (the form
// the compiler makes and SerializeArtifact takes).
proto::ArtifactProto ParseArtifact(std::string_view file_bytes, const std::string& source = "<bytes>",
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
