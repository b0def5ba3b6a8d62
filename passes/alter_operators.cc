// Replaces nodes by the equivalent forms their operators' alter functions choose
// (OpDef::SetAlter), from the inferred shapes and dtypes and the constant inputs.
#include "graph/alter.h"
#include "passes/graph_rewrite.h"
#include "passes/optimize.h"
#include "runtime/error.h"

namespace kiln {

void AlterOperators(Graph& graph, const PassContext& context, PassChanges& changes) {
  EntryInfo info(graph);
  NameAllocator names(graph);
  GraphRewriter rewriter(graph, &info);
  rewriter.Run([&](const NodePtr& node) {
    if (node->is_variable() || !node->op->alter()) return;
    std::vector<Shape> input_shapes, output_shapes;
    std::vector<DType> input_types, output_types;
    std::vector<const Tensor*> constants;
    for (const NodeEntry& input : node->inputs) {
      if (!info.known(input)) return;
      input_shapes.push_back(info.shape(input));
      input_types.push_back(info.dtype(input));
      const auto param = input.node->is_variable() && context.params_are_constants ? graph.params.find(input.node->name)
                                                                                   : graph.params.end();
      constants.push_back(param == graph.params.end() ? nullptr : &param->second);
    }
    for (uint32_t i = 0; i < node->num_outputs(); ++i) {
      if (!info.known({node, i})) return;
      output_shapes.push_back(info.shape({node, i}));
      output_types.push_back(info.dtype({node, i}));
    }
    AlterContext alter(*node, std::move(input_shapes), std::move(input_types), std::move(output_shapes),
                       std::move(output_types), std::move(constants));
    alter.fresh_name = [&](const std::string& base) { return names.Fresh(base); };
    alter.target = context.target;
    try {
      node->op->alter()(alter);
    } catch (const Error& e) {
      throw Error("node '" + node->name + "' (" + node->op->name() + "): " + e.what());
    }
    if (alter.replacements.empty()) return;
    if (alter.replacements.size() != node->num_outputs()) {
      throw Error("node '" + node->name + "' (" + node->op->name() + "): its alter function gave " +
                  std::to_string(alter.replacements.size()) + " replacements for " +
                  std::to_string(node->num_outputs()) + " outputs");
    }
    // A variable's shape may have come from this node's inference alone (a weight with no
    // value: Convolution infers it from num_filter); the replacements may not tell it
    // again, so the variable declares what was inferred.
    for (size_t i = 0; i < node->inputs.size(); ++i) {
      Node& input = *node->inputs[i].node;
      if (!input.is_variable()) continue;
      if (!input.shape) input.shape = alter.input_shapes[i];
      if (!input.dtype) input.dtype = alter.input_types[i];
    }
    for (uint32_t i = 0; i < node->num_outputs(); ++i) rewriter.Replace({node, i}, alter.replacements[i]);
    ++changes["altered " + node->op->name()];
  });
}

}  // namespace kiln
