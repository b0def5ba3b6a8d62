// The graph format: round trips, versioning, unknown fields, and the loader's behaviour
// on bad bytes.
#include <catch2/catch.hpp>
#include <filesystem>
#include <random>

#include "passes/graph_io.h"
#include "passes/infer_shape.h"
#include "passes/interpreter.h"
#include "runtime/error.h"
#include "symbol/symbol.h"
#include "tests/op_test_util.h"

using namespace kiln;
using kiln::testing::Arange;

namespace {

// A small graph with several outputs, a scalar op, a broadcast and embedded parameters.
Graph SampleGraph() {
  const Symbol x = Symbol::Variable("x", Shape{2, 3});
  const Symbol w = Symbol::Variable("w");
  const Symbol y = Symbol::Create("broadcast_mul", {x, w}, {}, "scale");
  const Symbol z = Symbol::Create("_plus_scalar", {y}, {{"scalar", 0.5}}, "shift");
  const Symbol s = Symbol::Create("add_n", {z, x, y}, {{"num_args", 3}}, "total");
  Graph graph = Symbol::Group({z, s}).ToGraph();
  graph.params["w"] = Arange({3});
  return graph;
}

std::string TempPath(const std::string& name) {
  const auto dir = std::filesystem::temp_directory_path() / ("kiln_graph_test_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  return (dir / name).string();
}

}  // namespace

TEST_CASE("binary and text round trips give identical graphs", "[graph_io]") {
  const Graph graph = SampleGraph();
  const std::string bytes = SerializeGraph(graph);
  const Graph loaded = ParseGraph(bytes);
  CHECK(SerializeGraph(loaded) == bytes);
  CHECK(DumpGraph(loaded) == DumpGraph(graph));
  CHECK(loaded.params.at("w").BitwiseEquals(graph.params.at("w")));

  const std::string text = SerializeGraphText(graph);
  const Graph from_text = ParseGraphText(text);
  CHECK(SerializeGraph(from_text) == bytes);
  CHECK(SerializeGraphText(from_text) == text);

  for (const std::string name : {"g.kiln-graph", "g.pbtxt"}) {
    SaveGraphFile(graph, TempPath(name));
    CHECK(SerializeGraph(LoadGraphFile(TempPath(name))) == bytes);
  }
  // The loaded graph computes what the original computed.
  const auto before = Interpret(graph, {{"x", Arange({2, 3})}});
  const auto after = Interpret(loaded, {{"x", Arange({2, 3})}});
  REQUIRE(before.size() == 2);
  for (size_t i = 0; i < before.size(); ++i) CHECK(before[i].BitwiseEquals(after[i]));
}

TEST_CASE("the text dump is stable and readable", "[graph_io]") {
  Graph graph = SampleGraph();
  InferShape(graph, {{"w", {3}}});
  InferType(graph, {{"x", DType::kFloat32}});
  const std::string dump = DumpGraph(graph);
  CHECK(dump ==
        "%0 x = input : (2,3) float32\n"
        "%1 w = param : (3) float32\n"
        "%2 scale = broadcast_mul(%0, %1) : (2,3) float32\n"
        "%3 shift = _plus_scalar(%2) {scalar=0.5} : (2,3) float32\n"
        "%4 total = add_n(%3, %0, %2) {num_args=3} : (2,3) float32\n"
        "output shift_output = %3\n"
        "output total_output = %4\n");
}

TEST_CASE("DOT export shows ops, variables and shapes", "[graph_io]") {
  Graph graph = SampleGraph();
  InferShape(graph, {{"w", {3}}});
  const std::string dot = GraphToDot(graph, "sample");
  CHECK(dot.rfind("digraph \"sample\" {", 0) == 0);
  CHECK(dot.find("label=\"broadcast_mul\\nscale\"") != std::string::npos);
  CHECK(dot.find("shape=ellipse") != std::string::npos);
  CHECK(dot.find("[label=\"(2,3)\"]") != std::string::npos);
  CHECK(dot.find("n0 -> n2") != std::string::npos);
  CHECK(dot.back() == '\n');
}

TEST_CASE("unknown fields survive a load and save", "[graph_io]") {
  proto::GraphProto proto = GraphToProto(SampleGraph());
  // A newer kiln's fields: a top-level field 100 and a node field 50.
  google::protobuf::UnknownFieldSet* top = proto.GetReflection()->MutableUnknownFields(&proto);
  top->AddVarint(100, 12345);
  auto* node = proto.mutable_nodes(2);
  node->GetReflection()->MutableUnknownFields(node)->AddLengthDelimited(50, "future");
  const std::string bytes = proto.SerializeAsString();
  const std::string resaved = SerializeGraph(ParseGraph(bytes));
  proto::GraphProto again;
  REQUIRE(again.ParseFromString(resaved));
  const auto& unknown = again.GetReflection()->GetUnknownFields(again);
  REQUIRE(unknown.field_count() == 1);
  CHECK(unknown.field(0).number() == 100);
  CHECK(unknown.field(0).varint() == 12345);
  const auto& node_unknown = again.nodes(2).GetReflection()->GetUnknownFields(again.nodes(2));
  REQUIRE(node_unknown.field_count() == 1);
  CHECK(node_unknown.field(0).length_delimited() == "future");
}

TEST_CASE("the loader names the first problem and its node", "[graph_io]") {
  const proto::GraphProto good = GraphToProto(SampleGraph());
  const auto load = [](const proto::GraphProto& p) { return GraphFromProto(p, "m"); };

  auto p = good;
  p.set_format_version(9);
  CHECK_THROWS_WITH(load(p), Catch::Contains("format version 9 is not supported"));
  p = good;
  p.set_magic("something else");
  CHECK_THROWS_WITH(load(p), Catch::Contains("not a kiln graph"));
  p = good;
  p.mutable_nodes(2)->set_op("NoSuchOp");
  CHECK_THROWS_WITH(load(p), Catch::Contains("node 2 ('scale'): unknown operator 'NoSuchOp'"));
  p = good;
  p.mutable_nodes(3)->mutable_attrs(0)->mutable_value()->set_s("abc");
  CHECK_THROWS_WITH(load(p), Catch::Contains("node 'shift'") && Catch::Contains("attribute 'scalar'") &&
                                 Catch::Contains("given 'abc'"));
  p = good;
  auto* bogus = p.mutable_nodes(3)->add_attrs();
  bogus->set_name("bogus");
  bogus->mutable_value()->set_i(1);
  CHECK_THROWS_WITH(load(p), Catch::Contains("unknown attribute 'bogus'"));
  p = good;
  p.mutable_nodes(2)->mutable_inputs(0)->set_node(4);
  CHECK_THROWS_WITH(load(p), Catch::Contains("node 2 ('scale'): input 0 refers to node 4") &&
                                 Catch::Contains("topologically ordered"));
  p = good;
  p.mutable_nodes(2)->mutable_inputs(0)->set_index(3);
  CHECK_THROWS_WITH(load(p), Catch::Contains("refers to output 3 of node 'x', which has 1 outputs"));
  p = good;
  p.mutable_nodes(2)->mutable_inputs()->RemoveLast();
  CHECK_THROWS_WITH(load(p), Catch::Contains("expected 2 inputs (lhs, rhs), given 1"));
  p = good;
  p.mutable_nodes(1)->set_name("x");
  CHECK_THROWS_WITH(load(p), Catch::Contains("duplicate node name"));
  p = good;
  p.mutable_parameters(0)->add_shape(5);
  CHECK_THROWS_WITH(load(p), Catch::Contains("parameter 0 ('w')") && Catch::Contains("expected 60"));
  p = good;
  p.mutable_outputs(0)->mutable_entry()->set_node(77);
  CHECK_THROWS_WITH(load(p), Catch::Contains("output 0 ('shift_output') refers to node 77"));
  p = good;
  p.set_complete(false);
  CHECK_THROWS_WITH(load(p), Catch::Contains("truncated"));
  CHECK_THROWS_WITH(ParseGraphText("nodes { name: "), Catch::Contains("not a kiln text graph: line 1"));
}

TEST_CASE("any bytes give a clean error or a valid graph", "[graph_io][fuzz]") {
  const std::string good = SerializeGraph(SampleGraph());
  const auto try_load = [](const std::string& bytes) {
    try {
      const Graph g = ParseGraph(bytes);
      // A graph that loads is usable: it serializes and its shapes can be inferred.
      SerializeGraph(g);
      InferShape(const_cast<Graph&>(g));
    } catch (const Error&) {
    }
  };
  for (size_t cut = 0; cut < good.size(); ++cut) CHECK_THROWS_AS(ParseGraph(good.substr(0, cut)), Error);
  std::mt19937_64 rng(2024);
  for (int trial = 0; trial < 20000; ++trial) {
    std::string bad = good;
    const int flips = 1 + static_cast<int>(rng() % 4);
    for (int k = 0; k < flips; ++k) bad[rng() % bad.size()] = static_cast<char>(rng());
    try_load(bad);
  }
  for (int trial = 0; trial < 5000; ++trial) {
    std::string random(rng() % 200, '\0');
    for (auto& c : random) c = static_cast<char>(rng());
    try_load(random);
    try {
      ParseGraphText(random);
    } catch (const Error&) {
    }
  }
}
