// kiln's inference server over gRPC: the Open Inference Protocol's GRPCInferenceService
// (serve/grpc_service.proto; Debian's libgrpc++), beside the HTTP endpoint and over the
// same InferenceService (slots, queues, batching, metrics). Refusals map to gRPC status
// codes: a bad request INVALID_ARGUMENT, an unknown model NOT_FOUND, overload
// UNAVAILABLE, each with the message the HTTP endpoint would give.
#pragma once

#include <memory>

#include "serve/inference_service.h"

namespace grpc {
class Server;
}

namespace kiln::serve {

class GrpcServer {
 public:
  explicit GrpcServer(InferenceService& service);
  ~GrpcServer();
  GrpcServer(const GrpcServer&) = delete;
  GrpcServer& operator=(const GrpcServer&) = delete;

  // Binds options().grpc_port (0: any free port) and starts serving; returns the port.
  // Throws kiln::Error when the address cannot be bound.
  int Start();
  // Stops accepting calls, lets those in flight finish (within io_timeout_s), returns.
  void Stop();

 private:
  class Handler;
  InferenceService& service_;
  std::unique_ptr<Handler> handler_;
  std::unique_ptr<grpc::Server> server_;
};

}  // namespace kiln::serve
