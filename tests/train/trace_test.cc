// Training that matches MXNet 1.9.1 and PyTorch step by step. Each trace (recorded by
// tools/mxnet/gen_train_traces.py from mx.mod.Module's forward, backward and update, and
// by tools/torch/gen_sgd_trace.py from torch.optim.SGD) holds the initial parameters, the
// batches and every parameter and auxiliary state after every step; kiln's compiled step
// starts from the same parameters, takes the same batches, and is compared after every
// step. Tolerance: 1e-5 relative to each tensor's largest magnitude (float32 rounding of
// both frameworks, compounded over the steps).
#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>

#include "runtime/npz.h"
#include "symbol/mxnet/mxnet_import.h"
#include "symbol/ops_api.h"
#include "tests/op_test_util.h"
#include "train/train_step.h"

using namespace kiln;

namespace {

const std::string kMxnetTraces = "tests/data/mxnet/train_traces/";

// max |a - b| / max(|b|) over the tensor.
double RelativeDifference(const Tensor& actual, const Tensor& expected) {
  double diff = 0, scale = 0;
  for (int64_t i = 0; i < expected.size(); ++i) {
    diff = std::max(diff, std::abs(actual.GetDouble(i) - expected.GetDouble(i)));
    scale = std::max(scale, std::abs(expected.GetDouble(i)));
  }
  return diff / std::max(scale, 1e-12);
}

struct TraceResult {
  double worst = 0;
  std::string where;
};

// Runs `model` through a trace's steps ("init/NAME", "data/K", "label/K", "stepK/NAME").
TraceResult FollowTrace(const Graph& model, const std::map<std::string, Tensor>& arrays, const Shape& data_shape,
                        TrainStepOptions options, int steps) {
  std::map<std::string, Tensor> init;
  for (const auto& [key, value] : arrays) {
    if (key.rfind("init/", 0) == 0) init[key.substr(5)] = value;
  }
  options.shapes = {{"data", data_shape}, {"softmax_label", {data_shape[0]}}};
  options.data_names = {"data", "softmax_label"};
  TrainStep step(model, init, options);
  TraceResult result;
  for (int k = 0; k < steps; ++k) {
    const std::string batch = std::to_string(k);
    step.Step({{"data", arrays.at("data/" + batch)}, {"softmax_label", arrays.at("label/" + batch)}});
    const auto params = step.Params();
    for (const auto& [name, unused] : init) {
      const double diff = RelativeDifference(params.at(name), arrays.at("step" + std::to_string(k + 1) + "/" + name));
      if (diff > result.worst) result = {diff, name + " after step " + std::to_string(k + 1)};
    }
  }
  return result;
}

}  // namespace

TEST_CASE("kiln's training steps match MXNet 1.9.1's Module, parameter by parameter, step by step", "[train][mxnet]") {
  std::ifstream index_file(kMxnetTraces + "traces.json");
  REQUIRE(index_file);
  const nlohmann::json index = nlohmann::json::parse(index_file);
  REQUIRE(index["cases"].size() >= 5);
  for (const auto& c : index["cases"]) {
    const std::string name = c["name"];
    INFO(name << ": " << c["optimizer"].get<std::string>() << " " << c["options"].get<std::string>());
    const Graph model = ImportMxnet(kMxnetTraces + name + "-symbol.json");
    TrainStepOptions options;
    options.optimizer = ParseOptimizer(c["optimizer"], c["options"]);
    std::vector<std::string> learned;
    for (const auto& arg : model.ListArguments()) {
      if (arg != "data" && arg != "softmax_label") learned.push_back(arg);
    }
    options.wd_mult = ModuleWdMults(learned);
    const auto result = FollowTrace(model, LoadNpz(kMxnetTraces + name + ".npz").AsMap(), c["data_shape"].get<Shape>(),
                                    options, c["steps"]);
    std::printf("%s: largest relative difference %.2g (%s)\n", name.c_str(), result.worst, result.where.c_str());
    INFO("largest relative difference " << result.worst << " (" << result.where << ")");
    CHECK(result.worst < 1e-5);
  }
}

TEST_CASE("kiln's plain SGD steps match PyTorch's", "[train][torch]") {
  Symbol x = Symbol::Variable("data");
  x = sym::FullyConnected(x, {{"num_hidden", 32}}, "fc1");
  x = sym::Activation(x, {{"act_type", "relu"}}, "relu1");
  x = sym::FullyConnected(x, {{"num_hidden", 10}}, "fc2");
  // The mean cross-entropy's gradient: (softmax - one_hot) / batch.
  const Graph model = sym::SoftmaxOutput(x, Symbol(), {{"normalization", "batch"}}, "softmax").ToGraph();
  TrainStepOptions options;
  options.optimizer = ParseOptimizer("sgd", "lr=0.1");
  const auto result = FollowTrace(model, LoadNpz("tests/data/torch/mlp_sgd.npz").AsMap(), {16, 20}, options, 12);
  std::printf("torch mlp_sgd: largest relative difference %.2g (%s)\n", result.worst, result.where.c_str());
  INFO("largest relative difference " << result.worst << " (" << result.where << ")");
  CHECK(result.worst < 1e-5);
}
