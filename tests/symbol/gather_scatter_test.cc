// gather_nd, take_along_axis, scatter_elements and scatter_nd_update (ops/gather_scatter.cc)
// and the ONNX converters onto them (symbol/onnx/onnx_convert_index.cc): hand-checked
// values (ONNX's own examples among them), the reference against identities between
// the operators, the lowering (kir interpreter, and LLVM through the JIT) against the
// reference, and shape and dtype errors.
#include <catch2/catch.hpp>
#include <cmath>
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

const std::vector<DType> kDataTypes = {DType::kFloat32, DType::kFloat64, DType::kFloat16, DType::kInt32,
                                       DType::kInt64,   DType::kInt8,    DType::kUInt8,   DType::kBool};
const std::vector<DType> kIndexTypes = {DType::kInt32, DType::kInt64};
const std::vector<std::string> kReductions = {"none", "add", "mul", "max", "min"};

// Small values, so that products of duplicates stay finite and exact in every dtype.
Tensor SmallValues(const Shape& shape, DType dtype, uint64_t seed) {
  if (dtype == DType::kBool) return RandomTensor(shape, seed, 0, 2, dtype);
  if (dtype == DType::kUInt8) return RandomTensor(shape, seed, 0, 4, dtype);
  return RandomTensor(shape, seed, -3, 4, dtype);
}

// Indices for an axis of size n: mostly in [-n, n), some beyond either end.
Tensor RandomIndices(const Shape& shape, DType dtype, int64_t n, uint64_t seed, bool out_of_range = true) {
  const double span = static_cast<double>(n);
  return out_of_range ? RandomTensor(shape, seed, -span - 2, span + 2, dtype)
                      : RandomTensor(shape, seed, -span, span, dtype);
}

// A random shape of rank 1..4 with dims 1..4 (0 where `allow_empty` and the dice say so).
Shape RandomShape(std::mt19937_64& rng, size_t rank, bool allow_empty) {
  Shape shape(rank);
  for (auto& d : shape) d = std::uniform_int_distribution<int64_t>(allow_empty ? 0 : 1, 4)(rng);
  if (allow_empty) {
    for (auto& d : shape) {
      if (d == 0 && std::uniform_int_distribution<int>(0, 2)(rng) != 0) d = 1;  // keep most cases nonempty
    }
  }
  return shape;
}

// The lowering (kir interpreter) gives bitwise the reference's outputs: every operator
// here copies elements or applies one operation per update, which both compute alike.
void CheckLowered(const std::string& op, const std::vector<Tensor>& inputs, const AttrMap& attrs) {
  CheckLoweredBitwise(op, inputs, attrs);
}

// The operator compiled by LLVM (JIT) on `inputs` (variables), compared with the reference.
std::vector<Tensor> RunJit(const std::string& op, const std::vector<Tensor>& inputs, const AttrMap& attrs) {
  const std::vector<std::string> names = {"data", "indices", "updates"};
  std::vector<Symbol> vars;
  CompileOptions options;
  std::map<std::string, Tensor> feeds;
  for (size_t i = 0; i < inputs.size(); ++i) {
    vars.push_back(Symbol::Variable(names[i], inputs[i].shape(), inputs[i].dtype()));
    options.input_shapes[names[i]] = inputs[i].shape();
    options.input_types[names[i]] = inputs[i].dtype();
    feeds[names[i]] = inputs[i];
  }
  const Graph graph = Symbol::Create(op, vars, attrs, "op").ToGraph();
  return CompileJit(graph, options)->Run(feeds);
}

// --- ONNX models, one node each ---

onnx::ModelProto OnnxModel(int64_t opset, const std::string& op_type, const std::vector<Tensor>& inputs,
                           const std::vector<std::string>& names) {
  OnnxModelBuilder b(opset);
  for (size_t i = 0; i < inputs.size(); ++i) b.Input(names[i], inputs[i].shape(), DTypeToOnnx(inputs[i].dtype()));
  b.Node(op_type, names, {"y"}, "node");
  b.Output("y");
  return b.model;
}

// Imports the model, runs it through the reference interpreter and the JIT (which must
// agree bitwise), and returns the output.
Tensor RunOnnx(const onnx::ModelProto& model, const std::vector<Tensor>& inputs,
               const std::vector<std::string>& names) {
  OnnxImportOptions options;
  std::map<std::string, Tensor> feeds;
  for (size_t i = 0; i < inputs.size(); ++i) {
    options.input_shapes[names[i]] = inputs[i].shape();
    feeds[names[i]] = inputs[i];
  }
  const Graph graph = ImportOnnxModel(model, options);
  const Tensor interpreted = Interpret(graph, feeds)[0];
  const Tensor compiled = CompileJit(graph, CompileOptions{})->Run(feeds)[0];
  CHECK(compiled.BitwiseEquals(interpreted));
  return interpreted;
}

const std::vector<std::string> kDIU = {"data", "indices", "updates"};

}  // namespace

// A random case of the along-axis operators: data of rank 1 to max_rank (empty dims
// allowed or not), an axis (negative half the time), and indices of data's rank, at most
// data's size off the axis and along_low to along_high long on it (0 where data is
// empty there).
struct AlongAxisCase {
  Shape data;
  Shape indices;
  int64_t axis = 0;
  size_t a = 0;  // the axis, non-negative
};

AlongAxisCase RandomAlongAxis(std::mt19937_64& rng, size_t max_rank, bool allow_empty, int64_t along_low,
                              int64_t along_high) {
  AlongAxisCase c;
  const size_t rank = std::uniform_int_distribution<size_t>(1, max_rank)(rng);
  c.data = RandomShape(rng, rank, allow_empty);
  c.axis = std::uniform_int_distribution<int64_t>(-static_cast<int64_t>(rank), rank - 1)(rng);
  c.a = static_cast<size_t>(c.axis < 0 ? c.axis + static_cast<int64_t>(rank) : c.axis);
  c.indices = c.data;
  for (size_t d = 0; d < rank; ++d) {
    c.indices[d] = d == c.a ? std::uniform_int_distribution<int64_t>(c.data[c.a] == 0 ? 0 : along_low, along_high)(rng)
                            : std::uniform_int_distribution<int64_t>(allow_empty ? 0 : 1, c.data[d])(rng);
  }
  if (c.data[c.a] == 0) c.indices[c.a] = 0;
  return c;
}

TEST_CASE("the gather and scatter operators are registered and complete", "[gather_scatter]") {
  for (const char* name : {"gather_nd", "take_along_axis", "scatter_elements", "scatter_nd_update"}) {
    INFO(name);
    const OpDef* op = OpRegistry::Global().Find(name);
    REQUIRE(op != nullptr);
    CHECK(op->has_reference());
    CHECK(op->has_lowering());
  }
  for (const char* name : {"take_along_axis", "scatter_elements", "scatter_nd_update"}) {
    INFO(name);
    CHECK_THAT(OpRegistry::Global().Get(name).description(), Catch::Contains("kiln operator for ONNX"));
  }
  CHECK(OpRegistry::Global().Get("scatter_elements").InputNames(ParseAttrs("scatter_elements", {})) == kDIU);
  CHECK(OpRegistry::Global().Get("gather_nd").InputNames(ParseAttrs("gather_nd", {})) ==
        std::vector<std::string>{"data", "indices"});
}

// --- gather_nd ---

TEST_CASE("gather_nd: MXNet's examples, negative and clipped indices", "[gather_scatter][gather_nd]") {
  // MXNet's documentation.
  KILN_CHECK_CLOSE(RunOp("gather_nd", {Values({2, 2}, {0, 1, 2, 3}), Values({2, 3}, {1, 1, 0, 0, 1, 0})})[0],
                   Values({3}, {2, 3, 0}), 0, 0);
  KILN_CHECK_CLOSE(RunOp("gather_nd", {Values({2, 2, 2}, {1, 2, 3, 4, 5, 6, 7, 8}), Values({2, 2}, {0, 1, 1, 0})})[0],
                   Values({2, 2}, {3, 4, 5, 6}), 0, 0);
  const Tensor x = Arange({3, 4});
  // MXNet: -1 is the last row, -4 the first column; a 2-d Y.
  const auto rows = RunOp("gather_nd", {x, Values({1, 2, 2}, {-1, 0, 1, -3}, DType::kInt64)});
  KILN_CHECK_CLOSE(rows[0], Values({2, 2, 4}, {8, 9, 10, 11, 0, 1, 2, 3, 4, 5, 6, 7, 0, 1, 2, 3}), 0, 0);
  // Out of range (MXNet raises): 5 and 9 clip to the last row and column, -7 + 3 and
  // -9 + 4 to the first.
  KILN_CHECK_CLOSE(RunOp("gather_nd", {x, Values({2, 2}, {5, -7, 9, -9}, DType::kInt32)})[0], Values({2}, {11, 0}), 0,
                   0);
  // MXNet: float indices move by n when negative, then truncate (-0.5 -> 2.5 -> 2).
  KILN_CHECK_CLOSE(RunOp("gather_nd", {x, Values({2, 2}, {-0.5, 1.7, -2.5, 0.2})})[0], Values({2}, {9, 4}), 0, 0);
  // NaN reads 0; infinities clip.
  KILN_CHECK_CLOSE(RunOp("gather_nd", {x, Values({2, 3}, {NAN, INFINITY, -INFINITY, 1, 1, 1})})[0],
                   Values({3}, {1, 9, 1}), 0, 0);
  // int64 data beyond 2^53 is copied exactly.
  Tensor big({2}, DType::kInt64);
  big.data_as<int64_t>()[0] = (int64_t{1} << 60) + 1;
  big.data_as<int64_t>()[1] = -3;
  const auto exact = RunOp("gather_nd", {big, Values({1, 3}, {0, -1, 0}, DType::kInt64)});
  CHECK(exact[0].data_as<int64_t>()[0] == (int64_t{1} << 60) + 1);
  CHECK(exact[0].data_as<int64_t>()[1] == -3);
}

TEST_CASE("gather_nd shapes and errors", "[gather_scatter][gather_nd]") {
  CHECK(InferOpShapes("gather_nd", {{2, 3, 4}, {2, 5}})[0] == Shape{5, 4});
  CHECK(InferOpShapes("gather_nd", {{2, 3, 4}, {3, 2, 2}})[0] == Shape{2, 2});
  CHECK(InferOpShapes("gather_nd", {{2, 3, 4}, {1, 0}})[0] == Shape{0, 3, 4});
  // Empty data is fine where no index reads it.
  CHECK(InferOpShapes("gather_nd", {{0, 3}, {1, 0}})[0] == Shape{0, 3});
  // As MXNet, nothing follows from data alone.
  const auto partial = InferShapeSlots("gather_nd", {Shape{2, 3}, std::nullopt});
  CHECK(!partial[1]);
  CHECK(!partial[2]);
  CHECK_THROWS_WITH(InferOpShapes("gather_nd", {{3, 4}, {2}}), Catch::Contains("input 'indices'") &&
                                                                   Catch::Contains("at least 2-d") &&
                                                                   Catch::Contains("given (2)"));
  CHECK_THROWS_WITH(InferOpShapes("gather_nd", {{3, 4}, {3, 2}}),
                    Catch::Contains("input 'indices'") && Catch::Contains("[1, 2]") && Catch::Contains("given (3,2)"));
  CHECK_THROWS_WITH(InferOpShapes("gather_nd", {{3, 4}, {0, 2}}), Catch::Contains("[1, 2]"));
  CHECK_THROWS_WITH(InferOpShapes("gather_nd", {{3, 0}, {2, 1}}), Catch::Contains("input 'data'") &&
                                                                      Catch::Contains("nonzero size along axis 1") &&
                                                                      Catch::Contains("given (3,0)"));
  // The output has data's dtype whatever the indices'.
  CHECK(InferTypeSlots("gather_nd", {DType::kInt8, DType::kFloat32})[2] == DType::kInt8);
  CHECK(InferTypeSlots("gather_nd", {DType::kFloat16, DType::kUInt8})[2] == DType::kFloat16);
}

TEST_CASE("gather_nd lowering matches the reference", "[gather_scatter][gather_nd][lower]") {
  std::mt19937_64 rng(7);
  uint64_t seed = 1;
  for (int trial = 0; trial < 60; ++trial) {
    const size_t rank = std::uniform_int_distribution<size_t>(1, 4)(rng);
    Shape data = RandomShape(rng, rank, true);
    const auto m = std::uniform_int_distribution<int64_t>(1, static_cast<int64_t>(rank))(rng);
    Shape indices = {m};
    for (size_t d = 0, y = std::uniform_int_distribution<size_t>(1, 2)(rng); d < y; ++d) {
      indices.push_back(std::uniform_int_distribution<int64_t>(0, 3)(rng));
    }
    for (int64_t j = 0; j < m; ++j) {
      if (data[j] == 0) data[j] = 2;  // indexed axes need elements
    }
    const DType dtype = kDataTypes[trial % kDataTypes.size()];
    for (const DType index_type : {DType::kInt32, DType::kInt64, DType::kFloat32, DType::kUInt8}) {
      INFO("data " << ShapeToString(data) << " " << DTypeName(dtype) << ", indices " << ShapeToString(indices) << " "
                   << DTypeName(index_type));
      // One range for every coordinate: the smallest indexed axis's, widened.
      int64_t n = data[0];
      for (int64_t j = 0; j < m; ++j) n = std::min(n, data[j]);
      Tensor idx = index_type == DType::kUInt8 ? RandomTensor(indices, seed++, 0, 6, index_type)
                                               : RandomIndices(indices, index_type, n + 1, seed++);
      CheckLowered("gather_nd", {RandomOfDType(data, dtype, seed++, -4, 4), idx}, {});
    }
  }
  // NaN reads 0, infinities clip, in every float index dtype.
  for (const DType index_type : {DType::kFloat32, DType::kFloat64, DType::kFloat16}) {
    CheckLowered("gather_nd",
                 {Arange({3, 4}), Values({2, 4}, {NAN, INFINITY, -INFINITY, -0.5, 1, 1, 1, 3.9}).CastTo(index_type)},
                 {});
  }
  // Large enough for a parallel loop: rows of 64 from a (300, 64) table.
  const Tensor table = RandomTensor({300, 64}, 3);
  const Tensor rows = RandomIndices({1, 400}, DType::kInt64, 300, 4);
  const kir::Kernel kernel = CheckLoweredBitwise("gather_nd", {table, rows}, {});
  CHECK(kernel.parallel_extent == 400);
  KILN_CHECK_CLOSE(RunJit("gather_nd", {table, rows}, {})[0], RunOp("gather_nd", {table, rows})[0], 0, 0);
}

// --- take_along_axis ---

TEST_CASE("take_along_axis: ONNX GatherElements' examples", "[gather_scatter][take_along_axis]") {
  // ONNX: axis 1.
  KILN_CHECK_CLOSE(RunOp("take_along_axis", {Values({2, 2}, {1, 2, 3, 4}), Values({2, 2}, {0, 0, 1, 0}, DType::kInt64)},
                         {{"axis", 1}})[0],
                   Values({2, 2}, {1, 1, 4, 3}), 0, 0);
  // ONNX: axis 0, fewer rows than data; then negative indices.
  const Tensor data = Values({3, 3}, {1, 2, 3, 4, 5, 6, 7, 8, 9});
  KILN_CHECK_CLOSE(RunOp("take_along_axis", {data, Values({2, 3}, {1, 2, 0, 2, 0, 0}, DType::kInt32)})[0],
                   Values({2, 3}, {4, 8, 3, 7, 2, 3}), 0, 0);
  KILN_CHECK_CLOSE(RunOp("take_along_axis", {data, Values({2, 3}, {-1, -2, 0, -2, 0, 0}, DType::kInt64)})[0],
                   Values({2, 3}, {7, 5, 3, 4, 2, 3}), 0, 0);
  // Out of range clips: 5 -> 2, -9 -> -6 -> 0; axis -1; indices narrower than data.
  KILN_CHECK_CLOSE(RunOp("take_along_axis", {data, Values({2, 2}, {5, -9, 1, -1}, DType::kInt64)}, {{"axis", -1}})[0],
                   Values({2, 2}, {3, 1, 5, 6}), 0, 0);
  // More indices along the axis than data has: repeats are fine.
  KILN_CHECK_CLOSE(RunOp("take_along_axis", {Values({1, 2}, {7, 8}), Values({1, 4}, {1, 1, 0, -1}, DType::kInt32)},
                         {{"axis", 1}})[0],
                   Values({1, 4}, {8, 8, 7, 8}), 0, 0);
}

TEST_CASE("take_along_axis equals gather_nd with full coordinates", "[gather_scatter][take_along_axis]") {
  std::mt19937_64 rng(11);
  uint64_t seed = 100;
  for (int trial = 0; trial < 40; ++trial) {
    const AlongAxisCase c = RandomAlongAxis(rng, 4, false, 1, 5);
    const Shape& data = c.data;
    const Shape& indices = c.indices;
    const int64_t axis = c.axis;
    const size_t a = c.a;
    const size_t rank = data.size();
    INFO("data " << ShapeToString(data) << " indices " << ShapeToString(indices) << " axis " << axis);
    const Tensor x = RandomTensor(data, seed++);
    const Tensor idx = RandomIndices(indices, DType::kInt64, data[a], seed++, /*out_of_range=*/false);
    // Coordinates (rank, indices...): the position, with idx along the axis.
    const int64_t count = NumElements(indices);
    Shape coords_shape = {static_cast<int64_t>(rank)};
    coords_shape.insert(coords_shape.end(), indices.begin(), indices.end());
    Tensor coords(coords_shape, DType::kInt64);
    op_util::ForEachIndex(indices, [&](int64_t k, const std::vector<int64_t>& index) {
      for (size_t d = 0; d < rank; ++d) {
        coords.data_as<int64_t>()[static_cast<int64_t>(d) * count + k] = d == a ? idx.data_as<int64_t>()[k] : index[d];
      }
    });
    KILN_CHECK_CLOSE(RunOp("take_along_axis", {x, idx}, {{"axis", axis}})[0],
                     RunOp("gather_nd", {x, coords})[0].Reshaped(indices), 0, 0);
  }
}

TEST_CASE("take_along_axis shapes, dtypes and errors", "[gather_scatter][take_along_axis]") {
  CHECK(InferOpShapes("take_along_axis", {{3, 4}, {5, 2}}, {{"axis", 0}})[0] == Shape{5, 2});
  CHECK(InferOpShapes("take_along_axis", {{3, 4}, {0, 4}})[0] == Shape{0, 4});
  CHECK(InferOpShapes("take_along_axis", {{3, 0}, {3, 0}}, {{"axis", 1}})[0] == Shape{3, 0});
  CHECK_THROWS_WITH(InferOpShapes("take_along_axis", {{2, 3}, {2}}), Catch::Contains("input 'indices'") &&
                                                                         Catch::Contains("2-d like data (2,3)") &&
                                                                         Catch::Contains("given (2)"));
  CHECK_THROWS_WITH(
      InferOpShapes("take_along_axis", {{2, 3}, {3, 3}}, {{"axis", 1}}),
      Catch::Contains("input 'indices'") && Catch::Contains("dim 0 is 3 > 2") && Catch::Contains("given (3,3)"));
  CHECK_THROWS_WITH(InferOpShapes("take_along_axis", {{2, 3}, {2, 3}}, {{"axis", 2}}),
                    Catch::Contains("attribute 'axis'") && Catch::Contains("out of range"));
  CHECK_THROWS_WITH(InferOpShapes("take_along_axis", {{}, {}}),
                    Catch::Contains("input 'data'") && Catch::Contains("at least 1-d"));
  CHECK_THROWS_WITH(InferOpShapes("take_along_axis", {{2, 0}, {2, 1}}, {{"axis", 1}}),
                    Catch::Contains("input 'data'") && Catch::Contains("nonzero size along axis 1"));
  // The output has data's dtype; indices are int32 or int64 (int64 where unknown).
  auto types = InferTypeSlots("take_along_axis", {DType::kFloat16, DType::kInt32});
  CHECK(types[2] == DType::kFloat16);
  types = InferTypeSlots("take_along_axis", {DType::kInt8, std::nullopt});
  CHECK(types[1] == DType::kInt64);
  CHECK(types[2] == DType::kInt8);
  CHECK_THROWS_WITH(
      InferTypeSlots("take_along_axis", {DType::kFloat32, DType::kFloat32}),
      Catch::Contains("input 'indices'") && Catch::Contains("int32 or int64") && Catch::Contains("given float32"));
}

TEST_CASE("take_along_axis lowering matches the reference", "[gather_scatter][take_along_axis][lower]") {
  std::mt19937_64 rng(5);
  uint64_t seed = 200;
  for (int trial = 0; trial < 60; ++trial) {
    const AlongAxisCase c = RandomAlongAxis(rng, 4, true, 1, 5);
    const Shape& data = c.data;
    const Shape& indices = c.indices;
    const int64_t axis = c.axis;
    const size_t a = c.a;
    const size_t rank = data.size();
    const DType dtype = kDataTypes[trial % kDataTypes.size()];
    for (const DType index_type : kIndexTypes) {
      INFO("data " << ShapeToString(data) << " " << DTypeName(dtype) << ", indices " << ShapeToString(indices) << " "
                   << DTypeName(index_type) << ", axis " << axis);
      CheckLowered("take_along_axis",
                   {RandomOfDType(data, dtype, seed++, -4, 4), RandomIndices(indices, index_type, data[a], seed++)},
                   {{"axis", axis}});
    }
  }
  // Large enough for a parallel loop.
  const Tensor x = RandomTensor({64, 300}, 9);
  const Tensor idx = RandomIndices({64, 400}, DType::kInt32, 300, 10);
  CHECK(CheckLoweredBitwise("take_along_axis", {x, idx}, {{"axis", 1}}).parallel_extent > 1);
  KILN_CHECK_CLOSE(RunJit("take_along_axis", {x, idx}, {{"axis", 1}})[0],
                   RunOp("take_along_axis", {x, idx}, {{"axis", 1}})[0], 0, 0);
}

// --- scatter_elements ---

TEST_CASE("scatter_elements: ONNX's examples, duplicates and skipped indices", "[gather_scatter][scatter_elements]") {
  // ONNX ScatterElements, axis 0.
  const Tensor updates = Values({2, 3}, {1.0, 1.1, 1.2, 2.0, 2.1, 2.2});
  KILN_CHECK_CLOSE(RunOp("scatter_elements", {Tensor({3, 3}, DType::kFloat32),
                                              Values({2, 3}, {1, 0, 2, 0, 2, 1}, DType::kInt64), updates})[0],
                   Values({3, 3}, {2.0, 1.1, 0, 1.0, 0, 2.2, 0, 2.1, 1.2}), 0, 0);
  // ONNX, axis 1; then with negative indices (-3 is 2).
  const Tensor row = Values({1, 5}, {1, 2, 3, 4, 5});
  const Tensor two = Values({1, 2}, {1.1, 2.1});
  const auto scatter = [&](std::vector<double> idx, const std::string& reduction) {
    return RunOp("scatter_elements", {row, Values({1, 2}, idx, DType::kInt64), two},
                 {{"axis", 1}, {"reduction", reduction}})[0];
  };
  KILN_CHECK_CLOSE(scatter({1, 3}, "none"), Values({1, 5}, {1, 1.1, 3, 2.1, 5}), 0, 0);
  KILN_CHECK_CLOSE(scatter({1, -3}, "none"), Values({1, 5}, {1, 1.1, 2.1, 4, 5}), 0, 0);
  // Duplicates: without reduction the last wins; reductions accumulate in order.
  KILN_CHECK_CLOSE(scatter({1, 1}, "none"), Values({1, 5}, {1, 2.1, 3, 4, 5}), 0, 0);
  KILN_CHECK_CLOSE(scatter({1, 1}, "add"), Values({1, 5}, {1, 5.2, 3, 4, 5}), 1e-6, 0);
  KILN_CHECK_CLOSE(scatter({1, -4}, "mul"), Values({1, 5}, {1, 2 * 1.1 * 2.1, 3, 4, 5}), 1e-6, 0);
  KILN_CHECK_CLOSE(scatter({1, 3}, "max"), Values({1, 5}, {1, 2, 3, 4, 5}), 0, 0);
  KILN_CHECK_CLOSE(scatter({1, 3}, "min"), Values({1, 5}, {1, 1.1, 3, 2.1, 5}), 0, 0);
  // Out of range (5, -6): the update is skipped.
  KILN_CHECK_CLOSE(scatter({5, -6}, "none"), row, 0, 0);
  KILN_CHECK_CLOSE(scatter({-6, 4}, "add"), Values({1, 5}, {1, 2, 3, 4, 7.1}), 1e-6, 0);
  // Integers wrap as kernels compute them: int8 100 + 100 = -56.
  const auto wrapped =
      RunOp("scatter_elements",
            {Values({2}, {100, 1}, DType::kInt8), Values({1}, {0}, DType::kInt32), Values({1}, {100}, DType::kInt8)},
            {{"reduction", "add"}});
  KILN_CHECK_CLOSE(wrapped[0], Values({2}, {-56, 1}, DType::kInt8), 0, 0);
  // max and min propagate NaN, either way round.
  const auto nan = RunOp("scatter_elements",
                         {Values({3}, {NAN, 1, 2}), Values({3}, {0, 1, 2}, DType::kInt64), Values({3}, {5, NAN, 1})},
                         {{"reduction", "max"}});
  CHECK(std::isnan(nan[0].GetDouble(0)));
  CHECK(std::isnan(nan[0].GetDouble(1)));
  CHECK(nan[0].GetDouble(2) == 2);
}

TEST_CASE("scatter_elements equals scatter_nd_update with full coordinates", "[gather_scatter][scatter_elements]") {
  std::mt19937_64 rng(13);
  uint64_t seed = 300;
  for (int trial = 0; trial < 40; ++trial) {
    const AlongAxisCase c = RandomAlongAxis(rng, 3, false, 1, 6);
    const Shape& data = c.data;
    const Shape& indices = c.indices;
    const int64_t axis = c.axis;
    const size_t a = c.a;
    const size_t rank = data.size();
    const std::string& reduction = kReductions[trial % kReductions.size()];
    INFO("data " << ShapeToString(data) << " indices " << ShapeToString(indices) << " axis " << axis << " "
                 << reduction);
    const Tensor x = SmallValues(data, DType::kFloat64, seed++);
    const Tensor idx = RandomIndices(indices, DType::kInt64, data[a], seed++);
    const Tensor upd = SmallValues(indices, DType::kFloat64, seed++);
    const int64_t count = NumElements(indices);
    Tensor coords({static_cast<int64_t>(rank), count}, DType::kInt64);
    op_util::ForEachIndex(indices, [&](int64_t k, const std::vector<int64_t>& index) {
      for (size_t d = 0; d < rank; ++d) {
        coords.data_as<int64_t>()[static_cast<int64_t>(d) * count + k] = d == a ? idx.data_as<int64_t>()[k] : index[d];
      }
    });
    KILN_CHECK_CLOSE(RunOp("scatter_elements", {x, idx, upd}, {{"axis", axis}, {"reduction", reduction}})[0],
                     RunOp("scatter_nd_update", {x, coords, upd.Reshaped({count})}, {{"reduction", reduction}})[0], 0,
                     0);
  }
}

TEST_CASE("scatter_elements shapes, dtypes and errors", "[gather_scatter][scatter_elements]") {
  CHECK(InferOpShapes("scatter_elements", {{3, 4}, {5, 2}, {5, 2}})[0] == Shape{3, 4});
  // The output follows data alone; updates and indices share a shape.
  auto shapes = InferShapeSlots("scatter_elements", {Shape{3, 4}, Shape{2, 2}, std::nullopt});
  CHECK(*shapes[2] == Shape{2, 2});
  CHECK(*shapes[3] == Shape{3, 4});
  shapes = InferShapeSlots("scatter_elements", {Shape{3, 4}, std::nullopt, Shape{1, 4}});
  CHECK(*shapes[1] == Shape{1, 4});
  CHECK_THROWS_WITH(InferOpShapes("scatter_elements", {{3, 4}, {2, 2}, {2, 3}}),
                    Catch::Contains("input 'updates'") && Catch::Contains("(2,2)") && Catch::Contains("given (2,3)"));
  CHECK_THROWS_WITH(InferOpShapes("scatter_elements", {{3, 4}, {2, 5}, {2, 5}}),
                    Catch::Contains("input 'indices'") && Catch::Contains("dim 1 is 5 > 4"));
  CHECK_THROWS_WITH(InferOpShapes("scatter_elements", {{3, 4}, {2, 2, 1}, {2, 2, 1}}),
                    Catch::Contains("input 'indices'") && Catch::Contains("2-d like data (3,4)"));
  CHECK_THROWS_WITH(InferOpShapes("scatter_elements", {{3, 4}, {2, 2}, {2, 2}}, {{"axis", -3}}),
                    Catch::Contains("attribute 'axis'") && Catch::Contains("out of range"));
  CHECK_THROWS_WITH(ParseAttrs("scatter_elements", {{"reduction", "mean"}}),
                    Catch::Contains("'reduction'") && Catch::Contains("none, add, mul, max, min"));
  auto types = InferTypeSlots("scatter_elements", {DType::kInt32, DType::kInt64, std::nullopt});
  CHECK(types[2] == DType::kInt32);
  CHECK(types[3] == DType::kInt32);
  types = InferTypeSlots("scatter_elements", {std::nullopt, DType::kInt32, DType::kFloat64});
  CHECK(types[0] == DType::kFloat64);
  CHECK(types[3] == DType::kFloat64);
  CHECK_THROWS_WITH(
      InferTypeSlots("scatter_elements", {DType::kFloat32, DType::kInt64, DType::kFloat16}),
      Catch::Contains("input 'updates'") && Catch::Contains("float32") && Catch::Contains("given float16"));
  CHECK_THROWS_WITH(
      InferTypeSlots("scatter_elements", {DType::kFloat32, DType::kUInt8, DType::kFloat32}),
      Catch::Contains("input 'indices'") && Catch::Contains("int32 or int64") && Catch::Contains("given uint8"));
}

TEST_CASE("scatter_elements lowering matches the reference", "[gather_scatter][scatter_elements][lower]") {
  std::mt19937_64 rng(17);
  uint64_t seed = 400;
  for (int trial = 0; trial < 80; ++trial) {
    const AlongAxisCase c = RandomAlongAxis(rng, 4, true, 0, 6);
    const Shape& data = c.data;
    const Shape& indices = c.indices;
    const int64_t axis = c.axis;
    const size_t a = c.a;
    const size_t rank = data.size();
    const DType dtype = kDataTypes[trial % kDataTypes.size()];
    const std::string& reduction = kReductions[(trial / kDataTypes.size() + trial) % kReductions.size()];
    for (const DType index_type : kIndexTypes) {
      INFO("data " << ShapeToString(data) << " " << DTypeName(dtype) << ", indices " << ShapeToString(indices) << " "
                   << DTypeName(index_type) << ", axis " << axis << ", " << reduction);
      CheckLowered("scatter_elements",
                   {RandomOfDType(data, dtype, seed++, -4, 4), RandomIndices(indices, index_type, data[a], seed++),
                    RandomOfDType(indices, dtype, seed++, -4, 4)},
                   {{"axis", axis}, {"reduction", reduction}});
    }
  }
  // Every reduction and dtype, with many duplicates, interpreted and compiled.
  for (const DType dtype : kDataTypes) {
    for (const std::string& reduction : kReductions) {
      INFO(DTypeName(dtype) << " " << reduction);
      const std::vector<Tensor> inputs = {SmallValues({4, 3}, dtype, seed++),
                                          RandomIndices({9, 3}, DType::kInt64, 4, seed++),
                                          SmallValues({9, 3}, dtype, seed++)};
      const AttrMap attrs = {{"axis", 0}, {"reduction", reduction}};
      CheckLowered("scatter_elements", inputs, attrs);
      CHECK(RunJit("scatter_elements", inputs, attrs)[0].BitwiseEquals(RunOp("scatter_elements", inputs, attrs)[0]));
    }
  }
}

// --- scatter_nd_update ---

TEST_CASE("scatter_nd_update: ONNX ScatterND's examples in gather_nd's layout", "[gather_scatter][scatter_nd]") {
  // ONNX: indices [[4], [3], [1], [7]] are one row of tuples (1, 4) here.
  KILN_CHECK_CLOSE(
      RunOp("scatter_nd_update", {Values({8}, {1, 2, 3, 4, 5, 6, 7, 8}), Values({1, 4}, {4, 3, 1, 7}, DType::kInt64),
                                  Values({4}, {9, 10, 11, 12})})[0],
      Values({8}, {1, 11, 3, 10, 9, 6, 7, 12}), 0, 0);
  // Slices: rows of (3, 2); -2 is row 1; a tuple out of range (3) is skipped.
  const Tensor x = Arange({3, 2});
  const Tensor idx = Values({1, 3}, {-2, 3, 0}, DType::kInt32);
  const Tensor upd = Values({3, 2}, {10, 20, 30, 40, 50, 60});
  KILN_CHECK_CLOSE(RunOp("scatter_nd_update", {x, idx, upd})[0], Values({3, 2}, {50, 60, 10, 20, 4, 5}), 0, 0);
  KILN_CHECK_CLOSE(RunOp("scatter_nd_update", {x, idx, upd}, {{"reduction", "add"}})[0],
                   Values({3, 2}, {50, 61, 12, 23, 4, 5}), 0, 0);
  // Duplicate tuples accumulate in order; a tuple with one bad coordinate is skipped whole.
  const Tensor pairs = Values({2, 4}, {1, 1, 2, 0, 0, 0, -1, 2}, DType::kInt64);
  const Tensor values = Values({4}, {2, 3, 5, 7});
  KILN_CHECK_CLOSE(RunOp("scatter_nd_update", {x, pairs, values}, {{"reduction", "mul"}})[0],
                   Values({3, 2}, {0, 1, 12, 3, 4, 25}), 0, 0);
  KILN_CHECK_CLOSE(RunOp("scatter_nd_update", {x, pairs, values})[0], Values({3, 2}, {0, 1, 3, 3, 4, 5}), 0, 0);
  KILN_CHECK_CLOSE(RunOp("scatter_nd_update", {x, pairs, values}, {{"reduction", "min"}})[0],
                   Values({3, 2}, {0, 1, 2, 3, 4, 5}), 0, 0);
  // 1-d indices: one tuple, one slice.
  KILN_CHECK_CLOSE(RunOp("scatter_nd_update", {x, Values({1}, {2}, DType::kInt64), Values({2}, {-1, -2})})[0],
                   Values({3, 2}, {0, 1, 2, 3, -1, -2}), 0, 0);
}

TEST_CASE("scatter_nd_update writes back what gather_nd reads", "[gather_scatter][scatter_nd]") {
  std::mt19937_64 rng(19);
  uint64_t seed = 500;
  for (int trial = 0; trial < 30; ++trial) {
    const size_t rank = std::uniform_int_distribution<size_t>(1, 4)(rng);
    const Shape data = RandomShape(rng, rank, false);
    const auto m = std::uniform_int_distribution<int64_t>(1, static_cast<int64_t>(rank))(rng);
    const Shape indices = {m, std::uniform_int_distribution<int64_t>(0, 4)(rng)};
    int64_t n = data[0];
    for (int64_t j = 0; j < m; ++j) n = std::min(n, data[j]);
    INFO("data " << ShapeToString(data) << " indices " << ShapeToString(indices));
    const Tensor x = RandomTensor(data, seed++);
    const Tensor idx = RandomIndices(indices, DType::kInt64, n, seed++, /*out_of_range=*/false);
    const Tensor gathered = RunOp("gather_nd", {x, idx})[0];
    KILN_CHECK_CLOSE(RunOp("scatter_nd_update", {x, idx, gathered})[0], x, 0, 0);
    // Doubling what was gathered: each distinct element doubles once under mul with 2s.
    Tensor twos(gathered.shape(), DType::kFloat32);
    for (int64_t i = 0; i < twos.size(); ++i) twos.SetDouble(i, 2);
    const Tensor doubled = RunOp("scatter_nd_update", {x, idx, twos}, {{"reduction", "mul"}})[0];
    const Tensor again = RunOp("gather_nd", {doubled, idx})[0];
    for (int64_t i = 0; i < again.size(); ++i) {
      const double ratio = again.GetDouble(i) / gathered.GetDouble(i);
      CHECK((ratio == 2 || ratio == 4 || ratio == 8 || ratio == 16 || gathered.GetDouble(i) == 0));
    }
  }
}

TEST_CASE("scatter_nd_update shapes and errors", "[gather_scatter][scatter_nd]") {
  auto shapes = InferShapeSlots("scatter_nd_update", {Shape{4, 5, 6}, Shape{2, 3, 7}, std::nullopt});
  CHECK(*shapes[2] == Shape{3, 7, 6});
  CHECK(*shapes[3] == Shape{4, 5, 6});
  CHECK(InferShapeSlots("scatter_nd_update", {Shape{4, 5}, Shape{2}, std::nullopt})[2] == Shape{});
  CHECK(InferShapeSlots("scatter_nd_update", {Shape{4, 5}, std::nullopt, std::nullopt})[3] == Shape{4, 5});
  CHECK_THROWS_WITH(InferOpShapes("scatter_nd_update", {{4, 5}, {1, 3}, {3, 4}}),
                    Catch::Contains("input 'updates'") && Catch::Contains("(3,5)") && Catch::Contains("given (3,4)"));
  CHECK_THROWS_WITH(InferOpShapes("scatter_nd_update", {{4, 5}, {3, 3}, {3}}),
                    Catch::Contains("input 'indices'") && Catch::Contains("[1, 2]") && Catch::Contains("given (3,3)"));
  CHECK_THROWS_WITH(InferOpShapes("scatter_nd_update", {{4, 5}, {}, {4, 5}}),
                    Catch::Contains("input 'indices'") && Catch::Contains("at least 1-d"));
  CHECK_THROWS_WITH(InferTypeSlots("scatter_nd_update", {DType::kFloat32, DType::kFloat32, DType::kFloat32}),
                    Catch::Contains("input 'indices'") && Catch::Contains("given float32"));
}

TEST_CASE("scatter_nd_update lowering matches the reference", "[gather_scatter][scatter_nd][lower]") {
  std::mt19937_64 rng(23);
  uint64_t seed = 600;
  for (int trial = 0; trial < 80; ++trial) {
    const size_t rank = std::uniform_int_distribution<size_t>(1, 4)(rng);
    Shape data = RandomShape(rng, rank, true);
    const auto m = std::uniform_int_distribution<int64_t>(1, static_cast<int64_t>(rank))(rng);
    Shape indices = {m};
    for (size_t d = 0, y = std::uniform_int_distribution<size_t>(0, 2)(rng); d < y; ++d) {
      indices.push_back(std::uniform_int_distribution<int64_t>(0, 4)(rng));
    }
    for (int64_t j = 0; j < m; ++j) {
      if (data[j] == 0) data[j] = 3;
    }
    int64_t n = data[0];
    for (int64_t j = 0; j < m; ++j) n = std::min(n, data[j]);
    Shape updates(indices.begin() + 1, indices.end());
    updates.insert(updates.end(), data.begin() + m, data.end());
    const DType dtype = kDataTypes[trial % kDataTypes.size()];
    const std::string& reduction = kReductions[(trial / kDataTypes.size() + trial) % kReductions.size()];
    for (const DType index_type : kIndexTypes) {
      INFO("data " << ShapeToString(data) << " " << DTypeName(dtype) << ", indices " << ShapeToString(indices) << " "
                   << DTypeName(index_type) << ", " << reduction);
      CheckLowered("scatter_nd_update",
                   {RandomOfDType(data, dtype, seed++, -4, 4), RandomIndices(indices, index_type, n, seed++),
                    RandomOfDType(updates, dtype, seed++, -4, 4)},
                   {{"reduction", reduction}});
    }
  }
  // Duplicate rows under every reduction, interpreted and compiled.
  for (const DType dtype : kDataTypes) {
    for (const std::string& reduction : kReductions) {
      INFO(DTypeName(dtype) << " " << reduction);
      const std::vector<Tensor> inputs = {SmallValues({3, 37}, dtype, seed++),
                                          RandomIndices({1, 8}, DType::kInt32, 3, seed++),
                                          SmallValues({8, 37}, dtype, seed++)};
      const AttrMap attrs = {{"reduction", reduction}};
      CheckLowered("scatter_nd_update", inputs, attrs);
      CHECK(RunJit("scatter_nd_update", inputs, attrs)[0].BitwiseEquals(RunOp("scatter_nd_update", inputs, attrs)[0]));
    }
  }
}

TEST_CASE("empty tensors", "[gather_scatter]") {
  const Tensor x = Arange({3, 4});
  CHECK(RunOp("gather_nd", {x, Tensor({2, 0}, DType::kInt64)})[0].shape() == Shape{0});
  CheckLowered("gather_nd", {x, Tensor({1, 0, 2}, DType::kInt64)}, {});
  CheckLowered("gather_nd", {Tensor({2, 0}, DType::kFloat32), Tensor({1, 3}, DType::kInt64)}, {});
  CHECK(RunOp("take_along_axis", {x, Tensor({0, 4}, DType::kInt32)})[0].shape() == Shape{0, 4});
  CheckLowered("take_along_axis", {x, Tensor({3, 0}, DType::kInt32)}, {{"axis", 0}});
  for (const char* reduction : {"none", "add"}) {
    KILN_CHECK_CLOSE(RunOp("scatter_elements", {x, Tensor({0, 4}, DType::kInt64), Tensor({0, 4}, DType::kFloat32)},
                           {{"reduction", reduction}})[0],
                     x, 0, 0);
    CheckLowered("scatter_elements", {x, Tensor({3, 0}, DType::kInt64), Tensor({3, 0}, DType::kFloat32)},
                 {{"axis", 1}, {"reduction", reduction}});
    CheckLowered("scatter_elements",
                 {Tensor({0, 4}, DType::kFloat32), Tensor({0, 2}, DType::kInt64), Tensor({0, 2}, DType::kFloat32)},
                 {{"reduction", reduction}});
    CheckLowered("scatter_nd_update", {x, Tensor({1, 0}, DType::kInt64), Tensor({0, 4}, DType::kFloat32)},
                 {{"reduction", reduction}});
    CheckLowered("scatter_nd_update",
                 {Tensor({3, 0}, DType::kFloat32), Tensor({1, 2}, DType::kInt64), Tensor({2, 0}, DType::kFloat32)},
                 {{"reduction", reduction}});
  }
}

TEST_CASE("the operators compile inside graphs with elementwise neighbours", "[gather_scatter][graph]") {
  // relu -> gather_nd -> exp, take_along_axis -> negative, and a scatter whose data and
  // updates are computed: fusion and memory planning around them, against the interpreter.
  const Symbol x = Symbol::Variable("x", Shape{4, 5}, DType::kFloat32);
  const Symbol i = Symbol::Variable("i", Shape{2, 3}, DType::kInt64);
  const Symbol j = Symbol::Variable("j", Shape{4, 5}, DType::kInt32);
  const Symbol relu = Symbol::Create("relu", {x});
  const Symbol gathered = Symbol::Create("exp", {Symbol::Create("gather_nd", {relu, i})});
  const Symbol along = Symbol::Create("negative", {Symbol::Create("take_along_axis", {relu, j}, {{"axis", 1}})});
  const Symbol scattered = Symbol::Create(
      "scatter_elements", {Symbol::Create("abs", {x}), j, Symbol::Create("sigmoid", {x})}, {{"reduction", "add"}});
  const Symbol sliced = Symbol::Create("scatter_nd_update", {relu, i, gathered}, {{"reduction", "max"}});
  const Graph graph = Symbol::Group({gathered, along, scattered, sliced}).ToGraph();
  const std::map<std::string, Tensor> feeds = {{"x", RandomTensor({4, 5}, 1, -2, 2)},
                                               {"i", RandomIndices({2, 3}, DType::kInt64, 4, 2)},
                                               {"j", RandomIndices({4, 5}, DType::kInt32, 5, 3)}};
  CompileOptions options;
  for (const auto& [name, value] : feeds) {
    options.input_shapes[name] = value.shape();
    options.input_types[name] = value.dtype();
  }
  const auto compiled = CompileJit(graph, options)->Run(feeds);
  const auto interpreted = Interpret(graph, feeds);
  REQUIRE(compiled.size() == 4);
  for (size_t k = 0; k < compiled.size(); ++k) {
    INFO("output " << k);
    KILN_CHECK_CLOSE(compiled[k], interpreted[k], 1e-6, 1e-6);
  }
}

// --- ONNX converters ---

TEST_CASE("ONNX GatherND: tuples on the last axis, one tuple, batch_dims", "[gather_scatter][onnx]") {
  const Tensor data = Arange({2, 3, 4});
  const std::vector<std::string> names = {"data", "indices"};
  const auto run = [&](const Tensor& indices, int64_t batch_dims = -1) {
    onnx::ModelProto model = OnnxModel(13, "GatherND", {data, indices}, names);
    if (batch_dims >= 0) AddIntAttr(*model.mutable_graph()->mutable_node(0), "batch_dims", batch_dims);
    return RunOnnx(model, {data, indices}, names);
  };
  // Tuples of 2 into (2, 3, 4): rows of the last axis.
  KILN_CHECK_CLOSE(run(Values({2, 2}, {1, -1, 0, 1}, DType::kInt64)), Values({2, 4}, {20, 21, 22, 23, 4, 5, 6, 7}), 0,
                   0);
  // A single tuple (M): data's remaining axes; M = rank gives a scalar.
  Tensor last({3, 4}, DType::kFloat32);
  for (int64_t i = 0; i < last.size(); ++i) last.SetDouble(i, static_cast<double>(12 + i));
  KILN_CHECK_CLOSE(run(Values({1}, {-1}, DType::kInt64)), last, 0, 0);
  KILN_CHECK_CLOSE(run(Values({3}, {1, 2, 3}, DType::kInt64)), Values({}, {23}), 0, 0);
  // batch_dims 1: per batch, tuples of 1 into data[b]; batch_dims 2: elements of data[b0][b1].
  KILN_CHECK_CLOSE(run(Values({2, 2, 1}, {2, 0, -1, 1}, DType::kInt64), 1),
                   Values({2, 2, 4}, {8, 9, 10, 11, 0, 1, 2, 3, 20, 21, 22, 23, 16, 17, 18, 19}), 0, 0);
  KILN_CHECK_CLOSE(run(Values({2, 3, 1}, {3, 0, -1, 1, 2, -4}, DType::kInt64), 2),
                   Values({2, 3}, {3, 4, 11, 13, 18, 20}), 0, 0);
  // Errors name the attribute or input, with expected and given values.
  CHECK_THROWS_WITH(run(Values({2, 3, 1}, {0, 0, 0, 0, 0, 0}, DType::kInt64), 3),
                    Catch::Contains("attribute 'batch_dims'") && Catch::Contains("< 3") && Catch::Contains("given 3"));
  CHECK_THROWS_WITH(run(Values({1, 4}, {0, 0, 0, 0}, DType::kInt64)),
                    Catch::Contains("input 'indices'") && Catch::Contains("M = 4") && Catch::Contains("[1, 3]"));
  CHECK_THROWS_WITH(run(Values({3, 1}, {0, 0, 0}, DType::kInt64), 1),
                    Catch::Contains("batch_dims") && Catch::Contains("must agree"));
}

TEST_CASE("ONNX ScatterND: tuples on the last axis, reductions, one tuple", "[gather_scatter][onnx]") {
  const Tensor data = Arange({3, 2});
  const auto run = [&](const Tensor& indices, const Tensor& updates, const std::string& reduction = "") {
    onnx::ModelProto model = OnnxModel(18, "ScatterND", {data, indices, updates}, kDIU);
    if (!reduction.empty()) AddStringAttr(*model.mutable_graph()->mutable_node(0), "reduction", reduction);
    return RunOnnx(model, {data, indices, updates}, kDIU);
  };
  // Rows -1 and 0, added; the same tuple twice accumulates.
  KILN_CHECK_CLOSE(run(Values({2, 1}, {-1, 0}, DType::kInt64), Values({2, 2}, {10, 20, 30, 40}), "add"),
                   Values({3, 2}, {30, 41, 2, 3, 14, 25}), 0, 0);
  KILN_CHECK_CLOSE(run(Values({2, 2}, {1, 1, 1, 1}, DType::kInt64), Values({2}, {5, 7}), "max"),
                   Values({3, 2}, {0, 1, 2, 7, 4, 5}), 0, 0);
  // One tuple addressing an element: a 0-d update.
  KILN_CHECK_CLOSE(run(Values({2}, {2, 1}, DType::kInt64), Values({}, {9})), Values({3, 2}, {0, 1, 2, 3, 4, 9}), 0, 0);
  CHECK_THROWS_WITH(
      run(Values({2, 1}, {0, 1}, DType::kInt64), Values({2, 3}, {0, 0, 0, 0, 0, 0})),
      Catch::Contains("input 'updates'") && Catch::Contains("expected shape (2,2)") && Catch::Contains("given (2,3)"));
}

TEST_CASE("ONNX GatherElements, ScatterElements and Scatter", "[gather_scatter][onnx]") {
  const Tensor data = Values({2, 3}, {1, 2, 3, 4, 5, 6});
  const std::vector<std::string> names = {"data", "indices"};
  Tensor indices = Values({2, 2}, {2, -3, 1, 0}, DType::kInt32);
  onnx::ModelProto gather = OnnxModel(13, "GatherElements", {data, indices}, names);
  AddIntAttr(*gather.mutable_graph()->mutable_node(0), "axis", -1);
  KILN_CHECK_CLOSE(RunOnnx(gather, {data, indices}, names), Values({2, 2}, {3, 1, 5, 4}), 0, 0);

  indices = Values({1, 3}, {1, 0, -1}, DType::kInt64);
  const Tensor updates = Values({1, 3}, {7, 8, 9});
  // ScatterElements-18 with max; Scatter-10, without reduction, along axis 0.
  onnx::ModelProto scatter = OnnxModel(18, "ScatterElements", {data, indices, updates}, kDIU);
  AddStringAttr(*scatter.mutable_graph()->mutable_node(0), "reduction", "max");
  KILN_CHECK_CLOSE(RunOnnx(scatter, {data, indices, updates}, kDIU), Values({2, 3}, {1, 8, 3, 7, 5, 9}), 0, 0);
  const onnx::ModelProto old = OnnxModel(10, "Scatter", {data, indices, updates}, kDIU);
  KILN_CHECK_CLOSE(RunOnnx(old, {data, indices, updates}, kDIU), Values({2, 3}, {1, 8, 3, 7, 5, 9}), 0, 0);
  indices = Values({1, 3}, {1, 1, 1}, DType::kInt64);
  KILN_CHECK_CLOSE(RunOnnx(old, {data, indices, updates}, kDIU), Values({2, 3}, {1, 2, 3, 7, 8, 9}), 0, 0);
}
