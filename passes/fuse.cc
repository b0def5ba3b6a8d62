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

// An injective operator fusion evaluates at any element through its index map.
bool IsFusableInjective(const Node& node, bool is_train) {
  if (node.is_variable() || !node.op->index_map() || node.num_outputs() != 1 || node.inputs.size() != 1) return false;
  return node.op->PatternFor(node.attrs, is_train) == OpPattern::kInjective &&
         node.op->MutatedInputs(node.attrs, is_train).empty();
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
  // Anchors compute float32 into one output.
  const auto IsAnchor = [&](const Node& node) {
    return node.num_outputs() == 1 && dtypes[indexed.entry_id(indexed.node_id(&node), 0)] == DType::kFloat32;
  };
  // Consumers join a group rooted at an elementwise operator (an opaque, GEMM or
  // reduction root stays the group's last member: its lowering knows nothing of them).
  // A view that roots a group stays alone: it costs nothing (it aliases its source),
  // and producers fused into it would lose their own fusion with a GEMM anchor.
  const auto EpilogueOpen = [&](const FusionGroup& group) {
    const Node& root = indexed.node(group.nodes.front());
    return IsFusableElementwise(root, context.is_train) ||
           (IsFusableInjective(root, context.is_train) && !root.op->is_view());
  };
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
      if (one_group) {
        FusionGroup& candidate = groups[static_cast<size_t>(group)];
        bool read_by_anchor = false;
        for (const size_t reader : readers[entry]) read_by_anchor = read_by_anchor || int64_t(reader) == candidate.anchor;
        // While groups grow, their first member is the root (members join in reverse).
        const size_t root_entry = indexed.entry_id(candidate.nodes.front(), 0);
        bool read_in_prologue = false;
        for (const size_t reader : readers[entry]) {
          read_in_prologue = read_in_prologue || std::find(candidate.prologue.begin(), candidate.prologue.end(),
                                                           reader) != candidate.prologue.end();
        }
        // A prologue member: read only by the anchor (as its input 0) and by other
        // prologue members, of the anchor's input shape.
        bool prologue = candidate.anchor >= 0 && IsFusableElementwise(node, context.is_train);
        if (prologue) {
          const Node& anchor = indexed.node(static_cast<size_t>(candidate.anchor));
          prologue = anchor.op->accepts_prologue() && shapes[entry] == shapes[indexed.entry_id(anchor.inputs[0])];
          for (const size_t reader : readers[entry]) {
            const Node& r = indexed.node(reader);
            const bool reads_as_input0 = int64_t(reader) == candidate.anchor && r.inputs[0].node.get() == &node &&
                                         std::count_if(r.inputs.begin(), r.inputs.end(), [&](const NodeEntry& e) {
                                           return e.node.get() == &node;
                                         }) == 1;
            const bool in_prologue = std::find(candidate.prologue.begin(), candidate.prologue.end(), reader) !=
                                     candidate.prologue.end();
            prologue = prologue && (reads_as_input0 || in_prologue);
          }
        }
        if (prologue) {
          target = group;
          candidate.prologue.push_back(id);
        } else if (!read_by_anchor && !read_in_prologue && EpilogueOpen(candidate) &&
                   (IsFusableElementwise(node, context.is_train) ||
                    (IsFusableInjective(node, context.is_train) && candidate.anchor < 0))) {
          target = group;
          candidate.injective = candidate.injective || IsFusableInjective(node, context.is_train);
        } else if (node.op->accepts_epilogue() && candidate.anchor < 0 && !candidate.injective && EpilogueOpen(candidate) &&
                   IsAnchor(node) && shapes[root_entry] == shapes[entry] && dtypes[root_entry] == dtypes[entry]) {
          target = group;
          candidate.anchor = static_cast<int64_t>(id);
        }
      }
    }
    if (target < 0) {
      target = static_cast<int64_t>(groups.size());
      groups.push_back({});
      // An operator that takes fused producers anchors its group from the start.
      if (node.op->accepts_prologue() && IsAnchor(node)) groups.back().anchor = static_cast<int64_t>(id);
      groups.back().injective = IsFusableInjective(node, context.is_train);
    }
    groups[static_cast<size_t>(target)].nodes.push_back(id);
    group_of[id] = target;
  }
  for (auto& group : groups) {
    std::sort(group.nodes.begin(), group.nodes.end());
    std::sort(group.prologue.begin(), group.prologue.end());
    if (group.nodes.size() > 1) {
      ++changes["groups"];
      changes["nodes_fused"] += static_cast<int64_t>(group.nodes.size());
      if (group.anchor >= 0 && group.nodes.back() != static_cast<size_t>(group.anchor)) ++changes["epilogues"];
      if (!group.prologue.empty()) ++changes["prologues"];
      if (group.injective) ++changes["injective"];
    }
  }
  std::sort(groups.begin(), groups.end(),
            [](const FusionGroup& a, const FusionGroup& b) { return a.root() < b.root(); });
  graph.attrs["fusion_groups"] = std::move(groups);
}

}  // namespace kiln
