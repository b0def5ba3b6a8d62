#include "runtime/cuda_driver.h"

#include <dlfcn.h>

#include <algorithm>
#include <cstdlib>
#include <string>
#include <type_traits>

#include "runtime/error.h"

namespace kiln {
namespace {

// Device attributes, as cuda.h numbers them.
constexpr int kAttributeComputeCapabilityMajor = 75;
constexpr int kAttributeComputeCapabilityMinor = 76;
constexpr int kAttributeMemoryClockRate = 36;       // kHz
constexpr int kAttributeGlobalMemoryBusWidth = 37;  // bits

// The driver's entry points kiln calls, as cuda.h declares them (_v2 where the driver's
// ABI has them), resolved once.
struct DriverApi {
  using Launch = int (*)(void*, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned, void*, void**,
                         void**);
  int (*init)(unsigned);
  int (*error_string)(int, const char**);
  int (*device_count)(int*);
  int (*device_get)(int*, int);
  int (*device_name)(char*, int, int);
  int (*device_attribute)(int*, int, int);
  int (*primary_context_retain)(void**, int);
  int (*primary_context_release)(int);
  int (*context_set_current)(void*);
  int (*stream_create)(void**, unsigned);
  int (*stream_destroy)(void*);
  int (*stream_synchronize)(void*);
  int (*mem_alloc)(uint64_t*, size_t);
  int (*mem_free)(uint64_t);
  int (*copy_to_device)(uint64_t, const void*, size_t, void*);
  int (*copy_to_host)(void*, uint64_t, size_t, void*);
  int (*copy_on_device)(uint64_t, uint64_t, size_t, void*);
  int (*module_load_data)(void**, const void*);
  int (*module_unload)(void*);
  int (*module_get_function)(void**, void*, const char*);
  Launch launch_kernel;
  int (*begin_capture)(void*, int);
  int (*end_capture)(void*, void**);
  int (*graph_instantiate)(void**, void*, unsigned long long);
  int (*graph_launch)(void*, void*);
  int (*graph_exec_destroy)(void*);
  int (*graph_destroy)(void*);
};

template <typename F>
void Bind(void* library, const char* name, F& fn) {
  fn = reinterpret_cast<F>(::dlsym(library, name));
  if (fn == nullptr) throw Error(std::string("no CUDA device: the CUDA driver lacks ") + name);
}

// The driver, loaded once and kept (the driver does not support being unloaded and loaded
// again); throws "no CUDA device: ..." where it is missing or incomplete.
const DriverApi& Driver() {
  static const DriverApi api = [] {
    void* const library = ::dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
    if (library == nullptr) {
      throw Error("no CUDA device: the NVIDIA driver's libcuda.so.1 cannot be loaded (not installed, or no GPU)");
    }
    DriverApi d{};
    Bind(library, "cuInit", d.init);
    Bind(library, "cuGetErrorString", d.error_string);
    Bind(library, "cuDeviceGetCount", d.device_count);
    Bind(library, "cuDeviceGet", d.device_get);
    Bind(library, "cuDeviceGetName", d.device_name);
    Bind(library, "cuDeviceGetAttribute", d.device_attribute);
    Bind(library, "cuDevicePrimaryCtxRetain", d.primary_context_retain);
    Bind(library, "cuDevicePrimaryCtxRelease_v2", d.primary_context_release);
    Bind(library, "cuCtxSetCurrent", d.context_set_current);
    Bind(library, "cuStreamCreate", d.stream_create);
    Bind(library, "cuStreamDestroy_v2", d.stream_destroy);
    Bind(library, "cuStreamSynchronize", d.stream_synchronize);
    Bind(library, "cuMemAlloc_v2", d.mem_alloc);
    Bind(library, "cuMemFree_v2", d.mem_free);
    Bind(library, "cuMemcpyHtoDAsync_v2", d.copy_to_device);
    Bind(library, "cuMemcpyDtoHAsync_v2", d.copy_to_host);
    Bind(library, "cuMemcpyDtoDAsync_v2", d.copy_on_device);
    Bind(library, "cuModuleLoadData", d.module_load_data);
    Bind(library, "cuModuleUnload", d.module_unload);
    Bind(library, "cuModuleGetFunction", d.module_get_function);
    Bind(library, "cuLaunchKernel", d.launch_kernel);
    Bind(library, "cuStreamBeginCapture_v2", d.begin_capture);
    Bind(library, "cuStreamEndCapture", d.end_capture);
    Bind(library, "cuGraphInstantiateWithFlags", d.graph_instantiate);
    Bind(library, "cuGraphLaunch", d.graph_launch);
    Bind(library, "cuGraphExecDestroy", d.graph_exec_destroy);
    Bind(library, "cuGraphDestroy", d.graph_destroy);
    return d;
  }();
  return api;
}

// cuBLAS's entry points kiln calls, as cublas_api.h declares them, loaded at the first
// GEMM step (a GPU artifact without products never needs cuBLAS).
struct BlasApi {
  int (*create)(void**);
  int (*destroy)(void*);
  int (*set_stream)(void*, void*);
  int (*set_workspace)(void*, void*, size_t);
  int (*set_math_mode)(void*, int);
  const char* (*status_string)(int);
  int (*sgemm_strided_batched)(void*, int, int, int, int, int, const float*, const float*, int, long long, const float*,
                               int, long long, const float*, float*, int, long long, int);
};
constexpr int kCublasOpN = 0;          // CUBLAS_OP_N
constexpr int kCublasOpT = 1;          // CUBLAS_OP_T
constexpr int kCublasDefaultMath = 0;  // CUBLAS_DEFAULT_MATH: float32 products in float32 (as PyTorch's default)
constexpr int kCublasTf32Math = 3;     // CUBLAS_TF32_TENSOR_OP_MATH
// cuBLAS asks for a user workspace under graph capture; 32 MiB covers Hopper's kernels.
constexpr size_t kCublasWorkspaceBytes = size_t{32} << 20;

const BlasApi& Blas() {
  static const BlasApi api = [] {
    void* library = nullptr;
    std::string tried;
    for (const char* name : {"libcublas.so.13", "libcublas.so.12", "libcublas.so.11", "libcublas.so"}) {
      library = ::dlopen(name, RTLD_NOW | RTLD_LOCAL);
      if (library != nullptr) break;
      tried += (tried.empty() ? "" : ", ") + std::string(name);
    }
    if (library == nullptr) {
      throw Error("the artifact's matrix products need cuBLAS, and none loads (tried " + tried +
                  "): install the CUDA toolkit's libcublas");
    }
    const auto bind = [library](const char* name, auto& fn) {
      fn = reinterpret_cast<std::remove_reference_t<decltype(fn)>>(::dlsym(library, name));
      if (fn == nullptr) throw Error(std::string("cuBLAS lacks ") + name);
    };
    BlasApi b{};
    bind("cublasCreate_v2", b.create);
    bind("cublasDestroy_v2", b.destroy);
    bind("cublasSetStream_v2", b.set_stream);
    bind("cublasSetWorkspace_v2", b.set_workspace);
    bind("cublasSetMathMode", b.set_math_mode);
    bind("cublasGetStatusString", b.status_string);
    bind("cublasSgemmStridedBatched", b.sgemm_strided_batched);
    return b;
  }();
  return api;
}

void CheckBlas(int status, const std::string& what) {
  if (status == 0) return;
  const char* message = Blas().status_string(status);
  throw Error(what + " failed with cuBLAS status " + std::to_string(status) +
              (message != nullptr ? std::string(" (") + message + ")" : ""));
}

// Throws "<prefix><what> failed with error N (message)" for a driver error.
void Check(int result, const std::string& what, const std::string& prefix = "") {
  if (result == 0) return;
  const char* message = nullptr;
  Driver().error_string(result, &message);
  throw Error(prefix + what + " failed with error " + std::to_string(result) +
              (message != nullptr ? std::string(" (") + message + ")" : ""));
}

// A device's primary context, with one non-blocking stream for copies, launches and
// graph capture.
class DriverDevice final : public CudaDevice {
 public:
  explicit DriverDevice(int ordinal) : api_(Driver()) {
    const auto devices = ListCudaDevices();
    if (ordinal < 0 || ordinal >= static_cast<int>(devices.size())) {
      throw Error("no CUDA device: GPU " + std::to_string(ordinal) + " asked for, the driver reports " +
                  std::to_string(devices.size()));
    }
    info_ = devices[static_cast<size_t>(ordinal)];
    Check(api_.device_get(&device_, ordinal), "cuDeviceGet");
    Check(api_.primary_context_retain(&context_, device_), "cuDevicePrimaryCtxRetain");
    MakeCurrent();
    constexpr unsigned kNonBlocking = 1;  // CU_STREAM_NON_BLOCKING: capturable, apart from stream 0
    Check(api_.stream_create(&stream_, kNonBlocking), "cuStreamCreate");
  }
  ~DriverDevice() override {
    api_.context_set_current(context_);
    DestroyGraph();
    if (blas_ != nullptr) Blas().destroy(blas_);
    if (workspace_ != 0) api_.mem_free(workspace_);
    if (stream_ != nullptr) api_.stream_destroy(stream_);
    if (module_ != nullptr) api_.module_unload(module_);
    api_.primary_context_release(device_);
  }

  std::string name() const override { return info_.name + " (" + info_.Arch() + ")"; }
  int ordinal() const override { return info_.ordinal; }
  std::unique_ptr<CudaDevice> OpenStream() const override { return std::make_unique<DriverDevice>(info_.ordinal); }

  uint64_t Allocate(size_t bytes) override {
    if (bytes == 0) return 0;
    MakeCurrent();
    uint64_t address = 0;
    Check(api_.mem_alloc(&address, bytes), "cuMemAlloc of " + std::to_string(bytes) + " bytes");
    return address;
  }
  void Free(uint64_t address) override {
    if (address == 0) return;
    MakeCurrent();
    api_.mem_free(address);
  }
  void CopyToDevice(uint64_t device, const void* host, size_t bytes) override {
    if (bytes == 0) return;
    MakeCurrent();
    Check(api_.copy_to_device(device, host, bytes, stream_), "cuMemcpyHtoDAsync");
  }
  void CopyToHost(void* host, uint64_t device, size_t bytes) override {
    if (bytes == 0) return;
    MakeCurrent();
    Check(api_.copy_to_host(host, device, bytes, stream_), "cuMemcpyDtoHAsync");
    Synchronize();
  }
  void CopyOnDevice(uint64_t destination, uint64_t source, size_t bytes) override {
    if (bytes == 0) return;
    MakeCurrent();
    Check(api_.copy_on_device(destination, source, bytes, stream_), "cuMemcpyDtoDAsync");
  }
  void LoadModule(const proto::CudaCodeProto& code) override {
    MakeCurrent();
    const auto cubin = code.cubins().find(info_.Arch());
    const int ptx_arch = std::atoi(code.ptx_arch().substr(code.ptx_arch().find('_') + 1).c_str());
    if (cubin == code.cubins().end() && (code.ptx().empty() || ptx_arch > info_.major * 10 + info_.minor)) {
      throw Error("the artifact holds GPU code for " + code.ptx_arch() + " and newer, and " + name() +
                  " is older; recompile with kiln compile --target cuda --arch " + info_.Arch());
    }
    const std::string& image = cubin != code.cubins().end() ? cubin->second : code.ptx();
    Check(api_.module_load_data(&module_, image.c_str()),
          cubin != code.cubins().end() ? "loading the cubin" : "loading the PTX");
    for (const auto& kernel : code.kernels()) {
      void* function = nullptr;
      Check(api_.module_get_function(&function, module_, kernel.entry().c_str()),
            "cuModuleGetFunction " + kernel.entry());
      functions_.push_back(function);
    }
  }
  void Launch(size_t kernel, const CudaLaunch& launch, const std::vector<uint64_t>& buffers, int64_t begin,
              int64_t end) override {
    if (launch.grid == 0) return;
    MakeCurrent();
    // cuLaunchKernel takes the address of each argument's value.
    std::vector<void*> params;
    for (const uint64_t& buffer : buffers) params.push_back(const_cast<uint64_t*>(&buffer));
    params.push_back(&begin);
    params.push_back(&end);
    Check(api_.launch_kernel(functions_.at(kernel), static_cast<unsigned>(launch.grid), 1, 1,
                             static_cast<unsigned>(launch.block), 1, 1, 0, stream_, params.data(), nullptr),
          "cuLaunchKernel");
  }
  void PrepareGemm(bool allow_tf32) override {
    if (blas_ != nullptr) return;
    MakeCurrent();
    const BlasApi& blas = Blas();
    CheckBlas(blas.create(&blas_), "cublasCreate");
    CheckBlas(blas.set_stream(blas_, stream_), "cublasSetStream");
    workspace_ = Allocate(kCublasWorkspaceBytes);
    CheckBlas(blas.set_workspace(blas_, reinterpret_cast<void*>(workspace_), kCublasWorkspaceBytes),
              "cublasSetWorkspace");
    CheckBlas(blas.set_math_mode(blas_, allow_tf32 ? kCublasTf32Math : kCublasDefaultMath), "cublasSetMathMode");
  }
  void Gemm(const CublasGemmCall& call, uint64_t first, uint64_t second, uint64_t c) override {
    if (call.empty) return;
    if (blas_ == nullptr) throw Error("internal: a GEMM before PrepareGemm");
    MakeCurrent();
    const auto at = [](uint64_t base, int64_t offset) { return reinterpret_cast<float*>(base) + offset; };
    CheckBlas(Blas().sgemm_strided_batched(blas_, call.transpose_first ? kCublasOpT : kCublasOpN,
                                           call.transpose_second ? kCublasOpT : kCublasOpN, call.m, call.n, call.k,
                                           &call.alpha, at(first, call.first_offset), call.ld_first, call.stride_first,
                                           at(second, call.second_offset), call.ld_second, call.stride_second,
                                           &call.beta, at(c, call.c_offset), call.ldc, call.stride_c, call.batch),
              "cublasSgemmStridedBatched");
  }
  void Synchronize() override {
    MakeCurrent();
    Check(api_.stream_synchronize(stream_), "cuStreamSynchronize (a kernel failed)");
  }
  void BeginCapture() override {
    MakeCurrent();
    DestroyGraph();
    constexpr int kThreadLocal = 1;  // CU_STREAM_CAPTURE_MODE_THREAD_LOCAL
    Check(api_.begin_capture(stream_, kThreadLocal), "cuStreamBeginCapture");
  }
  void EndCapture() override {
    MakeCurrent();
    Check(api_.end_capture(stream_, &graph_), "cuStreamEndCapture");
    Check(api_.graph_instantiate(&graph_exec_, graph_, 0), "cuGraphInstantiate");
  }
  void Replay() override {
    MakeCurrent();
    Check(api_.graph_launch(graph_exec_, stream_), "cuGraphLaunch");
  }

 private:
  void MakeCurrent() { Check(api_.context_set_current(context_), "cuCtxSetCurrent"); }
  void DestroyGraph() {
    if (graph_exec_ != nullptr) api_.graph_exec_destroy(graph_exec_);
    if (graph_ != nullptr) api_.graph_destroy(graph_);
    graph_exec_ = graph_ = nullptr;
  }

  const DriverApi& api_;
  CudaDeviceInfo info_;
  int device_ = 0;
  void* context_ = nullptr;
  void* module_ = nullptr;
  void* stream_ = nullptr;
  void* graph_ = nullptr;
  void* graph_exec_ = nullptr;
  std::vector<void*> functions_;
  void* blas_ = nullptr;  // the cuBLAS handle, once PrepareGemm made it
  uint64_t workspace_ = 0;
};

}  // namespace

CudaLaunch ConfigureCudaLaunch(const proto::CudaKernelProto& kernel, int64_t begin, int64_t end, int block,
                               int64_t max_blocks) {
  CudaLaunch launch;
  if (end <= begin) return launch;
  if (kernel.block_threads() > 0) {
    // A whole block per parallel iteration (whole warps), or one block for the kernel.
    launch.block = static_cast<int>(std::clamp<int64_t>((kernel.block_threads() + 31) / 32 * 32, 32, 1024));
    launch.grid = kernel.has_parallel_loop() ? std::min(max_blocks, end - begin) : 1;
    launch.work_items = launch.grid * launch.block;
    return launch;
  }
  if (!kernel.has_parallel_loop()) {
    launch.grid = 1;
    launch.block = 1;
    launch.work_items = 1;
    return launch;
  }
  launch.work_items = (end - begin) * kernel.inner_threads();
  const int64_t threads = std::min<int64_t>(block, launch.work_items);
  launch.block = static_cast<int>(std::min<int64_t>(block, (threads + 31) / 32 * 32));
  launch.grid = std::min(max_blocks, (launch.work_items + launch.block - 1) / launch.block);
  return launch;
}

std::unique_ptr<CudaDevice> OpenCudaDevice(int ordinal) {
  return std::make_unique<DriverDevice>(ordinal);
}

std::vector<CudaDeviceInfo> ListCudaDevices() {
  const DriverApi& api = Driver();
  const auto check = [](int result, const char* what) { Check(result, what, "no CUDA device: "); };
  check(api.init(0), "cuInit");
  int devices = 0;
  check(api.device_count(&devices), "cuDeviceGetCount");
  if (devices == 0) throw Error("no CUDA device: the driver reports none");
  std::vector<CudaDeviceInfo> result;
  for (int ordinal = 0; ordinal < devices; ++ordinal) {
    int device = 0;
    check(api.device_get(&device, ordinal), "cuDeviceGet");
    CudaDeviceInfo info;
    info.ordinal = ordinal;
    char text[256] = {};
    check(api.device_name(text, sizeof text - 1, device), "cuDeviceGetName");
    info.name = text;
    check(api.device_attribute(&info.major, kAttributeComputeCapabilityMajor, device), "cuDeviceGetAttribute");
    check(api.device_attribute(&info.minor, kAttributeComputeCapabilityMinor, device), "cuDeviceGetAttribute");
    int clock = 0;
    check(api.device_attribute(&clock, kAttributeMemoryClockRate, device), "cuDeviceGetAttribute");
    info.memory_clock_khz = clock;
    check(api.device_attribute(&info.memory_bus_bits, kAttributeGlobalMemoryBusWidth, device), "cuDeviceGetAttribute");
    result.push_back(info);
  }
  return result;
}

}  // namespace kiln
