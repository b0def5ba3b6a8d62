// Sorting and scanning along an axis: topk (MXNet 1.9.1's mx.nd.topk) and _np_cumsum
// (numpy's cumsum as MXNet 1.9.1 computes it; mx.sym.cumsum writes it under that name).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numeric>
#include <optional>
#include <string>
#include <type_traits>
#include <vector>

#include "codegen/kir/kir.h"
#include "codegen/lower/lower_util.h"
#include "graph/gradient.h"
#include "graph/op_util.h"

namespace kiln {
namespace {

using kir::Expr;
using kir::ScalarType;
using kir::Stmt;

using op_util::AssignShape;
using op_util::AssignType;
using op_util::ShapeError;

Expr Zero() {
  return Expr(int64_t{0});
}

// An input viewed as (outer, n, inner) around the axis (the flattened input: (1, size, 1)).
// A row is one (outer, inner) position: the n elements along the axis.
struct AxisView {
  int64_t outer = 1;
  int64_t n = 1;
  int64_t inner = 1;

  int64_t rows() const { return outer * inner; }
  // Element j of `row` in a tensor whose axis has `extent` elements (n for the input).
  int64_t Offset(int64_t row, int64_t j, int64_t extent) const {
    return (row / inner * extent + j) * inner + row % inner;
  }
  Expr Offset(const Expr& row, const Expr& j, int64_t extent) const {
    if (inner == 1) return row * Expr(extent) + j;
    return (row / Expr(inner) * Expr(extent) + j) * Expr(inner) + row % Expr(inner);
  }
};

AxisView MakeAxisView(const Shape& shape, std::optional<size_t> axis) {
  AxisView view;
  if (!axis) {
    view.n = NumElements(shape);
    return view;
  }
  for (size_t d = 0; d < *axis; ++d) view.outer *= shape[d];
  view.n = shape[*axis];
  for (size_t d = *axis + 1; d < shape.size(); ++d) view.inner *= shape[d];
  return view;
}

// The axis of an operator whose axis=None means the flattened input: nullopt then.
std::optional<size_t> ScanAxis(const Attrs& attrs, const Shape& data, const std::string& input) {
  if (attrs.IsNone("axis")) return std::nullopt;
  const int64_t axis = attrs.Int("axis");
  if (data.empty()) {
    ShapeError("input '" + input + "'",
               "at least 1-d for axis " + std::to_string(axis) + " (axis=None works on the flattened input)", data);
  }
  return static_cast<size_t>(op_util::NormalizeAxis(axis, static_cast<int64_t>(data.size()), "attribute 'axis'"));
}

std::string AxisText(std::optional<size_t> axis) {
  return axis ? "axis " + std::to_string(*axis) : "the flattened input (axis=None)";
}

// ---------------------------------------------------------------------------------
// topk
//
// Order: descending (is_ascend=false) or ascending values; NaN counts as larger than
// every number (first when descending, last when ascending), as numpy's sort, ONNX and
// PyTorch place it; equal values (and NaNs) keep their order along the axis, the
// smaller index first. MXNet 1.9.1 sorts with std::sort or std::partial_sort and a
// plain < or > comparison: it gives this order wherever that is well defined (distinct
// values; ties when the whole axis is insertion-sorted, n <= 16 with 8k > n, or k = 1),
// and an arbitrary one otherwise (ties of longer axes come out in introsort's or the
// heap's order; a NaN, comparing false both ways, stays wherever the algorithm leaves
// it). tools/golden/gen_mxnet_golden.py's cases stay where MXNet's order is defined.

// What topk returns: the visible outputs as MXNet 1.9.1 lists them.
enum class TopkReturn { kValue, kIndices, kMask, kBoth };

TopkReturn ReturnType(const Attrs& attrs) {
  const std::string& ret = attrs.Str("ret_typ");
  if (ret == "value") return TopkReturn::kValue;
  if (ret == "mask") return TopkReturn::kMask;
  if (ret == "both") return TopkReturn::kBoth;
  return TopkReturn::kIndices;
}

// k as MXNet resolves it: k < 1 selects the whole axis; more than the axis has is an
// error.
int64_t TopkCount(const Attrs& attrs, const Shape& data, std::optional<size_t> axis) {
  const int64_t n = axis ? data[*axis] : NumElements(data);
  const int64_t k = attrs.Int("k");
  if (k < 1) return n;
  if (k > n) {
    throw Error("attribute 'k': expected at most " + std::to_string(n) + " (the size of " + AxisText(axis) +
                " of input 'data' " + ShapeToString(data) + "; k < 1 selects all), given " + std::to_string(k));
  }
  return k;
}

// The shape of the value and index outputs: the axis cut to k (the flattened: (k,)).
Shape TopkShape(const Shape& data, std::optional<size_t> axis, int64_t k) {
  if (!axis) return {k};
  Shape shape = data;
  shape[*axis] = k;
  return shape;
}

void ValidateTopk(const Attrs& attrs) {
  if (attrs.GetDType("dtype") == DType::kInt8 || attrs.GetDType("dtype") == DType::kBool) {
    throw Error(
        "attribute 'dtype': expected one of {float16, bfloat16, float32, float64, int16, uint16, int32, uint32, "
        "int64, uint64, uint8}, given " +
        attrs.Str("dtype"));
  }
}

void InferTopkShape(const Attrs& attrs, std::vector<ShapeSlot>& in, std::vector<ShapeSlot>& out) {
  if (!in[0]) return;
  const Shape& data = *in[0];
  const std::optional<size_t> axis = ScanAxis(attrs, data, "data");
  const Shape selected = TopkShape(data, axis, TopkCount(attrs, data, axis));
  switch (ReturnType(attrs)) {
    case TopkReturn::kMask: AssignShape(out[0], data, "output (the mask, shaped as input 'data')"); break;
    case TopkReturn::kBoth:
      AssignShape(out[0], selected, "output 0 (the values)");
      AssignShape(out[1], selected, "output 1 (the indices)");
      break;
    default: AssignShape(out[0], selected, "output"); break;
  }
}

// Values and the mask have data's dtype, indices the `dtype` attribute's.
void InferTopkType(const Attrs& attrs, std::vector<DTypeSlot>& in, std::vector<DTypeSlot>& out) {
  const TopkReturn ret = ReturnType(attrs);
  const DType index_type = attrs.GetDType("dtype");
  if (ret == TopkReturn::kIndices) {
    AssignType(out[0], index_type, "output (the indices, of attribute 'dtype')");
  } else {
    if (!in[0] && out[0]) in[0] = out[0];
    if (in[0]) AssignType(out[0], *in[0], "output 0 (the dtype of input 'data')");
    if (ret == TopkReturn::kBoth) AssignType(out[1], index_type, "output 1 (the indices, of attribute 'dtype')");
  }
  // MXNet has no topk kernel for bool.
  if (in[0] && *in[0] == DType::kBool) {
    throw Error(
        "input 'data': expected one of {float16, bfloat16, float32, float64, uint8, int8, int16, uint16, int32, "
        "uint32, int64, uint64}, given bool");
  }
}

// Whether row element a comes before element b (a < b along the axis, so ties keep a
// first only when a is the earlier one: callers sort stably).
template <typename T>
bool TopkBefore(T a, T b, bool ascend) {
  if constexpr (std::is_floating_point_v<T>) {
    if (std::isnan(a) || std::isnan(b))
      return ascend ? !std::isnan(a) && std::isnan(b) : std::isnan(a) && !std::isnan(b);
  }
  return ascend ? a < b : a > b;
}

// The row's positions along the axis in topk's order, the first k of them.
template <typename T>
std::vector<int64_t> TopkRow(const std::vector<T>& values, int64_t k, bool ascend) {
  std::vector<int64_t> order(values.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](int64_t a, int64_t b) { return TopkBefore(values[a], values[b], ascend); });
  order.resize(static_cast<size_t>(k));
  return order;
}

// Plain loops: a stable sort per row (exact for int64 data).
void TopkReference(const Attrs& attrs, std::span<const Tensor> in, std::span<Tensor> out, const RefContext&) {
  const Tensor& data = in[0];
  const std::optional<size_t> axis = ScanAxis(attrs, data.shape(), "data");
  const AxisView view = MakeAxisView(data.shape(), axis);
  const int64_t k = TopkCount(attrs, data.shape(), axis);
  const bool ascend = attrs.Bool("is_ascend");
  const TopkReturn ret = ReturnType(attrs);
  Tensor* values = ret == TopkReturn::kValue || ret == TopkReturn::kBoth ? &out[0] : nullptr;
  Tensor* indices = ret == TopkReturn::kIndices ? &out[0] : ret == TopkReturn::kBoth ? &out[1] : nullptr;
  Tensor* mask = ret == TopkReturn::kMask ? &out[0] : nullptr;
  const auto store_index = [](Tensor& t, int64_t at, int64_t index) {
    // As MXNet's cast: float16 rounds large indices, uint8 wraps them.
    if (IsFloat(t.dtype())) {
      t.SetDouble(at, static_cast<double>(index));
    } else {
      op_util::StoreInt(t, at, index);
    }
  };
  for (int64_t row = 0; row < view.rows(); ++row) {
    std::vector<int64_t> order;
    if (IsFloat(data.dtype())) {
      std::vector<double> row_values(static_cast<size_t>(view.n));
      for (int64_t j = 0; j < view.n; ++j) row_values[j] = data.GetDouble(view.Offset(row, j, view.n));
      order = TopkRow(row_values, k, ascend);
    } else if (data.dtype() == DType::kUInt64) {
      std::vector<uint64_t> row_values(static_cast<size_t>(view.n));
      for (int64_t j = 0; j < view.n; ++j) {
        row_values[j] = static_cast<uint64_t>(op_util::LoadInt(data, view.Offset(row, j, view.n)));
      }
      order = TopkRow(row_values, k, ascend);
    } else {
      std::vector<int64_t> row_values(static_cast<size_t>(view.n));
      for (int64_t j = 0; j < view.n; ++j) row_values[j] = op_util::LoadInt(data, view.Offset(row, j, view.n));
      order = TopkRow(row_values, k, ascend);
    }
    if (mask != nullptr) {
      for (int64_t j = 0; j < view.n; ++j) mask->SetDouble(view.Offset(row, j, view.n), 0);
      for (const int64_t j : order) mask->SetDouble(view.Offset(row, j, view.n), 1);
    }
    for (int64_t s = 0; s < k; ++s) {
      const int64_t at = view.Offset(row, s, k);
      if (values != nullptr) values->CopyElement(at, data, view.Offset(row, order[s], view.n));
      if (indices != nullptr) store_index(*indices, at, order[s]);
    }
  }
}

// Whether v comes before w in topk's order (strictly: an equal value that arrives later
// stays behind the one kept).
Expr Before(const Expr& v, const Expr& w, bool ascend) {
  const Expr beyond = ascend ? kir::Lt(v, w) : kir::Gt(v, w);
  if (!kir::IsFloatType(v.type())) return beyond;
  // NaN is the largest: first when descending, last when ascending.
  if (ascend) return kir::Or(beyond, kir::And(kir::Eq(v, v), kir::Ne(w, w)));
  return kir::Or(beyond, kir::And(kir::Ne(v, v), kir::Eq(w, w)));
}

// Most slots kept in local (stack) buffers; beyond, each row's slots lie in scratch.
constexpr int64_t kMaxLocalSlots = 4096;

// Per row (the parallel loop over rows): the best k so far, in order, in k slots of
// values and positions. Each element along the axis that beats the last slot (or finds
// an empty one) enters by insertion: slots after its place shift back by one. O(n * k).
Stmt TopkLower(const Attrs& attrs, LowerContext& ctx) {
  const Shape& shape = ctx.input_shapes[0];
  const std::optional<size_t> axis = ScanAxis(attrs, shape, "data");
  const AxisView view = MakeAxisView(shape, axis);
  const int64_t k = TopkCount(attrs, shape, axis);
  const int64_t rows = view.rows();
  if (rows == 0 || k == 0) return kir::Block({});
  const bool ascend = attrs.Bool("is_ascend");
  const TopkReturn ret = ReturnType(attrs);
  const ScalarType type = lower::ComputeType(ctx.input_types[0]);

  const bool local = k <= kMaxLocalSlots;
  const kir::Buffer best = local ? ctx.builder->AddLocal("best", type, k) : ctx.Scratch("best", type, rows * k);
  const kir::Buffer where = local ? ctx.builder->AddLocal("where", ScalarType::kInt64, k)
                                  : ctx.Scratch("where", ScalarType::kInt64, rows * k);
  const kir::Buffer candidate = ctx.builder->AddLocal("candidate", type, 1);

  const Expr row = kir::Var("row");
  const Expr j = kir::Var("j");
  const Expr base = local ? Zero() : row * Expr(k);
  const auto slot = [&](const Expr& s) { return base + s; };
  const Expr v = kir::Load(candidate, Zero());
  // Slot s is empty while fewer than s + 1 elements have been seen.
  const auto empty = [&](const Expr& s) { return kir::Ge(s, j); };
  const auto put = [&](const Expr& s) {
    return kir::Block({kir::Store(best, slot(s), v), kir::Store(where, slot(s), j)});
  };

  // Slots k-1 down to 1: shift the slot before back while v comes before it, else take
  // this slot if v comes before what it holds (once, as the slots before are better).
  const Expr t = kir::Var("t");
  const Expr s = Expr(k - 1) - t;
  const Expr previous = s - Expr(1);
  const Stmt shift = kir::Block({kir::Store(best, slot(s), kir::Load(best, slot(previous))),
                                 kir::Store(where, slot(s), kir::Load(where, slot(previous)))});
  const Stmt insert = kir::Block({
      kir::For(t, Zero(), Expr(k - 1),
               kir::If(kir::Or(empty(previous), Before(v, kir::Load(best, slot(previous)), ascend)), shift,
                       kir::If(kir::Or(empty(s), Before(v, kir::Load(best, slot(s)), ascend)), put(s)))),
      kir::If(kir::Or(empty(Zero()), Before(v, kir::Load(best, slot(Zero())), ascend)), put(Zero())),
  });
  const Expr enters = kir::Or(kir::Lt(j, Expr(k)), Before(v, kir::Load(best, slot(Expr(k - 1))), ascend));
  const Stmt scan = kir::For(
      j, Zero(), Expr(view.n),
      kir::Block({kir::Store(candidate, Zero(), lower::LoadAs(ctx.inputs[0], view.Offset(row, j, view.n), type)),
                  kir::If(enters, insert)}));

  std::vector<Stmt> body = {scan};
  const Expr out_s = kir::Var("s");
  const auto index_value = [&](const kir::Buffer& out, DType dtype, const Expr& position) {
    // Through the compute type: exact below 2^24, as the reference's float conversion.
    return lower::StoreFrom(out, view.Offset(row, out_s, k), kir::Cast(lower::ComputeType(dtype), position));
  };
  if (ret == TopkReturn::kValue || ret == TopkReturn::kBoth) {
    body.push_back(
        kir::For(out_s, Zero(), Expr(k),
                 lower::StoreFrom(ctx.outputs[0], view.Offset(row, out_s, k), kir::Load(best, slot(out_s)))));
  }
  if (ret == TopkReturn::kIndices || ret == TopkReturn::kBoth) {
    const size_t out = ret == TopkReturn::kBoth ? 1 : 0;
    body.push_back(kir::For(out_s, Zero(), Expr(k),
                            index_value(ctx.outputs[out], ctx.output_types[out], kir::Load(where, slot(out_s)))));
  }
  if (ret == TopkReturn::kMask) {
    const kir::Buffer& mask = ctx.outputs[0];
    const ScalarType mask_type = lower::ComputeType(ctx.output_types[0]);
    const Expr m = kir::Var("m");
    body.push_back(kir::For(m, Zero(), Expr(view.n),
                            lower::StoreFrom(mask, view.Offset(row, m, view.n), kir::Const(0, mask_type))));
    body.push_back(kir::For(
        out_s, Zero(), Expr(k),
        lower::StoreFrom(mask, view.Offset(row, kir::Load(where, slot(out_s)), view.n), kir::Const(1, mask_type))));
  }
  Stmt row_body = kir::Allocate(candidate, kir::Block(body));
  if (local) row_body = kir::Allocate(best, kir::Allocate(where, row_body));
  const auto kind =
      rows > 1 && rows * view.n >= ctx.MinParallelWork() ? kir::LoopKind::kParallel : kir::LoopKind::kSerial;
  return kir::For(row, Zero(), Expr(rows), row_body, kind);
}

// --- Gradients ---

NodeEntry Reshaped(GradientContext& ctx, const NodeEntry& x, const Shape& shape) {
  return ctx.Apply("_np_reshape", {x}, {{"newshape", std::vector<int64_t>(shape.begin(), shape.end())}});
}

// The values' gradient written at the selected positions (found again by a topk of
// indices); indices and masks carry none.
void TopkGradient(GradientContext& ctx) {
  if (ReturnType(ctx.attrs) != TopkReturn::kValue && ReturnType(ctx.attrs) != TopkReturn::kBoth) return;
  const Shape& data = ctx.input_shapes[0];
  const auto axis = ctx.attrs.OptInt("axis");
  AttrMap attrs{{"k", ctx.attrs.Int("k")},
                {"ret_typ", "indices"},
                {"is_ascend", ctx.attrs.Bool("is_ascend")},
                {"dtype", DType::kInt64}};
  attrs.emplace_back("axis", axis ? AttrArg(*axis) : AttrArg(std::monostate{}));
  const NodeEntry indices = ctx.Apply("topk", {ctx.inputs[0]}, attrs);
  const Shape flat{NumElements(data)};
  const NodeEntry zeros =
      ctx.Apply("zeros", {}, {{"shape", std::vector<int64_t>(axis ? data : flat)}, {"dtype", ctx.input_types[0]}});
  const NodeEntry grad =
      ctx.Apply("scatter_elements", {zeros, indices, ctx.OutputGrad(0)}, {{"axis", axis ? *axis : int64_t{0}}});
  ctx.SetInputGrad(0, axis ? grad : Reshaped(ctx, grad, data));
}

// A reversed cumulative sum of the gradient (g reversed along the axis by a slice of
// step -1, summed, reversed back), in the input's dtype.
void CumsumGradient(GradientContext& ctx) {
  if (!IsFloat(ctx.input_types[0])) return;
  const Shape& data = ctx.input_shapes[0];
  const Shape& out = ctx.output_shapes[0];
  const auto given = ctx.attrs.OptInt("axis");
  const int64_t axis = given ? op_util::NormalizeAxis(*given, static_cast<int64_t>(out.size()), "attribute 'axis'") : 0;
  std::string begin = "(";
  std::string step = "(";
  for (int64_t d = 0; d <= axis; ++d) {
    begin += "None,";
    step += d == axis ? "-1," : "None,";
  }
  const AttrMap reverse{{"begin", begin + ")"}, {"end", begin + ")"}, {"step", step + ")"}};
  const NodeEntry reversed = ctx.Apply("slice", {ctx.OutputGrad(0)}, reverse);
  const NodeEntry summed = ctx.Apply("_np_cumsum", {reversed}, {{"axis", axis}, {"dtype", ctx.input_types[0]}});
  const NodeEntry grad = ctx.Apply("slice", {summed}, reverse);
  ctx.SetInputGrad(0, given ? grad : Reshaped(ctx, grad, data));
}

void RegisterTopk() {
  OpRegistry::Global()
      .Register("topk")
      .Describe(
          "The k largest (or smallest) elements along axis, in order: their values, their indices, both, or a "
          "mask of them; ties keep the earlier index first and NaN counts as the largest")
      .Attr("axis", AttrType::kInt, AttrValue{int64_t{-1}}, "the axis to sort along; None: the flattened input")
      .Nullable()
      .Attr("k", AttrType::kInt, AttrValue{int64_t{1}}, "how many elements to select; k < 1 selects all")
      .Attr("ret_typ", AttrType::kString, AttrValue{std::string("indices")}, "what to return")
      .Choices({"both", "indices", "mask", "value"})
      .Attr("is_ascend", AttrType::kBool, AttrValue{false}, "select the smallest instead of the largest")
      .Attr("dtype", AttrType::kDType, AttrValue{std::string("float32")}, "the dtype of the indices output")
      .SetValidate(ValidateTopk)
      .Inputs({"data"})
      // MXNet's visible outputs, named as its list_outputs names them: "value" shows the
      // first of two (output0), "both" both.
      .Outputs([](const Attrs& attrs) {
        switch (ReturnType(attrs)) {
          case TopkReturn::kValue: return std::vector<std::string>{"output0"};
          case TopkReturn::kBoth: return std::vector<std::string>{"output0", "output1"};
          default: return std::vector<std::string>{"output"};
        }
      })
      .SetInferShape(InferTopkShape)
      .SetInferType(InferTopkType)
      .SetPattern(OpPattern::kOpaque)
      .SetReference(TopkReference)
      .SetLower(TopkLower)
      .SetGradient(TopkGradient);
}

// ---------------------------------------------------------------------------------
// _np_cumsum
//
// As MXNet 1.9.1 computes it (numpy's rules but for the dtype): out[0] = OType(in[0]),
// out[j] = out[j - 1] + OType(in[j]) in the output type OType, which is `dtype` where
// given, else the input's (bool: int64). A float16 sum is rounded to float16 at every
// step (computed in float32), float32 accumulates in float32; integers wrap in their
// type. A float input converts to an integer output as kiln's kernels convert (toward
// zero, NaN to 0, saturated to int64, then wrapped).
// Negative axes count from the end, as numpy's: MXNet 1.9.1's shape check accepts them
// but its forward pass then fails indexing the shape with them (a bug, not a rule).

DType CumsumType(const Attrs& attrs, DType input) {
  if (!attrs.IsNone("dtype")) return attrs.GetDType("dtype");
  return input == DType::kBool ? DType::kInt64 : input;
}

void ValidateCumsum(const Attrs& attrs) {
  if (attrs.IsNone("dtype")) return;
  const DType dtype = attrs.GetDType("dtype");
  if (dtype == DType::kUInt8 || dtype == DType::kBool) {
    throw Error(
        "attribute 'dtype': expected one of {float16, bfloat16, float32, float64, int8, int16, uint16, int32, uint32, "
        "int64, uint64} or None, given " +
        attrs.Str("dtype"));
  }
}

void InferCumsumShape(const Attrs& attrs, std::vector<ShapeSlot>& in, std::vector<ShapeSlot>& out) {
  if (!in[0]) {
    if (out[0] && !attrs.IsNone("axis")) in[0] = out[0];
    return;
  }
  const Shape& a = *in[0];
  const std::optional<size_t> axis = ScanAxis(attrs, a, "a");
  AssignShape(out[0], axis ? a : Shape{NumElements(a)}, axis ? "output (the shape of input 'a')" : "output (a's size)");
}

void InferCumsumType(const Attrs& attrs, std::vector<DTypeSlot>& in, std::vector<DTypeSlot>& out) {
  if (in[0]) {
    AssignType(
        out[0], CumsumType(attrs, *in[0]),
        attrs.IsNone("dtype") ? "output (the dtype of input 'a'; bool sums in int64)" : "output (attribute 'dtype')");
  } else if (!attrs.IsNone("dtype")) {
    AssignType(out[0], attrs.GetDType("dtype"), "output (attribute 'dtype')");
  } else if (out[0]) {
    in[0] = out[0];
  }
}

// The running sum in the output's arithmetic type Acc, as the lowering computes it.
template <typename Acc>
void CumsumFloat(const Tensor& a, Tensor& out, const AxisView& view) {
  const DType out_type = out.dtype();
  const auto round = [&](Acc x) {
    // float16 rounds at every step, as MXNet's half_t arithmetic (and bfloat16 as its bf16_t).
    if (out_type == DType::kFloat16) return static_cast<Acc>(HalfToFloat(FloatToHalf(static_cast<float>(x))));
    if (out_type == DType::kBFloat16) return static_cast<Acc>(BFloat16ToFloat(FloatToBFloat16(static_cast<float>(x))));
    return x;
  };
  const auto element = [&](int64_t at) {
    const Acc x = IsFloat(a.dtype()) ? static_cast<Acc>(a.GetDouble(at))
                                     : static_cast<Acc>(op_util::IntToDouble(op_util::LoadInt(a, at), a.dtype()));
    return round(x);
  };
  for (int64_t row = 0; row < view.rows(); ++row) {
    Acc sum = 0;
    for (int64_t j = 0; j < view.n; ++j) {
      const int64_t at = view.Offset(row, j, view.n);
      sum = j == 0 ? element(at) : round(sum + element(at));
      out.SetDouble(at, static_cast<double>(sum));
    }
  }
}

void CumsumReference(const Attrs& attrs, std::span<const Tensor> in, std::span<Tensor> out, const RefContext&) {
  const Tensor& a = in[0];
  const AxisView view = MakeAxisView(a.shape(), ScanAxis(attrs, a.shape(), "a"));
  switch (out[0].dtype()) {
    case DType::kFloat64: CumsumFloat<double>(a, out[0], view); return;
    case DType::kFloat32:
    case DType::kFloat16:
    case DType::kBFloat16: CumsumFloat<float>(a, out[0], view); return;
    default: break;
  }
  // Integers: exact, wrapping (unsigned arithmetic wraps without undefined behaviour;
  // StoreInt keeps the low bits, as a sum in the narrow type would).
  for (int64_t row = 0; row < view.rows(); ++row) {
    uint64_t sum = 0;
    for (int64_t j = 0; j < view.n; ++j) {
      const int64_t at = view.Offset(row, j, view.n);
      const int64_t x =
          IsFloat(a.dtype()) ? kir::FloatToInt(ToScalarType(out[0].dtype()), a.GetDouble(at)) : op_util::LoadInt(a, at);
      sum += static_cast<uint64_t>(x);
      op_util::StoreInt(out[0], at, static_cast<int64_t>(sum));
    }
  }
}

// Tiles of up to kScanTile positions along the inner (contiguous) dims.
constexpr int64_t kScanTile = 256;

// A serial scan along the axis for a tile of (outer, inner) positions per task, the
// tasks the kernel's parallel loop: each keeps its running sums in a local accumulator
// per inner position, so the inner loop is elementwise.
Stmt CumsumLower(const Attrs& attrs, LowerContext& ctx) {
  const AxisView view = MakeAxisView(ctx.input_shapes[0], ScanAxis(attrs, ctx.input_shapes[0], "a"));
  if (view.rows() == 0 || view.n == 0) return kir::Block({});
  const DType out_type = ctx.output_types[0];
  const ScalarType acc_type = lower::ComputeType(out_type);
  const int64_t width = std::min(view.inner, kScanTile);
  const int64_t tiles = (view.inner + width - 1) / width;
  const int64_t tasks = view.outer * tiles;

  const Expr task = kir::Var("task");
  const Expr o = tiles == 1 ? task : task / Expr(tiles);
  const Expr i0 = tiles == 1 ? Zero() : task % Expr(tiles) * Expr(width);
  const Expr c = kir::Var("c");
  const Expr extent = view.inner % width == 0 ? Expr(width) : kir::Min(Expr(width), Expr(view.inner) - i0);
  const auto at = [&](const Expr& j) { return (o * Expr(view.n) + j) * Expr(view.inner) + i0 + c; };
  // OType(in[j]): the input element converted to the output type (rounded there).
  const auto element = [&](const Expr& j) {
    return lower::AsStored(lower::LoadAs(ctx.inputs[0], at(j), lower::ComputeType(ctx.input_types[0])), out_type);
  };
  const kir::Buffer acc = ctx.builder->AddLocal("acc", acc_type, width);
  const auto columns = [&](Stmt body) {
    return kir::For(c, Zero(), extent, std::move(body), kir::LoopKind::kVectorize);
  };
  const Expr j = kir::Var("j");
  const Stmt first = columns(kir::Block(
      {kir::Store(acc, c, element(Zero())), lower::StoreFrom(ctx.outputs[0], at(Zero()), kir::Load(acc, c))}));
  const Stmt rest =
      kir::For(j, Expr(int64_t{1}), Expr(view.n - 1),
               columns(kir::Block({kir::Store(acc, c, lower::AsStored(kir::Load(acc, c) + element(j), out_type)),
                                   lower::StoreFrom(ctx.outputs[0], at(j), kir::Load(acc, c))})));
  const auto kind =
      tasks > 1 && view.rows() * view.n >= ctx.MinParallelWork() ? kir::LoopKind::kParallel : kir::LoopKind::kSerial;
  return kir::For(task, Zero(), Expr(tasks), kir::Allocate(acc, kir::Block({first, rest})), kind);
}

void RegisterCumsum() {
  OpRegistry::Global()
      .Register("_np_cumsum")
      .Alias("cumsum")
      .Describe(
          "Running sums along axis (numpy's cumsum; None: over the flattened input), accumulated in the output "
          "dtype")
      .Attr("axis", AttrType::kInt, AttrValue{}, "the axis to sum along; None: the flattened input")
      .Attr("dtype", AttrType::kDType, AttrValue{}, "the output dtype; None: the input's (bool: int64)")
      .SetValidate(ValidateCumsum)
      .Inputs({"a"})
      .SetInferShape(InferCumsumShape)
      .SetInferType(InferCumsumType)
      .SetPattern(OpPattern::kOpaque)
      .SetReference(CumsumReference)
      .SetLower(CumsumLower)
      .SetGradient(CumsumGradient);
}

const bool kRegistered = [] {
  RegisterTopk();
  RegisterCumsum();
  return true;
}();

}  // namespace
}  // namespace kiln
