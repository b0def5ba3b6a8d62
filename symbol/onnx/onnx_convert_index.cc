// ONNX converters that gather and scatter by index tensors: GatherElements, GatherND,
// ScatterElements (and the deprecated Scatter) and ScatterND, onto kiln's
// take_along_axis, gather_nd, scatter_elements and scatter_nd_update (ops/gather_scatter.cc).
// Those read negative indices as ONNX does; ONNX leaves other out-of-range indices
// undefined, where kiln's gathers clip and its scatters skip the update.
#include <numeric>

#include "symbol/onnx/onnx_converter.h"

namespace kiln::onnx_import {
namespace {

// ONNX's index tuples lie along the last axis of indices (Y0, ..., M); kiln's gather_nd
// (MXNet's) and scatter_nd_update take them along the first (M, Y0, ...).
Value TuplesFirst(NodeContext& ctx, const Value& indices) {
  const int64_t rank = static_cast<int64_t>(indices.shape.size());
  if (rank == 1) return indices;
  std::vector<int64_t> axes(static_cast<size_t>(rank));
  axes[0] = rank - 1;
  std::iota(axes.begin() + 1, axes.end(), 0);
  return ctx.Apply("transpose", {indices}, {{"axes", axes}});
}

// M, the length of the index tuples, checked against the `rank` axes they may address.
int64_t TupleLength(const Value& indices, int64_t rank, const Value& data, const std::string& axes) {
  if (indices.shape.empty()) throw Error("input 'indices' must be at least 1-d (Y0, ..., M), given a 0-d tensor");
  const int64_t m = indices.shape.back();
  if (m < 1 || m > rank) {
    throw Error("input 'indices' " + ShapeToString(indices.shape) + ": the last dim (M = " + std::to_string(m) +
                ") must be in [1, " + std::to_string(rank) + "], the " + axes + " of data " +
                ShapeToString(data.shape));
  }
  return m;
}

const RegisterConverter kGatherElements({"GatherElements"}, {"axis"}, [](NodeContext& ctx) {
  const Value& data = ctx.In(0);
  const int64_t axis = NormalizeAxis(ctx.Int("axis", 0), data.shape.size());
  return std::vector<Value>{ctx.Apply("take_along_axis", {data, ctx.In(1)}, {{"axis", axis}})};
});

std::vector<Value> ConvertScatterElements(NodeContext& ctx) {
  const Value& data = ctx.In(0);
  const int64_t axis = NormalizeAxis(ctx.Int("axis", 0), data.shape.size());
  return std::vector<Value>{ctx.Apply("scatter_elements", {data, ctx.In(1), ctx.In(2)},
                                      {{"axis", axis}, {"reduction", ctx.Str("reduction", "none")}})};
}

// ScatterElements-16 added `reduction` (add, mul), 18 max and min.
const RegisterConverter kScatterElements({"ScatterElements"}, {"axis", "reduction"}, ConvertScatterElements);
// Scatter (9, deprecated in 11) is ScatterElements without reduction.
const RegisterConverter kScatter({"Scatter"}, {"axis"}, ConvertScatterElements);

const RegisterConverter kScatterNd({"ScatterND"}, {"reduction"}, [](NodeContext& ctx) {
  const Value& data = ctx.In(0);
  const Value& indices = ctx.In(1);
  const Value& updates = ctx.In(2);
  const int64_t m = TupleLength(indices, static_cast<int64_t>(data.shape.size()), data, "rank");
  Shape expected(indices.shape.begin(), indices.shape.end() - 1);
  expected.insert(expected.end(), data.shape.begin() + m, data.shape.end());
  if (updates.shape != expected) {
    throw Error("input 'updates': expected shape " + ShapeToString(expected) + " (indices.shape[:-1] + data.shape[" +
                std::to_string(m) + ":]), given " + ShapeToString(updates.shape));
  }
  return std::vector<Value>{ctx.Apply("scatter_nd_update", {data, TuplesFirst(ctx, indices), updates},
                                      {{"reduction", ctx.Str("reduction", "none")}})};
});

// The batch coordinates GatherND's batch_dims imply: for indices (B0, ..., Bb-1, Y..., M),
// a tensor (B0, ..., Y..., b) of indices' dtype whose last axis holds each position's
// first b coordinates. Put before the index tuples, they make plain gather_nd tuples.
Tensor BatchCoordinates(const Shape& indices, size_t batch_dims, DType dtype) {
  Shape shape(indices.begin(), indices.end() - 1);
  const int64_t positions = Product(shape, 0, shape.size());
  shape.push_back(static_cast<int64_t>(batch_dims));
  Tensor coords(shape, dtype);
  for (int64_t p = 0; p < positions; ++p) {
    int64_t rest = p;
    for (size_t d = indices.size() - 1; d-- > 0;) {
      if (d < batch_dims) op_util::StoreInt(coords, p * static_cast<int64_t>(batch_dims) + d, rest % indices[d]);
      rest /= indices[d];
    }
  }
  return coords;
}

const RegisterConverter kGatherNd({"GatherND"}, {"batch_dims"}, [](NodeContext& ctx) {
  const Value& data = ctx.In(0);
  Value indices = ctx.In(1);
  const int64_t rank = static_cast<int64_t>(data.shape.size());
  const int64_t batch_dims = ctx.Int("batch_dims", 0);
  const int64_t limit = std::min(rank, static_cast<int64_t>(indices.shape.size()));
  if (batch_dims < 0 || batch_dims >= limit) {
    throw Error("attribute 'batch_dims': expected 0 <= batch_dims < " + std::to_string(limit) +
                " (the lesser rank of data " + ShapeToString(data.shape) + " and indices " +
                ShapeToString(indices.shape) + "), given " + std::to_string(batch_dims));
  }
  const int64_t m = TupleLength(indices, rank - batch_dims, data, "rank less batch_dims");
  const auto b = static_cast<size_t>(batch_dims);
  if (b > 0) {
    if (!std::equal(data.shape.begin(), data.shape.begin() + batch_dims, indices.shape.begin())) {
      throw Error("inputs 'data' " + ShapeToString(data.shape) + " and 'indices' " + ShapeToString(indices.shape) +
                  ": their first " + std::to_string(batch_dims) + " dims (batch_dims) must agree");
    }
    const Value coords = ctx.MakeConstant(BatchCoordinates(indices.shape, b, indices.dtype));
    indices = ctx.Apply("Concat", {coords, indices},
                        {{"dim", static_cast<int64_t>(indices.shape.size()) - 1}, {"num_args", int64_t{2}}});
  }
  // gather_nd takes at least 2-d indices: a single tuple (M) is one row (M, 1).
  if (indices.shape.size() == 1) {
    const Value out = ctx.Apply("gather_nd", {data, ctx.ReshapeTo(indices, {m, 1})});
    return std::vector<Value>{ctx.ReshapeTo(out, Shape(data.shape.begin() + m, data.shape.end()))};
  }
  return std::vector<Value>{ctx.Apply("gather_nd", {data, TuplesFirst(ctx, indices)})};
});

}  // namespace
}  // namespace kiln::onnx_import
