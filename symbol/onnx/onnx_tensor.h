// ONNX tensors, element types and node attributes to and from kiln's (shared by the
// importer, the exporter and the tests that build or read ONNX models).
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "runtime/file_util.h"
#include "runtime/tensor.h"
#include "symbol/onnx/onnx.pb.h"

namespace kiln {

// kiln's dtype for an ONNX element type (TensorProto::DataType), if kiln has it.
std::optional<DType> DTypeFromOnnx(int32_t elem_type);
int32_t DTypeToOnnx(DType dtype);
// The ONNX name of an element type ("FLOAT", "STRING", ...).
std::string OnnxTypeName(int32_t elem_type);

// A TensorProto's values (raw_data or the typed fields). Throws kiln::Error naming
// `what` for unsupported element types, external data and size mismatches.
// Tensor data stored beside a model (TensorProto.data_location EXTERNAL, as models over
// 2 GB are saved): files relative to the model's directory, each mapped once. A location
// that is absolute or climbs out of that directory ("..") is refused.
class ExternalData {
 public:
  explicit ExternalData(std::string dir) : dir_(std::move(dir)) {}
  // The `nbytes` bytes `proto`'s external_data entries (location, offset, length) name.
  std::string_view Bytes(const onnx::TensorProto& proto, uint64_t nbytes, const std::string& what);

 private:
  std::string dir_;
  std::map<std::string, std::shared_ptr<const FileBytes>> files_;
};

// `external` resolves tensors stored in external files; without it they are an error.
Tensor TensorFromOnnx(const onnx::TensorProto& proto, const std::string& what, ExternalData* external = nullptr);
onnx::TensorProto TensorToOnnx(const Tensor& tensor, const std::string& name);

// A 0-d tensor of `dtype` holding `value` as kiln's scalar operators take it: integer
// dtypes truncate and wrap it (MXNet's rule).
Tensor ScalarTensor(double value, DType dtype);
// int64 tensors holding exactly these values: 0-d, and 1-d.
Tensor Int64Scalar(int64_t value);
Tensor Int64Vector(const std::vector<int64_t>& values);

// Adds an attribute to a node.
void AddIntAttr(onnx::NodeProto& node, const std::string& name, int64_t value);
void AddFloatAttr(onnx::NodeProto& node, const std::string& name, double value);
void AddIntsAttr(onnx::NodeProto& node, const std::string& name, const std::vector<int64_t>& values);
void AddStringAttr(onnx::NodeProto& node, const std::string& name, const std::string& value);

}  // namespace kiln
