// Operators without inputs: constant fills (zeros, ones, full), arange, and random
// sampling (random_uniform, random_normal).
#include <cmath>
#include <numbers>
#include <random>

#include "symbol/op_util.h"

namespace kiln {
namespace {

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
      });
}

// stop=None means the range [0, start), unless infer_range takes the length from the
// consumer (then start is the first value).
bool StopIsStart(const Attrs& attrs) { return attrs.IsNone("stop") && !attrs.Bool("infer_range"); }

// MXNet's arange length, ceil((stop - start) / step) values (each `repeat` times), as a
// double so that validation can reject empty and absurd ranges; nullopt with infer_range.
std::optional<double> ArangeValues(const Attrs& attrs) {
  if (StopIsStart(attrs)) return std::ceil(attrs.Float("start") / attrs.Float("step"));
  if (attrs.IsNone("stop")) return std::nullopt;
  return std::ceil((attrs.Float("stop") - attrs.Float("start")) / attrs.Float("step"));
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
        RejectDTypes(attrs, {DType::kBool}, "float16, float32, float64, uint8, int8, int32, int64");
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
        const bool integer = !IsFloat(out[0].dtype());
        double start = StopIsStart(attrs) ? 0.0 : attrs.Float("start");
        double step = attrs.Float("step");
        if (integer) {
          start = std::trunc(start);
          step = std::trunc(step);
        }
        const int64_t repeat = attrs.Int("repeat");
        for (int64_t i = 0; i < out[0].size(); ++i) out[0].SetDouble(i, start + static_cast<double>(i / repeat) * step);
      });
}

// Uniform in [0, 1) from the top 53 bits: defined by the generator alone, unlike the
// standard library's distributions, whose algorithms vary between implementations.
double Uniform01(std::mt19937_64& rng) { return static_cast<double>(rng() >> 11) * 0x1.0p-53; }

// Random sources are never fused: a fused or duplicated copy would draw other numbers.
// Samples come from std::mt19937_64 seeded with RefContext::seed.
void RegisterRandom(const char* name, const char* alias1, const char* alias2, const char* doc, const char* p1,
                    double d1, const char* p2, double d2, ValidateFn validate,
                    double (*sample)(std::mt19937_64&, double, double)) {
  RegisterSource(name, alias1, doc, true)
      .Alias(alias2)
      .Attr(p1, AttrType::kFloat, AttrValue{d1})
      .Attr(p2, AttrType::kFloat, AttrValue{d2})
      .Attr("dtype", AttrType::kDType, AttrValue{}, "output dtype (float16, float32, float64); None: float32")
      .SetValidate([validate](const Attrs& attrs) {
        RejectDTypes(attrs, {DType::kUInt8, DType::kInt8, DType::kInt32, DType::kInt64, DType::kBool},
                     "float16, float32, float64");
        validate(attrs);
      })
      .SetPattern(OpPattern::kOpaque)
      .SetReference([p1, p2, sample](const Attrs& attrs, std::span<const Tensor>, std::span<Tensor> out,
                                     const RefContext& ctx) {
        std::mt19937_64 rng(ctx.seed);
        const double a = attrs.Float(p1);
        const double b = attrs.Float(p2);
        for (int64_t i = 0; i < out[0].size(); ++i) out[0].SetDouble(i, sample(rng, a, b));
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
      [](std::mt19937_64& rng, double low, double high) { return low + (high - low) * Uniform01(rng); });
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
      });
  return true;
}();

}  // namespace
}  // namespace kiln
