#include "tests/test_models.h"

#include "symbol/ops_api.h"
#include "tests/op_test_util.h"

namespace kiln::testing {

Symbol TestMlp(int64_t hidden) {
  Symbol x = Symbol::Variable("data");
  x = sym::FullyConnected(x, {{"num_hidden", hidden}}, "fc1");
  x = sym::Activation(x, {{"act_type", "relu"}}, "relu1");
  x = sym::FullyConnected(x, {{"num_hidden", 10}}, "fc2");
  return sym::SoftmaxOutput(x, Symbol(), {}, "softmax");
}

Symbol TestLeNet(int64_t hidden) {
  Symbol x = Symbol::Variable("data");
  x = sym::Convolution(x, {{"kernel", {5, 5}}, {"num_filter", 6}, {"pad", {2, 2}}}, "conv1");
  x = sym::BatchNorm(x, {{"fix_gamma", false}}, "bn1");
  x = sym::Activation(x, {{"act_type", "tanh"}}, "tanh1");
  x = sym::Pooling(x, {{"pool_type", "max"}, {"kernel", {2, 2}}, {"stride", {2, 2}}}, "pool1");
  x = sym::Convolution(x, {{"kernel", {5, 5}}, {"num_filter", 16}}, "conv2");
  x = sym::Activation(x, {{"act_type", "relu"}}, "relu2");
  x = sym::Pooling(x, {{"pool_type", "avg"}, {"kernel", {2, 2}}, {"stride", {2, 2}}}, "pool2");
  x = sym::Flatten(x, {}, "flatten");
  x = sym::FullyConnected(x, {{"num_hidden", hidden}}, "fc1");
  x = sym::Activation(x, {{"act_type", "sigmoid"}}, "sig1");
  x = sym::FullyConnected(x, {{"num_hidden", 10}}, "fc2");
  return sym::SoftmaxOutput(x, Symbol(), {}, "softmax");
}

Graph WithRandomParams(const Symbol& net, const std::map<std::string, Shape>& input_shapes, uint64_t seed) {
  Graph graph = net.ToGraph();
  const auto shapes = net.InferShape(input_shapes);
  const auto names = net.ListArguments();
  for (size_t i = 0; i < names.size(); ++i) {
    if (input_shapes.count(names[i]) || names[i].find("label") != std::string::npos) continue;
    graph.params[names[i]] = RandomTensor(*shapes.arguments[i], seed + i, -0.3, 0.3);
  }
  const auto aux = net.ListAuxiliaryStates();
  for (size_t i = 0; i < aux.size(); ++i) {
    graph.params[aux[i]] = RandomTensor(*shapes.aux[i], seed + 100 + i, 0.5, 1.5);
  }
  return graph;
}

}  // namespace kiln::testing
