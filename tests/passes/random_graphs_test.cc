// Randomized graphs (seeded) from the registry's operators: -O0 against -O2. Without
// the passes that change arithmetic (constant and BatchNorm folding) the results agree
// bit for bit; with every pass, within 1e-4 of the unoptimized graph on smooth graphs.
// Every memory plan also passes the independent checker.
#include "tests/random_graphs.h"

#include <catch2/catch.hpp>
#include <cmath>
#include <cstring>
#include <random>

#include "codegen/compiler.h"
#include "graph/op.h"
#include "runtime/error.h"
#include "symbol/symbol.h"
#include "tests/graph_runner.h"
#include "tests/op_test_util.h"

using namespace kiln;
using namespace kiln::testing;

namespace {

LoweredGraph Lower(const Generated& g, int level, std::vector<std::string> disabled = {}) {
  CompileOptions options;
  options.input_shapes = {{"data", kShape}};
  options.graph_opt_level = level;
  options.passes.disabled.insert(disabled.begin(), disabled.end());
  options.passes.verify = true;
  LoweredGraph lowered = LowerGraph(g.graph, options);
  const std::string problem = CheckMemoryPlan(lowered.memory_problem, lowered.memory_plan);
  INFO(problem);
  REQUIRE(problem.empty());
  return lowered;
}

bool SameBitsOrBothNaN(const Tensor& a, const Tensor& b) {
  if (a.shape() != b.shape() || a.dtype() != b.dtype()) return false;
  for (int64_t i = 0; i < a.size(); ++i) {
    const double x = a.GetDouble(i), y = b.GetDouble(i);
    if (std::isnan(x) && std::isnan(y)) continue;
    if (std::memcmp(&x, &y, sizeof x) != 0) return false;
  }
  return true;
}

}  // namespace

TEST_CASE("the registry offers the generator enough scalar operators", "[passes][random]") {
  CHECK(RegistryScalarOps().unary.size() >= 30);
  CHECK(RegistryScalarOps().binary.size() >= 10);
}

TEST_CASE("2000 random graphs: -O2 without the arithmetic folds equals -O0 bit for bit", "[passes][random]") {
  int fused_kernels = 0, kernels = 0;
  for (uint64_t seed = 1; seed <= 2000; ++seed) {
    const Generated g = GraphGenerator(seed, /*smooth=*/false).Make();
    INFO("seed " << seed << ": " << g.description);
    const auto plain = RunWithInterpreter(Lower(g, 0), g.inputs);
    const LoweredGraph optimized = Lower(g, 2, {"fold_constants", "fold_batchnorm"});
    const auto got = RunWithInterpreter(optimized, g.inputs);
    REQUIRE(got.size() == plain.size());
    for (size_t i = 0; i < got.size(); ++i) REQUIRE(SameBitsOrBothNaN(got[i], plain[i]));
    kernels += optimized.artifact.report().kernels_before_fusion();
    fused_kernels += optimized.artifact.kernels_size();
  }
  // Fusion did something across the corpus (outputs, pooling, views and opaque operators
  // bound it: about 17% fewer kernels).
  CHECK(fused_kernels < kernels * 9 / 10);
}

TEST_CASE("500 random smooth graphs: every pass at -O2 within 1e-4 of -O0", "[passes][random]") {
  for (uint64_t seed = 5001; seed <= 5500; ++seed) {
    const Generated g = GraphGenerator(seed, /*smooth=*/true).Make();
    INFO("seed " << seed << ": " << g.description);
    const auto plain = RunWithInterpreter(Lower(g, 0), g.inputs);
    const auto got = RunWithInterpreter(Lower(g, 2), g.inputs);
    for (size_t i = 0; i < got.size(); ++i) KILN_CHECK_CLOSE(got[i], plain[i], 1e-4, 1e-5);
  }
}
