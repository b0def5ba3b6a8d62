// Index-driven gathers: Embedding (rows of a weight table), one_hot, pick and take.
#include <algorithm>
#include <cmath>
#include <functional>

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

using op_util::AssignShape;
using op_util::AssignType;
using op_util::ShapeError;

using index_util::ClipIndex;
using index_util::KirClipIndex;
using index_util::LoadIndex;
using index_util::RowLoop;
using index_util::Zero;

// --- Lowering ---
//
// Each lowering loops over index elements (rows), the kernel's parallel loop when the
// output is large, and copies or fills a contiguous run per row. Integer indices are
// read as int64 and clipped there; float ones are compared in their compute type before
// they convert, so a NaN or huge index never reaches a float-to-integer conversion.

// The value Tensor::SetDouble stores for `value` in `dtype` (integers saturate), as a
// constant of the compute type.
Expr StoredConst(double value, DType dtype) {
  Tensor stored({1}, dtype);
  stored.SetDouble(0, value);
  if (dtype == DType::kInt64) return Expr(stored.data_as<int64_t>()[0]);
  if (dtype == DType::kUInt64) return kir::IntImm(stored.data_as<int64_t>()[0], ScalarType::kUInt64);  // its bits
  return kir::Const(stored.GetDouble(0), lower::ComputeType(dtype));
}

// The numeric dtypes MXNet offers for these outputs (no bool).
void RejectBool(const Attrs& attrs) {
  if (attrs.GetDType("dtype") == DType::kBool) {
    throw Error(
        "attribute 'dtype': expected one of {float16, bfloat16, float32, float64, uint8, int8, int16, uint16, int32, "
        "uint32, int64, uint64}, given bool");
  }
}

// --- Gradients: scatters of the output gradient into zeros of the data's shape ---

std::vector<int64_t> Dims(const Shape& shape) {
  return {shape.begin(), shape.end()};
}

NodeEntry Reshaped(GradientContext& ctx, const NodeEntry& x, const Shape& shape) {
  return ctx.Apply("_np_reshape", {x}, {{"newshape", Dims(shape)}});
}

NodeEntry Zeros(GradientContext& ctx, const Shape& shape, DType dtype) {
  return ctx.Apply("zeros", {}, {{"shape", Dims(shape)}, {"dtype", dtype}});
}

// The positions (int64) that input `input`'s indices read among n, as the forward
// resolves them: clipped to [0, n), or wrapped (truncated toward zero, then mod n).
NodeEntry IndexPositions(GradientContext& ctx, size_t input, int64_t n, bool wrap) {
  NodeEntry index = ctx.inputs[input];
  if (wrap) {
    if (IsFloat(ctx.input_types[input])) index = ctx.Apply("trunc", {index});
    index = ctx.Apply("_mod_scalar", {index}, {{"scalar", static_cast<double>(n)}});
  } else {
    index = ctx.Apply("clip", {index}, {{"a_min", 0.0}, {"a_max", static_cast<double>(n - 1)}});
  }
  return ctx.Apply("Cast", {index}, {{"dtype", DType::kInt64}});
}

// weight's gradient: the rows of the output gradient added at their indices.
void EmbeddingGradient(GradientContext& ctx) {
  const Shape& weight = ctx.input_shapes[1];
  const int64_t count = NumElements(ctx.input_shapes[0]);
  if (count == 0) {
    ctx.SetInputGrad(1, Zeros(ctx, weight, ctx.input_types[1]));
    return;
  }
  const NodeEntry rows = Reshaped(ctx, IndexPositions(ctx, 0, weight[0], false), {1, count});
  const NodeEntry g = Reshaped(ctx, ctx.OutputGrad(0), {count, weight[1]});
  ctx.SetInputGrad(
      1, ctx.Apply("scatter_nd_update", {Zeros(ctx, weight, ctx.input_types[1]), rows, g}, {{"reduction", "add"}}));
}

void RegisterEmbedding() {
  OpRegistry::Global()
      .Register("Embedding")
      .Describe("Looks up rows of weight (input_dim, output_dim) for every index in data")
      .Attr("input_dim", AttrType::kInt, std::nullopt, "vocabulary size: rows of weight")
      .Range(1)
      .Attr("output_dim", AttrType::kInt, std::nullopt, "embedding size: columns of weight")
      .Range(1)
      .Attr("dtype", AttrType::kDType, AttrValue{std::string("float32")}, "weight dtype where not given")
      .Attr("sparse_grad", AttrType::kBool, AttrValue{false}, "row-sparse gradient in MXNet; no effect here")
      .SetValidate(RejectBool)
      .Inputs({"data", "weight"})
      .SetInferShape([](const Attrs& attrs, std::vector<ShapeSlot>& in, std::vector<ShapeSlot>& out) {
        const int64_t output_dim = attrs.Int("output_dim");
        AssignShape(in[1], {attrs.Int("input_dim"), output_dim}, "input 'weight' (input_dim, output_dim)");
        if (!in[0]) return;
        Shape shape = *in[0];
        shape.push_back(output_dim);
        AssignShape(out[0], shape, "output");
      })
      // As MXNet: a given weight dtype wins over the attribute, and the output follows the
      // weight; the indices keep their own dtype.
      .SetInferType([](const Attrs& attrs, std::vector<DTypeSlot>& in, std::vector<DTypeSlot>& out) {
        if (!in[1]) in[1] = out[0] ? *out[0] : attrs.GetDType("dtype");
        AssignType(out[0], *in[1], "output (the dtype of input 'weight')");
      })
      .SetPattern(OpPattern::kInjective)
      .SetReference([](const Attrs& attrs, std::span<const Tensor> in, std::span<Tensor> out, const RefContext&) {
        const int64_t rows = attrs.Int("input_dim");
        const int64_t cols = attrs.Int("output_dim");
        for (int64_t i = 0; i < in[0].size(); ++i) {
          const int64_t row = ClipIndex(in[0].GetDouble(i), rows);
          for (int64_t c = 0; c < cols; ++c) out[0].CopyElement(i * cols + c, in[1], row * cols + c);
        }
      })
      // Rows are copied in the weight's own type (an int64 table exactly, where the
      // reference's double rounds beyond 2^53).
      .SetLower([](const Attrs& attrs, LowerContext& ctx) {
        const int64_t rows = attrs.Int("input_dim");
        const int64_t cols = attrs.Int("output_dim");
        const kir::Buffer row = ctx.builder->AddLocal("row", ScalarType::kInt64, 1);
        return RowLoop(
            ctx, NumElements(ctx.input_shapes[0]), cols,
            [&](const Expr& i, const Expr& c) {
              return kir::Store(ctx.outputs[0], i * Expr(cols) + c,
                                kir::Load(ctx.inputs[1], kir::Load(row, Zero()) * Expr(cols) + c));
            },
            row, [&](const Expr& i) { return kir::Store(row, Zero(), KirClipIndex(LoadIndex(ctx, 0, i), rows)); });
      })
      .SetGradient(EmbeddingGradient);
}

void RegisterOneHot() {
  OpRegistry::Global()
      .Register("one_hot")
      .Describe("on_value at each index along a new last axis of size depth, off_value elsewhere")
      .Attr("depth", AttrType::kInt, std::nullopt, "size of the new last axis")
      .Range(0)
      .Attr("on_value", AttrType::kFloat, AttrValue{1.0}, "value at the index")
      .Attr("off_value", AttrType::kFloat, AttrValue{0.0}, "value elsewhere")
      .Attr("dtype", AttrType::kDType, AttrValue{std::string("float32")}, "output dtype")
      .SetValidate(RejectBool)
      .Inputs({"indices"})
      .SetInferShape([](const Attrs& attrs, std::vector<ShapeSlot>& in, std::vector<ShapeSlot>& out) {
        if (!in[0]) return;
        Shape shape = *in[0];
        shape.push_back(attrs.Int("depth"));
        AssignShape(out[0], shape, "output");
      })
      .SetInferType([](const Attrs& attrs, std::vector<DTypeSlot>&, std::vector<DTypeSlot>& out) {
        AssignType(out[0], attrs.GetDType("dtype"), "output");
      })
      .SetPattern(OpPattern::kInjective)
      // Unlike Embedding, an out-of-range index is not clipped: its row is all off_value
      // (MXNet's behaviour). A float index truncates toward zero.
      .SetReference([](const Attrs& attrs, std::span<const Tensor> in, std::span<Tensor> out, const RefContext&) {
        const int64_t depth = attrs.Int("depth");
        const double on = attrs.Float("on_value");
        const double off = attrs.Float("off_value");
        for (int64_t i = 0; i < in[0].size(); ++i) {
          const double index = std::trunc(in[0].GetDouble(i));
          for (int64_t d = 0; d < depth; ++d)
            out[0].SetDouble(i * depth + d, index == static_cast<double>(d) ? on : off);
        }
      })
      // Each row's hot position first: -1 for none. A float index in (-1, depth) truncates
      // into range; any other (NaN included) is none.
      .SetLower([](const Attrs& attrs, LowerContext& ctx) {
        const int64_t depth = attrs.Int("depth");
        const Expr on = StoredConst(attrs.Float("on_value"), ctx.output_types[0]);
        const Expr off = StoredConst(attrs.Float("off_value"), ctx.output_types[0]);
        const kir::Buffer hot = ctx.builder->AddLocal("hot", ScalarType::kInt64, 1);
        return RowLoop(
            ctx, NumElements(ctx.input_shapes[0]), depth,
            [&](const Expr& i, const Expr& d) {
              return lower::StoreFrom(ctx.outputs[0], i * Expr(depth) + d,
                                      kir::Select(kir::Eq(d, kir::Load(hot, Zero())), on, off));
            },
            hot,
            [&](const Expr& i) {
              const Expr v = LoadIndex(ctx, 0, i);
              if (!kir::IsFloatType(v.type())) return kir::Store(hot, Zero(), v);
              const auto c = [&](double x) { return kir::FloatImm(x, v.type()); };
              const Expr in_range = kir::And(kir::Gt(v, c(-1)), kir::Lt(v, c(static_cast<double>(depth))));
              return kir::Store(hot, Zero(),
                                kir::Select(in_range, kir::Cast(ScalarType::kInt64, v), Expr(int64_t{-1})));
            });
      })
      // A function of indices only: no gradient.
      .SetGradient([](GradientContext&) {});
}

// pick's wrap mode: the truncated index modulo n, made non-negative; a non-finite float
// index keeps `clipped`, as in the reference.
Expr KirWrapIndex(const Expr& value, int64_t n, const Expr& clipped) {
  const auto non_negative = [&](const Expr& r, const Expr& zero, const Expr& size) {
    return kir::Select(kir::Lt(r, zero), r + size, r);
  };
  if (!kir::IsFloatType(value.type())) return non_negative(value % Expr(n), Zero(), Expr(n));
  const auto c = [&](double x) { return kir::FloatImm(x, value.type()); };
  const Expr truncated = kir::Select(kir::Lt(value, c(0)), kir::Unary(kir::UnaryOp::kCeil, value), kir::Floor(value));
  const Expr wrapped = non_negative(truncated % c(static_cast<double>(n)), c(0), c(static_cast<double>(n)));
  const Expr finite = kir::Lt(kir::Abs(value), c(INFINITY));
  return kir::Select(finite, kir::Min(kir::Cast(ScalarType::kInt64, wrapped), Expr(n - 1)), clipped);
}

// pick's and take's index rule, exact for integer indices (a double rounds int64 beyond
// 2^53): clip, or with wrap the truncated index modulo n made non-negative. A non-finite
// float index keeps its clipped value under wrap (MXNet converts it to INT64_MIN, an
// artifact of x86's conversion).
int64_t PickIndex(const Tensor& indices, int64_t k, int64_t n, bool wrap) {
  if (!IsFloat(indices.dtype())) {
    const int64_t value = op_util::LoadInt(indices, k);
    if (!wrap) return std::clamp<int64_t>(value, 0, n - 1);
    const int64_t r = value % n;
    return r < 0 ? r + n : r;
  }
  const double value = indices.GetDouble(k);
  if (!wrap || !std::isfinite(value)) return ClipIndex(value, n);
  const double r = std::fmod(std::trunc(value), static_cast<double>(n));
  return static_cast<int64_t>(r < 0 ? r + static_cast<double>(n) : r);
}

// The lowered PickIndex of index element `i` of input `input`.
Expr KirPickIndex(const LowerContext& ctx, int input, const Expr& i, int64_t n, bool wrap) {
  const Expr value = LoadIndex(ctx, input, i);
  const Expr clipped = KirClipIndex(value, n);
  return wrap ? KirWrapIndex(value, n, clipped) : clipped;
}

// pick's shapes: data without the axis (or with it as 1 under keepdims) for the output;
// the index has data's shape without the axis, or with it as 1.
Shape WithoutAxis(const Shape& shape, size_t axis, bool keep) {
  Shape result = shape;
  if (keep) {
    result[axis] = 1;
  } else {
    result.erase(result.begin() + static_cast<int64_t>(axis));
  }
  return result;
}

// pick and take view their data as (outer, n, inner) around the axis: they read row
// (o, index) of it. take's output is (outer, m, inner) for m index elements; pick's is
// (outer, inner).
struct AxisView {
  int64_t outer = 1;
  int64_t n = 0;
  int64_t inner = 1;
};

AxisView MakeAxisView(const Shape& shape, size_t axis) {
  AxisView view;
  for (size_t d = 0; d < axis; ++d) view.outer *= shape[d];
  view.n = shape[axis];
  for (size_t d = axis + 1; d < shape.size(); ++d) view.inner *= shape[d];
  return view;
}

size_t PickAxis(const Attrs& attrs, const Shape& data) {
  return static_cast<size_t>(op_util::NormalizeAxis(attrs.Int("axis"), static_cast<int64_t>(data.size()), "axis"));
}

// data's gradient: the output gradient written at the picked positions (one per row).
void PickGradient(GradientContext& ctx) {
  const Shape& data = ctx.input_shapes[0];
  const size_t axis = PickAxis(ctx.attrs, data);
  const Shape kept = WithoutAxis(data, axis, true);
  const NodeEntry index = Reshaped(ctx, IndexPositions(ctx, 1, data[axis], ctx.attrs.Str("mode") == "wrap"), kept);
  ctx.SetInputGrad(0, ctx.Apply("scatter_elements",
                                {Zeros(ctx, data, ctx.input_types[0]), index, Reshaped(ctx, ctx.OutputGrad(0), kept)},
                                {{"axis", static_cast<int64_t>(axis)}}));
}

void RegisterPick() {
  OpRegistry::Global()
      .Register("pick")
      .Describe("Picks data's element at index along axis for every other position")
      .Attr("axis", AttrType::kInt, AttrValue{int64_t{-1}}, "the axis to pick along")
      .Nullable()
      .Attr("keepdims", AttrType::kBool, AttrValue{false}, "keep the axis as size 1")
      .Attr("mode", AttrType::kString, AttrValue{std::string("clip")}, "out-of-range indices: clip or wrap")
      .Choices({"clip", "wrap"})
      // MXNet 1.9 declares axis=None (pick from the flattened input) but rejects it.
      .SetValidate([](const Attrs& attrs) {
        if (attrs.IsNone("axis")) throw Error("attribute 'axis': None is not supported by pick; give an axis");
      })
      .Inputs({"data", "index"})
      .SetInferShape([](const Attrs& attrs, std::vector<ShapeSlot>& in, std::vector<ShapeSlot>& out) {
        if (!in[0]) return;
        const Shape& data = *in[0];
        if (data.empty()) ShapeError("input 'data'", "at least 1-d", data);
        const auto axis = static_cast<size_t>(
            op_util::NormalizeAxis(attrs.Int("axis"), static_cast<int64_t>(data.size()), "attribute 'axis'"));
        if (data[axis] == 0) ShapeError("input 'data'", "a nonzero size along axis " + std::to_string(axis), data);
        AssignShape(out[0], WithoutAxis(data, axis, attrs.Bool("keepdims")), "output");
        const Shape index = WithoutAxis(data, axis, false);
        const Shape kept = WithoutAxis(data, axis, true);
        if (!in[1]) {
          in[1] = index;
        } else if (*in[1] != index && *in[1] != kept) {
          ShapeError("input 'index'",
                     "shape " + ShapeToString(index) + " or " + ShapeToString(kept) + " for data " +
                         ShapeToString(data) + " and axis " + std::to_string(axis),
                     *in[1]);
        }
      })
      // The output has data's dtype; the index may be any numeric dtype.
      .SetInferType([](const Attrs&, std::vector<DTypeSlot>& in, std::vector<DTypeSlot>& out) {
        if (!in[0] && out[0]) in[0] = out[0];
        if (in[0]) AssignType(out[0], *in[0], "output");
      })
      .SetPattern(OpPattern::kInjective)
      .SetReference([](const Attrs& attrs, std::span<const Tensor> in, std::span<Tensor> out, const RefContext&) {
        const AxisView view = MakeAxisView(in[0].shape(), PickAxis(attrs, in[0].shape()));
        const bool wrap = attrs.Str("mode") == "wrap";
        // Output element (o, i) reads data (o, picked, i).
        for (int64_t flat = 0; flat < out[0].size(); ++flat) {
          const int64_t o = flat / view.inner;
          const int64_t i = flat % view.inner;
          const int64_t picked = PickIndex(in[1], flat, view.n, wrap);
          out[0].CopyElement(flat, in[0], (o * view.n + picked) * view.inner + i);
        }
      })
      .SetLower([](const Attrs& attrs, LowerContext& ctx) {
        const AxisView view = MakeAxisView(ctx.input_shapes[0], PickAxis(attrs, ctx.input_shapes[0]));
        const bool wrap = attrs.Str("mode") == "wrap";
        const Expr inner(view.inner);
        return RowLoop(ctx, view.inner == 0 ? 0 : view.outer, view.inner, [&](const Expr& o, const Expr& i) {
          const Expr flat = o * inner + i;
          const Expr picked = KirPickIndex(ctx, 1, flat, view.n, wrap);
          return kir::Store(ctx.outputs[0], flat, kir::Load(ctx.inputs[0], (o * Expr(view.n) + picked) * inner + i));
        });
      })
      .SetGradient(PickGradient);
}

// take's axis of `a`, which must have one.
size_t TakeAxis(const Attrs& attrs, const Shape& a) {
  if (a.empty()) ShapeError("input 'a'", "at least 1-d", a);
  return static_cast<size_t>(
      op_util::NormalizeAxis(attrs.Int("axis"), static_cast<int64_t>(a.size()), "attribute 'axis'"));
}

// a's gradient: the output gradient's slices, (pre, K, post) moved to (K, pre, post),
// added at their indices along the axis.
void TakeGradient(GradientContext& ctx) {
  const Shape& a = ctx.input_shapes[0];
  const size_t axis = TakeAxis(ctx.attrs, a);
  const int64_t count = NumElements(ctx.input_shapes[1]);
  const int64_t n = a[axis];
  if (count == 0 || NumElements(a) == 0) {
    ctx.SetInputGrad(0, Zeros(ctx, a, ctx.input_types[0]));
    return;
  }
  const int64_t pre = NumElements(Shape(a.begin(), a.begin() + static_cast<int64_t>(axis)));
  const int64_t post = NumElements(Shape(a.begin() + static_cast<int64_t>(axis) + 1, a.end()));
  const std::vector<int64_t> swap{1, 0, 2};
  NodeEntry g = Reshaped(ctx, ctx.OutputGrad(0), {pre, count, post});
  if (pre > 1) g = ctx.Apply("transpose", {g}, {{"axes", swap}});
  const NodeEntry positions = Reshaped(ctx, IndexPositions(ctx, 1, n, ctx.attrs.Str("mode") == "wrap"), {1, count});
  NodeEntry grad =
      ctx.Apply("scatter_nd_update",
                {Zeros(ctx, {n, pre, post}, ctx.input_types[0]), positions, Reshaped(ctx, g, {count, pre, post})},
                {{"reduction", "add"}});
  if (pre > 1) grad = ctx.Apply("transpose", {grad}, {{"axes", swap}});
  ctx.SetInputGrad(0, Reshaped(ctx, grad, a));
}

void RegisterTake() {
  OpRegistry::Global()
      .Register("take")
      .Describe("Slices of a along axis at every index: shape a.shape[:axis] + indices.shape + a.shape[axis+1:]")
      .Attr("axis", AttrType::kInt, AttrValue{int64_t{0}}, "the axis to take along; negative counts from the end")
      .Attr("mode", AttrType::kString, AttrValue{std::string("clip")}, "out-of-range indices: clip or wrap")
      .Choices({"clip", "raise", "wrap"})
      // MXNet's raise fails the forward pass on an out-of-range index; a compiled kernel
      // has no way to fail, and clipping instead would hide the error.
      .SetValidate([](const Attrs& attrs) {
        if (attrs.Str("mode") == "raise") {
          throw Error(
              "attribute 'mode': 'raise' (an error on out-of-range indices at run time) is not supported by "
              "compiled kernels; use 'clip' or 'wrap'");
        }
      })
      .Inputs({"a", "indices"})
      .SetInferShape([](const Attrs& attrs, std::vector<ShapeSlot>& in, std::vector<ShapeSlot>& out) {
        if (!in[0]) return;
        const Shape& a = *in[0];
        const size_t axis = TakeAxis(attrs, a);
        if (!in[1]) return;
        const Shape& indices = *in[1];
        if (a[axis] == 0 && NumElements(indices) > 0) {
          ShapeError("input 'a'",
                     "a nonzero size along axis " + std::to_string(axis) + " to take indices " +
                         ShapeToString(indices) + " from",
                     a);
        }
        Shape shape(a.begin(), a.begin() + static_cast<int64_t>(axis));
        shape.insert(shape.end(), indices.begin(), indices.end());
        shape.insert(shape.end(), a.begin() + static_cast<int64_t>(axis) + 1, a.end());
        AssignShape(out[0], shape, "output");
      })
      // The output has a's dtype; the indices may be any numeric dtype (MXNet casts them).
      .SetInferType([](const Attrs&, std::vector<DTypeSlot>& in, std::vector<DTypeSlot>& out) {
        if (!in[0] && out[0]) in[0] = out[0];
        if (in[0]) AssignType(out[0], *in[0], "output (the dtype of input 'a')");
      })
      .SetPattern(OpPattern::kInjective)
      .SetReference([](const Attrs& attrs, std::span<const Tensor> in, std::span<Tensor> out, const RefContext&) {
        const AxisView view = MakeAxisView(in[0].shape(), TakeAxis(attrs, in[0].shape()));
        const int64_t m = in[1].size();
        const bool wrap = attrs.Str("mode") == "wrap";
        for (int64_t flat = 0; flat < out[0].size(); ++flat) {
          const int64_t row = flat / view.inner;
          const int64_t o = row / m;
          const int64_t picked = PickIndex(in[1], row % m, view.n, wrap);
          out[0].CopyElement(flat, in[0], (o * view.n + picked) * view.inner + flat % view.inner);
        }
      })
      // Rows of `a` are copied in its own type; each output row first computes its index.
      .SetLower([](const Attrs& attrs, LowerContext& ctx) {
        const AxisView view = MakeAxisView(ctx.input_shapes[0], TakeAxis(attrs, ctx.input_shapes[0]));
        const int64_t m = NumElements(ctx.input_shapes[1]);
        if (view.outer * m == 0 || view.inner == 0) return kir::Block({});
        const bool wrap = attrs.Str("mode") == "wrap";
        const Expr inner(view.inner);
        const kir::Buffer picked = ctx.builder->AddLocal("picked", ScalarType::kInt64, 1);
        return RowLoop(
            ctx, view.outer * m, view.inner,
            [&](const Expr& row, const Expr& c) {
              const Expr src = (row / Expr(m) * Expr(view.n) + kir::Load(picked, Zero())) * inner + c;
              return kir::Store(ctx.outputs[0], row * inner + c, kir::Load(ctx.inputs[0], src));
            },
            picked,
            [&](const Expr& row) {
              return kir::Store(picked, Zero(), KirPickIndex(ctx, 1, row % Expr(m), view.n, wrap));
            });
      })
      .SetGradient(TakeGradient);
}

const bool kRegistered = [] {
  RegisterEmbedding();
  RegisterOneHot();
  RegisterPick();
  RegisterTake();
  return true;
}();

}  // namespace
}  // namespace kiln
