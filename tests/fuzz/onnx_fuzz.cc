// ONNX models (symbol/onnx/onnx_import.h): any bytes import to a kiln graph or give a
// kiln::Error; an imported graph is a valid kiln graph (it saves and loads again) and
// goes through shape and dtype inference.
#include <map>
#include <string>

#include "passes/graph_io.h"
#include "passes/infer_shape.h"
#include "runtime/error.h"
#include "symbol/onnx/onnx_import.h"
#include "tests/fuzz/fuzz_targets.h"

namespace kiln::fuzz {

int FuzzOnnx(const uint8_t* data, size_t size) {
  Graph graph;
  try {
    graph = ImportOnnxBytes(AsText(data, size), {}, "fuzz.onnx");
  } catch (const Error&) {
    return 0;
  }
  ParseGraph(SerializeGraph(graph), "fuzz.onnx (imported and saved)");
  const std::map<std::string, Shape> known = graph.ParamShapes();
  try {
    InferShape(graph, known);
    InferType(graph);
  } catch (const Error&) {
  }
  return 0;
}

}  // namespace kiln::fuzz
