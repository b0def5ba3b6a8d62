// IDX files (train/data/idx.h), the format of MNIST and Fashion-MNIST, plain or
// gzip-compressed (recognized by its magic bytes): any bytes parse to a tensor or give a
// kiln::Error that names the file and says what was expected and what was given. A
// tensor that parsed is in one of IDX's element types with at most 255
// dimensions; written back as a plain IDX file it reads back bit for bit, and a plain
// input that parsed is exactly that file (no byte of it ignored).
#include <string>

#include "runtime/error.h"
#include "tests/fuzz/fuzz_targets.h"
#include "train/data/idx.h"

namespace kiln::fuzz {
namespace {

// IDX's element type code for `dtype`, 0 for a dtype IDX does not have.
uint8_t ElementCode(DType dtype) {
  switch (dtype) {
    case DType::kUInt8: return 0x08;
    case DType::kInt8: return 0x09;
    case DType::kInt16: return 0x0B;
    case DType::kInt32: return 0x0C;
    case DType::kFloat32: return 0x0D;
    case DType::kFloat64: return 0x0E;
    default: return 0;
  }
}

void AppendBigEndian32(std::string& out, uint32_t value) {
  for (int shift = 24; shift >= 0; shift -= 8) out += static_cast<char>((value >> shift) & 0xFF);
}

// The plain IDX file of `tensor`: the magic number, the dimensions, the elements big-endian.
std::string WriteIdx(const Tensor& tensor, uint8_t code) {
  std::string out = {0, 0, static_cast<char>(code), static_cast<char>(tensor.ndim())};
  for (const int64_t dim : tensor.shape()) AppendBigEndian32(out, static_cast<uint32_t>(dim));
  const size_t width = DTypeSize(tensor.dtype());
  const auto* bytes = static_cast<const char*>(tensor.data());
  for (size_t offset = 0; offset < tensor.nbytes(); offset += width) {
    for (size_t i = width; i-- > 0;) out += bytes[offset + i];
  }
  return out;
}

}  // namespace

int FuzzIdx(const uint8_t* data, size_t size) {
  const std::string_view bytes = AsText(data, size);
  Tensor tensor;
  try {
    tensor = ParseIdx(bytes, "fuzz.idx");
  } catch (const Error& e) {
    const std::string_view message = e.what();
    FuzzCheck(
        message.starts_with("fuzz.idx") && message.find("expected") != std::string_view::npos &&
            message.find("given") != std::string_view::npos,
        "an IDX error that does not name the file, what was expected and what was given: " + std::string(message));
    return 0;
  }
  const uint8_t code = ElementCode(tensor.dtype());
  FuzzCheck(code != 0, "an IDX file parsed to a " + std::string(DTypeName(tensor.dtype())) + " tensor");
  FuzzCheck(tensor.ndim() <= 255, "an IDX file parsed to a tensor of " + std::to_string(tensor.ndim()) + " dimensions");
  for (const int64_t dim : tensor.shape()) {
    FuzzCheck(dim >= 0 && dim <= 0xFFFFFFFF, "an IDX dimension out of uint32's range: " + std::to_string(dim));
  }
  const std::string written = WriteIdx(tensor, code);
  const bool gzip = size >= 2 && data[0] == 0x1F && data[1] == 0x8B;
  FuzzCheck(gzip || written == bytes, "a plain IDX file parsed to a tensor whose IDX file differs from it");
  const Tensor again = ParseIdx(written, "fuzz.idx (written again)");
  FuzzCheck(again.BitwiseEquals(tensor), "an IDX tensor does not survive writing and parsing again");
  return 0;
}

}  // namespace kiln::fuzz
