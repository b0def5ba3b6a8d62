#include "passes/interpreter.h"

#include "passes/infer_shape.h"
#include "runtime/error.h"

namespace kiln {

uint64_t NodeSeed(uint64_t seed, const std::string& node_name) {
  uint64_t hash = 1469598103934665603ull ^ seed;
  for (const unsigned char c : node_name) {
    hash ^= c;
    hash *= 1099511628211ull;
  }
  return hash;
}

namespace {

// The shape and dtype an input should have, inferred from the other inputs given.
std::pair<ShapeSlot, DTypeSlot> ExpectedInput(const Graph& graph, const std::map<std::string, Tensor>& inputs,
                                              const NodePtr& variable) {
  std::pair<ShapeSlot, DTypeSlot> expected;
  try {
    Graph probe = graph;
    std::map<std::string, Shape> shapes;
    std::map<std::string, DType> types;
    for (const auto& [name, tensor] : inputs) {
      shapes[name] = tensor.shape();
      types[name] = tensor.dtype();
    }
    for (const auto& [name, tensor] : graph.params) {
      shapes.try_emplace(name, tensor.shape());
      types.try_emplace(name, tensor.dtype());
    }
    InferShape(probe, shapes);
    expected.first = EntryShape(probe, NodeEntry{variable, 0});
    InferType(probe, types);
    expected.second = EntryType(probe, NodeEntry{variable, 0});
  } catch (const Error&) {
    // Inconsistent inputs: the run itself will report them.
  }
  return expected;
}

// True when every reader of variable `id` reads it as a loss layer's label.
bool IsOnlyLabel(const IndexedGraph& indexed, size_t id) {
  bool read = false;
  for (size_t user = id + 1; user < indexed.num_nodes(); ++user) {
    const Node& node = indexed.node(user);
    for (size_t i = 0; i < node.inputs.size(); ++i) {
      if (node.inputs[i].node.get() != &indexed.node(id)) continue;
      if (!node.op->IsLabelInput(i)) return false;
      read = true;
    }
  }
  return read;
}

}  // namespace

std::vector<Tensor> Interpret(const Graph& graph, const std::map<std::string, Tensor>& inputs,
                              const InterpretOptions& options) {
  const IndexedGraph& indexed = graph.indexed();
  std::vector<Tensor> values(indexed.num_entries());

  for (size_t id : indexed.input_node_ids()) {
    const Node& node = indexed.node(id);
    const Tensor* value = nullptr;
    if (const auto it = inputs.find(node.name); it != inputs.end()) {
      value = &it->second;
    } else if (const auto param = graph.params.find(node.name); param != graph.params.end()) {
      value = &param->second;
    }
    Tensor placeholder;
    if (value == nullptr || !value->defined()) {
      // Say what was expected, where shape inference can tell from what was given.
      const auto [shape, dtype] = ExpectedInput(graph, inputs, indexed.node_ptr(id));
      if (!options.is_train && IsOnlyLabel(indexed, id) && shape) {
        // A loss layer's label is not read at inference: run without it.
        placeholder = Tensor(*shape, dtype.value_or(DType::kFloat32));
        value = &placeholder;
      } else {
        throw Error("missing input '" + node.name + "'" +
                    (shape ? " (expected shape " + ShapeToString(*shape) + ")" : std::string()));
      }
    }
    if (node.shape && *node.shape != value->shape()) {
      throw Error("input '" + node.name + "': expected shape " + ShapeToString(*node.shape) + ", given " +
                  ShapeToString(value->shape()));
    }
    if (node.dtype && *node.dtype != value->dtype()) {
      throw Error("input '" + node.name + "': expected dtype " + std::string(DTypeName(*node.dtype)) + ", given " +
                  std::string(DTypeName(value->dtype())));
    }
    values[indexed.entry_id(id, 0)] = *value;
  }

  for (size_t id = 0; id < indexed.num_nodes(); ++id) {
    const Node& node = indexed.node(id);
    if (node.is_variable()) continue;
    const std::string where = "node '" + node.name + "' (" + node.op->name() + "): ";
    std::vector<Tensor> in;
    std::vector<ShapeSlot> in_shapes;
    std::vector<DTypeSlot> in_types;
    for (const auto& input : node.inputs) {
      in.push_back(values[indexed.entry_id(input)]);
      in_shapes.emplace_back(in.back().shape());
      in_types.emplace_back(in.back().dtype());
    }
    const size_t num_outputs = node.num_outputs();
    std::vector<ShapeSlot> out_shapes(num_outputs);
    std::vector<DTypeSlot> out_types(num_outputs);
    try {
      const auto given_shapes = in_shapes;
      node.op->InferShape(node.attrs, in_shapes, out_shapes);
      node.op->InferType(node.attrs, in_types, out_types);
      const auto names = node.op->InputNames(node.attrs);
      for (size_t i = 0; i < in.size(); ++i) {
        if (in_shapes[i] != given_shapes[i]) {
          throw Error("input '" + names[i] + "': expected shape " + ShapeToString(*in_shapes[i]) + ", given " +
                      ShapeToString(*given_shapes[i]));
        }
        if (in_types[i] != in[i].dtype()) {
          throw Error("input '" + names[i] + "': expected dtype " + std::string(DTypeName(*in_types[i])) +
                      ", given " + std::string(DTypeName(in[i].dtype())));
        }
      }
      std::vector<Tensor> out;
      for (size_t i = 0; i < num_outputs; ++i) {
        if (!out_shapes[i] || !out_types[i]) throw Error("output " + std::to_string(i) + " cannot be inferred");
        out.emplace_back(*out_shapes[i], *out_types[i]);
      }
      RefContext ctx;
      ctx.is_train = options.is_train;
      ctx.seed = NodeSeed(options.seed, node.name);
      node.op->RunReference(node.attrs, in, out, ctx);
      for (uint32_t i = 0; i < num_outputs; ++i) values[indexed.entry_id(id, i)] = std::move(out[i]);
    } catch (const Error& e) {
      const std::string message = e.what();
      if (message.rfind("node '", 0) == 0) throw;
      throw Error(where + message);
    }
  }

  std::vector<Tensor> outputs;
  for (const size_t entry : indexed.output_entries()) outputs.push_back(values[entry]);
  return outputs;
}

}  // namespace kiln
