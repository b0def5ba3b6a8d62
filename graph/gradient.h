// What an operator's gradient function (OpDef::SetGradient) sees and builds, in the
// manner of nnvm's FGradient: the forward node with its inputs, outputs, shapes and
// dtypes, the gradients flowing into its outputs, and a builder of new nodes made of
// registered operators. The function sets the gradient of each input it differentiates;
// an input left unset gets none (labels, indices, BlockGrad's input).
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "graph/attrs.h"
#include "graph/graph.h"
#include "graph/op.h"

namespace kiln {

struct GradientContext {
  GradientContext(const Node& forward, std::vector<Shape> input_shapes, std::vector<DType> input_types,
                  std::vector<Shape> output_shapes, std::vector<DType> output_types,
                  std::vector<std::optional<NodeEntry>> output_grads);

  const Node& node;
  const Attrs& attrs;
  std::vector<NodeEntry> inputs;   // the forward node's inputs
  std::vector<NodeEntry> outputs;  // the forward node's outputs
  std::vector<Shape> input_shapes;
  std::vector<DType> input_types;
  std::vector<Shape> output_shapes;
  std::vector<DType> output_types;
  // Gradients of the outputs; nullopt where none flows (a zero gradient).
  std::vector<std::optional<NodeEntry>> output_grads;
  // Filled by the gradient function.
  std::vector<std::optional<NodeEntry>> input_grads;
  // Whether the forward ran in training mode (GradientRequest::is_train): BatchNorm's
  // batch statistics and Dropout's mask.
  bool is_train = true;

  // A node of `op` on `inputs`, named after the forward node; output 0 (or all).
  NodeEntry Apply(const std::string& op, const std::vector<NodeEntry>& inputs, const AttrMap& attrs = {});
  std::vector<NodeEntry> ApplyAll(const std::string& op, const std::vector<NodeEntry>& inputs,
                                  const AttrMap& attrs = {});
  // The gradient of output i, zeros of its shape where none flows.
  NodeEntry OutputGrad(size_t i);
  bool HasOutputGrad(size_t i) const { return i < output_grads.size() && output_grads[i].has_value(); }
  // `grad`, of a broadcast result's shape `from`, summed over the broadcast axes down to
  // `to` (the input's shape), as broadcasting's gradient is.
  NodeEntry SumToShape(const NodeEntry& grad, const Shape& from, const Shape& to);
  void SetInputGrad(size_t i, NodeEntry grad) { input_grads.at(i) = std::move(grad); }

 private:
  int created_ = 0;
};

}  // namespace kiln
