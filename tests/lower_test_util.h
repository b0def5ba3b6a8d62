// Runs operators through their lowering to kernel IR, for comparison with the reference.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "codegen/kir/kir.h"
#include "codegen/lower_node.h"
#include "graph/attrs.h"
#include "runtime/kernel_abi.h"
#include "runtime/tensor.h"

namespace kiln::testing {

// Executes a kernel on buffers (inputs, outputs, scratch in argument order).
using KernelRunner = std::function<void(const kir::Kernel& kernel, const std::vector<void*>& buffers)>;

// The kir interpreter over the whole parallel range, split into a few uneven task ranges
// to exercise the [begin, end) protocol.
KernelRunner InterpreterRunner();

// A straightforward sgemm (double accumulation), the routine table tests pass to kernels.
const KilnRuntimeApi* TestRuntimeApi();

// Lowers `op` for these inputs (shapes and dtypes inferred as the reference does) and
// runs the kernel with `runner`; returns the outputs.
// Inputs listed in `constants` are compile-time constants the lowering may replace
// (LowerContext::replace_input); the kernel then reads what it derived from them.
std::vector<Tensor> RunLowered(const std::string& op, const std::vector<Tensor>& inputs, const AttrMap& attrs = {},
                               const KernelRunner& runner = InterpreterRunner(), bool is_train = false,
                               uint64_t seed = 0, const std::vector<size_t>& constants = {});

// The kernel RunLowered would run; `replaced` receives the constants it reads instead
// of inputs.
kir::Kernel LowerOpForInputs(const std::string& op, const std::vector<Tensor>& inputs, const AttrMap& attrs = {},
                             bool is_train = false, uint64_t seed = 0, const std::vector<size_t>& constants = {},
                             ConstantArgs* replaced = nullptr);

// Lowers `op`, runs it with the kir interpreter and CHECKs every output bitwise equal to
// the reference's (for operators that only move or pick values); returns the kernel.
kir::Kernel CheckLoweredBitwise(const std::string& op, const std::vector<Tensor>& inputs, const AttrMap& attrs);

}  // namespace kiln::testing
