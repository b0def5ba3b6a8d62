#include <catch2/catch.hpp>
#include <cmath>

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
