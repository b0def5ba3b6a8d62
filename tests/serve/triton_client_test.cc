// Triton's own Python clients (tritonclient[http,grpc] from PyPI, in /opt/kiln-py:
// installed by tools/install_python_deps.sh) against kiln's server on free loopback
// ports: health, metadata, JSON, binary and asynchronous inference over HTTP and gRPC,
// outputs equal to the executor's bit for bit (tests/serve/triton_client_check.py). Without the client the test says it
// skipped and why.
#include <catch2/catch.hpp>
#include <cstdlib>
#include <filesystem>

#include "codegen/compiler.h"
#include "runtime/artifact.h"
#include "runtime/executor.h"
#include "runtime/file_util.h"
#include "runtime/npy.h"
#include "serve/grpc_server.h"
#include "serve/http_server.h"
#include "serve/inference_service.h"
#include "serve/model_repository.h"
#include "tests/op_test_util.h"
#include "tests/test_models.h"

namespace kiln::serve {
namespace {

namespace fs = std::filesystem;
constexpr const char* kPython = "/opt/kiln-py/bin/python";
constexpr const char* kScript = "tests/serve/triton_client_check.py";  // in the runfiles

TEST_CASE("Triton's HTTP and gRPC clients: health, metadata, JSON, binary and async inference", "[serve][triton]") {
  const char* tmp = std::getenv("TEST_TMPDIR");
  const std::string dir = std::string(tmp != nullptr ? tmp : "/tmp") + "/triton_client";
  fs::create_directories(dir);
  const std::string log = dir + "/client.log";
  if (!fs::exists(kPython) ||
      std::system(
          (std::string(kPython) + " -c 'import tritonclient.http, tritonclient.grpc' > " + log + " 2>&1").c_str()) !=
          0) {
    WARN("SKIPPED: tritonclient[http,grpc] cannot be imported by " << kPython << " (tools/install_python_deps.sh)");
    return;
  }
  const Shape shape = {4, 20};
  const Graph graph = testing::WithRandomParams(testing::TestMlp(32), {{"data", shape}}, 5);
  CompileOptions options;
  options.input_shapes = {{"data", shape}};
  fs::create_directories(dir + "/repo/mlp/1");
  const std::string artifact = dir + "/repo/mlp/1/model.kiln";
  SaveArtifact(artifact, CompileGraph(graph, options));
  const Tensor data = testing::RandomTensor(shape, 6);
  SaveNpy(dir + "/input.npy", data);
  SaveNpy(dir + "/expected.npy", Executor::Load(artifact)->Run({data})[0]);

  ModelRepository repository(dir + "/repo", {});
  REQUIRE(repository.LoadAll().empty());
  ServerOptions server_options;
  server_options.http_port = 0;
  server_options.log_level = "warning";
  server_options.grpc_port = 0;
  InferenceService service(repository, server_options);
  HttpServer server(service);
  GrpcServer grpc_server(service);
  const int port = server.Start();
  const int grpc_port = grpc_server.Start();
  const std::string command = std::string(kPython) + " " + kScript + " 127.0.0.1:" + std::to_string(port) + " mlp " +
                              dir + "/input.npy " + dir + "/expected.npy 127.0.0.1:" + std::to_string(grpc_port) +
                              " > " + log + " 2>&1";
  const int status = std::system(command.c_str());
  const std::string output = ReadFile(log);
  INFO(output);
  CHECK(status == 0);
  CHECK_THAT(output, Catch::Contains("async infer x8: ok"));
  CHECK_THAT(output, Catch::Contains("gRPC async infer x8: ok"));
  CHECK_THAT(output, Catch::Contains("gRPC unknown model refused: ok"));
  grpc_server.Stop();
  server.Stop();
}

}  // namespace
}  // namespace kiln::serve
