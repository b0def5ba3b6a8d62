#include "symbol/mxnet/mxnet_export.h"

#include <nlohmann/json.hpp>
#include <set>

#include "graph/op.h"
#include "runtime/error.h"
#include "runtime/file_util.h"
#include "runtime/mxnet_params.h"

namespace kiln {
namespace {

using json = nlohmann::ordered_json;

// MXNet writes this version of itself into every symbol file (1.9.1).
constexpr int64_t kMxnetVersion = 10901;

}  // namespace

std::string ExportMxnetSymbol(const Graph& graph) {
  const IndexedGraph& indexed = graph.indexed();
  json nodes = json::array();
  json arg_nodes = json::array();
  json row_ptr = json::array({0});
  int64_t entries = 0;
  for (size_t id = 0; id < indexed.num_nodes(); ++id) {
    const Node& node = indexed.node(id);
    json item;
    item["op"] = node.is_variable() ? "null" : node.op->name();
    item["name"] = node.name;
    json attrs = json::object();
    if (node.is_variable()) {
      arg_nodes.push_back(id);
      if (node.shape) {
        std::string text = "(";
        for (size_t d = 0; d < node.shape->size(); ++d) {
          text += (d ? ", " : "") + std::to_string((*node.shape)[d]);
        }
        attrs["__shape__"] = text + (node.shape->size() == 1 ? ",)" : ")");
      }
      if (node.dtype) attrs["__dtype__"] = std::to_string(static_cast<int>(*node.dtype));
    } else {
      // The attributes given, in MXNet's spelling (defaults are left to MXNet, as it
      // writes them).
      for (const auto& [name, value] : node.attrs.ExplicitValues()) attrs[name] = FormatAttrValue(value);
    }
    for (const auto& [key, value] : node.annotations) attrs[key] = value;
    if (!attrs.empty()) item["attrs"] = attrs;
    json inputs = json::array();
    for (const NodeEntry& input : node.inputs) inputs.push_back({indexed.node_id(input.node.get()), input.index, 0});
    item["inputs"] = inputs;
    nodes.push_back(item);
    entries += static_cast<int64_t>(node.num_outputs());
    row_ptr.push_back(entries);
  }
  json heads = json::array();
  for (const NodeEntry& output : graph.outputs) heads.push_back({indexed.node_id(output.node.get()), output.index, 0});
  json doc;
  doc["nodes"] = nodes;
  doc["arg_nodes"] = arg_nodes;
  doc["node_row_ptr"] = row_ptr;
  doc["heads"] = heads;
  doc["attrs"] = {{"mxnet_version", json::array({"int", kMxnetVersion})}};
  return doc.dump(2) + "\n";
}

std::vector<std::string> ExportMxnet(const Graph& graph, const std::string& prefix) {
  std::vector<std::string> written;
  const std::string symbol_path = prefix + "-symbol.json";
  WriteFileAtomic(symbol_path, ExportMxnetSymbol(graph));
  written.push_back(symbol_path);
  if (graph.params.empty()) return written;
  const std::vector<std::string> aux = graph.ListAuxiliaryStates();
  const std::set<std::string> aux_names(aux.begin(), aux.end());
  ParamList params;
  for (const auto& [name, tensor] : graph.params) {
    params.tensors.emplace_back((aux_names.count(name) ? "aux:" : "arg:") + name, tensor);
  }
  const std::string params_path = prefix + "-0000.params";
  SaveMxnetParams(params_path, params);
  written.push_back(params_path);
  return written;
}

}  // namespace kiln
