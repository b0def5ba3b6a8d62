// A fixed set of worker threads for kernels' parallel loops. A thread that runs out of
// work polls (yielding its core) for 0.2 ms before it sleeps on a condition variable:
// back-to-back kernels skip the tens of microseconds a wake-up takes, and an idle pool
// uses no CPU.
//
//   ThreadPool pool(4);  // 3 workers plus the thread that calls ParallelFor
//   pool.ParallelFor(rows, [&](int64_t begin, int64_t end) { ... rows [begin, end) ... });
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

namespace kiln {

// The most threads a pool (or KILN_NUM_THREADS, or --threads) may ask for.
inline constexpr int kMaxThreads = 1024;

class ThreadPool {
 public:
  // `threads` runs work, the calling thread counted: threads - 1 workers are started.
  // 0 means one per hardware thread. Counts outside 0..kMaxThreads, and threads the
  // system cannot start, throw kiln::Error.
  explicit ThreadPool(int threads = 0);
  // Joins the workers; no ParallelFor may still be running.
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return size_; }

  // Calls fn(begin, end) on contiguous ranges that cover [0, extent) exactly once, at
  // most size() of them, on the workers and the calling thread, and returns when all
  // are done. Safe to call from several threads at once (also from inside fn): each
  // call waits only for its own ranges, and its caller runs any that no worker has
  // taken. If fn throws, ranges not yet started are skipped and the first exception is
  // rethrown here once the running ones finish.
  void ParallelFor(int64_t extent, const std::function<void(int64_t begin, int64_t end)>& fn);

 private:
  struct Job;

  void WorkerLoop();
  void StopWorkers();

  const int size_;
  std::mutex mutex_;
  std::condition_variable wake_;
  // One entry per worker a job could use; a worker runs that job's ranges until none
  // are left, so entries of finished jobs are just dropped.
  std::deque<std::shared_ptr<Job>> queue_;
  std::atomic<int64_t> queued_{0};  // queue_.size(), for polling without the lock
  bool stopping_ = false;
  std::vector<std::thread> workers_;
};

// The process-wide pool: KILN_NUM_THREADS threads if set, else one per hardware
// thread. Created on first use; throws kiln::Error if KILN_NUM_THREADS is not a
// positive integer.
ThreadPool& DefaultThreadPool();

}  // namespace kiln
