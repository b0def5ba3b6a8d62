// Small models for the GPU path (kernels and cuBLAS steps together): an MLP, a LeNet-style
// network with grouped, strided and pointwise convolutions and a residual sum, and an
// attention block of batch_dot and dot. Parameters bound, inputs drawn (seeded).
#pragma once

#include <map>
#include <string>
#include <vector>

#include "codegen/compiler.h"
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
// A small CNN with a loss layer (SoftmaxOutput, label "softmax_label"), for training steps.
GpuModel GpuTrainingModel();
// Its training step with SGD (momentum 0.9, wd 0.001): the step graph (every tensor an
// input), its inputs (optimizer states drawn, learning rate 0.1) and compile options.
struct GpuTrainingStep {
  Graph graph;
  std::map<std::string, Tensor> feeds;
  CompileOptions options;
};
GpuTrainingStep MakeGpuTrainingStep();

}  // namespace kiln::testing
