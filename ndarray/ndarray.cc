#include "ndarray/ndarray.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <mutex>
#include <numbers>
#include <string_view>
#include <utility>

#include "ndarray/autograd.h"
#include "ndarray/invoke.h"
#include "runtime/mxnet_params.h"
#include "runtime/param_formats.h"

namespace kiln::nd {

GradReq ParseGradReq(const std::string& text) {
  if (text == "null") return GradReq::kNull;
  if (text == "write") return GradReq::kWrite;
  if (text == "add") return GradReq::kAdd;
  throw Error("grad_req must be \"write\", \"add\" or \"null\", given \"" + text + "\"");
}

namespace detail {
Chunk& OnHost(Chunk& chunk) {
  if (chunk.ctx.is_gpu()) {
    throw Error("the array is on " + chunk.ctx.ToString() +
                ": read it with ToTensor() or copy it with AsInContext(Context::cpu())");
  }
  return chunk;
}

void CheckDType(DType actual, DType wanted) {
  if (actual != wanted) {
    throw Error("data<T>(): the array is " + std::string(DTypeName(actual)) + ", T is " +
                std::string(DTypeName(wanted)));
  }
}

void CopyInto(const Tensor& value, Tensor& dst) {
  if (value.size() != dst.size()) {
    throw Error("cannot copy " + ShapeToString(value.shape()) + " into " + ShapeToString(dst.shape()));
  }
  const Tensor converted = value.dtype() == dst.dtype() ? value : value.CastTo(dst.dtype());
  if (converted.data() != dst.data()) std::memcpy(dst.data(), converted.data(), dst.nbytes());
}
}  // namespace detail

namespace {
// `rows` rows of `tensor` from `begin` along axis 0, sharing its buffer.
Tensor RowsView(const Tensor& tensor, int64_t begin, int64_t rows, Shape shape) {
  const size_t row_bytes = tensor.nbytes() / static_cast<size_t>(tensor.shape()[0]);
  const char* base = static_cast<const char*>(tensor.data()) + static_cast<size_t>(begin) * row_bytes;
  // The view owns a handle of the whole tensor: the buffer lives as long as the view.
  auto owner = std::make_shared<const Tensor>(tensor);
  return Tensor::View(std::move(shape), tensor.dtype(), std::string_view(base, row_bytes * rows), std::move(owner));
}

int64_t CheckedRow(const NDArray& array, int64_t i, const char* what) {
  if (array.ndim() == 0) throw Error(std::string(what) + ": the array is a scalar");
  const int64_t rows = array.shape()[0];
  const int64_t row = i < 0 ? i + rows : i;
  if (row < 0 || row > rows) {
    throw Error(std::string(what) + ": index " + std::to_string(i) + " is out of range for axis 0 of size " +
                std::to_string(rows));
  }
  return row;
}
}  // namespace

NDArray::NDArray(Tensor data, Context ctx) : chunk_(std::make_shared<detail::Chunk>()) {
  ctx.CheckAvailable();
  if (ctx.is_gpu()) {
    chunk_->device = DeviceTensor::FromHost(data, ctx);
  } else {
    chunk_->data = std::move(data);
  }
  chunk_->ctx = ctx;
}

NDArray::NDArray(DeviceTensor data) : chunk_(std::make_shared<detail::Chunk>()) {
  if (!data.defined()) throw Error("an NDArray of an undefined device tensor");
  chunk_->ctx = data.context();
  chunk_->device = std::move(data);
}

const DeviceTensor& NDArray::device_tensor() const {
  if (!context().is_gpu()) throw Error("the array is on " + context().ToString() + ", not a GPU: read tensor()");
  return chunk().device;
}

Tensor NDArray::ToTensor() const {
  return context().is_gpu() ? chunk().device.ToHost() : tensor().Clone();
}

detail::Chunk& NDArray::chunk() const {
  if (chunk_ == nullptr) throw Error("the NDArray is undefined");
  return *chunk_;
}

NDArray NDArray::Reshape(Shape shape) const {
  if (autograd::IsRecording()) {
    return Invoke("Reshape", {*this}, {{"shape", std::vector<int64_t>(shape.begin(), shape.end())}});
  }
  if (context().is_gpu()) return NDArray(chunk().device.Reshaped(std::move(shape)));
  return NDArray(tensor().Reshaped(std::move(shape)), context());
}

NDArray NDArray::T() const {
  return Invoke("transpose", {*this});
}

NDArray NDArray::operator[](int64_t i) const {
  const int64_t row = CheckedRow(*this, i, "operator[]");
  if (row == shape()[0]) throw Error("operator[]: index " + std::to_string(i) + " is out of range");
  if (autograd::IsRecording()) {
    return Invoke("slice_axis", {*this}, {{"axis", 0}, {"begin", row}, {"end", row + 1}})
        .Reshape(Shape(shape().begin() + 1, shape().end()));
  }
  if (context().is_gpu()) return NDArray(chunk().device.Rows(row, 1, Shape(shape().begin() + 1, shape().end())));
  return NDArray(RowsView(tensor(), row, 1, Shape(shape().begin() + 1, shape().end())), context());
}

NDArray NDArray::Slice(int64_t begin, int64_t end) const {
  const int64_t first = CheckedRow(*this, begin, "Slice");
  const int64_t last = CheckedRow(*this, end, "Slice");
  if (last < first) throw Error("Slice: end " + std::to_string(end) + " is before begin " + std::to_string(begin));
  if (autograd::IsRecording()) return Invoke("slice_axis", {*this}, {{"axis", 0}, {"begin", first}, {"end", last}});
  Shape rows = shape();
  rows[0] = last - first;
  if (context().is_gpu()) return NDArray(chunk().device.Rows(first, last - first, std::move(rows)));
  return NDArray(RowsView(tensor(), first, last - first, std::move(rows)), context());
}

NDArray& NDArray::Assign(double value) {
  if (context().is_gpu()) {
    // Filled on the host and copied in.
    NDArray host(Tensor(shape(), dtype()));
    host.Assign(value);
    detail::ForWritingOnDevice(chunk()).CopyFromHost(host.tensor());
    return *this;
  }
  Tensor& data = detail::ForWriting(chunk());
  for (int64_t i = 0; i < data.size(); ++i) data.SetDouble(i, value);
  return *this;
}

NDArray& NDArray::Assign(const NDArray& value) {
  if (context().is_gpu() && value.context() == context() && value.shape() == shape() && value.dtype() == dtype()) {
    value.CopyTo(*this);  // on the device
    return *this;
  }
  if (context().is_gpu()) {
    // Broadcast and converted on the host, then copied in.
    NDArray host = CopyTo(Context::cpu());
    host.Assign(value);
    detail::ForWritingOnDevice(chunk()).CopyFromHost(host.tensor());
    return *this;
  }
  NDArray source = value.AsInContext(Context::cpu());
  if (value.shape() != shape()) {
    // NumPy's rule: missing leading axes are ones (x[1:3] = [9, 8]).
    Shape ranked(static_cast<size_t>(std::max<int64_t>(ndim() - value.ndim(), 0)), 1);
    ranked.insert(ranked.end(), value.shape().begin(), value.shape().end());
    source =
        Invoke("broadcast_to", {NDArray(source.tensor().Reshaped(ranked))}, {{"shape", std::vector<int64_t>(shape())}});
  }
  detail::CopyInto(source.tensor(), detail::ForWriting(chunk()));
  return *this;
}

NDArray NDArray::CopyTo(Context ctx) const {
  ctx.CheckAvailable();
  if (!context().is_gpu()) return NDArray(tensor().Clone(), ctx);
  if (ctx.is_gpu()) return NDArray(chunk().device.CopyTo(ctx));
  return NDArray(chunk().device.ToHost(), ctx);
}

NDArray NDArray::CopyTo(const NDArray& other) const {
  other.context().CheckAvailable();
  if (other.shape() != shape()) {
    throw Error("CopyTo: the target has shape " + ShapeToString(other.shape()) + ", the source " +
                ShapeToString(shape()));
  }
  if (context().is_gpu() && other.context().is_gpu() && dtype() == other.dtype()) {
    chunk().device.CopyTo(detail::ForWritingOnDevice(other.chunk()));
  } else if (other.context().is_gpu()) {
    detail::ForWritingOnDevice(other.chunk())
        .CopyFromHost(context().is_gpu() ? ToTensor().CastTo(other.dtype()) : tensor().CastTo(other.dtype()));
  } else {
    detail::CopyInto(context().is_gpu() ? ToTensor() : tensor(), detail::ForWriting(other.chunk()));
  }
  return other;
}

NDArray NDArray::AsInContext(Context ctx) const {
  return ctx == context() ? *this : CopyTo(ctx);
}

void NDArray::AttachGrad(GradReq req) {
  detail::Chunk& state = chunk();
  state.grad_req = req;
  state.grad = req == GradReq::kNull ? nullptr : zeros(shape(), context(), dtype()).chunk_ptr();
  state.producer = nullptr;  // a leaf from now on, as MXNet's attach_grad makes it
}

NDArray NDArray::Grad() const {
  return NDArray(chunk().grad);
}

void NDArray::Backward(const NDArray& head_grad, bool retain_graph, bool train_mode) const {
  autograd::Backward({*this}, head_grad.defined() ? std::vector<NDArray>{head_grad} : std::vector<NDArray>{},
                     retain_graph, train_mode);
}

NDArray NDArray::Detach() const {
  if (context().is_gpu()) return NDArray(chunk().device);
  return NDArray(tensor(), context());
}

NDArray array(const std::vector<float>& values, Shape shape, Context ctx, DType dtype) {
  const std::vector<double> wide(values.begin(), values.end());
  return NDArray(Tensor::FromDoubles(std::move(shape), wide, dtype), ctx);
}

NDArray array(Tensor tensor, Context ctx) {
  return NDArray(std::move(tensor), ctx);
}

NDArray zeros(const Shape& shape, Context ctx, DType dtype) {
  return NDArray(Tensor(shape, dtype), ctx);
}

NDArray ones(const Shape& shape, Context ctx, DType dtype) {
  return full(shape, 1, ctx, dtype);
}

NDArray full(const Shape& shape, double value, Context ctx, DType dtype) {
  NDArray result = zeros(shape, ctx, dtype);
  result.Assign(value);
  return result;
}

NDArray arange(double start, double stop, double step, Context ctx, DType dtype) {
  if (step == 0) throw Error("arange: step is 0");
  const auto count = static_cast<int64_t>(std::max(0.0, std::ceil((stop - start) / step)));
  NDArray result = zeros({count}, Context::cpu(), dtype);
  for (int64_t i = 0; i < count; ++i) result.chunk().data.SetDouble(i, start + static_cast<double>(i) * step);
  return result.AsInContext(ctx);
}

namespace random {
namespace {
// SplitMix64: the same numbers on every platform, unlike std's distributions.
class Generator {
 public:
  explicit Generator(uint64_t seed) : state_(seed) {}
  uint64_t Next() {
    uint64_t z = (state_ += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
  }
  double Uniform() { return static_cast<double>(Next() >> 11) * 0x1.0p-53; }  // [0, 1)

 private:
  uint64_t state_;
};

// Where seed `value` starts Dropout's steps: 40 bits, so that (step + calls) * mask
// size stays far from other seeds' streams.
int64_t FirstDropoutStep(uint64_t value) {
  return static_cast<int64_t>(Generator(value).Next() >> 24);
}

struct GlobalGenerator {
  std::mutex mutex;
  Generator generator{0};
  int64_t dropout_step = FirstDropoutStep(0);
};
GlobalGenerator& Global() {
  static GlobalGenerator global;
  return global;
}

// A generator for one draw: from `seed`, or from the global stream.
Generator DrawGenerator(std::optional<uint64_t> seed) {
  if (seed) return Generator(*seed);
  const std::lock_guard lock(Global().mutex);
  return Generator(Global().generator.Next());
}

template <typename Fn>
NDArray Draw(const Shape& shape, Context ctx, Fn&& fn) {
  NDArray result = zeros(shape);
  Tensor& data = result.chunk().data;
  for (int64_t i = 0; i < data.size(); ++i) data.SetDouble(i, fn());
  return result.AsInContext(ctx);
}
}  // namespace

void seed(uint64_t value) {
  const std::lock_guard lock(Global().mutex);
  Global().generator = Generator(value);
  Global().dropout_step = FirstDropoutStep(value);
}

NDArray NextDropoutStep() {
  NDArray step = zeros({1}, Context::cpu(), DType::kInt64);
  const std::lock_guard lock(Global().mutex);
  step.data<int64_t>()[0] = Global().dropout_step++;
  return step;
}

NDArray uniform(double low, double high, const Shape& shape, std::optional<uint64_t> seed, Context ctx) {
  Generator generator = DrawGenerator(seed);
  return Draw(shape, ctx, [&] { return low + (high - low) * generator.Uniform(); });
}

NDArray normal(double mean, double std, const Shape& shape, std::optional<uint64_t> seed, Context ctx) {
  Generator generator = DrawGenerator(seed);
  return Draw(shape, ctx, [&] {
    // Box-Muller; 1 - u keeps the logarithm finite.
    const double radius = std::sqrt(-2.0 * std::log(1.0 - generator.Uniform()));
    return mean + std * radius * std::cos(2.0 * std::numbers::pi * generator.Uniform());
  });
}
}  // namespace random

namespace {
// A scalar as an array that broadcasts against `like` (same rank, all ones).
NDArray ScalarLike(const NDArray& like, double value) {
  return full(Shape(static_cast<size_t>(like.ndim()), 1), value, like.context(), like.dtype());
}
NDArray Scalar(const char* op, const NDArray& a, double s) {
  return Invoke(op, {a}, {{"scalar", s}});
}
}  // namespace

NDArray operator+(const NDArray& a, const NDArray& b) {
  return Invoke("broadcast_add", {a, b});
}
NDArray operator-(const NDArray& a, const NDArray& b) {
  return Invoke("broadcast_sub", {a, b});
}
NDArray operator*(const NDArray& a, const NDArray& b) {
  return Invoke("broadcast_mul", {a, b});
}
NDArray operator/(const NDArray& a, const NDArray& b) {
  return Invoke("broadcast_div", {a, b});
}
NDArray operator+(const NDArray& a, double s) {
  return Scalar("_plus_scalar", a, s);
}
NDArray operator-(const NDArray& a, double s) {
  return Scalar("_minus_scalar", a, s);
}
NDArray operator*(const NDArray& a, double s) {
  return Scalar("_mul_scalar", a, s);
}
NDArray operator/(const NDArray& a, double s) {
  return Scalar("_div_scalar", a, s);
}
NDArray operator+(double s, const NDArray& a) {
  return Scalar("_plus_scalar", a, s);
}
NDArray operator-(double s, const NDArray& a) {
  return Scalar("_rminus_scalar", a, s);
}
NDArray operator*(double s, const NDArray& a) {
  return Scalar("_mul_scalar", a, s);
}
NDArray operator/(double s, const NDArray& a) {
  return Scalar("_rdiv_scalar", a, s);
}
NDArray operator-(const NDArray& a) {
  return Invoke("negative", {a});
}
NDArray operator==(const NDArray& a, const NDArray& b) {
  return Invoke("broadcast_equal", {a, b});
}
NDArray operator!=(const NDArray& a, const NDArray& b) {
  return Invoke("broadcast_not_equal", {a, b});
}
NDArray operator<(const NDArray& a, const NDArray& b) {
  return Invoke("broadcast_lesser", {a, b});
}
NDArray operator<=(const NDArray& a, const NDArray& b) {
  return Invoke("broadcast_lesser_equal", {a, b});
}
NDArray operator>(const NDArray& a, const NDArray& b) {
  return Invoke("broadcast_greater", {a, b});
}
NDArray operator>=(const NDArray& a, const NDArray& b) {
  return Invoke("broadcast_greater_equal", {a, b});
}
NDArray operator==(const NDArray& a, double s) {
  return a == ScalarLike(a, s);
}
NDArray operator!=(const NDArray& a, double s) {
  return a != ScalarLike(a, s);
}
NDArray operator<(const NDArray& a, double s) {
  return a < ScalarLike(a, s);
}
NDArray operator<=(const NDArray& a, double s) {
  return a <= ScalarLike(a, s);
}
NDArray operator>(const NDArray& a, double s) {
  return a > ScalarLike(a, s);
}
NDArray operator>=(const NDArray& a, double s) {
  return a >= ScalarLike(a, s);
}

void Save(const std::string& path, const std::vector<NDArray>& arrays) {
  ParamList list;
  list.named = false;
  for (const NDArray& array : arrays) list.tensors.emplace_back("", array.ToTensor());
  SaveMxnetParams(path, list);
}

void Save(const std::string& path, const std::map<std::string, NDArray>& arrays) {
  ParamList list;
  for (const auto& [name, array] : arrays) list.tensors.emplace_back(name, array.ToTensor());
  SaveMxnetParams(path, list);
}

Loaded Load(const std::string& path) {
  const ParamList params = LoadAnyParams(path);
  Loaded loaded;
  for (const auto& [name, tensor] : params.tensors) {
    NDArray array(tensor);
    loaded.list.push_back(array);
    if (params.named) loaded.named[name] = array;
  }
  return loaded;
}

}  // namespace kiln::nd
