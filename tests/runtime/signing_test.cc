// Ed25519 signing of artifacts: key files, the signed envelope and its verification.
#include "runtime/signing.h"

#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cctype>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>

#include "runtime/error.h"
#include "runtime/file_util.h"

using namespace kiln;

namespace {

std::string TempDir() {
  const auto dir = std::filesystem::temp_directory_path() / ("kiln_signing_test_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  return dir.string();
}

std::string TempPath(const std::string& name) {
  const std::string path = TempDir() + "/" + name;
  std::filesystem::remove(path);
  std::filesystem::remove(path + ".pub");
  return path;
}

void WriteText(const std::string& path, const std::string& text) {
  std::ofstream file(path, std::ios::binary | std::ios::trunc);
  file << text;
  REQUIRE(file.good());
}

std::string ReadText(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(file), {});
}

// A stand-in for an unsigned artifact: the 16-byte header, then some body bytes.
std::string FakeArtifact(size_t body_size = 300) {
  std::string bytes("KILNART\0", 8);
  for (int i = 0; i < 8; ++i) bytes += static_cast<char>(0x11 * i);
  for (size_t i = 0; i < body_size; ++i) bytes += static_cast<char>((i * 31 + 7) & 0xff);
  return bytes;
}

std::string Hex(const uint8_t* bytes, size_t size) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string hex;
  for (size_t i = 0; i < size; ++i) {
    hex += kDigits[bytes[i] >> 4];
    hex += kDigits[bytes[i] & 15];
  }
  return hex;
}

}  // namespace

TEST_CASE("generated key pairs are distinct and self-consistent", "[signing]") {
  const KeyPair a = GenerateKeyPair("release");
  const KeyPair b = GenerateKeyPair("release");
  CHECK(a.name == "release");
  CHECK(a.public_key != b.public_key);
  CHECK(a.secret_key != b.secret_key);
  // libsodium's secret key ends with the public key.
  CHECK(std::memcmp(a.secret_key.data() + 32, a.public_key.data(), 32) == 0);
  CHECK(a.public_part().key == a.public_key);
  CHECK(a.public_part().name == "release");

  const std::string fingerprint = a.public_part().fingerprint();
  CHECK(fingerprint.size() == std::string("ed25519:").size() + 16);
  CHECK(fingerprint.rfind("ed25519:", 0) == 0);
  CHECK(fingerprint.find_first_not_of("0123456789abcdef", 8) == std::string::npos);
  CHECK(fingerprint == a.public_part().fingerprint());
  CHECK(fingerprint != b.public_part().fingerprint());
  CHECK(a.public_part().label() == "release (" + fingerprint + ")");
  CHECK(PublicKey{"", a.public_key}.label() == fingerprint);

  CHECK(GenerateKeyPair("").name.empty());
  CHECK(GenerateKeyPair(std::string(255, 'k')).name.size() == 255);
  CHECK_THROWS_WITH(GenerateKeyPair(std::string(256, 'k')), Catch::Contains("256 bytes") && Catch::Contains("255"));
  CHECK_THROWS_WITH(GenerateKeyPair("bad\nname"), Catch::Contains("control character"));
}

TEST_CASE("key pairs survive saving and loading", "[signing]") {
  const std::string path = TempPath("roundtrip.key");
  const KeyPair key_pair = GenerateKeyPair("ci release key");
  SaveKeyPair(path, key_pair);

  const KeyPair loaded = LoadSecretKey(path);
  CHECK(loaded.name == "ci release key");
  CHECK(loaded.public_key == key_pair.public_key);
  CHECK(loaded.secret_key == key_pair.secret_key);
  const PublicKey public_key = LoadPublicKey(path + ".pub");
  CHECK(public_key.name == "ci release key");
  CHECK(public_key.key == key_pair.public_key);

  // The documented formats, exactly.
  CHECK(ReadText(path) == "kiln-ed25519-secret-v1 " + Hex(key_pair.secret_key.data(), 64) + " ci release key\n");
  CHECK(ReadText(path + ".pub") ==
        "kiln-ed25519-public-v1 " + Hex(key_pair.public_key.data(), 32) + " ci release key\n");

  // A nameless key has no trailing space.
  const std::string nameless = TempPath("nameless.key");
  SaveKeyPair(nameless, GenerateKeyPair(""));
  CHECK(ReadText(nameless + ".pub").size() == std::string("kiln-ed25519-public-v1 ").size() + 64 + 1);
  CHECK(LoadPublicKey(nameless + ".pub").name.empty());
  CHECK(LoadSecretKey(nameless).name.empty());

  // Upper-case hex and a missing final newline are accepted.
  std::string upper = "kiln-ed25519-public-v1 " + Hex(key_pair.public_key.data(), 32);
  for (char& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  upper.replace(0, 22, "kiln-ed25519-public-v1");
  WriteText(TempDir() + "/upper.pub", upper);
  CHECK(LoadPublicKey(TempDir() + "/upper.pub").key == key_pair.public_key);
}

TEST_CASE("the secret key file is created with mode 0600", "[signing]") {
  const ::mode_t old_umask = ::umask(0);  // a permissive umask must not widen the secret file
  const std::string path = TempPath("mode.key");
  SaveKeyPair(path, GenerateKeyPair("mode"));
  ::umask(old_umask);
  struct stat info {};
  REQUIRE(::stat(path.c_str(), &info) == 0);
  CHECK((info.st_mode & 07777) == 0600);
  REQUIRE(::stat((path + ".pub").c_str(), &info) == 0);
  CHECK((info.st_mode & 0044) == 0044);  // the public key is readable by others
  // Overwriting keeps the secret file private too.
  ::chmod(path.c_str(), 0644);
  SaveKeyPair(path, GenerateKeyPair("mode"), /*overwrite=*/true);
  REQUIRE(::stat(path.c_str(), &info) == 0);
  CHECK((info.st_mode & 07777) == 0600);
  // No temporary files are left behind.
  for (const auto& entry : std::filesystem::directory_iterator(TempDir())) {
    CHECK(entry.path().filename().string().find("mode.key.tmp") == std::string::npos);
  }
}

TEST_CASE("saving refuses to overwrite key files unless asked", "[signing]") {
  const std::string path = TempPath("existing.key");
  const KeyPair first = GenerateKeyPair("first");
  const KeyPair second = GenerateKeyPair("second");
  SaveKeyPair(path, first);
  CHECK_THROWS_WITH(SaveKeyPair(path, second), Catch::Contains("'" + path + "' already exists"));
  CHECK(LoadSecretKey(path).secret_key == first.secret_key);
  CHECK(LoadPublicKey(path + ".pub").key == first.public_key);

  // Only the .pub file exists: still refused, and the secret file is not written.
  std::filesystem::remove(path);
  CHECK_THROWS_WITH(SaveKeyPair(path, second), Catch::Contains("'" + path + ".pub' already exists"));
  CHECK_FALSE(std::filesystem::exists(path));

  SaveKeyPair(path, second, /*overwrite=*/true);
  CHECK(LoadSecretKey(path).secret_key == second.secret_key);
  CHECK(LoadPublicKey(path + ".pub").key == second.public_key);
}

TEST_CASE("signed artifacts open with the right key, or with none", "[signing]") {
  const KeyPair key_pair = GenerateKeyPair("release");
  const std::string artifact = FakeArtifact();
  const std::string signed_bytes = SignArtifactBytes(artifact, key_pair);

  // The documented layout.
  REQUIRE(signed_bytes.size() == kSignatureEnvelopeFixedBytes + 7 + artifact.size());
  CHECK(signed_bytes.substr(0, 8) == std::string("KILNSIG\0", 8));
  CHECK(signed_bytes.substr(8, 4) == std::string("\1\0\0\0", 4));
  CHECK(std::memcmp(signed_bytes.data() + 12, key_pair.public_key.data(), 32) == 0);
  CHECK(signed_bytes.substr(108, 2) == std::string("\7\0", 2));
  CHECK(signed_bytes.substr(110, 7) == "release");
  CHECK(signed_bytes.substr(117) == artifact);
  CHECK(LooksSigned(signed_bytes));
  CHECK_FALSE(LooksSigned(artifact));
  CHECK_FALSE(LooksSigned(std::string("KILNSIG", 7)));

  // Ed25519 is deterministic: the same key and bytes give the same file.
  CHECK(SignArtifactBytes(artifact, key_pair) == signed_bytes);

  const VerifiedArtifact trusted = OpenArtifactEnvelope(signed_bytes, {key_pair.public_part()}, "model.kiln");
  CHECK(trusted.artifact_bytes == artifact);
  CHECK(trusted.artifact_bytes.data() == signed_bytes.data() + 117);  // a view, not a copy
  CHECK(trusted.signature.is_signed);
  CHECK(trusted.signature.signature_valid);
  CHECK(trusted.signature.trusted);
  CHECK(trusted.signature.signer.name == "release");
  CHECK(trusted.signature.signer.key == key_pair.public_key);

  // Among several trusted keys.
  const KeyPair other = GenerateKeyPair("other");
  CHECK(OpenArtifactEnvelope(signed_bytes, {other.public_part(), key_pair.public_part()}, "m").signature.trusted);

  const VerifiedArtifact untrusted = OpenArtifactEnvelope(signed_bytes, {}, "model.kiln");
  CHECK(untrusted.artifact_bytes == artifact);
  CHECK(untrusted.signature.is_signed);
  CHECK(untrusted.signature.signature_valid);
  CHECK_FALSE(untrusted.signature.trusted);

  const SignatureInfo described = DescribeSignature(signed_bytes);
  CHECK(described.is_signed);
  CHECK(described.signature_valid);
  CHECK(described.signer.key == key_pair.public_key);
  CHECK(described.signer.name == "release");

  // A nameless key signs too.
  const KeyPair nameless = GenerateKeyPair("");
  const std::string nameless_signed = SignArtifactBytes(artifact, nameless);
  CHECK(nameless_signed.size() == kSignatureEnvelopeFixedBytes + artifact.size());
  CHECK(OpenArtifactEnvelope(nameless_signed, {nameless.public_part()}, "m").artifact_bytes == artifact);

  // Keys loaded from files verify what the saved pair signed.
  const std::string path = TempPath("sign.key");
  SaveKeyPair(path, key_pair);
  CHECK(SignArtifactBytes(artifact, LoadSecretKey(path)) == signed_bytes);
  CHECK(OpenArtifactEnvelope(signed_bytes, {LoadPublicKey(path + ".pub")}, "m").signature.trusted);
}

TEST_CASE("signing refuses what is not an unsigned artifact", "[signing]") {
  const KeyPair key_pair = GenerateKeyPair("release");
  const std::string signed_bytes = SignArtifactBytes(FakeArtifact(), key_pair);
  CHECK_THROWS_WITH(SignArtifactBytes(signed_bytes, key_pair), Catch::Contains("already signed"));
  CHECK_THROWS_WITH(SignArtifactBytes("not an artifact", key_pair), Catch::Contains("not a kiln artifact"));
  CHECK_THROWS_WITH(SignArtifactBytes("", key_pair), Catch::Contains("not a kiln artifact"));
  KeyPair mismatched = key_pair;
  mismatched.public_key = GenerateKeyPair("x").public_key;
  CHECK_THROWS_WITH(SignArtifactBytes(FakeArtifact(), mismatched), Catch::Contains("does not match"));
}

TEST_CASE("trust policy: wrong keys and unsigned artifacts are refused", "[signing]") {
  const KeyPair signer = GenerateKeyPair("intruder");
  const KeyPair trusted = GenerateKeyPair("release");
  const std::string artifact = FakeArtifact();
  const std::string signed_bytes = SignArtifactBytes(artifact, signer);

  CHECK_THROWS_WITH(
      OpenArtifactEnvelope(signed_bytes, {trusted.public_part()}, "model.kiln"),
      Catch::Contains("'model.kiln' is signed by intruder (" + signer.public_part().fingerprint() +
                      "), which is not among the trusted keys: release (" + trusted.public_part().fingerprint() + ")"));
  // The same name on another key is not trusted: trust compares keys, not names.
  PublicKey same_name = trusted.public_part();
  same_name.name = "intruder";
  CHECK_THROWS_WITH(OpenArtifactEnvelope(signed_bytes, {same_name}, "model.kiln"),
                    Catch::Contains("not among the trusted keys"));

  CHECK_THROWS_WITH(OpenArtifactEnvelope(artifact, {trusted.public_part(), signer.public_part()}, "model.kiln"),
                    Catch::Contains("'model.kiln' is not signed; this runtime requires artifacts signed by one of: "
                                    "release (" +
                                    trusted.public_part().fingerprint() + "), intruder (" +
                                    signer.public_part().fingerprint() + ")"));
  const VerifiedArtifact unsigned_open = OpenArtifactEnvelope(artifact, {}, "model.kiln");
  CHECK(unsigned_open.artifact_bytes.data() == artifact.data());
  CHECK(unsigned_open.artifact_bytes.size() == artifact.size());
  CHECK_FALSE(unsigned_open.signature.is_signed);
  CHECK_FALSE(DescribeSignature(artifact).is_signed);

  CHECK_THROWS_WITH(OpenArtifactEnvelope("garbage bytes", {}, "junk.bin"),
                    Catch::Contains("'junk.bin' is not a kiln artifact"));
  CHECK_THROWS_WITH(OpenArtifactEnvelope("", {}, "empty.kiln"), Catch::Contains("'empty.kiln' is not a kiln artifact"));
}

TEST_CASE("every flipped byte of a signed envelope is refused", "[signing]") {
  const KeyPair key_pair = GenerateKeyPair("release");
  const std::string artifact = FakeArtifact(4000);
  const std::string signed_bytes = SignArtifactBytes(artifact, key_pair);
  const size_t header_size = kSignatureEnvelopeFixedBytes + key_pair.name.size();
  const std::vector<PublicKey> trusted{key_pair.public_part()};

  std::vector<size_t> positions;
  for (size_t i = 0; i < header_size + 16; ++i) positions.push_back(i);  // header, name, artifact header
  for (size_t i = header_size + 16; i < signed_bytes.size(); i += 97) positions.push_back(i);  // body sample
  positions.push_back(signed_bytes.size() - 1);
  for (const uint8_t mask : {uint8_t{0x01}, uint8_t{0x80}, uint8_t{0xff}}) {
    for (const size_t i : positions) {
      std::string damaged = signed_bytes;
      damaged[i] = static_cast<char>(damaged[i] ^ mask);
      INFO("byte " << i << " xor " << int{mask});
      CHECK_THROWS_AS(OpenArtifactEnvelope(damaged, trusted, "damaged.kiln"), Error);
      CHECK_THROWS_AS(OpenArtifactEnvelope(damaged, {}, "damaged.kiln"), Error);
      // inspect never crashes: it either throws Error or reports an invalid signature
      // (or, with the magic damaged, no envelope).
      try {
        const SignatureInfo info = DescribeSignature(damaged);
        CHECK_FALSE((info.is_signed && info.signature_valid));
      } catch (const Error&) {
      }
    }
  }

  // Body damage is reported as a signature failure, naming the file.
  std::string damaged = signed_bytes;
  damaged[header_size + 1000] ^= 0x04;
  CHECK_THROWS_WITH(OpenArtifactEnvelope(damaged, {}, "damaged.kiln"),
                    Catch::Contains("'damaged.kiln' has an invalid signature") && Catch::Contains("damaged or forged"));
  const SignatureInfo info = DescribeSignature(damaged);
  CHECK(info.is_signed);
  CHECK_FALSE(info.signature_valid);
  CHECK(info.signer.key == key_pair.public_key);

  // Appended bytes are covered by the signature too.
  CHECK_THROWS_WITH(OpenArtifactEnvelope(signed_bytes + "x", {}, "m"), Catch::Contains("invalid signature"));
}

TEST_CASE("malformed envelopes are refused with clear errors", "[signing]") {
  const KeyPair key_pair = GenerateKeyPair("release");
  const std::string signed_bytes = SignArtifactBytes(FakeArtifact(), key_pair);
  const size_t header_size = kSignatureEnvelopeFixedBytes + key_pair.name.size();

  // Every truncation of the header, and well into the body, is refused.
  for (size_t size = 0; size < header_size + 64; ++size) {
    const std::string truncated = signed_bytes.substr(0, size);
    INFO("truncated to " << size << " bytes");
    CHECK_THROWS_AS(OpenArtifactEnvelope(truncated, {}, "t.kiln"), Error);
    CHECK_THROWS_AS(OpenArtifactEnvelope(truncated, {key_pair.public_part()}, "t.kiln"), Error);
    if (size < 8) {
      CHECK_FALSE(DescribeSignature(truncated).is_signed);  // no magic, no envelope
    } else if (size < header_size + 8) {
      CHECK_THROWS_AS(DescribeSignature(truncated), Error);  // the envelope itself is cut
    } else {
      // The envelope parses; the artifact inside is cut, so the signature fails.
      const SignatureInfo info = DescribeSignature(truncated);
      CHECK(info.is_signed);
      CHECK_FALSE(info.signature_valid);
    }
  }
  CHECK_THROWS_WITH(OpenArtifactEnvelope(signed_bytes.substr(0, 10), {}, "t.kiln"),
                    Catch::Contains("'t.kiln' is a truncated signed artifact") && Catch::Contains("envelope version"));
  CHECK_THROWS_WITH(OpenArtifactEnvelope(signed_bytes.substr(0, 50), {}, "t.kiln"), Catch::Contains("signature"));
  CHECK_THROWS_WITH(OpenArtifactEnvelope(signed_bytes.substr(0, 112), {}, "t.kiln"), Catch::Contains("key name"));
  CHECK_THROWS_WITH(OpenArtifactEnvelope(signed_bytes.substr(0, header_size + 3), {}, "t.kiln"),
                    Catch::Contains("not a kiln artifact"));
  CHECK_THROWS_WITH(OpenArtifactEnvelope(signed_bytes.substr(0, header_size + 30), {}, "t.kiln"),
                    Catch::Contains("invalid signature"));

  std::string version = signed_bytes;
  version[8] = 2;
  CHECK_THROWS_WITH(OpenArtifactEnvelope(version, {}, "v.kiln"),
                    Catch::Contains("'v.kiln' has signature envelope version 2; this runtime reads version 1"));
  CHECK_THROWS_WITH(DescribeSignature(version, "v.kiln"), Catch::Contains("version 2"));

  std::string long_name = signed_bytes;
  long_name[108] = 0;
  long_name[109] = 1;  // 256
  CHECK_THROWS_WITH(OpenArtifactEnvelope(long_name, {}, "n.kiln"),
                    Catch::Contains("signer name of 256 bytes; the limit is 255"));
  long_name[108] = '\xff';
  long_name[109] = '\xff';
  CHECK_THROWS_WITH(OpenArtifactEnvelope(long_name, {}, "n.kiln"), Catch::Contains("65535 bytes"));

  // A control character in the name is refused even though inspect would print it.
  std::string control = signed_bytes;
  control[110] = '\x1b';
  CHECK_THROWS_WITH(DescribeSignature(control, "c.kiln"), Catch::Contains("control character"));
}

TEST_CASE("malformed key files are refused with clear errors", "[signing]") {
  const KeyPair key_pair = GenerateKeyPair("release");
  const std::string secret_hex = Hex(key_pair.secret_key.data(), 64);
  const std::string public_hex = Hex(key_pair.public_key.data(), 32);
  const std::string dir = TempDir();
  const auto public_file = [&](const std::string& text) {
    const std::string path = dir + "/malformed.pub";
    WriteText(path, text);
    return path;
  };
  const auto secret_file = [&](const std::string& text) {
    const std::string path = dir + "/malformed.key";
    WriteText(path, text);
    return path;
  };
  const std::string good_public = "kiln-ed25519-public-v1 " + public_hex + " release\n";
  const std::string good_secret = "kiln-ed25519-secret-v1 " + secret_hex + " release\n";
  REQUIRE(LoadPublicKey(public_file(good_public)).key == key_pair.public_key);
  REQUIRE(LoadSecretKey(secret_file(good_secret)).secret_key == key_pair.secret_key);

  const auto public_fails = [&](const std::string& text, const std::string& message) {
    INFO("public key file: " << text);
    const std::string path = public_file(text);
    CHECK_THROWS_WITH(LoadPublicKey(path), Catch::Contains("'" + path + "'") && Catch::Contains(message));
  };
  const auto secret_fails = [&](const std::string& text, const std::string& message) {
    INFO("secret key file: " << text);
    const std::string path = secret_file(text);
    CHECK_THROWS_WITH(LoadSecretKey(path), Catch::Contains("'" + path + "'") && Catch::Contains(message));
  };

  // The header word.
  public_fails("", "empty");
  public_fails("\n", "does not start with 'kiln-ed25519-public-v1'");
  public_fails("kiln-ed25519-public-v2 " + public_hex + "\n", "does not start with");
  public_fails("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI\n", "does not start with");
  public_fails("kiln-ed25519-public-v1", "key is missing");
  public_fails(good_secret, "this is a secret key file; a public key file (.pub) was expected");
  secret_fails(good_public, "this is a public key file; a secret key file was expected");
  secret_fails("KILN-ED25519-SECRET-V1 " + secret_hex + "\n", "does not start with 'kiln-ed25519-secret-v1'");

  // The hex digits: length and characters.
  public_fails("kiln-ed25519-public-v1 \n", "64 hex digits, found 0");
  public_fails("kiln-ed25519-public-v1  " + public_hex + "\n", "found 0");
  public_fails("kiln-ed25519-public-v1 " + public_hex.substr(2) + "\n", "64 hex digits, found 62");
  public_fails("kiln-ed25519-public-v1 " + public_hex + "00\n", "found 66");
  public_fails("kiln-ed25519-public-v1 " + secret_hex + "\n", "found 128");
  secret_fails("kiln-ed25519-secret-v1 " + public_hex + "\n", "128 hex digits, found 64");
  for (const char bad : {'g', 'x', '-', '\0', '\t', '\xff'}) {
    std::string hex = public_hex;
    hex[17] = bad;
    public_fails("kiln-ed25519-public-v1 " + hex + "\n", "not a hex digit (at hex digit 18)");
    std::string secret = secret_hex;
    secret[100] = bad;
    secret_fails("kiln-ed25519-secret-v1 " + secret + "\n", "not a hex digit (at hex digit 101)");
  }
  // A well-formed but invalid point (all zeros has small order).
  public_fails("kiln-ed25519-public-v1 " + std::string(64, '0') + "\n", "not a valid Ed25519 public key");
  // A secret file whose public half was altered.
  std::string altered = secret_hex;
  altered[127] = altered[127] == '0' ? '1' : '0';
  secret_fails("kiln-ed25519-secret-v1 " + altered + "\n", "public half does not match");
  altered = secret_hex;
  altered[0] = altered[0] == '0' ? '1' : '0';
  secret_fails("kiln-ed25519-secret-v1 " + altered + "\n", "public half does not match");

  // The name.
  public_fails("kiln-ed25519-public-v1 " + public_hex + " \n", "followed by a name");
  public_fails("kiln-ed25519-public-v1 " + public_hex + " " + std::string(256, 'n') + "\n", "256 bytes");
  public_fails("kiln-ed25519-public-v1 " + public_hex + " bad\tname\n", "control character");
  public_fails("kiln-ed25519-public-v1 " + public_hex + " crlf\r\n", "control character");
  CHECK(LoadPublicKey(public_file("kiln-ed25519-public-v1 " + public_hex + " " + std::string(255, 'n'))).name.size() ==
        255);
  CHECK(LoadPublicKey(public_file("kiln-ed25519-public-v1 " + public_hex + " two words")).name == "two words");

  // The end of the line.
  public_fails(good_public + "\n", "after the key line");
  public_fails(good_public + "kiln-ed25519-public-v1 " + public_hex + "\n", "after the key line");
  secret_fails(good_secret + "garbage", "after the key line");

  // Secret material is never echoed in messages.
  try {
    LoadSecretKey(secret_file("kiln-ed25519-secret-v1 " + secret_hex + "zz\n"));
    FAIL("expected an error");
  } catch (const Error& error) {
    CHECK(std::string(error.what()).find(secret_hex.substr(0, 16)) == std::string::npos);
  }
}

TEST_CASE("key files that are not small regular files are refused", "[signing]") {
  const std::string dir = TempDir();
  CHECK_THROWS_WITH(LoadPublicKey(dir + "/missing.pub"),
                    Catch::Contains("cannot open key file '" + dir + "/missing.pub'"));
  CHECK_THROWS_WITH(LoadPublicKey(dir), Catch::Contains("'" + dir + "' is not a regular file"));
  const std::string fifo = dir + "/fifo.pub";
  std::filesystem::remove(fifo);
  REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
  CHECK_THROWS_WITH(LoadPublicKey(fifo), Catch::Contains("not a regular file"));  // and does not block
  CHECK_THROWS_WITH(LoadSecretKey("/dev/null"), Catch::Contains("not a regular file"));
  const std::string big = dir + "/big.pub";
  WriteText(big, std::string(kMaxKeyFileBytes + 1, 'k'));
  CHECK_THROWS_WITH(LoadPublicKey(big), Catch::Contains("too large"));
  // Random bytes never crash the parsers.
  std::string noise;
  for (int i = 0; i < 2000; ++i) noise += static_cast<char>((i * 7919 + 13) & 0xff);
  WriteText(dir + "/noise.pub", noise);
  CHECK_THROWS_AS(LoadPublicKey(dir + "/noise.pub"), Error);
  CHECK_THROWS_AS(LoadSecretKey(dir + "/noise.pub"), Error);
}

TEST_CASE("key files parse from text as from files", "[signing]") {
  const KeyPair key_pair = GenerateKeyPair("text key");
  const std::string dir = std::filesystem::temp_directory_path() / ("kiln_keys_text_" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  SaveKeyPair(dir + "/k", key_pair);
  const PublicKey parsed = ParsePublicKey(ReadFile(dir + "/k.pub"), "k.pub");
  CHECK(parsed.key == key_pair.public_key);
  CHECK(parsed.name == "text key");
  const KeyPair secret = ParseSecretKey(ReadFile(dir + "/k"), "k");
  CHECK(secret.public_key == key_pair.public_key);
  CHECK_THROWS_WITH(ParseSecretKey(ReadFile(dir + "/k.pub"), "k.pub"), Catch::Contains("secret key file 'k.pub'"));
  CHECK_THROWS_WITH(ParsePublicKey("", "empty.pub"), Catch::Contains("public key file 'empty.pub': the file is empty"));
  std::filesystem::remove_all(dir);
}
