// Lowerings of the shape operators (symbol/ops/shape.cc) run by the kir interpreter
// against the reference. Every one of them moves elements without arithmetic, so the
// results must be bitwise equal in every dtype.
#include <catch2/catch.hpp>
#include <cmath>
#include <string>
#include <tuple>
#include <utility>
#include <variant>
#include <vector>

#include "codegen/kir/kir.h"
#include "tests/lower_test_util.h"
#include "tests/op_test_util.h"

using namespace kiln;
using namespace kiln::testing;

namespace {

const std::vector<DType> kDTypes = {DType::kFloat32, DType::kFloat64, DType::kFloat16, DType::kInt8,
                                    DType::kUInt8,   DType::kInt32,   DType::kInt64,   DType::kBool};

// The op on one input of `shape` in every dtype.
void CheckAllTypes(const std::string& op, const Shape& shape, const AttrMap& attrs, uint64_t seed) {
  for (const DType dtype : kDTypes) {
    INFO(op << " of " << ShapeToString(shape) << " " << DTypeName(dtype));
    CheckLoweredBitwise(op, {RandomOfDType(shape, dtype, seed)}, attrs);
  }
}

}  // namespace

TEST_CASE("every shape operator has a lowering", "[lower][shape]") {
  for (const char* name :
       {"Reshape", "reshape", "Flatten", "flatten", "transpose", "expand_dims", "squeeze", "Concat", "concat", "stack",
        "split", "SliceChannel", "slice", "slice_axis", "tile", "repeat", "broadcast_to", "where"}) {
    INFO(name);
    const OpDef* op = OpRegistry::Global().Find(name);
    REQUIRE(op != nullptr);
    CHECK(op->has_lowering());
  }
}

TEST_CASE("Reshape, Flatten, expand_dims and squeeze copy in order", "[lower][shape]") {
  CheckAllTypes("Reshape", {2, 3, 4}, {{"shape", std::vector<int64_t>{-1, 0}}, {"reverse", true}}, 1);
  CheckAllTypes("Reshape", {2, 3, 4}, {{"shape", std::vector<int64_t>{0, -3}}}, 2);
  CheckAllTypes("Reshape", {6, 4}, {{"shape", std::vector<int64_t>{-4, 2, -1, -2}}}, 3);
  CheckAllTypes("Reshape", {3, 4}, {{"target_shape", std::vector<int64_t>{0, 6}}}, 4);
  CheckAllTypes("Flatten", {2, 3, 4, 5}, {}, 5);
  CheckAllTypes("Flatten", {7}, {}, 6);
  CheckAllTypes("expand_dims", {3, 5}, {{"axis", -1}}, 7);
  CheckAllTypes("expand_dims", {}, {{"axis", 0}}, 8);
  CheckAllTypes("squeeze", {1, 3, 1, 5}, {}, 9);
  CheckAllTypes("squeeze", {1, 3, 1, 5}, {{"axis", std::vector<int64_t>{2}}}, 10);
  CheckAllTypes("squeeze", {1, 1}, {}, 11);
  // Longer than one chunk: parallel chunks with a short last one.
  const kir::Kernel kernel =
      CheckLoweredBitwise("Reshape", {RandomTensor({5, 7001}, 12)}, {{"shape", std::vector<int64_t>{-1}}});
  CHECK(kernel.parallel_extent == 3);
  CHECK(kernel.body->loop_kind == kir::LoopKind::kParallel);
}

TEST_CASE("transpose permutes axes; axes contiguous in both views merge", "[lower][shape]") {
  uint64_t seed = 20;
  const Shape shape = {2, 3, 4, 5};
  for (const auto& axes : std::vector<std::vector<int64_t>>{
           {}, {0, 1, 2, 3}, {0, 2, 3, 1}, {3, 2, 1, 0}, {1, 0, 3, 2}, {0, 3, 1, 2}, {-1, 0, -2, 1}}) {
    INFO("axes " << ShapeToString(axes));
    CheckAllTypes("transpose", shape, {{"axes", axes}}, seed++);
  }
  CheckAllTypes("transpose", {7, 1, 3}, {}, seed++);
  CheckAllTypes("transpose", {9}, {}, seed++);
  CheckAllTypes("transpose", {}, {}, seed++);
  CheckAllTypes("transpose", {1, 4, 1}, {{"axes", std::vector<int64_t>{2, 0, 1}}}, seed++);
  // NCHW -> NHWC: H and W merge; rows of C elements read with stride H * W.
  const kir::Kernel kernel = CheckLoweredBitwise("transpose", {RandomTensor({2, 3, 4, 5}, seed++)},
                                                 {{"axes", std::vector<int64_t>{0, 2, 3, 1}}});
  CHECK(kernel.parallel_extent == 2 * 4 * 5);
  // The identity permutation is one flat run.
  CHECK(CheckLoweredBitwise("transpose", {RandomTensor({2, 3, 4, 5}, seed++)},
                            {{"axes", std::vector<int64_t>{0, 1, 2, 3}}})
            .parallel_extent == 1);
}

TEST_CASE("Concat and stack join inputs in one kernel", "[lower][shape]") {
  uint64_t seed = 40;
  for (const DType dtype : kDTypes) {
    INFO(DTypeName(dtype));
    const Tensor a = RandomOfDType({2, 3, 4}, dtype, seed++);
    const Tensor b = RandomOfDType({2, 1, 4}, dtype, seed++);
    const Tensor c = RandomOfDType({2, 5, 4}, dtype, seed++);
    CheckLoweredBitwise("Concat", {a, b, c}, {{"num_args", 3}, {"dim", 1}});
    CheckLoweredBitwise("Concat", {a, RandomOfDType({3, 3, 4}, dtype, seed++)}, {{"num_args", 2}, {"dim", 0}});
    CheckLoweredBitwise("Concat", {a, RandomOfDType({2, 3, 2}, dtype, seed++)}, {{"num_args", 2}, {"dim", -1}});
    CheckLoweredBitwise("Concat", {a}, {{"num_args", 1}});
    CheckLoweredBitwise("Concat", {a, RandomOfDType({2, 0, 4}, dtype, seed++), a}, {{"num_args", 3}, {"dim", 1}});
    for (const int64_t axis : {0, 1, 2, 3, -1, -4}) {
      INFO("stack axis " << axis);
      CheckLoweredBitwise("stack", {a, RandomOfDType({2, 3, 4}, dtype, seed++), a}, {{"num_args", 3}, {"axis", axis}});
    }
  }
  // Inputs own consecutive ranges of the parallel loop: 2 rows each for axis 1 of (2, n, 4).
  const kir::Kernel kernel = CheckLoweredBitwise(
      "Concat", {RandomTensor({2, 3, 4}, seed++), RandomTensor({2, 1, 4}, seed++), RandomTensor({2, 5, 4}, seed++)},
      {{"num_args", 3}, {"dim", 1}});
  CHECK(kernel.parallel_extent == 6);
}

TEST_CASE("split gives num_outputs parts, squeezed or not", "[lower][shape]") {
  uint64_t seed = 60;
  for (const DType dtype : kDTypes) {
    INFO(DTypeName(dtype));
    const Tensor x = RandomOfDType({4, 6, 3}, dtype, seed++);
    CheckLoweredBitwise("split", {x}, {{"num_outputs", 3}});
    CheckLoweredBitwise("split", {x}, {{"num_outputs", 2}, {"axis", 0}});
    CheckLoweredBitwise("split", {x}, {{"num_outputs", 3}, {"axis", -1}, {"squeeze_axis", true}});
    CheckLoweredBitwise("split", {x}, {{"num_outputs", 1}, {"axis", 2}});
    CheckLoweredBitwise("SliceChannel", {x}, {{"num_outputs", 6}, {"axis", 1}, {"squeeze_axis", true}});
  }
}

TEST_CASE("slice and slice_axis follow the reference's ranges", "[lower][shape]") {
  uint64_t seed = 80;
  const std::vector<std::vector<std::pair<std::string, std::string>>> slices = {
      {{"begin", "(1, 0)"}, {"end", "(3, None)"}},
      {{"begin", "(None, 1, 2)"}, {"end", "(None, 5, None)"}, {"step", "(1, 2, 3)"}},
      {{"begin", "(None, None)"}, {"end", "(None, None)"}, {"step", "(-1, -2)"}},
      {{"begin", "(-1, 4)"}, {"end", "(0, 0)"}, {"step", "(-1, -1)"}},
      {{"begin", "(2,)"}, {"end", "(100,)"}},
      {{"begin", "(0, -3, -7)"}, {"end", "(4, -1, 100)"}, {"step", "(3, None, 2)"}},
      {{"begin", "(3,)"}, {"end", "(1,)"}},  // empty
  };
  for (const auto& s : slices) {
    AttrMap attrs;
    std::string text;
    for (const auto& [name, value] : s) {
      attrs.emplace_back(name, value);
      text += name + "=" + value + " ";
    }
    INFO(text);
    CheckAllTypes("slice", {4, 6, 7}, attrs, seed++);
  }
  for (const auto& [axis, begin, end] : std::vector<std::tuple<int64_t, int64_t, AttrArg>>{
           {0, 1, AttrArg(3)}, {1, -4, AttrArg(std::monostate{})}, {-1, 2, AttrArg(-1)}, {2, 0, AttrArg(7)}}) {
    INFO("slice_axis " << axis << " " << begin);
    CheckAllTypes("slice_axis", {4, 6, 7}, {{"axis", axis}, {"begin", begin}, {"end", end}}, seed++);
  }
}

TEST_CASE("tile, repeat and broadcast_to read the input with stride 0 along copies", "[lower][shape]") {
  uint64_t seed = 100;
  for (const auto& reps : std::vector<std::vector<int64_t>>{{2, 3}, {3}, {2, 1, 1, 2}, {1, 1}, {1}}) {
    INFO("reps " << ShapeToString(reps));
    CheckAllTypes("tile", {3, 4}, {{"reps", reps}}, seed++);
  }
  CheckAllTypes("tile", {}, {{"reps", std::vector<int64_t>{4}}}, seed++);
  for (const AttrArg& axis : {AttrArg(std::monostate{}), AttrArg(0), AttrArg(1), AttrArg(-1)}) {
    for (const int64_t repeats : {1, 3}) {
      INFO("repeat axis " << FormatAttrValue(axis.value) << " repeats " << repeats);
      CheckAllTypes("repeat", {3, 2, 4}, {{"axis", axis}, {"repeats", repeats}}, seed++);
    }
  }
  CheckLoweredBitwise("repeat", {RandomTensor({3, 2}, seed++)}, {{"repeats", 0}});
  CheckLoweredBitwise("repeat", {RandomTensor({3, 2}, seed++)}, {{"repeats", 0}, {"axis", 1}});
  for (const auto& [shape, target] : std::vector<std::pair<Shape, std::vector<int64_t>>>{
           {{1, 3, 1}, {4, 3, 5}}, {{2, 1}, {0, 6}}, {{1}, {9}}, {{2, 3}, {2, 3}}, {{1, 1, 1}, {2, 3, 4}}}) {
    INFO("broadcast_to " << ShapeToString(shape) << " -> " << ShapeToString(target));
    CheckAllTypes("broadcast_to", shape, {{"shape", target}}, seed++);
  }
}

TEST_CASE("where picks elements, or whole rows for a 1-d condition", "[lower][shape]") {
  uint64_t seed = 120;
  const Shape shape = {4, 3, 5};
  for (const DType dtype : kDTypes) {
    for (const DType cond_type : {DType::kFloat32, DType::kInt32, DType::kBool, DType::kFloat16, DType::kUInt8}) {
      INFO(DTypeName(dtype) << " condition " << DTypeName(cond_type));
      const Tensor x = RandomOfDType(shape, dtype, seed++);
      const Tensor y = RandomOfDType(shape, dtype, seed++);
      // Values in {0, 1, 2} (and -0.5.. for floats): zeros and non-zeros alike.
      Tensor cond = RandomTensor(shape, seed++, 0, 3, cond_type);
      if (IsFloat(cond_type)) cond.SetDouble(0, std::nan(""));
      CheckLoweredBitwise("where", {cond, x, y}, {});
      CheckLoweredBitwise("where", {RandomTensor({4}, seed++, 0, 2, cond_type), x, y}, {});
    }
  }
  CheckLoweredBitwise("where", {RandomTensor({7}, seed++, 0, 2), RandomTensor({7}, seed++), RandomTensor({7}, seed++)},
                      {});
}
