#include "runtime/runtime_api.h"

#include "runtime/kernels/gemm.h"

namespace kiln {
namespace {

// The slot's signature (int32 flags) around Sgemm.
void SgemmSlot(int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda, int32_t transpose_a,
               const float* b, int64_t ldb, int32_t transpose_b, float beta, float* c, int64_t ldc) {
  Sgemm(m, n, k, alpha, a, lda, transpose_a != 0, b, ldb, transpose_b != 0, beta, c, ldc);
}

constexpr KilnRuntimeApi kDefaultApi = {kKernelAbiVersion, &SgemmSlot};

}  // namespace

const KilnRuntimeApi* DefaultRuntimeApi() {
  return &kDefaultApi;
}

}  // namespace kiln
