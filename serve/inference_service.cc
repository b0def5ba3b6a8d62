#include "serve/inference_service.h"

#include <fmt/format.h>

#include <chrono>
#include <thread>

#include "serve/protocol.h"

namespace kiln::serve {

namespace {}  // namespace

InferenceService::InferenceService(ModelRepository& repository, ServerOptions options)
    : repository_(repository), options_(std::move(options)) {
  if (options_.threads <= 0) options_.threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  slots_ = std::make_unique<ExecutionSlots>(options_.threads);
  parse_slots_ = std::make_unique<ExecutionSlots>(options_.threads);
}

std::shared_ptr<const ModelVersion> InferenceService::Find(const std::string& name, const std::string& version) const {
  auto model = repository_.Find(name, version);
  if (!model) {
    throw ProtocolError(404, "model '" + name + (version.empty() ? "" : "' version '" + version) + "' is not served");
  }
  return model;
}

std::vector<TensorSpec> InferenceService::InputSpecs(const ModelVersion& model) {
  return model.batch_sizes().empty() ? model.inputs() : WithVariableBatch(model.inputs());
}

std::vector<TensorSpec> InferenceService::OutputSpecs(const ModelVersion& model) {
  return model.batch_sizes().empty() ? model.outputs() : WithVariableBatch(model.outputs());
}

InferenceService::Outcome InferenceService::Run(const ModelVersion& model, std::vector<Tensor> inputs) {
  const auto arrived = SteadyClock::now();
  if (DynamicBatcher* batcher = BatcherFor(model)) {
    DynamicBatcher::Result result = batcher->Infer(std::move(inputs));
    return {std::move(result.outputs), result.queue_seconds, result.compute_seconds};
  }
  AcquireOrRefuse(*slots_);
  const SlotGuard slot(*slots_);
  Outcome outcome;
  outcome.queue_seconds = SecondsSince(arrived);
  const auto started = SteadyClock::now();
  outcome.outputs = model.Run(inputs);
  outcome.compute_seconds = SecondsSince(started);
  return outcome;
}

void InferenceService::AcquireOrRefuse(ExecutionSlots& slots) {
  // A slot, or a bounded wait in line for one.
  switch (slots.Acquire(options_.max_queue, std::chrono::milliseconds(options_.queue_timeout_ms))) {
    case ExecutionSlots::Outcome::kGranted: return;
    case ExecutionSlots::Outcome::kQueueFull:
      throw ProtocolError(503, fmt::format("the server is at capacity ({} running, {} waiting): retry later",
                                           options_.threads, options_.max_queue));
    case ExecutionSlots::Outcome::kTimedOut:
      throw ProtocolError(503, fmt::format("no execution slot within {} ms (--queue-timeout-ms): retry later",
                                           options_.queue_timeout_ms));
  }
}

DynamicBatcher* InferenceService::BatcherFor(const ModelVersion& model) {
  std::call_once(model.batcher_once, [&] {
    if (model.batch_sizes().empty()) return;
    BatchingOptions batching;
    batching.max_batch_size = options_.max_batch_size;
    batching.max_queue_delay = std::chrono::microseconds(options_.max_queue_delay_us);
    if (model.config) {
      batching.max_batch_size = model.config->max_batch_size();
      if (model.config->has_dynamic_batching()) {
        batching.max_queue_delay =
            std::chrono::microseconds(model.config->dynamic_batching().max_queue_delay_microseconds());
      }
    }
    if (batching.max_batch_size == 0) return;
    batching.max_queue = options_.max_queue;
    batching.queue_timeout = std::chrono::milliseconds(options_.queue_timeout_ms);
    batching.workers = options_.threads;
    const std::string name = model.model, version = std::to_string(model.version);
    model.batcher = std::make_unique<DynamicBatcher>(*model.executor, *slots_, batching,
                                                     [this, name, version](int64_t rows, int64_t batch_size) {
                                                       metrics_.RecordBatch(name, version, rows, batch_size);
                                                     });
  });
  return model.batcher.get();
}

}  // namespace kiln::serve
