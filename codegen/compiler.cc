#include "codegen/compiler.h"

#include <algorithm>
#include <chrono>
#include <functional>
#include <mutex>
#include <set>

#include "codegen/cuda/cuda_emitter.h"
#include "codegen/cuda/nvrtc_compiler.h"
#include "codegen/library_steps.h"
#include "codegen/lower/lower_util.h"
#include "codegen/lower_group.h"
#include "codegen/lower_node.h"
#include "passes/fusion.h"
#include "passes/graph_io.h"
#include "passes/graph_rewrite.h"
#include "passes/infer_shape.h"
#include "passes/interpreter.h"
#include "passes/pass_manager.h"
#include "passes/plan_memory.h"
#include "runtime/artifact.h"
#include "runtime/code_module.h"
#include "runtime/context.h"
#include "runtime/cuda_driver.h"
#include "runtime/error.h"
#include "runtime/kernel_abi.h"
#include "runtime/param_file.h"
#include "runtime/version.h"

namespace kiln {
namespace {

proto::TensorSpec SpecProto(const std::string& name, const Shape& shape, DType dtype) {
  proto::TensorSpec spec;
  spec.set_name(name);
  spec.set_dtype(static_cast<int32_t>(dtype));
  for (const int64_t d : shape) spec.add_shape(d);
  return spec;
}

// Kernel symbols: "k<node id>_<node name>" with anything but [A-Za-z0-9_] replaced.
std::string KernelSymbol(size_t node_id, const std::string& node_name) {
  std::string symbol = "kiln_k" + std::to_string(node_id) + "_";
  for (const char c : node_name) symbol += std::isalnum(static_cast<unsigned char>(c)) ? c : '_';
  return symbol;
}

// A kernel that copies `count` elements (graph outputs that are inputs, or repeated).
kir::Kernel CopyKernel(const std::string& name, kir::ScalarType type, int64_t count) {
  kir::KernelBuilder builder(name);
  const auto src = builder.AddArg("src", type, count);
  const auto dst = builder.AddArg("dst", type, count);
  return builder.Finish(
      lower::ChunkedLoop(count, [&](const kir::Expr& i) { return kir::Store(dst, i, kir::Load(src, i)); }));
}

// Bytes of a kernel's scratch buffer, checked like every tensor's size.
int64_t ScratchBytes(const std::string& node, const kir::BufferNode& buffer) {
  const int64_t element = kir::ScalarTypeBytes(buffer.type);
  if (buffer.size < 0 || buffer.size > static_cast<int64_t>(kMaxTensorBytes) / element) {
    throw Error("node '" + node + "': scratch buffer '" + buffer.name + "' of " + std::to_string(buffer.size) +
                " elements exceeds kiln's limit of " + std::to_string(kMaxTensorBytes) + " bytes");
  }
  return buffer.size * element;
}

bool OnlyLabelReaders(const IndexedGraph& indexed, size_t variable_id) {
  bool read = false;
  for (size_t id = variable_id + 1; id < indexed.num_nodes(); ++id) {
    const Node& node = indexed.node(id);
    for (size_t i = 0; i < node.inputs.size(); ++i) {
      if (node.inputs[i].node.get() != &indexed.node(variable_id)) continue;
      if (!node.op->IsLabelInput(i)) return false;
      read = true;
    }
  }
  return read;
}

}  // namespace

namespace {

// --- stage 1: a private copy of the graph with shapes and dtypes -------------------------

Graph PrepareGraph(const Graph& source, const CompileOptions& options, PassContext& context) {
  Graph graph = CloneGraph(source);
  std::map<std::string, Shape> known_shapes = options.input_shapes;
  std::map<std::string, DType> known_types = options.input_types;
  const std::vector<std::string> inputs = graph.ListInputs();
  for (const auto& [name, tensor] : graph.params) {
    // Values for variables the graph lacks are the dead-code pass's to drop.
    if (std::find(inputs.begin(), inputs.end(), name) == inputs.end()) continue;
    if (known_shapes.count(name) && known_shapes[name] != tensor.shape()) {
      throw Error("parameter '" + name + "': --input gives shape " + ShapeToString(known_shapes[name]) +
                  " but its value has shape " + ShapeToString(tensor.shape()));
    }
    known_shapes[name] = tensor.shape();
    known_types[name] = tensor.dtype();
  }
  // Unfiltered: a --input naming no input of the graph is an error here.
  InferShape(graph, known_shapes);
  InferType(graph, known_types);
  const IndexedGraph& indexed = graph.indexed();
  const auto& shapes = graph.GetAttr<std::vector<ShapeSlot>>("shape");
  const auto& types = graph.GetAttr<std::vector<DTypeSlot>>("dtype");
  for (size_t id : indexed.input_node_ids()) {
    const Node& node = indexed.node(id);
    if (!shapes[indexed.entry_id(id, 0)]) {
      throw Error("input '" + node.name + "': shape unknown; give it, e.g. --input " + node.name + ":1x3x224x224");
    }
  }
  for (size_t id = 0; id < indexed.num_nodes(); ++id) {
    for (uint32_t i = 0; i < indexed.node(id).num_outputs(); ++i) {
      const size_t entry = indexed.entry_id(id, i);
      if (!shapes[entry] || !types[entry]) {
        throw Error("node '" + indexed.node(id).name + "': the shape or dtype of output " + std::to_string(i) +
                    " cannot be inferred; give the input shapes with --input");
      }
    }
  }
  context.input_shapes = options.input_shapes;
  context.input_types = options.input_types;
  context.params_are_constants = options.embed_params;
  context.is_train = options.is_train;
  context.target = options.cuda ? LowerTarget::kCuda : LowerTarget::kCpu;
  return graph;
}

// --- stage 3: where every entry lives -----------------------------------------------------

struct Placement {
  std::map<size_t, proto::BufferRef> external;  // entry id -> input, parameter or output
  std::vector<size_t> label_entries;            // labels: never read at inference
  bool IsLabel(size_t entry) const {
    return std::find(label_entries.begin(), label_entries.end(), entry) != label_entries.end();
  }
  std::vector<std::pair<size_t, uint32_t>> output_copies;  // (entry, output index)
  std::vector<int64_t> bytes;                              // per entry
};

Placement PlaceEntries(const Graph& graph, const CompileOptions& options, proto::ArtifactProto& artifact) {
  const IndexedGraph& indexed = graph.indexed();
  const auto& shapes = graph.GetAttr<std::vector<ShapeSlot>>("shape");
  const auto& types = graph.GetAttr<std::vector<DTypeSlot>>("dtype");
  Placement placement;
  for (size_t id : indexed.input_node_ids()) {
    const Node& node = indexed.node(id);
    const size_t entry = indexed.entry_id(id, 0);
    const bool is_param = graph.params.count(node.name) != 0;
    const bool is_label = !is_param && OnlyLabelReaders(indexed, id);
    if (is_label) {
      placement.label_entries.push_back(entry);
      continue;
    }
    proto::BufferRef ref;
    if (is_param) {
      ref.set_kind(proto::BufferRef::PARAM);
      ref.set_index(static_cast<uint32_t>(artifact.params_size()));
      *artifact.add_params() = SpecProto(node.name, *shapes[entry], *types[entry]);
      if (options.embed_params) *artifact.add_param_values() = TensorToProto(graph.params.at(node.name), node.name);
    } else {
      ref.set_kind(proto::BufferRef::INPUT);
      ref.set_index(static_cast<uint32_t>(artifact.inputs_size()));
      *artifact.add_inputs() = SpecProto(node.name, *shapes[entry], *types[entry]);
    }
    placement.external[entry] = ref;
  }
  placement.bytes.assign(indexed.num_entries(), 0);
  for (size_t id = 0; id < indexed.num_nodes(); ++id) {
    for (uint32_t i = 0; i < indexed.node(id).num_outputs(); ++i) {
      const size_t entry = indexed.entry_id(id, i);
      const Node& node = indexed.node(id);
      try {
        placement.bytes[entry] = static_cast<int64_t>(CheckedByteSize(*shapes[entry], *types[entry]));
      } catch (const Error& e) {
        throw Error((node.is_variable()
                         ? "input '" + node.name + "'"
                         : "node '" + node.name + "' (" + node.op->name() + "), output " + std::to_string(i)) +
                    ": " + e.what());
      }
    }
  }
  // Outputs: the producing kernel writes into the output buffer, except for outputs
  // that are variables or repeat an earlier output, which get a copy kernel.
  const auto output_names = graph.OutputNames();
  for (size_t i = 0; i < graph.outputs.size(); ++i) {
    const size_t entry = indexed.output_entries()[i];
    *artifact.add_outputs() = SpecProto(output_names[i], *shapes[entry], *types[entry]);
    if (placement.external.count(entry) || placement.IsLabel(entry)) {
      placement.output_copies.emplace_back(entry, static_cast<uint32_t>(i));
      continue;
    }
    proto::BufferRef ref;
    ref.set_kind(proto::BufferRef::OUTPUT);
    ref.set_index(static_cast<uint32_t>(i));
    placement.external[entry] = ref;
  }
  return placement;
}

// --- stage 4: the execution plan, one kernel per fusion group ----------------------------

struct Step {
  GroupKernel lowered;
  FusionGroup group;
  std::string node;  // the members, "conv0+relu0"
};

struct ExecutionPlan {
  std::vector<Step> steps;
  std::vector<int64_t> alias_of;  // per entry: the entry whose storage a view shares
  int64_t views = 0;
};

ExecutionPlan PlanExecution(const Graph& graph, const FusionGroups& groups, Placement& placement,
                            bool params_are_constants, bool is_train, LowerTarget target) {
  const IndexedGraph& indexed = graph.indexed();
  ExecutionPlan plan;
  plan.alias_of.assign(indexed.num_entries(), -1);
  for (const FusionGroup& group : groups) {
    const size_t root = group.root();
    const Node& node = indexed.node(root);
    // A view is its source's storage under another shape: no kernel. A view the caller
    // receives is copied into the output buffer.
    if (group.nodes.size() == 1 && node.op->is_view()) {
      const size_t out = indexed.entry_id(root, 0);
      const size_t in = indexed.entry_id(node.inputs[0]);
      if (!placement.external.count(out)) {
        plan.alias_of[out] = static_cast<int64_t>(in);
        if (const auto it = placement.external.find(in); it != placement.external.end()) {
          placement.external[out] = it->second;
        }
        ++plan.views;
        continue;
      }
    }
    Step step;
    step.group = group;
    step.node = GroupName(indexed, group);
    step.lowered =
        LowerGroup(graph, group, KernelSymbol(root, group.anchor >= 0 ? indexed.node(group.anchor).name : node.name),
                   is_train, params_are_constants, target);
    plan.steps.push_back(std::move(step));
  }
  return plan;
}

// --- stage 5: memory ------------------------------------------------------------------------

MemoryProblem MemoryProblemOf(const ExecutionPlan& execution, const Placement& placement) {
  MemoryProblem problem;
  problem.entry_bytes = placement.bytes;
  problem.external.assign(placement.bytes.size(), false);
  for (const auto& [entry, ref] : placement.external) problem.external[entry] = true;
  for (const size_t entry : placement.label_entries) problem.external[entry] = true;
  problem.alias_of = execution.alias_of;
  for (const Step& step : execution.steps) {
    const GroupKernel& lowered = step.lowered;
    MemoryStep memory;
    memory.reads = lowered.reads;
    memory.writes = lowered.writes;
    memory.inplace = lowered.inplace;
    const size_t first_scratch = lowered.reads.size() + lowered.writes.size();
    for (size_t k = first_scratch; k < lowered.kernel.args.size(); ++k) {
      memory.scratch_bytes.push_back(ScratchBytes(step.node, *lowered.kernel.args[k]));
    }
    problem.steps.push_back(std::move(memory));
  }
  return problem;
}

// --- stage 6: the artifact --------------------------------------------------------------------

// The name of the node whose output `entry` is (a parameter's name).
std::string EntryName(const IndexedGraph& indexed, size_t entry) {
  for (size_t id = 0; id < indexed.num_nodes(); ++id) {
    if (entry >= indexed.entry_id(id, 0) && entry < indexed.entry_id(id, indexed.node(id).num_outputs())) {
      return indexed.node(id).name;
    }
  }
  return "entry" + std::to_string(entry);
}

// A constant a lowering derived at compile time (packed filters), stored as an embedded
// parameter of its own; the name is made unique.
proto::BufferRef AddConstantParam(std::string name, const Tensor& value, proto::ArtifactProto& artifact) {
  const auto taken = [&](const std::string& candidate) {
    return std::any_of(artifact.params().begin(), artifact.params().end(),
                       [&](const proto::TensorSpec& spec) { return spec.name() == candidate; });
  };
  const std::string base = name;
  for (int n = 2; taken(name); ++n) name = base + "#" + std::to_string(n);
  proto::BufferRef ref;
  ref.set_kind(proto::BufferRef::PARAM);
  ref.set_index(static_cast<uint32_t>(artifact.params_size()));
  ref.set_bytes(static_cast<uint64_t>(value.nbytes()));
  *artifact.add_params() = SpecProto(name, value.shape(), value.dtype());
  *artifact.add_param_values() = TensorToProto(value, name);
  return ref;
}

// Whether two arguments' storage may overlap: arena byte ranges that intersect, or the
// same input, parameter or output.
bool MayOverlap(const proto::BufferRef& a, const proto::BufferRef& b) {
  if (a.kind() != b.kind()) return false;
  if (a.kind() != proto::BufferRef::ARENA) return a.index() == b.index();
  return a.offset() < b.offset() + b.bytes() && b.offset() < a.offset() + a.bytes() && a.bytes() > 0 && b.bytes() > 0;
}

// Per argument of a kernel call: no other argument overlaps it where either is written
// (in-place pairs and views of one buffer alias; read-only arguments may share).
std::vector<bool> NoAliasArgs(const proto::KernelCall& call, const std::vector<bool>& written) {
  std::vector<bool> noalias(static_cast<size_t>(call.args_size()), true);
  for (int i = 0; i < call.args_size(); ++i) {
    for (int j = i + 1; j < call.args_size(); ++j) {
      const bool either_written = written.at(static_cast<size_t>(i)) || written.at(static_cast<size_t>(j));
      if (either_written && MayOverlap(call.args(i), call.args(j))) {
        noalias[static_cast<size_t>(i)] = noalias[static_cast<size_t>(j)] = false;
      }
    }
  }
  return noalias;
}

void AssembleKernels(const ExecutionPlan& execution, const Placement& placement, const StoragePlan& memory,
                     const Graph& graph, LoweredGraph& lowered) {
  proto::ArtifactProto& artifact = lowered.artifact;
  const auto& shapes = graph.GetAttr<std::vector<ShapeSlot>>("shape");
  const auto& types = graph.GetAttr<std::vector<DTypeSlot>>("dtype");
  int64_t arena_bytes = memory.arena_bytes;
  // Labels are never read at inference: they all point at one region, zeroed by nobody.
  const int64_t label_offset = arena_bytes;
  for (const size_t entry : placement.label_entries) {
    arena_bytes = std::max(arena_bytes, label_offset + placement.bytes[entry]);
  }
  artifact.set_arena_bytes(static_cast<uint64_t>(arena_bytes));

  const auto ref_of = [&](size_t entry) {
    if (const auto it = placement.external.find(entry); it != placement.external.end()) {
      proto::BufferRef ref = it->second;
      ref.set_bytes(static_cast<uint64_t>(placement.bytes[entry]));
      return ref;
    }
    proto::BufferRef ref;
    ref.set_kind(proto::BufferRef::ARENA);
    ref.set_offset(static_cast<uint64_t>(placement.IsLabel(entry) ? label_offset : memory.entry_offset[entry]));
    ref.set_bytes(static_cast<uint64_t>(placement.bytes[entry]));
    return ref;
  };
  for (size_t s = 0; s < execution.steps.size(); ++s) {
    const Step& step = execution.steps[s];
    const GroupKernel& group = step.lowered;
    proto::KernelCall base;
    base.set_node(step.node);
    for (size_t k = 0; k < group.reads.size(); ++k) {
      const auto constant = group.constants.find(static_cast<int>(k));
      *base.add_args() = constant == group.constants.end()
                             ? ref_of(group.reads[k])
                             : AddConstantParam(EntryName(graph.indexed(), group.reads[k]) + constant->second.first,
                                                constant->second.second, artifact);
    }
    for (const size_t entry : group.writes) *base.add_args() = ref_of(entry);
    const size_t first_scratch = group.reads.size() + group.writes.size();
    for (size_t k = first_scratch; k < group.kernel.args.size(); ++k) {
      auto* ref = base.add_args();
      ref->set_kind(proto::BufferRef::ARENA);
      ref->set_offset(static_cast<uint64_t>(memory.scratch_offset[s][k - first_scratch]));
      ref->set_bytes(static_cast<uint64_t>(ScratchBytes(step.node, *group.kernel.args[k])));
    }
    // A kernel with library steps runs as its sequence of kernels and library calls, all
    // on the group's buffers.
    for (kir::KernelStep& part : kir::SplitSteps(group.kernel)) {
      proto::KernelCall& call = *artifact.add_kernels() = base;
      if (part.gemm) {
        *call.mutable_gemm() = GemmCallOf(*part.gemm);
        continue;
      }
      call.set_symbol(part.kernel->name);
      call.set_parallel_extent(part.kernel->parallel_extent);
      part.kernel->noalias = NoAliasArgs(call, kir::WrittenArgs(*part.kernel));
      lowered.kernels.push_back(std::move(*part.kernel));
    }
  }
  const auto output_names = graph.OutputNames();
  for (const auto& [entry, output] : placement.output_copies) {
    const DType dtype = *types[entry];
    lowered.kernels.push_back(
        CopyKernel("kiln_copy_output" + std::to_string(output), ToScalarType(dtype), NumElements(*shapes[entry])));
    auto* call = artifact.add_kernels();
    call->set_symbol(lowered.kernels.back().name);
    call->set_node(output_names[output]);
    call->set_parallel_extent(lowered.kernels.back().parallel_extent);
    *call->add_args() = ref_of(entry);
    proto::BufferRef out;
    out.set_kind(proto::BufferRef::OUTPUT);
    out.set_index(output);
    out.set_bytes(static_cast<uint64_t>(placement.bytes[entry]));
    *call->add_args() = out;
  }
}

// Parameters no kernel reads any more (all their readers read constants derived from
// them) leave the artifact; the others are renumbered in order.
void DropUnreadParams(proto::ArtifactProto& artifact) {
  std::vector<bool> read(static_cast<size_t>(artifact.params_size()), false);
  for (const auto& call : artifact.kernels()) {
    for (const auto& arg : call.args()) {
      if (arg.kind() == proto::BufferRef::PARAM) read.at(arg.index()) = true;
    }
  }
  if (std::find(read.begin(), read.end(), false) == read.end()) return;
  std::vector<uint32_t> renumbered(read.size());
  google::protobuf::RepeatedPtrField<proto::TensorSpec> params;
  google::protobuf::RepeatedPtrField<proto::TensorProto> values;
  const bool embedded = artifact.param_values_size() == artifact.params_size();
  for (size_t i = 0; i < read.size(); ++i) {
    if (!read[i]) continue;
    renumbered[i] = static_cast<uint32_t>(params.size());
    *params.Add() = artifact.params(static_cast<int>(i));
    if (embedded) *values.Add() = std::move(*artifact.mutable_param_values(static_cast<int>(i)));
  }
  artifact.mutable_params()->Swap(&params);
  artifact.mutable_param_values()->Swap(&values);
  for (auto& call : *artifact.mutable_kernels()) {
    for (auto& arg : *call.mutable_args()) {
      if (arg.kind() == proto::BufferRef::PARAM) arg.set_index(renumbered[arg.index()]);
    }
  }
}

void FillReport(const std::vector<PassRecord>& records, int64_t nodes_before_passes, const ExecutionPlan& execution,
                const Placement& placement, const StoragePlan& memory, const Graph& graph,
                proto::ArtifactProto& artifact) {
  proto::CompileReportProto& report = *artifact.mutable_report();
  report.set_nodes_before_passes(nodes_before_passes);
  for (const PassRecord& record : records) {
    auto* pass = report.add_passes();
    pass->set_name(record.name);
    pass->set_nodes_before(record.nodes_before);
    pass->set_nodes_after(record.nodes_after);
    pass->set_seconds(record.seconds);
    for (const auto& [kind, count] : record.changes) (*pass->mutable_changes())[kind] = count;
  }
  int64_t before_fusion = static_cast<int64_t>(placement.output_copies.size());
  const IndexedGraph& indexed = graph.indexed();
  for (const Step& step : execution.steps) {
    // Without fusion a view aliases its source (no kernel), unless it is a step alone
    // (a view the caller receives is copied).
    int64_t kernels = 0;
    for (const size_t id : step.group.nodes) kernels += indexed.node(id).op->is_view() ? 0 : 1;
    before_fusion += std::max<int64_t>(kernels, 1);
  }
  report.set_kernels_before_fusion(before_fusion);
  report.set_kernels(artifact.kernels_size());
  for (const Step& step : execution.steps) {
    if (step.group.nodes.size() < 2) continue;
    auto* group = report.add_fused_groups();
    group->set_kernel(step.lowered.kernel.name);
    for (const size_t id : step.group.nodes) group->add_members(indexed.node(id).name);
    if (step.group.anchor >= 0) {
      const Node& anchor = indexed.node(static_cast<size_t>(step.group.anchor));
      group->set_anchor(anchor.name);
      group->set_pattern(std::string(OpPatternName(anchor.op->pattern())));
    } else {
      group->set_pattern("elementwise");
    }
  }
  report.set_arena_lower_bound_bytes(static_cast<uint64_t>(memory.lower_bound_bytes));
  report.set_no_reuse_bytes(static_cast<uint64_t>(memory.no_reuse_bytes));
  report.set_memory_planner(MemoryPlannerName(memory.planner));
  report.set_free_list_bytes(static_cast<uint64_t>(memory.free_list_bytes));
  report.set_greedy_bytes(static_cast<uint64_t>(memory.greedy_bytes));
  report.set_inplace_count(static_cast<int64_t>(memory.inplace.size()));
}

}  // namespace

LoweredGraph LowerGraph(const Graph& source, const CompileOptions& options) {
  std::vector<std::pair<std::string, double>> stages;
  auto last = std::chrono::steady_clock::now();
  const auto lap = [&](const char* stage) {
    const auto now = std::chrono::steady_clock::now();
    stages.emplace_back(stage, std::chrono::duration<double>(now - last).count());
    last = now;
  };
  PassContext context;
  Graph graph = PrepareGraph(source, options, context);
  lap("prepare");
  const int64_t nodes_before_passes = CountOperatorNodes(graph);
  const std::vector<PassRecord> records =
      RunPasses(graph, options.graph_opt_level.value_or(options.target.opt_level), context, options.passes);
  const FusionGroups groups =
      graph.HasAttr("fusion_groups") ? graph.GetAttr<FusionGroups>("fusion_groups") : SingletonGroups(graph.indexed());
  lap("passes");

  LoweredGraph lowered;
  proto::ArtifactProto& artifact = lowered.artifact;
  Placement placement = PlaceEntries(graph, options, artifact);
  const ExecutionPlan execution =
      PlanExecution(graph, groups, placement, context.params_are_constants, context.is_train, context.target);
  lap("lower");
  lowered.memory_problem = MemoryProblemOf(execution, placement);
  lowered.memory_plan = PlanMemory(lowered.memory_problem);
  lap("plan_memory");
  const StoragePlan& memory = lowered.memory_plan;
  AssembleKernels(execution, placement, memory, graph, lowered);
  DropUnreadParams(artifact);
  FillReport(records, nodes_before_passes, execution, placement, memory, graph, artifact);
  lap("assemble");
  artifact.set_graph_summary(DumpGraph(graph));
  lap("graph_summary");
  for (const auto& [stage, seconds] : stages) {
    auto* time = artifact.mutable_report()->add_stage_times();
    time->set_stage(stage);
    time->set_seconds(seconds);
  }

  artifact.set_magic("kiln.artifact");
  artifact.set_format_version(kArtifactFormatVersion);
  artifact.set_producer_version(kKilnVersion);
  artifact.set_kernel_abi_version(kKernelAbiVersion);
  artifact.set_opt_level(options.target.opt_level);
  const ResolvedTarget target = ResolveTarget(options.target);
  artifact.mutable_target()->set_triple(target.triple);
  artifact.mutable_target()->set_cpu(target.cpu);
  for (const auto& feature : target.features) artifact.mutable_target()->add_features(feature);
  lowered.graph = std::move(graph);
  return lowered;
}

namespace {

// The graph's inputs (variables without values) with the shapes the options and the
// graph give them.
std::map<std::string, Shape> InputShapes(const Graph& source, const CompileOptions& options) {
  PassContext context;
  const Graph graph = PrepareGraph(source, options, context);
  const IndexedGraph& indexed = graph.indexed();
  const auto& shapes = graph.GetAttr<std::vector<ShapeSlot>>("shape");
  std::map<std::string, Shape> inputs;
  for (const size_t id : indexed.input_node_ids()) {
    const std::string& name = indexed.node(id).name;
    if (graph.params.count(name) == 0) inputs[name] = *shapes[indexed.entry_id(id, 0)];
  }
  return inputs;
}

}  // namespace

Graph WithInputBatch(const Graph& graph, int64_t batch) {
  Graph batched = CloneGraph(graph);
  for (const NodePtr& node : TopologicalOrder(batched.outputs)) {
    if (node->is_variable() && node->shape && !node->shape->empty() && graph.params.count(node->name) == 0) {
      (*node->shape)[0] = batch;
    }
  }
  return batched;
}

proto::ArtifactProto CompileBatchSpecializations(const std::function<Graph(int64_t batch)>& graph_for,
                                                 const CompileOptions& options) {
  std::vector<int64_t> sizes = options.batch_sizes;
  std::sort(sizes.begin(), sizes.end());
  if (sizes.empty() || sizes.front() < 1 || std::adjacent_find(sizes.begin(), sizes.end()) != sizes.end()) {
    std::string given;
    for (const int64_t size : options.batch_sizes) given += (given.empty() ? "" : ",") + std::to_string(size);
    throw Error("batch sizes must be distinct and at least 1, given " + given);
  }
  // The options' input shapes at the first batch size, and every input's shape there.
  CompileOptions first = options;
  first.batch_sizes.clear();
  for (auto& [name, shape] : first.input_shapes) {
    if (!shape.empty()) shape[0] = sizes.front();
  }
  const Graph first_graph = graph_for(sizes.front());
  const std::map<std::string, Shape> inputs = InputShapes(first_graph, first);
  proto::ArtifactProto artifact;
  for (const int64_t batch : sizes) {
    CompileOptions specialized = first;
    for (const auto& [name, shape] : inputs) {
      if (shape.empty()) throw Error("input '" + name + "' is a scalar: it has no batch axis (axis 0) to specialize");
      Shape batched = shape;
      batched[0] = batch;
      specialized.input_shapes[name] = batched;
    }
    proto::ArtifactProto compiled = CompileGraph(batch == sizes.front() ? first_graph : graph_for(batch), specialized);
    for (const auto& output : compiled.outputs()) {
      if (output.shape_size() == 0 || output.shape(0) != batch) {
        throw Error("output '" + output.name() + "' has shape " +
                    ShapeToString(Shape(output.shape().begin(), output.shape().end())) + " at batch size " +
                    std::to_string(batch) + ": its axis 0 does not follow the inputs' batch axis, so the model " +
                    "cannot be specialized by batch size");
      }
    }
    compiled.set_batch_size(batch);
    if (batch == sizes.front()) {
      artifact = std::move(compiled);
      continue;
    }
    // What the enclosing artifact says for all of them.
    compiled.clear_magic();
    compiled.clear_format_version();
    compiled.clear_producer_version();
    compiled.clear_target();
    compiled.clear_kernel_abi_version();
    compiled.clear_graph_summary();
    *artifact.add_batch_variants() = std::move(compiled);
  }
  return artifact;
}

namespace {

// The artifact's GPU code: every kernel's CUDA C compiled by NVRTC (cached on disk).
proto::CudaCodeProto CompileCudaCode(const LoweredGraph& lowered, const CompileOptions::Cuda& options) {
  for (const kir::Kernel& kernel : lowered.kernels) {
    if (cuda::CudaCanEmit(kernel)) continue;
    std::string node = kernel.name;
    for (const auto& call : lowered.artifact.kernels()) {
      if (call.symbol() == KernelSymbolName(kernel.name)) node = call.node();
    }
    throw Error("node '" + node +
                "' lowers to a library routine (a float32 GEMM or convolution), which has no CUDA "
                "form yet (it becomes a cuBLAS step): compile this model for the CPU");
  }
  const cuda::Nvrtc* nvrtc = cuda::Nvrtc::Find();
  if (nvrtc == nullptr) throw Error("--target cuda needs NVRTC: " + cuda::Nvrtc::LoadError());
  std::vector<std::string> archs = options.archs;
  if (archs.empty()) {
    try {
      archs.push_back(ListCudaDevices().front().Arch());
    } catch (const Error&) {
      // No local GPU: PTX only.
    }
  }
  const cuda::CudaModuleSource module = cuda::EmitCudaModule(lowered.kernels);
  const std::string cache = cuda::DefaultCudaCacheDir();
  proto::CudaCodeProto code;
  code.set_ptx_arch("compute_80");
  code.set_ptx(nvrtc->Compile(module.source, "kiln.cu", code.ptx_arch(), cache).ptx);
  for (const std::string& arch : archs) {
    (*code.mutable_cubins())[arch] = nvrtc->Compile(module.source, "kiln.cu", arch, cache).cubin;
  }
  code.set_nvrtc_version(nvrtc->version());
  code.set_allow_tf32(options.allow_tf32);
  for (const cuda::CudaKernelInfo& info : module.kernels) *code.add_kernels() = cuda::LaunchForm(info);
  return code;
}

}  // namespace

LoweredGraph CompileCudaGraph(const Graph& graph, const CompileOptions& options) {
  if (!options.cuda) throw Error("internal: CompileCudaGraph without CUDA options");
  if (!options.batch_sizes.empty()) throw Error("--batch-sizes is for the CPU target only, so far");
  LoweredGraph lowered = LowerGraph(graph, options);
  const auto start = std::chrono::steady_clock::now();
  *lowered.artifact.mutable_cuda() = CompileCudaCode(lowered, *options.cuda);
  lowered.artifact.clear_target();
  auto* time = lowered.artifact.mutable_report()->add_stage_times();
  time->set_stage("nvrtc");
  time->set_seconds(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  return lowered;
}

namespace {
struct GpuStreams {
  std::mutex mutex;
  GpuStreamFactory factory;
};
GpuStreams& Streams() {
  static GpuStreams streams;
  return streams;
}
}  // namespace

void SetGpuStreamFactory(GpuStreamFactory factory) {
  const std::lock_guard<std::mutex> lock(Streams().mutex);
  Streams().factory = std::move(factory);
}

std::unique_ptr<CudaExecutor> CreateCudaExecutor(const LoweredGraph& lowered, int ordinal,
                                                 const CudaExecutorOptions& options) {
  GpuStreamFactory factory;
  {
    const std::lock_guard<std::mutex> lock(Streams().mutex);
    factory = Streams().factory;
  }
  std::shared_ptr<CudaDevice> stream = factory ? factory(ordinal, lowered.kernels) : GpuDevice(ordinal)->OpenStream();
  return CudaExecutor::Create(lowered.artifact, std::move(stream), options);
}

proto::ArtifactProto CompileGraph(const Graph& graph, const CompileOptions& options) {
  if (options.cuda) return std::move(CompileCudaGraph(graph, options).artifact);
  if (!options.batch_sizes.empty()) {
    return CompileBatchSpecializations([&graph](int64_t batch) { return WithInputBatch(graph, batch); }, options);
  }
  LoweredGraph lowered = LowerGraph(graph, options);
  const auto start = std::chrono::steady_clock::now();
  lowered.artifact.set_code(CompileSharedObject(lowered.kernels, options.target));
  auto* time = lowered.artifact.mutable_report()->add_stage_times();
  time->set_stage("llvm");
  time->set_seconds(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  return std::move(lowered.artifact);
}

std::unique_ptr<Executor> CompileJit(const Graph& graph, const CompileOptions& options,
                                     const ExecutorOptions& executor_options) {
  return CompileJit(LowerGraph(graph, options), options.target, executor_options);
}

std::unique_ptr<Executor> CompileJit(const LoweredGraph& lowered, const CpuTarget& target,
                                     const ExecutorOptions& executor_options) {
  std::shared_ptr<const CodeModule> code = JitCompile(lowered.kernels, target);
  return Executor::Create(lowered.artifact, std::move(code), executor_options, "<jit>");
}

}  // namespace kiln
