// What the CUDA executor needs of a GPU: memory, copies, the artifact's module, launches.
// The driver implements it (OpenCudaDevice, runtime/cuda_driver.h); the emulation harness
// implements it on the CPU (codegen/cuda/cuda_emulation.h), so that the executor's plan,
// bindings and launches are tested without a GPU.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "proto/artifact.pb.h"
#include "runtime/gemm_step.h"

namespace kiln {

struct CudaLaunch {
  int64_t grid = 0;  // blocks (0: nothing to launch)
  int block = 0;     // threads per block
  int64_t work_items = 0;
};
inline constexpr int kCudaBlockSize = 256;
// Enough blocks to fill an H100 several times over; more work runs in grid-stride loops.
inline constexpr int64_t kCudaMaxBlocks = 4096;
// How to launch a kernel (its launch form from the artifact) for its parallel iterations
// [begin, end): whole warps, at most `max_blocks` blocks.
CudaLaunch ConfigureCudaLaunch(const proto::CudaKernelProto& kernel, int64_t begin, int64_t end,
                               int block = kCudaBlockSize, int64_t max_blocks = kCudaMaxBlocks);

// One stream on a GPU, with the module loaded on it and its captured graph. Memory is the
// GPU's: an address one CudaDevice allocates is valid on every other of the same ordinal.
class CudaDevice {
 public:
  virtual ~CudaDevice() = default;
  virtual std::string name() const = 0;
  // Which GPU (Context::gpu(ordinal)).
  virtual int ordinal() const = 0;
  // Another stream on the same GPU, sharing its memory, with a module and a capture of
  // its own: what the CUDA executor's call contexts run on.
  virtual std::unique_ptr<CudaDevice> OpenStream() const = 0;
  // Device addresses (0 for 0 bytes). Throws kiln::Error when memory runs out.
  virtual uint64_t Allocate(size_t bytes) = 0;
  virtual void Free(uint64_t address) = 0;
  virtual void CopyToDevice(uint64_t device, const void* host, size_t bytes) = 0;
  virtual void CopyToHost(void* host, uint64_t device, size_t bytes) = 0;
  // In order after the previous work on this stream (not synchronized).
  virtual void CopyOnDevice(uint64_t destination, uint64_t source, size_t bytes) = 0;
  // Loads the artifact's code (a cubin for this device, else the PTX); kernels are then
  // named by their index in code.kernels().
  virtual void LoadModule(const proto::CudaCodeProto& code) = 0;
  // Launches kernel `kernel` with its buffers and parallel range, in order after the
  // previous launches and copies.
  virtual void Launch(size_t kernel, const CudaLaunch& launch, const std::vector<uint64_t>& buffers, int64_t begin,
                      int64_t end) = 0;
  // Readies the GEMM library (cuBLAS) for Gemm: its handle on the device's stream and its
  // workspace, made here since nothing may be allocated while a capture records. TF32
  // tensor cores only with `allow_tf32`.
  virtual void PrepareGemm(bool allow_tf32) = 0;
  // Runs a library GEMM step, as cuBLAS's call (PlanCublasGemm), on device buffers (the
  // call's offsets are from their starts: first = B's, second = A's), in order after the
  // previous work; captured as launches are.
  virtual void Gemm(const CublasGemmCall& call, uint64_t first, uint64_t second, uint64_t c) = 0;
  virtual void Synchronize() = 0;
  // Records the launches made until EndCapture instead of running them (a CUDA Graph on
  // the GPU); Replay runs the recorded sequence, on the same buffers. Copies are not
  // recorded. A new capture replaces the old one.
  virtual void BeginCapture() = 0;
  virtual void EndCapture() = 0;
  virtual void Replay() = 0;
};

}  // namespace kiln
