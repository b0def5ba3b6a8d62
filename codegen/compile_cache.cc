#include "codegen/compile_cache.h"

#include <cstdio>
#include <cstdlib>
#include <mutex>

#include "codegen/llvm/llvm_emitter.h"
#include "runtime/artifact.h"
#include "runtime/error.h"
#include "runtime/file_util.h"

// Header-only, as in runtime/artifact.cc.
#define XXH_INLINE_ALL
#include <xxhash.h>

namespace kiln {
namespace {

// The running executable's identity: a hash of its bytes, read once.
const std::string& ExecutableHash() {
  static std::once_flag once;
  static std::string hash;
  std::call_once(once, [] {
    std::string bytes;
    try {
      bytes = ReadFile("/proc/self/exe");
    } catch (const Error&) {
      bytes = "unknown executable";
    }
    const XXH128_hash_t h = XXH3_128bits(bytes.data(), bytes.size());
    char text[40];
    std::snprintf(text, sizeof text, "%016llx%016llx", static_cast<unsigned long long>(h.high64),
                  static_cast<unsigned long long>(h.low64));
    hash = text;
  });
  return hash;
}

class Hasher {
 public:
  Hasher() { XXH3_128bits_reset(state_.get()); }
  void Add(std::string_view bytes) {
    // Length-prefixed, so that "ab" + "c" and "a" + "bc" differ.
    const uint64_t size = bytes.size();
    XXH3_128bits_update(state_.get(), &size, sizeof size);
    XXH3_128bits_update(state_.get(), bytes.data(), bytes.size());
  }
  std::string Hex() const {
    const XXH128_hash_t h = XXH3_128bits_digest(state_.get());
    char text[40];
    std::snprintf(text, sizeof text, "%016llx%016llx", static_cast<unsigned long long>(h.high64),
                  static_cast<unsigned long long>(h.low64));
    return text;
  }

 private:
  struct Free {
    void operator()(XXH3_state_t* state) const { XXH3_freeState(state); }
  };
  std::unique_ptr<XXH3_state_t, Free> state_{XXH3_createState()};
};

}  // namespace

CompileCache::CompileCache(std::string dir) : dir_(std::move(dir)) {}

std::string CompileCache::DefaultDir() {
  return DefaultCacheDir();
}

std::string CompileCache::Key(const LoweredGraph& lowered, const CpuTarget& target) {
  Hasher hasher;
  hasher.Add(ExecutableHash());
  const ResolvedTarget resolved = ResolveTarget(target);
  hasher.Add(resolved.triple);
  hasher.Add(resolved.cpu);
  hasher.Add(resolved.feature_string);
  hasher.Add(std::to_string(target.opt_level));
  for (const kir::Kernel& kernel : lowered.kernels) hasher.Add(kir::Print(kernel));
  proto::ArtifactProto plan = lowered.artifact;
  plan.clear_report();  // timings differ from run to run
  std::string bytes;
  plan.SerializeToString(&bytes);
  hasher.Add(bytes);
  return hasher.Hex();
}

CompileCache::Result CompileCache::Load(const LoweredGraph& lowered, const CpuTarget& target,
                                        const ExecutorOptions& executor_options) {
  Result result;
  result.path = dir_ + "/" + Key(lowered, target) + ".kiln";
  try {
    result.executor = Executor::Load(result.path, executor_options);
    result.hit = true;
    return result;
  } catch (const Error&) {
    // Absent, or damaged: compile it (again).
  }
  proto::ArtifactProto artifact = lowered.artifact;
  artifact.set_code(CompileSharedObject(lowered.kernels, target));
  CreateOutputDirectory(dir_);
  SaveArtifact(result.path, artifact);
  result.executor = Executor::Load(result.path, executor_options);
  return result;
}

}  // namespace kiln
