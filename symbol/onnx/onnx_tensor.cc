#include "symbol/onnx/onnx_tensor.h"

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <optional>

#include "graph/op_util.h"
#include "runtime/error.h"

namespace kiln {

std::optional<DType> DTypeFromOnnx(int32_t elem_type) {
  switch (elem_type) {
    case onnx::TensorProto::FLOAT: return DType::kFloat32;
    case onnx::TensorProto::DOUBLE: return DType::kFloat64;
    case onnx::TensorProto::FLOAT16: return DType::kFloat16;
    case onnx::TensorProto::UINT8: return DType::kUInt8;
    case onnx::TensorProto::INT8: return DType::kInt8;
    case onnx::TensorProto::INT32: return DType::kInt32;
    case onnx::TensorProto::INT64: return DType::kInt64;
    case onnx::TensorProto::BOOL: return DType::kBool;
    case onnx::TensorProto::INT16: return DType::kInt16;
    case onnx::TensorProto::UINT16: return DType::kUInt16;
    case onnx::TensorProto::UINT32: return DType::kUInt32;
    case onnx::TensorProto::UINT64: return DType::kUInt64;
    case onnx::TensorProto::BFLOAT16: return DType::kBFloat16;
    default: return std::nullopt;
  }
}

int32_t DTypeToOnnx(DType dtype) {
  switch (dtype) {
    case DType::kFloat32: return onnx::TensorProto::FLOAT;
    case DType::kFloat64: return onnx::TensorProto::DOUBLE;
    case DType::kFloat16: return onnx::TensorProto::FLOAT16;
    case DType::kUInt8: return onnx::TensorProto::UINT8;
    case DType::kInt8: return onnx::TensorProto::INT8;
    case DType::kInt32: return onnx::TensorProto::INT32;
    case DType::kInt64: return onnx::TensorProto::INT64;
    case DType::kBool: return onnx::TensorProto::BOOL;
    case DType::kInt16: return onnx::TensorProto::INT16;
    case DType::kUInt16: return onnx::TensorProto::UINT16;
    case DType::kUInt32: return onnx::TensorProto::UINT32;
    case DType::kUInt64: return onnx::TensorProto::UINT64;
    case DType::kBFloat16: return onnx::TensorProto::BFLOAT16;
  }
  return onnx::TensorProto::UNDEFINED;
}

std::string OnnxTypeName(int32_t elem_type) {
  if (onnx::TensorProto::DataType_IsValid(elem_type)) {
    return onnx::TensorProto::DataType_Name(static_cast<onnx::TensorProto::DataType>(elem_type));
  }
  return "type " + std::to_string(elem_type);
}

namespace {

// Copies typed repeated fields element by element (the count is checked by the caller,
// before allocating, through TypedValueCount).
template <typename Field, typename Store>
void CopyTyped(const Field& field, Tensor& tensor, Store store) {
  for (int64_t i = 0; i < tensor.size(); ++i) store(i, field.Get(static_cast<int>(i)));
}

// How many values the typed field that holds `proto`'s data type has.
int64_t TypedValueCount(const onnx::TensorProto& proto) {
  switch (proto.data_type()) {
    case onnx::TensorProto::FLOAT: return proto.float_data_size();
    case onnx::TensorProto::DOUBLE: return proto.double_data_size();
    case onnx::TensorProto::INT64: return proto.int64_data_size();
    case onnx::TensorProto::UINT32:
    case onnx::TensorProto::UINT64: return proto.uint64_data_size();
    default:  // FLOAT16 and BFLOAT16 bits, INT32, INT16, UINT16, INT8, UINT8, BOOL
      return proto.int32_data_size();
  }
}

}  // namespace

std::string_view ExternalData::Bytes(const onnx::TensorProto& proto, uint64_t nbytes, const std::string& what) {
  std::string location;
  uint64_t offset = 0;
  std::optional<uint64_t> length;
  for (const auto& entry : proto.external_data()) {
    const auto number = [&](const char* key) {
      try {
        size_t used = 0;
        const uint64_t value = std::stoull(entry.value(), &used);
        if (used == entry.value().size()) return value;
      } catch (const std::exception&) {
      }
      throw Error(what + ": external data " + key + " '" + Abbreviate(entry.value()) + "' is not a whole number");
    };
    if (entry.key() == "location") location = entry.value();
    if (entry.key() == "offset") offset = number("offset");
    if (entry.key() == "length") length = number("length");
  }
  if (location.empty()) throw Error(what + ": stored externally without a location");
  const std::filesystem::path relative(location);
  bool climbs = relative.is_absolute();
  for (const auto& part : relative) climbs = climbs || part == "..";
  if (climbs) {
    throw Error(what + ": external data location '" + Abbreviate(location) +
                "' leaves the model's directory (absolute or with '..'); kiln reads only files beside the model");
  }
  auto& file = files_[location];
  if (!file) file = FileBytes::Open((std::filesystem::path(dir_) / relative).string());
  const std::string_view bytes = file->bytes();
  const uint64_t size = length.value_or(nbytes);
  if (size != nbytes) {
    throw Error(what + ": external data length " + std::to_string(size) + " differs from the " +
                std::to_string(nbytes) + " bytes its shape and type need");
  }
  if (offset > bytes.size() || size > bytes.size() - offset) {
    throw Error(what + ": external data [" + std::to_string(offset) + ", +" + std::to_string(size) + ") lies beyond '" +
                Abbreviate(location) + "' (" + std::to_string(bytes.size()) + " bytes)");
  }
  return bytes.substr(offset, size);
}

Tensor TensorFromOnnx(const onnx::TensorProto& proto, const std::string& what, ExternalData* external) {
  const bool stored_externally = proto.data_location() == onnx::TensorProto::EXTERNAL;
  if (stored_externally && external == nullptr) {
    throw Error(what +
                ": its data is stored in an external file, which needs the model's directory: import the "
                "model from its file (kiln reads the data files beside it)");
  }
  if (proto.has_segment()) throw Error(what + ": segmented tensors are not supported");
  const auto dtype = DTypeFromOnnx(proto.data_type());
  if (!dtype) throw Error(what + ": element type " + OnnxTypeName(proto.data_type()) + " is not supported");
  Shape shape(proto.dims().begin(), proto.dims().end());
  for (const int64_t d : shape) {
    if (d < 0) throw Error(what + ": negative dimension in " + ShapeToString(shape));
  }
  // The declared size is checked against the bytes (or values) present before anything
  // is allocated: a few bytes of protobuf must not make kiln zero gigabytes.
  uint64_t nbytes = 0;
  try {
    nbytes = CheckedByteSize(shape, *dtype);
  } catch (const Error& e) {
    throw Error(what + ": " + e.what());
  }
  if (stored_externally) {
    const std::string_view bytes = external->Bytes(proto, nbytes, what);
    Tensor tensor(shape, *dtype);
    if (nbytes > 0) std::memcpy(tensor.data(), bytes.data(), nbytes);
    return tensor;
  }
  if (proto.has_raw_data()) {
    if (proto.raw_data().size() != nbytes) {
      throw Error(what + ": raw_data has " + std::to_string(proto.raw_data().size()) + " bytes, shape " +
                  ShapeToString(shape) + " of " + std::string(DTypeName(*dtype)) + " needs " + std::to_string(nbytes));
    }
    Tensor tensor(shape, *dtype);
    if (nbytes > 0) std::memcpy(tensor.data(), proto.raw_data().data(), nbytes);
    return tensor;
  }
  const int64_t values = static_cast<int64_t>(nbytes / DTypeSize(*dtype));
  const int64_t given = TypedValueCount(proto);
  if (given != values) {
    throw Error(what + ": " + std::to_string(given) + " values for shape " + ShapeToString(shape) + " (" +
                std::to_string(values) + " elements)");
  }
  Tensor tensor(shape, *dtype);
  void* data = tensor.data();
  switch (proto.data_type()) {
    case onnx::TensorProto::FLOAT:
      CopyTyped(proto.float_data(), tensor, [&](int64_t i, float v) { static_cast<float*>(data)[i] = v; });
      break;
    case onnx::TensorProto::DOUBLE:
      CopyTyped(proto.double_data(), tensor, [&](int64_t i, double v) { static_cast<double*>(data)[i] = v; });
      break;
    case onnx::TensorProto::INT64:
      CopyTyped(proto.int64_data(), tensor, [&](int64_t i, int64_t v) { static_cast<int64_t*>(data)[i] = v; });
      break;
    case onnx::TensorProto::FLOAT16:  // int32_data holds the bits
    case onnx::TensorProto::BFLOAT16:
    case onnx::TensorProto::UINT16:  // and the values of 16-bit integers
      CopyTyped(proto.int32_data(), tensor,
                [&](int64_t i, int32_t v) { static_cast<uint16_t*>(data)[i] = static_cast<uint16_t>(v); });
      break;
    case onnx::TensorProto::INT16:
      CopyTyped(proto.int32_data(), tensor,
                [&](int64_t i, int32_t v) { static_cast<int16_t*>(data)[i] = static_cast<int16_t>(v); });
      break;
    case onnx::TensorProto::UINT32:
      CopyTyped(proto.uint64_data(), tensor,
                [&](int64_t i, uint64_t v) { static_cast<uint32_t*>(data)[i] = static_cast<uint32_t>(v); });
      break;
    case onnx::TensorProto::UINT64:
      CopyTyped(proto.uint64_data(), tensor, [&](int64_t i, uint64_t v) { static_cast<uint64_t*>(data)[i] = v; });
      break;
    default:  // INT32, INT8, UINT8, BOOL: int32_data holds the values
      CopyTyped(proto.int32_data(), tensor, [&](int64_t i, int32_t v) { tensor.SetDouble(i, v); });
      break;
  }
  return tensor;
}

onnx::TensorProto TensorToOnnx(const Tensor& tensor, const std::string& name) {
  onnx::TensorProto proto;
  proto.set_name(name);
  proto.set_data_type(DTypeToOnnx(tensor.dtype()));
  for (const int64_t d : tensor.shape()) proto.add_dims(d);
  proto.set_raw_data(tensor.nbytes() > 0 ? std::string(static_cast<const char*>(tensor.data()), tensor.nbytes())
                                         : std::string());
  return proto;
}

Tensor ScalarTensor(double value, DType dtype) {
  Tensor t(Shape{}, dtype);
  if (IsFloat(dtype)) {
    t.SetDouble(0, value);
  } else {
    op_util::StoreInt(t, 0, op_util::ScalarToInt(value, dtype));
  }
  return t;
}

Tensor Int64Scalar(int64_t value) {
  Tensor t(Shape{}, DType::kInt64);
  t.data_as<int64_t>()[0] = value;
  return t;
}

Tensor Int64Vector(const std::vector<int64_t>& values) {
  Tensor t({static_cast<int64_t>(values.size())}, DType::kInt64);
  std::copy(values.begin(), values.end(), t.data_as<int64_t>());
  return t;
}

namespace {

onnx::AttributeProto& AddAttr(onnx::NodeProto& node, const std::string& name,
                              onnx::AttributeProto::AttributeType type) {
  onnx::AttributeProto& attr = *node.add_attribute();
  attr.set_name(name);
  attr.set_type(type);
  return attr;
}

}  // namespace

void AddIntAttr(onnx::NodeProto& node, const std::string& name, int64_t value) {
  AddAttr(node, name, onnx::AttributeProto::INT).set_i(value);
}

void AddFloatAttr(onnx::NodeProto& node, const std::string& name, double value) {
  AddAttr(node, name, onnx::AttributeProto::FLOAT).set_f(static_cast<float>(value));
}

void AddIntsAttr(onnx::NodeProto& node, const std::string& name, const std::vector<int64_t>& values) {
  auto& attr = AddAttr(node, name, onnx::AttributeProto::INTS);
  for (const int64_t v : values) attr.add_ints(v);
}

void AddStringAttr(onnx::NodeProto& node, const std::string& name, const std::string& value) {
  AddAttr(node, name, onnx::AttributeProto::STRING).set_s(value);
}

}  // namespace kiln
