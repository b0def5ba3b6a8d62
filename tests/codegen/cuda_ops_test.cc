// Every operator's CUDA C (codegen/cuda) on the cases of op_cases.h:
//   - emulated on the CPU (cuda_emulation.h): the executor runs the emitted kernels from
//     the same plan, against the reference oracle with compiled_ops_test's tolerances;
//   - compiled by NVRTC to PTX for compute_80 and assembled for sm_80 and sm_90 (NVRTC's
//     ptxas), registers and spills reported; skipped where NVRTC is absent.
// Kernels that call library routines (float32 GEMM-like operators: sgemm, sconv) have no
// CUDA form yet (they become cuBLAS steps of their own): such cases are left out, and
// the operators they belong to are listed.
#include <algorithm>
#include <catch2/catch.hpp>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <future>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "codegen/compiler.h"
#include "codegen/cuda/cuda_emitter.h"
#include "codegen/cuda/cuda_emulation.h"
#include "codegen/cuda/nvrtc_compiler.h"
#include "runtime/artifact.h"
#include "runtime/code_module.h"
#include "runtime/cuda_driver.h"
#include "runtime/cuda_executor.h"
#include "runtime/error.h"
#include "runtime/executor.h"
#include "runtime/param_file.h"
#include "runtime/signing.h"
#include "symbol/symbol.h"
#include "tests/codegen/gpu_models.h"
#include "tests/codegen/op_cases.h"
#include "tests/graph_runner.h"
#include "tests/op_test_util.h"
#include "tests/random_graphs.h"

using namespace kiln;
using namespace kiln::testing;

namespace {

const std::vector<std::pair<OpCases, size_t>>& AllEmittableCases() {
  static const auto all = [] {
    std::vector<std::pair<OpCases, size_t>> result;
    for (const auto& [op, cases] : AllOpCases()) {
      EmittableCases emittable = Emittable(*op, cases);
      result.push_back({{op, std::move(emittable.cases)}, emittable.left_out});
    }
    return result;
  }();
  return all;
}

std::unique_ptr<Executor> CompileEmulated(const OpDef&, const Graph& graph, const CompileOptions& options) {
  LoweredGraph lowered = LowerGraph(graph, ForCuda(options));
  std::shared_ptr<const CodeModule> code = LoadSharedObject(cuda::BuildEmulatedSharedObject(lowered.kernels));
  return Executor::Create(std::move(lowered.artifact), std::move(code));
}

}  // namespace

TEST_CASE("every operator's CUDA C, emulated on the CPU, matches the reference", "[cuda][emulation]") {
  std::vector<std::string> failing, partial;
  size_t checked = 0, left_out = 0;
  for (const auto& [op_cases, skipped] : AllEmittableCases()) {
    const auto& [op, cases] = op_cases;
    left_out += skipped;
    if (skipped > 0) partial.push_back(op->name() + " (" + std::to_string(skipped) + ")");
    if (cases.empty()) continue;
    checked += cases.size();
    const auto failures = CheckOp(*op, cases, CompileEmulated);
    for (const auto& failure : failures) FAIL_CHECK(op->name() << ": " << failure);
    if (!failures.empty()) failing.push_back(op->name());
  }
  std::printf("CUDA emulation: %zu cases checked; %zu left out (library routines): %s\n", checked, left_out,
              golden::Join(partial).c_str());
  INFO("failing operators: " << golden::Join(failing));
  CHECK(failing.empty());
  // Only routine calls are left out, and most cases run.
  CHECK(checked > 10 * left_out);
}

TEST_CASE("every operator's CUDA C compiles with NVRTC for sm_80 and sm_90", "[cuda][nvrtc]") {
  const cuda::Nvrtc* nvrtc = cuda::Nvrtc::Find();
  if (nvrtc == nullptr) {
    std::printf("SKIPPED: every operator's CUDA C through NVRTC: %s\n", cuda::Nvrtc::LoadError().c_str());
    return;
  }
  // One module: the kernels of every operator, named apart (two operators' graphs may
  // name different kernels alike).
  std::vector<kir::Kernel> kernels;
  for (size_t k = 0; k < AllEmittableCases().size(); ++k) {
    const auto& [op, cases] = AllEmittableCases()[k].first;
    if (cases.empty()) continue;
    const CaseGraph graph = BuildCaseGraph(*op, OnePerDtype(cases));
    for (kir::Kernel& kernel : LowerGraph(graph.graph, ForCuda(graph.options)).kernels) {
      kernel.name = "op" + std::to_string(k) + "_" + kernel.name;
      kernels.push_back(std::move(kernel));
    }
  }
  const cuda::CudaModuleSource module = cuda::EmitCudaModule(kernels);
  // sm_80's program also gives the PTX (its .target is sm_80); the two run side by side.
  const auto compile = [&](const std::string& arch) {
    const auto start = std::chrono::steady_clock::now();
    cuda::NvrtcOutput out = nvrtc->Compile(module.source, "kiln_ops.cu", arch);
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    return std::make_pair(std::move(out), seconds);
  };
  auto sm90 = std::async(std::launch::async, compile, "sm_90");
  const auto sm80 = compile("sm_80");
  const std::pair<cuda::NvrtcOutput, double> results[] = {sm80, sm90.get()};
  const std::string& ptx = sm80.first.ptx;
  CHECK(ptx.find(".target sm_80") != std::string::npos);
  size_t entries = 0;
  for (const auto& kernel : module.kernels) entries += ptx.find(".entry " + kernel.entry + "(") != std::string::npos;
  CHECK(entries == module.kernels.size());
  for (const auto& [out, seconds] : results) {
    CHECK(out.cubin.substr(0, 4) ==
          "\x7f"
          "ELF");
    const auto report = cuda::ParsePtxasReport(out.log);
    REQUIRE(report.size() == module.kernels.size());
    const cuda::KernelResources* most = &report[0];
    std::vector<std::string> spilling;
    for (const auto& kernel : report) {
      if (kernel.registers > most->registers) most = &kernel;
      if (kernel.spill_store_bytes > 0 || kernel.spill_load_bytes > 0) {
        spilling.push_back(kernel.entry + " (" + std::to_string(kernel.spill_store_bytes) + " bytes)");
      }
    }
    std::printf(
        "NVRTC %s for %s: %zu kernels (%zu bytes of CUDA C) in %.1f s; most registers: %d (%s); %zu spill%s%s\n",
        nvrtc->version().c_str(), report[0].arch.c_str(), report.size(), module.source.size(), seconds, most->registers,
        most->entry.c_str(), spilling.size(), spilling.empty() ? "" : ": ", golden::Join(spilling).c_str());
    // A thread has at most 255 registers: a kernel asking for more would not launch.
    CHECK(most->registers <= 255);
  }
}

TEST_CASE("compiling for CUDA makes an artifact of PTX and cubins that a GPU-less runtime refuses clearly",
          "[cuda][nvrtc]") {
  if (cuda::Nvrtc::Find() == nullptr) {
    std::printf("SKIPPED: compiling for CUDA: %s\n", cuda::Nvrtc::LoadError().c_str());
    return;
  }
  const Symbol x = Symbol::Variable("x", Shape{2, 3, 8, 8});
  const Symbol pooled =
      Symbol::Create("Pooling", {Symbol::Create("Activation", {x * 2.0 + 1.0}, {{"act_type", "relu"}})},
                     {{"kernel", "(2,2)"}, {"stride", "(2,2)"}, {"pool_type", "max"}});
  const Symbol out = Symbol::Create("softmax", {pooled}, {{"axis", -1}});
  CompileOptions options;
  options.cuda = CompileOptions::Cuda{{"sm_80", "sm_90"}};
  const proto::ArtifactProto artifact = CompileGraph(out.ToGraph(), options);
  REQUIRE(artifact.has_cuda());
  CHECK(artifact.code().empty());
  CHECK(artifact.cuda().ptx_arch() == "compute_80");
  CHECK(artifact.cuda().cubins().size() == 2);
  REQUIRE(artifact.cuda().kernels_size() == artifact.kernels_size());
  for (const auto& kernel : artifact.cuda().kernels()) {
    CHECK(artifact.cuda().ptx().find(".entry " + kernel.entry() + "(") != std::string::npos);
  }
  const std::string path = (std::filesystem::temp_directory_path() / "kiln_cuda_artifact.kiln").string();
  SaveArtifact(path, artifact);
  // The CPU executor points to the CUDA executor; the CUDA executor needs a GPU, or runs
  // on the emulated device from the same file.
  CHECK_THROWS_WITH(Executor::Load(path), Catch::Contains("holds GPU code") && Catch::Contains("CudaExecutor"));
  bool has_gpu = true;
  try {
    ListCudaDevices();
  } catch (const Error&) {
    has_gpu = false;
  }
  if (!has_gpu) CHECK_THROWS_WITH(CudaExecutor::Load(path), Catch::StartsWith("no CUDA device: "));
  const LoweredGraph lowered = LowerGraph(out.ToGraph(), options);
  const auto executor = CudaExecutor::Load(path, cuda::EmulatedCudaDevice(lowered.kernels));
  const Tensor data = RandomTensor({2, 3, 8, 8}, 7);
  const std::vector<Tensor> got = executor->Run({{"x", data}});
  const std::vector<Tensor> want = RunWithInterpreter(lowered, {{"x", data}});
  REQUIRE(got.size() == 1);
  KILN_CHECK_CLOSE(got[0], want[0], 1e-5, 1e-6);
  CHECK_THROWS_WITH(executor->Run({{"x", RandomTensor({2, 3, 8, 7}, 7)}}),
                    Catch::Contains("input 'x': expected float32 (2,3,8,8), given float32 (2,3,8,7)"));
  CHECK_THROWS_WITH(executor->Run({{"y", data}}), Catch::Contains("unknown input 'y'"));
  // A corrupt plan is refused by name before anything runs.
  proto::ArtifactProto corrupt = artifact;
  corrupt.mutable_kernels(0)->mutable_args(0)->set_kind(proto::BufferRef::INPUT);
  corrupt.mutable_kernels(0)->mutable_args(0)->set_index(7);
  CHECK_THROWS_WITH(CudaExecutor::Create(corrupt, cuda::EmulatedCudaDevice(lowered.kernels)),
                    Catch::Contains("buffer 0: INPUT 7 does not exist (there are 1)"));
  corrupt = artifact;
  corrupt.mutable_cuda()->mutable_kernels(0)->set_has_parallel_loop(true);
  corrupt.mutable_cuda()->mutable_kernels(0)->set_inner_threads(-5);
  CHECK_THROWS_WITH(CudaExecutor::Create(corrupt, cuda::EmulatedCudaDevice(lowered.kernels)),
                    Catch::Contains("-5 threads per iteration (expected 1 to 2^20)"));
  corrupt = artifact;
  corrupt.mutable_cuda()->mutable_kernels(0)->add_written_args(99);
  CHECK_THROWS_WITH(CudaExecutor::Create(corrupt, cuda::EmulatedCudaDevice(lowered.kernels)),
                    Catch::Contains("it writes argument 99 of"));
  corrupt = artifact;
  corrupt.mutable_cuda()->mutable_kernels(0)->add_arg_bytes(4);
  CHECK_THROWS_WITH(CudaExecutor::Create(corrupt, cuda::EmulatedCudaDevice(lowered.kernels)),
                    Catch::Contains("buffers, the artifact gives"));
  // A signature policy holds for GPU artifacts too.
  CudaExecutorOptions signed_only;
  signed_only.trusted_keys = {GenerateKeyPair("release").public_part()};
  CHECK_THROWS_WITH(CudaExecutor::Load(path, cuda::EmulatedCudaDevice(lowered.kernels), signed_only),
                    Catch::Contains("is not signed; this runtime requires artifacts signed by one of: release"));
  CHECK(executor->SecondsPerCall(2) > 0);  // the device time alone, for benchmarks
  // The first call captured the launches (a CUDA Graph); later calls replay them on new
  // inputs, equal to plain launches.
  CudaExecutorOptions plain;
  plain.cuda_graph = false;
  const auto unreplayed = CudaExecutor::Load(path, cuda::EmulatedCudaDevice(lowered.kernels), plain);
  for (const uint64_t seed : {8, 9}) {
    const Tensor other = RandomTensor({2, 3, 8, 8}, seed);
    const Tensor replayed = executor->Run({{"x", other}})[0];
    CHECK(replayed.BitwiseEquals(unreplayed->Run({{"x", other}})[0]));
    KILN_CHECK_CLOSE(replayed, RunWithInterpreter(lowered, {{"x", other}})[0], 1e-5, 1e-6);
  }
  std::filesystem::remove(path);

  // A float32 matrix product is a cuBLAS step of its own, between the kernels.
  const Symbol fc =
      Symbol::Create("FullyConnected", {Symbol::Variable("data", Shape{4, 8}), Symbol::Variable("w", Shape{3, 8})},
                     {{"num_hidden", 3}, {"no_bias", true}}, "fc1");
  const proto::ArtifactProto product = CompileGraph(fc.ToGraph(), options);
  REQUIRE(product.kernels_size() == 1);
  CHECK(product.kernels(0).has_gemm());
  CHECK(product.kernels(0).symbol().empty());
  CHECK(product.cuda().kernels_size() == 0);
}

TEST_CASE("random fused graphs: their CUDA C, emulated, matches the interpreter, and NVRTC compiles it",
          "[cuda][random]") {
  // Smooth random graphs at -O2 (fusion on): every kernel renamed apart so that all go
  // into one emulated module and one NVRTC program.
  struct Case {
    Generated generated;
    LoweredGraph lowered;
  };
  std::vector<Case> cases;
  std::vector<kir::Kernel> kernels;
  size_t with_routines = 0, fused_groups = 0;
  for (uint64_t seed = 1; seed <= 200; ++seed) {
    Case c{GraphGenerator(seed, /*smooth=*/true).Make(), {}};
    CompileOptions options;
    options.input_shapes = {{"data", kShape}};
    options.cuda = CompileOptions::Cuda{};
    c.lowered = LowerGraph(c.generated.graph, options);
    if (!AllEmittable(c.lowered)) {
      ++with_routines;
      continue;
    }
    for (kir::Kernel& kernel : c.lowered.kernels) {
      const std::string old_symbol = KernelSymbolName(kernel.name);
      kernel.name = "kiln_g" + std::to_string(seed) + "_" + kernel.name;  // its own symbol
      for (auto& call : *c.lowered.artifact.mutable_kernels()) {
        if (call.symbol() == old_symbol) call.set_symbol(KernelSymbolName(kernel.name));
      }
      kernels.push_back(kernel);
    }
    fused_groups += c.lowered.artifact.report().fused_groups_size();
    cases.push_back(std::move(c));
  }
  std::printf("CUDA random graphs: %zu graphs (%zu kernels, %zu fused groups); %zu left out (library routines)\n",
              cases.size(), kernels.size(), fused_groups, with_routines);
  CHECK(cases.size() >= 100);
  CHECK(fused_groups >= 100);
  const std::shared_ptr<const CodeModule> code = LoadSharedObject(cuda::BuildEmulatedSharedObject(kernels));
  size_t kernel_index = 0, graph = 0;
  for (const Case& c : cases) {
    INFO(c.generated.description);
    const std::vector<Tensor> expected = RunWithInterpreter(c.lowered, c.generated.inputs);
    // The CPU executor over the emulated kernels, and the CUDA executor (device memory,
    // plan bindings, launch grids) over an emulated device.
    const std::vector<Tensor> actual = Executor::Create(c.lowered.artifact, code)->Run(c.generated.inputs);
    const std::vector<kir::Kernel> own(kernels.begin() + kernel_index,
                                       kernels.begin() + kernel_index + c.lowered.kernels.size());
    kernel_index += c.lowered.kernels.size();
    REQUIRE(actual.size() == expected.size());
    // CUDA's (here the host's) expf and tanhf against the interpreter's double, rounded.
    for (size_t i = 0; i < actual.size(); ++i) KILN_CHECK_CLOSE(actual[i], expected[i], 1e-5, 1e-6);
    if (++graph % 4 != 0) continue;  // each device builds its own module: a quarter of the graphs
    proto::ArtifactProto gpu_artifact = c.lowered.artifact;
    for (const auto& info : cuda::EmitCudaModule(own).kernels)
      *gpu_artifact.mutable_cuda()->add_kernels() = cuda::LaunchForm(info);
    const std::vector<Tensor> on_device =
        CudaExecutor::Create(gpu_artifact, cuda::EmulatedCudaDevice(own))->Run(c.generated.inputs);
    REQUIRE(on_device.size() == expected.size());
    // Kernels are the same code; GEMM steps are cuBLAS's planned calls there (computed in
    // double by the emulated device) and kiln's sgemm here.
    const bool has_gemm = std::any_of(c.lowered.artifact.kernels().begin(), c.lowered.artifact.kernels().end(),
                                      [](const proto::KernelCall& call) { return call.has_gemm(); });
    for (size_t i = 0; i < actual.size(); ++i) {
      if (has_gemm) {
        KILN_CHECK_CLOSE(on_device[i], actual[i], 1e-4, 1e-5);
      } else {
        CHECK(on_device[i].BitwiseEquals(actual[i]));
      }
    }
  }
  const cuda::Nvrtc* nvrtc = cuda::Nvrtc::Find();
  if (nvrtc == nullptr) {
    std::printf("SKIPPED: random fused graphs through NVRTC: %s\n", cuda::Nvrtc::LoadError().c_str());
    return;
  }
  const cuda::CudaModuleSource module = cuda::EmitCudaModule(kernels);
  const cuda::NvrtcOutput out = nvrtc->Compile(module.source, "random_graphs.cu", "sm_80");
  const auto report = cuda::ParsePtxasReport(out.log);
  CHECK(report.size() == kernels.size());
  for (const auto& kernel : report) CHECK(kernel.spill_store_bytes == 0);
}

TEST_CASE("models with products and convolutions run on the GPU path: kernels and cuBLAS steps", "[cuda][models]") {
  for (const GpuModel& model : GpuModels()) {
    INFO(model.name);
    CompileOptions cpu;
    const std::vector<Tensor> want = CompileJit(model.graph, cpu)->Run(model.inputs);
    const LoweredGraph lowered = LowerGraph(model.graph, ForCuda(cpu));
    int gemm_steps = 0;
    for (const auto& call : lowered.artifact.kernels()) gemm_steps += call.has_gemm() ? 1 : 0;
    CHECK(gemm_steps >= 2);
    REQUIRE(AllEmittable(lowered));
    proto::ArtifactProto gpu_artifact = lowered.artifact;
    for (const auto& info : cuda::EmitCudaModule(lowered.kernels).kernels) {
      *gpu_artifact.mutable_cuda()->add_kernels() = cuda::LaunchForm(info);
    }
    // The GPU's plan on the emulated device (GEMMs as cuBLAS computes its planned calls),
    // with the CUDA Graph replayed on a second call and without it.
    const auto replayed = CudaExecutor::Create(gpu_artifact, cuda::EmulatedCudaDevice(lowered.kernels));
    CudaExecutorOptions plain_options;
    plain_options.cuda_graph = false;
    const auto plain = CudaExecutor::Create(gpu_artifact, cuda::EmulatedCudaDevice(lowered.kernels), plain_options);
    // A corrupt GEMM step is refused at load, by both executors, naming the node.
    for (int k = 0; k < gpu_artifact.kernels_size(); ++k) {
      if (!gpu_artifact.kernels(k).has_gemm()) continue;
      proto::ArtifactProto corrupt = gpu_artifact;
      corrupt.mutable_kernels(k)->set_symbol("kiln_k0");
      CHECK_THROWS_WITH(CudaExecutor::Create(corrupt, cuda::EmulatedCudaDevice(lowered.kernels)),
                        Catch::Contains("the GEMM step of node") && Catch::Contains("also names a kernel"));
      corrupt = gpu_artifact;
      corrupt.mutable_kernels(k)->mutable_gemm()->set_c_offset(int64_t{1} << 40);
      CHECK_THROWS_WITH(Executor::Create(corrupt, LoadSharedObject(cuda::BuildEmulatedSharedObject(lowered.kernels))),
                        Catch::Contains("the GEMM step of node") && Catch::Contains("the artifact gives"));
      break;
    }
    // Parameters bound at load instead of embedded (kiln compile --no-embed-params).
    proto::ArtifactProto unembedded = gpu_artifact;
    unembedded.clear_param_values();
    CudaExecutorOptions bound;
    for (int p = 0; p < gpu_artifact.params_size(); ++p) {
      bound.params[gpu_artifact.params(p).name()] =
          TensorFromProto(gpu_artifact.param_values(p), gpu_artifact.params(p).name());
    }
    CHECK_THROWS_WITH(CudaExecutor::Create(unembedded, cuda::EmulatedCudaDevice(lowered.kernels)),
                      Catch::Contains("' has no value: the artifact was compiled with --no-embed-params"));
    const auto with_bound = CudaExecutor::Create(unembedded, cuda::EmulatedCudaDevice(lowered.kernels), bound);
    const std::vector<Tensor> first = replayed->Run(model.inputs);
    const std::vector<Tensor> from_bound = with_bound->Run(model.inputs);
    const std::vector<Tensor> second = replayed->Run(model.inputs);
    const std::vector<Tensor> unreplayed = plain->Run(model.inputs);
    // And the same plan on the CPU executor (GEMMs through kiln's sgemm).
    const std::vector<Tensor> on_cpu = RunWithInterpreter(lowered, model.inputs);
    REQUIRE(first.size() == want.size());
    for (size_t i = 0; i < want.size(); ++i) {
      KILN_CHECK_CLOSE(first[i], want[i], 1e-4, 1e-5);
      KILN_CHECK_CLOSE(on_cpu[i], want[i], 1e-4, 1e-5);
      CHECK(second[i].BitwiseEquals(first[i]));
      CHECK(unreplayed[i].BitwiseEquals(first[i]));
      CHECK(from_bound[i].BitwiseEquals(first[i]));
    }
  }
}

TEST_CASE("a training step (forward, backward, SGD with momentum) on the GPU path equals the CPU's",
          "[cuda][models][train]") {
  const GpuTrainingStep step = MakeGpuTrainingStep();
  const std::map<std::string, Tensor>& feeds = step.feeds;
  const CompileOptions& options = step.options;
  // The CPU's step (its inputs cloned: BatchNorm's statistics update in place).
  std::map<std::string, Tensor> cpu_feeds;
  for (const auto& [name, value] : feeds) cpu_feeds[name] = value.Clone();
  const std::vector<Tensor> want = CompileJit(step.graph, options)->Run(cpu_feeds);
  const LoweredGraph lowered = LowerGraph(step.graph, ForCuda(options));
  REQUIRE(AllEmittable(lowered));
  int gemm_steps = 0;
  for (const auto& call : lowered.artifact.kernels()) gemm_steps += call.has_gemm() ? 1 : 0;
  // Forward: two convolutions and the dense layer; backward: two weight gradients, one
  // data gradient (conv1's input needs none) and the dense layer's two.
  CHECK(gemm_steps >= 8);
  proto::ArtifactProto gpu_artifact = lowered.artifact;
  for (const auto& info : cuda::EmitCudaModule(lowered.kernels).kernels) {
    *gpu_artifact.mutable_cuda()->add_kernels() = cuda::LaunchForm(info);
  }
  const auto executor = CudaExecutor::Create(gpu_artifact, cuda::EmulatedCudaDevice(lowered.kernels));
  std::map<std::string, Tensor> gpu_feeds;
  for (const auto& [name, value] : feeds) gpu_feeds[name] = value.Clone();
  const std::vector<Tensor> got = executor->Run(gpu_feeds);
  REQUIRE(got.size() == want.size());
  for (size_t i = 0; i < want.size(); ++i) {
    INFO("output " << executor->outputs()[i].name);
    KILN_CHECK_CLOSE(got[i], want[i], 1e-4, 1e-5);
  }
  // BatchNorm's moving statistics, updated in place, come back from the device.
  for (const char* name : {"bn1_moving_mean", "bn1_moving_var"}) {
    INFO(name);
    CHECK_FALSE(cpu_feeds.at(name).BitwiseEquals(feeds.at(name)));
    KILN_CHECK_CLOSE(gpu_feeds.at(name), cpu_feeds.at(name), 1e-5, 1e-6);
  }
}

TEST_CASE("long reductions run as block reductions (a block of threads per output, warp shuffles)",
          "[cuda][reduction]") {
  struct Case {
    std::string op;
    Shape shape;
    AttrMap attrs;
    bool with_nan = false;
  };
  const std::vector<Case> cases = {
      {"sum", {3, 1000}, {{"axis", std::vector<int64_t>{1}}}},
      {"max", {2, 300, 5}, {{"axis", std::vector<int64_t>{1}}}},
      {"sum", {40, 50}, {}},  // everything: one output, one block
      {"mean", {16, 4, 32}, {{"axis", std::vector<int64_t>{0, 2}}}},
      {"prod", {2, 400}, {{"axis", std::vector<int64_t>{1}}}},
      {"min", {3, 777}, {{"axis", std::vector<int64_t>{1}}}, true},
      {"max", {3, 777}, {{"axis", std::vector<int64_t>{1}}}, true},
      // A block per row: the maximum and the sum as block reductions.
      {"softmax", {4, 1000}, {{"axis", -1}}},
      {"log_softmax", {3, 500}, {{"axis", -1}, {"temperature", 2.0}}},
      {"softmax", {3, 300}, {{"axis", -1}}, true},
  };
  std::vector<kir::Kernel> all_kernels;
  for (const Case& c : cases) {
    INFO(c.op << " over " << ShapeToString(c.shape));
    const Symbol out = Symbol::Create(c.op, {Symbol::Variable("x", c.shape)}, c.attrs);
    // prod: values near 1, so that 800 of them stay finite.
    Tensor x = c.op == "prod" ? RandomTensor(c.shape, 3, 0.99, 1.01) : RandomTensor(c.shape, 3);
    if (c.with_nan) x.data_as<float>()[NumElements(c.shape) / 2] = std::nanf("");
    CompileOptions options;
    const Tensor want = CompileJit(out.ToGraph(), options)->Run({{"x", x}})[0];
    const LoweredGraph lowered = LowerGraph(out.ToGraph(), ForCuda(options));
    const cuda::CudaModuleSource module = cuda::EmitCudaModule(lowered.kernels);
    CHECK(module.source.find("kiln_block_reduce(") != std::string::npos);
    const bool whole_row = c.op.find("softmax") != std::string::npos;  // NaN spreads over the row
    REQUIRE(module.kernels.size() == 1);
    CHECK(module.kernels[0].block_threads == 256);
    proto::ArtifactProto gpu_artifact = lowered.artifact;
    *gpu_artifact.mutable_cuda()->add_kernels() = cuda::LaunchForm(module.kernels[0]);
    // On the emulated device (blocks of 256 fibers, the shuffles' tree), and through the
    // CPU kernel ABI (blocks of 64).
    const Tensor on_device =
        CudaExecutor::Create(gpu_artifact, cuda::EmulatedCudaDevice(lowered.kernels))->Run({{"x", x}})[0];
    const std::shared_ptr<const CodeModule> code = LoadSharedObject(cuda::BuildEmulatedSharedObject(lowered.kernels));
    const Tensor on_cpu_abi = Executor::Create(lowered.artifact, code)->Run({{"x", x}})[0];
    KILN_CHECK_CLOSE(on_device, want, 1e-5, 1e-5);
    KILN_CHECK_CLOSE(on_cpu_abi, want, 1e-5, 1e-5);
    if (c.with_nan) CHECK(std::isnan(on_device.GetDouble(whole_row ? NumElements(c.shape) / 2 + 1 : 1)));
    for (kir::Kernel kernel : lowered.kernels) {
      kernel.name = "r" + std::to_string(all_kernels.size()) + "_" + kernel.name;
      all_kernels.push_back(std::move(kernel));
    }
  }
  // The shuffles and shared memory through NVRTC and ptxas.
  const cuda::Nvrtc* nvrtc = cuda::Nvrtc::Find();
  if (nvrtc == nullptr) {
    std::printf("SKIPPED: block reductions through NVRTC: %s\n", cuda::Nvrtc::LoadError().c_str());
    return;
  }
  const cuda::NvrtcOutput compiled =
      nvrtc->Compile(cuda::EmitCudaModule(all_kernels).source, "block_reductions.cu", "sm_90");
  CHECK(compiled.ptx.find("shfl.sync.down") != std::string::npos);
  const auto report = cuda::ParsePtxasReport(compiled.log);
  CHECK(report.size() == all_kernels.size());
  for (const auto& kernel : report) CHECK(kernel.spill_store_bytes == 0);
}

TEST_CASE("arguments the memory plan keeps apart are __restrict__ (const where only read)", "[cuda][restrict]") {
  // Pooling's output dies in the elementwise kernel after it, which may then write in its
  // place: those two arguments share storage and stay unrestricted.
  const Symbol x = Symbol::Variable("x", Shape{2, 4, 8, 8});
  const Symbol pooled =
      Symbol::Create("Pooling", {x}, {{"kernel", "(2,2)"}, {"stride", "(2,2)"}, {"pool_type", "max"}});
  const Symbol y = Symbol::Create("Activation", {pooled * 2.0}, {{"act_type", "relu"}});
  CompileOptions unfused;
  unfused.graph_opt_level = 0;  // a kernel per node
  const LoweredGraph lowered = LowerGraph(y.ToGraph(), ForCuda(unfused));
  REQUIRE(lowered.kernels.size() == 3);
  const kir::Kernel& pool = lowered.kernels.front();
  REQUIRE(pool.noalias.size() == pool.args.size());
  CHECK(std::all_of(pool.noalias.begin(), pool.noalias.end(), [](bool b) { return b; }));
  const std::string pool_source = cuda::EmitCudaModule({pool}).source;
  CHECK(pool_source.find("const float* __restrict__ a0") != std::string::npos);  // x, read only
  CHECK(pool_source.find("float* __restrict__ a1") != std::string::npos);        // its output
  // The elementwise kernels run in place (the planner reuses what dies there): their
  // input and output share storage and neither is restricted.
  REQUIRE(lowered.artifact.report().inplace_count() > 0);
  int unrestricted = 0;
  for (const kir::Kernel& kernel : lowered.kernels) {
    unrestricted += static_cast<int>(std::count(kernel.noalias.begin(), kernel.noalias.end(), false));
  }
  CHECK(unrestricted == 2 * lowered.artifact.report().inplace_count());
  // The emulation (host C++ with the same qualifiers) still matches the reference.
  const Tensor data = RandomTensor({2, 4, 8, 8}, 12);
  const std::shared_ptr<const CodeModule> code = LoadSharedObject(cuda::BuildEmulatedSharedObject(lowered.kernels));
  KILN_CHECK_CLOSE(Executor::Create(lowered.artifact, code)->Run({{"x", data}})[0],
                   CompileJit(y.ToGraph(), CompileOptions{})->Run({{"x", data}})[0], 1e-6, 1e-7);
}

TEST_CASE("small kernels bind their rows to GPU threads where the CPU keeps them on one thread", "[cuda][schedule]") {
  // Each graph's work is far below the CPU's least parallel work (16,384 elements), so
  // the CPU runs it as a serial loop; on CUDA a serial loop is one GPU thread, so the
  // same lowering makes the row loop parallel there.
  const Symbol x = Symbol::Variable("x", Shape{6, 8});
  const Symbol image = Symbol::Variable("image", Shape{1, 2, 4, 4});
  const Symbol ids = Symbol::Variable("ids", Shape{6});
  const std::vector<std::pair<std::string, Symbol>> graphs = {
      {"topk", Symbol::Create("topk", {x}, {{"k", 2}, {"axis", -1}})},
      {"cumsum", Symbol::Create("cumsum", {x}, {{"axis", 1}})},
      {"Pad", Symbol::Create("Pad", {image}, {{"mode", "constant"}, {"pad_width", "(0,0,0,0,1,1,2,2)"}})},
      {"Embedding", Symbol::Create("Embedding", {ids, Symbol::Variable("table", Shape{10, 8})},
                                   {{"input_dim", 10}, {"output_dim", 8}})},
      {"LeakyReLU", Symbol::Create("LeakyReLU", {image, Symbol::Variable("gamma", Shape{2})}, {{"act_type", "prelu"}})},
  };
  for (const auto& [name, graph] : graphs) {
    INFO(name);
    CompileOptions options;
    options.embed_params = false;
    const LoweredGraph cpu = LowerGraph(graph.ToGraph(), options);
    const LoweredGraph gpu = LowerGraph(graph.ToGraph(), ForCuda(options));
    bool cpu_serial = false;
    for (const kir::Kernel& kernel : cpu.kernels) cpu_serial = cpu_serial || kernel.parallel_extent <= 1;
    CHECK(cpu_serial);
    for (const cuda::CudaKernelInfo& info : cuda::EmitCudaModule(gpu.kernels).kernels) {
      INFO(info.name);
      CHECK((info.has_parallel_loop || info.block_threads > 0));
      CHECK(info.parallel_extent * info.inner_threads > 1);
    }
  }
}
