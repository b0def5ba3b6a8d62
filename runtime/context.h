// Where tensors live and code runs, as MXNet's Context: cpu(0), or gpu(N), one of the
// machine's CUDA devices. GpuDevice(N) is the stream that gpu(N)'s tensors are allocated
// and copied on, opened through the driver at first use (a machine without a GPU gets
// "no CUDA device: ..."); SetGpuDevice installs another (the CUDA emulation, in tests).
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "runtime/cuda_device.h"

namespace kiln {

class Context {
 public:
  // MXNet's device type codes.
  enum class DeviceType : int32_t { kCpu = 1, kGpu = 2 };

  static Context cpu(int id = 0) { return Context(DeviceType::kCpu, id); }
  static Context gpu(int id = 0) { return Context(DeviceType::kGpu, id); }

  DeviceType device_type() const { return type_; }
  int device_id() const { return id_; }
  bool is_gpu() const { return type_ == DeviceType::kGpu; }
  // "cpu(0)", "gpu(1)".
  std::string ToString() const;
  // Throws kiln::Error when the device cannot be used: gpu(N) on a machine without that
  // GPU ("no CUDA device: ..."), a negative id.
  void CheckAvailable() const;
  bool operator==(const Context& other) const = default;

 private:
  Context(DeviceType type, int id) : type_(type), id_(id) {}
  DeviceType type_ = DeviceType::kCpu;
  int id_ = 0;
};

// gpu(ordinal)'s stream for tensors (shared; thread-safe to call). Throws "no CUDA device:
// ... (asked for gpu(N))" where there is none.
std::shared_ptr<CudaDevice> GpuDevice(int ordinal);
// Makes `device` gpu(ordinal)'s (null: the driver's again, at the next use). Tensors made
// before keep the device they were allocated on.
void SetGpuDevice(int ordinal, std::shared_ptr<CudaDevice> device);

}  // namespace kiln
