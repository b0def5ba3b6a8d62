// Matrix products: dot, batch_dot and FullyConnected. Also the sgemm call that every
// GEMM-like lowering shares (Convolution's in nn.cc uses it too).
#include <algorithm>
#include <cstdint>
#include <functional>
#include <string>

#include "codegen/kir/kir.h"
#include "codegen/lower/lower_util.h"
#include "graph/gradient.h"
#include "graph/op_util.h"
#include "ops/lower_gemm.h"
#include "runtime/kernel_abi.h"
#include "runtime/kernels/gemm.h"

namespace kiln {

// float32 matrix products lower to calls of the runtime's sgemm (runtime/kernel_abi.h,
// KilnRuntimeApi::sgemm), split into parallel tasks that each multiply a block; other
// dtypes lower to plain loops that accumulate in float64 in the reference's order (so
// they give the reference's results), correct but not fast.
namespace lower_gemm {

kir::Stmt Sgemm(const kir::Expr& m, const kir::Expr& n, const kir::Expr& k, const Operand& a, const Operand& b,
                const Operand& c) {
  using kir::ScalarArg;
  const auto flag = [](bool on) { return ScalarArg(kir::IntImm(on ? 1 : 0, kir::ScalarType::kInt32)); };
  // kRoutineSgemm of runtime/kernel_abi.h (symbol/ops does not depend on the runtime);
  // arguments in KilnRuntimeApi::sgemm's order.
  return kir::Call(
      "sgemm",
      {ScalarArg(m), ScalarArg(n), ScalarArg(k), ScalarArg(kir::FloatImm(1.0)), kir::PointerArg(a.buffer, a.offset),
       ScalarArg(kir::Expr(a.ld)), flag(a.transpose), kir::PointerArg(b.buffer, b.offset), ScalarArg(kir::Expr(b.ld)),
       ScalarArg(kir::IntImm(b.packed      ? kSgemmPackedB
                             : b.transpose ? 1
                                           : 0,
                             kir::ScalarType::kInt32)),
       ScalarArg(kir::FloatImm(0.0)), kir::PointerArg(c.buffer, c.offset), ScalarArg(kir::Expr(c.ld))});
}

}  // namespace lower_gemm

namespace {

using op_util::AssignShape;
using op_util::ShapeError;

// dot views lhs as a matrix (M, K) and rhs as (K, N), where M and N may span several
// axes (MXNet's N-d dot). transpose_a views lhs as (K, M) instead: K is its first axis
// and M the others; transpose_b views rhs as (N, K): K is its last axis. A 1-d operand
// is a vector whose only axis is K, whatever the transpose flag says.
struct DotDims {
  Shape m_dims;
  Shape n_dims;
  int64_t k = 0;
};

DotDims InferDotDims(const Attrs& attrs, const Shape& lhs, const Shape& rhs) {
  const bool ta = attrs.Bool("transpose_a");
  const bool tb = attrs.Bool("transpose_b");
  if (lhs.empty()) ShapeError("input 'lhs'", "at least 1-d", lhs);
  if (rhs.empty()) ShapeError("input 'rhs'", "at least 1-d", rhs);
  if (lhs.size() == 1 && rhs.size() == 1 && (ta || tb)) {
    throw Error("transpose_a and transpose_b must be False when both inputs are vectors, given lhs " +
                ShapeToString(lhs) + " and rhs " + ShapeToString(rhs));
  }
  DotDims dims;
  int64_t k_rhs = 0;
  if (lhs.size() == 1) {
    dims.k = lhs[0];
  } else if (ta) {
    dims.k = lhs.front();
    dims.m_dims.assign(lhs.begin() + 1, lhs.end());
  } else {
    dims.k = lhs.back();
    dims.m_dims.assign(lhs.begin(), lhs.end() - 1);
  }
  if (rhs.size() == 1) {
    k_rhs = rhs[0];
  } else if (tb) {
    k_rhs = rhs.back();
    dims.n_dims.assign(rhs.begin(), rhs.end() - 1);
  } else {
    k_rhs = rhs.front();
    dims.n_dims.assign(rhs.begin() + 1, rhs.end());
  }
  if (dims.k != k_rhs) {
    const std::string lhs_axis = lhs.size() == 1 ? "its length" : ta ? "its first axis" : "its last axis";
    const std::string rhs_axis = rhs.size() == 1 ? "length" : tb ? "last axis" : "first axis";
    ShapeError("input 'rhs'",
               rhs_axis + " of size " + std::to_string(dims.k) + " (lhs " + ShapeToString(lhs) + " contracts " +
                   lhs_axis + ")",
               rhs);
  }
  return dims;
}

Shape DotOutputShape(const DotDims& dims) {
  Shape out = dims.m_dims;
  out.insert(out.end(), dims.n_dims.begin(), dims.n_dims.end());
  // vector . vector gives a 1-element vector, as in MXNet.
  if (out.empty()) out = {1};
  return out;
}

void DotInferShape(const Attrs& attrs, std::vector<ShapeSlot>& in, std::vector<ShapeSlot>& out) {
  if (!in[0] || !in[1]) return;
  AssignShape(out[0], DotOutputShape(InferDotDims(attrs, *in[0], *in[1])), "output");
}

void DotReference(const Attrs& attrs, std::span<const Tensor> in, std::span<Tensor> out, const RefContext&) {
  const DotDims dims = InferDotDims(attrs, in[0].shape(), in[1].shape());
  const bool ta = attrs.Bool("transpose_a");
  const bool tb = attrs.Bool("transpose_b");
  const int64_t m_size = NumElements(dims.m_dims);
  const int64_t n_size = NumElements(dims.n_dims);
  const int64_t k_size = dims.k;
  // For a 1-d operand m_size (or n_size) is 1 and both layouts give the same offset.
  for (int64_t m = 0; m < m_size; ++m) {
    for (int64_t n = 0; n < n_size; ++n) {
      double sum = 0;
      for (int64_t k = 0; k < k_size; ++k) {
        const int64_t a = ta ? k * m_size + m : m * k_size + k;
        const int64_t b = tb ? n * k_size + k : k * n_size + n;
        sum += in[0].GetDouble(a) * in[1].GetDouble(b);
      }
      out[0].SetDouble(m * n_size + n, sum);
    }
  }
}

// batch_dot: equal leading (batch) axes, then a matrix product of the last two axes.
struct BatchDims {
  Shape batch;
  int64_t m = 0;
  int64_t k = 0;
  int64_t n = 0;
};

BatchDims InferBatchDims(const Attrs& attrs, const Shape& lhs, const Shape& rhs) {
  const bool ta = attrs.Bool("transpose_a");
  const bool tb = attrs.Bool("transpose_b");
  if (lhs.size() < 3) ShapeError("input 'lhs'", "at least 3-d (batch..., M, K)", lhs);
  if (rhs.size() != lhs.size()) {
    ShapeError("input 'rhs'", std::to_string(static_cast<int64_t>(lhs.size())) + "-d like lhs " + ShapeToString(lhs),
               rhs);
  }
  const size_t nd = lhs.size();
  BatchDims dims;
  dims.batch.assign(lhs.begin(), lhs.end() - 2);
  if (!std::equal(dims.batch.begin(), dims.batch.end(), rhs.begin())) {
    ShapeError("input 'rhs'", "the batch axes " + ShapeToString(dims.batch) + " of lhs " + ShapeToString(lhs), rhs);
  }
  dims.m = ta ? lhs[nd - 1] : lhs[nd - 2];
  dims.k = ta ? lhs[nd - 2] : lhs[nd - 1];
  const int64_t k_rhs = tb ? rhs[nd - 1] : rhs[nd - 2];
  dims.n = tb ? rhs[nd - 2] : rhs[nd - 1];
  if (dims.k != k_rhs) {
    ShapeError("input 'rhs'",
               std::string(tb ? "last" : "second-to-last") + " axis of size " + std::to_string(dims.k) + " (lhs " +
                   ShapeToString(lhs) + " contracts its " + (ta ? "second-to-last" : "last") + " axis)",
               rhs);
  }
  return dims;
}

void BatchDotInferShape(const Attrs& attrs, std::vector<ShapeSlot>& in, std::vector<ShapeSlot>& out) {
  if (!in[0] || !in[1]) return;
  const BatchDims dims = InferBatchDims(attrs, *in[0], *in[1]);
  Shape shape = dims.batch;
  shape.push_back(dims.m);
  shape.push_back(dims.n);
  AssignShape(out[0], shape, "output");
}

void BatchDotReference(const Attrs& attrs, std::span<const Tensor> in, std::span<Tensor> out, const RefContext&) {
  const BatchDims dims = InferBatchDims(attrs, in[0].shape(), in[1].shape());
  const bool ta = attrs.Bool("transpose_a");
  const bool tb = attrs.Bool("transpose_b");
  const int64_t batches = NumElements(dims.batch);
  const int64_t lhs_stride = dims.m * dims.k;
  const int64_t rhs_stride = dims.k * dims.n;
  for (int64_t b = 0; b < batches; ++b) {
    for (int64_t m = 0; m < dims.m; ++m) {
      for (int64_t n = 0; n < dims.n; ++n) {
        double sum = 0;
        for (int64_t k = 0; k < dims.k; ++k) {
          const int64_t a = b * lhs_stride + (ta ? k * dims.m + m : m * dims.k + k);
          const int64_t c = b * rhs_stride + (tb ? n * dims.k + k : k * dims.n + n);
          sum += in[0].GetDouble(a) * in[1].GetDouble(c);
        }
        out[0].SetDouble((b * dims.m + m) * dims.n + n, sum);
      }
    }
  }
}

// FullyConnected reads data as rows of `in_features` values: with flatten, axis 0 is
// the batch and every other axis is flattened (a 1-d input is a column, as MXNet
// reads it); without flatten, the last axis is the feature axis.
int64_t FcInFeatures(const Attrs& attrs, const Shape& data) {
  if (data.empty()) ShapeError("input 'data'", "at least 1-d", data);
  if (!attrs.Bool("flatten")) return data.back();
  return NumElements(Shape(data.begin() + 1, data.end()));
}

void FcInferShape(const Attrs& attrs, std::vector<ShapeSlot>& in, std::vector<ShapeSlot>& out) {
  if (!in[0]) return;
  const Shape& data = *in[0];
  const int64_t num_hidden = attrs.Int("num_hidden");
  AssignShape(in[1], {num_hidden, FcInFeatures(attrs, data)}, "input 'weight'");
  if (!attrs.Bool("no_bias")) {
    // MXNet also accepts a (num_hidden, 1) bias: same values, same layout.
    if (!(in[2] && *in[2] == Shape{num_hidden, 1})) AssignShape(in[2], {num_hidden}, "input 'bias'");
  }
  Shape shape;
  if (attrs.Bool("flatten")) {
    shape = {data[0], num_hidden};
  } else {
    shape.assign(data.begin(), data.end() - 1);
    shape.push_back(num_hidden);
  }
  AssignShape(out[0], shape, "output");
}

void FcReference(const Attrs& attrs, std::span<const Tensor> in, std::span<Tensor> out, const RefContext&) {
  const int64_t in_features = FcInFeatures(attrs, in[0].shape());
  const int64_t num_hidden = attrs.Int("num_hidden");
  const int64_t rows = out[0].size() / num_hidden;
  const bool has_bias = !attrs.Bool("no_bias");
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t j = 0; j < num_hidden; ++j) {
      double sum = has_bias ? in[2].GetDouble(j) : 0.0;
      for (int64_t i = 0; i < in_features; ++i) {
        sum += in[0].GetDouble(r * in_features + i) * in[1].GetDouble(j * in_features + i);
      }
      out[0].SetDouble(r * num_hidden + j, sum);
    }
  }
}

// --- Lowering ---

using kir::Expr;
using kir::ScalarType;
using kir::Stmt;

// A parallel task multiplies at least kMinTaskMacs (a few microseconds of sgemm, above a
// task's overhead: 2 threads ran the MLP at batch 8 20% faster than with 512K, 1 thread
// 9% slower); a product makes at most kMaxTasks tasks; panels of C are
// multiples of kPanelAlign rows or columns (sgemm's register blocking).
constexpr int64_t kMinTaskMacs = int64_t{1} << 17;
constexpr int64_t kMaxTasks = 64;
constexpr int64_t kPanelAlign = 16;

int64_t CeilDiv(int64_t a, int64_t b) {
  return (a + b - 1) / b;
}

// Batch item `b` of an operand holds a row-major matrix at b * batch_stride with row
// stride ld, read transposed when `transpose`.
struct MatrixView {
  kir::Buffer buffer;
  int64_t batch_stride = 0;
  int64_t ld = 0;
  bool transpose = false;
  bool packed = false;  // B of one product packed by PackGemmB: At is not defined

  // Element (row, col) of op(X) for batch item b.
  Expr At(const Expr& b, const Expr& row, const Expr& col) const {
    return b * Expr(batch_stride) + (transpose ? col * Expr(ld) + row : row * Expr(ld) + col);
  }
};

// `batches` products C_b (m, n) = op(A_b) (m, k) x op(B_b) (k, n).
struct BatchedGemm {
  int64_t batches = 1;
  int64_t m = 0;
  int64_t n = 0;
  int64_t k = 0;
  MatrixView a;
  MatrixView b;
  MatrixView c;
};

// Work on a finished block of C: batch item, first row, rows, first column, columns.
using GemmEpilogue =
    std::function<Stmt(const Expr& b, const Expr& row0, const Expr& rows, const Expr& col0, const Expr& cols)>;

// float32 with k > 0: sgemm calls. Batch items are independent tasks; when there are too
// few of them for the work, each product is also cut into panels of C's columns (a task
// reads only its columns of B), or of its rows when C is taller than wide (only its rows
// of A).
Stmt SgemmTasks(const BatchedGemm& g, const GemmEpilogue& epilogue) {
  const int64_t want = std::clamp<int64_t>(g.batches * g.m * g.n * g.k / kMinTaskMacs, 1, kMaxTasks);
  const bool split_rows = g.m > g.n;
  const int64_t dim = split_rows ? g.m : g.n;
  // Column panels of a packed B start on its panels.
  const int64_t align = g.b.packed && !split_rows ? kPackedCols : kPanelAlign;
  int64_t panel = dim;
  if (g.batches < want) {
    const int64_t panels = std::min(CeilDiv(want, g.batches), CeilDiv(dim, align));
    panel = std::min(dim, CeilDiv(CeilDiv(dim, panels), align) * align);
  }
  const int64_t panels = CeilDiv(dim, panel);
  const int64_t tasks = g.batches * panels;
  const auto task = [&](const Expr& t) {
    const Expr zero(int64_t{0});
    const Expr b = panels == 1 ? t : g.batches == 1 ? zero : t / Expr(panels);
    const Expr start = panels == 1 ? zero : (g.batches == 1 ? t : t % Expr(panels)) * Expr(panel);
    const Expr size = panels == 1 ? Expr(dim) : kir::Min(Expr(panel), Expr(dim) - start);
    const Expr row0 = split_rows ? start : zero;
    const Expr rows = split_rows ? size : Expr(g.m);
    const Expr col0 = split_rows ? zero : start;
    const Expr cols = split_rows ? Expr(g.n) : size;
    const auto operand = [](const MatrixView& view, const Expr& offset) {
      return lower_gemm::Operand{view.buffer, offset, view.ld, view.transpose, view.packed};
    };
    const Expr b_at = g.b.packed ? col0 * Expr(g.k) : g.b.At(b, zero, col0);
    Stmt call = lower_gemm::Sgemm(rows, cols, Expr(g.k), operand(g.a, g.a.At(b, row0, zero)), operand(g.b, b_at),
                                  operand(g.c, g.c.At(b, row0, col0)));
    return epilogue ? kir::Block({call, epilogue(b, row0, rows, col0, cols)}) : call;
  };
  if (tasks == 1) return task(Expr(int64_t{0}));
  const Expr t = kir::Var("task");
  return kir::For(t, Expr(int64_t{0}), Expr(tasks), task(t), kir::LoopKind::kParallel);
}

// A float64 value converted as the reference stores it: narrow integers saturate (kir's
// float->integer conversion saturates to int64 only, then wraps).
Expr SaturateTo(ScalarType type, const Expr& value) {
  const auto clamp = [&](double low, double high) {
    return kir::Min(kir::Max(value, kir::FloatImm(low, ScalarType::kFloat64)),
                    kir::FloatImm(high, ScalarType::kFloat64));
  };
  switch (type) {
    case ScalarType::kInt8: return clamp(INT8_MIN, INT8_MAX);
    case ScalarType::kUInt8: return clamp(0, UINT8_MAX);
    case ScalarType::kInt16: return clamp(INT16_MIN, INT16_MAX);
    case ScalarType::kUInt16: return clamp(0, UINT16_MAX);
    case ScalarType::kInt32: return clamp(INT32_MIN, INT32_MAX);
    case ScalarType::kUInt32: return clamp(0, UINT32_MAX);
    // The conversion saturates at the top (2^64 - 1), not at 0.
    case ScalarType::kUInt64: return kir::Max(value, kir::FloatImm(0, ScalarType::kFloat64));
    default: return value;
  }
}

// Other dtypes: one row of C per parallel iteration, each element summed in float64 from
// `init` (of its column) in the reference's order, then converted as the reference stores
// it.
Stmt LoopGemm(const BatchedGemm& g, const LowerContext& ctx, const std::function<Expr(const Expr& col)>& init) {
  const kir::Buffer acc = ctx.builder->AddLocal("acc", ScalarType::kFloat64, 1);
  const Expr zero(int64_t{0});
  const Expr r = kir::Var("row");
  const Expr j = kir::Var("col");
  const Expr p = kir::Var("k");
  const Expr b = g.batches == 1 ? zero : r / Expr(g.m);
  const Expr i = g.batches == 1 ? r : r % Expr(g.m);
  const Expr product = lower::LoadAs(g.a.buffer, g.a.At(b, i, p), ScalarType::kFloat64) *
                       lower::LoadAs(g.b.buffer, g.b.At(b, p, j), ScalarType::kFloat64);
  const Stmt column = kir::Block({
      kir::Store(acc, zero, init(j)),
      kir::For(p, zero, Expr(g.k), kir::Store(acc, zero, kir::Load(acc, zero) + product)),
      lower::StoreFrom(g.c.buffer, g.c.At(b, i, j),
                       ctx.epilogue ? ctx.Epilogue(lower::AsStored(SaturateTo(g.c.buffer->type, kir::Load(acc, zero)),
                                                                   ctx.output_types[0]),
                                                   g.c.At(b, i, j))
                                    : SaturateTo(g.c.buffer->type, kir::Load(acc, zero))),
  });
  return kir::For(r, zero, Expr(g.batches * g.m), kir::Allocate(acc, kir::For(j, zero, Expr(g.n), column)),
                  kir::LoopKind::kParallel);
}

// A single float32 product whose B is input `input`, known at compile time: B packed once
// into the artifact (PackGemmB) instead of by every sgemm call. Also for C of a few rows,
// which sgemm would compute as dot products reading B^T in place (ResNet-50's head at
// batch 1: 78 us that way, 94 packed; 512 x 1000: 23 and 21): the micro-kernels sum every
// element in the same order whatever the number of rows, so that a row's result does not
// depend on the batch it runs in (a server's batches, kiln compile --batch-sizes).
void PackConstantB(BatchedGemm& g, LowerContext& ctx, size_t input) {
  const Tensor* b = ctx.ConstantInput(input);
  // The library reads B as it is.
  if (b == nullptr || !ctx.replace_input || ctx.LibrarySteps() || g.batches != 1 || g.k == 0 || g.m * g.n == 0 ||
      ctx.output_types[0] != DType::kFloat32 || b->dtype() != DType::kFloat32) {
    return;
  }
  Tensor packed({PackedGemmBSize(g.k, g.n)}, DType::kFloat32);
  PackGemmB(g.k, g.n, b->data_as<float>(), g.b.ld, g.b.transpose, packed.data_as<float>());
  g.b = {ctx.replace_input(input, ":packed", std::move(packed)), 0, g.k, false, true};
}

// The whole product as one library step, then the bias and the fused epilogue as one
// pass over C (C is the output, contiguous: its element index is the flat index).
Stmt LibraryMatmul(const BatchedGemm& g, const LowerContext& ctx, const kir::Buffer& bias) {
  kir::GemmStepArgs gemm;
  gemm.a = g.a.buffer;
  gemm.b = g.b.buffer;
  gemm.c = g.c.buffer;
  gemm.m = g.m;
  gemm.n = g.n;
  gemm.k = g.k;
  gemm.batch = g.batches;
  gemm.lda = g.a.ld;
  gemm.ldb = g.b.ld;
  gemm.ldc = g.c.ld;
  gemm.stride_a = g.batches > 1 ? g.a.batch_stride : 0;
  gemm.stride_b = g.batches > 1 ? g.b.batch_stride : 0;
  gemm.stride_c = g.batches > 1 ? g.c.batch_stride : 0;
  gemm.transpose_a = g.a.transpose;
  gemm.transpose_b = g.b.transpose;
  std::vector<Stmt> steps = {kir::GemmStep(gemm)};
  if (bias || ctx.epilogue) {
    steps.push_back(lower::ChunkedLoop(g.batches * g.m * g.n, [&](const Expr& i) {
      const Expr column = i % Expr(g.n);
      Expr value = kir::Load(g.c.buffer, i);
      if (bias) value = value + kir::Load(bias, column);
      return kir::Store(g.c.buffer, i, ctx.Epilogue(value, i, column, g.n));
    }));
  }
  return kir::Block(std::move(steps));
}

// The product, plus bias[column] when `bias` is given (FullyConnected).
Stmt LowerMatmul(const BatchedGemm& g, const LowerContext& ctx, const kir::Buffer& bias) {
  if (g.batches * g.m * g.n == 0) return kir::Block({});
  if (g.c.buffer->type != ScalarType::kFloat32 || g.k == 0) {
    return LoopGemm(g, ctx, [&](const Expr& col) {
      return bias ? lower::LoadAs(bias, col, ScalarType::kFloat64) : kir::FloatImm(0.0, ScalarType::kFloat64);
    });
  }
  if (ctx.LibrarySteps()) return LibraryMatmul(g, ctx, bias);
  GemmEpilogue add_bias;
  if (bias || ctx.epilogue) {
    // The bias and fused elementwise consumers, while the task's block of C is still in
    // cache. C is row-major, so its element index is the output's flat index.
    add_bias = [&](const Expr& b, const Expr& row0, const Expr& rows, const Expr& col0, const Expr& cols) {
      const Expr r = kir::Var("r");
      const Expr j = kir::Var("j");
      const Expr at = g.c.At(b, row0 + r, col0 + j);
      Expr value = kir::Load(g.c.buffer, at);
      if (bias) value = value + kir::Load(bias, col0 + j);
      // C's rows are n long (ld == n): the column is the flat index modulo n.
      const Stmt add =
          kir::Store(g.c.buffer, at, g.c.ld == g.n ? ctx.Epilogue(value, at, col0 + j, g.n) : ctx.Epilogue(value, at));
      return kir::For(r, Expr(int64_t{0}), rows, kir::For(j, Expr(int64_t{0}), cols, add, kir::LoopKind::kVectorize));
    };
  }
  return SgemmTasks(g, add_bias);
}

Stmt DotLower(const Attrs& attrs, LowerContext& ctx) {
  const Shape& lhs = ctx.input_shapes[0];
  const Shape& rhs = ctx.input_shapes[1];
  const DotDims dims = InferDotDims(attrs, lhs, rhs);
  BatchedGemm g;
  g.m = NumElements(dims.m_dims);
  g.n = NumElements(dims.n_dims);
  g.k = dims.k;
  // A vector lhs is a (1, k) row and a vector rhs a (k, 1) column, whatever the flags.
  const bool ta = attrs.Bool("transpose_a") && lhs.size() > 1;
  const bool tb = attrs.Bool("transpose_b") && rhs.size() > 1;
  g.a = {ctx.inputs[0], 0, ta ? g.m : g.k, ta};
  g.b = {ctx.inputs[1], 0, rhs.size() == 1 ? 1 : tb ? g.k : g.n, tb};
  g.c = {ctx.outputs[0], 0, g.n, false};
  PackConstantB(g, ctx, 1);
  return LowerMatmul(g, ctx, nullptr);
}

Stmt BatchDotLower(const Attrs& attrs, LowerContext& ctx) {
  const BatchDims dims = InferBatchDims(attrs, ctx.input_shapes[0], ctx.input_shapes[1]);
  const bool ta = attrs.Bool("transpose_a");
  const bool tb = attrs.Bool("transpose_b");
  BatchedGemm g;
  g.batches = NumElements(dims.batch);
  g.m = dims.m;
  g.n = dims.n;
  g.k = dims.k;
  g.a = {ctx.inputs[0], dims.m * dims.k, ta ? dims.m : dims.k, ta};
  g.b = {ctx.inputs[1], dims.k * dims.n, tb ? dims.k : dims.n, tb};
  g.c = {ctx.outputs[0], dims.m * dims.n, dims.n, false};
  return LowerMatmul(g, ctx, nullptr);
}

// data (rows, in_features) x weight (num_hidden, in_features)^T, then the bias.
Stmt FcLower(const Attrs& attrs, LowerContext& ctx) {
  const int64_t num_hidden = attrs.Int("num_hidden");
  BatchedGemm g;
  g.m = NumElements(ctx.output_shapes[0]) / num_hidden;
  g.n = num_hidden;
  g.k = FcInFeatures(attrs, ctx.input_shapes[0]);
  g.a = {ctx.inputs[0], 0, g.k, false};
  g.b = {ctx.inputs[1], 0, g.k, true};
  g.c = {ctx.outputs[0], 0, num_hidden, false};
  PackConstantB(g, ctx, 1);
  return LowerMatmul(g, ctx, attrs.Bool("no_bias") ? nullptr : ctx.inputs[2]);
}

void DeclareTransposeFlags(OpDef& op) {
  op.Attr("transpose_a", AttrType::kBool, AttrValue{false}, "use lhs transposed")
      .Attr("transpose_b", AttrType::kBool, AttrValue{false}, "use rhs transposed")
      // A storage-type hint of MXNet's sparse runtime; kiln stores every tensor dense
      // and the values are the same.
      .Attr("forward_stype", AttrType::kString, AttrValue{std::monostate{}}, "MXNet's output storage hint (ignored)")
      .Choices({"None", "default", "csr", "row_sparse"});  // MXNet's JSON spells the default "None"
}

// --- Gradients ---

std::vector<int64_t> AsInts(const Shape& shape) {
  return std::vector<int64_t>(shape.begin(), shape.end());
}

NodeEntry Reshaped(GradientContext& ctx, const NodeEntry& v, const Shape& shape) {
  return ctx.Apply("_np_reshape", {v}, {{"newshape", AsInts(shape)}});
}

// C = op(A) op(B) (op: transposed where the flag says) through `product` (dot or
// batch_dot): dA = g op(B)^T, or its transpose when A is used transposed; dB likewise.
void MatmulGrads(GradientContext& ctx, const std::string& product, const NodeEntry& a, const NodeEntry& b,
                 const NodeEntry& g, bool ta, bool tb, NodeEntry* da, NodeEntry* db) {
  *da = ta ? ctx.Apply(product, {b, g}, {{"transpose_a", tb}, {"transpose_b", true}})
           : ctx.Apply(product, {g, b}, {{"transpose_b", !tb}});
  *db = tb ? ctx.Apply(product, {g, a}, {{"transpose_a", true}, {"transpose_b", ta}})
           : ctx.Apply(product, {a, g}, {{"transpose_a", !ta}});
}

// dot: N-d operands as the matrices (rows, k) and (k, columns) they flatten to;
// transposed operands must be matrices.
void DotGradient(GradientContext& ctx) {
  const bool ta = ctx.attrs.Bool("transpose_a"), tb = ctx.attrs.Bool("transpose_b");
  const Shape& sa = ctx.input_shapes[0];
  const Shape& sb = ctx.input_shapes[1];
  if ((ta && sa.size() != 2) || (tb && sb.size() != 2) || sa.size() < 1 || sb.size() < 1) {
    throw Error("dot's gradient with transposed operands takes matrices, given " + ShapeToString(sa) + " and " +
                ShapeToString(sb));
  }
  const int64_t k = ta ? sa[0] : sa.back();
  const Shape a2 = ta ? sa : Shape{NumElements(sa) / std::max<int64_t>(k, 1), k};
  const Shape b2 = tb ? sb : Shape{k, NumElements(sb) / std::max<int64_t>(k, 1)};
  const int64_t rows = ta ? sa[1] : a2[0], columns = tb ? sb[0] : b2[1];
  const NodeEntry g = Reshaped(ctx, ctx.OutputGrad(0), {rows, columns});
  NodeEntry da, db;
  MatmulGrads(ctx, "dot", Reshaped(ctx, ctx.inputs[0], a2), Reshaped(ctx, ctx.inputs[1], b2), g, ta, tb, &da, &db);
  ctx.SetInputGrad(0, Reshaped(ctx, da, sa));
  ctx.SetInputGrad(1, Reshaped(ctx, db, sb));
}

void BatchDotGradient(GradientContext& ctx) {
  NodeEntry da, db;
  MatmulGrads(ctx, "batch_dot", ctx.inputs[0], ctx.inputs[1], ctx.OutputGrad(0), ctx.attrs.Bool("transpose_a"),
              ctx.attrs.Bool("transpose_b"), &da, &db);
  ctx.SetInputGrad(0, da);
  ctx.SetInputGrad(1, db);
}

// y = x2 W^T + b with x2 the data as (rows, in_features): dx = g W, dW = g^T x2,
// db = the column sums of g.
void FcGradient(GradientContext& ctx) {
  const Shape& data = ctx.input_shapes[0];
  const int64_t in_features = ctx.input_shapes[1][1];
  const int64_t hidden = ctx.attrs.Int("num_hidden");
  const int64_t rows = NumElements(data) / std::max<int64_t>(in_features, 1);
  const NodeEntry g = Reshaped(ctx, ctx.OutputGrad(0), {rows, hidden});
  const NodeEntry x = Reshaped(ctx, ctx.inputs[0], {rows, in_features});
  ctx.SetInputGrad(0, Reshaped(ctx, ctx.Apply("dot", {g, ctx.inputs[1]}), data));
  ctx.SetInputGrad(1, ctx.Apply("dot", {g, x}, {{"transpose_a", true}}));
  if (!ctx.attrs.Bool("no_bias")) ctx.SetInputGrad(2, ctx.Apply("sum", {g}, {{"axis", std::vector<int64_t>{0}}}));
}

const bool kRegistered = [] {
  OpDef& dot = OpRegistry::Global().Register("dot");
  dot.Describe(
         "Matrix product over the last axis of lhs and the first axis of rhs (N-d operands flatten to "
         "matrices; 1-d operands are vectors)")
      .Inputs({"lhs", "rhs"})
      .SetInferShape(DotInferShape)
      .SetPattern(OpPattern::kGemm)
      .SetTransposeFlags({{0, "transpose_a"}, {1, "transpose_b"}})
      .SetAcceptsEpilogue()
      .SetReference(DotReference)
      .SetLower(DotLower)
      .SetGradient(DotGradient);
  DeclareTransposeFlags(dot);

  OpDef& batch_dot = OpRegistry::Global().Register("batch_dot");
  batch_dot.Describe("Matrix products of the last two axes, batched over equal leading axes")
      .Inputs({"lhs", "rhs"})
      .SetInferShape(BatchDotInferShape)
      .SetPattern(OpPattern::kGemm)
      .SetAcceptsEpilogue()
      .SetReference(BatchDotReference)
      .SetLower(BatchDotLower)
      .SetGradient(BatchDotGradient);
  DeclareTransposeFlags(batch_dot);

  OpRegistry::Global()
      .Register("FullyConnected")
      .Describe("data . weight^T + bias, with weight (num_hidden, in_features)")
      .Attr("num_hidden", AttrType::kInt, std::nullopt, "number of output features")
      .Range(1)
      .Attr("no_bias", AttrType::kBool, AttrValue{false}, "leave out the bias input")
      .Attr("flatten", AttrType::kBool, AttrValue{true},
            "flatten all axes but the first; otherwise apply to the last axis")
      .Inputs([](const Attrs& attrs) {
        return attrs.Bool("no_bias") ? std::vector<std::string>{"data", "weight"}
                                     : std::vector<std::string>{"data", "weight", "bias"};
      })
      .SetInferShape(FcInferShape)
      .SetPattern(OpPattern::kGemm)
      .SetChannelScaling(
          {.weight_input = 1, .weight_axis = 0, .bias_input = 2, .no_bias_attr = "no_bias", .output_axis = -1})
      .SetAcceptsEpilogue()
      .SetReference(FcReference)
      .SetLower(FcLower)
      .SetGradient(FcGradient);
  return true;
}();

}  // namespace
}  // namespace kiln
