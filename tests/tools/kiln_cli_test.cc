// The kiln command line, run as a user runs it: exit codes, one-line errors, outputs.
#include <sys/wait.h>

#include <array>
#include <catch2/catch.hpp>
#include <cstdio>
#include <filesystem>
#include <string>

#include "runtime/file_util.h"
#include "runtime/npy.h"

namespace {

struct Result {
  int status = -1;
  std::string output;  // stdout and stderr
};

Result Run(const std::string& command) {
  Result result;
  FILE* pipe = ::popen((command + " 2>&1").c_str(), "r");
  REQUIRE(pipe != nullptr);
  std::array<char, 4096> buffer{};
  size_t n = 0;
  while ((n = std::fread(buffer.data(), 1, buffer.size(), pipe)) > 0) result.output.append(buffer.data(), n);
  const int raw = ::pclose(pipe);
  result.status = WIFEXITED(raw) ? WEXITSTATUS(raw) : -1;
  return result;
}

std::string TempDir() {
  const auto dir = std::filesystem::temp_directory_path() / ("kiln_cli_test_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  return dir.string();
}

const std::string kKiln = "tools/kiln";

}  // namespace

TEST_CASE("kiln ops lists every operator with its pattern", "[cli]") {
  const Result r = Run(kKiln + " ops");
  REQUIRE(r.status == 0);
  CHECK(r.output.find("Convolution gemm\n") != std::string::npos);
  CHECK(r.output.find("broadcast_add broadcast\n") != std::string::npos);
  CHECK(r.output.find("relu elementwise\n") != std::string::npos);
  const Result j = Run(kKiln + " ops --json");
  CHECK(j.status == 0);
  CHECK(j.output.find("\"pattern\": \"gemm\"") != std::string::npos);
}

TEST_CASE("kiln inspect, viz and interpret on the LeNet example", "[cli]") {
  const std::string dir = TempDir();
  const std::string model = dir + "/lenet.kiln-graph";
  REQUIRE(Run("examples/build_lenet " + model).status == 0);

  const Result inspect = Run(kKiln + " inspect " + model + " --input data:2x1x28x28");
  REQUIRE(inspect.status == 0);
  CHECK(inspect.output.find("conv1 = Convolution(%0, %1, %2) {kernel=(5, 5), num_filter=20} : (2,20,24,24)") !=
        std::string::npos);
  CHECK(inspect.output.find("fc1_weight [500,800] 1600000 bytes") != std::string::npos);
  CHECK(inspect.output.find("softmax_output [2,10]") != std::string::npos);

  const Result json = Run(kKiln + " inspect " + model + " --json --input data:1x1x28x28");
  REQUIRE(json.status == 0);
  CHECK(json.output.find("\"parameter_bytes\": 1724320") != std::string::npos);

  REQUIRE(Run(kKiln + " viz " + model + " -o " + dir + "/lenet.dot --input data:1x1x28x28").status == 0);
  CHECK(kiln::ReadFile(dir + "/lenet.dot").find("digraph") == 0);

  const Result run = Run(kKiln + " interpret " + model + " --input data=examples/data/digit7.npy --output-dir " + dir);
  REQUIRE(run.status == 0);
  CHECK(run.output.find("softmax_output (1,10) float32") != std::string::npos);
  const kiln::Tensor probabilities = kiln::LoadNpy(dir + "/softmax_output.npy");
  double sum = 0;
  for (double p : probabilities.ToDoubles()) sum += p;
  CHECK(sum == Approx(1.0).epsilon(1e-5));
}

TEST_CASE("kiln fails with one clear line and a non-zero status", "[cli]") {
  const std::string dir = TempDir();
  Result r = Run(kKiln + " inspect /nonexistent.kiln-graph");
  CHECK(r.status != 0);
  CHECK(r.output == "kiln: error: cannot open '/nonexistent.kiln-graph': No such file or directory\n");

  kiln::WriteFileAtomic(dir + "/garbage.kiln-graph", "\x01\x02garbage");
  r = Run(kKiln + " inspect " + dir + "/garbage.kiln-graph");
  CHECK(r.status != 0);
  CHECK(r.output.find("kiln: error: ") == 0);
  CHECK(r.output.find("not a kiln graph") != std::string::npos);

  REQUIRE(Run("examples/build_lenet " + dir + "/m.kiln-graph").status == 0);
  r = Run(kKiln + " inspect " + dir + "/m.kiln-graph --input data:1x1x3x3");
  CHECK(r.status != 0);
  CHECK(r.output.find("node 'conv1' (Convolution)") != std::string::npos);
  r = Run(kKiln + " inspect " + dir + "/m.kiln-graph --input data:1xAx3");
  CHECK(r.status != 0);
  CHECK(r.output.find("bad dimension 'A'") != std::string::npos);
  r = Run(kKiln + " interpret " + dir + "/m.kiln-graph");
  CHECK(r.status != 0);
  CHECK(r.output.find("missing input 'data'") != std::string::npos);
  r = Run(kKiln + " frobnicate");
  CHECK(r.status != 0);
  CHECK(Run(kKiln + " --help").status == 0);
  CHECK(Run(kKiln + " inspect --help").status == 0);
}

TEST_CASE("kiln export writes ONNX that kiln compiles back to the same results", "[cli][onnx]") {
  const std::string dir = TempDir();
  const std::string model = dir + "/lenet.kiln-graph";
  REQUIRE(Run("examples/build_lenet " + model).status == 0);
  const Result exported = Run(kKiln + " export " + model + " -o " + dir + "/lenet.onnx --input data:1x1x28x28");
  REQUIRE(exported.status == 0);
  CHECK(exported.output == "wrote " + dir + "/lenet.onnx\n");

  REQUIRE(Run(kKiln + " interpret " + model + " --input data=examples/data/digit7.npy --output-dir " + dir + "/ref")
              .status == 0);
  const Result compiled = Run(kKiln + " compile " + dir + "/lenet.onnx -o " + dir + "/lenet.kiln");
  REQUIRE(compiled.status == 0);
  const Result run =
      Run(kKiln + " run " + dir + "/lenet.kiln --input data=examples/data/digit7.npy --output-dir " + dir + "/onnx");
  REQUIRE(run.status == 0);
  const kiln::Tensor expected = kiln::LoadNpy(dir + "/ref/softmax_output.npy");
  const kiln::Tensor actual = kiln::LoadNpy(dir + "/onnx/softmax_output.npy");
  REQUIRE(actual.shape() == expected.shape());
  for (int64_t i = 0; i < actual.size(); ++i) CHECK(actual.GetDouble(i) == Approx(expected.GetDouble(i)).epsilon(1e-4));

  const Result bad = Run(kKiln + " compile " + dir + "/lenet.kiln-graph.onnx -o " + dir + "/x.kiln");
  CHECK(bad.status != 0);
}

TEST_CASE("kiln bench --profile lists every kernel by its node", "[cli]") {
  const std::string dir = TempDir();
  REQUIRE(Run("examples/build_lenet " + dir + "/p.kiln-graph").status == 0);
  REQUIRE(Run(kKiln + " compile " + dir + "/p.kiln-graph -o " + dir + "/p.kiln --input data:1x1x28x28").status == 0);
  const Result r = Run(kKiln + " bench " + dir + "/p.kiln --iters 3 --warmup 1 --threads 1 --profile");
  REQUIRE(r.status == 0);
  CHECK(r.output.find("per kernel (mean over 3 runs, slowest first):") != std::string::npos);
  for (const char* node : {"conv1", "conv2", "fc1", "fc2", "softmax"}) {
    INFO(node);
    CHECK(r.output.find("%  " + std::string(node) + "\n") != std::string::npos);
  }
}
