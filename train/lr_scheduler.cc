#include "train/lr_scheduler.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <map>
#include <numbers>
#include <optional>
#include <string_view>
#include <utility>
#include <vector>

#include "runtime/error.h"

namespace kiln {
namespace {

// Shortest text that reads back as the same double.
std::string Format(double value) {
  char buffer[32];
  const auto [end, ec] = std::to_chars(buffer, buffer + sizeof(buffer), value);
  return std::string(buffer, end);
}

std::string_view Trim(std::string_view text) {
  const auto first = text.find_first_not_of(" \t");
  if (first == std::string_view::npos) return {};
  return text.substr(first, text.find_last_not_of(" \t") - first + 1);
}

const std::vector<std::string> kKinds = {"constant", "factor", "multifactor", "poly", "cosine"};
const std::vector<std::string> kWarmupKeys = {"warmup_steps", "warmup_begin_lr", "warmup_mode"};

// Each kind's own keys (MXNet's constructor arguments but base_lr), before the warm-up's.
std::vector<std::string> KeysOf(const std::string& kind) {
  std::vector<std::string> keys;
  if (kind == "factor") keys = {"step", "factor", "stop_factor_lr"};
  if (kind == "multifactor") keys = {"step", "factor"};
  if (kind == "poly") keys = {"max_update", "pwr", "final_lr"};
  if (kind == "cosine") keys = {"max_update", "final_lr"};
  keys.insert(keys.end(), kWarmupKeys.begin(), kWarmupKeys.end());
  return keys;
}

// A spec split into its kind and KEY=VALUE texts, with typed, checked reads. Errors name
// the spec, the key and the value.
class Spec {
 public:
  explicit Spec(const std::string& spec) : spec_(spec) {
    const size_t colon = spec.find(':');
    kind_ = Trim(std::string_view(spec).substr(0, colon));
    if (kind_.empty()) kind_ = "constant";
    if (std::find(kKinds.begin(), kKinds.end(), kind_) == kKinds.end()) {
      Fail(fmt::format("unknown kind '{}' (expected {})", kind_, fmt::join(kKinds, ", ")));
    }
    if (colon == std::string::npos) return;
    const std::vector<std::string> known = KeysOf(kind_);
    std::string last_key;
    size_t begin = colon + 1;
    while (begin <= spec.size()) {
      const size_t end = std::min(spec.find(',', begin), spec.size());
      const std::string_view item = Trim(std::string_view(spec).substr(begin, end - begin));
      begin = end + 1;
      const size_t eq = item.find('=');
      if (eq == std::string_view::npos) {
        // A list's further items (step=100,200): lists separate items by ';' otherwise.
        if (last_key == "step" && kind_ == "multifactor" && !item.empty()) {
          values_[last_key] += ";" + std::string(item);
          continue;
        }
        Fail("expected KEY=VALUE, given '" + std::string(item) + "'");
      }
      const std::string key(Trim(item.substr(0, eq)));
      const std::string value(Trim(item.substr(eq + 1)));
      if (std::find(known.begin(), known.end(), key) == known.end()) {
        Fail(fmt::format("unknown key '{}' for {} (known: {})", key, kind_, fmt::join(known, ", ")));
      }
      if (values_.count(key) != 0) Fail("key '" + key + "' given twice");
      if (value.empty()) Fail("key '" + key + "': no value");
      values_[key] = value;
      last_key = key;
    }
  }

  const std::string& kind() const { return kind_; }

  [[noreturn]] void Fail(const std::string& message) const {
    throw Error("lr_scheduler '" + Abbreviate(spec_) + "': " + message);
  }
  // Throws "key 'KEY': expected EXPECTED, given VALUE" unless `ok`.
  void Require(bool ok, const std::string& key, const std::string& expected, const std::string& given) const {
    if (!ok) Fail("key '" + key + "': expected " + expected + ", given " + given);
  }

  // An integer; `fallback` where the key is absent (required where there is none).
  int64_t Int(const std::string& key, std::optional<int64_t> fallback = std::nullopt) const {
    const std::optional<std::string> text = Text(key, fallback.has_value());
    return text ? ParseInt(key, *text) : *fallback;
  }
  double Number(const std::string& key, double fallback) const {
    const std::optional<std::string> text = Text(key, true);
    if (!text) return fallback;
    double value = 0;
    const char* end = text->data() + text->size();
    const auto [ptr, ec] = std::from_chars(text->data(), end, value);
    Require(ec == std::errc() && ptr == end && std::isfinite(value), key, "a finite number", "'" + *text + "'");
    return value;
  }
  std::string Word(const std::string& key, const std::string& fallback) const {
    return Text(key, true).value_or(fallback);
  }
  // Integers separated by ';' (required).
  std::vector<int64_t> Ints(const std::string& key) const {
    const std::string text = *Text(key, false);
    std::vector<int64_t> values;
    size_t begin = 0;
    while (begin <= text.size()) {
      const size_t end = std::min(text.find(';', begin), text.size());
      values.push_back(ParseInt(key, std::string(Trim(std::string_view(text).substr(begin, end - begin)))));
      begin = end + 1;
    }
    return values;
  }

 private:
  std::optional<std::string> Text(const std::string& key, bool optional) const {
    const auto it = values_.find(key);
    if (it != values_.end()) return it->second;
    if (!optional) Fail("missing key '" + key + "'");
    return std::nullopt;
  }
  int64_t ParseInt(const std::string& key, const std::string& text) const {
    int64_t value = 0;
    const char* end = text.data() + text.size();
    const auto [ptr, ec] = std::from_chars(text.data(), end, value);
    Require(ec == std::errc() && ptr == end && !text.empty(), key, "an integer", "'" + text + "'");
    return value;
  }

  std::string spec_;
  std::string kind_;
  std::map<std::string, std::string> values_;
};

Warmup ReadWarmup(const Spec& spec, double base_lr) {
  Warmup warmup;
  warmup.steps = spec.Int("warmup_steps", 0);
  spec.Require(warmup.steps >= 0, "warmup_steps", "an integer >= 0", std::to_string(warmup.steps));
  warmup.begin_lr = spec.Number("warmup_begin_lr", 0);
  spec.Require(warmup.begin_lr <= base_lr, "warmup_begin_lr", "at most the base rate " + Format(base_lr),
               Format(warmup.begin_lr));
  const std::string mode = spec.Word("warmup_mode", "linear");
  spec.Require(mode == "linear" || mode == "constant", "warmup_mode", "linear or constant", "'" + mode + "'");
  warmup.mode = mode == "linear" ? Warmup::Mode::kLinear : Warmup::Mode::kConstant;
  return warmup;
}

// The step and factor checks MXNet's FactorScheduler and MultiFactorScheduler make.
void RequireStep(const Spec& spec, int64_t step) {
  spec.Require(step >= 1, "step", "an integer >= 1", std::to_string(step));
}
double ReadFactor(const Spec& spec) {
  const double factor = spec.Number("factor", 1);
  spec.Require(factor <= 1, "factor", "at most 1 (the rate must not grow)", Format(factor));
  return factor;
}

class ConstantScheduler final : public LrScheduler {
 public:
  using LrScheduler::LrScheduler;
  std::string ToString() const override {
    const std::string warmup_keys = WarmupKeys();
    return warmup_keys.empty() ? "constant" : "constant:" + warmup_keys.substr(1);
  }

 private:
  double Decayed(int64_t) override { return base_lr; }
};

class FactorScheduler final : public LrScheduler {
 public:
  FactorScheduler(double base_lr, Warmup warmup, int64_t step, double factor, double stop_factor_lr)
      : LrScheduler(base_lr, warmup), step_(step), factor_(factor), stop_factor_lr_(stop_factor_lr), lr_(base_lr) {}

  std::string ToString() const override {
    return "factor:step=" + std::to_string(step_) + ",factor=" + Format(factor_) +
           ",stop_factor_lr=" + Format(stop_factor_lr_) + WarmupKeys();
  }

 private:
  // MXNet multiplies its rate by factor once for every multiple of step below
  // num_update, in sequence (the stop clamps each product), so the rate after k
  // reductions is computed by k multiplications, not a power.
  double Decayed(int64_t num_update) override {
    const int64_t target = num_update > 0 ? (num_update - 1) / step_ : 0;
    if (target < reductions_) {
      reductions_ = 0;
      lr_ = base_lr;
    }
    while (reductions_ < target) {
      double next = lr_ * factor_;
      if (next < stop_factor_lr_) next = stop_factor_lr_;
      if (next == lr_) {
        reductions_ = target;  // a fixed point (the stop, factor 1): no further change
        break;
      }
      lr_ = next;
      ++reductions_;
    }
    return lr_;
  }

  int64_t step_;
  double factor_;
  double stop_factor_lr_;
  // Where the last call got to: the rate after `reductions_` reductions.
  int64_t reductions_ = 0;
  double lr_;
};

class MultiFactorScheduler final : public LrScheduler {
 public:
  MultiFactorScheduler(double base_lr, Warmup warmup, std::vector<int64_t> steps, double factor)
      : LrScheduler(base_lr, warmup), steps_(std::move(steps)), factor_(factor) {}

  std::string ToString() const override {
    return fmt::format("multifactor:step={},factor={}{}", fmt::join(steps_, ";"), Format(factor_), WarmupKeys());
  }

 private:
  // One multiplication for each step below num_update, in sequence as MXNet's.
  double Decayed(int64_t num_update) override {
    double lr = base_lr;
    for (auto step = steps_.begin(); step != steps_.end() && num_update > *step; ++step) lr *= factor_;
    return lr;
  }

  std::vector<int64_t> steps_;
  double factor_;
};

// Poly and cosine: final_lr + (base_lr - final_lr) * shape(t / T) for t = num_update -
// warmup_steps up to T = max_update - warmup_steps, MXNet's expressions operation for
// operation. Past max_update the rate stays at its value there (MXNet keeps the rate of
// its last call at or before max_update: the same for counts that pass through it).
class PolyScheduler final : public LrScheduler {
 public:
  PolyScheduler(double base_lr, Warmup warmup, int64_t max_update, double pwr, double final_lr)
      : LrScheduler(base_lr, warmup), max_update_(max_update), pwr_(pwr), final_lr_(final_lr) {}

  std::string ToString() const override {
    return "poly:max_update=" + std::to_string(max_update_) + ",pwr=" + Format(pwr_) +
           ",final_lr=" + Format(final_lr_) + WarmupKeys();
  }

 private:
  double Decayed(int64_t num_update) override {
    const auto t = static_cast<double>(std::min(num_update, max_update_) - warmup.steps);
    const auto max_steps = static_cast<double>(max_update_ - warmup.steps);
    return final_lr_ + (base_lr - final_lr_) * std::pow(1 - t / max_steps, pwr_);
  }

  int64_t max_update_;
  double pwr_;
  double final_lr_;
};

class CosineScheduler final : public LrScheduler {
 public:
  CosineScheduler(double base_lr, Warmup warmup, int64_t max_update, double final_lr)
      : LrScheduler(base_lr, warmup), max_update_(max_update), final_lr_(final_lr) {}

  std::string ToString() const override {
    return "cosine:max_update=" + std::to_string(max_update_) + ",final_lr=" + Format(final_lr_) + WarmupKeys();
  }

 private:
  double Decayed(int64_t num_update) override {
    const auto t = static_cast<double>(std::min(num_update, max_update_) - warmup.steps);
    const auto max_steps = static_cast<double>(max_update_ - warmup.steps);
    return final_lr_ + (base_lr - final_lr_) * (1 + std::cos(std::numbers::pi * t / max_steps)) / 2;
  }

  int64_t max_update_;
  double final_lr_;
};

// max_update for poly and cosine; warm-up must end before it (MXNet divides by zero at
// warmup_steps == max_update, and never decays past a longer warm-up).
int64_t ReadMaxUpdate(const Spec& spec, const Warmup& warmup) {
  const int64_t max_update = spec.Int("max_update");
  spec.Require(max_update >= 1, "max_update", "an integer >= 1", std::to_string(max_update));
  spec.Require(warmup.steps < max_update, "warmup_steps", "fewer than max_update (" + std::to_string(max_update) + ")",
               std::to_string(warmup.steps));
  return max_update;
}

}  // namespace

LrScheduler::~LrScheduler() = default;

double LrScheduler::operator()(int64_t num_update) {
  if (num_update < 0) throw Error("lr_scheduler: num_update must be >= 0, given " + std::to_string(num_update));
  if (num_update >= warmup.steps) return Decayed(num_update);
  if (warmup.mode == Warmup::Mode::kConstant) return warmup.begin_lr;
  // MXNet's get_warmup_lr, operation for operation.
  const double increase =
      (base_lr - warmup.begin_lr) * static_cast<double>(num_update) / static_cast<double>(warmup.steps);
  return warmup.begin_lr + increase;
}

std::string LrScheduler::WarmupKeys() const {
  if (warmup.steps == 0) return "";
  return ",warmup_steps=" + std::to_string(warmup.steps) + ",warmup_begin_lr=" + Format(warmup.begin_lr) +
         ",warmup_mode=" + (warmup.mode == Warmup::Mode::kLinear ? "linear" : "constant");
}

std::unique_ptr<LrScheduler> MakeLrScheduler(const std::string& text, double base_lr) {
  const Spec spec(text);
  if (!std::isfinite(base_lr)) spec.Fail("the base rate must be finite, given " + Format(base_lr));
  const Warmup warmup = ReadWarmup(spec, base_lr);
  const std::string& kind = spec.kind();
  if (kind == "factor") {
    const int64_t step = spec.Int("step");
    RequireStep(spec, step);
    const double factor = ReadFactor(spec);
    return std::make_unique<FactorScheduler>(base_lr, warmup, step, factor, spec.Number("stop_factor_lr", 1e-8));
  }
  if (kind == "multifactor") {
    const std::vector<int64_t> steps = spec.Ints("step");
    for (size_t i = 0; i < steps.size(); ++i) {
      RequireStep(spec, steps[i]);
      if (i > 0) {
        spec.Require(steps[i] > steps[i - 1], "step", "increasing counts",
                     std::to_string(steps[i - 1]) + " then " + std::to_string(steps[i]));
      }
    }
    return std::make_unique<MultiFactorScheduler>(base_lr, warmup, steps, ReadFactor(spec));
  }
  if (kind == "poly") {
    const int64_t max_update = ReadMaxUpdate(spec, warmup);
    const double pwr = spec.Number("pwr", 2);
    spec.Require(pwr >= 0, "pwr", "a power >= 0", Format(pwr));
    return std::make_unique<PolyScheduler>(base_lr, warmup, max_update, pwr, spec.Number("final_lr", 0));
  }
  if (kind == "cosine") {
    const int64_t max_update = ReadMaxUpdate(spec, warmup);
    return std::make_unique<CosineScheduler>(base_lr, warmup, max_update, spec.Number("final_lr", 0));
  }
  return std::make_unique<ConstantScheduler>(base_lr, warmup);
}

}  // namespace kiln
