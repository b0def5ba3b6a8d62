// Memory planning against an independent checker (tests/graph_runner.cc): random
// problems, hand-made ones, and the plans of real graphs.
#include <catch2/catch.hpp>
#include <random>

#include "codegen/compiler.h"
#include "passes/plan_memory.h"
#include "tests/graph_runner.h"
#include "tests/op_test_util.h"
#include "tests/test_models.h"

using namespace kiln;
using namespace kiln::testing;

namespace {

// A random straight-line program: each step writes one or two new entries from one to
// three earlier ones, some views, some external entries, scratch now and then, and
// in-place allowances on random pairs.
MemoryProblem RandomProblem(uint64_t seed) {
  std::mt19937_64 rng(seed);
  const auto uniform = [&](int64_t low, int64_t high) { return std::uniform_int_distribution<int64_t>(low, high)(rng); };
  MemoryProblem problem;
  const auto add_entry = [&](bool external) {
    problem.entry_bytes.push_back(uniform(0, 4) == 0 ? uniform(1, 64) : uniform(64, 1 << 16));
    problem.external.push_back(external);
    problem.alias_of.push_back(-1);
    return problem.entry_bytes.size() - 1;
  };
  std::vector<size_t> defined;
  for (int i = 0; i < 3; ++i) defined.push_back(add_entry(true));  // inputs
  const int64_t steps = uniform(1, 40);
  for (int64_t s = 0; s < steps; ++s) {
    MemoryStep step;
    const int64_t reads = uniform(1, 3);
    for (int64_t r = 0; r < reads; ++r) step.reads.push_back(defined[static_cast<size_t>(uniform(0, static_cast<int64_t>(defined.size()) - 1))]);
    const int64_t writes = uniform(1, 2);
    for (int64_t w = 0; w < writes; ++w) step.writes.push_back(add_entry(uniform(0, 9) == 0));
    if (uniform(0, 3) == 0) step.scratch_bytes.push_back(uniform(1, 1 << 15));
    for (int64_t r = 0; r < reads; ++r) {
      if (uniform(0, 2) == 0) step.inplace.emplace_back(static_cast<int>(r), static_cast<int>(uniform(0, writes - 1)));
    }
    for (const size_t entry : step.writes) defined.push_back(entry);
    problem.steps.push_back(step);
    // A view of something defined: same bytes, its storage.
    if (uniform(0, 4) == 0) {
      const size_t source = defined[static_cast<size_t>(uniform(3, static_cast<int64_t>(defined.size()) - 1))];
      const size_t view = add_entry(false);
      problem.entry_bytes[view] = problem.entry_bytes[source];
      problem.alias_of[view] = static_cast<int64_t>(source);
      problem.external[view] = problem.external[source];
      defined.push_back(view);
    }
  }
  return problem;
}

}  // namespace

TEST_CASE("3000 random plans pass the independent checker, with either allocator", "[memory]") {
  int greedy_wins = 0, inplace = 0;
  for (uint64_t seed = 1; seed <= 3000; ++seed) {
    const MemoryProblem problem = RandomProblem(seed);
    const StoragePlan plan = PlanMemory(problem);
    INFO("seed " << seed);
    const std::string violation = CheckMemoryPlan(problem, plan);
    INFO(violation);
    REQUIRE(violation.empty());
    CHECK(plan.arena_bytes == std::min(plan.free_list_bytes, plan.greedy_bytes));
    CHECK(plan.free_list_bytes >= plan.lower_bound_bytes);
    CHECK(plan.greedy_bytes >= plan.lower_bound_bytes);
    CHECK(plan.arena_bytes <= plan.no_reuse_bytes);
    greedy_wins += plan.planner == MemoryPlanner::kGreedyBySize;
    inplace += static_cast<int>(plan.inplace.size());
  }
  CHECK(greedy_wins > 0);
  CHECK(inplace > 0);
}

TEST_CASE("in place only where the step allows it and the input dies there", "[memory]") {
  // e0 (input) -> s0 -> e1 -> s1 (in place allowed) -> e2; e1 read again by s2 in the
  // second problem, so it may not be overwritten at s1.
  MemoryProblem problem;
  problem.entry_bytes = {256, 1024, 1024, 1024};
  problem.external = {true, false, false, false};
  problem.alias_of = {-1, -1, -1, -1};
  problem.steps = {{{0}, {1}, {}, {}}, {{1}, {2}, {}, {{0, 0}}}, {{2}, {3}, {}, {}}};
  StoragePlan plan = PlanMemory(problem);
  REQUIRE(plan.inplace.size() == 1);
  CHECK(plan.entry_offset[1] == plan.entry_offset[2]);
  CHECK(CheckMemoryPlan(problem, plan).empty());
  problem.steps[2].reads.push_back(1);
  plan = PlanMemory(problem);
  CHECK(plan.inplace.empty());
  CHECK(plan.entry_offset[1] != plan.entry_offset[2]);
  CHECK(CheckMemoryPlan(problem, plan).empty());
  // The checker catches a plan that overlaps live buffers.
  plan.entry_offset[2] = plan.entry_offset[1];
  CHECK(CheckMemoryPlan(problem, plan).find("overlap") != std::string::npos);
}

TEST_CASE("greedy by size packs what the free list cannot", "[memory]") {
  // Small buffers die while a large one lives; the free list grows a block for the
  // large request made later, greedy places it over the dead small ones.
  MemoryProblem problem;
  problem.entry_bytes = {64, 1024, 1024, 4096, 64};
  problem.external = {true, false, false, false, true};
  problem.alias_of = {-1, -1, -1, -1, -1};
  problem.steps = {{{0}, {1}, {}, {}}, {{1}, {2}, {}, {}}, {{2}, {3}, {}, {}}, {{3}, {4}, {}, {}}};
  const StoragePlan plan = PlanMemory(problem);
  CHECK(plan.lower_bound_bytes == 1024 + 4096);
  CHECK(plan.arena_bytes == plan.lower_bound_bytes);
  CHECK(CheckMemoryPlan(problem, plan).empty());
}

TEST_CASE("the plans of LeNet and the MLP pass the checker and sit at their lower bound", "[memory]") {
  for (const int batch : {1, 8}) {
    CompileOptions options;
    options.input_shapes = {{"data", {batch, 1, 28, 28}}};
    const LoweredGraph lenet = LowerGraph(WithRandomParams(TestLeNet(), options.input_shapes, 1), options);
    CHECK(CheckMemoryPlan(lenet.memory_problem, lenet.memory_plan).empty());
    const auto& report = lenet.artifact.report();
    CHECK(static_cast<double>(lenet.memory_plan.arena_bytes) <= 1.1 * static_cast<double>(report.arena_lower_bound_bytes()));
    CHECK(report.no_reuse_bytes() > lenet.artifact.arena_bytes());
  }
}
