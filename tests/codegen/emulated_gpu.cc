#include "tests/codegen/emulated_gpu.h"

#include <cstdio>
#include <memory>

#include "codegen/compiler.h"
#include "codegen/cuda/cuda_emulation.h"
#include "codegen/cuda/nvrtc_compiler.h"
#include "runtime/context.h"

namespace kiln::testing {

EmulatedGpus::EmulatedGpus(int count, const std::vector<kir::Kernel>& kernels) : count_(count) {
  for (int ordinal = 0; ordinal < count_; ++ordinal) {
    SetGpuDevice(ordinal, cuda::EmulatedCudaDevice(kernels, {.ordinal = ordinal}));
  }
  SetGpuStreamFactory([](int ordinal, const std::vector<kir::Kernel>& graph_kernels) {
    return std::shared_ptr<CudaDevice>(cuda::EmulatedCudaDevice(graph_kernels, {.ordinal = ordinal}));
  });
}

EmulatedGpus::~EmulatedGpus() {
  SetGpuStreamFactory(nullptr);
  for (int ordinal = 0; ordinal < count_; ++ordinal) SetGpuDevice(ordinal, nullptr);
}

bool HaveNvrtc(const char* what) {
  if (cuda::Nvrtc::Find() != nullptr) return true;
  std::printf("SKIPPED: %s: %s\n", what, cuda::Nvrtc::LoadError().c_str());
  return false;
}

}  // namespace kiln::testing
