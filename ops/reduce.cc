// Reductions: sum, mean, prod, max, min over MXNet's axis/keepdims/exclude, and argmax,
// argmin along one axis or over the flattened input.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>

#include "codegen/kir/kir.h"
#include "codegen/lower/lower_util.h"
#include "graph/gradient.h"
#include "graph/op_util.h"

namespace kiln {
namespace {

enum class Reduce { kSum, kMean, kProd, kMax, kMin };

using op_util::LoadInt;
using op_util::StoreInt;

// MXNet 1.9 (legacy, not numpy) semantics: axis None or () reduces every axis, with or
// without exclude; otherwise the listed axes are reduced, or with exclude all the others.
std::vector<bool> ReducedAxes(const std::optional<std::vector<int64_t>>& axes, bool exclude, const Shape& in) {
  const int64_t ndim = static_cast<int64_t>(in.size());
  if (!axes || axes->empty()) return std::vector<bool>(ndim, true);
  std::vector<bool> reduced(ndim, false);
  for (const int64_t axis : *axes) {
    if (ndim == 0) throw Error("attribute 'axis': a 0-d input has no axis " + std::to_string(axis));
    const int64_t a = op_util::NormalizeAxis(axis, ndim, "attribute 'axis'");
    if (reduced[a])
      throw Error("attribute 'axis': " + FormatAttrValue(*axes) + " names axis " + std::to_string(a) + " twice");
    reduced[a] = true;
  }
  if (exclude) reduced.flip();
  return reduced;
}

// Reduced axes drop out (or stay as 1 with keepdims); a reduction to nothing gives (1,),
// as MXNet does.
Shape ReducedShape(const Shape& in, const std::vector<bool>& reduced, bool keepdims) {
  Shape out;
  for (size_t d = 0; d < in.size(); ++d) {
    if (!reduced[d]) {
      out.push_back(in[d]);
    } else if (keepdims) {
      out.push_back(1);
    }
  }
  if (out.empty() && !keepdims) out = {1};
  return out;
}

// max, min and the arg forms have no value over zero elements.
void CheckNonEmpty(const Shape& in, const std::vector<bool>& reduced, const std::string& op) {
  for (size_t d = 0; d < in.size(); ++d) {
    if (reduced[d] && in[d] == 0) {
      op_util::ShapeError("input 'data'", "no zero-size reduced axis (" + op + " of zero elements has no value)", in);
    }
  }
}

// Calls fn(output flat index, flat input offsets reduced into it in row-major order).
void ForEachGroup(const Shape& in, const std::vector<bool>& reduced,
                  const std::function<void(int64_t, const std::vector<int64_t>&)>& fn) {
  Shape kept = in;
  Shape inner = in;
  for (size_t d = 0; d < in.size(); ++d) (reduced[d] ? kept[d] : inner[d]) = 1;
  const std::vector<int64_t> strides = Strides(in);
  std::vector<int64_t> offsets;
  op_util::ForEachIndex(kept, [&](int64_t out_index, const std::vector<int64_t>& k) {
    offsets.clear();
    op_util::ForEachIndex(inner, [&](int64_t, const std::vector<int64_t>& r) {
      int64_t offset = 0;
      for (size_t d = 0; d < in.size(); ++d) offset += (k[d] + r[d]) * strides[d];
      offsets.push_back(offset);
    });
    fn(out_index, offsets);
  });
}

template <typename T>
T Load(const Tensor& t, int64_t i);
template <>
double Load<double>(const Tensor& t, int64_t i) {
  return t.GetDouble(i);
}
template <>
int64_t Load<int64_t>(const Tensor& t, int64_t i) {
  return LoadInt(t, i);
}
template <>
uint64_t Load<uint64_t>(const Tensor& t, int64_t i) {
  return static_cast<uint64_t>(LoadInt(t, i));
}

// Position in `offsets` of the first largest (or smallest) element. A NaN beats every
// number and the first NaN wins, as in MXNet: argmax([1, nan, 3]) = argmin(...) = 1.
template <typename T>
int64_t ExtremePosition(const Tensor& in, const std::vector<int64_t>& offsets, bool largest) {
  int64_t best = 0;
  T best_value = Load<T>(in, offsets[0]);
  for (size_t i = 1; i < offsets.size() && !std::isnan(best_value); ++i) {
    const T v = Load<T>(in, offsets[i]);
    if (std::isnan(v) || (largest ? v > best_value : v < best_value)) {
      best = static_cast<int64_t>(i);
      best_value = v;
    }
  }
  return best;
}

int64_t ExtremeOf(const Tensor& in, const std::vector<int64_t>& offsets, bool largest) {
  if (IsFloat(in.dtype())) return ExtremePosition<double>(in, offsets, largest);
  if (in.dtype() == DType::kUInt64) return ExtremePosition<uint64_t>(in, offsets, largest);
  return ExtremePosition<int64_t>(in, offsets, largest);
}

void ReduceGroup(Reduce kind, const Tensor& in, const std::vector<int64_t>& offsets, Tensor& out, int64_t o) {
  const bool is_float = IsFloat(in.dtype());
  if (kind == Reduce::kMax || kind == Reduce::kMin) {
    const int64_t at = offsets[ExtremeOf(in, offsets, kind == Reduce::kMax)];
    if (is_float) {
      out.SetDouble(o, in.GetDouble(at));
    } else {
      StoreInt(out, o, LoadInt(in, at));
    }
    return;
  }
  const bool prod = kind == Reduce::kProd;
  if (is_float) {
    double acc = prod ? 1.0 : 0.0;
    for (const int64_t i : offsets) acc = prod ? acc * in.GetDouble(i) : acc + in.GetDouble(i);
    out.SetDouble(o, acc);
  } else {
    // Unsigned arithmetic wraps without undefined behaviour; storing keeps the low bits.
    uint64_t acc = prod ? 1 : 0;
    for (const int64_t i : offsets) {
      const auto v = static_cast<uint64_t>(LoadInt(in, i));
      acc = prod ? acc * v : acc + v;
    }
    StoreInt(out, o, static_cast<int64_t>(acc));
  }
  if (kind != Reduce::kMean) return;
  // MXNet divides the sum already stored in the output dtype: a float16 sum can overflow
  // to inf, and integer means truncate toward zero (mean of int32 [-1, -2] is -1).
  const auto count = static_cast<int64_t>(offsets.size());
  if (is_float) {
    out.SetDouble(o, out.GetDouble(o) / static_cast<double>(count));
  } else {
    if (count == 0) throw Error("mean of zero integer elements divides by zero");
    if (out.dtype() == DType::kUInt64) {
      StoreInt(out, o, static_cast<int64_t>(static_cast<uint64_t>(LoadInt(out, o)) / static_cast<uint64_t>(count)));
    } else {
      StoreInt(out, o, LoadInt(out, o) / count);
    }
  }
}

// --- Lowering ---
//
// A reduction is canonicalized (size-1 axes dropped, neighbouring axes of one kind merged)
// into output elements (p, i): p over the kept axes before the last reduced one, i over
// the trailing kept axes (`inner`, contiguous in input and output). The kernel's parallel
// loop runs over p (and tiles of i): tasks never share an output.
//  - inner == 1 (the last axis is reduced): each task reduces a contiguous run into a local
//    accumulator, in kLanes independent lanes when the run is long enough (an emitter
//    vectorizes them without reassociating a float sum), merged at the end; the arg
//    forms' lanes keep positions, and the merge prefers the earlier one on ties.
//  - inner > 1: each task keeps a tile of up to kTile accumulators, one per output column,
//    and adds whole contiguous input rows to it: the inner loop is elementwise.
// Float sums accumulate in float32 for float16/float32 data (float64 for float64), or in
// float64 beyond kLongSum elements per output, where float32's error bound (n * 2^-24 of
// the sum of magnitudes; ~sqrt(n) * 2^-24 typically) passes 4e-3. Integers accumulate in their
// own type: wrapping there gives the same low bits as the reference's 64-bit sum stored
// in that type. bool accumulates in int64 (kir's bool arithmetic is not a counter).

using kir::Expr;
using kir::ScalarType;
using kir::Stmt;

constexpr int64_t kTile = 256;
constexpr int64_t kLanes = 8;
constexpr int64_t kLongSum = int64_t{1} << 16;

struct Dim {
  int64_t size;
  int64_t stride;  // in input elements
};

struct ReducePlan {
  std::vector<Dim> outer;   // kept, before the last reduced axis
  std::vector<Dim> reduce;  // reduced
  int64_t inner = 1;        // trailing kept elements
  int64_t outer_count = 1;
  int64_t reduce_count = 1;
};

ReducePlan MakePlan(const Shape& in, const std::vector<bool>& reduced) {
  const std::vector<int64_t> strides = Strides(in);
  std::vector<std::pair<Dim, bool>> merged;
  for (size_t d = 0; d < in.size(); ++d) {
    if (in[d] == 1) continue;
    if (!merged.empty() && merged.back().second == reduced[d]) {
      merged.back().first.size *= in[d];
      merged.back().first.stride = strides[d];
    } else {
      merged.push_back({{in[d], strides[d]}, reduced[d]});
    }
  }
  ReducePlan plan;
  if (!merged.empty() && !merged.back().second) {
    plan.inner = merged.back().first.size;
    merged.pop_back();
  }
  for (const auto& [dim, is_reduced] : merged) {
    (is_reduced ? plan.reduce : plan.outer).push_back(dim);
    (is_reduced ? plan.reduce_count : plan.outer_count) *= dim.size;
  }
  return plan;
}

// How one reduction accumulates: max/min/arg keep the reference's NaN rules (the first
// NaN wins), sum/prod/mean add or multiply; arg also tracks the position.
struct Combiner {
  Reduce kind = Reduce::kSum;
  bool arg = false;  // argmax/argmin: kind is kMax or kMin
  ScalarType acc = ScalarType::kFloat32;

  bool largest() const { return kind == Reduce::kMax; }
  bool is_float() const { return kir::IsFloatType(acc); }

  Expr Extreme(bool low) const {
    if (is_float()) return kir::FloatImm(low ? -INFINITY : INFINITY, acc);
    switch (acc) {
      case ScalarType::kInt8: return kir::IntImm(low ? INT8_MIN : INT8_MAX, acc);
      case ScalarType::kUInt8: return kir::IntImm(low ? 0 : UINT8_MAX, acc);
      case ScalarType::kInt16: return kir::IntImm(low ? INT16_MIN : INT16_MAX, acc);
      case ScalarType::kUInt16: return kir::IntImm(low ? 0 : UINT16_MAX, acc);
      case ScalarType::kInt32: return kir::IntImm(low ? INT32_MIN : INT32_MAX, acc);
      case ScalarType::kUInt32: return kir::IntImm(low ? 0 : UINT32_MAX, acc);
      case ScalarType::kUInt64: return kir::IntImm(low ? 0 : -1, acc);  // UINT64_MAX's bits
      default: return kir::IntImm(low ? INT64_MIN : INT64_MAX, acc);
    }
  }

  Expr Init() const {
    switch (kind) {
      case Reduce::kSum:
      case Reduce::kMean: return kir::Const(0, acc);
      case Reduce::kProd: return kir::Const(1, acc);
      case Reduce::kMax: return Extreme(true);
      case Reduce::kMin: return Extreme(false);
    }
    return Expr();
  }

  // Whether v replaces the current extreme `best`: v is NaN or beyond it, unless best is NaN.
  Expr Replaces(const Expr& v, const Expr& best) const {
    const Expr beyond = largest() ? kir::Gt(v, best) : kir::Lt(v, best);
    if (!is_float()) return beyond;
    const Expr replaces = kir::Or(kir::Ne(v, v), beyond);
    return arg ? kir::And(kir::Eq(best, best), replaces) : replaces;
  }

  Expr Combine(const Expr& a, const Expr& v) const {
    switch (kind) {
      case Reduce::kSum:
      case Reduce::kMean: return a + v;
      case Reduce::kProd: return a * v;
      case Reduce::kMax:
      case Reduce::kMin: return kir::Select(Replaces(v, a), v, a);
    }
    return Expr();
  }
};

// Accumulators for `width` outputs: values and, for arg, positions.
struct Accumulators {
  kir::Buffer value;
  kir::Buffer position;
};

// An arg slot starts as if it held the extreme's identity at `position`, the first
// position it will see: if nothing replaces it, that is where the first such value is.
Stmt InitSlot(const Combiner& c, const Accumulators& acc, const Expr& slot, const Expr& position) {
  if (!c.arg) return kir::Store(acc.value, slot, c.Init());
  return kir::Block({kir::Store(acc.value, slot, c.Init()), kir::Store(acc.position, slot, position)});
}

Stmt UpdateSlot(const Combiner& c, const Accumulators& acc, const Expr& slot, const Expr& v, const Expr& position) {
  const Expr current = kir::Load(acc.value, slot);
  if (!c.arg) return kir::Store(acc.value, slot, c.Combine(current, v));
  // The position first: both stores test the extreme as it was.
  const Expr replaces = c.Replaces(v, current);
  return kir::Block({kir::Store(acc.position, slot, kir::Select(replaces, position, kir::Load(acc.position, slot))),
                     kir::Store(acc.value, slot, kir::Select(replaces, v, current))});
}

// Merges lane `lane` into lane 0. For the arg forms the lanes saw interleaved positions:
// on equal values (or two NaNs) the earlier position wins, and a NaN beats any number.
Stmt MergeLane(const Combiner& c, const Accumulators& acc, int64_t lane) {
  const Expr zero(int64_t{0});
  const Expr other = kir::Load(acc.value, Expr(lane));
  if (!c.arg) return UpdateSlot(c, acc, zero, other, zero);
  const Expr current = kir::Load(acc.value, zero);
  const Expr other_position = kir::Load(acc.position, Expr(lane));
  const Expr earlier = kir::Lt(other_position, kir::Load(acc.position, zero));
  const Expr beyond = c.largest() ? kir::Gt(other, current) : kir::Lt(other, current);
  Expr replaces = kir::Or(beyond, kir::And(kir::Eq(other, current), earlier));
  if (c.is_float()) {
    const Expr current_is_number = kir::Eq(current, current);
    replaces = kir::Or(kir::And(kir::Ne(other, other), kir::Or(current_is_number, earlier)),
                       kir::And(current_is_number, replaces));
  }
  return kir::Block(
      {kir::Store(acc.position, zero, kir::Select(replaces, other_position, kir::Load(acc.position, zero))),
       kir::Store(acc.value, zero, kir::Select(replaces, other, current))});
}

// The value stored for a finished accumulator slot.
Expr Finish(const Combiner& c, const Accumulators& acc, const Expr& slot, const kir::Buffer& out, DType out_type,
            int64_t count) {
  if (c.arg) return kir::Load(acc.position, slot);
  const Expr value = kir::Load(acc.value, slot);
  if (c.kind != Reduce::kMean) return value;
  // As the reference: the sum rounded to the output dtype, then divided (integers truncate).
  const Expr sum = kir::Cast(out->type, value);
  if (out_type == DType::kUInt64) return sum / kir::IntImm(count, ScalarType::kUInt64);
  if (!IsFloat(out_type)) return kir::Cast(ScalarType::kInt64, sum) / Expr(count);
  const ScalarType type = lower::ComputeType(out_type);
  return kir::Cast(type, sum) / kir::FloatImm(static_cast<double>(count), type);
}

// Serial loops over the reduced dims except the last; `last` gets the input offset and
// the row-major position (in the reduced group) of the last dim's first element.
Stmt ReduceNest(const std::vector<Dim>& dims, size_t d, const Expr& offset, const Expr& position,
                const std::function<Stmt(const Expr& offset, const Expr& position)>& last) {
  if (d + 1 >= dims.size()) return last(offset, position);
  const Expr r = kir::Var("r" + std::to_string(d));
  int64_t positions_below = 1;
  for (size_t k = d + 1; k < dims.size(); ++k) positions_below *= dims[k].size;
  return kir::For(
      r, Expr(int64_t{0}), Expr(dims[d].size),
      ReduceNest(dims, d + 1, offset + r * Expr(dims[d].stride), position + r * Expr(positions_below), last));
}

// The value stored for output element `at`: the combiner's result, through a fused
// epilogue if there is one.
Expr Finished(const Combiner& combiner, const Accumulators& acc, const Expr& slot, const kir::Buffer& out,
              DType out_type, int64_t count, const Expr& at, const LowerContext& ctx) {
  const Expr value = Finish(combiner, acc, slot, out, out_type, count);
  return ctx.epilogue ? ctx.Epilogue(lower::AsStored(value, out_type), at) : value;
}

// The input offset of output row p (the kept dims before the last reduced one).
Expr RowOffset(const ReducePlan& plan, const Expr& p) {
  Expr base(int64_t{0});
  int64_t suffix = 1;
  for (size_t k = plan.outer.size(); k-- > 0;) {
    Expr index = p / Expr(suffix);
    if (k > 0) index = index % Expr(plan.outer[k].size);
    base = base + index * Expr(plan.outer[k].stride);
    suffix *= plan.outer[k].size;
  }
  return base;
}

// CUDA, reductions of at least kMinBlockReduction elements: one parallel iteration per
// output element, its reduced elements (the reduced dims flattened) one kReduction loop,
// which a block of threads shares. Shorter ones keep the form below (a thread each).
constexpr int64_t kMinBlockReduction = 256;

Stmt BlockReduction(const Combiner& combiner, const ReducePlan& plan, LowerContext& ctx) {
  const kir::Buffer& out = ctx.outputs[0];
  const Expr t = kir::Var("output");
  const Expr base = RowOffset(plan, plan.inner > 1 ? t / Expr(plan.inner) : t) +
                    (plan.inner > 1 ? t % Expr(plan.inner) : Expr(int64_t{0}));
  const Expr r = kir::Var("r");
  Expr offset(int64_t{0});
  int64_t below = 1;
  for (size_t k = plan.reduce.size(); k-- > 0;) {
    Expr index = below == 1 ? r : r / Expr(below);
    if (k > 0) index = index % Expr(plan.reduce[k].size);
    offset = offset + index * Expr(plan.reduce[k].stride);
    below *= plan.reduce[k].size;
  }
  const Accumulators acc{ctx.builder->AddLocal("acc", combiner.acc, 1), nullptr};
  const Expr zero(int64_t{0});
  const Expr current = kir::Load(acc.value, zero);
  const Expr v = ctx.LoadInput0(base + offset, combiner.acc);
  Expr combined;
  switch (combiner.kind) {
    case Reduce::kSum:
    case Reduce::kMean: combined = current + v; break;
    case Reduce::kProd: combined = current * v; break;
    case Reduce::kMax: combined = kir::Max(current, v); break;
    case Reduce::kMin: combined = kir::Min(current, v); break;
  }
  const Stmt body = kir::Block({
      InitSlot(combiner, acc, zero, zero),
      kir::For(r, zero, Expr(plan.reduce_count), kir::Store(acc.value, zero, combined), kir::LoopKind::kReduction),
      lower::StoreFrom(out, t, Finished(combiner, acc, zero, out, ctx.output_types[0], plan.reduce_count, t, ctx)),
  });
  return kir::For(t, zero, Expr(plan.outer_count * plan.inner), kir::Allocate(acc.value, body),
                  kir::LoopKind::kParallel);
}

Stmt LowerReduction(const Combiner& combiner, const ReducePlan& plan, LowerContext& ctx) {
  const kir::Buffer& out = ctx.outputs[0];
  if (ctx.target == LowerTarget::kCuda && !combiner.arg && plan.reduce_count >= kMinBlockReduction &&
      plan.outer_count * plan.inner > 0) {
    return BlockReduction(combiner, plan, ctx);
  }
  const DType out_type = ctx.output_types[0];
  if (plan.outer_count == 0 || plan.inner == 0) return kir::Block({});
  const int64_t count = plan.reduce_count;
  const bool lanes = plan.inner == 1 && !plan.reduce.empty() && plan.reduce.back().size >= 2 * kLanes;
  const int64_t width = plan.inner > 1 ? std::min(plan.inner, kTile) : lanes ? kLanes : 1;
  const int64_t tiles = (plan.inner + width - 1) / width;
  const int64_t tasks = plan.outer_count * (plan.inner > 1 ? tiles : 1);

  const Expr t = kir::Var("task");
  const Expr p = plan.inner > 1 ? t / Expr(tiles) : t;
  const Expr i0 = plan.inner > 1 ? (t % Expr(tiles)) * Expr(width) : Expr(int64_t{0});
  const Expr base = RowOffset(plan, p);

  Accumulators acc{ctx.builder->AddLocal("acc", combiner.acc, width),
                   combiner.arg ? ctx.builder->AddLocal("position", ScalarType::kInt64, width) : nullptr};
  const auto load = [&](const Expr& offset) { return ctx.LoadInput0(offset, combiner.acc); };
  std::vector<Stmt> steps;
  if (plan.inner > 1) {
    const Expr j = kir::Var("j");
    const Expr extent = plan.inner % width == 0 ? Expr(width) : kir::Min(Expr(width), Expr(plan.inner) - i0);
    const auto columns = [&](Stmt body) {
      return kir::For(j, Expr(int64_t{0}), extent, body, kir::LoopKind::kVectorize);
    };
    steps.push_back(columns(InitSlot(combiner, acc, j, Expr(int64_t{0}))));
    const auto row = [&](const Expr& offset, const Expr& position) {
      return columns(UpdateSlot(combiner, acc, j, load(base + offset + i0 + j), position));
    };
    if (plan.reduce.empty()) {
      steps.push_back(row(Expr(int64_t{0}), Expr(int64_t{0})));
    } else {
      // The last reduced dim is one more serial loop around the columns.
      const Dim last = plan.reduce.back();
      steps.push_back(
          ReduceNest(plan.reduce, 0, Expr(int64_t{0}), Expr(int64_t{0}), [&](const Expr& offset, const Expr& position) {
            const Expr r = kir::Var("r");
            return kir::For(r, Expr(int64_t{0}), Expr(last.size), row(offset + r * Expr(last.stride), position + r));
          }));
    }
    const Expr at = p * Expr(plan.inner) + i0 + j;
    steps.push_back(columns(lower::StoreFrom(out, at, Finished(combiner, acc, j, out, out_type, count, at, ctx))));
  } else {
    for (int64_t lane = 0; lane < width; ++lane) steps.push_back(InitSlot(combiner, acc, Expr(lane), Expr(lane)));
    if (plan.reduce.empty()) {
      steps.push_back(UpdateSlot(combiner, acc, Expr(int64_t{0}), load(base), Expr(int64_t{0})));
    } else {
      const int64_t n = plan.reduce.back().size;  // contiguous: stride 1
      steps.push_back(ReduceNest(plan.reduce, 0, base, Expr(int64_t{0}), [&](const Expr& offset, const Expr& position) {
        const Expr r = kir::Var("r");
        if (!lanes) {
          return kir::For(r, Expr(int64_t{0}), Expr(n),
                          UpdateSlot(combiner, acc, Expr(int64_t{0}), load(offset + r), position + r));
        }
        const Expr lane = kir::Var("lane");
        const Expr rest = kir::Var("rest");
        const int64_t body_end = n - n % kLanes;
        return kir::Block({
            kir::For(r, Expr(int64_t{0}), Expr(n / kLanes),
                     kir::For(lane, Expr(int64_t{0}), Expr(kLanes),
                              UpdateSlot(combiner, acc, lane, load(offset + r * Expr(kLanes) + lane),
                                         position + r * Expr(kLanes) + lane),
                              kir::LoopKind::kVectorize)),
            kir::For(rest, Expr(body_end), Expr(n - body_end),
                     UpdateSlot(combiner, acc, Expr(int64_t{0}), load(offset + rest), position + rest)),
        });
      }));
      for (int64_t lane = 1; lane < width; ++lane) steps.push_back(MergeLane(combiner, acc, lane));
    }
    steps.push_back(lower::StoreFrom(out, p, Finished(combiner, acc, Expr(int64_t{0}), out, out_type, count, p, ctx)));
  }
  Stmt body = kir::Allocate(acc.value, kir::Block(std::move(steps)));
  if (combiner.arg) body = kir::Allocate(acc.position, body);
  const bool parallel = tasks > 1 && NumElements(ctx.input_shapes[0]) >= ctx.MinParallelWork();
  return kir::For(t, Expr(int64_t{0}), Expr(tasks), body, parallel ? kir::LoopKind::kParallel : kir::LoopKind::kSerial);
}

// The type an input accumulates in (see above).
ScalarType AccumulationType(Reduce kind, bool arg, DType dtype, int64_t count) {
  if (dtype == DType::kBool) return ScalarType::kInt64;
  const bool long_sum = !arg && (kind == Reduce::kSum || kind == Reduce::kMean) && count > kLongSum;
  if (IsFloat(dtype) && long_sum) return ScalarType::kFloat64;
  return lower::ComputeType(dtype);
}

Stmt LowerReduce(Reduce kind, const std::vector<bool>& reduced, bool arg, LowerContext& ctx) {
  const Shape& shape = ctx.input_shapes[0];
  const ReducePlan plan = MakePlan(shape, reduced);
  if (kind == Reduce::kMean && !IsFloat(ctx.output_types[0]) && plan.reduce_count == 0 &&
      NumElements(ctx.output_shapes[0]) > 0) {
    throw Error("mean of zero integer elements divides by zero");
  }
  Combiner combiner;
  combiner.kind = kind;
  combiner.arg = arg;
  combiner.acc = AccumulationType(kind, arg, ctx.input_types[0], plan.reduce_count);
  return LowerReduction(combiner, plan, ctx);
}

// The gradient of a reduction: the output's gradient broadcast back over the reduced
// axes; mean divides by the count, prod multiplies by the product of the others (y / x),
// max and min send it to every element equal to the extreme (ties share it, as MXNet).
GradientFn ReduceGradient(Reduce kind) {
  return [kind](GradientContext& ctx) {
    const Shape& in = ctx.input_shapes[0];
    const auto reduced = ReducedAxes(ctx.attrs.OptInts("axis"), ctx.attrs.Bool("exclude"), in);
    const Shape kept = ReducedShape(in, reduced, true);
    const auto expand = [&](const NodeEntry& v) {
      const NodeEntry shaped =
          ctx.Apply("_np_reshape", {v}, {{"newshape", std::vector<int64_t>(kept.begin(), kept.end())}});
      return ctx.Apply("broadcast_to", {shaped}, {{"shape", std::vector<int64_t>(in.begin(), in.end())}});
    };
    const NodeEntry g = expand(ctx.OutputGrad(0));
    const NodeEntry& x = ctx.inputs[0];
    switch (kind) {
      case Reduce::kSum: ctx.SetInputGrad(0, g); break;
      case Reduce::kMean: {
        const double count = static_cast<double>(NumElements(in)) / static_cast<double>(NumElements(kept));
        ctx.SetInputGrad(0, ctx.Apply("_div_scalar", {g}, {{"scalar", count}}));
        break;
      }
      case Reduce::kProd:
        ctx.SetInputGrad(0, ctx.Apply("broadcast_mul", {g, ctx.Apply("broadcast_div", {expand(ctx.outputs[0]), x})}));
        break;
      case Reduce::kMax:
      case Reduce::kMin:
        ctx.SetInputGrad(0, ctx.Apply("broadcast_mul", {g, ctx.Apply("broadcast_equal", {x, expand(ctx.outputs[0])})}));
        break;
    }
  };
}

void RegisterReduce(const char* name, const char* doc, Reduce kind, const char* alias) {
  OpDef& op =
      OpRegistry::Global()
          .Register(name)
          .Describe(doc)
          .Attr("axis", AttrType::kInts, AttrValue{std::monostate{}},
                "axes to reduce; None or () reduces all, negative values count from the end")
          .Attr("keepdims", AttrType::kBool, AttrValue{false}, "keep reduced axes as size 1")
          .Attr("exclude", AttrType::kBool, AttrValue{false}, "reduce the axes not listed in axis")
          .SetInferShape([kind, name = std::string(name)](const Attrs& attrs, std::vector<ShapeSlot>& inputs,
                                                          std::vector<ShapeSlot>& outputs) {
            if (!inputs[0]) return;
            const auto reduced = ReducedAxes(attrs.OptInts("axis"), attrs.Bool("exclude"), *inputs[0]);
            if (kind == Reduce::kMax || kind == Reduce::kMin) CheckNonEmpty(*inputs[0], reduced, name);
            op_util::AssignShape(outputs[0], ReducedShape(*inputs[0], reduced, attrs.Bool("keepdims")), "output");
          })
          .SetPattern(OpPattern::kReduction)
          // Elementwise producers (x*x of a mean of squares) and consumers (+eps, sqrt)
          // fuse into the one pass over the data.
          .SetAcceptsPrologue()
          .SetAcceptsEpilogue()
          .SetReference(
              [kind](const Attrs& attrs, std::span<const Tensor> in, std::span<Tensor> out, const RefContext&) {
                const auto reduced = ReducedAxes(attrs.OptInts("axis"), attrs.Bool("exclude"), in[0].shape());
                ForEachGroup(in[0].shape(), reduced, [&](int64_t o, const std::vector<int64_t>& offsets) {
                  ReduceGroup(kind, in[0], offsets, out[0], o);
                });
              })
          .SetLower([kind](const Attrs& attrs, LowerContext& ctx) {
            return LowerReduce(kind, ReducedAxes(attrs.OptInts("axis"), attrs.Bool("exclude"), ctx.input_shapes[0]),
                               false, ctx);
          })
          .SetGradient(ReduceGradient(kind));
  if (alias != nullptr) op.Alias(alias);
}

// argmax/argmin reduce one axis, or with axis None the flattened input.
std::vector<bool> ArgReducedAxes(const Attrs& attrs, const Shape& in) {
  const auto axis = attrs.OptInt("axis");
  if (!axis) return ReducedAxes(std::nullopt, false, in);
  return ReducedAxes(std::vector<int64_t>{*axis}, false, in);
}

// The index has the input's dtype, as in MXNet 1.9 (float32 for float32 data, and an int8
// index wraps past 127).
void RegisterArg(const char* name, const char* doc, bool largest) {
  OpRegistry::Global()
      .Register(name)
      .Describe(doc)
      .Attr("axis", AttrType::kInt, AttrValue{std::monostate{}}, "the axis to reduce; None reduces the flattened input")
      .Attr("keepdims", AttrType::kBool, AttrValue{false}, "keep the reduced axis as size 1")
      .SetInferShape([name = std::string(name)](const Attrs& attrs, std::vector<ShapeSlot>& inputs,
                                                std::vector<ShapeSlot>& outputs) {
        if (!inputs[0]) return;
        const auto reduced = ArgReducedAxes(attrs, *inputs[0]);
        CheckNonEmpty(*inputs[0], reduced, name);
        op_util::AssignShape(outputs[0], ReducedShape(*inputs[0], reduced, attrs.Bool("keepdims")), "output");
      })
      .SetPattern(OpPattern::kReduction)
      .SetReference(
          [largest](const Attrs& attrs, std::span<const Tensor> in, std::span<Tensor> out, const RefContext&) {
            ForEachGroup(in[0].shape(), ArgReducedAxes(attrs, in[0].shape()),
                         [&](int64_t o, const std::vector<int64_t>& offsets) {
                           StoreInt(out[0], o, ExtremeOf(in[0], offsets, largest));
                         });
          })
      .SetLower([largest](const Attrs& attrs, LowerContext& ctx) {
        return LowerReduce(largest ? Reduce::kMax : Reduce::kMin, ArgReducedAxes(attrs, ctx.input_shapes[0]), true,
                           ctx);
      })
      // Indices: no gradient flows to the data.
      .SetGradient([](GradientContext&) {});
}

const bool kRegistered = [] {
  RegisterReduce("sum", "Sum over axes", Reduce::kSum, "sum_axis");
  RegisterReduce("mean", "Mean over axes (the sum in the data dtype, divided by the count)", Reduce::kMean, nullptr);
  RegisterReduce("prod", "Product over axes", Reduce::kProd, nullptr);
  RegisterReduce("max", "Maximum over axes; NaN if any element is NaN", Reduce::kMax, "max_axis");
  RegisterReduce("min", "Minimum over axes; NaN if any element is NaN", Reduce::kMin, "min_axis");
  RegisterArg("argmax", "Index of the first maximum along an axis (a NaN counts as the maximum)", true);
  RegisterArg("argmin", "Index of the first minimum along an axis (a NaN counts as the minimum)", false);
  return true;
}();

}  // namespace
}  // namespace kiln
