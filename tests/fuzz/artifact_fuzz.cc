// Compiled artifacts (runtime/artifact.h) as they come: most mutations stop at the
// checksum, which is the point (corruption is detected); what parses is checked against
// this CPU and saved and parsed again.
#include "runtime/artifact.h"
#include "runtime/error.h"
#include "tests/fuzz/fuzz_targets.h"

namespace kiln::fuzz {

int FuzzArtifact(const uint8_t* data, size_t size) {
  proto::ArtifactProto artifact;
  try {
    artifact = ParseArtifact(AsText(data, size), "fuzz.kiln");
  } catch (const Error&) {
    return 0;
  }
  try {
    CheckTarget(artifact.target(), "fuzz.kiln");
  } catch (const Error&) {
  }
  ParseArtifact(SerializeArtifact(artifact), "fuzz.kiln (saved again)");
  return 0;
}

}  // namespace kiln::fuzz
