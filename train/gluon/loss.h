// Gluon's losses (MXNet 1.9.1's mx.gluon.loss): blocks of a prediction and a label (and
// an optional per-sample weight) giving one loss per sample, with Gluon's formulas and
// defaults: the loss is multiplied by the sample weight (broadcast) and by `weight`, then
// averaged over every axis but batch_axis (KLDivLoss sums, as MXNet 1.9.1 does).
//
//   loss::SoftmaxCrossEntropyLoss loss;
//   Tensor per_sample = loss(net(x)[0], labels);
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "train/gluon/block.h"

namespace kiln::gluon::loss {

class Loss : public HybridBlock {
 public:
  using Block::Forward;
  Symbol Forward(const Symbol& pred, const Symbol& label, const Symbol& sample_weight = Symbol());
  // Compiled per input shapes, as Block::Call.
  Tensor operator()(const Tensor& pred, const Tensor& label);
  Tensor operator()(const Tensor& pred, const Tensor& label, const Tensor& sample_weight);

 protected:
  // `weight`: the factor the loss is multiplied by (none: no multiplication).
  Loss(const std::string& alias, std::optional<double> weight, int64_t batch_axis, const BlockOptions& options);
  // The elementwise loss, before weighting and averaging.
  virtual Symbol LossForward(OpBuilder& F, const Symbol& pred, const Symbol& label) = 0;
  // Averages over the non-batch axes (KLDivLoss sums).
  virtual const char* Reduction() const { return "mean"; }
  // Gluon's _reshape_like(label, pred): the label takes the prediction's shape (from the
  // shapes the graph's inputs declare).
  static Symbol ReshapeLike(OpBuilder& F, const Symbol& x, const Symbol& like);

  Symbol HybridForwardAll(OpBuilder& F, const std::vector<Symbol>& inputs) override;

 private:
  std::optional<double> weight_;
  int64_t batch_axis_;
};

struct LossOptions {
  std::optional<double> weight{};
  int64_t batch_axis = 0;
  std::optional<std::string> prefix{};
  std::optional<ParameterDict> params{};
};

// 0.5 * weight * (pred - label)^2 (weight defaults to 1).
class L2Loss : public Loss {
 public:
  explicit L2Loss(const LossOptions& options = {});  // weight: none means 1

 protected:
  Symbol LossForward(OpBuilder& F, const Symbol& pred, const Symbol& label) override;
};

// |pred - label|.
class L1Loss : public Loss {
 public:
  explicit L1Loss(const LossOptions& options = {});

 protected:
  Symbol LossForward(OpBuilder& F, const Symbol& pred, const Symbol& label) override;
};

struct SoftmaxCrossEntropyOptions {
  int64_t axis = -1;
  bool sparse_label = true;  // labels are class indices; else distributions like pred
  bool from_logits = false;  // pred is already log_softmax
  std::optional<double> weight{};
  int64_t batch_axis = 0;
  std::optional<std::string> prefix{};
  std::optional<ParameterDict> params{};
};

// -log_softmax(pred)[label] (sparse) or -sum(log_softmax(pred) * label).
class SoftmaxCrossEntropyLoss : public Loss {
 public:
  explicit SoftmaxCrossEntropyLoss(const SoftmaxCrossEntropyOptions& options = {});

 protected:
  Symbol LossForward(OpBuilder& F, const Symbol& pred, const Symbol& label) override;

 private:
  int64_t axis_;
  bool sparse_label_, from_logits_;
};

struct SigmoidBinaryCrossEntropyOptions {
  bool from_sigmoid = false;  // pred is already a probability
  std::optional<double> weight{};
  int64_t batch_axis = 0;
  std::optional<std::string> prefix{};
  std::optional<ParameterDict> params{};
};

// From logits, the stable form max(x, 0) - x * z + log(1 + exp(-|x|)); from
// probabilities, -(log(p + 1e-12) * z + log(1 - p + 1e-12) * (1 - z)).
class SigmoidBinaryCrossEntropyLoss : public Loss {
 public:
  explicit SigmoidBinaryCrossEntropyLoss(const SigmoidBinaryCrossEntropyOptions& options = {});

 protected:
  Symbol LossForward(OpBuilder& F, const Symbol& pred, const Symbol& label) override;

 private:
  bool from_sigmoid_;
};

struct HuberOptions {
  double rho = 1;
  std::optional<double> weight{};
  int64_t batch_axis = 0;
  std::optional<std::string> prefix{};
  std::optional<ParameterDict> params{};
};

// |d| - rho / 2 where |d| > rho, else d^2 / (2 rho), with d = pred - label.
class HuberLoss : public Loss {
 public:
  explicit HuberLoss(const HuberOptions& options = {});

 protected:
  Symbol LossForward(OpBuilder& F, const Symbol& pred, const Symbol& label) override;

 private:
  double rho_;
};

struct KLDivOptions {
  bool from_logits = true;  // pred is log-probabilities; else log_softmax is applied
  int64_t axis = -1;
  std::optional<double> weight{};
  int64_t batch_axis = 0;
  std::optional<std::string> prefix{};
  std::optional<ParameterDict> params{};
};

// label * (log(label + 1e-12) - pred), summed over the non-batch axes.
class KLDivLoss : public Loss {
 public:
  explicit KLDivLoss(const KLDivOptions& options = {});

 protected:
  Symbol LossForward(OpBuilder& F, const Symbol& pred, const Symbol& label) override;
  const char* Reduction() const override { return "sum"; }

 private:
  bool from_logits_;
  int64_t axis_;
};

}  // namespace kiln::gluon::loss
