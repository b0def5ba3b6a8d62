// kiln::ThreadPool: ranges, concurrent and nested callers, exceptions, idling.
#include "runtime/thread_pool.h"

#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <mutex>
#include <stdexcept>
#include <thread>
#include <utility>
#include <vector>

#include "runtime/error.h"

using namespace kiln;

namespace {

// The ranges one ParallelFor hands out, sorted.
std::vector<std::pair<int64_t, int64_t>> Ranges(ThreadPool& pool, int64_t extent) {
  std::mutex mutex;
  std::vector<std::pair<int64_t, int64_t>> ranges;
  pool.ParallelFor(extent, [&](int64_t begin, int64_t end) {
    const std::lock_guard<std::mutex> lock(mutex);
    ranges.emplace_back(begin, end);
  });
  std::sort(ranges.begin(), ranges.end());
  return ranges;
}

double ProcessCpuSeconds() {
  timespec t{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_nsec) * 1e-9;
}

}  // namespace

TEST_CASE("a pool has the threads it was asked for", "[thread_pool]") {
  CHECK(ThreadPool(1).size() == 1);
  CHECK(ThreadPool(3).size() == 3);
  CHECK(ThreadPool(0).size() == static_cast<int>(std::max(1u, std::thread::hardware_concurrency())));
  CHECK(ThreadPool().size() == ThreadPool(0).size());
  CHECK_THROWS_AS(ThreadPool(-1), Error);
}

TEST_CASE("ParallelFor covers [0, extent) once with at most size() contiguous ranges", "[thread_pool]") {
  for (const int threads : {1, 2, 3, 8}) {
    ThreadPool pool(threads);
    for (const int64_t extent : {0, 1, 2, 3, 7, 8, 100, 1001}) {
      INFO("threads " << threads << ", extent " << extent);
      const auto ranges = Ranges(pool, extent);
      CHECK(static_cast<int64_t>(ranges.size()) == std::min<int64_t>(extent, threads));
      int64_t next = 0, shortest = extent, longest = 0;
      for (const auto& [begin, end] : ranges) {
        CHECK(begin == next);
        CHECK(end > begin);
        shortest = std::min(shortest, end - begin);
        longest = std::max(longest, end - begin);
        next = end;
      }
      CHECK(next == extent);
      if (!ranges.empty()) CHECK(longest - shortest <= 1);  // balanced
    }
  }
}

TEST_CASE("work runs on the workers too, and a pool of 1 runs it on the caller", "[thread_pool]") {
  ThreadPool single(1);
  std::vector<std::thread::id> ids;
  single.ParallelFor(5, [&](int64_t, int64_t) { ids.push_back(std::this_thread::get_id()); });
  CHECK(ids == std::vector<std::thread::id>{std::this_thread::get_id()});

  // Two ranges that each wait for the other to start can only finish on two threads.
  ThreadPool pool(2);
  std::atomic<int> started{0};
  pool.ParallelFor(2, [&](int64_t, int64_t) {
    ++started;
    while (started.load() < 2) std::this_thread::yield();
  });
  CHECK(started.load() == 2);
}

TEST_CASE("ParallelFor from many threads at once, and from inside ParallelFor", "[thread_pool]") {
  ThreadPool pool(4);
  constexpr int kCallers = 8;
  constexpr int kCalls = 300;
  std::vector<int64_t> sums(kCallers, 0);
  std::vector<std::thread> callers;
  for (int t = 0; t < kCallers; ++t) {
    callers.emplace_back([&, t] {
      for (int call = 0; call < kCalls; ++call) {
        const int64_t extent = 1 + (t * 37 + call * 11) % 50;
        std::atomic<int64_t> sum{0};
        pool.ParallelFor(extent, [&](int64_t begin, int64_t end) {
          for (int64_t i = begin; i < end; ++i) sum += i + 1;
          if (call % 10 == 0) {
            // Nested: the inner call must not wait on threads busy with the outer one.
            pool.ParallelFor(3, [&](int64_t b, int64_t e) { sum += 1000 * (e - b); });
          }
        });
        const int64_t ranges = std::min<int64_t>(extent, pool.size());
        const int64_t expected = extent * (extent + 1) / 2 + (call % 10 == 0 ? 3000 * ranges : 0);
        if (sum.load() == expected) ++sums[t];
      }
    });
  }
  for (auto& caller : callers) caller.join();
  CHECK(sums == std::vector<int64_t>(kCallers, kCalls));
}

TEST_CASE("a call waits only for its own ranges", "[thread_pool]") {
  ThreadPool pool(2);
  std::mutex mutex;
  std::condition_variable cv;
  bool release = false;
  int blocked = 0;
  // Blocks both of the pool's threads (the caller's and the worker) until released.
  std::thread first([&] {
    pool.ParallelFor(2, [&](int64_t, int64_t) {
      std::unique_lock<std::mutex> lock(mutex);
      ++blocked;
      cv.notify_all();
      cv.wait(lock, [&] { return release; });
    });
  });
  {
    std::unique_lock<std::mutex> lock(mutex);
    cv.wait(lock, [&] { return blocked == 2; });
  }
  // No worker is free: this caller runs both of its ranges itself.
  std::atomic<int64_t> sum{0};
  pool.ParallelFor(10, [&](int64_t begin, int64_t end) { sum += end - begin; });
  CHECK(sum.load() == 10);
  {
    const std::lock_guard<std::mutex> lock(mutex);
    release = true;
  }
  cv.notify_all();
  first.join();
}

TEST_CASE("exceptions thrown by the work reach the caller", "[thread_pool]") {
  for (const int threads : {1, 2, 4}) {
    ThreadPool pool(threads);
    INFO("threads " << threads);
    CHECK_THROWS_WITH(pool.ParallelFor(100,
                                       [](int64_t begin, int64_t end) {
                                         if (begin <= 60 && 60 < end) throw std::runtime_error("range with 60");
                                       }),
                      "range with 60");
    // Every range throws: one of the exceptions comes back.
    CHECK_THROWS_AS(pool.ParallelFor(8, [](int64_t, int64_t) { throw Error("all"); }), Error);
    // The pool still works afterwards.
    std::atomic<int64_t> sum{0};
    pool.ParallelFor(100, [&](int64_t begin, int64_t end) { sum += end - begin; });
    CHECK(sum.load() == 100);
  }
}

TEST_CASE("an idle pool does not burn CPU", "[thread_pool]") {
  ThreadPool pool(4);
  pool.ParallelFor(4, [](int64_t, int64_t) {});
  std::this_thread::sleep_for(std::chrono::milliseconds(50));  // past the polling window
  const double before = ProcessCpuSeconds();
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  // Three spinning workers would use 0.9 s here.
  CHECK(ProcessCpuSeconds() - before < 0.05);
}

TEST_CASE("the default pool takes its size from KILN_NUM_THREADS", "[thread_pool]") {
  // The first (and only) use of the default pool in this binary.
  ::setenv("KILN_NUM_THREADS", "3", 1);
  CHECK(DefaultThreadPool().size() == 3);
  CHECK(&DefaultThreadPool() == &DefaultThreadPool());
}

TEST_CASE("thread counts are validated and failures to start threads are errors", "[threads][regression]") {
  CHECK_THROWS_WITH(ThreadPool(-1), Catch::Contains("1 to 1024 threads"));
  CHECK_THROWS_WITH(ThreadPool(100000), Catch::Contains("given 100000"));
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
  return;  // sanitizers reserve terabytes of address space: no limit can be set
#endif
  // Under a small address-space limit thread stacks cannot all be mapped: an error, not
  // std::terminate. Run in a child so the limit does not touch the test process.
  const pid_t child = ::fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    rlimit limit{size_t{512} << 20, size_t{512} << 20};
    ::setrlimit(RLIMIT_AS, &limit);
    try {
      ThreadPool pool(1000);
      ::_exit(pool.size() == 1000 ? 3 : 4);  // the limit did not bite: inconclusive
    } catch (const Error& e) {
      ::_exit(std::string(e.what()).find("cannot start 1000 threads") != std::string::npos ? 0 : 1);
    } catch (...) {
      ::_exit(2);
    }
  }
  int status = 0;
  ::waitpid(child, &status, 0);
  REQUIRE(WIFEXITED(status));
  CHECK((WEXITSTATUS(status) == 0 || WEXITSTATUS(status) == 3));
}
