// Helpers for operator tests: run one operator through its reference implementation,
// make deterministic random tensors, compare with tolerances.
#pragma once

#include <functional>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "graph/attrs.h"
#include "graph/op.h"
#include "runtime/tensor.h"

namespace kiln::testing {

// Parses `attrs` for `op`, infers output shapes and dtypes from the inputs, and runs the
// reference implementation.
std::vector<Tensor> RunOp(const std::string& op, const std::vector<Tensor>& inputs, const AttrMap& attrs = {},
                          bool is_train = false, uint64_t seed = 0);

// Output shapes from input shapes through the registry's shape inference (throws on error).
std::vector<Shape> InferOpShapes(const std::string& op, const std::vector<Shape>& inputs, const AttrMap& attrs = {});

// The attributes `op` makes of `attrs` (defaults filled, validated).
Attrs ParseAttrs(const std::string& op, const AttrMap& attrs);
// Shape / dtype inference with some slots unknown (nullopt); returns the input slots
// followed by the output slots after inference. `outputs` may pre-fill output slots.
std::vector<ShapeSlot> InferShapeSlots(const std::string& op, std::vector<ShapeSlot> inputs, const AttrMap& attrs = {},
                                       std::vector<ShapeSlot> outputs = {});
std::vector<DTypeSlot> InferTypeSlots(const std::string& op, std::vector<DTypeSlot> inputs, const AttrMap& attrs = {});

// Uniform in [low, high), deterministic from `seed`.
Tensor RandomTensor(const Shape& shape, uint64_t seed, double low = -1.0, double high = 1.0,
                    DType dtype = DType::kFloat32);
// Random values of any dtype, deterministic from `seed`: integers over (nearly) their full
// range, bool 0 or 1, floats uniform in [float_low, float_high).
Tensor RandomOfDType(const Shape& shape, DType dtype, uint64_t seed, double float_low = -1.0, double float_high = 1.0);
// 0, 1, 2, ... reshaped: MXNet's arange(n).reshape(shape).
Tensor Arange(const Shape& shape, DType dtype = DType::kFloat32);
Tensor Values(const Shape& shape, const std::vector<double>& values, DType dtype = DType::kFloat32);

// |a - b| <= atol + rtol * |b| elementwise, shapes equal; the message names the first
// mismatch.
// The message of the kiln::Error that `f` throws, or "no error".
std::string ErrorOf(const std::function<void()>& f);

bool AllClose(const Tensor& actual, const Tensor& expected, double rtol, double atol, std::string* message = nullptr);

}  // namespace kiln::testing

// CHECK that two tensors agree, printing the first mismatch.
#define KILN_CHECK_CLOSE(actual, expected, rtol, atol)                                                            \
  do {                                                                                                            \
    std::string kiln_close_message;                                                                               \
    INFO(kiln_close_message);                                                                                     \
    const bool kiln_close = ::kiln::testing::AllClose((actual), (expected), (rtol), (atol), &kiln_close_message); \
    INFO(kiln_close_message);                                                                                     \
    CHECK(kiln_close);                                                                                            \
  } while (0)
