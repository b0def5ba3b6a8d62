// ONNX import: an ONNX model (opsets 7 to 27, each operator in the versions its
// converter handles: symbol/onnx/onnx_versions.h) becomes a kiln graph of MXNet-named
// operators, with the initializers as embedded parameters.
//
// Shapes are static, as everywhere in kiln: symbolic dimensions of the graph inputs
// (a "batch" dimension) take the value given in OnnxImportOptions::input_shapes, or 1.
// That lets the importer fold at import time what exporters emit to compute shapes
// (Shape, Gather, Slice, Concat, Cast, Unsqueeze, arithmetic on constants) and turn
// Reshape, Flatten, Squeeze and Unsqueeze into reshapes to known shapes.
//
// Every node whose operator, attribute or input form kiln does not support is reported
// in one kiln::Error listing all of them (op type, node name, opset, reason).
#pragma once

#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "graph/graph.h"

namespace onnx {
class ModelProto;
}

namespace kiln {

struct OnnxImportOptions {
  OnnxImportOptions() = default;
  // ImportOnnx(path, {{"input", {8, 3, 224, 224}}}): shapes alone.
  OnnxImportOptions(std::map<std::string, Shape> shapes) : input_shapes(std::move(shapes)) {}  // NOLINT

  // Shapes of graph inputs, by name; they override the model's declared shapes (and
  // give symbolic dimensions their values).
  std::map<std::string, Shape> input_shapes;
  // Inputs whose values are fixed at import, by name. They become constants, so that
  // inputs kiln needs to know (Reshape's shape, ReduceSum's axes, Slice's starts) can
  // be given, and whatever depends on them alone is folded.
  std::map<std::string, Tensor> constant_inputs;
  // Where initializers stored in external files (models over 2 GB) are read from:
  // ImportOnnx sets it to the model's own directory; empty, they are an error.
  std::string external_data_dir;
};

// Reads and converts an .onnx file. Throws kiln::Error for unreadable or malformed
// files and for unsupported content.
Graph ImportOnnx(const std::string& path, const OnnxImportOptions& options = {});
// The same from the bytes of an .onnx file; `source` names them in errors.
Graph ImportOnnxBytes(std::string_view bytes, const OnnxImportOptions& options = {},
                      const std::string& source = "<bytes>");
Graph ImportOnnxModel(const onnx::ModelProto& model, const OnnxImportOptions& options = {});

// The ONNX operator types the importer converts (default domain), sorted.
std::vector<std::string> SupportedOnnxOps();

// The oldest and newest default-domain opsets the importer accepts.
inline constexpr int64_t kMinOnnxOpset = 7;
// The newest opset onnx 1.22 defines; which operator versions kiln handles beyond
// opset 17 is decided per operator (symbol/onnx/onnx_versions.h).
inline constexpr int64_t kMaxOnnxOpset = 27;

}  // namespace kiln
