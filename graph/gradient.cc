#include "graph/gradient.h"

#include <utility>

#include "runtime/error.h"

namespace kiln {

GradientContext::GradientContext(const Node& forward, std::vector<Shape> in_shapes, std::vector<DType> in_types,
                                 std::vector<Shape> out_shapes, std::vector<DType> out_types,
                                 std::vector<std::optional<NodeEntry>> out_grads)
    : node(forward),
      attrs(forward.attrs),
      inputs(forward.inputs),
      input_shapes(std::move(in_shapes)),
      input_types(std::move(in_types)),
      output_shapes(std::move(out_shapes)),
      output_types(std::move(out_types)),
      output_grads(std::move(out_grads)),
      input_grads(forward.inputs.size()) {}

std::vector<NodeEntry> GradientContext::ApplyAll(const std::string& op_name, const std::vector<NodeEntry>& in,
                                                 const AttrMap& given) {
  const NodePtr created =
      Node::Create(op_name, node.name + "_backward_" + std::to_string(created_++) + "_" + op_name, given, in);
  std::vector<NodeEntry> entries;
  for (uint32_t i = 0; i < created->num_outputs(); ++i) entries.push_back({created, i});
  return entries;
}

NodeEntry GradientContext::Apply(const std::string& op, const std::vector<NodeEntry>& in, const AttrMap& given) {
  return ApplyAll(op, in, given)[0];
}

NodeEntry GradientContext::OutputGrad(size_t i) {
  if (HasOutputGrad(i)) return *output_grads[i];
  if (outputs.size() <= i) throw Error("operator " + node.op->name() + " has no output " + std::to_string(i));
  return Apply("zeros_like", {outputs[i]});
}

NodeEntry GradientContext::SumToShape(const NodeEntry& grad, const Shape& from, const Shape& to) {
  if (from == to) return grad;
  // Axes `to` lacks (leading) or has as 1 where `from` is larger.
  const size_t lead = from.size() - to.size();
  std::vector<int64_t> axes;
  for (size_t a = 0; a < from.size(); ++a) {
    if (a < lead || (to[a - lead] == 1 && from[a] != 1)) axes.push_back(static_cast<int64_t>(a));
  }
  NodeEntry summed = grad;
  if (!axes.empty()) summed = Apply("sum", {grad}, {{"axis", axes}, {"keepdims", true}});
  return Apply("_np_reshape", {summed}, {{"newshape", std::vector<int64_t>(to.begin(), to.end())}});
}

}  // namespace kiln
