// Writes the fuzzers' seed corpora and dictionaries (tests/fuzz/make_corpus.sh runs it):
//
//   make_seeds OUT_DIR [--golden tests/golden/data] [--onnx-dir DIR]
//
// OUT_DIR/corpus/<target>/ gets small, valid inputs that reach deep (tensors of every
// dtype, small graphs, one single-node graph per operator case of the MXNet golden
// files, compiled artifacts, attribute texts, shape-inference cases, ONNX models);
// OUT_DIR/dict/<target>.dict the formats' magic numbers, protobuf field tags, operator
// and attribute names. Seeds are deterministic: running it again rewrites the same files.
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "codegen/compiler.h"
#include "codegen/cuda/cuda_emitter.h"
#include "graph/op.h"
#include "passes/graph_io.h"
#include "runtime/artifact.h"
#include "runtime/error.h"
#include "runtime/file_util.h"
#include "runtime/npy.h"
#include "runtime/param_file.h"
#include "symbol/onnx/onnx.pb.h"
#include "symbol/onnx/onnx_import.h"
#include "tests/test_models.h"

namespace kiln {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

fs::path g_out;
std::map<std::string, int> g_counts;

void Write(const fs::path& path, std::string_view bytes) {
  fs::create_directories(path.parent_path());
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  if (!out) throw Error("cannot write " + path.string());
}

void Seed(const std::string& target, const std::string& name, std::string_view bytes) {
  Write(g_out / "corpus" / target / name, bytes);
  ++g_counts[target];
}

// A file name from free text: letters, digits, '-' and '_' kept, the rest '_'.
std::string FileName(std::string text) {
  for (char& c : text) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_' && c != '.') c = '_';
  }
  return text.substr(0, 80);
}

// --- dictionaries ------------------------------------------------------------------

std::string DictEscape(std::string_view value) {
  std::string out = "\"";
  for (unsigned char c : value) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c >= 0x20 && c < 0x7f) {
      out += static_cast<char>(c);
    } else {
      char hex[5];
      std::snprintf(hex, sizeof hex, "\\x%02X", c);
      out += hex;
    }
  }
  return out + "\"";
}

struct Dict {
  explicit Dict(std::string text) : header(std::move(text)) {}
  std::string header;
  std::vector<std::string> entries;
  std::set<std::string> seen;
  void Add(std::string_view value) {
    if (!value.empty() && seen.insert(std::string(value)).second) entries.emplace_back(value);
  }
  void Add(std::initializer_list<std::string_view> values) {
    for (auto v : values) Add(v);
  }
  void Save(const std::string& target) const {
    std::string text =
        "# " + header + "\n# Written by tests/fuzz/make_seeds.cc (make_corpus.sh); libFuzzer -dict format.\n";
    for (const auto& entry : entries) text += DictEscape(entry) + "\n";
    Write(g_out / "dict" / (target + ".dict"), text);
  }
};

// A protobuf field key: (number << 3) | wire type, as a varint.
std::string Tag(uint32_t field, uint32_t wire) {
  uint64_t key = (uint64_t{field} << 3) | wire;
  std::string out;
  while (key >= 0x80) {
    out += static_cast<char>((key & 0x7f) | 0x80);
    key >>= 7;
  }
  out += static_cast<char>(key);
  return out;
}
constexpr uint32_t kVarint = 0, kFixed64 = 1, kLen = 2, kFixed32 = 5;

std::vector<std::string> OpNames() {
  std::vector<std::string> names;
  for (const OpDef* op : OpRegistry::Global().List()) {
    names.push_back(op->name());
    for (const auto& alias : op->aliases()) names.push_back(alias);
  }
  return names;
}

std::set<std::string> AttrNames() {
  std::set<std::string> names;
  for (const OpDef* op : OpRegistry::Global().List()) {
    for (const auto& field : op->attr_fields()) names.insert(field.name);
  }
  return names;
}

std::set<std::string> AttrChoices() {
  std::set<std::string> choices;
  for (const OpDef* op : OpRegistry::Global().List()) {
    for (const auto& field : op->attr_fields()) choices.insert(field.choices.begin(), field.choices.end());
  }
  return choices;
}

const std::vector<std::string_view> kDTypeNames = {"float32", "float64", "float16", "uint8",
                                                   "int32",   "int8",    "int64",   "bool"};

void TensorProtoTags(Dict& dict) {
  // proto/tensor.proto TensorProto: name 1, dtype 2, shape 3 (packed), data 4.
  dict.Add({Tag(1, kLen), Tag(2, kVarint), Tag(3, kLen), Tag(3, kVarint), Tag(4, kLen)});
}

void WriteDicts() {
  Dict npy{"NumPy .npy (runtime/npy.cc): magic, versions, header keys, dtype descriptors."};
  npy.Add({"\x93NUMPY",
           std::string("\x01\x00", 2),
           std::string("\x02\x00", 2),
           std::string("\x03\x00", 2),
           "{'descr': '",
           "'descr'",
           "'fortran_order'",
           "'shape'",
           "True",
           "False",
           ": ",
           ", ",
           "(",
           ")",
           ",)",
           "{",
           "}",
           "\n",
           "'<f4'",
           "'<f8'",
           "'<f2'",
           "'|i1'",
           "'<i4'",
           "'<i8'",
           "'|u1'",
           "'|b1'",
           "'>f4'",
           "'<u4'",
           "'<c8'",
           "'|O'",
           "'<U4'",
           "<f4",
           "<f8",
           "<f2",
           "|i1",
           "<i4",
           "<i8",
           "|u1",
           "|b1",
           ">f4",
           "=f4",
           "0x",
           "-1",
           "4294967296",
           "9223372036854775807"});
  npy.Save("npy");

  Dict params{
      "Parameter files: kiln's (proto/tensor.proto ParamFileProto), MXNet's NDArray lists, NumPy's .npz: magics "
      "and field tags."};
  params.Add({"kiln.params", Tag(1, kLen), Tag(2, kVarint), Tag(3, kLen), Tag(4, kVarint), Tag(2047, kVarint),
              "arg:", "aux:", "weight", "bias"});
  // MXNet: the list magic 0x112 and the array magics V1-V3 (little-endian); zip headers.
  params.Add({std::string_view("\x12\x01\0\0\0\0\0\0", 8), "\xc8\xfa\x93\xf9", "\xc9\xfa\x93\xf9", "\xca\xfa\x93\xf9",
              "PK\x03\x04", "PK\x01\x02", "PK\x05\x06", ".npy"});
  TensorProtoTags(params);
  params.Save("params");

  Dict graph{"Binary graphs (proto/graph.proto): magic, field tags, operator and attribute names."};
  graph.Add({"kiln.graph", Tag(1, kLen), Tag(2, kVarint), Tag(3, kLen), Tag(4, kLen), Tag(5, kLen), Tag(6, kLen),
             Tag(2047, kVarint)});
  // NodeProto: name 1, op 2, attrs 3, inputs 4, has_shape 5, shape 6, has_dtype 7, dtype 8.
  graph.Add({Tag(1, kLen), Tag(2, kLen), Tag(3, kLen), Tag(4, kLen), Tag(5, kVarint), Tag(6, kLen), Tag(6, kVarint),
             Tag(7, kVarint), Tag(8, kVarint)});
  // AttrValueProto: none 1, b 2, i 3, f 4 (double), s 5, ints 6, floats 7; EntryRef node 1, index 2.
  graph.Add(
      {Tag(1, kVarint), Tag(2, kVarint), Tag(3, kVarint), Tag(4, kFixed64), Tag(5, kLen), Tag(6, kLen), Tag(7, kLen)});
  TensorProtoTags(graph);
  for (const auto& name : OpNames()) graph.Add(name);
  for (const auto& name : AttrNames()) graph.Add(name);
  for (const auto& choice : AttrChoices()) graph.Add(choice);
  graph.Save("graph");

  Dict text{"Text graphs (proto/graph.proto in protobuf text format): field names, operators, attributes."};
  text.Add({"magic: \"kiln.graph\"",
            "format_version: 1",
            "producer_version: ",
            "nodes {",
            "}",
            "name: ",
            "op: ",
            "attrs {",
            "value {",
            "inputs {",
            "node: ",
            "index: ",
            "has_shape: true",
            "shape: [",
            "]",
            "has_dtype: true",
            "dtype: ",
            "outputs {",
            "entry {",
            "parameters {",
            "data: ",
            "complete: true",
            "none: true",
            "b: true",
            "b: false",
            "i: ",
            "f: ",
            "s: ",
            "ints {",
            "floats {",
            "values: [",
            "values: ",
            "\"",
            "\\x",
            "\\",
            "#",
            "inf",
            "nan",
            "-1",
            "18446744073709551615",
            "9223372036854775808"});
  for (const auto& name : OpNames()) text.Add("\"" + name + "\"");
  for (const auto& name : AttrNames()) text.Add("\"" + name + "\"");
  for (const auto& choice : AttrChoices()) text.Add("\"" + choice + "\"");
  text.Save("graph_text");

  Dict artifact{"Artifacts (proto/artifact.proto behind the KILNART header): magic, field tags, targets."};
  artifact.Add({std::string("KILNART\0", 8), "kiln.artifact",
                "\x7f"
                "ELF",
                "x86_64-pc-linux-gnu", "aarch64", "x86-64", "x86-64-v2", "x86-64-v3", "x86-64-v4", "avx2", "avx512f",
                "fma", "sse4.2", "f16c"});
  // ArtifactProto fields 1..14.
  for (uint32_t field : {1u, 3u, 4u, 6u, 7u, 8u, 9u, 11u, 12u, 13u}) artifact.Add(Tag(field, kLen));
  for (uint32_t field : {2u, 5u, 10u, 14u}) artifact.Add(Tag(field, kVarint));
  // TensorSpec name 1, dtype 2, shape 3; BufferRef kind 1, index 2, offset 3, bytes 4; KernelCall symbol 1,
  // node 2, parallel_extent 3, args 4.
  artifact.Add(
      {Tag(1, kVarint), Tag(2, kVarint), Tag(3, kVarint), Tag(3, kLen), Tag(4, kVarint), Tag(4, kLen), Tag(2, kLen)});
  TensorProtoTags(artifact);
  artifact.Add({"kiln_", "kiln_x_", std::string("\xff\xff\xff\xff\xff\xff\xff\xff\x7f", 9),
                std::string("\x80\x80\x80\x80\x80\x80\x80\x80\x80\x01", 10)});
  artifact.Save("artifact");
  artifact.header = "Artifacts for the executor (checksum recomputed by the harness): as artifact.dict.";
  artifact.Save("executor");
  artifact.header = "GPU artifacts for the CUDA executor (checksum recomputed by the harness): as artifact.dict.";
  artifact.Save("cuda_executor");

  Dict onnx{"ONNX models (onnx.proto): field tags, operator types, attribute names."};
  // ModelProto: ir_version 1, producer_name 2, graph 7, opset_import 8; OperatorSetIdProto domain 1, version 2.
  onnx.Add({Tag(1, kVarint), Tag(2, kLen), Tag(7, kLen), Tag(8, kLen), Tag(2, kVarint)});
  // GraphProto: node 1, name 2, initializer 5, input 11, output 12, value_info 13.
  onnx.Add({Tag(1, kLen), Tag(5, kLen), Tag(11, kLen), Tag(12, kLen), Tag(13, kLen)});
  // NodeProto: input 1, output 2, name 3, op_type 4, attribute 5, domain 7.
  onnx.Add({Tag(3, kLen), Tag(4, kLen), Tag(7, kLen)});
  // AttributeProto: name 1, f 2, i 3, s 4, t 5, g 6, floats 7, ints 8, strings 9, type 20.
  onnx.Add({Tag(2, kFixed32), Tag(3, kVarint), Tag(4, kLen), Tag(6, kLen), Tag(7, kLen), Tag(7, kFixed32), Tag(8, kLen),
            Tag(8, kVarint), Tag(9, kLen), Tag(20, kVarint)});
  // TensorProto: dims 1, data_type 2, float_data 4, int32_data 5, int64_data 7, name 8, raw_data 9,
  // double_data 10, data_location 14; TypeProto tensor_type 1; Tensor elem_type 1, shape 2; Dimension
  // dim_value 1, dim_param 2.
  onnx.Add({Tag(1, kVarint), Tag(4, kLen), Tag(5, kLen), Tag(7, kLen), Tag(8, kLen), Tag(9, kLen), Tag(10, kLen),
            Tag(14, kVarint)});
  onnx.Add({"ai.onnx", "ai.onnx.ml", "com.microsoft", "batch", "N"});
  for (const auto& op : SupportedOnnxOps()) onnx.Add(op);
  onnx.Add({"Loop", "If", "Scan", "RNN", "LSTM", "GRU", "NonZero", "Einsum", "Resize", "ConstantOfShape"});
  onnx.Add({"axis",
            "axes",
            "keepdims",
            "kernel_shape",
            "pads",
            "strides",
            "dilations",
            "group",
            "auto_pad",
            "SAME_UPPER",
            "SAME_LOWER",
            "VALID",
            "NOTSET",
            "perm",
            "shape",
            "value",
            "value_float",
            "value_int",
            "value_ints",
            "alpha",
            "beta",
            "transA",
            "transB",
            "epsilon",
            "momentum",
            "ceil_mode",
            "count_include_pad",
            "to",
            "split",
            "starts",
            "ends",
            "mode",
            "min",
            "max",
            "allowzero",
            "direction",
            "exclusive",
            "reverse",
            "largest",
            "sorted",
            "k",
            "blocksize",
            "noop_with_empty_axes",
            "storage_order",
            "training_mode",
            "seed",
            "dtype",
            "high",
            "low",
            "mean",
            "scale"});
  onnx.Save("onnx");

  Dict mxnet{"MXNet symbol JSON: keys, hidden attributes, operator and attribute names (quoted)."};
  mxnet.Add({"\"nodes\"", "\"op\"", "\"name\"", "\"attrs\"", "\"attr\"", "\"param\"", "\"inputs\"", "\"arg_nodes\"",
             "\"heads\"", "\"node_row_ptr\"", "\"null\"", "\"__shape__\"", "\"__dtype__\"", "\"__init__\"", "[0, 0, 0]",
             "\"(1, 3, 224, 224)\""});
  for (const auto& name : OpNames()) mxnet.Add("\"" + name + "\"");
  for (const auto& name : AttrNames()) mxnet.Add("\"" + name + "\"");
  mxnet.Save("mxnet_symbol");

  Dict attrs{"Attribute values in MXNet's text spelling (symbol/attrs.cc)."};
  attrs.Add({"None",
             "True",
             "False",
             "true",
             "false",
             "(",
             ")",
             "[",
             "]",
             ",",
             ", ",
             ",)",
             "()",
             "L",
             "l",
             "+",
             "-",
             "inf",
             "+inf",
             "-inf",
             "Infinity",
             "-Infinity",
             "nan",
             "NaN",
             "e+",
             "e-",
             "e308",
             "e-324",
             "0x",
             ".",
             "9223372036854775807",
             "-9223372036854775808",
             "9223372036854775808",
             "1e19",
             "9e18",
             " ",
             "\t"});
  for (auto name : kDTypeNames) attrs.Add(name);
  for (const auto& choice : AttrChoices()) attrs.Add(choice);
  attrs.Save("attrs");

  Dict shape{"Shape inference cases (tests/fuzz/shape_fuzz.cc): operators, attribute keys, dims."};
  shape.Add({"\nin=",
             "in=None",
             "in=()",
             "\n",
             "=",
             "(",
             ")",
             ",",
             ", ",
             "-1",
             "-2",
             "-3",
             "-4",
             "0",
             "1",
             "None",
             "True",
             "False",
             "9223372036854775807",
             "4294967296",
             "2147483648"});
  for (const auto& name : OpNames()) shape.Add(name + "\n");
  for (const auto& name : AttrNames()) shape.Add("\n" + name + "=");
  for (const auto& choice : AttrChoices()) shape.Add(choice);
  for (auto name : kDTypeNames) shape.Add(name);
  shape.Save("shape");
}

// --- tensors and parameter files -----------------------------------------------------

Tensor Iota(Shape shape, DType dtype) {
  const int64_t n = NumElements(shape);
  std::vector<double> values(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) values[static_cast<size_t>(i)] = (i % 7) - 3 + 0.25 * (dtype == DType::kFloat32);
  return Tensor::FromDoubles(std::move(shape), values, dtype);
}

void WriteTensorSeeds() {
  const std::vector<std::pair<DType, Shape>> cases = {{DType::kFloat32, {2, 3}},  {DType::kFloat64, {}},
                                                      {DType::kFloat16, {4}},     {DType::kUInt8, {3, 1}},
                                                      {DType::kInt32, {2, 2}},    {DType::kInt8, {5}},
                                                      {DType::kInt64, {1, 2, 1}}, {DType::kBool, {2, 2}},
                                                      {DType::kFloat32, {0, 3}},  {DType::kFloat32, {1, 1, 2, 2}}};
  std::vector<Tensor> tensors;
  for (const auto& [dtype, shape] : cases) {
    Tensor t = dtype == DType::kBool ? Tensor(shape, dtype) : Iota(shape, dtype);
    tensors.push_back(t);
    Seed("npy",
         std::string(DTypeName(dtype)) + "_" + std::to_string(shape.size()) + "d_" +
             std::to_string(NumElements(shape)) + ".npy",
         SerializeNpy(t));
  }
  ParamList named;
  named.named = true;
  named.tensors = {{"arg:fc1_weight", tensors[0]}, {"arg:fc1_bias", tensors[2]}, {"aux:bn_moving_mean", tensors[6]}};
  Seed("params", "named.params", SerializeParams(named));
  ParamList list;
  list.named = false;
  list.tensors = {{"", tensors[1]}, {"", tensors[4]}, {"", tensors[7]}};
  Seed("params", "list.params", SerializeParams(list));
  ParamList empty;
  Seed("params", "empty.params", SerializeParams(empty));
  ParamList dtypes;
  for (size_t i = 0; i < tensors.size(); ++i) dtypes.tensors.push_back({"t" + std::to_string(i), tensors[i]});
  Seed("params", "every_dtype.params", SerializeParams(dtypes));
}

// --- graphs, artifacts -----------------------------------------------------------------

void GraphSeeds(const std::string& name, const Graph& graph) {
  Seed("graph", name + ".kiln-graph", SerializeGraph(graph));
  Seed("graph_text", name + ".pbtxt", SerializeGraphText(graph));
}

// Artifacts: with their code for the artifact target; without it for the executor
// target, which never loads code (smaller seeds, mutations where they matter).
void ArtifactSeeds(const std::string& name, const proto::ArtifactProto& artifact) {
  Seed("artifact", name + ".kiln", SerializeArtifact(artifact));
  proto::ArtifactProto no_code = artifact;
  no_code.clear_code();
  no_code.clear_graph_summary();
  Seed("executor", name + ".kiln", SerializeArtifact(no_code));
}

void Compile(const std::string& name, const Graph& graph, bool embed_params,
             const std::map<std::string, Shape>& input_shapes = {}) {
  CompileOptions options;
  options.input_shapes = input_shapes;
  options.target.cpu = "x86-64-v2";  // runs on any machine the tests run on
  options.embed_params = embed_params;
  try {
    ArtifactSeeds(name, CompileGraph(graph, options));
  } catch (const Error& e) {
    std::cerr << "make_seeds: " << name << " does not compile: " << e.what() << "\n";
  }
}

// GPU artifacts (kiln compile --target cuda) with their launch forms but no PTX (the
// fake device of the cuda_executor target loads none), so NVRTC is not needed here.
void CudaSeed(const std::string& name, const Graph& graph, const std::map<std::string, Shape>& input_shapes) {
  CompileOptions options;
  options.input_shapes = input_shapes;
  options.cuda = CompileOptions::Cuda{};  // lowered for CUDA: library steps, block reductions
  LoweredGraph lowered = LowerGraph(graph, options);
  for (const auto& kernel : cuda::EmitCudaModule(lowered.kernels).kernels) {
    *lowered.artifact.mutable_cuda()->add_kernels() = cuda::LaunchForm(kernel);
  }
  lowered.artifact.mutable_cuda()->set_ptx_arch("compute_80");
  lowered.artifact.clear_graph_summary();
  Seed("cuda_executor", name + ".kiln", SerializeArtifact(lowered.artifact));
}

void WriteCudaSeeds() {
  const Symbol x = Symbol::Variable("x", Shape{2, 3, 6, 6});
  const Symbol pooled =
      Symbol::Create("Pooling", {Symbol::Create("Activation", {x * 2.0 + 1.0}, {{"act_type", "relu"}})},
                     {{"kernel", "(2,2)"}, {"stride", "(2,2)"}, {"pool_type", "max"}});
  CudaSeed("pool", Symbol::Create("softmax", {pooled}, {{"axis", -1}}).ToGraph(), {});
  const Symbol c = Symbol::Variable("c", Shape{1, 3, 1, 1});
  Graph with_params = Symbol::Create("broadcast_add", {x, c}).ToGraph();
  with_params.params["c"] = Tensor::FromDoubles({1, 3, 1, 1}, std::vector<double>{1, 2, 3});
  CudaSeed("broadcast_param", with_params, {});
  CudaSeed("sum", Symbol::Create("sum", {x}, {{"axis", 1}}).ToGraph(), {});
  // A cuBLAS step with its epilogue pass, a convolution's im2col and GEMM, a block reduction.
  const Graph mlp = testing::WithRandomParams(testing::TestMlp(8), {{"data", {2, 12}}}, 1);
  CudaSeed("mlp_gemm", mlp, {{"data", {2, 12}}});
  // The same lowering on the CPU: the executor's library GEMM steps (kir is target-neutral).
  CompileOptions steps;
  steps.input_shapes = {{"data", {2, 12}}};
  steps.target.cpu = "x86-64-v2";
  steps.cuda = CompileOptions::Cuda{};
  LoweredGraph lowered = LowerGraph(mlp, steps);
  lowered.artifact.set_code(CompileSharedObject(lowered.kernels, steps.target));
  ArtifactSeeds("mlp_gemm_steps", lowered.artifact);
  const Symbol w = Symbol::Variable("w", Shape{4, 3, 3, 3});
  Graph conv =
      Symbol::Create("Convolution", {x, w}, {{"kernel", "(3,3)"}, {"num_filter", 4}, {"no_bias", true}}).ToGraph();
  conv.params["w"] = Tensor::FromDoubles({4, 3, 3, 3}, std::vector<double>(108, 0.25));
  CudaSeed("conv_gemm", conv, {});
  CudaSeed("block_sum", Symbol::Create("sum", {Symbol::Variable("y", Shape{2, 300})}, {{"axis", 1}}).ToGraph(), {});
}

void WriteModelSeeds() {
  const Graph mlp = testing::WithRandomParams(testing::TestMlp(8), {{"data", {2, 12}}}, 1);
  GraphSeeds("mlp", mlp);
  Compile("mlp", mlp, /*embed_params=*/true, {{"data", {2, 12}}});
  Compile("mlp_no_params", mlp, /*embed_params=*/false, {{"data", {2, 12}}});
  // Batch specializations (kiln compile --batch-sizes): variants whose weights share bytes.
  try {
    CompileOptions options;
    options.input_shapes = {{"data", {2, 12}}};
    options.target.cpu = "x86-64-v2";
    options.batch_sizes = {1, 2};
    Seed("artifact", "mlp_batch_sizes.kiln", SerializeArtifact(CompileGraph(mlp, options)));
  } catch (const Error& e) {
    std::cerr << "make_seeds: mlp_batch_sizes does not compile: " << e.what() << "\n";
  }

  // LeNet without its weights (they would be most of the bytes): declared data shape.
  Graph lenet = testing::TestLeNet(16).ToGraph();
  GraphSeeds("lenet_structure", lenet);
  const Graph lenet_params = testing::WithRandomParams(testing::TestLeNet(16), {{"data", {1, 1, 28, 28}}}, 2);
  Compile("lenet_no_params", lenet_params, /*embed_params=*/false, {{"data", {1, 1, 28, 28}}});
}

std::map<std::string, AttrValue> TextAttrs(const json& attrs) {
  std::map<std::string, AttrValue> given;
  for (const auto& [key, value] : attrs.items()) {
    given[key] = value.is_string() ? value.get<std::string>() : value.dump();
  }
  return given;
}

std::string Spell(const Shape& shape) {
  std::string text = "(";
  for (size_t i = 0; i < shape.size(); ++i) text += (i ? ", " : "") + std::to_string(shape[i]);
  return text + (shape.size() == 1 ? ",)" : ")");
}

// Field `name` of `op`, or nullptr.
const AttrField* FindField(const OpDef& op, const std::string& name) {
  return op.FindField(name);
}

uint8_t AttrsMode(const AttrField& field) {
  // tests/fuzz/attrs_fuzz.cc: type in bits 0..2, nullable bit 3, choices bit 5.
  uint8_t mode = static_cast<uint8_t>(field.type);
  if (field.nullable) mode |= 8;
  if (!field.choices.empty()) mode |= 32;
  return mode;
}

void AttrSeed(const AttrField& field, const std::string& text, std::set<std::string>& seen) {
  const std::string bytes = std::string(1, static_cast<char>(AttrsMode(field))) + text;
  if (!seen.insert(bytes).second) return;
  Seed("attrs", FileName(std::string(AttrTypeName(field.type))) + "_" + std::to_string(seen.size()), bytes);
}

void WriteOperatorSeeds(const fs::path& golden_dir) {
  std::set<std::string> attr_seen;
  std::set<std::string> shape_seen;
  std::set<std::string> ops_with_cases;
  const auto shape_seed = [&](const std::string& op, const std::string& text) {
    if (!shape_seen.insert(text).second) return;
    Seed("shape", FileName(op) + "_" + std::to_string(shape_seen.size()), text);
  };

  // Every declared attribute's default, spelled as MXNet does.
  for (const OpDef* op : OpRegistry::Global().List()) {
    for (const auto& field : op->attr_fields()) {
      if (field.default_value) AttrSeed(field, FormatAttrValue(*field.default_value), attr_seen);
    }
  }
  AttrField any;
  for (int type = 0; type < 7; ++type) {
    any.type = static_cast<AttrType>(type);
    for (const char* text : {"(3, 3)", "[1,2]", "(2,)", "()", "None", "True", "false", "2L", "inf", "-Infinity", "nan",
                             "1e-5", "float16", " 7 ", "(1.5, -2)"}) {
      AttrSeed(any, text, attr_seen);
    }
  }

  std::vector<fs::path> files;
  if (fs::is_directory(golden_dir)) {
    for (const auto& entry : fs::directory_iterator(golden_dir)) {
      if (entry.path().extension() == ".json") files.push_back(entry.path());
    }
  }
  std::sort(files.begin(), files.end());
  int graphs = 0;
  int compiled = 0;
  for (const auto& path : files) {
    std::ifstream in(path);
    const json doc = json::parse(in);
    const OpDef* op = OpRegistry::Global().Find(doc["op"].get<std::string>());
    if (op == nullptr) continue;
    ops_with_cases.insert(op->name());
    int per_op = 0;
    for (const auto& c : doc["cases"]) {
      const json attrs_json = c.value("attrs", json::object());
      // Attribute texts as the golden files give them.
      for (const auto& [key, value] : attrs_json.items()) {
        if (const AttrField* field = FindField(*op, key); field != nullptr && value.is_string()) {
          AttrSeed(*field, value.get<std::string>(), attr_seen);
        }
      }
      // Shape inference: the operator, its attributes, its input shapes (the first
      // few cases of each operator, expected errors included).
      std::string text = op->name() + "\n";
      for (const auto& [key, value] : attrs_json.items()) {
        text += key + "=" + (value.is_string() ? value.get<std::string>() : value.dump()) + "\n";
      }
      std::vector<std::pair<std::string, Shape>> inputs;
      bool all_known = true;
      for (const auto& input : c["inputs"]) {
        const json shape = input.value("shape", json());
        if (!shape.is_array()) {
          all_known = false;
          text += "in=None\n";
          continue;
        }
        inputs.push_back({input["name"].get<std::string>(), shape.get<Shape>()});
        text += "in=" + Spell(inputs.back().second) + "\n";
      }
      if (per_op++ >= 4) continue;
      shape_seed(op->name(), text);
      if (c.contains("expect_error") || !all_known) continue;

      // A one-node graph with declared input shapes: graph and text seeds.
      try {
        std::vector<NodeEntry> entries;
        for (const auto& [name, shape] : inputs) {
          entries.push_back(NodeEntry{Node::Variable(name, shape, DType::kFloat32), 0});
        }
        const Attrs attrs = op->ParseAttrs(TextAttrs(attrs_json), "node");
        if (entries.size() != op->NumInputs(attrs)) continue;
        const NodePtr node = Node::Create(*op, "node", attrs, entries);
        Graph graph;
        for (uint32_t i = 0; i < node->num_outputs(); ++i) graph.outputs.push_back(NodeEntry{node, i});
        const std::string name = FileName(op->name() + "_" + c["desc"].get<std::string>());
        GraphSeeds(name, graph);
        ++graphs;
        // A few compiled: every operator family's kernels in the executor's hands.
        static const std::set<std::string> kCompile = {"Convolution", "Pooling",       "FullyConnected", "softmax",
                                                       "Concat",      "broadcast_add", "transpose",      "BatchNorm",
                                                       "sum",         "take"};
        if (kCompile.count(op->name()) && per_op == 1) {
          Compile(name, graph, /*embed_params=*/true);
          ++compiled;
        }
      } catch (const Error& e) {
        std::cerr << "make_seeds: no graph for " << op->name() << " '" << c["desc"] << "': " << e.what() << "\n";
      }
    }
  }
  // Operators without golden cases: the operator alone and on one 4-d input.
  for (const OpDef* op : OpRegistry::Global().List()) {
    if (ops_with_cases.count(op->name())) continue;
    shape_seed(op->name(), op->name() + "\nin=(2, 3, 4, 5)\n");
  }
  std::cerr << "make_seeds: " << graphs << " one-node graphs, " << compiled << " compiled\n";
}

// --- ONNX ---------------------------------------------------------------------------------

// ONNX's backend node tests (onnx/backend/test/data/node/*/model.onnx, from the onnx
// Python package): the smallest model of each operator kiln imports, and a few it does
// not (they exercise the error reports).
void WriteOnnxSeeds(const fs::path& dir) {
  if (!fs::is_directory(dir)) {
    std::cerr << "make_seeds: no ONNX test models at " << dir << "; onnx seeds are the committed ones\n";
    return;
  }
  const auto supported_list = SupportedOnnxOps();
  const std::set<std::string> supported(supported_list.begin(), supported_list.end());
  std::vector<fs::path> models;
  for (const auto& entry : fs::directory_iterator(dir)) {
    const fs::path model = entry.path() / "model.onnx";
    if (fs::is_regular_file(model) && fs::file_size(model) <= 4096) models.push_back(model);
  }
  std::sort(models.begin(), models.end());
  std::set<std::string> imported_ops;
  std::set<std::string> rejected_ops;
  for (const auto& path : models) {
    const std::string bytes = ReadFile(path.string());
    onnx::ModelProto model;
    if (!model.ParseFromString(bytes) || model.graph().node_size() == 0) continue;
    const std::string op = model.graph().node(0).op_type();
    const std::string name = FileName(path.parent_path().filename().string()) + ".onnx";
    if (imported_ops.count(op)) continue;
    // The onnx package's tests use the newest opsets; kiln reads 7 to 17. Models of
    // newer opsets are tried again as opset 17 (IR version 8): seeds need to import,
    // not to match an opset's semantics.
    std::string downgraded;
    for (auto& opset : *model.mutable_opset_import()) {
      if ((opset.domain().empty() || opset.domain() == "ai.onnx") && opset.version() > kMaxOnnxOpset) {
        opset.set_version(kMaxOnnxOpset);
        model.set_ir_version(std::min<int64_t>(model.ir_version(), 8));
        downgraded = model.SerializeAsString();
      }
    }
    bool imported = false;
    for (const std::string* candidate : std::vector<const std::string*>{&bytes, &downgraded}) {
      if (imported || candidate->empty()) continue;
      try {
        ImportOnnxBytes(*candidate, {}, path.string());
        imported = true;
        imported_ops.insert(op);
        Seed("onnx", name, *candidate);
      } catch (const Error&) {
      }
    }
    if (!imported && !supported.count(op) && rejected_ops.size() < 8 && rejected_ops.insert(op).second) {
      Seed("onnx", name, bytes);
    }
  }
  std::cerr << "make_seeds: ONNX models of " << imported_ops.size() << " operators kiln imports, "
            << rejected_ops.size() << " it rejects\n";
}

int Main(int argc, char** argv) {
  if (argc < 2) {
    std::cerr << "usage: make_seeds OUT_DIR [--golden DIR] [--onnx-dir DIR]\n";
    return 2;
  }
  g_out = argv[1];
  fs::path golden = "tests/golden/data";
  fs::path onnx_dir;
  for (int i = 2; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    if (flag == "--golden") {
      golden = argv[i + 1];
    } else if (flag == "--onnx-dir") {
      onnx_dir = argv[i + 1];
    } else {
      std::cerr << "make_seeds: unknown option " << flag << "\n";
      return 2;
    }
  }
  WriteDicts();
  WriteTensorSeeds();
  WriteModelSeeds();
  WriteCudaSeeds();
  WriteOperatorSeeds(golden);
  if (!onnx_dir.empty()) WriteOnnxSeeds(onnx_dir);
  for (const auto& [target, count] : g_counts) std::cerr << "make_seeds: " << target << ": " << count << " seeds\n";
  return 0;
}

}  // namespace
}  // namespace kiln

int main(int argc, char** argv) {
  try {
    return kiln::Main(argc, argv);
  } catch (const std::exception& e) {
    std::cerr << "make_seeds: " << e.what() << "\n";
    return 1;
  }
}
