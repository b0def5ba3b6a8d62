// Learning-rate schedules with MXNet 1.9.1's semantics (mxnet/lr_scheduler.py):
// FactorScheduler, MultiFactorScheduler, PolyScheduler and CosineScheduler, each with
// MXNet's optional warm-up, made from a one-line spec.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

namespace kiln {

// The first `steps` updates (num_update < steps) run at a warm-up rate instead: rising
// linearly from begin_lr towards the base rate (begin_lr + (base_lr - begin_lr) *
// num_update / steps), or constant at begin_lr.
struct Warmup {
  enum class Mode { kLinear, kConstant };
  int64_t steps = 0;
  double begin_lr = 0;
  Mode mode = Mode::kLinear;
};

class LrScheduler {
 public:
  LrScheduler(double base_lr, Warmup warmup) : base_lr(base_lr), warmup(warmup) {}
  virtual ~LrScheduler();

  // The learning rate for update `num_update`, counting from 1 as MXNet's optimizer
  // passes it (>= 0; a negative count throws kiln::Error).
  //
  // MXNet's schedulers are stateful (FactorScheduler multiplies its base_lr as
  // num_update passes each multiple of step) and give these values only when called
  // with non-decreasing counts. Here the rate is a function of num_update alone: the
  // value MXNet gives for it after being called with increasing counts. A smaller count
  // than the last one (a restart, training resumed from a checkpoint) gives the rate for
  // that update, where MXNet would keep its already decayed one. Not thread-safe (the
  // factor schedule caches where it got to, so that increasing counts cost O(1)).
  double operator()(int64_t num_update);

  // The spec MakeLrScheduler turns back into this schedule (with the same base_lr):
  // the kind and every key, e.g. "factor:step=100,factor=0.5,stop_factor_lr=1e-08";
  // the warm-up keys only where warm-up is on.
  virtual std::string ToString() const = 0;

  // The rate the schedule starts from (after warm-up) and decays.
  const double base_lr;
  const Warmup warmup;

 protected:
  // The rate after warm-up (num_update >= warmup.steps).
  virtual double Decayed(int64_t num_update) = 0;
  // ",warmup_steps=...,warmup_begin_lr=...,warmup_mode=..." where warm-up is on.
  std::string WarmupKeys() const;
};

// A schedule from `spec`, "KIND" or "KIND:KEY=VALUE,KEY=VALUE,...":
//   "" or "constant"   base_lr throughout
//   factor             step (required, >= 1), factor (1, <= 1), stop_factor_lr (1e-8):
//                      base_lr * factor^floor((num_update - 1) / step), never below
//                      stop_factor_lr
//   multifactor        step (required: increasing counts >= 1, separated by ';'),
//                      factor (1, <= 1): base_lr * factor^(the steps below num_update)
//   poly               max_update (required, >= 1), pwr (2, >= 0), final_lr (0):
//                      final_lr + (base_lr - final_lr) * (1 - t / T)^pwr
//   cosine             max_update (required, >= 1), final_lr (0):
//                      final_lr + (base_lr - final_lr) * (1 + cos(pi * t / T)) / 2
// (poly and cosine: t = num_update - warmup_steps and T = max_update - warmup_steps,
// warmup_steps < max_update; past max_update the rate stays at its value there.) Every
// kind also takes warmup_steps (0), warmup_begin_lr (0, <= base_lr) and warmup_mode
// (linear|constant).
// As in MXNet's constructors, all keys but step and max_update have defaults. A list's
// items may also be separated by ',' ("multifactor:step=100,200,factor=0.1"), for specs
// nested where ';' stands for ','. Throws kiln::Error naming the key and the value for
// an unknown kind or key, a missing or repeated key, a malformed or non-finite number,
// or a value out of its range.
std::unique_ptr<LrScheduler> MakeLrScheduler(const std::string& spec, double base_lr);

}  // namespace kiln
