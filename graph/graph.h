// The graph IR, in the manner of nnvm: a Node is an operator application (or a
// variable), a NodeEntry is one output of a node, and a Graph is a list of output
// entries plus named attributes that passes read and write ("shape", "dtype", ...).
#pragma once

#include <any>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "graph/attrs.h"
#include "graph/op.h"
#include "runtime/tensor.h"

namespace kiln {

struct Node;
using NodePtr = std::shared_ptr<Node>;

struct NodeEntry {
  NodePtr node;
  uint32_t index = 0;
  bool operator==(const NodeEntry& other) const { return node == other.node && index == other.index; }
};

struct Node {
  const OpDef* op = nullptr;  // nullptr: a variable (argument, parameter or auxiliary state)
  std::string name;
  Attrs attrs;
  std::vector<NodeEntry> inputs;
  // Variables only: what the user declared.
  std::optional<Shape> shape;
  std::optional<DType> dtype;
  // Annotations that are not operator attributes, kept as written: MXNet's hidden keys
  // (__init__, __lr_mult__, __wd_mult__, ...), which initializers and optimizers read.
  std::map<std::string, std::string> annotations;
  // Serialized fields this version of kiln does not know, kept so that a load and save
  // by an older kiln loses nothing a newer one wrote.
  std::string unknown_fields;

  bool is_variable() const { return op == nullptr; }
  size_t num_outputs() const { return is_variable() ? 1 : op->NumOutputs(attrs); }
  std::vector<std::string> output_names() const;

  static NodePtr Variable(std::string name, std::optional<Shape> shape = std::nullopt,
                          std::optional<DType> dtype = std::nullopt);
  // Checks the input count against the operator's declaration.
  static NodePtr Create(const OpDef& op, std::string name, Attrs attrs, std::vector<NodeEntry> inputs);
  // A node of the registered operator `op_name`, its attributes given as values or MXNet
  // text (parsed, validated and defaulted; errors name the node).
  static NodePtr Create(const std::string& op_name, std::string name, const AttrMap& attrs,
                        std::vector<NodeEntry> inputs);
};

// Nodes in a fixed topological order with dense ids, and entry ids for per-output data
// (shapes, dtypes, storage). Built once per graph.
class IndexedGraph {
 public:
  explicit IndexedGraph(const std::vector<NodeEntry>& outputs);

  size_t num_nodes() const { return nodes_.size(); }
  size_t num_entries() const { return entry_offset_.back(); }
  const Node& node(size_t id) const { return *nodes_[id]; }
  const NodePtr& node_ptr(size_t id) const { return nodes_[id]; }
  size_t node_id(const Node* node) const { return ids_.at(node); }
  size_t entry_id(size_t node_id, uint32_t index) const { return entry_offset_[node_id] + index; }
  size_t entry_id(const NodeEntry& entry) const { return entry_id(node_id(entry.node.get()), entry.index); }
  const std::vector<size_t>& input_node_ids() const { return input_node_ids_; }
  const std::vector<size_t>& output_entries() const { return output_entries_; }

 private:
  std::vector<NodePtr> nodes_;
  std::unordered_map<const Node*, size_t> ids_;
  std::vector<size_t> entry_offset_;
  std::vector<size_t> input_node_ids_;  // variables, in topological order
  std::vector<size_t> output_entries_;
};

// Deterministic depth-first post-order from the outputs (inputs before users), without
// recursion so that very deep graphs cannot overflow the stack.
std::vector<NodePtr> TopologicalOrder(const std::vector<NodeEntry>& outputs);

class Graph {
 public:
  std::vector<NodeEntry> outputs;
  // Names of the outputs; empty means the MXNet default ("fc1_output").
  std::vector<std::string> output_names;
  // Parameters embedded with the graph, by variable name.
  std::map<std::string, Tensor> params;
  // Results of passes, by name ("shape": std::vector<ShapeSlot> by entry id, ...).
  std::map<std::string, std::any> attrs;
  std::string unknown_fields;

  const IndexedGraph& indexed() const;
  // The output names, defaulted where unnamed.
  std::vector<std::string> OutputNames() const;
  // Argument variables (not auxiliary states), auxiliary states, in topological order.
  std::vector<std::string> ListArguments() const;
  std::vector<std::string> ListAuxiliaryStates() const;
  std::vector<std::string> ListInputs() const;  // both
  // Shapes of the inputs that have embedded parameters: what shape inference starts from.
  std::map<std::string, Shape> ParamShapes() const;

  template <typename T>
  const T& GetAttr(const std::string& name) const {
    const auto it = attrs.find(name);
    if (it == attrs.end()) throw std::out_of_range("graph attribute '" + name + "' is not set");
    return std::any_cast<const T&>(it->second);
  }
  bool HasAttr(const std::string& name) const { return attrs.count(name) != 0; }
  // Passes that rewire nodes in place call this: the index is rebuilt on next use.
  void InvalidateIndex() { indexed_.reset(); }

 private:
  mutable std::shared_ptr<const IndexedGraph> indexed_;
  mutable std::vector<NodeEntry> indexed_outputs_;
};

// The MXNet name of output `index` of `node`: "fc1_output", "split0_output1", "bn_mean".
std::string DefaultOutputName(const Node& node, uint32_t index);

}  // namespace kiln
