// ONNX Resize (opsets 10 to 19) and Upsample (7, 9): nearest, linear and cubic
// interpolation with every coordinate transformation mode, antialiasing, exclude_outside,
// axes, keep_aspect_ratio_policy and tf_crop_and_resize's extrapolation.
//
// Interpolation is separable: each resized axis is a 1-D resampling, and with static
// shapes the taps of every output position (the input indices it reads and their
// weights) are known at import. So each axis becomes, in kiln operators, a sum over taps
// of take(x, indices_t, axis) * weights_t; nearest sampling is a single take, exact in
// any dtype. The tap rules follow ONNX's reference (onnx/reference/ops/op_resize.py).
#include <algorithm>
#include <cmath>
#include <limits>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "symbol/onnx/onnx_converter.h"
#include "symbol/onnx/onnx_tensor.h"

namespace kiln::onnx_import {
namespace {

struct ResizeAttrs {
  std::string mode = "nearest";
  std::string coordinate_mode = "half_pixel";
  std::string nearest_mode = "round_prefer_floor";
  double cubic_a = -0.75;
  bool exclude_outside = false;
  bool antialias = false;
  double extrapolation_value = 0.0;
};

// One axis's resampling: for output position o, taps (index, weight) t at
// index[o * taps + t]; `extrapolated[o]` marks tf_crop_and_resize positions outside the
// input, which take the extrapolation value.
struct AxisTaps {
  int64_t taps = 0;
  std::vector<int64_t> index;
  std::vector<double> weight;
  std::vector<bool> extrapolated;
};

// The source coordinate of output position y (ONNX's coordinate_transformation_mode).
// `scale` is the axis's scale factor, `in` its input size, `out` its output size;
// roi = (start, end) for tf_crop_and_resize.
double SourceCoordinate(const std::string& mode, double y, double scale, int64_t in, int64_t out, double roi_start,
                        double roi_end) {
  const double out_width = scale * static_cast<double>(in);
  if (mode == "half_pixel") return (y + 0.5) / scale - 0.5;
  if (mode == "asymmetric") return y / scale;
  if (mode == "align_corners") return out_width == 1 ? 0.0 : y * static_cast<double>(in - 1) / (out_width - 1);
  if (mode == "pytorch_half_pixel") return out_width == 1 ? -0.5 : (y + 0.5) / scale - 0.5;
  if (mode == "half_pixel_symmetric") {
    const double adjustment = static_cast<double>(out) / out_width;
    const double offset = static_cast<double>(in) / 2 * (1 - adjustment);
    return offset + (y + 0.5) / scale - 0.5;
  }
  // tf_crop_and_resize
  const double span = (roi_end - roi_start) * static_cast<double>(in - 1);
  const double x = out_width == 1 ? span / 2 : y * span / (out_width - 1);
  return x + roi_start * static_cast<double>(in - 1);
}

double CubicWeight(double x, double a) {
  x = std::fabs(x);
  if (x <= 1) return ((a + 2) * x - (a + 3)) * x * x + 1;
  if (x < 2) return ((a * x - 5 * a) * x + 8 * a) * x - 4 * a;
  return 0;
}

// The first tap's offset from floor(x) and the weights of the taps, given the fraction
// r in (0, 1] of the source coordinate past its left neighbour.
void TapWeights(const ResizeAttrs& attrs, double r, double scale, int64_t* start, std::vector<double>* weights) {
  weights->clear();
  if (attrs.mode == "nearest") {
    *start = 0;
    bool right = false;
    if (r == 1) {
      right = true;  // an integral coordinate: the left neighbour is one before it
    } else if (attrs.nearest_mode == "round_prefer_floor") {
      right = r > 0.5;
    } else if (attrs.nearest_mode == "round_prefer_ceil") {
      right = r >= 0.5;
    } else if (attrs.nearest_mode == "ceil") {
      right = true;
    }
    *weights = {right ? 0.0 : 1.0, right ? 1.0 : 0.0};
    return;
  }
  const bool linear = attrs.mode == "linear";
  if (!attrs.antialias) {
    if (linear) {
      *start = 0;
      *weights = {1 - r, r};
    } else {
      *start = -1;
      for (const double d : {r + 1, r, 1 - r, 2 - r}) weights->push_back(CubicWeight(d, attrs.cubic_a));
    }
    return;
  }
  // Antialiasing widens the filter by 1 / scale when downsampling; the weights are
  // normalized to sum to 1.
  const double s = std::min(scale, 1.0);
  const double support = linear ? 1.0 : 2.0;
  *start = static_cast<int64_t>(std::floor(-support / s) + 1);
  const int64_t count = 2 - 2 * *start;
  double sum = 0;
  for (int64_t i = *start; i < *start + count; ++i) {
    const double x = (static_cast<double>(i) - r) * s;
    const double w = linear ? std::clamp(1 - std::fabs(x), 0.0, 1.0) : CubicWeight(x, attrs.cubic_a);
    weights->push_back(w);
    sum += w;
  }
  for (double& w : *weights) w /= sum;
}

AxisTaps ComputeTaps(const ResizeAttrs& attrs, int64_t in, int64_t out, double scale, double roi_start,
                     double roi_end) {
  AxisTaps taps;
  std::vector<double> weights;
  for (int64_t o = 0; o < out; ++o) {
    const double x =
        SourceCoordinate(attrs.coordinate_mode, static_cast<double>(o), scale, in, out, roi_start, roi_end);
    taps.extrapolated.push_back(attrs.coordinate_mode == "tf_crop_and_resize" &&
                                (x < 0 || x > static_cast<double>(in - 1)));
    // The left neighbour and the fraction past it, in (0, 1]: an integral coordinate
    // is reached from the neighbour before it (ONNX prefers the left pixel).
    double left = std::floor(x);
    double r = x - left;
    if (r == 0) {
      left -= 1;
      r = 1;
    }
    int64_t start = 0;
    TapWeights(attrs, r, scale, &start, &weights);
    taps.taps = static_cast<int64_t>(weights.size());
    std::vector<int64_t> indices;
    for (int64_t t = 0; t < taps.taps; ++t) indices.push_back(static_cast<int64_t>(left) + start + t);
    if (attrs.exclude_outside) {
      double sum = 0;
      for (int64_t t = 0; t < taps.taps; ++t) {
        if (indices[t] < 0 || indices[t] >= in) weights[t] = 0;
        sum += weights[t];
      }
      if (sum != 0) {
        for (double& w : weights) w /= sum;
      }
    }
    // Beyond the edges the edge pixel repeats.
    for (int64_t t = 0; t < taps.taps; ++t) {
      taps.index.push_back(std::clamp<int64_t>(indices[t], 0, in - 1));
      taps.weight.push_back(weights[t]);
    }
  }
  return taps;
}

// Whether every position reads one tap with weight 1 and none is extrapolated: then the
// axis is a gather, and `picked` holds the index per position.
bool IsGather(const AxisTaps& taps, int64_t out, std::vector<int64_t>* picked) {
  picked->clear();
  for (int64_t o = 0; o < out; ++o) {
    if (taps.extrapolated[o]) return false;
    int64_t chosen = -1;
    for (int64_t t = 0; t < taps.taps; ++t) {
      const double w = taps.weight[o * taps.taps + t];
      if (w == 1 && chosen < 0) {
        chosen = taps.index[o * taps.taps + t];
      } else if (w != 0) {
        return false;
      }
    }
    if (chosen < 0) return false;
    picked->push_back(chosen);
  }
  return true;
}

Value IndexConstant(NodeContext& ctx, const std::vector<int64_t>& values) {
  Tensor t({static_cast<int64_t>(values.size())}, DType::kInt64);
  std::copy(values.begin(), values.end(), t.data_as<int64_t>());
  return ctx.MakeConstant(std::move(t));
}

// A per-position constant along `axis` of a rank-`rank` value, broadcasting over the rest.
Value AlongAxis(NodeContext& ctx, const std::vector<double>& values, size_t axis, size_t rank, DType dtype) {
  Shape shape(rank, 1);
  shape[axis] = static_cast<int64_t>(values.size());
  return ctx.MakeConstant(Tensor::FromDoubles(shape, values, dtype));
}

// x (a float type) resampled along `axis` to `out` positions.
Value ResizeAxis(NodeContext& ctx, const Value& x, size_t axis, int64_t out, const AxisTaps& taps,
                 const ResizeAttrs& attrs) {
  std::vector<int64_t> picked;
  if (IsGather(taps, out, &picked)) {
    return ctx.Apply("take", {x, IndexConstant(ctx, picked)}, {{"axis", static_cast<int64_t>(axis)}});
  }
  std::optional<Value> sum;
  for (int64_t t = 0; t < taps.taps; ++t) {
    std::vector<int64_t> index(out);
    std::vector<double> weight(out);
    bool any = false;
    for (int64_t o = 0; o < out; ++o) {
      index[o] = taps.index[o * taps.taps + t];
      weight[o] = taps.weight[o * taps.taps + t];
      any = any || weight[o] != 0;
    }
    if (!any) continue;
    const Value gathered = ctx.Apply("take", {x, IndexConstant(ctx, index)}, {{"axis", static_cast<int64_t>(axis)}});
    const Value term = ctx.Apply("broadcast_mul", {gathered, AlongAxis(ctx, weight, axis, x.shape.size(), x.dtype)});
    sum = sum ? ctx.Apply("broadcast_add", {*sum, term}) : term;
  }
  Shape shape = x.shape;
  shape[axis] = out;
  if (!sum) sum = ctx.MakeConstant(Tensor(shape, x.dtype));  // every weight zero
  if (std::none_of(taps.extrapolated.begin(), taps.extrapolated.end(), [](bool e) { return e; })) return *sum;
  std::vector<double> mask(taps.extrapolated.begin(), taps.extrapolated.end());
  std::vector<double> fill(out, attrs.extrapolation_value);
  const Value outside = AlongAxis(ctx, mask, axis, x.shape.size(), x.dtype);
  const Value filled = AlongAxis(ctx, fill, axis, x.shape.size(), x.dtype);
  return ctx.Apply("where", {BroadcastTo(ctx, outside, shape), BroadcastTo(ctx, filled, shape), *sum});
}

const std::set<std::string> kResizeAttrs = {"mode",
                                            "coordinate_transformation_mode",
                                            "nearest_mode",
                                            "cubic_coeff_a",
                                            "exclude_outside",
                                            "extrapolation_value",
                                            "antialias",
                                            "axes",
                                            "keep_aspect_ratio_policy"};

std::vector<double> ConstDoubles(const NodeContext& ctx, size_t i, const std::string& what) {
  const Tensor& t = ctx.Const(i, what);
  std::vector<double> values(t.size());
  for (int64_t k = 0; k < t.size(); ++k) values[k] = t.GetDouble(k);
  return values;
}

// Whether optional input i is given and non-empty.
bool Given(const NodeContext& ctx, size_t i) {
  return ctx.Has(i) && NumElements(ctx.In(i).shape) > 0;
}

// The values an integer dtype holds, as doubles.
std::pair<double, double> IntegerRange(DType dtype) {
  switch (dtype) {
    case DType::kUInt8: return {0, 255};
    case DType::kInt8: return {-128, 127};
    case DType::kInt16: return {std::numeric_limits<int16_t>::min(), std::numeric_limits<int16_t>::max()};
    case DType::kUInt16: return {0, std::numeric_limits<uint16_t>::max()};
    case DType::kInt32: return {std::numeric_limits<int32_t>::min(), std::numeric_limits<int32_t>::max()};
    case DType::kUInt32: return {0, std::numeric_limits<uint32_t>::max()};
    case DType::kUInt64: return {0, 1.8446744073709550e19};  // below 2^64: converts exactly
    case DType::kBool: return {0, 1};
    default: return {-9.2233720368547758e18, 9.2233720368547748e18};
  }
}

std::vector<Value> ConvertResize(NodeContext& ctx) {
  const Value& x = ctx.In(0);
  const size_t rank = x.shape.size();
  const bool upsample = ctx.node().op_type() == "Upsample";
  const bool legacy = upsample || ctx.opset() < 11;  // Resize-10 is Upsample's semantics
  ResizeAttrs attrs;
  attrs.mode = ctx.Str("mode", "nearest");
  if (attrs.mode == "bilinear") attrs.mode = "linear";  // Upsample-7's spelling
  if (attrs.mode != "nearest" && attrs.mode != "linear" && attrs.mode != "cubic") {
    throw Error("attribute 'mode': expected nearest, linear or cubic, given '" + attrs.mode + "'");
  }
  if (legacy && attrs.mode == "cubic") throw Error("attribute 'mode': cubic needs Resize from opset 11");
  attrs.coordinate_mode = legacy ? "asymmetric" : ctx.Str("coordinate_transformation_mode", "half_pixel");
  attrs.nearest_mode = legacy ? "floor" : ctx.Str("nearest_mode", "round_prefer_floor");
  attrs.cubic_a = ctx.Float("cubic_coeff_a", -0.75);
  attrs.exclude_outside = ctx.Int("exclude_outside", 0) != 0;
  attrs.antialias = ctx.Int("antialias", 0) != 0;
  attrs.extrapolation_value = ctx.Float("extrapolation_value", 0.0);
  static const std::set<std::string> kCoordinateModes = {"half_pixel",    "half_pixel_symmetric", "asymmetric",
                                                         "align_corners", "pytorch_half_pixel",   "tf_crop_and_resize"};
  if (kCoordinateModes.count(attrs.coordinate_mode) == 0) {
    throw Error("attribute 'coordinate_transformation_mode': unknown mode '" + attrs.coordinate_mode + "'");
  }
  static const std::set<std::string> kNearestModes = {"round_prefer_floor", "round_prefer_ceil", "floor", "ceil"};
  if (kNearestModes.count(attrs.nearest_mode) == 0) {
    throw Error("attribute 'nearest_mode': unknown mode '" + attrs.nearest_mode + "'");
  }
  if (attrs.antialias && attrs.mode == "nearest") throw Error("antialias is not defined for mode nearest");

  // The resized axes (all, or attribute `axes` from opset 18).
  std::vector<int64_t> axes;
  if (ctx.HasAttr("axes")) {
    for (const int64_t a : ctx.Ints("axes")) axes.push_back(NormalizeAxis(a, rank, "axes"));
  } else {
    for (size_t a = 0; a < rank; ++a) axes.push_back(static_cast<int64_t>(a));
  }
  const auto expect_count = [&](const std::vector<double>& values, const std::string& what, size_t count) {
    if (values.size() != count) {
      throw Error(what + ": expected " + std::to_string(count) + " values (one per resized axis), given " +
                  std::to_string(values.size()));
    }
  };

  // Scale and output size per axis of x.
  std::vector<double> scale(rank, 1.0);
  Shape out = x.shape;
  const size_t scales_input = legacy ? 1 : 2;
  if (upsample && ctx.opset() < 9) {
    const std::vector<double> given = ctx.Floats("scales");
    expect_count(given, "attribute 'scales'", rank);
    scale = given;
    for (size_t a = 0; a < rank; ++a) out[a] = static_cast<int64_t>(static_cast<double>(x.shape[a]) * scale[a]);
  } else if (Given(ctx, scales_input)) {
    const std::vector<double> given = ConstDoubles(ctx, scales_input, "scales");
    expect_count(given, "input 'scales'", axes.size());
    for (size_t i = 0; i < axes.size(); ++i) {
      if (!(given[i] > 0)) throw Error("input 'scales': expected positive values, given " + std::to_string(given[i]));
      scale[axes[i]] = given[i];
      out[axes[i]] = static_cast<int64_t>(static_cast<double>(x.shape[axes[i]]) * given[i]);
    }
  } else if (!legacy && Given(ctx, 3)) {
    const std::vector<int64_t> sizes = ctx.ConstInts(3, "sizes");
    expect_count(std::vector<double>(sizes.begin(), sizes.end()), "input 'sizes'", axes.size());
    for (size_t i = 0; i < axes.size(); ++i) {
      if (sizes[i] < 0) throw Error("input 'sizes': expected sizes >= 0, given " + std::to_string(sizes[i]));
      scale[axes[i]] = static_cast<double>(sizes[i]) / static_cast<double>(x.shape[axes[i]]);
      out[axes[i]] = sizes[i];
    }
    const std::string policy = ctx.Str("keep_aspect_ratio_policy", "stretch");
    if (policy == "not_larger" || policy == "not_smaller") {
      double common = policy == "not_larger" ? std::numeric_limits<double>::infinity() : 0.0;
      for (const int64_t a : axes)
        common = policy == "not_larger" ? std::min(common, scale[a]) : std::max(common, scale[a]);
      for (const int64_t a : axes) {
        scale[a] = common;
        out[a] = static_cast<int64_t>(common * static_cast<double>(x.shape[a]) + 0.5);
      }
    } else if (policy != "stretch") {
      throw Error("attribute 'keep_aspect_ratio_policy': expected stretch, not_larger or not_smaller, given '" +
                  policy + "'");
    }
  } else {
    throw Error("one of the inputs 'scales' and 'sizes' must be given");
  }

  // tf_crop_and_resize's region: (starts..., ends...) per resized axis.
  std::vector<double> roi_start(rank, 0.0), roi_end(rank, 1.0);
  if (attrs.coordinate_mode == "tf_crop_and_resize") {
    if (!Given(ctx, 1)) throw Error("input 'roi' is required by coordinate_transformation_mode tf_crop_and_resize");
    const std::vector<double> roi = ConstDoubles(ctx, 1, "roi");
    expect_count(roi, "input 'roi'", 2 * axes.size());
    for (size_t i = 0; i < axes.size(); ++i) {
      roi_start[axes[i]] = roi[i];
      roi_end[axes[i]] = roi[axes.size() + i];
    }
  }

  // Floats resample in their own type (float16 and bfloat16 in float32); integers in float64, then
  // round half to even and saturate as ONNX's reference does.
  Value y = x;
  const bool integer = !IsFloat(x.dtype);
  const bool half = x.dtype == DType::kFloat16 || x.dtype == DType::kBFloat16;
  const DType compute = half ? DType::kFloat32 : integer ? DType::kFloat64 : x.dtype;
  bool cast = false;
  for (const int64_t a : axes) {
    const bool identity = std::fabs(scale[a] - 1.0) < 1e-9 && out[a] == y.shape[a] && std::fabs(roi_start[a]) < 1e-9 &&
                          std::fabs(roi_end[a] - 1.0) < 1e-9;
    if (identity) continue;
    if (out[a] == 0 || y.shape[a] == 0) {
      Shape shape = y.shape;
      shape[a] = out[a];
      if (out[a] != 0)
        throw Error("cannot resize an empty axis " + std::to_string(a) + " to " + std::to_string(out[a]));
      y = ctx.MakeConstant(Tensor(shape, y.dtype));
      continue;
    }
    const AxisTaps taps = ComputeTaps(attrs, y.shape[a], out[a], scale[a], roi_start[a], roi_end[a]);
    std::vector<int64_t> picked;
    if (!IsGather(taps, out[a], &picked) && !cast && compute != y.dtype) {
      y = ctx.Apply("Cast", {y}, {{"dtype", compute}});
      cast = true;
    }
    y = ResizeAxis(ctx, y, static_cast<size_t>(a), out[a], taps, attrs);
  }
  if (!cast) return {y};
  if (integer) {
    const auto [low, high] = IntegerRange(x.dtype);
    y = ctx.Apply("clip", {RoundHalfToEven(ctx, y)}, {{"a_min", low}, {"a_max", high}});
  }
  return {ctx.Apply("Cast", {y}, {{"dtype", x.dtype}})};
}

std::set<std::string> UpsampleAttrs() {
  return {"mode", "scales"};
}

const RegisterConverter kResize({"Resize"}, kResizeAttrs, ConvertResize);
const RegisterConverter kUpsample({"Upsample"}, UpsampleAttrs(), ConvertResize);

}  // namespace
}  // namespace kiln::onnx_import
