// kiln::Sgemm (every kernel set this CPU runs, and the dispatched one) against a naive
// double-accumulation reference; the runtime's routine table.
#include "runtime/kernels/gemm.h"

#include <array>
#include <catch2/catch.hpp>
#include <cmath>
#include <limits>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "runtime/kernel_abi.h"
#include "runtime/runtime_api.h"

using namespace kiln;

namespace {

constexpr float kSentinel = 12345.0f;  // fills the padding of C's rows: must survive

struct Case {
  int64_t m, n, k;
  bool ta = false, tb = false;
  float alpha = 1, beta = 0;
  int64_t pad = 0;  // lda, ldb and ldc exceed the minimum by this much
};

std::string Describe(const Case& c) {
  return std::to_string(c.m) + "x" + std::to_string(c.n) + "x" + std::to_string(c.k) + (c.ta ? " A^T" : "") +
         (c.tb ? " B^T" : "") + " alpha " + std::to_string(c.alpha) + " beta " + std::to_string(c.beta) + " pad " +
         std::to_string(c.pad);
}

// Operands in row-major storage with the case's strides, and the expected C with a
// bound on the error float accumulation may make in each element.
struct Problem {
  int64_t lda, ldb, ldc;
  std::vector<float> a, b, c0;
  std::vector<double> expected, tolerance;
};

Problem Make(const Case& c, uint32_t seed) {
  Problem p;
  p.lda = (c.ta ? c.m : c.k) + c.pad;
  p.ldb = (c.tb ? c.k : c.n) + c.pad;
  p.ldc = c.n + c.pad;
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  p.a.resize(static_cast<size_t>((c.ta ? c.k : c.m) * p.lda));
  p.b.resize(static_cast<size_t>((c.tb ? c.n : c.k) * p.ldb));
  for (auto& x : p.a) x = dist(rng);
  for (auto& x : p.b) x = dist(rng);
  p.c0.assign(static_cast<size_t>(c.m * p.ldc), kSentinel);
  for (int64_t i = 0; i < c.m; ++i) {
    for (int64_t j = 0; j < c.n; ++j) {
      // beta == 0 must not read C: fill it with NaN then.
      p.c0[i * p.ldc + j] = c.beta == 0.0f ? std::numeric_limits<float>::quiet_NaN() : dist(rng);
    }
  }
  p.expected.resize(static_cast<size_t>(c.m * c.n));
  p.tolerance.resize(p.expected.size());
  for (int64_t i = 0; i < c.m; ++i) {
    for (int64_t j = 0; j < c.n; ++j) {
      double sum = 0, magnitude = 0;
      for (int64_t q = 0; q < c.k; ++q) {
        const double av = c.ta ? p.a[q * p.lda + i] : p.a[i * p.lda + q];
        const double bv = c.tb ? p.b[j * p.ldb + q] : p.b[q * p.ldb + j];
        sum += av * bv;
        magnitude += std::fabs(av * bv);
      }
      const double prior = c.beta == 0.0f ? 0.0 : static_cast<double>(c.beta) * p.c0[i * p.ldc + j];
      p.expected[i * c.n + j] = c.alpha * sum + prior;
      // Float rounding: at most about k + 2 roundings of the magnitudes involved.
      p.tolerance[i * c.n + j] =
          (static_cast<double>(c.k) + 4) * 1.2e-7 * (std::fabs(c.alpha) * magnitude + std::fabs(prior)) + 1e-30;
    }
  }
  return p;
}

// Runs `sgemm` on a fresh copy of C and checks every element and the padding.
template <class Fn>
void Check(const Case& c, const Problem& p, const std::string& kernels, const Fn& sgemm) {
  std::vector<float> out = p.c0;
  sgemm(c.m, c.n, c.k, c.alpha, p.a.data(), p.lda, c.ta, p.b.data(), p.ldb, c.tb, c.beta, out.data(), p.ldc);
  INFO(Describe(c) << ", " << kernels << " kernels");
  int64_t wrong = 0, first = -1;
  for (int64_t i = 0; i < c.m; ++i) {
    for (int64_t j = 0; j < p.ldc; ++j) {
      const float got = out[i * p.ldc + j];
      const bool ok = j < c.n ? std::fabs(got - p.expected[i * c.n + j]) <= p.tolerance[i * c.n + j]
                              : got == kSentinel;  // padding untouched
      if (!ok && wrong++ == 0) first = i * p.ldc + j;
    }
  }
  if (wrong > 0) {
    const int64_t i = first / p.ldc, j = first % p.ldc;
    UNSCOPED_INFO("first wrong: C[" << i << ", " << j << "] = " << out[first] << ", expected "
                                    << (j < c.n ? p.expected[i * c.n + j] : kSentinel));
  }
  CHECK(wrong == 0);
}

std::vector<GemmIsa> SupportedIsas() {
  std::vector<GemmIsa> isas;
  for (const auto isa : {GemmIsa::kPortable, GemmIsa::kAvx2, GemmIsa::kAvx512}) {
    if (GemmIsaSupported(isa)) isas.push_back(isa);
  }
  return isas;
}

// Every supported kernel set, and Sgemm itself, on `c`.
void CheckAll(const Case& c, uint32_t seed) {
  const Problem p = Make(c, seed);
  Check(c, p, "dispatched", Sgemm);
  for (const GemmIsa isa : SupportedIsas()) {
    Check(c, p, GemmIsaName(isa), [isa](auto... args) { SgemmWithIsa(isa, args...); });
  }
}

}  // namespace

TEST_CASE("the portable kernels are always there and the best set is supported", "[gemm]") {
  CHECK(GemmIsaSupported(GemmIsa::kPortable));
  CHECK(GemmIsaSupported(BestGemmIsa()));
  INFO("kernel sets this CPU runs: " << SupportedIsas().size());
  CHECK(std::string(GemmIsaName(GemmIsa::kAvx512)) == "avx512");
}

TEST_CASE("Sgemm matches the reference on many shapes, all transpose combinations", "[gemm]") {
  // Tiles are 12 x 32 (AVX-512), 6 x 16 (AVX2) or 4 x 8 (portable); k blocks are 384
  // or 256, column blocks 512 and row blocks 1152; B is read in place when C has at
  // most 12 (8 portable) rows or B at most 16384 elements; A B^T with at most 4 rows
  // takes row dot products (4 rows of B at a time). The shapes cross all of
  // these edges.
  const std::vector<std::array<int64_t, 3>> shapes = {
      {1, 1, 1},    {2, 3, 5},    {7, 11, 13},  {17, 33, 65},  {13, 1, 7},    {1, 37, 19},   {5, 7, 1},
      {6, 8, 4},    {12, 32, 9},  {13, 33, 10}, {24, 64, 3},   {25, 47, 3},   {11, 17, 300}, {20, 70, 800},
      {31, 5, 390}, {3, 530, 20}, {1, 1100, 9}, {1200, 3, 17}, {37, 1025, 2}, {61, 97, 257},
  };
  uint32_t seed = 1;
  for (const auto& [m, n, k] : shapes) {
    for (const bool ta : {false, true}) {
      for (const bool tb : {false, true}) CheckAll({m, n, k, ta, tb}, seed++);
    }
  }
}

TEST_CASE("Sgemm on a large product", "[gemm]") {
  uint32_t seed = 100;
  for (const bool ta : {false, true}) {
    for (const bool tb : {false, true}) CheckAll({300, 200, 500, ta, tb, 0.75f, 0.5f, 3}, seed++);
  }
}

TEST_CASE("Sgemm scales by alpha and beta and never reads C when beta is 0", "[gemm]") {
  uint32_t seed = 200;
  for (const float alpha : {1.0f, -0.5f, 0.0f}) {
    for (const float beta : {0.0f, 1.0f, -2.0f}) {
      for (const bool ta : {false, true}) {
        for (const bool tb : {false, true}) {
          CheckAll({19, 45, 23, ta, tb, alpha, beta}, seed++);
          CheckAll({4, 40, 400, ta, tb, alpha, beta}, seed++);  // B in place, two k blocks
        }
      }
    }
  }
}

TEST_CASE("Sgemm works on submatrices: strides larger than the rows", "[gemm]") {
  uint32_t seed = 300;
  for (const int64_t pad : {1, 7, 64}) {
    for (const bool ta : {false, true}) {
      for (const bool tb : {false, true}) {
        CheckAll({29, 35, 41, ta, tb, 1.5f, 0.0f, pad}, seed++);
        CheckAll({8, 66, 50, ta, tb, 1.0f, 0.5f, pad}, seed++);
      }
    }
  }
}

TEST_CASE("Sgemm with k = 0 scales C; empty C is left alone", "[gemm]") {
  for (const GemmIsa isa : SupportedIsas()) {
    INFO(GemmIsaName(isa));
    std::vector<float> c = {1, 2, 3, 4, 5, 6};
    SgemmWithIsa(isa, 2, 3, 0, 1.0f, nullptr, 1, false, nullptr, 3, false, 2.0f, c.data(), 3);
    CHECK(c == std::vector<float>{2, 4, 6, 8, 10, 12});
    std::vector<float> garbage(6, std::numeric_limits<float>::quiet_NaN());
    SgemmWithIsa(isa, 2, 3, 0, 1.0f, nullptr, 1, false, nullptr, 3, false, 0.0f, garbage.data(), 3);
    CHECK(garbage == std::vector<float>(6, 0.0f));
    std::vector<float> untouched = {7};
    const float one = 1;
    SgemmWithIsa(isa, 0, 1, 1, 1.0f, &one, 1, false, &one, 1, false, 0.0f, untouched.data(), 1);
    SgemmWithIsa(isa, 1, 0, 1, 1.0f, &one, 1, false, &one, 1, false, 0.0f, untouched.data(), 1);
    CHECK(untouched == std::vector<float>{7});
  }
}

TEST_CASE("Sgemm runs from many threads at once", "[gemm]") {
  // Each thread has its own packing buffers; shapes differ so that they are resized.
  const std::vector<Case> cases = {{50, 70, 90}, {13, 300, 40, true}, {120, 20, 400, false, true}, {3, 40, 700}};
  std::vector<Problem> problems;
  for (size_t i = 0; i < cases.size(); ++i) problems.push_back(Make(cases[i], 400 + static_cast<uint32_t>(i)));
  std::vector<int> failures(8, 0);
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      for (int round = 0; round < 20; ++round) {
        const size_t which = static_cast<size_t>(t + round) % cases.size();
        const Case& c = cases[which];
        const Problem& p = problems[which];
        std::vector<float> out = p.c0;
        Sgemm(c.m, c.n, c.k, c.alpha, p.a.data(), p.lda, c.ta, p.b.data(), p.ldb, c.tb, c.beta, out.data(), p.ldc);
        for (int64_t i = 0; i < c.m; ++i) {
          for (int64_t j = 0; j < c.n; ++j) {
            if (!(std::fabs(out[i * p.ldc + j] - p.expected[i * c.n + j]) <= p.tolerance[i * c.n + j])) ++failures[t];
          }
        }
      }
    });
  }
  for (auto& thread : threads) thread.join();
  CHECK(failures == std::vector<int>(8, 0));
}

TEST_CASE("the runtime's routine table calls Sgemm", "[gemm][runtime_api]") {
  const KilnRuntimeApi* api = DefaultRuntimeApi();
  REQUIRE(api != nullptr);
  CHECK(api->abi_version == kKernelAbiVersion);
  REQUIRE(api->sgemm != nullptr);
  // [[1, 2], [3, 4]] x [[5, 6], [7, 8]]^T with nonzero int32 flags, beta = 1.
  const std::vector<float> a = {1, 2, 3, 4};
  const std::vector<float> b = {5, 6, 7, 8};
  std::vector<float> c = {1, 1, 1, 1};
  api->sgemm(2, 2, 2, 2.0f, a.data(), 2, 0, b.data(), 2, 7, 1.0f, c.data(), 2);
  CHECK(c == std::vector<float>{35, 47, 79, 107});
}

TEST_CASE("SgemmPackedB matches Sgemm with B packed once, every kernel set, blocks of columns", "[gemm]") {
  for (const Case& c : {Case{7, 45, 33, false, true}, Case{70, 300, 500, false, true}, Case{13, 32, 5, true, false},
                        Case{1, 1, 1}, Case{5, 100, 700, false, false, 1.0f, 0.5f}}) {
    const Problem p = Make(c, 17);
    std::vector<float> packed(static_cast<size_t>(PackedGemmBSize(c.k, c.n)));
    PackGemmB(c.k, c.n, p.b.data(), p.ldb, c.tb, packed.data());
    const auto packed_sgemm = [&](GemmIsa* isa) {
      return [&, isa](int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda, bool ta, const float*,
                      int64_t, bool, float beta, float* out, int64_t ldc) {
        // Column blocks that start on a panel, as the lowering makes them.
        for (int64_t j0 = 0; j0 < n; j0 += 2 * kPackedCols) {
          const int64_t cols = std::min<int64_t>(2 * kPackedCols, n - j0);
          const float* b = packed.data() + j0 * k;
          if (isa == nullptr) {
            SgemmPackedB(m, cols, k, alpha, a, lda, ta, b, beta, out + j0, ldc);
          } else {
            SgemmPackedBWithIsa(*isa, m, cols, k, alpha, a, lda, ta, b, beta, out + j0, ldc);
          }
        }
      };
    };
    Check(c, p, "packed B, dispatched", packed_sgemm(nullptr));
    for (GemmIsa isa : SupportedIsas()) Check(c, p, std::string("packed B, ") + GemmIsaName(isa), packed_sgemm(&isa));
  }
}
