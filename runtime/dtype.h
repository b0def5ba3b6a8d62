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
  kInt16 = 8,
  kUInt16 = 9,
  kUInt32 = 10,
  kUInt64 = 11,
  kBFloat16 = 12,
};

// The number of DType codes: every code in [0, kNumDTypes) is a DType.
inline constexpr int64_t kNumDTypes = 13;

// Size of one element in bytes.
size_t DTypeSize(DType dtype);
// MXNet's spelling: "float32", "float64", "float16", "uint8", "int32", "int8", "int64", "bool",
// "int16", "uint16", "uint32", "uint64", "bfloat16".
std::string_view DTypeName(DType dtype);
// Parses MXNet's spelling; nullopt for anything else.
std::optional<DType> ParseDType(std::string_view name);
// True for the code of a defined DType.
bool IsValidDTypeCode(int64_t code);
// Floating point: float16, bfloat16, float32, float64.
bool IsFloat(DType dtype);
// Unsigned integers (uint8 to uint64); bool is neither signed nor unsigned here.
bool IsUnsigned(DType dtype);

// IEEE 754 half precision conversions (round to nearest even).
uint16_t FloatToHalf(float value);
float HalfToFloat(uint16_t bits);
// bfloat16 (the upper half of a float32) conversions: round to nearest even; NaN stays a
// quiet NaN of the same sign.
uint16_t FloatToBFloat16(float value);
float BFloat16ToFloat(uint16_t bits);

}  // namespace kiln
