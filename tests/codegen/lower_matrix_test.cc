// Lowerings of the matrix products (symbol/ops/matrix.cc) run by the kir interpreter,
// with the naive sgemm of TestRuntimeApi, against the reference.
//
// Tolerances: float32 products go through sgemm (float32 inputs, the test routine sums in
// double, then the bias is added in float32): rtol 1e-4, atol 1e-5. Other dtypes sum in
// float64 in the reference's order and convert as it stores (integers saturate), so
// they are exact.
#include <catch2/catch.hpp>
#include <functional>
#include <string>
#include <vector>

#include "codegen/kir/kir.h"
#include "runtime/kernel_abi.h"
#include "tests/lower_test_util.h"
#include "tests/op_test_util.h"

using namespace kiln;
using namespace kiln::testing;

namespace {

// Every routine call in the kernel.
std::vector<const kir::StmtNode*> Calls(const kir::Kernel& kernel) {
  std::vector<const kir::StmtNode*> calls;
  const std::function<void(const kir::Stmt&)> walk = [&](const kir::Stmt& s) {
    if (!s) return;
    if (s->kind == kir::StmtKind::kCall) calls.push_back(s.get());
    for (const auto& child : s->body) walk(child);
    walk(s->otherwise);
  };
  walk(kernel.body);
  return calls;
}

// RandomOfDType, with int32 and int64 in smaller ranges.
Tensor RandomOf(const Shape& shape, DType dtype, uint64_t seed) {
  if (dtype == DType::kInt32) return RandomTensor(shape, seed, -1000, 1000, dtype);
  if (dtype == DType::kInt64) return RandomTensor(shape, seed, -100000, 100000, dtype);
  return RandomOfDType(shape, dtype, seed);
}

// Runs both, compares, and returns the kernel for structural checks.
kir::Kernel Check(const std::string& op, const std::vector<Tensor>& inputs, const AttrMap& attrs) {
  const Tensor expected = RunOp(op, inputs, attrs)[0];
  const Tensor actual = RunLowered(op, inputs, attrs)[0];
  REQUIRE(actual.dtype() == expected.dtype());
  if (expected.dtype() == DType::kFloat32) {
    KILN_CHECK_CLOSE(actual, expected, 1e-4, 1e-5);
  } else {
    KILN_CHECK_CLOSE(actual, expected, 0, 0);
  }
  const kir::Kernel kernel = LowerOpForInputs(op, inputs, attrs);
  const bool uses_sgemm = !Calls(kernel).empty();
  // float32 products with something to sum call sgemm; other dtypes never do.
  CHECK(uses_sgemm ==
        (expected.dtype() == DType::kFloat32 && inputs[0].size() > 0 && expected.size() > 0 && inputs[1].size() > 0));
  return kernel;
}

struct DotCase {
  Shape lhs;
  Shape rhs;
  bool ta;
  bool tb;
};

const std::vector<DotCase> kDotCases = {
    {{3, 4}, {4, 5}, false, false},
    {{4, 3}, {4, 5}, true, false},
    {{3, 4}, {5, 4}, false, true},
    {{4, 3}, {5, 4}, true, true},
    {{7}, {7}, false, false},
    {{7}, {7, 3}, false, false},
    {{7}, {3, 7}, false, true},
    {{7}, {7, 3}, true, false},
    {{2, 7}, {7}, false, false},
    {{7, 2}, {7}, true, false},
    {{2, 3, 4}, {4, 5, 2}, false, false},
    {{4, 2, 3}, {5, 2, 4}, true, true},
    {{1, 1}, {1, 1}, false, false},
    {{13, 1}, {1, 11}, false, false},
};

}  // namespace

TEST_CASE("every matrix operator has a lowering", "[lower][matrix]") {
  for (const char* name : {"dot", "batch_dot", "FullyConnected"}) {
    INFO(name);
    const OpDef* op = OpRegistry::Global().Find(name);
    REQUIRE(op != nullptr);
    CHECK(op->has_lowering());
  }
}

TEST_CASE("float32 dot calls sgemm with the runtime's argument order", "[lower][matrix]") {
  const kir::Kernel kernel =
      LowerOpForInputs("dot", {RandomTensor({3, 4}, 1), RandomTensor({5, 4}, 2)}, {{"transpose_b", true}});
  const auto calls = Calls(kernel);
  REQUIRE(calls.size() == 1);
  const kir::StmtNode& call = *calls[0];
  CHECK(call.routine == kRoutineSgemm);
  REQUIRE(call.args.size() == 13);
  // (m, n, k, alpha, A, lda, transA, B, ldb, transB, beta, C, ldc)
  const std::vector<int> pointers = {4, 7, 11};
  for (int a = 0; a < 13; ++a) {
    INFO("argument " << a);
    const bool is_pointer = a == 4 || a == 7 || a == 11;
    REQUIRE(static_cast<bool>(call.args[a].buffer) == is_pointer);
    if (is_pointer) continue;
    const kir::Expr& e = call.args[a].scalar;
    if (a == 3 || a == 10) {
      CHECK(e.type() == kir::ScalarType::kFloat32);
    } else if (a == 6 || a == 9) {
      CHECK(e->kind == kir::ExprKind::kIntImm);
      CHECK(e.type() == kir::ScalarType::kInt32);
    } else {
      CHECK(e.type() == kir::ScalarType::kInt64);
    }
  }
  CHECK(call.args[4].buffer->name == "lhs");
  CHECK(call.args[7].buffer->name == "rhs");
  CHECK(call.args[11].buffer->name == "output");
  CHECK(call.args[6].scalar->int_value == 0);
  CHECK(call.args[9].scalar->int_value == 1);
  CHECK(call.args[5].scalar->int_value == 4);   // lda
  CHECK(call.args[8].scalar->int_value == 4);   // ldb: rhs (5, 4) read transposed
  CHECK(call.args[12].scalar->int_value == 5);  // ldc
}

TEST_CASE("float32 dot matches the reference for vectors, matrices, N-d operands and transposes", "[lower][matrix]") {
  uint64_t seed = 10;
  for (const DotCase& c : kDotCases) {
    INFO("lhs " << ShapeToString(c.lhs) << " rhs " << ShapeToString(c.rhs) << " ta " << c.ta << " tb " << c.tb);
    Check("dot", {RandomTensor(c.lhs, seed++), RandomTensor(c.rhs, seed++)},
          {{"transpose_a", c.ta}, {"transpose_b", c.tb}});
  }
}

TEST_CASE("large float32 dots split into parallel panels of columns or rows", "[lower][matrix]") {
  uint64_t seed = 50;
  struct Case {
    Shape lhs, rhs;
    bool ta, tb;
    int64_t tasks;
  };
  // 40x200x300 = 2.4M multiply-adds want 18 tasks: 13 panels of 16 columns (the last 8
  // wide); 300x40x200 splits its rows instead, 10 panels of 32 (the last 12); one
  // 16x16x16 product is a single call.
  for (const Case& c : {Case{{40, 300}, {300, 200}, false, false, 13}, Case{{300, 40}, {200, 300}, true, true, 13},
                        Case{{300, 200}, {200, 40}, false, false, 10}, Case{{200, 300}, {40, 200}, true, true, 10},
                        Case{{16, 16}, {16, 16}, false, false, 1}}) {
    INFO("lhs " << ShapeToString(c.lhs) << " rhs " << ShapeToString(c.rhs));
    const kir::Kernel kernel = Check("dot", {RandomTensor(c.lhs, seed++), RandomTensor(c.rhs, seed++)},
                                     {{"transpose_a", c.ta}, {"transpose_b", c.tb}});
    CHECK(kernel.parallel_extent == c.tasks);
    if (c.tasks > 1) CHECK(kernel.body->loop_kind == kir::LoopKind::kParallel);
  }
}

TEST_CASE("dot in other dtypes is exact, integers saturating as the reference stores them", "[lower][matrix]") {
  uint64_t seed = 100;
  for (const DType dtype :
       {DType::kFloat64, DType::kFloat16, DType::kInt8, DType::kUInt8, DType::kInt32, DType::kInt64, DType::kBool}) {
    for (const DotCase& c : kDotCases) {
      INFO(DTypeName(dtype) << " lhs " << ShapeToString(c.lhs) << " rhs " << ShapeToString(c.rhs));
      Check("dot", {RandomOf(c.lhs, dtype, seed++), RandomOf(c.rhs, dtype, seed++)},
            {{"transpose_a", c.ta}, {"transpose_b", c.tb}});
    }
  }
}

TEST_CASE("dot with an empty contraction gives zeros, an empty output nothing", "[lower][matrix]") {
  const Tensor zeros = RunLowered("dot", {RandomTensor({3, 0}, 1), RandomTensor({0, 4}, 2)})[0];
  CHECK(zeros.shape() == Shape{3, 4});
  KILN_CHECK_CLOSE(zeros, Tensor::FromDoubles({3, 4}, std::vector<double>(12, 0.0)), 0, 0);
  Check("dot", {RandomTensor({0, 4}, 3), RandomTensor({4, 5}, 4)}, {});
}

TEST_CASE("batch_dot matches the reference: one task per batch item, panels when few", "[lower][matrix]") {
  uint64_t seed = 200;
  struct Case {
    Shape lhs, rhs;
    bool ta, tb;
  };
  const std::vector<Case> cases = {
      {{3, 2, 4}, {3, 4, 5}, false, false},       {{3, 4, 2}, {3, 4, 5}, true, false},
      {{3, 2, 4}, {3, 5, 4}, false, true},        {{3, 4, 2}, {3, 5, 4}, true, true},
      {{2, 3, 5, 1}, {2, 3, 1, 7}, false, false}, {{1, 9, 6}, {1, 6, 11}, false, false},
  };
  for (const DType dtype : {DType::kFloat32, DType::kFloat64, DType::kFloat16, DType::kInt32, DType::kInt8}) {
    for (const Case& c : cases) {
      INFO(DTypeName(dtype) << " lhs " << ShapeToString(c.lhs) << " rhs " << ShapeToString(c.rhs) << " ta " << c.ta
                            << " tb " << c.tb);
      const kir::Kernel kernel = Check("batch_dot", {RandomOf(c.lhs, dtype, seed++), RandomOf(c.rhs, dtype, seed++)},
                                       {{"transpose_a", c.ta}, {"transpose_b", c.tb}});
      if (dtype == DType::kFloat32) {
        const int64_t batches = NumElements(Shape(c.lhs.begin(), c.lhs.end() - 2));
        CHECK(kernel.parallel_extent == batches);
      }
    }
  }
  // Two items of 64x256x64 (1M multiply-adds each) want 16 tasks: 8 panels per item.
  const kir::Kernel kernel = Check("batch_dot", {RandomTensor({2, 64, 64}, seed++), RandomTensor({2, 256, 64}, seed++)},
                                   {{"transpose_b", true}});
  CHECK(kernel.parallel_extent == 16);
}

TEST_CASE("FullyConnected matches the reference: sgemm with the weight transposed, then the bias", "[lower][matrix]") {
  uint64_t seed = 300;
  struct Case {
    Shape data;
    int64_t hidden;
    bool flatten;
    bool no_bias;
  };
  const std::vector<Case> cases = {
      {{5, 7}, 3, true, false},     {{5, 7}, 3, true, true},     {{2, 3, 4, 2}, 6, true, false},
      {{2, 3, 4}, 5, false, false}, {{2, 3, 4}, 5, false, true}, {{6}, 4, true, false},
      {{1, 1}, 1, true, false},     {{9, 13}, 17, true, false},
  };
  for (const DType dtype : {DType::kFloat32, DType::kFloat64, DType::kFloat16, DType::kInt32}) {
    for (const Case& c : cases) {
      INFO(DTypeName(dtype) << " data " << ShapeToString(c.data) << " hidden " << c.hidden << " flatten " << c.flatten
                            << " no_bias " << c.no_bias);
      const AttrMap attrs = {{"num_hidden", c.hidden}, {"flatten", c.flatten}, {"no_bias", c.no_bias}};
      const auto shapes = InferShapeSlots("FullyConnected", {c.data, std::nullopt, std::nullopt}, attrs);
      std::vector<Tensor> inputs = {RandomOf(c.data, dtype, seed++), RandomOf(*shapes[1], dtype, seed++)};
      if (!c.no_bias) inputs.push_back(RandomOf(*shapes[2], dtype, seed++));
      Check("FullyConnected", inputs, attrs);
    }
  }
}

TEST_CASE("FullyConnected and dot with constant weights read them packed at compile time", "[lower][matrix]") {
  // Any number of rows (a few too: the micro-kernels sum each row in the same order at
  // every batch size), columns not a multiple of the 32-column panels, and column panels
  // split across tasks.
  struct Case {
    std::string op;
    std::vector<Tensor> inputs;
    AttrMap attrs;
    bool packed;
  };
  const std::vector<Case> cases = {
      {"FullyConnected",
       {RandomTensor({5, 7}, 1), RandomTensor({3, 7}, 2), RandomTensor({3}, 3)},
       {{"num_hidden", 3}},
       true},
      {"FullyConnected",
       {RandomTensor({9, 70}, 4), RandomTensor({45, 70}, 5)},
       {{"num_hidden", 45}, {"no_bias", true}},
       true},
      {"FullyConnected",
       {RandomTensor({64, 500}, 6), RandomTensor({300, 500}, 7), RandomTensor({300}, 8)},
       {{"num_hidden", 300}},
       true},
      {"FullyConnected",
       {RandomTensor({4, 30}, 9), RandomTensor({20, 30}, 10), RandomTensor({20}, 11)},
       {{"num_hidden", 20}},
       true},
      {"FullyConnected",
       {RandomTensor({1, 30}, 9), RandomTensor({20, 30}, 10), RandomTensor({20}, 11)},
       {{"num_hidden", 20}},
       true},
      {"dot", {RandomTensor({33, 65}, 12), RandomTensor({65, 17}, 13)}, {}, true},
      {"dot", {RandomTensor({40, 65}, 14), RandomTensor({70, 65}, 15)}, {{"transpose_b", true}}, true},
      {"dot", {RandomTensor({8, 65}, 16), RandomTensor({65}, 17)}, {}, true},
  };
  for (const Case& c : cases) {
    INFO(c.op << " " << ShapeToString(c.inputs[0].shape()) << " x " << ShapeToString(c.inputs[1].shape()));
    const Tensor expected = RunOp(c.op, c.inputs, c.attrs)[0];
    KILN_CHECK_CLOSE(RunLowered(c.op, c.inputs, c.attrs, InterpreterRunner(), false, 0, {1})[0], expected, 1e-4, 1e-5);
    ConstantArgs replaced;
    LowerOpForInputs(c.op, c.inputs, c.attrs, false, 0, {1}, &replaced);
    CHECK(replaced.size() == (c.packed ? 1u : 0u));
  }
}

TEST_CASE("large FullyConnected adds the bias to every panel, and a (num_hidden, 1) bias works", "[lower][matrix]") {
  // 64x300x500 = 9.6M multiply-adds: 64 tasks wanted, 19 panels of 16 columns (last 12).
  const AttrMap attrs = {{"num_hidden", 300}};
  const kir::Kernel kernel =
      Check("FullyConnected", {RandomTensor({64, 500}, 1), RandomTensor({300, 500}, 2), RandomTensor({300}, 3)}, attrs);
  CHECK(kernel.parallel_extent == 19);
  Check("FullyConnected", {RandomTensor({4, 5}, 4), RandomTensor({3, 5}, 5), RandomTensor({3, 1}, 6)},
        {{"num_hidden", 3}});
  // No input features: the output is the bias.
  Check("FullyConnected", {RandomTensor({4, 0}, 7), RandomTensor({3, 0}, 8), RandomTensor({3}, 9)},
        {{"num_hidden", 3}});
}
