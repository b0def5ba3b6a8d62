// Lowerings of the unary operators (symbol/ops/unary.cc) run by the kir interpreter
// against the reference, in every dtype, with NaN, infinities and out-of-range values.
//
// Tolerances: float32 rtol 1e-5 atol 1e-6 (the transcendental functions in float32
// against the reference's double); float16 rtol 1e-3 atol 1e-4 (one float16 rounding);
// float64 rtol 1e-12 atol 1e-14. Integer and bool results, copies, fills, casts and clips
// are exact. Near-zero results of elu, selu and softrelu are checked with atol 0.
#include <catch2/catch.hpp>
#include <cmath>
#include <string>
#include <vector>

#include "codegen/kir/kir.h"
#include "tests/lower_test_util.h"
#include "tests/op_test_util.h"

using namespace kiln;
using namespace kiln::testing;

namespace {

const double kNan = std::nan("");
const double kInf = INFINITY;

const std::vector<DType> kAllTypes = {DType::kFloat32, DType::kFloat16, DType::kFloat64, DType::kInt8,
                                      DType::kUInt8,   DType::kInt32,   DType::kInt64,   DType::kBool};

const std::vector<std::string> kMathOps = {
    "relu",     "sigmoid", "tanh",  "exp",  "log",   "sqrt", "rsqrt", "square", "abs",  "negative",   "reciprocal",
    "softsign", "erf",     "floor", "ceil", "round", "rint", "fix",   "trunc",  "sign", "logical_not"};

void CheckClose(const Tensor& actual, const Tensor& expected) {
  CHECK(actual.dtype() == expected.dtype());
  switch (expected.dtype()) {
    case DType::kFloat32: KILN_CHECK_CLOSE(actual, expected, 1e-5, 1e-6); break;
    case DType::kFloat16: KILN_CHECK_CLOSE(actual, expected, 1e-3, 1e-4); break;
    case DType::kFloat64: KILN_CHECK_CLOSE(actual, expected, 1e-12, 1e-14); break;
    default: KILN_CHECK_CLOSE(actual, expected, 0, 0); break;
  }
}

void Compare(const std::string& op, const std::vector<Tensor>& inputs, const AttrMap& attrs = {}) {
  const std::vector<Tensor> expected = RunOp(op, inputs, attrs);
  const std::vector<Tensor> actual = RunLowered(op, inputs, attrs);
  REQUIRE(actual.size() == expected.size());
  for (size_t k = 0; k < actual.size(); ++k) CheckClose(actual[k], expected[k]);
}

// Edge values followed by random ones, in `dtype` (integers get their range's edges).
Tensor TestValues(DType dtype, uint64_t seed, const Shape& shape = {7, 9}) {
  std::vector<double> edges;
  switch (dtype) {
    case DType::kInt8: edges = {-128, 127, -1, 0, 1, 20, 16, -12}; break;
    case DType::kUInt8: edges = {0, 255, 1, 128, 16, 9}; break;
    case DType::kInt32: edges = {-2147483648.0, 2147483647, 46341, -46341, 0, -1, 20, 1000000}; break;
    case DType::kInt64: edges = {-9e15, 9e15, 3037000500.0, -1, 0, 1, 20, 4e9}; break;
    case DType::kBool: edges = {0, 1}; break;
    default: edges = {kNan, kInf, -kInf, 0, -0.0, 1, -1, 20.5, -20.5, 1e-6, 88, -88, 1e4}; break;
  }
  const double range = IsFloat(dtype) ? 6 : dtype == DType::kBool ? 2 : 200;
  Tensor t = RandomTensor(shape, seed, dtype == DType::kUInt8 || dtype == DType::kBool ? 0 : -range, range, dtype);
  for (size_t i = 0; i < edges.size() && static_cast<int64_t>(i) < t.size(); ++i) t.SetDouble(i, edges[i]);
  return t;
}

}  // namespace

TEST_CASE("every unary operator has a lowering", "[lower][unary]") {
  std::vector<std::string> names = kMathOps;
  for (const char* name : {"Activation", "LeakyReLU", "clip", "Cast", "cast", "BlockGrad", "stop_gradient", "identity",
                           "_copy", "zeros_like", "ones_like"}) {
    names.emplace_back(name);
  }
  for (const std::string& name : names) {
    INFO(name);
    const OpDef* op = OpRegistry::Global().Find(name);
    REQUIRE(op != nullptr);
    CHECK(op->has_lowering());
  }
}

TEST_CASE("elementwise math in every dtype, as MXNet stores integer results", "[lower][unary]") {
  uint64_t seed = 1;
  for (const DType dtype : kAllTypes) {
    const Tensor x = TestValues(dtype, seed++);
    for (const std::string& op : kMathOps) {
      INFO(op << " " << DTypeName(dtype));
      Compare(op, {x});
    }
  }
  // Large: the parallel, chunked loop.
  const Tensor big = RandomTensor({70000}, 5, -3, 3);
  Compare("sigmoid", {big});
  CHECK(LowerOpForInputs("sigmoid", {big}).parallel_extent == 5);
}

TEST_CASE("Activation act_types", "[lower][unary]") {
  uint64_t seed = 10;
  for (const DType dtype : {DType::kFloat32, DType::kFloat16, DType::kFloat64}) {
    const Tensor x = TestValues(dtype, seed++, {3, 4, 5});
    for (const char* act_type : {"relu", "sigmoid", "tanh", "softrelu", "softsign"}) {
      INFO(act_type << " " << DTypeName(dtype));
      Compare("Activation", {x}, {{"act_type", act_type}});
    }
  }
}

TEST_CASE("LeakyReLU act_types, prelu per channel or shared", "[lower][unary]") {
  uint64_t seed = 20;
  for (const DType dtype : {DType::kFloat32, DType::kFloat16, DType::kFloat64}) {
    const Tensor x = TestValues(dtype, seed++, {2, 3, 4, 5});
    for (const char* act_type : {"leaky", "elu", "selu", "gelu", "rrelu"}) {
      for (const double slope : {0.25, -1.5}) {
        INFO(act_type << " " << DTypeName(dtype) << " slope " << slope);
        Compare("LeakyReLU", {x}, {{"act_type", act_type}, {"slope", slope}});
      }
    }
    INFO("prelu " << DTypeName(dtype));
    Compare("LeakyReLU", {x, RandomTensor({3}, seed++, -1, 1, dtype)}, {{"act_type", "prelu"}});
    Compare("LeakyReLU", {x, RandomTensor({1}, seed++, -1, 1, dtype)}, {{"act_type", "prelu"}});
    Compare("LeakyReLU", {TestValues(dtype, seed++, {6, 4}), RandomTensor({4}, seed++, -1, 1, dtype)},
            {{"act_type", "prelu"}});
  }
  const Tensor big = RandomTensor({8, 16, 200}, 30);
  const Tensor gamma = RandomTensor({16}, 31);
  Compare("LeakyReLU", {big, gamma}, {{"act_type", "prelu"}});
  CHECK(LowerOpForInputs("LeakyReLU", {big, gamma}, {{"act_type", "prelu"}}).parallel_extent == 128);
}

TEST_CASE("elu, selu and softrelu keep their precision near zero", "[lower][unary]") {
  // e^x - 1 and log(1 + e^x) computed naively in float32 lose these digits.
  const Tensor x = Values({6}, {-1e-6, -3e-4, -0.01, -17, -30, -60});
  for (const char* act_type : {"elu", "selu"}) {
    INFO(act_type);
    KILN_CHECK_CLOSE(RunLowered("LeakyReLU", {x}, {{"act_type", act_type}})[0],
                     RunOp("LeakyReLU", {x}, {{"act_type", act_type}})[0], 2e-6, 0);
  }
  KILN_CHECK_CLOSE(RunLowered("Activation", {x}, {{"act_type", "softrelu"}})[0],
                   RunOp("Activation", {x}, {{"act_type", "softrelu"}})[0], 2e-6, 0);
}

TEST_CASE("rrelu in training draws slopes from U[lower, upper)", "[lower][unary]") {
  const Tensor x = RandomTensor({40, 500}, 40, -1, 1);
  const AttrMap attrs = {{"act_type", "rrelu"}, {"lower_bound", 0.1}, {"upper_bound", 0.3}};
  const std::vector<Tensor> out = RunLowered("LeakyReLU", {x}, attrs, InterpreterRunner(), true, 77);
  double sum = 0;
  double sum_sq = 0;
  bool consistent = true;
  bool in_range = true;
  for (int64_t i = 0; i < x.size(); ++i) {
    const double v = x.GetDouble(i);
    const double slope = out[1].GetDouble(i);
    in_range = in_range && slope >= 0.1 && slope < 0.3;
    consistent = consistent && out[0].GetDouble(i) == static_cast<float>(v > 0 ? v : static_cast<float>(slope) * v);
    sum += slope;
    sum_sq += slope * slope;
  }
  const auto n = static_cast<double>(x.size());
  const double mean = sum / n;
  CHECK(in_range);
  CHECK(consistent);
  // U[0.1, 0.3): mean 0.2, standard deviation 0.2 / sqrt(12).
  CHECK(std::fabs(mean - 0.2) < 4 * 0.0577 / std::sqrt(n));
  CHECK(std::fabs(std::sqrt(sum_sq / n - mean * mean) - 0.0577) < 0.002);
  // Deterministic per seed; another seed draws other slopes.
  CHECK(RunLowered("LeakyReLU", {x}, attrs, InterpreterRunner(), true, 77)[1].BitwiseEquals(out[1]));
  CHECK(!RunLowered("LeakyReLU", {x}, attrs, InterpreterRunner(), true, 78)[1].BitwiseEquals(out[1]));
  CHECK(LowerOpForInputs("LeakyReLU", {x}, attrs, true, 77).parallel_extent == 2);
}

TEST_CASE("clip in every dtype", "[lower][unary]") {
  uint64_t seed = 50;
  for (const DType dtype : kAllTypes) {
    if (dtype == DType::kBool) continue;
    const Tensor x = TestValues(dtype, seed++);
    for (const auto& [a_min, a_max] :
         std::vector<std::pair<double, double>>{{-1.5, 2.7}, {300, 400}, {-kInf, 0}, {-5, 1e30}, {0.25, 0.25}}) {
      INFO(DTypeName(dtype) << " [" << a_min << ", " << a_max << "]");
      Compare("clip", {x}, {{"a_min", a_min}, {"a_max", a_max}});
    }
  }
}

TEST_CASE("Cast between every pair of dtypes", "[lower][unary]") {
  uint64_t seed = 60;
  for (const DType from : kAllTypes) {
    Tensor x = TestValues(from, seed++);
    if (IsFloat(from)) {
      // Out of every integer range, and the truncation edges.
      const std::vector<double> more = {300, -300.5, 255.9, 1e10, -1e10, -0.9, 2147483647.5, 9.3e18, -9.3e18};
      for (size_t i = 0; i < more.size(); ++i) x.SetDouble(20 + static_cast<int64_t>(i), more[i]);
    }
    for (const DType to : kAllTypes) {
      INFO(DTypeName(from) << " -> " << DTypeName(to));
      Compare("Cast", {x}, {{"dtype", to}});
    }
  }
}

TEST_CASE("copies and fills keep every dtype exactly", "[lower][unary]") {
  Tensor big({2}, DType::kInt64);
  big.data_as<int64_t>()[0] = (int64_t{1} << 60) + 1;
  big.data_as<int64_t>()[1] = -7;
  for (const char* op : {"BlockGrad", "identity"}) {
    CHECK(RunLowered(op, {big})[0].BitwiseEquals(big));
  }
  uint64_t seed = 70;
  for (const DType dtype : kAllTypes) {
    const Tensor x = TestValues(dtype, seed++);
    for (const char* op : {"BlockGrad", "stop_gradient", "identity", "_copy", "zeros_like", "ones_like"}) {
      INFO(op << " " << DTypeName(dtype));
      const Tensor expected = RunOp(op, {x})[0];
      const Tensor actual = RunLowered(op, {x})[0];
      CHECK(actual.dtype() == dtype);
      KILN_CHECK_CLOSE(actual, expected, 0, 0);
    }
  }
}

TEST_CASE("rounding, sign and logical_not lower exactly, signed zeros included", "[lower][unary]") {
  const std::vector<double> halves = {-3.5, -2.5, -1.5, -0.5, -0.0, 0.0,  0.5,   1.5,   2.5,    3.5,
                                      -0.3, 0.3,  -2.7, 2.7,  kNan, kInf, -kInf, 1e-30, -1e-30, 8388609};
  for (const DType dtype : {DType::kFloat32, DType::kFloat64, DType::kFloat16}) {
    const Tensor x = Values({20}, halves, dtype);
    for (const char* op : {"floor", "ceil", "round", "rint", "fix", "trunc", "sign", "logical_not"}) {
      INFO(op << " " << DTypeName(dtype));
      const Tensor expected = RunOp(op, {x})[0];
      const Tensor actual = RunLowered(op, {x})[0];
      KILN_CHECK_CLOSE(actual, expected, 0, 0);
      bool same_signs = true;
      for (int64_t i = 0; i < x.size(); ++i) {
        const double a = actual.GetDouble(i), e = expected.GetDouble(i);
        same_signs = same_signs && (std::isnan(e) || std::signbit(a) == std::signbit(e));
      }
      CHECK(same_signs);
    }
  }
}
