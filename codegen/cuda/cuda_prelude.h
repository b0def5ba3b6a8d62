// The functions every generated CUDA C module starts with: float16 / bfloat16
// conversions, wrapping integer arithmetic, division by zero, saturating float-to-int
// casts and NaN-aware min / max, as the kir interpreter (the oracle) defines them.
#pragma once

namespace kiln::cuda {

const char* CudaPrelude();

}  // namespace kiln::cuda
