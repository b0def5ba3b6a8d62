#include "runtime/npy.h"

#include <bit>
#include <cstring>
#include <regex>

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
};

std::string DescrOf(DType dtype) {
  for (const auto& d : kDescrs) {
    if (d.dtype == dtype) return d.descr;
  }
  throw Error("dtype " + std::string(DTypeName(dtype)) + " cannot be written to .npy");
}

}  // namespace

Tensor ParseNpy(std::string_view bytes, const std::string& source) {
  const auto fail = [&](const std::string& why) { return Error("'" + source + "' is not a valid .npy file: " + why); };
  if (bytes.size() < 10 || bytes.substr(0, 6) != std::string_view(kMagic, 6)) throw fail("bad magic");
  const int major = static_cast<unsigned char>(bytes[6]);
  size_t header_len = 0;
  size_t offset = 0;
  if (major == 1) {
    header_len = static_cast<unsigned char>(bytes[8]) | (static_cast<size_t>(static_cast<unsigned char>(bytes[9])) << 8);
    offset = 10;
  } else if (major == 2 || major == 3) {
    if (bytes.size() < 12) throw fail("truncated header");
    header_len = 0;
    for (int i = 0; i < 4; ++i) header_len |= static_cast<size_t>(static_cast<unsigned char>(bytes[8 + i])) << (8 * i);
    offset = 12;
  } else {
    throw fail("format version " + std::to_string(major) + " is not supported (expected 1, 2 or 3)");
  }
  if (header_len > bytes.size() - offset) throw fail("truncated header");
  const std::string header(bytes.substr(offset, header_len));
  offset += header_len;

  std::smatch match;
  static const std::regex descr_re(R"('descr'\s*:\s*'([^']*)')");
  static const std::regex fortran_re(R"('fortran_order'\s*:\s*(True|False))");
  static const std::regex shape_re(R"('shape'\s*:\s*\(([^)]*)\))");
  if (!std::regex_search(header, match, descr_re)) throw fail("no 'descr' in header");
  std::string descr = match[1];
  if (descr.size() == 3 && descr[0] == '=') descr[0] = '<';
  if (descr == "<u1") descr = "|u1";
  if (descr == "<i1") descr = "|i1";
  if (descr == "<b1") descr = "|b1";
  std::optional<DType> dtype;
  for (const auto& d : kDescrs) {
    if (descr == d.descr) dtype = d.dtype;
  }
  if (!dtype) {
    throw Error("'" + source + "': dtype '" + std::string(match[1]) +
                "' is not supported (expected one of float32, float64, float16, uint8, int8, int32, int64, bool, "
                "little-endian)");
  }
  if (!std::regex_search(header, match, fortran_re)) throw fail("no 'fortran_order' in header");
  if (match[1] == "True") throw Error("'" + source + "': Fortran-order arrays are not supported (save in C order)");
  if (!std::regex_search(header, match, shape_re)) throw fail("no 'shape' in header");
  Shape shape;
  const std::string dims = match[1];
  static const std::regex dim_re(R"(\s*(\d+)L?\s*(,|$))");
  size_t consumed = 0;
  for (auto it = std::sregex_iterator(dims.begin(), dims.end(), dim_re); it != std::sregex_iterator(); ++it) {
    if (static_cast<size_t>(it->position()) != consumed) throw fail("bad shape '(" + dims + ")'");
    const std::string digits = (*it)[1];
    if (digits.size() > 15) throw fail("dimension too large");
    shape.push_back(std::stoll(digits));
    consumed = it->position() + it->length();
  }
  if (dims.find_first_not_of(" ,", consumed) != std::string::npos) throw fail("bad shape '(" + dims + ")'");

  const int64_t count = NumElements(shape);
  const size_t expected = static_cast<size_t>(count) * DTypeSize(*dtype);
  if (count > 0 && expected / static_cast<size_t>(count) != DTypeSize(*dtype)) throw fail("too large");
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
    shape += std::to_string(tensor.shape()[i]) + (tensor.shape().size() == 1 ? "," : (i + 1 < tensor.shape().size() ? ", " : ""));
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

Tensor LoadNpy(const std::string& path) { return ParseNpy(ReadFile(path), path); }

void SaveNpy(const std::string& path, const Tensor& tensor) { WriteFileAtomic(path, SerializeNpy(tensor)); }

}  // namespace kiln
