// The models a server serves, laid out as Triton's model repository:
//   DIR/<model>/<version>/model.kiln      versions are positive integers
//   DIR/<model>/config.pbtxt              optional: batching settings (proto/model_config.proto)
// Loading a model (re)reads every version of it from disk; requests hold the version
// they run (a shared_ptr), so a reload or an unload never drops one in flight.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "proto/model_config.pb.h"
#include "runtime/cuda_executor.h"
#include "runtime/executor.h"
#include "serve/dynamic_batcher.h"

namespace kiln::serve {

struct ModelVersion {
  std::string model;
  int64_t version = 0;
  std::string path;
  // One of the two: an artifact of CPU code, or of GPU code (kiln compile --target cuda),
  // run on GPU 0 with kGpuCallContexts streams.
  std::unique_ptr<Executor> executor;
  std::unique_ptr<CudaExecutor> gpu_executor;
  // The model's settings from DIR/<model>/config.pbtxt (or DIR/<model>/config), if any.
  std::optional<proto::ModelConfigProto> config;
  // The dynamic batcher the server starts for this version at its first request, when it
  // batches it (destroyed, its queue run, before the executor).
  mutable std::once_flag batcher_once;
  mutable std::unique_ptr<DynamicBatcher> batcher;

  const std::vector<TensorSpec>& inputs() const { return executor ? executor->inputs() : gpu_executor->inputs(); }
  const std::vector<TensorSpec>& outputs() const { return executor ? executor->outputs() : gpu_executor->outputs(); }
  // The batch sizes the artifact is specialized for (none for GPU artifacts).
  const std::vector<int64_t>& batch_sizes() const;
  std::vector<Tensor> Run(const std::vector<Tensor>& inputs) const {
    return executor ? executor->Run(inputs) : gpu_executor->Run(inputs);
  }
};

// Calls of one GPU artifact that run at once, each on a stream of its own.
inline constexpr int kGpuCallContexts = 4;

struct IndexEntry {
  std::string name;
  std::string version;  // empty: the model is not loaded
  std::string state;    // "READY" or "UNAVAILABLE"
  std::string reason;   // why it is unavailable
};

// A model's config.pbtxt (the batching part of Triton's text format; its other fields
// are skipped). Throws kiln::Error prefixed with `where`, naming the line of a syntax error
// or the field out of range.
proto::ModelConfigProto ParseModelConfig(std::string_view text, const std::string& where);

class ModelRepository {
 public:
  // A directory laid out as above; nothing is loaded until Load / LoadAll.
  ModelRepository(std::string root, ExecutorOptions options);
  // One artifact served as model `name`, version 1 (kiln serve model.kiln).
  static std::unique_ptr<ModelRepository> SingleArtifact(const std::string& path, const std::string& name,
                                                         ExecutorOptions options);

  // Loads every model in the repository; a model that fails to load is listed as
  // unavailable with the reason (the others still load). Returns the failures.
  std::vector<std::string> LoadAll();
  // Loads (or reloads from disk) one model's versions; throws kiln::Error with the
  // reason when it has none that load, leaving what was served before.
  void Load(const std::string& name);
  // Stops serving a model; requests already running keep their version.
  void Unload(const std::string& name);

  // The version to run: `version` (empty: the highest). nullptr when not served.
  std::shared_ptr<const ModelVersion> Find(const std::string& name, const std::string& version = "") const;
  // The versions served of a model, highest last.
  std::vector<std::string> Versions(const std::string& name) const;
  std::vector<IndexEntry> Index() const;
  // No model failed to load (the server's readiness).
  bool AllReady() const;

 private:
  std::map<int64_t, std::shared_ptr<const ModelVersion>> ReadVersions(const std::string& name) const;

  std::string root_;
  std::optional<std::string> single_path_;
  ExecutorOptions options_;
  mutable std::mutex mutex_;
  std::map<std::string, std::map<int64_t, std::shared_ptr<const ModelVersion>>> models_;
  std::map<std::string, std::string> failures_;  // model -> why it is unavailable
};

}  // namespace kiln::serve
