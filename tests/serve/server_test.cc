// kiln's HTTP inference server against its own client calls (httplib): the Open Inference
// Protocol's endpoints, outputs equal to the executor's bit for bit, and bad requests
// answered with a 4xx naming what was expected and what was given. The server listens
// on a free loopback port and stops at the end of each case.
#include <grpcpp/grpcpp.h>
#include <httplib.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <future>
#include <mutex>
#include <nlohmann/json.hpp>
#include <random>
#include <thread>

#include "codegen/compiler.h"
#include "runtime/artifact.h"
#include "runtime/context.h"
#include "runtime/executor.h"
#include "runtime/file_util.h"
#include "serve/execution_slots.h"
#include "serve/grpc_server.h"
#include "serve/grpc_service.grpc.pb.h"
#include "serve/http_server.h"
#include "serve/inference_service.h"
#include "serve/model_repository.h"
#include "serve/protocol.h"
#include "tests/codegen/emulated_gpu.h"
#include "tests/op_test_util.h"
#include "tests/test_models.h"

// Under ThreadSanitizer (--config=tsan): Debian's libgrpc (and the Abseil it uses) is
// not instrumented, so TSan
// cannot see its own synchronization (it reported its epoll descriptor shared by the
// thread that made it and its poller). Its calls into intercepted functions are left out;
// kiln's code around it stays checked.
extern "C" const char* __tsan_default_suppressions() {
  return "called_from_lib:libgrpc.so\ncalled_from_lib:libgrpc++.so\ncalled_from_lib:libgpr.so\n"
         "called_from_lib:libabsl_synchronization.so\ncalled_from_lib:libabsl_base.so\n"
         "called_from_lib:libabsl_graphcycles_internal.so\n"
         "race:libgrpc.so\nrace:libgrpc++.so\nrace:libgpr.so\nrace:libabsl_*\n";
}

namespace kiln::serve {
namespace {

using nlohmann::json;
using testing::RandomTensor;
namespace fs = std::filesystem;

const Shape kDataShape = {2, 20};

// A repository with model "mlp" in versions 1 and 2 (different weights).
struct Repository {
  std::string root = fs::temp_directory_path() / ("kiln_serve_test_" + std::to_string(::getpid()) + "_" +
                                                  std::to_string(reinterpret_cast<uintptr_t>(this)));
  Repository() {
    for (int version : {1, 2}) {
      const Graph graph = testing::WithRandomParams(testing::TestMlp(16), {{"data", kDataShape}}, 100 + version);
      CompileOptions options;
      options.input_shapes = {{"data", kDataShape}};
      const std::string dir = root + "/mlp/" + std::to_string(version);
      fs::create_directories(dir);
      SaveArtifact(dir + "/model.kiln", CompileGraph(graph, options));
    }
  }
  ~Repository() { fs::remove_all(root); }
  std::string Artifact(int version) const { return root + "/mlp/" + std::to_string(version) + "/model.kiln"; }
};

const Repository& SharedRepository() {
  static const Repository repository;
  return repository;
}

// A server on a free loopback port over `repository`, stopped at the end of the scope.
struct RunningServer {
  ModelRepository models;
  HttpServer server;
  int port;
  httplib::Client client;
  RunningServer(const std::string& root, ServerOptions options)
      : models(root, {}),
        server((models.LoadAll(), models), Configure(options)),
        port(server.Start()),
        client("127.0.0.1", port) {
    client.set_read_timeout(30, 0);
  }
  static ServerOptions Configure(ServerOptions options) {
    options.http_port = 0;
    options.log_level = "warning";
    return options;
  }
};

json InferBody(const Tensor& data) {
  json values = json::array();
  for (int64_t i = 0; i < data.size(); ++i) values.push_back(data.GetDouble(i));
  return {{"id", "r1"},
          {"inputs", {{{"name", "data"}, {"shape", data.shape()}, {"datatype", "FP32"}, {"data", values}}}}};
}

TEST_CASE("health, metadata and JSON inference equal to the executor's outputs", "[serve]") {
  const Repository& repo = SharedRepository();
  RunningServer s(repo.root, {});
  auto res = s.client.Get("/v2/health/live");
  REQUIRE(res);
  CHECK(res->status == 200);
  CHECK(json::parse(res->body)["live"] == true);
  res = s.client.Get("/v2/health/ready");
  REQUIRE(res);
  CHECK(res->status == 200);
  res = s.client.Get("/v2");
  REQUIRE(res);
  CHECK(json::parse(res->body)["extensions"].size() == 2);

  res = s.client.Get("/v2/models/mlp");
  REQUIRE(res);
  REQUIRE(res->status == 200);
  const json metadata = json::parse(res->body);
  CHECK(metadata["versions"] == json::array({"1", "2"}));
  CHECK(metadata["inputs"][0] == json{{"name", "data"}, {"datatype", "FP32"}, {"shape", {2, 20}}});
  CHECK(metadata["outputs"][0]["datatype"] == "FP32");
  res = s.client.Get("/v2/models/mlp/versions/1/ready");
  REQUIRE(res);
  CHECK(res->status == 200);

  const Tensor data = RandomTensor(kDataShape, 7);
  for (int version : {1, 2}) {
    INFO("version " << version);
    const std::vector<Tensor> expected = Executor::Load(repo.Artifact(version))->Run({data});
    // The latest version by default, a given one by path.
    const std::string path = version == 2 ? "/v2/models/mlp/infer" : "/v2/models/mlp/versions/1/infer";
    res = s.client.Post(path, InferBody(data).dump(), "application/json");
    REQUIRE(res);
    REQUIRE(res->status == 200);
    const json response = json::parse(res->body);
    CHECK(response["model_version"] == std::to_string(version));
    CHECK(response["id"] == "r1");
    const json& output = response["outputs"][0];
    CHECK(output["shape"] == json(expected[0].shape()));
    REQUIRE(output["data"].size() == static_cast<size_t>(expected[0].size()));
    for (int64_t i = 0; i < expected[0].size(); ++i) {
      CHECK(static_cast<float>(output["data"][i].get<double>()) == expected[0].data_as<float>()[i]);
    }
  }
}

TEST_CASE("a GPU artifact is served by the CUDA executor, concurrent requests on its streams", "[serve][gpu]") {
  if (!testing::HaveNvrtc("serving a GPU artifact")) return;
  // gpu(0) is the CUDA emulation here, built with the artifact's kernels.
  const Graph graph = testing::WithRandomParams(testing::TestMlp(16), {{"data", kDataShape}}, 300);
  CompileOptions options;
  options.input_shapes = {{"data", kDataShape}};
  options.cuda = CompileOptions::Cuda{};
  const LoweredGraph lowered = CompileCudaGraph(graph, options);
  const testing::EmulatedGpus gpu(1, lowered.kernels);
  const std::string root = fs::temp_directory_path() / ("kiln_serve_gpu_test_" + std::to_string(::getpid()));
  fs::create_directories(root + "/mlp_gpu/1");
  SaveArtifact(root + "/mlp_gpu/1/model.kiln", lowered.artifact);
  options.cuda.reset();
  const auto cpu = CompileJit(graph, options);
  {
    RunningServer s(root, {});
    auto res = s.client.Get("/v2/models/mlp_gpu");
    REQUIRE(res);
    REQUIRE(res->status == 200);
    CHECK(json::parse(res->body)["inputs"][0]["shape"] == json{2, 20});  // no batch variants
    std::vector<std::thread> clients;
    std::vector<std::string> problems(6);
    for (size_t c = 0; c < problems.size(); ++c) {
      clients.emplace_back([&, c] {
        httplib::Client client("127.0.0.1", s.port);
        client.set_read_timeout(30, 0);
        for (int r = 0; r < 3; ++r) {
          const Tensor data = RandomTensor(kDataShape, 40 + c * 3 + r);
          const Tensor want = cpu->Run({data})[0];
          const auto reply = client.Post("/v2/models/mlp_gpu/infer", InferBody(data).dump(), "application/json");
          if (!reply || reply->status != 200) {
            problems[c] = reply ? reply->body : "no reply";
            return;
          }
          const json values = json::parse(reply->body)["outputs"][0]["data"];
          for (int64_t i = 0; i < want.size(); ++i) {
            const double got = values[static_cast<size_t>(i)].get<double>();
            if (std::fabs(got - want.GetDouble(i)) > 1e-5 + 1e-5 * std::fabs(want.GetDouble(i))) {
              problems[c] = "element " + std::to_string(i) + ": " + std::to_string(got) + ", expected " +
                            std::to_string(want.GetDouble(i));
            }
          }
        }
      });
    }
    for (std::thread& client : clients) client.join();
    for (const std::string& problem : problems) CHECK(problem.empty());
  }
  fs::remove_all(root);
}

TEST_CASE("binary tensor data in and out", "[serve]") {
  const Repository& repo = SharedRepository();
  RunningServer s(repo.root, {});
  const Tensor data = RandomTensor(kDataShape, 8);
  const std::vector<Tensor> expected = Executor::Load(repo.Artifact(2))->Run({data});
  const json header = {{"inputs",
                        {{{"name", "data"},
                          {"shape", data.shape()},
                          {"datatype", "FP32"},
                          {"parameters", {{"binary_data_size", data.nbytes()}}}}}},
                       {"outputs", {{{"name", "softmax_output"}, {"parameters", {{"binary_data", true}}}}}}};
  const std::string head = header.dump();
  const std::string body = head + std::string(static_cast<const char*>(data.data()), data.nbytes());
  httplib::Headers headers = {{"Inference-Header-Content-Length", std::to_string(head.size())}};
  auto res = s.client.Post("/v2/models/mlp/infer", headers, body, "application/octet-stream");
  REQUIRE(res);
  REQUIRE(res->status == 200);
  const size_t json_length = std::stoul(res->get_header_value("Inference-Header-Content-Length"));
  const json response = json::parse(res->body.substr(0, json_length));
  CHECK(response["outputs"][0]["parameters"]["binary_data_size"] == expected[0].nbytes());
  REQUIRE(res->body.size() - json_length == expected[0].nbytes());
  CHECK(std::memcmp(res->body.data() + json_length, expected[0].data(), expected[0].nbytes()) == 0);

  // A binary input shorter than it says.
  const std::string truncated = body.substr(0, body.size() - 4);
  res = s.client.Post("/v2/models/mlp/infer", headers, truncated, "application/octet-stream");
  REQUIRE(res);
  CHECK(res->status == 400);
  CHECK_THAT(res->body, Catch::Contains("160 bytes of binary data expected, only 156 left"));
}

TEST_CASE("bad requests get a 4xx naming what was expected and what was given", "[serve]") {
  const Repository& repo = SharedRepository();
  ServerOptions options;
  options.max_request_bytes = 64 * 1024;
  RunningServer s(repo.root, options);
  const Tensor data = RandomTensor(kDataShape, 9);
  const auto post = [&](const std::string& path, const std::string& body) {
    auto res = s.client.Post(path, body, "application/json");
    REQUIRE(res);
    return std::pair{res->status, res->body};
  };
  const auto expect = [&](const std::string& path, const std::string& body, int status, const std::string& message) {
    INFO(body.substr(0, 200));
    const auto [code, text] = post(path, body);
    CHECK(code == status);
    const json error = json::parse(text);
    REQUIRE(error.contains("error"));
    CHECK_THAT(error["error"].get<std::string>(), Catch::Contains(message));
  };
  const std::string infer = "/v2/models/mlp/infer";
  expect(infer, "{not json", 400, "malformed JSON");
  expect(infer, "[1, 2]", 400, "must be a JSON object");
  json body = InferBody(data);
  body["inputs"][0]["datatype"] = "FP64";
  expect(infer, body.dump(), 400, "input 'data': datatype FP64, the model expects FP32");
  body = InferBody(data);
  body["inputs"][0]["shape"] = {1, 40};
  expect(infer, body.dump(), 400, "input 'data': shape [1, 40], the model expects [2, 20]");
  body = InferBody(data);
  body["inputs"][0]["data"] = {1, 2, 3};
  expect(infer, body.dump(), 400, "input 'data': 3 elements given, shape [2, 20] holds 40");
  body["inputs"][0]["data"] = json::array();
  for (int i = 0; i < 40; ++i) body["inputs"][0]["data"].push_back(i == 5 ? json("x") : json(1.0));
  expect(infer, body.dump(), 400, "input 'data': element 5 is \"x\", expected a number (FP32)");
  body = InferBody(data);
  body["inputs"][0]["name"] = "image";
  expect(infer, body.dump(), 400, "input 'image': the model has no such input (its inputs: data)");
  body = InferBody(data);
  body["inputs"].push_back(body["inputs"][0]);
  expect(infer, body.dump(), 400, "input 'data' is given twice");
  expect(infer, R"({"inputs": []})", 400, "missing input(s): data");
  body = InferBody(data);
  body["outputs"] = {{{"name", "logits"}}};
  expect(infer, body.dump(), 400, "requested output 'logits': the model has no such output");
  expect("/v2/models/nope/infer", InferBody(data).dump(), 404, "model 'nope' is not served");
  expect("/v2/models/mlp/versions/7/infer", InferBody(data).dump(), 404, "model 'mlp' version '7' is not served");
  // Nested data is the same tensor as flat data.
  body = InferBody(data);
  json nested = json::array();
  for (int r = 0; r < 2; ++r) {
    json row = json::array();
    for (int c = 0; c < 20; ++c) row.push_back(body["inputs"][0]["data"][r * 20 + c]);
    nested.push_back(row);
  }
  const auto flat_answer = post(infer, body.dump());
  body["inputs"][0]["data"] = nested;
  const auto nested_answer = post(infer, body.dump());
  CHECK(nested_answer.first == 200);
  CHECK(json::parse(nested_answer.second)["outputs"] == json::parse(flat_answer.second)["outputs"]);
  // Oversized bodies, unknown endpoints.
  auto res = s.client.Post(infer, std::string(100 * 1024, ' '), "application/json");
  REQUIRE(res);
  CHECK(res->status == 413);
  res = s.client.Get("/v2/nothing");
  REQUIRE(res);
  CHECK(res->status == 404);
  // It still serves.
  CHECK(post(infer, InferBody(data).dump()).first == 200);
}

TEST_CASE("metrics, the repository index, unload and load", "[serve]") {
  const Repository& repo = SharedRepository();
  RunningServer s(repo.root, {});
  const Tensor data = RandomTensor(kDataShape, 10);
  for (int i = 0; i < 3; ++i)
    REQUIRE(s.client.Post("/v2/models/mlp/infer", InferBody(data).dump(), "application/json")->status == 200);
  REQUIRE(s.client.Post("/v2/models/mlp/infer", "{", "application/json")->status == 400);
  auto res = s.client.Get("/metrics");
  REQUIRE(res);
  CHECK_THAT(res->body, Catch::Contains("kiln_inference_requests_total{model=\"mlp\",version=\"2\"} 3"));
  CHECK_THAT(res->body, Catch::Contains("kiln_inference_failures_total{model=\"mlp\",version=\"2\"} 1"));
  CHECK_THAT(res->body,
             Catch::Contains("kiln_inference_request_duration_seconds_count{model=\"mlp\",version=\"2\"} 3"));
  CHECK_THAT(res->body, Catch::Contains("kiln_inference_in_flight 0"));

  res = s.client.Post("/v2/repository/index", "", "application/json");
  REQUIRE(res);
  CHECK(json::parse(res->body) == json::parse(R"([{"name":"mlp","version":"1","state":"READY"},
                                                  {"name":"mlp","version":"2","state":"READY"}])"));
  REQUIRE(s.client.Post("/v2/repository/models/mlp/unload", "", "application/json")->status == 200);
  CHECK(s.client.Post("/v2/models/mlp/infer", InferBody(data).dump(), "application/json")->status == 404);
  CHECK(s.client.Get("/v2/models/mlp/ready")->status == 404);
  CHECK(s.client.Get("/v2/health/ready")->status == 200);  // unloaded on request: still ready
  REQUIRE(s.client.Post("/v2/repository/models/mlp/load", "", "application/json")->status == 200);
  CHECK(s.client.Post("/v2/models/mlp/infer", InferBody(data).dump(), "application/json")->status == 200);
  res = s.client.Post("/v2/repository/models/nope/load", "", "application/json");
  REQUIRE(res);
  CHECK(res->status == 400);
  CHECK_THAT(res->body, Catch::Contains("model 'nope': no directory"));
}

TEST_CASE("reloading a model whose files were replaced drops no request in flight", "[serve]") {
  // A repository of its own: version 1's file is replaced by version 2's while clients run.
  const Repository& repo = SharedRepository();
  const std::string root = repo.root + "_reload";
  fs::create_directories(root + "/mlp/1");
  fs::copy_file(repo.Artifact(1), root + "/mlp/1/model.kiln", fs::copy_options::overwrite_existing);
  RunningServer s(root, {});
  const Tensor data = RandomTensor(kDataShape, 14);
  const std::vector<Tensor> before = Executor::Load(repo.Artifact(1))->Run({data});
  const std::vector<Tensor> after = Executor::Load(repo.Artifact(2))->Run({data});
  const std::string body = InferBody(data).dump();
  std::atomic<bool> stop{false};
  std::vector<std::future<std::string>> clients;
  for (int c = 0; c < 4; ++c) {
    clients.push_back(std::async(std::launch::async, [&] {
      httplib::Client client("127.0.0.1", s.port);
      while (!stop) {
        auto res = client.Post("/v2/models/mlp/infer", body, "application/json");
        if (!res) return std::string("no response");
        if (res->status != 200) return "status " + std::to_string(res->status) + ": " + res->body;
        // Either version's outputs, whole: never a mix, never an error.
        const json out = json::parse(res->body)["outputs"][0]["data"];
        bool is_before = true, is_after = true;
        for (int64_t k = 0; k < before[0].size(); ++k) {
          const float v = static_cast<float>(out[k].get<double>());
          is_before &= v == before[0].data_as<float>()[k];
          is_after &= v == after[0].data_as<float>()[k];
        }
        if (!is_before && !is_after) return std::string("outputs of neither version");
      }
      return std::string();
    }));
  }
  for (int reload = 0; reload < 6; ++reload) {
    if (reload == 3) {
      // Replaced as a deployment would: written beside, then renamed over.
      fs::copy_file(repo.Artifact(2), root + "/mlp/1/model.kiln.new", fs::copy_options::overwrite_existing);
      fs::rename(root + "/mlp/1/model.kiln.new", root + "/mlp/1/model.kiln");
    }
    auto res = s.client.Post("/v2/repository/models/mlp/load", "", "application/json");
    REQUIRE(res);
    CHECK(res->status == 200);
  }
  stop = true;
  for (auto& client : clients) {
    const std::string problem = client.get();
    INFO(problem);
    CHECK(problem.empty());
  }
  // The replaced file is what the model serves now.
  auto res = s.client.Post("/v2/models/mlp/infer", body, "application/json");
  REQUIRE(res);
  REQUIRE(res->status == 200);
  CHECK(static_cast<float>(json::parse(res->body)["outputs"][0]["data"][0].get<double>()) ==
        after[0].data_as<float>()[0]);
  s.server.Stop();
  fs::remove_all(root);
}

TEST_CASE("a broken model leaves the server up and unready, with the reason in the index", "[serve]") {
  const std::string root = SharedRepository().root + "_broken";
  fs::create_directories(root + "/bad/1");
  WriteFileAtomic(root + "/bad/1/model.kiln", "not an artifact");
  fs::create_directories(root + "/mlp/1");
  fs::copy_file(SharedRepository().Artifact(1), root + "/mlp/1/model.kiln", fs::copy_options::overwrite_existing);
  {
    RunningServer s(root, {});
    CHECK(s.client.Get("/v2/health/ready")->status == 503);
    auto res = s.client.Post("/v2/repository/index", "", "application/json");
    REQUIRE(res);
    const json index = json::parse(res->body);
    REQUIRE(index.size() == 2);
    CHECK(index[0]["name"] == "bad");
    CHECK(index[0]["state"] == "UNAVAILABLE");
    CHECK_THAT(index[0]["reason"].get<std::string>(), Catch::Contains("model 'bad' version 1"));
    CHECK(s.client.Post("/v2/models/mlp/infer", InferBody(RandomTensor(kDataShape, 3)).dump(), "application/json")
              ->status == 200);
  }
  fs::remove_all(root);
}

TEST_CASE("concurrent clients beyond the slots and the queue get 200 or 503 with Retry-After", "[serve]") {
  const Repository& repo = SharedRepository();
  ServerOptions options;
  options.threads = 1;
  options.max_queue = 1;
  RunningServer s(repo.root, options);
  const Tensor data = RandomTensor(kDataShape, 11);
  const std::vector<Tensor> expected = Executor::Load(repo.Artifact(2))->Run({data});
  const std::string body = InferBody(data).dump();
  std::vector<std::future<std::pair<int, std::string>>> calls;
  for (int c = 0; c < 8; ++c) {
    calls.push_back(std::async(std::launch::async, [&] {
      httplib::Client client("127.0.0.1", s.port);
      int ok = 0;
      std::string problem;
      for (int i = 0; i < 20; ++i) {
        auto res = client.Post("/v2/models/mlp/infer", body, "application/json");
        if (!res) return std::pair{ok, std::string("no response")};
        if (res->status == 503 && res->get_header_value("Retry-After") == "1") continue;
        if (res->status != 200) return std::pair{ok, "status " + std::to_string(res->status) + ": " + res->body};
        const json out = json::parse(res->body)["outputs"][0]["data"];
        for (int64_t k = 0; k < expected[0].size(); ++k) {
          if (static_cast<float>(out[k].get<double>()) != expected[0].data_as<float>()[k])
            return std::pair{ok, std::string("wrong output")};
        }
        ++ok;
      }
      return std::pair{ok, problem};
    }));
  }
  int answered = 0;
  for (auto& call : calls) {
    const auto [ok, problem] = call.get();
    INFO(problem);
    CHECK(problem.empty());
    answered += ok;
  }
  CHECK(answered > 0);
  s.server.Stop();
  // Stopped: nothing listens on the port any more.
  httplib::Client after("127.0.0.1", s.port);
  after.set_connection_timeout(1, 0);
  CHECK_FALSE(after.Get("/v2/health/live"));
}

// A repository with "mlp" compiled for batch sizes 1, 2, 4 and 8, and the same artifact as
// "mlp_unbatched" whose config turns batching off.
struct BatchedRepository {
  std::string root = fs::temp_directory_path() / ("kiln_serve_batched_" + std::to_string(::getpid()));
  Graph graph = testing::WithRandomParams(testing::TestMlp(32), {{"data", {1, 20}}}, 300);
  BatchedRepository() {
    CompileOptions options;
    options.input_shapes = {{"data", {1, 20}}};
    options.batch_sizes = {1, 2, 4, 8};
    const proto::ArtifactProto artifact = CompileGraph(graph, options);
    for (const std::string model : {"mlp", "mlp_unbatched"}) {
      fs::create_directories(root + "/" + model + "/1");
      SaveArtifact(root + "/" + model + "/1/model.kiln", artifact);
    }
    WriteFileAtomic(root + "/mlp_unbatched/config.pbtxt",
                    "name: \"mlp_unbatched\"\nmax_batch_size: 0\nbackend: \"kiln\"\nversion_policy { latest { "
                    "num_versions: 1 } }\n");
  }
  ~BatchedRepository() { fs::remove_all(root); }
};

// Rows [first, first + rows) of `data`.
Tensor Rows(const Tensor& data, int64_t first, int64_t rows) {
  Shape shape = data.shape();
  const size_t row_bytes = data.nbytes() / static_cast<size_t>(shape[0]);
  shape[0] = rows;
  Tensor part(shape, data.dtype());
  std::memcpy(part.data(), static_cast<const char*>(data.data()) + first * row_bytes, part.nbytes());
  return part;
}

// The binary output of an infer response; an empty tensor when its size is not the
// shape's. No Catch assertion inside: client threads call it (Catch is not thread-safe).
Tensor BinaryOutput(const httplib::Result& res, const Shape& shape) {
  const size_t json_length =
      std::strtoul(res->get_header_value("Inference-Header-Content-Length").c_str(), nullptr, 10);
  Tensor out(shape, DType::kFloat32);
  if (json_length > res->body.size() || res->body.size() - json_length != out.nbytes()) return Tensor();
  std::memcpy(out.data(), res->body.data() + json_length, out.nbytes());
  return out;
}

std::pair<std::string, httplib::Headers> BinaryInferBody(const Tensor& data) {
  const json header = {{"inputs",
                        {{{"name", "data"},
                          {"shape", data.shape()},
                          {"datatype", "FP32"},
                          {"parameters", {{"binary_data_size", data.nbytes()}}}}}},
                       {"parameters", {{"binary_data_output", true}}}};
  const std::string head = header.dump();
  return {head + std::string(static_cast<const char*>(data.data()), data.nbytes()),
          {{"Inference-Header-Content-Length", std::to_string(head.size())}}};
}

TEST_CASE("dynamic batching: concurrent requests of 1 to 3 rows run together, each answered its rows bit for bit",
          "[serve][batching]") {
  const BatchedRepository repo;
  ServerOptions options;
  options.threads = 1;
  options.max_queue_delay_us = 5000;
  RunningServer s(repo.root, options);
  const auto reference = Executor::Load(repo.root + "/mlp/1/model.kiln");

  auto res = s.client.Get("/v2/models/mlp");
  REQUIRE(res);
  const json metadata = json::parse(res->body);
  CHECK(metadata["inputs"][0]["shape"] == json({-1, 20}));
  CHECK(metadata["outputs"][0]["shape"] == json({-1, 10}));

  constexpr int kClients = 12, kRequests = 10;
  std::atomic<int> mismatches{0}, failures{0}, rows_sent{0};
  std::vector<std::thread> clients;
  for (int c = 0; c < kClients; ++c) {
    clients.emplace_back([&, c] {
      httplib::Client client("127.0.0.1", s.port);
      client.set_read_timeout(30, 0);
      for (int r = 0; r < kRequests; ++r) {
        const int64_t rows = 1 + (c + r) % 3;
        const Tensor data = RandomTensor({rows, 20}, 1000 * c + r);
        const auto [body, headers] = BinaryInferBody(data);
        const auto response = client.Post("/v2/models/mlp/infer", headers, body, "application/octet-stream");
        if (!response || response->status != 200) {
          ++failures;
          continue;
        }
        rows_sent += static_cast<int>(rows);
        const Tensor got = BinaryOutput(response, {rows, 10});
        if (!got.defined()) {
          ++mismatches;
          continue;
        }
        // Each row as batch 1 computes it alone.
        for (int64_t row = 0; row < rows; ++row) {
          const Tensor alone = reference->Run({Rows(data, row, 1)})[0];
          if (!Rows(got, row, 1).BitwiseEquals(alone)) ++mismatches;
        }
      }
    });
  }
  for (std::thread& client : clients) client.join();
  CHECK(failures == 0);
  CHECK(mismatches == 0);

  res = s.client.Get("/metrics");
  REQUIRE(res);
  const std::string& text = res->body;
  const std::string labels = "{model=\"mlp\",version=\"1\"}";
  const auto value = [&](const std::string& name) {
    const size_t at = text.find(name + labels + " ");
    REQUIRE(at != std::string::npos);
    return std::stod(text.substr(at + name.size() + labels.size() + 1));
  };
  const double batches = value("kiln_inference_batch_rows_count");
  CHECK(value("kiln_inference_batch_rows_sum") == rows_sent.load());
  CHECK(value("kiln_inference_requests_total") == kClients * kRequests);
  // Twelve clients on one slot: batches hold several requests.
  CHECK(batches < kClients * kRequests / 2);
  CHECK(text.find("kiln_inference_batch_rows_bucket{model=\"mlp\",version=\"1\",le=\"8\"} " +
                  std::to_string(static_cast<int64_t>(batches))) != std::string::npos);

  // Rows beyond the largest batch size, and a model whose config turns batching off: it
  // runs the batch sizes it was compiled for, as they are, and names them otherwise.
  auto [body, headers] = BinaryInferBody(RandomTensor({9, 20}, 5));
  res = s.client.Post("/v2/models/mlp/infer", headers, body, "application/octet-stream");
  REQUIRE(res);
  CHECK(res->status == 400);
  CHECK_THAT(res->body, Catch::Contains("a request of 9 rows (axis 0); the model takes 1 to 8"));
  const Tensor four = RandomTensor({4, 20}, 6);
  std::tie(body, headers) = BinaryInferBody(four);
  res = s.client.Post("/v2/models/mlp_unbatched/infer", headers, body, "application/octet-stream");
  REQUIRE(res);
  REQUIRE(res->status == 200);
  CHECK(BinaryOutput(res, {4, 10}).BitwiseEquals(reference->Run({four})[0]));
  std::tie(body, headers) = BinaryInferBody(RandomTensor({3, 20}, 7));
  res = s.client.Post("/v2/models/mlp_unbatched/infer", headers, body, "application/octet-stream");
  REQUIRE(res);
  CHECK(res->status == 400);
  CHECK_THAT(res->body, Catch::Contains("compiled for batch sizes 1, 2, 4, 8"));
  res = s.client.Get("/metrics");
  REQUIRE(res);
  CHECK(res->body.find("kiln_inference_batch_rows_count{model=\"mlp_unbatched\"") == std::string::npos);
}

TEST_CASE("a model config that does not parse leaves the model unavailable, the reason naming the line",
          "[serve][batching]") {
  const BatchedRepository repo;
  WriteFileAtomic(repo.root + "/mlp/config.pbtxt", "max_batch_size: 4\ndynamic_batching { max_queue_delay: }\n");
  ModelRepository models(repo.root, {});
  const std::vector<std::string> failures = models.LoadAll();
  REQUIRE(failures.size() == 1);
  CHECK_THAT(failures[0], Catch::Contains("config.pbtxt: line 2"));
  CHECK(models.Find("mlp_unbatched") != nullptr);
  WriteFileAtomic(repo.root + "/mlp/config.pbtxt", "max_batch_size: -2\n");
  CHECK_THROWS_WITH(models.Load("mlp"), Catch::Contains("max_batch_size -2"));
}

// The gRPC endpoint through gRPC's own generated client: the same service as HTTP.
TEST_CASE("gRPC: health, metadata, inference bit for bit, and refusals with their status codes", "[serve][grpc]") {
  const Repository& repo = SharedRepository();
  ModelRepository models(repo.root, {});
  REQUIRE(models.LoadAll().empty());
  ServerOptions options;
  options.grpc_port = 0;
  InferenceService service(models, options);
  GrpcServer server(service);
  const int port = server.Start();
  const auto channel = grpc::CreateChannel("127.0.0.1:" + std::to_string(port), grpc::InsecureChannelCredentials());
  const auto stub = inference::GRPCInferenceService::NewStub(channel);
  const auto call = [&](auto method, const auto& request, auto& response) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    return ((*stub).*method)(&context, request, &response);
  };

  inference::ServerLiveResponse live;
  REQUIRE(call(&inference::GRPCInferenceService::Stub::ServerLive, inference::ServerLiveRequest(), live).ok());
  CHECK(live.live());
  inference::ModelMetadataRequest metadata_request;
  metadata_request.set_name("mlp");
  inference::ModelMetadataResponse metadata;
  REQUIRE(call(&inference::GRPCInferenceService::Stub::ModelMetadata, metadata_request, metadata).ok());
  CHECK(metadata.versions_size() == 2);
  REQUIRE(metadata.inputs_size() == 1);
  CHECK(metadata.inputs(0).datatype() == "FP32");
  CHECK(std::vector<int64_t>(metadata.inputs(0).shape().begin(), metadata.inputs(0).shape().end()) == kDataShape);

  const Tensor data = RandomTensor(kDataShape, 21);
  const std::vector<Tensor> expected = Executor::Load(repo.Artifact(2))->Run({data});
  const auto request_for = [&](bool raw) {
    inference::ModelInferRequest request;
    request.set_model_name("mlp");
    request.set_id("g1");
    auto* input = request.add_inputs();
    input->set_name("data");
    input->set_datatype("FP32");
    for (const int64_t dim : data.shape()) input->add_shape(dim);
    if (raw) {
      request.add_raw_input_contents(static_cast<const char*>(data.data()), data.nbytes());
    } else {
      for (int64_t i = 0; i < data.size(); ++i) input->mutable_contents()->add_fp32_contents(data.data_as<float>()[i]);
    }
    return request;
  };
  for (const bool raw : {true, false}) {
    INFO("raw " << raw);
    inference::ModelInferResponse response;
    const grpc::Status status = call(&inference::GRPCInferenceService::Stub::ModelInfer, request_for(raw), response);
    REQUIRE(status.ok());
    CHECK(response.id() == "g1");
    CHECK(response.model_version() == "2");
    REQUIRE(response.raw_output_contents_size() == 1);
    CHECK(response.outputs(0).name() == "softmax_output");
    REQUIRE(response.raw_output_contents(0).size() == expected[0].nbytes());
    CHECK(std::memcmp(response.raw_output_contents(0).data(), expected[0].data(), expected[0].nbytes()) == 0);
  }

  const auto refused = [&](const inference::ModelInferRequest& request, grpc::StatusCode code,
                           const std::string& message) {
    inference::ModelInferResponse response;
    const grpc::Status status = call(&inference::GRPCInferenceService::Stub::ModelInfer, request, response);
    CHECK(status.error_code() == code);
    CHECK_THAT(status.error_message(), Catch::Contains(message));
  };
  inference::ModelInferRequest bad = request_for(true);
  bad.mutable_inputs(0)->set_datatype("FP64");
  refused(bad, grpc::StatusCode::INVALID_ARGUMENT, "input 'data': datatype FP64, the model expects FP32");
  bad = request_for(true);
  bad.mutable_raw_input_contents(0)->resize(12);
  refused(bad, grpc::StatusCode::INVALID_ARGUMENT, "12 bytes of raw_input_contents, shape [2, 20] of FP32 takes 160");
  bad = request_for(false);
  bad.mutable_inputs(0)->mutable_contents()->mutable_fp32_contents()->RemoveLast();
  refused(bad, grpc::StatusCode::INVALID_ARGUMENT, "39 elements in contents.fp32_contents, its shape holds 40");
  bad = request_for(true);
  bad.mutable_inputs(0)->set_shape(0, -3);
  refused(bad, grpc::StatusCode::INVALID_ARGUMENT, "shape [-3, 20], the model expects [2, 20]");
  bad = request_for(true);
  bad.add_outputs()->set_name("nope");
  refused(bad, grpc::StatusCode::INVALID_ARGUMENT, "requested output 'nope': the model has no such output");
  bad = request_for(true);
  bad.clear_inputs();
  bad.clear_raw_input_contents();
  refused(bad, grpc::StatusCode::INVALID_ARGUMENT, "missing input(s): data");
  bad = request_for(true);
  bad.mutable_inputs(0)->set_name(std::string("da\0ta", 5));
  refused(bad, grpc::StatusCode::INVALID_ARGUMENT, "input 'da\\x00ta': the model has no such input");
  bad = request_for(true);
  bad.set_model_name("nope");
  refused(bad, grpc::StatusCode::NOT_FOUND, "model 'nope' is not served");

  inference::RepositoryIndexResponse index;
  REQUIRE(
      call(&inference::GRPCInferenceService::Stub::RepositoryIndex, inference::RepositoryIndexRequest(), index).ok());
  CHECK(index.models_size() == 2);
  server.Stop();
}

TEST_CASE("execution slots: first come, first served; a full line and a timeout refuse", "[serve]") {
  ExecutionSlots slots(1);
  using Outcome = ExecutionSlots::Outcome;
  REQUIRE(slots.Acquire(0, std::chrono::milliseconds(1)) == Outcome::kGranted);
  CHECK(slots.Acquire(0, std::chrono::milliseconds(1000)) == Outcome::kQueueFull);
  CHECK(slots.Acquire(4, std::chrono::milliseconds(10)) == Outcome::kTimedOut);
  CHECK(slots.waiting() == 0);  // the timed-out waiter left the line
  // Three waiters join the line one after another; the slot goes to them in that order.
  // (Catch's assertions are not for other threads: they record, the test checks.)
  std::mutex order_mutex;
  std::vector<int> order;
  std::vector<std::thread> waiters;
  for (int w = 0; w < 3; ++w) {
    waiters.emplace_back([&, w] {
      const bool granted = slots.Acquire(8, std::chrono::milliseconds(60000)) == Outcome::kGranted;
      {
        std::lock_guard lock(order_mutex);
        order.push_back(granted ? w : -1);
      }
      if (granted) slots.Release();
    });
    while (slots.waiting() != w + 1) std::this_thread::yield();
  }
  slots.Release();
  for (std::thread& waiter : waiters) waiter.join();
  CHECK(order == std::vector<int>{0, 1, 2});
  // Free again: granted at once.
  CHECK(slots.Acquire(0, std::chrono::milliseconds(1)) == Outcome::kGranted);
  slots.Release();
}

TEST_CASE("a JSON body of an image's 150,528 numbers parses to the same tensor", "[serve][regression]") {
  const Shape shape = {1, 3, 224, 224};
  const Tensor data = RandomTensor(shape, 31);
  json values = json::array();
  for (int64_t i = 0; i < data.size(); ++i) values.push_back(data.data_as<float>()[i]);
  const json body = {{"inputs", {{{"name", "input"}, {"shape", shape}, {"datatype", "FP32"}, {"data", values}}}}};
  const std::vector<TensorSpec> inputs = {{"input", DType::kFloat32, shape}};
  const std::vector<TensorSpec> outputs = {{"output", DType::kFloat32, {1, 1000}}};
  const InferRequest request = ParseInferRequest(body.dump(), std::nullopt, inputs, outputs);
  REQUIRE(request.inputs.size() == 1);
  CHECK(request.inputs[0].BitwiseEquals(data));
}

TEST_CASE("protocol datatypes", "[serve]") {
  for (const DType dtype : {DType::kBool, DType::kUInt8, DType::kInt32, DType::kInt64, DType::kFloat16, DType::kFloat32,
                            DType::kFloat64, DType::kBFloat16}) {
    CHECK(ParseDatatype(DatatypeName(dtype)) == dtype);
  }
  CHECK(DatatypeName(DType::kFloat32) == "FP32");
  CHECK_FALSE(ParseDatatype("BYTES"));
  // Integers are range-checked.
  const std::vector<TensorSpec> inputs = {{"x", DType::kUInt8, {2}}};
  const std::vector<TensorSpec> outputs = {{"y", DType::kUInt8, {2}}};
  CHECK_THROWS_WITH(ParseInferRequest(R"({"inputs":[{"name":"x","shape":[2],"datatype":"UINT8","data":[1,300]}]})",
                                      std::nullopt, inputs, outputs),
                    Catch::Contains("input 'x': element 1 is 300, outside UINT8's range [0, 255]"));
  const InferRequest ok = ParseInferRequest(
      R"({"inputs":[{"name":"x","shape":[2],"datatype":"UINT8","data":[1,255]}]})", std::nullopt, inputs, outputs);
  CHECK(ok.inputs[0].data_as<uint8_t>()[1] == 255);
}

// Random and mutated requests to every endpoint: the server answers each with a status it
// documents and a JSON body where it is an error, and still serves afterwards.
TEST_CASE("the HTTP endpoints under random and mutated requests", "[serve][fuzz]") {
  const Repository& repo = SharedRepository();
  ServerOptions options;
  options.max_request_bytes = 16 * 1024;
  RunningServer s(repo.root, options);
  const Tensor data = RandomTensor(kDataShape, 13);
  const std::string valid = InferBody(data).dump();
  const std::vector<std::string> paths = {"/v2/models/mlp/infer",
                                          "/v2/models/mlp/versions/1/infer",
                                          "/v2/models/mlp",
                                          "/v2/models/mlp/ready",
                                          "/v2/health/ready",
                                          "/v2/repository/index",
                                          "/v2/models/%00/infer",
                                          "/v2/models/mlp/versions/-1/infer",
                                          "/metrics",
                                          "/v2/models/../../etc/passwd/infer"};
  std::mt19937_64 rng(2026);
  const auto mutate = [&](std::string body) {
    const int edits = 1 + static_cast<int>(rng() % 8);
    for (int e = 0; e < edits && !body.empty(); ++e) {
      const size_t at = rng() % body.size();
      switch (rng() % 4) {
        case 0: body[at] = static_cast<char>(rng() % 256); break;
        case 1: body.erase(at, 1 + rng() % 16); break;
        case 2: body.insert(at, body.substr(rng() % body.size(), 1 + rng() % 32)); break;
        default: body.resize(at); break;
      }
    }
    return body;
  };
  for (int i = 0; i < 400; ++i) {
    const std::string& path = paths[rng() % paths.size()];
    std::string body = rng() % 8 == 0 ? std::string(rng() % 20000, static_cast<char>(rng() % 256)) : mutate(valid);
    httplib::Headers headers;
    if (rng() % 4 == 0) headers.emplace("Inference-Header-Content-Length", std::to_string(rng() % (body.size() + 8)));
    INFO("request " << i << " POST " << path << " (" << body.size() << " bytes)");
    auto res = s.client.Post(path, headers, body, "application/json");
    REQUIRE(res);
    CHECK((res->status == 200 || res->status == 400 || res->status == 404 || res->status == 413));
    if (res->status >= 400 && res->status != 404) {
      const json error = json::parse(res->body, nullptr, false);
      CHECK((!error.is_discarded() && error.contains("error")));
    }
  }
  auto res = s.client.Post("/v2/models/mlp/infer", valid, "application/json");
  REQUIRE(res);
  CHECK(res->status == 200);
}

// The kiln-serve binary: it links no LLVM, serves, and exits 0 on SIGTERM.
TEST_CASE("kiln-serve links the runtime only and stops gracefully on SIGTERM", "[serve]") {
  const std::string binary = "serve/kiln-serve";
  REQUIRE(fs::exists(binary));
  FILE* ldd = popen(("ldd " + binary + " 2>&1").c_str(), "r");
  REQUIRE(ldd != nullptr);
  std::string libraries;
  char line[512];
  while (fgets(line, sizeof line, ldd) != nullptr) libraries += line;
  pclose(ldd);
  INFO(libraries);
  CHECK(libraries.find("libLLVM") == std::string::npos);
  CHECK(libraries.find("libcpp-httplib") != std::string::npos);

  int pipe_fds[2];
  REQUIRE(pipe(pipe_fds) == 0);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, pipe_fds[1], STDERR_FILENO);
  posix_spawn_file_actions_addclose(&actions, pipe_fds[0]);
  const std::string root = SharedRepository().root;
  // No gRPC endpoint: under --config=tsan the uninstrumented libgrpc would be reported in
  // the server process (the in-process gRPC case covers it, with suppressions).
  const std::vector<std::string> flags = {"--model-repository", root, "--http-port", "0",
                                          "--grpc-port",        "-1", "--threads",   "2"};
  std::vector<std::string> args = {binary};
  args.insert(args.end(), flags.begin(), flags.end());
  std::vector<char*> argv;
  for (std::string& arg : args) argv.push_back(arg.data());
  argv.push_back(nullptr);
  pid_t pid = 0;
  REQUIRE(posix_spawn(&pid, binary.c_str(), &actions, nullptr, argv.data(), environ) == 0);
  posix_spawn_file_actions_destroy(&actions);
  close(pipe_fds[1]);
  // "kiln-serve: listening on http://127.0.0.1:PORT"
  FILE* err = fdopen(pipe_fds[0], "r");
  std::string first;
  while (fgets(line, sizeof line, err) != nullptr) {
    first = line;
    if (first.find("listening on") != std::string::npos) break;
  }
  INFO(first);
  const size_t colon = first.rfind(':');
  REQUIRE(colon != std::string::npos);
  const int port = std::stoi(first.substr(colon + 1));
  httplib::Client client("127.0.0.1", port);
  client.set_read_timeout(30, 0);
  auto res = client.Post("/v2/models/mlp/infer", InferBody(RandomTensor(kDataShape, 12)).dump(), "application/json");
  REQUIRE(res);
  CHECK(res->status == 200);
  REQUIRE(kill(pid, SIGTERM) == 0);
  int status = 0;
  REQUIRE(waitpid(pid, &status, 0) == pid);
  CHECK(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
  std::string rest;
  while (fgets(line, sizeof line, err) != nullptr) rest += line;
  fclose(err);
  CHECK_THAT(rest, Catch::Contains("SIGTERM: finishing the requests in flight"));

  // One artifact that does not load: an error naming it, exit status 1, no server.
  FILE* missing = popen((binary + " /nonexistent/model.kiln --http-port 0 --grpc-port 0 2>&1").c_str(), "r");
  REQUIRE(missing != nullptr);
  std::string message;
  while (fgets(line, sizeof line, missing) != nullptr) message += line;
  const int missing_status = pclose(missing);
  CHECK(WEXITSTATUS(missing_status) == 1);
  CHECK_THAT(message,
             Catch::Contains("kiln-serve: error: model 'model' version 1: cannot open '/nonexistent/model.kiln'"));
}

}  // namespace
}  // namespace kiln::serve
