// Ed25519 signatures over compiled artifacts. An artifact carries native code, so a
// deployment can demand that it was signed by a key it trusts. Signing wraps the
// unsigned artifact file (which starts "KILNART\0") in an envelope:
//
//   offset  size  field
//        0     8  magic "KILNSIG\0"
//        8     4  envelope version, u32 little-endian (1)
//       12    32  the signer's Ed25519 public key
//       44    64  the detached Ed25519 signature
//      108     2  key name length n, u16 little-endian (at most 255)
//      110     n  the key name
//    110+n     -  the unsigned artifact bytes
//
// The signature is plain Ed25519 (libsodium's crypto_sign_detached) over
//   "kiln-artifact-signature-v1\0" || u16 LE n || name || artifact bytes,
// that is, the context string followed by everything after the signature field. The
// context string keeps these signatures from being valid for anything else signed with
// the same key; the length prefix binds the name. (The public key is bound by Ed25519
// itself and the version by the context string.) Messages are signed whole, copied once
// into memory, rather than prehashed: simplicity wins over halving peak memory.
//
// Key files are one line of text each:
//   kiln-ed25519-secret-v1 <128 hex digits: seed then public key> [<name>]
//   kiln-ed25519-public-v1 <64 hex digits> [<name>]
// A name is at most 255 bytes without control characters; it is a label for people
// and carries no authority: trust always compares whole public keys.
//
// Every function throws kiln::Error, naming the file or source, when something is
// wrong; no input bytes make them crash.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace kiln {

// The first bytes of an unsigned artifact file (runtime/artifact.h) and of a signed one.
inline constexpr std::string_view kArtifactFileMagic{"KILNART\0", 8};
inline constexpr std::string_view kSignedArtifactMagic{"KILNSIG\0", 8};
inline constexpr uint32_t kSignatureEnvelopeVersion = 1;
inline constexpr std::string_view kArtifactSignatureContext{"kiln-artifact-signature-v1\0", 27};
inline constexpr size_t kMaxKeyNameBytes = 255;
// Bytes before the key name: magic, version, public key, signature, name length.
inline constexpr size_t kSignatureEnvelopeFixedBytes = 8 + 4 + 32 + 64 + 2;
// Key files larger than this are refused unread.
inline constexpr size_t kMaxKeyFileBytes = 64 * 1024;

struct PublicKey {
  std::string name;
  std::array<uint8_t, 32> key{};

  // "ed25519:" and the first 16 hex digits of BLAKE2b-256(key), for people to compare
  // keys at a glance (trust decisions compare whole keys, never fingerprints).
  std::string fingerprint() const;
  // "name (ed25519:...)", or the fingerprint alone for a nameless key.
  std::string label() const;
};

struct KeyPair {
  std::string name;
  std::array<uint8_t, 32> public_key{};
  // libsodium's layout: the 32-byte seed, then the public key.
  std::array<uint8_t, 64> secret_key{};

  PublicKey public_part() const { return PublicKey{name, public_key}; }
};

// A fresh random key pair. Throws when the name is too long or has control characters.
KeyPair GenerateKeyPair(std::string name);

// Writes the secret key to `path` (mode 0600) and the public key to `path + ".pub"`,
// each atomically (a temporary file renamed into place). Refuses, before writing
// anything, when either file exists, unless `overwrite`.
void SaveKeyPair(const std::string& path, const KeyPair& key_pair, bool overwrite = false);

// Strict readers of the files SaveKeyPair writes: the header word, the hex digits, the
// name and the end of the line are all checked; a secret file where a public one is
// expected (or the reverse) is named as such. Only regular files up to kMaxKeyFileBytes
// are read. LoadSecretKey also checks that the public half matches the seed, and
// LoadPublicKey that the key is a valid Ed25519 point.
PublicKey LoadPublicKey(const std::string& path);
KeyPair LoadSecretKey(const std::string& path);
// The same from a key file's text; `source` names it in errors.
PublicKey ParsePublicKey(std::string_view text, const std::string& source);
KeyPair ParseSecretKey(std::string_view text, const std::string& source);

// True when `bytes` start with the signed-envelope magic (nothing else is checked).
bool LooksSigned(std::string_view bytes);

// Signs an unsigned artifact file image, returning the signed file image. Throws when
// `artifact_bytes` do not start like an artifact (an already signed one included) or
// when the key pair's halves disagree.
std::string SignArtifactBytes(std::string_view artifact_bytes, const KeyPair& key_pair);

struct SignatureInfo {
  bool is_signed = false;
  // The signature verifies against the public key embedded in the envelope.
  bool signature_valid = false;
  // The embedded key is among the trusted keys (set by OpenArtifactEnvelope only).
  bool trusted = false;
  // The embedded key and name; empty when !is_signed.
  PublicKey signer;
};

struct VerifiedArtifact {
  // The unsigned artifact: a view into the `file_bytes` given to OpenArtifactEnvelope.
  std::string_view artifact_bytes;
  SignatureInfo signature;
};

// Opens an artifact file image, signed or not, for loading:
// - unsigned (starting "KILNART\0"): returned as is when `trusted_keys` is empty,
//   refused when it is not;
// - signed: the envelope is parsed strictly and the signature always verified (an
//   invalid signature means a damaged or forged file, whatever the trust policy); when
//   `trusted_keys` is non-empty the signer must be one of them;
// - anything else: refused.
// `source` names the file in messages.
VerifiedArtifact OpenArtifactEnvelope(std::string_view file_bytes, const std::vector<PublicKey>& trusted_keys,
                                      const std::string& source);

// Describes the signature of a file image without trusting it (for `kiln inspect`):
// is_signed = false for anything without the envelope magic; for an envelope,
// signature_valid tells whether the signature verifies. Throws only for a malformed
// envelope (truncated, an unknown version, a bad name).
SignatureInfo DescribeSignature(std::string_view file_bytes, const std::string& source = "<bytes>");

}  // namespace kiln
