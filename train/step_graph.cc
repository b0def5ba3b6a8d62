#include "train/step_graph.h"

#include <algorithm>

#include "graph/op.h"
#include "passes/gradient.h"
#include "passes/graph_rewrite.h"
#include "runtime/error.h"

namespace kiln {
namespace {

NodeEntry Apply(const std::string& op_name, const std::string& name, std::vector<NodeEntry> inputs,
                const std::map<std::string, AttrValue>& attrs = {}) {
  const OpDef& op = OpRegistry::Global().Get(op_name);
  return {Node::Create(op, name, op.ParseAttrs(attrs, name), std::move(inputs)), 0};
}

NodeEntry Scalar(const std::string& name, DType dtype) {
  return {Node::Variable(name, Shape{1}, dtype), 0};
}

bool Contains(const std::vector<std::string>& names, const std::string& name) {
  return std::find(names.begin(), names.end(), name) != names.end();
}

// Dropout draws a fresh mask at every run of the step: each active Dropout becomes
// _dropout_step reading the step counter. Returns whether any did.
bool CountDropoutSteps(Graph& graph, const NodeEntry& counter) {
  const OpDef& dropout = OpRegistry::Global().Get("Dropout");
  const OpDef& dropout_step = OpRegistry::Global().Get("_dropout_step");
  bool any = false;
  for (const NodePtr& node : TopologicalOrder(graph.outputs)) {
    if (node->op != &dropout || node->attrs.Float("p") == 0) continue;
    node->op = &dropout_step;
    node->inputs.push_back(counter);
    any = true;
  }
  if (any) graph.InvalidateIndex();
  return any;
}

}  // namespace

GradReq ParseGradReq(const std::string& text) {
  if (text == "null") return GradReq::kNull;
  if (text == "write") return GradReq::kWrite;
  if (text == "add") return GradReq::kAdd;
  throw Error("grad_req: expected null, write or add, given '" + text + "'");
}

const char* GradReqName(GradReq req) {
  switch (req) {
    case GradReq::kNull: return "null";
    case GradReq::kWrite: return "write";
    case GradReq::kAdd: return "add";
  }
  return "?";
}

std::string StateName(const std::string& param, const std::string& state) {
  return param + "__" + state;
}
std::string NextName(const std::string& name) {
  return name + "_next";
}
std::string GradName(const std::string& param) {
  return param + "_grad";
}

StepGraph BuildStepGraph(const Graph& model, const StepGraphOptions& options) {
  StepGraph step;
  Graph graph = CloneGraph(model);
  step.aux = graph.ListAuxiliaryStates();
  const std::vector<std::string> arguments = graph.ListArguments();
  for (const auto& name : arguments) {
    const bool is_data = options.data_names.empty() ? !graph.params.count(name) : Contains(options.data_names, name);
    (is_data ? step.data : step.params).push_back(name);
  }
  for (const auto& name : options.data_names) {
    if (!Contains(arguments, name)) throw Error("training: '" + name + "' is not an input of the model");
  }
  for (const auto& [name, req] : options.grad_req) {
    if (!Contains(step.params, name)) {
      throw Error("training: grad_req given for '" + name + "', which is not a learned parameter of the model");
    }
  }

  // Shapes and dtypes of every variable: the options', then the embedded values'.
  std::map<std::string, Shape> shapes = options.shapes;
  std::map<std::string, DType> dtypes = options.dtypes;
  for (const auto& [name, value] : graph.params) {
    shapes.emplace(name, value.shape());
    dtypes.emplace(name, value.dtype());
  }
  for (const auto& name : graph.ListInputs()) {
    if (!shapes.count(name)) throw Error("training: the shape of input '" + name + "' is not given");
    dtypes.emplace(name, DType::kFloat32);
  }
  graph.params.clear();

  std::map<std::string, NodeEntry> variables;
  const IndexedGraph& indexed = graph.indexed();
  for (const size_t id : indexed.input_node_ids()) variables[indexed.node(id).name] = {indexed.node_ptr(id), 0};

  const NodeEntry counter = Scalar(kStepInput, DType::kInt64);
  step.uses_step_counter = CountDropoutSteps(graph, counter);
  step.num_forward_outputs = graph.outputs.size();
  std::vector<std::string> output_names = graph.OutputNames();

  GradientRequest request;
  request.ys = graph.outputs;
  request.head_grads.assign(graph.outputs.size(), std::nullopt);
  request.shapes = shapes;
  request.dtypes = dtypes;
  if (step.uses_step_counter) {
    request.shapes[kStepInput] = {1};
    request.dtypes[kStepInput] = DType::kInt64;
  }
  for (const auto& name : step.params) {
    const auto it = options.grad_req.find(name);
    if (it != options.grad_req.end() && it->second == GradReq::kNull) continue;
    step.trained.push_back(name);
    request.xs.push_back(variables.at(name));
  }
  const std::vector<NodeEntry> grads = BuildGradient(request);

  const NodeEntry lr = Scalar(kLrInput, DType::kFloat32);
  const auto lr_of = [&](const std::string& param) {
    const auto it = options.lr_mult.find(param);
    if (it == options.lr_mult.end() || it->second == 1) return lr;
    return Apply("_mul_scalar", param + "_lr", {lr}, {{"scalar", AttrValue{it->second}}});
  };
  std::optional<NodeEntry> eta;
  for (size_t k = 0; k < step.trained.size(); ++k) {
    const std::string& name = step.trained[k];
    const NodeEntry& weight = variables.at(name);
    NodeEntry grad = grads[k];
    const auto req = options.grad_req.count(name) ? options.grad_req.at(name) : GradReq::kWrite;
    if (req == GradReq::kAdd) {
      if (options.optimizer != nullptr) {
        throw Error("training: grad_req add for '" + name +
                    "' accumulates gradients between updates; a step that also updates needs write or null");
      }
      const NodeEntry sum = {Node::Variable(GradName(name), shapes.at(name), dtypes.at(name)), 0};
      grad = Apply("elemwise_add", name + "_grad_accumulate", {sum, grad});
    }
    if (options.optimizer == nullptr) {
      graph.outputs.push_back(grad);
      output_names.push_back(GradName(name));
      continue;
    }
    const auto wd_it = options.wd_mult.find(name);
    const UpdateRule rule = options.optimizer->Rule(wd_it == options.wd_mult.end() ? 1.0 : wd_it->second);
    std::vector<NodeEntry> inputs = {weight, grad};
    for (const auto& state : rule.states) {
      step.state_names.push_back(StateName(name, state));
      inputs.push_back({Node::Variable(StateName(name, state), shapes.at(name), dtypes.at(name)), 0});
    }
    inputs.push_back(lr_of(name));
    if (rule.takes_eta) {
      if (!eta) eta = Scalar(kEtaInput, DType::kFloat32);
      inputs.push_back(*eta);
      step.uses_eta = true;
    }
    const NodeEntry update = Apply(rule.op, name + "_update", std::move(inputs), rule.attrs);
    graph.outputs.push_back(update);
    output_names.push_back(NextName(name));
    for (size_t s = 0; s < rule.states.size(); ++s) {
      graph.outputs.push_back({update.node, static_cast<uint32_t>(s + 1)});
      output_names.push_back(NextName(StateName(name, rule.states[s])));
    }
  }
  graph.output_names = std::move(output_names);
  graph.InvalidateIndex();
  step.graph = std::move(graph);
  return step;
}

}  // namespace kiln
