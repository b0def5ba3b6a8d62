// The gRPC endpoint's ModelInfer parser (serve/grpc_server.h), the part a client controls:
// any ModelInferRequest message parses to inputs with the model's dtypes and shapes and
// to outputs the model has, or gives a ProtocolError with status 400 and a message.
//
// Input: byte 0 picks the model (kModels); the rest is the serialized ModelInferRequest
// (bytes that do not parse as one are not a request the server would see).
#include <string>

#include "runtime/error.h"
#include "serve/grpc_server.h"
#include "serve/grpc_service.pb.h"
#include "serve/protocol.h"
#include "tests/fuzz/fuzz_targets.h"

namespace kiln::fuzz {
namespace {

const std::vector<std::vector<TensorSpec>> kModels = {
    {{"a", DType::kFloat32, {2, 2}}, {"b", DType::kInt32, {3}}},
    {{"x", DType::kUInt8, {-1, 4}}},  // a batched model's axis 0
    {{"m", DType::kBool, {2}}, {"n", DType::kFloat16, {1}}, {"o", DType::kInt64, {2}}, {"p", DType::kBFloat16, {0}}},
    {{"u", DType::kUInt64, {1}}, {"d", DType::kFloat64, {1, 2}}, {"s", DType::kInt8, {2}}},
};

}  // namespace

int FuzzGrpcInferRequest(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const std::vector<TensorSpec>& specs = kModels[data[0] % kModels.size()];
  inference::ModelInferRequest request;
  if (!request.ParseFromArray(data + 1, static_cast<int>(size - 1))) return 0;
  serve::GrpcInferRequest parsed;
  try {
    parsed = serve::ParseModelInferRequest(request, specs, specs);
  } catch (const serve::ProtocolError& e) {
    FuzzCheck(e.status() == 400, "a parse error with status " + std::to_string(e.status()));
    FuzzCheck(std::string_view(e.what()).size() > 10, "a parse error without a message");
    return 0;
  }
  FuzzCheck(parsed.inputs.size() == specs.size(), "a request parsed without every input");
  for (size_t i = 0; i < specs.size(); ++i) {
    const Shape& shape = parsed.inputs[i].shape();
    bool matches = shape.size() == specs[i].shape.size() && parsed.inputs[i].dtype() == specs[i].dtype;
    for (size_t d = 0; matches && d < shape.size(); ++d) {
      matches = shape[d] >= 0 && (specs[i].shape[d] == -1 || shape[d] == specs[i].shape[d]);
    }
    FuzzCheck(matches, "an input parsed to another shape or dtype than the model's");
  }
  FuzzCheck(!parsed.outputs.empty(), "a request parsed to no outputs");
  for (const size_t k : parsed.outputs) FuzzCheck(k < specs.size(), "a requested output the model does not have");
  return 0;
}

}  // namespace kiln::fuzz
