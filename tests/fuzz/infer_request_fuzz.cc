// The inference server's request parser (serve/protocol.h), the part of an HTTP request
// a client controls: any bytes parse to inputs that match the model, or give a
// ProtocolError with status 400 and a message. A request that parsed builds a response
// (its inputs echoed as the model's outputs) whose JSON parses, whose binary part holds
// exactly the binary outputs' bytes, and whose JSON tensors hold the inputs' values.
//
// Input: byte 0 picks the model (see kModels); byte 1's low bit sends the rest with an
// Inference-Header-Content-Length of bytes 2-3 (little-endian), as the binary tensor
// data extension does; the rest is the HTTP body.
#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>
#include <string>

#include "runtime/error.h"
#include "serve/protocol.h"
#include "tests/fuzz/fuzz_targets.h"

namespace kiln::fuzz {
namespace {

using nlohmann::json;
using serve::ParseInferRequest;
using serve::ProtocolError;

// Models' inputs; each model's outputs are its inputs, so that a request's inputs can be
// echoed as the response.
const std::vector<std::vector<TensorSpec>> kModels = {
    {{"a", DType::kFloat32, {2, 2}}, {"b", DType::kInt32, {3}}},
    {{"x", DType::kUInt8, {4}}},
    {{"m", DType::kBool, {2}}, {"n", DType::kFloat16, {1}}, {"o", DType::kInt64, {2}}, {"p", DType::kBFloat16, {0}}},
    {{"u", DType::kUInt64, {1}}, {"d", DType::kFloat64, {1, 2}}, {"s", DType::kInt8, {2}}},
};

void CheckResponse(const serve::InferRequest& request, const std::vector<TensorSpec>& specs) {
  const serve::InferResponse response = serve::BuildInferResponse("m", "1", request, specs, request.inputs);
  const size_t header_length = response.header_length.value_or(response.body.size());
  FuzzCheck(header_length <= response.body.size(), "a response header longer than the response");
  const json parsed = json::parse(response.body.substr(0, header_length), nullptr, false);
  FuzzCheck(!parsed.is_discarded() && parsed.is_object(), "a response whose JSON does not parse");
  const json& outputs = parsed["outputs"];
  FuzzCheck(outputs.size() == request.outputs.size(), "a response without every requested output");
  size_t binary_offset = header_length;
  for (size_t k = 0; k < request.outputs.size(); ++k) {
    const json& output = outputs[k];
    const auto spec = std::find_if(specs.begin(), specs.end(),
                                   [&](const TensorSpec& s) { return s.name == request.outputs[k].name; });
    const Tensor& tensor = request.inputs[static_cast<size_t>(spec - specs.begin())];
    FuzzCheck(output["name"] == request.outputs[k].name, "a response output out of the requested order");
    FuzzCheck(output["shape"] == json(tensor.shape()), "a response output's shape is not its tensor's");
    if (request.outputs[k].binary) {
      FuzzCheck(output["parameters"]["binary_data_size"] == tensor.nbytes(), "a binary output's size is wrong");
      FuzzCheck(response.body.compare(binary_offset, tensor.nbytes(),
                                      std::string(static_cast<const char*>(tensor.data()), tensor.nbytes())) == 0,
                "a binary output's bytes are not its tensor's");
      binary_offset += tensor.nbytes();
      continue;
    }
    const json& data = output["data"];
    FuzzCheck(data.is_array() && static_cast<int64_t>(data.size()) == tensor.size(), "a JSON output's data is short");
    for (int64_t i = 0; i < tensor.size(); ++i) {
      const double value = tensor.GetDouble(i);
      if (tensor.dtype() == DType::kBool) {
        FuzzCheck(data[i].is_boolean() && data[i].get<bool>() == (value != 0), "a BOOL output element is wrong");
      } else if (tensor.dtype() == DType::kInt64 || tensor.dtype() == DType::kUInt64) {
        FuzzCheck(data[i].is_number_integer(), "a 64-bit integer output element is not an integer");
      } else if (std::isfinite(value)) {
        FuzzCheck(data[i].is_number() && data[i].get<double>() == value, "a JSON output element is not its value");
      } else {
        FuzzCheck(data[i].is_null(), "a non-finite output element is not null");
      }
    }
  }
  FuzzCheck(binary_offset == response.body.size(), "bytes after a response's binary outputs");
}

}  // namespace

int FuzzInferRequest(const uint8_t* data, size_t size) {
  if (size < 4) return 0;
  const std::vector<TensorSpec>& specs = kModels[data[0] % kModels.size()];
  const std::optional<size_t> header_length =
      (data[1] & 1) != 0 ? std::optional<size_t>(data[2] | (size_t{data[3]} << 8)) : std::nullopt;
  const std::string_view body = AsText(data + 4, size - 4);
  serve::InferRequest request;
  try {
    request = ParseInferRequest(body, header_length, specs, specs);
  } catch (const ProtocolError& e) {
    FuzzCheck(e.status() == 400, "a parse error with status " + std::to_string(e.status()));
    FuzzCheck(std::string_view(e.what()).size() > 10, "a parse error without a message");
    return 0;
  }
  FuzzCheck(request.inputs.size() == specs.size(), "a request parsed without every input");
  for (size_t i = 0; i < specs.size(); ++i) {
    FuzzCheck(request.inputs[i].shape() == specs[i].shape && request.inputs[i].dtype() == specs[i].dtype,
              "an input parsed to another shape or dtype than the model's");
  }
  CheckResponse(request, specs);
  return 0;
}

}  // namespace kiln::fuzz
