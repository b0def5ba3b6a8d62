// Softmax and the output (loss) layers: softmax, log_softmax, SoftmaxOutput,
// Linear/Logistic/MAERegressionOutput, softmax_cross_entropy. Forward only; the loss
// layers' gradients arrive with training.
#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <optional>

#include "codegen/kir/kir.h"
#include "codegen/lower/lower_util.h"
#include "graph/gradient.h"
#include "graph/op_util.h"

namespace kiln {
namespace {

using op_util::AssignShape;
using op_util::AssignType;
using op_util::ShapeError;

std::string Name(DType dtype) {
  return std::string(DTypeName(dtype));
}

void RequireFloat(const DTypeSlot& slot, const std::string& what) {
  if (slot && !IsFloat(*slot)) {
    throw Error(what + ": expected a floating-point dtype (float16, bfloat16, float32, float64), given " + Name(*slot));
  }
}

// The loss layers: data, label and output share one floating-point dtype, as in MXNet
// (an int32 label next to float32 data is an error there too).
void SameFloatType(const std::vector<std::string>& input_names, std::vector<DTypeSlot>& inputs,
                   std::vector<DTypeSlot>& outputs) {
  DTypeSlot known;
  for (const auto& slot : inputs) known = known ? known : slot;
  for (const auto& slot : outputs) known = known ? known : slot;
  if (!known) return;
  for (size_t i = 0; i < inputs.size(); ++i) AssignType(inputs[i], *known, "input '" + input_names[i] + "'");
  AssignType(outputs[0], *known, "output");
  RequireFloat(inputs[0], "input '" + input_names[0] + "'");
}

// Out-of-range class indices are clipped to [0, classes): MXNet reads past the row
// there (undefined results); clipping is MXNet's rule elsewhere (Embedding, pick).
int64_t ClipIndex(double value, int64_t classes) {
  if (!(value >= 0)) return 0;  // negative or NaN
  if (value >= static_cast<double>(classes - 1)) return classes - 1;
  return static_cast<int64_t>(value);  // truncates toward zero, as MXNet's cast does
}

// Softmax (or log-softmax) of x / temperature over the middle index of an
// (outer, classes, inner) view. valid(o, i) gives how many leading classes take part
// (use_length); the others are written as 0. The row is read before any write, so `out`
// may share `in`'s storage.
void SoftmaxRows(const Tensor& in, Tensor& out, int64_t outer, int64_t classes, int64_t inner, double temperature,
                 bool log, const std::function<int64_t(int64_t, int64_t)>& valid) {
  std::vector<double> row(static_cast<size_t>(classes));
  for (int64_t o = 0; o < outer; ++o) {
    for (int64_t i = 0; i < inner; ++i) {
      const int64_t base = o * classes * inner + i;
      const int64_t n = valid ? valid(o, i) : classes;
      for (int64_t c = 0; c < classes; ++c) row[c] = in.GetDouble(base + c * inner) / temperature;
      double max = -std::numeric_limits<double>::infinity();
      for (int64_t c = 0; c < n; ++c) max = std::max(max, row[c]);
      double sum = 0;
      for (int64_t c = 0; c < n; ++c) sum += std::exp(row[c] - max);
      for (int64_t c = 0; c < classes; ++c) {
        double value = 0;
        if (c < n) value = log ? row[c] - max - std::log(sum) : std::exp(row[c] - max) / sum;
        out.SetDouble(base + c * inner, value);
      }
    }
  }
}

int64_t Product(const Shape& shape, size_t begin, size_t end) {
  int64_t product = 1;
  for (size_t d = begin; d < end; ++d) product *= shape[d];
  return product;
}

bool UseLength(const Attrs& attrs) {
  return !attrs.IsNone("use_length") && attrs.Bool("use_length");
}

// --- Lowering ---
//
// Softmax rows as SoftmaxRows computes them, in three passes per row: the maximum, the
// sum of exponentials, then the normalized outputs; each pass reads x again, and x at a
// position is read before out there is written, so out may share x's storage. The
// kernel's parallel loop runs over rows (rows x tiles of up to kTile columns of `inner`
// when the axis is not the last: then every pass is an elementwise loop over a contiguous
// tile). Along a contiguous axis the max and sum passes keep kLanes partial results, so
// an emitter vectorizes them without reassociating. Arithmetic is in float32 (float64
// when the input or output is float64); the normalization multiplies by 1/sum.

using kir::Expr;
using kir::ScalarType;
using kir::Stmt;

constexpr int64_t kTile = 256;
constexpr int64_t kLanes = 8;

Expr Zero() {
  return Expr(int64_t{0});
}

Stmt ForRange(const Expr& var, int64_t extent, Stmt body, kir::LoopKind kind = kir::LoopKind::kSerial) {
  return kir::For(var, Zero(), Expr(extent), std::move(body), kind);
}

// acc[0] = combine over c in [0, n) of value(c), in kLanes partial results (n is at
// least 2 * kLanes; acc holds kLanes elements, all initialized).
Stmt LaneReduce(const kir::Buffer& acc, int64_t n, const std::function<Expr(const Expr& c)>& value,
                const std::function<Expr(const Expr& a, const Expr& v)>& combine) {
  const auto update = [&](const Expr& slot, const Expr& v) {
    return kir::Store(acc, slot, combine(kir::Load(acc, slot), v));
  };
  const Expr c = kir::Var("c");
  const Expr lane = kir::Var("lane");
  const Expr rest = kir::Var("rest");
  const int64_t body_end = n - n % kLanes;
  std::vector<Stmt> steps = {
      ForRange(c, n / kLanes,
               ForRange(lane, kLanes, update(lane, value(c * Expr(kLanes) + lane)), kir::LoopKind::kVectorize)),
      kir::For(rest, Expr(body_end), Expr(n - body_end), update(Zero(), value(rest)))};
  for (int64_t k = 1; k < kLanes; ++k) steps.push_back(update(Zero(), kir::Load(acc, Expr(k))));
  return kir::Block(std::move(steps));
}

// The classes (outer, classes, inner) view of a softmax and what modifies it.
struct SoftmaxView {
  int64_t outer = 1;
  int64_t classes = 1;
  int64_t inner = 1;
  double temperature = 1.0;
  bool log = false;
  kir::Buffer length;  // per (outer, inner) valid class count (use_length); null: all
};

// SoftmaxOutput's rows, as MXNet computes them: multi_output normalizes over axis 1,
// preserve_shape over the last axis, and otherwise over everything but axis 0 (data
// flattened to (N, -1)).
SoftmaxView SoftmaxOutputView(const Attrs& attrs, const Shape& shape) {
  SoftmaxView view;
  view.outer = shape[0];
  view.classes = NumElements(shape) / std::max<int64_t>(view.outer, 1);
  if (attrs.Bool("multi_output")) {
    view.classes = shape[1];
    view.inner = Product(shape, 2, shape.size());
  } else if (attrs.Bool("preserve_shape")) {
    view.classes = shape.back();
    view.outer = Product(shape, 0, shape.size() - 1);
  }
  return view;
}

// std::max's rule, as SoftmaxRows: a NaN never becomes the maximum.
Expr KirMax(const Expr& a, const Expr& v) {
  return kir::Select(kir::Lt(a, v), v, a);
}

// The length input clipped to [0, classes] (it truncates toward zero: integers only).
Expr ValidCount(const SoftmaxView& view, const Expr& index) {
  const Expr length = kir::Cast(ScalarType::kInt64, kir::Load(view.length, index));
  return kir::Max(kir::Min(length, Expr(view.classes)), Zero());
}

// CUDA, rows of at least kMinBlockRow classes (inner 1): a block per row, the maximum
// and the sum as block reductions (kir's max: a NaN in the row makes it all NaN, as the
// reference's NaN sum does), then the row written by the block's threads.
constexpr int64_t kMinBlockRow = 256;

Stmt BlockSoftmaxRows(const SoftmaxView& view, LowerContext& ctx) {
  const kir::Buffer& in = ctx.inputs[0];
  const kir::Buffer& out = ctx.outputs[0];
  const bool wide = ctx.input_types[0] == DType::kFloat64 || ctx.output_types[0] == DType::kFloat64;
  const ScalarType type = wide ? ScalarType::kFloat64 : ScalarType::kFloat32;
  const auto c = [&](double value) { return kir::FloatImm(value, type); };
  const kir::Buffer stat = ctx.builder->AddLocal("stat", type, 2);  // max, then sum
  const kir::Buffer valid = view.length ? ctx.builder->AddLocal("valid", ScalarType::kInt64, 1) : nullptr;
  const Expr row = kir::Var("row");
  const Expr cls = kir::Var("c");
  const Expr at = row * Expr(view.classes) + cls;
  const Expr x =
      view.temperature == 1.0 ? lower::LoadAs(in, at, type) : lower::LoadAs(in, at, type) / c(view.temperature);
  const auto masked = [&](const Expr& v, const Expr& otherwise) {
    return view.length ? kir::Select(kir::Lt(cls, kir::Load(valid, Zero())), v, otherwise) : v;
  };
  const Expr row_max = kir::Load(stat, Zero());
  const Expr row_sum = kir::Load(stat, Expr(1));
  std::vector<Stmt> steps;
  if (view.length) steps.push_back(kir::Store(valid, Zero(), ValidCount(view, row)));
  steps.push_back(kir::Store(stat, Zero(), c(-INFINITY)));
  steps.push_back(kir::For(cls, Zero(), Expr(view.classes),
                           kir::Store(stat, Zero(), kir::Max(row_max, masked(x, c(-INFINITY)))),
                           kir::LoopKind::kReduction));
  steps.push_back(kir::Store(stat, Expr(1), c(0)));
  steps.push_back(kir::For(cls, Zero(), Expr(view.classes),
                           kir::Store(stat, Expr(1), row_sum + masked(kir::Exp(x - row_max), c(0))),
                           kir::LoopKind::kReduction));
  steps.push_back(kir::Store(stat, Expr(1), view.log ? kir::Log(row_sum) : c(1) / row_sum));
  const Expr value = view.log ? (x - row_max) - row_sum : kir::Exp(x - row_max) * row_sum;
  steps.push_back(kir::For(cls, Zero(), Expr(view.classes), lower::StoreFrom(out, at, masked(value, c(0))),
                           kir::LoopKind::kIndependent));
  Stmt body = kir::Allocate(stat, kir::Block(std::move(steps)));
  if (valid) body = kir::Allocate(valid, body);
  return kir::For(row, Zero(), Expr(view.outer), body, kir::LoopKind::kParallel);
}

Stmt LowerSoftmaxRows(const SoftmaxView& view, LowerContext& ctx) {
  if (ctx.target == LowerTarget::kCuda && view.inner == 1 && view.classes >= kMinBlockRow && view.outer > 0) {
    return BlockSoftmaxRows(view, ctx);
  }
  const kir::Buffer& in = ctx.inputs[0];
  const kir::Buffer& out = ctx.outputs[0];
  const bool wide = ctx.input_types[0] == DType::kFloat64 || ctx.output_types[0] == DType::kFloat64;
  const ScalarType type = wide ? ScalarType::kFloat64 : ScalarType::kFloat32;
  const auto c = [&](double value) { return kir::FloatImm(value, type); };
  if (view.outer == 0 || view.classes == 0 || view.inner == 0) return kir::Block({});
  const int64_t width = view.inner > 1 ? std::min(view.inner, kTile) : 1;
  const int64_t tiles = (view.inner + width - 1) / width;
  const int64_t tasks = view.outer * tiles;
  const bool lanes = view.inner == 1 && view.classes >= 2 * kLanes;
  // Per column of the tile: the running maximum, then the sum (lanes: partial results).
  const kir::Buffer max = ctx.builder->AddLocal("max", type, lanes ? kLanes : width);
  const kir::Buffer sum = ctx.builder->AddLocal("sum", type, lanes ? kLanes : width);
  const kir::Buffer valid = view.length ? ctx.builder->AddLocal("valid", ScalarType::kInt64, width) : nullptr;

  const Expr t = kir::Var("task");
  const Expr o = view.inner > 1 ? t / Expr(tiles) : t;
  const Expr i0 = view.inner > 1 ? (t % Expr(tiles)) * Expr(width) : Zero();
  const Expr j = kir::Var("j");
  const Expr extent = view.inner % width == 0 ? Expr(width) : kir::Min(Expr(width), Expr(view.inner) - i0);
  // One statement per tile column (a single column when inner is 1).
  const auto columns = [&](Stmt body) {
    return view.inner > 1 ? kir::For(j, Zero(), extent, std::move(body), kir::LoopKind::kVectorize) : body;
  };
  const Expr column = view.inner > 1 ? j : Zero();
  const auto at = [&](const Expr& cls) { return (o * Expr(view.classes) + cls) * Expr(view.inner) + i0 + column; };
  const auto x = [&](const Expr& cls) {
    const Expr v = lower::LoadAs(in, at(cls), type);
    return view.temperature == 1.0 ? v : v / c(view.temperature);
  };
  const auto masked = [&](const Expr& cls, const Expr& v, const Expr& otherwise) {
    return view.length ? kir::Select(kir::Lt(cls, kir::Load(valid, column)), v, otherwise) : v;
  };
  const Expr row_max = kir::Load(max, column);
  const Expr row_sum = kir::Load(sum, column);

  std::vector<Stmt> steps;
  if (view.length) {
    steps.push_back(columns(kir::Store(valid, column, ValidCount(view, o * Expr(view.inner) + i0 + column))));
  }
  const auto pass = [&](const kir::Buffer& acc, double init, const std::function<Expr(const Expr&)>& value,
                        const std::function<Expr(const Expr&, const Expr&)>& combine) {
    if (lanes) {
      for (int64_t k = 0; k < kLanes; ++k) steps.push_back(kir::Store(acc, Expr(k), c(init)));
      steps.push_back(LaneReduce(acc, view.classes, value, combine));
      return;
    }
    steps.push_back(columns(kir::Store(acc, column, c(init))));
    const Expr cls = kir::Var("c");
    steps.push_back(
        ForRange(cls, view.classes, columns(kir::Store(acc, column, combine(kir::Load(acc, column), value(cls))))));
  };
  pass(
      max, -INFINITY, [&](const Expr& cls) { return masked(cls, x(cls), c(-INFINITY)); }, KirMax);
  // softmax whose output holds the compute type exactly: exp(x - max) is computed once,
  // stored into the output, summed from there and scaled in place (the same values as
  // computing it twice; a narrower output would round it twice).
  const bool exp_in_output = !view.log && ToScalarType(ctx.output_types[0]) == type;
  const auto exp_value = [&](const Expr& cls) { return masked(cls, kir::Exp(x(cls) - row_max), c(0)); };
  if (exp_in_output) {
    const Expr cls = kir::Var("c");
    steps.push_back(ForRange(cls, view.classes, columns(kir::Store(out, at(cls), exp_value(cls))),
                             view.inner > 1 ? kir::LoopKind::kSerial : kir::LoopKind::kVectorize));
  }
  pass(
      sum, 0.0, [&](const Expr& cls) { return exp_in_output ? kir::Load(out, at(cls)) : exp_value(cls); },
      [](const Expr& a, const Expr& v) { return a + v; });
  // sum becomes what pass three needs: 1/sum, or log(sum) for log_softmax, which is
  // (x - max) - log(sum): exact where max + log(sum) would round (inputs around 1e4).
  steps.push_back(columns(kir::Store(sum, column, view.log ? kir::Log(row_sum) : c(1) / row_sum)));
  const Expr cls = kir::Var("c");
  const Expr value = view.log        ? (x(cls) - row_max) - row_sum
                     : exp_in_output ? kir::Load(out, at(cls)) * row_sum
                                     : kir::Exp(x(cls) - row_max) * row_sum;
  // With one column the class loop itself is the contiguous, vectorizable one.
  steps.push_back(ForRange(cls, view.classes, columns(lower::StoreFrom(out, at(cls), masked(cls, value, c(0)))),
                           view.inner > 1 ? kir::LoopKind::kSerial : kir::LoopKind::kVectorize));

  Stmt body = kir::Allocate(max, kir::Allocate(sum, kir::Block(std::move(steps))));
  if (valid) body = kir::Allocate(valid, body);
  const bool parallel = tasks > 1 && view.outer * view.classes * view.inner >= ctx.MinParallelWork();
  return kir::For(t, Zero(), Expr(tasks), body, parallel ? kir::LoopKind::kParallel : kir::LoopKind::kSerial);
}

// 1 (int64) where the position along `axis` is below the length input, else 0: the
// positions use_length keeps (a length past the axis keeps all, one <= 0 none).
NodeEntry LengthMask(GradientContext& ctx, int64_t axis) {
  const Shape& shape = ctx.input_shapes[0];
  std::vector<int64_t> along(shape.size(), 1);
  along[static_cast<size_t>(axis)] = shape[static_cast<size_t>(axis)];
  const NodeEntry positions = ctx.Apply(
      "_np_reshape",
      {ctx.Apply("arange", {}, {{"start", 0.0}, {"stop", static_cast<double>(along[axis])}, {"dtype", DType::kInt64}})},
      {{"newshape", along}});
  const NodeEntry length =
      ctx.Apply("expand_dims", {ctx.Apply("Cast", {ctx.inputs[1]}, {{"dtype", DType::kInt64}})}, {{"axis", axis}});
  return ctx.Apply("broadcast_lesser", {positions, length});
}

// softmax: dx = y (g - sum(g y)) / T; log_softmax: dx = (g - softmax(x / T) sum(g)) / T,
// sums over the axis. With use_length, as MXNet: the sum runs over the positions below
// the length, the others get 0 (whatever their head gradient); the length gets none.
GradientFn SoftmaxGradient(bool log) {
  return [log](GradientContext& ctx) {
    const int64_t axis = op_util::NormalizeAxis(ctx.attrs.Int("axis"), static_cast<int64_t>(ctx.input_shapes[0].size()),
                                                "attribute 'axis'");
    const AttrMap over_axis = {{"axis", std::vector<int64_t>{axis}}, {"keepdims", true}};
    NodeEntry g = ctx.OutputGrad(0);
    const NodeEntry& y = ctx.outputs[0];
    std::optional<NodeEntry> mask;
    const auto masked = [&](const NodeEntry& v) {
      return mask ? ctx.Apply("where", {*mask, v, ctx.Apply("zeros_like", {v})}) : v;
    };
    if (UseLength(ctx.attrs)) {
      mask = LengthMask(ctx, axis);
      g = masked(g);
    }
    NodeEntry dx;
    if (log) {
      const NodeEntry probabilities = ctx.Apply("exp", {y});
      dx = ctx.Apply("broadcast_sub",
                     {g, ctx.Apply("broadcast_mul", {probabilities, ctx.Apply("sum", {g}, over_axis)})});
    } else {
      const NodeEntry weighted = ctx.Apply("sum", {ctx.Apply("broadcast_mul", {g, y})}, over_axis);
      dx = masked(ctx.Apply("broadcast_mul", {y, ctx.Apply("broadcast_sub", {g, weighted})}));
    }
    if (!ctx.attrs.IsNone("temperature"))
      dx = ctx.Apply("_div_scalar", {dx}, {{"scalar", ctx.attrs.Float("temperature")}});
    if (ctx.output_types[0] != ctx.input_types[0]) dx = ctx.Apply("Cast", {dx}, {{"dtype", ctx.input_types[0]}});
    ctx.SetInputGrad(0, dx);
  };
}

void RegisterSoftmax(const char* name, const char* doc, bool log) {
  OpRegistry::Global()
      .Register(name)
      .Describe(doc)
      .Attr("axis", AttrType::kInt, AttrValue{int64_t{-1}}, "the axis to normalize over")
      .Attr("temperature", AttrType::kFloat, AttrValue{}, "divides the input; None means 1")
      .Attr("dtype", AttrType::kDType, AttrValue{},
            "output dtype (float16, bfloat16, float32, float64); None: the input's")
      .Attr("use_length", AttrType::kBool, AttrValue{false}, "mask the axis beyond a per-row length input")
      .Nullable()
      .SetValidate([log](const Attrs& attrs) {
        if (!attrs.IsNone("temperature") && attrs.Float("temperature") == 0) {
          throw Error("attribute 'temperature': must be nonzero (None means 1), given 0");
        }
        if (!attrs.IsNone("dtype") && !IsFloat(attrs.GetDType("dtype"))) {
          throw Error("attribute 'dtype': expected one of {float16, bfloat16, float32, float64} or None, given " +
                      attrs.Str("dtype"));
        }
        // MXNet 1.9 declares no length input for log_softmax, so it cannot run this either.
        if (log && UseLength(attrs))
          throw Error("attribute 'use_length': log_softmax does not support use_length=True");
      })
      .Inputs([](const Attrs& attrs) {
        return UseLength(attrs) ? std::vector<std::string>{"data", "length"} : std::vector<std::string>{"data"};
      })
      .SetInferShape([](const Attrs& attrs, std::vector<ShapeSlot>& in, std::vector<ShapeSlot>& out) {
        if (!in[0] && out[0]) in[0] = out[0];
        if (!in[0]) return;
        const Shape& data = *in[0];
        if (data.empty()) ShapeError("input 'data'", "at least 1-d", data);
        const int64_t axis =
            op_util::NormalizeAxis(attrs.Int("axis"), static_cast<int64_t>(data.size()), "attribute 'axis'");
        AssignShape(out[0], data, "output");
        if (UseLength(attrs)) {
          Shape length = data;
          length.erase(length.begin() + axis);
          AssignShape(in[1], length, "input 'length' (data shape without axis " + std::to_string(axis) + ")");
        }
      })
      .SetInferType([](const Attrs& attrs, std::vector<DTypeSlot>& in, std::vector<DTypeSlot>& out) {
        if (UseLength(attrs) && in[1] && (IsFloat(*in[1]) || *in[1] == DType::kBool)) {
          throw Error("input 'length': expected an integer dtype, given " + Name(*in[1]));
        }
        if (!attrs.IsNone("dtype")) {
          AssignType(out[0], attrs.GetDType("dtype"), "output");
        } else if (in[0]) {
          AssignType(out[0], *in[0], "output");
        } else if (out[0]) {
          in[0] = out[0];
        }
        RequireFloat(in[0], "input 'data'");
      })
      // Same storage only while the dtype stays the same.
      .SetInplace([](const Attrs& attrs) {
        return attrs.IsNone("dtype") ? std::vector<std::pair<int, int>>{{0, 0}} : std::vector<std::pair<int, int>>{};
      })
      .SetPattern(OpPattern::kOpaque)
      .SetReference([log](const Attrs& attrs, std::span<const Tensor> in, std::span<Tensor> out, const RefContext&) {
        const Shape& shape = in[0].shape();
        const size_t axis =
            static_cast<size_t>(op_util::NormalizeAxis(attrs.Int("axis"), static_cast<int64_t>(shape.size()), "axis"));
        const int64_t classes = shape[axis];
        const int64_t inner = Product(shape, axis + 1, shape.size());
        const double temperature = attrs.IsNone("temperature") ? 1.0 : attrs.Float("temperature");
        std::function<int64_t(int64_t, int64_t)> valid;
        if (UseLength(attrs)) {
          // A length past the axis is clipped (MXNet reads out of bounds there).
          valid = [&, classes, inner](int64_t o, int64_t i) {
            const double length = in[1].GetDouble(o * inner + i);
            return length <= 0 ? int64_t{0} : static_cast<int64_t>(std::min(length, static_cast<double>(classes)));
          };
        }
        SoftmaxRows(in[0], out[0], Product(shape, 0, axis), classes, inner, temperature, log, valid);
      })
      .SetLower([log](const Attrs& attrs, LowerContext& ctx) {
        const Shape& shape = ctx.input_shapes[0];
        const auto axis =
            static_cast<size_t>(op_util::NormalizeAxis(attrs.Int("axis"), static_cast<int64_t>(shape.size()), "axis"));
        SoftmaxView view;
        view.outer = Product(shape, 0, axis);
        view.classes = shape[axis];
        view.inner = Product(shape, axis + 1, shape.size());
        view.temperature = attrs.IsNone("temperature") ? 1.0 : attrs.Float("temperature");
        view.log = log;
        if (UseLength(attrs)) view.length = ctx.inputs[1];
        return LowerSoftmaxRows(view, ctx);
      })
      .SetGradient(SoftmaxGradient(log));
}

// SoftmaxOutput's accepted label shapes, the first being the one it infers: data's shape
// without the class axis, or data's own shape (probability labels). With multi_output
// the class axis is 1 and the spatial dims may also come flattened, (N, H*W), which is
// the inferred form, or keep a class axis of 1, (N, 1, H, W) (MXNet's three forms).
std::vector<Shape> SoftmaxOutputLabelShapes(const Attrs& attrs, const Shape& data) {
  if (attrs.Bool("multi_output")) {
    Shape spatial = {data[0]};
    spatial.insert(spatial.end(), data.begin() + 2, data.end());
    Shape one_class = data;
    one_class[1] = 1;
    std::vector<Shape> shapes;
    for (const Shape& shape : {Shape{data[0], Product(data, 2, data.size())}, spatial, one_class, data}) {
      if (std::find(shapes.begin(), shapes.end(), shape) == shapes.end()) shapes.push_back(shape);
    }
    return shapes;
  }
  return {Shape(data.begin(), data.end() - 1), data};
}
// SoftmaxOutput's gradient, as MXNet 1.9.1's (softmax_output-inl.h). A label of data's
// own shape holds probabilities: (softmax - label) * grad_scale, no normalization.
// Otherwise softmax - one_hot(label) over the classes (data viewed as (outer, classes,
// inner) like the forward), rows whose label is ignore_label zeroed with use_ignore
// (labels and ignore_label compared as integers, truncated), times grad_scale divided by
//   multi_output (label (N, inner)): inner (null), inner * N (batch), or the count of
//     labels other than ignore_label, at least 1 (valid);
//   otherwise: 1 (null), the label's element count (batch), or its count of labels
//     other than ignore_label, at least 1 (valid).
// Without multi_output row r's class is the label's flattened element r: 4-d data
// (N, C, H, W) is (N, C*H*W) rows of which only the first N of the (N, C, H) labels
// are read (but batch and valid count all of them). With out_grad the gradient is also
// multiplied by the head gradient, which is otherwise ignored.
void SoftmaxOutputGradient(GradientContext& ctx) {
  const Attrs& attrs = ctx.attrs;
  if (attrs.Float("smooth_alpha") != 0) throw Error("SoftmaxOutput's gradient with smooth_alpha is not supported");
  const Shape& shape = ctx.input_shapes[0];
  const Shape& label_shape = ctx.input_shapes[1];
  const double grad_scale = attrs.Float("grad_scale");
  const auto reshape = [&](const NodeEntry& v, const std::vector<int64_t>& to) {
    return ctx.Apply("_np_reshape", {v}, {{"newshape", to}});
  };
  const auto with_out_grad = [&](const NodeEntry& grad, const std::vector<int64_t>& grad_shape) {
    return attrs.Bool("out_grad") ? ctx.Apply("broadcast_mul", {grad, reshape(ctx.OutputGrad(0), grad_shape)}) : grad;
  };
  const std::vector<int64_t> data_shape(shape.begin(), shape.end());
  if (label_shape == shape) {
    const NodeEntry diff = ctx.Apply("broadcast_sub", {ctx.outputs[0], ctx.inputs[1]});
    ctx.SetInputGrad(0, with_out_grad(ctx.Apply("_mul_scalar", {diff}, {{"scalar", grad_scale}}), data_shape));
    return;
  }
  const bool multi_output = attrs.Bool("multi_output");
  const SoftmaxView view = SoftmaxOutputView(attrs, shape);
  const int64_t outer = view.outer, classes = view.classes, inner = view.inner;
  const int64_t labels = NumElements(label_shape);
  if (labels < outer * inner) {
    throw Error("SoftmaxOutput's gradient: label " + ShapeToString(label_shape) + " holds fewer than the " +
                std::to_string(outer * inner) + " labels of data " + ShapeToString(shape));
  }
  const NodeEntry flat = reshape(ctx.inputs[1], {labels});
  // A flattened label's per-row part, (outer, inner).
  const auto rows = [&](const NodeEntry& v) {
    const NodeEntry used =
        labels == outer * inner
            ? v
            : ctx.Apply("slice_axis", {v}, {{"axis", int64_t{0}}, {"begin", int64_t{0}}, {"end", outer * inner}});
    return reshape(used, {outer, inner});
  };
  // one_hot appends the class axis: (outer, inner, classes) -> (outer, classes, inner).
  NodeEntry hot = ctx.Apply("one_hot", {rows(flat)}, {{"depth", classes}, {"dtype", ctx.input_types[0]}});
  hot = ctx.Apply("transpose", {hot}, {{"axes", std::vector<int64_t>{0, 2, 1}}});
  NodeEntry grad = ctx.Apply("broadcast_sub", {reshape(ctx.outputs[0], {outer, classes, inner}), hot});
  // MXNet compares static_cast<int>(label) with static_cast<int>(ignore_label).
  const double ignore = std::trunc(attrs.Float("ignore_label"));
  const NodeEntry whole = ctx.Apply("trunc", {flat});
  const NodeEntry at_ignore =
      ctx.Apply("broadcast_mul", {ctx.Apply("_greater_equal_scalar", {whole}, {{"scalar", ignore}}),
                                  ctx.Apply("_lesser_equal_scalar", {whole}, {{"scalar", ignore}})});
  const NodeEntry kept = ctx.Apply("_rminus_scalar", {at_ignore}, {{"scalar", 1.0}});
  if (attrs.Bool("use_ignore")) grad = ctx.Apply("broadcast_mul", {grad, reshape(rows(kept), {outer, 1, inner})});
  double scale = grad_scale;
  const std::string& normalization = attrs.Str("normalization");
  if (multi_output && normalization != "valid") scale /= static_cast<double>(std::max<int64_t>(inner, 1));
  if (normalization == "batch") {
    scale /= static_cast<double>(std::max<int64_t>(multi_output ? shape[0] : labels, 1));
  }
  grad = ctx.Apply("_mul_scalar", {grad}, {{"scalar", scale}});
  if (normalization == "valid") {
    const NodeEntry count = ctx.Apply("_maximum_scalar", {ctx.Apply("sum", {kept})}, {{"scalar", 1.0}});
    grad = ctx.Apply("broadcast_div", {grad, reshape(count, {1, 1, 1})});
  }
  ctx.SetInputGrad(0, reshape(with_out_grad(grad, {outer, classes, inner}), data_shape));
}

void RegisterSoftmaxOutput() {
  OpRegistry::Global()
      .Register("SoftmaxOutput")
      .Alias("Softmax")
      .Describe("Softmax with a cross-entropy loss gradient; the forward output is the softmax")
      .Attr("grad_scale", AttrType::kFloat, AttrValue{1.0}, "scales the gradient")
      .Attr("ignore_label", AttrType::kFloat, AttrValue{-1.0}, "label ignored in the gradient when use_ignore")
      .Attr("multi_output", AttrType::kBool, AttrValue{false}, "softmax over axis 1 of (N, C, ...)")
      .Attr("use_ignore", AttrType::kBool, AttrValue{false}, "skip ignore_label in the gradient")
      .Attr("preserve_shape", AttrType::kBool, AttrValue{false}, "softmax over the last axis")
      .Attr("normalization", AttrType::kString, AttrValue{std::string("null")}, "gradient normalization")
      .Choices({"null", "batch", "valid"})
      .Attr("out_grad", AttrType::kBool, AttrValue{false}, "multiply the gradient by the output gradient")
      .Attr("smooth_alpha", AttrType::kFloat, AttrValue{0.0}, "label smoothing in the gradient")
      .Inputs({"data", "label"})
      .LabelInputs({1})
      .SetInferShape([](const Attrs& attrs, std::vector<ShapeSlot>& in, std::vector<ShapeSlot>& out) {
        if (!in[0] && out[0]) in[0] = out[0];
        if (!in[0]) return;
        const Shape& data = *in[0];
        if (data.size() < 2) ShapeError("input 'data'", "at least 2-d (N, C, ...)", data);
        AssignShape(out[0], data, "output");
        const std::vector<Shape> labels = SoftmaxOutputLabelShapes(attrs, data);
        if (!in[1]) {
          in[1] = labels[0];
        } else if (std::find(labels.begin(), labels.end(), *in[1]) == labels.end()) {
          std::string expected = "shape";
          for (size_t i = 0; i < labels.size(); ++i) expected += (i ? " or " : " ") + ShapeToString(labels[i]);
          ShapeError("input 'label'", expected + " for data " + ShapeToString(data), *in[1]);
        }
      })
      .SetInferType([](const Attrs&, std::vector<DTypeSlot>& in, std::vector<DTypeSlot>& out) {
        SameFloatType({"data", "label"}, in, out);
      })
      .SetInplace(op_util::InplaceIdentity())
      .SetPattern(OpPattern::kOpaque)
      // As MXNet computes it: multi_output normalizes over axis 1, preserve_shape over the
      // last axis, and otherwise over everything but axis 0 (data flattened to (N, -1)).
      .SetReference([](const Attrs& attrs, std::span<const Tensor> in, std::span<Tensor> out, const RefContext&) {
        const SoftmaxView view = SoftmaxOutputView(attrs, in[0].shape());
        SoftmaxRows(in[0], out[0], view.outer, view.classes, view.inner, 1.0, false, nullptr);
      })
      .SetLower([](const Attrs& attrs, LowerContext& ctx) {
        return LowerSoftmaxRows(SoftmaxOutputView(attrs, ctx.input_shapes[0]), ctx);
      })
      .SetGradient(SoftmaxOutputGradient);
}

// MXNet's rule: the label defaults to data's shape, except (N,) for (N, 1) data; a given
// label needs data's first dimension and element count.
void RegressionShape(const Attrs&, std::vector<ShapeSlot>& in, std::vector<ShapeSlot>& out) {
  if (!in[0] && out[0]) in[0] = out[0];
  if (!in[0]) return;
  const Shape& data = *in[0];
  if (data.empty()) ShapeError("input 'data'", "at least 1-d", data);
  AssignShape(out[0], data, "output");
  if (!in[1]) {
    in[1] = data.size() == 2 && data[1] == 1 ? Shape{data[0]} : data;
  } else if (in[1]->empty() || (*in[1])[0] != data[0] || NumElements(*in[1]) != NumElements(data)) {
    ShapeError("input 'label'",
               "shape " + ShapeToString(data) + " (or another with " + std::to_string(data[0]) + " rows and " +
                   std::to_string(NumElements(data)) + " elements) for data " + ShapeToString(data),
               *in[1]);
  }
}

// MXNet's regression outputs: the gradient of data is (y - label) (MAE: its sign) times
// grad_scale / num_output, num_output the label's elements per sample; the head gradient
// is ignored, as a loss layer's is.
GradientFn RegressionGradient(bool mae) {
  return [mae](GradientContext& ctx) {
    const Shape& data = ctx.input_shapes[0];
    const Shape& label = ctx.input_shapes[1];
    const NodeEntry target =
        ctx.Apply("_np_reshape", {ctx.inputs[1]}, {{"newshape", std::vector<int64_t>(data.begin(), data.end())}});
    NodeEntry diff = ctx.Apply("broadcast_sub", {ctx.outputs[0], target});
    if (mae) diff = ctx.Apply("sign", {diff});
    const double per_sample =
        label.empty() || label[0] == 0 ? 1.0 : static_cast<double>(NumElements(label)) / static_cast<double>(label[0]);
    ctx.SetInputGrad(0, ctx.Apply("_mul_scalar", {diff}, {{"scalar", ctx.attrs.Float("grad_scale") / per_sample}}));
  };
}

void RegisterRegression(const char* name, const char* doc, double (*forward)(double),
                        Expr (*kir_forward)(const Expr&)) {
  OpRegistry::Global()
      .Register(name)
      .Describe(doc)
      .Attr("grad_scale", AttrType::kFloat, AttrValue{1.0}, "scales the gradient")
      .Inputs({"data", "label"})
      .LabelInputs({1})
      .SetInferShape(RegressionShape)
      .SetInferType([](const Attrs&, std::vector<DTypeSlot>& in, std::vector<DTypeSlot>& out) {
        SameFloatType({"data", "label"}, in, out);
      })
      .SetInplace(op_util::InplaceIdentity())
      .SetPattern(OpPattern::kOpaque)
      .SetReference([forward](const Attrs&, std::span<const Tensor> in, std::span<Tensor> out, const RefContext&) {
        for (int64_t i = 0; i < out[0].size(); ++i) out[0].SetDouble(i, forward(in[0].GetDouble(i)));
      })
      // Not a ScalarFn: the label (which may be shaped otherwise) is no operand of the
      // forward computation.
      .SetLower([kir_forward](const Attrs&, LowerContext& ctx) {
        const ScalarType type = lower::ComputeType(ctx.output_types[0]);
        return lower::ChunkedLoop(NumElements(ctx.output_shapes[0]), [&](const Expr& i) {
          return lower::StoreFrom(ctx.outputs[0], i, kir_forward(lower::LoadAs(ctx.inputs[0], i, type)));
        });
      })
      .SetGradient(RegressionGradient(std::string(name) == "MAERegressionOutput"));
}

// ClipIndex in kernel IR, for a float class index.
Expr KirClipIndex(const Expr& value, int64_t classes) {
  const auto c = [&](double v) { return kir::FloatImm(v, value.type()); };
  const Expr last(classes - 1);
  return kir::Select(kir::Ge(value, c(0)),
                     kir::Select(kir::Ge(value, c(static_cast<double>(classes - 1))), last,
                                 kir::Min(kir::Cast(ScalarType::kInt64, value), last)),
                     Zero());
}

// The loss is one number: rows run serially (a parallel loop would need a second kernel
// to add the tasks' partial sums), each in the three passes of the softmax.
Stmt LowerSoftmaxCrossEntropy(const Attrs&, LowerContext& ctx) {
  const int64_t rows = ctx.input_shapes[0][0];
  const int64_t classes = ctx.input_shapes[0][1];
  const ScalarType type = lower::ComputeType(ctx.output_types[0]);
  const kir::Buffer& data = ctx.inputs[0];
  // max, sum of exponentials, loss.
  const kir::Buffer acc = ctx.builder->AddLocal("acc", type, 3);
  const auto get = [&](int64_t k) { return kir::Load(acc, Expr(k)); };
  const auto set = [&](int64_t k, const Expr& v) { return kir::Store(acc, Expr(k), v); };
  const Expr r = kir::Var("r");
  const Expr c = kir::Var("c");
  const auto x = [&](const Expr& cls) { return lower::LoadAs(data, r * Expr(classes) + cls, type); };
  const Expr label = KirClipIndex(lower::LoadAs(ctx.inputs[1], r, type), classes);
  const Stmt row = kir::Block({
      set(0, kir::FloatImm(-INFINITY, type)),
      ForRange(c, classes, set(0, KirMax(get(0), x(c)))),
      set(1, kir::FloatImm(0, type)),
      ForRange(c, classes, set(1, get(1) + kir::Exp(x(c) - get(0)))),
      set(2, get(2) + get(0) + kir::Log(get(1)) - x(label)),
  });
  return kir::Allocate(acc, kir::Block({set(2, kir::FloatImm(0, type)), ForRange(r, rows, row),
                                        lower::StoreFrom(ctx.outputs[0], Zero(), get(2))}));
}

// data's gradient: (softmax(data) - one_hot(label)) times the head gradient, the loss
// being the sum over rows; the label gets none.
void SoftmaxCrossEntropyGradient(GradientContext& ctx) {
  const int64_t classes = ctx.input_shapes[0][1];
  const NodeEntry label =
      ctx.Apply("clip", {ctx.inputs[1]}, {{"a_min", 0.0}, {"a_max", static_cast<double>(classes - 1)}});
  const NodeEntry hot = ctx.Apply("one_hot", {label}, {{"depth", classes}, {"dtype", ctx.input_types[0]}});
  const NodeEntry diff =
      ctx.Apply("broadcast_sub", {ctx.Apply("softmax", {ctx.inputs[0]}, {{"axis", int64_t{-1}}}), hot});
  ctx.SetInputGrad(0, ctx.Apply("broadcast_mul", {diff, ctx.OutputGrad(0)}));
}

void RegisterSoftmaxCrossEntropy() {
  OpRegistry::Global()
      .Register("softmax_cross_entropy")
      .Describe("Sum over the batch of -log(softmax(data)[label]); data (N, C), label (N,) class indices")
      .Inputs({"data", "label"})
      // MXNet requires the label's shape to be given; it is inferred here, (N,), as
      // SoftmaxOutput's is.
      .SetInferShape([](const Attrs&, std::vector<ShapeSlot>& in, std::vector<ShapeSlot>& out) {
        AssignShape(out[0], {1}, "output");
        if (!in[0]) return;
        const Shape& data = *in[0];
        if (data.size() != 2 || data[1] < 1) ShapeError("input 'data'", "2-d (N, C) with C >= 1", data);
        AssignShape(in[1], {data[0]}, "input 'label' (one class index per row of data " + ShapeToString(data) + ")");
      })
      .SetInferType([](const Attrs&, std::vector<DTypeSlot>& in, std::vector<DTypeSlot>& out) {
        SameFloatType({"data", "label"}, in, out);
      })
      .SetPattern(OpPattern::kOpaque)
      .SetReference([](const Attrs&, std::span<const Tensor> in, std::span<Tensor> out, const RefContext&) {
        const int64_t rows = in[0].shape()[0];
        const int64_t classes = in[0].shape()[1];
        double loss = 0;
        for (int64_t r = 0; r < rows; ++r) {
          double max = -std::numeric_limits<double>::infinity();
          for (int64_t c = 0; c < classes; ++c) max = std::max(max, in[0].GetDouble(r * classes + c));
          double sum = 0;
          for (int64_t c = 0; c < classes; ++c) sum += std::exp(in[0].GetDouble(r * classes + c) - max);
          const int64_t label = ClipIndex(in[1].GetDouble(r), classes);
          loss += max + std::log(sum) - in[0].GetDouble(r * classes + label);
        }
        out[0].SetDouble(0, loss);
      })
      .SetLower(LowerSoftmaxCrossEntropy)
      .SetGradient(SoftmaxCrossEntropyGradient);
}

const bool kRegistered = [] {
  RegisterSoftmax("softmax", "exp(x/t) normalized to sum 1 along axis", false);
  RegisterSoftmax("log_softmax", "log of softmax along axis", true);
  RegisterSoftmaxOutput();
  const auto identity = [](const Expr& x) { return x; };
  RegisterRegression(
      "LinearRegressionOutput", "Identity forward; squared-error loss gradient", [](double x) { return x; }, identity);
  RegisterRegression(
      "MAERegressionOutput", "Identity forward; absolute-error loss gradient", [](double x) { return x; }, identity);
  RegisterRegression(
      "LogisticRegressionOutput", "Sigmoid forward; logistic loss gradient",
      [](double x) { return 1.0 / (1.0 + std::exp(-x)); },
      [](const Expr& x) {
        const Expr one = kir::FloatImm(1, x.type());
        return one / (one + kir::Exp(-x));
      });
  RegisterSoftmaxCrossEntropy();
  return true;
}();

}  // namespace
}  // namespace kiln
