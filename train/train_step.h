// A compiled training step: forward, backward and the optimizer's update of every
// parameter in one executor (train/step_graph.h), on the CPU or a GPU
// (TrainStepOptions::context), with the parameters, auxiliary states and optimizer states
// it owns. Parameters and states are double-buffered: a step reads
// one set and writes the other, then the two swap, so nothing is allocated per step and
// no kernel reads a value another has already overwritten.
//
//   TrainStep step(model, params, {.shapes = {{"data", {32, 784}}, {"softmax_label", {32}}},
//                                  .optimizer = ParseOptimizer("sgd", "lr=0.1,momentum=0.9")});
//   for (auto& batch : batches) step.Step({{"data", batch.data}, {"softmax_label", batch.label}});
//   SaveParams("trained.params", step.Params());
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "codegen/compiler.h"
#include "graph/graph.h"
#include "runtime/context.h"
#include "runtime/cuda_executor.h"
#include "runtime/device_tensor.h"
#include "runtime/executor.h"
#include "train/optimizer.h"
#include "train/step_graph.h"

namespace kiln {

struct TrainStepOptions {
  // Shapes (and dtypes, default float32) of the data and label inputs.
  std::map<std::string, Shape> shapes;
  std::map<std::string, DType> dtypes;
  // Inputs that are data or labels; by default every argument without a value.
  std::vector<std::string> data_names;
  std::map<std::string, GradReq> grad_req;
  OptimizerConfig optimizer;
  std::map<std::string, double> wd_mult;
  std::map<std::string, double> lr_mult;
  // Dropout's streams: the same seed and steps draw the same masks.
  uint64_t seed = 0;
  CpuTarget target;
  // Where the step runs: cpu() (compiled by LLVM), or gpu(N): compiled for CUDA (NVRTC,
  // cuBLAS steps) with the parameters and states kept in device memory; each step then
  // copies only the batch in and the forward outputs out.
  Context context = Context::cpu();
  std::optional<int> graph_opt_level;
  PassOptions passes;
  int threads = 0;  // ExecutorOptions::threads
  // An on-disk cache of compiled steps (codegen/compile_cache.h; e.g.
  // CompileCache::DefaultDir()); empty: compile in memory every time.
  std::string cache_dir;
};

// The memory of the compiled step, as the memory planner reports it.
struct StepMemoryReport {
  int64_t arena_bytes = 0;        // planned
  int64_t lower_bound_bytes = 0;  // the most bytes live at one kernel
  int64_t no_reuse_bytes = 0;     // every intermediate in its own buffer
  int64_t param_bytes = 0;        // parameters, auxiliary and optimizer states (one copy)
  size_t num_kernels = 0;
  bool from_cache = false;  // the code came from the on-disk cache
};

class TrainStep {
 public:
  // `params`: a value for every parameter and auxiliary state of `model` (the model's
  // embedded parameters are used where `params` lacks one). Compiles the step.
  TrainStep(const Graph& model, const std::map<std::string, Tensor>& params, TrainStepOptions options);
  ~TrainStep();

  // One step on a batch (every data and label input by name): the forward outputs, as
  // training mode computes them, before the update. Compute then Commit.
  std::vector<Tensor> Step(const std::map<std::string, Tensor>& batch);
  // The step in two halves, as Module's forward/backward and update: Compute runs the
  // compiled step (auxiliary states update in place, as MXNet's forward in training
  // does) and keeps the updated parameters aside; Commit makes them current. Computing
  // again before a Commit discards the pending update.
  std::vector<Tensor> Compute(const std::map<std::string, Tensor>& batch);
  void Commit();

  // Learned parameters and auxiliary states (copies, safe to keep across steps).
  std::map<std::string, Tensor> Params() const;
  // Replaces parameters or auxiliary states by name (shapes and dtypes checked).
  void SetParams(const std::map<std::string, Tensor>& params);
  // Optimizer states, "<param>__<state>", and the update count, "__num_update__".
  std::map<std::string, Tensor> OptimizerStates() const;
  void SetOptimizerStates(const std::map<std::string, Tensor>& states);
  int64_t num_update() const { return num_update_; }

  const StepGraph& step_graph() const { return step_graph_; }
  const std::vector<TensorSpec>& forward_outputs() const { return forward_outputs_; }
  StepMemoryReport memory() const { return memory_; }
  const Optimizer& optimizer() const { return optimizer_; }

 private:
  // Where a tensor the step keeps lives: input slot, output slot.
  struct Slot {
    std::string name;
    size_t input = 0;
    size_t output = 0;
    bool swapped = false;  // aux states are updated in place, never swapped
  };
  const Slot* FindSlot(const std::string& name) const;

  bool on_gpu() const { return cuda_executor_ != nullptr; }
  const std::vector<TensorSpec>& InputSpecs() const;
  // The kept tensor of slot input `i` (a host copy on a GPU).
  Tensor KeptValue(size_t i) const;
  // Overwrites the kept tensor of slot input `i` with `value` (same shape and dtype).
  void SetKept(size_t i, const Tensor& value);

  StepGraph step_graph_;
  Optimizer optimizer_;
  std::unique_ptr<Executor> executor_;
  // On a GPU: the executor, and its inputs and outputs in device memory (the kept ones
  // between steps); inputs_ and outputs_ then only give their shapes.
  std::unique_ptr<CudaExecutor> cuda_executor_;
  std::vector<DeviceTensor> device_inputs_, device_outputs_;
  std::vector<TensorSpec> forward_outputs_;
  std::vector<Tensor> inputs_;   // the executor's inputs, the kept ones between steps
  std::vector<Tensor> outputs_;  // the executor's outputs: forward outputs and the other set
  std::vector<Slot> slots_;      // parameters, aux and optimizer states
  std::vector<size_t> batch_inputs_;
  int64_t lr_input_ = -1, eta_input_ = -1, step_input_ = -1;
  int64_t num_update_ = 0;
  bool pending_ = false;  // Compute ran; Commit has not
  uint64_t seed_ = 0;
  StepMemoryReport memory_;
};

}  // namespace kiln
