// What the neural-network operator files (nn.cc, winograd.cc) share: the convolution
// geometry, type inference of float-only layers, and the kernel-IR building blocks of
// their lowerings (loops, task splits, calls of the GEMM routines).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "codegen/kir/kir.h"
#include "graph/op.h"

namespace kiln::nn {

using kir::Expr;
using kir::Stmt;

// MXNet's layers compute in floating point only. Every input and output takes the data
// dtype; `names` are the input names, for messages.
InferTypeFn FloatSameType(std::vector<std::string> names);

// A tuple attribute with one entry per spatial dimension (h, w); empty means `fill`.
struct Pair {
  int64_t h;
  int64_t w;
};
Pair SpatialPair(const Attrs& attrs, const char* name, int64_t fill);

struct ConvGeometry {
  int64_t batch, channels, height, width, filters, out_h, out_w, groups, group_in, group_out;
  Pair k, s, d, p;

  int64_t taps() const { return k.h * k.w; }                // kernel positions
  int64_t group_taps() const { return group_in * taps(); }  // K of a group's product
  int64_t in_plane() const { return height * width; }
  int64_t out_plane() const { return out_h * out_w; }
};
// The convolution geometry of a data shape and an output (or output-gradient) shape.
ConvGeometry ConvGeometryOf(const Attrs& attrs, const Shape& xs, const Shape& ys);

// Output positions along one axis whose every tap is inside the input (no padding
// read): first <= o < end.
std::pair<int64_t, int64_t> Interior(int64_t size, int64_t out, int64_t kernel, int64_t stride, int64_t dilate,
                                     int64_t pad);

// Work splits: a kernel makes at most kMaxTasks tasks; a block of filters of a
// convolution that splits them holds at least kMinFilterBlock.
constexpr int64_t kMaxTasks = 64;
constexpr int64_t kMinFilterBlock = 96;

inline int64_t CeilDivInt(int64_t a, int64_t b) {
  return (a + b - 1) / b;
}
inline int64_t RoundUpTo(int64_t a, int64_t b) {
  return CeilDivInt(a, b) * b;
}
// A count of parts to cut a layer's work into along one dimension: 1, or even. Tasks run
// consecutive items and the thread pool gives each thread a contiguous range of tasks,
// so with two threads an odd count of equal items leaves one thread a whole item more
// (ResNet-50's stride-2 layers cut in 3 ran 2:1, at 1.7 times ONNX Runtime's time).
inline int64_t EvenParts(int64_t parts) {
  return parts <= 1 ? 1 : parts / 2 * 2;
}

inline Expr Int(int64_t value) {
  return Expr(value);
}
inline Stmt Loop(const Expr& var, const Expr& begin, const Expr& extent, Stmt body,
                 kir::LoopKind kind = kir::LoopKind::kSerial) {
  return kir::For(var, begin, extent, std::move(body), kind);
}
// Tasks run items [task * items / tasks, (task + 1) * items / tasks): nearly equal
// shares of consecutive items, `body(task, item)` each (the task picks its scratch).
Stmt TaskLoop(int64_t items, int64_t tasks, const std::function<Stmt(const Expr& task, const Expr& item)>& body);

// The image operand of the sconv routines: channels x height x width read as the
// im2col matrix of a convolution with this geometry (their geometry arguments).
struct ConvImage {
  Expr channels, height, width;
  int64_t kernel_h = 1, kernel_w = 1, stride_h = 1, stride_w = 1, dilate_h = 1, dilate_w = 1, pad_h = 0, pad_w = 0;
  Expr out_w;
};
// One group's input of a convolution.
ConvImage ImageOf(const ConvGeometry& g);

// A call of sconv or sconv_t (runtime/kernel_abi.h), arguments in the routines' order:
// m filters over positions [col0, col0 + cols), filters at a (row stride lda, 0: packed).
Stmt ConvRoutineCall(const char* routine, const Expr& m, const Expr& col0, const Expr& cols, const kir::Buffer& a,
                     const Expr& a_at, int64_t lda, const kir::Buffer& x, const Expr& x_at, const ConvImage& image,
                     const kir::Buffer& c, const Expr& c_at, const Expr& ldc);

// The sgemm routine (runtime/kernel_abi.h): C = op(A) op(B) + beta C, row-major operands
// at element offsets, row strides lda, ldb, ldc.
Stmt SgemmCall(const Expr& m, const Expr& n, const Expr& k, const kir::Buffer& a, const Expr& a_at, const Expr& lda,
               bool transpose_a, const kir::Buffer& b, const Expr& b_at, const Expr& ldb, bool transpose_b,
               const Expr& beta, const kir::Buffer& c, const Expr& c_at, const Expr& ldc);

// A tensor as (outer, channels, inner) around the channel axis of attribute 'axis', as
// BatchNorm and its gradient see their data.
struct ChannelView {
  int64_t outer = 1, channels = 1, inner = 1;
  int64_t count() const { return outer * inner; }  // elements of one channel
  int64_t at(int64_t o, int64_t c, int64_t i) const { return (o * channels + c) * inner + i; }
};
ChannelView ChannelViewOf(const Attrs& attrs, const Shape& shape);

// Kernel IR over channel `c` of a view: `at` is element (o, c, i)'s index, Over(body)
// runs `body` for every (o, i), vectorized along i; Reduce(store) runs an accumulator's
// update (acc[k] = acc[k] + v) for every (o, i). With `flat` (for CUDA) both are one loop
// over the channel's elements, (o, i) divided out of it: Over's independent, Reduce's a
// kReduction (a block of threads per channel).
struct ChannelLoops {
  ChannelLoops(const ChannelView& view, const Expr& c, bool flat = false);
  Stmt Over(Stmt body) const;
  Stmt Reduce(Stmt store) const;
  ChannelView view;
  bool flat = false;
  Expr r;  // flat: the element of the channel
  Expr c, o, i, at;
};

// BatchNorm's batch statistics of one channel in float64, in the reference's order (two
// passes): the mean into stat[0], then the biased variance into stat[1]; `x` is element
// `loops.at` as float64. Shared by the forward and _backward_BatchNorm, so that both see
// equal values.
std::vector<Stmt> BatchStatistics(const kir::Buffer& stat, const ChannelLoops& loops, const Expr& x);

// --- Winograd F(m x m, r x r) (winograd.cc) for 3x3 and 5x5 stride-1 convolutions.

// Whether a Convolution being lowered with constant filters is computed by Winograd's
// algorithm (its filters transformed and packed at compile time), and its lowering.
bool WinogradApplies(const ConvGeometry& g, const LowerContext& ctx);
Stmt WinogradConvolution(const ConvGeometry& g, LowerContext& ctx, const kir::Buffer& bias);
// The weight gradient of a convolution of `g`'s geometry, float32 (out_grad, data).
bool WinogradWeightGradApplies(const ConvGeometry& g);
Stmt WinogradWeightGrad(const ConvGeometry& g, LowerContext& ctx);
// Alter functions: Convolution with run-time filters, and Convolution's data gradient,
// into _winograd_filters and _winograd_conv.
void AlterConvolutionToWinograd(AlterContext& ctx);
void AlterConvDataGradToWinograd(AlterContext& ctx);

}  // namespace kiln::nn
