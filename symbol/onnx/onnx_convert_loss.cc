// ONNX converters for the training losses NegativeLogLikelihoodLoss and
// SoftmaxCrossEntropyLoss, composed of kiln operators: the target class is picked along
// axis 1, weighted, masked where the target is ignore_index, and reduced.
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "symbol/onnx/onnx_converter.h"
#include "symbol/onnx/onnx_tensor.h"

namespace kiln::onnx_import {
namespace {

const std::set<std::string> kLossAttrs = {"ignore_index", "reduction"};

// A one-element constant of `dtype` holding `value` (exact for integers).
Value Scalar(NodeContext& ctx, DType dtype, int64_t value) {
  Tensor t({1}, dtype);
  op_util::StoreInt(t, 0, value);
  return ctx.MakeConstant(std::move(t));
}

// A one-element value as the 0-d tensor ONNX's reductions give: kiln's reductions give
// (1,) and its Reshape takes no empty shape, so the element is taken with a 0-d index.
Value ToScalar(NodeContext& ctx, const Value& v) {
  Tensor index(Shape{}, DType::kInt64);
  op_util::StoreInt(index, 0, 0);
  return ctx.Apply("take", {ctx.ReshapeTo(v, {1}), ctx.MakeConstant(std::move(index))}, {{"axis", 0}});
}

// The loss of `log_prob` (N, C, d1, ...) at `target` (N, d1, ...), as both operators
// define it from the log-probabilities on: -log_prob[n, target[n, ...], ...] * weight[target],
// 0 where the target is ignore_index, then reduced.
Value NllLoss(NodeContext& ctx, const Value& log_prob, const Value& target, const std::optional<Value>& weight) {
  const std::string reduction = ctx.Str("reduction", std::string("mean"));
  if (reduction != "none" && reduction != "sum" && reduction != "mean") {
    throw Error("attribute 'reduction' is '" + reduction + "', expected one of none, sum, mean");
  }
  const Shape& shape = log_prob.shape;
  if (shape.size() < 2) throw Error("input 0 must be (N, C) or (N, C, d1, ...), given " + ShapeToString(shape));
  if (!IsFloat(log_prob.dtype)) {
    throw Error("input 0 must be floating point, given " + std::string(DTypeName(log_prob.dtype)));
  }
  Shape target_shape = shape;
  target_shape.erase(target_shape.begin() + 1);
  if (target.shape != target_shape) {
    throw Error("target (input 1) must have shape " + ShapeToString(target_shape) + " for input " +
                ShapeToString(shape) + ", given " + ShapeToString(target.shape));
  }
  if (target.dtype != DType::kInt32 && target.dtype != DType::kInt64) {
    throw Error("target (input 1) must be int32 or int64, given " + std::string(DTypeName(target.dtype)));
  }
  if (weight && weight->shape != Shape{shape[1]}) {
    throw Error("weight (input 2) must have shape (" + std::to_string(shape[1]) + ",) (one per class), given " +
                ShapeToString(weight->shape));
  }

  // Targets out of range are clipped into it: an ignored one is masked out below, and
  // any other is undefined in ONNX.
  Value loss = ctx.Apply("negative", {ctx.Apply("pick", {log_prob, target}, {{"axis", 1}, {"mode", "clip"}})});
  std::optional<Value> weights;  // per target element; none means all ones
  if (weight) {
    if (weight->dtype != log_prob.dtype) {
      throw Error("weight (input 2) must have the input's type " + std::string(DTypeName(log_prob.dtype)) + ", given " +
                  std::string(DTypeName(weight->dtype)));
    }
    weights = ctx.Apply("take", {*weight, target}, {{"axis", 0}, {"mode", "clip"}});
    loss = ctx.Apply("broadcast_mul", {loss, *weights});
  }
  if (ctx.HasAttr("ignore_index")) {
    const Value kept = ctx.Apply("broadcast_not_equal", {target, Scalar(ctx, target.dtype, ctx.Int("ignore_index"))});
    const Value zeros = ctx.Apply("zeros_like", {loss});
    // A select, not a product: the ignored element's log-probability may be infinite.
    loss = ctx.Apply("where", {kept, loss, zeros});
    weights =
        weights ? ctx.Apply("where", {kept, *weights, zeros}) : ctx.Apply("Cast", {kept}, {{"dtype", loss.dtype}});
  }
  if (reduction == "none") return loss;
  const Value sum = ctx.Apply("sum", {loss});
  if (reduction == "sum") return ToScalar(ctx, sum);
  // mean: over the weights of the targets that count (their number without weights).
  if (!weights) return ToScalar(ctx, ctx.Apply("mean", {loss}));
  return ToScalar(ctx, ctx.Apply("broadcast_div", {sum, ctx.Apply("sum", {*weights})}));
}

std::optional<Value> OptionalInput(const NodeContext& ctx, size_t i) {
  return ctx.Has(i) ? std::optional<Value>(ctx.In(i)) : std::nullopt;
}

// NegativeLogLikelihoodLoss (opset 12): input holds log-probabilities.
const RegisterConverter kNllLoss({"NegativeLogLikelihoodLoss"}, kLossAttrs, [](NodeContext& ctx) {
  return std::vector<Value>{NllLoss(ctx, ctx.In(0), ctx.In(1), OptionalInput(ctx, 2))};
});

// SoftmaxCrossEntropyLoss (opset 12): log_softmax over the classes (axis 1), then as
// NegativeLogLikelihoodLoss; the log-probabilities are the optional second output.
const RegisterConverter kSoftmaxCrossEntropyLoss({"SoftmaxCrossEntropyLoss"}, kLossAttrs, [](NodeContext& ctx) {
  const Value& x = ctx.In(0);
  if (x.shape.size() < 2) throw Error("input 0 must be (N, C) or (N, C, d1, ...), given " + ShapeToString(x.shape));
  const Value log_prob = ctx.Apply("log_softmax", {x}, {{"axis", 1}});
  return std::vector<Value>{NllLoss(ctx, log_prob, ctx.In(1), OptionalInput(ctx, 2)), log_prob};
});

}  // namespace
}  // namespace kiln::onnx_import
