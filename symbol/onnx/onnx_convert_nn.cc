// ONNX converters for neural-network layers: convolution, pooling, dense layers,
// normalization, dropout, softmax and activations.
#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <numeric>

#include "symbol/onnx/onnx_converter.h"
#include "symbol/onnx/onnx_tensor.h"

namespace kiln::onnx_import {
namespace {

// A 1-d window (N, C, L) runs as a 2-d one on (N, C, 1, L): the window gains a leading
// axis of size 1.
Window LiftTo2D(const Window& w) {
  Window lifted;
  lifted.kernel = {1, w.kernel[0]};
  lifted.strides = {1, w.strides[0]};
  lifted.dilations = {1, w.dilations[0]};
  lifted.pad_begin = {0, w.pad_begin[0]};
  lifted.pad_end = {0, w.pad_end[0]};
  return lifted;
}

Shape With1DAxis(const Shape& shape) {
  return {shape[0], shape[1], 1, shape[2]};
}

// The input of a windowed operator as 4-d, with its window: 1-d inputs lifted.
struct Windowed {
  Value x;
  Window w;
  bool lifted = false;
};

Windowed WindowedInput(NodeContext& ctx, const std::vector<int64_t>& kernel, bool allow_3d = false) {
  const Value& x = ctx.In(0);
  Windowed in{x, ResolveWindow(ctx, x.shape, kernel)};
  if (allow_3d && x.shape.size() == 5) return in;
  if (x.shape.size() == 3) {
    in.x = ctx.ReshapeTo(x, With1DAxis(x.shape));
    in.w = LiftTo2D(in.w);
    in.lifted = true;
  }
  Require2D(in.x, ctx.node().op_type());
  return in;
}

// The 4-d result of a lifted 1-d window back to (N, C, L).
Value Unlift(NodeContext& ctx, const Windowed& in, const Value& y) {
  return in.lifted ? ctx.ReshapeTo(y, {y.shape[0], y.shape[1], y.shape[3]}) : y;
}

const RegisterConverter kConv({"Conv"}, {"auto_pad", "dilations", "group", "kernel_shape", "pads", "strides"},
                              [](NodeContext& ctx) {
                                const Value& x = ctx.In(0);
                                Value weight = ctx.In(1);
                                if (weight.shape.size() != x.shape.size() || x.shape.size() < 3) {
                                  throw Error("weight " + ShapeToString(weight.shape) + " must be " +
                                              std::to_string(x.shape.size()) + "-d like input " +
                                              ShapeToString(x.shape));
                                }
                                const std::vector<int64_t> kernel(weight.shape.begin() + 2, weight.shape.end());
                                Windowed in = WindowedInput(ctx, ctx.Ints("kernel_shape", kernel));
                                if (in.lifted) weight = ctx.ReshapeTo(weight, With1DAxis(weight.shape));
                                const Value input = PadForWindow(ctx, in.x, in.w, 0.0);
                                std::vector<Value> inputs = {input, weight};
                                if (ctx.Has(2)) inputs.push_back(ctx.In(2));
                                const Window& w = in.w;
                                return std::vector<Value>{Unlift(ctx, in,
                                                                 ctx.Apply("Convolution", inputs,
                                                                           {{"kernel", w.kernel},
                                                                            {"stride", w.strides},
                                                                            {"dilate", w.dilations},
                                                                            {"pad", w.pad_begin},
                                                                            {"num_filter", weight.shape[0]},
                                                                            {"num_group", ctx.Int("group", 1)},
                                                                            {"no_bias", !ctx.Has(2)}}))};
                              });

// A gather along `axis` of positions that read x[index] where `reads` is set and 0
// elsewhere: zero insertion, padding and cropping in one step.
Value GatherOrZero(NodeContext& ctx, const Value& x, size_t axis, const std::vector<int64_t>& index,
                   const std::vector<double>& reads) {
  Tensor indices({static_cast<int64_t>(index.size())}, DType::kInt64);
  std::copy(index.begin(), index.end(), indices.data_as<int64_t>());
  const Value taken =
      ctx.Apply("take", {x, ctx.MakeConstant(std::move(indices))}, {{"axis", static_cast<int64_t>(axis)}});
  if (std::all_of(reads.begin(), reads.end(), [](double r) { return r != 0; })) return taken;
  Shape along(x.shape.size(), 1);
  along[axis] = static_cast<int64_t>(reads.size());
  const Value mask = BroadcastTo(ctx, ctx.MakeConstant(Tensor::FromDoubles(along, reads, x.dtype)), taken.shape);
  return ctx.Apply("where", {mask, taken, ctx.Apply("zeros_like", {taken})});
}

// ConvTranspose as the convolution it is the gradient of: the input with stride - 1
// zeros between elements and (dilated kernel - 1 - pad) zeros around it (negative:
// cropped), convolved at stride 1 with the kernel flipped and its in/out channels
// swapped per group. The weight's rearrangement folds at import when it is a constant.
const RegisterConverter kConvTranspose(
    {"ConvTranspose"},
    {"auto_pad", "dilations", "group", "kernel_shape", "output_padding", "output_shape", "pads", "strides"},
    [](NodeContext& ctx) {
      const Value& x0 = ctx.In(0);
      Value weight = ctx.In(1);
      const size_t rank = x0.shape.size();
      if (rank != 3 && rank != 4) {
        throw Error("ConvTranspose on input of shape " + ShapeToString(x0.shape) +
                    ": kiln supports 1-D and 2-D windows (N, C, L) and (N, C, H, W) only");
      }
      if (weight.shape.size() != rank) {
        throw Error("weight " + ShapeToString(weight.shape) + " must be " + std::to_string(rank) + "-d like input " +
                    ShapeToString(x0.shape));
      }
      const size_t spatial = rank - 2;
      const int64_t group = ctx.Int("group", 1);
      const int64_t in_channels = x0.shape[1];
      if (group < 1 || in_channels % group != 0 || weight.shape[0] != in_channels) {
        throw Error("weight " + ShapeToString(weight.shape) + ": expected " + std::to_string(in_channels) +
                    " input channels in groups of " + std::to_string(group) + " for input " + ShapeToString(x0.shape));
      }
      const int64_t out_per_group = weight.shape[1];
      const std::vector<int64_t> kernel =
          ctx.Ints("kernel_shape", std::vector<int64_t>(weight.shape.begin() + 2, weight.shape.end()));
      const auto ints = [&](const std::string& name, int64_t fill, size_t count) {
        const std::vector<int64_t> v = ctx.Ints(name, std::vector<int64_t>(count, fill));
        if (v.size() != count) {
          throw Error("attribute '" + name + "': expected " + std::to_string(count) + " values, given " +
                      std::to_string(v.size()));
        }
        return v;
      };
      const std::vector<int64_t> strides = ints("strides", 1, spatial), dilations = ints("dilations", 1, spatial);
      const std::vector<int64_t> output_padding = ints("output_padding", 0, spatial);
      std::vector<int64_t> pads = ints("pads", 0, 2 * spatial);
      const std::string auto_pad = ctx.Str("auto_pad", "NOTSET");
      std::vector<int64_t> out_size(spatial);
      for (size_t i = 0; i < spatial; ++i) {
        if (strides[i] < 1 || dilations[i] < 1 || kernel[i] < 1) {
          throw Error("kernel_shape, strides and dilations must be positive");
        }
        const int64_t in = x0.shape[2 + i], span = (kernel[i] - 1) * dilations[i] + 1;
        const int64_t full = strides[i] * (in - 1) + output_padding[i] + span;
        // output_shape (or SAME padding, which asks for in * stride) sets the padding.
        std::optional<int64_t> wanted;
        if (ctx.HasAttr("output_shape")) {
          const std::vector<int64_t> shape = ctx.Ints("output_shape");
          if (shape.size() != spatial && shape.size() != rank) {
            throw Error("attribute 'output_shape': expected " + std::to_string(spatial) + " values, given " +
                        std::to_string(shape.size()));
          }
          wanted = shape[shape.size() - spatial + i];
        } else if (auto_pad == "SAME_UPPER" || auto_pad == "SAME_LOWER") {
          wanted = in * strides[i];
        } else if (auto_pad != "NOTSET" && auto_pad != "VALID") {
          throw Error("auto_pad '" + auto_pad + "' is not one of NOTSET, VALID, SAME_UPPER, SAME_LOWER");
        }
        if (auto_pad == "VALID") pads[i] = pads[spatial + i] = 0;
        if (wanted && (auto_pad == "SAME_UPPER" || auto_pad == "SAME_LOWER")) {
          // As ONNX's reference: half of the total (rounded down, as Python's //) at
          // the end for SAME_LOWER, at the start for SAME_UPPER.
          const int64_t total = full - *wanted;
          const int64_t half = total >= 0 ? total / 2 : -((-total + 1) / 2);
          pads[i] = auto_pad == "SAME_UPPER" ? half : total - half;
          pads[spatial + i] = total - pads[i];
        } else if (wanted) {
          // An explicit output shape keeps the start padding; the end gives or takes.
          pads[spatial + i] = full - pads[i] - *wanted;
        }
        out_size[i] = full - pads[i] - pads[spatial + i];
        if (out_size[i] < 1) throw Error("the output would be empty along spatial axis " + std::to_string(i));
      }

      // The input, zero-inserted and padded per spatial axis.
      Value x = x0;
      for (size_t i = 0; i < spatial; ++i) {
        const int64_t in = x0.shape[2 + i], span = (kernel[i] - 1) * dilations[i] + 1;
        const int64_t before = span - 1 - pads[i];
        const int64_t length = out_size[i] + span - 1;
        std::vector<int64_t> index(length);
        std::vector<double> reads(length);
        for (int64_t p = 0; p < length; ++p) {
          const int64_t j = p - before;
          const bool real = j >= 0 && j % strides[i] == 0 && j / strides[i] < in;
          reads[p] = real ? 1 : 0;
          index[p] = real ? j / strides[i] : 0;
        }
        x = GatherOrZero(ctx, x, 2 + i, index, reads);
      }
      // The weight (C_in, C_out/g, k...) as a convolution's (C_out, C_in/g, k...), flipped.
      const int64_t in_per_group = in_channels / group;
      Shape grouped = {group, in_per_group, out_per_group};
      grouped.insert(grouped.end(), weight.shape.begin() + 2, weight.shape.end());
      std::vector<int64_t> perm = {0, 2, 1};
      for (size_t i = 0; i < spatial; ++i) perm.push_back(static_cast<int64_t>(3 + i));
      weight = ctx.Apply("transpose", {ctx.ReshapeTo(weight, grouped)}, {{"axes", perm}});
      Shape conv_weight = {group * out_per_group, in_per_group};
      conv_weight.insert(conv_weight.end(), kernel.begin(), kernel.end());
      weight = ctx.ReshapeTo(weight, conv_weight);
      for (size_t i = 0; i < spatial; ++i) {
        std::vector<int64_t> reversed(kernel[i]);
        for (int64_t k = 0; k < kernel[i]; ++k) reversed[k] = kernel[i] - 1 - k;
        weight = GatherOrZero(ctx, weight, 2 + i, reversed, std::vector<double>(kernel[i], 1.0));
      }
      // 1-d: as 2-d with a leading spatial axis of size 1.
      std::vector<int64_t> conv_kernel = kernel, conv_dilate = dilations;
      if (spatial == 1) {
        x = ctx.ReshapeTo(x, With1DAxis(x.shape));
        weight = ctx.ReshapeTo(weight, With1DAxis(weight.shape));
        conv_kernel.insert(conv_kernel.begin(), 1);
        conv_dilate.insert(conv_dilate.begin(), 1);
      }
      std::vector<Value> inputs = {x, weight};
      if (ctx.Has(2)) inputs.push_back(ctx.In(2));
      Value y = ctx.Apply("Convolution", inputs,
                          {{"kernel", conv_kernel},
                           {"dilate", conv_dilate},
                           {"num_filter", group * out_per_group},
                           {"num_group", group},
                           {"no_bias", !ctx.Has(2)}});
      if (spatial == 1) y = ctx.ReshapeTo(y, {y.shape[0], y.shape[1], y.shape[3]});
      return std::vector<Value>{y};
    });

// The output size ONNX gives a pooling window along one axis: rounded down, or with
// ceil_mode up, less one where the last window would start in the end padding (the
// rule PyTorch follows).
int64_t PooledSize(int64_t length, int64_t kernel, int64_t stride, int64_t dilation, int64_t pad_begin, int64_t pad_end,
                   bool ceil_mode) {
  const int64_t span = length + pad_begin + pad_end - ((kernel - 1) * dilation + 1);
  int64_t size = (ceil_mode ? (span + stride - 1) / stride : span / stride) + 1;
  if (ceil_mode && (size - 1) * stride >= length + pad_begin) --size;
  return size;
}

// A slice tuple over (N, C, spatial...): None for N and C.
std::string SliceTuple(const std::vector<int64_t>& spatial) {
  std::string text = "(None, None";
  for (const int64_t v : spatial) text += ", " + std::to_string(v);
  return text + ")";
}

// The lowest value of a dtype: what max pooling pads with.
double LowestOf(DType dtype) {
  if (IsFloat(dtype)) return -std::numeric_limits<double>::infinity();
  Tensor probe({1}, dtype);
  probe.SetDouble(0, -std::numeric_limits<double>::infinity());  // integers saturate
  return probe.GetDouble(0);
}

// Calls fn(offset) for every multi-index in [0, extent) (row-major).
void ForEachOffset(const std::vector<int64_t>& extent, const std::function<void(const std::vector<int64_t>&)>& fn) {
  if (NumElements(extent) == 0) return;
  std::vector<int64_t> at(extent.size(), 0);
  while (true) {
    fn(at);
    size_t d = extent.size();
    while (d > 0 && ++at[d - 1] == extent[d - 1]) at[--d] = 0;
    if (d == 0) return;
  }
}

// Pooling that kiln's Pooling does not do (dilated windows, the Indices output, integer
// inputs, 3-d windows), as the window's taps: for each kernel offset a strided slice of
// the padded input, combined by max (tracking the first maximum's flat index), or summed
// (and for an average divided by the count ONNX divides by).
std::vector<Value> PoolBySlices(NodeContext& ctx, const Windowed& in, const std::string& pool_type) {
  const Value& x = in.x;
  const Window& w = in.w;
  const size_t spatial = x.shape.size() - 2;
  const bool ceil_mode = ctx.Int("ceil_mode", 0) != 0;
  const bool max = pool_type == "max";
  std::vector<int64_t> out(spatial), padded(spatial);
  for (size_t a = 0; a < spatial; ++a) {
    out[a] =
        PooledSize(x.shape[2 + a], w.kernel[a], w.strides[a], w.dilations[a], w.pad_begin[a], w.pad_end[a], ceil_mode);
    if (out[a] < 1) throw Error("the window does not fit the input " + ShapeToString(x.shape));
    padded[a] = (out[a] - 1) * w.strides[a] + (w.kernel[a] - 1) * w.dilations[a] + 1;
  }
  // Pad with the lowest value (max) or zero (sums), by gathers along each spatial axis.
  Tensor fill_value({1}, x.dtype);
  fill_value.SetDouble(0, max ? LowestOf(x.dtype) : 0.0);
  Value input = x;
  for (size_t a = 0; a < spatial; ++a) {
    const int64_t n = x.shape[2 + a];
    std::vector<int64_t> index(padded[a]);
    std::vector<double> valid;
    for (int64_t p = 0; p < padded[a]; ++p) {
      const int64_t j = p - w.pad_begin[a];
      valid.push_back(j >= 0 && j < n ? 1.0 : 0.0);
      index[p] = std::clamp<int64_t>(j, 0, n - 1);
    }
    Tensor indices({padded[a]}, DType::kInt64);
    std::copy(index.begin(), index.end(), indices.data_as<int64_t>());
    input = ctx.Apply("take", {input, ctx.MakeConstant(std::move(indices))}, {{"axis", static_cast<int64_t>(2 + a)}});
    if (std::any_of(valid.begin(), valid.end(), [](double v) { return v == 0; })) {
      Shape along(x.shape.size(), 1);
      along[2 + a] = padded[a];
      const Value mask = BroadcastTo(ctx, ctx.MakeConstant(Tensor::FromDoubles(along, valid, x.dtype)), input.shape);
      input = ctx.Apply("where", {mask, input, BroadcastTo(ctx, ctx.MakeConstant(fill_value), input.shape)});
    }
  }
  // The spatial part of each padded position's flat index into the input (row-major, or
  // column-major with storage_order 1), padded alike.
  const Shape input_spatial(x.shape.begin() + 2, x.shape.end());
  const bool column_major = ctx.Int("storage_order", 0) != 0;
  Shape plane_shape = {1, 1};
  plane_shape.insert(plane_shape.end(), padded.begin(), padded.end());
  Tensor plane(plane_shape, DType::kInt64);
  int64_t flat = 0;
  ForEachOffset(padded, [&](const std::vector<int64_t>& p) {
    int64_t index = 0, stride = 1;
    for (size_t k = 0; k < spatial; ++k) {
      const size_t a = column_major ? k : spatial - 1 - k;
      index += std::clamp<int64_t>(p[a] - w.pad_begin[a], 0, input_spatial[a] - 1) * stride;
      stride *= input_spatial[a];
    }
    plane.data_as<int64_t>()[flat++] = index;
  });
  const Value plane_index = ctx.MakeConstant(std::move(plane));

  std::optional<Value> best, best_index;
  ForEachOffset(w.kernel, [&](const std::vector<int64_t>& k) {
    std::vector<int64_t> begin(spatial), end(spatial);
    for (size_t a = 0; a < spatial; ++a) {
      begin[a] = k[a] * w.dilations[a];
      end[a] = begin[a] + (out[a] - 1) * w.strides[a] + 1;
    }
    const AttrMap slice = {{"begin", SliceTuple(begin)}, {"end", SliceTuple(end)}, {"step", SliceTuple(w.strides)}};
    const Value tap = ctx.Apply("slice", {input}, slice);
    if (!best) {
      best = tap;
      if (max) best_index = BroadcastTo(ctx, ctx.Apply("slice", {plane_index}, slice), tap.shape);
    } else if (!max) {
      best = ctx.Apply("broadcast_add", {*best, tap});
    } else {
      const Value better = ctx.Apply("broadcast_greater", {tap, *best});
      best = ctx.Apply("where", {better, tap, *best});
      best_index = ctx.Apply(
          "where", {better, BroadcastTo(ctx, ctx.Apply("slice", {plane_index}, slice), tap.shape), *best_index});
    }
  });
  const auto unlift = [&](const Value& y) { return Unlift(ctx, in, y); };
  if (pool_type == "sum") return {unlift(*best)};
  if (!max) {
    // The divisor per output position: taps inside the input, or with count_include_pad
    // inside the explicit pads too.
    const bool include_pad = ctx.Int("count_include_pad", 0) != 0;
    Shape count_shape = {1, 1};
    count_shape.insert(count_shape.end(), out.begin(), out.end());
    Tensor count(count_shape, x.dtype);
    int64_t position = 0;
    ForEachOffset(out, [&](const std::vector<int64_t>& o) {
      int64_t taps = 0;
      ForEachOffset(w.kernel, [&](const std::vector<int64_t>& k) {
        bool inside = true;
        for (size_t a = 0; a < spatial; ++a) {
          const int64_t i = o[a] * w.strides[a] + k[a] * w.dilations[a] - w.pad_begin[a];
          inside = inside && (include_pad ? i < input_spatial[a] + w.pad_end[a] : i >= 0 && i < input_spatial[a]);
        }
        taps += inside ? 1 : 0;
      });
      count.SetDouble(position++, static_cast<double>(std::max<int64_t>(taps, 1)));
    });
    return {unlift(ctx.Apply("broadcast_div", {*best, ctx.MakeConstant(std::move(count))}))};
  }
  std::vector<Value> outputs = {unlift(*best)};
  if (ctx.node().output_size() > 1 && !ctx.node().output(1).empty()) {
    // The (n, c) part of the flat index: (n * C + c) * (spatial size).
    Shape base_shape(x.shape.size(), 1);
    base_shape[0] = x.shape[0];
    base_shape[1] = x.shape[1];
    Tensor base(base_shape, DType::kInt64);
    const int64_t plane_size = NumElements(input_spatial);
    for (int64_t i = 0; i < base.size(); ++i) base.data_as<int64_t>()[i] = i * plane_size;
    outputs.push_back(unlift(ctx.Apply("broadcast_add", {*best_index, ctx.MakeConstant(std::move(base))})));
  }
  return outputs;
}

std::vector<Value> ConvertPool(NodeContext& ctx, const std::string& pool_type) {
  Windowed in = WindowedInput(ctx, ctx.Ints("kernel_shape"), /*allow_3d=*/true);
  if (in.x.shape.size() == 5) return PoolBySlices(ctx, in, pool_type);
  const bool indices = ctx.opset() >= 8 && ctx.node().output_size() > 1 && !ctx.node().output(1).empty();
  const bool dilated = std::any_of(in.w.dilations.begin(), in.w.dilations.end(), [](int64_t d) { return d != 1; });
  if (indices || dilated || !IsFloat(in.x.dtype) || ctx.Int("storage_order", 0) != 0) {
    return PoolBySlices(ctx, in, pool_type);
  }
  const Value& x = in.x;
  Window& w = in.w;
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
    onnx_size[a] = PooledSize(x.shape[2 + a], w.kernel[a], w.strides[a], 1, w.pad_begin[a], w.pad_end[a], ceil_mode);
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
  if (!divide_by_count) return {Unlift(ctx, in, y)};
  Tensor ones({1, 1, x.shape[2], x.shape[3]}, x.dtype);
  for (int64_t i = 0; i < ones.size(); ++i) ones.SetDouble(i, 1);
  const Value count =
      ctx.Apply("Pooling", {PadForWindow(ctx, ctx.MakeConstant(std::move(ones)), ones_window, 0.0)}, attrs);
  return {Unlift(ctx, in, ctx.Apply("broadcast_div", {y, count}))};
}

const RegisterConverter kMaxPool({"MaxPool"},
                                 {"auto_pad", "ceil_mode", "dilations", "kernel_shape", "pads", "storage_order",
                                  "strides"},
                                 [](NodeContext& ctx) { return ConvertPool(ctx, "max"); });

const RegisterConverter kAveragePool({"AveragePool"},
                                     {"auto_pad", "ceil_mode", "count_include_pad", "dilations", "kernel_shape", "pads",
                                      "strides"},
                                     [](NodeContext& ctx) { return ConvertPool(ctx, "avg"); });

// LpPool: (sum over the window of |x|^p)^(1 / p), zero padding.
const RegisterConverter kLpPool({"LpPool"},
                                {"auto_pad", "ceil_mode", "dilations", "kernel_shape", "p", "pads", "strides"},
                                [](NodeContext& ctx) {
                                  const double p = static_cast<double>(ctx.Int("p", 2));
                                  if (p <= 0)
                                    throw Error("attribute 'p': expected a positive value, given " + std::to_string(p));
                                  Windowed in = WindowedInput(ctx, ctx.Ints("kernel_shape"), /*allow_3d=*/true);
                                  in.x = ctx.Apply("_power_scalar", {ctx.Apply("abs", {in.x})}, {{"scalar", p}});
                                  const Value sum = PoolBySlices(ctx, in, "sum")[0];
                                  return std::vector<Value>{ctx.Apply("_power_scalar", {sum}, {{"scalar", 1.0 / p}})};
                                });

// LRN: x / (bias + alpha / size * sum of x^2 over the `size` nearest channels)^beta,
// the channel window floor((size - 1) / 2) before and ceil((size - 1) / 2) after: a
// sum pooling over channels of (N, 1, C, rest).
const RegisterConverter kLRN({"LRN"}, {"alpha", "beta", "bias", "size"}, [](NodeContext& ctx) {
  const Value& x = ctx.In(0);
  if (x.shape.size() < 3) throw Error("input " + ShapeToString(x.shape) + ": expected (N, C, D1, ...)");
  const int64_t size = ctx.Int("size");
  if (size < 1) throw Error("attribute 'size': expected a positive value, given " + std::to_string(size));
  const double alpha = ctx.Float("alpha", 1e-4), beta = ctx.Float("beta", 0.75), bias = ctx.Float("bias", 1.0);
  const Value squares =
      ctx.ReshapeTo(ctx.Apply("square", {x}), {x.shape[0], 1, x.shape[1], Product(x.shape, 2, x.shape.size())});
  Window w;
  w.kernel = {size, 1};
  w.strides = {1, 1};
  w.dilations = {1, 1};
  w.pad_begin = {(size - 1) / 2, 0};
  w.pad_end = {size - 1 - (size - 1) / 2, 0};
  const Value padded = PadForWindow(ctx, squares, w, 0.0);
  const Value sums = ctx.Apply(
      "Pooling", {padded}, {{"kernel", w.kernel}, {"stride", w.strides}, {"pad", w.pad_begin}, {"pool_type", "sum"}});
  const Value scaled =
      ctx.Apply("_plus_scalar", {ctx.Apply("_mul_scalar", {sums}, {{"scalar", alpha / size}})}, {{"scalar", bias}});
  const Value divisor = ctx.Apply("_power_scalar", {scaled}, {{"scalar", beta}});
  return std::vector<Value>{ctx.Apply("broadcast_div", {x, ctx.ReshapeTo(divisor, x.shape)})};
});

const RegisterConverter kGlobalPool({"GlobalAveragePool", "GlobalMaxPool"}, {}, [](NodeContext& ctx) {
  const Value& x = ctx.In(0);
  const bool max = ctx.node().op_type() == "GlobalMaxPool";
  if (x.shape.size() != 4) {
    // Other ranks: a reduction over the spatial axes, kept as size 1.
    if (x.shape.size() < 3) throw Error("input " + ShapeToString(x.shape) + " has no spatial axes");
    std::vector<int64_t> axes;
    for (size_t a = 2; a < x.shape.size(); ++a) axes.push_back(static_cast<int64_t>(a));
    return std::vector<Value>{ctx.Apply(max ? "max" : "mean", {x}, {{"axis", axes}, {"keepdims", true}})};
  }
  const std::string type = max ? "max" : "avg";
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
    if (NumElements(ctx.In(i).shape) != 1) {
      throw Error("input '" + what + "': expected one element, given shape " + ShapeToString(ctx.In(i).shape));
    }
    return ctx.ReshapeTo(ctx.In(i), {});
  };
  const std::optional<Value> min = bound(1, "min"), max = bound(2, "max");
  const bool runtime_bounds = (min && !min->constant) || (max && !max->constant);
  if (!IsFloat(x.dtype) || runtime_bounds) {
    if (ctx.opset() < 11) throw Error("Clip before opset 11 takes floating point inputs only");
    // Integer bounds exactly, and only those given: clip's double bounds would round
    // int64 beyond 2^53 and clamp what lies beyond them; bounds computed at run time
    // likewise. max after min: min > max gives max, as ONNX (and numpy) do.
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

// GroupNormalization: statistics per (image, group of channels); scale and bias per
// group (opset 18) or per channel (21).
const RegisterConverter kGroupNorm(
    {"GroupNormalization"}, {"epsilon", "num_groups", "stash_type"}, [](NodeContext& ctx) {
      const Value& x = ctx.In(0);
      if (x.shape.size() < 2) throw Error("input " + ShapeToString(x.shape) + ": expected (N, C, ...)");
      if (ctx.Int("stash_type", 1) != 1) throw Error("stash_type other than 1 (float) is not supported");
      const int64_t groups = ctx.Int("num_groups");
      const int64_t channels = x.shape[1];
      if (groups < 1 || channels % groups != 0) {
        throw Error("attribute 'num_groups': expected a divisor of the " + std::to_string(channels) +
                    " channels, given " + std::to_string(groups));
      }
      const Shape grouped = {x.shape[0], groups, channels / groups * Product(x.shape, 2, x.shape.size())};
      const Normalized n = Normalize(ctx, ctx.ReshapeTo(x, grouped), {2});
      Value y = n.y;
      Shape per(x.shape.size(), 1);
      if (ctx.opset() < 21) {
        // Per group: applied while the groups are an axis.
        const Shape per_group = {1, groups, 1};
        y = ctx.Apply("broadcast_add", {ctx.Apply("broadcast_mul", {y, ctx.ReshapeTo(ctx.In(1), per_group)}),
                                        ctx.ReshapeTo(ctx.In(2), per_group)});
        return std::vector<Value>{ctx.ReshapeTo(y, x.shape)};
      }
      per[1] = channels;
      y = ctx.ReshapeTo(y, x.shape);
      return std::vector<Value>{
          ctx.Apply("broadcast_add",
                    {ctx.Apply("broadcast_mul", {y, ctx.ReshapeTo(ctx.In(1), per)}), ctx.ReshapeTo(ctx.In(2), per)})};
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

// A constant of x's dtype with one element, broadcasting against x.
Value ScalarLike(NodeContext& ctx, const Value& x, double value) {
  Tensor t({1}, x.dtype);
  t.SetDouble(0, value);
  return ctx.MakeConstant(std::move(t));
}

// Celu (opset 12): max(0, x) + min(0, alpha * (exp(x / alpha) - 1)).
const RegisterConverter kCelu({"Celu"}, {"alpha"}, [](NodeContext& ctx) {
  const double alpha = ctx.Float("alpha", 1.0);
  if (alpha == 0) throw Error("attribute 'alpha': expected nonzero, given 0");
  const Value& x = ctx.In(0);
  const Value expm1 = ctx.Apply(
      "_minus_scalar", {ctx.Apply("exp", {ctx.Apply("_div_scalar", {x}, {{"scalar", alpha}})})}, {{"scalar", 1.0}});
  const Value negative =
      ctx.Apply("_minimum_scalar", {ctx.Apply("_mul_scalar", {expm1}, {{"scalar", alpha}})}, {{"scalar", 0.0}});
  return std::vector<Value>{ctx.Apply("broadcast_add", {ctx.Apply("relu", {x}), negative})};
});

// Swish (opset 24): x * sigmoid(alpha * x).
const RegisterConverter kSwish({"Swish"}, {"alpha"}, [](NodeContext& ctx) {
  const Value& x = ctx.In(0);
  const Value gate = ctx.Apply("sigmoid", {ctx.Apply("_mul_scalar", {x}, {{"scalar", ctx.Float("alpha", 1.0)}})});
  return std::vector<Value>{ctx.Apply("broadcast_mul", {x, gate})};
});

// Gelu (opset 20): 0.5 x (1 + erf(x / sqrt 2)), or with approximate "tanh"
// 0.5 x (1 + tanh(sqrt(2 / pi) (x + 0.044715 x^3))).
const RegisterConverter kGelu({"Gelu"}, {"approximate"}, [](NodeContext& ctx) {
  const Value& x = ctx.In(0);
  const std::string approximate = ctx.Str("approximate", "none");
  Value inner;
  if (approximate == "none") {
    inner = ctx.Apply("erf", {ctx.Apply("_mul_scalar", {x}, {{"scalar", 1.0 / std::sqrt(2.0)}})});
  } else if (approximate == "tanh") {
    const Value cube = ctx.Apply("broadcast_mul", {ctx.Apply("square", {x}), x});
    const Value sum = ctx.Apply("broadcast_add", {x, ctx.Apply("_mul_scalar", {cube}, {{"scalar", 0.044715}})});
    inner = ctx.Apply("tanh", {ctx.Apply("_mul_scalar", {sum}, {{"scalar", std::sqrt(2.0 / M_PI)}})});
  } else {
    throw Error("attribute 'approximate': expected none or tanh, given '" + approximate + "'");
  }
  const Value half =
      ctx.Apply("_mul_scalar", {ctx.Apply("_plus_scalar", {inner}, {{"scalar", 1.0}})}, {{"scalar", 0.5}});
  return std::vector<Value>{ctx.Apply("broadcast_mul", {x, half})};
});

// Selu with any alpha and gamma: gamma * (x > 0 ? x : alpha * (exp(x) - 1)). SELU's own
// constants go to kiln's selu.
const RegisterConverter kSelu({"Selu"}, {"alpha", "gamma"}, [](NodeContext& ctx) {
  const double alpha = ctx.Float("alpha", 1.67326319217681884765625);
  const double gamma = ctx.Float("gamma", 1.05070102214813232421875);
  if (std::fabs(alpha - 1.6732632423543772) < 1e-6 && std::fabs(gamma - 1.0507009873554805) < 1e-6) {
    return std::vector<Value>{Unary(ctx, "LeakyReLU", {{"act_type", "selu"}})};
  }
  const Value& x = ctx.In(0);
  const Value negative = ctx.Apply(
      "_mul_scalar", {ctx.Apply("_minus_scalar", {ctx.Apply("exp", {x})}, {{"scalar", 1.0}})}, {{"scalar", alpha}});
  const Value positive = ctx.Apply("broadcast_greater", {x, ScalarLike(ctx, x, 0.0)});
  return std::vector<Value>{
      ctx.Apply("_mul_scalar", {ctx.Apply("where", {positive, x, negative})}, {{"scalar", gamma}})};
});

// Shrink (opset 9): x + bias where x < -lambd, x - bias where x > lambd, else 0, in x's
// own type.
const RegisterConverter kShrink({"Shrink"}, {"bias", "lambd"}, [](NodeContext& ctx) {
  const Value& x = ctx.In(0);
  const double bias = ctx.Float("bias", 0.0), lambd = ctx.Float("lambd", 0.5);
  const Value zero = ctx.Apply("zeros_like", {x});
  const Value low = ctx.Apply("broadcast_lesser", {x, ScalarLike(ctx, x, -lambd)});
  const Value high = ctx.Apply("broadcast_greater", {x, ScalarLike(ctx, x, lambd)});
  const Value shrunk_up = ctx.Apply("broadcast_add", {x, ScalarLike(ctx, x, bias)});
  const Value shrunk_down = ctx.Apply("broadcast_sub", {x, ScalarLike(ctx, x, bias)});
  return std::vector<Value>{ctx.Apply("where", {low, shrunk_up, ctx.Apply("where", {high, shrunk_down, zero})})};
});

// The node's `axis` (ONNX's default `fallback`); before opset 13 (Hardmax) the input is
// seen as 2-d [prod(dims < axis), prod(dims >= axis)], which the caller undoes.
Value MoveAxisLast(NodeContext& ctx, const Value& x, int64_t axis) {
  std::vector<int64_t> perm;
  for (int64_t a = 0; a < static_cast<int64_t>(x.shape.size()); ++a) {
    if (a != axis) perm.push_back(a);
  }
  perm.push_back(axis);
  return ctx.Apply("transpose", {x}, {{"axes", perm}});
}

Value MoveLastAxisTo(NodeContext& ctx, const Value& x, int64_t axis) {
  const auto rank = static_cast<int64_t>(x.shape.size());
  std::vector<int64_t> perm;
  for (int64_t a = 0; a < rank - 1; ++a) {
    if (a == axis) perm.push_back(rank - 1);
    perm.push_back(a);
  }
  if (axis == rank - 1) perm.push_back(rank - 1);
  return ctx.Apply("transpose", {x}, {{"axes", perm}});
}

// Hardmax: 1 at the first largest element along the axis, 0 elsewhere.
const RegisterConverter kHardmax({"Hardmax"}, {"axis"}, [](NodeContext& ctx) {
  const Value& x = ctx.In(0);
  const auto rank = static_cast<int64_t>(x.shape.size());
  const auto hardmax_last = [&](const Value& v) {
    const int64_t depth = v.shape.back();
    const Value index = ctx.Apply("argmax", {v}, {{"axis", int64_t{-1}}});
    return ctx.Apply("one_hot", {index}, {{"depth", depth}, {"dtype", v.dtype}});
  };
  if (ctx.opset() < 13) {
    const int64_t axis = NormalizeAxis(ctx.Int("axis", 1), x.shape.size());
    const Value flat = ctx.ReshapeTo(x, {Product(x.shape, 0, axis), Product(x.shape, axis, x.shape.size())});
    return std::vector<Value>{ctx.ReshapeTo(hardmax_last(flat), x.shape)};
  }
  const int64_t axis = NormalizeAxis(ctx.Int("axis", -1), x.shape.size());
  if (axis == rank - 1) return std::vector<Value>{hardmax_last(x)};
  return std::vector<Value>{MoveLastAxisTo(ctx, hardmax_last(MoveAxisLast(ctx, x, axis)), axis)};
});

// LpNormalization: x / ||x||_p along the axis (p 1 or 2; no epsilon, as ONNX).
const RegisterConverter kLpNormalization({"LpNormalization"}, {"axis", "p"}, [](NodeContext& ctx) {
  const Value& x = ctx.In(0);
  const int64_t axis = NormalizeAxis(ctx.Int("axis", -1), x.shape.size());
  const int64_t p = ctx.Int("p", 2);
  const AttrMap reduce = {{"axis", std::vector<int64_t>{axis}}, {"keepdims", true}};
  Value norm;
  if (p == 1) {
    norm = ctx.Apply("sum", {ctx.Apply("abs", {x})}, reduce);
  } else if (p == 2) {
    norm = ctx.Apply("sqrt", {ctx.Apply("sum", {ctx.Apply("square", {x})}, reduce)});
  } else {
    throw Error("attribute 'p': expected 1 or 2, given " + std::to_string(p));
  }
  // A zero norm means a zero slice, which stays zero (ONNX: 0 / 0 = 0): divide it by 1.
  const Value is_zero = ctx.Apply("broadcast_equal", {norm, ScalarLike(ctx, norm, 0.0)});
  const Value divisor = ctx.Apply("where", {is_zero, ctx.Apply("ones_like", {norm}), norm});
  return std::vector<Value>{ctx.Apply("broadcast_div", {x, divisor})};
});

// MeanVarianceNormalization: (x - mean) / (sqrt(variance) + 1e-9) over `axes`, as
// ONNX's function body defines it.
const RegisterConverter kMeanVarianceNormalization({"MeanVarianceNormalization"}, {"axes"}, [](NodeContext& ctx) {
  const Value& x = ctx.In(0);
  std::vector<int64_t> axes = ctx.Ints("axes", std::vector<int64_t>{0, 2, 3});
  for (auto& a : axes) a = NormalizeAxis(a, x.shape.size(), "axes");
  const AttrMap reduce = {{"axis", axes}, {"keepdims", true}};
  const Value mean = ctx.Apply("mean", {x}, reduce);
  const Value centered = ctx.Apply("broadcast_sub", {x, mean});
  const Value variance = ctx.Apply("mean", {ctx.Apply("square", {centered})}, reduce);
  const Value deviation = ctx.Apply("_plus_scalar", {ctx.Apply("sqrt", {variance})}, {{"scalar", 1e-9}});
  return std::vector<Value>{ctx.Apply("broadcast_div", {centered, deviation})};
});

}  // namespace
}  // namespace kiln::onnx_import
