// Every operator's test cases for the compiled backends (tests/codegen/compiled_ops_test,
// cuda_ops_test), and the check of a backend against the reference oracle, on:
//   - every inference case recorded from MXNet (tests/golden/data), as recorded;
//   - the same cases in the other dtypes the operator accepts (float64, float16, bfloat16,
//     int32, int64, int8, uint8, int16, uint16, uint32, uint64, bool);
//   - elementwise and broadcast operators on sizes that are not multiples of the vector
//     width, large sizes, empty tensors and broadcasting shapes of several ranks;
//   - GEMM-like, pooling and reduction operators on odd and large shapes.
// All cases of one operator go into one graph, compiled once per backend.
//
// Tolerances (compiled code against the reference, which accumulates in double):
//   float64: rtol 1e-9, atol 1e-12.
//   float32: elementwise, broadcast and injective ops rtol 1e-5, atol 1e-6; reductions,
//            GEMM-like and opaque ops (float32 accumulation over up to ~10^5 terms)
//            rtol 1e-4, atol 1e-4.
//   float16: rtol 4e-3, atol 2e-3 (the compiled code computes in float32 and rounds
//            once; the reference rounds a double: the two may differ by one float16 ulp,
//            and reductions accumulate rounding differences).
//   bfloat16: rtol 8e-3, atol 4e-3: the same, one ulp of its 8-bit significand (2^-8).
//   integers and bool: exact.
// Random operators are checked for range and moments, as the golden test does.
// Training-mode cases (BatchNorm's batch statistics, Dropout) belong to the training
// path and are not compiled here.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "codegen/compiler.h"
#include "graph/op.h"
#include "runtime/executor.h"
#include "runtime/tensor.h"
#include "tests/golden/golden_data.h"

namespace kiln::testing {

// One case: attributes and inputs; random operators carry the range and moments to check.
struct OpCase {
  OpCase(std::string d, AttrMap a, std::vector<Tensor> in, golden::json r = golden::json())
      : desc(std::move(d)), attrs(std::move(a)), inputs(std::move(in)), random(std::move(r)) {}

  std::string desc;
  AttrMap attrs;
  std::vector<Tensor> inputs;  // the operator's inputs in order (aux states included)
  golden::json random;         // random operators: the range and moments to check (null otherwise)
};

struct Tolerance {
  double rtol = 0;
  double atol = 0;
};

// The tolerance of `dtype` for an operator of `pattern` (see above).
Tolerance ToleranceFor(DType dtype, OpPattern pattern);

struct OpCases {
  const OpDef* op;
  std::vector<OpCase> cases;
};
// Every operator with recorded cases, with the variants and extra cases, and the
// operators without golden cases with their built-in ones.
const std::vector<OpCases>& AllOpCases();

// One graph holding every case ("c<k>_<input>" variables, node "c<k>"), with its
// options (the inputs' shapes and dtypes) and inputs.
struct CaseGraph {
  Graph graph;
  CompileOptions options;
  std::map<std::string, Tensor> inputs;
  std::vector<size_t> first_output;  // per case, its first output's index
};
CaseGraph BuildCaseGraph(const OpDef& op, const std::vector<OpCase>& cases);

// Compiles a graph (one node per case) into an executor.
using CompileFn =
    std::function<std::unique_ptr<Executor>(const OpDef& op, const Graph& graph, const CompileOptions& options)>;
// Runs every case of `op` through `compile`; returns the failures, one line each.
std::vector<std::string> CheckOp(const OpDef& op, const std::vector<OpCase>& cases, const CompileFn& compile);

// `options` lowering for CUDA (library steps for products; no NVRTC is run by LowerGraph).
CompileOptions ForCuda(CompileOptions options);
// Whether the CUDA emitter can express every kernel of `lowered` (none calls a library
// routine inside a kernel).
bool AllEmittable(const LoweredGraph& lowered);
// The cases of `op` whose kernels, lowered for CUDA, the CUDA emitter can express (all of
// them but those that still call a CPU routine inside a kernel), and how many were left out.
struct EmittableCases {
  std::vector<OpCase> cases;
  size_t left_out = 0;
};
EmittableCases Emittable(const OpDef& op, const std::vector<OpCase>& cases);
// Cases of `cases` that differ in their inputs' dtypes: NVRTC's and ptxas's work is what
// a type asks for, not a shape.
std::vector<OpCase> OnePerDtype(const std::vector<OpCase>& cases);

}  // namespace kiln::testing
