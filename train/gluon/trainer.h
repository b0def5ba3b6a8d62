// Gluon's Trainer (MXNet 1.9.1's mx.gluon.Trainer), for a compiled world: one call does
// what Gluon spells
//
//   with autograd.record():
//       l = loss(net(data), label)
//   l.backward()
//   trainer.step(batch_size)
//
// as one compiled step (train/train_step.h): the forward pass of loss(net(data), label),
// the gradient of the sum of its per-sample losses, and every parameter's optimizer
// update with Gluon's rules: rescale_grad = rescale_grad option / batch_size, weight
// decay wd * wd_mult with each Parameter's wd_mult (1 for every parameter: Gluon does
// not exempt biases), lr_mult, grad_req. A step compiles once per net, loss, input shapes,
// batch size and parameter settings; the trained values stay in the step until a
// parameter is read (Parameter::Data, calling the net, saving).
//
//   Trainer trainer(net.CollectParams(), "sgd", {{"learning_rate", 0.1}, {"momentum", 0.9}});
//   for (auto& [x, y] : batches) float mean_loss = trainer.TrainStep(net, loss, x, y, x.shape()[0]);
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include "graph/attrs.h"
#include "train/gluon/block.h"
#include "train/gluon/loss.h"
#include "train/optimizer.h"

namespace kiln::gluon {

class Trainer {
 public:
  // `optimizer`: sgd, nag, adam, adamw, rmsprop; `optimizer_params` as Gluon's
  // (learning_rate, wd, momentum, rescale_grad, clip_gradient, beta1, beta2, epsilon,
  // gamma1, gamma2, centered, clip_weights, lr_scheduler as a kiln schedule spec).
  // `seed` picks Dropout's masks. Every parameter must be initialized (deferred counts).
  Trainer(ParameterDict params, const std::string& optimizer,
          const std::map<std::string, AttrArg>& optimizer_params = {}, uint64_t seed = 0);
  ~Trainer();  // the parameters get their trained values
  Trainer(Trainer&&) noexcept;
  Trainer& operator=(Trainer&&) noexcept;

  // One training step on a batch; returns the batch's mean loss (before the update).
  float TrainStep(Block& net, loss::Loss& loss, const Tensor& data, const Tensor& label, int64_t batch_size);

  const ParameterDict& params() const;
  const OptimizerConfig& optimizer() const;                           // rescale_grad as given, before the batch size
  double learning_rate() const { return optimizer().learning_rate; }  // before any schedule
  int64_t num_update() const;

  // Optimizer states in kiln's parameter format: "<i>__<state>" for the i-th parameter
  // in name order (Gluon's numbering; another prefix resumes too) and "__num_update__".
  // MXNet's pickled updater states are not read or written.
  void SaveStates(const std::string& path) const;
  void LoadStates(const std::string& path);

 private:
  class State;
  std::shared_ptr<State> state_;
};

}  // namespace kiln::gluon
