// ONNX tensors and element types to and from kiln's (shared by the importer, the
// exporter and the conformance tests that read ONNX's test data).
#pragma once

#include <optional>
#include <string>

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
Tensor TensorFromOnnx(const onnx::TensorProto& proto, const std::string& what);
onnx::TensorProto TensorToOnnx(const Tensor& tensor, const std::string& name);

}  // namespace kiln
