// Unary operators: elementwise math (relu ... erf), rounding (floor ... trunc), sign,
// logical_not, Activation, LeakyReLU, clip, Cast, BlockGrad, identity, zeros_like and
// ones_like.
#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <limits>
#include <map>
#include <numbers>
#include <random>
#include <string>

#include "codegen/kir/kir.h"
#include "codegen/lower/lower_util.h"
#include "graph/gradient.h"
#include "graph/op_util.h"
#include "ops/lower_random.h"

namespace kiln {

namespace {

using kir::Expr;
using kir::ScalarType;
using kir::Stmt;

using op_util::AssignShape;
using op_util::AssignType;
using op_util::LoadInt;
using op_util::StoreInt;

// --- Storing results as MXNet does ---
// MXNet runs integer inputs through float math and stores the result with a C++ cast. On
// x86 a value outside the 32-bit range (or NaN) converts to INT32_MIN, int8 and uint8 keep
// the low bits of that 32-bit result, and int64 gets INT64_MIN for anything out of its
// range: cast([300, -1, 1e10], uint8) = [44, 255, 0], log(int32 -4) = INT32_MIN. The
// reference stores the same values (Tensor::SetDouble would saturate instead). int16 and
// uint16 go through int32 like int8; uint32 converts through int64 (as x86-64 compilers
// convert to it); uint64 takes [2^63, 2^64) exactly and the rest as int64 does.

int32_t ToInt32(double v) {
  if (!(v > -2147483649.0 && v < 2147483648.0)) return std::numeric_limits<int32_t>::min();
  return static_cast<int32_t>(v);
}

int64_t ToInt64(double v) {
  if (!(v >= -9223372036854775808.0 && v < 9223372036854775808.0)) return std::numeric_limits<int64_t>::min();
  return static_cast<int64_t>(v);
}

// uint64's bits.
int64_t ToUInt64(double v) {
  if (v >= 9223372036854775808.0 && v < 18446744073709551616.0) return static_cast<int64_t>(static_cast<uint64_t>(v));
  return ToInt64(v);
}

// A computed value in t's dtype, converted as described above.
void StoreValue(Tensor& t, int64_t i, double v) {
  switch (t.dtype()) {
    case DType::kInt64:
    case DType::kUInt32: StoreInt(t, i, ToInt64(v)); return;
    case DType::kUInt64: StoreInt(t, i, ToUInt64(v)); return;
    case DType::kInt32:
    case DType::kInt16:
    case DType::kUInt16:
    case DType::kInt8:
    case DType::kUInt8: StoreInt(t, i, ToInt32(v)); return;
    case DType::kFloat32:
    case DType::kFloat64:
    case DType::kFloat16:
    case DType::kBFloat16:
    case DType::kBool: t.SetDouble(i, v); return;
  }
}

// The same store in kernel IR: `value` (float) converted to integer `type` as above.
// Comparisons against the bounds are false for NaN, which takes the INT_MIN arm.
Expr KirStoreValue(const Expr& value, ScalarType type) {
  const auto bound = [&](double b) { return kir::FloatImm(b, value.type()); };
  if (type == ScalarType::kBool) return kir::Cast(type, value);
  if (type == ScalarType::kInt64 || type == ScalarType::kUInt32 || type == ScalarType::kUInt64) {
    const Expr in_range = kir::And(kir::Ge(value, bound(-0x1p63)), kir::Lt(value, bound(0x1p63)));
    const Expr as_int64 =
        kir::Select(in_range, kir::Cast(ScalarType::kInt64, value), Expr(std::numeric_limits<int64_t>::min()));
    if (type != ScalarType::kUInt64) return kir::Cast(type, as_int64);
    const Expr high = kir::And(kir::Ge(value, bound(0x1p63)), kir::Lt(value, bound(0x1p64)));
    return kir::Select(high, kir::Cast(type, value), kir::Cast(type, as_int64));
  }
  const Expr in_range = kir::And(kir::Gt(value, bound(-2147483649.0)), kir::Lt(value, bound(2147483648.0)));
  return kir::Cast(type, kir::Select(in_range, kir::Cast(ScalarType::kInt32, value),
                                     kir::IntImm(std::numeric_limits<int32_t>::min(), ScalarType::kInt32)));
}

Expr KirConst(double value, const Expr& like) {
  return kir::Const(value, like.type());
}

// log(1 + y) for finite y > -1 without losing small y: log(u) * y / (u - 1) corrects
// the rounding of u = 1 + y (Goldberg, "What every computer scientist should know").
Expr KirLog1p(const Expr& y) {
  const Expr u = KirConst(1, y) + y;
  return kir::Select(kir::Eq(u, KirConst(1, y)), y, kir::Log(u) * (y / (u - KirConst(1, y))));
}

// e^x - 1 for x <= 0 (the callers' range) without cancellation near 0: Kahan's
// (u - 1) * x / log(u) with u = e^x.
Expr KirExpm1(const Expr& x) {
  const Expr u = kir::Exp(x);
  const Expr one = KirConst(1, x);
  return kir::Select(kir::Eq(u, one), x, kir::Select(kir::Eq(u - one, -one), -one, (u - one) * (x / kir::Log(u))));
}

// --- The functions ---

// MXNet's relu kernel passes NaN through (its MKL-DNN Activation path gives 0 instead).
double Relu(double x) {
  return std::isnan(x) || x > 0 ? x : 0.0;
}
double Sigmoid(double x) {
  return 1.0 / (1.0 + std::exp(-x));
}
// log(1 + e^x), returning x itself above 20 as MXNet does (and so never overflowing).
double SoftRelu(double x) {
  return x > 20.0 ? x : std::log1p(std::exp(x));
}
double Softsign(double x) {
  return x / (1.0 + std::fabs(x));
}
// MXNet's LeakyReLU gelu is the erf form, not the tanh approximation.
double Gelu(double x) {
  return 0.5 * x * (1.0 + std::erf(x / std::numbers::sqrt2));
}
constexpr double kSeluAlpha = 1.6732632423543772848170429916717;
constexpr double kSeluLambda = 1.0507009873554804934193349852946;
double Selu(double x) {
  return kSeluLambda * (x > 0 ? x : kSeluAlpha * std::expm1(x));
}

// MXNet's rint takes the floor unless the ceiling is strictly nearer, so halves go down:
// rint(2.5) = 2 and rint(-2.5) = -3 (C's rint rounds them to even). NaN and infinities
// take the ceiling, themselves.
double Rint(double x) {
  const double down = std::floor(x);
  const double up = std::ceil(x);
  return x - down <= up - x ? down : up;
}
// sign(nan) = 0, and the zero is +0 whatever the input's sign.
double Sign(double x) {
  return x < 0 ? -1.0 : x > 0 ? 1.0 : 0.0;
}

// Their kernel-IR forms, on a value already in the compute type.
Expr KirRelu(const Expr& x) {
  return kir::Select(kir::Or(kir::Ne(x, x), kir::Gt(x, KirConst(0, x))), x, KirConst(0, x));
}
Expr KirSigmoid(const Expr& x) {
  return KirConst(1, x) / (KirConst(1, x) + kir::Exp(-x));
}
Expr KirSoftRelu(const Expr& x) {
  return kir::Select(kir::Gt(x, KirConst(20, x)), x, KirLog1p(kir::Exp(x)));
}
Expr KirSoftsign(const Expr& x) {
  return x / (KirConst(1, x) + kir::Abs(x));
}
Expr KirGelu(const Expr& x) {
  return KirConst(0.5, x) * x * (KirConst(1, x) + kir::Erf(x * KirConst(1 / std::numbers::sqrt2, x)));
}
Expr KirSelu(const Expr& x) {
  return KirConst(kSeluLambda, x) * kir::Select(kir::Gt(x, KirConst(0, x)), x, KirConst(kSeluAlpha, x) * KirExpm1(x));
}
// In the compute type, as MXNet (float for float16 and float32). Float rounds at most
// the difference that is above 1/2 and it stays at or above 1/2, so the choice is also
// the reference's, made in double.
Expr KirRint(const Expr& x) {
  const Expr down = kir::Floor(x);
  const Expr up = kir::Ceil(x);
  return kir::Select(kir::Le(x - down, up - x), down, up);
}
// (x > 0) - (x < 0): no negative constant, so it also serves unsigned types.
Expr KirSign(const Expr& x) {
  return kir::Cast(x.type(), kir::Gt(x, KirConst(0, x))) - kir::Cast(x.type(), kir::Lt(x, KirConst(0, x)));
}
Expr KirLogicalNot(const Expr& x) {
  return kir::Cast(x.type(), kir::Unary(kir::UnaryOp::kNot, x));
}

using MathFn = double (*)(double);
using KirMathFn = std::function<Expr(const Expr&)>;

MathFn ActivationFn(const std::string& act_type) {
  if (act_type == "relu") return Relu;
  if (act_type == "sigmoid") return Sigmoid;
  if (act_type == "tanh") return [](double x) { return std::tanh(x); };
  if (act_type == "softrelu") return SoftRelu;
  return Softsign;  // the Choices leave only softsign
}

KirMathFn KirActivationFn(const std::string& act_type) {
  if (act_type == "relu") return KirRelu;
  if (act_type == "sigmoid") return KirSigmoid;
  if (act_type == "tanh") return [](const Expr& x) { return kir::Tanh(x); };
  if (act_type == "softrelu") return KirSoftRelu;
  return KirSoftsign;
}

// Whether an integer input may compute in its own type and get the reference's result:
// relu, negative, abs, sign and logical_not do (wrapping as the reference's 32-bit store
// does; int64 beyond 2^53, which the reference rounds through double, comes out exact,
// and sign and logical_not need only its sign and zeroness). The rest compute in
// float64 as the reference does, then store as MXNet: float32 would flip truncations
// (sigmoid(int 20) is 0, but 1 in float32).
enum class IntegerMath { kOwnType, kFloat64 };

ScalarFn MathScalar(KirMathFn fn, IntegerMath integer_math) {
  return [fn, integer_math](const Attrs&, const std::vector<Expr>& in, ScalarType type) {
    if (kir::IsFloatType(type)) return fn(kir::Cast(type, in[0]));
    if (integer_math == IntegerMath::kOwnType && type != ScalarType::kBool) return fn(kir::Cast(type, in[0]));
    return KirStoreValue(fn(kir::Cast(ScalarType::kFloat64, in[0])), type);
  };
}

// The operators this file registers, by name: gradients are attached after them.
std::map<std::string, OpDef*>& Defined() {
  static std::map<std::string, OpDef*> defined;
  return defined;
}

OpDef& RegisterMath(const char* name, const char* doc, MathFn fn, KirMathFn kir_fn,
                    IntegerMath integer_math = IntegerMath::kFloat64) {
  OpDef& op =
      OpRegistry::Global()
          .Register(name)
          .Describe(doc)
          .SetInferShape(op_util::SameShapeInfer())
          .SetInplace(op_util::InplaceIdentity())
          .SetPattern(OpPattern::kElementwise)
          .SetReference([fn](const Attrs&, std::span<const Tensor> in, std::span<Tensor> out, const RefContext&) {
            for (int64_t i = 0; i < out[0].size(); ++i) StoreValue(out[0], i, fn(in[0].GetDouble(i)));
          })
          .SetScalarCompute(MathScalar(kir_fn, integer_math));
  Defined()[name] = &op;
  return op;
}

// All inputs and outputs share one dtype, which must be a float: MXNet's Activation and
// LeakyReLU kernels reject integers ("only support floating point types").
InferTypeFn FloatOnlyType(std::string op) {
  return [op = std::move(op)](const Attrs&, std::vector<DTypeSlot>& inputs, std::vector<DTypeSlot>& outputs) {
    DTypeSlot known;
    for (const auto& slot : inputs) known = known ? known : slot;
    for (const auto& slot : outputs) known = known ? known : slot;
    if (!known) return;
    if (!IsFloat(*known)) {
      throw Error(op + " takes float16, bfloat16, float32 or float64 data, given " + std::string(DTypeName(*known)));
    }
    for (size_t i = 0; i < inputs.size(); ++i) AssignType(inputs[i], *known, "input " + std::to_string(i));
    for (size_t i = 0; i < outputs.size(); ++i) AssignType(outputs[i], *known, "output " + std::to_string(i));
  };
}

// --- LeakyReLU ---

// The act_types without extra inputs or outputs.
std::function<double(double)> LeakyFn(const std::string& act_type, double slope) {
  if (act_type == "elu") return [slope](double x) { return x > 0 ? x : slope * std::expm1(x); };
  if (act_type == "selu") return Selu;
  if (act_type == "gelu") return Gelu;
  return [slope](double x) { return x > 0 ? x : slope * x; };  // leaky
}

void LeakyReluShape(const Attrs& attrs, std::vector<ShapeSlot>& inputs, std::vector<ShapeSlot>& outputs) {
  const ShapeSlot data = inputs[0] ? inputs[0] : outputs[0];
  if (!data) return;
  AssignShape(inputs[0], *data, "input 'data'");
  AssignShape(outputs[0], *data, "output 'output'");
  if (outputs.size() > 1) AssignShape(outputs[1], *data, "output 'mask'");
  if (attrs.Str("act_type") != "prelu") return;
  if (data->size() < 2) op_util::ShapeError("input 'data'", "at least 2-d (N,C,...) for act_type prelu", *data);
  // gamma holds one slope per channel, or a single slope shared by all.
  const Shape per_channel{(*data)[1]};
  if (!inputs[1]) {
    inputs[1] = per_channel;
  } else if (*inputs[1] != per_channel && *inputs[1] != Shape{1}) {
    op_util::ShapeError("input 'gamma'", "shape " + ShapeToString(per_channel) + " (one slope per channel) or (1)",
                        *inputs[1]);
  }
}

void LeakyReluReference(const Attrs& attrs, std::span<const Tensor> in, std::span<Tensor> out, const RefContext& ctx) {
  const std::string& act_type = attrs.Str("act_type");
  const Tensor& x = in[0];
  if (act_type == "prelu") {
    const Tensor& gamma = in[1];
    const int64_t channels = x.shape()[1];
    int64_t inner = 1;  // elements per (n, c) pair
    for (size_t d = 2; d < x.shape().size(); ++d) inner *= x.shape()[d];
    for (int64_t i = 0; i < x.size(); ++i) {
      const double v = x.GetDouble(i);
      const double g = gamma.GetDouble(gamma.size() == 1 ? 0 : (i / inner) % channels);
      out[0].SetDouble(i, v > 0 ? v : g * v);
    }
  } else if (act_type == "rrelu") {
    // Training draws each element's slope from U[lower_bound, upper_bound); inference
    // uses their mean. The mask output records the slope each element got (MXNet leaves
    // it unwritten in inference).
    const double lower = attrs.Float("lower_bound");
    const double upper = attrs.Float("upper_bound");
    std::mt19937_64 rng(ctx.seed);
    std::uniform_real_distribution<double> draw(lower, upper);
    for (int64_t i = 0; i < x.size(); ++i) {
      const double v = x.GetDouble(i);
      const double s = ctx.is_train ? draw(rng) : (lower + upper) / 2;
      out[0].SetDouble(i, v > 0 ? v : s * v);
      out[1].SetDouble(i, s);
    }
  } else {
    const auto fn = LeakyFn(act_type, attrs.Float("slope"));
    for (int64_t i = 0; i < x.size(); ++i) out[0].SetDouble(i, fn(x.GetDouble(i)));
  }
}

// rows x cols with a contiguous inner loop; the row loop is the kernel's parallel loop
// when the whole is worth one on the target.
Stmt RowLoop(const LowerContext& ctx, int64_t rows, int64_t cols,
             const std::function<Stmt(const Expr& row, const Expr& col)>& body) {
  const Expr r = kir::Var("row");
  const Expr c = kir::Var("col");
  const auto kind =
      rows > 1 && rows * cols >= ctx.MinParallelWork() ? kir::LoopKind::kParallel : kir::LoopKind::kSerial;
  return kir::For(r, Expr(int64_t{0}), Expr(rows),
                  kir::For(c, Expr(int64_t{0}), Expr(cols), body(r, c), kir::LoopKind::kVectorize), kind);
}

// elu, selu, gelu and leaky of one element.
Expr LeakyReluScalar(const Attrs& attrs, const Expr& x) {
  const std::string& act_type = attrs.Str("act_type");
  const double slope = attrs.Float("slope");
  if (act_type == "elu") return kir::Select(kir::Gt(x, KirConst(0, x)), x, KirConst(slope, x) * KirExpm1(x));
  if (act_type == "selu") return KirSelu(x);
  if (act_type == "gelu") return KirGelu(x);
  return kir::Select(kir::Gt(x, KirConst(0, x)), x, KirConst(slope, x) * x);
}

// LeakyReLU's own lowering covers every act_type: prelu's gamma is per channel (axis 1),
// not NumPy broadcasting, and rrelu writes two outputs and draws random slopes.
Stmt LowerLeakyRelu(const Attrs& attrs, LowerContext& ctx) {
  const std::string& act_type = attrs.Str("act_type");
  const Shape& shape = ctx.input_shapes[0];
  const ScalarType type = lower::ComputeType(ctx.output_types[0]);
  const kir::Buffer& data = ctx.inputs[0];
  const kir::Buffer& out = ctx.outputs[0];
  const int64_t count = NumElements(shape);
  const auto leaky = [&](const Expr& x, const Expr& slope) {
    return kir::Select(kir::Gt(x, KirConst(0, x)), x, slope * x);
  };
  if (act_type == "prelu") {
    const int64_t channels = shape[1];
    const int64_t inner = NumElements(Shape(shape.begin() + 2, shape.end()));
    const bool shared = ctx.input_shapes[1] == Shape{1};
    return RowLoop(
        ctx, NumElements(Shape(shape.begin(), shape.begin() + 2)), inner, [&](const Expr& row, const Expr& col) {
          const Expr i = row * Expr(inner) + col;
          const Expr gamma = lower::LoadAs(ctx.inputs[1], shared ? Expr(int64_t{0}) : row % Expr(channels), type);
          return lower::StoreFrom(out, i, leaky(lower::LoadAs(data, i, type), gamma));
        });
  }
  if (act_type == "rrelu") {
    // Training: slopes from U[lower, upper) by the counter-based generator (other numbers
    // than the reference's mt19937_64 stream); inference: their mean. Both write the mask.
    const double lower = attrs.Float("lower_bound");
    const double upper = attrs.Float("upper_bound");
    const auto element = [&](const Expr& i, const Expr& slope) {
      return kir::Block({lower::StoreFrom(out, i, leaky(lower::LoadAs(data, i, type), slope)),
                         lower::StoreFrom(ctx.outputs[1], i, slope)});
    };
    if (!ctx.is_train) {
      return lower::ChunkedLoop(count,
                                [&](const Expr& i) { return element(i, kir::FloatImm((lower + upper) / 2, type)); });
    }
    return lower_random::UniformLoop(
        ctx, count, type, lower_random::Interval::kHalfOpen, [&](const Expr& i, const Expr& u) {
          return element(i, kir::FloatImm(lower, type) + kir::FloatImm(upper - lower, type) * u);
        });
  }
  return lower::ChunkedLoop(count, [&](const Expr& i) {
    return lower::StoreFrom(out, i, LeakyReluScalar(attrs, lower::LoadAs(data, i, type)));
  });
}

// prelu reads a per-channel slope and rrelu draws random ones: only the other act_types
// are elementwise (and fuse, through LeakyReluScalar).
bool LeakyReluIsElementwise(const Attrs& attrs) {
  const std::string& act_type = attrs.Str("act_type");
  return act_type != "prelu" && act_type != "rrelu";
}

// --- Cast ---

void CastReference(const Attrs&, std::span<const Tensor> in, std::span<Tensor> out, const RefContext&) {
  const bool from_int = !IsFloat(in[0].dtype());
  for (int64_t i = 0; i < out[0].size(); ++i) {
    if (from_int && in[0].dtype() == DType::kUInt64 && IsFloat(out[0].dtype())) {
      out[0].SetDouble(i, op_util::IntToDouble(LoadInt(in[0], i), DType::kUInt64));  // as kernels: via double
    } else if (from_int) {
      StoreInt(out[0], i, LoadInt(in[0], i));
    } else {
      StoreValue(out[0], i, in[0].GetDouble(i));
    }
  }
}

// BlockGrad and identity: the output is the input.
void CopyReference(const Attrs&, std::span<const Tensor> in, std::span<Tensor> out, const RefContext&) {
  if (in[0].nbytes() > 0) std::memcpy(out[0].data(), in[0].data(), in[0].nbytes());
}

ReferenceFn FillReference(double value) {
  return [value](const Attrs&, std::span<const Tensor>, std::span<Tensor> out, const RefContext&) {
    for (int64_t i = 0; i < out[0].size(); ++i) out[0].SetDouble(i, value);
  };
}

// Integers convert exactly between integer types (wrapping) and to floats; floats go to
// integers as MXNet's store does, and to bool as != 0 (NaN is true).
Expr KirCast(const Attrs&, const std::vector<Expr>& in, ScalarType type) {
  const Expr& x = in[0];
  if (kir::IsFloatType(x.type()) && !kir::IsFloatType(type) && type != ScalarType::kBool) {
    return KirStoreValue(x, type);
  }
  return kir::Cast(type, x);
}

Expr KirCopy(const Attrs&, const std::vector<Expr>& in, ScalarType type) {
  return kir::Cast(type, in[0]);
}

ScalarFn FillScalar(double value) {
  return [value](const Attrs&, const std::vector<Expr>&, ScalarType type) { return kir::Const(value, type); };
}

OpDef& RegisterSimple(const char* name, const char* doc, const char* alias, ReferenceFn reference, ScalarFn scalar) {
  OpDef& op = OpRegistry::Global()
                  .Register(name)
                  .Describe(doc)
                  .SetInferShape(op_util::SameShapeInfer())
                  .SetInplace(op_util::InplaceIdentity())
                  .SetPattern(OpPattern::kElementwise)
                  .SetReference(std::move(reference))
                  .SetScalarCompute(std::move(scalar));
  if (alias != nullptr) op.Alias(alias);
  return op;
}

// --- Gradients: dy = f'(x) dy, with f' in registered operators of x and y ---

// x -> f'(x) given x and y = f(x).
using Derivative = std::function<NodeEntry(GradientContext& ctx, const NodeEntry& x, const NodeEntry& y)>;

GradientFn ChainRule(Derivative derivative) {
  return [derivative = std::move(derivative)](GradientContext& ctx) {
    const NodeEntry slope = derivative(ctx, ctx.inputs[0], ctx.outputs[0]);
    ctx.SetInputGrad(0, ctx.Apply("broadcast_mul", {ctx.OutputGrad(0), slope}));
  };
}

NodeEntry Scalar(GradientContext& ctx, const char* op, const NodeEntry& x, double s) {
  return ctx.Apply(op, {x}, {{"scalar", s}});
}

// 1 / sqrt(s + sign * x^2): the inverse trigonometric and hyperbolic derivatives.
NodeEntry InverseRootOf(GradientContext& ctx, const NodeEntry& x, double s, double sign) {
  return ctx.Apply("rsqrt",
                   {Scalar(ctx, "_plus_scalar", Scalar(ctx, "_mul_scalar", ctx.Apply("square", {x}), sign), s)});
}

// The derivative of each differentiable elementwise function.
const std::map<std::string, Derivative>& Derivatives() {
  static const std::map<std::string, Derivative> derivatives = {
      // relu' = 1 where y > 0: sign(y).
      {"relu", [](GradientContext& c, const NodeEntry&, const NodeEntry& y) { return c.Apply("sign", {y}); }},
      {"sigmoid",
       [](GradientContext& c, const NodeEntry&, const NodeEntry& y) {
         return c.Apply("broadcast_mul", {y, Scalar(c, "_rminus_scalar", y, 1.0)});
       }},
      {"tanh", [](GradientContext& c, const NodeEntry&,
                  const NodeEntry& y) { return Scalar(c, "_rminus_scalar", c.Apply("square", {y}), 1.0); }},
      {"exp", [](GradientContext&, const NodeEntry&, const NodeEntry& y) { return y; }},
      {"log", [](GradientContext& c, const NodeEntry& x, const NodeEntry&) { return c.Apply("reciprocal", {x}); }},
      {"sqrt", [](GradientContext& c, const NodeEntry&,
                  const NodeEntry& y) { return Scalar(c, "_mul_scalar", c.Apply("reciprocal", {y}), 0.5); }},
      {"rsqrt", [](GradientContext& c, const NodeEntry&,
                   const NodeEntry& y) { return Scalar(c, "_mul_scalar", Scalar(c, "_power_scalar", y, 3.0), -0.5); }},
      {"square",
       [](GradientContext& c, const NodeEntry& x, const NodeEntry&) { return Scalar(c, "_mul_scalar", x, 2.0); }},
      {"abs", [](GradientContext& c, const NodeEntry& x, const NodeEntry&) { return c.Apply("sign", {x}); }},
      {"negative", [](GradientContext& c, const NodeEntry& x,
                      const NodeEntry&) { return Scalar(c, "_mul_scalar", c.Apply("ones_like", {x}), -1.0); }},
      {"reciprocal", [](GradientContext& c, const NodeEntry&,
                        const NodeEntry& y) { return c.Apply("negative", {c.Apply("square", {y})}); }},
      // softsign' = 1 / (1 + |x|)^2.
      {"softsign",
       [](GradientContext& c, const NodeEntry& x, const NodeEntry&) {
         return c.Apply("reciprocal", {c.Apply("square", {Scalar(c, "_plus_scalar", c.Apply("abs", {x}), 1.0)})});
       }},
      // erf' = 2 / sqrt(pi) exp(-x^2).
      {"erf",
       [](GradientContext& c, const NodeEntry& x, const NodeEntry&) {
         return Scalar(c, "_mul_scalar", c.Apply("exp", {c.Apply("negative", {c.Apply("square", {x})})}),
                       2.0 / std::sqrt(std::numbers::pi));
       }},
      {"sin", [](GradientContext& c, const NodeEntry& x, const NodeEntry&) { return c.Apply("cos", {x}); }},
      {"cos", [](GradientContext& c, const NodeEntry& x,
                 const NodeEntry&) { return c.Apply("negative", {c.Apply("sin", {x})}); }},
      {"tan", [](GradientContext& c, const NodeEntry&,
                 const NodeEntry& y) { return Scalar(c, "_plus_scalar", c.Apply("square", {y}), 1.0); }},
      {"arcsin",
       [](GradientContext& c, const NodeEntry& x, const NodeEntry&) { return InverseRootOf(c, x, 1.0, -1.0); }},
      {"arccos", [](GradientContext& c, const NodeEntry& x,
                    const NodeEntry&) { return c.Apply("negative", {InverseRootOf(c, x, 1.0, -1.0)}); }},
      {"arctan",
       [](GradientContext& c, const NodeEntry& x, const NodeEntry&) {
         return c.Apply("reciprocal", {Scalar(c, "_plus_scalar", c.Apply("square", {x}), 1.0)});
       }},
      {"sinh", [](GradientContext& c, const NodeEntry& x, const NodeEntry&) { return c.Apply("cosh", {x}); }},
      {"cosh", [](GradientContext& c, const NodeEntry& x, const NodeEntry&) { return c.Apply("sinh", {x}); }},
      {"arcsinh",
       [](GradientContext& c, const NodeEntry& x, const NodeEntry&) { return InverseRootOf(c, x, 1.0, 1.0); }},
      {"arccosh",
       [](GradientContext& c, const NodeEntry& x, const NodeEntry&) { return InverseRootOf(c, x, -1.0, 1.0); }},
      {"arctanh",
       [](GradientContext& c, const NodeEntry& x, const NodeEntry&) {
         return c.Apply("reciprocal", {Scalar(c, "_rminus_scalar", c.Apply("square", {x}), 1.0)});
       }},
  };
  return derivatives;
}

// Piecewise-constant functions: zero gradient almost everywhere, as MXNet's.
constexpr const char* kStepFunctions[] = {"floor", "ceil", "round", "rint", "fix", "trunc", "sign"};

void AttachGradients() {
  for (const auto& [name, derivative] : Derivatives()) Defined().at(name)->SetGradient(ChainRule(derivative));
  for (const char* name : kStepFunctions) Defined().at(name)->SetGradient([](GradientContext&) {});
}

// --- Gradients of Activation, LeakyReLU, clip and Cast ---

// 1 where x > 0 else 0 (0 for NaN).
NodeEntry Positive(GradientContext& c, const NodeEntry& x) {
  return c.Apply("sign", {c.Apply("relu", {x})});
}

// mask ? a : b for a 0/1 mask, as mask * (a - b) + b.
NodeEntry Blend(GradientContext& c, const NodeEntry& mask, const NodeEntry& a, const NodeEntry& b) {
  return c.Apply("broadcast_add", {c.Apply("broadcast_mul", {mask, c.Apply("broadcast_sub", {a, b})}), b});
}

NodeEntry Ones(GradientContext& c, const NodeEntry& x) {
  return c.Apply("ones_like", {x});
}

void ActivationGradient(GradientContext& ctx) {
  const std::string& act = ctx.attrs.Str("act_type");
  // softrelu' = sigmoid; the others as the elementwise functions.
  const NodeEntry slope = act == "softrelu" ? ctx.Apply("sigmoid", {ctx.inputs[0]})
                                            : Derivatives().at(act)(ctx, ctx.inputs[0], ctx.outputs[0]);
  ctx.SetInputGrad(0, ctx.Apply("broadcast_mul", {ctx.OutputGrad(0), slope}));
}

// MXNet's rules: leaky and rrelu 1 or the slope, elu y + slope below 0, selu
// lambda or y + lambda * alpha, gelu the erf form's derivative, prelu gamma below 0 (and
// x below 0 for gamma, summed over all but the channel axis).
void LeakyReluGradient(GradientContext& ctx) {
  const std::string& act = ctx.attrs.Str("act_type");
  const double slope = ctx.attrs.Float("slope");
  const NodeEntry& x = ctx.inputs[0];
  const NodeEntry& y = ctx.outputs[0];
  const NodeEntry g = ctx.OutputGrad(0);
  const NodeEntry positive = Positive(ctx, x);
  NodeEntry dx;
  if (act == "leaky") {
    dx = Blend(ctx, positive, Ones(ctx, x), Scalar(ctx, "_mul_scalar", Ones(ctx, x), slope));
  } else if (act == "rrelu") {
    // The mask output holds each element's slope (their mean at inference).
    dx = Blend(ctx, positive, Ones(ctx, x), ctx.outputs[1]);
  } else if (act == "elu") {
    dx = Blend(ctx, positive, Ones(ctx, x), Scalar(ctx, "_plus_scalar", y, slope));
  } else if (act == "selu") {
    dx = Blend(ctx, positive, Scalar(ctx, "_mul_scalar", Ones(ctx, x), kSeluLambda),
               Scalar(ctx, "_plus_scalar", y, kSeluLambda * kSeluAlpha));
  } else if (act == "gelu") {
    // 0.5 (1 + erf(x / sqrt 2)) + x exp(-x^2 / 2) / sqrt(2 pi).
    const NodeEntry cdf = Scalar(
        ctx, "_mul_scalar",
        Scalar(ctx, "_plus_scalar", ctx.Apply("erf", {Scalar(ctx, "_mul_scalar", x, 1 / std::numbers::sqrt2)}), 1.0),
        0.5);
    const NodeEntry pdf =
        Scalar(ctx, "_mul_scalar", ctx.Apply("exp", {Scalar(ctx, "_mul_scalar", ctx.Apply("square", {x}), -0.5)}),
               1 / std::sqrt(2 * std::numbers::pi));
    dx = ctx.Apply("broadcast_add", {cdf, ctx.Apply("broadcast_mul", {x, pdf})});
  } else if (act == "prelu") {
    const Shape& data = ctx.input_shapes[0];
    const Shape& gamma_shape = ctx.input_shapes[1];
    // gamma along the channel axis (or one slope for all), broadcastable to data.
    Shape channel(data.size(), 1);
    channel[1] = gamma_shape[0] == 1 ? 1 : data[1];
    const NodeEntry gamma =
        ctx.Apply("_np_reshape", {ctx.inputs[1]}, {{"newshape", std::vector<int64_t>(channel.begin(), channel.end())}});
    const NodeEntry negative = Scalar(ctx, "_rminus_scalar", positive, 1.0);
    dx = ctx.Apply("broadcast_add", {positive, ctx.Apply("broadcast_mul", {negative, gamma})});
    const NodeEntry dgamma = ctx.Apply("broadcast_mul", {g, ctx.Apply("broadcast_mul", {negative, x})});
    ctx.SetInputGrad(1, ctx.Apply("_np_reshape", {ctx.SumToShape(dgamma, data, channel)},
                                  {{"newshape", std::vector<int64_t>(gamma_shape.begin(), gamma_shape.end())}}));
  } else {
    throw Error("LeakyReLU: no gradient for attribute 'act_type' '" + act +
                "'; expected one of elu, gelu, leaky, prelu, rrelu, selu");
  }
  ctx.SetInputGrad(0, ctx.Apply("broadcast_mul", {g, dx}));
}

// As MXNet: the gradient passes where a_min <= x <= a_max, bounds included.
void ClipGradient(GradientContext& ctx) {
  const NodeEntry& x = ctx.inputs[0];
  const NodeEntry inside =
      ctx.Apply("broadcast_mul", {Scalar(ctx, "_greater_equal_scalar", x, ctx.attrs.Float("a_min")),
                                  Scalar(ctx, "_lesser_equal_scalar", x, ctx.attrs.Float("a_max"))});
  ctx.SetInputGrad(0, ctx.Apply("broadcast_mul", {ctx.OutputGrad(0), inside}));
}

// The gradient cast back to the input's dtype; none into integer inputs.
void CastGradient(GradientContext& ctx) {
  if (!IsFloat(ctx.input_types[0])) return;
  ctx.SetInputGrad(0, ctx.Apply("Cast", {ctx.OutputGrad(0)}, {{"dtype", ctx.input_types[0]}}));
}

const bool kRegistered = [] {
  RegisterMath("relu", "max(x, 0); NaN passes through", Relu, KirRelu, IntegerMath::kOwnType);
  RegisterMath("sigmoid", "1 / (1 + exp(-x))", Sigmoid, KirSigmoid);
  RegisterMath(
      "tanh", "hyperbolic tangent", [](double x) { return std::tanh(x); }, [](const Expr& x) { return kir::Tanh(x); });
  RegisterMath(
      "exp", "e^x", [](double x) { return std::exp(x); }, [](const Expr& x) { return kir::Exp(x); });
  RegisterMath(
      "log", "natural logarithm: log(0) = -inf, log(x < 0) = nan", [](double x) { return std::log(x); },
      [](const Expr& x) { return kir::Log(x); });
  RegisterMath(
      "sqrt", "square root: sqrt(x < 0) = nan", [](double x) { return std::sqrt(x); },
      [](const Expr& x) { return kir::Sqrt(x); });
  RegisterMath(
      "rsqrt", "1 / sqrt(x): rsqrt(0) = inf", [](double x) { return 1.0 / std::sqrt(x); },
      [](const Expr& x) { return KirConst(1, x) / kir::Sqrt(x); });
  RegisterMath(
      "square", "x * x", [](double x) { return x * x; }, [](const Expr& x) { return x * x; });
  RegisterMath(
      "abs", "absolute value", [](double x) { return std::fabs(x); }, [](const Expr& x) { return kir::Abs(x); },
      IntegerMath::kOwnType);
  RegisterMath(
      "negative", "-x", [](double x) { return -x; }, [](const Expr& x) { return -x; }, IntegerMath::kOwnType);
  RegisterMath(
      "reciprocal", "1 / x: reciprocal(0) = inf", [](double x) { return 1.0 / x; },
      [](const Expr& x) { return KirConst(1, x) / x; });
  RegisterMath("softsign", "x / (1 + |x|)", Softsign, KirSoftsign);
  RegisterMath(
      "erf", "Gauss error function", [](double x) { return std::erf(x); }, [](const Expr& x) { return kir::Erf(x); });

  // Trigonometric and hyperbolic functions (radians), as MXNet's; integers compute in
  // float64 and store as MXNet does.
  struct Trig {
    const char* name;
    const char* doc;
    double (*fn)(double);
    kir::UnaryOp op;
  };
  for (const Trig& t :
       {Trig{"sin", "sine", [](double x) { return std::sin(x); }, kir::UnaryOp::kSin},
        Trig{"cos", "cosine", [](double x) { return std::cos(x); }, kir::UnaryOp::kCos},
        Trig{"tan", "tangent", [](double x) { return std::tan(x); }, kir::UnaryOp::kTan},
        Trig{"arcsin", "inverse sine: nan outside [-1, 1]", [](double x) { return std::asin(x); }, kir::UnaryOp::kAsin},
        Trig{"arccos", "inverse cosine: nan outside [-1, 1]", [](double x) { return std::acos(x); },
             kir::UnaryOp::kAcos},
        Trig{"arctan", "inverse tangent", [](double x) { return std::atan(x); }, kir::UnaryOp::kAtan},
        Trig{"sinh", "hyperbolic sine", [](double x) { return std::sinh(x); }, kir::UnaryOp::kSinh},
        Trig{"cosh", "hyperbolic cosine", [](double x) { return std::cosh(x); }, kir::UnaryOp::kCosh},
        Trig{"arcsinh", "inverse hyperbolic sine", [](double x) { return std::asinh(x); }, kir::UnaryOp::kAsinh},
        Trig{"arccosh", "inverse hyperbolic cosine: nan below 1", [](double x) { return std::acosh(x); },
             kir::UnaryOp::kAcosh},
        Trig{"arctanh", "inverse hyperbolic tangent: +-inf at +-1, nan beyond", [](double x) { return std::atanh(x); },
             kir::UnaryOp::kAtanh}}) {
    const kir::UnaryOp op = t.op;
    RegisterMath(t.name, t.doc, t.fn, [op](const Expr& x) { return kir::Unary(op, x); });
  }

  // Rounding. Integers go through double as in MXNet: exact up to 2^53, where int64
  // rounds (floor(int64 2^53 + 1) = 2^53 in MXNet too).
  RegisterMath(
      "floor", "largest integer <= x", [](double x) { return std::floor(x); },
      [](const Expr& x) { return kir::Floor(x); });
  RegisterMath(
      "ceil", "smallest integer >= x", [](double x) { return std::ceil(x); },
      [](const Expr& x) { return kir::Ceil(x); });
  RegisterMath(
      "round", "nearest integer, halves away from zero: round(-2.5) = -3", [](double x) { return std::round(x); },
      [](const Expr& x) { return kir::Round(x); });
  RegisterMath("rint", "nearest integer, halves toward -inf: rint(2.5) = 2, rint(-2.5) = -3", Rint, KirRint);
  // MXNet's fix picks whichever of floor and ceil is nearer zero: trunc, signed zeros too.
  RegisterMath(
      "fix", "rounds toward zero: fix(-2.7) = -2", [](double x) { return std::trunc(x); },
      [](const Expr& x) { return kir::Trunc(x); });
  RegisterMath(
      "trunc", "rounds toward zero: trunc(-2.7) = -2", [](double x) { return std::trunc(x); },
      [](const Expr& x) { return kir::Trunc(x); });
  RegisterMath("sign", "-1, 0 or 1; sign(nan) = 0", Sign, KirSign, IntegerMath::kOwnType);
  RegisterMath(
      "logical_not", "1 where x == 0 else 0, in x's dtype; nan counts as true (gives 0)",
      [](double x) { return x == 0 ? 1.0 : 0.0; }, KirLogicalNot, IntegerMath::kOwnType);

  OpRegistry::Global()
      .Register("Activation")
      .Describe("Elementwise activation chosen by act_type: relu, sigmoid, tanh, softrelu (softplus), softsign")
      .Attr("act_type", AttrType::kString, std::nullopt, "the activation function")
      .Choices({"relu", "sigmoid", "softrelu", "softsign", "tanh"})
      .SetInferShape(op_util::SameShapeInfer())
      .SetInferType(FloatOnlyType("Activation"))
      .SetInplace(op_util::InplaceIdentity())
      .SetPattern(OpPattern::kElementwise)
      .SetReference([](const Attrs& attrs, std::span<const Tensor> in, std::span<Tensor> out, const RefContext&) {
        const MathFn fn = ActivationFn(attrs.Str("act_type"));
        for (int64_t i = 0; i < out[0].size(); ++i) out[0].SetDouble(i, fn(in[0].GetDouble(i)));
      })
      .SetScalarCompute([](const Attrs& attrs, const std::vector<Expr>& in, ScalarType type) {
        return KirActivationFn(attrs.Str("act_type"))(kir::Cast(type, in[0]));
      })
      .SetGradient(ActivationGradient);

  // Broadcast pattern: prelu broadcasts gamma over the channel axis; the other act_types
  // are elementwise.
  OpRegistry::Global()
      .Register("LeakyReLU")
      .Describe(
          "Leaky rectifiers chosen by act_type: leaky (x > 0 ? x : slope*x), elu (slope*(e^x-1) below 0), "
          "selu, gelu (erf form), prelu (learned per-channel slope gamma), rrelu (random slope in training)")
      .Attr("act_type", AttrType::kString, AttrValue{std::string("leaky")}, "the activation function")
      .Choices({"elu", "gelu", "leaky", "prelu", "rrelu", "selu"})
      .Attr("slope", AttrType::kFloat, AttrValue{0.25}, "negative slope for leaky and elu")
      .Attr("lower_bound", AttrType::kFloat, AttrValue{0.125}, "rrelu: lower bound of the random slope")
      .Attr("upper_bound", AttrType::kFloat, AttrValue{0.334}, "rrelu: upper bound of the random slope")
      .Inputs([](const Attrs& attrs) {
        if (attrs.Str("act_type") == "prelu") return std::vector<std::string>{"data", "gamma"};
        return std::vector<std::string>{"data"};
      })
      .Outputs([](const Attrs& attrs) {
        if (attrs.Str("act_type") == "rrelu") return std::vector<std::string>{"output", "mask"};
        return std::vector<std::string>{"output"};
      })
      .SetValidate([](const Attrs& attrs) {
        if (attrs.Str("act_type") == "rrelu" && !(attrs.Float("lower_bound") <= attrs.Float("upper_bound"))) {
          throw Error("lower_bound " + FormatAttrValue(attrs.Get("lower_bound")) + " exceeds upper_bound " +
                      FormatAttrValue(attrs.Get("upper_bound")));
        }
      })
      .SetInferShape(LeakyReluShape)
      .SetInferType(FloatOnlyType("LeakyReLU"))
      .SetInplace(op_util::InplaceIdentity())
      .SetPattern(OpPattern::kBroadcast)
      .SetPatternFn([](const Attrs& attrs, bool) {
        return LeakyReluIsElementwise(attrs) ? OpPattern::kElementwise : OpPattern::kOpaque;
      })
      .SetScalarCompute([](const Attrs& attrs, const std::vector<Expr>& in, ScalarType type) {
        if (!LeakyReluIsElementwise(attrs)) throw Error("LeakyReLU " + attrs.Str("act_type") + " is not elementwise");
        return LeakyReluScalar(attrs, kir::Cast(type, in[0]));
      })
      .SetReference(LeakyReluReference)
      .SetLower(LowerLeakyRelu)
      .SetGradient(LeakyReluGradient);

  // MXNet tests x > a_max first, then x < a_min; NaN passes through.
  OpRegistry::Global()
      .Register("clip")
      .Describe("Limits each element to [a_min, a_max]; NaN passes through")
      .Attr("a_min", AttrType::kFloat, std::nullopt, "lower bound")
      .Attr("a_max", AttrType::kFloat, std::nullopt, "upper bound")
      .SetValidate([](const Attrs& attrs) {
        const double a_min = attrs.Float("a_min");
        const double a_max = attrs.Float("a_max");
        if (std::isnan(a_min) || std::isnan(a_max)) throw Error("a_min and a_max must be numbers, not nan");
        if (a_min > a_max) {
          throw Error("a_min " + FormatAttrValue(a_min) + " is greater than a_max " + FormatAttrValue(a_max));
        }
      })
      .SetInferShape(op_util::SameShapeInfer())
      .SetInplace(op_util::InplaceIdentity())
      .SetPattern(OpPattern::kElementwise)
      .SetReference([](const Attrs& attrs, std::span<const Tensor> in, std::span<Tensor> out, const RefContext&) {
        const double a_min = attrs.Float("a_min");
        const double a_max = attrs.Float("a_max");
        for (int64_t i = 0; i < out[0].size(); ++i) {
          const double v = in[0].GetDouble(i);
          StoreValue(out[0], i, v > a_max ? a_max : v < a_min ? a_min : v);
        }
      })
      // Integers compare in float64 (the bounds may be fractional) and store as MXNet.
      .SetScalarCompute([](const Attrs& attrs, const std::vector<Expr>& in, ScalarType type) {
        const ScalarType compute = kir::IsFloatType(type) ? type : ScalarType::kFloat64;
        const Expr x = kir::Cast(compute, in[0]);
        const Expr a_min = kir::FloatImm(attrs.Float("a_min"), compute);
        const Expr a_max = kir::FloatImm(attrs.Float("a_max"), compute);
        const Expr clipped = kir::Select(kir::Gt(x, a_max), a_max, kir::Select(kir::Lt(x, a_min), a_min, x));
        return compute == type ? clipped : KirStoreValue(clipped, type);
      })
      .SetGradient(ClipGradient);

  OpRegistry::Global()
      .Register("Cast")
      .Alias("cast")
      .Describe(
          "Converts to dtype as a C++ cast does: floats truncate toward zero into integers, integers wrap "
          "(cast([300, -1], uint8) = [44, 255]), nonzero becomes true")
      .Attr("dtype", AttrType::kDType, std::nullopt, "the output dtype")
      .SetInferShape(op_util::SameShapeInfer())
      .SetInferType([](const Attrs& attrs, std::vector<DTypeSlot>&, std::vector<DTypeSlot>& outputs) {
        AssignType(outputs[0], attrs.GetDType("dtype"), "output");
      })
      .SetPattern(OpPattern::kElementwise)
      // When the dtype does not change (the passes check the dtypes).
      .SetIdentityWhen([](const Attrs&, const std::vector<Shape>&, DType, bool) { return true; })
      .SetReference(CastReference)
      .SetScalarCompute(KirCast)
      .SetGradient(CastGradient);

  const auto always = [](const Attrs&, const std::vector<Shape>&, DType, bool) { return true; };
  RegisterSimple("BlockGrad", "Identity forward; stops gradients", "stop_gradient", CopyReference, KirCopy)
      .SetIdentityWhen(always)
      .SetGradient([](GradientContext&) {});
  RegisterSimple("identity", "Copies its input", "_copy", CopyReference, KirCopy)
      .SetIdentityWhen(always)
      .SetGradient([](GradientContext& ctx) { ctx.SetInputGrad(0, ctx.OutputGrad(0)); });
  RegisterSimple("zeros_like", "Zeros of the input's shape and dtype", nullptr, FillReference(0.0), FillScalar(0.0))
      .SetGradient([](GradientContext&) {});
  RegisterSimple("ones_like", "Ones of the input's shape and dtype", nullptr, FillReference(1.0), FillScalar(1.0))
      .SetGradient([](GradientContext&) {});
  AttachGradients();
  return true;
}();

}  // namespace
}  // namespace kiln
