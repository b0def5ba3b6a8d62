// Shared building blocks for operator definitions: shape checks with clear messages,
// broadcasting, axis handling, and reference-loop helpers.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "graph/op.h"
#include "runtime/error.h"

namespace kiln::op_util {

// The most inputs or outputs a count attribute (num_args, num_outputs) may ask for: a
// corrupt file's count must be an error, not a vector of billions of names.
inline constexpr int64_t kMaxArity = 65536;

// Where inference functions that give every slot one value (a shape, a dtype) start:
// the first known slot among inputs[0, num_inputs) and then the outputs, and its name
// for messages ("input 'weight'", "output", or "output 1" when there are several).
template <typename T>
std::pair<std::optional<T>, std::string> FirstKnownSlot(const std::vector<std::optional<T>>& inputs,
                                                        const std::vector<std::string>& input_names, size_t num_inputs,
                                                        const std::vector<std::optional<T>>& outputs) {
  for (size_t i = 0; i < num_inputs && i < inputs.size(); ++i) {
    if (inputs[i]) return {inputs[i], "input '" + input_names.at(i) + "'"};
  }
  for (size_t i = 0; i < outputs.size(); ++i) {
    if (outputs[i]) return {outputs[i], outputs.size() == 1 ? "output" : "output " + std::to_string(i)};
  }
  return {std::nullopt, ""};
}

// a * b for a dimension; throws kiln::Error naming `what` and both factors when the
// product overflows int64 (an attribute like tile's reps may be anything).
int64_t CheckedMultiply(int64_t a, int64_t b, const std::string& what);

// Fills `slot` with `shape`, or checks that it already holds it. `what` names the
// argument, e.g. "input 'weight'"; the message gives expected and given shapes.
void AssignShape(ShapeSlot& slot, const Shape& shape, const std::string& what);
void AssignType(DTypeSlot& slot, DType dtype, const std::string& what);

// Throws "input 'NAME': expected ..., given ..." style errors.
[[noreturn]] void ShapeError(const std::string& what, const std::string& expected, const Shape& given);

// NumPy broadcasting of two shapes; throws naming both shapes when they do not fit.
Shape BroadcastShapes(const Shape& lhs, const Shape& rhs);
// Negative axes count from the end; throws when out of [-ndim, ndim).
int64_t NormalizeAxis(int64_t axis, int64_t ndim, const std::string& what);

// Shape inference for operators whose inputs and outputs all have one shape.
InferShapeFn SameShapeInfer();
// Two inputs broadcast to one output.
InferShapeFn BroadcastInfer();
// Output dtype fixed whatever the inputs' dtypes.
InferTypeFn FixedOutputType(DType dtype);
// Output 0 may reuse input 0's storage.
InplaceFn InplaceIdentity();

// Iterates every index of `shape` in row-major order, passing the flat output index
// and the multi-index.
void ForEachIndex(const Shape& shape, const std::function<void(int64_t, const std::vector<int64_t>&)>& fn);
// Flat index into a tensor of `shape` broadcast against an output multi-index whose
// rank may be larger (missing leading dims and size-1 dims read index 0).
int64_t BroadcastOffset(const Shape& shape, const std::vector<int64_t>& out_index);

// An element of an integer or bool tensor, exactly (GetDouble rounds int64 beyond 2^53),
// held as kir::WrapTo holds integers: uint64 as its bit pattern. Float elements truncate
// (saturating at the int64 range).
int64_t LoadInt(const Tensor& tensor, int64_t index);
// Stores an integer the way MXNet's integer arithmetic does: integer targets wrap (C++20
// conversions are modular: sum of int8 [100, 100] is -56), float targets round.
void StoreInt(Tensor& tensor, int64_t index, int64_t value);
// A LoadInt value of `dtype` as a double (uint64 unsigned).
double IntToDouble(int64_t value, DType dtype);

// Reference for out = f(x).
ReferenceFn UnaryReference(std::function<double(double)> fn);
// Integer arithmetic, for references: MXNet computes integer tensors in their own type
// (C++ arithmetic; results wrap when StoreInt narrows them). kiln defines what C++
// leaves undefined, as its compiled code does: x / 0 = 0, MIN / -1 wraps, and
// float-to-integer conversions truncate, map NaN to 0 and saturate to the int64 range.
// A scalar operand as an integer or bool tensor of `dtype` holds it.
int64_t ScalarToInt(double value, DType dtype);
int64_t IntDivide(int64_t a, int64_t b);
int64_t IntPower(int64_t a, int64_t b);
// MXNet's mod: the remainder takes the divisor's sign (-7 mod 3 = 2, 7 mod -3 = -2), and
// x mod 0 = 0.
int64_t IntModulo(int64_t a, int64_t b);

// Reference for out = f(a, b) with broadcasting: float tensors through `fn` in double,
// integer and bool tensors through `int_fn` on exact integers, uint64 tensors through
// `uint64_fn` where given (where unsigned arithmetic differs: order, division).
ReferenceFn BinaryBroadcastReference(std::function<double(double, double)> fn,
                                     std::function<int64_t(int64_t, int64_t)> int_fn,
                                     std::function<uint64_t(uint64_t, uint64_t)> uint64_fn = nullptr);

}  // namespace kiln::op_util
