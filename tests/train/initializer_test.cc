// Initializers: MXNet 1.9.1's names, defaults and formulas (checked against mx.init on
// mx.nd arrays), determinism per seed, moments on 256x512 arrays, orthogonality, the
// rules by parameter name, and errors for bad specs.
#include "train/initializer.h"

#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <random>
#include <string>

#include "runtime/error.h"

using namespace kiln;

namespace {

struct Moments {
  double mean = 0.0;
  double stddev = 0.0;
  double min = 0.0;
  double max = 0.0;
  double within_one_sigma = 0.0;  // fraction with |x - mean| <= stddev
};

Moments Measure(const Tensor& t) {
  const std::vector<double> v = t.ToDoubles();
  Moments m;
  for (const double x : v) m.mean += x;
  m.mean /= static_cast<double>(v.size());
  for (const double x : v) m.stddev += (x - m.mean) * (x - m.mean);
  m.stddev = std::sqrt(m.stddev / static_cast<double>(v.size()));
  m.min = *std::min_element(v.begin(), v.end());
  m.max = *std::max_element(v.begin(), v.end());
  for (const double x : v) m.within_one_sigma += std::abs(x - m.mean) <= m.stddev ? 1.0 : 0.0;
  m.within_one_sigma /= static_cast<double>(v.size());
  return m;
}

Tensor Run(const std::string& spec, const Shape& shape, uint64_t seed = 7, const std::string& name = "fc_weight") {
  Tensor t(shape, DType::kFloat32);
  std::mt19937_64 rng(seed);
  MakeInitializer(spec)->Init(name, t, rng);
  return t;
}

// Uniform in [-scale, scale]: bounds, reached ends, mean and the stddev scale/sqrt(3).
// With n = 131072 draws the sample mean has stddev scale/sqrt(3n) ~ 0.0016 scale, so 5
// of those bound it; the sample stddev is within 1% with a far larger margin.
void CheckUniform(const Tensor& t, double scale) {
  const Moments m = Measure(t);
  const double n = static_cast<double>(t.size());
  CHECK(m.min >= -scale);
  CHECK(m.max <= scale);
  CHECK(m.min < -0.99 * scale);
  CHECK(m.max > 0.99 * scale);
  CHECK(std::abs(m.mean) < 5 * scale / std::sqrt(3 * n));
  CHECK(m.stddev == Approx(scale / std::sqrt(3.0)).epsilon(0.01));
}

// Normal(0, sigma): mean, stddev, the 68.27% within one sigma, and tails out past 4 sigma
// (n = 131072 expects ~8 draws beyond 4 sigma), never past 7 sigma.
void CheckNormal(const Tensor& t, double sigma) {
  const Moments m = Measure(t);
  const double n = static_cast<double>(t.size());
  CHECK(std::abs(m.mean) < 5 * sigma / std::sqrt(n));
  CHECK(m.stddev == Approx(sigma).epsilon(0.01));
  CHECK(m.within_one_sigma == Approx(0.6827).margin(0.01));
  CHECK(std::max(-m.min, m.max) > 3.5 * sigma);
  CHECK(std::max(-m.min, m.max) < 7 * sigma);
}

const Shape kLarge = {256, 512};

}  // namespace

TEST_CASE("initializers are deterministic per seed") {
  for (const std::string spec : {"uniform", "normal", "xavier", "xavier(rnd_type=gaussian)", "msra_prelu", "orthogonal",
                                 "orthogonal(rand_type=normal)"}) {
    INFO(spec);
    const Tensor a = Run(spec, {32, 48}, 11);
    const Tensor b = Run(spec, {32, 48}, 11);
    const Tensor c = Run(spec, {32, 48}, 12);
    CHECK(a.BitwiseEquals(b));
    CHECK_FALSE(a.BitwiseEquals(c));
  }
}

TEST_CASE("constant initializers") {
  for (const auto& [spec, value] :
       std::vector<std::pair<std::string, double>>{{"zero", 0.0},
                                                   {"zeros", 0.0},
                                                   {"one", 1.0},
                                                   {"ONES", 1.0},
                                                   {"constant(value=2.5)", 2.5},
                                                   {"constant(-3)", -3.0},
                                                   {" constant( value = 0.125 ) ", 0.125}}) {
    INFO(spec);
    Tensor t = Tensor::FromDoubles({2, 2}, std::vector<double>{9, 9, 9, 9});
    std::mt19937_64 rng(1);
    MakeInitializer(spec)->InitWeight("anything", t, rng);  // every element overwritten
    for (const double x : t.ToDoubles()) CHECK(x == value);
  }
}

TEST_CASE("uniform and normal: defaults and moments") {
  CheckUniform(Run("uniform", kLarge), 0.07);
  CheckUniform(Run("uniform(scale=0.5)", kLarge), 0.5);
  CheckUniform(Run("uniform(2)", kLarge), 2.0);
  CheckNormal(Run("normal", kLarge), 0.01);
  CheckNormal(Run("normal(sigma=0.3)", kLarge), 0.3);
}

TEST_CASE("xavier: scale per factor_type against MXNet's formula") {
  // (64, 32, 3, 3): fan_in = 32*9 = 288, fan_out = 64*9 = 576. MXNet 1.9.1 measured:
  // gaussian stddevs 0.0832 (avg), 0.1013 (in), 0.0718 (out).
  const Shape conv = {64, 32, 3, 3};
  CHECK(XavierScale(conv, "avg", 3.0) == Approx(std::sqrt(3.0 / 432.0)).epsilon(1e-12));
  CHECK(XavierScale(conv, "in", 3.0) == Approx(std::sqrt(3.0 / 288.0)).epsilon(1e-12));
  CHECK(XavierScale(conv, "out", 3.0) == Approx(std::sqrt(3.0 / 576.0)).epsilon(1e-12));
  // 2-D: fan_in = shape[1], fan_out = shape[0].
  CHECK(XavierScale(kLarge, "in", 2.0) == Approx(std::sqrt(2.0 / 512.0)).epsilon(1e-12));
  CHECK(XavierScale(kLarge, "out", 2.0) == Approx(std::sqrt(2.0 / 256.0)).epsilon(1e-12));

  const Shape big_conv = {128, 64, 4, 4};  // 131072 elements; fan_in 1024, fan_out 2048
  for (const std::string factor : {"avg", "in", "out"}) {
    INFO(factor);
    const double scale = XavierScale(big_conv, factor, 3.0);
    const double fan = factor == "avg" ? 1536.0 : factor == "in" ? 1024.0 : 2048.0;
    CHECK(scale == Approx(std::sqrt(3.0 / fan)).epsilon(1e-12));
    CheckUniform(Run("xavier(factor_type=" + factor + ")", big_conv), scale);
    CheckNormal(Run("xavier(rnd_type=gaussian, factor_type=" + factor + ")", big_conv), scale);
    const double scale2 = XavierScale(big_conv, factor, 2.34);
    CheckUniform(Run("xavier(uniform, " + factor + ", 2.34)", big_conv), scale2);
  }
  CheckUniform(Run("xavier", kLarge), std::sqrt(3.0 / 384.0));
}

TEST_CASE("msra_prelu is xavier gaussian with magnitude 2 / (1 + slope^2)") {
  const double avg_fan = (512.0 + 256.0) / 2.0;
  CheckNormal(Run("msra_prelu", kLarge), std::sqrt(2.0 / 1.0625 / avg_fan));
  CheckNormal(Run("msraprelu(factor_type=in, slope=0)", kLarge), std::sqrt(2.0 / 512.0));
  CheckNormal(Run("msra_prelu(out, 1)", kLarge), std::sqrt(1.0 / 256.0));
  // Same draws as the equivalent xavier.
  CHECK(Run("msra_prelu(slope=0)", {16, 8}).BitwiseEquals(Run("xavier(rnd_type=gaussian, magnitude=2)", {16, 8})));
}

TEST_CASE("orthogonal: orthonormal rows (or columns) times scale") {
  // MXNet keeps the SVD factor of the (shape[0], prod(rest)) matrix's shape: orthonormal
  // rows when shape[0] <= prod(rest), orthonormal columns otherwise.
  struct Case {
    std::string spec;
    Shape shape;
    double scale;
  };
  for (const Case& c : {Case{"orthogonal", {64, 128}, 1.414}, Case{"orthogonal(rand_type=normal)", {64, 64}, 1.414},
                        Case{"orthogonal(scale=0.5)", {128, 4, 4, 2}, 0.5},
                        Case{"orthogonal(2, normal)", {100, 7}, 2.0}, Case{"orthogonal", {1, 9}, 1.414}}) {
    INFO(c.spec << " " << ShapeToString(c.shape));
    const Tensor t = Run(c.spec, c.shape);
    const int64_t rows = c.shape[0];
    const int64_t cols = t.size() / rows;
    const bool by_rows = rows <= cols;
    const int64_t count = by_rows ? rows : cols;
    const int64_t length = by_rows ? cols : rows;
    const auto at = [&](int64_t vec, int64_t k) { return t.GetDouble(by_rows ? vec * cols + k : k * cols + vec); };
    double worst = 0.0;
    for (int64_t i = 0; i < count; ++i) {
      for (int64_t j = 0; j <= i; ++j) {
        double dot = 0.0;
        for (int64_t k = 0; k < length; ++k) dot += at(i, k) * at(j, k);
        const double expected = i == j ? c.scale * c.scale : 0.0;
        worst = std::max(worst, std::abs(dot - expected));
      }
    }
    CHECK(worst < 1e-5);
  }
}

TEST_CASE("float64 arrays are filled too") {
  Tensor t({256, 512}, DType::kFloat64);
  std::mt19937_64 rng(3);
  MakeInitializer("normal(sigma=1)")->Init("w_weight", t, rng);
  CheckNormal(t, 1.0);
}

TEST_CASE("MXNet's rules by parameter name") {
  const auto init = MakeInitializer("constant(value=7)");
  const auto value_after = [&](const std::string& name) {
    Tensor t({4}, DType::kFloat32);
    t.SetDouble(0, 42.0);
    std::mt19937_64 rng(1);
    init->Init(name, t, rng);
    return t.GetDouble(0);
  };
  CHECK(value_after("fc1_weight") == 7.0);
  CHECK(value_after("fc1_bias") == 0.0);
  CHECK(value_after("bn0_gamma") == 1.0);
  CHECK(value_after("bn0_beta") == 0.0);
  CHECK(value_after("bn0_moving_mean") == 0.0);
  CHECK(value_after("bn0_moving_var") == 1.0);
  CHECK(value_after("bn0_moving_inv_var") == 0.0);
  CHECK(value_after("q_min") == 0.0);
  CHECK(value_after("q_max") == 1.0);
  // "bias" is tested before "weight", as in MXNet.
  CHECK(value_after("weight_bias") == 0.0);
  REQUIRE_THROWS_WITH(value_after("fc1_kernel"), Catch::Contains("unknown initialization pattern for 'fc1_kernel'") &&
                                                     Catch::Contains("weight, bias, gamma, beta"));
  // Bias and friends are set even by an initializer that cannot fill a vector.
  const auto xavier = MakeInitializer("xavier");
  Tensor bias({10}, DType::kFloat32);
  std::mt19937_64 rng(1);
  xavier->Init("fc_bias", bias, rng);
  REQUIRE_THROWS_WITH(xavier->Init("fc_weight", bias, rng),
                      Catch::Contains("'fc_weight' needs at least 2 dimensions, given shape (10)"));
}

TEST_CASE("ToString round-trips through MakeInitializer") {
  for (const std::string spec :
       {"zero", "one", "constant(value=0.3)", "uniform(scale=0.07)", "normal(sigma=0.01)",
        "xavier(rnd_type=gaussian, factor_type=in, magnitude=2.34)", "msra_prelu(factor_type=out, slope=0.1)",
        "orthogonal(scale=1.414, rand_type=normal)"}) {
    CHECK(MakeInitializer(spec)->ToString() == spec);
  }
  CHECK(MakeInitializer("Xavier")->ToString() == "xavier(rnd_type=uniform, factor_type=avg, magnitude=3)");
  CHECK(MakeInitializer("xavier('gaussian', \"out\")")->ToString() ==
        "xavier(rnd_type=gaussian, factor_type=out, magnitude=3)");
}

TEST_CASE("bad specs name the spec, the expected and the given values") {
  const auto fails_with = [](const std::string& spec, const std::string& text) {
    INFO(spec);
    REQUIRE_THROWS_AS(MakeInitializer(spec), Error);
    REQUIRE_THROWS_WITH(MakeInitializer(spec), Catch::Contains("'" + spec + "'") && Catch::Contains(text));
  };
  fails_with("glorot",
             "expected one of zero, one, constant, uniform, normal, xavier, msra_prelu, orthogonal; "
             "given 'glorot'");
  fails_with("xavier(rnd_type=laplace)", "rnd_type to be one of (uniform, gaussian), given 'laplace'");
  fails_with("xavier(factor_type=mean)", "factor_type to be one of (avg, in, out), given 'mean'");
  fails_with("xavier(magnitud=3)", "an argument named one of (rnd_type, factor_type, magnitude), given 'magnitud'");
  fails_with("xavier(magnitude=-1)", "magnitude >= 0, given -1");
  fails_with("uniform(scale=abc)", "scale to be a finite number, given 'abc'");
  fails_with("uniform(scale=nan)", "scale to be a finite number, given 'nan'");
  fails_with("uniform(0.1, 0.2)", "at most 1 arguments (scale), given 2 or more");
  fails_with("normal(sigma=1, sigma=2)", "'sigma' at most once, given twice");
  fails_with("normal(sigma=)", "a value for 'sigma', given none");
  fails_with("normal(sigma=1,)", "an empty argument");
  fails_with("constant", "the argument 'value', given none");
  fails_with("orthogonal(rand_type=gaussian)", "rand_type to be one of (uniform, normal), given 'gaussian'");
  fails_with("xavier(rnd_type=gaussian", "unbalanced parentheses");
  fails_with("zero(1)", "at most 0 arguments (), given 1 or more");
  fails_with("xavier(magnitude=2, gaussian)", "a positional argument 'gaussian' after keyword arguments");
}
