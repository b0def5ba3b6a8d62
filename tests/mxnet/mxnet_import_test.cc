// MXNet model files as MXNet 1.9.1 saved them (tests/data/mxnet/models, from
// tools/mxnet/gen_models.py): Module checkpoints of Symbol-API networks (SoftmaxOutput
// heads, BatchNorm, Dropout) and a Gluon HybridBlock export, imported, run by the
// reference interpreter and compiled, each against MXNet's own output at 1e-4.
#include "symbol/mxnet/mxnet_import.h"

#include <catch2/catch.hpp>
#include <filesystem>

#include "codegen/compiler.h"
#include "passes/graph_io.h"
#include "passes/interpreter.h"
#include "runtime/error.h"
#include "runtime/file_util.h"
#include "runtime/mxnet_params.h"
#include "runtime/npy.h"
#include "symbol/mxnet/mxnet_export.h"
#include "tests/op_test_util.h"

using namespace kiln;
using namespace kiln::testing;

namespace {

const std::string kModels = "tests/data/mxnet/models/";

std::string ImportError(const std::string& json, const ParamList* params = nullptr) {
  try {
    ImportMxnetJson(json, params, {}, "m-symbol.json");
  } catch (const Error& e) {
    return e.what();
  }
  return "imported";
}

}  // namespace

TEST_CASE("MXNet checkpoints and Gluon exports match MXNet's outputs, interpreted and compiled", "[mxnet]") {
  for (const std::string name : {"mlp", "lenet", "cnn", "gluon_convnet"}) {
    INFO(name);
    const Tensor x = LoadNpy(kModels + name + ".input.npy");
    const Tensor expected = LoadNpy(kModels + name + ".output.npy");
    const Graph graph =
        ImportMxnet(kModels + name + "-symbol.json", kModels + name + "-0000.params", {{{"data", x.shape()}}});
    const auto interpreted = Interpret(graph, {{"data", x}});
    REQUIRE(interpreted.size() == 1);
    KILN_CHECK_CLOSE(interpreted[0], expected, 1e-4, 1e-5);

    CompileOptions options;
    options.input_shapes = {{"data", x.shape()}};
    const auto executor = CompileJit(graph, options);
    KILN_CHECK_CLOSE(executor->Run({{"data", x}})[0], expected, 1e-4, 1e-5);
  }
}

TEST_CASE("MXNet symbol files: every spelling of attributes and inputs", "[mxnet]") {
  // MXNet 0.x wrote "param" and "attr" and two-element inputs; hidden keys give a
  // variable's shape and dtype.
  const std::string old_style = R"json({
    "nodes": [
      {"op": "null", "name": "data", "attr": {"__shape__": "(2, 3)",
  "__dtype__" : "0"
},
    "inputs" : []
},
      {"op": "null", "name": "w", "inputs": []},
      {"op": "FullyConnected", "name": "fc", "param": {"num_hidden": "4", "no_bias": "True"},
       "inputs": [[0, 0], [1, 0]]},
      {"op": "Activation", "name": "act", "attr": {"act_type": "relu"}, "inputs": [[2, 0, 0]]}
    ],
    "arg_nodes": [0, 1],
    "heads": [[3, 0]]
})json";
  REQUIRE(LooksLikeMxnetSymbol(old_style));
  ParamList params;
  params.tensors = {{"arg:w", RandomTensor({4, 3}, 5)}};
  const Graph graph = ImportMxnetJson(old_style, &params);
  CHECK(graph.params.count("w") == 1);
  const Tensor x = RandomTensor({2, 3}, 6);
  const Tensor out = Interpret(graph, {{"data", x}})[0];
  CHECK(out.shape() == Shape{2, 4});
}

TEST_CASE("MXNet's hidden keys are kept as annotations through kiln's graph format and back", "[mxnet]") {
  const std::string text = R"json({
    "nodes": [
      {"op": "null", "name": "data", "attrs": {"__shape__": "(2, 3)", "__dtype__": "0"}, "inputs": []},
      {"op": "null", "name": "w", "attrs": {"__init__": "[\"xavier\", {\"magnitude\": 2}]",
                                            "__lr_mult__": "0.5"}, "inputs": []},
      {"op": "FullyConnected", "name": "fc", "attrs": {"num_hidden": "4", "no_bias": "True",
                                                        "__wd_mult__": "0"}, "inputs": [[0, 0, 0], [1, 0, 0]]}
    ],
    "arg_nodes": [0, 1],
    "heads": [[2, 0, 0]]
})json";
  const Graph graph = ImportMxnetJson(text, nullptr);
  std::map<std::string, const Node*> by_name;
  const IndexedGraph indexed(graph.outputs);
  for (size_t id = 0; id < indexed.num_nodes(); ++id) by_name[indexed.node(id).name] = &indexed.node(id);
  CHECK(by_name.at("data")->annotations.empty());  // became the declared shape and dtype
  CHECK(by_name.at("data")->shape == Shape{2, 3});
  const std::map<std::string, std::string> w = {{"__init__", "[\"xavier\", {\"magnitude\": 2}]"},
                                                {"__lr_mult__", "0.5"}};
  CHECK(by_name.at("w")->annotations == w);
  CHECK(by_name.at("fc")->annotations == std::map<std::string, std::string>{{"__wd_mult__", "0"}});

  // kiln's graph format keeps them, and MXNet's symbol file gets them back.
  const Graph reloaded = GraphFromProto(GraphToProto(graph));
  std::map<std::string, std::map<std::string, std::string>> kept;
  const IndexedGraph reloaded_nodes(reloaded.outputs);
  for (size_t id = 0; id < reloaded_nodes.num_nodes(); ++id) {
    kept[reloaded_nodes.node(id).name] = reloaded_nodes.node(id).annotations;
  }
  CHECK(kept.at("w") == w);
  CHECK(kept.at("fc").at("__wd_mult__") == "0");
  const std::string exported = ExportMxnetSymbol(reloaded);
  CHECK_THAT(exported, Catch::Contains("\"__lr_mult__\": \"0.5\"") && Catch::Contains("\"__wd_mult__\": \"0\""));
  const Graph again = ImportMxnetJson(exported, nullptr);
  std::map<std::string, std::map<std::string, std::string>> back;
  const IndexedGraph again_nodes(again.outputs);
  for (size_t id = 0; id < again_nodes.num_nodes(); ++id)
    back[again_nodes.node(id).name] = again_nodes.node(id).annotations;
  CHECK(back == kept);
}

TEST_CASE("bad MXNet symbol files get one clear error each", "[mxnet][errors]") {
  CHECK_THAT(ImportError("{not json"), Catch::Contains("is not JSON"));
  CHECK_THAT(ImportError(R"json({"nodes": 3})json"), Catch::Contains("not an MXNet symbol file"));
  const std::string fused = R"json({"nodes": [
      {"op": "null", "name": "data", "inputs": []},
      {"op": "_sg_mkldnn_conv", "name": "conv0", "inputs": [[0, 0, 0]]},
      {"op": "_contrib_quantize_v2", "name": "q", "inputs": [[1, 0, 0]]}],
    "heads": [[2, 0, 0]]})json";
  CHECK_THAT(ImportError(fused), Catch::Contains("2 nodes use operators kiln does not have") &&
                                     Catch::Contains("_sg_mkldnn_conv (node 'conv0')") &&
                                     Catch::Contains("_contrib_quantize_v2 (node 'q')"));
  const std::string forward = R"json({"nodes": [
      {"op": "Activation", "name": "a", "attrs": {"act_type": "relu"}, "inputs": [[1, 0, 0]]},
      {"op": "null", "name": "data", "inputs": []}], "heads": [[0, 0, 0]]})json";
  CHECK_THAT(ImportError(forward), Catch::Contains("refers to node 1, which does not come before it"));
  const std::string bad_attr = R"json({"nodes": [
      {"op": "null", "name": "data", "inputs": []},
      {"op": "Activation", "name": "a", "attrs": {"act_type": "swish"}, "inputs": [[0, 0, 0]]}],
    "heads": [[1, 0, 0]]})json";
  CHECK_THAT(ImportError(bad_attr), Catch::Contains("node 1 'a' (Activation)") && Catch::Contains("swish"));
  const std::string bad_output = R"json({"nodes": [
      {"op": "null", "name": "data", "inputs": []}], "heads": [[0, 3, 0]]})json";
  CHECK_THAT(ImportError(bad_output), Catch::Contains("refers to output 3 of node 'data', which has 1"));
  // A parameter file of another model.
  ParamList other;
  other.tensors = {{"arg:conv9_weight", RandomTensor({1}, 1)}};
  const std::string json = ReadFile(kModels + "mlp-symbol.json");
  CHECK_THAT(ImportError(json, &other), Catch::Contains("'arg:conv9_weight', which is no variable of the symbol"));
  // Shapes that disagree with the symbol: reported at shape inference, naming the node.
  ParamList wrong = LoadMxnetParams(kModels + "mlp-0000.params");
  for (auto& [name, tensor] : wrong.tensors) {
    if (name == "arg:fc1_weight") tensor = RandomTensor({7, 20}, 2);
  }
  const Graph graph = ImportMxnetJson(json, &wrong);
  CompileOptions options;
  options.input_shapes = {{"data", {2, 20}}};
  CHECK_THROWS_WITH(CompileJit(graph, options), Catch::Contains("fc1") && Catch::Contains("(7,20)"));
}

// Found by the mxnet_symbol fuzz target: a name used twice imported, and the graph then
// failed to load again once saved (tests/fuzz/regressions/mxnet_symbol/).
TEST_CASE("a node name used twice is refused at import", "[mxnet][errors][regression]") {
  const std::string twice = R"json({"nodes": [
      {"op": "null", "name": "data", "inputs": []},
      {"op": "Activation", "name": "a", "attrs": {"act_type": "relu"}, "inputs": [[0, 0, 0]]},
      {"op": "Activation", "name": "a", "attrs": {"act_type": "tanh"}, "inputs": [[1, 0, 0]]}],
    "heads": [[2, 0, 0]]})json";
  CHECK_THAT(ImportError(twice), Catch::Contains("node 2 'a' (Activation): a second node of that name"));
}

TEST_CASE("a graph exported as MXNet files imports back to the same outputs", "[mxnet][export]") {
  const auto dir = std::filesystem::temp_directory_path() / ("kiln_mxnet_export_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  for (const std::string name : {"lenet", "cnn", "gluon_convnet"}) {
    INFO(name);
    const Tensor x = LoadNpy(kModels + name + ".input.npy");
    const Graph graph =
        ImportMxnet(kModels + name + "-symbol.json", kModels + name + "-0000.params", {{{"data", x.shape()}}});
    const std::string prefix = (dir / name).string();
    const auto written = ExportMxnet(graph, prefix);
    REQUIRE(written.size() == 2);
    // BatchNorm's moving statistics are auxiliary states, the rest arguments, as MXNet
    // names them in a checkpoint.
    const ParamList saved = LoadMxnetParams(prefix + "-0000.params");
    const ParamList original = LoadMxnetParams(kModels + name + "-0000.params");
    CHECK(saved.AsMap().size() == original.AsMap().size());
    for (const auto& [key, tensor] : original.tensors) {
      INFO(key);
      REQUIRE(saved.AsMap().count(key) == 1);
      CHECK(saved.AsMap().at(key).BitwiseEquals(tensor));
    }
    const Graph back = ImportMxnet(prefix + "-symbol.json", prefix + "-0000.params", {{{"data", x.shape()}}});
    KILN_CHECK_CLOSE(Interpret(back, {{"data", x}})[0], LoadNpy(kModels + name + ".output.npy"), 1e-4, 1e-5);
  }
  std::filesystem::remove_all(dir);
}
