#include "train/gluon/trainer.h"

#include <algorithm>
#include <cctype>
#include <cstdio>

#include "runtime/error.h"
#include "runtime/param_file.h"
#include "train/train_step.h"

namespace kiln::gluon {
namespace {

constexpr const char* kNumUpdate = "__num_update__";

// Exactly: the text parses back to the same double.
std::string Number(double value) {
  char text[32];
  std::snprintf(text, sizeof(text), "%.17g", value);
  return text;
}

// Gluon's optimizer_params as ParseOptimizer's "key=value,..." text.
std::string OptionText(const std::string& key, const AttrArg& arg) {
  const AttrValue& value = arg.value;
  if (const auto* d = std::get_if<double>(&value)) return Number(*d);
  if (const auto* i = std::get_if<int64_t>(&value)) return std::to_string(*i);
  if (const auto* b = std::get_if<bool>(&value)) return *b ? "true" : "false";
  if (const auto* s = std::get_if<std::string>(&value)) {
    std::string text = *s;
    std::replace(text.begin(), text.end(), ',', ';');  // a schedule's own commas
    return text;
  }
  throw Error("Trainer: optimizer option '" + key + "' must be a number, a bool or a string, given " +
              FormatAttrValue(value));
}

ParameterDict NetParams(const Block& net, const loss::Loss& loss) {
  ParameterDict all = net.CollectParams();
  all.Update(loss.CollectParams());
  return all;
}

std::string SpecText(const Tensor& tensor) {
  return std::string(DTypeName(tensor.dtype())) + ShapeToString(tensor.shape());
}

}  // namespace

// Holds the compiled steps; the active one holds the newest parameter values and
// optimizer states, handed back when a parameter is read (Pull) or another step runs.
class Trainer::State : public ValueSource, public std::enable_shared_from_this<State> {
 public:
  struct Compiled {
    std::unique_ptr<::kiln::TrainStep> step;
    std::vector<std::shared_ptr<Parameter>> params;  // parameters and auxiliary states it holds
  };

  ParameterDict params;
  OptimizerConfig config;
  uint64_t seed = 0;
  std::map<std::string, std::unique_ptr<Compiled>> steps;  // by Key()
  Compiled* active = nullptr;
  std::map<const Parameter*, uint64_t> versions;  // the versions the active step holds
  std::map<std::string, Tensor> states;           // optimizer states no step holds

  std::vector<std::string> SortedNames() const;

  void Pull() override {
    if (active == nullptr) return;
    const auto values = active->step->Params();
    for (const auto& param : active->params) {
      if (!param->HasSource(this)) continue;
      param->Assign(values.at(param->name()));
      versions[param.get()] = param->version();  // what the step holds: nothing to push back
    }
  }

  // Only the trainer's own parameters are updated.
  GradReq TrainedReq(const Parameter& param) const {
    return params.Contains(param.name()) ? param.grad_req() : GradReq::kNull;
  }

  std::map<std::string, Tensor> AllStates() const {
    std::map<std::string, Tensor> all = states;
    if (active != nullptr) {
      for (auto& [name, value] : active->step->OptimizerStates()) all[name] = value;
    }
    return all;
  }

  void Activate(Compiled& compiled) {
    if (active == &compiled) {
      // Values set from outside since the last step (SetData, loading, reinitializing).
      for (const auto& param : active->params) {
        if (versions[param.get()] == param->version()) continue;
        active->step->SetParams({{param->name(), param->Data()}});
        versions[param.get()] = param->version();
      }
      return;
    }
    Pull();
    states = AllStates();
    active = nullptr;
    std::map<std::string, Tensor> values;
    for (const auto& param : compiled.params) {
      values[param->name()] = param->Data();
      versions[param.get()] = param->version();
    }
    compiled.step->SetParams(values);
    PushStates(compiled);
    active = &compiled;
  }

  // The optimizer states `compiled` has, from `states`.
  void PushStates(Compiled& compiled) {
    const auto& names = compiled.step->step_graph().state_names;
    std::map<std::string, Tensor> given;
    for (const auto& name : names) {
      if (const auto it = states.find(name); it != states.end()) given[name] = it->second;
    }
    if (const auto it = states.find(kNumUpdate); it != states.end()) given[kNumUpdate] = it->second;
    compiled.step->SetOptimizerStates(given);
  }

  // The key of the compiled step for this net, loss, batch and parameter settings.
  std::string Key(Block& net, loss::Loss& loss, const Tensor& data, const Tensor& label, int64_t batch_size) const {
    std::string key = SpecText(data) + "|" + SpecText(label) + "|" + std::to_string(batch_size);
    key += "|" + std::to_string(reinterpret_cast<uintptr_t>(&net)) + "|" +
           std::to_string(reinterpret_cast<uintptr_t>(&loss));
    // The parameters' identities: the cache keeps them alive, so no other can take their address.
    for (const auto& param : NetParams(net, loss)) {
      key += "|" + param->name() + "@" + std::to_string(reinterpret_cast<uintptr_t>(param.get())) + ":" +
             GradReqName(TrainedReq(*param)) + "," + Number(param->lr_mult()) + "," + Number(param->wd_mult()) + "," +
             param->ctx().ToString();
    }
    return key;
  }

  std::unique_ptr<Compiled> Compile(Block& net, loss::Loss& loss, const Tensor& data, const Tensor& label,
                                    int64_t batch_size) {
    const Symbol data_var = Symbol::Variable("data", data.shape(), data.dtype());
    const Symbol label_var = Symbol::Variable("label", label.shape(), label.dtype());
    const BoundGraph bound = BindParameters(
        loss.Forward(net.Forward(data_var), label_var),
        {{"data", {"data", data.dtype(), data.shape()}}, {"label", {"label", label.dtype(), label.shape()}}},
        NetParams(net, loss));
    TrainStepOptions options;
    options.shapes = {{"data", data.shape()}, {"label", label.shape()}};
    options.dtypes = {{"data", data.dtype()}, {"label", label.dtype()}};
    options.data_names = {"data", "label"};
    options.optimizer = config;
    options.optimizer.rescale_grad = config.rescale_grad / static_cast<double>(batch_size);  // Gluon's step
    options.seed = seed;
    options.context = CommonContext(bound.params, "Trainer");
    const auto aux = bound.graph.ListAuxiliaryStates();
    std::map<std::string, Tensor> values;
    for (const auto& param : bound.params) {
      const std::string& name = param->name();
      values[name] = param->Data();
      if (std::find(aux.begin(), aux.end(), name) != aux.end()) continue;
      options.grad_req[name] = TrainedReq(*param);
      options.wd_mult[name] = param->wd_mult();
      options.lr_mult[name] = param->lr_mult();
    }
    auto compiled = std::make_unique<Compiled>();
    compiled->step = std::make_unique<::kiln::TrainStep>(bound.graph, values, options);
    compiled->params = bound.params;
    return compiled;
  }
};

Trainer::Trainer(ParameterDict params, const std::string& optimizer,
                 const std::map<std::string, AttrArg>& optimizer_params, uint64_t seed)
    : state_(std::make_shared<State>()) {
  for (const auto& param : params) {
    if (!param->initialized() && !param->deferred()) {
      throw Error("Trainer: Parameter '" + param->name() + "' has not been initialized; call Initialize first");
    }
  }
  std::string options;
  for (const auto& [key, value] : optimizer_params) {
    options += (options.empty() ? "" : ",") + key + "=" + OptionText(key, value);
  }
  state_->params = std::move(params);
  state_->config = ParseOptimizer(optimizer, options);
  state_->seed = seed;
}

Trainer::~Trainer() {
  if (state_) state_->Pull();  // the parameters outlive the compiled steps
}

Trainer::Trainer(Trainer&&) noexcept = default;
Trainer& Trainer::operator=(Trainer&& other) noexcept {
  if (state_) state_->Pull();
  state_ = std::move(other.state_);
  return *this;
}

float Trainer::TrainStep(Block& net, loss::Loss& loss, const Tensor& data, const Tensor& label, int64_t batch_size) {
  if (batch_size <= 0)
    throw Error("Trainer::TrainStep: batch_size must be positive, given " + std::to_string(batch_size));
  State& state = *state_;
  auto& compiled = state.steps[state.Key(net, loss, data, label, batch_size)];
  if (compiled == nullptr) compiled = state.Compile(net, loss, data, label, batch_size);
  state.Activate(*compiled);
  const std::vector<Tensor> outputs = compiled->step->Step({{"data", data}, {"label", label}});
  for (const auto& param : compiled->params) param->SetSource(state.weak_from_this());
  const Tensor& losses = outputs.at(0);
  double sum = 0;
  for (int64_t i = 0; i < losses.size(); ++i) sum += losses.GetDouble(i);
  return static_cast<float>(sum / static_cast<double>(std::max<int64_t>(losses.size(), 1)));
}

const ParameterDict& Trainer::params() const {
  return state_->params;
}

const OptimizerConfig& Trainer::optimizer() const {
  return state_->config;
}

int64_t Trainer::num_update() const {
  if (state_->active != nullptr) return state_->active->step->num_update();
  const auto it = state_->states.find(kNumUpdate);
  return it == state_->states.end() ? 0 : static_cast<int64_t>(it->second.GetDouble(0));
}

std::vector<std::string> Trainer::State::SortedNames() const {
  std::vector<std::string> names = params.Keys();
  std::sort(names.begin(), names.end());
  return names;
}

void Trainer::SaveStates(const std::string& path) const {
  // By the parameter's position in name order, as Gluon's Trainer numbers them, so that
  // a net built again under another prefix resumes.
  const std::vector<std::string> names = state_->SortedNames();
  std::map<std::string, Tensor> by_index;
  for (const auto& [key, value] : state_->AllStates()) {
    const size_t split = key.rfind("__");
    if (key == kNumUpdate || split == std::string::npos) {
      by_index[key] = value;
      continue;
    }
    const auto it = std::find(names.begin(), names.end(), key.substr(0, split));
    by_index[std::to_string(it - names.begin()) + key.substr(split)] = value;
  }
  SaveParams(path, by_index);
}

void Trainer::LoadStates(const std::string& path) {
  const std::vector<std::string> names = state_->SortedNames();
  std::map<std::string, Tensor> loaded;
  for (const auto& [key, value] : LoadNamedParams(path).AsMap()) {
    if (key == kNumUpdate) {
      loaded[key] = value;
      continue;
    }
    const size_t split = key.find("__");
    const std::string index = key.substr(0, split);
    const bool numbered = split != std::string::npos && split > 0 &&
                          std::all_of(index.begin(), index.end(), [](unsigned char c) { return std::isdigit(c); });
    if (!numbered || std::stoull(index) >= names.size()) {
      throw Error("Trainer::LoadStates: '" + key + "' in '" + path + "' is not an optimizer state of this trainer's " +
                  std::to_string(names.size()) + " parameters (expected <index>__<state>, index below " +
                  std::to_string(names.size()) + ")");
    }
    loaded[names[std::stoull(index)] + key.substr(split)] = value;
  }
  state_->states = std::move(loaded);
  if (state_->active != nullptr) state_->PushStates(*state_->active);
}

}  // namespace kiln::gluon
