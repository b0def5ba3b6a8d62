// The emulation harness: the CUDA C the emitter writes, compiled for the CPU by the host's
// C++ compiler, behind the CPU kernel ABI (runtime/kernel_abi.h). A small header maps
// CUDA's built-ins (blockIdx, threadIdx, blockDim, gridDim, __global__) to host code and
// runs a launch's blocks and threads in turn, so that the executor runs the GPU code
// from the same plan and the tests check it against the reference oracle without a GPU.
//
// Blocks run one after another; the threads of a cooperative block (block reductions)
// run as fibers that switch at each barrier, so __syncthreads holds, with the block's
// shared memory per host thread. Streams opened from an emulated device share its memory.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "codegen/kir/kir.h"
#include "runtime/cuda_device.h"

namespace kiln::cuda {

struct EmulationOptions {
  // The launch a call through the CPU kernel ABI emulates: small blocks and few of them,
  // so that the grid-stride loops take several rounds (the emulated device runs the
  // CUDA executor's own launches).
  int block = 64;
  int64_t max_blocks = 3;
  // The host compiler and its optimization level.
  std::string compiler = "c++";
  int opt_level = 0;
  // The GPU the emulated device says it is (Context::gpu(ordinal)).
  int ordinal = 0;
};

// The header that maps CUDA's built-ins to host code (prepended to the module).
const char* EmulationHeader();

// An ELF shared object exporting every kernel under KernelSymbolName(kernel.name) with
// the CPU kernel ABI and its ABI record, running the kernel's CUDA C. Throws kiln::Error
// when a kernel cannot be emitted or the host compiler fails (with its messages).
std::string BuildEmulatedSharedObject(const std::vector<kir::Kernel>& kernels, const EmulationOptions& options = {});

// A CudaDevice on the CPU for runtime/cuda_executor: host memory, and launches that run
// `kernels`' emulated CUDA C with the grid the executor chose (its LoadModule finds them
// by the artifact's entry names).
std::unique_ptr<CudaDevice> EmulatedCudaDevice(const std::vector<kir::Kernel>& kernels,
                                               const EmulationOptions& options = {});

}  // namespace kiln::cuda
