// ONNX converters for neural-network layers: convolution, pooling, dense layers,
// normalization, dropout, softmax and activations.
#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "symbol/onnx/onnx_converter.h"
#include "symbol/onnx/onnx_tensor.h"

namespace kiln::onnx_import {
namespace {

const RegisterConverter kConv({"Conv"}, {"auto_pad", "dilations", "group", "kernel_shape", "pads", "strides"},
                              [](NodeContext& ctx) {
                                const Value& x = ctx.In(0);
                                const Value& weight = ctx.In(1);
                                Require2D(x, "Conv");
                                if (weight.shape.size() != x.shape.size()) {
                                  throw Error("weight " + ShapeToString(weight.shape) + " must be " +
                                              std::to_string(x.shape.size()) + "-d like input " +
                                              ShapeToString(x.shape));
                                }
                                const std::vector<int64_t> kernel(weight.shape.begin() + 2, weight.shape.end());
                                Window w = ResolveWindow(ctx, x.shape, ctx.Ints("kernel_shape", kernel));
                                const Value input = PadForWindow(ctx, x, w, 0.0);
                                std::vector<Value> inputs = {input, weight};
                                if (ctx.Has(2)) inputs.push_back(ctx.In(2));
                                return std::vector<Value>{ctx.Apply("Convolution", inputs,
                                                                    {{"kernel", w.kernel},
                                                                     {"stride", w.strides},
                                                                     {"dilate", w.dilations},
                                                                     {"pad", w.pad_begin},
                                                                     {"num_filter", weight.shape[0]},
                                                                     {"num_group", ctx.Int("group", 1)},
                                                                     {"no_bias", !ctx.Has(2)}})};
                              });

std::vector<Value> ConvertPool(NodeContext& ctx, const std::string& pool_type) {
  const Value& x = ctx.In(0);
  Require2D(x, ctx.node().op_type());
  if (ctx.opset() >= 8 && ctx.node().output_size() > 1 && !ctx.node().output(1).empty()) {
    throw Error("the Indices output is not supported");
  }
  if (ctx.Int("storage_order", 0) != 0) throw Error("storage_order 1 (column major) is not supported");
  Window w = ResolveWindow(ctx, x.shape, ctx.Ints("kernel_shape"));
  for (const int64_t d : w.dilations) {
    if (d != 1) throw Error("dilations " + ShapeToString(w.dilations) + " are not supported for pooling");
  }
  const bool count_include_pad = ctx.Int("count_include_pad", 0) != 0;
  // Asymmetric pads go into a Pad node, so the pooling sees none; an average that
  // leaves the pads out then is the padded sum over the count of real elements, the
  // same pooling of ones (a constant, folded).
  const bool divide_by_count = pool_type == "avg" && !count_include_pad && w.pad_begin != w.pad_end;
  // ONNX's output size with ceil_mode: rounded up, less one where the last window would
  // start in the end padding (the rule PyTorch follows). kiln's "full" convention rounds
  // up without that rule and "valid" rounds down: whichever gives ONNX's size, on both
  // axes.
  const bool ceil_mode = ctx.Int("ceil_mode", 0) != 0;
  std::vector<int64_t> onnx_size(2);
  for (size_t a = 0; a < 2; ++a) {
    const int64_t length = x.shape[2 + a], k = w.kernel[a], s = w.strides[a];
    const int64_t span = length + w.pad_begin[a] + w.pad_end[a] - k;
    int64_t size = (ceil_mode ? (span + s - 1) / s : span / s) + 1;
    if (ceil_mode && (size - 1) * s >= length + w.pad_begin[a]) --size;
    onnx_size[a] = size;
  }
  Window ones_window = w;
  const Value input = PadForWindow(ctx, x, w, pool_type == "max" ? -std::numeric_limits<double>::infinity() : 0.0);
  std::string convention = "valid";
  if (ceil_mode) {
    bool full_fits = true, valid_fits = true;
    for (size_t a = 0; a < 2; ++a) {
      const int64_t span = input.shape[2 + a] + 2 * w.pad_begin[a] - w.kernel[a], s = w.strides[a];
      full_fits = full_fits && (span + s - 1) / s + 1 == onnx_size[a];
      valid_fits = valid_fits && span / s + 1 == onnx_size[a];
    }
    if (!full_fits && !valid_fits) {
      throw Error("ceil_mode: the output size ONNX gives here (" + ShapeToString(onnx_size) +
                  ") is neither rounding of kiln's pooling on both axes");
    }
    convention = full_fits ? "full" : "valid";
  }
  AttrMap attrs = {{"kernel", w.kernel},
                   {"stride", w.strides},
                   {"pad", w.pad_begin},
                   {"pool_type", pool_type},
                   {"pooling_convention", convention}};
  if (pool_type == "avg") attrs.emplace_back("count_include_pad", count_include_pad || divide_by_count);
  const Value y = ctx.Apply("Pooling", {input}, attrs);
  if (!divide_by_count) return {y};
  Tensor ones({1, 1, x.shape[2], x.shape[3]}, x.dtype);
  for (int64_t i = 0; i < ones.size(); ++i) ones.SetDouble(i, 1);
  const Value count =
      ctx.Apply("Pooling", {PadForWindow(ctx, ctx.MakeConstant(std::move(ones)), ones_window, 0.0)}, attrs);
  return {ctx.Apply("broadcast_div", {y, count})};
}

const RegisterConverter kMaxPool({"MaxPool"},
                                 {"auto_pad", "ceil_mode", "dilations", "kernel_shape", "pads", "storage_order",
                                  "strides"},
                                 [](NodeContext& ctx) { return ConvertPool(ctx, "max"); });

const RegisterConverter kAveragePool({"AveragePool"},
                                     {"auto_pad", "ceil_mode", "count_include_pad", "kernel_shape", "pads", "strides"},
                                     [](NodeContext& ctx) { return ConvertPool(ctx, "avg"); });

const RegisterConverter kGlobalPool({"GlobalAveragePool", "GlobalMaxPool"}, {}, [](NodeContext& ctx) {
  Require2D(ctx.In(0), ctx.node().op_type());
  const std::string type = ctx.node().op_type() == "GlobalMaxPool" ? "max" : "avg";
  return std::vector<Value>{
      ctx.Apply("Pooling", {ctx.In(0)}, {{"global_pool", true}, {"pool_type", type}, {"kernel", {1, 1}}})};
});

const RegisterConverter kGemm({"Gemm"}, {"alpha", "beta", "transA", "transB", "broadcast"}, [](NodeContext& ctx) {
  const Value& a = ctx.In(0);
  const Value& b = ctx.In(1);
  const double alpha = ctx.Float("alpha", 1.0), beta = ctx.Float("beta", 1.0);
  const bool trans_a = ctx.Int("transA", 0) != 0, trans_b = ctx.Int("transB", 0) != 0;
  if (a.shape.size() != 2 || b.shape.size() != 2) {
    throw Error("A " + ShapeToString(a.shape) + " and B " + ShapeToString(b.shape) + " must be 2-d");
  }
  const int64_t n = trans_b ? b.shape[0] : b.shape[1];
  const bool has_c = ctx.Has(2) && beta != 0;
  // The common case, a dense layer: FullyConnected with the weight (N, K), folded.
  if (!trans_a && b.constant && (!has_c || (ctx.In(2).constant && ctx.In(2).shape.size() <= 1))) {
    Value weight = trans_b ? b : ctx.Apply("transpose", {b});
    if (alpha != 1) weight = ctx.Apply("_mul_scalar", {weight}, {{"scalar", alpha}});
    std::vector<Value> inputs = {a, weight};
    if (has_c) {
      Value bias = BroadcastTo(ctx, ctx.In(2), {n});
      if (beta != 1) bias = ctx.Apply("_mul_scalar", {bias}, {{"scalar", beta}});
      inputs.push_back(bias);
    }
    return std::vector<Value>{ctx.Apply("FullyConnected", inputs, {{"num_hidden", n}, {"no_bias", !has_c}})};
  }
  Value y = ctx.Apply("dot", {a, b}, {{"transpose_a", trans_a}, {"transpose_b", trans_b}});
  if (alpha != 1) y = ctx.Apply("_mul_scalar", {y}, {{"scalar", alpha}});
  if (has_c) {
    Value c = ctx.In(2);
    if (beta != 1) c = ctx.Apply("_mul_scalar", {c}, {{"scalar", beta}});
    y = ctx.Apply("broadcast_add", {y, c});
  }
  return std::vector<Value>{y};
});

// numpy matmul: 1-d operands are promoted and their axis removed again; batch axes
// broadcast.
const RegisterConverter kMatMul({"MatMul"}, {}, [](NodeContext& ctx) {
  Value a = ctx.In(0), b = ctx.In(1);
  if (a.shape.empty() || b.shape.empty()) throw Error("MatMul of a scalar");
  const bool a_vector = a.shape.size() == 1, b_vector = b.shape.size() == 1;
  if (a_vector) a = ctx.ReshapeTo(a, {1, a.shape[0]});
  if (b_vector) b = ctx.ReshapeTo(b, {b.shape[0], 1});
  const int64_t m = a.shape[a.shape.size() - 2], k = a.shape.back();
  const int64_t n = b.shape.back();
  if (b.shape[b.shape.size() - 2] != k) {
    throw Error("inner dimensions differ: A " + ShapeToString(ctx.In(0).shape) + ", B " +
                ShapeToString(ctx.In(1).shape));
  }
  const Shape a_batch(a.shape.begin(), a.shape.end() - 2), b_batch(b.shape.begin(), b.shape.end() - 2);
  const Shape batch = op_util::BroadcastShapes(a_batch, b_batch);
  Value y;
  if (b_batch.empty()) {
    if (b.constant) {
      // A dense layer over the last axis: FullyConnected keeps the leading axes.
      const Value weight = ctx.Apply("transpose", {b});
      y = ctx.Apply("FullyConnected", {a, weight}, {{"num_hidden", n}, {"no_bias", true}, {"flatten", false}});
    } else {
      const Value flat = ctx.ReshapeTo(a, {Product(a.shape, 0, a.shape.size() - 1), k});
      Shape out = a.shape;
      out.back() = n;
      y = ctx.ReshapeTo(ctx.Apply("dot", {flat, b}), out);
    }
  } else {
    const int64_t count = Product(batch, 0, batch.size());
    Shape a_full = batch, b_full = batch;
    a_full.insert(a_full.end(), {m, k});
    b_full.insert(b_full.end(), {k, n});
    const Value a3 = ctx.ReshapeTo(BroadcastTo(ctx, a, a_full), {count, m, k});
    const Value b3 = ctx.ReshapeTo(BroadcastTo(ctx, b, b_full), {count, k, n});
    Shape out = batch;
    out.insert(out.end(), {m, n});
    y = ctx.ReshapeTo(ctx.Apply("batch_dot", {a3, b3}), out);
  }
  Shape final_shape = y.shape;
  if (b_vector) final_shape.pop_back();
  if (a_vector) final_shape.erase(final_shape.end() - (b_vector ? 1 : 2));
  return std::vector<Value>{ctx.ReshapeTo(y, final_shape)};
});

const RegisterConverter kLeakyRelu({"LeakyRelu"}, {"alpha"}, [](NodeContext& ctx) {
  return std::vector<Value>{Unary(ctx, "LeakyReLU", {{"act_type", "leaky"}, {"slope", ctx.Float("alpha", 0.01)}})};
});

// Inference only: Dropout passes its input through (the mask, if asked for, is all
// true: bool since opset 10, the input's type before).
const RegisterConverter kDropout({"Dropout"}, {"ratio", "seed", "is_test"}, [](NodeContext& ctx) {
  if (ctx.num_inputs() > 2 && ctx.Has(2)) {
    const Tensor& training = ctx.Const(2, "training_mode");
    if (training.size() > 0 && training.GetDouble(0) != 0) throw Error("training_mode true is not supported");
  }
  Tensor mask(ctx.In(0).shape, ctx.opset() >= 10 ? DType::kBool : ctx.In(0).dtype);
  for (int64_t i = 0; i < mask.size(); ++i) mask.SetDouble(i, 1);
  return std::vector<Value>{ctx.In(0), ctx.MakeConstant(std::move(mask))};
});

const RegisterConverter kClip({"Clip"}, {"min", "max"}, [](NodeContext& ctx) {
  const double inf = std::numeric_limits<double>::infinity();
  const Value& x = ctx.In(0);
  const auto bound = [&](size_t i, const std::string& what) -> std::optional<Value> {
    if (ctx.opset() < 11 || !ctx.Has(i)) return std::nullopt;
    if (ctx.Const(i, what).size() != 1) throw Error(what + " must have one element");
    return ctx.ReshapeTo(ctx.In(i), {});
  };
  const std::optional<Value> min = bound(1, "min"), max = bound(2, "max");
  if (!IsFloat(x.dtype)) {
    if (ctx.opset() < 11) throw Error("Clip before opset 11 takes floating point inputs only");
    // Integer bounds exactly, and only those given: clip's double bounds would round
    // int64 beyond 2^53 and clamp what lies beyond them. max after min: min > max
    // gives max, as ONNX (and numpy) do.
    Value y = x;
    if (min) y = ctx.Apply("broadcast_maximum", {y, ctx.Apply("Cast", {*min}, {{"dtype", x.dtype}})});
    if (max) y = ctx.Apply("broadcast_minimum", {y, ctx.Apply("Cast", {*max}, {{"dtype", x.dtype}})});
    return std::vector<Value>{y};
  }
  double low = -inf, high = inf;
  if (ctx.opset() < 11) {
    low = ctx.Float("min", -inf);
    high = ctx.Float("max", inf);
  } else {
    if (min) low = min->constant->GetDouble(0);
    if (max) high = max->constant->GetDouble(0);
  }
  if (low > high) {
    // ONNX (like numpy) then gives max everywhere.
    low = high;
  }
  const double lowest = -std::numeric_limits<double>::max();
  return std::vector<Value>{
      ctx.Apply("clip", {x}, {{"a_min", std::max(low, lowest)}, {"a_max", std::min(high, -lowest)}})};
});

std::vector<Value> ConvertSoftmax(NodeContext& ctx, const std::string& op) {
  const Value& x = ctx.In(0);
  if (ctx.opset() >= 13) {
    return {ctx.Apply(op, {x}, {{"axis", NormalizeAxis(ctx.Int("axis", -1), x.shape.size())}})};
  }
  // Before opset 13 the input is seen as 2-d: [prod(dims < axis), prod(dims >= axis)].
  const int64_t axis = NormalizeAxis(ctx.Int("axis", 1), x.shape.size());
  const Value flat = ctx.ReshapeTo(x, {Product(x.shape, 0, axis), Product(x.shape, axis, x.shape.size())});
  return {ctx.ReshapeTo(ctx.Apply(op, {flat}, {{"axis", 1}}), x.shape)};
}

const RegisterConverter kSoftmax({"Softmax"}, {"axis"},
                                 [](NodeContext& ctx) { return ConvertSoftmax(ctx, "softmax"); });

const RegisterConverter kLogSoftmax({"LogSoftmax"}, {"axis"},
                                    [](NodeContext& ctx) { return ConvertSoftmax(ctx, "log_softmax"); });

const RegisterConverter kBatchNorm({"BatchNormalization"},
                                   {"epsilon", "momentum", "spatial", "training_mode", "is_test", "consumed_inputs"},
                                   [](NodeContext& ctx) {
                                     if (ctx.Int("training_mode", 0) != 0)
                                       throw Error("training_mode 1 is not supported");
                                     if (ctx.Int("spatial", 1) != 1) throw Error("spatial 0 is not supported");
                                     for (int i = 1; i < ctx.node().output_size(); ++i) {
                                       if (!ctx.node().output(i).empty()) {
                                         throw Error("outputs beyond Y (training statistics) are not supported");
                                       }
                                     }
                                     std::vector<Value> inputs;
                                     for (size_t i = 0; i < 5; ++i) inputs.push_back(ctx.In(i));
                                     return std::vector<Value>{ctx.Apply("BatchNorm", inputs,
                                                                         {{"eps", ctx.Float("epsilon", 1e-5)},
                                                                          {"momentum", ctx.Float("momentum", 0.9)},
                                                                          {"fix_gamma", false},
                                                                          {"use_global_stats", true}})};
                                   });

// x normalized over `axes` in primitives (kiln has no normalization operator for them):
// the mean and 1 / sqrt(variance + eps) kept with the reduced axes, and (x - mean) *
// that.
struct Normalized {
  Value mean, inv_std, y;
};

Normalized Normalize(NodeContext& ctx, const Value& x, const std::vector<int64_t>& axes) {
  const AttrMap reduce = {{"axis", axes}, {"keepdims", true}};
  const Value mean = ctx.Apply("mean", {x}, reduce);
  const Value centered = ctx.Apply("broadcast_sub", {x, mean});
  const Value variance = ctx.Apply("mean", {ctx.Apply("square", {centered})}, reduce);
  const Value inv_std =
      ctx.Apply("rsqrt", {ctx.Apply("_plus_scalar", {variance}, {{"scalar", ctx.Float("epsilon", 1e-5)}})});
  return {mean, inv_std, ctx.Apply("broadcast_mul", {centered, inv_std})};
}

// LayerNormalization (opset 17): over the axes from `axis` on.
const RegisterConverter kLayerNorm({"LayerNormalization"}, {"axis", "epsilon", "stash_type"}, [](NodeContext& ctx) {
  const Value& x = ctx.In(0);
  if (ctx.Int("stash_type", 1) != 1) throw Error("stash_type other than 1 (float) is not supported");
  const int64_t axis = NormalizeAxis(ctx.Int("axis", -1), x.shape.size());
  std::vector<int64_t> axes;
  for (int64_t a = axis; a < static_cast<int64_t>(x.shape.size()); ++a) axes.push_back(a);
  const Normalized n = Normalize(ctx, x, axes);
  Value y = ctx.Apply("broadcast_mul", {n.y, ctx.In(1)});
  if (ctx.Has(2)) y = ctx.Apply("broadcast_add", {y, ctx.In(2)});
  return std::vector<Value>{y, n.mean, n.inv_std};
});

const RegisterConverter kElu({"Elu"}, {"alpha"}, [](NodeContext& ctx) {
  return std::vector<Value>{Unary(ctx, "LeakyReLU", {{"act_type", "elu"}, {"slope", ctx.Float("alpha", 1.0)}})};
});

const RegisterConverter kSoftplus({"Softplus"}, {}, [](NodeContext& ctx) {
  return std::vector<Value>{Unary(ctx, "Activation", {{"act_type", "softrelu"}})};
});

// kiln's selu (MXNet's) has the constants of the SELU paper, ONNX's defaults.
const RegisterConverter kSelu({"Selu"}, {"alpha", "gamma"}, [](NodeContext& ctx) {
  const double alpha = ctx.Float("alpha", 1.67326319217681884765625);
  const double gamma = ctx.Float("gamma", 1.05070102214813232421875);
  if (std::fabs(alpha - 1.6732632423543772) > 1e-6 || std::fabs(gamma - 1.0507009873554805) > 1e-6) {
    throw Error("alpha " + std::to_string(alpha) + " and gamma " + std::to_string(gamma) +
                " other than SELU's constants are not supported");
  }
  return std::vector<Value>{Unary(ctx, "LeakyReLU", {{"act_type", "selu"}})};
});

// PRelu with any slope that broadcasts to x: x where x >= 0, else slope * x (a
// select, so that x = inf gives inf rather than inf - inf).
const RegisterConverter kPRelu({"PRelu"}, {}, [](NodeContext& ctx) {
  const Value& x = ctx.In(0);
  const Value scaled = BroadcastTo(ctx, ctx.Apply("broadcast_mul", {x, ctx.In(1)}), x.shape);
  const Value positive = ctx.Apply("_greater_equal_scalar", {x}, {{"scalar", 0.0}});
  return std::vector<Value>{ctx.Apply("where", {positive, x, scaled})};
});

const RegisterConverter kHardSigmoid({"HardSigmoid"}, {"alpha", "beta"}, [](NodeContext& ctx) {
  const Value scaled = Unary(ctx, "_mul_scalar", {{"scalar", ctx.Float("alpha", 0.2)}});
  const Value shifted = ctx.Apply("_plus_scalar", {scaled}, {{"scalar", ctx.Float("beta", 0.5)}});
  return std::vector<Value>{ctx.Apply("clip", {shifted}, {{"a_min", 0.0}, {"a_max", 1.0}})};
});

// HardSwish (opset 14): x * HardSigmoid(x) with alpha 1/6, beta 1/2.
const RegisterConverter kHardSwish({"HardSwish"}, {}, [](NodeContext& ctx) {
  const Value scaled = Unary(ctx, "_mul_scalar", {{"scalar", 1.0 / 6.0}});
  const Value shifted = ctx.Apply("_plus_scalar", {scaled}, {{"scalar", 0.5}});
  const Value gate = ctx.Apply("clip", {shifted}, {{"a_min", 0.0}, {"a_max", 1.0}});
  return std::vector<Value>{ctx.Apply("broadcast_mul", {ctx.In(0), gate})};
});

// Mish (opset 18): x * tanh(softplus(x)).
const RegisterConverter kMish({"Mish"}, {}, [](NodeContext& ctx) {
  const Value softplus = Unary(ctx, "Activation", {{"act_type", "softrelu"}});
  return std::vector<Value>{ctx.Apply("broadcast_mul", {ctx.In(0), ctx.Apply("tanh", {softplus})})};
});

// InstanceNormalization: per (image, channel) statistics over the spatial axes.
const RegisterConverter kInstanceNorm({"InstanceNormalization"}, {"epsilon"}, [](NodeContext& ctx) {
  const Value& x = ctx.In(0);
  if (x.shape.size() < 3) throw Error("input must have spatial axes");
  std::vector<int64_t> axes;
  for (size_t a = 2; a < x.shape.size(); ++a) axes.push_back(static_cast<int64_t>(a));
  const Normalized n = Normalize(ctx, x, axes);
  Shape channel(x.shape.size(), 1);
  channel[1] = x.shape[1];
  const Value scale = ctx.ReshapeTo(ctx.In(1), channel);
  const Value bias = ctx.ReshapeTo(ctx.In(2), channel);
  return std::vector<Value>{ctx.Apply("broadcast_add", {ctx.Apply("broadcast_mul", {n.y, scale}), bias})};
});

// x where x > alpha, else 0.
const RegisterConverter kThresholdedRelu({"ThresholdedRelu"}, {"alpha"}, [](NodeContext& ctx) {
  const Value& x = ctx.In(0);
  Tensor alpha({1}, x.dtype);
  alpha.SetDouble(0, ctx.Float("alpha", 1.0));
  const Value mask = ctx.Apply("broadcast_greater", {x, ctx.MakeConstant(std::move(alpha))});
  // A select (the mask is the zero), as x * mask gives NaN for x = -inf.
  return std::vector<Value>{ctx.Apply("where", {mask, x, mask})};
});

}  // namespace
}  // namespace kiln::onnx_import
