#include "runtime/runtime_api.h"

#include "runtime/kernels/gemm.h"

namespace kiln {
namespace {

// The slot's signature (int32 flags) around Sgemm; transpose_b == 2: B packed by
// PackGemmB.
void SgemmSlot(int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda, int32_t transpose_a,
               const float* b, int64_t ldb, int32_t transpose_b, float beta, float* c, int64_t ldc) {
  if (transpose_b == kSgemmPackedB) return SgemmPackedB(m, n, k, alpha, a, lda, transpose_a != 0, b, beta, c, ldc);
  Sgemm(m, n, k, alpha, a, lda, transpose_a != 0, b, ldb, transpose_b != 0, beta, c, ldc);
}

void SconvSlot(int64_t m, int64_t col0, int64_t cols, const float* a, int64_t lda, const float* x, int64_t channels,
               int64_t height, int64_t width, int64_t kernel_h, int64_t kernel_w, int64_t stride_h, int64_t stride_w,
               int64_t dilate_h, int64_t dilate_w, int64_t pad_h, int64_t pad_w, int64_t out_w, float* c, int64_t ldc) {
  const ConvGemmShape shape{channels, height,   width,    kernel_h, kernel_w, stride_h,
                            stride_w, dilate_h, dilate_w, pad_h,    pad_w,    out_w};
  SgemmConv(m, col0, cols, a, lda, x, shape, c, ldc);
}

void SconvTSlot(int64_t m, int64_t col0, int64_t cols, const float* a, int64_t, const float* x, int64_t channels,
                int64_t height, int64_t width, int64_t kernel_h, int64_t kernel_w, int64_t stride_h, int64_t stride_w,
                int64_t dilate_h, int64_t dilate_w, int64_t pad_h, int64_t pad_w, int64_t out_w, float* c,
                int64_t ldc) {
  const ConvGemmShape shape{channels, height,   width,    kernel_h, kernel_w, stride_h,
                            stride_w, dilate_h, dilate_w, pad_h,    pad_w,    out_w};
  SgemmConvT(m, col0, cols, a, x, shape, c, ldc);
}

constexpr KilnRuntimeApi kDefaultApi = {kKernelAbiVersion, &SgemmSlot, &SconvSlot, &SconvTSlot};

}  // namespace

const KilnRuntimeApi* DefaultRuntimeApi() {
  return &kDefaultApi;
}

}  // namespace kiln
