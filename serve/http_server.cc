#include "serve/http_server.h"

#include <fmt/format.h>
#include <httplib.h>
#include <sys/socket.h>

#include <charconv>
#include <chrono>
#include <iostream>
#include <nlohmann/json.hpp>

#include "runtime/error.h"
#include "runtime/version.h"
#include "serve/protocol.h"

namespace kiln::serve {

namespace {

using nlohmann::json;

constexpr const char* kJson = "application/json";

void Reply(httplib::Response& res, int status, const std::string& body) {
  res.status = status;
  res.set_content(body, kJson);
}

void ReplyError(httplib::Response& res, int status, const std::string& message) {
  Reply(res, status, ErrorJson(message));
}

void Respond(httplib::Response& res, const InferResponse& response) {
  if (response.header_length) {
    res.set_header("Inference-Header-Content-Length", std::to_string(*response.header_length));
    res.set_content(response.body, "application/octet-stream");
  } else {
    res.set_content(response.body, kJson);
  }
}

int LogRank(const std::string& level) {
  if (level == "error") return 0;
  if (level == "warning") return 1;
  if (level == "debug") return 3;
  return 2;
}

// The model and version of a route: /v2/models/<name>[/versions/<version>]/...
struct ModelRef {
  std::string name;
  std::string version;
};
ModelRef RefOf(const httplib::Request& req) {
  return {req.matches[1].str(), req.matches.size() > 2 ? req.matches[2].str() : ""};
}

}  // namespace

HttpServer::HttpServer(ModelRepository& repository, ServerOptions options)
    : own_service_(std::make_unique<InferenceService>(repository, std::move(options))),
      service_(*own_service_),
      repository_(service_.repository()),
      options_(service_.options()),
      server_(std::make_unique<httplib::Server>()) {
  Route();
}

HttpServer::HttpServer(InferenceService& service)
    : service_(service),
      repository_(service.repository()),
      options_(service.options()),
      server_(std::make_unique<httplib::Server>()) {
  Route();
}

HttpServer::~HttpServer() {
  Stop();
}

void HttpServer::Route() {
  httplib::Server& s = *server_;
  // Connection threads: the execution slots, the queue, and a few for health checks and
  // metrics while everything else waits. httplib's interface takes ownership of a raw
  // TaskQueue pointer.
  const size_t connection_threads = static_cast<size_t>(options_.threads + options_.max_queue + 4);
  s.new_task_queue = [connection_threads] { return new httplib::ThreadPool(connection_threads); };
  s.set_payload_max_length(static_cast<size_t>(options_.max_request_bytes));
  s.set_read_timeout(options_.io_timeout_s, 0);
  s.set_write_timeout(options_.io_timeout_s, 0);
  s.set_keep_alive_max_count(1000);
  // Responses go out in one or two writes (headers, body): without TCP_NODELAY, Nagle's
  // algorithm held the second until the client's delayed ACK, 40 ms later (every request
  // of a keep-alive connection took 44 ms).
  s.set_tcp_nodelay(true);
  // Debian's cpp-httplib listens with a backlog of 5 (compiled into the library): a burst
  // of connections (wrk opening 64 at once) overflowed it and some were reset. The
  // listening socket is kept here and listen() called again with the system's maximum.
  s.set_socket_options([this](socket_t sock) {
    httplib::default_socket_options(sock);
    listen_socket_ = sock;
  });

  const int log_rank = LogRank(options_.log_level);
  s.set_logger([log_rank](const httplib::Request& req, const httplib::Response& res) {
    if (log_rank < 2 && res.status < 500) return;
    const json line = {{"method", req.method},        {"path", req.path},
                       {"status", res.status},        {"remote", req.remote_addr},
                       {"bytes_in", req.body.size()}, {"bytes_out", res.body.size()}};
    std::clog << line.dump() << '\n';
  });
  s.set_error_handler([](const httplib::Request& req, httplib::Response& res) {
    if (!res.body.empty()) return;
    const std::string message = res.status == 413 ? "the request body exceeds the server's limit (--max-request-bytes)"
                                : res.status == 404 ? "no endpoint " + req.method + " " + req.path
                                                    : "HTTP " + std::to_string(res.status);
    ReplyError(res, res.status, message);
  });
  s.set_exception_handler([](const httplib::Request&, httplib::Response& res, std::exception_ptr error) {
    std::string message = "internal error";
    try {
      std::rethrow_exception(error);
    } catch (const std::exception& e) {
      message = e.what();
    }
    ReplyError(res, 500, message);
  });

  s.Get("/v2/health/live",
        [](const httplib::Request&, httplib::Response& res) { Reply(res, 200, R"({"live":true})"); });
  s.Get("/v2/health/ready", [this](const httplib::Request&, httplib::Response& res) {
    const bool ready = repository_.AllReady();
    Reply(res, ready ? 200 : 503, json{{"ready", ready}}.dump());
  });
  s.Get("/v2", [](const httplib::Request&, httplib::Response& res) {
    Reply(res, 200,
          json{{"name", "kiln"}, {"version", kKilnVersion}, {"extensions", {"binary_tensor_data", "model_repository"}}}
              .dump());
  });
  s.Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
    res.set_content(service_.metrics().Text(), "text/plain; version=0.0.4");
  });

  // The version a route names, or nullptr after answering 404 naming it.
  const auto find = [this](const ModelRef& ref, httplib::Response& res) -> std::shared_ptr<const ModelVersion> {
    try {
      return service_.Find(ref.name, ref.version);
    } catch (const ProtocolError& e) {
      ReplyError(res, e.status(), e.what());
      return nullptr;
    }
  };
  const auto metadata = [this, find](const httplib::Request& req, httplib::Response& res) {
    const ModelRef ref = RefOf(req);
    const auto model = find(ref, res);
    if (!model) return;
    Reply(res, 200,
          ModelMetadataJson(ref.name, repository_.Versions(ref.name), InferenceService::InputSpecs(*model),
                            InferenceService::OutputSpecs(*model)));
  };
  s.Get(R"(/v2/models/([^/]+))", metadata);
  s.Get(R"(/v2/models/([^/]+)/versions/([^/]+))", metadata);

  const auto model_ready = [this](const httplib::Request& req, httplib::Response& res) {
    const ModelRef ref = RefOf(req);
    const bool ready = repository_.Find(ref.name, ref.version) != nullptr;
    Reply(res, ready ? 200 : 404, json{{"name", ref.name}, {"ready", ready}}.dump());
  };
  s.Get(R"(/v2/models/([^/]+)/ready)", model_ready);
  s.Get(R"(/v2/models/([^/]+)/versions/([^/]+)/ready)", model_ready);

  const auto infer = [this, find](const httplib::Request& req, httplib::Response& res) {
    const auto arrived = SteadyClock::now();
    const ModelRef ref = RefOf(req);
    const auto model = find(ref, res);
    if (!model) return;
    const std::string version = std::to_string(model->version);
    Metrics& metrics = service_.metrics();
    const Metrics::InFlightGuard in_flight(metrics);
    try {
      std::optional<size_t> header_length;
      if (req.has_header("Inference-Header-Content-Length")) {
        const std::string value = req.get_header_value("Inference-Header-Content-Length");
        size_t parsed = 0;
        const auto [end, error] = std::from_chars(value.data(), value.data() + value.size(), parsed);
        if (error != std::errc() || end != value.data() + value.size()) {
          throw ProtocolError(400, "Inference-Header-Content-Length '" + value + "' is not a byte count");
        }
        header_length = parsed;
      }
      InferRequest request = service_.Parse([&] {
        return ParseInferRequest(req.body, header_length, InferenceService::InputSpecs(*model), model->outputs());
      });
      InferenceService::Outcome outcome = service_.Run(*model, std::move(request.inputs));
      Respond(res, BuildInferResponse(ref.name, version, request, model->outputs(), outcome.outputs));
      metrics.RecordSuccess(ref.name, version, outcome.queue_seconds, outcome.compute_seconds, SecondsSince(arrived));
    } catch (const ProtocolError& e) {
      metrics.RecordFailure(ref.name, version);
      if (e.status() == 503) res.set_header("Retry-After", "1");
      ReplyError(res, e.status(), e.what());
    } catch (const Error& e) {
      metrics.RecordFailure(ref.name, version);
      ReplyError(res, 400, e.what());
    }
  };
  s.Post(R"(/v2/models/([^/]+)/infer)", infer);
  s.Post(R"(/v2/models/([^/]+)/versions/([^/]+)/infer)", infer);

  s.Post("/v2/repository/index", [this](const httplib::Request&, httplib::Response& res) {
    json index = json::array();
    for (const IndexEntry& entry : repository_.Index()) {
      json item = {{"name", entry.name}, {"state", entry.state}};
      if (!entry.version.empty()) item["version"] = entry.version;
      if (!entry.reason.empty()) item["reason"] = entry.reason;
      index.push_back(std::move(item));
    }
    Reply(res, 200, index.dump());
  });
  // Load and unload: 200 {} or 400 with the reason.
  const auto repository_action = [this](void (ModelRepository::*action)(const std::string&)) {
    return [this, action](const httplib::Request& req, httplib::Response& res) {
      try {
        (repository_.*action)(req.matches[1].str());
        Reply(res, 200, "{}");
      } catch (const Error& e) {
        ReplyError(res, 400, e.what());
      }
    };
  };
  s.Post(R"(/v2/repository/models/([^/]+)/load)", repository_action(&ModelRepository::Load));
  s.Post(R"(/v2/repository/models/([^/]+)/unload)", repository_action(&ModelRepository::Unload));
}

int HttpServer::Start() {
  int port = options_.http_port;
  if (port == 0) {
    port = server_->bind_to_any_port(options_.host);
  } else if (!server_->bind_to_port(options_.host, port)) {
    port = -1;
  }
  if (port < 0) throw Error(fmt::format("cannot listen on {}:{}", options_.host, options_.http_port));
  if (listen_socket_ >= 0) ::listen(listen_socket_, SOMAXCONN);
  listener_ = std::thread([this] { server_->listen_after_bind(); });
  return port;
}

void HttpServer::Stop() {
  if (!listener_.joinable()) return;
  server_->stop();  // closes the listening socket; the task queue finishes what it holds
  listener_.join();
}

}  // namespace kiln::serve
