// The compiled training step (train/train_step.h) against the oracle: the reference
// interpreter's gradients of the same model, then each parameter's update by its
// operator's reference implementation, step after step; BatchNorm's moving statistics,
// grad_req, Dropout's per-step masks, checkpoints that resume exactly, and errors.
#include "train/train_step.h"

#include <unistd.h>

#include <catch2/catch.hpp>
#include <cmath>
#include <filesystem>

#include "graph/op.h"
#include "passes/gradient.h"
#include "passes/interpreter.h"
#include "symbol/ops_api.h"
#include "tests/op_test_util.h"
#include "tests/test_models.h"

using namespace kiln;
using namespace kiln::testing;

namespace {

// Training by the oracle, one step at a time, with the optimizer the step uses.
class ReferenceTrainer {
 public:
  ReferenceTrainer(const Graph& model, const OptimizerConfig& config, std::map<std::string, double> wd_mult = {})
      : model_(model), optimizer_(config), wd_mult_(std::move(wd_mult)) {
    for (const auto& [name, value] : model.params) params_[name] = value.Clone();
    model_.params.clear();
    for (const auto& name : model.ListAuxiliaryStates()) aux_.push_back(name);
    for (const auto& name : model.ListArguments()) {
      if (model.params.count(name)) learned_.push_back(name);
    }
  }

  void Step(const std::map<std::string, Tensor>& batch) {
    Graph with_shapes = model_;
    for (const auto& [name, value] : params_) with_shapes.params[name] = value;
    for (const auto& [name, value] : batch) with_shapes.params[name] = value;
    Graph training = WithGradients(with_shapes, learned_);
    training.params.clear();
    std::map<std::string, Tensor> feeds = batch;
    for (const auto& [name, value] : params_) feeds[name] = value;  // aux updated in place
    InterpretOptions options;
    options.is_train = true;
    const auto outputs = Interpret(training, feeds, options);
    const StepScalars scalars = optimizer_.Scalars(++num_update_);
    for (size_t k = 0; k < learned_.size(); ++k) {
      const std::string& name = learned_[k];
      const Tensor& grad = outputs[model_.outputs.size() + k];
      const auto mult = wd_mult_.find(name);
      const UpdateRule rule = optimizer_.Rule(mult == wd_mult_.end() ? 1.0 : mult->second);
      std::vector<Tensor> inputs = {params_.at(name), grad};
      for (const auto& state : rule.states) {
        auto [it, inserted] = states_.try_emplace(StateName(name, state), grad.shape(), grad.dtype());
        inputs.push_back(it->second);
      }
      inputs.push_back(Tensor::FromDoubles({1}, std::vector<double>{scalars.lr}));
      if (rule.takes_eta) inputs.push_back(Tensor::FromDoubles({1}, std::vector<double>{scalars.eta}));
      const OpDef& op = OpRegistry::Global().Get(rule.op);
      std::vector<Tensor> updated;
      for (size_t i = 0; i <= rule.states.size(); ++i) updated.emplace_back(grad.shape(), grad.dtype());
      op.RunReference(op.ParseAttrs(rule.attrs, name + "_update"), inputs, updated, {});
      params_[name] = updated[0];
      for (size_t s = 0; s < rule.states.size(); ++s) states_[StateName(name, rule.states[s])] = updated[s + 1];
    }
  }

  const std::map<std::string, Tensor>& params() const { return params_; }
  const std::map<std::string, Tensor>& states() const { return states_; }

 private:
  Graph model_;
  Optimizer optimizer_;
  std::map<std::string, double> wd_mult_;
  std::map<std::string, Tensor> params_;
  std::map<std::string, Tensor> states_;
  std::vector<std::string> learned_;
  std::vector<std::string> aux_;
  int64_t num_update_ = 0;
};

std::map<std::string, Tensor> Batch(const Shape& data_shape, int64_t classes, uint64_t seed) {
  Tensor label(Shape{data_shape[0]}, DType::kFloat32);
  for (int64_t i = 0; i < data_shape[0]; ++i) label.SetDouble(i, static_cast<double>((i * 7 + seed) % classes));
  return {{"data", RandomTensor(data_shape, seed)}, {"softmax_label", label}};
}

TrainStepOptions StepOptions(const Shape& data_shape, const std::string& optimizer, const std::string& options) {
  TrainStepOptions step;
  step.shapes = {{"data", data_shape}, {"softmax_label", {data_shape[0]}}};
  step.optimizer = ParseOptimizer(optimizer, options);
  return step;
}

void CheckParamsClose(const std::map<std::string, Tensor>& actual, const std::map<std::string, Tensor>& expected,
                      double rtol, double atol) {
  REQUIRE(actual.size() == expected.size());
  for (const auto& [name, value] : expected) {
    INFO(name);
    KILN_CHECK_CLOSE(actual.at(name), value, rtol, atol);
  }
}

// `steps` steps of the compiled step and of the oracle from the same parameters.
void CheckAgainstOracle(const Graph& model, const Shape& data_shape, const std::string& optimizer,
                        const std::string& options, int steps) {
  INFO(optimizer << " " << options);
  TrainStep step(model, {}, StepOptions(data_shape, optimizer, options));
  ReferenceTrainer oracle(model, ParseOptimizer(optimizer, options));
  for (int k = 0; k < steps; ++k) {
    const auto batch = Batch(data_shape, 10, static_cast<uint64_t>(k + 1));
    step.Step(batch);
    oracle.Step(batch);
  }
  CheckParamsClose(step.Params(), oracle.params(), 1e-4, 1e-5);
  auto states = step.OptimizerStates();
  CHECK(states.at("__num_update__").GetDouble(0) == steps);
  states.erase("__num_update__");
  CheckParamsClose(states, oracle.states(), 1e-4, 1e-5);
}

}  // namespace

TEST_CASE("a compiled MLP step updates as the oracle does, for every optimizer", "[train]") {
  const Graph model = WithRandomParams(TestMlp(16), {{"data", {8, 12}}}, 3);
  const std::vector<std::pair<std::string, std::string>> optimizers = {
      {"sgd", "lr=0.1"},
      {"sgd", "lr=0.1,momentum=0.9,wd=0.01,rescale_grad=0.5"},
      {"sgd", "lr=0.1,momentum=0.9,clip_gradient=0.05"},
      {"nag", "lr=0.1,momentum=0.9,wd=0.001"},
      {"adam", "lr=0.01,wd=0.001"},
      {"adamw", "lr=0.01,wd=0.01"},
      {"rmsprop", "lr=0.01"},
      {"rmsprop", "lr=0.01,centered=true,clip_weights=0.5"},
      {"sgd", "lr=0.2,momentum=0.5,lr_scheduler=factor:step=2;factor=0.5"},
  };
  for (const auto& [name, options] : optimizers) CheckAgainstOracle(model, {8, 12}, name, options, 4);
}

TEST_CASE("a compiled CNN step with BatchNorm updates parameters and moving statistics as the oracle", "[train]") {
  const Graph model = WithRandomParams(TestLeNet(20), {{"data", {4, 1, 28, 28}}}, 5);
  CheckAgainstOracle(model, {4, 1, 28, 28}, "sgd", "lr=0.05,momentum=0.9,wd=0.0005", 3);
}

TEST_CASE("grad_req null freezes a parameter; the step's memory is planned", "[train]") {
  const Graph model = WithRandomParams(TestMlp(16), {{"data", {8, 12}}}, 3);
  TrainStepOptions options = StepOptions({8, 12}, "sgd", "lr=0.1");
  options.grad_req = {{"fc1_weight", GradReq::kNull}, {"fc1_bias", GradReq::kNull}};
  TrainStep step(model, {}, options);
  step.Step(Batch({8, 12}, 10, 1));
  const auto params = step.Params();
  CHECK(params.at("fc1_weight").BitwiseEquals(model.params.at("fc1_weight")));
  CHECK(params.at("fc1_bias").BitwiseEquals(model.params.at("fc1_bias")));
  CHECK_FALSE(params.at("fc2_weight").BitwiseEquals(model.params.at("fc2_weight")));
  CHECK(step.step_graph().trained == std::vector<std::string>{"fc2_weight", "fc2_bias"});
  const StepMemoryReport memory = step.memory();
  CHECK(memory.arena_bytes >= memory.lower_bound_bytes);
  CHECK(memory.arena_bytes <= memory.no_reuse_bytes);
  CHECK(memory.lower_bound_bytes > 0);
}

TEST_CASE("without an optimizer the step graph gives gradients; grad_req add accumulates them", "[train]") {
  const Graph model = WithRandomParams(TestMlp(16), {{"data", {8, 12}}}, 3);
  StepGraphOptions options;
  options.shapes = {{"data", {8, 12}}, {"softmax_label", {8}}};
  options.grad_req = {{"fc1_weight", GradReq::kAdd}, {"fc2_bias", GradReq::kNull}};
  const StepGraph step = BuildStepGraph(model, options);
  CHECK(step.trained == std::vector<std::string>{"fc1_weight", "fc1_bias", "fc2_weight"});
  const auto batch = Batch({8, 12}, 10, 2);
  std::map<std::string, Tensor> feeds = batch;
  for (const auto& [name, value] : model.params) feeds[name] = value;
  const Tensor previous = RandomTensor({16, 12}, 9);
  feeds["fc1_weight_grad"] = previous;
  InterpretOptions train;
  train.is_train = true;
  const auto got = Interpret(step.graph, feeds, train);
  Graph plain = model;
  for (const auto& [name, value] : batch) plain.params[name] = value;
  const auto expected = Interpret(WithGradients(plain, {"fc1_weight", "fc1_bias", "fc2_weight"}), feeds, train);
  REQUIRE(got.size() == 4);
  const Tensor sum = RunOp("elemwise_add", {previous, expected[1]})[0];
  KILN_CHECK_CLOSE(got[1], sum, 1e-6, 1e-7);
  KILN_CHECK_CLOSE(got[2], expected[2], 1e-6, 1e-7);
  KILN_CHECK_CLOSE(got[3], expected[3], 1e-6, 1e-7);
  CHECK(step.graph.OutputNames()[1] == "fc1_weight_grad");
}

TEST_CASE("Dropout draws a fresh mask every step, the same for the same seed", "[train]") {
  Symbol x = Symbol::Variable("data");
  x = sym::Dropout(x, {{"p", 0.25}}, "drop");
  x = sym::FullyConnected(x, {{"num_hidden", 4}}, "fc");
  const Graph model = WithRandomParams(sym::SoftmaxOutput(x, Symbol(), {}, "softmax"), {{"data", {64, 100}}}, 4);
  // With lr 0 the parameters stay put: the outputs differ only by the masks.
  const auto run = [&](uint64_t seed) {
    TrainStepOptions options = StepOptions({64, 100}, "sgd", "lr=0");
    options.seed = seed;
    TrainStep step(model, {}, options);
    const auto batch = Batch({64, 100}, 4, 1);
    std::vector<Tensor> outputs;
    for (int k = 0; k < 3; ++k) outputs.push_back(step.Step(batch)[0]);
    return outputs;
  };
  const auto first = run(7);
  const auto again = run(7);
  const auto other = run(8);
  for (size_t k = 0; k < first.size(); ++k) CHECK(first[k].BitwiseEquals(again[k]));
  CHECK_FALSE(first[0].BitwiseEquals(first[1]));
  CHECK_FALSE(first[1].BitwiseEquals(first[2]));
  CHECK_FALSE(first[0].BitwiseEquals(other[0]));
  // The masks themselves: kept fraction and scale, from a graph that outputs Dropout.
  const Graph dropout_only = [] {
    Graph g;
    g.outputs = sym::Dropout(Symbol::Variable("data"), {{"p", 0.25}}, "drop").outputs();
    return g;
  }();
  StepGraphOptions options;
  options.shapes = {{"data", {200, 100}}};
  const StepGraph step = BuildStepGraph(dropout_only, options);
  REQUIRE(step.uses_step_counter);
  CompileOptions compile;
  compile.is_train = true;
  compile.input_shapes = {{"data", {200, 100}}, {kStepInput, {1}}};
  compile.input_types = {{kStepInput, DType::kInt64}};
  const auto executor = CompileJit(step.graph, compile);
  const Tensor ones = Tensor::FromDoubles({200, 100}, std::vector<double>(20000, 1.0));
  for (const int64_t counter : {0, 1, 1000000}) {
    Tensor c({1}, DType::kInt64);
    c.data_as<int64_t>()[0] = counter;
    std::map<std::string, Tensor> inputs = {{"data", ones}, {kStepInput, c}};
    const Tensor y = executor->Run(inputs)[0];
    int64_t kept = 0;
    for (int64_t i = 0; i < y.size(); ++i) {
      const double v = y.GetDouble(i);
      REQUIRE((v == 0 || std::abs(v - 1 / 0.75) < 1e-6));
      kept += v != 0;
    }
    // 20000 draws: the kept fraction is 0.75 within 5 standard deviations (0.003 each).
    CHECK(std::abs(static_cast<double>(kept) / 20000 - 0.75) < 0.016);
  }
}

TEST_CASE("a checkpoint of parameters and optimizer states resumes training exactly", "[train]") {
  const Graph model = WithRandomParams(TestLeNet(20), {{"data", {4, 1, 28, 28}}}, 6);
  const TrainStepOptions options = StepOptions({4, 1, 28, 28}, "adam", "lr=0.01,lr_scheduler=factor:step=1;factor=0.9");
  TrainStep straight(model, {}, options);
  for (int k = 0; k < 4; ++k) straight.Step(Batch({4, 1, 28, 28}, 10, static_cast<uint64_t>(k)));
  TrainStep first(model, {}, options);
  for (int k = 0; k < 2; ++k) first.Step(Batch({4, 1, 28, 28}, 10, static_cast<uint64_t>(k)));
  TrainStep resumed(model, first.Params(), options);
  resumed.SetOptimizerStates(first.OptimizerStates());
  CHECK(resumed.num_update() == 2);
  for (int k = 2; k < 4; ++k) resumed.Step(Batch({4, 1, 28, 28}, 10, static_cast<uint64_t>(k)));
  for (const auto& [name, value] : straight.Params()) {
    INFO(name);
    CHECK(resumed.Params().at(name).BitwiseEquals(value));
  }
}

TEST_CASE("a step compiled again comes from the on-disk cache and trains the same", "[train]") {
  const Graph model = WithRandomParams(TestMlp(16), {{"data", {8, 12}}}, 3);
  TrainStepOptions options = StepOptions({8, 12}, "sgd", "lr=0.1,momentum=0.9");
  options.cache_dir =
      (std::filesystem::temp_directory_path() / ("kiln_step_cache_" + std::to_string(::getpid()))).string();
  std::filesystem::remove_all(options.cache_dir);
  TrainStep first(model, {}, options);
  TrainStep second(model, {}, options);
  CHECK_FALSE(first.memory().from_cache);
  CHECK(second.memory().from_cache);
  for (int k = 0; k < 2; ++k) {
    const auto batch = Batch({8, 12}, 10, static_cast<uint64_t>(k));
    first.Step(batch);
    second.Step(batch);
  }
  for (const auto& [name, value] : first.Params()) CHECK(second.Params().at(name).BitwiseEquals(value));
  std::filesystem::remove_all(options.cache_dir);
}

TEST_CASE("training steps refuse bad input with clear errors", "[train]") {
  const Graph model = WithRandomParams(TestMlp(16), {{"data", {8, 12}}}, 3);
  TrainStep step(model, {}, StepOptions({8, 12}, "sgd", "lr=0.1"));
  CHECK_THROWS_WITH(step.Step({{"data", RandomTensor({8, 12}, 1)}}), Catch::Contains("missing input 'softmax_label'"));
  auto batch = Batch({8, 12}, 10, 1);
  batch["extra"] = RandomTensor({1}, 1);
  CHECK_THROWS_WITH(step.Step(batch), Catch::Contains("unknown input 'extra'"));
  batch = Batch({8, 12}, 10, 1);
  batch["data"] = RandomTensor({8, 11}, 1);
  CHECK_THROWS_WITH(step.Step(batch), Catch::Contains("input 'data': expected float32 (8,12), given float32 (8,11)"));
  CHECK_THROWS_WITH(step.SetParams({{"fc1_weight", RandomTensor({3}, 1)}}),
                    Catch::Contains("parameter 'fc1_weight': expected float32 (16,12), given float32 (3)"));
  CHECK_THROWS_WITH(step.SetOptimizerStates({{"fc1_weight__mom", RandomTensor({16, 12}, 1)}}),
                    Catch::Contains("not an optimizer state"));
  TrainStepOptions bad = StepOptions({8, 12}, "sgd", "lr=0.1");
  bad.grad_req = {{"nothing", GradReq::kWrite}};
  CHECK_THROWS_WITH(TrainStep(model, {}, bad), Catch::Contains("grad_req given for 'nothing'"));
  CHECK_THROWS_WITH(ParseOptimizer("adagrad"), Catch::Contains("unknown optimizer 'adagrad'"));
  CHECK_THROWS_WITH(ParseOptimizer("sgd", "lr=fast"), Catch::Contains("'lr': expected a number, given 'fast'"));
  CHECK_THROWS_WITH(ParseOptimizer("sgd", "speed=1"), Catch::Contains("unknown optimizer option 'speed'"));
  CHECK_THROWS_WITH(ParseOptimizer("sgd", "momentum=1.5"), Catch::Contains("'momentum': expected a value in [0, 1)"));
  CHECK_THROWS_WITH(ParseGradReq("sometimes"), Catch::Contains("given 'sometimes'"));
}
