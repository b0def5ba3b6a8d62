// Elementwise binary operators: same-shape (elemwise_*, _mod, _greater_equal, ...),
// broadcasting (broadcast_*), with a scalar (_plus_scalar, ...) and add_n.
#include <cmath>

#include "codegen/kir/kir.h"
#include "graph/gradient.h"
#include "graph/op_util.h"

namespace kiln {
namespace {

using op_util::BinaryBroadcastReference;

// The compiled form of each binary operator, on values already in the compute type.
using KirBinary = kir::Expr (*)(kir::Expr, kir::Expr);

// One binary operator three ways: the reference on floats (in double) and on integers
// (exact, wrapping when stored; see op_util's integer arithmetic), and the kernel IR;
// uint64 where its arithmetic differs from int64's (null: the same bits).
struct BinaryMath {
  double (*real)(double, double);
  int64_t (*integer)(int64_t, int64_t);
  KirBinary kir;
  uint64_t (*unsigned64)(uint64_t, uint64_t) = nullptr;
};

int64_t Wrapping(uint64_t v) {
  return static_cast<int64_t>(v);
}

const BinaryMath kAdd{[](double a, double b) { return a + b; },
                      [](int64_t a, int64_t b) { return Wrapping(uint64_t(a) + uint64_t(b)); },
                      [](kir::Expr a, kir::Expr b) { return a + b; }};
const BinaryMath kSub{[](double a, double b) { return a - b; },
                      [](int64_t a, int64_t b) { return Wrapping(uint64_t(a) - uint64_t(b)); },
                      [](kir::Expr a, kir::Expr b) { return a - b; }};
const BinaryMath kMul{[](double a, double b) { return a * b; },
                      [](int64_t a, int64_t b) { return Wrapping(uint64_t(a) * uint64_t(b)); },
                      [](kir::Expr a, kir::Expr b) { return a * b; }};
const BinaryMath kDiv{[](double a, double b) { return a / b; }, op_util::IntDivide,
                      [](kir::Expr a, kir::Expr b) { return a / b; },
                      [](uint64_t a, uint64_t b) { return b == 0 ? 0 : a / b; }};
const BinaryMath kPow{[](double a, double b) { return std::pow(a, b); }, op_util::IntPower, kir::Pow,
                      [](uint64_t a, uint64_t b) {
                        const double p = std::pow(static_cast<double>(a), static_cast<double>(b));
                        return static_cast<uint64_t>(kir::FloatToInt(kir::ScalarType::kUInt64, p));
                      }};
// NaN-propagating: a NaN on the left wins.
const BinaryMath kMax{[](double a, double b) { return std::isnan(a) || a > b ? a : b; },
                      [](int64_t a, int64_t b) { return a > b ? a : b; },
                      [](kir::Expr a, kir::Expr b) { return kir::Select(kir::Or(kir::Ne(a, a), kir::Gt(a, b)), a, b); },
                      [](uint64_t a, uint64_t b) { return a > b ? a : b; }};
const BinaryMath kMin{[](double a, double b) { return std::isnan(a) || a < b ? a : b; },
                      [](int64_t a, int64_t b) { return a < b ? a : b; },
                      [](kir::Expr a, kir::Expr b) { return kir::Select(kir::Or(kir::Ne(a, a), kir::Lt(a, b)), a, b); },
                      [](uint64_t a, uint64_t b) { return a < b ? a : b; }};
const BinaryMath kEqual{[](double a, double b) { return a == b ? 1.0 : 0.0; },
                        [](int64_t a, int64_t b) { return int64_t{a == b}; }, kir::Eq};
const BinaryMath kNotEqual{[](double a, double b) { return a != b ? 1.0 : 0.0; },
                           [](int64_t a, int64_t b) { return int64_t{a != b}; }, kir::Ne};
const BinaryMath kGreater{[](double a, double b) { return a > b ? 1.0 : 0.0; },
                          [](int64_t a, int64_t b) { return int64_t{a > b}; }, kir::Gt,
                          [](uint64_t a, uint64_t b) { return uint64_t{a > b}; }};
const BinaryMath kLesser{[](double a, double b) { return a < b ? 1.0 : 0.0; },
                         [](int64_t a, int64_t b) { return int64_t{a < b}; }, kir::Lt,
                         [](uint64_t a, uint64_t b) { return uint64_t{a < b}; }};
const BinaryMath kGreaterEqual{[](double a, double b) { return a >= b ? 1.0 : 0.0; },
                               [](int64_t a, int64_t b) { return int64_t{a >= b}; }, kir::Ge,
                               [](uint64_t a, uint64_t b) { return uint64_t{a >= b}; }};
const BinaryMath kLesserEqual{[](double a, double b) { return a <= b ? 1.0 : 0.0; },
                              [](int64_t a, int64_t b) { return int64_t{a <= b}; }, kir::Le,
                              [](uint64_t a, uint64_t b) { return uint64_t{a <= b}; }};

// Logical operators: nonzero is true (NaN too); the result is 1 or 0 in the inputs' dtype.
kir::Expr Truth(const kir::Expr& x) {
  return kir::Cast(kir::ScalarType::kBool, x);
}
const BinaryMath kLogicalAnd{[](double a, double b) { return a != 0 && b != 0 ? 1.0 : 0.0; },
                             [](int64_t a, int64_t b) { return int64_t{a != 0 && b != 0}; },
                             [](kir::Expr a, kir::Expr b) { return kir::And(Truth(a), Truth(b)); }};
const BinaryMath kLogicalOr{[](double a, double b) { return a != 0 || b != 0 ? 1.0 : 0.0; },
                            [](int64_t a, int64_t b) { return int64_t{a != 0 || b != 0}; },
                            [](kir::Expr a, kir::Expr b) { return kir::Or(Truth(a), Truth(b)); }};
const BinaryMath kLogicalXor{[](double a, double b) { return (a != 0) != (b != 0) ? 1.0 : 0.0; },
                             [](int64_t a, int64_t b) { return int64_t{(a != 0) != (b != 0)}; },
                             [](kir::Expr a, kir::Expr b) { return kir::Ne(Truth(a), Truth(b)); }};

// MXNet's mod: the remainder takes the divisor's sign, as Python's %, and x mod 0 = 0 for
// floats as for integers (nan mod 0 too). From fmod, whose remainder takes the dividend's
// sign: where the operands' signs differ a nonzero remainder moves by b and a zero one is
// +0 (-6 mod 3 = +0, -6 mod -3 = -0). MXNet computes in double; fmod is exact and r + b
// rounds once, so kernels computing float32 and float16 in float get the same values.
double Modulo(double a, double b) {
  if (b == 0) return 0.0;
  const double r = std::fmod(a, b);
  if ((a < 0) != (b < 0)) return r != 0 ? r + b : 0.0;
  return r;
}
// The same in kernel IR, for floats and integers alike: kir's % is fmod on floats and
// gives 0 for an integer x % 0. Bool and unsigned operands never differ in sign.
kir::Expr KirModulo(kir::Expr a, kir::Expr b) {
  const kir::Expr zero = kir::Const(0, a.type());
  const kir::Expr r = a % b;
  const kir::Expr signs_differ = kir::Ne(kir::Lt(a, zero), kir::Lt(b, zero));
  return kir::Select(kir::Eq(b, zero), zero, kir::Select(signs_differ, kir::Select(kir::Ne(r, zero), r + b, zero), r));
}
const BinaryMath kMod{Modulo, op_util::IntModulo, KirModulo, [](uint64_t a, uint64_t b) { return b == 0 ? 0 : a % b; }};

ReferenceFn BinaryReference(const BinaryMath& math) {
  return BinaryBroadcastReference(math.real, math.integer, math.unsigned64);
}

// The integer form for operands of `dtype`.
int64_t IntegerMath(const BinaryMath& math, DType dtype, int64_t a, int64_t b) {
  if (dtype == DType::kUInt64 && math.unsigned64) {
    return static_cast<int64_t>(math.unsigned64(static_cast<uint64_t>(a), static_cast<uint64_t>(b)));
  }
  return math.integer(a, b);
}

ScalarFn BinaryScalar(KirBinary fn) {
  return [fn](const Attrs&, const std::vector<kir::Expr>& in, kir::ScalarType type) {
    return kir::Cast(type, fn(kir::Cast(type, in[0]), kir::Cast(type, in[1])));
  };
}

OpDef& RegisterSameShape(const char* name, const char* doc, const BinaryMath& math) {
  return OpRegistry::Global()
      .Register(name)
      .Describe(doc)
      .Inputs({"lhs", "rhs"})
      .SetInferShape(op_util::SameShapeInfer())
      .SetInplace([](const Attrs&) {
        return std::vector<std::pair<int, int>>{{0, 0}, {1, 0}};
      })
      .SetPattern(OpPattern::kElementwise)
      .SetReference(BinaryReference(math))
      .SetScalarCompute(BinaryScalar(math.kir));
}

// `scalar_form`: the scalar operator it equals when rhs is one constant value.
OpDef& RegisterBroadcast(const char* name, const char* doc, const BinaryMath& math, const char* scalar_form = "") {
  return OpRegistry::Global()
      .Register(name)
      .SetScalarForm(scalar_form)
      .Describe(doc)
      .Inputs({"lhs", "rhs"})
      .SetInferShape(op_util::BroadcastInfer())
      .SetPattern(OpPattern::kBroadcast)
      .SetReference(BinaryReference(math))
      .SetScalarCompute(BinaryScalar(math.kir));
}

enum class Operands { kTensorFirst, kScalarFirst };

// As MXNet: the scalar is converted to the tensor's dtype (an integer tensor truncates
// and wraps it as op_util::ScalarToInt says; float32 rounds it, so that x <= 0.1 holds
// for float32 x = 0.1) and the operation computes in that dtype. Float16 differs: kernels
// compute it in float32 and see only that compute type, so the scalar is rounded to
// float32, not float16 as in MXNet (which matters only for scalars float16 cannot hold).
OpDef& RegisterScalar(const char* name, const char* doc, const BinaryMath& math,
                      Operands order = Operands::kTensorFirst) {
  const bool scalar_first = order == Operands::kScalarFirst;
  return OpRegistry::Global()
      .Register(name)
      .Describe(doc)
      .Attr("scalar", AttrType::kFloat, AttrValue{1.0}, "the scalar operand")
      .Attr("is_int", AttrType::kBool, AttrValue{true}, "MXNet 1.9 records whether the scalar was an integer")
      .SetInferShape(op_util::SameShapeInfer())
      .SetInplace(op_util::InplaceIdentity())
      .SetPattern(OpPattern::kElementwise)
      .SetReference([math, scalar_first](const Attrs& attrs, std::span<const Tensor> in, std::span<Tensor> out,
                                         const RefContext&) {
        const double scalar = attrs.Float("scalar");
        if (IsFloat(out[0].dtype())) {
          const double s = out[0].dtype() == DType::kFloat64 ? scalar : static_cast<float>(scalar);
          for (int64_t i = 0; i < out[0].size(); ++i) {
            const double x = in[0].GetDouble(i);
            out[0].SetDouble(i, scalar_first ? math.real(s, x) : math.real(x, s));
          }
          return;
        }
        const int64_t s = op_util::ScalarToInt(scalar, out[0].dtype());
        for (int64_t i = 0; i < out[0].size(); ++i) {
          const int64_t x = op_util::LoadInt(in[0], i);
          const DType dtype = out[0].dtype();
          op_util::StoreInt(out[0], i, scalar_first ? IntegerMath(math, dtype, s, x) : IntegerMath(math, dtype, x, s));
        }
      })
      .SetScalarCompute(
          [math, scalar_first](const Attrs& attrs, const std::vector<kir::Expr>& in, kir::ScalarType type) {
            const kir::Expr x = kir::Cast(type, in[0]);
            const double scalar = attrs.Float("scalar");
            const kir::Expr s = kir::IsFloatType(type) || type == kir::ScalarType::kBool
                                    ? kir::Const(scalar, type)
                                    : kir::IntImm(kir::FloatToInt(type, scalar), type);
            return kir::Cast(type, scalar_first ? math.kir(s, x) : math.kir(x, s));
          });
}

// --- Gradients ---
//
// In terms of registered operators: the gradient of a broadcast operand is the output
// gradient summed back to the operand's shape.

// Sets both operands' gradients from full-shape expressions.
void SetBinaryGrads(GradientContext& ctx, const std::optional<NodeEntry>& lhs, const std::optional<NodeEntry>& rhs) {
  const Shape& out = ctx.output_shapes[0];
  if (lhs) ctx.SetInputGrad(0, ctx.SumToShape(*lhs, out, ctx.input_shapes[0]));
  if (rhs) ctx.SetInputGrad(1, ctx.SumToShape(*rhs, out, ctx.input_shapes[1]));
}

const GradientFn kAddGrad = [](GradientContext& ctx) {
  const NodeEntry g = ctx.OutputGrad(0);
  SetBinaryGrads(ctx, g, g);
};
const GradientFn kSubGrad = [](GradientContext& ctx) {
  const NodeEntry g = ctx.OutputGrad(0);
  SetBinaryGrads(ctx, g, ctx.Apply("negative", {g}));
};
// d(l r) = r dl + l dr.
const GradientFn kMulGrad = [](GradientContext& ctx) {
  const NodeEntry g = ctx.OutputGrad(0);
  const NodeEntry l = ctx.inputs[0], r = ctx.inputs[1];
  SetBinaryGrads(ctx, ctx.Apply("broadcast_mul", {g, r}), ctx.Apply("broadcast_mul", {g, l}));
};
// d(l / r) = dl / r - (l / r) dr / r.
const GradientFn kDivGrad = [](GradientContext& ctx) {
  const NodeEntry g = ctx.OutputGrad(0);
  const NodeEntry r = ctx.inputs[1];
  const NodeEntry dl = ctx.Apply("broadcast_div", {g, r});
  const NodeEntry dr = ctx.Apply("negative", {ctx.Apply("broadcast_mul", {dl, ctx.outputs[0]})});
  SetBinaryGrads(ctx, dl, dr);
};
// The gradient goes to the operand chosen: lhs where `lhs_wins`(l, r) holds (ties to lhs,
// as MXNet's maximum and minimum do), rhs elsewhere.
GradientFn SelectGrad(const char* lhs_wins) {
  return [lhs_wins](GradientContext& ctx) {
    const NodeEntry g = ctx.OutputGrad(0);
    const NodeEntry mask = ctx.Apply(lhs_wins, {ctx.inputs[0], ctx.inputs[1]});
    const NodeEntry to_lhs = ctx.Apply("broadcast_mul", {g, mask});
    SetBinaryGrads(ctx, to_lhs, ctx.Apply("broadcast_sub", {g, to_lhs}));
  };
}
// d(l^r) = r l^(r-1) dl + l^r log(l) dr.
const GradientFn kPowerGrad = [](GradientContext& ctx) {
  const NodeEntry g = ctx.OutputGrad(0);
  const NodeEntry l = ctx.inputs[0], r = ctx.inputs[1], y = ctx.outputs[0];
  const NodeEntry dl = ctx.Apply(
      "broadcast_mul",
      {g, ctx.Apply("broadcast_mul",
                    {r, ctx.Apply("broadcast_power", {l, ctx.Apply("_minus_scalar", {r}, {{"scalar", 1.0}})})})});
  const NodeEntry dr = ctx.Apply("broadcast_mul", {g, ctx.Apply("broadcast_mul", {y, ctx.Apply("log", {l})})});
  SetBinaryGrads(ctx, dl, dr);
};

// Scalar forms: the gradient of x.
GradientFn ScalarGrad(std::function<NodeEntry(GradientContext&, const NodeEntry& g)> dx) {
  return [dx = std::move(dx)](GradientContext& ctx) { ctx.SetInputGrad(0, dx(ctx, ctx.OutputGrad(0))); };
}

NodeEntry Scaled(GradientContext& ctx, const NodeEntry& x, double s) {
  return ctx.Apply("_mul_scalar", {x}, {{"scalar", s}});
}

// Comparisons and logical operators: piecewise constant, a zero gradient (as MXNet's).
void NoGradient(GradientContext&) {}

const bool kRegistered = [] {
  RegisterSameShape("elemwise_add", "lhs + rhs, same shapes", kAdd).SetGradient(kAddGrad);
  RegisterSameShape("elemwise_sub", "lhs - rhs, same shapes", kSub).SetGradient(kSubGrad);
  RegisterSameShape("elemwise_mul", "lhs * rhs, same shapes", kMul).SetGradient(kMulGrad);
  RegisterSameShape("elemwise_div", "lhs / rhs, same shapes", kDiv).SetGradient(kDivGrad);
  // MXNet's Symbol operators %, >=, <=, and the logical ones between two symbols.
  RegisterSameShape("_mod", "lhs mod rhs with the sign of rhs, same shapes; x mod 0 = 0", kMod);
  RegisterSameShape("_greater_equal", "1 where lhs >= rhs else 0, same shapes", kGreaterEqual).SetGradient(NoGradient);
  RegisterSameShape("_lesser_equal", "1 where lhs <= rhs else 0, same shapes", kLesserEqual).SetGradient(NoGradient);
  RegisterSameShape("_logical_and", "1 where lhs and rhs are nonzero else 0, same shapes", kLogicalAnd)
      .SetGradient(NoGradient);
  RegisterSameShape("_logical_or", "1 where lhs or rhs is nonzero else 0, same shapes", kLogicalOr)
      .SetGradient(NoGradient);
  RegisterSameShape("_logical_xor", "1 where exactly one of lhs and rhs is nonzero else 0, same shapes", kLogicalXor)
      .SetGradient(NoGradient);

  RegisterBroadcast("broadcast_add", "lhs + rhs with broadcasting", kAdd, "_plus_scalar").SetGradient(kAddGrad);
  RegisterBroadcast("broadcast_sub", "lhs - rhs with broadcasting", kSub, "_minus_scalar").SetGradient(kSubGrad);
  RegisterBroadcast("broadcast_mul", "lhs * rhs with broadcasting", kMul, "_mul_scalar").SetGradient(kMulGrad);
  RegisterBroadcast("broadcast_div", "lhs / rhs with broadcasting", kDiv, "_div_scalar").SetGradient(kDivGrad);
  RegisterBroadcast("broadcast_maximum", "max(lhs, rhs) with broadcasting", kMax, "_maximum_scalar")
      .SetGradient(SelectGrad("broadcast_greater_equal"));
  RegisterBroadcast("broadcast_minimum", "min(lhs, rhs) with broadcasting", kMin, "_minimum_scalar")
      .SetGradient(SelectGrad("broadcast_lesser_equal"));
  RegisterBroadcast("broadcast_power", "lhs ** rhs with broadcasting", kPow, "_power_scalar").SetGradient(kPowerGrad);
  RegisterBroadcast("broadcast_equal", "1 where lhs == rhs else 0", kEqual).SetGradient(NoGradient);
  RegisterBroadcast("broadcast_not_equal", "1 where lhs != rhs else 0", kNotEqual).SetGradient(NoGradient);
  RegisterBroadcast("broadcast_greater", "1 where lhs > rhs else 0", kGreater).SetGradient(NoGradient);
  RegisterBroadcast("broadcast_lesser", "1 where lhs < rhs else 0", kLesser).SetGradient(NoGradient);
  RegisterBroadcast("broadcast_greater_equal", "1 where lhs >= rhs else 0", kGreaterEqual).SetGradient(NoGradient);
  RegisterBroadcast("broadcast_lesser_equal", "1 where lhs <= rhs else 0", kLesserEqual).SetGradient(NoGradient);
  RegisterBroadcast("broadcast_logical_and", "1 where lhs and rhs are nonzero else 0", kLogicalAnd)
      .SetGradient(NoGradient);
  RegisterBroadcast("broadcast_logical_or", "1 where lhs or rhs is nonzero else 0", kLogicalOr).SetGradient(NoGradient);
  RegisterBroadcast("broadcast_logical_xor", "1 where exactly one of lhs and rhs is nonzero else 0", kLogicalXor)
      .SetGradient(NoGradient);
  RegisterBroadcast("broadcast_mod", "lhs mod rhs with the sign of rhs (Python's %); x mod 0 = 0", kMod);

  // x * 1, x / 1, x - (+0.0) and x + (-0.0) are x bit for bit; x + 0 is not (-0 + 0
  // is +0) but for integers. The dtype never changes (the scalar takes the tensor's).
  const auto scalar_is = [](double value) {
    return
        [value](const Attrs& attrs, const std::vector<Shape>&, DType, bool) { return attrs.Float("scalar") == value; };
  };
  const auto zero_keeps_sign = [](bool negative_zero) {
    return [negative_zero](const Attrs& attrs, const std::vector<Shape>&, DType dtype, bool) {
      const double scalar = attrs.Float("scalar");
      return scalar == 0 && (!IsFloat(dtype) || std::signbit(scalar) == negative_zero);
    };
  };
  RegisterScalar("_plus_scalar", "x + scalar", kAdd)
      .SetIdentityWhen(zero_keeps_sign(true))
      .SetGradient(ScalarGrad([](GradientContext&, const NodeEntry& g) { return g; }));
  RegisterScalar("_minus_scalar", "x - scalar", kSub)
      .SetIdentityWhen(zero_keeps_sign(false))
      .SetGradient(ScalarGrad([](GradientContext&, const NodeEntry& g) { return g; }));
  RegisterScalar("_rminus_scalar", "scalar - x", kSub, Operands::kScalarFirst)
      .SetGradient(ScalarGrad([](GradientContext& ctx, const NodeEntry& g) { return ctx.Apply("negative", {g}); }));
  RegisterScalar("_mul_scalar", "x * scalar", kMul)
      .SetIdentityWhen(scalar_is(1.0))
      .SetGradient(ScalarGrad(
          [](GradientContext& ctx, const NodeEntry& g) { return Scaled(ctx, g, ctx.attrs.Float("scalar")); }));
  RegisterScalar("_div_scalar", "x / scalar", kDiv)
      .SetIdentityWhen(scalar_is(1.0))
      .SetGradient(ScalarGrad(
          [](GradientContext& ctx, const NodeEntry& g) { return Scaled(ctx, g, 1.0 / ctx.attrs.Float("scalar")); }));
  RegisterScalar("_rdiv_scalar", "scalar / x", kDiv, Operands::kScalarFirst)
      .SetGradient(ScalarGrad([](GradientContext& ctx, const NodeEntry& g) {
        // d(s / x) = -(s / x) / x dx.
        return ctx.Apply(
            "negative", {ctx.Apply("broadcast_mul", {g, ctx.Apply("broadcast_div", {ctx.outputs[0], ctx.inputs[0]})})});
      }));
  RegisterScalar("_maximum_scalar", "max(x, scalar)", kMax)
      .SetGradient(ScalarGrad([](GradientContext& ctx, const NodeEntry& g) {
        const NodeEntry kept =
            ctx.Apply("_greater_equal_scalar", {ctx.inputs[0]}, {{"scalar", ctx.attrs.Float("scalar")}});
        return ctx.Apply("broadcast_mul", {g, kept});
      }));
  RegisterScalar("_minimum_scalar", "min(x, scalar)", kMin)
      .SetGradient(ScalarGrad([](GradientContext& ctx, const NodeEntry& g) {
        const NodeEntry kept =
            ctx.Apply("_lesser_equal_scalar", {ctx.inputs[0]}, {{"scalar", ctx.attrs.Float("scalar")}});
        return ctx.Apply("broadcast_mul", {g, kept});
      }));
  RegisterScalar("_power_scalar", "x ** scalar", kPow)
      .SetGradient(ScalarGrad([](GradientContext& ctx, const NodeEntry& g) {
        // d(x^s) = s x^(s-1) dx.
        const double s = ctx.attrs.Float("scalar");
        const NodeEntry slope = Scaled(ctx, ctx.Apply("_power_scalar", {ctx.inputs[0]}, {{"scalar", s - 1}}), s);
        return ctx.Apply("broadcast_mul", {g, slope});
      }));
  RegisterScalar("_rpower_scalar", "scalar ** x", kPow, Operands::kScalarFirst)
      .SetGradient(ScalarGrad([](GradientContext& ctx, const NodeEntry& g) {
        // d(s^x) = s^x log(s) dx.
        return Scaled(ctx, ctx.Apply("broadcast_mul", {g, ctx.outputs[0]}), std::log(ctx.attrs.Float("scalar")));
      }));
  RegisterScalar("_mod_scalar", "x mod scalar with the scalar's sign; x mod 0 = 0", kMod);
  RegisterScalar("_rmod_scalar", "scalar mod x with the sign of x; scalar mod 0 = 0", kMod, Operands::kScalarFirst);
  RegisterScalar("_greater_equal_scalar", "1 where x >= scalar else 0", kGreaterEqual).SetGradient(NoGradient);
  RegisterScalar("_lesser_equal_scalar", "1 where x <= scalar else 0", kLesserEqual).SetGradient(NoGradient);
  RegisterScalar("_logical_and_scalar", "1 where x and scalar are nonzero else 0", kLogicalAnd).SetGradient(NoGradient);
  RegisterScalar("_logical_or_scalar", "1 where x or scalar is nonzero else 0", kLogicalOr).SetGradient(NoGradient);
  RegisterScalar("_logical_xor_scalar", "1 where exactly one of x and scalar is nonzero else 0", kLogicalXor)
      .SetGradient(NoGradient);

  OpRegistry::Global()
      .Register("add_n")
      .Describe("Sum of num_args inputs of one shape")
      .Alias("ElementWiseSum")
      .Attr("num_args", AttrType::kInt, std::nullopt, "number of inputs")
      .Range(1, op_util::kMaxArity)
      .Inputs([](const Attrs& attrs) {
        std::vector<std::string> names;
        for (int64_t i = 0; i < attrs.Int("num_args"); ++i) names.push_back("arg" + std::to_string(i));
        return names;
      })
      .SetInferShape(op_util::SameShapeInfer())
      .SetInplace(op_util::InplaceIdentity())
      .SetPattern(OpPattern::kElementwise)
      .SetReference([](const Attrs&, std::span<const Tensor> in, std::span<Tensor> out, const RefContext&) {
        for (int64_t i = 0; i < out[0].size(); ++i) {
          double sum = 0;
          for (const auto& tensor : in) sum += tensor.GetDouble(i);
          out[0].SetDouble(i, sum);
        }
      })
      .SetScalarCompute([](const Attrs&, const std::vector<kir::Expr>& in, kir::ScalarType type) {
        kir::Expr sum = kir::Cast(type, in[0]);
        for (size_t k = 1; k < in.size(); ++k) sum = sum + kir::Cast(type, in[k]);
        return sum;
      })
      .SetGradient([](GradientContext& ctx) {
        const NodeEntry g = ctx.OutputGrad(0);
        for (size_t i = 0; i < ctx.inputs.size(); ++i) ctx.SetInputGrad(i, g);
      });
  return true;
}();

}  // namespace
}  // namespace kiln
