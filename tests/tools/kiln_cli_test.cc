// The kiln command line, run as a user runs it: exit codes, one-line errors, outputs.
#include <sys/wait.h>

#include <array>
#include <catch2/catch.hpp>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "passes/graph_io.h"
#include "runtime/file_util.h"
#include "runtime/npy.h"
#include "runtime/param_file.h"
#include "runtime/param_formats.h"
#include "symbol/symbol.h"

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

// A new, empty directory for each call (PIDs repeat inside Bazel's sandbox, so a name
// made from one could hold an earlier run's files).
std::string TempDir() {
  std::string pattern = (std::filesystem::temp_directory_path() / "kiln_cli_test_XXXXXX").string();
  REQUIRE(::mkdtemp(pattern.data()) != nullptr);
  return pattern;
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
  const Result compiled = Run(kKiln + " compile " + dir + "/lenet.onnx -o " + dir + "/lenet.kiln --time-report");
  REQUIRE(compiled.status == 0);
  // --time-report: the import, every stage, the graph passes under "passes", and writing.
  for (const char* line : {"\n  import ", "\n  prepare ", "\n  passes ", "\n    fuse ", "\n  lower ",
                           "\n  plan_memory ", "\n  assemble ", "\n  llvm ", "\n  write "}) {
    INFO(line);
    CHECK(compiled.output.find(line) != std::string::npos);
  }
  CHECK(Run(kKiln + " compile " + dir + "/lenet.onnx -o " + dir + "/quiet.kiln").output.find("  llvm ") ==
        std::string::npos);
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

TEST_CASE("kiln bench --profile lists every kernel by its nodes (fused ones by their members)", "[cli]") {
  const std::string dir = TempDir();
  REQUIRE(Run("examples/build_lenet " + dir + "/p.kiln-graph").status == 0);
  REQUIRE(Run(kKiln + " compile " + dir + "/p.kiln-graph -o " + dir + "/p.kiln --input data:1x1x28x28").status == 0);
  const Result r = Run(kKiln + " bench " + dir + "/p.kiln --iters 3 --warmup 1 --threads 1 --profile");
  REQUIRE(r.status == 0);
  CHECK(r.output.find("per kernel (mean over 3 runs, slowest first):") != std::string::npos);
  for (const char* node : {"conv1+tanh1", "conv2+tanh2", "fc1+tanh3", "fc2", "softmax"}) {
    INFO(node);
    CHECK(r.output.find("%  " + std::string(node) + "\n") != std::string::npos);
  }
}

namespace {

// LeNet built and compiled once per test run, embedded and without parameters.
struct LeNetFiles {
  std::string dir = TempDir();
  std::string graph = dir + "/lenet.kiln-graph";
  std::string artifact = dir + "/lenet.kiln";
  LeNetFiles() {
    REQUIRE(Run("examples/build_lenet " + graph).status == 0);
    REQUIRE(Run(kKiln + " compile " + graph + " -o " + artifact + " --input data:1x1x28x28").status == 0);
  }
};

const LeNetFiles& LeNet() {
  static const LeNetFiles files;
  return files;
}

const std::string kDigit = " --input data=examples/data/digit7.npy";

}  // namespace

TEST_CASE("kiln checks its options before doing anything", "[cli]") {
  const auto& lenet = LeNet();
  // Numbers: a non-number is called one; out-of-range values name the range.
  Result r = Run(kKiln + " bench " + lenet.artifact + " --iters abc");
  CHECK(r.status == 2);
  CHECK(r.output.find("--iters: expected a whole number from 1 to 1000000, given 'abc'") != std::string::npos);
  r = Run(kKiln + " run " + lenet.artifact + " --threads -1");
  CHECK(r.status == 2);
  CHECK(r.output.find("--threads: expected 0 to 1024, given -1") != std::string::npos);
  r = Run(kKiln + " run " + lenet.artifact + " --threads 100000");
  CHECK(r.status == 2);
  CHECK(r.output.find("given 100000") != std::string::npos);
  CHECK(r.output.find("terminate") == std::string::npos);
  // A second --input of one name is an error, not "the last one wins".
  r = Run(kKiln + " run " + lenet.artifact + kDigit + kDigit);
  CHECK(r.status == 2);
  CHECK(r.output.find("--input 'data' is given more than once") != std::string::npos);
  r = Run(kKiln + " compile " + lenet.graph + " -o x.kiln --input data:1x1x28x28 --input data:2x1x28x28");
  CHECK(r.output.find("--input 'data' is given more than once") != std::string::npos);
  // Empty paths.
  r = Run(kKiln + " compile " + lenet.graph + " -o ''");
  CHECK(r.status == 2);
  CHECK(r.output.find("--output: the path is empty") != std::string::npos);
  // One line, the option's value abbreviated.
  r = Run(kKiln + " inspect " + lenet.graph + " --input data:1x" + std::string(5000, '7') + "q");
  CHECK(r.status == 2);
  CHECK(r.output.size() < 400);
  CHECK(r.output.find("bad dimension") != std::string::npos);
  // Targets: cpu or cuda; --arch only with cuda.
  r = Run(kKiln + " compile " + lenet.graph + " -o x.kiln --target tpu");
  CHECK(r.status == 2);
  CHECK(r.output.find("--target 'tpu': expected cpu or cuda") != std::string::npos);
  r = Run(kKiln + " compile " + lenet.graph + " -o x.kiln --arch sm_80");
  CHECK(r.status == 2);
  CHECK(r.output.find("--arch is for --target cuda") != std::string::npos);
}

TEST_CASE("kiln compile --target cuda, inspect and run: GPU code without a GPU is a clear error", "[cli][cuda]") {
  if (!std::filesystem::exists("/usr/local/cuda/lib64/libnvrtc.so") && std::getenv("CUDA_PATH") == nullptr) {
    std::printf("SKIPPED: kiln compile --target cuda: no CUDA toolkit (NVRTC) here\n");
    return;
  }
  const std::string dir = TempDir();
  const kiln::Symbol x = kiln::Symbol::Variable("x", kiln::Shape{1, 2, 8, 8});
  const kiln::Symbol y =
      kiln::Symbol::Create("Pooling", {kiln::Symbol::Create("Activation", {x}, {{"act_type", "relu"}})},
                           {{"kernel", "(2,2)"}, {"stride", "(2,2)"}, {"pool_type", "max"}});
  kiln::SaveGraphFile(y.ToGraph(), dir + "/pool.kiln-graph");
  Result r = Run(kKiln + " compile " + dir + "/pool.kiln-graph -o " + dir + "/pool.kiln --target cuda --arch sm_90");
  INFO(r.output);
  REQUIRE(r.status == 0);
  CHECK(r.output.find("cuda: PTX compute_80") != std::string::npos);
  CHECK(r.output.find("cubin sm_90") != std::string::npos);
  r = Run(kKiln + " inspect " + dir + "/pool.kiln");
  CHECK(r.status == 0);
  CHECK(r.output.find("target: cuda, PTX compute_80") != std::string::npos);
  kiln::SaveNpy(dir + "/x.npy", kiln::Tensor::FromDoubles({1, 2, 8, 8}, std::vector<double>(128, -1.0)));
  r = Run(kKiln + " run " + dir + "/pool.kiln --input x=" + dir + "/x.npy");
  CHECK(r.output.find("terminate") == std::string::npos);
  if (r.status != 0) {  // no GPU here: one clear line
    CHECK(r.status == 1);
    CHECK(r.output.find("no CUDA device: ") != std::string::npos);
  } else {  // a GPU: relu then max pooling of -1 is 0
    CHECK(r.output.find("device ") != std::string::npos);
  }
  // --gpu picks the GPU; no machine here has eight.
  r = Run(kKiln + " run " + dir + "/pool.kiln --input x=" + dir + "/x.npy --gpu 7");
  CHECK(r.status == 1);
  CHECK(r.output.find("no CUDA device: ") != std::string::npos);
  CHECK(r.output.find("gpu(7)") != std::string::npos);
  // kiln bench times GPU artifacts too (with the device time alone).
  r = Run(kKiln + " bench " + dir + "/pool.kiln --iters 3");
  CHECK(r.output.find("terminate") == std::string::npos);
  if (r.status != 0) {
    CHECK(r.status == 1);
    CHECK(r.output.find("no CUDA device: ") != std::string::npos);
  } else {
    CHECK(r.output.find("ms a call (kernels only") != std::string::npos);
  }
}

TEST_CASE("kiln compile --target cuda: LeNet's convolutions and dense layers are cuBLAS steps", "[cli][cuda]") {
  if (!std::filesystem::exists("/usr/local/cuda/lib64/libnvrtc.so") && std::getenv("CUDA_PATH") == nullptr) {
    std::printf("SKIPPED: kiln compile --target cuda: no CUDA toolkit (NVRTC) here\n");
    return;
  }
  const auto& lenet = LeNet();
  const std::string dir = TempDir();
  Result r = Run(kKiln + " compile " + lenet.graph + " -o " + dir +
                 "/l.kiln --input data:1x1x28x28 --target cuda --arch sm_80");
  INFO(r.output);
  REQUIRE(r.status == 0);
  r = Run(kKiln + " inspect " + dir + "/l.kiln");
  CHECK(r.status == 0);
  CHECK(r.output.find("TF32") == std::string::npos);
  // Two convolutions (one product each) and two dense layers.
  size_t steps = 0;
  for (size_t at = r.output.find("GEMM step"); at != std::string::npos; at = r.output.find("GEMM step", at + 1))
    ++steps;
  CHECK(steps == 4);
  r = Run(kKiln + " run " + dir + "/l.kiln" + kDigit);
  CHECK(r.output.find("terminate") == std::string::npos);
  if (r.status != 0) CHECK(r.output.find("no CUDA device: ") != std::string::npos);
  // TF32 only when asked for, and only for the GPU.
  REQUIRE(Run(kKiln + " compile " + lenet.graph + " -o " + dir +
              "/tf32.kiln --input data:1x1x28x28 --target cuda --arch sm_80 --allow-tf32")
              .status == 0);
  CHECK(Run(kKiln + " inspect " + dir + "/tf32.kiln").output.find("TF32 products allowed") != std::string::npos);
  r = Run(kKiln + " compile " + lenet.graph + " -o " + dir + "/cpu.kiln --allow-tf32");
  CHECK(r.status == 2);
  CHECK(r.output.find("--allow-tf32 is for --target cuda") != std::string::npos);
}

TEST_CASE("kiln compile --batch-sizes: one artifact that runs each batch size", "[cli]") {
  const auto& lenet = LeNet();
  const std::string dir = TempDir();
  const std::string artifact = dir + "/lenet_batches.kiln";
  Result r = Run(kKiln + " compile " + lenet.graph + " -o " + artifact + " --input data:1x1x28x28 --batch-sizes 4,1,2");
  REQUIRE(r.status == 0);
  CHECK(r.output.find("  batch 2: ") != std::string::npos);
  CHECK(r.output.find("  batch 4: ") != std::string::npos);
  // Batch 1 runs the digit as the plain artifact does, bit for bit.
  REQUIRE(Run(kKiln + " run " + artifact + kDigit + " --output-dir " + dir).status == 0);
  const kiln::Tensor batched = kiln::LoadNpy(dir + "/softmax_output.npy");
  REQUIRE(Run(kKiln + " run " + lenet.artifact + kDigit + " --output-dir " + dir).status == 0);
  CHECK(batched.BitwiseEquals(kiln::LoadNpy(dir + "/softmax_output.npy")));
  const Result inspect = Run(kKiln + " inspect " + artifact);
  REQUIRE(inspect.status == 0);
  CHECK(inspect.output.find("batch 1: ") != std::string::npos);
  CHECK(inspect.output.find("batch 4: ") != std::string::npos);

  for (const std::string bad : {"0", "1,,2", "2,2", "x", "1,2000000"}) {
    INFO(bad);
    r = Run(kKiln + " compile " + lenet.graph + " -o " + artifact + " --batch-sizes " + bad);
    CHECK(r.status == 2);
    CHECK(r.output.find("--batch-sizes '" + bad + "'") != std::string::npos);
  }
}

TEST_CASE("kiln names the file, option and value in its errors", "[cli]") {
  const auto& lenet = LeNet();
  const std::string dir = TempDir();
  // A directory where a file is expected.
  Result r = Run(kKiln + " inspect " + dir);
  CHECK(r.status == 1);
  CHECK(r.output == "kiln: error: '" + dir + "' is a directory, not a file\n");
  // An artifact whose magic is damaged is still called an artifact.
  std::string bytes = kiln::ReadFile(lenet.artifact);
  bytes[0] ^= 0x20;
  kiln::WriteFileAtomic(dir + "/damaged.kiln", bytes);
  r = Run(kKiln + " inspect " + dir + "/damaged.kiln");
  CHECK(r.status == 1);
  CHECK(r.output.find("not a kiln artifact") != std::string::npos);
  CHECK(r.output.find("not a kiln graph") == std::string::npos);
  // --output-dir that cannot be made: the option and the path, not std::filesystem's text.
  kiln::WriteFileAtomic(dir + "/plain_file", "x");
  r = Run(kKiln + " run " + lenet.artifact + kDigit + " --output-dir " + dir + "/plain_file/out");
  CHECK(r.status == 1);
  CHECK(r.output.find("--output-dir '" + dir + "/plain_file/out'") != std::string::npos);
  CHECK(r.output.find("filesystem error") == std::string::npos);
  // An output in a directory that does not exist names the output, not a temporary file.
  r = Run(kKiln + " compile " + lenet.graph + " -o " + dir + "/no/such/dir/x.kiln --input data:1x1x28x28");
  CHECK(r.status == 1);
  CHECK(r.output.find("cannot write '" + dir + "/no/such/dir/x.kiln'") != std::string::npos);
  CHECK(r.output.find(".tmp.") == std::string::npos);
  // A device as an input: bounded, with the file named (not std::bad_alloc).
  r = Run(kKiln + " run " + lenet.artifact + " --input data=/dev/zero");
  CHECK(r.status == 1);
  CHECK(r.output.find("/dev/zero") != std::string::npos);
  CHECK(r.output.find("bad_alloc") == std::string::npos);
}

TEST_CASE("kiln compile refuses weights without values unless told; --no-embed-params artifacts take --params",
          "[cli]") {
  const auto& lenet = LeNet();
  const std::string dir = TempDir();
  // The graph without its parameters, and the parameters in a file of their own.
  kiln::Graph graph = kiln::LoadGraphFile(lenet.graph);
  std::map<std::string, kiln::Tensor> params = graph.params;
  kiln::SaveParams(dir + "/lenet.params", params);
  graph.params.clear();
  kiln::SaveGraphFile(graph, dir + "/bare.kiln-graph");

  Result r = Run(kKiln + " compile " + dir + "/bare.kiln-graph -o " + dir + "/bare.kiln --input data:1x1x28x28");
  INFO(r.output);
  CHECK(r.status == 1);
  CHECK(r.output.find("have no value and no --input: conv1_weight") != std::string::npos);
  CHECK(r.output.find("--params-as-inputs") != std::string::npos);
  CHECK_FALSE(std::filesystem::exists(dir + "/bare.kiln"));
  r = Run(kKiln + " compile " + dir + "/bare.kiln-graph -o " + dir +
          "/bare.kiln --input data:1x1x28x28 --params-as-inputs");
  CHECK(r.status == 0);
  r = Run(kKiln + " compile " + dir + "/bare.kiln-graph --params " + dir + "/lenet.params -o " + dir +
          "/with_params.kiln --input data:1x1x28x28");
  CHECK(r.status == 0);

  // Compiled without parameters: run and bench bind them from --params.
  REQUIRE(Run(kKiln + " compile " + lenet.graph + " -o " + dir + "/lean.kiln --input data:1x1x28x28 --no-embed-params")
              .status == 0);
  r = Run(kKiln + " run " + dir + "/lean.kiln" + kDigit);
  CHECK(r.status == 1);
  CHECK(r.output.find("compiled without its parameters (--no-embed-params): give them with --params FILE") !=
        std::string::npos);
  r = Run(kKiln + " run " + dir + "/lean.kiln" + kDigit + " --params " + dir + "/lenet.params --output-dir " + dir +
          "/lean_out");
  REQUIRE(r.status == 0);
  // Parameters bound from a file are copies; embedded ones are used where they lie in
  // the mapped artifact.
  CHECK_THAT(r.output, Catch::Contains("(0 bytes of parameters used in place)"));
  const Result full = Run(kKiln + " run " + lenet.artifact + kDigit + " --output-dir " + dir + "/full_out");
  REQUIRE(full.status == 0);
  CHECK_THAT(full.output,
             Catch::Matches("(.|\n)*load [0-9.e+-]+ ms \\([1-9][0-9]* bytes of parameters used in place\\)(.|\n)*"));
  // Run-time filters take Winograd's path (transformed in each call, in float32),
  // embedded ones the compile-time one: equal up to float32 rounding.
  const kiln::Tensor lean_out = kiln::LoadNpy(dir + "/lean_out/softmax_output.npy");
  const kiln::Tensor full_out = kiln::LoadNpy(dir + "/full_out/softmax_output.npy");
  REQUIRE(lean_out.shape() == full_out.shape());
  for (int64_t i = 0; i < lean_out.size(); ++i) CHECK(std::abs(lean_out.GetDouble(i) - full_out.GetDouble(i)) < 1e-6);
  CHECK(Run(kKiln + " bench " + dir + "/lean.kiln --iters 2 --params " + dir + "/lenet.params").status == 0);
  const Result bench = Run(kKiln + " bench " + lenet.artifact + " --iters 2 --json");
  CHECK_THAT(bench.output, Catch::Contains("\"load_ms\"") && Catch::Contains("\"first_run_ms\""));
}

TEST_CASE("kiln keygen, compile --sign and --trusted-key: signed artifacts end to end", "[cli][signing]") {
  const auto& lenet = LeNet();
  const std::string dir = TempDir();
  Result r = Run(kKiln + " keygen -o " + dir + "/release --name 'release key'");
  REQUIRE(r.status == 0);
  CHECK(r.output.find("release key (ed25519:") != std::string::npos);
  CHECK((std::filesystem::status(dir + "/release").permissions() & std::filesystem::perms::others_read) ==
        std::filesystem::perms::none);
  REQUIRE(Run(kKiln + " keygen -o " + dir + "/other").status == 0);
  r = Run(kKiln + " keygen -o " + dir + "/release");
  CHECK(r.status == 1);
  CHECK(r.output.find("already exists") != std::string::npos);

  const std::string signed_artifact = dir + "/signed.kiln";
  r = Run(kKiln + " compile " + lenet.graph + " -o " + signed_artifact + " --input data:1x1x28x28 --sign " + dir +
          "/release");
  REQUIRE(r.status == 0);
  CHECK(r.output.find("signed by release key (ed25519:") != std::string::npos);

  r = Run(kKiln + " inspect " + signed_artifact);
  REQUIRE(r.status == 0);
  CHECK(r.output.find("signature: signed by release key (ed25519:") != std::string::npos);
  CHECK(r.output.find("signature valid") != std::string::npos);
  r = Run(kKiln + " inspect " + signed_artifact + " --json");
  CHECK(r.output.find("\"signer\": \"release key\"") != std::string::npos);
  r = Run(kKiln + " inspect " + lenet.artifact);
  CHECK(r.output.find("signature: unsigned") != std::string::npos);
  r = Run(kKiln + " inspect " + signed_artifact + " --json --trusted-key " + dir + "/release.pub");
  CHECK(r.output.find("\"trusted\": true") != std::string::npos);
  r = Run(kKiln + " inspect " + signed_artifact + " --trusted-key " + dir + "/release.pub");
  CHECK(r.output.find("signature valid, key trusted") != std::string::npos);

  // The right key runs it; another key, or an unsigned artifact, is refused.
  r = Run(kKiln + " run " + signed_artifact + kDigit + " --trusted-key " + dir + "/release.pub");
  CHECK(r.status == 0);
  CHECK(Run(kKiln + " bench " + signed_artifact + " --iters 2 --trusted-key " + dir + "/other.pub --trusted-key " +
            dir + "/release.pub")
            .status == 0);
  r = Run(kKiln + " run " + signed_artifact + kDigit + " --trusted-key " + dir + "/other.pub");
  CHECK(r.status == 1);
  CHECK(r.output.find("release key") != std::string::npos);
  CHECK(r.output.find("not") != std::string::npos);
  r = Run(kKiln + " run " + lenet.artifact + kDigit + " --trusted-key " + dir + "/release.pub");
  CHECK(r.status == 1);
  CHECK(r.output.find("is not signed") != std::string::npos);
  r = Run(kKiln + " inspect " + lenet.artifact + " --trusted-key " + dir + "/release.pub");
  CHECK(r.status == 1);
  // A secret key where a public one belongs is named as such.
  r = Run(kKiln + " run " + signed_artifact + " --trusted-key " + dir + "/release");
  CHECK(r.status == 1);
  CHECK(r.output.find("secret") != std::string::npos);

  // One flipped byte anywhere after the envelope: the signature no longer verifies.
  std::string bytes = kiln::ReadFile(signed_artifact);
  bytes[bytes.size() / 2] ^= 1;
  kiln::WriteFileAtomic(dir + "/tampered.kiln", bytes);
  r = Run(kKiln + " run " + dir + "/tampered.kiln" + kDigit);
  CHECK(r.status == 1);
  CHECK(r.output.find("signature") != std::string::npos);
  r = Run(kKiln + " inspect " + dir + "/tampered.kiln");
  CHECK(r.status == 1);
  CHECK(r.output.find("does not verify") != std::string::npos);
}

TEST_CASE("kiln compile runs chosen passes, dumps the graph after each, and inspect reports them", "[cli][passes]") {
  const std::string dir = TempDir();
  REQUIRE(Run("examples/build_lenet " + dir + "/g.kiln-graph").status == 0);
  const std::string graph = dir + "/g.kiln-graph";
  const Result full = Run(kKiln + " compile " + graph + " -o " + dir + "/full.kiln --input data:1x1x28x28 " +
                          "--dump-after-each " + dir + "/dump");
  REQUIRE(full.status == 0);
  CHECK(std::filesystem::exists(dir + "/dump/00_input.txt"));
  CHECK(std::filesystem::exists(dir + "/dump/00_input.dot"));
  CHECK(std::filesystem::exists(dir + "/dump/06_fold_batchnorm.txt"));
  CHECK(std::filesystem::exists(dir + "/dump/11_fuse.dot"));
  const Result json = Run(kKiln + " inspect " + dir + "/full.kiln --json");
  REQUIRE(json.status == 0);
  for (const char* key : {"\"kernels_before_fusion\"", "\"fused_groups\"", "\"arena_bytes\"",
                          "\"arena_lower_bound_bytes\"", "\"no_reuse_bytes\"", "\"passes\"", "\"fold_batchnorm\""}) {
    INFO(key);
    CHECK(json.output.find(key) != std::string::npos);
  }
  const Result text = Run(kKiln + " inspect " + dir + "/full.kiln");
  CHECK(text.output.find("fusion: 10 kernels before, 7 after, 3 fused groups") != std::string::npos);
  CHECK(text.output.find("conv1 + tanh1") != std::string::npos);
  // Only the chosen passes, less a disabled one; -O0 runs none.
  const Result chosen = Run(kKiln + " compile " + graph + " -o " + dir + "/chosen.kiln --input data:1x1x28x28 " +
                            "--passes fold_batchnorm,fuse --disable-pass fuse");
  REQUIRE(chosen.status == 0);
  const Result chosen_json = Run(kKiln + " inspect " + dir + "/chosen.kiln --json");
  CHECK(chosen_json.output.find("\"fold_batchnorm\"") != std::string::npos);
  CHECK(chosen_json.output.find("\"fuse\"") == std::string::npos);
  CHECK(chosen_json.output.find("\"fused_groups\": []") != std::string::npos);
  const Result none =
      Run(kKiln + " compile " + graph + " -o " + dir + "/none.kiln --input data:1x1x28x28 --graph-opt 0");
  REQUIRE(none.status == 0);
  CHECK(none.output.find(": 10 kernels") != std::string::npos);  // Flatten is a view even at -O0
  const Result unknown =
      Run(kKiln + " compile " + graph + " -o " + dir + "/x.kiln --input data:1x1x28x28 " + "--passes fuse,shrink");
  CHECK(unknown.status != 0);
  CHECK(unknown.output.find("unknown pass 'shrink'") != std::string::npos);
  const Result empty = Run(kKiln + " compile " + graph + " -o " + dir + "/x.kiln --passes fuse,,dce");
  CHECK(empty.status != 0);
  CHECK(empty.output.find("empty pass name") != std::string::npos);
  const Result no_list = Run(kKiln + " compile " + graph + " -o " + dir + "/x.kiln --passes ''");
  CHECK(no_list.status != 0);
  CHECK(no_list.output.find("--passes: empty pass list") != std::string::npos);
  const Result no_name = Run(kKiln + " compile " + graph + " -o " + dir + "/x.kiln --disable-pass ''");
  CHECK(no_name.status != 0);
  CHECK(no_name.output.find("empty pass name") != std::string::npos);
}

TEST_CASE("kiln viz --fusion boxes every fused kernel", "[cli][passes]") {
  const std::string dir = TempDir();
  REQUIRE(Run("examples/build_lenet " + dir + "/g.kiln-graph").status == 0);
  const Result r = Run(kKiln + " viz " + dir + "/g.kiln-graph -o " + dir + "/f.dot --fusion --input data:1x1x28x28");
  REQUIRE(r.status == 0);
  CHECK(r.output.find("3 fused kernels") != std::string::npos);
  const std::string dot = kiln::ReadFile(dir + "/f.dot");
  CHECK(dot.find("subgraph cluster_0") != std::string::npos);
  CHECK(dot.find("conv1+tanh1") != std::string::npos);
}

TEST_CASE("kiln inspect and convert read and write MXNet .params, NumPy .npz and kiln's files", "[cli][params]") {
  const std::string mxnet = "tests/data/mxnet/checkpoint.params";
  const Result text = Run(kKiln + " inspect " + mxnet);
  REQUIRE(text.status == 0);
  CHECK_THAT(text.output, Catch::Contains("(mxnet, 9 arrays, 540 bytes)") &&
                              Catch::Contains("aux:bn_moving_mean [2,3] float16") &&
                              Catch::Contains("arg:empty_dim [0,6] float32"));
  const Result json = Run(kKiln + " inspect tests/data/mxnet/numpy_shape.params --json");
  REQUIRE(json.status == 0);
  CHECK_THAT(json.output, Catch::Contains("\"kind\": \"parameters\"") && Catch::Contains("\"shape\": []"));

  // MXNet -> .npz -> kiln's -> MXNet: the same bytes MXNet wrote.
  const std::string dir = TempDir();
  REQUIRE(Run(kKiln + " convert " + mxnet + " -o " + dir + "/c.npz").status == 0);
  REQUIRE(Run(kKiln + " convert " + dir + "/c.npz -o " + dir + "/c.kiln-params").status == 0);
  CHECK_THAT(Run(kKiln + " inspect " + dir + "/c.kiln-params").output, Catch::Contains("(kiln, 9 arrays"));
  REQUIRE(Run(kKiln + " convert " + dir + "/c.kiln-params -o " + dir + "/c.bin --format mxnet").status == 0);
  CHECK(kiln::ReadFile(dir + "/c.bin") == kiln::ReadFile(mxnet));

  const Result no_format = Run(kKiln + " convert " + mxnet + " -o " + dir + "/c.txt");
  CHECK(no_format.status == 1);
  CHECK_THAT(no_format.output, Catch::Contains("give the output format with --format mxnet|npz|kiln"));
  const Result sparse = Run(kKiln + " inspect tests/data/mxnet/sparse.params");
  CHECK(sparse.status == 1);
  CHECK_THAT(sparse.output, Catch::Contains("stored as csr"));
  const Result not_params = Run(kKiln + " convert examples/data/digit7.npy -o " + dir + "/d.npz");
  CHECK(not_params.status == 1);
  CHECK_THAT(not_params.output, Catch::Contains("is not a parameter file kiln reads"));
  std::filesystem::remove_all(dir);
}

TEST_CASE("kiln compiles an MXNet checkpoint (symbol JSON and .params) and matches MXNet", "[cli][mxnet]") {
  const std::string models = "tests/data/mxnet/models/";
  const std::string dir = TempDir();
  const Result compiled = Run(kKiln + " compile " + models + "lenet-symbol.json --params " + models +
                              "lenet-0000.params -o " + dir + "/lenet.kiln --input data:2x1x28x28");
  REQUIRE(compiled.status == 0);
  REQUIRE(Run(kKiln + " run " + dir + "/lenet.kiln --input data=" + models + "lenet.input.npy --output-dir " + dir)
              .status == 0);
  const kiln::Tensor out = kiln::LoadNpy(dir + "/softmax_output.npy");
  const kiln::Tensor expected = kiln::LoadNpy(models + "lenet.output.npy");
  REQUIRE(out.shape() == expected.shape());
  for (int64_t i = 0; i < out.size(); ++i) CHECK(std::abs(out.GetDouble(i) - expected.GetDouble(i)) < 1e-5);
  const Result foreign = Run(kKiln + " compile " + models + "lenet-symbol.json --params " + models +
                             "mlp-0000.params -o " + dir + "/x.kiln --input data:2x1x28x28");
  CHECK(foreign.status == 1);
  // The MLP's fc1_weight has LeNet's name but not its shape.
  CHECK_THAT(foreign.output,
             Catch::Contains("node 'fc1' (FullyConnected): input 'weight': expected shape (32,256), given (32,20)"));
  std::filesystem::remove_all(dir);
}

TEST_CASE("kiln export --mxnet writes a symbol and its parameters that import back", "[cli][mxnet]") {
  const std::string models = "tests/data/mxnet/models/";
  const std::string dir = TempDir();
  const Result exported = Run(kKiln + " export " + models + "cnn-symbol.json --params " + models +
                              "cnn-0000.params --mxnet -o " + dir + "/cnn --input data:2x3x16x16");
  REQUIRE(exported.status == 0);
  CHECK_THAT(exported.output, Catch::Contains("cnn-symbol.json") && Catch::Contains("cnn-0000.params"));
  const Result inspected = Run(kKiln + " inspect " + dir + "/cnn-0000.params");
  CHECK_THAT(inspected.output, Catch::Contains("aux:bn1_moving_mean [8] float32"));
  const Result compiled = Run(kKiln + " compile " + dir + "/cnn-symbol.json --params " + dir + "/cnn-0000.params -o " +
                              dir + "/cnn.kiln --input data:2x3x16x16");
  CHECK(compiled.status == 0);
  std::filesystem::remove_all(dir);
}

TEST_CASE("the linear-regression example recovers w and b; kiln compiles and runs what it trained", "[cli][train]") {
  const std::string dir = TempDir();
  const Result trained = Run("examples/linear_regression -o " + dir + "/linreg.kiln-graph");
  REQUIRE(trained.status == 0);
  double w1 = 0, w2 = 0, b = 0;
  const size_t at = trained.output.find("w = [");
  REQUIRE(at != std::string::npos);
  REQUIRE(std::sscanf(trained.output.c_str() + at, "w = [%lf, %lf] (true [2, -3.4]), b = %lf", &w1, &w2, &b) == 3);
  CHECK(std::abs(w1 - 2) < 0.01);
  CHECK(std::abs(w2 + 3.4) < 0.01);
  CHECK(std::abs(b - 4.2) < 0.01);
  REQUIRE(Run(kKiln + " compile " + dir + "/linreg.kiln-graph --input data:1x2 -o " + dir + "/linreg.kiln").status ==
          0);
  kiln::SaveNpy(dir + "/x.npy", kiln::Tensor::FromDoubles({1, 2}, std::vector<double>{1, 1}));
  REQUIRE(Run(kKiln + " run " + dir + "/linreg.kiln --input data=" + dir + "/x.npy --output-dir " + dir).status == 0);
  const kiln::Tensor y = kiln::LoadNpy(dir + "/loss_output.npy");
  CHECK(std::abs(y.GetDouble(0) - (2 - 3.4 + 4.2)) < 0.03);
  std::filesystem::remove_all(dir);
}

TEST_CASE("kiln train fits a model with a loss layer on .npy data and writes its parameters", "[cli][train]") {
  const std::string dir = TempDir();
  REQUIRE(Run("examples/linear_regression --epochs 1 -o " + dir + "/linreg.kiln-graph").status == 0);
  // Other data: y = x1 + x2 - 1; training starts from the example's parameters.
  std::vector<double> x(2 * 400), y(400);
  for (size_t i = 0; i < y.size(); ++i) {
    x[2 * i] = std::sin(0.7 * static_cast<double>(i));
    x[2 * i + 1] = std::cos(1.3 * static_cast<double>(i));
    y[i] = x[2 * i] + x[2 * i + 1] - 1;
  }
  kiln::SaveNpy(dir + "/x.npy", kiln::Tensor::FromDoubles({400, 2}, x));
  kiln::SaveNpy(dir + "/y.npy", kiln::Tensor::FromDoubles({400, 1}, y));
  const std::string train = kKiln + " train " + dir + "/linreg.kiln-graph --data " + dir + "/x.npy --label " + dir +
                            "/y.npy --optimizer sgd --opt lr=0.1,momentum=0.9 --batch-size 20";
  const Result run = Run(train + " --epochs 10 -o " + dir + "/trained.npz --save-every-step " + dir + "/steps");
  INFO(run.output);
  REQUIRE(run.status == 0);
  const auto params = kiln::ParseAnyParams(kiln::ReadFile(dir + "/trained.npz"), "trained.npz").AsMap();
  CHECK(std::abs(params.at("dense_weight").GetDouble(0) - 1) < 0.01);
  CHECK(std::abs(params.at("dense_weight").GetDouble(1) - 1) < 0.01);
  CHECK(std::abs(params.at("dense_bias").GetDouble(0) + 1) < 0.01);
  CHECK(std::filesystem::exists(dir + "/steps/step_200.params"));
  CHECK_FALSE(std::filesystem::exists(dir + "/steps/step_201.params"));
  // MXNet's format with arg: names.
  REQUIRE(Run(train + " --steps 3 --format mxnet -o " + dir + "/trained.params").status == 0);
  const auto mxnet = kiln::ParseAnyParams(kiln::ReadFile(dir + "/trained.params"), "trained.params").AsMap();
  CHECK(mxnet.count("arg:dense_weight") == 1);

  kiln::SaveNpy(dir + "/short.npy", kiln::Tensor::FromDoubles({3, 1}, std::vector<double>{1, 2, 3}));
  const Result mismatch = Run(kKiln + " train " + dir + "/linreg.kiln-graph --data " + dir + "/x.npy --label " + dir +
                              "/short.npy -o " + dir + "/bad.npz");
  CHECK(mismatch.status == 1);
  CHECK_THAT(mismatch.output, Catch::Contains("--label: 3 labels for 400 samples in --data"));
  const Result both = Run(train + " --steps 3 --epochs 2 -o " + dir + "/bad.npz");
  CHECK(both.status == 2);
  // No machine here has eight GPUs.
  const Result no_gpu = Run(train + " --steps 1 --gpu 7 -o " + dir + "/bad.npz");
  CHECK(no_gpu.status == 1);
  CHECK_THAT(no_gpu.output, Catch::Contains("no CUDA device: ") && Catch::Contains("gpu(7)"));
  CHECK_FALSE(std::filesystem::exists(dir + "/bad.npz"));
  std::filesystem::remove_all(dir);
}

TEST_CASE("the Fashion-MNIST example's MLP learns: the loss falls and the test accuracy passes 0.75", "[cli][train]") {
  if (!std::filesystem::exists("/usr/share/datasets/fashion-mnist")) {
    WARN("SKIPPED: no Fashion-MNIST in /usr/share/datasets/fashion-mnist (apt-get install dataset-fashion-mnist)");
    return;
  }
  const Result run = Run("examples/train_fashion_mnist --model mlp --epochs 2 --subset 10000");
  INFO(run.output);
  REQUIRE(run.status == 0);
  // One line per epoch (stderr is not a terminal here): "... cross-entropy=X".
  std::vector<double> losses;
  for (size_t at = run.output.find("cross-entropy="); at != std::string::npos;
       at = run.output.find("cross-entropy=", at + 1)) {
    losses.push_back(std::stod(run.output.substr(at + 14)));
  }
  REQUIRE(losses.size() == 2);
  CHECK(losses[1] < losses[0]);
  const size_t at = run.output.find("test accuracy: ");
  REQUIRE(at != std::string::npos);
  CHECK(std::stod(run.output.substr(at + 15)) > 0.75);
}
