// Winograd's minimal filtering (Lavin and Gray, 2015) for r x r stride-1 convolutions
// (r = 3, 5): each m x m block of outputs (a tile) comes from an alpha x alpha patch of the
// input (alpha = m + r - 1) through alpha^2 elementwise products in a transformed space:
//   U = G g G^T            per (filter, channel): the filters' transform
//   V = B^T d B            per (channel, tile): the input patch's (zero outside the image)
//   M[point] = U[point] V[point]   alpha^2 matrix products, channels summed
//   y = A^T M A            per (filter, tile)
// F(2x2, 3x3) does 2.25 times fewer multiply-adds than the direct form, F(4x4, 3x3) 4
// times, F(2x2, 5x5) 2.8 times. The matrices come from the interpolation points
// (MakeTile). Rounding: the transforms add a few values of a patch and of its products
// with small coefficients, so results differ from the direct sum by a few float32
// roundings of the inputs' magnitudes for F(2x2, .); F(4x4, 3x3)'s coefficients (up to 8,
// and 1/24 in G) round about ten times more, which training tolerates (inference with
// constant filters keeps F(2x2, 3x3)).
//
// Three uses:
// - Convolution with constant filters (inference): U transformed and packed at compile time.
// - Convolution and its data gradient with run-time filters (training): the alter pass
//   makes them `_winograd_filters` (U, once per step) and `_winograd_conv`. The data
//   gradient of a stride-1 convolution is the convolution of the output gradient with
//   the filters rotated by 180 degrees and transposed (filters <-> channels), padded
//   r - 1 - pad.
// - The weight gradient: y is linear in g, so dL/dg = sum over tiles of
//   G^T [(A dy A^T) . V] G: alpha^2 products dY^[point] V[point]^T over all tiles, then
//   G^T M G.

#include <algorithm>
#include <cmath>
#include <functional>
#include <map>
#include <memory>
#include <optional>

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

// Kernels 3x3 and 5x5; tiles of at most 8x8 (points beyond +-2 and +-1/2 lose too much
// float32 precision).
constexpr int64_t kMinKernel = 3;
constexpr int64_t kMaxKernel = 5;
constexpr int64_t kMaxAlpha = 8;
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
// touch all of them at once, and strides of a multiple of 4 KiB would map them all to one
// set of the L1 cache.
constexpr int64_t kSkew = 16;
// Rows of fewer tiles than this are too short for the vector loops.
constexpr int64_t kMinVectorTiles = 16;

bool IsWinogradShape(const ConvGeometry& g) {
  return g.k.h == g.k.w && (g.k.h == 3 || g.k.h == 5) && g.s.h == 1 && g.s.w == 1 && g.d.h == 1 && g.d.w == 1 &&
         g.groups == 1 && g.group_in >= kMinChannels && g.filters >= kMinChannels;
}

// --- The algorithms F(m x m, r x r), built from their interpolation points.

// A small dense matrix, row-major.
struct Matrix {
  int64_t rows = 0, cols = 0;
  std::vector<double> at;

  double operator()(int64_t i, int64_t j) const { return at[static_cast<size_t>(i * cols + j)]; }
  double& operator()(int64_t i, int64_t j) { return at[static_cast<size_t>(i * cols + j)]; }
  Matrix Transposed() const {
    Matrix t{cols, rows, std::vector<double>(at.size())};
    for (int64_t i = 0; i < rows; ++i) {
      for (int64_t j = 0; j < cols; ++j) t(j, i) = (*this)(i, j);
    }
    return t;
  }
};

// Gauss-Jordan with partial pivoting (matrices of at most 8 x 8, well conditioned).
Matrix Inverse(Matrix a) {
  const int64_t n = a.rows;
  Matrix inv{n, n, std::vector<double>(static_cast<size_t>(n * n), 0.0)};
  for (int64_t i = 0; i < n; ++i) inv(i, i) = 1.0;
  for (int64_t col = 0; col < n; ++col) {
    int64_t pivot = col;
    for (int64_t row = col + 1; row < n; ++row) {
      if (std::abs(a(row, col)) > std::abs(a(pivot, col))) pivot = row;
    }
    for (int64_t j = 0; j < n; ++j) {
      std::swap(a(col, j), a(pivot, j));
      std::swap(inv(col, j), inv(pivot, j));
    }
    const double scale = 1.0 / a(col, col);
    for (int64_t j = 0; j < n; ++j) {
      a(col, j) *= scale;
      inv(col, j) *= scale;
    }
    for (int64_t row = 0; row < n; ++row) {
      const double factor = a(row, col);
      if (row == col || factor == 0.0) continue;
      for (int64_t j = 0; j < n; ++j) {
        a(row, j) -= factor * a(col, j);
        inv(row, j) -= factor * inv(col, j);
      }
    }
  }
  return inv;
}

// F(m x m, r x r) (Lavin and Gray, 2015): a tile of m x m outputs from an alpha x alpha
// patch (alpha = m + r - 1) through alpha^2 elementwise products:
//   y = A^T [(G g G^T) . (B^T d B)] A.
// Toom-Cook on the points 0, 1, -1, 2, -2, 1/2, -1/2 (the first alpha - 1) and infinity:
// with V the alpha x alpha Vandermonde matrix of the points (infinity's row picks the
// leading coefficient), the linear convolution of g and h is V^-1 [(V_r g) . (V_m h)],
// and its transpose, the filtering a convolution layer computes, is
// V_m^T [(V_r g) . (V^-T d)]: A^T = V_m^T, G = V_r, B^T = V^-T. Row p of B^T is scaled by
// the Lagrange denominator prod_{l != p} (a_p - a_l) (G's row divided by it), which makes
// B^T's entries integers for integer points.
struct WinogradTile {
  int64_t m = 0, r = 0, alpha = 0;
  // Every transform maps X to L X L^T (Sandwich) with one of these L:
  Matrix g;   // U = G g G^T: the filters' (alpha x r)
  Matrix bt;  // V = B^T d B: an input patch's (alpha x alpha)
  Matrix at;  // y = A^T M A: a tile's products' (m x alpha)
  Matrix a;   // dY^ = A dy A^T: a tile's output gradient's (alpha x m)
  Matrix gt;  // dw = G^T M G: the weight gradient's (r x alpha)

  int64_t points() const { return alpha * alpha; }
  int64_t taps() const { return r * r; }
};

WinogradTile MakeTile(int64_t m, int64_t r) {
  static constexpr double kPointsOf[] = {0.0, 1.0, -1.0, 2.0, -2.0, 0.5, -0.5};
  WinogradTile tile;
  tile.m = m;
  tile.r = r;
  tile.alpha = m + r - 1;
  const int64_t alpha = tile.alpha;
  const int64_t finite = alpha - 1;
  // Row p of the Vandermonde matrix of `columns` coefficients.
  const auto vandermonde = [&](int64_t columns) {
    Matrix v{alpha, columns, std::vector<double>(static_cast<size_t>(alpha * columns), 0.0)};
    for (int64_t p = 0; p < finite; ++p) {
      for (int64_t j = 0; j < columns; ++j) v(p, j) = std::pow(kPointsOf[p], static_cast<double>(j));
    }
    v(finite, columns - 1) = 1.0;  // infinity: the leading coefficient
    return v;
  };
  tile.at = vandermonde(m).Transposed();
  tile.g = vandermonde(r);
  tile.bt = Inverse(vandermonde(alpha)).Transposed();
  for (int64_t p = 0; p < finite; ++p) {
    double denominator = 1.0;
    for (int64_t l = 0; l < finite; ++l) {
      if (l != p) denominator *= kPointsOf[p] - kPointsOf[l];
    }
    denominator = std::abs(denominator);
    for (int64_t j = 0; j < alpha; ++j) tile.bt(p, j) *= denominator;
    for (int64_t k = 0; k < r; ++k) tile.g(p, k) /= denominator;
  }
  // Snap B^T to the integers and rationals it holds (inversion leaves ~1e-15 of noise).
  for (double& b : tile.bt.at) {
    const double snapped = std::round(b * 8.0) / 8.0;
    if (std::abs(b - snapped) < 1e-9) b = snapped;
  }
  tile.a = tile.at.Transposed();
  tile.gt = tile.g.Transposed();
  // The identity itself: sum_p A^T[i][p] G[p][k] B^T[p][j] = [j == i + k].
  for (int64_t i = 0; i < m; ++i) {
    for (int64_t k = 0; k < r; ++k) {
      for (int64_t j = 0; j < alpha; ++j) {
        double sum = 0.0;
        for (int64_t p = 0; p < alpha; ++p) sum += tile.at(i, p) * tile.g(p, k) * tile.bt(p, j);
        if (std::abs(sum - (j == i + k ? 1.0 : 0.0)) > 1e-9) {
          throw Error("internal: Winograd F(" + std::to_string(m) + ", " + std::to_string(r) + ") does not convolve");
        }
      }
    }
  }
  return tile;
}

// The tiles the operators use, built once.
const WinogradTile& TileOf(int64_t m, int64_t r) {
  static const std::map<std::pair<int64_t, int64_t>, WinogradTile> kTiles = [] {
    std::map<std::pair<int64_t, int64_t>, WinogradTile> tiles;
    for (int64_t r = kMinKernel; r <= kMaxKernel; r += 2) {
      for (int64_t m = 2; m + r - 1 <= kMaxAlpha; m += 2) tiles.emplace(std::pair{m, r}, MakeTile(m, r));
    }
    return tiles;
  }();
  const auto found = kTiles.find({m, r});
  if (found == kTiles.end()) {
    throw Error("Winograd F(" + std::to_string(m) + "x" + std::to_string(m) + ", " + std::to_string(r) + "x" +
                std::to_string(r) + "): kernels " + std::to_string(kMinKernel) + " to " + std::to_string(kMaxKernel) +
                " (odd) with even tiles of at most " + std::to_string(kMaxAlpha) + " - kernel + 1 are supported");
  }
  return found->second;
}

// The arithmetic the transforms are written in: float64 for the references, kernel IR
// for the kernels. `stage` materializes values that are read more than once: the kernels
// store them into a local buffer and load them back, so that each is computed (and each
// input loaded) once. As expression trees they would be recomputed at every use, and
// LLVM cannot merge the repeated loads across the stores to the outputs in between (it
// cannot tell the buffers apart).
template <typename T>
struct Arith {
  std::function<T(double)> constant;
  std::function<std::vector<T>(const std::vector<T>&)> stage;
};

const Arith<double> kReal{[](double value) { return value; }, [](const std::vector<double>& v) { return v; }};

// Kernel IR of `type`; staged values go to `local` (2 alpha^2 elements cover every
// transform) through stores appended to `body`.
Arith<Expr> KernelArith(ScalarType type, const kir::Buffer& local, std::vector<Stmt>& body) {
  auto next = std::make_shared<int64_t>(0);
  return {[type](double value) { return kir::FloatImm(value, type); },
          [local, next, &body](const std::vector<Expr>& values) {
            std::vector<Expr> loads;
            for (const Expr& value : values) {
              body.push_back(kir::Store(local, Int(*next), value));
              loads.push_back(kir::Load(local, Int((*next)++)));
            }
            return loads;
          }};
}

// L X L^T of X (L.cols x L.cols, row-major): left.rows x left.rows, zero coefficients
// skipped and +-1 applied without a product, so that the transforms cost the additions
// they need.
template <typename T>
std::vector<T> Sandwich(const Matrix& left, const std::vector<T>& x_values, const Arith<T>& arith) {
  const int64_t n = left.cols, out = left.rows;
  // Row `row` of `left` times the vector whose j-th entry is term(j).
  const auto combine = [&](int64_t row, const auto& term) {
    std::optional<T> sum;
    for (int64_t j = 0; j < n; ++j) {
      const double c = left(row, j);
      if (c == 0.0) continue;
      const T v = term(j);
      if (!sum) {
        sum = c == 1.0 ? v : c == -1.0 ? -v : v * arith.constant(c);
      } else {
        *sum = c == 1.0 ? *sum + v : c == -1.0 ? *sum - v : *sum + v * arith.constant(c);
      }
    }
    return sum ? *sum : arith.constant(0.0);
  };
  const std::vector<T> x = arith.stage(x_values);
  // X L^T: n x out, then L (X L^T): out x out.
  std::vector<T> xl_values;
  xl_values.reserve(static_cast<size_t>(n * out));
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t k = 0; k < out; ++k) {
      xl_values.push_back(combine(k, [&](int64_t j) { return x[static_cast<size_t>(i * n + j)]; }));
    }
  }
  const std::vector<T> xl = arith.stage(xl_values);
  std::vector<T> result;
  result.reserve(static_cast<size_t>(out * out));
  for (int64_t row = 0; row < out; ++row) {
    for (int64_t k = 0; k < out; ++k) {
      result.push_back(combine(row, [&](int64_t i) { return xl[static_cast<size_t>(i * out + k)]; }));
    }
  }
  return result;
}

// Filter (f, c) of a (filters, channels, r, r) weight, or with `flip` the filter (c, f)
// of its data-gradient form: w[f][c] rotated by 180 degrees.
int64_t FilterTap(int64_t row, int64_t col, int64_t channels, bool flip, int64_t taps, int64_t tap) {
  return flip ? (col * channels + row) * taps + (taps - 1 - tap) : (row * channels + col) * taps + tap;
}

// U of every (row, col) of a weight's filter bank, point-major: (points, rows, cols) in
// float64; rows are filters and cols channels, or with `flip` the data gradient's.
std::vector<double> TransformFilterBank(const WinogradTile& t, const std::vector<double>& w, int64_t rows, int64_t cols,
                                        bool flip) {
  const int64_t points = t.points(), taps = t.taps();
  std::vector<double> u(static_cast<size_t>(points * rows * cols));
  std::vector<double> g(static_cast<size_t>(taps));
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t c = 0; c < cols; ++c) {
      for (int64_t tap = 0; tap < taps; ++tap) g[tap] = w[FilterTap(r, c, flip ? rows : cols, flip, taps, tap)];
      const std::vector<double> transformed = Sandwich(t.g, g, kReal);
      for (int64_t point = 0; point < points; ++point) u[(point * rows + r) * cols + c] = transformed[point];
    }
  }
  return u;
}

// U for every point, each a packed filters x channels matrix (PackFilters), or (narrow)
// its transpose packed as a GEMM's right-hand operand (PackGemmB).
Tensor TransformConstantFilters(const WinogradTile& t, const Tensor& weight, int64_t filters, int64_t channels,
                                bool narrow) {
  const std::vector<double> bank = TransformFilterBank(t, weight.ToDoubles(), filters, channels, false);
  const std::vector<float> u(bank.begin(), bank.end());
  const int64_t packed_size = narrow ? PackedGemmBSize(channels, filters) : PackedFiltersSize(filters, channels);
  Tensor packed({t.points() * packed_size}, DType::kFloat32);
  for (int64_t point = 0; point < t.points(); ++point) {
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
// run-time (points, filters, channels) from _winograd_filters.
struct TransformedFilters {
  kir::Buffer buffer;
  bool packed = false;
};

// The input transform reads each channel's rows through a zero-padded copy (PaddedRows):
// every tile's patch then lies inside it, so all tiles run vectorized along the row and
// unguarded. (Guarded tiles ran one at a time: on 14x14 and 7x7 planes, or with
// LeNet's pad-4 data gradient, most tiles touch the border.)
struct PaddedRows {
  kir::Buffer buffer;
  Expr at;            // the task's copy
  int64_t width = 0;  // of a padded row: every tile's patch, tiles_w m + r - 1
  static int64_t Width(const WinogradTile& t, const ConvGeometry& g) {
    return CeilDivInt(g.out_w, t.m) * t.m + t.r - 1;
  }
  // Elements a copy of `tile_rows` rows of tiles needs.
  static int64_t Size(const WinogradTile& t, const ConvGeometry& g, int64_t tile_rows) {
    return (tile_rows * t.m + t.r - 1) * Width(t, g) + kSkew;
  }
};

// The input transform of the tiles of rows [row0, row0 + rows) of one image, channels
// [0, channels): V[point] of (channel c, tile t) to `to` at at(c, t) + point * point_stride,
// t = (th - row0) tiles_w + tw.
Stmt TransformInputTiles(const WinogradTile& t, const ConvGeometry& g, const kir::Buffer& x, const Expr& image,
                         const Expr& first_channel, const Expr& channels, const Expr& row0, const Expr& rows,
                         const kir::Buffer& stage, const PaddedRows& padded, const kir::Buffer& to,
                         const std::function<Expr(const Expr& c, const Expr& tile)>& at, const Expr& point_stride) {
  const int64_t m = t.m, alpha = t.alpha;
  const int64_t tiles_w = CeilDivInt(g.out_w, m);
  const int64_t width = padded.width;
  const Expr c = kir::Var("c");

  // 1. Channel c's rows [row0 m - pad, (row0 + rows) m - pad + r - 1) of the image, zero
  // outside it, into the copy: pad columns of zeros, the row, zeros to the copy's width.
  const Expr pr = kir::Var("pr");
  const Expr pc = kir::Var("pc");
  const Expr ih = row0 * Int(m) - Int(g.p.h) + pr;
  const Expr row_at = padded.at + pr * Int(width);
  const Expr source = ((image * Int(g.channels) + first_channel + c) * Int(g.height) + ih) * Int(g.width);
  const int64_t right = width - g.p.w - g.width;
  const auto zeros = [&](int64_t begin, int64_t extent) {
    return Loop(pc, Int(begin), Int(extent), kir::Store(padded.buffer, row_at + pc, kir::FloatImm(0.0)),
                kir::LoopKind::kVectorize);
  };
  const Stmt copy_row =
      kir::If(kir::And(kir::Ge(ih, Int(0)), kir::Lt(ih, Int(g.height))),
              kir::Block({zeros(0, g.p.w),
                          Loop(pc, Int(0), Int(g.width),
                               kir::Store(padded.buffer, row_at + Int(g.p.w) + pc, kir::Load(x, source + pc)),
                               kir::LoopKind::kVectorize),
                          zeros(g.p.w + g.width, right)}),
              zeros(0, width));
  const Stmt copy = Loop(pr, Int(0), rows * Int(m) + Int(t.r - 1), copy_row);

  // 2. The tiles, from the copy: vectorized along the row where rows are long, else along
  // the block's tiles (th, tw) taken as one index.
  const bool flat = tiles_w < kMinVectorTiles;
  const Expr tt = kir::Var("tt");
  const Expr th = flat ? row0 + tt / Int(tiles_w) : kir::Var("th");
  const Expr tw = flat ? tt % Int(tiles_w) : kir::Var("tw");
  std::vector<Stmt> body;
  std::vector<Expr> d;
  const Expr corner = padded.at + (th - row0) * Int(m * width) + tw * Int(m);
  for (int64_t r = 0; r < alpha; ++r) {
    for (int64_t q = 0; q < alpha; ++q) d.push_back(kir::Load(padded.buffer, corner + Int(r * width + q)));
  }
  const std::vector<Expr> v = Sandwich(t.bt, d, KernelArith(ScalarType::kFloat32, stage, body));
  const Expr where = at(c, flat ? tt : (th - row0) * Int(tiles_w) + tw);
  for (int64_t point = 0; point < t.points(); ++point) {
    body.push_back(kir::Store(to, where + Int(point) * point_stride, v[point]));
  }
  const Stmt tile = kir::Allocate(stage, kir::Block(std::move(body)));
  const Stmt tiles = flat ? Loop(tt, Int(0), rows * Int(tiles_w), tile, kir::LoopKind::kIndependent)
                          : Loop(th, row0, rows, Loop(tw, Int(0), Int(tiles_w), tile, kir::LoopKind::kIndependent));
  return Loop(c, Int(0), channels, kir::Block({copy, tiles}));
}

// Tile rows [row0, row0 + rows) of an output, tile by tile: `tile(guarded)` for tile
// (th, tw), vectorized along the row where the m x m block lies wholly inside the output
// (all but the last row and column of tiles when the output's size is not a multiple of
// m), guarded elsewhere.
Stmt OverOutputTiles(const WinogradTile& t, const ConvGeometry& g, const Expr& th, const Expr& tw, const Expr& row0,
                     const Expr& rows, const std::function<Stmt(bool guarded)>& tile) {
  const int64_t tiles_w = CeilDivInt(g.out_w, t.m);
  const int64_t full_rows = g.out_h / t.m;
  const int64_t full_cols = g.out_w / t.m;
  return Loop(th, row0, rows,
              kir::If(kir::Lt(th, Int(full_rows)),
                      kir::Block({Loop(tw, Int(0), Int(full_cols), tile(false), kir::LoopKind::kIndependent),
                                  Loop(tw, Int(full_cols), Int(tiles_w - full_cols), tile(true))}),
                      Loop(tw, Int(0), Int(tiles_w), tile(true))));
}

// A Winograd convolution of `g`'s geometry (input 0 the data) with transformed filters.
// A work item is a block of whole tile rows of one image (narrow products on run-time
// filters: of several whole images) and a block of filters:
// the input transform into V, one product per point into M, the output transform with
// the bias and the fused epilogue into the output.
Stmt WinogradKernel(const WinogradTile& t, const ConvGeometry& g, LowerContext& ctx, const TransformedFilters& u,
                    bool narrow, const kir::Buffer& bias) {
  const kir::Buffer& x = ctx.inputs[0];
  const kir::Buffer& out = ctx.outputs[0];
  const int64_t channels = g.channels;
  const int64_t points = t.points();
  const int64_t tiles_h = CeilDivInt(g.out_h, t.m);
  const int64_t tiles_w = CeilDivInt(g.out_w, t.m);
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
  const int64_t macs = g.batch * image_tiles * points * g.filters * channels;
  const int64_t want = std::clamp<int64_t>(macs / kMinTaskMacs, 1, kMaxTasks);
  const int64_t min_rows = std::min(tiles_h, CeilDivInt(kMinTileCols, tiles_w));
  // V and M hold `points` values per tile: larger tiles make smaller blocks.
  const int64_t max_rows = std::max<int64_t>(1, kMaxTileCols * 16 / points / tiles_w);
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
  const int64_t v_size = points * (channels * max_tiles + kSkew);
  const int64_t m_size = points * (filter_block * max_tiles + kSkew);
  const int64_t pad_size = PaddedRows::Size(t, g, block_rows);
  const kir::Buffer scratch = ctx.Scratch("winograd", ScalarType::kFloat32, tasks * (v_size + m_size + pad_size));
  const kir::Buffer stage = ctx.builder->AddLocal("stage", ScalarType::kFloat32, 2 * points);

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
    const Expr v_base = task * Int(v_size + m_size + pad_size);
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
            t, g, x, n0 + img, Int(0), Int(channels), row0, rows, stage,
            {scratch, m_base + Int(m_size), PaddedRows::Width(t, g)}, scratch,
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
    const Stmt products = Loop(point, Int(0), Int(points), product);

    // 3. The output transform, bias and epilogue of one (filter, tile).
    const Expr f = kir::Var("f");
    const Expr th = kir::Var("th");
    const Expr tw = kir::Var("tw");
    const auto output_tile = [&](bool guarded) {
      std::vector<Expr> m;
      const Expr tile = img * image_span + (th - row0) * Int(tiles_w) + tw;
      for (int64_t k = 0; k < points; ++k) {
        const Expr at = narrow ? tile * Int(filter_block) + (f - f0) : (f - f0) * tiles + tile;
        m.push_back(kir::Load(scratch, m_base + Int(k) * m_stride + at));
      }
      std::vector<Stmt> stores;
      const std::vector<Expr> y = Sandwich(t.at, m, KernelArith(ScalarType::kFloat32, stage, stores));
      for (int64_t i = 0; i < t.m; ++i) {
        for (int64_t j = 0; j < t.m; ++j) {
          const Expr oh = th * Int(t.m) + Int(i);
          const Expr ow = tw * Int(t.m) + Int(j);
          const Expr at = (((n0 + img) * Int(g.filters) + f) * Int(g.out_h) + oh) * Int(g.out_w) + ow;
          const Expr value = bias ? y[i * t.m + j] + kir::Load(bias, f) : y[i * t.m + j];
          Stmt store = kir::Store(out, at, ctx.Epilogue(value, at, oh * Int(g.out_w) + ow, g.out_h * g.out_w));
          if (guarded) store = kir::If(kir::And(kir::Lt(oh, Int(g.out_h)), kir::Lt(ow, Int(g.out_w))), store);
          stores.push_back(std::move(store));
        }
      }
      return kir::Allocate(stage, kir::Block(std::move(stores)));
    };
    // Narrow M^T holds a tile's filters side by side: vectorized along the filters, the
    // tile's m x m outputs guarded where it crosses the output's edge.
    const int64_t full_rows = g.out_h / t.m, full_cols = g.out_w / t.m;
    const Stmt output_transform =
        narrow ? Loop(img, Int(0), images,
                      Loop(th, row0, rows,
                           Loop(tw, Int(0), Int(tiles_w),
                                kir::If(kir::And(kir::Lt(th, Int(full_rows)), kir::Lt(tw, Int(full_cols))),
                                        Loop(f, f0, block_filters, output_tile(false), kir::LoopKind::kIndependent),
                                        Loop(f, f0, block_filters, output_tile(true))))))
               : Loop(img, Int(0), images,
                      Loop(f, f0, block_filters, OverOutputTiles(t, g, th, tw, row0, rows, output_tile)));
    return kir::Block({input_transform, products, output_transform});
  });
}

// Images of few tiles (7x7 outputs: 16) make the products narrow, which the
// micro-kernels' rows handle far better than their columns: the products are then
// computed transposed, M^T = V^T U^T, tiles as rows (the "narrow" form).
bool NarrowTiles(const WinogradTile& t, const ConvGeometry& g) {
  return CeilDivInt(g.out_h, t.m) * CeilDivInt(g.out_w, t.m) < kMinTiles;
}

// --- _winograd_filters (weight; tile, flip): U of every (filter, channel) of a
// (filters, channels, r, r) weight for F(tile x tile, r x r): (alpha^2, filters,
// channels); with flip, of the data gradient's filters: (alpha^2, channels, filters).

void InferWinogradFiltersShape(const Attrs& attrs, std::vector<ShapeSlot>& in, std::vector<ShapeSlot>& out) {
  if (!in[0]) return;
  const Shape& w = *in[0];
  if (w.size() != 4 || w[2] != w[3]) op_util::ShapeError("input 'weight'", "(filters, channels, r, r)", w);
  const WinogradTile& t = TileOf(attrs.Int("tile"), w[2]);
  const bool flip = attrs.Bool("flip");
  op_util::AssignShape(out[0], {t.points(), flip ? w[1] : w[0], flip ? w[0] : w[1]}, "output");
}

void WinogradFiltersReference(const Attrs& attrs, std::span<const Tensor> in, std::span<Tensor> out,
                              const RefContext&) {
  const Shape& u = out[0].shape();
  const WinogradTile& t = TileOf(attrs.Int("tile"), in[0].shape()[2]);
  const std::vector<double> bank = TransformFilterBank(t, in[0].ToDoubles(), u[1], u[2], attrs.Bool("flip"));
  for (size_t i = 0; i < bank.size(); ++i) out[0].SetDouble(static_cast<int64_t>(i), bank[i]);
}

Stmt WinogradFiltersLower(const Attrs& attrs, LowerContext& ctx) {
  const kir::Buffer& w = ctx.inputs[0];
  const kir::Buffer& u = ctx.outputs[0];
  const WinogradTile& t = TileOf(attrs.Int("tile"), ctx.input_shapes[0][2]);
  const int64_t rows = ctx.output_shapes[0][1], cols = ctx.output_shapes[0][2];
  const int64_t taps = t.taps();
  const bool flip = attrs.Bool("flip");
  const ScalarType type = ToScalarType(ctx.output_types[0]);
  const Expr r = kir::Var("r");
  const Expr c = kir::Var("c");
  std::vector<Expr> g;
  const int64_t channels = flip ? rows : cols;
  for (int64_t tap = 0; tap < taps; ++tap) {
    // FilterTap's index with run-time row and column.
    const Expr at = flip ? (c * Int(channels) + r) * Int(taps) + Int(taps - 1 - tap)
                         : (r * Int(channels) + c) * Int(taps) + Int(tap);
    g.push_back(kir::Cast(type, kir::Load(w, at)));
  }
  const kir::Buffer stage = ctx.builder->AddLocal("stage", type, 2 * t.points());
  std::vector<Stmt> stores;
  const std::vector<Expr> transformed = Sandwich(t.g, g, KernelArith(type, stage, stores));
  for (int64_t point = 0; point < t.points(); ++point) {
    stores.push_back(kir::Store(u, (Int(point * rows) + r) * Int(cols) + c, transformed[point]));
  }
  return Loop(
      r, Int(0), Int(rows),
      Loop(c, Int(0), Int(cols), kir::Allocate(stage, kir::Block(std::move(stores))), kir::LoopKind::kIndependent),
      kir::LoopKind::kParallel);
}

// --- _winograd_conv (data, filters[, bias]; tile, pad, no_bias): the convolution with U
// from _winograd_filters (alpha^2 points: r = alpha - tile + 1), stride 1, output
// (N, filters, H + 2 pad - r + 1, W + 2 pad - r + 1).

// The tile of a _winograd_conv from its attributes and its filters' shape.
const WinogradTile& ConvTileOf(const Attrs& attrs, const Shape& u) {
  const int64_t m = attrs.Int("tile");
  int64_t alpha = 1;
  while (alpha * alpha < u[0]) ++alpha;
  if (u.size() != 3 || alpha * alpha != u[0] || alpha <= m) {
    op_util::ShapeError("input 'filters'",
                        "(alpha^2, filters, channels) with alpha > tile = " + std::to_string(m) + " points per axis",
                        u);
  }
  return TileOf(m, alpha - m + 1);
}

ConvGeometry WinogradConvGeometry(const Attrs& attrs, const Shape& x, const Shape& u, const Shape& y) {
  const int64_t r = ConvTileOf(attrs, u).r;
  const Pair p = SpatialPair(attrs, "pad", 0);
  return {x[0], x[1], x[2], x[3], u[1], y[2], y[3], 1, x[1], u[1], {r, r}, {1, 1}, {1, 1}, p};
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
  const int64_t r = ConvTileOf(attrs, u).r;
  if (!attrs.Bool("no_bias")) op_util::AssignShape(in[2], {u[1]}, "input 'bias'");
  if (!in[0]) return;
  const Shape& x = *in[0];
  if (x.size() != 4) op_util::ShapeError("input 'data'", "4-d (N,C,H,W)", x);
  if (x[1] != u[2]) {
    throw Error("input 'data': " + std::to_string(x[1]) + " channels (shape " + ShapeToString(x) + "), the filters " +
                ShapeToString(u) + " expect " + std::to_string(u[2]));
  }
  const Pair p = SpatialPair(attrs, "pad", 0);
  const int64_t out_h = x[2] + 2 * p.h - r + 1, out_w = x[3] + 2 * p.w - r + 1;
  if (out_h < 1 || out_w < 1) {
    throw Error("input 'data' " + ShapeToString(x) + " padded by " + FormatAttrValue(attrs.Ints("pad")) +
                " is smaller than the " + std::to_string(r) + "x" + std::to_string(r) + " kernel");
  }
  op_util::AssignShape(out[0], {x[0], u[1], out_h, out_w}, "output");
}

// The algorithm itself in float64: V, the products summed over channels, A^T M A.
void WinogradConvReference(const Attrs& attrs, std::span<const Tensor> in, std::span<Tensor> out, const RefContext&) {
  const WinogradTile& t = ConvTileOf(attrs, in[1].shape());
  const ConvGeometry g = WinogradConvGeometry(attrs, in[0].shape(), in[1].shape(), out[0].shape());
  const std::vector<double> x = in[0].ToDoubles();
  const std::vector<double> u = in[1].ToDoubles();
  const std::vector<double> bias = attrs.Bool("no_bias") ? std::vector<double>(g.filters, 0.0) : in[2].ToDoubles();
  const int64_t m = t.m, alpha = t.alpha, points = t.points();
  const int64_t tiles_h = CeilDivInt(g.out_h, m), tiles_w = CeilDivInt(g.out_w, m);
  std::vector<std::vector<double>> v(static_cast<size_t>(g.channels));
  for (int64_t n = 0; n < g.batch; ++n) {
    for (int64_t th = 0; th < tiles_h; ++th) {
      for (int64_t tw = 0; tw < tiles_w; ++tw) {
        for (int64_t c = 0; c < g.channels; ++c) {
          std::vector<double> d(static_cast<size_t>(points), 0.0);
          for (int64_t r = 0; r < alpha; ++r) {
            for (int64_t q = 0; q < alpha; ++q) {
              const int64_t ih = th * m - g.p.h + r, iw = tw * m - g.p.w + q;
              if (ih >= 0 && ih < g.height && iw >= 0 && iw < g.width) {
                d[r * alpha + q] = x[((n * g.channels + c) * g.height + ih) * g.width + iw];
              }
            }
          }
          v[c] = Sandwich(t.bt, d, kReal);
        }
        for (int64_t f = 0; f < g.filters; ++f) {
          std::vector<double> products(static_cast<size_t>(points), 0.0);
          for (int64_t c = 0; c < g.channels; ++c) {
            for (int64_t point = 0; point < points; ++point) {
              products[point] += u[(point * g.filters + f) * g.channels + c] * v[c][point];
            }
          }
          const std::vector<double> y = Sandwich(t.at, products, kReal);
          for (int64_t i = 0; i < m; ++i) {
            for (int64_t j = 0; j < m; ++j) {
              const int64_t oh = th * m + i, ow = tw * m + j;
              if (oh < g.out_h && ow < g.out_w) {
                out[0].SetDouble(((n * g.filters + f) * g.out_h + oh) * g.out_w + ow, y[i * m + j] + bias[f]);
              }
            }
          }
        }
      }
    }
  }
}

Stmt WinogradConvLower(const Attrs& attrs, LowerContext& ctx) {
  const WinogradTile& t = ConvTileOf(attrs, ctx.input_shapes[1]);
  const ConvGeometry g = WinogradConvGeometry(attrs, ctx.input_shapes[0], ctx.input_shapes[1], ctx.output_shapes[0]);
  if (NumElements(ctx.output_shapes[0]) == 0) return kir::Block({});
  const kir::Buffer bias = attrs.Bool("no_bias") ? nullptr : ctx.inputs[2];
  return WinogradKernel(t, g, ctx, {ctx.inputs[1], false}, NarrowTiles(t, g), bias);
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

// The tile of a convolution with run-time filters. F(4x4, 3x3) does 44% fewer
// multiply-adds in its products than F(2x2, 3x3), which bound the layer once the
// transforms are vectorized; but its rows of tiles are half as long, and rows shorter
// than kMinVectorTiles make the input transform gather. So F(4x4, 3x3) where the output
// is at most kMaxLargeTileOutput wide (ResNet-18 at batch 32, one thread: the 28x28,
// 14x14 and 7x7 layers' forward 25 / 26 / 31 ms -> 21 / 23 / 21), F(2x2, 3x3) on larger
// planes (56x56: 26 ms either way, its weight gradient 33 -> 35), F(2x2, 5x5) for 5x5.
constexpr int64_t kMaxLargeTileOutput = 28;

const WinogradTile& RuntimeTileOf(const ConvGeometry& g) {
  const bool large = g.k.h == 3 && g.out_w <= kMaxLargeTileOutput;
  return TileOf(large ? 4 : 2, g.k.h);
}

}  // namespace

Stmt WinogradWeightGrad(const ConvGeometry& g, LowerContext& ctx) {
  const WinogradTile& t = RuntimeTileOf(g);
  const kir::Buffer& gy = ctx.inputs[0];
  const kir::Buffer& x = ctx.inputs[1];
  const kir::Buffer& dw = ctx.outputs[0];
  const int64_t points = t.points();
  const int64_t tiles_h = CeilDivInt(g.out_h, t.m);
  const int64_t tiles_w = CeilDivInt(g.out_w, t.m);
  const int64_t image_tiles = tiles_h * tiles_w;

  // Blocks of filters and channels: at most kMaxWeightGradBlock, halved (the larger
  // first) while the tasks are fewer than the work asks and blocks stay above the least.
  const int64_t macs = g.batch * image_tiles * points * g.filters * g.channels;
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
  const int64_t y_size = points * (filter_block * chunk_tiles + kSkew);
  const int64_t v_size = points * (channel_block * chunk_tiles + kSkew);
  const int64_t m_size = points * (filter_block * channel_block + kSkew);
  const int64_t pad_size = PaddedRows::Size(t, g, chunk_rows);
  const int64_t task_size = y_size + v_size + m_size + pad_size;
  const kir::Buffer scratch = ctx.Scratch("winograd", ScalarType::kFloat32, tasks * task_size);
  const kir::Buffer stage = ctx.builder->AddLocal("stage", ScalarType::kFloat32, 2 * points);

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
            t, g, x, n0 + img, c0, channels, row0, rows, stage,
            {scratch, m_base + Int(m_size), PaddedRows::Width(t, g)}, scratch,
            [&](const Expr& c, const Expr& tile) { return v_base + c * Int(chunk_tiles) + img * image_span + tile; },
            v_stride));

    // dY^ of the item's filters: the m x m block of out_grad of each tile, zero past the
    // output.
    const Expr f = kir::Var("f"), th = kir::Var("th"), tw = kir::Var("tw");
    const auto out_grad_tile = [&](bool guarded) {
      std::vector<Expr> block;
      for (int64_t i = 0; i < t.m; ++i) {
        for (int64_t j = 0; j < t.m; ++j) {
          const Expr oh = th * Int(t.m) + Int(i), ow = tw * Int(t.m) + Int(j);
          Expr value = kir::Load(gy, (((n0 + img) * Int(g.filters) + f0 + f) * Int(g.out_h) + oh) * Int(g.out_w) + ow);
          if (guarded) {
            value =
                kir::Select(kir::And(kir::Lt(oh, Int(g.out_h)), kir::Lt(ow, Int(g.out_w))), value, kir::FloatImm(0.0));
          }
          block.push_back(value);
        }
      }
      std::vector<Stmt> stores;
      const std::vector<Expr> transformed = Sandwich(t.a, block, KernelArith(ScalarType::kFloat32, stage, stores));
      const Expr at = y_base + f * Int(chunk_tiles) + img * image_span + (th - row0) * Int(tiles_w) + tw;
      for (int64_t point = 0; point < points; ++point) {
        stores.push_back(kir::Store(scratch, at + Int(point) * y_stride, transformed[point]));
      }
      return kir::Allocate(stage, kir::Block(std::move(stores)));
    };
    const Stmt out_grad_transform =
        Loop(img, Int(0), images, Loop(f, Int(0), filters, OverOutputTiles(t, g, th, tw, row0, rows, out_grad_tile)));

    // M[point] (+)= dY^[point] (filters x depth) V[point]^T (depth x channels).
    const Expr point = kir::Var("point");
    const Expr beta = kir::Select(kir::Eq(chunk, Int(0)), kir::FloatImm(0.0), kir::FloatImm(1.0));
    const Stmt products = Loop(point, Int(0), Int(points),
                               SgemmCall(filters, channels, depth, scratch, y_base + point * y_stride, Int(chunk_tiles),
                                         false, scratch, v_base + point * v_stride, Int(chunk_tiles), true, beta,
                                         scratch, m_base + point * m_stride, Int(channel_block)));
    // Rows of V and dY^ are chunk_tiles apart while a chunk fills `depth` of them: the
    // products read only the tiles the transforms wrote.
    const Stmt chunks = Loop(chunk, Int(0), Int(image_chunks * row_chunks),
                             kir::Block({input_transform, out_grad_transform, products}));

    // dw = G^T M G, vectorized along the channels.
    const Expr c = kir::Var("c");
    std::vector<Expr> m;
    for (int64_t point = 0; point < points; ++point) {
      m.push_back(kir::Load(scratch, m_base + Int(point) * m_stride + f * Int(channel_block) + c));
    }
    std::vector<Stmt> stores;
    const std::vector<Expr> taps = Sandwich(t.gt, m, KernelArith(ScalarType::kFloat32, stage, stores));
    for (int64_t tap = 0; tap < t.taps(); ++tap) {
      stores.push_back(kir::Store(dw, ((f0 + f) * Int(g.channels) + c0 + c) * Int(t.taps()) + Int(tap), taps[tap]));
    }
    const Stmt filter_transform = Loop(
        f, Int(0), filters,
        Loop(c, Int(0), channels, kir::Allocate(stage, kir::Block(std::move(stores))), kir::LoopKind::kIndependent));
    return kir::Block({chunks, filter_transform});
  });
}

// Constant filters: F(2x2, 3x3) only (inference's accuracy is checked at 1e-4 against
// the frameworks; larger tiles round more).
bool WinogradApplies(const ConvGeometry& g, const LowerContext& ctx) {
  return IsWinogradShape(g) && g.k.h == 3 && ctx.ConstantInput(1) != nullptr && ctx.replace_input != nullptr;
}

Stmt WinogradConvolution(const ConvGeometry& g, LowerContext& ctx, const kir::Buffer& bias) {
  const WinogradTile& t = TileOf(2, g.k.h);
  const bool narrow = NarrowTiles(t, g);
  const kir::Buffer u = ctx.replace_input(
      1, ":winograd", TransformConstantFilters(t, *ctx.ConstantInput(1), g.filters, g.channels, narrow));
  return WinogradKernel(t, g, ctx, {u, true}, narrow, bias);
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
  // Winograd's transforms are a CPU schedule: on CUDA the products go to cuBLAS.
  if (ctx.target != LowerTarget::kCpu) return;
  const ConvGeometry g = ConvGeometryOf(ctx.attrs, ctx.input_shapes[0], ctx.output_shapes[0]);
  // Constant filters are transformed and packed at compile time by the lowering.
  if (!IsWinogradShape(g) || ctx.constants[1] != nullptr || !AllFloat32(ctx.input_types) ||
      ctx.output_types[0] != DType::kFloat32) {
    return;
  }
  const int64_t tile = RuntimeTileOf(g).m;
  const NodeEntry u = ctx.Apply("_winograd_filters", {ctx.inputs[1]}, {{"tile", tile}});
  const bool no_bias = ctx.attrs.Bool("no_bias");
  std::vector<NodeEntry> inputs = {ctx.inputs[0], u};
  if (!no_bias) inputs.push_back(ctx.inputs[2]);
  ctx.replacements = {ctx.Apply("_winograd_conv", inputs, {{"tile", tile}, {"pad", PadOf(g.p)}, {"no_bias", no_bias}})};
}

// _backward_Convolution_data (out_grad, data, weight): a Winograd convolution of out_grad
// with the rotated, transposed filters, padded r - 1 - pad (where that is at most 2).
void AlterConvDataGradToWinograd(AlterContext& ctx) {
  if (ctx.target != LowerTarget::kCpu) return;
  const ConvGeometry g = ConvGeometryOf(ctx.attrs, ctx.input_shapes[1], ctx.input_shapes[0]);
  // Gradient pads above 2 make the transforms mostly of zeros: LeNet's 5x5 layer (10x10
  // out_grad, pad 4, a 14x14 gradient) took 11 ms this way against 4.4 ms direct.
  if (!IsWinogradShape(g) || g.p.h > g.k.h - 1 || g.p.w > g.k.w - 1 || g.k.h - 1 - g.p.h > 2 || g.k.w - 1 - g.p.w > 2 ||
      !AllFloat32(ctx.input_types) || ctx.output_types[0] != DType::kFloat32) {
    return;
  }
  // The data gradient's output is the forward's input: its tile follows the same planes.
  const ConvGeometry gradient = {
      g.batch, g.filters, g.out_h,    g.out_w, g.channels, g.height, g.width,
      1,       g.filters, g.channels, g.k,     g.s,        g.d,      {g.k.h - 1 - g.p.h, g.k.w - 1 - g.p.w}};
  const int64_t tile = RuntimeTileOf(gradient).m;
  const NodeEntry u = ctx.Apply("_winograd_filters", {ctx.inputs[2]}, {{"tile", tile}, {"flip", true}});
  ctx.replacements = {
      ctx.Apply("_winograd_conv", {ctx.inputs[0], u},
                {{"tile", tile}, {"pad", std::vector<int64_t>{gradient.p.h, gradient.p.w}}, {"no_bias", true}})};
}

namespace {

const bool kRegistered = [] {
  OpRegistry::Global()
      .Register("_winograd_filters")
      .Describe(
          "Winograd F(m x m, r x r)'s filter transform G g G^T of a (filters, channels, r, r) weight, m = tile, "
          "alpha = m + r - 1: (alpha^2, filters, channels); with flip, of the data gradient's filters (rotated, "
          "transposed): (alpha^2, channels, filters)")
      .Attr("tile", AttrType::kInt, AttrValue{int64_t{2}}, "outputs per tile along each axis (m)")
      .Range(2)
      .Attr("flip", AttrType::kBool, AttrValue{false}, "transform the data gradient's filters")
      .Inputs({"weight"})
      .SetInferShape(InferWinogradFiltersShape)
      .SetInferType(FloatSameType({"weight"}))
      .SetPattern(OpPattern::kOpaque)
      .SetReference(WinogradFiltersReference)
      .SetLower(WinogradFiltersLower);

  OpRegistry::Global()
      .Register("_winograd_conv")
      .Describe(
          "r x r stride-1 convolution by Winograd F(m x m, r x r) with filters transformed by _winograd_filters "
          "(alpha^2 points, alpha = m + r - 1)")
      .Attr("tile", AttrType::kInt, AttrValue{int64_t{2}}, "outputs per tile along each axis (m)")
      .Range(2)
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
