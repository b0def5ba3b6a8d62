// ONNX converters onto kiln's sorting and scanning operators (ops/sort_scan.cc): TopK
// onto topk and CumSum onto _np_cumsum.
#include "symbol/onnx/onnx_converter.h"

namespace kiln::onnx_import {
namespace {

// TopK (1: k attribute; 10: k input; 11: largest, sorted; 24: types only). kiln's topk
// orders as ONNX does: ties keep the smaller index first, NaN counts as the largest
// (ONNX's reference sorts with numpy's lexsort). sorted=0 leaves the order to the
// implementation, so the sorted order serves it too.
const RegisterConverter kTopK({"TopK"}, {"axis", "k", "largest", "sorted"}, [](NodeContext& ctx) {
  const Value& x = ctx.In(0);
  const int64_t axis = NormalizeAxis(ctx.Int("axis", -1), x.shape.size());
  int64_t k = 0;
  if (ctx.opset() >= 10) {
    const std::vector<int64_t> given = ctx.ConstInts(1, "K");
    if (given.size() != 1) {
      throw Error("input 'K': expected one value, given " + std::to_string(given.size()) + " values");
    }
    k = given[0];
  } else {
    k = ctx.Int("k");
  }
  const int64_t n = x.shape[axis];
  if (k < 0 || k > n) {
    throw Error("input 'K': expected a value in [0, " + std::to_string(n) + "] (the size of axis " +
                std::to_string(axis) + " of input 'X' " + ShapeToString(x.shape) + "), given " + std::to_string(k));
  }
  if (x.dtype == DType::kBool) throw Error("input 'X': expected a numeric dtype, given bool");
  Shape shape = x.shape;
  shape[axis] = k;
  // kiln's topk reads k < 1 as the whole axis (MXNet's rule): ONNX's k = 0 selects none.
  if (k == 0)
    return std::vector<Value>{ctx.MakeConstant(Tensor(shape, x.dtype)), ctx.MakeConstant(Tensor(shape, DType::kInt64))};
  const bool largest = ctx.opset() < 11 || ctx.Int("largest", 1) != 0;
  return ctx.ApplyAll(
      "topk", {x}, {{"axis", axis}, {"k", k}, {"ret_typ", "both"}, {"is_ascend", !largest}, {"dtype", DType::kInt64}});
});

// x reversed along `axis` (a gather with the indices n-1, ..., 0).
Value Reverse(NodeContext& ctx, const Value& x, int64_t axis) {
  const int64_t n = x.shape[axis];
  Tensor reversed({n}, DType::kInt64);
  for (int64_t i = 0; i < n; ++i) reversed.data_as<int64_t>()[i] = n - 1 - i;
  return ctx.Apply("take", {x, ctx.MakeConstant(std::move(reversed))}, {{"axis", axis}});
}

// CumSum (11; 14: types only): the running sums of _np_cumsum, in x's dtype. `reverse`
// reverses along the axis before and after; `exclusive` sums all but the last element
// and shifts the sums one place on behind a zero, as ONNX's reference does, so the
// sums are exactly the inclusive ones (integers and a leading -0 included).
const RegisterConverter kCumSum({"CumSum"}, {"exclusive", "reverse"}, [](NodeContext& ctx) {
  const Value& x = ctx.In(0);
  const std::vector<int64_t> axes = ctx.ConstInts(1, "axis");
  if (axes.size() != 1) {
    throw Error("input 'axis': expected one value, given " + std::to_string(axes.size()) + " values");
  }
  const int64_t axis = NormalizeAxis(axes[0], x.shape.size());
  if (x.dtype == DType::kBool) throw Error("input 'x': expected a numeric dtype, given bool");
  // Empty: nothing to sum (and nothing to slice for the shift).
  if (NumElements(x.shape) == 0) return std::vector<Value>{x};
  const bool exclusive = ctx.Int("exclusive", 0) != 0;
  const bool reverse = ctx.Int("reverse", 0) != 0;
  const int64_t n = x.shape[axis];
  Value v = reverse ? Reverse(ctx, x, axis) : x;
  // dtype None: every dtype but bool sums in its own.
  const AttrMap attrs = {{"axis", axis}};
  if (!exclusive) {
    v = ctx.Apply("_np_cumsum", {v}, attrs);
  } else {
    Shape zero_shape = x.shape;
    zero_shape[axis] = 1;
    const Value zeros = ctx.MakeConstant(Tensor(zero_shape, x.dtype));
    if (n == 1) {
      v = zeros;
    } else {
      const Value head = ctx.Apply("slice_axis", {v}, {{"axis", axis}, {"begin", int64_t{0}}, {"end", n - 1}});
      v = ctx.Apply("Concat", {zeros, ctx.Apply("_np_cumsum", {head}, attrs)}, {{"dim", axis}, {"num_args", 2}});
    }
  }
  return std::vector<Value>{reverse ? Reverse(ctx, v, axis) : v};
});

}  // namespace
}  // namespace kiln::onnx_import
