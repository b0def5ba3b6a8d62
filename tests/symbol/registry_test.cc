// Every operator the foundation promises is registered, complete, and reachable by its
// MXNet aliases.
#include <catch2/catch.hpp>

#include "graph/op.h"

using namespace kiln;

namespace {
const std::vector<std::string> kPromised = {
    // elementwise
    "elemwise_add", "elemwise_sub", "elemwise_mul", "elemwise_div", "broadcast_add", "broadcast_sub", "broadcast_mul",
    "broadcast_div", "broadcast_maximum", "broadcast_minimum", "broadcast_power", "broadcast_equal",
    "broadcast_not_equal", "broadcast_greater", "broadcast_lesser", "_plus_scalar", "_minus_scalar", "_rminus_scalar",
    "_mul_scalar", "_div_scalar", "_rdiv_scalar", "_maximum_scalar", "_minimum_scalar", "_power_scalar", "add_n",
    // unary
    "relu", "sigmoid", "tanh", "exp", "log", "sqrt", "rsqrt", "square", "abs", "negative", "reciprocal", "softsign",
    "erf", "Activation", "LeakyReLU", "clip", "Cast",
    // reductions
    "sum", "mean", "max", "min", "prod", "argmax", "argmin",
    // matrix
    "dot", "batch_dot", "FullyConnected",
    // nn
    "Convolution", "Pooling", "BatchNorm", "Dropout", "softmax", "log_softmax", "SoftmaxOutput",
    "LinearRegressionOutput", "LogisticRegressionOutput", "softmax_cross_entropy", "Embedding", "one_hot",
    // shape
    "Reshape", "Flatten", "transpose", "expand_dims", "squeeze", "Concat", "split", "SliceChannel", "slice",
    "slice_axis", "tile", "repeat", "broadcast_to", "stack", "where", "zeros_like", "ones_like", "BlockGrad",
    "identity",
    // creation
    "zeros", "ones", "full", "arange", "random_uniform", "random_normal",
    // what the ONNX importer needs beyond them
    "take", "Pad", "floor", "ceil", "round", "rint", "fix", "trunc", "sign", "logical_not", "broadcast_mod",
    "broadcast_greater_equal", "broadcast_lesser_equal", "broadcast_logical_and", "broadcast_logical_or",
    "broadcast_logical_xor", "_mod_scalar", "_rmod_scalar"};
}  // namespace

TEST_CASE("every promised operator is registered with shape inference and a reference", "[registry]") {
  for (const auto& name : kPromised) {
    INFO(name);
    const OpDef* op = OpRegistry::Global().Find(name);
    REQUIRE(op != nullptr);
    CHECK(op->has_reference());
    CHECK_FALSE(op->description().empty());
  }
}

TEST_CASE("aliases resolve to their operator", "[registry]") {
  CHECK(&OpRegistry::Global().Get("SliceChannel") == &OpRegistry::Global().Get("split"));
  CHECK(&OpRegistry::Global().Get("ElementWiseSum") == &OpRegistry::Global().Get("add_n"));
  CHECK_THROWS_WITH(OpRegistry::Global().Get("Convolution2"), Catch::Contains("unknown operator 'Convolution2'"));
}

TEST_CASE("the listing is sorted and has no duplicates", "[registry]") {
  const auto ops = OpRegistry::Global().List();
  CHECK(ops.size() >= kPromised.size() - 1);  // SliceChannel is an alias
  for (size_t i = 1; i < ops.size(); ++i) CHECK(ops[i - 1]->name() < ops[i]->name());
}

TEST_CASE("every registered operator is complete: description, reference and lowering", "[registry]") {
  for (const OpDef* op : OpRegistry::Global().List()) {
    INFO(op->name());
    CHECK_FALSE(op->description().empty());
    CHECK(op->has_reference());
    CHECK(op->has_lowering());
  }
}

TEST_CASE("operators that draw at inference say so; the rest never fold differently", "[registry]") {
  const auto random = [](const std::string& op, const AttrMap& given) {
    std::map<std::string, AttrValue> values;
    for (const auto& [key, arg] : given) values[key] = arg.value;
    const OpDef& def = OpRegistry::Global().Get(op);
    return def.RandomAtInference(def.ParseAttrs(values, "test"));
  };
  CHECK(random("random_uniform", {{"shape", {2}}}));
  CHECK(random("random_normal", {{"shape", {2}}}));
  CHECK(random("Dropout", {{"mode", "always"}, {"p", 0.5}}));
  CHECK_FALSE(random("Dropout", {{"mode", "always"}, {"p", 0.0}}));
  CHECK_FALSE(random("Dropout", {{"p", 0.5}}));  // training mode: identity at inference
  CHECK_FALSE(random("relu", {}));
}
