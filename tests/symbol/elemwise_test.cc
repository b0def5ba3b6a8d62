#include <catch2/catch.hpp>
#include <cmath>
#include <limits>
#include <string>
#include <tuple>
#include <vector>

#include "tests/op_test_util.h"

using namespace kiln;
using namespace kiln::testing;

TEST_CASE("broadcast_add broadcasts and checks shapes", "[elemwise]") {
  const Tensor a = Arange({2, 3});
  const Tensor b = Values({3}, {10, 20, 30});
  const auto out = RunOp("broadcast_add", {a, b});
  KILN_CHECK_CLOSE(out[0], Values({2, 3}, {10, 21, 32, 13, 24, 35}), 0, 0);
  CHECK(InferOpShapes("broadcast_mul", {{4, 1, 5}, {3, 1}})[0] == Shape{4, 3, 5});
  CHECK_THROWS_WITH(InferOpShapes("broadcast_add", {{2, 3}, {4}}), Catch::Contains("cannot be broadcast"));
}

TEST_CASE("elemwise ops need equal shapes", "[elemwise]") {
  const auto out = RunOp("elemwise_div", {Values({2}, {1, 3}), Values({2}, {2, 4})});
  KILN_CHECK_CLOSE(out[0], Values({2}, {0.5, 0.75}), 0, 0);
  CHECK_THROWS_WITH(InferOpShapes("elemwise_add", {{2, 3}, {3, 2}}), Catch::Contains("expected shape (2,3)"));
}

TEST_CASE("scalar forms", "[elemwise]") {
  const Tensor x = Values({3}, {1, 2, 4});
  KILN_CHECK_CLOSE(RunOp("_rminus_scalar", {x}, {{"scalar", 10.0}})[0], Values({3}, {9, 8, 6}), 0, 0);
  KILN_CHECK_CLOSE(RunOp("_rdiv_scalar", {x}, {{"scalar", 8.0}})[0], Values({3}, {8, 4, 2}), 0, 0);
  KILN_CHECK_CLOSE(RunOp("_power_scalar", {x}, {{"scalar", 2.0}})[0], Values({3}, {1, 4, 16}), 0, 0);
  KILN_CHECK_CLOSE(RunOp("_maximum_scalar", {x}, {{"scalar", "1.5"}})[0], Values({3}, {1.5, 2, 4}), 0, 0);
}

TEST_CASE("add_n sums its inputs", "[elemwise]") {
  const auto out = RunOp("add_n", {Values({2}, {1, 2}), Values({2}, {3, 4}), Values({2}, {5, 6})}, {{"num_args", 3}});
  KILN_CHECK_CLOSE(out[0], Values({2}, {9, 12}), 0, 0);
  CHECK_THROWS_WITH(RunOp("add_n", {}, {{"num_args", 0}}), Catch::Contains("must be >= 1"));
}

TEST_CASE("comparisons give 0 or 1", "[elemwise]") {
  const auto out = RunOp("broadcast_greater", {Values({3}, {1, 5, 3}), Values({1}, {3})});
  KILN_CHECK_CLOSE(out[0], Values({3}, {0, 1, 0}), 0, 0);
}

// Integer tensors compute in their own type, as MXNet 1.9.1 does (the expected values
// were printed by MXNet: the scalar is truncated to the dtype and results wrap).
TEST_CASE("integer arithmetic computes in the tensor's type", "[elemwise]") {
  const Tensor i32 = Values({3}, {10, -17, 3}, DType::kInt32);
  KILN_CHECK_CLOSE(RunOp("_plus_scalar", {i32}, {{"scalar", -0.5}})[0], Values({3}, {10, -17, 3}, DType::kInt32), 0, 0);
  KILN_CHECK_CLOSE(RunOp("_mul_scalar", {i32}, {{"scalar", -0.25}})[0], Values({3}, {0, 0, 0}, DType::kInt32), 0, 0);
  KILN_CHECK_CLOSE(RunOp("_power_scalar", {i32}, {{"scalar", 0.5}})[0], Values({3}, {1, 1, 1}, DType::kInt32), 0, 0);
  const Tensor u8 = Values({3}, {3, 5, 200}, DType::kUInt8);
  KILN_CHECK_CLOSE(RunOp("_minus_scalar", {u8}, {{"scalar", 5}})[0], Values({3}, {254, 0, 195}, DType::kUInt8), 0, 0);
  KILN_CHECK_CLOSE(RunOp("_mul_scalar", {u8}, {{"scalar", 2}})[0], Values({3}, {6, 10, 144}, DType::kUInt8), 0, 0);
  KILN_CHECK_CLOSE(RunOp("_rminus_scalar", {u8}, {{"scalar", 2}})[0], Values({3}, {255, 253, 58}, DType::kUInt8), 0, 0);
  const Tensor i8 = Values({3}, {3, 5, 100}, DType::kInt8);
  KILN_CHECK_CLOSE(RunOp("_power_scalar", {i8}, {{"scalar", 2}})[0], Values({3}, {9, 25, 16}, DType::kInt8), 0, 0);
  // Where C++ (and MXNet) would trap, kiln defines x / 0 = 0 and MIN / -1 = MIN.
  const Tensor divisors = Values({3}, {0, 2, -1}, DType::kInt8);
  KILN_CHECK_CLOSE(RunOp("broadcast_div", {Values({3}, {7, -7, -128}, DType::kInt8), divisors})[0],
                   Values({3}, {0, -3, -128}, DType::kInt8), 0, 0);
  // int64 beyond 2^53 stays exact.
  Tensor big({1}, DType::kInt64);
  big.data_as<int64_t>()[0] = 9007199254740993LL;
  const Tensor sum = RunOp("broadcast_add", {big, Values({1}, {2}, DType::kInt64)})[0];
  CHECK(sum.data_as<int64_t>()[0] == 9007199254740995LL);
}

namespace {

constexpr double kNan = std::numeric_limits<double>::quiet_NaN();
constexpr double kInf = std::numeric_limits<double>::infinity();

std::vector<bool> SignBits(const Tensor& t) {
  std::vector<bool> bits;
  for (int64_t i = 0; i < t.size(); ++i) bits.push_back(std::signbit(t.GetDouble(i)));
  return bits;
}

}  // namespace

// Expected values in the tests below were printed by MXNet 1.9.1 for the same inputs.
TEST_CASE("broadcast_mod: the divisor's sign, x mod 0 = 0, nan and inf, signed zeros", "[elemwise]") {
  const std::vector<double> a = {-7, -7,   7, 7,    -6, 0,      5.5,  -5.5, 5.5, -5.5, 1,
                                 -1, kNan, 1, kInf, -1, -1e-30, -0.0, 3,    -6,  -0.0};
  const std::vector<double> b = {3, -3, 3, -3, 3, 3, 2, 2, -2, -2, 0, 0, 1, kNan, 2, kInf, 1, 2, -0.0, -3, -3};
  const std::vector<double> expected = {2, -1,   1,    -2,   0,    0, 1.5,  0.5, -0.5, -1.5, 0,
                                        0, kNan, kNan, kNan, kInf, 1, -0.0, 0,   -0.0, 0};
  // fmod's sign bits would differ at -6 mod 3 (-0) and -6 mod -3 (-0 here too); MXNet's:
  const std::vector<bool> negative = {false, true,  false, true, false, false, false, false, true, true, false,
                                      false, false, false, true, false, false, true,  false, true, false};
  for (const DType dtype : {DType::kFloat32, DType::kFloat64, DType::kFloat16}) {
    INFO(DTypeName(dtype));
    const Tensor out = RunOp("broadcast_mod", {Values({21}, a, dtype), Values({21}, b, dtype)})[0];
    CHECK(out.dtype() == dtype);
    std::vector<double> want = expected;
    std::vector<bool> want_negative = negative;
    if (dtype == DType::kFloat16) {  // -1e-30 is -0 in half precision: -0 mod 1 = -0
      want[16] = -0.0;
      want_negative[16] = true;
    }
    KILN_CHECK_CLOSE(out, Values({21}, want, dtype), 0, 0);
    std::vector<bool> bits = SignBits(out);
    bits[12] = bits[13] = bits[14] = want_negative[12] = want_negative[13] = want_negative[14] = false;  // NaNs
    CHECK(bits == want_negative);
  }
  KILN_CHECK_CLOSE(RunOp("broadcast_mod", {Values({2, 1}, {-7, 7}), Values({3}, {3, -3, 0})})[0],
                   Values({2, 3}, {2, -1, 0, 1, -2, 0}), 0, 0);
}

TEST_CASE("broadcast_mod on integers: exact, x mod 0 = 0, MIN mod -1 = 0", "[elemwise]") {
  const std::vector<double> a = {-7, -7, 7, 7, -6, 0, 5, -128, -128, 127, -1, 100};
  const std::vector<double> b = {3, -3, 3, -3, 3, 3, 0, -1, 3, -128, 127, 7};
  for (const DType dtype : {DType::kInt8, DType::kInt32, DType::kInt64}) {
    INFO(DTypeName(dtype));
    const Tensor out = RunOp("broadcast_mod", {Values({12}, a, dtype), Values({12}, b, dtype)})[0];
    CHECK(out.dtype() == dtype);
    KILN_CHECK_CLOSE(out, Values({12}, {2, -1, 1, -2, 0, 0, 0, 0, 1, -1, 126, 2}, dtype), 0, 0);
  }
  KILN_CHECK_CLOSE(RunOp("broadcast_mod", {Values({6}, {249, 249, 7, 7, 128, 255}, DType::kUInt8),
                                           Values({6}, {3, 253, 253, 0, 255, 127}, DType::kUInt8)})[0],
                   Values({6}, {0, 249, 7, 0, 128, 1}, DType::kUInt8), 0, 0);
  // Deliberately exact beyond 2^53, where MXNet goes through double: it gives 0 and 4.
  Tensor big({2}, DType::kInt64);
  big.data_as<int64_t>()[0] = (int64_t{1} << 53) + 1;
  big.data_as<int64_t>()[1] = (int64_t{1} << 62) + 3;
  const Tensor r = RunOp("broadcast_mod", {big, Values({2}, {2, -10}, DType::kInt64)})[0];
  CHECK(r.data_as<int64_t>()[0] == 1);
  CHECK(r.data_as<int64_t>()[1] == -3);  // 4611686018427387907 mod -10
}

TEST_CASE(">=, <= and logical operators give 1 or 0 in the inputs' dtype", "[elemwise]") {
  const Tensor p = Values({8}, {0, 1, -2, 0, kNan, kNan, 0.5, -0.0});
  const Tensor q = Values({8}, {0, 0, 3, 5, 0, kNan, -1, 1});
  const Tensor pi = Values({8}, {0, 1, -2, 0, -3, 2, 7, -1}, DType::kInt32);
  const Tensor qi = Values({8}, {0, 0, 3, 5, -3, -2, 7, 1}, DType::kInt32);
  // NaN compares false and is true as a truth value; -0 is false.
  const std::vector<std::tuple<std::string, std::vector<double>, std::vector<double>>> cases = {
      {"broadcast_greater_equal", {1, 1, 0, 0, 0, 0, 1, 0}, {1, 1, 0, 0, 1, 1, 1, 0}},
      {"broadcast_lesser_equal", {1, 0, 1, 1, 0, 0, 0, 1}, {1, 0, 1, 1, 1, 0, 1, 1}},
      {"broadcast_logical_and", {0, 0, 1, 0, 0, 1, 1, 0}, {0, 0, 1, 0, 1, 1, 1, 1}},
      {"broadcast_logical_or", {0, 1, 1, 1, 1, 1, 1, 1}, {0, 1, 1, 1, 1, 1, 1, 1}},
      {"broadcast_logical_xor", {0, 1, 0, 1, 1, 0, 0, 1}, {0, 1, 0, 1, 0, 0, 0, 0}},
  };
  for (const auto& [op, expected, expected_int] : cases) {
    INFO(op);
    const Tensor out = RunOp(op, {p, q})[0];
    CHECK(out.dtype() == DType::kFloat32);
    KILN_CHECK_CLOSE(out, Values({8}, expected), 0, 0);
    const Tensor out_int = RunOp(op, {pi, qi})[0];
    CHECK(out_int.dtype() == DType::kInt32);
    KILN_CHECK_CLOSE(out_int, Values({8}, expected_int, DType::kInt32), 0, 0);
    CHECK(RunOp(op, {Values({2}, {0, 3}, DType::kFloat16), Values({1}, {3}, DType::kFloat16)})[0].dtype() ==
          DType::kFloat16);
    CHECK(InferOpShapes(op, {{4, 1, 5}, {3, 1}})[0] == Shape{4, 3, 5});
    CHECK_THROWS_WITH(InferOpShapes(op, {{2, 3}, {4, 3}}), Catch::Contains("cannot be broadcast"));
    CHECK(OpRegistry::Global().Get(op).pattern() == OpPattern::kBroadcast);
  }
  // MXNet, uint8: 200 is 200, not -56.
  KILN_CHECK_CLOSE(RunOp("broadcast_lesser_equal",
                         {Values({3}, {0, 200, 3}, DType::kUInt8), Values({3}, {0, 1, 3}, DType::kUInt8)})[0],
                   Values({3}, {1, 0, 1}, DType::kUInt8), 0, 0);
}

TEST_CASE("same-shape forms _mod, _greater_equal, ... (MXNet's Symbol %, >=, ...)", "[elemwise]") {
  const Tensor a = Values({3}, {-7, 2, 0.5});
  const Tensor b = Values({3}, {3, 2, 0});
  const std::vector<std::pair<std::string, std::vector<double>>> cases = {
      {"_mod", {2, 0, 0}},         {"_greater_equal", {0, 1, 1}}, {"_lesser_equal", {1, 1, 0}},
      {"_logical_and", {1, 1, 0}}, {"_logical_or", {1, 1, 1}},    {"_logical_xor", {0, 0, 1}},
  };
  for (const auto& [op, expected] : cases) {
    INFO(op);
    KILN_CHECK_CLOSE(RunOp(op, {a, b})[0], Values({3}, expected), 0, 0);
    const OpDef& def = OpRegistry::Global().Get(op);
    CHECK(def.InputNames(ParseAttrs(op, {})) == std::vector<std::string>{"lhs", "rhs"});
    CHECK(def.pattern() == OpPattern::kElementwise);
    CHECK(InferOpShapes(op, {{2, 3}, {2, 3}})[0] == Shape{2, 3});
    // MXNet: "Incompatible attr ... expected [2,3], got [1,3]": no broadcasting.
    CHECK_THROWS_WITH(InferOpShapes(op, {{2, 3}, {1, 3}}), Catch::Contains("expected shape (2,3), given (1,3)"));
  }
}

TEST_CASE("_mod_scalar and _rmod_scalar", "[elemwise]") {
  const Tensor x = Values({8}, {-7, 7, -6, 5.5, -5.5, 0, kNan, -0.0});
  const std::vector<std::tuple<double, std::vector<double>, std::vector<double>>> cases = {
      {3, {2, 1, 0, 2.5, 0.5, 0, kNan, -0.0}, {-4, 3, -3, 3, -2.5, 0, kNan, 0}},
      {-3, {-1, -2, -0.0, -0.5, -2.5, 0, kNan, 0}, {-3, 4, -3, 2.5, -3, 0, kNan, 0}},
      {0, {0, 0, 0, 0, 0, 0, 0, 0}, {0, 0, 0, 0, 0, 0, kNan, 0}},  // nan mod 0 = 0
      {2.5, {0.5, 2, 1.5, 0.5, 2, 0, kNan, -0.0}, {-4.5, 2.5, -3.5, 2.5, -3, 0, kNan, 0}},
  };
  for (const auto& [scalar, mod, rmod] : cases) {
    INFO("scalar " << scalar);
    const Tensor m = RunOp("_mod_scalar", {x}, {{"scalar", scalar}})[0];
    KILN_CHECK_CLOSE(m, Values({8}, mod), 0, 0);
    CHECK(std::signbit(m.GetDouble(7)) == std::signbit(mod[7]));
    if (scalar == -3) CHECK(std::signbit(m.GetDouble(2)));
    KILN_CHECK_CLOSE(RunOp("_rmod_scalar", {x}, {{"scalar", scalar}})[0], Values({8}, rmod), 0, 0);
  }
  // MXNet: an integer tensor truncates the scalar (2.5 -> 2) and wraps it (300 -> 44 in int8).
  const Tensor i32 = Values({5}, {-7, 7, -6, 5, 0}, DType::kInt32);
  KILN_CHECK_CLOSE(RunOp("_mod_scalar", {i32}, {{"scalar", 2.5}})[0], Values({5}, {1, 1, 0, 1, 0}, DType::kInt32), 0,
                   0);
  KILN_CHECK_CLOSE(RunOp("_rmod_scalar", {i32}, {{"scalar", -2.5}})[0], Values({5}, {-2, 5, -2, 3, 0}, DType::kInt32),
                   0, 0);
  const Tensor i8 = Values({5}, {-7, 7, -6, 5, 0}, DType::kInt8);
  KILN_CHECK_CLOSE(RunOp("_mod_scalar", {i8}, {{"scalar", 300}})[0], Values({5}, {37, 7, 38, 5, 0}, DType::kInt8), 0,
                   0);
  KILN_CHECK_CLOSE(RunOp("_rmod_scalar", {i8}, {{"scalar", 300}})[0], Values({5}, {-5, 2, -4, 4, 0}, DType::kInt8), 0,
                   0);
  KILN_CHECK_CLOSE(RunOp("_rmod_scalar", {Values({5}, {249, 7, 250, 5, 0}, DType::kUInt8)}, {{"scalar", -2.5}})[0],
                   Values({5}, {5, 2, 4, 4, 0}, DType::kUInt8), 0, 0);
  CHECK_THROWS_WITH(RunOp("_mod_scalar", {x}, {{"scalar", "abc"}}), Catch::Contains("scalar"));
}

TEST_CASE("comparison and logical scalar forms", "[elemwise]") {
  // MXNet converts the scalar to the tensor's dtype: float32 0.1 <= 0.1 holds (in double
  // it would not).
  const Tensor tenth = Values({4}, {0.1, 0.2, 0.05, 0});
  KILN_CHECK_CLOSE(RunOp("_lesser_equal_scalar", {tenth}, {{"scalar", 0.1}})[0], Values({4}, {1, 0, 1, 1}), 0, 0);
  KILN_CHECK_CLOSE(RunOp("_greater_equal_scalar", {tenth}, {{"scalar", 0.1}})[0], Values({4}, {1, 1, 0, 0}), 0, 0);
  KILN_CHECK_CLOSE(RunOp("_greater_equal_scalar", {Values({4}, {43, 44, 45, -1}, DType::kInt8)}, {{"scalar", 300}})[0],
                   Values({4}, {0, 1, 1, 0}, DType::kInt8), 0, 0);
  KILN_CHECK_CLOSE(RunOp("_lesser_equal_scalar", {Values({4}, {252, 253, 254, 0}, DType::kUInt8)}, {{"scalar", -3}})[0],
                   Values({4}, {1, 1, 0, 1}, DType::kUInt8), 0, 0);
  const Tensor p = Values({8}, {0, 1, -2, 0, kNan, kNan, 0.5, -0.0});
  const std::vector<std::tuple<std::string, double, std::vector<double>>> cases = {
      {"_logical_and_scalar", 0, {0, 0, 0, 0, 0, 0, 0, 0}},    {"_logical_and_scalar", kNan, {0, 1, 1, 0, 1, 1, 1, 0}},
      {"_logical_or_scalar", 0, {0, 1, 1, 0, 1, 1, 1, 0}},     {"_logical_or_scalar", -0.5, {1, 1, 1, 1, 1, 1, 1, 1}},
      {"_logical_xor_scalar", -0.5, {1, 0, 0, 1, 0, 0, 0, 1}}, {"_logical_xor_scalar", 0, {0, 1, 1, 0, 1, 1, 1, 0}},
  };
  for (const auto& [op, scalar, expected] : cases) {
    INFO(op << " " << scalar);
    KILN_CHECK_CLOSE(RunOp(op, {p}, {{"scalar", scalar}})[0], Values({8}, expected), 0, 0);
  }
  // MXNet: 0.5 truncates to 0 for an int32 tensor.
  const Tensor i = Values({3}, {0, 1, -2}, DType::kInt32);
  KILN_CHECK_CLOSE(RunOp("_logical_or_scalar", {i}, {{"scalar", 0.5}})[0], Values({3}, {0, 1, 1}, DType::kInt32), 0, 0);
  KILN_CHECK_CLOSE(RunOp("_logical_and_scalar", {i}, {{"scalar", 0.5}})[0], Values({3}, {0, 0, 0}, DType::kInt32), 0,
                   0);
}
