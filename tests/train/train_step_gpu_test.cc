// A training step on a GPU (TrainStepOptions::context = gpu(0)) without one: the CUDA
// emulation stands for gpu(0). Its steps (forward outputs, parameters, BatchNorm's moving
// statistics, optimizer states) follow the CPU step's from the same start.
#include <catch2/catch.hpp>
#include <cstdio>
#include <map>
#include <string>

#include "codegen/compiler.h"
#include "runtime/context.h"
#include "runtime/error.h"
#include "symbol/ops_api.h"
#include "symbol/symbol.h"
#include "tests/codegen/emulated_gpu.h"
#include "tests/codegen/gpu_models.h"
#include "tests/op_test_util.h"
#include "tests/train/gluon_test_util.h"
#include "train/gluon/loss.h"
#include "train/gluon/trainer.h"
#include "train/module.h"
#include "train/train_step.h"

using namespace kiln;
using namespace kiln::testing;

namespace {

void CheckClose(const std::map<std::string, Tensor>& actual, const std::map<std::string, Tensor>& expected) {
  REQUIRE(actual.size() == expected.size());
  for (const auto& [name, value] : expected) {
    INFO(name);
    KILN_CHECK_CLOSE(actual.at(name), value, 1e-4, 1e-5);
  }
}

}  // namespace

TEST_CASE("a training step on the GPU follows the CPU's step for step", "[train][gpu]") {
  if (!testing::HaveNvrtc("training on the GPU")) return;
  const EmulatedGpus gpu;
  const GpuModel model = GpuTrainingModel();
  TrainStepOptions options;
  for (const auto& [name, value] : model.inputs) {
    options.shapes[name] = value.shape();
    options.dtypes[name] = value.dtype();
  }
  options.optimizer = ParseOptimizer("sgd", "lr=0.05,momentum=0.9,wd=0.001");
  options.seed = 7;
  TrainStep cpu(model.graph, {}, options);
  options.context = Context::gpu(0);
  TrainStep on_gpu(model.graph, {}, options);
  CHECK(on_gpu.memory().num_kernels > 0);
  for (int step = 0; step < 3; ++step) {
    INFO("step " << step);
    std::map<std::string, Tensor> batch = model.inputs;
    batch["data"] = RandomTensor(batch["data"].shape(), 50 + step);
    const std::vector<Tensor> want = cpu.Step(batch);
    const std::vector<Tensor> got = on_gpu.Step(batch);
    REQUIRE(got.size() == want.size());
    for (size_t k = 0; k < want.size(); ++k) KILN_CHECK_CLOSE(got[k], want[k], 1e-4, 1e-5);
    CheckClose(on_gpu.Params(), cpu.Params());  // moving statistics included
    CheckClose(on_gpu.OptimizerStates(), cpu.OptimizerStates());
  }
  // Parameters set from the host land in device memory.
  std::map<std::string, Tensor> params = cpu.Params();
  for (auto& [name, value] : params) value = RandomTensor(value.shape(), 9);
  on_gpu.SetParams(params);
  CheckClose(on_gpu.Params(), params);
  // A batch of the wrong shape is refused by name.
  std::map<std::string, Tensor> bad = model.inputs;
  bad["data"] = RandomTensor({4, 2, 10, 9}, 1);
  CHECK_THROWS_WITH(on_gpu.Step(bad), Catch::Contains("input 'data'") && Catch::Contains("(4,2,10,9)"));
}

TEST_CASE("a Module bound on a GPU context trains as the CPU's does", "[train][gpu]") {
  if (!testing::HaveNvrtc("Module on the GPU")) return;
  const EmulatedGpus gpu;
  Symbol x = Symbol::Variable("data");
  x = sym::Activation(sym::FullyConnected(x, {{"num_hidden", 8}}, "fc1"), {{"act_type", "relu"}}, "relu1");
  x = sym::BatchNorm(x, {}, "bn1");
  x = sym::SoftmaxOutput(sym::FullyConnected(x, {{"num_hidden", 3}}, "fc2"), Symbol(), {}, "softmax");
  Module cpu(x);
  Module on_gpu(x, {"data"}, {"softmax_label"}, Context::gpu(0));
  for (Module* mod : {&cpu, &on_gpu}) {
    mod->Bind({{"data", {6, 5}}}, {{"softmax_label", {6}}});
    mod->InitParams("xavier", {}, {}, false, false, 3);
    mod->InitOptimizer("sgd", "lr=0.1,momentum=0.9,wd=0.001");
  }
  for (int step = 0; step < 3; ++step) {
    DataBatch batch;
    batch.data = {RandomTensor({6, 5}, 30 + step)};
    batch.label = {Tensor::FromDoubles({6}, std::vector<double>{0, 1, 2, 2, 1, 0})};
    for (Module* mod : {&cpu, &on_gpu}) {
      mod->Forward(batch, true);
      mod->Backward();
      mod->Update();
    }
    KILN_CHECK_CLOSE(on_gpu.GetOutputs().at(0), cpu.GetOutputs().at(0), 1e-4, 1e-5);
  }
  CheckClose(on_gpu.arg_params(), cpu.arg_params());
  CheckClose(on_gpu.aux_params(), cpu.aux_params());
  // Inference with the trained parameters (the moving statistics), compiled for the GPU;
  // again after another update (the parameters bound anew).
  for (int round = 0; round < 2; ++round) {
    DataBatch batch;
    batch.data = {RandomTensor({6, 5}, 60 + round)};
    batch.label = {Tensor::FromDoubles({6}, std::vector<double>{0, 1, 2, 2, 1, 0})};
    cpu.Forward(batch, false);
    on_gpu.Forward(batch, false);
    KILN_CHECK_CLOSE(on_gpu.GetOutputs().at(0), cpu.GetOutputs().at(0), 1e-4, 1e-5);
    for (Module* mod : {&cpu, &on_gpu}) {
      mod->Forward(batch, true);
      mod->Backward();
      mod->Update();
    }
  }
  CHECK_THROWS_WITH(Module(x, {"data"}, {"softmax_label"}, Context::gpu(7)), Catch::StartsWith("no CUDA device: "));
}

TEST_CASE("Gluon's Trainer trains parameters reset to a GPU as it trains them on the CPU", "[train][gpu][gluon]") {
  if (!testing::HaveNvrtc("Gluon on the GPU")) return;
  const EmulatedGpus gpu;
  // One net, trained from the same start on the CPU and then on the GPU (its names, so
  // its initial values and Dropout's streams, are the same both times).
  auto net = testing::Mlp();  // Dense relu, BatchNorm, Dropout, Dense
  gluon::ParameterDict params = net->CollectParams();
  params.Initialize("xavier", 5);
  const Tensor label = Tensor::FromDoubles({6}, std::vector<double>{0, 1, 2, 2, 1, 0});
  (*net)(RandomTensor({6, 5}, 1));  // deferred shapes known
  std::vector<Tensor> start;
  for (const auto& param : params) start.push_back(param->Data().Clone());
  gluon::loss::SoftmaxCrossEntropyLoss loss;
  const std::map<std::string, AttrArg> sgd = {{"learning_rate", 0.1}, {"momentum", 0.9}, {"wd", 0.001}};
  const auto train = [&](const Context& ctx) {
    size_t i = 0;
    for (const auto& param : params) param->SetData(start[i++]);
    params.ResetCtx(ctx);
    gluon::Trainer trainer(params, "sgd", sgd, 3);
    std::vector<float> losses;
    for (int step = 0; step < 3; ++step) {
      losses.push_back(trainer.TrainStep(*net, loss, RandomTensor({6, 5}, 40 + step), label, 6));
    }
    std::vector<Tensor> values;
    for (const auto& param : params) values.push_back(param->Data().Clone());
    return std::pair{losses, values};
  };
  const auto [cpu_losses, cpu_values] = train(Context::cpu());
  const auto [gpu_losses, gpu_values] = train(Context::gpu(0));
  for (size_t k = 0; k < cpu_losses.size(); ++k) CHECK(gpu_losses[k] == Approx(cpu_losses[k]).epsilon(1e-4));
  REQUIRE(gpu_values.size() == cpu_values.size());
  for (size_t i = 0; i < cpu_values.size(); ++i) KILN_CHECK_CLOSE(gpu_values[i], cpu_values[i], 1e-4, 1e-5);
  // Calling the net on parameters reset to the GPU runs there, with the current values
  // (uploaded again after SetData).
  const Tensor probe = RandomTensor({6, 5}, 77);
  params.ResetCtx(Context::cpu());
  const Tensor on_cpu = (*net)(probe).at(0);
  params.ResetCtx(Context::gpu(0));
  KILN_CHECK_CLOSE((*net)(probe).at(0), on_cpu, 1e-4, 1e-5);
  const auto& first = *params.begin();
  first->SetData(RandomTensor(first->shape(), 78));
  const Tensor changed_gpu = (*net)(probe).at(0);
  params.ResetCtx(Context::cpu());
  KILN_CHECK_CLOSE(changed_gpu, (*net)(probe).at(0), 1e-4, 1e-5);
  CHECK_FALSE(changed_gpu.BitwiseEquals(on_cpu));
  params.ResetCtx(Context::gpu(0));
  // One context per step.
  (*params.begin())->SetCtx(Context::cpu());
  gluon::Trainer mixed(params, "sgd", sgd, 3);
  CHECK_THROWS_WITH(mixed.TrainStep(*net, loss, RandomTensor({6, 5}, 1), label, 6),
                    Catch::Contains("put them on one context"));
}
