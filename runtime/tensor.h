// Shapes and tensors. A Tensor is a shape, a dtype and a reference-counted, 64-byte
// aligned buffer: copies share data (as MXNet's NDArray does); Clone() copies it.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "runtime/dtype.h"

namespace kiln {

using Shape = std::vector<int64_t>;

// Product of the dimensions (1 for a scalar); throws on overflow or a negative dim.
int64_t NumElements(const Shape& shape);
// The largest tensor kiln allocates or plans (1 TiB): a size beyond it is a corrupt file
// or a wrapped computation, reported as an error instead of attempted.
inline constexpr uint64_t kMaxTensorBytes = uint64_t{1} << 40;
// Bytes of a tensor of `shape` and `dtype`; throws naming the shape when the count
// overflows or the size exceeds kMaxTensorBytes.
uint64_t CheckedByteSize(const Shape& shape, DType dtype);
// "(2,3,4)"; a scalar is "()".
std::string ShapeToString(const Shape& shape);
// Row-major strides in elements.
std::vector<int64_t> Strides(const Shape& shape);

class Tensor {
 public:
  Tensor() = default;
  // Zero-filled tensor.
  Tensor(Shape shape, DType dtype);

  // Copies `values` converted to `dtype`; the count must match the shape.
  static Tensor FromDoubles(Shape shape, std::span<const double> values, DType dtype = DType::kFloat32);
  static Tensor FromFloats(Shape shape, std::span<const float> values);
  // A tensor over `bytes` (exactly its size) that it does not own, kept alive by
  // `owner`: parameters used where they lie in a mapped artifact. The bytes may be
  // read-only memory, where writing through data() faults; Clone() gives a writable copy.
  static Tensor View(Shape shape, DType dtype, std::string_view bytes, std::shared_ptr<const void> owner);

  const Shape& shape() const { return shape_; }
  DType dtype() const { return dtype_; }
  int64_t ndim() const { return static_cast<int64_t>(shape_.size()); }
  int64_t size() const { return num_elements_; }
  size_t nbytes() const { return static_cast<size_t>(num_elements_) * DTypeSize(dtype_); }
  bool defined() const { return buffer_ != nullptr; }

  void* data() { return buffer_.get(); }
  const void* data() const { return buffer_.get(); }
  template <typename T>
  T* data_as() {
    return static_cast<T*>(data());
  }
  template <typename T>
  const T* data_as() const {
    return static_cast<const T*>(data());
  }

  // Element access through double, for the reference oracle and tests (not fast).
  double GetDouble(int64_t index) const;
  void SetDouble(int64_t index, double value);
  // Element `index` = element `src_index` of `src`: an exact copy when the dtypes are the
  // same (int64 beyond 2^53 included), an exact saturating conversion between integer
  // dtypes (uint64 to int64 clamps at INT64_MAX), a conversion through double otherwise.
  void CopyElement(int64_t index, const Tensor& src, int64_t src_index);
  std::vector<double> ToDoubles() const;

  // A deep copy.
  Tensor Clone() const;
  // Same buffer, another shape with the same number of elements.
  Tensor Reshaped(Shape shape) const;
  // A copy converted to another dtype as CopyElement converts (float→int truncates toward
  // zero and saturates).
  Tensor CastTo(DType dtype) const;

  // True when shapes, dtypes and bytes are identical.
  bool BitwiseEquals(const Tensor& other) const;

 private:
  Shape shape_;
  DType dtype_ = DType::kFloat32;
  int64_t num_elements_ = 0;
  std::shared_ptr<void> buffer_;
};

}  // namespace kiln
