// Element types. The numeric codes follow MXNet's type flags (mshadow::TypeFlag) so that
// files and attributes written by MXNet map one to one.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace kiln {

enum class DType : int32_t {
  kFloat32 = 0,
  kFloat64 = 1,
  kFloat16 = 2,
  kUInt8 = 3,
  kInt32 = 4,
  kInt8 = 5,
  kInt64 = 6,
  kBool = 7,
};

// Size of one element in bytes.
size_t DTypeSize(DType dtype);
// MXNet's spelling: "float32", "float64", "float16", "uint8", "int32", "int8", "int64", "bool".
std::string_view DTypeName(DType dtype);
// Parses MXNet's spelling; nullopt for anything else.
std::optional<DType> ParseDType(std::string_view name);
// True for the code of a defined DType.
bool IsValidDTypeCode(int64_t code);
bool IsFloat(DType dtype);

// IEEE 754 half precision conversions (round to nearest even).
uint16_t FloatToHalf(float value);
float HalfToFloat(uint16_t bits);

}  // namespace kiln
