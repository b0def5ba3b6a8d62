// Small ONNX models built in tests, node by node.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "runtime/tensor.h"
#include "symbol/onnx/onnx.pb.h"

namespace kiln::testing {

struct OnnxModelBuilder {
  onnx::ModelProto model;

  explicit OnnxModelBuilder(int64_t opset = 13);

  // A graph input; with `symbolic_batch` its first dimension is the named "batch".
  void Input(const std::string& name, const std::vector<int64_t>& shape, int32_t type = onnx::TensorProto::FLOAT,
             bool symbolic_batch = false);
  void Output(const std::string& name);
  void Initializer(const std::string& name, const Tensor& value);
  // A node; add attributes with AddIntAttr and its kin (symbol/onnx/onnx_tensor.h).
  onnx::NodeProto& Node(const std::string& op, const std::vector<std::string>& inputs,
                        const std::vector<std::string>& outputs, const std::string& name = "");
};

}  // namespace kiln::testing
