#include "runtime/context.h"

#include <map>
#include <mutex>

#include "runtime/cuda_driver.h"
#include "runtime/error.h"

namespace kiln {
namespace {

struct GpuRegistry {
  std::mutex mutex;
  std::map<int, std::shared_ptr<CudaDevice>> devices;
};
GpuRegistry& Registry() {
  static GpuRegistry registry;
  return registry;
}

}  // namespace

std::string Context::ToString() const {
  return std::string(type_ == DeviceType::kCpu ? "cpu(" : "gpu(") + std::to_string(id_) + ")";
}

void Context::CheckAvailable() const {
  if (id_ < 0) throw Error("device ids are at least 0, given " + ToString());
  if (type_ == DeviceType::kGpu) GpuDevice(id_);
}

std::shared_ptr<CudaDevice> GpuDevice(int ordinal) {
  GpuRegistry& registry = Registry();
  const std::lock_guard<std::mutex> lock(registry.mutex);
  std::shared_ptr<CudaDevice>& device = registry.devices[ordinal];
  if (device == nullptr) {
    try {
      device = OpenCudaDevice(ordinal);
    } catch (const Error& e) {
      throw Error(std::string(e.what()) + " (asked for gpu(" + std::to_string(ordinal) + "))");
    }
  }
  return device;
}

void SetGpuDevice(int ordinal, std::shared_ptr<CudaDevice> device) {
  GpuRegistry& registry = Registry();
  const std::lock_guard<std::mutex> lock(registry.mutex);
  registry.devices[ordinal] = std::move(device);
}

}  // namespace kiln
