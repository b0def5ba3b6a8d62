// The NDArray API (MXNet's mx.nd): arrays on a device context, created, indexed and
// combined eagerly; every operator call runs compiled code (ndarray/invoke.h), and
// calls under autograd::Record are taped for Backward (ndarray/autograd.h).
//
//   nd::NDArray x = nd::arange(0, 4).Reshape({4, 1});
//   x.AttachGrad();
//   nd::NDArray y;
//   { nd::autograd::Record record; y = 2 * nd::dot(x.T(), x); }
//   y.Backward();               // x.Grad() is 4 * x
//
// Copies of an NDArray share its data and its gradient, as MXNet's handles do.
#pragma once

#include <atomic>
#include <cstdint>
#include <exception>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <type_traits>
#include <vector>

#include "runtime/context.h"
#include "runtime/device_tensor.h"
#include "runtime/error.h"
#include "runtime/tensor.h"

namespace kiln::nd {

// cpu(N) or gpu(N) (runtime/context.h). Arrays on a GPU hold device memory: operators
// on them run compiled CUDA code there (invoke.h), copies move them between contexts.
using Context = kiln::Context;

enum class GradReq { kNull, kWrite, kAdd };
// "null", "write", "add" (MXNet's spelling); throws for anything else.
GradReq ParseGradReq(const std::string& text);

namespace autograd {
struct TapeNode;
}
namespace lazy {
struct PendingGraph;
}

namespace detail {
// What NDArray handles share: the data, its context, and autograd's view of it.
struct Chunk {
  Tensor data;          // a CPU array's
  DeviceTensor device;  // a GPU array's (data is then undefined)
  Context ctx = Context::cpu();
  const Shape& shape() const { return ctx.is_gpu() ? device.shape() : data.shape(); }
  DType dtype() const { return ctx.is_gpu() ? device.dtype() : data.dtype(); }
  // The recorded operation that produced this array (null for a leaf).
  std::shared_ptr<const autograd::TapeNode> producer;
  uint32_t output_index = 0;
  GradReq grad_req = GradReq::kNull;
  std::shared_ptr<Chunk> grad;  // set by AttachGrad
  // Lazy mode (ndarray/lazy.h): `data` is allocated at once and written when the pending
  // graph runs; until then `pending`. The graph and this array's place in it are set
  // before the array is shared and never change.
  std::shared_ptr<lazy::PendingGraph> pending_graph;
  size_t pending_node = 0;
  uint32_t pending_output = 0;
  std::atomic<bool> pending{false};
  std::exception_ptr pending_error;  // the pending graph's failure, rethrown by reads
};

// The chunk's data, computed first where it is pending (lazy mode).
inline const Tensor& Ready(Chunk& chunk);
// `chunk`, which must be a CPU array's: else kiln::Error saying how to read a GPU array.
Chunk& OnHost(Chunk& chunk);
// The same, after every deferred call of this thread has run: before writing into it
// (a deferred call may read it). A recorded result gets memory of its own first (the
// tape keeps the value Backward reads) and is cut from the tape.
Tensor& ForWriting(Chunk& chunk);
// The same for a GPU array's device memory.
DeviceTensor& ForWritingOnDevice(Chunk& chunk);

template <typename T>
constexpr DType DTypeOf() {
  if constexpr (std::is_same_v<T, float>)
    return DType::kFloat32;
  else if constexpr (std::is_same_v<T, double>)
    return DType::kFloat64;
  else if constexpr (std::is_same_v<T, int32_t>)
    return DType::kInt32;
  else if constexpr (std::is_same_v<T, int64_t>)
    return DType::kInt64;
  else if constexpr (std::is_same_v<T, uint8_t>)
    return DType::kUInt8;
  else if constexpr (std::is_same_v<T, int8_t>)
    return DType::kInt8;
  else if constexpr (std::is_same_v<T, bool>)
    return DType::kBool;
  else
    static_assert(sizeof(T) == 0, "no kiln dtype for this C++ type");
}
// Copies `value` into `dst`'s memory (same element count), converting the dtype.
void CopyInto(const Tensor& value, Tensor& dst);
// Throws unless `actual` is `wanted` (data<T>() on an array of another dtype).
void CheckDType(DType actual, DType wanted);
}  // namespace detail

class NDArray {
 public:
  // An undefined array (defined() is false): a default argument, an unset output.
  NDArray() = default;
  // Wraps `data` without copying it on the CPU; on a GPU context, a copy there.
  explicit NDArray(Tensor data, Context ctx = Context::cpu());
  // An array on the GPU that holds `data` (shared, not copied).
  explicit NDArray(DeviceTensor data);

  bool defined() const { return chunk_ != nullptr; }
  // Shape and dtype are known when a call is made, even a deferred one (lazy mode).
  const Shape& shape() const { return chunk().shape(); }
  DType dtype() const { return chunk().dtype(); }
  Context context() const { return chunk().ctx; }
  int64_t size() const { return NumElements(shape()); }
  int64_t ndim() const { return static_cast<int64_t>(shape().size()); }

  // The same data under another shape (shares memory; recorded as the Reshape operator
  // while autograd records).
  NDArray Reshape(Shape shape) const;
  // The transpose (reverses the axes).
  NDArray T() const;
  // Row i along axis 0 (negative counts from the end): a view sharing memory.
  NDArray operator[](int64_t i) const;
  // Rows [begin, end) along axis 0: a view sharing memory.
  NDArray Slice(int64_t begin, int64_t end) const;
  // MXNet's x[:] = value: writes into this array's memory (views included).
  NDArray& Assign(double value);
  // `value` is converted to this dtype and broadcast to this shape.
  NDArray& Assign(const NDArray& value);

  // The single element (MXNet's asscalar); throws unless size() is 1.
  template <typename T>
  T AsScalar() const {
    if (size() != 1) throw Error("AsScalar: the array has shape " + ShapeToString(shape()) + ", not one element");
    return static_cast<T>(ToTensor().GetDouble(0));
  }
  // A copy of the data in host memory (MXNet's asnumpy), from any context.
  Tensor ToTensor() const;
  // The data itself (shared; writes are seen by every handle), computed first where
  // it is pending (lazy mode). CPU arrays only: a GPU array's is device_tensor().
  const Tensor& tensor() const { return detail::Ready(detail::OnHost(chunk())); }
  // A GPU array's memory (shared).
  const DeviceTensor& device_tensor() const;
  template <typename T>
  T* data() {
    detail::CheckDType(dtype(), detail::DTypeOf<T>());
    return detail::ForWriting(detail::OnHost(chunk())).data_as<T>();
  }
  template <typename T>
  const T* data() const {
    detail::CheckDType(dtype(), detail::DTypeOf<T>());
    return tensor().data_as<T>();
  }

  // A copy on `ctx` (between the host and GPUs as needed).
  NDArray CopyTo(Context ctx) const;
  // Copies into `other` (same shape; on any context, converting the dtype); returns it.
  NDArray CopyTo(const NDArray& other) const;
  // This array when it is on `ctx`, else a copy there.
  NDArray AsInContext(Context ctx) const;
  // Computes the array if it is pending (lazy mode); eager calls complete before they
  // return (GPU ones included).
  void WaitToRead() const {
    if (!context().is_gpu()) tensor();
  }

  // --- autograd ---
  // Allocates a zero gradient and makes this array a leaf that Backward writes
  // ("write") or adds ("add") its gradient into.
  void AttachGrad(GradReq req = GradReq::kWrite);
  void AttachGrad(const std::string& grad_req) { AttachGrad(ParseGradReq(grad_req)); }
  // The gradient buffer (undefined before AttachGrad).
  NDArray Grad() const;
  GradReq grad_req() const { return chunk().grad_req; }
  // Gradients of this array (with `head_grad`, ones when undefined) into every leaf
  // with an attached gradient that it was recorded from.
  // MXNet's backward(out_grad, retain_graph, train_mode): see autograd::Backward.
  void Backward(const NDArray& head_grad = NDArray(), bool retain_graph = false, bool train_mode = true) const;
  // The same data, cut from the tape.
  NDArray Detach() const;

  // Internal: the shared state (autograd and the operator calls use it).
  detail::Chunk& chunk() const;
  const std::shared_ptr<detail::Chunk>& chunk_ptr() const { return chunk_; }
  explicit NDArray(std::shared_ptr<detail::Chunk> chunk) : chunk_(std::move(chunk)) {}

 private:
  std::shared_ptr<detail::Chunk> chunk_;
};

// --- creation (MXNet's argument order: shape, ctx, dtype) ---
NDArray array(const std::vector<float>& values, Shape shape, Context ctx = Context::cpu(),
              DType dtype = DType::kFloat32);
// Shares `tensor`'s data (Clone() it first for a copy).
NDArray array(Tensor tensor, Context ctx = Context::cpu());
NDArray zeros(const Shape& shape, Context ctx = Context::cpu(), DType dtype = DType::kFloat32);
NDArray ones(const Shape& shape, Context ctx = Context::cpu(), DType dtype = DType::kFloat32);
NDArray full(const Shape& shape, double value, Context ctx = Context::cpu(), DType dtype = DType::kFloat32);
// [start, stop) by step, as a 1-d array (MXNet's arange(start, stop, step)).
NDArray arange(double start, double stop, double step = 1, Context ctx = Context::cpu(), DType dtype = DType::kFloat32);

namespace random {
// The global seed (mx.random.seed): the draws of calls without their own seed.
void seed(uint64_t value);
// Uniform in [low, high) and normal draws; with `seed` the values depend only on it.
NDArray uniform(double low, double high, const Shape& shape, std::optional<uint64_t> seed = std::nullopt,
                Context ctx = Context::cpu());
NDArray normal(double mean, double std, const Shape& shape, std::optional<uint64_t> seed = std::nullopt,
               Context ctx = Context::cpu());
// Internal: the step counter of the next training-mode Dropout call (an int64 (1,)
// array; _dropout_step draws its mask from it). Consecutive calls get consecutive
// steps; seed() restarts them at a point that depends on the seed.
NDArray NextDropoutStep();
}  // namespace random

// --- arithmetic (broadcasting, as MXNet's NDArray operators) and comparisons (float 0/1) ---
NDArray operator+(const NDArray& a, const NDArray& b);
NDArray operator-(const NDArray& a, const NDArray& b);
NDArray operator*(const NDArray& a, const NDArray& b);
NDArray operator/(const NDArray& a, const NDArray& b);
NDArray operator+(const NDArray& a, double s);
NDArray operator-(const NDArray& a, double s);
NDArray operator*(const NDArray& a, double s);
NDArray operator/(const NDArray& a, double s);
NDArray operator+(double s, const NDArray& a);
NDArray operator-(double s, const NDArray& a);
NDArray operator*(double s, const NDArray& a);
NDArray operator/(double s, const NDArray& a);
NDArray operator-(const NDArray& a);
NDArray operator==(const NDArray& a, const NDArray& b);
NDArray operator!=(const NDArray& a, const NDArray& b);
NDArray operator<(const NDArray& a, const NDArray& b);
NDArray operator<=(const NDArray& a, const NDArray& b);
NDArray operator>(const NDArray& a, const NDArray& b);
NDArray operator>=(const NDArray& a, const NDArray& b);
NDArray operator==(const NDArray& a, double s);
NDArray operator!=(const NDArray& a, double s);
NDArray operator<(const NDArray& a, double s);
NDArray operator<=(const NDArray& a, double s);
NDArray operator>(const NDArray& a, double s);
NDArray operator>=(const NDArray& a, double s);

// --- persistence: MXNet's NDArray-list file (mx.nd.save / mx.nd.load) ---
void Save(const std::string& path, const std::vector<NDArray>& arrays);
void Save(const std::string& path, const std::map<std::string, NDArray>& arrays);
struct Loaded {
  std::vector<NDArray> list;             // every array, in file order
  std::map<std::string, NDArray> named;  // by name, when the file has names
};
// Reads MXNet's format (any version MXNet wrote) or kiln's parameter files.
Loaded Load(const std::string& path);

namespace lazy {
void Materialize(detail::Chunk& chunk);
}
inline const Tensor& detail::Ready(Chunk& chunk) {
  if (chunk.pending.load(std::memory_order_acquire)) lazy::Materialize(chunk);
  return chunk.data;
}

}  // namespace kiln::nd
