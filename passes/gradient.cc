#include "passes/gradient.h"

#include <set>
#include <unordered_map>

#include "graph/gradient.h"
#include "graph/op.h"
#include "passes/infer_shape.h"
#include "runtime/error.h"

namespace kiln {
namespace {

NodeEntry MakeNode(const std::string& op_name, const std::string& name, const std::vector<NodeEntry>& inputs,
                   const std::map<std::string, AttrValue>& attrs = {}) {
  const OpDef& op = OpRegistry::Global().Get(op_name);
  return {Node::Create(op, name, op.ParseAttrs(attrs, name), inputs), 0};
}

// The sum of the gradients reaching one entry.
NodeEntry Sum(const std::vector<NodeEntry>& grads, const std::string& name) {
  if (grads.size() == 1) return grads[0];
  return MakeNode("add_n", name, grads, {{"num_args", AttrValue{static_cast<int64_t>(grads.size())}}});
}

}  // namespace

std::vector<NodeEntry> BuildGradient(const GradientRequest& request) {
  if (request.head_grads.size() != request.ys.size()) {
    throw Error("gradient: " + std::to_string(request.ys.size()) + " outputs but " +
                std::to_string(request.head_grads.size()) + " head gradients");
  }
  // Shapes and dtypes of every forward entry.
  Graph forward;
  forward.outputs = request.ys;
  for (const NodeEntry& x : request.xs) forward.outputs.push_back(x);
  InferShape(forward, request.shapes);
  InferType(forward, request.dtypes);
  const IndexedGraph& indexed = forward.indexed();
  const auto& shapes = forward.GetAttr<std::vector<ShapeSlot>>("shape");
  const auto& types = forward.GetAttr<std::vector<DTypeSlot>>("dtype");
  const auto shape_of = [&](size_t entry, const Node& node) {
    if (!shapes[entry]) throw Error("gradient: the shape of node '" + node.name + "' is unknown; give input shapes");
    return *shapes[entry];
  };

  // Nodes that depend on an x: only their gradients are built.
  std::set<size_t> wanted;
  for (const NodeEntry& x : request.xs) wanted.insert(indexed.entry_id(x));
  std::vector<bool> depends(indexed.num_nodes(), false);
  for (size_t id = 0; id < indexed.num_nodes(); ++id) {
    const Node& node = indexed.node(id);
    for (uint32_t i = 0; i < node.num_outputs(); ++i)
      depends[id] = depends[id] || wanted.count(indexed.entry_id(id, i));
    for (const NodeEntry& input : node.inputs) depends[id] = depends[id] || depends[indexed.node_id(input.node.get())];
  }

  std::unordered_map<size_t, std::vector<NodeEntry>> grads;  // by entry id
  for (size_t k = 0; k < request.ys.size(); ++k) {
    const NodeEntry& y = request.ys[k];
    const NodeEntry head =
        request.head_grads[k] ? *request.head_grads[k] : MakeNode("ones_like", y.node->name + "_head_grad", {y});
    grads[indexed.entry_id(y)].push_back(head);
  }

  for (size_t id = indexed.num_nodes(); id-- > 0;) {
    const Node& node = indexed.node(id);
    if (node.is_variable() || !depends[id]) continue;
    std::vector<std::optional<NodeEntry>> output_grads(node.num_outputs());
    std::vector<Shape> out_shapes;
    std::vector<DType> out_types;
    bool any = false;
    for (uint32_t i = 0; i < node.num_outputs(); ++i) {
      const size_t entry = indexed.entry_id(id, i);
      out_shapes.push_back(shape_of(entry, node));
      out_types.push_back(types[entry].value_or(DType::kFloat32));
      const auto it = grads.find(entry);
      // Integer outputs carry no gradient.
      if (it == grads.end() || !IsFloat(out_types.back())) continue;
      output_grads[i] = Sum(it->second, node.name + "_output" + std::to_string(i) + "_grad_sum");
      any = true;
    }
    if (!any) continue;
    const GradientFn& fn = node.op->gradient();
    if (!fn) {
      throw Error("gradient: operator " + node.op->name() + " (node '" + node.name +
                  "') has no gradient; it cannot be between the differentiated outputs and the variables");
    }
    std::vector<Shape> in_shapes;
    std::vector<DType> in_types;
    for (const NodeEntry& input : node.inputs) {
      const size_t entry = indexed.entry_id(input);
      in_shapes.push_back(shape_of(entry, *input.node));
      in_types.push_back(types[entry].value_or(DType::kFloat32));
    }
    GradientContext ctx(node, in_shapes, in_types, out_shapes, out_types, std::move(output_grads));
    ctx.is_train = request.is_train;
    for (uint32_t i = 0; i < node.num_outputs(); ++i) ctx.outputs.push_back({indexed.node_ptr(id), i});
    fn(ctx);
    for (size_t i = 0; i < node.inputs.size(); ++i) {
      if (!ctx.input_grads[i]) continue;
      const NodeEntry& input = node.inputs[i];
      if (!depends[indexed.node_id(input.node.get())]) continue;
      grads[indexed.entry_id(input)].push_back(*ctx.input_grads[i]);
    }
  }

  std::vector<NodeEntry> result;
  for (const NodeEntry& x : request.xs) {
    const auto it = grads.find(indexed.entry_id(x));
    if (it == grads.end()) {
      result.push_back(MakeNode("zeros_like", x.node->name + "_zero_grad", {x}));
    } else {
      result.push_back(Sum(it->second, x.node->name + "_grad_sum"));
    }
  }
  return result;
}

Graph WithGradients(const Graph& forward, const std::vector<std::string>& wrt, bool head_grad_inputs, bool is_train) {
  GradientRequest request;
  request.is_train = is_train;
  request.ys = forward.outputs;
  request.shapes = forward.ParamShapes();
  for (const auto& [name, tensor] : forward.params) request.dtypes[name] = tensor.dtype();
  const auto names = forward.OutputNames();
  // Head gradients are variables of their output's shape and dtype.
  Graph typed = forward;
  InferShape(typed, request.shapes);
  InferType(typed, request.dtypes);
  for (size_t k = 0; k < forward.outputs.size(); ++k) {
    if (!head_grad_inputs) {
      request.head_grads.push_back(std::nullopt);
      continue;
    }
    const NodeEntry& y = forward.outputs[k];
    request.head_grads.push_back(
        NodeEntry{Node::Variable(names[k] + "_head_grad", EntryShape(typed, y), EntryType(typed, y)), 0});
  }
  const IndexedGraph& indexed = forward.indexed();
  std::map<std::string, NodeEntry> variables;
  for (const size_t id : indexed.input_node_ids()) variables[indexed.node(id).name] = {indexed.node_ptr(id), 0};
  for (const std::string& name : wrt) {
    const auto it = variables.find(name);
    if (it == variables.end()) throw Error("gradient: '" + name + "' is not a variable of the graph");
    request.xs.push_back(it->second);
  }
  Graph result;
  result.outputs = forward.outputs;
  result.output_names = names;
  result.params = forward.params;
  const auto grads = BuildGradient(request);
  for (size_t i = 0; i < grads.size(); ++i) {
    result.outputs.push_back(grads[i]);
    result.output_names.push_back(wrt[i] + "_grad");
  }
  return result;
}

}  // namespace kiln
