// Gradients of the shape, indexing, activation, scan and scatter operators against
// central finite differences in float64 (tests/gradient_check.h), on random shapes,
// axes (negative too) and attribute settings. Indices are inputs not differentiated.
#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "graph/graph.h"
#include "passes/gradient.h"
#include "passes/interpreter.h"
#include "runtime/error.h"
#include "tests/gradient_check.h"
#include "tests/op_test_util.h"

using namespace kiln;
using namespace kiln::testing;

namespace {

Tensor Ints(const Shape& shape, const std::vector<double>& values, DType dtype = DType::kInt64) {
  return Values(shape, values, dtype);
}

}  // namespace

TEST_CASE("gradients of joining and splitting", "[gradient][shape]") {
  uint64_t seed = 100;
  for (const int64_t dim : {0, 1, -1}) {
    Shape a{2, 3, 4};
    Shape b{2, 3, 4};
    const int64_t axis = dim < 0 ? dim + 3 : dim;
    b[axis] = 2;
    CheckGradient({"Concat",
                   {{"num_args", 3}, {"dim", dim}},
                   {Random64(a, ++seed), Random64(b, ++seed), Random64(a, ++seed)},
                   {0, 1, 2}},
                  seed);
  }
  for (const int64_t axis : {0, 2, -2}) {
    CheckGradient(
        {"stack", {{"num_args", 2}, {"axis", axis}}, {Random64({2, 3}, ++seed), Random64({2, 3}, ++seed)}, {0, 1}},
        seed);
  }
  CheckGradient({"split", {{"num_outputs", 2}, {"axis", -1}}, {Random64({3, 4}, ++seed)}, {0}}, seed);
  CheckGradient(
      {"SliceChannel", {{"num_outputs", 3}, {"axis", 1}, {"squeeze_axis", true}}, {Random64({2, 3, 2}, ++seed)}, {0}},
      seed);
  CheckGradient({"split", {{"num_outputs", 1}, {"axis", 0}}, {Random64({2, 3}, ++seed)}, {0}}, seed);
}

TEST_CASE("gradients of slices place the gradient into zeros", "[gradient][shape]") {
  uint64_t seed = 200;
  CheckGradient({"slice_axis", {{"axis", 1}, {"begin", 1}, {"end", 3}}, {Random64({2, 5}, ++seed)}, {0}}, seed);
  CheckGradient(
      {"slice_axis", {{"axis", -1}, {"begin", -3}, {"end", std::monostate{}}}, {Random64({2, 3, 4}, ++seed)}, {0}},
      seed);
  CheckGradient({"slice_axis", {{"axis", 0}, {"begin", 0}, {"end", 2}}, {Random64({2, 3}, ++seed)}, {0}}, seed);
  for (const auto& [begin, end, step] : std::vector<std::tuple<std::string, std::string, std::string>>{
           {"(1, 0)", "(3, None)", "()"},
           {"(0, None)", "(None, None)", "(2, 3)"},
           {"(None, -1)", "(None, 0)", "(-1, -2)"},
           {"(4, 3)", "(0, 0)", "(-3, -2)"},
           {"(-2,)", "(None,)", "(None,)"},
       }) {
    CheckGradient({"slice", {{"begin", begin}, {"end", end}, {"step", step}}, {Random64({5, 7, 2}, ++seed)}, {0}},
                  seed);
  }
}

TEST_CASE("gradients of tile, repeat, Pad and where", "[gradient][shape]") {
  uint64_t seed = 300;
  CheckGradient({"tile", {{"reps", std::vector<int64_t>{2, 3}}}, {Random64({2, 2}, ++seed)}, {0}}, seed);
  CheckGradient({"tile", {{"reps", std::vector<int64_t>{2, 1, 3}}}, {Random64({3, 2}, ++seed)}, {0}}, seed);
  CheckGradient({"tile", {{"reps", std::vector<int64_t>{2}}}, {Random64({2, 3}, ++seed)}, {0}}, seed);
  CheckGradient({"repeat", {{"repeats", 3}, {"axis", 1}}, {Random64({2, 3}, ++seed)}, {0}}, seed);
  CheckGradient({"repeat", {{"repeats", 2}, {"axis", -1}}, {Random64({2, 2, 3}, ++seed)}, {0}}, seed);
  CheckGradient({"repeat", {{"repeats", 2}}, {Random64({2, 3}, ++seed)}, {0}}, seed);
  CheckGradient(
      {"Pad",
       {{"mode", "constant"}, {"pad_width", std::vector<int64_t>{0, 0, 0, 0, 1, 2, 2, 0}}, {"constant_value", 1.5}},
       {Random64({1, 2, 3, 3}, ++seed)},
       {0}},
      seed);
  CheckGradient({"Pad",
                 {{"mode", "constant"}, {"pad_width", std::vector<int64_t>{0, 0, 0, 0, 1, 1, -1, 2, 0, -1}}},
                 {Random64({2, 1, 2, 3, 3}, ++seed)},
                 {0}},
                seed);
  const GradCase edge{"Pad",
                      {{"mode", "edge"}, {"pad_width", std::vector<int64_t>{0, 0, 0, 0, 1, 1, 1, 1}}},
                      {Random64({1, 1, 2, 2}, ++seed)},
                      {0}};
  CHECK_THROWS_WITH(WithGradients(OpGraph(edge), {"x0"}), Catch::Contains("mode 'edge' is not supported"));
  const Tensor condition = Values({2, 3}, {1, 0, 0, 1, 1, 0}, DType::kFloat64);
  CheckGradient({"where", {}, {condition, Random64({2, 3}, ++seed), Random64({2, 3}, ++seed)}, {1, 2}}, seed);
  const Tensor rows = Values({2}, {0, 1}, DType::kFloat64);
  CheckGradient({"where", {}, {rows, Random64({2, 3}, ++seed), Random64({2, 3}, ++seed)}, {1, 2}}, seed);
}

TEST_CASE("gradients of activations, clip and Cast", "[gradient][unary]") {
  uint64_t seed = 400;
  for (const char* act : {"relu", "sigmoid", "tanh", "softrelu", "softsign"}) {
    CheckGradient({"Activation", {{"act_type", act}}, {Random64({3, 4}, ++seed, -2, 2)}, {0}}, seed);
  }
  for (const char* act : {"leaky", "elu", "selu", "gelu"}) {
    CheckGradient({"LeakyReLU", {{"act_type", act}, {"slope", 0.3}}, {Random64({3, 4}, ++seed, -2, 2)}, {0}}, seed);
  }
  CheckGradient({"LeakyReLU", {{"act_type", "rrelu"}}, {Random64({3, 4}, ++seed, -2, 2)}, {0}}, seed);
  CheckGradient(
      {"LeakyReLU", {{"act_type", "prelu"}}, {Random64({2, 3, 2, 2}, ++seed, -2, 2), Random64({3}, ++seed)}, {0, 1}},
      seed);
  CheckGradient(
      {"LeakyReLU", {{"act_type", "prelu"}}, {Random64({4, 3}, ++seed, -2, 2), Random64({1}, ++seed)}, {0, 1}}, seed);
  CheckGradient({"clip", {{"a_min", -0.5}, {"a_max", 0.3}}, {Random64({4, 5}, ++seed)}, {0}}, seed);
  CheckGradient({"Cast", {{"dtype", "float64"}}, {Random64({2, 3}, ++seed)}, {0}}, seed);
  // Through float32 (whose rounding finite differences would see): the head's ones, cast
  // back to float64.
  const GradCase narrow{"Cast", {{"dtype", "float32"}}, {Random64({2, 3}, ++seed)}, {0}};
  const auto out = Interpret(WithGradients(OpGraph(narrow), {"x0"}), Feeds(narrow.inputs));
  CHECK(out[1].dtype() == DType::kFloat64);
  for (int64_t i = 0; i < out[1].size(); ++i) CHECK(out[1].GetDouble(i) == 1);
}

TEST_CASE("gradients of index gathers", "[gradient][index]") {
  uint64_t seed = 500;
  for (const DType dtype : {DType::kInt64, DType::kFloat64}) {
    const Tensor ids = Ints({2, 3}, {0, 2, 2, 4, 1, 0}, dtype);
    CheckGradient({"Embedding", {{"input_dim", 5}, {"output_dim", 3}}, {ids, Random64({5, 3}, ++seed)}, {1}}, seed);
    CheckGradient({"take", {}, {Random64({5, 3}, ++seed), ids}, {0}}, seed);
    CheckGradient({"take", {{"axis", -1}}, {Random64({2, 3, 5}, ++seed), ids}, {0}}, seed);
    // Out of range: clipped or wrapped as the forward reads them.
    const Tensor wild = Ints({4}, {-1, 7, 2, -6}, dtype);
    CheckGradient({"take", {{"axis", 1}, {"mode", "wrap"}}, {Random64({2, 5, 2}, ++seed), wild}, {0}}, seed);
    CheckGradient({"take", {{"axis", 1}, {"mode", "clip"}}, {Random64({2, 5, 2}, ++seed), wild}, {0}}, seed);
    const Tensor picked = Ints({2, 4}, {0, 2, 1, 2, 1, 1, 0, 2}, dtype);
    CheckGradient({"pick", {{"axis", 1}}, {Random64({2, 3, 4}, ++seed), picked}, {0}}, seed);
    CheckGradient({"pick", {{"axis", -1}, {"keepdims", true}}, {Random64({2, 4, 3}, ++seed), picked}, {0}}, seed);
    const Tensor wrapped = Ints({2, 4}, {-1, 5, 1, 2, 3, 1, 0, -4}, dtype);
    CheckGradient({"pick", {{"axis", 1}, {"mode", "wrap"}}, {Random64({2, 3, 4}, ++seed), wrapped}, {0}}, seed);
  }
  const GradCase hot{"one_hot", {{"depth", 3}, {"dtype", "float64"}}, {Values({2}, {0, 2}, DType::kFloat64)}, {0}};
  const auto out = Interpret(WithGradients(OpGraph(hot), {"x0"}), Feeds(hot.inputs));
  for (int64_t i = 0; i < out[1].size(); ++i) CHECK(out[1].GetDouble(i) == 0);
}

TEST_CASE("gradients of softmax_cross_entropy, cumsum and topk", "[gradient][loss]") {
  uint64_t seed = 600;
  CheckGradient(
      {"softmax_cross_entropy", {}, {Random64({4, 3}, ++seed, -2, 2), Values({4}, {2, 0, 1, 2}, DType::kFloat64)}, {0}},
      seed);
  const GradCase lengths{"softmax_cross_entropy",
                         {{"use_length", true}},
                         {Random64({2, 3}, ++seed), Values({2}, {0, 1}, DType::kFloat64)},
                         {0}};
  CHECK_THROWS_WITH(OpGraph(lengths), Catch::Contains("use_length"));
  for (const int64_t axis : {0, 1, -1}) {
    CheckGradient({"_np_cumsum", {{"axis", axis}}, {Random64({3, 4}, ++seed)}, {0}}, seed);
  }
  CheckGradient({"cumsum", {}, {Random64({2, 3}, ++seed)}, {0}}, seed);
  CheckGradient({"topk", {{"k", 2}, {"ret_typ", "value"}}, {Random64({3, 5}, ++seed)}, {0}}, seed);
  CheckGradient(
      {"topk", {{"k", 2}, {"ret_typ", "value"}, {"axis", 0}, {"is_ascend", true}}, {Random64({4, 3}, ++seed)}, {0}},
      seed);
  CheckGradient({"topk", {{"k", 3}, {"ret_typ", "value"}, {"axis", std::monostate{}}}, {Random64({2, 3}, ++seed)}, {0}},
                seed);
  CheckGradient({"topk", {{"k", 2}, {"ret_typ", "both"}}, {Random64({3, 4}, ++seed)}, {0}}, seed);
}

TEST_CASE("gradients of gathers and scatters", "[gradient][scatter]") {
  uint64_t seed = 700;
  // (M=2, 3) index tuples into (4, 3, 2), with negative and out-of-range entries.
  const Tensor nd = Ints({2, 3}, {0, -1, 5, 2, 1, 2});
  CheckGradient({"gather_nd", {}, {Random64({4, 3, 2}, ++seed), nd}, {0}}, seed);
  CheckGradient(
      {"gather_nd", {}, {Random64({4, 3, 2}, ++seed), Values({2, 3}, {0, -1, 5, 2, 1, 2}, DType::kFloat64)}, {0}},
      seed);
  const Tensor elements = Ints({2, 3}, {0, 2, -1, 1, 1, 0});
  CheckGradient({"take_along_axis", {{"axis", 1}}, {Random64({2, 3}, ++seed), elements}, {0}}, seed);
  CheckGradient({"take_along_axis", {{"axis", -2}}, {Random64({3, 3}, ++seed), elements}, {0}}, seed);
  // Distinct positions per row under "none".
  const Tensor distinct = Ints({2, 2}, {0, 2, 1, 0});
  for (const char* reduction : {"none", "add"}) {
    CheckGradient({"scatter_elements",
                   {{"axis", 1}, {"reduction", reduction}},
                   {Random64({2, 3}, ++seed), distinct, Random64({2, 2}, ++seed)},
                   {0, 2}},
                  seed);
    CheckGradient({"scatter_nd_update",
                   {{"reduction", reduction}},
                   {Random64({4, 3}, ++seed), Ints({1, 2}, {3, 1}), Random64({2, 3}, ++seed)},
                   {0, 2}},
                  seed);
  }
  const GradCase mul{
      "scatter_elements", {{"reduction", "mul"}}, {Random64({3}, ++seed), Ints({1}, {0}), Random64({1}, ++seed)}, {0}};
  CHECK_THROWS_WITH(WithGradients(OpGraph(mul), {"x0"}), Catch::Contains("'reduction' 'mul'"));
}

TEST_CASE("comparisons and logical operators have zero gradients", "[gradient]") {
  uint64_t seed = 800;
  for (const char* op :
       {"broadcast_equal", "broadcast_greater", "broadcast_logical_and", "_greater_equal", "_logical_xor"}) {
    const GradCase c{op, {}, {Random64({2, 3}, ++seed), Random64({2, 3}, ++seed)}, {0, 1}};
    const auto out = Interpret(WithGradients(OpGraph(c), {"x0", "x1"}), Feeds(c.inputs));
    for (int64_t i = 0; i < out[1].size(); ++i) CHECK(out[1].GetDouble(i) == 0);
  }
}
