#include "runtime/thread_pool.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <exception>
#include <string>
#include <system_error>

#include "runtime/error.h"

namespace kiln {
namespace {

// Waking a sleeping thread takes tens of microseconds (more in VMs), as long as a whole
// small kernel. So a thread that runs out of work first polls for this long, yielding
// the core, and only then sleeps: back-to-back kernels never wait for a wake-up, and an
// idle pool costs nothing after the first fraction of a millisecond.
constexpr auto kSpinTime = std::chrono::microseconds(200);

// Polls `ready` for up to kSpinTime; whether it became true.
template <class Ready>
bool SpinUntil(const Ready& ready) {
  const auto deadline = std::chrono::steady_clock::now() + kSpinTime;
  do {
    if (ready()) return true;
    std::this_thread::yield();
  } while (std::chrono::steady_clock::now() < deadline);
  return ready();
}

int PoolSize(int threads) {
  if (threads < 0 || threads > kMaxThreads) {
    throw Error("a thread pool needs 1 to " + std::to_string(kMaxThreads) + " threads (or 0 for all cores), given " +
                std::to_string(threads));
  }
  const int hardware = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  return threads > 0 ? threads : std::min(hardware, kMaxThreads);
}

}  // namespace

struct ThreadPool::Job {
  const std::function<void(int64_t, int64_t)>* fn = nullptr;
  int64_t extent = 0;
  int64_t ranges = 0;
  std::atomic<int64_t> next{0};     // the next range to hand out
  std::atomic<int64_t> pending{0};  // ranges not finished (or skipped) yet
  std::atomic<bool> failed{false};
  std::mutex mutex;  // guards `error`; taken to notify `finished`
  std::condition_variable finished;
  std::exception_ptr error;

  // Runs ranges until none are left to take.
  void Work() {
    for (int64_t r = next.fetch_add(1); r < ranges; r = next.fetch_add(1)) {
      if (!failed.load(std::memory_order_relaxed)) {
        // Range r of `ranges` near-equal ones: the first extent % ranges are one longer.
        const int64_t base = extent / ranges;
        const int64_t extra = extent % ranges;
        const int64_t begin = r * base + std::min(r, extra);
        const int64_t end = begin + base + (r < extra ? 1 : 0);
        try {
          (*fn)(begin, end);
        } catch (...) {
          const std::lock_guard<std::mutex> lock(mutex);
          if (!error) error = std::current_exception();
          failed.store(true, std::memory_order_relaxed);
        }
      }
      if (pending.fetch_sub(1, std::memory_order_acq_rel) == 1) {
        const std::lock_guard<std::mutex> lock(mutex);
        finished.notify_all();
      }
    }
  }

  // Waits for the ranges other threads took, then rethrows fn's first exception.
  void Wait() {
    const auto done = [this] { return pending.load(std::memory_order_acquire) == 0; };
    std::unique_lock<std::mutex> lock(mutex, std::defer_lock);
    if (!SpinUntil(done)) {
      lock.lock();
      finished.wait(lock, done);
    }
    if (error) std::rethrow_exception(error);
  }
};

ThreadPool::ThreadPool(int threads) : size_(PoolSize(threads)) {
  workers_.reserve(static_cast<size_t>(size_ - 1));
  try {
    for (int i = 1; i < size_; ++i) workers_.emplace_back([this] { WorkerLoop(); });
  } catch (const std::system_error& e) {
    // Out of threads or address space: stop the workers already started (a joinable
    // std::thread destroyed would call std::terminate) and say so.
    const size_t started = workers_.size();
    StopWorkers();
    throw Error("cannot start " + std::to_string(size_) + " threads (started " + std::to_string(started + 1) +
                "): " + e.what() + "; use fewer threads");
  }
}

ThreadPool::~ThreadPool() {
  StopWorkers();
}

void ThreadPool::StopWorkers() {
  {
    const std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  for (auto& worker : workers_) worker.join();
  workers_.clear();
}

void ThreadPool::WorkerLoop() {
  for (;;) {
    SpinUntil([this] { return queued_.load(std::memory_order_relaxed) > 0; });
    std::shared_ptr<Job> job;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      wake_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stopping, and nothing left to help with
      job = std::move(queue_.front());
      queue_.pop_front();
      queued_.store(static_cast<int64_t>(queue_.size()), std::memory_order_relaxed);
    }
    job->Work();
  }
}

void ThreadPool::ParallelFor(int64_t extent, const std::function<void(int64_t begin, int64_t end)>& fn) {
  if (extent <= 0) return;
  const int64_t ranges = std::min<int64_t>(extent, size_);
  if (ranges == 1) {
    fn(0, extent);
    return;
  }
  // Shared with the workers: one may still hold it (finding no range left) after this
  // call has returned.
  const auto job = std::make_shared<Job>();
  job->fn = &fn;
  job->extent = extent;
  job->ranges = ranges;
  job->pending.store(ranges, std::memory_order_relaxed);
  {
    const std::lock_guard<std::mutex> lock(mutex_);
    for (int64_t i = 1; i < ranges; ++i) queue_.push_back(job);
    queued_.store(static_cast<int64_t>(queue_.size()), std::memory_order_relaxed);
  }
  for (int64_t i = 1; i < ranges; ++i) wake_.notify_one();
  job->Work();
  job->Wait();
}

ThreadPool& DefaultThreadPool() {
  static ThreadPool pool([] {
    const char* value = std::getenv("KILN_NUM_THREADS");
    if (value == nullptr || *value == '\0') return 0;
    char* end = nullptr;
    const long threads = std::strtol(value, &end, 10);
    if (*end != '\0' || threads <= 0 || threads > kMaxThreads) {
      throw Error("KILN_NUM_THREADS must be an integer from 1 to " + std::to_string(kMaxThreads) + ", given '" +
                  Abbreviate(value) + "'");
    }
    return static_cast<int>(threads);
  }());
  return pool;
}

}  // namespace kiln
