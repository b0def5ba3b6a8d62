// Unary operators: elementwise math (relu ... erf), Activation, LeakyReLU, clip, Cast,
// BlockGrad, identity, zeros_like and ones_like.
#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <limits>
#include <numbers>
#include <random>
#include <string>

#include "symbol/op_util.h"

namespace kiln {
namespace {

using op_util::AssignShape;
using op_util::AssignType;
using op_util::LoadInt;
using op_util::StoreInt;

// --- Storing results as MXNet does ---
// MXNet runs integer inputs through float math and stores the result with a C++ cast. On
// x86 a value outside the 32-bit range (or NaN) converts to INT32_MIN, int8 and uint8 keep
// the low bits of that 32-bit result, and int64 gets INT64_MIN for anything out of its
// range: cast([300, -1, 1e10], uint8) = [44, 255, 0], log(int32 -4) = INT32_MIN. The
// reference stores the same values (Tensor::SetDouble would saturate instead).

int32_t ToInt32(double v) {
  if (!(v > -2147483649.0 && v < 2147483648.0)) return std::numeric_limits<int32_t>::min();
  return static_cast<int32_t>(v);
}

int64_t ToInt64(double v) {
  if (!(v >= -9223372036854775808.0 && v < 9223372036854775808.0)) return std::numeric_limits<int64_t>::min();
  return static_cast<int64_t>(v);
}

// A computed value in t's dtype, converted as described above.
void StoreValue(Tensor& t, int64_t i, double v) {
  switch (t.dtype()) {
    case DType::kInt64: StoreInt(t, i, ToInt64(v)); return;
    case DType::kInt32:
    case DType::kInt8:
    case DType::kUInt8: StoreInt(t, i, ToInt32(v)); return;
    case DType::kFloat32:
    case DType::kFloat64:
    case DType::kFloat16:
    case DType::kBool: t.SetDouble(i, v); return;
  }
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

using MathFn = double (*)(double);

MathFn ActivationFn(const std::string& act_type) {
  if (act_type == "relu") return Relu;
  if (act_type == "sigmoid") return Sigmoid;
  if (act_type == "tanh") return [](double x) { return std::tanh(x); };
  if (act_type == "softrelu") return SoftRelu;
  return Softsign;  // the Choices leave only softsign
}

void RegisterMath(const char* name, const char* doc, MathFn fn) {
  OpRegistry::Global()
      .Register(name)
      .Describe(doc)
      .SetInferShape(op_util::SameShapeInfer())
      .SetInplace(op_util::InplaceIdentity())
      .SetPattern(OpPattern::kElementwise)
      .SetReference([fn](const Attrs&, std::span<const Tensor> in, std::span<Tensor> out, const RefContext&) {
        for (int64_t i = 0; i < out[0].size(); ++i) StoreValue(out[0], i, fn(in[0].GetDouble(i)));
      });
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
      throw Error(op + " takes float16, float32 or float64 data, given " + std::string(DTypeName(*known)));
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

// --- Cast ---

void CastReference(const Attrs&, std::span<const Tensor> in, std::span<Tensor> out, const RefContext&) {
  const bool from_int = !IsFloat(in[0].dtype());
  for (int64_t i = 0; i < out[0].size(); ++i) {
    if (from_int) {
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

void RegisterSimple(const char* name, const char* doc, const char* alias, ReferenceFn reference) {
  OpDef& op = OpRegistry::Global()
                  .Register(name)
                  .Describe(doc)
                  .SetInferShape(op_util::SameShapeInfer())
                  .SetInplace(op_util::InplaceIdentity())
                  .SetPattern(OpPattern::kElementwise)
                  .SetReference(std::move(reference));
  if (alias != nullptr) op.Alias(alias);
}

const bool kRegistered = [] {
  RegisterMath("relu", "max(x, 0); NaN passes through", Relu);
  RegisterMath("sigmoid", "1 / (1 + exp(-x))", Sigmoid);
  RegisterMath("tanh", "hyperbolic tangent", [](double x) { return std::tanh(x); });
  RegisterMath("exp", "e^x", [](double x) { return std::exp(x); });
  RegisterMath("log", "natural logarithm: log(0) = -inf, log(x < 0) = nan", [](double x) { return std::log(x); });
  RegisterMath("sqrt", "square root: sqrt(x < 0) = nan", [](double x) { return std::sqrt(x); });
  RegisterMath("rsqrt", "1 / sqrt(x): rsqrt(0) = inf", [](double x) { return 1.0 / std::sqrt(x); });
  RegisterMath("square", "x * x", [](double x) { return x * x; });
  RegisterMath("abs", "absolute value", [](double x) { return std::fabs(x); });
  RegisterMath("negative", "-x", [](double x) { return -x; });
  RegisterMath("reciprocal", "1 / x: reciprocal(0) = inf", [](double x) { return 1.0 / x; });
  RegisterMath("softsign", "x / (1 + |x|)", Softsign);
  RegisterMath("erf", "Gauss error function", [](double x) { return std::erf(x); });

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
      });

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
      .SetReference(LeakyReluReference);

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
      });

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
      .SetReference(CastReference);

  RegisterSimple("BlockGrad", "Identity forward; stops gradients", "stop_gradient", CopyReference);
  RegisterSimple("identity", "Copies its input", "_copy", CopyReference);
  RegisterSimple("zeros_like", "Zeros of the input's shape and dtype", nullptr, FillReference(0.0));
  RegisterSimple("ones_like", "Ones of the input's shape and dtype", nullptr, FillReference(1.0));
  return true;
}();

}  // namespace
}  // namespace kiln
