// Tools the optimization passes share: a private deep copy of a graph to rewrite in
// place, a walk that replaces entries as it goes, per-entry shape and dtype lookups, and
// the creation of constant (parameter) variables.
#pragma once

#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "graph/graph.h"

namespace kiln {

// A copy of `graph` with its own nodes (passes mutate them), its output names spelled
// out (so that replacing an output keeps its name), and no pass attributes.
Graph CloneGraph(const Graph& graph);

// Shapes and dtypes of the entries as inferred before a pass, by node, so that they stay
// valid while the pass rewires inputs (nodes keep their identity).
class EntryInfo {
 public:
  explicit EntryInfo(const Graph& graph);
  const Shape& shape(const NodeEntry& entry) const;
  DType dtype(const NodeEntry& entry) const;
  bool known(const NodeEntry& entry) const;
  // A new entry that replaces `from` has its shape and dtype.
  void Inherit(const NodeEntry& to, const NodeEntry& from);

 private:
  std::unordered_map<const Node*, std::vector<Shape>> shapes_;
  std::unordered_map<const Node*, std::vector<DType>> dtypes_;
};

// Walks the nodes inputs-first. Before `visit` sees a node, its inputs are rewired
// through the replacements made so far; `visit` may then Replace the node's outputs by
// other entries (new nodes, or earlier ones). The graph's outputs are rewired at the end.
class GraphRewriter {
 public:
  // With `info`, entries that replace others inherit their shapes and dtypes.
  explicit GraphRewriter(Graph& graph, EntryInfo* info = nullptr) : graph_(graph), info_(info) {}
  void Run(const std::function<void(const NodePtr& node)>& visit);
  void Replace(const NodeEntry& from, const NodeEntry& to);
  NodeEntry Resolve(const NodeEntry& entry) const;
  // Readers of each entry in the graph as it was when Run started (node and input index).
  int64_t Uses(const NodeEntry& entry) const;

 private:
  Graph& graph_;
  EntryInfo* info_;
  std::map<std::pair<const Node*, uint32_t>, NodeEntry> replaced_;
  std::map<std::pair<const Node*, uint32_t>, int64_t> uses_;
};

// Counts the readers of every entry (graph outputs count as readers).
std::map<std::pair<const Node*, uint32_t>, int64_t> CountUses(const Graph& graph);

// A parameter variable holding `value`, named `base` or `base_1`, ... (unused by the
// graph's variables and parameters).
NodeEntry AddConstant(Graph& graph, const std::string& base, Tensor value);

// A name for a new node based on `base` that no node of the graph uses.
std::string FreshNodeName(const Graph& graph, const std::string& base);

// Names for many new nodes: unused by the graph as it was when constructed and by every
// name given out since (`base`, else `base_1`, `base_2`, ...).
class NameAllocator {
 public:
  explicit NameAllocator(const Graph& graph);
  std::string Fresh(const std::string& base);

 private:
  std::set<std::string> used_;
};

// The graph's nodes, counted (operators only).
int64_t CountOperatorNodes(const Graph& graph);

}  // namespace kiln
