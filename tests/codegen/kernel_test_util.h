// Hand-built kernels and special values shared by the emitters' tests (LLVM, CUDA C):
// kernels mapping or zipping buffers, every type's special values, and bitwise
// comparison of results with the kir interpreter's.
#pragma once

#include <cstdint>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "codegen/kir/kir.h"
#include "runtime/kernel_abi.h"
#include "runtime/tensor.h"
#include "tests/lower_test_util.h"

namespace kiln::testing {

inline constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
inline constexpr double kInf = std::numeric_limits<double>::infinity();

// Every kir scalar type.
extern const std::vector<kir::ScalarType> kAllTypes;

// Runs `fn` over [0, extent) in three uneven shares, with an empty and a reversed range
// between them that must do nothing.
void RunShares(KilnKernelFn fn, int64_t extent, const std::vector<void*>& buffers,
               const KilnRuntimeApi* api = TestRuntimeApi());

DType ToDType(kir::ScalarType type);

// Runs `kernel` (inputs, then one output of `out_type`) and returns the output.
Tensor RunKernel(const KernelRunner& runner, const kir::Kernel& kernel, const std::vector<Tensor>& inputs,
                 kir::ScalarType out_type);
// out[i] = fn(in[i]) in a vectorized loop.
kir::Kernel MapKernel(kir::ScalarType in_type, kir::ScalarType out_type, int64_t n,
                      const std::function<kir::Expr(kir::Expr)>& fn);
// out[i] = fn(a[i], b[i]) in a vectorized loop.
kir::Kernel ZipKernel(kir::ScalarType in_type, kir::ScalarType out_type, int64_t n,
                      const std::function<kir::Expr(kir::Expr, kir::Expr)>& fn);

// A tensor holding `values` converted to `dtype` as C++ does (values must fit).
Tensor Ints(const std::vector<int64_t>& values, DType dtype);
Tensor RandomInts(const Shape& shape, uint64_t seed, int64_t low, int64_t high, DType dtype);
// Special values of each type, as a tensor.
Tensor SpecialValues(kir::ScalarType type);
// Identical values: bit for bit, except that any two NaNs agree (their sign and payload
// depend on how a NaN was made).
bool Bitwise(const Tensor& a, const Tensor& b);
bool IsComparison(kir::BinaryOp op);
// The binary operators the emitters are checked on for `type`: all but integer pow (it
// overflows) and float && / || (the interpreter leaves them in the integer slot).
std::vector<kir::BinaryOp> BinaryOpsFor(kir::ScalarType type);
std::string Show(const Tensor& t);

}  // namespace kiln::testing
