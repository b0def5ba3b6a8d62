// Runs an artifact compiled for a GPU (kiln compile --target cuda) on a CudaDevice: the
// memory plan's arena, the parameters (uploaded once) and the inputs and outputs live in
// device memory allocated at load, so a call allocates nothing; the kernels are launched
// in plan order with ConfigureCudaLaunch's grids, captured at the first call as a CUDA
// Graph and replayed after (CudaExecutorOptions::cuda_graph). Calls are serialized (one
// stream).
//
// Matrix products run as cuBLAS steps between the kernels (proto::KernelCall::gemm).
// Inputs the kernels update in place (BatchNorm's moving statistics in a training step)
// are copied back into the caller's tensors after a call, as the CPU executor updates them.
//
// Not yet: a stream per call context, inputs and outputs already on the device.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "proto/artifact.pb.h"
#include "runtime/cuda_device.h"
#include "runtime/executor.h"
#include "runtime/tensor.h"

namespace kiln {

struct CudaExecutorOptions {
  // Capture the launch sequence as a CUDA Graph at the first call and replay it after.
  bool cuda_graph = true;
  // As ExecutorOptions::trusted_keys: when not empty, an artifact not signed by one of
  // these keys is refused before its code is loaded.
  std::vector<PublicKey> trusted_keys{};
  // Values of the parameters an artifact compiled with --no-embed-params lacks, by name
  // (shapes and dtypes checked); uploaded at load like embedded ones.
  std::map<std::string, Tensor> params{};
};

class CudaExecutor {
 public:
  // An artifact file; `device` null: GPU 0 through the driver (throws "no CUDA device:
  // ..." where there is none).
  static std::unique_ptr<CudaExecutor> Load(const std::string& path, std::unique_ptr<CudaDevice> device = nullptr,
                                            const CudaExecutorOptions& options = {});
  // An artifact as the compiler makes it (parameter bytes inside its param_values).
  static std::unique_ptr<CudaExecutor> Create(const proto::ArtifactProto& artifact, std::unique_ptr<CudaDevice> device,
                                              const CudaExecutorOptions& options = {});
  ~CudaExecutor();
  CudaExecutor(const CudaExecutor&) = delete;
  CudaExecutor& operator=(const CudaExecutor&) = delete;

  const std::vector<TensorSpec>& inputs() const { return inputs_; }
  const std::vector<TensorSpec>& outputs() const { return outputs_; }
  const CudaDevice& device() const { return *device_; }

  std::vector<Tensor> Run(const std::map<std::string, Tensor>& inputs);
  std::vector<Tensor> Run(const std::vector<Tensor>& inputs);
  // The device time of one call's kernels, averaged over `calls` back-to-back calls (the
  // CUDA Graph's replays, or the plain launches) on whatever the device buffers hold: no
  // copies, for benchmarks.
  double SecondsPerCall(int calls);

 private:
  CudaExecutor() = default;
  // `param_bytes[i]`: parameter i's bytes (from the file or the message).
  static std::unique_ptr<CudaExecutor> Build(const proto::ArtifactProto& artifact,
                                             const std::vector<std::string_view>& param_bytes,
                                             std::unique_ptr<CudaDevice> device, const CudaExecutorOptions& options,
                                             const std::string& where);
  void LaunchAll();
  void LaunchCall();  // LaunchAll, or the CUDA Graph (captured at the first call)

  // A kernel launch, or (gemm set) a library GEMM on buffers {B's, A's, C's}.
  struct Launch {
    size_t kernel = 0;  // index in the module
    CudaLaunch launch;
    std::vector<uint64_t> buffers;  // device addresses, in the kernel's argument order
    int64_t parallel_extent = 1;
    std::optional<CublasGemmCall> gemm;
  };
  std::unique_ptr<CudaDevice> device_;
  std::vector<TensorSpec> inputs_, outputs_;
  std::vector<Launch> launches_;
  std::set<uint32_t> written_inputs_;  // inputs a kernel writes: copied back after a call
  uint64_t arena_ = 0;
  std::vector<uint64_t> params_, input_buffers_, output_buffers_;
  CudaExecutorOptions options_;
  bool captured_ = false;
  std::mutex mutex_;
};

}  // namespace kiln
