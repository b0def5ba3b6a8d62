// IDX files (train/data/idx.h): hand-written files of every element type read exactly,
// plain and gzip-compressed (one member or several, detected by content, not name);
// every malformed file (bad magic, unknown type, truncation at every byte, corrupt gzip,
// dimensions that overflow or disagree with the size) is a kiln::Error naming the file,
// what was expected and what was given. LoadFashionMnist on a small dataset written here.
#include "train/data/idx.h"

#include <unistd.h>
#include <zlib.h>

#include <catch2/catch.hpp>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>

#include "runtime/error.h"

using namespace kiln;

namespace {

// An IDX file: the magic 0x0000TTNN, the dimensions big-endian, then `payload`.
std::string IdxBytes(uint8_t type, const std::vector<uint32_t>& dims, const std::string& payload) {
  std::string bytes = {0, 0, static_cast<char>(type), static_cast<char>(dims.size())};
  for (const uint32_t d : dims) {
    for (int shift = 24; shift >= 0; shift -= 8) bytes += static_cast<char>((d >> shift) & 0xFF);
  }
  return bytes + payload;
}

std::string Bytes(std::initializer_list<int> values) {
  std::string bytes;
  for (const int v : values) bytes += static_cast<char>(v);
  return bytes;
}

// gzip through zlib (windowBits 15 + 16 writes a gzip header and trailer).
std::string Gzip(const std::string& bytes) {
  z_stream stream{};
  REQUIRE(deflateInit2(&stream, Z_BEST_COMPRESSION, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) == Z_OK);
  std::string out(deflateBound(&stream, bytes.size()) + 32, '\0');
  stream.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(bytes.data()));
  stream.avail_in = static_cast<uInt>(bytes.size());
  stream.next_out = reinterpret_cast<Bytef*>(out.data());
  stream.avail_out = static_cast<uInt>(out.size());
  REQUIRE(deflate(&stream, Z_FINISH) == Z_STREAM_END);
  out.resize(stream.total_out);
  deflateEnd(&stream);
  return out;
}

std::string TempDir(const std::string& name) {
  const char* root = std::getenv("TEST_TMPDIR");
  const auto dir = std::filesystem::path(root ? root : std::filesystem::temp_directory_path().string()) /
                   ("kiln_idx_test_" + std::to_string(::getpid())) / name;
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir.string();
}

void WriteBytes(const std::string& path, const std::string& bytes) {
  std::ofstream file(path, std::ios::binary | std::ios::trunc);
  file.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  REQUIRE(file.good());
}

std::string ParseError(const std::string& bytes, const std::string& source = "f.idx") {
  try {
    ParseIdx(bytes, source);
  } catch (const Error& e) {
    return e.what();
  }
  return "parsed";
}

// The message names the file and says what was expected and what was given.
void CheckError(const std::string& bytes, const std::string& fragment) {
  const std::string message = ParseError(bytes);
  INFO(message);
  CHECK(message.starts_with("f.idx"));
  CHECK(message.find("expected") != std::string::npos);
  CHECK(message.find("given") != std::string::npos);
  CHECK(message.find(fragment) != std::string::npos);
}

// A small uint8 image file: 2 images of 2x3.
const std::string kImages = IdxBytes(0x08, {2, 2, 3}, Bytes({0, 1, 2, 3, 4, 255, 10, 20, 30, 40, 50, 60}));

}  // namespace

TEST_CASE("uint8 labels and images read as uint8 tensors", "[idx]") {
  const Tensor labels = ParseIdx(IdxBytes(0x08, {5}, Bytes({7, 2, 1, 0, 9})));
  CHECK(labels.dtype() == DType::kUInt8);
  CHECK(labels.shape() == Shape{5});
  CHECK(labels.ToDoubles() == std::vector<double>{7, 2, 1, 0, 9});

  const Tensor images = ParseIdx(kImages);
  CHECK(images.dtype() == DType::kUInt8);
  CHECK(images.shape() == Shape{2, 2, 3});
  CHECK(images.ToDoubles() == std::vector<double>{0, 1, 2, 3, 4, 255, 10, 20, 30, 40, 50, 60});
}

TEST_CASE("every element type reads big-endian values exactly", "[idx]") {
  SECTION("int8") {
    const Tensor t = ParseIdx(IdxBytes(0x09, {3}, Bytes({0x7F, 0x80, 0xFF})));
    CHECK(t.dtype() == DType::kInt8);
    CHECK(t.ToDoubles() == std::vector<double>{127, -128, -1});
  }
  SECTION("int16") {
    const Tensor t = ParseIdx(IdxBytes(0x0B, {2}, Bytes({0x01, 0x02, 0xFF, 0xFE})));
    CHECK(t.dtype() == DType::kInt16);
    CHECK(t.ToDoubles() == std::vector<double>{258, -2});
  }
  SECTION("int32") {
    const Tensor t = ParseIdx(IdxBytes(0x0C, {1, 2}, Bytes({0x00, 0x01, 0x00, 0x00, 0x80, 0x00, 0x00, 0x00})));
    CHECK(t.dtype() == DType::kInt32);
    CHECK(t.shape() == Shape{1, 2});
    CHECK(t.ToDoubles() == std::vector<double>{65536, -2147483648.0});
  }
  SECTION("float32") {
    const Tensor t = ParseIdx(IdxBytes(0x0D, {2}, Bytes({0x3F, 0xC0, 0x00, 0x00, 0xC0, 0x49, 0x0F, 0xDB})));
    CHECK(t.dtype() == DType::kFloat32);
    CHECK(t.ToDoubles() == std::vector<double>{1.5, static_cast<double>(-3.14159274101257324f)});
  }
  SECTION("float64") {
    const Tensor t = ParseIdx(IdxBytes(0x0E, {1}, Bytes({0x40, 0x09, 0x21, 0xFB, 0x54, 0x44, 0x2D, 0x18})));
    CHECK(t.dtype() == DType::kFloat64);
    CHECK(t.ToDoubles() == std::vector<double>{3.141592653589793});
  }
  SECTION("zero dimensions: one element; a zero dimension: none") {
    CHECK(ParseIdx(IdxBytes(0x08, {}, Bytes({42}))).ToDoubles() == std::vector<double>{42});
    const Tensor empty = ParseIdx(IdxBytes(0x0C, {0, 28}, ""));
    CHECK(empty.shape() == Shape{0, 28});
    CHECK(empty.size() == 0);
  }
}

TEST_CASE("gzip is recognized by content: one member, several, any file name", "[idx]") {
  const Tensor plain = ParseIdx(kImages);
  CHECK(ParseIdx(Gzip(kImages)).BitwiseEquals(plain));
  // gunzip reads concatenated members as one stream; so does ParseIdx.
  CHECK(ParseIdx(Gzip(kImages.substr(0, 7)) + Gzip(kImages.substr(7))).BitwiseEquals(plain));

  const std::string dir = TempDir("names");
  WriteBytes(dir + "/compressed.idx", Gzip(kImages));  // no .gz, still inflated
  WriteBytes(dir + "/plain.gz", kImages);              // .gz, still read as it is
  CHECK(LoadIdx(dir + "/compressed.idx").BitwiseEquals(plain));
  CHECK(LoadIdx(dir + "/plain.gz").BitwiseEquals(plain));

  // A larger file: many deflate blocks, inflated in pieces.
  std::string payload(3 * 100 * 1000, '\0');
  for (size_t i = 0; i < payload.size(); ++i) payload[i] = static_cast<char>((i * 7919) % 251);
  const std::string big = IdxBytes(0x08, {3, 100, 1000}, payload);
  CHECK(ParseIdx(Gzip(big)).BitwiseEquals(ParseIdx(big)));
}

TEST_CASE("a bad magic number or element type is refused naming both", "[idx]") {
  CheckError(Bytes({0x12, 0x34, 0x08, 0x01, 0, 0, 0, 0}), "given 0x12340801");
  CheckError(Bytes({0x00, 0x00, 0x0A, 0x01, 0, 0, 0, 0}), "given 0x00000A01");
  CheckError(Bytes({0x00, 0x00, 0x07, 0x01, 0, 0, 0, 0}), "given 0x00000701");
  CheckError("P5\n28 28\n255\n", "0x00000803");  // not an IDX file at all
}

TEST_CASE("sizes that disagree with the dimensions are refused", "[idx]") {
  CheckError("", "the magic number (4 bytes at offset 0), given 0 bytes");
  CheckError(IdxBytes(0x08, {5}, Bytes({1, 2, 3})),
             "5 bytes of data (uint8 dimensions (5)) after the 8-byte header, given 3");
  CheckError(IdxBytes(0x08, {3}, Bytes({1, 2, 3, 4, 5})), "2 bytes more than the dimensions say");
  CheckError(IdxBytes(0x0C, {2}, Bytes({0, 0, 0, 1, 0, 0, 0})),
             "8 bytes of data (int32 dimensions (2)) after the 8-byte header, given 7");
  // Dimensions whose element count overflows 64 bits.
  CheckError(IdxBytes(0x0E, {0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF}, ""), "(4294967295,4294967295,4294967295)");
  // Within kiln's limits but far beyond the file: refused before allocating.
  CheckError(IdxBytes(0x0D, {60000, 1000, 1000}, Bytes({1, 2, 3, 4})), "expected 240000000000 bytes of data");
  CheckError(Gzip(IdxBytes(0x0D, {60000, 1000, 1000}, Bytes({1, 2, 3, 4}))), "compressed bytes left can inflate to");
}

TEST_CASE("a file truncated at any byte is refused, plain or gzip", "[idx]") {
  for (const bool compressed : {false, true}) {
    const std::string file = compressed ? Gzip(kImages) : kImages;
    for (size_t length = 0; length < file.size(); ++length) {
      INFO((compressed ? "gzip" : "plain") << ", first " << length << " of " << file.size() << " bytes");
      const std::string message = ParseError(file.substr(0, length));
      INFO(message);
      CHECK(message.starts_with("f.idx"));
      CHECK(message.find("expected") != std::string::npos);
      CHECK(message.find("given") != std::string::npos);
    }
  }
}

TEST_CASE("corrupt gzip data is refused, never misread", "[idx]") {
  const std::string compressed = Gzip(kImages);
  const Tensor expected = ParseIdx(kImages);
  int refused = 0;
  for (size_t i = 0; i < compressed.size(); ++i) {
    for (const int flip : {0x01, 0x80, 0xFF}) {
      std::string damaged = compressed;
      damaged[i] = static_cast<char>(damaged[i] ^ flip);
      INFO("byte " << i << " ^ " << flip);
      std::optional<Tensor> parsed;
      try {
        parsed = ParseIdx(damaged, "f.idx");
      } catch (const Error& e) {
        CHECK(std::string(e.what()).starts_with("f.idx"));
        ++refused;
      }
      // Only fields the CRC does not cover (a timestamp, the OS byte) may change unnoticed.
      if (parsed) CHECK(parsed->BitwiseEquals(expected));
    }
  }
  CHECK(refused > static_cast<int>(compressed.size()));
  // Bytes after the last member that are not another member.
  CheckError(compressed + "garbage", "corrupt");
  CheckError(Bytes({0x1F, 0x8B}) + std::string(20, 'x'), "corrupt");
}

TEST_CASE("LoadFashionMnist reads a split as float32 images in [0, 1] and labels", "[idx]") {
  const std::string dir = TempDir("fashion");
  // Images 4x5 (the function takes any size; Fashion-MNIST's are 28x28).
  std::string pixels;
  for (int i = 0; i < 3 * 4 * 5; ++i) pixels += static_cast<char>(i == 0 ? 255 : i);
  WriteBytes(dir + "/train-images-idx3-ubyte.gz", Gzip(IdxBytes(0x08, {3, 4, 5}, pixels)));
  WriteBytes(dir + "/train-labels-idx1-ubyte", IdxBytes(0x08, {3}, Bytes({9, 0, 4})));

  const ImageClassificationSplit split = LoadFashionMnist(dir, "train");
  CHECK(split.images.dtype() == DType::kFloat32);
  CHECK(split.images.shape() == Shape{3, 1, 4, 5});
  CHECK(split.images.GetDouble(0) == 1.0);
  CHECK(split.images.GetDouble(1) == static_cast<double>(1.0f / 255.0f));
  CHECK(split.images.GetDouble(59) == static_cast<double>(59.0f / 255.0f));
  CHECK(split.labels.dtype() == DType::kFloat32);
  CHECK(split.labels.ToDoubles() == std::vector<double>{9, 0, 4});

  const auto error_of = [&](const std::string& split_name) {
    try {
      LoadFashionMnist(dir, split_name);
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("loaded");
  };
  CHECK(error_of("test").find("expected the split \"train\" or \"t10k\", given \"test\"") != std::string::npos);
  const std::string missing = error_of("t10k");
  CHECK(missing.find("t10k-images-idx3-ubyte' or '") != std::string::npos);
  CHECK(missing.find("t10k-images-idx3-ubyte.gz', given neither") != std::string::npos);

  WriteBytes(dir + "/t10k-images-idx3-ubyte", IdxBytes(0x08, {2, 2, 2}, std::string(8, '\1')));
  WriteBytes(dir + "/t10k-labels-idx1-ubyte", IdxBytes(0x08, {3}, Bytes({1, 2, 3})));
  CHECK(error_of("t10k").find("expected as many labels as images (2") != std::string::npos);
  WriteBytes(dir + "/t10k-labels-idx1-ubyte", IdxBytes(0x0C, {2}, std::string(8, '\0')));
  CHECK(error_of("t10k").find("expected uint8 labels (N), given int32 (2)") != std::string::npos);
}

TEST_CASE("Debian's Fashion-MNIST files, where installed", "[idx][real]") {
  if (!std::filesystem::exists(std::string(kDebianFashionMnistDir) + "/t10k-images-idx3-ubyte.gz")) {
    WARN("SKIPPED: no Fashion-MNIST in " << kDebianFashionMnistDir << " (apt-get install dataset-fashion-mnist)");
    return;
  }
  const ImageClassificationSplit split = LoadFashionMnist(kDebianFashionMnistDir, "t10k");
  CHECK(split.images.shape() == Shape{10000, 1, 28, 28});
  CHECK(split.labels.shape() == Shape{10000});
  std::vector<int> per_class(10, 0);
  for (const double label : split.labels.ToDoubles()) {
    REQUIRE(label >= 0);
    REQUIRE(label <= 9);
    ++per_class[static_cast<int>(label)];
  }
  for (const int count : per_class) CHECK(count == 1000);  // the test split is balanced
}
