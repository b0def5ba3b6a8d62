// Plain C++ kernels for CPUs without AVX2: 4 x 8 tiles of C that the compiler keeps in
// SSE registers (the library is built with -O3, which vectorizes the loops over j).
#include "runtime/kernels/gemm_driver.h"

namespace kiln::gemm_internal {
namespace {

struct PortableSet {
  // 8 accumulators of 4 floats: with the operands, as many as SSE's 16 registers hold.
  static constexpr int kMr = 4;
  static constexpr int kNr = 8;
  static constexpr int kVec = 4;
  static constexpr int64_t kKc = 256;
  static constexpr int64_t kNc = 512;
  static constexpr int64_t kMc = 1152;
  static constexpr int64_t kInPlaceBMaxRows = 2 * kMr;

  // out[q] = x . rows[q] for q < count; four partial sums per row let the compiler
  // vectorize the loop without reassociating a single sum.
  static void Dots(const float* x, const float* rows, int64_t ld, int count, int64_t k, float* out) {
    for (int q = 0; q < count; ++q) {
      const float* y = rows + q * ld;
      float partial[kVec] = {};
      const int64_t body = k / kVec * kVec;
      for (int64_t p = 0; p < body; p += kVec) {
        for (int l = 0; l < kVec; ++l) partial[l] += x[p + l] * y[p + l];
      }
      float sum = 0;
      for (int l = 0; l < kVec; ++l) sum += partial[l];
      for (int64_t p = body; p < k; ++p) sum += x[p] * y[p];
      out[q] = sum;
    }
  }

  template <int kRows, int kVectors>
  static void Micro(const Tile& t) {
    constexpr int kWidth = kVectors * kVec;
    float acc[kRows][kWidth] = {};
    const float* a = t.a;
    const float* b = t.b;
    const int64_t rs_a = t.rs_a;
    for (int64_t p = 0; p < t.k; ++p) {
#pragma GCC unroll 8
      for (int i = 0; i < kRows; ++i) {
        const float ai = a[i];
#pragma GCC unroll 8
        for (int j = 0; j < kWidth; ++j) acc[i][j] += ai * b[j];
      }
      a += rs_a;
      b += t.rs_b;
    }
    const int64_t cols = t.cols < kWidth ? t.cols : kWidth;
    for (int i = 0; i < kRows; ++i) {
      float* out = t.c + i * t.ldc;
      if (t.beta != 0.0f) {
        for (int64_t j = 0; j < cols; ++j) out[j] = t.alpha * acc[i][j] + t.beta * out[j];
      } else {
        for (int64_t j = 0; j < cols; ++j) out[j] = t.alpha * acc[i][j];
      }
    }
  }
};

}  // namespace

void SgemmPortable(const GemmArgs& g) {
  RunGemm<PortableSet>(g);
}

void SgemmConvPortable(const ConvArgs& g) {
  RunConvGemm<PortableSet>(g);
}

void SgemmConvTPortable(const ConvArgs& g) {
  RunConvGemmT<PortableSet>(g);
}

}  // namespace kiln::gemm_internal
