// One function per operator, in the manner of MXNet's mx.sym.<Op>: inputs as symbols,
// then attributes as {{"name", value}}, then an optional node name (a unique one is
// made otherwise). Inputs an operator needs that are not given (weights, biases,
// labels, BatchNorm's statistics) become variables named "<name>_<input>", e.g.
//
//   Symbol fc1 = sym::FullyConnected(data, {{"num_hidden", 128}}, "fc1");  // fc1_weight, fc1_bias
//   Symbol act = sym::Activation(fc1, {{"act_type", "relu"}});
#pragma once

#include <string>
#include <vector>

#include "symbol/symbol.h"

namespace kiln::sym {

// Operators with one data input.
#define KILN_SYM_UNARY(fn) Symbol fn(const Symbol& data, const AttrMap& attrs = {}, const std::string& name = "");
// Operators with two inputs.
#define KILN_SYM_BINARY(fn) \
  Symbol fn(const Symbol& lhs, const Symbol& rhs, const AttrMap& attrs = {}, const std::string& name = "");
// Operators whose trailing inputs are parameters made implicitly when not given.
#define KILN_SYM_LAYER(fn) Symbol fn(const Symbol& data, const AttrMap& attrs = {}, const std::string& name = "");
// Operators over a list of inputs (num_args is set from the list).
#define KILN_SYM_VARIADIC(fn) \
  Symbol fn(const std::vector<Symbol>& inputs, const AttrMap& attrs = {}, const std::string& name = "");
// Operators with no inputs.
#define KILN_SYM_SOURCE(fn) Symbol fn(const AttrMap& attrs = {}, const std::string& name = "");
#include "symbol/ops_api.inc"
#undef KILN_SYM_UNARY
#undef KILN_SYM_BINARY
#undef KILN_SYM_LAYER
#undef KILN_SYM_VARIADIC
#undef KILN_SYM_SOURCE

// Operators with other signatures.
Symbol where(const Symbol& condition, const Symbol& x, const Symbol& y, const std::string& name = "");
Symbol LeakyReLU(const Symbol& data, const AttrMap& attrs = {}, const std::string& name = "");
Symbol SoftmaxOutput(const Symbol& data, const Symbol& label, const AttrMap& attrs = {}, const std::string& name = "");
Symbol LinearRegressionOutput(const Symbol& data, const Symbol& label, const AttrMap& attrs = {},
                              const std::string& name = "");
Symbol LogisticRegressionOutput(const Symbol& data, const Symbol& label, const AttrMap& attrs = {},
                                const std::string& name = "");
Symbol softmax_cross_entropy(const Symbol& data, const Symbol& label, const std::string& name = "");

}  // namespace kiln::sym
