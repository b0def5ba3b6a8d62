#include "train/gluon/loss.h"

#include "runtime/error.h"

namespace kiln::gluon::loss {

Loss::Loss(const std::string& alias, std::optional<double> weight, int64_t batch_axis, const BlockOptions& options)
    : HybridBlock(alias, options), weight_(weight), batch_axis_(batch_axis) {}

Symbol Loss::Forward(const Symbol& pred, const Symbol& label, const Symbol& sample_weight) {
  std::vector<Symbol> inputs = {pred, label};
  if (sample_weight.num_outputs() > 0) inputs.push_back(sample_weight);
  return Forward(inputs);
}

Tensor Loss::operator()(const Tensor& pred, const Tensor& label) {
  return Call({pred, label}).at(0);
}

Tensor Loss::operator()(const Tensor& pred, const Tensor& label, const Tensor& sample_weight) {
  return Call({pred, label, sample_weight}).at(0);
}

Symbol Loss::HybridForwardAll(OpBuilder& F, const std::vector<Symbol>& inputs) {
  if (inputs.size() != 2 && inputs.size() != 3) {
    throw Error("loss '" + name() + "' takes a prediction, a label and an optional sample weight; given " +
                std::to_string(inputs.size()) + " inputs");
  }
  Symbol loss = LossForward(F, inputs[0], inputs[1]);
  // Gluon's _apply_weighting.
  if (inputs.size() == 3) loss = F("broadcast_mul", {loss, inputs[2]});
  if (weight_) loss = F("_mul_scalar", {loss}, {{"scalar", *weight_}});
  return F(Reduction(), {loss}, {{"axis", std::vector<int64_t>{batch_axis_}}, {"exclude", true}});
}

Symbol Loss::ReshapeLike(OpBuilder& F, const Symbol& x, const Symbol& like) {
  const auto like_shape = like.InferShape({}).outputs.at(0);
  if (!like_shape) {
    throw Error(
        "loss: the label takes the prediction's shape, which is unknown here; declare the shapes of the "
        "graph's inputs (Symbol::Variable(name, shape))");
  }
  const auto x_shape = x.InferShape({}).outputs.at(0);
  if (x_shape == like_shape) return x;  // nothing to reshape
  return F("Reshape", {x}, {{"shape", *like_shape}});
}

L2Loss::L2Loss(const LossOptions& options)
    : Loss("l2loss", options.weight.value_or(1.0) / 2, options.batch_axis, BlockOptionsOf(options)) {}

Symbol L2Loss::LossForward(OpBuilder& F, const Symbol& pred, const Symbol& label) {
  return F("square", {F("elemwise_sub", {ReshapeLike(F, label, pred), pred})});
}

L1Loss::L1Loss(const LossOptions& options)
    : Loss("l1loss", options.weight, options.batch_axis, BlockOptionsOf(options)) {}

Symbol L1Loss::LossForward(OpBuilder& F, const Symbol& pred, const Symbol& label) {
  return F("abs", {F("elemwise_sub", {ReshapeLike(F, label, pred), pred})});
}

SoftmaxCrossEntropyLoss::SoftmaxCrossEntropyLoss(const SoftmaxCrossEntropyOptions& options)
    : Loss("softmaxcrossentropyloss", options.weight, options.batch_axis, BlockOptionsOf(options)),
      axis_(options.axis),
      sparse_label_(options.sparse_label),
      from_logits_(options.from_logits) {}

Symbol SoftmaxCrossEntropyLoss::LossForward(OpBuilder& F, const Symbol& pred, const Symbol& label) {
  const Symbol log_p = from_logits_ ? pred : F("log_softmax", {pred}, {{"axis", axis_}});
  if (sparse_label_) return F("negative", {F("pick", {log_p, label}, {{"axis", axis_}, {"keepdims", true}})});
  const Symbol product = F("elemwise_mul", {log_p, ReshapeLike(F, label, log_p)});
  return F("negative", {F("sum", {product}, {{"axis", std::vector<int64_t>{axis_}}, {"keepdims", true}})});
}

SigmoidBinaryCrossEntropyLoss::SigmoidBinaryCrossEntropyLoss(const SigmoidBinaryCrossEntropyOptions& options)
    : Loss("sigmoidbinarycrossentropyloss", options.weight, options.batch_axis, BlockOptionsOf(options)),
      from_sigmoid_(options.from_sigmoid) {}

Symbol SigmoidBinaryCrossEntropyLoss::LossForward(OpBuilder& F, const Symbol& pred, const Symbol& label) {
  const Symbol z = ReshapeLike(F, label, pred);
  if (!from_sigmoid_) {
    // max(x, 0) - x * z + log(1 + exp(-|x|)): no overflow for large |x|.
    const Symbol softplus = F("Activation", {F("negative", {F("abs", {pred})})}, {{"act_type", "softrelu"}});
    return F("elemwise_add", {F("elemwise_sub", {F("relu", {pred}), F("elemwise_mul", {pred, z})}), softplus});
  }
  constexpr double kEps = 1e-12;
  const Symbol log_p = F("log", {F("_plus_scalar", {pred}, {{"scalar", kEps}})});
  const Symbol one_minus_p = F("_rminus_scalar", {pred}, {{"scalar", 1.0}});
  const Symbol log_q = F("log", {F("_plus_scalar", {one_minus_p}, {{"scalar", kEps}})});
  const Symbol one_minus_z = F("_rminus_scalar", {z}, {{"scalar", 1.0}});
  return F("negative", {F("elemwise_add", {F("elemwise_mul", {log_p, z}), F("elemwise_mul", {log_q, one_minus_z})})});
}

HuberLoss::HuberLoss(const HuberOptions& options)
    : Loss("huberloss", options.weight, options.batch_axis, BlockOptionsOf(options)), rho_(options.rho) {}

Symbol HuberLoss::LossForward(OpBuilder& F, const Symbol& pred, const Symbol& label) {
  const Symbol distance = F("abs", {F("elemwise_sub", {ReshapeLike(F, label, pred), pred})});
  // Gluon's where(d > rho, d - rho / 2, d^2 / (2 rho)), with the condition negated.
  const Symbol within = F("_lesser_equal_scalar", {distance}, {{"scalar", rho_}});
  const Symbol quadratic = F("_mul_scalar", {F("square", {distance})}, {{"scalar", 0.5 / rho_}});
  const Symbol linear = F("_minus_scalar", {distance}, {{"scalar", 0.5 * rho_}});
  return F("where", {within, quadratic, linear});
}

KLDivLoss::KLDivLoss(const KLDivOptions& options)
    : Loss("kldivloss", options.weight, options.batch_axis, BlockOptionsOf(options)),
      from_logits_(options.from_logits),
      axis_(options.axis) {}

Symbol KLDivLoss::LossForward(OpBuilder& F, const Symbol& pred, const Symbol& label) {
  const Symbol log_p = from_logits_ ? pred : F("log_softmax", {pred}, {{"axis", axis_}});
  const Symbol log_label = F("log", {F("_plus_scalar", {label}, {{"scalar", 1e-12}})});
  return F("elemwise_mul", {label, F("elemwise_sub", {log_label, log_p})});
}

}  // namespace kiln::gluon::loss
