// An on-disk cache of compiled code, so that a program that compiles the same graph again
// (a training step at start-up, a Gluon block's first call with a shape it has seen
// before) skips LLVM. Lowering still runs (it is cheap); the key is a hash of what LLVM
// would be given and of the program doing it:
//   - the lowered kernels (their kir text) and the artifact's plan without its report,
//   - the resolved target (triple, CPU, features) and the optimization level,
//   - the running executable's own bytes, so that any rebuild of kiln (a changed
//     emitter included) starts a new set of entries instead of trusting old ones.
// An entry is a complete artifact file written to a temporary name and renamed, so a
// concurrent process sees either nothing or the whole file; an entry that fails to load
// (corrupt, truncated, another target) is compiled again and replaced.
#pragma once

#include <memory>
#include <string>

#include "codegen/compiler.h"
#include "runtime/executor.h"

namespace kiln {

class CompileCache {
 public:
  // `dir` is created on first use.
  explicit CompileCache(std::string dir);

  // $KILN_CACHE_DIR, else $XDG_CACHE_HOME/kiln, else $HOME/.cache/kiln; empty when none
  // of them is set, or KILN_CACHE_DIR is "off".
  static std::string DefaultDir();

  struct Result {
    std::unique_ptr<Executor> executor;
    bool hit = false;  // loaded from the cache
    std::string path;  // the entry's file
  };
  // The executor for `lowered` (from LowerGraph with `target`).
  Result Load(const LoweredGraph& lowered, const CpuTarget& target, const ExecutorOptions& executor_options = {});

  // The entry's key (hex) for `lowered`.
  static std::string Key(const LoweredGraph& lowered, const CpuTarget& target);

  const std::string& dir() const { return dir_; }

 private:
  std::string dir_;
};

}  // namespace kiln
