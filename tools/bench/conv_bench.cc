// kiln's convolution routines against im2col + OpenBLAS on the layers of ResNet-50 and
// MobileNetV2, one thread, side by side in one run: sconv (filters packed, positions as
// columns, the image cut into panels of --cols positions as GemmConvolution cuts it),
// sconv_t (positions as rows, W^T packed, as NarrowConvolution runs it) and, for scale,
// cblas_sgemm on an explicit im2col matrix (the image itself for 1x1 stride-1 layers;
// forming the matrix is not timed). Reports GFLOP/s (best of --reps batches).
//
//   bazel run --config=opt //tools/bench:conv_bench -- [--cols 256] [--reps 7]
//       [--layers NAME,...]
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "runtime/kernels/gemm.h"

extern "C" {
void cblas_sgemm(int order, int transa, int transb, int m, int n, int k, float alpha, const float* a, int lda,
                 const float* b, int ldb, float beta, float* c, int ldc);
void openblas_set_num_threads(int threads);
}

namespace {

constexpr int kCblasRowMajor = 101;
constexpr int kCblasNoTrans = 111;

struct Layer {
  const char* name;
  int64_t channels, size, filters, kernel, stride;
};

// ResNet-50 (torchvision, v1.5: the stride on the 3x3) and MobileNetV2's widest 1x1s.
const Layer kLayers[] = {
    {"r50.conv1", 3, 224, 64, 7, 2},         {"r50.l1.c1", 64, 56, 64, 1, 1},
    {"r50.l1.c2", 64, 56, 64, 3, 1},         {"r50.l1.c3", 64, 56, 256, 1, 1},
    {"r50.l1.ds", 64, 56, 256, 1, 1},        {"r50.l1.c1b", 256, 56, 64, 1, 1},
    {"r50.l2.0.c1", 256, 56, 128, 1, 1},     {"r50.l2.0.c2", 128, 56, 128, 3, 2},
    {"r50.l2.c3", 128, 28, 512, 1, 1},       {"r50.l2.ds", 256, 56, 512, 1, 2},
    {"r50.l2.c1", 512, 28, 128, 1, 1},       {"r50.l3.0.c1", 512, 28, 256, 1, 1},
    {"r50.l3.0.c2", 256, 28, 256, 3, 2},     {"r50.l3.c3", 256, 14, 1024, 1, 1},
    {"r50.l3.ds", 512, 28, 1024, 1, 2},      {"r50.l3.c1", 1024, 14, 256, 1, 1},
    {"r50.l4.0.c1", 1024, 14, 512, 1, 1},    {"r50.l4.0.c2", 512, 14, 512, 3, 2},
    {"r50.l4.c3", 512, 7, 2048, 1, 1},       {"r50.l4.ds", 1024, 14, 2048, 1, 2},
    {"r50.l4.c1", 2048, 7, 512, 1, 1},       {"mnv2.expand56", 24, 56, 144, 1, 1},
    {"mnv2.project56", 144, 56, 24, 1, 1},   {"mnv2.expand28", 32, 28, 192, 1, 1},
    {"mnv2.project14", 576, 14, 96, 1, 1},   {"mnv2.last", 320, 7, 1280, 1, 1},
};

struct Options {
  int64_t cols = 256;
  int reps = 7;
  std::vector<std::string> layers;
};

double BestSeconds(int reps, double flops, const std::function<void()>& run) {
  const int calls = static_cast<int>(std::max(1.0, 2e9 / flops));
  run();  // warm-up: scratch buffers, page faults
  double best = 1e30;
  for (int rep = 0; rep < reps; ++rep) {
    const auto start = std::chrono::steady_clock::now();
    for (int call = 0; call < calls; ++call) run();
    best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() / calls);
  }
  return best;
}

void Run(const Layer& layer, const Options& options) {
  kiln::ConvGemmShape shape;
  shape.channels = layer.channels;
  shape.height = shape.width = layer.size;
  shape.kernel_h = shape.kernel_w = layer.kernel;
  shape.stride_h = shape.stride_w = layer.stride;
  shape.pad_h = shape.pad_w = layer.kernel / 2;
  const int64_t out = (layer.size + 2 * shape.pad_h - layer.kernel) / layer.stride + 1;
  shape.out_w = out;
  const int64_t plane = out * out, k = shape.Rows(), m = layer.filters;
  std::mt19937 rng(static_cast<uint32_t>(k * 31 + m));
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  std::vector<float> x(static_cast<size_t>(layer.channels * layer.size * layer.size)), w(static_cast<size_t>(m * k));
  for (auto& v : x) v = dist(rng);
  for (auto& v : w) v = dist(rng);
  std::vector<float> packed(static_cast<size_t>(kiln::PackedFiltersSize(m, k)));
  kiln::PackFilters(m, k, w.data(), k, packed.data());
  std::vector<float> packed_t(static_cast<size_t>(kiln::PackedGemmBSize(k, m)));
  kiln::PackGemmB(k, m, w.data(), k, true, packed_t.data());
  // The explicit im2col matrix (k x plane), for OpenBLAS.
  std::vector<float> columns(static_cast<size_t>(k * plane));
  for (int64_t row = 0; row < k; ++row) {
    const int64_t c = row / (layer.kernel * layer.kernel), i = row / layer.kernel % layer.kernel,
                  j = row % layer.kernel;
    for (int64_t q = 0; q < plane; ++q) {
      const int64_t h = q / out * layer.stride - shape.pad_h + i, v = q % out * layer.stride - shape.pad_w + j;
      columns[static_cast<size_t>(row * plane + q)] =
          h >= 0 && h < layer.size && v >= 0 && v < layer.size ? x[static_cast<size_t>((c * layer.size + h) * layer.size + v)]
                                                               : 0.0f;
    }
  }
  std::vector<float> c_conv(static_cast<size_t>(m * plane)), c_t(c_conv.size()), c_blas(c_conv.size());
  const double flops = 2.0 * static_cast<double>(m) * k * plane;
  const double sconv = BestSeconds(options.reps, flops, [&] {
    for (int64_t col0 = 0; col0 < plane; col0 += options.cols) {
      const int64_t cols = std::min(options.cols, plane - col0);
      kiln::SgemmConv(m, col0, cols, packed.data(), 0, x.data(), shape, c_conv.data() + col0, plane);
    }
  });
  const double sconv_t = BestSeconds(options.reps, flops, [&] {
    kiln::SgemmConvT(m, 0, plane, packed_t.data(), x.data(), shape, c_t.data(), m);
  });
  const double blas = BestSeconds(options.reps, flops, [&] {
    cblas_sgemm(kCblasRowMajor, kCblasNoTrans, kCblasNoTrans, static_cast<int>(m), static_cast<int>(plane),
                static_cast<int>(k), 1.0f, w.data(), static_cast<int>(k), columns.data(), static_cast<int>(plane), 0.0f,
                c_blas.data(), static_cast<int>(plane));
  });
  double max_diff = 0, max_ref = 0;
  for (int64_t f = 0; f < m; ++f) {
    for (int64_t q = 0; q < plane; ++q) {
      const double ref = c_blas[static_cast<size_t>(f * plane + q)];
      max_ref = std::max(max_ref, std::fabs(ref));
      max_diff = std::max({max_diff, std::fabs(c_conv[static_cast<size_t>(f * plane + q)] - ref),
                           std::fabs(c_t[static_cast<size_t>(q * m + f)] - ref)});
    }
  }
  std::printf("%-15s %5lld %4lld %5lld %dx%d/%lld %4lld   %6.1f  %6.1f  %6.1f   %.1e\n", layer.name,
              static_cast<long long>(layer.channels), static_cast<long long>(layer.size),
              static_cast<long long>(m), static_cast<int>(layer.kernel), static_cast<int>(layer.kernel),
              static_cast<long long>(layer.stride), static_cast<long long>(plane), flops * 1e-9 / sconv,
              flops * 1e-9 / sconv_t, flops * 1e-9 / blas, max_diff / std::max(max_ref, 1e-30));
}

}  // namespace

int main(int argc, char** argv) {
  Options options;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (i + 1 >= argc) return std::fprintf(stderr, "conv_bench: %s needs a value\n", arg.c_str()), 2;
    const std::string value = argv[++i];
    if (arg == "--cols") {
      options.cols = std::max(1LL, std::atoll(value.c_str()));
    } else if (arg == "--reps") {
      options.reps = std::max(1, std::atoi(value.c_str()));
    } else if (arg == "--layers") {
      for (size_t pos = 0; pos <= value.size();) {
        const size_t stop = std::min(value.find(',', pos), value.size());
        options.layers.push_back(value.substr(pos, stop - pos));
        pos = stop + 1;
      }
    } else {
      return std::fprintf(stderr, "usage: conv_bench [--cols N] [--reps N] [--layers NAME,...]\n"), 2;
    }
  }
  openblas_set_num_threads(1);
  std::printf("one thread, GFLOP/s (best of %d); sconv on panels of %lld positions\n", options.reps,
              static_cast<long long>(options.cols));
  std::printf("%-15s %5s %4s %5s %-6s %4s   %6s  %6s  %6s   %s\n", "layer", "in_c", "size", "out_c", "kernel",
              "out", "sconv", "sconv_t", "blas", "rel diff");
  for (const Layer& layer : kLayers) {
    if (!options.layers.empty() &&
        std::find(options.layers.begin(), options.layers.end(), layer.name) == options.layers.end()) {
      continue;
    }
    Run(layer, options);
  }
}
