// The Open Inference Protocol (KServe v2), the part that does not depend on a transport:
// its datatype names, inference requests parsed and checked against a model's inputs,
// and responses, as JSON tensors or with the binary tensor data extension.
//   https://kserve.github.io/website/latest/modelserving/data_plane/v2_protocol/
#pragma once

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "runtime/executor.h"
#include "runtime/tensor.h"

namespace kiln::serve {

// A request the server refuses: the HTTP status to answer with and a message naming what
// was expected and what was given.
class ProtocolError : public std::runtime_error {
 public:
  ProtocolError(int status, const std::string& message) : std::runtime_error(message), status_(status) {}
  int status() const { return status_; }

 private:
  int status_;
};

// The protocol's spelling of a dtype ("FP32", "INT64", "BOOL", "BF16", ...).
std::string_view DatatypeName(DType dtype);
std::optional<DType> ParseDatatype(std::string_view name);

struct RequestedOutput {
  std::string name;
  bool binary = false;
};

struct InferRequest {
  std::string id;
  std::vector<Tensor> inputs;  // in the model's input order
  // The outputs to return, in the model's order unless the request lists some.
  std::vector<RequestedOutput> outputs;
};

// "input 'NAME'" and "requested output 'NAME'" for error messages, the name abbreviated
// (a client's bytes: control characters escaped, long names cut).
std::string InputLabel(std::string_view name);
std::string OutputLabel(std::string_view name);

// Matches a request's named tensors to a model's, for every wire format: each input
// given once, with the model's datatype and shape (a dimension of -1 takes any size), all
// of them given; each requested output one of the model's, once. Throws ProtocolError
// (400) naming what was expected and what was given.
class TensorMatcher {
 public:
  TensorMatcher(const std::vector<TensorSpec>& inputs, const std::vector<TensorSpec>& outputs);

  struct MatchedInput {
    size_t slot = 0;  // index in the model's inputs
    Tensor tensor;    // zeros of the given shape, to fill
  };
  MatchedInput Input(const std::string& name, const std::string& datatype, const Shape& shape);
  // After the inputs: refuses a request that left some out.
  void RequireAllInputs() const;
  // The index of requested output `name` in the model's outputs.
  size_t Output(const std::string& name);

 private:
  const std::vector<TensorSpec>& inputs_;
  const std::vector<TensorSpec>& outputs_;
  std::vector<bool> inputs_seen_;
  std::vector<bool> outputs_seen_;
};

// Parses an infer request for a model with these inputs and outputs (a dimension of -1
// takes any size). `body` is the whole
// HTTP body; `header_length`, from the Inference-Header-Content-Length header, is the
// size of its JSON part when binary tensor data follows. Throws ProtocolError (400).
InferRequest ParseInferRequest(std::string_view body, std::optional<size_t> header_length,
                               const std::vector<TensorSpec>& inputs, const std::vector<TensorSpec>& outputs);

struct InferResponse {
  std::string body;
  // Set when binary data follows the JSON: the JSON part's length (the response's
  // Inference-Header-Content-Length).
  std::optional<size_t> header_length;
};

// The response to `request` with the model's outputs (in the model's order).
InferResponse BuildInferResponse(const std::string& model, const std::string& version, const InferRequest& request,
                                 const std::vector<TensorSpec>& specs, const std::vector<Tensor>& outputs);

// {"name": ..., "versions": [...], "platform": "kiln", "inputs": [...], "outputs": [...]}
std::string ModelMetadataJson(const std::string& model, const std::vector<std::string>& versions,
                              const std::vector<TensorSpec>& inputs, const std::vector<TensorSpec>& outputs);

// The specs with axis 0 as -1 (any size): a model served with batch specializations.
std::vector<TensorSpec> WithVariableBatch(std::vector<TensorSpec> specs);

// {"error": message}
std::string ErrorJson(const std::string& message);

}  // namespace kiln::serve
