// The cases recorded from real MXNet 1.9.1 (tools/golden/gen_mxnet_golden.py writes
// tests/golden/data/<op>.json), and helpers to read and compare them: used by the golden
// test (the reference against MXNet) and the compiled-operator test (compiled code
// against the reference on the same inputs).
#pragma once

#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "runtime/tensor.h"
#include "graph/attrs.h"
#include "graph/op.h"

namespace kiln::golden {

using json = nlohmann::json;

// Relative to the runfiles root, where bazel runs tests.
inline constexpr const char* kDataDir = "tests/golden/data";

// Deliberate differences from MXNet: the cases listed are skipped, each with its reason.
// Every entry is a place where kiln is not MXNet; keep each one justified.
struct KnownDifference {
  std::string op;
  std::string desc;  // the case's "desc" in the data file
  std::string reason;
};
const KnownDifference* FindKnownDifference(const std::string& op, const std::string& desc);

struct GoldenFile {
  std::string path;
  json doc;
};
// Every data file, sorted by name.
std::vector<GoldenFile> LoadGoldenFiles();

// The kiln operator for a file: by kiln's name, else by MXNet's graph name (_copy, ...).
const OpDef* FindOp(const json& doc);

std::string Join(const std::vector<std::string>& items, const std::string& separator = ", ");
std::string Number(double value);
std::string IndexText(const Shape& shape, int64_t flat);

Shape ToShape(const json& j);
DType ToDType(const json& j);
// A recorded tensor ({"name", "shape", "dtype", "data"}).
Tensor ToTensor(const json& item);
std::map<std::string, AttrValue> AttrValues(const json& attrs);
AttrMap ToAttrMap(const json& attrs);

// Shape and dtype of `actual` against a recorded tensor ({"shape", "dtype"}).
std::optional<std::string> CompareMeta(const Tensor& actual, const json& expected);
// Shape, dtype and values; names the first differing element and how many differ.
std::optional<std::string> Compare(const Tensor& actual, const json& expected, double rtol, double atol);
// Random outputs cannot match elementwise: checks range and moments as the case's
// "random" spec says (the checks the generator applies to MXNet's own sample).
std::optional<std::string> CheckRandom(const json& spec, const Tensor& out, const Tensor* input);

}  // namespace kiln::golden
