// Executes kernel IR directly, element by element. Slow; it lets lowerings be tested
// without a code generator, and cross-checks the emitters.
#pragma once

#include <cstdint>
#include <vector>

#include "codegen/kir/kir.h"
#include "runtime/kernel_abi.h"

namespace kiln {

// Runs `kernel` over the parallel range [begin, end) (the whole kernel when the range is
// [0, parallel_extent)). `buffers` point at the kernel's arguments in order; routines are
// reached through `api`, as compiled code does.
void InterpretKernel(const kir::Kernel& kernel, const std::vector<void*>& buffers, int64_t begin, int64_t end,
                     const KilnRuntimeApi* api);

}  // namespace kiln
