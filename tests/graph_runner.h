// Runs a lowered graph the way the executor runs its artifact (inputs, parameters, one
// arena at the planned offsets, outputs), but with the kir interpreter instead of LLVM:
// fast enough to compile and run thousands of small graphs, and exact (no fused
// multiply-adds), so fused and unfused kernels can be compared bit for bit. The arena
// starts filled with NaN bytes, so a plan that lets a kernel read what another
// overwrote shows in the results.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "codegen/compiler.h"
#include "runtime/tensor.h"

namespace kiln::testing {

// `params` binds parameters the artifact does not embed (--no-embed-params), by name.
std::vector<Tensor> RunWithInterpreter(const LoweredGraph& lowered, const std::map<std::string, Tensor>& inputs,
                                       const std::map<std::string, Tensor>& params = {});

// Checks a memory plan against its problem without using the planner's code: no two
// buffers live at the same step overlap unless one takes the other's storage in place
// where the step allows it and the read dies there; scratch overlaps nothing live;
// everything fits the arena; the arena is at least the lower bound (recomputed here).
// Returns "" or a description of the first violation.
std::string CheckMemoryPlan(const MemoryProblem& problem, const StoragePlan& plan);

}  // namespace kiln::testing
