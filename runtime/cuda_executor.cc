#include "runtime/cuda_executor.h"

#include <algorithm>
#include <chrono>

#include "runtime/artifact.h"
#include "runtime/cuda_driver.h"
#include "runtime/error.h"
#include "runtime/file_util.h"

namespace kiln {

std::unique_ptr<CudaExecutor> CudaExecutor::Load(const std::string& path, std::unique_ptr<CudaDevice> device,
                                                 const CudaExecutorOptions& options) {
  const std::shared_ptr<const FileBytes> file = FileBytes::Open(path);
  const ArtifactView view = OpenArtifact(file->bytes(), path);
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
  if (artifact.params_size() != static_cast<int>(param_bytes.size()) ||
      artifact.param_values_size() != artifact.params_size()) {
    throw Error(where +
                ": the CUDA executor needs the parameters inside the artifact (compile without "
                "--no-embed-params)");
  }
  std::unique_ptr<CudaExecutor> e(new CudaExecutor());
  e->device_ = std::move(device);
  e->options_ = options;
  for (const auto& spec : artifact.inputs()) e->inputs_.push_back(SpecFromProto(spec, where));
  for (const auto& spec : artifact.outputs()) e->outputs_.push_back(SpecFromProto(spec, where));
  // Kernels by their entry point: "cuda_" + the kernel call's symbol.
  std::map<std::string, size_t> by_entry;
  for (int k = 0; k < artifact.cuda().kernels_size(); ++k) by_entry[artifact.cuda().kernels(k).entry()] = k;
  for (const auto& call : artifact.kernels()) {
    const auto it = by_entry.find("cuda_" + call.symbol());
    if (it == by_entry.end()) {
      throw Error(where + ": kernel '" + call.symbol() + "' (node '" + call.node() + "') has no GPU code");
    }
    e->launches_.push_back({it->second, call.parallel_extent(), artifact.cuda().kernels(static_cast<int>(it->second)),
                            std::vector<proto::BufferRef>(call.args().begin(), call.args().end())});
  }
  e->device_->LoadModule(artifact.cuda());
  e->arena_ = e->device_->Allocate(artifact.arena_bytes());
  for (int i = 0; i < artifact.params_size(); ++i) {
    const TensorSpec spec = SpecFromProto(artifact.params(i), where);
    const size_t bytes = CheckedByteSize(spec.shape, spec.dtype);
    if (param_bytes[static_cast<size_t>(i)].size() != bytes) {
      throw Error(where + ": parameter '" + spec.name + "' holds " + std::to_string(param_bytes[i].size()) +
                  " bytes, expected " + std::to_string(bytes));
    }
    e->params_.push_back(e->device_->Allocate(bytes));
    e->device_->CopyToDevice(e->params_.back(), param_bytes[static_cast<size_t>(i)].data(), bytes);
  }
  for (const auto& spec : e->inputs_)
    e->input_buffers_.push_back(e->device_->Allocate(CheckedByteSize(spec.shape, spec.dtype)));
  for (const auto& spec : e->outputs_)
    e->output_buffers_.push_back(e->device_->Allocate(CheckedByteSize(spec.shape, spec.dtype)));
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
  if (inputs.size() != inputs_.size()) {
    throw Error("expected " + std::to_string(inputs_.size()) + " inputs, given " + std::to_string(inputs.size()));
  }
  for (size_t i = 0; i < inputs.size(); ++i) CheckMatches(inputs[i], inputs_[i], "input");
  const std::lock_guard<std::mutex> lock(mutex_);
  for (size_t i = 0; i < inputs.size(); ++i)
    device_->CopyToDevice(input_buffers_[i], inputs[i].data(), inputs[i].nbytes());
  LaunchCall();
  device_->Synchronize();
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
  std::vector<uint64_t> buffers;
  for (const Launch& launch : launches_) {
    buffers.clear();
    for (const auto& arg : launch.args) {
      switch (arg.kind()) {
        case proto::BufferRef::ARENA: buffers.push_back(arena_ + arg.offset()); break;
        // As the CPU executor: inputs, parameters and outputs are whole buffers.
        case proto::BufferRef::INPUT: buffers.push_back(input_buffers_.at(arg.index())); break;
        case proto::BufferRef::PARAM: buffers.push_back(params_.at(arg.index())); break;
        case proto::BufferRef::OUTPUT: buffers.push_back(output_buffers_.at(arg.index())); break;
        default: throw Error("kernel argument of unknown kind " + std::to_string(arg.kind()));
      }
    }
    device_->Launch(launch.kernel, ConfigureCudaLaunch(launch.form, 0, launch.parallel_extent), buffers, 0,
                    launch.parallel_extent);
  }
}

}  // namespace kiln
