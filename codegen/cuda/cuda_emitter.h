// The CUDA C emitter: kernel IR -> CUDA C source that NVRTC compiles (and that the
// emulation harness compiles on the CPU). It reads the same kir::Kernel the LLVM
// emitter reads and knows no operator.
//
// What the generated code assumes and guarantees:
// - Each kir::Kernel becomes `extern "C" __global__ void cuda_<symbol>(T0* a0, ...,
//   long long begin, long long end)`, <symbol> being KernelSymbolName(kernel.name); the
//   buffers are the kernel's arguments in order (device pointers).
// - Scheduling (the thread binding, as TVM's TIR binds loops to threads): the iterations
//   [begin, end) of the outermost kParallel loop are spread over the grid's threads with a
//   grid-stride loop. Where that loop's body is one kIndependent loop whose extent has a
//   static bound B, the two are bound together: each thread takes one (iteration, inner
//   index) pair of (end - begin) x B, and threads past the inner loop's actual extent do
//   nothing. Other loops run in each thread in order. A kernel without a parallel loop
//   runs its body on one thread.
// - Vectorized memory access: where that bound inner loop's body stores float32
//   arguments at unit stride (elementwise work, fused or not) and B is a multiple of 4,
//   each thread takes four consecutive inner iterations: float32 arguments read at unit
//   stride are loaded 16 bytes at a time (kiln_f4), the four results stored so too, when
//   the four are in range and every such address is 16-byte aligned (else one by one).
// - Arithmetic is kir's contract (codegen/kir/kir.h, written out in cuda_prelude.h); bool
//   is one byte. Transcendental functions are CUDA's (expf, logf, ...: within a few ulp
//   of the interpreter's double results).
// - Shared subexpressions are computed once per statement; a select whose arms load runs
//   only the arm it picks (guarded loads are never read out of range).
// - Local buffers (Allocate) are per-thread arrays, zero-filled.
// - Routine calls (sgemm, sconv) are not emitted: on the GPU they become library steps
//   (cuBLAS) of their own; EmitCudaModule throws kiln::Error naming the kernel.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "codegen/kir/kir.h"
#include "proto/artifact.pb.h"

namespace kiln::cuda {

struct CudaKernelInfo {
  std::string name;   // the kir kernel's name
  std::string entry;  // the __global__ function
  std::vector<kir::Buffer> args;
  int64_t parallel_extent = 1;
  // Threads per parallel iteration: the static bound of the independent loop bound to
  // threads together with the parallel loop (a quarter of it with float4), 1 when there
  // is none.
  int64_t inner_threads = 1;
  // Four inner iterations a thread, float32 loads and stores moved 16 bytes at a time.
  bool float4 = false;
  bool has_parallel_loop = false;
  // Kernels with kReduction loops: a block of this many threads per parallel iteration
  // (or for the whole kernel, without one), cooperating: reductions split across the
  // block, independent loops too, the rest run by every thread alike with global
  // stores by thread 0; 0 otherwise.
  int64_t block_threads = 0;
  std::vector<bool> written;  // per argument: whether the kernel writes it
};

struct CudaModuleSource {
  std::string source;  // the prelude, then every kernel
  std::vector<CudaKernelInfo> kernels;
};

// Throws kiln::Error for a kernel the emitter cannot express (routine calls).
CudaModuleSource EmitCudaModule(const std::vector<kir::Kernel>& kernels);
// The kernel's entry point: "cuda_" + KernelSymbolName(kernel_name).
std::string CudaEntryName(const std::string& kernel_name);
// The C type an element of a buffer of `type` is stored as (float16: unsigned short).
const char* CudaStorageType(kir::ScalarType type);
// Whether the emitter can express `kernel` (false: it calls routines).
bool CudaCanEmit(const kir::Kernel& kernel);

// The kernel's launch form as artifacts carry it (runtime/cuda_device.h's
// ConfigureCudaLaunch reads it).
proto::CudaKernelProto LaunchForm(const CudaKernelInfo& kernel);

}  // namespace kiln::cuda
