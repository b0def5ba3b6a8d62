// NDArray calls from several threads at once (run under ThreadSanitizer by
// `tools/test.sh --config=tsan`): each thread's table of calls and the shared kernel cache
// give every thread the right results, also while another thread clears the cache, and
// autograd's recording state is per thread.
#include <catch2/catch.hpp>
#include <thread>
#include <vector>

#include "ndarray/autograd.h"
#include "ndarray/invoke.h"
#include "ndarray/ndarray.h"
#include "ndarray/ops_api.h"

using namespace kiln;

TEST_CASE("operator calls from four threads, with the cache cleared meanwhile, give each its results",
          "[ndarray][concurrency]") {
  nd::SetCacheDir("");  // in memory only: the test must not touch the user's cache
  constexpr int kThreads = 4;
  constexpr int kCalls = 200;
  std::vector<int> wrong(kThreads, 0);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([t, &wrong] {
      const nd::NDArray x = nd::full({3, 5}, static_cast<double>(t + 1));
      for (int i = 0; i < kCalls; ++i) {
        // Two shapes per thread: both hit and miss paths of the per-thread table.
        const nd::NDArray y = (i % 2 == 0) ? x * 2.0 + x : nd::relu(x - 10.0);
        const double expected = (i % 2 == 0) ? 3.0 * (t + 1) : 0.0;
        if (y.ToTensor().GetDouble(7) != expected) ++wrong[t];
      }
    });
  }
  for (int i = 0; i < 20; ++i) nd::ClearKernelCache();
  for (auto& thread : threads) thread.join();
  for (int t = 0; t < kThreads; ++t) CHECK(wrong[t] == 0);
}

TEST_CASE("each thread records and differentiates its own computation", "[ndarray][concurrency]") {
  nd::SetCacheDir("");
  std::vector<double> grads(4, 0);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([t, &grads] {
      nd::NDArray x = nd::full({2, 2}, static_cast<double>(t));
      x.AttachGrad();
      nd::NDArray y;
      {
        nd::autograd::Record record;
        y = x * x;
      }
      y.Backward();
      grads[t] = x.Grad().ToTensor().GetDouble(0);  // 2x
    });
  }
  for (auto& thread : threads) thread.join();
  for (int t = 0; t < 4; ++t) CHECK(grads[t] == 2.0 * t);
}
