#include "graph/op_util.h"

#include <algorithm>
#include <cmath>

namespace kiln::op_util {

void ShapeError(const std::string& what, const std::string& expected, const Shape& given) {
  throw Error(what + ": expected " + expected + ", given " + ShapeToString(given));
}

int64_t CheckedMultiply(int64_t a, int64_t b, const std::string& what) {
  int64_t product = 0;
  if (__builtin_mul_overflow(a, b, &product)) {
    throw Error(what + ": " + std::to_string(a) + " x " + std::to_string(b) + " overflows");
  }
  return product;
}

void AssignShape(ShapeSlot& slot, const Shape& shape, const std::string& what) {
  if (slot && *slot != shape) ShapeError(what, "shape " + ShapeToString(shape), *slot);
  slot = shape;
}

void AssignType(DTypeSlot& slot, DType dtype, const std::string& what) {
  if (slot && *slot != dtype) {
    throw Error(what + ": expected dtype " + std::string(DTypeName(dtype)) + ", given " +
                std::string(DTypeName(*slot)));
  }
  slot = dtype;
}

Shape BroadcastShapes(const Shape& lhs, const Shape& rhs) {
  const size_t ndim = std::max(lhs.size(), rhs.size());
  Shape out(ndim);
  for (size_t i = 0; i < ndim; ++i) {
    const int64_t l = i < ndim - lhs.size() ? 1 : lhs[i - (ndim - lhs.size())];
    const int64_t r = i < ndim - rhs.size() ? 1 : rhs[i - (ndim - rhs.size())];
    if (l != r && l != 1 && r != 1) {
      throw Error("shapes " + ShapeToString(lhs) + " and " + ShapeToString(rhs) +
                  " cannot be broadcast together (dimension " + std::to_string(i) + ": " + std::to_string(l) + " vs " +
                  std::to_string(r) + ")");
    }
    out[i] = l == 1 ? r : l;
  }
  return out;
}

int64_t NormalizeAxis(int64_t axis, int64_t ndim, const std::string& what) {
  if (axis < -ndim || axis >= std::max<int64_t>(ndim, 1) || (ndim == 0 && axis != 0 && axis != -1)) {
    throw Error(what + ": axis " + std::to_string(axis) + " is out of range for " + std::to_string(ndim) +
                "-d input (expected " + std::to_string(-ndim) + " <= axis < " + std::to_string(ndim) + ")");
  }
  return axis < 0 ? axis + ndim : axis;
}

InferShapeFn SameShapeInfer() {
  return [](const Attrs&, std::vector<ShapeSlot>& inputs, std::vector<ShapeSlot>& outputs) {
    ShapeSlot known;
    for (const auto& slot : inputs) known = known ? known : slot;
    for (const auto& slot : outputs) known = known ? known : slot;
    if (!known) return;
    for (size_t i = 0; i < inputs.size(); ++i) AssignShape(inputs[i], *known, "input " + std::to_string(i));
    for (size_t i = 0; i < outputs.size(); ++i) AssignShape(outputs[i], *known, "output " + std::to_string(i));
  };
}

InferShapeFn BroadcastInfer() {
  return [](const Attrs&, std::vector<ShapeSlot>& inputs, std::vector<ShapeSlot>& outputs) {
    if (!inputs[0] || !inputs[1]) return;
    AssignShape(outputs[0], BroadcastShapes(*inputs[0], *inputs[1]), "output");
  };
}

InferTypeFn FixedOutputType(DType dtype) {
  return [dtype](const Attrs&, std::vector<DTypeSlot>&, std::vector<DTypeSlot>& outputs) {
    for (auto& slot : outputs) AssignType(slot, dtype, "output");
  };
}

InplaceFn InplaceIdentity() {
  return [](const Attrs&) { return std::vector<std::pair<int, int>>{{0, 0}}; };
}

void ForEachIndex(const Shape& shape, const std::function<void(int64_t, const std::vector<int64_t>&)>& fn) {
  const int64_t total = NumElements(shape);
  std::vector<int64_t> index(shape.size(), 0);
  for (int64_t flat = 0; flat < total; ++flat) {
    fn(flat, index);
    for (int64_t d = static_cast<int64_t>(shape.size()) - 1; d >= 0; --d) {
      if (++index[d] < shape[d]) break;
      index[d] = 0;
    }
  }
}

int64_t BroadcastOffset(const Shape& shape, const std::vector<int64_t>& out_index) {
  const size_t offset = out_index.size() - shape.size();
  int64_t flat = 0;
  for (size_t d = 0; d < shape.size(); ++d) {
    const int64_t i = shape[d] == 1 ? 0 : out_index[d + offset];
    flat = flat * shape[d] + i;
  }
  return flat;
}

int64_t LoadInt(const Tensor& tensor, int64_t index) {
  switch (tensor.dtype()) {
    case DType::kInt64:
    case DType::kUInt64: return tensor.data_as<int64_t>()[index];  // uint64: its bits
    case DType::kUInt32: return tensor.data_as<uint32_t>()[index];
    case DType::kInt32: return tensor.data_as<int32_t>()[index];
    case DType::kInt16: return tensor.data_as<int16_t>()[index];
    case DType::kUInt16: return tensor.data_as<uint16_t>()[index];
    case DType::kInt8: return tensor.data_as<int8_t>()[index];
    case DType::kUInt8: return tensor.data_as<uint8_t>()[index];
    case DType::kBool: return tensor.data_as<uint8_t>()[index] != 0;
    default: return kir::SaturateToInt64(tensor.GetDouble(index));
  }
}

void StoreInt(Tensor& tensor, int64_t index, int64_t value) {
  switch (tensor.dtype()) {
    case DType::kInt64:
    case DType::kUInt64: tensor.data_as<int64_t>()[index] = value; return;
    case DType::kInt32:
    case DType::kUInt32: tensor.data_as<uint32_t>()[index] = static_cast<uint32_t>(value); return;
    case DType::kInt16:
    case DType::kUInt16: tensor.data_as<uint16_t>()[index] = static_cast<uint16_t>(value); return;
    case DType::kInt8:
    case DType::kUInt8: tensor.data_as<uint8_t>()[index] = static_cast<uint8_t>(value); return;
    case DType::kFloat32: tensor.data_as<float>()[index] = static_cast<float>(value); return;
    case DType::kFloat64:
    case DType::kFloat16:
    case DType::kBFloat16:
    case DType::kBool: tensor.SetDouble(index, static_cast<double>(value)); return;
  }
}

double IntToDouble(int64_t value, DType dtype) {
  return dtype == DType::kUInt64 ? static_cast<double>(static_cast<uint64_t>(value)) : static_cast<double>(value);
}

ReferenceFn UnaryReference(std::function<double(double)> fn) {
  return [fn = std::move(fn)](const Attrs&, std::span<const Tensor> in, std::span<Tensor> out, const RefContext&) {
    for (int64_t i = 0; i < out[0].size(); ++i) out[0].SetDouble(i, fn(in[0].GetDouble(i)));
  };
}

int64_t ScalarToInt(double value, DType dtype) {
  if (dtype == DType::kBool) return value != 0;  // not through int64: 0.5 is true
  return kir::FloatToInt(ToScalarType(dtype), value);
}

int64_t IntDivide(int64_t a, int64_t b) {
  if (b == 0) return 0;
  if (b == -1) return static_cast<int64_t>(0 - static_cast<uint64_t>(a));  // MIN / -1 wraps to MIN
  return a / b;
}

int64_t IntPower(int64_t a, int64_t b) {
  return kir::SaturateToInt64(std::pow(static_cast<double>(a), static_cast<double>(b)));
}

int64_t IntModulo(int64_t a, int64_t b) {
  if (b == 0 || b == -1) return 0;  // -1: MIN % -1 would trap
  const int64_t r = a % b;
  return r != 0 && (r < 0) != (b < 0) ? r + b : r;
}

ReferenceFn BinaryBroadcastReference(std::function<double(double, double)> fn,
                                     std::function<int64_t(int64_t, int64_t)> int_fn,
                                     std::function<uint64_t(uint64_t, uint64_t)> uint64_fn) {
  return [fn = std::move(fn), int_fn = std::move(int_fn), uint64_fn = std::move(uint64_fn)](
             const Attrs&, std::span<const Tensor> in, std::span<Tensor> out, const RefContext&) {
    const Shape& a = in[0].shape();
    const Shape& b = in[1].shape();
    const bool integer = !IsFloat(out[0].dtype());
    const bool unsigned64 = uint64_fn && in[0].dtype() == DType::kUInt64;
    ForEachIndex(out[0].shape(), [&](int64_t flat, const std::vector<int64_t>& index) {
      const int64_t ia = BroadcastOffset(a, index), ib = BroadcastOffset(b, index);
      if (unsigned64) {
        const auto x = static_cast<uint64_t>(LoadInt(in[0], ia)), y = static_cast<uint64_t>(LoadInt(in[1], ib));
        StoreInt(out[0], flat, static_cast<int64_t>(uint64_fn(x, y)));
      } else if (integer) {
        StoreInt(out[0], flat, int_fn(LoadInt(in[0], ia), LoadInt(in[1], ib)));
      } else {
        out[0].SetDouble(flat, fn(in[0].GetDouble(ia), in[1].GetDouble(ib)));
      }
    });
  };
}

}  // namespace kiln::op_util
