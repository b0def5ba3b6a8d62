// kiln's inference server over HTTP/REST (cpp-httplib): the Open Inference Protocol's
// health, metadata, inference and model repository endpoints, and Prometheus metrics.
//
// Requests run on a fixed set of execution slots (--threads); those that find every slot
// busy wait in line (first come, first served) in a bounded queue (--max-queue) for at
// most --queue-timeout-ms, and are
// answered 503 with Retry-After when the queue is full or the wait runs out, so memory
// never grows with the load. Models compiled with --batch-sizes are batched dynamically
// (serve/dynamic_batcher.h): their requests queue per model and run together. Bodies above --max-request-bytes get 413;
// slow clients are cut off by the read and write timeouts.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <thread>

#include "serve/execution_slots.h"
#include "serve/metrics.h"
#include "serve/model_repository.h"

namespace httplib {
class Server;
}

namespace kiln::serve {

struct ServerOptions {
  std::string host = "127.0.0.1";
  int http_port = 8000;  // 0: any free port (Start returns it)
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

class HttpServer {
 public:
  HttpServer(ModelRepository& repository, ServerOptions options);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Binds and starts serving on a background thread; returns the bound port. Throws
  // kiln::Error when the address cannot be bound.
  int Start();
  // Stops accepting connections, lets the requests in flight finish, and returns.
  void Stop();

  Metrics& metrics() { return metrics_; }

 private:
  void Route();
  // The version's dynamic batcher, started at its first request; nullptr when the server
  // does not batch it.
  DynamicBatcher* BatcherFor(const ModelVersion& model);

  ModelRepository& repository_;
  ServerOptions options_;
  Metrics metrics_;
  std::unique_ptr<httplib::Server> server_;
  std::unique_ptr<ExecutionSlots> slots_;
  int listen_socket_ = -1;  // the listening socket, to raise its backlog
  std::thread listener_;
};

}  // namespace kiln::serve
