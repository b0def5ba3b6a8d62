// ONNX export: a kiln graph becomes an ONNX model (IR version 8, default-domain opset
// 17) for inference, through exporters registered per kiln operator.
//
// Shapes are static: every variable without an embedded parameter becomes a graph
// input with the shape and dtype inference gives it (from declared shapes and
// `input_shapes`); embedded parameters become initializers. Only the variables the
// exported nodes read appear (SoftmaxOutput's label, BatchNorm's gamma under fix_gamma
// do not). Graph outputs take the names of Graph::OutputNames().
//
// Inference semantics throughout: BatchNorm uses its moving statistics, Dropout is the
// identity, SoftmaxOutput is its forward softmax. Every node whose operator or
// attribute values have no ONNX mapping is reported in one kiln::Error listing all of
// them (operator, node name, reason).
#pragma once

#include <map>
#include <string>
#include <vector>

#include "graph/graph.h"

namespace onnx {
class ModelProto;
}

namespace kiln {

inline constexpr int64_t kOnnxExportOpset = 17;
inline constexpr int64_t kOnnxExportIrVersion = 8;

onnx::ModelProto ExportOnnx(const Graph& graph, const std::map<std::string, Shape>& input_shapes = {});

// Exports and writes the model (atomically: a crash leaves the old file or the new one).
void SaveOnnx(const std::string& path, const Graph& graph, const std::map<std::string, Shape>& input_shapes = {});

// The kiln operators with an exporter, sorted. Some accept only some attribute values
// (a 2-d dot, max or avg pooling, ...): the export error says which.
std::vector<std::string> OnnxExportableOps();

}  // namespace kiln
