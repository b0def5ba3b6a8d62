// Lowerings of take (symbol/ops/index.cc) and Pad (symbol/ops/shape.cc) run by the kir
// interpreter against the reference. Both move elements (or store Pad's constant)
// without arithmetic, so the results must be bitwise equal.
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

const std::vector<DType> kAllTypes = {DType::kFloat32, DType::kFloat64, DType::kFloat16, DType::kInt8,
                                      DType::kUInt8,   DType::kInt32,   DType::kInt64,   DType::kBool};
const std::vector<DType> kFloatTypes = {DType::kFloat32, DType::kFloat64, DType::kFloat16};

// Indices of `dtype` for an axis of size n: in range, negative and beyond either end.
Tensor IndicesOf(const Shape& shape, DType dtype, int64_t n, uint64_t seed) {
  const double span = static_cast<double>(n);
  switch (dtype) {
    case DType::kBool: return RandomTensor(shape, seed, 0, 2, dtype);
    case DType::kUInt8: return RandomTensor(shape, seed, 0, 3 * span, dtype);
    default: {
      Tensor t = RandomTensor(shape, seed, -2 * span, 3 * span, dtype);
      if (IsFloat(dtype) && t.size() >= 3) {
        t.SetDouble(0, std::nan(""));
        t.SetDouble(1, INFINITY);
        t.SetDouble(2, -INFINITY);
      }
      return t;
    }
  }
}

AttrMap PadAttrs(const char* mode, std::vector<int64_t> widths, double value = 0) {
  return {{"mode", mode}, {"pad_width", std::move(widths)}, {"constant_value", value}};
}

}  // namespace

TEST_CASE("take and Pad have lowerings", "[lower][take][pad]") {
  for (const char* name : {"take", "Pad", "pad"}) {
    INFO(name);
    CHECK(OpRegistry::Global().Get(name).has_lowering());
  }
}

TEST_CASE("take matches the reference for every data and index dtype", "[lower][take]") {
  uint64_t seed = 1;
  const Shape shape = {3, 5, 4};
  for (const DType dtype : kAllTypes) {
    for (const DType index_type : kAllTypes) {
      for (const char* mode : {"clip", "wrap"}) {
        for (const int64_t axis : {0, 1, 2, -2}) {
          INFO(DTypeName(dtype) << " indices " << DTypeName(index_type) << " " << mode << " axis " << axis);
          const int64_t n = shape[static_cast<size_t>(axis < 0 ? axis + 3 : axis)];
          CheckLoweredBitwise("take", {RandomOfDType(shape, dtype, seed++), IndicesOf({2, 3}, index_type, n, seed++)},
                              {{"axis", axis}, {"mode", mode}});
        }
      }
    }
  }
}

TEST_CASE("take edge cases", "[lower][take]") {
  uint64_t seed = 100;
  // int64 indices beyond 2^53 wrap exactly (MXNet: 2^60 + 3 -> 4 modulo 5).
  Tensor big({4}, DType::kInt64);
  big.data_as<int64_t>()[0] = (int64_t{1} << 60) + 3;
  big.data_as<int64_t>()[1] = -(int64_t{1} << 60) - 3;
  big.data_as<int64_t>()[2] = INT64_MIN;
  big.data_as<int64_t>()[3] = INT64_MAX;
  const Tensor v = Values({5}, {10, 11, 12, 13, 14});
  for (const char* mode : {"clip", "wrap"}) {
    INFO(mode);
    CheckLoweredBitwise("take", {v, big}, {{"mode", mode}});
    // Float indices past the int64 range and just below n.
    CheckLoweredBitwise("take", {v, Values({4}, {1e30, -1e30, 4.999, -4.999}, DType::kFloat64)}, {{"mode", mode}});
    CheckLoweredBitwise("take", {v, Values({3}, {65504, -65504, 4.996}, DType::kFloat16)}, {{"mode", mode}});
  }
  KILN_CHECK_CLOSE(RunLowered("take", {v, big}, {{"mode", "wrap"}})[0], Values({4}, {14, 11, 12, 12}), 0, 0);
  // A 0-d index, empty indices, size-1 axes, a 1-d input.
  CheckLoweredBitwise("take", {RandomOfDType({3, 4}, DType::kFloat32, seed++), Values({}, {2})}, {{"axis", 1}});
  CheckLoweredBitwise("take", {RandomOfDType({3, 4}, DType::kFloat32, seed++), Tensor({0}, DType::kInt32)},
                      {{"axis", 1}});
  CheckLoweredBitwise("take", {Tensor({3, 0}, DType::kFloat32), Tensor({0, 2}, DType::kInt32)}, {{"axis", 1}});
  CheckLoweredBitwise("take", {RandomOfDType({1, 1, 1}, DType::kInt32, seed++), Values({2}, {0, 3})},
                      {{"axis", 1}, {"mode", "wrap"}});
  CheckLoweredBitwise("take",
                      {RandomOfDType({7}, DType::kFloat32, seed++), IndicesOf({2, 2}, DType::kInt32, 7, seed++)}, {});
  // Large enough for a parallel loop over output rows: (outer, m) rows of inner elements.
  const kir::Kernel kernel = CheckLoweredBitwise(
      "take", {RandomOfDType({6, 50, 300}, DType::kFloat32, seed++), IndicesOf({40}, DType::kInt64, 50, seed++)},
      {{"axis", 1}, {"mode", "wrap"}});
  CHECK(kernel.parallel_extent == 6 * 40);
  CHECK(kernel.body->loop_kind == kir::LoopKind::kParallel);
  // Small work stays serial.
  CHECK(CheckLoweredBitwise("take", {RandomOfDType({4, 3}, DType::kFloat32, seed++), Values({2}, {1, 0})}, {})
            .parallel_extent == 1);
}

TEST_CASE("Pad matches the reference in every mode", "[lower][pad]") {
  uint64_t seed = 200;
  const std::vector<std::pair<Shape, std::vector<int64_t>>> cases = {
      {{2, 3, 4, 5}, {0, 0, 0, 0, 1, 2, 3, 1}},
      {{1, 2, 4, 5}, {0, 0, 0, 0, 3, 2, 4, 4}},
      {{2, 1, 3, 4}, {0, 0, 0, 0, 0, 0, 0, 0}},
      {{1, 1, 4, 5}, {0, 0, 0, 0, -1, 2, 2, -3}},
      {{1, 2, 5, 6}, {0, 0, 0, 0, -2, -1, -3, -2}},
      {{2, 1, 3, 4}, {0, 0, 0, 0, 2, -2, -3, 3}},
      {{1, 2, 1, 1}, {0, 0, 0, 0, 0, 0, 0, 0}},
      {{1, 2, 3, 4, 5}, {0, 0, 0, 0, 1, 2, 3, 1, 2, 4}},
      {{2, 1, 2, 3, 4}, {0, 0, 0, 0, -1, 1, 2, -1, 3, -2}},
  };
  for (const auto& [shape, widths] : cases) {
    for (const char* mode : {"constant", "edge", "reflect"}) {
      bool reflect_ok = true;
      for (size_t d = 2; d < shape.size(); ++d) {
        reflect_ok = reflect_ok && widths[2 * d] < shape[d] && widths[2 * d + 1] < shape[d];
      }
      if (std::string(mode) == "reflect" && !reflect_ok) continue;
      for (const DType dtype : kFloatTypes) {
        INFO(mode << " " << ShapeToString(shape) << " widths " << ShapeToString(widths) << " " << DTypeName(dtype));
        CheckLoweredBitwise("Pad", {RandomOfDType(shape, dtype, seed++)}, PadAttrs(mode, widths, -2.7));
      }
    }
  }
}

TEST_CASE("Pad edge cases", "[lower][pad]") {
  uint64_t seed = 300;
  // Widths cropping an axis to size 0, and an empty input padded with the constant.
  CheckLoweredBitwise("Pad", {RandomOfDType({1, 1, 3, 2}, DType::kFloat32, seed++)},
                      PadAttrs("constant", {0, 0, 0, 0, -2, -1, 1, 1}));
  CheckLoweredBitwise("Pad", {Tensor({1, 1, 0, 2}, DType::kFloat32)},
                      PadAttrs("constant", {0, 0, 0, 0, 1, 1, 0, 2}, 5));
  // Edge padding from a width-1 axis; reflect widths one less than the axis.
  CheckLoweredBitwise("Pad", {RandomOfDType({2, 2, 1, 1}, DType::kFloat64, seed++)},
                      PadAttrs("edge", {0, 0, 0, 0, 3, 2, 1, 4}));
  CheckLoweredBitwise("Pad", {RandomOfDType({1, 1, 2, 3}, DType::kFloat32, seed++)},
                      PadAttrs("reflect", {0, 0, 0, 0, 1, 1, 2, 2}));
  // Constants that round or overflow in float16, and NaN.
  for (const double value : {0.1, 1e6, -1e40, std::nan("")}) {
    INFO("constant " << value);
    CheckLoweredBitwise("Pad", {RandomOfDType({1, 1, 2, 2}, DType::kFloat16, seed++)},
                        PadAttrs("constant", {0, 0, 0, 0, 1, 0, 0, 1}, value));
  }
  // Large: a parallel loop over output rows (N * C * H_out).
  const kir::Kernel kernel = CheckLoweredBitwise("Pad", {RandomOfDType({2, 16, 32, 32}, DType::kFloat32, seed++)},
                                                 PadAttrs("reflect", {0, 0, 0, 0, 1, 1, 1, 1}));
  CHECK(kernel.parallel_extent == 2 * 16 * 34);
  CHECK(kernel.body->loop_kind == kir::LoopKind::kParallel);
  CHECK(CheckLoweredBitwise("Pad", {RandomOfDType({1, 1, 2, 2}, DType::kFloat32, seed++)},
                            PadAttrs("edge", {0, 0, 0, 0, 1, 1, 1, 1}))
            .parallel_extent == 1);
}
