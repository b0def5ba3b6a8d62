#include "train/data/idx.h"

#include <zlib.h>

#include <algorithm>
#include <array>
#include <climits>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <utility>
#include <vector>

#include "runtime/error.h"
#include "runtime/file_util.h"

namespace kiln {
namespace {

constexpr size_t kMagicBytes = 4;

struct ElementType {
  uint8_t code;
  DType dtype;
};
constexpr std::array<ElementType, 6> kElementTypes = {{
    {0x08, DType::kUInt8},
    {0x09, DType::kInt8},
    {0x0B, DType::kInt16},
    {0x0C, DType::kInt32},
    {0x0D, DType::kFloat32},
    {0x0E, DType::kFloat64},
}};

std::optional<DType> DTypeOfCode(uint8_t code) {
  for (const auto& type : kElementTypes) {
    if (type.code == code) return type.dtype;
  }
  return std::nullopt;
}

std::string Hex(uint32_t value, int digits) {
  static constexpr char kDigits[] = "0123456789ABCDEF";
  std::string text = "0x";
  for (int i = digits - 1; i >= 0; --i) text += kDigits[(value >> (4 * i)) & 0xF];
  return text;
}

uint32_t BigEndian32(const unsigned char* bytes) {
  return uint32_t{bytes[0]} << 24 | uint32_t{bytes[1]} << 16 | uint32_t{bytes[2]} << 8 | uint32_t{bytes[3]};
}

bool IsGzip(std::string_view bytes) {
  return bytes.size() >= 2 && static_cast<unsigned char>(bytes[0]) == 0x1F &&
         static_cast<unsigned char>(bytes[1]) == 0x8B;
}

// The bytes of a file in order: as they are, or inflated as they are asked for, so that
// a bad header is reported before anything is allocated for the data.
class ByteStream {
 public:
  virtual ~ByteStream() = default;
  // Copies up to `size` bytes to `out`; fewer only at the end of the data.
  virtual size_t Read(char* out, size_t size) = 0;
  // The most bytes the rest of the stream could hold (a bound, exact for plain bytes),
  // and that bound in words.
  virtual uint64_t MaxRemaining() const = 0;
  virtual std::string DescribeRemaining() const = 0;
};

class PlainStream final : public ByteStream {
 public:
  explicit PlainStream(std::string_view bytes) : rest_(bytes) {}
  size_t Read(char* out, size_t size) override {
    const size_t n = std::min(size, rest_.size());
    std::copy_n(rest_.data(), n, out);
    rest_.remove_prefix(n);
    return n;
  }
  uint64_t MaxRemaining() const override { return rest_.size(); }
  std::string DescribeRemaining() const override { return std::to_string(rest_.size()); }

 private:
  std::string_view rest_;
};

// gzip through zlib; concatenated members read as one stream, as gunzip reads them.
class GzipStream final : public ByteStream {
 public:
  // Deflate's best case is a 258-byte match in 2 bits: no stream inflates to more than
  // 1032 times its size. The slack covers output zlib holds back between calls.
  static constexpr uint64_t kMaxInflateRatio = 1032;
  static constexpr uint64_t kPendingSlack = 1 << 16;

  GzipStream(std::string_view compressed, std::string source)
      : rest_(compressed), compressed_size_(compressed.size()), source_(std::move(source)) {
    if (inflateInit2(&stream_, 15 + 16) != Z_OK) Fail("zlib could not start inflating");  // 16: gzip only
  }
  ~GzipStream() override { inflateEnd(&stream_); }
  GzipStream(const GzipStream&) = delete;
  GzipStream& operator=(const GzipStream&) = delete;

  size_t Read(char* out, size_t size) override {
    size_t produced = 0;
    while (produced < size && !finished_) {
      if (stream_.avail_in == 0) Feed();
      const auto room = static_cast<uInt>(std::min<size_t>(size - produced, UINT_MAX));
      stream_.next_out = reinterpret_cast<Bytef*>(out + produced);
      stream_.avail_out = room;
      const int status = inflate(&stream_, Z_NO_FLUSH);
      produced += room - stream_.avail_out;
      inflated_ += room - stream_.avail_out;
      if (status == Z_STREAM_END) {
        if (stream_.avail_in == 0 && rest_.empty()) {
          finished_ = true;
        } else if (inflateReset(&stream_) != Z_OK) {
          Fail("zlib could not start the next gzip member");
        }
      } else if (status == Z_BUF_ERROR && stream_.avail_in == 0 && rest_.empty()) {
        Fail("expected a complete gzip stream, given one cut off after " + std::to_string(compressed_size_) +
             " compressed bytes (" + std::to_string(inflated_) + " inflated)");
      } else if (status != Z_OK && status != Z_BUF_ERROR) {
        Fail("expected valid gzip data, given corrupt data (zlib: " +
             std::string(stream_.msg ? stream_.msg : zError(status)) + ")");
      }
    }
    return produced;
  }

  uint64_t MaxRemaining() const override {
    return finished_ ? 0 : (stream_.avail_in + rest_.size()) * kMaxInflateRatio + kPendingSlack;
  }
  std::string DescribeRemaining() const override {
    return "at most " + std::to_string(MaxRemaining()) + " (what the " +
           std::to_string(stream_.avail_in + rest_.size()) + " compressed bytes left can inflate to)";
  }

 private:
  // zlib counts input in 32 bits: hand it the file a piece at a time.
  void Feed() {
    const size_t n = std::min<size_t>(rest_.size(), UINT_MAX);
    stream_.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(rest_.data()));
    stream_.avail_in = static_cast<uInt>(n);
    rest_.remove_prefix(n);
  }
  [[noreturn]] void Fail(const std::string& message) const { throw Error(source_ + ": " + message); }

  z_stream stream_{};
  std::string_view rest_;  // compressed bytes not yet handed to zlib
  size_t compressed_size_;
  uint64_t inflated_ = 0;  // over every member (zlib's total_out restarts with each)
  std::string source_;
  bool finished_ = false;
};

// Reads exactly `size` bytes; `what` names them for the error when the data ends first.
void ReadExactly(ByteStream& stream, char* out, size_t size, uint64_t offset, const std::string& what,
                 const std::string& source) {
  const size_t got = stream.Read(out, size);
  if (got != size) {
    throw Error(source + ": expected " + what + " (" + std::to_string(size) + " bytes at offset " +
                std::to_string(offset) + "), given " + std::to_string(got) + " bytes there (" +
                std::to_string(offset + got) + " in all)");
  }
}

// What is left after the data: counted (without keeping it) for the error message.
uint64_t CountRemaining(ByteStream& stream) {
  std::array<char, 1 << 16> sink;
  uint64_t count = 0;
  while (const size_t n = stream.Read(sink.data(), sink.size())) count += n;
  return count;
}

// IDX stores elements big-endian; kiln's tensors are little-endian.
void SwapToLittleEndian(Tensor& tensor) {
  const size_t width = DTypeSize(tensor.dtype());
  if (width == 1) return;
  auto* bytes = static_cast<unsigned char*>(tensor.data());
  for (size_t offset = 0; offset < tensor.nbytes(); offset += width)
    std::reverse(bytes + offset, bytes + offset + width);
}

Tensor ReadIdx(ByteStream& stream, const std::string& source) {
  unsigned char magic[kMagicBytes];
  ReadExactly(stream, reinterpret_cast<char*>(magic), kMagicBytes, 0, "the magic number", source);
  const uint32_t magic_number = BigEndian32(magic);
  const std::optional<DType> dtype = DTypeOfCode(magic[2]);
  if (magic[0] != 0 || magic[1] != 0 || !dtype) {
    throw Error(source + ": expected an IDX magic number 0x0000TTNN with TT an element type (08 uint8, 09 int8, " +
                "0B int16, 0C int32, 0D float32, 0E float64) and NN the number of dimensions (labels are " +
                "0x00000801, images 0x00000803), given " + Hex(magic_number, 8));
  }
  const size_t ndim = magic[3];

  std::vector<unsigned char> dim_bytes(4 * ndim);
  ReadExactly(stream, reinterpret_cast<char*>(dim_bytes.data()), dim_bytes.size(), kMagicBytes,
              std::to_string(ndim) + " big-endian uint32 dimensions", source);
  Shape shape(ndim);
  for (size_t d = 0; d < ndim; ++d) shape[d] = BigEndian32(&dim_bytes[4 * d]);
  const uint64_t header_bytes = kMagicBytes + dim_bytes.size();

  const std::string described = std::string(DTypeName(*dtype)) + " dimensions " + ShapeToString(shape);
  uint64_t data_bytes = 0;
  try {
    data_bytes = CheckedByteSize(shape, *dtype);
  } catch (const Error& e) {
    throw Error(source + ": expected dimensions of a tensor kiln can hold, given " + described + " (" + e.what() + ")");
  }
  // Checked before allocating: a corrupt header must not ask for a terabyte.
  if (data_bytes > stream.MaxRemaining()) {
    throw Error(source + ": expected " + std::to_string(data_bytes) + " bytes of data (" + described + ") after the " +
                std::to_string(header_bytes) + "-byte header, given " + stream.DescribeRemaining());
  }

  Tensor tensor(shape, *dtype);
  ReadExactly(stream, static_cast<char*>(tensor.data()), data_bytes, header_bytes, "the data of " + described, source);
  if (const uint64_t extra = CountRemaining(stream)) {
    throw Error(source + ": expected " + std::to_string(header_bytes + data_bytes) + " bytes in all (a " +
                std::to_string(header_bytes) + "-byte header and the data of " + described + "), given " +
                std::to_string(header_bytes + data_bytes + extra) + " (" + std::to_string(extra) +
                " bytes more than the dimensions say)");
  }
  SwapToLittleEndian(tensor);
  return tensor;
}

// `dir/name`, else `dir/name.gz`.
std::string FindIdxFile(const std::string& dir, const std::string& name) {
  const std::filesystem::path plain = std::filesystem::path(dir) / name;
  const std::filesystem::path gzipped = std::filesystem::path(dir) / (name + ".gz");
  std::error_code ignored;
  if (std::filesystem::exists(plain, ignored)) return plain.string();
  if (std::filesystem::exists(gzipped, ignored)) return gzipped.string();
  throw Error("LoadFashionMnist: expected '" + plain.string() + "' or '" + gzipped.string() +
              "', given neither (Debian's package dataset-fashion-mnist installs them in " + kDebianFashionMnistDir +
              ")");
}

void CheckIdxTensor(const Tensor& tensor, const std::string& path, int64_t ndim, const std::string& layout) {
  if (tensor.dtype() != DType::kUInt8 || tensor.ndim() != ndim) {
    throw Error("LoadFashionMnist: '" + path + "': expected uint8 " + layout + ", given " +
                std::string(DTypeName(tensor.dtype())) + " " + ShapeToString(tensor.shape()));
  }
}

}  // namespace

Tensor ParseIdx(std::string_view bytes, const std::string& source) {
  if (IsGzip(bytes)) {
    const std::string gzip_source = source + " (gzip-compressed; offsets are after inflating)";
    GzipStream stream(bytes, gzip_source);
    return ReadIdx(stream, gzip_source);
  }
  PlainStream stream(bytes);
  return ReadIdx(stream, source);
}

Tensor LoadIdx(const std::string& path) {
  const std::shared_ptr<const FileBytes> file = FileBytes::Open(path);
  return ParseIdx(file->bytes(), path);
}

ImageClassificationSplit LoadFashionMnist(const std::string& dir, const std::string& split) {
  if (split != "train" && split != "t10k") {
    throw Error("LoadFashionMnist: expected the split \"train\" or \"t10k\", given \"" + Abbreviate(split) + "\"");
  }
  const std::string images_path = FindIdxFile(dir, split + "-images-idx3-ubyte");
  const std::string labels_path = FindIdxFile(dir, split + "-labels-idx1-ubyte");
  const Tensor images = LoadIdx(images_path);
  const Tensor labels = LoadIdx(labels_path);
  CheckIdxTensor(images, images_path, 3, "images (N, rows, cols)");
  CheckIdxTensor(labels, labels_path, 1, "labels (N)");
  if (images.shape()[0] != labels.shape()[0]) {
    throw Error("LoadFashionMnist: expected as many labels as images (" + std::to_string(images.shape()[0]) + " in '" +
                images_path + "'), given " + std::to_string(labels.shape()[0]) + " in '" + labels_path + "'");
  }

  ImageClassificationSplit result;
  const Shape& dims = images.shape();
  result.images = Tensor({dims[0], 1, dims[1], dims[2]}, DType::kFloat32);
  const auto* pixels = images.data_as<uint8_t>();
  float* scaled = result.images.data_as<float>();
  for (int64_t i = 0; i < images.size(); ++i) scaled[i] = static_cast<float>(pixels[i]) / 255.0f;
  result.labels = labels.CastTo(DType::kFloat32);
  return result;
}

}  // namespace kiln
