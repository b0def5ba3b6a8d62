// Graph files (passes/graph_io.h), binary and text. Any bytes give a valid graph or a
// kiln::Error. A graph that loaded then goes where `kiln inspect` takes it: shape and
// dtype inference from its declarations and embedded parameters, the listing and the
// Graphviz picture; and it must save and load again.
#include <map>
#include <string>

#include "passes/graph_io.h"
#include "passes/infer_shape.h"
#include "runtime/error.h"
#include "tests/fuzz/fuzz_targets.h"

namespace kiln::fuzz {
namespace {

void Exercise(Graph& graph, bool text) {
  // The saved form must load again (what a load accepted, a save must not break).
  const Graph again = text ? ParseGraphText(SerializeGraphText(graph), "fuzz (saved again)")
                           : ParseGraph(SerializeGraph(graph), "fuzz (saved again)");
  FuzzCheck(again.indexed().num_nodes() == graph.indexed().num_nodes(),
            "a graph has another number of nodes after a save and a load");
  const std::map<std::string, Shape> known = graph.ParamShapes();
  try {
    InferShape(graph, known);
    InferType(graph);
  } catch (const Error&) {
    // Shapes that do not fit are reported; the graph itself stays printable.
  }
  DumpGraph(graph);
  GraphToDot(graph);
}

}  // namespace

int FuzzGraph(const uint8_t* data, size_t size) {
  Graph graph;
  try {
    graph = ParseGraph(AsText(data, size), "fuzz.kiln-graph");
  } catch (const Error&) {
    return 0;
  }
  Exercise(graph, /*text=*/false);
  return 0;
}

int FuzzGraphText(const uint8_t* data, size_t size) {
  Graph graph;
  try {
    graph = ParseGraphText(AsText(data, size), "fuzz.pbtxt");
  } catch (const Error&) {
    return 0;
  }
  Exercise(graph, /*text=*/true);
  return 0;
}

}  // namespace kiln::fuzz
