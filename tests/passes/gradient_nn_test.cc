// Gradients of the neural-network layers (ops/nn.cc) against float64 finite
// differences: Convolution, Pooling, BatchNorm (training and inference) and Dropout.
#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "graph/op.h"
#include "passes/gradient.h"
#include "passes/interpreter.h"
#include "runtime/error.h"
#include "tests/gradient_check.h"

using namespace kiln;
using namespace kiln::testing;

namespace {

std::vector<int64_t> V(int64_t a, int64_t b) {
  return {a, b};
}

}  // namespace

TEST_CASE("Convolution gradients: strides, pads, dilation, groups, no_bias", "[gradient][nn]") {
  struct Conv {
    Shape data;
    int64_t filters, groups;
    std::vector<int64_t> kernel, stride, dilate, pad;
    bool no_bias;
  };
  const std::vector<Conv> convs = {
      {{2, 3, 5, 5}, 4, 1, V(3, 3), {}, {}, {}, false},
      {{1, 2, 7, 6}, 3, 1, V(3, 2), V(2, 2), {}, V(1, 0), false},
      {{2, 4, 6, 7}, 4, 2, V(2, 3), V(1, 2), V(2, 1), V(1, 2), true},
      {{1, 3, 5, 5}, 3, 3, V(3, 3), V(2, 1), {}, V(1, 1), false},  // depthwise
      {{1, 2, 8, 5}, 2, 1, V(1, 1), V(3, 2), {}, V(0, 1), true},   // 1x1, strides leave rows unread
      {{1, 2, 4, 4}, 6, 2, V(2, 2), V(1, 1), V(2, 2), V(2, 0), false},
  };
  uint64_t seed = 10;
  for (const Conv& c : convs) {
    AttrMap attrs = {{"kernel", c.kernel}, {"num_filter", c.filters}, {"num_group", c.groups}, {"no_bias", c.no_bias}};
    if (!c.stride.empty()) attrs.push_back({"stride", c.stride});
    if (!c.dilate.empty()) attrs.push_back({"dilate", c.dilate});
    if (!c.pad.empty()) attrs.push_back({"pad", c.pad});
    std::vector<Tensor> inputs = {Random64(c.data, ++seed),
                                  Random64({c.filters, c.data[1] / c.groups, c.kernel[0], c.kernel[1]}, ++seed)};
    std::vector<size_t> wrt = {0, 1};
    if (!c.no_bias) {
      inputs.push_back(Random64({c.filters}, ++seed));
      wrt.push_back(2);
    }
    CheckGradient({"Convolution", attrs, inputs, wrt}, ++seed);
  }
}

TEST_CASE("Pooling gradients: max, avg, sum, lp; conventions; global", "[gradient][nn]") {
  uint64_t seed = 40;
  for (const char* type : {"max", "avg", "sum"}) {
    for (const char* convention : {"valid", "full"}) {
      for (const bool include_pad : {true, false}) {
        CheckGradient({"Pooling",
                       {{"kernel", V(3, 2)},
                        {"stride", V(2, 2)},
                        {"pad", V(1, 1)},
                        {"pool_type", type},
                        {"pooling_convention", convention},
                        {"count_include_pad", include_pad}},
                       {Random64({2, 2, 7, 6}, ++seed)},
                       {0}},
                      ++seed);
      }
      // Overlapping windows (stride < kernel), no padding.
      CheckGradient(
          {"Pooling",
           {{"kernel", V(3, 3)}, {"stride", V(1, 2)}, {"pool_type", type}, {"pooling_convention", convention}},
           {Random64({1, 3, 6, 8}, ++seed)},
           {0}},
          ++seed);
    }
    CheckGradient({"Pooling", {{"global_pool", true}, {"pool_type", type}}, {Random64({2, 3, 4, 5}, ++seed)}, {0}},
                  ++seed);
  }
  // Ties: the first maximum of each window takes the gradient, as in MXNet.
  const std::vector<double> values = {1, 3, 3, 3, 3, 0, 2, 3};
  const Tensor ties = Tensor::FromDoubles({1, 1, 2, 4}, values, DType::kFloat64);
  const GradCase tied{"Pooling", {{"kernel", V(2, 2)}, {"stride", V(2, 2)}}, {ties}, {0}};
  const auto out = Interpret(WithGradients(OpGraph(tied), {"x0"}), Feeds(tied.inputs));
  const std::vector<double> expected = {0, 1, 1, 0, 0, 0, 0, 0};
  for (int64_t i = 0; i < 8; ++i) CHECK(out[1].GetDouble(i) == expected[i]);
  // lp pooling, p = 1, 2, 3, overlapping windows; positive data keeps y^(1/p) smooth.
  for (const int64_t p : {1, 2, 3}) {
    CheckGradient({"Pooling",
                   {{"kernel", V(2, 3)}, {"stride", V(1, 2)}, {"pool_type", "lp"}, {"p_value", p}},
                   {Random64({2, 2, 5, 6}, ++seed, 0.2, 1.5)},
                   {0}},
                  ++seed);
  }
}

TEST_CASE("BatchNorm gradients in training and inference", "[gradient][nn]") {
  uint64_t seed = 80;
  for (const bool train : {true, false}) {
    for (const bool fix_gamma : {true, false}) {
      for (const bool global : {false, true}) {
        for (const bool mean_var : {false, true}) {
          for (const int64_t axis : {1, -1}) {
            const Shape shape = {3, 4, 2, 3};
            const int64_t channels = shape[axis < 0 ? shape.size() - 1 : axis];
            const std::vector<Tensor> inputs = {Random64(shape, ++seed, -2, 2), Random64({channels}, ++seed, 0.5, 1.5),
                                                Random64({channels}, ++seed), Random64({channels}, ++seed),
                                                Random64({channels}, ++seed, 0.5, 2)};
            INFO("train " << train << " fix_gamma " << fix_gamma << " use_global_stats " << global << " axis " << axis
                          << " output_mean_var " << mean_var);
            CheckGradient({"BatchNorm",
                           {{"fix_gamma", fix_gamma},
                            {"use_global_stats", global},
                            {"axis", axis},
                            {"eps", 1e-3},
                            {"output_mean_var", mean_var}},
                           inputs,
                           {0, 1, 2},
                           train},
                          ++seed);
          }
        }
      }
    }
  }
}

TEST_CASE("Dropout gradients: identity at inference, the mask in training", "[gradient][nn]") {
  uint64_t seed = 120;
  for (const bool train : {false, true}) {
    for (const double p : {0.0, 0.3, 0.7}) {
      CheckGradient({"Dropout", {{"p", p}}, {Random64({4, 5}, ++seed)}, {0}, train}, ++seed);
      CheckGradient(
          {"Dropout", {{"p", p}, {"axes", std::vector<int64_t>{1}}}, {Random64({3, 4, 2}, ++seed)}, {0}, train},
          ++seed);
    }
    CheckGradient({"Dropout", {{"p", 0.4}, {"mode", "always"}}, {Random64({6, 3}, ++seed)}, {0}, train}, ++seed);
  }
}
