// AVX2 + FMA kernels: 6 x 16 tiles of C in 12 ymm accumulators.
#include <immintrin.h>

#include "runtime/kernels/gemm_driver.h"

namespace kiln::gemm_internal {
namespace {

struct Avx2Set {
  static constexpr int kMr = 6;
  static constexpr int kNr = 16;
  static constexpr int kVec = 8;
  // A's 6 x KC panel (6 KiB) stays in L1 while B's KC x NC block streams from L2.
  static constexpr int64_t kKc = 256;
  static constexpr int64_t kNc = 512;
  static constexpr int64_t kMc = 1152;
  static constexpr int64_t kInPlaceBMaxRows = 2 * kMr;

  template <int kRows, int kVectors>
  static void Micro(const Tile& t);
  static void Dots(const float* x, const float* rows, int64_t ld, int count, int64_t k, float* out);
};

// out[q] = x . rows[q] for q < count (up to 4), 8 lanes at a time, the tail in scalars.
__attribute__((target("avx2,fma"))) void Avx2Set::Dots(const float* x, const float* rows, int64_t ld, int count,
                                                       int64_t k, float* out) {
  __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
  const int64_t body = k / kVec * kVec;
  for (int64_t p = 0; p < body; p += kVec) {
    const __m256 xv = _mm256_loadu_ps(x + p);
#pragma GCC unroll 4
    for (int q = 0; q < 4; ++q) {
      if (q < count) acc[q] = _mm256_fmadd_ps(xv, _mm256_loadu_ps(rows + q * ld + p), acc[q]);
    }
  }
  for (int q = 0; q < count; ++q) {
    const __m128 half = _mm_add_ps(_mm256_castps256_ps128(acc[q]), _mm256_extractf128_ps(acc[q], 1));
    const __m128 pair = _mm_add_ps(half, _mm_movehl_ps(half, half));
    float sum = _mm_cvtss_f32(_mm_add_ss(pair, _mm_shuffle_ps(pair, pair, 1)));
    for (int64_t p = body; p < k; ++p) sum += x[p] * rows[q * ld + p];
    out[q] = sum;
  }
}

template <int kRows, int kVectors>
__attribute__((target("avx2,fma"))) void Avx2Set::Micro(const Tile& t) {
  __m256 acc[kRows][kVectors];
#pragma GCC unroll 8
  for (int i = 0; i < kRows; ++i) {
#pragma GCC unroll 2
    for (int v = 0; v < kVectors; ++v) acc[i][v] = _mm256_setzero_ps();
  }
  // Locals: stores to C could otherwise alias the tile's fields and force reloads.
  const float* a = t.a;
  const int64_t rs_a = t.rs_a;
  const float* b = t.b;
  const int64_t rs_b = t.rs_b;
  float* const c = t.c;
  const int64_t ldc = t.ldc;
  const int64_t k = t.k;
  // Unrolled: fewer loop-control instructions between the FMAs (8% for AVX2).
#pragma GCC unroll 4
  for (int64_t p = 0; p < k; ++p) {
    __m256 bv[kVectors];
#pragma GCC unroll 2
    for (int v = 0; v < kVectors; ++v) bv[v] = _mm256_loadu_ps(b + v * kVec);
#pragma GCC unroll 8
    for (int i = 0; i < kRows; ++i) {
      const __m256 ai = _mm256_broadcast_ss(a + i);
#pragma GCC unroll 2
      for (int v = 0; v < kVectors; ++v) acc[i][v] = _mm256_fmadd_ps(ai, bv[v], acc[i][v]);
    }
    a += rs_a;
    b += rs_b;
  }

  const __m256 alpha = _mm256_set1_ps(t.alpha);
  const __m256 beta = _mm256_set1_ps(t.beta);
  const bool read_c = t.beta != 0.0f;
  if (t.cols == kNr) {
#pragma GCC unroll 8
    for (int i = 0; i < kRows; ++i) {
#pragma GCC unroll 2
      for (int v = 0; v < kVectors; ++v) {
        float* out = c + i * ldc + v * kVec;
        __m256 result = _mm256_mul_ps(alpha, acc[i][v]);
        if (read_c) result = _mm256_fmadd_ps(beta, _mm256_loadu_ps(out), result);
        _mm256_storeu_ps(out, result);
      }
    }
    return;
  }
  // Right edge: lanes past `cols` are neither read nor written.
  __m256i mask[kVectors];
  const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
#pragma GCC unroll 2
  for (int v = 0; v < kVectors; ++v) {
    mask[v] = _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(t.cols - v * kVec)), lane);
  }
#pragma GCC unroll 8
  for (int i = 0; i < kRows; ++i) {
#pragma GCC unroll 2
    for (int v = 0; v < kVectors; ++v) {
      float* out = c + i * ldc + v * kVec;
      __m256 result = _mm256_mul_ps(alpha, acc[i][v]);
      if (read_c) result = _mm256_fmadd_ps(beta, _mm256_maskload_ps(out, mask[v]), result);
      _mm256_maskstore_ps(out, mask[v], result);
    }
  }
}

}  // namespace

void SgemmAvx2(const GemmArgs& g) {
  RunGemm<Avx2Set>(g);
}

void SgemmConvAvx2(const ConvArgs& g) {
  RunConvGemm<Avx2Set>(g);
}

void SgemmConvTAvx2(const ConvArgs& g) {
  RunConvGemmT<Avx2Set>(g);
}

}  // namespace kiln::gemm_internal
