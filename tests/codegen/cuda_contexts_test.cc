// Contexts and GPU memory without a GPU: Context::cpu()/gpu(N), DeviceTensor's copies
// (host to GPU, GPU to GPU, back), and the CUDA executor's device-resident inputs and
// outputs and its call contexts (a stream each, calls from several threads at once), on
// the CUDA emulation registered as gpu(0) and gpu(1). Also run under ThreadSanitizer
// (tools/test.sh --config=tsan).
#include <catch2/catch.hpp>
#include <cstdio>
#include <thread>
#include <vector>

#include "codegen/compiler.h"
#include "codegen/cuda/cuda_emulation.h"
#include "codegen/cuda/nvrtc_compiler.h"
#include "runtime/context.h"
#include "runtime/cuda_executor.h"
#include "runtime/device_tensor.h"
#include "runtime/error.h"
#include "symbol/symbol.h"
#include "tests/codegen/emulated_gpu.h"
#include "tests/graph_runner.h"
#include "tests/op_test_util.h"

using namespace kiln;
using namespace kiln::testing;

namespace {

// relu(x * w + 1) summed over the last axis, then softmax: a cuBLAS step, elementwise
// kernels and reductions.
struct SmallModel {
  Graph graph;
  LoweredGraph lowered;
  proto::ArtifactProto artifact;
};
SmallModel MakeSmallModel() {
  const Symbol x = Symbol::Variable("x", Shape{6, 40});
  const Symbol w = Symbol::Variable("w", Shape{40, 40});
  const Symbol hidden = Symbol::Create("Activation", {Symbol::Create("dot", {x, w}) + 1.0}, {{"act_type", "relu"}});
  const Symbol out = Symbol::Create("softmax", {hidden}, {{"axis", -1}});
  SmallModel model;
  model.graph = out.ToGraph();
  model.graph.params["w"] = RandomTensor({40, 40}, 3);
  CompileOptions options;
  options.cuda = CompileOptions::Cuda{};
  model.lowered = LowerGraph(model.graph, options);
  model.artifact = CompileGraph(model.graph, options);
  return model;
}

}  // namespace

TEST_CASE("contexts name devices as MXNet does; a GPU that is not there is a clear error", "[cuda][contexts]") {
  CHECK(Context::cpu().ToString() == "cpu(0)");
  CHECK(Context::gpu(1).ToString() == "gpu(1)");
  CHECK(Context::gpu(1).is_gpu());
  CHECK_FALSE(Context::cpu() == Context::gpu(0));
  CHECK_NOTHROW(Context::cpu().CheckAvailable());
  CHECK_THROWS_WITH(Context::cpu(-1).CheckAvailable(), "device ids are at least 0, given cpu(-1)");
  // No device is registered for gpu(7), and no machine here has eight GPUs.
  CHECK_THROWS_WITH(Context::gpu(7).CheckAvailable(), Catch::StartsWith("no CUDA device: "));
  CHECK_THROWS_WITH(DeviceTensor::FromHost(RandomTensor({2}, 1), Context::gpu(7)),
                    Catch::StartsWith("no CUDA device: "));
  CHECK_THROWS_WITH(DeviceTensor::FromHost(RandomTensor({2}, 1), Context::cpu()),
                    Catch::Contains("expected a GPU context"));
}

TEST_CASE("device tensors copy to a GPU, between GPUs and back, bit for bit", "[cuda][contexts]") {
  const EmulatedGpus gpus(2);
  const Tensor host = RandomTensor({3, 5, 7}, 11);
  const DeviceTensor on0 = DeviceTensor::FromHost(host, Context::gpu(0));
  CHECK(on0.context() == Context::gpu(0));
  CHECK(on0.shape() == host.shape());
  CHECK(on0.nbytes() == host.nbytes());
  CHECK(on0.ToHost().BitwiseEquals(host));
  // Another GPU (through the host), and the same one (on the device).
  const DeviceTensor on1 = on0.CopyTo(Context::gpu(1));
  CHECK(on1.context() == Context::gpu(1));
  CHECK(on1.address() != on0.address());
  CHECK(on1.ToHost().BitwiseEquals(host));
  DeviceTensor again = on1.CopyTo(Context::gpu(1));
  CHECK(again.ToHost().BitwiseEquals(host));
  // Overwriting; copies share memory as Tensor's do.
  const Tensor other = RandomTensor({3, 5, 7}, 12);
  DeviceTensor shared = again;
  shared.CopyFromHost(other);
  CHECK(again.ToHost().BitwiseEquals(other));
  on0.CopyTo(again);
  CHECK(shared.ToHost().BitwiseEquals(host));
  const DeviceTensor flat = on0.Reshaped({105});
  CHECK(flat.address() == on0.address());
  CHECK(flat.ToHost().BitwiseEquals(host.Reshaped({105})));
  // Overlapping views of one allocation copy as if through a temporary.
  const std::vector<float> counting = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9};
  const std::vector<float> shifted = {2, 3, 4, 5, 6, 7, 8, 9, 8, 9};
  const DeviceTensor row_major = DeviceTensor::FromHost(Tensor::FromFloats({5, 2}, counting), Context::gpu(0));
  DeviceTensor first_rows = row_major.Rows(0, 4, {4, 2});
  row_major.Rows(1, 4, {4, 2}).CopyTo(first_rows);
  CHECK(row_major.ToHost().BitwiseEquals(Tensor::FromFloats({5, 2}, shifted)));
  // Mismatches name both sides.
  CHECK_THROWS_WITH(shared.CopyFromHost(RandomTensor({3, 5, 6}, 1)),
                    "copying into a device tensor: the tensor is (3,5,7) float32, given (3,5,6) float32");
  DeviceTensor small = DeviceTensor::FromHost(RandomTensor({4}, 1), Context::gpu(0));
  CHECK_THROWS_WITH(on0.CopyTo(small), Catch::Contains("the tensor is (4) float32, given (3,5,7) float32"));
  CHECK_THROWS_WITH(on0.Reshaped({104}), Catch::Contains("the element counts differ"));
  CHECK_THROWS_WITH(DeviceTensor().address(), "the device tensor is undefined");
  // Empty tensors are fine.
  CHECK(DeviceTensor::FromHost(Tensor({0, 3}, DType::kFloat32), Context::gpu(0)).ToHost().size() == 0);
}

TEST_CASE("the CUDA executor takes inputs on the GPU and leaves its outputs there", "[cuda][contexts]") {
  if (!testing::HaveNvrtc("device-resident inputs")) return;
  const EmulatedGpus gpus(2);
  const SmallModel model = MakeSmallModel();
  const auto executor = CudaExecutor::Create(model.artifact, cuda::EmulatedCudaDevice(model.lowered.kernels));
  CHECK(executor->context() == Context::gpu(0));
  const Tensor x = RandomTensor({6, 40}, 5);
  const Tensor want = RunWithInterpreter(model.lowered, {{"x", x}})[0];
  const Tensor from_host = executor->Run({{"x", x}})[0];
  KILN_CHECK_CLOSE(from_host, want, 1e-5, 1e-6);
  const std::vector<DeviceTensor> outputs =
      executor->Run(std::vector<DeviceTensor>{DeviceTensor::FromHost(x, Context::gpu(0))});
  REQUIRE(outputs.size() == 1);
  CHECK(outputs[0].context() == Context::gpu(0));
  CHECK(outputs[0].shape() == Shape{6, 40});
  CHECK(outputs[0].ToHost().BitwiseEquals(from_host));
  // The outputs are the caller's: a second call does not overwrite them.
  const Tensor x2 = RandomTensor({6, 40}, 6);
  const std::vector<DeviceTensor> second =
      executor->Run(std::vector<DeviceTensor>{DeviceTensor::FromHost(x2, Context::gpu(0))});
  CHECK(outputs[0].ToHost().BitwiseEquals(from_host));
  KILN_CHECK_CLOSE(second[0].ToHost(), RunWithInterpreter(model.lowered, {{"x", x2}})[0], 1e-5, 1e-6);
  // Inputs of another GPU, shape or count are refused by name.
  CHECK_THROWS_WITH(executor->Run(std::vector<DeviceTensor>{DeviceTensor::FromHost(x, Context::gpu(1))}),
                    "input 'x' is on gpu(1), the executor on gpu(0): copy it there first (DeviceTensor::CopyTo)");
  CHECK_THROWS_WITH(
      executor->Run(std::vector<DeviceTensor>{DeviceTensor::FromHost(RandomTensor({6, 39}, 1), Context::gpu(0))}),
      "input 'x': expected float32 (6,40), given float32 (6,39)");
  CHECK_THROWS_WITH(executor->Run(std::vector<DeviceTensor>{}), "expected 1 inputs, given 0");
  CHECK_THROWS_WITH(executor->Run(std::vector<DeviceTensor>{DeviceTensor()}), "input 'x' is undefined");

  // New parameter values reach later calls (and the captured graph).
  REQUIRE(executor->params().size() == 1);
  const Tensor w2 = RandomTensor({40, 40}, 4);
  executor->BindParams({{"w", w2}});
  SmallModel rebound = MakeSmallModel();
  rebound.graph.params["w"] = w2;
  const LoweredGraph with_w2 = LowerGraph(rebound.graph, [] {
    CompileOptions options;
    options.cuda = CompileOptions::Cuda{};
    return options;
  }());
  KILN_CHECK_CLOSE(executor->Run({{"x", x}})[0], RunWithInterpreter(with_w2, {{"x", x}})[0], 1e-5, 1e-6);
  CHECK_THROWS_WITH(executor->BindParams({{"v", w2}}), "BindParams: the artifact has no parameter 'v'");
  CHECK_NOTHROW(executor->BindParams({{"v", w2}}, /*allow_extra=*/true));
  CHECK_THROWS_WITH(executor->BindParams({{"w", RandomTensor({40, 39}, 4)}}), Catch::Contains("(40,39)"));
}

TEST_CASE("call contexts: calls from several threads run at once, each on its own stream and buffers",
          "[cuda][contexts]") {
  if (!testing::HaveNvrtc("call contexts")) return;
  const SmallModel model = MakeSmallModel();
  CudaExecutorOptions options;
  options.call_contexts = 3;
  const auto executor = CudaExecutor::Create(model.artifact, cuda::EmulatedCudaDevice(model.lowered.kernels), options);
  CHECK(executor->call_contexts() == 3);
  constexpr int kThreads = 6, kCalls = 4;
  std::vector<Tensor> inputs, wanted;
  for (int t = 0; t < kThreads; ++t) {
    inputs.push_back(RandomTensor({6, 40}, 100 + t));
    wanted.push_back(RunWithInterpreter(model.lowered, {{"x", inputs.back()}})[0]);
  }
  std::vector<std::vector<Tensor>> got(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int c = 0; c < kCalls; ++c) got[t].push_back(executor->Run({{"x", inputs[t]}})[0]);
    });
  }
  for (std::thread& thread : threads) thread.join();
  for (int t = 0; t < kThreads; ++t) {
    for (const Tensor& result : got[t]) KILN_CHECK_CLOSE(result, wanted[t], 1e-5, 1e-6);
  }
  options.call_contexts = 0;
  CHECK_THROWS_WITH(CudaExecutor::Create(model.artifact, cuda::EmulatedCudaDevice(model.lowered.kernels), options),
                    Catch::Contains("call_contexts must be 1 to 256, given 0"));
}
