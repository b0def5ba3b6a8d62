#include "codegen/lower/lower_util.h"

#include <algorithm>

namespace kiln::lower {

using kir::Expr;
using kir::Stmt;

namespace {
// Elements per parallel task in ChunkedLoop: big enough to amortize a task, small enough
// to balance threads.
constexpr int64_t kChunk = 16384;
}  // namespace

Stmt LoopNest(const Shape& shape, const IndexBody& body, bool parallel) {
  std::vector<Expr> vars;
  for (size_t d = 0; d < shape.size(); ++d) vars.push_back(kir::Var("i" + std::to_string(d)));
  int parallel_dim = -1;
  if (parallel) {
    for (size_t d = 0; d < shape.size(); ++d) {
      if (shape[d] > 1) {
        parallel_dim = static_cast<int>(d);
        break;
      }
    }
  }
  // Loops of extent 1 outside the parallel one would hide it: they run once, so their
  // variables are bound to 0 instead.
  std::vector<Expr> index = vars;
  for (int d = 0; d < parallel_dim; ++d) index[d] = Expr(int64_t{0});
  Stmt stmt = body(index);
  for (int d = static_cast<int>(shape.size()) - 1; d >= std::max(parallel_dim, 0); --d) {
    const auto kind = d == parallel_dim ? kir::LoopKind::kParallel : kir::LoopKind::kSerial;
    stmt = kir::For(vars[d], Expr(int64_t{0}), Expr(shape[d]), stmt, kind);
  }
  return stmt;
}

Stmt ChunkedLoop(int64_t count, const std::function<Stmt(const Expr& i)>& body) {
  const Expr c = kir::Var("chunk");
  if (count <= kChunk) {
    // One chunk, still the parallel loop: the CPU runs it on one thread, as a plain
    // loop; the GPU binds its elements to threads (a bare loop would run on one thread).
    const Expr i = kir::Var("i");
    return kir::For(c, Expr(int64_t{0}), Expr(int64_t{1}),
                    kir::For(i, Expr(int64_t{0}), Expr(count), body(i), kir::LoopKind::kIndependent),
                    kir::LoopKind::kParallel);
  }
  const int64_t chunks = (count + kChunk - 1) / kChunk;
  const Expr begin = c * Expr(kChunk);
  const Expr extent = kir::Min(Expr(kChunk), Expr(count) - begin);
  const Expr j = kir::Var("j");
  return kir::For(c, Expr(int64_t{0}), Expr(chunks),
                  kir::For(j, Expr(int64_t{0}), extent, body(begin + j), kir::LoopKind::kIndependent),
                  kir::LoopKind::kParallel);
}

Expr FlatIndex(const std::vector<Expr>& index, const Shape& shape) {
  if (shape.empty()) return Expr(int64_t{0});
  Expr flat = index.back();
  int64_t stride = shape.back();
  for (int64_t d = static_cast<int64_t>(shape.size()) - 2; d >= 0; --d) {
    flat = flat + index[d] * Expr(stride);
    stride *= shape[d];
  }
  return flat;
}

Expr BroadcastIndex(const std::vector<Expr>& out_index, const Shape& in_shape) {
  const size_t offset = out_index.size() - in_shape.size();
  std::vector<Expr> index;
  for (size_t d = 0; d < in_shape.size(); ++d) {
    index.push_back(in_shape[d] == 1 ? Expr(int64_t{0}) : out_index[d + offset]);
  }
  return FlatIndex(index, in_shape);
}

kir::ScalarType ComputeType(DType dtype) {
  return dtype == DType::kFloat16 || dtype == DType::kBFloat16 ? kir::ScalarType::kFloat32 : ToScalarType(dtype);
}

Expr LoadAs(const kir::Buffer& buffer, Expr index, kir::ScalarType type) {
  return kir::Cast(type, kir::Load(buffer, std::move(index)));
}

Expr AsStored(const Expr& value, DType dtype) {
  return kir::Cast(ComputeType(dtype), kir::Cast(ToScalarType(dtype), kir::Cast(ComputeType(dtype), value)));
}

Expr BroadcastFromFlat(const Expr& flat, const Shape& out_shape, const Shape& in_shape) {
  if (in_shape == out_shape) return flat;
  if (NumElements(in_shape) == 1) return Expr(int64_t{0});
  const size_t offset = out_shape.size() - in_shape.size();
  Expr index(int64_t{0});
  int64_t out_stride = 1;
  int64_t in_stride = 1;
  for (int64_t d = static_cast<int64_t>(out_shape.size()) - 1; d >= 0; --d) {
    const auto in_d = d - static_cast<int64_t>(offset);
    if (in_d >= 0 && in_shape[in_d] != 1) {
      const Expr coordinate =
          out_stride == 1 ? flat % Expr(out_shape[d]) : flat / Expr(out_stride) % Expr(out_shape[d]);
      // The innermost varying dimension starts the sum (in_stride is 1 only there).
      index = in_stride == 1 ? coordinate : index + coordinate * Expr(in_stride);
    }
    if (in_d >= 0) in_stride *= in_shape[in_d];
    out_stride *= out_shape[d];
  }
  return index;
}

Expr BroadcastFromFlat(const Expr& flat, const Expr& inner, int64_t inner_extent, const Shape& out_shape,
                       const Shape& in_shape) {
  if (!inner.defined() || inner_extent <= 0 || in_shape == out_shape)
    return BroadcastFromFlat(flat, out_shape, in_shape);
  // The suffix of the output's dims whose product is inner_extent.
  int64_t product = 1;
  size_t suffix = out_shape.size();
  while (suffix > 0 && product < inner_extent) product *= out_shape[--suffix];
  if (product != inner_extent) return BroadcastFromFlat(flat, out_shape, in_shape);
  const size_t offset = out_shape.size() - in_shape.size();
  for (size_t d = 0; d < in_shape.size(); ++d) {
    if (d + offset < suffix && in_shape[d] != 1) return BroadcastFromFlat(flat, out_shape, in_shape);
  }
  // Only the suffix matters: index within it as if it were the whole output.
  const Shape out_suffix(out_shape.begin() + static_cast<std::ptrdiff_t>(suffix), out_shape.end());
  Shape in_suffix;
  for (size_t d = suffix; d < out_shape.size(); ++d) {
    in_suffix.push_back(d >= offset ? in_shape[d - offset] : 1);
  }
  return BroadcastFromFlat(inner, out_suffix, in_suffix);
}

Stmt StoreFrom(const kir::Buffer& buffer, Expr index, Expr value) {
  return kir::Store(buffer, std::move(index), kir::Cast(buffer->type, std::move(value)));
}

Stmt LowerElementwiseMulti(const MultiScalarFn& fn, const Attrs& attrs, LowerContext& ctx) {
  const Shape& out_shape = ctx.output_shapes[0];
  const kir::ScalarType type = ComputeType(ctx.output_types[0]);
  return LoopNest(out_shape, [&](const std::vector<Expr>& index) {
    std::vector<Expr> values;
    for (size_t k = 0; k < ctx.inputs.size(); ++k) {
      values.push_back(
          LoadAs(ctx.inputs[k], BroadcastIndex(index, ctx.input_shapes[k]), ComputeType(ctx.input_types[k])));
    }
    const std::vector<Expr> results = fn(attrs, values, type);
    std::vector<Stmt> stores;
    for (size_t k = 0; k < ctx.outputs.size(); ++k) {
      stores.push_back(StoreFrom(ctx.outputs[k], FlatIndex(index, out_shape), results.at(k)));
    }
    return kir::Block(std::move(stores));
  });
}

Stmt LowerElementwise(const ScalarFn& fn, const Attrs& attrs, LowerContext& ctx) {
  const Shape& out_shape = ctx.output_shapes[0];
  const kir::ScalarType type = ComputeType(ctx.output_types[0]);
  bool same_shapes = true;
  for (const auto& shape : ctx.input_shapes) same_shapes = same_shapes && shape == out_shape;
  if (same_shapes) {
    return ChunkedLoop(NumElements(out_shape), [&](const Expr& i) {
      std::vector<Expr> values;
      for (size_t k = 0; k < ctx.inputs.size(); ++k)
        values.push_back(LoadAs(ctx.inputs[k], i, ComputeType(ctx.input_types[k])));
      return StoreFrom(ctx.outputs[0], i, fn(attrs, values, type));
    });
  }
  return LoopNest(out_shape, [&](const std::vector<Expr>& index) {
    std::vector<Expr> values;
    for (size_t k = 0; k < ctx.inputs.size(); ++k) {
      values.push_back(
          LoadAs(ctx.inputs[k], BroadcastIndex(index, ctx.input_shapes[k]), ComputeType(ctx.input_types[k])));
    }
    return StoreFrom(ctx.outputs[0], FlatIndex(index, out_shape), fn(attrs, values, type));
  });
}

}  // namespace kiln::lower
