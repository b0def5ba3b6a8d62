// The gradient pass and every operator's gradient, against central finite differences
// in float64 on random shapes and attribute settings.
// (tests/gradient_check.h says how.)
#include "passes/gradient.h"

#include <catch2/catch.hpp>
#include <cmath>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "graph/graph.h"
#include "graph/op.h"
#include "passes/interpreter.h"
#include "runtime/error.h"
#include "tests/gradient_check.h"
#include "tests/op_test_util.h"

using namespace kiln;
using namespace kiln::testing;

TEST_CASE("gradients of elementwise and broadcast arithmetic", "[gradient]") {
  uint64_t seed = 1;
  for (const char* op : {"elemwise_add", "elemwise_sub", "elemwise_mul", "elemwise_div"}) {
    const Tensor b = std::string(op) == "elemwise_div" ? Random64({3, 4}, ++seed, 0.5, 2) : Random64({3, 4}, ++seed);
    CheckGradient({op, {}, {Random64({3, 4}, ++seed), b}, {0, 1}}, seed);
  }
  for (const char* op : {"broadcast_add", "broadcast_sub", "broadcast_mul", "broadcast_div", "broadcast_maximum",
                         "broadcast_minimum", "broadcast_power"}) {
    const bool positive = std::string(op) == "broadcast_div" || std::string(op) == "broadcast_power";
    for (const auto& [a_shape, b_shape] : std::vector<std::pair<Shape, Shape>>{
             {{2, 3, 4}, {3, 1}}, {{4}, {2, 1, 4}}, {{1, 5}, {3, 1}}, {{2, 3}, {2, 3}}}) {
      const Tensor a = positive ? Random64(a_shape, ++seed, 0.5, 2) : Random64(a_shape, ++seed);
      const Tensor b = positive ? Random64(b_shape, ++seed, 0.5, 2) : Random64(b_shape, ++seed);
      CheckGradient({op, {}, {a, b}, {0, 1}}, seed);
    }
  }
  CheckGradient(
      {"add_n", {{"num_args", 3}}, {Random64({2, 3}, 1), Random64({2, 3}, 2), Random64({2, 3}, 3)}, {0, 1, 2}}, 4);
}

TEST_CASE("an operator without a gradient is named; unreachable variables get zeros", "[gradient]") {
  GradCase c{"argmax", {{"axis", 1}}, {Random64({2, 3}, 5)}, {0}};
  const Graph forward = OpGraph(c);
  // argmax is not differentiable: no gradient flows, and x's is zeros.
  const Graph with = WithGradients(forward, {"x0"});
  const auto out = Interpret(with, Feeds(c.inputs));
  for (int64_t i = 0; i < out[1].size(); ++i) CHECK(out[1].GetDouble(i) == 0);
  CHECK_THROWS_WITH(WithGradients(forward, {"nope"}), Catch::Contains("'nope' is not a variable"));
  // An operator whose gradient is not defined (yet) is named.
  static const bool registered = [] {
    OpRegistry::Global()
        .Register("_test_no_gradient")
        .Describe("identity without a gradient, for this test")
        .SetInferShape([](const Attrs&, std::vector<ShapeSlot>& in, std::vector<ShapeSlot>& out) { out[0] = in[0]; })
        .SetInferType([](const Attrs&, std::vector<DTypeSlot>& in, std::vector<DTypeSlot>& out) { out[0] = in[0]; });
    return true;
  }();
  (void)registered;
  const Graph undefined = OpGraph({"_test_no_gradient", {}, {Random64({2, 2}, 6)}, {0}});
  CHECK_THROWS_WITH(WithGradients(undefined, {"x0"}),
                    Catch::Contains("operator _test_no_gradient (node 'f') has no gradient"));
}

TEST_CASE("several uses of a value sum their gradients; BlockGrad stops them", "[gradient]") {
  // y = x * x + BlockGrad(x) * 3: dy/dx = 2x.
  const NodePtr x = Node::Variable("x", Shape{2, 3}, DType::kFloat64);
  const auto make = [](const std::string& op, const std::string& name, std::vector<NodeEntry> in,
                       std::map<std::string, AttrValue> attrs = {}) {
    const OpDef& def = OpRegistry::Global().Get(op);
    return NodeEntry{Node::Create(def, name, def.ParseAttrs(attrs, name), std::move(in)), 0};
  };
  const NodeEntry square = make("elemwise_mul", "sq", {{x, 0}, {x, 0}});
  const NodeEntry blocked =
      make("_mul_scalar", "three", {make("BlockGrad", "stop", {{x, 0}})}, {{"scalar", AttrValue{3.0}}});
  Graph graph;
  graph.outputs = {make("elemwise_add", "y", {square, blocked})};
  const Tensor value = Random64({2, 3}, 30);
  const auto out = Interpret(WithGradients(graph, {"x"}), {{"x", value}});
  for (int64_t i = 0; i < value.size(); ++i) CHECK(out[1].GetDouble(i) == Approx(2 * value.GetDouble(i)));
}

TEST_CASE("gradients of elementwise functions", "[gradient]") {
  struct Domain {
    const char* op;
    double low, high;
  };
  uint64_t seed = 20;
  for (const Domain& d :
       std::vector<Domain>{{"relu", -2, 2},       {"sigmoid", -3, 3},    {"tanh", -2, 2},        {"exp", -2, 2},
                           {"log", 0.2, 3},       {"sqrt", 0.2, 3},      {"rsqrt", 0.2, 3},      {"square", -2, 2},
                           {"abs", -2, 2},        {"negative", -2, 2},   {"reciprocal", 0.3, 3}, {"softsign", -3, 3},
                           {"erf", -2, 2},        {"sin", -3, 3},        {"cos", -3, 3},         {"tan", -1.2, 1.2},
                           {"arcsin", -0.9, 0.9}, {"arccos", -0.9, 0.9}, {"arctan", -3, 3},      {"sinh", -2, 2},
                           {"cosh", -2, 2},       {"arcsinh", -3, 3},    {"arccosh", 1.2, 4},    {"arctanh", -0.9, 0.9},
                           {"identity", -2, 2}}) {
    CheckGradient({d.op, {}, {Random64({3, 5}, ++seed, d.low, d.high)}, {0}}, seed);
  }
  for (const char* op : {"_plus_scalar", "_minus_scalar", "_rminus_scalar", "_mul_scalar", "_div_scalar",
                         "_maximum_scalar", "_minimum_scalar"}) {
    CheckGradient({op, {{"scalar", 0.3}}, {Random64({4, 3}, ++seed, -2, 2)}, {0}}, seed);
  }
  CheckGradient({"_rdiv_scalar", {{"scalar", 1.7}}, {Random64({4, 3}, ++seed, 0.5, 2)}, {0}}, seed);
  CheckGradient({"_power_scalar", {{"scalar", 2.5}}, {Random64({4, 3}, ++seed, 0.5, 2)}, {0}}, seed);
  CheckGradient({"_rpower_scalar", {{"scalar", 1.5}}, {Random64({4, 3}, ++seed, -1, 1)}, {0}}, seed);
}

TEST_CASE("gradients of reductions", "[gradient]") {
  uint64_t seed = 60;
  for (const char* op : {"sum", "mean", "prod", "max", "min"}) {
    const bool positive = std::string(op) == "prod";
    const std::vector<AttrMap> settings = {
        {},
        {{"axis", std::vector<int64_t>{1}}},
        {{"axis", std::vector<int64_t>{0, 2}}, {"keepdims", true}},
        {{"axis", std::vector<int64_t>{-1}}, {"exclude", true}},
    };
    for (const AttrMap& attrs : settings) {
      CheckGradient({op, attrs, {Random64({2, 3, 4}, ++seed, positive ? 0.5 : -2, 2)}, {0}}, seed);
    }
  }
}

TEST_CASE("gradients of shape operators", "[gradient]") {
  uint64_t seed = 80;
  CheckGradient({"Reshape", {{"shape", std::vector<int64_t>{4, -1}}}, {Random64({2, 3, 4}, ++seed)}, {0}}, seed);
  CheckGradient({"_np_reshape", {{"newshape", std::vector<int64_t>{6, 4}}}, {Random64({2, 3, 4}, ++seed)}, {0}}, seed);
  CheckGradient({"Flatten", {}, {Random64({2, 3, 4}, ++seed)}, {0}}, seed);
  CheckGradient({"expand_dims", {{"axis", 1}}, {Random64({2, 3}, ++seed)}, {0}}, seed);
  CheckGradient({"squeeze", {}, {Random64({2, 1, 3}, ++seed)}, {0}}, seed);
  CheckGradient({"transpose", {{"axes", std::vector<int64_t>{2, 0, 1}}}, {Random64({2, 3, 4}, ++seed)}, {0}}, seed);
  CheckGradient({"transpose", {}, {Random64({2, 3, 4}, ++seed)}, {0}}, seed);
  CheckGradient({"broadcast_to", {{"shape", std::vector<int64_t>{3, 2, 4}}}, {Random64({1, 2, 1}, ++seed)}, {0}}, seed);
}

TEST_CASE("gradients of matrix products", "[gradient]") {
  uint64_t seed = 100;
  for (const bool ta : {false, true}) {
    for (const bool tb : {false, true}) {
      const Tensor a = Random64(ta ? Shape{4, 3} : Shape{3, 4}, ++seed);
      const Tensor b = Random64(tb ? Shape{5, 4} : Shape{4, 5}, ++seed);
      CheckGradient({"dot", {{"transpose_a", ta}, {"transpose_b", tb}}, {a, b}, {0, 1}}, seed);
      const Tensor ba = Random64(ta ? Shape{2, 4, 3} : Shape{2, 3, 4}, ++seed);
      const Tensor bb = Random64(tb ? Shape{2, 5, 4} : Shape{2, 4, 5}, ++seed);
      CheckGradient({"batch_dot", {{"transpose_a", ta}, {"transpose_b", tb}}, {ba, bb}, {0, 1}}, seed);
    }
  }
  // N-d dot: (2, 3, 4) . (4, 5, 2).
  CheckGradient({"dot", {}, {Random64({2, 3, 4}, ++seed), Random64({4, 5, 2}, ++seed)}, {0, 1}}, seed);
  CheckGradient({"dot", {}, {Random64({4}, ++seed), Random64({4, 3}, ++seed)}, {0, 1}}, seed);
  for (const bool flatten : {true, false}) {
    CheckGradient({"FullyConnected",
                   {{"num_hidden", 5}, {"flatten", flatten}},
                   {Random64({2, 3, 4}, ++seed), Random64({5, flatten ? 12 : 4}, ++seed), Random64({5}, ++seed)},
                   {0, 1, 2}},
                  seed);
  }
  CheckGradient({"FullyConnected",
                 {{"num_hidden", 3}, {"no_bias", true}},
                 {Random64({4, 6}, ++seed), Random64({3, 6}, ++seed)},
                 {0, 1}},
                seed);
}

TEST_CASE("gradients of softmax and log_softmax", "[gradient]") {
  uint64_t seed = 140;
  for (const char* op : {"softmax", "log_softmax"}) {
    CheckGradient({op, {}, {Random64({3, 5}, ++seed, -2, 2)}, {0}}, seed);
    CheckGradient({op, {{"axis", 1}}, {Random64({2, 4, 3}, ++seed, -2, 2)}, {0}}, seed);
    CheckGradient({op, {{"axis", 0}, {"temperature", 2.5}}, {Random64({4, 3}, ++seed, -2, 2)}, {0}}, seed);
  }
  // use_length: positions past the length are outside the softmax (their output is 0
  // whatever the input); lengths of 0 and past the axis too. The length gets no gradient.
  CheckGradient({"softmax",
                 {{"use_length", true}},
                 {Random64({3, 4}, ++seed, -2, 2), Values({3}, {2, 4, 1}, DType::kInt32)},
                 {0}},
                seed);
  CheckGradient({"softmax",
                 {{"use_length", true}, {"axis", 1}, {"temperature", 0.7}},
                 {Random64({2, 3, 2}, ++seed, -2, 2), Values({2, 2}, {1, 3, 0, 5}, DType::kInt32)},
                 {0}},
                seed);
  CheckGradient({"softmax",
                 {{"use_length", true}, {"axis", 0}},
                 {Random64({4, 3}, ++seed, -2, 2), Values({3}, {3, 1, 4}, DType::kInt64)},
                 {0}},
                seed);
  // A head gradient past the length (even NaN) does not reach the input, as in MXNet.
  const GradCase masked{
      "softmax", {{"use_length", true}}, {Random64({2, 3}, ++seed, -2, 2), Values({2}, {1, 2}, DType::kInt32)}, {0}};
  const Graph forward = OpGraph(masked);
  auto feeds = Feeds(masked.inputs);
  feeds[forward.OutputNames()[0] + "_head_grad"] = Values({2, 3}, {0.5, NAN, NAN, -0.25, 1.0, NAN}, DType::kFloat64);
  const auto out = Interpret(WithGradients(forward, {"x0"}, /*head_grad_inputs=*/true), feeds);
  for (const int64_t i : {0, 1, 2, 5}) CHECK(out[1].GetDouble(i) == 0);
  const double y3 = out[0].GetDouble(3), y4 = out[0].GetDouble(4), weighted = -0.25 * y3 + 1.0 * y4;
  CHECK(out[1].GetDouble(3) == Approx(y3 * (-0.25 - weighted)));
  CHECK(out[1].GetDouble(4) == Approx(y4 * (1.0 - weighted)));
}

TEST_CASE("loss layers' gradients are their losses' gradients (MXNet's semantics)", "[gradient][loss]") {
  const Tensor labels = Values({4}, {2, 0, 1, 2}, DType::kFloat64);
  const auto cross_entropy = [](double scale, double divisor, double ignore) {
    return [=](const Tensor& out, const Tensor& label) {
      double loss = 0;
      const int64_t classes = out.size() / label.size();
      for (int64_t r = 0; r < label.size(); ++r) {
        const auto k = static_cast<int64_t>(label.GetDouble(r));
        if (k == static_cast<int64_t>(ignore)) continue;
        loss -= std::log(out.GetDouble(r * classes + k));
      }
      return loss * scale / divisor;
    };
  };
  CheckLossGradient({"SoftmaxOutput", {}, {Random64({4, 3}, 7, -2, 2), labels}, {0}}, cross_entropy(1, 1, -1));
  CheckLossGradient(
      {"SoftmaxOutput", {{"grad_scale", 0.5}, {"normalization", "batch"}}, {Random64({4, 3}, 8, -2, 2), labels}, {0}},
      cross_entropy(0.5, 4, -1));
  // Label 2 ignored: 2 rows remain, and valid normalization divides by them.
  CheckLossGradient({"SoftmaxOutput",
                     {{"use_ignore", true}, {"ignore_label", 2.0}, {"normalization", "valid"}},
                     {Random64({4, 3}, 9, -2, 2), labels},
                     {0}},
                    cross_entropy(1, 2, 2));
  const auto squared = [](double scale) {
    return [=](const Tensor& out, const Tensor& label) {
      double loss = 0;
      for (int64_t i = 0; i < out.size(); ++i) loss += 0.5 * std::pow(out.GetDouble(i) - label.GetDouble(i), 2);
      return loss * scale;
    };
  };
  // (4, 2) outputs: num_output 2, so the gradient is halved.
  CheckLossGradient(
      {"LinearRegressionOutput", {{"grad_scale", 3.0}}, {Random64({4, 2}, 10), Random64({4, 2}, 11)}, {0}},
      squared(1.5));
  CheckLossGradient({"MAERegressionOutput", {}, {Random64({5, 1}, 12), Random64({5}, 13)}, {0}},
                    [](const Tensor& out, const Tensor& label) {
                      double loss = 0;
                      for (int64_t i = 0; i < out.size(); ++i) loss += std::fabs(out.GetDouble(i) - label.GetDouble(i));
                      return loss;
                    });
  // Logistic regression: the gradient of binary cross-entropy with logits.
  CheckLossGradient({"LogisticRegressionOutput", {}, {Random64({6, 1}, 14, -2, 2), Random64({6, 1}, 15, 0, 1)}, {0}},
                    [](const Tensor& out, const Tensor& label) {
                      double loss = 0;
                      for (int64_t i = 0; i < out.size(); ++i) {
                        const double p = out.GetDouble(i), t = label.GetDouble(i);
                        loss -= t * std::log(p) + (1 - t) * std::log(1 - p);
                      }
                      return loss;
                    });
}

TEST_CASE("SoftmaxOutput's gradient: multi_output, 4-d data, probability labels (MXNet's normalizations)",
          "[gradient][loss]") {
  // Cross-entropy of the (outer, classes, inner) rows: row r = (o, i) takes the class of
  // the flattened label's element r (skipped where it is `skip`), times scale / divisor.
  const auto cross_entropy = [](int64_t classes, int64_t inner, int64_t rows, double scale, double divisor,
                                int64_t skip) {
    return [=](const Tensor& out, const Tensor& label) {
      double loss = 0;
      for (int64_t r = 0; r < rows; ++r) {
        const auto k = static_cast<int64_t>(label.GetDouble(r));
        if (k == skip) continue;
        loss -= std::log(out.GetDouble(((r / inner) * classes + k) * inner + r % inner));
      }
      return loss * scale / divisor;
    };
  };
  constexpr int64_t kNone = -100;
  // multi_output, (2, 3, 4): 8 labels, three of them 1. null divides by the spatial size
  // (4), batch by it times N (8), valid by the labels other than ignore_label (5),
  // whether use_ignore skips them or not.
  const Tensor labels = Values({2, 4}, {0, 1, 2, 1, 1, 2, 0, 0}, DType::kFloat64);
  struct Multi {
    const char* normalization;
    bool use_ignore;
    double divisor;
  };
  uint64_t seed = 20;
  for (const Multi& m : {Multi{"null", false, 4}, Multi{"batch", false, 8}, Multi{"valid", false, 5},
                         Multi{"null", true, 4}, Multi{"batch", true, 8}, Multi{"valid", true, 5}}) {
    INFO("multi_output, normalization " << m.normalization << ", use_ignore " << m.use_ignore);
    CheckLossGradient({"SoftmaxOutput",
                       {{"multi_output", true},
                        {"normalization", m.normalization},
                        {"use_ignore", m.use_ignore},
                        {"ignore_label", 1.0},
                        {"grad_scale", 2.0}},
                       {Random64({2, 3, 4}, ++seed, -2, 2), labels},
                       {0}},
                      cross_entropy(3, 4, 8, 2.0, m.divisor, m.use_ignore ? 1 : kNone));
  }
  // multi_output 4-d (N, C, H, W), labels (N, H*W), (N, H, W) and (N, 1, H, W).
  for (const Shape& label_shape : {Shape{2, 4}, Shape{2, 2, 2}, Shape{2, 1, 2, 2}}) {
    INFO("multi_output 4-d, label " << ShapeToString(label_shape));
    const Tensor label = Values(label_shape, {2, 0, 1, 1, 0, 2, 2, 0}, DType::kFloat64);
    CheckLossGradient({"SoftmaxOutput", {{"multi_output", true}}, {Random64({2, 3, 2, 2}, ++seed, -2, 2), label}, {0}},
                      cross_entropy(3, 4, 8, 1, 4, kNone));
    CheckLossGradient({"SoftmaxOutput",
                       {{"multi_output", true}, {"normalization", "batch"}},
                       {Random64({2, 3, 2, 2}, ++seed, -2, 2), label},
                       {0}},
                      cross_entropy(3, 4, 8, 1, 8, kNone));
  }
  // Without multi_output 4-d data is (N, C*H*W) = (2, 8) rows reading the first 2 of the
  // 8 (N, C, H) labels; batch divides by all 8, valid by those other than ignore_label
  // (5: three are 3), and use_ignore skips row 1 (label 3).
  const Tensor flat_labels = Values({2, 2, 2}, {5, 3, 7, 3, 0, 3, 6, 2}, DType::kFloat64);
  CheckLossGradient({"SoftmaxOutput", {}, {Random64({2, 2, 2, 2}, ++seed, -2, 2), flat_labels}, {0}},
                    cross_entropy(8, 1, 2, 1, 1, kNone));
  CheckLossGradient(
      {"SoftmaxOutput", {{"normalization", "batch"}}, {Random64({2, 2, 2, 2}, ++seed, -2, 2), flat_labels}, {0}},
      cross_entropy(8, 1, 2, 1, 8, kNone));
  CheckLossGradient({"SoftmaxOutput",
                     {{"normalization", "valid"}, {"use_ignore", true}, {"ignore_label", 3.0}},
                     {Random64({2, 2, 2, 2}, ++seed, -2, 2), flat_labels},
                     {0}},
                    cross_entropy(8, 1, 2, 1, 5, 3));
  // preserve_shape: (2, 3) rows of 4 classes, batch divides by the 6 labels.
  CheckLossGradient({"SoftmaxOutput",
                     {{"preserve_shape", true}, {"normalization", "batch"}, {"grad_scale", 0.5}},
                     {Random64({2, 3, 4}, ++seed, -2, 2), Values({2, 3}, {3, 0, 1, 2, 2, 0}, DType::kFloat64)},
                     {0}},
                    cross_entropy(4, 1, 6, 0.5, 6, kNone));
  // Probability labels (data's shape): the gradient of -sum p log softmax times
  // grad_scale, with no normalization (MXNet's), for rows of p summing to 1.
  Tensor probabilities = RandomTensor({3, 4}, ++seed, 0.1, 1, DType::kFloat64);
  for (int64_t r = 0; r < 3; ++r) {
    double sum = 0;
    for (int64_t c = 0; c < 4; ++c) sum += probabilities.GetDouble(r * 4 + c);
    for (int64_t c = 0; c < 4; ++c) probabilities.SetDouble(r * 4 + c, probabilities.GetDouble(r * 4 + c) / sum);
  }
  CheckLossGradient({"SoftmaxOutput",
                     {{"normalization", "batch"}, {"grad_scale", 2.0}},
                     {Random64({3, 4}, ++seed, -2, 2), probabilities},
                     {0}},
                    [](const Tensor& out, const Tensor& label) {
                      double loss = 0;
                      for (int64_t i = 0; i < out.size(); ++i) loss -= label.GetDouble(i) * std::log(out.GetDouble(i));
                      return 2 * loss;
                    });
}
