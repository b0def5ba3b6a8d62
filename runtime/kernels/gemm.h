// Single-precision matrix product for the runtime: the routine behind
// KilnRuntimeApi::sgemm (runtime/kernel_abi.h).
//
// Packed panels, cache blocking and register-tiled micro-kernels for AVX-512, AVX2+FMA
// and plain C++, chosen at run time from what the CPU supports; the library is built
// without -march so one binary runs everywhere.
#pragma once

#include <cstdint>

namespace kiln {

// C[m, n] = alpha * sum_k op(A)[m, k] * op(B)[k, n] + beta * C[m, n], all row-major with
// row strides lda, ldb, ldc (in elements); op(X) = X^T when transpose_x. beta == 0
// writes C without reading it (C may hold NaN); k == 0 scales C by beta. Single-threaded:
// callers split C into panels across threads. Thread-safe; scratch memory is per thread
// and kept between calls.
void Sgemm(int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda, bool transpose_a, const float* b,
           int64_t ldb, bool transpose_b, float beta, float* c, int64_t ldc);

// The kernel sets Sgemm has, for tests and benchmarks that compare them.
enum class GemmIsa { kPortable, kAvx2, kAvx512 };

const char* GemmIsaName(GemmIsa isa);
// Whether this CPU (and OS) can run `isa`'s kernels.
bool GemmIsaSupported(GemmIsa isa);
// The set Sgemm uses: the best supported one.
GemmIsa BestGemmIsa();
// Sgemm with the kernels of `isa`, which must be supported (throws kiln::Error if not).
void SgemmWithIsa(GemmIsa isa, int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda,
                  bool transpose_a, const float* b, int64_t ldb, bool transpose_b, float beta, float* c, int64_t ldc);

}  // namespace kiln
