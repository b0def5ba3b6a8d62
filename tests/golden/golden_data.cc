#include "tests/golden/golden_data.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "runtime/error.h"

namespace kiln::golden {
namespace {

const std::vector<KnownDifference> kKnownDifferences = {
    {"Convolution", "1-d (NCW)", "kiln's Convolution is 2-D (NCHW); 1-D and 3-D kernels are rejected clearly"},
    {"Pooling", "1-d max (NCW)", "kiln's Pooling is 2-D (NCHW); 1-D and 3-D windows are rejected clearly"},
    {"Pooling", "1-d avg pad 1 (NCW)", "kiln's Pooling is 2-D (NCHW); 1-D and 3-D windows are rejected clearly"},
};

// The generator writes NaN and infinities as strings.
double ToNumber(const json& v) {
  if (v.is_number()) return v.get<double>();
  const auto text = v.get<std::string>();
  if (text == "nan") return std::nan("");
  if (text == "inf") return INFINITY;
  if (text == "-inf") return -INFINITY;
  throw Error("golden file: bad number " + text);
}

bool Close(double actual, double expected, double rtol, double atol) {
  if (std::isnan(actual) || std::isnan(expected)) return std::isnan(actual) && std::isnan(expected);
  if (std::isinf(expected)) return actual == expected;
  return std::fabs(actual - expected) <= atol + rtol * std::fabs(expected);
}

}  // namespace

const KnownDifference* FindKnownDifference(const std::string& op, const std::string& desc) {
  for (const auto& known : kKnownDifferences) {
    if (known.op == op && known.desc == desc) return &known;
  }
  return nullptr;
}

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

const OpDef* FindOp(const json& doc) {
  if (const OpDef* op = OpRegistry::Global().Find(doc["op"].get<std::string>())) return op;
  return OpRegistry::Global().Find(doc["mxnet_op"].get<std::string>());
}

std::string Join(const std::vector<std::string>& items, const std::string& separator) {
  std::string text;
  for (const auto& item : items) text += (text.empty() ? "" : separator) + item;
  return text;
}

std::string Number(double value) {
  char text[64];
  std::snprintf(text, sizeof(text), "%.9g", value);
  return text;
}

Shape ToShape(const json& j) {
  return j.get<Shape>();
}

DType ToDType(const json& j) {
  const auto name = j.get<std::string>();
  const auto dtype = ParseDType(name);
  if (!dtype) throw Error("golden file: unknown dtype " + name);
  return *dtype;
}

Tensor ToTensor(const json& item) {
  Tensor tensor(ToShape(item["shape"]), ToDType(item["dtype"]));
  const json& data = item["data"];
  if (static_cast<int64_t>(data.size()) != tensor.size()) {
    throw Error("golden file: input '" + item["name"].get<std::string>() + "' has " + std::to_string(data.size()) +
                " values for shape " + ShapeToString(tensor.shape()));
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
      first = "element " + IndexText(actual.shape(), i) + ": kiln " + Number(a) + ", MXNet " + Number(e) + " (rtol " +
              Number(rtol) + ", atol " + Number(atol) + ")";
    }
  }
  if (bad == 0) return std::nullopt;
  return first + "; " + std::to_string(bad) + " of " + std::to_string(actual.size()) + " elements differ";
}

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
        return "element " + IndexText(out.shape(), i) + " = " + Number(v) +
               " is neither 0 nor input / (1 - p) = " + Number(kept);
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
}  // namespace kiln::golden
