#include "passes/infer_shape.h"

#include <functional>
#include <vector>

#include "runtime/error.h"

namespace kiln {
namespace {

// The fixed-point driver shared by shape and dtype inference.
template <typename Value, typename Describe, typename Declared, typename Infer>
size_t InferEntries(Graph& graph, const std::map<std::string, Value>& known, const char* attr_name, const char* what,
                    Describe describe, Declared declared, Infer infer) {
  const IndexedGraph& indexed = graph.indexed();
  std::vector<std::optional<Value>> slots(indexed.num_entries());

  for (const auto& [name, value] : known) {
    bool found = false;
    for (size_t id : indexed.input_node_ids()) found = found || indexed.node(id).name == name;
    if (!found) throw Error("no input named '" + name + "' in the graph (given " + what + " " + describe(value) + ")");
  }
  for (size_t id : indexed.input_node_ids()) {
    const Node& node = indexed.node(id);
    const std::optional<Value> declared_value = declared(node);
    const auto given = known.find(node.name);
    if (given != known.end()) {
      if (declared_value && *declared_value != given->second) {
        throw Error("input '" + node.name + "': declared " + what + " " + describe(*declared_value) + ", given " +
                    describe(given->second));
      }
      slots[indexed.entry_id(id, 0)] = given->second;
    } else {
      slots[indexed.entry_id(id, 0)] = declared_value;
    }
  }

  bool changed = true;
  for (size_t round = 0; changed && round <= indexed.num_nodes() + 1; ++round) {
    changed = false;
    for (size_t id = 0; id < indexed.num_nodes(); ++id) {
      const Node& node = indexed.node(id);
      if (node.is_variable()) continue;
      std::vector<std::optional<Value>> inputs;
      std::vector<std::optional<Value>> outputs;
      for (const auto& input : node.inputs) inputs.push_back(slots[indexed.entry_id(input)]);
      for (uint32_t i = 0; i < node.num_outputs(); ++i) outputs.push_back(slots[indexed.entry_id(id, i)]);
      try {
        infer(node, inputs, outputs);
      } catch (const Error& e) {
        throw Error("node '" + node.name + "' (" + node.op->name() + "): " + e.what());
      } catch (const std::exception& e) {
        throw Error("node '" + node.name + "' (" + node.op->name() + "): " + e.what());
      }
      const auto input_names = node.op->InputNames(node.attrs);
      for (size_t i = 0; i < node.inputs.size(); ++i) {
        auto& slot = slots[indexed.entry_id(node.inputs[i])];
        if (!inputs[i]) continue;
        if (slot && *slot != *inputs[i]) {
          throw Error("node '" + node.name + "' (" + node.op->name() + "): input '" + input_names[i] + "': expected " +
                      what + " " + describe(*inputs[i]) + ", given " + describe(*slot));
        }
        if (!slot) {
          slot = inputs[i];
          changed = true;
        }
      }
      for (uint32_t i = 0; i < node.num_outputs(); ++i) {
        auto& slot = slots[indexed.entry_id(id, i)];
        if (outputs[i] && !slot) {
          slot = outputs[i];
          changed = true;
        }
      }
    }
  }
  size_t unknown = 0;
  for (const auto& slot : slots) unknown += slot ? 0 : 1;
  graph.attrs[attr_name] = std::move(slots);
  return unknown;
}

}  // namespace

size_t InferShape(Graph& graph, const std::map<std::string, Shape>& known) {
  return InferEntries<Shape>(
      graph, known, "shape", "shape", [](const Shape& s) { return ShapeToString(s); },
      [](const Node& node) { return node.shape; },
      [](const Node& node, std::vector<ShapeSlot>& in, std::vector<ShapeSlot>& out) {
        node.op->InferShape(node.attrs, in, out);
        // A shape whose element count overflows, or that no machine could hold, is an
        // error here, where the node is known, not a wrapped size later.
        for (size_t i = 0; i < out.size(); ++i) {
          if (!out[i]) continue;
          const auto count = static_cast<uint64_t>(NumElements(*out[i]));
          if (count > kMaxTensorBytes) {
            throw Error("output " + std::to_string(i) + " of shape " + ShapeToString(*out[i]) + " has " +
                        std::to_string(count) + " elements, more than kiln's limit of " +
                        std::to_string(kMaxTensorBytes) + " bytes");
          }
        }
      });
}

size_t InferType(Graph& graph, const std::map<std::string, DType>& known, std::optional<DType> default_dtype) {
  const auto run = [&graph](const std::map<std::string, DType>& given) {
    return InferEntries<DType>(
        graph, given, "dtype", "dtype", [](DType d) { return std::string(DTypeName(d)); },
        [](const Node& node) { return node.dtype; },
        [](const Node& node, std::vector<DTypeSlot>& in, std::vector<DTypeSlot>& out) {
          node.op->InferType(node.attrs, in, out);
        });
  };
  const size_t unknown = run(known);
  if (unknown == 0 || !default_dtype) return unknown;
  // Give the undetermined variables the default and infer again.
  const IndexedGraph& indexed = graph.indexed();
  const auto& slots = graph.GetAttr<std::vector<DTypeSlot>>("dtype");
  std::map<std::string, DType> with_defaults = known;
  for (size_t id : indexed.input_node_ids()) {
    if (!slots[indexed.entry_id(id, 0)]) with_defaults.emplace(indexed.node(id).name, *default_dtype);
  }
  return run(with_defaults);
}

const ShapeSlot& EntryShape(const Graph& graph, const NodeEntry& entry) {
  return graph.GetAttr<std::vector<ShapeSlot>>("shape").at(graph.indexed().entry_id(entry));
}

const DTypeSlot& EntryType(const Graph& graph, const NodeEntry& entry) {
  return graph.GetAttr<std::vector<DTypeSlot>>("dtype").at(graph.indexed().entry_id(entry));
}

}  // namespace kiln
