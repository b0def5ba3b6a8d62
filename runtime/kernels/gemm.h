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

// --- A right-hand operand packed once ----------------------------------------------------
//
// B (k x n) packed once (at compile time when it is a constant, e.g. FullyConnected's
// weights) in panels of kPackedCols columns: panel s holds columns [s kPackedCols,
// (s + 1) kPackedCols) as packed[s kPackedCols k + p kPackedCols + j], columns past n
// zero. Every kernel set's micro-kernel width divides kPackedCols.
inline constexpr int64_t kPackedCols = 32;

// Floats PackGemmB writes for a k x n operand.
int64_t PackedGemmBSize(int64_t k, int64_t n);
// Packs op(B) (k x n; B row-major with row stride ldb, transposed when transpose_b).
void PackGemmB(int64_t k, int64_t n, const float* b, int64_t ldb, bool transpose_b, float* packed);
// Sgemm with op(B) packed by PackGemmB: `packed_b` points at the panel holding C's first
// column, which must be the first column of a panel.
void SgemmPackedB(int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda, bool transpose_a,
                  const float* packed_b, float beta, float* c, int64_t ldc);
void SgemmPackedBWithIsa(GemmIsa isa, int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda,
                         bool transpose_a, const float* packed_b, float beta, float* c, int64_t ldc);

// --- Convolution as an implicit GEMM ---------------------------------------------------
//
// Filters packed once (at compile time when they are constants, by PackFilters) in
// panels of kPackedRows rows: panel r holds rows [r kPackedRows, (r + 1) kPackedRows) of
// the m x k matrix as packed[r kPackedRows k + p kPackedRows + i], rows past m zero. Every
// kernel set's micro-kernel height divides kPackedRows, so one packing serves them all.
inline constexpr int64_t kPackedRows = 12;

// Floats PackFilters writes for an m x k matrix.
int64_t PackedFiltersSize(int64_t m, int64_t k);
// Packs the row-major m x k matrix `a` (row stride lda) into `packed`.
void PackFilters(int64_t m, int64_t k, const float* a, int64_t lda, float* packed);

// One image's channels (of one group) read as the im2col matrix of a 2-D convolution:
// row (c, i, j) = c kernel_h kernel_w + i kernel_w + j, column oh out_w + ow, value
// x[c][oh stride_h - pad_h + i dilate_h][ow stride_w - pad_w + j dilate_w] or 0 outside.
struct ConvGemmShape {
  int64_t channels = 0, height = 0, width = 0;
  int64_t kernel_h = 1, kernel_w = 1, stride_h = 1, stride_w = 1, dilate_h = 1, dilate_w = 1, pad_h = 0, pad_w = 0;
  int64_t out_w = 0;
  int64_t Rows() const { return channels * kernel_h * kernel_w; }
};

// C[m, cols] = A[m, K] im2col(x)[K, col0 .. col0 + cols) with K = shape.Rows() (C's row
// stride ldc; beta 0). A is row-major with row stride lda, or packed by PackFilters when
// lda == 0. The im2col matrix is never formed: its blocks are packed straight from x.
// Single-threaded, like Sgemm.
void SgemmConv(int64_t m, int64_t col0, int64_t cols, const float* a, int64_t lda, const float* x,
               const ConvGemmShape& shape, float* c, int64_t ldc);
void SgemmConvWithIsa(GemmIsa isa, int64_t m, int64_t col0, int64_t cols, const float* a, int64_t lda, const float* x,
                      const ConvGemmShape& shape, float* c, int64_t ldc);

// The same product transposed, for outputs with few positions: C^T[cols, m] =
// im2col(x)^T[col0 .. col0 + cols, K] W^T[K, m] with W^T packed by PackGemmB (k = K,
// n = m; `packed_wt` at the panel of filter 0). The positions are the GEMM's rows, packed
// straight from the image into 12-row panels. C^T is row-major, row stride ldc; beta 0.
void SgemmConvT(int64_t m, int64_t col0, int64_t cols, const float* packed_wt, const float* x,
                const ConvGemmShape& shape, float* c, int64_t ldc);
void SgemmConvTWithIsa(GemmIsa isa, int64_t m, int64_t col0, int64_t cols, const float* packed_wt, const float* x,
                       const ConvGemmShape& shape, float* c, int64_t ldc);

const char* GemmIsaName(GemmIsa isa);
// Whether this CPU (and OS) can run `isa`'s kernels.
bool GemmIsaSupported(GemmIsa isa);
// The set Sgemm uses: the best supported one.
GemmIsa BestGemmIsa();
// Sgemm with the kernels of `isa`, which must be supported (throws kiln::Error if not).
void SgemmWithIsa(GemmIsa isa, int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda,
                  bool transpose_a, const float* b, int64_t ldb, bool transpose_b, float beta, float* c, int64_t ldc);

}  // namespace kiln
