// Constant folding through the operators' reference implementations.
#include <algorithm>

#include "graph/op.h"
#include "passes/graph_rewrite.h"
#include "passes/optimize.h"
#include "runtime/error.h"

namespace kiln {
namespace {

// A folded value may be larger than what it is computed from (broadcast_to, zeros), but
// not by much: the artifact carries it.
constexpr size_t kMinFoldBytes = size_t{64} << 10;

}  // namespace

void FoldConstants(Graph& graph, const PassContext& context, PassChanges& changes) {
  // Training graphs (Dropout draws there) are not folded.
  if (!context.params_are_constants || context.is_train) return;
  EntryInfo info(graph);
  GraphRewriter rewriter(graph, &info);
  rewriter.Run([&](const NodePtr& node) {
    const OpDef& op = *node->op;
    if (!op.has_reference() || op.RandomAtInference(node->attrs) ||
        !op.MutatedInputs(node->attrs, context.is_train).empty()) {
      return;
    }
    std::vector<Tensor> inputs;
    size_t input_bytes = 0;
    for (size_t i = 0; i < node->inputs.size(); ++i) {
      const NodeEntry& input = node->inputs[i];
      if (!input.node->is_variable() || op.IsLabelInput(i)) return;
      const auto it = graph.params.find(input.node->name);
      if (it == graph.params.end()) return;
      inputs.push_back(it->second);
      input_bytes += it->second.nbytes();
    }
    std::vector<Tensor> outputs;
    size_t output_bytes = 0;
    for (uint32_t i = 0; i < node->num_outputs(); ++i) {
      outputs.emplace_back(info.shape({node, i}), info.dtype({node, i}));
      output_bytes += outputs.back().nbytes();
    }
    if (output_bytes > std::max(kMinFoldBytes, 2 * input_bytes)) return;
    RefContext ref;
    ref.is_train = context.is_train;
    try {
      op.RunReference(node->attrs, inputs, outputs, ref);
    } catch (const Error& e) {
      throw Error("node '" + node->name + "' (" + op.name() + "): constant folding: " + e.what());
    }
    const auto names = node->output_names();
    for (uint32_t i = 0; i < node->num_outputs(); ++i) {
      const std::string base = node->num_outputs() == 1 ? node->name : node->name + "_" + names[i];
      rewriter.Replace({node, i}, AddConstant(graph, base, std::move(outputs[i])));
    }
    ++changes["folded"];
  });
}

}  // namespace kiln
