// Every operator compiled (LLVM JIT, and AOT shared objects loaded from an artifact file)
// against the reference oracle, on the cases and with the tolerances of op_cases.h.
#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <string>
#include <vector>

#include "codegen/compiler.h"
#include "runtime/artifact.h"
#include "runtime/executor.h"
#include "tests/codegen/op_cases.h"
#include "tests/golden/golden_data.h"

using namespace kiln;
using namespace kiln::testing;

namespace {

std::string TempDir() {
  const auto dir = std::filesystem::temp_directory_path() / ("kiln_compiled_ops_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  return dir.string();
}

std::unique_ptr<Executor> CompileWithJit(const OpDef&, const Graph& graph, const CompileOptions& options) {
  return CompileJit(graph, options);
}

std::unique_ptr<Executor> CompileAheadOfTime(const OpDef& op, const Graph& graph, const CompileOptions& options) {
  const std::string path = TempDir() + "/" + op.name() + ".kiln";
  SaveArtifact(path, CompileGraph(graph, options));
  auto executor = Executor::Load(path);
  std::filesystem::remove(path);
  return executor;
}

void CheckAllOps(const CompileFn& compile) {
  std::vector<std::string> failing;
  size_t total = 0;
  for (const auto& [op, cases] : AllOpCases()) {
    total += cases.size();
    const auto failures = CheckOp(*op, cases, compile);
    for (const auto& failure : failures) FAIL_CHECK(op->name() << ": " << failure);
    if (!failures.empty()) failing.push_back(op->name());
  }
  INFO("checked " << total << " cases; failing operators: " << golden::Join(failing));
  CHECK(failing.empty());
}

}  // namespace

TEST_CASE("every registered operator has compiled cases", "[compiled_ops]") {
  std::vector<std::string> missing;
  for (const OpDef* registered : OpRegistry::Global().List()) {
    bool found = false;
    for (const auto& [op, cases] : AllOpCases()) found |= op == registered;
    if (!found) missing.push_back(registered->name());
  }
  INFO("operators without compiled cases: " << golden::Join(missing));
  CHECK(missing.empty());
}

TEST_CASE("every operator compiled with the JIT matches the reference", "[compiled_ops][jit]") {
  CheckAllOps(CompileWithJit);
}

TEST_CASE("every operator compiled ahead of time matches the reference", "[compiled_ops][aot]") {
  CheckAllOps(CompileAheadOfTime);
}
