// The compile driver: graph + target + options -> artifact. It infers shapes and types,
// lowers every node to a kernel through the operator registry, plans memory into one
// arena, and generates machine code for the kernels (AOT: a shared object inside the
// artifact; JIT: in-process code for tests and quick runs).
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "codegen/kir/kir.h"
#include "codegen/llvm/llvm_emitter.h"
#include "graph/graph.h"
#include "proto/artifact.pb.h"
#include "runtime/executor.h"

namespace kiln {

struct CompileOptions {
  CpuTarget target;
  // Input shapes and dtypes; they override what the graph declares (--input).
  std::map<std::string, Shape> input_shapes;
  std::map<std::string, DType> input_types;
  // Keep the parameters inside the artifact (else bind them at load time).
  bool embed_params = true;
};

// Everything but the machine code: kernels in execution order and the artifact that
// describes how to call them.
struct LoweredGraph {
  std::vector<kir::Kernel> kernels;
  proto::ArtifactProto artifact;
  int64_t unshared_bytes = 0;  // what the arena would be without memory planning
};

// The graph's variables with values in graph.params are parameters; the others are
// inputs (loss layers' labels, unused at inference, are neither). Throws kiln::Error
// naming what is missing or inconsistent.
LoweredGraph LowerGraph(const Graph& graph, const CompileOptions& options);

// A complete artifact with its code object.
proto::ArtifactProto CompileGraph(const Graph& graph, const CompileOptions& options);

// Compiles in-process and returns a ready executor (tests, kiln's quick paths).
std::unique_ptr<Executor> CompileJit(const Graph& graph, const CompileOptions& options,
                                     const ExecutorOptions& executor_options = {});

}  // namespace kiln
