// The NDArray API's costs (ndarray/): the dispatch of a cached operator call, the first
// call's compile time, and the seed's hand-written MLP training loop (autograd, SGD by
// hand). Prints one JSON object; tools/bench/bench_ndarray.py runs the same work in
// MXNet 1.9.1 and PyTorch beside it.
//
//   bazel build --config=opt //tools/bench:ndarray_bench
//   bazel-bin/tools/bench/ndarray_bench --calls 10000 --mlp-steps 200 --mode lazy
//
// Dispatch: `--calls` calls of elemwise_add, relu and dot on 8x8 and 256x256 float32
// arrays, each running its kernel (eager mode), after one warm-up call.
// First call: a new shape with the in-memory kernel cache empty and no disk cache.
// MLP: 784 -> 256 (relu) -> 10, batch 64, log-softmax cross-entropy against one-hot
// labels, recorded forward, Backward, then p[:] = p - lr * grad for W1, b1, W2, b2, in
// `--mode` (lazy: the updates are deferred and fused; eager: every call runs at once).
// With --cache-dir the MLP loop's kernels also go to (and come from) that on-disk cache.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <string>
#include <vector>

#include "ndarray/autograd.h"
#include "ndarray/invoke.h"
#include "ndarray/lazy.h"
#include "ndarray/ops_api.h"
#include "runtime/error.h"

namespace {

using namespace kiln;
using Clock = std::chrono::steady_clock;

double Seconds(Clock::time_point since) {
  return std::chrono::duration<double>(Clock::now() - since).count();
}

nd::NDArray Call(const std::string& op, const nd::NDArray& a, const nd::NDArray& b) {
  if (op == "add") return nd::elemwise_add(a, b);
  if (op == "relu") return nd::relu(a);
  return nd::dot(a, b);
}

double MicrosecondsPerCall(const std::string& op, int64_t size, int calls) {
  const nd::NDArray a = nd::random::uniform(-1, 1, {size, size}, 1);
  const nd::NDArray b = nd::random::uniform(-1, 1, {size, size}, 2);
  Call(op, a, b).WaitToRead();
  const auto start = Clock::now();
  for (int i = 0; i < calls; ++i) Call(op, a, b);
  return Seconds(start) * 1e6 / calls;
}

double FirstCallMilliseconds(const std::string& op) {
  nd::ClearKernelCache();
  const nd::NDArray a = nd::random::uniform(-1, 1, {7, 13}, 3);
  const nd::NDArray b = nd::random::uniform(-1, 1, {13, 7}, 4);
  const auto start = Clock::now();
  Call(op, a, op == "dot" ? b : a).WaitToRead();
  return Seconds(start) * 1e3;
}

struct MlpResult {
  double ms_per_step = 0;
  double first_loss = 0, last_loss = 0;
};

MlpResult TrainMlp(int steps) {
  constexpr int64_t kBatch = 64, kIn = 784, kHidden = 256, kClasses = 10;
  const nd::NDArray x = nd::random::uniform(0, 1, {kBatch, kIn}, 11);
  std::vector<float> labels(kBatch * kClasses, 0.0f);
  for (int64_t i = 0; i < kBatch; ++i) labels[i * kClasses + i % kClasses] = 1.0f;
  const nd::NDArray y = nd::array(labels, {kBatch, kClasses});
  std::vector<nd::NDArray> params = {nd::random::normal(0, 0.01, {kIn, kHidden}, 12), nd::zeros({kHidden}),
                                     nd::random::normal(0, 0.01, {kHidden, kClasses}, 13), nd::zeros({kClasses})};
  for (nd::NDArray& p : params) p.AttachGrad();
  const double lr = 0.1;
  MlpResult result;
  const auto step = [&] {
    nd::NDArray loss;
    {
      const nd::autograd::Record record;
      const nd::NDArray hidden = nd::relu(nd::broadcast_add(nd::dot(x, params[0]), params[1]));
      const nd::NDArray out = nd::broadcast_add(nd::dot(hidden, params[2]), params[3]);
      loss = nd::sum(nd::log_softmax(out) * y) * (-1.0 / kBatch);
    }
    loss.Backward();
    for (nd::NDArray& p : params) p.Assign(p - p.Grad() * lr);
    return loss;
  };
  result.first_loss = step().AsScalar<double>();
  const auto start = Clock::now();
  nd::NDArray loss;
  for (int s = 0; s < steps; ++s) loss = step();
  result.last_loss = loss.AsScalar<double>();
  result.ms_per_step = Seconds(start) * 1e3 / steps;
  return result;
}

}  // namespace

int main(int argc, char** argv) {
  int calls = 10000, mlp_steps = 200, threads = 1;
  std::string mode = "lazy", cache_dir;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    const auto next = [&]() -> std::string {
      if (i + 1 >= argc) throw kiln::Error(arg + " needs a value");
      return argv[++i];
    };
    if (arg == "--calls") {
      calls = std::stoi(next());
    } else if (arg == "--mlp-steps") {
      mlp_steps = std::stoi(next());
    } else if (arg == "--threads") {
      threads = std::stoi(next());
    } else if (arg == "--mode") {
      mode = next();
    } else if (arg == "--cache-dir") {
      cache_dir = next();
    } else {
      std::fprintf(stderr,
                   "usage: ndarray_bench [--calls N] [--mlp-steps N] [--threads T] [--mode lazy|eager] "
                   "[--cache-dir DIR]\n");
      return 2;
    }
  }
  try {
    // The executors' shared pool reads it when first used.
    setenv("KILN_NUM_THREADS", std::to_string(threads).c_str(), 1);
    // The MLP loop first, in a fresh process (the dispatch runs' large allocations change
    // how the allocator serves later ones).
    std::string mlp_json;
    {
      const nd::lazy::ModeScope chosen(mode == "lazy");
      nd::SetCacheDir(cache_dir);  // the MLP loop's kernels: on disk too with --cache-dir
      nd::ClearKernelCache();
      const MlpResult mlp = TrainMlp(mlp_steps);
      const nd::KernelCacheStats stats = nd::GetKernelCacheStats();
      mlp_json = "\"mlp\": {\"steps\": " + std::to_string(mlp_steps) +
                 ", \"ms_per_step\": " + std::to_string(mlp.ms_per_step) +
                 ", \"first_loss\": " + std::to_string(mlp.first_loss) +
                 ", \"last_loss\": " + std::to_string(mlp.last_loss) +
                 ", \"kernel_cache\": {\"hits\": " + std::to_string(stats.hits) +
                 ", \"compiles\": " + std::to_string(stats.compiles) +
                 ", \"disk_hits\": " + std::to_string(stats.disk_hits) + "}}";
      nd::SetCacheDir("");
    }
    std::string json = "{\"mode\": \"" + mode + "\", \"threads\": " + std::to_string(threads) + ", \"dispatch\": [";
    {
      const nd::lazy::ModeScope eager(false);
      bool first = true;
      for (const char* op : {"add", "relu", "dot"}) {
        for (const int64_t size : {8, 256}) {
          const double us = MicrosecondsPerCall(op, size, size == 256 && std::string(op) == "dot" ? calls / 10 : calls);
          json += std::string(first ? "" : ", ") + "{\"op\": \"" + op + "\", \"size\": " + std::to_string(size) +
                  ", \"us_per_call\": " + std::to_string(us) + "}";
          first = false;
        }
      }
      json += "], \"first_call_ms\": {";
      first = true;
      for (const char* op : {"add", "relu", "dot"}) {
        json += std::string(first ? "" : ", ") + "\"" + op + "\": " + std::to_string(FirstCallMilliseconds(op));
        first = false;
      }
    }
    json += "}, " + mlp_json + "}";
    std::printf("%s\n", json.c_str());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "ndarray_bench: %s\n", e.what());
    return 1;
  }
  return 0;
}
