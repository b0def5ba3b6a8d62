// The simplification passes, the pass manager and the verifier, on hand-made graphs:
// each pass changes what it should, records it, and leaves the outputs as the reference
// interpreter computes them on the unoptimized graph.
#include <catch2/catch.hpp>

#include "codegen/compiler.h"
#include "passes/graph_rewrite.h"
#include "passes/interpreter.h"
#include "passes/pass_manager.h"
#include "passes/verify_graph.h"
#include "runtime/error.h"
#include "symbol/ops_api.h"
#include "symbol/symbol.h"
#include "tests/graph_runner.h"
#include "tests/op_test_util.h"
#include "tests/test_models.h"

using namespace kiln;
using namespace kiln::testing;

namespace {

struct Compiled {
  LoweredGraph lowered;
  std::vector<Tensor> outputs;
};

Compiled CompileAndRun(const Graph& graph, const std::map<std::string, Tensor>& inputs, int level,
                       PassOptions passes = {}, bool embed_params = true) {
  CompileOptions options;
  for (const auto& [name, value] : inputs) options.input_shapes[name] = value.shape();
  options.graph_opt_level = level;
  options.passes = std::move(passes);
  options.embed_params = embed_params;
  Compiled compiled{LowerGraph(graph, options), {}};
  compiled.outputs = RunWithInterpreter(compiled.lowered, inputs, graph.params);
  INFO(CheckMemoryPlan(compiled.lowered.memory_problem, compiled.lowered.memory_plan));
  CHECK(CheckMemoryPlan(compiled.lowered.memory_problem, compiled.lowered.memory_plan).empty());
  return compiled;
}

// Changes of `pass` in the artifact's report (empty when it did nothing or did not run).
std::map<std::string, int64_t> ChangesOf(const LoweredGraph& lowered, const std::string& pass) {
  for (const auto& record : lowered.artifact.report().passes()) {
    if (record.name() == pass) return {record.changes().begin(), record.changes().end()};
  }
  return {};
}

void CheckMatchesReference(const Graph& graph, const std::map<std::string, Tensor>& inputs, int level,
                           double rtol = 1e-5, double atol = 1e-6) {
  const auto expected = Interpret(graph, inputs);
  const auto got = CompileAndRun(graph, inputs, level).outputs;
  REQUIRE(got.size() == expected.size());
  for (size_t i = 0; i < got.size(); ++i) KILN_CHECK_CLOSE(got[i], expected[i], rtol, atol);
}

Graph ToGraphWithParams(const Symbol& net, const std::map<std::string, Shape>& shapes, uint64_t seed) {
  return WithRandomParams(net, shapes, seed);
}

}  // namespace

TEST_CASE("identities, inference Dropout, x*1, x-0, x+(-0) and same-dtype Cast are removed", "[passes]") {
  Symbol x = Symbol::Variable("data");
  Symbol y = Symbol::Create("identity", {x}, {}, "copy");
  y = Symbol::Create("BlockGrad", {y}, {}, "stop");
  y = Symbol::Create("Dropout", {y}, {{"p", 0.5}}, "drop");
  y = y * 1.0;
  y = y - 0.0;
  y = Symbol::Create("_plus_scalar", {y}, {{"scalar", -0.0}}, "plus_negative_zero");
  y = y / 1.0;
  y = Symbol::Create("Cast", {y}, {{"dtype", "float32"}}, "cast");
  y = Symbol::Create("transpose", {y}, {{"axes", {0, 1}}}, "same");
  y = Symbol::Create("exp", {y}, {}, "exp");
  const Graph graph = y.ToGraph();
  const std::map<std::string, Tensor> inputs = {{"data", RandomTensor({3, 4}, 1)}};
  const Compiled compiled = CompileAndRun(graph, inputs, 1);
  CHECK(ChangesOf(compiled.lowered, "remove_identities").at("removed") == 9);
  CHECK(compiled.lowered.artifact.kernels_size() == 1);
  KILN_CHECK_CLOSE(compiled.outputs[0], Interpret(graph, inputs)[0], 0, 0);
  // A Cast that converts, x * 2, and x + 0 (-0 + 0 is +0) stay.
  Symbol z = Symbol::Create("Cast", {(Symbol::Variable("data") + 0.0) * 2.0}, {{"dtype", "float64"}}, "widen");
  const Compiled kept = CompileAndRun(z.ToGraph(), inputs, 1);
  CHECK(ChangesOf(kept.lowered, "remove_identities").empty());
}

TEST_CASE("views of views merge, and views alias their source instead of copying", "[passes]") {
  Symbol x = Symbol::Variable("data");
  Symbol y = sym::Flatten(Symbol::Create("exp", {x}, {}, "exp"), {}, "flat");
  y = Symbol::Create("Reshape", {y}, {{"shape", {4, 6}}}, "r1");
  y = Symbol::Create("expand_dims", {y}, {{"axis", 0}}, "e1");
  y = Symbol::Create("relu", {y}, {}, "relu");
  const Graph graph = y.ToGraph();
  const std::map<std::string, Tensor> inputs = {{"data", RandomTensor({2, 3, 4}, 2)}};
  const Compiled compiled = CompileAndRun(graph, inputs, 1);
  CHECK(ChangesOf(compiled.lowered, "merge_views").at("merged") == 2);
  // exp and relu: the merged view is no kernel.
  CHECK(compiled.lowered.artifact.kernels_size() == 2);
  KILN_CHECK_CLOSE(compiled.outputs[0], Interpret(graph, inputs)[0], 0, 0);
  // A view that is an output is copied into the output buffer; one of an input aliases it.
  Symbol v = Symbol::Create("Reshape", {Symbol::Variable("data")}, {{"shape", {6, 4}}}, "v");
  const Compiled out = CompileAndRun(Symbol::Group({v, Symbol::Create("exp", {v}, {}, "e")}).ToGraph(), inputs, 0);
  CHECK(out.lowered.artifact.kernels_size() == 2);
  KILN_CHECK_CLOSE(out.outputs[0], Interpret(Symbol::Group({v}).ToGraph(), inputs)[0], 0, 0);
}

TEST_CASE("transposes merge, cancel, and fold into GEMM flags", "[passes]") {
  const std::map<std::string, Tensor> inputs = {
      {"a", RandomTensor({2, 3, 4}, 3)}, {"m", RandomTensor({5, 3}, 4)}, {"n", RandomTensor({5, 4}, 5)}};
  Symbol a = Symbol::Variable("a");
  Symbol t = Symbol::Create("transpose", {a}, {{"axes", {0, 2, 1}}}, "t1");
  Symbol merged = Symbol::Create("transpose", {t}, {{"axes", {1, 0, 2}}}, "t2");
  Symbol cancel = Symbol::Create("transpose", {t}, {{"axes", {0, 2, 1}}}, "t3");
  Symbol product = Symbol::Create(
      "dot", {Symbol::Create("transpose", {Symbol::Variable("m")}, {}, "mt"), Symbol::Variable("n")}, {}, "prod");
  const Graph graph =
      Symbol::Group({Symbol::Create("exp", {merged}, {}, "e1"), Symbol::Create("exp", {cancel}, {}, "e2"), product})
          .ToGraph();
  const Compiled compiled = CompileAndRun(graph, inputs, 1);
  CHECK(ChangesOf(compiled.lowered, "merge_transposes").at("merged") == 2);
  CHECK(ChangesOf(compiled.lowered, "fold_transpose_into_gemm").at("folded") == 1);
  const auto expected = Interpret(graph, inputs);
  for (size_t i = 0; i < expected.size(); ++i) KILN_CHECK_CLOSE(compiled.outputs[i], expected[i], 1e-6, 1e-6);
  // e1 + its transpose, e2 alone, the dot: 3 operator nodes remain beside exp.
  CHECK(compiled.lowered.artifact.report().kernels_before_fusion() == 4);
}

TEST_CASE("BatchNorm folds into convolutions and FullyConnected, else becomes a scale and shift", "[passes]") {
  Symbol x = Symbol::Variable("data");
  Symbol c = sym::Convolution(x, {{"kernel", {3, 3}}, {"num_filter", 4}, {"pad", {1, 1}}, {"no_bias", true}}, "conv");
  c = sym::BatchNorm(c, {{"fix_gamma", false}, {"eps", 1e-3}}, "bn_conv");
  Symbol r = sym::Activation(c, {{"act_type", "relu"}}, "relu");
  // After a ReLU there is no producer to fold into.
  Symbol after_relu = sym::BatchNorm(r, {{"fix_gamma", true}}, "bn_relu");
  Symbol f = sym::FullyConnected(sym::Flatten(after_relu, {}, "flat"), {{"num_hidden", 5}}, "fc");
  f = sym::BatchNorm(f, {{"fix_gamma", false}}, "bn_fc");
  // A convolution read by BatchNorm and by something else keeps its weights.
  Symbol shared = sym::Convolution(x, {{"kernel", {1, 1}}, {"num_filter", 4}}, "conv_shared");
  Symbol both = sym::BatchNorm(shared, {{"fix_gamma", false}}, "bn_shared") + shared;
  const Symbol net = Symbol::Group({f, both});
  const Graph graph = ToGraphWithParams(net, {{"data", {2, 3, 6, 6}}}, 7);
  const std::map<std::string, Tensor> inputs = {{"data", RandomTensor({2, 3, 6, 6}, 8)}};
  const Compiled compiled = CompileAndRun(graph, inputs, 2);
  const auto changes = ChangesOf(compiled.lowered, "fold_batchnorm");
  CHECK(changes.at("folded_into_producer") == 2);
  CHECK(changes.at("scale_and_shift") == 2);
  const auto expected = Interpret(graph, inputs);
  for (size_t i = 0; i < expected.size(); ++i) KILN_CHECK_CLOSE(compiled.outputs[i], expected[i], 1e-5, 1e-5);
  // Without embedded parameters nothing is folded.
  const Compiled kept = CompileAndRun(graph, inputs, 2, {}, /*embed_params=*/false);
  CHECK(ChangesOf(kept.lowered, "fold_batchnorm").empty());
}

TEST_CASE("constant subgraphs fold through the reference; random ones do not", "[passes]") {
  Symbol w = Symbol::Variable("w");
  Symbol scaled = Symbol::Create("exp", {w}, {}, "ew") * 2.0 + 1.0;
  Symbol noisy = Symbol::Create("Dropout", {w}, {{"p", 0.5}, {"mode", "always"}}, "noise");
  Symbol y = Symbol::Variable("data") * scaled;
  Graph graph = Symbol::Group({y, y + noisy}).ToGraph();
  graph.params["w"] = RandomTensor({3, 4}, 9);
  const std::map<std::string, Tensor> inputs = {{"data", RandomTensor({3, 4}, 10)}};
  const Compiled compiled = CompileAndRun(graph, inputs, 1);
  CHECK(ChangesOf(compiled.lowered, "fold_constants").at("folded") == 3);
  KILN_CHECK_CLOSE(compiled.outputs[0], Interpret(graph, inputs)[0], 1e-6, 1e-6);
  // The Dropout still drops: some elements of the second output are the first's.
  int64_t kept = 0;
  for (int64_t i = 0; i < compiled.outputs[0].size(); ++i) {
    kept += compiled.outputs[1].GetDouble(i) == compiled.outputs[0].GetDouble(i);
  }
  CHECK(kept > 0);
  CHECK(kept < compiled.outputs[0].size());
  // A graph that is all constants compiles to a copy of its folded value.
  Graph constant = (Symbol::Create("exp", {w}, {}, "e") + 1.0).ToGraph();
  constant.params["w"] = graph.params["w"];
  const Compiled folded = CompileAndRun(constant, {}, 1);
  CHECK(folded.lowered.artifact.kernels_size() == 1);
  KILN_CHECK_CLOSE(folded.outputs[0], Interpret(constant, {})[0], 1e-6, 1e-7);
}

TEST_CASE("common subexpressions merge (not random ones) and dead parameters go", "[passes]") {
  Symbol x = Symbol::Variable("data");
  Symbol a = Symbol::Create("exp", {x}, {}, "a");
  Symbol b = Symbol::Create("exp", {x}, {}, "b");
  Symbol d1 = Symbol::Create("Dropout", {x}, {{"p", 0.5}, {"mode", "always"}}, "d1");
  Symbol d2 = Symbol::Create("Dropout", {x}, {{"p", 0.5}, {"mode", "always"}}, "d2");
  Graph graph = Symbol::Group({a + b, d1 - d2}).ToGraph();
  graph.params["unused"] = RandomTensor({2}, 1);
  const std::map<std::string, Tensor> inputs = {{"data", RandomTensor({4, 5}, 11, 0.5, 1.5)}};
  const Compiled compiled = CompileAndRun(graph, inputs, 1);
  CHECK(ChangesOf(compiled.lowered, "cse").at("merged") == 1);
  CHECK(ChangesOf(compiled.lowered, "dce").at("params_removed") == 1);
  // d1 and d2 draw different masks: their difference is not all zero.
  bool any_nonzero = false;
  for (int64_t i = 0; i < compiled.outputs[1].size(); ++i) any_nonzero |= compiled.outputs[1].GetDouble(i) != 0;
  CHECK(any_nonzero);
  KILN_CHECK_CLOSE(compiled.outputs[0], Interpret(graph, inputs)[0], 0, 0);
}

TEST_CASE("the pass manager runs chosen passes, skips disabled ones and reports each", "[passes]") {
  const Graph graph = ToGraphWithParams(TestLeNet(), {{"data", {1, 1, 28, 28}}}, 12);
  PassContext context;
  context.input_shapes = {{"data", {1, 1, 28, 28}}};
  Graph copy = CloneGraph(graph);
  InferGraph(copy, context);
  std::vector<std::string> seen;
  PassOptions options;
  options.passes = std::vector<std::string>{"fold_batchnorm", "dce", "fuse"};
  options.disabled = {"dce"};
  options.verify = true;
  options.after_each = [&](int index, const std::string& pass, const Graph&) {
    seen.push_back(std::to_string(index) + ":" + pass);
  };
  const auto records = RunPasses(copy, 0, context, options);
  CHECK(seen == std::vector<std::string>{"0:input", "1:fold_batchnorm", "2:fuse"});
  REQUIRE(records.size() == 2);
  CHECK(records[0].Summary() == "fold_batchnorm: 1 folded_into_producer (nodes 12 -> 11)");
  CHECK(copy.HasAttr("fusion_groups"));
  // The user's graph is untouched.
  CHECK(CountOperatorNodes(graph) == 12);
  CHECK_THROWS_WITH(RunPasses(copy, 0, context, PassOptions{std::vector<std::string>{"fuse", "nope"}}),
                    Catch::Contains("unknown pass 'nope'") && Catch::Contains("fold_batchnorm"));
  CHECK(PipelineForLevel(0).empty());
  const auto simplify = PipelineForLevel(1);
  CHECK(std::find(simplify.begin(), simplify.end(), "fuse") == simplify.end());
  CHECK(PipelineForLevel(2).back() == "fuse");
}

TEST_CASE("the verifier names the pass that broke the graph", "[passes]") {
  Symbol x = Symbol::Variable("data");
  Graph graph = Symbol::Create("exp", {Symbol::Create("relu", {x}, {}, "r")}, {}, "e").ToGraph();
  PassContext context;
  context.input_shapes = {{"data", {2, 2}}};
  InferGraph(graph, context);
  VerifyGraph(graph, "none");
  // A cycle: relu reads exp.
  Graph cyclic = CloneGraph(graph);
  NodePtr exp_node = cyclic.outputs[0].node;
  NodePtr relu_node = exp_node->inputs[0].node;
  relu_node->inputs[0] = {exp_node, 0};
  CHECK_THROWS_WITH(VerifyGraph(cyclic, "evil"), Catch::Contains("after pass 'evil'") && Catch::Contains("cycle"));
  relu_node->inputs.clear();  // break the reference cycle
  // A stale shape: the recorded shapes disagree with what the registry infers.
  Graph stale = CloneGraph(graph);
  InferGraph(stale, context);
  auto shapes = stale.GetAttr<std::vector<ShapeSlot>>("shape");
  shapes.back() = Shape{2, 3};
  stale.attrs["shape"] = shapes;
  CHECK_THROWS_WITH(VerifyGraph(stale, "shapeshifter"),
                    Catch::Contains("after pass 'shapeshifter'") && Catch::Contains("node 'e' (exp)") &&
                        Catch::Contains("recorded as (2,3) float32 but the registry infers (2,2)"));
  // A node with the wrong number of inputs.
  Graph wrong = CloneGraph(graph);
  wrong.outputs[0].node->inputs.push_back(wrong.outputs[0].node->inputs[0]);
  CHECK_THROWS_WITH(VerifyGraph(wrong, "adder"), Catch::Contains("expected 1 inputs, has 2"));
}

TEST_CASE("several outputs, outputs that are also intermediates, and repeated outputs", "[passes]") {
  Symbol x = Symbol::Variable("data");
  Symbol e = Symbol::Create("exp", {x}, {}, "e");
  Symbol s = Symbol::Create("sigmoid", {e}, {}, "s");
  Symbol t = s * e + 1.0;
  const Graph graph = Symbol::Group({e, t, s, e, x}).ToGraph();
  const std::map<std::string, Tensor> inputs = {{"data", RandomTensor({3, 5}, 13)}};
  for (const int level : {0, 1, 2}) {
    INFO("graph -O" << level);
    const auto got = CompileAndRun(graph, inputs, level).outputs;
    const auto expected = Interpret(graph, inputs);
    for (size_t i = 0; i < expected.size(); ++i) KILN_CHECK_CLOSE(got[i], expected[i], 1e-6, 0);
  }
}

TEST_CASE("LeNet and the MLP match the reference at every graph level", "[passes]") {
  for (const int level : {0, 1, 2, 3}) {
    INFO("graph -O" << level);
    const std::map<std::string, Tensor> inputs = {{"data", RandomTensor({2, 1, 28, 28}, 14)}};
    CheckMatchesReference(ToGraphWithParams(TestLeNet(), {{"data", {2, 1, 28, 28}}}, 15), inputs, level);
    const std::map<std::string, Tensor> flat = {{"data", RandomTensor({3, 20}, 16)}};
    CheckMatchesReference(ToGraphWithParams(TestMlp(), {{"data", {3, 20}}}, 17), flat, level);
  }
}

TEST_CASE("passes handle operators without inputs (a transpose of zeros)", "[passes]") {
  Symbol zeros = Symbol::Create("zeros", {}, {{"shape", {2, 3}}}, "z");
  Symbol t = Symbol::Create("transpose", {zeros}, {}, "t");
  const Graph graph = Symbol::Group({Symbol::Create("exp", {t}, {}, "e"), t}).ToGraph();
  for (const int level : {1, 2}) {
    const auto got = CompileAndRun(graph, {}, level).outputs;
    const auto expected = Interpret(graph, {});
    for (size_t i = 0; i < expected.size(); ++i) KILN_CHECK_CLOSE(got[i], expected[i], 0, 0);
  }
}

TEST_CASE("a broadcast operator with one constant value as rhs becomes its scalar form", "[passes]") {
  // LayerNorm as exporters write it squares with Pow(x, 2): a constant exponent lets code
  // generation multiply instead of calling pow.
  Symbol x = Symbol::Variable("data");
  Symbol squared = Symbol::Create("broadcast_power", {x, Symbol::Variable("two")}, {}, "pow");
  Symbol scaled = Symbol::Create("broadcast_mul", {squared, Symbol::Variable("half")}, {}, "scale");
  // Three values: not a scalar.
  Symbol shifted = Symbol::Create("broadcast_add", {scaled, Symbol::Variable("bias")}, {}, "shift");
  Graph graph = shifted.ToGraph();
  graph.params["two"] = Values({1}, {2.0});
  graph.params["half"] = Values({1, 1}, {0.5});
  graph.params["bias"] = RandomTensor({3}, 20);
  const std::map<std::string, Tensor> inputs = {{"data", RandomTensor({2, 3}, 21)}};
  const Compiled compiled = CompileAndRun(graph, inputs, 1);
  CHECK(ChangesOf(compiled.lowered, "scalarize_constant_operands").at("scalarized") == 2);
  CHECK(compiled.lowered.graph.indexed().node(compiled.lowered.graph.indexed().num_nodes() - 1).op->name() ==
        "broadcast_add");
  KILN_CHECK_CLOSE(compiled.outputs[0], Interpret(graph, inputs)[0], 1e-6, 1e-7);
  // Without embedded parameters the operands stay tensors.
  CHECK(ChangesOf(CompileAndRun(graph, inputs, 1, {}, false).lowered, "scalarize_constant_operands").empty());
}

TEST_CASE("3x3 and 5x5 convolutions with run-time filters and their data gradients become Winograd convolutions",
          "[passes][winograd]") {
  // Forward with bias, pad 1; a 5x5 convolution (F(2x2, 5x5)); a data gradient with pad 0
  // (padded 2 in its Winograd form); a strided convolution stays as it is.
  const AttrMap conv = {
      {"kernel", std::vector<int64_t>{3, 3}}, {"num_filter", 24}, {"pad", std::vector<int64_t>{1, 1}}};
  const AttrMap grad = {{"kernel", std::vector<int64_t>{3, 3}}, {"num_filter", 16}, {"no_bias", true}};
  Symbol x = Symbol::Variable("data");
  Symbol y = Symbol::Create("Convolution", {x, Symbol::Variable("w"), Symbol::Variable("b")}, conv, "conv");
  Symbol five = sym::Convolution(x, {{"kernel", {5, 5}}, {"num_filter", 16}, {"no_bias", true}}, "five");
  Symbol strided = sym::Convolution(x, {{"kernel", {3, 3}}, {"stride", {2, 2}}, {"num_filter", 16}}, "strided");
  Symbol dx = Symbol::Create("_backward_Convolution_data", {Symbol::Variable("out_grad"), x, Symbol::Variable("w2")},
                             grad, "dx");
  const Graph graph = Symbol::Group({y, five, strided, dx}).ToGraph();
  const std::map<std::string, Tensor> inputs = {{"data", RandomTensor({2, 20, 9, 8}, 1)},
                                                {"w", RandomTensor({24, 20, 3, 3}, 2)},
                                                {"b", RandomTensor({24}, 3)},
                                                {"five_weight", RandomTensor({16, 20, 5, 5}, 4)},
                                                {"strided_weight", RandomTensor({16, 20, 3, 3}, 5)},
                                                {"strided_bias", RandomTensor({16}, 6)},
                                                {"out_grad", RandomTensor({2, 16, 7, 6}, 7)},
                                                {"w2", RandomTensor({16, 20, 3, 3}, 8)}};
  const Compiled compiled = CompileAndRun(graph, inputs, 2);
  const auto changes = ChangesOf(compiled.lowered, "alter_operators");
  CHECK(changes.at("altered Convolution") == 2);
  CHECK(changes.at("altered _backward_Convolution_data") == 1);
  CHECK(changes.size() == 2);
  const auto expected = Interpret(graph, inputs);
  REQUIRE(compiled.outputs.size() == expected.size());
  for (size_t i = 0; i < expected.size(); ++i) KILN_CHECK_CLOSE(compiled.outputs[i], expected[i], 1e-4, 1e-4);
}

TEST_CASE("convolutions with constant filters are not altered: the lowering packs their transform",
          "[passes][winograd]") {
  Symbol y =
      sym::Convolution(Symbol::Variable("data"), {{"kernel", {3, 3}}, {"num_filter", 16}, {"pad", {1, 1}}}, "conv");
  const Graph graph = ToGraphWithParams(y, {{"data", {1, 16, 8, 8}}}, 9);
  const std::map<std::string, Tensor> inputs = {{"data", RandomTensor({1, 16, 8, 8}, 10)}};
  CHECK(ChangesOf(CompileAndRun(graph, inputs, 2).lowered, "alter_operators").empty());
  // Given at run time, they are.
  const Compiled runtime = CompileAndRun(graph, inputs, 2, {}, /*embed_params=*/false);
  CHECK(ChangesOf(runtime.lowered, "alter_operators").at("altered Convolution") == 1);
}
