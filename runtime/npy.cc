#include "runtime/npy.h"

#include <bit>
#include <cstring>
#include <functional>
#include <optional>

#include "runtime/error.h"
#include "runtime/file_util.h"

namespace kiln {
namespace {

static_assert(std::endian::native == std::endian::little, "kiln assumes a little-endian host");

constexpr char kMagic[] = "\x93NUMPY";

struct DescrMap {
  const char* descr;
  DType dtype;
};
constexpr DescrMap kDescrs[] = {
    {"<f4", DType::kFloat32}, {"<f8", DType::kFloat64}, {"<f2", DType::kFloat16}, {"|u1", DType::kUInt8},
    {"<i4", DType::kInt32},   {"|i1", DType::kInt8},    {"<i8", DType::kInt64},   {"|b1", DType::kBool},
    {"<i2", DType::kInt16},   {"<u2", DType::kUInt16},  {"<u4", DType::kUInt32},  {"<u8", DType::kUInt64},
};

std::string DescrOf(DType dtype) {
  for (const auto& d : kDescrs) {
    if (d.dtype == dtype) return d.descr;
  }
  // NumPy has no bfloat16: ml_dtypes' arrays save as raw '<V2' bytes, which read back as
  // void, so no descr says bfloat16.
  throw Error("dtype " + std::string(DTypeName(dtype)) +
              " cannot be written to .npy (NumPy has no such type; cast to float32 first)");
}

// NumPy refuses headers longer than this unless told otherwise (numpy.lib.format's
// max_header_size); no legitimate header comes near it.
constexpr size_t kMaxHeaderBytes = 10000;

// The header is a Python dict literal: {'descr': '<f4', 'fortran_order': False,
// 'shape': (2, 3), }. A small scanner over exactly that grammar: bounded, no regex, no
// recursion, and every failure is an Error naming what was expected.
class HeaderScanner {
 public:
  HeaderScanner(std::string_view text, std::function<Error(const std::string&)> fail)
      : text_(text), fail_(std::move(fail)) {}

  void SkipSpace() {
    while (pos_ < text_.size() && (text_[pos_] == ' ' || text_[pos_] == '\t' || text_[pos_] == '\n')) ++pos_;
  }
  bool Consume(char c) {
    SkipSpace();
    if (pos_ < text_.size() && text_[pos_] == c) {
      ++pos_;
      return true;
    }
    return false;
  }
  void Expect(char c, const char* where) {
    if (!Consume(c)) throw fail_(std::string("expected '") + c + "' " + where + " at byte " + std::to_string(pos_));
  }
  // A quoted string ('...' or "..."), without escapes (NumPy writes none here).
  std::string String(const char* what) {
    SkipSpace();
    if (pos_ >= text_.size() || (text_[pos_] != '\'' && text_[pos_] != '"')) {
      throw fail_(std::string("expected a quoted ") + what + " at byte " + std::to_string(pos_));
    }
    const char quote = text_[pos_++];
    const size_t close = text_.find(quote, pos_);
    if (close == std::string_view::npos) throw fail_(std::string("unterminated ") + what);
    std::string value(text_.substr(pos_, close - pos_));
    pos_ = close + 1;
    return value;
  }
  bool Bool(const char* key) {
    SkipSpace();
    for (const auto& [word, value] : {std::pair{std::string_view("True"), true}, {"False", false}}) {
      if (text_.substr(pos_, word.size()) == word) {
        pos_ += word.size();
        return value;
      }
    }
    throw fail_(std::string("'") + key + "' must be True or False");
  }
  // (d0, d1, ...), with Python 2's optional 'L' suffix.
  Shape Tuple() {
    Expect('(', "to open 'shape'");
    Shape shape;
    while (!Consume(')')) {
      SkipSpace();
      int64_t dim = 0;
      size_t digits = 0;
      while (pos_ < text_.size() && text_[pos_] >= '0' && text_[pos_] <= '9') {
        if (++digits > 18) throw fail_("dimension " + std::to_string(shape.size()) + " of 'shape' is too large");
        dim = dim * 10 + (text_[pos_++] - '0');
      }
      if (digits == 0) throw fail_("'shape' must be a tuple of non-negative integers");
      if (pos_ < text_.size() && text_[pos_] == 'L') ++pos_;
      shape.push_back(dim);
      if (!Consume(',')) {
        Expect(')', "to close 'shape'");
        break;
      }
    }
    return shape;
  }
  bool AtEnd() {
    SkipSpace();
    return pos_ == text_.size();
  }

 private:
  std::string_view text_;
  size_t pos_ = 0;
  std::function<Error(const std::string&)> fail_;
};

struct NpyHeader {
  std::string descr;
  bool fortran_order = false;
  Shape shape;
};

NpyHeader ParseHeader(std::string_view text, const std::function<Error(const std::string&)>& fail) {
  HeaderScanner scan(text, fail);
  NpyHeader header;
  bool have_descr = false, have_order = false, have_shape = false;
  scan.Expect('{', "to open the header");
  while (!scan.Consume('}')) {
    const std::string key = scan.String("key");
    scan.Expect(':', "after a key");
    bool* seen = nullptr;
    if (key == "descr") {
      header.descr = scan.String("'descr'");
      seen = &have_descr;
    } else if (key == "fortran_order") {
      header.fortran_order = scan.Bool("fortran_order");
      seen = &have_order;
    } else if (key == "shape") {
      header.shape = scan.Tuple();
      seen = &have_shape;
    } else {
      throw fail("unexpected key '" + key.substr(0, 64) + "' in header (expected descr, fortran_order, shape)");
    }
    if (*seen) throw fail("key '" + key + "' appears twice in header");
    *seen = true;
    if (!scan.Consume(',')) {
      scan.Expect('}', "to close the header");
      break;
    }
  }
  if (!scan.AtEnd()) throw fail("unexpected bytes after the header's closing '}'");
  if (!have_descr) throw fail("no 'descr' in header");
  if (!have_order) throw fail("no 'fortran_order' in header");
  if (!have_shape) throw fail("no 'shape' in header");
  return header;
}

}  // namespace

Tensor ParseNpy(std::string_view bytes, const std::string& source) {
  const auto fail = [&](const std::string& why) { return Error("'" + source + "' is not a valid .npy file: " + why); };
  if (bytes.size() < 10 || bytes.substr(0, 6) != std::string_view(kMagic, 6)) throw fail("bad magic");
  const int major = static_cast<unsigned char>(bytes[6]);
  size_t header_len = 0;
  size_t offset = 0;
  if (major == 1) {
    header_len =
        static_cast<unsigned char>(bytes[8]) | (static_cast<size_t>(static_cast<unsigned char>(bytes[9])) << 8);
    offset = 10;
  } else if (major == 2 || major == 3) {
    if (bytes.size() < 12) throw fail("truncated header");
    header_len = 0;
    for (int i = 0; i < 4; ++i) header_len |= static_cast<size_t>(static_cast<unsigned char>(bytes[8 + i])) << (8 * i);
    offset = 12;
  } else {
    throw fail("format version " + std::to_string(major) + " is not supported (expected 1, 2 or 3)");
  }
  if (header_len > kMaxHeaderBytes) {
    throw fail("header is " + std::to_string(header_len) + " bytes, more than the " + std::to_string(kMaxHeaderBytes) +
               " NumPy reads by default");
  }
  if (header_len > bytes.size() - offset) throw fail("truncated header");
  NpyHeader header = ParseHeader(bytes.substr(offset, header_len), fail);
  offset += header_len;

  std::string descr = header.descr;
  if (descr.size() == 3 && descr[0] == '=') descr[0] = '<';
  if (descr == "<u1") descr = "|u1";
  if (descr == "<i1") descr = "|i1";
  if (descr == "<b1") descr = "|b1";
  std::optional<DType> dtype;
  for (const auto& d : kDescrs) {
    if (descr == d.descr) dtype = d.dtype;
  }
  if (!dtype) {
    throw Error("'" + source + "': dtype '" + Abbreviate(header.descr) +
                "' is not supported (expected one of float32, float64, float16, uint8, int8, int16, uint16, int32, "
                "uint32, int64, uint64, bool, little-endian)");
  }
  if (header.fortran_order) {
    throw Error("'" + source + "': Fortran-order arrays are not supported (save in C order)");
  }
  const Shape& shape = header.shape;
  int64_t count = 0;
  size_t expected = 0;
  try {
    count = NumElements(shape);
    expected = CheckedByteSize(shape, *dtype);
  } catch (const Error& e) {
    throw fail(e.what());
  }
  if (bytes.size() - offset != expected) {
    throw fail("data is " + std::to_string(bytes.size() - offset) + " bytes, expected " + std::to_string(expected) +
               " for shape " + ShapeToString(shape));
  }
  Tensor tensor(shape, *dtype);
  if (expected) std::memcpy(tensor.data(), bytes.data() + offset, expected);
  if (*dtype == DType::kBool) {  // normalize to 0/1
    auto* data = tensor.data_as<uint8_t>();
    for (int64_t i = 0; i < count; ++i) data[i] = data[i] ? 1 : 0;
  }
  return tensor;
}

std::string SerializeNpy(const Tensor& tensor) {
  std::string shape = "(";
  for (size_t i = 0; i < tensor.shape().size(); ++i) {
    shape += std::to_string(tensor.shape()[i]) +
             (tensor.shape().size() == 1 ? "," : (i + 1 < tensor.shape().size() ? ", " : ""));
  }
  shape += ")";
  std::string header = "{'descr': '" + DescrOf(tensor.dtype()) + "', 'fortran_order': False, 'shape': " + shape + ", }";
  // Pad so that the data starts on a 64-byte boundary; the header ends with '\n'.
  const size_t unpadded = 10 + header.size() + 1;
  header.append((64 - unpadded % 64) % 64, ' ');
  header += '\n';
  std::string out(kMagic, 6);
  out += '\x01';
  out += '\x00';
  out += static_cast<char>(header.size() & 0xff);
  out += static_cast<char>((header.size() >> 8) & 0xff);
  out += header;
  out.append(static_cast<const char*>(tensor.data()), tensor.nbytes());
  return out;
}

Tensor LoadNpy(const std::string& path) {
  return ParseNpy(ReadFile(path), path);
}

void SaveNpy(const std::string& path, const Tensor& tensor) {
  WriteFileAtomic(path, SerializeNpy(tensor));
}

}  // namespace kiln
