// Simplification passes that remove or merge nodes without computing anything:
// identities, views of views, transposes of transposes, transposes into GEMM flags.
#include "graph/op.h"
#include "passes/graph_rewrite.h"
#include "passes/optimize.h"
#include "runtime/error.h"

namespace kiln {
namespace {

bool IsIdentityPermutation(const std::vector<int64_t>& perm) {
  for (size_t d = 0; d < perm.size(); ++d) {
    if (perm[d] != static_cast<int64_t>(d)) return false;
  }
  return true;
}

}  // namespace

void ScalarizeConstantOperands(Graph& graph, const PassContext& context, PassChanges& changes) {
  if (!context.params_are_constants) return;
  EntryInfo info(graph);
  GraphRewriter rewriter(graph, &info);
  rewriter.Run([&](const NodePtr& node) {
    const std::string& form = node->op->scalar_form();
    if (form.empty() || node->inputs.size() != 2 || node->num_outputs() != 1) return;
    const NodeEntry& tensor = node->inputs[0];
    const NodeEntry& operand = node->inputs[1];
    if (!operand.node->is_variable()) return;
    const auto it = graph.params.find(operand.node->name);
    if (it == graph.params.end() || it->second.size() != 1 || it->second.dtype() != info.dtype(tensor)) return;
    // The tensor operand must already have the output's shape and dtype.
    if (info.shape(tensor) != info.shape({node, 0}) || info.dtype(tensor) != info.dtype({node, 0})) return;
    const double value = it->second.GetDouble(0);
    const OpDef& scalar_op = OpRegistry::Global().Get(form);
    Attrs attrs = scalar_op.ParseAttrs(
        {{"scalar", AttrValue{value}}, {"is_int", AttrValue{!IsFloat(info.dtype(tensor))}}}, node->name);
    rewriter.Replace({node, 0}, {Node::Create(scalar_op, node->name, std::move(attrs), {tensor}), 0});
    ++changes["scalarized"];
  });
}

void RemoveIdentities(Graph& graph, const PassContext& context, PassChanges& changes) {
  EntryInfo info(graph);
  GraphRewriter rewriter(graph, &info);
  rewriter.Run([&](const NodePtr& node) {
    if (node->inputs.empty() || node->num_outputs() != 1) return;
    const NodeEntry in = node->inputs[0];
    const NodeEntry out{node, 0};
    if (info.shape(in) != info.shape(out) || info.dtype(in) != info.dtype(out)) return;
    std::vector<Shape> input_shapes;
    for (const auto& input : node->inputs) input_shapes.push_back(info.shape(input));
    if (!node->op->is_view() && !node->op->IsIdentity(node->attrs, input_shapes, info.dtype(in), context.is_train)) {
      return;
    }
    rewriter.Replace(out, in);
    ++changes["removed"];
  });
}

void MergeViews(Graph& graph, const PassContext&, PassChanges& changes) {
  EntryInfo info(graph);
  const OpDef& reshape = OpRegistry::Global().Get("Reshape");
  GraphRewriter rewriter(graph, &info);
  rewriter.Run([&](const NodePtr& node) {
    if (!node->op->is_view()) return;
    const NodePtr& inner = node->inputs[0].node;
    if (inner->is_variable() || !inner->op->is_view()) return;
    const Shape& shape = info.shape({node, 0});
    // Reshape's 0 copies an input dimension: a shape with zeros is not expressible.
    for (const int64_t d : shape) {
      if (d == 0) return;
    }
    Attrs attrs = reshape.ParseAttrs({{"shape", AttrValue{shape}}}, node->name);
    NodePtr merged = Node::Create(reshape, node->name, std::move(attrs), {inner->inputs[0]});
    rewriter.Replace({node, 0}, {merged, 0});
    ++changes["merged"];
  });
}

void MergeTransposes(Graph& graph, const PassContext&, PassChanges& changes) {
  EntryInfo info(graph);
  GraphRewriter rewriter(graph, &info);
  rewriter.Run([&](const NodePtr& node) {
    const NodePtr& inner = node->inputs.empty() ? nullptr : node->inputs[0].node;
    if (!inner || inner->is_variable() || inner->inputs.empty()) return;
    const size_t ndim = info.shape({node, 0}).size();
    const auto outer_perm = node->op->Permutation(node->attrs, ndim);
    if (!outer_perm || info.shape(inner->inputs[0]).size() != ndim) return;
    const auto inner_perm = inner->op->Permutation(inner->attrs, ndim);
    if (!inner_perm) return;
    // Output axis i is the inner output's axis outer[i], which is input axis inner[outer[i]].
    std::vector<int64_t> combined(ndim);
    for (size_t d = 0; d < ndim; ++d) combined[d] = (*inner_perm)[static_cast<size_t>((*outer_perm)[d])];
    if (IsIdentityPermutation(combined)) {
      rewriter.Replace({node, 0}, inner->inputs[0]);
    } else {
      Attrs attrs = node->op->ParseAttrs({{node->op->permutation_attr(), AttrValue{combined}}}, node->name);
      rewriter.Replace({node, 0}, {Node::Create(*node->op, node->name, std::move(attrs), {inner->inputs[0]}), 0});
    }
    ++changes["merged"];
  });
}

void FoldTransposeIntoGemm(Graph& graph, const PassContext&, PassChanges& changes) {
  EntryInfo info(graph);
  GraphRewriter rewriter(graph, &info);
  rewriter.Run([&](const NodePtr& node) {
    const auto& flags = node->op->transpose_flags();
    if (flags.empty()) return;
    for (const auto& input : node->inputs) {
      if (info.shape(input).size() != 2) return;
    }
    std::vector<NodeEntry> inputs = node->inputs;
    Attrs attrs = node->attrs;
    bool folded = false;
    for (const auto& [index, flag] : flags) {
      const NodePtr& producer = inputs.at(static_cast<size_t>(index)).node;
      if (producer->is_variable()) continue;
      if (producer->inputs.empty() || info.shape(producer->inputs[0]).size() != 2) continue;
      const auto perm = producer->op->Permutation(producer->attrs, 2);
      if (!perm || IsIdentityPermutation(*perm)) continue;
      inputs[static_cast<size_t>(index)] = producer->inputs[0];
      attrs.Set(flag, !attrs.Bool(flag), true);
      folded = true;
      ++changes["folded"];
    }
    if (!folded) return;
    rewriter.Replace({node, 0}, {Node::Create(*node->op, node->name, std::move(attrs), std::move(inputs)), 0});
  });
}

}  // namespace kiln
