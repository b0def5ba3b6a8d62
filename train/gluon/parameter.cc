#include "train/gluon/parameter.h"

#include <algorithm>
#include <cstring>
#include <random>

#include "runtime/error.h"

namespace kiln::gluon {
namespace {

// FNV-1a: a name's part of its seed, the same with every standard library.
uint64_t NameHash(const std::string& name) {
  uint64_t hash = 14695981039346656037ull;
  for (const unsigned char c : name) hash = (hash ^ c) * 1099511628211ull;
  return hash;
}

// Gluon's shape rule: the ranks agree and every known (non-zero) dimension matches.
bool Compatible(const Shape& own, const Shape& given) {
  if (own.empty()) return true;
  if (own.size() != given.size()) return false;
  for (size_t i = 0; i < own.size(); ++i) {
    if (own[i] != 0 && own[i] != given[i]) return false;
  }
  return true;
}

std::string Quoted(const std::string& name) {
  return "'" + name + "'";
}

std::string StripArgAux(const std::string& name) {
  return name.rfind("arg:", 0) == 0 || name.rfind("aux:", 0) == 0 ? name.substr(4) : name;
}

double NumberOf(const AttrArg& value, const std::string& what) {
  if (const auto* d = std::get_if<double>(&value.value)) return *d;
  if (const auto* i = std::get_if<int64_t>(&value.value)) return static_cast<double>(*i);
  throw Error("ParameterDict::SetAttr('" + what + "'): expected a number, given " + FormatAttrValue(value.value));
}

}  // namespace

std::string BriefList(const std::vector<std::string>& names, size_t limit) {
  if (names.size() > limit) {
    const std::vector<std::string> head(names.begin(), names.begin() + static_cast<std::ptrdiff_t>(limit / 2));
    const std::vector<std::string> tail(names.end() - static_cast<std::ptrdiff_t>((limit + 1) / 2), names.end());
    return BriefList(head, limit) + ", ..., " + BriefList(tail, limit);
  }
  std::string text;
  for (const auto& name : names) text += (text.empty() ? "" : ", ") + Quoted(name);
  return text;
}

std::vector<std::string> ParamNames(const ParamList& list) {
  std::vector<std::string> names;
  for (const auto& [name, unused] : list.tensors) names.push_back(name);
  return names;
}

ParamList LoadNamedParams(const std::string& path) {
  ParamList list = LoadAnyParams(path);
  if (!list.named && !list.tensors.empty())
    throw Error("'" + path + "' holds a list of arrays without names; parameters need names");
  return list;
}

void SaveNamedParams(const std::string& path, const ParamList& params) {
  SaveParamsAs(path, params, ParamFormatForPath(path).value_or(ParamFormat::kMxnet));
}

// --- Parameter ----------------------------------------------------------------------------

Parameter::Parameter(std::string name, ParameterOptions options)
    : name_(std::move(name)), options_(std::move(options)) {
  if (!options_.differentiable) options_.grad_req = GradReq::kNull;
}

bool Parameter::shape_known() const {
  return !options_.shape.empty() &&
         std::none_of(options_.shape.begin(), options_.shape.end(), [](int64_t d) { return d == 0; });
}

void Parameter::SetShape(const Shape& shape) {
  const Shape& own = options_.shape;
  bool compatible = own.empty() || own.size() == shape.size();
  for (size_t i = 0; compatible && !own.empty() && i < own.size(); ++i) compatible = own[i] == 0 || own[i] == shape[i];
  if (!compatible) {
    throw Error("Parameter '" + name_ + "': expected shape " + ShapeToString(own) +
                " is incompatible with given shape " + ShapeToString(shape));
  }
  options_.shape = shape;
}

void Parameter::SetGradReq(GradReq req) {
  options_.grad_req = options_.differentiable ? req : GradReq::kNull;
}

void Parameter::Initialize(const std::shared_ptr<const Initializer>& default_init, uint64_t seed, bool force_reinit) {
  if (initialized() && !force_reinit) return;  // Gluon warns and keeps the value
  Deferred deferred{
      options_.init.empty() ? default_init : std::shared_ptr<const Initializer>(MakeInitializer(options_.init)), seed,
      Tensor()};
  if (deferred.init == nullptr) throw Error("Parameter '" + name_ + "': no initializer given");
  if (!shape_known() && !options_.allow_deferred_init) {
    throw Error("Cannot initialize Parameter '" + name_ +
                "' because it has invalid shape: " + ShapeToString(options_.shape) + ".");
  }
  data_ = Tensor();
  source_.reset();
  deferred_ = std::move(deferred);
  if (shape_known()) FinishDeferredInit();
}

void Parameter::FinishDeferredInit() {
  if (!deferred_) return;
  if (!shape_known()) {
    throw Error("Cannot initialize Parameter '" + name_ + "' because it has invalid shape: " +
                ShapeToString(options_.shape) + ". Please specify in_units, in_channels, etc for `Block`s.");
  }
  Tensor value = deferred_->value;
  if (!value.defined()) {
    value = Tensor(options_.shape, options_.dtype);
    std::seed_seq seq{static_cast<uint32_t>(deferred_->seed), static_cast<uint32_t>(deferred_->seed >> 32),
                      static_cast<uint32_t>(NameHash(name_)), static_cast<uint32_t>(NameHash(name_) >> 32)};
    std::mt19937_64 rng(seq);
    // Gluon passes the initializer as the variable's __init__: its weight rule applies
    // whatever the name ("zeros" for a bias is the bias's own initializer).
    deferred_->init->InitWeight(name_, value, rng);
  }
  deferred_.reset();
  data_ = value;
  ++version_;
}

void Parameter::Pull() {
  if (const auto source = source_.lock()) source->Pull();
  source_.reset();
}

const Tensor& Parameter::Data() {
  Pull();
  if (data_.defined()) return data_;
  if (deferred_) {
    throw Error("Parameter '" + name_ +
                "' has not been initialized yet because initialization was deferred. Actual initialization happens "
                "during the first forward pass. Please pass one batch of data through the network before accessing "
                "Parameters. You can also avoid deferred initialization by specifying in_units, num_features, etc., "
                "for network layers.");
  }
  throw Error("Parameter '" + name_ +
              "' has not been initialized. Note that you should initialize parameters (Initialize) and create Trainer "
              "with Block::CollectParams() instead of Block::params() because the later does not include Parameters "
              "of nested child Blocks");
}

void Parameter::SetData(const Tensor& value) {
  SetShape(value.shape());
  // Converted to the parameter's dtype, as Gluon's arr[:] = data does.
  const Tensor copy = value.dtype() == options_.dtype ? value.Clone() : value.CastTo(options_.dtype);
  if (!data_.defined()) {
    if (!deferred_) throw Error("Parameter '" + name_ + "' has not been initialized");
    deferred_->value = copy;
    return;
  }
  source_.reset();  // the value given is newer than any a trainer holds
  data_ = copy;
  ++version_;
}

void Parameter::LoadInit(const Tensor& value, const std::string& source) {
  if (!Compatible(options_.shape, value.shape())) {
    throw Error("Failed loading Parameter '" + name_ + "' from saved params (" + source +
                "): shape incompatible expected " + ShapeToString(options_.shape) + " vs saved " +
                ShapeToString(value.shape()));
  }
  if (value.dtype() != options_.dtype) {
    throw Error("Failed loading Parameter '" + name_ + "' from saved params (" + source +
                "): dtype incompatible expected " + std::string(DTypeName(options_.dtype)) + " vs saved " +
                std::string(DTypeName(value.dtype())));
  }
  options_.shape = value.shape();
  source_.reset();
  deferred_.reset();
  data_ = value.Clone();
  ++version_;
}

void Parameter::Assign(const Tensor& value) {
  source_.reset();
  ++version_;  // another trainer holding this parameter takes the value
  if (data_.defined() && data_.shape() == value.shape() && data_.dtype() == value.dtype()) {
    std::memcpy(data_.data(), value.data(), value.nbytes());  // tensors handed out see it, as NDArrays do
  } else {
    data_ = value.Clone();
  }
}

bool Parameter::HasSource(const ValueSource* source) const {
  return source_.lock().get() == source;
}

const Symbol& Parameter::Var() {
  if (!var_) {
    var_ = Symbol::Variable(name_, shape_known() ? std::optional<Shape>(options_.shape) : std::nullopt, options_.dtype);
  }
  return *var_;
}

// --- ParameterDict ------------------------------------------------------------------------

ParameterDict::ParameterDict(std::string prefix, std::shared_ptr<const ParameterDict> shared)
    : prefix_(std::move(prefix)), shared_(std::move(shared)) {}

std::shared_ptr<Parameter> ParameterDict::Find(const std::string& full_name) const {
  const auto it = by_name_.find(full_name);
  return it == by_name_.end() ? nullptr : it->second;
}

Parameter& ParameterDict::At(const std::string& full_name) const {
  const auto param = Find(full_name);
  if (param == nullptr) {
    throw Error("no Parameter named '" + full_name + "'; the parameters are " + BriefList(Keys()));
  }
  return *param;
}

std::vector<std::string> ParameterDict::Keys() const {
  std::vector<std::string> keys;
  for (const auto& param : order_) keys.push_back(param->name());
  return keys;
}

void ParameterDict::Add(std::shared_ptr<Parameter> param) {
  const std::string& name = param->name();
  if (const auto existing = Find(name)) {
    if (existing != param) {
      throw Error("Cannot update self with other because they have different Parameters with the same name '" + name +
                  "'");
    }
    return;
  }
  by_name_[name] = param;
  order_.push_back(std::move(param));
}

void ParameterDict::Update(const ParameterDict& other) {
  ParameterDict merged = *this;  // all or nothing, as Gluon checks every name first
  for (const auto& param : other) merged.Add(param);
  *this = std::move(merged);
}

std::shared_ptr<Parameter> ParameterDict::GetShared(const std::string& name, const ParameterOptions& options) {
  const std::string full_name = prefix_ + name;
  std::shared_ptr<Parameter> param = Find(full_name);
  if (param == nullptr && shared_ != nullptr) {
    if ((param = shared_->Find(full_name))) Add(param);
  }
  if (param == nullptr) {
    param = std::make_shared<Parameter>(full_name, options);
    Add(param);
    return param;
  }
  // An existing parameter: the shapes merge where one side does not know a dimension.
  const auto mismatch = [&](const std::string& attr, const std::string& desired, const std::string& stored) {
    throw Error("Cannot retrieve Parameter '" + full_name +
                "' because desired attribute does not match with stored for attribute '" + attr + "': desired '" +
                desired + "' vs stored '" + stored + "'.");
  };
  if (!options.shape.empty()) {
    const Shape& stored = param->shape();
    if (!stored.empty() && stored.size() != options.shape.size()) {
      mismatch("shape", ShapeToString(options.shape), ShapeToString(stored));
    }
    Shape merged = options.shape;
    for (size_t i = 0; i < stored.size(); ++i) {
      if (merged[i] != 0 && stored[i] != 0 && merged[i] != stored[i]) {
        mismatch("shape", ShapeToString(options.shape), ShapeToString(stored));
      }
      if (merged[i] == 0) merged[i] = stored[i];
    }
    param->SetShape(merged);
  }
  if (options.dtype != param->dtype()) {
    mismatch("dtype", std::string(DTypeName(options.dtype)), std::string(DTypeName(param->dtype())));
  }
  return param;
}

Parameter& ParameterDict::Get(const std::string& name, const ParameterOptions& options) {
  return *GetShared(name, options);
}

void ParameterDict::Initialize(const std::string& init, uint64_t seed, bool force_reinit) {
  Initialize(std::shared_ptr<const Initializer>(MakeInitializer(init)), seed, force_reinit);
}

void ParameterDict::Initialize(const std::shared_ptr<const Initializer>& init, uint64_t seed, bool force_reinit) {
  for (const auto& param : order_) param->Initialize(init, seed, force_reinit);
}

void ParameterDict::SetAttr(const std::string& name, const AttrArg& value) {
  if (name == "grad_req") {
    const auto* text = std::get_if<std::string>(&value.value);
    if (text == nullptr) {
      throw Error("ParameterDict::SetAttr('grad_req'): expected 'write', 'add' or 'null', given " +
                  FormatAttrValue(value.value));
    }
    const GradReq req = ParseGradReq(*text);
    for (const auto& param : order_) param->SetGradReq(req);
  } else if (name == "lr_mult") {
    const double mult = NumberOf(value, name);
    for (const auto& param : order_) param->SetLrMult(mult);
  } else if (name == "wd_mult") {
    const double mult = NumberOf(value, name);
    for (const auto& param : order_) param->SetWdMult(mult);
  } else {
    throw Error("ParameterDict::SetAttr: unknown attribute '" + name +
                "'; the attributes are grad_req, lr_mult, wd_mult");
  }
}

Context CommonContext(const std::vector<std::shared_ptr<Parameter>>& params, const std::string& who) {
  for (const auto& param : params) {
    if (param->ctx() != params.front()->ctx()) {
      throw Error(who + ": Parameter '" + param->name() + "' is on " + param->ctx().ToString() + ", '" +
                  params.front()->name() + "' on " + params.front()->ctx().ToString() +
                  ": put them on one context (ResetCtx)");
    }
  }
  return params.empty() ? Context::cpu() : params.front()->ctx();
}

void ParameterDict::ResetCtx(const Context& ctx) {
  for (const auto& param : order_) {
    if (!param->initialized() && !param->deferred()) {
      throw Error("Cannot reset context for Parameter '" + param->name() + "' because it has not been initialized.");
    }
  }
  ctx.CheckAvailable();
  for (const auto& param : order_) param->SetCtx(ctx);
}

void ParameterDict::Save(const std::string& path, const std::string& strip_prefix) const {
  ParamList list;
  for (const auto& param : order_) {
    if (param->name().rfind(strip_prefix, 0) != 0) {
      throw Error("Prefix '" + strip_prefix + "' is to be striped before saving, but Parameter's name '" +
                  param->name() + "' does not start with '" + strip_prefix +
                  "'. This may be due to your Block shares parameters from other Blocks or you forgot to use "
                  "NameScope() when creating child blocks.");
    }
    list.tensors.emplace_back(param->name().substr(strip_prefix.size()), param->Data());
  }
  SaveNamedParams(path, list);
}

void ParameterDict::Load(const std::string& path, bool allow_missing, bool ignore_extra,
                         const std::string& restore_prefix) {
  if (!restore_prefix.empty()) {
    for (const auto& param : order_) {
      if (param->name().rfind(restore_prefix, 0) != 0) {
        throw Error("restore_prefix is '" + restore_prefix + "' but Parameters name '" + param->name() +
                    "' does not start with '" + restore_prefix + "'");
      }
    }
  }
  LoadDict(LoadNamedParams(path), "file '" + path + "'", allow_missing, ignore_extra, restore_prefix);
}

void ParameterDict::LoadDict(const ParamList& loaded, const std::string& source, bool allow_missing, bool ignore_extra,
                             const std::string& restore_prefix) {
  std::vector<std::pair<std::string, Tensor>> values;
  std::vector<std::string> names;
  for (const auto& [name, value] : loaded.tensors) {
    values.emplace_back(restore_prefix + StripArgAux(name), value);
    names.push_back(values.back().first);
  }
  if (!allow_missing) {
    for (const auto& param : order_) {
      if (std::find(names.begin(), names.end(), param->name()) == names.end()) {
        throw Error("Parameter '" + param->name().substr(restore_prefix.size()) + "' is missing in " + source +
                    ", which contains parameters: " + BriefList(names) +
                    ". Please make sure source and target networks have the same prefix.");
      }
    }
  }
  for (const auto& [name, value] : values) {
    const auto param = Find(name);
    if (param == nullptr) {
      if (ignore_extra) continue;
      throw Error("Parameter '" + name.substr(restore_prefix.size()) + "' loaded from " + source +
                  " is not present in ParameterDict, choices are: " + BriefList(Keys()) +
                  ". Set ignore_extra to true to ignore. Please make sure source and target networks have the same "
                  "prefix.");
    }
    param->LoadInit(value, source);
  }
}

}  // namespace kiln::gluon
