// The reference interpreter: runs a graph node by node with each operator's reference
// implementation. It is the oracle that compiled code and every pass are checked against.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "graph/graph.h"

namespace kiln {

struct InterpretOptions {
  bool is_train = false;  // BatchNorm uses batch statistics, Dropout drops
  uint64_t seed = 0;      // random ops and Dropout are deterministic given the seed
};

// `inputs` maps variable names to tensors; embedded graph.params fill the rest. A
// missing input is an error naming it (and its expected shape where inferable).
// Returns the graph's outputs in order. Auxiliary states given in `inputs` are updated
// in place in training mode (they share buffers with the caller's tensors).
std::vector<Tensor> Interpret(const Graph& graph, const std::map<std::string, Tensor>& inputs,
                              const InterpretOptions& options = {});

// FNV-1a of the node name mixed with the run's seed: per-node deterministic randomness.
uint64_t NodeSeed(uint64_t seed, const std::string& node_name);

}  // namespace kiln
