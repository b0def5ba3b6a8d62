// Unary operators. Expected values marked "MXNet" were printed by MXNet 1.9.1 (CPU build)
// for the same inputs; the others are worked by hand.
#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <limits>

#include "runtime/error.h"
#include "tests/op_test_util.h"

using namespace kiln;
using namespace kiln::testing;

namespace {

constexpr double kNan = std::numeric_limits<double>::quiet_NaN();
constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr double kI32Min = -2147483648.0;
constexpr double kI64Min = -9223372036854775808.0;

Attrs Parse(const std::string& op, const AttrMap& attrs) {
  std::map<std::string, AttrValue> values;
  for (const auto& [key, arg] : attrs) values[key] = arg.value;
  return OpRegistry::Global().Get(op).ParseAttrs(values, "test");
}

// Shape inference with some input and output slots given; returns all slots after it.
std::pair<std::vector<ShapeSlot>, std::vector<ShapeSlot>> Infer(const std::string& op, std::vector<ShapeSlot> inputs,
                                                                std::vector<ShapeSlot> outputs,
                                                                const AttrMap& attrs = {}) {
  const OpDef& def = OpRegistry::Global().Get(op);
  const Attrs parsed = Parse(op, attrs);
  inputs.resize(def.NumInputs(parsed));
  outputs.resize(def.NumOutputs(parsed));
  def.InferShape(parsed, inputs, outputs);
  return {inputs, outputs};
}

std::vector<DTypeSlot> InferOutTypes(const std::string& op, std::vector<DTypeSlot> inputs, const AttrMap& attrs = {}) {
  const OpDef& def = OpRegistry::Global().Get(op);
  const Attrs parsed = Parse(op, attrs);
  inputs.resize(def.NumInputs(parsed));
  std::vector<DTypeSlot> outputs(def.NumOutputs(parsed));
  def.InferType(parsed, inputs, outputs);
  return outputs;
}

Tensor Int64s(const Shape& shape, const std::vector<int64_t>& values) {
  Tensor t(shape, DType::kInt64);
  for (size_t i = 0; i < values.size(); ++i) t.data_as<int64_t>()[i] = values[i];
  return t;
}

}  // namespace

TEST_CASE("unary math on float32 including nan, inf and domain edges", "[unary]") {
  const Tensor x = Values({8}, {-4, -1, 0, 1, 4, kNan, kInf, -kInf});
  // MXNet, float32.
  const std::vector<std::pair<std::string, std::vector<double>>> cases = {
      {"relu", {0, 0, 0, 1, 4, kNan, kInf, 0}},
      {"sigmoid", {0.01798621006309986, 0.2689414322376251, 0.5, 0.7310585975646973, 0.9820137619972229, kNan, 1, 0}},
      {"tanh", {-0.9993293285369873, -0.7615941762924194, 0, 0.7615941762924194, 0.9993293285369873, kNan, 1, -1}},
      {"exp", {0.018315639346837997, 0.3678794503211975, 1, 2.7182817459106445, 54.598148345947266, kNan, kInf, 0}},
      {"log", {kNan, kNan, -kInf, 0, 1.3862943649291992, kNan, kInf, kNan}},
      {"sqrt", {kNan, kNan, 0, 1, 2, kNan, kInf, kNan}},
      {"rsqrt", {kNan, kNan, kInf, 1, 0.5, kNan, 0, kNan}},
      {"square", {16, 1, 0, 1, 16, kNan, kInf, kInf}},
      {"abs", {4, 1, 0, 1, 4, kNan, kInf, kInf}},
      {"negative", {4, 1, 0, -1, -4, kNan, -kInf, kInf}},
      {"reciprocal", {-0.25, -1, kInf, 1, 0.25, kNan, 0, 0}},
      {"softsign", {-0.800000011920929, -0.5, 0, 0.5, 0.800000011920929, kNan, kNan, kNan}},
      {"erf", {-1, -0.8427007794380188, 0, 0.8427007794380188, 1, kNan, 1, -1}},
  };
  for (const auto& [op, expected] : cases) {
    INFO(op);
    const auto out = RunOp(op, {x});
    CHECK(out[0].dtype() == DType::kFloat32);
    KILN_CHECK_CLOSE(out[0], Values({8}, expected), 1e-6, 0);
  }
}

TEST_CASE("unary math keeps the shape, allows in-place and is elementwise", "[unary]") {
  for (const char* op : {"relu", "exp", "erf", "BlockGrad", "identity", "zeros_like", "ones_like", "clip"}) {
    INFO(op);
    const AttrMap attrs = std::string(op) == "clip" ? AttrMap{{"a_min", 0.0}, {"a_max", 1.0}} : AttrMap{};
    CHECK(InferOpShapes(op, {{2, 1, 3}}, attrs)[0] == Shape{2, 1, 3});
    CHECK(InferOpShapes(op, {{}}, attrs)[0] == Shape{});
    const OpDef& def = OpRegistry::Global().Get(op);
    CHECK(def.pattern() == OpPattern::kElementwise);
    CHECK(def.InplacePairs(Parse(op, attrs)) == std::vector<std::pair<int, int>>{{0, 0}});
  }
  // Backward: the input's shape from a known output; a conflict names the slot.
  CHECK(*Infer("sqrt", {std::nullopt}, {Shape{4, 5}}).first[0] == Shape{4, 5});
  CHECK_THROWS_WITH(Infer("sqrt", {Shape{2, 3}}, {Shape{3, 2}}), Catch::Contains("expected shape (2,3), given (3,2)"));
  CHECK_THROWS_WITH(RunOp("relu", {Values({1}, {1}), Values({1}, {1})}), Catch::Contains("expected 1 inputs"));
}

TEST_CASE("unary math in float64 and float16", "[unary]") {
  const std::vector<double> x = {-4, -1, 0, 1, 4, 9};
  // MXNet, float64.
  KILN_CHECK_CLOSE(RunOp("erf", {Values({6}, x, DType::kFloat64)})[0],
                   Values({6}, {-0.9999999845827421, -0.8427007929497149, 0, 0.8427007929497149, 0.9999999845827421, 1},
                          DType::kFloat64),
                   1e-15, 0);
  KILN_CHECK_CLOSE(RunOp("rsqrt", {Values({6}, x, DType::kFloat64)})[0],
                   Values({6}, {kNan, kNan, kInf, 1, 0.5, 0.3333333333333333}, DType::kFloat64), 1e-15, 0);
  // MXNet, float16: the results are rounded to half precision.
  const auto half = RunOp("sigmoid", {Values({6}, x, DType::kFloat16)})[0];
  CHECK(half.dtype() == DType::kFloat16);
  KILN_CHECK_CLOSE(
      half, Values({6}, {0.0179901123046875, 0.26904296875, 0.5, 0.73095703125, 0.98193359375, 1.0}, DType::kFloat16),
      0, 0);
  KILN_CHECK_CLOSE(RunOp("exp", {Values({6}, x, DType::kFloat16)})[0],
                   Values({6}, {0.018310546875, 0.367919921875, 1.0, 2.71875, 54.59375, 8104.0}, DType::kFloat16), 0,
                   0);
}

TEST_CASE("unary math on integers stores as MXNet's C++ casts do", "[unary]") {
  const std::vector<double> x = {-4, -1, 0, 1, 4, 9};
  // MXNet, int32: float results truncate; nan and inf become INT32_MIN.
  const std::vector<std::pair<std::string, std::vector<double>>> int32_cases = {
      {"relu", {0, 0, 0, 1, 4, 9}},
      {"sigmoid", {0, 0, 0, 0, 0, 0}},
      {"exp", {0, 0, 1, 2, 54, 8103}},
      {"log", {kI32Min, kI32Min, kI32Min, 0, 1, 2}},
      {"sqrt", {kI32Min, kI32Min, 0, 1, 2, 3}},
      {"rsqrt", {kI32Min, kI32Min, kI32Min, 1, 0, 0}},
      {"reciprocal", {0, -1, kI32Min, 1, 0, 0}},
      {"square", {16, 1, 0, 1, 16, 81}},
      {"negative", {4, 1, 0, -1, -4, -9}},
      {"erf", {0, 0, 0, 0, 0, 1}},
  };
  for (const auto& [op, expected] : int32_cases) {
    INFO(op);
    const auto out = RunOp(op, {Values({6}, x, DType::kInt32)});
    CHECK(out[0].dtype() == DType::kInt32);
    KILN_CHECK_CLOSE(out[0], Values({6}, expected, DType::kInt32), 0, 0);
  }
  // MXNet: int64 gets INT64_MIN, int8 keeps the low byte of the 32-bit conversion.
  KILN_CHECK_CLOSE(RunOp("log", {Values({6}, x, DType::kInt64)})[0],
                   Values({6}, {kI64Min, kI64Min, kI64Min, 0, 1, 2}, DType::kInt64), 0, 0);
  KILN_CHECK_CLOSE(RunOp("exp", {Values({6}, x, DType::kInt8)})[0], Values({6}, {0, 0, 1, 2, 54, -89}, DType::kInt8), 0,
                   0);
  KILN_CHECK_CLOSE(RunOp("log", {Values({6}, x, DType::kInt8)})[0], Values({6}, {0, 0, 0, 0, 1, 2}, DType::kInt8), 0,
                   0);
  // MXNet, uint8: negation and overflow wrap.
  const Tensor u = Values({4}, {0, 1, 4, 9}, DType::kUInt8);
  KILN_CHECK_CLOSE(RunOp("negative", {u})[0], Values({4}, {0, 255, 252, 247}, DType::kUInt8), 0, 0);
  KILN_CHECK_CLOSE(RunOp("exp", {u})[0], Values({4}, {1, 2, 54, 167}, DType::kUInt8), 0, 0);
  // Hand: abs(-128) does not fit int8 and wraps back to -128; 16 * 16 wraps to 0.
  KILN_CHECK_CLOSE(RunOp("abs", {Values({2}, {-128, -5}, DType::kInt8)})[0], Values({2}, {-128, 5}, DType::kInt8), 0,
                   0);
  KILN_CHECK_CLOSE(RunOp("square", {Values({2}, {16, -3}, DType::kInt8)})[0], Values({2}, {0, 9}, DType::kInt8), 0, 0);
}

TEST_CASE("Activation act_types", "[unary]") {
  const Tensor x = Values({5}, {-2, -1, 0, 1, 2});
  // MXNet, float32.
  const std::vector<std::pair<std::string, std::vector<double>>> cases = {
      {"relu", {0, 0, 0, 1, 2}},
      {"sigmoid", {0.11920291930437088, 0.2689414322376251, 0.5, 0.7310585975646973, 0.8807970881462097}},
      {"tanh", {-0.9640275835990906, -0.7615941762924194, 0, 0.7615941762924194, 0.9640275835990906}},
      {"softrelu",
       {0.12692809104919434, 0.3132617473602295, 0.6931472420692444, 1.3132617473602295, 2.1269278526306152}},
      {"softsign", {-0.6666666865348816, -0.5, 0, 0.5, 0.6666666865348816}},
  };
  for (const auto& [act, expected] : cases) {
    INFO(act);
    KILN_CHECK_CLOSE(RunOp("Activation", {x}, {{"act_type", act}})[0], Values({5}, expected), 1e-6, 0);
  }
  // MXNet, float64: softrelu is log1p(exp(x)) up to 20 and x itself above, never inf.
  KILN_CHECK_CLOSE(
      RunOp("Activation", {Values({5}, {25, 1000, -1000, 20, 20.5}, DType::kFloat64)}, {{"act_type", "softrelu"}})[0],
      Values({5}, {25, 1000, 0, 20.000000002061153, 20.5}, DType::kFloat64), 1e-15, 0);
  // relu passes NaN through, as MXNet's own relu kernel does.
  KILN_CHECK_CLOSE(RunOp("Activation", {Values({3}, {kNan, -kInf, kInf})}, {{"act_type", "relu"}})[0],
                   Values({3}, {kNan, 0, kInf}), 0, 0);
  CHECK(OpRegistry::Global().Get("Activation").pattern() == OpPattern::kElementwise);
}

TEST_CASE("Activation attributes and dtypes", "[unary]") {
  CHECK_THROWS_WITH(RunOp("Activation", {Values({1}, {1})}), Catch::Contains("required attribute 'act_type'"));
  CHECK_THROWS_WITH(RunOp("Activation", {Values({1}, {1})}, {{"act_type", "mish"}}),
                    Catch::Contains("expected one of {relu, sigmoid, softrelu, softsign, tanh}, given 'mish'"));
  // MXNet's kernel: "This operation only support floating point types, not int32".
  CHECK_THROWS_WITH(RunOp("Activation", {Values({1}, {1}, DType::kInt32)}, {{"act_type", "relu"}}),
                    Catch::Contains("Activation takes float16, bfloat16, float32 or float64 data, given int32"));
  CHECK(*InferOutTypes("Activation", {DType::kFloat16}, {{"act_type", "tanh"}})[0] == DType::kFloat16);
  // MXNet, float16.
  KILN_CHECK_CLOSE(RunOp("Activation", {Values({3}, {-4, -1, 9}, DType::kFloat16)}, {{"act_type", "softrelu"}})[0],
                   Values({3}, {0.0181427001953125, 0.313232421875, 9.0}, DType::kFloat16), 0, 0);
}

TEST_CASE("LeakyReLU elementwise act_types", "[unary]") {
  const Tensor x = Values({7}, {-2, -1, -0.5, 0, 0.5, 1, 2});
  // MXNet, float32, default slope 0.25. gelu is the erf form: the tanh approximation
  // gives -0.0454023 at -2, which the tolerance rejects.
  const std::vector<std::pair<std::string, std::vector<double>>> cases = {
      {"leaky", {-0.5, -0.25, -0.125, 0, 0.5, 1, 2}},
      {"elu", {-0.2161661833524704, -0.15803012251853943, -0.0983673483133316, 0, 0.5, 1, 2}},
      {"gelu",
       {-0.045500095933675766, -0.15865527093410492, -0.1542687714099884, 0, 0.3457311987876892, 0.8413446545600891,
        1.9544998407363892}},
      {"selu",
       {-1.5201665163040161, -1.1113307476043701, -0.6917582154273987, 0, 0.5253505110740662, 1.0507010221481323,
        2.1014020442962646}},
  };
  for (const auto& [act, expected] : cases) {
    INFO(act);
    KILN_CHECK_CLOSE(RunOp("LeakyReLU", {x}, {{"act_type", act}})[0], Values({7}, expected), 1e-5, 0);
  }
  // leaky is the default act_type; slope applies to leaky and elu, not to selu or gelu (MXNet).
  KILN_CHECK_CLOSE(RunOp("LeakyReLU", {x}, {{"slope", 0.1}})[0], Values({7}, {-0.2, -0.1, -0.05, 0, 0.5, 1, 2}), 1e-6,
                   0);
  KILN_CHECK_CLOSE(RunOp("LeakyReLU", {x}, {{"act_type", "elu"}, {"slope", "0.1"}})[0],
                   Values({7}, {-0.0864664763212204, -0.06321205198764801, -0.03934694081544876, 0, 0.5, 1, 2}), 1e-6,
                   0);
  KILN_CHECK_CLOSE(RunOp("LeakyReLU", {x}, {{"act_type", "selu"}, {"slope", 0.1}})[0], Values({7}, cases[3].second),
                   1e-6, 0);
  // MXNet: edges. gelu(-inf) is nan (-inf * 0), elu and selu approach -slope and -lambda*alpha.
  const Tensor edges = Values({4}, {kNan, -kInf, kInf, -1000});
  KILN_CHECK_CLOSE(RunOp("LeakyReLU", {edges}, {{"act_type", "gelu"}})[0], Values({4}, {kNan, kNan, kInf, 0}), 0, 0);
  KILN_CHECK_CLOSE(RunOp("LeakyReLU", {edges}, {{"act_type", "elu"}})[0], Values({4}, {kNan, -0.25, kInf, -0.25}), 1e-6,
                   0);
  KILN_CHECK_CLOSE(RunOp("LeakyReLU", {edges}, {{"act_type", "selu"}})[0],
                   Values({4}, {kNan, -1.7580993175506592, kInf, -1.7580993175506592}), 1e-6, 0);
  KILN_CHECK_CLOSE(RunOp("LeakyReLU", {edges}, {{"act_type", "leaky"}})[0], Values({4}, {kNan, -kInf, kInf, -250}), 0,
                   0);
}

TEST_CASE("LeakyReLU inputs and outputs follow act_type as in MXNet", "[unary]") {
  const OpDef& op = OpRegistry::Global().Get("LeakyReLU");
  // MXNet's list_arguments / list_outputs.
  for (const char* act : {"leaky", "elu", "gelu", "selu"}) {
    INFO(act);
    CHECK(op.InputNames(Parse("LeakyReLU", {{"act_type", act}})) == std::vector<std::string>{"data"});
    CHECK(op.OutputNames(Parse("LeakyReLU", {{"act_type", act}})) == std::vector<std::string>{"output"});
  }
  CHECK(op.InputNames(Parse("LeakyReLU", {{"act_type", "prelu"}})) == std::vector<std::string>{"data", "gamma"});
  CHECK(op.OutputNames(Parse("LeakyReLU", {{"act_type", "rrelu"}})) == std::vector<std::string>{"output", "mask"});
  CHECK(op.pattern() == OpPattern::kBroadcast);
  CHECK_THROWS_WITH(Parse("LeakyReLU", {{"act_type", "swish"}}),
                    Catch::Contains("expected one of {elu, gelu, leaky, prelu, rrelu, selu}, given 'swish'"));
  CHECK_THROWS_WITH(RunOp("LeakyReLU", {Values({1}, {1}, DType::kInt64)}),
                    Catch::Contains("LeakyReLU takes float16, bfloat16, float32 or float64 data, given int64"));
  CHECK(*InferOutTypes("LeakyReLU", {DType::kFloat64, std::nullopt}, {{"act_type", "prelu"}})[0] == DType::kFloat64);
  CHECK_THROWS_WITH(InferOutTypes("LeakyReLU", {DType::kFloat32, DType::kFloat16}, {{"act_type", "prelu"}}),
                    Catch::Contains("input 1: expected dtype float32, given float16"));
}

TEST_CASE("LeakyReLU prelu: gamma is one slope per channel", "[unary]") {
  // MXNet: gamma's shape is filled as (C,) from data.
  auto [inputs, outputs] = Infer("LeakyReLU", {Shape{2, 3, 4, 5}}, {}, {{"act_type", "prelu"}});
  CHECK(*inputs[1] == Shape{3});
  CHECK(*outputs[0] == Shape{2, 3, 4, 5});
  CHECK(*Infer("LeakyReLU", {Shape{2, 3}}, {}, {{"act_type", "prelu"}}).first[1] == Shape{3});
  CHECK(*Infer("LeakyReLU", {Shape{2, 3}, Shape{1}}, {}, {{"act_type", "prelu"}}).second[0] == Shape{2, 3});
  CHECK_THROWS_WITH(Infer("LeakyReLU", {Shape{2, 3}, Shape{4}}, {}, {{"act_type", "prelu"}}),
                    Catch::Contains("input 'gamma': expected shape (3) (one slope per channel) or (1), given (4)"));
  CHECK_THROWS_WITH(Infer("LeakyReLU", {Shape{2, 3}, Shape{3, 1}}, {}, {{"act_type", "prelu"}}),
                    Catch::Contains("given (3,1)"));
  CHECK_THROWS_WITH(Infer("LeakyReLU", {Shape{5}}, {}, {{"act_type", "prelu"}}),
                    Catch::Contains("input 'data': expected at least 2-d (N,C,...) for act_type prelu, given (5)"));

  const AttrMap prelu = {{"act_type", "prelu"}};
  // MXNet.
  KILN_CHECK_CLOSE(RunOp("LeakyReLU", {Values({2, 3}, {-1, -2, -3, 1, 2, 3}), Values({3}, {0.1, 0.2, 0.3})}, prelu)[0],
                   Values({2, 3}, {-0.1, -0.4, -0.9, 1, 2, 3}), 1e-6, 0);
  KILN_CHECK_CLOSE(RunOp("LeakyReLU", {Values({2, 3}, {-1, -2, -3, 1, 2, 3}), Values({1}, {0.5})}, prelu)[0],
                   Values({2, 3}, {-0.5, -1, -1.5, 1, 2, 3}), 1e-6, 0);
  Tensor x({2, 3, 2, 2}, DType::kFloat32);
  for (int64_t i = 0; i < x.size(); ++i) x.SetDouble(i, static_cast<double>(i - 12));
  std::vector<double> expected = {-1.2, -1.1, -1.0, -0.9, -1.6, -1.4, -1.2, -1.0, -1.2, -0.9, -0.6, -0.3};
  for (int i = 0; i < 12; ++i) expected.push_back(i);
  KILN_CHECK_CLOSE(RunOp("LeakyReLU", {x, Values({3}, {0.1, 0.2, 0.3})}, prelu)[0], Values({2, 3, 2, 2}, expected),
                   1e-6, 0);
}

TEST_CASE("LeakyReLU rrelu: fixed mean slope in inference, seeded random slopes in training", "[unary]") {
  const Tensor x = Values({5}, {-2, -1, 0, 1, 2});
  // MXNet, inference: slope (0.125 + 0.334) / 2.
  const auto infer = RunOp("LeakyReLU", {x}, {{"act_type", "rrelu"}});
  REQUIRE(infer.size() == 2);
  KILN_CHECK_CLOSE(infer[0], Values({5}, {-0.45899999141693115, -0.22949999570846558, 0, 1, 2}), 1e-6, 0);
  KILN_CHECK_CLOSE(infer[1], Values({5}, {0.2295, 0.2295, 0.2295, 0.2295, 0.2295}), 1e-6, 0);
  CHECK(Infer("LeakyReLU", {Shape{2, 3}}, {}, {{"act_type", "rrelu"}}).second ==
        std::vector<ShapeSlot>{Shape{2, 3}, Shape{2, 3}});

  const Tensor neg = Values({64}, std::vector<double>(64, -2.0));
  const auto a = RunOp("LeakyReLU", {neg}, {{"act_type", "rrelu"}}, /*is_train=*/true, /*seed=*/7);
  const auto b = RunOp("LeakyReLU", {neg}, {{"act_type", "rrelu"}}, true, 7);
  const auto c = RunOp("LeakyReLU", {neg}, {{"act_type", "rrelu"}}, true, 8);
  CHECK(a[0].BitwiseEquals(b[0]));
  CHECK_FALSE(a[1].BitwiseEquals(c[1]));
  double lowest = 1;
  double highest = 0;
  for (int64_t i = 0; i < 64; ++i) {
    const double s = a[1].GetDouble(i);
    CHECK(s >= 0.125);
    CHECK(s < 0.334);
    CHECK(a[0].GetDouble(i) == Approx(-2 * s));
    lowest = std::min(lowest, s);
    highest = std::max(highest, s);
  }
  CHECK(highest - lowest > 0.1);  // 64 draws spread over the range
  CHECK_THROWS_WITH(Parse("LeakyReLU", {{"act_type", "rrelu"}, {"lower_bound", 0.5}, {"upper_bound", 0.25}}),
                    Catch::Contains("lower_bound 0.5 exceeds upper_bound 0.25"));
}

TEST_CASE("clip", "[unary]") {
  // MXNet: NaN passes through.
  KILN_CHECK_CLOSE(RunOp("clip", {Values({6}, {-3, -1, 0.5, 2, 5, kNan})}, {{"a_min", -1.0}, {"a_max", 2.0}})[0],
                   Values({6}, {-1, -1, 0.5, 2, 2, kNan}), 0, 0);
  // MXNet: integer data gets the bounds truncated; uint8 wraps a bound of 300 to 44.
  KILN_CHECK_CLOSE(RunOp("clip", {Values({3}, {-3, 1, 5}, DType::kInt32)}, {{"a_min", -1.5}, {"a_max", 2.7}})[0],
                   Values({3}, {-1, 1, 2}, DType::kInt32), 0, 0);
  KILN_CHECK_CLOSE(RunOp("clip", {Values({3}, {3, 1, 5}, DType::kUInt8)}, {{"a_min", 300}, {"a_max", 400}})[0],
                   Values({3}, {44, 44, 44}, DType::kUInt8), 0, 0);
  // Infinite bounds as MXNet writes them in text.
  KILN_CHECK_CLOSE(RunOp("clip", {Values({2}, {-1e30, 1e30}, DType::kFloat64)}, {{"a_min", "-inf"}, {"a_max", "0"}})[0],
                   Values({2}, {-1e30, 0}, DType::kFloat64), 0, 0);
  CHECK_THROWS_WITH(RunOp("clip", {Values({1}, {1})}, {{"a_min", 1.0}}), Catch::Contains("required attribute 'a_max'"));
  CHECK_THROWS_WITH(RunOp("clip", {Values({1}, {1})}, {{"a_min", 2.0}, {"a_max", -1.0}}),
                    Catch::Contains("a_min 2 is greater than a_max -1"));
  CHECK_THROWS_WITH(RunOp("clip", {Values({1}, {1})}, {{"a_min", "nan"}, {"a_max", 1.0}}),
                    Catch::Contains("must be numbers"));
}

TEST_CASE("Cast converts as MXNet's C++ casts do", "[unary]") {
  const Tensor x = Values({13}, {300, 11.1, 10.9, -1, -3, -0.9, 1e10, -1e10, kNan, kInf, -300.5, 255.9, 256});
  // MXNet, from float32.
  const std::vector<std::pair<DType, std::vector<double>>> cases = {
      {DType::kUInt8, {44, 11, 10, 255, 253, 0, 0, 0, 0, 0, 212, 255, 0}},
      {DType::kInt8, {44, 11, 10, -1, -3, 0, 0, 0, 0, 0, -44, -1, 0}},
      {DType::kInt32, {300, 11, 10, -1, -3, 0, kI32Min, kI32Min, kI32Min, kI32Min, -300, 255, 256}},
      {DType::kInt64, {300, 11, 10, -1, -3, 0, 1e10, -1e10, kI64Min, kI64Min, -300, 255, 256}},
      {DType::kBool, {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1}},
      {DType::kFloat16,
       {300, 11.1015625, 10.8984375, -1, -3, -0.89990234375, kInf, -kInf, kNan, kInf, -300.5, 255.875, 256}},
  };
  for (const auto& [dtype, expected] : cases) {
    INFO(DTypeName(dtype));
    const auto out = RunOp("Cast", {x}, {{"dtype", dtype}});
    CHECK(out[0].dtype() == dtype);
    KILN_CHECK_CLOSE(out[0], Values({13}, expected, dtype), 0, 0);
  }
  // MXNet, from int64: integers wrap.
  const Tensor i = Int64s({5}, {-1, 256, 2147483647, -129, 128});
  KILN_CHECK_CLOSE(RunOp("Cast", {i}, {{"dtype", "uint8"}})[0], Values({5}, {255, 0, 255, 127, 128}, DType::kUInt8), 0,
                   0);
  KILN_CHECK_CLOSE(RunOp("Cast", {i}, {{"dtype", "int8"}})[0], Values({5}, {-1, 0, -1, 127, -128}, DType::kInt8), 0, 0);
  KILN_CHECK_CLOSE(RunOp("Cast", {i}, {{"dtype", "float32"}})[0], Values({5}, {-1, 256, 2147483648.0, -129, 128}), 0,
                   0);
  // MXNet: int64 values beyond 2^53 survive a cast to int64 exactly.
  const Tensor big = Int64s({1}, {(int64_t{1} << 60) + 1});
  CHECK(RunOp("Cast", {big}, {{"dtype", "int64"}})[0].data_as<int64_t>()[0] == (int64_t{1} << 60) + 1);
  KILN_CHECK_CLOSE(RunOp("cast", {Values({2}, {0, 2}, DType::kBool)}, {{"dtype", "float64"}})[0],
                   Values({2}, {0, 1}, DType::kFloat64), 0, 0);
}

TEST_CASE("Cast dtype inference and attributes", "[unary]") {
  CHECK(*InferOutTypes("Cast", {DType::kFloat16}, {{"dtype", "int32"}})[0] == DType::kInt32);
  CHECK(*InferOutTypes("Cast", {std::nullopt}, {{"dtype", DType::kUInt8}})[0] == DType::kUInt8);
  CHECK(InferOpShapes("Cast", {{2, 3}}, {{"dtype", "float16"}})[0] == Shape{2, 3});
  CHECK(&OpRegistry::Global().Get("cast") == &OpRegistry::Global().Get("Cast"));
  CHECK(OpRegistry::Global().Get("Cast").InplacePairs(Parse("Cast", {{"dtype", "int8"}})).empty());
  CHECK_THROWS_WITH(Parse("Cast", {}), Catch::Contains("required attribute 'dtype'"));
  CHECK_THROWS_WITH(Parse("Cast", {{"dtype", "float8"}}), Catch::Contains("attribute 'dtype': expected dtype"));
}

TEST_CASE("BlockGrad, identity, zeros_like and ones_like", "[unary]") {
  const Tensor big = Int64s({2}, {(int64_t{1} << 60) + 1, -7});
  for (const char* op : {"BlockGrad", "stop_gradient", "identity", "_copy"}) {
    INFO(op);
    const auto out = RunOp(op, {big});
    CHECK(out[0].BitwiseEquals(big));
    CHECK(out[0].data() != big.data());
  }
  CHECK(&OpRegistry::Global().Get("stop_gradient") == &OpRegistry::Global().Get("BlockGrad"));
  CHECK(&OpRegistry::Global().Get("_copy") == &OpRegistry::Global().Get("identity"));
  const Tensor x = Values({2, 2}, {kNan, -3, 4, 0}, DType::kInt8);
  const auto zeros = RunOp("zeros_like", {x});
  const auto ones = RunOp("ones_like", {Values({2, 2}, {kNan, -3, 4, 0}, DType::kFloat16)});
  CHECK(zeros[0].dtype() == DType::kInt8);
  CHECK(ones[0].dtype() == DType::kFloat16);
  KILN_CHECK_CLOSE(zeros[0], Values({2, 2}, {0, 0, 0, 0}, DType::kInt8), 0, 0);
  KILN_CHECK_CLOSE(ones[0], Values({2, 2}, {1, 1, 1, 1}, DType::kFloat16), 0, 0);
  CHECK(RunOp("ones_like", {Values({0, 3}, {})})[0].shape() == Shape{0, 3});
}

namespace {

// The sign bit of every element: tells -0 from +0, which KILN_CHECK_CLOSE does not.
std::vector<bool> SignBits(const Tensor& t) {
  std::vector<bool> bits;
  for (int64_t i = 0; i < t.size(); ++i) bits.push_back(std::signbit(t.GetDouble(i)));
  return bits;
}

}  // namespace

TEST_CASE("rounding: floor, ceil, round, rint, fix and trunc on halves, signed zeros, nan and inf", "[unary]") {
  const std::vector<double> x = {-2.5, -1.5, -0.5, 0.5,   1.5, 2.5,  3.5,        -3.5,
                                 -0.0, kNan, kInf, -kInf, 2.7, -2.7, 0.49999997, -0.3};
  // MXNet, float32: round takes halves away from zero; rint takes them down (2.5 -> 2,
  // -2.5 -> -3), not to even; fix is trunc.
  const std::vector<std::pair<std::string, std::vector<double>>> cases = {
      {"floor", {-3, -2, -1, 0, 1, 2, 3, -4, -0.0, kNan, kInf, -kInf, 2, -3, 0, -1}},
      {"ceil", {-2, -1, -0.0, 1, 2, 3, 4, -3, -0.0, kNan, kInf, -kInf, 3, -2, 1, -0.0}},
      {"round", {-3, -2, -1, 1, 2, 3, 4, -4, -0.0, kNan, kInf, -kInf, 3, -3, 0, -0.0}},
      {"rint", {-3, -2, -1, 0, 1, 2, 3, -4, -0.0, kNan, kInf, -kInf, 3, -3, 0, -0.0}},
      {"fix", {-2, -1, -0.0, 0, 1, 2, 3, -3, -0.0, kNan, kInf, -kInf, 2, -2, 0, -0.0}},
      {"trunc", {-2, -1, -0.0, 0, 1, 2, 3, -3, -0.0, kNan, kInf, -kInf, 2, -2, 0, -0.0}},
  };
  for (const DType dtype : {DType::kFloat32, DType::kFloat64}) {
    for (const auto& [op, expected] : cases) {
      INFO(op << " " << DTypeName(dtype));
      const Tensor out = RunOp(op, {Values({16}, x, dtype)})[0];
      CHECK(out.dtype() == dtype);
      const Tensor want = Values({16}, expected, dtype);
      KILN_CHECK_CLOSE(out, want, 0, 0);
      // The zeros' signs as MXNet's (NaN's sign bit aside: it is element 9).
      std::vector<bool> got = SignBits(out), wanted = SignBits(want);
      got[9] = wanted[9] = false;
      CHECK(got == wanted);
    }
  }
  // MXNet, float16: 0.49999997 is 0.5 in half precision, so round gives 1 and rint 0.
  const Tensor half = Values({4}, {0.49999997, -0.49999997, 2.5, -2.5}, DType::kFloat16);
  KILN_CHECK_CLOSE(RunOp("round", {half})[0], Values({4}, {1, -1, 3, -3}, DType::kFloat16), 0, 0);
  KILN_CHECK_CLOSE(RunOp("rint", {half})[0], Values({4}, {0, -1, 2, -3}, DType::kFloat16), 0, 0);
  CHECK(RunOp("rint", {half})[0].dtype() == DType::kFloat16);
}

TEST_CASE("sign and logical_not keep the dtype; nan gives 0", "[unary]") {
  const Tensor x = Values({8}, {-2.5, -0.5, 0.5, -0.0, 0, kNan, kInf, -kInf});
  // MXNet, float32: sign(nan) = 0 and sign(-0) = +0; logical_not is 1 only for zeros.
  const Tensor sign = RunOp("sign", {x})[0];
  KILN_CHECK_CLOSE(sign, Values({8}, {-1, -1, 1, 0, 0, 0, 1, -1}), 0, 0);
  CHECK_FALSE(std::signbit(sign.GetDouble(3)));
  KILN_CHECK_CLOSE(RunOp("logical_not", {x})[0], Values({8}, {0, 0, 0, 1, 1, 0, 0, 0}), 0, 0);
  // MXNet: integer dtypes stay, as 0/1 and -1/0/1.
  const std::vector<double> ints = {-3, -1, 0, 1, 5, 127, -128};
  const Tensor i8 = Values({7}, ints, DType::kInt8);
  CHECK(RunOp("sign", {i8})[0].dtype() == DType::kInt8);
  KILN_CHECK_CLOSE(RunOp("sign", {i8})[0], Values({7}, {-1, -1, 0, 1, 1, 1, -1}, DType::kInt8), 0, 0);
  KILN_CHECK_CLOSE(RunOp("logical_not", {i8})[0], Values({7}, {0, 0, 1, 0, 0, 0, 0}, DType::kInt8), 0, 0);
  const Tensor u8 = Values({4}, {0, 1, 5, 255}, DType::kUInt8);
  KILN_CHECK_CLOSE(RunOp("sign", {u8})[0], Values({4}, {0, 1, 1, 1}, DType::kUInt8), 0, 0);
  KILN_CHECK_CLOSE(RunOp("logical_not", {u8})[0], Values({4}, {1, 0, 0, 0}, DType::kUInt8), 0, 0);
  CHECK(RunOp("logical_not", {Values({2}, {0, 3}, DType::kFloat16)})[0].dtype() == DType::kFloat16);
  KILN_CHECK_CLOSE(RunOp("logical_not", {Values({3}, {0, 2, -1}, DType::kInt32)})[0],
                   Values({3}, {1, 0, 0}, DType::kInt32), 0, 0);
}

TEST_CASE("rounding integers goes through double, as in MXNet", "[unary]") {
  // MXNet, int8 and int32: the identity, extremes included.
  const Tensor i8 = Values({7}, {-3, -1, 0, 1, 5, 127, -128}, DType::kInt8);
  for (const char* op : {"floor", "ceil", "round", "rint", "fix", "trunc"}) {
    INFO(op);
    KILN_CHECK_CLOSE(RunOp(op, {i8})[0], i8, 0, 0);
    CHECK(RunOp(op, {i8})[0].dtype() == DType::kInt8);
    const Tensor i32 = Values({2}, {2147483647, -2147483648.0}, DType::kInt32);
    KILN_CHECK_CLOSE(RunOp(op, {i32})[0], i32, 0, 0);
  }
  // MXNet: int64 beyond 2^53 rounds to a double (2^53 + 1 -> 2^53); sign and logical_not
  // need no more than the sign and zeroness.
  const Tensor big = Int64s({3}, {(int64_t{1} << 53) + 1, -(int64_t{1} << 53) - 1, (int64_t{1} << 62) + 1});
  const Tensor floor = RunOp("floor", {big})[0];
  CHECK(floor.data_as<int64_t>()[0] == int64_t{1} << 53);
  CHECK(floor.data_as<int64_t>()[1] == -(int64_t{1} << 53));
  CHECK(floor.data_as<int64_t>()[2] == int64_t{1} << 62);
  KILN_CHECK_CLOSE(RunOp("sign", {big})[0], Values({3}, {1, -1, 1}, DType::kInt64), 0, 0);
  KILN_CHECK_CLOSE(RunOp("logical_not", {big})[0], Values({3}, {0, 0, 0}, DType::kInt64), 0, 0);
}

TEST_CASE("rounding, sign and logical_not are elementwise with MXNet's input name", "[unary]") {
  for (const char* op : {"floor", "ceil", "round", "rint", "fix", "trunc", "sign", "logical_not"}) {
    INFO(op);
    const OpDef& def = OpRegistry::Global().Get(op);
    CHECK(def.InputNames(Parse(op, {})) == std::vector<std::string>{"data"});
    CHECK(def.pattern() == OpPattern::kElementwise);
    CHECK(def.InplacePairs(Parse(op, {})) == std::vector<std::pair<int, int>>{{0, 0}});
    CHECK(InferOpShapes(op, {{2, 1, 3}})[0] == Shape{2, 1, 3});
    CHECK(InferOpShapes(op, {{0, 4}})[0] == Shape{0, 4});
    CHECK(*Infer(op, {std::nullopt}, {Shape{5}}).first[0] == Shape{5});
    CHECK_THROWS_WITH(Infer(op, {Shape{2, 3}}, {Shape{3, 2}}), Catch::Contains("expected shape (2,3), given (3,2)"));
    CHECK(*InferOutTypes(op, {DType::kInt32})[0] == DType::kInt32);
    CHECK(RunOp(op, {Values({0, 4}, {})})[0].shape() == Shape{0, 4});
  }
}
