// Helpers the index-driven operators share (ops/index.cc, ops/gather_scatter.cc):
// reading index elements of any dtype, clipping them into an axis, and the loop over
// index rows that copies a contiguous run per row.
#pragma once

#include <cstdint>
#include <functional>

#include "codegen/kir/kir.h"
#include "graph/op.h"

namespace kiln::index_util {

// Least output elements worth a parallel loop.

// Indices arrive in any numeric dtype; like MXNet, a float index truncates toward zero
// and an out-of-range one is clipped to [0, n).
int64_t ClipIndex(double value, int64_t n);

kir::Expr Zero();

// ClipIndex: an index in [0, n) from an index element of any dtype. Float indices are
// compared in their compute type before they convert, so a NaN or huge index never
// reaches a float-to-integer conversion.
kir::Expr KirClipIndex(const kir::Expr& value, int64_t n);

// An index element, floats in float32 (float16) or their own type, integers in int64.
kir::Expr LoadIndex(const LowerContext& ctx, int input, const kir::Expr& i);

// rows x cols: per row a contiguous loop over cols, after `prologue` computes what the
// row needs into `local` when given (allocated per row, so per parallel task). The row
// loop is the kernel's parallel loop when the work is worth one on the target.
kir::Stmt RowLoop(const LowerContext& ctx, int64_t rows, int64_t cols,
                  const std::function<kir::Stmt(const kir::Expr& row, const kir::Expr& col)>& body,
                  const kir::Buffer& local = nullptr,
                  const std::function<kir::Stmt(const kir::Expr& row)>& prologue = nullptr);

}  // namespace kiln::index_util
