// Gluon's parameters (MXNet 1.9.1's mx.gluon.Parameter and ParameterDict): a named
// tensor with its shape (dimensions of 0 are unknown until the first forward pass infers
// them: deferred initialization), dtype, grad_req, learning-rate and weight-decay
// multipliers and initializer; and an ordered dictionary of them by full name.
//
//   ParameterDict params = net.CollectParams();
//   params.Initialize("xavier(magnitude=2)", /*seed=*/7);
//   params.SetAttr("lr_mult", 0.5);
//   params.Save("net.params");
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "graph/attrs.h"
#include "runtime/context.h"
#include "runtime/param_formats.h"
#include "runtime/tensor.h"
#include "symbol/symbol.h"
#include "train/initializer.h"
#include "train/step_graph.h"

namespace kiln::gluon {

// Where parameters are trained (runtime/context.h).
using Context = kiln::Context;

// Something that holds newer values of some parameters than they hold themselves (a
// Trainer's compiled step) and hands them back when a parameter is read.
class ValueSource {
 public:
  virtual ~ValueSource() = default;
  virtual void Pull() = 0;
};

struct ParameterOptions {
  GradReq grad_req = GradReq::kWrite;
  Shape shape{};  // dimensions of 0 are unknown (deferred)
  DType dtype = DType::kFloat32;
  double lr_mult = 1;
  double wd_mult = 1;
  std::string init{};  // an initializer spec (MakeInitializer); empty: the global one
  bool allow_deferred_init = false;
  bool differentiable = true;  // false: grad_req is always null
};

class Parameter {
 public:
  explicit Parameter(std::string name, ParameterOptions options = {});

  const std::string& name() const { return name_; }
  const Shape& shape() const { return options_.shape; }
  bool shape_known() const;
  // Gluon's shape setter: unknown dimensions take the given sizes, known ones must match.
  void SetShape(const Shape& shape);
  DType dtype() const { return options_.dtype; }
  GradReq grad_req() const { return options_.grad_req; }
  void SetGradReq(GradReq req);  // null where not differentiable, as Gluon does
  double lr_mult() const { return options_.lr_mult; }
  double wd_mult() const { return options_.wd_mult; }
  void SetLrMult(double mult) { options_.lr_mult = mult; }
  void SetWdMult(double mult) { options_.wd_mult = mult; }
  const std::string& init() const { return options_.init; }
  const ParameterOptions& options() const { return options_; }
  // Where a Trainer's compiled step keeps and updates the value and the net runs
  // (ParameterDict::ResetCtx); Data() is always a host copy.
  const Context& ctx() const { return ctx_; }
  void SetCtx(const Context& ctx) { ctx_ = ctx; }

  // Gluon's initialize(default_init=...): the parameter's own initializer if it has one,
  // else `default_init`; deferred until the shape is known where that is allowed. Draws
  // come from a stream seeded by `seed` and the name, so that the order in which
  // parameters are initialized (deferred ones last) does not change their values.
  // Already initialized: nothing happens unless `force_reinit`.
  void Initialize(const std::shared_ptr<const Initializer>& default_init, uint64_t seed = 0, bool force_reinit = false);
  bool initialized() const { return data_.defined(); }
  bool deferred() const { return deferred_.has_value(); }
  // Initializes a deferred parameter now that its shape is known.
  void FinishDeferredInit();

  // The value. Throws naming the parameter when it is not initialized (or deferred).
  // Change it with SetData: a Trainer's compiled step does not see writes into the
  // tensor's buffer.
  const Tensor& Data();
  // Replaces the value (the shape checked, the dtype converted). A deferred parameter
  // takes it as its initial value.
  void SetData(const Tensor& value);
  // Gluon's _load_init: like SetData, and also initializes a parameter never initialized.
  // Unknown dimensions are filled; `source` names the file in errors.
  void LoadInit(const Tensor& value, const std::string& source);
  // The graph variable (the same node every time, as Gluon's var()).
  const Symbol& Var();

  // Incremented whenever the value changes.
  uint64_t version() const { return version_; }
  // For Trainer: `source` holds a newer value, pulled on the next Data().
  void SetSource(std::weak_ptr<ValueSource> source) { source_ = std::move(source); }
  bool HasSource(const ValueSource* source) const;
  // For a ValueSource handing the value back: copies it into the tensor handed out.
  void Assign(const Tensor& value);

 private:
  struct Deferred {
    std::shared_ptr<const Initializer> init;
    uint64_t seed = 0;
    Tensor value;  // set with SetData before the shape was known
  };
  void Pull();

  std::string name_;
  ParameterOptions options_;
  Tensor data_;
  std::optional<Deferred> deferred_;
  std::optional<Symbol> var_;
  Context ctx_ = Context::cpu();
  uint64_t version_ = 0;
  std::weak_ptr<ValueSource> source_;
};

// The one context of `params` (cpu() when there are none); throws, naming `who` and two
// parameters on different contexts, when they differ.
Context CommonContext(const std::vector<std::shared_ptr<Parameter>>& params, const std::string& who);

// An ordered dictionary of parameters by full name; copies share the parameters (as
// Python's references do).
class ParameterDict {
 public:
  explicit ParameterDict(std::string prefix = "", std::shared_ptr<const ParameterDict> shared = nullptr);

  const std::string& prefix() const { return prefix_; }
  const std::shared_ptr<const ParameterDict>& shared() const { return shared_; }

  // Gluon's get: the parameter named prefix + `name`, from this dict or the shared one,
  // or a new one with `options`. An existing parameter must agree with `options` (unknown
  // dimensions may be filled in); otherwise throws naming the attribute.
  Parameter& Get(const std::string& name, const ParameterOptions& options = {});
  std::shared_ptr<Parameter> GetShared(const std::string& name, const ParameterOptions& options = {});

  // By full name. At throws listing the names there are.
  std::shared_ptr<Parameter> Find(const std::string& full_name) const;
  Parameter& At(const std::string& full_name) const;
  bool Contains(const std::string& full_name) const { return Find(full_name) != nullptr; }
  size_t size() const { return order_.size(); }
  bool empty() const { return order_.empty(); }
  std::vector<std::string> Keys() const;
  auto begin() const { return order_.begin(); }
  auto end() const { return order_.end(); }

  // Adds `other`'s parameters; a different parameter under a name already here throws
  // (and nothing is added).
  void Update(const ParameterDict& other);
  void Add(std::shared_ptr<Parameter> param);

  // Gluon's initialize(init=Uniform()): every parameter, with `init` for those without
  // their own initializer.
  void Initialize(const std::string& init = "uniform", uint64_t seed = 0, bool force_reinit = false);
  void Initialize(const std::shared_ptr<const Initializer>& init, uint64_t seed = 0, bool force_reinit = false);
  // Gluon's setattr for every parameter: "grad_req" ("write", "add", "null"), "lr_mult",
  // "wd_mult" (numbers).
  void SetAttr(const std::string& name, const AttrArg& value);
  // Gluon's reset_ctx: where Trainers train every parameter and the net runs (on gpu(N)
  // compiled for CUDA, parameters and states in device memory). Reading values gives host
  // copies.
  void ResetCtx(const Context& ctx);

  // Gluon's save(filename, strip_prefix): every parameter by its name without
  // `strip_prefix`; the format by the extension (.params: MXNet's, .kiln-params: kiln's,
  // .npz), MXNet's for any other.
  void Save(const std::string& path, const std::string& strip_prefix = "") const;
  // Gluon's load: names in the file ("arg:"/"aux:" stripped) get `restore_prefix` in
  // front. A parameter the file lacks is an error unless `allow_missing`, a name in the
  // file that is no parameter here unless `ignore_extra`.
  void Load(const std::string& path, bool allow_missing = false, bool ignore_extra = false,
            const std::string& restore_prefix = "");
  void LoadDict(const ParamList& loaded, const std::string& source, bool allow_missing = false,
                bool ignore_extra = false, const std::string& restore_prefix = "");

 private:
  std::string prefix_;
  std::shared_ptr<const ParameterDict> shared_;
  std::vector<std::shared_ptr<Parameter>> order_;
  std::map<std::string, std::shared_ptr<Parameter>> by_name_;
};

// A parameter file in any format kiln reads, named (MXNet's .params, .npz, kiln's).
ParamList LoadNamedParams(const std::string& path);
// Writes `params` in the format `path`'s extension names, MXNet's for any other.
void SaveNamedParams(const std::string& path, const ParamList& params);
std::vector<std::string> ParamNames(const ParamList& list);  // in file order
// Gluon's _brief_print_list: at most `limit` names quoted, then "...".
std::string BriefList(const std::vector<std::string>& names, size_t limit = 7);

}  // namespace kiln::gluon
