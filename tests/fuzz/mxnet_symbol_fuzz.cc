// MXNet symbol JSON (symbol/mxnet/mxnet_import.h): any bytes import to a kiln graph or
// give a kiln::Error; an imported graph is a valid kiln graph (it saves and loads again)
// and goes through shape and dtype inference.
#include <map>
#include <string>

#include "passes/graph_io.h"
#include "passes/infer_shape.h"
#include "runtime/error.h"
#include "symbol/mxnet/mxnet_import.h"
#include "tests/fuzz/fuzz_targets.h"

namespace kiln::fuzz {

int FuzzMxnetSymbol(const uint8_t* data, size_t size) {
  Graph graph;
  try {
    graph = ImportMxnetJson(AsText(data, size), nullptr, {}, "fuzz-symbol.json");
  } catch (const Error&) {
    return 0;
  }
  ParseGraph(SerializeGraph(graph), "fuzz-symbol.json (imported and saved)");
  try {
    InferShape(graph, graph.ParamShapes());
    InferType(graph);
  } catch (const Error&) {
  }
  return 0;
}

}  // namespace kiln::fuzz
