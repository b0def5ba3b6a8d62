// Operators' attribute parsing and shape and dtype inference (symbol/ops), straight from
// text, one node at a time:
//
//   Convolution            the operator (or an alias)
//   kernel=(3, 3)          attributes in MXNet's spelling
//   num_filter=8
//   in=(1, 2, 5, 5)        input shapes, in order, parsed as a tuple of dims;
//   in=None                None: unknown (inference may fill it, e.g. a weight's shape)
//
// Inference fills slots or throws kiln::Error. What it fills has no negative dimension,
// it leaves the slot counts alone, and it is a fixed point: run again on its own result
// it accepts it and changes nothing (the InferShape pass runs every node until nothing
// changes and reports a conflict as the node's error).
#include <algorithm>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "graph/attrs.h"
#include "graph/op.h"
#include "runtime/error.h"
#include "tests/fuzz/fuzz_targets.h"

namespace kiln::fuzz {
namespace {

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t' || s.front() == '\r')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) s.remove_suffix(1);
  return s;
}

std::string Describe(const std::vector<ShapeSlot>& slots) {
  std::string text;
  for (const auto& slot : slots) text += (text.empty() ? "" : ", ") + (slot ? ShapeToString(*slot) : "?");
  return "[" + text + "]";
}

// Messages are built only on failure: a node of 60,000 inputs must stay linear.
void CheckSlots(const std::vector<ShapeSlot>& slots, size_t count, const std::string& what) {
  FuzzCheck(slots.size() == count, what + ": shape inference changed the number of slots");
  for (const auto& slot : slots) {
    if (slot && std::any_of(slot->begin(), slot->end(), [](int64_t d) { return d < 0; })) {
      FuzzCheck(false, what + ": shape inference made a negative dimension: " + Describe(slots));
    }
  }
}

}  // namespace

int FuzzShape(const uint8_t* data, size_t size) {
  const std::string_view text = AsText(data, size);
  std::vector<std::string_view> lines;
  for (size_t start = 0; start <= text.size();) {
    const size_t end = std::min(text.find('\n', start), text.size());
    lines.push_back(Trim(text.substr(start, end - start)));
    start = end + 1;
  }
  const OpDef* op = OpRegistry::Global().Find(std::string(lines.front()));
  if (op == nullptr) return 0;

  AttrField dims_field;
  dims_field.name = "in";
  dims_field.type = AttrType::kInts;
  dims_field.nullable = true;
  std::map<std::string, AttrValue> given;
  std::vector<ShapeSlot> inputs;
  try {
    for (size_t i = 1; i < lines.size(); ++i) {
      const size_t eq = lines[i].find('=');
      if (eq == std::string_view::npos) continue;
      const std::string key(Trim(lines[i].substr(0, eq)));
      const std::string value(Trim(lines[i].substr(eq + 1)));
      if (key == "in") {
        const AttrValue dims = dims_field.Normalize(value);
        if (const auto* v = std::get_if<std::vector<int64_t>>(&dims)) {
          inputs.emplace_back(*v);
        } else {
          inputs.emplace_back(std::nullopt);
        }
      } else {
        given[key] = value;
      }
    }
    for (const auto& slot : inputs) {
      if (slot) NumElements(*slot);  // negative dimensions are the parser's to reject here
    }
    const Attrs attrs = op->ParseAttrs(given, "fuzz_node");
    const size_t num_inputs = op->NumInputs(attrs);
    const size_t num_outputs = op->NumOutputs(attrs);
    inputs.resize(num_inputs);
    std::vector<ShapeSlot> outputs(num_outputs);
    const std::string where = "operator " + op->name() + " on " + Describe(inputs);
    op->InferShape(attrs, inputs, outputs);
    CheckSlots(inputs, num_inputs, where + ", inputs");
    CheckSlots(outputs, num_outputs, where + ", outputs");

    std::vector<ShapeSlot> inputs_again = inputs;
    std::vector<ShapeSlot> outputs_again = outputs;
    try {
      op->InferShape(attrs, inputs_again, outputs_again);
    } catch (const Error& e) {
      FuzzCheck(false, where + ": inference rejects its own result " + Describe(inputs) + " -> " + Describe(outputs) +
                           ": " + e.what());
    }
    if (inputs_again != inputs || outputs_again != outputs) {
      FuzzCheck(false, where + ": inference is not a fixed point: " + Describe(inputs) + " -> " + Describe(outputs) +
                           ", then " + Describe(inputs_again) + " -> " + Describe(outputs_again));
    }

    std::vector<DTypeSlot> input_types(num_inputs, DType::kFloat32);
    std::vector<DTypeSlot> output_types(num_outputs);
    op->InferType(attrs, input_types, output_types);
  } catch (const Error&) {
  }
  return 0;
}

}  // namespace kiln::fuzz
