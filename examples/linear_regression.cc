// The seed tutorial's first model: linear regression on synthetic data, trained with
// kiln's Module API (a compiled training step: forward, backward and SGD in one).
//
//   bazel run //examples:linear_regression [-- --epochs 3 --output /tmp/linreg.kiln-graph]
//
// 1000 samples x ~ N(0, 1)^2, y = 2 x1 - 3.4 x2 + 4.2 + noise(0.01); batches of 10; SGD
// with weight decay. Prints the learned w and b; with --output, writes the trained model
// (graph and parameters) for `kiln compile`.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <random>

#include "passes/graph_io.h"
#include "runtime/error.h"
#include "runtime/npy.h"
#include "symbol/ops_api.h"
#include "train/data/dataset.h"
#include "train/module.h"

int main(int argc, char** argv) {
  CLI::App app{"Linear regression with kiln's Module API"};
  int epochs = 3;
  double lr = 0.05;
  std::string output;
  uint64_t seed = 42;
  app.add_option("--epochs", epochs, "Epochs")->check(CLI::Range(1, 1000));
  app.add_option("--lr", lr, "Learning rate")->check(CLI::PositiveNumber);
  app.add_option("--seed", seed, "Seed for the data, the shuffling and the initial parameters");
  app.add_option("-o,--output", output, "Write the trained model here (a kiln graph with its parameters)");
  std::string sample;
  app.add_option("--write-sample", sample, "Write x = (1, 1) as .npy here: an input for `kiln run`");
  CLI11_PARSE(app, argc, argv);
  try {
    constexpr int64_t kSamples = 1000;
    const double true_w[2] = {2, -3.4};
    const double true_b = 4.2;
    std::mt19937_64 rng(seed);
    std::normal_distribution<double> normal(0, 1), noise(0, 0.01);
    kiln::Tensor features({kSamples, 2}, kiln::DType::kFloat32), labels({kSamples}, kiln::DType::kFloat32);
    for (int64_t i = 0; i < kSamples; ++i) {
      const double x1 = normal(rng), x2 = normal(rng);
      features.SetDouble(2 * i, x1);
      features.SetDouble(2 * i + 1, x2);
      labels.SetDouble(i, true_w[0] * x1 + true_w[1] * x2 + true_b + noise(rng));
    }

    // net: one dense unit; the loss: squared error (LinearRegressionOutput's gradient is
    // prediction - label).
    kiln::Symbol x = kiln::Symbol::Variable("data");
    x = kiln::sym::FullyConnected(x, {{"num_hidden", 1}}, "dense");
    const kiln::Symbol net = kiln::sym::LinearRegressionOutput(x, kiln::Symbol::Variable("label"), {}, "loss");

    kiln::NDArrayIter train({{"data", features}}, {{"label", labels.Reshaped({kSamples, 1})}}, 10, /*shuffle=*/true,
                            "pad", seed);
    kiln::Module mod(net, {"data"}, {"label"});
    kiln::FitOptions options;
    options.optimizer = "sgd";
    options.optimizer_params = "lr=" + std::to_string(lr) + ",wd=0.0001";
    options.initializer = "normal(0.01)";
    options.num_epoch = epochs;
    options.eval_metric = "mse";
    options.seed = seed;
    mod.Fit(train, nullptr, options);

    const auto params = mod.arg_params();
    const kiln::Tensor& w = params.at("dense_weight");
    const kiln::Tensor& b = params.at("dense_bias");
    std::printf("w = [%.4f, %.4f] (true [2, -3.4]), b = %.4f (true 4.2)\n", w.GetDouble(0), w.GetDouble(1),
                b.GetDouble(0));
    if (!output.empty()) {
      kiln::Graph trained = net.ToGraph();
      trained.params = params;
      kiln::SaveGraphFile(trained, output);
      std::printf("wrote %s\n", output.c_str());
    }
    if (!sample.empty()) kiln::SaveNpy(sample, kiln::Tensor::FromDoubles({1, 2}, std::vector<double>{1, 1}));
    return 0;
  } catch (const kiln::Error& e) {
    std::fprintf(stderr, "linear_regression: %s\n", e.what());
    return 1;
  }
}
