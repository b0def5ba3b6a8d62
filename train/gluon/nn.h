// Gluon's layers (MXNet 1.9.1's mx.gluon.nn) with its defaults, parameter names and the
// operator attributes it passes, e.g. BatchNorm's fix_gamma = !scale and its running
// statistics as auxiliary states with grad_req null. Options are structs for designated
// initializers:
//
//   auto net = std::make_shared<nn::HybridSequential>();
//   {
//     auto scope = net->NameScope();
//     net->Add(nn::Conv2D(32, {3}, {.padding = {1}, .activation = "relu"}));
//     net->Add(nn::MaxPool2D());
//     net->Add(nn::Dense(10));
//   }
//   net->Initialize("xavier(magnitude=2)");
//   std::vector<Tensor> out = (*net)(images);  // shapes inferred, compiled, run
//
// Layouts are NCHW (kiln's convolution and pooling take no other).
#pragma once

#include <concepts>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "train/gluon/block.h"

namespace kiln::gluon::nn {

// Gluon's Sequential and HybridSequential: children applied in order.
template <typename Base>
class BasicSequential : public Base {
 public:
  template <std::derived_from<Block> B>
  std::shared_ptr<B> Add(std::shared_ptr<B> block) {
    return this->RegisterChild(std::move(block));
  }
  template <std::derived_from<Block> B>
  std::shared_ptr<B> Add(B&& block) {
    return Add(std::make_shared<B>(std::move(block)));
  }
  size_t size() const { return this->children().size(); }
  Block& operator[](size_t index) const { return *this->children().at(index).second; }

 protected:
  using Base::Base;
  Symbol HybridForward(OpBuilder&, const Symbol& x) override {
    Symbol y = x;
    for (const auto& [unused, child] : this->children()) y = child->Forward(y);
    return y;
  }
};

class Sequential : public BasicSequential<Block> {
 public:
  explicit Sequential(const BlockOptions& options = {}) : BasicSequential("sequential", options) {}
};

class HybridSequential : public BasicSequential<HybridBlock> {
 public:
  explicit HybridSequential(const BlockOptions& options = {}) : BasicSequential("hybridsequential", options) {}
};

class Activation : public HybridBlock {
 public:
  // relu, sigmoid, tanh, softrelu, softsign. The alias, and so the prefix, is the
  // activation's name ("relu0_").
  explicit Activation(std::string activation, const BlockOptions& options = {});
  const std::string& activation() const { return activation_; }

 protected:
  Symbol HybridForward(OpBuilder& F, const Symbol& x) override;

 private:
  std::string activation_;
};

struct DenseOptions {
  std::string activation{};  // "": none
  bool use_bias = true;
  bool flatten = true;
  DType dtype = DType::kFloat32;
  std::string weight_initializer{};  // "": the one Initialize is given
  std::string bias_initializer = "zeros";
  int64_t in_units = 0;  // 0: inferred at the first forward pass
  std::optional<std::string> prefix{};
  std::optional<ParameterDict> params{};
};

class Dense : public HybridBlock {
 public:
  explicit Dense(int64_t units, const DenseOptions& options = {});
  const std::shared_ptr<Parameter>& weight() const { return weight_; }
  const std::shared_ptr<Parameter>& bias() const { return bias_; }  // null without

 protected:
  Symbol HybridForward(OpBuilder& F, const Symbol& x) override;

 private:
  int64_t units_;
  bool flatten_;
  std::shared_ptr<Parameter> weight_, bias_;
  std::shared_ptr<Activation> act_;
};

// Sizes of one element are repeated to both spatial dimensions, as Gluon does for ints.
struct Conv2DOptions {
  Shape strides = {1, 1};
  Shape padding = {0, 0};
  Shape dilation = {1, 1};
  int64_t groups = 1;
  std::string layout = "NCHW";
  std::string activation{};
  bool use_bias = true;
  std::string weight_initializer{};
  std::string bias_initializer = "zeros";
  int64_t in_channels = 0;  // 0: inferred at the first forward pass
  std::optional<std::string> prefix{};
  std::optional<ParameterDict> params{};
};

class Conv2D : public HybridBlock {
 public:
  Conv2D(int64_t channels, const Shape& kernel_size, const Conv2DOptions& options = {});
  const std::shared_ptr<Parameter>& weight() const { return weight_; }
  const std::shared_ptr<Parameter>& bias() const { return bias_; }

 protected:
  Symbol HybridForward(OpBuilder& F, const Symbol& x) override;

 private:
  AttrMap attrs_;
  std::shared_ptr<Parameter> weight_, bias_;
  std::shared_ptr<Activation> act_;
};

struct Pool2DOptions {
  Shape pool_size = {2, 2};
  Shape strides{};  // empty: pool_size
  Shape padding = {0, 0};
  bool ceil_mode = false;
  std::string layout = "NCHW";
  bool count_include_pad = true;  // AvgPool2D only
  std::optional<std::string> prefix{};
  std::optional<ParameterDict> params{};
};

// Gluon's _Pooling (alias "pool").
class Pooling2D : public HybridBlock {
 protected:
  Pooling2D(const std::string& pool_type, bool global_pool, const Pool2DOptions& options, bool with_count_include_pad);
  Symbol HybridForward(OpBuilder& F, const Symbol& x) override;

 private:
  AttrMap attrs_;
};

class MaxPool2D : public Pooling2D {
 public:
  explicit MaxPool2D(const Pool2DOptions& options = {}) : Pooling2D("max", false, options, false) {}
};

class AvgPool2D : public Pooling2D {
 public:
  explicit AvgPool2D(const Pool2DOptions& options = {}) : Pooling2D("avg", false, options, true) {}
};

class GlobalAvgPool2D : public Pooling2D {
 public:
  explicit GlobalAvgPool2D(const BlockOptions& options = {});
};

struct BatchNormOptions {
  int64_t axis = 1;
  double momentum = 0.9;
  double epsilon = 1e-5;
  bool center = true;  // false: beta is not learned
  bool scale = true;   // false: gamma is fixed at one (fix_gamma)
  bool use_global_stats = false;
  std::string beta_initializer = "zeros";
  std::string gamma_initializer = "ones";
  std::string running_mean_initializer = "zeros";
  std::string running_variance_initializer = "ones";
  int64_t in_channels = 0;  // 0: inferred at the first forward pass
  std::optional<std::string> prefix{};
  std::optional<ParameterDict> params{};
};

class BatchNorm : public HybridBlock {
 public:
  explicit BatchNorm(const BatchNormOptions& options = {});
  const std::shared_ptr<Parameter>& gamma() const { return gamma_; }
  const std::shared_ptr<Parameter>& beta() const { return beta_; }
  const std::shared_ptr<Parameter>& running_mean() const { return running_mean_; }
  const std::shared_ptr<Parameter>& running_var() const { return running_var_; }

 protected:
  Symbol HybridForward(OpBuilder& F, const Symbol& x) override;

 private:
  AttrMap attrs_;
  std::shared_ptr<Parameter> gamma_, beta_, running_mean_, running_var_;
};

struct DropoutOptions {
  Shape axes{};  // axes along which the mask is shared
  std::optional<std::string> prefix{};
  std::optional<ParameterDict> params{};
};

class Dropout : public HybridBlock {
 public:
  explicit Dropout(double rate, const DropoutOptions& options = {});

 protected:
  Symbol HybridForward(OpBuilder& F, const Symbol& x) override;

 private:
  double rate_;
  Shape axes_;
};

class LeakyReLU : public HybridBlock {
 public:
  explicit LeakyReLU(double alpha, const BlockOptions& options = {});

 protected:
  Symbol HybridForward(OpBuilder& F, const Symbol& x) override;

 private:
  double alpha_;
};

class Flatten : public HybridBlock {
 public:
  explicit Flatten(const BlockOptions& options = {}) : HybridBlock("flatten", options) {}

 protected:
  Symbol HybridForward(OpBuilder& F, const Symbol& x) override;
};

struct EmbeddingOptions {
  DType dtype = DType::kFloat32;
  std::string weight_initializer{};
  bool sparse_grad = false;  // MXNet's row-sparse gradient; kiln's is dense
  std::optional<std::string> prefix{};
  std::optional<ParameterDict> params{};
};

class Embedding : public HybridBlock {
 public:
  Embedding(int64_t input_dim, int64_t output_dim, const EmbeddingOptions& options = {});
  const std::shared_ptr<Parameter>& weight() const { return weight_; }

 protected:
  Symbol HybridForward(OpBuilder& F, const Symbol& x) override;

 private:
  AttrMap attrs_;
  std::shared_ptr<Parameter> weight_;
};

}  // namespace kiln::gluon::nn
