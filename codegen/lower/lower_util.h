// Helpers that operator lowerings share: loop nests over static shapes, row-major and
// broadcast indexing, and the generic lowering of elementwise/broadcast operators from
// their scalar computation.
#pragma once

#include <functional>
#include <vector>

#include "codegen/kir/kir.h"
#include "graph/op.h"

namespace kiln::lower {

using IndexBody = std::function<kir::Stmt(const std::vector<kir::Expr>& index)>;

// Nested loops over every index of `shape`, row-major, innermost last. With `parallel`,
// the outermost loop whose extent exceeds 1 becomes the kernel's kParallel loop (it must
// then be the whole kernel body). A 0-d shape runs `body` once with no index.
kir::Stmt LoopNest(const Shape& shape, const IndexBody& body, bool parallel = true);
// A flat loop over `count` elements split into parallel chunks with a contiguous inner
// loop: the fastest form for same-shape elementwise work. The inner loop is kIndependent:
// `body(i)` must write only element i of its outputs and read no element another
// iteration writes (an output stored in place of an input read at i is fine). The CPU
// vectorizes it without overlap checks; the GPU binds it to threads.
kir::Stmt ChunkedLoop(int64_t count, const std::function<kir::Stmt(const kir::Expr& i)>& body);

// Row-major flat index of a multi-index into `shape` (constant strides).
kir::Expr FlatIndex(const std::vector<kir::Expr>& index, const Shape& shape);
// The flat index into an input of `in_shape` broadcast (NumPy rules) to an output whose
// multi-index is `out_index` (size-1 and missing leading dims read index 0).
kir::Expr BroadcastIndex(const std::vector<kir::Expr>& out_index, const Shape& in_shape);

// The type arithmetic runs in: float16 and bfloat16 compute in float32, others in
// themselves.
kir::ScalarType ComputeType(DType dtype);
// Loads element `index` of input buffer and converts it to `type`.
kir::Expr LoadAs(const kir::Buffer& buffer, kir::Expr index, kir::ScalarType type);
// `value` as a consumer reads it back after it is stored as `dtype`: rounded to the
// storage type, then converted to the compute type (a no-op but for float16, bfloat16
// and bool).
kir::Expr AsStored(const kir::Expr& value, DType dtype);
// The flat index into an input of `in_shape` broadcast to an output of `out_shape`,
// from the output's flat index (only the dimensions the input varies along are
// recovered).
kir::Expr BroadcastFromFlat(const kir::Expr& flat, const Shape& out_shape, const Shape& in_shape);
// The same when `inner` = flat % inner_extent is known, inner_extent a product of the
// output's last dimensions: an input that varies only along those is indexed from
// `inner` alone (no division of the whole flat index).
kir::Expr BroadcastFromFlat(const kir::Expr& flat, const kir::Expr& inner, int64_t inner_extent, const Shape& out_shape,
                            const Shape& in_shape);
// Converts `value` to the buffer's type and stores it.
kir::Stmt StoreFrom(const kir::Buffer& buffer, kir::Expr index, kir::Expr value);

// The lowering of any operator that has a ScalarFn: loops over the output, loads each
// input (broadcast where shapes differ), applies the scalar function, stores.
kir::Stmt LowerElementwise(const ScalarFn& fn, const Attrs& attrs, LowerContext& ctx);
// The same for operators whose scalar function gives every output at once (fused
// optimizer updates): all outputs have the first output's shape.
kir::Stmt LowerElementwiseMulti(const MultiScalarFn& fn, const Attrs& attrs, LowerContext& ctx);

}  // namespace kiln::lower
