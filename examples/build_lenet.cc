// Builds LeNet-5 with the Symbol API, initializes its parameters (Xavier uniform, as
// MXNet's mx.init.Xavier, seeded), infers its shapes, and saves it with the parameters
// embedded: the model that the Quick start compiles and runs.
//
//   build_lenet OUT.kiln-graph [--batch N]
#include <cmath>
#include <iostream>
#include <random>
#include <string>

#include "passes/graph_io.h"
#include "runtime/error.h"
#include "symbol/ops_api.h"

using namespace kiln;

Symbol LeNet() {
  const Symbol data = Symbol::Variable("data");
  Symbol x = sym::Convolution(data, {{"kernel", {5, 5}}, {"num_filter", 20}}, "conv1");
  x = sym::Activation(x, {{"act_type", "tanh"}}, "tanh1");
  x = sym::Pooling(x, {{"pool_type", "max"}, {"kernel", {2, 2}}, {"stride", {2, 2}}}, "pool1");
  x = sym::Convolution(x, {{"kernel", {5, 5}}, {"num_filter", 50}}, "conv2");
  x = sym::Activation(x, {{"act_type", "tanh"}}, "tanh2");
  x = sym::Pooling(x, {{"pool_type", "max"}, {"kernel", {2, 2}}, {"stride", {2, 2}}}, "pool2");
  x = sym::Flatten(x, {}, "flatten");
  x = sym::FullyConnected(x, {{"num_hidden", 500}}, "fc1");
  x = sym::Activation(x, {{"act_type", "tanh"}}, "tanh3");
  x = sym::FullyConnected(x, {{"num_hidden", 10}}, "fc2");
  return sym::SoftmaxOutput(x, Symbol(), {}, "softmax");
}

int main(int argc, char** argv) {
  if (argc < 2) {
    std::cerr << "usage: build_lenet OUT.kiln-graph [--batch N]\n";
    return 2;
  }
  try {
    const std::string out = argv[1];
    int64_t batch = 1;
    if (argc == 4 && std::string(argv[2]) == "--batch") batch = std::stoll(argv[3]);

    const Symbol net = LeNet();
    const auto shapes = net.InferShape({{"data", {batch, 1, 28, 28}}});
    const auto names = net.ListArguments();
    Graph graph = net.ToGraph();
    std::mt19937_64 rng(42);
    for (size_t i = 0; i < names.size(); ++i) {
      const Shape& shape = *shapes.arguments[i];
      if (names[i] == "data" || names[i] == "softmax_label") continue;
      Tensor value(shape, DType::kFloat32);
      if (shape.size() > 1) {  // weights: Xavier uniform, fan = in + out
        const int64_t receptive = NumElements(shape) / (shape[0] * shape[1]);
        const double fan = static_cast<double>((shape[0] + shape[1]) * receptive) / 2.0;
        std::uniform_real_distribution<double> dist(-std::sqrt(3.0 / fan), std::sqrt(3.0 / fan));
        for (int64_t k = 0; k < value.size(); ++k) value.SetDouble(k, dist(rng));
      }  // biases stay zero
      graph.params[names[i]] = value;
    }
    SaveGraphFile(graph, out);
    std::cout << "LeNet-5: " << names.size() - 2 << " parameters, output shape "
              << ShapeToString(*shapes.outputs[0]) << ", saved to " << out << "\n";
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "build_lenet: error: " << e.what() << "\n";
    return 1;
  }
}
