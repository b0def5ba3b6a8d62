// Reductions. Expected values marked "MXNet" were printed by MXNet 1.9.1 for the same
// inputs; the others are worked by hand.
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

Tensor Int64s(const Shape& shape, const std::vector<int64_t>& values) {
  Tensor t(shape, DType::kInt64);
  for (size_t i = 0; i < values.size(); ++i) t.data_as<int64_t>()[i] = values[i];
  return t;
}

// MXNet's docstring example for sum.
Tensor DocData() {
  return Values({3, 3, 2}, {1, 2, 2, 3, 1, 3, 1, 4, 4, 3, 5, 2, 7, 1, 7, 2, 7, 3});
}

}  // namespace

TEST_CASE("reduction output shapes follow MXNet 1.9", "[reduce]") {
  const Shape in = {2, 3, 4};
  // MXNet infer_shape for data (2,3,4).
  const std::vector<std::pair<AttrMap, Shape>> cases = {
      {{}, {1}},
      {{{"axis", "()"}}, {1}},  // () reduces everything, as None does
      {{{"axis", "()"}, {"keepdims", true}}, {1, 1, 1}},
      {{{"axis", "()"}, {"exclude", true}}, {1}},
      {{{"exclude", true}}, {1}},
      {{{"keepdims", "True"}}, {1, 1, 1}},
      {{{"axis", 1}}, {2, 4}},
      {{{"axis", "1"}}, {2, 4}},
      {{{"axis", -1}, {"keepdims", true}}, {2, 3, 1}},
      {{{"axis", "(0, 2)"}}, {3}},
      {{{"axis", {-1, 0}}}, {3}},
      {{{"axis", {0, 2}}, {"exclude", true}}, {2, 4}},
      {{{"axis", {0, 1, 2}}}, {1}},
      {{{"axis", {0, 1, 2}}, {"exclude", true}}, {2, 3, 4}},
      {{{"axis", {1}}, {"exclude", true}, {"keepdims", true}}, {1, 3, 1}},
      {{{"axis", "None"}}, {1}},
  };
  for (const auto& [attrs, expected] : cases) {
    for (const char* op : {"sum", "mean", "prod", "max", "min"}) {
      INFO(op << " case " << ShapeToString(expected));
      CHECK(InferOpShapes(op, {in}, attrs)[0] == expected);
    }
  }
  // MXNet: a 1-d input reduces to (1,).
  CHECK(InferOpShapes("sum", {{5}})[0] == Shape{1});
  // A 0-d input: everything reduced gives (1,), or () with keepdims.
  CHECK(InferOpShapes("sum", {{}})[0] == Shape{1});
  CHECK(InferOpShapes("sum", {{}}, {{"keepdims", true}})[0] == Shape{});
}

TEST_CASE("reduction axis errors", "[reduce]") {
  // MXNet rejects these too ("Reduction axes have duplicates", "Exceeds input dimensions").
  CHECK_THROWS_WITH(InferOpShapes("sum", {{2, 3, 4}}, {{"axis", {0, -3}}}),
                    Catch::Contains("attribute 'axis': (0, -3) names axis 0 twice"));
  CHECK_THROWS_WITH(InferOpShapes("max", {{2, 3, 4}}, {{"axis", {1, 1}}}), Catch::Contains("names axis 1 twice"));
  CHECK_THROWS_WITH(InferOpShapes("sum", {{2, 3, 4}}, {{"axis", 3}}),
                    Catch::Contains("axis 3 is out of range for 3-d input"));
  CHECK_THROWS_WITH(InferOpShapes("mean", {{2, 3, 4}}, {{"axis", -4}}),
                    Catch::Contains("axis -4 is out of range for 3-d input"));
  CHECK_THROWS_WITH(InferOpShapes("sum", {{}}, {{"axis", 0}}), Catch::Contains("a 0-d input has no axis 0"));
  CHECK_THROWS_WITH(InferOpShapes("sum", {{2}}, {{"axis", "(0, x)"}}),
                    Catch::Contains("attribute 'axis': expected tuple of integers or None"));
  CHECK_THROWS_WITH(InferOpShapes("sum", {{2}}, {{"keepdims", "maybe"}}),
                    Catch::Contains("attribute 'keepdims': expected boolean"));
  CHECK_THROWS_WITH(InferOpShapes("sum", {{2}}, {{"axes", 0}}), Catch::Contains("unknown attribute 'axes'"));
}

TEST_CASE("sum, mean, prod, max, min values", "[reduce]") {
  // MXNet's docstring.
  KILN_CHECK_CLOSE(RunOp("sum", {DocData()}, {{"axis", 1}})[0], Values({3, 2}, {4, 8, 10, 9, 21, 6}), 0, 0);
  KILN_CHECK_CLOSE(RunOp("sum", {DocData()}, {{"axis", {1, 2}}})[0], Values({3}, {12, 19, 27}), 0, 0);
  KILN_CHECK_CLOSE(RunOp("sum_axis", {DocData()})[0], Values({1}, {58}), 0, 0);
  const Tensor a = Arange({2, 3, 4});
  // MXNet.
  KILN_CHECK_CLOSE(RunOp("sum", {a}, {{"axis", 1}, {"exclude", true}})[0], Values({3}, {60, 92, 124}), 0, 0);
  KILN_CHECK_CLOSE(RunOp("mean", {a}, {{"axis", {0, 2}}, {"keepdims", true}})[0], Values({1, 3, 1}, {7.5, 11.5, 15.5}),
                   0, 0);
  KILN_CHECK_CLOSE(RunOp("min", {a}, {{"axis", {-1, -3}}})[0], Values({3}, {0, 4, 8}), 0, 0);
  KILN_CHECK_CLOSE(RunOp("max", {a}, {{"axis", -2}, {"keepdims", true}})[0],
                   Values({2, 1, 4}, {8, 9, 10, 11, 20, 21, 22, 23}), 0, 0);
  KILN_CHECK_CLOSE(RunOp("prod", {Values({2, 3}, {1, 2, 3, 4, 5, 6})}, {{"axis", 0}})[0], Values({3}, {4, 10, 18}), 0,
                   0);
  // Hand: nothing reduced with exclude over every axis.
  KILN_CHECK_CLOSE(RunOp("prod", {a}, {{"axis", {0, 1, 2}}, {"exclude", true}})[0], a, 0, 0);
  // Hand: random data against a direct sum, moderate size.
  const Tensor r = RandomTensor({4, 16, 32, 32}, 3);
  const Tensor s = RunOp("sum", {r}, {{"axis", {2, 3}}})[0];
  REQUIRE(s.shape() == Shape{4, 16});
  double direct = 0;
  for (int64_t i = 5 * 1024; i < 6 * 1024; ++i) direct += r.GetDouble(i);
  CHECK(s.GetDouble(5) == Approx(direct).margin(1e-5));
}

TEST_CASE("max and min propagate NaN", "[reduce]") {
  // MXNet.
  const Tensor x = Values({2, 3}, {1, kNan, 3, 3, kNan, 1});
  KILN_CHECK_CLOSE(RunOp("max", {x}, {{"axis", 1}})[0], Values({2}, {kNan, kNan}), 0, 0);
  KILN_CHECK_CLOSE(RunOp("min", {x}, {{"axis", 1}})[0], Values({2}, {kNan, kNan}), 0, 0);
  KILN_CHECK_CLOSE(RunOp("max", {x}, {{"axis", 0}})[0], Values({3}, {3, kNan, 3}), 0, 0);
  KILN_CHECK_CLOSE(RunOp("min", {Values({3}, {kInf, -kInf, 0})})[0], Values({1}, {-kInf}), 0, 0);
}

TEST_CASE("reductions in integer and half dtypes behave as MXNet's", "[reduce]") {
  // MXNet: integer sums and products wrap in the data dtype.
  const auto s8 = RunOp("sum", {Values({2}, {100, 100}, DType::kInt8)})[0];
  CHECK(s8.dtype() == DType::kInt8);
  KILN_CHECK_CLOSE(s8, Values({1}, {-56}, DType::kInt8), 0, 0);
  KILN_CHECK_CLOSE(RunOp("prod", {Values({2}, {16, 16}, DType::kInt8)})[0], Values({1}, {0}, DType::kInt8), 0, 0);
  KILN_CHECK_CLOSE(RunOp("sum", {Values({2, 2}, {1, 2, 3, 4}, DType::kUInt8)}, {{"axis", 0}})[0],
                   Values({2}, {4, 6}, DType::kUInt8), 0, 0);
  // MXNet: the integer mean divides the wrapped sum and truncates toward zero.
  KILN_CHECK_CLOSE(RunOp("mean", {Values({2}, {1, 2}, DType::kInt32)})[0], Values({1}, {1}, DType::kInt32), 0, 0);
  KILN_CHECK_CLOSE(RunOp("mean", {Values({2}, {-1, -2}, DType::kInt32)})[0], Values({1}, {-1}, DType::kInt32), 0, 0);
  KILN_CHECK_CLOSE(RunOp("mean", {Values({2}, {100, 100}, DType::kInt8)})[0], Values({1}, {-28}, DType::kInt8), 0, 0);
  KILN_CHECK_CLOSE(RunOp("mean", {Values({2, 2}, {1, 2, 3, 4}, DType::kInt64)}, {{"axis", 0}})[0],
                   Values({2}, {2, 3}, DType::kInt64), 0, 0);
  // MXNet: int64 products are exact, and wrap at 2^64.
  CHECK(RunOp("prod", {Int64s({2}, {int64_t{1} << 31, int64_t{1} << 31})})[0].data_as<int64_t>()[0] == int64_t{1}
                                                                                                           << 62);
  CHECK(RunOp("prod", {Int64s({2}, {int64_t{1} << 32, int64_t{1} << 32})})[0].data_as<int64_t>()[0] == 0);
  // Hand: int64 max beyond 2^53 is exact.
  const int64_t big = (int64_t{1} << 60) + 1;
  CHECK(RunOp("max", {Int64s({2}, {big - 1, big})})[0].data_as<int64_t>()[0] == big);
  CHECK(RunOp("min", {Int64s({3}, {5, -big, 7})})[0].data_as<int64_t>()[0] == -big);
  // MXNet: float16 sums accumulate wider than half (2048 + 1 is 2048 in half), but the mean
  // divides the sum already rounded to half, which can overflow.
  const auto h = RunOp("sum", {Values({5}, {2048, 1, 1, 1, 1}, DType::kFloat16)})[0];
  CHECK(h.dtype() == DType::kFloat16);
  KILN_CHECK_CLOSE(h, Values({1}, {2052}, DType::kFloat16), 0, 0);
  KILN_CHECK_CLOSE(RunOp("mean", {Values({2}, {60000, 60000}, DType::kFloat16)})[0],
                   Values({1}, {kInf}, DType::kFloat16), 0, 0);
  KILN_CHECK_CLOSE(RunOp("mean", {Values({4}, {1, 2, 3, 4}, DType::kFloat16)})[0], Values({1}, {2.5}, DType::kFloat16),
                   0, 0);
  KILN_CHECK_CLOSE(RunOp("sum", {Values({3}, {0.1, 0.2, 0.3}, DType::kFloat64)})[0],
                   Values({1}, {0.6000000000000001}, DType::kFloat64), 0, 0);
}

TEST_CASE("reductions over zero-size axes", "[reduce]") {
  // Hand: the empty sum is 0, the empty product 1, the empty float mean 0/0.
  const Tensor e({2, 0, 3}, DType::kFloat32);
  KILN_CHECK_CLOSE(RunOp("sum", {e}, {{"axis", 1}})[0], Values({2, 3}, {0, 0, 0, 0, 0, 0}), 0, 0);
  KILN_CHECK_CLOSE(RunOp("prod", {e}, {{"axis", 1}})[0], Values({2, 3}, {1, 1, 1, 1, 1, 1}), 0, 0);
  KILN_CHECK_CLOSE(RunOp("mean", {e}, {{"axis", 1}})[0], Values({2, 3}, std::vector<double>(6, kNan)), 0, 0);
  CHECK_THROWS_WITH(RunOp("mean", {Tensor({2, 0}, DType::kInt32)}, {{"axis", 1}}), Catch::Contains("divides by zero"));
  CHECK(RunOp("sum", {e}, {{"axis", 2}})[0].shape() == Shape{2, 0});
  CHECK(InferOpShapes("max", {{2, 0, 3}}, {{"axis", 2}})[0] == Shape{2, 0});
  CHECK_THROWS_WITH(InferOpShapes("max", {{2, 0, 3}}, {{"axis", 1}}),
                    Catch::Contains("input 'data': expected no zero-size reduced axis (max of zero elements has no "
                                    "value), given (2,0,3)"));
  CHECK_THROWS_WITH(InferOpShapes("min", {{0}}), Catch::Contains("min of zero elements"));
  CHECK_THROWS_WITH(InferOpShapes("argmax", {{3, 0}}), Catch::Contains("argmax of zero elements"));
  CHECK_THROWS_WITH(InferOpShapes("argmin", {{0, 3}}, {{"axis", 0}}), Catch::Contains("argmin of zero elements"));
}

TEST_CASE("argmax and argmin", "[reduce]") {
  const Tensor x = Values({2, 3}, {1, 5, 5, 7, 7, 2});
  // MXNet: ties give the first index; axis None reduces the flattened input to (1,).
  KILN_CHECK_CLOSE(RunOp("argmax", {x}, {{"axis", 1}})[0], Values({2}, {1, 0}), 0, 0);
  KILN_CHECK_CLOSE(RunOp("argmin", {x}, {{"axis", 0}})[0], Values({3}, {0, 0, 1}), 0, 0);
  KILN_CHECK_CLOSE(RunOp("argmax", {x})[0], Values({1}, {3}), 0, 0);
  KILN_CHECK_CLOSE(RunOp("argmin", {x}, {{"axis", "None"}, {"keepdims", true}})[0], Values({1, 1}, {0}), 0, 0);
  KILN_CHECK_CLOSE(RunOp("argmax", {x}, {{"axis", -1}, {"keepdims", true}})[0], Values({2, 1}, {1, 0}), 0, 0);
  // MXNet.
  const Tensor a = Arange({2, 3, 4});
  KILN_CHECK_CLOSE(RunOp("argmin", {a}, {{"axis", -2}, {"keepdims", true}})[0],
                   Values({2, 1, 4}, std::vector<double>(8, 0)), 0, 0);
  KILN_CHECK_CLOSE(RunOp("argmax", {a}, {{"axis", 0}})[0], Values({3, 4}, std::vector<double>(12, 1)), 0, 0);
  // MXNet: a NaN counts as the extreme for both, the first NaN winning; -inf ties go first.
  const Tensor n = Values({2, 3}, {1, kNan, kNan, kInf, 1, kInf});
  KILN_CHECK_CLOSE(RunOp("argmax", {n}, {{"axis", 1}})[0], Values({2}, {1, 0}), 0, 0);
  KILN_CHECK_CLOSE(RunOp("argmin", {n}, {{"axis", 1}})[0], Values({2}, {1, 1}), 0, 0);
  KILN_CHECK_CLOSE(RunOp("argmin", {Values({2, 3}, {3, 1, 1, -kInf, 0, -kInf})}, {{"axis", 1}})[0], Values({2}, {1, 0}),
                   0, 0);
  KILN_CHECK_CLOSE(RunOp("argmax", {Values({2, 3}, {1, kNan, 3, kNan, 1, 1})})[0], Values({1}, {1}), 0, 0);

  CHECK(InferOpShapes("argmax", {{2, 3, 4}}, {{"axis", 0}})[0] == Shape{3, 4});
  CHECK(InferOpShapes("argmax", {{2, 3, 4}}, {{"keepdims", true}})[0] == Shape{1, 1, 1});
  CHECK(InferOpShapes("argmin", {{5}}, {{"axis", 0}})[0] == Shape{1});
  CHECK_THROWS_WITH(InferOpShapes("argmax", {{2, 3, 4}}, {{"axis", 3}}),
                    Catch::Contains("axis 3 is out of range for 3-d input"));
  CHECK_THROWS_WITH(InferOpShapes("argmax", {{2, 3}}, {{"axis", "(0, 1)"}}),
                    Catch::Contains("attribute 'axis': expected integer or None"));
  CHECK_THROWS_WITH(InferOpShapes("argmin", {{2, 3}}, {{"exclude", true}}), Catch::Contains("unknown attribute"));
}

TEST_CASE("argmax gives the index in the data dtype", "[reduce]") {
  // MXNet 1.9: the output dtype is the input's, so large indices round or wrap.
  std::vector<double> ones(301, 0.0);
  ones.back() = 1;
  const auto i8 = RunOp("argmax", {Values({201}, std::vector<double>(ones.end() - 201, ones.end()), DType::kInt8)},
                        {{"axis", 0}})[0];
  CHECK(i8.dtype() == DType::kInt8);
  KILN_CHECK_CLOSE(i8, Values({1}, {-56}, DType::kInt8), 0, 0);
  KILN_CHECK_CLOSE(RunOp("argmax", {Values({301}, ones, DType::kUInt8)})[0], Values({1}, {44}, DType::kUInt8), 0, 0);
  std::vector<double> halves(2050, 0.0);
  halves.back() = 1;
  KILN_CHECK_CLOSE(RunOp("argmax", {Values({2050}, halves, DType::kFloat16)}, {{"axis", 0}})[0],
                   Values({1}, {2048}, DType::kFloat16), 0, 0);
  const auto i32 = RunOp("argmin", {Values({1, 3}, {4, -2, 9}, DType::kInt32)}, {{"axis", 1}})[0];
  CHECK(i32.dtype() == DType::kInt32);
  KILN_CHECK_CLOSE(i32, Values({1}, {1}, DType::kInt32), 0, 0);
  const int64_t big = (int64_t{1} << 60) + 1;
  KILN_CHECK_CLOSE(RunOp("argmax", {Int64s({3}, {big - 1, big, big - 1})})[0], Values({1}, {1}, DType::kInt64), 0, 0);
}

TEST_CASE("reduction registry entries", "[reduce]") {
  for (const char* op : {"sum", "mean", "prod", "max", "min", "argmax", "argmin"}) {
    INFO(op);
    const OpDef& def = OpRegistry::Global().Get(op);
    CHECK(def.pattern() == OpPattern::kReduction);
    CHECK(def.InplacePairs(def.ParseAttrs({}, "test")).empty());
  }
  CHECK(&OpRegistry::Global().Get("sum_axis") == &OpRegistry::Global().Get("sum"));
  CHECK(&OpRegistry::Global().Get("max_axis") == &OpRegistry::Global().Get("max"));
  CHECK(&OpRegistry::Global().Get("min_axis") == &OpRegistry::Global().Get("min"));
  // MXNet's JSON spells the defaults "None" and "False".
  const Attrs attrs = OpRegistry::Global().Get("sum").ParseAttrs(
      {{"axis", std::string("None")}, {"keepdims", std::string("False")}, {"exclude", std::string("0")}}, "n");
  CHECK(attrs.IsNone("axis"));
  CHECK_FALSE(attrs.Bool("keepdims"));
}
