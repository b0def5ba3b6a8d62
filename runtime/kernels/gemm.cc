#include "runtime/kernels/gemm.h"

#include <algorithm>
#include <cstdlib>
#include <memory>
#include <new>
#include <string>

#include "runtime/error.h"
#include "runtime/kernels/gemm_driver.h"

namespace kiln {
namespace gemm_internal {
namespace {

// A 64-byte aligned float buffer that only grows: packing buffers are allocated once
// per thread and size, not once per call.
class AlignedBuffer {
 public:
  float* Reserve(size_t floats) {
    if (floats > capacity_) {
      const size_t bytes = (floats * sizeof(float) + 63) / 64 * 64;
      data_.reset(static_cast<float*>(std::aligned_alloc(64, bytes)));
      if (data_ == nullptr) throw std::bad_alloc();
      capacity_ = floats;
    }
    return data_.get();
  }

 private:
  struct Free {
    void operator()(float* p) const { std::free(p); }
  };
  std::unique_ptr<float, Free> data_;
  size_t capacity_ = 0;
};

thread_local AlignedBuffer a_scratch;
thread_local AlignedBuffer b_scratch;

using GemmFn = void (*)(const GemmArgs&);

GemmFn KernelSet(GemmIsa isa) {
  switch (isa) {
    case GemmIsa::kAvx512: return SgemmAvx512;
    case GemmIsa::kAvx2: return SgemmAvx2;
    case GemmIsa::kPortable: break;
  }
  return SgemmPortable;
}

void Run(GemmFn fn, const GemmArgs& g) {
  if (g.m <= 0 || g.n <= 0) return;
  if (g.k <= 0) {
    // An empty sum: C = beta C, and beta == 0 must not read C.
    for (int64_t i = 0; i < g.m; ++i) {
      float* row = g.c + i * g.ldc;
      if (g.beta == 0.0f) {
        std::fill(row, row + g.n, 0.0f);
      } else {
        for (int64_t j = 0; j < g.n; ++j) row[j] *= g.beta;
      }
    }
    return;
  }
  fn(g);
}

using ConvFn = void (*)(const ConvArgs&);

ConvFn ConvKernelSet(GemmIsa isa) {
  switch (isa) {
    case GemmIsa::kAvx512: return SgemmConvAvx512;
    case GemmIsa::kAvx2: return SgemmConvAvx2;
    case GemmIsa::kPortable: break;
  }
  return SgemmConvPortable;
}

ConvFn ConvTKernelSet(GemmIsa isa) {
  switch (isa) {
    case GemmIsa::kAvx512: return SgemmConvTAvx512;
    case GemmIsa::kAvx2: return SgemmConvTAvx2;
    case GemmIsa::kPortable: break;
  }
  return SgemmConvTPortable;
}

// C^T[cols, m]: an empty sum writes zeros.
void RunConvT(ConvFn fn, const ConvArgs& g) {
  if (g.m <= 0 || g.cols <= 0) return;
  if (g.shape.Rows() <= 0) {
    for (int64_t i = 0; i < g.cols; ++i) std::fill(g.c + i * g.ldc, g.c + i * g.ldc + g.m, 0.0f);
    return;
  }
  fn(g);
}

void RunConv(ConvFn fn, const ConvArgs& g) {
  if (g.m <= 0 || g.cols <= 0) return;
  if (g.shape.Rows() <= 0) {
    for (int64_t i = 0; i < g.m; ++i) std::fill(g.c + i * g.ldc, g.c + i * g.ldc + g.cols, 0.0f);
    return;
  }
  fn(g);
}

GemmArgs Args(int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda, bool transpose_a,
              const float* b, int64_t ldb, bool transpose_b, float beta, float* c, int64_t ldc) {
  return {m, n, k, alpha, a, lda, transpose_a, b, ldb, transpose_b, false, beta, c, ldc};
}

GemmArgs PackedBArgs(int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda, bool transpose_a,
                     const float* packed_b, float beta, float* c, int64_t ldc) {
  return {m, n, k, alpha, a, lda, transpose_a, packed_b, 0, false, true, beta, c, ldc};
}

}  // namespace

float* ScratchA(size_t floats) {
  return a_scratch.Reserve(floats);
}

float* ScratchB(size_t floats) {
  return b_scratch.Reserve(floats);
}

}  // namespace gemm_internal

const char* GemmIsaName(GemmIsa isa) {
  switch (isa) {
    case GemmIsa::kAvx512: return "avx512";
    case GemmIsa::kAvx2: return "avx2";
    case GemmIsa::kPortable: break;
  }
  return "portable";
}

bool GemmIsaSupported(GemmIsa isa) {
  __builtin_cpu_init();
  switch (isa) {
    case GemmIsa::kAvx512: return __builtin_cpu_supports("avx512f");
    case GemmIsa::kAvx2: return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    case GemmIsa::kPortable: break;
  }
  return true;
}

GemmIsa BestGemmIsa() {
  static const GemmIsa best = [] {
    for (const GemmIsa isa : {GemmIsa::kAvx512, GemmIsa::kAvx2}) {
      if (GemmIsaSupported(isa)) return isa;
    }
    return GemmIsa::kPortable;
  }();
  return best;
}

void Sgemm(int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda, bool transpose_a, const float* b,
           int64_t ldb, bool transpose_b, float beta, float* c, int64_t ldc) {
  static const gemm_internal::GemmFn best = gemm_internal::KernelSet(BestGemmIsa());
  gemm_internal::Run(best, gemm_internal::Args(m, n, k, alpha, a, lda, transpose_a, b, ldb, transpose_b, beta, c, ldc));
}

void SgemmWithIsa(GemmIsa isa, int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda,
                  bool transpose_a, const float* b, int64_t ldb, bool transpose_b, float beta, float* c, int64_t ldc) {
  if (!GemmIsaSupported(isa)) throw Error(std::string("this CPU cannot run the ") + GemmIsaName(isa) + " GEMM kernels");
  gemm_internal::Run(gemm_internal::KernelSet(isa),
                     gemm_internal::Args(m, n, k, alpha, a, lda, transpose_a, b, ldb, transpose_b, beta, c, ldc));
}

int64_t PackedFiltersSize(int64_t m, int64_t k) {
  return gemm_internal::RoundUp(m, kPackedRows) * k;
}

void PackFilters(int64_t m, int64_t k, const float* a, int64_t lda, float* packed) {
  std::fill(packed, packed + PackedFiltersSize(m, k), 0.0f);
  gemm_internal::GemmArgs view;
  view.a = a;
  view.lda = lda;
  gemm_internal::PackA<kPackedRows>(view, 0, m, 0, k, packed);
}

void SgemmConv(int64_t m, int64_t col0, int64_t cols, const float* a, int64_t lda, const float* x,
               const ConvGemmShape& shape, float* c, int64_t ldc) {
  static const gemm_internal::ConvFn best = gemm_internal::ConvKernelSet(BestGemmIsa());
  gemm_internal::RunConv(best, {m, col0, cols, a, lda, x, shape, c, ldc});
}

void SgemmConvWithIsa(GemmIsa isa, int64_t m, int64_t col0, int64_t cols, const float* a, int64_t lda, const float* x,
                      const ConvGemmShape& shape, float* c, int64_t ldc) {
  if (!GemmIsaSupported(isa)) throw Error(std::string("this CPU cannot run the ") + GemmIsaName(isa) + " GEMM kernels");
  gemm_internal::RunConv(gemm_internal::ConvKernelSet(isa), {m, col0, cols, a, lda, x, shape, c, ldc});
}

int64_t PackedGemmBSize(int64_t k, int64_t n) {
  return gemm_internal::RoundUp(n, kPackedCols) * k;
}

void PackGemmB(int64_t k, int64_t n, const float* b, int64_t ldb, bool transpose_b, float* packed) {
  gemm_internal::GemmArgs view;
  view.b = b;
  view.ldb = ldb;
  view.transpose_b = transpose_b;
  gemm_internal::PackB<kPackedCols>(view, 0, k, 0, n, packed);
}

void SgemmPackedB(int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda, bool transpose_a,
                  const float* packed_b, float beta, float* c, int64_t ldc) {
  static const gemm_internal::GemmFn best = gemm_internal::KernelSet(BestGemmIsa());
  gemm_internal::Run(best, gemm_internal::PackedBArgs(m, n, k, alpha, a, lda, transpose_a, packed_b, beta, c, ldc));
}

void SgemmPackedBWithIsa(GemmIsa isa, int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda,
                         bool transpose_a, const float* packed_b, float beta, float* c, int64_t ldc) {
  if (!GemmIsaSupported(isa)) throw Error(std::string("this CPU cannot run the ") + GemmIsaName(isa) + " GEMM kernels");
  gemm_internal::Run(gemm_internal::KernelSet(isa),
                     gemm_internal::PackedBArgs(m, n, k, alpha, a, lda, transpose_a, packed_b, beta, c, ldc));
}

void SgemmConvT(int64_t m, int64_t col0, int64_t cols, const float* packed_wt, const float* x,
                const ConvGemmShape& shape, float* c, int64_t ldc) {
  static const gemm_internal::ConvFn best = gemm_internal::ConvTKernelSet(BestGemmIsa());
  gemm_internal::RunConvT(best, {m, col0, cols, packed_wt, 0, x, shape, c, ldc});
}

void SgemmConvTWithIsa(GemmIsa isa, int64_t m, int64_t col0, int64_t cols, const float* packed_wt, const float* x,
                       const ConvGemmShape& shape, float* c, int64_t ldc) {
  if (!GemmIsaSupported(isa)) throw Error(std::string("this CPU cannot run the ") + GemmIsaName(isa) + " GEMM kernels");
  gemm_internal::RunConvT(gemm_internal::ConvTKernelSet(isa), {m, col0, cols, packed_wt, 0, x, shape, c, ldc});
}

}  // namespace kiln
