// Small models for the GPU path (kernels and cuBLAS steps together): an MLP, a LeNet-style
// network with grouped, strided and pointwise convolutions and a residual sum, and an
// attention block of batch_dot and dot. Parameters bound, inputs drawn (seeded).
#pragma once

#include <map>
#include <string>
#include <vector>

#include "graph/graph.h"
#include "runtime/tensor.h"

namespace kiln::testing {

// A model for the GPU path: its graph (parameters bound) and inputs.
struct GpuModel {
  std::string name;
  Graph graph;
  std::map<std::string, Tensor> inputs;
};

std::vector<GpuModel> GpuModels();

}  // namespace kiln::testing
