// kiln's inference server over HTTP/REST (cpp-httplib): the Open Inference Protocol's
// health, metadata, inference and model repository endpoints, and Prometheus metrics.
//
// Requests run through the InferenceService it shares with the gRPC endpoint (execution
// slots, bounded queues, dynamic batching): refusals under load are 503 with Retry-After. Bodies above
// --max-request-bytes get 413; slow clients are cut off by the read and write timeouts.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <thread>

#include "serve/inference_service.h"

namespace httplib {
class Server;
}

namespace kiln::serve {

class HttpServer {
 public:
  // A server with a service of its own.
  HttpServer(ModelRepository& repository, ServerOptions options);
  // A server over a service shared with other front ends (its options are the service's).
  explicit HttpServer(InferenceService& service);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Binds and starts serving on a background thread; returns the bound port. Throws
  // kiln::Error when the address cannot be bound.
  int Start();
  // Stops accepting connections, lets the requests in flight finish, and returns.
  void Stop();

  Metrics& metrics() { return service_.metrics(); }

 private:
  void Route();

  std::unique_ptr<InferenceService> own_service_;
  InferenceService& service_;
  ModelRepository& repository_;
  const ServerOptions& options_;
  std::unique_ptr<httplib::Server> server_;
  int listen_socket_ = -1;  // the listening socket, to raise its backlog
  std::thread listener_;
};

}  // namespace kiln::serve
