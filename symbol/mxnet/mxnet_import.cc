#include "symbol/mxnet/mxnet_import.h"

#include <nlohmann/json.hpp>
#include <set>

#include "graph/op.h"
#include "runtime/error.h"
#include "runtime/file_util.h"
#include "runtime/param_formats.h"

namespace kiln {
namespace {

using json = nlohmann::json;

// The attribute object of a node in any MXNet 1.x spelling, as text values.
std::map<std::string, std::string> NodeAttributes(const json& node, const std::string& what) {
  std::map<std::string, std::string> attrs;
  for (const char* key : {"attrs", "attr", "param"}) {
    const auto it = node.find(key);
    if (it == node.end() || it->is_null()) continue;
    if (!it->is_object()) throw Error(what + ": \"" + key + "\" is not an object");
    for (const auto& [name, value] : it->items())
      attrs[name] = value.is_string() ? value.get<std::string>() : value.dump();
  }
  return attrs;
}

// MXNet's hidden keys (__name__): annotations, kept as written; a variable's __shape__
// and __dtype__ become its declared shape and dtype instead.
std::map<std::string, std::string> Annotations(const std::map<std::string, std::string>& attrs, bool variable) {
  std::map<std::string, std::string> hidden;
  for (const auto& [key, value] : attrs) {
    const bool is_hidden = key.size() > 4 && key.rfind("__", 0) == 0 && key.compare(key.size() - 2, 2, "__") == 0;
    if (!is_hidden || (variable && (key == "__shape__" || key == "__dtype__"))) continue;
    hidden[key] = value;
  }
  return hidden;
}

// "(1, 3, 224, 224)" or "[1,3,224,224]" as MXNet writes __shape__; 0 and -1 (unknown
// dimensions) make the shape unknown.
std::optional<Shape> ParseShapeText(const std::string& text, const std::string& what) {
  Shape shape;
  std::string digits;
  bool unknown = false;
  const auto flush = [&] {
    if (digits.empty()) return;
    size_t used = 0;
    long long value = 0;
    try {
      value = std::stoll(digits, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used != digits.size()) throw Error(what + ": __shape__ '" + Abbreviate(text) + "' is not a shape");
    if (value <= 0) unknown = true;
    shape.push_back(value);
    digits.clear();
  };
  for (const char c : text) {
    if (c == '(' || c == ')' || c == '[' || c == ']' || c == ' ' || c == ',' || c == 'L') {
      flush();
    } else {
      digits += c;
    }
  }
  flush();
  if (unknown) return std::nullopt;
  return shape;
}

// [node, output] or [node, output, version], node before `limit`.
NodeEntry EntryOf(const json& ref, const std::vector<NodePtr>& nodes, size_t limit, const std::string& what) {
  if (!ref.is_array() || ref.size() < 2 || !ref[0].is_number_unsigned() || !ref[1].is_number_unsigned()) {
    throw Error(what + ": expected [node, output(, version)], given " + Abbreviate(ref.dump()));
  }
  const auto id = ref[0].get<uint64_t>();
  const auto index = ref[1].get<uint64_t>();
  if (id >= limit) {
    throw Error(what + " refers to node " + std::to_string(id) + ", which does not come before it (" +
                std::to_string(limit) + " nodes precede)");
  }
  const NodePtr& node = nodes[id];
  if (index >= node->num_outputs()) {
    throw Error(what + " refers to output " + std::to_string(index) + " of node '" + Abbreviate(node->name) +
                "', which has " + std::to_string(node->num_outputs()));
  }
  return {node, static_cast<uint32_t>(index)};
}

std::string StripPrefix(const std::string& name) {
  return name.starts_with("arg:") || name.starts_with("aux:") ? name.substr(4) : name;
}

}  // namespace

bool LooksLikeMxnetSymbol(std::string_view text) {
  const json doc = json::parse(text, nullptr, false);
  return !doc.is_discarded() && doc.is_object() && doc.contains("nodes") && doc.contains("heads");
}

Graph ImportMxnetJson(std::string_view json_text, const ParamList* params, const MxnetImportOptions& options,
                      const std::string& source) {
  const std::string where = "'" + source + "'";
  const json doc = json::parse(json_text, nullptr, false);
  if (doc.is_discarded()) throw Error(where + " is not JSON");
  if (!doc.is_object() || !doc.contains("nodes") || !doc["nodes"].is_array() || !doc.contains("heads") ||
      !doc["heads"].is_array()) {
    throw Error(where + " is not an MXNet symbol file (expected an object with \"nodes\" and \"heads\" arrays)");
  }
  const json& nodes_json = doc["nodes"];

  // Every operator kiln lacks, named at once.
  std::vector<std::string> unsupported;
  for (size_t i = 0; i < nodes_json.size(); ++i) {
    const json& node = nodes_json[i];
    if (!node.is_object() || !node.contains("op") || !node["op"].is_string() || !node.contains("name") ||
        !node["name"].is_string()) {
      throw Error(where + ": node " + std::to_string(i) + " lacks a string \"op\" or \"name\"");
    }
    const std::string op = node["op"].get<std::string>();
    if (op != "null" && OpRegistry::Global().Find(op) == nullptr) {
      unsupported.push_back(op + " (node '" + Abbreviate(node["name"].get<std::string>()) + "')");
    }
  }
  if (!unsupported.empty()) {
    std::string list;
    for (const auto& item : unsupported) list += (list.empty() ? "" : ", ") + item;
    throw Error(where + ": " + std::to_string(unsupported.size()) + " node" + (unsupported.size() == 1 ? "" : "s") +
                " use operators kiln does not have: " + list);
  }

  std::vector<NodePtr> nodes;
  std::set<std::string> names;
  for (size_t i = 0; i < nodes_json.size(); ++i) {
    const json& node = nodes_json[i];
    const std::string op_name = node["op"].get<std::string>();
    const std::string name = node["name"].get<std::string>();
    const std::string what = where + ": node " + std::to_string(i) + " '" + Abbreviate(name) + "' (" + op_name + ")";
    const std::map<std::string, std::string> attrs = NodeAttributes(node, what);
    // kiln graphs name every node once (MXNet's own files always do).
    if (!names.insert(name).second) throw Error(what + ": a second node of that name");
    if (op_name == "null") {
      std::optional<Shape> shape;
      std::optional<DType> dtype;
      if (const auto it = attrs.find("__shape__"); it != attrs.end()) shape = ParseShapeText(it->second, what);
      if (const auto it = options.input_shapes.find(name); it != options.input_shapes.end()) shape = it->second;
      if (const auto it = attrs.find("__dtype__"); it != attrs.end()) {
        int code = -1;
        try {
          code = std::stoi(it->second);
        } catch (const std::exception&) {
        }
        if (!IsValidDTypeCode(code)) {
          throw Error(what + ": __dtype__ '" + Abbreviate(it->second) + "' is not a dtype kiln has (0 to " +
                      std::to_string(kNumDTypes - 1) + ")");
        }
        dtype = static_cast<DType>(code);
      }
      nodes.push_back(Node::Variable(name, shape, dtype));
      nodes.back()->annotations = Annotations(attrs, /*variable=*/true);
      continue;
    }
    std::vector<NodeEntry> inputs;
    const json inputs_json = node.value("inputs", json::array());
    if (!inputs_json.is_array()) throw Error(what + ": \"inputs\" is not an array");
    for (size_t k = 0; k < inputs_json.size(); ++k) {
      inputs.push_back(EntryOf(inputs_json[k], nodes, i, what + ", input " + std::to_string(k)));
    }
    const OpDef& op = *OpRegistry::Global().Find(op_name);
    std::map<std::string, AttrValue> given;
    for (const auto& [key, value] : attrs) given[key] = value;
    try {
      nodes.push_back(Node::Create(op, name, op.ParseAttrs(given, name), std::move(inputs)));
      nodes.back()->annotations = Annotations(attrs, /*variable=*/false);
    } catch (const Error& e) {
      throw Error(what + ": " + e.what());
    }
  }

  Graph graph;
  const json& heads = doc["heads"];
  if (heads.empty()) throw Error(where + ": \"heads\" is empty (the symbol has no outputs)");
  for (size_t h = 0; h < heads.size(); ++h) {
    graph.outputs.push_back(EntryOf(heads[h], nodes, nodes.size(), where + ": head " + std::to_string(h)));
  }
  if (const auto it = doc.find("arg_nodes"); it != doc.end() && it->is_array()) {
    for (const json& id : *it) {
      if (!id.is_number_unsigned() || id.get<uint64_t>() >= nodes.size() || !nodes[id.get<uint64_t>()]->is_variable()) {
        throw Error(where + ": \"arg_nodes\" lists " + Abbreviate(id.dump()) + ", which is not a variable node");
      }
    }
  }

  if (params != nullptr) {
    std::set<std::string> variables;
    for (const NodePtr& node : nodes) {
      if (node->is_variable()) variables.insert(node->name);
    }
    for (const auto& [prefixed, tensor] : params->tensors) {
      const std::string name = StripPrefix(prefixed);
      if (variables.count(name) == 0) {
        throw Error(where + ": the parameters hold '" + Abbreviate(prefixed) +
                    "', which is no variable of the symbol (a parameter file of another model?)");
      }
      graph.params[name] = tensor;
    }
  }
  return graph;
}

Graph ImportMxnet(const std::string& symbol_path, const std::string& params_path, const MxnetImportOptions& options) {
  const std::string text = ReadFile(symbol_path);
  if (params_path.empty()) return ImportMxnetJson(text, nullptr, options, symbol_path);
  const ParamList params = LoadAnyParams(params_path);
  return ImportMxnetJson(text, &params, options, symbol_path);
}

}  // namespace kiln
