// Evaluation metrics with MXNet 1.9.1's names and semantics (mx.metric), checked against
// real MXNet (tools/golden/gen_metric_golden.py). Each metric is a running sum over a
// count, reported as sum / count (NaN before any update); what counts as one instance
// is MXNet's choice per metric:
//   accuracy, top_k_accuracy_K, cross-entropy: one per sample;
//   mae, mse, rmse: one per (label, prediction) pair, so batches are averaged with equal
//     weight whatever their size (MXNet's rmse is the mean of per-batch RMSEs);
//   f1 "macro" (MXNet's default): one per Update(), whose F1 is over all its pairs;
//   f1 "micro": the F1 of everything since Reset().
// Computation is in double; MXNet computes in the arrays' dtype (float32 mostly), which
// differs in the last bits.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "runtime/tensor.h"

namespace kiln {

struct MetricValue {
  std::string name;
  double value = 0.0;
};

class EvalMetric {
 public:
  explicit EvalMetric(std::string name) : name_(std::move(name)) {}
  virtual ~EvalMetric() = default;

  // The name it reports (MXNet's: "accuracy", "top_k_accuracy_5", "cross-entropy", ...).
  const std::string& name() const { return name_; }
  // Adds one batch: labels[i] goes with preds[i] (kiln::Error when the counts differ or
  // a pair does not fit the metric).
  virtual void Update(const std::vector<Tensor>& labels, const std::vector<Tensor>& preds) = 0;
  virtual void Reset();
  // Every (name, value) it reports: its own, or a composite's metrics' in order (MXNet's
  // get_name_value()).
  virtual std::vector<MetricValue> GetNameValue() const;
  // Its one (name, value); kiln::Error for a composite of other than one metric.
  MetricValue Get() const;

 protected:
  double sum_metric_ = 0.0;
  double num_inst_ = 0.0;

 private:
  std::string name_;
};

// The fraction of samples whose predicted class (the argmax along `axis` of a
// prediction, or the prediction itself, truncated, where it has the label's shape) is
// the label (truncated).
class Accuracy final : public EvalMetric {
 public:
  explicit Accuracy(int axis = 1);
  void Update(const std::vector<Tensor>& labels, const std::vector<Tensor>& preds) override;

 private:
  int axis_;
};

// The fraction of samples whose label is among the `top_k` highest scores of its
// prediction (N, classes); named "top_k_accuracy_<top_k>". As in MXNet, top_k must exceed
// 1 and not exceed the number of classes. A score tied with the k-th highest counts as within the top k (MXNet's
// argpartition breaks such ties arbitrarily).
class TopKAccuracy final : public EvalMetric {
 public:
  explicit TopKAccuracy(int top_k);
  void Update(const std::vector<Tensor>& labels, const std::vector<Tensor>& preds) override;

 private:
  int top_k_;
};

// Mean absolute error, mean squared error and root mean squared error of each (label,
// prediction) pair, averaged over pairs. A 1-D array is read as (N, 1); the two then
// broadcast as NumPy's arrays do.
class MAE final : public EvalMetric {
 public:
  MAE() : EvalMetric("mae") {}
  void Update(const std::vector<Tensor>& labels, const std::vector<Tensor>& preds) override;
};
class MSE final : public EvalMetric {
 public:
  MSE() : EvalMetric("mse") {}
  void Update(const std::vector<Tensor>& labels, const std::vector<Tensor>& preds) override;
};
class RMSE final : public EvalMetric {
 public:
  RMSE() : EvalMetric("rmse") {}
  void Update(const std::vector<Tensor>& labels, const std::vector<Tensor>& preds) override;
};

// The mean over samples of -log(p + eps), p the predicted probability (N, classes) of
// the sample's label; named "cross-entropy".
class CrossEntropy final : public EvalMetric {
 public:
  explicit CrossEntropy(double eps = 1e-12);
  void Update(const std::vector<Tensor>& labels, const std::vector<Tensor>& preds) override;

 private:
  double eps_;
};

// Binary F1: class 1 (the argmax of a prediction (N, classes), the label) is positive,
// anything else negative; labels with more than two distinct values are an error.
// `average` is "macro" (per Update, averaged: MXNet's default) or "micro" (over all).
class F1 final : public EvalMetric {
 public:
  explicit F1(std::string_view average = "macro");
  void Update(const std::vector<Tensor>& labels, const std::vector<Tensor>& preds) override;
  void Reset() override;

 private:
  bool micro_;
  double true_positives_ = 0.0;
  double false_positives_ = 0.0;
  double false_negatives_ = 0.0;
  double true_negatives_ = 0.0;
};

// Several metrics updated together; reports each one's values in order.
class CompositeEvalMetric final : public EvalMetric {
 public:
  explicit CompositeEvalMetric(std::vector<std::unique_ptr<EvalMetric>> metrics = {});
  void Add(std::unique_ptr<EvalMetric> metric);
  size_t size() const { return metrics_.size(); }
  const EvalMetric& metric(size_t index) const;

  void Update(const std::vector<Tensor>& labels, const std::vector<Tensor>& preds) override;
  void Reset() override;
  std::vector<MetricValue> GetNameValue() const override;

 private:
  std::vector<std::unique_ptr<EvalMetric>> metrics_;
};

// mx.metric.create by name, case-insensitive: "acc" | "accuracy", "top_k_accuracy_<K>" |
// "top_k_acc_<K>" (K > 1: MXNet's name of that metric), "mae", "mse", "rmse", "ce" |
// "cross-entropy" | "crossentropy", "f1", "composite" (empty), each with MXNet's default
// arguments; a metric's name() makes an equal metric. Throws kiln::Error naming the
// known names otherwise.
// "accuracy=0.9123  cross-entropy=0.2500": every value of the metric, 4 decimals (what
// progress bars and logs show).
std::string FormatMetric(const EvalMetric& metric);
std::string FormatMetricValues(const std::vector<MetricValue>& values);

std::unique_ptr<EvalMetric> MakeMetric(std::string_view name);
// A composite of the named metrics (mx.metric.create with a list).
std::unique_ptr<EvalMetric> MakeMetric(const std::vector<std::string>& names);

}  // namespace kiln
