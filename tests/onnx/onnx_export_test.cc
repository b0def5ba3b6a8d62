// ONNX export: graphs built with the Symbol API are exported, serialized, parsed,
// imported back and run through the reference interpreter beside the original; the
// models are checked for what ONNX's checker requires (inputs defined before use, unique
// names). Unexportable nodes are reported all at once. Where /opt/kiln-py has onnx and
// onnxruntime, the full checker and ONNX Runtime run the exported models too.
#include "symbol/onnx/onnx_export.h"

#include <catch2/catch.hpp>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include "passes/interpreter.h"
#include "runtime/error.h"
#include "runtime/file_util.h"
#include "runtime/npy.h"
#include "symbol/onnx/onnx.pb.h"
#include "symbol/onnx/onnx_import.h"
#include "symbol/onnx/onnx_tensor.h"
#include "symbol/ops_api.h"
#include "tests/op_test_util.h"
#include "tests/test_models.h"

using namespace kiln;
using namespace kiln::testing;
namespace fs = std::filesystem;

namespace {

// What ONNX's checker requires of the graph's names, cheaply: every node input is a
// graph input, an initializer or an earlier node's output; every value is defined once;
// initializer and node names are unique; every graph output is defined.
void CheckWellFormed(const onnx::ModelProto& model) {
  CHECK(model.ir_version() == 8);
  REQUIRE(model.opset_import_size() == 1);
  CHECK(model.opset_import(0).domain().empty());
  CHECK(model.opset_import(0).version() == 17);
  const onnx::GraphProto& g = model.graph();
  std::set<std::string> defined;
  for (const auto& input : g.input()) {
    INFO("graph input " << input.name());
    CHECK(defined.insert(input.name()).second);
    CHECK(input.type().tensor_type().has_shape());
  }
  for (const auto& init : g.initializer()) {
    INFO("initializer " << init.name());
    CHECK(defined.insert(init.name()).second);
  }
  std::set<std::string> node_names;
  for (const auto& node : g.node()) {
    INFO(node.op_type() << " node " << node.name());
    CHECK(node_names.insert(node.name()).second);
    for (const auto& in : node.input()) {
      INFO("input " << in);
      CHECK((in.empty() || defined.count(in) != 0));
    }
    for (const auto& out : node.output()) {
      INFO("output " << out);
      CHECK(defined.insert(out).second);
    }
  }
  for (const auto& out : g.output()) {
    INFO("graph output " << out.name());
    CHECK(defined.count(out.name()) != 0);
  }
}

std::vector<std::string> OpTypes(const onnx::ModelProto& model) {
  std::vector<std::string> ops;
  for (const auto& node : model.graph().node()) ops.push_back(node.op_type());
  return ops;
}

const onnx::NodeProto& FindNode(const onnx::ModelProto& model, const std::string& op_type) {
  for (const auto& node : model.graph().node()) {
    if (node.op_type() == op_type) return node;
  }
  throw std::runtime_error("no " + op_type + " node in the model");
}

const onnx::AttributeProto* FindAttr(const onnx::NodeProto& node, const std::string& name) {
  for (const auto& attr : node.attribute()) {
    if (attr.name() == name) return &attr;
  }
  return nullptr;
}

std::vector<int64_t> IntsAttr(const onnx::NodeProto& node, const std::string& name) {
  const auto* attr = FindAttr(node, name);
  REQUIRE(attr != nullptr);
  return {attr->ints().begin(), attr->ints().end()};
}

int64_t IntAttr(const onnx::NodeProto& node, const std::string& name) {
  const auto* attr = FindAttr(node, name);
  REQUIRE(attr != nullptr);
  return attr->i();
}

std::set<std::string> InputNames(const onnx::ModelProto& model) {
  std::set<std::string> names;
  for (const auto& input : model.graph().input()) names.insert(input.name());
  return names;
}

std::set<std::string> InitializerNames(const onnx::ModelProto& model) {
  std::set<std::string> names;
  for (const auto& init : model.graph().initializer()) names.insert(init.name());
  return names;
}

// Exports, checks, serializes, parses and imports `graph`; both graphs run on `inputs`
// and agree. Returns the exported model for further checks.
onnx::ModelProto RoundTrip(const Graph& graph, const std::map<std::string, Tensor>& inputs,
                           const std::map<std::string, Shape>& input_shapes = {}) {
  const onnx::ModelProto model = ExportOnnx(graph, input_shapes);
  CheckWellFormed(model);
  std::string bytes;
  REQUIRE(model.SerializeToString(&bytes));
  onnx::ModelProto parsed;
  REQUIRE(parsed.ParseFromString(bytes));
  const Graph imported = ImportOnnxModel(parsed);
  CHECK(imported.OutputNames() == graph.OutputNames());
  const auto expected = Interpret(graph, inputs);
  const auto actual = Interpret(imported, inputs);
  REQUIRE(actual.size() == expected.size());
  for (size_t i = 0; i < expected.size(); ++i) {
    INFO("output " << graph.OutputNames()[i]);
    CHECK(actual[i].dtype() == expected[i].dtype());
    KILN_CHECK_CLOSE(actual[i], expected[i], 1e-5, 1e-6);
  }
  return model;
}

// A one-operator graph over declared inputs, round-tripped on random values in
// [low, high).
onnx::ModelProto RoundTripOp(const Symbol& net, const std::map<std::string, Shape>& inputs, double low = -1.0,
                             double high = 1.0) {
  std::map<std::string, Tensor> values;
  uint64_t seed = 1;
  for (const auto& [name, shape] : inputs) values[name] = RandomTensor(shape, seed++, low, high);
  return RoundTrip(WithRandomParams(net, inputs, 11), values, inputs);
}

Symbol Var(const std::string& name, const Shape& shape) {
  return Symbol::Variable(name, shape);
}

std::string TempDir() {
  const char* dir = std::getenv("TEST_TMPDIR");
  const fs::path path = fs::path(dir != nullptr ? dir : fs::temp_directory_path().string()) / "onnx_export_test";
  fs::create_directories(path);
  return path.string();
}

}  // namespace

TEST_CASE("an MLP round-trips; the label is dropped and parameters become initializers", "[onnx][export]") {
  const Graph graph = WithRandomParams(TestMlp(16), {{"data", {4, 20}}}, 3);
  const auto model = RoundTrip(graph, {{"data", RandomTensor({4, 20}, 1)}}, {{"data", {4, 20}}});
  CHECK(InputNames(model) == std::set<std::string>{"data"});
  CHECK(InitializerNames(model) == std::set<std::string>{"fc1_weight", "fc1_bias", "fc2_weight", "fc2_bias"});
  CHECK(OpTypes(model) == std::vector<std::string>{"Gemm", "Relu", "Gemm", "Softmax"});
  CHECK(IntAttr(FindNode(model, "Gemm"), "transB") == 1);
  REQUIRE(model.graph().output_size() == 1);
  CHECK(model.graph().output(0).name() == "softmax_output");
  const auto& dims = model.graph().input(0).type().tensor_type().shape().dim();
  REQUIRE(dims.size() == 2);
  CHECK(dims[0].dim_value() == 4);
  CHECK(dims[1].dim_value() == 20);
}

TEST_CASE("LeNet round-trips", "[onnx][export]") {
  const Graph graph = WithRandomParams(TestLeNet(32), {{"data", {2, 1, 28, 28}}}, 5);
  const auto model = RoundTrip(graph, {{"data", RandomTensor({2, 1, 28, 28}, 2)}}, {{"data", {2, 1, 28, 28}}});
  CHECK(OpTypes(model) == std::vector<std::string>{"Conv", "BatchNormalization", "Tanh", "MaxPool", "Conv", "Relu",
                                                   "AveragePool", "Flatten", "Gemm", "Sigmoid", "Gemm", "Softmax"});
}

TEST_CASE("convolutions with groups, dilation, stride, padding and no bias", "[onnx][export]") {
  struct Case {
    AttrMap attrs;
    Shape data;
  };
  const std::vector<Case> cases = {
      {{{"kernel", {3, 3}}, {"num_filter", 4}}, {1, 2, 7, 7}},
      {{{"kernel", {3, 2}}, {"num_filter", 6}, {"num_group", 3}, {"stride", {2, 1}}, {"pad", {1, 2}}}, {2, 6, 9, 8}},
      {{{"kernel", {3, 3}}, {"num_filter", 4}, {"dilate", {2, 3}}, {"pad", {2, 1}}, {"no_bias", true}}, {1, 4, 10, 11}},
      {{{"kernel", {1, 1}}, {"num_filter", 8}, {"num_group", 8}, {"stride", {3, 3}}}, {1, 8, 7, 7}},
  };
  for (size_t i = 0; i < cases.size(); ++i) {
    INFO("case " << i);
    const auto model =
        RoundTripOp(sym::Convolution(Symbol::Variable("x"), cases[i].attrs, "conv"), {{"x", cases[i].data}});
    const auto& conv = FindNode(model, "Conv");
    CHECK(conv.input_size() == (i == 2 ? 2 : 3));
    if (i == 1) {
      CHECK(IntAttr(conv, "group") == 3);
      CHECK(IntsAttr(conv, "strides") == std::vector<int64_t>{2, 1});
      CHECK(IntsAttr(conv, "pads") == std::vector<int64_t>{1, 2, 1, 2});
    }
    if (i == 2) CHECK(IntsAttr(conv, "dilations") == std::vector<int64_t>{2, 3});
  }
}

TEST_CASE("pooling: max and avg, valid and full conventions, padding, global", "[onnx][export]") {
  const std::vector<AttrMap> cases = {
      {{"pool_type", "max"}, {"kernel", {3, 3}}, {"stride", {2, 2}}},
      {{"pool_type", "max"}, {"kernel", {3, 3}}, {"stride", {2, 2}}, {"pooling_convention", "full"}},
      {{"pool_type", "max"}, {"kernel", {2, 3}}, {"stride", {2, 1}}, {"pad", {1, 1}}},
      {{"pool_type", "avg"}, {"kernel", {3, 3}}, {"stride", {2, 2}}, {"pad", {1, 1}}},
      {{"pool_type", "avg"}, {"kernel", {3, 3}}, {"stride", {2, 2}}, {"pad", {1, 1}}, {"count_include_pad", false}},
      {{"pool_type", "avg"}, {"kernel", {2, 2}}, {"stride", {2, 2}}, {"pooling_convention", "full"}},
      {{"pool_type", "max"}, {"global_pool", true}},
      {{"pool_type", "avg"}, {"global_pool", true}},
  };
  const std::vector<std::string> ops = {"MaxPool",     "MaxPool",     "MaxPool",       "AveragePool",
                                        "AveragePool", "AveragePool", "GlobalMaxPool", "GlobalAveragePool"};
  for (size_t i = 0; i < cases.size(); ++i) {
    INFO("case " << i);
    const auto model = RoundTripOp(sym::Pooling(Symbol::Variable("x"), cases[i], "pool"), {{"x", {2, 3, 7, 8}}});
    CHECK(OpTypes(model) == std::vector<std::string>{ops[i]});
    const auto& node = model.graph().node(0);
    if (i == 1 || i == 5) CHECK(IntAttr(node, "ceil_mode") == 1);
    if (i == 0) CHECK(IntAttr(node, "ceil_mode") == 0);
    if (i == 3) CHECK(IntAttr(node, "count_include_pad") == 1);
    if (i == 4) CHECK(IntAttr(node, "count_include_pad") == 0);
  }
}

TEST_CASE("BatchNorm exports with the moving statistics; fix_gamma exports ones", "[onnx][export]") {
  for (const bool fix_gamma : {true, false}) {
    INFO("fix_gamma " << fix_gamma);
    const Symbol net = sym::BatchNorm(Symbol::Variable("x"), {{"fix_gamma", fix_gamma}, {"eps", 0.01}}, "bn");
    // Gamma is random, so fix_gamma=true differs from using it.
    const auto model = RoundTripOp(net, {{"x", {2, 3, 4, 5}}});
    const auto& bn = FindNode(model, "BatchNormalization");
    REQUIRE(bn.input_size() == 5);
    CHECK(bn.input(1) == (fix_gamma ? "bn_gamma_ones" : "bn_gamma"));
    CHECK(bn.output_size() == 1);
    CHECK(InitializerNames(model).count("bn_gamma") == (fix_gamma ? 0 : 1));
    CHECK(FindAttr(bn, "epsilon")->f() == Approx(0.01));
  }
  // A 2-d input normalizes its axis 1 as well.
  RoundTripOp(sym::BatchNorm(Symbol::Variable("x"), {{"fix_gamma", false}}, "bn"), {{"x", {4, 6}}});
}

TEST_CASE("BatchNorm's mean and var outputs cannot be exported when used", "[onnx][export]") {
  const Symbol bn = sym::BatchNorm(Var("x", {2, 3, 4, 4}), {{"output_mean_var", true}}, "bn");
  Graph only_y = WithRandomParams(bn[0], {{"x", {2, 3, 4, 4}}}, 1);
  RoundTrip(only_y, {{"x", RandomTensor({2, 3, 4, 4}, 1)}});

  Graph with_mean = WithRandomParams(Symbol::Group({bn[0], bn[1]}), {{"x", {2, 3, 4, 4}}}, 1);
  CHECK_THROWS_WITH(ExportOnnx(with_mean), Catch::Contains("BatchNorm node 'bn'") && Catch::Contains("mean"));
}

TEST_CASE("FullyConnected: flattening, over the last axis, without bias, weight as an input", "[onnx][export]") {
  SECTION("flatten=true on 4-d data: Flatten then Gemm") {
    const auto model =
        RoundTripOp(sym::FullyConnected(Symbol::Variable("x"), {{"num_hidden", 5}}, "fc"), {{"x", {2, 3, 2, 2}}});
    CHECK(OpTypes(model) == std::vector<std::string>{"Flatten", "Gemm"});
  }
  SECTION("flatten=false: MatMul with the transposed weight, then Add") {
    const auto model = RoundTripOp(
        sym::FullyConnected(Symbol::Variable("x"), {{"num_hidden", 5}, {"flatten", false}}, "fc"), {{"x", {2, 3, 4}}});
    CHECK(OpTypes(model) == std::vector<std::string>{"MatMul", "Add"});
    CHECK(InitializerNames(model) == std::set<std::string>{"fc_weight_T", "fc_bias"});
  }
  SECTION("flatten=false, no bias") {
    const auto model = RoundTripOp(
        sym::FullyConnected(Symbol::Variable("x"), {{"num_hidden", 5}, {"flatten", false}, {"no_bias", true}}, "fc"),
        {{"x", {3, 4}}});
    CHECK(OpTypes(model) == std::vector<std::string>{"MatMul"});
  }
  SECTION("a weight that is an input goes through Transpose") {
    const Symbol net =
        Symbol::CreateNamed("FullyConnected", {{"data", Var("x", {2, 3, 4})}, {"weight", Var("w", {5, 4})}},
                            {{"num_hidden", 5}, {"flatten", false}, {"no_bias", true}}, "fc");
    const auto model = RoundTrip(net.ToGraph(), {{"x", RandomTensor({2, 3, 4}, 1)}, {"w", RandomTensor({5, 4}, 2)}});
    CHECK(OpTypes(model) == std::vector<std::string>{"Transpose", "MatMul"});
    CHECK(InputNames(model) == std::set<std::string>{"x", "w"});
  }
}

TEST_CASE("unary operators and activations", "[onnx][export]") {
  const std::vector<std::pair<std::string, std::string>> unary = {
      {"relu", "Relu"},         {"sigmoid", "Sigmoid"},
      {"tanh", "Tanh"},         {"exp", "Exp"},
      {"log", "Log"},           {"sqrt", "Sqrt"},
      {"abs", "Abs"},           {"negative", "Neg"},
      {"erf", "Erf"},           {"reciprocal", "Reciprocal"},
      {"softsign", "Softsign"}, {"identity", "Identity"},
      {"BlockGrad", "Identity"}};
  for (const auto& [op, onnx_op] : unary) {
    INFO(op);
    // Positive inputs: log and sqrt are defined there.
    const auto model = RoundTripOp(Symbol::Create(op, {Symbol::Variable("x")}, {}, "u"), {{"x", {3, 4}}}, 0.1, 2.0);
    CHECK(OpTypes(model) == std::vector<std::string>{onnx_op});
  }
  CHECK(OpTypes(RoundTripOp(sym::square(Symbol::Variable("x"), {}, "u"), {{"x", {3, 4}}})) ==
        std::vector<std::string>{"Mul"});
  CHECK(OpTypes(RoundTripOp(sym::rsqrt(Symbol::Variable("x"), {}, "u"), {{"x", {3, 4}}}, 0.1, 2.0)) ==
        std::vector<std::string>{"Sqrt", "Reciprocal"});
  for (const auto& [act, onnx_op] : std::vector<std::pair<std::string, std::string>>{
           {"relu", "Relu"}, {"sigmoid", "Sigmoid"}, {"tanh", "Tanh"}, {"softsign", "Softsign"}}) {
    INFO(act);
    const auto model = RoundTripOp(sym::Activation(Symbol::Variable("x"), {{"act_type", act}}, "a"), {{"x", {3, 4}}});
    CHECK(OpTypes(model) == std::vector<std::string>{onnx_op});
  }
  const auto leaky =
      RoundTripOp(sym::LeakyReLU(Symbol::Variable("x"), {{"act_type", "leaky"}, {"slope", 0.3}}, "l"), {{"x", {3, 4}}});
  CHECK(FindAttr(FindNode(leaky, "LeakyRelu"), "alpha")->f() == Approx(0.3));
}

TEST_CASE("operators the importer lacks export to their ONNX forms", "[onnx][export]") {
  // Checked against ONNX Runtime in the last test; here their structure.
  const Symbol x = Var("x", {2, 3, 4, 4});
  const auto softplus = ExportOnnx(sym::Activation(x, {{"act_type", "softrelu"}}, "a").ToGraph());
  CHECK(OpTypes(softplus) == std::vector<std::string>{"Softplus"});
  const auto elu = ExportOnnx(sym::LeakyReLU(x, {{"act_type", "elu"}, {"slope", 0.7}}, "e").ToGraph());
  CHECK(FindAttr(FindNode(elu, "Elu"), "alpha")->f() == Approx(0.7));
  CHECK(OpTypes(ExportOnnx(sym::LeakyReLU(x, {{"act_type", "selu"}}, "s").ToGraph())) ==
        std::vector<std::string>{"Selu"});
  const Graph prelu =
      WithRandomParams(sym::LeakyReLU(Symbol::Variable("x"), {{"act_type", "prelu"}}, "p"), {{"x", {2, 3, 4, 4}}}, 1);
  const auto prelu_model = ExportOnnx(prelu, {{"x", {2, 3, 4, 4}}});
  CheckWellFormed(prelu_model);
  REQUIRE(prelu_model.graph().initializer_size() == 1);
  // One slope per channel, shaped to broadcast from the right over (N, C, H, W).
  const auto& slope = prelu_model.graph().initializer(0);
  CHECK(std::vector<int64_t>(slope.dims().begin(), slope.dims().end()) == std::vector<int64_t>{3, 1, 1});
}

TEST_CASE("binary operators with broadcasting and same shapes", "[onnx][export]") {
  const std::vector<std::pair<std::string, std::string>> broadcast = {
      {"broadcast_add", "Add"},   {"broadcast_sub", "Sub"},     {"broadcast_mul", "Mul"},    {"broadcast_div", "Div"},
      {"broadcast_power", "Pow"}, {"broadcast_maximum", "Max"}, {"broadcast_minimum", "Min"}};
  for (const auto& [op, onnx_op] : broadcast) {
    INFO(op);
    const auto model = RoundTripOp(Symbol::Create(op, {Symbol::Variable("a"), Symbol::Variable("b")}, {}, "op"),
                                   {{"a", {2, 3, 4}}, {"b", {3, 1}}}, 0.5, 2.0);
    CHECK(OpTypes(model) == std::vector<std::string>{onnx_op});
  }
  for (const auto& [op, onnx_op] : std::vector<std::pair<std::string, std::string>>{
           {"elemwise_add", "Add"}, {"elemwise_sub", "Sub"}, {"elemwise_mul", "Mul"}, {"elemwise_div", "Div"}}) {
    INFO(op);
    const auto model = RoundTripOp(Symbol::Create(op, {Symbol::Variable("a"), Symbol::Variable("b")}, {}, "op"),
                                   {{"a", {2, 3}}, {"b", {2, 3}}}, 0.5, 2.0);
    CHECK(OpTypes(model) == std::vector<std::string>{onnx_op});
  }
  const auto sum =
      RoundTripOp(sym::add_n({Symbol::Variable("a"), Symbol::Variable("b"), Symbol::Variable("c")}, {}, "s"),
                  {{"a", {2, 3}}, {"b", {2, 3}}, {"c", {2, 3}}});
  CHECK(OpTypes(sum) == std::vector<std::string>{"Sum"});
}

TEST_CASE("scalar operators take a 0-d initializer on the operator's side", "[onnx][export]") {
  const std::vector<std::string> ops = {"_plus_scalar",  "_minus_scalar", "_rminus_scalar",  "_mul_scalar",
                                        "_div_scalar",   "_rdiv_scalar",  "_maximum_scalar", "_minimum_scalar",
                                        "_power_scalar", "_rpower_scalar"};
  for (const auto& op : ops) {
    INFO(op);
    const auto model =
        RoundTripOp(Symbol::Create(op, {Symbol::Variable("x")}, {{"scalar", 1.7}}, "s"), {{"x", {3, 4}}}, 0.5, 2.0);
    REQUIRE(model.graph().initializer_size() == 1);
    const auto& scalar = model.graph().initializer(0);
    CHECK(scalar.dims_size() == 0);
    const auto& node = model.graph().node(0);
    const bool scalar_first = op.rfind("_r", 0) == 0;
    CHECK(node.input(scalar_first ? 0 : 1) == scalar.name());
  }
  // An integer tensor takes the scalar truncated, as kiln's operator does.
  const Graph ints =
      Symbol::Create("_mul_scalar", {Symbol::Variable("x", Shape{2, 3}, DType::kInt32)}, {{"scalar", 2.7}}, "s")
          .ToGraph();
  const auto model = RoundTrip(ints, {{"x", Arange({2, 3}, DType::kInt32)}});
  CHECK(model.graph().initializer(0).data_type() == onnx::TensorProto::INT32);
}

TEST_CASE("reshapes, transposes, concatenation and other layout operators", "[onnx][export]") {
  const Symbol x = Symbol::Variable("x");
  SECTION("Reshape with MXNet's special values becomes the resolved shape") {
    const auto model = RoundTripOp(sym::Reshape(x, {{"shape", {0, -1}}}, "r"), {{"x", {2, 3, 4}}});
    CHECK(OpTypes(model) == std::vector<std::string>{"Reshape"});
    const Tensor shape = TensorFromOnnx(model.graph().initializer(0), "shape");
    CHECK(shape.dtype() == DType::kInt64);
    CHECK(shape.ToDoubles() == std::vector<double>{2, 12});
    RoundTripOp(sym::Reshape(x, {{"shape", {-3, -2}}}, "r"), {{"x", {2, 3, 4}}});
    RoundTripOp(sym::Reshape(x, {{"shape", {-4, 1, 2, -2}}}, "r"), {{"x", {2, 3, 4}}});
  }
  SECTION("Flatten") {
    CHECK(OpTypes(RoundTripOp(sym::Flatten(x, {}, "f"), {{"x", {2, 3, 4}}})) == std::vector<std::string>{"Flatten"});
  }
  SECTION("transpose, with and without axes") {
    const auto model = RoundTripOp(sym::transpose(x, {{"axes", {1, 2, 0}}}, "t"), {{"x", {2, 3, 4}}});
    CHECK(IntsAttr(FindNode(model, "Transpose"), "perm") == std::vector<int64_t>{1, 2, 0});
    const auto reversed = RoundTripOp(sym::transpose(x, {}, "t"), {{"x", {2, 3, 4}}});
    CHECK(IntsAttr(FindNode(reversed, "Transpose"), "perm") == std::vector<int64_t>{2, 1, 0});
  }
  SECTION("Concat and stack") {
    const Symbol a = Symbol::Variable("a"), b = Symbol::Variable("b");
    RoundTripOp(sym::Concat({a, b}, {{"dim", 1}}, "c"), {{"a", {2, 3, 4}}, {"b", {2, 5, 4}}});
    RoundTripOp(sym::Concat({a, b}, {{"dim", -1}}, "c"), {{"a", {2, 3}}, {"b", {2, 1}}});
    const auto stacked = RoundTripOp(sym::stack({a, b}, {{"axis", -1}}, "s"), {{"a", {2, 3}}, {"b", {2, 3}}});
    CHECK(OpTypes(stacked) == std::vector<std::string>{"Unsqueeze", "Unsqueeze", "Concat"});
  }
  SECTION("expand_dims and squeeze") {
    RoundTripOp(sym::expand_dims(x, {{"axis", -1}}, "e"), {{"x", {2, 3}}});
    RoundTripOp(sym::expand_dims(x, {{"axis", 0}}, "e"), {{"x", {2, 3}}});
    const auto squeezed = RoundTripOp(sym::squeeze(x, {{"axis", {1}}}, "s"), {{"x", {2, 1, 3, 1}}});
    CHECK(OpTypes(squeezed) == std::vector<std::string>{"Squeeze"});
    RoundTripOp(sym::squeeze(x, {}, "s"), {{"x", {2, 1, 3, 1}}});
    // MXNet keeps one axis: (1, 1) squeezes to (1,), not to a scalar.
    const auto all = RoundTripOp(sym::squeeze(x, {}, "s"), {{"x", {1, 1}}});
    CHECK(OpTypes(all) == std::vector<std::string>{"Reshape"});
  }
  SECTION("broadcast_to, slice_axis, Pad") {
    RoundTripOp(sym::broadcast_to(x, {{"shape", {2, 0, 4}}}, "b"), {{"x", {1, 3, 1}}});
    RoundTripOp(sym::slice_axis(x, {{"axis", 1}, {"begin", -3}, {"end", std::monostate{}}}, "s"), {{"x", {2, 5}}});
    RoundTripOp(sym::slice_axis(x, {{"axis", 0}, {"begin", 1}, {"end", -1}}, "s"), {{"x", {4, 2}}});
    for (const std::string mode : {"constant", "edge", "reflect"}) {
      INFO(mode);
      RoundTripOp(sym::Pad(x, {{"mode", mode}, {"pad_width", {0, 0, 0, 0, 1, 2, 2, 1}}, {"constant_value", 0.5}}, "p"),
                  {{"x", {1, 2, 3, 4}}});
    }
  }
}

TEST_CASE("softmax axes, temperature and dtype; log_softmax; SoftmaxOutput forms", "[onnx][export]") {
  const Symbol x = Symbol::Variable("x");
  for (const int64_t axis : {0, 1, -1}) {
    INFO("axis " << axis);
    const auto model = RoundTripOp(sym::softmax(x, {{"axis", axis}}, "s"), {{"x", {2, 3, 4}}});
    CHECK(IntAttr(FindNode(model, "Softmax"), "axis") == (axis < 0 ? axis + 3 : axis));
    RoundTripOp(sym::log_softmax(x, {{"axis", axis}}, "s"), {{"x", {2, 3, 4}}});
  }
  const auto hot = RoundTripOp(sym::softmax(x, {{"temperature", 2.5}}, "s"), {{"x", {2, 5}}});
  CHECK(OpTypes(hot) == std::vector<std::string>{"Div", "Softmax"});
  const auto wide = RoundTripOp(sym::softmax(x, {{"dtype", "float64"}}, "s"), {{"x", {2, 5}}});
  CHECK(OpTypes(wide) == std::vector<std::string>{"Cast", "Softmax"});
  // Narrowing casts after the softmax.
  const auto narrow = ExportOnnx(sym::softmax(Var("x", {2, 5}), {{"dtype", "float16"}}, "s").ToGraph());
  CHECK(OpTypes(narrow) == std::vector<std::string>{"Softmax", "Cast"});
  CHECK(narrow.graph().output(0).type().tensor_type().elem_type() == onnx::TensorProto::FLOAT16);

  const auto multi = RoundTripOp(sym::SoftmaxOutput(x, Symbol(), {{"multi_output", true}}, "so"), {{"x", {2, 3, 4}}});
  CHECK(IntAttr(FindNode(multi, "Softmax"), "axis") == 1);
  const auto last = RoundTripOp(sym::SoftmaxOutput(x, Symbol(), {{"preserve_shape", true}}, "so"), {{"x", {2, 3, 4}}});
  CHECK(IntAttr(FindNode(last, "Softmax"), "axis") == 2);
  // Otherwise over everything but axis 0.
  const auto flat = RoundTripOp(sym::SoftmaxOutput(x, Symbol(), {}, "so"), {{"x", {2, 3, 4}}});
  CHECK(OpTypes(flat) == std::vector<std::string>{"Flatten", "Softmax", "Reshape"});
}

TEST_CASE("clip takes its bounds as initializers", "[onnx][export]") {
  const auto model =
      RoundTripOp(sym::clip(Symbol::Variable("x"), {{"a_min", -0.3}, {"a_max", 0.4}}, "c"), {{"x", {3, 5}}});
  const auto& node = FindNode(model, "Clip");
  REQUIRE(node.input_size() == 3);
  CHECK(InitializerNames(model) == std::set<std::string>{node.input(1), node.input(2)});
}

TEST_CASE("dot and batch_dot with transposes", "[onnx][export]") {
  const Symbol a = Symbol::Variable("a"), b = Symbol::Variable("b");
  for (const bool ta : {false, true}) {
    for (const bool tb : {false, true}) {
      INFO("transpose_a " << ta << ", transpose_b " << tb);
      const Shape sa = ta ? Shape{4, 3} : Shape{3, 4};
      const Shape sb = tb ? Shape{5, 4} : Shape{4, 5};
      const auto model =
          RoundTripOp(sym::dot(a, b, {{"transpose_a", ta}, {"transpose_b", tb}}, "d"), {{"a", sa}, {"b", sb}});
      CHECK(OpTypes(model).size() == 1u + ta + tb);
      const Shape ba = ta ? Shape{2, 4, 3} : Shape{2, 3, 4};
      const Shape bb = tb ? Shape{2, 5, 4} : Shape{2, 4, 5};
      const auto batched =
          RoundTripOp(sym::batch_dot(a, b, {{"transpose_a", ta}, {"transpose_b", tb}}, "d"), {{"a", ba}, {"b", bb}});
      if (ta) CHECK(IntsAttr(FindNode(batched, "Transpose"), "perm") == std::vector<int64_t>{0, 2, 1});
    }
  }
  CHECK_THROWS_WITH(ExportOnnx(sym::dot(Var("a", {3}), Var("b", {3, 2}), {}, "d").ToGraph()),
                    Catch::Contains("only 2-d operands"));
}

TEST_CASE("reductions: axes, keepdims, exclude, everything", "[onnx][export]") {
  const Symbol x = Symbol::Variable("x");
  const std::vector<std::pair<std::string, std::string>> ops = {
      {"sum", "ReduceSum"}, {"mean", "ReduceMean"}, {"max", "ReduceMax"}, {"min", "ReduceMin"}, {"prod", "ReduceProd"}};
  const std::vector<AttrMap> cases = {{{"axis", {1}}},
                                      {{"axis", {0, 2}}, {"keepdims", true}},
                                      {{"axis", {1}}, {"exclude", true}},
                                      {},
                                      {{"keepdims", true}}};
  for (const auto& [op, onnx_op] : ops) {
    for (size_t i = 0; i < cases.size(); ++i) {
      INFO(op << " case " << i);
      const auto model = RoundTripOp(Symbol::Create(op, {x}, cases[i], "r"), {{"x", {2, 3, 4}}}, 0.5, 1.5);
      const auto& node = FindNode(model, onnx_op);
      // ReduceSum takes its axes as an input at opset 13 on, the others as an attribute.
      CHECK((op == "sum") == (node.input_size() == 2));
      CHECK((op == "sum") == (FindAttr(node, "axes") == nullptr));
      // Everything reduced without keepdims: MXNet's (1,) after ONNX's scalar.
      if (i == 3) CHECK(OpTypes(model).back() == "Reshape");
    }
  }
}

TEST_CASE("Dropout, Cast and graph outputs", "[onnx][export]") {
  const Symbol x = Symbol::Variable("x");
  CHECK(OpTypes(RoundTripOp(sym::Dropout(x, {{"p", 0.3}}, "d"), {{"x", {3, 4}}})) ==
        std::vector<std::string>{"Identity"});
  CHECK_THROWS_WITH(ExportOnnx(sym::Dropout(Var("x", {3, 4}), {{"p", 0.3}, {"mode", "always"}}, "d").ToGraph()),
                    Catch::Contains("mode always"));
  for (const DType dtype : {DType::kInt32, DType::kFloat64, DType::kFloat16, DType::kInt16, DType::kUInt16,
                            DType::kUInt32, DType::kUInt64, DType::kBFloat16}) {
    INFO(DTypeName(dtype));
    const auto model = RoundTripOp(sym::Cast(x, {{"dtype", dtype}}, "c"), {{"x", {3, 4}}}, -3.0, 3.0);
    CHECK(IntAttr(FindNode(model, "Cast"), "to") == static_cast<int64_t>(DTypeToOnnx(dtype)));
  }

  // One entry as two outputs, and an input as an output: named as the graph says.
  const Symbol input = Var("x", {2, 3});
  const Symbol y = sym::relu(input, {}, "r");
  Graph graph = Symbol::Group({y, y, input}).ToGraph();
  graph.output_names = {"first", "second", "x"};
  const auto model = RoundTrip(graph, {{"x", RandomTensor({2, 3}, 1)}});
  CHECK(OpTypes(model) == std::vector<std::string>{"Relu", "Identity"});
  CHECK(FindNode(model, "Relu").output(0) == "first");
}

TEST_CASE("every unexportable node is listed in one error", "[onnx][export]") {
  const Symbol x = Var("x", {2, 3, 4, 4});
  Symbol y = sym::Pooling(x, {{"pool_type", "sum"}, {"kernel", {2, 2}}}, "sumpool");
  y = sym::LeakyReLU(y, {{"act_type", "gelu"}}, "gelu");
  y = Symbol::Create("pick", {sym::Flatten(y, {}, "flat"), Var("index", {2})}, {{"axis", 1}}, "picker");
  try {
    ExportOnnx(y.ToGraph());
    FAIL("export succeeded");
  } catch (const Error& e) {
    const std::string message = e.what();
    INFO(message);
    CHECK(message.find("3 node(s)") != std::string::npos);
    CHECK(message.find("Pooling node 'sumpool': pool_type sum") != std::string::npos);
    CHECK(message.find("LeakyReLU node 'gelu': act_type gelu") != std::string::npos);
    CHECK(message.find("pick node 'picker': operator pick has no ONNX mapping") != std::string::npos);
  }
}

TEST_CASE("inputs need shapes: declared or given", "[onnx][export]") {
  const Graph graph = sym::relu(Symbol::Variable("data"), {}, "r").ToGraph();
  CHECK_THROWS_WITH(ExportOnnx(graph), Catch::Contains("'data'") && Catch::Contains("input_shapes"));
  const auto model = ExportOnnx(graph, {{"data", {5, 2}}});
  CHECK(model.graph().input(0).type().tensor_type().shape().dim(1).dim_value() == 2);
  CHECK_THROWS_WITH(ExportOnnx(graph, {{"nothing", {1}}}), Catch::Contains("nothing"));
}

TEST_CASE("every exportable operator is a registered kiln operator", "[onnx][export]") {
  const auto ops = OnnxExportableOps();
  CHECK(ops.size() >= 60);
  for (const auto& op : ops) {
    INFO(op);
    CHECK(OpRegistry::Global().Find(op) != nullptr);
  }
}

TEST_CASE("SaveOnnx writes a file that loads back", "[onnx][export]") {
  const Graph graph = WithRandomParams(TestLeNet(32), {{"data", {1, 1, 28, 28}}}, 9);
  const std::string path = TempDir() + "/lenet.onnx";
  SaveOnnx(path, graph, {{"data", {1, 1, 28, 28}}});
  onnx::ModelProto parsed;
  REQUIRE(parsed.ParseFromString(ReadFile(path)));
  CheckWellFormed(parsed);
  const Graph imported = ImportOnnx(path);
  const Tensor data = RandomTensor({1, 1, 28, 28}, 4);
  KILN_CHECK_CLOSE(Interpret(imported, {{"data", data}})[0], Interpret(graph, {{"data", data}})[0], 1e-5, 1e-6);
}

// ONNX's full checker (with shape inference) and ONNX Runtime on exported models,
// against kiln's reference interpreter.
TEST_CASE("ONNX's checker and ONNX Runtime accept the exported models", "[onnx][export][python]") {
  const std::string python = "/opt/kiln-py/bin/python";
  if (!fs::exists(python) || std::system((python + " -c 'import onnx, onnxruntime' 2>/dev/null").c_str()) != 0) {
    WARN("SKIPPED: " << python << " with onnx and onnxruntime is not available (tools/install_python_deps.sh)");
    SUCCEED();
    return;
  }
  const std::string dir = TempDir();
  struct Model {
    std::string name;
    Graph graph;
    std::map<std::string, Tensor> inputs;
  };
  std::vector<Model> models;
  models.push_back({"lenet",
                    WithRandomParams(TestLeNet(32), {{"data", {2, 1, 28, 28}}}, 5),
                    {{"data", RandomTensor({2, 1, 28, 28}, 1)}}});
  {
    // The mappings the importer cannot check, and the input-form operators of opset 13.
    // Each activation reads the (signed) input, so that their negative sides count.
    const Symbol in = Symbol::Variable("x");
    const Symbol activations = sym::add_n({sym::LeakyReLU(in, {{"act_type", "prelu"}}, "prelu"),
                                           sym::Activation(in, {{"act_type", "softrelu"}}, "softplus"),
                                           sym::LeakyReLU(in, {{"act_type", "elu"}, {"slope", 0.7}}, "elu"),
                                           sym::LeakyReLU(in, {{"act_type", "selu"}}, "selu")},
                                          {}, "activations");
    Symbol x = sym::Pooling(
        activations, {{"pool_type", "max"}, {"kernel", {3, 3}}, {"stride", {2, 2}}, {"pooling_convention", "full"}},
        "pool");
    x = sym::Pad(x, {{"mode", "reflect"}, {"pad_width", {0, 0, 0, 0, 1, 1, 1, 1}}}, "pad");
    Symbol s = sym::sum(x, {{"axis", {2, 3}}}, "sum");
    s = sym::expand_dims(s, {{"axis", 1}}, "expand");
    s = sym::squeeze(s, {{"axis", {1}}}, "squeeze");
    s = sym::mean(s, {}, "mean");
    Symbol t = sym::softmax(sym::transpose(x, {{"axes", {0, 2, 3, 1}}}, "t"), {{"temperature", 2.0}}, "softmax");
    t = sym::FullyConnected(t, {{"num_hidden", 4}, {"flatten", false}}, "fc");
    const Symbol net =
        Symbol::Group({activations, sym::clip(activations, {{"a_min", -0.5}, {"a_max", 3.0}}, "clip"), s, t,
                       sym::broadcast_to(sym::slice_axis(x, {{"axis", 1}, {"begin", 0}, {"end", 1}}, "sl"),
                                         {{"shape", {2, 3, 0, 0}}}, "bt")});
    models.push_back({"ops", WithRandomParams(net, {{"x", {2, 3, 5, 5}}}, 7), {{"x", RandomTensor({2, 3, 5, 5}, 2)}}});
  }
  std::string command = python + " " + dir + "/run_ort.py";
  for (const auto& m : models) {
    const std::string base = dir + "/" + m.name;
    std::map<std::string, Shape> shapes;
    for (const auto& [name, value] : m.inputs) {
      SaveNpy(base + "." + name + ".npy", value);
      shapes[name] = value.shape();
    }
    SaveOnnx(base + ".onnx", m.graph, shapes);
    command += " " + base + ".onnx";
  }
  WriteFileAtomic(dir + "/run_ort.py", R"(import sys
import numpy as np
import onnx
import onnxruntime as ort

for path in sys.argv[1:]:
    onnx.checker.check_model(path, full_check=True)
    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    base = path[: -len(".onnx")]
    feeds = {i.name: np.load(base + "." + i.name + ".npy") for i in session.get_inputs()}
    for output, value in zip(session.get_outputs(), session.run(None, feeds)):
        np.save(base + ".out." + output.name + ".npy", value)
)");
  REQUIRE(std::system(command.c_str()) == 0);
  for (const auto& m : models) {
    const auto expected = Interpret(m.graph, m.inputs);
    const auto names = m.graph.OutputNames();
    for (size_t i = 0; i < expected.size(); ++i) {
      INFO(m.name << " output " << names[i]);
      const Tensor actual = LoadNpy(dir + "/" + m.name + ".out." + names[i] + ".npy");
      // ONNX Runtime computes in float32, the reference accumulates in double.
      KILN_CHECK_CLOSE(actual, expected[i], 1e-4, 1e-5);
    }
  }
}
