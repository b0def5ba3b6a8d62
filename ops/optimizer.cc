// Fused optimizer updates: MXNet 1.9.1's sgd_update, sgd_mom_update, nag_mom_update,
// adam_update, rmsprop_update, rmspropalex_update and contrib _adamw_update (here
// adamw_update), as functional operators: they return the updated weight and states
// instead of writing their inputs, and take the learning rate (and AdamW's eta) as a
// runtime input of one element, so that a schedule changes it without recompiling.
// Each computes all its outputs elementwise in one loop, float32 or float64 (with the
// attributes as given: MXNet rounds them to float32 for float64 tensors too). They have
// no gradient: the gradient pass refuses to differentiate through them, as MXNet's (no
// FGradient) does.
#include <cmath>
#include <concepts>
#include <span>
#include <string>
#include <vector>

#include "codegen/kir/kir.h"
#include "graph/op_util.h"

namespace kiln {
namespace {

using op_util::AssignType;
using op_util::ShapeError;

// --- the formulas, written once ---
//
// Every update is a generic function over its scalar type: float or double for the
// reference, kir::Expr for the lowering. Both then round each operation alike, in the
// order of MXNet's CPU kernels, so float32 results agree with MXNet's bit for bit.
// These overloads give floats what kir::Expr has (found for it by ADL).

template <std::floating_point T>
T Select(bool condition, T if_true, T if_false) {
  return condition ? if_true : if_false;
}
template <std::floating_point T>
bool Gt(T a, T b) {
  return a > b;
}
template <std::floating_point T>
bool Lt(T a, T b) {
  return a < b;
}
template <std::floating_point T>
T Sqrt(T x) {
  return std::sqrt(x);
}

// MXNet's clip::Map: NaN passes through.
template <typename T>
T Clip(const T& x, const T& bound) {
  return Select(Gt(x, bound), bound, Select(Lt(x, -bound), -bound, x));
}

// An update's attributes as scalars of its formula's type (0 where the operator has no
// such attribute), and which clippings are on (a negative bound turns one off).
template <typename T>
struct Hyper {
  T one, wd, rescale_grad, clip_gradient, clip_weights, momentum, beta1, beta2, epsilon, gamma1, gamma2;
  bool clip_gradient_on = false;
  bool clip_weights_on = false;
  // _adamw_update skips the update when rescale_grad is 0, NaN or infinite.
  bool rescale_usable = true;
};

template <typename T, typename MakeScalar>
Hyper<T> ReadHyper(const Attrs& attrs, const MakeScalar& make) {
  const auto value = [&](const char* name) { return attrs.Has(name) ? attrs.Float(name) : 0.0; };
  Hyper<T> h{.one = make(1.0),
             .wd = make(value("wd")),
             .rescale_grad = make(value("rescale_grad")),
             .clip_gradient = make(value("clip_gradient")),
             .clip_weights = make(value("clip_weights")),
             .momentum = make(value("momentum")),
             .beta1 = make(value("beta1")),
             .beta2 = make(value("beta2")),
             .epsilon = make(value("epsilon")),
             .gamma1 = make(value("gamma1")),
             .gamma2 = make(value("gamma2"))};
  h.clip_gradient_on = value("clip_gradient") >= 0;
  h.clip_weights_on = attrs.Has("clip_weights") && value("clip_weights") >= 0;
  const double rescale = value("rescale_grad");
  h.rescale_usable = std::isfinite(rescale) && rescale != 0;
  return h;
}

// Where an update adds weight decay to the rescaled gradient: MXNet's kernels differ.
enum class Decay { kNone, kBeforeClip, kAfterClip };

// The gradient every update starts from: rescale_grad * grad, clipped, with wd * weight
// added where the kernel adds it.
template <typename T>
T Gradient(const Hyper<T>& h, const T& grad, const T& weight, Decay decay) {
  T g = h.rescale_grad * grad;
  if (decay == Decay::kBeforeClip) g = g + h.wd * weight;
  if (h.clip_gradient_on) g = Clip(g, h.clip_gradient);
  if (decay == Decay::kAfterClip) g = g + h.wd * weight;
  return g;
}

// lr times the gradient, for the SGD kernels: without clipping they multiply
// lr * rescale_grad first, which can differ from lr * (rescale_grad * grad) in the last bit.
template <typename T>
T SgdStep(const Hyper<T>& h, const T& lr, const T& grad, const T& weight) {
  return h.clip_gradient_on ? lr * Gradient(h, grad, weight, Decay::kNone) : (lr * h.rescale_grad) * grad;
}

template <typename T>
T ClipWeight(const Hyper<T>& h, const T& weight) {
  return h.clip_weights_on ? Clip(weight, h.clip_weights) : weight;
}

// Inputs: weight, grad, the states, then the rates (lr, eta). Outputs: weight, states.

// w' = (1 - lr wd) w - lr g
const auto kSgd = [](const auto& h, const auto& in) {
  const auto &w = in[0], &grad = in[1], &lr = in[2];
  return std::vector{(h.one - lr * h.wd) * w - SgdStep(h, lr, grad, w)};
};

// mom' = momentum mom - lr wd w - lr g; w' = w + mom'
const auto kSgdMom = [](const auto& h, const auto& in) {
  const auto &w = in[0], &grad = in[1], &mom = in[2], &lr = in[3];
  const auto next = h.momentum * mom - lr * h.wd * w - SgdStep(h, lr, grad, w);
  return std::vector{w + next, next};
};

// With g = clip(rescale_grad grad) + wd w and m = momentum mom:
// w' = w - m + (momentum + 1) (m - lr g); mom' = m - lr g.
// (MXNet's NAG optimizer passes out=weight, and its kernel writes the weight before it
// reads it for mom's weight decay: with wd > 0 that mom saw the new weight. Here, as in
// MXNet's kernel with a separate output, both read the old weight.)
const auto kNagMom = [](const auto& h, const auto& in) {
  const auto &w = in[0], &grad = in[1], &mom = in[2], &lr = in[3];
  const auto m = h.momentum * mom;
  const auto step = lr * Gradient(h, grad, w, Decay::kAfterClip);
  return std::vector{w - m + (h.momentum + h.one) * (m - step), m - step};
};

// g = clip(rescale_grad grad + wd w); mean' = beta1 mean + (1 - beta1) g;
// var' = beta2 var + (1 - beta2) g^2; w' = w - lr mean' / (sqrt(var') + epsilon)
const auto kAdam = [](const auto& h, const auto& in) {
  const auto &w = in[0], &grad = in[1], &mean = in[2], &var = in[3], &lr = in[4];
  const auto g = Gradient(h, grad, w, Decay::kBeforeClip);
  const auto next_mean = h.beta1 * mean + (h.one - h.beta1) * g;
  const auto next_var = h.beta2 * var + (h.one - h.beta2) * g * g;
  return std::vector{w - lr * next_mean / (Sqrt(next_var) + h.epsilon), next_mean, next_var};
};

// Decoupled weight decay (MXNet's _adamw_update): g = clip(rescale_grad grad);
// mean', var' as Adam's; w' = w - eta (lr mean' / (sqrt(var') + epsilon) + wd w).
const auto kAdamW = [](const auto& h, const auto& in) {
  const auto &w = in[0], &grad = in[1], &mean = in[2], &var = in[3], &lr = in[4], &eta = in[5];
  if (!h.rescale_usable) return std::vector{w, mean, var};
  const auto g = Gradient(h, grad, w, Decay::kNone);
  const auto next_mean = h.beta1 * mean + (h.one - h.beta1) * g;
  const auto next_var = h.beta2 * var + (h.one - h.beta2) * (g * g);
  return std::vector{w - eta * (lr * next_mean / (Sqrt(next_var) + h.epsilon) + h.wd * w), next_mean, next_var};
};

// g = clip(rescale_grad grad + wd w); n' = (1 - gamma1) g^2 + gamma1 n;
// w' = clip_weights(w - lr g / sqrt(n' + epsilon))
const auto kRmsProp = [](const auto& h, const auto& in) {
  const auto &w = in[0], &grad = in[1], &n = in[2], &lr = in[3];
  const auto g = Gradient(h, grad, w, Decay::kBeforeClip);
  const auto next_n = (h.one - h.gamma1) * (g * g) + h.gamma1 * n;
  return std::vector{ClipWeight(h, w - lr * (g / Sqrt(next_n + h.epsilon))), next_n};
};

// Centered (Graves 2013): n' = (1 - gamma1) g^2 + gamma1 n; g' = (1 - gamma1) g + gamma1 g_state;
// delta' = gamma2 delta - lr g / sqrt(n' - g'^2 + epsilon); w' = clip_weights(w + delta')
const auto kRmsPropAlex = [](const auto& h, const auto& in) {
  const auto &w = in[0], &grad = in[1], &n = in[2], &g_state = in[3], &delta = in[4], &lr = in[5];
  const auto g = Gradient(h, grad, w, Decay::kBeforeClip);
  const auto next_n = (h.one - h.gamma1) * g * g + h.gamma1 * n;
  const auto next_g = (h.one - h.gamma1) * g + h.gamma1 * g_state;
  const auto next_delta = h.gamma2 * delta - lr * g / Sqrt(next_n - next_g * next_g + h.epsilon);
  return std::vector{ClipWeight(h, w + next_delta), next_n, next_g, next_delta};
};

// --- registration ---

// An update's inputs: weight, grad, its states (each also an output, after the weight),
// then its rates (one element each).
struct UpdateInputs {
  std::vector<std::string> states;
  std::vector<std::string> rates;

  std::vector<std::string> Names() const {
    std::vector<std::string> names = {"weight", "grad"};
    names.insert(names.end(), states.begin(), states.end());
    names.insert(names.end(), rates.begin(), rates.end());
    return names;
  }
  size_t first_rate() const { return 2 + states.size(); }
};

// Outputs, and inputs other than the rates, have the weight's shape (or give it, when
// the weight's is unknown); a rate is one element, shape (1) unless given.
InferShapeFn UpdateShapes(const UpdateInputs& spec) {
  return [names = spec.Names(), first_rate = spec.first_rate()](const Attrs&, std::vector<ShapeSlot>& inputs,
                                                                std::vector<ShapeSlot>& outputs) {
    for (size_t i = first_rate; i < inputs.size(); ++i) {
      if (!inputs[i]) {
        inputs[i] = Shape{1};
      } else if (NumElements(*inputs[i]) != 1) {
        ShapeError("input '" + names[i] + "'", "a single element (shape (1))", *inputs[i]);
      }
    }
    // Not a structured binding: the lambda below captures them (clang 14 cannot).
    const auto first = op_util::FirstKnownSlot(inputs, names, first_rate, outputs);
    const ShapeSlot& known = first.first;
    const std::string& source = first.second;
    if (!known) return;
    const auto assign = [&](ShapeSlot& slot, const std::string& what) {
      if (slot && *slot != *known) ShapeError(what, "shape " + ShapeToString(*known) + " as " + source, *slot);
      slot = known;
    };
    for (size_t i = 0; i < first_rate; ++i) assign(inputs[i], "input '" + names[i] + "'");
    for (size_t i = 0; i < outputs.size(); ++i) assign(outputs[i], "output " + std::to_string(i));
  };
}

// Every input and output has one dtype, float32 or float64.
InferTypeFn UpdateTypes(const UpdateInputs& spec) {
  return [names = spec.Names()](const Attrs&, std::vector<DTypeSlot>& inputs, std::vector<DTypeSlot>& outputs) {
    const auto [known, source] = op_util::FirstKnownSlot(inputs, names, inputs.size(), outputs);
    if (!known) return;
    if (*known != DType::kFloat32 && *known != DType::kFloat64) {
      throw Error(source + ": expected float32 or float64, given " + std::string(DTypeName(*known)));
    }
    for (size_t i = 0; i < inputs.size(); ++i) AssignType(inputs[i], *known, "input '" + names[i] + "'");
    for (size_t i = 0; i < outputs.size(); ++i) AssignType(outputs[i], *known, "output " + std::to_string(i));
  };
}

// The reference: the formula on each element in T (float or double, the tensors' type),
// the rates read from their single element.
template <typename T, typename Formula>
void RunUpdate(const Formula& formula, const Attrs& attrs, std::span<const Tensor> inputs, std::span<Tensor> outputs,
               size_t first_rate) {
  const Hyper<T> h = ReadHyper<T>(attrs, [](double v) { return static_cast<T>(v); });
  std::vector<T> values(inputs.size());
  for (size_t k = first_rate; k < inputs.size(); ++k) values[k] = static_cast<T>(inputs[k].GetDouble(0));
  for (int64_t i = 0; i < outputs[0].size(); ++i) {
    for (size_t k = 0; k < first_rate; ++k) values[k] = static_cast<T>(inputs[k].GetDouble(i));
    const std::vector<T> results = formula(h, values);
    for (size_t k = 0; k < outputs.size(); ++k) outputs[k].SetDouble(i, results[k]);
  }
}

template <typename Formula>
OpDef& RegisterUpdate(const std::string& name, std::string description, const UpdateInputs& spec,
                      const Formula& formula) {
  std::vector<std::string> output_names = {"weight"};
  output_names.insert(output_names.end(), spec.states.begin(), spec.states.end());
  // No in-place pairs: the generic lowering stores output k before it evaluates output
  // k + 1, which may read an input that output k would have overwritten (the momentum
  // reads the weight for its weight decay).
  return OpRegistry::Global()
      .Register(name)
      .Describe(std::move(description))
      .Inputs(spec.Names())
      .Outputs(output_names)
      .SetInferShape(UpdateShapes(spec))
      .SetInferType(UpdateTypes(spec))
      .SetPattern(OpPattern::kElementwise)
      .SetReference([formula, first_rate = spec.first_rate()](const Attrs& attrs, std::span<const Tensor> in,
                                                              std::span<Tensor> out, const RefContext&) {
        if (out[0].dtype() == DType::kFloat64) {
          RunUpdate<double>(formula, attrs, in, out, first_rate);
        } else {
          RunUpdate<float>(formula, attrs, in, out, first_rate);
        }
      })
      .SetScalarComputeMulti([formula](const Attrs& attrs, const std::vector<kir::Expr>& in, kir::ScalarType type) {
        return formula(ReadHyper<kir::Expr>(attrs, [type](double v) { return kir::FloatImm(v, type); }), in);
      });
}

// The attributes every update has, after its own.
void CommonAttrs(OpDef& op) {
  op.Attr("wd", AttrType::kFloat, AttrValue{0.0}, "weight decay")
      .Attr("rescale_grad", AttrType::kFloat, AttrValue{1.0}, "the gradient is multiplied by this first")
      .Attr("clip_gradient", AttrType::kFloat, AttrValue{-1.0},
            "clip the rescaled gradient to [-clip_gradient, clip_gradient]; negative: off");
}

void LazyUpdate(OpDef& op) {
  op.Attr("lazy_update", AttrType::kBool, AttrValue{true}, "ignored: kiln's gradients are dense");
}

void ClipWeights(OpDef& op) {
  op.Attr("clip_weights", AttrType::kFloat, AttrValue{-1.0},
          "clip the updated weight to [-clip_weights, clip_weights]; negative: off");
}

void Momentum(OpDef& op) {
  op.Attr("momentum", AttrType::kFloat, AttrValue{0.0}, "decay rate of the momentum");
}

void AdamAttrs(OpDef& op) {
  op.Attr("beta1", AttrType::kFloat, AttrValue{0.9}, "decay rate of the first moment")
      .Attr("beta2", AttrType::kFloat, AttrValue{0.999}, "decay rate of the second moment")
      .Attr("epsilon", AttrType::kFloat, AttrValue{1e-8}, "added to the denominator");
}

void RmsPropAttrs(OpDef& op, bool centered) {
  op.Attr("gamma1", AttrType::kFloat, AttrValue{0.95}, "decay rate of the squared-gradient average");
  if (centered) op.Attr("gamma2", AttrType::kFloat, AttrValue{0.9}, "decay rate of delta (momentum)");
  op.Attr("epsilon", AttrType::kFloat, AttrValue{1e-8}, "added under the square root");
}

const bool kRegistered = [] {
  const UpdateInputs momentum{{"mom"}, {"lr"}};  // SGD's and NAG's

  OpDef& sgd = RegisterUpdate("sgd_update", "SGD step: weight - lr * (grad + wd * weight)", {{}, {"lr"}}, kSgd);
  CommonAttrs(sgd);
  LazyUpdate(sgd);

  OpDef& sgd_mom = RegisterUpdate("sgd_mom_update",
                                  "SGD with momentum: mom = momentum * mom - lr * (grad + wd * weight); weight + mom",
                                  momentum, kSgdMom);
  Momentum(sgd_mom);
  CommonAttrs(sgd_mom);
  LazyUpdate(sgd_mom);

  OpDef& nag = RegisterUpdate("nag_mom_update", "Nesterov accelerated gradient step", momentum, kNagMom);
  Momentum(nag);
  CommonAttrs(nag);

  OpDef& adam =
      RegisterUpdate("adam_update", "Adam step (lr already bias-corrected)", {{"mean", "var"}, {"lr"}}, kAdam);
  AdamAttrs(adam);
  CommonAttrs(adam);
  LazyUpdate(adam);

  // Not an alias of _adamw_update: that one takes rescale_grad as its fifth input and lr, eta as attributes.
  OpDef& adamw = RegisterUpdate("adamw_update",
                                "AdamW step (MXNet's _adamw_update, lr and eta as inputs): "
                                "weight - eta * (lr * mean / (sqrt(var) + epsilon) + wd * weight)",
                                {{"mean", "var"}, {"lr", "eta"}}, kAdamW);
  AdamAttrs(adamw);
  CommonAttrs(adamw);

  OpDef& rmsprop = RegisterUpdate("rmsprop_update", "RMSProp step (Tieleman & Hinton 2012)", {{"n"}, {"lr"}}, kRmsProp);
  RmsPropAttrs(rmsprop, /*centered=*/false);
  CommonAttrs(rmsprop);
  ClipWeights(rmsprop);

  OpDef& alex = RegisterUpdate("rmspropalex_update", "centered RMSProp step (Graves 2013)",
                               {{"n", "g", "delta"}, {"lr"}}, kRmsPropAlex);
  RmsPropAttrs(alex, /*centered=*/true);
  CommonAttrs(alex);
  ClipWeights(alex);
  return true;
}();

}  // namespace
}  // namespace kiln
