// kiln::SgemmConv (every kernel set this CPU runs, filters packed and not) against an
// explicit im2col matrix multiplied in double precision.
#include <catch2/catch.hpp>
#include <cmath>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "runtime/kernels/gemm.h"

using namespace kiln;

namespace {

constexpr float kSentinel = 12345.0f;  // C's padding columns: must survive

struct ConvCase {
  int64_t m;  // filters
  ConvGemmShape shape;
  int64_t out_h;
  int64_t col0, cols;  // the block of output positions computed
};

std::string Describe(const ConvCase& c) {
  const ConvGemmShape& s = c.shape;
  return "m " + std::to_string(c.m) + ", x " + std::to_string(s.channels) + "x" + std::to_string(s.height) + "x" +
         std::to_string(s.width) + ", kernel " + std::to_string(s.kernel_h) + "x" + std::to_string(s.kernel_w) +
         ", stride " + std::to_string(s.stride_h) + "," + std::to_string(s.stride_w) + ", dilate " +
         std::to_string(s.dilate_h) + "," + std::to_string(s.dilate_w) + ", pad " + std::to_string(s.pad_h) + "," +
         std::to_string(s.pad_w) + ", columns " + std::to_string(c.col0) + "+" + std::to_string(c.cols);
}

// The im2col matrix's element (row, col), written out from its definition.
float Im2col(const ConvGemmShape& s, const std::vector<float>& x, int64_t row, int64_t col) {
  const int64_t taps = s.kernel_h * s.kernel_w;
  const int64_t c = row / taps, i = row % taps / s.kernel_w, j = row % s.kernel_w;
  const int64_t ih = col / s.out_w * s.stride_h - s.pad_h + i * s.dilate_h;
  const int64_t iw = col % s.out_w * s.stride_w - s.pad_w + j * s.dilate_w;
  if (ih < 0 || ih >= s.height || iw < 0 || iw >= s.width) return 0.0f;
  return x[static_cast<size_t>((c * s.height + ih) * s.width + iw)];
}

void CheckConv(const ConvCase& c, uint32_t seed) {
  const ConvGemmShape& s = c.shape;
  const int64_t k = s.Rows();
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  std::vector<float> x(static_cast<size_t>(s.channels * s.height * s.width));
  std::vector<float> a(static_cast<size_t>(c.m * k));
  for (auto& v : x) v = dist(rng);
  for (auto& v : a) v = dist(rng);
  std::vector<float> packed(static_cast<size_t>(PackedFiltersSize(c.m, k)), std::numeric_limits<float>::quiet_NaN());
  PackFilters(c.m, k, a.data(), k, packed.data());

  const int64_t ldc = c.cols + 3;
  std::vector<double> expected(static_cast<size_t>(c.m * c.cols)), tolerance(expected.size());
  for (int64_t f = 0; f < c.m; ++f) {
    for (int64_t q = 0; q < c.cols; ++q) {
      double sum = 0, magnitude = 0;
      for (int64_t p = 0; p < k; ++p) {
        const double term = double(a[static_cast<size_t>(f * k + p)]) * Im2col(s, x, p, c.col0 + q);
        sum += term;
        magnitude += std::fabs(term);
      }
      expected[static_cast<size_t>(f * c.cols + q)] = sum;
      tolerance[static_cast<size_t>(f * c.cols + q)] = (double(k) + 4) * 1.2e-7 * magnitude + 1e-30;
    }
  }
  const auto check = [&](const std::string& what, const auto& run) {
    // C's block is NaN before the call: beta is 0, C is never read.
    std::vector<float> out(static_cast<size_t>(c.m * ldc), kSentinel);
    for (int64_t f = 0; f < c.m; ++f) {
      for (int64_t q = 0; q < c.cols; ++q) out[static_cast<size_t>(f * ldc + q)] = std::nanf("");
    }
    run(out.data(), ldc);
    INFO(Describe(c) << ", " << what);
    int64_t wrong = 0;
    for (int64_t f = 0; f < c.m; ++f) {
      for (int64_t q = 0; q < ldc; ++q) {
        const float got = out[static_cast<size_t>(f * ldc + q)];
        const bool ok = q < c.cols ? std::fabs(got - expected[static_cast<size_t>(f * c.cols + q)]) <=
                                         tolerance[static_cast<size_t>(f * c.cols + q)]
                                   : got == kSentinel;
        if (!ok && wrong++ == 0) {
          UNSCOPED_INFO("first wrong: C[" << f << ", " << q << "] = " << got << ", expected "
                                          << (q < c.cols ? expected[static_cast<size_t>(f * c.cols + q)] : kSentinel));
        }
      }
    }
    CHECK(wrong == 0);
  };
  // The transposed product (positions as rows) against the same expectation.
  std::vector<float> packed_t(static_cast<size_t>(PackedGemmBSize(k, c.m)), std::numeric_limits<float>::quiet_NaN());
  PackGemmB(k, c.m, a.data(), k, true, packed_t.data());
  const auto check_t = [&](const std::string& what, const auto& run) {
    const int64_t ldt = c.m + 2;
    std::vector<float> out(static_cast<size_t>(c.cols * ldt), kSentinel);
    for (int64_t q = 0; q < c.cols; ++q) {
      for (int64_t f = 0; f < c.m; ++f) out[static_cast<size_t>(q * ldt + f)] = std::nanf("");
    }
    run(out.data(), ldt);
    INFO(Describe(c) << ", transposed, " << what);
    int64_t wrong = 0;
    for (int64_t q = 0; q < c.cols; ++q) {
      for (int64_t f = 0; f < ldt; ++f) {
        const float got = out[static_cast<size_t>(q * ldt + f)];
        const size_t e = static_cast<size_t>(f * c.cols + q);
        const bool ok = f < c.m ? std::fabs(got - expected[e]) <= tolerance[e] : got == kSentinel;
        if (!ok && wrong++ == 0) UNSCOPED_INFO("first wrong: C^T[" << q << ", " << f << "] = " << got);
      }
    }
    CHECK(wrong == 0);
  };
  check_t("dispatched",
          [&](float* out, int64_t ld) { SgemmConvT(c.m, c.col0, c.cols, packed_t.data(), x.data(), s, out, ld); });
  for (const auto isa : {GemmIsa::kPortable, GemmIsa::kAvx2, GemmIsa::kAvx512}) {
    if (!GemmIsaSupported(isa)) continue;
    check_t(GemmIsaName(isa), [&](float* out, int64_t ld) {
      SgemmConvTWithIsa(isa, c.m, c.col0, c.cols, packed_t.data(), x.data(), s, out, ld);
    });
  }
  check("dispatched, packed",
        [&](float* out, int64_t ld) { SgemmConv(c.m, c.col0, c.cols, packed.data(), 0, x.data(), s, out, ld); });
  for (const auto isa : {GemmIsa::kPortable, GemmIsa::kAvx2, GemmIsa::kAvx512}) {
    if (!GemmIsaSupported(isa)) continue;
    check(std::string(GemmIsaName(isa)) + ", packed", [&](float* out, int64_t ld) {
      SgemmConvWithIsa(isa, c.m, c.col0, c.cols, packed.data(), 0, x.data(), s, out, ld);
    });
    check(std::string(GemmIsaName(isa)) + ", row-major filters", [&](float* out, int64_t ld) {
      SgemmConvWithIsa(isa, c.m, c.col0, c.cols, a.data(), k, x.data(), s, out, ld);
    });
  }
}

ConvCase Make(int64_t m, int64_t channels, int64_t height, int64_t width, int64_t kernel, int64_t stride,
              int64_t dilate, int64_t pad) {
  ConvCase c;
  c.m = m;
  ConvGemmShape& s = c.shape;
  s.channels = channels;
  s.height = height;
  s.width = width;
  s.kernel_h = s.kernel_w = kernel;
  s.stride_h = s.stride_w = stride;
  s.dilate_h = s.dilate_w = dilate;
  s.pad_h = s.pad_w = pad;
  c.out_h = (height + 2 * pad - dilate * (kernel - 1) - 1) / stride + 1;
  s.out_w = (width + 2 * pad - dilate * (kernel - 1) - 1) / stride + 1;
  c.col0 = 0;
  c.cols = c.out_h * s.out_w;
  return c;
}

}  // namespace

TEST_CASE("SgemmConv matches an explicit im2col product on common layers", "[gemm][conv]") {
  uint32_t seed = 1;
  for (const ConvCase& c :
       {Make(64, 16, 14, 14, 3, 1, 1, 1), Make(13, 3, 17, 19, 7, 2, 1, 3), Make(24, 32, 7, 7, 1, 1, 1, 0),
        Make(40, 8, 9, 9, 1, 2, 1, 0), Make(5, 4, 12, 10, 3, 1, 2, 2), Make(1, 1, 1, 1, 1, 1, 1, 0),
        Make(37, 70, 6, 6, 3, 1, 1, 1)}) {
    CheckConv(c, seed++);
  }
}

TEST_CASE("SgemmConv on blocks of columns, odd sizes, asymmetric geometry", "[gemm][conv]") {
  std::mt19937 rng(7);
  const auto pick = [&](int64_t lo, int64_t hi) { return std::uniform_int_distribution<int64_t>(lo, hi)(rng); };
  for (int trial = 0; trial < 40; ++trial) {
    ConvCase c;
    c.m = pick(1, 30);
    ConvGemmShape& s = c.shape;
    s.channels = pick(1, 9);
    s.kernel_h = pick(1, 4);
    s.kernel_w = pick(1, 4);
    s.stride_h = pick(1, 3);
    s.stride_w = pick(1, 3);
    s.dilate_h = pick(1, 2);
    s.dilate_w = pick(1, 2);
    s.pad_h = pick(0, 3);
    s.pad_w = pick(0, 3);
    s.height = pick(s.dilate_h * (s.kernel_h - 1) + 1, 20);
    s.width = pick(s.dilate_w * (s.kernel_w - 1) + 1, 40);
    c.out_h = (s.height + 2 * s.pad_h - s.dilate_h * (s.kernel_h - 1) - 1) / s.stride_h + 1;
    s.out_w = (s.width + 2 * s.pad_w - s.dilate_w * (s.kernel_w - 1) - 1) / s.stride_w + 1;
    const int64_t plane = c.out_h * s.out_w;
    c.col0 = pick(0, plane - 1);
    c.cols = pick(1, plane - c.col0);
    CheckConv(c, static_cast<uint32_t>(100 + trial));
  }
}

TEST_CASE("SgemmConv with more rows than one block of the inner dimension", "[gemm][conv]") {
  // K = 64 * 9 = 576 spans two blocks of every kernel set; 70 filters leave a ragged panel.
  CheckConv(Make(70, 64, 10, 11, 3, 1, 1, 1), 3);
}

TEST_CASE("SgemmConv with many filters packs the image in column panels", "[gemm][conv]") {
  // Over 96 filters (kConvInPlaceBlocks times 12) the block is packed in NR-column panels,
  // whose runs break at panel edges as well as at output rows.
  CheckConv(Make(130, 8, 9, 11, 3, 1, 1, 1), 4);
  CheckConv(Make(200, 5, 13, 40, 3, 2, 1, 1), 5);
  CheckConv(Make(101, 70, 6, 6, 1, 1, 1, 0), 6);
}

TEST_CASE("PackFilters zero-pads the last panel", "[gemm][conv]") {
  const int64_t m = 5, k = 3;
  std::vector<float> a(static_cast<size_t>(m * k));
  for (size_t i = 0; i < a.size(); ++i) a[i] = float(i + 1);
  std::vector<float> packed(static_cast<size_t>(PackedFiltersSize(m, k)), -1.0f);
  REQUIRE(packed.size() == size_t(kPackedRows * k));
  PackFilters(m, k, a.data(), k, packed.data());
  for (int64_t p = 0; p < k; ++p) {
    for (int64_t i = 0; i < kPackedRows; ++i) {
      CHECK(packed[static_cast<size_t>(p * kPackedRows + i)] == (i < m ? a[static_cast<size_t>(i * k + p)] : 0.0f));
    }
  }
}
