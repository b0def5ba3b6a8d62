// The ONNX importer against the operator specs (opsets 7 to 17) where kiln's
// operators differ from ONNX's: edge values (infinities, large integers, odd integers
// beyond the float mantissa), clamping rules, opset-dependent output types, and
// malformed attributes that must give a kiln::Error rather than a crash. Expected
// values are ONNX Runtime 1.32's outputs for the same models.
#include <catch2/catch.hpp>
#include <cmath>
#include <functional>
#include <limits>
#include <map>
#include <numeric>
#include <optional>
#include <string>

#include "passes/interpreter.h"
#include "runtime/error.h"
#include "symbol/onnx/onnx.pb.h"
#include "symbol/onnx/onnx_import.h"
#include "symbol/onnx/onnx_tensor.h"
#include "graph/op_util.h"
#include "tests/onnx/onnx_test_util.h"
#include "tests/op_test_util.h"

using namespace kiln;

namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr int64_t kInt64Max = std::numeric_limits<int64_t>::max();
constexpr int64_t kInt64Min = std::numeric_limits<int64_t>::min();

using ModelBuilder = testing::OnnxModelBuilder;

Tensor Floats(const std::vector<double>& values, DType dtype = DType::kFloat32) {
  return Tensor::FromDoubles({static_cast<int64_t>(values.size())}, values, dtype);
}

// Imports the model and runs it through the reference interpreter.
std::vector<Tensor> Run(const ModelBuilder& b, const std::map<std::string, Tensor>& feeds) {
  return Interpret(ImportOnnxModel(b.model), feeds);
}

// Element by element, telling NaN from infinities: exact, or within `margin` when given.
void CheckValues(const Tensor& actual, const std::vector<double>& expected, std::optional<double> margin = {}) {
  REQUIRE(actual.size() == static_cast<int64_t>(expected.size()));
  for (size_t i = 0; i < expected.size(); ++i) {
    INFO("element " << i);
    const double v = actual.GetDouble(static_cast<int64_t>(i));
    if (std::isnan(expected[i])) {
      CHECK(std::isnan(v));
    } else if (margin) {
      CHECK(v == Approx(expected[i]).margin(*margin));
    } else {
      CHECK(v == expected[i]);
    }
  }
}

void CheckInts(const Tensor& actual, const std::vector<int64_t>& expected) {
  REQUIRE(actual.size() == static_cast<int64_t>(expected.size()));
  for (size_t i = 0; i < expected.size(); ++i) {
    INFO("element " << i);
    CHECK(op_util::LoadInt(actual, static_cast<int64_t>(i)) == expected[i]);
  }
}

}  // namespace

TEST_CASE("Slice with a negative step clamps starts into [0, dim - 1]", "[onnx][review]") {
  // ONNX (and ONNX Runtime): a start before the beginning becomes 0, so x[0] is kept;
  // numpy's x[-20:-30:-1] would be empty.
  struct Case {
    int64_t start, end;
    std::vector<double> expected;
  };
  for (const Case& c : {Case{-20, -30, {0}}, Case{-20, kInt64Min, {0}}, Case{20, -30, {9, 8, 7, 6, 5, 4, 3, 2, 1, 0}},
                        Case{-20, 5, {}}, Case{kInt64Max, 7, {9, 8}}}) {
    INFO("start " << c.start << ", end " << c.end);
    ModelBuilder b(13);
    b.Input("x", {10});
    b.Initializer("starts", Int64Vector({c.start}));
    b.Initializer("ends", Int64Vector({c.end}));
    b.Initializer("axes", Int64Vector({0}));
    b.Initializer("steps", Int64Vector({-1}));
    b.Node("Slice", {"x", "starts", "ends", "axes", "steps"}, {"y"});
    b.Output("y");
    std::vector<double> x(10);
    std::iota(x.begin(), x.end(), 0.0);
    CheckValues(Run(b, {{"x", Floats(x)}}).at(0), c.expected);
  }
}

TEST_CASE("Round keeps integers beyond the mantissa and rounds halves to even", "[onnx][review]") {
  // x + 0.5 rounds to even in float32 beyond 2^23, so floor(x + 0.5) is off by one for
  // odd integers there; float16 computes in its own type, beyond 2^10.
  SECTION("float32") {
    ModelBuilder b(13);
    b.Input("x", {9});
    b.Node("Round", {"x"}, {"y"});
    b.Output("y");
    const Tensor x = Floats({8388609, -8388609, 2.5, -2.5, 0.49999997, 16777215, 1.5, -0.5, 8388607.5});
    CheckValues(Run(b, {{"x", x}}).at(0), {8388609, -8388609, 2, -2, 0, 16777215, 2, -0.0, 8388608});
  }
  SECTION("float16") {
    ModelBuilder b(13);
    b.Input("x", {4}, onnx::TensorProto::FLOAT16);
    b.Node("Round", {"x"}, {"y"});
    b.Output("y");
    CheckValues(Run(b, {{"x", Floats({1025, -1025, 2.5, 3.5}, DType::kFloat16)}}).at(0), {1025, -1025, 2, 4});
  }
  SECTION("float64") {
    ModelBuilder b(13);
    b.Input("x", {2}, onnx::TensorProto::DOUBLE);
    b.Node("Round", {"x"}, {"y"});
    b.Output("y");
    const double big = 4503599627370497.0;  // 2^52 + 1
    CheckValues(Run(b, {{"x", Floats({big, -big}, DType::kFloat64)}}).at(0), {big, -big});
  }
}

TEST_CASE("Dropout's mask has the input's type before opset 10 and bool after", "[onnx][review]") {
  for (const int64_t opset : {7, 9, 10, 13}) {
    INFO("opset " << opset);
    ModelBuilder b(opset);
    b.Input("x", {3});
    b.Node("Dropout", {"x"}, {"y", "mask"});
    b.Output("y");
    b.Output("mask");
    const auto out = Run(b, {{"x", Floats({1, 2, 3})}});
    REQUIRE(out.size() == 2);
    CheckValues(out[0], {1, 2, 3});
    CHECK(out[1].dtype() == (opset < 10 ? DType::kFloat32 : DType::kBool));
    CheckValues(out[1], {1, 1, 1});
  }
}

TEST_CASE("Clip on int64 is exact: no bound clamps nothing, bounds beyond 2^53 hold", "[onnx][review]") {
  const int64_t big = (int64_t{1} << 53) + 1;
  Tensor x({4}, DType::kInt64);
  for (const auto& [i, v] : std::vector<std::pair<int, int64_t>>{{0, kInt64Max}, {1, kInt64Min}, {2, big}, {3, 5}}) {
    x.data_as<int64_t>()[i] = v;
  }
  SECTION("no bounds") {
    ModelBuilder b(13);
    b.Input("x", {4}, onnx::TensorProto::INT64);
    b.Node("Clip", {"x"}, {"y"});
    b.Output("y");
    CheckInts(Run(b, {{"x", x}}).at(0), {kInt64Max, kInt64Min, big, 5});
  }
  SECTION("max only") {
    ModelBuilder b(13);
    b.Input("x", {4}, onnx::TensorProto::INT64);
    b.Initializer("max", Int64Scalar(big));
    b.Node("Clip", {"x", "", "max"}, {"y"});
    b.Output("y");
    CheckInts(Run(b, {{"x", x}}).at(0), {big, kInt64Min, big, 5});
  }
  SECTION("min above max gives max") {
    ModelBuilder b(13);
    b.Input("x", {4}, onnx::TensorProto::INT64);
    b.Initializer("min", Int64Scalar(10));
    b.Initializer("max", Int64Scalar(7));
    b.Node("Clip", {"x", "min", "max"}, {"y"});
    b.Output("y");
    CheckInts(Run(b, {{"x", x}}).at(0), {7, 7, 7, 7});
  }
}

TEST_CASE("Pow with an integer base and a float exponent computes in float", "[onnx][review]") {
  // Pow-12 on: T1 (the exponent) may be float for an integer T; ONNX Runtime truncates
  // pow(4, 0.5) = 2 back to int64.
  ModelBuilder b(13);
  b.Input("x", {3}, onnx::TensorProto::INT64);
  b.Initializer("e", Tensor::FromDoubles({}, std::vector<double>{0.5}, DType::kFloat32));
  b.Node("Pow", {"x", "e"}, {"y"});
  b.Output("y");
  const auto y = Run(b, {{"x", Int64Vector({4, 9, 2})}}).at(0);
  CHECK(y.dtype() == DType::kInt64);
  CheckInts(y, {2, 3, 1});
}

TEST_CASE("PRelu, ThresholdedRelu and ReduceLogSumExp on infinities", "[onnx][review]") {
  const Tensor x = Floats({kInf, -kInf, -2, 3});
  SECTION("PRelu") {
    ModelBuilder b(13);
    b.Input("x", {4});
    b.Initializer("slope", Floats({0.5}));
    b.Node("PRelu", {"x", "slope"}, {"y"});
    b.Output("y");
    CheckValues(Run(b, {{"x", x}}).at(0), {kInf, -kInf, -1, 3});
  }
  SECTION("ThresholdedRelu") {
    ModelBuilder b(13);
    b.Input("x", {4});
    b.Node("ThresholdedRelu", {"x"}, {"y"});
    b.Output("y");
    CheckValues(Run(b, {{"x", x}}).at(0), {kInf, 0, 0, 3});
  }
  SECTION("ReduceLogSumExp") {
    ModelBuilder b(13);
    b.Input("x", {3, 2});
    auto& node = b.Node("ReduceLogSumExp", {"x"}, {"y"});
    AddIntsAttr(node, "axes", {1});
    AddIntAttr(node, "keepdims", 0);
    b.Output("y");
    const Tensor in = Tensor::FromDoubles({3, 2}, std::vector<double>{-kInf, -kInf, 1, 2, kInf, 0});
    const Tensor y = Run(b, {{"x", in}}).at(0);
    CHECK(y.shape() == Shape{3});
    CHECK(y.GetDouble(0) == -kInf);
    CHECK(y.GetDouble(1) == Approx(2.3132617));
    CHECK(y.GetDouble(2) == kInf);
  }
}

TEST_CASE("ConstantOfShape keeps int64 fill values exactly", "[onnx][review]") {
  const int64_t big = (int64_t{1} << 53) + 1;
  ModelBuilder b(13);
  b.Input("x", {2}, onnx::TensorProto::INT64);
  b.Initializer("shape", Int64Vector({2}));
  auto& node = b.Node("ConstantOfShape", {"shape"}, {"fill"});
  auto* attr = node.add_attribute();
  attr->set_name("value");
  attr->set_type(onnx::AttributeProto::TENSOR);
  *attr->mutable_t() = TensorToOnnx(Int64Vector({big}), "value");
  b.Node("Add", {"x", "fill"}, {"y"});
  b.Output("y");
  CheckInts(Run(b, {{"x", Int64Vector({0, 1})}}).at(0), {big, big + 1});
}

TEST_CASE("Expand to a shape with a zero dim gives an empty tensor", "[onnx][review]") {
  ModelBuilder b(13);
  b.Input("x", {1, 3});
  b.Initializer("shape", Int64Vector({0, 3}));
  b.Node("Expand", {"x", "shape"}, {"y"});
  b.Output("y");
  // broadcast_to reads a 0 as "keep the input's dim".
  const Tensor y = Run(b, {{"x", Floats({1, 2, 3}).Reshaped({1, 3})}}).at(0);
  CHECK(y.shape() == Shape{0, 3});
}

TEST_CASE("Gemm broadcasts C of every allowed shape", "[onnx][review]") {
  // A (2, 3) . B (3, 2) = [[1, 2], [3, 4]] with these values; Y = alpha A B + beta C.
  const Tensor a = Tensor::FromDoubles({2, 3}, std::vector<double>{1, 0, 0, 0, 1, 1});
  struct Case {
    Shape c_shape;
    std::vector<double> c;
    std::vector<double> expected;  // alpha 2, beta 0.5
  };
  for (const bool constant_b : {true, false}) {
    for (const bool constant_c : {true, false}) {
      for (const Case& c : {Case{{}, {10}, {7, 9, 11, 13}}, Case{{1}, {10}, {7, 9, 11, 13}},
                            Case{{2}, {10, 20}, {7, 14, 11, 18}}, Case{{1, 2}, {10, 20}, {7, 14, 11, 18}},
                            Case{{2, 1}, {10, 20}, {7, 9, 16, 18}}, Case{{2, 2}, {10, 20, 30, 40}, {7, 14, 21, 28}}}) {
        INFO("C " << ShapeToString(c.c_shape) << (constant_b ? " constant B" : "")
                  << (constant_c ? " constant C" : ""));
        ModelBuilder b(13);
        b.Input("a", {2, 3});
        std::map<std::string, Tensor> feeds = {{"a", a}};
        // B transposed (transB 1) as given.
        const Tensor bt = Tensor::FromDoubles({2, 3}, std::vector<double>{1, 1, 2, 2, 2, 2});
        const Tensor cv = Tensor::FromDoubles(c.c_shape, c.c);
        if (constant_b) {
          b.Initializer("b", bt);
        } else {
          b.Input("b", {2, 3});
          feeds["b"] = bt;
        }
        if (constant_c) {
          b.Initializer("c", cv);
        } else {
          b.Input("c", c.c_shape);
          feeds["c"] = cv;
        }
        auto& node = b.Node("Gemm", {"a", "b", "c"}, {"y"});
        AddIntAttr(node, "transB", 1);
        auto* alpha = node.add_attribute();
        alpha->set_name("alpha");
        alpha->set_type(onnx::AttributeProto::FLOAT);
        alpha->set_f(2);
        auto* beta = node.add_attribute();
        beta->set_name("beta");
        beta->set_type(onnx::AttributeProto::FLOAT);
        beta->set_f(0.5);
        b.Output("y");
        const Tensor y = Run(b, feeds).at(0);
        CHECK(y.shape() == Shape{2, 2});
        CheckValues(y, c.expected);
      }
    }
  }
}

TEST_CASE("malformed windows and weights give kiln errors, not crashes", "[onnx][review]") {
  SECTION("zero strides with SAME padding") {
    ModelBuilder b(13);
    b.Input("x", {1, 1, 4, 4});
    auto& node = b.Node("MaxPool", {"x"}, {"y"});
    AddIntsAttr(node, "kernel_shape", {2, 2});
    AddIntsAttr(node, "strides", {0, 0});
    AddStringAttr(node, "auto_pad", "SAME_UPPER");
    b.Output("y");
    CHECK_THROWS_WITH(ImportOnnxModel(b.model), Catch::Contains("MaxPool node") && Catch::Contains("strides"));
  }
  SECTION("a Conv weight without spatial axes") {
    ModelBuilder b(13);
    b.Input("x", {1, 1, 4, 4});
    b.Initializer("w", Floats({1}));
    b.Node("Conv", {"x", "w"}, {"y"});
    b.Output("y");
    CHECK_THROWS_WITH(ImportOnnxModel(b.model), Catch::Contains("Conv node") && Catch::Contains("weight"));
  }
  SECTION("Concat of nothing") {
    ModelBuilder b(13);
    b.Input("x", {2});
    AddIntAttr(b.Node("Concat", {}, {"c"}), "axis", 0);
    b.Node("Relu", {"x"}, {"y"});
    b.Output("y");
    CHECK_THROWS_AS(ImportOnnxModel(b.model), Error);
  }
  SECTION("ConstantOfShape with a negative dim") {
    ModelBuilder b(13);
    b.Initializer("shape", Int64Vector({-2}));
    b.Node("ConstantOfShape", {"shape"}, {"y"});
    b.Output("y");
    CHECK_THROWS_WITH(ImportOnnxModel(b.model), Catch::Contains("ConstantOfShape node") && Catch::Contains("negative"));
  }
  SECTION("Clip with an empty bound") {
    ModelBuilder b(13);
    b.Input("x", {2});
    b.Initializer("min", Tensor({0}, DType::kFloat32));
    b.Node("Clip", {"x", "min"}, {"y"});
    b.Output("y");
    CHECK_THROWS_WITH(ImportOnnxModel(b.model), Catch::Contains("Clip node") && Catch::Contains("min"));
  }
}

namespace {

void CheckClose(const Tensor& actual, const Shape& shape, const std::vector<double>& expected) {
  CHECK(actual.shape() == shape);
  CheckValues(actual, expected, 1e-6);
}

// One node on graph inputs x (and constants), its first output.
Tensor RunNode(int64_t opset, const std::string& op, const Tensor& x, const std::map<std::string, Tensor>& constants,
               const std::vector<std::string>& inputs, const std::function<void(onnx::NodeProto&)>& attrs = {}) {
  ModelBuilder b(opset);
  b.Input("x", x.shape(), DTypeToOnnx(x.dtype()));
  for (const auto& [name, value] : constants) b.Initializer(name, value);
  auto& node = b.Node(op, inputs, {"y"});
  if (attrs) attrs(node);
  b.Output("y");
  return Run(b, {{"x", x}}).at(0);
}

Tensor Iota(const Shape& shape, double scale = 1.0) {
  Tensor t(shape, DType::kFloat32);
  for (int64_t i = 0; i < t.size(); ++i) t.SetDouble(i, static_cast<double>(i) * scale);
  return t;
}

}  // namespace

TEST_CASE("operator defaults and forms by opset match ONNX Runtime", "[onnx][review]") {
  const Tensor x23 = Iota({2, 3});
  SECTION("Gather with negative indices") {
    CheckClose(RunNode(13, "Gather", x23, {{"i", Int64Vector({-1, 0})}}, {"x", "i"},
                       [](auto& n) { AddIntAttr(n, "axis", 1); }),
               {2, 2}, {2, 0, 5, 3});
  }
  SECTION("Cast to bool and to int") {
    const Tensor v = Floats({0.5, -0.1, 0, std::nan("")});
    const Tensor b = RunNode(13, "Cast", v, {}, {"x"}, [](auto& n) { AddIntAttr(n, "to", onnx::TensorProto::BOOL); });
    CHECK(b.dtype() == DType::kBool);
    CheckValues(b, {1, 1, 0, 1});
    CheckValues(RunNode(13, "Cast", Floats({2.7, -2.7, 0.5, -0.5}), {}, {"x"},
                        [](auto& n) { AddIntAttr(n, "to", onnx::TensorProto::INT32); }),
                {2, -2, 0, 0});
  }
  SECTION("Softmax and LogSoftmax before opset 13 flatten from the axis (default 1)") {
    const Tensor x = Iota({2, 3, 4}, 0.1);
    const Tensor s = RunNode(11, "Softmax", x, {}, {"x"});
    CHECK(s.GetDouble(0) == Approx(0.04533001));
    CHECK(s.GetDouble(5) == Approx(0.07473655));
    const Tensor l = RunNode(11, "LogSoftmax", x, {}, {"x"}, [](auto& n) { AddIntAttr(n, "axis", -1); });
    CHECK(l.GetDouble(0) == Approx(-1.5425355));
    CHECK(l.GetDouble(3) == Approx(-1.2425356));
  }
  SECTION("AveragePool with SAME_LOWER, SAME_UPPER, ceil_mode and count_include_pad") {
    const Tensor x33 = Iota({1, 1, 3, 3});
    CheckClose(RunNode(13, "AveragePool", x33, {}, {"x"},
                       [](auto& n) {
                         AddIntsAttr(n, "kernel_shape", {2, 2});
                         AddStringAttr(n, "auto_pad", "SAME_LOWER");
                       }),
               {1, 1, 3, 3}, {0, 0.5, 1.5, 1.5, 2, 3, 4.5, 5, 6});
    CheckClose(RunNode(13, "AveragePool", x33, {}, {"x"},
                       [](auto& n) {
                         AddIntsAttr(n, "kernel_shape", {2, 2});
                         AddStringAttr(n, "auto_pad", "SAME_UPPER");
                         AddIntAttr(n, "count_include_pad", 1);
                       }),
               {1, 1, 3, 3}, {2, 3, 1.75, 5, 6, 3.25, 3.25, 3.75, 2});
    CheckClose(RunNode(13, "AveragePool", x33, {}, {"x"},
                       [](auto& n) {
                         AddIntsAttr(n, "kernel_shape", {2, 2});
                         AddIntsAttr(n, "strides", {2, 2});
                         AddIntAttr(n, "ceil_mode", 1);
                       }),
               {1, 1, 2, 2}, {2, 3.5, 6.5, 8});
    for (const int64_t cip : {0, 1}) {
      INFO("count_include_pad " << cip);
      CheckClose(RunNode(13, "AveragePool", Iota({1, 1, 4, 4}), {}, {"x"},
                         [cip](auto& n) {
                           AddIntsAttr(n, "kernel_shape", {3, 3});
                           AddIntsAttr(n, "strides", {2, 2});
                           AddIntsAttr(n, "pads", {1, 1, 1, 1});
                           AddIntAttr(n, "ceil_mode", 1);
                           AddIntAttr(n, "count_include_pad", cip);
                         }),
                 {1, 1, 3, 3},
                 cip ? std::vector<double>{10.0 / 9, 24.0 / 9, 10.0 / 6, 51.0 / 9, 10, 5.5, 25.0 / 6, 7, 3.75}
                     : std::vector<double>{2.5, 4, 5, 8.5, 10, 11, 12.5, 14, 15});
    }
  }
  SECTION("MaxPool with ceil_mode, Conv with SAME_LOWER and strides") {
    CheckClose(RunNode(13, "MaxPool", Iota({1, 1, 5, 5}), {}, {"x"},
                       [](auto& n) {
                         AddIntsAttr(n, "kernel_shape", {2, 2});
                         AddIntsAttr(n, "strides", {2, 2});
                         AddIntAttr(n, "ceil_mode", 1);
                       }),
               {1, 1, 3, 3}, {6, 8, 9, 16, 18, 19, 21, 23, 24});
    CheckClose(RunNode(13, "Conv", Iota({1, 1, 5, 5}),
                       {{"w", Tensor::FromDoubles({1, 1, 2, 2}, std::vector<double>{1, 2, 3, 4})}}, {"x", "w"},
                       [](auto& n) {
                         AddIntsAttr(n, "kernel_shape", {2, 2});
                         AddIntsAttr(n, "strides", {2, 2});
                         AddStringAttr(n, "auto_pad", "SAME_LOWER");
                       }),
               {1, 1, 3, 3}, {0, 11, 25, 50, 101, 121, 110, 201, 221});
  }
  SECTION("ArgMax with a negative axis and keepdims 0") {
    const Tensor y = RunNode(13, "ArgMax", Tensor::FromDoubles({2, 3}, std::vector<double>{1, 3, 3, 2, 1, 0}), {},
                             {"x"}, [](auto& n) {
                               AddIntAttr(n, "axis", -1);
                               AddIntAttr(n, "keepdims", 0);
                             });
    CHECK(y.dtype() == DType::kInt64);
    CheckClose(y, {2}, {1, 0});
  }
  SECTION("Mod fmod 1 on int32 takes the dividend's sign") {
    Tensor x({4}, DType::kInt32), d({4}, DType::kInt32);
    const std::vector<int32_t> xs = {-7, 7, 5, -5}, ds = {3, -3, 2, 2};
    std::copy(xs.begin(), xs.end(), x.data_as<int32_t>());
    std::copy(ds.begin(), ds.end(), d.data_as<int32_t>());
    CheckInts(RunNode(13, "Mod", x, {{"d", d}}, {"x", "d"}, [](auto& n) { AddIntAttr(n, "fmod", 1); }), {-1, 1, 1, -1});
  }
  SECTION("LayerNormalization over axis 1 with its three outputs") {
    ModelBuilder b(17);
    b.Input("x", {2, 2, 2});
    b.Initializer("s", Tensor::FromDoubles({2, 2}, std::vector<double>{1, 2, 3, 4}));
    b.Initializer("b", Tensor::FromDoubles({2, 2}, std::vector<double>{0, 1, 0, 1}));
    auto& node = b.Node("LayerNormalization", {"x", "s", "b"}, {"y", "mean", "inv_std"});
    AddIntAttr(node, "axis", 1);
    auto* eps = node.add_attribute();
    eps->set_name("epsilon");
    eps->set_type(onnx::AttributeProto::FLOAT);
    eps->set_f(0.5);
    b.Output("y");
    b.Output("mean");
    b.Output("inv_std");
    const auto out = Run(b, {{"x", Tensor::FromDoubles({2, 2, 2}, std::vector<double>{1, 2, 3, 5, 0, 0, 4, 8})}});
    REQUIRE(out.size() == 3);
    CheckClose(out[0], {2, 2, 2},
               {-1.06748998, 0.08500856, 0.45749572, 6.48994875, -0.88465172, -0.76930344, 0.88465172, 6.89767838});
    CheckClose(out[1], {2, 1, 1}, {2.75, 3});
    CheckClose(out[2], {2, 1, 1}, {0.60999429, 0.29488391});
  }
  SECTION("ReduceSum at opset 13: empty axes reduce all unless noop_with_empty_axes") {
    CheckClose(RunNode(13, "ReduceSum", x23, {{"a", Tensor({0}, DType::kInt64)}}, {"x", "a"}), {1, 1}, {15});
    CheckClose(RunNode(13, "ReduceSum", x23, {{"a", Tensor({0}, DType::kInt64)}}, {"x", "a"},
                       [](auto& n) { AddIntAttr(n, "noop_with_empty_axes", 1); }),
               {2, 3}, {0, 1, 2, 3, 4, 5});
  }
  SECTION("Split at opset 13 with sizes as an input and a negative axis") {
    ModelBuilder b(13);
    b.Input("x", {2, 3});
    b.Initializer("s", Int64Vector({1, 2}));
    AddIntAttr(b.Node("Split", {"x", "s"}, {"a", "b"}), "axis", -1);
    b.Output("a");
    b.Output("b");
    const auto out = Run(b, {{"x", x23}});
    REQUIRE(out.size() == 2);
    CheckClose(out[0], {2, 1}, {0, 3});
    CheckClose(out[1], {2, 2}, {1, 2, 4, 5});
  }
  SECTION("Where broadcasts all three inputs") {
    ModelBuilder b(13);
    b.Input("c", {2, 1}, onnx::TensorProto::BOOL);
    b.Input("a", {3});
    b.Input("b", {1});
    b.Node("Where", {"c", "a", "b"}, {"y"});
    b.Output("y");
    const Tensor c = Tensor::FromDoubles({2, 1}, std::vector<double>{1, 0}, DType::kBool);
    CheckClose(Run(b, {{"c", c}, {"a", Floats({1, 2, 3})}, {"b", Floats({9})}}).at(0), {2, 3}, {1, 2, 3, 9, 9, 9});
  }
  SECTION("Gemm with transA and no C") {
    ModelBuilder b(13);
    b.Input("a", {3, 2});
    b.Input("b", {3, 2});
    AddIntAttr(b.Node("Gemm", {"a", "b"}, {"y"}), "transA", 1);
    b.Output("y");
    CheckClose(Run(b, {{"a", Iota({3, 2})}, {"b", Iota({3, 2})}}).at(0), {2, 2}, {20, 26, 26, 35});
  }
  SECTION("HardSigmoid keeps NaN") {
    CheckClose(RunNode(13, "HardSigmoid", Floats({-3, 0, std::nan("")}), {}, {"x"}), {3}, {0, 0.5, std::nan("")});
  }
}

TEST_CASE("ONNX names that look like generated names keep inputs and parameters apart", "[onnx][review]") {
  // Graph inputs keep their names (they are fed by name); parameters and nodes named
  // like them, or like what the importer generates, get other names.
  ModelBuilder b(13);
  b.Input("Add_node", {2});
  b.Input("y_identity", {2});
  b.Initializer("Add_node_1", Floats({10, 20}));
  b.Initializer("w", Floats({1, 2}));
  b.Node("Add", {"Add_node", "Add_node_1"}, {"sum"}, "Add_node");
  b.Node("Mul", {"sum", "y_identity"}, {"Mul_node"}, "Mul_node");
  b.Node("Identity", {"w"}, {"y"}, "Identity_node");
  b.Output("Mul_node");
  b.Output("y");
  const Graph graph = ImportOnnxModel(b.model);
  const auto out = Interpret(graph, {{"Add_node", Floats({1, 2})}, {"y_identity", Floats({3, 4})}});
  REQUIRE(out.size() == 2);
  CheckValues(out[0], {33, 88});
  CheckValues(out[1], {1, 2});
  CHECK(graph.output_names == std::vector<std::string>{"Mul_node", "y"});
}
