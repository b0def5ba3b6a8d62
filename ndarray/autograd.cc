#include "ndarray/autograd.h"

#include <algorithm>
#include <map>
#include <optional>
#include <string>
#include <utility>

#include "ndarray/invoke.h"
#include "ndarray/lazy.h"
#include "passes/gradient.h"

namespace kiln::nd::autograd {
namespace {

// Per thread, as MXNet's: one thread's recording does not tape another's calls.
thread_local bool g_recording = false;
thread_local bool g_training = false;

// The value an array holds, as an untracked handle on the same memory (a copy when
// `copy`), on the array's context.
NDArray ValueOf(const NDArray& array, bool copy) {
  return copy ? array.CopyTo(array.context()) : array.Detach();
}

bool IsTracked(const NDArray& array) {
  const detail::Chunk& chunk = array.chunk();
  return chunk.producer != nullptr || chunk.grad_req != GradReq::kNull;
}

// The Graph of the tape behind some heads: recorded calls become nodes, leaves become
// variables (one per array handle) fed with the values the calls read. `key` spells the
// structure and the variables' shapes, so equal keys mean equal graphs.
class TapeGraph {
 public:
  NodeEntry Head(const NDArray& head) {
    const detail::Chunk& chunk = head.chunk();
    if (chunk.producer == nullptr) return Leaf(head.chunk_ptr(), ValueOf(head, false));
    return {Visit(*chunk.producer), chunk.output_index};
  }
  // The variable of a leaf array (a new one when the tape never read it).
  NodeEntry Leaf(const std::shared_ptr<detail::Chunk>& chunk, const NDArray& value) {
    if (const auto it = leaves_.find(chunk.get()); it != leaves_.end()) return it->second;
    return leaves_[chunk.get()] = Variable(value, chunk);
  }
  NodeEntry Variable(const NDArray& value, const std::shared_ptr<detail::Chunk>& chunk = nullptr) {
    const std::string name = "v" + std::to_string(names_.size());
    names_.push_back(name);
    specs_.push_back({name, value.dtype(), value.shape()});
    values_.push_back(value);
    leaf_chunks_.push_back(chunk);
    fed_.push_back(false);
    key_ += name + ":" + ShapeToString(value.shape()) + std::string(DTypeName(value.dtype())) + ";";
    return {Node::Variable(name, value.shape(), value.dtype()), 0};
  }

  // How the key spells an entry of the graph.
  std::string Ref(const NodeEntry& entry) const {
    return (entry.node->is_variable() ? entry.node->name : ids_.at(entry.node.get())) + "." +
           std::to_string(entry.index);
  }

  const std::vector<std::string>& names() const { return names_; }
  const std::vector<TensorSpec>& specs() const { return specs_; }
  const std::vector<NDArray>& values() const { return values_; }
  const std::vector<std::shared_ptr<detail::Chunk>>& leaf_chunks() const { return leaf_chunks_; }
  // Whether input i is a forward call's result (not a variable of the forward graph).
  bool fed(size_t i) const { return fed_[i]; }
  std::string& key() { return key_; }

  // Makes the gradient nodes of `graph` read the recorded results of forward calls
  // instead of the forward nodes, which then drop out: Backward does not compute the
  // forward again.
  void FeedForwardResults(Graph& graph) const {
    std::map<std::pair<const Node*, uint32_t>, NodeEntry> variables;
    const auto fed = [&](const NodeEntry& entry) -> std::optional<NodeEntry> {
      const auto it = forward_outputs_.find({entry.node.get(), entry.index});
      if (it == forward_outputs_.end()) return std::nullopt;
      auto [slot, added] = variables.try_emplace(it->first);
      if (added) {
        const TensorSpec& spec = specs_[it->second];
        slot->second = {Node::Variable(spec.name, spec.shape, spec.dtype), 0};
      }
      return slot->second;
    };
    for (const NodePtr& node : TopologicalOrder(graph.outputs)) {
      if (node->is_variable() || ids_.count(node.get())) continue;  // forward nodes keep theirs
      for (NodeEntry& input : node->inputs) {
        if (auto variable = fed(input)) input = *variable;
      }
    }
    for (NodeEntry& output : graph.outputs) {
      if (auto variable = fed(output)) output = *variable;
    }
  }

 private:
  NodePtr Visit(const TapeNode& tape_node) {
    if (const auto it = nodes_.find(&tape_node); it != nodes_.end()) return it->second;
    std::vector<NodeEntry> inputs;
    std::string refs;
    for (const TapeInput& input : tape_node.inputs) {
      NodeEntry entry =
          input.producer != nullptr ? NodeEntry{Visit(*input.producer), input.index} : Leaf(input.leaf, input.value);
      refs += Ref(entry) + ",";
      inputs.push_back(std::move(entry));
    }
    // A random operator's stream is seeded by its node's name: it keeps the name it ran
    // under (invoke.cc's), so that Backward's recomputation draws the same values.
    const std::string id = "n" + std::to_string(nodes_.size());
    const std::string name = tape_node.op->RandomAtInference(tape_node.attrs) ? tape_node.op->name() : id;
    key_ += id + "=" + tape_node.op->name() + "{" + detail::CanonicalAttrs(tape_node.attrs) + "}" +
            (tape_node.is_train ? "T" : "") + "(" + refs + ");";
    NodePtr node = Node::Create(*tape_node.op, name, tape_node.attrs, std::move(inputs));
    nodes_.emplace(&tape_node, node);
    ids_.emplace(node.get(), id);
    // Its results, as inputs the gradient may read instead of computing them again.
    for (size_t k = 0; k < tape_node.outputs.size(); ++k) {
      const NDArray& value = tape_node.outputs[k];
      const std::string output_name = "f" + id + "_" + std::to_string(k);
      forward_outputs_[{node.get(), static_cast<uint32_t>(k)}] = names_.size();
      names_.push_back(output_name);
      specs_.push_back({output_name, value.dtype(), value.shape()});
      values_.push_back(value);
      leaf_chunks_.push_back(nullptr);
      fed_.push_back(true);
    }
    return node;
  }

  std::map<const TapeNode*, NodePtr> nodes_;
  std::map<const Node*, std::string> ids_;  // what the key calls each node
  // Each forward node's results: their positions among the inputs (names_, values_).
  std::map<std::pair<const Node*, uint32_t>, size_t> forward_outputs_;
  std::map<const detail::Chunk*, NodeEntry> leaves_;
  std::vector<std::string> names_;
  std::vector<TensorSpec> specs_;
  std::vector<NDArray> values_;
  std::vector<std::shared_ptr<detail::Chunk>> leaf_chunks_;  // null for head gradients
  std::vector<bool> fed_;
  std::string key_;
};

// The gradients of `ys` (entries of `tape`) with respect to `xs`, compiled and run.
std::vector<NDArray> Differentiate(TapeGraph& tape, const std::vector<NodeEntry>& ys, const std::vector<NDArray>& heads,
                                   const std::vector<NDArray>& head_grads, const std::vector<NodeEntry>& xs,
                                   bool train_mode) {
  if (!head_grads.empty() && head_grads.size() != heads.size()) {
    throw Error("autograd: " + std::to_string(heads.size()) + " heads but " + std::to_string(head_grads.size()) +
                " head gradients");
  }
  GradientRequest request;
  request.ys = ys;
  request.xs = xs;
  request.is_train = train_mode;
  // The forward graph's variables: the head gradients below are not part of it.
  for (size_t i = 0; i < tape.specs().size(); ++i) {
    if (tape.fed(i)) continue;
    request.shapes[tape.specs()[i].name] = tape.specs()[i].shape;
    request.dtypes[tape.specs()[i].name] = tape.specs()[i].dtype;
  }
  for (size_t i = 0; i < heads.size(); ++i) {
    const bool given = !head_grads.empty() && head_grads[i].defined();
    if (given && head_grads[i].shape() != heads[i].shape()) {
      throw Error("autograd: head gradient " + std::to_string(i) + " has shape " +
                  ShapeToString(head_grads[i].shape()) + ", its head " + ShapeToString(heads[i].shape()));
    }
    request.head_grads.push_back(tape.Variable(given ? ValueOf(head_grads[i], false)
                                                     : ones(heads[i].shape(), heads[i].context(), heads[i].dtype())));
  }
  // The tape's context: every value on one.
  const Context ctx = tape.values().empty() ? Context::cpu() : tape.values()[0].context();
  for (size_t i = 0; i < tape.values().size(); ++i) {
    if (tape.values()[i].context() != ctx) {
      throw Error("autograd: the recorded computation reads arrays on " + ctx.ToString() + " and on " +
                  tape.values()[i].context().ToString() + " ('" + tape.names()[i] + "'): record it on one context");
    }
  }
  std::string key = "grad:" + tape.key() + "|ys:";
  for (const auto& y : ys) key += tape.Ref(y) + ",";
  key += "|xs:";
  for (const auto& x : xs) key += tape.Ref(x) + ",";
  key += train_mode ? "|train" : "";
  const auto build = [&] {
    Graph graph;
    graph.outputs = BuildGradient(request);
    tape.FeedForwardResults(graph);
    return graph;
  };
  std::vector<NDArray> grads;
  if (ctx.is_gpu()) {
    std::vector<DeviceTensor> values;
    for (const NDArray& value : tape.values()) values.push_back(value.device_tensor());
    for (DeviceTensor& grad : detail::RunOnGpu(key, build, tape.specs(), train_mode, ctx.device_id(), values)) {
      grads.emplace_back(std::move(grad));
    }
    return grads;
  }
  const auto compiled = detail::GetOrCompile(key, build, tape.names(), tape.specs(), train_mode);
  std::vector<Tensor> values;
  for (const NDArray& value : tape.values()) values.push_back(value.tensor());
  for (Tensor& tensor : detail::Run(*compiled, values)) grads.emplace_back(std::move(tensor));
  return grads;
}

}  // namespace

bool IsRecording() {
  return g_recording;
}
bool IsTraining() {
  return g_training;
}

StateScope::StateScope(std::optional<bool> recording, std::optional<bool> training)
    : was_recording_(g_recording), was_training_(g_training) {
  g_recording = recording.value_or(g_recording);
  g_training = training.value_or(g_training);
}
StateScope::~StateScope() {
  g_recording = was_recording_;
  g_training = was_training_;
}

void RecordOp(const OpDef& op, const Attrs& attrs, bool is_train, std::span<const NDArray> inputs,
              std::vector<NDArray>& outputs) {
  if (!g_recording) return;
  bool tracked = false;
  for (const NDArray& input : inputs) tracked = tracked || IsTracked(input);
  if (!tracked) return;
  auto node = std::make_shared<TapeNode>();
  node->op = &op;
  node->attrs = attrs;
  node->is_train = is_train;
  const std::vector<int> mutated = op.MutatedInputs(attrs, is_train);
  for (size_t i = 0; i < inputs.size(); ++i) {
    const detail::Chunk& chunk = inputs[i].chunk();
    TapeInput tape_input;
    tape_input.producer = chunk.producer;
    tape_input.index = chunk.output_index;
    if (chunk.producer == nullptr) tape_input.leaf = inputs[i].chunk_ptr();
    // Backward recomputes the forward from the tape: an input the operator updates in
    // place (BatchNorm's moving statistics) is kept as a copy, so that it is updated once.
    const bool is_mutated = std::find(mutated.begin(), mutated.end(), static_cast<int>(i)) != mutated.end();
    tape_input.value = ValueOf(inputs[i], is_mutated);
    node->inputs.push_back(std::move(tape_input));
  }
  for (uint32_t k = 0; k < outputs.size(); ++k) {
    outputs[k].chunk().producer = node;
    outputs[k].chunk().output_index = k;
    node->outputs.push_back(ValueOf(outputs[k], false));
  }
}

std::vector<NDArray> Grad(const std::vector<NDArray>& heads, const std::vector<NDArray>& variables,
                          const std::vector<NDArray>& head_grads, bool train_mode) {
  lazy::Flush();
  const Pause pause(train_mode);
  TapeGraph tape;
  std::vector<NodeEntry> ys;
  for (const NDArray& head : heads) ys.push_back(tape.Head(head));
  std::vector<NodeEntry> xs;
  for (const NDArray& variable : variables) {
    if (variable.chunk().producer != nullptr) {
      throw Error("autograd::Grad: a variable is the result of a recorded operator, not a leaf");
    }
    xs.push_back(tape.Leaf(variable.chunk_ptr(), ValueOf(variable, false)));
  }
  return Differentiate(tape, ys, heads, head_grads, xs, train_mode);
}

void Backward(const std::vector<NDArray>& heads, const std::vector<NDArray>& head_grads, bool retain_graph,
              bool train_mode) {
  lazy::Flush();  // deferred calls may read the gradients this overwrites
  const Pause pause(train_mode);
  TapeGraph tape;
  std::vector<NodeEntry> ys;
  for (const NDArray& head : heads) ys.push_back(tape.Head(head));
  std::vector<NodeEntry> xs;
  std::vector<std::shared_ptr<detail::Chunk>> targets;
  for (size_t i = 0; i < tape.leaf_chunks().size(); ++i) {
    const auto& chunk = tape.leaf_chunks()[i];
    if (chunk == nullptr || chunk->grad_req == GradReq::kNull) continue;
    xs.push_back({nullptr, 0});
    targets.push_back(chunk);
  }
  if (targets.empty()) {
    throw Error(
        "Backward: no array with an attached gradient was recorded into the heads (AttachGrad before "
        "autograd::Record; or an earlier Backward released their graph: pass retain_graph = true to "
        "differentiate it again)");
  }
  for (size_t i = 0; i < targets.size(); ++i) xs[i] = tape.Leaf(targets[i], ValueOf(NDArray(targets[i]), false));
  const std::vector<NDArray> grads = Differentiate(tape, ys, heads, head_grads, xs, train_mode);
  for (size_t i = 0; i < targets.size(); ++i) {
    NDArray grad(targets[i]->grad);
    if (targets[i]->grad_req == GradReq::kAdd) {
      Invoke("elemwise_add", {grad, grads[i]}, {}, &grad);
    } else {
      grad.Assign(grads[i]);
    }
  }
  if (!retain_graph) {
    for (const NDArray& head : heads) {
      head.chunk().producer = nullptr;
      head.chunk().output_index = 0;
    }
  }
}

}  // namespace kiln::nd::autograd
