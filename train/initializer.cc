#include "train/initializer.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <functional>
#include <map>
#include <numbers>
#include <optional>
#include <string_view>
#include <utility>
#include <vector>

#include "runtime/error.h"

namespace kiln {
namespace {

// Uniform in [0, 1) from the top 53 bits: std::uniform_real_distribution's algorithm is
// left to the library, and the same seed must give the same parameters everywhere.
double Uniform01(std::mt19937_64& rng) {
  return static_cast<double>(rng() >> 11) * 0x1.0p-53;
}

// Box-Muller, keeping one of each pair: no cached spare, so an rng's state alone
// decides the next draw and an Initializer stays stateless (const, shareable).
double StandardNormal(std::mt19937_64& rng) {
  const double u1 = 1.0 - Uniform01(rng);  // (0, 1]: log(0) is never taken
  const double u2 = Uniform01(rng);
  return std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * std::numbers::pi * u2);
}

void CheckDefined(const std::string& name, const Tensor& array) {
  if (!array.defined() && array.size() != 0) throw Error("initializer: array '" + name + "' has no buffer");
}

// Writes next() to every element in order; float32 directly (the common case), others via double.
void Fill(const std::string& name, Tensor& array, const std::function<double()>& next) {
  CheckDefined(name, array);
  const int64_t n = array.size();
  if (array.dtype() == DType::kFloat32) {
    float* out = array.data_as<float>();
    for (int64_t i = 0; i < n; ++i) out[i] = static_cast<float>(next());
  } else {
    for (int64_t i = 0; i < n; ++i) array.SetDouble(i, next());
  }
}

void FillConstant(const std::string& name, Tensor& array, double value) {
  Fill(name, array, [value] { return value; });
}

// Shortest text that reads back as the same double (for ToString round trips).
std::string FormatDouble(double value) {
  char buffer[64];
  const auto [end, ec] = std::to_chars(buffer, buffer + sizeof(buffer), value);
  return std::string(buffer, end);
}

class ConstantInit final : public Initializer {
 public:
  ConstantInit(std::string kind, double value) : kind_(std::move(kind)), value_(value) {}
  void InitWeight(const std::string& name, Tensor& array, std::mt19937_64&) const override {
    FillConstant(name, array, value_);
  }
  std::string ToString() const override {
    return kind_ == "constant" ? "constant(value=" + FormatDouble(value_) + ")" : kind_;
  }

 private:
  std::string kind_;  // "zero", "one" or "constant"
  double value_;
};

class UniformInit final : public Initializer {
 public:
  explicit UniformInit(double scale) : scale_(scale) {}
  void InitWeight(const std::string& name, Tensor& array, std::mt19937_64& rng) const override {
    Fill(name, array, [&] { return -scale_ + 2.0 * scale_ * Uniform01(rng); });
  }
  std::string ToString() const override { return "uniform(scale=" + FormatDouble(scale_) + ")"; }

 private:
  double scale_;
};

class NormalInit final : public Initializer {
 public:
  explicit NormalInit(double sigma) : sigma_(sigma) {}
  void InitWeight(const std::string& name, Tensor& array, std::mt19937_64& rng) const override {
    Fill(name, array, [&] { return sigma_ * StandardNormal(rng); });
  }
  std::string ToString() const override { return "normal(sigma=" + FormatDouble(sigma_) + ")"; }

 private:
  double sigma_;
};

class XavierInit final : public Initializer {
 public:
  XavierInit(std::string rnd_type, std::string factor_type, double magnitude)
      : rnd_type_(std::move(rnd_type)), factor_type_(std::move(factor_type)), magnitude_(magnitude) {}
  void InitWeight(const std::string& name, Tensor& array, std::mt19937_64& rng) const override {
    const double scale = XavierScale(array.shape(), factor_type_, magnitude_, name);
    if (rnd_type_ == "uniform") {
      Fill(name, array, [&] { return -scale + 2.0 * scale * Uniform01(rng); });
    } else {
      Fill(name, array, [&] { return scale * StandardNormal(rng); });
    }
  }
  std::string ToString() const override {
    return "xavier(rnd_type=" + rnd_type_ + ", factor_type=" + factor_type_ +
           ", magnitude=" + FormatDouble(magnitude_) + ")";
  }

 private:
  std::string rnd_type_;
  std::string factor_type_;
  double magnitude_;
};

// MXNet's MSRAPrelu is Xavier(gaussian, factor_type, 2 / (1 + slope^2)); kept as its own
// class so that ToString names it as it was spelt.
class MsraPreluInit final : public Initializer {
 public:
  MsraPreluInit(std::string factor_type, double slope)
      : xavier_("gaussian", factor_type, 2.0 / (1.0 + slope * slope)),
        factor_type_(std::move(factor_type)),
        slope_(slope) {}
  void InitWeight(const std::string& name, Tensor& array, std::mt19937_64& rng) const override {
    xavier_.InitWeight(name, array, rng);
  }
  std::string ToString() const override {
    return "msra_prelu(factor_type=" + factor_type_ + ", slope=" + FormatDouble(slope_) + ")";
  }

 private:
  XavierInit xavier_;
  std::string factor_type_;
  double slope_;
};

class OrthogonalInit final : public Initializer {
 public:
  OrthogonalInit(double scale, std::string rand_type) : scale_(scale), rand_type_(std::move(rand_type)) {}

  // MXNet takes the SVD of a random (shape[0], prod(shape[1:])) matrix and keeps the
  // factor of the matrix's shape: orthonormal rows when shape[0] <= prod(rest),
  // orthonormal columns otherwise. Gram-Schmidt of the rows (or columns) gives a matrix
  // with the same property without an SVD.
  void InitWeight(const std::string& name, Tensor& array, std::mt19937_64& rng) const override {
    CheckDefined(name, array);
    if (array.ndim() < 1) {
      throw Error("initializer orthogonal: array '" + name + "' needs at least 1 dimension, given shape " +
                  ShapeToString(array.shape()));
    }
    const int64_t rows = array.shape()[0];
    const int64_t cols = rows == 0 ? 0 : array.size() / rows;
    if (array.size() == 0) return;
    const bool by_rows = rows <= cols;
    // Vectors to orthonormalize: `count` of length `length`, stored contiguously.
    const int64_t count = by_rows ? rows : cols;
    const int64_t length = by_rows ? cols : rows;
    std::vector<double> v(static_cast<size_t>(count * length));
    const auto draw = [&] { return rand_type_ == "uniform" ? -1.0 + 2.0 * Uniform01(rng) : StandardNormal(rng); };
    for (double& x : v) x = draw();
    for (int64_t i = 0; i < count; ++i) {
      double* vi = v.data() + i * length;
      // A random vector is independent of the earlier ones with probability one; the
      // redraws only guard against a degenerate draw, and depend on the rng alone.
      for (int attempt = 0;; ++attempt) {
        // Two passes of modified Gram-Schmidt: one pass loses orthogonality as
        // cond(matrix) grows; the second restores it to rounding level.
        for (int pass = 0; pass < 2; ++pass) {
          for (int64_t j = 0; j < i; ++j) {
            const double* vj = v.data() + j * length;
            double dot = 0.0;
            for (int64_t k = 0; k < length; ++k) dot += vi[k] * vj[k];
            for (int64_t k = 0; k < length; ++k) vi[k] -= dot * vj[k];
          }
        }
        double norm = 0.0;
        for (int64_t k = 0; k < length; ++k) norm += vi[k] * vi[k];
        norm = std::sqrt(norm);
        if (norm > 1e-10) {
          for (int64_t k = 0; k < length; ++k) vi[k] /= norm;
          break;
        }
        if (attempt == 16) throw Error("initializer orthogonal: could not orthonormalize '" + name + "'");
        for (int64_t k = 0; k < length; ++k) vi[k] = draw();
      }
    }
    const bool as_float = array.dtype() == DType::kFloat32;
    float* out = as_float ? array.data_as<float>() : nullptr;
    for (int64_t r = 0; r < rows; ++r) {
      for (int64_t c = 0; c < cols; ++c) {
        const double value = scale_ * (by_rows ? v[r * cols + c] : v[c * rows + r]);
        if (as_float) {
          out[r * cols + c] = static_cast<float>(value);
        } else {
          array.SetDouble(r * cols + c, value);
        }
      }
    }
  }
  std::string ToString() const override {
    return "orthogonal(scale=" + FormatDouble(scale_) + ", rand_type=" + rand_type_ + ")";
  }

 private:
  double scale_;
  std::string rand_type_;
};

// ---- Spec parsing ----

std::string_view Trim(std::string_view text) {
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.front()))) text.remove_prefix(1);
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back()))) text.remove_suffix(1);
  return text;
}

std::string Lower(std::string_view text) {
  std::string out(text);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// A spec's arguments bound to one initializer's parameter names.
class Args {
 public:
  Args(std::string spec, std::string kind, std::vector<std::string> params, std::string_view arg_text)
      : spec_(std::move(spec)), kind_(std::move(kind)), params_(std::move(params)) {
    arg_text = Trim(arg_text);
    if (arg_text.empty()) return;
    size_t positional = 0;
    bool seen_keyword = false;
    while (true) {
      const size_t comma = arg_text.find(',');
      const std::string_view item = Trim(arg_text.substr(0, comma));
      if (item.empty()) Fail("an empty argument");
      const size_t eq = item.find('=');
      std::string key;
      if (eq == std::string_view::npos) {
        // Positional, as Python allows: only before keywords, in constructor order.
        if (seen_keyword) Fail("a positional argument '" + std::string(item) + "' after keyword arguments");
        if (positional >= params_.size()) {
          Fail(fmt::format("at most {} arguments ({}), given {} or more", params_.size(), fmt::join(params_, ", "),
                           positional + 1));
        }
        key = params_[positional++];
      } else {
        seen_keyword = true;
        key = Lower(Trim(item.substr(0, eq)));
        if (std::find(params_.begin(), params_.end(), key) == params_.end()) {
          Fail(fmt::format("an argument named one of ({}), given '{}'", fmt::join(params_, ", "), key));
        }
      }
      std::string value = Unquote(Trim(eq == std::string_view::npos ? item : item.substr(eq + 1)));
      if (value.empty()) Fail("a value for '" + key + "', given none");
      if (!values_.emplace(key, std::move(value)).second) Fail("'" + key + "' at most once, given twice");
      if (comma == std::string_view::npos) break;
      arg_text.remove_prefix(comma + 1);
    }
  }

  [[noreturn]] void Fail(const std::string& expected_given) const {
    throw Error("initializer '" + Abbreviate(spec_) + "': " + kind_ + " expects " + expected_given);
  }

  // A finite number; `fallback` when absent (nullopt: the argument is required).
  double Number(const std::string& key, std::optional<double> fallback, double min = -HUGE_VAL) const {
    const auto it = values_.find(key);
    if (it == values_.end()) {
      if (!fallback) Fail("the argument '" + key + "', given none");
      return *fallback;
    }
    const std::string& text = it->second;
    char* end = nullptr;
    const double value = std::strtod(text.c_str(), &end);
    if (end != text.c_str() + text.size() || !std::isfinite(value)) {
      Fail(key + " to be a finite number, given '" + Abbreviate(text) + "'");
    }
    if (value < min) Fail(key + " >= " + FormatDouble(min) + ", given " + text);
    return value;
  }

  std::string Choice(const std::string& key, const std::string& fallback,
                     const std::vector<std::string>& choices) const {
    const auto it = values_.find(key);
    if (it == values_.end()) return fallback;
    const std::string value = Lower(it->second);
    if (std::find(choices.begin(), choices.end(), value) == choices.end()) {
      Fail(fmt::format("{} to be one of ({}), given '{}'", key, fmt::join(choices, ", "), Abbreviate(it->second)));
    }
    return value;
  }

 private:
  static std::string Unquote(std::string_view text) {
    if (text.size() >= 2 && (text.front() == '\'' || text.front() == '"') && text.back() == text.front()) {
      text = text.substr(1, text.size() - 2);
    }
    return std::string(text);
  }

  std::string spec_;
  std::string kind_;
  std::vector<std::string> params_;
  std::map<std::string, std::string> values_;
};

}  // namespace

double XavierScale(const Shape& shape, const std::string& factor_type, double magnitude, const std::string& name) {
  if (shape.size() < 2) {
    throw Error("initializer xavier: array '" + name + "' needs at least 2 dimensions, given shape " +
                ShapeToString(shape));
  }
  double hw_scale = 1.0;
  for (size_t i = 2; i < shape.size(); ++i) hw_scale *= static_cast<double>(shape[i]);
  const double fan_in = static_cast<double>(shape[1]) * hw_scale;
  const double fan_out = static_cast<double>(shape[0]) * hw_scale;
  double factor = 0.0;
  if (factor_type == "avg") {
    factor = (fan_in + fan_out) / 2.0;
  } else if (factor_type == "in") {
    factor = fan_in;
  } else if (factor_type == "out") {
    factor = fan_out;
  } else {
    throw Error("initializer xavier: factor_type expected avg, in or out, given '" + factor_type + "'");
  }
  return std::sqrt(magnitude / factor);
}

void Initializer::Init(const std::string& name, Tensor& array, std::mt19937_64& rng) const {
  const auto ends_with = [&](std::string_view suffix) { return name.ends_with(suffix); };
  // MXNet's _legacy_init order: "bias" before "weight", and so on.
  if (ends_with("bias") || ends_with("beta")) {
    FillConstant(name, array, 0.0);
  } else if (ends_with("gamma")) {
    FillConstant(name, array, 1.0);
  } else if (ends_with("weight")) {
    InitWeight(name, array, rng);
  } else if (ends_with("moving_mean") || ends_with("moving_inv_var") || ends_with("moving_avg") || ends_with("min")) {
    FillConstant(name, array, 0.0);
  } else if (ends_with("moving_var") || ends_with("max")) {
    FillConstant(name, array, 1.0);
  } else {
    throw Error("initializer " + ToString() + ": unknown initialization pattern for '" + Abbreviate(name) +
                "': expected a name ending in weight, bias, gamma, beta, moving_mean, moving_var, "
                "moving_inv_var, moving_avg, min or max");
  }
}

std::unique_ptr<Initializer> MakeInitializer(const std::string& spec) {
  const std::string_view text = Trim(spec);
  const size_t open = text.find('(');
  std::string_view arg_text;
  if (open != std::string_view::npos) {
    if (text.back() != ')' || text.find('(', open + 1) != std::string_view::npos || text.find(')') != text.size() - 1) {
      throw Error("initializer '" + Abbreviate(spec) +
                  "': expected name(arg=value, ...), given unbalanced parentheses");
    }
    arg_text = text.substr(open + 1, text.size() - open - 2);
  }
  const std::string kind = Lower(Trim(text.substr(0, open)));
  const auto args = [&](std::vector<std::string> params) { return Args(spec, kind, std::move(params), arg_text); };

  if (kind == "zero" || kind == "zeros") {
    args({});
    return std::make_unique<ConstantInit>("zero", 0.0);
  }
  if (kind == "one" || kind == "ones") {
    args({});
    return std::make_unique<ConstantInit>("one", 1.0);
  }
  if (kind == "constant") {
    return std::make_unique<ConstantInit>("constant", args({"value"}).Number("value", std::nullopt));
  }
  if (kind == "uniform") return std::make_unique<UniformInit>(args({"scale"}).Number("scale", 0.07, 0.0));
  if (kind == "normal") return std::make_unique<NormalInit>(args({"sigma"}).Number("sigma", 0.01, 0.0));
  if (kind == "xavier") {
    const Args a = args({"rnd_type", "factor_type", "magnitude"});
    return std::make_unique<XavierInit>(a.Choice("rnd_type", "uniform", {"uniform", "gaussian"}),
                                        a.Choice("factor_type", "avg", {"avg", "in", "out"}),
                                        a.Number("magnitude", 3.0, 0.0));
  }
  if (kind == "msra_prelu" || kind == "msraprelu") {
    const Args a = args({"factor_type", "slope"});
    return std::make_unique<MsraPreluInit>(a.Choice("factor_type", "avg", {"avg", "in", "out"}),
                                           a.Number("slope", 0.25));
  }
  if (kind == "orthogonal") {
    const Args a = args({"scale", "rand_type"});
    return std::make_unique<OrthogonalInit>(a.Number("scale", 1.414),
                                            a.Choice("rand_type", "uniform", {"uniform", "normal"}));
  }
  throw Error("initializer '" + Abbreviate(spec) +
              "': expected one of zero, one, constant, uniform, normal, xavier, msra_prelu, orthogonal; given '" +
              Abbreviate(kind) + "'");
}

std::map<std::string, Tensor> InitializeParams(const std::vector<std::string>& names,
                                               const std::vector<std::optional<Shape>>& shapes,
                                               const std::vector<std::string>& inputs,
                                               const std::map<std::string, Tensor>& given, bool allow_missing,
                                               const Initializer& initializer, std::mt19937_64& rng,
                                               const std::string& context) {
  if (shapes.size() != names.size()) {
    throw Error(context + ": expected a shape for each of the " + std::to_string(names.size()) + " parameters, given " +
                std::to_string(shapes.size()));
  }
  std::map<std::string, Tensor> params;
  for (size_t i = 0; i < names.size(); ++i) {
    const std::string& name = names[i];
    if (std::find(inputs.begin(), inputs.end(), name) != inputs.end()) continue;
    if (!shapes[i]) throw Error(context + ": the shape of parameter '" + name + "' cannot be inferred");
    if (const auto it = given.find(name); it != given.end()) {
      if (it->second.shape() != *shapes[i]) {
        throw Error(context + ": parameter '" + name + "': expected shape " + ShapeToString(*shapes[i]) + ", given " +
                    ShapeToString(it->second.shape()));
      }
      params[name] = it->second.Clone();
      continue;
    }
    if (!given.empty() && !allow_missing) {
      throw Error(context + ": parameter '" + name + "' is missing from the given parameters");
    }
    Tensor value(*shapes[i], DType::kFloat32);
    initializer.Init(name, value, rng);
    params[name] = value;
  }
  return params;
}

}  // namespace kiln
