// Dynamic batching, as Triton's dynamic batcher: concurrent requests for one model
// version wait in a bounded queue; a worker takes an execution slot, gathers queued
// requests up to the maximum batch size (waiting at most the queue delay for more once
// it holds one), runs them as one call of the smallest batch specialization that holds
// them (kiln compile --batch-sizes; zero rows pad the rest), and hands each request its
// rows of the outputs. A request that finds nothing queued and a slot free (with no queue
// delay) runs at once on its own thread. A row's result does not depend on the batch it ran in (the
// compiler's GEMMs sum every row in the same order), so batching changes no output bit.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "runtime/executor.h"
#include "serve/execution_slots.h"
#include "serve/metrics.h"

namespace kiln::serve {

struct BatchingOptions {
  int64_t max_batch_size = 0;  // rows a batch holds at most; 0: the artifact's largest batch size
  std::chrono::microseconds max_queue_delay{0};
  int max_queue = 64;  // requests waiting beyond which Infer refuses (503)
  std::chrono::milliseconds queue_timeout{10000};
  int workers = 1;  // batches of this model run at once (each also takes an execution slot)
};

class DynamicBatcher {
 public:
  struct Result {
    std::vector<Tensor> outputs;  // the request's rows
    double queue_seconds = 0;     // from Infer to the batch's start
    double compute_seconds = 0;   // the batch's run
  };
  // Called after each batch: the rows the requests held and the batch size that ran.
  using BatchObserver = std::function<void(int64_t rows, int64_t batch_size)>;

  // `executor` must have batch specializations (batch_sizes() not empty) and outlive
  // the batcher; `slots` too.
  DynamicBatcher(const Executor& executor, ExecutionSlots& slots, BatchingOptions options, BatchObserver observer);
  // Runs what is queued, then stops the workers.
  ~DynamicBatcher();
  DynamicBatcher(const DynamicBatcher&) = delete;
  DynamicBatcher& operator=(const DynamicBatcher&) = delete;

  // Runs a request of inputs in the executor's order, every one with the same rows on
  // axis 0 (from 1 to max_batch_size()); blocks until its batch has run. Throws
  // ProtocolError 503 when the queue is full or the request waited past the queue
  // timeout, 400 for rows out of range, and what the executor throws.
  Result Infer(std::vector<Tensor> inputs);
  int64_t max_batch_size() const { return max_batch_size_; }

 private:
  struct Pending {
    std::vector<Tensor> inputs;
    int64_t rows = 0;
    SteadyClock::time_point arrived;
    std::promise<Result> done;
  };

  void Work();
  // The batch from the front of the queue (mutex_ held): what fits in max_batch_size_;
  // requests past their timeout are answered 503 instead.
  std::vector<std::unique_ptr<Pending>> TakeBatch();
  void RunBatch(std::vector<std::unique_ptr<Pending>> batch);

  const Executor& executor_;
  ExecutionSlots& slots_;
  const BatchingOptions options_;
  const BatchObserver observer_;
  int64_t max_batch_size_ = 0;
  std::mutex mutex_;
  std::condition_variable arrived_;
  std::deque<std::unique_ptr<Pending>> queue_;
  int64_t queued_rows_ = 0;
  bool stopping_ = false;
  std::vector<std::thread> workers_;
};

}  // namespace kiln::serve
