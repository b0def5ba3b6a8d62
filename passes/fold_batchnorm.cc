// Folds per-channel affine operators (BatchNorm at inference) with constant parameters
// into the GEMM-like producer they alone read, or else into a broadcast multiply-add.
#include <cmath>

#include "graph/op.h"
#include "graph/op_util.h"
#include "passes/graph_rewrite.h"
#include "passes/optimize.h"
#include "runtime/error.h"

namespace kiln {
namespace {

const Tensor* ConstantValue(const Graph& graph, const NodeEntry& entry) {
  if (!entry.node->is_variable()) return nullptr;
  const auto it = graph.params.find(entry.node->name);
  return it == graph.params.end() ? nullptr : &it->second;
}

// Normalizes a possibly negative axis of a rank-`ndim` shape.
int64_t Axis(int64_t axis, size_t ndim) {
  return axis < 0 ? axis + static_cast<int64_t>(ndim) : axis;
}

// Rewrites `producer` (GEMM-like, declaring ChannelScaling) so that it computes
// affine(its output); nullptr where its weights or bias are not constants or do not
// match the affine form's channels.
NodePtr ScaleProducer(Graph& graph, const EntryInfo& info, const NodePtr& producer, const ChannelAffine& affine) {
  const ChannelScaling& scaling = *producer->op->channel_scaling();
  const Shape& out_shape = info.shape({producer, 0});
  if (Axis(scaling.output_axis, out_shape.size()) != affine.axis) return nullptr;
  const auto weight_input = static_cast<size_t>(scaling.weight_input);
  const Tensor* weight = ConstantValue(graph, producer->inputs.at(weight_input));
  if (!weight || !IsFloat(weight->dtype())) return nullptr;
  const Shape& ws = weight->shape();
  const int64_t weight_axis = Axis(scaling.weight_axis, ws.size());
  if (weight_axis < 0 || weight_axis >= static_cast<int64_t>(ws.size())) return nullptr;
  const auto channels = static_cast<int64_t>(affine.scale.size());
  if (ws[weight_axis] != channels) return nullptr;
  const auto bias_input = static_cast<size_t>(scaling.bias_input);
  const bool has_bias = producer->inputs.size() > bias_input;
  const Tensor* bias = has_bias ? ConstantValue(graph, producer->inputs[bias_input]) : nullptr;
  if (has_bias && (!bias || bias->size() != channels)) return nullptr;

  // In float64, then cast to the weight's dtype.
  int64_t outer = 1, inner = 1;
  for (int64_t d = 0; d < weight_axis; ++d) outer *= ws[d];
  for (int64_t d = weight_axis + 1; d < static_cast<int64_t>(ws.size()); ++d) inner *= ws[d];
  std::vector<double> w = weight->ToDoubles();
  for (int64_t o = 0; o < outer; ++o) {
    for (int64_t c = 0; c < channels; ++c) {
      for (int64_t i = 0; i < inner; ++i) w[(o * channels + c) * inner + i] *= affine.scale[c];
    }
  }
  std::vector<double> b(static_cast<size_t>(channels));
  for (int64_t c = 0; c < channels; ++c) {
    b[c] = (bias ? bias->GetDouble(c) * affine.scale[c] : 0.0) + affine.shift[c];
  }
  std::vector<NodeEntry> inputs = producer->inputs;
  inputs[weight_input] = AddConstant(graph, producer->name + "_folded_weight", Tensor::FromDoubles(ws, w, weight->dtype()));
  inputs.resize(std::max(inputs.size(), bias_input + 1));
  inputs[bias_input] = AddConstant(graph, producer->name + "_folded_bias", Tensor::FromDoubles({channels}, b, weight->dtype()));
  Attrs attrs = producer->attrs;
  if (!has_bias) attrs.Set(scaling.no_bias_attr, false, true);
  return Node::Create(*producer->op, producer->name, std::move(attrs), std::move(inputs));
}

// x * scale + shift with scale and shift shaped to broadcast along the channel axis.
NodeEntry ScaleAndShift(Graph& graph, const Node& node, const NodeEntry& data, const Shape& data_shape, DType dtype,
                        const ChannelAffine& affine) {
  Shape channel_shape(data_shape.size(), 1);
  channel_shape[static_cast<size_t>(affine.axis)] = static_cast<int64_t>(affine.scale.size());
  const NodeEntry scale = AddConstant(graph, node.name + "_scale", Tensor::FromDoubles(channel_shape, affine.scale, dtype));
  const NodeEntry shift = AddConstant(graph, node.name + "_shift", Tensor::FromDoubles(channel_shape, affine.shift, dtype));
  const OpDef& mul = OpRegistry::Global().Get("broadcast_mul");
  const OpDef& add = OpRegistry::Global().Get("broadcast_add");
  const std::string name = FreshNodeName(graph, node.name + "_mul");
  NodePtr scaled = Node::Create(mul, name, mul.ParseAttrs({}, name), {data, scale});
  NodePtr shifted = Node::Create(add, node.name, add.ParseAttrs({}, node.name), {{scaled, 0}, shift});
  return {shifted, 0};
}

}  // namespace

void FoldBatchNorm(Graph& graph, const PassContext& context, PassChanges& changes) {
  if (!context.params_are_constants) return;
  EntryInfo info(graph);
  GraphRewriter rewriter(graph, &info);
  rewriter.Run([&](const NodePtr& node) {
    if (node->inputs.empty() || node->num_outputs() != 1) return;
    const NodeEntry data = node->inputs[0];
    const DType dtype = info.dtype({node, 0});
    if (!IsFloat(dtype) || info.dtype(data) != dtype) return;
    std::vector<const Tensor*> params;
    for (size_t i = 1; i < node->inputs.size(); ++i) params.push_back(ConstantValue(graph, node->inputs[i]));
    const Shape& data_shape = info.shape(data);
    std::optional<ChannelAffine> affine;
    try {
      affine = node->op->InferenceAffine(node->attrs, params, data_shape, context.is_train);
    } catch (const Error& e) {
      throw Error("node '" + node->name + "' (" + node->op->name() + "): " + e.what());
    }
    if (!affine) return;
    for (const double v : affine->scale) {
      if (!std::isfinite(v)) return;  // leave a degenerate normalization to the operator
    }
    const NodePtr& producer = data.node;
    if (!producer->is_variable() && producer->op->channel_scaling() && producer->num_outputs() == 1 &&
        rewriter.Uses(data) == 1 && info.dtype({producer, 0}) == dtype) {
      if (NodePtr folded = ScaleProducer(graph, info, producer, *affine)) {
        rewriter.Replace({node, 0}, {folded, 0});
        ++changes["folded_into_producer"];
        return;
      }
    }
    rewriter.Replace({node, 0}, ScaleAndShift(graph, *node, data, data_shape, dtype, *affine));
    ++changes["scale_and_shift"];
  });
}

}  // namespace kiln
