// The kiln command line: a thin main over the libraries.
#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "codegen/compiler.h"
#include "passes/graph_io.h"
#include "passes/infer_shape.h"
#include "passes/interpreter.h"
#include "runtime/artifact.h"
#include "runtime/error.h"
#include "runtime/executor.h"
#include "runtime/file_util.h"
#include "runtime/npy.h"
#include "runtime/param_file.h"
#include "runtime/version.h"
#include "symbol/onnx/onnx_export.h"
#include "symbol/onnx/onnx_import.h"
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

// Shapes of "NAME:2x3" arguments.
std::map<std::string, Shape> ShapeArgs(const std::vector<std::string>& inputs) {
  std::map<std::string, Shape> shapes;
  for (const auto& text : inputs) shapes.insert(ParseInputShape(text));
  return shapes;
}

// A kiln graph file, or an ONNX model (imported with `input_shapes` for its inputs).
Graph LoadModel(const std::string& path, const std::string& params_path,
                const std::map<std::string, Shape>& input_shapes = {}) {
  Graph graph = path.ends_with(".onnx") ? ImportOnnx(path, input_shapes) : LoadGraphFile(path);
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

nlohmann::json SpecJson(const proto::TensorSpec& spec) {
  return {{"name", spec.name()},
          {"shape", std::vector<int64_t>(spec.shape().begin(), spec.shape().end())},
          {"dtype", IsValidDTypeCode(spec.dtype()) ? std::string(DTypeName(static_cast<DType>(spec.dtype()))) : "?"}};
}

int InspectArtifact(const std::string& path, bool json) {
  const proto::ArtifactProto artifact = LoadArtifact(path);
  nlohmann::json j;
  j["kind"] = "artifact";
  j["format_version"] = artifact.format_version();
  j["producer_version"] = artifact.producer_version();
  j["target"] = {
      {"triple", artifact.target().triple()},
      {"cpu", artifact.target().cpu()},
      {"features", std::vector<std::string>(artifact.target().features().begin(), artifact.target().features().end())}};
  j["opt_level"] = artifact.opt_level();
  j["inputs"] = nlohmann::json::array();
  for (const auto& spec : artifact.inputs()) j["inputs"].push_back(SpecJson(spec));
  j["outputs"] = nlohmann::json::array();
  for (const auto& spec : artifact.outputs()) j["outputs"].push_back(SpecJson(spec));
  size_t parameter_bytes = 0;
  for (const auto& value : artifact.param_values()) parameter_bytes += value.data().size();
  j["parameters"] = artifact.params_size();
  j["parameter_bytes"] = parameter_bytes;
  j["parameters_embedded"] = artifact.param_values_size() == artifact.params_size();
  j["kernels"] = artifact.kernels_size();
  j["arena_bytes"] = artifact.arena_bytes();
  j["code_bytes"] = artifact.code().size();
  if (json) {
    std::cout << j.dump(2) << "\n";
    return 0;
  }
  std::cout << "artifact " << path << " (format " << artifact.format_version() << ", kiln "
            << artifact.producer_version() << ")\n";
  std::cout << "target: " << artifact.target().triple() << ", cpu " << artifact.target().cpu() << ", -O"
            << artifact.opt_level() << "\n";
  for (const auto& spec : j["inputs"])
    std::cout << "input  " << spec["name"].get<std::string>() << " " << spec["shape"].dump() << " "
              << spec["dtype"].get<std::string>() << "\n";
  for (const auto& spec : j["outputs"])
    std::cout << "output " << spec["name"].get<std::string>() << " " << spec["shape"].dump() << " "
              << spec["dtype"].get<std::string>() << "\n";
  std::cout << "parameters: " << artifact.params_size() << " (" << parameter_bytes << " bytes"
            << (j["parameters_embedded"].get<bool>() ? ", embedded" : ", bound at load") << ")\n";
  std::cout << "kernels: " << artifact.kernels_size() << ", arena: " << artifact.arena_bytes()
            << " bytes, code: " << artifact.code().size() << " bytes\n";
  for (const auto& kernel : artifact.kernels()) {
    std::cout << "  " << kernel.symbol() << "  (node " << kernel.node() << ", parallel " << kernel.parallel_extent()
              << ")\n";
  }
  return 0;
}

int CmdInspect(const std::string& model, const std::string& params, const std::vector<std::string>& inputs, bool json) {
  if (LooksLikeArtifact(ReadFile(model).substr(0, 8))) return InspectArtifact(model, json);
  Graph graph = LoadModel(model, params, ShapeArgs(inputs));
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
    nlohmann::json item = {
        {"name", node.name}, {"shape", shape_json(shapes[entry])}, {"dtype", type_json(types[entry])}};
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
    j["outputs"].push_back(
        {{"name", names[i]}, {"shape", shape_json(shapes[entry])}, {"dtype", type_json(types[entry])}});
  }
  j["parameter_bytes"] = param_bytes;
  j["auxiliary_states"] = graph.ListAuxiliaryStates();
  if (json) {
    std::cout << j.dump(2) << "\n";
    return 0;
  }
  std::cout << "graph " << model << ": " << num_ops << " ops\n\n" << DumpGraph(graph) << "\n";
  std::cout << "inputs:\n";
  for (const auto& item : j["inputs"])
    std::cout << "  " << item["name"].get<std::string>() << " " << item["shape"].dump() << "\n";
  std::cout << "parameters (" << j["parameters"].size() << ", " << param_bytes << " bytes):\n";
  for (const auto& item : j["parameters"]) {
    std::cout << "  " << item["name"].get<std::string>() << " " << item["shape"].dump() << " "
              << item["bytes"].get<size_t>() << " bytes\n";
  }
  std::cout << "outputs:\n";
  for (const auto& item : j["outputs"])
    std::cout << "  " << item["name"].get<std::string>() << " " << item["shape"].dump() << "\n";
  return 0;
}

int CmdViz(const std::string& model, const std::string& params, const std::vector<std::string>& inputs,
           const std::string& out) {
  Graph graph = LoadModel(model, params, ShapeArgs(inputs));
  InferShape(graph, KnownShapes(graph, inputs));
  WriteFileAtomic(out, GraphToDot(graph, std::filesystem::path(model).stem().string()));
  std::cout << "wrote " << out << "\n";
  return 0;
}

int CmdExport(const std::string& model, const std::string& params, const std::vector<std::string>& inputs,
              const std::string& out) {
  const auto shapes = ShapeArgs(inputs);
  const Graph graph = LoadModel(model, params, shapes);
  SaveOnnx(out, graph, shapes);
  std::cout << "wrote " << out << "\n";
  return 0;
}

int CmdInterpret(const std::string& model, const std::string& params, const std::vector<std::string>& inputs,
                 const std::string& output_dir, bool train, uint64_t seed) {
  std::map<std::string, Tensor> values;
  std::map<std::string, Shape> shapes;
  for (const auto& text : inputs) {
    const auto [name, file] = ParseInputFile(text);
    values[name] = LoadNpy(file);
    shapes[name] = values[name].shape();
  }
  const Graph graph = LoadModel(model, params, shapes);
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

int CmdCompile(const std::string& model, const std::string& params, const std::vector<std::string>& inputs,
               const std::string& output, const std::string& target, const std::string& cpu,
               const std::string& features, int opt_level, bool no_embed) {
  if (target != "cpu") throw Error("--target '" + target + "': only 'cpu' is available in this build");
  const auto start = std::chrono::steady_clock::now();
  const Graph graph = LoadModel(model, params, ShapeArgs(inputs));
  CompileOptions options;
  options.target.cpu = cpu;
  options.target.features = features;
  options.target.opt_level = opt_level;
  options.embed_params = !no_embed;
  for (const auto& text : inputs) {
    const auto [name, shape] = ParseInputShape(text);
    options.input_shapes[name] = shape;
  }
  const proto::ArtifactProto artifact = CompileGraph(graph, options);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  SaveArtifact(output, artifact);
  std::cout << "compiled " << model << " -> " << output << " in " << seconds << " s: " << artifact.kernels_size()
            << " kernels, arena " << artifact.arena_bytes() << " bytes, code " << artifact.code().size()
            << " bytes, cpu " << artifact.target().cpu() << "\n";
  return 0;
}

std::map<std::string, Tensor> ReadInputs(const Executor& executor, const std::vector<std::string>& inputs,
                                         bool random_missing) {
  std::map<std::string, Tensor> values;
  for (const auto& text : inputs) {
    const auto [name, file] = ParseInputFile(text);
    values[name] = LoadNpy(file);
  }
  if (random_missing) {
    std::mt19937_64 rng(0);
    std::uniform_real_distribution<double> dist(0.0, 1.0);
    for (const auto& spec : executor.inputs()) {
      if (values.count(spec.name)) continue;
      Tensor t(spec.shape, spec.dtype);
      for (int64_t i = 0; i < t.size(); ++i) t.SetDouble(i, dist(rng));
      values[spec.name] = t;
    }
  }
  return values;
}

int CmdRun(const std::string& artifact, const std::vector<std::string>& inputs, const std::string& output_dir,
           int threads) {
  ExecutorOptions options;
  options.threads = threads;
  const auto executor = Executor::Load(artifact, options);
  const auto values = ReadInputs(*executor, inputs, false);
  const auto start = std::chrono::steady_clock::now();
  const auto outputs = executor->Run(values);
  const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  if (!output_dir.empty()) std::filesystem::create_directories(output_dir);
  for (size_t i = 0; i < outputs.size(); ++i) {
    const std::string& name = executor->outputs()[i].name;
    std::cout << name << " " << ShapeToString(outputs[i].shape()) << " " << DTypeName(outputs[i].dtype()) << "  "
              << Summary(outputs[i]) << "\n";
    if (outputs[i].size() <= 16) {
      std::cout << "  [";
      for (int64_t k = 0; k < outputs[i].size(); ++k) std::cout << (k ? ", " : "") << outputs[i].GetDouble(k);
      std::cout << "]\n";
    }
    if (!output_dir.empty()) SaveNpy(output_dir + "/" + name + ".npy", outputs[i]);
  }
  std::cout << "latency " << ms << " ms (first run)\n";
  return 0;
}

// Time per kernel over `iters` runs, the slowest first: where a model spends its time.
void PrintProfile(const Executor& executor, const std::map<std::string, Tensor>& values, int iters) {
  std::vector<Tensor> ordered;
  for (const auto& spec : executor.inputs()) ordered.push_back(values.at(spec.name));
  std::vector<double> seconds;
  for (int i = 0; i < iters; ++i) executor.Run(ordered, &seconds);
  double total = 0;
  for (const double s : seconds) total += s;
  std::vector<size_t> order(seconds.size());
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return seconds[a] > seconds[b]; });
  std::cout << "  per kernel (mean over " << iters << " runs, slowest first):\n";
  for (const size_t k : order) {
    std::printf("  %9.4f ms %5.1f%%  %s\n", 1e3 * seconds[k] / iters, total > 0 ? 100 * seconds[k] / total : 0.0,
                executor.kernel_node(k).c_str());
  }
}

int CmdBench(const std::string& artifact, const std::vector<std::string>& inputs, int threads, int iters, int warmup,
             bool json, bool profile) {
  ExecutorOptions options;
  options.threads = threads;
  const auto executor = Executor::Load(artifact, options);
  const auto values = ReadInputs(*executor, inputs, true);
  for (int i = 0; i < warmup; ++i) executor->Run(values);
  std::vector<double> ms;
  const auto total_start = std::chrono::steady_clock::now();
  for (int i = 0; i < iters; ++i) {
    const auto start = std::chrono::steady_clock::now();
    executor->Run(values);
    ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count());
  }
  const double total = std::chrono::duration<double>(std::chrono::steady_clock::now() - total_start).count();
  std::sort(ms.begin(), ms.end());
  const auto at = [&](double q) { return ms[std::min(ms.size() - 1, static_cast<size_t>(q * (ms.size() - 1) + 0.5))]; };
  const double throughput = iters / total;
  if (json) {
    nlohmann::json j = {{"artifact", artifact},          {"threads", threads},   {"iters", iters},
                        {"min_ms", ms.front()},          {"median_ms", at(0.5)}, {"p90_ms", at(0.9)},
                        {"throughput_per_s", throughput}};
    std::cout << j.dump(2) << "\n";
    return 0;
  }
  std::cout << artifact << ": " << iters << " runs, threads " << (threads == 0 ? "all" : std::to_string(threads))
            << "\n  latency min " << ms.front() << " ms, median " << at(0.5) << " ms, p90 " << at(0.9)
            << " ms\n  throughput " << throughput << " runs/s\n";
  if (profile) PrintProfile(*executor, values, iters);
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

  auto* inspect = app.add_subcommand("inspect", "Print a model's or an artifact's contents, shapes and sizes");
  inspect
      ->add_option("MODEL", model,
                   "Graph file (.kiln-graph binary, .pbtxt/.txt text), ONNX model (.onnx) or artifact (.kiln)")
      ->required();
  inspect->add_option("--params", params, "Parameter file to bind (else embedded parameters)");
  inspect->add_option("--input", inputs, "Input shape NAME:DxDxD (repeatable)");
  inspect->add_flag("--json", json, "Print JSON");

  auto* viz = app.add_subcommand("viz", "Write a Graphviz DOT picture of a model");
  viz->add_option("MODEL", model, "Graph file or ONNX model")->required();
  viz->add_option("-o,--output", output, "Output .dot file")->required();
  viz->add_option("--params", params, "Parameter file");
  viz->add_option("--input", inputs, "Input shape NAME:DxDxD (repeatable)");

  auto* interpret = app.add_subcommand("interpret", "Run a model with the reference interpreter (the oracle)");
  interpret->add_option("MODEL", model, "Graph file or ONNX model")->required();
  interpret->add_option("--params", params, "Parameter file");
  interpret->add_option("--input", inputs, "Input NAME=FILE.npy (repeatable)");
  interpret->add_option("--output-dir", output, "Write each output as DIR/NAME.npy");
  interpret->add_flag("--train", train, "Training mode (BatchNorm batch statistics, Dropout)");
  interpret->add_option("--seed", seed, "Seed for random operators and Dropout");

  auto* export_onnx = app.add_subcommand("export", "Write a model as ONNX (opset 17)");
  export_onnx->add_option("MODEL", model, "Graph file (or ONNX model)")->required();
  export_onnx->add_option("-o,--output", output, "Output .onnx file")->required();
  export_onnx->add_option("--params", params, "Parameter file");
  export_onnx->add_option("--input", inputs, "Input shape NAME:DxDxD (repeatable)");

  std::string target = "cpu";
  std::string cpu = "host";
  std::string features;
  int opt_level = 2;
  bool no_embed = false;
  auto* compile = app.add_subcommand("compile", "Compile a model into an artifact (.kiln)");
  compile->add_option("MODEL", model, "Graph file with embedded parameters (or see --params), or ONNX model (.onnx)")
      ->required();
  compile->add_option("-o,--output", output, "Output artifact")->required();
  compile->add_option("--params", params, "Parameter file");
  compile->add_option("--input", inputs, "Input shape NAME:DxDxD (repeatable); e.g. data:8x3x224x224");
  compile->add_option("--target", target, "Target: cpu");
  compile->add_option("--cpu", cpu, "CPU to compile for: host (default), x86-64-v2, x86-64-v3, skylake-avx512, ...");
  compile->add_option("--features", features, "Extra CPU features, LLVM style: +avx2,+fma");
  compile->add_option("-O,--opt-level", opt_level, "Optimization level 0-3 (-O0 ... -O3)")->check(CLI::Range(0, 3));
  compile->add_flag("--no-embed-params", no_embed, "Leave parameters out of the artifact (bind at load)");

  int threads = 0;
  auto* run = app.add_subcommand("run", "Run an artifact on .npy inputs");
  run->add_option("ARTIFACT", model, "Compiled artifact")->required();
  run->add_option("--input", inputs, "Input NAME=FILE.npy (repeatable)");
  run->add_option("--output-dir", output, "Write each output as DIR/NAME.npy");
  run->add_option("--threads", threads, "Threads (0: all cores)");

  int iters = 100;
  int warmup = 5;
  auto* bench = app.add_subcommand("bench", "Measure an artifact's latency and throughput");
  bench->add_option("ARTIFACT", model, "Compiled artifact")->required();
  bench->add_option("--input", inputs, "Input NAME=FILE.npy (others: random)");
  bench->add_option("--threads", threads, "Threads (0: all cores)");
  bench->add_option("--iters", iters, "Timed runs")->check(CLI::Range(1, 1000000));
  bench->add_option("--warmup", warmup, "Untimed runs first")->check(CLI::Range(0, 1000000));
  bench->add_flag("--json", json, "Print JSON");
  bool profile = false;
  bench->add_flag("--profile", profile, "Also time every kernel (the graph node it computes), slowest first");

  // -O2 style flags: CLI11 wants "-O 2"; accept the compiler spelling too.
  std::vector<std::string> args(argv, argv + argc);
  for (auto& arg : args) {
    if (arg.size() == 3 && arg[0] == '-' && arg[1] == 'O' && arg[2] >= '0' && arg[2] <= '3')
      arg = "--opt-level=" + arg.substr(2);
  }
  std::vector<char*> pointers;
  for (auto& arg : args) pointers.push_back(arg.data());
  CLI11_PARSE(app, static_cast<int>(pointers.size()), pointers.data());
  if (*compile) return CmdCompile(model, params, inputs, output, target, cpu, features, opt_level, no_embed);
  if (*run) return CmdRun(model, inputs, output, threads);
  if (*bench) return CmdBench(model, inputs, threads, iters, warmup, json, profile);
  if (*ops) return CmdOps(json);
  if (*inspect) return CmdInspect(model, params, inputs, json);
  if (*viz) return CmdViz(model, params, inputs, output);
  if (*export_onnx) return CmdExport(model, params, inputs, output);
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
