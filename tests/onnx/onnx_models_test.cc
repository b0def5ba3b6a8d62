// Models nobody here wrote: PyTorch's (an MLP, LeNet-5, a CNN with BatchNorm and
// Dropout, ResNet-18, MobileNetV2, a transformer block), exported to ONNX by
// tools/onnx/export_models.py with seeded weights, imported, compiled ahead of time and
// run by kiln at batch 1 and 8; the outputs must match PyTorch's (rtol and atol 1e-4).
//
// Needs Debian's python3-torch and python3-torchvision in the venv that
// tools/install_python_deps.sh makes (/opt/kiln-py); without them the test says it
// skipped and why.
#include <catch2/catch.hpp>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <string>

#include "codegen/compiler.h"
#include "tests/graph_runner.h"
#include "runtime/artifact.h"
#include "runtime/error.h"
#include "runtime/executor.h"
#include "runtime/npy.h"
#include "symbol/onnx/onnx_import.h"
#include "tests/op_test_util.h"

using namespace kiln;
namespace fs = std::filesystem;

namespace {

constexpr const char* kPython = "/opt/kiln-py/bin/python";
constexpr const char* kExportScript = "tools/onnx/export_models.py";  // in the runfiles

const std::vector<std::string> kModels = {"mlp", "lenet", "cnn_bn", "resnet18", "mobilenet_v2", "transformer_block"};

double Seconds(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// Exports the models once per test run; empty when PyTorch is not there.
std::string ExportedModels(std::string* why_not) {
  if (!fs::exists(kPython)) {
    *why_not = std::string(kPython) + " is missing (tools/install_python_deps.sh makes it)";
    return "";
  }
  const char* tmp = std::getenv("TEST_TMPDIR");
  const std::string dir = std::string(tmp != nullptr ? tmp : "/tmp") + "/onnx_models";
  const std::string log = dir + ".log";
  const std::string probe = std::string(kPython) + " -c 'import torch, torchvision, onnx' > " + log + " 2>&1";
  if (std::system(probe.c_str()) != 0) {
    *why_not = "PyTorch, torchvision or onnx cannot be imported by " + std::string(kPython);
    return "";
  }
  const std::string command =
      "HOME=" + dir + "_home " + kPython + " " + kExportScript + " " + dir + " >> " + log + " 2>&1";
  if (std::system(command.c_str()) != 0) throw Error("exporting the models failed; see " + log);
  return dir;
}

}  // namespace

TEST_CASE("PyTorch models exported to ONNX compile and match PyTorch at batch 1 and 8", "[onnx][models]") {
  std::string why_not;
  const std::string dir = ExportedModels(&why_not);
  if (dir.empty()) {
    WARN("SKIPPED: " << why_not);
    return;
  }
  for (const std::string& model : kModels) {
    for (const int batch : {1, 8}) {
      const std::string prefix = dir + "/" + model + ".b" + std::to_string(batch);
      const Tensor input = LoadNpy(prefix + ".input.npy");
      const Tensor expected = LoadNpy(prefix + ".torch.npy");
      const auto start = std::chrono::steady_clock::now();
      const Graph graph = ImportOnnx(dir + "/" + model + ".onnx", {{{"input", input.shape()}}});
      CompileOptions options;
      const std::string artifact = dir + "/" + model + ".b" + std::to_string(batch) + ".kiln";
      SaveArtifact(artifact, CompileGraph(graph, options));
      const double compile_seconds = Seconds(start);
      const auto executor = Executor::Load(artifact);
      const auto outputs = executor->Run({{"input", input}});
      INFO(model << " batch " << batch);
      REQUIRE(outputs.size() == 1);
      KILN_CHECK_CLOSE(outputs[0], expected, 1e-4, 1e-4);
      // All passes ran (-O2): fusion reduced the kernels, and the arena is within 10% of
      // its lower bound under a plan the independent checker accepts.
      const LoweredGraph lowered = LowerGraph(graph, options);
      const auto& report = lowered.artifact.report();
      CHECK(report.kernels() < report.kernels_before_fusion());
      CHECK(static_cast<double>(lowered.artifact.arena_bytes()) <=
            1.1 * static_cast<double>(report.arena_lower_bound_bytes()));
      CHECK(testing::CheckMemoryPlan(lowered.memory_problem, lowered.memory_plan).empty());
      WARN(model << " batch " << batch << ": imported and compiled in " << compile_seconds << " s");
    }
  }
}
