// GPUs for tests on machines without one: gpu(0) .. gpu(count - 1) as the CUDA emulation
// for a scope (SetGpuDevice), and graphs compiled for a GPU run emulated
// (SetGpuStreamFactory); both restored at the end.
#pragma once

#include <vector>

#include "codegen/kir/kir.h"

namespace kiln::testing {

class EmulatedGpus {
 public:
  // `kernels`: what the registry's devices can run (an executor loaded from a file with
  // no device of its own finds them there).
  explicit EmulatedGpus(int count = 1, const std::vector<kir::Kernel>& kernels = {});
  ~EmulatedGpus();
  EmulatedGpus(const EmulatedGpus&) = delete;
  EmulatedGpus& operator=(const EmulatedGpus&) = delete;

 private:
  int count_;
};

// Whether NVRTC is here; if not, prints "SKIPPED: <what>: <why>" (the test returns).
bool HaveNvrtc(const char* what);

}  // namespace kiln::testing
