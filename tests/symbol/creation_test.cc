// zeros, ones, full, arange, random_uniform, random_normal. Expected values marked
// "MXNet" were printed by MXNet 1.9.1 (mx.nd.<op>, mx.nd._internal._arange) and pasted here.
#include <catch2/catch.hpp>
#include <cmath>

#include "runtime/error.h"
#include "tests/op_test_util.h"

using namespace kiln;
using namespace kiln::testing;

namespace {

// The output slot after shape inference, starting from `output` (what a consumer knows).
ShapeSlot InferOutput(const std::string& op, const AttrMap& attrs, ShapeSlot output = std::nullopt) {
  return InferShapeSlots(op, {}, attrs, {std::move(output)})[0];
}

struct Moments {
  double mean = 0;
  double stddev = 0;
  double min = INFINITY;
  double max = -INFINITY;
};

Moments Measure(const Tensor& t) {
  Moments m;
  double sum = 0;
  double sum_sq = 0;
  for (int64_t i = 0; i < t.size(); ++i) {
    const double v = t.GetDouble(i);
    sum += v;
    sum_sq += v * v;
    m.min = std::min(m.min, v);
    m.max = std::max(m.max, v);
  }
  const double n = static_cast<double>(t.size());
  m.mean = sum / n;
  m.stddev = std::sqrt(sum_sq / n - m.mean * m.mean);
  return m;
}

}  // namespace

TEST_CASE("constant fills", "[creation]") {
  KILN_CHECK_CLOSE(RunOp("zeros", {}, {{"shape", {2, 3}}})[0], Values({2, 3}, {0, 0, 0, 0, 0, 0}), 0, 0);
  KILN_CHECK_CLOSE(RunOp("ones", {}, {{"shape", "(4,)"}})[0], Values({4}, {1, 1, 1, 1}), 0, 0);
  KILN_CHECK_CLOSE(RunOp("full", {}, {{"shape", {3}}, {"value", -1.5}})[0], Values({3}, {-1.5, -1.5, -1.5}), 0, 0);
  // MXNet: full((2, 2), 2.7, dtype='int32') is all 2.
  const Tensor ints = RunOp("full", {}, {{"shape", {2, 2}}, {"value", 2.7}, {"dtype", "int32"}})[0];
  CHECK(ints.dtype() == DType::kInt32);
  KILN_CHECK_CLOSE(ints, Values({2, 2}, {2, 2, 2, 2}), 0, 0);
  const Tensor flags = RunOp("ones", {}, {{"shape", {2}}, {"dtype", "bool"}})[0];
  CHECK(flags.dtype() == DType::kBool);
  CHECK(flags.GetDouble(1) == 1.0);
  CHECK(RunOp("zeros", {}, {{"shape", {1}}, {"dtype", "float16"}})[0].dtype() == DType::kFloat16);
  // `ctx` is MXNet's imperative device: accepted, ignored.
  CHECK_NOTHROW(RunOp("zeros", {}, {{"shape", {2}}, {"ctx", "cpu(0)"}}));

  // MXNet's graph names.
  for (const char* alias : {"_zeros", "_ones", "_full", "_arange"}) {
    CHECK(&OpRegistry::Global().Get(alias) == &OpRegistry::Global().Get(alias + 1));
  }
  CHECK(OpRegistry::Global().Get("zeros").InputNames(ParseAttrs("zeros", {})).empty());
  CHECK(OpRegistry::Global().Get("zeros").pattern() == OpPattern::kElementwise);
  CHECK_THROWS_WITH(ParseAttrs("full", {{"shape", {2}}}), Catch::Contains("'value'") && Catch::Contains("missing"));
  CHECK_THROWS_WITH(ParseAttrs("zeros", {{"shape", {2, -3}}}), Catch::Contains("'shape'") && Catch::Contains(">= 0"));
  CHECK_THROWS_WITH(ParseAttrs("zeros", {{"dtype", "complex64"}}), Catch::Contains("'dtype'"));
}

TEST_CASE("fill shapes: () and 0 dims are inferred from the consumer, as in MXNet 1.x", "[creation]") {
  CHECK(*InferOutput("zeros", {{"shape", {2, 3}}}) == Shape{2, 3});
  CHECK(!InferOutput("zeros", {}));
  CHECK(!InferOutput("full", {{"value", 1.0}}));  // shape None
  CHECK(!InferOutput("ones", {{"shape", {0, 256}}}));
  CHECK(*InferOutput("ones", {{"shape", {0, 256}}}, Shape{8, 256}) == Shape{8, 256});
  CHECK(*InferOutput("zeros", {{"shape", "()"}}, Shape{4}) == Shape{4});
  CHECK_THROWS_WITH(InferOutput("ones", {{"shape", {0, 256}}}, Shape{8, 128}),
                    Catch::Contains("output") && Catch::Contains("(0,256)") && Catch::Contains("given (8,128)"));
  CHECK_THROWS_WITH(InferOutput("zeros", {{"shape", {2, 3}}}, Shape{2, 3, 1}), Catch::Contains("given (2,3,1)"));
  CHECK_THROWS_WITH(InferOpShapes("zeros", {}), Catch::Contains("not inferred"));
}

TEST_CASE("arange follows MXNet's length and value rules", "[creation]") {
  // MXNet
  KILN_CHECK_CLOSE(RunOp("arange", {}, {{"start", 0.5}, {"stop", 3.0}, {"step", 0.7}, {"repeat", 2}})[0],
                   Values({8}, {0.5, 0.5, 1.2, 1.2, 1.9, 1.9, 2.6, 2.6}), 1e-6, 0);
  KILN_CHECK_CLOSE(RunOp("arange", {}, {{"start", 5}, {"stop", 1}, {"step", -1.5}})[0], Values({3}, {5, 3.5, 2}), 0, 0);
  KILN_CHECK_CLOSE(RunOp("arange", {}, {{"start", 4}})[0], Values({4}, {0, 1, 2, 3}), 0, 0);
  KILN_CHECK_CLOSE(RunOp("arange", {}, {{"start", 4}, {"step", 1.5}})[0], Values({3}, {0, 1.5, 3}), 0, 0);
  // MXNet casts start and step to an integer dtype first.
  KILN_CHECK_CLOSE(RunOp("arange", {}, {{"start", 5}, {"stop", 1}, {"step", -1.5}, {"dtype", "int32"}})[0],
                   Values({3}, {5, 4, 3}, DType::kInt32), 0, 0);
  KILN_CHECK_CLOSE(RunOp("arange", {}, {{"start", 0.5}, {"stop", 3}, {"step", 0.7}, {"dtype", "int32"}})[0],
                   Values({4}, {0, 0, 0, 0}, DType::kInt32), 0, 0);
  const Tensor int64 = RunOp("arange", {}, {{"start", -2.5}, {"stop", 3}, {"dtype", "int64"}})[0];
  CHECK(int64.dtype() == DType::kInt64);
  KILN_CHECK_CLOSE(int64, Values({6}, {-2, -1, 0, 1, 2, 3}, DType::kInt64), 0, 0);
  CHECK(InferOpShapes("arange", {}, {{"start", 0}, {"stop", 1}, {"step", 0.1}})[0] == Shape{10});

  // infer_range without stop: the length comes from the consumer, values from start.
  CHECK(!InferOutput("arange", {{"start", 1}, {"infer_range", true}}));
  CHECK(*InferOutput("arange", {{"start", 0}, {"stop", 4}, {"infer_range", true}}) == Shape{4});
  CHECK_THROWS_WITH(InferOutput("arange", {{"start", 1}, {"infer_range", true}}, Shape{2, 2}), Catch::Contains("1-d"));
  {
    const OpDef& op = OpRegistry::Global().Get("arange");
    const Attrs attrs = ParseAttrs("arange", {{"start", 1}, {"step", 0.5}, {"repeat", 2}, {"infer_range", true}});
    Tensor out({6}, DType::kFloat32);
    op.RunReference(attrs, {}, std::span<Tensor>(&out, 1), RefContext{});
    KILN_CHECK_CLOSE(out, Values({6}, {1, 1, 1.5, 1.5, 2, 2}), 0, 0);
  }

  // MXNet: "Invalid range (start, stop, step) = (5,1,1)", "step=0", "repeat > 0".
  CHECK_THROWS_WITH(ParseAttrs("arange", {{"start", 5}, {"stop", 1}}), Catch::Contains("empty range"));
  CHECK_THROWS_WITH(ParseAttrs("arange", {{"start", 5}, {"stop", 5}}), Catch::Contains("empty range"));
  CHECK_THROWS_WITH(ParseAttrs("arange", {{"start", 0}}), Catch::Contains("empty range"));
  CHECK_THROWS_WITH(ParseAttrs("arange", {{"start", 0}, {"stop", 3}, {"step", 0}}), Catch::Contains("'step'"));
  CHECK_THROWS_WITH(ParseAttrs("arange", {{"start", 0}, {"stop", 3}, {"repeat", 0}}),
                    Catch::Contains("'repeat'") && Catch::Contains(">= 1"));
  CHECK_THROWS_WITH(ParseAttrs("arange", {{"stop", 3}}), Catch::Contains("'start'") && Catch::Contains("missing"));
  CHECK_THROWS_WITH(ParseAttrs("arange", {{"start", 0}, {"stop", "inf"}}), Catch::Contains("finite"));
  CHECK_THROWS_WITH(ParseAttrs("arange", {{"start", 0}, {"stop", 1e300}, {"step", 1e-300}}),
                    Catch::Contains("too long"));
  CHECK_THROWS_WITH(ParseAttrs("arange", {{"start", 1}, {"stop", 3}, {"dtype", "bool"}}), Catch::Contains("'dtype'"));
}

TEST_CASE("random ops are deterministic per seed", "[creation]") {
  for (const char* op : {"random_uniform", "random_normal"}) {
    INFO(op);
    const AttrMap attrs = {{"shape", {64}}};
    const Tensor a = RunOp(op, {}, attrs, false, 42)[0];
    const Tensor b = RunOp(op, {}, attrs, false, 42)[0];
    const Tensor c = RunOp(op, {}, attrs, false, 43)[0];
    CHECK(a.BitwiseEquals(b));
    int same = 0;
    for (int64_t i = 0; i < a.size(); ++i) same += a.GetDouble(i) == c.GetDouble(i) ? 1 : 0;
    CHECK(same == 0);
    // Not constant within one draw either.
    CHECK(Measure(a).stddev > 0.1);
    CHECK(OpRegistry::Global().Get(op).pattern() == OpPattern::kOpaque);
  }
  CHECK(&OpRegistry::Global().Get("uniform") == &OpRegistry::Global().Get("random_uniform"));
  CHECK(&OpRegistry::Global().Get("_random_uniform") == &OpRegistry::Global().Get("random_uniform"));
  CHECK(&OpRegistry::Global().Get("normal") == &OpRegistry::Global().Get("random_normal"));
  CHECK(&OpRegistry::Global().Get("_random_normal") == &OpRegistry::Global().Get("random_normal"));
}

TEST_CASE("random ops have the right distribution", "[creation]") {
  // 200000 samples: the standard error of the mean is below 0.005 for both, so the bounds
  // below (several standard errors) fail only for a wrong distribution.
  const Tensor u = RunOp("random_uniform", {}, {{"low", 2.0}, {"high", 5.0}, {"shape", {200, 1000}}}, false, 7)[0];
  const Moments mu = Measure(u);
  CHECK(mu.min >= 2.0);
  CHECK(mu.max < 5.0);
  CHECK(mu.min < 2.01);
  CHECK(mu.max > 4.99);
  CHECK(std::fabs(mu.mean - 3.5) < 0.02);                      // (low + high) / 2
  CHECK(std::fabs(mu.stddev - 3.0 / std::sqrt(12.0)) < 0.01);  // (high - low) / sqrt(12) = 0.866
  // Each tenth of the interval holds about a tenth of the samples.
  std::vector<int> bins(10, 0);
  for (int64_t i = 0; i < u.size(); ++i) ++bins[static_cast<size_t>((u.GetDouble(i) - 2.0) / 0.3)];
  for (int count : bins) CHECK(std::abs(count - 20000) < 600);

  const Tensor n = RunOp("random_normal", {}, {{"loc", 1.5}, {"scale", 2.0}, {"shape", {200000}}}, false, 7)[0];
  const Moments mn = Measure(n);
  CHECK(std::fabs(mn.mean - 1.5) < 0.03);
  CHECK(std::fabs(mn.stddev - 2.0) < 0.03);
  // About 68.3% within one standard deviation, 95.4% within two.
  int within1 = 0;
  int within2 = 0;
  for (int64_t i = 0; i < n.size(); ++i) {
    const double z = std::fabs(n.GetDouble(i) - 1.5) / 2.0;
    within1 += z < 1 ? 1 : 0;
    within2 += z < 2 ? 1 : 0;
  }
  CHECK(std::fabs(within1 / 200000.0 - 0.6827) < 0.005);
  CHECK(std::fabs(within2 / 200000.0 - 0.9545) < 0.003);
}

TEST_CASE("random op attributes, shapes and dtypes", "[creation]") {
  CHECK(RunOp("random_uniform", {}, {{"shape", {3}}})[0].dtype() == DType::kFloat32);
  CHECK(RunOp("random_normal", {}, {{"shape", {3}}, {"dtype", "float64"}})[0].dtype() == DType::kFloat64);
  CHECK(RunOp("random_uniform", {}, {{"shape", {3}}, {"dtype", "float16"}})[0].dtype() == DType::kFloat16);
  CHECK(RunOp("random_uniform", {}, {{"shape", {3}}, {"dtype", "None"}, {"ctx", "gpu(0)"}})[0].dtype() ==
        DType::kFloat32);
  // Degenerate but allowed in MXNet: low == high.
  KILN_CHECK_CLOSE(RunOp("random_uniform", {}, {{"shape", {2}}, {"low", 3.0}, {"high", 3.0}})[0], Values({2}, {3, 3}),
                   0, 0);
  CHECK(!InferOutput("random_normal", {}));
  CHECK(*InferOutput("random_normal", {{"shape", {0, 5}}}, Shape{3, 5}) == Shape{3, 5});

  // MXNet: "low must be less or equal to high", "scale parameter in gaussian has to be positive".
  CHECK_THROWS_WITH(ParseAttrs("random_uniform", {{"low", 2.0}, {"high", 1.0}}),
                    Catch::Contains("'low'") && Catch::Contains("'high'"));
  CHECK_THROWS_WITH(ParseAttrs("random_normal", {{"scale", 0.0}}),
                    Catch::Contains("'scale'") && Catch::Contains("> 0"));
  CHECK_THROWS_WITH(ParseAttrs("random_normal", {{"scale", -1.0}}), Catch::Contains("'scale'"));
  CHECK_THROWS_WITH(ParseAttrs("random_uniform", {{"dtype", "int32"}}),
                    Catch::Contains("'dtype'") && Catch::Contains("float16, bfloat16, float32, float64"));
  CHECK_THROWS_WITH(ParseAttrs("random_normal", {{"mean", 0.0}}), Catch::Contains("unknown attribute 'mean'"));
}
