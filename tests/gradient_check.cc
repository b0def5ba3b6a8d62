#include "tests/gradient_check.h"

#include <catch2/catch.hpp>
#include <cmath>

#include "graph/op.h"
#include "passes/gradient.h"
#include "passes/interpreter.h"
#include "tests/op_test_util.h"

namespace kiln::testing {
namespace {

double Loss(const Graph& graph, const std::vector<Tensor>& inputs, const std::vector<Tensor>& heads, bool is_train) {
  InterpretOptions options;
  options.is_train = is_train;
  const auto outputs = Interpret(graph, Feeds(inputs), options);
  double loss = 0;
  for (size_t k = 0; k < heads.size(); ++k) {
    for (int64_t i = 0; i < outputs[k].size(); ++i) loss += outputs[k].GetDouble(i) * heads[k].GetDouble(i);
  }
  return loss;
}

}  // namespace

// The forward graph of one operator on variables x0, x1, ...
Graph OpGraph(const GradCase& c) {
  const OpDef& op = OpRegistry::Global().Get(c.op);
  std::map<std::string, AttrValue> values;
  for (const auto& [key, arg] : c.attrs) values[key] = arg.value;
  std::vector<NodeEntry> inputs;
  for (size_t i = 0; i < c.inputs.size(); ++i) {
    inputs.push_back({Node::Variable("x" + std::to_string(i), c.inputs[i].shape(), c.inputs[i].dtype()), 0});
  }
  const NodePtr node = Node::Create(op, "f", op.ParseAttrs(values, "f"), inputs);
  Graph graph;
  for (uint32_t i = 0; i < node->num_outputs(); ++i) graph.outputs.push_back({node, i});
  return graph;
}

std::map<std::string, Tensor> Feeds(const std::vector<Tensor>& inputs) {
  std::map<std::string, Tensor> feeds;
  for (size_t i = 0; i < inputs.size(); ++i) feeds["x" + std::to_string(i)] = inputs[i];
  return feeds;
}

void CheckGradient(const GradCase& c, uint64_t seed) {
  INFO(c.op << " on " << c.inputs.size() << " inputs, input 0 " << ShapeToString(c.inputs[0].shape()));
  const Graph forward = OpGraph(c);
  std::vector<std::string> wrt;
  for (const size_t i : c.wrt) wrt.push_back("x" + std::to_string(i));
  const Graph with_grads = WithGradients(forward, wrt, /*head_grad_inputs=*/true, c.is_train);
  // Random head gradients, one per output.
  InterpretOptions options;
  options.is_train = c.is_train;
  const auto outputs = Interpret(forward, Feeds(c.inputs), options);
  std::vector<Tensor> heads;
  auto feeds = Feeds(c.inputs);
  const auto names = forward.OutputNames();
  for (size_t k = 0; k < outputs.size(); ++k) {
    heads.push_back(RandomTensor(outputs[k].shape(), seed + 100 + k, -1, 1, outputs[k].dtype()));
    feeds[names[k] + "_head_grad"] = heads.back();
  }
  const auto results = Interpret(with_grads, feeds, options);
  for (size_t w = 0; w < c.wrt.size(); ++w) {
    const size_t input = c.wrt[w];
    const Tensor& analytic = results[outputs.size() + w];
    INFO("gradient of input " << input);
    REQUIRE(analytic.shape() == c.inputs[input].shape());
    // Every element of small inputs, a spread of them in larger ones.
    const int64_t n = c.inputs[input].size();
    const int64_t step = std::max<int64_t>(1, n / 40);
    for (int64_t e = 0; e < n; e += step) {
      std::vector<Tensor> moved = c.inputs;
      moved[input] = c.inputs[input].CastTo(c.inputs[input].dtype());  // a copy
      const double x = c.inputs[input].GetDouble(e);
      const double eps = 1e-6 * std::max(1.0, std::fabs(x));
      moved[input].SetDouble(e, x + eps);
      const double up = Loss(forward, moved, heads, c.is_train);
      moved[input].SetDouble(e, x - eps);
      const double down = Loss(forward, moved, heads, c.is_train);
      const double numeric = (up - down) / (2 * eps);
      INFO("element " << e << ": analytic " << analytic.GetDouble(e) << ", numeric " << numeric);
      CHECK(std::fabs(analytic.GetDouble(e) - numeric) <= 1e-7 + 1e-5 * std::fabs(numeric));
    }
  }
}

Tensor Random64(const Shape& shape, uint64_t seed, double low, double high) {
  return RandomTensor(shape, seed, low, high, DType::kFloat64);
}

// A loss layer's gradient is that of a loss of its output, not of the output itself:
// checked against finite differences of `loss`(outputs, label).
void CheckLossGradient(const GradCase& c, const std::function<double(const Tensor& out, const Tensor& label)>& loss) {
  INFO(c.op);
  const Graph forward = OpGraph(c);
  const Graph with_grads = WithGradients(forward, {"x0"});
  const auto results = Interpret(with_grads, Feeds(c.inputs));
  const Tensor& analytic = results[1];
  const Tensor& x = c.inputs[0];
  for (int64_t e = 0; e < x.size(); ++e) {
    std::vector<Tensor> moved = c.inputs;
    moved[0] = x.CastTo(x.dtype());
    const double eps = 1e-6;
    moved[0].SetDouble(e, x.GetDouble(e) + eps);
    const double up = loss(Interpret(forward, Feeds(moved))[0], c.inputs[1]);
    moved[0].SetDouble(e, x.GetDouble(e) - eps);
    const double down = loss(Interpret(forward, Feeds(moved))[0], c.inputs[1]);
    const double numeric = (up - down) / (2 * eps);
    INFO("element " << e << ": analytic " << analytic.GetDouble(e) << ", numeric " << numeric);
    CHECK(std::fabs(analytic.GetDouble(e) - numeric) <= 1e-7 + 1e-5 * std::fabs(numeric));
  }
}

}  // namespace kiln::testing
