// The optimization passes. Each does one job, asks the operator registry (never an
// operator's name) and reports what it changed; the pass manager runs them.
#pragma once

#include "passes/pass_manager.h"

namespace kiln {

// A broadcast operator whose second operand is one constant value becomes its scalar
// form (broadcast_power(x, 2) -> _power_scalar(x, 2): a constant exponent code
// generation turns into x * x).
void ScalarizeConstantOperands(Graph& graph, const PassContext& context, PassChanges& changes);
// Removes nodes the registry calls identities here (identity, BlockGrad, Dropout at
// inference, Cast to the same dtype, transpose by the identity permutation, x * 1,
// x + 0) and views to the same shape.
void RemoveIdentities(Graph& graph, const PassContext& context, PassChanges& changes);
// A view of a view becomes one view (a Reshape to the final shape).
void MergeViews(Graph& graph, const PassContext& context, PassChanges& changes);
// A transpose of a transpose becomes one transpose (or nothing).
void MergeTransposes(Graph& graph, const PassContext& context, PassChanges& changes);
// A matrix transpose feeding a GEMM input that has a transpose flag sets the flag.
void FoldTransposeIntoGemm(Graph& graph, const PassContext& context, PassChanges& changes);
// A per-channel affine operator (BatchNorm at inference) with constant parameters: into
// the weights and bias of the GEMM-like producer it alone reads, else into one
// broadcast multiply-add by constants (which fusion absorbs). In float64, then cast.
void FoldBatchNorm(Graph& graph, const PassContext& context, PassChanges& changes);
// Nodes whose inputs are all constants (and that draw nothing random) become constants,
// computed by the reference implementations.
void FoldConstants(Graph& graph, const PassContext& context, PassChanges& changes);
// Equal operator nodes on equal inputs (not random ones) become one.
void EliminateCommonSubexpressions(Graph& graph, const PassContext& context, PassChanges& changes);
// Nodes whose operator has an equivalent form better compiled for their shapes and
// constant inputs (OpDef::SetAlter) become that form: 3x3 convolutions with run-time
// filters, a filter transform and a Winograd convolution.
void AlterOperators(Graph& graph, const PassContext& context, PassChanges& changes);
// Drops embedded parameters no node reads any more.
void EliminateDeadCode(Graph& graph, const PassContext& context, PassChanges& changes);
// Partitions the graph into fusion groups (graph attribute "fusion_groups"), lowered
// each as one kernel.
void FuseOperators(Graph& graph, const PassContext& context, PassChanges& changes);

}  // namespace kiln
