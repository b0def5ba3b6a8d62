// Runs an artifact compiled for a GPU (kiln compile --target cuda) on a CudaDevice: the
// memory plan's arena, the parameters (uploaded once) and the inputs and outputs live in
// device memory allocated at load, so a call allocates nothing; the kernels are launched
// in plan order with ConfigureCudaLaunch's grids, captured at the first call as a CUDA
// Graph and replayed after (CudaExecutorOptions::cuda_graph).
//
// Call contexts: each is a stream of its own (CudaDevice::OpenStream) with its own arena,
// input and output buffers and captured graph; the parameters are shared. Calls from
// several threads run at once on up to CudaExecutorOptions::call_contexts streams and
// wait for a free one beyond that.
//
// Inputs and outputs may be host tensors (copied in and out) or device tensors of the
// same GPU (copied on the device: nothing crosses to the host). Matrix products run as
// cuBLAS steps between the kernels (proto::KernelCall::gemm). Inputs the kernels update
// in place (BatchNorm's moving statistics in a training step) are copied back into the
// caller's tensors after a call, as the CPU executor updates them.
#pragma once

#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "proto/artifact.pb.h"
#include "runtime/cuda_device.h"
#include "runtime/device_tensor.h"
#include "runtime/executor.h"
#include "runtime/tensor.h"

namespace kiln {

struct CudaExecutorOptions {
  // Capture the launch sequence as a CUDA Graph at the first call and replay it after.
  bool cuda_graph = true;
  // Calls that may run at once, each on a stream with an arena and input and output
  // buffers of its own (memory grows by that much per context); 1 serializes calls.
  int call_contexts = 1;
  // As ExecutorOptions::trusted_keys: when not empty, an artifact not signed by one of
  // these keys is refused before its code is loaded.
  std::vector<PublicKey> trusted_keys{};
  // Values of the parameters an artifact compiled with --no-embed-params lacks, by name
  // (shapes and dtypes checked); uploaded at load like embedded ones.
  std::map<std::string, Tensor> params{};
};

class CudaExecutor {
 public:
  // An artifact file; `device` null: gpu(0) (GpuDevice(0); throws "no CUDA device: ..."
  // where there is none). Every call context runs on a stream opened from `device`
  // (OpenStream), so one device may serve several executors.
  static std::unique_ptr<CudaExecutor> Load(const std::string& path, std::shared_ptr<CudaDevice> device = nullptr,
                                            const CudaExecutorOptions& options = {});
  // An artifact as the compiler makes it (parameter bytes inside its param_values).
  static std::unique_ptr<CudaExecutor> Create(const proto::ArtifactProto& artifact, std::shared_ptr<CudaDevice> device,
                                              const CudaExecutorOptions& options = {});
  ~CudaExecutor();
  CudaExecutor(const CudaExecutor&) = delete;
  CudaExecutor& operator=(const CudaExecutor&) = delete;

  const std::vector<TensorSpec>& inputs() const { return inputs_; }
  const std::vector<TensorSpec>& outputs() const { return outputs_; }
  const CudaDevice& device() const { return *contexts_.front()->stream; }
  Context context() const { return Context::gpu(device().ordinal()); }
  int call_contexts() const { return static_cast<int>(contexts_.size()); }

  std::vector<Tensor> Run(const std::map<std::string, Tensor>& inputs);
  std::vector<Tensor> Run(const std::vector<Tensor>& inputs);
  // Inputs in this GPU's memory; the outputs stay there (fresh device tensors).
  std::vector<DeviceTensor> Run(const std::vector<DeviceTensor>& inputs);
  // The same into the caller's device tensors (shapes and dtypes as outputs()): a call
  // allocates nothing.
  void RunInto(const std::vector<DeviceTensor>& inputs, const std::vector<DeviceTensor>& outputs);
  // Replaces parameter values by name (shapes and dtypes checked) in device memory; later
  // calls (and the captured graphs) read them. Names that are no parameter are an error
  // unless `allow_extra`. Not while calls run.
  void BindParams(const std::map<std::string, Tensor>& params, bool allow_extra = false);
  const std::vector<TensorSpec>& params() const { return param_specs_; }

  // The device time of one call's kernels, averaged over `calls` back-to-back calls (the
  // CUDA Graph's replays, or the plain launches) on whatever the device buffers hold: no
  // copies, for benchmarks.
  double SecondsPerCall(int calls);

 private:
  CudaExecutor() = default;
  // `param_bytes[i]`: parameter i's bytes (from the file or the message).
  static std::unique_ptr<CudaExecutor> Build(const proto::ArtifactProto& artifact,
                                             const std::vector<std::string_view>& param_bytes,
                                             std::shared_ptr<CudaDevice> device, const CudaExecutorOptions& options,
                                             const std::string& where);

  // A kernel launch, or (gemm set) a library GEMM on buffers {B's, A's, C's}, as the
  // artifact describes it; each call context binds it to its own buffers.
  struct Step {
    size_t kernel = 0;  // index in the module
    CudaLaunch launch;
    std::vector<proto::BufferRef> args;  // in the kernel's argument order
    int64_t parallel_extent = 1;
    std::optional<CublasGemmCall> gemm;
  };
  struct Launch {
    const Step* step = nullptr;
    std::vector<uint64_t> buffers;  // device addresses of the step's args
  };
  struct CallContext {
    std::shared_ptr<CudaDevice> stream;
    uint64_t arena = 0;
    std::vector<uint64_t> input_buffers, output_buffers;
    std::vector<Launch> launches;
    bool captured = false;
  };
  // A call context held for one call (waits for a free one), given back at the end.
  class Lease;

  void AddCallContext(std::shared_ptr<CudaDevice> stream, const proto::ArtifactProto& artifact);
  void LaunchAll(CallContext& context);
  void LaunchCall(CallContext& context);  // LaunchAll, or its CUDA Graph (captured at the first call)

  std::vector<TensorSpec> inputs_, outputs_;
  std::vector<Step> steps_;
  std::set<uint32_t> written_inputs_;  // inputs a kernel writes: copied back after a call
  // Allocates the parameters and Run's outputs, and copies BindParams' values; never
  // captured.
  std::shared_ptr<CudaDevice> memory_stream_;
  std::vector<TensorSpec> param_specs_;
  std::vector<uint64_t> params_;
  bool uses_gemm_ = false;
  std::vector<std::unique_ptr<CallContext>> contexts_;
  CudaExecutorOptions options_;
  std::mutex mutex_;  // guards free_
  std::condition_variable context_freed_;
  std::vector<CallContext*> free_;
};

}  // namespace kiln
