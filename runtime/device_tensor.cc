#include "runtime/device_tensor.h"

#include <utility>

#include "runtime/error.h"

namespace kiln {
namespace {

void CheckSameSpec(const Shape& shape, DType dtype, const Shape& given_shape, DType given_dtype, const char* what) {
  if (shape != given_shape || dtype != given_dtype) {
    throw Error(std::string(what) + ": the tensor is " + ShapeToString(shape) + " " + std::string(DTypeName(dtype)) +
                ", given " + ShapeToString(given_shape) + " " + std::string(DTypeName(given_dtype)));
  }
}

}  // namespace

DeviceTensor::Allocation::Allocation(std::shared_ptr<CudaDevice> on, size_t bytes) : device(std::move(on)) {
  if (device == nullptr) throw Error("a device tensor needs a device");
  address = device->Allocate(bytes);
}

DeviceTensor::Allocation::~Allocation() {
  device->Free(address);
}

DeviceTensor::DeviceTensor(Shape shape, DType dtype, std::shared_ptr<CudaDevice> device)
    : shape_(std::move(shape)), dtype_(dtype) {
  allocation_ = std::make_shared<Allocation>(std::move(device), CheckedByteSize(shape_, dtype_));
}

DeviceTensor DeviceTensor::FromHost(const Tensor& host, const Context& gpu) {
  if (!gpu.is_gpu()) throw Error("a device tensor on " + gpu.ToString() + ": expected a GPU context");
  gpu.CheckAvailable();
  return FromHost(host, GpuDevice(gpu.device_id()));
}

DeviceTensor DeviceTensor::FromHost(const Tensor& host, std::shared_ptr<CudaDevice> device) {
  if (!host.defined()) throw Error("a device tensor from an undefined host tensor");
  DeviceTensor tensor(host.shape(), host.dtype(), std::move(device));
  tensor.CopyFromHost(host);
  return tensor;
}

Context DeviceTensor::context() const {
  return Context::gpu(device().ordinal());
}

uint64_t DeviceTensor::address() const {
  if (allocation_ == nullptr) throw Error("the device tensor is undefined");
  return allocation_->address + offset_;
}

CudaDevice& DeviceTensor::device() const {
  if (allocation_ == nullptr) throw Error("the device tensor is undefined");
  return *allocation_->device;
}

Tensor DeviceTensor::ToHost() const {
  Tensor host(shape_, dtype_);
  device().CopyToHost(host.data(), address(), nbytes());
  return host;
}

void DeviceTensor::CopyFromHost(const Tensor& host) {
  CheckSameSpec(shape_, dtype_, host.shape(), host.dtype(), "copying into a device tensor");
  device().CopyToDevice(address(), host.data(), nbytes());
  // The copy is asynchronous; the host bytes may go once it is done.
  device().Synchronize();
}

DeviceTensor DeviceTensor::CopyTo(const Context& gpu) const {
  if (!gpu.is_gpu()) throw Error("a device tensor on " + gpu.ToString() + ": expected a GPU context");
  gpu.CheckAvailable();
  DeviceTensor copy(shape_, dtype_, GpuDevice(gpu.device_id()));
  CopyTo(copy);
  return copy;
}

void DeviceTensor::CopyTo(DeviceTensor& destination) const {
  CheckSameSpec(destination.shape_, destination.dtype_, shape_, dtype_, "copying between device tensors");
  // Views of one allocation may overlap, which a device-to-device copy does not allow:
  // those go through the host.
  const bool overlap = destination.allocation_ == allocation_ && destination.offset_ < offset_ + nbytes() &&
                       offset_ < destination.offset_ + nbytes();
  if (overlap) {
    if (destination.offset_ != offset_) destination.CopyFromHost(ToHost());
    return;
  }
  if (destination.device().ordinal() == device().ordinal()) {
    destination.device().CopyOnDevice(destination.address(), address(), nbytes());
    destination.device().Synchronize();
  } else {
    destination.CopyFromHost(ToHost());
  }
}

DeviceTensor DeviceTensor::Reshaped(Shape shape) const {
  if (NumElements(shape) != size()) {
    throw Error("reshaping a device tensor of " + ShapeToString(shape_) + " to " + ShapeToString(shape) +
                ": the element counts differ");
  }
  DeviceTensor view = *this;
  view.shape_ = std::move(shape);
  return view;
}

DeviceTensor DeviceTensor::Rows(int64_t begin, int64_t count, Shape shape) const {
  const int64_t rows = shape_.empty() ? 0 : shape_[0];
  if (begin < 0 || count < 0 || begin > rows || count > rows - begin) {
    throw Error("rows [" + std::to_string(begin) + ", " + std::to_string(begin + count) + ") of a device tensor of " +
                ShapeToString(shape_));
  }
  const int64_t row_elements = rows == 0 ? 0 : size() / rows;
  if (NumElements(shape) != count * row_elements) {
    throw Error("rows of a device tensor of " + ShapeToString(shape_) + " as " + ShapeToString(shape) +
                ": the element counts differ");
  }
  DeviceTensor view = *this;
  view.shape_ = std::move(shape);
  view.offset_ += static_cast<uint64_t>(begin * row_elements) * DTypeSize(dtype_);
  return view;
}

}  // namespace kiln
