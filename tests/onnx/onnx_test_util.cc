#include "tests/onnx/onnx_test_util.h"

#include "symbol/onnx/onnx_tensor.h"

namespace kiln::testing {

OnnxModelBuilder::OnnxModelBuilder(int64_t opset) {
  model.set_ir_version(7);
  model.set_producer_name("kiln-test");
  auto* entry = model.add_opset_import();
  entry->set_domain("");
  entry->set_version(opset);
  model.mutable_graph()->set_name("test");
}

void OnnxModelBuilder::Input(const std::string& name, const std::vector<int64_t>& shape, int32_t type,
                             bool symbolic_batch) {
  auto* input = model.mutable_graph()->add_input();
  input->set_name(name);
  auto* tensor = input->mutable_type()->mutable_tensor_type();
  tensor->set_elem_type(type);
  auto* dims = tensor->mutable_shape();  // present even without dims: a 0-d input
  for (size_t i = 0; i < shape.size(); ++i) {
    auto* dim = dims->add_dim();
    if (i == 0 && symbolic_batch) {
      dim->set_dim_param("batch");
    } else {
      dim->set_dim_value(shape[i]);
    }
  }
}

void OnnxModelBuilder::Output(const std::string& name) {
  model.mutable_graph()->add_output()->set_name(name);
}

void OnnxModelBuilder::Initializer(const std::string& name, const Tensor& value) {
  *model.mutable_graph()->add_initializer() = TensorToOnnx(value, name);
}

onnx::NodeProto& OnnxModelBuilder::Node(const std::string& op, const std::vector<std::string>& inputs,
                                        const std::vector<std::string>& outputs, const std::string& name) {
  auto* node = model.mutable_graph()->add_node();
  node->set_op_type(op);
  node->set_name(name);
  for (const auto& in : inputs) node->add_input(in);
  for (const auto& out : outputs) node->add_output(out);
  return *node;
}

}  // namespace kiln::testing
