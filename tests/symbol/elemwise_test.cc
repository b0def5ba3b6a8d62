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
