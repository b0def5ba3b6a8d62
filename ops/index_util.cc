#include "ops/index_util.h"

#include "codegen/lower/lower_util.h"

namespace kiln::index_util {

using kir::Expr;
using kir::ScalarType;
using kir::Stmt;

int64_t ClipIndex(double value, int64_t n) {
  if (!(value >= 0)) return 0;  // negative or NaN
  if (value >= static_cast<double>(n - 1)) return n - 1;
  return static_cast<int64_t>(value);
}

Expr Zero() {
  return Expr(int64_t{0});
}

Expr KirClipIndex(const Expr& value, int64_t n) {
  const Expr last(n - 1);
  if (!kir::IsFloatType(value.type())) return kir::Max(kir::Min(kir::Cast(ScalarType::kInt64, value), last), Zero());
  const auto c = [&](double v) { return kir::FloatImm(v, value.type()); };
  // Min: a compute-type rounding of n - 1 must not let the conversion pass the end.
  return kir::Select(kir::Ge(value, c(0)),
                     kir::Select(kir::Ge(value, c(static_cast<double>(n - 1))), last,
                                 kir::Min(kir::Cast(ScalarType::kInt64, value), last)),
                     Zero());
}

Expr LoadIndex(const LowerContext& ctx, int input, const Expr& i) {
  const DType dtype = ctx.input_types[input];
  return lower::LoadAs(ctx.inputs[input], i, IsFloat(dtype) ? lower::ComputeType(dtype) : ScalarType::kInt64);
}

Stmt RowLoop(const LowerContext& ctx, int64_t rows, int64_t cols,
             const std::function<Stmt(const Expr& row, const Expr& col)>& body, const kir::Buffer& local,
             const std::function<Stmt(const Expr& row)>& prologue) {
  const Expr r = kir::Var("row");
  const Expr c = kir::Var("col");
  Stmt row = kir::For(c, Zero(), Expr(cols), body(r, c), kir::LoopKind::kVectorize);
  if (local) row = kir::Allocate(local, kir::Block({prologue(r), row}));
  const auto kind =
      rows > 1 && rows * cols >= ctx.MinParallelWork() ? kir::LoopKind::kParallel : kir::LoopKind::kSerial;
  return kir::For(r, Zero(), Expr(rows), row, kind);
}

}  // namespace kiln::index_util
