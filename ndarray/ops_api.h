// One function per operator, in the manner of MXNet's mx.nd.<Op>, generated from the
// Symbol API's list (symbol/ops_api.inc): inputs as arrays, then attributes as
// {{"name", value}}, then `out` to write the result into an existing array.
//
//   NDArray y = nd::Convolution(data, weight, bias, {{"kernel", {3, 3}}, {"num_filter", 8}});
//   nd::elemwise_add(x, y, {}, &z);   // z = x + y, in z's memory
//
// Any registered operator is also callable by name with nd::Invoke (ndarray/invoke.h).
#pragma once

#include <vector>

#include "graph/attrs.h"
#include "ndarray/invoke.h"
#include "ndarray/ndarray.h"

namespace kiln::nd {

#define KILN_SYM_UNARY(fn) NDArray fn(const NDArray& data, const AttrMap& attrs = {}, NDArray* out = nullptr);
#define KILN_SYM_BINARY(fn) \
  NDArray fn(const NDArray& lhs, const NDArray& rhs, const AttrMap& attrs = {}, NDArray* out = nullptr);
// Layers take their parameters explicitly: data, then weight and bias (BatchNorm's
// five inputs as a list).
#define KILN_SYM_LAYER(fn)                                                                                   \
  NDArray fn(const NDArray& data, const AttrMap& attrs = {}, NDArray* out = nullptr);                        \
  NDArray fn(const NDArray& data, const NDArray& weight, const AttrMap& attrs = {}, NDArray* out = nullptr); \
  NDArray fn(const NDArray& data, const NDArray& weight, const NDArray& bias, const AttrMap& attrs = {},     \
             NDArray* out = nullptr);                                                                        \
  NDArray fn(const std::vector<NDArray>& inputs, const AttrMap& attrs = {}, NDArray* out = nullptr);
#define KILN_SYM_VARIADIC(fn) \
  NDArray fn(const std::vector<NDArray>& inputs, const AttrMap& attrs = {}, NDArray* out = nullptr);
// Operators with no inputs: `out` is required (may be nullptr), so that zeros({2, 3})
// is the creation function of ndarray.h, not this one.
#define KILN_SYM_SOURCE(fn) NDArray fn(const AttrMap& attrs, NDArray* out);
#include "symbol/ops_api.inc"
#undef KILN_SYM_UNARY
#undef KILN_SYM_BINARY
#undef KILN_SYM_LAYER
#undef KILN_SYM_VARIADIC
#undef KILN_SYM_SOURCE

// Operators with other signatures.
NDArray where(const NDArray& condition, const NDArray& x, const NDArray& y, NDArray* out = nullptr);
NDArray LeakyReLU(const NDArray& data, const AttrMap& attrs = {}, NDArray* out = nullptr);
NDArray softmax_cross_entropy(const NDArray& data, const NDArray& label, NDArray* out = nullptr);

}  // namespace kiln::nd
