#include "runtime/gemm_step.h"

#include <algorithm>
#include <climits>

#include "runtime/error.h"

namespace kiln {
namespace {

// One operand as stored: `rows` x `cols` row-major, rows `ld` apart, batch items
// `stride` apart, from element `offset` of argument `arg`.
struct Operand {
  const char* name;
  uint32_t arg;
  int64_t offset, stride, rows, cols, ld;
};

std::vector<Operand> OperandsOf(const proto::GemmCallProto& g) {
  return {
      {"A", g.a_arg(), g.a_offset(), g.stride_a(), g.transpose_a() ? g.k() : g.m(), g.transpose_a() ? g.m() : g.k(),
       g.lda()},
      {"B", g.b_arg(), g.b_offset(), g.stride_b(), g.transpose_b() ? g.n() : g.k(), g.transpose_b() ? g.k() : g.n(),
       g.ldb()},
      {"C", g.c_arg(), g.c_offset(), g.stride_c(), g.m(), g.n(), g.ldc()},
  };
}

// Elements [offset, end) the operand spans over all batch items; end == offset when it
// is empty.
int64_t OperandEnd(const Operand& x, int64_t batch, const std::string& what) {
  if (x.offset < 0 || x.stride < 0 || x.ld < 0) {
    throw Error(what + ": operand " + x.name + " has a negative offset, stride or leading dimension");
  }
  if (x.rows == 0 || x.cols == 0) return x.offset;
  if (x.ld < x.cols) {
    throw Error(what + ": operand " + x.name + "'s leading dimension " + std::to_string(x.ld) + " is below its " +
                std::to_string(x.cols) + " columns");
  }
  const __int128 end = static_cast<__int128>(x.offset) + static_cast<__int128>(batch - 1) * x.stride +
                       static_cast<__int128>(x.rows - 1) * x.ld + x.cols;
  if (end > INT64_MAX / 8) throw Error(what + ": operand " + x.name + "'s extent overflows");
  return static_cast<int64_t>(end);
}

}  // namespace

std::vector<uint64_t> CheckGemmCall(const proto::KernelCall& call, const std::string& what) {
  const proto::GemmCallProto& g = call.gemm();
  if (g.m() < 0 || g.n() < 0 || g.k() < 0 || g.batch() < 1) {
    throw Error(what + ": GEMM sizes m=" + std::to_string(g.m()) + " n=" + std::to_string(g.n()) +
                " k=" + std::to_string(g.k()) + " batch=" + std::to_string(g.batch()) +
                " (expected m, n, k >= 0 and batch >= 1)");
  }
  std::vector<uint64_t> needed(static_cast<size_t>(call.args_size()), 0);
  const std::vector<Operand> operands = OperandsOf(g);
  std::vector<std::pair<int64_t, int64_t>> spans;
  for (const Operand& x : operands) {
    if (x.arg >= needed.size()) {
      throw Error(what + ": operand " + x.name + " is buffer " + std::to_string(x.arg) + ", the step has " +
                  std::to_string(needed.size()));
    }
    const int64_t end = OperandEnd(x, g.batch(), what);
    needed[x.arg] = std::max<uint64_t>(needed[x.arg], static_cast<uint64_t>(end) * sizeof(float));
    spans.emplace_back(x.offset, end);
  }
  // C's batch items must not overlap one another (they are written at once on a GPU).
  if (g.batch() > 1 && g.m() > 0 && g.n() > 0 && g.stride_c() < (g.m() - 1) * g.ldc() + g.n()) {
    throw Error(what + ": C's batch items, " + std::to_string(g.stride_c()) + " elements apart, overlap (each spans " +
                std::to_string((g.m() - 1) * g.ldc() + g.n()) + ")");
  }
  // Nor may C overlap what the product reads: in the arena by address, elsewhere when
  // it names the same buffer.
  const auto start_byte = [&](const Operand& x, int64_t element) {
    const proto::BufferRef& ref = call.args(static_cast<int>(x.arg));
    return (ref.kind() == proto::BufferRef::ARENA
                ? static_cast<int64_t>(std::min<uint64_t>(ref.offset(), INT64_MAX / 2))
                : 0) +
           element * static_cast<int64_t>(sizeof(float));
  };
  const Operand& c = operands[2];
  const proto::BufferRef& c_ref = call.args(static_cast<int>(c.arg));
  for (size_t i = 0; i < 2; ++i) {
    const Operand& x = operands[i];
    const proto::BufferRef& ref = call.args(static_cast<int>(x.arg));
    const bool same_space =
        ref.kind() == c_ref.kind() && (ref.kind() == proto::BufferRef::ARENA || ref.index() == c_ref.index());
    if (!same_space || spans[i].first == spans[i].second || spans[2].first == spans[2].second) continue;
    const int64_t x_begin = start_byte(x, spans[i].first), x_end = start_byte(x, spans[i].second);
    const int64_t c_begin = start_byte(c, spans[2].first), c_end = start_byte(c, spans[2].second);
    if (x_begin < c_end && c_begin < x_end) {
      throw Error(what + ": C (bytes [" + std::to_string(c_begin) + ", " + std::to_string(c_end) + ")) overlaps " +
                  x.name + " (bytes [" + std::to_string(x_begin) + ", " + std::to_string(x_end) + "))");
    }
  }
  return needed;
}

void RunGemmOnHost(const proto::GemmCallProto& g, const float* a, const float* b, float* c, const KilnRuntimeApi* api,
                   int64_t begin, int64_t end) {
  if (g.m() == 0 || g.n() == 0) return;
  for (int64_t item = begin; item < end; ++item) {
    float* c_item = c + g.c_offset() + item * g.stride_c();
    if (g.k() == 0) {
      // An empty sum: C = beta C (the routine needs k > 0).
      for (int64_t i = 0; i < g.m(); ++i) {
        for (int64_t j = 0; j < g.n(); ++j) {
          float& value = c_item[i * g.ldc() + j];
          value = g.beta() == 0.0f ? 0.0f : g.beta() * value;
        }
      }
      continue;
    }
    api->sgemm(g.m(), g.n(), g.k(), g.alpha(), a + g.a_offset() + item * g.stride_a(), g.lda(), g.transpose_a() ? 1 : 0,
               b + g.b_offset() + item * g.stride_b(), g.ldb(), g.transpose_b() ? 1 : 0, g.beta(), c_item, g.ldc());
  }
}

CublasGemmCall PlanCublasGemm(const proto::GemmCallProto& g) {
  const auto narrow = [](int64_t value, const char* name) {
    if (value > INT32_MAX) {
      throw Error(std::string("GEMM ") + name + " = " + std::to_string(value) +
                  " exceeds cuBLAS's 32-bit arguments (at most 2147483647)");
    }
    return static_cast<int32_t>(std::max<int64_t>(value, 0));
  };
  CublasGemmCall call;
  call.transpose_first = g.transpose_b();
  call.transpose_second = g.transpose_a();
  call.m = narrow(g.n(), "n");
  call.n = narrow(g.m(), "m");
  call.k = narrow(g.k(), "k");
  // cuBLAS wants every leading dimension at least 1, even for an empty operand.
  call.ld_first = std::max(narrow(g.ldb(), "ldb"), 1);
  call.ld_second = std::max(narrow(g.lda(), "lda"), 1);
  call.ldc = std::max(narrow(g.ldc(), "ldc"), 1);
  call.first_offset = g.b_offset();
  call.second_offset = g.a_offset();
  call.c_offset = g.c_offset();
  call.stride_first = g.stride_b();
  call.stride_second = g.stride_a();
  call.stride_c = g.stride_c();
  call.batch = narrow(g.batch(), "batch");
  call.alpha = g.alpha();
  call.beta = g.beta();
  call.empty = g.m() == 0 || g.n() == 0;
  return call;
}

void ColumnMajorGemm(const CublasGemmCall& call, const float* first, const float* second, float* c) {
  if (call.empty) return;
  // Column-major X(i, j) = x[i + j * ld]; op(X) = X^T reads X(j, i).
  const auto at = [](const float* x, int32_t ld, bool transpose, int64_t i, int64_t j) {
    return transpose ? x[j + i * ld] : x[i + j * ld];
  };
  for (int64_t item = 0; item < call.batch; ++item) {
    const float* f = first + call.first_offset + item * call.stride_first;
    const float* s = second + call.second_offset + item * call.stride_second;
    float* out = c + call.c_offset + item * call.stride_c;
    for (int64_t j = 0; j < call.n; ++j) {
      for (int64_t i = 0; i < call.m; ++i) {
        double sum = 0;
        for (int64_t p = 0; p < call.k; ++p) {
          sum += static_cast<double>(at(f, call.ld_first, call.transpose_first, i, p)) *
                 at(s, call.ld_second, call.transpose_second, p, j);
        }
        float& value = out[i + j * call.ldc];
        value = static_cast<float>(call.alpha * sum + (call.beta == 0.0f ? 0.0 : call.beta * value));
      }
    }
  }
}

}  // namespace kiln
