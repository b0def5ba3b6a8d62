#include "runtime/signing.h"

#include <fcntl.h>
#include <sodium.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <random>
#include <utility>

#include "runtime/error.h"
#include "runtime/file_util.h"

namespace kiln {
namespace {

static_assert(crypto_sign_PUBLICKEYBYTES == 32 && crypto_sign_SECRETKEYBYTES == 64 && crypto_sign_BYTES == 64);
static_assert(crypto_sign_SEEDBYTES == 32);

constexpr std::string_view kSecretHeader = "kiln-ed25519-secret-v1";
constexpr std::string_view kPublicHeader = "kiln-ed25519-public-v1";
constexpr size_t kKeyOffset = 12;
constexpr size_t kSignatureOffset = 44;
constexpr size_t kNameLengthOffset = 108;

void InitSodium() {
  static const int result = sodium_init();  // thread-safe: a function-local static
  if (result < 0) throw Error("cannot initialize libsodium (sodium_init failed)");
}

// Wipes a buffer that held secret key material when it goes out of scope.
class Wipe {
 public:
  explicit Wipe(std::string& bytes) : bytes_(bytes) {}
  ~Wipe() { sodium_memzero(bytes_.data(), bytes_.size()); }
  Wipe(const Wipe&) = delete;
  Wipe& operator=(const Wipe&) = delete;

 private:
  std::string& bytes_;
};

std::string Hex(const uint8_t* bytes, size_t size) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string hex;
  hex.reserve(size * 2);
  for (size_t i = 0; i < size; ++i) {
    hex += kDigits[bytes[i] >> 4];
    hex += kDigits[bytes[i] & 15];
  }
  return hex;
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Empty when `name` is a valid key name, else what is wrong with it.
std::string NameProblem(std::string_view name) {
  if (name.size() > kMaxKeyNameBytes) {
    return "the key name is " + std::to_string(name.size()) + " bytes long; the limit is " +
           std::to_string(kMaxKeyNameBytes);
  }
  for (size_t i = 0; i < name.size(); ++i) {
    const auto c = static_cast<unsigned char>(name[i]);
    if (c < 0x20 || c == 0x7f) return "the key name has a control character (byte " + std::to_string(i) + ")";
  }
  return {};
}

void CheckName(std::string_view name) {
  if (const std::string problem = NameProblem(name); !problem.empty()) throw Error("invalid key name: " + problem);
}

// The whole of a small regular file.
std::string ReadKeyFile(const std::string& path) {
  // O_NONBLOCK: opening a FIFO must not wait for a writer (it is refused just below).
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK));
  if (fd.get() < 0) throw Error("cannot open key file '" + path + "': " + std::strerror(errno));
  struct stat info {};
  if (::fstat(fd.get(), &info) != 0) throw Error("cannot stat key file '" + path + "': " + std::strerror(errno));
  if (!S_ISREG(info.st_mode)) throw Error("key file '" + path + "' is not a regular file");
  const auto too_large = [&] {
    return Error("key file '" + path + "' is too large for a key file (over " + std::to_string(kMaxKeyFileBytes) +
                 " bytes)");
  };
  if (static_cast<uint64_t>(info.st_size) > kMaxKeyFileBytes) throw too_large();
  std::string bytes(kMaxKeyFileBytes + 1, '\0');
  size_t size = 0;
  while (size < bytes.size()) {
    const ssize_t n = ::read(fd.get(), bytes.data() + size, bytes.size() - size);
    if (n < 0) {
      if (errno == EINTR) continue;
      const std::string reason = std::strerror(errno);
      sodium_memzero(bytes.data(), size);
      throw Error("cannot read key file '" + path + "': " + reason);
    }
    if (n == 0) break;
    size += static_cast<size_t>(n);
  }
  if (size > kMaxKeyFileBytes) {  // it grew since fstat
    sodium_memzero(bytes.data(), bytes.size());
    throw too_large();
  }
  bytes.resize(size);
  return bytes;
}

struct KeyLine {
  std::string key;  // raw bytes
  std::string name;
};

// Parses "<header> <hex> [<name>]\n" into `key_bytes` bytes and a name. Messages never
// quote the file's contents: it may be a secret key.
KeyLine ParseKeyLine(std::string_view text, std::string_view header, std::string_view other_header, size_t key_bytes,
                     const std::string& path) {
  const std::string what = header == kSecretHeader ? "secret key file" : "public key file";
  const auto fail = [&](const std::string& problem) { return Error(what + " '" + path + "': " + problem); };
  if (text.empty()) throw fail("the file is empty");
  if (text.back() == '\n') text.remove_suffix(1);
  if (const size_t newline = text.find('\n'); newline != std::string_view::npos) {
    throw fail("unexpected data after the key line (a key file has one line)");
  }
  const size_t space = text.find(' ');
  const std::string_view word = text.substr(0, space);
  if (word == other_header) {
    throw fail(header == kSecretHeader ? "this is a public key file; a secret key file was expected"
                                       : "this is a secret key file; a public key file (.pub) was expected");
  }
  if (word != header) throw fail("it does not start with '" + std::string(header) + "' (not a kiln key file)");
  if (space == std::string_view::npos) throw fail("the key is missing after '" + std::string(header) + "'");
  std::string_view rest = text.substr(space + 1);
  const size_t name_space = rest.find(' ');
  const std::string_view hex = rest.substr(0, name_space);
  if (hex.size() != key_bytes * 2) {
    throw fail("the key must be " + std::to_string(key_bytes * 2) + " hex digits, found " + std::to_string(hex.size()));
  }
  KeyLine line;
  line.key.resize(key_bytes);
  for (size_t i = 0; i < key_bytes; ++i) {
    const int high = HexValue(hex[2 * i]);
    const int low = HexValue(hex[2 * i + 1]);
    if (high < 0 || low < 0) {
      sodium_memzero(line.key.data(), line.key.size());
      throw fail("the key has a character that is not a hex digit (at hex digit " +
                 std::to_string(2 * i + (high < 0 ? 1 : 2)) + ")");
    }
    line.key[i] = static_cast<char>(high << 4 | low);
  }
  if (name_space != std::string_view::npos) {
    const std::string_view name = rest.substr(name_space + 1);
    if (name.empty()) throw fail("a space after the key must be followed by a name");
    if (const std::string problem = NameProblem(name); !problem.empty()) throw fail(problem);
    line.name = name;
  }
  return line;
}

std::string KeyLineText(std::string_view header, const uint8_t* key, size_t size, const std::string& name) {
  std::string text(header);
  text += ' ';
  text += Hex(key, size);
  if (!name.empty()) text += ' ' + name;
  text += '\n';
  return text;
}

void PutU16(std::string& out, uint16_t value) {
  out += static_cast<char>(value & 0xff);
  out += static_cast<char>(value >> 8);
}

void PutU32(std::string& out, uint32_t value) {
  for (int shift = 0; shift < 32; shift += 8) out += static_cast<char>((value >> shift) & 0xff);
}

uint32_t GetU32(std::string_view bytes, size_t offset) {
  uint32_t value = 0;
  for (int i = 3; i >= 0; --i) value = value << 8 | static_cast<uint8_t>(bytes[offset + i]);
  return value;
}

uint16_t GetU16(std::string_view bytes, size_t offset) {
  return static_cast<uint16_t>(static_cast<uint8_t>(bytes[offset]) | static_cast<uint8_t>(bytes[offset + 1]) << 8);
}

// The message Ed25519 signs: the context string, then everything after the signature.
std::string SignedMessage(std::string_view after_signature) {
  std::string message;
  message.reserve(kArtifactSignatureContext.size() + after_signature.size());
  message += kArtifactSignatureContext;
  message += after_signature;
  return message;
}

bool StartsWith(std::string_view bytes, std::string_view prefix) {
  return bytes.substr(0, prefix.size()) == prefix;
}

struct Envelope {
  PublicKey signer;
  std::array<uint8_t, crypto_sign_BYTES> signature{};
  std::string_view after_signature;  // name length, name, artifact
  std::string_view artifact;
};

// Parses a signed envelope (the caller has checked the magic).
Envelope ParseEnvelope(std::string_view bytes, const std::string& source) {
  const auto need = [&](size_t end, const char* field) {
    if (bytes.size() < end) {
      throw Error("'" + source + "' is a truncated signed artifact: it ends inside the " + field + " (" +
                  std::to_string(bytes.size()) + " bytes)");
    }
  };
  need(kKeyOffset, "envelope version");
  if (const uint32_t version = GetU32(bytes, kSignedArtifactMagic.size()); version != kSignatureEnvelopeVersion) {
    throw Error("'" + source + "' has signature envelope version " + std::to_string(version) +
                "; this runtime reads version " + std::to_string(kSignatureEnvelopeVersion));
  }
  need(kSignatureOffset, "signer's public key");
  need(kNameLengthOffset, "signature");
  need(kSignatureEnvelopeFixedBytes, "key name length");
  Envelope envelope;
  std::memcpy(envelope.signer.key.data(), bytes.data() + kKeyOffset, envelope.signer.key.size());
  std::memcpy(envelope.signature.data(), bytes.data() + kSignatureOffset, envelope.signature.size());
  const size_t name_size = GetU16(bytes, kNameLengthOffset);
  if (name_size > kMaxKeyNameBytes) {
    throw Error("'" + source + "' has a signer name of " + std::to_string(name_size) + " bytes; the limit is " +
                std::to_string(kMaxKeyNameBytes));
  }
  need(kSignatureEnvelopeFixedBytes + name_size, "signer's key name");
  const std::string_view name = bytes.substr(kSignatureEnvelopeFixedBytes, name_size);
  if (const std::string problem = NameProblem(name); !problem.empty()) {
    throw Error("'" + source + "' has an invalid signer name: " + problem);
  }
  envelope.signer.name = name;
  envelope.after_signature = bytes.substr(kNameLengthOffset);
  envelope.artifact = bytes.substr(kSignatureEnvelopeFixedBytes + name_size);
  if (!StartsWith(envelope.artifact, kArtifactFileMagic)) {
    throw Error("'" + source + "' is signed, but what was signed is not a kiln artifact (or it is truncated)");
  }
  return envelope;
}

bool Verify(const Envelope& envelope) {
  const std::string message = SignedMessage(envelope.after_signature);
  return crypto_sign_verify_detached(envelope.signature.data(), reinterpret_cast<const unsigned char*>(message.data()),
                                     message.size(), envelope.signer.key.data()) == 0;
}

std::string Labels(const std::vector<PublicKey>& keys) {
  std::string labels;
  for (const PublicKey& key : keys) labels += (labels.empty() ? "" : ", ") + key.label();
  return labels;
}

}  // namespace

std::string PublicKey::fingerprint() const {
  InitSodium();
  std::array<uint8_t, crypto_generichash_BYTES> hash{};
  crypto_generichash(hash.data(), hash.size(), key.data(), key.size(), nullptr, 0);
  return "ed25519:" + Hex(hash.data(), 8);
}

std::string PublicKey::label() const {
  return name.empty() ? fingerprint() : name + " (" + fingerprint() + ")";
}

KeyPair GenerateKeyPair(std::string name) {
  InitSodium();
  CheckName(name);
  KeyPair key_pair;
  key_pair.name = std::move(name);
  if (crypto_sign_keypair(key_pair.public_key.data(), key_pair.secret_key.data()) != 0) {
    throw Error("cannot generate an Ed25519 key pair");
  }
  return key_pair;
}

void SaveKeyPair(const std::string& path, const KeyPair& key_pair, bool overwrite) {
  InitSodium();
  CheckName(key_pair.name);
  const std::string public_path = path + ".pub";
  if (!overwrite) {
    for (const std::string& file : {path, public_path}) {
      struct stat info {};
      if (::lstat(file.c_str(), &info) == 0) {
        throw Error("key file '" + file + "' already exists; refusing to overwrite it");
      }
    }
  }
  std::string secret_text =
      KeyLineText(kSecretHeader, key_pair.secret_key.data(), key_pair.secret_key.size(), key_pair.name);
  const Wipe wipe(secret_text);
  WriteFileAtomic(path, secret_text, 0600);
  WriteFileAtomic(public_path,
                  KeyLineText(kPublicHeader, key_pair.public_key.data(), key_pair.public_key.size(), key_pair.name));
}

PublicKey LoadPublicKey(const std::string& path) {
  return ParsePublicKey(ReadKeyFile(path), path);
}

KeyPair LoadSecretKey(const std::string& path) {
  std::string text = ReadKeyFile(path);
  const Wipe wipe_text(text);
  return ParseSecretKey(text, path);
}

PublicKey ParsePublicKey(std::string_view text, const std::string& path) {
  InitSodium();
  const KeyLine line = ParseKeyLine(text, kPublicHeader, kSecretHeader, 32, path);
  PublicKey key;
  key.name = line.name;
  std::memcpy(key.key.data(), line.key.data(), key.key.size());
  if (crypto_core_ed25519_is_valid_point(key.key.data()) != 1) {
    throw Error("public key file '" + path + "': the key is not a valid Ed25519 public key");
  }
  return key;
}

KeyPair ParseSecretKey(std::string_view text, const std::string& path) {
  InitSodium();
  KeyLine line = ParseKeyLine(text, kSecretHeader, kPublicHeader, 64, path);
  const Wipe wipe_key(line.key);
  KeyPair key_pair;
  key_pair.name = line.name;
  std::memcpy(key_pair.secret_key.data(), line.key.data(), key_pair.secret_key.size());
  // The second half is the public key; it must be the one the seed makes.
  std::array<uint8_t, 32> public_key{};
  std::array<uint8_t, 64> secret_key{};
  crypto_sign_seed_keypair(public_key.data(), secret_key.data(), key_pair.secret_key.data());
  const bool consistent = sodium_memcmp(secret_key.data(), key_pair.secret_key.data(), secret_key.size()) == 0;
  sodium_memzero(secret_key.data(), secret_key.size());
  if (!consistent) {
    sodium_memzero(key_pair.secret_key.data(), key_pair.secret_key.size());
    throw Error("secret key file '" + path + "' is damaged: its public half does not match its secret seed");
  }
  key_pair.public_key = public_key;
  return key_pair;
}

bool LooksSigned(std::string_view bytes) {
  return StartsWith(bytes, kSignedArtifactMagic);
}

std::string SignArtifactBytes(std::string_view artifact_bytes, const KeyPair& key_pair) {
  InitSodium();
  if (LooksSigned(artifact_bytes)) throw Error("cannot sign: the artifact is already signed");
  if (!StartsWith(artifact_bytes, kArtifactFileMagic)) {
    throw Error("cannot sign: the bytes are not a kiln artifact (they do not start with KILNART)");
  }
  CheckName(key_pair.name);
  if (std::memcmp(key_pair.secret_key.data() + 32, key_pair.public_key.data(), 32) != 0) {
    throw Error("cannot sign with key '" + key_pair.name + "': its public key does not match its secret key");
  }
  std::string signed_bytes;
  signed_bytes.reserve(kSignatureEnvelopeFixedBytes + key_pair.name.size() + artifact_bytes.size());
  signed_bytes += kSignedArtifactMagic;
  PutU32(signed_bytes, kSignatureEnvelopeVersion);
  signed_bytes.append(reinterpret_cast<const char*>(key_pair.public_key.data()), key_pair.public_key.size());
  signed_bytes.append(crypto_sign_BYTES, '\0');  // the signature, filled in below
  PutU16(signed_bytes, static_cast<uint16_t>(key_pair.name.size()));
  signed_bytes += key_pair.name;
  signed_bytes += artifact_bytes;
  const std::string message = SignedMessage(std::string_view(signed_bytes).substr(kNameLengthOffset));
  crypto_sign_detached(reinterpret_cast<unsigned char*>(signed_bytes.data() + kSignatureOffset), nullptr,
                       reinterpret_cast<const unsigned char*>(message.data()), message.size(),
                       key_pair.secret_key.data());
  return signed_bytes;
}

VerifiedArtifact OpenArtifactEnvelope(std::string_view file_bytes, const std::vector<PublicKey>& trusted_keys,
                                      const std::string& source) {
  InitSodium();
  if (!LooksSigned(file_bytes)) {
    if (!StartsWith(file_bytes, kArtifactFileMagic)) {
      throw Error("'" + source + "' is not a kiln artifact (it starts with neither KILNART nor KILNSIG)");
    }
    if (!trusted_keys.empty()) {
      throw Error("'" + source +
                  "' is not signed; this runtime requires artifacts signed by one of: " + Labels(trusted_keys));
    }
    return {file_bytes, {}};
  }
  const Envelope envelope = ParseEnvelope(file_bytes, source);
  if (!Verify(envelope)) {
    throw Error("'" + source + "' has an invalid signature (it does not verify; claimed signer " +
                envelope.signer.label() + "): the file is damaged or forged");
  }
  VerifiedArtifact result{envelope.artifact, {true, true, false, envelope.signer}};
  if (!trusted_keys.empty()) {
    for (const PublicKey& key : trusted_keys) {
      if (key.key == envelope.signer.key) result.signature.trusted = true;
    }
    if (!result.signature.trusted) {
      throw Error("'" + source + "' is signed by " + envelope.signer.label() +
                  ", which is not among the trusted keys: " + Labels(trusted_keys));
    }
  }
  return result;
}

SignatureInfo DescribeSignature(std::string_view file_bytes, const std::string& source) {
  InitSodium();
  if (!LooksSigned(file_bytes)) return {};
  const Envelope envelope = ParseEnvelope(file_bytes, source);
  return {true, Verify(envelope), false, envelope.signer};
}

}  // namespace kiln
