// Common subexpression elimination and dead code elimination.
#include <map>
#include <set>
#include <tuple>

#include "graph/op.h"
#include "passes/graph_rewrite.h"
#include "passes/optimize.h"

namespace kiln {

void EliminateCommonSubexpressions(Graph& graph, const PassContext& context, PassChanges& changes) {
  if (context.is_train) return;  // random operators draw in training: none is a duplicate
  using Key = std::pair<const OpDef*, std::vector<std::pair<const Node*, uint32_t>>>;
  std::map<Key, std::vector<NodePtr>> seen;
  GraphRewriter rewriter(graph);
  rewriter.Run([&](const NodePtr& node) {
    // Random nodes draw different values; nodes that write an input have effects.
    if (node->op->RandomAtInference(node->attrs) || !node->op->MutatedInputs(node->attrs, context.is_train).empty()) {
      return;
    }
    Key key{node->op, {}};
    for (const auto& input : node->inputs) key.second.emplace_back(input.node.get(), input.index);
    auto& candidates = seen[key];
    for (const NodePtr& other : candidates) {
      if (!(other->attrs == node->attrs)) continue;
      for (uint32_t i = 0; i < node->num_outputs(); ++i) rewriter.Replace({node, i}, {other, i});
      ++changes["merged"];
      return;
    }
    candidates.push_back(node);
  });
}

void EliminateDeadCode(Graph& graph, const PassContext&, PassChanges& changes) {
  std::set<std::string> read;
  for (const NodePtr& node : TopologicalOrder(graph.outputs)) {
    if (node->is_variable()) read.insert(node->name);
  }
  for (auto it = graph.params.begin(); it != graph.params.end();) {
    if (read.count(it->first)) {
      ++it;
    } else {
      it = graph.params.erase(it);
      ++changes["params_removed"];
    }
  }
}

}  // namespace kiln
