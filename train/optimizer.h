// Optimizers as MXNet 1.9.1 defines them (mx.optimizer: sgd, nag, adam, rmsprop; adamw
// as its contrib _adamw_update), described for the compiled training step: each
// parameter's update is one fused operator (ops/optimizer.cc) that reads the weight, its
// gradient and its states once and writes their new values, while the step's learning
// rate (with the schedule and Adam's bias correction) comes in as a run-time input, so
// nothing recompiles as it changes.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "graph/attrs.h"
#include "train/lr_scheduler.h"

namespace kiln {

struct OptimizerConfig {
  std::string name = "sgd";  // sgd | nag | adam | adamw | rmsprop
  double learning_rate = 0.01;
  double wd = 0;
  double rescale_grad = 1;
  double clip_gradient = -1;  // < 0: off
  double momentum = 0;        // sgd, nag
  double beta1 = 0.9;         // adam, adamw
  double beta2 = 0.999;
  double epsilon = 1e-8;  // adam, adamw, rmsprop
  double gamma1 = 0.9;    // rmsprop
  double gamma2 = 0.9;    // rmsprop, centered
  bool centered = false;
  double clip_weights = -1;  // rmsprop; < 0: off
  // A schedule for MakeLrScheduler ("factor:step=100,factor=0.5"); empty: constant.
  std::string lr_scheduler;
};

// `name` with MXNet's defaults (adam and rmsprop start at learning rate 0.001), then
// "key=value,..." options: lr|learning_rate, wd, momentum, rescale_grad, clip_gradient,
// beta1, beta2, epsilon, gamma1, gamma2, centered, clip_weights, and lr_scheduler (a
// scheduler spec whose own commas are written as ';'). Throws kiln::Error naming an
// unknown optimizer or key, or a bad value.
OptimizerConfig ParseOptimizer(const std::string& name, const std::string& options = "");
std::string OptimizerToString(const OptimizerConfig& config);

// How one parameter is updated: the operator, its attributes, and its state tensors
// (inputs after the weight and gradient, outputs after the weight, all of the
// weight's shape, zeros at the start).
struct UpdateRule {
  std::string op;
  std::map<std::string, AttrValue> attrs;
  std::vector<std::string> states;
  bool takes_eta = false;  // the scheduled multiplier is an input too (adamw)
};

// The learning-rate inputs of one step.
struct StepScalars {
  double lr = 0;
  double eta = 1;
};

class Optimizer {
 public:
  explicit Optimizer(OptimizerConfig config);

  const OptimizerConfig& config() const { return config_; }
  // The rule for a parameter whose weight decay is wd * wd_mult.
  UpdateRule Rule(double wd_mult = 1) const;
  // The inputs of update number `num_update` (1 for the first step). The schedule is
  // MXNet's, stateful as MXNet's is: call with increasing counts.
  StepScalars Scalars(int64_t num_update);

 private:
  OptimizerConfig config_;
  std::unique_ptr<LrScheduler> scheduler_;
};

// MXNet Module's rule (Optimizer.set_wd_mult): parameters whose names end neither in
// "_weight" nor in "_gamma" get no weight decay; `annotated` (__wd_mult__) overrides.
std::map<std::string, double> ModuleWdMults(const std::vector<std::string>& params,
                                            const std::map<std::string, double>& annotated = {});

}  // namespace kiln
