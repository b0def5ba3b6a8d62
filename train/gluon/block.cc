#include "train/gluon/block.h"

#include <algorithm>
#include <cctype>
#include <regex>
#include <set>

#include "codegen/compiler.h"
#include "runtime/cuda_executor.h"
#include "runtime/error.h"

namespace kiln::gluon {
namespace {

// The block whose NameScope() is open on this thread (Gluon's _BlockScope._current).
thread_local Block* current_scope = nullptr;

std::string InputName(size_t index, size_t count) {
  return count == 1 ? "data" : "data" + std::to_string(index);
}

std::string SpecKey(const std::vector<Tensor>& inputs) {
  std::string key;
  for (const auto& input : inputs) key += std::string(DTypeName(input.dtype())) + ShapeToString(input.shape()) + ";";
  return key;
}

std::string DescribeInputs(const std::map<std::string, TensorSpec>& inputs) {
  std::string text;
  for (const auto& [name, spec] : inputs) text += (text.empty() ? "" : ", ") + name + ": " + ShapeToString(spec.shape);
  return text;
}

}  // namespace

// --- OpBuilder ----------------------------------------------------------------------------

Symbol OpBuilder::operator()(const std::string& op, const std::vector<Symbol>& inputs, const AttrMap& attrs,
                             const std::string& name) {
  if (!name.empty()) return Symbol::Create(op, inputs, attrs, prefix_ + name);
  // MXNet's NameManager hint: the operator in lower case, without leading underscores.
  std::string hint = op.substr(std::min(op.find_first_not_of('_'), op.size()));
  std::transform(hint.begin(), hint.end(), hint.begin(), [](unsigned char c) { return std::tolower(c); });
  const int count = counters_[hint]++;
  return Symbol::Create(op, inputs, attrs, prefix_ + hint + std::to_string(count));
}

// --- BlockScope ---------------------------------------------------------------------------

BlockScope::BlockScope(Block& block) {
  if (block.empty_prefix_) return;  // Gluon's prefix='' blocks open no scope
  previous_ = current_scope;
  current_scope = &block;
  entered_ = true;
}

BlockScope::~BlockScope() {
  if (entered_) current_scope = previous_;
}

// --- binding a graph ----------------------------------------------------------------------

BoundGraph BindParameters(const Symbol& output, const std::map<std::string, TensorSpec>& inputs,
                          const ParameterDict& params) {
  std::map<std::string, Shape> known;
  for (const auto& [name, spec] : inputs) known[name] = spec.shape;
  BoundGraph bound;
  bound.graph = output.ToGraph();
  std::vector<std::string> deferred;
  for (const auto& name : bound.graph.ListInputs()) {
    if (inputs.count(name)) continue;
    const auto param = params.Find(name);
    if (param == nullptr) {
      throw Error("the graph reads variable '" + name + "', which is neither an input (" + DescribeInputs(inputs) +
                  ") nor a parameter of the block (" + BriefList(params.Keys()) + ")");
    }
    if (!param->initialized() && !param->deferred()) param->Data();  // throws, naming it
    if (!param->shape_known()) deferred.push_back(name);
    bound.params.push_back(param);
  }
  if (!deferred.empty()) {
    // Gluon's deferred initialization: the shapes follow from the inputs'.
    const auto inferred = output.InferShape(known);
    const auto arguments = output.ListArguments();
    const auto aux = output.ListAuxiliaryStates();
    for (const auto& name : deferred) {
      const auto arg = std::find(arguments.begin(), arguments.end(), name);
      const ShapeSlot& slot = arg != arguments.end()
                                  ? inferred.arguments[arg - arguments.begin()]
                                  : inferred.aux[std::find(aux.begin(), aux.end(), name) - aux.begin()];
      Parameter& param = params.At(name);
      if (!slot) {
        throw Error("Parameter '" + name + "': its shape " + ShapeToString(param.shape()) +
                    " cannot be inferred from the inputs (" + DescribeInputs(inputs) + ")");
      }
      param.SetShape(*slot);
    }
  }
  for (const auto& param : bound.params) {
    param->FinishDeferredInit();
    bound.graph.params[param->name()] = param->Data();
  }
  return bound;
}

// --- Block --------------------------------------------------------------------------------

struct Block::Compiled {
  std::unique_ptr<Executor> executor;          // parameters on the CPU
  std::unique_ptr<CudaExecutor> gpu_executor;  // parameters on a GPU (ResetCtx)
  std::vector<std::shared_ptr<Parameter>> params;
  std::vector<uint64_t> versions;  // GPU: the parameters' versions in device memory
};

Block::Block(const std::string& alias, const BlockOptions& options) : empty_prefix_(options.prefix == "") {
  // Gluon's _BlockScope.create.
  const auto share = [&](const ParameterDict& dict) {
    return ParameterDict(dict.prefix(), std::make_shared<const ParameterDict>(dict));
  };
  if (current_scope == nullptr) {
    prefix_ = options.prefix ? *options.prefix : NameManager::Next(alias) + "_";
    params_ = options.params ? share(*options.params) : ParameterDict(prefix_);
  } else {
    std::string own =
        options.prefix ? *options.prefix : alias + std::to_string(current_scope->scope_counters_[alias]++) + "_";
    const ParameterDict& parent = current_scope->params_;
    params_ = options.params ? share(*options.params) : ParameterDict(parent.prefix() + own, parent.shared());
    prefix_ = current_scope->prefix_ + own;
  }
  name_ = !prefix_.empty() && prefix_.back() == '_' ? prefix_.substr(0, prefix_.size() - 1) : prefix_;
}

Block::~Block() = default;
Block::Block(Block&&) noexcept = default;

ParameterDict Block::CollectParams(const std::string& select) const {
  ParameterDict collected(params_.prefix());
  if (select.empty()) {
    collected.Update(params_);
  } else {
    const std::regex pattern(select);
    for (const auto& param : params_) {
      if (std::regex_search(param->name(), pattern, std::regex_constants::match_continuous)) collected.Add(param);
    }
  }
  for (const auto& [unused, child] : children_) collected.Update(child->CollectParams(select));
  return collected;
}

std::vector<std::pair<std::string, std::shared_ptr<Parameter>>> Block::CollectParamsWithPrefix(
    const std::string& prefix) const {
  const std::string dotted = prefix.empty() ? "" : prefix + ".";
  std::vector<std::pair<std::string, std::shared_ptr<Parameter>>> collected;
  for (const auto& [name, param] : registered_) collected.emplace_back(dotted + name, param);
  for (const auto& [name, child] : children_) {
    for (auto& entry : child->CollectParamsWithPrefix(dotted + name)) collected.push_back(std::move(entry));
  }
  return collected;
}

void Block::Initialize(const std::string& init, uint64_t seed, bool force_reinit) {
  CollectParams().Initialize(init, seed, force_reinit);
}

void Block::Initialize(const std::shared_ptr<const Initializer>& init, uint64_t seed, bool force_reinit) {
  CollectParams().Initialize(init, seed, force_reinit);
}

void Block::SaveParameters(const std::string& path, bool deduplicate) const {
  ParamList list;
  std::set<const Parameter*> saved;
  for (const auto& [name, param] : CollectParamsWithPrefix()) {
    if (deduplicate && !saved.insert(param.get()).second) continue;
    list.tensors.emplace_back(name, param->Data());
  }
  SaveNamedParams(path, list);
}

void Block::LoadParameters(const std::string& path, bool allow_missing, bool ignore_extra) {
  const ParamList loaded = LoadNamedParams(path);
  const auto params = CollectParamsWithPrefix();
  if (loaded.tensors.empty() && params.empty()) return;
  const bool structured = std::any_of(loaded.tensors.begin(), loaded.tensors.end(),
                                      [](const auto& entry) { return entry.first.find('.') != std::string::npos; });
  const std::string source = "file '" + path + "'";
  if (!structured) {
    CollectParams().LoadDict(loaded, source, allow_missing, ignore_extra, prefix_);
    return;
  }
  const std::map<std::string, Tensor> values = loaded.AsMap();
  if (!allow_missing) {
    // A shared parameter is saved once (deduplicate): any of its names will do.
    for (const auto& [name, param] : params) {
      const bool found = std::any_of(params.begin(), params.end(), [&, &p = param](const auto& other) {
        return other.second == p && values.count(other.first);
      });
      if (!found) {
        throw Error("Parameter '" + name + "' is missing in " + source + ", which contains parameters: " +
                    BriefList(ParamNames(loaded)) + ". Set allow_missing=true to ignore missing parameters.");
      }
    }
  }
  for (const auto& [name, value] : loaded.tensors) {
    const auto it = std::find_if(params.begin(), params.end(), [&, &n = name](const auto& p) { return p.first == n; });
    if (it == params.end()) {
      if (ignore_extra) continue;
      std::vector<std::string> names;
      for (const auto& entry : params) names.push_back(entry.first);
      throw Error("Parameter '" + name + "' loaded from " + source +
                  " is not present in the block, which contains parameters " + BriefList(names) +
                  ". Set ignore_extra=true to ignore.");
    }
    it->second->LoadInit(value, source);
  }
}

std::shared_ptr<Parameter> Block::RegisterParameter(const std::string& name, const ParameterOptions& options) {
  auto param = params_.GetShared(name, options);
  registered_.emplace_back(name, param);
  return param;
}

void Block::AddChild(std::shared_ptr<Block> block, const std::string& name) {
  children_.emplace_back(name.empty() ? std::to_string(children_.size()) : name, std::move(block));
  compiled_.clear();  // the graph changed
}

Symbol Block::Forward(const Symbol& x) {
  return Forward(std::vector<Symbol>{x});
}

Symbol Block::Forward(const std::vector<Symbol>& inputs) {
  OpBuilder builder(prefix_);
  return HybridForwardAll(builder, inputs);
}

Symbol Block::HybridForward(OpBuilder&, const Symbol&) {
  throw Error("block '" + name_ + "' defines no HybridForward");
}

Symbol Block::HybridForwardAll(OpBuilder& F, const std::vector<Symbol>& inputs) {
  if (inputs.size() != 1) {
    throw Error("block '" + name_ + "' takes one input, given " + std::to_string(inputs.size()));
  }
  return HybridForward(F, inputs[0]);
}

std::vector<Tensor> Block::Call(const std::vector<Tensor>& inputs) {
  // The parameters' context (ResetCtx): from a compiled entry's parameters (every entry
  // has the graph's), so that a call collects nothing once one is compiled.
  const auto entry =
      std::find_if(compiled_.begin(), compiled_.end(), [](const auto& e) { return e.second != nullptr; });
  std::vector<std::shared_ptr<Parameter>> collected;
  if (entry == compiled_.end()) {
    const ParameterDict all = CollectParams();
    collected.assign(all.begin(), all.end());
  }
  const Context ctx = CommonContext(entry == compiled_.end() ? collected : entry->second->params, name_);
  auto& compiled = compiled_[SpecKey(inputs) + "@" + ctx.ToString()];
  if (compiled == nullptr) {
    std::vector<Symbol> variables;
    std::map<std::string, TensorSpec> specs;
    CompileOptions options;
    options.embed_params = false;  // bound at every call: training and loading need no recompile
    for (size_t i = 0; i < inputs.size(); ++i) {
      const std::string name = InputName(i, inputs.size());
      variables.push_back(Symbol::Variable(name, inputs[i].shape(), inputs[i].dtype()));
      specs[name] = {name, inputs[i].dtype(), inputs[i].shape()};
      options.input_shapes[name] = inputs[i].shape();
      options.input_types[name] = inputs[i].dtype();
    }
    BoundGraph bound = BindParameters(Forward(variables), specs, CollectParams());
    auto fresh = std::make_unique<Compiled>();
    if (ctx.is_gpu()) {
      options.cuda = CompileOptions::Cuda{};
      CudaExecutorOptions gpu;
      for (const auto& param : bound.params) {
        gpu.params[param->name()] = param->Data();
        fresh->versions.push_back(param->version());
      }
      fresh->gpu_executor = CreateCudaExecutor(CompileCudaGraph(bound.graph, options), ctx.device_id(), gpu);
    } else {
      fresh->executor = CompileJit(bound.graph, options);
    }
    fresh->params = std::move(bound.params);
    compiled = std::move(fresh);
  }
  std::map<std::string, Tensor> named;
  for (size_t i = 0; i < inputs.size(); ++i) named[InputName(i, inputs.size())] = inputs[i];
  if (compiled->gpu_executor) {
    // Only parameters that changed since they were uploaded travel to the device.
    std::map<std::string, Tensor> changed;
    for (size_t i = 0; i < compiled->params.size(); ++i) {
      const Tensor& value = compiled->params[i]->Data();  // pulls a Trainer's newer value first
      if (compiled->params[i]->version() != compiled->versions[i]) changed[compiled->params[i]->name()] = value;
    }
    if (!changed.empty()) {
      compiled->gpu_executor->BindParams(changed, /*allow_extra=*/true);
      for (size_t i = 0; i < compiled->params.size(); ++i) compiled->versions[i] = compiled->params[i]->version();
    }
    return compiled->gpu_executor->Run(named);
  }
  std::map<std::string, Tensor> values;
  for (const auto& param : compiled->params) values[param->name()] = param->Data();
  compiled->executor->BindParams(values, /*allow_extra=*/true);  // passes may leave some unread
  return compiled->executor->Run(named);
}

}  // namespace kiln::gluon
