// Operators without inputs: constant fills (zeros, ones, full), arange, and random
// sampling (random_uniform, random_normal). Also the counter-based generator that every
// random lowering shares (LeakyReLU's rrelu uses it too).
#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <numbers>
#include <random>

#include "codegen/kir/kir.h"
#include "codegen/lower/lower_util.h"
#include "graph/op_util.h"
#include "ops/lower_random.h"

namespace kiln {

// Compiled code cannot replay the reference's sequential std::mt19937_64 stream (each
// parallel task would have to skip ahead), so random lowerings draw element i's numbers
// from a counter-based generator instead: Widynski's "Squares" (arXiv:2004.06278),
// f(counter, key), four rounds of x = x*x + c and a 32-bit rotation, which passes BigCrush
// and PractRand. It needs only wrapping i64 multiplies and adds plus a logical right
// shift; kir has no shifts, so the shift is built from a signed division and a select.
// Results are deterministic per (seed, element) whatever the parallel split, but they are
// other numbers than the reference's: tests compare distributions, not elements.
namespace lower_random {

using kir::Expr;
using kir::ScalarType;
using kir::Stmt;

namespace {

// Elements per parallel task, as lower::ChunkedLoop.
constexpr int64_t kChunk = 16384;

// The 64 bits of x shifted right by k (0 < k < 64), zeros shifted in. A negative x is
// 2^64 + x unsigned: ((x + 2^63) >> k) + 2^(63 - k), where x + 2^63 = x - INT64_MIN
// is non-negative and the division exact in sign.
Expr ShiftRight(const Expr& x, int k) {
  const Expr divisor(int64_t{1} << k);
  return kir::Select(kir::Lt(x, Expr(int64_t{0})),
                     (x - Expr(std::numeric_limits<int64_t>::min())) / divisor + Expr(int64_t{1} << (63 - k)),
                     x / divisor);
}

// Swaps the 32-bit halves: the two parts do not overlap, so their sum is their OR.
Expr Rotate32(const Expr& x) {
  return ShiftRight(x, 32) + x * Expr(int64_t{1} << 32);
}

// A key from the node's seed: splitmix64's finalizer (run here, on the host, where xor
// exists), odd as Squares requires.
int64_t SquaresKey(uint64_t seed) {
  uint64_t z = seed + 0x9E3779B97F4A7C15ULL;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  z ^= z >> 31;
  return static_cast<int64_t>(z | 1);
}

// squares32(counter, key) into state[0] (a value in [0, 2^32)); state holds x, y, z.
// Intermediates go through the local so that expressions stay trees of a few nodes.
Stmt Squares32(const kir::Buffer& state, const Expr& counter, int64_t key) {
  const Expr k(key);
  const auto x = [&] { return kir::Load(state, Expr(int64_t{0})); };
  const auto set_x = [&](const Expr& value) { return kir::Store(state, Expr(int64_t{0}), value); };
  const Expr y = kir::Load(state, Expr(int64_t{1}));
  const Expr z = kir::Load(state, Expr(int64_t{2}));
  return kir::Block({
      kir::Store(state, Expr(int64_t{1}), counter * k),
      kir::Store(state, Expr(int64_t{2}), y + k),
      set_x(y),
      set_x(x() * x() + y),
      set_x(Rotate32(x())),
      set_x(x() * x() + z),
      set_x(Rotate32(x())),
      set_x(x() * x() + y),
      set_x(Rotate32(x())),
      set_x(x() * x() + z),
      set_x(ShiftRight(x(), 32)),
  });
}

}  // namespace

// A loop over `count` elements, in parallel chunks when large, whose body gets element
// i's uniform draw u of `type` (float32 or float64): 24 (float32) or 53 (float64, two
// draws) random bits, in [0, 1), or with kOpen an odd multiple of 2^-bits in (0, 1) for
// functions that must not see 0 (logarithms).
Stmt UniformLoop(const LowerContext& ctx, int64_t count, ScalarType type, Interval interval,
                 const std::function<Stmt(const Expr& i, const Expr& u)>& body, const Expr& stream_offset) {
  const kir::Buffer state = ctx.builder->AddLocal("rng", ScalarType::kInt64, 4);
  const int64_t key = SquaresKey(ctx.seed);
  const bool wide = type == ScalarType::kFloat64;
  const int bits = wide ? 53 : 24;
  const Expr drawn = kir::Load(state, Expr(int64_t{0}));
  const auto element = [&](const Expr& i) {
    std::vector<Stmt> steps;
    Expr random_bits;
    const Expr counter = stream_offset.defined() ? stream_offset + i : i;
    if (wide) {
      // 26 bits of the first draw above 27 of the second.
      steps.push_back(Squares32(state, counter * Expr(int64_t{2}), key));
      steps.push_back(kir::Store(state, Expr(int64_t{3}), drawn / Expr(int64_t{1} << 6)));
      steps.push_back(Squares32(state, counter * Expr(int64_t{2}) + Expr(int64_t{1}), key));
      random_bits = kir::Load(state, Expr(int64_t{3})) * Expr(int64_t{1} << 27) + drawn / Expr(int64_t{1} << 5);
    } else {
      steps.push_back(Squares32(state, counter, key));
      random_bits = drawn / Expr(int64_t{1} << 8);
    }
    if (interval == Interval::kOpen) random_bits = random_bits - random_bits % Expr(int64_t{2}) + Expr(int64_t{1});
    const Expr u = kir::Cast(type, random_bits) * kir::FloatImm(std::ldexp(1.0, -bits), type);
    steps.push_back(body(i, u));
    return kir::Block(std::move(steps));
  };
  const Expr i = kir::Var("i");
  if (count <= kChunk) {
    return kir::Allocate(state, kir::For(i, Expr(int64_t{0}), Expr(count), element(i), kir::LoopKind::kVectorize));
  }
  const Expr chunk = kir::Var("chunk");
  const Expr begin = chunk * Expr(kChunk);
  return kir::For(chunk, Expr(int64_t{0}), Expr((count + kChunk - 1) / kChunk),
                  kir::Allocate(state, kir::For(i, Expr(int64_t{0}), kir::Min(Expr(kChunk), Expr(count) - begin),
                                                element(begin + i), kir::LoopKind::kVectorize)),
                  kir::LoopKind::kParallel);
}

}  // namespace lower_random

namespace {

using kir::Expr;
using kir::ScalarType;
using kir::Stmt;

using op_util::AssignType;

// The `shape` attribute follows MXNet 1.x: () or None leaves the shape to be inferred from
// the consumer, and each 0 marks a dimension to infer (zeros(shape=(0, 256)) for an RNN's
// begin state takes its batch size from the graph).
void InferShapeFromAttr(const Attrs& attrs, ShapeSlot& out) {
  if (attrs.IsNone("shape") || attrs.Ints("shape").empty()) return;
  const Shape& given = attrs.Ints("shape");
  bool complete = true;
  for (int64_t dim : given) complete = complete && dim > 0;
  if (out) {
    bool fits = out->size() == given.size();
    for (size_t d = 0; fits && d < given.size(); ++d) fits = given[d] == 0 || given[d] == (*out)[d];
    if (!fits) {
      op_util::ShapeError("output", "a shape matching attribute shape " + ShapeToString(given) + " (0: inferred)",
                          *out);
    }
  } else if (complete) {
    out = given;
  }
}

void RejectDTypes(const Attrs& attrs, const std::vector<DType>& rejected, const std::string& allowed) {
  if (attrs.IsNone("dtype")) return;
  const DType dtype = attrs.GetDType("dtype");
  for (DType r : rejected) {
    if (dtype == r) throw Error("attribute 'dtype': expected one of {" + allowed + "}, given " + attrs.Str("dtype"));
  }
}

// A source: declares shape, ctx and dtype, infers the shape from `shape` and the dtype
// from `dtype` (None: float32).
OpDef& RegisterSource(const char* name, const char* alias, const char* doc, bool shape_nullable) {
  OpDef& op = OpRegistry::Global().Register(name).Alias(alias).Describe(doc);
  op.Attr("shape", AttrType::kInts, shape_nullable ? AttrValue{} : AttrValue{std::vector<int64_t>{}},
          "output shape; () or 0 dims are inferred from the consumer")
      .Range(0);
  return op.Attr("ctx", AttrType::kString, AttrValue{std::string()}, "MXNet's device for imperative calls; ignored")
      .Inputs(std::vector<std::string>{})
      .SetInferShape([](const Attrs& attrs, std::vector<ShapeSlot>&, std::vector<ShapeSlot>& out) {
        InferShapeFromAttr(attrs, out[0]);
      })
      .SetInferType([](const Attrs& attrs, std::vector<DTypeSlot>&, std::vector<DTypeSlot>& out) {
        AssignType(out[0], attrs.IsNone("dtype") ? DType::kFloat32 : attrs.GetDType("dtype"), "output");
      });
}

template <typename T>
Expr SaturatedInt(double value, ScalarType type) {
  using Limits = std::numeric_limits<T>;
  if (std::isnan(value)) return kir::IntImm(0, type);
  const double truncated = std::trunc(value);
  if (truncated <= static_cast<double>(Limits::lowest())) return kir::IntImm(Limits::lowest(), type);
  if (truncated >= static_cast<double>(Limits::max())) return kir::IntImm(static_cast<int64_t>(Limits::max()), type);
  return kir::IntImm(static_cast<int64_t>(static_cast<T>(truncated)), type);  // uint64: its bits
}

// The constant Tensor::SetDouble stores: integers truncate and saturate (NaN: 0), bool is
// value != 0, floats round when stored.
Expr StoredConst(double value, ScalarType type) {
  switch (type) {
    case ScalarType::kBool: return kir::IntImm(value != 0.0, type);
    case ScalarType::kInt8: return SaturatedInt<int8_t>(value, type);
    case ScalarType::kUInt8: return SaturatedInt<uint8_t>(value, type);
    case ScalarType::kInt16: return SaturatedInt<int16_t>(value, type);
    case ScalarType::kUInt16: return SaturatedInt<uint16_t>(value, type);
    case ScalarType::kInt32: return SaturatedInt<int32_t>(value, type);
    case ScalarType::kUInt32: return SaturatedInt<uint32_t>(value, type);
    case ScalarType::kInt64: return SaturatedInt<int64_t>(value, type);
    case ScalarType::kUInt64: return SaturatedInt<uint64_t>(value, type);
    case ScalarType::kFloat16:
    case ScalarType::kBFloat16:
    case ScalarType::kFloat32:
    case ScalarType::kFloat64: break;
  }
  return kir::FloatImm(value, type);
}

// Constant fills: no inputs, each element computed on its own, so they fuse into their
// consumers like an elementwise producer.
void RegisterFill(const char* name, const char* alias, const char* doc, std::optional<double> value) {
  OpDef& op = RegisterSource(name, alias, doc, !value.has_value());
  op.Attr("dtype", AttrType::kDType, AttrValue{std::string("float32")}, "output dtype");
  if (!value) op.Attr("value", AttrType::kFloat, std::nullopt, "the fill value");
  op.SetPattern(OpPattern::kElementwise)
      .SetReference([value](const Attrs& attrs, std::span<const Tensor>, std::span<Tensor> out, const RefContext&) {
        const double fill = value ? *value : attrs.Float("value");
        for (int64_t i = 0; i < out[0].size(); ++i) out[0].SetDouble(i, fill);
      })
      .SetScalarCompute([value](const Attrs& attrs, const std::vector<Expr>&, ScalarType type) {
        return StoredConst(value ? *value : attrs.Float("value"), type);
      });
}

// stop=None means the range [0, start), unless infer_range takes the length from the
// consumer (then start is the first value).
bool StopIsStart(const Attrs& attrs) {
  return attrs.IsNone("stop") && !attrs.Bool("infer_range");
}

// MXNet's arange length, ceil((stop - start) / step) values (each `repeat` times), as a
// double so that validation can reject empty and absurd ranges; nullopt with infer_range.
std::optional<double> ArangeValues(const Attrs& attrs) {
  if (StopIsStart(attrs)) return std::ceil(attrs.Float("start") / attrs.Float("step"));
  if (attrs.IsNone("stop")) return std::nullopt;
  return std::ceil((attrs.Float("stop") - attrs.Float("start")) / attrs.Float("step"));
}

// Element i of arange is start + (i / repeat) * step; integer outputs truncate start and
// step first (MXNet casts them to the dtype).
struct ArangeTerms {
  double start;
  double step;
  int64_t repeat;
};

ArangeTerms MakeArangeTerms(const Attrs& attrs, DType dtype) {
  ArangeTerms terms{StopIsStart(attrs) ? 0.0 : attrs.Float("start"), attrs.Float("step"), attrs.Int("repeat")};
  if (!IsFloat(dtype)) {
    terms.start = std::trunc(terms.start);
    terms.step = std::trunc(terms.step);
  }
  return terms;
}

// Floats compute start + k * step in their compute type. Integers compute in float64,
// exactly the reference's arithmetic (start and step truncated first), then saturate as
// Tensor::SetDouble does: arange(0, 300) in int8 ends in 127s.
Stmt LowerArange(const Attrs& attrs, LowerContext& ctx) {
  const kir::Buffer& out = ctx.outputs[0];
  const bool integer = !IsFloat(ctx.output_types[0]);
  const ScalarType type = integer ? ScalarType::kFloat64 : lower::ComputeType(ctx.output_types[0]);
  const ArangeTerms terms = MakeArangeTerms(attrs, ctx.output_types[0]);
  return lower::ChunkedLoop(NumElements(ctx.output_shapes[0]), [&](const Expr& i) {
    const Expr k = kir::Cast(type, terms.repeat == 1 ? i : i / Expr(terms.repeat));
    const Expr value = kir::FloatImm(terms.start, type) + k * kir::FloatImm(terms.step, type);
    if (!integer) return lower::StoreFrom(out, i, value);
    if (out->type == ScalarType::kInt64) {
      // 2^63 does not fit: it and above saturate; -2^63 converts exactly.
      const Expr clamped = kir::Max(value, kir::FloatImm(-0x1p63, type));
      return kir::Store(out, i,
                        kir::Select(kir::Ge(value, kir::FloatImm(0x1p63, type)),
                                    Expr(std::numeric_limits<int64_t>::max()), kir::Cast(ScalarType::kInt64, clamped)));
    }
    if (out->type == ScalarType::kUInt64) {
      // Negative values saturate at 0; the conversion saturates at 2^64 - 1.
      return kir::Store(out, i, kir::Cast(ScalarType::kUInt64, kir::Max(value, kir::FloatImm(0, type))));
    }
    const Expr low = kir::FloatImm(static_cast<double>(StoredConst(-0x1p63, out->type)->int_value), type);
    const Expr high = kir::FloatImm(static_cast<double>(StoredConst(0x1p63, out->type)->int_value), type);
    return lower::StoreFrom(out, i, kir::Min(kir::Max(value, low), high));
  });
}

void RegisterArange() {
  OpRegistry::Global()
      .Register("arange")
      .Alias("_arange")
      .Describe("Evenly spaced values start, start+step, ... below stop, each repeated `repeat` times")
      .Attr("start", AttrType::kFloat, std::nullopt, "first value; the end when stop is None")
      .Attr("stop", AttrType::kFloat, AttrValue{}, "end (excluded); None: the range is [0, start)")
      .Attr("step", AttrType::kFloat, AttrValue{1.0}, "spacing")
      .Attr("repeat", AttrType::kInt, AttrValue{int64_t{1}}, "times each value repeats")
      .Range(1)
      .Attr("infer_range", AttrType::kBool, AttrValue{false}, "with stop None: length from the consumer's shape")
      .Attr("ctx", AttrType::kString, AttrValue{std::string()}, "MXNet's device for imperative calls; ignored")
      .Attr("dtype", AttrType::kDType, AttrValue{std::string("float32")}, "output dtype")
      .Inputs(std::vector<std::string>{})
      .SetValidate([](const Attrs& attrs) {
        RejectDTypes(attrs, {DType::kBool},
                     "float16, bfloat16, float32, float64, uint8, int8, int16, uint16, int32, uint32, int64, uint64");
        const double step = attrs.Float("step");
        if (!std::isfinite(attrs.Float("start")) || !std::isfinite(step) ||
            (!attrs.IsNone("stop") && !std::isfinite(attrs.Float("stop")))) {
          throw Error("attributes start, stop and step must be finite");
        }
        if (step == 0) throw Error("attribute 'step': must be nonzero, given 0");
        const auto values = ArangeValues(attrs);
        const std::string range = "start " + FormatAttrValue(attrs.Get("start")) + ", stop " +
                                  FormatAttrValue(attrs.Get("stop")) + ", step " + FormatAttrValue(attrs.Get("step"));
        if (values && *values <= 0) throw Error("empty range: " + range + " give no values");
        if (values && *values * static_cast<double>(attrs.Int("repeat")) > 0x1.0p62) {
          throw Error("range too long: " + range);
        }
      })
      .SetInferShape([](const Attrs& attrs, std::vector<ShapeSlot>&, std::vector<ShapeSlot>& out) {
        if (const auto values = ArangeValues(attrs)) {
          op_util::AssignShape(out[0], {static_cast<int64_t>(*values) * attrs.Int("repeat")}, "output");
        } else if (out[0] && out[0]->size() != 1) {
          op_util::ShapeError("output", "1-d (arange with infer_range)", *out[0]);
        }
      })
      .SetInferType([](const Attrs& attrs, std::vector<DTypeSlot>&, std::vector<DTypeSlot>& out) {
        AssignType(out[0], attrs.GetDType("dtype"), "output");
      })
      // Like the fills: each element is a function of its own index.
      .SetPattern(OpPattern::kElementwise)
      // MXNet casts start and step to the output dtype before stepping, so an integer
      // arange with step 0.5 repeats its start.
      .SetReference([](const Attrs& attrs, std::span<const Tensor>, std::span<Tensor> out, const RefContext&) {
        const ArangeTerms t = MakeArangeTerms(attrs, out[0].dtype());
        for (int64_t i = 0; i < out[0].size(); ++i)
          out[0].SetDouble(i, t.start + static_cast<double>(i / t.repeat) * t.step);
      })
      // Each element is a function of its index, which a ScalarFn does not see: a loop.
      .SetLower(LowerArange);
}

// Uniform in [0, 1) from the top 53 bits: defined by the generator alone, unlike the
// standard library's distributions, whose algorithms vary between implementations.
double Uniform01(std::mt19937_64& rng) {
  return static_cast<double>(rng() >> 11) * 0x1.0p-53;
}

// The inverse of the standard normal CDF for p in (0, 1): Acklam's rational
// approximations (relative error below 1.2e-9, far inside float32's rounding), one for
// the centre and one for the tails, mirrored for p > 1/2. One uniform per sample and no
// cosine, which kir lacks for Box-Muller.
Expr InverseNormalCdf(const Expr& p) {
  const ScalarType type = p.type();
  const auto c = [&](double value) { return kir::FloatImm(value, type); };
  const auto horner = [&](const Expr& x, std::initializer_list<double> coefficients) {
    Expr result;
    for (const double k : coefficients) result = result.defined() ? result * x + c(k) : c(k);
    return result;
  };
  constexpr double kTail = 0.02425;
  const Expr q = p - c(0.5);
  const Expr r = q * q;
  const Expr centre = horner(r, {-3.969683028665376e+01, 2.209460984245205e+02, -2.759285104469687e+02,
                                 1.383577518672690e+02, -3.066479806614716e+01, 2.506628277459239e+00}) *
                      q /
                      horner(r, {-5.447609879822406e+01, 1.615858368580409e+02, -1.556989798598866e+02,
                                 6.680131188771972e+01, -1.328068155288572e+01, 1.0});
  const Expr lower_half = kir::Lt(p, c(0.5));
  const Expr s = kir::Sqrt(c(-2.0) * kir::Log(kir::Select(lower_half, p, c(1.0) - p)));
  const Expr tail =
      horner(s, {-7.784894002430293e-03, -3.223964580411365e-01, -2.400758277161838e+00, -2.549732539343734e+00,
                 4.374664141464968e+00, 2.938163982698783e+00}) /
      horner(s, {7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e+00, 3.754408661907416e+00, 1.0});
  return kir::Select(kir::Lt(kir::Abs(q), c(0.5 - kTail)), centre, kir::Select(lower_half, tail, -tail));
}

// How a lowering turns element i's uniform draw u into a sample with parameters a, b.
struct KirSampler {
  lower_random::Interval interval;
  Expr (*sample)(const Expr& u, double a, double b);
};

// Random sources are never fused: a fused or duplicated copy would draw other numbers.
// The reference's samples come from std::mt19937_64 seeded with RefContext::seed; the
// lowering's from the counter-based generator above (same distribution, other numbers).
void RegisterRandom(const char* name, const char* alias1, const char* alias2, const char* doc, const char* p1,
                    double d1, const char* p2, double d2, ValidateFn validate,
                    double (*sample)(std::mt19937_64&, double, double), KirSampler kir_sampler) {
  RegisterSource(name, alias1, doc, true)
      .Alias(alias2)
      .Attr(p1, AttrType::kFloat, AttrValue{d1})
      .Attr(p2, AttrType::kFloat, AttrValue{d2})
      .Attr("dtype", AttrType::kDType, AttrValue{}, "output dtype (float16, bfloat16, float32, float64); None: float32")
      .SetValidate([validate](const Attrs& attrs) {
        if (!attrs.IsNone("dtype") && !IsFloat(attrs.GetDType("dtype"))) {
          throw Error("attribute 'dtype': expected one of {float16, bfloat16, float32, float64}, given " +
                      attrs.Str("dtype"));
        }
        validate(attrs);
      })
      .SetPattern(OpPattern::kOpaque)
      .SetRandomAtInference([](const Attrs&) { return true; })
      .SetReference(
          [p1, p2, sample](const Attrs& attrs, std::span<const Tensor>, std::span<Tensor> out, const RefContext& ctx) {
            std::mt19937_64 rng(ctx.seed);
            const double a = attrs.Float(p1);
            const double b = attrs.Float(p2);
            for (int64_t i = 0; i < out[0].size(); ++i) out[0].SetDouble(i, sample(rng, a, b));
          })
      .SetLower([p1, p2, kir_sampler](const Attrs& attrs, LowerContext& ctx) {
        const double a = attrs.Float(p1);
        const double b = attrs.Float(p2);
        return lower_random::UniformLoop(ctx, NumElements(ctx.output_shapes[0]),
                                         lower::ComputeType(ctx.output_types[0]), kir_sampler.interval,
                                         [&](const Expr& i, const Expr& u) {
                                           return lower::StoreFrom(ctx.outputs[0], i, kir_sampler.sample(u, a, b));
                                         });
      });
}

const bool kRegistered = [] {
  RegisterFill("zeros", "_zeros", "A tensor of zeros", 0.0);
  RegisterFill("ones", "_ones", "A tensor of ones", 1.0);
  RegisterFill("full", "_full", "A tensor filled with value", std::nullopt);
  RegisterArange();
  RegisterRandom(
      "random_uniform", "uniform", "_random_uniform", "Samples uniformly from [low, high)", "low", 0.0, "high", 1.0,
      [](const Attrs& attrs) {
        if (attrs.Float("low") > attrs.Float("high")) {
          throw Error("attribute 'low' (" + FormatAttrValue(attrs.Get("low")) + ") must be <= 'high' (" +
                      FormatAttrValue(attrs.Get("high")) + ")");
        }
      },
      [](std::mt19937_64& rng, double low, double high) { return low + (high - low) * Uniform01(rng); },
      {lower_random::Interval::kHalfOpen, [](const Expr& u, double low, double high) {
         return kir::FloatImm(low, u.type()) + kir::FloatImm(high - low, u.type()) * u;
       }});
  RegisterRandom(
      "random_normal", "normal", "_random_normal", "Samples from a normal distribution N(loc, scale^2)", "loc", 0.0,
      "scale", 1.0,
      [](const Attrs& attrs) {
        if (!(attrs.Float("scale") > 0)) {
          throw Error("attribute 'scale': must be > 0, given " + FormatAttrValue(attrs.Get("scale")));
        }
      },
      // Box-Muller; 1 - u keeps the logarithm's argument in (0, 1].
      [](std::mt19937_64& rng, double loc, double scale) {
        const double radius = std::sqrt(-2.0 * std::log(1.0 - Uniform01(rng)));
        return loc + scale * radius * std::cos(2.0 * std::numbers::pi * Uniform01(rng));
      },
      // The inverse CDF instead of Box-Muller; the open interval keeps the logarithm finite.
      {lower_random::Interval::kOpen, [](const Expr& u, double loc, double scale) {
         return kir::FloatImm(loc, u.type()) + kir::FloatImm(scale, u.type()) * InverseNormalCdf(u);
       }});
  return true;
}();

}  // namespace
}  // namespace kiln
