// kiln's Gluon API (train/gluon) against MXNet 1.9.1's Gluon: parameter names and shapes
// (tools/golden/gen_gluon_names.py), layers' outputs for parameters MXNet saved, losses
// (tools/golden/gen_gluon_golden.py); parameter files both ways; errors.
#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>

#include "runtime/file_util.h"
#include "runtime/param_file.h"
#include "tests/op_test_util.h"
#include "tests/train/gluon_test_util.h"
#include "train/gluon/loss.h"
#include "train/gluon/nn.h"
#include "train/gluon/trainer.h"

using namespace kiln;
using namespace kiln::gluon;
using kiln::testing::ErrorOf;

namespace {

using Blocks = std::vector<std::shared_ptr<Block>>;

// The generator's MyBlock: children as attributes, a nested HybridSequential.
class MyBlock : public HybridBlock {
 public:
  MyBlock() : HybridBlock("myblock") {
    auto scope = NameScope();
    fc1_ = RegisterChild(std::make_shared<nn::Dense>(6), "fc1");
    body_ = RegisterChild(std::make_shared<nn::HybridSequential>(), "body");
    {
      auto body_scope = body_->NameScope();
      body_->Add(nn::Dense(5, {.activation = "tanh"}));
      body_->Add(nn::Dense(5));
    }
    fc2_ = RegisterChild(std::make_shared<nn::Dense>(3), "fc2");
  }

 protected:
  Symbol HybridForward(OpBuilder&, const Symbol& x) override { return fc2_->Forward(body_->Forward(fc1_->Forward(x))); }

 private:
  std::shared_ptr<nn::Dense> fc1_, fc2_;
  std::shared_ptr<nn::HybridSequential> body_;
};

// The nets of gen_gluon_names.py, by name, built in the same order.
const std::map<std::string, std::function<Blocks()>>& NameNets() {
  static const std::map<std::string, std::function<Blocks()>> nets = {
      {"mlp_scoped",
       [] {
         auto net = std::make_shared<nn::HybridSequential>();
         auto scope = net->NameScope();
         net->Add(nn::Dense(8, {.activation = "relu"}));
         net->Add(nn::Dense(4));
         return Blocks{net};
       }},
      {"mlp_unscoped",
       [] {
         auto net = std::make_shared<nn::Sequential>();
         net->Add(nn::Dense(8, {.activation = "relu"}));
         net->Add(nn::Dense(4, {.in_units = 8}));
         return Blocks{net};
       }},
      {"cnn",
       [] {
         auto net = std::make_shared<nn::HybridSequential>();
         auto scope = net->NameScope();
         net->Add(nn::Conv2D(6, {3}, {.padding = {1}}));
         net->Add(nn::BatchNorm());
         net->Add(nn::Activation("relu"));
         net->Add(nn::MaxPool2D());
         net->Add(nn::Conv2D(8, {3, 3}, {.use_bias = false, .in_channels = 6}));
         net->Add(nn::AvgPool2D());
         net->Add(nn::GlobalAvgPool2D());
         net->Add(nn::Flatten());
         net->Add(nn::Dense(10, {.in_units = 8}));
         net->Add(nn::Dropout(0.5));
         net->Add(nn::LeakyReLU(0.1));
         net->Add(nn::BatchNorm({.center = false, .scale = false, .in_channels = 10}));
         return Blocks{net};
       }},
      {"user_prefixes",
       [] {
         auto fc = std::make_shared<nn::Dense>(3, nn::DenseOptions{.prefix = "fc_"});
         auto net = std::make_shared<nn::HybridSequential>(BlockOptions{.prefix = "net_"});
         auto scope = net->NameScope();
         net->Add(nn::Dense(2, {.prefix = "out_"}));
         net->Add(nn::Dense(2));
         net->Add(nn::Dense(2, {.prefix = ""}));
         return Blocks{fc, net};
       }},
      {"counters",
       [] {
         Blocks blocks = {std::make_shared<nn::HybridSequential>(), std::make_shared<nn::HybridSequential>()};
         blocks.push_back(std::make_shared<nn::Dense>(2));
         blocks.push_back(std::make_shared<nn::Dense>(2));
         blocks.push_back(std::make_shared<nn::Embedding>(10, 4));
         return blocks;
       }},
      {"custom_block", [] { return Blocks{std::make_shared<MyBlock>()}; }},
      {"shared_params",
       [] {
         auto first = std::make_shared<nn::Dense>(4, nn::DenseOptions{.in_units = 3});
         auto second =
             std::make_shared<nn::Dense>(4, nn::DenseOptions{.in_units = 3, .params = first->CollectParams()});
         auto net = std::make_shared<nn::HybridSequential>();
         auto scope = net->NameScope();
         net->Add(nn::Dense(4, {.in_units = 3}));
         net->Add(nn::Dense(4, {.in_units = 3, .params = (*net)[0].CollectParams()}));
         return Blocks{first, second, net};
       }},
  };
  return nets;
}

nlohmann::json NamesAndShapes(const ParameterDict& params) {
  nlohmann::json list = nlohmann::json::array();
  for (const auto& param : params) list.push_back({param->name(), param->shape()});
  return list;
}

nlohmann::json Describe(const Block& block) {
  nlohmann::json structured = nlohmann::json::array();
  for (const auto& [key, param] : block.CollectParamsWithPrefix()) structured.push_back({key, param->name()});
  return {{"prefix", block.prefix()}, {"params", NamesAndShapes(block.CollectParams())}, {"structured", structured}};
}

// The layer cases of gen_gluon_golden.py, by name.
std::shared_ptr<Block> MakeLayer(const std::string& name) {
  static const std::map<std::string, std::function<std::shared_ptr<Block>()>> layers = {
      {"dense_relu", [] { return std::make_shared<nn::Dense>(5, nn::DenseOptions{.activation = "relu"}); }},
      {"dense_no_bias_no_flatten",
       [] { return std::make_shared<nn::Dense>(4, nn::DenseOptions{.use_bias = false, .flatten = false}); }},
      {"dense_flatten_tanh",
       [] { return std::make_shared<nn::Dense>(3, nn::DenseOptions{.activation = "tanh", .in_units = 18}); }},
      {"conv_stride_pad_sigmoid",
       [] {
         return std::make_shared<nn::Conv2D>(
             4, Shape{3}, nn::Conv2DOptions{.strides = {2}, .padding = {1}, .activation = "sigmoid"});
       }},
      {"conv_groups_dilation",
       [] {
         return std::make_shared<nn::Conv2D>(4, Shape{3, 3},
                                             nn::Conv2DOptions{.dilation = {2}, .groups = 2, .use_bias = false});
       }},
      {"maxpool",
       [] {
         return std::make_shared<nn::MaxPool2D>(nn::Pool2DOptions{.pool_size = {3}, .strides = {2}, .padding = {1}});
       }},
      {"maxpool_ceil", [] { return std::make_shared<nn::MaxPool2D>(nn::Pool2DOptions{.ceil_mode = true}); }},
      {"avgpool",
       [] {
         return std::make_shared<nn::AvgPool2D>(nn::Pool2DOptions{.pool_size = {3}, .strides = {2}, .padding = {1}});
       }},
      {"avgpool_exclude_pad",
       [] {
         return std::make_shared<nn::AvgPool2D>(
             nn::Pool2DOptions{.pool_size = {3}, .strides = {2}, .padding = {1}, .count_include_pad = false});
       }},
      {"global_avgpool", [] { return std::make_shared<nn::GlobalAvgPool2D>(); }},
      {"batchnorm", [] { return std::make_shared<nn::BatchNorm>(); }},
      {"batchnorm_no_scale",
       [] {
         return std::make_shared<nn::BatchNorm>(nn::BatchNormOptions{.momentum = 0.8, .epsilon = 1e-3, .scale = false});
       }},
      {"dropout", [] { return std::make_shared<nn::Dropout>(0.5); }},
      {"activation_softrelu", [] { return std::make_shared<nn::Activation>("softrelu"); }},
      {"leaky_relu", [] { return std::make_shared<nn::LeakyReLU>(0.2); }},
      {"flatten", [] { return std::make_shared<nn::Flatten>(); }},
      {"embedding", [] { return std::make_shared<nn::Embedding>(10, 4); }},
      {"mlp", [] { return kiln::testing::Mlp(); }},
  };
  return layers.at(name)();
}

// The loss cases of gen_gluon_golden.py, by name.
std::shared_ptr<loss::Loss> MakeLoss(const std::string& name) {
  using namespace loss;
  static const std::map<std::string, std::function<std::shared_ptr<Loss>()>> losses = {
      {"l2", [] { return std::make_shared<L2Loss>(); }},
      {"l2_weight_reshape_label", [] { return std::make_shared<L2Loss>(LossOptions{.weight = 2.0}); }},
      {"l2_sample_weight", [] { return std::make_shared<L2Loss>(); }},
      {"l2_batch_axis_1", [] { return std::make_shared<L2Loss>(LossOptions{.batch_axis = 1}); }},
      {"l1", [] { return std::make_shared<L1Loss>(); }},
      {"l1_weight", [] { return std::make_shared<L1Loss>(LossOptions{.weight = 0.5}); }},
      {"softmax_ce", [] { return std::make_shared<SoftmaxCrossEntropyLoss>(); }},
      {"softmax_ce_dense_label",
       [] { return std::make_shared<SoftmaxCrossEntropyLoss>(SoftmaxCrossEntropyOptions{.sparse_label = false}); }},
      {"softmax_ce_from_logits",
       [] { return std::make_shared<SoftmaxCrossEntropyLoss>(SoftmaxCrossEntropyOptions{.from_logits = true}); }},
      {"softmax_ce_axis_1",
       [] { return std::make_shared<SoftmaxCrossEntropyLoss>(SoftmaxCrossEntropyOptions{.axis = 1}); }},
      {"softmax_ce_weight",
       [] { return std::make_shared<SoftmaxCrossEntropyLoss>(SoftmaxCrossEntropyOptions{.weight = 0.7}); }},
      {"sigmoid_bce", [] { return std::make_shared<SigmoidBinaryCrossEntropyLoss>(); }},
      {"sigmoid_bce_large_logits", [] { return std::make_shared<SigmoidBinaryCrossEntropyLoss>(); }},
      {"sigmoid_bce_from_sigmoid",
       [] {
         return std::make_shared<SigmoidBinaryCrossEntropyLoss>(SigmoidBinaryCrossEntropyOptions{.from_sigmoid = true});
       }},
      {"huber", [] { return std::make_shared<HuberLoss>(); }},
      {"huber_rho", [] { return std::make_shared<HuberLoss>(HuberOptions{.rho = 0.5, .weight = 3.0}); }},
      {"kldiv", [] { return std::make_shared<KLDivLoss>(); }},
      {"kldiv_not_from_logits", [] { return std::make_shared<KLDivLoss>(KLDivOptions{.from_logits = false}); }},
  };
  return losses.at(name)();
}

Tensor Ones(const Shape& shape) {
  Tensor t(shape, DType::kFloat32);
  for (int64_t i = 0; i < t.size(); ++i) t.SetDouble(i, 1);
  return t;
}

}  // namespace

TEST_CASE("Gluon names parameters as MXNet 1.9.1 does, and infers deferred shapes", "[gluon][mxnet]") {
  const auto index = nlohmann::json::parse(std::ifstream("tests/data/mxnet/gluon_names.json"));
  REQUIRE(index["nets"].size() == NameNets().size());
  for (const auto& net : index["nets"]) {
    const std::string name = net["name"];
    INFO(name);
    NameManager::Reset();
    const Blocks blocks = NameNets().at(name)();
    REQUIRE(blocks.size() == net["blocks"].size());
    for (size_t i = 0; i < blocks.size(); ++i) CHECK(Describe(*blocks[i]).dump() == net["blocks"][i].dump());
    if (!net.contains("input_shape")) continue;
    Block& top = *blocks[0];
    top.Initialize();
    const auto out = top(Ones(net["input_shape"].get<Shape>()));
    CHECK(NamesAndShapes(top.CollectParams()).dump() == net["inferred"].dump());
  }
}

TEST_CASE("Gluon layers compute what MXNet's do, from parameters MXNet saved", "[gluon][mxnet]") {
  const auto index = kiln::testing::LoadGluonIndex("layers.json");
  const auto arrays = kiln::testing::LoadGluonArrays("layers.npz");
  REQUIRE(index["cases"].size() >= 18);
  for (const auto& c : index["cases"]) {
    const std::string name = c["name"];
    INFO(name << ": " << c["gluon"].get<std::string>());
    const auto block = MakeLayer(name);
    // MXNet's save_parameters file: "weight" for a single layer (loaded under the block's
    // prefix), "0.weight" for a HybridSequential.
    block->LoadParameters(std::string(kiln::testing::kGluonData) + name + ".params");
    const auto out = (*block)(arrays.at(name + "/x"));
    REQUIRE(out.size() == 1);
    KILN_CHECK_CLOSE(out[0], arrays.at(name + "/y"), 1e-5, 1e-5);
  }
}

TEST_CASE("Gluon losses compute what MXNet's do", "[gluon][mxnet]") {
  const auto index = kiln::testing::LoadGluonIndex("losses.json");
  const auto arrays = kiln::testing::LoadGluonArrays("losses.npz");
  REQUIRE(index["cases"].size() >= 18);
  for (const auto& c : index["cases"]) {
    const std::string name = c["name"];
    INFO(name << ": " << c["gluon"].get<std::string>());
    auto loss = MakeLoss(name);
    const Tensor& pred = arrays.at(name + "/pred");
    const Tensor& label = arrays.at(name + "/label");
    const Tensor out = c["sample_weight"].get<bool>() ? (*loss)(pred, label, arrays.at(name + "/sample_weight"))
                                                      : (*loss)(pred, label);
    KILN_CHECK_CLOSE(out, arrays.at(name + "/loss"), 1e-5, 1e-5);
  }
}

TEST_CASE("Gluon parameter files: MXNet's read and written byte for byte, kiln's round trip", "[gluon][mxnet]") {
  const std::string mxnet_file = std::string(kiln::testing::kGluonData) + "mlp.params";
  auto net = kiln::testing::Mlp();
  net->LoadParameters(mxnet_file);
  const std::string copy = kiln::testing::TempPath("mlp_copy.params");
  net->SaveParameters(copy);
  CHECK(ReadFile(copy) == ReadFile(mxnet_file));

  // kiln's format, by extension; a net with other names (counters moved on) loads it by
  // the structured names.
  const std::string own = kiln::testing::TempPath("mlp.kiln-params");
  net->SaveParameters(own);
  CHECK(DetectParamFormat(ReadFile(own)) == ParamFormat::kKiln);
  auto other = kiln::testing::Mlp();
  CHECK(other->prefix() != net->prefix());
  other->LoadParameters(own);
  const Tensor x = kiln::testing::RandomTensor({5, 6}, 3);
  KILN_CHECK_CLOSE((*other)(x)[0], (*net)(x)[0], 0, 0);

  // ParameterDict's save and load, with the prefix stripped and restored.
  const std::string dict_file = kiln::testing::TempPath("dict.params");
  net->CollectParams().Save(dict_file, net->prefix());
  const auto names = ParamNames(LoadNamedParams(dict_file));
  CHECK(names.front() == "dense0_weight");
  auto third = kiln::testing::Mlp();
  third->CollectParams().Load(dict_file, false, false, third->prefix());
  KILN_CHECK_CLOSE((*third)(x)[0], (*net)(x)[0], 0, 0);
  // ...which LoadParameters reads as a file without structured names.
  auto fourth = kiln::testing::Mlp();
  fourth->LoadParameters(dict_file);
  KILN_CHECK_CLOSE((*fourth)(x)[0], (*net)(x)[0], 0, 0);
}

TEST_CASE("Gluon parameters: initialization, settings, sharing", "[gluon]") {
  NameManager::Reset();
  auto net = kiln::testing::Mlp();
  ParameterDict params = net->CollectParams();
  CHECK(params.size() == 8);
  params.Initialize("xavier(magnitude=2)", 5);
  // Deferred until the first call.
  Parameter& w0 = params.At(net->prefix() + "dense0_weight");
  CHECK(w0.deferred());
  CHECK_THAT(ErrorOf([&] { w0.Data(); }), Catch::Contains("initialization was deferred"));
  const auto out = (*net)(kiln::testing::RandomTensor({4, 6}, 1));
  CHECK(out[0].shape() == Shape{4, 3});
  CHECK(w0.shape() == Shape{8, 6});
  // Own initializers win: bias zeros, gamma and running_var ones.
  const auto& bn = dynamic_cast<nn::BatchNorm&>((*net)[1]);
  CHECK(bn.gamma()->Data().ToDoubles() == std::vector<double>(8, 1.0));
  CHECK(bn.running_mean()->Data().ToDoubles() == std::vector<double>(8, 0.0));
  CHECK(bn.running_mean()->grad_req() == GradReq::kNull);
  // The same seed and names give the same values, whatever the order of initialization.
  NameManager::Reset();
  auto again = kiln::testing::Mlp();
  again->CollectParams().Initialize("xavier(magnitude=2)", 5);
  (*again)(kiln::testing::RandomTensor({2, 6}, 1));
  REQUIRE(again->prefix() == net->prefix());
  CHECK(dynamic_cast<nn::Dense&>((*again)[0]).weight()->Data().BitwiseEquals(w0.Data()));
  // Already initialized: nothing changes without force_reinit.
  const Tensor before = w0.Data().Clone();
  params.Initialize("normal(sigma=1)", 9);
  CHECK(w0.Data().BitwiseEquals(before));
  params.Initialize("normal(sigma=1)", 9, /*force_reinit=*/true);
  CHECK(!w0.Data().BitwiseEquals(before));

  // setattr, with grad_req null where a parameter is not differentiable.
  params.SetAttr("grad_req", "null");
  CHECK(w0.grad_req() == GradReq::kNull);
  params.SetAttr("grad_req", "write");
  CHECK(w0.grad_req() == GradReq::kWrite);
  CHECK(bn.running_var()->grad_req() == GradReq::kNull);
  net->CollectParams(".*bias").SetAttr("lr_mult", 2);
  CHECK(dynamic_cast<nn::Dense&>((*net)[0]).bias()->lr_mult() == 2);
  CHECK(w0.lr_mult() == 1);
  CHECK(net->CollectParams(".*dense").size() == 4);

  // Shared parameters: one Parameter, saved once with deduplicate.
  auto first = std::make_shared<nn::Dense>(4, nn::DenseOptions{.in_units = 3});
  auto second = std::make_shared<nn::Dense>(4, nn::DenseOptions{.in_units = 3, .params = first->CollectParams()});
  CHECK(first->weight() == second->weight());
  auto pair = std::make_shared<nn::HybridSequential>();
  pair->Add(first);
  pair->Add(second);
  pair->Initialize();
  const std::string file = kiln::testing::TempPath("shared.params");
  pair->SaveParameters(file, /*deduplicate=*/true);
  CHECK(ParamNames(LoadNamedParams(file)) == std::vector<std::string>{"0.weight", "0.bias"});
  pair->LoadParameters(file);  // a shared parameter needs one of its names

  CHECK_NOTHROW(params.ResetCtx(Context::cpu()));
}

TEST_CASE("Gluon errors name the parameter, the expected and the given", "[gluon]") {
  auto net = kiln::testing::Mlp();
  const Tensor x = kiln::testing::RandomTensor({4, 6}, 1);
  CHECK_THAT(ErrorOf([&] { (*net)(x); }),
             Catch::Contains("Parameter '" + net->prefix() + "dense0_weight' has not been initialized"));
  CHECK_THAT(ErrorOf([&] { Trainer(net->CollectParams(), "sgd"); }),
             Catch::Contains("Parameter '" + net->prefix() + "dense0_weight' has not been initialized"));
  CHECK_THAT(ErrorOf([&] { net->CollectParams().ResetCtx(Context::gpu(0)); }),
             Catch::Contains("has not been initialized"));
  {
    auto initialized = kiln::testing::Mlp();
    initialized->CollectParams().Initialize("xavier");
    // No machine here has eight GPUs.
    CHECK_THAT(ErrorOf([&] { initialized->CollectParams().ResetCtx(Context::gpu(7)); }),
               Catch::StartsWith("no CUDA device: ") && Catch::Contains("gpu(7)"));
  }
  CHECK_THAT(ErrorOf([&] { net->CollectParams().SetAttr("momentum", 0.5); }),
             Catch::Contains("unknown attribute 'momentum'"));
  CHECK_THAT(ErrorOf([&] {
               Trainer(ParameterDict(), "sgd", {{"learning_rate", "fast"}});
             }),
             Catch::Contains("learning_rate"));

  const std::string mxnet_file = std::string(kiln::testing::kGluonData) + "mlp.params";
  net->Initialize();
  (*net)(x);
  ParamList file = LoadNamedParams(mxnet_file);

  // A name the net does not have.
  ParamList extra = file;
  extra.tensors.emplace_back("4.weight", Tensor({2, 2}, DType::kFloat32));
  const std::string extra_path = kiln::testing::TempPath("extra.params");
  SaveNamedParams(extra_path, extra);
  CHECK_THAT(ErrorOf([&] { net->LoadParameters(extra_path); }),
             Catch::Contains("Parameter '4.weight' loaded from file '" + extra_path + "' is not present"));
  CHECK_NOTHROW(net->LoadParameters(extra_path, false, /*ignore_extra=*/true));

  // A parameter the file lacks.
  ParamList missing = file;
  missing.tensors.erase(missing.tensors.begin() + 1);  // 0.bias
  const std::string missing_path = kiln::testing::TempPath("missing.params");
  SaveNamedParams(missing_path, missing);
  CHECK_THAT(ErrorOf([&] { net->LoadParameters(missing_path); }),
             Catch::Contains("Parameter '0.bias' is missing in file '" + missing_path + "'") &&
                 Catch::Contains("'0.weight', '1.gamma'"));
  CHECK_NOTHROW(net->LoadParameters(missing_path, /*allow_missing=*/true));

  // Another shape.
  auto narrow = std::make_shared<nn::Dense>(8, nn::DenseOptions{.in_units = 5});
  auto wrapper = std::make_shared<nn::HybridSequential>();
  wrapper->Add(narrow);
  CHECK_THAT(ErrorOf([&] { wrapper->LoadParameters(mxnet_file, false, true); }),
             Catch::Contains("Failed loading Parameter '" + narrow->prefix() + "weight'") &&
                 Catch::Contains("shape incompatible expected (8,5) vs saved (8,6)"));
  // ParameterDict's own load names the dict's choices.
  CHECK_THAT(ErrorOf([&] { net->CollectParams().Load(mxnet_file); }),
             Catch::Contains("Parameter '" + net->prefix() + "dense0_weight' is missing"));
  // Another dtype.
  CHECK_THAT(ErrorOf([&] {
               narrow->weight()->LoadInit(Tensor({8, 5}, DType::kFloat64), "f");
             }),
             Catch::Contains("dtype incompatible expected float32 vs saved float64"));
  // A shape that contradicts a known one.
  CHECK_THAT(ErrorOf([&] {
               narrow->weight()->SetData(Tensor({8, 4}, DType::kFloat32));
             }),
             Catch::Contains("(8,5)") && Catch::Contains("(8,4)"));
  // Parameters must be initialized before a Trainer takes them, and before they are read.
  CHECK_THAT(ErrorOf([&] { narrow->weight()->Data(); }), Catch::Contains("has not been initialized"));
}
