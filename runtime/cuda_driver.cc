#include "runtime/cuda_driver.h"

#include <dlfcn.h>

#include <algorithm>
#include <cstdlib>

#include "runtime/error.h"

namespace kiln {
namespace {

// The few driver entry points the probe needs, as cuda.h declares them.
constexpr int kAttributeComputeCapabilityMajor = 75;
constexpr int kAttributeComputeCapabilityMinor = 76;
constexpr int kAttributeMemoryClockRate = 36;       // kHz
constexpr int kAttributeGlobalMemoryBusWidth = 37;  // bits

template <typename F>
F Symbol(void* library, const char* name) {
  auto fn = reinterpret_cast<F>(::dlsym(library, name));
  if (fn == nullptr) throw Error(std::string("no CUDA device: the CUDA driver lacks ") + name);
  return fn;
}

// The driver library, loaded once and kept: the driver does not support being unloaded
// and loaded again.
void* DriverLibrary() {
  static void* const library = ::dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
  if (library == nullptr) {
    throw Error("no CUDA device: the NVIDIA driver's libcuda.so.1 cannot be loaded (not installed, or no GPU)");
  }
  return library;
}

// Throws "<prefix><what> failed with error N (message)" for a driver error.
void Check(int result, const char* what, const std::string& prefix = "") {
  if (result == 0) return;
  const char* message = nullptr;
  Symbol<int (*)(int, const char**)>(DriverLibrary(), "cuGetErrorString")(result, &message);
  throw Error(prefix + what + " failed with error " + std::to_string(result) +
              (message != nullptr ? std::string(" (") + message + ")" : ""));
}

// A device's primary context through the driver API (cuda.h's entry points, _v2 where
// the driver's ABI has them).
class DriverDevice final : public CudaDevice {
 public:
  explicit DriverDevice(int ordinal) : library_(DriverLibrary()) {
    const auto devices = ListCudaDevices();
    if (ordinal < 0 || ordinal >= static_cast<int>(devices.size())) {
      throw Error("no CUDA device: GPU " + std::to_string(ordinal) + " asked for, the driver reports " +
                  std::to_string(devices.size()));
    }
    info_ = devices[static_cast<size_t>(ordinal)];
    Check(Fn<int (*)(int*, int)>("cuDeviceGet")(&device_, ordinal), "cuDeviceGet");
    Check(Fn<int (*)(void**, int)>("cuDevicePrimaryCtxRetain")(&context_, device_), "cuDevicePrimaryCtxRetain");
    MakeCurrent();
    constexpr unsigned kNonBlocking = 1;  // CU_STREAM_NON_BLOCKING: capturable, apart from stream 0
    Check(Fn<int (*)(void**, unsigned)>("cuStreamCreate")(&stream_, kNonBlocking), "cuStreamCreate");
  }
  ~DriverDevice() override {
    MakeCurrent();
    DestroyGraph();
    if (stream_ != nullptr) Fn<int (*)(void*)>("cuStreamDestroy_v2")(stream_);
    if (module_ != nullptr) Fn<int (*)(void*)>("cuModuleUnload")(module_);
    Fn<int (*)(int)>("cuDevicePrimaryCtxRelease_v2")(device_);
  }

  std::string name() const override { return info_.name + " (" + info_.Arch() + ")"; }

  uint64_t Allocate(size_t bytes) override {
    if (bytes == 0) return 0;
    MakeCurrent();
    uint64_t address = 0;
    Check(Fn<int (*)(uint64_t*, size_t)>("cuMemAlloc_v2")(&address, bytes),
          ("cuMemAlloc of " + std::to_string(bytes) + " bytes").c_str());
    return address;
  }
  void Free(uint64_t address) override {
    if (address == 0) return;
    MakeCurrent();
    Fn<int (*)(uint64_t)>("cuMemFree_v2")(address);
  }
  void CopyToDevice(uint64_t device, const void* host, size_t bytes) override {
    if (bytes == 0) return;
    MakeCurrent();
    Check(Fn<int (*)(uint64_t, const void*, size_t, void*)>("cuMemcpyHtoDAsync_v2")(device, host, bytes, stream_),
          "cuMemcpyHtoDAsync");
  }
  void CopyToHost(void* host, uint64_t device, size_t bytes) override {
    if (bytes == 0) return;
    MakeCurrent();
    Check(Fn<int (*)(void*, uint64_t, size_t, void*)>("cuMemcpyDtoHAsync_v2")(host, device, bytes, stream_),
          "cuMemcpyDtoHAsync");
    Synchronize();
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
    Check(Fn<int (*)(void**, const void*)>("cuModuleLoadData")(&module_, image.c_str()),
          cubin != code.cubins().end() ? "loading the cubin" : "loading the PTX");
    for (const auto& kernel : code.kernels()) {
      void* function = nullptr;
      Check(Fn<int (*)(void**, void*, const char*)>("cuModuleGetFunction")(&function, module_, kernel.entry().c_str()),
            ("cuModuleGetFunction " + kernel.entry()).c_str());
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
    using LaunchFn =
        int (*)(void*, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned, void*, void**, void**);
    Check(Fn<LaunchFn>("cuLaunchKernel")(functions_.at(kernel), static_cast<unsigned>(launch.grid), 1, 1,
                                         static_cast<unsigned>(launch.block), 1, 1, 0, nullptr, params.data(), nullptr),
          "cuLaunchKernel");
  }
  void Synchronize() override {
    MakeCurrent();
    Check(Fn<int (*)(void*)>("cuStreamSynchronize")(stream_), "cuStreamSynchronize (a kernel failed)");
  }
  void BeginCapture() override {
    MakeCurrent();
    DestroyGraph();
    constexpr int kThreadLocal = 1;  // CU_STREAM_CAPTURE_MODE_THREAD_LOCAL
    Check(Fn<int (*)(void*, int)>("cuStreamBeginCapture_v2")(stream_, kThreadLocal), "cuStreamBeginCapture");
  }
  void EndCapture() override {
    MakeCurrent();
    Check(Fn<int (*)(void*, void**)>("cuStreamEndCapture")(stream_, &graph_), "cuStreamEndCapture");
    Check(Fn<int (*)(void**, void*, unsigned long long)>("cuGraphInstantiateWithFlags")(&graph_exec_, graph_, 0),
          "cuGraphInstantiate");
  }
  void Replay() override {
    MakeCurrent();
    Check(Fn<int (*)(void*, void*)>("cuGraphLaunch")(graph_exec_, stream_), "cuGraphLaunch");
  }

 private:
  template <typename F>
  F Fn(const char* name) const {
    return Symbol<F>(library_, name);
  }
  void MakeCurrent() { Check(Fn<int (*)(void*)>("cuCtxSetCurrent")(context_), "cuCtxSetCurrent"); }
  void DestroyGraph() {
    if (graph_exec_ != nullptr) Fn<int (*)(void*)>("cuGraphExecDestroy")(graph_exec_);
    if (graph_ != nullptr) Fn<int (*)(void*)>("cuGraphDestroy")(graph_);
    graph_exec_ = graph_ = nullptr;
  }

  void* library_;
  CudaDeviceInfo info_;
  int device_ = 0;
  void* context_ = nullptr;
  void* module_ = nullptr;
  void* stream_ = nullptr;
  void* graph_ = nullptr;
  void* graph_exec_ = nullptr;
  std::vector<void*> functions_;
};

}  // namespace

CudaLaunch ConfigureCudaLaunch(const proto::CudaKernelProto& kernel, int64_t begin, int64_t end, int block,
                               int64_t max_blocks) {
  CudaLaunch launch;
  if (end <= begin) return launch;
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
  void* const library = DriverLibrary();
  const auto init = Symbol<int (*)(unsigned)>(library, "cuInit");
  const auto count = Symbol<int (*)(int*)>(library, "cuDeviceGetCount");
  const auto get = Symbol<int (*)(int*, int)>(library, "cuDeviceGet");
  const auto name = Symbol<int (*)(char*, int, int)>(library, "cuDeviceGetName");
  const auto attribute = Symbol<int (*)(int*, int, int)>(library, "cuDeviceGetAttribute");
  const auto check = [](int result, const char* what) { Check(result, what, "no CUDA device: "); };
  check(init(0), "cuInit");
  int devices = 0;
  check(count(&devices), "cuDeviceGetCount");
  if (devices == 0) throw Error("no CUDA device: the driver reports none");
  std::vector<CudaDeviceInfo> result;
  for (int ordinal = 0; ordinal < devices; ++ordinal) {
    int device = 0;
    check(get(&device, ordinal), "cuDeviceGet");
    CudaDeviceInfo info;
    info.ordinal = ordinal;
    char text[256] = {};
    check(name(text, sizeof text - 1, device), "cuDeviceGetName");
    info.name = text;
    check(attribute(&info.major, kAttributeComputeCapabilityMajor, device), "cuDeviceGetAttribute");
    check(attribute(&info.minor, kAttributeComputeCapabilityMinor, device), "cuDeviceGetAttribute");
    int clock = 0;
    check(attribute(&clock, kAttributeMemoryClockRate, device), "cuDeviceGetAttribute");
    info.memory_clock_khz = clock;
    check(attribute(&info.memory_bus_bits, kAttributeGlobalMemoryBusWidth, device), "cuDeviceGetAttribute");
    result.push_back(info);
  }
  return result;
}

}  // namespace kiln
