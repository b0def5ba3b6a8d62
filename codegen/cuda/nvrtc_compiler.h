// NVRTC, loaded at run time (dlopen), so that kiln builds and runs where the CUDA toolkit
// is absent: CUDA C -> PTX (a virtual architecture, portable) or -> cubin (a real one,
// assembled by NVRTC's built-in ptxas, whose report gives each kernel's registers and
// spills). Compiled code is cached on disk by (source, architecture, options, NVRTC
// version), as MXNet's fused-operator cache did.
#pragma once

#include <memory>
#include <string>
#include <vector>

namespace kiln::cuda {

struct NvrtcOutput {
  std::string ptx;
  std::string cubin;  // only for a real architecture (sm_XX)
  std::string log;    // NVRTC's messages, and ptxas's report for a cubin
  bool cached = false;
};

// What ptxas reports for one kernel.
struct KernelResources {
  std::string entry;
  std::string arch;
  int registers = 0;
  int64_t spill_store_bytes = 0;
  int64_t spill_load_bytes = 0;
  int64_t stack_bytes = 0;
};
std::vector<KernelResources> ParsePtxasReport(const std::string& log);

class Nvrtc {
 public:
  // The library, loaded once; nullptr where it cannot be found (LoadError says why).
  static const Nvrtc* Find();
  static std::string LoadError();

  // "13.0".
  std::string version() const;
  // `arch`: "compute_80" (PTX only) or "sm_80" / "sm_90" (PTX and cubin, with ptxas's
  // report in the log). Throws kiln::Error with NVRTC's log when the source does not
  // compile. `cache_dir` empty: no cache.
  NvrtcOutput Compile(const std::string& source, const std::string& name, const std::string& arch,
                      const std::string& cache_dir = "") const;

  struct Api;
  explicit Nvrtc(std::unique_ptr<Api> api);
  ~Nvrtc();

 private:
  NvrtcOutput CompileUncached(const std::string& source, const std::string& name, const std::string& arch,
                              const std::vector<std::string>& options) const;
  std::unique_ptr<Api> api_;
};

// The directory for cached CUDA code: CompileCache's (KILN_CACHE_DIR, XDG_CACHE_HOME, HOME)
// plus "/cuda"; empty when there is none.
std::string DefaultCudaCacheDir();

}  // namespace kiln::cuda
