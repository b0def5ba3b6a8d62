// The compile driver: graph + target + options -> artifact, in stages: prepare (a private
// copy, shapes and dtypes), optimize (the pass pipeline of the optimization level),
// plan execution (fusion groups in order; views alias their source), lower each group
// to one kernel, plan memory over the steps into one arena, and assemble the artifact;
// then machine code for the kernels (AOT: a shared object inside the artifact; JIT:
// in-process code for tests and quick runs).
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "codegen/kir/kir.h"
#include "codegen/llvm/llvm_emitter.h"
#include "graph/graph.h"
#include "passes/pass_manager.h"
#include "passes/plan_memory.h"
#include "proto/artifact.pb.h"
#include "runtime/cuda_executor.h"
#include "runtime/executor.h"

namespace kiln {

struct CompileOptions {
  CpuTarget target;
  // Input shapes and dtypes; they override what the graph declares (--input).
  std::map<std::string, Shape> input_shapes;
  std::map<std::string, DType> input_types;
  // Keep the parameters inside the artifact (else bind them at load time). Without them
  // parameters are not constants: nothing is folded into them.
  bool embed_params = true;
  // Training mode: BatchNorm normalizes with batch statistics, Dropout draws its mask
  // (the graph passes keep what training needs); for graphs with gradients.
  bool is_train = false;
  // The graph pass pipeline's level; unset: the target's opt_level.
  std::optional<int> graph_opt_level;
  // A chosen list of passes, disabled passes, verification, dumps.
  PassOptions passes;
  // CompileGraph only: one specialization per batch size (axis 0 of every input, which
  // every output must follow) in one artifact, the first as the artifact itself and the
  // others as its batch variants, weights stored once (kiln compile --batch-sizes).
  std::vector<int64_t> batch_sizes;
  // CompileGraph only: compile for an NVIDIA GPU instead of the CPU (kiln compile --target
  // cuda): the kernels' CUDA C through NVRTC, as PTX for compute_80 (any GPU from the
  // A100 on) and as cubins for `archs` ("sm_80", "sm_90"; empty: the local GPU's, where
  // there is one). `target` is then unused.
  struct Cuda {
    std::vector<std::string> archs;
    // cuBLAS may use TF32 tensor cores for float32 products (kiln compile --allow-tf32).
    bool allow_tf32 = false;
  };
  std::optional<Cuda> cuda;
};

// Everything but the machine code: kernels in execution order and the artifact that
// describes how to call them.
struct LoweredGraph {
  std::vector<kir::Kernel> kernels;
  proto::ArtifactProto artifact;  // its report says what the passes, fusion and planning did
  // The optimized graph the kernels compute (with "shape", "dtype", "fusion_groups").
  Graph graph;
  // Memory planning's problem (entries of `graph`, steps = the fusion groups' kernels, before
  // the output copies) and its answer, for checkers and reports.
  MemoryProblem memory_problem;
  StoragePlan memory_plan;
};

// The graph's variables with values in graph.params are parameters; the others are
// inputs (loss layers' labels, unused at inference, are neither). Throws kiln::Error
// naming what is missing or inconsistent.
LoweredGraph LowerGraph(const Graph& graph, const CompileOptions& options);

// A complete artifact with its code object (or, with options.cuda, its GPU code).
proto::ArtifactProto CompileGraph(const Graph& graph, const CompileOptions& options);

// The same for options.cuda, with the kernels the GPU code was emitted from (the CUDA
// emulation runs those).
LoweredGraph CompileCudaGraph(const Graph& graph, const CompileOptions& options);

// Where executors of graphs compiled here for gpu(N) run: a new stream each, by default
// GpuDevice(N)->OpenStream(). The CUDA emulation (tests) installs a factory that runs the
// graph's `kernels` on the CPU; null restores the default.
using GpuStreamFactory =
    std::function<std::shared_ptr<CudaDevice>(int ordinal, const std::vector<kir::Kernel>& kernels)>;
void SetGpuStreamFactory(GpuStreamFactory factory);
// A CUDA executor of `lowered` (CompileCudaGraph's) on a new stream of gpu(ordinal).
std::unique_ptr<CudaExecutor> CreateCudaExecutor(const LoweredGraph& lowered, int ordinal,
                                                 const CudaExecutorOptions& options = {});

// One specialization per batch size of options.batch_sizes (see CompileOptions), each
// compiled from graph_for(batch): importers that bake shapes into the graph (ONNX's
// Flatten becomes a Reshape to (batch, features)) import once per batch size. The
// options' input shapes give axis 0 as the first batch size's.
proto::ArtifactProto CompileBatchSpecializations(const std::function<Graph(int64_t batch)>& graph_for,
                                                 const CompileOptions& options);
// A copy of the graph whose inputs' declared shapes (those it has) take `batch` on axis 0.
Graph WithInputBatch(const Graph& graph, int64_t batch);

// Compiles in-process and returns a ready executor (tests, kiln's quick paths).
std::unique_ptr<Executor> CompileJit(const Graph& graph, const CompileOptions& options,
                                     const ExecutorOptions& executor_options = {});
// The same from a graph already lowered with `target` (callers that also read the
// lowering's report and memory plan).
std::unique_ptr<Executor> CompileJit(const LoweredGraph& lowered, const CpuTarget& target,
                                     const ExecutorOptions& executor_options = {});

}  // namespace kiln
