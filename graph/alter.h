// What an operator's alter function (OpDef::SetAlter) sees and builds: the node with its
// inputs' and outputs' shapes and dtypes, the values of its constant inputs, and a
// builder of new nodes made of registered operators. Setting `replacements` (one entry
// per output) replaces the node; leaving it empty keeps the node.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "graph/attrs.h"
#include "graph/graph.h"
#include "graph/op.h"

namespace kiln {

struct AlterContext {
  AlterContext(const Node& node, std::vector<Shape> input_shapes, std::vector<DType> input_types,
               std::vector<Shape> output_shapes, std::vector<DType> output_types, std::vector<const Tensor*> constants);

  const Node& node;
  const Attrs& attrs;
  std::vector<NodeEntry> inputs;
  std::vector<Shape> input_shapes;
  std::vector<DType> input_types;
  std::vector<Shape> output_shapes;
  std::vector<DType> output_types;
  // Input i's value where it is a constant (a parameter of the graph), else nullptr.
  std::vector<const Tensor*> constants;
  // The processor the graph is compiled for: alternative forms are schedules for one.
  LowerTarget target = LowerTarget::kCpu;
  // Filled by the alter function: the entries that replace the node's outputs.
  std::vector<NodeEntry> replacements;
  // Names new nodes from a base name (the pass makes them unique in its graph).
  std::function<std::string(const std::string& base)> fresh_name = [](const std::string& base) { return base; };

  // A node of `op` on `inputs`, named after the altered node and `op`; its output 0.
  NodeEntry Apply(const std::string& op, const std::vector<NodeEntry>& inputs, const AttrMap& attrs = {});
};

}  // namespace kiln
