// The Module API (train/module.h): Fit on a learnable problem, Score and Predict (with
// NDArrayIter's padding removed), forward/backward/update by hand equal to Fit, checkpoints
// in MXNet's files that resume training bit for bit, the progress bar's text, and errors.
#include "train/module.h"

#include <unistd.h>

#include <catch2/catch.hpp>
#include <cmath>
#include <filesystem>
#include <random>

#include "runtime/mxnet_params.h"
#include "symbol/ops_api.h"
#include "tests/op_test_util.h"
#include "train/progress.h"

using namespace kiln;
using kiln::testing::ErrorOf;

namespace {

Symbol Mlp() {
  Symbol x = Symbol::Variable("data");
  x = sym::FullyConnected(x, {{"num_hidden", 16}}, "fc1");
  x = sym::Activation(x, {{"act_type", "relu"}}, "relu1");
  x = sym::FullyConnected(x, {{"num_hidden", 3}}, "fc2");
  return sym::SoftmaxOutput(x, Symbol(), {}, "softmax");
}

// Three Gaussian blobs in 4 dimensions, n samples: (data, labels).
std::pair<Tensor, Tensor> Blobs(int64_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> noise(0, 0.5);
  Tensor data({n, 4}, DType::kFloat32), label({n}, DType::kFloat32);
  for (int64_t i = 0; i < n; ++i) {
    const int64_t c = i % 3;
    label.SetDouble(i, static_cast<double>(c));
    for (int64_t d = 0; d < 4; ++d) data.SetDouble(i * 4 + d, (d == c ? 2.0 : 0.0) + noise(rng));
  }
  return {data, label};
}

std::string TempPrefix(const std::string& name) {
  return (std::filesystem::temp_directory_path() / ("kiln_module_" + std::to_string(getpid()) + "_" + name)).string();
}

FitOptions Quiet(int num_epoch) {
  FitOptions options;
  options.optimizer_params = "lr=0.1,momentum=0.9";
  options.initializer = "xavier";
  options.num_epoch = num_epoch;
  options.progress = false;
  return options;
}

}  // namespace

TEST_CASE("Module.Fit learns; Score and Predict use the trained parameters", "[train][module]") {
  const auto [data, label] = Blobs(300, 1);
  const auto [test_data, test_label] = Blobs(100, 2);
  NDArrayIter train(data, label, 20, /*shuffle=*/true, "pad", 3);
  NDArrayIter eval(test_data, test_label, 32);  // 100 = 3 * 32 + 4: the last batch pads 28
  Module mod(Mlp());
  int64_t batches_seen = 0;
  FitOptions options = Quiet(5);
  options.batch_end_callback.push_back([&](const BatchEndParam&) { ++batches_seen; });
  mod.Fit(train, &eval, options);
  CHECK(batches_seen == 5 * 15);
  const auto score = mod.Score(eval, "acc");
  REQUIRE(score.size() == 1);
  CHECK(score[0].name == "accuracy");
  CHECK(score[0].value > 0.9);
  const auto predictions = mod.Predict(eval);
  REQUIRE(predictions.size() == 1);
  CHECK(predictions[0].shape() == Shape{100, 3});
  // Predict agrees with a forward of the same samples.
  int64_t correct = 0;
  for (int64_t i = 0; i < 100; ++i) {
    int64_t best = 0;
    for (int64_t c = 1; c < 3; ++c)
      best = predictions[0].GetDouble(i * 3 + c) > predictions[0].GetDouble(i * 3 + best) ? c : best;
    correct += best == static_cast<int64_t>(test_label.GetDouble(i));
  }
  CHECK(correct > 90);
  CHECK(mod.training_memory().arena_bytes > 0);
}

TEST_CASE("forward, backward and update by hand equal Fit", "[train][module]") {
  const auto [data, label] = Blobs(60, 4);
  Module fitted(Mlp());
  NDArrayIter iter(data, label, 20);
  fitted.Fit(iter, nullptr, Quiet(2));

  Module by_hand(Mlp());
  NDArrayIter again(data, label, 20);
  by_hand.Bind(again.provide_data(), again.provide_label());
  by_hand.InitParams("xavier");
  by_hand.InitOptimizer("sgd", "lr=0.1,momentum=0.9");
  for (int epoch = 0; epoch < 2; ++epoch) {
    while (auto batch = again.Next()) {
      by_hand.Forward(*batch, true);
      by_hand.Backward();
      by_hand.Update();
    }
    again.Reset();
  }
  const auto expected = fitted.arg_params();
  for (const auto& [name, value] : by_hand.arg_params()) {
    INFO(name);
    CHECK(value.BitwiseEquals(expected.at(name)));
  }
}

TEST_CASE("a checkpoint with optimizer states resumes Fit exactly", "[train][module]") {
  const auto [data, label] = Blobs(60, 5);
  Symbol x = Symbol::Variable("data");
  x = sym::FullyConnected(x, {{"num_hidden", 8}}, "fc1");
  x = sym::BatchNorm(x, {}, "bn1");
  x = sym::FullyConnected(x, {{"num_hidden", 3}}, "fc2");
  const Symbol net = sym::SoftmaxOutput(x, Symbol(), {}, "softmax");
  FitOptions options = Quiet(4);
  options.optimizer = "adam";
  options.optimizer_params = "lr=0.01";

  Module straight(net);
  NDArrayIter iter(data, label, 20);
  straight.Fit(iter, nullptr, options);

  const std::string prefix = TempPrefix("resume");
  Module first(net);
  NDArrayIter iter1(data, label, 20);
  options.num_epoch = 2;
  first.Fit(iter1, nullptr, options);
  first.SaveCheckpoint(prefix, 2, /*save_optimizer_states=*/true);
  // MXNet's file names and arg:/aux: prefixes.
  const auto saved = LoadMxnetParams(prefix + "-0002.params").AsMap();
  CHECK(saved.count("arg:fc1_weight"));
  CHECK(saved.count("aux:bn1_moving_mean"));
  CHECK(std::filesystem::exists(prefix + "-symbol.json"));

  Module resumed = Module::Load(prefix, 2, /*load_optimizer_states=*/true);
  NDArrayIter iter2(data, label, 20);
  options.begin_epoch = 2;
  options.num_epoch = 4;
  resumed.Fit(iter2, nullptr, options);
  for (const auto& params : {std::pair{straight.arg_params(), resumed.arg_params()},
                             std::pair{straight.aux_params(), resumed.aux_params()}}) {
    for (const auto& [name, value] : params.first) {
      INFO(name);
      CHECK(params.second.at(name).BitwiseEquals(value));
    }
  }
  for (const char* suffix : {"-symbol.json", "-0002.params", "-0002.states"}) std::filesystem::remove(prefix + suffix);
}

TEST_CASE("Module refuses calls out of order and bad shapes", "[train][module]") {
  const auto [data, label] = Blobs(20, 6);
  Module mod(Mlp());
  NDArrayIter iter(data, label, 10);
  auto batch = iter.Next();
  CHECK_THAT(ErrorOf([&] { mod.Forward(*batch); }), Catch::Contains("call Bind and InitParams first"));
  CHECK_THAT(ErrorOf([&] {
               mod.Bind({{"x", {10, 4}}}, iter.provide_label());
             }),
             Catch::Contains("data 0 is 'data', given 'x'"));
  mod.Bind(iter.provide_data(), iter.provide_label());
  CHECK_THAT(ErrorOf([&] {
               mod.InitParams("xavier", {{"fc1_weight", Tensor({2, 2}, DType::kFloat32)}});
             }),
             Catch::Contains("parameter 'fc1_weight': expected shape (16,4), given (2,2)"));
  mod.InitParams("xavier");
  CHECK_THAT(ErrorOf([&] { mod.Forward(*batch, true); }), Catch::Contains("call InitOptimizer first"));
  mod.InitOptimizer("sgd", "lr=0.1");
  CHECK_THAT(ErrorOf([&] { mod.Update(); }), Catch::Contains("call Forward (training) and Backward first"));
  CHECK_THAT(ErrorOf([&] { mod.Backward(); }), Catch::Contains("call Forward in training mode first"));
  mod.Forward(*batch, false);
  CHECK(mod.GetOutputs().at(0).shape() == Shape{10, 3});
  CHECK_THAT(ErrorOf([] { Module(Mlp(), {"pixels"}); }), Catch::Contains("data 'pixels' is not an argument"));
}

TEST_CASE("the progress bar shows the epoch, batches, speed, metrics and time left", "[train][module]") {
  CHECK(ProgressBar::Render("Epoch 2/10", 5, 10, 1234.4, "accuracy=0.9000", 75) ==
        "Epoch 2/10 [============>           ] 5/10  1234 samples/s  accuracy=0.9000  ETA 1:15");
  CHECK(ProgressBar::FormatDuration(3725) == "1:02:05");
  CHECK(ProgressBar::Render("Epoch 1/1", 3, 0, 10, "", -1) == "Epoch 1/1 batch 3  10 samples/s");
}
