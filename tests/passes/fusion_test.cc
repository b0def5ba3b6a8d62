// Fusion: groups, kernel counts, epilogues, the no-cycle rule, and fused results equal
// to unfused ones bit for bit (the kir interpreter has no fused multiply-adds).
#include <catch2/catch.hpp>

#include "codegen/compiler.h"
#include "passes/interpreter.h"
#include "symbol/ops_api.h"
#include "symbol/symbol.h"
#include "tests/graph_runner.h"
#include "tests/op_test_util.h"
#include "tests/test_models.h"

using namespace kiln;
using namespace kiln::testing;

namespace {

LoweredGraph Lower(const Graph& graph, const std::map<std::string, Tensor>& inputs, int level) {
  CompileOptions options;
  for (const auto& [name, value] : inputs) options.input_shapes[name] = value.shape();
  options.graph_opt_level = level;
  LoweredGraph lowered = LowerGraph(graph, options);
  const std::string problem = CheckMemoryPlan(lowered.memory_problem, lowered.memory_plan);
  INFO(problem);
  CHECK(problem.empty());
  return lowered;
}

// Fused (-O2) against unfused (-O0), bit for bit, and against the reference.
void CheckFusedExact(const Graph& graph, const std::map<std::string, Tensor>& inputs, double rtol = 1e-5) {
  const auto unfused = RunWithInterpreter(Lower(graph, inputs, 0), inputs);
  const auto fused = RunWithInterpreter(Lower(graph, inputs, 2), inputs);
  const auto expected = Interpret(graph, inputs);
  for (size_t i = 0; i < expected.size(); ++i) {
    CHECK(fused[i].BitwiseEquals(unfused[i]));
    KILN_CHECK_CLOSE(fused[i], expected[i], rtol, 1e-6);
  }
}

}  // namespace

TEST_CASE("a chain of 24 elementwise and broadcast operators is one kernel", "[fusion]") {
  Symbol x = Symbol::Variable("data");
  Symbol bias = Symbol::Variable("bias");
  Symbol y = x;
  const char* ops[] = {"relu", "sigmoid", "tanh", "exp", "abs", "square", "sqrt", "negative"};
  for (int i = 0; i < 24; ++i) {
    y = i % 3 == 2 ? Symbol::Create("broadcast_add", {y, bias}, {}, "add" + std::to_string(i))
                   : Symbol::Create(ops[i % 8], {y}, {}, "op" + std::to_string(i));
  }
  const Graph graph = y.ToGraph();
  const std::map<std::string, Tensor> inputs = {{"data", RandomTensor({4, 3, 5}, 1)},
                                                {"bias", RandomTensor({3, 1}, 2)}};
  const LoweredGraph lowered = Lower(graph, inputs, 2);
  CHECK(lowered.artifact.kernels_size() == 1);
  CHECK(lowered.artifact.report().kernels_before_fusion() == 24);
  REQUIRE(lowered.artifact.report().fused_groups_size() == 1);
  CHECK(lowered.artifact.report().fused_groups(0).members_size() == 24);
  CHECK(lowered.artifact.kernels(0).node().find("op0+op1+add2") == 0);
  CheckFusedExact(graph, inputs);
}

TEST_CASE("a ResNet basic block is two kernels: conv+bn+relu, conv+bn+add+relu", "[fusion]") {
  Symbol x = Symbol::Variable("data");
  Symbol y = sym::Convolution(x, {{"kernel", {3, 3}}, {"num_filter", 8}, {"pad", {1, 1}}, {"no_bias", true}}, "conv1");
  y = sym::BatchNorm(y, {{"fix_gamma", false}}, "bn1");
  y = sym::Activation(y, {{"act_type", "relu"}}, "relu1");
  y = sym::Convolution(y, {{"kernel", {3, 3}}, {"num_filter", 8}, {"pad", {1, 1}}, {"no_bias", true}}, "conv2");
  y = sym::BatchNorm(y, {{"fix_gamma", false}}, "bn2");
  y = sym::Activation(y + x, {{"act_type", "relu"}}, "relu2");
  const Graph graph = WithRandomParams(y, {{"data", {2, 8, 6, 6}}}, 3);
  const std::map<std::string, Tensor> inputs = {{"data", RandomTensor({2, 8, 6, 6}, 4)}};
  const LoweredGraph lowered = Lower(graph, inputs, 2);
  REQUIRE(lowered.artifact.kernels_size() == 2);
  CHECK(lowered.artifact.kernels(0).node() == "conv1+relu1");
  CHECK(lowered.artifact.kernels(1).node().find("conv2+") == 0);
  CHECK(lowered.artifact.report().fused_groups(1).anchor() == "conv2");
  const auto expected = Interpret(graph, inputs);
  KILN_CHECK_CLOSE(RunWithInterpreter(lowered, inputs)[0], expected[0], 1e-5, 1e-5);
}

TEST_CASE("fusion never forms a cycle through an operator outside the group", "[fusion]") {
  // a = relu(x) feeds both conv (the anchor-to-be) and the add after it: fusing a into
  // the add's group would need conv's output before a, and conv needs a.
  Symbol x = Symbol::Variable("data");
  Symbol a = Symbol::Create("relu", {x}, {}, "a");
  Symbol c = sym::Convolution(a, {{"kernel", {1, 1}}, {"num_filter", 3}}, "conv");
  Symbol out = Symbol::Create("exp", {c + a}, {}, "out");
  // b = exp(x) feeds a pooling (opaque) and the product with the pooled value.
  Symbol b = Symbol::Create("exp", {x}, {}, "b");
  Symbol pooled = sym::Pooling(b, {{"kernel", {3, 3}}, {"global_pool", true}, {"pool_type", "avg"}}, "pool");
  Symbol out2 = Symbol::Create("sigmoid", {Symbol::Create("broadcast_mul", {b, pooled}, {}, "mul")}, {}, "out2");
  const Graph graph = WithRandomParams(Symbol::Group({out, out2}), {{"data", {1, 3, 4, 4}}}, 5);
  const std::map<std::string, Tensor> inputs = {{"data", RandomTensor({1, 3, 4, 4}, 6)}};
  const LoweredGraph lowered = Lower(graph, inputs, 2);
  for (const auto& kernel : lowered.artifact.kernels()) {
    INFO(kernel.node());
    CHECK(kernel.node() != "a+conv");
  }
  CHECK(lowered.artifact.kernels(0).node() == "a");
  CheckFusedExact(graph, inputs);
}

TEST_CASE("epilogues read broadcast inputs and residuals; dot and FullyConnected fuse too", "[fusion]") {
  Symbol x = Symbol::Variable("data");
  Symbol shift = Symbol::Variable("shift");
  Symbol c = sym::Convolution(x, {{"kernel", {3, 3}}, {"num_filter", 4}, {"pad", {1, 1}}}, "conv");
  Symbol y = Symbol::Create("broadcast_add", {c, shift}, {}, "shifted");
  y = Symbol::Create("clip", {y}, {{"a_min", 0.0}, {"a_max", 6.0}}, "relu6");
  Symbol f = sym::FullyConnected(sym::Flatten(y, {}, "flat"), {{"num_hidden", 7}}, "fc");
  f = Symbol::Create("LeakyReLU", {f}, {{"act_type", "gelu"}}, "gelu");
  Symbol m = Symbol::Variable("m");
  Symbol d = Symbol::Create("tanh", {Symbol::Create("dot", {f, m}, {}, "dot")}, {}, "tanh");
  Graph graph = WithRandomParams(Symbol::Group({d}), {{"data", {2, 3, 5, 5}}, {"shift", {1, 4, 1, 1}}, {"m", {7, 3}}}, 7);
  const std::map<std::string, Tensor> inputs = {{"data", RandomTensor({2, 3, 5, 5}, 8)},
                                                {"shift", RandomTensor({1, 4, 1, 1}, 9)},
                                                {"m", RandomTensor({7, 3}, 10)}};
  const LoweredGraph lowered = Lower(graph, inputs, 2);
  for (const auto& kernel : lowered.artifact.kernels()) UNSCOPED_INFO(kernel.node());
  REQUIRE(lowered.artifact.kernels_size() == 3);
  CHECK(lowered.artifact.kernels(0).node() == "conv+shifted+relu6");
  CHECK(lowered.artifact.kernels(1).node() == "fc+gelu");
  CHECK(lowered.artifact.kernels(2).node() == "dot+tanh");
  CheckFusedExact(graph, inputs);
}

TEST_CASE("float16 values between fused operators round as stored ones do", "[fusion]") {
  Symbol x = Symbol::Variable("data", std::nullopt, DType::kFloat16);
  Symbol y = Symbol::Create("exp", {x}, {}, "e") * 3.0 + 0.1;
  y = Symbol::Create("sqrt", {y}, {}, "s");
  const Graph graph = y.ToGraph();
  const std::map<std::string, Tensor> inputs = {{"data", RandomTensor({37}, 11, -1, 1, DType::kFloat16)}};
  const LoweredGraph lowered = Lower(graph, inputs, 2);
  CHECK(lowered.artifact.kernels_size() == 1);
  CheckFusedExact(graph, inputs, 2e-3);
}

TEST_CASE("reductions fuse with elementwise producers and consumers: LayerNorm's statistics", "[fusion]") {
  // LayerNorm as ONNX exporters write it: mean, x - mean, its square's mean, + eps, sqrt.
  Symbol x = Symbol::Variable("data");
  Symbol mean = Symbol::Create("mean", {x}, {{"axis", {-1}}, {"keepdims", true}}, "mean");
  Symbol centered = Symbol::Create("broadcast_sub", {x, mean}, {}, "centered");
  Symbol square = Symbol::Create("square", {centered}, {}, "square");
  Symbol variance = Symbol::Create("mean", {square}, {{"axis", {-1}}, {"keepdims", true}}, "variance");
  Symbol std_dev =
      Symbol::Create("sqrt", {Symbol::Create("_plus_scalar", {variance}, {{"scalar", 1e-5}}, "eps")}, {}, "std");
  Symbol normalized = Symbol::Create("broadcast_div", {centered, std_dev}, {}, "normalized");
  // A mean of squares straight from the input: the square is computed as the sum loads it.
  Symbol energy = Symbol::Create("sum", {Symbol::Create("square", {x}, {}, "x2")}, {{"axis", {1}}}, "energy");
  const Graph graph = Symbol::Group({normalized, energy}).ToGraph();
  const std::map<std::string, Tensor> inputs = {{"data", RandomTensor({3, 4, 33}, 12)}};
  const LoweredGraph lowered = Lower(graph, inputs, 2);
  std::vector<std::string> kernels;
  for (const auto& kernel : lowered.artifact.kernels()) kernels.push_back(kernel.node());
  // The square is computed as the variance's mean loads it; + eps and sqrt go with the
  // division (they broadcast into it).
  CHECK(kernels ==
        std::vector<std::string>{"mean", "centered", "square+variance", "eps+std+normalized", "x2+energy"});
  CheckFusedExact(graph, inputs);
}

TEST_CASE("injective operators (transposes, views) fuse into elementwise groups", "[fusion]") {
  Symbol x = Symbol::Variable("data");
  Symbol y = Symbol::Variable("other");
  Symbol t = Symbol::Create("transpose", {Symbol::Create("relu", {x}, {}, "relu")}, {{"axes", {0, 2, 1}}}, "t");
  Symbol sum = Symbol::Create("broadcast_add", {t, y}, {}, "add");
  Symbol flat = Symbol::Create("Reshape", {sum}, {{"shape", {2, -1}}}, "flat");
  Symbol out = Symbol::Create("sigmoid", {flat}, {}, "out");
  const Graph graph = out.ToGraph();
  const std::map<std::string, Tensor> inputs = {{"data", RandomTensor({2, 3, 5}, 13)},
                                                {"other", RandomTensor({5, 1}, 14)}};
  const LoweredGraph lowered = Lower(graph, inputs, 2);
  REQUIRE(lowered.artifact.kernels_size() == 1);
  CHECK(lowered.artifact.kernels(0).node() == "relu+t+add+flat+out");
  CheckFusedExact(graph, inputs);
}

TEST_CASE("pooling takes its activation; a matrix product its bias read by column", "[fusion]") {
  Symbol x = Symbol::Variable("data");
  Symbol pooled = sym::Pooling(x, {{"kernel", {2, 2}}, {"stride", {2, 2}}, {"pool_type", "max"}}, "pool");
  Symbol activated = Symbol::Create("sigmoid", {pooled}, {}, "sig");
  // dot's output (2, 8) plus a bias of shape (8,): the epilogue indexes it by column.
  Symbol product = Symbol::Create("dot", {sym::Flatten(activated, {}, "flat"), Symbol::Variable("w")}, {}, "dot");
  Symbol biased = Symbol::Create("broadcast_add", {product, Symbol::Variable("b")}, {}, "bias");
  const Graph graph = Symbol::Group({biased}).ToGraph();
  const std::map<std::string, Tensor> inputs = {{"data", RandomTensor({2, 3, 4, 4}, 15)},
                                                {"w", RandomTensor({12, 8}, 16)},
                                                {"b", RandomTensor({8}, 17)}};
  const LoweredGraph lowered = Lower(graph, inputs, 2);
  std::vector<std::string> kernels;
  for (const auto& kernel : lowered.artifact.kernels()) kernels.push_back(kernel.node());
  CHECK(kernels == std::vector<std::string>{"pool+sig", "dot+bias"});
  CheckFusedExact(graph, inputs);
}
