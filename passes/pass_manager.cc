#include "passes/pass_manager.h"

#include <chrono>
#include <set>

#include "passes/graph_rewrite.h"
#include "passes/infer_shape.h"
#include "passes/optimize.h"
#include "passes/verify_graph.h"
#include "runtime/error.h"

namespace kiln {

const std::vector<PassInfo>& AllPasses() {
  static const std::vector<PassInfo> passes = {
      {"scalarize_constant_operands", "a broadcast operator with one constant value as rhs becomes its scalar form",
       ScalarizeConstantOperands},
      {"remove_identities", "remove identities, inference Dropout, same-dtype Cast, x*1, x+0, same-shape views",
       RemoveIdentities},
      {"merge_views", "a view of a view becomes one Reshape", MergeViews},
      {"merge_transposes", "a transpose of a transpose becomes one (or none)", MergeTransposes},
      {"fold_transpose_into_gemm", "matrix transposes into GEMM transpose flags", FoldTransposeIntoGemm},
      {"fold_batchnorm", "inference BatchNorm into the producing convolution / FullyConnected, or a scale-and-shift",
       FoldBatchNorm},
      {"fold_constants", "nodes with constant inputs become constants (reference implementations)", FoldConstants},
      {"cse", "common subexpression elimination", EliminateCommonSubexpressions},
      {"alter_operators", "nodes into the equivalent forms their operators choose (Winograd convolutions)",
       AlterOperators},
      {"dce", "drop parameters nothing reads", EliminateDeadCode},
      {"fuse", "partition into fusion groups, one kernel each", FuseOperators, /*annotates_only=*/true},
  };
  return passes;
}

const PassInfo* FindPass(const std::string& name) {
  for (const auto& pass : AllPasses()) {
    if (pass.name == name) return &pass;
  }
  return nullptr;
}

std::vector<std::string> PipelineForLevel(int opt_level) {
  if (opt_level <= 0) return {};
  std::vector<std::string> names;
  for (const auto& pass : AllPasses()) {
    if (pass.name == "fuse" && opt_level < 2) continue;
    names.push_back(pass.name);
  }
  return names;
}

std::string PassRecord::Summary() const {
  std::string text = name + ":";
  if (changes.empty()) text += " no change";
  bool first = true;
  for (const auto& [kind, count] : changes) {
    text += (first ? " " : ", ") + std::to_string(count) + " " + kind;
    first = false;
  }
  if (nodes_before != nodes_after) {
    text += " (nodes " + std::to_string(nodes_before) + " -> " + std::to_string(nodes_after) + ")";
  }
  return text;
}

void InferGraph(Graph& graph, const PassContext& context) {
  graph.InvalidateIndex();
  std::set<std::string> inputs;
  for (const auto& name : graph.ListInputs()) inputs.insert(name);
  std::map<std::string, Shape> shapes;
  std::map<std::string, DType> types;
  for (const auto& [name, shape] : context.input_shapes) {
    if (inputs.count(name)) shapes[name] = shape;
  }
  for (const auto& [name, dtype] : context.input_types) {
    if (inputs.count(name)) types[name] = dtype;
  }
  for (const auto& [name, value] : graph.params) {
    if (!inputs.count(name)) continue;
    shapes[name] = value.shape();
    types[name] = value.dtype();
  }
  InferShape(graph, shapes);
  InferType(graph, types);
}

std::vector<PassRecord> RunPasses(Graph& graph, int opt_level, const PassContext& context, const PassOptions& options) {
  const std::vector<std::string> names = options.passes ? *options.passes : PipelineForLevel(opt_level);
  for (const auto& name : names) {
    if (!FindPass(name)) {
      std::string known;
      for (const auto& pass : AllPasses()) known += (known.empty() ? "" : ", ") + pass.name;
      throw Error("unknown pass '" + name + "' (passes: " + known + ")");
    }
  }
  for (const auto& name : options.disabled) {
    if (!FindPass(name)) throw Error("--disable-pass: unknown pass '" + name + "'");
  }
  if (options.verify) VerifyGraph(graph, "input");
  if (options.after_each) options.after_each(0, "input", graph);
  std::vector<PassRecord> records;
  int index = 0;
  for (const auto& name : names) {
    if (options.disabled.count(name)) continue;
    const PassInfo& pass = *FindPass(name);
    PassRecord record;
    record.name = name;
    record.nodes_before = CountOperatorNodes(graph);
    const auto start = std::chrono::steady_clock::now();
    pass.run(graph, context, record.changes);
    if (!record.changes.empty() && !pass.annotates_only) {
      graph.attrs.erase("fusion_groups");  // describes the graph before this pass
      try {
        InferGraph(graph, context);
      } catch (const Error& e) {
        throw Error("after pass '" + name + "': " + e.what());
      }
    }
    record.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    record.nodes_after = CountOperatorNodes(graph);
    if (options.verify) VerifyGraph(graph, name);
    if (options.after_each) options.after_each(++index, name, graph);
    records.push_back(std::move(record));
  }
  return records;
}

}  // namespace kiln
