// Lowerings of the reductions (symbol/ops/reduce.cc) run by the kir interpreter against
// the reference, over axis/keepdims/exclude modes, every dtype, NaN rules and the
// parallel, lane and tile paths.
//
// Tolerances: max, min, argmax, argmin and integer sums/products/means are exact. Float
// sums and means accumulate in float32 (float64 data: float64), so they get rtol 1e-5 plus
// atol 1e-6 per reduced element (float16: rtol and atol 1e-3, its rounding; float64:
// 1e-12); products rtol 1e-5 (float16: 2e-3).
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

const std::vector<std::string> kValueOps = {"sum", "mean", "prod", "max", "min"};
const std::vector<std::string> kArgOps = {"argmax", "argmin"};

// RandomOfDType, with int32 and int64 in smaller ranges and, `for_prod`, floats in [0.5, 1.5).
Tensor RandomOf(const Shape& shape, DType dtype, uint64_t seed, bool for_prod = false) {
  if (dtype == DType::kInt32) return RandomTensor(shape, seed, -100000, 100000, dtype);
  if (dtype == DType::kInt64) return RandomTensor(shape, seed, -1e12, 1e12, dtype);
  return for_prod ? RandomOfDType(shape, dtype, seed, 0.5, 1.5) : RandomOfDType(shape, dtype, seed);
}

int64_t ReducedCount(const Tensor& in, const Tensor& out) {
  return out.size() == 0 ? 0 : in.size() / out.size();
}

// Compares the lowering with the reference for one op and attribute set.
void Check(const std::string& op, const Tensor& in, const AttrMap& attrs) {
  const Tensor expected = RunOp(op, {in}, attrs)[0];
  const Tensor actual = RunLowered(op, {in}, attrs)[0];
  CHECK(actual.dtype() == expected.dtype());
  const bool exact = !IsFloat(in.dtype()) || op == "max" || op == "min" || op == "argmax" || op == "argmin";
  if (exact) {
    KILN_CHECK_CLOSE(actual, expected, 0, 0);
    return;
  }
  const auto count = static_cast<double>(ReducedCount(in, expected));
  const bool prod = op == "prod";
  switch (in.dtype()) {
    case DType::kFloat16: KILN_CHECK_CLOSE(actual, expected, prod ? 2e-3 : 1e-3, prod ? 0 : 1e-3); break;
    case DType::kFloat64: KILN_CHECK_CLOSE(actual, expected, 1e-12, prod ? 0 : 1e-12 * count); break;
    default: KILN_CHECK_CLOSE(actual, expected, 1e-5, prod ? 0 : 1e-6 * count); break;
  }
}

// Axis attributes worth trying for an input of `ndim` dims: None, (), each axis (also
// counted from the end), and first with last.
std::vector<AttrArg> AxisChoices(int64_t ndim) {
  std::vector<AttrArg> axes = {AttrArg(std::monostate{}), AttrArg(std::vector<int64_t>{})};
  for (int64_t d = 0; d < ndim; ++d) axes.emplace_back(std::vector<int64_t>{d % 2 == 0 ? d : d - ndim});
  if (ndim >= 2) axes.emplace_back(std::vector<int64_t>{0, -1});
  if (ndim >= 4) axes.emplace_back(std::vector<int64_t>{1, 3});
  return axes;
}

const std::vector<Shape> kShapes = {{}, {1}, {7}, {3, 1, 5}, {4, 9, 10}, {1, 13, 1, 3}, {2, 3, 4, 5}, {17, 20}};

}  // namespace

TEST_CASE("every reduction operator has a lowering", "[lower][reduce]") {
  for (const char* name :
       {"sum", "sum_axis", "mean", "prod", "max", "max_axis", "min", "min_axis", "argmax", "argmin"}) {
    INFO(name);
    const OpDef* op = OpRegistry::Global().Find(name);
    REQUIRE(op != nullptr);
    CHECK(op->has_lowering());
  }
}

TEST_CASE("float32 reductions match the reference in every axis mode", "[lower][reduce]") {
  uint64_t seed = 1;
  for (const Shape& shape : kShapes) {
    const Tensor x = RandomOf(shape, DType::kFloat32, seed++);
    const Tensor positive = RandomOf(shape, DType::kFloat32, seed++, true);
    for (const AttrArg& axis : AxisChoices(static_cast<int64_t>(shape.size()))) {
      for (const bool keepdims : {false, true}) {
        for (const bool exclude : {false, true}) {
          for (const std::string& op : kValueOps) {
            INFO(op << " of " << ShapeToString(shape) << " axis " << FormatAttrValue(axis.value) << " keepdims "
                    << keepdims << " exclude " << exclude);
            Check(op, op == "prod" ? positive : x, {{"axis", axis}, {"keepdims", keepdims}, {"exclude", exclude}});
          }
        }
      }
    }
    const int64_t ndim = static_cast<int64_t>(shape.size());
    for (const std::string& op : kArgOps) {
      for (const bool keepdims : {false, true}) {
        INFO(op << " of " << ShapeToString(shape) << " keepdims " << keepdims);
        Check(op, x, {{"keepdims", keepdims}});
        for (int64_t axis = -ndim; axis < ndim; ++axis) {
          INFO("axis " << axis);
          Check(op, x, {{"axis", axis}, {"keepdims", keepdims}});
        }
      }
    }
  }
}

TEST_CASE("reductions in every dtype: integers wrap, means truncate, indices take the data dtype", "[lower][reduce]") {
  uint64_t seed = 100;
  for (const DType dtype :
       {DType::kFloat16, DType::kFloat64, DType::kInt8, DType::kUInt8, DType::kInt32, DType::kInt64, DType::kBool}) {
    // Axis 1 of (3, 200, 2) runs past 127: an int8 index wraps, as the reference's.
    for (const Shape& shape : {Shape{5, 7, 9}, Shape{3, 200, 2}, Shape{33}}) {
      const Tensor x = RandomOf(shape, dtype, seed++);
      const Tensor positive = RandomOf(shape, dtype, seed++, true);
      for (const AttrArg& axis :
           {AttrArg(std::monostate{}), AttrArg(std::vector<int64_t>{-1}), AttrArg(std::vector<int64_t>{0})}) {
        for (const std::string& op : kValueOps) {
          INFO(op << " " << DTypeName(dtype) << " " << ShapeToString(shape) << " axis " << FormatAttrValue(axis.value));
          // Long float16 products overflow or vanish in both: keep them short.
          if (op == "prod" && IsFloat(dtype) && shape[0] != 5) continue;
          Check(op, op == "prod" ? positive : x, {{"axis", axis}});
          Check(op, op == "prod" ? positive : x, {{"axis", axis}, {"exclude", true}, {"keepdims", true}});
        }
      }
      for (const std::string& op : kArgOps) {
        INFO(op << " " << DTypeName(dtype) << " " << ShapeToString(shape));
        Check(op, x, {});
        Check(op, x, {{"axis", 1 % static_cast<int64_t>(shape.size())}});
        Check(op, x, {{"axis", -1}, {"keepdims", true}});
      }
    }
  }
  // Hand: int8 sum wraps, int32 mean truncates toward zero, a uint8 mean divides the
  // wrapped sum (255 + 253 = 252 in uint8), as the reference and MXNet.
  KILN_CHECK_CLOSE(RunLowered("sum", {Values({2}, {100, 100}, DType::kInt8)})[0], Values({1}, {-56}, DType::kInt8), 0,
                   0);
  KILN_CHECK_CLOSE(RunLowered("mean", {Values({2}, {-1, -2}, DType::kInt32)})[0], Values({1}, {-1}, DType::kInt32), 0,
                   0);
  KILN_CHECK_CLOSE(RunLowered("mean", {Values({2}, {255, 253}, DType::kUInt8)})[0], Values({1}, {126}, DType::kUInt8),
                   0, 0);
}

TEST_CASE("NaN rules: max and min propagate it, the arg forms pick the first NaN", "[lower][reduce]") {
  const double nan = std::nan("");
  const double inf = INFINITY;
  const Tensor x = Values({3, 4}, {1, nan, 3, nan, -inf, -inf, -inf, -inf, inf, 2, inf, nan});
  for (const DType dtype : {DType::kFloat32, DType::kFloat16, DType::kFloat64}) {
    const Tensor t = x.CastTo(dtype);
    for (const std::string op : {"max", "min", "argmax", "argmin", "sum", "prod"}) {
      for (const AttrArg& axis : {AttrArg(std::monostate{}), AttrArg(int64_t{0}), AttrArg(int64_t{1})}) {
        INFO(op << " " << DTypeName(dtype) << " axis " << FormatAttrValue(axis.value));
        const bool arg = op == "argmax" || op == "argmin";
        const AttrMap attrs = {
            {"axis", arg ? axis
                         : AttrArg(axis.value.index() == 0 ? std::vector<int64_t>{}
                                                           : std::vector<int64_t>{std::get<int64_t>(axis.value)})}};
        KILN_CHECK_CLOSE(RunLowered(op, {t}, attrs)[0], RunOp(op, {t}, attrs)[0], 0, 0);
      }
    }
  }
  // 16 and more elements per row take the lane path: NaNs in several lanes (the
  // earliest wins, here in a later lane), a row of -inf (position 0), a row of ties.
  Tensor lanes = RandomTensor({4, 37}, 7);
  lanes.SetDouble(37 + 16, nan);
  lanes.SetDouble(37 + 9, nan);
  lanes.SetDouble(37 + 30, nan);
  for (int64_t i = 0; i < 37; ++i) {
    lanes.SetDouble(74 + i, -inf);
    lanes.SetDouble(111 + i, static_cast<double>((i * 7) % 3));
  }
  for (const std::string op : {"max", "min", "argmax", "argmin"}) {
    INFO(op);
    KILN_CHECK_CLOSE(RunLowered(op, {lanes}, {{"axis", -1}})[0], RunOp(op, {lanes}, {{"axis", -1}})[0], 0, 0);
  }
}

TEST_CASE("large reductions run in parallel with contiguous inner loops", "[lower][reduce]") {
  const Tensor x = RandomTensor({64, 301}, 11);
  for (const std::string op : {"sum", "mean", "max", "argmin"}) {
    for (const int64_t axis : {0, 1}) {
      INFO(op << " axis " << axis);
      const AttrMap attrs = {{"axis", op == "argmin" ? AttrArg(axis) : AttrArg(std::vector<int64_t>{axis})}};
      Check(op, x, attrs);
      const kir::Kernel kernel = LowerOpForInputs(op, {x}, attrs);
      // Rows (axis 1) or 2 tiles of 256 and 45 columns (axis 0).
      CHECK(kernel.parallel_extent == (axis == 1 ? 64 : 2));
      CHECK(kernel.body->loop_kind == kir::LoopKind::kParallel);
      if (op != "argmin") CHECK(kir::Print(kernel).find("vectorized for") != std::string::npos);
    }
  }
  // A middle axis: tiles of the trailing kept axis, one task per (outer, tile).
  const Tensor y = RandomTensor({3, 40, 200}, 12, -1, 1, DType::kInt32);
  for (const std::string op : {"sum", "prod", "min", "argmax"}) {
    INFO(op);
    const AttrMap attrs = {{"axis", op == "argmax" ? AttrArg(1) : AttrArg(std::vector<int64_t>{1})}};
    Check(op, y, attrs);
    CHECK(LowerOpForInputs(op, {y}, attrs).parallel_extent == 3);
  }
  // Small inputs stay on one thread.
  CHECK(LowerOpForInputs("sum", {RandomTensor({8, 8}, 13)}, {{"axis", {1}}}).parallel_extent == 1);
}

TEST_CASE("long float32 sums accumulate in float64", "[lower][reduce]") {
  // 70000 values near 1: float32 accumulation would drift by ~1e-3 relative.
  const Tensor x = RandomTensor({70000}, 21, 0.999, 1.001);
  KILN_CHECK_CLOSE(RunLowered("sum", {x})[0], RunOp("sum", {x})[0], 1e-7, 0);
  KILN_CHECK_CLOSE(RunLowered("mean", {x})[0], RunOp("mean", {x})[0], 1e-7, 0);
}

TEST_CASE("reductions over zero elements", "[lower][reduce]") {
  const Tensor empty({2, 0, 3}, DType::kFloat32);
  Check("sum", empty, {{"axis", {1}}});
  Check("prod", empty, {{"axis", {1}}});
  Check("mean", empty, {{"axis", {1}}});  // 0 / 0: NaN, as the reference
  Check("sum", empty, {{"axis", {0}}});   // no outputs
  CHECK_THROWS_WITH(RunLowered("mean", {Tensor({2, 0}, DType::kInt32)}, {{"axis", {1}}}),
                    Catch::Contains("divides by zero"));
}
