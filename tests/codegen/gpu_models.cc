#include "tests/codegen/gpu_models.h"

#include "symbol/symbol.h"
#include "tests/op_test_util.h"
#include "train/optimizer.h"
#include "train/step_graph.h"

namespace kiln::testing {
namespace {

class ModelBuilder {
 public:
  explicit ModelBuilder(uint64_t seed) : seed_(seed) {}
  Symbol Param(const std::string& name, const Shape& shape, double scale = 0.3) {
    params_[name] = RandomTensor(shape, seed_++, -scale, scale);
    return Symbol::Variable(name, shape);
  }
  Symbol Input(const std::string& name, const Shape& shape) {
    inputs_[name] = RandomTensor(shape, seed_++);
    return Symbol::Variable(name, shape);
  }
  Symbol Conv(const std::string& name, const Symbol& x, int64_t in, int64_t out, int64_t kernel, int64_t stride,
              int64_t pad, int64_t groups = 1) {
    const std::string k = "(" + std::to_string(kernel) + "," + std::to_string(kernel) + ")";
    return Symbol::Create(
        "Convolution", {x, Param(name + "_weight", {out, in / groups, kernel, kernel}), Param(name + "_bias", {out})},
        {{"kernel", k},
         {"stride", "(" + std::to_string(stride) + "," + std::to_string(stride) + ")"},
         {"pad", "(" + std::to_string(pad) + "," + std::to_string(pad) + ")"},
         {"num_filter", out},
         {"num_group", groups}},
        name);
  }
  Symbol BatchNorm(const std::string& name, const Symbol& x, int64_t channels) {
    params_[name + "_moving_var"] = RandomTensor({channels}, seed_++, 0.5, 1.5);
    return Symbol::Create(
        "BatchNorm",
        {x, Param(name + "_gamma", {channels}, 1.0), Param(name + "_beta", {channels}),
         Param(name + "_moving_mean", {channels}), Symbol::Variable(name + "_moving_var", Shape{channels})},
        {{"fix_gamma", false}}, name);
  }
  Symbol Dense(const std::string& name, const Symbol& x, int64_t in, int64_t out) {
    return Symbol::Create("FullyConnected", {x, Param(name + "_weight", {out, in}), Param(name + "_bias", {out})},
                          {{"num_hidden", out}}, name);
  }
  GpuModel Finish(const std::string& name, const Symbol& out) {
    GpuModel model{name, out.ToGraph(), inputs_};
    model.graph.params = params_;
    return model;
  }

 private:
  uint64_t seed_;
  std::map<std::string, Tensor> params_, inputs_;
};

Symbol Relu(const Symbol& x) {
  return Symbol::Create("Activation", {x}, {{"act_type", "relu"}});
}

}  // namespace

std::vector<GpuModel> GpuModels() {
  std::vector<GpuModel> models;
  {
    ModelBuilder b(100);
    const Symbol h = Relu(b.Dense("fc1", b.Input("data", {8, 20}), 20, 32));
    models.push_back(b.Finish("mlp", Symbol::Create("softmax", {b.Dense("fc2", h, 32, 10)}, {{"axis", -1}})));
  }
  {
    // LeNet's layers, plus a grouped, a strided and a pointwise convolution.
    ModelBuilder b(200);
    Symbol x = b.Input("data", {3, 2, 12, 12});
    x = Relu(b.BatchNorm("bn1", b.Conv("conv1", x, 2, 8, 5, 1, 2), 8));
    x = Symbol::Create("Pooling", {x}, {{"kernel", "(2,2)"}, {"stride", "(2,2)"}, {"pool_type", "max"}});
    x = Relu(b.Conv("conv2", x, 8, 8, 3, 1, 1, 2));
    x = Relu(b.Conv("conv3", x, 8, 16, 3, 2, 1));
    x = b.Conv("conv4", x, 16, 16, 1, 1, 0) + x;  // a residual block's pointwise layer
    x = Symbol::Create("Flatten", {Relu(x)});
    models.push_back(b.Finish("convnet", b.Dense("fc", x, 16 * 3 * 3, 10)));
  }
  {
    ModelBuilder b(300);
    const Symbol q = b.Input("q", {2, 5, 4}), k = b.Input("k", {2, 6, 4}), w = b.Param("w", {6, 3});
    const Symbol scores = Symbol::Create("batch_dot", {q, k}, {{"transpose_b", true}});
    const Symbol attention = Symbol::Create("softmax", {scores}, {{"axis", -1}});
    models.push_back(b.Finish("attention", Symbol::Create("dot", {attention, w})));
  }
  return models;
}

GpuTrainingStep MakeGpuTrainingStep() {
  const GpuModel model = GpuTrainingModel();
  const Optimizer sgd(ParseOptimizer("sgd", "lr=0.1,momentum=0.9,wd=0.001"));
  StepGraphOptions step_options;
  step_options.optimizer = &sgd;
  for (const auto& [name, value] : model.inputs) step_options.shapes[name] = value.shape();
  const StepGraph step = BuildStepGraph(model.graph, step_options);
  // Every tensor is an input of the step: data, labels, parameters, states, the rate.
  std::map<std::string, Tensor> feeds = model.inputs;
  for (const auto& [name, value] : model.graph.params) feeds[name] = value;
  for (const auto& state : step.state_names) {
    const std::string param = state.substr(0, state.find("__"));
    feeds[state] = RandomTensor(model.graph.params.at(param).shape(), 77, -0.01, 0.01);
  }
  feeds[kLrInput] = Tensor::FromDoubles({1}, std::vector<double>{0.1});
  if (step.uses_step_counter) feeds[kStepInput] = Tensor::FromDoubles({1}, std::vector<double>{3}, DType::kInt64);
  CompileOptions options;
  options.is_train = true;
  options.embed_params = false;
  for (const auto& [name, value] : feeds) {
    options.input_shapes[name] = value.shape();
    options.input_types[name] = value.dtype();
  }
  return {step.graph, feeds, options};
}

GpuModel GpuTrainingModel() {
  // LeNet's layers with BatchNorm (batch statistics in training), a grouped convolution,
  // Dropout, and SoftmaxOutput's loss; inputs: the data and integer class labels.
  ModelBuilder b(400);
  Symbol x = b.Input("data", {4, 2, 10, 10});
  x = Relu(b.BatchNorm("bn1", b.Conv("conv1", x, 2, 8, 5, 1, 2), 8));
  x = Symbol::Create("Pooling", {x}, {{"kernel", "(2,2)"}, {"stride", "(2,2)"}, {"pool_type", "max"}});
  x = Relu(b.Conv("conv2", x, 8, 8, 3, 2, 1, 2));
  x = Symbol::Create("Dropout", {Symbol::Create("Flatten", {x})}, {{"p", 0.25}});
  const Symbol logits = b.Dense("fc", x, 8 * 3 * 3, 5);
  GpuModel model = b.Finish(
      "lenet_train", Symbol::Create("SoftmaxOutput", {logits, Symbol::Variable("softmax_label")}, {}, "softmax"));
  model.inputs["softmax_label"] = Tensor::FromDoubles({4}, std::vector<double>{0, 3, 1, 4});
  return model;
}

}  // namespace kiln::testing
