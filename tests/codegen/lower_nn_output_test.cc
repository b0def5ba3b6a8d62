// Lowerings of softmax and the output layers (symbol/ops/softmax.cc), the index gathers
// (symbol/ops/index.cc) and the sources (symbol/ops/creation.cc), run by the kir
// interpreter against the reference.
//
// Tolerances: gathers, fills and integer aranges are exact. Softmax outputs (float32
// exp and sums against the reference's double) rtol 1e-5 atol 1e-6, log_softmax and the
// cross-entropy loss atol 1e-5 (float16 outputs rtol and atol 1e-3, float64 1e-12);
// float32 arange rtol 1e-6 atol 1e-6. Random sources draw other numbers than the
// reference (a counter-based generator, see creation.cc): they are checked for their
// distribution (moments, Kolmogorov-Smirnov distance, lag-1 correlation) and determinism.
#include <algorithm>
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

const double kNan = std::nan("");
const double kInf = INFINITY;

struct Tolerance {
  double rtol;
  double atol;
};

Tolerance SoftmaxTolerance(DType out, bool log) {
  switch (out) {
    case DType::kFloat16: return {1e-3, 1e-3};
    case DType::kFloat64: return {1e-12, 1e-12};
    default: return {1e-5, log ? 1e-5 : 1e-6};
  }
}

// Every output of the lowering against the reference's.
void Compare(const std::string& op, const std::vector<Tensor>& inputs, const AttrMap& attrs, Tolerance tolerance) {
  const std::vector<Tensor> expected = RunOp(op, inputs, attrs);
  const std::vector<Tensor> actual = RunLowered(op, inputs, attrs);
  REQUIRE(actual.size() == expected.size());
  for (size_t k = 0; k < actual.size(); ++k) {
    CHECK(actual[k].dtype() == expected[k].dtype());
    KILN_CHECK_CLOSE(actual[k], expected[k], tolerance.rtol, tolerance.atol);
  }
}

void CompareExact(const std::string& op, const std::vector<Tensor>& inputs, const AttrMap& attrs) {
  Compare(op, inputs, attrs, {0, 0});
}

}  // namespace

TEST_CASE("every softmax, output-layer, index and creation operator has a lowering", "[lower]") {
  for (const char* name : {"softmax",
                           "log_softmax",
                           "SoftmaxOutput",
                           "Softmax",
                           "LinearRegressionOutput",
                           "MAERegressionOutput",
                           "LogisticRegressionOutput",
                           "softmax_cross_entropy",
                           "Embedding",
                           "one_hot",
                           "pick",
                           "zeros",
                           "ones",
                           "full",
                           "arange",
                           "_arange",
                           "random_uniform",
                           "uniform",
                           "random_normal",
                           "normal"}) {
    INFO(name);
    const OpDef* op = OpRegistry::Global().Find(name);
    REQUIRE(op != nullptr);
    CHECK(op->has_lowering());
  }
}

TEST_CASE("softmax and log_softmax along every axis", "[lower][softmax]") {
  uint64_t seed = 1;
  // 20 classes along the last axis take the lane path; 9 and 10 do not.
  for (const Shape& shape :
       {Shape{7}, Shape{1}, Shape{3, 1, 5}, Shape{4, 9, 10}, Shape{2, 3, 20}, Shape{1, 13, 1, 3}}) {
    const Tensor x = RandomTensor(shape, seed++, -4, 4);
    const auto ndim = static_cast<int64_t>(shape.size());
    for (const char* op : {"softmax", "log_softmax"}) {
      const bool log = std::string(op) == "log_softmax";
      for (int64_t axis = -ndim; axis < ndim; ++axis) {
        for (const AttrArg& temperature : {AttrArg(std::monostate{}), AttrArg(0.5), AttrArg(-2.0)}) {
          INFO(op << " of " << ShapeToString(shape) << " axis " << axis << " temperature "
                  << FormatAttrValue(temperature.value));
          Compare(op, {x}, {{"axis", axis}, {"temperature", temperature}}, SoftmaxTolerance(DType::kFloat32, log));
        }
      }
    }
  }
}

TEST_CASE("log_softmax of inputs around 1e4 is (x - max) - log(sum): exact where max + log(sum) rounds",
          "[lower][softmax]") {
  // float32 spacing at 1e4 is about 0.001: adding log(sum) to the max first would lose it.
  for (const Shape& shape : {Shape{3, 20}, Shape{4, 9}, Shape{2, 5, 3}}) {
    Tensor x = RandomTensor(shape, 7, -1, 1);
    for (int64_t i = 0; i < x.size(); ++i) x.SetDouble(i, 1e4 + x.GetDouble(i));
    const auto got = RunLowered("log_softmax", {x}, {{"axis", 1}});
    const auto expected = RunOp("log_softmax", {x}, {{"axis", 1}});
    INFO(ShapeToString(shape));
    KILN_CHECK_CLOSE(got[0], expected[0], 0, 2e-6);
  }
}

TEST_CASE("softmax dtypes: float16 and float64 data, the dtype attribute", "[lower][softmax]") {
  const Tensor x = RandomTensor({3, 4, 18}, 5, -3, 3);
  for (const DType in : {DType::kFloat16, DType::kFloat32, DType::kFloat64}) {
    for (const AttrArg& dtype : {AttrArg(std::monostate{}), AttrArg(DType::kFloat16), AttrArg(DType::kFloat64)}) {
      for (const char* op : {"softmax", "log_softmax"}) {
        for (const int64_t axis : {1, -1}) {
          INFO(op << " " << DTypeName(in) << " -> " << FormatAttrValue(dtype.value) << " axis " << axis);
          const DType out =
              dtype.value.index() == 0
                  ? in
                  : DType(std::get<std::string>(dtype.value) == "float16" ? DType::kFloat16 : DType::kFloat64);
          // float16 data limits what the output can match to float16's precision.
          const DType tolerance_type = in == DType::kFloat16 && out == DType::kFloat64 ? DType::kFloat32 : out;
          Compare(op, {x.CastTo(in)}, {{"axis", axis}, {"dtype", dtype}},
                  SoftmaxTolerance(tolerance_type, std::string(op) == "log_softmax"));
        }
      }
    }
  }
}

TEST_CASE("softmax with use_length masks the axis past each row's length", "[lower][softmax]") {
  const Tensor x = RandomTensor({3, 20, 4}, 8, -2, 2);
  for (const DType dtype : {DType::kInt32, DType::kInt64, DType::kUInt8, DType::kInt8}) {
    // Lengths past the axis clip to it; 0 and negative mask everything.
    std::vector<double> lengths;
    for (int64_t i = 0; i < 60; ++i) lengths.push_back(static_cast<double>(i % 25) - 2);
    for (const int64_t axis : {-1, 1}) {
      INFO(DTypeName(dtype) << " axis " << axis);
      const Shape length_shape = axis == -1 ? Shape{3, 20} : Shape{3, 4};
      std::vector<double> values(lengths.begin(), lengths.begin() + NumElements(length_shape));
      if (dtype == DType::kUInt8) {
        for (double& v : values) v = std::max(v, 0.0);
      }
      Compare("softmax", {x, Values(length_shape, values, dtype)}, {{"axis", axis}, {"use_length", true}},
              SoftmaxTolerance(DType::kFloat32, false));
    }
  }
}

TEST_CASE("softmax of rows with NaN and infinities", "[lower][softmax]") {
  const Tensor x = Values({4, 3}, {1, kNan, 2, -kInf, -kInf, -kInf, kInf, 1, 2, -kInf, 0, 1});
  for (const char* op : {"softmax", "log_softmax"}) {
    INFO(op);
    const Tolerance tolerance = SoftmaxTolerance(DType::kFloat32, std::string(op) == "log_softmax");
    Compare(op, {x}, {}, tolerance);
    Compare(op, {x}, {{"axis", 0}}, tolerance);
  }
}

TEST_CASE("large softmaxes run rows (or column tiles) in parallel", "[lower][softmax]") {
  const Tensor x = RandomTensor({64, 300}, 9, -5, 5);
  for (const int64_t axis : {-1, 0}) {
    INFO("axis " << axis);
    Compare("softmax", {x}, {{"axis", axis}}, SoftmaxTolerance(DType::kFloat32, false));
    Compare("log_softmax", {x}, {{"axis", axis}}, SoftmaxTolerance(DType::kFloat32, true));
    const kir::Kernel kernel = LowerOpForInputs("softmax", {x}, {{"axis", axis}});
    CHECK(kernel.body->loop_kind == kir::LoopKind::kParallel);
    CHECK(kernel.parallel_extent == (axis == -1 ? 64 : 2));  // rows; or 300 columns in tiles of 256
    CHECK(kir::Print(kernel).find("vectorized for") != std::string::npos);
  }
  CHECK(LowerOpForInputs("softmax", {RandomTensor({4, 5}, 10)}, {}).parallel_extent == 1);
}

TEST_CASE("SoftmaxOutput follows the reference's flattening", "[lower][softmax]") {
  uint64_t seed = 20;
  const Tensor nchw = RandomTensor({2, 3, 4, 5}, seed++, -3, 3);
  const Tensor flat = RandomTensor({6, 17}, seed++, -3, 3);
  for (const DType dtype : {DType::kFloat32, DType::kFloat16, DType::kFloat64}) {
    INFO(DTypeName(dtype));
    const Tolerance tolerance = SoftmaxTolerance(dtype, false);
    const Tensor data = nchw.CastTo(dtype);
    Compare("SoftmaxOutput", {data, Tensor({2, 3, 4}, dtype)}, {}, tolerance);  // over (2, 60)
    Compare("SoftmaxOutput", {data, Tensor({2, 20}, dtype)}, {{"multi_output", true}}, tolerance);
    Compare("SoftmaxOutput", {data, Tensor({2, 3, 4}, dtype)}, {{"preserve_shape", true}}, tolerance);
    Compare("Softmax", {flat.CastTo(dtype), Tensor({6}, dtype)}, {{"grad_scale", 2.0}}, tolerance);
  }
}

TEST_CASE("regression outputs: identity and sigmoid forward", "[lower][softmax]") {
  const Tensor x = RandomTensor({4, 6}, 30, -8, 8);
  for (const DType dtype : {DType::kFloat32, DType::kFloat16, DType::kFloat64}) {
    const Tensor data = x.CastTo(dtype);
    for (const char* op : {"LinearRegressionOutput", "MAERegressionOutput"}) {
      INFO(op << " " << DTypeName(dtype));
      CompareExact(op, {data, Tensor({4, 2, 3}, dtype)}, {});
    }
    INFO(DTypeName(dtype));
    Compare("LogisticRegressionOutput", {data, Tensor({4, 6}, dtype)}, {},
            dtype == DType::kFloat16 ? Tolerance{1e-3, 1e-3} : Tolerance{1e-6, 1e-7});
  }
  const Tensor column = RandomTensor({5, 1}, 31);
  CompareExact("LinearRegressionOutput", {column, Tensor({5}, DType::kFloat32)}, {});
}

TEST_CASE("softmax_cross_entropy clips class indices", "[lower][softmax]") {
  const Tensor data = RandomTensor({8, 7}, 40, -3, 3);
  const std::vector<double> labels = {0, 6, 3.7, -1, 7, 100, kNan, 2};
  for (const DType dtype : {DType::kFloat32, DType::kFloat16, DType::kFloat64}) {
    INFO(DTypeName(dtype));
    const Tolerance tolerance = dtype == DType::kFloat16   ? Tolerance{1e-3, 1e-3}
                                : dtype == DType::kFloat64 ? Tolerance{1e-12, 1e-12}
                                                           : Tolerance{1e-5, 1e-5};
    Compare("softmax_cross_entropy", {data.CastTo(dtype), Values({8}, labels, dtype)}, {}, tolerance);
  }
}

TEST_CASE("Embedding gathers clipped rows in any index and weight dtype", "[lower][index]") {
  const std::vector<double> indices = {0, 3.9, -2, 4, 100, kNan, 2, 1, -0.5, 3};
  for (const DType index_type :
       {DType::kFloat32, DType::kFloat16, DType::kFloat64, DType::kInt32, DType::kInt64, DType::kUInt8, DType::kInt8}) {
    for (const DType weight_type : {DType::kFloat32, DType::kFloat16, DType::kInt32, DType::kInt64}) {
      INFO(DTypeName(index_type) << " indices, " << DTypeName(weight_type) << " weight");
      const Tensor weight = RandomTensor({5, 3}, 50, -100, 100, weight_type);
      const Tensor data = Values({2, 5}, indices, index_type);
      CompareExact("Embedding", {data, weight}, {{"input_dim", 5}, {"output_dim", 3}, {"dtype", weight_type}});
    }
  }
  // Large: rows in parallel.
  const Tensor data = RandomTensor({40, 50}, 51, -2, 12);
  const Tensor weight = RandomTensor({10, 20}, 52);
  const AttrMap attrs = {{"input_dim", 10}, {"output_dim", 20}};
  CompareExact("Embedding", {data, weight}, attrs);
  CHECK(LowerOpForInputs("Embedding", {data, weight}, attrs).parallel_extent == 2000);
}

TEST_CASE("one_hot: truncated indices, out of range rows all off, saturated values", "[lower][index]") {
  const std::vector<double> indices = {0, 2.9, -0.5, -1, 4, 3.999, kNan, kInf, -kInf, 1};
  for (const DType index_type : {DType::kFloat32, DType::kFloat16, DType::kFloat64, DType::kInt32, DType::kInt64}) {
    for (const DType dtype : {DType::kFloat32, DType::kFloat16, DType::kInt8, DType::kUInt8, DType::kInt64}) {
      INFO(DTypeName(index_type) << " -> " << DTypeName(dtype));
      const Tensor data = Values({2, 5}, indices, index_type);
      CompareExact("one_hot", {data}, {{"depth", 4}, {"dtype", dtype}});
      // 300 saturates in int8 and uint8; -2.5 truncates in integers.
      CompareExact("one_hot", {data}, {{"depth", 5}, {"dtype", dtype}, {"on_value", 300.0}, {"off_value", -2.5}});
    }
  }
  CompareExact("one_hot", {Values({3}, {0, 1, 2})}, {{"depth", 0}});
  CompareExact("one_hot", {RandomTensor({500}, 60, -1, 40)}, {{"depth", 40}});
}

TEST_CASE("pick along any axis, clip and wrap modes", "[lower][index]") {
  const Tensor data = RandomTensor({3, 4, 5}, 70);
  uint64_t seed = 71;
  for (int64_t axis = -3; axis < 3; ++axis) {
    Shape index_shape = {3, 4, 5};
    index_shape.erase(index_shape.begin() + (axis + 3) % 3);
    for (const char* mode : {"clip", "wrap"}) {
      for (const bool keepdims : {false, true}) {
        for (const DType index_type : {DType::kFloat32, DType::kInt32, DType::kInt64, DType::kFloat16}) {
          INFO("axis " << axis << " " << mode << " keepdims " << keepdims << " " << DTypeName(index_type));
          Tensor index = RandomTensor(index_shape, seed++, -12, 12, index_type);
          if (IsFloat(index_type)) {
            index.SetDouble(0, kNan);
            index.SetDouble(1, kInf);
            index.SetDouble(2, -kInf);
            index.SetDouble(3, -3.5);
          }
          CompareExact("pick", {data, index}, {{"axis", axis}, {"mode", mode}, {"keepdims", keepdims}});
        }
      }
    }
  }
  // The index may also keep the axis as 1; integer data is gathered exactly.
  const Tensor ints = RandomTensor({4, 6}, 80, -1000, 1000, DType::kInt64);
  CompareExact("pick", {ints, Values({4, 1}, {5, 0, 7, -1}, DType::kInt32)}, {{"axis", 1}, {"mode", "wrap"}});
  // Large: rows in parallel.
  const Tensor big = RandomTensor({300, 10, 60}, 81);
  const Tensor index = RandomTensor({300, 60}, 82, 0, 10, DType::kInt32);
  CompareExact("pick", {big, index}, {{"axis", 1}});
  CHECK(LowerOpForInputs("pick", {big, index}, {{"axis", 1}}).parallel_extent == 300);
}

TEST_CASE("constant fills in every dtype", "[lower][creation]") {
  for (const DType dtype : {DType::kFloat32, DType::kFloat16, DType::kFloat64, DType::kInt8, DType::kUInt8,
                            DType::kInt32, DType::kInt64, DType::kBool}) {
    INFO(DTypeName(dtype));
    CompareExact("zeros", {}, {{"shape", {2, 3}}, {"dtype", dtype}});
    CompareExact("ones", {}, {{"shape", {5}}, {"dtype", dtype}});
    for (const double value : {2.7, -300.5, 1e30, -kInf, kNan, 0.0}) {
      INFO(value);
      CompareExact("full", {}, {{"shape", {3, 1}}, {"value", value}, {"dtype", dtype}});
    }
  }
  CompareExact("full", {}, {{"shape", {70000}}, {"value", 1.5}});
  CHECK(LowerOpForInputs("full", {}, {{"shape", {70000}}, {"value", 1.5}}).parallel_extent == 5);
}

TEST_CASE("arange in every dtype: integer steps truncate, integer values saturate", "[lower][creation]") {
  const std::vector<AttrMap> ranges = {
      {{"start", 5.0}},
      {{"start", -1.0}, {"stop", 1.0}, {"step", 0.1}},
      {{"start", 2.5}, {"stop", 9.0}, {"step", 1.5}, {"repeat", 3}},
      {{"start", 10.0}, {"stop", -3.0}, {"step", -0.7}},
      {{"start", 0.0}, {"stop", 300.0}, {"step", 7.0}},
      {{"start", -200.0}, {"stop", 200.0}, {"step", 30.0}, {"repeat", 2}},
      {{"start", 3.0}, {"stop", 4.0}, {"step", 0.25}},  // integer step 0: the start repeats
      {{"start", -5e9}, {"stop", 5e9}, {"step", 1e9}},
      {{"start", 1e19}, {"stop", 1.1e19}, {"step", 1e17}},  // saturates even int64
  };
  for (const AttrMap& range : ranges) {
    for (const DType dtype : {DType::kFloat32, DType::kFloat16, DType::kFloat64, DType::kInt8, DType::kUInt8,
                              DType::kInt32, DType::kInt64}) {
      AttrMap attrs = range;
      attrs.emplace_back("dtype", dtype);
      INFO(DTypeName(dtype) << " start " << FormatAttrValue(range[0].second.value) << " (range " << &range - &ranges[0]
                            << ")");
      const Tolerance tolerance = dtype == DType::kFloat32   ? Tolerance{1e-6, 1e-6}
                                  : dtype == DType::kFloat16 ? Tolerance{1e-3, 1e-3}
                                                             : Tolerance{0, 0};
      Compare("arange", {}, attrs, tolerance);
    }
  }
  const AttrMap big = {{"start", 0.0}, {"stop", 70000.0}};
  CompareExact("arange", {}, big);
  CHECK(LowerOpForInputs("arange", {}, big).parallel_extent == 5);
}

namespace {

struct Sample {
  double mean = 0;
  double stddev = 0;
  double min = kInf;
  double max = -kInf;
  double lag1 = 0;  // correlation of neighbours
  std::vector<double> sorted;
};

Sample Describe(const Tensor& t) {
  Sample s;
  const auto n = static_cast<double>(t.size());
  for (int64_t i = 0; i < t.size(); ++i) {
    const double v = t.GetDouble(i);
    s.mean += v / n;
    s.min = std::min(s.min, v);
    s.max = std::max(s.max, v);
    s.sorted.push_back(v);
  }
  double var = 0;
  double cov = 0;
  for (int64_t i = 0; i < t.size(); ++i) {
    const double d = t.GetDouble(i) - s.mean;
    var += d * d / n;
    if (i + 1 < t.size()) cov += d * (t.GetDouble(i + 1) - s.mean) / (n - 1);
  }
  s.stddev = std::sqrt(var);
  s.lag1 = cov / var;
  std::sort(s.sorted.begin(), s.sorted.end());
  return s;
}

// The Kolmogorov-Smirnov distance between the sample and a CDF.
double KsDistance(const Sample& s, const std::function<double(double)>& cdf) {
  const auto n = static_cast<double>(s.sorted.size());
  double d = 0;
  for (size_t i = 0; i < s.sorted.size(); ++i) {
    const double f = cdf(s.sorted[i]);
    d = std::max({d, f - static_cast<double>(i) / n, static_cast<double>(i + 1) / n - f});
  }
  return d;
}

}  // namespace

TEST_CASE("random sources: distributions from the counter-based generator", "[lower][creation]") {
  // 20000 draws: chunked in parallel. Bounds are about 4 standard errors (KS: the 0.1%
  // critical value 1.95 / sqrt(n)); the seeds are fixed, so the test is deterministic.
  const int64_t n = 20000;
  const double se = 1 / std::sqrt(static_cast<double>(n));
  for (const DType dtype : {DType::kFloat32, DType::kFloat64, DType::kFloat16}) {
    INFO(DTypeName(dtype));
    const Tensor u = RunLowered("random_uniform", {}, {{"shape", {n}}, {"low", -2.0}, {"high", 3.0}, {"dtype", dtype}},
                                InterpreterRunner(), false, 1234)[0];
    CHECK(u.dtype() == dtype);
    const Sample su = Describe(u);
    CHECK(std::fabs(su.mean - 0.5) < 4 * se * 5 / std::sqrt(12.0));
    CHECK(std::fabs(su.stddev - 5 / std::sqrt(12.0)) < 0.02);
    CHECK(su.min >= -2.0);
    CHECK(su.max <= 3.0);
    CHECK(std::fabs(su.lag1) < 4 * se);
    CHECK(KsDistance(su, [](double x) { return std::clamp((x + 2) / 5, 0.0, 1.0); }) < 1.95 * se + 0.001);

    const Tensor g = RunLowered("random_normal", {}, {{"shape", {n}}, {"loc", 1.0}, {"scale", 2.0}, {"dtype", dtype}},
                                InterpreterRunner(), false, 99)[0];
    const Sample sg = Describe(g);
    CHECK(std::fabs(sg.mean - 1.0) < 4 * se * 2);
    CHECK(std::fabs(sg.stddev - 2.0) < 0.06);
    CHECK(std::fabs(sg.lag1) < 4 * se);
    CHECK(KsDistance(sg, [](double x) { return 0.5 * std::erfc(-(x - 1) / (2 * std::sqrt(2.0))); }) <
          1.95 * se + 0.001);
    CHECK(std::isfinite(sg.min));
    CHECK(std::isfinite(sg.max));
    CHECK(sg.max - sg.min > 12);  // tails reach beyond 3 standard deviations
  }
}

TEST_CASE("random sources are deterministic per seed and element", "[lower][creation]") {
  const auto draw = [](const char* op, int64_t count, uint64_t seed) {
    return RunLowered(op, {}, {{"shape", {count}}}, InterpreterRunner(), false, seed)[0];
  };
  for (const char* op : {"random_uniform", "random_normal"}) {
    INFO(op);
    const Tensor a = draw(op, 20000, 7);
    CHECK(a.BitwiseEquals(draw(op, 20000, 7)));
    // Element i depends only on (seed, i): a shorter draw (one serial task instead of
    // two parallel ones) is a prefix.
    const Tensor prefix = draw(op, 3000, 7);
    CHECK(std::equal(prefix.data_as<float>(), prefix.data_as<float>() + 3000, a.data_as<float>()));
    const Tensor other = draw(op, 20000, 8);
    int64_t same = 0;
    for (int64_t i = 0; i < 20000; ++i) same += a.data_as<float>()[i] == other.data_as<float>()[i];
    CHECK(same < 20);
    CHECK(LowerOpForInputs(op, {}, {{"shape", {20000}}}).parallel_extent == 2);
  }
}

namespace {

// The generator as creation.cc specifies it, on the host with real shifts and xor:
// Squares (Widynski, arXiv:2004.06278) keyed by splitmix64's finalizer of the seed, odd.
uint64_t SquaresKey(uint64_t seed) {
  uint64_t z = seed + 0x9E3779B97F4A7C15ULL;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return (z ^ (z >> 31)) | 1;
}

uint64_t Squares32(uint64_t counter, uint64_t key) {
  uint64_t x = counter * key;
  const uint64_t y = x;
  const uint64_t z = y + key;
  x = x * x + y;
  x = (x >> 32) | (x << 32);
  x = x * x + z;
  x = (x >> 32) | (x << 32);
  x = x * x + y;
  x = (x >> 32) | (x << 32);
  return (x * x + z) >> 32;
}

}  // namespace

TEST_CASE("the kir generator is Squares bit for bit", "[lower][creation]") {
  // counter * key already fills all 64 bits: the emulated shifts see negative values.
  const uint64_t seed = 2024;
  const uint64_t key = SquaresKey(seed);
  const Tensor f32 = RunLowered("random_uniform", {}, {{"shape", {5000}}}, InterpreterRunner(), false, seed)[0];
  const Tensor f64 =
      RunLowered("random_uniform", {}, {{"shape", {5000}}, {"dtype", "float64"}}, InterpreterRunner(), false, seed)[0];
  int64_t mismatches = 0;
  for (uint64_t i = 0; i < 5000; ++i) {
    const double expected32 = std::ldexp(static_cast<double>(Squares32(i, key) >> 8), -24);
    const uint64_t bits53 = (Squares32(2 * i, key) >> 6 << 27) + (Squares32(2 * i + 1, key) >> 5);
    const double expected64 = std::ldexp(static_cast<double>(bits53), -53);
    mismatches += f32.data_as<float>()[i] != expected32;
    mismatches += f64.data_as<double>()[i] != expected64;
  }
  CHECK(mismatches == 0);
}
