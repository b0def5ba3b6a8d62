// Neural-network layers on NCHW data: Convolution, Pooling, BatchNorm and Dropout.
#include <algorithm>
#include <array>
#include <cmath>
#include <functional>
#include <limits>
#include <numeric>
#include <random>

#include "codegen/kir/kir.h"
#include "codegen/lower/lower_util.h"
#include "graph/gradient.h"
#include "graph/op_util.h"
#include "ops/lower_gemm.h"
#include "ops/lower_random.h"
#include "ops/nn_lowering.h"
#include "runtime/kernel_abi.h"
#include "runtime/kernels/gemm.h"

namespace kiln {

namespace {

using op_util::AssignShape;
using op_util::AssignType;
using op_util::ShapeError;
using namespace nn;  // NOLINT(google-build-using-namespace): the layers' shared lowering vocabulary

std::string PairText(int64_t a, int64_t b) {
  return ShapeToString(Shape{a, b});
}

void CheckSpatialTuple(const Attrs& attrs, const char* name, const char* op) {
  const auto& values = attrs.Ints(name);
  if (!values.empty() && values.size() != 2) {
    throw Error(std::string("attribute '") + name + "': expected 2 elements (h, w) or (), given " +
                FormatAttrValue(values) + " (kiln's " + op + " is 2-D)");
  }
}

void CheckLayout(const Attrs& attrs, const char* op) {
  if (!attrs.IsNone("layout") && attrs.Str("layout") != "NCHW") {
    throw Error("attribute 'layout': '" + attrs.Str("layout") + "' is not supported; kiln's " + op +
                " takes NCHW data (layout NCHW or None)");
  }
}

const Shape& CheckData4D(const Shape& data) {
  if (data.size() != 4) ShapeError("input 'data'", "4-d (N,C,H,W)", data);
  return data;
}

// ----------------------------------------------------------------------------- Convolution

void ValidateConvolution(const Attrs& attrs) {
  if (attrs.Ints("kernel").size() != 2) {
    throw Error("attribute 'kernel': expected 2 elements (kh, kw), given " + FormatAttrValue(attrs.Ints("kernel")) +
                " (kiln's Convolution is 2-D)");
  }
  for (const char* name : {"stride", "dilate", "pad"}) CheckSpatialTuple(attrs, name, "Convolution");
  if (attrs.Int("num_filter") % attrs.Int("num_group") != 0) {
    throw Error("num_filter " + std::to_string(attrs.Int("num_filter")) + " is not divisible by num_group " +
                std::to_string(attrs.Int("num_group")));
  }
  CheckLayout(attrs, "Convolution");
}

void InferConvolutionShape(const Attrs& attrs, std::vector<ShapeSlot>& in, std::vector<ShapeSlot>& out) {
  const int64_t filters = attrs.Int("num_filter");
  const int64_t groups = attrs.Int("num_group");
  if (!attrs.Bool("no_bias")) AssignShape(in[2], {filters}, "input 'bias'");
  if (!in[0]) return;
  const Shape& data = CheckData4D(*in[0]);
  const Pair k = SpatialPair(attrs, "kernel", 1);
  const Pair s = SpatialPair(attrs, "stride", 1);
  const Pair d = SpatialPair(attrs, "dilate", 1);
  const Pair p = SpatialPair(attrs, "pad", 0);
  if (data[1] % groups != 0) {
    throw Error("input 'data': " + std::to_string(data[1]) + " channels (shape " + ShapeToString(data) +
                ") are not divisible by num_group " + std::to_string(groups));
  }
  AssignShape(in[1], {filters, data[1] / groups, k.h, k.w}, "input 'weight'");
  const int64_t dk_h = d.h * (k.h - 1) + 1;
  const int64_t dk_w = d.w * (k.w - 1) + 1;
  const int64_t padded_h = data[2] + 2 * p.h;
  const int64_t padded_w = data[3] + 2 * p.w;
  if (dk_h > padded_h || dk_w > padded_w) {
    throw Error("kernel " + PairText(dk_h, dk_w) + (d.h == 1 && d.w == 1 ? "" : " (dilated)") +
                " is larger than the padded input " + PairText(padded_h, padded_w) + " of input 'data' " +
                ShapeToString(data));
  }
  AssignShape(out[0], {data[0], filters, (padded_h - dk_h) / s.h + 1, (padded_w - dk_w) / s.w + 1}, "output");
}

void ConvolutionReference(const Attrs& attrs, std::span<const Tensor> in, std::span<Tensor> out, const RefContext&) {
  const Shape& xs = in[0].shape();
  const Shape& ys = out[0].shape();
  const int64_t batch = xs[0], channels = xs[1], height = xs[2], width = xs[3];
  const int64_t filters = ys[1], out_h = ys[2], out_w = ys[3];
  const int64_t group_in = channels / attrs.Int("num_group");
  const int64_t group_out = filters / attrs.Int("num_group");
  const Pair k = SpatialPair(attrs, "kernel", 1);
  const Pair s = SpatialPair(attrs, "stride", 1);
  const Pair d = SpatialPair(attrs, "dilate", 1);
  const Pair p = SpatialPair(attrs, "pad", 0);
  const std::vector<double> x = in[0].ToDoubles();
  const std::vector<double> w = in[1].ToDoubles();
  const std::vector<double> bias = attrs.Bool("no_bias") ? std::vector<double>(filters, 0.0) : in[2].ToDoubles();
  int64_t flat = 0;
  for (int64_t n = 0; n < batch; ++n) {
    for (int64_t f = 0; f < filters; ++f) {
      // Filter f sees the input channels of its group only.
      const int64_t first_channel = f / group_out * group_in;
      for (int64_t oh = 0; oh < out_h; ++oh) {
        for (int64_t ow = 0; ow < out_w; ++ow) {
          double sum = bias[f];
          for (int64_t c = 0; c < group_in; ++c) {
            for (int64_t i = 0; i < k.h; ++i) {
              const int64_t ih = oh * s.h - p.h + i * d.h;
              if (ih < 0 || ih >= height) continue;
              for (int64_t j = 0; j < k.w; ++j) {
                const int64_t iw = ow * s.w - p.w + j * d.w;
                if (iw < 0 || iw >= width) continue;
                sum += x[((n * channels + first_channel + c) * height + ih) * width + iw] *
                       w[((f * group_in + c) * k.h + i) * k.w + j];
              }
            }
          }
          out[0].SetDouble(flat++, sum);
        }
      }
    }
  }
}

// ----------------------------------------------------------------------------- Pooling

void ValidatePooling(const Attrs& attrs) {
  const size_t kernel_size = attrs.Ints("kernel").size();
  if (!attrs.Bool("global_pool") && kernel_size != 2) {
    throw Error("attribute 'kernel': expected 2 elements (kh, kw), given " + FormatAttrValue(attrs.Ints("kernel")) +
                " (kiln's Pooling is 2-D; only global_pool=True may omit the kernel)");
  }
  for (const char* name : {"kernel", "stride", "pad"}) CheckSpatialTuple(attrs, name, "Pooling");
  if (attrs.Str("pooling_convention") == "same") {
    throw Error(
        "attribute 'pooling_convention': 'same' is not supported (MXNet implements it for 1-D max pooling "
        "only; kiln's Pooling is 2-D)");
  }
  if (attrs.Str("pool_type") == "lp") {
    const auto p = attrs.OptInt("p_value");
    if (!p || *p < 1 || *p > 3) {
      throw Error("attribute 'p_value': pool_type 'lp' needs p_value 1, 2 or 3, given " +
                  FormatAttrValue(attrs.Get("p_value")));
    }
  }
  CheckLayout(attrs, "Pooling");
}

// The pooling window geometry for one data shape; global pooling covers the whole
// input with no padding (MXNet ignores kernel, stride and pad then).
struct PoolWindow {
  Pair kernel, stride, pad;
};
PoolWindow PoolingWindow(const Attrs& attrs, const Shape& data) {
  if (attrs.Bool("global_pool")) return {{data[2], data[3]}, {1, 1}, {0, 0}};
  return {SpatialPair(attrs, "kernel", 1), SpatialPair(attrs, "stride", 1), SpatialPair(attrs, "pad", 0)};
}

void InferPoolingShape(const Attrs& attrs, std::vector<ShapeSlot>& in, std::vector<ShapeSlot>& out) {
  if (!in[0]) return;
  const Shape& data = CheckData4D(*in[0]);
  const PoolWindow win = PoolingWindow(attrs, data);
  // Pads from a file can be anything: the padded extent must fit in int64.
  int64_t padded_h = 0, padded_w = 0;
  if (win.pad.h < 0 || win.pad.w < 0 || __builtin_mul_overflow(win.pad.h, 2, &padded_h) ||
      __builtin_add_overflow(padded_h, data[2], &padded_h) || __builtin_mul_overflow(win.pad.w, 2, &padded_w) ||
      __builtin_add_overflow(padded_w, data[3], &padded_w)) {
    throw Error("pad " + PairText(win.pad.h, win.pad.w) + " is out of range for input 'data' " + ShapeToString(data) +
                " (expected pads from 0 that keep the padded size within int64)");
  }
  if (win.kernel.h > padded_h || win.kernel.w > padded_w) {
    throw Error("kernel " + PairText(win.kernel.h, win.kernel.w) + " is larger than the padded input " +
                PairText(padded_h, padded_w) + " of input 'data' " + ShapeToString(data));
  }
  // 'valid' drops a partial last window; 'full' keeps it (ceil), even where it starts in
  // the padding, as MXNet does.
  const bool full = attrs.Str("pooling_convention") == "full";
  const auto extent = [full](int64_t padded, int64_t kernel, int64_t stride) {
    const int64_t span = padded - kernel;
    return 1 + (full ? (span + stride - 1) / stride : span / stride);
  };
  AssignShape(
      out[0],
      {data[0], data[1], extent(padded_h, win.kernel.h, win.stride.h), extent(padded_w, win.kernel.w, win.stride.w)},
      "output");
}

double LowestOf(DType dtype) {
  switch (dtype) {
    case DType::kFloat16: return -65504.0;
    case DType::kBFloat16: return -0x1.fep127;  // the lowest finite bfloat16
    case DType::kFloat64: return std::numeric_limits<double>::lowest();
    default: return std::numeric_limits<float>::lowest();
  }
}

void PoolingReference(const Attrs& attrs, std::span<const Tensor> in, std::span<Tensor> out, const RefContext&) {
  const Shape& xs = in[0].shape();
  const Shape& ys = out[0].shape();
  const int64_t height = xs[2], width = xs[3];
  const PoolWindow win = PoolingWindow(attrs, xs);
  const std::string& type = attrs.Str("pool_type");
  const bool include_pad = attrs.IsNone("count_include_pad") || attrs.Bool("count_include_pad");
  const int64_t p_value = attrs.OptInt("p_value").value_or(1);
  const std::vector<double> x = in[0].ToDoubles();
  int64_t flat = 0;
  for (int64_t plane = 0; plane < xs[0] * xs[1]; ++plane) {
    const double* xp = x.data() + plane * height * width;
    for (int64_t oh = 0; oh < ys[2]; ++oh) {
      for (int64_t ow = 0; ow < ys[3]; ++ow) {
        // The window, clipped first to the padded input (its size is avg's divisor when
        // padding counts), then to the data.
        int64_t h0 = oh * win.stride.h - win.pad.h;
        int64_t w0 = ow * win.stride.w - win.pad.w;
        int64_t h1 = std::min(h0 + win.kernel.h, height + win.pad.h);
        int64_t w1 = std::min(w0 + win.kernel.w, width + win.pad.w);
        const int64_t padded_count = std::max<int64_t>(h1 - h0, 0) * std::max<int64_t>(w1 - w0, 0);
        h0 = std::max<int64_t>(h0, 0);
        w0 = std::max<int64_t>(w0, 0);
        h1 = std::min(h1, height);
        w1 = std::min(w1, width);
        const int64_t count = std::max<int64_t>(h1 - h0, 0) * std::max<int64_t>(w1 - w0, 0);
        double result = 0;
        if (type == "max") {
          // An empty window (wholly in the padding) gives the dtype's lowest value, as in MXNet.
          result = LowestOf(out[0].dtype());
          for (int64_t h = h0; h < h1; ++h) {
            for (int64_t w = w0; w < w1; ++w) result = xp[h * width + w] > result ? xp[h * width + w] : result;
          }
        } else {
          for (int64_t h = h0; h < h1; ++h) {
            for (int64_t w = w0; w < w1; ++w) {
              const double v = xp[h * width + w];
              result += type == "lp" ? std::pow(v, static_cast<double>(p_value)) : v;
            }
          }
          if (type == "avg") {
            const int64_t divisor = include_pad ? padded_count : count;
            result = divisor > 0 ? result / static_cast<double>(divisor) : 0.0;
          } else if (type == "lp" && p_value == 2) {
            result = std::sqrt(result);
          } else if (type == "lp" && p_value == 3) {
            result = std::cbrt(result);
          }
        }
        out[0].SetDouble(flat++, result);
      }
    }
  }
}

// ----------------------------------------------------------------------------- BatchNorm

const std::vector<std::string> kBatchNormInputs = {"data", "gamma", "beta", "moving_mean", "moving_var"};

void InferBatchNormShape(const Attrs& attrs, std::vector<ShapeSlot>& in, std::vector<ShapeSlot>& out) {
  if (!in[0]) return;
  const Shape& data = *in[0];
  if (data.empty()) ShapeError("input 'data'", "at least 1-d", data);
  const int64_t axis = op_util::NormalizeAxis(attrs.Int("axis"), static_cast<int64_t>(data.size()), "attribute 'axis'");
  const Shape channels = {data[axis]};
  for (size_t i = 1; i < in.size(); ++i) AssignShape(in[i], channels, "input '" + kBatchNormInputs[i] + "'");
  AssignShape(out[0], data, "output");
  for (size_t i = 1; i < out.size(); ++i) AssignShape(out[i], channels, "output " + std::to_string(i));
}

// Parameters, statistics and the mean/var outputs are float32 for float16 and bfloat16
// data and otherwise take the data dtype (MXNet accumulates half precision in float32).
void InferBatchNormType(const Attrs&, std::vector<DTypeSlot>& in, std::vector<DTypeSlot>& out) {
  if (!in[0] && out[0]) in[0] = out[0];
  if (!in[0]) return;
  const DType data = *in[0];
  if (!IsFloat(data)) {
    throw Error("input 'data': expected a floating-point dtype (float16, bfloat16, float32, float64), given " +
                std::string(DTypeName(data)));
  }
  const DType param = data == DType::kFloat16 || data == DType::kBFloat16 ? DType::kFloat32 : data;
  for (size_t i = 1; i < in.size(); ++i) AssignType(in[i], param, "input '" + kBatchNormInputs[i] + "'");
  AssignType(out[0], data, "output");
  for (size_t i = 1; i < out.size(); ++i) AssignType(out[i], param, "output " + std::to_string(i));
}

// At inference (or with use_global_stats), BatchNorm is x * scale + shift per channel
// with scale = gamma / sqrt(var + eps) and shift = beta - mean * scale, in float64.
std::optional<ChannelAffine> BatchNormAffine(const Attrs& attrs, std::span<const Tensor* const> params,
                                             const Shape& data_shape, bool is_train) {
  if (is_train && !attrs.Bool("use_global_stats")) return std::nullopt;
  if (attrs.Bool("output_mean_var")) return std::nullopt;
  const bool fix_gamma = attrs.Bool("fix_gamma");
  if (params.size() != 4 || !params[1] || !params[2] || !params[3] || (!fix_gamma && !params[0])) return std::nullopt;
  ChannelAffine affine;
  affine.axis = op_util::NormalizeAxis(attrs.Int("axis"), static_cast<int64_t>(data_shape.size()), "axis");
  const int64_t channels = data_shape[affine.axis];
  const double eps = attrs.Float("eps");
  for (int64_t c = 0; c < channels; ++c) {
    const double gamma = fix_gamma ? 1.0 : params[0]->GetDouble(c);
    const double scale = gamma / std::sqrt(params[3]->GetDouble(c) + eps);
    affine.scale.push_back(scale);
    affine.shift.push_back(params[1]->GetDouble(c) - params[2]->GetDouble(c) * scale);
  }
  return affine;
}

void BatchNormReference(const Attrs& attrs, std::span<const Tensor> in, std::span<Tensor> out, const RefContext& ctx) {
  const ChannelView view = ChannelViewOf(attrs, in[0].shape());
  const int64_t channels = view.channels, outer = view.outer, inner = view.inner;
  const auto at = [&](int64_t o, int64_t c, int64_t i) { return view.at(o, c, i); };
  const std::vector<double> x = in[0].ToDoubles();
  const double eps = attrs.Float("eps");
  const double momentum = attrs.Float("momentum");
  const bool batch_stats = ctx.is_train && !attrs.Bool("use_global_stats");
  // Handle copies share the auxiliary buffers: writing them updates the moving statistics.
  Tensor moving_mean = in[3];
  Tensor moving_var = in[4];
  for (int64_t c = 0; c < channels; ++c) {
    double mean = moving_mean.GetDouble(c);
    double var = moving_var.GetDouble(c);
    if (batch_stats) {
      const double count = static_cast<double>(outer * inner);
      double sum = 0;
      for (int64_t o = 0; o < outer; ++o) {
        for (int64_t i = 0; i < inner; ++i) sum += x[at(o, c, i)];
      }
      mean = count > 0 ? sum / count : 0.0;
      double squares = 0;
      for (int64_t o = 0; o < outer; ++o) {
        for (int64_t i = 0; i < inner; ++i) squares += (x[at(o, c, i)] - mean) * (x[at(o, c, i)] - mean);
      }
      // The biased variance normalizes and also feeds the moving average (checked
      // against MXNet 1.9 in training mode).
      var = count > 0 ? squares / count : 0.0;
      moving_mean.SetDouble(c, moving_mean.GetDouble(c) * momentum + mean * (1 - momentum));
      moving_var.SetDouble(c, moving_var.GetDouble(c) * momentum + var * (1 - momentum));
    }
    const double inv_std = 1.0 / std::sqrt(var + eps);
    const double gamma = attrs.Bool("fix_gamma") ? 1.0 : in[1].GetDouble(c);
    const double beta = in[2].GetDouble(c);
    for (int64_t o = 0; o < outer; ++o) {
      for (int64_t i = 0; i < inner; ++i)
        out[0].SetDouble(at(o, c, i), (x[at(o, c, i)] - mean) * inv_std * gamma + beta);
    }
    if (out.size() == 3) {
      // MXNet's "var" output holds the inverse standard deviation 1/sqrt(var + eps).
      out[1].SetDouble(c, mean);
      out[2].SetDouble(c, inv_std);
    }
  }
}

// ----------------------------------------------------------------------------- Dropout

void InferDropoutShape(const Attrs& attrs, std::vector<ShapeSlot>& in, std::vector<ShapeSlot>& out) {
  if (!in[0] && out[0]) in[0] = out[0];
  if (!in[0]) return;
  for (int64_t axis : attrs.Ints("axes")) {
    op_util::NormalizeAxis(axis, static_cast<int64_t>(in[0]->size()), "attribute 'axes'");
  }
  AssignShape(out[0], *in[0], "output");
  if (in.size() > 1) AssignShape(in[1], Shape{1}, "input 'counter'");
}

// The data's floating-point dtype; _dropout_step's counter is int64.
void InferDropoutType(const Attrs& attrs, std::vector<DTypeSlot>& in, std::vector<DTypeSlot>& out) {
  std::vector<DTypeSlot> data = {in[0]};
  FloatSameType({"data"})(attrs, data, out);
  in[0] = data[0];
  if (in.size() > 1) AssignType(in[1], DType::kInt64, "input 'counter'");
}

// The step counter of _dropout_step (0 for Dropout).
uint64_t DropoutCounter(std::span<const Tensor> in) {
  return in.size() > 1 ? static_cast<uint64_t>(in[1].data_as<int64_t>()[0]) : 0;
}

// Element i of the mask (row-major over the data shape with the `axes` dims set to 1) is
// kept when the i-th draw u = (mt19937_64() >> 11) * 2^-53 of the node's seed satisfies
// u >= p; kept elements are scaled by 1 / (1 - p).
void DropoutReference(const Attrs& attrs, std::span<const Tensor> in, std::span<Tensor> out, const RefContext& ctx) {
  const double p = attrs.Float("p");
  const bool active = ctx.is_train || attrs.Str("mode") == "always";
  if (!active || p == 0) {
    for (int64_t i = 0; i < out[0].size(); ++i) out[0].SetDouble(i, in[0].GetDouble(i));
    return;
  }
  const int64_t ndim = in[0].ndim();
  Shape mask_shape = in[0].shape();
  for (int64_t axis : attrs.Ints("axes")) mask_shape[op_util::NormalizeAxis(axis, ndim, "attribute 'axes'")] = 1;
  // Each step's counter seeds another stream (Dropout's is the node's seed itself).
  std::mt19937_64 rng(ctx.seed + DropoutCounter(in) * 0x9E3779B97F4A7C15ULL);
  std::vector<bool> keep(static_cast<size_t>(NumElements(mask_shape)));
  for (size_t i = 0; i < keep.size(); ++i) keep[i] = static_cast<double>(rng() >> 11) * 0x1.0p-53 >= p;
  // p == 1 keeps nothing (MXNet 1.9 gives NaN there, from 0 * inf).
  const double scale = p < 1 ? 1.0 / (1.0 - p) : 0.0;
  op_util::ForEachIndex(in[0].shape(), [&](int64_t flat, const std::vector<int64_t>& index) {
    const bool kept = keep[op_util::BroadcastOffset(mask_shape, index)];
    out[0].SetDouble(flat, kept ? in[0].GetDouble(flat) * scale : 0.0);
  });
}

// ----------------------------------------------------------------------------- Lowering

using kir::Expr;
using kir::ScalarType;
using kir::Stmt;

// ceil(a / b) for b > 0 and a of either sign (kir's division truncates toward zero).
Expr CeilDiv(const Expr& a, int64_t b) {
  return kir::Select(kir::Gt(a, Int(0)), (a + Int(b - 1)) / Int(b), -((-a) / Int(b)));
}

// The t in [0, count) with 0 <= base + t * step < limit (step > 0), as [first, first +
// extent): window taps and output columns that read inside the data, so that loops need
// no bounds test per element.
struct Span {
  Expr first;
  Expr extent;
};
Span ValidSpan(const Expr& base, int64_t step, int64_t limit, int64_t count) {
  // first <= count even when every t reads before the data (a wide left padding).
  const Expr first = kir::Min(Int(count), kir::Max(Int(0), CeilDiv(-base, step)));
  const Expr end = kir::Min(Int(count), CeilDiv(Int(limit) - base, step));
  return {first, kir::Max(Int(0), end - first)};
}

// --- Convolution: direct loops for depthwise convolutions and dtypes other than float32;
// otherwise the sconv routine (an implicit-im2col GEMM) on blocks of filters and output
// positions, in parallel.

// A task multiplies at least kMinTaskMacs (with 2 threads, LeNet at batch 8 ran 37%
// faster than with 512K, the CNN at batch 1 16%); at most kMaxTasks tasks. A block of output
// positions has at least kMinPanelCols columns (or the whole plane), and filter blocks,
// which split only when images and position blocks give too few tasks, hold at least
// kMinFilterBlock filters: every task packs its block of the im2col matrix, which costs
// about what multiplying it by a few dozen filters does.
constexpr int64_t kMinTaskMacs = int64_t{1} << 17;
constexpr int64_t kMinPanelCols = 256;

ConvGeometry MakeConvGeometry(const Attrs& attrs, const LowerContext& ctx) {
  return ConvGeometryOf(attrs, ctx.input_shapes[0], ctx.output_shapes[0]);
}

// One output row at a time per (image, filter) plane, summed in `acc_type` in a local row:
// every output element adds its taps in the reference's order (channel, kernel row,
// kernel column), the inner loop running along the row.
Stmt DirectConvolution(const ConvGeometry& g, const LowerContext& ctx, const kir::Buffer& bias, ScalarType acc_type) {
  const kir::Buffer& x = ctx.inputs[0];
  const kir::Buffer& w = ctx.inputs[1];
  const kir::Buffer& out = ctx.outputs[0];
  const kir::Buffer acc = ctx.builder->AddLocal("acc", acc_type, g.out_w);
  const Expr t = kir::Var("plane");
  const Expr oh = kir::Var("oh");
  const Expr ow = kir::Var("ow");
  const Expr c = kir::Var("c");
  const Expr i = kir::Var("i");
  const Expr j = kir::Var("j");
  const Expr n = t / Int(g.filters);
  const Expr f = t % Int(g.filters);
  const Expr first_channel = f / Int(g.group_out) * Int(g.group_in);
  const Expr init = bias ? lower::LoadAs(bias, f, acc_type) : kir::Const(0, acc_type);
  const Span taps_h = ValidSpan(oh * Int(g.s.h) - Int(g.p.h), g.d.h, g.height, g.k.h);
  const Span cols = ValidSpan(j * Int(g.d.w) - Int(g.p.w), g.s.w, g.width, g.out_w);
  const Expr ih = oh * Int(g.s.h) - Int(g.p.h) + i * Int(g.d.h);
  const Expr iw = ow * Int(g.s.w) - Int(g.p.w) + j * Int(g.d.w);
  const Expr xv =
      lower::LoadAs(x, ((n * Int(g.channels) + first_channel + c) * Int(g.height) + ih) * Int(g.width) + iw, acc_type);
  const Expr wv = lower::LoadAs(w, ((f * Int(g.group_in) + c) * Int(g.k.h) + i) * Int(g.k.w) + j, acc_type);
  const Stmt tap =
      Loop(ow, cols.first, cols.extent, kir::Store(acc, ow, kir::Load(acc, ow) + xv * wv), kir::LoopKind::kVectorize);
  const Expr out_at = ((n * Int(g.filters) + f) * Int(g.out_h) + oh) * Int(g.out_w) + ow;
  const Stmt row = kir::Block({
      Loop(ow, Int(0), Int(g.out_w), kir::Store(acc, ow, init), kir::LoopKind::kVectorize),
      Loop(c, Int(0), Int(g.group_in), Loop(i, taps_h.first, taps_h.extent, Loop(j, Int(0), Int(g.k.w), tap))),
      Loop(ow, Int(0), Int(g.out_w),
           lower::StoreFrom(out, out_at,
                            ctx.epilogue ? ctx.Epilogue(lower::AsStored(kir::Load(acc, ow), ctx.output_types[0]),
                                                        out_at, ow, g.out_w)
                                         : kir::Load(acc, ow)),
           kir::LoopKind::kVectorize),
  });
  return Loop(t, Int(0), Int(g.batch * g.filters), kir::Allocate(acc, Loop(oh, Int(0), Int(g.out_h), row)),
              kir::LoopKind::kParallel);
}

// An output position along one axis of a windowed operation (convolution, pooling): a
// known index (an edge) or the interior loop variable.
struct AxisPosition {
  Expr var;
  int64_t fixed = -1;
  Expr Get() const { return fixed >= 0 ? Int(fixed) : var; }
  // Whether window tap k reads inside an input of `size` (the interior variable: yes).
  bool Inside(int64_t k, int64_t stride, int64_t dilate, int64_t pad, int64_t size) const {
    if (fixed < 0) return true;
    const int64_t i = fixed * stride + k * dilate - pad;
    return i >= 0 && i < size;
  }
};

// Edge rows and columns get statements of their own up to this many in all (beyond it,
// huge padding, the caller guards its taps instead).
constexpr int64_t kMaxEdgeStatements = 96;

bool StaticEdgesFit(int64_t out_h, int64_t out_w, std::pair<int64_t, int64_t> rows_inside,
                    std::pair<int64_t, int64_t> cols_inside) {
  const int64_t edge_rows = rows_inside.first + out_h - rows_inside.second;
  const int64_t edge_cols = cols_inside.first + out_w - cols_inside.second;
  return (edge_rows + 1) * (edge_cols + 1) <= kMaxEdgeStatements;
}

// One output plane: interior rows loop and interior columns loop, vectorized; every edge
// row and column is a statement of its own from value(oh, ow), so that the taps it reads
// outside the input are left out at compile time and none is guarded at run time.
Stmt PlaneWithStaticEdges(const Expr& oh_var, const Expr& ow_var, int64_t out_h, int64_t out_w,
                          std::pair<int64_t, int64_t> rows_inside, std::pair<int64_t, int64_t> cols_inside,
                          const std::function<Stmt(const AxisPosition&, const AxisPosition&)>& value) {
  const int64_t col_first = cols_inside.first, col_end = cols_inside.second;
  const auto row = [&](const AxisPosition& oh) {
    std::vector<Stmt> steps;
    for (int64_t ow = 0; ow < col_first; ++ow) steps.push_back(value(oh, {ow_var, ow}));
    steps.push_back(
        Loop(ow_var, Int(col_first), Int(col_end - col_first), value(oh, {ow_var}), kir::LoopKind::kVectorize));
    for (int64_t ow = col_end; ow < out_w; ++ow) steps.push_back(value(oh, {ow_var, ow}));
    return kir::Block(std::move(steps));
  };
  std::vector<Stmt> rows;
  for (int64_t oh = 0; oh < rows_inside.first; ++oh) rows.push_back(row({oh_var, oh}));
  rows.push_back(Loop(oh_var, Int(rows_inside.first), Int(rows_inside.second - rows_inside.first), row({oh_var})));
  for (int64_t oh = rows_inside.second; oh < out_h; ++oh) rows.push_back(row({oh_var, oh}));
  return kir::Block(std::move(rows));
}

// float32 depthwise convolutions (one input channel per filter; the form takes any
// group_in, but with more than one channel it measured 2-3x slower than sconv on LeNet's
// and the CNN's layers): one (image, filter) plane per parallel iteration; each output element is the bias plus its
// group_in x kernel_h x kernel_w taps written out as one expression, the filter's taps
// read from a local copy (so that they stay in registers). Interior rows and columns
// (every tap inside the image) loop, vectorized along the row; each edge row and column
// is a statement of its own whose taps outside the image are left out at compile time,
// so no tap is guarded at run time (PlaneWithStaticEdges). Layers whose edges would take
// more than kMaxEdgeStatements statements (huge padding) guard the taps instead.
Stmt UnrolledConvolution(const ConvGeometry& g, const LowerContext& ctx, const kir::Buffer& bias) {
  const kir::Buffer& x = ctx.inputs[0];
  const kir::Buffer& w = ctx.inputs[1];
  const kir::Buffer& out = ctx.outputs[0];
  const int64_t taps = g.group_in * g.k.h * g.k.w;
  const kir::Buffer tap_values = ctx.builder->AddLocal("taps", ScalarType::kFloat32, taps);
  const Expr t = kir::Var("plane");
  const Expr oh_var = kir::Var("oh");
  const Expr ow_var = kir::Var("ow");
  const Expr q = kir::Var("tap");
  const Expr n = t / Int(g.filters);
  const Expr f = t % Int(g.filters);
  const Expr first_channel = f / Int(g.group_out) * Int(g.group_in);
  // Plain variables, not structured bindings: lambdas below capture them (clang 14).
  const std::pair<int64_t, int64_t> rows_inside = Interior(g.height, g.out_h, g.k.h, g.s.h, g.d.h, g.p.h);
  const std::pair<int64_t, int64_t> cols_inside = Interior(g.width, g.out_w, g.k.w, g.s.w, g.d.w, g.p.w);
  const bool static_edges = StaticEdgesFit(g.out_h, g.out_w, rows_inside, cols_inside);
  const auto value = [&](const AxisPosition& oh, const AxisPosition& ow, bool guard) {
    Expr sum = bias ? kir::Load(bias, f) : kir::FloatImm(0.0);
    for (int64_t c = 0; c < g.group_in; ++c) {
      const Expr plane_in = (n * Int(g.channels) + first_channel + Int(c)) * Int(g.height * g.width);
      for (int64_t i = 0; i < g.k.h; ++i) {
        if (!guard && !oh.Inside(i, g.s.h, g.d.h, g.p.h, g.height)) continue;
        const Expr ih = oh.Get() * Int(g.s.h) + Int(i * g.d.h - g.p.h);
        for (int64_t j = 0; j < g.k.w; ++j) {
          if (!guard && !ow.Inside(j, g.s.w, g.d.w, g.p.w, g.width)) continue;
          const Expr iw = ow.Get() * Int(g.s.w) + Int(j * g.d.w - g.p.w);
          Expr tap = kir::Load(x, plane_in + ih * Int(g.width) + iw);
          if (guard) {
            const Expr in_image = kir::And(kir::And(kir::Ge(ih, Int(0)), kir::Lt(ih, Int(g.height))),
                                           kir::And(kir::Ge(iw, Int(0)), kir::Lt(iw, Int(g.width))));
            tap = kir::Select(in_image, tap, kir::FloatImm(0.0));
          }
          sum = sum + kir::Load(tap_values, Int((c * g.k.h + i) * g.k.w + j)) * tap;
        }
      }
    }
    const Expr at = (t * Int(g.out_h) + oh.Get()) * Int(g.out_w) + ow.Get();
    return kir::Store(out, at, ctx.Epilogue(sum, at, oh.Get() * Int(g.out_w) + ow.Get(), g.out_h * g.out_w));
  };
  std::vector<Stmt> rows;
  if (static_edges) {
    rows.push_back(
        PlaneWithStaticEdges(oh_var, ow_var, g.out_h, g.out_w, rows_inside, cols_inside,
                             [&](const AxisPosition& oh, const AxisPosition& ow) { return value(oh, ow, false); }));
  } else {
    rows.push_back(
        Loop(oh_var, Int(0), Int(g.out_h),
             Loop(ow_var, Int(0), Int(g.out_w), value({oh_var}, {ow_var}, true), kir::LoopKind::kVectorize)));
  }
  const Stmt load_taps = Loop(q, Int(0), Int(taps), kir::Store(tap_values, q, kir::Load(w, f * Int(taps) + q)));
  rows.insert(rows.begin(), load_taps);
  return Loop(t, Int(0), Int(g.batch * g.filters), kir::Allocate(tap_values, kir::Block(std::move(rows))),
              kir::LoopKind::kParallel);
}

// Convolutions (ungrouped, not Winograd's) with constant filters and few output positions
// per image (7x7 and 14x14; MobileNetV2 gained 2% with 14x14 included, nothing more with
// 28x28): Y^T = im2col(X)^T W^T with positions as the GEMM's rows, which the
// micro-kernels handle far better than as columns; 1x1 stride-1 layers by sgemm on the
// image itself, the others by sconv_t, W^T packed at compile time (PackGemmB); into a
// scratch block, then transposed into the output with the bias and the epilogue. Work items are (image, block of
// positions, block of filters on whole 32-column panels).
constexpr int64_t kNarrowPositions = 256;  // below this many positions, the narrow form
constexpr int64_t kMinNarrowRows = 24;     // positions a task's product has at least
// Blocks of a narrow convolution, images included (4: two per thread with two threads;
// at one thread the positions are packed, or W^T streamed, that many times).
constexpr int64_t kMaxNarrowBlocks = 4;

bool Narrow(const ConvGeometry& g, const LowerContext& ctx) {
  return g.groups == 1 && g.out_h * g.out_w < kNarrowPositions && g.channels > 0 && ctx.ConstantInput(1) != nullptr &&
         ctx.replace_input != nullptr;
}

Stmt NarrowConvolution(const ConvGeometry& g, LowerContext& ctx, const kir::Buffer& bias) {
  const kir::Buffer& x = ctx.inputs[0];
  const kir::Buffer& out = ctx.outputs[0];
  const int64_t plane = g.out_h * g.out_w;
  const int64_t taps = g.channels * g.k.h * g.k.w;  // K of the product
  const bool pointwise = g.k.h == 1 && g.k.w == 1 && g.s.h == 1 && g.s.w == 1 && g.p.h == 0 && g.p.w == 0;
  Tensor packed({PackedGemmBSize(taps, g.filters)}, DType::kFloat32);
  PackGemmB(taps, g.filters, ctx.ConstantInput(1)->data_as<float>(), taps, true, packed.data_as<float>());
  const kir::Buffer w = ctx.replace_input(1, ":packed_t", std::move(packed));

  // Blocks of the larger operand's dimension: filters (each block streams its part of
  // W^T once and packs the positions again; packing them costs about what multiplying
  // them by 30 filters does) or positions (each block packs only its own, and streams
  // all of W^T). Even counts of nearly equal blocks (EvenParts).
  const int64_t want = std::clamp<int64_t>(g.batch * g.filters * taps * plane / kMinTaskMacs, 1, kMaxTasks);
  // Images give the parallelism first: each extra block repeats work (packing or
  // streaming), so an image is cut in at most kMaxNarrowBlocks / batch.
  const int64_t per_image = std::min(CeilDivInt(want, g.batch), CeilDivInt(kMaxNarrowBlocks, g.batch));
  int64_t row_blocks = 1;
  int64_t filter_blocks = 1;
  if (g.filters >= plane) {
    filter_blocks = EvenParts(std::min(per_image, g.filters / kMinFilterBlock));
    if (filter_blocks == 1 && per_image > 1 && g.filters >= 2 * kPackedCols) filter_blocks = 2;
  } else {
    row_blocks = EvenParts(std::min(per_image, plane / kMinNarrowRows));
  }
  const int64_t block_positions = CeilDivInt(plane, row_blocks);
  row_blocks = CeilDivInt(plane, block_positions);
  const int64_t filter_block = std::min(g.filters, RoundUpTo(CeilDivInt(g.filters, filter_blocks), kPackedCols));
  filter_blocks = CeilDivInt(g.filters, filter_block);
  const int64_t items = g.batch * row_blocks * filter_blocks;
  const int64_t tasks = std::min(items, want);
  const kir::Buffer scratch =
      ctx.Scratch("positions_by_filters", ScalarType::kFloat32, tasks * block_positions * filter_block);

  const Expr task = kir::Var("task");
  const Expr item = kir::Var("item");
  const Expr image = item / Int(row_blocks * filter_blocks);
  const Expr q0 = item / Int(filter_blocks) % Int(row_blocks) * Int(block_positions);
  const Expr positions = row_blocks == 1 ? Int(plane) : kir::Min(Int(block_positions), Int(plane) - q0);
  const Expr f0 = filter_blocks == 1 ? Int(0) : item % Int(filter_blocks) * Int(filter_block);
  const Expr block_filters = filter_blocks == 1 ? Int(g.filters) : kir::Min(Int(filter_block), Int(g.filters) - f0);
  const Expr base = task * Int(block_positions * filter_block);
  // 1x1 stride-1 layers read the image itself as the product's rows (transposed); the
  // others pack them from it as the im2col matrix's rows (sconv_t).
  const Stmt product =
      pointwise
          ? lower_gemm::Sgemm(positions, block_filters, Int(g.channels),
                              {x, image * Int(g.channels * plane) + q0, plane, true},
                              {w, f0 * Int(g.channels), g.channels, false, true}, {scratch, base, filter_block, false})
          : ConvRoutineCall(kRoutineSconvT, block_filters, q0, positions, w, f0 * Int(taps), 0, x,
                            image * Int(g.channels * g.height * g.width), ImageOf(g), scratch, base, Int(filter_block));
  const Expr f = kir::Var("f");
  const Expr q = kir::Var("q");
  const Expr at = (image * Int(g.filters) + f) * Int(plane) + q0 + q;
  Expr value = kir::Load(scratch, base + q * Int(filter_block) + (f - f0));
  if (bias) value = value + kir::Load(bias, f);
  const Stmt transpose = Loop(f, f0, block_filters,
                              Loop(q, Int(0), positions, kir::Store(out, at, ctx.Epilogue(value, at, q0 + q, plane)),
                                   kir::LoopKind::kVectorize));
  const Expr first_item = task * Int(items) / Int(tasks);
  const Expr end_item = (task + Int(1)) * Int(items) / Int(tasks);
  return Loop(task, Int(0), Int(tasks), Loop(item, first_item, end_item - first_item, kir::Block({product, transpose})),
              kir::LoopKind::kParallel);
}

// float32: work items are a block of filters over a block of output positions of one
// image; an item calls sconv for each group, which packs its block of the im2col matrix
// straight from the image, then adds the bias and runs the fused epilogue on the block
// just computed (in cache). Filters known at compile time are packed into the routine's
// panels once, into the artifact (lda 0), instead of by every call.
Stmt GemmConvolution(const ConvGeometry& g, LowerContext& ctx, const kir::Buffer& bias) {
  const kir::Buffer& x = ctx.inputs[0];
  const kir::Buffer& out = ctx.outputs[0];
  const int64_t group_k = g.group_in * g.k.h * g.k.w;
  const int64_t in_plane = g.height * g.width;
  const int64_t out_plane = g.out_h * g.out_w;
  kir::Buffer filters = ctx.inputs[1];
  int64_t lda = group_k;
  int64_t group_stride = g.group_out * group_k;
  if (const Tensor* weight = ctx.ConstantInput(1); weight != nullptr && ctx.replace_input) {
    const int64_t packed_size = PackedFiltersSize(g.group_out, group_k);
    Tensor packed({g.groups * packed_size}, DType::kFloat32);
    for (int64_t grp = 0; grp < g.groups; ++grp) {
      PackFilters(g.group_out, group_k, weight->data_as<float>() + grp * g.group_out * group_k, group_k,
                  packed.data_as<float>() + grp * packed_size);
    }
    filters = ctx.replace_input(1, ":packed", std::move(packed));
    lda = 0;
    group_stride = packed_size;
  }

  const int64_t want = std::clamp<int64_t>(g.batch * g.filters * group_k * out_plane / kMinTaskMacs, 1, kMaxTasks);
  const int64_t max_panels = std::max<int64_t>(1, out_plane / kMinPanelCols);
  const int64_t per_image = CeilDivInt(want, g.batch);
  // Nearly equal panels (EvenParts): a panel's last micro-kernel tile may be partial.
  const int64_t panel_cols = CeilDivInt(out_plane, EvenParts(std::min(per_image, max_panels)));
  const int64_t panels = CeilDivInt(out_plane, panel_cols);
  int64_t filter_blocks = 1;
  if (g.groups == 1 && panels < per_image) {
    filter_blocks =
        EvenParts(std::min(CeilDivInt(per_image, panels), std::max<int64_t>(1, g.filters / kMinFilterBlock)));
    if (g.batch * panels * filter_blocks == 1 && g.filters >= 2 * kPackedRows) filter_blocks = 2;
  }
  // Blocks start on whole panels of packed filters.
  const int64_t filter_block = std::min(g.filters, RoundUpTo(CeilDivInt(g.filters, filter_blocks), kPackedRows));
  filter_blocks = CeilDivInt(g.filters, filter_block);
  const int64_t items = g.batch * panels * filter_blocks;
  // Tasks run consecutive items; tiny images share one.
  const int64_t tasks = std::min(items, want);

  const Expr task = kir::Var("task");
  const Expr item = kir::Var("item");
  const Expr image = item / Int(panels * filter_blocks);
  const Expr panel = item / Int(filter_blocks) % Int(panels);
  const Expr f0 = filter_blocks == 1 ? Int(0) : item % Int(filter_blocks) * Int(filter_block);
  const Expr block_filters = filter_blocks == 1 ? Int(g.filters) : kir::Min(Int(filter_block), Int(g.filters) - f0);
  const Expr col0 = panels == 1 ? Int(0) : panel * Int(panel_cols);
  const Expr cols = panels == 1 ? Int(out_plane) : kir::Min(Int(panel_cols), Int(out_plane) - col0);

  std::vector<Stmt> steps;
  {
    // Filter blocks only split ungrouped convolutions (groups == 1, f0 == 0 otherwise).
    const Expr grp = g.groups == 1 ? Int(0) : kir::Var("group");
    const Stmt call =
        ConvRoutineCall(kRoutineSconv, g.groups == 1 ? block_filters : Int(g.group_out), col0, cols, filters,
                        grp * Int(group_stride) + f0 * Int(group_k), lda, x,
                        (image * Int(g.channels) + grp * Int(g.group_in)) * Int(in_plane), ImageOf(g), out,
                        (image * Int(g.filters) + grp * Int(g.group_out) + f0) * Int(out_plane) + col0, Int(out_plane));
    steps.push_back(g.groups == 1 ? call : Loop(grp, Int(0), Int(g.groups), call));
  }
  if (bias || ctx.epilogue) {
    // The bias and fused elementwise consumers, on the block just computed (in cache).
    const Expr f = kir::Var("f");
    const Expr q = kir::Var("q");
    const Expr at = (image * Int(g.filters) + f) * Int(out_plane) + col0 + q;
    const Expr value = bias ? kir::Load(out, at) + kir::Load(bias, f) : kir::Load(out, at);
    steps.push_back(Loop(f, f0, block_filters,
                         Loop(q, Int(0), cols, kir::Store(out, at, ctx.Epilogue(value, at, col0 + q, out_plane)),
                              kir::LoopKind::kVectorize)));
  }
  const Expr first_item = task * Int(items) / Int(tasks);
  const Expr end_item = (task + Int(1)) * Int(items) / Int(tasks);
  return Loop(task, Int(0), Int(tasks), Loop(item, first_item, end_item - first_item, kir::Block(std::move(steps))),
              kir::LoopKind::kParallel);
}

// Library steps (CUDA): the im2col matrix of a chunk of images, then per group one batched
// GEMM over the chunk's images, W_g (group_out, group_taps) x col_g (group_taps, plane);
// 1x1 stride-1 unpadded layers read the images themselves as col. The bias and the fused
// epilogue are one pass over the output at the end. Chunks keep the im2col matrix under
// kMaxColumnElements (ResNet-18's stem at batch 64: 2 chunks).
constexpr int64_t kMaxColumnElements = int64_t{1} << 26;

// Images [first, first + images) of x as im2col rows (channel, kernel row, kernel column)
// by output positions, one element per iteration: image after image ([image][row][q]),
// or with `rows_outer` each row holding every image's positions ([row][image][q]).
Stmt Im2col(const ConvGeometry& g, const kir::Buffer& x, const kir::Buffer& col, int64_t first, int64_t images,
            bool rows_outer) {
  const int64_t plane = g.out_plane();
  const int64_t rows = g.channels * g.taps();
  return lower::ChunkedLoop(images * rows * plane, [&](const Expr& i) {
    const Expr q = i % Int(plane);
    const Expr row = rows_outer ? i / Int(images * plane) : i / Int(plane) % Int(rows);
    const Expr image = Int(first) + (rows_outer ? i / Int(plane) % Int(images) : i / Int(rows * plane));
    const Expr c = row / Int(g.taps());
    const Expr ki = row / Int(g.k.w) % Int(g.k.h);
    const Expr kj = row % Int(g.k.w);
    const Expr ih = q / Int(g.out_w) * Int(g.s.h) + ki * Int(g.d.h) - Int(g.p.h);
    const Expr iw = q % Int(g.out_w) * Int(g.s.w) + kj * Int(g.d.w) - Int(g.p.w);
    const Expr inside = kir::And(kir::And(kir::Ge(ih, Int(0)), kir::Lt(ih, Int(g.height))),
                                 kir::And(kir::Ge(iw, Int(0)), kir::Lt(iw, Int(g.width))));
    const Expr value = kir::Load(x, ((image * Int(g.channels) + c) * Int(g.height) + ih) * Int(g.width) + iw);
    return kir::Store(col, i, kir::Select(inside, value, kir::FloatImm(0.0)));
  });
}

// Images per chunk whose im2col matrix (and `extra` elements per image) stays under
// kMaxColumnElements.
int64_t LibraryChunk(const ConvGeometry& g, int64_t extra_per_image) {
  const int64_t per_image = g.channels * g.taps() * g.out_plane() + extra_per_image;
  return std::clamp<int64_t>(kMaxColumnElements / std::max<int64_t>(per_image, 1), 1, std::max<int64_t>(g.batch, 1));
}

Stmt LibraryConvolution(const ConvGeometry& g, const LowerContext& ctx, const kir::Buffer& bias) {
  const kir::Buffer& x = ctx.inputs[0];
  const kir::Buffer& w = ctx.inputs[1];
  const kir::Buffer& out = ctx.outputs[0];
  const int64_t plane = g.out_plane();
  const int64_t rows = g.channels * g.taps();  // every group's im2col rows, group after group
  const bool pointwise = g.k.h == 1 && g.k.w == 1 && g.s.h == 1 && g.s.w == 1 && g.p.h == 0 && g.p.w == 0;
  const int64_t chunk = pointwise ? g.batch : LibraryChunk(g, 0);
  const kir::Buffer col = pointwise ? x : ctx.Scratch("im2col", ScalarType::kFloat32, chunk * rows * plane);
  std::vector<Stmt> steps;
  for (int64_t first = 0; first < g.batch; first += chunk) {
    const int64_t images = std::min(chunk, g.batch - first);
    if (!pointwise) steps.push_back(Im2col(g, x, col, first, images, false));
    for (int64_t grp = 0; grp < g.groups; ++grp) {
      kir::GemmStepArgs gemm;
      gemm.a = w;
      gemm.b = col;
      gemm.c = out;
      gemm.m = g.group_out;
      gemm.n = plane;
      gemm.k = g.group_taps();
      gemm.batch = images;
      gemm.a_offset = grp * g.group_out * g.group_taps();
      gemm.lda = g.group_taps();
      gemm.b_offset = pointwise ? (first * g.channels + grp * g.group_in) * plane : grp * g.group_taps() * plane;
      gemm.ldb = plane;
      gemm.stride_b = rows * plane;
      gemm.c_offset = (first * g.filters + grp * g.group_out) * plane;
      gemm.ldc = plane;
      gemm.stride_c = g.filters * plane;
      steps.push_back(kir::GemmStep(gemm));
    }
  }
  if (bias || ctx.epilogue) {
    steps.push_back(lower::ChunkedLoop(g.batch * g.filters * plane, [&](const Expr& i) {
      const Expr value =
          bias ? kir::Load(out, i) + kir::Load(bias, i / Int(plane) % Int(g.filters)) : kir::Load(out, i);
      return kir::Store(out, i, ctx.Epilogue(value, i, i % Int(plane), plane));
    }));
  }
  return kir::Block(std::move(steps));
}

Stmt ConvolutionLower(const Attrs& attrs, LowerContext& ctx) {
  const ConvGeometry g = MakeConvGeometry(attrs, ctx);
  if (NumElements(ctx.output_shapes[0]) == 0) return kir::Block({});
  const kir::Buffer bias = attrs.Bool("no_bias") ? nullptr : ctx.inputs[2];
  // float64 sums in the reference's order give its results.
  if (ctx.output_types[0] != DType::kFloat32) return DirectConvolution(g, ctx, bias, ScalarType::kFloat64);
  // Depthwise: each filter reads one channel; a GEMM per group would be a vector product.
  if (g.group_in == 0) return DirectConvolution(g, ctx, bias, ScalarType::kFloat32);
  if (g.group_in == 1 && g.groups > 1) return UnrolledConvolution(g, ctx, bias);
  if (ctx.LibrarySteps()) return LibraryConvolution(g, ctx, bias);
  if (WinogradApplies(g, ctx)) return WinogradConvolution(g, ctx, bias);
  if (Narrow(g, ctx)) return NarrowConvolution(g, ctx, bias);
  return GemmConvolution(g, ctx, bias);
}

// Max, average and sum pooling with small windows: every output's taps written out as one
// expression (a chain of maxima or a sum), interior rows and columns looped and
// vectorized, edges as statements of their own with the taps outside the input left
// out and the divisor known (PlaneWithStaticEdges), as the depthwise convolution does.
// ResNet's 3x3 stride-2 max pooling ran 1.96 ms in the generic form below (a window
// loop per output), about 10 times ONNX Runtime's.
constexpr int64_t kMaxUnrolledPoolTaps = 64;

bool UnrolledPoolingApplies(const std::string& type, const PoolWindow& win, const Shape& xs, const Shape& ys) {
  if (type != "max" && type != "avg" && type != "sum") return false;
  if (win.kernel.h * win.kernel.w > kMaxUnrolledPoolTaps) return false;
  return StaticEdgesFit(ys[2], ys[3], Interior(xs[2], ys[2], win.kernel.h, win.stride.h, 1, win.pad.h),
                        Interior(xs[3], ys[3], win.kernel.w, win.stride.w, 1, win.pad.w));
}

// The taps of one pooling window that read inside a height x width plane (row-major,
// as offsets in the plane), and average pooling's divisor: the taps inside, or with the
// padding counted the window's length clipped as the reference clips it (at most to
// size + pad).
struct WindowTaps {
  std::vector<Expr> offsets;
  int64_t divisor = 0;
};
WindowTaps TapsOf(const PoolWindow& win, bool include_pad, const AxisPosition& oh, const AxisPosition& ow,
                  int64_t height, int64_t width) {
  const auto padded_length = [](const AxisPosition& o, int64_t kernel, int64_t stride, int64_t pad, int64_t size) {
    if (o.fixed < 0) return kernel;
    const int64_t start = o.fixed * stride - pad;
    return std::max<int64_t>(std::min(start + kernel, size + pad) - start, 0);
  };
  WindowTaps taps;
  int64_t inside_h = 0, inside_w = 0;
  for (int64_t i = 0; i < win.kernel.h; ++i) inside_h += oh.Inside(i, win.stride.h, 1, win.pad.h, height);
  for (int64_t j = 0; j < win.kernel.w; ++j) inside_w += ow.Inside(j, win.stride.w, 1, win.pad.w, width);
  for (int64_t i = 0; i < win.kernel.h; ++i) {
    if (!oh.Inside(i, win.stride.h, 1, win.pad.h, height)) continue;
    const Expr ih = oh.Get() * Int(win.stride.h) + Int(i - win.pad.h);
    for (int64_t j = 0; j < win.kernel.w; ++j) {
      if (!ow.Inside(j, win.stride.w, 1, win.pad.w, width)) continue;
      taps.offsets.push_back(ih * Int(width) + (ow.Get() * Int(win.stride.w) + Int(j - win.pad.w)));
    }
  }
  taps.divisor = include_pad ? padded_length(oh, win.kernel.h, win.stride.h, win.pad.h, height) *
                                   padded_length(ow, win.kernel.w, win.stride.w, win.pad.w, width)
                             : inside_h * inside_w;
  return taps;
}

Stmt UnrolledPooling(const std::string& type, bool include_pad, const PoolWindow& win, LowerContext& ctx) {
  const Shape& xs = ctx.input_shapes[0];
  const Shape& ys = ctx.output_shapes[0];
  const int64_t height = xs[2], width = xs[3], out_h = ys[2], out_w = ys[3];
  const ScalarType t = lower::ComputeType(ctx.output_types[0]);
  const Expr plane = kir::Var("plane");
  const Expr oh_var = kir::Var("oh");
  const Expr ow_var = kir::Var("ow");
  const auto value = [&](const AxisPosition& oh, const AxisPosition& ow) {
    Expr result = type == "max" ? kir::Const(LowestOf(ctx.output_types[0]), t) : kir::Const(0, t);
    const WindowTaps taps = TapsOf(win, include_pad, oh, ow, height, width);
    for (const Expr& offset : taps.offsets) {
      const Expr v = lower::LoadAs(ctx.inputs[0], plane * Int(height * width) + offset, t);
      // A NaN never replaces the maximum (the reference's rule).
      result = type == "max" ? kir::Select(kir::Gt(v, result), v, result) : result + v;
    }
    if (type == "avg") result = taps.divisor > 0 ? result / kir::Cast(t, Int(taps.divisor)) : kir::Const(0, t);
    const Expr out_at = (plane * Int(out_h) + oh.Get()) * Int(out_w) + ow.Get();
    return lower::StoreFrom(
        ctx.outputs[0], out_at,
        ctx.epilogue ? ctx.Epilogue(lower::AsStored(result, ctx.output_types[0]), out_at, ow.Get(), out_w) : result);
  };
  return Loop(plane, Int(0), Int(xs[0] * xs[1]),
              PlaneWithStaticEdges(oh_var, ow_var, out_h, out_w,
                                   Interior(height, out_h, win.kernel.h, win.stride.h, 1, win.pad.h),
                                   Interior(width, out_w, win.kernel.w, win.stride.w, 1, win.pad.w), value),
              kir::LoopKind::kParallel);
}

// --- Pooling otherwise (Lp pooling, large windows): one (image, channel) plane per
// parallel iteration, each window clipped as the reference clips it.
Stmt PoolingLower(const Attrs& attrs, LowerContext& ctx) {
  const Shape& xs = ctx.input_shapes[0];
  const Shape& ys = ctx.output_shapes[0];
  if (NumElements(ys) == 0) return kir::Block({});
  const int64_t height = xs[2], width = xs[3];
  const PoolWindow win = PoolingWindow(attrs, xs);
  const std::string& type = attrs.Str("pool_type");
  const bool include_pad = attrs.IsNone("count_include_pad") || attrs.Bool("count_include_pad");
  if (UnrolledPoolingApplies(type, win, xs, ys)) return UnrolledPooling(type, include_pad, win, ctx);
  if (UnrolledPoolingApplies(type, win, xs, ys)) return UnrolledPooling(type, include_pad, win, ctx);
  const int64_t p_value = attrs.OptInt("p_value").value_or(1);
  const ScalarType t = lower::ComputeType(ctx.output_types[0]);
  const kir::Buffer acc = ctx.builder->AddLocal("acc", t, 1);
  const Expr plane = kir::Var("plane");
  const Expr oh = kir::Var("oh");
  const Expr ow = kir::Var("ow");
  const Expr h = kir::Var("h");
  const Expr w = kir::Var("w");
  const Expr h0 = oh * Int(win.stride.h) - Int(win.pad.h);
  const Expr w0 = ow * Int(win.stride.w) - Int(win.pad.w);
  const Expr h1 = kir::Min(h0 + Int(win.kernel.h), Int(height + win.pad.h));
  const Expr w1 = kir::Min(w0 + Int(win.kernel.w), Int(width + win.pad.w));
  const Expr padded_count = kir::Max(h1 - h0, Int(0)) * kir::Max(w1 - w0, Int(0));
  const Expr hs = kir::Max(h0, Int(0));
  const Expr ws = kir::Max(w0, Int(0));
  const Expr rows = kir::Max(kir::Min(h1, Int(height)) - hs, Int(0));
  const Expr cols = kir::Max(kir::Min(w1, Int(width)) - ws, Int(0));
  const Expr zero = Int(0);
  const Expr a = kir::Load(acc, zero);
  const Expr v = lower::LoadAs(ctx.inputs[0], (plane * Int(height) + h) * Int(width) + w, t);

  Expr init = kir::Const(0, t);
  Expr update = a + v;
  Expr result = a;
  if (type == "max") {
    // An empty window gives the dtype's lowest value; a NaN never replaces the maximum.
    init = kir::Const(LowestOf(ctx.output_types[0]), t);
    update = kir::Select(kir::Gt(v, a), v, a);
  } else if (type == "lp") {
    update = a + (p_value == 1 ? v : p_value == 2 ? v * v : v * v * v);
    if (p_value == 2) result = kir::Sqrt(a);
    // cbrt from pow: the sum of cubes may be negative.
    const Expr third = kir::FloatImm(1.0 / 3.0, t);
    if (p_value == 3) result = kir::Select(kir::Lt(a, kir::Const(0, t)), -kir::Pow(-a, third), kir::Pow(a, third));
  } else if (type == "avg") {
    const Expr divisor = include_pad ? padded_count : rows * cols;
    result = kir::Select(kir::Gt(divisor, zero), a / kir::Cast(t, divisor), kir::Const(0, t));
  }
  const Expr out_at = (plane * Int(ys[2]) + oh) * Int(ys[3]) + ow;
  const Stmt window = kir::Block({
      kir::Store(acc, zero, init),
      Loop(h, hs, rows, Loop(w, ws, cols, kir::Store(acc, zero, update))),
      lower::StoreFrom(
          ctx.outputs[0], out_at,
          ctx.epilogue ? ctx.Epilogue(lower::AsStored(result, ctx.output_types[0]), out_at, ow, ys[3]) : result),
  });
  return Loop(plane, zero, Int(xs[0] * xs[1]),
              kir::Allocate(acc, Loop(oh, zero, Int(ys[2]), Loop(ow, zero, Int(ys[3]), window))),
              kir::LoopKind::kParallel);
}

// --- BatchNorm: one channel per parallel iteration. Statistics are float64 sums in the
// reference's order (two passes: mean, then squared deviations); the task that owns a
// channel also writes its moving statistics in place (training) and its mean/var outputs.
// Normalization runs in the compute type as (x - mean) * (gamma / sqrt(var + eps)) + beta.
Stmt BatchNormLower(const Attrs& attrs, LowerContext& ctx) {
  const ChannelView view = ChannelViewOf(attrs, ctx.input_shapes[0]);
  const bool batch_stats = ctx.is_train && !attrs.Bool("use_global_stats");
  const double eps = attrs.Float("eps");
  const double momentum = attrs.Float("momentum");
  const ScalarType f64 = ScalarType::kFloat64;
  const ScalarType t = lower::ComputeType(ctx.output_types[0]);
  const kir::Buffer& x = ctx.inputs[0];
  const kir::Buffer& moving_mean = ctx.inputs[3];
  const kir::Buffer& moving_var = ctx.inputs[4];
  // stat: mean, variance, 1 / sqrt(variance + eps).
  const kir::Buffer stat = ctx.builder->AddLocal("stat", f64, 3);
  const Expr mean = kir::Load(stat, Int(0));
  const Expr var = kir::Load(stat, Int(1));
  const Expr inv_std = kir::Load(stat, Int(2));
  const Expr c = kir::Var("c");
  // On CUDA with batch statistics, a block per channel (BatchStatistics' sums as block
  // reductions).
  const ChannelLoops loops(view, c, batch_stats && ctx.target == LowerTarget::kCuda);
  const Expr xd = lower::LoadAs(x, loops.at, f64);
  const auto f64_const = [&](double value) { return kir::FloatImm(value, f64); };

  std::vector<Stmt> steps;
  if (batch_stats) {
    const auto update = [&](const kir::Buffer& moving, const Expr& batch) {
      const Expr blended = lower::LoadAs(moving, c, f64) * f64_const(momentum) + batch * f64_const(1 - momentum);
      return lower::StoreFrom(moving, c, blended);
    };
    steps = BatchStatistics(stat, loops, xd);
    steps.push_back(update(moving_mean, mean));
    steps.push_back(update(moving_var, var));
  } else {
    steps.push_back(kir::Store(stat, Int(0), lower::LoadAs(moving_mean, c, f64)));
    steps.push_back(kir::Store(stat, Int(1), lower::LoadAs(moving_var, c, f64)));
  }
  steps.push_back(kir::Store(stat, Int(2), f64_const(1) / kir::Sqrt(var + f64_const(eps))));
  if (ctx.outputs.size() == 3) {
    steps.push_back(lower::StoreFrom(ctx.outputs[1], c, mean));
    steps.push_back(lower::StoreFrom(ctx.outputs[2], c, inv_std));
  }
  const Expr gamma = attrs.Bool("fix_gamma") ? f64_const(1) : lower::LoadAs(ctx.inputs[1], c, f64);
  const Expr scale = kir::Cast(t, inv_std * gamma);
  const Expr normalized =
      (lower::LoadAs(x, loops.at, t) - kir::Cast(t, mean)) * scale + lower::LoadAs(ctx.inputs[2], c, t);
  steps.push_back(loops.Over(lower::StoreFrom(ctx.outputs[0], loops.at, normalized)));
  return Loop(c, Int(0), Int(view.channels), kir::Allocate(stat, kir::Block(std::move(steps))),
              kir::LoopKind::kParallel);
}

// --- Dropout: a copy when inactive; otherwise each mask element draws u in [0, 1) from
// the counter-based generator (deterministic per node seed and element, but not the
// reference's mt19937_64 stream) and keeps its elements, scaled, when u >= p.
Stmt DropoutLower(const Attrs& attrs, LowerContext& ctx) {
  const Shape& shape = ctx.input_shapes[0];
  const kir::Buffer& x = ctx.inputs[0];
  const kir::Buffer& out = ctx.outputs[0];
  const double p = attrs.Float("p");
  const bool active = ctx.is_train || attrs.Str("mode") == "always";
  if (!active || p == 0) {
    return lower::ChunkedLoop(NumElements(shape), [&](const Expr& i) { return kir::Store(out, i, kir::Load(x, i)); });
  }
  const ScalarType t = lower::ComputeType(ctx.output_types[0]);
  const int64_t ndim = static_cast<int64_t>(shape.size());
  Shape mask_shape = shape;
  for (int64_t a : attrs.Ints("axes")) mask_shape[op_util::NormalizeAxis(a, ndim, "attribute 'axes'")] = 1;
  const Expr scale = kir::FloatImm(p < 1 ? 1.0 / (1.0 - p) : 0.0, t);
  const auto element = [&](const Expr& keep, const Expr& at) {
    return lower::StoreFrom(out, at, kir::Select(keep, lower::LoadAs(x, at, t) * scale, kir::Const(0, t)));
  };
  // _dropout_step: step k's draws start at element k * mask_size of the stream.
  const int64_t mask_size = NumElements(mask_shape);
  const Expr stream_offset = ctx.inputs.size() > 1 ? kir::Load(ctx.inputs[1], Int(0)) * Int(mask_size) : Expr();
  return lower_random::UniformLoop(
      ctx, mask_size, t, lower_random::Interval::kHalfOpen,
      [&](const Expr& m, const Expr& u) {
        const Expr keep = kir::Ge(u, kir::FloatImm(p, t));
        if (mask_shape == shape) return element(keep, m);
        // The data elements that share mask element m: its index on the kept axes, every
        // index on the shared ones.
        std::vector<Expr> index(ndim);
        int64_t mask_stride = 1;
        for (int64_t d = ndim - 1; d >= 0; --d) {
          if (mask_shape[d] == shape[d]) {
            index[d] = m / Int(mask_stride) % Int(shape[d]);
            mask_stride *= shape[d];
          } else {
            index[d] = kir::Var("s" + std::to_string(d));
          }
        }
        Stmt body = element(keep, lower::FlatIndex(index, shape));
        for (int64_t d = ndim - 1; d >= 0; --d) {
          if (mask_shape[d] != shape[d]) body = Loop(index[d], Int(0), Int(shape[d]), body);
        }
        return body;
      },
      stream_offset);
}

// ----------------------------------------------------------------------------- Backward kernels

// The output gradient of a convolution must have the forward output's shape.
void CheckConvOutGrad(const Attrs& attrs, const ShapeSlot& data, const ShapeSlot& out_grad) {
  if (!data || !out_grad) return;
  std::vector<ShapeSlot> in = {data, std::nullopt, std::nullopt};
  std::vector<ShapeSlot> out = {std::nullopt};
  InferConvolutionShape(attrs, in, out);
  if (*out[0] != *out_grad) ShapeError("input 'out_grad'", ShapeToString(*out[0]), *out_grad);
}

// _backward_Convolution_data (out_grad, data, weight): the data gradient; `data` gives
// its shape only.
void InferConvDataGradShape(const Attrs& attrs, std::vector<ShapeSlot>& in, std::vector<ShapeSlot>& out) {
  if (!in[1] && out[0]) in[1] = out[0];
  if (!in[1]) return;
  CheckConvOutGrad(attrs, in[1], in[0]);
  AssignShape(out[0], CheckData4D(*in[1]), "output");
}

// _backward_Convolution_weight (out_grad, data): the weight gradient.
void InferConvWeightGradShape(const Attrs& attrs, std::vector<ShapeSlot>& in, std::vector<ShapeSlot>& out) {
  if (!in[1]) return;
  CheckConvOutGrad(attrs, in[1], in[0]);
  const Pair k = SpatialPair(attrs, "kernel", 1);
  AssignShape(out[0], {attrs.Int("num_filter"), (*in[1])[1] / attrs.Int("num_group"), k.h, k.w}, "output");
}

// Every product of the forward, scattered back: dx[n, c, ih, iw] += gy[n, f, oh, ow] * w[f, c, i, j].
void ConvDataGradReference(const Attrs& attrs, std::span<const Tensor> in, std::span<Tensor> out, const RefContext&) {
  const ConvGeometry g = ConvGeometryOf(attrs, in[1].shape(), in[0].shape());
  const std::vector<double> gy = in[0].ToDoubles();
  const std::vector<double> w = in[2].ToDoubles();
  std::vector<double> dx(static_cast<size_t>(NumElements(in[1].shape())), 0.0);
  int64_t flat = 0;
  for (int64_t n = 0; n < g.batch; ++n) {
    for (int64_t f = 0; f < g.filters; ++f) {
      const int64_t first_channel = f / g.group_out * g.group_in;
      for (int64_t oh = 0; oh < g.out_h; ++oh) {
        for (int64_t ow = 0; ow < g.out_w; ++ow) {
          const double gv = gy[flat++];
          for (int64_t c = 0; c < g.group_in; ++c) {
            for (int64_t i = 0; i < g.k.h; ++i) {
              const int64_t ih = oh * g.s.h - g.p.h + i * g.d.h;
              if (ih < 0 || ih >= g.height) continue;
              for (int64_t j = 0; j < g.k.w; ++j) {
                const int64_t iw = ow * g.s.w - g.p.w + j * g.d.w;
                if (iw < 0 || iw >= g.width) continue;
                dx[((n * g.channels + first_channel + c) * g.height + ih) * g.width + iw] +=
                    gv * w[((f * g.group_in + c) * g.k.h + i) * g.k.w + j];
              }
            }
          }
        }
      }
    }
  }
  for (size_t e = 0; e < dx.size(); ++e) out[0].SetDouble(static_cast<int64_t>(e), dx[e]);
}

// dw[f, c, i, j] = sum over n, oh, ow of gy[n, f, oh, ow] * x[n, c, ih, iw].
void ConvWeightGradReference(const Attrs& attrs, std::span<const Tensor> in, std::span<Tensor> out, const RefContext&) {
  const ConvGeometry g = ConvGeometryOf(attrs, in[1].shape(), in[0].shape());
  const std::vector<double> gy = in[0].ToDoubles();
  const std::vector<double> x = in[1].ToDoubles();
  int64_t flat = 0;
  for (int64_t f = 0; f < g.filters; ++f) {
    const int64_t first_channel = f / g.group_out * g.group_in;
    for (int64_t c = 0; c < g.group_in; ++c) {
      for (int64_t i = 0; i < g.k.h; ++i) {
        for (int64_t j = 0; j < g.k.w; ++j) {
          double sum = 0;
          for (int64_t n = 0; n < g.batch; ++n) {
            for (int64_t oh = 0; oh < g.out_h; ++oh) {
              const int64_t ih = oh * g.s.h - g.p.h + i * g.d.h;
              if (ih < 0 || ih >= g.height) continue;
              for (int64_t ow = 0; ow < g.out_w; ++ow) {
                const int64_t iw = ow * g.s.w - g.p.w + j * g.d.w;
                if (iw < 0 || iw >= g.width) continue;
                sum += gy[((n * g.filters + f) * g.out_h + oh) * g.out_w + ow] *
                       x[((n * g.channels + first_channel + c) * g.height + ih) * g.width + iw];
              }
            }
          }
          out[0].SetDouble(flat++, sum);
        }
      }
    }
  }
}

// Other dtypes: the data gradient gathered per input element (no two iterations write
// one element): the taps (f, i, j) whose output position oh = (ih + pad - i * dilate) /
// stride is whole and inside the output. float64 sums; one (image, channel) plane per task.
Stmt ConvDataGradLoops(const ConvGeometry& g, LowerContext& ctx) {
  const ScalarType f64 = ScalarType::kFloat64;
  const kir::Buffer acc = ctx.builder->AddLocal("acc", f64, 1);
  const Expr plane = kir::Var("plane"), ih = kir::Var("ih"), iw = kir::Var("iw");
  const Expr fl = kir::Var("fl"), i = kir::Var("i"), j = kir::Var("j");
  const Expr n = plane / Int(g.channels);
  const Expr ch = plane % Int(g.channels);
  const Expr f = ch / Int(g.group_in) * Int(g.group_out) + fl;
  const Expr th = ih + Int(g.p.h) - i * Int(g.d.h);
  const Expr tw = iw + Int(g.p.w) - j * Int(g.d.w);
  const auto hits = [](const Expr& t, int64_t stride, int64_t out) {
    return kir::And(kir::And(kir::Ge(t, Int(0)), kir::Eq(t % Int(stride), Int(0))), kir::Lt(t / Int(stride), Int(out)));
  };
  const Expr gv = lower::LoadAs(
      ctx.inputs[0], ((n * Int(g.filters) + f) * Int(g.out_h) + th / Int(g.s.h)) * Int(g.out_w) + tw / Int(g.s.w), f64);
  const Expr wv = lower::LoadAs(ctx.inputs[2],
                                ((f * Int(g.group_in) + ch % Int(g.group_in)) * Int(g.k.h) + i) * Int(g.k.w) + j, f64);
  const Stmt tap = kir::If(hits(tw, g.s.w, g.out_w), kir::Store(acc, Int(0), kir::Load(acc, Int(0)) + gv * wv));
  const Stmt taps =
      Loop(fl, Int(0), Int(g.group_out),
           Loop(i, Int(0), Int(g.k.h), kir::If(hits(th, g.s.h, g.out_h), Loop(j, Int(0), Int(g.k.w), tap))));
  const Stmt element = kir::Block({
      kir::Store(acc, Int(0), kir::Const(0, f64)),
      taps,
      lower::StoreFrom(ctx.outputs[0], (plane * Int(g.height) + ih) * Int(g.width) + iw, kir::Load(acc, Int(0))),
  });
  return Loop(plane, Int(0), Int(g.batch * g.channels),
              kir::Allocate(acc, Loop(ih, Int(0), Int(g.height), Loop(iw, Int(0), Int(g.width), element))),
              kir::LoopKind::kParallel);
}

// Other dtypes: the weight gradient, one filter per task, each tap a float64 sum over
// the output positions that read inside the data (ValidSpan: no bounds test per element).
Stmt ConvWeightGradLoops(const ConvGeometry& g, LowerContext& ctx) {
  const ScalarType f64 = ScalarType::kFloat64;
  const kir::Buffer acc = ctx.builder->AddLocal("acc", f64, 1);
  const Expr f = kir::Var("f"), c = kir::Var("c"), i = kir::Var("i"), j = kir::Var("j");
  const Expr n = kir::Var("n"), oh = kir::Var("oh"), ow = kir::Var("ow");
  const Expr first_channel = f / Int(g.group_out) * Int(g.group_in);
  const Span rows = ValidSpan(i * Int(g.d.h) - Int(g.p.h), g.s.h, g.height, g.out_h);
  const Span cols = ValidSpan(j * Int(g.d.w) - Int(g.p.w), g.s.w, g.width, g.out_w);
  const Expr ih = oh * Int(g.s.h) - Int(g.p.h) + i * Int(g.d.h);
  const Expr iw = ow * Int(g.s.w) - Int(g.p.w) + j * Int(g.d.w);
  const Expr gv = lower::LoadAs(ctx.inputs[0], ((n * Int(g.filters) + f) * Int(g.out_h) + oh) * Int(g.out_w) + ow, f64);
  const Expr xv = lower::LoadAs(
      ctx.inputs[1], ((n * Int(g.channels) + first_channel + c) * Int(g.height) + ih) * Int(g.width) + iw, f64);
  const Stmt tap = kir::Block({
      kir::Store(acc, Int(0), kir::Const(0, f64)),
      Loop(n, Int(0), Int(g.batch),
           Loop(oh, rows.first, rows.extent,
                Loop(ow, cols.first, cols.extent, kir::Store(acc, Int(0), kir::Load(acc, Int(0)) + gv * xv)))),
      lower::StoreFrom(ctx.outputs[0], ((f * Int(g.group_in) + c) * Int(g.k.h) + i) * Int(g.k.w) + j,
                       kir::Load(acc, Int(0))),
  });
  return Loop(f, Int(0), Int(g.filters),
              kir::Allocate(
                  acc, Loop(c, Int(0), Int(g.group_in), Loop(i, Int(0), Int(g.k.h), Loop(j, Int(0), Int(g.k.w), tap)))),
              kir::LoopKind::kParallel);
}

// --- Convolution's backward kernels in float32: GEMMs through the sgemm routine.
//
// Per group, with K = group_in x kernel_h x kernel_w taps and P output positions:
//   weight gradient dW[f, K] = sum over images of gy[f, P] im2col(x)[K, P]^T;
//   data gradient   dcol[K, P] = W[f, K]^T gy[f, P], scattered back into dx (col2im:
//                   the row of tap (c, i, j) adds into channel c's plane).
// Work items own blocks of the im2col matrix's rows (c, i, j): whole kernel rows (c, i)
// (weight gradient) or whole channels (data gradient, whose items own dx's planes), so
// that no two items write one element. An item works through chunks of
// whole output rows of one image or, where an image has fewer than kMinGemmPositions
// positions, of several whole images, whose out_grad rows it copies side by side so that
// one product spans them (with 7x7 planes a product per image repacked all of W for 49
// positions: ResNet-18's last layers' data gradient ran at 55 GFLOP/s). A chunk's im2col
// or dcol block lives in per-task scratch of about kColBudget floats. Each channel's tap
// columns j are unrolled, so that the columns a tap reads outside the image are known at
// compile time. 1x1 stride-1 unpadded layers with whole images per chunk read x and
// write dx in place.
constexpr int64_t kMaxBackwardTasks = 16;   // each task has scratch of its own
constexpr int64_t kColBudget = 128 * 1024;  // floats of a task's im2col or dcol block
constexpr int64_t kMinGemmPositions = 256;  // positions of a chunk, where images allow
constexpr int64_t kMinWeightGradRows = 64;  // taps of a weight-gradient block (the product's columns)
constexpr int64_t kMinWeightGradFilters = 16;
constexpr int64_t kMaxWeightGradFilterBlocks = 2;  // each repeats the whole im2col
constexpr int64_t kMinDataGradChannels = 8;        // channels of a data-gradient block

Expr Strided(const Expr& index, int64_t stride) {
  return stride == 1 ? index : index * Int(stride);
}

// ceil(a / b) for b > 0 and a of either sign.
int64_t CeilDivSigned(int64_t a, int64_t b) {
  return a >= 0 ? (a + b - 1) / b : -((-a) / b);
}

bool PointwiseConv(const ConvGeometry& g) {
  return g.k.h == 1 && g.k.w == 1 && g.s.h == 1 && g.s.w == 1 && g.p.h == 0 && g.p.w == 0;
}

int64_t BackwardTasksWanted(const ConvGeometry& g) {
  const int64_t macs = g.batch * g.filters * g.group_taps() * g.out_plane();
  return std::clamp<int64_t>(macs / kMinTaskMacs, 1, kMaxBackwardTasks);
}

// Images per chunk where an image has few positions (the im2col or dcol block of `taps`
// rows, and `copied` rows of out_grad beside it, within the budget), else 1.
int64_t ChunkImages(const ConvGeometry& g, int64_t taps, int64_t copied) {
  const int64_t plane = g.out_plane();
  if (plane >= kMinGemmPositions || g.batch == 1) return 1;
  return std::clamp<int64_t>(std::min(CeilDivInt(kMinGemmPositions, plane), kColBudget / ((taps + copied) * plane)), 1,
                             g.batch);
}

// The chunks an item works through: images [n0, n0 + count) whole (images > 1), or output
// rows [oh0, oh0 + out_rows) of image n0. `ld` is the row stride of its scratch blocks.
struct Chunking {
  int64_t images = 1, rows = 0, row_chunks = 1, image_blocks = 1, ld = 0;
  Expr n0, count, oh0, out_rows;  // of the chunk (image block, row chunk) set by At
  void At(const ConvGeometry& g, const Expr& image_block, const Expr& row_chunk) {
    n0 = images == 1 ? image_block : image_block * Int(images);
    count = g.batch % images == 0 ? Int(images) : kir::Min(Int(images), Int(g.batch) - n0);
    oh0 = row_chunks == 1 ? Int(0) : row_chunk * Int(rows);
    out_rows = row_chunks == 1 ? Int(g.out_h) : kir::Min(Int(rows), Int(g.out_h) - oh0);
  }
};
Chunking PlanChunks(const ConvGeometry& g, int64_t taps, int64_t images, bool whole_images) {
  Chunking c;
  c.images = images;
  c.rows = images > 1 || whole_images ? g.out_h : std::clamp<int64_t>(kColBudget / (taps * g.out_w), 1, g.out_h);
  c.row_chunks = CeilDivInt(g.out_h, c.rows);
  c.image_blocks = CeilDivInt(g.batch, images);
  c.ld = images * c.rows * g.out_w;
  return c;
}

// The output columns [first, end) where tap j reads inside the image (known at compile time).
std::pair<int64_t, int64_t> TapColumns(const ConvGeometry& g, int64_t j) {
  const int64_t offset = j * g.d.w - g.p.w;
  const int64_t first = std::clamp<int64_t>(CeilDivSigned(-offset, g.s.w), 0, g.out_w);
  const int64_t end = std::clamp<int64_t>(CeilDivSigned(g.width - offset, g.s.w), first, g.out_w);
  return {first, end};
}

// For every kernel row (c, i) of a block of `pairs` of them from `first_pair` (channel c
// of the group's, kernel row i), and each tap j of the row, unrolled (the columns a tap
// reads inside the image depend on j only; unrolling the rows too made LeNet's step
// compile in 5.8 s instead of 0.8): body(c, tap row in the block, i, j), the tap row being
// (pair - first_pair) kw + j.
Stmt ForEachTap(const ConvGeometry& g, const Expr& first_pair, const Expr& pairs,
                const std::function<Stmt(const Expr& c, const Expr& row, const Expr& i, int64_t j)>& body) {
  const Expr pair = kir::Var("pair");
  const Expr c = (first_pair + pair) / Int(g.k.h), i = (first_pair + pair) % Int(g.k.h);
  std::vector<Stmt> taps;
  for (int64_t j = 0; j < g.k.w; ++j) taps.push_back(body(c, pair * Int(g.k.w) + Int(j), i, j));
  return Loop(pair, Int(0), pairs, kir::Block(std::move(taps)));
}

// Copies the out_grad rows [f0, f0 + filters) of the group's filters of a chunk's images
// side by side: block[f][img P + q] = gy[n0 + img][first_filter + f][q].
Stmt CopyOutGradBlock(const ConvGeometry& g, const kir::Buffer& gy, const Chunking& chunk, const Expr& first_filter,
                      const Expr& filters, const kir::Buffer& block, const Expr& block_at) {
  const int64_t plane = g.out_plane();
  const Expr f = kir::Var("f"), img = kir::Var("img"), q = kir::Var("q");
  return Loop(
      f, Int(0), filters,
      Loop(img, Int(0), chunk.count,
           Loop(q, Int(0), Int(plane),
                kir::Store(block, (block_at + f * Int(chunk.ld) + img * Int(plane)) + q,
                           kir::Load(gy, ((chunk.n0 + img) * Int(g.filters) + first_filter + f) * Int(plane) + q)),
                kir::LoopKind::kVectorize)));
}

// The weight gradient. Items are (group, block of kernel rows (c, i), block of filters):
// filters split only where the kernel rows are too few to (each filter block repeats the
// im2col; ResNet's 7x7 stem, 3 channels, splits its 21 kernel rows). Per chunk: im2col of
// the item's taps into its scratch, then one product dW[filters, taps] (+)= gy[filters,
// chunk] col^T.
Stmt ConvWeightGradGemm(const ConvGeometry& g, LowerContext& ctx) {
  const kir::Buffer& gy = ctx.inputs[0];
  const kir::Buffer& x = ctx.inputs[1];
  const kir::Buffer& dw = ctx.outputs[0];
  const int64_t group_k = g.group_taps();
  const int64_t plane = g.out_plane();
  const int64_t in_plane = g.in_plane();

  const int64_t want = BackwardTasksWanted(g);
  const int64_t per_group = CeilDivInt(want, g.groups);
  const int64_t pairs = g.group_in * g.k.h;  // kernel rows (c, i)
  const int64_t row_blocks = EvenParts(std::min(per_group, group_k / kMinWeightGradRows));
  // Blocks of kernel rows; their taps fill the product's 16-column groups where that
  // keeps the blocks an even count of nearly equal ones.
  int64_t block_pairs = CeilDivInt(pairs, row_blocks);
  const int64_t aligned = RoundUpTo(block_pairs, 16 / std::gcd<int64_t>(16, g.k.w));
  const int64_t aligned_blocks = CeilDivInt(pairs, aligned);
  if ((aligned_blocks == 1 || aligned_blocks % 2 == 0) && 2 * (pairs - (aligned_blocks - 1) * aligned) >= aligned) {
    block_pairs = std::min(pairs, aligned);
  }
  const int64_t pair_blocks = CeilDivInt(pairs, block_pairs);
  const int64_t block_taps = block_pairs * g.k.w;
  int64_t filter_blocks = 1;
  if (pair_blocks == 1) {
    filter_blocks = EvenParts(std::min({per_group, g.group_out / kMinWeightGradFilters, kMaxWeightGradFilterBlocks}));
  }
  const int64_t block_filters = CeilDivInt(g.group_out, filter_blocks);
  filter_blocks = CeilDivInt(g.group_out, block_filters);
  const int64_t items = g.groups * pair_blocks * filter_blocks;
  const int64_t tasks = std::min(items, want);

  const int64_t images = ChunkImages(g, block_taps, block_filters);
  const bool in_place = PointwiseConv(g) && images == 1;  // im2col(x) is x itself
  Chunking chunk = PlanChunks(g, block_taps, images, in_place);
  const kir::Buffer col =
      in_place ? kir::Buffer() : ctx.Scratch("im2col", ScalarType::kFloat32, tasks * block_taps * chunk.ld);
  const kir::Buffer gy_block =
      images > 1 ? ctx.Scratch("out_grad_block", ScalarType::kFloat32, tasks * block_filters * chunk.ld)
                 : kir::Buffer();

  return TaskLoop(items, tasks, [&](const Expr& task, const Expr& item) {
    const Expr grp = item / Int(pair_blocks * filter_blocks);
    const Expr p0 = item / Int(filter_blocks) % Int(pair_blocks) * Int(block_pairs);
    const Expr block = kir::Min(Int(block_pairs), Int(pairs) - p0);  // kernel rows of the item
    const Expr f0 = item % Int(filter_blocks) * Int(block_filters);
    const Expr filters = kir::Min(Int(block_filters), Int(g.group_out) - f0);
    const Expr first_filter = grp * Int(g.group_out) + f0;
    const Expr group_channel = grp * Int(g.group_in);
    const Expr chunk_var = kir::Var("chunk");
    chunk.At(g, chunk_var / Int(chunk.row_chunks), chunk_var % Int(chunk.row_chunks));
    const Expr positions = chunk.count * chunk.out_rows * Int(g.out_w);  // the product's depth
    const Expr beta = kir::Select(kir::Eq(chunk_var, Int(0)), kir::FloatImm(0.0), kir::FloatImm(1.0));
    const Expr dw_at = first_filter * Int(group_k) + p0 * Int(g.k.w);
    std::vector<Stmt> steps;
    if (in_place) {
      // 1x1: kernel rows are channels.
      steps.push_back(SgemmCall(filters, block, positions, gy, (chunk.n0 * Int(g.filters) + first_filter) * Int(plane),
                                Int(plane), false, x, (chunk.n0 * Int(g.channels) + group_channel + p0) * Int(plane),
                                Int(plane), true, beta, dw, dw_at, Int(group_k)));
    } else {
      // im2col: row (c, i, j) of the block, for each image and output row of the chunk,
      // x's row ih read at the tap's columns, zeros outside the image.
      const Expr col_base = task * Int(block_taps * chunk.ld);
      const Expr img = kir::Var("img"), oh = kir::Var("oh"), ow = kir::Var("ow");
      const Expr zero = kir::FloatImm(0.0);
      steps.push_back(ForEachTap(g, p0, block, [&](const Expr& c, const Expr& row, const Expr& i, int64_t j) {
        const std::pair<int64_t, int64_t> columns = TapColumns(g, j);
        const int64_t first = columns.first, end = columns.second;
        const Expr ih = (chunk.oh0 + oh) * Int(g.s.h) + i * Int(g.d.h) - Int(g.p.h);
        const Expr src = (((chunk.n0 + img) * Int(g.channels) + group_channel + c) * Int(in_plane) + ih * Int(g.width) +
                          Int(j * g.d.w - g.p.w)) +
                         Strided(ow, g.s.w);
        const Expr dst = (col_base + row * Int(chunk.ld) + img * Int(chunk.rows * g.out_w) + oh * Int(g.out_w)) + ow;
        const auto fill = [&](int64_t begin, int64_t extent) {
          return Loop(ow, Int(begin), Int(extent), kir::Store(col, dst, zero), kir::LoopKind::kVectorize);
        };
        const Stmt inside = kir::Block({
            fill(0, first),
            Loop(ow, Int(first), Int(end - first), kir::Store(col, dst, kir::Load(x, src)), kir::LoopKind::kVectorize),
            fill(end, g.out_w - end),
        });
        return Loop(img, Int(0), chunk.count,
                    Loop(oh, Int(0), chunk.out_rows,
                         kir::If(kir::And(kir::Ge(ih, Int(0)), kir::Lt(ih, Int(g.height))), inside, fill(0, g.out_w))));
      }));
      kir::Buffer a = gy;
      Expr a_at = (chunk.n0 * Int(g.filters) + first_filter) * Int(plane) + chunk.oh0 * Int(g.out_w);
      Expr lda = Int(plane);
      if (images > 1) {
        a = gy_block;
        a_at = task * Int(block_filters * chunk.ld);
        lda = Int(chunk.ld);
        steps.push_back(CopyOutGradBlock(g, gy, chunk, first_filter, filters, gy_block, a_at));
      }
      steps.push_back(SgemmCall(filters, block * Int(g.k.w), positions, a, a_at, lda, false, col, col_base,
                                Int(chunk.ld), true, beta, dw, dw_at, Int(group_k)));
    }
    return Loop(chunk_var, Int(0), Int(chunk.image_blocks * chunk.row_chunks), kir::Block(std::move(steps)));
  });
}

// The data gradient. Items are (block of images, group, block of channels): an item owns
// its images' planes of those channels, which it zeroes; per chunk, dcol = W[group's
// filters, the channels' taps]^T gy[.., chunk] into its scratch, then each tap's row added
// into its channel's plane (col2im).
Stmt ConvDataGradGemm(const ConvGeometry& g, LowerContext& ctx) {
  const kir::Buffer& gy = ctx.inputs[0];
  const kir::Buffer& w = ctx.inputs[2];
  const kir::Buffer& dx = ctx.outputs[0];
  const int64_t kk = g.taps();
  const int64_t group_k = g.group_taps();
  const int64_t plane = g.out_plane();
  const int64_t in_plane = g.in_plane();

  const int64_t want = BackwardTasksWanted(g);
  // Images per chunk as the positions ask; then channel blocks as the parallelism and the
  // scratch budget ask (a dcol block of one channel's taps per image at least).
  int64_t images = plane < kMinGemmPositions ? std::min(g.batch, CeilDivInt(kMinGemmPositions, plane)) : 1;
  const int64_t per_block = CeilDivInt(want, CeilDivInt(g.batch, images) * g.groups);
  int64_t channel_blocks = EvenParts(std::min(per_block, g.group_in / kMinDataGradChannels));
  if (images > 1) channel_blocks = std::max(channel_blocks, CeilDivInt(group_k * images * plane, kColBudget));
  const int64_t block_channels = CeilDivInt(g.group_in, std::min(channel_blocks, g.group_in));
  channel_blocks = CeilDivInt(g.group_in, block_channels);
  const int64_t block_taps = block_channels * kk;
  images = ChunkImages(g, block_taps, 0);
  const bool in_place = PointwiseConv(g) && images == 1;  // dx = W^T gy
  Chunking chunk = PlanChunks(g, block_taps, images, in_place);
  const int64_t items = chunk.image_blocks * g.groups * channel_blocks;
  const int64_t tasks = std::min(items, want);
  const kir::Buffer dcol =
      in_place ? kir::Buffer() : ctx.Scratch("data_grad_col", ScalarType::kFloat32, tasks * block_taps * chunk.ld);
  const kir::Buffer gy_block =
      images > 1 ? ctx.Scratch("out_grad_block", ScalarType::kFloat32, tasks * g.group_out * chunk.ld) : kir::Buffer();

  return TaskLoop(items, tasks, [&](const Expr& task, const Expr& item) {
    const Expr image_block = item / Int(g.groups * channel_blocks);
    const Expr grp = item / Int(channel_blocks) % Int(g.groups);
    const Expr c0 = item % Int(channel_blocks) * Int(block_channels);
    const Expr channels = kir::Min(Int(block_channels), Int(g.group_in) - c0);
    const Expr first_channel = grp * Int(g.group_in) + c0;
    const Expr first_filter = grp * Int(g.group_out);
    const Expr row_chunk = kir::Var("row_chunk");
    chunk.At(g, image_block, row_chunk);
    // W^T's rows [c0 kk, ..) of the group: W[group's filters][taps] read transposed.
    const Expr w_at = first_filter * Int(group_k) + c0 * Int(kk);
    const Expr dx_at = (chunk.n0 * Int(g.channels) + first_channel) * Int(in_plane);
    if (in_place) {
      return SgemmCall(channels, Int(plane), Int(g.group_out), w, w_at, Int(group_k), true, gy,
                       (chunk.n0 * Int(g.filters) + first_filter) * Int(plane), Int(plane), false, kir::FloatImm(0.0),
                       dx, dx_at, Int(plane));
    }
    const Expr img = kir::Var("img"), e = kir::Var("e");
    std::vector<Stmt> steps;
    steps.push_back(Loop(img, Int(0), chunk.count,
                         Loop(e, Int(0), channels * Int(in_plane),
                              kir::Store(dx, (dx_at + img * Int(g.channels * in_plane)) + e, kir::FloatImm(0.0)),
                              kir::LoopKind::kVectorize)));
    kir::Buffer b = gy;
    Expr b_at = (chunk.n0 * Int(g.filters) + first_filter) * Int(plane) + chunk.oh0 * Int(g.out_w);
    Expr ldb = Int(plane);
    if (images > 1) {
      b = gy_block;
      b_at = task * Int(g.group_out * chunk.ld);
      ldb = Int(chunk.ld);
      steps.push_back(CopyOutGradBlock(g, gy, chunk, first_filter, Int(g.group_out), gy_block, b_at));
    }
    const Expr col_base = task * Int(block_taps * chunk.ld);
    const Stmt product =
        SgemmCall(channels * Int(kk), chunk.count * chunk.out_rows * Int(g.out_w), Int(g.group_out), w, w_at,
                  Int(group_k), true, b, b_at, ldb, false, kir::FloatImm(0.0), dcol, col_base, Int(chunk.ld));
    // col2im: the row of tap (c, i, j) adds into channel c's plane where its output
    // positions read inside it: rows from ValidSpan, columns known at compile time.
    const Expr oh = kir::Var("oh"), ow = kir::Var("ow");
    const Stmt scatter =
        ForEachTap(g, Int(0), channels * Int(g.k.h), [&](const Expr& c, const Expr& row, const Expr& i, int64_t j) {
          const std::pair<int64_t, int64_t> columns = TapColumns(g, j);
          const int64_t first = columns.first, end = columns.second;
          const Span rows =
              ValidSpan(chunk.oh0 * Int(g.s.h) + i * Int(g.d.h) - Int(g.p.h), g.s.h, g.height, chunk.rows);
          const Expr rows_end = kir::Min(rows.first + rows.extent, chunk.out_rows);
          const Expr ih = (chunk.oh0 + oh) * Int(g.s.h) + i * Int(g.d.h) - Int(g.p.h);
          // (invariant) + ow: with stride 1 the emitter sees unit-stride stores and needs no
          // overlap test between dx's loads and stores.
          const Expr at = ((dx_at + img * Int(g.channels * in_plane)) + c * Int(in_plane) + ih * Int(g.width) +
                           Int(j * g.d.w - g.p.w)) +
                          Strided(ow, g.s.w);
          const Expr from = (col_base + row * Int(chunk.ld) + img * Int(chunk.rows * g.out_w) + oh * Int(g.out_w)) + ow;
          return Loop(
              img, Int(0), chunk.count,
              Loop(oh, rows.first, kir::Max(Int(0), rows_end - rows.first),
                   Loop(ow, Int(first), Int(end - first), kir::Store(dx, at, kir::Load(dx, at) + kir::Load(dcol, from)),
                        kir::LoopKind::kVectorize)));
        });
    steps.push_back(Loop(row_chunk, Int(0), Int(chunk.row_chunks), kir::Block({product, scatter})));
    return kir::Block(std::move(steps));
  });
}

// Library steps (CUDA). The data gradient, per chunk of images: per group one batched GEMM
// col_g = W_g^T gy_g (the im2col matrix's gradient, image by image), then col2im as a
// gather, one input element per iteration summing the taps that read it. Layers of many
// groups (depthwise) keep the loops: a GEMM per group would be a vector product.
constexpr int64_t kMaxLibraryGroups = 16;

Stmt LibraryConvDataGrad(const ConvGeometry& g, const LowerContext& ctx) {
  const kir::Buffer& gy = ctx.inputs[0];
  const kir::Buffer& w = ctx.inputs[2];
  const kir::Buffer& dx = ctx.outputs[0];
  const int64_t plane = g.out_plane();
  const int64_t rows = g.channels * g.taps();
  const int64_t chunk = LibraryChunk(g, 0);
  const kir::Buffer col = ctx.Scratch("col_grad", ScalarType::kFloat32, chunk * rows * plane);
  std::vector<Stmt> steps;
  for (int64_t first = 0; first < g.batch; first += chunk) {
    const int64_t images = std::min(chunk, g.batch - first);
    for (int64_t grp = 0; grp < g.groups; ++grp) {
      kir::GemmStepArgs gemm;
      gemm.a = w;  // (group_out, group_taps): used transposed
      gemm.a_offset = grp * g.group_out * g.group_taps();
      gemm.lda = g.group_taps();
      gemm.transpose_a = true;
      gemm.b = gy;
      gemm.b_offset = (first * g.filters + grp * g.group_out) * plane;
      gemm.ldb = plane;
      gemm.stride_b = g.filters * plane;
      gemm.c = col;
      gemm.c_offset = grp * g.group_taps() * plane;
      gemm.ldc = plane;
      gemm.stride_c = rows * plane;
      gemm.m = g.group_taps();
      gemm.n = plane;
      gemm.k = g.group_out;
      gemm.batch = images;
      steps.push_back(kir::GemmStep(gemm));
    }
    const int64_t image_elements = g.channels * g.height * g.width;
    steps.push_back(lower::ChunkedLoop(images * image_elements, [&](const Expr& i) {
      const Expr image = i / Int(image_elements);  // within the chunk
      const Expr c = i / Int(g.height * g.width) % Int(g.channels);
      const Expr ih = i / Int(g.width) % Int(g.height);
      const Expr iw = i % Int(g.width);
      Expr sum = kir::FloatImm(0.0);
      for (int64_t ki = 0; ki < g.k.h; ++ki) {
        const Expr th = ih + Int(g.p.h - ki * g.d.h);  // oh * stride when tap ki reads ih
        for (int64_t kj = 0; kj < g.k.w; ++kj) {
          const Expr tw = iw + Int(g.p.w - kj * g.d.w);
          const Expr hit = kir::And(kir::And(kir::And(kir::Ge(th, Int(0)), kir::Eq(th % Int(g.s.h), Int(0))),
                                             kir::Lt(th, Int(g.out_h * g.s.h))),
                                    kir::And(kir::And(kir::Ge(tw, Int(0)), kir::Eq(tw % Int(g.s.w), Int(0))),
                                             kir::Lt(tw, Int(g.out_w * g.s.w))));
          const Expr row = c * Int(g.taps()) + Int(ki * g.k.w + kj);
          const Expr at = (image * Int(rows) + row) * Int(plane) + th / Int(g.s.h) * Int(g.out_w) + tw / Int(g.s.w);
          sum = sum + kir::Select(hit, kir::Load(col, at), kir::FloatImm(0.0));
        }
      }
      return kir::Store(dx, Int(first * image_elements) + i, sum);
    }));
  }
  return kir::Block(std::move(steps));
}

// The weight gradient, per chunk of images: the chunk's im2col matrix with every image's
// positions side by side ([row][image][q]) and out_grad gathered alike ([f][image][q]),
// then per group one GEMM over all of them, dW_g (+)= gy_g col_g^T, accumulating from the
// second chunk on.
Stmt LibraryConvWeightGrad(const ConvGeometry& g, const LowerContext& ctx) {
  const kir::Buffer& gy = ctx.inputs[0];
  const kir::Buffer& x = ctx.inputs[1];
  const kir::Buffer& dw = ctx.outputs[0];
  const int64_t plane = g.out_plane();
  const int64_t rows = g.channels * g.taps();
  const int64_t chunk = LibraryChunk(g, g.filters * plane);
  const kir::Buffer col = ctx.Scratch("im2col", ScalarType::kFloat32, chunk * rows * plane);
  const kir::Buffer gathered = ctx.Scratch("out_grad_by_filter", ScalarType::kFloat32, chunk * g.filters * plane);
  std::vector<Stmt> steps;
  for (int64_t first = 0; first < g.batch; first += chunk) {
    const int64_t images = std::min(chunk, g.batch - first);
    const int64_t span = images * plane;  // the GEMM's k: every image's positions
    steps.push_back(Im2col(g, x, col, first, images, true));
    steps.push_back(lower::ChunkedLoop(g.filters * span, [&](const Expr& i) {
      const Expr f = i / Int(span);
      const Expr image = Int(first) + i / Int(plane) % Int(images);
      return kir::Store(gathered, i, kir::Load(gy, (image * Int(g.filters) + f) * Int(plane) + i % Int(plane)));
    }));
    for (int64_t grp = 0; grp < g.groups; ++grp) {
      kir::GemmStepArgs gemm;
      gemm.a = gathered;
      gemm.a_offset = grp * g.group_out * span;
      gemm.lda = span;
      gemm.b = col;  // (group_taps, span): used transposed
      gemm.b_offset = grp * g.group_taps() * span;
      gemm.ldb = span;
      gemm.transpose_b = true;
      gemm.c = dw;
      gemm.c_offset = grp * g.group_out * g.group_taps();
      gemm.ldc = g.group_taps();
      gemm.m = g.group_out;
      gemm.n = g.group_taps();
      gemm.k = span;
      gemm.beta = first == 0 ? 0.0 : 1.0;
      steps.push_back(kir::GemmStep(gemm));
    }
  }
  return kir::Block(std::move(steps));
}

// float32 (the layout is always NCHW): GEMMs; other dtypes: the loops above, in float64.
Stmt ConvDataGradLower(const Attrs& attrs, LowerContext& ctx) {
  const ConvGeometry g = ConvGeometryOf(attrs, ctx.input_shapes[1], ctx.input_shapes[0]);
  if (NumElements(ctx.output_shapes[0]) == 0) return kir::Block({});
  if (ctx.output_types[0] == DType::kFloat32 && ctx.input_types[0] == DType::kFloat32 &&
      ctx.input_types[2] == DType::kFloat32) {
    if (ctx.LibrarySteps()) {
      return g.groups <= kMaxLibraryGroups ? LibraryConvDataGrad(g, ctx) : ConvDataGradLoops(g, ctx);
    }
    return ConvDataGradGemm(g, ctx);
  }
  return ConvDataGradLoops(g, ctx);
}

Stmt ConvWeightGradLower(const Attrs& attrs, LowerContext& ctx) {
  const ConvGeometry g = ConvGeometryOf(attrs, ctx.input_shapes[1], ctx.input_shapes[0]);
  if (NumElements(ctx.output_shapes[0]) == 0) return kir::Block({});
  // An empty batch: the loops write zeros.
  if (ctx.output_types[0] == DType::kFloat32 && ctx.input_types[0] == DType::kFloat32 &&
      ctx.input_types[1] == DType::kFloat32 && g.batch > 0) {
    if (ctx.LibrarySteps()) {
      return g.groups <= kMaxLibraryGroups ? LibraryConvWeightGrad(g, ctx) : ConvWeightGradLoops(g, ctx);
    }
    return WinogradWeightGradApplies(g) ? WinogradWeightGrad(g, ctx) : ConvWeightGradGemm(g, ctx);
  }
  return ConvWeightGradLoops(g, ctx);
}

// _backward_Pooling (out_grad, data, output): the data gradient.
void InferPoolingGradShape(const Attrs& attrs, std::vector<ShapeSlot>& in, std::vector<ShapeSlot>& out) {
  if (!in[1] && out[0]) in[1] = out[0];
  if (!in[1]) return;
  std::vector<ShapeSlot> data = {in[1]};
  std::vector<ShapeSlot> pooled = {std::nullopt};
  InferPoolingShape(attrs, data, pooled);
  AssignShape(in[0], *pooled[0], "input 'out_grad'");
  AssignShape(in[2], *pooled[0], "input 'output'");
  AssignShape(out[0], *in[1], "output");
}

void CheckPoolingGradType(const Attrs& attrs) {
  ValidatePooling(attrs);
  if (attrs.Str("pool_type") == "lp") {
    throw Error("attribute 'pool_type': expected max, avg or sum (Pooling's gradient), given lp");
  }
}

// A window as the forward clips it: [h0, h1) x [w0, w1) inside the data, and avg's divisor.
struct ClippedWindow {
  int64_t h0, h1, w0, w1, divisor;
};
ClippedWindow ClipWindow(const PoolWindow& win, int64_t oh, int64_t ow, int64_t height, int64_t width,
                         bool include_pad) {
  const int64_t h0 = oh * win.stride.h - win.pad.h;
  const int64_t w0 = ow * win.stride.w - win.pad.w;
  const int64_t h1 = std::min(h0 + win.kernel.h, height + win.pad.h);
  const int64_t w1 = std::min(w0 + win.kernel.w, width + win.pad.w);
  const int64_t padded = std::max<int64_t>(h1 - h0, 0) * std::max<int64_t>(w1 - w0, 0);
  ClippedWindow c{std::max<int64_t>(h0, 0), std::min(h1, height), std::max<int64_t>(w0, 0), std::min(w1, width), 0};
  c.divisor = include_pad ? padded : std::max<int64_t>(c.h1 - c.h0, 0) * std::max<int64_t>(c.w1 - c.w0, 0);
  return c;
}

// Each window's gradient, scattered: max to the first element (row-major) equal to the
// window's output, as MXNet's unpooling does; avg spread over the divisor; sum to all.
void PoolingGradReference(const Attrs& attrs, std::span<const Tensor> in, std::span<Tensor> out, const RefContext&) {
  const Shape& xs = in[1].shape();
  const Shape& ys = in[0].shape();
  const int64_t height = xs[2], width = xs[3];
  const PoolWindow win = PoolingWindow(attrs, xs);
  const std::string& type = attrs.Str("pool_type");
  const bool include_pad = attrs.IsNone("count_include_pad") || attrs.Bool("count_include_pad");
  const std::vector<double> gy = in[0].ToDoubles();
  const std::vector<double> x = in[1].ToDoubles();
  const std::vector<double> y = in[2].ToDoubles();
  std::vector<double> dx(x.size(), 0.0);
  int64_t flat = 0;
  for (int64_t plane = 0; plane < xs[0] * xs[1]; ++plane) {
    const int64_t base = plane * height * width;
    for (int64_t oh = 0; oh < ys[2]; ++oh) {
      for (int64_t ow = 0; ow < ys[3]; ++ow, ++flat) {
        const ClippedWindow c = ClipWindow(win, oh, ow, height, width, include_pad);
        bool done = false;
        for (int64_t h = c.h0; h < c.h1 && !done; ++h) {
          for (int64_t w = c.w0; w < c.w1 && !done; ++w) {
            const int64_t at = base + h * width + w;
            if (type == "max") {
              done = x[at] == y[flat];
              if (done) dx[at] += gy[flat];
            } else {
              dx[at] += type == "avg" ? gy[flat] / static_cast<double>(c.divisor) : gy[flat];
            }
          }
        }
      }
    }
  }
  for (size_t e = 0; e < dx.size(); ++e) out[0].SetDouble(static_cast<int64_t>(e), dx[e]);
}

// Otherwise (large windows, other dtypes): the pooling gradient gathered per input
// element from the windows that contain it (oh with oh * stride - pad <= h < oh * stride
// - pad + kernel), so that no two iterations write one element. Max pooling: the element
// takes a window's gradient when it equals the window's output and no element before it
// in the window does. One (image, channel) plane per task; sums in float64.
Stmt PoolingGradLoops(const std::string& type, bool include_pad, const PoolWindow& win, LowerContext& ctx) {
  const Shape& xs = ctx.input_shapes[1];
  const Shape& ys = ctx.input_shapes[0];
  const int64_t height = xs[2], width = xs[3], out_h = ys[2], out_w = ys[3];
  const ScalarType f64 = ScalarType::kFloat64;
  const ScalarType t = lower::ComputeType(ctx.input_types[1]);
  const kir::Buffer acc = ctx.builder->AddLocal("acc", f64, 1);
  const kir::Buffer seen = ctx.builder->AddLocal("seen", ScalarType::kInt64, 1);
  const Expr zero = Int(0);
  const Expr plane = kir::Var("plane"), h = kir::Var("h"), w = kir::Var("w");
  const Expr oh = kir::Var("oh"), ow = kir::Var("ow"), hh = kir::Var("hh"), ww = kir::Var("ww");
  // Windows along one axis that contain position p: [first, last] clipped to the output.
  const auto containing = [](const Expr& p, int64_t kernel, int64_t stride, int64_t pad, int64_t out) {
    const Expr first = kir::Max(Int(0), CeilDiv(p + Int(pad - kernel + 1), stride));
    const Expr last = kir::Min(Int(out - 1), (p + Int(pad)) / Int(stride));
    return Span{first, kir::Max(Int(0), last - first + Int(1))};
  };
  const Span rows = containing(h, win.kernel.h, win.stride.h, win.pad.h, out_h);
  const Span cols = containing(w, win.kernel.w, win.stride.w, win.pad.w, out_w);
  const Expr out_at = (plane * Int(out_h) + oh) * Int(out_w) + ow;
  const Expr gv = lower::LoadAs(ctx.inputs[0], out_at, f64);
  const Expr h0 = oh * Int(win.stride.h) - Int(win.pad.h);
  const Expr w0 = ow * Int(win.stride.w) - Int(win.pad.w);
  const Expr h1 = kir::Min(h0 + Int(win.kernel.h), Int(height + win.pad.h));
  const Expr w1 = kir::Min(w0 + Int(win.kernel.w), Int(width + win.pad.w));
  const Expr hs = kir::Max(h0, zero), ws = kir::Max(w0, zero);
  const Expr he = kir::Min(h1, Int(height)), we = kir::Min(w1, Int(width));
  const Expr add_acc = kir::Load(acc, zero);
  Stmt window;
  if (type == "max") {
    const Expr y = lower::LoadAs(ctx.inputs[2], out_at, t);
    const auto x_at = [&](const Expr& r, const Expr& q) {
      return lower::LoadAs(ctx.inputs[1], (plane * Int(height) + r) * Int(width) + q, t);
    };
    const Stmt count =
        kir::Store(seen, zero, kir::Load(seen, zero) + kir::Select(kir::Eq(x_at(hh, ww), y), Int(1), zero));
    window = kir::If(kir::Eq(x_at(h, w), y),
                     kir::Block({
                         kir::Store(seen, zero, zero),
                         // Rows of the window before h, then row h before w.
                         Loop(hh, hs, kir::Max(zero, h - hs), Loop(ww, ws, kir::Max(zero, we - ws), count)),
                         Loop(hh, h, Int(1), Loop(ww, ws, kir::Max(zero, w - ws), count)),
                         kir::If(kir::Eq(kir::Load(seen, zero), zero), kir::Store(acc, zero, add_acc + gv)),
                     }));
  } else if (type == "avg") {
    const Expr divisor = include_pad ? kir::Max(h1 - h0, zero) * kir::Max(w1 - w0, zero)
                                     : kir::Max(he - hs, zero) * kir::Max(we - ws, zero);
    window = kir::Store(acc, zero, add_acc + gv / kir::Cast(f64, divisor));
  } else {
    window = kir::Store(acc, zero, add_acc + gv);
  }
  const Stmt element = kir::Block({
      kir::Store(acc, zero, kir::Const(0, f64)),
      Loop(oh, rows.first, rows.extent, Loop(ow, cols.first, cols.extent, window)),
      lower::StoreFrom(ctx.outputs[0], (plane * Int(height) + h) * Int(width) + w, kir::Load(acc, zero)),
  });
  return Loop(plane, zero, Int(xs[0] * xs[1]),
              kir::Allocate(acc, kir::Allocate(seen, Loop(h, zero, Int(height), Loop(w, zero, Int(width), element)))),
              kir::LoopKind::kParallel);
}

// float32 and float64 max, average and sum pooling with windows UnrolledPooling takes:
// each (image, channel) plane zeroed, then every window's gradient scattered into it,
// row by row of windows, the taps written out as in the forward (edges as statements of
// their own, as PlaneWithStaticEdges does). Max pooling: each window's first tap
// (row-major) equal to its output, as MXNet's unpooling picks it, found for a whole row of
// windows in a vectorized loop, then the row's gradients added at those taps by a scalar
// loop. Average: the gradient over the divisor to every tap; sum: to every tap. LeNet's
// 2x2 max pooling (64x32x28x28) took 18.9 ms gathered per input element, 3.7 ms with a
// chain of selects per window in one scalar loop (LLVM made it branches, which random
// data mispredicts), 0.54 ms so; the forward takes 0.2.
Stmt UnrolledPoolingGrad(const std::string& type, bool include_pad, const PoolWindow& win, LowerContext& ctx) {
  const Shape& xs = ctx.input_shapes[1];
  const Shape& ys = ctx.input_shapes[0];
  const int64_t height = xs[2], width = xs[3], out_h = ys[2], out_w = ys[3];
  const ScalarType t = lower::ComputeType(ctx.output_types[0]);
  const kir::Buffer& dx = ctx.outputs[0];
  const bool max = type == "max";
  // Max: per window of the row, its tap (offset in the plane) and gradient.
  const kir::Buffer row_tap = ctx.builder->AddLocal("row_tap", ScalarType::kInt64, max ? out_w : 1);
  const kir::Buffer row_grad = ctx.builder->AddLocal("row_grad", t, max ? out_w : 1);
  const Expr plane = kir::Var("plane"), e = kir::Var("e");
  const Expr oh_var = kir::Var("oh"), ow_var = kir::Var("ow"), q = kir::Var("q");
  const Expr in_base = plane * Int(height * width);
  const auto add = [&](const Expr& offset, const Expr& value) {
    const Expr at = in_base + offset;
    return lower::StoreFrom(dx, at, lower::LoadAs(dx, at, t) + value);
  };
  const auto window = [&](const AxisPosition& oh, const AxisPosition& ow) -> Stmt {
    const WindowTaps window_taps = TapsOf(win, include_pad, oh, ow, height, width);
    const std::vector<Expr>& taps = window_taps.offsets;
    const Expr out_at = (plane * Int(out_h) + oh.Get()) * Int(out_w) + ow.Get();
    const Expr g = lower::LoadAs(ctx.inputs[0], out_at, t);
    if (max) {
      // The least offset among the taps equal to the output (offsets grow row-major),
      // as a minimum of independent selects: a chain of selects, each tap's load needed
      // only while no earlier tap matched, became branches or masked gathers. No tap
      // equal (a NaN window, or none inside): 0 added to the plane's first element.
      const Expr y = lower::LoadAs(ctx.inputs[2], out_at, t);
      const Expr none = Int(height * width);
      Expr first = none;
      for (const Expr& tap : taps) {
        first = kir::Min(first, kir::Select(kir::Eq(lower::LoadAs(ctx.inputs[1], in_base + tap, t), y), tap, none));
      }
      const Expr found = kir::Lt(first, none);
      return kir::Block({
          kir::Store(row_tap, ow.Get(), kir::Select(found, first, Int(0))),
          kir::Store(row_grad, ow.Get(), kir::Select(found, g, kir::Const(0, t))),
      });
    }
    if (taps.empty()) return kir::Block({});
    Expr value = g;
    if (type == "avg") value = g / kir::Cast(t, Int(window_taps.divisor));
    std::vector<Stmt> steps = {kir::Store(row_grad, Int(0), value)};
    for (const Expr& tap : taps) steps.push_back(add(tap, kir::Load(row_grad, Int(0))));
    return kir::Block(std::move(steps));
  };
  // A row of windows: edge columns as statements of their own, the interior a vectorized
  // loop; for max pooling, then the row's scatter.
  const std::pair<int64_t, int64_t> rows_inside = Interior(height, out_h, win.kernel.h, win.stride.h, 1, win.pad.h);
  const std::pair<int64_t, int64_t> cols_inside = Interior(width, out_w, win.kernel.w, win.stride.w, 1, win.pad.w);
  const auto row = [&](const AxisPosition& oh) {
    std::vector<Stmt> steps;
    for (int64_t ow = 0; ow < cols_inside.first; ++ow) steps.push_back(window(oh, {ow_var, ow}));
    steps.push_back(Loop(ow_var, Int(cols_inside.first), Int(cols_inside.second - cols_inside.first),
                         window(oh, {ow_var}), kir::LoopKind::kVectorize));
    for (int64_t ow = cols_inside.second; ow < out_w; ++ow) steps.push_back(window(oh, {ow_var, ow}));
    if (max) steps.push_back(Loop(q, Int(0), Int(out_w), add(kir::Load(row_tap, q), kir::Load(row_grad, q))));
    return kir::Block(std::move(steps));
  };
  std::vector<Stmt> steps = {Loop(e, Int(0), Int(height * width), lower::StoreFrom(dx, in_base + e, kir::Const(0, t)),
                                  kir::LoopKind::kVectorize)};
  for (int64_t oh = 0; oh < rows_inside.first; ++oh) steps.push_back(row({oh_var, oh}));
  steps.push_back(Loop(oh_var, Int(rows_inside.first), Int(rows_inside.second - rows_inside.first), row({oh_var})));
  for (int64_t oh = rows_inside.second; oh < out_h; ++oh) steps.push_back(row({oh_var, oh}));
  return Loop(plane, Int(0), Int(xs[0] * xs[1]),
              kir::Allocate(row_tap, kir::Allocate(row_grad, kir::Block(std::move(steps)))), kir::LoopKind::kParallel);
}

Stmt PoolingGradLower(const Attrs& attrs, LowerContext& ctx) {
  const Shape& xs = ctx.input_shapes[1];
  const Shape& ys = ctx.input_shapes[0];
  if (NumElements(xs) == 0) return kir::Block({});
  const PoolWindow win = PoolingWindow(attrs, xs);
  const std::string& type = attrs.Str("pool_type");
  const bool include_pad = attrs.IsNone("count_include_pad") || attrs.Bool("count_include_pad");
  const DType dtype = ctx.output_types[0];
  if ((dtype == DType::kFloat32 || dtype == DType::kFloat64) && UnrolledPoolingApplies(type, win, xs, ys)) {
    return UnrolledPoolingGrad(type, include_pad, win, ctx);
  }
  return PoolingGradLoops(type, include_pad, win, ctx);
}

// ----------------------------------------------------------------------------- Gradients

// The forward node's attributes, to build its backward operators with.
AttrMap ForwardAttrs(const GradientContext& ctx) {
  AttrMap attrs;
  for (const auto& [key, value] : ctx.attrs.values()) {
    attrs.emplace_back(key, std::visit([](const auto& v) { return AttrArg(v); }, value));
  }
  return attrs;
}

void ConvolutionGradient(GradientContext& ctx) {
  const AttrMap attrs = ForwardAttrs(ctx);
  const NodeEntry g = ctx.OutputGrad(0);
  ctx.SetInputGrad(0, ctx.Apply("_backward_Convolution_data", {g, ctx.inputs[0], ctx.inputs[1]}, attrs));
  ctx.SetInputGrad(1, ctx.Apply("_backward_Convolution_weight", {g, ctx.inputs[0]}, attrs));
  if (!ctx.attrs.Bool("no_bias")) ctx.SetInputGrad(2, ctx.Apply("sum", {g}, {{"axis", {0, 2, 3}}}));
}

// lp pooling, y = (sum of x^p over the window)^(1/p) (p = 1, 2, 3, as the forward): each
// x's gradient is x^(p-1) times the sum, over the windows holding it, of g / y^(p-1), i.e.
// sum pooling's backward of g / y^(p-1), times x^(p-1).
void PoolingGradient(GradientContext& ctx) {
  const NodeEntry& x = ctx.inputs[0];
  const NodeEntry& y = ctx.outputs[0];
  AttrMap attrs = ForwardAttrs(ctx);
  if (ctx.attrs.Str("pool_type") != "lp") {
    ctx.SetInputGrad(0, ctx.Apply("_backward_Pooling", {ctx.OutputGrad(0), x, y}, attrs));
    return;
  }
  const int64_t p = ctx.attrs.Int("p_value");
  for (auto& [key, value] : attrs) {
    if (key == "pool_type") value = AttrArg("sum");
  }
  NodeEntry g = ctx.OutputGrad(0);
  if (p == 2) g = ctx.Apply("elemwise_div", {g, y});
  if (p == 3) g = ctx.Apply("elemwise_div", {g, ctx.Apply("square", {y})});
  NodeEntry dx = ctx.Apply("_backward_Pooling", {g, x, y}, attrs);
  if (p == 2) dx = ctx.Apply("elemwise_mul", {dx, x});
  if (p == 3) dx = ctx.Apply("elemwise_mul", {dx, ctx.Apply("square", {x})});
  ctx.SetInputGrad(0, dx);
}

// Composed from registered operators on the channel statistics, kept as (1, .., C, .., 1)
// so that they broadcast against the data. With batch statistics (training) and
// xhat = (x - mean) * inv_std over the m elements of a channel:
//   dx = gamma * inv_std * (g - sum(g) / m - xhat * sum(g * xhat) / m),
//   dgamma = sum(g * xhat), dbeta = sum(g);
// gradients of the mean and inv_std outputs (output_mean_var) add gm / m and
// -gv * inv_std^2 * xhat / m (MXNet ignores them; they are exact here). With the moving
// statistics (inference, use_global_stats) the layer is the affine map
// x * gamma * inv_std + shift. fix_gamma: gamma is unused, its gradient zero.
void BatchNormGradient(GradientContext& ctx) {
  const Shape& shape = ctx.input_shapes[0];
  const int64_t ndim = static_cast<int64_t>(shape.size());
  const int64_t axis = op_util::NormalizeAxis(ctx.attrs.Int("axis"), ndim, "attribute 'axis'");
  std::vector<int64_t> others;
  std::vector<int64_t> channel_shape(static_cast<size_t>(ndim), 1);
  channel_shape[axis] = shape[axis];
  int64_t count = 1;
  for (int64_t d = 0; d < ndim; ++d) {
    if (d == axis) continue;
    others.push_back(d);
    count *= shape[d];
  }
  const bool fix_gamma = ctx.attrs.Bool("fix_gamma");
  const double eps = ctx.attrs.Float("eps");
  const auto sum = [&](const NodeEntry& v) { return ctx.Apply("sum", {v}, {{"axis", others}, {"keepdims", true}}); };
  const auto mul = [&](const NodeEntry& a, const NodeEntry& b) { return ctx.Apply("broadcast_mul", {a, b}); };
  const auto scaled = [&](const NodeEntry& a, double s) { return ctx.Apply("_mul_scalar", {a}, {{"scalar", s}}); };
  const auto as_channels = [&](const NodeEntry& v) {
    return ctx.Apply("_np_reshape", {v}, {{"newshape", channel_shape}});
  };
  const auto as_vector = [&](const NodeEntry& v) {
    return ctx.Apply("_np_reshape", {v}, {{"newshape", std::vector<int64_t>{shape[axis]}}});
  };
  const NodeEntry& x = ctx.inputs[0];
  const NodeEntry g = ctx.OutputGrad(0);
  const bool batch_stats = ctx.is_train && !ctx.attrs.Bool("use_global_stats");
  if (batch_stats && !ctx.HasOutputGrad(1) && !ctx.HasOutputGrad(2)) {
    // The common case, one kernel (batch_norm_backward.cc).
    const std::vector<NodeEntry> grads = ctx.ApplyAll("_backward_BatchNorm", {g, x, ctx.inputs[1]},
                                                      {{"axis", axis}, {"eps", eps}, {"fix_gamma", fix_gamma}});
    ctx.SetInputGrad(0, grads[0]);
    if (!fix_gamma) ctx.SetInputGrad(1, grads[1]);
    ctx.SetInputGrad(2, grads[2]);
    return;
  }
  const NodeEntry mean =
      batch_stats ? ctx.Apply("mean", {x}, {{"axis", others}, {"keepdims", true}}) : as_channels(ctx.inputs[3]);
  const NodeEntry centered = ctx.Apply("broadcast_sub", {x, mean});
  const NodeEntry var =
      batch_stats ? ctx.Apply("mean", {ctx.Apply("square", {centered})}, {{"axis", others}, {"keepdims", true}})
                  : as_channels(ctx.inputs[4]);
  const NodeEntry inv_std = ctx.Apply("rsqrt", {ctx.Apply("_plus_scalar", {var}, {{"scalar", eps}})});
  const NodeEntry xhat = mul(centered, inv_std);
  const NodeEntry sum_g = sum(g);
  const NodeEntry sum_gx = sum(mul(g, xhat));
  const NodeEntry scale = fix_gamma ? inv_std : mul(as_channels(ctx.inputs[1]), inv_std);
  NodeEntry dx = g;
  if (batch_stats) {
    const double inv_m = 1.0 / static_cast<double>(std::max<int64_t>(count, 1));
    dx = ctx.Apply("broadcast_sub", {g, scaled(sum_g, inv_m)});
    dx = ctx.Apply("broadcast_sub", {dx, mul(xhat, scaled(sum_gx, inv_m))});
  }
  dx = mul(dx, scale);
  if (batch_stats && ctx.HasOutputGrad(1)) {
    const double inv_m = 1.0 / static_cast<double>(std::max<int64_t>(count, 1));
    dx = ctx.Apply("broadcast_add", {dx, scaled(as_channels(*ctx.output_grads[1]), inv_m)});
  }
  if (batch_stats && ctx.HasOutputGrad(2)) {
    const double inv_m = 1.0 / static_cast<double>(std::max<int64_t>(count, 1));
    const NodeEntry coef = mul(as_channels(*ctx.output_grads[2]), ctx.Apply("square", {inv_std}));
    dx = ctx.Apply("broadcast_sub", {dx, mul(xhat, scaled(coef, inv_m))});
  }
  ctx.SetInputGrad(0, dx);
  if (!fix_gamma) ctx.SetInputGrad(1, as_vector(sum_gx));
  ctx.SetInputGrad(2, as_vector(sum_g));
}

// Inactive (inference in training mode, p = 0): the identity. Active: the node does not
// expose its mask, so it is recovered from the output: y != 0 exactly where the mask
// keeps a nonzero x, and dx = g * (y != 0) / (1 - p). Exact wherever x != 0; where x is
// exactly 0 the mask is unknowable from y and the gradient given is 0.
void DropoutGradient(GradientContext& ctx) {
  const double p = ctx.attrs.Float("p");
  const NodeEntry g = ctx.OutputGrad(0);
  const bool active = ctx.is_train || ctx.attrs.Str("mode") == "always";
  if (!active || p == 0) {
    ctx.SetInputGrad(0, g);
    return;
  }
  const NodeEntry kept = ctx.Apply("sign", {ctx.Apply("abs", {ctx.outputs[0]})});
  const NodeEntry masked = ctx.Apply("elemwise_mul", {g, kept});
  ctx.SetInputGrad(0, ctx.Apply("_mul_scalar", {masked}, {{"scalar", p < 1 ? 1.0 / (1.0 - p) : 0.0}}));
}

// Dropout's attributes and behaviour, which the training step's _dropout_step shares.
OpDef& DropoutAttrs(OpDef& op) {
  return op.Attr("p", AttrType::kFloat, AttrValue{0.5}, "drop probability")
      .Range(0, 1)
      .Attr("mode", AttrType::kString, AttrValue{std::string("training")}, "training: identity at inference")
      .Choices({"always", "training"})
      .Attr("axes", AttrType::kInts, AttrValue{std::vector<int64_t>{}}, "axes along which the mask is shared")
      .Attr("cudnn_off", AttrType::kBool, AttrValue{false}, "ignored")
      .Nullable()
      .SetInferShape(InferDropoutShape)
      .SetInferType(InferDropoutType)
      .SetInplace(op_util::InplaceIdentity())
      // Not fused: the mask comes from one random stream drawn in a fixed order.
      .SetPattern(OpPattern::kOpaque)
      .SetPatternFn([](const Attrs& attrs, bool is_train) {
        return is_train || attrs.Str("mode") == "always" ? OpPattern::kOpaque : OpPattern::kElementwise;
      })
      .SetIdentityWhen([](const Attrs& attrs, const std::vector<Shape>&, DType, bool is_train) {
        return attrs.Float("p") == 0 || (!is_train && attrs.Str("mode") != "always");
      })
      .SetReference(DropoutReference)
      .SetLower(DropoutLower)
      .SetGradient(DropoutGradient);
}

// Convolution's attributes, which its backward operators share.
OpDef& ConvolutionAttrs(OpDef& op) {
  const std::vector<std::string> conv_layouts = {"NCW", "NCHW", "NCDHW", "NHWC", "NDHWC"};
  return op.Attr("kernel", AttrType::kInts, std::nullopt, "kernel size (kh, kw)")
      .Range(1)
      .Attr("stride", AttrType::kInts, AttrValue{std::vector<int64_t>{}}, "stride (h, w); () means 1s")
      .Range(1)
      .Attr("dilate", AttrType::kInts, AttrValue{std::vector<int64_t>{}}, "dilation (h, w); () means 1s")
      .Range(1)
      .Attr("pad", AttrType::kInts, AttrValue{std::vector<int64_t>{}}, "zero padding (h, w); () means 0s")
      .Range(0)
      .Attr("num_filter", AttrType::kInt, std::nullopt, "number of output channels")
      .Range(1)
      .Attr("num_group", AttrType::kInt, AttrValue{int64_t{1}}, "number of channel groups")
      .Range(1)
      .Attr("no_bias", AttrType::kBool, AttrValue{false}, "no bias input")
      .Attr("workspace", AttrType::kInt, AttrValue{int64_t{1024}}, "MXNet's workspace limit (MB); ignored")
      .Range(0)
      .Attr("cudnn_tune", AttrType::kString, AttrValue{std::monostate{}}, "cuDNN algorithm choice; ignored")
      .Choices({"fastest", "limited_workspace", "off"})
      .Attr("cudnn_off", AttrType::kBool, AttrValue{false}, "ignored")
      .Attr("layout", AttrType::kString, AttrValue{std::monostate{}}, "NCHW or None only")
      .Choices(conv_layouts)
      .SetValidate(ValidateConvolution);
}

// Pooling's attributes, which its backward operator shares.
OpDef& PoolingAttrs(OpDef& op) {
  return op
      .Attr("kernel", AttrType::kInts, AttrValue{std::vector<int64_t>{}}, "window (kh, kw); may be () with global_pool")
      .Range(1)
      .Attr("pool_type", AttrType::kString, AttrValue{std::string("max")}, "max, avg, sum or lp")
      .Choices({"avg", "lp", "max", "sum"})
      .Attr("global_pool", AttrType::kBool, AttrValue{false},
            "pool over the whole H and W (kernel, stride, pad ignored)")
      .Attr("cudnn_off", AttrType::kBool, AttrValue{false}, "ignored")
      .Attr("pooling_convention", AttrType::kString, AttrValue{std::string("valid")},
            "valid: floor output size; full: ceil")
      .Choices({"full", "same", "valid"})
      .Attr("stride", AttrType::kInts, AttrValue{std::vector<int64_t>{}}, "stride (h, w); () means 1s")
      .Range(1)
      .Attr("pad", AttrType::kInts, AttrValue{std::vector<int64_t>{}}, "padding (h, w); () means 0s")
      .Range(0)
      .Attr("p_value", AttrType::kInt, AttrValue{std::monostate{}}, "p for lp pooling: 1, 2 or 3")
      .Attr("count_include_pad", AttrType::kBool, AttrValue{std::monostate{}},
            "avg divides by the window size including padding; None means True")
      .Attr("layout", AttrType::kString, AttrValue{std::monostate{}}, "NCHW or None only")
      .Choices({"NCW", "NCHW", "NCDHW", "NWC", "NHWC", "NDHWC"});
}

const bool kRegistered = [] {
  ConvolutionAttrs(
      OpRegistry::Global()
          .Register("Convolution")
          .Describe("2-D convolution of NCHW data with weight (num_filter, C/num_group, kh, kw) and optional bias"))
      .Inputs([](const Attrs& attrs) {
        return attrs.Bool("no_bias") ? std::vector<std::string>{"data", "weight"}
                                     : std::vector<std::string>{"data", "weight", "bias"};
      })
      .SetInferShape(InferConvolutionShape)
      .SetInferType(FloatSameType({"data", "weight", "bias"}))
      .SetPattern(OpPattern::kGemm)
      .SetChannelScaling({})
      .SetAcceptsEpilogue()
      .SetReference(ConvolutionReference)
      .SetLower(ConvolutionLower)
      .SetGradient(ConvolutionGradient)
      .SetAlter(AlterConvolutionToWinograd);

  ConvolutionAttrs(
      OpRegistry::Global()
          .Register("_backward_Convolution_data")
          .Describe("Convolution's data gradient from the output gradient and the weight (data gives the shape)"))
      .Inputs({"out_grad", "data", "weight"})
      .SetInferShape(InferConvDataGradShape)
      .SetInferType(FloatSameType({"out_grad", "data", "weight"}))
      .SetPattern(OpPattern::kOpaque)
      .SetReference(ConvDataGradReference)
      .SetLower(ConvDataGradLower)
      .SetAlter(AlterConvDataGradToWinograd);

  ConvolutionAttrs(OpRegistry::Global()
                       .Register("_backward_Convolution_weight")
                       .Describe("Convolution's weight gradient from the output gradient and the data"))
      .Inputs({"out_grad", "data"})
      .SetInferShape(InferConvWeightGradShape)
      .SetInferType(FloatSameType({"out_grad", "data"}))
      .SetPattern(OpPattern::kOpaque)
      .SetReference(ConvWeightGradReference)
      .SetLower(ConvWeightGradLower);

  PoolingAttrs(OpRegistry::Global().Register("Pooling").Describe("2-D max, average, sum or Lp pooling of NCHW data"))
      .SetValidate(ValidatePooling)
      .SetInferShape(InferPoolingShape)
      .SetInferType(FloatSameType({"data"}))
      .SetPattern(OpPattern::kOpaque)
      // An activation after pooling applies as each window's value is stored.
      .SetAcceptsEpilogue()
      .SetReference(PoolingReference)
      .SetLower(PoolingLower)
      .SetGradient(PoolingGradient);

  PoolingAttrs(
      OpRegistry::Global()
          .Register("_backward_Pooling")
          .Describe("Pooling's data gradient (max, avg, sum) from the output gradient, the data and the output"))
      .SetValidate(CheckPoolingGradType)
      .Inputs({"out_grad", "data", "output"})
      .SetInferShape(InferPoolingGradShape)
      .SetInferType(FloatSameType({"out_grad", "data", "output"}))
      .SetPattern(OpPattern::kOpaque)
      .SetReference(PoolingGradReference)
      .SetLower(PoolingGradLower);

  OpRegistry::Global()
      .Register("BatchNorm")
      .Describe("Batch normalization along `axis`; training mode uses batch statistics and updates the moving ones")
      // MXNet's default is the float literal 1e-3f; as a double it is 0.0010000000474974513.
      .Attr("eps", AttrType::kFloat, AttrValue{static_cast<double>(1e-3f)}, "added to the variance")
      .Range(0)
      .Attr("momentum", AttrType::kFloat, AttrValue{0.9}, "moving = moving * momentum + batch * (1 - momentum)")
      .Range(0, 1)
      .Attr("fix_gamma", AttrType::kBool, AttrValue{true}, "treat gamma as 1")
      .Attr("use_global_stats", AttrType::kBool, AttrValue{false}, "use the moving statistics in training too")
      .Attr("output_mean_var", AttrType::kBool, AttrValue{false}, "also output the mean and inverse std")
      .Attr("axis", AttrType::kInt, AttrValue{int64_t{1}}, "the channel axis")
      .Attr("cudnn_off", AttrType::kBool, AttrValue{false}, "ignored")
      .Attr("min_calib_range", AttrType::kFloat, AttrValue{std::monostate{}}, "quantization calibration; ignored")
      .Attr("max_calib_range", AttrType::kFloat, AttrValue{std::monostate{}}, "quantization calibration; ignored")
      .Inputs(kBatchNormInputs)
      .AuxInputs({3, 4})
      .Outputs([](const Attrs& attrs) {
        return attrs.Bool("output_mean_var") ? std::vector<std::string>{"output", "mean", "var"}
                                             : std::vector<std::string>{"output"};
      })
      .SetInferShape(InferBatchNormShape)
      .SetInferType(InferBatchNormType)
      .SetPattern(OpPattern::kOpaque)
      .SetMutatedInputs([](const Attrs& attrs, bool is_train) {
        return is_train && !attrs.Bool("use_global_stats") ? std::vector<int>{3, 4} : std::vector<int>{};
      })
      .SetInferenceAffine(BatchNormAffine)
      .SetReference(BatchNormReference)
      .SetLower(BatchNormLower)
      .SetGradient(BatchNormGradient);

  DropoutAttrs(OpRegistry::Global().Register("Dropout").Describe(
                   "Zeroes elements with probability p in training (or always) and scales the rest by 1/(1-p)"))
      .SetRandomAtInference([](const Attrs& attrs) { return attrs.Str("mode") == "always" && attrs.Float("p") > 0; });

  // What training steps compile Dropout to: one compiled step runs many times, and each
  // run must draw a fresh mask, so the draw's position in the stream is an input.
  DropoutAttrs(
      OpRegistry::Global()
          .Register("_dropout_step")
          .Describe("Dropout whose mask comes from the node's stream at step `counter` (int64, one element): step "
                    "k draws the stream's elements k * mask_size onwards"))
      .Inputs({"data", "counter"})
      .SetRandomAtInference([](const Attrs& attrs) { return attrs.Float("p") > 0; });
  return true;
}();

}  // namespace
}  // namespace kiln
