// _backward_BatchNorm (out_grad, data, gamma; axis, eps, fix_gamma): BatchNorm's gradient
// with batch statistics (training), as one kernel. With xhat = (x - mean) * inv_std over
// the m elements of a channel:
//   dx = gamma * inv_std * (g - sum(g) / m - xhat * sum(g * xhat) / m),
//   dgamma = sum(g * xhat), dbeta = sum(g).
// Composed from registered operators the gradient took about ten passes over the data
// (xhat and its products held in memory); here each channel takes four: the mean, the
// variance, both sums at once, and dx. Statistics are float64 sums in the forward's
// order, so that they equal the forward's.
#include <algorithm>
#include <cmath>

#include "codegen/kir/kir.h"
#include "codegen/lower/lower_util.h"
#include "graph/op_util.h"
#include "ops/nn_lowering.h"

namespace kiln::nn {

namespace {

using kir::ScalarType;

void InferShape(const Attrs& attrs, std::vector<ShapeSlot>& in, std::vector<ShapeSlot>& out) {
  if (!in[1]) return;
  const Shape& x = *in[1];
  const int64_t axis = op_util::NormalizeAxis(attrs.Int("axis"), static_cast<int64_t>(x.size()), "attribute 'axis'");
  op_util::AssignShape(in[0], x, "input 'out_grad'");
  op_util::AssignShape(in[2], {x[axis]}, "input 'gamma'");
  op_util::AssignShape(out[0], x, "output 'data_grad'");
  op_util::AssignShape(out[1], {x[axis]}, "output 'gamma_grad'");
  op_util::AssignShape(out[2], {x[axis]}, "output 'beta_grad'");
}

void Reference(const Attrs& attrs, std::span<const Tensor> in, std::span<Tensor> out, const RefContext&) {
  const ChannelView v = ChannelViewOf(attrs, in[1].shape());
  const std::vector<double> g = in[0].ToDoubles();
  const std::vector<double> x = in[1].ToDoubles();
  const double m = static_cast<double>(std::max<int64_t>(v.count(), 1));
  const auto over_channel = [&](int64_t c, const auto& f) {
    for (int64_t o = 0; o < v.outer; ++o) {
      for (int64_t i = 0; i < v.inner; ++i) f(v.at(o, c, i));
    }
  };
  for (int64_t c = 0; c < v.channels; ++c) {
    double mean = 0, var = 0, sum_g = 0, sum_gc = 0;
    over_channel(c, [&](int64_t at) { mean += x[at]; });
    mean /= m;
    over_channel(c, [&](int64_t at) { var += (x[at] - mean) * (x[at] - mean); });
    var /= m;
    over_channel(c, [&](int64_t at) {
      sum_g += g[at];
      sum_gc += g[at] * (x[at] - mean);
    });
    const double inv_std = 1.0 / std::sqrt(var + attrs.Float("eps"));
    const double gamma = attrs.Bool("fix_gamma") ? 1.0 : in[2].GetDouble(c);
    const double sum_gxhat = sum_gc * inv_std;
    over_channel(c, [&](int64_t at) {
      const double xhat = (x[at] - mean) * inv_std;
      out[0].SetDouble(at, gamma * inv_std * (g[at] - sum_g / m - xhat * sum_gxhat / m));
    });
    out[1].SetDouble(c, sum_gxhat);
    out[2].SetDouble(c, sum_g);
  }
}

// One channel per parallel iteration, as BatchNorm's forward.
Stmt Lower(const Attrs& attrs, LowerContext& ctx) {
  const ChannelView v = ChannelViewOf(attrs, ctx.input_shapes[1]);
  const ScalarType f64 = ScalarType::kFloat64;
  const ScalarType t = lower::ComputeType(ctx.output_types[0]);
  const kir::Buffer& g = ctx.inputs[0];
  const kir::Buffer& x = ctx.inputs[1];
  // stat: mean, variance, sum(g), sum(g (x - mean)).
  const kir::Buffer stat = ctx.builder->AddLocal("stat", f64, 4);
  const Expr mean = kir::Load(stat, Int(0));
  const Expr var = kir::Load(stat, Int(1));
  const Expr sum_g = kir::Load(stat, Int(2));
  const Expr sum_gc = kir::Load(stat, Int(3));
  const Expr c = kir::Var("c");
  const ChannelLoops loops(v, c, ctx.target == LowerTarget::kCuda);  // CUDA: a block per channel
  const Expr& at = loops.at;
  const Expr xd = lower::LoadAs(x, at, f64);
  const auto f64_const = [&](double value) { return kir::FloatImm(value, f64); };
  const Expr m = f64_const(static_cast<double>(std::max<int64_t>(v.count(), 1)));
  const Expr inv_std = f64_const(1) / kir::Sqrt(var + f64_const(attrs.Float("eps")));
  const Expr gamma = attrs.Bool("fix_gamma") ? f64_const(1) : lower::LoadAs(ctx.inputs[2], c, f64);
  // dx = a (g - b - (x - mean) k) with a = gamma inv_std, b = sum(g) / m,
  // k = inv_std^2 sum(g (x - mean)) / m, in the compute type.
  const Expr a = kir::Cast(t, gamma * inv_std);
  const Expr b = kir::Cast(t, sum_g / m);
  const Expr k = kir::Cast(t, inv_std * inv_std * sum_gc / m);
  const Expr dx = a * (lower::LoadAs(g, at, t) - b - (lower::LoadAs(x, at, t) - kir::Cast(t, mean)) * k);
  std::vector<Stmt> steps = BatchStatistics(stat, loops, xd);
  const std::vector<Stmt> rest = {
      kir::Store(stat, Int(2), f64_const(0)),
      kir::Store(stat, Int(3), f64_const(0)),
      loops.flat ? loops.Reduce(kir::Store(stat, Int(2), sum_g + lower::LoadAs(g, at, f64)))
                 : loops.Over(kir::Block({kir::Store(stat, Int(2), sum_g + lower::LoadAs(g, at, f64)),
                                          kir::Store(stat, Int(3), sum_gc + lower::LoadAs(g, at, f64) * (xd - mean))})),
      loops.flat ? loops.Reduce(kir::Store(stat, Int(3), sum_gc + lower::LoadAs(g, at, f64) * (xd - mean)))
                 : kir::Block({}),
      loops.Over(lower::StoreFrom(ctx.outputs[0], at, dx)),
      lower::StoreFrom(ctx.outputs[1], c, sum_gc * inv_std),
      lower::StoreFrom(ctx.outputs[2], c, sum_g),
  };
  steps.insert(steps.end(), rest.begin(), rest.end());
  return Loop(c, Int(0), Int(v.channels), kir::Allocate(stat, kir::Block(steps)), kir::LoopKind::kParallel);
}

const bool kRegistered = [] {
  OpRegistry::Global()
      .Register("_backward_BatchNorm")
      .Describe("BatchNorm's gradient with batch statistics: (out_grad, data, gamma) -> data, gamma and beta gradients")
      .Attr("axis", AttrType::kInt, AttrValue{int64_t{1}}, "the channel axis")
      .Attr("eps", AttrType::kFloat, AttrValue{static_cast<double>(1e-3f)}, "added to the variance")
      .Range(0)
      .Attr("fix_gamma", AttrType::kBool, AttrValue{true}, "treat gamma as 1")
      .Inputs({"out_grad", "data", "gamma"})
      .Outputs({"data_grad", "gamma_grad", "beta_grad"})
      .SetInferShape(InferShape)
      .SetInferType(FloatSameType({"out_grad", "data", "gamma"}))
      .SetPattern(OpPattern::kOpaque)
      .SetReference(Reference)
      .SetLower(Lower);
  return true;
}();

}  // namespace

}  // namespace kiln::nn
