#include "runtime/cuda_driver.h"

#include <dlfcn.h>

#include "runtime/error.h"

namespace kiln {
namespace {

// The few driver entry points the probe needs, as cuda.h declares them.
constexpr int kAttributeComputeCapabilityMajor = 75;
constexpr int kAttributeComputeCapabilityMinor = 76;

template <typename F>
F Symbol(void* library, const char* name) {
  auto fn = reinterpret_cast<F>(::dlsym(library, name));
  if (fn == nullptr) throw Error(std::string("no CUDA device: the CUDA driver lacks ") + name);
  return fn;
}

}  // namespace

std::vector<CudaDevice> ListCudaDevices() {
  // Kept loaded: the driver does not support being unloaded and loaded again.
  static void* const library = ::dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
  if (library == nullptr) {
    const char* why = ::dlerror();
    throw Error(std::string("no CUDA device: the NVIDIA driver's libcuda.so.1 cannot be loaded (") +
                (why != nullptr ? why : "not found") + ")");
  }
  const auto init = Symbol<int (*)(unsigned)>(library, "cuInit");
  const auto error_string = Symbol<int (*)(int, const char**)>(library, "cuGetErrorString");
  const auto count = Symbol<int (*)(int*)>(library, "cuDeviceGetCount");
  const auto get = Symbol<int (*)(int*, int)>(library, "cuDeviceGet");
  const auto name = Symbol<int (*)(char*, int, int)>(library, "cuDeviceGetName");
  const auto attribute = Symbol<int (*)(int*, int, int)>(library, "cuDeviceGetAttribute");
  const auto check = [&](int result, const char* what) {
    if (result == 0) return;
    const char* message = nullptr;
    error_string(result, &message);
    throw Error(std::string("no CUDA device: ") + what + " failed with error " + std::to_string(result) +
                (message != nullptr ? std::string(" (") + message + ")" : ""));
  };
  check(init(0), "cuInit");
  int devices = 0;
  check(count(&devices), "cuDeviceGetCount");
  if (devices == 0) throw Error("no CUDA device: the driver reports none");
  std::vector<CudaDevice> result;
  for (int ordinal = 0; ordinal < devices; ++ordinal) {
    int device = 0;
    check(get(&device, ordinal), "cuDeviceGet");
    CudaDevice info;
    info.ordinal = ordinal;
    char text[256] = {};
    check(name(text, sizeof text - 1, device), "cuDeviceGetName");
    info.name = text;
    check(attribute(&info.major, kAttributeComputeCapabilityMajor, device), "cuDeviceGetAttribute");
    check(attribute(&info.minor, kAttributeComputeCapabilityMinor, device), "cuDeviceGetAttribute");
    result.push_back(info);
  }
  return result;
}

}  // namespace kiln
