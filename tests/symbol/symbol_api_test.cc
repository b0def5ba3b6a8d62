// The Symbol API: composition, MXNet naming, listing, shape and type inference of whole
// networks, save/load, and errors that name the node, argument and values.
#include <catch2/catch.hpp>
#include <filesystem>

#include "passes/graph_io.h"
#include "passes/interpreter.h"
#include "runtime/error.h"
#include "symbol/ops_api.h"
#include "tests/op_test_util.h"

using namespace kiln;
using kiln::testing::Arange;
using kiln::testing::Values;

namespace {

Symbol Mlp() {
  const Symbol data = Symbol::Variable("data");
  Symbol x = sym::FullyConnected(data, {{"num_hidden", 128}}, "fc1");
  x = sym::Activation(x, {{"act_type", "relu"}}, "relu1");
  x = sym::FullyConnected(x, {{"num_hidden", 64}}, "fc2");
  x = sym::Activation(x, {{"act_type", "relu"}}, "relu2");
  x = sym::FullyConnected(x, {{"num_hidden", 10}}, "fc3");
  return sym::SoftmaxOutput(x, Symbol(), {}, "softmax");
}

Symbol LeNet() {
  const Symbol data = Symbol::Variable("data");
  Symbol x = sym::Convolution(data, {{"kernel", {5, 5}}, {"num_filter", 20}}, "conv1");
  x = sym::Activation(x, {{"act_type", "tanh"}});
  x = sym::Pooling(x, {{"pool_type", "max"}, {"kernel", {2, 2}}, {"stride", {2, 2}}});
  x = sym::Convolution(x, {{"kernel", {5, 5}}, {"num_filter", 50}}, "conv2");
  x = sym::BatchNorm(x, {}, "bn1");
  x = sym::Activation(x, {{"act_type", "tanh"}});
  x = sym::Pooling(x, {{"pool_type", "max"}, {"kernel", {2, 2}}, {"stride", {2, 2}}});
  x = sym::Flatten(x);
  x = sym::FullyConnected(x, {{"num_hidden", 500}}, "fc1");
  x = sym::Activation(x, {{"act_type", "tanh"}});
  x = sym::FullyConnected(x, {{"num_hidden", 10}}, "fc2");
  return sym::SoftmaxOutput(x, Symbol(), {}, "softmax");
}

std::string TempPath(const std::string& name) {
  const auto dir = std::filesystem::temp_directory_path() / ("kiln_symbol_test_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  return (dir / name).string();
}

}  // namespace

TEST_CASE("parameters are made implicitly and named the MXNet way", "[symbol]") {
  const Symbol net = Mlp();
  CHECK(net.ListArguments() == std::vector<std::string>{"data", "fc1_weight", "fc1_bias", "fc2_weight", "fc2_bias",
                                                        "fc3_weight", "fc3_bias", "softmax_label"});
  CHECK(net.ListOutputs() == std::vector<std::string>{"softmax_output"});
  CHECK(net.ListAuxiliaryStates().empty());

  const Symbol bn = sym::BatchNorm(Symbol::Variable("x"), {}, "bn1");
  CHECK(bn.ListArguments() == std::vector<std::string>{"x", "bn1_gamma", "bn1_beta"});
  CHECK(bn.ListAuxiliaryStates() == std::vector<std::string>{"bn1_moving_mean", "bn1_moving_var"});
  CHECK(sym::FullyConnected(Symbol::Variable("x"), {{"num_hidden", 3}, {"no_bias", true}}, "fc").ListArguments() ==
        std::vector<std::string>{"x", "fc_weight"});
}

TEST_CASE("automatic names are unique per operator", "[symbol]") {
  NameManager::Reset();
  const Symbol x = Symbol::Variable("x");
  const Symbol a = sym::FullyConnected(x, {{"num_hidden", 2}});
  const Symbol b = sym::FullyConnected(a, {{"num_hidden", 2}});
  const Symbol c = sym::relu(b);
  CHECK(a.name() == "fullyconnected0");
  CHECK(b.name() == "fullyconnected1");
  CHECK(c.name() == "relu0");
  CHECK(c.ListArguments() == std::vector<std::string>{"x", "fullyconnected0_weight", "fullyconnected0_bias",
                                                      "fullyconnected1_weight", "fullyconnected1_bias"});
  NameManager::Reset();
  CHECK(sym::relu(x).name() == "relu0");
}

TEST_CASE("explicit parameters can be shared between layers", "[symbol]") {
  const Symbol x = Symbol::Variable("x");
  const Symbol w = Symbol::Variable("shared_weight");
  const Symbol a = Symbol::CreateNamed("FullyConnected", {{"data", x}, {"weight", w}}, {{"num_hidden", 4}}, "a");
  const Symbol b = Symbol::CreateNamed("FullyConnected", {{"data", a}, {"weight", w}}, {{"num_hidden", 4}}, "b");
  CHECK(b.ListArguments() == std::vector<std::string>{"x", "shared_weight", "a_bias", "b_bias"});
  CHECK_THROWS_WITH(Symbol::CreateNamed("FullyConnected", {{"kernel", x}}, {{"num_hidden", 4}}, "c"),
                    Catch::Contains("unknown input 'kernel'; inputs are {data, weight, bias}"));
}

TEST_CASE("InferShape of an MLP fills every weight from the data shape", "[symbol]") {
  const auto shapes = Mlp().InferShape({{"data", {32, 784}}});
  REQUIRE(shapes.complete);
  const std::vector<Shape> expected = {{32, 784}, {128, 784}, {128}, {64, 128}, {64}, {10, 64}, {10}, {32}};
  REQUIRE(shapes.arguments.size() == expected.size());
  for (size_t i = 0; i < expected.size(); ++i) CHECK(*shapes.arguments[i] == expected[i]);
  CHECK(*shapes.outputs[0] == Shape{32, 10});
  const auto types = Mlp().InferType({{"data", DType::kFloat32}});
  CHECK(types.complete);
  CHECK(*types.arguments[1] == DType::kFloat32);
}

TEST_CASE("InferShape of LeNet with BatchNorm", "[symbol]") {
  const Symbol net = LeNet();
  const auto shapes = net.InferShape({{"data", {8, 1, 28, 28}}});
  REQUIRE(shapes.complete);
  const auto names = net.ListArguments();
  std::map<std::string, Shape> by_name;
  for (size_t i = 0; i < names.size(); ++i) by_name[names[i]] = *shapes.arguments[i];
  CHECK(by_name["conv1_weight"] == Shape{20, 1, 5, 5});
  CHECK(by_name["conv2_weight"] == Shape{50, 20, 5, 5});
  CHECK(by_name["bn1_gamma"] == Shape{50});
  CHECK(by_name["fc1_weight"] == Shape{500, 800});
  CHECK(by_name["fc2_weight"] == Shape{10, 500});
  CHECK(by_name["softmax_label"] == Shape{8});
  REQUIRE(shapes.aux.size() == 2);
  CHECK(*shapes.aux[0] == Shape{50});
  CHECK(*shapes.outputs[0] == Shape{8, 10});
  // Partial inference: nothing known, nothing inferred, no error.
  const auto partial = net.InferShape({});
  CHECK_FALSE(partial.complete);
}

TEST_CASE("shape errors name the node, the argument, and both values", "[symbol]") {
  const Symbol data = Symbol::Variable("data");
  const Symbol conv = sym::Convolution(data, {{"kernel", {5, 5}}, {"num_filter", 4}}, "conv1");
  CHECK_THROWS_WITH(conv.InferShape({{"data", {1, 1, 3, 3}}}),
                    Catch::Contains("node 'conv1' (Convolution)") && Catch::Contains("(5,5)") && Catch::Contains("(3,3)"));
  const Symbol fc = sym::FullyConnected(data, {{"num_hidden", 10}}, "fc");
  CHECK_THROWS_WITH(fc.InferShape({{"data", {4, 20}}, {"fc_weight", {10, 21}}}),
                    Catch::Contains("node 'fc' (FullyConnected)") && Catch::Contains("weight") &&
                        Catch::Contains("(10,20)") && Catch::Contains("(10,21)"));
  CHECK_THROWS_WITH(fc.InferShape({{"nope", {1}}}), Catch::Contains("no input named 'nope'"));
  CHECK_THROWS_WITH(sym::FullyConnected(data, {{"num_hidden", 0}}, "fc0"),
                    Catch::Contains("node 'fc0'") && Catch::Contains("num_hidden") && Catch::Contains("given 0"));
  CHECK_THROWS_WITH(sym::Convolution(data, {{"num_filter", 2}}, "c"),
                    Catch::Contains("required attribute 'kernel'"));
  CHECK_THROWS_WITH(Symbol::Create("NoSuchOp", {data}), Catch::Contains("unknown operator 'NoSuchOp'"));
}

TEST_CASE("2 * dot(x.T, x) for x = arange(4) as a column", "[symbol]") {
  const Symbol x = Symbol::Variable("x");
  const Symbol y = 2.0 * sym::dot(x, x, {{"transpose_a", true}});
  const auto out = Interpret(y.ToGraph(), {{"x", Arange({4, 1})}});
  KILN_CHECK_CLOSE(out[0], Values({1, 1}, {28}), 0, 0);
}

TEST_CASE("operators between symbols and scalars", "[symbol]") {
  const Symbol a = Symbol::Variable("a");
  const Symbol b = Symbol::Variable("b");
  const Symbol y = (a + b) * (a - 1.0) / 2.0 - (3.0 - b) + (1.0 / a) * -b;
  const Tensor av = Values({2}, {1, 2});
  const Tensor bv = Values({2}, {3, 5});
  const auto out = Interpret(y.ToGraph(), {{"a", av}, {"b", bv}});
  // a=1,b=3: 4*0/2 - 0 + 1*-3 = -3 ; a=2,b=5: 7*1/2 - (-2) + 0.5*-5 = 3
  KILN_CHECK_CLOSE(out[0], Values({2}, {-3, 3}), 1e-6, 0);
}

TEST_CASE("Group, indexing and multi-output operators", "[symbol]") {
  const Symbol x = Symbol::Variable("x");
  const Symbol parts = sym::split(x, {{"num_outputs", 2}, {"axis", 1}}, "split0");
  CHECK(parts.num_outputs() == 2);
  CHECK(parts.ListOutputs() == std::vector<std::string>{"split0_output0", "split0_output1"});
  const Symbol g = Symbol::Group({parts[1], sym::relu(parts[0], {}, "r")});
  CHECK(g.ListOutputs() == std::vector<std::string>{"split0_output1", "r_output"});
  const auto out = Interpret(g.ToGraph(), {{"x", Arange({2, 4})}});
  KILN_CHECK_CLOSE(out[0], Values({2, 2}, {2, 3, 6, 7}), 0, 0);
  CHECK_THROWS_WITH(parts[2], Catch::Contains("out of range"));
  CHECK_THROWS_WITH(sym::relu(parts), Catch::Contains("one output"));
}

TEST_CASE("save and load round trips give identical graphs", "[symbol]") {
  const Symbol net = LeNet();
  for (const std::string name : {"lenet.kiln-graph", "lenet.pbtxt"}) {
    const std::string path = TempPath(name);
    net.Save(path);
    const Symbol loaded = Symbol::Load(path);
    CHECK(SerializeGraph(loaded.ToGraph()) == SerializeGraph(net.ToGraph()));
    CHECK(loaded.ListArguments() == net.ListArguments());
    CHECK(loaded.ListAuxiliaryStates() == net.ListAuxiliaryStates());
  }
  CHECK_THROWS_WITH(Symbol::Load("/nonexistent/model.kiln-graph"), Catch::Contains("cannot open"));
}

TEST_CASE("the reference interpreter runs LeNet and reports missing inputs", "[symbol]") {
  const Symbol net = LeNet();
  const auto shapes = net.InferShape({{"data", {2, 1, 28, 28}}});
  const auto names = net.ListArguments();
  std::map<std::string, Tensor> inputs;
  for (size_t i = 0; i < names.size(); ++i) {
    inputs[names[i]] = kiln::testing::RandomTensor(*shapes.arguments[i], i, -0.1, 0.1);
  }
  inputs["bn1_moving_mean"] = Tensor({50}, DType::kFloat32);
  inputs["bn1_moving_var"] = Values({50}, std::vector<double>(50, 1.0));
  const auto out = Interpret(net.ToGraph(), inputs);
  REQUIRE(out[0].shape() == Shape{2, 10});
  for (int64_t n = 0; n < 2; ++n) {
    double sum = 0;
    for (int64_t c = 0; c < 10; ++c) sum += out[0].GetDouble(n * 10 + c);
    CHECK(sum == Approx(1.0).epsilon(1e-5));  // softmax rows
  }
  inputs.erase("fc1_weight");
  CHECK_THROWS_WITH(Interpret(net.ToGraph(), inputs),
                    Catch::Contains("missing input 'fc1_weight' (expected shape (500,800))"));
  inputs["fc1_weight"] = Tensor({500, 801}, DType::kFloat32);
  CHECK_THROWS_WITH(Interpret(net.ToGraph(), inputs),
                    Catch::Contains("node 'fc1'") && Catch::Contains("(500,800)") && Catch::Contains("(500,801)"));
}
