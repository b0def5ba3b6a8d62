// ONNX converters for math: pointwise functions, arithmetic, comparison and logic with
// broadcasting, reductions, arg-max/min and selection.
#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "symbol/onnx/onnx_converter.h"
#include "symbol/onnx/onnx_tensor.h"

namespace kiln::onnx_import {

// Halves to even, as numpy and ONNX round: floor(x + 0.5), less one where that was a
// tie that landed on an odd number. From 2^mantissa on every value is an integer and
// x + 0.5 itself rounds (to even: odd x would gain one), so those stay as they are.
Value RoundHalfToEven(NodeContext& ctx, const Value& x) {
  const Value shifted = ctx.Apply("_plus_scalar", {x}, {{"scalar", 0.5}});
  const Value down = ctx.Apply("floor", {shifted});
  const Value tie = ctx.Apply("broadcast_equal", {down, shifted});
  const Value odd = ctx.Apply("_mod_scalar", {down}, {{"scalar", 2.0}});
  const Value rounded = ctx.Apply("broadcast_sub", {down, ctx.Apply("broadcast_mul", {tie, odd})});
  const int mantissa = x.dtype == DType::kFloat16    ? 10
                       : x.dtype == DType::kBFloat16 ? 7
                       : x.dtype == DType::kFloat64  ? 52
                                                     : 23;
  const Value integral =
      ctx.Apply("_greater_equal_scalar", {ctx.Apply("abs", {x})}, {{"scalar", std::ldexp(1.0, mantissa)}});
  return ctx.Apply("where", {integral, x, rounded});
}

namespace {

const bool kUnaryRegistered = [] {
  for (const UnaryMapping& m : std::vector<UnaryMapping>{{"Relu", "relu"},         {"Sigmoid", "sigmoid"},
                                                         {"Tanh", "tanh"},         {"Exp", "exp"},
                                                         {"Log", "log"},           {"Sqrt", "sqrt"},
                                                         {"Neg", "negative"},      {"Abs", "abs"},
                                                         {"Erf", "erf"},           {"Reciprocal", "reciprocal"},
                                                         {"Softsign", "softsign"}, {"Floor", "floor"},
                                                         {"Ceil", "ceil"},         {"Sign", "sign"},
                                                         {"Sin", "sin"},           {"Cos", "cos"},
                                                         {"Tan", "tan"},           {"Asin", "arcsin"},
                                                         {"Acos", "arccos"},       {"Atan", "arctan"},
                                                         {"Sinh", "sinh"},         {"Cosh", "cosh"},
                                                         {"Asinh", "arcsinh"},     {"Acosh", "arccosh"},
                                                         {"Atanh", "arctanh"}}) {
    const std::string kiln = m.kiln;
    RegisterConverter({m.onnx}, {"consumed_inputs"},
                      [kiln](NodeContext& ctx) { return std::vector<Value>{Unary(ctx, kiln)}; });
  }
  return true;
}();

// Binary arithmetic with multidirectional broadcasting (opset 7 on; the legacy
// broadcast/axis attributes of opset 6 and before are not accepted).
const bool kBinaryRegistered = [] {
  for (const UnaryMapping& m : std::vector<UnaryMapping>{{"Add", "broadcast_add"},
                                                         {"Sub", "broadcast_sub"},
                                                         {"Mul", "broadcast_mul"},
                                                         {"Div", "broadcast_div"},
                                                         {"Pow", "broadcast_power"},
                                                         {"Equal", "broadcast_equal"},
                                                         {"Greater", "broadcast_greater"},
                                                         {"Less", "broadcast_lesser"},
                                                         {"GreaterOrEqual", "broadcast_greater_equal"},
                                                         {"LessOrEqual", "broadcast_lesser_equal"},
                                                         {"And", "broadcast_logical_and"},
                                                         {"Or", "broadcast_logical_or"},
                                                         {"Xor", "broadcast_logical_xor"}}) {
    const std::string kiln = m.kiln;
    RegisterConverter({m.onnx}, {}, [kiln](NodeContext& ctx) {
      Value a = ctx.In(0);
      Value b = ctx.In(1);
      // Pow's exponent may have another type; everything else has one type. An integer
      // base with a float exponent computes in float and truncates back (pow(4, 0.5)
      // is 2), as ONNX Runtime does.
      const DType out_type = a.dtype;
      if (!IsFloat(a.dtype) && IsFloat(b.dtype)) a = ctx.Apply("Cast", {a}, {{"dtype", DType::kFloat64}});
      if (b.dtype != a.dtype) b = ctx.Apply("Cast", {b}, {{"dtype", a.dtype}});
      Value y = ctx.Apply(kiln, {a, b});
      if (y.dtype != out_type) y = ctx.Apply("Cast", {y}, {{"dtype", out_type}});
      // Comparisons and logical operators give bool in ONNX, the operand type in kiln.
      if (ctx.node().op_type() != "Pow" && kiln != "broadcast_add" && kiln != "broadcast_sub" &&
          kiln != "broadcast_mul" && kiln != "broadcast_div") {
        y = ctx.Apply("Cast", {y}, {{"dtype", DType::kBool}});
      }
      return std::vector<Value>{y};
    });
  }
  // Variadic: folded pairwise.
  for (const UnaryMapping& m : std::vector<UnaryMapping>{
           {"Max", "broadcast_maximum"}, {"Min", "broadcast_minimum"}, {"Sum", "broadcast_add"}}) {
    const std::string kiln = m.kiln;
    RegisterConverter({m.onnx}, {}, [kiln](NodeContext& ctx) {
      Value y = ctx.In(0);
      for (size_t i = 1; i < ctx.num_inputs(); ++i) y = ctx.Apply(kiln, {y, ctx.In(i)});
      return std::vector<Value>{y};
    });
  }
  return true;
}();

// The shape ONNX gives a reduction of `input` over `axes` (empty: all): where every
// axis goes without keepdims that is 0-d, where kiln's reductions (MXNet's) give (1).
Shape ReducedShape(const Shape& input, const std::vector<int64_t>& axes, bool keepdims) {
  Shape out;
  for (size_t i = 0; i < input.size(); ++i) {
    const bool reduced = axes.empty() || std::find(axes.begin(), axes.end(), static_cast<int64_t>(i)) != axes.end();
    if (!reduced) {
      out.push_back(input[i]);
    } else if (keepdims) {
      out.push_back(1);
    }
  }
  return out;
}

std::vector<Value> ConvertReduce(NodeContext& ctx, const std::string& op, int64_t axes_input_since) {
  const Value& x = ctx.In(0);
  std::vector<int64_t> axes = Axes(ctx, 1, axes_input_since);
  const bool keepdims = ctx.Int("keepdims", 1) != 0;
  if (axes.empty() && ctx.Int("noop_with_empty_axes", 0) != 0) return {x};
  for (auto& a : axes) a = NormalizeAxis(a, x.shape.size());
  AttrMap attrs = {{"keepdims", keepdims}};
  if (!axes.empty()) attrs.emplace_back("axis", axes);
  const Shape shape = ReducedShape(x.shape, axes, keepdims);
  // The max (min) of no elements is -inf (+inf), as ONNX defines it; kiln's reductions
  // refuse an empty reduced axis.
  const bool empty = std::any_of(x.shape.begin(), x.shape.end(), [](int64_t d) { return d == 0; });
  if (empty && (op == "max" || op == "min") && NumElements(shape) > 0) {
    Tensor identity(shape, x.dtype);
    const double inf = std::numeric_limits<double>::infinity();
    for (int64_t i = 0; i < identity.size(); ++i) identity.SetDouble(i, op == "max" ? -inf : inf);
    return {ctx.MakeConstant(std::move(identity))};
  }
  return {ctx.ReshapeTo(ctx.Apply(op, {x}, attrs), shape)};
}

const RegisterConverter kReduceMean({"ReduceMean"}, {"axes", "keepdims", "noop_with_empty_axes"},
                                    [](NodeContext& ctx) { return ConvertReduce(ctx, "mean", 18); });

const RegisterConverter kReduceSum({"ReduceSum"}, {"axes", "keepdims", "noop_with_empty_axes"},
                                   [](NodeContext& ctx) { return ConvertReduce(ctx, "sum", 13); });

const RegisterConverter kReduceMax({"ReduceMax"}, {"axes", "keepdims", "noop_with_empty_axes"},
                                   [](NodeContext& ctx) { return ConvertReduce(ctx, "max", 18); });

const RegisterConverter kReduceMin({"ReduceMin"}, {"axes", "keepdims", "noop_with_empty_axes"},
                                   [](NodeContext& ctx) { return ConvertReduce(ctx, "min", 18); });

const RegisterConverter kReduceProd({"ReduceProd"}, {"axes", "keepdims", "noop_with_empty_axes"},
                                    [](NodeContext& ctx) { return ConvertReduce(ctx, "prod", 18); });

// ONNX gives int64 indices; kiln's argmax/argmin give them as floats (MXNet's way) and
// pick the first extreme. select_last_index runs them on x reversed along the axis and
// counts back from the end.
std::vector<Value> ConvertArg(NodeContext& ctx, const std::string& op) {
  const Value& x = ctx.In(0);
  const int64_t axis = NormalizeAxis(ctx.Int("axis", 0), x.shape.size());
  const bool keepdims = ctx.Int("keepdims", 1) != 0;
  const AttrMap attrs = {{"axis", axis}, {"keepdims", keepdims}};
  const Shape shape = ReducedShape(x.shape, {axis}, keepdims);
  if (ctx.Int("select_last_index", 0) == 0) {
    return {ctx.ReshapeTo(ctx.Apply("Cast", {ctx.Apply(op, {x}, attrs)}, {{"dtype", DType::kInt64}}), shape)};
  }
  const int64_t n = x.shape[axis];
  Tensor reversed({n}, DType::kInt64);
  for (int64_t i = 0; i < n; ++i) reversed.data_as<int64_t>()[i] = n - 1 - i;
  const Value flipped = ctx.Apply("take", {x, ctx.MakeConstant(std::move(reversed))}, {{"axis", axis}});
  const Value index = ctx.Apply("Cast", {ctx.Apply(op, {flipped}, attrs)}, {{"dtype", DType::kInt64}});
  Tensor last({1}, DType::kInt64);
  last.data_as<int64_t>()[0] = n - 1;
  return {ctx.ReshapeTo(ctx.Apply("broadcast_sub", {ctx.MakeConstant(std::move(last)), index}), shape)};
}

const RegisterConverter kArgMax({"ArgMax"}, {"axis", "keepdims", "select_last_index"},
                                [](NodeContext& ctx) { return ConvertArg(ctx, "argmax"); });

const RegisterConverter kArgMin({"ArgMin"}, {"axis", "keepdims", "select_last_index"},
                                [](NodeContext& ctx) { return ConvertArg(ctx, "argmin"); });

const RegisterConverter kMean({"Mean"}, {}, [](NodeContext& ctx) {
  Value sum = ctx.In(0);
  for (size_t i = 1; i < ctx.num_inputs(); ++i) sum = ctx.Apply("broadcast_add", {sum, ctx.In(i)});
  return std::vector<Value>{ctx.Apply("_div_scalar", {sum}, {{"scalar", static_cast<double>(ctx.num_inputs())}})};
});

const RegisterConverter kWhere({"Where"}, {}, [](NodeContext& ctx) {
  const Shape shape =
      op_util::BroadcastShapes(op_util::BroadcastShapes(ctx.In(0).shape, ctx.In(1).shape), ctx.In(2).shape);
  return std::vector<Value>{ctx.Apply("where", {BroadcastTo(ctx, ctx.In(0), shape), BroadcastTo(ctx, ctx.In(1), shape),
                                                BroadcastTo(ctx, ctx.In(2), shape)})};
});

// Reductions that are a reduction of a pointwise function (and maybe one after).
struct ComposedReduce {
  const char* onnx;
  const char* before;  // applied to the input ("" for none)
  const char* reduce;
  const char* after;  // applied to the result
};

const bool kComposedReduceRegistered = [] {
  for (const ComposedReduce& r : std::vector<ComposedReduce>{{"ReduceL1", "abs", "sum", ""},
                                                             {"ReduceL2", "square", "sum", "sqrt"},
                                                             {"ReduceSumSquare", "square", "sum", ""},
                                                             {"ReduceLogSum", "", "sum", "log"}}) {
    const std::string before = r.before, reduce = r.reduce, after = r.after;
    RegisterConverter({r.onnx}, {"axes", "keepdims", "noop_with_empty_axes"},
                      [before, reduce, after](NodeContext& ctx) {
                        const Value& x = ctx.In(0);
                        std::vector<int64_t> axes = Axes(ctx, 1, 18);
                        if (axes.empty() && ctx.Int("noop_with_empty_axes", 0) != 0) return std::vector<Value>{x};
                        for (auto& a : axes) a = NormalizeAxis(a, x.shape.size());
                        const bool keepdims = ctx.Int("keepdims", 1) != 0;
                        AttrMap attrs = {{"keepdims", keepdims}};
                        if (!axes.empty()) attrs.emplace_back("axis", axes);
                        Value y = ctx.Apply(reduce, {before.empty() ? x : ctx.Apply(before, {x})}, attrs);
                        if (!after.empty()) y = ctx.Apply(after, {y});
                        return std::vector<Value>{ctx.ReshapeTo(y, ReducedShape(x.shape, axes, keepdims))};
                      });
  }
  return true;
}();

// log(sum(exp(x))) computed as max + log(sum(exp(x - max))), which cannot overflow;
// an infinite max is not subtracted (inf - inf would make the -inf and inf results
// NaN).
const RegisterConverter kReduceLogSumExp(
    {"ReduceLogSumExp"}, {"axes", "keepdims", "noop_with_empty_axes"}, [](NodeContext& ctx) {
      const Value& x = ctx.In(0);
      std::vector<int64_t> axes = Axes(ctx, 1, 18);
      for (auto& a : axes) a = NormalizeAxis(a, x.shape.size());
      AttrMap keep = {{"keepdims", true}};
      if (!axes.empty()) keep.emplace_back("axis", axes);
      const Shape shape = ReducedShape(x.shape, axes, ctx.Int("keepdims", 1) != 0);
      if (NumElements(x.shape) == 0 && NumElements(shape) > 0) {
        // log(sum of no exponentials) = log 0.
        Tensor empty_sum(shape, x.dtype);
        for (int64_t i = 0; i < empty_sum.size(); ++i) empty_sum.SetDouble(i, -std::numeric_limits<double>::infinity());
        return std::vector<Value>{ctx.MakeConstant(std::move(empty_sum))};
      }
      const Value max = ctx.Apply("max", {x}, keep);
      const Value finite =
          ctx.Apply("_lesser_equal_scalar", {ctx.Apply("broadcast_sub", {max, max})}, {{"scalar", 0.0}});
      const Value peak = ctx.Apply("where", {finite, max, finite});
      const Value shifted = ctx.Apply("broadcast_sub", {x, peak});
      const Value sum = ctx.Apply("sum", {ctx.Apply("exp", {shifted})}, keep);
      Value y = ctx.Apply("broadcast_add", {ctx.Apply("log", {sum}), peak});
      return std::vector<Value>{ctx.ReshapeTo(y, ReducedShape(x.shape, axes, ctx.Int("keepdims", 1) != 0))};
    });

const RegisterConverter kNot({"Not"}, {}, [](NodeContext& ctx) {
  return std::vector<Value>{ctx.Apply("Cast", {Unary(ctx, "logical_not")}, {{"dtype", DType::kBool}})};
});

// ONNX Mod: fmod 0 takes the divisor's sign (Python's %, kiln's mod); fmod 1 the
// dividend's (C's fmod), which is x - trunc(x / y) * y.
const RegisterConverter kMod({"Mod"}, {"fmod"}, [](NodeContext& ctx) {
  const Value& a = ctx.In(0);
  const Value& b = ctx.In(1);
  if (ctx.Int("fmod", 0) == 0) return std::vector<Value>{ctx.Apply("broadcast_mod", {a, b})};
  if (!IsFloat(a.dtype)) {
    // Integers: C's % truncates; a - trunc-div(a, b) * b with kiln's truncating division.
    const Value quotient = ctx.Apply("broadcast_div", {a, b});
    return std::vector<Value>{ctx.Apply("broadcast_sub", {a, ctx.Apply("broadcast_mul", {quotient, b})})};
  }
  // Floats: a - trunc(a / b) * b in float64 (the quotient's rounding cannot move the
  // truncation for inputs of a narrower type), rounded back once.
  const Value wide_a = a.dtype == DType::kFloat64 ? a : ctx.Apply("Cast", {a}, {{"dtype", DType::kFloat64}});
  const Value wide_b = b.dtype == DType::kFloat64 ? b : ctx.Apply("Cast", {b}, {{"dtype", DType::kFloat64}});
  const Value quotient = ctx.Apply("trunc", {ctx.Apply("broadcast_div", {wide_a, wide_b})});
  const Value remainder = ctx.Apply("broadcast_sub", {wide_a, ctx.Apply("broadcast_mul", {quotient, wide_b})});
  return std::vector<Value>{a.dtype == DType::kFloat64 ? remainder
                                                       : ctx.Apply("Cast", {remainder}, {{"dtype", a.dtype}})};
});

// ONNX Round rounds halves to even.
const RegisterConverter kRound({"Round"}, {},
                               [](NodeContext& ctx) { return std::vector<Value>{RoundHalfToEven(ctx, ctx.In(0))}; });

// IsNaN: x != x.
const RegisterConverter kIsNaN({"IsNaN"}, {}, [](NodeContext& ctx) {
  const Value& x = ctx.In(0);
  return std::vector<Value>{ctx.Apply("Cast", {ctx.Apply("broadcast_not_equal", {x, x})}, {{"dtype", DType::kBool}})};
});

// IsInf: |x| == inf, or only the signs asked for.
const RegisterConverter kIsInf({"IsInf"}, {"detect_positive", "detect_negative"}, [](NodeContext& ctx) {
  const Value& x = ctx.In(0);
  const bool positive = ctx.Int("detect_positive", 1) != 0, negative = ctx.Int("detect_negative", 1) != 0;
  const auto constant = [&](double value) {
    Tensor t({1}, x.dtype);
    t.SetDouble(0, value);
    return ctx.MakeConstant(std::move(t));
  };
  const double inf = std::numeric_limits<double>::infinity();
  Value found;
  if (positive && negative) {
    found = ctx.Apply("broadcast_equal", {ctx.Apply("abs", {x}), constant(inf)});
  } else {
    // Neither: all false (x == NaN never holds).
    found = ctx.Apply("broadcast_equal", {x, constant(positive   ? inf
                                                      : negative ? -inf
                                                                 : std::numeric_limits<double>::quiet_NaN())});
  }
  return std::vector<Value>{ctx.Apply("Cast", {found}, {{"dtype", DType::kBool}})};
});

// CastLike: Cast to the type of input 1. round_mode concerns float8e8m0 only, which kiln
// refuses as a type.
const RegisterConverter kCastLike({"CastLike"}, {"saturate", "round_mode"}, [](NodeContext& ctx) {
  return std::vector<Value>{Unary(ctx, "Cast", {{"dtype", ctx.In(1).dtype}})};
});

}  // namespace
}  // namespace kiln::onnx_import
