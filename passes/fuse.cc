// The fusion pass: groups elementwise and broadcast operators with the operators that
// read them, and with a GEMM-like producer whose epilogue they become.
#include <algorithm>
#include <map>

#include "graph/op.h"
#include "passes/fusion.h"
#include "passes/optimize.h"

namespace kiln {
namespace {

// An operator whose value at an element is its scalar function of its inputs there.
bool IsFusableElementwise(const Node& node, bool is_train) {
  if (node.is_variable() || node.op->is_view() || !node.op->scalar_compute() || node.num_outputs() != 1) return false;
  const OpPattern pattern = node.op->PatternFor(node.attrs, is_train);
  if (pattern != OpPattern::kElementwise && pattern != OpPattern::kBroadcast) return false;
  return !node.op->RandomAtInference(node.attrs) && node.op->MutatedInputs(node.attrs, is_train).empty();
}

}  // namespace

FusionGroups SingletonGroups(const IndexedGraph& indexed) {
  FusionGroups groups;
  for (size_t id = 0; id < indexed.num_nodes(); ++id) {
    if (!indexed.node(id).is_variable()) groups.push_back({{id}, -1});
  }
  return groups;
}

void FuseOperators(Graph& graph, const PassContext& context, PassChanges& changes) {
  const IndexedGraph& indexed = graph.indexed();
  const auto& shapes = graph.GetAttr<std::vector<ShapeSlot>>("shape");
  const auto& dtypes = graph.GetAttr<std::vector<DTypeSlot>>("dtype");
  // Readers of every entry, and which entries the graph returns.
  std::vector<std::vector<size_t>> readers(indexed.num_entries());
  for (size_t id = 0; id < indexed.num_nodes(); ++id) {
    for (const auto& input : indexed.node(id).inputs) readers[indexed.entry_id(input)].push_back(id);
  }
  std::vector<bool> is_output(indexed.num_entries(), false);
  for (const size_t entry : indexed.output_entries()) is_output[entry] = true;

  FusionGroups groups;
  std::vector<int64_t> group_of(indexed.num_nodes(), -1);
  // Consumers first: a node joins the group of its readers when they all belong to one.
  for (size_t id = indexed.num_nodes(); id-- > 0;) {
    const Node& node = indexed.node(id);
    if (node.is_variable()) continue;
    int64_t target = -1;
    const size_t entry = indexed.entry_id(id, 0);
    if (node.num_outputs() == 1 && !is_output[entry] && !readers[entry].empty()) {
      const int64_t group = group_of[readers[entry].front()];
      bool one_group = group >= 0;
      for (const size_t reader : readers[entry]) one_group = one_group && group_of[reader] == group;
      // Only groups rooted at an elementwise operator take members (an opaque or GEMM
      // root stays alone: its lowering knows nothing of producers).
      if (one_group && IsFusableElementwise(indexed.node(groups[static_cast<size_t>(group)].nodes.front()),
                                            context.is_train)) {
        FusionGroup& candidate = groups[static_cast<size_t>(group)];
        bool read_by_anchor = false;
        for (const size_t reader : readers[entry]) read_by_anchor = read_by_anchor || int64_t(reader) == candidate.anchor;
        const size_t root_entry = indexed.entry_id(candidate.root(), 0);
        if (IsFusableElementwise(node, context.is_train) && !read_by_anchor) {
          target = group;
        } else if (node.op->accepts_epilogue() && candidate.anchor < 0 && dtypes[entry] == DType::kFloat32 &&
                   shapes[root_entry] == shapes[entry] && dtypes[root_entry] == dtypes[entry]) {
          target = group;
          candidate.anchor = static_cast<int64_t>(id);
        }
      }
    }
    if (target < 0) {
      target = static_cast<int64_t>(groups.size());
      groups.push_back({});
    }
    groups[static_cast<size_t>(target)].nodes.push_back(id);
    group_of[id] = target;
  }
  for (auto& group : groups) {
    std::sort(group.nodes.begin(), group.nodes.end());
    if (group.nodes.size() > 1) {
      ++changes["groups"];
      changes["nodes_fused"] += static_cast<int64_t>(group.nodes.size());
      if (group.anchor >= 0) ++changes["epilogues"];
    }
  }
  std::sort(groups.begin(), groups.end(),
            [](const FusionGroup& a, const FusionGroup& b) { return a.root() < b.root(); });
  graph.attrs["fusion_groups"] = std::move(groups);
}

}  // namespace kiln
