#include "codegen/compiler.h"

#include <set>

#include "codegen/lower_node.h"
#include "codegen/lower/lower_util.h"
#include "passes/graph_io.h"
#include "passes/infer_shape.h"
#include "passes/interpreter.h"
#include "passes/plan_memory.h"
#include "runtime/artifact.h"
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
int64_t ScratchBytes(const Node& node, const kir::BufferNode& buffer) {
  const int64_t element = kir::ScalarTypeBytes(buffer.type);
  if (buffer.size < 0 || buffer.size > static_cast<int64_t>(kMaxTensorBytes) / element) {
    throw Error("node '" + node.name + "' (" + node.op->name() + "): scratch buffer '" + buffer.name + "' of " +
                std::to_string(buffer.size) + " elements exceeds kiln's limit of " + std::to_string(kMaxTensorBytes) +
                " bytes");
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

LoweredGraph LowerGraph(const Graph& source, const CompileOptions& options) {
  Graph graph = source;
  const IndexedGraph& indexed = graph.indexed();

  std::map<std::string, Shape> known_shapes = options.input_shapes;
  std::map<std::string, DType> known_types = options.input_types;
  for (const auto& [name, tensor] : graph.params) {
    if (known_shapes.count(name) && known_shapes[name] != tensor.shape()) {
      throw Error("parameter '" + name + "': --input gives shape " + ShapeToString(known_shapes[name]) +
                  " but its value has shape " + ShapeToString(tensor.shape()));
    }
    known_shapes[name] = tensor.shape();
    known_types[name] = tensor.dtype();
  }
  InferShape(graph, known_shapes);
  InferType(graph, known_types);
  const auto& shapes = graph.GetAttr<std::vector<ShapeSlot>>("shape");
  const auto& types = graph.GetAttr<std::vector<DTypeSlot>>("dtype");

  // Classify variables.
  LoweredGraph lowered;
  proto::ArtifactProto& artifact = lowered.artifact;
  std::map<size_t, proto::BufferRef> external;  // entry id -> where it lives
  std::vector<size_t> label_entries;
  for (size_t id : indexed.input_node_ids()) {
    const Node& node = indexed.node(id);
    const size_t entry = indexed.entry_id(id, 0);
    const bool is_param = graph.params.count(node.name) != 0;
    const bool is_label = !is_param && OnlyLabelReaders(indexed, id);
    if (!shapes[entry]) {
      throw Error("input '" + node.name + "': shape unknown; give it, e.g. --input " + node.name + ":1x3x224x224");
    }
    if (is_label) {
      label_entries.push_back(entry);
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
    external[entry] = ref;
  }
  for (size_t id = 0; id < indexed.num_nodes(); ++id) {
    for (uint32_t i = 0; i < indexed.node(id).num_outputs(); ++i) {
      const size_t entry = indexed.entry_id(id, i);
      const Node& node = indexed.node(id);
      if (!shapes[entry] || !types[entry]) {
        throw Error("node '" + node.name + "': the shape or dtype of output " + std::to_string(i) +
                    " cannot be inferred; give the input shapes with --input");
      }
      try {
        CheckedByteSize(*shapes[entry], *types[entry]);
      } catch (const Error& e) {
        throw Error((node.is_variable()
                         ? "input '" + node.name + "'"
                         : "node '" + node.name + "' (" + node.op->name() + "), output " + std::to_string(i)) +
                    ": " + e.what());
      }
    }
  }
  // Checked above: every entry's size is below kMaxTensorBytes.
  const auto entry_bytes = [&](size_t entry) {
    return static_cast<int64_t>(CheckedByteSize(*shapes[entry], *types[entry]));
  };

  // Outputs: the producing kernel writes into the output buffer, except for outputs
  // that are variables or repeat an earlier output, which get a copy kernel.
  const auto output_names = graph.OutputNames();
  std::vector<std::pair<size_t, uint32_t>> output_copies;  // (entry, output index)
  for (size_t i = 0; i < graph.outputs.size(); ++i) {
    const size_t entry = indexed.output_entries()[i];
    *artifact.add_outputs() = SpecProto(output_names[i], *shapes[entry], *types[entry]);
    if (external.count(entry) || std::find(label_entries.begin(), label_entries.end(), entry) != label_entries.end()) {
      output_copies.emplace_back(entry, static_cast<uint32_t>(i));
      continue;
    }
    proto::BufferRef ref;
    ref.set_kind(proto::BufferRef::OUTPUT);
    ref.set_index(static_cast<uint32_t>(i));
    external[entry] = ref;
  }

  // Lower every operator node.
  std::vector<int> kernel_of_node(indexed.num_nodes(), -1);
  for (size_t id = 0; id < indexed.num_nodes(); ++id) {
    const Node& node = indexed.node(id);
    if (node.is_variable()) continue;
    NodeSignature signature;
    for (const auto& input : node.inputs) {
      signature.input_shapes.push_back(*shapes[indexed.entry_id(input)]);
      signature.input_types.push_back(*types[indexed.entry_id(input)]);
    }
    for (uint32_t i = 0; i < node.num_outputs(); ++i) {
      signature.output_shapes.push_back(*shapes[indexed.entry_id(id, i)]);
      signature.output_types.push_back(*types[indexed.entry_id(id, i)]);
    }
    try {
      kernel_of_node[id] = static_cast<int>(lowered.kernels.size());
      lowered.kernels.push_back(
          LowerNode(*node.op, node.attrs, signature, KernelSymbol(id, node.name), false, NodeSeed(0, node.name)));
    } catch (const Error& e) {
      throw Error("node '" + node.name + "' (" + node.op->name() + "): " + e.what());
    }
  }

  // Plan the arena.
  std::vector<int64_t> bytes(indexed.num_entries(), 0);
  std::vector<bool> is_external(indexed.num_entries(), false);
  for (size_t entry = 0; entry < indexed.num_entries(); ++entry) {
    bytes[entry] = entry_bytes(entry);
    is_external[entry] = external.count(entry) != 0;
  }
  for (size_t entry : label_entries) is_external[entry] = true;
  const StoragePlan plan = PlanMemory(graph, bytes, is_external, [&](size_t id) {
    std::vector<int64_t> scratch;
    if (kernel_of_node[id] < 0) return scratch;
    const Node& node = indexed.node(id);
    const kir::Kernel& kernel = lowered.kernels[kernel_of_node[id]];
    for (size_t k = node.inputs.size() + node.num_outputs(); k < kernel.args.size(); ++k) {
      scratch.push_back(ScratchBytes(node, *kernel.args[k]));
    }
    return scratch;
  });
  int64_t arena_bytes = plan.arena_bytes;
  // Labels are never read at inference: they all point at one region, zeroed by nobody.
  int64_t label_offset = arena_bytes;
  for (size_t entry : label_entries) arena_bytes = std::max(arena_bytes, label_offset + bytes[entry]);
  artifact.set_arena_bytes(static_cast<uint64_t>(arena_bytes));
  lowered.unshared_bytes = plan.unshared_bytes;

  const auto ref_of = [&](size_t entry) {
    if (const auto it = external.find(entry); it != external.end()) {
      proto::BufferRef ref = it->second;
      ref.set_bytes(static_cast<uint64_t>(bytes[entry]));
      return ref;
    }
    proto::BufferRef ref;
    ref.set_kind(proto::BufferRef::ARENA);
    const bool is_label = std::find(label_entries.begin(), label_entries.end(), entry) != label_entries.end();
    ref.set_offset(static_cast<uint64_t>(is_label ? label_offset : plan.entry_offset[entry]));
    ref.set_bytes(static_cast<uint64_t>(bytes[entry]));
    return ref;
  };
  for (size_t id = 0; id < indexed.num_nodes(); ++id) {
    if (kernel_of_node[id] < 0) continue;
    const Node& node = indexed.node(id);
    const kir::Kernel& kernel = lowered.kernels[kernel_of_node[id]];
    auto* call = artifact.add_kernels();
    call->set_symbol(kernel.name);
    call->set_node(node.name);
    call->set_parallel_extent(kernel.parallel_extent);
    for (const auto& input : node.inputs) *call->add_args() = ref_of(indexed.entry_id(input));
    for (uint32_t i = 0; i < node.num_outputs(); ++i) *call->add_args() = ref_of(indexed.entry_id(id, i));
    const size_t first_scratch = node.inputs.size() + node.num_outputs();
    for (size_t k = first_scratch; k < kernel.args.size(); ++k) {
      auto* ref = call->add_args();
      ref->set_kind(proto::BufferRef::ARENA);
      ref->set_offset(static_cast<uint64_t>(plan.scratch_offset[id][k - first_scratch]));
      ref->set_bytes(static_cast<uint64_t>(ScratchBytes(node, *kernel.args[k])));
    }
  }
  for (const auto& [entry, output] : output_copies) {
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
    out.set_bytes(static_cast<uint64_t>(bytes[entry]));
    *call->add_args() = out;
  }

  artifact.set_magic("kiln.artifact");
  artifact.set_format_version(kArtifactFormatVersion);
  artifact.set_producer_version(kKilnVersion);
  artifact.set_kernel_abi_version(kKernelAbiVersion);
  artifact.set_opt_level(options.target.opt_level);
  artifact.set_graph_summary(DumpGraph(graph));
  const ResolvedTarget target = ResolveTarget(options.target);
  artifact.mutable_target()->set_triple(target.triple);
  artifact.mutable_target()->set_cpu(target.cpu);
  for (const auto& feature : target.features) artifact.mutable_target()->add_features(feature);
  return lowered;
}

proto::ArtifactProto CompileGraph(const Graph& graph, const CompileOptions& options) {
  LoweredGraph lowered = LowerGraph(graph, options);
  lowered.artifact.set_code(CompileSharedObject(lowered.kernels, options.target));
  return std::move(lowered.artifact);
}

std::unique_ptr<Executor> CompileJit(const Graph& graph, const CompileOptions& options,
                                     const ExecutorOptions& executor_options) {
  LoweredGraph lowered = LowerGraph(graph, options);
  std::shared_ptr<const CodeModule> code = JitCompile(lowered.kernels, options.target);
  return Executor::Create(std::move(lowered.artifact), std::move(code), executor_options, "<jit>");
}

}  // namespace kiln
