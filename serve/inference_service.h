// What kiln serve's front ends (HTTP/REST and gRPC) share: the model repository, the
// execution slots, the dynamic batchers and the metrics. A front end turns its wire format
// into tensors in the model's input order (serve/protocol.h) and calls Run.
//
// Requests run on a fixed set of execution slots (--threads); those that find every slot
// busy wait in line (first come, first served) in a bounded queue (--max-queue) for at
// most --queue-timeout-ms, and are refused (503, or gRPC UNAVAILABLE) when the queue is
// full or the wait runs out, so memory never grows with the load. Models compiled with
// --batch-sizes are batched dynamically (serve/dynamic_batcher.h).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "serve/execution_slots.h"
#include "serve/metrics.h"
#include "serve/model_repository.h"

namespace kiln::serve {

struct ServerOptions {
  std::string host = "127.0.0.1";
  int http_port = 8000;  // 0: any free port (Start returns it)
  int grpc_port = 8001;  // 0: any free port; -1: no gRPC endpoint
  int threads = 0;       // execution slots; 0: one per hardware thread
  int max_queue = 64;    // requests waiting for a slot beyond which the server answers 503
  int64_t queue_timeout_ms = 10000;
  int64_t max_request_bytes = int64_t{64} << 20;
  int io_timeout_s = 10;           // reading a request, writing a response
  std::string log_level = "info";  // "error", "warning", "info" (access logs), "debug"
  // Dynamic batching of models compiled with --batch-sizes: -1 gathers up to the
  // artifact's largest batch size, 0 turns it off, B caps it; a model's config.pbtxt
  // (max_batch_size, dynamic_batching) overrides both settings.
  int64_t max_batch_size = -1;
  int64_t max_queue_delay_us = 0;
};

class InferenceService {
 public:
  InferenceService(ModelRepository& repository, ServerOptions options);

  ModelRepository& repository() { return repository_; }
  Metrics& metrics() { return metrics_; }
  const ServerOptions& options() const { return options_; }

  // The version to run (empty: the highest); ProtocolError 404 naming it when not served.
  std::shared_ptr<const ModelVersion> Find(const std::string& name, const std::string& version) const;
  // A model's inputs and outputs as clients see them: -1 on axis 0 of a model with batch
  // specializations, which takes any batch size it can run.
  static std::vector<TensorSpec> InputSpecs(const ModelVersion& model);
  static std::vector<TensorSpec> OutputSpecs(const ModelVersion& model);

  // Runs `parse` (a front end's decoding of a request body into tensors) holding one of
  // --threads parse slots, waiting in line as Run does: a JSON image expands to several
  // times its size while parsed (nlohmann's DOM), so with 64 clients sending ResNet-18's
  // JSON at once the server held 770 MB of DOMs; now at most --threads at a time.
  template <typename Decode>
  auto Parse(Decode&& parse) {
    AcquireOrRefuse(*parse_slots_);
    const SlotGuard slot(*parse_slots_);
    return parse();
  }

  struct Outcome {
    std::vector<Tensor> outputs;  // in the model's output order
    double queue_seconds = 0;
    double compute_seconds = 0;
  };
  // Runs inputs in the model's order, through its batcher or an execution slot. Throws
  // ProtocolError (503 when at capacity, 400 for a batch the model cannot take) and what
  // the executor throws.
  Outcome Run(const ModelVersion& model, std::vector<Tensor> inputs);

 private:
  // The version's dynamic batcher, started at its first request; nullptr when the server
  // does not batch it.
  DynamicBatcher* BatcherFor(const ModelVersion& model);
  // A slot of `slots` within the queue bounds, or ProtocolError 503.
  void AcquireOrRefuse(ExecutionSlots& slots);

  ModelRepository& repository_;
  ServerOptions options_;
  Metrics metrics_;
  std::unique_ptr<ExecutionSlots> slots_;
  std::unique_ptr<ExecutionSlots> parse_slots_;
};

}  // namespace kiln::serve
