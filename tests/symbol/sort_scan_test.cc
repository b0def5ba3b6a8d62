// topk and _np_cumsum (ops/sort_scan.cc) and the ONNX converters onto them
// (symbol/onnx/onnx_convert_sort.cc): hand-checked values (MXNet 1.9.1's and numpy's
// outputs, ONNX's examples), the reference against independent checks on random shapes
// and axes, the lowering (kir interpreter, and LLVM through the JIT) bitwise against the
// reference, empty tensors, and errors.
#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "codegen/compiler.h"
#include "graph/op_util.h"
#include "passes/interpreter.h"
#include "runtime/error.h"
#include "symbol/onnx/onnx.pb.h"
#include "symbol/onnx/onnx_import.h"
#include "symbol/onnx/onnx_tensor.h"
#include "symbol/symbol.h"
#include "tests/lower_test_util.h"
#include "tests/onnx/onnx_test_util.h"
#include "tests/op_test_util.h"

using namespace kiln;
using namespace kiln::testing;

namespace {

const std::vector<DType> kNumericTypes = {DType::kFloat32, DType::kFloat64, DType::kFloat16, DType::kInt32,
                                          DType::kInt64,   DType::kInt8,    DType::kUInt8};

// Values with ties: integers in a small range, in any dtype.
Tensor TiedValues(const Shape& shape, DType dtype, uint64_t seed) {
  return RandomTensor(shape, seed, 0, 4, dtype);
}

// A random shape of rank 1..4 with dims 1..5 (some 0 where `allow_empty`).
Shape RandomShape(std::mt19937_64& rng, size_t rank, bool allow_empty) {
  Shape shape(rank);
  for (auto& d : shape) d = std::uniform_int_distribution<int64_t>(1, 5)(rng);
  if (allow_empty && std::uniform_int_distribution<int>(0, 5)(rng) == 0) {
    shape[std::uniform_int_distribution<size_t>(0, rank - 1)(rng)] = 0;
  }
  return shape;
}

int64_t RandomAxis(std::mt19937_64& rng, size_t rank) {
  return std::uniform_int_distribution<int64_t>(-static_cast<int64_t>(rank), static_cast<int64_t>(rank) - 1)(rng);
}

// The operator compiled by LLVM (JIT) on `inputs` (variables named in0, in1, ...).
std::vector<Tensor> RunJit(const std::string& op, const std::vector<Tensor>& inputs, const AttrMap& attrs) {
  std::vector<Symbol> vars;
  CompileOptions options;
  std::map<std::string, Tensor> feeds;
  for (size_t i = 0; i < inputs.size(); ++i) {
    const std::string name = "in" + std::to_string(i);
    vars.push_back(Symbol::Variable(name, inputs[i].shape(), inputs[i].dtype()));
    options.input_shapes[name] = inputs[i].shape();
    options.input_types[name] = inputs[i].dtype();
    feeds[name] = inputs[i];
  }
  const Graph graph = Symbol::Create(op, vars, attrs, "op").ToGraph();
  return CompileJit(graph, options)->Run(feeds);
}

// Reference, kir interpreter and JIT agree bitwise; returns the reference's outputs.
std::vector<Tensor> CheckAllAgree(const std::string& op, const std::vector<Tensor>& inputs, const AttrMap& attrs,
                                  bool jit = true) {
  const std::vector<Tensor> expected = RunOp(op, inputs, attrs);
  CheckLoweredBitwise(op, inputs, attrs);
  if (jit) {
    const std::vector<Tensor> compiled = RunJit(op, inputs, attrs);
    REQUIRE(compiled.size() == expected.size());
    for (size_t i = 0; i < compiled.size(); ++i) {
      INFO("JIT output " << i);
      CHECK(compiled[i].dtype() == expected[i].dtype());
      CHECK(compiled[i].BitwiseEquals(expected[i]));
    }
  }
  return expected;
}

// The element at position j along `axis` (normalized) of the row of `shape` through
// `flat` (any element of the row).
int64_t AlongAxis(const Shape& shape, size_t axis, int64_t flat, int64_t j) {
  int64_t inner = 1;
  for (size_t d = axis + 1; d < shape.size(); ++d) inner *= shape[d];
  const int64_t n = shape[axis];
  return (flat / inner / n * n + j) * inner + flat % inner;
}

}  // namespace

TEST_CASE("topk and _np_cumsum are registered and complete", "[sort_scan]") {
  for (const char* name : {"topk", "_np_cumsum"}) {
    INFO(name);
    const OpDef* op = OpRegistry::Global().Find(name);
    REQUIRE(op != nullptr);
    CHECK(op->has_reference());
    CHECK(op->has_lowering());
    CHECK_FALSE(op->description().empty());
  }
  // mx.sym.cumsum writes _np_cumsum: MXNet registers the one as an alias of the other.
  CHECK(&OpRegistry::Global().Get("cumsum") == &OpRegistry::Global().Get("_np_cumsum"));
  CHECK(OpRegistry::Global().Get("_np_cumsum").InputNames(ParseAttrs("_np_cumsum", {})) ==
        std::vector<std::string>{"a"});
  // MXNet's list_outputs: "value" shows the first of two outputs.
  const OpDef& topk = OpRegistry::Global().Get("topk");
  const auto names = [&](const char* ret) { return topk.OutputNames(ParseAttrs("topk", {{"ret_typ", ret}})); };
  CHECK(names("indices") == std::vector<std::string>{"output"});
  CHECK(names("mask") == std::vector<std::string>{"output"});
  CHECK(names("value") == std::vector<std::string>{"output0"});
  CHECK(names("both") == std::vector<std::string>{"output0", "output1"});
}

// --- topk ---

TEST_CASE("topk: MXNet 1.9.1's outputs, ties and NaN", "[sort_scan][topk]") {
  // Recorded from mx.nd.topk (MXNet 1.9.1): ties in the input's order, as its insertion
  // sort of these short rows leaves them.
  const Tensor x = Values({2, 6}, {3, 1, 3, 2, 1, 3, 1, 0, 5, 5, -INFINITY, 2});
  auto out = RunOp("topk", {x}, {{"k", 3}, {"ret_typ", "both"}});
  REQUIRE(out.size() == 2);
  KILN_CHECK_CLOSE(out[0], Values({2, 3}, {3, 3, 3, 5, 5, 2}), 0, 0);
  KILN_CHECK_CLOSE(out[1], Values({2, 3}, {0, 2, 5, 2, 3, 5}), 0, 0);
  CHECK(out[1].dtype() == DType::kFloat32);
  out = RunOp("topk", {x}, {{"k", 3}, {"ret_typ", "both"}, {"is_ascend", true}});
  KILN_CHECK_CLOSE(out[0], Values({2, 3}, {1, 1, 2, -INFINITY, 0, 1}), 0, 0);
  KILN_CHECK_CLOSE(out[1], Values({2, 3}, {1, 4, 3, 4, 1, 0}), 0, 0);
  out = RunOp("topk", {x}, {{"k", 3}, {"ret_typ", "mask"}});
  KILN_CHECK_CLOSE(out[0], Values({2, 6}, {1, 0, 1, 0, 0, 1, 0, 0, 1, 1, 0, 1}), 0, 0);
  // Default: k = 1, indices, axis -1, descending.
  KILN_CHECK_CLOSE(RunOp("topk", {x})[0], Values({2, 1}, {0, 2}), 0, 0);
  // axis 0; the flattened input (axis=None).
  out = RunOp("topk", {x}, {{"axis", 0}, {"ret_typ", "both"}});
  KILN_CHECK_CLOSE(out[0], Values({1, 6}, {3, 1, 5, 5, 1, 3}), 0, 0);
  KILN_CHECK_CLOSE(out[1], Values({1, 6}, {0, 0, 1, 1, 0, 0}), 0, 0);
  out = RunOp("topk", {x}, {{"axis", "None"}, {"k", 4}, {"ret_typ", "both"}});
  KILN_CHECK_CLOSE(out[0], Values({4}, {5, 5, 3, 3}), 0, 0);
  KILN_CHECK_CLOSE(out[1], Values({4}, {8, 9, 0, 2}), 0, 0);
  KILN_CHECK_CLOSE(RunOp("topk", {x}, {{"axis", "None"}, {"k", 2}, {"ret_typ", "mask"}})[0],
                   Values({2, 6}, {0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 0, 0}), 0, 0);

  // NaN is the largest: first descending, last ascending; NaNs keep their order. (MXNet
  // agrees where its sort leaves NaN there: a leading NaN descending, a trailing one
  // ascending.)
  const Tensor nan = Values({1, 6}, {NAN, 1, NAN, 5, -INFINITY, 2});
  out = RunOp("topk", {nan}, {{"k", 6}, {"ret_typ", "both"}});
  const Tensor& v = out[0];
  CHECK(std::isnan(v.GetDouble(0)));
  CHECK(std::isnan(v.GetDouble(1)));
  CHECK(v.GetDouble(2) == 5);
  CHECK(v.GetDouble(5) == -INFINITY);
  KILN_CHECK_CLOSE(out[1], Values({1, 6}, {0, 2, 3, 5, 1, 4}), 0, 0);
  out = RunOp("topk", {nan}, {{"k", 6}, {"ret_typ", "both"}, {"is_ascend", true}});
  KILN_CHECK_CLOSE(out[1], Values({1, 6}, {4, 1, 5, 3, 0, 2}), 0, 0);
  KILN_CHECK_CLOSE(RunOp("topk", {nan}, {{"k", 2}, {"ret_typ", "mask"}})[0], Values({1, 6}, {1, 0, 1, 0, 0, 0}), 0, 0);

  // Ties keep the smaller index first, whatever k and n (MXNet's partial_sort does not:
  // on 300 elements it gives [20, 13, 6] here).
  Tensor periodic({300}, DType::kFloat32);
  for (int64_t i = 0; i < 300; ++i) periodic.SetDouble(i, static_cast<double>(i % 7));
  KILN_CHECK_CLOSE(RunOp("topk", {periodic}, {{"k", 3}})[0], Values({3}, {6, 13, 20}), 0, 0);
  // Indices in the dtype asked for: float16 rounds them, uint8 wraps them (as MXNet's
  // cast: 2999 -> 3000 in float16).
  Tensor ramp = Arange({3000});
  out = RunOp("topk", {ramp}, {{"k", 3}, {"dtype", "float16"}});
  CHECK(out[0].dtype() == DType::kFloat16);
  KILN_CHECK_CLOSE(out[0], Values({3}, {3000, 2998, 2996}), 0, 0);
  out = RunOp("topk", {periodic}, {{"k", 3}, {"dtype", "uint8"}, {"is_ascend", true}});
  KILN_CHECK_CLOSE(out[0], Values({3}, {0, 7, 14}), 0, 0);
  out = RunOp("topk", {ramp}, {{"k", 2}, {"dtype", "uint8"}});
  KILN_CHECK_CLOSE(out[0], Values({2}, {2999 % 256, 2998 % 256}, DType::kUInt8), 0, 0);
}

TEST_CASE("topk: k = n, k = 1, k < 1 (all), dtypes and exact int64", "[sort_scan][topk]") {
  const Tensor x = Values({2, 4}, {3, 1, 4, 1, 5, 9, 2, 6});
  for (const int64_t k : {int64_t{4}, int64_t{0}, int64_t{-1}}) {
    INFO("k " << k);
    const auto out = RunOp("topk", {x}, {{"k", k}, {"ret_typ", "both"}, {"dtype", "int64"}});
    KILN_CHECK_CLOSE(out[0], Values({2, 4}, {4, 3, 1, 1, 9, 6, 5, 2}), 0, 0);
    KILN_CHECK_CLOSE(out[1], Values({2, 4}, {2, 0, 1, 3, 1, 3, 0, 2}, DType::kInt64), 0, 0);
    CHECK(out[1].dtype() == DType::kInt64);
  }
  const auto one = RunOp("topk", {x}, {{"k", 1}, {"ret_typ", "value"}, {"is_ascend", true}});
  KILN_CHECK_CLOSE(one[0], Values({2, 1}, {1, 2}), 0, 0);
  // Values and the mask keep data's dtype; indices take `dtype`.
  for (const DType dtype : kNumericTypes) {
    INFO(DTypeName(dtype));
    const Tensor data = x.CastTo(dtype);
    auto types = InferTypeSlots("topk", {dtype}, {{"ret_typ", "both"}, {"dtype", "int32"}});
    CHECK(types[1] == dtype);
    CHECK(types[2] == DType::kInt32);
    CHECK(InferTypeSlots("topk", {dtype}, {{"ret_typ", "mask"}})[1] == dtype);
    CHECK(InferTypeSlots("topk", {dtype}, {{"ret_typ", "value"}})[1] == dtype);
    CHECK(InferTypeSlots("topk", {dtype}, {})[1] == DType::kFloat32);
    const auto out = RunOp("topk", {data}, {{"k", 2}, {"ret_typ", "both"}, {"dtype", "int32"}});
    KILN_CHECK_CLOSE(out[0], Values({2, 2}, {4, 3, 9, 6}, dtype), 0, 0);
    KILN_CHECK_CLOSE(out[1], Values({2, 2}, {2, 0, 1, 3}, DType::kInt32), 0, 0);
  }
  // int64 beyond 2^53 compares exactly.
  Tensor big({3}, DType::kInt64);
  big.data_as<int64_t>()[0] = (int64_t{1} << 60);
  big.data_as<int64_t>()[1] = (int64_t{1} << 60) + 1;
  big.data_as<int64_t>()[2] = -5;
  const auto exact = CheckAllAgree("topk", {big}, {{"k", 2}, {"ret_typ", "both"}, {"dtype", "int64"}});
  CHECK(exact[0].data_as<int64_t>()[0] == (int64_t{1} << 60) + 1);
  CHECK(exact[1].data_as<int64_t>()[0] == 1);
  CHECK(exact[1].data_as<int64_t>()[1] == 0);
}

TEST_CASE("topk shapes, empty tensors and errors", "[sort_scan][topk]") {
  CHECK(InferOpShapes("topk", {{2, 3, 4}}, {{"axis", 1}, {"k", 2}, {"ret_typ", "both"}}) ==
        std::vector<Shape>{{2, 2, 4}, {2, 2, 4}});
  CHECK(InferOpShapes("topk", {{2, 3, 4}}, {{"axis", -3}, {"k", 2}})[0] == Shape{2, 3, 4});
  CHECK(InferOpShapes("topk", {{2, 3, 4}}, {{"axis", "None"}, {"k", 5}})[0] == Shape{5});
  CHECK(InferOpShapes("topk", {{2, 3, 4}}, {{"axis", "None"}, {"ret_typ", "mask"}})[0] == Shape{2, 3, 4});
  CHECK(InferOpShapes("topk", {{2, 3, 4}}, {{"k", 0}})[0] == Shape{2, 3, 4});
  // Empty: other dims empty, or an empty axis with k < 1.
  CHECK(InferOpShapes("topk", {{0, 5}}, {{"k", 2}})[0] == Shape{0, 2});
  CHECK(InferOpShapes("topk", {{3, 0}}, {{"k", 0}, {"ret_typ", "both"}})[1] == Shape{3, 0});
  for (const char* ret : {"value", "indices", "mask", "both"}) {
    INFO(ret);
    CheckAllAgree("topk", {Tensor({0, 5}, DType::kFloat32)}, {{"k", 2}, {"ret_typ", ret}});
    CheckAllAgree("topk", {Tensor({3, 0}, DType::kInt32)}, {{"k", 0}, {"ret_typ", ret}});
  }
  CHECK_THROWS_WITH(InferOpShapes("topk", {{2, 6}}, {{"k", 7}}),
                    Catch::Contains("attribute 'k'") && Catch::Contains("at most 6") && Catch::Contains("axis 1") &&
                        Catch::Contains("given 7"));
  CHECK_THROWS_WITH(InferOpShapes("topk", {{2, 6}}, {{"axis", "None"}, {"k", 13}}),
                    Catch::Contains("attribute 'k'") && Catch::Contains("at most 12") && Catch::Contains("flattened") &&
                        Catch::Contains("given 13"));
  CHECK_THROWS_WITH(InferOpShapes("topk", {{3, 0}}),
                    Catch::Contains("attribute 'k'") && Catch::Contains("at most 0") && Catch::Contains("given 1"));
  CHECK_THROWS_WITH(InferOpShapes("topk", {{2, 3}}, {{"axis", 2}}),
                    Catch::Contains("attribute 'axis'") && Catch::Contains("axis 2") && Catch::Contains("2-d"));
  CHECK_THROWS_WITH(InferOpShapes("topk", {{2, 3}}, {{"axis", -3}}),
                    Catch::Contains("attribute 'axis'") && Catch::Contains("axis -3"));
  CHECK_THROWS_WITH(InferOpShapes("topk", {{}}), Catch::Contains("input 'data'") && Catch::Contains("at least 1-d"));
  CHECK_THROWS_WITH(ParseAttrs("topk", {{"ret_typ", "values"}}),
                    Catch::Contains("attribute 'ret_typ'") && Catch::Contains("given 'values'"));
  CHECK_THROWS_WITH(ParseAttrs("topk", {{"dtype", "int8"}}),
                    Catch::Contains("attribute 'dtype'") && Catch::Contains("given int8"));
  CHECK_THROWS_WITH(InferTypeSlots("topk", {DType::kBool}),
                    Catch::Contains("input 'data'") && Catch::Contains("given bool"));
}

TEST_CASE("topk on random shapes and axes: sorted, stable, complete", "[sort_scan][topk]") {
  std::mt19937_64 rng(17);
  uint64_t seed = 1;
  for (int trial = 0; trial < 60; ++trial) {
    const size_t rank = std::uniform_int_distribution<size_t>(1, 4)(rng);
    const Shape shape = RandomShape(rng, rank, false);
    const int64_t axis = RandomAxis(rng, rank);
    const auto a = static_cast<size_t>(axis < 0 ? axis + static_cast<int64_t>(rank) : axis);
    const int64_t n = shape[a];
    const int64_t k = std::uniform_int_distribution<int64_t>(1, n)(rng);
    const bool ascend = trial % 2 == 1;
    const DType dtype = kNumericTypes[trial % kNumericTypes.size()];
    Tensor x = trial % 3 == 0 ? TiedValues(shape, dtype, seed++) : RandomOfDType(shape, dtype, seed++, -4, 4);
    if (IsFloat(dtype) && trial % 4 == 0) x.SetDouble(0, NAN);
    INFO(ShapeToString(shape) << " " << DTypeName(dtype) << " axis " << axis << " k " << k << " ascend " << ascend);
    const auto out = RunOp("topk", {x}, {{"axis", axis}, {"k", k}, {"ret_typ", "both"}, {"is_ascend", ascend}});
    const auto mask = RunOp("topk", {x}, {{"axis", axis}, {"k", k}, {"ret_typ", "mask"}, {"is_ascend", ascend}});
    Shape out_shape = shape;
    out_shape[a] = k;
    REQUIRE(out[0].shape() == out_shape);
    // Per row: the value at each index, in order, stable on ties (NaN largest), and
    // none left out before the last kept; the mask marks exactly the kept.
    const auto before = [&](double p, double q) {
      if (std::isnan(p) || std::isnan(q))
        return ascend ? !std::isnan(p) && std::isnan(q) : std::isnan(p) && !std::isnan(q);
      return ascend ? p < q : p > q;
    };
    int64_t kept = 0;
    for (int64_t i = 0; i < mask[0].size(); ++i) kept += mask[0].GetDouble(i) == 1 ? 1 : 0;
    CHECK(kept == NumElements(out_shape));
    op_util::ForEachIndex(out_shape, [&](int64_t flat, const std::vector<int64_t>& index) {
      if (index[a] != 0) return;  // once per row
      // The row's element j in data: the same outer and inner position as `index`.
      const auto data_at = [&](int64_t j) {
        std::vector<int64_t> at = index;
        at[a] = j;
        int64_t offset = 0;
        for (size_t d = 0; d < shape.size(); ++d) offset = offset * shape[d] + at[d];
        return offset;
      };
      std::vector<int64_t> chosen;
      for (int64_t s = 0; s < k; ++s) {
        const int64_t at = AlongAxis(out_shape, a, flat, s);
        const auto j = static_cast<int64_t>(out[1].GetDouble(at));
        REQUIRE(j >= 0);
        REQUIRE(j < n);
        const double value = x.GetDouble(data_at(j));
        const double got = out[0].GetDouble(at);
        CHECK(((std::isnan(value) && std::isnan(got)) || value == got));
        CHECK(mask[0].GetDouble(data_at(j)) == 1);
        if (!chosen.empty()) {
          const double p = x.GetDouble(data_at(chosen.back()));
          // In order; equal values (or two NaNs) by increasing index.
          const bool tie = !before(p, value) && !before(value, p);
          CHECK((before(p, value) || (tie && chosen.back() < j)));
        }
        chosen.push_back(j);
      }
      // Every element left out comes after the last kept (or ties it at a later index).
      const double last = x.GetDouble(data_at(chosen.back()));
      for (int64_t j = 0; j < n; ++j) {
        if (std::find(chosen.begin(), chosen.end(), j) != chosen.end()) continue;
        const double value = x.GetDouble(data_at(j));
        CHECK_FALSE(before(value, last));
        if (!before(last, value)) CHECK(j > chosen.back());
      }
    });
  }
}

TEST_CASE("topk lowering matches the reference bitwise", "[sort_scan][topk][lower]") {
  std::mt19937_64 rng(23);
  uint64_t seed = 500;
  const std::vector<std::string> kinds = {"value", "indices", "mask", "both"};
  const std::vector<std::string> index_types = {"float32", "int64", "int32", "float16", "uint8", "float64"};
  for (int trial = 0; trial < 48; ++trial) {
    const size_t rank = std::uniform_int_distribution<size_t>(1, 4)(rng);
    const Shape shape = RandomShape(rng, rank, true);
    const bool flat = trial % 7 == 3;
    const int64_t axis = RandomAxis(rng, rank);
    const auto a = static_cast<size_t>(axis < 0 ? axis + static_cast<int64_t>(rank) : axis);
    const int64_t n = flat ? NumElements(shape) : shape[a];
    // Mostly 1 <= k <= n; sometimes all (k < 1).
    const int64_t k = n == 0 || trial % 5 == 0 ? 0 : std::uniform_int_distribution<int64_t>(1, n)(rng);
    const DType dtype = kNumericTypes[trial % kNumericTypes.size()];
    Tensor x = trial % 2 == 0 ? TiedValues(shape, dtype, seed++) : RandomOfDType(shape, dtype, seed++, -4, 4);
    if (IsFloat(dtype) && x.size() > 2) {
      x.SetDouble(1, NAN);
      x.SetDouble(x.size() - 1, NAN);
      x.SetDouble(0, -INFINITY);
    }
    const AttrMap attrs = {{"axis", flat ? AttrArg(std::monostate{}) : AttrArg(axis)},
                           {"k", k},
                           {"ret_typ", kinds[trial % kinds.size()]},
                           {"is_ascend", trial % 3 == 1},
                           {"dtype", index_types[trial % index_types.size()]}};
    INFO(ShapeToString(shape) << " " << DTypeName(dtype) << (flat ? " flattened" : " axis " + std::to_string(axis))
                              << " k " << k << " " << kinds[trial % kinds.size()]);
    CheckAllAgree("topk", {x}, attrs, trial % 4 == 0);
  }
  // Large enough for a parallel loop over rows; then more slots than fit the stack
  // (scratch), through the JIT only (O(n * k) is slow in the interpreter).
  const Tensor wide = RandomTensor({64, 300}, 9);
  CHECK(LowerOpForInputs("topk", {wide}, {{"k", 5}}).parallel_extent == 64);
  CheckAllAgree("topk", {wide}, {{"k", 5}, {"ret_typ", "both"}});
  CheckAllAgree("topk", {TiedValues({300, 64}, DType::kInt32, 3)}, {{"axis", 0}, {"k", 7}, {"ret_typ", "both"}});
  const Tensor long_rows = TiedValues({2, 4200}, DType::kFloat32, 4);
  const AttrMap all = {{"k", 0}, {"ret_typ", "both"}, {"dtype", "int64"}};
  const auto compiled = RunJit("topk", {long_rows}, all);
  const auto expected = RunOp("topk", {long_rows}, all);
  CHECK(compiled[0].BitwiseEquals(expected[0]));
  CHECK(compiled[1].BitwiseEquals(expected[1]));
}

// --- _np_cumsum ---

TEST_CASE("_np_cumsum: numpy's values, axes and MXNet's dtypes", "[sort_scan][cumsum]") {
  const Tensor x = Values({2, 3}, {1, 2, 3, 4, 5, 6});
  KILN_CHECK_CLOSE(RunOp("_np_cumsum", {x})[0], Values({6}, {1, 3, 6, 10, 15, 21}), 0, 0);
  KILN_CHECK_CLOSE(RunOp("_np_cumsum", {x}, {{"axis", 0}})[0], Values({2, 3}, {1, 2, 3, 5, 7, 9}), 0, 0);
  KILN_CHECK_CLOSE(RunOp("_np_cumsum", {x}, {{"axis", 1}})[0], Values({2, 3}, {1, 3, 6, 4, 9, 15}), 0, 0);
  KILN_CHECK_CLOSE(RunOp("_np_cumsum", {x}, {{"axis", -1}})[0], Values({2, 3}, {1, 3, 6, 4, 9, 15}), 0, 0);
  KILN_CHECK_CLOSE(RunOp("_np_cumsum", {x}, {{"axis", -2}})[0], Values({2, 3}, {1, 2, 3, 5, 7, 9}), 0, 0);
  // dtype None keeps the input's (bool: int64); integers wrap in their type (MXNet:
  // int8 [100, 100, 100] -> [100, -56, 44], uint8 [200, 200] -> [200, 144]).
  for (const DType dtype : kNumericTypes) CHECK(InferTypeSlots("_np_cumsum", {dtype})[1] == dtype);
  CHECK(InferTypeSlots("_np_cumsum", {DType::kBool})[1] == DType::kInt64);
  CHECK(InferTypeSlots("_np_cumsum", {DType::kBool}, {{"dtype", "int8"}})[1] == DType::kInt8);
  CHECK(InferTypeSlots("_np_cumsum", {std::nullopt}, {{"dtype", "float16"}})[1] == DType::kFloat16);
  auto out = RunOp("_np_cumsum", {Values({3}, {100, 100, 100}, DType::kInt8)});
  KILN_CHECK_CLOSE(out[0], Values({3}, {100, -56, 44}, DType::kInt8), 0, 0);
  out = RunOp("_np_cumsum", {Values({2}, {200, 200}, DType::kUInt8)});
  CHECK(out[0].dtype() == DType::kUInt8);
  KILN_CHECK_CLOSE(out[0], Values({2}, {200, 144}, DType::kUInt8), 0, 0);
  out = RunOp("_np_cumsum", {Values({2, 3}, {1, 1, 1, 1, 0, 1}, DType::kBool)}, {{"axis", 0}});
  CHECK(out[0].dtype() == DType::kInt64);
  KILN_CHECK_CLOSE(out[0], Values({2, 3}, {1, 1, 1, 2, 1, 2}, DType::kInt64), 0, 0);
  // int32 wraps past 2^31 as MXNet's int32 arithmetic; int64 stays exact beyond 2^53.
  out = RunOp("_np_cumsum", {Values({2}, {2147483647, 1}, DType::kInt32)});
  KILN_CHECK_CLOSE(out[0], Values({2}, {2147483647, -2147483648.0}, DType::kInt32), 0, 0);
  Tensor big({2}, DType::kInt64);
  big.data_as<int64_t>()[0] = int64_t{1} << 60;
  big.data_as<int64_t>()[1] = 1;
  CHECK(CheckAllAgree("_np_cumsum", {big}, {})[0].data_as<int64_t>()[1] == (int64_t{1} << 60) + 1);
  // dtype converts each element first: floats truncate into integers, integers round
  // into float16.
  out = RunOp("_np_cumsum", {Values({4}, {1.7, -1.7, 2.5, -0.5})}, {{"dtype", "int32"}});
  KILN_CHECK_CLOSE(out[0], Values({4}, {1, 0, 2, 2}, DType::kInt32), 0, 0);
  out = RunOp("_np_cumsum", {Values({3}, {2049, 1, 1}, DType::kInt32)}, {{"dtype", "float16"}});
  CHECK(out[0].dtype() == DType::kFloat16);
  KILN_CHECK_CLOSE(out[0], Values({3}, {2048, 2048, 2048}), 0, 0);
}

TEST_CASE("_np_cumsum accumulates in the output's type, as numpy", "[sort_scan][cumsum]") {
  // float32 accumulates in float32 (numpy: 1e8 + 1 + 1 ... stays 1e8); float64 does not lose them.
  const std::vector<double> many = {1e8, 1, 1, 1, 1};
  KILN_CHECK_CLOSE(CheckAllAgree("_np_cumsum", {Values({5}, many)}, {})[0], Values({5}, {1e8, 1e8, 1e8, 1e8, 1e8}), 0,
                   0);
  KILN_CHECK_CLOSE(CheckAllAgree("_np_cumsum", {Values({5}, many, DType::kFloat64)}, {})[0],
                   Values({5}, {1e8, 1e8 + 1, 1e8 + 2, 1e8 + 3, 1e8 + 4}, DType::kFloat64), 0, 0);
  // float16 rounds every partial sum (MXNet 1.9.1 and numpy: 0.1 ten times).
  const auto half = CheckAllAgree("_np_cumsum", {Values({10}, std::vector<double>(10, 0.1), DType::kFloat16)}, {});
  CHECK(half[0].dtype() == DType::kFloat16);
  KILN_CHECK_CLOSE(half[0],
                   Values({10}, {0.0999755859375, 0.199951171875, 0.2998046875, 0.39990234375, 0.5, 0.60009765625,
                                 0.7001953125, 0.80029296875, 0.900390625, 1.0}),
                   0, 0);
  // float16 overflows to inf (60000 + 10000); NaN and inf propagate; a leading -0 stays.
  const auto overflow = RunOp("_np_cumsum", {Values({2}, {60000, 10000}, DType::kFloat16)});
  CHECK(overflow[0].GetDouble(1) == INFINITY);
  const auto special = CheckAllAgree("_np_cumsum", {Values({6}, {-0.0, 1, NAN, 2, INFINITY, -INFINITY})}, {});
  CHECK(std::signbit(special[0].GetDouble(0)));
  CHECK(special[0].GetDouble(1) == 1);
  for (int64_t i = 2; i < 6; ++i) CHECK(std::isnan(special[0].GetDouble(i)));
  const auto inf = RunOp("_np_cumsum", {Values({3}, {1, INFINITY, -INFINITY})});
  CHECK(inf[0].GetDouble(1) == INFINITY);
  CHECK(std::isnan(inf[0].GetDouble(2)));
}

TEST_CASE("_np_cumsum shapes, empty tensors and errors", "[sort_scan][cumsum]") {
  CHECK(InferOpShapes("_np_cumsum", {{2, 3, 4}})[0] == Shape{24});
  CHECK(InferOpShapes("_np_cumsum", {{2, 3, 4}}, {{"axis", -2}})[0] == Shape{2, 3, 4});
  CHECK(InferOpShapes("_np_cumsum", {{}})[0] == Shape{1});
  CHECK(InferOpShapes("_np_cumsum", {{2, 0}})[0] == Shape{0});
  CHECK(InferOpShapes("_np_cumsum", {{2, 0}}, {{"axis", 1}})[0] == Shape{2, 0});
  CheckAllAgree("_np_cumsum", {Tensor({2, 0}, DType::kFloat32)}, {{"axis", 1}});
  CheckAllAgree("_np_cumsum", {Tensor({0, 3}, DType::kInt32)}, {{"axis", 0}});
  CheckAllAgree("_np_cumsum", {Tensor({0, 3}, DType::kInt32)}, {{"axis", 1}});
  CheckAllAgree("_np_cumsum", {Tensor({2, 0}, DType::kFloat16)}, {});
  KILN_CHECK_CLOSE(CheckAllAgree("_np_cumsum", {Values({}, {2.5})}, {})[0], Values({1}, {2.5}), 0, 0);
  CHECK_THROWS_WITH(InferOpShapes("_np_cumsum", {{2, 3}}, {{"axis", 2}}),
                    Catch::Contains("attribute 'axis'") && Catch::Contains("axis 2") && Catch::Contains("2-d"));
  CHECK_THROWS_WITH(InferOpShapes("_np_cumsum", {{2, 3}}, {{"axis", -3}}),
                    Catch::Contains("attribute 'axis'") && Catch::Contains("axis -3"));
  CHECK_THROWS_WITH(InferOpShapes("_np_cumsum", {{}}, {{"axis", 0}}),
                    Catch::Contains("input 'a'") && Catch::Contains("at least 1-d") && Catch::Contains("given ()"));
  CHECK_THROWS_WITH(ParseAttrs("_np_cumsum", {{"dtype", "uint8"}}), Catch::Contains("attribute 'dtype'") &&
                                                                        Catch::Contains("or None") &&
                                                                        Catch::Contains("given uint8"));
  CHECK_THROWS_WITH(ParseAttrs("_np_cumsum", {{"dtype", "bool"}}), Catch::Contains("given bool"));
}

TEST_CASE("_np_cumsum on random shapes and axes: each sum from scratch", "[sort_scan][cumsum]") {
  std::mt19937_64 rng(29);
  uint64_t seed = 900;
  for (int trial = 0; trial < 60; ++trial) {
    const size_t rank = std::uniform_int_distribution<size_t>(1, 4)(rng);
    const Shape shape = RandomShape(rng, rank, true);
    const int64_t axis = RandomAxis(rng, rank);
    const auto a = static_cast<size_t>(axis < 0 ? axis + static_cast<int64_t>(rank) : axis);
    const DType dtype = trial % 4 == 3 ? DType::kBool : kNumericTypes[trial % kNumericTypes.size()];
    const Tensor x = RandomOfDType(shape, dtype, seed++, -4, 4);
    INFO(ShapeToString(shape) << " " << DTypeName(dtype) << " axis " << axis);
    const auto out = RunOp("_np_cumsum", {x}, {{"axis", axis}});
    REQUIRE(out[0].shape() == shape);
    // Element j of a row: the sum of its first j + 1 (integers exactly, wrapped to the
    // type; floats in double, within j roundings of the running sum, each at most the
    // unit roundoff of the sum of magnitudes).
    const double unit = dtype == DType::kFloat16 ? 0x1p-11 : dtype == DType::kFloat32 ? 0x1p-24 : 0x1p-53;
    op_util::ForEachIndex(shape, [&](int64_t flat, const std::vector<int64_t>& index) {
      uint64_t int_sum = 0;
      double sum = 0, magnitude = 0;
      for (int64_t j = 0; j <= index[a]; ++j) {
        const int64_t at = AlongAxis(shape, a, flat, j);
        if (IsFloat(dtype)) {
          sum += x.GetDouble(at);
          magnitude += std::fabs(x.GetDouble(at));
        } else {
          int_sum += static_cast<uint64_t>(op_util::LoadInt(x, at));
        }
      }
      if (IsFloat(dtype)) {
        CHECK(std::fabs(out[0].GetDouble(flat) - sum) <= 1.01 * static_cast<double>(index[a]) * unit * magnitude);
      } else {
        Tensor expected({1}, out[0].dtype());
        op_util::StoreInt(expected, 0, static_cast<int64_t>(int_sum));
        CHECK(op_util::LoadInt(out[0], flat) == op_util::LoadInt(expected, 0));
      }
    });
  }
}

TEST_CASE("_np_cumsum lowering matches the reference bitwise", "[sort_scan][cumsum][lower]") {
  std::mt19937_64 rng(31);
  uint64_t seed = 1200;
  const std::vector<std::string> out_types = {"None", "float16", "float32", "float64", "int32", "int64", "int8"};
  for (int trial = 0; trial < 56; ++trial) {
    const size_t rank = std::uniform_int_distribution<size_t>(1, 4)(rng);
    const Shape shape = RandomShape(rng, rank, true);
    const bool flat = trial % 6 == 5;
    const int64_t axis = RandomAxis(rng, rank);
    const DType dtype = trial % 8 == 7 ? DType::kBool : kNumericTypes[trial % kNumericTypes.size()];
    Tensor x = RandomOfDType(shape, dtype, seed++, -4, 4);
    if (IsFloat(dtype) && x.size() > 1) x.SetDouble(1, NAN);
    const std::string& out_type = out_types[(trial / 2) % out_types.size()];
    AttrMap attrs = {{"axis", flat ? AttrArg(std::monostate{}) : AttrArg(axis)}};
    if (out_type != "None") attrs.push_back({"dtype", out_type});
    INFO(ShapeToString(shape) << " " << DTypeName(dtype) << (flat ? " flattened" : " axis " + std::to_string(axis))
                              << " dtype " << out_type);
    CheckAllAgree("_np_cumsum", {x}, attrs, trial % 4 == 0);
  }
  // Parallel: over the outer positions (axis -1), over tiles of the inner ones (axis 0,
  // 600 columns in tiles of 256), and both.
  for (const auto& [shape, axis] :
       std::vector<std::pair<Shape, int64_t>>{{{64, 300}, -1}, {{40, 600}, 0}, {{6, 50, 600}, 1}, {{3, 7, 5}, 1}}) {
    INFO(ShapeToString(shape) << " axis " << axis);
    const Tensor x = RandomTensor(shape, seed++, -2, 2);
    const kir::Kernel kernel = CheckLoweredBitwise("_np_cumsum", {x}, {{"axis", axis}});
    if (NumElements(shape) >= 16384) CHECK(kernel.parallel_extent > 1);
    const auto compiled = RunJit("_np_cumsum", {x}, {{"axis", axis}});
    CHECK(compiled[0].BitwiseEquals(RunOp("_np_cumsum", {x}, {{"axis", axis}})[0]));
    const Tensor h = x.CastTo(DType::kFloat16);
    CHECK(RunJit("_np_cumsum", {h}, {{"axis", axis}})[0].BitwiseEquals(RunOp("_np_cumsum", {h}, {{"axis", axis}})[0]));
  }
}

// --- ONNX ---

namespace {

struct OnnxInput {
  std::string name;
  Tensor value;
  bool initializer = false;  // a constant of the model
};

// One node of `op_type` on `inputs`, with `outputs` outputs; attributes added by `attrs`.
onnx::ModelProto OnnxModel(int64_t opset, const std::string& op_type, const std::vector<OnnxInput>& inputs,
                           size_t outputs, const std::function<void(onnx::NodeProto&)>& attrs = nullptr) {
  OnnxModelBuilder b(opset);
  std::vector<std::string> input_names;
  for (const auto& input : inputs) {
    input_names.push_back(input.name);
    if (input.initializer) {
      b.Initializer(input.name, input.value);
    } else {
      b.Input(input.name, input.value.shape(), DTypeToOnnx(input.value.dtype()));
    }
  }
  std::vector<std::string> output_names;
  for (size_t i = 0; i < outputs; ++i) {
    output_names.push_back("y" + std::to_string(i));
    b.Output(output_names.back());
  }
  onnx::NodeProto& node = b.Node(op_type, input_names, output_names, "node");
  if (attrs) attrs(node);
  return b.model;
}

// Imports the model, runs it through the reference interpreter and the JIT (which must
// agree bitwise), and returns the outputs.
std::vector<Tensor> RunOnnx(const onnx::ModelProto& model, const std::vector<OnnxInput>& inputs) {
  OnnxImportOptions options;
  std::map<std::string, Tensor> feeds;
  for (const auto& input : inputs) {
    if (input.initializer) continue;
    options.input_shapes[input.name] = input.value.shape();
    feeds[input.name] = input.value;
  }
  const Graph graph = ImportOnnxModel(model, options);
  const std::vector<Tensor> interpreted = Interpret(graph, feeds);
  // Outputs folded to constants (k = 0) leave the compiled model without inputs.
  const auto executor = CompileJit(graph, CompileOptions{});
  std::map<std::string, Tensor> compiled_feeds;
  for (const auto& spec : executor->inputs()) compiled_feeds[spec.name] = feeds.at(spec.name);
  const std::vector<Tensor> compiled = executor->Run(compiled_feeds);
  REQUIRE(compiled.size() == interpreted.size());
  for (size_t i = 0; i < compiled.size(); ++i) CHECK(compiled[i].BitwiseEquals(interpreted[i]));
  return interpreted;
}

std::vector<Tensor> TopK(int64_t opset, const Tensor& x, int64_t k, std::optional<int64_t> axis = std::nullopt,
                         std::optional<int64_t> largest = std::nullopt) {
  std::vector<OnnxInput> inputs = {{"x", x}};
  if (opset >= 10) inputs.push_back({"k", Int64Vector({k}), true});
  const auto model = OnnxModel(opset, "TopK", inputs, 2, [&](onnx::NodeProto& node) {
    if (opset < 10) AddIntAttr(node, "k", k);
    if (axis) AddIntAttr(node, "axis", *axis);
    if (largest) AddIntAttr(node, "largest", *largest);
  });
  return RunOnnx(model, inputs);
}

Tensor CumSum(const Tensor& x, const Tensor& axis, int64_t exclusive, int64_t reverse, int64_t opset = 14) {
  const std::vector<OnnxInput> inputs = {{"x", x}, {"axis", axis, true}};
  const auto model = OnnxModel(opset, "CumSum", inputs, 1, [&](onnx::NodeProto& node) {
    if (exclusive) AddIntAttr(node, "exclusive", exclusive);
    if (reverse) AddIntAttr(node, "reverse", reverse);
  });
  return RunOnnx(model, inputs)[0];
}

}  // namespace

TEST_CASE("ONNX TopK: versions, largest, ties, NaN and k = 0", "[sort_scan][onnx]") {
  // ONNX's example: top 3 of arange(12).reshape(3, 4) along axis 1.
  const Tensor x = Arange({3, 4});
  for (const int64_t opset : {int64_t{9}, int64_t{10}, int64_t{11}, int64_t{17}, int64_t{24}}) {
    INFO("opset " << opset);
    const auto out = TopK(opset, x, 3);
    KILN_CHECK_CLOSE(out[0], Values({3, 3}, {3, 2, 1, 7, 6, 5, 11, 10, 9}), 0, 0);
    CHECK(out[1].dtype() == DType::kInt64);
    KILN_CHECK_CLOSE(out[1], Values({3, 3}, {3, 2, 1, 3, 2, 1, 3, 2, 1}, DType::kInt64), 0, 0);
  }
  auto out = TopK(11, x, 2, 0, 0);
  KILN_CHECK_CLOSE(out[0], Values({2, 4}, {0, 1, 2, 3, 4, 5, 6, 7}), 0, 0);
  KILN_CHECK_CLOSE(out[1], Values({2, 4}, {0, 0, 0, 0, 1, 1, 1, 1}, DType::kInt64), 0, 0);
  // Ties: the smaller index first, largest or smallest (ONNX's reference).
  const Tensor same = Values({6}, {2, 1, 2, 1, 2, 1}, DType::kInt64);
  out = TopK(11, same, 4);
  KILN_CHECK_CLOSE(out[1], Values({4}, {0, 2, 4, 1}, DType::kInt64), 0, 0);
  out = TopK(11, same, 4, -1, 0);
  KILN_CHECK_CLOSE(out[1], Values({4}, {1, 3, 5, 0}, DType::kInt64), 0, 0);
  // NaN: largest first, smallest last (numpy's lexsort, which ONNX's reference uses).
  const Tensor nan = Values({5}, {1, NAN, 3, NAN, -1}, DType::kFloat64);
  out = TopK(11, nan, 5);
  KILN_CHECK_CLOSE(out[1], Values({5}, {1, 3, 2, 0, 4}, DType::kInt64), 0, 0);
  out = TopK(11, nan, 5, 0, 0);
  KILN_CHECK_CLOSE(out[1], Values({5}, {4, 0, 2, 1, 3}, DType::kInt64), 0, 0);
  CHECK(out[0].dtype() == DType::kFloat64);
  // k = 0: empty outputs (kiln's topk would read k < 1 as everything).
  out = TopK(11, x, 0);
  CHECK(out[0].shape() == Shape{3, 0});
  CHECK(out[1].shape() == Shape{3, 0});
  CHECK(out[1].dtype() == DType::kInt64);
  // k = n over an axis of an int32 tensor.
  out = TopK(11, Values({2, 3}, {5, -2, 7, 0, 0, -9}, DType::kInt32), 3, -1, 0);
  KILN_CHECK_CLOSE(out[0], Values({2, 3}, {-2, 5, 7, -9, 0, 0}, DType::kInt32), 0, 0);
  KILN_CHECK_CLOSE(out[1], Values({2, 3}, {1, 0, 2, 2, 0, 1}, DType::kInt64), 0, 0);
  // Errors name the input and give expected and given values.
  CHECK_THROWS_WITH(TopK(11, x, 5), Catch::Contains("'K'") && Catch::Contains("[0, 4]") && Catch::Contains("given 5"));
  CHECK_THROWS_WITH(TopK(11, x, -1), Catch::Contains("'K'") && Catch::Contains("given -1"));
  CHECK_THROWS_WITH(TopK(11, x, 1, 2), Catch::Contains("axis 2"));
}

TEST_CASE("ONNX CumSum: exclusive and reverse, exact integers", "[sort_scan][onnx]") {
  const Tensor x = Values({5}, {1, 2, 3, 4, 5}, DType::kFloat64);
  const Tensor axis0 = Int64Scalar(0);
  // ONNX's examples.
  KILN_CHECK_CLOSE(CumSum(x, axis0, 0, 0), Values({5}, {1, 3, 6, 10, 15}, DType::kFloat64), 0, 0);
  KILN_CHECK_CLOSE(CumSum(x, axis0, 1, 0), Values({5}, {0, 1, 3, 6, 10}, DType::kFloat64), 0, 0);
  KILN_CHECK_CLOSE(CumSum(x, axis0, 0, 1), Values({5}, {15, 14, 12, 9, 5}, DType::kFloat64), 0, 0);
  KILN_CHECK_CLOSE(CumSum(x, axis0, 1, 1), Values({5}, {14, 12, 9, 5, 0}, DType::kFloat64), 0, 0);
  const Tensor m = Values({2, 3}, {1, 2, 3, 4, 5, 6});
  KILN_CHECK_CLOSE(CumSum(m, Int64Scalar(0), 0, 0), Values({2, 3}, {1, 2, 3, 5, 7, 9}), 0, 0);
  KILN_CHECK_CLOSE(CumSum(m, Values({}, {-1}, DType::kInt32), 0, 0, 11), Values({2, 3}, {1, 3, 6, 4, 9, 15}), 0, 0);
  KILN_CHECK_CLOSE(CumSum(m, Int64Vector({1}), 1, 1), Values({2, 3}, {5, 3, 0, 11, 6, 0}), 0, 0);
  KILN_CHECK_CLOSE(CumSum(m, Int64Scalar(-2), 1, 0), Values({2, 3}, {0, 0, 0, 1, 2, 3}), 0, 0);
  // Integers exactly: int64 beyond 2^53, int32 wrapping as numpy's int32 sum.
  Tensor big({3}, DType::kInt64);
  big.data_as<int64_t>()[0] = int64_t{1} << 60;
  big.data_as<int64_t>()[1] = 1;
  big.data_as<int64_t>()[2] = 2;
  const Tensor sums = CumSum(big, axis0, 1, 1);
  CHECK(sums.dtype() == DType::kInt64);
  CHECK(sums.data_as<int64_t>()[0] == 3);
  CHECK(sums.data_as<int64_t>()[1] == 2);
  CHECK(sums.data_as<int64_t>()[2] == 0);
  const Tensor wrapped = CumSum(Values({3}, {2147483647, 1, 5}, DType::kInt32), axis0, 0, 0);
  KILN_CHECK_CLOSE(wrapped, Values({3}, {2147483647, -2147483648.0, -2147483643.0}, DType::kInt32), 0, 0);
  // Exclusive keeps the first sum exactly (a -0 stays -0); a single element gives 0.
  const Tensor first = CumSum(Values({2}, {-0.0, 1}), axis0, 1, 0);
  CHECK(first.GetDouble(0) == 0);
  CHECK(std::signbit(first.GetDouble(1)));
  KILN_CHECK_CLOSE(CumSum(Values({1}, {7}), axis0, 1, 1), Values({1}, {0}), 0, 0);
  // Empty along the axis and elsewhere.
  CHECK(CumSum(Tensor({2, 0}, DType::kFloat32), Int64Scalar(1), 1, 1).shape() == Shape{2, 0});
  CHECK(CumSum(Tensor({0, 3}, DType::kFloat32), Int64Scalar(1), 1, 0).shape() == Shape{0, 3});
  // The axis must be one constant in range.
  CHECK_THROWS_WITH(CumSum(m, Int64Vector({0, 1}), 0, 0), Catch::Contains("'axis'") && Catch::Contains("given 2"));
  CHECK_THROWS_WITH(CumSum(m, Int64Scalar(2), 0, 0), Catch::Contains("axis 2"));
  const std::vector<OnnxInput> variable = {{"x", m}, {"axis", Int64Scalar(0)}};
  CHECK_THROWS_WITH(RunOnnx(OnnxModel(14, "CumSum", variable, 1), variable), Catch::Contains("must be a constant"));
}
