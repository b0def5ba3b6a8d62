// Evaluation metrics (train/data/metric.h) against what MXNet 1.9.1's mx.metric reported
// for the same updates (tools/golden/gen_metric_golden.py), including the updates MXNet
// refuses; names and aliases; NaN before any update; argument and shape errors.
#include "train/data/metric.h"

#include <catch2/catch.hpp>
#include <cmath>
#include <functional>
#include <nlohmann/json.hpp>

#include "runtime/error.h"
#include "runtime/file_util.h"
#include "tests/golden/golden_data.h"
#include "tests/op_test_util.h"

using namespace kiln;
using kiln::testing::ErrorOf;
using json = nlohmann::json;

namespace {

const std::string kGolden = "tests/data/mxnet/metric_golden.json";

// The kiln metric for mx.metric.create(metric, **kwargs).
std::unique_ptr<EvalMetric> MetricFor(const json& metric, const json& kwargs) {
  if (metric.is_array()) return MakeMetric(metric.get<std::vector<std::string>>());
  const std::string name = metric;
  if (kwargs.empty()) return MakeMetric(name);
  if (name == "acc" && kwargs.contains("axis")) return std::make_unique<Accuracy>(kwargs["axis"].get<int>());
  if (name.starts_with("top_k_acc") && kwargs.contains("top_k")) {
    return std::make_unique<TopKAccuracy>(kwargs["top_k"].get<int>());
  }
  if (name == "ce" && kwargs.contains("eps")) return std::make_unique<CrossEntropy>(kwargs["eps"].get<double>());
  if (name == "f1" && kwargs.contains("average")) return std::make_unique<F1>(kwargs["average"].get<std::string>());
  FAIL("no kiln metric for " << metric << " " << kwargs);
  return nullptr;
}

std::vector<Tensor> Tensors(const json& items) {
  std::vector<Tensor> tensors;
  for (const json& item : items) tensors.push_back(golden::ToTensor(item));
  return tensors;
}

Tensor Floats(Shape shape, std::vector<double> values) {
  return Tensor::FromDoubles(std::move(shape), values);
}

}  // namespace

TEST_CASE("metrics report what MXNet 1.9.1 reports, update by update", "[metric]") {
  const json golden = json::parse(ReadFile(kGolden));
  REQUIRE(golden["cases"].size() >= 20);
  for (const json& c : golden["cases"]) {
    INFO(c["desc"].get<std::string>());
    const std::unique_ptr<EvalMetric> metric = MetricFor(c["metric"], c["kwargs"]);
    for (size_t s = 0; s < c["steps"].size(); ++s) {
      const json& step = c["steps"][s];
      INFO("update " << s);
      if (step["reset_before"].get<bool>()) metric->Reset();
      const std::vector<Tensor> labels = Tensors(step["labels"]);
      const std::vector<Tensor> preds = Tensors(step["preds"]);
      if (step.contains("error")) {
        INFO("MXNet: " << step["error"].get<std::string>());
        CHECK_THROWS_AS(metric->Update(labels, preds), Error);
        continue;
      }
      metric->Update(labels, preds);
      const std::vector<MetricValue> values = metric->GetNameValue();
      const json& expected = step["expected"];
      REQUIRE(values.size() == expected.size());
      for (size_t i = 0; i < values.size(); ++i) {
        CHECK(values[i].name == expected[i][0].get<std::string>());
        // MXNet computes in float32, kiln in double.
        CHECK(values[i].value == Approx(expected[i][1].get<double>()).epsilon(1e-5).margin(1e-6));
      }
    }
  }
}

TEST_CASE("metrics by name: MXNet's names and aliases; a metric's name makes it again", "[metric]") {
  const std::vector<std::pair<std::string, std::string>> names = {
      {"acc", "accuracy"},
      {"Accuracy", "accuracy"},
      {"top_k_accuracy_5", "top_k_accuracy_5"},
      {"top_k_acc_2", "top_k_accuracy_2"},
      {"mae", "mae"},
      {"MSE", "mse"},
      {"rmse", "rmse"},
      {"ce", "cross-entropy"},
      {"cross-entropy", "cross-entropy"},
      {"CrossEntropy", "cross-entropy"},
      {"f1", "f1"},
      {"composite", "composite"},
  };
  for (const auto& [name, reported] : names) {
    INFO(name);
    const std::unique_ptr<EvalMetric> metric = MakeMetric(name);
    CHECK(metric->name() == reported);
    CHECK(MakeMetric(metric->name())->name() == reported);
  }
  CHECK(ErrorOf([] {
          MakeMetric("top_k_accuracy");
        }).find("expected the number of top predictions in the name (top_k_accuracy_5 for top_k = 5") !=
        std::string::npos);
  CHECK(ErrorOf([] { MakeMetric("top_k_acc_1"); }) ==
        "metric top_k_accuracy: expected top_k > 1 (accuracy is top_k = 1), given 1");
  CHECK(ErrorOf([] { MakeMetric("top_k_acc_x"); }).find("given 'top_k_acc_x'") != std::string::npos);
  CHECK(ErrorOf([] { MakeMetric("perplexity"); }) ==
        "metric: expected one of acc, accuracy, top_k_accuracy_<K>, top_k_acc_<K>, mae, mse, rmse, ce, "
        "cross-entropy, f1, composite; given 'perplexity'");
}

TEST_CASE("values before any update are NaN; Reset forgets; Get wants one value", "[metric]") {
  const std::unique_ptr<EvalMetric> composite = MakeMetric(std::vector<std::string>{"acc", "mse"});
  for (const MetricValue& value : composite->GetNameValue()) CHECK(std::isnan(value.value));
  CHECK(ErrorOf([&] { composite->Get(); }) ==
        "metric composite: Get() expects a metric with one value, given one with 2 (use GetNameValue())");

  Accuracy accuracy;
  CHECK(std::isnan(accuracy.Get().value));
  accuracy.Update({Floats({2}, {1, 0})}, {Floats({2, 2}, {0.2, 0.8, 0.3, 0.7})});
  CHECK(accuracy.Get().value == 0.5);
  accuracy.Reset();
  CHECK(std::isnan(accuracy.Get().value));
  // Integer labels read as they are.
  Tensor int_labels({2}, DType::kInt32);
  int_labels.SetDouble(0, 1);
  accuracy.Update({int_labels}, {Floats({2, 2}, {0.2, 0.8, 0.3, 0.7})});
  CHECK(accuracy.Get().name == "accuracy");
  CHECK(accuracy.Get().value == 0.5);

  CompositeEvalMetric single;
  single.Add(std::make_unique<MAE>());
  single.Update({Floats({2}, {1, 2})}, {Floats({2}, {2, 4})});
  CHECK(single.Get().name == "mae");
  CHECK(single.Get().value == 1.5);
  CHECK(single.metric(0).name() == "mae");
  CHECK(ErrorOf([&] { single.metric(1); }) == "metric composite: expected a metric index below 1, given 1");
}

TEST_CASE("updates that do not fit a metric are refused naming what was given", "[metric]") {
  const Tensor labels = Floats({3}, {0, 1, 1});
  const Tensor scores = Floats({3, 2}, {0.9, 0.1, 0.4, 0.6, 0.3, 0.7});
  CHECK(ErrorOf([&] {
          Accuracy().Update({labels, labels}, {scores});
        }) == "metric accuracy: expected as many predictions as labels (2), given 1");
  CHECK(ErrorOf([&] { Accuracy(2).Update({labels}, {scores}); }) ==
        "metric accuracy: expected predictions with an axis 2 (of class scores), given float32 (3,2)");
  CHECK(ErrorOf([&] {
          Accuracy().Update({Floats({2}, {0, 1})}, {scores});
        }) ==
        "metric accuracy: expected a predicted class for each of the 2 labels (float32 (2)), given 3 (predictions "
        "float32 (3,2), classes along axis 1)");
  CHECK(ErrorOf([&] {
          TopKAccuracy(2).Update({labels}, {Floats({3}, {1, 2, 3})});
        }) == "metric top_k_accuracy_2: expected predictions (3, classes) for labels of 3 samples, given float32 (3)");
  CHECK(ErrorOf([&] {
          CrossEntropy().Update({Floats({3}, {0, 2, 1})}, {scores});
        }) == "metric cross-entropy: expected labels in [0, 2), given 2.000000 for sample 1");
  CHECK(ErrorOf([&] {
          MSE().Update({Floats({2, 3}, {1, 2, 3, 4, 5, 6})}, {Floats({2, 2}, {1, 2, 3, 4})});
        }) ==
        "metric mse: expected labels and predictions that broadcast together, given labels float32 (2,3) and "
        "predictions float32 (2,2)");
  CHECK(ErrorOf([] { F1("weighted"); }) == "metric f1: expected average \"macro\" or \"micro\", given \"weighted\"");
  CHECK(ErrorOf([] { TopKAccuracy(1); }) ==
        "metric top_k_accuracy: expected top_k > 1 (accuracy is top_k = 1), given 1");
}
