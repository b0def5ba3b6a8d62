// Key files (runtime/signing): the first byte picks the public or the secret reader, the
// rest is the file's text. A key that parses is a valid Ed25519 key: a public key is a
// point on the curve, a secret key's halves agree (checked by the readers themselves),
// and a parsed secret key signs what its public half verifies.
#include <string>

#include "runtime/error.h"
#include "runtime/signing.h"
#include "tests/fuzz/fuzz_targets.h"

namespace kiln::fuzz {

int FuzzKeys(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const std::string_view text = AsText(data + 1, size - 1);
  try {
    if ((data[0] & 1) == 0) {
      const PublicKey key = ParsePublicKey(text, "fuzz.pub");
      FuzzCheck(!key.fingerprint().empty(), "a public key without a fingerprint");
      return 0;
    }
    const KeyPair key_pair = ParseSecretKey(text, "fuzz");
    // A minimal artifact image: signing needs only the magic.
    const std::string artifact = std::string(kArtifactFileMagic) + "body";
    const std::string signed_bytes = SignArtifactBytes(artifact, key_pair);
    const VerifiedArtifact opened = OpenArtifactEnvelope(signed_bytes, {key_pair.public_part()}, "fuzz.kiln");
    FuzzCheck(opened.signature.trusted && opened.artifact_bytes == artifact,
              "a parsed secret key signs what its public half does not verify");
  } catch (const Error&) {
  }
  return 0;
}

}  // namespace kiln::fuzz
