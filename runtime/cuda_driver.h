// The CUDA driver (libcuda.so.1), loaded at run time: a CPU-only deployment never needs
// it, and a machine without a GPU or driver gets a clear error, never a crash.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "runtime/cuda_device.h"

namespace kiln {

struct CudaDeviceInfo {
  int ordinal = 0;
  std::string name;
  int major = 0;  // compute capability, e.g. 9.0 for an H100
  int minor = 0;
  int64_t memory_clock_khz = 0;
  int memory_bus_bits = 0;
  // The memory's peak bandwidth (double data rate), bytes per second.
  double PeakBandwidth() const { return 2.0 * memory_clock_khz * 1e3 * memory_bus_bits / 8; }
  std::string Arch() const { return "sm_" + std::to_string(major * 10 + minor); }
};

// The machine's CUDA devices. Throws kiln::Error starting "no CUDA device: " and saying
// why (no driver library, cuInit's error, no device).
std::vector<CudaDeviceInfo> ListCudaDevices();

// Device `ordinal` through the driver (its primary context). Throws "no CUDA device: ..."
// as ListCudaDevices does.
std::unique_ptr<CudaDevice> OpenCudaDevice(int ordinal = 0);

}  // namespace kiln
