#include "runtime/cuda_executor.h"

#include <algorithm>
#include <chrono>
#include <map>
#include <utility>

#include "runtime/artifact.h"
#include "runtime/context.h"
#include "runtime/cuda_driver.h"
#include "runtime/error.h"
#include "runtime/file_util.h"
#include "runtime/gemm_step.h"

namespace kiln {

std::unique_ptr<CudaExecutor> CudaExecutor::Load(const std::string& path, std::shared_ptr<CudaDevice> device,
                                                 const CudaExecutorOptions& options) {
  const std::shared_ptr<const FileBytes> file = FileBytes::Open(path);
  const ArtifactView view = OpenArtifact(file->bytes(), path, options.trusted_keys);
  if (!view.message.has_cuda()) throw Error("'" + path + "' holds CPU code: load it with Executor::Load");
  if (device == nullptr) device = GpuDevice(0);
  return Build(view.message, view.param_data, std::move(device), options, "'" + path + "'");
}

std::unique_ptr<CudaExecutor> CudaExecutor::Create(const proto::ArtifactProto& artifact,
                                                   std::shared_ptr<CudaDevice> device,
                                                   const CudaExecutorOptions& options) {
  std::vector<std::string_view> param_bytes;
  for (const auto& value : artifact.param_values()) param_bytes.emplace_back(value.data());
  return Build(artifact, param_bytes, std::move(device), options, "<artifact>");
}

std::unique_ptr<CudaExecutor> CudaExecutor::Build(const proto::ArtifactProto& artifact,
                                                  const std::vector<std::string_view>& param_bytes,
                                                  std::shared_ptr<CudaDevice> device,
                                                  const CudaExecutorOptions& options, const std::string& where) {
  if (!artifact.has_cuda()) throw Error(where + " holds no GPU code (compile it with kiln compile --target cuda)");
  if (device == nullptr) throw Error(where + ": no device given");
  constexpr int kMaxCallContexts = 256;
  if (options.call_contexts < 1 || options.call_contexts > kMaxCallContexts) {
    throw Error(where + ": call_contexts must be 1 to " + std::to_string(kMaxCallContexts) + ", given " +
                std::to_string(options.call_contexts));
  }
  const bool embedded = artifact.params_size() == static_cast<int>(param_bytes.size()) &&
                        artifact.param_values_size() == artifact.params_size();
  if (!embedded && !param_bytes.empty()) {
    throw Error(where + ": " + std::to_string(param_bytes.size()) + " parameter values for " +
                std::to_string(artifact.params_size()) + " parameters");
  }
  std::unique_ptr<CudaExecutor> e(new CudaExecutor());
  e->options_ = options;
  for (const auto& spec : artifact.inputs()) e->inputs_.push_back(SpecFromProto(spec, where));
  for (const auto& spec : artifact.outputs()) e->outputs_.push_back(SpecFromProto(spec, where));

  // Every step is checked and fixed at load: its kernel, by the entry point "cuda_" + the
  // kernel call's symbol, its grid and its buffers.
  std::vector<TensorSpec> params;
  for (int i = 0; i < artifact.params_size(); ++i) params.push_back(SpecFromProto(artifact.params(i), where));
  std::map<std::string, size_t> by_entry;
  for (int k = 0; k < artifact.cuda().kernels_size(); ++k) by_entry[artifact.cuda().kernels(k).entry()] = k;
  for (const auto& call : artifact.kernels()) {
    if (call.has_gemm()) {
      CheckGemmStepCall(call, artifact.arena_bytes(), {&e->inputs_, &params, &e->outputs_}, where);
      const proto::GemmCallProto& gemm = call.gemm();
      if (call.args(static_cast<int>(gemm.c_arg())).kind() == proto::BufferRef::INPUT) {
        e->written_inputs_.insert(call.args(static_cast<int>(gemm.c_arg())).index());
      }
      Step step;
      step.gemm = PlanCublasGemm(gemm);
      step.args = {call.args(static_cast<int>(gemm.b_arg())), call.args(static_cast<int>(gemm.a_arg())),
                   call.args(static_cast<int>(gemm.c_arg()))};
      e->steps_.push_back(std::move(step));
      e->uses_gemm_ = true;
      continue;
    }
    const auto it = by_entry.find("cuda_" + call.symbol());
    if (it == by_entry.end()) {
      throw Error(where + ": kernel '" + Abbreviate(call.symbol()) + "' (node '" + Abbreviate(call.node()) +
                  "') has no GPU code");
    }
    const proto::CudaKernelProto& form = artifact.cuda().kernels(static_cast<int>(it->second));
    const std::string what =
        where + ": kernel '" + Abbreviate(call.symbol()) + "' (node '" + Abbreviate(call.node()) + "')";
    if (call.args_size() != form.arg_bytes_size()) {
      throw Error(what + ": the code takes " + std::to_string(form.arg_bytes_size()) + " buffers, the artifact gives " +
                  std::to_string(call.args_size()));
    }
    if (form.has_parallel_loop() && (form.inner_threads() < 1 || form.inner_threads() > (int64_t{1} << 20))) {
      throw Error(what + ": " + std::to_string(form.inner_threads()) + " threads per iteration (expected 1 to 2^20)");
    }
    Step step{
        it->second, ConfigureCudaLaunch(form, 0, call.parallel_extent()), {}, call.parallel_extent(), std::nullopt};
    for (int i = 0; i < call.args_size(); ++i) {
      const proto::BufferRef& arg = call.args(i);
      CheckBufferRef(arg, static_cast<uint64_t>(std::max<int64_t>(form.arg_bytes(i), 0)), artifact.arena_bytes(),
                     {&e->inputs_, &params, &e->outputs_}, what + ", buffer " + std::to_string(i));
      step.args.push_back(arg);
    }
    for (const uint32_t written : form.written_args()) {
      if (written >= static_cast<uint32_t>(call.args_size())) {
        throw Error(what + ": it writes argument " + std::to_string(written) + " of " +
                    std::to_string(call.args_size()));
      }
      if (call.args(static_cast<int>(written)).kind() == proto::BufferRef::INPUT) {
        e->written_inputs_.insert(call.args(static_cast<int>(written)).index());
      }
    }
    e->steps_.push_back(std::move(step));
  }

  // The parameters, uploaded once through a stream of the executor's own that no call
  // captures (so are its outputs' device tensors, which callers copy from any thread).
  e->memory_stream_ = device->OpenStream();
  e->param_specs_ = params;
  for (size_t i = 0; i < params.size(); ++i) {
    const TensorSpec& spec = params[i];
    const size_t bytes = CheckedByteSize(spec.shape, spec.dtype);
    std::string_view value;
    if (embedded) {
      value = param_bytes[i];
    } else {
      // Bound by the caller (an artifact compiled with --no-embed-params).
      const auto given = e->options_.params.find(spec.name);
      if (given == e->options_.params.end()) {
        throw Error(where + ": parameter '" + spec.name +
                    "' has no value: the artifact was compiled with --no-embed-params (use an artifact with "
                    "embedded parameters, or bind the values with CudaExecutorOptions::params)");
      }
      CheckMatches(given->second, spec, "parameter");
      value = std::string_view(static_cast<const char*>(given->second.data()), given->second.nbytes());
    }
    if (value.size() != bytes) {
      throw Error(where + ": parameter '" + spec.name + "' holds " + std::to_string(value.size()) +
                  " bytes, expected " + std::to_string(bytes));
    }
    e->params_.push_back(e->memory_stream_->Allocate(bytes));
    e->memory_stream_->CopyToDevice(e->params_.back(), value.data(), bytes);
  }
  // The copies are asynchronous: the host bytes must outlive them.
  e->memory_stream_->Synchronize();
  e->options_.params.clear();
  // Every call context on a stream of its own: `device` itself may be shared (the
  // registry's gpu(0)), and a stream holds one module and one capture.
  for (int c = 0; c < options.call_contexts; ++c) e->AddCallContext(device->OpenStream(), artifact);
  return e;
}

void CudaExecutor::AddCallContext(std::shared_ptr<CudaDevice> stream, const proto::ArtifactProto& artifact) {
  auto context = std::make_unique<CallContext>();
  context->stream = std::move(stream);
  // Held before anything is allocated, so that the destructor frees what a failure leaves.
  CallContext& c = *contexts_.emplace_back(std::move(context));
  CudaDevice& device = *c.stream;
  device.LoadModule(artifact.cuda());
  c.arena = device.Allocate(artifact.arena_bytes());
  for (const auto& spec : inputs_) c.input_buffers.push_back(device.Allocate(CheckedByteSize(spec.shape, spec.dtype)));
  for (const auto& spec : outputs_) {
    c.output_buffers.push_back(device.Allocate(CheckedByteSize(spec.shape, spec.dtype)));
  }
  const auto address = [&](const proto::BufferRef& arg) {
    switch (arg.kind()) {
      case proto::BufferRef::ARENA: return c.arena + arg.offset();
      // As the CPU executor: inputs, parameters and outputs are whole buffers.
      case proto::BufferRef::INPUT: return c.input_buffers[arg.index()];
      case proto::BufferRef::PARAM: return params_[arg.index()];
      default: return c.output_buffers[arg.index()];  // OUTPUT (checked at load)
    }
  };
  for (const Step& step : steps_) {
    Launch launch{&step, {}};
    for (const proto::BufferRef& arg : step.args) launch.buffers.push_back(address(arg));
    c.launches.push_back(std::move(launch));
  }
  if (uses_gemm_) device.PrepareGemm(artifact.cuda().allow_tf32());
  free_.push_back(&c);
}

CudaExecutor::~CudaExecutor() {
  for (auto it = contexts_.rbegin(); it != contexts_.rend(); ++it) {
    CallContext& c = **it;
    c.stream->Free(c.arena);
    for (const auto* buffers : {&c.input_buffers, &c.output_buffers}) {
      for (const uint64_t address : *buffers) c.stream->Free(address);
    }
  }
  for (const uint64_t address : params_) memory_stream_->Free(address);
}

void CudaExecutor::BindParams(const std::map<std::string, Tensor>& params, bool allow_extra) {
  std::map<std::string, size_t> index;
  for (size_t i = 0; i < param_specs_.size(); ++i) index[param_specs_[i].name] = i;
  for (const auto& [name, value] : params) {
    const auto it = index.find(name);
    if (it == index.end()) {
      if (allow_extra) continue;
      throw Error("BindParams: the artifact has no parameter '" + name + "'");
    }
    CheckMatches(value, param_specs_[it->second], "parameter");
  }
  for (const auto& [name, value] : params) {
    const auto it = index.find(name);
    if (it == index.end()) continue;
    memory_stream_->CopyToDevice(params_[it->second], value.data(), value.nbytes());
  }
  // The copies are asynchronous: the host bytes must outlive them.
  memory_stream_->Synchronize();
}

class CudaExecutor::Lease {
 public:
  explicit Lease(CudaExecutor& executor) : executor_(executor) {
    std::unique_lock<std::mutex> lock(executor_.mutex_);
    executor_.context_freed_.wait(lock, [&] { return !executor_.free_.empty(); });
    context_ = executor_.free_.back();
    executor_.free_.pop_back();
  }
  ~Lease() {
    {
      const std::lock_guard<std::mutex> lock(executor_.mutex_);
      executor_.free_.push_back(context_);
    }
    executor_.context_freed_.notify_one();
  }
  Lease(const Lease&) = delete;
  Lease& operator=(const Lease&) = delete;
  CallContext& operator*() const { return *context_; }
  CallContext* operator->() const { return context_; }

 private:
  CudaExecutor& executor_;
  CallContext* context_ = nullptr;
};

std::vector<Tensor> CudaExecutor::Run(const std::map<std::string, Tensor>& inputs) {
  return Run(OrderInputs(inputs_, inputs));
}

std::vector<Tensor> CudaExecutor::Run(const std::vector<Tensor>& inputs) {
  CheckInputs(inputs_, inputs);
  const Lease context(*this);
  CudaDevice& stream = *context->stream;
  for (size_t i = 0; i < inputs.size(); ++i) {
    stream.CopyToDevice(context->input_buffers[i], inputs[i].data(), inputs[i].nbytes());
  }
  LaunchCall(*context);
  stream.Synchronize();
  // Inputs the kernels update in place (BatchNorm's moving statistics in a training
  // step) come back into the caller's tensors, as the CPU executor updates them.
  for (const uint32_t i : written_inputs_) {
    stream.CopyToHost(const_cast<void*>(inputs[i].data()), context->input_buffers[i], inputs[i].nbytes());
  }
  std::vector<Tensor> outputs;
  for (size_t i = 0; i < outputs_.size(); ++i) {
    outputs.emplace_back(outputs_[i].shape, outputs_[i].dtype);
    stream.CopyToHost(outputs.back().data(), context->output_buffers[i], outputs.back().nbytes());
  }
  return outputs;
}

namespace {
constexpr const char* kCopyThere = "copy it there first (DeviceTensor::CopyTo)";

// Throws unless `given` are `specs`' tensors on `ordinal`'s GPU ("input 'x': ...").
void CheckDeviceTensors(const std::vector<TensorSpec>& specs, const std::vector<DeviceTensor>& given, const char* what,
                        int ordinal, const char* remedy) {
  if (given.size() != specs.size()) {
    throw Error("expected " + std::to_string(specs.size()) + " " + what + "s, given " + std::to_string(given.size()));
  }
  for (size_t i = 0; i < given.size(); ++i) {
    const TensorSpec& spec = specs[i];
    if (!given[i].defined()) throw Error(std::string(what) + " '" + spec.name + "' is undefined");
    CheckMatches(given[i].shape(), given[i].dtype(), spec, what);
    if (given[i].device().ordinal() != ordinal) {
      throw Error(std::string(what) + " '" + spec.name + "' is on " + given[i].context().ToString() +
                  ", the executor on gpu(" + std::to_string(ordinal) + "): " + remedy);
    }
  }
}
}  // namespace

std::vector<DeviceTensor> CudaExecutor::Run(const std::vector<DeviceTensor>& inputs) {
  CheckDeviceTensors(inputs_, inputs, "input", device().ordinal(), kCopyThere);
  std::vector<DeviceTensor> outputs;
  // On the executor's memory stream, which no call captures; any context's copies reach them.
  for (const TensorSpec& spec : outputs_) outputs.emplace_back(spec.shape, spec.dtype, memory_stream_);
  RunInto(inputs, outputs);
  return outputs;
}

void CudaExecutor::RunInto(const std::vector<DeviceTensor>& inputs, const std::vector<DeviceTensor>& outputs) {
  CheckDeviceTensors(inputs_, inputs, "input", device().ordinal(), kCopyThere);
  CheckDeviceTensors(outputs_, outputs, "output", device().ordinal(), "allocate it on the executor's GPU");
  const Lease context(*this);
  CudaDevice& stream = *context->stream;
  for (size_t i = 0; i < inputs.size(); ++i) {
    stream.CopyOnDevice(context->input_buffers[i], inputs[i].address(), inputs[i].nbytes());
  }
  LaunchCall(*context);
  for (const uint32_t i : written_inputs_) {
    stream.CopyOnDevice(inputs[i].address(), context->input_buffers[i], inputs[i].nbytes());
  }
  for (size_t i = 0; i < outputs.size(); ++i) {
    stream.CopyOnDevice(outputs[i].address(), context->output_buffers[i], outputs[i].nbytes());
  }
  // Other streams may read the outputs (and the updated inputs) once this returns.
  stream.Synchronize();
}

void CudaExecutor::LaunchCall(CallContext& context) {
  if (!options_.cuda_graph) {
    LaunchAll(context);
    return;
  }
  // The buffers never move, so the sequence captured once serves every call.
  if (!context.captured) {
    context.stream->BeginCapture();
    try {
      LaunchAll(context);
    } catch (...) {
      // Ends the capture, so that the stream is usable again (the next call captures anew).
      try {
        context.stream->EndCapture();
      } catch (const Error&) {
        // The capture failed too: the launch's error is the one to report.
      }
      throw;
    }
    context.stream->EndCapture();
    context.captured = true;
  }
  context.stream->Replay();
}

double CudaExecutor::SecondsPerCall(int calls) {
  const Lease context(*this);
  LaunchCall(*context);  // captures, and warms up
  context->stream->Synchronize();
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < calls; ++i) LaunchCall(*context);
  context->stream->Synchronize();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() / std::max(calls, 1);
}

void CudaExecutor::LaunchAll(CallContext& context) {
  CudaDevice& stream = *context.stream;
  for (const Launch& launch : context.launches) {
    const Step& step = *launch.step;
    if (step.gemm) {
      stream.Gemm(*step.gemm, launch.buffers[0], launch.buffers[1], launch.buffers[2]);
    } else {
      stream.Launch(step.kernel, step.launch, launch.buffers, 0, step.parallel_extent);
    }
  }
}

}  // namespace kiln
