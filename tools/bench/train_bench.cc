// Training throughput of a compiled kiln::TrainStep (train/train_step.h) on synthetic
// data: the forward pass, the gradients and SGD's update (momentum 0.9, wd 1e-4) in one
// executor, timed over N steps after a warm-up. Prints one JSON object: samples/s,
// ms/step, compile seconds and the step's memory (the arena as planned, without reuse,
// its lower bound, and the parameters with their states).
//
//   bazel build --config=opt //tools/bench:train_bench
//   bazel-bin/tools/bench/train_bench --model lenet --batch 64 --threads 1 --steps 20
//   bazel-bin/tools/bench/train_bench --model resnet18 --batch 32 --steps 3 --profile 10
//
// Models (the same ones tools/bench/bench_training.py builds in PyTorch and MXNet):
//   mlp       Flatten, FC 256 relu, FC 128 relu, FC 10, SoftmaxOutput; input 1x28x28
//   lenet     conv 5x5 x32 pad 2, BatchNorm, relu, max pool 2; conv 5x5 x64, BatchNorm,
//             relu, max pool 2; flatten, FC 256 relu, FC 10, SoftmaxOutput; 1x28x28
//   resnet18  ResNet-18 v1 (Gluon's resnet18_v1: 7x7 stem, max pool, 4 stages of two
//             basic blocks, 1x1 projections, BatchNorm, global average pool, FC 1000);
//             3 x S x S input, S = --image-size (224)
// --profile K: also compiles the step's graph once more into an executor of its own
// (BuildStepGraph, LowerGraph, CompileJit, as TrainStep does), runs it --steps times
// with per-kernel timing (Executor::Run's kernel_seconds) and adds the K slowest kernels
// and the time per operator kind to the JSON.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "codegen/compiler.h"
#include "runtime/error.h"
#include "runtime/executor.h"
#include "symbol/ops_api.h"
#include "train/initializer.h"
#include "train/optimizer.h"
#include "train/step_graph.h"
#include "train/train_step.h"

namespace {

using kiln::Symbol;
namespace sym = kiln::sym;

struct Options {
  std::string model = "lenet";
  int64_t batch = 64;
  int threads = 1;
  int steps = 20;
  int warmup = 3;
  int64_t image_size = 224;
  int profile = 0;  // kernels to list; 0: no profile
  std::string optimizer = "sgd";
  std::string optimizer_options = "lr=0.01,momentum=0.9,wd=1e-4";
};

[[noreturn]] void Usage(const char* message) {
  std::fprintf(stderr,
               "%s\nusage: train_bench [--model mlp|lenet|resnet18] [--batch N] [--threads T] [--steps N]\n"
               "                   [--warmup N] [--image-size S] [--profile K] [--optimizer NAME]\n"
               "                   [--optimizer-options k=v,...]\n",
               message);
  std::exit(2);
}

Options ParseArgs(int argc, char** argv) {
  Options options;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    const auto value = [&]() -> std::string {
      if (i + 1 >= argc) Usage(("missing value for " + arg).c_str());
      return argv[++i];
    };
    if (arg == "--model") {
      options.model = value();
    } else if (arg == "--batch") {
      options.batch = std::stoll(value());
    } else if (arg == "--threads") {
      options.threads = std::stoi(value());
    } else if (arg == "--steps") {
      options.steps = std::stoi(value());
    } else if (arg == "--warmup") {
      options.warmup = std::stoi(value());
    } else if (arg == "--image-size") {
      options.image_size = std::stoll(value());
    } else if (arg == "--profile") {
      options.profile = std::stoi(value());
    } else if (arg == "--optimizer") {
      options.optimizer = value();
    } else if (arg == "--optimizer-options") {
      options.optimizer_options = value();
    } else {
      Usage(("unknown argument " + arg).c_str());
    }
  }
  if (options.batch < 1 || options.steps < 1 || options.warmup < 0 || options.threads < 0) Usage("bad value");
  return options;
}

// --- the models ---

Symbol Relu(const Symbol& x, const std::string& name) {
  return sym::Activation(x, {{"act_type", "relu"}}, name);
}

Symbol BatchNorm(const Symbol& x, const std::string& name) {
  // Gluon's nn.BatchNorm: momentum 0.9, eps 1e-5, gamma learned.
  return sym::BatchNorm(x, {{"fix_gamma", false}, {"eps", 1e-5}, {"momentum", 0.9}}, name);
}

Symbol Mlp() {
  Symbol x = sym::Flatten(Symbol::Variable("data"), {}, "flatten");
  x = Relu(sym::FullyConnected(x, {{"num_hidden", 256}}, "fc1"), "relu1");
  x = Relu(sym::FullyConnected(x, {{"num_hidden", 128}}, "fc2"), "relu2");
  x = sym::FullyConnected(x, {{"num_hidden", 10}}, "fc3");
  return sym::SoftmaxOutput(x, Symbol(), {}, "softmax");
}

Symbol LeNet() {
  Symbol x = Symbol::Variable("data");
  x = sym::Convolution(x, {{"kernel", {5, 5}}, {"num_filter", 32}, {"pad", {2, 2}}}, "conv1");
  x = Relu(BatchNorm(x, "bn1"), "relu1");
  x = sym::Pooling(x, {{"pool_type", "max"}, {"kernel", {2, 2}}, {"stride", {2, 2}}}, "pool1");
  x = sym::Convolution(x, {{"kernel", {5, 5}}, {"num_filter", 64}}, "conv2");
  x = Relu(BatchNorm(x, "bn2"), "relu2");
  x = sym::Pooling(x, {{"pool_type", "max"}, {"kernel", {2, 2}}, {"stride", {2, 2}}}, "pool2");
  x = sym::Flatten(x, {}, "flatten");
  x = Relu(sym::FullyConnected(x, {{"num_hidden", 256}}, "fc1"), "relu3");
  x = sym::FullyConnected(x, {{"num_hidden", 10}}, "fc2");
  return sym::SoftmaxOutput(x, Symbol(), {}, "softmax");
}

Symbol Conv(const Symbol& x, int64_t filters, int64_t kernel, int64_t stride, int64_t pad, const std::string& name) {
  return sym::Convolution(x,
                          {{"kernel", {kernel, kernel}},
                           {"num_filter", filters},
                           {"stride", {stride, stride}},
                           {"pad", {pad, pad}},
                           {"no_bias", true}},
                          name);
}

// Gluon's BasicBlockV1: conv 3x3 (stride), BN, relu, conv 3x3, BN; a 1x1 projection with
// BN where the shape changes; add, relu.
Symbol BasicBlock(const Symbol& x, int64_t filters, int64_t stride, bool project, const std::string& name) {
  Symbol body = Conv(x, filters, 3, stride, 1, name + "_conv1");
  body = Relu(BatchNorm(body, name + "_bn1"), name + "_relu1");
  body = BatchNorm(Conv(body, filters, 3, 1, 1, name + "_conv2"), name + "_bn2");
  Symbol shortcut = x;
  if (project) shortcut = BatchNorm(Conv(x, filters, 1, stride, 0, name + "_proj"), name + "_proj_bn");
  return Relu(sym::elemwise_add(body, shortcut, {}, name + "_add"), name + "_relu2");
}

Symbol ResNet18() {
  Symbol x = Symbol::Variable("data");
  x = Relu(BatchNorm(Conv(x, 64, 7, 2, 3, "conv0"), "bn0"), "relu0");
  x = sym::Pooling(x, {{"pool_type", "max"}, {"kernel", {3, 3}}, {"stride", {2, 2}}, {"pad", {1, 1}}}, "pool0");
  const int64_t widths[] = {64, 128, 256, 512};
  int64_t in_width = 64;
  for (int stage = 0; stage < 4; ++stage) {
    for (int block = 0; block < 2; ++block) {
      const int64_t stride = stage > 0 && block == 0 ? 2 : 1;
      const std::string name = "stage" + std::to_string(stage + 1) + "_block" + std::to_string(block + 1);
      x = BasicBlock(x, widths[stage], stride, stride != 1 || in_width != widths[stage], name);
      in_width = widths[stage];
    }
  }
  x = sym::Pooling(x, {{"pool_type", "avg"}, {"global_pool", true}, {"kernel", {1, 1}}}, "pool1");
  x = sym::FullyConnected(sym::Flatten(x, {}, "flatten"), {{"num_hidden", 1000}}, "fc");
  return sym::SoftmaxOutput(x, Symbol(), {}, "softmax");
}

struct Model {
  Symbol net;
  kiln::Shape data_shape;
  int64_t classes = 10;
};

Model MakeModel(const Options& options) {
  if (options.model == "mlp") return {Mlp(), {options.batch, 1, 28, 28}, 10};
  if (options.model == "lenet") return {LeNet(), {options.batch, 1, 28, 28}, 10};
  if (options.model == "resnet18") {
    return {ResNet18(), {options.batch, 3, options.image_size, options.image_size}, 1000};
  }
  Usage(("unknown model " + options.model).c_str());
}

double Seconds(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

std::string Quoted(const std::string& text) {
  std::string out = "\"";
  for (const char c : text) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}

double Median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  const size_t n = values.size();
  return n % 2 ? values[n / 2] : 0.5 * (values[n / 2 - 1] + values[n / 2]);
}

// The kind of a kernel's node for the per-operator summary: the operator of the fused
// group's anchor, from the optimized graph.
std::map<std::string, std::string> NodeOps(const kiln::Graph& graph) {
  // A fused kernel is named after its members ("fc1+relu1"); the first is its anchor.

  std::map<std::string, std::string> ops;
  const kiln::IndexedGraph indexed(graph.outputs);
  for (size_t id = 0; id < indexed.num_nodes(); ++id) {
    const kiln::Node& node = indexed.node(id);
    if (node.op != nullptr) ops[node.name] = node.op->name();
  }
  return ops;
}

}  // namespace

int main(int argc, char** argv) {
  const Options options = ParseArgs(argc, argv);
  try {
    const Model model = MakeModel(options);
    const std::map<std::string, kiln::Shape> input_shapes = {{"data", model.data_shape},
                                                             {"softmax_label", {options.batch}}};
    // Parameters: MXNet's default rule by name (xavier weights, zero biases and betas,
    // unit gammas, moving statistics 0 and 1).
    kiln::Graph graph = model.net.ToGraph();
    const auto shapes = model.net.InferShape(input_shapes);
    const auto init = kiln::MakeInitializer("xavier(rnd_type=uniform, factor_type=avg, magnitude=3)");
    std::mt19937_64 rng(0);
    const auto arguments = model.net.ListArguments();
    std::vector<std::string> inputs;
    for (const auto& [name, shape] : input_shapes) inputs.push_back(name);
    for (auto& [name, value] : kiln::InitializeParams(arguments, shapes.arguments, inputs, {}, /*allow_missing=*/true,
                                                      *init, rng, "train_bench")) {
      graph.params[name] = std::move(value);
    }
    for (auto& [name, value] : kiln::InitializeParams(model.net.ListAuxiliaryStates(), shapes.aux, inputs, {},
                                                      /*allow_missing=*/true, *init, rng, "train_bench")) {
      graph.params[name] = std::move(value);
    }
    int64_t param_count = 0;
    for (const auto& name : arguments) {
      if (!input_shapes.count(name)) param_count += graph.params.at(name).size();
    }

    // Synthetic data: uniform inputs, labels spread over the classes.
    kiln::Tensor data(model.data_shape, kiln::DType::kFloat32);
    std::uniform_real_distribution<float> uniform(0.0f, 1.0f);
    for (int64_t i = 0; i < data.size(); ++i) data.data_as<float>()[i] = uniform(rng);
    kiln::Tensor label({options.batch}, kiln::DType::kFloat32);
    for (int64_t i = 0; i < options.batch; ++i) label.data_as<float>()[i] = static_cast<float>(i % model.classes);
    const std::map<std::string, kiln::Tensor> batch = {{"data", data}, {"softmax_label", label}};

    kiln::TrainStepOptions step_options;
    step_options.shapes = input_shapes;
    step_options.optimizer = kiln::ParseOptimizer(options.optimizer, options.optimizer_options);
    step_options.threads = options.threads;
    const auto compile_start = std::chrono::steady_clock::now();
    kiln::TrainStep step(graph, {}, step_options);
    const double compile_s = Seconds(compile_start);

    for (int i = 0; i < options.warmup; ++i) step.Step(batch);
    std::vector<double> step_ms;
    const auto run_start = std::chrono::steady_clock::now();
    for (int i = 0; i < options.steps; ++i) {
      const auto start = std::chrono::steady_clock::now();
      step.Step(batch);
      step_ms.push_back(Seconds(start) * 1e3);
    }
    const double total_s = Seconds(run_start);
    const kiln::StepMemoryReport memory = step.memory();

    std::string profile_json;
    if (options.profile > 0) {
      // The same step compiled into an executor of our own, to time every kernel.
      const kiln::Optimizer optimizer(step_options.optimizer);
      kiln::StepGraphOptions graph_options;
      graph_options.shapes = input_shapes;
      graph_options.optimizer = &optimizer;
      const kiln::StepGraph step_graph = kiln::BuildStepGraph(graph, graph_options);
      kiln::CompileOptions compile;
      compile.is_train = true;
      compile.embed_params = false;
      std::map<std::string, kiln::Tensor> values = batch;
      for (const auto& [name, value] : graph.params) values[name] = value.Clone();
      for (const auto& name : step_graph.state_names) {
        const std::string param = name.substr(0, name.find("__"));
        values[name] = kiln::Tensor(graph.params.at(param).shape(), kiln::DType::kFloat32);
        std::fill_n(values[name].data_as<float>(), values[name].size(), 0.0f);
      }
      if (!step_graph.trained.empty())
        values[kiln::kLrInput] = kiln::Tensor::FromDoubles({1}, std::vector<double>{0.01});
      if (step_graph.uses_eta) values[kiln::kEtaInput] = kiln::Tensor::FromDoubles({1}, std::vector<double>{1.0});
      if (step_graph.uses_step_counter) {
        values[kiln::kStepInput] = kiln::Tensor::FromDoubles({1}, std::vector<double>{0.0}, kiln::DType::kInt64);
      }
      for (const auto& [name, value] : values) {
        compile.input_shapes[name] = value.shape();
        compile.input_types[name] = value.dtype();
      }
      const kiln::LoweredGraph lowered = kiln::LowerGraph(step_graph.graph, compile);
      kiln::ExecutorOptions executor_options;
      executor_options.threads = options.threads;
      const auto executor = kiln::CompileJit(lowered, compile.target, executor_options);
      std::vector<kiln::Tensor> inputs;
      for (const auto& spec : executor->inputs()) inputs.push_back(values.at(spec.name));
      for (int i = 0; i < options.warmup; ++i) executor->Run(inputs);
      std::vector<double> seconds;
      for (int i = 0; i < options.steps; ++i) executor->Run(inputs, &seconds);
      const auto node_ops = NodeOps(lowered.graph);
      std::vector<size_t> order(seconds.size());
      for (size_t k = 0; k < order.size(); ++k) order[k] = k;
      std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return seconds[a] > seconds[b]; });
      double total = 0;
      std::map<std::string, double> by_op;
      for (size_t k = 0; k < seconds.size(); ++k) {
        total += seconds[k];
        const auto op = node_ops.find(executor->kernel_node(k).substr(0, executor->kernel_node(k).find('+')));
        by_op[op == node_ops.end() ? "(other)" : op->second] += seconds[k];
      }
      const double scale = 1e3 / options.steps;
      profile_json = ", \"profile_ms_per_step\": " + std::to_string(total * scale) + ", \"profile_kernels\": [";
      for (size_t r = 0; r < order.size() && r < static_cast<size_t>(options.profile); ++r) {
        const size_t k = order[r];
        const auto op = node_ops.find(executor->kernel_node(k).substr(0, executor->kernel_node(k).find('+')));
        profile_json += std::string(r ? ", " : "") + "{\"node\": " + Quoted(executor->kernel_node(k)) +
                        ", \"op\": " + Quoted(op == node_ops.end() ? "(other)" : op->second) +
                        ", \"ms\": " + std::to_string(seconds[k] * scale) + "}";
      }
      std::vector<std::pair<double, std::string>> ops;
      for (const auto& [op, s] : by_op) ops.emplace_back(s, op);
      std::sort(ops.rbegin(), ops.rend());
      profile_json += "], \"profile_ops\": [";
      for (size_t r = 0; r < ops.size(); ++r) {
        profile_json += std::string(r ? ", " : "") + "{\"op\": " + Quoted(ops[r].second) +
                        ", \"ms\": " + std::to_string(ops[r].first * scale) + "}";
      }
      profile_json += "]";
    }

    const double ms_per_step = total_s * 1e3 / options.steps;
    std::printf(
        "{\"model\": %s, \"batch\": %lld, \"threads\": %d, \"image_size\": %lld, \"steps\": %d, \"warmup\": %d, "
        "\"samples_per_s\": %.3f, \"ms_per_step\": %.3f, \"median_ms_per_step\": %.3f, \"min_ms_per_step\": %.3f, "
        "\"compile_s\": %.3f, \"params\": %lld, \"num_kernels\": %zu, \"arena_bytes\": %lld, "
        "\"no_reuse_bytes\": %lld, \"lower_bound_bytes\": %lld, \"param_bytes\": %lld, \"optimizer\": %s%s}\n",
        Quoted(options.model).c_str(), static_cast<long long>(options.batch), options.threads,
        static_cast<long long>(options.model == "resnet18" ? options.image_size : 28), options.steps, options.warmup,
        options.batch * 1e3 / ms_per_step, ms_per_step, Median(step_ms),
        *std::min_element(step_ms.begin(), step_ms.end()), compile_s, static_cast<long long>(param_count),
        memory.num_kernels, static_cast<long long>(memory.arena_bytes), static_cast<long long>(memory.no_reuse_bytes),
        static_cast<long long>(memory.lower_bound_bytes), static_cast<long long>(memory.param_bytes),
        Quoted(kiln::OptimizerToString(step_options.optimizer)).c_str(), profile_json.c_str());
    return 0;
  } catch (const kiln::Error& e) {
    std::fprintf(stderr, "train_bench: %s\n", e.what());
    return 1;
  }
}
