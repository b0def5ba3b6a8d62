#include "train/module.h"

#include <algorithm>
#include <cstring>
#include <random>

#include "codegen/compile_cache.h"
#include "codegen/compiler.h"
#include "runtime/error.h"
#include "runtime/file_util.h"
#include "runtime/mxnet_params.h"
#include "runtime/param_file.h"
#include "symbol/mxnet/mxnet_export.h"
#include "symbol/mxnet/mxnet_import.h"
#include "train/initializer.h"
#include "train/progress.h"

namespace kiln {
namespace {

std::string EpochFile(const std::string& prefix, int epoch, const std::string& extension) {
  char number[16];
  std::snprintf(number, sizeof number, "%04d", epoch);
  return prefix + "-" + number + extension;
}

std::unique_ptr<EvalMetric> MetricFromList(const std::string& names) {
  std::vector<std::string> list;
  size_t start = 0;
  while (start <= names.size()) {
    const size_t comma = names.find(',', start);
    list.push_back(names.substr(start, comma == std::string::npos ? std::string::npos : comma - start));
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return list.size() == 1 ? MakeMetric(list[0]) : MakeMetric(list);
}

// The first `rows` rows of `tensor` (a batch without its padding).
Tensor FirstRows(const Tensor& tensor, int64_t rows) {
  if (rows == tensor.shape().at(0)) return tensor;
  std::vector<int64_t> indices(static_cast<size_t>(rows));
  for (int64_t i = 0; i < rows; ++i) indices[static_cast<size_t>(i)] = i;
  return GatherRows(tensor, indices);
}

Tensor ConcatRows(const std::vector<Tensor>& parts) {
  Shape shape = parts.at(0).shape();
  shape[0] = 0;
  for (const auto& part : parts) shape[0] += part.shape()[0];
  Tensor joined(shape, parts[0].dtype());
  auto* out = static_cast<char*>(joined.data());
  for (const auto& part : parts) {
    std::memcpy(out, part.data(), part.nbytes());
    out += part.nbytes();
  }
  return joined;
}

}  // namespace

Module::Module(Symbol symbol, std::vector<std::string> data_names, std::vector<std::string> label_names,
               Context context)
    : symbol_(std::move(symbol)), data_names_(std::move(data_names)), context_(context) {
  context_.CheckAvailable();
  const auto arguments = symbol_.ListArguments();
  for (const auto& name : data_names_) {
    if (std::find(arguments.begin(), arguments.end(), name) == arguments.end()) {
      throw Error("Module: data '" + name + "' is not an argument of the symbol");
    }
  }
  // MXNet drops label names the symbol lacks (an inference-only symbol).
  for (auto& name : label_names) {
    if (std::find(arguments.begin(), arguments.end(), name) != arguments.end()) label_names_.push_back(name);
  }
}

Module::~Module() = default;
Module::Module(Module&&) noexcept = default;
Module& Module::operator=(Module&&) noexcept = default;

bool Module::IsData(const std::string& name) const {
  return std::find(data_names_.begin(), data_names_.end(), name) != data_names_.end() ||
         std::find(label_names_.begin(), label_names_.end(), name) != label_names_.end();
}

void Module::Bind(const std::vector<DataDesc>& data_shapes, const std::vector<DataDesc>& label_shapes,
                  bool for_training, const std::string& grad_req) {
  const auto check = [](const std::vector<DataDesc>& given, const std::vector<std::string>& names,
                        const std::string& what) {
    if (given.size() != names.size()) {
      throw Error("Module::Bind: " + std::to_string(names.size()) + " " + what + " expected, " +
                  std::to_string(given.size()) + " shapes given");
    }
    for (size_t i = 0; i < names.size(); ++i) {
      if (given[i].name != names[i]) {
        throw Error("Module::Bind: " + what + " " + std::to_string(i) + " is '" + names[i] + "', given '" +
                    given[i].name + "'");
      }
    }
  };
  check(data_shapes, data_names_, "data");
  if (for_training || !label_shapes.empty()) check(label_shapes, label_names_, "labels");
  const GradReq req = ParseGradReq(grad_req);
  data_shapes_ = data_shapes;
  label_shapes_ = label_shapes;
  for_training_ = for_training;
  grad_req_.clear();
  for (const auto& name : symbol_.ListArguments()) {
    if (!IsData(name)) grad_req_[name] = req;
  }
  binded_ = true;
  train_step_.reset();
  inference_.clear();
}

void Module::InitParams(const std::string& initializer, const std::map<std::string, Tensor>& arg_params,
                        const std::map<std::string, Tensor>& aux_params, bool allow_missing, bool force_init,
                        uint64_t seed) {
  if (!binded_) throw Error("Module::InitParams: call Bind first");
  if (params_initialized_ && !force_init) return;
  std::map<std::string, Shape> known;
  for (const auto& desc : data_shapes_) known[desc.name] = desc.shape;
  for (const auto& desc : label_shapes_) known[desc.name] = desc.shape;
  const auto shapes = symbol_.InferShape(known);
  const auto init = MakeInitializer(initializer);
  std::mt19937_64 rng(seed);
  std::vector<std::string> inputs = data_names_;
  inputs.insert(inputs.end(), label_names_.begin(), label_names_.end());
  const std::map<std::string, Tensor>& given_args = arg_params.empty() ? preset_args_ : arg_params;
  const std::map<std::string, Tensor>& given_aux = aux_params.empty() ? preset_aux_ : aux_params;
  arg_params_ = InitializeParams(symbol_.ListArguments(), shapes.arguments, inputs, given_args, allow_missing, *init,
                                 rng, "Module::InitParams");
  aux_params_ = InitializeParams(symbol_.ListAuxiliaryStates(), shapes.aux, inputs, given_aux, allow_missing, *init,
                                 rng, "Module::InitParams");
  params_initialized_ = true;
  params_stale_ = false;
  seed_ = seed;
  if (train_step_) {
    std::map<std::string, Tensor> all = arg_params_;
    all.insert(aux_params_.begin(), aux_params_.end());
    train_step_->SetParams(all);
  }
  for (auto& [key, inference] : inference_) inference.params_bound = false;
}

void Module::InitOptimizer(const std::string& optimizer, const std::string& optimizer_params, bool force_init) {
  if (!params_initialized_) throw Error("Module::InitOptimizer: call InitParams first");
  if (!for_training_) throw Error("Module::InitOptimizer: the module is bound for inference (for_training false)");
  if (train_step_ && !force_init) return;
  SyncParamsFromStep();
  TrainStepOptions options;
  for (const auto& desc : data_shapes_) options.shapes[desc.name] = desc.shape;
  for (const auto& desc : label_shapes_) options.shapes[desc.name] = desc.shape;
  for (const auto& desc : data_shapes_) options.dtypes[desc.name] = desc.dtype;
  for (const auto& desc : label_shapes_) options.dtypes[desc.name] = desc.dtype;
  options.data_names = data_names_;
  options.data_names.insert(options.data_names.end(), label_names_.begin(), label_names_.end());
  options.grad_req = grad_req_;
  std::string params = optimizer_params;
  // Module's default: gradients summed over the batch are averaged.
  if (params.find("rescale_grad") == std::string::npos && !data_shapes_.empty()) {
    params += std::string(params.empty() ? "" : ",") +
              "rescale_grad=" + std::to_string(1.0 / static_cast<double>(data_shapes_[0].shape.at(0)));
  }
  options.optimizer = ParseOptimizer(optimizer, params);
  std::vector<std::string> learned;
  for (const auto& [name, value] : arg_params_) learned.push_back(name);
  options.wd_mult = ModuleWdMults(learned);
  options.seed = seed_;
  options.cache_dir = cache_dir_;
  options.context = context_;
  std::map<std::string, Tensor> all = arg_params_;
  all.insert(aux_params_.begin(), aux_params_.end());
  train_step_ = std::make_unique<TrainStep>(symbol_.ToGraph(), all, options);
  optimizer_name_ = optimizer;
  optimizer_params_ = params;
  if (!preloaded_states_.empty()) {
    train_step_->SetOptimizerStates(preloaded_states_);
    preloaded_states_.clear();
  }
}

std::map<std::string, Tensor> Module::BatchInputs(const DataBatch& batch) const {
  if (batch.data.size() != data_names_.size()) {
    throw Error("Module::Forward: " + std::to_string(data_names_.size()) + " data arrays expected, given " +
                std::to_string(batch.data.size()));
  }
  std::map<std::string, Tensor> inputs;
  for (size_t i = 0; i < data_names_.size(); ++i) inputs[data_names_[i]] = batch.data[i];
  if (!batch.label.empty()) {
    if (batch.label.size() != label_names_.size()) {
      throw Error("Module::Forward: " + std::to_string(label_names_.size()) + " labels expected, given " +
                  std::to_string(batch.label.size()));
    }
    for (size_t i = 0; i < label_names_.size(); ++i) inputs[label_names_[i]] = batch.label[i];
  }
  return inputs;
}

void Module::SyncParamsFromStep() const {
  if (!params_stale_ || !train_step_) return;
  for (auto& [name, value] : train_step_->Params()) {
    (arg_params_.count(name) ? arg_params_ : aux_params_)[name] = std::move(value);
  }
  params_stale_ = false;
}

std::vector<Tensor> Module::RunInference(const std::map<std::string, Tensor>& inputs) {
  std::string key;
  std::map<std::string, Shape> shapes;
  for (const auto& name : data_names_) {
    const Tensor& value = inputs.at(name);
    key += name + ShapeToString(value.shape()) + std::string(DTypeName(value.dtype())) + ";";
    shapes[name] = value.shape();
  }
  Inference& inference = inference_[key];
  if (!inference.executor && !inference.gpu_executor) {
    CompileOptions options;
    options.embed_params = false;
    options.input_shapes = shapes;
    Graph graph = symbol_.ToGraph();
    SyncParamsFromStep();
    for (const auto& [name, value] : arg_params_) graph.params[name] = value;
    for (const auto& [name, value] : aux_params_) graph.params[name] = value;
    if (context_.is_gpu()) {
      options.cuda = CompileOptions::Cuda{};
      CudaExecutorOptions gpu;
      gpu.params = graph.params;  // the executor takes them at load
      inference.gpu_executor = CreateCudaExecutor(CompileCudaGraph(graph, options), context_.device_id(), gpu);
      inference.params_bound = true;
    } else {
      const LoweredGraph lowered = LowerGraph(graph, options);
      inference.executor = cache_dir_.empty() ? CompileJit(lowered, options.target)
                                              : CompileCache(cache_dir_).Load(lowered, options.target).executor;
      inference.params_bound = false;
    }
  }
  if (!inference.params_bound) {
    SyncParamsFromStep();
    std::map<std::string, Tensor> all = arg_params_;
    all.insert(aux_params_.begin(), aux_params_.end());
    if (inference.gpu_executor) {
      inference.gpu_executor->BindParams(all, /*allow_extra=*/true);
    } else {
      inference.executor->BindParams(all, /*allow_extra=*/true);
    }
    inference.params_bound = true;
  }
  const std::vector<TensorSpec>& specs =
      inference.gpu_executor ? inference.gpu_executor->inputs() : inference.executor->inputs();
  std::map<std::string, Tensor> feeds;
  for (const auto& spec : specs) {
    const auto it = inputs.find(spec.name);
    if (it == inputs.end()) throw Error("Module::Forward: input '" + spec.name + "' is not in the batch");
    feeds[spec.name] = it->second;
  }
  return inference.gpu_executor ? inference.gpu_executor->Run(feeds) : inference.executor->Run(feeds);
}

void Module::Forward(const DataBatch& batch, std::optional<bool> is_train) {
  if (!params_initialized_) throw Error("Module::Forward: call Bind and InitParams first");
  const bool train = is_train.value_or(for_training_);
  std::map<std::string, Tensor> inputs = BatchInputs(batch);
  if (train) {
    if (!train_step_) throw Error("Module::Forward in training mode: call InitOptimizer first");
    outputs_ = train_step_->Compute(inputs);
    params_stale_ = true;  // BatchNorm's moving statistics changed in place
    phase_ = Phase::kTrainForward;
    return;
  }
  outputs_ = RunInference(inputs);
  phase_ = Phase::kInferenceForward;
}

void Module::Backward() {
  if (phase_ != Phase::kTrainForward) throw Error("Module::Backward: call Forward in training mode first");
  phase_ = Phase::kBackward;
}

void Module::Update() {
  if (phase_ != Phase::kBackward) throw Error("Module::Update: call Forward (training) and Backward first");
  train_step_->Commit();
  params_stale_ = true;
  for (auto& [key, inference] : inference_) inference.params_bound = false;
  phase_ = Phase::kNone;
}

void Module::UpdateMetric(EvalMetric& metric, const std::vector<Tensor>& labels) const {
  metric.Update(labels, outputs_);
}

std::map<std::string, Tensor> Module::arg_params() const {
  SyncParamsFromStep();
  std::map<std::string, Tensor> copies;
  for (const auto& [name, value] : arg_params_) copies[name] = value.Clone();
  return copies;
}

std::map<std::string, Tensor> Module::aux_params() const {
  SyncParamsFromStep();
  std::map<std::string, Tensor> copies;
  for (const auto& [name, value] : aux_params_) copies[name] = value.Clone();
  return copies;
}

void Module::SetParams(const std::map<std::string, Tensor>& arg_params, const std::map<std::string, Tensor>& aux_params,
                       bool allow_missing) {
  InitParams("zero", arg_params, aux_params, allow_missing, /*force_init=*/true, seed_);
}

void Module::Fit(NDArrayIter& train_data, NDArrayIter* eval_data, const FitOptions& options) {
  if (!binded_) Bind(train_data.provide_data(), train_data.provide_label(), /*for_training=*/true);
  InitParams(options.initializer, options.arg_params, options.aux_params, options.allow_missing, options.force_init,
             options.seed);
  InitOptimizer(options.optimizer, options.optimizer_params);
  const auto metric = MetricFromList(options.eval_metric);
  const int64_t batches_per_epoch = (train_data.num_data() + train_data.batch_size() - 1) / train_data.batch_size();
  for (int epoch = options.begin_epoch; epoch < options.num_epoch; ++epoch) {
    metric->Reset();
    std::optional<ProgressBar> bar;
    if (options.progress) {
      bar.emplace("Epoch " + std::to_string(epoch + 1) + "/" + std::to_string(options.num_epoch), batches_per_epoch);
    }
    int64_t nbatch = 0, samples = 0;
    while (auto batch = train_data.Next()) {
      Forward(*batch, true);
      Backward();
      Update();
      UpdateMetric(*metric, batch->label);
      ++nbatch;
      samples += batch->data.at(0).shape().at(0);
      if (bar) bar->Update(nbatch, samples, FormatMetric(*metric));
      for (const auto& callback : options.batch_end_callback) callback({epoch, nbatch, metric.get()});
    }
    std::string summary = "train " + FormatMetric(*metric);
    if (eval_data != nullptr) {
      summary += "  validation " + FormatMetricValues(Score(*eval_data, options.eval_metric));
    }
    if (bar) bar->Finish(summary);
    for (const auto& callback : options.epoch_end_callback) callback(epoch, *this);
    train_data.Reset();
  }
}

std::vector<MetricValue> Module::Score(NDArrayIter& eval_data, const std::string& eval_metric, int64_t num_batch) {
  const auto metric = MetricFromList(eval_metric);
  eval_data.Reset();
  int64_t done = 0;
  while (auto batch = eval_data.Next()) {
    if (num_batch >= 0 && done >= num_batch) break;
    Forward(*batch, false);
    UpdateMetric(*metric, batch->label);
    ++done;
  }
  eval_data.Reset();
  return metric->GetNameValue();
}

std::vector<Tensor> Module::Predict(NDArrayIter& eval_data, int64_t num_batch) {
  eval_data.Reset();
  std::vector<std::vector<Tensor>> parts;
  int64_t done = 0;
  while (auto batch = eval_data.Next()) {
    if (num_batch >= 0 && done >= num_batch) break;
    Forward(*batch, false);
    parts.resize(outputs_.size());
    for (size_t i = 0; i < outputs_.size(); ++i) {
      parts[i].push_back(FirstRows(outputs_[i], outputs_[i].shape().at(0) - batch->pad));
    }
    ++done;
  }
  eval_data.Reset();
  std::vector<Tensor> joined;
  for (const auto& part : parts) joined.push_back(ConcatRows(part));
  return joined;
}

void Module::SaveCheckpoint(const std::string& prefix, int epoch, bool save_optimizer_states) const {
  WriteFileAtomic(prefix + "-symbol.json", ExportMxnetSymbol(symbol_.ToGraph()));
  ParamList params;
  for (const auto& [name, value] : arg_params()) params.tensors.emplace_back("arg:" + name, value);
  for (const auto& [name, value] : aux_params()) params.tensors.emplace_back("aux:" + name, value);
  SaveMxnetParams(EpochFile(prefix, epoch, ".params"), params);
  if (save_optimizer_states) SaveOptimizerStates(EpochFile(prefix, epoch, ".states"));
}

Module Module::Load(const std::string& prefix, int epoch, bool load_optimizer_states,
                    std::vector<std::string> data_names, std::vector<std::string> label_names) {
  const Graph graph = ImportMxnet(prefix + "-symbol.json", EpochFile(prefix, epoch, ".params"));
  Module module(Symbol::FromGraph(graph), std::move(data_names), std::move(label_names));
  const auto aux = graph.ListAuxiliaryStates();
  for (const auto& [name, value] : graph.params) {
    const bool is_aux = std::find(aux.begin(), aux.end(), name) != aux.end();
    (is_aux ? module.preset_aux_ : module.preset_args_)[name] = value;
  }
  if (load_optimizer_states) module.preloaded_states_ = LoadParams(EpochFile(prefix, epoch, ".states")).AsMap();
  return module;
}

void Module::SaveOptimizerStates(const std::string& path) const {
  if (!train_step_) throw Error("Module::SaveOptimizerStates: call InitOptimizer first");
  SaveParams(path, train_step_->OptimizerStates());
}

void Module::LoadOptimizerStates(const std::string& path) {
  if (!train_step_) throw Error("Module::LoadOptimizerStates: call InitOptimizer first");
  train_step_->SetOptimizerStates(LoadParams(path).AsMap());
}

StepMemoryReport Module::training_memory() const {
  if (!train_step_) throw Error("Module::training_memory: call InitOptimizer first");
  return train_step_->memory();
}

}  // namespace kiln
