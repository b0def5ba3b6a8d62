#include "serve/dynamic_batcher.h"

#include <fmt/format.h>

#include <algorithm>
#include <climits>
#include <cstring>

#include "runtime/error.h"
#include "serve/protocol.h"

namespace kiln::serve {

namespace {

// Bytes of one row (axis 0) of a tensor.
size_t RowBytes(const Tensor& tensor) {
  return tensor.shape().empty() || tensor.shape()[0] == 0 ? 0 : tensor.nbytes() / tensor.shape()[0];
}

}  // namespace

DynamicBatcher::DynamicBatcher(const Executor& executor, ExecutionSlots& slots, BatchingOptions options,
                               BatchObserver observer)
    : executor_(executor), slots_(slots), options_(std::move(options)), observer_(std::move(observer)) {
  const std::vector<int64_t>& sizes = executor_.batch_sizes();
  if (sizes.empty()) throw Error("dynamic batching needs an artifact compiled with --batch-sizes");
  max_batch_size_ = options_.max_batch_size > 0 ? std::min(options_.max_batch_size, sizes.back()) : sizes.back();
  for (int i = 0; i < std::max(1, options_.workers); ++i) workers_.emplace_back([this] { Work(); });
}

DynamicBatcher::~DynamicBatcher() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  arrived_.notify_all();
  for (std::thread& worker : workers_) worker.join();
}

DynamicBatcher::Result DynamicBatcher::Infer(std::vector<Tensor> inputs) {
  const int64_t rows = inputs.empty() || inputs[0].shape().empty() ? 0 : inputs[0].shape()[0];
  if (rows < 1 || rows > max_batch_size_) {
    throw ProtocolError(400,
                        fmt::format("a request of {} rows (axis 0); the model takes 1 to {}", rows, max_batch_size_));
  }
  const auto& specs = executor_.inputs();
  for (size_t i = 0; i < inputs.size(); ++i) {
    if (inputs[i].shape().empty() || inputs[i].shape()[0] != rows) {
      throw ProtocolError(400, fmt::format("input '{}' has {} rows (axis 0), input '{}' {}: a request's inputs "
                                           "share their batch size",
                                           i < specs.size() ? specs[i].name : "?",
                                           inputs[i].shape().empty() ? 0 : inputs[i].shape()[0], specs[0].name, rows));
    }
  }
  auto pending = std::make_unique<Pending>();
  pending->inputs = std::move(inputs);
  pending->rows = rows;
  pending->arrived = SteadyClock::now();
  std::future<Result> result = pending->done.get_future();
  // Nothing waiting, no delay asked for, and a slot free: the request runs on this thread
  // at once (handing it to a worker cost 20 us a request at low load).
  bool inline_run = false;
  {
    std::lock_guard lock(mutex_);
    inline_run = queue_.empty() && options_.max_queue_delay.count() == 0 &&
                 slots_.Acquire(0, std::chrono::milliseconds(0)) == ExecutionSlots::Outcome::kGranted;
  }
  if (inline_run) {
    const SlotGuard slot(slots_);
    std::vector<std::unique_ptr<Pending>> batch;
    batch.push_back(std::move(pending));
    RunBatch(std::move(batch));
    return result.get();
  }
  {
    std::lock_guard lock(mutex_);
    if (static_cast<int>(queue_.size()) >= options_.max_queue) {
      throw ProtocolError(
          503, fmt::format("the model's batching queue is full ({} requests waiting): retry later", queue_.size()));
    }
    queued_rows_ += rows;
    queue_.push_back(std::move(pending));
  }
  arrived_.notify_one();
  return result.get();
}

void DynamicBatcher::Work() {
  for (;;) {
    {
      std::unique_lock lock(mutex_);
      arrived_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stopping, and nothing left to run
    }
    // A slot first: while every slot is busy the queue grows, and the batch with it.
    while (slots_.Acquire(INT_MAX, std::chrono::hours(1)) != ExecutionSlots::Outcome::kGranted) {
    }
    const SlotGuard slot(slots_);
    std::vector<std::unique_ptr<Pending>> batch;
    {
      std::unique_lock lock(mutex_);
      if (!queue_.empty() && queued_rows_ < max_batch_size_ && options_.max_queue_delay.count() > 0) {
        const SteadyClock::time_point deadline = queue_.front()->arrived + options_.max_queue_delay;
        arrived_.wait_until(lock, deadline, [&] { return stopping_ || queued_rows_ >= max_batch_size_; });
      }
      batch = TakeBatch();
    }
    if (!batch.empty()) RunBatch(std::move(batch));
  }
}

std::vector<std::unique_ptr<DynamicBatcher::Pending>> DynamicBatcher::TakeBatch() {
  // Requests past their timeout are answered, wherever they are in the queue.
  const SteadyClock::time_point now = SteadyClock::now();
  for (auto it = queue_.begin(); it != queue_.end();) {
    if (now - (*it)->arrived <= options_.queue_timeout) {
      ++it;
      continue;
    }
    (*it)->done.set_exception(std::make_exception_ptr(ProtocolError(
        503, fmt::format("not run within {} ms (--queue-timeout-ms): retry later", options_.queue_timeout.count()))));
    queued_rows_ -= (*it)->rows;
    it = queue_.erase(it);
  }
  // The longest run of requests from the front that fits; but where its rows are not a
  // batch size, the longest run whose rows are one, when it holds at least half as many:
  // padding computes rows nobody asked for, and what is left runs next (on this machine
  // ResNet-18 costs about the same per image at every batch size).
  const std::vector<int64_t>& sizes = executor_.batch_sizes();
  const auto is_size = [&](int64_t rows) { return std::binary_search(sizes.begin(), sizes.end(), rows); };
  size_t take = 0, exact = 0;
  int64_t rows = 0, exact_rows = 0;
  while (take < queue_.size() && rows + queue_[take]->rows <= max_batch_size_) {
    rows += queue_[take++]->rows;
    if (is_size(rows)) exact = take, exact_rows = rows;
  }
  if (!is_size(rows) && exact > 0 && 2 * exact_rows >= rows) take = exact;
  std::vector<std::unique_ptr<Pending>> batch;
  for (size_t i = 0; i < take; ++i) {
    queued_rows_ -= queue_.front()->rows;
    batch.push_back(std::move(queue_.front()));
    queue_.pop_front();
  }
  // Another worker may take what is left at once.
  if (!queue_.empty()) arrived_.notify_one();
  return batch;
}

void DynamicBatcher::RunBatch(std::vector<std::unique_ptr<Pending>> batch) {
  const SteadyClock::time_point start = SteadyClock::now();
  int64_t rows = 0;
  for (const auto& pending : batch) rows += pending->rows;
  try {
    const std::vector<int64_t>& sizes = executor_.batch_sizes();
    const int64_t batch_size = *std::lower_bound(sizes.begin(), sizes.end(), rows);
    const Executor& specialized = executor_.ForBatch(batch_size);
    // One request that fills the batch runs on its own tensors, answered with the outputs.
    const bool alone = batch.size() == 1 && rows == batch_size;
    std::vector<Tensor> outputs;
    if (alone) {
      outputs = specialized.Run(batch.front()->inputs);
    } else {
      // The requests' rows one after another, zeros after them.
      std::vector<Tensor> inputs;
      for (size_t i = 0; i < specialized.inputs().size(); ++i) {
        const TensorSpec& spec = specialized.inputs()[i];
        Tensor joined(spec.shape, spec.dtype);
        size_t offset = 0;
        for (const auto& pending : batch) {
          const Tensor& part = pending->inputs[i];
          std::memcpy(static_cast<char*>(joined.data()) + offset, part.data(), part.nbytes());
          offset += part.nbytes();
        }
        inputs.push_back(std::move(joined));
      }
      outputs = specialized.Run(inputs);
    }
    const double compute_seconds = SecondsSince(start);
    if (observer_) observer_(rows, batch_size);
    if (alone) {
      batch.front()->done.set_value({std::move(outputs), Seconds(start - batch.front()->arrived), compute_seconds});
      return;
    }
    int64_t first_row = 0;
    for (const auto& pending : batch) {
      Result result{{}, Seconds(start - pending->arrived), compute_seconds};
      for (const Tensor& output : outputs) {
        Shape shape = output.shape();
        shape[0] = pending->rows;
        Tensor part(shape, output.dtype());
        std::memcpy(part.data(), static_cast<const char*>(output.data()) + first_row * RowBytes(output), part.nbytes());
        result.outputs.push_back(std::move(part));
      }
      first_row += pending->rows;
      pending->done.set_value(std::move(result));
    }
  } catch (...) {
    const std::exception_ptr error = std::current_exception();
    for (const auto& pending : batch) {
      try {
        pending->done.set_exception(error);
      } catch (const std::future_error&) {  // answered before the failure
      }
    }
  }
}

}  // namespace kiln::serve
