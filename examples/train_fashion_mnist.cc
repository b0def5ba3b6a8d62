// Fashion-MNIST (Debian's dataset-fashion-mnist: IDX files in
// /usr/share/datasets/fashion-mnist) with kiln's Module API: an MLP or a LeNet-style CNN
// with BatchNorm, SGD with momentum, a progress bar per epoch, then the test accuracy.
//
//   bazel run -c opt //examples:train_fashion_mnist -- --model mlp     # >= 0.88 in 10 epochs
//   bazel run -c opt //examples:train_fashion_mnist -- --model lenet   # >= 0.91 in 10 epochs
//
// --subset N trains on the first N images (quick checks); --output PREFIX saves a
// checkpoint (PREFIX-symbol.json, PREFIX-EPOCH.params) that `kiln compile` reads.
#include <CLI/CLI.hpp>
#include <cstdio>

#include "codegen/compile_cache.h"
#include "runtime/error.h"
#include "symbol/ops_api.h"
#include "train/data/dataset.h"
#include "train/data/idx.h"
#include "train/module.h"

namespace {

using kiln::Symbol;
namespace sym = kiln::sym;

Symbol Mlp() {
  Symbol x = sym::Flatten(Symbol::Variable("data"), {}, "flatten");
  x = sym::FullyConnected(x, {{"num_hidden", 256}}, "fc1");
  x = sym::Activation(x, {{"act_type", "relu"}}, "relu1");
  x = sym::FullyConnected(x, {{"num_hidden", 128}}, "fc2");
  x = sym::Activation(x, {{"act_type", "relu"}}, "relu2");
  x = sym::FullyConnected(x, {{"num_hidden", 10}}, "fc3");
  return sym::SoftmaxOutput(x, Symbol(), {}, "softmax");
}

// LeNet with BatchNorm after each convolution (no bias there: BatchNorm's beta is one).
Symbol LeNet() {
  Symbol x = Symbol::Variable("data");
  x = sym::Convolution(x, {{"kernel", {5, 5}}, {"num_filter", 20}, {"no_bias", true}}, "conv1");
  x = sym::BatchNorm(x, {{"fix_gamma", false}}, "bn1");
  x = sym::Activation(x, {{"act_type", "relu"}}, "relu1");
  x = sym::Pooling(x, {{"pool_type", "max"}, {"kernel", {2, 2}}, {"stride", {2, 2}}}, "pool1");
  x = sym::Convolution(x, {{"kernel", {5, 5}}, {"num_filter", 50}, {"no_bias", true}}, "conv2");
  x = sym::BatchNorm(x, {{"fix_gamma", false}}, "bn2");
  x = sym::Activation(x, {{"act_type", "relu"}}, "relu2");
  x = sym::Pooling(x, {{"pool_type", "max"}, {"kernel", {2, 2}}, {"stride", {2, 2}}}, "pool2");
  x = sym::Flatten(x, {}, "flatten");
  x = sym::FullyConnected(x, {{"num_hidden", 500}}, "fc1");
  x = sym::Activation(x, {{"act_type", "relu"}}, "relu3");
  x = sym::FullyConnected(x, {{"num_hidden", 10}}, "fc2");
  return sym::SoftmaxOutput(x, Symbol(), {}, "softmax");
}

// The first `count` samples (all when count <= 0 or beyond the size).
kiln::Tensor FirstSamples(const kiln::Tensor& array, int64_t count) {
  if (count <= 0 || count >= array.shape()[0]) return array;
  std::vector<int64_t> rows(static_cast<size_t>(count));
  for (int64_t i = 0; i < count; ++i) rows[static_cast<size_t>(i)] = i;
  return kiln::GatherRows(array, rows);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Train an MLP or a LeNet on Fashion-MNIST with kiln's Module API"};
  std::string model = "mlp";
  std::string data_dir = kiln::kDebianFashionMnistDir;
  std::string output;
  int epochs = 10;
  int64_t batch_size = 64;
  int64_t subset = 0;
  double lr = 0.02;
  uint64_t seed = 1;
  bool quiet = false;
  app.add_option("--model", model, "mlp or lenet")->check(CLI::IsMember({"mlp", "lenet"}));
  app.add_option("--data-dir", data_dir, "Folder of the IDX files (plain or .gz)");
  app.add_option("--epochs", epochs, "Epochs")->check(CLI::Range(1, 1000));
  app.add_option("--batch-size", batch_size, "Batch size")->check(CLI::Range(1, 65536));
  app.add_option("--subset", subset, "Train on the first N training images only (0: all)");
  app.add_option("--lr", lr, "Initial learning rate (SGD with momentum 0.9, wd 0.0001, cosine decay)")
      ->check(CLI::PositiveNumber);
  app.add_option("--seed", seed, "Seed for the initial parameters and the shuffling");
  app.add_option("-o,--output", output, "Save a checkpoint: PREFIX-symbol.json and PREFIX-EPOCH.params");
  app.add_flag("--quiet", quiet, "No progress bar");
  CLI11_PARSE(app, argc, argv);
  try {
    const auto train = kiln::LoadFashionMnist(data_dir, "train");
    const auto test = kiln::LoadFashionMnist(data_dir, "t10k");
    kiln::NDArrayIter train_iter(FirstSamples(train.images, subset), FirstSamples(train.labels, subset), batch_size,
                                 /*shuffle=*/true, "discard", seed);
    kiln::NDArrayIter test_iter(test.images, test.labels, batch_size);
    kiln::Module mod(model == "mlp" ? Mlp() : LeNet());
    mod.SetCacheDir(kiln::CompileCache::DefaultDir());  // a second run skips LLVM
    kiln::FitOptions options;
    options.optimizer = "sgd";
    // The learning rate decays to 0 along a cosine over the whole run.
    const int64_t steps = epochs * (train_iter.num_data() / batch_size);
    options.optimizer_params =
        "lr=" + std::to_string(lr) + ",momentum=0.9,wd=0.0001,lr_scheduler=cosine:max_update=" + std::to_string(steps);
    options.initializer = "xavier(magnitude=2)";
    options.num_epoch = epochs;
    options.eval_metric = "acc,ce";
    options.seed = seed;
    options.progress = !quiet;
    mod.Fit(train_iter, nullptr, options);
    const auto score = mod.Score(test_iter, "acc");
    if (!output.empty()) mod.SaveCheckpoint(output, epochs);
    std::printf("test accuracy: %.4f\n", score.at(0).value);
    return 0;
  } catch (const kiln::Error& e) {
    std::fprintf(stderr, "train_fashion_mnist: %s\n", e.what());
    return 1;
  }
}
