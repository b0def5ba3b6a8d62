#include "train/data/metric.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <functional>
#include <limits>
#include <optional>
#include <set>

#include "runtime/error.h"

namespace kiln {
namespace {

std::string Describe(const Tensor& array) {
  return std::string(DTypeName(array.dtype())) + " " + ShapeToString(array.shape());
}

// Calls `update(label, pred)` for each pair after checking that the counts agree (MXNet's
// check_label_shapes).
void ForEachPair(const std::string& metric, const std::vector<Tensor>& labels, const std::vector<Tensor>& preds,
                 const std::function<void(const Tensor&, const Tensor&)>& update) {
  if (labels.size() != preds.size()) {
    throw Error("metric " + metric + ": expected as many predictions as labels (" + std::to_string(labels.size()) +
                "), given " + std::to_string(preds.size()));
  }
  for (size_t i = 0; i < labels.size(); ++i) {
    if (!labels[i].defined() || !preds[i].defined()) {
      throw Error("metric " + metric + ": pair " + std::to_string(i) + " has an undefined tensor");
    }
    update(labels[i], preds[i]);
  }
}

// A label or predicted class as NumPy's astype(int32) reads it: truncated toward zero.
// Where that is undefined (NaN, infinities, beyond int32) it is no class at all.
std::optional<int64_t> ClassOf(double value) {
  if (!(std::abs(value) < 2147483648.0)) return std::nullopt;
  return static_cast<int64_t>(value);
}

std::vector<std::optional<int64_t>> ClassesOf(const std::vector<double>& values) {
  std::vector<std::optional<int64_t>> classes(values.size());
  std::transform(values.begin(), values.end(), classes.begin(), ClassOf);
  return classes;
}

// The index of the first maximum along `axis`, for every position of the other axes
// (row-major over them).
std::vector<std::optional<int64_t>> ArgmaxAlong(const Tensor& array, int64_t axis) {
  const Shape& shape = array.shape();
  int64_t outer = 1;
  int64_t inner = 1;
  for (int64_t d = 0; d < axis; ++d) outer *= shape[d];
  for (int64_t d = axis + 1; d < array.ndim(); ++d) inner *= shape[d];
  const int64_t extent = shape[axis];
  const std::vector<double> values = array.ToDoubles();
  std::vector<std::optional<int64_t>> result;
  result.reserve(outer * inner);
  for (int64_t o = 0; o < outer; ++o) {
    for (int64_t i = 0; i < inner; ++i) {
      const double* first = &values[o * extent * inner + i];
      int64_t best = 0;
      for (int64_t k = 1; k < extent; ++k) {
        if (first[k * inner] > first[best * inner]) best = k;
      }
      result.push_back(extent == 0 ? std::nullopt : std::optional<int64_t>(best));
    }
  }
  return result;
}

// A prediction of `num_samples` rows of class scores (N, classes), as top_k_accuracy,
// cross-entropy and f1 take it.
void CheckScores(const std::string& metric, const Tensor& pred, int64_t num_samples) {
  if (pred.ndim() != 2 || pred.shape()[0] != num_samples) {
    throw Error("metric " + metric + ": expected predictions (" + std::to_string(num_samples) +
                ", classes) for labels of " + std::to_string(num_samples) + " samples, given " + Describe(pred));
  }
}

// The mean of error(label - pred) over the arrays broadcast together as NumPy does, after
// reading a 1-D array as (N, 1) (MXNet's MAE, MSE and RMSE).
double MeanError(const std::string& metric, const Tensor& label, const Tensor& pred,
                 const std::function<double(double)>& error) {
  const auto as_matrix = [](const Tensor& t) { return t.ndim() == 1 ? Shape{t.shape()[0], 1} : t.shape(); };
  Shape a = as_matrix(label);
  Shape b = as_matrix(pred);
  const size_t ndim = std::max(a.size(), b.size());
  a.insert(a.begin(), ndim - a.size(), 1);
  b.insert(b.begin(), ndim - b.size(), 1);
  Shape out(ndim);
  for (size_t d = 0; d < ndim; ++d) {
    if (a[d] != b[d] && a[d] != 1 && b[d] != 1) {
      throw Error("metric " + metric + ": expected labels and predictions that broadcast together, given labels " +
                  Describe(label) + " and predictions " + Describe(pred));
    }
    out[d] = a[d] == 1 ? b[d] : a[d];
  }
  // Strides in elements, zero along the axes an array is broadcast on.
  const auto broadcast_strides = [&](const Shape& shape) {
    std::vector<int64_t> strides = Strides(shape);
    for (size_t d = 0; d < ndim; ++d) {
      if (shape[d] != out[d]) strides[d] = 0;
    }
    return strides;
  };
  const std::vector<int64_t> stride_a = broadcast_strides(a);
  const std::vector<int64_t> stride_b = broadcast_strides(b);
  const std::vector<double> values_a = label.ToDoubles();
  const std::vector<double> values_b = pred.ToDoubles();

  const int64_t count = NumElements(out);
  std::vector<int64_t> index(ndim, 0);
  int64_t offset_a = 0;
  int64_t offset_b = 0;
  double sum = 0.0;
  for (int64_t n = 0; n < count; ++n) {
    sum += error(values_a[offset_a] - values_b[offset_b]);
    // Odometer step over `out`, moving both offsets along.
    for (size_t d = ndim; d-- > 0;) {
      offset_a += stride_a[d];
      offset_b += stride_b[d];
      if (++index[d] < out[d]) break;
      offset_a -= stride_a[d] * out[d];
      offset_b -= stride_b[d] * out[d];
      index[d] = 0;
    }
  }
  return count == 0 ? std::numeric_limits<double>::quiet_NaN() : sum / static_cast<double>(count);
}

double Square(double x) {
  return x * x;
}

std::string Lower(std::string_view text) {
  std::string out(text);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

}  // namespace

// ---- EvalMetric ----

void EvalMetric::Reset() {
  sum_metric_ = 0.0;
  num_inst_ = 0.0;
}

std::vector<MetricValue> EvalMetric::GetNameValue() const {
  const double value = num_inst_ == 0.0 ? std::numeric_limits<double>::quiet_NaN() : sum_metric_ / num_inst_;
  return {{name_, value}};
}

MetricValue EvalMetric::Get() const {
  std::vector<MetricValue> values = GetNameValue();
  if (values.size() != 1) {
    throw Error("metric " + name_ + ": Get() expects a metric with one value, given one with " +
                std::to_string(values.size()) + " (use GetNameValue())");
  }
  return std::move(values.front());
}

// ---- Classification ----

Accuracy::Accuracy(int axis) : EvalMetric("accuracy"), axis_(axis) {}

void Accuracy::Update(const std::vector<Tensor>& labels, const std::vector<Tensor>& preds) {
  ForEachPair(name(), labels, preds, [&](const Tensor& label, const Tensor& pred) {
    std::vector<std::optional<int64_t>> predicted;
    if (pred.shape() == label.shape()) {
      predicted = ClassesOf(pred.ToDoubles());
    } else {
      const int64_t axis = axis_ < 0 ? axis_ + pred.ndim() : axis_;
      if (axis < 0 || axis >= pred.ndim()) {
        throw Error("metric accuracy: expected predictions with an axis " + std::to_string(axis_) +
                    " (of class scores), given " + Describe(pred));
      }
      predicted = ArgmaxAlong(pred, axis);
    }
    const std::vector<std::optional<int64_t>> truth = ClassesOf(label.ToDoubles());
    if (predicted.size() != truth.size()) {
      throw Error("metric accuracy: expected a predicted class for each of the " + std::to_string(truth.size()) +
                  " labels (" + Describe(label) + "), given " + std::to_string(predicted.size()) + " (predictions " +
                  Describe(pred) + ", classes along axis " + std::to_string(axis_) + ")");
    }
    for (size_t i = 0; i < truth.size(); ++i) {
      if (truth[i] && truth[i] == predicted[i]) sum_metric_ += 1.0;
    }
    num_inst_ += static_cast<double>(truth.size());
  });
}

TopKAccuracy::TopKAccuracy(int top_k) : EvalMetric("top_k_accuracy_" + std::to_string(top_k)), top_k_(top_k) {
  if (top_k <= 1) {
    throw Error("metric top_k_accuracy: expected top_k > 1 (accuracy is top_k = 1), given " + std::to_string(top_k));
  }
}

void TopKAccuracy::Update(const std::vector<Tensor>& labels, const std::vector<Tensor>& preds) {
  ForEachPair(name(), labels, preds, [&](const Tensor& label, const Tensor& pred) {
    const std::vector<std::optional<int64_t>> truth = ClassesOf(label.ToDoubles());
    const auto num_samples = static_cast<int64_t>(truth.size());
    CheckScores(name(), pred, num_samples);
    const int64_t num_classes = pred.shape()[1];
    if (num_classes < top_k_) {  // MXNet's argpartition refuses it too
      throw Error("metric " + name() + ": expected predictions of at least " + std::to_string(top_k_) +
                  " classes, given " + Describe(pred));
    }
    const std::vector<double> scores = pred.ToDoubles();
    for (int64_t n = 0; n < num_samples; ++n) {
      if (!truth[n] || *truth[n] < 0 || *truth[n] >= num_classes) continue;
      const double* row = &scores[n * num_classes];
      const double label_score = row[*truth[n]];
      const auto higher = std::count_if(row, row + num_classes, [&](double s) { return s > label_score; });
      if (higher < top_k_) sum_metric_ += 1.0;
    }
    num_inst_ += static_cast<double>(num_samples);
  });
}

CrossEntropy::CrossEntropy(double eps) : EvalMetric("cross-entropy"), eps_(eps) {}

void CrossEntropy::Update(const std::vector<Tensor>& labels, const std::vector<Tensor>& preds) {
  ForEachPair(name(), labels, preds, [&](const Tensor& label, const Tensor& pred) {
    const std::vector<double> truth = label.ToDoubles();
    const auto num_samples = static_cast<int64_t>(truth.size());
    CheckScores(name(), pred, num_samples);
    const int64_t num_classes = pred.shape()[1];
    const std::vector<double> probabilities = pred.ToDoubles();
    for (int64_t n = 0; n < num_samples; ++n) {
      const std::optional<int64_t> k = ClassOf(truth[n]);
      if (!k || *k < 0 || *k >= num_classes) {
        throw Error("metric cross-entropy: expected labels in [0, " + std::to_string(num_classes) + "), given " +
                    std::to_string(truth[n]) + " for sample " + std::to_string(n));
      }
      sum_metric_ -= std::log(probabilities[n * num_classes + *k] + eps_);
    }
    num_inst_ += static_cast<double>(num_samples);
  });
}

F1::F1(std::string_view average) : EvalMetric("f1"), micro_(average == "micro") {
  if (average != "macro" && average != "micro") {
    throw Error("metric f1: expected average \"macro\" or \"micro\", given \"" + Abbreviate(average) + "\"");
  }
}

void F1::Update(const std::vector<Tensor>& labels, const std::vector<Tensor>& preds) {
  ForEachPair(name(), labels, preds, [&](const Tensor& label, const Tensor& pred) {
    const std::vector<std::optional<int64_t>> truth = ClassesOf(label.ToDoubles());
    CheckScores(name(), pred, static_cast<int64_t>(truth.size()));
    const std::set<std::optional<int64_t>> distinct(truth.begin(), truth.end());
    if (distinct.size() > 2) {
      throw Error("metric f1: expected binary labels (at most two distinct values), given " +
                  std::to_string(distinct.size()) + " distinct values");
    }
    const std::vector<std::optional<int64_t>> predicted = ArgmaxAlong(pred, 1);
    for (size_t i = 0; i < truth.size(); ++i) {
      const bool actual = truth[i] == 1;
      const bool positive = predicted[i] == 1;
      (actual ? (positive ? true_positives_ : false_negatives_) : (positive ? false_positives_ : true_negatives_)) +=
          1.0;
    }
  });
  const double predicted_positives = true_positives_ + false_positives_;
  const double actual_positives = true_positives_ + false_negatives_;
  const double precision = predicted_positives > 0 ? true_positives_ / predicted_positives : 0.0;
  const double recall = actual_positives > 0 ? true_positives_ / actual_positives : 0.0;
  const double f1 = precision + recall > 0 ? 2 * precision * recall / (precision + recall) : 0.0;
  if (micro_) {
    const double total = predicted_positives + false_negatives_ + true_negatives_;
    sum_metric_ = f1 * total;
    num_inst_ = total;
  } else {
    sum_metric_ += f1;
    num_inst_ += 1.0;
    true_positives_ = false_positives_ = false_negatives_ = true_negatives_ = 0.0;
  }
}

void F1::Reset() {
  EvalMetric::Reset();
  true_positives_ = false_positives_ = false_negatives_ = true_negatives_ = 0.0;
}

// ---- Regression ----

void MAE::Update(const std::vector<Tensor>& labels, const std::vector<Tensor>& preds) {
  ForEachPair(name(), labels, preds, [&](const Tensor& label, const Tensor& pred) {
    sum_metric_ += MeanError(name(), label, pred, [](double d) { return std::abs(d); });
    num_inst_ += 1.0;
  });
}

void MSE::Update(const std::vector<Tensor>& labels, const std::vector<Tensor>& preds) {
  ForEachPair(name(), labels, preds, [&](const Tensor& label, const Tensor& pred) {
    sum_metric_ += MeanError(name(), label, pred, Square);
    num_inst_ += 1.0;
  });
}

void RMSE::Update(const std::vector<Tensor>& labels, const std::vector<Tensor>& preds) {
  ForEachPair(name(), labels, preds, [&](const Tensor& label, const Tensor& pred) {
    sum_metric_ += std::sqrt(MeanError(name(), label, pred, Square));
    num_inst_ += 1.0;
  });
}

// ---- Composite ----

CompositeEvalMetric::CompositeEvalMetric(std::vector<std::unique_ptr<EvalMetric>> metrics) : EvalMetric("composite") {
  for (auto& metric : metrics) Add(std::move(metric));
}

void CompositeEvalMetric::Add(std::unique_ptr<EvalMetric> metric) {
  if (!metric) throw Error("metric composite: expected a metric to add, given none");
  metrics_.push_back(std::move(metric));
}

const EvalMetric& CompositeEvalMetric::metric(size_t index) const {
  if (index >= metrics_.size()) {
    throw Error("metric composite: expected a metric index below " + std::to_string(metrics_.size()) + ", given " +
                std::to_string(index));
  }
  return *metrics_[index];
}

void CompositeEvalMetric::Update(const std::vector<Tensor>& labels, const std::vector<Tensor>& preds) {
  for (auto& metric : metrics_) metric->Update(labels, preds);
}

void CompositeEvalMetric::Reset() {
  for (auto& metric : metrics_) metric->Reset();
}

std::vector<MetricValue> CompositeEvalMetric::GetNameValue() const {
  std::vector<MetricValue> values;
  for (const auto& metric : metrics_) {
    for (MetricValue& value : metric->GetNameValue()) values.push_back(std::move(value));
  }
  return values;
}

// ---- By name ----

std::unique_ptr<EvalMetric> MakeMetric(std::string_view name) {
  const std::string key = Lower(name);
  if (key == "acc" || key == "accuracy") return std::make_unique<Accuracy>();
  if (key == "mae") return std::make_unique<MAE>();
  if (key == "mse") return std::make_unique<MSE>();
  if (key == "rmse") return std::make_unique<RMSE>();
  if (key == "ce" || key == "cross-entropy" || key == "crossentropy") return std::make_unique<CrossEntropy>();
  if (key == "f1") return std::make_unique<F1>();
  if (key == "composite") return std::make_unique<CompositeEvalMetric>();
  for (const std::string_view prefix : {"top_k_accuracy", "top_k_acc"}) {
    if (!key.starts_with(prefix)) continue;
    const std::string_view rest = std::string_view(key).substr(prefix.size());
    int top_k = 0;
    const bool numbered =
        rest.size() > 1 && rest[0] == '_' &&
        std::from_chars(rest.data() + 1, rest.data() + rest.size(), top_k).ptr == rest.data() + rest.size();
    if (numbered) return std::make_unique<TopKAccuracy>(top_k);
    if (rest.empty()) {
      throw Error("metric '" + std::string(name) + "': expected the number of top predictions in the name (" +
                  std::string(prefix) + "_5 for top_k = 5; MXNet's default top_k = 1 is refused), given none");
    }
  }
  throw Error(
      "metric: expected one of acc, accuracy, top_k_accuracy_<K>, top_k_acc_<K>, mae, mse, rmse, ce, "
      "cross-entropy, f1, composite; given '" +
      Abbreviate(name) + "'");
}

std::unique_ptr<EvalMetric> MakeMetric(const std::vector<std::string>& names) {
  auto composite = std::make_unique<CompositeEvalMetric>();
  for (const std::string& name : names) composite->Add(MakeMetric(name));
  return composite;
}

std::string FormatMetric(const EvalMetric& metric) {
  return FormatMetricValues(metric.GetNameValue());
}

std::string FormatMetricValues(const std::vector<MetricValue>& values) {
  std::string text;
  for (const auto& [name, value] : values) {
    char formatted[32];
    std::snprintf(formatted, sizeof formatted, "%.4f", value);
    text += (text.empty() ? "" : "  ") + name + "=" + formatted;
  }
  return text;
}

}  // namespace kiln
