// ONNX's backend node test cases (onnx/backend/test/data/node in the `onnx` package:
// each a model.onnx with input and output tensors) through kiln: import, compile with
// the JIT, run, compare. Every case of opset 7 to 17 whose operators kiln imports must
// pass, or be listed below with its reason. Cases kiln cannot import are counted by
// their reason (unsupported operator, attribute, type, opset).
//
// Data: $KILN_ONNX_NODE_TESTS, else the venv tools/install_python_deps.sh makes. Without
// it the test says it skipped and why.
//
// Tolerances: as ONNX's backend test runner (rtol 1e-3, atol 1e-7) for floats, with
// atol 1e-5 for float32 since kiln's transcendental functions are float32 (the
// reference outputs were computed by numpy, mostly in float64 then rounded). Integers
// and bools are exact.
#include <catch2/catch.hpp>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "codegen/compiler.h"
#include "runtime/error.h"
#include "runtime/file_util.h"
#include "symbol/onnx/onnx.pb.h"
#include "symbol/onnx/onnx_import.h"
#include "symbol/onnx/onnx_tensor.h"
#include "tests/op_test_util.h"

using namespace kiln;
namespace fs = std::filesystem;

namespace {

constexpr const char* kDefaultData = "/opt/kiln-py/lib/python3.11/site-packages/onnx/backend/test/data/node";

// Cases kiln imports but deliberately computes differently, each with its reason.
const std::map<std::string, std::string> kKnownFailures = {};

// What kiln leaves out, by category, with the reason: a not-imported case falls in the
// first category one of whose markers its reason contains.
struct Category {
  const char* name;
  const char* reason;
  std::vector<const char*> markers;
};

const std::vector<Category>& Categories() {
  static const std::vector<Category> categories = {
      {"strings",
       "kiln's tensors are numeric: text processing belongs before the compiled model",
       {"STRING", "StringNormalizer", "RegexFullMatch", "StringConcat", "StringSplit", "TfIdfVectorizer",
        "LabelEncoder"}},
      {"sequences, optionals, control flow",
       "kiln compiles static dataflow graphs of dense tensors: no sequence or optional values, no subgraphs",
       {"segmented tensors", "optional", "UNDEFINED", "Sequence", "Optional", "If:", "Loop:", "Scan:", "seq_", "opt_"}},
      {"training mode",
       "training graphs are compiled from kiln's own training API (issue 12), not imported",
       {"training_mode"}},
      {"random values",
       "the expected values come from numpy's generator, which kiln's seeded kernels do not replay",
       {"Bernoulli", "RandomUniformLike", "RandomNormalLike", "Multinomial"}},
      {"quantization and 8/4-bit types",
       "float8, int4, uint4, float4, int2 and the quantize/dequantize operators are not supported yet",
       {"type 17", "type 18", "type 19", "type 20", "type 21", "type 22", "type 23", "type 24", "type 25", "type 26",
        "Quantize", "QLinear", "Integer:", "BitCast"}},
      {"data-dependent shapes",
       "kiln plans memory ahead of time: output shapes must follow from input shapes, not values",
       {"NonZero", "Unique", "Compress", "NonMaxSuppression", "must be a constant"}},
      {"recurrent layers", "RNN, LSTM and GRU are not supported yet", {"RNN:", "LSTM:", "GRU:"}},
      {"signal, image and geometry operators",
       "not supported yet",
       {"DFT", "STFT", "Window", "MelWeightMatrix", "ImageDecoder", "GridSample", "AffineGrid", "RoiAlign",
        "DeformConv", "Col2Im", "CenterCropPad", "MaxUnpool"}},
      {"operators of opset 23 and later (attention variants, preview domain)",
       "not supported yet",
       {"LinearAttention", "CausalConvWithState", "FlexAttention", "RotaryEmbedding", "TensorScatter",
        "ai.onnx.preview", "CumProd"}},
      {"3-d convolution", "kiln's convolutions are 1-d and 2-d", {"Conv on input", "ConvTranspose on input"}},
      {"bitwise operators", "not supported yet", {"Bitwise", "BitShift"}},
      {"element types", "kiln's element types are MXNet's", {"element type", "cast to"}},
  };
  return categories;
}

std::string CategoryOf(const std::string& reason) {
  for (const Category& category : Categories()) {
    for (const char* marker : category.markers) {
      if (reason.find(marker) != std::string::npos) return category.name;
    }
  }
  return "other";
}

std::string DataDir() {
  const char* env = std::getenv("KILN_ONNX_NODE_TESTS");
  return env != nullptr ? env : kDefaultData;
}

int64_t DefaultOpset(const onnx::ModelProto& model) {
  for (const auto& entry : model.opset_import()) {
    if (entry.domain().empty() || entry.domain() == "ai.onnx") return entry.version();
  }
  return 1;
}

onnx::TensorProto ReadTensorProto(const fs::path& path) {
  onnx::TensorProto proto;
  if (!proto.ParseFromString(ReadFile(path.string()))) throw Error(path.string() + ": not a TensorProto");
  return proto;
}

// Sorted input_<k>.pb / output_<k>.pb files of one data set.
std::vector<fs::path> DataFiles(const fs::path& dir, const std::string& prefix) {
  std::vector<fs::path> files;
  for (size_t k = 0;; ++k) {
    const fs::path file = dir / (prefix + "_" + std::to_string(k) + ".pb");
    if (!fs::exists(file)) break;
    files.push_back(file);
  }
  return files;
}

// The first line of an import error's problem list: "<op> node '...' (opset N): reason".
std::string ImportReason(const std::string& message) {
  const auto newline = message.find('\n');
  std::string first = newline == std::string::npos ? message : message.substr(newline + 3);
  first = first.substr(0, first.find('\n'));
  // Group by operator and reason, without the node name.
  const auto node = first.find(" node '");
  const auto paren = first.find("' (opset");
  if (node != std::string::npos && paren != std::string::npos) {
    const auto colon = first.find("): ", paren);
    if (colon != std::string::npos) return first.substr(0, node) + ": " + first.substr(colon + 3);
  }
  return first;
}

struct CaseResult {
  enum Kind { kPassed, kFailed, kNotImported, kNewerOpset } kind;
  std::string detail;
};

CaseResult RunCase(const fs::path& dir) {
  onnx::ModelProto model;
  if (!model.ParseFromString(ReadFile((dir / "model.onnx").string()))) {
    return {CaseResult::kNotImported, "model.onnx does not parse with ONNX 1.12's schema"};
  }
  const int64_t opset = DefaultOpset(model);
  if (opset > kMaxOnnxOpset || opset < kMinOnnxOpset) {
    return {CaseResult::kNewerOpset, "opset " + std::to_string(opset)};
  }
  std::set<std::string> initializers;
  for (const auto& init : model.graph().initializer()) initializers.insert(init.name());
  std::vector<std::string> input_names;
  for (const auto& input : model.graph().input()) {
    if (initializers.count(input.name()) == 0) input_names.push_back(input.name());
  }
  const fs::path data = dir / "test_data_set_0";
  const auto input_files = DataFiles(data, "input");
  const auto output_files = DataFiles(data, "output");
  if (input_files.size() != input_names.size()) {
    return {CaseResult::kNotImported, "optional inputs left out of the data set"};
  }
  std::map<std::string, Tensor> inputs;
  OnnxImportOptions options;
  for (size_t i = 0; i < input_files.size(); ++i) {
    try {
      inputs[input_names[i]] = TensorFromOnnx(ReadTensorProto(input_files[i]), input_names[i]);
    } catch (const Error& e) {
      return {CaseResult::kNotImported, std::string("input data: ") + e.what()};
    }
    options.input_shapes[input_names[i]] = inputs[input_names[i]].shape();
  }
  Graph graph;
  try {
    graph = ImportOnnxModel(model, options);
  } catch (const Error& e) {
    // Shapes, axes and bounds given as inputs: kiln compiles them in, so import again
    // with the integer inputs, or else every input but the first (the data, which
    // compiled code still computes on), fixed to the case's values.
    if (std::string(e.what()).find("must be a constant") == std::string::npos) {
      return {CaseResult::kNotImported, ImportReason(e.what())};
    }
    for (const bool integers_only : {true, false}) {
      OnnxImportOptions frozen = options;
      for (size_t i = integers_only ? 0 : 1; i < input_names.size(); ++i) {
        const Tensor& value = inputs.at(input_names[i]);
        if (integers_only && IsFloat(value.dtype())) continue;
        frozen.constant_inputs[input_names[i]] = value;
        frozen.input_shapes.erase(input_names[i]);
      }
      try {
        graph = ImportOnnxModel(model, frozen);
        break;
      } catch (const Error& again) {
        if (!integers_only) return {CaseResult::kNotImported, ImportReason(again.what())};
      }
    }
  }
  std::vector<Tensor> actual;
  try {
    CompileOptions compile_options;
    const auto executor = CompileJit(graph, compile_options);
    std::map<std::string, Tensor> feeds;
    for (const auto& spec : executor->inputs()) feeds[spec.name] = inputs.at(spec.name);
    actual = executor->Run(feeds);
  } catch (const std::exception& e) {
    return {CaseResult::kFailed, std::string("compile or run: ") + e.what()};
  }
  if (actual.size() != output_files.size()) {
    return {CaseResult::kFailed,
            std::to_string(actual.size()) + " outputs, expected " + std::to_string(output_files.size())};
  }
  for (size_t i = 0; i < actual.size(); ++i) {
    const Tensor expected = TensorFromOnnx(ReadTensorProto(output_files[i]), "output " + std::to_string(i));
    if (actual[i].dtype() != expected.dtype()) {
      return {CaseResult::kFailed, "output " + std::to_string(i) + " is " + std::string(DTypeName(actual[i].dtype())) +
                                       ", expected " + std::string(DTypeName(expected.dtype()))};
    }
    const double rtol = IsFloat(expected.dtype()) ? 1e-3 : 0;
    const double atol = expected.dtype() == DType::kFloat32 ? 1e-5 : IsFloat(expected.dtype()) ? 1e-7 : 0;
    std::string message;
    if (!testing::AllClose(actual[i], expected, rtol, atol, &message)) {
      return {CaseResult::kFailed, "output " + std::to_string(i) + ": " + message};
    }
  }
  return {CaseResult::kPassed, ""};
}

}  // namespace

TEST_CASE("ONNX backend node tests that kiln imports pass", "[onnx][conformance]") {
  const fs::path root = DataDir();
  if (!fs::is_directory(root)) {
    WARN("SKIPPED: no ONNX node test data at " << root
                                               << " (tools/install_python_deps.sh installs the onnx package; "
                                                  "or set KILN_ONNX_NODE_TESTS)");
    return;
  }
  std::vector<fs::path> cases;
  for (const auto& entry : fs::directory_iterator(root)) {
    if (fs::exists(entry.path() / "model.onnx")) cases.push_back(entry.path());
  }
  std::sort(cases.begin(), cases.end());
  REQUIRE(cases.size() > 100);

  std::map<std::string, int> not_imported;  // reason -> count
  std::vector<std::string> passed, failed, known;
  int newer = 0;
  for (const auto& dir : cases) {
    const std::string name = dir.filename().string();
    const CaseResult result = RunCase(dir);
    switch (result.kind) {
      case CaseResult::kPassed: passed.push_back(name); break;
      case CaseResult::kNewerOpset: ++newer; break;
      case CaseResult::kNotImported: ++not_imported[result.detail]; break;
      case CaseResult::kFailed:
        if (const auto it = kKnownFailures.find(name); it != kKnownFailures.end()) {
          known.push_back(name + ": " + it->second);
        } else {
          failed.push_back(name + ": " + result.detail);
        }
        break;
    }
  }
  std::ostringstream report;
  report << cases.size() << " cases: " << passed.size() << " passed, " << failed.size() << " failed, " << known.size()
         << " known differences, " << (cases.size() - passed.size() - failed.size() - known.size() - newer)
         << " not imported, " << newer << " of opsets kiln does not take (> " << kMaxOnnxOpset << ")\n";
  std::vector<std::pair<int, std::string>> reasons;
  for (const auto& [reason, count] : not_imported) reasons.emplace_back(count, reason);
  std::sort(reasons.rbegin(), reasons.rend());
  std::map<std::string, int> by_category;
  for (const auto& [reason, count] : not_imported) by_category[CategoryOf(reason)] += count;
  report << "not imported, by category:\n";
  for (const Category& category : Categories()) {
    if (by_category.count(category.name) == 0) continue;
    report << "  " << by_category[category.name] << "  " << category.name << ": " << category.reason << "\n";
  }
  if (by_category.count("other") != 0) report << "  " << by_category["other"] << "  other\n";
  report << "not imported, by reason:\n";
  for (const auto& [count, reason] : reasons) report << "  " << count << "  " << reason << "\n";
  for (const auto& k : known) report << "known difference: " << k << "\n";
  WARN(report.str());
  for (const auto& f : failed) FAIL_CHECK(f);
  CHECK(passed.size() > 0);
  // The pass count is reported by tools/test.sh through this line.
  std::printf("onnx conformance: %zu passed, %zu failed\n", passed.size(), failed.size());
}
