// `kiln train`: trains any model kiln loads (a kiln graph, ONNX, MXNet symbol JSON)
// whose outputs include a loss layer (SoftmaxOutput, the regression outputs) or that
// gets one with `loss`, on arrays of samples, with the compiled training step; writes
// the parameters and auxiliary states.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>

#include "graph/graph.h"
#include "runtime/context.h"
#include "runtime/tensor.h"

namespace kiln {

struct TrainCommand {
  Graph model;                           // its embedded parameters are initial values
  std::map<std::string, Tensor> params;  // initial values that override the embedded ones
  Tensor data;                           // (samples, ...)
  Tensor label;                          // (samples, ...)
  // The model's data input; empty: the one input without a value that no loss reads as
  // a label ("data" where there are several).
  std::string data_name;
  // "" (the model has a loss layer), "softmax_ce" (SoftmaxOutput), "l2"
  // (LinearRegressionOutput) or "l1" (MAERegressionOutput) on the model's first output.
  std::string loss;
  std::string init = "xavier(magnitude=2)";  // for parameters without a value
  std::string optimizer = "sgd";
  std::string optimizer_options;  // "lr=0.05,momentum=0.9"; rescale_grad defaults to 1/batch
  int64_t batch_size = 32;
  std::optional<int64_t> steps;  // exclusive with epochs; neither: one epoch
  std::optional<int64_t> epochs;
  bool shuffle = true;
  uint64_t seed = 0;
  std::string output;           // .npz: NumPy; with format "mxnet": MXNet's; else kiln's
  std::string format;           // "", "mxnet", "npz", "kiln"
  std::string save_every_step;  // a folder: DIR/step_N.params after every step
  bool progress = true;
  std::string cache_dir;             // compiled steps kept here (codegen/compile_cache.h); empty: none
  Context context = Context::cpu();  // where the step runs (TrainStepOptions::context)
};

// Throws kiln::Error naming what is wrong (no loss layer, an ambiguous data input,
// arrays whose sample counts differ, shapes the model refuses).
void RunTrainCommand(const TrainCommand& command);

}  // namespace kiln
