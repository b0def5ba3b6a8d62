#include "train/optimizer.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cmath>
#include <sstream>

#include "runtime/error.h"

namespace kiln {
namespace {

const std::vector<std::string> kOptimizers = {"sgd", "nag", "adam", "adamw", "rmsprop"};

double ParseNumber(const std::string& key, const std::string& text) {
  try {
    size_t used = 0;
    const double value = std::stod(text, &used);
    if (used == text.size() && std::isfinite(value)) return value;
  } catch (const std::exception&) {
  }
  throw Error("optimizer option '" + key + "': expected a number, given '" + text + "'");
}

bool ParseBool(const std::string& key, const std::string& text) {
  if (text == "1" || text == "true" || text == "True") return true;
  if (text == "0" || text == "false" || text == "False") return false;
  throw Error("optimizer option '" + key + "': expected true or false, given '" + text + "'");
}

}  // namespace

OptimizerConfig ParseOptimizer(const std::string& name, const std::string& options) {
  OptimizerConfig config;
  config.name = name;
  if (std::find(kOptimizers.begin(), kOptimizers.end(), name) == kOptimizers.end()) {
    throw Error(fmt::format("unknown optimizer '{}'; kiln has {}", name, fmt::join(kOptimizers, ", ")));
  }
  if (name == "adam" || name == "adamw" || name == "rmsprop") config.learning_rate = 0.001;
  std::map<std::string, double*> numbers = {{"lr", &config.learning_rate},
                                            {"learning_rate", &config.learning_rate},
                                            {"wd", &config.wd},
                                            {"rescale_grad", &config.rescale_grad},
                                            {"clip_gradient", &config.clip_gradient},
                                            {"momentum", &config.momentum},
                                            {"beta1", &config.beta1},
                                            {"beta2", &config.beta2},
                                            {"epsilon", &config.epsilon},
                                            {"gamma1", &config.gamma1},
                                            {"gamma2", &config.gamma2},
                                            {"clip_weights", &config.clip_weights}};
  std::stringstream stream(options);
  std::string item;
  while (std::getline(stream, item, ',')) {
    if (item.empty()) continue;
    const size_t eq = item.find('=');
    if (eq == std::string::npos) throw Error("optimizer option '" + item + "': expected key=value");
    const std::string key = item.substr(0, eq);
    const std::string value = item.substr(eq + 1);
    if (const auto it = numbers.find(key); it != numbers.end()) {
      *it->second = ParseNumber(key, value);
    } else if (key == "centered") {
      config.centered = ParseBool(key, value);
    } else if (key == "lr_scheduler") {
      config.lr_scheduler = value;
      std::replace(config.lr_scheduler.begin(), config.lr_scheduler.end(), ';', ',');
    } else {
      std::vector<std::string> keys = {"centered", "lr_scheduler"};
      for (const auto& [known, unused] : numbers) keys.push_back(known);
      throw Error(fmt::format("unknown optimizer option '{}'; the options are {}", key, fmt::join(keys, ", ")));
    }
  }
  if (config.learning_rate < 0) {
    throw Error("optimizer option 'lr': expected a non-negative learning rate, given " +
                std::to_string(config.learning_rate));
  }
  if (config.momentum < 0 || config.momentum >= 1) {
    throw Error("optimizer option 'momentum': expected a value in [0, 1), given " + std::to_string(config.momentum));
  }
  for (const auto& [key, value] : {std::pair{"beta1", config.beta1}, {"beta2", config.beta2}}) {
    if (value < 0 || value >= 1) {
      throw Error(std::string("optimizer option '") + key + "': expected a value in [0, 1), given " +
                  std::to_string(value));
    }
  }
  // The schedule is checked now, not at the first step.
  MakeLrScheduler(config.lr_scheduler, config.learning_rate);
  return config;
}

std::string OptimizerToString(const OptimizerConfig& c) {
  std::ostringstream out;
  out << c.name << "(lr=" << c.learning_rate << ", wd=" << c.wd << ", rescale_grad=" << c.rescale_grad;
  if (c.clip_gradient >= 0) out << ", clip_gradient=" << c.clip_gradient;
  if (c.name == "sgd" || c.name == "nag") out << ", momentum=" << c.momentum;
  if (c.name == "adam" || c.name == "adamw") {
    out << ", beta1=" << c.beta1 << ", beta2=" << c.beta2 << ", epsilon=" << c.epsilon;
  }
  if (c.name == "rmsprop") {
    out << ", gamma1=" << c.gamma1 << ", epsilon=" << c.epsilon << ", centered=" << (c.centered ? "true" : "false");
    if (c.centered) out << ", gamma2=" << c.gamma2;
    if (c.clip_weights >= 0) out << ", clip_weights=" << c.clip_weights;
  }
  if (!c.lr_scheduler.empty()) out << ", lr_scheduler=" << c.lr_scheduler;
  out << ")";
  return out.str();
}

Optimizer::Optimizer(OptimizerConfig config)
    : config_(std::move(config)), scheduler_(MakeLrScheduler(config_.lr_scheduler, config_.learning_rate)) {}

UpdateRule Optimizer::Rule(double wd_mult) const {
  const OptimizerConfig& c = config_;
  UpdateRule rule;
  rule.attrs = {{"wd", AttrValue{c.wd * wd_mult}},
                {"rescale_grad", AttrValue{c.rescale_grad}},
                {"clip_gradient", AttrValue{c.clip_gradient}}};
  if (c.name == "sgd" || c.name == "nag") {
    // MXNet updates without a momentum state when momentum is 0 (NAG included).
    if (c.momentum == 0) {
      rule.op = "sgd_update";
    } else {
      rule.op = c.name == "sgd" ? "sgd_mom_update" : "nag_mom_update";
      rule.states = {"mom"};
      rule.attrs["momentum"] = AttrValue{c.momentum};
    }
  } else if (c.name == "adam" || c.name == "adamw") {
    rule.op = c.name == "adam" ? "adam_update" : "adamw_update";
    rule.states = {"mean", "var"};
    rule.attrs["beta1"] = AttrValue{c.beta1};
    rule.attrs["beta2"] = AttrValue{c.beta2};
    rule.attrs["epsilon"] = AttrValue{c.epsilon};
    rule.takes_eta = c.name == "adamw";
  } else {
    rule.attrs["gamma1"] = AttrValue{c.gamma1};
    rule.attrs["epsilon"] = AttrValue{c.epsilon};
    rule.attrs["clip_weights"] = AttrValue{c.clip_weights};
    if (c.centered) {
      rule.op = "rmspropalex_update";
      rule.states = {"n", "g", "delta"};
      rule.attrs["gamma2"] = AttrValue{c.gamma2};
    } else {
      rule.op = "rmsprop_update";
      rule.states = {"n"};
    }
  }
  return rule;
}

StepScalars Optimizer::Scalars(int64_t num_update) {
  if (num_update < 1) throw Error("optimizer: update counts start at 1, given " + std::to_string(num_update));
  const double scheduled = (*scheduler_)(num_update);
  StepScalars scalars;
  scalars.lr = scheduled;
  if (config_.name == "adam" || config_.name == "adamw") {
    // Adam's bias correction, folded into the step size as MXNet's Python Adam does.
    const double t = static_cast<double>(num_update);
    const double correction = std::sqrt(1 - std::pow(config_.beta2, t)) / (1 - std::pow(config_.beta1, t));
    if (config_.name == "adam") {
      scalars.lr = scheduled * correction;
    } else {
      // Decoupled weight decay (Loshchilov and Hutter): the schedule multiplies both the
      // Adam step and the decay, the correction only the step.
      scalars.lr = correction;
      scalars.eta = scheduled;
    }
  }
  return scalars;
}

std::map<std::string, double> ModuleWdMults(const std::vector<std::string>& params,
                                            const std::map<std::string, double>& annotated) {
  const auto ends_with = [](const std::string& name, const std::string& suffix) {
    return name.size() >= suffix.size() && name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0;
  };
  std::map<std::string, double> mults;
  for (const auto& name : params) {
    mults[name] = ends_with(name, "_weight") || ends_with(name, "_gamma") ? 1.0 : 0.0;
    if (const auto it = annotated.find(name); it != annotated.end()) mults[name] = it->second;
  }
  return mults;
}

}  // namespace kiln
