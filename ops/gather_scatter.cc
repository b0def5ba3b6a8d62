// Gathers and scatters by index tensors, for ONNX's GatherElements, GatherND,
// ScatterElements (and the older Scatter) and ScatterND: MXNet's gather_nd, and kiln's
// take_along_axis, scatter_elements and scatter_nd_update where MXNet has no such
// operator.
//
// Indices follow ONNX: an index in [-n, 0) counts from the end of its axis. ONNX leaves
// any other out-of-range index undefined (MXNet's gather_nd raises); compiled kernels
// cannot fail, so gathers clip it into the axis (as take and Embedding do) and scatters
// skip its update (writing it at a clipped position would change an element the model
// never addressed). The reference does the same.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <optional>
#include <string>

#include "codegen/kir/kir.h"
#include "codegen/lower/lower_util.h"
#include "graph/gradient.h"
#include "graph/op_util.h"
#include "ops/index_util.h"

namespace kiln {
namespace {

using kir::Expr;
using kir::ScalarType;
using kir::Stmt;

using index_util::Zero;
using op_util::AssignShape;
using op_util::AssignType;
using op_util::ShapeError;

// --- index rules ---

// A gathered index into an axis of size n > 0: [-n, 0) counts from the end, then what
// is still out of range is clipped. gather_nd takes any numeric dtype, as MXNet: a float
// index moves by n when negative, then truncates toward zero (MXNet's order: -0.5 is
// n - 1), NaN reads 0.
int64_t GatherIndex(const Tensor& indices, int64_t k, int64_t n) {
  if (IsFloat(indices.dtype())) {
    double value = indices.GetDouble(k);
    if (value < 0) value += static_cast<double>(n);
    return index_util::ClipIndex(value, n);
  }
  int64_t value = op_util::LoadInt(indices, k);
  if (value < 0) value += n;  // no overflow: n > 0
  return std::clamp<int64_t>(value, 0, n - 1);
}

// A scattered index (int32 or int64): nullopt when out of range, and the update skipped.
std::optional<int64_t> ScatterIndex(const Tensor& indices, int64_t k, int64_t n) {
  int64_t value = op_util::LoadInt(indices, k);
  if (value < 0) value += n;
  if (value < 0 || value >= n) return std::nullopt;
  return value;
}

// The same rules in the kernel IR. Float indices compute in double, as the reference.
Expr KirGatherIndex(const LowerContext& ctx, int input, const Expr& k, int64_t n) {
  Expr value = index_util::LoadIndex(ctx, input, k);
  if (kir::IsFloatType(value.type())) {
    value = kir::Cast(ScalarType::kFloat64, value);
    const Expr zero = kir::FloatImm(0, ScalarType::kFloat64);
    return index_util::KirClipIndex(
        kir::Select(kir::Lt(value, zero), value + kir::FloatImm(static_cast<double>(n), ScalarType::kFloat64), value),
        n);
  }
  return index_util::KirClipIndex(kir::Select(kir::Lt(value, Zero()), value + Expr(n), value), n);
}

// The scattered index with [-n, 0) moved into range; KirInRange tells whether it is.
Expr KirScatterIndex(const LowerContext& ctx, int input, const Expr& k, int64_t n) {
  const Expr value = kir::Cast(ScalarType::kInt64, kir::Load(ctx.inputs[input], k));
  return kir::Select(kir::Lt(value, Zero()), value + Expr(n), value);
}

Expr KirInRange(const Expr& index, int64_t n) {
  return kir::And(kir::Ge(index, Zero()), kir::Lt(index, Expr(n)));
}

// --- shapes and dtypes ---

Shape Slice(const Shape& shape, size_t begin, size_t end) {
  return Shape(shape.begin() + static_cast<int64_t>(begin), shape.begin() + static_cast<int64_t>(end));
}

int64_t Offset(const std::vector<int64_t>& index, const Shape& shape) {
  const std::vector<int64_t> strides = Strides(shape);
  int64_t offset = 0;
  for (size_t d = 0; d < index.size(); ++d) offset += index[d] * strides[d];
  return offset;
}

// The ONNX-only operators take int32 or int64 indices, as ONNX does; int64 where the
// graph does not say.
void IndicesType(DTypeSlot& slot) {
  if (!slot) slot = DType::kInt64;
  if (*slot != DType::kInt32 && *slot != DType::kInt64) {
    throw Error("input 'indices': expected dtype int32 or int64, given " + std::string(DTypeName(*slot)));
  }
}

// take_along_axis and scatter_elements: data and indices of one rank, indices no larger
// than data off the axis (ONNX's rule; onnxruntime checks it), and an axis to index when
// there are indices. Returns the axis, non-negative.
size_t CheckElementsShapes(const Attrs& attrs, const Shape& data, const Shape& indices) {
  if (data.empty()) ShapeError("input 'data'", "at least 1-d", data);
  const auto axis = static_cast<size_t>(
      op_util::NormalizeAxis(attrs.Int("axis"), static_cast<int64_t>(data.size()), "attribute 'axis'"));
  if (indices.size() != data.size()) {
    ShapeError("input 'indices'", std::to_string(data.size()) + "-d like data " + ShapeToString(data), indices);
  }
  for (size_t d = 0; d < data.size(); ++d) {
    if (d != axis && indices[d] > data[d]) {
      ShapeError("input 'indices'",
                 "no dim larger than data " + ShapeToString(data) + "'s except along axis " + std::to_string(axis) +
                     "; dim " + std::to_string(d) + " is " + std::to_string(indices[d]) + " > " +
                     std::to_string(data[d]),
                 indices);
    }
  }
  if (data[axis] == 0 && NumElements(indices) > 0) {
    ShapeError("input 'data'",
               "a nonzero size along axis " + std::to_string(axis) + " for indices " + ShapeToString(indices), data);
  }
  return axis;
}

// gather_nd and scatter_nd_update: indices (M, Y0, ...) address data's first M axes,
// 1 <= M <= data's rank; data must have those axes nonempty where there are indices.
// `min_rank`: gather_nd's indices are at least 2-d, as MXNet's. Returns M.
size_t CheckNdShapes(const Shape& data, const Shape& indices, size_t min_rank) {
  if (indices.size() < min_rank) {
    ShapeError("input 'indices'",
               "at least " + std::to_string(min_rank) + "-d: (M, Y0, ...), M indices into data's first axes", indices);
  }
  const int64_t m = indices[0];
  if (m < 1 || m > static_cast<int64_t>(data.size())) {
    ShapeError(
        "input 'indices'",
        "a first dim M in [1, " + std::to_string(data.size()) + "] (M indices into data " + ShapeToString(data) + ")",
        indices);
  }
  if (NumElements(indices) > 0) {
    for (int64_t j = 0; j < m; ++j) {
      if (data[j] == 0) {
        ShapeError("input 'data'",
                   "a nonzero size along axis " + std::to_string(j) + " for indices " + ShapeToString(indices), data);
      }
    }
  }
  return static_cast<size_t>(m);
}

// The output has data's dtype, and a scatter's updates too.
void DataType(std::vector<DTypeSlot>& in, std::vector<DTypeSlot>& out, int updates = -1) {
  if (!in[0]) in[0] = out[0];
  if (!in[0] && updates >= 0) in[0] = in[updates];
  if (!in[0]) return;
  AssignType(out[0], *in[0], "output (the dtype of input 'data')");
  if (updates >= 0) AssignType(in[updates], *in[0], "input 'updates' (the dtype of input 'data')");
}

// The index rows of an nd operator: K = Y0 * ... rows, each a slice of data's last axes.
struct NdView {
  size_t m = 0;                  // indexed axes
  int64_t rows = 0;              // K
  int64_t slice = 1;             // elements per row
  std::vector<int64_t> strides;  // data's, for the first m axes
};

NdView MakeNdView(const Shape& data, const Shape& indices) {
  NdView view;
  view.m = static_cast<size_t>(indices[0]);
  view.rows = NumElements(Slice(indices, 1, indices.size()));
  view.slice = NumElements(Slice(data, view.m, data.size()));
  view.strides = Strides(data);
  view.strides.resize(view.m);
  return view;
}

// --- reductions ---

enum class Reduction { kNone, kAdd, kMul, kMax, kMin };

Reduction GetReduction(const Attrs& attrs) {
  const std::string& name = attrs.Str("reduction");
  if (name == "add") return Reduction::kAdd;
  if (name == "mul") return Reduction::kMul;
  if (name == "max") return Reduction::kMax;
  if (name == "min") return Reduction::kMin;
  return Reduction::kNone;
}

// out[pos] = reduce(out[pos], updates[k]). Floats in double: a double sum or product
// rounded to float32 is float32 arithmetic's result (double has over twice the
// precision), so this matches kernels, which compute float32 and float16 in float32.
// Integers and bool in int64 with wrapping, as kernels compute them. max and min
// propagate NaN, as kir's Max and Min do.
void ApplyUpdate(Tensor& out, int64_t pos, const Tensor& updates, int64_t k, Reduction reduction) {
  if (reduction == Reduction::kNone) {
    out.CopyElement(pos, updates, k);
    return;
  }
  if (IsFloat(out.dtype())) {
    const double a = out.GetDouble(pos), b = updates.GetDouble(k);
    double value = 0;
    switch (reduction) {
      case Reduction::kAdd: value = a + b; break;
      case Reduction::kMul: value = a * b; break;
      case Reduction::kMax: value = std::isnan(a) || a > b ? a : b; break;
      case Reduction::kMin: value = std::isnan(a) || a < b ? a : b; break;
      case Reduction::kNone: break;
    }
    out.SetDouble(pos, value);
    return;
  }
  const int64_t a = op_util::LoadInt(out, pos), b = op_util::LoadInt(updates, k);
  const auto wrap = [](uint64_t v) { return static_cast<int64_t>(v); };
  int64_t value = 0;
  switch (reduction) {
    case Reduction::kAdd: value = wrap(static_cast<uint64_t>(a) + static_cast<uint64_t>(b)); break;
    case Reduction::kMul: value = wrap(static_cast<uint64_t>(a) * static_cast<uint64_t>(b)); break;
    case Reduction::kMax: value = std::max(a, b); break;
    case Reduction::kMin: value = std::min(a, b); break;
    case Reduction::kNone: break;
  }
  if (out.dtype() == DType::kUInt64 && (reduction == Reduction::kMax || reduction == Reduction::kMin)) {
    const auto x = static_cast<uint64_t>(a), y = static_cast<uint64_t>(b);
    value = static_cast<int64_t>(reduction == Reduction::kMax ? std::max(x, y) : std::min(x, y));
  }
  op_util::StoreInt(out, pos, value);
}

// The kernel's ApplyUpdate: floats in their compute type, integers and bool in int64.
Stmt KirApplyUpdate(const LowerContext& ctx, const Expr& pos, const Expr& k, Reduction reduction) {
  const kir::Buffer& out = ctx.outputs[0];
  const kir::Buffer& updates = ctx.inputs[2];
  if (reduction == Reduction::kNone) return kir::Store(out, pos, kir::Load(updates, k));
  const DType dtype = ctx.output_types[0];
  // uint64 orders as unsigned; the other integers hold their values in int64.
  const ScalarType type = IsFloat(dtype) || dtype == DType::kUInt64 ? lower::ComputeType(dtype) : ScalarType::kInt64;
  const Expr a = kir::Cast(type, kir::Load(out, pos));
  const Expr b = kir::Cast(type, kir::Load(updates, k));
  Expr value;
  switch (reduction) {
    case Reduction::kAdd: value = a + b; break;
    case Reduction::kMul: value = a * b; break;
    case Reduction::kMax: value = kir::Max(a, b); break;
    case Reduction::kMin: value = kir::Min(a, b); break;
    case Reduction::kNone: break;
  }
  return lower::StoreFrom(out, pos, value);
}

OpDef& ReductionAttr(OpDef& op) {
  return op
      .Attr("reduction", AttrType::kString, AttrValue{std::string("none")},
            "how an update combines with the element: none (replaces), add, mul, max or min; duplicates apply in "
            "index order")
      .Choices({"none", "add", "mul", "max", "min"});
}

// A scatter's kernel: data copied to the output, then the updates in order in serial
// loops (with a reduction, duplicates accumulate in order; without, the last wins). The
// copy stays serial too: a kernel's parallel loop must be its whole body.
Stmt CopyThenScatter(const LowerContext& ctx, Stmt scatter) {
  const Expr i = kir::Var("i");
  const int64_t size = NumElements(ctx.output_shapes[0]);
  if (size == 0) return kir::Block({});
  Stmt copy = kir::For(i, Zero(), Expr(size), kir::Store(ctx.outputs[0], i, kir::Load(ctx.inputs[0], i)),
                       kir::LoopKind::kVectorize);
  return scatter ? kir::Block({copy, scatter}) : copy;
}

void CopyData(const Tensor& data, Tensor& out) {
  if (data.nbytes() > 0) std::memcpy(out.data(), data.data(), data.nbytes());
}

// --- Gradients ---
//
// The gathers' data gradient adds the output gradient at the positions read (with the
// gathers' index rules: negative counts from the end, others clip), the scatters route
// the gradient back; only "none" and "add" scatters are differentiated.

NodeEntry Zeros(GradientContext& ctx, const Shape& shape, DType dtype) {
  return ctx.Apply("zeros", {}, {{"shape", std::vector<int64_t>(shape.begin(), shape.end())}, {"dtype", dtype}});
}

// Indices resolved as a gather resolves them, among n, as int64: i + n where i < 0, then
// clipped to [0, n) (a float truncated toward zero).
NodeEntry GatherPositions(GradientContext& ctx, const NodeEntry& indices, int64_t n) {
  const NodeEntry negative = ctx.Apply(
      "_rminus_scalar", {ctx.Apply("_greater_equal_scalar", {indices}, {{"scalar", 0.0}})}, {{"scalar", 1.0}});
  const NodeEntry shifted =
      ctx.Apply("broadcast_add", {indices, ctx.Apply("_mul_scalar", {negative}, {{"scalar", static_cast<double>(n)}})});
  const NodeEntry clipped = ctx.Apply("clip", {shifted}, {{"a_min", 0.0}, {"a_max", static_cast<double>(n - 1)}});
  return ctx.Apply("Cast", {clipped}, {{"dtype", DType::kInt64}});
}

// gather_nd's indices (M, ...) resolved row by row (row j among data.shape[j]).
NodeEntry GatherNdPositions(GradientContext& ctx, const NodeEntry& indices, const Shape& data, const Shape& shape) {
  const int64_t m = shape[0];
  if (m == 1) return GatherPositions(ctx, indices, data[0]);
  std::vector<NodeEntry> rows;
  for (int64_t j = 0; j < m; ++j) {
    const NodeEntry row = ctx.Apply("slice_axis", {indices}, {{"axis", int64_t{0}}, {"begin", j}, {"end", j + 1}});
    rows.push_back(GatherPositions(ctx, row, data[j]));
  }
  return ctx.Apply("Concat", rows, {{"num_args", m}, {"dim", int64_t{0}}});
}

void GatherNdGradient(GradientContext& ctx) {
  const Shape& data = ctx.input_shapes[0];
  if (NumElements(ctx.output_shapes[0]) == 0 || NumElements(data) == 0) {
    ctx.SetInputGrad(0, Zeros(ctx, data, ctx.input_types[0]));
    return;
  }
  const NodeEntry positions = GatherNdPositions(ctx, ctx.inputs[1], data, ctx.input_shapes[1]);
  ctx.SetInputGrad(0,
                   ctx.Apply("scatter_nd_update", {Zeros(ctx, data, ctx.input_types[0]), positions, ctx.OutputGrad(0)},
                             {{"reduction", "add"}}));
}

void TakeAlongAxisGradient(GradientContext& ctx) {
  const Shape& data = ctx.input_shapes[0];
  if (NumElements(ctx.output_shapes[0]) == 0) {
    ctx.SetInputGrad(0, Zeros(ctx, data, ctx.input_types[0]));
    return;
  }
  const size_t axis = CheckElementsShapes(ctx.attrs, data, ctx.input_shapes[1]);
  const NodeEntry positions = GatherPositions(ctx, ctx.inputs[1], data[axis]);
  ctx.SetInputGrad(0,
                   ctx.Apply("scatter_elements", {Zeros(ctx, data, ctx.input_types[0]), positions, ctx.OutputGrad(0)},
                             {{"axis", static_cast<int64_t>(axis)}, {"reduction", "add"}}));
}

void CheckScatterReduction(GradientContext& ctx) {
  const std::string& reduction = ctx.attrs.Str("reduction");
  if (reduction != "none" && reduction != "add") {
    throw Error(ctx.node.op->name() + ": no gradient for attribute 'reduction' '" + reduction +
                "'; expected none or add");
  }
}

// data: the gradient, zeroed where an update replaced the element ("none"), whole
// ("add"); updates: the gradient read where each was written (duplicate indices under
// "none" are assumed absent: only the last one's write survives).
void ScatterElementsGradient(GradientContext& ctx) {
  CheckScatterReduction(ctx);
  const NodeEntry g = ctx.OutputGrad(0);
  const AttrMap axis{{"axis", ctx.attrs.Int("axis")}};
  if (ctx.attrs.Str("reduction") == "none") {
    ctx.SetInputGrad(0,
                     ctx.Apply("scatter_elements", {g, ctx.inputs[1], ctx.Apply("zeros_like", {ctx.inputs[2]})}, axis));
  } else {
    ctx.SetInputGrad(0, g);
  }
  if (NumElements(ctx.input_shapes[1]) > 0) ctx.SetInputGrad(2, ctx.Apply("take_along_axis", {g, ctx.inputs[1]}, axis));
}

void ScatterNdGradient(GradientContext& ctx) {
  CheckScatterReduction(ctx);
  const NodeEntry g = ctx.OutputGrad(0);
  if (ctx.attrs.Str("reduction") == "none") {
    ctx.SetInputGrad(0, ctx.Apply("scatter_nd_update", {g, ctx.inputs[1], ctx.Apply("zeros_like", {ctx.inputs[2]})}));
  } else {
    ctx.SetInputGrad(0, g);
  }
  if (NumElements(ctx.input_shapes[2]) > 0) ctx.SetInputGrad(2, ctx.Apply("gather_nd", {g, ctx.inputs[1]}));
}

// --- gather_nd ---

void RegisterGatherNd() {
  OpRegistry::Global()
      .Register("gather_nd")
      .Describe(
          "Gathers slices of data at index tuples: indices (M, Y0, ...) address data's first M axes, the output is "
          "(Y0, ..., data.shape[M:]). Negative indices count from the end; others out of range clip (MXNet "
          "raises)")
      .Inputs({"data", "indices"})
      .SetInferShape([](const Attrs&, std::vector<ShapeSlot>& in, std::vector<ShapeSlot>& out) {
        if (!in[0] || !in[1]) return;
        const Shape& data = *in[0];
        const Shape& indices = *in[1];
        const size_t m = CheckNdShapes(data, indices, 2);
        Shape shape = Slice(indices, 1, indices.size());
        for (size_t d = m; d < data.size(); ++d) shape.push_back(data[d]);
        AssignShape(out[0], shape, "output");
      })
      // As MXNet: the output has data's dtype; the indices may be any numeric dtype.
      .SetInferType([](const Attrs&, std::vector<DTypeSlot>& in, std::vector<DTypeSlot>& out) { DataType(in, out); })
      .SetPattern(OpPattern::kInjective)
      .SetReference([](const Attrs&, std::span<const Tensor> in, std::span<Tensor> out, const RefContext&) {
        const Shape& shape = in[0].shape();
        const NdView view = MakeNdView(shape, in[1].shape());
        for (int64_t r = 0; r < view.rows; ++r) {
          int64_t offset = 0;
          for (size_t j = 0; j < view.m; ++j) {
            offset += GatherIndex(in[1], static_cast<int64_t>(j) * view.rows + r, shape[j]) * view.strides[j];
          }
          for (int64_t c = 0; c < view.slice; ++c) out[0].CopyElement(r * view.slice + c, in[0], offset + c);
        }
      })
      // Per index row: its data offset into a local first, then the slice copied in
      // data's own type.
      .SetLower([](const Attrs&, LowerContext& ctx) {
        const Shape& shape = ctx.input_shapes[0];
        const NdView view = MakeNdView(shape, ctx.input_shapes[1]);
        if (view.rows == 0 || view.slice == 0) return kir::Block({});
        const kir::Buffer offset = ctx.builder->AddLocal("offset", ScalarType::kInt64, 1);
        const Expr slice(view.slice);
        return index_util::RowLoop(
            ctx, view.rows, view.slice,
            [&](const Expr& r, const Expr& c) {
              return kir::Store(ctx.outputs[0], r * slice + c, kir::Load(ctx.inputs[0], kir::Load(offset, Zero()) + c));
            },
            offset,
            [&](const Expr& r) {
              Expr sum = Zero();
              for (size_t j = 0; j < view.m; ++j) {
                const Expr k = Expr(static_cast<int64_t>(j) * view.rows) + r;
                sum = sum + KirGatherIndex(ctx, 1, k, shape[j]) * Expr(view.strides[j]);
              }
              return kir::Store(offset, Zero(), sum);
            });
      })
      .SetGradient(GatherNdGradient);
}

// --- take_along_axis ---

void RegisterTakeAlongAxis() {
  OpRegistry::Global()
      .Register("take_along_axis")
      .Describe(
          "A kiln operator for ONNX GatherElements: output[i] = data[i with its axis coordinate replaced by "
          "indices[i]], output shape = indices' shape (same rank as data, no larger off the axis). Negative indices "
          "count from the end; others out of range clip")
      .Attr("axis", AttrType::kInt, AttrValue{int64_t{0}}, "the axis to index; negative counts from the end")
      .Inputs({"data", "indices"})
      .SetInferShape([](const Attrs& attrs, std::vector<ShapeSlot>& in, std::vector<ShapeSlot>& out) {
        if (in[0] && in[1]) CheckElementsShapes(attrs, *in[0], *in[1]);
        if (in[1]) AssignShape(out[0], *in[1], "output (the shape of input 'indices')");
      })
      .SetInferType([](const Attrs&, std::vector<DTypeSlot>& in, std::vector<DTypeSlot>& out) {
        IndicesType(in[1]);
        DataType(in, out);
      })
      .SetPattern(OpPattern::kInjective)
      .SetReference([](const Attrs& attrs, std::span<const Tensor> in, std::span<Tensor> out, const RefContext&) {
        const Shape& shape = in[0].shape();
        const size_t axis = CheckElementsShapes(attrs, shape, in[1].shape());
        op_util::ForEachIndex(in[1].shape(), [&](int64_t k, const std::vector<int64_t>& index) {
          std::vector<int64_t> source = index;
          source[axis] = GatherIndex(in[1], k, shape[axis]);
          out[0].CopyElement(k, in[0], Offset(source, shape));
        });
      })
      // Elements copied in data's own type; indices no larger than data off the axis let
      // the output's loop variables index data there.
      .SetLower([](const Attrs& attrs, LowerContext& ctx) {
        const Shape& shape = ctx.input_shapes[0];
        const Shape& indices = ctx.input_shapes[1];
        const size_t axis = CheckElementsShapes(attrs, shape, indices);
        if (NumElements(indices) == 0) return kir::Block({});
        return lower::LoopNest(
            indices,
            [&](const std::vector<Expr>& index) {
              const Expr k = lower::FlatIndex(index, indices);
              std::vector<Expr> source = index;
              source[axis] = KirGatherIndex(ctx, 1, k, shape[axis]);
              return kir::Store(ctx.outputs[0], k, kir::Load(ctx.inputs[0], lower::FlatIndex(source, shape)));
            },
            NumElements(indices) >= ctx.MinParallelWork());
      })
      .SetGradient(TakeAlongAxisGradient);
}

// --- scatter_elements ---

void RegisterScatterElements() {
  OpDef& op = OpRegistry::Global().Register("scatter_elements");
  op.Describe(
        "A kiln operator for ONNX ScatterElements (and Scatter): data with updates[i] written (or reduced) at i with "
        "its axis coordinate replaced by indices[i], in index order. indices and updates have one shape, data's "
        "rank, no larger off the axis. Negative indices count from the end; updates at others out of range are "
        "skipped")
      .Attr("axis", AttrType::kInt, AttrValue{int64_t{0}}, "the axis to index; negative counts from the end");
  ReductionAttr(op)
      .Inputs({"data", "indices", "updates"})
      .SetInferShape([](const Attrs& attrs, std::vector<ShapeSlot>& in, std::vector<ShapeSlot>& out) {
        if (!in[0] && out[0]) in[0] = out[0];
        if (in[0]) AssignShape(out[0], *in[0], "output (the shape of input 'data')");
        if (in[1]) AssignShape(in[2], *in[1], "input 'updates' (the shape of input 'indices')");
        if (in[2] && !in[1]) in[1] = in[2];
        if (in[0] && in[1]) CheckElementsShapes(attrs, *in[0], *in[1]);
      })
      .SetInferType([](const Attrs&, std::vector<DTypeSlot>& in, std::vector<DTypeSlot>& out) {
        IndicesType(in[1]);
        DataType(in, out, 2);
      })
      .SetPattern(OpPattern::kOpaque)
      .SetReference([](const Attrs& attrs, std::span<const Tensor> in, std::span<Tensor> out, const RefContext&) {
        const Shape& shape = in[0].shape();
        const size_t axis = CheckElementsShapes(attrs, shape, in[1].shape());
        const Reduction reduction = GetReduction(attrs);
        CopyData(in[0], out[0]);
        op_util::ForEachIndex(in[1].shape(), [&](int64_t k, const std::vector<int64_t>& index) {
          const auto target = ScatterIndex(in[1], k, shape[axis]);
          if (!target) return;
          std::vector<int64_t> pos = index;
          pos[axis] = *target;
          ApplyUpdate(out[0], Offset(pos, shape), in[2], k, reduction);
        });
      })
      .SetLower([](const Attrs& attrs, LowerContext& ctx) {
        const Shape& shape = ctx.input_shapes[0];
        const Shape& indices = ctx.input_shapes[1];
        const size_t axis = CheckElementsShapes(attrs, shape, indices);
        const Reduction reduction = GetReduction(attrs);
        Stmt scatter;
        if (NumElements(indices) > 0) {
          scatter = lower::LoopNest(
              indices,
              [&](const std::vector<Expr>& index) {
                const Expr k = lower::FlatIndex(index, indices);
                const Expr target = KirScatterIndex(ctx, 1, k, shape[axis]);
                std::vector<Expr> pos = index;
                pos[axis] = target;
                return kir::If(KirInRange(target, shape[axis]),
                               KirApplyUpdate(ctx, lower::FlatIndex(pos, shape), k, reduction));
              },
              /*parallel=*/false);
        }
        return CopyThenScatter(ctx, scatter);
      })
      .SetGradient(ScatterElementsGradient);
}

// --- scatter_nd_update ---

void RegisterScatterNdUpdate() {
  OpDef& op = OpRegistry::Global().Register("scatter_nd_update");
  op.Describe(
      "A kiln operator for ONNX ScatterND, in gather_nd's layout (MXNet's internal _scatter_set_nd, with "
      "reductions): data with slice r of updates written (or reduced) where index tuple r of indices (M, Y0, ...) "
      "points, in order; updates are (Y0, ..., data.shape[M:]). Negative indices count from the end; a tuple with "
      "one out of range is skipped");
  ReductionAttr(op)
      .Inputs({"data", "indices", "updates"})
      .SetInferShape([](const Attrs&, std::vector<ShapeSlot>& in, std::vector<ShapeSlot>& out) {
        if (!in[0] && out[0]) in[0] = out[0];
        if (!in[0]) return;
        const Shape& data = *in[0];
        AssignShape(out[0], data, "output (the shape of input 'data')");
        if (!in[1]) return;
        const Shape& indices = *in[1];
        const size_t m = CheckNdShapes(data, indices, 1);
        Shape updates = Slice(indices, 1, indices.size());
        for (size_t d = m; d < data.size(); ++d) updates.push_back(data[d]);
        AssignShape(in[2], updates, "input 'updates' (indices.shape[1:] + data.shape[M:] for M = indices.shape[0])");
      })
      .SetInferType([](const Attrs&, std::vector<DTypeSlot>& in, std::vector<DTypeSlot>& out) {
        IndicesType(in[1]);
        DataType(in, out, 2);
      })
      .SetPattern(OpPattern::kOpaque)
      .SetReference([](const Attrs& attrs, std::span<const Tensor> in, std::span<Tensor> out, const RefContext&) {
        const Shape& shape = in[0].shape();
        const NdView view = MakeNdView(shape, in[1].shape());
        const Reduction reduction = GetReduction(attrs);
        CopyData(in[0], out[0]);
        for (int64_t r = 0; r < view.rows; ++r) {
          std::optional<int64_t> offset = 0;
          for (size_t j = 0; j < view.m && offset; ++j) {
            const auto index = ScatterIndex(in[1], static_cast<int64_t>(j) * view.rows + r, shape[j]);
            offset = index ? std::optional(*offset + *index * view.strides[j]) : std::nullopt;
          }
          if (!offset) continue;
          for (int64_t c = 0; c < view.slice; ++c)
            ApplyUpdate(out[0], *offset + c, in[2], r * view.slice + c, reduction);
        }
      })
      // Per index row, serially: its data offset into a local (-1 when a coordinate is out
      // of range), then the slice, whose elements are distinct (a vectorizable loop).
      .SetLower([](const Attrs& attrs, LowerContext& ctx) {
        const Shape& shape = ctx.input_shapes[0];
        const NdView view = MakeNdView(shape, ctx.input_shapes[1]);
        const Reduction reduction = GetReduction(attrs);
        if (view.rows == 0 || view.slice == 0) return CopyThenScatter(ctx, nullptr);
        const kir::Buffer offset = ctx.builder->AddLocal("offset", ScalarType::kInt64, 1);
        const Expr r = kir::Var("row");
        const Expr c = kir::Var("col");
        Expr sum = Zero();
        Expr valid;
        for (size_t j = 0; j < view.m; ++j) {
          const Expr index = KirScatterIndex(ctx, 1, Expr(static_cast<int64_t>(j) * view.rows) + r, shape[j]);
          const Expr in_range = KirInRange(index, shape[j]);
          valid = valid.defined() ? kir::And(valid, in_range) : in_range;
          sum = sum + index * Expr(view.strides[j]);
        }
        const Expr base = kir::Load(offset, Zero());
        const Stmt row = kir::Allocate(
            offset, kir::Block({kir::Store(offset, Zero(), kir::Select(valid, sum, Expr(int64_t{-1}))),
                                kir::If(kir::Ge(base, Zero()),
                                        kir::For(c, Zero(), Expr(view.slice),
                                                 KirApplyUpdate(ctx, base + c, r * Expr(view.slice) + c, reduction),
                                                 kir::LoopKind::kVectorize))}));
        return CopyThenScatter(ctx, kir::For(r, Zero(), Expr(view.rows), row));
      })
      .SetGradient(ScatterNdGradient);
}

const bool kRegistered = [] {
  RegisterGatherNd();
  RegisterTakeAlongAxis();
  RegisterScatterElements();
  RegisterScatterNdUpdate();
  return true;
}();

}  // namespace
}  // namespace kiln
