// The sgemm call shared by GEMM-like lowerings (defined in matrix.cc, used by nn.cc).
#pragma once

#include <cstdint>

#include "codegen/kir/kir.h"

namespace kiln::lower_gemm {

// A row-major matrix operand: `offset` into `buffer`, row stride `ld`, used transposed
// when `transpose`.
struct Operand {
  kir::Buffer buffer;
  kir::Expr offset;
  int64_t ld = 0;
  bool transpose = false;
  bool packed = false;  // B only: packed by kiln::PackGemmB (ld and transpose unused)
};

// C = op(A) op(B) for an (m, n) block of C and inner size k (k > 0): beta is 0.
kir::Stmt Sgemm(const kir::Expr& m, const kir::Expr& n, const kir::Expr& k, const Operand& a, const Operand& b,
                const Operand& c);

}  // namespace kiln::lower_gemm
