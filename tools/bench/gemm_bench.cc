// kiln's Sgemm against OpenBLAS's cblas_sgemm on row-major products (square unless
// --shapes), side by side in one run: repetitions alternate between the two, and each
// reports its best and median. With several threads kiln splits C into that many
// panels run on its thread pool (what compiled kernels do); OpenBLAS uses its own
// threads.
//
//   bazel run --config=opt //tools/bench:gemm_bench -- [--sizes 256,512,1024,2048]
//       [--shapes MxNxK,...] [--threads 1,2] [--reps N] [--isa avx512|avx2|portable]
//       [--ta] [--tb] [--json]
//
// Exits with 1 if the two disagree (relative difference of 1e-4 or more).
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "runtime/kernels/gemm.h"
#include "runtime/thread_pool.h"

// OpenBLAS's CBLAS, declared here: <cblas.h> is whichever CBLAS the system's
// alternatives select, and only OpenBLAS's has the openblas_* functions.
extern "C" {
void cblas_sgemm(int order, int transa, int transb, int m, int n, int k, float alpha, const float* a, int lda,
                 const float* b, int ldb, float beta, float* c, int ldc);
void openblas_set_num_threads(int threads);
char* openblas_get_config(void);
char* openblas_get_corename(void);
}

namespace {

// CBLAS_ORDER and CBLAS_TRANSPOSE values.
constexpr int kCblasRowMajor = 101;
constexpr int kCblasNoTrans = 111;
constexpr int kCblasTrans = 112;

struct Shape {
  int64_t m = 0, n = 0, k = 0;
};

struct Options {
  std::vector<Shape> shapes = {{256, 256, 256}, {512, 512, 512}, {1024, 1024, 1024}, {2048, 2048, 2048}};
  std::vector<int> threads = {1, 2};
  int reps = 0;  // 0: by size
  kiln::GemmIsa isa = kiln::BestGemmIsa();
  bool transpose_a = false;
  bool transpose_b = false;
  bool json = false;
};

struct Result {
  Shape shape;
  int threads = 0;
  int reps = 0;
  double kiln_best = 0, kiln_median = 0;  // GFLOP/s
  double blas_best = 0, blas_median = 0;
  double max_rel_diff = 0;
};

[[noreturn]] void Usage(const char* problem) {
  std::fprintf(stderr,
               "gemm_bench: %s\nusage: gemm_bench [--sizes 256,512,...] [--shapes MxNxK,...] [--threads 1,2] "
               "[--reps N] [--isa avx512|avx2|portable] [--ta] [--tb] [--json]\n",
               problem);
  std::exit(2);
}

// "a<sep>b<sep>c" of positive integers.
std::vector<int64_t> ParseList(const std::string& text, char separator) {
  std::vector<int64_t> values;
  size_t pos = 0;
  for (;;) {
    const size_t stop = std::min(text.find(separator, pos), text.size());
    const std::string item = text.substr(pos, stop - pos);
    char* end = nullptr;
    const long long value = std::strtoll(item.c_str(), &end, 10);
    if (item.empty() || *end != '\0' || value <= 0) Usage(("bad list '" + text + "'").c_str());
    values.push_back(value);
    if (stop == text.size()) return values;
    pos = stop + 1;
  }
}

Options ParseOptions(int argc, char** argv) {
  Options options;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    const auto value = [&]() -> std::string {
      if (i + 1 >= argc) Usage(("missing value after " + arg).c_str());
      return argv[++i];
    };
    if (arg == "--sizes") {
      options.shapes.clear();
      for (const int64_t size : ParseList(value(), ',')) options.shapes.push_back({size, size, size});
    } else if (arg == "--shapes") {
      options.shapes.clear();
      const std::string list = value();
      size_t pos = 0;
      for (;;) {
        const size_t stop = std::min(list.find(',', pos), list.size());
        const auto dims = ParseList(list.substr(pos, stop - pos), 'x');
        if (dims.size() != 3) Usage("a shape is MxNxK");
        options.shapes.push_back({dims[0], dims[1], dims[2]});
        if (stop == list.size()) break;
        pos = stop + 1;
      }
    } else if (arg == "--threads") {
      options.threads.clear();
      for (const int64_t t : ParseList(value(), ',')) options.threads.push_back(static_cast<int>(t));
    } else if (arg == "--reps") {
      options.reps = static_cast<int>(ParseList(value(), ',').at(0));
    } else if (arg == "--isa") {
      const std::string name = value();
      bool found = false;
      for (const auto isa : {kiln::GemmIsa::kAvx512, kiln::GemmIsa::kAvx2, kiln::GemmIsa::kPortable}) {
        if (name == kiln::GemmIsaName(isa)) {
          options.isa = isa;
          found = true;
        }
      }
      if (!found) Usage("unknown --isa");
      if (!kiln::GemmIsaSupported(options.isa)) Usage("this CPU cannot run that --isa");
    } else if (arg == "--ta") {
      options.transpose_a = true;
    } else if (arg == "--tb") {
      options.transpose_b = true;
    } else if (arg == "--json") {
      options.json = true;
    } else {
      Usage(("unknown argument " + arg).c_str());
    }
  }
  return options;
}

double Seconds(const std::function<void()>& fn) {
  const auto start = std::chrono::steady_clock::now();
  fn();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

double Median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  const size_t half = values.size() / 2;
  return values.size() % 2 == 1 ? values[half] : (values[half - 1] + values[half]) / 2;
}

Result Measure(const Options& options, const Shape& shape, int threads, kiln::ThreadPool& pool) {
  const auto [m, n, k] = shape;
  // Row-major storage of A (m x k, or k x m when transposed), B (k x n, or n x k), C.
  const int64_t lda = options.transpose_a ? m : k;
  const int64_t ldb = options.transpose_b ? k : n;
  std::vector<float> a(static_cast<size_t>(m * k)), b(static_cast<size_t>(k * n));
  std::vector<float> c_kiln(static_cast<size_t>(m * n)), c_blas(c_kiln.size());
  std::mt19937 rng(static_cast<uint32_t>(m * 131 + n * 17 + k));
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  for (auto& x : a) x = dist(rng);
  for (auto& x : b) x = dist(rng);

  // As the sgemm lowering does: C cut into `threads` panels of whole 16-column (or row,
  // when C is taller than wide) groups, each an Sgemm call on the pool.
  const bool split_rows = m > n;
  const int64_t dim = split_rows ? m : n;
  const int64_t groups = (dim + 15) / 16;
  const auto kiln_run = [&] {
    pool.ParallelFor(threads, [&](int64_t begin, int64_t end) {
      const int64_t p0 = std::min(dim, groups * begin / threads * 16);
      const int64_t p1 = std::min(dim, groups * end / threads * 16);
      if (p0 == p1) return;
      if (split_rows) {
        const float* a_panel = a.data() + (options.transpose_a ? p0 : p0 * lda);
        kiln::SgemmWithIsa(options.isa, p1 - p0, n, k, 1.0f, a_panel, lda, options.transpose_a, b.data(), ldb,
                           options.transpose_b, 0.0f, c_kiln.data() + p0 * n, n);
      } else {
        const float* b_panel = b.data() + (options.transpose_b ? p0 * ldb : p0);
        kiln::SgemmWithIsa(options.isa, m, p1 - p0, k, 1.0f, a.data(), lda, options.transpose_a, b_panel, ldb,
                           options.transpose_b, 0.0f, c_kiln.data() + p0, n);
      }
    });
  };
  const auto blas_run = [&] {
    cblas_sgemm(kCblasRowMajor, options.transpose_a ? kCblasTrans : kCblasNoTrans,
                options.transpose_b ? kCblasTrans : kCblasNoTrans, static_cast<int>(m), static_cast<int>(n),
                static_cast<int>(k), 1.0f, a.data(), static_cast<int>(lda), b.data(), static_cast<int>(ldb), 0.0f,
                c_blas.data(), static_cast<int>(n));
  };
  // Idle threads poll for a while after a call (kiln's and OpenBLAS's alike, about
  // 0.2 ms, see main): let them stop before the other library's turn.
  const auto settle = [&] {
    if (threads > 1) std::this_thread::sleep_for(std::chrono::milliseconds(2));
  };

  openblas_set_num_threads(threads);
  kiln_run();  // warm up: page faults, packing buffers, thread start
  blas_run();
  settle();

  Result r;
  r.shape = shape;
  r.threads = threads;
  double max_ref = 0, max_diff = 0;
  for (size_t i = 0; i < c_blas.size(); ++i) {
    max_ref = std::max(max_ref, std::fabs(static_cast<double>(c_blas[i])));
    max_diff = std::max(max_diff, std::fabs(static_cast<double>(c_kiln[i]) - c_blas[i]));
  }
  r.max_rel_diff = max_diff / std::max(max_ref, 1e-30);

  // A repetition times a batch of back-to-back calls (at least ~20 ms of work, as in a
  // model that runs kernel after kernel) and takes the mean.
  const double flops = 2.0 * static_cast<double>(m) * n * k;
  const int calls = static_cast<int>(std::max(1.0, 4e9 / flops));
  r.reps = options.reps > 0 ? options.reps : static_cast<int>(std::clamp(4e10 / flops, 5.0, 15.0));
  const auto batch = [calls](const std::function<void()>& run) {
    return Seconds([&] {
             for (int call = 0; call < calls; ++call) run();
           }) /
           calls;
  };
  std::vector<double> kiln_times, blas_times;
  for (int rep = 0; rep < r.reps; ++rep) {
    kiln_times.push_back(batch(kiln_run));
    settle();
    blas_times.push_back(batch(blas_run));
    settle();
  }
  const double giga = flops * 1e-9;
  r.kiln_best = giga / *std::min_element(kiln_times.begin(), kiln_times.end());
  r.kiln_median = giga / Median(kiln_times);
  r.blas_best = giga / *std::min_element(blas_times.begin(), blas_times.end());
  r.blas_median = giga / Median(blas_times);
  return r;
}

}  // namespace

int main(int argc, char** argv) {
  const Options options = ParseOptions(argc, argv);
  // OpenBLAS's idle threads spin for 2^OPENBLAS_THREAD_TIMEOUT cycles, by default 2^28
  // (about 0.1 s): long enough to halve the speed of whatever runs next on the same
  // cores. 2^19 cycles is about the 0.2 ms that kiln's pool polls. OpenBLAS reads the
  // variable when it is loaded, so set it and start again.
  if (std::getenv("OPENBLAS_THREAD_TIMEOUT") == nullptr) {
    setenv("OPENBLAS_THREAD_TIMEOUT", "19", 1);
    execv("/proc/self/exe", argv);
    std::perror("gemm_bench: execv /proc/self/exe");
    return 1;
  }
  std::string config = openblas_get_config();
  while (!config.empty() && config.back() == ' ') config.pop_back();
  const char* coretype = std::getenv("OPENBLAS_CORETYPE");
  const std::string op = std::string(options.transpose_a ? "T" : "N") + (options.transpose_b ? "T" : "N");

  std::vector<Result> results;
  bool agree = true;
  if (!options.json) {
    std::printf(
        "OpenBLAS: %s; core %s; OPENBLAS_CORETYPE=%s; OPENBLAS_THREAD_TIMEOUT=%s\nkiln kernels: %s; op(A) op(B): %s; "
        "%u hardware threads\n\n",
        config.c_str(), openblas_get_corename(), coretype != nullptr ? coretype : "(unset)",
        std::getenv("OPENBLAS_THREAD_TIMEOUT"), kiln::GemmIsaName(options.isa), op.c_str(),
        std::thread::hardware_concurrency());
    std::printf("%16s %7s %5s  %21s  %21s  %6s  %9s\n", "m x n x k", "threads", "reps", "kiln GFLOP/s best/med",
                "OpenBLAS best/med", "ratio", "rel diff");
  }
  for (const int threads : options.threads) {
    kiln::ThreadPool pool(threads);
    for (const Shape& shape : options.shapes) {
      const Result r = Measure(options, shape, threads, pool);
      agree = agree && r.max_rel_diff < 1e-4;
      results.push_back(r);
      if (!options.json) {
        const std::string dims =
            std::to_string(shape.m) + "x" + std::to_string(shape.n) + "x" + std::to_string(shape.k);
        std::printf("%16s %7d %5d  %10.1f %10.1f  %10.1f %10.1f  %6.2f  %9.1e\n", dims.c_str(), r.threads, r.reps,
                    r.kiln_best, r.kiln_median, r.blas_best, r.blas_median, r.kiln_best / r.blas_best, r.max_rel_diff);
        std::fflush(stdout);
      }
    }
  }
  if (options.json) {
    std::printf(
        "{\"openblas_config\": \"%s\", \"openblas_core\": \"%s\", \"openblas_coretype_env\": \"%s\", "
        "\"openblas_thread_timeout\": \"%s\", \"kiln_isa\": \"%s\", \"op\": \"%s\", \"results\": [",
        config.c_str(), openblas_get_corename(), coretype != nullptr ? coretype : "",
        std::getenv("OPENBLAS_THREAD_TIMEOUT"), kiln::GemmIsaName(options.isa), op.c_str());
    for (size_t i = 0; i < results.size(); ++i) {
      const Result& r = results[i];
      std::printf(
          "%s\n  {\"m\": %lld, \"n\": %lld, \"k\": %lld, \"threads\": %d, \"reps\": %d, "
          "\"kiln_gflops\": %.2f, \"kiln_gflops_median\": %.2f, \"openblas_gflops\": %.2f, "
          "\"openblas_gflops_median\": %.2f, \"ratio\": %.3f, \"max_rel_diff\": %.3g}",
          i == 0 ? "" : ",", static_cast<long long>(r.shape.m), static_cast<long long>(r.shape.n),
          static_cast<long long>(r.shape.k), r.threads, r.reps, r.kiln_best, r.kiln_median, r.blas_best, r.blas_median,
          r.kiln_best / r.blas_best, r.max_rel_diff);
    }
    std::printf("\n]}\n");
  }
  if (!agree) {
    std::fprintf(stderr, "gemm_bench: kiln and OpenBLAS disagree (relative difference >= 1e-4)\n");
    return 1;
  }
  return 0;
}
