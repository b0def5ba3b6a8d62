// End to end: graphs compile (JIT and AOT) and match the reference interpreter; the
// artifact round-trips; bad artifacts are rejected clearly; one executor serves many
// threads with bit-identical results.
#include <atomic>
#include <catch2/catch.hpp>
#include <filesystem>
#include <random>
#include <thread>

#include "codegen/compiler.h"
#include "passes/interpreter.h"
#include "runtime/artifact.h"
#include "runtime/error.h"
#include "runtime/executor.h"
#include "symbol/ops_api.h"
#include "tests/op_test_util.h"
#include "tests/test_models.h"

using namespace kiln;
using namespace kiln::testing;

namespace {

std::string TempPath(const std::string& name) {
  const auto dir = std::filesystem::temp_directory_path() / ("kiln_compile_test_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  return (dir / name).string();
}

}  // namespace

TEST_CASE("an MLP compiles with the JIT and matches the interpreter", "[compile]") {
  for (int64_t batch : {1, 5}) {
    const Graph graph = WithRandomParams(TestMlp(), {{"data", {batch, 30}}}, 7);
    const Tensor data = RandomTensor({batch, 30}, 1);
    const auto expected = Interpret(graph, {{"data", data}});
    CompileOptions options;
    options.input_shapes = {{"data", {batch, 30}}};
    const auto executor = CompileJit(graph, options);
    REQUIRE(executor->inputs().size() == 1);
    CHECK(executor->inputs()[0].name == "data");
    const auto out = executor->Run({{"data", data}});
    KILN_CHECK_CLOSE(out[0], expected[0], 1e-5, 1e-6);
  }
}

TEST_CASE("LeNet with BatchNorm compiles AOT, round-trips as a file and matches", "[compile]") {
  const Graph graph = WithRandomParams(TestLeNet(), {{"data", {2, 1, 28, 28}}}, 11);
  const Tensor data = RandomTensor({2, 1, 28, 28}, 3, 0, 1);
  const auto expected = Interpret(graph, {{"data", data}});
  CompileOptions options;
  options.input_shapes = {{"data", {2, 1, 28, 28}}};
  const std::string path = TempPath("lenet.kiln");
  SaveArtifact(path, CompileGraph(graph, options));
  const auto executor = Executor::Load(path);
  const auto out = executor->Run({{"data", data}});
  KILN_CHECK_CLOSE(out[0], expected[0], 1e-4, 1e-5);
  // Fusion: conv+tanh, conv+bn(folded)+tanh, fc+tanh: 12 nodes become 7 kernels.
  CHECK(executor->num_kernels() == 7);
  // Memory planning shares the arena between layers.
  const LoweredGraph lowered = LowerGraph(graph, options);
  // BatchNorm folds into conv2, Flatten is a view: 10 kernels before fusion.
  CHECK(lowered.artifact.report().kernels_before_fusion() == 10);
  CHECK(lowered.artifact.report().kernels() == 7);
  CHECK(static_cast<int64_t>(lowered.artifact.arena_bytes()) <
        static_cast<int64_t>(lowered.artifact.report().no_reuse_bytes()));
}

TEST_CASE("embedded filters are packed at compile time; parameters give their values", "[compile]") {
  const Graph graph = WithRandomParams(TestLeNet(), {{"data", {2, 1, 28, 28}}}, 5);
  const Tensor data = RandomTensor({2, 1, 28, 28}, 4, 0, 1);
  const auto expected = Interpret(graph, {{"data", data}});
  CompileOptions options;
  options.input_shapes = {{"data", {2, 1, 28, 28}}};
  const proto::ArtifactProto artifact = LowerGraph(graph, options).artifact;
  std::vector<std::string> names;
  for (const auto& spec : artifact.params()) names.push_back(spec.name());
  INFO(Catch::StringMaker<std::vector<std::string>>::convert(names));
  // The filters are read only in their packed form: the originals are not stored (conv1's
  // are BatchNorm-folded first; conv2's 8x8 output takes the narrow form, W^T packed).
  CHECK(std::count(names.begin(), names.end(), "conv2_weight:packed_t") == 1);
  CHECK(std::count(names.begin(), names.end(), "conv2_weight") == 0);
  CHECK(std::count(names.begin(), names.end(), "conv1_folded_weight:packed") == 1);
  CHECK(artifact.param_values_size() == artifact.params_size());
  for (const auto& call : artifact.kernels()) {
    for (const auto& arg : call.args()) {
      if (arg.kind() == proto::BufferRef::PARAM) CHECK(arg.index() < static_cast<uint32_t>(artifact.params_size()));
    }
  }
  const auto packed = CompileJit(graph, options);
  KILN_CHECK_CLOSE(packed->Run({{"data", data}})[0], expected[0], 1e-4, 1e-5);
  // Parameters bound at run time are never packed: the model keeps its parameters.
  options.embed_params = false;
  const auto bound = CompileJit(graph, options);
  CHECK(std::count_if(bound->params().begin(), bound->params().end(),
                      [](const TensorSpec& spec) { return spec.name == "conv1_weight"; }) == 1);
  bound->BindParams(graph.params, true);
  KILN_CHECK_CLOSE(bound->Run({{"data", data}})[0], expected[0], 1e-4, 1e-5);
}

TEST_CASE("a profiled run gives the same outputs and a time per kernel", "[compile]") {
  const Graph graph = WithRandomParams(TestLeNet(), {{"data", {1, 1, 28, 28}}}, 3);
  CompileOptions options;
  options.input_shapes = {{"data", {1, 1, 28, 28}}};
  const auto executor = CompileJit(graph, options);
  const Tensor data = RandomTensor({1, 1, 28, 28}, 4);
  std::vector<double> seconds;
  const auto profiled = executor->Run({data}, &seconds);
  executor->Run({data}, &seconds);  // accumulates
  const auto plain = executor->Run({data});
  CHECK(profiled[0].BitwiseEquals(plain[0]));
  REQUIRE(seconds.size() == executor->num_kernels());
  double total = 0;
  for (const double s : seconds) {
    CHECK(s >= 0);
    total += s;
  }
  CHECK(total > 0);
  CHECK(executor->kernel_node(0) == "conv1+tanh1");
}

TEST_CASE("one executor runs from many threads with bit-identical results", "[compile][threads]") {
  const Graph graph = WithRandomParams(TestLeNet(), {{"data", {1, 1, 28, 28}}}, 5);
  CompileOptions options;
  options.input_shapes = {{"data", {1, 1, 28, 28}}};
  ExecutorOptions executor_options;
  executor_options.threads = 2;
  const auto executor = CompileJit(graph, options, executor_options);
  std::vector<Tensor> inputs;
  std::vector<Tensor> expected;
  for (int i = 0; i < 6; ++i) {
    inputs.push_back(RandomTensor({1, 1, 28, 28}, 100 + i, 0, 1));
    expected.push_back(executor->Run({{"data", inputs.back()}})[0]);
  }
  std::vector<std::thread> threads;
  std::atomic<int> mismatches{0};
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int round = 0; round < 20; ++round) {
        const int i = (t + round) % 6;
        if (!executor->Run({{"data", inputs[i]}})[0].BitwiseEquals(expected[i])) ++mismatches;
      }
    });
  }
  for (auto& thread : threads) thread.join();
  CHECK(mismatches == 0);
}

TEST_CASE("outputs that are inputs, repeated outputs, and multiple outputs", "[compile]") {
  const Symbol x = Symbol::Variable("x");
  const Symbol y = sym::relu(x, {}, "r");
  const Graph graph = Symbol::Group({y, x, y, sym::exp(y, {}, "e")}).ToGraph();
  CompileOptions options;
  options.input_shapes = {{"x", {3, 4}}};
  const auto executor = CompileJit(graph, options);
  const Tensor xv = RandomTensor({3, 4}, 9);
  const auto out = executor->Run({{"x", xv}});
  const auto expected = Interpret(graph, {{"x", xv}});
  REQUIRE(out.size() == 4);
  for (size_t i = 0; i < 4; ++i) KILN_CHECK_CLOSE(out[i], expected[i], 1e-6, 0);
}

TEST_CASE("the executor checks what it is given", "[compile][errors]") {
  const Graph graph = WithRandomParams(TestMlp(), {{"data", {2, 30}}}, 7);
  CompileOptions options;
  options.input_shapes = {{"data", {2, 30}}};
  options.embed_params = false;
  const auto executor = CompileJit(graph, options);
  CHECK(executor->MissingParams().size() == 4);
  CHECK_THROWS_WITH(executor->Run({{"data", RandomTensor({2, 30}, 1)}}),
                    Catch::Contains("parameters not bound: fc1_weight"));
  CHECK_THROWS_WITH(executor->BindParams({{"fc1_weight", RandomTensor({64, 31}, 1)}}),
                    Catch::Contains("parameter 'fc1_weight': expected float32 (64,30), given float32 (64,31)"));
  CHECK_THROWS_WITH(executor->BindParams({{"fc9_weight", RandomTensor({1}, 1)}}),
                    Catch::Contains("no parameter named 'fc9_weight'"));
  executor->BindParams(graph.params);
  CHECK(executor->MissingParams().empty());
  CHECK_THROWS_WITH(executor->Run({{"data", RandomTensor({3, 30}, 1)}}),
                    Catch::Contains("input 'data': expected float32 (2,30), given float32 (3,30)"));
  CHECK_THROWS_WITH(executor->Run(std::map<std::string, Tensor>{}), Catch::Contains("missing input 'data'"));
  CHECK_THROWS_WITH(executor->Run({{"data", RandomTensor({2, 30}, 1)}, {"extra", RandomTensor({1}, 1)}}),
                    Catch::Contains("unknown input 'extra'"));
  // Compilation needs every input shape.
  CHECK_THROWS_WITH(CompileJit(graph, CompileOptions{}), Catch::Contains("input 'data': shape unknown"));
}

TEST_CASE("bad artifacts are rejected with clear errors", "[compile][errors]") {
  const Graph graph = WithRandomParams(TestMlp(), {{"data", {1, 30}}}, 7);
  CompileOptions options;
  options.input_shapes = {{"data", {1, 30}}};
  const proto::ArtifactProto artifact = CompileGraph(graph, options);
  const std::string good = SerializeArtifact(artifact);
  CHECK_NOTHROW(ParseArtifact(good));
  CHECK_THROWS_WITH(ParseArtifact(good.substr(0, good.size() / 2)), Catch::Contains("checksum mismatch"));
  {
    // An artifact with the checksum kiln wrote before XXH3 is named as old.
    std::string old = good;
    const uint64_t fnv = Fnv1a64(std::string_view(old).substr(16));
    for (int i = 0; i < 8; ++i) old[8 + i] = static_cast<char>((fnv >> (8 * i)) & 0xff);
    CHECK_THROWS_WITH(ParseArtifact(old), Catch::Contains("written by an older kiln (FNV checksum); recompile"));
  }
  CHECK_THROWS_WITH(ParseArtifact("garbage"), Catch::Contains("not a kiln artifact"));
  std::mt19937 rng(5);
  for (int trial = 0; trial < 200; ++trial) {
    std::string bad = good;
    bad[16 + rng() % (bad.size() - 16)] ^= static_cast<char>(1 + rng() % 255);
    CHECK_THROWS_WITH(ParseArtifact(bad), Catch::Contains("checksum mismatch"));
  }
  for (size_t cut = 0; cut < 64; ++cut) CHECK_THROWS_AS(ParseArtifact(good.substr(0, cut)), Error);

  proto::ArtifactProto newer = artifact;
  newer.set_format_version(kArtifactFormatVersion + 1);
  CHECK_THROWS_WITH(
      ParseArtifact(SerializeArtifact(newer)),
      Catch::Contains("format version " + std::to_string(kArtifactFormatVersion + 1) + " is not supported"));
  proto::ArtifactProto other_arch = artifact;
  other_arch.mutable_target()->set_triple("aarch64-unknown-linux-gnu");
  CHECK_THROWS_WITH(CheckTarget(other_arch.target(), "m.kiln"), Catch::Contains("compiled for aarch64"));
  proto::ArtifactProto exotic = artifact;
  exotic.mutable_target()->add_features("avx512f");
  exotic.mutable_target()->add_features("avx512bw");
  const auto host = HostCpuFeatures();
  if (std::find(host.begin(), host.end(), "avx512bw") == host.end()) {
    CHECK_THROWS_WITH(CheckTarget(exotic.target(), "m.kiln"), Catch::Contains("needs the CPU feature 'avx512"));
  }
  const std::string path = TempPath("bad.kiln");
  proto::ArtifactProto no_kernel = artifact;
  no_kernel.mutable_kernels(0)->set_symbol("missing_symbol");
  SaveArtifact(path, no_kernel);
  CHECK_THROWS_WITH(Executor::Load(path),
                    Catch::Contains("kernel 'missing_symbol' (node 'fc1+relu1') is missing from the code object"));
  proto::ArtifactProto out_of_arena = artifact;
  out_of_arena.mutable_kernels(0)->mutable_args(0)->set_kind(proto::BufferRef::ARENA);
  out_of_arena.mutable_kernels(0)->mutable_args(0)->set_offset(1ull << 40);
  SaveArtifact(path, out_of_arena);
  CHECK_THROWS_WITH(Executor::Load(path), Catch::Contains("outside the arena"));
}

// Regressions from the reliability probe (issue 8): past the checksum, the executor
// checks every kernel call against the code's own ABI record.
TEST_CASE("artifact metadata is checked against the kernels' ABI records", "[compile][errors][regression]") {
  const Graph graph = WithRandomParams(TestMlp(), {{"data", {1, 30}}}, 7);
  CompileOptions options;
  options.input_shapes = {{"data", {1, 30}}};
  const proto::ArtifactProto artifact = CompileGraph(graph, options);
  const std::string path = TempPath("abi.kiln");
  const auto load_error = [&](const proto::ArtifactProto& changed) {
    SaveArtifact(path, changed);  // a valid checksum over forged metadata
    try {
      Executor::Load(path);
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("loaded");
  };
  CHECK(load_error(artifact) == "loaded");

  proto::ArtifactProto removed = artifact;
  removed.mutable_kernels(0)->mutable_args()->RemoveLast();
  CHECK_THAT(load_error(removed),
             Catch::Contains("(node 'fc1+relu1'): the code takes") && Catch::Contains("buffers, the artifact gives"));

  proto::ArtifactProto wide = artifact;
  for (auto& call : *wide.mutable_kernels()) call.set_parallel_extent(int64_t{1} << 40);
  CHECK_THAT(load_error(wide), Catch::Contains("the artifact says 1099511627776"));

  proto::ArtifactProto small = artifact;
  small.mutable_kernels(0)->mutable_args(0)->set_bytes(4);
  CHECK_THAT(load_error(small), Catch::Contains("buffer 0: the code reads or writes 120 bytes, the artifact gives 4"));

  // The first arena buffer, moved off its alignment, then past the arena.
  proto::ArtifactProto shifted = artifact;
  proto::BufferRef* arena_ref = nullptr;
  for (auto& call : *shifted.mutable_kernels()) {
    for (auto& arg : *call.mutable_args()) {
      if (arg.kind() == proto::BufferRef::ARENA && arena_ref == nullptr) arena_ref = &arg;
    }
  }
  REQUIRE(arena_ref != nullptr);
  arena_ref->set_offset(arena_ref->offset() + 4);
  CHECK_THAT(load_error(shifted), Catch::Contains("is not a multiple of 64"));
  arena_ref->set_offset((shifted.arena_bytes() / 64 + 1) * 64);
  CHECK_THAT(load_error(shifted), Catch::Contains("reach outside the arena"));

  proto::ArtifactProto huge_arena = artifact;
  huge_arena.set_arena_bytes(uint64_t{1} << 62);
  CHECK_THAT(load_error(huge_arena), Catch::Contains("exceeds kiln's limit"));

  proto::ArtifactProto huge_input = artifact;
  huge_input.mutable_inputs(0)->set_shape(0, int64_t{1} << 40);
  CHECK_THAT(load_error(huge_input), Catch::Contains("tensor 'data'") && Catch::Contains("exceeds kiln's limit"));

  proto::ArtifactProto wrong_index = artifact;
  wrong_index.mutable_kernels(0)->mutable_args(1)->set_index(99);
  CHECK_THAT(load_error(wrong_index), Catch::Contains("PARAM 99 does not exist"));

  CHECK_THROWS_WITH(Executor::Load(TempPath("")), Catch::Contains("is a directory"));
  SaveArtifact(path, artifact);
  CHECK_THROWS_WITH(Executor::Load(path, {.threads = -1}), Catch::Contains("given -1"));
  CHECK_THROWS_WITH(Executor::Load(path, {.threads = 100000}), Catch::Contains("given 100000"));
}

TEST_CASE("sizes that overflow are compile-time errors naming the node", "[compile][errors][regression]") {
  // broadcast_to (1,1) -> 2^31 x 2^31 elements: 2^62 elements, 2^64 bytes of float32.
  Symbol x = Symbol::Variable("x");
  Symbol big = sym::broadcast_to(x, {{"shape", std::vector<int64_t>{int64_t{1} << 31, int64_t{1} << 31}}}, "expand");
  Symbol total = sym::sum(big, {}, "total");
  CompileOptions options;
  options.input_shapes = {{"x", {1, 1}}};
  CHECK_THROWS_WITH(CompileGraph(total.ToGraph(), options),
                    Catch::Contains("node 'expand' (broadcast_to)") && Catch::Contains("kiln's limit"));
  // An absurd input shape.
  options.input_shapes = {{"x", {int64_t{1} << 30, int64_t{1} << 30}}};
  CHECK_THROWS_WITH(CompileGraph(sym::sum(x, {}, "s").ToGraph(), options), Catch::Contains("kiln's limit"));
}

TEST_CASE("idle arenas are bounded", "[compile][threads][regression]") {
  const Graph graph = WithRandomParams(TestMlp(), {{"data", {2, 30}}}, 7);
  CompileOptions options;
  options.input_shapes = {{"data", {2, 30}}};
  ExecutorOptions executor_options;
  executor_options.threads = 1;
  executor_options.max_idle_arenas = 1;
  const auto executor = CompileJit(graph, options, executor_options);
  const Tensor data = RandomTensor({2, 30}, 3);
  const Tensor expected = executor->Run({{"data", data}})[0];
  std::vector<std::thread> threads;
  std::atomic<int> mismatches{0};
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 50; ++i) mismatches += executor->Run({{"data", data}})[0].BitwiseEquals(expected) ? 0 : 1;
    });
  }
  for (auto& thread : threads) thread.join();
  CHECK(mismatches == 0);
}
