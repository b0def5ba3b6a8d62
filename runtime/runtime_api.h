// The routine table that the runtime hands to generated kernels (runtime/kernel_abi.h).
#pragma once

#include "runtime/kernel_abi.h"

namespace kiln {

// The table of the runtime's own routines (sgemm: kiln::Sgemm), with abi_version =
// kKernelAbiVersion. Static: valid for the life of the process.
const KilnRuntimeApi* DefaultRuntimeApi();

}  // namespace kiln
