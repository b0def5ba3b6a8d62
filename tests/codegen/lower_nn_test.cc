// Lowerings of the NCHW layers (symbol/ops/nn.cc) run by the kir interpreter, with the
// naive sgemm of TestRuntimeApi, against the reference.
//
// Tolerances:
//  - Convolution: float32 through im2col and sgemm, or the float32 depthwise loop: rtol
//    1e-4, atol 1e-5. float64 and float16 sum in float64 in the reference's order: exact.
//  - Pooling: float32 (and float16, computed in float32) sums rtol 1e-5 atol 1e-6 (float16
//    1e-3, its rounding), float64 1e-12; max is exact.
//  - BatchNorm: statistics are float64 in the reference's order: the moving statistics and
//    the mean/var outputs are exact; the normalized output (float32 arithmetic) rtol 1e-5
//    atol 1e-5, float64 1e-12, float16 1e-3.
//  - Dropout draws other numbers than the reference (the counter-based generator of
//    creation.cc, not mt19937_64): checked for the drop rate, scaling, shared masks along
//    axes and determinism; inference and p = 0 are exact copies.
#include <catch2/catch.hpp>
#include <cmath>
#include <functional>
#include <limits>
#include <string>
#include <variant>
#include <vector>

#include "codegen/kir/kir.h"
#include "codegen/kir_interpreter.h"
#include "tests/lower_test_util.h"
#include "tests/op_test_util.h"

using namespace kiln;
using namespace kiln::testing;

namespace {

struct Tolerance {
  double rtol;
  double atol;
};

bool HasCall(const kir::Stmt& s, const std::string& routine) {
  if (!s) return false;
  if (s->kind == kir::StmtKind::kCall && s->routine == routine) return true;
  for (const auto& child : s->body) {
    if (HasCall(child, routine)) return true;
  }
  return HasCall(s->otherwise, routine);
}
bool HasSconv(const kir::Stmt& s) {
  return HasCall(s, "sconv");
}

// Every output of the lowering against the reference's.
void Compare(const std::string& op, const std::vector<Tensor>& inputs, const AttrMap& attrs, Tolerance tolerance,
             bool is_train = false, const std::vector<size_t>& constants = {}) {
  const std::vector<Tensor> expected = RunOp(op, inputs, attrs, is_train);
  const std::vector<Tensor> actual = RunLowered(op, inputs, attrs, InterpreterRunner(), is_train, 0, constants);
  REQUIRE(actual.size() == expected.size());
  for (size_t k = 0; k < actual.size(); ++k) {
    INFO("output " << k);
    CHECK(actual[k].dtype() == expected[k].dtype());
    KILN_CHECK_CLOSE(actual[k], expected[k], tolerance.rtol, tolerance.atol);
  }
}

// --- Convolution

struct ConvCase {
  Shape data;
  int64_t filters;
  std::vector<int64_t> kernel, stride, dilate, pad;
  int64_t groups = 1;
  bool no_bias = false;
};

AttrMap ConvAttrs(const ConvCase& c) {
  return {{"num_filter", c.filters}, {"kernel", c.kernel},  {"stride", c.stride}, {"dilate", c.dilate}, {"pad", c.pad},
          {"num_group", c.groups},   {"no_bias", c.no_bias}};
}

std::vector<Tensor> ConvInputs(const ConvCase& c, DType dtype, uint64_t seed) {
  const AttrMap attrs = ConvAttrs(c);
  const auto shapes = InferShapeSlots("Convolution", {c.data, std::nullopt, std::nullopt}, attrs);
  std::vector<Tensor> inputs = {RandomTensor(c.data, seed, -1, 1, dtype),
                                RandomTensor(*shapes[1], seed + 1, -1, 1, dtype)};
  if (!c.no_bias) inputs.push_back(RandomTensor(*shapes[2], seed + 2, -1, 1, dtype));
  return inputs;
}

std::string Describe(const ConvCase& c) {
  return "data " + ShapeToString(c.data) + " filters " + std::to_string(c.filters) + " kernel " +
         ShapeToString(c.kernel) + " stride " + ShapeToString(c.stride) + " dilate " + ShapeToString(c.dilate) +
         " pad " + ShapeToString(c.pad) + " groups " + std::to_string(c.groups) + (c.no_bias ? " no bias" : "");
}

// The filters as an input, and (float32) as a compile-time constant the lowering packs.
kir::Kernel CheckConv(const ConvCase& c, DType dtype, uint64_t seed) {
  INFO(Describe(c) << " " << DTypeName(dtype));
  const auto inputs = ConvInputs(c, dtype, seed);
  const AttrMap attrs = ConvAttrs(c);
  const Tolerance tolerance = dtype == DType::kFloat32 ? Tolerance{1e-4, 1e-5} : Tolerance{0, 0};
  Compare("Convolution", inputs, attrs, tolerance);
  {
    INFO("constant filters");
    Compare("Convolution", inputs, attrs, tolerance, false, {1});
  }
  return LowerOpForInputs("Convolution", inputs, attrs);
}

// float32 with the filters a compile-time constant: matches the reference, and the
// lowering replaced them by one constant with this suffix. Returns the kernel.
kir::Kernel CheckConstantFilters(const ConvCase& c, uint64_t seed, const std::string& suffix) {
  INFO(Describe(c));
  const auto inputs = ConvInputs(c, DType::kFloat32, seed);
  Compare("Convolution", inputs, ConvAttrs(c), Tolerance{1e-4, 1e-5}, false, {1});
  ConstantArgs replaced;
  const kir::Kernel kernel = LowerOpForInputs("Convolution", inputs, ConvAttrs(c), false, 0, {1}, &replaced);
  REQUIRE(replaced.size() == 1);
  CHECK(replaced.begin()->second.first == suffix);
  return kernel;
}

const std::vector<ConvCase> kConvCases = {
    {{2, 3, 7, 7}, 4, {3, 3}, {}, {}, {}},
    {{2, 3, 7, 7}, 4, {3, 3}, {}, {}, {1, 1}},
    {{2, 3, 7, 7}, 4, {3, 3}, {2, 2}, {}, {1, 1}, 1, true},
    {{2, 3, 7, 7}, 4, {3, 3}, {1, 1}, {2, 2}, {2, 2}},
    {{2, 3, 8, 9}, 5, {2, 3}, {2, 1}, {1, 2}, {1, 0}},
    {{1, 2, 5, 6}, 3, {5, 1}, {3, 2}, {}, {2, 0}},
    {{2, 4, 6, 5}, 6, {3, 3}, {}, {}, {1, 1}, 2},
    {{1, 6, 5, 5}, 9, {3, 2}, {2, 1}, {1, 2}, {0, 1}, 3, true},
    {{1, 1, 9, 9}, 5, {5, 5}, {}, {}, {}},
    {{3, 1, 4, 4}, 2, {4, 4}, {}, {}, {}},
    // Output columns and rows wholly in the padding for some taps.
    {{1, 2, 1, 1}, 3, {7, 7}, {}, {}, {3, 3}},
    {{1, 2, 2, 3}, 2, {5, 7}, {2, 2}, {}, {3, 4}},
};

const std::vector<ConvCase> k1x1Cases = {
    {{2, 5, 4, 3}, 6, {1, 1}, {}, {}, {}},
    {{2, 4, 3, 3}, 6, {1, 1}, {}, {}, {}, 2},
    {{1, 3, 5, 5}, 2, {1, 1}, {}, {3, 3}, {}, 1, true},  // dilation does nothing to a 1x1 kernel
    {{2, 3, 5, 5}, 4, {1, 1}, {2, 2}, {}, {}},           // strided: im2col
    {{2, 3, 4, 4}, 4, {1, 1}, {}, {}, {1, 1}},           // padded: im2col
};

const std::vector<ConvCase> kDepthwiseCases = {
    {{2, 3, 7, 7}, 3, {3, 3}, {}, {}, {1, 1}, 3},
    {{2, 3, 7, 6}, 6, {3, 3}, {2, 1}, {2, 1}, {2, 1}, 3},  // two filters per channel
    {{1, 4, 5, 5}, 4, {2, 2}, {2, 2}, {}, {}, 4, true},
    {{1, 2, 3, 3}, 2, {3, 3}, {}, {}, {1, 1}, 2},
    // Interiors (rows and columns whose taps are all inside) beside guarded edges.
    {{2, 5, 20, 23}, 5, {3, 3}, {}, {}, {1, 1}, 5},
    {{1, 4, 17, 18}, 4, {3, 3}, {2, 2}, {}, {1, 1}, 4, true},
    {{1, 3, 16, 19}, 6, {5, 5}, {1, 2}, {2, 1}, {2, 3}, 3},
    {{1, 2, 12, 12}, 2, {3, 3}, {}, {}, {}, 2},
    {{1, 2, 9, 30}, 2, {1, 7}, {}, {}, {0, 3}, 2},
};

// --- Pooling

Tolerance PoolTolerance(DType dtype, const std::string& type) {
  if (type == "max") return {0, 0};
  switch (dtype) {
    case DType::kFloat16: return {1e-3, 1e-3};
    case DType::kFloat64: return {1e-12, 1e-12};
    default: return {1e-5, 1e-6};
  }
}

Tolerance NormTolerance(DType dtype) {
  switch (dtype) {
    case DType::kFloat16: return {1e-3, 1e-3};
    case DType::kFloat64: return {1e-12, 1e-12};
    default: return {1e-5, 1e-5};
  }
}

// --- BatchNorm

std::vector<Tensor> BatchNormInputs(const Shape& data, int64_t axis, DType dtype, uint64_t seed) {
  const int64_t channels = data[axis < 0 ? axis + static_cast<int64_t>(data.size()) : axis];
  const DType param = dtype == DType::kFloat16 ? DType::kFloat32 : dtype;
  return {RandomTensor(data, seed, -2, 3, dtype), RandomTensor({channels}, seed + 1, 0.5, 1.5, param),
          RandomTensor({channels}, seed + 2, -1, 1, param), RandomTensor({channels}, seed + 3, -0.5, 0.5, param),
          RandomTensor({channels}, seed + 4, 0.5, 2, param)};
}

std::vector<Tensor> Clones(const std::vector<Tensor>& tensors) {
  std::vector<Tensor> copies;
  for (const auto& t : tensors) copies.push_back(t.Clone());
  return copies;
}

// --- Dropout

// The interpreter over the whole parallel range at once (the test runner splits it).
KernelRunner WholeRangeRunner() {
  return [](const kir::Kernel& kernel, const std::vector<void*>& buffers) {
    InterpretKernel(kernel, buffers, 0, kernel.parallel_extent, TestRuntimeApi());
  };
}

double DropRate(const Tensor& out) {
  int64_t zeros = 0;
  for (int64_t i = 0; i < out.size(); ++i) zeros += out.GetDouble(i) == 0.0;
  return static_cast<double>(zeros) / static_cast<double>(out.size());
}

// Kept elements are x / (1 - p) (x is never 0 in these tests), dropped ones 0.
void CheckScaling(const Tensor& x, const Tensor& out, double p, double rtol) {
  int64_t bad = 0;
  for (int64_t i = 0; i < x.size(); ++i) {
    const double y = out.GetDouble(i);
    const double kept = x.GetDouble(i) / (1 - p);
    if (y != 0.0 && std::fabs(y - kept) > rtol * std::fabs(kept)) ++bad;
  }
  CHECK(bad == 0);
}

}  // namespace

TEST_CASE("every nn layer has a lowering", "[lower][nn]") {
  for (const char* name : {"Convolution", "Pooling", "BatchNorm", "Dropout"}) {
    INFO(name);
    const OpDef* op = OpRegistry::Global().Find(name);
    REQUIRE(op != nullptr);
    CHECK(op->has_lowering());
  }
}

TEST_CASE("float32 Convolution: the sconv routine, strides, pads, dilations, groups", "[lower][nn][conv]") {
  uint64_t seed = 1;
  for (const auto* cases : {&kConvCases, &k1x1Cases}) {
    for (const ConvCase& c : *cases) {
      const kir::Kernel kernel = CheckConv(c, DType::kFloat32, seed += 3);
      CHECK(HasSconv(kernel.body));
      // Inputs and the output: im2col needs no scratch.
      CHECK(kernel.args.size() == (c.no_bias ? 3u : 4u));
    }
  }
}

TEST_CASE("constant filters are packed once, into the kernel's constant argument", "[lower][nn][conv]") {
  // A 16x16 output (256 positions: not the narrow form) with 8 channels (not Winograd).
  const ConvCase c{{1, 8, 16, 16}, 13, {3, 3}, {}, {}, {1, 1}, 1};
  const auto inputs = ConvInputs(c, DType::kFloat32, 7);
  ConstantArgs replaced;
  const kir::Kernel kernel = LowerOpForInputs("Convolution", inputs, ConvAttrs(c), false, 0, {1}, &replaced);
  REQUIRE(replaced.size() == 1);
  const auto& [suffix, packed] = replaced.at(1);
  CHECK(suffix == ":packed");
  // 13 filters of 72 taps in two panels of 12 rows, the last padded with zeros.
  CHECK(packed.shape() == Shape{2 * 12 * 72});
  CHECK(kernel.args[1]->size == 2 * 12 * 72);
  CHECK(packed.data_as<float>()[0] == inputs[1].data_as<float>()[0]);
  CHECK(packed.data_as<float>()[1] == inputs[1].data_as<float>()[72]);
  CHECK(packed.data_as<float>()[12 * 72 + 71 * 12 + 11] == 0.0f);
  // Not for other dtypes, whose direct loops read the filters as they are.
  ConstantArgs none;
  LowerOpForInputs("Convolution", ConvInputs(c, DType::kFloat64, 7), ConvAttrs(c), false, 0, {1}, &none);
  CHECK(none.empty());
}

TEST_CASE("3x3 stride-1 Convolution with constant filters: Winograd F(2x2, 3x3)", "[lower][nn][conv]") {
  // Odd and even output sizes (partial tiles), pads 0, 1 and 2 (asymmetric), with and
  // without bias, blocks of tile rows and of filters. Tolerance as for the direct forms:
  // the transforms add and subtract a patch's values, a few roundings of their size.
  const std::vector<ConvCase> cases = {
      {{1, 16, 16, 16}, 16, {3, 3}, {}, {}, {1, 1}},
      {{2, 16, 17, 13}, 20, {3, 3}, {}, {}, {}},
      {{1, 17, 11, 13}, 24, {3, 3}, {}, {}, {2, 1}, 1, true},
      {{1, 32, 30, 30}, 40, {3, 3}, {}, {}, {1, 1}},
      {{1, 64, 14, 14}, 400, {3, 3}, {}, {}, {1, 1}},
      {{1, 16, 9, 10}, 16, {3, 3}, {}, {}, {2, 2}},
      // Fewer than 32 tiles: the products transposed (tiles as rows), filters in blocks of
      // 32-column panels (160, 160, 80).
      {{1, 64, 7, 7}, 400, {3, 3}, {}, {}, {1, 1}},
      {{2, 16, 5, 6}, 20, {3, 3}, {}, {}, {1, 1}, 1, true},
  };
  uint64_t seed = 600;
  for (const ConvCase& c : cases) {
    const kir::Kernel kernel = CheckConstantFilters(c, seed += 3, ":winograd");
    // sconv on the points' matrices, or sgemm with them transposed.
    const int64_t out_h = c.data[2] + 2 * (c.pad.empty() ? 0 : c.pad[0]) - 2;
    const int64_t out_w = c.data[3] + 2 * (c.pad.empty() ? 0 : c.pad[1]) - 2;
    const bool narrow = (out_h + 1) / 2 * ((out_w + 1) / 2) < 32;
    CHECK(HasCall(kernel.body, narrow ? "sgemm" : "sconv"));
  }
  // Not strided (this one, with 64 positions, takes the narrow form).
  for (const ConvCase& c : {ConvCase{{1, 16, 16, 16}, 16, {3, 3}, {2, 2}, {}, {1, 1}}}) {
    ConstantArgs replaced;
    LowerOpForInputs("Convolution", ConvInputs(c, DType::kFloat32, 1), ConvAttrs(c), false, 0, {1}, &replaced);
    CHECK(replaced.begin()->second.first == ":packed_t");
  }
}

TEST_CASE("Convolution on few positions with constant filters: positions as the GEMM's rows", "[lower][nn][conv]") {
  // 7x7 and smaller outputs, filters in blocks of 32-column panels, with and without bias;
  // 1x1 stride-1 layers through sgemm, the others (strided, padded, dilated) sconv_t.
  const std::vector<ConvCase> cases = {
      {{1, 256, 14, 14}, 300, {3, 3}, {2, 2}, {}, {1, 1}},
      {{2, 64, 14, 14}, 70, {1, 1}, {2, 2}, {}, {}, 1, true},
      {{1, 5, 9, 8}, 7, {3, 2}, {1, 2}, {2, 1}, {1, 0}},
      {{1, 3, 15, 15}, 40, {7, 7}, {2, 2}, {}, {3, 3}},
      {{1, 320, 7, 7}, 1280, {1, 1}, {}, {}, {}},
      {{2, 24, 5, 3}, 40, {1, 1}, {}, {}, {}, 1, true},
      {{3, 7, 1, 1}, 5, {1, 1}, {}, {}, {}},
  };
  uint64_t seed = 700;
  for (const ConvCase& c : cases) {
    const kir::Kernel kernel = CheckConstantFilters(c, seed += 3, ":packed_t");
    const bool pointwise = c.kernel == std::vector<int64_t>{1, 1} && c.stride.empty() && c.pad.empty();
    CHECK(HasCall(kernel.body, pointwise ? "sgemm" : "sconv_t"));
  }
}

TEST_CASE("float32 depthwise Convolution is a direct loop", "[lower][nn][conv]") {
  uint64_t seed = 200;
  for (const ConvCase& c : kDepthwiseCases) {
    const kir::Kernel kernel = CheckConv(c, DType::kFloat32, seed += 3);
    CHECK_FALSE(HasSconv(kernel.body));
    CHECK(kernel.parallel_extent == c.data[0] * c.filters);
  }
}

TEST_CASE("float64 and float16 Convolution sum in the reference's order", "[lower][nn][conv]") {
  uint64_t seed = 300;
  for (const DType dtype : {DType::kFloat64, DType::kFloat16}) {
    for (const auto* cases : {&kConvCases, &k1x1Cases, &kDepthwiseCases}) {
      for (const ConvCase& c : *cases) CHECK_FALSE(HasSconv(CheckConv(c, dtype, seed += 3).body));
    }
  }
}

TEST_CASE("Convolution work splits into tasks of images, blocks of positions and of filters", "[lower][nn][conv]") {
  // One 16x56x56 image, 64 filters of 3x3 with stride 1 but filters given at run time
  // (no Winograd): 28.9M multiply-adds want 55 tasks; blocks of at least 256 positions
  // give 12 nearly equal ones (an even count: two threads get equal halves) of 262
  // positions, and 64 filters are too few to split.
  {
    const ConvCase c{{1, 16, 56, 56}, 64, {3, 3}, {}, {}, {1, 1}};
    CHECK(LowerOpForInputs("Convolution", ConvInputs(c, DType::kFloat32, 400), ConvAttrs(c)).parallel_extent == 12);
  }
  // A 7x7 image has one block of positions: 512 filters (at least 96 each, so at most 5
  // blocks) split in an even 4 blocks of 132 (whole panels of 12) for 57.8M
  // multiply-adds.
  {
    const ConvCase c{{1, 256, 7, 7}, 512, {3, 3}, {}, {}, {1, 1}};
    CHECK(LowerOpForInputs("Convolution", ConvInputs(c, DType::kFloat32, 401), ConvAttrs(c)).parallel_extent == 4);
  }
  // Nine images, 24.6M multiply-adds want 46 tasks: two blocks of positions per image
  // give 18.
  {
    const ConvCase c{{9, 32, 22, 27}, 16, {3, 3}, {}, {}, {1, 1}};
    CHECK(LowerOpForInputs("Convolution", ConvInputs(c, DType::kFloat32, 402), ConvAttrs(c)).parallel_extent == 18);
  }
  // Seventy tiny images: one task does them all.
  {
    const ConvCase c{{70, 2, 5, 5}, 3, {3, 3}, {}, {}, {}};
    const kir::Kernel kernel = CheckConv(c, DType::kFloat32, 403);
    CHECK(kernel.parallel_extent == 1);
  }
}

TEST_CASE("Pooling matches the reference: every type, both conventions, padding counted or not", "[lower][nn][pool]") {
  uint64_t seed = 500;
  struct Window {
    std::vector<int64_t> kernel, stride, pad;
  };
  const std::vector<Window> windows = {
      {{2, 2}, {2, 2}, {}},     {{3, 3}, {2, 2}, {1, 1}}, {{3, 2}, {1, 2}, {1, 0}},
      {{2, 2}, {3, 3}, {1, 1}},  // 'full' makes windows wholly in the padding
      {{1, 1}, {}, {}},         {{4, 5}, {}, {}},         {{9, 9}, {1, 1}, {4, 4}},  // 81 taps: the window-loop form
  };
  const std::vector<std::pair<std::string, AttrArg>> types = {
      {"max", AttrArg(std::monostate{})}, {"sum", AttrArg(std::monostate{})}, {"avg", AttrArg(std::monostate{})},
      {"lp", AttrArg(int64_t{1})},        {"lp", AttrArg(int64_t{2})},        {"lp", AttrArg(int64_t{3})}};
  for (const DType dtype : {DType::kFloat32, DType::kFloat64, DType::kFloat16}) {
    // 7x7 and 12x13 have interior rows and columns (the unrolled form's vectorized
    // loops) beside their edges; 4x5 is nearly all edges.
    for (const Shape& shape : {Shape{2, 3, 7, 7}, Shape{1, 2, 4, 5}, Shape{1, 2, 12, 13}}) {
      const Tensor x = RandomTensor(shape, seed++, -1, 1, dtype);
      for (const auto& [type, p_value] : types) {
        for (const Window& w : windows) {
          for (const std::string convention : {"valid", "full"}) {
            for (const AttrArg& include_pad : {AttrArg(std::monostate{}), AttrArg(true), AttrArg(false)}) {
              if (type != "avg" && !std::holds_alternative<std::monostate>(include_pad.value)) continue;
              INFO(DTypeName(dtype) << " " << ShapeToString(shape) << " " << type << " p "
                                    << FormatAttrValue(p_value.value) << " kernel " << ShapeToString(w.kernel)
                                    << " stride " << ShapeToString(w.stride) << " pad " << ShapeToString(w.pad) << " "
                                    << convention << " count_include_pad " << FormatAttrValue(include_pad.value));
              Compare("Pooling", {x},
                      {{"pool_type", type},
                       {"p_value", p_value},
                       {"kernel", w.kernel},
                       {"stride", w.stride},
                       {"pad", w.pad},
                       {"pooling_convention", convention},
                       {"count_include_pad", include_pad}},
                      PoolTolerance(dtype, type));
            }
          }
        }
        INFO(DTypeName(dtype) << " global " << type);
        Compare("Pooling", {x}, {{"pool_type", type}, {"p_value", p_value}, {"global_pool", true}},
                PoolTolerance(dtype, type));
      }
    }
  }
}

TEST_CASE("Pooling of an empty window gives the lowest value (max) or 0 (avg)", "[lower][nn][pool]") {
  const Tensor x = RandomTensor({1, 1, 4, 4}, 7);
  for (const char* type : {"max", "avg"}) {
    const AttrMap attrs = {{"pool_type", type},
                           {"kernel", std::vector<int64_t>{2, 2}},
                           {"stride", std::vector<int64_t>{3, 3}},
                           {"pad", std::vector<int64_t>{1, 1}},
                           {"pooling_convention", "full"}};
    const Tensor out = RunLowered("Pooling", {x}, attrs)[0];
    REQUIRE(out.shape() == Shape{1, 1, 3, 3});
    CHECK(out.GetDouble(8) ==
          (std::string(type) == "max" ? static_cast<double>(std::numeric_limits<float>::lowest()) : 0.0));
    Compare("Pooling", {x}, attrs, {0, 1e-7});
  }
}

TEST_CASE("BatchNorm at inference normalizes with the moving statistics", "[lower][nn][bn]") {
  uint64_t seed = 600;
  struct Case {
    Shape data;
    int64_t axis;
  };
  for (const DType dtype : {DType::kFloat32, DType::kFloat64, DType::kFloat16}) {
    for (const Case& c :
         {Case{{2, 3, 4, 5}, 1}, Case{{6, 5}, -1}, Case{{4, 3, 2}, 0}, Case{{7}, 0}, Case{{2, 1, 3}, 1}}) {
      for (const bool fix_gamma : {true, false}) {
        for (const bool output_mean_var : {false, true}) {
          INFO(DTypeName(dtype) << " data " << ShapeToString(c.data) << " axis " << c.axis << " fix_gamma " << fix_gamma
                                << " output_mean_var " << output_mean_var);
          const auto inputs = BatchNormInputs(c.data, c.axis, dtype, seed += 5);
          const AttrMap attrs = {{"axis", c.axis}, {"fix_gamma", fix_gamma}, {"output_mean_var", output_mean_var}};
          // use_global_stats in training reads the moving statistics too and leaves them.
          for (const bool train : {false, true}) {
            const auto expected_in = Clones(inputs);
            const auto actual_in = Clones(inputs);
            const AttrMap with_global = {{"axis", c.axis},
                                         {"fix_gamma", fix_gamma},
                                         {"output_mean_var", output_mean_var},
                                         {"use_global_stats", train}};
            const auto expected = RunOp("BatchNorm", expected_in, train ? with_global : attrs, train);
            const auto actual =
                RunLowered("BatchNorm", actual_in, train ? with_global : attrs, InterpreterRunner(), train);
            REQUIRE(actual.size() == expected.size());
            KILN_CHECK_CLOSE(actual[0], expected[0], NormTolerance(dtype).rtol, NormTolerance(dtype).atol);
            for (size_t k = 1; k < actual.size(); ++k) KILN_CHECK_CLOSE(actual[k], expected[k], 0, 0);
            CHECK(actual_in[3].BitwiseEquals(inputs[3]));
            CHECK(actual_in[4].BitwiseEquals(inputs[4]));
          }
        }
      }
    }
  }
}

TEST_CASE("BatchNorm in training uses batch statistics and updates the moving ones in place", "[lower][nn][bn]") {
  uint64_t seed = 700;
  struct Case {
    Shape data;
    int64_t axis;
    double momentum;
  };
  for (const DType dtype : {DType::kFloat32, DType::kFloat64, DType::kFloat16}) {
    for (const Case& c :
         {Case{{4, 3, 5, 5}, 1, 0.9}, Case{{9, 6}, -1, 0.5}, Case{{3, 4, 7}, 2, 0.0}, Case{{1, 2, 1, 1}, 1, 0.99}}) {
      for (const bool output_mean_var : {false, true}) {
        INFO(DTypeName(dtype) << " data " << ShapeToString(c.data) << " axis " << c.axis << " momentum " << c.momentum
                              << " output_mean_var " << output_mean_var);
        const auto inputs = BatchNormInputs(c.data, c.axis, dtype, seed += 5);
        const AttrMap attrs = {{"axis", c.axis},
                               {"fix_gamma", false},
                               {"momentum", c.momentum},
                               {"eps", 1e-5},
                               {"output_mean_var", output_mean_var}};
        const auto expected_in = Clones(inputs);
        const auto actual_in = Clones(inputs);
        const auto expected = RunOp("BatchNorm", expected_in, attrs, true);
        const auto actual = RunLowered("BatchNorm", actual_in, attrs, InterpreterRunner(), true);
        REQUIRE(actual.size() == expected.size());
        KILN_CHECK_CLOSE(actual[0], expected[0], NormTolerance(dtype).rtol, NormTolerance(dtype).atol);
        for (size_t k = 1; k < actual.size(); ++k) KILN_CHECK_CLOSE(actual[k], expected[k], 0, 0);
        // The moving statistics moved, exactly as the reference's.
        CHECK_FALSE(actual_in[3].BitwiseEquals(inputs[3]));
        CHECK(actual_in[3].BitwiseEquals(expected_in[3]));
        CHECK(actual_in[4].BitwiseEquals(expected_in[4]));
      }
    }
  }
}

TEST_CASE("Dropout is an exact copy at inference and with p = 0", "[lower][nn][dropout]") {
  for (const DType dtype : {DType::kFloat32, DType::kFloat64, DType::kFloat16}) {
    const Tensor x = RandomTensor({3, 5, 7}, 11, -1, 1, dtype);
    CHECK(RunLowered("Dropout", {x}, {{"p", 0.5}})[0].BitwiseEquals(x));
    CHECK(RunLowered("Dropout", {x}, {{"p", 0.0}}, InterpreterRunner(), true)[0].BitwiseEquals(x));
    CHECK(RunLowered("Dropout", {x}, {{"p", 0.0}, {"mode", "always"}})[0].BitwiseEquals(x));
    Compare("Dropout", {x}, {{"p", 0.3}}, {0, 0});
  }
}

TEST_CASE("Dropout in training drops a fraction p, scales the rest, deterministically", "[lower][nn][dropout]") {
  // 20000 elements: parallel chunks. The drop count is binomial: 5 standard deviations
  // of the rate are 0.018 at p = 0.5.
  const Tensor x = RandomTensor({4, 5000}, 21, 0.5, 1.5);
  for (const double p : {0.1, 0.5, 0.8}) {
    INFO("p " << p);
    const AttrMap attrs = {{"p", p}};
    const Tensor out = RunLowered("Dropout", {x}, attrs, InterpreterRunner(), true, 1234)[0];
    CHECK(std::fabs(DropRate(out) - p) < 5 * std::sqrt(p * (1 - p) / static_cast<double>(x.size())));
    CheckScaling(x, out, p, 1e-6);
    // The same seed gives the same mask whatever the split into tasks; another seed another.
    CHECK(RunLowered("Dropout", {x}, attrs, WholeRangeRunner(), true, 1234)[0].BitwiseEquals(out));
    CHECK_FALSE(RunLowered("Dropout", {x}, attrs, InterpreterRunner(), true, 1235)[0].BitwiseEquals(out));
    // mode 'always' drops at inference too.
    const Tensor always =
        RunLowered("Dropout", {x}, {{"p", p}, {"mode", "always"}}, InterpreterRunner(), false, 1234)[0];
    CHECK(std::fabs(DropRate(always) - p) < 5 * std::sqrt(p * (1 - p) / static_cast<double>(x.size())));
  }
  const kir::Kernel kernel = LowerOpForInputs("Dropout", {x}, {{"p", 0.5}}, true, 1);
  CHECK(kernel.parallel_extent == 2);
  // Neighbouring elements are independent: the lag-1 agreement of the mask is 1/2 at p = 1/2.
  const Tensor out = RunLowered("Dropout", {x}, {{"p", 0.5}}, InterpreterRunner(), true, 99)[0];
  int64_t agree = 0;
  for (int64_t i = 1; i < out.size(); ++i) agree += (out.GetDouble(i) == 0) == (out.GetDouble(i - 1) == 0);
  CHECK(std::fabs(static_cast<double>(agree) / static_cast<double>(out.size() - 1) - 0.5) < 0.018);
}

TEST_CASE("Dropout in float64 and float16, p = 1, and masks shared along axes", "[lower][nn][dropout]") {
  for (const DType dtype : {DType::kFloat64, DType::kFloat16}) {
    INFO(DTypeName(dtype));
    const Tensor x = RandomTensor({40, 50}, 31, 0.5, 1.5, dtype);
    const Tensor out = RunLowered("Dropout", {x}, {{"p", 0.25}}, InterpreterRunner(), true, 5)[0];
    CHECK(std::fabs(DropRate(out) - 0.25) < 5 * std::sqrt(0.25 * 0.75 / 2000));
    CheckScaling(x, out, 0.25, dtype == DType::kFloat16 ? 1e-3 : 1e-15);
  }
  const Tensor x = RandomTensor({3, 4, 5}, 41, 0.5, 1.5);
  const Tensor none = RunLowered("Dropout", {x}, {{"p", 1.0}}, InterpreterRunner(), true, 5)[0];
  CHECK(DropRate(none) == 1.0);
  // axes (1,): 48 draws, one per (i, k), shared by every j; axes (0, 2): 40, one per j.
  const Tensor big = RandomTensor({6, 40, 8}, 43, 0.5, 1.5);
  for (const std::vector<int64_t>& axes : {std::vector<int64_t>{1}, std::vector<int64_t>{0, -1}}) {
    INFO("axes " << ShapeToString(axes));
    const Tensor out = RunLowered("Dropout", {big}, {{"p", 0.5}, {"axes", axes}}, InterpreterRunner(), true, 77)[0];
    CheckScaling(big, out, 0.5, 1e-6);
    int64_t mismatches = 0;
    for (int64_t i = 0; i < 6; ++i) {
      for (int64_t j = 0; j < 40; ++j) {
        for (int64_t k = 0; k < 8; ++k) {
          // The element sharing this one's draw: same j (axes 0, 2) or same i and k (axis 1).
          const int64_t other = axes.size() == 1 ? i * 40 * 8 + k : j * 8;
          mismatches += (out.GetDouble((i * 40 + j) * 8 + k) == 0) != (out.GetDouble(other) == 0);
        }
      }
    }
    CHECK(mismatches == 0);
    const double rate = DropRate(out);
    CHECK(rate > 0.2);
    CHECK(rate < 0.8);
  }
}

TEST_CASE("Winograd with run-time filters: the filter transform, the convolution, the weight gradient",
          "[lower][nn][conv][winograd]") {
  // Run by the kir interpreter, which checks every index against its buffer: partial
  // tiles, pads 0 to 2, images batched into a narrow product, blocks of filters and
  // channels, chunks of tile rows. float32 against float64 references: rtol 1e-4.
  // F(2x2, 3x3), F(4x4, 3x3) and F(2x2, 5x5).
  for (const auto& [tile, kernel] : {std::pair<int64_t, int64_t>{2, 3}, {4, 3}, {2, 5}}) {
    const Tensor weight = RandomTensor({20, 17, kernel, kernel}, 801);
    Compare("_winograd_filters", {weight}, {{"tile", tile}}, Tolerance{1e-6, 1e-6});
    Compare("_winograd_filters", {weight}, {{"tile", tile}, {"flip", true}}, Tolerance{1e-6, 1e-6});
  }
  struct WinogradCase {
    Shape data;
    int64_t filters;
    std::vector<int64_t> pad;
    bool bias;
    int64_t tile = 2, kernel = 3;
  };
  uint64_t seed = 810;
  for (const WinogradCase& c : {
           WinogradCase{{2, 17, 9, 11}, 20, {1, 1}, true},
           WinogradCase{{1, 16, 12, 9}, 16, {0, 2}, false},
           WinogradCase{{5, 16, 5, 6}, 40, {1, 1}, true},
           // F(4x4, 3x3): partial tiles along both axes, pad 0 and 1.
           WinogradCase{{2, 17, 13, 11}, 20, {1, 1}, true, 4, 3},
           WinogradCase{{1, 16, 14, 16}, 24, {0, 1}, false, 4, 3},
           // F(2x2, 5x5): LeNet's second layer (narrow: 25 tiles), and a data gradient's pad 4.
           WinogradCase{{3, 32, 14, 14}, 24, {0, 0}, true, 2, 5},
           WinogradCase{{1, 16, 10, 9}, 17, {4, 4}, false, 2, 5},
       }) {
    INFO("data " << ShapeToString(c.data) << " filters " << c.filters << " F(" << c.tile << ", " << c.kernel << ")");
    const Tensor u = RunOp("_winograd_filters", {RandomTensor({c.filters, c.data[1], c.kernel, c.kernel}, ++seed)},
                           {{"tile", c.tile}})[0];
    std::vector<Tensor> inputs = {RandomTensor(c.data, ++seed), u};
    if (c.bias) inputs.push_back(RandomTensor({c.filters}, ++seed));
    // Outputs are sums of up to 800 products of magnitude ~10: F(2x2, 3x3) stays within
    // 1e-5 of them, the larger tiles' coefficients (up to 5 in B^T, 1/24 in G) round
    // about ten times more (seen: 1.5e-5).
    const double atol = c.tile == 2 && c.kernel == 3 ? 1e-5 : 1e-4;
    Compare("_winograd_conv", inputs, {{"tile", c.tile}, {"pad", c.pad}, {"no_bias", !c.bias}}, Tolerance{1e-4, atol});
  }
  struct GradCase {
    Shape out_grad, data;
    std::vector<int64_t> pad;
    int64_t kernel = 3;
  };
  for (const GradCase& c :
       {GradCase{{2, 16, 9, 11}, {2, 20, 9, 11}, {1, 1}}, GradCase{{6, 24, 5, 5}, {6, 16, 7, 7}, {0, 0}},
        GradCase{{2, 72, 8, 8}, {2, 80, 6, 6}, {2, 2}}, GradCase{{1, 16, 24, 23}, {1, 17, 24, 23}, {1, 1}},
        // 300 filters: blocks of 256 and a ragged 44.
        GradCase{{1, 300, 10, 10}, {1, 40, 10, 10}, {1, 1}},
        // F(4x4, 3x3) on outputs of at least 28x28: partial tiles, chunks of tile rows.
        GradCase{{1, 16, 30, 29}, {1, 17, 30, 29}, {1, 1}},
        // F(2x2, 5x5): LeNet's second layer, whole images per chunk; and padded.
        GradCase{{4, 24, 10, 10}, {4, 32, 14, 14}, {0, 0}, 5}, GradCase{{1, 16, 9, 8}, {1, 20, 9, 8}, {2, 2}, 5}}) {
    INFO("out_grad " << ShapeToString(c.out_grad) << " data " << ShapeToString(c.data) << " kernel " << c.kernel);
    const AttrMap attrs = {
        {"kernel", std::vector<int64_t>{c.kernel, c.kernel}}, {"num_filter", c.out_grad[1]}, {"pad", c.pad}};
    const kir::Kernel kernel =
        LowerOpForInputs("_backward_Convolution_weight", {RandomTensor(c.out_grad, 1), RandomTensor(c.data, 2)}, attrs);
    // Winograd's scratch (the transforms and the products' sums), not im2col's.
    bool winograd = false;
    for (const auto& arg : kernel.args) winograd |= arg->name == "winograd";
    CHECK(winograd);
    Compare("_backward_Convolution_weight", {RandomTensor(c.out_grad, ++seed), RandomTensor(c.data, ++seed)}, attrs,
            Tolerance{1e-4, 1e-4});
  }
}
