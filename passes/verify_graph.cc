#include "passes/verify_graph.h"

#include <map>
#include <unordered_map>

#include "passes/infer_shape.h"
#include "runtime/error.h"

namespace kiln {
namespace {

[[noreturn]] void Fail(const std::string& pass, const std::string& message) {
  throw Error("after pass '" + pass + "': " + message);
}

std::string Describe(const Node& node) {
  return node.is_variable() ? "variable '" + node.name + "'" : "node '" + node.name + "' (" + node.op->name() + ")";
}

// Depth-first search with colors over every node reachable from the outputs, without
// recursion: a grey node met again closes a cycle.
void CheckAcyclic(const Graph& graph, const std::string& pass) {
  enum Color { kGrey, kBlack };
  std::unordered_map<const Node*, Color> color;
  for (const auto& output : graph.outputs) {
    if (!output.node) Fail(pass, "a graph output is empty");
    if (color.count(output.node.get())) continue;
    std::vector<std::pair<const Node*, size_t>> stack{{output.node.get(), 0}};
    color[output.node.get()] = kGrey;
    while (!stack.empty()) {
      auto& [node, next] = stack.back();
      if (next == node->inputs.size()) {
        color[node] = kBlack;
        stack.pop_back();
        continue;
      }
      const Node* input = node->inputs[next++].node.get();
      if (!input) Fail(pass, Describe(*node) + ": input " + std::to_string(next - 1) + " is empty");
      const auto it = color.find(input);
      if (it == color.end()) {
        color[input] = kGrey;
        stack.emplace_back(input, 0);
      } else if (it->second == kGrey) {
        Fail(pass, Describe(*node) + ": its input '" + input->name + "' depends on it (a cycle)");
      }
    }
  }
}

}  // namespace

void VerifyGraph(const Graph& graph, const std::string& pass) {
  CheckAcyclic(graph, pass);
  std::map<std::string, const Node*> variables;
  for (const NodePtr& node : TopologicalOrder(graph.outputs)) {
    if (node->is_variable()) {
      const auto [it, inserted] = variables.emplace(node->name, node.get());
      if (!inserted) Fail(pass, "two variables are named '" + node->name + "'");
      continue;
    }
    const size_t expected = node->op->NumInputs(node->attrs);
    if (node->inputs.size() != expected) {
      Fail(pass, Describe(*node) + ": expected " + std::to_string(expected) + " inputs, has " +
                     std::to_string(node->inputs.size()));
    }
    for (size_t i = 0; i < node->inputs.size(); ++i) {
      const NodeEntry& input = node->inputs[i];
      if (input.index >= input.node->num_outputs()) {
        Fail(pass, Describe(*node) + ": input " + std::to_string(i) + " reads output " + std::to_string(input.index) +
                       " of " + Describe(*input.node) + ", which has " +
                       std::to_string(input.node->num_outputs()));
      }
    }
  }
  // Values nothing reads are the dead-code pass's to drop; a value that is read must
  // be what its variable declares.
  for (const auto& [name, value] : graph.params) {
    const auto it = variables.find(name);
    if (it == variables.end()) continue;
    const Node& variable = *it->second;
    if (variable.dtype && *variable.dtype != value.dtype()) {
      Fail(pass, "parameter '" + name + "': the variable declares dtype " + std::string(DTypeName(*variable.dtype)) +
                     ", its value is " + std::string(DTypeName(value.dtype())));
    }
    if (variable.shape && *variable.shape != value.shape()) {
      Fail(pass, "parameter '" + name + "': the variable declares shape " + ShapeToString(*variable.shape) +
                     ", its value has shape " + ShapeToString(value.shape()));
    }
  }
  if (!graph.HasAttr("shape") || !graph.HasAttr("dtype")) return;
  // The stored inference must be what the registry infers now.
  const IndexedGraph& indexed = graph.indexed();
  const auto& shapes = graph.GetAttr<std::vector<ShapeSlot>>("shape");
  const auto& dtypes = graph.GetAttr<std::vector<DTypeSlot>>("dtype");
  if (shapes.size() != indexed.num_entries() || dtypes.size() != indexed.num_entries()) {
    Fail(pass, "the shape and dtype attributes describe " + std::to_string(shapes.size()) + " entries, the graph has " +
                   std::to_string(indexed.num_entries()));
  }
  Graph copy = graph;
  copy.InvalidateIndex();
  std::map<std::string, Shape> known_shapes;
  std::map<std::string, DType> known_types;
  for (size_t id : indexed.input_node_ids()) {
    const size_t entry = indexed.entry_id(id, 0);
    if (shapes[entry]) known_shapes[indexed.node(id).name] = *shapes[entry];
    if (dtypes[entry]) known_types[indexed.node(id).name] = *dtypes[entry];
  }
  try {
    InferShape(copy, known_shapes);
    InferType(copy, known_types);
  } catch (const Error& e) {
    Fail(pass, e.what());
  }
  const auto& inferred_shapes = copy.GetAttr<std::vector<ShapeSlot>>("shape");
  const auto& inferred_types = copy.GetAttr<std::vector<DTypeSlot>>("dtype");
  for (size_t id = 0; id < indexed.num_nodes(); ++id) {
    const Node& node = indexed.node(id);
    for (uint32_t i = 0; i < node.num_outputs(); ++i) {
      const size_t entry = indexed.entry_id(id, i);
      if (!shapes[entry] || !dtypes[entry]) {
        Fail(pass, Describe(node) + ": output " + std::to_string(i) + " has no shape or dtype");
      }
      if (inferred_shapes[entry] != shapes[entry] || inferred_types[entry] != dtypes[entry]) {
        Fail(pass, Describe(node) + ": output " + std::to_string(i) + " is recorded as " +
                       ShapeToString(*shapes[entry]) + " " + std::string(DTypeName(*dtypes[entry])) +
                       " but the registry infers " +
                       (inferred_shapes[entry] ? ShapeToString(*inferred_shapes[entry]) : std::string("unknown")) +
                       " " + (inferred_types[entry] ? std::string(DTypeName(*inferred_types[entry])) : "unknown"));
      }
    }
  }
}

}  // namespace kiln
