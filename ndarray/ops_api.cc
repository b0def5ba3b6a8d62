#include "ndarray/ops_api.h"

namespace kiln::nd {

#define KILN_SYM_UNARY(fn)                                              \
  NDArray fn(const NDArray& data, const AttrMap& attrs, NDArray* out) { \
    return Invoke(#fn, {data}, attrs, out);                             \
  }
#define KILN_SYM_BINARY(fn)                                                                \
  NDArray fn(const NDArray& lhs, const NDArray& rhs, const AttrMap& attrs, NDArray* out) { \
    return Invoke(#fn, {lhs, rhs}, attrs, out);                                            \
  }
#define KILN_SYM_LAYER(fn)                                                                                          \
  KILN_SYM_UNARY(fn)                                                                                                \
  KILN_SYM_BINARY(fn)                                                                                               \
  NDArray fn(const NDArray& data, const NDArray& weight, const NDArray& bias, const AttrMap& attrs, NDArray* out) { \
    return Invoke(#fn, {data, weight, bias}, attrs, out);                                                           \
  }                                                                                                                 \
  KILN_SYM_VARIADIC(fn)
#define KILN_SYM_VARIADIC(fn)                                                          \
  NDArray fn(const std::vector<NDArray>& inputs, const AttrMap& attrs, NDArray* out) { \
    return Invoke(#fn, inputs, attrs, out);                                            \
  }
#define KILN_SYM_SOURCE(fn)                        \
  NDArray fn(const AttrMap& attrs, NDArray* out) { \
    return Invoke(#fn, {}, attrs, out);            \
  }
#include "symbol/ops_api.inc"

NDArray where(const NDArray& condition, const NDArray& x, const NDArray& y, NDArray* out) {
  return Invoke("where", {condition, x, y}, {}, out);
}
NDArray LeakyReLU(const NDArray& data, const AttrMap& attrs, NDArray* out) {
  return Invoke("LeakyReLU", {data}, attrs, out);
}
NDArray softmax_cross_entropy(const NDArray& data, const NDArray& label, NDArray* out) {
  return Invoke("softmax_cross_entropy", {data, label}, {}, out);
}

}  // namespace kiln::nd
