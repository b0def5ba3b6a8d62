// Library GEMM steps (runtime/gemm_step.h): the load-time checks of a step against its
// buffers, the host's run, and the call planned for cuBLAS's column-major interface,
// computed as cuBLAS defines it and compared with the row-major product it stands for.
#include "runtime/gemm_step.h"

#include <catch2/catch.hpp>
#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "runtime/error.h"
#include "runtime/runtime_api.h"

using namespace kiln;

namespace {

// A step on three arena buffers, `bytes` each, far apart.
proto::KernelCall StepOn(const proto::GemmCallProto& gemm, uint64_t bytes) {
  proto::KernelCall call;
  call.set_node("fc");
  *call.mutable_gemm() = gemm;
  for (int i = 0; i < 3; ++i) {
    proto::BufferRef* ref = call.add_args();
    ref->set_kind(proto::BufferRef::ARENA);
    ref->set_offset(static_cast<uint64_t>(i) * (bytes + 4096));
    ref->set_bytes(bytes);
  }
  return call;
}

proto::GemmCallProto Product(int64_t m, int64_t n, int64_t k) {
  proto::GemmCallProto g;
  g.set_m(m);
  g.set_n(n);
  g.set_k(k);
  g.set_batch(1);
  g.set_a_arg(0);
  g.set_b_arg(1);
  g.set_c_arg(2);
  g.set_lda(k);
  g.set_ldb(n);
  g.set_ldc(n);
  g.set_alpha(1);
  return g;
}

// The product from its definition, in double: C_b = alpha op(A_b) op(B_b) + beta C_b.
void Reference(const proto::GemmCallProto& g, const std::vector<float>& a, const std::vector<float>& b,
               std::vector<float>& c) {
  for (int64_t item = 0; item < g.batch(); ++item) {
    for (int64_t i = 0; i < g.m(); ++i) {
      for (int64_t j = 0; j < g.n(); ++j) {
        double sum = 0;
        for (int64_t p = 0; p < g.k(); ++p) {
          const float x = a[g.a_offset() + item * g.stride_a() + (g.transpose_a() ? p * g.lda() + i : i * g.lda() + p)];
          const float y = b[g.b_offset() + item * g.stride_b() + (g.transpose_b() ? j * g.ldb() + p : p * g.ldb() + j)];
          sum += static_cast<double>(x) * y;
        }
        float& out = c[g.c_offset() + item * g.stride_c() + i * g.ldc() + j];
        out = static_cast<float>(g.alpha() * sum + (g.beta() == 0 ? 0.0 : g.beta() * out));
      }
    }
  }
}

}  // namespace

TEST_CASE("a GEMM step planned for cuBLAS computes the row-major product it stands for", "[gemm_step]") {
  std::mt19937 rng(5);
  const auto pick = [&](int low, int high) { return std::uniform_int_distribution<int>(low, high)(rng); };
  std::uniform_real_distribution<float> value(-1.0f, 1.0f);
  int checked = 0;
  for (int trial = 0; trial < 300; ++trial) {
    proto::GemmCallProto g = Product(pick(0, 9), pick(0, 9), pick(0, 9));
    g.set_batch(pick(1, 3));
    g.set_transpose_a(pick(0, 1) == 1);
    g.set_transpose_b(pick(0, 1) == 1);
    // Leading dimensions with padding, offsets, batch strides with gaps (or 0: shared).
    const int64_t a_cols = g.transpose_a() ? g.m() : g.k(), a_rows = g.transpose_a() ? g.k() : g.m();
    const int64_t b_cols = g.transpose_b() ? g.k() : g.n(), b_rows = g.transpose_b() ? g.n() : g.k();
    g.set_lda(a_cols + pick(0, 2));
    g.set_ldb(b_cols + pick(0, 2));
    g.set_ldc(g.n() + pick(0, 2));
    g.set_a_offset(pick(0, 5));
    g.set_b_offset(pick(0, 5));
    g.set_c_offset(pick(0, 5));
    g.set_stride_a(pick(0, 1) == 0 ? 0 : a_rows * g.lda() + pick(0, 3));
    g.set_stride_b(pick(0, 1) == 0 ? 0 : b_rows * g.ldb() + pick(0, 3));
    g.set_stride_c(g.m() * g.ldc() + pick(0, 3));
    g.set_alpha(pick(0, 1) == 0 ? 1.0f : 0.5f);
    g.set_beta(pick(0, 2) == 0 ? 0.0f : 1.0f);
    const auto size = [&](int64_t offset, int64_t stride, int64_t rows, int64_t ld) {
      return static_cast<size_t>(offset + stride * (g.batch() - 1) + rows * ld + 1);
    };
    std::vector<float> a(size(g.a_offset(), g.stride_a(), a_rows, g.lda()));
    std::vector<float> b(size(g.b_offset(), g.stride_b(), b_rows, g.ldb()));
    std::vector<float> c(size(g.c_offset(), g.stride_c(), g.m(), g.ldc()));
    for (auto* v : {&a, &b, &c}) {
      for (float& x : *v) x = value(rng);
    }
    INFO("trial " << trial << ": " << g.ShortDebugString());
    const uint64_t bytes = std::max({a.size(), b.size(), c.size()}) * sizeof(float);
    const std::vector<uint64_t> needed = CheckGemmCall(StepOn(g, bytes), "step");
    CHECK(needed[2] <= c.size() * sizeof(float));
    std::vector<float> want = c, on_host = c, column_major = c;
    Reference(g, a, b, want);
    RunGemmOnHost(g, a.data(), b.data(), on_host.data(), DefaultRuntimeApi(), 0, g.batch());
    const CublasGemmCall call = PlanCublasGemm(g);
    CHECK(call.m == g.n());
    CHECK(call.n == g.m());
    CHECK(call.transpose_first == g.transpose_b());
    CHECK(call.ld_first >= 1);
    ColumnMajorGemm(call, b.data(), a.data(), column_major.data());
    for (size_t i = 0; i < c.size(); ++i) {
      REQUIRE(std::abs(on_host[i] - want[i]) <= 1e-5f * (1 + std::abs(want[i])));
      REQUIRE(std::abs(column_major[i] - want[i]) <= 1e-5f * (1 + std::abs(want[i])));
    }
    ++checked;
  }
  CHECK(checked == 300);
}

TEST_CASE("a GEMM step is refused at load where it would reach outside its buffers or overlap", "[gemm_step]") {
  const proto::GemmCallProto fine = Product(4, 5, 6);
  CHECK(CheckGemmCall(StepOn(fine, 4096), "step") == std::vector<uint64_t>{4 * 6 * 4, 6 * 5 * 4, 4 * 5 * 4});
  proto::GemmCallProto g = fine;
  g.set_m(-1);
  CHECK_THROWS_WITH(CheckGemmCall(StepOn(g, 4096), "step"), Catch::Contains("GEMM sizes m=-1"));
  g = fine;
  g.set_batch(0);
  CHECK_THROWS_WITH(CheckGemmCall(StepOn(g, 4096), "step"), Catch::Contains("batch=0"));
  g = fine;
  g.set_lda(3);
  CHECK_THROWS_WITH(CheckGemmCall(StepOn(g, 4096), "step"),
                    Catch::Contains("operand A's leading dimension 3 is below its 6 columns"));
  g = fine;
  g.set_c_arg(7);
  CHECK_THROWS_WITH(CheckGemmCall(StepOn(g, 4096), "step"), Catch::Contains("operand C is buffer 7, the step has 3"));
  g = fine;
  g.set_b_offset(int64_t{1} << 62);
  CHECK_THROWS_WITH(CheckGemmCall(StepOn(g, 4096), "step"), Catch::Contains("operand B's extent overflows"));
  g = fine;
  g.set_batch(2);
  g.set_stride_c(10);
  CHECK_THROWS_WITH(CheckGemmCall(StepOn(g, 4096), "step"), Catch::Contains("C's batch items, 10 elements apart"));
  // C on top of A in the arena.
  proto::KernelCall call = StepOn(fine, 4096);
  call.mutable_args(2)->set_offset(call.args(0).offset() + 64);
  CHECK_THROWS_WITH(CheckGemmCall(call, "step"), Catch::Contains("C (bytes [") && Catch::Contains("overlaps A"));
  // Or naming the same output as B.
  call = StepOn(fine, 4096);
  for (int i : {1, 2}) {
    call.mutable_args(i)->set_kind(proto::BufferRef::OUTPUT);
    call.mutable_args(i)->set_index(0);
  }
  CHECK_THROWS_WITH(CheckGemmCall(call, "step"), Catch::Contains("overlaps B"));
  g = fine;
  g.set_n(int64_t{1} << 31);
  g.set_ldb(g.n());
  g.set_ldc(g.n());
  CHECK_THROWS_WITH(PlanCublasGemm(g), Catch::Contains("exceeds cuBLAS's 32-bit arguments"));
  // Empty products plan no call; k = 0 leaves beta C.
  CHECK(PlanCublasGemm(Product(0, 3, 2)).empty);
  proto::GemmCallProto empty_sum = Product(2, 2, 0);
  empty_sum.set_beta(0.5f);
  std::vector<float> c = {2, 4, 6, 8};
  RunGemmOnHost(empty_sum, nullptr, nullptr, c.data(), DefaultRuntimeApi(), 0, 1);
  CHECK(c == std::vector<float>{1, 2, 3, 4});
}
