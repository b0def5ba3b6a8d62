#include "ops/nn_lowering.h"

#include <algorithm>

#include "graph/op_util.h"
#include "runtime/error.h"
#include "runtime/kernel_abi.h"

namespace kiln::nn {

InferTypeFn FloatSameType(std::vector<std::string> names) {
  return [names = std::move(names)](const Attrs&, std::vector<DTypeSlot>& inputs, std::vector<DTypeSlot>& outputs) {
    const auto [known, source] = op_util::FirstKnownSlot(inputs, names, inputs.size(), outputs);
    if (!known) return;
    if (!IsFloat(*known)) {
      throw Error(source + ": expected a floating-point dtype (float16, bfloat16, float32, float64), given " +
                  std::string(DTypeName(*known)));
    }
    for (size_t i = 0; i < inputs.size(); ++i) {
      op_util::AssignType(inputs[i], *known, "input '" + names[i] + "'");
    }
    for (auto& slot : outputs) op_util::AssignType(slot, *known, "output");
  };
}

Pair SpatialPair(const Attrs& attrs, const char* name, int64_t fill) {
  const auto& values = attrs.Ints(name);
  return values.empty() ? Pair{fill, fill} : Pair{values[0], values[1]};
}

ConvGeometry ConvGeometryOf(const Attrs& attrs, const Shape& xs, const Shape& ys) {
  const int64_t groups = attrs.Int("num_group");
  return {xs[0],
          xs[1],
          xs[2],
          xs[3],
          ys[1],
          ys[2],
          ys[3],
          groups,
          xs[1] / groups,
          ys[1] / groups,
          SpatialPair(attrs, "kernel", 1),
          SpatialPair(attrs, "stride", 1),
          SpatialPair(attrs, "dilate", 1),
          SpatialPair(attrs, "pad", 0)};
}

std::pair<int64_t, int64_t> Interior(int64_t size, int64_t out, int64_t kernel, int64_t stride, int64_t dilate,
                                     int64_t pad) {
  const int64_t first = std::min(out, CeilDivInt(pad, stride));
  const int64_t last_reach = size - 1 + pad - (kernel - 1) * dilate;  // o * stride <= this
  const int64_t end = last_reach < 0 ? first : std::clamp<int64_t>(last_reach / stride + 1, first, out);
  return {first, end};
}

Stmt TaskLoop(int64_t items, int64_t tasks, const std::function<Stmt(const Expr& task, const Expr& item)>& body) {
  const Expr task = kir::Var("task");
  const Expr item = kir::Var("item");
  const Expr first_item = task * Int(items) / Int(tasks);
  const Expr end_item = (task + Int(1)) * Int(items) / Int(tasks);
  return Loop(task, Int(0), Int(tasks), Loop(item, first_item, end_item - first_item, body(task, item)),
              kir::LoopKind::kParallel);
}

ConvImage ImageOf(const ConvGeometry& g) {
  return {Int(g.group_in), Int(g.height), Int(g.width), g.k.h, g.k.w, g.s.h,
          g.s.w,           g.d.h,         g.d.w,        g.p.h, g.p.w, Int(g.out_w)};
}

Stmt ConvRoutineCall(const char* routine, const Expr& m, const Expr& col0, const Expr& cols, const kir::Buffer& a,
                     const Expr& a_at, int64_t lda, const kir::Buffer& x, const Expr& x_at, const ConvImage& image,
                     const kir::Buffer& c, const Expr& c_at, const Expr& ldc) {
  const auto scalar = [](const Expr& e) { return kir::ScalarArg(e); };
  const auto value = [](int64_t v) { return kir::ScalarArg(Int(v)); };
  return kir::Call(routine, {scalar(m),
                             scalar(col0),
                             scalar(cols),
                             kir::PointerArg(a, a_at),
                             value(lda),
                             kir::PointerArg(x, x_at),
                             scalar(image.channels),
                             scalar(image.height),
                             scalar(image.width),
                             value(image.kernel_h),
                             value(image.kernel_w),
                             value(image.stride_h),
                             value(image.stride_w),
                             value(image.dilate_h),
                             value(image.dilate_w),
                             value(image.pad_h),
                             value(image.pad_w),
                             scalar(image.out_w),
                             kir::PointerArg(c, c_at),
                             scalar(ldc)});
}

Stmt SgemmCall(const Expr& m, const Expr& n, const Expr& k, const kir::Buffer& a, const Expr& a_at, const Expr& lda,
               bool transpose_a, const kir::Buffer& b, const Expr& b_at, const Expr& ldb, bool transpose_b,
               const Expr& beta, const kir::Buffer& c, const Expr& c_at, const Expr& ldc) {
  const auto flag = [](bool on) { return kir::ScalarArg(kir::IntImm(on ? 1 : 0, kir::ScalarType::kInt32)); };
  return kir::Call(kRoutineSgemm, {kir::ScalarArg(m), kir::ScalarArg(n), kir::ScalarArg(k),
                                   kir::ScalarArg(kir::FloatImm(1.0)), kir::PointerArg(a, a_at), kir::ScalarArg(lda),
                                   flag(transpose_a), kir::PointerArg(b, b_at), kir::ScalarArg(ldb), flag(transpose_b),
                                   kir::ScalarArg(beta), kir::PointerArg(c, c_at), kir::ScalarArg(ldc)});
}

ChannelView ChannelViewOf(const Attrs& attrs, const Shape& shape) {
  const int64_t ndim = static_cast<int64_t>(shape.size());
  const int64_t axis = op_util::NormalizeAxis(attrs.Int("axis"), ndim, "attribute 'axis'");
  ChannelView view;
  view.channels = shape[axis];
  for (int64_t d = 0; d < axis; ++d) view.outer *= shape[d];
  for (int64_t d = axis + 1; d < ndim; ++d) view.inner *= shape[d];
  return view;
}

ChannelLoops::ChannelLoops(const ChannelView& view, const Expr& c, bool flat)
    : view(view),
      flat(flat),
      r(kir::Var("r")),
      c(c),
      o(flat ? r / Int(view.inner) : kir::Var("o")),
      i(flat ? r % Int(view.inner) : kir::Var("i")),
      at((o * Int(view.channels) + c) * Int(view.inner) + i) {}

Stmt ChannelLoops::Over(Stmt body) const {
  if (flat) return kir::For(r, Int(0), Int(view.count()), std::move(body), kir::LoopKind::kIndependent);
  return Loop(o, Int(0), Int(view.outer), Loop(i, Int(0), Int(view.inner), std::move(body), kir::LoopKind::kVectorize));
}

Stmt ChannelLoops::Reduce(Stmt store) const {
  if (flat) return kir::For(r, Int(0), Int(view.count()), std::move(store), kir::LoopKind::kReduction);
  return Over(std::move(store));
}

std::vector<Stmt> BatchStatistics(const kir::Buffer& stat, const ChannelLoops& loops, const Expr& x) {
  const int64_t count = loops.view.count();
  const kir::ScalarType f64 = kir::ScalarType::kFloat64;
  const Expr zero = kir::FloatImm(0, f64);
  const Expr mean = kir::Load(stat, Int(0));
  const Expr var = kir::Load(stat, Int(1));
  const auto average = [&](const Expr& sum) {
    return count > 0 ? sum / kir::FloatImm(static_cast<double>(count), f64) : zero;
  };
  return {
      kir::Store(stat, Int(0), zero),
      loops.Reduce(kir::Store(stat, Int(0), mean + x)),
      kir::Store(stat, Int(0), average(mean)),
      kir::Store(stat, Int(1), zero),
      loops.Reduce(kir::Store(stat, Int(1), var + (x - mean) * (x - mean))),
      kir::Store(stat, Int(1), average(var)),
  };
}

}  // namespace kiln::nn
