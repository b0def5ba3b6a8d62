#include "serve/model_repository.h"

#include <google/protobuf/io/tokenizer.h>
#include <google/protobuf/text_format.h>

#include <algorithm>
#include <charconv>
#include <filesystem>

#include "runtime/error.h"
#include "runtime/file_util.h"

namespace kiln::serve {

namespace fs = std::filesystem;

namespace {

// A version directory's number: digits only, positive.
std::optional<int64_t> ParseVersion(const std::string& text) {
  int64_t value = 0;
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (error != std::errc() || end != text.data() + text.size() || value <= 0) return std::nullopt;
  return value;
}

// Collects the text format parser's errors as one message.
class ConfigErrors : public google::protobuf::io::ErrorCollector {
 public:
  void AddError(int line, google::protobuf::io::ColumnNumber column, const std::string& message) override {
    if (text.empty())
      text = "line " + std::to_string(line + 1) + ", column " + std::to_string(column + 1) + ": " + message;
  }
  std::string text;
};

// DIR/<model>/config.pbtxt or DIR/<model>/config, when the model has one.
std::optional<proto::ModelConfigProto> ReadModelConfig(const fs::path& dir, const std::string& name) {
  std::error_code ec;
  fs::path path = dir / "config.pbtxt";
  if (!fs::is_regular_file(path, ec)) path = dir / "config";
  if (!fs::is_regular_file(path, ec)) return std::nullopt;
  return ParseModelConfig(ReadFile(path.string()), "model '" + name + "': " + path.string());
}

}  // namespace

proto::ModelConfigProto ParseModelConfig(std::string_view text, const std::string& where) {
  proto::ModelConfigProto config;
  google::protobuf::TextFormat::Parser parser;
  parser.AllowUnknownField(true);  // Triton's fields kiln does not use
  ConfigErrors errors;
  parser.RecordErrorsTo(&errors);
  if (!parser.ParseFromString(std::string(text), &config)) {
    throw Error(where + ": " + (errors.text.empty() ? "unreadable" : errors.text));
  }
  if (config.max_batch_size() < 0) {
    throw Error(where + ": max_batch_size " + std::to_string(config.max_batch_size()) +
                " (expected 0, no batching, or more)");
  }
  return config;
}

ModelRepository::ModelRepository(std::string root, ExecutorOptions options)
    : root_(std::move(root)), options_(std::move(options)) {}

std::unique_ptr<ModelRepository> ModelRepository::SingleArtifact(const std::string& path, const std::string& name,
                                                                 ExecutorOptions options) {
  auto repository = std::make_unique<ModelRepository>("", std::move(options));
  repository->single_path_ = path;
  repository->models_[name];  // known, not loaded yet
  return repository;
}

std::map<int64_t, std::shared_ptr<const ModelVersion>> ModelRepository::ReadVersions(const std::string& name) const {
  std::map<int64_t, std::string> paths;
  if (single_path_) {
    paths[1] = *single_path_;
  } else {
    const fs::path dir = fs::path(root_) / name;
    std::error_code ec;
    if (!fs::is_directory(dir, ec)) throw Error("model '" + name + "': no directory " + dir.string());
    for (const fs::directory_entry& entry : fs::directory_iterator(dir, ec)) {
      if (!entry.is_directory()) continue;
      const std::optional<int64_t> version = ParseVersion(entry.path().filename().string());
      const fs::path artifact = entry.path() / "model.kiln";
      if (version && fs::is_regular_file(artifact, ec)) paths[*version] = artifact.string();
    }
    if (ec) throw Error("model '" + name + "': cannot list " + dir.string() + ": " + ec.message());
    if (paths.empty()) {
      throw Error("model '" + name + "': no version directory holds a model.kiln (expected " + dir.string() +
                  "/<version>/model.kiln)");
    }
  }
  const std::optional<proto::ModelConfigProto> config =
      single_path_ ? std::nullopt : ReadModelConfig(fs::path(root_) / name, name);
  std::map<int64_t, std::shared_ptr<const ModelVersion>> versions;
  for (const auto& [version, path] : paths) {
    auto loaded = std::make_shared<ModelVersion>();
    loaded->config = config;
    loaded->model = name;
    loaded->version = version;
    loaded->path = path;
    try {
      try {
        loaded->executor = Executor::Load(path, options_);
      } catch (const GpuArtifactError&) {
        CudaExecutorOptions gpu;
        gpu.trusted_keys = options_.trusted_keys;
        gpu.call_contexts = kGpuCallContexts;
        loaded->gpu_executor = CudaExecutor::Load(path, nullptr, gpu);
      }
    } catch (const Error& e) {
      throw Error("model '" + name + "' version " + std::to_string(version) + ": " + e.what());
    }
    if (!loaded->executor) {
      versions[version] = std::move(loaded);
      continue;
    }
    if (const auto missing = loaded->executor->MissingParams(); !missing.empty()) {
      throw Error("model '" + name + "' version " + std::to_string(version) + ": compiled without parameter '" +
                  missing.front() + "' (--no-embed-params); serve artifacts with embedded parameters");
    }
    versions[version] = std::move(loaded);
  }
  return versions;
}

const std::vector<int64_t>& ModelVersion::batch_sizes() const {
  static const std::vector<int64_t> kNone;
  return executor ? executor->batch_sizes() : kNone;
}

std::vector<std::string> ModelRepository::LoadAll() {
  std::vector<std::string> names;
  if (single_path_) {
    std::lock_guard lock(mutex_);
    for (const auto& [name, versions] : models_) names.push_back(name);
  } else {
    std::error_code ec;
    for (const fs::directory_entry& entry : fs::directory_iterator(root_, ec)) {
      if (entry.is_directory()) names.push_back(entry.path().filename().string());
    }
    if (ec) throw Error("model repository " + root_ + ": " + ec.message());
    std::sort(names.begin(), names.end());
  }
  std::vector<std::string> failures;
  for (const std::string& name : names) {
    try {
      Load(name);
    } catch (const Error& e) {
      failures.push_back(e.what());
    }
  }
  return failures;
}

void ModelRepository::Load(const std::string& name) {
  if (name.empty() || name.find('/') != std::string::npos || name == "." || name == "..") {
    throw Error("model name '" + name + "' is not a directory name");
  }
  if (single_path_ && models_.count(name) == 0) throw Error("model '" + name + "' is not in the repository");
  std::map<int64_t, std::shared_ptr<const ModelVersion>> versions;
  try {
    versions = ReadVersions(name);  // outside the lock: loading takes time
  } catch (const Error& e) {
    std::lock_guard lock(mutex_);
    failures_[name] = e.what();
    throw;
  }
  std::lock_guard lock(mutex_);
  models_[name] = std::move(versions);
  failures_.erase(name);
}

void ModelRepository::Unload(const std::string& name) {
  std::lock_guard lock(mutex_);
  const auto it = models_.find(name);
  if (it == models_.end() || it->second.empty()) throw Error("model '" + name + "' is not loaded");
  it->second.clear();
}

std::shared_ptr<const ModelVersion> ModelRepository::Find(const std::string& name, const std::string& version) const {
  std::lock_guard lock(mutex_);
  const auto it = models_.find(name);
  if (it == models_.end() || it->second.empty()) return nullptr;
  if (version.empty()) return it->second.rbegin()->second;
  const std::optional<int64_t> number = ParseVersion(version);
  if (!number) return nullptr;
  const auto found = it->second.find(*number);
  return found == it->second.end() ? nullptr : found->second;
}

std::vector<std::string> ModelRepository::Versions(const std::string& name) const {
  std::lock_guard lock(mutex_);
  std::vector<std::string> versions;
  const auto it = models_.find(name);
  if (it == models_.end()) return versions;
  for (const auto& [version, loaded] : it->second) versions.push_back(std::to_string(version));
  return versions;
}

std::vector<IndexEntry> ModelRepository::Index() const {
  std::lock_guard lock(mutex_);
  std::vector<IndexEntry> index;
  for (const auto& [name, versions] : models_) {
    if (versions.empty()) {
      const auto failure = failures_.find(name);
      index.push_back({name, "", "UNAVAILABLE", failure == failures_.end() ? "unloaded" : failure->second});
    }
    for (const auto& [version, loaded] : versions) index.push_back({name, std::to_string(version), "READY", ""});
  }
  for (const auto& [name, reason] : failures_) {
    if (models_.count(name) == 0) index.push_back({name, "", "UNAVAILABLE", reason});
  }
  std::stable_sort(index.begin(), index.end(),
                   [](const IndexEntry& a, const IndexEntry& b) { return a.name < b.name; });
  return index;
}

bool ModelRepository::AllReady() const {
  std::lock_guard lock(mutex_);
  return failures_.empty();  // models unloaded on request do not make the server unready
}

}  // namespace kiln::serve
