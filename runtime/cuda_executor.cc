#include "runtime/cuda_executor.h"

#include <algorithm>
#include <chrono>
#include <map>

#include "runtime/artifact.h"
#include "runtime/cuda_driver.h"
#include "runtime/error.h"
#include "runtime/file_util.h"
#include "runtime/gemm_step.h"

namespace kiln {

std::unique_ptr<CudaExecutor> CudaExecutor::Load(const std::string& path, std::unique_ptr<CudaDevice> device,
                                                 const CudaExecutorOptions& options) {
  const std::shared_ptr<const FileBytes> file = FileBytes::Open(path);
  const ArtifactView view = OpenArtifact(file->bytes(), path, options.trusted_keys);
  if (!view.message.has_cuda()) throw Error("'" + path + "' holds CPU code: load it with Executor::Load");
  if (device == nullptr) device = OpenCudaDevice(0);
  return Build(view.message, view.param_data, std::move(device), options, "'" + path + "'");
}

std::unique_ptr<CudaExecutor> CudaExecutor::Create(const proto::ArtifactProto& artifact,
                                                   std::unique_ptr<CudaDevice> device,
                                                   const CudaExecutorOptions& options) {
  std::vector<std::string_view> param_bytes;
  for (const auto& value : artifact.param_values()) param_bytes.emplace_back(value.data());
  return Build(artifact, param_bytes, std::move(device), options, "<artifact>");
}

std::unique_ptr<CudaExecutor> CudaExecutor::Build(const proto::ArtifactProto& artifact,
                                                  const std::vector<std::string_view>& param_bytes,
                                                  std::unique_ptr<CudaDevice> device,
                                                  const CudaExecutorOptions& options, const std::string& where) {
  if (!artifact.has_cuda()) throw Error(where + " holds no GPU code (compile it with kiln compile --target cuda)");
  const bool embedded = artifact.params_size() == static_cast<int>(param_bytes.size()) &&
                        artifact.param_values_size() == artifact.params_size();
  if (!embedded && !param_bytes.empty()) {
    throw Error(where + ": " + std::to_string(param_bytes.size()) + " parameter values for " +
                std::to_string(artifact.params_size()) + " parameters");
  }
  std::unique_ptr<CudaExecutor> e(new CudaExecutor());
  e->device_ = std::move(device);
  e->options_ = options;
  for (const auto& spec : artifact.inputs()) e->inputs_.push_back(SpecFromProto(spec, where));
  for (const auto& spec : artifact.outputs()) e->outputs_.push_back(SpecFromProto(spec, where));
  e->device_->LoadModule(artifact.cuda());
  e->arena_ = e->device_->Allocate(artifact.arena_bytes());
  std::vector<TensorSpec> params;
  for (int i = 0; i < artifact.params_size(); ++i) {
    const TensorSpec& spec = params.emplace_back(SpecFromProto(artifact.params(i), where));
    const size_t bytes = CheckedByteSize(spec.shape, spec.dtype);
    std::string_view value;
    if (embedded) {
      value = param_bytes[static_cast<size_t>(i)];
    } else {
      // Bound by the caller (an artifact compiled with --no-embed-params).
      const auto given = e->options_.params.find(spec.name);
      if (given == e->options_.params.end()) {
        throw Error(where + ": parameter '" + spec.name +
                    "' has no value (the artifact was compiled with --no-embed-params: bind it with "
                    "CudaExecutorOptions::params)");
      }
      CheckMatches(given->second, spec, "parameter");
      value = std::string_view(static_cast<const char*>(given->second.data()), given->second.nbytes());
    }
    if (value.size() != bytes) {
      throw Error(where + ": parameter '" + spec.name + "' holds " + std::to_string(value.size()) +
                  " bytes, expected " + std::to_string(bytes));
    }
    e->params_.push_back(e->device_->Allocate(bytes));
    e->device_->CopyToDevice(e->params_.back(), value.data(), bytes);
  }
  // The copies are asynchronous: the host bytes must outlive them.
  e->device_->Synchronize();
  e->options_.params.clear();
  for (const auto& spec : e->inputs_) {
    e->input_buffers_.push_back(e->device_->Allocate(CheckedByteSize(spec.shape, spec.dtype)));
  }
  for (const auto& spec : e->outputs_) {
    e->output_buffers_.push_back(e->device_->Allocate(CheckedByteSize(spec.shape, spec.dtype)));
  }
  // Every launch is fixed at load (the buffers never move): its kernel, by the entry point
  // "cuda_" + the kernel call's symbol, its grid and its device addresses.
  std::map<std::string, size_t> by_entry;
  for (int k = 0; k < artifact.cuda().kernels_size(); ++k) by_entry[artifact.cuda().kernels(k).entry()] = k;
  const auto address = [&](const proto::BufferRef& arg) {
    switch (arg.kind()) {
      case proto::BufferRef::ARENA: return e->arena_ + arg.offset();
      // As the CPU executor: inputs, parameters and outputs are whole buffers.
      case proto::BufferRef::INPUT: return e->input_buffers_[arg.index()];
      case proto::BufferRef::PARAM: return e->params_[arg.index()];
      default: return e->output_buffers_[arg.index()];  // OUTPUT (checked)
    }
  };
  for (const auto& call : artifact.kernels()) {
    if (call.has_gemm()) {
      CheckGemmStepCall(call, artifact.arena_bytes(), {&e->inputs_, &params, &e->outputs_}, where);
      const proto::GemmCallProto& gemm = call.gemm();
      if (call.args(static_cast<int>(gemm.c_arg())).kind() == proto::BufferRef::INPUT) {
        e->written_inputs_.insert(call.args(static_cast<int>(gemm.c_arg())).index());
      }
      Launch launch;
      launch.gemm = PlanCublasGemm(gemm);
      launch.buffers = {address(call.args(static_cast<int>(gemm.b_arg()))),
                        address(call.args(static_cast<int>(gemm.a_arg()))),
                        address(call.args(static_cast<int>(gemm.c_arg())))};
      e->launches_.push_back(std::move(launch));
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
    Launch launch{
        it->second, ConfigureCudaLaunch(form, 0, call.parallel_extent()), {}, call.parallel_extent(), std::nullopt};
    for (int i = 0; i < call.args_size(); ++i) {
      const proto::BufferRef& arg = call.args(i);
      CheckBufferRef(arg, static_cast<uint64_t>(std::max<int64_t>(form.arg_bytes(i), 0)), artifact.arena_bytes(),
                     {&e->inputs_, &params, &e->outputs_}, what + ", buffer " + std::to_string(i));
      launch.buffers.push_back(address(arg));
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
    e->launches_.push_back(std::move(launch));
  }
  if (std::any_of(e->launches_.begin(), e->launches_.end(), [](const Launch& l) { return l.gemm.has_value(); })) {
    e->device_->PrepareGemm(artifact.cuda().allow_tf32());
  }
  return e;
}

CudaExecutor::~CudaExecutor() {
  if (device_ == nullptr) return;
  device_->Free(arena_);
  for (const auto* buffers : {&params_, &input_buffers_, &output_buffers_}) {
    for (const uint64_t address : *buffers) device_->Free(address);
  }
}

std::vector<Tensor> CudaExecutor::Run(const std::map<std::string, Tensor>& inputs) {
  return Run(OrderInputs(inputs_, inputs));
}

std::vector<Tensor> CudaExecutor::Run(const std::vector<Tensor>& inputs) {
  CheckInputs(inputs_, inputs);
  const std::lock_guard<std::mutex> lock(mutex_);
  for (size_t i = 0; i < inputs.size(); ++i)
    device_->CopyToDevice(input_buffers_[i], inputs[i].data(), inputs[i].nbytes());
  LaunchCall();
  device_->Synchronize();
  // Inputs the kernels update in place (BatchNorm's moving statistics in a training
  // step) come back into the caller's tensors, as the CPU executor updates them.
  for (const uint32_t i : written_inputs_) {
    device_->CopyToHost(const_cast<void*>(inputs[i].data()), input_buffers_[i], inputs[i].nbytes());
  }
  std::vector<Tensor> outputs;
  for (size_t i = 0; i < outputs_.size(); ++i) {
    outputs.emplace_back(outputs_[i].shape, outputs_[i].dtype);
    device_->CopyToHost(outputs.back().data(), output_buffers_[i], outputs.back().nbytes());
  }
  return outputs;
}

void CudaExecutor::LaunchCall() {
  if (!options_.cuda_graph) {
    LaunchAll();
    return;
  }
  // The buffers never move, so the sequence captured once serves every call.
  if (!captured_) {
    device_->BeginCapture();
    LaunchAll();
    device_->EndCapture();
    captured_ = true;
  }
  device_->Replay();
}

double CudaExecutor::SecondsPerCall(int calls) {
  const std::lock_guard<std::mutex> lock(mutex_);
  LaunchCall();  // captures, and warms up
  device_->Synchronize();
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < calls; ++i) LaunchCall();
  device_->Synchronize();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() / std::max(calls, 1);
}

void CudaExecutor::LaunchAll() {
  for (const Launch& launch : launches_) {
    if (launch.gemm) {
      device_->Gemm(*launch.gemm, launch.buffers[0], launch.buffers[1], launch.buffers[2]);
    } else {
      device_->Launch(launch.kernel, launch.launch, launch.buffers, 0, launch.parallel_extent);
    }
  }
}

}  // namespace kiln
