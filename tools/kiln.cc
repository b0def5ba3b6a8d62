// The kiln command line: a thin main over the libraries. The grammar (options and their
// checks) is tools/cli/command_line; this file runs what it parsed.
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <numeric>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "codegen/compile_cache.h"
#include "codegen/compiler.h"
#include "codegen/lower_group.h"
#include "graph/op.h"
#include "passes/fusion.h"
#include "passes/graph_io.h"
#include "passes/infer_shape.h"
#include "passes/interpreter.h"
#include "runtime/artifact.h"
#include "runtime/context.h"
#include "runtime/cuda_executor.h"
#include "runtime/error.h"
#include "runtime/executor.h"
#include "runtime/file_util.h"
#include "runtime/npy.h"
#include "runtime/param_file.h"
#include "runtime/param_formats.h"
#include "runtime/signing.h"
#include "serve/serve_main.h"
#include "symbol/mxnet/mxnet_export.h"
#include "symbol/mxnet/mxnet_import.h"
#include "symbol/onnx/onnx_export.h"
#include "symbol/onnx/onnx_import.h"
#include "tools/cli/command_line.h"
#include "train/train_command.h"

namespace kiln {
namespace {

using cli::CommandLine;

// A parameter file's tensors by name. MXNet's checkpoints prefix names with "arg:" and
// "aux:"; kiln's names do not.
std::map<std::string, Tensor> LoadNamedParams(const std::string& path) {
  std::map<std::string, Tensor> named;
  for (const auto& [name, tensor] : LoadAnyParams(path).tensors) {
    std::string key = name;
    if (key.rfind("arg:", 0) == 0 || key.rfind("aux:", 0) == 0) key = key.substr(4);
    named[key] = tensor;
  }
  return named;
}

// A kiln graph file, or an ONNX model (imported with `input_shapes`: by default the
// --input shapes), with the --params file's parameters.
Graph LoadModel(const CommandLine& line, const std::map<std::string, Shape>& input_shapes) {
  // MXNet's symbol JSON takes its --params (model-0000.params) at import, checked
  // against the symbol's variables.
  if (line.model.ends_with(".json")) return ImportMxnet(line.model, line.params, {input_shapes});
  Graph graph = line.model.ends_with(".onnx") ? ImportOnnx(line.model, input_shapes) : LoadGraphFile(line.model);
  if (!line.params.empty()) {
    for (auto& [name, tensor] : LoadNamedParams(line.params)) graph.params[name] = std::move(tensor);
  }
  return graph;
}

Graph LoadModel(const CommandLine& line) {
  return LoadModel(line, line.input_shapes);
}

// Shapes known from embedded parameters and --input.
std::map<std::string, Shape> KnownShapes(const Graph& graph, const CommandLine& line) {
  std::map<std::string, Shape> known = graph.ParamShapes();
  for (const auto& [name, shape] : line.input_shapes) known[name] = shape;
  return known;
}

std::vector<PublicKey> LoadTrustedKeys(const CommandLine& line) {
  std::vector<PublicKey> keys;
  for (const auto& path : line.trusted_keys) keys.push_back(LoadPublicKey(path));
  return keys;
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

nlohmann::json SignatureJson(const SignatureInfo& signature) {
  if (!signature.is_signed) return {{"signed", false}};
  return {{"signed", true},
          {"signer", signature.signer.name},
          {"fingerprint", signature.signer.fingerprint()},
          {"trusted", signature.trusted}};
}

// Only verified signatures get here: opening the envelope refuses any other.
std::string SignatureText(const SignatureInfo& signature) {
  if (!signature.is_signed) return "unsigned (loading it runs its code: trust it as you would a shared library)";
  return "signed by " + signature.signer.label() + ", signature valid" + (signature.trusted ? ", key trusted" : "");
}

int InspectArtifact(const CommandLine& line, const std::string& bytes) {
  const std::string& path = line.model;
  // With --trusted-key the signer must be trusted. Parameters and code stay in `bytes`.
  const ArtifactView view = OpenArtifact(bytes, path, LoadTrustedKeys(line));
  const SignatureInfo& signature = view.signature;
  const proto::ArtifactProto& artifact = view.message;
  const bool json = line.json;
  nlohmann::json j;
  j["kind"] = "artifact";
  j["format_version"] = artifact.format_version();
  j["producer_version"] = artifact.producer_version();
  j["target"] = {
      {"triple", artifact.target().triple()},
      {"cpu", artifact.target().cpu()},
      {"features", std::vector<std::string>(artifact.target().features().begin(), artifact.target().features().end())}};
  if (artifact.has_cuda()) {
    nlohmann::json cubins = nlohmann::json::object();
    for (const auto& [arch, cubin] : artifact.cuda().cubins()) cubins[arch] = cubin.size();
    j["target"] = {{"cuda",
                    {{"ptx_arch", artifact.cuda().ptx_arch()},
                     {"ptx_bytes", artifact.cuda().ptx().size()},
                     {"cubins", cubins},
                     {"nvrtc_version", artifact.cuda().nvrtc_version()},
                     {"allow_tf32", artifact.cuda().allow_tf32()}}}};
  }
  j["opt_level"] = artifact.opt_level();
  j["inputs"] = nlohmann::json::array();
  for (const auto& spec : artifact.inputs()) j["inputs"].push_back(SpecJson(spec));
  j["outputs"] = nlohmann::json::array();
  for (const auto& spec : artifact.outputs()) j["outputs"].push_back(SpecJson(spec));
  size_t parameter_bytes = 0;
  for (const std::string_view data : view.param_data) parameter_bytes += data.size();
  j["parameters"] = artifact.params_size();
  j["parameter_bytes"] = parameter_bytes;
  j["parameters_embedded"] = artifact.param_values_size() == artifact.params_size();
  j["kernels"] = artifact.kernels_size();
  j["arena_bytes"] = artifact.arena_bytes();
  j["code_bytes"] = view.code.size();
  // Batch specializations (kiln compile --batch-sizes): each batch's kernels, arena, code.
  j["batch_sizes"] = nlohmann::json::array();
  if (artifact.batch_size() > 0) {
    j["batch_sizes"].push_back({{"batch_size", artifact.batch_size()},
                                {"kernels", artifact.kernels_size()},
                                {"arena_bytes", artifact.arena_bytes()},
                                {"code_bytes", view.code.size()}});
  }
  for (const ArtifactView& variant : view.batch_variants) {
    j["batch_sizes"].push_back({{"batch_size", variant.message.batch_size()},
                                {"kernels", variant.message.kernels_size()},
                                {"arena_bytes", variant.message.arena_bytes()},
                                {"code_bytes", variant.code.size()}});
  }
  j["signature"] = SignatureJson(signature);
  const proto::CompileReportProto& report = artifact.report();
  j["kernels_before_fusion"] = report.kernels_before_fusion();
  j["fused_groups"] = nlohmann::json::array();
  for (const auto& group : report.fused_groups()) {
    j["fused_groups"].push_back({{"kernel", group.kernel()},
                                 {"members", std::vector<std::string>(group.members().begin(), group.members().end())},
                                 {"pattern", group.pattern()},
                                 {"anchor", group.anchor()}});
  }
  j["arena_lower_bound_bytes"] = report.arena_lower_bound_bytes();
  j["no_reuse_bytes"] = report.no_reuse_bytes();
  j["memory_planner"] = report.memory_planner();
  j["memory_planners"] = {{"free_list", report.free_list_bytes()}, {"greedy_by_size", report.greedy_bytes()}};
  j["inplace"] = report.inplace_count();
  j["passes"] = nlohmann::json::array();
  for (const auto& pass : report.passes()) {
    nlohmann::json changes = nlohmann::json::object();
    for (const auto& [kind, count] : pass.changes()) changes[kind] = count;
    j["passes"].push_back({{"name", pass.name()},
                           {"nodes_before", pass.nodes_before()},
                           {"nodes_after", pass.nodes_after()},
                           {"changes", changes}});
  }
  if (json) {
    std::cout << j.dump(2) << "\n";
    return 0;
  }
  std::cout << "artifact " << path << " (format " << artifact.format_version() << ", kiln "
            << artifact.producer_version() << ")\n";
  std::cout << "signature: " << SignatureText(signature) << "\n";
  if (artifact.has_cuda()) {
    std::cout << "target: cuda, PTX " << artifact.cuda().ptx_arch() << " (" << artifact.cuda().ptx().size()
              << " bytes)";
    for (const auto& [arch, cubin] : artifact.cuda().cubins())
      std::cout << ", cubin " << arch << " (" << cubin.size() << " bytes)";
    std::cout << ", NVRTC " << artifact.cuda().nvrtc_version()
              << (artifact.cuda().allow_tf32() ? ", TF32 products allowed" : "") << "\n";
  } else {
    std::cout << "target: " << artifact.target().triple() << ", cpu " << artifact.target().cpu() << ", -O"
              << artifact.opt_level() << "\n";
  }
  for (const auto& spec : j["inputs"])
    std::cout << "input  " << spec["name"].get<std::string>() << " " << spec["shape"].dump() << " "
              << spec["dtype"].get<std::string>() << "\n";
  for (const auto& spec : j["outputs"])
    std::cout << "output " << spec["name"].get<std::string>() << " " << spec["shape"].dump() << " "
              << spec["dtype"].get<std::string>() << "\n";
  std::cout << "parameters: " << artifact.params_size() << " (" << parameter_bytes << " bytes"
            << (j["parameters_embedded"].get<bool>() ? ", embedded" : ", bound at load") << ")\n";
  std::cout << "kernels: " << artifact.kernels_size() << ", arena: " << artifact.arena_bytes()
            << " bytes, code: " << view.code.size() << " bytes\n";
  for (const auto& batch : j["batch_sizes"]) {
    std::cout << "batch " << batch["batch_size"] << ": " << batch["kernels"] << " kernels, arena "
              << batch["arena_bytes"] << " bytes, code " << batch["code_bytes"] << " bytes\n";
  }
  std::cout << "memory: arena " << artifact.arena_bytes() << " bytes, lower bound " << report.arena_lower_bound_bytes()
            << ", without reuse " << report.no_reuse_bytes() << " (" << report.memory_planner() << ", "
            << report.inplace_count() << " in place)\n";
  std::cout << "fusion: " << report.kernels_before_fusion() << " kernels before, " << report.kernels() << " after, "
            << report.fused_groups_size() << " fused groups\n";
  for (const auto& group : report.fused_groups()) {
    std::cout << "  " << group.kernel() << ": ";
    for (int m = 0; m < group.members_size(); ++m) std::cout << (m ? " + " : "") << group.members(m);
    std::cout << " (" << group.pattern() << ")\n";
  }
  if (report.passes_size() > 0) std::cout << "passes:\n";
  for (const auto& pass : report.passes()) {
    PassRecord record;
    record.name = pass.name();
    record.nodes_before = pass.nodes_before();
    record.nodes_after = pass.nodes_after();
    record.changes = PassChanges(pass.changes().begin(), pass.changes().end());
    std::cout << "  " << record.Summary() << "\n";
  }
  for (const auto& kernel : artifact.kernels()) {
    if (kernel.has_gemm()) {
      const auto& g = kernel.gemm();
      std::cout << "  GEMM step " << g.m() << "x" << g.n() << "x" << g.k() << (g.batch() > 1 ? " batch " : "")
                << (g.batch() > 1 ? std::to_string(g.batch()) : "") << "  (node " << kernel.node() << ")\n";
      continue;
    }
    std::cout << "  " << kernel.symbol() << "  (node " << kernel.node() << ", parallel " << kernel.parallel_extent()
              << ")\n";
  }
  return 0;
}

// A parameter file: every array's name (MXNet's arg:/aux: prefixes included), shape and
// dtype (NumPy's names) and bytes.
int InspectParams(const CommandLine& line, const std::string& bytes, ParamFormat format) {
  const ParamList params = ParseAnyParams(bytes, line.model);
  uint64_t total = 0;
  nlohmann::json arrays = nlohmann::json::array();
  for (const auto& [name, tensor] : params.tensors) {
    total += tensor.nbytes();
    arrays.push_back({{"name", name},
                      {"shape", tensor.shape()},
                      {"dtype", std::string(DTypeName(tensor.dtype()))},
                      {"bytes", tensor.nbytes()}});
  }
  if (line.json) {
    const nlohmann::json j = {{"kind", "parameters"},
                              {"format", ParamFormatName(format)},
                              {"named", params.named},
                              {"arrays", arrays},
                              {"bytes", total}};
    std::cout << j.dump(2) << "\n";
    return 0;
  }
  std::cout << "parameters " << line.model << " (" << ParamFormatName(format) << ", " << params.tensors.size()
            << " arrays" << (params.named ? "" : ", unnamed") << ", " << total << " bytes)\n";
  for (const auto& array : arrays) {
    std::cout << "  " << array["name"].get<std::string>() << " " << array["shape"].dump() << " "
              << array["dtype"].get<std::string>() << "\n";
  }
  return 0;
}

int CmdConvert(const CommandLine& line) {
  std::optional<ParamFormat> format =
      line.format.empty() ? ParamFormatForPath(line.output) : ParamFormatFromName(line.format);
  if (!format) {
    throw Error("-o '" + line.output +
                "': give the output format with --format mxnet|npz|kiln, or an extension .params, .npz or "
                ".kiln-params");
  }
  const ParamList params = LoadAnyParams(line.model);
  SaveParamsAs(line.output, params, *format);
  std::cout << "wrote " << line.output << " (" << ParamFormatName(*format) << ", " << params.tensors.size()
            << " arrays)\n";
  return 0;
}

int CmdInspect(const CommandLine& line) {
  const std::string bytes = ReadFile(line.model);
  if (const auto format = DetectParamFormat(bytes)) return InspectParams(line, bytes, *format);
  // An artifact by its magic, or by its extension (a damaged one is then called a
  // damaged artifact, not "not a kiln graph").
  if (LooksLikeArtifact(bytes) || line.model.ends_with(".kiln")) return InspectArtifact(line, bytes);
  if (!line.trusted_keys.empty()) throw Error("--trusted-key applies to artifacts; '" + line.model + "' is a model");
  const std::string& model = line.model;
  const bool json = line.json;
  Graph graph = LoadModel(line);
  InferShape(graph, KnownShapes(graph, line));
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

int CmdViz(const CommandLine& line) {
  Graph graph = LoadModel(line);
  const std::string title = std::filesystem::path(line.model).stem().string();
  if (line.fusion) {
    // The graph as -O2 compiles it, each fused kernel boxed around its members.
    CompileOptions options;
    options.input_shapes = line.input_shapes;
    const LoweredGraph lowered = LowerGraph(graph, options);
    std::vector<DotCluster> clusters;
    for (const FusionGroup& group : lowered.graph.GetAttr<FusionGroups>("fusion_groups")) {
      if (group.nodes.size() < 2) continue;
      clusters.push_back({GroupName(lowered.graph.indexed(), group), group.nodes});
    }
    WriteFileAtomic(line.output, GraphToDot(lowered.graph, title + " (fused)", clusters));
    std::cout << "wrote " << line.output << ": " << clusters.size() << " fused kernels\n";
    return 0;
  }
  InferShape(graph, KnownShapes(graph, line));
  WriteFileAtomic(line.output, GraphToDot(graph, title));
  std::cout << "wrote " << line.output << "\n";
  return 0;
}

int CmdExport(const CommandLine& line) {
  const Graph graph = LoadModel(line);
  if (line.mxnet) {
    for (const std::string& path : ExportMxnet(graph, line.output)) std::cout << "wrote " << path << "\n";
    return 0;
  }
  SaveOnnx(line.output, graph, line.input_shapes);
  std::cout << "wrote " << line.output << "\n";
  return 0;
}

// Prints each output's shape, dtype and summary (and its values when there are few),
// and writes it as DIR/NAME.npy when an output directory is given.
void ReportOutputs(const std::vector<std::string>& names, const std::vector<Tensor>& outputs,
                   const std::string& output_dir) {
  if (!output_dir.empty()) CreateOutputDirectory(output_dir);
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
}

int CmdInterpret(const CommandLine& line) {
  std::map<std::string, Tensor> values;
  std::map<std::string, Shape> shapes;
  for (const auto& [name, file] : line.input_files) {
    values[name] = LoadNpy(file);
    shapes[name] = values[name].shape();
  }
  const Graph graph = LoadModel(line, shapes);
  InterpretOptions options;
  options.is_train = line.train;
  options.seed = line.seed;
  const auto outputs = Interpret(graph, values, options);
  ReportOutputs(graph.OutputNames(), outputs, line.output);
  return 0;
}

// The compiled model's inputs that nobody named: weights of a graph saved without its
// parameters, which would silently become runtime inputs. A graph's own declared inputs
// (ONNX inputs, variables declared with a shape) and --input names are real inputs.
std::vector<std::string> UnboundWeights(const Graph& graph, const proto::ArtifactProto& artifact,
                                        const CommandLine& line) {
  std::set<std::string> declared;
  const IndexedGraph& indexed = graph.indexed();
  for (const size_t id : indexed.input_node_ids()) {
    if (indexed.node(id).shape) declared.insert(indexed.node(id).name);
  }
  std::vector<std::string> weights;
  for (const auto& spec : artifact.inputs()) {
    if (line.input_shapes.count(spec.name()) == 0 && declared.count(spec.name()) == 0) weights.push_back(spec.name());
  }
  return weights;
}

std::string JoinNames(const std::vector<std::string>& names, size_t at_most = 8) {
  const auto shown = static_cast<std::ptrdiff_t>(std::min(names.size(), at_most));
  std::string text = fmt::format("{}", fmt::join(names.begin(), names.begin() + shown, ", "));
  if (names.size() > at_most) text += fmt::format(", ... ({} in all)", names.size());
  return text;
}

int CmdCompile(const CommandLine& line) {
  // The key is read first: a bad key file must not cost a compile.
  std::optional<KeyPair> signer;
  if (!line.sign_key.empty()) signer = LoadSecretKey(line.sign_key);
  const auto start = std::chrono::steady_clock::now();
  const Graph graph = LoadModel(line);
  CompileOptions options;
  options.target.cpu = line.cpu;
  options.target.features = line.features;
  options.target.opt_level = line.opt_level;
  options.embed_params = !line.no_embed_params;
  options.input_shapes = line.input_shapes;
  options.graph_opt_level = line.graph_opt_level;
  options.batch_sizes = line.batch_sizes;
  if (line.target == "cuda") options.cuda = CompileOptions::Cuda{line.cuda_archs, line.allow_tf32};
  if (!line.passes.empty()) options.passes.passes = line.passes;
  options.passes.disabled.insert(line.disabled_passes.begin(), line.disabled_passes.end());
  if (!line.dump_after_each.empty()) {
    CreateOutputDirectory(line.dump_after_each);
    options.passes.after_each = [dir = line.dump_after_each](int index, const std::string& pass, const Graph& graph) {
      char prefix[8];
      std::snprintf(prefix, sizeof prefix, "%02d_", index);
      const std::string base = dir + "/" + prefix + pass;
      WriteFileAtomic(base + ".txt", DumpGraph(graph));
      WriteFileAtomic(base + ".dot", GraphToDot(graph, pass));
    };
  }
  const double import_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  // With --batch-sizes the model is imported again at each batch size (an ONNX import
  // bakes the batch into reshapes).
  const proto::ArtifactProto artifact = line.batch_sizes.empty()
                                            ? CompileGraph(graph, options)
                                            : CompileBatchSpecializations(
                                                  [&](int64_t batch) {
                                                    std::map<std::string, Shape> shapes = line.input_shapes;
                                                    for (auto& [name, shape] : shapes) {
                                                      if (!shape.empty()) shape[0] = batch;
                                                    }
                                                    return WithInputBatch(LoadModel(line, shapes), batch);
                                                  },
                                                  options);
  if (const auto weights = UnboundWeights(graph, artifact, line); !weights.empty() && !line.params_as_inputs) {
    throw Error(std::to_string(weights.size()) + " input(s) of '" + line.model + "' have no value and no --input: " +
                JoinNames(weights) + ". They look like weights saved without their values: give --params FILE, " +
                "name real inputs with --input NAME:SHAPE, or pass --params-as-inputs to make them runtime inputs");
  }
  const auto before_write = std::chrono::steady_clock::now();
  SaveArtifact(line.output, artifact, signer ? &*signer : nullptr);
  const auto end = std::chrono::steady_clock::now();
  const double seconds = std::chrono::duration<double>(end - start).count();
  std::cout << "compiled " << line.model << " -> " << line.output << " in " << seconds
            << " s: " << artifact.kernels_size() << " kernels, arena " << artifact.arena_bytes() << " bytes, code "
            << artifact.code().size() << " bytes, ";
  if (artifact.has_cuda()) {
    std::cout << "cuda: PTX " << artifact.cuda().ptx_arch() << " (" << artifact.cuda().ptx().size() << " bytes)";
    for (const auto& [arch, cubin] : artifact.cuda().cubins())
      std::cout << ", cubin " << arch << " (" << cubin.size() << " bytes)";
    std::cout << "\n";
  } else {
    std::cout << "cpu " << artifact.target().cpu() << "\n";
  }
  for (const auto& variant : artifact.batch_variants()) {
    std::cout << "  batch " << variant.batch_size() << ": " << variant.kernels_size() << " kernels, arena "
              << variant.arena_bytes() << " bytes, code " << variant.code().size() << " bytes\n";
  }
  if (line.time_report) {
    // Where the time went: reading the model, the compiler's stages, writing the file.
    std::cout << "  import " << import_seconds << " s\n";
    for (const auto& stage : artifact.report().stage_times()) {
      std::cout << "  " << stage.stage() << " " << stage.seconds() << " s\n";
      if (stage.stage() != "passes") continue;
      for (const auto& pass : artifact.report().passes()) {
        std::cout << "    " << pass.name() << " " << pass.seconds() << " s\n";
      }
    }
    std::cout << "  write " << std::chrono::duration<double>(end - before_write).count() << " s\n";
  }
  if (signer) std::cout << "signed by " << signer->public_part().label() << "\n";
  return 0;
}

// Loads an artifact for run and bench: signature policy, threads, and parameters from
// --params (artifacts compiled with --no-embed-params).
std::unique_ptr<Executor> LoadExecutor(const CommandLine& line) {
  ExecutorOptions options;
  options.threads = line.threads;
  options.trusted_keys = LoadTrustedKeys(line);
  auto executor = Executor::Load(line.model, options);
  if (!line.params.empty()) executor->BindParams(LoadNamedParams(line.params), /*allow_extra=*/true);
  if (const auto missing = executor->MissingParams(); !missing.empty()) {
    throw Error("'" + line.model + "' was compiled without its parameters (--no-embed-params)" +
                (line.params.empty() ? std::string(": give them with --params FILE")
                                     : ", and '" + line.params + "' lacks some") +
                "; missing: " + JoinNames(missing));
  }
  return executor;
}

std::map<std::string, Tensor> ReadInputs(const std::vector<TensorSpec>& specs, const CommandLine& line,
                                         bool random_missing) {
  std::map<std::string, Tensor> values;
  for (const auto& [name, file] : line.input_files) values[name] = LoadNpy(file);
  if (random_missing) {
    std::mt19937_64 rng(0);
    std::uniform_real_distribution<double> dist(0.0, 1.0);
    for (const auto& spec : specs) {
      if (values.count(spec.name)) continue;
      Tensor t(spec.shape, spec.dtype);
      for (int64_t i = 0; i < t.size(); ++i) t.SetDouble(i, dist(rng));
      values[spec.name] = t;
    }
  }
  return values;
}

double MillisecondsSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
}

// An artifact of GPU code on GPU --gpu (0 by default; a clear error where there is none).
std::unique_ptr<CudaExecutor> LoadGpuExecutor(const CommandLine& line) {
  CudaExecutorOptions options;
  options.trusted_keys = LoadTrustedKeys(line);
  return CudaExecutor::Load(line.model, GpuDevice(line.gpu.value_or(0)), options);
}

// kiln run on a GPU.
int RunOnGpu(const CommandLine& line) {
  const auto load_start = std::chrono::steady_clock::now();
  const auto executor = LoadGpuExecutor(line);
  const double load_ms = MillisecondsSince(load_start);
  const auto values = ReadInputs(executor->inputs(), line, false);
  const auto start = std::chrono::steady_clock::now();
  const auto outputs = executor->Run(values);
  const double ms = MillisecondsSince(start);
  std::vector<std::string> names;
  for (const auto& spec : executor->outputs()) names.push_back(spec.name);
  ReportOutputs(names, outputs, line.output);
  std::cout << "device " << executor->device().name() << "; load " << load_ms << " ms; latency " << ms
            << " ms (first run, with the CUDA Graph's capture)\n";
  return 0;
}

int CmdRun(const CommandLine& line) {
  const auto load_start = std::chrono::steady_clock::now();
  std::unique_ptr<Executor> executor;
  try {
    executor = LoadExecutor(line);
  } catch (const GpuArtifactError&) {
    return RunOnGpu(line);  // an artifact of GPU code (kiln compile --target cuda)
  }
  const double load_ms = MillisecondsSince(load_start);
  const auto values = ReadInputs(executor->inputs(), line, false);
  const auto start = std::chrono::steady_clock::now();
  const auto outputs = executor->Run(values);
  const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  std::vector<std::string> names;
  for (const auto& spec : executor->outputs()) names.push_back(spec.name);
  ReportOutputs(names, outputs, line.output);
  std::cout << "load " << load_ms << " ms (" << executor->mapped_param_bytes()
            << " bytes of parameters used in place)\n";
  std::cout << "latency " << ms << " ms (first run)\n";
  return 0;
}

int CmdKeygen(const CommandLine& line) {
  const KeyPair key_pair = GenerateKeyPair(line.key_name);
  SaveKeyPair(line.output, key_pair, line.force);
  std::cout << "wrote " << line.output << " (secret key: keep it private) and " << line.output
            << ".pub (public key: give it to whoever runs your artifacts)\n"
            << "key " << key_pair.public_part().label() << "\n";
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

int CmdBench(const CommandLine& line) {
  const std::string& artifact = line.model;
  const int threads = line.threads;
  const int iters = line.iters;
  const bool json = line.json;
  const auto load_start = std::chrono::steady_clock::now();
  // An artifact of CPU code, or of GPU code (the CUDA executor on GPU --gpu, 0 by default).
  std::unique_ptr<Executor> executor;
  std::unique_ptr<CudaExecutor> gpu;
  try {
    executor = LoadExecutor(line);
  } catch (const GpuArtifactError&) {
    gpu = LoadGpuExecutor(line);
  }
  const double load_ms = MillisecondsSince(load_start);
  const auto values = ReadInputs(executor ? executor->inputs() : gpu->inputs(), line, true);
  const auto run = [&] { executor ? executor->Run(values) : gpu->Run(values); };
  const auto first_start = std::chrono::steady_clock::now();
  run();  // the first run, reported apart; it counts as a warm-up run
  const double first_ms = MillisecondsSince(first_start);
  for (int i = 1; i < line.warmup; ++i) run();
  std::vector<double> ms;
  const auto total_start = std::chrono::steady_clock::now();
  for (int i = 0; i < iters; ++i) {
    const auto start = std::chrono::steady_clock::now();
    run();
    ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count());
  }
  const double total = std::chrono::duration<double>(std::chrono::steady_clock::now() - total_start).count();
  std::sort(ms.begin(), ms.end());
  const auto at = [&](double q) { return ms[std::min(ms.size() - 1, static_cast<size_t>(q * (ms.size() - 1) + 0.5))]; };
  const double throughput = iters / total;
  // On a GPU, the kernels' device time alone (the CUDA Graph replayed, no copies).
  const double device_ms = gpu ? gpu->SecondsPerCall(iters) * 1e3 : 0;
  if (json) {
    nlohmann::json j = {{"artifact", artifact},           {"threads", threads},   {"iters", iters},
                        {"min_ms", ms.front()},           {"median_ms", at(0.5)}, {"p90_ms", at(0.9)},
                        {"throughput_per_s", throughput}, {"load_ms", load_ms},   {"first_run_ms", first_ms}};
    if (gpu) {
      j["device"] = gpu->device().name();
      j["device_ms"] = device_ms;
    }
    std::cout << j.dump(2) << "\n";
    return 0;
  }
  std::cout << artifact << ": " << iters << " runs, threads " << (threads == 0 ? "all" : std::to_string(threads))
            << "\n  latency min " << ms.front() << " ms, median " << at(0.5) << " ms, p90 " << at(0.9)
            << " ms\n  throughput " << throughput << " runs/s\n  load " << load_ms << " ms, first run " << first_ms
            << " ms\n";
  if (gpu) {
    std::cout << "  device " << gpu->device().name() << ": " << device_ms
              << " ms a call (kernels only, the CUDA Graph replayed; the latencies above include the copies)\n";
  }
  if (line.profile && executor) PrintProfile(*executor, values, iters);
  return 0;
}

int CmdTrain(const CommandLine& line) {
  TrainCommand command;
  command.data = LoadNpy(line.data_file);
  command.label = LoadNpy(line.label_file);
  // An ONNX model is imported for the batch's shape (its importer folds shapes): its data
  // input is --data-name, or its one input without a value.
  command.model = LoadModel(line);
  if (line.model.ends_with(".onnx") && command.data.ndim() > 0) {
    std::string data_name = line.data_name;
    if (data_name.empty()) {
      std::vector<std::string> inputs;
      for (const auto& name : command.model.ListInputs()) {
        if (!command.model.params.count(name)) inputs.push_back(name);
      }
      if (inputs.size() == 1) data_name = inputs[0];
    }
    if (!data_name.empty()) {
      Shape batch = command.data.shape();
      batch[0] = line.batch_size;
      command.model = LoadModel(line, {{data_name, batch}});
    }
  }
  command.data_name = line.data_name;
  command.loss = line.loss;
  command.init = line.init;
  command.optimizer = line.optimizer;
  command.optimizer_options = line.optimizer_options;
  command.batch_size = line.batch_size;
  command.steps = line.steps;
  command.epochs = line.epochs;
  command.shuffle = !line.no_shuffle;
  command.seed = line.seed;
  if (line.gpu) command.context = Context::gpu(*line.gpu);
  command.output = line.output;
  command.format = line.format;
  command.save_every_step = line.save_every_step;
  command.cache_dir = CompileCache::DefaultDir();
  RunTrainCommand(command);
  std::cout << "wrote " << line.output << "\n";
  return 0;
}

int Main(int argc, char** argv) {
  const cli::ParseOutcome parsed = cli::ParseCommandLine(std::vector<std::string>(argv, argv + argc));
  if (!parsed.command) {
    (parsed.exit_code == 0 ? std::cout : std::cerr) << parsed.message;
    return parsed.exit_code;
  }
  const CommandLine& line = *parsed.command;
  using Command = int (*)(const CommandLine&);
  static const std::map<std::string, Command> kCommands = {
      {"ops", [](const CommandLine& l) { return CmdOps(l.json); }},
      {"inspect", CmdInspect},
      {"viz", CmdViz},
      {"interpret", CmdInterpret},
      {"export", CmdExport},
      {"compile", CmdCompile},
      {"run", CmdRun},
      {"bench", CmdBench},
      {"keygen", CmdKeygen},
      {"convert", CmdConvert},
      {"train", CmdTrain},
  };
  return kCommands.at(line.command)(line);
}

}  // namespace
}  // namespace kiln

int main(int argc, char** argv) {
  // `kiln serve ...` is kiln-serve (serve/serve_main.cc), options and all.
  if (argc >= 2 && std::string_view(argv[1]) == "serve") return kiln::serve::ServeMain(argc - 1, argv + 1);
  try {
    return kiln::Main(argc, argv);
  } catch (const std::exception& e) {
    std::cerr << "kiln: error: " << e.what() << "\n";
    return 1;
  }
}
