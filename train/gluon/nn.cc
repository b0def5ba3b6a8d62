#include "train/gluon/nn.h"

#include "runtime/error.h"

namespace kiln::gluon::nn {
namespace {

// Gluon takes an int where a tuple of two is meant.
Shape Pair(const Shape& size, const std::string& what) {
  if (size.size() == 1) return {size[0], size[0]};
  if (size.size() != 2) throw Error(what + " must be a number or a list of 2 ints, given " + ShapeToString(size));
  return size;
}

// A layer's activation child, made inside the layer's scope with Gluon's prefix
// ("dense0_relu_") and registered as its `act` attribute; null without one.
std::shared_ptr<Activation> MakeActivation(Block& layer, const std::string& activation) {
  if (activation.empty()) return nullptr;
  return layer.RegisterChild(std::make_shared<Activation>(activation, BlockOptions{.prefix = activation + "_"}), "act");
}

// The operator of a layer with a weight and an optional bias, then its activation.
Symbol ApplyLayer(OpBuilder& F, const std::string& op, const Symbol& x, Parameter& weight,
                  const std::shared_ptr<Parameter>& bias, const AttrMap& attrs,
                  const std::shared_ptr<Activation>& act) {
  std::vector<Symbol> inputs = {x, weight.Var()};
  if (bias) inputs.push_back(bias->Var());
  const Symbol y = F(op, inputs, attrs, "fwd");
  return act ? act->Forward(y) : y;
}

}  // namespace

Activation::Activation(std::string activation, const BlockOptions& options)
    : HybridBlock(activation, options), activation_(std::move(activation)) {}

Symbol Activation::HybridForward(OpBuilder& F, const Symbol& x) {
  return F("Activation", {x}, {{"act_type", activation_}}, "fwd");
}

Dense::Dense(int64_t units, const DenseOptions& options)
    : HybridBlock("dense", BlockOptionsOf(options)), units_(units), flatten_(options.flatten) {
  auto scope = NameScope();
  weight_ = RegisterParameter("weight", {.shape = {units, options.in_units},
                                         .dtype = options.dtype,
                                         .init = options.weight_initializer,
                                         .allow_deferred_init = true});
  if (options.use_bias) {
    bias_ = RegisterParameter(
        "bias",
        {.shape = {units}, .dtype = options.dtype, .init = options.bias_initializer, .allow_deferred_init = true});
  }
  act_ = MakeActivation(*this, options.activation);
}

Symbol Dense::HybridForward(OpBuilder& F, const Symbol& x) {
  return ApplyLayer(F, "FullyConnected", x, *weight_, bias_,
                    {{"no_bias", bias_ == nullptr}, {"num_hidden", units_}, {"flatten", flatten_}}, act_);
}

Conv2D::Conv2D(int64_t channels, const Shape& kernel_size, const Conv2DOptions& options)
    : HybridBlock("conv", BlockOptionsOf(options)) {
  if (options.layout != "NCHW")
    throw Error("Conv2D: layout '" + options.layout + "' is not supported; kiln takes NCHW");
  auto scope = NameScope();
  const Shape kernel = Pair(kernel_size, "kernel_size");
  attrs_ = {{"kernel", kernel},
            {"stride", Pair(options.strides, "strides")},
            {"dilate", Pair(options.dilation, "dilation")},
            {"pad", Pair(options.padding, "padding")},
            {"num_filter", channels},
            {"num_group", options.groups},
            {"no_bias", !options.use_bias},
            {"layout", options.layout}};
  // Gluon's _infer_weight_shape: (channels, in_channels / groups, kh, kw).
  weight_ =
      RegisterParameter("weight", {.shape = {channels, options.in_channels / options.groups, kernel[0], kernel[1]},
                                   .init = options.weight_initializer,
                                   .allow_deferred_init = true});
  if (options.use_bias) {
    bias_ =
        RegisterParameter("bias", {.shape = {channels}, .init = options.bias_initializer, .allow_deferred_init = true});
  }
  act_ = MakeActivation(*this, options.activation);
}

Symbol Conv2D::HybridForward(OpBuilder& F, const Symbol& x) {
  return ApplyLayer(F, "Convolution", x, *weight_, bias_, attrs_, act_);
}

Pooling2D::Pooling2D(const std::string& pool_type, bool global_pool, const Pool2DOptions& options,
                     bool with_count_include_pad)
    : HybridBlock("pool", BlockOptionsOf(options)) {
  if (options.layout != "NCHW") {
    throw Error("pooling: layout '" + options.layout + "' is not supported; kiln takes NCHW");
  }
  const Shape pool_size = Pair(options.pool_size, "pool_size");
  attrs_ = {{"kernel", pool_size},
            {"stride", options.strides.empty() ? pool_size : Pair(options.strides, "strides")},
            {"pad", Pair(options.padding, "padding")},
            {"global_pool", global_pool},
            {"pool_type", pool_type},
            {"layout", options.layout},
            {"pooling_convention", options.ceil_mode ? "full" : "valid"}};
  if (with_count_include_pad) attrs_.emplace_back("count_include_pad", options.count_include_pad);
}

Symbol Pooling2D::HybridForward(OpBuilder& F, const Symbol& x) {
  return F("Pooling", {x}, attrs_, "fwd");
}

// Gluon: _Pooling((1, 1), None, 0, ceil_mode=True, global_pool=True, 'avg', layout).
GlobalAvgPool2D::GlobalAvgPool2D(const BlockOptions& options)
    : Pooling2D("avg", true,
                {.pool_size = {1, 1}, .ceil_mode = true, .prefix = options.prefix, .params = options.params}, false) {}

BatchNorm::BatchNorm(const BatchNormOptions& options) : HybridBlock("batchnorm", BlockOptionsOf(options)) {
  attrs_ = {{"axis", options.axis},
            {"eps", options.epsilon},
            {"momentum", options.momentum},
            {"fix_gamma", !options.scale},
            {"use_global_stats", options.use_global_stats}};
  const Shape shape = {options.in_channels};
  const auto param = [&](const char* name, bool learned, const std::string& init) {
    return RegisterParameter(name, {.grad_req = learned ? GradReq::kWrite : GradReq::kNull,
                                    .shape = shape,
                                    .init = init,
                                    .allow_deferred_init = true,
                                    .differentiable = learned});
  };
  gamma_ = param("gamma", options.scale, options.gamma_initializer);
  beta_ = param("beta", options.center, options.beta_initializer);
  running_mean_ = param("running_mean", false, options.running_mean_initializer);
  running_var_ = param("running_var", false, options.running_variance_initializer);
}

Symbol BatchNorm::HybridForward(OpBuilder& F, const Symbol& x) {
  return F("BatchNorm", {x, gamma_->Var(), beta_->Var(), running_mean_->Var(), running_var_->Var()}, attrs_, "fwd");
}

Dropout::Dropout(double rate, const DropoutOptions& options)
    : HybridBlock("dropout", BlockOptionsOf(options)), rate_(rate), axes_(options.axes) {}

Symbol Dropout::HybridForward(OpBuilder& F, const Symbol& x) {
  if (rate_ <= 0) return F("identity", {x});
  return F("Dropout", {x}, {{"p", rate_}, {"axes", axes_}, {"cudnn_off", false}}, "fwd");
}

LeakyReLU::LeakyReLU(double alpha, const BlockOptions& options) : HybridBlock("leakyrelu", options), alpha_(alpha) {
  if (alpha < 0) throw Error("Slope coefficient for LeakyReLU must be no less than 0, given " + std::to_string(alpha));
}

Symbol LeakyReLU::HybridForward(OpBuilder& F, const Symbol& x) {
  return F("LeakyReLU", {x}, {{"act_type", "leaky"}, {"slope", alpha_}}, "fwd");
}

Symbol Flatten::HybridForward(OpBuilder& F, const Symbol& x) {
  return F("Flatten", {x});
}

Embedding::Embedding(int64_t input_dim, int64_t output_dim, const EmbeddingOptions& options)
    : HybridBlock("embedding", BlockOptionsOf(options)) {
  attrs_ = {{"input_dim", input_dim},
            {"output_dim", output_dim},
            {"dtype", options.dtype},
            {"sparse_grad", options.sparse_grad}};
  weight_ = RegisterParameter("weight", {.shape = {input_dim, output_dim},
                                         .dtype = options.dtype,
                                         .init = options.weight_initializer,
                                         .allow_deferred_init = true});
}

Symbol Embedding::HybridForward(OpBuilder& F, const Symbol& x) {
  return F("Embedding", {x, weight_->Var()}, attrs_, "fwd");
}

}  // namespace kiln::gluon::nn
