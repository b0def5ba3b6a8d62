#include "graph/graph.h"

#include <set>
#include <unordered_set>

#include "runtime/error.h"

namespace kiln {

std::vector<std::string> Node::output_names() const {
  if (is_variable()) return {name};
  return op->OutputNames(attrs);
}

NodePtr Node::Variable(std::string name, std::optional<Shape> shape, std::optional<DType> dtype) {
  auto node = std::make_shared<Node>();
  node->name = std::move(name);
  node->shape = std::move(shape);
  node->dtype = dtype;
  return node;
}

NodePtr Node::Create(const OpDef& op, std::string name, Attrs attrs, std::vector<NodeEntry> inputs) {
  const auto expected = op.InputNames(attrs);
  if (inputs.size() != expected.size()) {
    std::string names;
    for (const auto& n : expected) names += (names.empty() ? "" : ", ") + n;
    throw Error("operator " + op.name() + " (node '" + name + "'): expected " + std::to_string(expected.size()) +
                " inputs (" + names + "), given " + std::to_string(inputs.size()));
  }
  for (size_t i = 0; i < inputs.size(); ++i) {
    if (!inputs[i].node)
      throw Error("operator " + op.name() + " (node '" + name + "'): input '" + expected[i] + "' is empty");
    if (inputs[i].index >= inputs[i].node->num_outputs()) {
      throw Error("operator " + op.name() + " (node '" + name + "'): input '" + expected[i] + "' refers to output " +
                  std::to_string(inputs[i].index) + " of node '" + inputs[i].node->name + "', which has " +
                  std::to_string(inputs[i].node->num_outputs()) + " outputs");
    }
  }
  auto node = std::make_shared<Node>();
  node->op = &op;
  node->name = std::move(name);
  node->attrs = std::move(attrs);
  node->inputs = std::move(inputs);
  return node;
}

NodePtr Node::Create(const std::string& op_name, std::string name, const AttrMap& attrs,
                     std::vector<NodeEntry> inputs) {
  const OpDef& op = OpRegistry::Global().Get(op_name);
  std::map<std::string, AttrValue> values;
  for (const auto& [key, arg] : attrs) values[key] = arg.value;
  Attrs parsed = op.ParseAttrs(values, name);
  return Create(op, std::move(name), std::move(parsed), std::move(inputs));
}

std::vector<NodePtr> TopologicalOrder(const std::vector<NodeEntry>& outputs) {
  std::vector<NodePtr> order;
  std::unordered_set<const Node*> visited;
  // Explicit stack of (node, next input to visit).
  std::vector<std::pair<NodePtr, size_t>> stack;
  for (const auto& output : outputs) {
    if (!output.node || visited.count(output.node.get())) continue;
    stack.emplace_back(output.node, 0);
    visited.insert(output.node.get());
    while (!stack.empty()) {
      auto& [node, next] = stack.back();
      if (next < node->inputs.size()) {
        const NodePtr& input = node->inputs[next++].node;
        if (input && visited.insert(input.get()).second) stack.emplace_back(input, 0);
      } else {
        order.push_back(node);
        stack.pop_back();
      }
    }
  }
  return order;
}

IndexedGraph::IndexedGraph(const std::vector<NodeEntry>& outputs) {
  nodes_ = TopologicalOrder(outputs);
  entry_offset_.reserve(nodes_.size() + 1);
  entry_offset_.push_back(0);
  for (size_t id = 0; id < nodes_.size(); ++id) {
    ids_[nodes_[id].get()] = id;
    entry_offset_.push_back(entry_offset_.back() + nodes_[id]->num_outputs());
    if (nodes_[id]->is_variable()) input_node_ids_.push_back(id);
  }
  for (const auto& output : outputs) output_entries_.push_back(entry_id(output));
}

const IndexedGraph& Graph::indexed() const {
  if (!indexed_ || indexed_outputs_ != outputs) {
    indexed_ = std::make_shared<IndexedGraph>(outputs);
    indexed_outputs_ = outputs;
  }
  return *indexed_;
}

std::string DefaultOutputName(const Node& node, uint32_t index) {
  if (node.is_variable()) return node.name;
  const auto names = node.output_names();
  if (names.size() == 1 && names[0] == "output") return node.name + "_output";
  if (index < names.size()) return node.name + "_" + names[index];
  return node.name + "_output" + std::to_string(index);
}

std::vector<std::string> Graph::OutputNames() const {
  std::vector<std::string> names;
  for (size_t i = 0; i < outputs.size(); ++i) {
    names.push_back(i < output_names.size() && !output_names[i].empty()
                        ? output_names[i]
                        : DefaultOutputName(*outputs[i].node, outputs[i].index));
  }
  return names;
}

namespace {
// Variables in topological order, split by whether any consumer reads them as an
// auxiliary state.
void ClassifyVariables(const Graph& graph, std::vector<std::string>* arguments, std::vector<std::string>* aux) {
  const IndexedGraph& indexed = graph.indexed();
  std::unordered_set<const Node*> aux_nodes;
  for (size_t id = 0; id < indexed.num_nodes(); ++id) {
    const Node& node = indexed.node(id);
    if (node.is_variable()) continue;
    for (size_t i = 0; i < node.inputs.size(); ++i) {
      if (node.op->IsAuxInput(i, node.attrs)) aux_nodes.insert(node.inputs[i].node.get());
    }
  }
  for (size_t id : indexed.input_node_ids()) {
    const Node& node = indexed.node(id);
    if (aux_nodes.count(&node)) {
      if (aux) aux->push_back(node.name);
    } else if (arguments) {
      arguments->push_back(node.name);
    }
  }
}
}  // namespace

std::vector<std::string> Graph::ListArguments() const {
  std::vector<std::string> names;
  ClassifyVariables(*this, &names, nullptr);
  return names;
}

std::vector<std::string> Graph::ListAuxiliaryStates() const {
  std::vector<std::string> names;
  ClassifyVariables(*this, nullptr, &names);
  return names;
}

std::vector<std::string> Graph::ListInputs() const {
  std::vector<std::string> names;
  for (size_t id : indexed().input_node_ids()) names.push_back(indexed().node(id).name);
  return names;
}

std::map<std::string, Shape> Graph::ParamShapes() const {
  std::map<std::string, Shape> shapes;
  for (const auto& name : ListInputs()) {
    if (const auto it = params.find(name); it != params.end()) shapes[name] = it->second.shape();
  }
  return shapes;
}

}  // namespace kiln
