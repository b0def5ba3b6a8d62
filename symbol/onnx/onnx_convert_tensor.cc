// ONNX converters that move or make tensors: shapes, layouts, slicing, padding,
// constants and casts.
#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "symbol/onnx/onnx_converter.h"
#include "symbol/onnx/onnx_tensor.h"

namespace kiln::onnx_import {
namespace {

const RegisterConverter kIdentity({"Identity"}, {}, [](NodeContext& ctx) { return std::vector<Value>{ctx.In(0)}; });

const RegisterConverter kFlatten({"Flatten"}, {"axis"}, [](NodeContext& ctx) {
  const Value& x = ctx.In(0);
  const int64_t rank = static_cast<int64_t>(x.shape.size());
  int64_t axis = ctx.Int("axis", 1);
  if (axis < -rank || axis > rank)
    throw Error("axis " + std::to_string(axis) + " out of range for rank " + std::to_string(rank));
  if (axis < 0) axis += rank;
  return std::vector<Value>{ctx.ReshapeTo(x, {Product(x.shape, 0, axis), Product(x.shape, axis, rank)})};
});

const RegisterConverter kReshape({"Reshape"}, {"allowzero", "shape"}, [](NodeContext& ctx) {
  const Value& x = ctx.In(0);
  const std::vector<int64_t> spec = ctx.opset() >= 5 ? ctx.ConstInts(1, "shape") : ctx.Ints("shape");
  const bool allow_zero = ctx.Int("allowzero", 0) != 0;
  Shape out(spec.size());
  int64_t infer = -1, known = 1;
  for (size_t i = 0; i < spec.size(); ++i) {
    if (spec[i] == -1) {
      if (infer >= 0) throw Error("shape " + ShapeToString(spec) + " has more than one -1");
      infer = static_cast<int64_t>(i);
      continue;
    }
    if (spec[i] == 0 && !allow_zero) {
      if (i >= x.shape.size()) throw Error("shape " + ShapeToString(spec) + " copies a dim (0) the input lacks");
      out[i] = x.shape[i];
    } else if (spec[i] < 0) {
      throw Error("shape " + ShapeToString(spec) + " has a negative dim");
    } else {
      out[i] = spec[i];
    }
    known *= out[i];
  }
  const int64_t total = Product(x.shape, 0, x.shape.size());
  if (infer >= 0) {
    if (known == 0) {
      throw Error("shape input " + ShapeToString(spec) + ": cannot infer the -1 dim of an empty result from input " +
                  ShapeToString(x.shape) + " (the other dims hold 0 elements, so any size would fit)");
    }
    if (total % known != 0) {
      throw Error("shape input " + ShapeToString(spec) + ": cannot reshape input " + ShapeToString(x.shape) + " (" +
                  std::to_string(total) + " elements) to it");
    }
    out[infer] = total / known;
  }
  return std::vector<Value>{ctx.ReshapeTo(x, out)};
});

const RegisterConverter kTranspose({"Transpose"}, {"perm"}, [](NodeContext& ctx) {
  const Value& x = ctx.In(0);
  std::vector<int64_t> perm(x.shape.size());
  std::iota(perm.rbegin(), perm.rend(), 0);
  perm = ctx.Ints("perm", perm);
  return std::vector<Value>{ctx.Apply("transpose", {x}, {{"axes", perm}})};
});

const RegisterConverter kConcat({"Concat"}, {"axis"}, [](NodeContext& ctx) {
  std::vector<Value> inputs;
  for (size_t i = 0; i < ctx.num_inputs(); ++i) inputs.push_back(ctx.In(i));
  if (inputs.empty()) throw Error("no inputs");
  const int64_t axis = NormalizeAxis(ctx.Int("axis", 1), inputs.at(0).shape.size());
  return std::vector<Value>{
      ctx.Apply("Concat", inputs, {{"dim", axis}, {"num_args", static_cast<int64_t>(inputs.size())}})};
});

const RegisterConverter kGather({"Gather"}, {"axis"}, [](NodeContext& ctx) {
  const Value& data = ctx.In(0);
  const int64_t axis = NormalizeAxis(ctx.Int("axis", 0), data.shape.size());
  // ONNX allows negative indices in [-n, n): the wrap mode maps them.
  return std::vector<Value>{ctx.Apply("take", {data, ctx.In(1)}, {{"axis", axis}, {"mode", "wrap"}})};
});

Shape SqueezeShape(const Shape& in, std::vector<int64_t> axes) {
  for (auto& a : axes) a = NormalizeAxis(a, in.size());
  Shape out;
  for (size_t i = 0; i < in.size(); ++i) {
    const bool listed = std::find(axes.begin(), axes.end(), static_cast<int64_t>(i)) != axes.end();
    if (listed && in[i] != 1)
      throw Error("cannot squeeze axis " + std::to_string(i) + " of size " + std::to_string(in[i]));
    if (!(listed || (axes.empty() && in[i] == 1))) out.push_back(in[i]);
  }
  return out;
}

const RegisterConverter kSqueeze({"Squeeze"}, {"axes"}, [](NodeContext& ctx) {
  const Value& x = ctx.In(0);
  return std::vector<Value>{ctx.ReshapeTo(x, SqueezeShape(x.shape, Axes(ctx, 1, 13)))};
});

const RegisterConverter kUnsqueeze({"Unsqueeze"}, {"axes"}, [](NodeContext& ctx) {
  const Value& x = ctx.In(0);
  std::vector<int64_t> axes = Axes(ctx, 1, 13);
  const size_t rank = x.shape.size() + axes.size();
  for (auto& a : axes) a = NormalizeAxis(a, rank);
  std::sort(axes.begin(), axes.end());
  if (std::adjacent_find(axes.begin(), axes.end()) != axes.end()) throw Error("repeated axes");
  Shape out;
  size_t next = 0;
  for (size_t i = 0; i < rank; ++i) {
    out.push_back(std::binary_search(axes.begin(), axes.end(), static_cast<int64_t>(i)) ? 1 : x.shape.at(next++));
  }
  return std::vector<Value>{ctx.ReshapeTo(x, out)};
});

const RegisterConverter kConstant(
    {"Constant"}, {"value", "value_float", "value_floats", "value_int", "value_ints"}, [](NodeContext& ctx) {
      if (ctx.HasAttr("value")) {
        return std::vector<Value>{ctx.MakeConstant(TensorFromOnnx(ctx.TensorAttr("value"), "value"))};
      }
      if (ctx.HasAttr("value_float")) {
        return std::vector<Value>{ctx.MakeConstant(ScalarTensor(ctx.Float("value_float"), DType::kFloat32))};
      }
      if (ctx.HasAttr("value_int")) {
        return std::vector<Value>{ctx.MakeConstant(Int64Scalar(ctx.Int("value_int")))};
      }
      if (ctx.HasAttr("value_floats")) {
        const auto values = ctx.Floats("value_floats");
        return std::vector<Value>{ctx.MakeConstant(Tensor::FromDoubles({static_cast<int64_t>(values.size())}, values))};
      }
      return std::vector<Value>{ctx.MakeConstant(Int64Vector(ctx.Ints("value_ints")))};
    });

const RegisterConverter kConstantOfShape({"ConstantOfShape"}, {"value"}, [](NodeContext& ctx) {
  const Shape shape = ctx.ConstInts(0, "shape");
  if (std::any_of(shape.begin(), shape.end(), [](int64_t d) { return d < 0; })) {
    throw Error("shape " + ShapeToString(shape) + " has a negative dim");
  }
  Tensor fill =
      ctx.HasAttr("value") ? TensorFromOnnx(ctx.TensorAttr("value"), "value") : ScalarTensor(0.0, DType::kFloat32);
  if (fill.size() != 1) throw Error("value must have one element, given " + std::to_string(fill.size()));
  Tensor t(shape, fill.dtype());
  // Integers exactly: through a double, int64 beyond 2^53 would round.
  for (int64_t i = 0; i < t.size(); ++i) {
    if (IsFloat(fill.dtype())) {
      t.SetDouble(i, fill.GetDouble(0));
    } else {
      op_util::StoreInt(t, i, op_util::LoadInt(fill, 0));
    }
  }
  return std::vector<Value>{ctx.MakeConstant(std::move(t))};
});

const RegisterConverter kShape({"Shape"}, {"start", "end"}, [](NodeContext& ctx) {
  const Shape& shape = ctx.In(0).shape;
  const int64_t rank = static_cast<int64_t>(shape.size());
  const auto clamp = [&](int64_t v) { return std::clamp(v < 0 ? v + rank : v, int64_t{0}, rank); };
  const int64_t start = clamp(ctx.Int("start", 0)), end = clamp(ctx.Int("end", rank));
  return std::vector<Value>{
      ctx.MakeConstant(Int64Vector(start < end ? Shape(shape.begin() + start, shape.begin() + end) : Shape{}))};
});

// saturate and round_mode concern float8 targets only, which kiln refuses.
const RegisterConverter kCast({"Cast"}, {"to", "saturate", "round_mode"}, [](NodeContext& ctx) {
  const auto dtype = DTypeFromOnnx(static_cast<int32_t>(ctx.Int("to")));
  if (!dtype) throw Error("cast to " + OnnxTypeName(static_cast<int32_t>(ctx.Int("to"))) + " is not supported");
  return std::vector<Value>{Unary(ctx, "Cast", {{"dtype", *dtype}})};
});

const RegisterConverter kExpand({"Expand"}, {}, [](NodeContext& ctx) {
  const Value& x = ctx.In(0);
  return std::vector<Value>{BroadcastTo(ctx, x, op_util::BroadcastShapes(x.shape, ctx.ConstInts(1, "shape")))};
});

std::string TupleText(const std::vector<std::optional<int64_t>>& values) {
  std::string text = "(";
  for (size_t i = 0; i < values.size(); ++i) {
    text += (i ? ", " : "") + (values[i] ? std::to_string(*values[i]) : std::string("None"));
  }
  return text + (values.size() == 1 ? ",)" : ")");
}

const RegisterConverter kSlice({"Slice"}, {"starts", "ends", "axes"}, [](NodeContext& ctx) {
  const Value& x = ctx.In(0);
  const size_t rank = x.shape.size();
  std::vector<int64_t> starts, ends, axes, steps;
  if (ctx.opset() >= 10) {
    starts = ctx.ConstInts(1, "starts");
    ends = ctx.ConstInts(2, "ends");
    if (ctx.Has(3)) axes = ctx.ConstInts(3, "axes");
    if (ctx.Has(4)) steps = ctx.ConstInts(4, "steps");
  } else {
    starts = ctx.Ints("starts");
    ends = ctx.Ints("ends");
    axes = ctx.Ints("axes", std::vector<int64_t>{});
  }
  if (axes.empty()) {
    axes.resize(starts.size());
    std::iota(axes.begin(), axes.end(), 0);
  }
  if (steps.empty()) steps.assign(starts.size(), 1);
  if (ends.size() != starts.size() || axes.size() != starts.size() || steps.size() != starts.size()) {
    throw Error("starts, ends, axes and steps differ in length");
  }
  std::vector<std::optional<int64_t>> begin(rank), end(rank), step(rank);
  for (size_t i = 0; i < starts.size(); ++i) {
    const int64_t axis = NormalizeAxis(axes[i], rank);
    const int64_t dim = x.shape[axis];
    if (steps[i] == 0) throw Error("step 0 on axis " + std::to_string(axis));
    // ONNX clamps starts into [0, dim] ([0, dim - 1] for a negative step: unlike
    // numpy, a start before the beginning still takes element 0) and ends into [0, dim]
    // ([-1, dim - 1]). MXNet's slice takes them in range, with None for the end "past
    // the beginning" in a negative step.
    const auto resolve = [&](int64_t v, bool is_end) -> std::optional<int64_t> {
      if (v < 0) v += dim;
      if (steps[i] > 0) return std::clamp<int64_t>(v, 0, dim);
      if (v < 0) return is_end ? std::nullopt : std::optional<int64_t>(0);
      return std::min<int64_t>(v, dim - 1);
    };
    begin[axis] = resolve(starts[i], false);
    end[axis] = resolve(ends[i], true);
    step[axis] = steps[i];
  }
  return std::vector<Value>{
      ctx.Apply("slice", {x}, {{"begin", TupleText(begin)}, {"end", TupleText(end)}, {"step", TupleText(step)}})};
});

// Index vector of one padded axis: output position i reads input index(i - begin) under
// the mode (edge: clamped; reflect: mirrored without repeating the edge; wrap: modulo),
// and for constant padding `inside` marks the positions that read the input.
std::vector<int64_t> PaddedIndices(const std::string& mode, int64_t n, int64_t begin, int64_t end,
                                   std::vector<double>* inside) {
  std::vector<int64_t> index;
  for (int64_t i = 0; i < n + begin + end; ++i) {
    int64_t j = i - begin;
    inside->push_back(j >= 0 && j < n ? 1.0 : 0.0);
    if (mode == "reflect" && n > 1) {
      const int64_t period = 2 * (n - 1);
      j = ((j % period) + period) % period;
      if (j >= n) j = period - j;
    } else if (mode == "wrap") {
      j = ((j % n) + n) % n;
    }
    index.push_back(std::clamp<int64_t>(j, 0, n - 1));
  }
  return index;
}

// Pads of N-d tensors as (begin..., end...), for the axes given (Pad-18) or all. kiln's
// Pad (MXNet's) pads H and W of 4-d and D, H, W of 5-d float tensors in one kernel; any
// other case (other ranks and axes, integer types, wrap, negative pads that crop) pads
// axis by axis with a gather of the padded positions (and a select of the constant).
const RegisterConverter kPad({"Pad"}, {"mode", "pads", "value"}, [](NodeContext& ctx) {
  const Value& x = ctx.In(0);
  const std::string mode = ctx.Str("mode", std::string("constant"));
  if (mode != "constant" && mode != "edge" && mode != "reflect" && mode != "wrap") {
    throw Error("attribute 'mode': expected one of {constant, edge, reflect, wrap}, given '" + mode + "'");
  }
  const size_t rank = x.shape.size();
  std::vector<int64_t> given;
  double value = 0;
  if (ctx.opset() >= 11) {
    given = ctx.ConstInts(1, "pads");
    if (ctx.Has(2) && NumElements(ctx.In(2).shape) > 0) value = ctx.Const(2, "constant_value").GetDouble(0);
  } else {
    given = ctx.Ints("pads");
    value = ctx.Float("value", 0.0);
  }
  std::vector<int64_t> axes;
  if (ctx.Has(3)) {
    for (const int64_t a : ctx.ConstInts(3, "axes")) axes.push_back(NormalizeAxis(a, rank, "axes"));
  } else {
    for (size_t a = 0; a < rank; ++a) axes.push_back(static_cast<int64_t>(a));
  }
  if (given.size() != 2 * axes.size()) {
    throw Error("pads has " + std::to_string(given.size()) + " values, expected " + std::to_string(2 * axes.size()));
  }
  std::vector<int64_t> pads(2 * rank, 0);
  for (size_t i = 0; i < axes.size(); ++i) {
    pads[axes[i]] = given[i];
    pads[rank + axes[i]] = given[axes.size() + i];
  }
  if (std::all_of(pads.begin(), pads.end(), [](int64_t p) { return p == 0; })) return std::vector<Value>{x};
  const bool spatial_only = (rank == 4 || rank == 5) && pads[0] == 0 && pads[1] == 0 && pads[rank] == 0 &&
                            pads[rank + 1] == 0 &&
                            std::all_of(pads.begin(), pads.end(), [](int64_t p) { return p >= 0; });
  if (spatial_only && IsFloat(x.dtype) && mode != "wrap") {
    std::vector<int64_t> width;
    for (size_t i = 0; i < rank; ++i) width.insert(width.end(), {pads[i], pads[i + rank]});
    return std::vector<Value>{ctx.Apply("Pad", {x}, {{"mode", mode}, {"pad_width", width}, {"constant_value", value}})};
  }
  Value y = x;
  for (size_t a = 0; a < rank; ++a) {
    const int64_t begin = pads[a], end = pads[a + rank], n = y.shape[a];
    if (begin == 0 && end == 0) continue;
    if (n + begin + end < 0) {
      throw Error("pads " + ShapeToString(pads) + " crop more than the " + std::to_string(n) + " elements of axis " +
                  std::to_string(a));
    }
    Shape shape = y.shape;
    shape[a] = n + begin + end;
    if (shape[a] == 0 || NumElements(shape) == 0) {
      y = ctx.MakeConstant(Tensor(shape, y.dtype));
      continue;
    }
    if (n == 0) {
      // Nothing to read: the constant everywhere (edge, reflect and wrap need an element).
      if (mode != "constant") throw Error("mode '" + mode + "' pads an empty axis " + std::to_string(a));
      Tensor filled(shape, y.dtype);
      for (int64_t i = 0; i < filled.size(); ++i) filled.SetDouble(i, value);
      y = ctx.MakeConstant(std::move(filled));
      continue;
    }
    std::vector<double> inside;
    const std::vector<int64_t> index = PaddedIndices(mode, n, begin, end, &inside);
    Tensor indices({static_cast<int64_t>(index.size())}, DType::kInt64);
    std::copy(index.begin(), index.end(), indices.data_as<int64_t>());
    y = ctx.Apply("take", {y, ctx.MakeConstant(std::move(indices))}, {{"axis", static_cast<int64_t>(a)}});
    if (mode == "constant" && std::any_of(inside.begin(), inside.end(), [](double v) { return v == 0; })) {
      Shape along(rank, 1);
      along[a] = shape[a];
      Tensor fill(along, y.dtype);
      for (int64_t i = 0; i < fill.size(); ++i) fill.SetDouble(i, value);
      const Value mask = BroadcastTo(ctx, ctx.MakeConstant(Tensor::FromDoubles(along, inside, y.dtype)), shape);
      y = ctx.Apply("where", {mask, y, BroadcastTo(ctx, ctx.MakeConstant(std::move(fill)), shape)});
    }
  }
  return std::vector<Value>{y};
});

const RegisterConverter kSize({"Size"}, {}, [](NodeContext& ctx) {
  return std::vector<Value>{ctx.MakeConstant(Int64Scalar(Product(ctx.In(0).shape, 0, ctx.In(0).shape.size())))};
});

const RegisterConverter kTile({"Tile"}, {}, [](NodeContext& ctx) {
  const auto reps = ctx.ConstInts(1, "repeats");
  if (reps.size() != ctx.In(0).shape.size()) throw Error("repeats must have one value per axis");
  return std::vector<Value>{ctx.Apply("tile", {ctx.In(0)}, {{"reps", reps}})};
});

// Range of constants, folded (start + k * delta for k < ceil((limit - start) / delta)).
// Computed at import in double and rounded once: Range-27's stash_type 1 (float
// accumulation for float16) gives the same values.
const RegisterConverter kRange({"Range"}, {"stash_type"}, [](NodeContext& ctx) {
  if (ctx.Int("stash_type", 1) != 1) {
    throw Error("attribute 'stash_type': only 1 (float accumulation) is supported, given " +
                std::to_string(ctx.Int("stash_type")));
  }
  const Tensor& start = ctx.Const(0, "start");
  const double first = start.GetDouble(0), limit = ctx.Const(1, "limit").GetDouble(0);
  const double delta = ctx.Const(2, "delta").GetDouble(0);
  if (delta == 0) throw Error("delta 0");
  const int64_t count = std::max<int64_t>(0, static_cast<int64_t>(std::ceil((limit - first) / delta)));
  Tensor t({count}, start.dtype());
  for (int64_t k = 0; k < count; ++k) t.SetDouble(k, first + k * delta);
  return std::vector<Value>{ctx.MakeConstant(std::move(t))};
});

// Split into the given sizes (attribute before opset 13, input since), or equal parts.
const RegisterConverter kSplit({"Split"}, {"axis", "split", "num_outputs"}, [](NodeContext& ctx) {
  const Value& x = ctx.In(0);
  const int64_t axis = NormalizeAxis(ctx.Int("axis", 0), x.shape.size());
  std::vector<int64_t> sizes = ctx.opset() >= 13 ? (ctx.Has(1) ? ctx.ConstInts(1, "split") : std::vector<int64_t>{})
                                                 : ctx.Ints("split", std::vector<int64_t>{});
  const int64_t parts = ctx.node().output_size();
  const int64_t length = x.shape[axis];
  if (sizes.empty() && ctx.HasAttr("num_outputs")) {
    // Split-18: equal parts of ceil(length / num_outputs), the last one smaller.
    const int64_t count = ctx.Int("num_outputs");
    if (count != parts) {
      throw Error("attribute 'num_outputs': expected the node's " + std::to_string(parts) + " outputs, given " +
                  std::to_string(count));
    }
    const int64_t chunk = (length + count - 1) / count;
    for (int64_t begin = 0; begin < length; begin += chunk) sizes.push_back(std::min(chunk, length - begin));
    sizes.resize(count, 0);
  } else if (sizes.empty()) {
    if (parts == 0 || length % parts != 0) {
      throw Error("axis " + std::to_string(axis) + " of size " + std::to_string(length) + " does not split into " +
                  std::to_string(parts) + " equal parts");
    }
    sizes.assign(parts, length / parts);
  }
  if (static_cast<int64_t>(sizes.size()) != parts) throw Error("split sizes do not match the outputs");
  std::vector<Value> outputs;
  int64_t begin = 0;
  for (const int64_t size : sizes) {
    if (size < 0) throw Error("split sizes " + ShapeToString(sizes) + " must not be negative");
    if (size == 0) {
      Shape empty = x.shape;
      empty[axis] = 0;
      outputs.push_back(ctx.MakeConstant(Tensor(empty, x.dtype)));
      continue;
    }
    outputs.push_back(ctx.Apply("slice_axis", {x}, {{"axis", axis}, {"begin", begin}, {"end", begin + size}}));
    begin += size;
  }
  if (begin != length) {
    throw Error("split sizes add up to " + std::to_string(begin) + ", not " + std::to_string(length));
  }
  return outputs;
});

// DepthToSpace and SpaceToDepth are a reshape, a transpose and a reshape.
const RegisterConverter kDepthToSpace({"DepthToSpace"}, {"blocksize", "mode"}, [](NodeContext& ctx) {
  const Value& x = ctx.In(0);
  if (x.shape.size() != 4) throw Error("input must be 4-d (N, C, H, W)");
  const int64_t b = ctx.Int("blocksize"), n = x.shape[0], c = x.shape[1], h = x.shape[2], w = x.shape[3];
  if (b <= 0 || c % (b * b) != 0) throw Error("channels " + std::to_string(c) + " not divisible by blocksize^2");
  const bool crd = ctx.Str("mode", std::string("DCR")) == "CRD";
  const Value split = ctx.ReshapeTo(x, crd ? Shape{n, c / (b * b), b, b, h, w} : Shape{n, b, b, c / (b * b), h, w});
  const std::vector<int64_t> perm =
      crd ? std::vector<int64_t>{0, 1, 4, 2, 5, 3} : std::vector<int64_t>{0, 3, 4, 1, 5, 2};
  return std::vector<Value>{
      ctx.ReshapeTo(ctx.Apply("transpose", {split}, {{"axes", perm}}), {n, c / (b * b), h * b, w * b})};
});

const RegisterConverter kSpaceToDepth({"SpaceToDepth"}, {"blocksize"}, [](NodeContext& ctx) {
  const Value& x = ctx.In(0);
  if (x.shape.size() != 4) throw Error("input must be 4-d (N, C, H, W)");
  const int64_t b = ctx.Int("blocksize"), n = x.shape[0], c = x.shape[1], h = x.shape[2], w = x.shape[3];
  if (b <= 0 || h % b != 0 || w % b != 0) throw Error("H and W must be divisible by blocksize");
  const Value split = ctx.ReshapeTo(x, {n, c, h / b, b, w / b, b});
  return std::vector<Value>{
      ctx.ReshapeTo(ctx.Apply("transpose", {split}, {{"axes", std::vector<int64_t>{0, 3, 5, 1, 2, 4}}}),
                    {n, c * b * b, h / b, w / b})};
});

// EyeLike: ones on the k-th diagonal of a 2-d shape like the input's, in `dtype` (the
// input's by default).
const RegisterConverter kEyeLike({"EyeLike"}, {"dtype", "k"}, [](NodeContext& ctx) {
  const Value& x = ctx.In(0);
  if (x.shape.size() != 2) throw Error("input " + ShapeToString(x.shape) + ": expected a 2-d tensor");
  DType dtype = x.dtype;
  if (ctx.HasAttr("dtype")) {
    const auto given = DTypeFromOnnx(static_cast<int32_t>(ctx.Int("dtype")));
    if (!given)
      throw Error("attribute 'dtype': " + OnnxTypeName(static_cast<int32_t>(ctx.Int("dtype"))) + " is not supported");
    dtype = *given;
  }
  const int64_t k = ctx.Int("k", 0);
  Tensor eye(x.shape, dtype);
  for (int64_t i = 0; i < x.shape[0]; ++i) {
    const int64_t j = i + k;
    if (j >= 0 && j < x.shape[1]) eye.SetDouble(i * x.shape[1] + j, 1);
  }
  return std::vector<Value>{ctx.MakeConstant(std::move(eye))};
});

// Trilu (opset 14): the upper (j - i >= k) or lower (j - i <= k) triangle of the last
// two axes, zeros elsewhere: a select against a constant mask.
const RegisterConverter kTrilu({"Trilu"}, {"upper"}, [](NodeContext& ctx) {
  const Value& x = ctx.In(0);
  if (x.shape.size() < 2) throw Error("input " + ShapeToString(x.shape) + ": expected at least 2 axes");
  const bool upper = ctx.Int("upper", 1) != 0;
  const int64_t k = ctx.Has(1) ? ctx.ConstInts(1, "k").at(0) : 0;
  const int64_t rows = x.shape[x.shape.size() - 2], cols = x.shape.back();
  if (NumElements(x.shape) == 0) return std::vector<Value>{x};
  Tensor mask({rows, cols}, x.dtype);
  for (int64_t i = 0; i < rows; ++i) {
    for (int64_t j = 0; j < cols; ++j) mask.SetDouble(i * cols + j, upper ? j - i >= k : j - i <= k);
  }
  const Value keep = BroadcastTo(ctx, ctx.MakeConstant(std::move(mask)), x.shape);
  return std::vector<Value>{ctx.Apply("where", {keep, x, ctx.Apply("zeros_like", {x})})};
});

// OneHot (opsets 9, 11): values[1] at each index along a new axis of size depth,
// values[0] elsewhere; negative indices count from the end (11). Indices out of range
// give a row of values[0].
const RegisterConverter kOneHot({"OneHot"}, {"axis"}, [](NodeContext& ctx) {
  const Value& indices = ctx.In(0);
  const Tensor& depth_tensor = ctx.Const(1, "depth");
  if (depth_tensor.size() != 1)
    throw Error("input 'depth': expected one value, given " + ShapeToString(depth_tensor.shape()));
  const auto depth = static_cast<int64_t>(depth_tensor.GetDouble(0));
  const Tensor& values = ctx.Const(2, "values");
  if (values.size() != 2)
    throw Error("input 'values': expected (off_value, on_value), given " + ShapeToString(values.shape()));
  const DType dtype = values.dtype();
  // Negative indices: index + depth.
  Value index = indices;
  if (!IsFloat(index.dtype)) index = ctx.Apply("Cast", {index}, {{"dtype", DType::kFloat64}});
  Tensor zero({1}, index.dtype), span({1}, index.dtype);
  span.SetDouble(0, static_cast<double>(depth));
  const Value negative = ctx.Apply("broadcast_lesser", {index, ctx.MakeConstant(std::move(zero))});
  index =
      ctx.Apply("broadcast_add", {index, ctx.Apply("broadcast_mul", {negative, ctx.MakeConstant(std::move(span))})});
  const Value hot = ctx.Apply("one_hot", {index},
                              {{"depth", depth},
                               {"on_value", values.GetDouble(1)},
                               {"off_value", values.GetDouble(0)},
                               {"dtype", dtype == DType::kBool ? DType::kUInt8 : dtype}});
  Value y = hot;
  const auto rank = static_cast<int64_t>(hot.shape.size());
  const int64_t axis = NormalizeAxis(ctx.Int("axis", -1), hot.shape.size());
  if (axis != rank - 1) {
    std::vector<int64_t> perm;
    for (int64_t a = 0; a < rank - 1; ++a) {
      if (a == axis) perm.push_back(rank - 1);
      perm.push_back(a);
    }
    y = ctx.Apply("transpose", {hot}, {{"axes", perm}});
  }
  if (dtype == DType::kBool) y = ctx.Apply("Cast", {y}, {{"dtype", DType::kBool}});
  return std::vector<Value>{y};
});

}  // namespace
}  // namespace kiln::onnx_import
