// Checks every operator against cases recorded from real MXNet 1.9.1 by
// tools/golden/gen_mxnet_golden.py (tests/golden/data/<op>.json): MXNet's attribute
// strings parse, kiln's input names are MXNet's, the reference implementation reproduces
// MXNet's outputs within each case's tolerance, shape inference from the first input's
// shape alone infers what MXNet infers, and what MXNet rejects kiln rejects.
//
// While operators are being written:
//   bazel test //tests/golden:golden_test --test_arg='~[missing]'   skip the registry check
//   bazel test //tests/golden:golden_test --test_env=KILN_GOLDEN_OPS=Convolution,Pooling
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "runtime/error.h"
#include "runtime/tensor.h"
#include "symbol/op.h"
#include "tests/op_test_util.h"

namespace kiln {
namespace {

using json = nlohmann::json;

// Relative to the runfiles root, where bazel runs tests.
constexpr const char* kDataDir = "tests/golden/data";

// Deliberate differences from MXNet: the cases listed are skipped, each with its reason.
// Every entry is a place where kiln is not MXNet; keep each one justified.
struct KnownDifference {
  std::string op;
  std::string desc;  // the case's "desc" in the data file
  std::string reason;
};
const std::vector<KnownDifference> kKnownDifferences = {
    {"Convolution", "1-d (NCW)", "kiln's Convolution is 2-D (NCHW); 1-D and 3-D kernels are rejected clearly"},
    {"Pooling", "1-d max (NCW)", "kiln's Pooling is 2-D (NCHW); 1-D and 3-D windows are rejected clearly"},
    {"Pooling", "1-d avg pad 1 (NCW)", "kiln's Pooling is 2-D (NCHW); 1-D and 3-D windows are rejected clearly"},
};

struct GoldenFile {
  std::string path;
  json doc;
};

std::vector<GoldenFile> LoadGoldenFiles() {
  std::vector<std::filesystem::path> paths;
  for (const auto& entry : std::filesystem::directory_iterator(kDataDir)) {
    if (entry.path().extension() == ".json") paths.push_back(entry.path());
  }
  std::sort(paths.begin(), paths.end());
  std::vector<GoldenFile> files;
  for (const auto& path : paths) {
    std::ifstream in(path);
    files.push_back({path.string(), json::parse(in)});
  }
  return files;
}

// KILN_GOLDEN_OPS=a,b restricts the run to those operators (empty: all).
std::set<std::string> OpFilter() {
  std::set<std::string> ops;
  const char* env = std::getenv("KILN_GOLDEN_OPS");
  if (env == nullptr) return ops;
  std::stringstream list(env);
  std::string op;
  while (std::getline(list, op, ',')) {
    if (!op.empty()) ops.insert(op);
  }
  return ops;
}

bool Selected(const std::set<std::string>& filter, const json& doc) {
  return filter.empty() || filter.count(doc["op"].get<std::string>()) != 0 ||
         filter.count(doc["mxnet_op"].get<std::string>()) != 0;
}

// The kiln operator for a file: by kiln's name, else by MXNet's graph name (_copy, ...).
const OpDef* FindOp(const json& doc) {
  if (const OpDef* op = OpRegistry::Global().Find(doc["op"].get<std::string>())) return op;
  return OpRegistry::Global().Find(doc["mxnet_op"].get<std::string>());
}

std::string Join(const std::vector<std::string>& items, const std::string& separator = ", ") {
  std::string text;
  for (const auto& item : items) text += (text.empty() ? "" : separator) + item;
  return text;
}

std::string Number(double value) {
  char text[64];
  std::snprintf(text, sizeof(text), "%.9g", value);
  return text;
}

Shape ToShape(const json& j) { return j.get<Shape>(); }

ShapeSlot ToSlot(const json& j) { return j.is_null() ? ShapeSlot{} : ShapeSlot{ToShape(j)}; }

std::string SlotText(const ShapeSlot& slot) { return slot ? ShapeToString(*slot) : "unknown"; }

DType ToDType(const json& j) {
  const auto name = j.get<std::string>();
  const auto dtype = ParseDType(name);
  if (!dtype) throw Error("golden file: unknown dtype " + name);
  return *dtype;
}

// The generator writes NaN and infinities as strings.
double ToNumber(const json& v) {
  if (v.is_number()) return v.get<double>();
  const auto text = v.get<std::string>();
  if (text == "nan") return std::nan("");
  if (text == "inf") return INFINITY;
  if (text == "-inf") return -INFINITY;
  throw Error("golden file: bad number " + text);
}

Tensor ToTensor(const json& item) {
  Tensor tensor(ToShape(item["shape"]), ToDType(item["dtype"]));
  const json& data = item["data"];
  if (static_cast<int64_t>(data.size()) != tensor.size()) {
    throw Error("golden file: input '" + item["name"].get<std::string>() + "' has " +
                std::to_string(data.size()) + " values for shape " + ShapeToString(tensor.shape()));
  }
  for (int64_t i = 0; i < tensor.size(); ++i) tensor.SetDouble(i, ToNumber(data[i]));
  return tensor;
}

std::string IndexText(const Shape& shape, int64_t flat) {
  std::vector<int64_t> index(shape.size());
  for (size_t d = shape.size(); d-- > 0;) {
    index[d] = flat % shape[d];
    flat /= shape[d];
  }
  return ShapeToString(index);
}

bool Close(double actual, double expected, double rtol, double atol) {
  if (std::isnan(actual) || std::isnan(expected)) return std::isnan(actual) && std::isnan(expected);
  if (std::isinf(expected)) return actual == expected;
  return std::fabs(actual - expected) <= atol + rtol * std::fabs(expected);
}

// Shape and dtype of `actual` against a recorded tensor ({"shape", "dtype"}).
std::optional<std::string> CompareMeta(const Tensor& actual, const json& expected) {
  const Shape shape = ToShape(expected["shape"]);
  const DType dtype = ToDType(expected["dtype"]);
  if (actual.dtype() != dtype) {
    return "dtype: kiln " + std::string(DTypeName(actual.dtype())) + ", MXNet " + std::string(DTypeName(dtype));
  }
  if (actual.shape() != shape) {
    return "shape: kiln " + ShapeToString(actual.shape()) + ", MXNet " + ShapeToString(shape);
  }
  return std::nullopt;
}

// Shape, dtype and values; names the first differing element and how many differ.
std::optional<std::string> Compare(const Tensor& actual, const json& expected, double rtol, double atol) {
  if (auto meta = CompareMeta(actual, expected)) return meta;
  const json& data = expected["data"];
  int64_t bad = 0;
  std::string first;
  for (int64_t i = 0; i < actual.size(); ++i) {
    const double a = actual.GetDouble(i);
    const double e = ToNumber(data[i]);
    if (Close(a, e, rtol, atol)) continue;
    if (bad++ == 0) {
      first = "element " + IndexText(actual.shape(), i) + ": kiln " + Number(a) + ", MXNet " + Number(e) +
              " (rtol " + Number(rtol) + ", atol " + Number(atol) + ")";
    }
  }
  if (bad == 0) return std::nullopt;
  return first + "; " + std::to_string(bad) + " of " + std::to_string(actual.size()) + " elements differ";
}

// Random outputs cannot match MXNet's elementwise: check range and moments (the same
// checks the generator applies to MXNet's own sample).
std::optional<std::string> CheckRandom(const json& spec, const Tensor& out, const Tensor* input) {
  const std::string kind = spec["kind"];
  const int64_t n = out.size();
  if (n == 0) return "empty output";
  double sum = 0, sum_sq = 0;
  for (int64_t i = 0; i < n; ++i) {
    sum += out.GetDouble(i);
    sum_sq += out.GetDouble(i) * out.GetDouble(i);
  }
  const double mean = sum / n;
  const double std_dev = std::sqrt(std::max(0.0, sum_sq / n - mean * mean));
  if (kind == "uniform") {
    const double low = spec["low"], high = spec["high"];
    for (int64_t i = 0; i < n; ++i) {
      const double v = out.GetDouble(i);
      if (!(v >= low && v < high)) {
        return "element " + IndexText(out.shape(), i) + " = " + Number(v) + " outside [" + Number(low) + ", " +
               Number(high) + ")";
      }
    }
    if (std::fabs(mean - (low + high) / 2) >= 0.05 * (high - low)) {
      return "mean " + Number(mean) + " far from " + Number((low + high) / 2);
    }
  } else if (kind == "normal") {
    const double loc = spec["loc"], scale = spec["scale"];
    if (std::fabs(mean - loc) >= 0.15 * scale) return "mean " + Number(mean) + " far from " + Number(loc);
    if (std::fabs(std_dev - scale) >= 0.1 * scale) {
      return "standard deviation " + Number(std_dev) + " far from " + Number(scale);
    }
  } else if (kind == "dropout") {
    const double p = spec["p"];
    int64_t dropped = 0;
    for (int64_t i = 0; i < n; ++i) {
      const double v = out.GetDouble(i);
      const double kept = input->GetDouble(i) / (1 - p);
      if (v == 0) {
        ++dropped;
      } else if (!Close(v, kept, 1e-5, 0)) {
        return "element " + IndexText(out.shape(), i) + " = " + Number(v) + " is neither 0 nor input / (1 - p) = " +
               Number(kept);
      }
    }
    const double fraction = static_cast<double>(dropped) / n;
    if (std::fabs(fraction - p) >= 0.1) return "dropped fraction " + Number(fraction) + " far from p = " + Number(p);
  } else {
    return "unknown random check '" + kind + "'";
  }
  return std::nullopt;
}

std::map<std::string, AttrValue> AttrValues(const json& attrs) {
  std::map<std::string, AttrValue> values;
  for (const auto& [key, value] : attrs.items()) values[key] = value.get<std::string>();
  return values;
}

AttrMap ToAttrMap(const json& attrs) {
  AttrMap map;
  for (const auto& [key, value] : attrs.items()) map.emplace_back(key, value.get<std::string>());
  return map;
}

// MXNet rejected the case (attributes at symbol creation, or shapes); kiln must throw
// kiln::Error while parsing the attributes or inferring shapes from every given input.
std::vector<std::string> CheckError(const OpDef& op, const json& c) {
  const std::string mxnet = "MXNet rejected it (" + c.value("stage", std::string("?")) +
                            "): " + c.value("mxnet_error", std::string());
  try {
    const Attrs attrs = op.ParseAttrs(AttrValues(c["attrs"]), "golden");
    const auto names = op.InputNames(attrs);
    std::vector<ShapeSlot> inputs(names.size());
    for (const auto& item : c["inputs"]) {
      const auto it = std::find(names.begin(), names.end(), item["name"].get<std::string>());
      if (it == names.end()) {
        return {"input '" + item["name"].get<std::string>() + "' is not among kiln's inputs (" + Join(names) +
                "); " + mxnet};
      }
      inputs[it - names.begin()] = ToSlot(item["shape"]);
    }
    std::vector<ShapeSlot> outputs(op.NumOutputs(attrs));
    op.InferShape(attrs, inputs, outputs);
  } catch (const Error&) {
    return {};
  } catch (const std::exception& e) {
    return {"threw " + std::string(e.what()) + " instead of kiln::Error; " + mxnet};
  }
  return {"kiln accepted it; " + mxnet};
}

// Shape inference from the first input's shape alone, against MXNet's infer_shape_partial:
// what MXNet infers kiln must infer. Where MXNet leaves a shape unknown, kiln may know it
// (stack's other inputs), but then it must be the case's real shape.
std::vector<std::string> CheckInferShape(const OpDef& op, const Attrs& attrs, const json& c) {
  const json& infer = c["infer_shape"];
  if (infer.contains("mxnet_error")) return {};  // MXNet itself cannot infer from that alone
  const auto names = op.InputNames(attrs);
  std::vector<ShapeSlot> inputs(names.size());
  std::string given;
  for (const auto& [name, shape] : infer["given"].items()) {
    const auto it = std::find(names.begin(), names.end(), name);
    if (it != names.end()) inputs[it - names.begin()] = ToSlot(shape);
    given += (given.empty() ? "" : ", ") + name + " " + ShapeToString(ToShape(shape));
  }
  const std::string where = "shape inference from " + (given.empty() ? std::string("nothing") : given) + ": ";
  std::vector<ShapeSlot> outputs(op.NumOutputs(attrs));
  try {
    op.InferShape(attrs, inputs, outputs);
  } catch (const std::exception& e) {
    return {where + "threw: " + e.what()};
  }
  std::vector<std::string> problems;
  const auto compare = [&](const std::vector<ShapeSlot>& kiln, const json& mxnet, const json& full,
                           const std::string& kind, const std::vector<std::string>& slot_names) {
    if (kiln.size() != mxnet.size()) {
      problems.push_back(where + "kiln has " + std::to_string(kiln.size()) + " " + kind + "s, MXNet " +
                         std::to_string(mxnet.size()));
    }
    for (size_t i = 0; i < std::min(kiln.size(), mxnet.size()); ++i) {
      const std::string name = i < slot_names.size() ? slot_names[i] : std::to_string(i);
      const ShapeSlot expected = ToSlot(mxnet[i]);
      if (expected && kiln[i] != expected) {
        problems.push_back(where + kind + " '" + name + "': kiln " + SlotText(kiln[i]) + ", MXNet " +
                           SlotText(expected));
      } else if (!expected && kiln[i] && i < full.size() && *kiln[i] != ToShape(full[i]["shape"])) {
        problems.push_back(where + kind + " '" + name + "': kiln " + SlotText(kiln[i]) +
                           ", MXNet unknown, and the case's shape is " + ShapeToString(ToShape(full[i]["shape"])));
      }
    }
  };
  compare(inputs, infer["inputs"], c["inputs"], "input", names);
  compare(outputs, infer["outputs"], c["outputs"], "output", op.OutputNames(attrs));
  return problems;
}

std::vector<std::string> CheckForward(const OpDef& op, const json& c, uint64_t seed) {
  Attrs attrs;
  try {
    attrs = op.ParseAttrs(AttrValues(c["attrs"]), "golden");
  } catch (const std::exception& e) {
    return {std::string("attributes rejected: ") + e.what()};
  }
  std::vector<std::string> mxnet_names;
  for (const auto& item : c["inputs"]) mxnet_names.push_back(item["name"]);
  const auto names = op.InputNames(attrs);
  if (names != mxnet_names) return {"input names: kiln (" + Join(names) + "), MXNet (" + Join(mxnet_names) + ")"};

  std::vector<std::string> problems;
  std::vector<Tensor> inputs;
  for (const auto& item : c["inputs"]) inputs.push_back(ToTensor(item));
  std::vector<Tensor> outputs;
  try {
    outputs = testing::RunOp(op.name(), inputs, ToAttrMap(c["attrs"]), c["is_train"].get<bool>(), seed);
  } catch (const std::exception& e) {
    problems.push_back(std::string("reference failed: ") + e.what());
  }
  const json& expected = c["outputs"];
  const double rtol = c["rtol"], atol = c["atol"];
  if (!outputs.empty()) {
    if (outputs.size() != expected.size()) {
      problems.push_back("kiln has " + std::to_string(outputs.size()) + " outputs, MXNet " +
                         std::to_string(expected.size()));
    }
    for (size_t i = 0; i < std::min(outputs.size(), expected.size()); ++i) {
      const std::string what = "output " + std::to_string(i) + " '" + expected[i]["name"].get<std::string>() + "': ";
      std::optional<std::string> problem;
      if (expected[i].value("undefined", false)) {  // MXNet leaves the values unwritten
        problem = CompareMeta(outputs[i], expected[i]);
      } else if (c.contains("random")) {
        problem = CompareMeta(outputs[i], expected[i]);
        if (!problem && i == 0) problem = CheckRandom(c["random"], outputs[i], inputs.empty() ? nullptr : &inputs[0]);
      } else {
        problem = Compare(outputs[i], expected[i], rtol, atol);
      }
      if (problem) problems.push_back(what + *problem);
    }
    // Auxiliary states after a training step (BatchNorm's moving statistics); the
    // reference updates them in place.
    for (const auto& item : c.value("updated_inputs", json::array())) {
      const auto it = std::find(names.begin(), names.end(), item["name"].get<std::string>());
      if (auto problem = Compare(inputs[it - names.begin()], item, rtol, atol)) {
        problems.push_back("input '" + item["name"].get<std::string>() + "' after the training step: " + *problem);
      }
    }
  }
  for (auto& problem : CheckInferShape(op, attrs, c)) problems.push_back(std::move(problem));
  return problems;
}

const KnownDifference* FindKnownDifference(const std::string& op, const std::string& desc) {
  for (const auto& known : kKnownDifferences) {
    if (known.op == op && known.desc == desc) return &known;
  }
  return nullptr;
}

TEST_CASE("golden: every operator recorded from MXNet is registered", "[golden][missing]") {
  const auto filter = OpFilter();
  std::vector<std::string> missing;
  for (const auto& file : LoadGoldenFiles()) {
    if (Selected(filter, file.doc) && FindOp(file.doc) == nullptr) missing.push_back(file.doc["op"]);
  }
  INFO("not registered (neither under kiln's nor MXNet's name): " << Join(missing));
  CHECK(missing.empty());
}

TEST_CASE("golden: registered operators match MXNet on every recorded case", "[golden]") {
  const auto files = LoadGoldenFiles();
  REQUIRE(files.size() > 0);
  const auto filter = OpFilter();
  int checked_cases = 0;
  std::vector<std::string> failing_ops;
  for (const auto& file : files) {
    const json& doc = file.doc;
    if (!Selected(filter, doc)) continue;
    const OpDef* op = FindOp(doc);
    if (op == nullptr) continue;  // reported by the test above
    const std::string op_name = doc["op"];
    int failed = 0;
    const json& cases = doc["cases"];
    for (size_t index = 0; index < cases.size(); ++index) {
      const json& c = cases[index];
      const std::string desc = c["desc"];
      if (const KnownDifference* known = FindKnownDifference(op_name, desc)) {
        WARN(op_name << " case " << index << " (" << desc << ") skipped: " << known->reason);
        continue;
      }
      std::vector<std::string> problems;
      try {
        problems = c.value("expect_error", false) ? CheckError(*op, c) : CheckForward(*op, c, index + 1);
      } catch (const std::exception& e) {
        problems = {std::string("unexpected exception: ") + e.what()};
      }
      ++checked_cases;
      if (!problems.empty()) ++failed;
      for (const auto& problem : problems) {
        FAIL_CHECK(op_name << " case " << index << " (" << desc << "): " << problem);
      }
    }
    if (failed > 0) failing_ops.push_back(op_name + " " + std::to_string(failed) + "/" + std::to_string(cases.size()));
  }
  INFO("checked " << checked_cases << " cases; failing cases per operator: " << Join(failing_ops));
  CHECK(failing_ops.empty());
}

}  // namespace
}  // namespace kiln
