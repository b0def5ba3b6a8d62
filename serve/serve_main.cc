// kiln-serve (and `kiln serve`): serves compiled artifacts over the Open Inference Protocol (KServe v2).
//
//   kiln-serve --model-repository DIR [--http-port 8000] [--grpc-port 8001] [--threads N]
//              [--max-batch-size B] [--max-queue-delay-us T] ...
//   kiln-serve model.kiln             (one artifact, served as its file name's stem)
//
// SIGTERM and SIGINT stop it gracefully: it stops accepting connections, lets the
// requests in flight finish, and exits 0.
#include "serve/serve_main.h"

#include <malloc.h>
#include <pthread.h>

#include <CLI/CLI.hpp>
#include <csignal>
#include <filesystem>
#include <iostream>
#include <optional>
#include <thread>

#include "runtime/error.h"
#include "serve/grpc_server.h"
#include "serve/http_server.h"
#include "serve/inference_service.h"
#include "serve/model_repository.h"

namespace kiln::serve {

int ServeMain(int argc, char** argv) {
  CLI::App app{"kiln-serve: compiled kiln artifacts behind the Open Inference Protocol (KServe v2) over HTTP and gRPC"};
  std::string repository_dir;
  std::string artifact;
  kiln::serve::ServerOptions options;
  int intra_op_threads = 1;
  app.add_option("artifact", artifact, "serve one .kiln artifact (instead of --model-repository)");
  app.add_option("--model-repository", repository_dir, "a directory laid out as DIR/<model>/<version>/model.kiln");
  app.add_option("--host", options.host, "address to listen on")->capture_default_str();
  app.add_option("--http-port", options.http_port, "HTTP port (0: any free port)")
      ->check(CLI::Range(0, 65535))
      ->capture_default_str();
  app.add_option("--grpc-port", options.grpc_port, "gRPC port (0: any free port, -1: no gRPC endpoint)")
      ->check(CLI::Range(-1, 65535))
      ->capture_default_str();
  app.add_option("--threads", options.threads, "requests run at once (0: one per hardware thread)")
      ->check(CLI::Range(0, 1024))
      ->capture_default_str();
  app.add_option("--intra-op-threads", intra_op_threads, "threads each request's kernels use")
      ->check(CLI::Range(1, 1024))
      ->capture_default_str();
  app.add_option("--max-queue", options.max_queue, "requests that may wait for a slot before 503")
      ->check(CLI::Range(0, 100000))
      ->capture_default_str();
  app.add_option("--queue-timeout-ms", options.queue_timeout_ms, "the longest a request waits for a slot")
      ->check(CLI::Range(int64_t{1}, int64_t{3600000}))
      ->capture_default_str();
  app.add_option("--max-request-bytes", options.max_request_bytes, "larger bodies get 413")
      ->check(CLI::Range(int64_t{1024}, int64_t{1} << 34))
      ->capture_default_str();
  app.add_option("--max-batch-size", options.max_batch_size,
                 "dynamic batching of artifacts compiled with --batch-sizes: rows a batch holds at most "
                 "(-1: the artifact's largest batch size, 0: no batching)")
      ->check(CLI::Range(int64_t{-1}, int64_t{1} << 20))
      ->capture_default_str();
  app.add_option("--max-queue-delay-us", options.max_queue_delay_us,
                 "how long a batch waits for more requests once it holds one (microseconds)")
      ->check(CLI::Range(int64_t{0}, int64_t{10000000}))
      ->capture_default_str();
  app.add_option("--log-level", options.log_level, "error | warning | info (access logs) | debug")
      ->check(CLI::IsMember({"error", "warning", "info", "debug"}))
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  if (artifact.empty() == repository_dir.empty()) {
    std::cerr << "kiln-serve: give either an artifact or --model-repository DIR (kiln-serve --help)\n";
    return 2;
  }

  // Signals are taken by one thread with sigwait, before any other thread starts.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  // glibc gives each thread that allocates a heap of its own, up to 8 per core, and keeps
  // what they free: with 64 connection threads parsing ResNet-18's JSON the RSS stayed at
  // 930 MB after the load, 670 MB with the heaps bounded by the execution slots.
  mallopt(M_ARENA_MAX,
          std::max(2, options.threads > 0 ? options.threads : static_cast<int>(std::thread::hardware_concurrency())));

  try {
    kiln::ExecutorOptions executor_options;
    executor_options.threads = intra_op_threads;
    std::unique_ptr<kiln::serve::ModelRepository> repository =
        artifact.empty() ? std::make_unique<kiln::serve::ModelRepository>(repository_dir, executor_options)
                         : kiln::serve::ModelRepository::SingleArtifact(
                               artifact, std::filesystem::path(artifact).stem().string(), executor_options);
    const std::vector<std::string> failures = repository->LoadAll();
    // One artifact that does not load leaves nothing to serve; in a repository the
    // others are served and the index says why this one is not.
    if (!artifact.empty() && !failures.empty()) throw kiln::Error(failures.front());
    for (const std::string& failure : failures) std::cerr << "kiln-serve: warning: " << failure << '\n';
    kiln::serve::InferenceService service(*repository, options);
    kiln::serve::HttpServer server(service);
    std::optional<kiln::serve::GrpcServer> grpc_server;
    const int port = server.Start();
    std::cerr << "kiln-serve: listening on http://" << options.host << ':' << port << '\n';
    if (options.grpc_port >= 0) {
      grpc_server.emplace(service);
      const int grpc_port = grpc_server->Start();
      std::cerr << "kiln-serve: listening on grpc://" << options.host << ':' << grpc_port << '\n';
    }
    int signal = 0;
    sigwait(&stop_signals, &signal);
    std::cerr << "kiln-serve: " << (signal == SIGTERM ? "SIGTERM" : "SIGINT") << ": finishing the requests in flight\n";
    if (grpc_server) grpc_server->Stop();
    server.Stop();
    return 0;
  } catch (const kiln::Error& e) {
    std::cerr << "kiln-serve: error: " << e.what() << '\n';
    return 1;
  }
}

}  // namespace kiln::serve
