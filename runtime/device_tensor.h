// A tensor in a GPU's memory: shape, dtype and a reference-counted device allocation
// (copies share it, as Tensor's copies share host memory). Made from host tensors and
// copied back, copied between GPUs, and passed to and returned by CudaExecutor::Run, so
// that a model's inputs and outputs can stay on the GPU between calls.
#pragma once

#include <cstdint>
#include <memory>

#include "runtime/context.h"
#include "runtime/cuda_device.h"
#include "runtime/tensor.h"

namespace kiln {

class DeviceTensor {
 public:
  DeviceTensor() = default;
  // Uninitialized memory for `shape` and `dtype`, allocated on `device` (freed through it
  // when the last copy goes).
  DeviceTensor(Shape shape, DType dtype, std::shared_ptr<CudaDevice> device);

  // A copy of `host` on `gpu` (its GpuDevice); the copy is complete when this returns.
  static DeviceTensor FromHost(const Tensor& host, const Context& gpu);
  static DeviceTensor FromHost(const Tensor& host, std::shared_ptr<CudaDevice> device);

  const Shape& shape() const { return shape_; }
  DType dtype() const { return dtype_; }
  int64_t size() const { return NumElements(shape_); }
  size_t nbytes() const { return static_cast<size_t>(size()) * DTypeSize(dtype_); }
  bool defined() const { return allocation_ != nullptr; }
  Context context() const;
  // The device address of the first element (0 for an empty tensor).
  uint64_t address() const;
  // The device (stream) the memory was allocated on.
  CudaDevice& device() const;

  // A host copy.
  Tensor ToHost() const;
  // Overwrites the contents with `host` (same shape and dtype, else kiln::Error).
  void CopyFromHost(const Tensor& host);
  // A copy on `gpu`: on the same GPU a device-to-device copy, else through the host.
  DeviceTensor CopyTo(const Context& gpu) const;
  // Overwrites `destination` (same shape and dtype) with this tensor's contents.
  void CopyTo(DeviceTensor& destination) const;
  // The same memory under another shape with the same number of elements.
  DeviceTensor Reshaped(Shape shape) const;
  // Rows [begin, begin + count) along axis 0 as a tensor of `shape` (count rows' elements),
  // sharing this memory.
  DeviceTensor Rows(int64_t begin, int64_t count, Shape shape) const;

 private:
  struct Allocation {
    std::shared_ptr<CudaDevice> device;
    uint64_t address = 0;
    Allocation(std::shared_ptr<CudaDevice> on, size_t bytes);
    ~Allocation();
    Allocation(const Allocation&) = delete;
    Allocation& operator=(const Allocation&) = delete;
  };
  Shape shape_;
  DType dtype_ = DType::kFloat32;
  std::shared_ptr<Allocation> allocation_;
  uint64_t offset_ = 0;  // bytes from the allocation's start (a view of rows)
};

}  // namespace kiln
