// Training graphs (forward and gradients, from WithGradients) through the whole compile
// pipeline: graph passes, fusion, memory planning and the LLVM JIT give the gradients the
// reference interpreter gives, for an MLP and a CNN with SoftmaxOutput.
#include <catch2/catch.hpp>
#include <map>
#include <string>
#include <vector>

#include "codegen/compiler.h"
#include "graph/op.h"
#include "passes/gradient.h"
#include "passes/interpreter.h"
#include "tests/op_test_util.h"

using namespace kiln;
using namespace kiln::testing;

namespace {

NodeEntry Make(const std::string& op, const std::string& name, std::vector<NodeEntry> inputs,
               std::map<std::string, AttrValue> attrs = {}) {
  const OpDef& def = OpRegistry::Global().Get(op);
  return {Node::Create(def, name, def.ParseAttrs(attrs, name), std::move(inputs)), 0};
}

NodeEntry Var(const std::string& name, const Shape& shape) {
  return {Node::Variable(name, shape, DType::kFloat32), 0};
}

void CheckCompiledGradients(const Graph& forward, const std::vector<std::string>& wrt,
                            const std::map<std::string, Tensor>& feeds) {
  const Graph training = WithGradients(forward, wrt);
  InterpretOptions interpret;
  interpret.is_train = true;
  const auto expected = Interpret(training, feeds, interpret);
  CompileOptions options;
  options.is_train = true;
  const auto executor = CompileJit(training, options);
  std::map<std::string, Tensor> inputs;
  for (const auto& spec : executor->inputs()) inputs[spec.name] = feeds.at(spec.name);
  const auto actual = executor->Run(inputs);
  REQUIRE(actual.size() == expected.size());
  const auto names = training.OutputNames();
  for (size_t i = 0; i < actual.size(); ++i) {
    INFO(names[i]);
    KILN_CHECK_CLOSE(actual[i], expected[i], 1e-4, 1e-5);
  }
}

}  // namespace

TEST_CASE("an MLP's training graph compiles to the interpreter's gradients", "[gradient][compiled]") {
  const NodeEntry fc1 = Make("FullyConnected", "fc1", {Var("data", {8, 20}), Var("w1", {16, 20}), Var("b1", {16})},
                             {{"num_hidden", AttrValue{int64_t{16}}}});
  const NodeEntry act = Make("Activation", "relu1", {fc1}, {{"act_type", AttrValue{std::string("relu")}}});
  const NodeEntry fc2 =
      Make("FullyConnected", "fc2", {act, Var("w2", {5, 16}), Var("b2", {5})}, {{"num_hidden", AttrValue{int64_t{5}}}});
  Graph graph;
  graph.outputs = {
      Make("SoftmaxOutput", "softmax", {fc2, Var("label", {8})}, {{"normalization", AttrValue{std::string("batch")}}})};
  std::map<std::string, Tensor> feeds = {
      {"data", RandomTensor({8, 20}, 1)}, {"w1", RandomTensor({16, 20}, 2)},
      {"b1", RandomTensor({16}, 3)},      {"w2", RandomTensor({5, 16}, 4)},
      {"b2", RandomTensor({5}, 5)},       {"label", Values({8}, {0, 1, 2, 3, 4, 0, 1, 2})}};
  CheckCompiledGradients(graph, {"w1", "b1", "w2", "b2", "data"}, feeds);
}

TEST_CASE("a CNN's training graph compiles to the interpreter's gradients", "[gradient][compiled]") {
  const NodeEntry conv =
      Make("Convolution", "conv", {Var("data", {2, 3, 8, 8}), Var("cw", {4, 3, 3, 3}), Var("cb", {4})},
           {{"kernel", AttrValue{std::vector<int64_t>{3, 3}}},
            {"pad", AttrValue{std::vector<int64_t>{1, 1}}},
            {"num_filter", AttrValue{int64_t{4}}}});
  const NodeEntry act = Make("Activation", "relu", {conv}, {{"act_type", AttrValue{std::string("relu")}}});
  const NodeEntry pool = Make("Pooling", "pool", {act},
                              {{"kernel", AttrValue{std::vector<int64_t>{2, 2}}},
                               {"stride", AttrValue{std::vector<int64_t>{2, 2}}},
                               {"pool_type", AttrValue{std::string("max")}}});
  const NodeEntry fc =
      Make("FullyConnected", "fc", {pool, Var("fw", {3, 64}), Var("fb", {3})}, {{"num_hidden", AttrValue{int64_t{3}}}});
  Graph graph;
  graph.outputs = {Make("SoftmaxOutput", "softmax", {fc, Var("label", {2})})};
  std::map<std::string, Tensor> feeds = {
      {"data", RandomTensor({2, 3, 8, 8}, 6)}, {"cw", RandomTensor({4, 3, 3, 3}, 7)}, {"cb", RandomTensor({4}, 8)},
      {"fw", RandomTensor({3, 64}, 9)},        {"fb", RandomTensor({3}, 10)},         {"label", Values({2}, {2, 0})}};
  CheckCompiledGradients(graph, {"cw", "cb", "fw", "fb"}, feeds);
}

TEST_CASE("BatchNorm in training mode: compiled batch statistics and gradients", "[gradient][compiled]") {
  const NodeEntry conv = Make("Convolution", "conv", {Var("data", {4, 2, 5, 5}), Var("cw", {3, 2, 3, 3})},
                              {{"kernel", AttrValue{std::vector<int64_t>{3, 3}}},
                               {"num_filter", AttrValue{int64_t{3}}},
                               {"no_bias", AttrValue{true}}});
  const NodeEntry bn =
      Make("BatchNorm", "bn", {conv, Var("gamma", {3}), Var("beta", {3}), Var("mean", {3}), Var("var", {3})},
           {{"fix_gamma", AttrValue{false}}});
  const NodeEntry fc =
      Make("FullyConnected", "fc", {bn, Var("fw", {2, 27}), Var("fb", {2})}, {{"num_hidden", AttrValue{int64_t{2}}}});
  Graph graph;
  graph.outputs = {Make("SoftmaxOutput", "softmax", {fc, Var("label", {4})})};
  std::map<std::string, Tensor> feeds = {{"data", RandomTensor({4, 2, 5, 5}, 11)},
                                         {"cw", RandomTensor({3, 2, 3, 3}, 12)},
                                         {"gamma", RandomTensor({3}, 13, 0.5, 1.5)},
                                         {"beta", RandomTensor({3}, 14)},
                                         {"mean", RandomTensor({3}, 15)},
                                         {"var", RandomTensor({3}, 16, 0.5, 1.5)},
                                         {"fw", RandomTensor({2, 27}, 17)},
                                         {"fb", RandomTensor({2}, 18)},
                                         {"label", Values({4}, {1, 0, 1, 1})}};
  CheckCompiledGradients(graph, {"cw", "gamma", "beta", "fw", "fb"}, feeds);
}
