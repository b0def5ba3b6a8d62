// AVX-512 kernels: 12 x 32 tiles of C in 24 zmm accumulators.
#include <immintrin.h>

#include "runtime/kernels/gemm_driver.h"

namespace kiln::gemm_internal {
namespace {

struct Avx512Set {
  static constexpr int kMr = 12;
  static constexpr int kNr = 32;
  static constexpr int kVec = 16;
  // A's 12 x KC panel (18 KiB) stays in L1 while B's KC x NC block (768 KiB) streams
  // from L2.
  static constexpr int64_t kKc = 384;
  static constexpr int64_t kNc = 512;
  static constexpr int64_t kMc = 1152;
  static constexpr int64_t kInPlaceBMaxRows = kMr;

  template <int kRows, int kVectors>
  static void Micro(const Tile& t);
  static void Dots(const float* x, const float* rows, int64_t ld, int count, int64_t k, float* out);
};

// out[q] = x . rows[q] for q < count (up to 4), 16 lanes at a time, the tail masked.
__attribute__((target("avx512f"))) void Avx512Set::Dots(const float* x, const float* rows, int64_t ld, int count,
                                                        int64_t k, float* out) {
  __m512 acc[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps()};
  for (int64_t p = 0; p < k; p += kVec) {
    const int64_t left = k - p;
    const __mmask16 mask = left >= kVec ? __mmask16(0xFFFF) : __mmask16((1u << left) - 1);
    const __m512 xv = _mm512_maskz_loadu_ps(mask, x + p);
#pragma GCC unroll 4
    for (int q = 0; q < 4; ++q) {
      if (q < count) acc[q] = _mm512_fmadd_ps(xv, _mm512_maskz_loadu_ps(mask, rows + q * ld + p), acc[q]);
    }
  }
  // Summed through memory: GCC 12's _mm512_reduce_add_ps warns of an uninitialized
  // temporary, and this runs once per four dot products.
  alignas(64) float lanes[kVec];
  for (int q = 0; q < count; ++q) {
    _mm512_store_ps(lanes, acc[q]);
    float sum = 0;
    for (const float lane : lanes) sum += lane;
    out[q] = sum;
  }
}

template <int kRows, int kVectors>
__attribute__((target("avx512f"))) void Avx512Set::Micro(const Tile& t) {
  __m512 acc[kRows][kVectors];
#pragma GCC unroll 16
  for (int i = 0; i < kRows; ++i) {
#pragma GCC unroll 2
    for (int v = 0; v < kVectors; ++v) acc[i][v] = _mm512_setzero_ps();
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
    __m512 bv[kVectors];
#pragma GCC unroll 2
    for (int v = 0; v < kVectors; ++v) bv[v] = _mm512_loadu_ps(b + v * kVec);
#pragma GCC unroll 16
    for (int i = 0; i < kRows; ++i) {
      const __m512 ai = _mm512_set1_ps(a[i]);
#pragma GCC unroll 2
      for (int v = 0; v < kVectors; ++v) acc[i][v] = _mm512_fmadd_ps(ai, bv[v], acc[i][v]);
    }
    a += rs_a;
    b += rs_b;
  }

  __mmask16 mask[kVectors];
#pragma GCC unroll 2
  for (int v = 0; v < kVectors; ++v) {
    const int64_t left = t.cols - v * kVec;
    mask[v] = left >= kVec ? __mmask16(0xFFFF) : __mmask16((1u << left) - 1);
  }
  const __m512 alpha = _mm512_set1_ps(t.alpha);
  const __m512 beta = _mm512_set1_ps(t.beta);
  const bool read_c = t.beta != 0.0f;
#pragma GCC unroll 16
  for (int i = 0; i < kRows; ++i) {
#pragma GCC unroll 2
    for (int v = 0; v < kVectors; ++v) {
      float* out = c + i * ldc + v * kVec;
      __m512 result = _mm512_mul_ps(alpha, acc[i][v]);
      if (read_c) result = _mm512_fmadd_ps(beta, _mm512_maskz_loadu_ps(mask[v], out), result);
      _mm512_mask_storeu_ps(out, mask[v], result);
    }
  }
}

}  // namespace

void SgemmAvx512(const GemmArgs& g) {
  RunGemm<Avx512Set>(g);
}

void SgemmConvAvx512(const ConvArgs& g) {
  RunConvGemm<Avx512Set>(g);
}

void SgemmConvTAvx512(const ConvArgs& g) {
  RunConvGemmT<Avx512Set>(g);
}

}  // namespace kiln::gemm_internal
