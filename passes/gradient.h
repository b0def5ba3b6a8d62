// The gradient pass: the backward graph of a set of outputs with respect to a set of
// entries (nnvm's Gradient pass). A reverse topological walk from the outputs calls each
// operator's gradient function (OpDef::SetGradient, next to the operator's definition)
// with the gradients flowing into its outputs; several gradients of one entry are
// summed, entries nothing differentiable reaches get none, and BlockGrad, integer
// outputs and non-differentiable inputs (labels, indices) stop the flow.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "graph/graph.h"

namespace kiln {

struct GradientRequest {
  // The outputs differentiated, and their head gradients (nullopt: ones, which loss
  // layers ignore as MXNet's do).
  std::vector<NodeEntry> ys;
  std::vector<std::optional<NodeEntry>> head_grads;
  // The entries (usually variables) whose gradients are wanted.
  std::vector<NodeEntry> xs;
  // Shapes and dtypes of the variables, as shape inference takes them.
  std::map<std::string, Shape> shapes;
  std::map<std::string, DType> dtypes;
  bool is_train = true;
};

// One gradient per x, of x's shape and dtype: zeros where no y depends on x. Throws
// kiln::Error naming the node whose operator has no gradient.
std::vector<NodeEntry> BuildGradient(const GradientRequest& request);

// A graph whose outputs are `forward`'s outputs followed by the gradients of the sum of
// its outputs (each weighted by its head gradient: ones, or the variable
// "<output>_head_grad" with `head_grad_inputs`) with respect to the variables `wrt`.
// Gradient outputs are named "<variable>_grad". `is_train`: the mode the forward runs in
// (GradientRequest::is_train).
Graph WithGradients(const Graph& forward, const std::vector<std::string>& wrt, bool head_grad_inputs = false,
                    bool is_train = true);

}  // namespace kiln
