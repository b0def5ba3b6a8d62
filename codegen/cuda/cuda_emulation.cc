#include "codegen/cuda/cuda_emulation.h"

#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <sstream>

#include "codegen/cuda/cuda_emitter.h"
#include "codegen/host_tools.h"
#include "runtime/code_module.h"
#include "runtime/error.h"
#include "runtime/kernel_abi.h"

namespace kiln::cuda {

namespace {

constexpr const char* kLauncherSuffix = "_cuda_launch";
using Launcher = void (*)(long long grid, int block, void* const* buffers, int64_t begin, int64_t end);

// Device memory in host memory; kernels run through the emulated module's launchers.
// Streams opened from one device share its memory and its compiled module.
class EmulatedDevice final : public CudaDevice {
 public:
  EmulatedDevice(const std::vector<kir::Kernel>& kernels, const EmulationOptions& options)
      : shared_(std::make_shared<Shared>()) {
    shared_->code = LoadSharedObject(BuildEmulatedSharedObject(kernels, options));
    shared_->ordinal = options.ordinal;
    for (const kir::Kernel& kernel : kernels) shared_->names[CudaEntryName(kernel.name)] = kernel.name;
  }

  std::string name() const override { return "CUDA emulation on the CPU"; }
  int ordinal() const override { return shared_->ordinal; }
  std::unique_ptr<CudaDevice> OpenStream() const override {
    return std::unique_ptr<CudaDevice>(new EmulatedDevice(shared_));
  }
  uint64_t Allocate(size_t bytes) override {
    if (bytes == 0) return 0;
    auto block = std::make_unique<char[]>(bytes + 256);
    const uint64_t address = (reinterpret_cast<uint64_t>(block.get()) + 255) / 256 * 256;
    const std::lock_guard<std::mutex> lock(shared_->mutex);
    shared_->blocks[address] = std::move(block);
    return address;
  }
  void Free(uint64_t address) override {
    const std::lock_guard<std::mutex> lock(shared_->mutex);
    shared_->blocks.erase(address);
  }
  void CopyToDevice(uint64_t device, const void* host, size_t bytes) override {
    if (bytes > 0) std::memcpy(reinterpret_cast<void*>(device), host, bytes);
  }
  void CopyToHost(void* host, uint64_t device, size_t bytes) override {
    if (bytes > 0) std::memcpy(host, reinterpret_cast<const void*>(device), bytes);
  }
  void CopyOnDevice(uint64_t destination, uint64_t source, size_t bytes) override {
    if (bytes > 0) std::memmove(reinterpret_cast<void*>(destination), reinterpret_cast<const void*>(source), bytes);
  }
  void LoadModule(const proto::CudaCodeProto& code) override {
    for (const auto& kernel : code.kernels()) {
      const auto name = shared_->names.find(kernel.entry());
      if (name == shared_->names.end()) throw Error("the emulated module has no kernel " + kernel.entry());
      launchers_.push_back(reinterpret_cast<Launcher>(shared_->code->Find(name->second + kLauncherSuffix)));
      if (launchers_.back() == nullptr) throw Error("the emulated module lacks the launcher of " + kernel.entry());
    }
  }
  void Launch(size_t kernel, const CudaLaunch& launch, const std::vector<uint64_t>& buffers, int64_t begin,
              int64_t end) override {
    if (capturing_) {
      captured_.push_back({kernel, launch, buffers, begin, end, std::nullopt});
      return;
    }
    Run(kernel, launch, buffers, begin, end);
  }
  void PrepareGemm(bool) override {}
  void Gemm(const CublasGemmCall& call, uint64_t first, uint64_t second, uint64_t c) override {
    if (capturing_) {
      captured_.push_back({0, {}, {first, second, c}, 0, 0, call});
      return;
    }
    RunGemm(call, first, second, c);
  }
  void Synchronize() override {}
  void BeginCapture() override {
    captured_.clear();
    capturing_ = true;
  }
  void EndCapture() override { capturing_ = false; }
  void Replay() override {
    for (const Recorded& r : captured_) {
      if (r.gemm) {
        RunGemm(*r.gemm, r.buffers[0], r.buffers[1], r.buffers[2]);
      } else {
        Run(r.kernel, r.launch, r.buffers, r.begin, r.end);
      }
    }
  }

 private:
  // A launch, or (gemm set) a GEMM on buffers {first, second, c}.
  struct Recorded {
    size_t kernel;
    CudaLaunch launch;
    std::vector<uint64_t> buffers;
    int64_t begin, end;
    std::optional<CublasGemmCall> gemm;
  };

  // cuBLAS's column-major definition, computed plainly: the row-major to column-major
  // mapping of PlanCublasGemm is exercised as on a GPU.
  static void RunGemm(const CublasGemmCall& call, uint64_t first, uint64_t second, uint64_t c) {
    ColumnMajorGemm(call, reinterpret_cast<const float*>(first), reinterpret_cast<const float*>(second),
                    reinterpret_cast<float*>(c));
  }

  void Run(size_t kernel, const CudaLaunch& launch, const std::vector<uint64_t>& buffers, int64_t begin, int64_t end) {
    if (launch.grid == 0) return;
    std::vector<void*> pointers;
    for (const uint64_t address : buffers) pointers.push_back(reinterpret_cast<void*>(address));
    launchers_.at(kernel)(launch.grid, launch.block, pointers.data(), begin, end);
  }

  // What the streams of one emulated GPU share.
  struct Shared {
    std::unique_ptr<CodeModule> code;
    int ordinal = 0;
    std::map<std::string, std::string> names;  // entry -> kernel name
    std::mutex mutex;                          // guards blocks
    std::map<uint64_t, std::unique_ptr<char[]>> blocks;
  };
  explicit EmulatedDevice(std::shared_ptr<Shared> shared) : shared_(std::move(shared)) {}

  std::shared_ptr<Shared> shared_;
  bool capturing_ = false;
  std::vector<Recorded> captured_;
  std::vector<Launcher> launchers_;
};

}  // namespace

std::unique_ptr<CudaDevice> EmulatedCudaDevice(const std::vector<kir::Kernel>& kernels,
                                               const EmulationOptions& options) {
  return std::make_unique<EmulatedDevice>(kernels, options);
}

const char* EmulationHeader() {
  return R"header(// ---- kiln CUDA emulation: CUDA's built-ins on the host ----
#define KILN_CUDA_EMULATION 1
#include <math.h>
#include <stdint.h>
#define __global__
#define __device__
#define __forceinline__
#define __shared__ static thread_local  // one block per host thread at a time
struct kiln_dim3 {
  unsigned int x = 1, y = 1, z = 1;
};
static thread_local kiln_dim3 blockIdx, threadIdx, blockDim, gridDim;
// Runs every thread of every block of the launch in turn.
template <class Kernel>
static void kiln_emulate_launch(long long grid, int block, Kernel&& kernel) {
  gridDim.x = (unsigned int)grid;
  blockDim.x = (unsigned int)block;
  for (long long b = 0; b < grid; ++b) {
    blockIdx.x = (unsigned int)b;
    for (int t = 0; t < block; ++t) {
      threadIdx.x = (unsigned int)t;
      kernel();
    }
  }
}
// Kernels that synchronize a block (block-cooperative reductions) run each block's
// threads as fibers of this host thread: a barrier returns to the scheduler, which
// resumes every unfinished thread in turn, so all reach each barrier before any passes.
#include <signal.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <ucontext.h>
struct kiln_fiber_block {
  ucontext_t scheduler;
  ucontext_t threads[1024];
  bool done[1024];
  unsigned int current;
  void (*run)(void*);
  void* kernel;
};
static thread_local kiln_fiber_block* kiln_fibers = nullptr;
static void __syncthreads() {
  if (kiln_fibers != nullptr) swapcontext(&kiln_fibers->threads[kiln_fibers->current], &kiln_fibers->scheduler);
}
static void kiln_fiber_main() {
  kiln_fibers->run(kiln_fibers->kernel);
  kiln_fibers->done[kiln_fibers->current] = true;  // then back to the scheduler (uc_link)
}
template <class Kernel>
static void kiln_emulate_block_launch(long long grid, int block, Kernel&& kernel) {
  constexpr size_t kStack = size_t{256} << 10;
  gridDim.x = (unsigned int)grid;
  blockDim.x = (unsigned int)block;
  kiln_fiber_block& state = *new kiln_fiber_block;
  state.run = [](void* k) { (*static_cast<Kernel*>(k))(); };
  state.kernel = &kernel;
  // Stacks reserved, not committed: a fiber touches only what it uses.
  char* stacks = (char*)mmap(nullptr, kStack * block, PROT_READ | PROT_WRITE,
                             MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (stacks == (char*)MAP_FAILED) abort();
  kiln_fibers = &state;
  for (long long b = 0; b < grid; ++b) {
    blockIdx.x = (unsigned int)b;
    for (int t = 0; t < block; ++t) {
      getcontext(&state.threads[t]);
      state.threads[t].uc_stack.ss_sp = stacks + kStack * t;
      state.threads[t].uc_stack.ss_size = kStack;
      state.threads[t].uc_link = &state.scheduler;
      makecontext(&state.threads[t], kiln_fiber_main, 0);
      state.done[t] = false;
    }
    for (bool running = true; running;) {
      running = false;
      for (int t = 0; t < block; ++t) {
        if (state.done[t]) continue;
        state.current = (unsigned int)t;
        threadIdx.x = (unsigned int)t;
        swapcontext(&state.scheduler, &state.threads[t]);
        running = true;
      }
    }
  }
  kiln_fibers = nullptr;
  munmap(stacks, kStack * block);
  delete &state;
}
#define KILN_EXPORT extern "C" __attribute__((visibility("default")))
)header";
}

// Threads of a block-cooperative kernel's blocks under the CPU kernel ABI: two warps, so
// that the reductions cross warps.
constexpr int kEmulatedCooperativeBlock = 64;

std::string BuildEmulatedSharedObject(const std::vector<kir::Kernel>& kernels, const EmulationOptions& options) {
  const CudaModuleSource module = EmitCudaModule(kernels);
  std::ostringstream source;
  source << EmulationHeader() << module.source;
  source << "// ---- the CPU kernel ABI over emulated launches ----\n";
  for (size_t k = 0; k < kernels.size(); ++k) {
    const kir::Kernel& kernel = kernels[k];
    const CudaKernelInfo& info = module.kernels[k];
    const std::string symbol = KernelSymbolName(kernel.name);
    source << "KILN_EXPORT const int64_t kiln_abi_" << k << "[] __asm__(\"" << symbol << kAbiRecordSuffix << "\") = {"
           << kernel.args.size() << ", " << kernel.parallel_extent;
    for (const auto& arg : kernel.args) source << ", " << arg->size * kir::ScalarTypeBytes(arg->type);
    source << "};\n";
    // The launcher the emulated device calls: a launch of the grid it is given.
    const std::string launcher = KernelSymbolName(kernel.name + kLauncherSuffix);
    source << "KILN_EXPORT void " << launcher
           << "(long long grid, int block, void* const* buffers, int64_t begin, int64_t end) {\n"
           << "  " << (info.block_threads > 0 ? "kiln_emulate_block_launch" : "kiln_emulate_launch")
           << "(grid, block, [&] { " << info.entry << "(";
    for (size_t a = 0; a < kernel.args.size(); ++a) {
      source << "(" << CudaStorageType(kernel.args[a]->type) << "*)buffers[" << a << "], ";
    }
    source << "begin, end); });\n}\n";
    // The CPU kernel ABI: a launch of the options' small blocks, at most max_blocks of
    // them, so that the grid-stride loops take several rounds.
    source << "KILN_EXPORT void " << symbol << "(void* const* buffers, int64_t begin, int64_t end, const void*) {\n"
           << "  if (end <= begin) return;\n";
    if (info.block_threads > 0) {
      // A block per parallel iteration, of whole warps (the reductions' shuffles).
      source << "  const int block = " << kEmulatedCooperativeBlock << ";\n"
             << "  const long long grid = " << (info.has_parallel_loop ? "end - begin" : "1ll") << " < "
             << options.max_blocks << "ll ? " << (info.has_parallel_loop ? "end - begin" : "1ll") << " : "
             << options.max_blocks << "ll;\n";
    } else if (info.has_parallel_loop) {
      source << "  const int block = " << options.block << ";\n"
             << "  const long long blocks = ((end - begin) * " << info.inner_threads << "ll + block - 1) / block;\n"
             << "  const long long grid = blocks < " << options.max_blocks << "ll ? blocks : " << options.max_blocks
             << "ll;\n";
    } else {
      source << "  const long long grid = 1;\n  const int block = 1;\n";
    }
    source << "  " << launcher << "(grid, block, buffers, begin, end);\n}\n";
  }
  const TempDir dir("the CUDA emulation");
  const std::string source_path = dir.File("kernels.cc");
  const std::string library_path = dir.File("kernels.so");
  const std::string log_path = dir.File("compile.log");
  WriteBytes(source_path, source.str());
  const std::vector<std::string> argv = {options.compiler,
                                         "-std=c++17",
                                         "-O" + std::to_string(options.opt_level),
                                         "-shared",
                                         "-fPIC",
                                         "-fvisibility=hidden",
                                         "-w",
                                         "-o",
                                         library_path,
                                         source_path,
                                         "-lm"};
  const int status = RunProcess(argv, log_path);
  if (status < 0) throw Error("no host C++ compiler '" + options.compiler + "' on PATH for the CUDA emulation");
  if (status != 0) {
    std::string log = ReadBytes(log_path);
    if (log.size() > 20000) log = log.substr(0, 20000) + "\n...";
    throw Error("compiling the emulated CUDA kernels failed: `" + CommandLine(argv) + "` exited with status " +
                std::to_string(status) + ":\n" + log);
  }
  return ReadBytes(library_path);
}

}  // namespace kiln::cuda
