#include "graph/alter.h"

#include <utility>

namespace kiln {

AlterContext::AlterContext(const Node& altered, std::vector<Shape> in_shapes, std::vector<DType> in_types,
                           std::vector<Shape> out_shapes, std::vector<DType> out_types,
                           std::vector<const Tensor*> constant_values)
    : node(altered),
      attrs(altered.attrs),
      inputs(altered.inputs),
      input_shapes(std::move(in_shapes)),
      input_types(std::move(in_types)),
      output_shapes(std::move(out_shapes)),
      output_types(std::move(out_types)),
      constants(std::move(constant_values)) {}

NodeEntry AlterContext::Apply(const std::string& op, const std::vector<NodeEntry>& in, const AttrMap& given) {
  return {Node::Create(op, fresh_name(node.name + "_" + op), given, in), 0};
}

}  // namespace kiln
