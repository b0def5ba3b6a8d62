// The pass manager: runs a named pipeline of graph passes (one per optimization level,
// or a list the user chooses), re-infers shapes and dtypes after every pass that changed
// the graph, verifies the graph between passes (in tests and debug builds), and records
// what each pass changed.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "graph/graph.h"

namespace kiln {

// What every pass may know.
struct PassContext {
  bool is_train = false;
  // Parameters are constants (compiling for inference with embedded parameters): they may
  // be folded, and BatchNorm folded into the weights. False with --no-embed-params.
  bool params_are_constants = true;
  // The processor the graph is compiled for (operators' alter functions choose forms for it).
  LowerTarget target = LowerTarget::kCpu;
  // Shapes and dtypes of the graph's inputs, as for InferShape / InferType.
  std::map<std::string, Shape> input_shapes;
  std::map<std::string, DType> input_types;
};

// What a pass changed, by kind ("removed", "folded", "fused", ...).
using PassChanges = std::map<std::string, int64_t>;

using PassFn = std::function<void(Graph& graph, const PassContext& context, PassChanges& changes)>;

struct PassInfo {
  std::string name;
  std::string description;
  PassFn run;
  // Passes that only annotate the graph (fusion) leave it for the next stage: the graph
  // is not re-inferred after them.
  bool annotates_only = false;
};

// Every pass, in the order pipelines run them.
const std::vector<PassInfo>& AllPasses();
const PassInfo* FindPass(const std::string& name);

// The passes of an optimization level: -O0 none; -O1 simplification; -O2, -O3 also fusion.
std::vector<std::string> PipelineForLevel(int opt_level);

struct PassRecord {
  std::string name;
  int64_t nodes_before = 0;
  int64_t nodes_after = 0;
  PassChanges changes;
  double seconds = 0;
  std::string Summary() const;  // "fold_batchnorm: 20 folded (nodes 120 -> 100)"
};

struct PassOptions {
  // Run these passes (in this order) instead of the level's pipeline.
  std::optional<std::vector<std::string>> passes;
  std::set<std::string> disabled;
#ifdef NDEBUG
  bool verify = false;
#else
  bool verify = true;
#endif
  // Called with the graph before the first pass (index 0, pass "input") and after each
  // pass (index 1, 2, ...): --dump-after-each.
  std::function<void(int index, const std::string& pass, const Graph& graph)> after_each;
};

// Infers shapes and dtypes from the context's inputs and the graph's parameters (only
// those the graph still has). Throws kiln::Error as InferShape does.
void InferGraph(Graph& graph, const PassContext& context);

// Runs the pipeline on `graph` (a graph the caller owns: passes rewrite it in place),
// which must have been inferred. Throws kiln::Error for unknown pass names, and when
// verification fails, naming the pass that broke the graph.
std::vector<PassRecord> RunPasses(Graph& graph, int opt_level, const PassContext& context,
                                  const PassOptions& options = {});

}  // namespace kiln
