// Randomized graphs (seeded) built from the registry's operators: chains of unary and
// binary elementwise operators (any registered ones, or smooth ones only), broadcasts
// against per-channel constants, convolutions, dense layers, BatchNorm, pooling, views,
// reductions with fused producers. The passes' tests (-O0 against -O2) and the CUDA
// emulation test (emitted CUDA C against the interpreter) run them.
#pragma once

#include <cstdint>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "graph/graph.h"
#include "runtime/tensor.h"
#include "symbol/symbol.h"
#include "tests/op_test_util.h"

namespace kiln::testing {

// The input's shape and a per-channel constant's.
extern const Shape kShape;
extern const Shape kChannels;

// Elementwise and broadcast operators with a scalar function that take one or two
// float32 inputs of kShape with default attributes: the registry's, not a list.
struct ScalarOps {
  std::vector<std::string> unary, binary;
};

const ScalarOps& RegistryScalarOps();

struct Generated {
  Graph graph;
  std::map<std::string, Tensor> inputs;
  std::string description;
};

class GraphGenerator {
 public:
  GraphGenerator(uint64_t seed, bool smooth) : rng_(seed), seed_(seed), smooth_(smooth) {}

  Generated Make() {
    std::vector<Symbol> entries = {Symbol::Variable("data")};
    const int count = Uniform(3, 9);
    for (int i = 0; i < count; ++i) entries.push_back(Next(entries, "n" + std::to_string(i)));
    std::vector<Symbol> outputs = {entries.back()};
    if (Uniform(0, 2) == 0) outputs.push_back(entries[static_cast<size_t>(Uniform(1, count))]);
    Generated g;
    g.graph = (outputs.size() == 1 ? outputs[0] : Symbol::Group(outputs)).ToGraph();
    for (const auto& [name, shape] : params_) {
      const bool variance = name.find("_var") != std::string::npos;
      g.graph.params[name] =
          RandomTensor(shape, seed_ * 131 + g.graph.params.size(), variance ? 0.5 : -0.5, variance ? 1.5 : 0.5);
    }
    g.inputs["data"] = RandomTensor(kShape, seed_, -1.5, 1.5);
    g.description = description_;
    return g;
  }

 private:
  int Uniform(int low, int high) { return std::uniform_int_distribution<int>(low, high - 1)(rng_); }
  const Symbol& Pick(const std::vector<Symbol>& entries) {
    return entries[static_cast<size_t>(Uniform(0, static_cast<int>(entries.size())))];
  }

  Symbol Param(const std::string& name, const Shape& shape) {
    params_[name] = shape;
    return Symbol::Variable(name);
  }

  Symbol Next(const std::vector<Symbol>& entries, const std::string& name) {
    const ScalarOps& ops = RegistryScalarOps();
    static const std::vector<std::string> kSmoothUnary = {"relu", "sigmoid", "tanh", "negative", "square", "abs"};
    static const std::vector<std::string> kSmoothBinary = {"broadcast_add", "broadcast_sub", "broadcast_mul",
                                                           "elemwise_add", "broadcast_maximum"};
    const auto& unary = smooth_ ? kSmoothUnary : ops.unary;
    const auto& binary = smooth_ ? kSmoothBinary : ops.binary;
    const Symbol& x = Pick(entries);
    const int kind = Uniform(0, 15);
    std::string op;
    Symbol made;
    switch (kind) {
      case 0:
      case 1:
      case 2:
      case 3:
        op = unary[static_cast<size_t>(Uniform(0, static_cast<int>(unary.size())))];
        made = Symbol::Create(op, {x}, {}, name);
        break;
      case 4:
      case 5:
      case 6: {
        op = binary[static_cast<size_t>(Uniform(0, static_cast<int>(binary.size())))];
        // The second operand: another entry, or a per-channel constant where it broadcasts.
        const bool broadcasts = op.rfind("broadcast_", 0) == 0;
        const Symbol y = broadcasts && Uniform(0, 2) == 0 ? Param(name + "_c", kChannels) : Pick(entries);
        made = Symbol::Create(op, {x, y}, {}, name);
        break;
      }
      case 7:
        op = "Convolution";
        made = Symbol::Create(op, {x, Param(name + "_weight", {3, 3, 3, 3}), Param(name + "_bias", {3})},
                              {{"kernel", {3, 3}}, {"pad", {1, 1}}, {"num_filter", 3}}, name);
        break;
      case 8:
        op = "FullyConnected";
        made = Symbol::Create(op, {x, Param(name + "_weight", {4, 4}), Param(name + "_bias", {4})},
                              {{"num_hidden", 4}, {"flatten", false}}, name);
        break;
      case 9:
        op = "BatchNorm";
        made = Symbol::Create(op,
                              {x, Param(name + "_gamma", {3}), Param(name + "_beta", {3}), Param(name + "_mean", {3}),
                               Param(name + "_var", {3})},
                              {{"fix_gamma", Uniform(0, 2) == 0}}, name);
        break;
      case 10:
        op = "Pooling";
        made = Symbol::Create(
            op, {x}, {{"kernel", {3, 3}}, {"pad", {1, 1}}, {"pool_type", Uniform(0, 2) ? "max" : "avg"}}, name);
        break;
      case 11:
        op = "transpose";
        made = Symbol::Create(op, {x}, {{"axes", {0, 1, 3, 2}}}, name);
        break;
      case 12:
        op = "Reshape";
        made = Symbol::Create(op, {Symbol::Create("Reshape", {x}, {{"shape", {2, 3, 16}}}, name + "_flat")},
                              {{"shape", {2, 3, 4, 4}}}, name);
        break;
      case 13: {
        // x - mean(f(x)) over the last axis: a reduction with a fused producer.
        op = "mean";
        const Symbol y = Pick(entries);
        const Symbol f =
            Symbol::Create(smooth_ ? "square" : unary[static_cast<size_t>(Uniform(0, static_cast<int>(unary.size())))],
                           {y}, {}, name + "_f");
        made = Symbol::Create("broadcast_sub",
                              {x, Symbol::Create("mean", {f}, {{"axis", {3}}, {"keepdims", true}}, name + "_mean")}, {},
                              name);
        break;
      }
      default:
        op = Uniform(0, 2) ? "Dropout" : "identity";
        made = Symbol::Create(op, {x}, {}, name);
        break;
    }
    description_ += (description_.empty() ? "" : " ") + op;
    return made;
  }

  std::mt19937_64 rng_;
  uint64_t seed_;
  bool smooth_;
  std::map<std::string, Shape> params_;
  std::string description_;
};

}  // namespace kiln::testing
