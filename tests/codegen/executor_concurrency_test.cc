// One executor serving many threads at once, as a server uses it: 8 caller threads,
// thousands of calls, different inputs per thread, results bit-identical to one caller,
// memory flat once every thread has run. Part of the ThreadSanitizer run
// (tools/test.sh --config=tsan, docs/RELIABILITY.md).
#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <cstdio>
#include <fstream>
#include <thread>
#include <vector>

#include "codegen/compiler.h"
#include "runtime/artifact.h"
#include "runtime/executor.h"
#include "tests/op_test_util.h"
#include "tests/test_models.h"

using namespace kiln;
using namespace kiln::testing;

namespace {

#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
constexpr bool kSanitized = true;
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer) || __has_feature(address_sanitizer)
constexpr bool kSanitized = true;
#else
constexpr bool kSanitized = false;
#endif
#else
constexpr bool kSanitized = false;
#endif

int64_t ResidentBytes() {
  std::ifstream statm("/proc/self/statm");
  int64_t pages = 0;
  int64_t resident = 0;
  statm >> pages >> resident;
  return resident * ::sysconf(_SC_PAGESIZE);
}

struct Load {
  int threads = 8;
  int calls_per_thread = 0;
  int inputs_per_thread = 4;
};

// Every caller thread runs its own inputs `calls_per_thread` times; each result must be
// bit-identical to what a single caller got for the same input before.
void Hammer(const Executor& executor, const Shape& input_shape, const Load& load) {
  const std::string& input = executor.inputs().at(0).name;
  std::vector<std::vector<Tensor>> inputs(load.threads);
  std::vector<std::vector<Tensor>> expected(load.threads);
  for (int t = 0; t < load.threads; ++t) {
    for (int i = 0; i < load.inputs_per_thread; ++i) {
      inputs[t].push_back(RandomTensor(input_shape, 1000 * t + i, -1, 1));
      expected[t].push_back(executor.Run({{input, inputs[t].back()}})[0]);
    }
  }
  const auto run_all = [&](int calls) {
    std::atomic<int> mismatches{0};
    std::atomic<int> failures{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < load.threads; ++t) {
      threads.emplace_back([&, t] {
        try {
          for (int call = 0; call < calls; ++call) {
            const int i = (call + t) % load.inputs_per_thread;
            if (!executor.Run({{input, inputs[t][i]}})[0].BitwiseEquals(expected[t][i])) ++mismatches;
          }
        } catch (...) {
          ++failures;
        }
      });
    }
    for (auto& thread : threads) thread.join();
    CHECK(mismatches == 0);
    CHECK(failures == 0);
  };
  run_all(load.inputs_per_thread);  // warm up: every thread has run, every arena exists
  const int64_t warm = ResidentBytes();
  run_all(load.calls_per_thread);
  const int64_t after = ResidentBytes();
  INFO("resident memory warm " << warm / 1024 << " KiB, after " << after / 1024 << " KiB");
  // Flat: no growth per call (a leak of one output per call would be megabytes here).
  // Sanitizers keep freed memory in quarantine, so the figure means nothing there.
  if (!kSanitized) CHECK(after - warm < 8 * 1024 * 1024);
}

}  // namespace

TEST_CASE("8 threads, 4000 MLP calls on one executor: bit-identical, memory flat", "[threads][concurrency]") {
  const Graph graph = WithRandomParams(TestMlp(64), {{"data", {4, 100}}}, 11);
  CompileOptions options;
  options.input_shapes = {{"data", {4, 100}}};
  for (const int pool_threads : {1, 2}) {
    ExecutorOptions executor_options;
    executor_options.threads = pool_threads;
    const auto executor = CompileJit(graph, options, executor_options);
    Hammer(*executor, {4, 100}, {.threads = 8, .calls_per_thread = kSanitized ? 100 : 500});
  }
}

TEST_CASE("8 threads, 1200 LeNet calls on one executor with a shared pool", "[threads][concurrency]") {
  const Graph graph = WithRandomParams(TestLeNet(), {{"data", {2, 1, 28, 28}}}, 12);
  CompileOptions options;
  options.input_shapes = {{"data", {2, 1, 28, 28}}};
  ExecutorOptions executor_options;
  executor_options.threads = 2;
  executor_options.max_idle_arenas = 3;  // more callers than idle arenas: arenas come and go
  const auto executor = CompileJit(graph, options, executor_options);
  Hammer(*executor, {2, 1, 28, 28}, {.threads = 8, .calls_per_thread = kSanitized ? 20 : 150});
}

TEST_CASE("kernels compiled by LLVM in parallel modules link into one working artifact", "[threads][concurrency]") {
  // CompileSharedObject deals LeNet's kernels out to one LLVM context per thread; the
  // linked object must export every kernel and compute what the JIT's single module does.
  const Graph graph = WithRandomParams(TestLeNet(), {{"data", {3, 1, 28, 28}}}, 23);
  CompileOptions options;
  options.input_shapes = {{"data", {3, 1, 28, 28}}};
  const Tensor data = RandomTensor({3, 1, 28, 28}, 24, 0, 1);
  const auto jit = CompileJit(graph, options);
  const std::string path = "/tmp/kiln_parallel_compile_" + std::to_string(::getpid()) + ".kiln";
  for (int round = 0; round < 3; ++round) {
    SaveArtifact(path, CompileGraph(graph, options));
    const auto aot = Executor::Load(path);
    CHECK(aot->num_kernels() == jit->num_kernels());
    KILN_CHECK_CLOSE(aot->Run({{"data", data}})[0], jit->Run({{"data", data}})[0], 1e-6, 1e-7);
  }
  std::remove(path.c_str());
}
