// softmax, log_softmax and the output (loss) layers. Expected values marked "MXNet" were
// printed by MXNet 1.9.1 (mx.nd.<op>) and pasted here.
#include <catch2/catch.hpp>
#include <cmath>

#include "runtime/error.h"
#include "tests/op_test_util.h"

using namespace kiln;
using namespace kiln::testing;

namespace {

// Shape inference with some slots unknown; returns the input slots after inference.
std::vector<ShapeSlot> InferInputs(const std::string& op, std::vector<ShapeSlot> inputs, const AttrMap& attrs = {}) {
  const size_t count = inputs.size();
  auto slots = InferShapeSlots(op, std::move(inputs), attrs);
  slots.resize(count);
  return slots;
}

const Tensor kX = Values({2, 3}, {1, 2, 3, 1, -1, 0.5});

}  // namespace

TEST_CASE("softmax and log_softmax match MXNet", "[softmax]") {
  // MXNet
  KILN_CHECK_CLOSE(RunOp("softmax", {kX})[0],
                   Values({2, 3}, {0.09003056585788727, 0.2447284758090973, 0.6652408838272095, 0.5740969777107239,
                                   0.0776955783367157, 0.34820738434791565}),
                   1e-6, 1e-7);
  KILN_CHECK_CLOSE(
      RunOp("softmax", {kX}, {{"axis", 0}})[0],
      Values({2, 3}, {0.5, 0.9525741338729858, 0.9241418242454529, 0.5, 0.04742587357759476, 0.07585817575454712}),
      1e-6, 1e-7);
  KILN_CHECK_CLOSE(RunOp("softmax", {kX}, {{"temperature", 2.0}})[0],
                   Values({2, 3}, {0.18632373213768005, 0.30719590187072754, 0.5064803957939148, 0.4658356010913849,
                                   0.17137134075164795, 0.36279311776161194}),
                   1e-6, 1e-7);
  KILN_CHECK_CLOSE(RunOp("log_softmax", {kX}, {{"temperature", "0.5"}})[0],
                   Values({2, 3}, {-4.1429314613342285, -2.1429316997528076, -0.14293159544467926, -0.32656270265579224,
                                   -4.326562881469727, -1.3265626430511475}),
                   1e-6, 1e-6);
  KILN_CHECK_CLOSE(RunOp("log_softmax", {kX}, {{"axis", -2}})[0],
                   Values({2, 3}, {-0.6931471824645996, -0.04858732968568802, -0.07888974994421005, -0.6931471824645996,
                                   -3.0485873222351074, -2.578889846801758}),
                   1e-6, 1e-6);
}

TEST_CASE("softmax is stable for large inputs and handles size-1 axes", "[softmax]") {
  // exp(1000) overflows; subtracting the row maximum keeps the result exact.
  KILN_CHECK_CLOSE(RunOp("softmax", {Values({1, 2}, {1000, 0})})[0], Values({1, 2}, {1, 0}), 0, 1e-30);
  KILN_CHECK_CLOSE(RunOp("log_softmax", {Values({1, 2}, {1000, 0})})[0], Values({1, 2}, {0, -1000}), 1e-7, 0);
  KILN_CHECK_CLOSE(RunOp("softmax", {Values({3, 1}, {5, -2, 7})})[0], Values({3, 1}, {1, 1, 1}), 0, 0);
  KILN_CHECK_CLOSE(RunOp("log_softmax", {Values({3, 1}, {5, -2, 7})})[0], Values({3, 1}, {0, 0, 0}), 0, 0);
  // The middle axis of a 3-d input: every (outer, inner) column sums to 1.
  const Tensor out = RunOp("softmax", {RandomTensor({2, 5, 3}, 7, -4, 4)}, {{"axis", 1}})[0];
  for (int64_t o = 0; o < 2; ++o) {
    for (int64_t i = 0; i < 3; ++i) {
      double sum = 0;
      for (int64_t c = 0; c < 5; ++c) sum += out.GetDouble(o * 15 + c * 3 + i);
      CHECK(sum == Approx(1.0).epsilon(1e-6));
    }
  }
}

TEST_CASE("softmax dtypes", "[softmax]") {
  // float64 in, float64 out (MXNet).
  const Tensor f64 = RunOp("softmax", {kX.CastTo(DType::kFloat64)})[0];
  CHECK(f64.dtype() == DType::kFloat64);
  KILN_CHECK_CLOSE(f64,
                   Values({2, 3},
                          {0.09003057317038046, 0.24472847105479764, 0.6652409557748218, 0.5740969929676946,
                           0.07769557914857059, 0.3482074278837348},
                          DType::kFloat64),
                   1e-12, 0);
  // dtype overrides the output: float16 in, float32 out. MXNet computes in float16 here
  // (0.0899658 for the first element); the reference computes in double.
  const Tensor f32 = RunOp("softmax", {kX.CastTo(DType::kFloat16)}, {{"dtype", "float32"}})[0];
  CHECK(f32.dtype() == DType::kFloat32);
  KILN_CHECK_CLOSE(f32, RunOp("softmax", {kX})[0], 1e-6, 0);
  CHECK(RunOp("log_softmax", {kX}, {{"dtype", "float16"}})[0].dtype() == DType::kFloat16);

  const auto types = InferTypeSlots("softmax", {DType::kFloat16});
  CHECK(types[1] == DType::kFloat16);
  CHECK(InferTypeSlots("softmax", {std::nullopt}, {{"dtype", "float64"}})[1] == DType::kFloat64);
  // MXNet: "This operation only support floating point types, not int32".
  CHECK_THROWS_WITH(InferTypeSlots("softmax", {DType::kInt32}),
                    Catch::Contains("input 'data'") && Catch::Contains("floating-point") && Catch::Contains("int32"));
  CHECK_THROWS_WITH(ParseAttrs("softmax", {{"dtype", "int32"}}),
                    Catch::Contains("'dtype'") && Catch::Contains("float16, bfloat16, float32, float64"));
}

TEST_CASE("softmax with use_length masks the tail of each row", "[softmax]") {
  // MXNet: lengths (2, 0) along the last axis; (1, 2, 0) along axis 0.
  const auto out = RunOp("softmax", {kX, Values({2}, {2, 0}, DType::kInt32)}, {{"use_length", true}});
  KILN_CHECK_CLOSE(out[0], Values({2, 3}, {0.2689414322376251, 0.7310585975646973, 0, 0, 0, 0}), 1e-6, 0);
  const auto axis0 = RunOp("softmax", {kX, Values({3}, {1, 2, 0}, DType::kInt64)}, {{"use_length", true}, {"axis", 0}});
  KILN_CHECK_CLOSE(axis0[0], Values({2, 3}, {1, 0.9525741338729858, 0, 0, 0.04742587357759476, 0}), 1e-6, 0);
  // A length past the axis is clipped (MXNet reads out of bounds).
  const auto clipped = RunOp("softmax", {kX, Values({2}, {7, 3}, DType::kInt32)}, {{"use_length", true}});
  KILN_CHECK_CLOSE(clipped[0], RunOp("softmax", {kX})[0], 1e-7, 0);

  CHECK(OpRegistry::Global().Get("softmax").InputNames(ParseAttrs("softmax", {{"use_length", true}})) ==
        std::vector<std::string>{"data", "length"});
  CHECK(OpRegistry::Global().Get("softmax").InputNames(ParseAttrs("softmax", {{"use_length", "None"}})) ==
        std::vector<std::string>{"data"});
  const auto shapes = InferInputs("softmax", {Shape{2, 3, 4}, std::nullopt}, {{"use_length", true}, {"axis", 1}});
  CHECK(*shapes[1] == Shape{2, 4});
  CHECK_THROWS_WITH(InferInputs("softmax", {Shape{2, 3, 4}, Shape{2, 3}}, {{"use_length", true}, {"axis", 1}}),
                    Catch::Contains("input 'length'") && Catch::Contains("(2,4)") && Catch::Contains("(2,3)"));
  CHECK_THROWS_WITH(InferTypeSlots("softmax", {DType::kFloat32, DType::kFloat32}, {{"use_length", true}}),
                    Catch::Contains("input 'length'") && Catch::Contains("integer"));
  CHECK_THROWS_WITH(ParseAttrs("log_softmax", {{"use_length", true}}), Catch::Contains("use_length"));
}

TEST_CASE("softmax shape inference and attributes", "[softmax]") {
  CHECK(InferOpShapes("softmax", {{2, 3, 4}})[0] == Shape{2, 3, 4});
  CHECK(InferOpShapes("log_softmax", {{7}}, {{"axis", 0}})[0] == Shape{7});
  CHECK_THROWS_WITH(InferOpShapes("softmax", {{2, 3}}, {{"axis", 2}}),
                    Catch::Contains("'axis'") && Catch::Contains("out of range"));
  CHECK_THROWS_WITH(InferOpShapes("softmax", {{2, 3}}, {{"axis", -3}}), Catch::Contains("out of range"));
  CHECK_THROWS_WITH(InferOpShapes("softmax", {Shape{}}), Catch::Contains("input 'data'") && Catch::Contains("1-d"));
  CHECK_THROWS_WITH(ParseAttrs("softmax", {{"temperature", 0.0}}), Catch::Contains("'temperature'"));
  CHECK_THROWS_WITH(ParseAttrs("softmax", {{"axis", "last"}}), Catch::Contains("'axis'"));
  CHECK(ParseAttrs("softmax", {{"temperature", "None"}}).IsNone("temperature"));
  CHECK(OpRegistry::Global().Get("softmax").pattern() == OpPattern::kOpaque);
  CHECK(OpRegistry::Global().Get("softmax").InplacePairs(ParseAttrs("softmax", {})).size() == 1);
  CHECK(OpRegistry::Global().Get("softmax").InplacePairs(ParseAttrs("softmax", {{"dtype", "float64"}})).empty());
}

TEST_CASE("SoftmaxOutput forward follows MXNet's three layouts", "[softmax]") {
  Tensor data({2, 3, 4}, DType::kFloat32);  // MXNet's arange(24).reshape(2, 3, 4) * 0.1
  for (int64_t i = 0; i < data.size(); ++i) data.SetDouble(i, static_cast<double>(i) * 0.1);
  // MXNet: default flattens each sample to one row of 12 classes.
  const Tensor flat = RunOp("SoftmaxOutput", {data, Tensor({2, 3}, DType::kFloat32)})[0];
  const std::vector<double> flat_row = {0.04533000290393829, 0.05009740591049194, 0.055366192013025284,
                                        0.06118910387158394, 0.06762441992759705, 0.07473654299974442,
                                        0.08259665220975876, 0.091283418238163,   0.10088378190994263,
                                        0.11149381846189499, 0.12321972101926804, 0.1361788660287857};
  std::vector<double> flat_expected = flat_row;
  flat_expected.insert(flat_expected.end(), flat_row.begin(), flat_row.end());
  KILN_CHECK_CLOSE(flat, Values({2, 3, 4}, flat_expected), 1e-6, 0);
  // MXNet: preserve_shape normalizes over the last axis (every row is the same here).
  const Tensor last = RunOp("SoftmaxOutput", {data, Tensor({2, 3}, DType::kFloat32)}, {{"preserve_shape", true}})[0];
  std::vector<double> last_expected;
  for (int r = 0; r < 6; ++r) {
    last_expected.insert(last_expected.end(),
                         {0.21383821964263916, 0.23632778227329254, 0.26118260622024536, 0.28865140676498413});
  }
  KILN_CHECK_CLOSE(last, Values({2, 3, 4}, last_expected), 1e-6, 0);
  // MXNet: multi_output normalizes over axis 1.
  const Tensor channels = RunOp("SoftmaxOutput", {data, Tensor({2, 4}, DType::kFloat32)}, {{"multi_output", true}})[0];
  std::vector<double> channel_expected;
  for (int n = 0; n < 2; ++n) {
    for (double v : {0.21198272705078125, 0.316241055727005, 0.47177624702453613}) {
      channel_expected.insert(channel_expected.end(), {v, v, v, v});
    }
  }
  KILN_CHECK_CLOSE(channels, Values({2, 3, 4}, channel_expected), 1e-6, 0);
  // 2-d data: the plain softmax; the attributes that only shape the gradient change nothing.
  const Tensor two_d = RunOp("SoftmaxOutput", {kX, Values({2}, {0, 2})},
                             {{"grad_scale", 3.0},
                              {"normalization", "valid"},
                              {"smooth_alpha", 0.1},
                              {"use_ignore", true},
                              {"ignore_label", 2.0},
                              {"out_grad", true}})[0];
  KILN_CHECK_CLOSE(two_d, RunOp("softmax", {kX})[0], 1e-7, 0);
  // Softmax is MXNet's older name for SoftmaxOutput.
  CHECK(&OpRegistry::Global().Get("Softmax") == &OpRegistry::Global().Get("SoftmaxOutput"));
}

TEST_CASE("SoftmaxOutput label shapes", "[softmax]") {
  CHECK(*InferInputs("SoftmaxOutput", {Shape{2, 3}, std::nullopt})[1] == Shape{2});
  CHECK(*InferInputs("SoftmaxOutput", {Shape{2, 3, 4}, std::nullopt})[1] == Shape{2, 3});
  CHECK(*InferInputs("SoftmaxOutput", {Shape{2, 3, 4}, std::nullopt}, {{"preserve_shape", true}})[1] == Shape{2, 3});
  CHECK(*InferInputs("SoftmaxOutput", {Shape{2, 3, 4, 5}, std::nullopt}, {{"multi_output", true}})[1] == Shape{2, 20});
  CHECK(*InferInputs("SoftmaxOutput", {Shape{2, 3}, std::nullopt}, {{"multi_output", true}})[1] == Shape{2, 1});
  // Accepted as MXNet accepts them: probability labels of data's shape, and for
  // multi_output the unflattened spatial form.
  CHECK_NOTHROW(InferInputs("SoftmaxOutput", {Shape{2, 3}, Shape{2, 3}}));
  CHECK_NOTHROW(InferInputs("SoftmaxOutput", {Shape{2, 3, 4, 5}, Shape{2, 4, 5}}, {{"multi_output", true}}));
  CHECK_NOTHROW(InferInputs("SoftmaxOutput", {Shape{2, 3, 4, 5}, Shape{2, 3, 4, 5}}, {{"multi_output", true}}));
  CHECK_NOTHROW(InferInputs("SoftmaxOutput", {Shape{2, 3}, Shape{2}}, {{"multi_output", true}}));
  CHECK(InferOpShapes("SoftmaxOutput", {{2, 3, 4}})[0] == Shape{2, 3, 4});

  CHECK_THROWS_WITH(InferInputs("SoftmaxOutput", {Shape{2, 3}, Shape{3}}),
                    Catch::Contains("input 'label'") && Catch::Contains("(2)") && Catch::Contains("(2,3)") &&
                        Catch::Contains("given (3)"));
  CHECK_THROWS_WITH(InferInputs("SoftmaxOutput", {Shape{2, 3, 4}, Shape{2, 12}}),
                    Catch::Contains("input 'label'") && Catch::Contains("(2,3)") && Catch::Contains("given (2,12)"));
  CHECK_THROWS_WITH(InferInputs("SoftmaxOutput", {Shape{2, 3, 4, 5}, Shape{2, 21}}, {{"multi_output", true}}),
                    Catch::Contains("(2,20) or (2,4,5)") && Catch::Contains("given (2,21)"));
  CHECK_THROWS_WITH(InferInputs("SoftmaxOutput", {Shape{5}, std::nullopt}),
                    Catch::Contains("input 'data'") && Catch::Contains("2-d"));
  CHECK_THROWS_WITH(ParseAttrs("SoftmaxOutput", {{"normalization", "mean"}}),
                    Catch::Contains("'normalization'") && Catch::Contains("batch"));
  CHECK_THROWS_WITH(ParseAttrs("SoftmaxOutput", {{"multi_output", "maybe"}}), Catch::Contains("'multi_output'"));
}

TEST_CASE("loss layers share one floating-point dtype", "[softmax]") {
  for (const char* op :
       {"SoftmaxOutput", "LinearRegressionOutput", "LogisticRegressionOutput", "softmax_cross_entropy"}) {
    INFO(op);
    const auto types = InferTypeSlots(op, {DType::kFloat16, std::nullopt});
    CHECK(types[1] == DType::kFloat16);
    CHECK(types[2] == DType::kFloat16);
    // MXNet: "This layer requires uniform type. Expected 'float32' v.s. given 'int32' at 'label'".
    CHECK_THROWS_WITH(InferTypeSlots(op, {DType::kFloat32, DType::kInt32}),
                      Catch::Contains("input 'label'") && Catch::Contains("int32"));
    CHECK_THROWS_WITH(InferTypeSlots(op, {DType::kInt32, std::nullopt}), Catch::Contains("floating-point"));
  }
  CHECK(RunOp("SoftmaxOutput", {kX.CastTo(DType::kFloat64), Tensor({2}, DType::kFloat64)})[0].dtype() ==
        DType::kFloat64);
}

TEST_CASE("regression outputs: identity and sigmoid forward, MXNet's label shapes", "[softmax]") {
  // MXNet
  KILN_CHECK_CLOSE(RunOp("LogisticRegressionOutput", {kX, kX})[0],
                   Values({2, 3}, {0.7310585975646973, 0.8807970285415649, 0.9525741338729858, 0.7310585975646973,
                                   0.2689414322376251, 0.622459352016449}),
                   1e-6, 0);
  // MXNet, float16: the sigmoid rounded to half precision.
  const Tensor half = RunOp("LogisticRegressionOutput", {kX.CastTo(DType::kFloat16), kX.CastTo(DType::kFloat16)})[0];
  CHECK(half.dtype() == DType::kFloat16);
  KILN_CHECK_CLOSE(
      half, Values({2, 3}, {0.73095703125, 0.880859375, 0.95263671875, 0.73095703125, 0.26904296875, 0.62255859375}), 0,
      0);
  KILN_CHECK_CLOSE(RunOp("LinearRegressionOutput", {kX, kX}, {{"grad_scale", 3.0}})[0], kX, 0, 0);
  KILN_CHECK_CLOSE(RunOp("MAERegressionOutput", {kX, kX})[0], kX, 0, 0);

  for (const char* op : {"LinearRegressionOutput", "LogisticRegressionOutput", "MAERegressionOutput"}) {
    INFO(op);
    // MXNet: (N, 1) data takes an (N,) label by default; otherwise data's shape.
    CHECK(*InferInputs(op, {Shape{4, 1}, std::nullopt})[1] == Shape{4});
    CHECK(*InferInputs(op, {Shape{2, 3}, std::nullopt})[1] == Shape{2, 3});
    CHECK(*InferInputs(op, {Shape{5}, std::nullopt})[1] == Shape{5});
    CHECK_NOTHROW(InferInputs(op, {Shape{4, 1}, Shape{4, 1}}));
    CHECK_NOTHROW(InferInputs(op, {Shape{2, 3}, Shape{2, 1, 3}}));
    CHECK_THROWS_WITH(InferInputs(op, {Shape{2, 3}, Shape{3, 2}}),
                      Catch::Contains("input 'label'") && Catch::Contains("(2,3)") && Catch::Contains("given (3,2)"));
    CHECK_THROWS_WITH(InferInputs(op, {Shape{2, 3}, Shape{6}}), Catch::Contains("given (6)"));
    CHECK_THROWS_WITH(InferInputs(op, {Shape{2, 3}, Shape{2, 4}}), Catch::Contains("given (2,4)"));
    CHECK(InferOpShapes(op, {{2, 3}})[0] == Shape{2, 3});
    CHECK_THROWS_WITH(ParseAttrs(op, {{"grad_scale", "x"}}), Catch::Contains("'grad_scale'"));
  }
}

TEST_CASE("softmax_cross_entropy sums the batch's losses", "[softmax]") {
  // MXNet: 0.9625629 for kX with labels (2, 0); the doc example gives 0.4281871.
  KILN_CHECK_CLOSE(RunOp("softmax_cross_entropy", {kX, Values({2}, {2, 0})})[0], Values({1}, {0.9625629186630249}),
                   1e-6, 0);
  KILN_CHECK_CLOSE(RunOp("softmax_cross_entropy", {Values({2, 3}, {1, 2, 3, 11, 7, 5}), Values({2}, {2, 0})})[0],
                   Values({1}, {0.4281871020793915}), 1e-6, 0);
  // MXNet truncates float labels: (2.7, 0.2) reads classes (2, 0).
  KILN_CHECK_CLOSE(RunOp("softmax_cross_entropy", {kX, Values({2}, {2.7, 0.2})})[0], Values({1}, {0.9625629186630249}),
                   1e-6, 0);
  // Out-of-range labels are clipped (MXNet reads a neighbouring row): (5, -1) -> (2, 0).
  KILN_CHECK_CLOSE(RunOp("softmax_cross_entropy", {kX, Values({2}, {5, -1})})[0], Values({1}, {0.9625629186630249}),
                   1e-6, 0);

  CHECK(InferOpShapes("softmax_cross_entropy", {{2, 3}, {2}})[0] == Shape{1});
  CHECK(*InferInputs("softmax_cross_entropy", {Shape{8, 10}, std::nullopt})[1] == Shape{8});
  CHECK_THROWS_WITH(InferInputs("softmax_cross_entropy", {Shape{2, 3}, Shape{3}}),
                    Catch::Contains("input 'label'") && Catch::Contains("(2)") && Catch::Contains("given (3)"));
  CHECK_THROWS_WITH(InferInputs("softmax_cross_entropy", {Shape{2, 3}, Shape{2, 1}}),
                    Catch::Contains("input 'label'") && Catch::Contains("given (2,1)"));
  CHECK_THROWS_WITH(InferInputs("softmax_cross_entropy", {Shape{2, 3, 4}, Shape{2}}),
                    Catch::Contains("input 'data'") && Catch::Contains("2-d (N, C)") && Catch::Contains("(2,3,4)"));
  CHECK_THROWS_WITH(ParseAttrs("softmax_cross_entropy", {{"axis", 1}}), Catch::Contains("unknown attribute 'axis'"));
}
