#include "runtime/tensor.h"

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>

#include "runtime/error.h"

namespace kiln {

int64_t NumElements(const Shape& shape) {
  int64_t count = 1;
  for (const int64_t dim : shape) {
    if (dim < 0) throw Error("shape " + ShapeToString(shape) + " has a negative dimension");
    if (dim != 0 && count > std::numeric_limits<int64_t>::max() / dim) {
      throw Error("shape " + ShapeToString(shape) + " has too many elements");
    }
    count *= dim;
  }
  return count;
}

uint64_t CheckedByteSize(const Shape& shape, DType dtype) {
  const auto count = static_cast<uint64_t>(NumElements(shape));
  const uint64_t element = DTypeSize(dtype);
  if (count > kMaxTensorBytes / element) {
    throw Error("a " + std::string(DTypeName(dtype)) + " tensor of shape " + ShapeToString(shape) + " (" +
                std::to_string(count) + " elements) exceeds kiln's limit of " + std::to_string(kMaxTensorBytes) +
                " bytes");
  }
  return count * element;
}

std::string ShapeToString(const Shape& shape) {
  std::string text = "(";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i) text += ",";
    text += std::to_string(shape[i]);
  }
  return text + ")";
}

std::vector<int64_t> Strides(const Shape& shape) {
  std::vector<int64_t> strides(shape.size(), 1);
  for (int64_t i = static_cast<int64_t>(shape.size()) - 2; i >= 0; --i) {
    strides[i] = strides[i + 1] * shape[i + 1];
  }
  return strides;
}

namespace {

constexpr size_t kAlignment = 64;

std::shared_ptr<void> AllocateZeroed(size_t bytes) {
  if (bytes > kMaxTensorBytes) throw Error("tensor of " + std::to_string(bytes) + " bytes is too large");
  const size_t rounded = (bytes + kAlignment - 1) / kAlignment * kAlignment;
  void* memory = std::aligned_alloc(kAlignment, rounded == 0 ? kAlignment : rounded);
  if (memory == nullptr) throw Error("out of memory allocating " + std::to_string(bytes) + " bytes");
  std::memset(memory, 0, rounded == 0 ? kAlignment : rounded);
  return std::shared_ptr<void>(memory, std::free);
}

template <typename T>
double LoadAs(const void* data, int64_t index) {
  return static_cast<double>(static_cast<const T*>(data)[index]);
}

// Float to integer conversion that never invokes undefined behaviour: NaN becomes 0 and
// out-of-range values saturate.
template <typename T>
T SaturatingCast(double value) {
  if (std::isnan(value)) return T{0};
  const double truncated = std::trunc(value);
  if (truncated <= static_cast<double>(std::numeric_limits<T>::lowest())) {
    return std::numeric_limits<T>::lowest();
  }
  if (truncated >= static_cast<double>(std::numeric_limits<T>::max())) {
    return std::numeric_limits<T>::max();
  }
  return static_cast<T>(truncated);
}

bool IsInteger(DType dtype) {
  return !IsFloat(dtype) && dtype != DType::kBool;
}

// An element of an integer tensor exactly (through double, 64-bit values beyond 2^53 round).
__int128 LoadExact(const void* base, DType dtype, int64_t index) {
  switch (dtype) {
    case DType::kUInt8: return static_cast<const uint8_t*>(base)[index];
    case DType::kInt8: return static_cast<const int8_t*>(base)[index];
    case DType::kInt16: return static_cast<const int16_t*>(base)[index];
    case DType::kUInt16: return static_cast<const uint16_t*>(base)[index];
    case DType::kInt32: return static_cast<const int32_t*>(base)[index];
    case DType::kUInt32: return static_cast<const uint32_t*>(base)[index];
    case DType::kInt64: return static_cast<const int64_t*>(base)[index];
    case DType::kUInt64: return static_cast<const uint64_t*>(base)[index];
    default: throw Error("LoadExact: " + std::string(DTypeName(dtype)) + " is not an integer dtype");
  }
}

template <typename T>
void StoreClamped(void* base, int64_t index, __int128 value) {
  const auto low = static_cast<__int128>(std::numeric_limits<T>::lowest());
  const auto high = static_cast<__int128>(std::numeric_limits<T>::max());
  static_cast<T*>(base)[index] = static_cast<T>(value < low ? low : value > high ? high : value);
}

// Stores an integer into an integer tensor, saturating as SetDouble does.
void StoreExact(void* base, DType dtype, int64_t index, __int128 value) {
  switch (dtype) {
    case DType::kUInt8: return StoreClamped<uint8_t>(base, index, value);
    case DType::kInt8: return StoreClamped<int8_t>(base, index, value);
    case DType::kInt16: return StoreClamped<int16_t>(base, index, value);
    case DType::kUInt16: return StoreClamped<uint16_t>(base, index, value);
    case DType::kInt32: return StoreClamped<int32_t>(base, index, value);
    case DType::kUInt32: return StoreClamped<uint32_t>(base, index, value);
    case DType::kInt64: return StoreClamped<int64_t>(base, index, value);
    case DType::kUInt64: return StoreClamped<uint64_t>(base, index, value);
    default: throw Error("StoreExact: " + std::string(DTypeName(dtype)) + " is not an integer dtype");
  }
}

}  // namespace

Tensor::Tensor(Shape shape, DType dtype) : shape_(std::move(shape)), dtype_(dtype), num_elements_(NumElements(shape_)) {
  buffer_ = AllocateZeroed(CheckedByteSize(shape_, dtype_));
}

Tensor Tensor::FromDoubles(Shape shape, std::span<const double> values, DType dtype) {
  Tensor tensor(std::move(shape), dtype);
  if (static_cast<int64_t>(values.size()) != tensor.size()) {
    throw Error("tensor of shape " + ShapeToString(tensor.shape()) + " needs " + std::to_string(tensor.size()) +
                " values, given " + std::to_string(values.size()));
  }
  for (int64_t i = 0; i < tensor.size(); ++i) tensor.SetDouble(i, values[i]);
  return tensor;
}

Tensor Tensor::View(Shape shape, DType dtype, std::string_view bytes, std::shared_ptr<const void> owner) {
  Tensor tensor;
  tensor.num_elements_ = NumElements(shape);
  tensor.shape_ = std::move(shape);
  tensor.dtype_ = dtype;
  if (CheckedByteSize(tensor.shape_, dtype) != bytes.size()) {
    throw Error("a " + std::string(DTypeName(dtype)) + " tensor of shape " + ShapeToString(tensor.shape_) +
                " cannot view " + std::to_string(bytes.size()) + " bytes");
  }
  if (bytes.empty()) return Tensor(tensor.shape_, dtype);  // a null pointer would read as undefined
  // The aliasing constructor: shares ownership of `owner`, points at the bytes.
  tensor.buffer_ =
      std::shared_ptr<void>(std::const_pointer_cast<void>(std::move(owner)), const_cast<char*>(bytes.data()));
  return tensor;
}

Tensor Tensor::FromFloats(Shape shape, std::span<const float> values) {
  const std::vector<double> doubles(values.begin(), values.end());
  return FromDoubles(std::move(shape), doubles, DType::kFloat32);
}

double Tensor::GetDouble(int64_t index) const {
  const void* base = data();
  switch (dtype_) {
    case DType::kFloat32: return LoadAs<float>(base, index);
    case DType::kFloat64: return LoadAs<double>(base, index);
    case DType::kFloat16: return HalfToFloat(static_cast<const uint16_t*>(base)[index]);
    case DType::kUInt8: return LoadAs<uint8_t>(base, index);
    case DType::kInt32: return LoadAs<int32_t>(base, index);
    case DType::kInt8: return LoadAs<int8_t>(base, index);
    case DType::kInt64: return LoadAs<int64_t>(base, index);
    case DType::kBool: return static_cast<const uint8_t*>(base)[index] != 0 ? 1.0 : 0.0;
    case DType::kInt16: return LoadAs<int16_t>(base, index);
    case DType::kUInt16: return LoadAs<uint16_t>(base, index);
    case DType::kUInt32: return LoadAs<uint32_t>(base, index);
    case DType::kUInt64: return LoadAs<uint64_t>(base, index);
    case DType::kBFloat16: return BFloat16ToFloat(static_cast<const uint16_t*>(base)[index]);
  }
  throw Error("invalid dtype");
}

void Tensor::SetDouble(int64_t index, double value) {
  void* base = data();
  switch (dtype_) {
    case DType::kFloat32: static_cast<float*>(base)[index] = static_cast<float>(value); return;
    case DType::kFloat64: static_cast<double*>(base)[index] = value; return;
    case DType::kFloat16: static_cast<uint16_t*>(base)[index] = FloatToHalf(static_cast<float>(value)); return;
    case DType::kUInt8: static_cast<uint8_t*>(base)[index] = SaturatingCast<uint8_t>(value); return;
    case DType::kInt32: static_cast<int32_t*>(base)[index] = SaturatingCast<int32_t>(value); return;
    case DType::kInt8: static_cast<int8_t*>(base)[index] = SaturatingCast<int8_t>(value); return;
    case DType::kInt64: static_cast<int64_t*>(base)[index] = SaturatingCast<int64_t>(value); return;
    case DType::kBool: static_cast<uint8_t*>(base)[index] = value != 0.0 ? 1 : 0; return;
    case DType::kInt16: static_cast<int16_t*>(base)[index] = SaturatingCast<int16_t>(value); return;
    case DType::kUInt16: static_cast<uint16_t*>(base)[index] = SaturatingCast<uint16_t>(value); return;
    case DType::kUInt32: static_cast<uint32_t*>(base)[index] = SaturatingCast<uint32_t>(value); return;
    case DType::kUInt64: static_cast<uint64_t*>(base)[index] = SaturatingCast<uint64_t>(value); return;
    case DType::kBFloat16: static_cast<uint16_t*>(base)[index] = FloatToBFloat16(static_cast<float>(value)); return;
  }
  throw Error("invalid dtype");
}

std::vector<double> Tensor::ToDoubles() const {
  std::vector<double> values(static_cast<size_t>(size()));
  for (int64_t i = 0; i < size(); ++i) values[i] = GetDouble(i);
  return values;
}

void Tensor::CopyElement(int64_t index, const Tensor& src, int64_t src_index) {
  if (src.dtype_ != dtype_) {
    if (IsInteger(src.dtype_) && IsInteger(dtype_)) {
      StoreExact(data(), dtype_, index, LoadExact(src.data(), src.dtype_, src_index));
    } else {
      SetDouble(index, src.GetDouble(src_index));
    }
    return;
  }
  const size_t size = DTypeSize(dtype_);
  std::memcpy(static_cast<char*>(data()) + index * size, static_cast<const char*>(src.data()) + src_index * size, size);
}

Tensor Tensor::Clone() const {
  if (!defined()) return {};
  Tensor copy(shape_, dtype_);
  std::memcpy(copy.data(), data(), nbytes());
  return copy;
}

Tensor Tensor::Reshaped(Shape shape) const {
  if (NumElements(shape) != size()) {
    throw Error("cannot reshape " + ShapeToString(shape_) + " to " + ShapeToString(shape));
  }
  Tensor view = *this;
  view.shape_ = std::move(shape);
  return view;
}

Tensor Tensor::CastTo(DType dtype) const {
  Tensor result(shape_, dtype);
  for (int64_t i = 0; i < size(); ++i) result.CopyElement(i, *this, i);
  return result;
}

bool Tensor::BitwiseEquals(const Tensor& other) const {
  return shape_ == other.shape_ && dtype_ == other.dtype_ &&
         (nbytes() == 0 || std::memcmp(data(), other.data(), nbytes()) == 0);
}

}  // namespace kiln
