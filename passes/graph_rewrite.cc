#include "passes/graph_rewrite.h"

#include <algorithm>
#include <set>

#include "runtime/error.h"

namespace kiln {

Graph CloneGraph(const Graph& graph) {
  Graph copy;
  copy.output_names = graph.OutputNames();
  copy.params = graph.params;
  copy.unknown_fields = graph.unknown_fields;
  std::unordered_map<const Node*, NodePtr> clones;
  for (const NodePtr& node : TopologicalOrder(graph.outputs)) {
    auto clone = std::make_shared<Node>(*node);
    for (auto& input : clone->inputs) input.node = clones.at(input.node.get());
    clones[node.get()] = std::move(clone);
  }
  for (const auto& output : graph.outputs) copy.outputs.push_back({clones.at(output.node.get()), output.index});
  return copy;
}

EntryInfo::EntryInfo(const Graph& graph) {
  const IndexedGraph& indexed = graph.indexed();
  const auto& shapes = graph.GetAttr<std::vector<ShapeSlot>>("shape");
  const auto& dtypes = graph.GetAttr<std::vector<DTypeSlot>>("dtype");
  for (size_t id = 0; id < indexed.num_nodes(); ++id) {
    const Node& node = indexed.node(id);
    auto& node_shapes = shapes_[&node];
    auto& node_dtypes = dtypes_[&node];
    for (uint32_t i = 0; i < node.num_outputs(); ++i) {
      const size_t entry = indexed.entry_id(id, i);
      if (!shapes[entry] || !dtypes[entry]) {
        throw Error("node '" + node.name + "': output " + std::to_string(i) + " has no inferred shape or dtype");
      }
      node_shapes.push_back(*shapes[entry]);
      node_dtypes.push_back(*dtypes[entry]);
    }
  }
}

bool EntryInfo::known(const NodeEntry& entry) const {
  const auto it = shapes_.find(entry.node.get());
  return it != shapes_.end() && entry.index < it->second.size();
}

void EntryInfo::Inherit(const NodeEntry& to, const NodeEntry& from) {
  if (known(to) || !known(from)) return;
  auto& shapes = shapes_[to.node.get()];
  auto& dtypes = dtypes_[to.node.get()];
  shapes.resize(std::max<size_t>(shapes.size(), to.index + 1));
  dtypes.resize(std::max<size_t>(dtypes.size(), to.index + 1), DType::kFloat32);
  shapes[to.index] = shape(from);
  dtypes[to.index] = dtype(from);
}

const Shape& EntryInfo::shape(const NodeEntry& entry) const {
  return shapes_.at(entry.node.get()).at(entry.index);
}

DType EntryInfo::dtype(const NodeEntry& entry) const {
  return dtypes_.at(entry.node.get()).at(entry.index);
}

std::map<std::pair<const Node*, uint32_t>, int64_t> CountUses(const Graph& graph) {
  std::map<std::pair<const Node*, uint32_t>, int64_t> uses;
  for (const NodePtr& node : TopologicalOrder(graph.outputs)) {
    for (const auto& input : node->inputs) ++uses[{input.node.get(), input.index}];
  }
  for (const auto& output : graph.outputs) ++uses[{output.node.get(), output.index}];
  return uses;
}

void GraphRewriter::Run(const std::function<void(const NodePtr& node)>& visit) {
  uses_ = CountUses(graph_);
  for (const NodePtr& node : TopologicalOrder(graph_.outputs)) {
    for (auto& input : node->inputs) input = Resolve(input);
    if (!node->is_variable()) visit(node);
  }
  for (auto& output : graph_.outputs) output = Resolve(output);
  graph_.InvalidateIndex();
}

void GraphRewriter::Replace(const NodeEntry& from, const NodeEntry& to) {
  const NodeEntry target = Resolve(to);
  if (info_) info_->Inherit(target, from);
  replaced_[{from.node.get(), from.index}] = target;
}

NodeEntry GraphRewriter::Resolve(const NodeEntry& entry) const {
  NodeEntry current = entry;
  for (auto it = replaced_.find({current.node.get(), current.index}); it != replaced_.end();
       it = replaced_.find({current.node.get(), current.index})) {
    current = it->second;
  }
  return current;
}

int64_t GraphRewriter::Uses(const NodeEntry& entry) const {
  const auto it = uses_.find({entry.node.get(), entry.index});
  return it == uses_.end() ? 0 : it->second;
}

namespace {

std::set<std::string> UsedNames(const Graph& graph) {
  std::set<std::string> names;
  for (const NodePtr& node : TopologicalOrder(graph.outputs)) names.insert(node->name);
  for (const auto& [name, value] : graph.params) names.insert(name);
  return names;
}

std::string Fresh(const std::set<std::string>& used, const std::string& base) {
  if (!used.count(base)) return base;
  for (int suffix = 1;; ++suffix) {
    std::string name = base + "_" + std::to_string(suffix);
    if (!used.count(name)) return name;
  }
}

}  // namespace

NodeEntry AddConstant(Graph& graph, const std::string& base, Tensor value) {
  const std::string name = Fresh(UsedNames(graph), base);
  NodePtr variable = Node::Variable(name, value.shape(), value.dtype());
  graph.params.emplace(name, std::move(value));
  return {variable, 0};
}

std::string FreshNodeName(const Graph& graph, const std::string& base) {
  return Fresh(UsedNames(graph), base);
}

NameAllocator::NameAllocator(const Graph& graph) : used_(UsedNames(graph)) {}

std::string NameAllocator::Fresh(const std::string& base) {
  std::string name = kiln::Fresh(used_, base);
  used_.insert(name);
  return name;
}

int64_t CountOperatorNodes(const Graph& graph) {
  int64_t count = 0;
  for (const NodePtr& node : TopologicalOrder(graph.outputs)) count += node->is_variable() ? 0 : 1;
  return count;
}

}  // namespace kiln
