// Neural-network layers: Convolution, Pooling, BatchNorm, Dropout. Expected values marked
// "MXNet 1.9.1" were computed with real MXNet (mx.nd.<Op>) and pasted in.
#include <catch2/catch.hpp>
#include <cmath>
#include <random>

#include "runtime/error.h"
#include "tests/op_test_util.h"

using namespace kiln;
using namespace kiln::testing;

namespace {

const OpDef& Op(const std::string& name) {
  return OpRegistry::Global().Get(name);
}

Attrs Parse(const std::string& op, const AttrMap& attr_map) {
  std::map<std::string, AttrValue> values;
  for (const auto& [key, arg] : attr_map) values[key] = arg.value;
  return Op(op).ParseAttrs(values, "test");
}

// Input shapes after inference (parameter shapes filled from the data shape).
std::vector<ShapeSlot> InferInputs(const std::string& op, const std::vector<ShapeSlot>& given,
                                   const AttrMap& attr_map) {
  const Attrs attrs = Parse(op, attr_map);
  std::vector<ShapeSlot> inputs = given;
  inputs.resize(Op(op).NumInputs(attrs));
  std::vector<ShapeSlot> outputs(Op(op).NumOutputs(attrs));
  Op(op).InferShape(attrs, inputs, outputs);
  return inputs;
}

std::pair<std::vector<DTypeSlot>, std::vector<DTypeSlot>> InferTypes(const std::string& op,
                                                                     const std::vector<DTypeSlot>& given,
                                                                     const AttrMap& attr_map) {
  const Attrs attrs = Parse(op, attr_map);
  std::vector<DTypeSlot> inputs = given;
  inputs.resize(Op(op).NumInputs(attrs));
  std::vector<DTypeSlot> outputs(Op(op).NumOutputs(attrs));
  Op(op).InferType(attrs, inputs, outputs);
  return {inputs, outputs};
}

// Convolution as im2col + matrix product, written independently of the reference: per
// sample and group, gather every receptive field into a column, then multiply by the
// (filters x patch) weight matrix.
Tensor Im2ColConvolution(const Tensor& x, const Tensor& w, const Tensor* bias, int64_t groups, int64_t sh, int64_t sw,
                         int64_t ph, int64_t pw, int64_t dh, int64_t dw) {
  const int64_t n_batch = x.shape()[0], c_in = x.shape()[1], h_in = x.shape()[2], w_in = x.shape()[3];
  const int64_t f_out = w.shape()[0], kh = w.shape()[2], kw = w.shape()[3];
  const int64_t h_out = (h_in + 2 * ph - dh * (kh - 1) - 1) / sh + 1;
  const int64_t w_out = (w_in + 2 * pw - dw * (kw - 1) - 1) / sw + 1;
  const int64_t cg = c_in / groups, fg = f_out / groups, patch = cg * kh * kw, pixels = h_out * w_out;
  Tensor y({n_batch, f_out, h_out, w_out}, x.dtype());
  for (int64_t n = 0; n < n_batch; ++n) {
    for (int64_t g = 0; g < groups; ++g) {
      std::vector<double> cols(static_cast<size_t>(patch * pixels), 0.0);
      for (int64_t row = 0; row < patch; ++row) {
        const int64_t c = row / (kh * kw), i = row / kw % kh, j = row % kw;
        for (int64_t col = 0; col < pixels; ++col) {
          const int64_t ih = col / w_out * sh - ph + i * dh, iw = col % w_out * sw - pw + j * dw;
          if (ih >= 0 && ih < h_in && iw >= 0 && iw < w_in) {
            cols[row * pixels + col] = x.GetDouble(((n * c_in + g * cg + c) * h_in + ih) * w_in + iw);
          }
        }
      }
      for (int64_t f = 0; f < fg; ++f) {
        const int64_t filter = g * fg + f;
        for (int64_t col = 0; col < pixels; ++col) {
          double acc = bias ? bias->GetDouble(filter) : 0.0;
          for (int64_t row = 0; row < patch; ++row) acc += w.GetDouble(filter * patch + row) * cols[row * pixels + col];
          y.SetDouble((n * f_out + filter) * pixels + col, acc);
        }
      }
    }
  }
  return y;
}

}  // namespace

// ------------------------------------------------------------------------- Convolution

TEST_CASE("Convolution declares MXNet's inputs, defaults and pattern", "[nn][conv]") {
  const Attrs attrs = Parse("Convolution", {{"kernel", {3, 3}}, {"num_filter", 4}});
  CHECK(Op("Convolution").InputNames(attrs) == std::vector<std::string>{"data", "weight", "bias"});
  CHECK(Op("Convolution")
            .InputNames(Parse("Convolution", {{"kernel", "(3, 3)"}, {"num_filter", 4}, {"no_bias", "True"}})) ==
        std::vector<std::string>{"data", "weight"});
  CHECK(Op("Convolution").OutputNames(attrs) == std::vector<std::string>{"output"});
  CHECK(Op("Convolution").pattern() == OpPattern::kGemm);
  CHECK(attrs.Int("num_group") == 1);
  CHECK(attrs.Ints("stride").empty());
  CHECK(attrs.Int("workspace") == 1024);
  // MXNet-runtime attributes are accepted and ignored.
  CHECK_NOTHROW(Parse("Convolution", {{"kernel", {3, 3}},
                                      {"num_filter", 4},
                                      {"workspace", 512},
                                      {"cudnn_tune", "fastest"},
                                      {"cudnn_off", true},
                                      {"layout", "NCHW"}}));
}

TEST_CASE("Convolution infers weight, bias and output shapes", "[nn][conv]") {
  // MXNet 1.9.1: infer_shape(data=(2,3,5,5)) gives weight (4,3,3,3), bias (4,), output (2,4,3,3).
  const auto inputs = InferInputs("Convolution", {Shape{2, 3, 5, 5}}, {{"kernel", {3, 3}}, {"num_filter", 4}});
  CHECK(*inputs[1] == Shape{4, 3, 3, 3});
  CHECK(*inputs[2] == Shape{4});
  CHECK(InferOpShapes("Convolution", {{2, 3, 5, 5}}, {{"kernel", {3, 3}}, {"num_filter", 4}})[0] == Shape{2, 4, 3, 3});
  // MXNet 1.9.1: stride (2,3), pad (0,2) on (2,6,7,8) gives (2,4,3,4).
  CHECK(InferOpShapes("Convolution", {{2, 6, 7, 8}},
                      {{"kernel", {3, 3}}, {"num_filter", 4}, {"stride", {2, 3}}, {"pad", {0, 2}}})[0] ==
        Shape{2, 4, 3, 4});
  // MXNet 1.9.1: dilate (2,2), pad (1,1) on (1,6,4,5) gives (1,4,2,3).
  CHECK(InferOpShapes("Convolution", {{1, 6, 4, 5}},
                      {{"kernel", {3, 3}}, {"num_filter", 4}, {"dilate", {2, 2}}, {"pad", {1, 1}}})[0] ==
        Shape{1, 4, 2, 3});
  // Grouped: weight has C/num_group input channels.
  const auto grouped =
      InferInputs("Convolution", {Shape{1, 6, 5, 5}}, {{"kernel", {3, 3}}, {"num_filter", 3}, {"num_group", 3}});
  CHECK(*grouped[1] == Shape{3, 2, 3, 3});
  const auto no_bias =
      InferInputs("Convolution", {Shape{1, 6, 5, 5}}, {{"kernel", {1, 1}}, {"num_filter", 2}, {"no_bias", true}});
  CHECK(no_bias.size() == 2);
  // Size-1 everything; kernel exactly the padded input.
  CHECK(InferOpShapes("Convolution", {{1, 1, 1, 1}}, {{"kernel", {1, 1}}, {"num_filter", 1}})[0] == Shape{1, 1, 1, 1});
  CHECK(InferOpShapes("Convolution", {{1, 1, 1, 1}}, {{"kernel", {3, 3}}, {"num_filter", 1}, {"pad", {1, 1}}})[0] ==
        Shape{1, 1, 1, 1});
  // Unknown data: output stays unknown, bias still comes from num_filter.
  const auto unknown = InferInputs("Convolution", {std::nullopt}, {{"kernel", {3, 3}}, {"num_filter", 4}});
  CHECK_FALSE(unknown[0].has_value());
  CHECK_FALSE(unknown[1].has_value());
  CHECK(*unknown[2] == Shape{4});
}

TEST_CASE("Convolution rejects bad shapes and attributes", "[nn][conv]") {
  const AttrMap conv = {{"kernel", {3, 3}}, {"num_filter", 4}};
  CHECK_THROWS_WITH(InferOpShapes("Convolution", {{2, 6, 7}}, conv),
                    Catch::Contains("input 'data': expected 4-d (N,C,H,W), given (2,6,7)"));
  CHECK_THROWS_WITH(InferOpShapes("Convolution", {{1, 6, 2, 5}}, conv),
                    Catch::Contains("kernel (3,3) is larger than the padded input (2,5)"));
  CHECK_THROWS_WITH(
      InferOpShapes("Convolution", {{1, 6, 4, 5}}, {{"kernel", {3, 3}}, {"num_filter", 4}, {"dilate", {2, 2}}}),
      Catch::Contains("kernel (5,5) (dilated) is larger than the padded input (4,5)"));
  CHECK_THROWS_WITH(
      InferOpShapes("Convolution", {{1, 4, 5, 5}}, {{"kernel", {3, 3}}, {"num_filter", 3}, {"num_group", 3}}),
      Catch::Contains("4 channels (shape (1,4,5,5)) are not divisible by num_group 3"));
  CHECK_THROWS_WITH(InferInputs("Convolution", {Shape{2, 6, 7, 7}, Shape{4, 5, 3, 3}}, conv),
                    Catch::Contains("input 'weight': expected shape (4,6,3,3), given (4,5,3,3)"));
  CHECK_THROWS_WITH(InferInputs("Convolution", {Shape{2, 6, 7, 7}, std::nullopt, Shape{3}}, conv),
                    Catch::Contains("input 'bias': expected shape (4), given (3)"));

  CHECK_THROWS_WITH(Parse("Convolution", {{"kernel", {3, 3}}, {"num_filter", 3}, {"num_group", 2}}),
                    Catch::Contains("num_filter 3 is not divisible by num_group 2"));
  CHECK_THROWS_WITH(Parse("Convolution", {{"kernel", {3}}, {"num_filter", 3}}),
                    Catch::Contains("attribute 'kernel': expected 2 elements (kh, kw), given (3,)"));
  CHECK_THROWS_WITH(Parse("Convolution", {{"kernel", {3, 3}}, {"num_filter", 3}, {"stride", {2}}}),
                    Catch::Contains("attribute 'stride': expected 2 elements (h, w) or (), given (2,)"));
  CHECK_THROWS_WITH(Parse("Convolution", {{"kernel", {3, 3}}, {"num_filter", 3}, {"pad", {1, 1, 1}}}),
                    Catch::Contains("attribute 'pad'"));
  CHECK_THROWS_WITH(Parse("Convolution", {{"kernel", {3, 3}}, {"num_filter", 3}, {"stride", {0, 1}}}),
                    Catch::Contains("must be >= 1"));
  CHECK_THROWS_WITH(Parse("Convolution", {{"kernel", {3, 3}}, {"num_filter", 0}}), Catch::Contains("must be >= 1"));
  CHECK_THROWS_WITH(Parse("Convolution", {{"kernel", {3, 3}}, {"num_filter", 2}, {"num_group", 0}}),
                    Catch::Contains("must be >= 1"));
  CHECK_THROWS_WITH(Parse("Convolution", {{"kernel", {3, 3}}, {"num_filter", 2}, {"pad", {-1, 0}}}),
                    Catch::Contains("must be >= 0"));
  CHECK_THROWS_WITH(Parse("Convolution", {{"num_filter", 2}}), Catch::Contains("required attribute 'kernel'"));
  CHECK_THROWS_WITH(Parse("Convolution", {{"kernel", {3, 3}}}), Catch::Contains("required attribute 'num_filter'"));
  CHECK_THROWS_WITH(Parse("Convolution", {{"kernel", {3, 3}}, {"num_filter", 2}, {"layout", "NHWC"}}),
                    Catch::Contains("'NHWC' is not supported"));
  CHECK_THROWS_WITH(Parse("Convolution", {{"kernel", {3, 3}}, {"num_filter", 2}, {"layout", "CHWN"}}),
                    Catch::Contains("attribute 'layout'"));
  CHECK_THROWS_WITH(Parse("Convolution", {{"kernel", {3, 3}}, {"num_filter", 2}, {"cudnn_tune", "slowest"}}),
                    Catch::Contains("attribute 'cudnn_tune'"));
}

TEST_CASE("Convolution dtypes: floating point only, one dtype", "[nn][conv]") {
  const AttrMap conv = {{"kernel", {3, 3}}, {"num_filter", 4}};
  const auto [in16, out16] = InferTypes("Convolution", {DType::kFloat16}, conv);
  CHECK(*in16[1] == DType::kFloat16);
  CHECK(*in16[2] == DType::kFloat16);
  CHECK(*out16[0] == DType::kFloat16);
  CHECK_THROWS_WITH(
      InferTypes("Convolution", {DType::kInt32}, conv),
      Catch::Contains(
          "input 'data': expected a floating-point dtype (float16, bfloat16, float32, float64), given int32"));
  CHECK_THROWS_WITH(InferTypes("Convolution", {std::nullopt, DType::kInt8}, conv),
                    Catch::Contains("input 'weight': expected a floating-point dtype"));
  CHECK_THROWS_WITH(InferTypes("Convolution", {DType::kFloat32, DType::kFloat64}, conv),
                    Catch::Contains("input 'weight': expected dtype float32, given float64"));
}

TEST_CASE("Convolution hand-checked: 3x3 arange, 2x2 arange kernel, bias 1, stride 2, pad 1", "[nn][conv]") {
  const auto out = RunOp("Convolution", {Arange({1, 1, 3, 3}), Arange({1, 1, 2, 2}), Values({1}, {1})},
                         {{"kernel", {2, 2}}, {"num_filter", 1}, {"stride", {2, 2}}, {"pad", {1, 1}}});
  // MXNet 1.9.1: [[1, 9], [22, 44]]. By hand, the top-left window sees only x[0,0]=0 (times
  // w[1,1]=3), so 0 + 1; the top-right sees x[0,1]=1, x[0,2]=2 times w[1,0]=2, w[1,1]=3: 8 + 1.
  KILN_CHECK_CLOSE(out[0], Values({1, 1, 2, 2}, {1, 9, 22, 44}), 0, 0);
}

TEST_CASE("Convolution hand-checked: grouped", "[nn][conv]") {
  // data arange(72)/10 as (2,4,3,3), weight (arange(32)-8)/10 as (4,2,2,2), num_group 2.
  Tensor x = Arange({2, 4, 3, 3});
  for (int64_t i = 0; i < x.size(); ++i) x.SetDouble(i, x.GetDouble(i) / 10);
  Tensor w = Arange({4, 2, 2, 2});
  for (int64_t i = 0; i < w.size(); ++i) w.SetDouble(i, (w.GetDouble(i) - 8) / 10);
  const auto out = RunOp("Convolution", {x, w, Values({4}, {0.5, -0.5, 1, -1})},
                         {{"kernel", {2, 2}}, {"num_filter", 4}, {"num_group", 2}});
  // MXNet 1.9.1.
  const Tensor expected =
      Values({2, 4, 2, 2}, {-0.98, -1.34, -2.06, -2.42, 2.18,  2.46,   3.02,   3.30,   24.40,  25.32, 27.16,
                            28.08, 38.08, 39.64, 42.76, 44.32, -13.94, -14.30, -15.02, -15.38, 12.26, 12.54,
                            13.10, 13.38, 57.52, 58.44, 60.28, 61.20,  94.24,  95.80,  98.92,  100.48});
  KILN_CHECK_CLOSE(out[0], expected, 1e-5, 1e-5);
}

TEST_CASE("Convolution hand-checked: depthwise with pad and dilation, no bias", "[nn][conv]") {
  const Tensor w = Values({3, 1, 2, 2}, {1, 0, -1, 2, 1, 0, 0, 0.5, -2, 1, 1, 1});
  const auto out = RunOp("Convolution", {Arange({1, 3, 4, 4}), w},
                         {{"kernel", {2, 2}},
                          {"num_filter", 3},
                          {"num_group", 3},
                          {"no_bias", true},
                          {"pad", {1, 1}},
                          {"dilate", {2, 2}}});
  // MXNet 1.9.1.
  const Tensor expected =
      Values({1, 3, 4, 4}, {10,   8,  9,    -6, 18,   12, 14,   -8,  26,   20, 22,   -8,  0,  8,   9,   10,
                            10.5, 11, 11.5, 0,  12.5, 29, 30.5, 18,  14.5, 35, 36.5, 22,  0,  24,  25,  26,
                            37,   74, 76,   38, 74,   52, 53,   -26, 82,   56, 57,   -30, 41, -38, -39, -84});
  KILN_CHECK_CLOSE(out[0], expected, 0, 1e-6);
}

TEST_CASE("Convolution hand-checked: float64, asymmetric stride, dilation and padding", "[nn][conv]") {
  Tensor x = Arange({1, 2, 5, 6}, DType::kFloat64);
  for (int64_t i = 0; i < x.size(); ++i) x.SetDouble(i, x.GetDouble(i) / 7);
  Tensor w = Arange({3, 2, 2, 3}, DType::kFloat64);
  for (int64_t i = 0; i < w.size(); ++i) w.SetDouble(i, (w.GetDouble(i) - 15) / 9);
  const auto out = RunOp("Convolution", {x, w},
                         {{"kernel", {2, 3}},
                          {"num_filter", 3},
                          {"no_bias", true},
                          {"stride", {2, 1}},
                          {"dilate", {1, 2}},
                          {"pad", {0, 1}}});
  CHECK(out[0].dtype() == DType::kFloat64);
  // MXNet 1.9.1 (float64).
  const Tensor expected =
      Values({1, 3, 2, 4},
             {-16.507936507936506, -26.507936507936513, -28.317460317460316, -20.317460317460316, -30.22222222222222,
              -48.22222222222222,  -50.031746031746025, -35.55555555555556,  13.968253968253968,  19.206349206349206,
              19.68253968253968,   11.682539682539682,  18.539682539682538,  24.920634920634917,  25.396825396825392,
              14.730158730158731,  44.44444444444444,   64.92063492063492,   67.68253968253968,   43.68253968253968,
              67.3015873015873,    98.06349206349208,   100.82539682539684,  65.01587301587301},
             DType::kFloat64);
  KILN_CHECK_CLOSE(out[0], expected, 1e-12, 1e-12);
}

TEST_CASE("Convolution agrees with an im2col formulation on random shapes", "[nn][conv]") {
  std::mt19937_64 rng(2024);
  const auto pick = [&](int64_t low, int64_t high) { return std::uniform_int_distribution<int64_t>(low, high)(rng); };
  int checked = 0;
  for (int trial = 0; trial < 60; ++trial) {
    const int64_t groups = pick(1, 3);
    const int64_t c = groups * pick(1, 3), f = groups * pick(1, 3);
    const int64_t n = pick(1, 2), h = pick(1, 9), wd = pick(1, 9);
    const int64_t kh = pick(1, 4), kw = pick(1, 4), sh = pick(1, 3), sw = pick(1, 3);
    const int64_t ph = pick(0, 2), pw = pick(0, 2), dh = pick(1, 2), dw = pick(1, 2);
    if (dh * (kh - 1) + 1 > h + 2 * ph || dw * (kw - 1) + 1 > wd + 2 * pw) continue;
    const bool bias = trial % 2 == 0;
    INFO("trial " << trial << ": data (" << n << "," << c << "," << h << "," << wd << ") filters " << f << " groups "
                  << groups << " kernel (" << kh << "," << kw << ") stride (" << sh << "," << sw << ") pad (" << ph
                  << "," << pw << ") dilate (" << dh << "," << dw << ") bias " << bias);
    const Tensor x = RandomTensor({n, c, h, wd}, 100 + trial);
    const Tensor w = RandomTensor({f, c / groups, kh, kw}, 200 + trial);
    const Tensor b = RandomTensor({f}, 300 + trial);
    std::vector<Tensor> inputs = {x, w};
    if (bias) inputs.push_back(b);
    const auto out = RunOp("Convolution", inputs,
                           {{"kernel", {kh, kw}},
                            {"num_filter", f},
                            {"num_group", groups},
                            {"no_bias", !bias},
                            {"stride", {sh, sw}},
                            {"pad", {ph, pw}},
                            {"dilate", {dh, dw}}});
    KILN_CHECK_CLOSE(out[0], Im2ColConvolution(x, w, bias ? &b : nullptr, groups, sh, sw, ph, pw, dh, dw), 1e-5, 1e-5);
    ++checked;
  }
  CHECK(checked >= 30);
}

TEST_CASE("Convolution handles a moderate size quickly and float16 data", "[nn][conv]") {
  const Tensor x = RandomTensor({1, 16, 32, 32}, 1);
  const Tensor w = RandomTensor({16, 16, 3, 3}, 2);
  const Tensor b = RandomTensor({16}, 3);
  const auto out = RunOp("Convolution", {x, w, b}, {{"kernel", {3, 3}}, {"num_filter", 16}, {"pad", {1, 1}}});
  KILN_CHECK_CLOSE(out[0], Im2ColConvolution(x, w, &b, 1, 1, 1, 1, 1, 1, 1), 1e-5, 1e-5);

  const auto half =
      RunOp("Convolution", {x.CastTo(DType::kFloat16), w.CastTo(DType::kFloat16), b.CastTo(DType::kFloat16)},
            {{"kernel", {3, 3}}, {"num_filter", 16}, {"pad", {1, 1}}});
  CHECK(half[0].dtype() == DType::kFloat16);
  KILN_CHECK_CLOSE(half[0], out[0].CastTo(DType::kFloat16), 2e-2, 2e-2);
}

// ------------------------------------------------------------------------- Pooling

TEST_CASE("Pooling shapes follow MXNet's conventions", "[nn][pool]") {
  const auto shape = [](const AttrMap& attrs) { return InferOpShapes("Pooling", {{1, 2, 3, 3}}, attrs)[0]; };
  // All MXNet 1.9.1 infer_shape results on data (1,2,3,3).
  CHECK(shape({{"kernel", {2, 2}}}) == Shape{1, 2, 2, 2});
  CHECK(shape({{"kernel", {2, 2}}, {"pooling_convention", "full"}}) == Shape{1, 2, 2, 2});
  CHECK(shape({{"kernel", {2, 2}}, {"stride", {2, 2}}}) == Shape{1, 2, 1, 1});
  CHECK(shape({{"kernel", {2, 2}}, {"stride", {2, 2}}, {"pooling_convention", "full"}}) == Shape{1, 2, 2, 2});
  // The last window starts in the padding and is still kept under 'full'.
  CHECK(shape({{"kernel", {2, 2}}, {"stride", {2, 2}}, {"pad", {1, 1}}, {"pooling_convention", "full"}}) ==
        Shape{1, 2, 3, 3});
  CHECK(shape({{"kernel", {3, 3}}, {"stride", {2, 2}}, {"pad", {1, 1}}, {"pooling_convention", "full"}}) ==
        Shape{1, 2, 2, 2});
  CHECK(shape({{"kernel", {2, 2}}, {"pad", {2, 2}}}) == Shape{1, 2, 6, 6});
  CHECK(shape({{"global_pool", true}}) == Shape{1, 2, 1, 1});
  CHECK(shape({{"global_pool", true}, {"kernel", {5, 5}}, {"pad", {1, 1}}}) == Shape{1, 2, 1, 1});
  CHECK(InferOpShapes("Pooling", {{2, 3, 7, 4}},
                      {{"kernel", {3, 1}}, {"stride", {2, 3}}, {"pooling_convention", "full"}})[0] ==
        Shape{2, 3, 3, 2});
  CHECK(Op("Pooling").pattern() == OpPattern::kOpaque);
}

TEST_CASE("Pooling rejects bad shapes and attributes", "[nn][pool]") {
  CHECK_THROWS_WITH(InferOpShapes("Pooling", {{1, 2, 3, 3}}, {{"kernel", {4, 4}}}),
                    Catch::Contains("kernel (4,4) is larger than the padded input (3,3)"));
  CHECK_THROWS_WITH(InferOpShapes("Pooling", {{1, 2, 3, 3}}, {{"kernel", {4, 2}}, {"pooling_convention", "full"}}),
                    Catch::Contains("kernel (4,2) is larger than the padded input (3,3)"));
  CHECK_THROWS_WITH(InferOpShapes("Pooling", {{2, 9}}, {{"kernel", {2, 2}}}),
                    Catch::Contains("input 'data': expected 4-d (N,C,H,W), given (2,9)"));
  CHECK_THROWS_WITH(Parse("Pooling", {}), Catch::Contains("only global_pool=True may omit the kernel"));
  CHECK_THROWS_WITH(Parse("Pooling", {{"kernel", {2}}}), Catch::Contains("attribute 'kernel'"));
  CHECK_THROWS_WITH(Parse("Pooling", {{"kernel", {2, 2}}, {"stride", {1}}}), Catch::Contains("attribute 'stride'"));
  CHECK_THROWS_WITH(Parse("Pooling", {{"kernel", {0, 2}}}), Catch::Contains("must be >= 1"));
  CHECK_THROWS_WITH(Parse("Pooling", {{"kernel", {2, 2}}, {"pool_type", "median"}}),
                    Catch::Contains("attribute 'pool_type': expected one of {avg, lp, max, sum}"));
  CHECK_THROWS_WITH(Parse("Pooling", {{"kernel", {2, 2}}, {"pooling_convention", "same"}}),
                    Catch::Contains("'same' is not supported"));
  CHECK_THROWS_WITH(Parse("Pooling", {{"kernel", {2, 2}}, {"pool_type", "lp"}}),
                    Catch::Contains("needs p_value 1, 2 or 3, given None"));
  CHECK_THROWS_WITH(Parse("Pooling", {{"kernel", {2, 2}}, {"pool_type", "lp"}, {"p_value", 4}}),
                    Catch::Contains("given 4"));
  CHECK_THROWS_WITH(Parse("Pooling", {{"kernel", {2, 2}}, {"layout", "NHWC"}}),
                    Catch::Contains("'NHWC' is not supported"));
  CHECK_NOTHROW(Parse(
      "Pooling", {{"kernel", "(2, 2)"}, {"cudnn_off", "True"}, {"layout", "NCHW"}, {"count_include_pad", "None"}}));
  CHECK_THROWS_WITH(RunOp("Pooling", {Arange({1, 1, 2, 2}, DType::kInt32)}, {{"kernel", {2, 2}}}),
                    Catch::Contains("floating-point dtype"));
}

TEST_CASE("Pooling hand-checked on arange(18) as (1,2,3,3), kernel 2", "[nn][pool]") {
  const Tensor x = Arange({1, 2, 3, 3});
  const auto pool = [&](const AttrMap& extra) {
    AttrMap attrs = {{"kernel", {2, 2}}};
    attrs.insert(attrs.end(), extra.begin(), extra.end());
    return RunOp("Pooling", {x}, attrs)[0];
  };
  // MXNet 1.9.1 throughout.
  KILN_CHECK_CLOSE(pool({}), Values({1, 2, 2, 2}, {4, 5, 7, 8, 13, 14, 16, 17}), 0, 0);
  KILN_CHECK_CLOSE(pool({{"pool_type", "avg"}}), Values({1, 2, 2, 2}, {2, 3, 5, 6, 11, 12, 14, 15}), 0, 0);
  KILN_CHECK_CLOSE(pool({{"pool_type", "sum"}}), Values({1, 2, 2, 2}, {8, 12, 20, 24, 44, 48, 56, 60}), 0, 0);
  KILN_CHECK_CLOSE(pool({{"pool_type", "max"}, {"pooling_convention", "full"}}),
                   Values({1, 2, 2, 2}, {4, 5, 7, 8, 13, 14, 16, 17}), 0, 0);
  KILN_CHECK_CLOSE(pool({{"pool_type", "avg"}, {"pooling_convention", "full"}}),
                   Values({1, 2, 2, 2}, {2, 3, 5, 6, 11, 12, 14, 15}), 0, 0);

  // Stride 2 'full': partial windows at the edge; avg divides by the clipped window.
  KILN_CHECK_CLOSE(pool({{"stride", {2, 2}}, {"pooling_convention", "full"}}),
                   Values({1, 2, 2, 2}, {4, 5, 7, 8, 13, 14, 16, 17}), 0, 0);
  KILN_CHECK_CLOSE(pool({{"pool_type", "avg"}, {"stride", {2, 2}}, {"pooling_convention", "full"}}),
                   Values({1, 2, 2, 2}, {2, 3.5, 6.5, 8, 11, 12.5, 15.5, 17}), 0, 0);
  KILN_CHECK_CLOSE(pool({{"stride", {2, 2}}, {"pad", {1, 1}}}), Values({1, 2, 2, 2}, {0, 2, 6, 8, 9, 11, 15, 17}), 0,
                   0);

  // Pad 1, stride 1.
  KILN_CHECK_CLOSE(pool({{"pad", {1, 1}}}),
                   Values({1, 2, 4, 4}, {0, 1,  2,  2,  3,  4,  5,  5,  6,  7,  8,  8,  6,  7,  8,  8,
                                         9, 10, 11, 11, 12, 13, 14, 14, 15, 16, 17, 17, 15, 16, 17, 17}),
                   0, 0);
  KILN_CHECK_CLOSE(
      pool({{"pool_type", "avg"}, {"pad", {1, 1}}}),
      Values({1, 2, 4, 4}, {0,    0.25, 0.75, 0.5,  0.75, 2,  3,  1.75, 2.25, 5,  6,  3.25, 1.5,  3.25, 3.75, 2,
                            2.25, 4.75, 5.25, 2.75, 5.25, 11, 12, 6.25, 6.75, 14, 15, 7.75, 3.75, 7.75, 8.25, 4.25}),
      0, 0);
  KILN_CHECK_CLOSE(pool({{"pool_type", "avg"}, {"pad", {1, 1}}, {"count_include_pad", false}}),
                   Values({1, 2, 4, 4}, {0, 0.5, 1.5,  2,  1.5,  2,  3,  3.5,  4.5,  5,  6,  6.5,  6,  6.5,  7.5,  8,
                                         9, 9.5, 10.5, 11, 10.5, 11, 12, 12.5, 13.5, 14, 15, 15.5, 15, 15.5, 16.5, 17}),
                   0, 0);

  // Pad 1, stride 2, 'full': the last row and column of windows lie wholly in the
  // padding: max gives float32's lowest value, avg and sum give 0.
  const double lowest = -3.4028234663852886e+38;
  KILN_CHECK_CLOSE(pool({{"stride", {2, 2}}, {"pad", {1, 1}}, {"pooling_convention", "full"}}),
                   Values({1, 2, 3, 3}, {0, 2, lowest, 6, 8, lowest, lowest, lowest, lowest,  //
                                         9, 11, lowest, 15, 17, lowest, lowest, lowest, lowest}),
                   0, 0);
  KILN_CHECK_CLOSE(pool({{"pool_type", "avg"}, {"stride", {2, 2}}, {"pad", {1, 1}}, {"pooling_convention", "full"}}),
                   Values({1, 2, 3, 3}, {0, 0.75, 0, 2.25, 6, 0, 0, 0, 0, 2.25, 5.25, 0, 6.75, 15, 0, 0, 0, 0}), 0, 0);
  KILN_CHECK_CLOSE(pool({{"pool_type", "avg"},
                         {"stride", {2, 2}},
                         {"pad", {1, 1}},
                         {"pooling_convention", "full"},
                         {"count_include_pad", false}}),
                   Values({1, 2, 3, 3}, {0, 1.5, 0, 4.5, 6, 0, 0, 0, 0, 9, 10.5, 0, 13.5, 15, 0, 0, 0, 0}), 0, 0);
  KILN_CHECK_CLOSE(pool({{"pool_type", "sum"}, {"stride", {2, 2}}, {"pad", {1, 1}}, {"pooling_convention", "full"}}),
                   Values({1, 2, 3, 3}, {0, 3, 0, 9, 24, 0, 0, 0, 0, 9, 21, 0, 27, 60, 0, 0, 0, 0}), 0, 0);
}

TEST_CASE("Pooling: lp, global, float64 and float16 lowest values", "[nn][pool]") {
  const Tensor x = Arange({1, 2, 3, 3});
  Tensor shifted = x.Clone();
  for (int64_t i = 0; i < shifted.size(); ++i) shifted.SetDouble(i, shifted.GetDouble(i) - 5);
  // MXNet 1.9.1.
  KILN_CHECK_CLOSE(RunOp("Pooling", {x}, {{"kernel", {2, 2}}, {"pool_type", "lp"}, {"p_value", 2}})[0],
                   Values({1, 2, 2, 2}, {5.099019527435303, 6.78233003616333, 10.488088607788086, 12.409673690795898,
                                         22.226110458374023, 24.20743751525879, 28.17800521850586, 30.16620635986328}),
                   1e-6, 0);
  KILN_CHECK_CLOSE(
      RunOp("Pooling", {shifted}, {{"kernel", {2, 2}}, {"pool_type", "lp"}, {"p_value", 3}})[0],
      Values({1, 2, 2, 2}, {-5.828476428985596, -4.514357566833496, 0.0, 3.239611864089966, 10.144566535949707,
                            11.652045249938965, 14.714604377746582, 16.261333465576172}),
      1e-6, 1e-6);
  KILN_CHECK_CLOSE(RunOp("Pooling", {shifted}, {{"kernel", {2, 2}}, {"pool_type", "lp"}, {"p_value", 1}})[0],
                   Values({1, 2, 2, 2}, {-12, -8, 0, 4, 24, 28, 36, 40}), 0, 0);
  KILN_CHECK_CLOSE(RunOp("Pooling", {x}, {{"global_pool", true}, {"pool_type", "avg"}})[0],
                   Values({1, 2, 1, 1}, {4, 13}), 0, 0);
  KILN_CHECK_CLOSE(RunOp("Pooling", {x}, {{"global_pool", true}, {"pool_type", "sum"}})[0],
                   Values({1, 2, 1, 1}, {36, 117}), 0, 0);
  // Global pooling ignores pad and stride (MXNet 1.9.1: [8, 17]).
  KILN_CHECK_CLOSE(RunOp("Pooling", {x}, {{"global_pool", true}, {"kernel", {2, 2}}, {"pad", {1, 1}}})[0],
                   Values({1, 2, 1, 1}, {8, 17}), 0, 0);

  const AttrMap empty_windows = {
      {"kernel", {2, 2}}, {"stride", {2, 2}}, {"pad", {1, 1}}, {"pooling_convention", "full"}};
  const auto f64 = RunOp("Pooling", {x.CastTo(DType::kFloat64)}, empty_windows)[0];
  CHECK(f64.dtype() == DType::kFloat64);
  CHECK(f64.GetDouble(2) == -1.7976931348623157e+308);  // MXNet 1.9.1
  const auto f16 = RunOp("Pooling", {x.CastTo(DType::kFloat16)}, empty_windows)[0];
  CHECK(f16.dtype() == DType::kFloat16);
  CHECK(f16.GetDouble(2) == -65504.0);
  CHECK(f16.GetDouble(4) == 8.0);
}

// ------------------------------------------------------------------------- BatchNorm

namespace {
// The MXNet 1.9.1 example: data arange(24)**1.5/10 as (2,3,2,2).
Tensor BatchNormData() {
  Tensor x({2, 3, 2, 2}, DType::kFloat32);
  for (int64_t i = 0; i < x.size(); ++i) x.SetDouble(i, std::pow(static_cast<double>(i), 1.5) / 10);
  return x;
}
}  // namespace

TEST_CASE("BatchNorm declares MXNet's inputs, auxiliary states and outputs", "[nn][bn]") {
  const Attrs attrs = Parse("BatchNorm", {});
  CHECK(Op("BatchNorm").InputNames(attrs) ==
        std::vector<std::string>{"data", "gamma", "beta", "moving_mean", "moving_var"});
  CHECK(Op("BatchNorm").IsAuxInput(3, attrs));
  CHECK(Op("BatchNorm").IsAuxInput(4, attrs));
  CHECK_FALSE(Op("BatchNorm").IsAuxInput(1, attrs));
  CHECK(Op("BatchNorm").OutputNames(attrs) == std::vector<std::string>{"output"});
  CHECK(Op("BatchNorm").OutputNames(Parse("BatchNorm", {{"output_mean_var", true}})) ==
        std::vector<std::string>{"output", "mean", "var"});
  CHECK(attrs.Float("eps") == static_cast<double>(1e-3f));  // MXNet's float default
  CHECK(attrs.Float("momentum") == 0.9);
  CHECK(attrs.Bool("fix_gamma"));
  CHECK_FALSE(attrs.Bool("use_global_stats"));
  CHECK(attrs.Int("axis") == 1);
  CHECK(Op("BatchNorm").pattern() == OpPattern::kOpaque);
  CHECK_THROWS_WITH(Parse("BatchNorm", {{"momentum", 1.5}}), Catch::Contains("must be <= 1"));
  CHECK_THROWS_WITH(Parse("BatchNorm", {{"eps", -1.0}}), Catch::Contains("must be >= 0"));
  CHECK_NOTHROW(Parse("BatchNorm", {{"cudnn_off", true}, {"min_calib_range", "None"}, {"max_calib_range", 3.5}}));
}

TEST_CASE("BatchNorm shapes and dtypes", "[nn][bn]") {
  const auto inputs = InferInputs("BatchNorm", {Shape{4, 5, 6}}, {});
  for (size_t i = 1; i < 5; ++i) CHECK(*inputs[i] == Shape{5});
  // MXNet 1.9.1: axis -1 on (4,5,6) gives parameters (6,); axis 0 gives (4,); 2-d data works.
  CHECK(*InferInputs("BatchNorm", {Shape{4, 5, 6}}, {{"axis", -1}})[1] == Shape{6});
  CHECK(*InferInputs("BatchNorm", {Shape{4, 5, 6}}, {{"axis", 0}})[4] == Shape{4});
  CHECK(*InferInputs("BatchNorm", {Shape{4, 5}}, {})[2] == Shape{5});
  const auto outputs = InferOpShapes("BatchNorm", {{4, 5, 6}}, {{"output_mean_var", true}});
  CHECK(outputs == std::vector<Shape>{{4, 5, 6}, {5}, {5}});
  CHECK_THROWS_WITH(InferOpShapes("BatchNorm", {{4, 5, 6}}, {{"axis", 3}}), Catch::Contains("axis 3 is out of range"));
  CHECK_THROWS_WITH(InferOpShapes("BatchNorm", {{4}}, {}), Catch::Contains("axis 1 is out of range"));
  CHECK_THROWS_WITH(InferInputs("BatchNorm", {Shape{4, 5, 6}, Shape{4}}, {}),
                    Catch::Contains("input 'gamma': expected shape (5), given (4)"));
  CHECK_THROWS_WITH(
      InferInputs("BatchNorm", {Shape{4, 5, 6}, std::nullopt, std::nullopt, std::nullopt, Shape{5, 1}}, {}),
      Catch::Contains("input 'moving_var': expected shape (5), given (5,1)"));

  // MXNet 1.9.1: float16 data has float32 parameters, statistics and mean/var outputs.
  const auto [in16, out16] = InferTypes("BatchNorm", {DType::kFloat16}, {{"output_mean_var", true}});
  CHECK(*out16[0] == DType::kFloat16);
  for (size_t i = 1; i < 5; ++i) CHECK(*in16[i] == DType::kFloat32);
  CHECK(*out16[1] == DType::kFloat32);
  CHECK(*out16[2] == DType::kFloat32);
  const auto [in64, out64] = InferTypes("BatchNorm", {DType::kFloat64}, {});
  CHECK(*in64[3] == DType::kFloat64);
  CHECK(*out64[0] == DType::kFloat64);
  CHECK_THROWS_WITH(InferTypes("BatchNorm", {DType::kInt32}, {}), Catch::Contains("floating-point dtype"));
  CHECK_THROWS_WITH(InferTypes("BatchNorm", {DType::kFloat16, DType::kFloat16}, {}),
                    Catch::Contains("input 'gamma': expected dtype float32, given float16"));
}

TEST_CASE("BatchNorm inference uses the moving statistics", "[nn][bn]") {
  const Tensor x = BatchNormData();
  const Tensor gamma = Values({3}, {1.5, 0.5, 2.0});
  const Tensor beta = Values({3}, {0.1, -0.2, 0.3});
  const Tensor mean = Values({3}, {0.5, 1.0, -1.0});
  const Tensor var = Values({3}, {2.0, 0.5, 1.5});
  // MXNet 1.9.1, fix_gamma False.
  const auto out = RunOp("BatchNorm", {x, gamma, beta, mean, var}, {{"fix_gamma", false}, {"output_mean_var", true}});
  KILN_CHECK_CLOSE(
      out[0],
      Values({2, 3, 2, 2}, {-0.4301975667476654,  -0.32415807247161865, -0.1302725076675415, 0.12079989910125732,
                            -0.34128016233444214, -0.11662068963050842, 0.1317921131849289,  0.4018717408180237,
                            5.626259803771973,    6.340061664581299,    7.0947065353393555,  7.888092517852783,
                            3.9777820110321045,   4.540103912353516,    5.1244916915893555,  5.7301411628723145,
                            3.6145641803741455,   4.044960021972656,    4.4882073402404785,  4.943945407867432,
                            16.53351593017578,    17.642173767089844,   18.777549743652344,  19.939035415649414}),
      1e-5, 1e-5);
  // MXNet's "mean" output is the mean used, its "var" output 1/sqrt(var + eps).
  KILN_CHECK_CLOSE(out[1], mean, 0, 0);
  KILN_CHECK_CLOSE(out[2], Values({3}, {0.7069301, 1.4128015, 0.8162245}), 1e-6, 0);
  // MXNet 1.9.1, fix_gamma True (the default): gamma is read as 1.
  const auto fixed = RunOp("BatchNorm", {x, gamma, beta, mean, var});
  KILN_CHECK_CLOSE(
      fixed[0],
      Values({2, 3, 2, 2}, {-0.25346505641937256, -0.18277204036712646, -0.053515009582042694, 0.11386659741401672,
                            -0.48256027698516846, -0.03324137628078461, 0.4635842442512512,    1.0037434101104736,
                            2.963129758834839,    3.320030689239502,    3.6973531246185303,    4.094046115875244,
                            2.685188055038452,    3.0600695610046387,   3.4496612548828125,    3.8534276485443115,
                            7.429128646850586,    8.28991985321045,     9.176414489746094,     10.087890625,
                            8.41675853729248,     8.971087455749512,    9.538775444030762,     10.119518280029297}),
      1e-5, 1e-5);
  // Inference leaves the moving statistics alone.
  KILN_CHECK_CLOSE(mean, Values({3}, {0.5, 1.0, -1.0}), 0, 0);
  KILN_CHECK_CLOSE(var, Values({3}, {2.0, 0.5, 1.5}), 0, 0);
}

TEST_CASE("BatchNorm training uses batch statistics and updates the moving ones in place", "[nn][bn]") {
  const Tensor x = BatchNormData();
  const Tensor gamma = Values({3}, {1.5, 0.5, 2.0});
  const Tensor beta = Values({3}, {0.1, -0.2, 0.3});
  const Tensor mean = Values({3}, {0.5, 1.0, -1.0});
  const Tensor var = Values({3}, {2.0, 0.5, 1.5});
  // MXNet 1.9.1 under autograd.record(train_mode=True), momentum 0.9, eps 1e-3, fix_gamma False.
  const auto out = RunOp("BatchNorm", {x, gamma, beta, mean, var}, {{"fix_gamma", false}, {"output_mean_var", true}},
                         /*is_train=*/true);
  KILN_CHECK_CLOSE(
      out[0], Values({2, 3, 2, 2}, {-1.512755036354065,  -1.450709342956543,  -1.3372631072998047, -1.1903557777404785,
                                    -0.7745023965835571, -0.7226099371910095, -0.665230929851532,  -0.602847158908844,
                                    -2.0458920001983643, -1.8015789985656738, -1.5432863235473633, -1.2717337608337402,
                                    1.066439151763916,   1.3954647779464722,  1.7374012470245361,  2.091778516769409,
                                    0.13922898471355438, 0.2386428862810135,  0.3410254120826721,  0.4462929964065552,
                                    1.6873390674591064,  2.0667996406555176,  2.4554052352905273,  2.8529469966888428}),
      1e-5, 1e-5);
  KILN_CHECK_CLOSE(out[1], Values({3}, {2.5992989540100098, 4.320961952209473, 6.461289405822754}), 1e-6, 0);
  KILN_CHECK_CLOSE(out[2], Values({3}, {0.41363847255706787, 0.32633262872695923, 0.2793694734573364}), 1e-6, 0);
  // moving = moving * 0.9 + batch * 0.1 with the biased batch variance (5.8436, 9.3893, 12.8117).
  KILN_CHECK_CLOSE(mean, Values({3}, {0.7099299430847168, 1.3320963382720947, -0.2538709044456482}), 1e-6, 1e-7);
  KILN_CHECK_CLOSE(var, Values({3}, {2.384364604949951, 1.3889291286468506, 2.6311745643615723}), 1e-6, 0);

  // MXNet 1.9.1, fix_gamma True: same statistics, gamma read as 1.
  const Tensor mean2 = Values({3}, {0.5, 1.0, -1.0});
  const Tensor var2 = Values({3}, {2.0, 0.5, 1.5});
  const auto fixed = RunOp("BatchNorm", {x, gamma, beta, mean2, var2}, {}, /*is_train=*/true);
  KILN_CHECK_CLOSE(
      fixed[0],
      Values({2, 3, 2, 2},
             {-0.9751700162887573, -0.9338061809539795, -0.8581754565238953, -0.7602372169494629, -1.349004864692688,
              -1.2452199459075928, -1.1304618120193481, -1.0056943893432617, -0.8729459643363953, -0.75078946352005,
              -0.6216431260108948, -0.485866904258728,  0.7442927956581116,  0.9636431336402893,  1.1916007995605469,
              1.4278522729873657,  0.4784579873085022,  0.6772857904434204,  0.8820508122444153,  1.0925859212875366,
              0.9936695694923401,  1.1833997964859009,  1.3777027130126953,  1.5764734745025635}),
      1e-5, 1e-5);
  KILN_CHECK_CLOSE(var2, Values({3}, {2.384364604949951, 1.3889291286468506, 2.6311745643615723}), 1e-6, 0);
  // gamma is an input, not a state: it is left as given.
  KILN_CHECK_CLOSE(gamma, Values({3}, {1.5, 0.5, 2.0}), 0, 0);
}

TEST_CASE("BatchNorm training on 2-d data with axis -1, and use_global_stats", "[nn][bn]") {
  const Tensor x = Values({4, 3}, {1, 2, 3, 4, 0, -1, 2, 2, 5, -3, 1, 1});
  const Tensor gamma = Values({3}, {2, 1, 0.5});
  const Tensor beta = Values({3}, {0, 1, -1});
  const Tensor mean = Values({3}, {0, 0, 0});
  const Tensor var = Values({3}, {1, 1, 1});
  const AttrMap attrs = {{"axis", -1}, {"fix_gamma", false}, {"momentum", 0.8}, {"eps", 1e-5}};
  const auto out = RunOp("BatchNorm", {x, gamma, beta, mean, var}, attrs, /*is_train=*/true);
  // MXNet 1.9.1.
  KILN_CHECK_CLOSE(out[0],
                   Values({4, 3}, {0.0, 1.9045274257659912, -0.7763934135437012, 2.3533918857574463,
                                   -0.5075457096099854, -1.6708197593688965, 0.7844639420509338, 1.9045274257659912,
                                   -0.3291802406311035, -3.1378557682037354, 0.6984908580780029, -1.2236065864562988}),
                   1e-5, 1e-6);
  KILN_CHECK_CLOSE(mean, Values({3}, {0.2, 0.25, 0.4}), 1e-6, 0);
  KILN_CHECK_CLOSE(var, Values({3}, {2.1, 0.9375, 1.8}), 1e-6, 0);

  // use_global_stats in training: the moving statistics normalize and stay unchanged,
  // exactly as in inference (MXNet 1.9.1 gives identical outputs in both modes).
  const Tensor gm = Values({3}, {0.5, -1, 2});
  const Tensor gv = Values({3}, {4, 0.25, 1});
  AttrMap global = attrs;
  global.emplace_back("use_global_stats", true);
  const auto trained = RunOp("BatchNorm", {x, gamma, beta, gm, gv}, global, /*is_train=*/true);
  const auto inferred = RunOp("BatchNorm", {x, gamma, beta, gm, gv}, attrs, /*is_train=*/false);
  KILN_CHECK_CLOSE(trained[0], inferred[0], 0, 0);
  KILN_CHECK_CLOSE(gm, Values({3}, {0.5, -1, 2}), 0, 0);
  KILN_CHECK_CLOSE(gv, Values({3}, {4, 0.25, 1}), 0, 0);
  // By hand: (1 - 0.5) / sqrt(4 + 1e-5) * 2 + 0.
  CHECK(trained[0].GetDouble(0) == Approx(0.5 / std::sqrt(4 + 1e-5) * 2).epsilon(1e-6));
}

TEST_CASE("BatchNorm with float16 data keeps float32 statistics", "[nn][bn]") {
  const Tensor x = BatchNormData();
  const Tensor mean = Values({3}, {0.5, 1.0, -1.0});
  const Tensor var = Values({3}, {2.0, 0.5, 1.5});
  const auto out =
      RunOp("BatchNorm", {x.CastTo(DType::kFloat16), Values({3}, {1, 1, 1}), Values({3}, {0.1, -0.2, 0.3}), mean, var},
            {{"output_mean_var", true}}, /*is_train=*/true);
  CHECK(out[0].dtype() == DType::kFloat16);
  CHECK(out[1].dtype() == DType::kFloat32);
  // MXNet 1.9.1 (float32 run); float16 data rounds the inputs and outputs.
  CHECK(out[0].GetDouble(0) == Approx(-0.9751700162887573).epsilon(2e-3));
  CHECK(var.GetDouble(0) == Approx(2.384364604949951).epsilon(1e-3));
}

// ------------------------------------------------------------------------- Dropout

TEST_CASE("Dropout declares one visible output and MXNet's attributes", "[nn][dropout]") {
  const Attrs attrs = Parse("Dropout", {});
  CHECK(Op("Dropout").OutputNames(attrs) == std::vector<std::string>{"output"});
  CHECK(attrs.Float("p") == 0.5);
  CHECK(attrs.Str("mode") == "training");
  CHECK(attrs.Ints("axes").empty());
  CHECK(Op("Dropout").InplacePairs(attrs) == std::vector<std::pair<int, int>>{{0, 0}});
  CHECK_THROWS_WITH(Parse("Dropout", {{"p", 1.5}}), Catch::Contains("must be <= 1"));
  CHECK_THROWS_WITH(Parse("Dropout", {{"p", -0.5}}), Catch::Contains("must be >= 0"));
  CHECK_THROWS_WITH(Parse("Dropout", {{"mode", "sometimes"}}), Catch::Contains("one of {always, training}"));
  CHECK_NOTHROW(Parse("Dropout", {{"cudnn_off", "None"}}));
  CHECK(InferOpShapes("Dropout", {{2, 3, 4}}, {{"axes", {0, -1}}})[0] == Shape{2, 3, 4});
  CHECK_THROWS_WITH(InferOpShapes("Dropout", {{2, 3, 4}}, {{"axes", {3}}}), Catch::Contains("axis 3 is out of range"));
  CHECK_THROWS_WITH(RunOp("Dropout", {Arange({4}, DType::kInt32)}), Catch::Contains("floating-point dtype"));
}

TEST_CASE("Dropout is the identity at inference and with p = 0", "[nn][dropout]") {
  const Tensor x = RandomTensor({3, 5}, 7);
  KILN_CHECK_CLOSE(RunOp("Dropout", {x}, {{"p", 0.9}})[0], x, 0, 0);
  KILN_CHECK_CLOSE(RunOp("Dropout", {x}, {{"p", 0.0}}, /*is_train=*/true, 5)[0], x, 0, 0);
}

TEST_CASE("Dropout statistics, scaling and determinism", "[nn][dropout]") {
  Tensor ones({200, 500}, DType::kFloat32);
  for (int64_t i = 0; i < ones.size(); ++i) ones.SetDouble(i, 1.0);
  for (const double p : {0.1, 0.5, 0.8}) {
    INFO("p " << p);
    const auto out = RunOp("Dropout", {ones}, {{"p", p}}, /*is_train=*/true, 42)[0];
    int64_t dropped = 0;
    double sum = 0;
    bool values_ok = true;
    for (int64_t i = 0; i < out.size(); ++i) {
      const double v = out.GetDouble(i);
      dropped += v == 0 ? 1 : 0;
      sum += v;
      values_ok = values_ok && (v == 0 || v == Approx(1 / (1 - p)).epsilon(1e-6));
    }
    CHECK(values_ok);
    // 100000 Bernoulli draws: the standard deviation of the dropped fraction is < 0.0016.
    CHECK(static_cast<double>(dropped) / static_cast<double>(out.size()) == Approx(p).margin(0.01));
    CHECK(sum / static_cast<double>(out.size()) == Approx(1.0).margin(0.03));
  }
  const Tensor x = RandomTensor({8, 16}, 3);
  const auto a = RunOp("Dropout", {x}, {}, true, 11)[0];
  const auto b = RunOp("Dropout", {x}, {}, true, 11)[0];
  const auto c = RunOp("Dropout", {x}, {}, true, 12)[0];
  CHECK(a.BitwiseEquals(b));
  CHECK_FALSE(a.BitwiseEquals(c));
  // mode 'always' drops at inference too, with the same mask as training.
  CHECK(RunOp("Dropout", {x}, {{"mode", "always"}}, false, 11)[0].BitwiseEquals(a));
  // p = 1 drops everything.
  KILN_CHECK_CLOSE(RunOp("Dropout", {x}, {{"p", 1.0}}, true, 11)[0], Tensor({8, 16}, DType::kFloat32), 0, 0);
}

TEST_CASE("Dropout shares its mask along axes", "[nn][dropout]") {
  Tensor ones({6, 5, 40}, DType::kFloat32);
  for (int64_t i = 0; i < ones.size(); ++i) ones.SetDouble(i, 1.0);
  // axes (0, 2): one draw per index of axis 1; -1 means the last axis.
  for (const auto& axes : {std::vector<int64_t>{0, 2}, std::vector<int64_t>{0, -1}}) {
    const auto out = RunOp("Dropout", {ones}, {{"axes", axes}}, true, 3)[0];
    bool shared = true;
    for (int64_t n = 0; n < 6; ++n) {
      for (int64_t c = 0; c < 5; ++c) {
        for (int64_t k = 0; k < 40; ++k)
          shared = shared && out.GetDouble((n * 5 + c) * 40 + k) == out.GetDouble(c * 40);
      }
    }
    CHECK(shared);
  }
  // axes (2,): rows of 40 differ from one another but each (n, c) pair is constant.
  const auto out = RunOp("Dropout", {ones}, {{"axes", {2}}, {"p", 0.5}}, true, 9)[0];
  int64_t kept_rows = 0;
  bool constant_rows = true;
  for (int64_t row = 0; row < 30; ++row) {
    for (int64_t k = 0; k < 40; ++k)
      constant_rows = constant_rows && out.GetDouble(row * 40 + k) == out.GetDouble(row * 40);
    kept_rows += out.GetDouble(row * 40) != 0 ? 1 : 0;
  }
  CHECK(constant_rows);
  CHECK(kept_rows > 0);
  CHECK(kept_rows < 30);
  const auto half = RunOp("Dropout", {ones.CastTo(DType::kFloat16)}, {{"p", 0.25}}, true, 9)[0];
  CHECK(half.dtype() == DType::kFloat16);
  // MXNet 1.9.1 float16 keeps are 1/(1-0.25) rounded to half: 1.3330078125.
  bool half_ok = true;
  for (int64_t i = 0; i < half.size(); ++i)
    half_ok = half_ok && (half.GetDouble(i) == 0 || half.GetDouble(i) == 1.3330078125);
  CHECK(half_ok);
}
