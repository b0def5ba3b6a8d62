// dot, batch_dot and FullyConnected: shapes (MXNet's N-d and 1-d rules), backward
// inference of FullyConnected's parameters, and reference values. Expected values were
// computed by hand or with MXNet 1.9.1 (mx.nd.<op>), as each comment says.
#include <catch2/catch.hpp>

#include "tests/op_test_util.h"

using namespace kiln;
using namespace kiln::testing;

namespace {

std::map<std::string, AttrValue> ToValues(const AttrMap& attrs) {
  std::map<std::string, AttrValue> values;
  for (const auto& [key, arg] : attrs) values[key] = arg.value;
  return values;
}

// Runs shape inference on partly known slots and returns the inputs and outputs after it.
std::pair<std::vector<ShapeSlot>, std::vector<ShapeSlot>> InferSlots(const std::string& op_name,
                                                                     std::vector<ShapeSlot> inputs,
                                                                     const AttrMap& attrs,
                                                                     std::vector<ShapeSlot> outputs = {}) {
  const OpDef& op = OpRegistry::Global().Get(op_name);
  const Attrs parsed = op.ParseAttrs(ToValues(attrs), "test");
  inputs.resize(op.NumInputs(parsed));
  outputs.resize(op.NumOutputs(parsed));
  op.InferShape(parsed, inputs, outputs);
  return {inputs, outputs};
}

}  // namespace

TEST_CASE("2 * dot(x.T, x) for x = arange(4) as a (4,1) column", "[matrix]") {
  // By hand: 0*0 + 1*1 + 2*2 + 3*3 = 14, doubled 28.
  const Tensor x = Arange({4, 1});
  const auto product = RunOp("dot", {x, x}, {{"transpose_a", true}});
  REQUIRE(product[0].shape() == Shape{1, 1});
  const auto out = RunOp("_mul_scalar", {product[0]}, {{"scalar", 2.0}});
  KILN_CHECK_CLOSE(out[0], Values({1, 1}, {28}), 0, 0);
}

TEST_CASE("dot of matrices and vectors", "[matrix]") {
  // By hand: [[0,1,2],[3,4,5]] . [[0,1],[2,3],[4,5]].
  KILN_CHECK_CLOSE(RunOp("dot", {Arange({2, 3}), Arange({3, 2})})[0], Values({2, 2}, {10, 13, 28, 40}), 0, 0);
  // The same product from the transposed operands: (3,2)^T . (2,3)^T.
  const Tensor lhs_t = Values({3, 2}, {0, 3, 1, 4, 2, 5});
  const Tensor rhs_t = Values({2, 3}, {0, 2, 4, 1, 3, 5});
  KILN_CHECK_CLOSE(RunOp("dot", {lhs_t, rhs_t}, {{"transpose_a", true}, {"transpose_b", "True"}})[0],
                   Values({2, 2}, {10, 13, 28, 40}), 0, 0);
  // vector . vector is a (1,) vector (MXNet): 1*4 + 2*5 + 3*6 = 32.
  KILN_CHECK_CLOSE(RunOp("dot", {Values({3}, {1, 2, 3}), Values({3}, {4, 5, 6})})[0], Values({1}, {32}), 0, 0);
  // vector . matrix and matrix . vector: [1,2,3] . [[0,1],[2,3],[4,5]] = [16,22];
  // [[0,1,2],[3,4,5]] . [1,2,3] = [8,26].
  KILN_CHECK_CLOSE(RunOp("dot", {Values({3}, {1, 2, 3}), Arange({3, 2})})[0], Values({2}, {16, 22}), 0, 0);
  KILN_CHECK_CLOSE(RunOp("dot", {Arange({2, 3}), Values({3}, {1, 2, 3})})[0], Values({2}, {8, 26}), 0, 0);
  // A transpose flag on a vector operand of a matrix product is ignored (MXNet).
  KILN_CHECK_CLOSE(RunOp("dot", {Values({3}, {1, 2, 3}), Arange({3, 2})}, {{"transpose_a", true}})[0],
                   Values({2}, {16, 22}), 0, 0);
}

TEST_CASE("dot of N-d operands contracts lhs's last and rhs's first axis", "[matrix]") {
  CHECK(InferOpShapes("dot", {{2, 3, 4}, {4, 5, 6}})[0] == Shape{2, 3, 5, 6});
  // MXNet 1.9.1 infer_shape: transpose_a moves the contracted axis to lhs's first.
  CHECK(InferOpShapes("dot", {{2, 3, 4}, {2, 5, 6}}, {{"transpose_a", true}})[0] == Shape{3, 4, 5, 6});
  CHECK(InferOpShapes("dot", {{2, 3, 4}, {5, 6, 4}}, {{"transpose_b", true}})[0] == Shape{2, 3, 5, 6});
  CHECK(InferOpShapes("dot", {{4, 3, 2}, {5, 6, 4}}, {{"transpose_a", true}, {"transpose_b", true}})[0] ==
        Shape{3, 2, 5, 6});
  CHECK(InferOpShapes("dot", {{1, 3}, {3, 1}})[0] == Shape{1, 1});

  // MXNet 1.9.1: mx.nd.dot(arange(24).reshape(2,3,4), arange(10).reshape(2,5), transpose_a=True),
  // first ten values of the (3,4,5) result.
  const auto ta = RunOp("dot", {Arange({2, 3, 4}), Arange({2, 5})}, {{"transpose_a", true}});
  REQUIRE(ta[0].shape() == Shape{3, 4, 5});
  const std::vector<double> ta_head = {60, 72, 84, 96, 108, 65, 79, 93, 107, 121};
  for (size_t i = 0; i < ta_head.size(); ++i) CHECK(ta[0].GetDouble(static_cast<int64_t>(i)) == ta_head[i]);
  CHECK(ta[0].GetDouble(59) == 251);  // the last value, also from MXNet
  // MXNet 1.9.1: mx.nd.dot(arange(24).reshape(2,3,4), arange(20).reshape(5,4), transpose_b=True).
  const auto tb = RunOp("dot", {Arange({2, 3, 4}), Arange({5, 4})}, {{"transpose_b", true}});
  REQUIRE(tb[0].shape() == Shape{2, 3, 5});
  const std::vector<double> tb_head = {14, 38, 62, 86, 110, 38, 126, 214, 302, 390};
  for (size_t i = 0; i < tb_head.size(); ++i) CHECK(tb[0].GetDouble(static_cast<int64_t>(i)) == tb_head[i]);
}

TEST_CASE("dot shape errors", "[matrix]") {
  CHECK_THROWS_WITH(InferOpShapes("dot", {{2, 3}, {4, 5}}),
                    Catch::Contains("input 'rhs': expected first axis of size 3") && Catch::Contains("(2,3)") &&
                        Catch::Contains("given (4,5)"));
  CHECK_THROWS_WITH(InferOpShapes("dot", {{2, 3, 4}, {4, 5, 6}}, {{"transpose_a", true}}),
                    Catch::Contains("first axis of size 2") && Catch::Contains("contracts its first axis"));
  CHECK_THROWS_WITH(InferOpShapes("dot", {{2, 3}, {4, 5}}, {{"transpose_b", true}}),
                    Catch::Contains("last axis of size 3"));
  CHECK_THROWS_WITH(InferOpShapes("dot", {{3}, {4}}), Catch::Contains("length of size 3"));
  CHECK_THROWS_WITH(InferOpShapes("dot", {{3}, {3}}, {{"transpose_a", true}}),
                    Catch::Contains("must be False when both inputs are vectors"));
  CHECK_THROWS_WITH(InferOpShapes("dot", {{}, {3}}), Catch::Contains("input 'lhs': expected at least 1-d, given ()"));
  CHECK_THROWS_WITH(InferOpShapes("dot", {{3}, {2, 3}}, {{"forward_stype", "dense"}}),
                    Catch::Contains("forward_stype") && Catch::Contains("row_sparse"));
  // MXNet's JSON spells the unset storage hint "None"; it is accepted and ignored.
  CHECK(InferOpShapes("dot", {{3}, {3, 2}}, {{"forward_stype", "None"}})[0] == Shape{2});
  // Unknown inputs leave the output unknown.
  CHECK_FALSE(InferSlots("dot", {Shape{2, 3}, std::nullopt}, {}).second[0]);
}

TEST_CASE("dot in several dtypes", "[matrix]") {
  for (DType dtype : {DType::kFloat64, DType::kFloat16, DType::kInt32}) {
    const auto out = RunOp("dot", {Arange({2, 3}, dtype), Arange({3, 2}, dtype)});
    CHECK(out[0].dtype() == dtype);
    KILN_CHECK_CLOSE(out[0], Values({2, 2}, {10, 13, 28, 40}, dtype), 0, 0);
  }
  CHECK_THROWS_WITH(RunOp("dot", {Arange({2, 3}), Arange({3, 2}, DType::kFloat64)}),
                    Catch::Contains("expected dtype float32, given float64"));
}

TEST_CASE("batch_dot", "[matrix]") {
  // MXNet 1.9.1: mx.nd.batch_dot(arange(12).reshape(2,2,3), arange(12).reshape(2,3,2)).
  KILN_CHECK_CLOSE(RunOp("batch_dot", {Arange({2, 2, 3}), Arange({2, 3, 2})})[0],
                   Values({2, 2, 2}, {10, 13, 28, 40, 172, 193, 244, 274}), 0, 0);
  // MXNet 1.9.1: the same with (2,3,2), (2,2,3) and both transposed.
  KILN_CHECK_CLOSE(
      RunOp("batch_dot", {Arange({2, 3, 2}), Arange({2, 2, 3})}, {{"transpose_a", true}, {"transpose_b", true}})[0],
      Values({2, 2, 2}, {10, 28, 13, 40, 172, 244, 193, 274}), 0, 0);
  // 4-d: two batch axes; each (1,2).(2,1) block by hand: batch (i,j) holds x = 2*(2i+j) + [0,1].
  const auto four = RunOp("batch_dot", {Arange({2, 2, 1, 2}), Arange({2, 2, 2, 1})});
  KILN_CHECK_CLOSE(four[0], Values({2, 2, 1, 1}, {1, 13, 41, 85}), 0, 0);

  // MXNet 1.9.1 infer_shape.
  CHECK(InferOpShapes("batch_dot", {{2, 3, 4}, {2, 3, 5}}, {{"transpose_a", true}})[0] == Shape{2, 4, 5});
  CHECK(InferOpShapes("batch_dot", {{2, 3, 4}, {2, 5, 4}}, {{"transpose_b", true}})[0] == Shape{2, 3, 5});
  CHECK(InferOpShapes("batch_dot", {{2, 6, 3, 4}, {2, 6, 4, 5}})[0] == Shape{2, 6, 3, 5});
  CHECK_THROWS_WITH(InferOpShapes("batch_dot", {{3, 4}, {4, 5}}),
                    Catch::Contains("input 'lhs': expected at least 3-d") && Catch::Contains("given (3,4)"));
  CHECK_THROWS_WITH(InferOpShapes("batch_dot", {{7, 2, 3, 4}, {2, 4, 5}}),
                    Catch::Contains("input 'rhs': expected 4-d like lhs (7,2,3,4), given (2,4,5)"));
  CHECK_THROWS_WITH(InferOpShapes("batch_dot", {{2, 6, 3, 4}, {2, 1, 4, 5}}),
                    Catch::Contains("the batch axes (2,6)") && Catch::Contains("given (2,1,4,5)"));
  CHECK_THROWS_WITH(InferOpShapes("batch_dot", {{2, 3, 4}, {2, 5, 5}}),
                    Catch::Contains("second-to-last axis of size 4"));
}

TEST_CASE("FullyConnected values", "[matrix]") {
  const Tensor weight = Arange({2, 3});
  const Tensor bias = Values({2}, {1, 2});
  // MXNet 1.9.1: mx.nd.FullyConnected(arange(6).reshape(2,3), arange(6).reshape(2,3), [1,2], num_hidden=2).
  KILN_CHECK_CLOSE(RunOp("FullyConnected", {Arange({2, 3}), weight, bias}, {{"num_hidden", 2}})[0],
                   Values({2, 2}, {6, 16, 15, 52}), 0, 0);
  // flatten (default) collapses every axis but the first.
  KILN_CHECK_CLOSE(RunOp("FullyConnected", {Arange({2, 1, 3}), weight, bias}, {{"num_hidden", 2}})[0],
                   Values({2, 2}, {6, 16, 15, 52}), 0, 0);
  // MXNet 1.9.1: flatten=False on arange(12).reshape(2,2,3) applies to the last axis.
  KILN_CHECK_CLOSE(
      RunOp("FullyConnected", {Arange({2, 2, 3}), weight, bias}, {{"num_hidden", 2}, {"flatten", false}})[0],
      Values({2, 2, 2}, {6, 16, 15, 52, 24, 88, 33, 124}), 0, 0);
  // no_bias: two inputs; by hand the values above less the bias.
  KILN_CHECK_CLOSE(RunOp("FullyConnected", {Arange({2, 3}), weight}, {{"num_hidden", 2}, {"no_bias", true}})[0],
                   Values({2, 2}, {5, 14, 14, 50}), 0, 0);
  // A (num_hidden, 1) bias is accepted, as MXNet does.
  KILN_CHECK_CLOSE(RunOp("FullyConnected", {Arange({2, 3}), weight, Values({2, 1}, {1, 2})}, {{"num_hidden", 2}})[0],
                   Values({2, 2}, {6, 16, 15, 52}), 0, 0);
  // No input features: the output is the bias (by hand).
  KILN_CHECK_CLOSE(RunOp("FullyConnected", {Tensor({2, 0}, DType::kFloat32), Tensor({2, 0}, DType::kFloat32), bias},
                         {{"num_hidden", 2}})[0],
                   Values({2, 2}, {1, 2, 1, 2}), 0, 0);
  for (DType dtype : {DType::kFloat64, DType::kFloat16}) {
    const auto out =
        RunOp("FullyConnected", {Arange({2, 3}, dtype), Arange({2, 3}, dtype), Values({2}, {1, 2}, dtype)},
              {{"num_hidden", 2}});
    CHECK(out[0].dtype() == dtype);
    KILN_CHECK_CLOSE(out[0], Values({2, 2}, {6, 16, 15, 52}, dtype), 0, 0);
  }
  // A larger case against a plain loop written here: 3 rows, 5 inputs, 4 outputs.
  const Tensor x = RandomTensor({3, 5}, 1);
  const Tensor w = RandomTensor({4, 5}, 2);
  const Tensor b = RandomTensor({4}, 3);
  const auto out = RunOp("FullyConnected", {x, w, b}, {{"num_hidden", 4}});
  for (int64_t r = 0; r < 3; ++r) {
    for (int64_t j = 0; j < 4; ++j) {
      double expected = b.GetDouble(j);
      for (int64_t i = 0; i < 5; ++i) expected += x.GetDouble(r * 5 + i) * w.GetDouble(j * 5 + i);
      CHECK(out[0].GetDouble(r * 4 + j) == Approx(expected).epsilon(1e-6));
    }
  }
}

TEST_CASE("FullyConnected infers weight and bias from data", "[matrix]") {
  // MXNet 1.9.1 infer_shape_partial.
  auto [in, out] = InferSlots("FullyConnected", {Shape{2, 3, 4}}, {{"num_hidden", 5}});
  CHECK(*in[1] == Shape{5, 12});
  CHECK(*in[2] == Shape{5});
  CHECK(*out[0] == Shape{2, 5});
  std::tie(in, out) = InferSlots("FullyConnected", {Shape{2, 3, 4}}, {{"num_hidden", 5}, {"flatten", false}});
  CHECK(*in[1] == Shape{5, 4});
  CHECK(*out[0] == Shape{2, 3, 5});
  std::tie(in, out) = InferSlots("FullyConnected", {Shape{2, 3}}, {{"num_hidden", 5}, {"no_bias", true}});
  CHECK(in.size() == 2);
  CHECK(*in[1] == Shape{5, 3});
  // A 1-d input is a column with flatten (weight (5,1), output (7,5)) and a single row
  // without (output (5,)), as MXNet reads it.
  std::tie(in, out) = InferSlots("FullyConnected", {Shape{7}}, {{"num_hidden", 5}});
  CHECK(*in[1] == Shape{5, 1});
  CHECK(*out[0] == Shape{7, 5});
  std::tie(in, out) = InferSlots("FullyConnected", {Shape{7}}, {{"num_hidden", 5}, {"flatten", false}});
  CHECK(*in[1] == Shape{5, 7});
  CHECK(*out[0] == Shape{5});
  // Unknown data: nothing is inferred (the weight alone does not give the batch size).
  std::tie(in, out) = InferSlots("FullyConnected", {std::nullopt, Shape{5, 3}}, {{"num_hidden", 5}});
  CHECK_FALSE(in[0]);
  CHECK_FALSE(in[2]);
  CHECK_FALSE(out[0]);

  const OpDef& fc = OpRegistry::Global().Get("FullyConnected");
  CHECK(fc.InputNames(fc.ParseAttrs({{"num_hidden", AttrValue{int64_t{2}}}}, "t")) ==
        std::vector<std::string>{"data", "weight", "bias"});
  CHECK(fc.pattern() == OpPattern::kGemm);
}

TEST_CASE("FullyConnected errors", "[matrix]") {
  CHECK_THROWS_WITH(InferSlots("FullyConnected", {Shape{2, 3}, Shape{5, 4}}, {{"num_hidden", 5}}),
                    Catch::Contains("input 'weight': expected shape (5,3), given (5,4)"));
  CHECK_THROWS_WITH(InferSlots("FullyConnected", {Shape{2, 3}, std::nullopt, Shape{4}}, {{"num_hidden", 5}}),
                    Catch::Contains("input 'bias': expected shape (5), given (4)"));
  CHECK_THROWS_WITH(InferSlots("FullyConnected", {Shape{2, 3}}, {{"num_hidden", 5}}, {Shape{2, 4}}),
                    Catch::Contains("output: expected shape (2,5), given (2,4)"));
  CHECK_THROWS_WITH(InferOpShapes("FullyConnected", {Shape{}}, {{"num_hidden", 5}}),
                    Catch::Contains("input 'data': expected at least 1-d, given ()"));
  CHECK_THROWS_WITH(InferOpShapes("FullyConnected", {{2, 3}}, {{"num_hidden", 0}}),
                    Catch::Contains("num_hidden") && Catch::Contains("must be >= 1"));
  CHECK_THROWS_WITH(InferOpShapes("FullyConnected", {{2, 3}}), Catch::Contains("required attribute 'num_hidden'"));
  CHECK_THROWS_WITH(InferOpShapes("FullyConnected", {{2, 3}}, {{"num_hidden", 2}, {"flatten", "maybe"}}),
                    Catch::Contains("attribute 'flatten': expected boolean"));
}
