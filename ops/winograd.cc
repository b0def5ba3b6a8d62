// Winograd F(2x2, 3x3) (Lavin and Gray, 2015) for 3x3 stride-1 convolutions: each 2x2
// block of outputs (a tile) comes from a 4x4 patch of the input through 16 elementwise
// products in a transformed space, 2.25 times fewer multiply-adds than the direct form.
//   U = G g G^T            per (filter, channel): the filters' transform
//   V = B^T d B            per (channel, tile): the input patch's (zero outside the image)
//   M[point] = U[point] V[point]   16 matrix products, channels summed
//   y = A^T M A            per (filter, tile)
// B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1], G = [1 0 0; .5 .5 .5; .5 -.5 .5; 0 0 1],
// A^T = [1 1 1 0; 0 1 -1 -1]. Rounding: the transforms add and subtract at most 9 values
// of a tile's patch and of its products, so results differ from the direct sum by a few
// float32 roundings of the inputs' magnitudes, as a GEMM's do.
//
// Three uses:
// - Convolution with constant filters (inference): U transformed and packed at compile time.
// - Convolution and its data gradient with run-time filters (training): the alter pass
//   makes them `_winograd_filters` (U, once per step) and `_winograd_conv`. The data
//   gradient of a stride-1 convolution is the convolution of the output gradient with
//   the filters rotated by 180 degrees and transposed (filters <-> channels), padded
//   2 - pad.
// - The weight gradient: y is linear in g, so dL/dg = sum over tiles of
//   G^T [(A dy A^T) . V] G: 16 products dY^[point] V[point]^T over all tiles, then G^T M G.
#include <algorithm>
#include <array>
#include <functional>

#include "graph/alter.h"
#include "graph/op_util.h"
#include "ops/lower_gemm.h"
#include "ops/nn_lowering.h"
#include "runtime/error.h"
#include "runtime/kernel_abi.h"
#include "runtime/kernels/gemm.h"

namespace kiln::nn {

namespace {

using kir::ScalarType;

constexpr int64_t kPoints = 16;
constexpr int64_t kMinChannels = 16;  // below this the transforms cost more than they save
// Below this many tiles per image the products are too narrow for the micro-kernels'
// columns (a 7x7 output, 16 tiles, ran 15% slower than the direct form): they are
// computed transposed.
constexpr int64_t kMinTiles = 32;
constexpr int64_t kMinTileCols = 64;      // GEMM columns (tiles) a block has, where the image allows
constexpr int64_t kMaxTileCols = 256;     // and at most: V and M of a block stay in L2
constexpr int64_t kMinNarrowTiles = 128;  // rows of a narrow product on run-time filters, where images allow
// A task's least multiply-adds (in the transformed space): each transforms its input.
constexpr int64_t kMinTaskMacs = int64_t{1} << 21;
// Points' matrices lie a cache line further apart than their sizes: the transforms
// touch all 16 at once, and strides of a multiple of 4 KiB would map them all to one
// set of the L1 cache.
constexpr int64_t kSkew = 16;

bool IsWinogradShape(const ConvGeometry& g) {
  return g.k.h == 3 && g.k.w == 3 && g.s.h == 1 && g.s.w == 1 && g.d.h == 1 && g.d.w == 1 && g.groups == 1 &&
         g.group_in >= kMinChannels && g.filters >= kMinChannels;
}

// --- The transforms, as kernel-IR expressions (one per point) and in float64.

// G v of a 3-vector, G^T m of a 4-vector, B^T v and A^T v of 4-vectors, A v of a 2-vector.
template <typename T>
std::array<T, 4> ApplyG(const T& v0, const T& v1, const T& v2, const T& half) {
  return {v0, (v0 + v1 + v2) * half, (v0 - v1 + v2) * half, v2};
}
template <typename T>
std::array<T, 3> ApplyGt(const T& m0, const T& m1, const T& m2, const T& m3, const T& half) {
  return {m0 + (m1 + m2) * half, (m1 - m2) * half, (m1 + m2) * half + m3};
}
template <typename T>
std::array<T, 4> ApplyBt(const T& v0, const T& v1, const T& v2, const T& v3) {
  return {v0 - v2, v1 + v2, v2 - v1, v1 - v3};
}
template <typename T>
std::array<T, 2> ApplyAt(const T& v0, const T& v1, const T& v2, const T& v3) {
  return {v0 + v1 + v2, v1 - v2 - v3};
}
template <typename T>
std::array<T, 4> ApplyA(const T& v0, const T& v1) {
  return {v0, v0 + v1, v0 - v1, -v1};
}

// `f` applied to every column of a rows x cols matrix (row-major): out_rows x cols.
template <typename T, size_t kRows, size_t kCols, size_t kOutRows, typename F>
std::array<T, kOutRows * kCols> MapColumns(const std::array<T, kRows * kCols>& x, F f) {
  std::array<T, kOutRows * kCols> out;
  for (size_t j = 0; j < kCols; ++j) {
    std::array<T, kRows> column;
    for (size_t i = 0; i < kRows; ++i) column[i] = x[i * kCols + j];
    const auto mapped = f(column);
    for (size_t i = 0; i < kOutRows; ++i) out[i * kCols + j] = mapped[i];
  }
  return out;
}
template <typename T, size_t kRows, size_t kCols>
std::array<T, kRows * kCols> Transpose(const std::array<T, kRows * kCols>& x) {
  std::array<T, kRows * kCols> out;
  for (size_t i = 0; i < kRows; ++i) {
    for (size_t j = 0; j < kCols; ++j) out[j * kRows + i] = x[i * kCols + j];
  }
  return out;
}
// L X R^T for a matrix X (rows x cols) given the maps of L and R on vectors: the columns
// through `left`, then the rows through `right`.
template <typename T, size_t kRows, size_t kCols, size_t kOutRows, size_t kOutCols, typename Left, typename Right>
std::array<T, kOutRows * kOutCols> Sandwich(const std::array<T, kRows * kCols>& x, Left left, Right right) {
  const auto columns = Transpose<T, kOutRows, kCols>(MapColumns<T, kRows, kCols, kOutRows>(x, left));
  return Transpose<T, kOutCols, kOutRows>(MapColumns<T, kCols, kOutRows, kOutCols>(columns, right));
}

// U = G g G^T of a 3x3 filter.
template <typename T>
std::array<T, 16> FilterTransform(const std::array<T, 9>& g, const T& half) {
  const auto gv = [&](const std::array<T, 3>& v) { return ApplyG(v[0], v[1], v[2], half); };
  return Sandwich<T, 3, 3, 4, 4>(g, gv, gv);
}
// V = B^T d B of a 4x4 patch.
template <typename T>
std::array<T, 16> InputTransform(const std::array<T, 16>& d) {
  const auto bt = [](const std::array<T, 4>& v) { return ApplyBt(v[0], v[1], v[2], v[3]); };
  return Sandwich<T, 4, 4, 4, 4>(d, bt, bt);
}
// y = A^T m A of a 4x4 block of products: 2x2.
template <typename T>
std::array<T, 4> OutputTransform(const std::array<T, 16>& m) {
  const auto at = [](const std::array<T, 4>& v) { return ApplyAt(v[0], v[1], v[2], v[3]); };
  return Sandwich<T, 4, 4, 2, 2>(m, at, at);
}
// A dy A^T of a 2x2 block of output gradients: 4x4.
template <typename T>
std::array<T, 16> OutGradTransform(const std::array<T, 4>& dy) {
  const auto a = [](const std::array<T, 2>& v) { return ApplyA(v[0], v[1]); };
  return Sandwich<T, 2, 2, 4, 4>(dy, a, a);
}
// G^T m G of a 4x4 block: 3x3.
template <typename T>
std::array<T, 9> FilterGradTransform(const std::array<T, 16>& m, const T& half) {
  const auto gt = [&](const std::array<T, 4>& v) { return ApplyGt(v[0], v[1], v[2], v[3], half); };
  return Sandwich<T, 4, 4, 3, 3>(m, gt, gt);
}

// Filter (f, c) of a (filters, channels, 3, 3) weight, or with `flip` the filter (c, f)
// of its data-gradient form: w[f][c] rotated by 180 degrees.
int64_t FilterTap(int64_t row, int64_t col, int64_t channels, bool flip, int64_t tap) {
  return flip ? (col * channels + row) * 9 + (8 - tap) : (row * channels + col) * 9 + tap;
}

// U for every point, each a packed filters x channels matrix (PackFilters), or (narrow)
// its transpose packed as a GEMM's right-hand operand (PackGemmB).
// U of every (row, col) of a weight's filter bank, point-major: (16, rows, cols) in
// float64; rows are filters and cols channels, or with `flip` the data gradient's.
std::vector<double> TransformFilterBank(const std::vector<double>& w, int64_t rows, int64_t cols, bool flip) {
  std::vector<double> u(static_cast<size_t>(kPoints * rows * cols));
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t c = 0; c < cols; ++c) {
      std::array<double, 9> g;
      for (int64_t tap = 0; tap < 9; ++tap) g[tap] = w[FilterTap(r, c, flip ? rows : cols, flip, tap)];
      const auto transformed = FilterTransform(g, 0.5);
      for (int64_t point = 0; point < kPoints; ++point) u[(point * rows + r) * cols + c] = transformed[point];
    }
  }
  return u;
}

Tensor TransformConstantFilters(const Tensor& weight, int64_t filters, int64_t channels, bool narrow) {
  const std::vector<double> bank = TransformFilterBank(weight.ToDoubles(), filters, channels, false);
  const std::vector<float> u(bank.begin(), bank.end());
  const int64_t packed_size = narrow ? PackedGemmBSize(channels, filters) : PackedFiltersSize(filters, channels);
  Tensor packed({kPoints * packed_size}, DType::kFloat32);
  for (int64_t point = 0; point < kPoints; ++point) {
    const float* matrix = u.data() + point * filters * channels;
    float* to = packed.data_as<float>() + point * packed_size;
    if (narrow) {
      PackGemmB(channels, filters, matrix, channels, true, to);
    } else {
      PackFilters(filters, channels, matrix, channels, to);
    }
  }
  return packed;
}

// The transformed filters a Winograd convolution reads: packed at compile time, or
// run-time (16, filters, channels) from _winograd_filters.
struct TransformedFilters {
  kir::Buffer buffer;
  bool packed = false;
};

// The input transform of the tiles of rows [row0, row0 + rows) of one image, channels
// [0, channels): V[point] of (channel c, tile t) to `to` at at(c, t) + point * point_stride,
// t = (th - row0) tiles_w + tw. Interior tiles run vectorized along the row, unguarded.
Stmt TransformInputTiles(const ConvGeometry& g, const kir::Buffer& x, const Expr& image, const Expr& first_channel,
                         const Expr& channels, const Expr& row0, const Expr& rows, const kir::Buffer& patch,
                         const kir::Buffer& to, const std::function<Expr(const Expr& c, const Expr& tile)>& at,
                         const Expr& point_stride) {
  const int64_t tiles_h = CeilDivInt(g.out_h, 2);
  const int64_t tiles_w = CeilDivInt(g.out_w, 2);
  // Tiles whose patch lies inside the image along an axis: kernel 4, stride 2.
  const std::pair<int64_t, int64_t> tile_rows_inside = Interior(g.height, tiles_h, 4, 2, 1, g.p.h);
  const std::pair<int64_t, int64_t> tile_cols_inside = Interior(g.width, tiles_w, 4, 2, 1, g.p.w);
  // Plain variables, not structured bindings: lambdas below capture them (clang 14).
  const int64_t tile_row_first = tile_rows_inside.first, tile_row_end = tile_rows_inside.second;
  const int64_t tile_col_first = tile_cols_inside.first, tile_col_end = tile_cols_inside.second;
  const Expr c = kir::Var("c");
  const Expr th = kir::Var("th");
  const Expr tw = kir::Var("tw");
  const auto transform_tile = [&](bool guard_rows, bool guard_cols) {
    std::vector<Stmt> body;
    const Expr ih0 = th * Int(2) - Int(g.p.h);
    const Expr iw0 = tw * Int(2) - Int(g.p.w);
    const Expr plane = (image * Int(g.channels) + first_channel + c) * Int(g.in_plane());
    for (int r = 0; r < 4; ++r) {
      for (int q = 0; q < 4; ++q) {
        const Expr ih = ih0 + Int(r);
        const Expr iw = iw0 + Int(q);
        Expr value = kir::Load(x, plane + ih * Int(g.width) + iw);
        std::vector<Expr> inside;
        if (guard_rows) inside.push_back(kir::And(kir::Ge(ih, Int(0)), kir::Lt(ih, Int(g.height))));
        if (guard_cols) inside.push_back(kir::And(kir::Ge(iw, Int(0)), kir::Lt(iw, Int(g.width))));
        if (!inside.empty()) {
          value =
              kir::Select(inside.size() == 1 ? inside[0] : kir::And(inside[0], inside[1]), value, kir::FloatImm(0.0));
        }
        body.push_back(kir::Store(patch, Int(r * 4 + q), value));
      }
    }
    std::array<Expr, 16> d;
    for (int k = 0; k < 16; ++k) d[k] = kir::Load(patch, Int(k));
    const auto v = InputTransform(d);
    const Expr where = at(c, (th - row0) * Int(tiles_w) + tw);
    for (int point = 0; point < kPoints; ++point) {
      body.push_back(kir::Store(to, where + Int(point) * point_stride, v[point]));
    }
    return kir::Block(std::move(body));
  };
  const auto tile_columns = [&](bool guard_rows) {
    if (guard_rows) return Loop(tw, Int(0), Int(tiles_w), transform_tile(true, true));
    return kir::Block({
        Loop(tw, Int(0), Int(tile_col_first), transform_tile(false, true)),
        Loop(tw, Int(tile_col_first), Int(tile_col_end - tile_col_first), transform_tile(false, false),
             kir::LoopKind::kVectorize),
        Loop(tw, Int(tile_col_end), Int(tiles_w - tile_col_end), transform_tile(false, true)),
    });
  };
  return Loop(c, Int(0), channels,
              Loop(th, row0, rows,
                   kir::If(kir::And(kir::Ge(th, Int(tile_row_first)), kir::Lt(th, Int(tile_row_end))),
                           tile_columns(false), tile_columns(true))));
}

// Tile rows [row0, row0 + rows) of an output, tile by tile: `tile(guarded)` for tile
// (th, tw), vectorized along the row where the 2x2 block lies wholly inside the output
// (all but the last row and column of tiles when the output's size is odd), guarded
// elsewhere.
Stmt OverOutputTiles(const ConvGeometry& g, const Expr& th, const Expr& tw, const Expr& row0, const Expr& rows,
                     const std::function<Stmt(bool guarded)>& tile) {
  const int64_t tiles_w = CeilDivInt(g.out_w, 2);
  const int64_t full_rows = g.out_h / 2;
  const int64_t full_cols = g.out_w / 2;
  return Loop(th, row0, rows,
              kir::If(kir::Lt(th, Int(full_rows)),
                      kir::Block({Loop(tw, Int(0), Int(full_cols), tile(false), kir::LoopKind::kVectorize),
                                  Loop(tw, Int(full_cols), Int(tiles_w - full_cols), tile(true))}),
                      Loop(tw, Int(0), Int(tiles_w), tile(true))));
}

// A Winograd convolution of `g`'s geometry (input 0 the data) with transformed filters.
// A work item is a block of whole tile rows of one image (narrow products on run-time
// filters: of several whole images) and a block of filters:
// the input transform into V, one product per point into M, the output transform with
// the bias and the fused epilogue into the output.
Stmt WinogradKernel(const ConvGeometry& g, LowerContext& ctx, const TransformedFilters& u, bool narrow,
                    const kir::Buffer& bias) {
  const kir::Buffer& x = ctx.inputs[0];
  const kir::Buffer& out = ctx.outputs[0];
  const int64_t channels = g.channels;
  const int64_t tiles_h = CeilDivInt(g.out_h, 2);
  const int64_t tiles_w = CeilDivInt(g.out_w, 2);
  const int64_t u_size = !u.packed ? g.filters * channels
                         : narrow  ? PackedGemmBSize(channels, g.filters)
                                   : PackedFiltersSize(g.filters, channels);

  // Work: blocks of whole tile rows (kMinTileCols to kMaxTileCols tiles where the image
  // has them), then blocks of filters when images and tile blocks give too few tasks.
  // Narrow products on run-time filters take several whole images, so that U^T, which
  // every product packs, is packed for kMinNarrowTiles tiles at least.
  const int64_t image_tiles = tiles_h * tiles_w;
  const int64_t block_images = narrow && !u.packed ? std::min(g.batch, CeilDivInt(kMinNarrowTiles, image_tiles)) : 1;
  const int64_t image_blocks = CeilDivInt(g.batch, block_images);
  const int64_t macs = g.batch * image_tiles * kPoints * g.filters * channels;
  const int64_t want = std::clamp<int64_t>(macs / kMinTaskMacs, 1, kMaxTasks);
  const int64_t min_rows = std::min(tiles_h, CeilDivInt(kMinTileCols, tiles_w));
  const int64_t max_rows = std::max<int64_t>(1, kMaxTileCols / tiles_w);
  int64_t row_blocks = block_images > 1 ? 1
                                        : std::clamp<int64_t>(CeilDivInt(want, g.batch), CeilDivInt(tiles_h, max_rows),
                                                              std::max<int64_t>(1, tiles_h / min_rows));
  const int64_t block_rows = CeilDivInt(tiles_h, row_blocks);
  row_blocks = CeilDivInt(tiles_h, block_rows);
  int64_t filter_blocks = 1;
  if (image_blocks * row_blocks < want) {
    filter_blocks =
        std::min(CeilDivInt(want, image_blocks * row_blocks), std::max<int64_t>(1, g.filters / kMinFilterBlock));
  }
  // Blocks start on panels of a packed U.
  const int64_t filter_block =
      std::min(g.filters, RoundUpTo(CeilDivInt(g.filters, filter_blocks), narrow ? kPackedCols : kPackedRows));
  filter_blocks = CeilDivInt(g.filters, filter_block);
  const int64_t items = image_blocks * row_blocks * filter_blocks;
  const int64_t tasks = std::min(items, want);
  const int64_t max_tiles = block_images * block_rows * tiles_w;
  const int64_t v_size = kPoints * (channels * max_tiles + kSkew);
  const int64_t m_size = kPoints * (filter_block * max_tiles + kSkew);
  const kir::Buffer scratch = ctx.Scratch("winograd", ScalarType::kFloat32, tasks * (v_size + m_size));
  const kir::Buffer patch = ctx.builder->AddLocal("patch", ScalarType::kFloat32, 16);

  return TaskLoop(items, tasks, [&](const Expr& task, const Expr& item) {
    const Expr n0 = item / Int(row_blocks * filter_blocks) * Int(block_images);
    const Expr images =
        g.batch % block_images == 0 ? Int(block_images) : kir::Min(Int(block_images), Int(g.batch) - n0);
    const Expr row0 = item / Int(filter_blocks) % Int(row_blocks) * Int(block_rows);
    const Expr rows = kir::Min(Int(block_rows), Int(tiles_h) - row0);
    const Expr image_span = rows * Int(tiles_w);  // tiles of one image in the block
    const Expr tiles = images * image_span;
    const Expr f0 = filter_blocks == 1 ? Int(0) : item % Int(filter_blocks) * Int(filter_block);
    const Expr block_filters = filter_blocks == 1 ? Int(g.filters) : kir::Min(Int(filter_block), Int(g.filters) - f0);
    const Expr v_base = task * Int(v_size + m_size);
    const Expr m_base = v_base + Int(v_size);
    // V[point] is channels x tiles with rows v_row apart; M[point] is filters x tiles (rows
    // `tiles` apart), or tiles x filter_block when narrow. An image's tiles follow the last's.
    const Expr v_row = narrow ? Int(max_tiles) : tiles;
    const Expr v_stride = Int(channels) * v_row + Int(kSkew);
    const Expr m_stride = narrow ? Int(filter_block * max_tiles + kSkew) : block_filters * tiles + Int(kSkew);
    const Expr img = kir::Var("img");

    // 1. The input transform.
    const Stmt input_transform = Loop(
        img, Int(0), images,
        TransformInputTiles(
            g, x, n0 + img, Int(0), Int(channels), row0, rows, patch, scratch,
            [&](const Expr& c, const Expr& tile) { return v_base + c * v_row + img * image_span + tile; }, v_stride));

    // 2. One matrix product per point: the point's V (channels x tiles) read as a 1x1
    // convolution's image; narrow: V^T (tiles x channels) times U^T.
    const Expr point = kir::Var("point");
    const Expr u_at = point * Int(u_size) + f0 * Int(channels);
    const Stmt product = narrow ? lower_gemm::Sgemm(tiles, block_filters, Int(channels),
                                                    {scratch, v_base + point * v_stride, max_tiles, true},
                                                    {u.buffer, u_at, channels, !u.packed, u.packed},
                                                    {scratch, m_base + point * m_stride, filter_block, false})
                                : ConvRoutineCall(kRoutineSconv, block_filters, Int(0), tiles, u.buffer, u_at,
                                                  u.packed ? 0 : channels, scratch, v_base + point * v_stride,
                                                  {Int(channels), Int(1), tiles, 1, 1, 1, 1, 1, 1, 0, 0, tiles},
                                                  scratch, m_base + point * m_stride, tiles);
    const Stmt products = Loop(point, Int(0), Int(kPoints), product);

    // 3. The output transform, bias and epilogue of one (filter, tile).
    const Expr f = kir::Var("f");
    const Expr th = kir::Var("th");
    const Expr tw = kir::Var("tw");
    const auto output_tile = [&](bool guarded) {
      std::array<Expr, 16> m;
      const Expr tile = img * image_span + (th - row0) * Int(tiles_w) + tw;
      for (int k = 0; k < 16; ++k) {
        const Expr at = narrow ? tile * Int(filter_block) + (f - f0) : (f - f0) * tiles + tile;
        m[k] = kir::Load(scratch, m_base + Int(k) * m_stride + at);
      }
      const auto y = OutputTransform(m);
      std::vector<Stmt> stores;
      for (int i = 0; i < 2; ++i) {
        for (int j = 0; j < 2; ++j) {
          const Expr oh = th * Int(2) + Int(i);
          const Expr ow = tw * Int(2) + Int(j);
          const Expr at = (((n0 + img) * Int(g.filters) + f) * Int(g.out_h) + oh) * Int(g.out_w) + ow;
          const Expr value = bias ? y[i * 2 + j] + kir::Load(bias, f) : y[i * 2 + j];
          Stmt store = kir::Store(out, at, ctx.Epilogue(value, at, oh * Int(g.out_w) + ow, g.out_h * g.out_w));
          if (guarded) store = kir::If(kir::And(kir::Lt(oh, Int(g.out_h)), kir::Lt(ow, Int(g.out_w))), store);
          stores.push_back(std::move(store));
        }
      }
      return kir::Block(std::move(stores));
    };
    const Stmt output_transform =
        Loop(img, Int(0), images, Loop(f, f0, block_filters, OverOutputTiles(g, th, tw, row0, rows, output_tile)));
    return kir::Allocate(patch, kir::Block({input_transform, products, output_transform}));
  });
}

// Images of few tiles (7x7 outputs: 16) make the products narrow, which the
// micro-kernels' rows handle far better than their columns: the products are then
// computed transposed, M^T = V^T U^T, tiles as rows (the "narrow" form).
bool NarrowTiles(const ConvGeometry& g) {
  return CeilDivInt(g.out_h, 2) * CeilDivInt(g.out_w, 2) < kMinTiles;
}

// --- _winograd_filters (weight; flip): U of every (filter, channel), (16, filters,
// channels); with flip, of the data gradient's filters (16, channels, filters).

void InferWinogradFiltersShape(const Attrs& attrs, std::vector<ShapeSlot>& in, std::vector<ShapeSlot>& out) {
  if (!in[0]) return;
  const Shape& w = *in[0];
  if (w.size() != 4 || w[2] != 3 || w[3] != 3) op_util::ShapeError("input 'weight'", "(filters, channels, 3, 3)", w);
  const bool flip = attrs.Bool("flip");
  op_util::AssignShape(out[0], {kPoints, flip ? w[1] : w[0], flip ? w[0] : w[1]}, "output");
}

void WinogradFiltersReference(const Attrs& attrs, std::span<const Tensor> in, std::span<Tensor> out,
                              const RefContext&) {
  const Shape& u = out[0].shape();
  const std::vector<double> bank = TransformFilterBank(in[0].ToDoubles(), u[1], u[2], attrs.Bool("flip"));
  for (size_t i = 0; i < bank.size(); ++i) out[0].SetDouble(static_cast<int64_t>(i), bank[i]);
}

Stmt WinogradFiltersLower(const Attrs& attrs, LowerContext& ctx) {
  const kir::Buffer& w = ctx.inputs[0];
  const kir::Buffer& u = ctx.outputs[0];
  const int64_t rows = ctx.output_shapes[0][1], cols = ctx.output_shapes[0][2];
  const bool flip = attrs.Bool("flip");
  const ScalarType type = ToScalarType(ctx.output_types[0]);
  const Expr r = kir::Var("r");
  const Expr c = kir::Var("c");
  std::array<Expr, 9> g;
  const int64_t channels = flip ? rows : cols;
  for (int64_t tap = 0; tap < 9; ++tap) {
    // FilterTap's index with run-time row and column.
    const Expr at =
        flip ? (c * Int(channels) + r) * Int(9) + Int(8 - tap) : (r * Int(channels) + c) * Int(9) + Int(tap);
    g[tap] = kir::Cast(type, kir::Load(w, at));
  }
  const auto transformed = FilterTransform(g, kir::FloatImm(0.5, type));
  std::vector<Stmt> stores;
  for (int64_t point = 0; point < kPoints; ++point) {
    stores.push_back(kir::Store(u, (Int(point * rows) + r) * Int(cols) + c, transformed[point]));
  }
  return Loop(r, Int(0), Int(rows),
              Loop(c, Int(0), Int(cols), kir::Block(std::move(stores)), kir::LoopKind::kVectorize),
              kir::LoopKind::kParallel);
}

// --- _winograd_conv (data, filters[, bias]; pad, no_bias): the convolution with U
// from _winograd_filters, stride 1, output (N, filters, H + 2 pad - 2, W + 2 pad - 2).

ConvGeometry WinogradConvGeometry(const Attrs& attrs, const Shape& x, const Shape& u, const Shape& y) {
  const Pair p = SpatialPair(attrs, "pad", 0);
  return {x[0], x[1], x[2], x[3], u[1], y[2], y[3], 1, x[1], u[1], {3, 3}, {1, 1}, {1, 1}, p};
}

void ValidateWinogradConv(const Attrs& attrs) {
  if (attrs.Ints("pad").size() != 2) {
    throw Error("attribute 'pad': expected 2 elements (h, w), given " + FormatAttrValue(attrs.Ints("pad")));
  }
}

// The kernel computes in float32 (the transforms' rounding suits it, not float64's
// expectations); the alter pass makes this operator for float32 convolutions only.
void InferWinogradConvType(const Attrs&, std::vector<DTypeSlot>& in, std::vector<DTypeSlot>& out) {
  const std::vector<std::string> names = {"data", "filters", "bias"};
  for (size_t i = 0; i < in.size(); ++i) op_util::AssignType(in[i], DType::kFloat32, "input '" + names[i] + "'");
  op_util::AssignType(out[0], DType::kFloat32, "output");
}

void InferWinogradConvShape(const Attrs& attrs, std::vector<ShapeSlot>& in, std::vector<ShapeSlot>& out) {
  if (!in[1]) return;
  const Shape& u = *in[1];
  if (u.size() != 3 || u[0] != kPoints) op_util::ShapeError("input 'filters'", "(16, filters, channels)", u);
  if (!attrs.Bool("no_bias")) op_util::AssignShape(in[2], {u[1]}, "input 'bias'");
  if (!in[0]) return;
  const Shape& x = *in[0];
  if (x.size() != 4) op_util::ShapeError("input 'data'", "4-d (N,C,H,W)", x);
  if (x[1] != u[2]) {
    throw Error("input 'data': " + std::to_string(x[1]) + " channels (shape " + ShapeToString(x) + "), the filters " +
                ShapeToString(u) + " expect " + std::to_string(u[2]));
  }
  const Pair p = SpatialPair(attrs, "pad", 0);
  const int64_t out_h = x[2] + 2 * p.h - 2, out_w = x[3] + 2 * p.w - 2;
  if (out_h < 1 || out_w < 1) {
    throw Error("input 'data' " + ShapeToString(x) + " padded by " + FormatAttrValue(attrs.Ints("pad")) +
                " is smaller than the 3x3 kernel");
  }
  op_util::AssignShape(out[0], {x[0], u[1], out_h, out_w}, "output");
}

// The algorithm itself in float64: V, the products summed over channels, A^T M A.
void WinogradConvReference(const Attrs& attrs, std::span<const Tensor> in, std::span<Tensor> out, const RefContext&) {
  const ConvGeometry g = WinogradConvGeometry(attrs, in[0].shape(), in[1].shape(), out[0].shape());
  const std::vector<double> x = in[0].ToDoubles();
  const std::vector<double> u = in[1].ToDoubles();
  const std::vector<double> bias = attrs.Bool("no_bias") ? std::vector<double>(g.filters, 0.0) : in[2].ToDoubles();
  const int64_t tiles_h = CeilDivInt(g.out_h, 2), tiles_w = CeilDivInt(g.out_w, 2);
  std::vector<std::array<double, 16>> v(static_cast<size_t>(g.channels));
  for (int64_t n = 0; n < g.batch; ++n) {
    for (int64_t th = 0; th < tiles_h; ++th) {
      for (int64_t tw = 0; tw < tiles_w; ++tw) {
        for (int64_t c = 0; c < g.channels; ++c) {
          std::array<double, 16> d{};
          for (int64_t r = 0; r < 4; ++r) {
            for (int64_t q = 0; q < 4; ++q) {
              const int64_t ih = th * 2 - g.p.h + r, iw = tw * 2 - g.p.w + q;
              if (ih >= 0 && ih < g.height && iw >= 0 && iw < g.width) {
                d[r * 4 + q] = x[((n * g.channels + c) * g.height + ih) * g.width + iw];
              }
            }
          }
          v[c] = InputTransform(d);
        }
        for (int64_t f = 0; f < g.filters; ++f) {
          std::array<double, 16> m{};
          for (int64_t c = 0; c < g.channels; ++c) {
            for (int64_t point = 0; point < kPoints; ++point) {
              m[point] += u[(point * g.filters + f) * g.channels + c] * v[c][point];
            }
          }
          const auto y = OutputTransform(m);
          for (int64_t i = 0; i < 2; ++i) {
            for (int64_t j = 0; j < 2; ++j) {
              const int64_t oh = th * 2 + i, ow = tw * 2 + j;
              if (oh < g.out_h && ow < g.out_w) {
                out[0].SetDouble(((n * g.filters + f) * g.out_h + oh) * g.out_w + ow, y[i * 2 + j] + bias[f]);
              }
            }
          }
        }
      }
    }
  }
}

Stmt WinogradConvLower(const Attrs& attrs, LowerContext& ctx) {
  const ConvGeometry g = WinogradConvGeometry(attrs, ctx.input_shapes[0], ctx.input_shapes[1], ctx.output_shapes[0]);
  if (NumElements(ctx.output_shapes[0]) == 0) return kir::Block({});
  const kir::Buffer bias = attrs.Bool("no_bias") ? nullptr : ctx.inputs[2];
  return WinogradKernel(g, ctx, {ctx.inputs[1], false}, NarrowTiles(g), bias);
}

// --- The weight gradient: items are blocks (filters, channels); each works through all
// images in chunks of tiles (whole tile rows of one image, or whole images where an
// image has few tiles): the out_grad transform dY^ = A dy A^T of its filters and the
// input transform V of its channels, then M[point] (+)= dY^[point] V[point]^T; at the
// end dw = G^T M G.
// Every block repeats the transforms of its inputs (V for each block of filters, dY^ for
// each block of channels), so blocks are few and large: at most 4 tasks (ResNet-18's
// weight gradients at batch 32 took 1.03 s with up to 16 blocks of at most 128, 0.95 s
// with 4 of at most 256, 0.89 s with 2, on one thread; 4 keeps four threads busy).
constexpr int64_t kWeightGradChunkTiles = 128;  // the products' depth, where images allow
constexpr int64_t kMaxWeightGradBlock = 256;    // filters or channels of an item
constexpr int64_t kMinWeightGradBlock = 32;
constexpr int64_t kMaxWeightGradTasks = 4;

}  // namespace

Stmt WinogradWeightGrad(const ConvGeometry& g, LowerContext& ctx) {
  const kir::Buffer& gy = ctx.inputs[0];
  const kir::Buffer& x = ctx.inputs[1];
  const kir::Buffer& dw = ctx.outputs[0];
  const int64_t tiles_h = CeilDivInt(g.out_h, 2);
  const int64_t tiles_w = CeilDivInt(g.out_w, 2);
  const int64_t image_tiles = tiles_h * tiles_w;

  // Blocks of filters and channels: at most kMaxWeightGradBlock, halved (the larger
  // first) while the tasks are fewer than the work asks and blocks stay above the least.
  const int64_t macs = g.batch * image_tiles * kPoints * g.filters * g.channels;
  const int64_t want = std::clamp<int64_t>(macs / kMinTaskMacs, 1, kMaxWeightGradTasks);
  int64_t filter_block = std::min(g.filters, kMaxWeightGradBlock);
  int64_t channel_block = std::min(g.channels, kMaxWeightGradBlock);
  const auto items_of = [&] { return CeilDivInt(g.filters, filter_block) * CeilDivInt(g.channels, channel_block); };
  while (items_of() < want && std::max(filter_block, channel_block) >= 2 * kMinWeightGradBlock) {
    if (filter_block >= channel_block) {
      filter_block = CeilDivInt(filter_block, 2);
    } else {
      channel_block = CeilDivInt(channel_block, 2);
    }
  }
  const int64_t filter_blocks = CeilDivInt(g.filters, filter_block);
  const int64_t channel_blocks = CeilDivInt(g.channels, channel_block);
  const int64_t items = filter_blocks * channel_blocks;
  const int64_t tasks = std::min(items, want);

  // Chunks: rows of tiles of one image, or whole images.
  const int64_t chunk_images =
      image_tiles >= kWeightGradChunkTiles ? 1 : std::min(g.batch, CeilDivInt(kWeightGradChunkTiles, image_tiles));
  const int64_t chunk_rows = chunk_images > 1 ? tiles_h : std::min(tiles_h, CeilDivInt(kWeightGradChunkTiles, tiles_w));
  const int64_t row_chunks = CeilDivInt(tiles_h, chunk_rows);
  const int64_t image_chunks = CeilDivInt(g.batch, chunk_images);
  const int64_t chunk_tiles = chunk_images * chunk_rows * tiles_w;  // the products' depth, at most
  const int64_t y_size = kPoints * (filter_block * chunk_tiles + kSkew);
  const int64_t v_size = kPoints * (channel_block * chunk_tiles + kSkew);
  const int64_t m_size = kPoints * (filter_block * channel_block + kSkew);
  const int64_t task_size = y_size + v_size + m_size;
  const kir::Buffer scratch = ctx.Scratch("winograd", ScalarType::kFloat32, tasks * task_size);
  const kir::Buffer patch = ctx.builder->AddLocal("patch", ScalarType::kFloat32, 16);

  return TaskLoop(items, tasks, [&](const Expr& task, const Expr& item) {
    const Expr f0 = item / Int(channel_blocks) * Int(filter_block);
    const Expr c0 = item % Int(channel_blocks) * Int(channel_block);
    const Expr filters = kir::Min(Int(filter_block), Int(g.filters) - f0);
    const Expr channels = kir::Min(Int(channel_block), Int(g.channels) - c0);
    const Expr y_base = task * Int(task_size);
    const Expr v_base = y_base + Int(y_size);
    const Expr m_base = v_base + Int(v_size);
    const Expr y_stride = Int(filter_block * chunk_tiles + kSkew);
    const Expr v_stride = Int(channel_block * chunk_tiles + kSkew);
    const Expr m_stride = Int(filter_block * channel_block + kSkew);

    const Expr chunk = kir::Var("chunk");
    const Expr n0 = chunk / Int(row_chunks) * Int(chunk_images);
    const Expr images =
        g.batch % chunk_images == 0 ? Int(chunk_images) : kir::Min(Int(chunk_images), Int(g.batch) - n0);
    const Expr row0 = chunk % Int(row_chunks) * Int(chunk_rows);
    const Expr rows = kir::Min(Int(chunk_rows), Int(tiles_h) - row0);
    const Expr image_span = rows * Int(tiles_w);  // tiles of one image in the chunk
    const Expr depth = images * image_span;
    const Expr img = kir::Var("img");

    // V of the item's channels: rows (c) chunk_tiles apart, an image's tiles after the last's.
    const Stmt input_transform = Loop(
        img, Int(0), images,
        TransformInputTiles(
            g, x, n0 + img, c0, channels, row0, rows, patch, scratch,
            [&](const Expr& c, const Expr& tile) { return v_base + c * Int(chunk_tiles) + img * image_span + tile; },
            v_stride));

    // dY^ of the item's filters: the 2x2 block of out_grad of each tile, zero past the output.
    const Expr f = kir::Var("f"), th = kir::Var("th"), tw = kir::Var("tw");
    const auto out_grad_tile = [&](bool guarded) {
      std::array<Expr, 4> block;
      for (int i = 0; i < 2; ++i) {
        for (int j = 0; j < 2; ++j) {
          const Expr oh = th * Int(2) + Int(i), ow = tw * Int(2) + Int(j);
          Expr value = kir::Load(gy, (((n0 + img) * Int(g.filters) + f0 + f) * Int(g.out_h) + oh) * Int(g.out_w) + ow);
          if (guarded) {
            value =
                kir::Select(kir::And(kir::Lt(oh, Int(g.out_h)), kir::Lt(ow, Int(g.out_w))), value, kir::FloatImm(0.0));
          }
          block[i * 2 + j] = value;
        }
      }
      const auto transformed = OutGradTransform(block);
      const Expr at = y_base + f * Int(chunk_tiles) + img * image_span + (th - row0) * Int(tiles_w) + tw;
      std::vector<Stmt> stores;
      for (int point = 0; point < kPoints; ++point) {
        stores.push_back(kir::Store(scratch, at + Int(point) * y_stride, transformed[point]));
      }
      return kir::Block(std::move(stores));
    };
    const Stmt out_grad_transform =
        Loop(img, Int(0), images, Loop(f, Int(0), filters, OverOutputTiles(g, th, tw, row0, rows, out_grad_tile)));

    // M[point] (+)= dY^[point] (filters x depth) V[point]^T (depth x channels).
    const Expr point = kir::Var("point");
    const Expr beta = kir::Select(kir::Eq(chunk, Int(0)), kir::FloatImm(0.0), kir::FloatImm(1.0));
    const Stmt products = Loop(point, Int(0), Int(kPoints),
                               SgemmCall(filters, channels, depth, scratch, y_base + point * y_stride, Int(chunk_tiles),
                                         false, scratch, v_base + point * v_stride, Int(chunk_tiles), true, beta,
                                         scratch, m_base + point * m_stride, Int(channel_block)));
    // Rows of V and dY^ are chunk_tiles apart while a chunk fills `depth` of them: the
    // products read only the tiles the transforms wrote.
    const Stmt chunks = Loop(chunk, Int(0), Int(image_chunks * row_chunks),
                             kir::Block({input_transform, out_grad_transform, products}));

    // dw = G^T M G, vectorized along the channels.
    const Expr c = kir::Var("c");
    std::array<Expr, 16> m;
    for (int point = 0; point < kPoints; ++point) {
      m[point] = kir::Load(scratch, m_base + Int(point) * m_stride + f * Int(channel_block) + c);
    }
    const auto taps = FilterGradTransform(m, kir::FloatImm(0.5));
    std::vector<Stmt> stores;
    for (int tap = 0; tap < 9; ++tap) {
      stores.push_back(kir::Store(dw, ((f0 + f) * Int(g.channels) + c0 + c) * Int(9) + Int(tap), taps[tap]));
    }
    const Stmt filter_transform =
        Loop(f, Int(0), filters, Loop(c, Int(0), channels, kir::Block(std::move(stores)), kir::LoopKind::kVectorize));
    return kir::Allocate(patch, kir::Block({chunks, filter_transform}));
  });
}

bool WinogradApplies(const ConvGeometry& g, const LowerContext& ctx) {
  return IsWinogradShape(g) && ctx.ConstantInput(1) != nullptr && ctx.replace_input != nullptr;
}

Stmt WinogradConvolution(const ConvGeometry& g, LowerContext& ctx, const kir::Buffer& bias) {
  const bool narrow = NarrowTiles(g);
  const kir::Buffer u =
      ctx.replace_input(1, ":winograd", TransformConstantFilters(*ctx.ConstantInput(1), g.filters, g.channels, narrow));
  return WinogradKernel(g, ctx, {u, true}, narrow, bias);
}

bool WinogradWeightGradApplies(const ConvGeometry& g) {
  return IsWinogradShape(g) && g.batch > 0;
}

namespace {

bool AllFloat32(const std::vector<DType>& types) {
  return std::all_of(types.begin(), types.end(), [](DType t) { return t == DType::kFloat32; });
}

std::vector<int64_t> PadOf(const Pair& p) {
  return {p.h, p.w};
}

}  // namespace

void AlterConvolutionToWinograd(AlterContext& ctx) {
  const ConvGeometry g = ConvGeometryOf(ctx.attrs, ctx.input_shapes[0], ctx.output_shapes[0]);
  // Constant filters are transformed and packed at compile time by the lowering.
  if (!IsWinogradShape(g) || ctx.constants[1] != nullptr || !AllFloat32(ctx.input_types) ||
      ctx.output_types[0] != DType::kFloat32) {
    return;
  }
  const NodeEntry u = ctx.Apply("_winograd_filters", {ctx.inputs[1]});
  const bool no_bias = ctx.attrs.Bool("no_bias");
  std::vector<NodeEntry> inputs = {ctx.inputs[0], u};
  if (!no_bias) inputs.push_back(ctx.inputs[2]);
  ctx.replacements = {ctx.Apply("_winograd_conv", inputs, {{"pad", PadOf(g.p)}, {"no_bias", no_bias}})};
}

// _backward_Convolution_data (out_grad, data, weight): a Winograd convolution of out_grad
// with the rotated, transposed filters, padded 2 - pad (pads above 2 stay as they are).
void AlterConvDataGradToWinograd(AlterContext& ctx) {
  const ConvGeometry g = ConvGeometryOf(ctx.attrs, ctx.input_shapes[1], ctx.input_shapes[0]);
  if (!IsWinogradShape(g) || g.p.h > 2 || g.p.w > 2 || !AllFloat32(ctx.input_types) ||
      ctx.output_types[0] != DType::kFloat32) {
    return;
  }
  const NodeEntry u = ctx.Apply("_winograd_filters", {ctx.inputs[2]}, {{"flip", true}});
  ctx.replacements = {ctx.Apply("_winograd_conv", {ctx.inputs[0], u},
                                {{"pad", std::vector<int64_t>{2 - g.p.h, 2 - g.p.w}}, {"no_bias", true}})};
}

namespace {

const bool kRegistered = [] {
  OpRegistry::Global()
      .Register("_winograd_filters")
      .Describe(
          "Winograd F(2x2, 3x3)'s filter transform G g G^T of a (filters, channels, 3, 3) weight: (16, filters, "
          "channels); with flip, of the data gradient's filters (rotated, transposed): (16, channels, filters)")
      .Attr("flip", AttrType::kBool, AttrValue{false}, "transform the data gradient's filters")
      .Inputs({"weight"})
      .SetInferShape(InferWinogradFiltersShape)
      .SetInferType(FloatSameType({"weight"}))
      .SetPattern(OpPattern::kOpaque)
      .SetReference(WinogradFiltersReference)
      .SetLower(WinogradFiltersLower);

  OpRegistry::Global()
      .Register("_winograd_conv")
      .Describe("3x3 stride-1 convolution by Winograd F(2x2, 3x3) with filters transformed by _winograd_filters")
      .Attr("pad", AttrType::kInts, std::nullopt, "zero padding (h, w)")
      .Range(0)
      .Attr("no_bias", AttrType::kBool, AttrValue{true}, "no bias input")
      .SetValidate(ValidateWinogradConv)
      .Inputs([](const Attrs& attrs) {
        return attrs.Bool("no_bias") ? std::vector<std::string>{"data", "filters"}
                                     : std::vector<std::string>{"data", "filters", "bias"};
      })
      .SetInferShape(InferWinogradConvShape)
      .SetInferType(InferWinogradConvType)
      .SetPattern(OpPattern::kGemm)
      .SetAcceptsEpilogue()
      .SetReference(WinogradConvReference)
      .SetLower(WinogradConvLower);
  return true;
}();

}  // namespace

}  // namespace kiln::nn
