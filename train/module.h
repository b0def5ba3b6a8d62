// MXNet's Module API (mx.mod.Module), compiled: bind a symbol to data and label shapes,
// initialize parameters and an optimizer, then forward / backward / update, or Fit,
// Score and Predict over an NDArrayIter; checkpoints as MXNet writes them
// (PREFIX-symbol.json, PREFIX-EPOCH.params with arg:/aux: names), plus the optimizer's
// states in PREFIX-EPOCH.states (kiln's parameter format) so that training resumes
// exactly.
//
// Training runs kiln's compiled step (train/train_step.h): Forward in training mode runs
// forward, backward and the fused update at once and keeps the new parameters aside;
// Backward checks the order; Update makes them current. Inference (Forward with
// is_train false, Score, Predict) runs a compiled inference executor, one per batch
// shape, with the current parameters bound.
//
//   Module mod(net);
//   mod.Fit(train_iter, &eval_iter, {.optimizer = "sgd", .optimizer_params = "lr=0.1", .num_epoch = 10});
//   mod.SaveCheckpoint("mlp", 10, /*save_optimizer_states=*/true);
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "runtime/context.h"
#include "runtime/cuda_executor.h"
#include "runtime/executor.h"
#include "symbol/symbol.h"
#include "train/data/dataset.h"
#include "train/data/metric.h"
#include "train/step_graph.h"
#include "train/train_step.h"

namespace kiln {

class Module;

// What Fit reports after each batch and epoch (MXNet's BatchEndParam).
struct BatchEndParam {
  int epoch = 0;
  int64_t nbatch = 0;  // batches done in this epoch
  const EvalMetric* eval_metric = nullptr;
};

struct FitOptions {
  std::string eval_metric = "acc";  // MakeMetric names, comma-separated for several
  std::string optimizer = "sgd";
  // ParseOptimizer's options. rescale_grad defaults to 1 / batch_size, as Module's does.
  std::string optimizer_params = "lr=0.01";
  std::string initializer = "uniform(0.01)";  // MakeInitializer spec (Module's default)
  std::map<std::string, Tensor> arg_params;   // initial values (the rest: initializer)
  std::map<std::string, Tensor> aux_params;
  bool allow_missing = false;
  bool force_init = false;
  int begin_epoch = 0;
  int num_epoch = 1;
  uint64_t seed = 0;  // initializer and Dropout
  // A progress bar on stderr (epoch, batch, samples/s, metric, ETA) when it is a
  // terminal, else one line per epoch; false: silent.
  bool progress = true;
  std::vector<std::function<void(const BatchEndParam&)>> batch_end_callback;
  std::vector<std::function<void(int epoch, const Module&)>> epoch_end_callback;
};

class Module {
 public:
  // `context`: where the module runs (MXNet's context=): cpu(), or gpu(N), where the
  // compiled training step keeps the parameters and states in device memory and
  // inference (is_train false, Score, Predict) runs compiled for the GPU too.
  explicit Module(Symbol symbol, std::vector<std::string> data_names = {"data"},
                  std::vector<std::string> label_names = {"softmax_label"}, Context context = Context::cpu());
  ~Module();
  Module(Module&&) noexcept;
  Module& operator=(Module&&) noexcept;

  // Shapes of the data and labels (a batch's); grad_req for every parameter.
  void Bind(const std::vector<DataDesc>& data_shapes, const std::vector<DataDesc>& label_shapes = {},
            bool for_training = true, const std::string& grad_req = "write");
  // Parameters from `arg_params` / `aux_params`, the others from the initializer (an
  // error for missing ones unless allow_missing). Again only with force_init.
  void InitParams(const std::string& initializer = "uniform(0.01)",
                  const std::map<std::string, Tensor>& arg_params = {},
                  const std::map<std::string, Tensor>& aux_params = {}, bool allow_missing = false,
                  bool force_init = false, uint64_t seed = 0);
  void InitOptimizer(const std::string& optimizer = "sgd", const std::string& optimizer_params = "lr=0.01",
                     bool force_init = false);

  // is_train: training mode (default: as bound); batch.data and batch.label in the
  // order of the data and label names.
  void Forward(const DataBatch& batch, std::optional<bool> is_train = std::nullopt);
  void Backward();
  void Update();
  std::vector<Tensor> GetOutputs() const { return outputs_; }
  void UpdateMetric(EvalMetric& metric, const std::vector<Tensor>& labels) const;

  std::map<std::string, Tensor> arg_params() const;
  std::map<std::string, Tensor> aux_params() const;
  void SetParams(const std::map<std::string, Tensor>& arg_params, const std::map<std::string, Tensor>& aux_params,
                 bool allow_missing = false);

  void Fit(NDArrayIter& train_data, NDArrayIter* eval_data, const FitOptions& options);
  // The metric over the batches (all, or the first num_batch).
  std::vector<MetricValue> Score(NDArrayIter& eval_data, const std::string& eval_metric = "acc",
                                 int64_t num_batch = -1);
  // Every output over the batches, concatenated along the batch axis, padding removed.
  std::vector<Tensor> Predict(NDArrayIter& eval_data, int64_t num_batch = -1);

  // PREFIX-symbol.json, PREFIX-EPOCH.params, and with the optimizer's states
  // PREFIX-EPOCH.states; every file written atomically.
  void SaveCheckpoint(const std::string& prefix, int epoch, bool save_optimizer_states = false) const;
  // A module with the checkpoint's symbol and parameters (bind it, then InitParams keeps
  // them; InitOptimizer then loads the states when load_optimizer_states).
  static Module Load(const std::string& prefix, int epoch, bool load_optimizer_states = false,
                     std::vector<std::string> data_names = {"data"},
                     std::vector<std::string> label_names = {"softmax_label"});
  void SaveOptimizerStates(const std::string& path) const;
  void LoadOptimizerStates(const std::string& path);

  // Keep compiled steps and inference executors in this on-disk cache
  // (codegen/compile_cache.h, e.g. CompileCache::DefaultDir()); before InitOptimizer.
  void SetCacheDir(std::string dir) { cache_dir_ = std::move(dir); }

  const Symbol& symbol() const { return symbol_; }
  bool binded() const { return binded_; }
  bool params_initialized() const { return params_initialized_; }
  bool optimizer_initialized() const { return train_step_ != nullptr; }
  // The compiled step's memory (after InitOptimizer).
  StepMemoryReport training_memory() const;

 private:
  std::map<std::string, Tensor> BatchInputs(const DataBatch& batch) const;
  // The batch's outputs in inference mode, from the executor compiled for its shapes (on
  // the module's context), with the current parameters bound.
  std::vector<Tensor> RunInference(const std::map<std::string, Tensor>& inputs);
  void SyncParamsFromStep() const;
  bool IsData(const std::string& name) const;

  Symbol symbol_;
  std::vector<std::string> data_names_;
  std::vector<std::string> label_names_;
  std::vector<DataDesc> data_shapes_;
  std::vector<DataDesc> label_shapes_;
  std::map<std::string, GradReq> grad_req_;
  bool binded_ = false;
  bool for_training_ = false;
  bool params_initialized_ = false;
  // Parameters as the module knows them; the training step holds the current ones while
  // it trains (params_stale_ until they are copied back).
  mutable std::map<std::string, Tensor> arg_params_;
  mutable std::map<std::string, Tensor> aux_params_;
  mutable bool params_stale_ = false;
  std::unique_ptr<TrainStep> train_step_;
  std::string optimizer_name_;
  std::string optimizer_params_;
  // What Load read, used by InitParams and InitOptimizer.
  std::map<std::string, Tensor> preset_args_;
  std::map<std::string, Tensor> preset_aux_;
  std::map<std::string, Tensor> preloaded_states_;
  // Inference executors by the batch inputs' shapes; parameters bound when stale.
  struct Inference {
    std::unique_ptr<Executor> executor;          // on the CPU
    std::unique_ptr<CudaExecutor> gpu_executor;  // on a GPU context
    bool params_bound = false;
  };
  std::map<std::string, Inference> inference_;
  enum class Phase { kNone, kTrainForward, kBackward, kInferenceForward };
  Phase phase_ = Phase::kNone;
  std::vector<Tensor> outputs_;
  uint64_t seed_ = 0;
  std::string cache_dir_;
  Context context_ = Context::cpu();
};

}  // namespace kiln
