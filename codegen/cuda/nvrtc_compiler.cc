#include "codegen/cuda/nvrtc_compiler.h"

#include <dlfcn.h>

#include <cstdlib>
#include <filesystem>
#include <mutex>
#include <regex>
#include <sstream>

#include "runtime/artifact.h"
#include "runtime/error.h"
#include "runtime/file_util.h"

namespace kiln::cuda {

// NVRTC's C API, declared here as its header declares it (the library is dlopen'ed; no
// CUDA header is needed to build kiln).
struct Nvrtc::Api {
  using Program = void*;
  void* library = nullptr;
  int (*version)(int* major, int* minor) = nullptr;
  const char* (*error_string)(int result) = nullptr;
  int (*create_program)(Program* program, const char* source, const char* name, int num_headers,
                        const char* const* headers, const char* const* include_names) = nullptr;
  int (*compile_program)(Program program, int num_options, const char* const* options) = nullptr;
  int (*destroy_program)(Program* program) = nullptr;
  int (*log_size)(Program program, size_t* size) = nullptr;
  int (*log)(Program program, char* log) = nullptr;
  int (*ptx_size)(Program program, size_t* size) = nullptr;
  int (*ptx)(Program program, char* ptx) = nullptr;
  int (*cubin_size)(Program program, size_t* size) = nullptr;
  int (*cubin)(Program program, char* cubin) = nullptr;
  // The library is never unloaded: its runtime keeps allocations for the process's life
  // (reachable while it is loaded), and it is loaded once.
};

namespace {

std::string g_load_error;

template <typename F>
void Bind(void* library, const char* name, F& fn) {
  fn = reinterpret_cast<F>(::dlsym(library, name));
  if (fn == nullptr) throw Error(std::string("NVRTC lacks ") + name);
}

std::unique_ptr<Nvrtc> LoadNvrtc() {
  std::vector<std::string> candidates;
  for (const char* env : {"CUDA_PATH", "CUDA_HOME"}) {
    if (const char* dir = std::getenv(env); dir != nullptr && *dir != '\0') {
      candidates.push_back(std::string(dir) + "/lib64/libnvrtc.so");
    }
  }
  candidates.push_back("/usr/local/cuda/lib64/libnvrtc.so");
  for (const char* name : {"libnvrtc.so", "libnvrtc.so.13", "libnvrtc.so.12"}) candidates.emplace_back(name);
  auto api = std::make_unique<Nvrtc::Api>();
  std::string tried;
  for (const auto& candidate : candidates) {
    api->library = ::dlopen(candidate.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (api->library != nullptr) break;
    tried += (tried.empty() ? "" : ", ") + candidate;
  }
  if (api->library == nullptr) {
    g_load_error = "NVRTC (libnvrtc.so) not found; tried " + tried + " (install the CUDA toolkit or set CUDA_PATH)";
    return nullptr;
  }
  try {
    Bind(api->library, "nvrtcVersion", api->version);
    Bind(api->library, "nvrtcGetErrorString", api->error_string);
    Bind(api->library, "nvrtcCreateProgram", api->create_program);
    Bind(api->library, "nvrtcCompileProgram", api->compile_program);
    Bind(api->library, "nvrtcDestroyProgram", api->destroy_program);
    Bind(api->library, "nvrtcGetProgramLogSize", api->log_size);
    Bind(api->library, "nvrtcGetProgramLog", api->log);
    Bind(api->library, "nvrtcGetPTXSize", api->ptx_size);
    Bind(api->library, "nvrtcGetPTX", api->ptx);
    Bind(api->library, "nvrtcGetCUBINSize", api->cubin_size);
    Bind(api->library, "nvrtcGetCUBIN", api->cubin);
  } catch (const Error& e) {
    g_load_error = e.what();
    return nullptr;
  }
  return std::make_unique<Nvrtc>(std::move(api));
}

bool IsRealArch(const std::string& arch) {
  return arch.rfind("sm_", 0) == 0;
}

}  // namespace

Nvrtc::Nvrtc(std::unique_ptr<Api> api) : api_(std::move(api)) {}
Nvrtc::~Nvrtc() = default;

const Nvrtc* Nvrtc::Find() {
  static const std::unique_ptr<Nvrtc> nvrtc = LoadNvrtc();
  return nvrtc.get();
}

std::string Nvrtc::LoadError() {
  Find();
  return g_load_error;
}

std::string Nvrtc::version() const {
  int major = 0, minor = 0;
  api_->version(&major, &minor);
  return std::to_string(major) + "." + std::to_string(minor);
}

NvrtcOutput Nvrtc::CompileUncached(const std::string& source, const std::string& name, const std::string& arch,
                                   const std::vector<std::string>& options) const {
  Api::Program program = nullptr;
  const auto check = [&](int result, const char* what) {
    if (result != 0) throw Error(std::string("NVRTC ") + what + " failed: " + api_->error_string(result));
  };
  check(api_->create_program(&program, source.c_str(), name.c_str(), 0, nullptr, nullptr), "nvrtcCreateProgram");
  struct Destroy {
    const Api& api;
    Api::Program& program;
    ~Destroy() { api.destroy_program(&program); }
  } destroy{*api_, program};
  std::vector<const char*> argv;
  for (const auto& option : options) argv.push_back(option.c_str());
  const int compiled = api_->compile_program(program, static_cast<int>(argv.size()), argv.data());
  NvrtcOutput out;
  size_t size = 0;
  check(api_->log_size(program, &size), "nvrtcGetProgramLogSize");
  out.log.resize(size);
  check(api_->log(program, out.log.data()), "nvrtcGetProgramLog");
  while (!out.log.empty() && out.log.back() == '\0') out.log.pop_back();
  if (compiled != 0) {
    throw Error("NVRTC could not compile " + name + " for " + arch + " (" + api_->error_string(compiled) + "):\n" +
                out.log);
  }
  check(api_->ptx_size(program, &size), "nvrtcGetPTXSize");
  out.ptx.resize(size);
  check(api_->ptx(program, out.ptx.data()), "nvrtcGetPTX");
  while (!out.ptx.empty() && out.ptx.back() == '\0') out.ptx.pop_back();
  if (IsRealArch(arch)) {
    check(api_->cubin_size(program, &size), "nvrtcGetCUBINSize");
    out.cubin.resize(size);
    check(api_->cubin(program, out.cubin.data()), "nvrtcGetCUBIN");
  }
  return out;
}

NvrtcOutput Nvrtc::Compile(const std::string& source, const std::string& name, const std::string& arch,
                           const std::string& cache_dir) const {
  static const std::regex arch_pattern("(compute|sm)_[0-9]{2,3}[af]?");
  if (!std::regex_match(arch, arch_pattern)) {
    throw Error("unknown CUDA architecture '" + arch + "' (expected compute_XX or sm_XX, e.g. sm_80, sm_90)");
  }
  std::vector<std::string> options = {"--gpu-architecture=" + arch, "--std=c++17"};
  if (IsRealArch(arch)) options.emplace_back("--ptxas-options=--verbose");
  if (cache_dir.empty()) return CompileUncached(source, name, arch, options);
  std::string key_text = source + '\0' + arch + '\0' + version();
  for (const auto& option : options) key_text += '\0' + option;
  char key[17];
  std::snprintf(key, sizeof key, "%016llx", static_cast<unsigned long long>(Fnv1a64(key_text)));
  const std::string base = cache_dir + "/" + key;
  const bool real = IsRealArch(arch);
  std::error_code error;
  if (std::filesystem::exists(base + ".ptx", error) && (!real || std::filesystem::exists(base + ".cubin", error))) {
    try {
      NvrtcOutput out;
      out.ptx = ReadFile(base + ".ptx");
      if (real) out.cubin = ReadFile(base + ".cubin");
      if (std::filesystem::exists(base + ".log", error)) out.log = ReadFile(base + ".log");
      out.cached = true;
      return out;
    } catch (const Error&) {
      // Unreadable: compile again and replace it.
    }
  }
  NvrtcOutput out = CompileUncached(source, name, arch, options);
  try {
    std::filesystem::create_directories(cache_dir);
    // The log and cubin first: an entry counts once its .ptx is in place.
    WriteFileAtomic(base + ".log", out.log);
    if (real) WriteFileAtomic(base + ".cubin", out.cubin);
    WriteFileAtomic(base + ".ptx", out.ptx);
  } catch (const std::exception&) {
    // A cache that cannot be written only costs time.
  }
  return out;
}

std::vector<KernelResources> ParsePtxasReport(const std::string& log) {
  static const std::regex entry("Compiling entry function '([^']+)' for '([^']+)'");
  static const std::regex frame("([0-9]+) bytes stack frame, ([0-9]+) bytes spill stores, ([0-9]+) bytes spill loads");
  static const std::regex used("Used ([0-9]+) registers");
  std::vector<KernelResources> kernels;
  std::string line;
  std::istringstream in(log);
  while (std::getline(in, line)) {
    std::smatch m;
    if (std::regex_search(line, m, entry)) {
      kernels.push_back({m[1], m[2]});
    } else if (kernels.empty()) {
      continue;
    } else if (std::regex_search(line, m, frame)) {
      kernels.back().stack_bytes = std::stoll(m[1]);
      kernels.back().spill_store_bytes = std::stoll(m[2]);
      kernels.back().spill_load_bytes = std::stoll(m[3]);
    } else if (std::regex_search(line, m, used)) {
      kernels.back().registers = std::stoi(m[1]);
    }
  }
  return kernels;
}

std::string DefaultCudaCacheDir() {
  const std::string base = DefaultCacheDir();
  return base.empty() ? "" : base + "/cuda";
}

}  // namespace kiln::cuda
