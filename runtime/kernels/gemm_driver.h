// Internal to runtime/kernels: the blocked GEMM driver shared by every kernel set
// (gemm_avx512.cc, gemm_avx2.cc, gemm_portable.cc), in the style of BLIS/GotoBLAS.
//
//   for each block of MC rows of C
//     for each block of KC of the inner dimension
//       pack A's MC x KC block into panels of MR rows          (L2/L3)
//       for each block of NC columns of C
//         pack B's KC x NC block into panels of NR columns     (L2; skipped when C
//                                                              has few rows or B is small)
//         for each MR-row panel of A                           (stays in L1)
//           for each NR-column panel of B: micro-kernel on an MR x NR tile of C
//
// A micro-kernel keeps its tile of C in registers for the whole KC loop: every step
// loads NR/vector-width vectors of B and broadcasts MR values of A. Tiles on the lower
// and right edges get kernels instantiated for fewer rows and fewer vectors, and masked
// stores, so edges cost about what they compute.
#pragma once

#include <xmmintrin.h>

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <utility>
#include <vector>

#include "runtime/kernels/gemm.h"

namespace kiln::gemm_internal {

struct GemmArgs {
  int64_t m = 0, n = 0, k = 0;
  float alpha = 1;
  const float* a = nullptr;
  int64_t lda = 0;
  bool transpose_a = false;
  const float* b = nullptr;
  int64_t ldb = 0;
  bool transpose_b = false;
  bool b_packed = false;  // b packed by PackGemmB (ldb and transpose_b unused)
  float beta = 0;
  float* c = nullptr;
  int64_t ldc = 0;
};

// One micro-kernel call: C[rows, cols] = alpha * A_panel B_panel + beta * C, where the
// kernel's row count is its template argument.
struct Tile {
  int64_t k = 0;
  const float* a = nullptr;  // packed A panel: element (i, p) at a[p * rs_a + i]
  int64_t rs_a = 0;          // MR; kPackedRows for filters packed by PackFilters
  const float* b = nullptr;  // B panel: element (p, j) at b[p * rs_b + j]
  int64_t rs_b = 0;          // NR when packed; ldb when B is read in place
  float* c = nullptr;
  int64_t ldc = 0;
  float alpha = 1;
  float beta = 0;  // 0: C is written without being read
  int64_t cols = 0;
};

using MicroKernel = void (*)(const Tile&);

// Per-thread packing buffers, 64-byte aligned, grown on demand and kept (gemm.cc).
float* ScratchA(size_t floats);
float* ScratchB(size_t floats);

inline int64_t CeilDiv(int64_t a, int64_t b) {
  return (a + b - 1) / b;
}
inline int64_t RoundUp(int64_t a, int64_t b) {
  return CeilDiv(a, b) * b;
}
// Splits `extent` into equal blocks of at most `block`, each a multiple of `align`: 385
// with block 384 gives two blocks of 193 rather than 384 and 1.
inline int64_t BalancedBlock(int64_t extent, int64_t block, int64_t align) {
  return std::min(RoundUp(CeilDiv(extent, CeilDiv(extent, block)), align), RoundUp(extent, align));
}

// Copies a 4 x 4 block with rows `src_stride` apart, transposed, to rows `dst_stride`
// apart: dst[q * dst_stride + r] = src[r * src_stride + q]. SSE2, which every x86-64
// CPU has. Both non-unit-stride packings go through it (a scalar loop that writes with a
// stride runs at about 2 cycles per element, the packing then costing as much as the
// product for a few dozen rows).
inline void Transpose4x4(const float* src, int64_t src_stride, float* dst, int64_t dst_stride) {
  __m128 r0 = _mm_loadu_ps(src);
  __m128 r1 = _mm_loadu_ps(src + src_stride);
  __m128 r2 = _mm_loadu_ps(src + 2 * src_stride);
  __m128 r3 = _mm_loadu_ps(src + 3 * src_stride);
  _MM_TRANSPOSE4_PS(r0, r1, r2, r3);
  _mm_storeu_ps(dst, r0);
  _mm_storeu_ps(dst + dst_stride, r1);
  _mm_storeu_ps(dst + 2 * dst_stride, r2);
  _mm_storeu_ps(dst + 3 * dst_stride, r3);
}

// dst[q * dst_stride + r] = src[r * src_stride + q] for r < rows, q < cols: 4 x 4
// blocks, then the ragged edges one element at a time.
inline void TransposeCopy(const float* src, int64_t src_stride, int64_t rows, int64_t cols, float* dst,
                          int64_t dst_stride) {
  const int64_t rows4 = rows / 4 * 4;
  const int64_t cols4 = cols / 4 * 4;
  for (int64_t q = 0; q < cols4; q += 4) {
    for (int64_t r = 0; r < rows4; r += 4) {
      Transpose4x4(src + r * src_stride + q, src_stride, dst + q * dst_stride + r, dst_stride);
    }
    for (int64_t r = rows4; r < rows; ++r) {
      for (int64_t qq = q; qq < q + 4; ++qq) dst[qq * dst_stride + r] = src[r * src_stride + qq];
    }
  }
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t q = cols4; q < cols; ++q) dst[q * dst_stride + r] = src[r * src_stride + q];
  }
}

// Zeros kN floats with vector stores (a plain loop becomes `rep stos`, whose start-up
// costs more than the row).
template <int kN>
void ZeroRow(float* row) {
  static_assert(kN % 4 == 0);
  for (int j = 0; j < kN; j += 4) _mm_storeu_ps(row + j, _mm_setzero_ps());
}

// op(A)[i0 + i, p0 + p] for i < rows, p < kb into MR-row panels: panel r holds rows
// [r MR, r MR + MR) as dst[r MR kb + p MR + i]. Rows past `rows` are left alone (the
// edge kernels never read them).
template <int kMr>
void PackA(const GemmArgs& g, int64_t i0, int64_t rows, int64_t p0, int64_t kb, float* dst) {
  for (int64_t r = 0; r < rows; r += kMr) {
    const int64_t height = std::min<int64_t>(kMr, rows - r);
    float* panel = dst + r * kb;
    if (g.transpose_a) {
      // op(A) row i is A column i: each p reads `height` contiguous values. (Loops of
      // constant length for whole panels: the compiler turns them into a few vector
      // moves, where std::copy would call memmove for every few bytes.)
      const float* src = g.a + p0 * g.lda + i0 + r;
      if (height == kMr) {
        for (int64_t p = 0; p < kb; ++p) {
          for (int i = 0; i < kMr; ++i) panel[p * kMr + i] = src[p * g.lda + i];
        }
      } else {
        for (int64_t p = 0; p < kb; ++p) {
          for (int64_t i = 0; i < height; ++i) panel[p * kMr + i] = src[p * g.lda + i];
        }
      }
    } else {
      TransposeCopy(g.a + (i0 + r) * g.lda + p0, g.lda, height, kb, panel, kMr);
    }
  }
}

// op(B)[p0 + p, j0 + j] for p < kb, j < cols into NR-column panels: panel s holds
// columns [s NR, s NR + NR) as dst[s NR kb + p NR + j]; columns past `cols` are zeros.
template <int kNr>
void PackB(const GemmArgs& g, int64_t p0, int64_t kb, int64_t j0, int64_t cols, float* dst) {
  for (int64_t s = 0; s < cols; s += kNr) {
    const int64_t width = std::min<int64_t>(kNr, cols - s);
    float* panel = dst + s * kb;
    if (g.transpose_b) {
      // op(B) column j is B row j.
      if (width < kNr) {
        for (int64_t p = 0; p < kb; ++p) ZeroRow<kNr>(panel + p * kNr);
      }
      TransposeCopy(g.b + (j0 + s) * g.ldb + p0, g.ldb, width, kb, panel, kNr);
    } else {
      const float* src = g.b + p0 * g.ldb + j0 + s;
      if (width == kNr) {
        for (int64_t p = 0; p < kb; ++p) {
          for (int j = 0; j < kNr; ++j) panel[p * kNr + j] = src[p * g.ldb + j];
        }
      } else {
        for (int64_t p = 0; p < kb; ++p) {
          ZeroRow<kNr>(panel + p * kNr);
          for (int64_t j = 0; j < width; ++j) panel[p * kNr + j] = src[p * g.ldb + j];
        }
      }
    }
  }
}

// Micro<kRows, v> for v = 1 .. vectors, then those rows for every row count: the table
// kMicro[rows - 1][vectors - 1] of every edge shape of a kernel set.
template <class Set, int kRows, size_t... kVec>
constexpr auto MicroRow(std::index_sequence<kVec...>) {
  return std::array<MicroKernel, sizeof...(kVec)>{&Set::template Micro<kRows, int(kVec) + 1>...};
}
template <class Set, int kNv, size_t... kRow>
constexpr auto MicroTable(std::index_sequence<kRow...>) {
  return std::array{MicroRow<Set, int(kRow) + 1>(std::make_index_sequence<kNv>())...};
}

// A B of at most this many floats (64 KiB) stays in cache whatever its layout.
constexpr int64_t kInPlaceBMaxFloats = 16384;

// Set provides kMr, kNr, kVec (floats per vector), the blocking kKc, kNc, kMc,
// kInPlaceBMaxRows (C rows up to which B is read without packing) and
// Micro<rows, vectors>(const Tile&).
// C = A B^T when A has few rows (a FullyConnected layer at batch 1 to 4): every element
// is the dot product of two contiguous rows, so B is read once, in place. Packing B^T,
// as the blocked path does, would cost more than the product itself. Four rows of B at
// a time stay in L1 while every row of A passes over them.
inline constexpr int64_t kRowDotMaxRows = 4;

template <class Set>
void RunRowDots(const GemmArgs& g) {
  for (int64_t j = 0; j < g.n; j += 4) {
    const int rows = static_cast<int>(std::min<int64_t>(4, g.n - j));
    const float* b = g.b + j * g.ldb;
    for (int64_t i = 0; i < g.m; ++i) {
      float dots[4];
      Set::Dots(g.a + i * g.lda, b, g.ldb, rows, g.k, dots);
      float* c = g.c + i * g.ldc + j;
      for (int q = 0; q < rows; ++q) c[q] = g.alpha * dots[q] + (g.beta != 0.0f ? g.beta * c[q] : 0.0f);
    }
  }
}

template <class Set>
void RunGemm(const GemmArgs& g) {
  static_assert(kPackedCols % Set::kNr == 0, "packed B panels must hold whole micro-kernel panels");
  if (g.transpose_b && !g.b_packed && !g.transpose_a && g.m <= kRowDotMaxRows) return RunRowDots<Set>(g);
  constexpr int kMr = Set::kMr;
  constexpr int kNr = Set::kNr;
  constexpr int kNv = Set::kNr / Set::kVec;
  static constexpr auto kMicro = MicroTable<Set, kNv>(std::make_index_sequence<kMr>());

  const int64_t mc = BalancedBlock(g.m, Set::kMc, kMr);
  const int64_t kc = BalancedBlock(g.k, Set::kKc, 1);
  const int64_t nc = BalancedBlock(g.n, Set::kNc, kNr);
  // B (not transposed) is read in place where packing would cost more than the reuse
  // it buys: when C has few rows, or when B is small.
  const bool b_in_place =
      !g.b_packed && !g.transpose_b && (g.m <= Set::kInPlaceBMaxRows || g.n * g.k <= kInPlaceBMaxFloats);
  float* const a_pack = ScratchA(static_cast<size_t>(mc * kc));
  float* const b_pack = g.b_packed ? nullptr : ScratchB(static_cast<size_t>((b_in_place ? kNr : nc) * kc));

  for (int64_t i0 = 0; i0 < g.m; i0 += mc) {
    const int64_t mb = std::min(mc, g.m - i0);
    for (int64_t p0 = 0; p0 < g.k; p0 += kc) {
      const int64_t kb = std::min(kc, g.k - p0);
      PackA<kMr>(g, i0, mb, p0, kb, a_pack);
      Tile tile;
      tile.k = kb;
      tile.rs_a = kMr;
      tile.ldc = g.ldc;
      tile.alpha = g.alpha;
      // Later k blocks accumulate onto what the first wrote.
      tile.beta = p0 == 0 ? g.beta : 1.0f;
      for (int64_t j0 = 0; j0 < g.n; j0 += nc) {
        const int64_t nb = std::min(nc, g.n - j0);
        // Columns [0, in_place) of the block are read from B itself, the rest packed.
        // Kernels read whole vectors, so a right edge is always packed (zero padded):
        // reading it in place could run past the end of B.
        const int64_t in_place = b_in_place ? nb / kNr * kNr : 0;
        if (!g.b_packed && in_place < nb) PackB<kNr>(g, p0, kb, j0 + in_place, nb - in_place, b_pack);
        for (int64_t ir = 0; ir < mb; ir += kMr) {
          const auto& kernels = kMicro[std::min<int64_t>(kMr, mb - ir) - 1];
          tile.a = a_pack + ir * kb;
          for (int64_t jr = 0; jr < nb; jr += kNr) {
            if (g.b_packed) {
              const int64_t j = j0 + jr;
              tile.b = g.b + j / kPackedCols * kPackedCols * g.k + p0 * kPackedCols + j % kPackedCols;
              tile.rs_b = kPackedCols;
            } else if (jr < in_place) {
              tile.b = g.b + p0 * g.ldb + j0 + jr;
              tile.rs_b = g.ldb;
            } else {
              tile.b = b_pack + (jr - in_place) * kb;
              tile.rs_b = kNr;
            }
            tile.cols = std::min<int64_t>(kNr, nb - jr);
            tile.c = g.c + (i0 + ir) * g.ldc + j0 + jr;
            kernels[CeilDiv(tile.cols, Set::kVec) - 1](tile);
          }
        }
      }
    }
  }
}

// --- SgemmConv ------------------------------------------------------------------------------

struct ConvArgs {
  int64_t m = 0, col0 = 0, cols = 0;
  const float* a = nullptr;
  int64_t lda = 0;  // 0: packed by PackFilters
  const float* x = nullptr;
  ConvGemmShape shape;
  float* c = nullptr;
  int64_t ldc = 0;
};

// A piece of one row of an im2col panel: `length` columns from `dst` on, read from the
// channel's plane at `src` + t * stride (stride 0: zeros).
struct Im2colPiece {
  int32_t dst, length;
  int64_t src, stride;
};

// The pieces of a panel's row for every kernel tap: they depend on the tap (kernel row
// and column) but not on the channel, so they are found once per panel and tap and then
// copied for every channel. Columns of a panel fall into runs along one output row; a
// run reads x with the convolution's stride between its valid first and last columns and
// is zero around them.
inline void Im2colPieces(const ConvGemmShape& s, int64_t col0, int64_t width, std::vector<Im2colPiece>& pieces,
                         std::vector<int32_t>& tap_begin) {
  const int64_t taps = s.kernel_h * s.kernel_w;
  pieces.clear();
  tap_begin.assign(static_cast<size_t>(taps + 1), 0);
  const auto add = [&](int64_t dst, int64_t length, int64_t src, int64_t stride) {
    if (length > 0) pieces.push_back({int32_t(dst), int32_t(length), src, stride});
  };
  // The runs (along one output row) do not depend on the tap: found once.
  struct Run {
    int64_t offset, length, oh, ow;
  };
  thread_local std::vector<Run> runs;
  runs.clear();
  for (int64_t j = 0, oh = col0 / s.out_w, ow = col0 % s.out_w; j < width; ++oh, ow = 0) {
    const int64_t length = std::min(width - j, s.out_w - ow);
    runs.push_back({j, length, oh, ow});
    j += length;
  }
  const int count = static_cast<int>(runs.size());
  for (int64_t tap = 0; tap < taps; ++tap) {
    tap_begin[static_cast<size_t>(tap)] = static_cast<int32_t>(pieces.size());
    const int64_t di = tap / s.kernel_w * s.dilate_h - s.pad_h;
    const int64_t dj = tap % s.kernel_w * s.dilate_w - s.pad_w;
    for (int r = 0; r < count; ++r) {
      const Run& run = runs[r];
      const int64_t ih = run.oh * s.stride_h + di;
      if (ih < 0 || ih >= s.height) {
        add(run.offset, run.length, 0, 0);
        continue;
      }
      // Columns t of the run with 0 <= iw0 + t stride_w < width.
      const int64_t iw0 = run.ow * s.stride_w + dj;
      int64_t first = 0, end = 0;
      if (s.stride_w == 1) {
        first = std::clamp<int64_t>(-iw0, 0, run.length);
        end = std::clamp<int64_t>(s.width - iw0, first, run.length);
      } else {
        first = std::clamp<int64_t>(iw0 >= 0 ? 0 : CeilDiv(-iw0, s.stride_w), 0, run.length);
        end = std::clamp<int64_t>(iw0 >= s.width ? 0 : CeilDiv(s.width - iw0, s.stride_w), first, run.length);
      }
      add(run.offset, first, 0, 0);
      add(run.offset + first, end - first, ih * s.width + iw0 + first * s.stride_w, s.stride_w);
      add(run.offset + end, run.length - end, 0, 0);
    }
  }
  tap_begin[static_cast<size_t>(taps)] = static_cast<int32_t>(pieces.size());
}

// Rows [p0, p0 + kb) and columns [j0, j0 + cols) of the implicit im2col matrix into
// panels of `panel` columns (columns past `cols` zero), each kb rows `panel` apart:
// PackB's layout when panel is NR; with one panel as wide as the block (rounded up to
// NR), the block row-major, which micro-kernels read in place.
template <int kNr>
void PackIm2col(const ConvArgs& g, int64_t p0, int64_t kb, int64_t j0, int64_t cols, int64_t panel, float* dst) {
  const ConvGemmShape& s = g.shape;
  const int64_t taps = s.kernel_h * s.kernel_w;
  const int64_t plane_size = s.height * s.width;
  thread_local std::vector<Im2colPiece> pieces;
  thread_local std::vector<int32_t> tap_begin;
  for (int64_t first = 0; first < cols; first += panel) {
    const int64_t width = std::min<int64_t>(panel, cols - first);
    Im2colPieces(s, j0 + first, width, pieces, tap_begin);
    float* out = dst + first * kb;
    int64_t channel = p0 / taps;
    int64_t tap = p0 % taps;
    for (int64_t p = 0; p < kb; ++p) {
      const float* plane = g.x + channel * plane_size;
      float* line = out + p * panel;
      for (int64_t t = width; t < panel; ++t) line[t] = 0.0f;
      const Im2colPiece* piece = pieces.data() + tap_begin[static_cast<size_t>(tap)];
      const Im2colPiece* const last = pieces.data() + tap_begin[static_cast<size_t>(tap + 1)];
      for (; piece != last; ++piece) {
        float* to = line + piece->dst;
        const float* from = plane + piece->src;
        if (piece->stride == 1) {
          for (int32_t t = 0; t < piece->length; ++t) to[t] = from[t];
        } else if (piece->stride == 2) {
          // A constant stride the compiler vectorizes (with shuffles): stride-2 layers
          // (ResNet's first) pack half again as fast so.
          for (int32_t t = 0; t < piece->length; ++t) to[t] = from[2 * t];
        } else if (piece->stride == 0) {
          for (int32_t t = 0; t < piece->length; ++t) to[t] = 0.0f;
        } else {
          for (int32_t t = 0; t < piece->length; ++t) to[t] = from[t * piece->stride];
        }
      }
      if (++tap == taps) {
        tap = 0;
        ++channel;
      }
    }
  }
}

// For each block of KC rows of the implicit matrix: A's block is packed (unless
// prepacked), then each block of NC columns is packed from x and multiplied by all of A's
// panels. Every element of the im2col matrix is packed exactly once.
// Filters up to this many times kInPlaceBMaxRows read the im2col block in place.
inline constexpr int64_t kConvInPlaceBlocks = 8;

template <class Set>
void RunConvGemm(const ConvArgs& g) {
  constexpr int kMr = Set::kMr;
  constexpr int kNr = Set::kNr;
  static_assert(kPackedRows % kMr == 0, "packed filter panels must hold whole micro-kernel panels");
  static constexpr auto kMicro = MicroTable<Set, kNr / Set::kVec>(std::make_index_sequence<kMr>());
  const int64_t k = g.shape.Rows();
  const bool prepacked = g.lda == 0;
  const int64_t kc = BalancedBlock(k, Set::kKc, 1);
  const int64_t nc = BalancedBlock(g.cols, Set::kNc, kNr);
  const int64_t rows = RoundUp(g.m, kPackedRows);
  const bool in_place = g.m <= kConvInPlaceBlocks * Set::kInPlaceBMaxRows;
  float* const a_pack = prepacked ? nullptr : ScratchA(static_cast<size_t>(rows * kc));
  float* const b_pack = ScratchB(static_cast<size_t>(nc * kc));
  for (int64_t p0 = 0; p0 < k; p0 += kc) {
    const int64_t kb = std::min(kc, k - p0);
    // A panel of kPackedRows rows: its row block [p0, p0 + kb) starts at `panels` +
    // panel * panel_stride, its rows kPackedRows apart.
    const float* panels = nullptr;
    int64_t panel_stride = 0;
    if (prepacked) {
      panels = g.a + p0 * kPackedRows;
      panel_stride = kPackedRows * k;
    } else {
      GemmArgs view;
      view.a = g.a;
      view.lda = g.lda;
      PackA<kPackedRows>(view, 0, g.m, p0, kb, a_pack);
      panels = a_pack;
      panel_stride = kPackedRows * kb;
    }
    Tile tile;
    tile.k = kb;
    tile.rs_a = kPackedRows;
    tile.ldc = g.ldc;
    tile.alpha = 1.0f;
    tile.beta = p0 == 0 ? 0.0f : 1.0f;  // later blocks accumulate onto the first
    for (int64_t j0 = 0; j0 < g.cols; j0 += nc) {
      const int64_t nb = std::min(nc, g.cols - j0);
      // With few filters the block is packed row-major and read in place, in runs along
      // whole output rows, rather than in NR-column panels, which cut the runs: LeNet's
      // first layer packed 1.3x faster so, and up to 96 filters MobileNetV2 gained 6%.
      const int64_t panel = in_place ? RoundUp(nb, kNr) : kNr;
      PackIm2col<kNr>(g, p0, kb, g.col0 + j0, nb, panel, b_pack);
      tile.rs_b = panel;
      for (int64_t ir = 0; ir < g.m; ir += kMr) {
        const auto& kernels = kMicro[std::min<int64_t>(kMr, g.m - ir) - 1];
        tile.a = panels + ir / kPackedRows * panel_stride + ir % kPackedRows;
        for (int64_t jr = 0; jr < nb; jr += kNr) {
          tile.b = b_pack + (in_place ? jr : jr * kb);
          tile.cols = std::min<int64_t>(kNr, nb - jr);
          tile.c = g.c + ir * g.ldc + j0 + jr;
          kernels[CeilDiv(tile.cols, Set::kVec) - 1](tile);
        }
      }
    }
  }
}

// Where the implicit im2col matrix's transposed panels read (PackIm2colRows): for every
// panel of kPackedRows positions [j0 + r kPackedRows, ...) and every kernel tap, the
// positions' offsets in a channel's plane (0 where unused) and a
// bit per position that reads inside the image. Found once per call; they do not depend
// on the channel.
struct Im2colRowsMap {
  std::vector<int32_t> offsets;  // [panel][tap][kPackedRows]
  std::vector<uint32_t> valid;   // [panel][tap]
  int64_t taps = 0;

  void Build(const ConvGemmShape& s, int64_t j0, int64_t cols) {
    taps = s.kernel_h * s.kernel_w;
    const int64_t panels = CeilDiv(cols, kPackedRows);
    offsets.assign(static_cast<size_t>(panels * taps * kPackedRows), 0);
    valid.assign(static_cast<size_t>(panels * taps), 0);
    for (int64_t i = 0; i < cols; ++i) {
      const int64_t q = j0 + i;
      const int64_t oh = q / s.out_w, ow = q % s.out_w;
      const int64_t panel = i / kPackedRows, lane = i % kPackedRows;
      for (int64_t tap = 0; tap < taps; ++tap) {
        const int64_t ih = oh * s.stride_h + tap / s.kernel_w * s.dilate_h - s.pad_h;
        const int64_t iw = ow * s.stride_w + tap % s.kernel_w * s.dilate_w - s.pad_w;
        if (ih < 0 || ih >= s.height || iw < 0 || iw >= s.width) continue;
        const int64_t at = panel * taps + tap;
        offsets[static_cast<size_t>(at * kPackedRows + lane)] = static_cast<int32_t>(ih * s.width + iw);
        valid[static_cast<size_t>(at)] |= 1u << lane;
      }
    }
  }
};

// Rows [p0, p0 + kb) of the implicit im2col matrix, transposed, for the positions `map`
// was built for: panels of kPackedRows positions, each kb taps kPackedRows apart (A's
// packed layout; positions past the end zero), gathered channel by channel with the
// map's offsets, 0.5 ns per element on ResNet-50's stride-2 layers (copying runs of a few
// positions piece by piece, as PackIm2col does, cost about 1.6; AVX-512's gather, 0.65).
inline void PackIm2colRows(const ConvArgs& g, const Im2colRowsMap& map, int64_t p0, int64_t kb, int64_t cols,
                           float* dst) {
  const int64_t taps = map.taps;
  const int64_t plane_size = g.shape.height * g.shape.width;
  for (int64_t panel = 0; panel * kPackedRows < cols; ++panel) {
    float* const out = dst + panel * kPackedRows * kb;
    const int32_t* const offsets = map.offsets.data() + panel * taps * kPackedRows;
    const uint32_t* const valid = map.valid.data() + panel * taps;
    int64_t channel = p0 / taps;
    int64_t tap = p0 % taps;
    for (int64_t p = 0; p < kb; ++p) {
      const float* const plane = g.x + channel * plane_size;
      const int32_t* const offset = offsets + tap * kPackedRows;
      const uint32_t bits = valid[tap];
      float* const line = out + p * kPackedRows;
      for (int i = 0; i < kPackedRows; ++i) {
        const float value = plane[offset[i]];  // offset 0 where the position reads padding
        line[i] = (bits >> i & 1u) != 0 ? value : 0.0f;
      }
      if (++tap == taps) {
        tap = 0;
        ++channel;
      }
    }
  }
}

// SgemmConvT: for each block of KC rows of the implicit matrix the positions are packed
// into 12-row panels (PackIm2colRows),
// then multiplied by W^T's packed panels, blocks of NC filters at a time.
template <class Set>
void RunConvGemmT(const ConvArgs& g) {
  constexpr int kMr = Set::kMr;
  constexpr int kNr = Set::kNr;
  static_assert(kPackedRows % kMr == 0 && kPackedCols % kNr == 0, "packed panels must hold whole kernel panels");
  static constexpr auto kMicro = MicroTable<Set, kNr / Set::kVec>(std::make_index_sequence<kMr>());
  const int64_t k = g.shape.Rows();
  const int64_t kc = BalancedBlock(k, Set::kKc, 1);
  const int64_t nc = BalancedBlock(g.m, Set::kNc, kPackedCols);
  float* const a_pack = ScratchA(static_cast<size_t>(RoundUp(g.cols, kPackedRows) * kc));
  // Offsets are 32-bit: planes of 2^31 elements or more take the piece-by-piece path.
  const bool gather = g.shape.height * g.shape.width <= INT32_MAX;
  thread_local Im2colRowsMap map;
  if (gather) map.Build(g.shape, g.col0, g.cols);
  for (int64_t p0 = 0; p0 < k; p0 += kc) {
    const int64_t kb = std::min(kc, k - p0);
    if (gather) {
      PackIm2colRows(g, map, p0, kb, g.cols, a_pack);
    } else {
      PackIm2col<kNr>(g, p0, kb, g.col0, g.cols, kPackedRows, a_pack);
    }
    Tile tile;
    tile.k = kb;
    tile.rs_a = kPackedRows;
    tile.rs_b = kPackedCols;
    tile.ldc = g.ldc;
    tile.alpha = 1.0f;
    tile.beta = p0 == 0 ? 0.0f : 1.0f;
    for (int64_t j0 = 0; j0 < g.m; j0 += nc) {
      const int64_t nb = std::min(nc, g.m - j0);
      for (int64_t ir = 0; ir < g.cols; ir += kMr) {
        const auto& kernels = kMicro[std::min<int64_t>(kMr, g.cols - ir) - 1];
        tile.a = a_pack + ir / kPackedRows * kPackedRows * kb + ir % kPackedRows;
        for (int64_t jr = 0; jr < nb; jr += kNr) {
          const int64_t j = j0 + jr;
          tile.b = g.a + j / kPackedCols * kPackedCols * k + p0 * kPackedCols + j % kPackedCols;
          tile.cols = std::min<int64_t>(kNr, nb - jr);
          tile.c = g.c + ir * g.ldc + j;
          kernels[CeilDiv(tile.cols, Set::kVec) - 1](tile);
        }
      }
    }
  }
}

// The kernel sets, one translation unit each.
void SgemmPortable(const GemmArgs& g);
void SgemmAvx2(const GemmArgs& g);
void SgemmAvx512(const GemmArgs& g);
void SgemmConvPortable(const ConvArgs& g);
void SgemmConvAvx2(const ConvArgs& g);
void SgemmConvAvx512(const ConvArgs& g);
void SgemmConvTPortable(const ConvArgs& g);
void SgemmConvTAvx2(const ConvArgs& g);
void SgemmConvTAvx512(const ConvArgs& g);

}  // namespace kiln::gemm_internal
