#include "train/train_step.h"

#include <algorithm>
#include <cstring>

#include "codegen/compile_cache.h"
#include "runtime/error.h"

namespace kiln {
namespace {

constexpr const char* kNumUpdateState = "__num_update__";

Tensor ScalarTensor(double value, DType dtype) {
  return Tensor::FromDoubles({1}, std::vector<double>{value}, dtype);
}

// Writes `src` into the buffer of `dst` (same shape and dtype), so that tensors the
// executor already holds see the value.
void CopyInto(Tensor& dst, const Tensor& src) {
  std::memcpy(dst.data(), src.data(), src.nbytes());
}

}  // namespace

TrainStep::~TrainStep() = default;

TrainStep::TrainStep(const Graph& model, const std::map<std::string, Tensor>& params, TrainStepOptions options)
    : optimizer_(options.optimizer), seed_(options.seed) {
  options.context.CheckAvailable();  // before compiling for it
  Graph with_params = model;
  for (const auto& [name, value] : params) with_params.params[name] = value;
  StepGraphOptions graph_options;
  graph_options.shapes = options.shapes;
  graph_options.dtypes = options.dtypes;
  graph_options.data_names = options.data_names;
  graph_options.grad_req = options.grad_req;
  graph_options.optimizer = &optimizer_;
  graph_options.wd_mult = options.wd_mult;
  graph_options.lr_mult = options.lr_mult;
  step_graph_ = BuildStepGraph(with_params, graph_options);
  for (const auto& name : step_graph_.params) {
    if (!with_params.params.count(name)) throw Error("training: parameter '" + name + "' has no value");
  }
  for (const auto& name : step_graph_.aux) {
    if (!with_params.params.count(name)) throw Error("training: auxiliary state '" + name + "' has no value");
  }

  // Every input's shape and dtype, and its first value where the step keeps it.
  std::map<std::string, Tensor> kept;
  for (const auto& name : step_graph_.params) kept[name] = with_params.params.at(name).Clone();
  for (const auto& name : step_graph_.aux) kept[name] = with_params.params.at(name).Clone();
  for (const auto& trained : step_graph_.trained) {
    for (const auto& state : step_graph_.state_names) {
      if (state.rfind(trained + "__", 0) == 0 && !kept.count(state)) {
        kept[state] = Tensor(kept.at(trained).shape(), kept.at(trained).dtype());
      }
    }
  }
  CompileOptions compile;
  compile.is_train = true;
  compile.embed_params = false;
  compile.target = options.target;
  compile.graph_opt_level = options.graph_opt_level;
  compile.passes = options.passes;
  for (const auto& [name, value] : kept) {
    compile.input_shapes[name] = value.shape();
    compile.input_types[name] = value.dtype();
  }
  for (const auto& name : step_graph_.data) {
    const auto shape = options.shapes.find(name);
    if (shape == options.shapes.end()) throw Error("training: the shape of input '" + name + "' is not given");
    compile.input_shapes[name] = shape->second;
    compile.input_types[name] = options.dtypes.count(name) ? options.dtypes.at(name) : DType::kFloat32;
  }
  const auto add_scalar_input = [&](const char* name, DType dtype) {
    compile.input_shapes[name] = {1};
    compile.input_types[name] = dtype;
  };
  if (!step_graph_.trained.empty()) add_scalar_input(kLrInput, DType::kFloat32);
  if (step_graph_.uses_eta) add_scalar_input(kEtaInput, DType::kFloat32);
  if (step_graph_.uses_step_counter) add_scalar_input(kStepInput, DType::kInt64);

  if (options.context.is_gpu()) compile.cuda = CompileOptions::Cuda{};
  const LoweredGraph lowered =
      options.context.is_gpu() ? CompileCudaGraph(step_graph_.graph, compile) : LowerGraph(step_graph_.graph, compile);
  ExecutorOptions executor_options;
  executor_options.threads = options.threads;
  if (options.context.is_gpu()) {
    cuda_executor_ = CreateCudaExecutor(lowered, options.context.device_id());
  } else if (options.cache_dir.empty()) {
    executor_ = CompileJit(lowered, compile.target, executor_options);
  } else {
    auto cached = CompileCache(options.cache_dir).Load(lowered, compile.target, executor_options);
    executor_ = std::move(cached.executor);
    memory_.from_cache = cached.hit;
  }
  memory_.arena_bytes = lowered.memory_plan.arena_bytes;
  memory_.lower_bound_bytes = lowered.memory_plan.lower_bound_bytes;
  memory_.no_reuse_bytes = lowered.memory_plan.no_reuse_bytes;
  memory_.num_kernels = lowered.artifact.kernels_size();

  // Bind the executor's inputs and outputs to the kept tensors and their second copies.
  const auto& input_specs = on_gpu() ? cuda_executor_->inputs() : executor_->inputs();
  const auto& output_specs = on_gpu() ? cuda_executor_->outputs() : executor_->outputs();
  std::map<std::string, size_t> output_index;
  for (size_t i = 0; i < output_specs.size(); ++i) output_index[output_specs[i].name] = i;
  for (size_t i = 0; i < step_graph_.num_forward_outputs; ++i) forward_outputs_.push_back(output_specs[i]);
  for (const auto& spec : output_specs) outputs_.emplace_back(spec.shape, spec.dtype);
  for (size_t i = 0; i < input_specs.size(); ++i) {
    const std::string& name = input_specs[i].name;
    if (const auto it = kept.find(name); it != kept.end()) {
      inputs_.push_back(it->second);
      const auto next = output_index.find(NextName(name));
      Slot slot{name, i, 0, next != output_index.end()};
      if (slot.swapped) slot.output = next->second;
      slots_.push_back(slot);
      memory_.param_bytes += static_cast<int64_t>(it->second.nbytes());
      continue;
    }
    inputs_.emplace_back(input_specs[i].shape, input_specs[i].dtype);
    if (name == kLrInput) {
      lr_input_ = static_cast<int64_t>(i);
    } else if (name == kEtaInput) {
      eta_input_ = static_cast<int64_t>(i);
    } else if (name == kStepInput) {
      step_input_ = static_cast<int64_t>(i);
    } else {
      batch_inputs_.push_back(i);
    }
  }
  if (on_gpu()) {
    // Device memory for every input and output, the kept values uploaded once.
    const std::shared_ptr<CudaDevice> device = GpuDevice(options.context.device_id());
    for (size_t i = 0; i < inputs_.size(); ++i) {
      device_inputs_.push_back(DeviceTensor::FromHost(inputs_[i], device));
      inputs_[i] = Tensor();
    }
    for (Tensor& output : outputs_) {
      device_outputs_.emplace_back(output.shape(), output.dtype(), device);
      output = Tensor();
    }
  }
}

const std::vector<TensorSpec>& TrainStep::InputSpecs() const {
  return on_gpu() ? cuda_executor_->inputs() : executor_->inputs();
}

Tensor TrainStep::KeptValue(size_t i) const {
  return on_gpu() ? device_inputs_[i].ToHost() : inputs_[i].Clone();
}

void TrainStep::SetKept(size_t i, const Tensor& value) {
  if (on_gpu()) {
    device_inputs_[i].CopyFromHost(value);
  } else {
    CopyInto(inputs_[i], value);
  }
}

const TrainStep::Slot* TrainStep::FindSlot(const std::string& name) const {
  const auto it = std::find_if(slots_.begin(), slots_.end(), [&](const Slot& slot) { return slot.name == name; });
  return it == slots_.end() ? nullptr : &*it;
}

std::vector<Tensor> TrainStep::Step(const std::map<std::string, Tensor>& batch) {
  std::vector<Tensor> forward = Compute(batch);
  Commit();
  return forward;
}

std::vector<Tensor> TrainStep::Compute(const std::map<std::string, Tensor>& batch) {
  const auto& specs = InputSpecs();
  for (const auto& [name, tensor] : batch) {
    const bool known = std::any_of(batch_inputs_.begin(), batch_inputs_.end(),
                                   [&, &n = name](size_t i) { return specs[i].name == n; });
    if (!known) {
      std::string names;
      for (const size_t i : batch_inputs_) names += (names.empty() ? "" : ", ") + specs[i].name;
      throw Error("training step: unknown input '" + name + "'; the step's data and labels are {" + names + "}");
    }
  }
  for (const size_t i : batch_inputs_) {
    const auto it = batch.find(specs[i].name);
    if (it == batch.end()) {
      throw Error("training step: missing input '" + specs[i].name + "' (" + std::string(DTypeName(specs[i].dtype)) +
                  " " + ShapeToString(specs[i].shape) + ")");
    }
    inputs_[i] = it->second;
  }
  const StepScalars scalars = optimizer_.Scalars(num_update_ + 1);
  if (lr_input_ >= 0) inputs_[lr_input_] = ScalarTensor(scalars.lr, DType::kFloat32);
  if (eta_input_ >= 0) inputs_[eta_input_] = ScalarTensor(scalars.eta, DType::kFloat32);
  if (step_input_ >= 0) {
    // The seed picks a region of the streams, the step a position in it.
    const auto counter = static_cast<int64_t>((seed_ << 32) + static_cast<uint64_t>(num_update_));
    Tensor value({1}, DType::kInt64);
    value.data_as<int64_t>()[0] = counter;
    inputs_[step_input_] = value;
  }
  pending_ = false;
  std::vector<Tensor> forward;
  if (on_gpu()) {
    for (size_t i = 0; i < inputs_.size(); ++i) {
      if (!inputs_[i].defined()) continue;  // kept on the device
      CheckMatches(inputs_[i], specs[i], "training step: input");
      device_inputs_[i].CopyFromHost(inputs_[i]);
      inputs_[i] = Tensor();
    }
    cuda_executor_->RunInto(device_inputs_, device_outputs_);
    pending_ = true;
    for (size_t i = 0; i < forward_outputs_.size(); ++i) forward.push_back(device_outputs_[i].ToHost());
    return forward;
  }
  executor_->RunInto(inputs_, outputs_);
  pending_ = true;
  for (size_t i = 0; i < forward_outputs_.size(); ++i) forward.push_back(outputs_[i].Clone());
  for (const size_t i : batch_inputs_) inputs_[i] = Tensor();  // the batch is the caller's
  return forward;
}

void TrainStep::Commit() {
  if (!pending_) throw Error("training step: nothing to commit; Compute a batch first");
  for (const Slot& slot : slots_) {
    if (!slot.swapped) continue;
    if (on_gpu()) {
      std::swap(device_inputs_[slot.input], device_outputs_[slot.output]);
    } else {
      std::swap(inputs_[slot.input], outputs_[slot.output]);
    }
  }
  ++num_update_;
  pending_ = false;
}

std::map<std::string, Tensor> TrainStep::Params() const {
  std::map<std::string, Tensor> params;
  for (const auto& names : {step_graph_.params, step_graph_.aux}) {
    for (const auto& name : names) params[name] = KeptValue(FindSlot(name)->input);
  }
  return params;
}

void TrainStep::SetParams(const std::map<std::string, Tensor>& params) {
  pending_ = false;  // an update computed from the old values no longer applies
  for (const auto& [name, value] : params) {
    const Slot* slot = FindSlot(name);
    const bool is_param =
        std::find(step_graph_.params.begin(), step_graph_.params.end(), name) != step_graph_.params.end() ||
        std::find(step_graph_.aux.begin(), step_graph_.aux.end(), name) != step_graph_.aux.end();
    if (slot == nullptr || !is_param) throw Error("training: the model has no parameter named '" + name + "'");
    CheckMatches(value, InputSpecs()[slot->input], "parameter");
    SetKept(slot->input, value);
  }
}

std::map<std::string, Tensor> TrainStep::OptimizerStates() const {
  std::map<std::string, Tensor> states;
  for (const auto& name : step_graph_.state_names) states[name] = KeptValue(FindSlot(name)->input);
  Tensor count({1}, DType::kInt64);
  count.data_as<int64_t>()[0] = num_update_;
  states[kNumUpdateState] = count;
  return states;
}

void TrainStep::SetOptimizerStates(const std::map<std::string, Tensor>& states) {
  pending_ = false;
  for (const auto& [name, value] : states) {
    if (name == kNumUpdateState) {
      if (value.size() != 1) throw Error("optimizer state '" + name + "': expected one element");
      const auto count = static_cast<int64_t>(value.GetDouble(0));
      if (count < 0)
        throw Error("optimizer state '" + name + "': expected a count >= 0, given " + std::to_string(count));
      num_update_ = count;  // the schedule is a function of the count alone
      continue;
    }
    const Slot* slot = FindSlot(name);
    const bool is_state = std::find(step_graph_.state_names.begin(), step_graph_.state_names.end(), name) !=
                          step_graph_.state_names.end();
    if (slot == nullptr || !is_state) {
      throw Error("training: '" + name + "' is not an optimizer state of this step (" +
                  OptimizerToString(optimizer_.config()) + ")");
    }
    CheckMatches(value, InputSpecs()[slot->input], "optimizer state");
    SetKept(slot->input, value);
  }
}

}  // namespace kiln
