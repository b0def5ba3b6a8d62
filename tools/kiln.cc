// The kiln command line: a thin main over the libraries.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "passes/graph_io.h"
#include "passes/infer_shape.h"
#include "passes/interpreter.h"
#include "runtime/error.h"
#include "runtime/file_util.h"
#include "runtime/npy.h"
#include "runtime/param_file.h"
#include "runtime/version.h"
#include "symbol/op.h"

namespace kiln {
namespace {

// "data:1x3x224x224" → ("data", {1,3,224,224}).
std::pair<std::string, Shape> ParseInputShape(const std::string& text) {
  const auto colon = text.rfind(':');
  if (colon == std::string::npos || colon == 0) {
    throw Error("--input '" + text + "': expected NAME:DIMxDIMx... (e.g. data:1x3x224x224)");
  }
  Shape shape;
  std::string dims = text.substr(colon + 1);
  size_t start = 0;
  while (start <= dims.size()) {
    const size_t x = dims.find('x', start);
    const std::string dim = dims.substr(start, x == std::string::npos ? std::string::npos : x - start);
    if (dim.empty() || dim.find_first_not_of("0123456789") != std::string::npos || dim.size() > 12) {
      throw Error("--input '" + text + "': bad dimension '" + dim + "'");
    }
    shape.push_back(std::stoll(dim));
    if (x == std::string::npos) break;
    start = x + 1;
  }
  return {text.substr(0, colon), shape};
}

// "data=x.npy" → ("data", "x.npy").
std::pair<std::string, std::string> ParseInputFile(const std::string& text) {
  const auto eq = text.find('=');
  if (eq == std::string::npos || eq == 0 || eq + 1 == text.size()) {
    throw Error("--input '" + text + "': expected NAME=FILE.npy");
  }
  return {text.substr(0, eq), text.substr(eq + 1)};
}

Graph LoadModel(const std::string& path, const std::string& params_path) {
  Graph graph = LoadGraphFile(path);
  if (!params_path.empty()) {
    for (const auto& [name, tensor] : LoadParams(params_path).tensors) {
      // MXNet's checkpoints prefix names with "arg:" and "aux:".
      std::string key = name;
      if (key.rfind("arg:", 0) == 0 || key.rfind("aux:", 0) == 0) key = key.substr(4);
      graph.params[key] = tensor;
    }
  }
  return graph;
}

// Shapes known from declarations, embedded parameters and --input overrides.
std::map<std::string, Shape> KnownShapes(const Graph& graph, const std::vector<std::string>& inputs) {
  std::map<std::string, Shape> known;
  for (const auto& name : graph.ListInputs()) {
    if (const auto it = graph.params.find(name); it != graph.params.end()) known[name] = it->second.shape();
  }
  for (const auto& text : inputs) {
    const auto [name, shape] = ParseInputShape(text);
    known[name] = shape;
  }
  return known;
}

std::string Summary(const Tensor& tensor) {
  const auto values = tensor.ToDoubles();
  double sum = 0;
  double lo = values.empty() ? 0 : values[0];
  double hi = lo;
  for (double v : values) {
    sum += v;
    lo = std::min(lo, v);
    hi = std::max(hi, v);
  }
  char text[160];
  std::snprintf(text, sizeof text, "min %.6g  max %.6g  mean %.6g", lo, hi, values.empty() ? 0.0 : sum / values.size());
  return text;
}

int CmdOps(bool json) {
  if (json) {
    nlohmann::json list = nlohmann::json::array();
    for (const OpDef* op : OpRegistry::Global().List()) {
      list.push_back({{"name", op->name()}, {"pattern", OpPatternName(op->pattern())}, {"aliases", op->aliases()}});
    }
    std::cout << list.dump(2) << "\n";
    return 0;
  }
  for (const OpDef* op : OpRegistry::Global().List()) {
    std::cout << op->name() << " " << OpPatternName(op->pattern()) << "\n";
  }
  return 0;
}

int CmdInspect(const std::string& model, const std::string& params, const std::vector<std::string>& inputs, bool json) {
  Graph graph = LoadModel(model, params);
  InferShape(graph, KnownShapes(graph, inputs));
  InferType(graph, {});
  const IndexedGraph& indexed = graph.indexed();
  const auto& shapes = graph.GetAttr<std::vector<ShapeSlot>>("shape");
  const auto& types = graph.GetAttr<std::vector<DTypeSlot>>("dtype");
  const auto shape_json = [](const ShapeSlot& s) { return s ? nlohmann::json(*s) : nlohmann::json(nullptr); };
  const auto type_json = [](const DTypeSlot& t) {
    return t ? nlohmann::json(std::string(DTypeName(*t))) : nlohmann::json(nullptr);
  };

  size_t param_bytes = 0;
  for (const auto& [name, tensor] : graph.params) param_bytes += tensor.nbytes();
  size_t num_ops = 0;
  for (size_t id = 0; id < indexed.num_nodes(); ++id) num_ops += indexed.node(id).is_variable() ? 0 : 1;

  nlohmann::json j;
  j["kind"] = "graph";
  j["ops"] = num_ops;
  j["inputs"] = nlohmann::json::array();
  j["parameters"] = nlohmann::json::array();
  for (size_t id : indexed.input_node_ids()) {
    const Node& node = indexed.node(id);
    const size_t entry = indexed.entry_id(id, 0);
    nlohmann::json item = {{"name", node.name}, {"shape", shape_json(shapes[entry])}, {"dtype", type_json(types[entry])}};
    if (const auto it = graph.params.find(node.name); it != graph.params.end()) {
      item["bytes"] = it->second.nbytes();
      j["parameters"].push_back(item);
    } else {
      j["inputs"].push_back(item);
    }
  }
  j["outputs"] = nlohmann::json::array();
  const auto names = graph.OutputNames();
  for (size_t i = 0; i < graph.outputs.size(); ++i) {
    const size_t entry = indexed.output_entries()[i];
    j["outputs"].push_back({{"name", names[i]}, {"shape", shape_json(shapes[entry])}, {"dtype", type_json(types[entry])}});
  }
  j["parameter_bytes"] = param_bytes;
  j["auxiliary_states"] = graph.ListAuxiliaryStates();
  if (json) {
    std::cout << j.dump(2) << "\n";
    return 0;
  }
  std::cout << "graph " << model << ": " << num_ops << " ops\n\n" << DumpGraph(graph) << "\n";
  std::cout << "inputs:\n";
  for (const auto& item : j["inputs"]) std::cout << "  " << item["name"].get<std::string>() << " " << item["shape"].dump() << "\n";
  std::cout << "parameters (" << j["parameters"].size() << ", " << param_bytes << " bytes):\n";
  for (const auto& item : j["parameters"]) {
    std::cout << "  " << item["name"].get<std::string>() << " " << item["shape"].dump() << " " << item["bytes"].get<size_t>()
              << " bytes\n";
  }
  std::cout << "outputs:\n";
  for (const auto& item : j["outputs"]) std::cout << "  " << item["name"].get<std::string>() << " " << item["shape"].dump() << "\n";
  return 0;
}

int CmdViz(const std::string& model, const std::string& params, const std::vector<std::string>& inputs,
           const std::string& out) {
  Graph graph = LoadModel(model, params);
  InferShape(graph, KnownShapes(graph, inputs));
  WriteFileAtomic(out, GraphToDot(graph, std::filesystem::path(model).stem().string()));
  std::cout << "wrote " << out << "\n";
  return 0;
}

int CmdInterpret(const std::string& model, const std::string& params, const std::vector<std::string>& inputs,
                 const std::string& output_dir, bool train, uint64_t seed) {
  const Graph graph = LoadModel(model, params);
  std::map<std::string, Tensor> values;
  for (const auto& text : inputs) {
    const auto [name, file] = ParseInputFile(text);
    values[name] = LoadNpy(file);
  }
  InterpretOptions options;
  options.is_train = train;
  options.seed = seed;
  const auto outputs = Interpret(graph, values, options);
  const auto names = graph.OutputNames();
  if (!output_dir.empty()) std::filesystem::create_directories(output_dir);
  for (size_t i = 0; i < outputs.size(); ++i) {
    std::cout << names[i] << " " << ShapeToString(outputs[i].shape()) << " " << DTypeName(outputs[i].dtype()) << "  "
              << Summary(outputs[i]) << "\n";
    if (outputs[i].size() <= 16) {
      std::cout << "  [";
      for (int64_t k = 0; k < outputs[i].size(); ++k) std::cout << (k ? ", " : "") << outputs[i].GetDouble(k);
      std::cout << "]\n";
    }
    if (!output_dir.empty()) SaveNpy(output_dir + "/" + names[i] + ".npy", outputs[i]);
  }
  return 0;
}

int Main(int argc, char** argv) {
  CLI::App app{"kiln: an ahead-of-time compiler for neural-network graphs"};
  app.set_version_flag("--version", std::string("kiln ") + kKilnVersion);
  app.require_subcommand(1);

  bool json = false;
  std::string model;
  std::string params;
  std::string output;
  std::vector<std::string> inputs;
  bool train = false;
  uint64_t seed = 0;

  auto* ops = app.add_subcommand("ops", "List every registered operator and its fusion pattern");
  ops->add_flag("--json", json, "Print JSON");

  auto* inspect = app.add_subcommand("inspect", "Print a model's graph, shapes, parameters and sizes");
  inspect->add_option("MODEL", model, "Graph file (.kiln-graph binary, or .pbtxt/.txt text)")->required();
  inspect->add_option("--params", params, "Parameter file to bind (else embedded parameters)");
  inspect->add_option("--input", inputs, "Input shape NAME:DxDxD (repeatable)");
  inspect->add_flag("--json", json, "Print JSON");

  auto* viz = app.add_subcommand("viz", "Write a Graphviz DOT picture of a model");
  viz->add_option("MODEL", model, "Graph file")->required();
  viz->add_option("-o,--output", output, "Output .dot file")->required();
  viz->add_option("--params", params, "Parameter file");
  viz->add_option("--input", inputs, "Input shape NAME:DxDxD (repeatable)");

  auto* interpret = app.add_subcommand("interpret", "Run a model with the reference interpreter (the oracle)");
  interpret->add_option("MODEL", model, "Graph file")->required();
  interpret->add_option("--params", params, "Parameter file");
  interpret->add_option("--input", inputs, "Input NAME=FILE.npy (repeatable)");
  interpret->add_option("--output-dir", output, "Write each output as DIR/NAME.npy");
  interpret->add_flag("--train", train, "Training mode (BatchNorm batch statistics, Dropout)");
  interpret->add_option("--seed", seed, "Seed for random operators and Dropout");

  CLI11_PARSE(app, argc, argv);
  if (*ops) return CmdOps(json);
  if (*inspect) return CmdInspect(model, params, inputs, json);
  if (*viz) return CmdViz(model, params, inputs, output);
  if (*interpret) return CmdInterpret(model, params, inputs, output, train, seed);
  return 1;
}

}  // namespace
}  // namespace kiln

int main(int argc, char** argv) {
  try {
    return kiln::Main(argc, argv);
  } catch (const std::exception& e) {
    std::cerr << "kiln: error: " << e.what() << "\n";
    return 1;
  }
}
