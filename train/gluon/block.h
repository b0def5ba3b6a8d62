// Gluon's blocks (MXNet 1.9.1's mx.gluon.Block and HybridBlock), compiled: a block builds
// its graph with the Symbol API (hybridize is always on), and calling it on tensors runs
// that graph compiled for the input shapes, with the current parameter values bound at
// every call.
//
// Names are Gluon's: a block's prefix comes from its class's alias and a counter
// ("dense0_"), global at the top level (MXNet's NameManager, shared with the Symbol API's
// names) and per parent inside the parent's NameScope(), so that a child's parameters
// are "hybridsequential0_dense0_weight"; a prefix given overrides the counter.
//
//   class Net : public HybridBlock {
//    public:
//     Net() : HybridBlock("net") {
//       auto scope = NameScope();
//       fc1_ = RegisterChild(std::make_shared<nn::Dense>(64, nn::DenseOptions{.activation = "relu"}), "fc1");
//       fc2_ = RegisterChild(std::make_shared<nn::Dense>(10), "fc2");
//     }
//    protected:
//     Symbol HybridForward(OpBuilder&, const Symbol& x) override { return fc2_->Forward(fc1_->Forward(x)); }
//    private:
//     std::shared_ptr<nn::Dense> fc1_, fc2_;
//   };
#pragma once

#include <concepts>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "graph/graph.h"
#include "runtime/executor.h"
#include "symbol/symbol.h"
#include "train/gluon/parameter.h"

namespace kiln::gluon {

class Block;

// Applies operators inside a block's HybridForward with the names Gluon's graphs get:
// "<prefix><name>" for a given name (Gluon's layers name their operator "fwd"),
// "<prefix><op>N" otherwise (MXNet's Prefix name manager), so that building a graph
// never draws from the global counters block names come from.
class OpBuilder {
 public:
  explicit OpBuilder(std::string prefix) : prefix_(std::move(prefix)) {}
  Symbol operator()(const std::string& op, const std::vector<Symbol>& inputs, const AttrMap& attrs = {},
                    const std::string& name = "");

 private:
  std::string prefix_;
  std::map<std::string, int> counters_;
};

struct BlockOptions {
  // The block's prefix instead of alias + counter; "" leaves names unprefixed and makes
  // NameScope() a no-op, as Gluon's prefix=''.
  std::optional<std::string> prefix{};
  // Parameters to share (Gluon's params=): this block's are looked up there first.
  std::optional<ParameterDict> params{};
};

// The BlockOptions part of a layer's options (layers keep `prefix` and `params` in their
// own options so that designated initializers can name them).
template <typename Options>
BlockOptions BlockOptionsOf(const Options& options) {
  return {options.prefix, options.params};
}

// While alive, blocks constructed on this thread are children of `block` for naming
// (Gluon's `with block.name_scope():`).
class BlockScope {
 public:
  explicit BlockScope(Block& block);
  ~BlockScope();
  BlockScope(const BlockScope&) = delete;
  BlockScope& operator=(const BlockScope&) = delete;

 private:
  Block* previous_ = nullptr;
  bool entered_ = false;
};

// A block's graph over named inputs with its parameters' values: deferred shapes
// inferred from the inputs' and the deferred parameters initialized.
struct BoundGraph {
  Graph graph;                                     // graph.params: every parameter's value
  std::vector<std::shared_ptr<Parameter>> params;  // the parameters the graph reads
};
// Throws naming a parameter that is not initialized or whose shape cannot be inferred,
// and a variable that is neither an input nor one of `params`.
BoundGraph BindParameters(const Symbol& output, const std::map<std::string, TensorSpec>& inputs,
                          const ParameterDict& params);

class Block {
 public:
  virtual ~Block();
  Block(const Block&) = delete;
  Block& operator=(const Block&) = delete;
  Block(Block&&) noexcept;
  Block& operator=(Block&&) = delete;

  const std::string& prefix() const { return prefix_; }
  const std::string& name() const { return name_; }  // the prefix without its trailing '_'
  // This block's own parameters (not its children's).
  ParameterDict& params() { return params_; }
  const ParameterDict& params() const { return params_; }
  // This block's and its children's parameters; with `select`, those whose names match
  // the regular expression from their start (Python's re.match).
  ParameterDict CollectParams(const std::string& select = "") const;
  // The names save_parameters writes: "<child>.<attribute>", e.g. "0.weight".
  std::vector<std::pair<std::string, std::shared_ptr<Parameter>>> CollectParamsWithPrefix(
      const std::string& prefix = "") const;
  const std::vector<std::pair<std::string, std::shared_ptr<Block>>>& children() const { return children_; }

  void Initialize(const std::string& init = "uniform", uint64_t seed = 0, bool force_reinit = false);
  void Initialize(const std::shared_ptr<const Initializer>& init, uint64_t seed = 0, bool force_reinit = false);

  // Gluon's save_parameters: every parameter under its structured name ("0.weight"), in
  // the format of the extension (.params: MXNet's, what net.save_parameters writes).
  // `deduplicate`: a shared parameter once, under its first name.
  void SaveParameters(const std::string& path, bool deduplicate = false) const;
  // Gluon's load_parameters: structured names, or, for a file without any '.', the
  // parameters' own names without this block's prefix (save_params, a single layer).
  void LoadParameters(const std::string& path, bool allow_missing = false, bool ignore_extra = false);

  // Children constructed while the scope is alive are named under this block.
  [[nodiscard]] BlockScope NameScope() { return BlockScope(*this); }

  // The graph of this block on symbols (Gluon's hybrid forward).
  Symbol Forward(const Symbol& x);
  Symbol Forward(const std::vector<Symbol>& inputs);
  // Runs the block compiled for the inputs' shapes (each shape compiles once; the
  // parameters' current values are bound at every call). Inputs are "data", or "data0",
  // "data1", ... for several, as Gluon names them. Adding a child to this block compiles
  // again; changing a child's children after a call does not (Gluon's hybridized graph
  // is cached the same way).
  std::vector<Tensor> operator()(const Tensor& x) { return Call({x}); }
  std::vector<Tensor> Call(const std::vector<Tensor>& inputs);

  // Gluon's register_child; `name` defaults to the child's position ("0", "1", ...).
  template <std::derived_from<Block> B>
  std::shared_ptr<B> RegisterChild(std::shared_ptr<B> block, const std::string& name = "") {
    AddChild(block, name);
    return block;
  }

 protected:
  // `alias` is Gluon's _alias(): the class name in lower case ("dense"), or the
  // family's ("conv", "pool").
  explicit Block(const std::string& alias, const BlockOptions& options = {});

  // A parameter of this block named prefix + `name`, registered under `name` for
  // save_parameters (Gluon's `self.weight = self.params.get('weight', ...)`).
  std::shared_ptr<Parameter> RegisterParameter(const std::string& name, const ParameterOptions& options);

  // The graph on one input; blocks of one input override this.
  virtual Symbol HybridForward(OpBuilder& F, const Symbol& x);
  // The graph on every input; blocks of several inputs override this.
  virtual Symbol HybridForwardAll(OpBuilder& F, const std::vector<Symbol>& inputs);

 private:
  friend class BlockScope;
  struct Compiled;
  void AddChild(std::shared_ptr<Block> block, const std::string& name);

  std::string prefix_;
  std::string name_;
  bool empty_prefix_ = false;
  ParameterDict params_;
  std::map<std::string, int> scope_counters_;  // children's aliases, for NameScope()
  std::vector<std::pair<std::string, std::shared_ptr<Block>>> children_;
  std::vector<std::pair<std::string, std::shared_ptr<Parameter>>> registered_;
  std::map<std::string, std::unique_ptr<Compiled>> compiled_;  // by input shapes and dtypes
};

// Every block compiles; HybridBlock is the base Gluon code derives its layers from.
class HybridBlock : public Block {
 public:
  // Kept for porting Gluon code: graphs are always compiled.
  void Hybridize(bool active = true) { (void)active; }

 protected:
  using Block::Block;
};

}  // namespace kiln::gluon
