// Gradient checks: an operator's gradient (built by the gradient pass, run by the
// reference interpreter) against central finite differences in float64.
//
// For an operator y = f(x...) and random head gradients r (one per output), the loss
// L = sum_k sum(y_k * r_k) has dL/dx = the gradient graph's result with head gradients
// r. Each input element checked is moved by +-eps (eps = 1e-6 * max(1, |x|)) and
// (L(x + eps) - L(x - eps)) / 2 eps compared with the analytic value: tolerance
// rtol 1e-5, atol 1e-7 (central differences in float64 err by O(eps^2) plus rounding
// of about 1e-10 / eps).
#pragma once

#include <functional>
#include <map>
#include <string>
#include <vector>

#include "graph/attrs.h"
#include "graph/graph.h"
#include "runtime/tensor.h"

namespace kiln::testing {

struct GradCase {
  std::string op;
  AttrMap attrs;
  std::vector<Tensor> inputs;  // float64 where differentiated
  std::vector<size_t> wrt;     // inputs whose gradients are checked
  bool is_train = false;
};

// The forward graph of one operator on variables x0, x1, ...
Graph OpGraph(const GradCase& c);
std::map<std::string, Tensor> Feeds(const std::vector<Tensor>& inputs);
// Checks every element of small inputs, about 40 of larger ones; Catch CHECKs.
void CheckGradient(const GradCase& c, uint64_t seed);
// A loss layer's gradient is that of a loss of its output, not of the output itself:
// checked against finite differences of `loss`(output 0, input 1) in input 0.
void CheckLossGradient(const GradCase& c, const std::function<double(const Tensor& out, const Tensor& label)>& loss);
Tensor Random64(const Shape& shape, uint64_t seed, double low = -1, double high = 1);

}  // namespace kiln::testing
