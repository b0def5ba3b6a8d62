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
namespace inference {
class ModelInferRequest;
}

namespace kiln::serve {

// A ModelInfer call's inputs in the model's order (typed contents or raw bytes, checked
// against `inputs`; a dimension of -1 takes any size), and the indices of the outputs it
// asks for (all, when it names none). Throws ProtocolError (400) naming what was expected
// and what was given.
struct GrpcInferRequest {
  std::vector<Tensor> inputs;
  std::vector<size_t> outputs;
};
GrpcInferRequest ParseModelInferRequest(const inference::ModelInferRequest& request,
                                        const std::vector<TensorSpec>& inputs, const std::vector<TensorSpec>& outputs);

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
