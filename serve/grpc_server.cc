#include "serve/grpc_server.h"

#include <fmt/format.h>
#include <grpcpp/grpcpp.h>

#include <chrono>
#include <cstring>
#include <limits>
#include <type_traits>

#include "runtime/error.h"
#include "runtime/version.h"
#include "serve/grpc_service.grpc.pb.h"
#include "serve/protocol.h"

namespace kiln::serve {

namespace {

grpc::StatusCode CodeOf(int http_status) {
  switch (http_status) {
    case 404: return grpc::StatusCode::NOT_FOUND;
    case 413: return grpc::StatusCode::RESOURCE_EXHAUSTED;
    case 503: return grpc::StatusCode::UNAVAILABLE;
    default: return http_status >= 500 ? grpc::StatusCode::INTERNAL : grpc::StatusCode::INVALID_ARGUMENT;
  }
}

// Runs `body`, turning what it throws into the call's status.
template <typename Body>
grpc::Status Answer(Body&& body) {
  try {
    body();
    return grpc::Status::OK;
  } catch (const ProtocolError& e) {
    return grpc::Status(CodeOf(e.status()), e.what());
  } catch (const Error& e) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, e.what());
  } catch (const std::exception& e) {
    return grpc::Status(grpc::StatusCode::INTERNAL, e.what());
  }
}

ProtocolError BadRequest(const std::string& message) {
  return ProtocolError(400, message);
}

// The elements of a typed contents field into `tensor`, each checked against its dtype's
// range (INT8 values travel in int32 fields).
template <typename T, typename Field>
void CopyElements(const Field& from, Tensor& tensor, const std::string& where, const char* field) {
  if (static_cast<int64_t>(from.size()) != tensor.size()) {
    throw BadRequest(
        fmt::format("{}: {} elements in contents.{}, its shape holds {}", where, from.size(), field, tensor.size()));
  }
  T* to = tensor.data_as<T>();
  for (int i = 0; i < from.size(); ++i) {
    const auto value = from.Get(i);
    if constexpr (std::is_integral_v<T> && !std::is_same_v<T, bool>) {
      if (value < std::numeric_limits<T>::lowest() || value > std::numeric_limits<T>::max()) {
        throw BadRequest(
            fmt::format("{}: element {} is {}, outside {}", where, i, value, DatatypeName(tensor.dtype())));
      }
    }
    to[i] = static_cast<T>(value);
  }
}

void CopyContents(const inference::InferTensorContents& contents, Tensor& tensor, const std::string& where) {
  switch (tensor.dtype()) {
    case DType::kBool: return CopyElements<uint8_t>(contents.bool_contents(), tensor, where, "bool_contents");
    case DType::kInt8: return CopyElements<int8_t>(contents.int_contents(), tensor, where, "int_contents");
    case DType::kInt16: return CopyElements<int16_t>(contents.int_contents(), tensor, where, "int_contents");
    case DType::kInt32: return CopyElements<int32_t>(contents.int_contents(), tensor, where, "int_contents");
    case DType::kInt64: return CopyElements<int64_t>(contents.int64_contents(), tensor, where, "int64_contents");
    case DType::kUInt8: return CopyElements<uint8_t>(contents.uint_contents(), tensor, where, "uint_contents");
    case DType::kUInt16: return CopyElements<uint16_t>(contents.uint_contents(), tensor, where, "uint_contents");
    case DType::kUInt32: return CopyElements<uint32_t>(contents.uint_contents(), tensor, where, "uint_contents");
    case DType::kUInt64: return CopyElements<uint64_t>(contents.uint64_contents(), tensor, where, "uint64_contents");
    case DType::kFloat32: return CopyElements<float>(contents.fp32_contents(), tensor, where, "fp32_contents");
    case DType::kFloat64: return CopyElements<double>(contents.fp64_contents(), tensor, where, "fp64_contents");
    case DType::kFloat16:
    case DType::kBFloat16:
      throw BadRequest(where + ": " + std::string(DatatypeName(tensor.dtype())) +
                       " has no typed contents field; send it in raw_input_contents");
  }
}

}  // namespace

GrpcInferRequest ParseModelInferRequest(const inference::ModelInferRequest& request,
                                        const std::vector<TensorSpec>& inputs, const std::vector<TensorSpec>& outputs) {
  GrpcInferRequest parsed;
  parsed.inputs.resize(inputs.size());
  const int raw = request.raw_input_contents_size();
  if (raw > 0 && raw != request.inputs_size()) {
    throw BadRequest(
        fmt::format("raw_input_contents: {} given for {} inputs (one per input, or none)", raw, request.inputs_size()));
  }
  TensorMatcher matcher(inputs, outputs);
  for (int i = 0; i < request.inputs_size(); ++i) {
    const inference::ModelInferRequest::InferInputTensor& input = request.inputs(i);
    const std::string where = InputLabel(input.name());
    auto [slot, tensor] =
        matcher.Input(input.name(), input.datatype(), Shape(input.shape().begin(), input.shape().end()));
    if (raw > 0) {
      if (input.has_contents()) throw BadRequest(where + ": both contents and raw_input_contents given");
      const std::string& bytes = request.raw_input_contents(i);
      if (bytes.size() != tensor.nbytes()) {
        throw BadRequest(fmt::format("{}: {} bytes of raw_input_contents, shape [{}] of {} takes {}", where,
                                     bytes.size(), fmt::join(tensor.shape(), ", "), input.datatype(), tensor.nbytes()));
      }
      if (!bytes.empty()) std::memcpy(tensor.data(), bytes.data(), bytes.size());
    } else if (input.has_contents()) {
      CopyContents(input.contents(), tensor, where);
    } else {
      throw BadRequest(where + ": no contents and no raw_input_contents");
    }
    parsed.inputs[slot] = std::move(tensor);
  }
  matcher.RequireAllInputs();
  for (const auto& output : request.outputs()) parsed.outputs.push_back(matcher.Output(output.name()));
  if (parsed.outputs.empty()) {
    for (size_t k = 0; k < outputs.size(); ++k) parsed.outputs.push_back(k);
  }
  return parsed;
}

namespace {

void AddTensorMetadata(const TensorSpec& spec, inference::ModelMetadataResponse::TensorMetadata* to) {
  to->set_name(spec.name);
  to->set_datatype(std::string(DatatypeName(spec.dtype)));
  for (const int64_t dim : spec.shape) to->add_shape(dim);
}

}  // namespace

class GrpcServer::Handler final : public inference::GRPCInferenceService::Service {
 public:
  explicit Handler(InferenceService& service) : service_(service) {}

  grpc::Status ServerLive(grpc::ServerContext*, const inference::ServerLiveRequest*,
                          inference::ServerLiveResponse* response) override {
    response->set_live(true);
    return grpc::Status::OK;
  }

  grpc::Status ServerReady(grpc::ServerContext*, const inference::ServerReadyRequest*,
                           inference::ServerReadyResponse* response) override {
    response->set_ready(service_.repository().AllReady());
    return grpc::Status::OK;
  }

  grpc::Status ModelReady(grpc::ServerContext*, const inference::ModelReadyRequest* request,
                          inference::ModelReadyResponse* response) override {
    response->set_ready(service_.repository().Find(request->name(), request->version()) != nullptr);
    return grpc::Status::OK;
  }

  grpc::Status ServerMetadata(grpc::ServerContext*, const inference::ServerMetadataRequest*,
                              inference::ServerMetadataResponse* response) override {
    response->set_name("kiln");
    response->set_version(kKilnVersion);
    response->add_extensions("model_repository");
    return grpc::Status::OK;
  }

  grpc::Status ModelMetadata(grpc::ServerContext*, const inference::ModelMetadataRequest* request,
                             inference::ModelMetadataResponse* response) override {
    return Answer([&] {
      const auto model = service_.Find(request->name(), request->version());
      response->set_name(request->name());
      for (const std::string& version : service_.repository().Versions(request->name())) {
        response->add_versions(version);
      }
      response->set_platform("kiln");
      for (const TensorSpec& spec : InferenceService::InputSpecs(*model))
        AddTensorMetadata(spec, response->add_inputs());
      for (const TensorSpec& spec : InferenceService::OutputSpecs(*model)) {
        AddTensorMetadata(spec, response->add_outputs());
      }
    });
  }

  grpc::Status ModelInfer(grpc::ServerContext*, const inference::ModelInferRequest* request,
                          inference::ModelInferResponse* response) override {
    const auto arrived = SteadyClock::now();
    std::shared_ptr<const ModelVersion> model;
    if (grpc::Status found = Answer([&] { model = service_.Find(request->model_name(), request->model_version()); });
        !found.ok()) {
      return found;
    }
    const std::string version = std::to_string(model->version);
    Metrics& metrics = service_.metrics();
    const Metrics::InFlightGuard in_flight(metrics);
    const grpc::Status status = Answer([&] {
      const std::vector<TensorSpec>& outputs = model->outputs();
      GrpcInferRequest parsed = ParseModelInferRequest(*request, InferenceService::InputSpecs(*model), outputs);
      InferenceService::Outcome outcome = service_.Run(*model, std::move(parsed.inputs));
      response->set_model_name(request->model_name());
      response->set_model_version(version);
      response->set_id(request->id());
      for (const size_t k : parsed.outputs) {
        const Tensor& tensor = outcome.outputs.at(k);
        auto* output = response->add_outputs();
        output->set_name(outputs[k].name);
        output->set_datatype(std::string(DatatypeName(tensor.dtype())));
        for (const int64_t dim : tensor.shape()) output->add_shape(dim);
        response->add_raw_output_contents(static_cast<const char*>(tensor.data()), tensor.nbytes());
      }
      metrics.RecordSuccess(request->model_name(), version, outcome.queue_seconds, outcome.compute_seconds,
                            SecondsSince(arrived));
    });
    if (!status.ok()) metrics.RecordFailure(request->model_name(), version);
    return status;
  }

  grpc::Status RepositoryIndex(grpc::ServerContext*, const inference::RepositoryIndexRequest* request,
                               inference::RepositoryIndexResponse* response) override {
    for (const IndexEntry& entry : service_.repository().Index()) {
      if (request->ready() && entry.state != "READY") continue;
      auto* model = response->add_models();
      model->set_name(entry.name);
      model->set_version(entry.version);
      model->set_state(entry.state);
      model->set_reason(entry.reason);
    }
    return grpc::Status::OK;
  }

  grpc::Status RepositoryModelLoad(grpc::ServerContext*, const inference::RepositoryModelLoadRequest* request,
                                   inference::RepositoryModelLoadResponse*) override {
    return Answer([&] { service_.repository().Load(request->model_name()); });
  }

  grpc::Status RepositoryModelUnload(grpc::ServerContext*, const inference::RepositoryModelUnloadRequest* request,
                                     inference::RepositoryModelUnloadResponse*) override {
    return Answer([&] { service_.repository().Unload(request->model_name()); });
  }

 private:
  InferenceService& service_;
};

GrpcServer::GrpcServer(InferenceService& service) : service_(service), handler_(std::make_unique<Handler>(service)) {}

GrpcServer::~GrpcServer() {
  Stop();
}

int GrpcServer::Start() {
  const ServerOptions& options = service_.options();
  grpc::ServerBuilder builder;
  int port = 0;
  const std::string address = fmt::format("{}:{}", options.host, options.grpc_port);
  builder.AddListeningPort(address, grpc::InsecureServerCredentials(), &port);
  builder.RegisterService(handler_.get());
  builder.SetMaxReceiveMessageSize(static_cast<int>(std::min<int64_t>(options.max_request_bytes, INT32_MAX)));
  builder.SetMaxSendMessageSize(-1);
  // The calls gRPC's threads run at once: the execution slots, the queue, and a few for
  // health checks, as the HTTP endpoint's connection threads.
  grpc::ResourceQuota quota("kiln-serve");
  quota.SetMaxThreads(options.threads + options.max_queue + 4);
  builder.SetResourceQuota(quota);
  server_ = builder.BuildAndStart();
  if (!server_ || port == 0) {
    server_.reset();
    throw Error("cannot listen for gRPC on " + address);
  }
  return port;
}

void GrpcServer::Stop() {
  if (!server_) return;
  server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(service_.options().io_timeout_s));
  server_->Wait();
  server_.reset();
}

}  // namespace kiln::serve
