#include "ndarray/invoke.h"

#include <algorithm>
#include <atomic>
#include <bit>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <set>
#include <span>
#include <string_view>
#include <type_traits>
#include <unordered_map>
#include <utility>
#include <variant>

#include "codegen/compile_cache.h"
#include "codegen/compiler.h"
#include "graph/op.h"
#include "ndarray/autograd.h"
#include "ndarray/lazy.h"
#include "runtime/context.h"
#include "runtime/cuda_executor.h"

namespace kiln::nd {
namespace {

// A one-node graph compiled for a GPU, on a stream of its own.
struct CompiledGpuGraph {
  std::unique_ptr<CudaExecutor> executor;
  std::vector<size_t> input_order;  // as CompiledGraph's
};

struct KernelCache {
  std::mutex mutex;
  std::map<std::string, std::shared_ptr<const detail::CompiledGraph>> entries;
  std::map<std::string, std::shared_ptr<const CompiledGpuGraph>> gpu_entries;
  KernelCacheStats stats;
  std::optional<std::string> dir;  // unset: CompileCache::DefaultDir()
};

KernelCache& Cache() {
  static KernelCache cache;
  return cache;
}

// Bumped by ClearKernelCache: every thread drops its table of prepared calls.
std::atomic<uint64_t> g_generation{1};
// Hits served by a thread's table of prepared calls (part of KernelCacheStats::hits).
std::atomic<int64_t> g_table_hits{0};

std::string ShapesText(const std::vector<std::string>& names, const std::vector<Shape>& shapes) {
  std::string text;
  for (size_t i = 0; i < shapes.size(); ++i) {
    if (i > 0) text += ", ";
    text += (i < names.size() ? names[i] : "input " + std::to_string(i)) + " " + ShapeToString(shapes[i]);
  }
  return text;
}

// Output shapes and dtypes from the inputs'. A parameter whose shape the data input
// determines (a weight, a bias) is checked first, so that the error names it.
void InferOutputs(const OpDef& op, const Attrs& attrs, const std::vector<NDArray>& inputs,
                  std::vector<Shape>& out_shapes, std::vector<DType>& out_types) {
  const std::vector<std::string> names = op.InputNames(attrs);
  const size_t num_outputs = op.NumOutputs(attrs);
  std::vector<Shape> given;
  for (const NDArray& input : inputs) given.push_back(input.shape());
  if (!inputs.empty()) {
    std::vector<ShapeSlot> in(inputs.size());
    std::vector<ShapeSlot> out(num_outputs);
    in[0] = given[0];
    bool inferred = true;
    try {
      op.InferShape(attrs, in, out);
    } catch (const Error&) {
      inferred = false;  // the full inference below reports it
    }
    for (size_t i = 1; inferred && i < in.size(); ++i) {
      if (in[i] && *in[i] != given[i]) {
        throw Error(op.name() + ": argument '" + names[i] + "' expected shape " + ShapeToString(*in[i]) + ", given " +
                    ShapeToString(given[i]) + " (with " + names[0] + " " + ShapeToString(given[0]) + ")");
      }
    }
  }
  std::vector<ShapeSlot> in(given.begin(), given.end());
  std::vector<ShapeSlot> out(num_outputs);
  try {
    op.InferShape(attrs, in, out);
  } catch (const Error& e) {
    throw Error(op.name() + ": " + e.what() + " (given " + ShapesText(names, given) + ")");
  }
  std::vector<DTypeSlot> in_types;
  for (const NDArray& input : inputs) in_types.emplace_back(input.dtype());
  std::vector<DTypeSlot> types(num_outputs);
  try {
    op.InferType(attrs, in_types, types);
  } catch (const Error& e) {
    throw Error(op.name() + ": " + e.what());
  }
  for (size_t k = 0; k < num_outputs; ++k) {
    if (!out[k] || !types[k]) throw Error(op.name() + ": cannot infer output " + std::to_string(k));
    out_shapes.push_back(*out[k]);
    out_types.push_back(*types[k]);
  }
}

// The cache key's description of the inputs.
std::string SpecsText(const std::vector<TensorSpec>& specs) {
  std::string text;
  for (const auto& spec : specs) text += ShapeToString(spec.shape) + std::string(DTypeName(spec.dtype)) + ";";
  return text;
}

// Kernels read 64-byte aligned buffers; a view at another offset is copied.
Tensor Aligned(const Tensor& tensor) {
  return reinterpret_cast<uintptr_t>(tensor.data()) % 64 == 0 ? tensor : tensor.Clone();
}

// Names of the variables that some node of `graph` writes in place (MutatedInputs).
std::set<std::string> MutatedVariables(const Graph& graph, bool is_train) {
  std::set<std::string> names;
  for (const NodePtr& node : TopologicalOrder(graph.outputs)) {
    if (node->is_variable()) continue;
    for (const int index : node->op->MutatedInputs(node->attrs, is_train)) {
      const NodeEntry& input = node->inputs.at(static_cast<size_t>(index));
      if (input.node->is_variable()) names.insert(input.node->name);
    }
  }
  return names;
}

}  // namespace

// Where each of the executor's inputs is among the caller's (by name).
std::vector<size_t> InputOrder(const std::vector<TensorSpec>& executor_inputs,
                               const std::vector<std::string>& input_names) {
  std::vector<size_t> order;
  for (const auto& spec : executor_inputs) {
    const auto it = std::find(input_names.begin(), input_names.end(), spec.name);
    if (it == input_names.end()) throw Error("kernel cache: unknown input '" + spec.name + "'");
    order.push_back(static_cast<size_t>(it - input_names.begin()));
  }
  return order;
}

// Compile options for a graph of these inputs (those it reads).
CompileOptions OptionsFor(const Graph& graph, const std::vector<TensorSpec>& input_specs, bool is_train) {
  CompileOptions options;
  options.embed_params = false;
  options.is_train = is_train;
  const std::vector<std::string> used = graph.ListInputs();
  for (const auto& spec : input_specs) {
    // Only the variables the graph reads (a gradient graph needs no head gradient of ones
    // that it folds, nor an input that no gradient reaches).
    if (std::find(used.begin(), used.end(), spec.name) == used.end()) continue;
    options.input_shapes[spec.name] = spec.shape;
    options.input_types[spec.name] = spec.dtype;
  }
  return options;
}

// The graph compiled for gpu(ordinal) (CUDA C through NVRTC, cuBLAS steps), cached under
// `key` and the GPU.
std::shared_ptr<const CompiledGpuGraph> GetOrCompileGpu(const std::string& key, const std::function<Graph()>& build,
                                                        const std::vector<TensorSpec>& input_specs, bool is_train,
                                                        int ordinal) {
  KernelCache& cache = Cache();
  const std::string gpu_key = key + "|gpu(" + std::to_string(ordinal) + ")";
  const std::lock_guard lock(cache.mutex);
  if (const auto it = cache.gpu_entries.find(gpu_key); it != cache.gpu_entries.end()) {
    ++cache.stats.hits;
    return it->second;
  }
  const Graph graph = build();
  CompileOptions options = OptionsFor(graph, input_specs, is_train);
  options.cuda = CompileOptions::Cuda{};
  const LoweredGraph lowered = CompileCudaGraph(graph, options);
  auto compiled = std::make_shared<CompiledGpuGraph>();
  compiled->executor = CreateCudaExecutor(lowered, ordinal);
  std::vector<std::string> input_names;
  for (const TensorSpec& spec : input_specs) input_names.push_back(spec.name);
  compiled->input_order = InputOrder(compiled->executor->inputs(), input_names);
  ++cache.stats.compiles;
  cache.gpu_entries.emplace(gpu_key, compiled);
  return compiled;
}

// Runs `compiled` on `values` (in the caller's input order), on the GPU.
std::vector<DeviceTensor> RunGpuGraph(const CompiledGpuGraph& compiled, const std::vector<DeviceTensor>& values) {
  std::vector<DeviceTensor> inputs;
  for (const size_t position : compiled.input_order) inputs.push_back(values.at(position));
  return compiled.executor->Run(inputs);
}

namespace detail {

std::vector<DeviceTensor> RunOnGpu(const std::string& key, const std::function<Graph()>& build,
                                   const std::vector<TensorSpec>& input_specs, bool is_train, int ordinal,
                                   const std::vector<DeviceTensor>& values) {
  return RunGpuGraph(*GetOrCompileGpu(key, build, input_specs, is_train, ordinal), values);
}

std::string CanonicalAttrs(const Attrs& attrs) {
  std::string text;
  for (const auto& [name, value] : attrs.values()) text += name + "=" + FormatAttrValue(value) + ";";
  return text;
}

std::shared_ptr<const CompiledGraph> GetOrCompile(const std::string& key, const std::function<Graph()>& build,
                                                  const std::vector<std::string>& input_names,
                                                  const std::vector<TensorSpec>& input_specs, bool is_train) {
  KernelCache& cache = Cache();
  // One lock over lookup and compilation: two threads never build the same kernel.
  const std::lock_guard lock(cache.mutex);
  if (const auto it = cache.entries.find(key); it != cache.entries.end()) {
    ++cache.stats.hits;
    return it->second;
  }
  const Graph graph = build();
  const CompileOptions options = OptionsFor(graph, input_specs, is_train);
  auto compiled = std::make_shared<CompiledGraph>();
  if (!cache.dir) cache.dir = CompileCache::DefaultDir();
  if (cache.dir->empty()) {
    compiled->executor = CompileJit(graph, options);
    ++cache.stats.compiles;
  } else {
    const LoweredGraph lowered = LowerGraph(graph, options);
    auto loaded = CompileCache(*cache.dir).Load(lowered, options.target);
    compiled->executor = std::move(loaded.executor);
    ++(loaded.hit ? cache.stats.disk_hits : cache.stats.compiles);
  }
  // Passes may drop inputs nothing reads; the executor's own order is what Run takes.
  const std::set<std::string> mutated = MutatedVariables(graph, is_train);
  const std::vector<TensorSpec>& inputs = compiled->executor->inputs();
  for (size_t k = 0; k < inputs.size(); ++k) {
    if (mutated.count(inputs[k].name)) compiled->mutated_inputs.push_back(k);
  }
  compiled->input_order = InputOrder(compiled->executor->inputs(), input_names);
  cache.entries.emplace(key, compiled);
  return compiled;
}

std::vector<Tensor> Run(const CompiledGraph& compiled, const std::vector<Tensor>& values, std::vector<Tensor> outputs) {
  std::vector<Tensor> inputs;
  inputs.reserve(compiled.input_order.size());
  for (const size_t position : compiled.input_order) inputs.push_back(Aligned(values.at(position)));
  if (outputs.empty()) {
    outputs = compiled.executor->Run(inputs);
  } else {
    compiled.executor->RunInto(inputs, outputs);
  }
  for (const size_t k : compiled.mutated_inputs) {
    // A misaligned view ran on a copy: the update belongs in the caller's array.
    Tensor target = values.at(compiled.input_order[k]);
    if (inputs[k].data() != target.data()) std::memcpy(target.data(), inputs[k].data(), target.nbytes());
  }
  return outputs;
}

}  // namespace detail

void SetCacheDir(const std::string& dir) {
  const std::lock_guard lock(Cache().mutex);
  Cache().dir = dir;
}

std::string CacheDir() {
  const std::lock_guard lock(Cache().mutex);
  if (!Cache().dir) Cache().dir = CompileCache::DefaultDir();
  return *Cache().dir;
}

KernelCacheStats GetKernelCacheStats() {
  const std::lock_guard lock(Cache().mutex);
  KernelCacheStats stats = Cache().stats;
  stats.hits += g_table_hits.load(std::memory_order_relaxed);
  return stats;
}

void ClearKernelCache() {
  const std::lock_guard lock(Cache().mutex);
  Cache().entries.clear();
  Cache().gpu_entries.clear();
  Cache().stats = {};
  g_table_hits.store(0, std::memory_order_relaxed);
  g_generation.fetch_add(1, std::memory_order_release);  // every thread's CallTable too
}

namespace {

// A call this thread made before, resolved once: the operator, its parsed attributes and
// its compiled kernel. A repeated call (same operator name, attributes as given, mode,
// input dtypes and shapes) finds it by a hash and runs the kernel: no attribute parsing,
// shape inference or key text. Only calls that succeeded are kept, so errors are still
// reported by the full path.
struct PreparedCall {
  // What the call matched on.
  std::string op_name;
  AttrMap attrs;
  bool is_train = false;
  std::vector<std::pair<DType, Shape>> inputs;
  // What it resolved to.
  const OpDef* op = nullptr;
  Attrs parsed;
  bool dropout_step = false;    // the kernel reads a fresh random::NextDropoutStep() too
  bool mutates_inputs = false;  // BatchNorm's moving statistics in training mode
  std::vector<TensorSpec> input_specs, output_specs;
  std::string key;  // the kernel cache's
  // Compiled at the first eager run (a deferred call needs none of its own).
  mutable std::shared_ptr<const detail::CompiledGraph> compiled;

  mutable std::map<int, std::shared_ptr<const CompiledGpuGraph>> gpu_compiled;  // by GPU

  // The call as a graph of one node.
  Graph BuildGraph() const {
    std::vector<NodeEntry> entries;
    for (const auto& spec : input_specs) entries.push_back({Node::Variable(spec.name, spec.shape, spec.dtype), 0});
    const NodePtr node = Node::Create(*op, op->name(), parsed, std::move(entries));
    Graph graph;
    for (uint32_t k = 0; k < node->num_outputs(); ++k) graph.outputs.push_back({node, k});
    return graph;
  }
  const detail::CompiledGraph& Compiled() const {
    if (!compiled) {
      std::vector<std::string> input_names;
      for (const TensorSpec& spec : input_specs) input_names.push_back(spec.name);
      compiled = detail::GetOrCompile(
          key, [&] { return BuildGraph(); }, input_names, input_specs, is_train);
    }
    return *compiled;
  }
  const CompiledGpuGraph& CompiledForGpu(int ordinal) const {
    std::shared_ptr<const CompiledGpuGraph>& entry = gpu_compiled[ordinal];
    if (!entry)
      entry = GetOrCompileGpu(
          key, [&] { return BuildGraph(); }, input_specs, is_train, ordinal);
    return *entry;
  }

  bool Matches(std::string_view name, const AttrMap& given, bool train, std::span<const NDArray> arrays) const {
    if (name != op_name || train != is_train || arrays.size() != inputs.size() || given.size() != attrs.size()) {
      return false;
    }
    for (size_t i = 0; i < given.size(); ++i) {
      if (given[i].first != attrs[i].first || given[i].second.value != attrs[i].second.value) return false;
    }
    for (size_t i = 0; i < arrays.size(); ++i) {
      // Shape and dtype only: a pending (lazy) input is not computed to match a call.
      if (arrays[i].dtype() != inputs[i].first || arrays[i].shape() != inputs[i].second) return false;
    }
    return true;
  }
};

// Per thread, so that a hit takes no lock; ClearKernelCache invalidates every thread's
// table through the generation.
struct CallTable {
  uint64_t generation = 0;
  std::unordered_map<uint64_t, std::vector<std::unique_ptr<const PreparedCall>>> calls;
};
thread_local CallTable t_calls;

void Mix(uint64_t& hash, uint64_t value) {
  hash ^= value + 0x9E3779B97F4A7C15ULL + (hash << 6) + (hash >> 2);
}

uint64_t HashValue(const AttrValue& value) {
  uint64_t hash = value.index();
  std::visit(
      [&](const auto& v) {
        using V = std::decay_t<decltype(v)>;
        if constexpr (std::is_same_v<V, std::string>) {
          Mix(hash, std::hash<std::string_view>{}(v));
        } else if constexpr (std::is_same_v<V, std::vector<int64_t>> || std::is_same_v<V, std::vector<double>>) {
          for (const auto element : v) Mix(hash, std::bit_cast<uint64_t>(element));
        } else if constexpr (std::is_same_v<V, double>) {
          Mix(hash, std::bit_cast<uint64_t>(v));
        } else if constexpr (!std::is_same_v<V, std::monostate>) {
          Mix(hash, static_cast<uint64_t>(v));
        }
      },
      value);
  return hash;
}

uint64_t HashCall(std::string_view op_name, const AttrMap& attrs, bool is_train, std::span<const NDArray> inputs) {
  uint64_t hash = std::hash<std::string_view>{}(op_name);
  for (const auto& [name, arg] : attrs) {
    Mix(hash, std::hash<std::string_view>{}(name));
    Mix(hash, HashValue(arg.value));
  }
  Mix(hash, is_train ? 1 : 2);
  for (const NDArray& input : inputs) {
    Mix(hash, static_cast<uint64_t>(input.dtype()));
    for (const int64_t extent : input.shape()) Mix(hash, static_cast<uint64_t>(extent));
    Mix(hash, ~uint64_t{0});  // separates (2, 3), (4) from (2), (3, 4)
  }
  return hash;
}

// The full path of a call not seen before: resolves the operator (and Dropout's
// per-call step), checks the inputs, infers the outputs (errors name the operator, the
// argument and the shapes) and compiles or finds the kernel.
std::unique_ptr<const PreparedCall> Prepare(std::string_view op_name, std::span<const NDArray> given_inputs,
                                            const AttrMap& attrs, bool is_train) {
  auto call = std::make_unique<PreparedCall>();
  call->op_name = std::string(op_name);
  call->attrs = attrs;
  call->is_train = is_train;
  const OpDef* resolved = &OpRegistry::Global().Get(call->op_name);
  std::map<std::string, AttrValue> given;
  for (const auto& [name, value] : attrs) given[name] = value.value;
  if (resolved->FindField("num_args") != nullptr && !given.count("num_args")) {
    given["num_args"] = static_cast<int64_t>(given_inputs.size());
  }
  Attrs parsed = resolved->ParseAttrs(given, call->op_name);
  std::vector<NDArray> inputs(given_inputs.begin(), given_inputs.end());
  if (resolved->name() == "Dropout" && inputs.size() == 1 && parsed.Float("p") > 0 &&
      (is_train || parsed.Str("mode") == "always")) {
    // One compiled kernel would draw the same mask on every call: _dropout_step reads
    // its position in the random stream from an input, a fresh step per call.
    resolved = &OpRegistry::Global().Get("_dropout_step");
    parsed = resolved->ParseAttrs(given, call->op_name);
    inputs.push_back(zeros({1}, Context::cpu(), DType::kInt64));  // stands for the step
    call->dropout_step = true;
  }
  const OpDef& op = *resolved;
  const std::vector<std::string> names = op.InputNames(parsed);
  if (names.size() != inputs.size()) {
    std::string expected;
    for (const auto& name : names) expected += (expected.empty() ? "" : ", ") + name;
    throw Error(op.name() + ": expects " + std::to_string(names.size()) + " inputs (" + expected + "), given " +
                std::to_string(inputs.size()));
  }
  std::vector<TensorSpec> specs;
  for (size_t i = 0; i < inputs.size(); ++i) {
    if (!inputs[i].defined()) throw Error(op.name() + ": argument '" + names[i] + "' is an undefined array");
    inputs[i].context().CheckAvailable();
    specs.push_back({"in" + std::to_string(i), inputs[i].dtype(), inputs[i].shape()});
    if (i < given_inputs.size()) call->inputs.emplace_back(inputs[i].dtype(), inputs[i].shape());
  }
  std::vector<Shape> out_shapes;
  std::vector<DType> out_types;
  InferOutputs(op, parsed, inputs, out_shapes, out_types);

  call->key =
      "op:" + op.name() + "|" + detail::CanonicalAttrs(parsed) + "|" + SpecsText(specs) + (is_train ? "|train" : "");
  call->input_specs = std::move(specs);
  for (size_t k = 0; k < out_shapes.size(); ++k) call->output_specs.push_back({"", out_types[k], out_shapes[k]});
  call->mutates_inputs = !op.MutatedInputs(parsed, is_train).empty();
  call->op = &op;
  call->parsed = std::move(parsed);
  return call;
}

// The prepared call for these arguments: from this thread's table, else prepared and
// added to it.
const PreparedCall& Lookup(std::string_view op_name, std::span<const NDArray> inputs, const AttrMap& attrs,
                           bool is_train) {
  CallTable& table = t_calls;
  if (const uint64_t generation = g_generation.load(std::memory_order_acquire); table.generation != generation) {
    table.calls.clear();
    table.generation = generation;
  }
  // An undefined input has no shape to hash: the full path reports it.
  const bool all_defined = std::all_of(inputs.begin(), inputs.end(), [](const NDArray& a) { return a.defined(); });
  const uint64_t hash = all_defined ? HashCall(op_name, attrs, is_train, inputs) : 0;
  auto& bucket = table.calls[hash];
  if (all_defined) {
    for (const auto& call : bucket) {
      if (call->Matches(op_name, attrs, is_train, inputs)) {
        g_table_hits.fetch_add(1, std::memory_order_relaxed);
        return *call;
      }
    }
  }
  bucket.push_back(Prepare(op_name, inputs, attrs, is_train));
  return *bucket.back();
}

// Whether the kernel can write straight into `out`: its only output, of out's shape and
// dtype, aligned, and not overlapping an input (a kernel may read an input after writing).
bool WritesInto(const detail::CompiledGraph& compiled, const NDArray& out, std::span<const NDArray> inputs) {
  const auto& specs = compiled.executor->outputs();
  const Tensor& target = out.tensor();
  if (specs.size() != 1 || specs[0].dtype != target.dtype() || specs[0].shape != target.shape() ||
      reinterpret_cast<uintptr_t>(target.data()) % 64 != 0) {
    return false;
  }
  const auto* begin = static_cast<const char*>(target.data());
  const auto* end = begin + target.nbytes();
  return std::none_of(inputs.begin(), inputs.end(), [&](const NDArray& input) {
    const auto* first = static_cast<const char*>(input.tensor().data());
    return first < end && begin < first + input.tensor().nbytes();
  });
}

// The context a call runs on: its inputs' (a GPU where any is on one; all must agree).
Context CallContext(std::string_view op_name, std::span<const NDArray> inputs) {
  const auto on_gpu =
      std::find_if(inputs.begin(), inputs.end(), [](const NDArray& a) { return a.defined() && a.context().is_gpu(); });
  if (on_gpu == inputs.end()) return Context::cpu();
  for (size_t i = 0; i < inputs.size(); ++i) {
    if (inputs[i].defined() && inputs[i].context() != on_gpu->context()) {
      throw Error(std::string(op_name) + ": input " + std::to_string(i) + " is on " + inputs[i].context().ToString() +
                  ", input " + std::to_string(on_gpu - inputs.begin()) + " on " + on_gpu->context().ToString() +
                  ": copy them to one context (AsInContext)");
    }
  }
  return on_gpu->context();
}

// A call on GPU arrays: the compiled graph runs on the GPU's stream, reading and writing
// device memory only; BatchNorm's moving statistics are updated in the caller's arrays.
std::vector<NDArray> DispatchOnGpu(const PreparedCall& call, std::string_view op_name, std::span<const NDArray> inputs,
                                   NDArray* out, const Context& ctx) {
  const CompiledGpuGraph& compiled = call.CompiledForGpu(ctx.device_id());
  std::vector<NDArray> arrays(inputs.begin(), inputs.end());
  if (call.dropout_step) arrays.push_back(random::NextDropoutStep().AsInContext(ctx));
  std::vector<DeviceTensor> values;
  for (const NDArray& array : arrays) values.push_back(array.device_tensor());
  std::vector<NDArray> outputs;
  for (DeviceTensor& result : RunGpuGraph(compiled, values)) outputs.emplace_back(std::move(result));
  if (out != nullptr && out->defined()) {
    if (out->shape() != outputs.at(0).shape()) {
      throw Error(std::string(op_name) + ": out= has shape " + ShapeToString(out->shape()) + ", the result " +
                  ShapeToString(outputs[0].shape()));
    }
    outputs[0].CopyTo(*out);  // a recorded result gets memory of its own first
    outputs[0] = *out;
    // The written array now stands for this result: recorded below, or cut from the tape.
    out->chunk().producer = nullptr;
    out->chunk().output_index = 0;
  }
  autograd::RecordOp(*call.op, call.parsed, call.is_train, arrays, outputs);
  return outputs;
}

// Runs the operator; with a defined `out`, output 0 lands in its memory.
std::vector<NDArray> Dispatch(std::string_view op_name, std::span<const NDArray> inputs, const AttrMap& attrs,
                              NDArray* out) {
  const bool is_train = autograd::IsTraining();
  const Context ctx = CallContext(op_name, inputs);
  const PreparedCall& call = Lookup(op_name, inputs, attrs, is_train);
  if (ctx.is_gpu()) return DispatchOnGpu(call, op_name, inputs, out, ctx);
  // Lazy mode: a call that writes no memory, draws nothing and is not recorded waits
  // for the first read; anything else runs now, after what was deferred.
  if (lazy::Enabled() && !inputs.empty() && (out == nullptr || !out->defined()) && !call.dropout_step &&
      !call.mutates_inputs && !autograd::IsRecording()) {
    return lazy::Defer(*call.op, call.parsed, is_train, inputs, call.output_specs, ctx);
  }
  lazy::Flush();
  const detail::CompiledGraph& compiled = call.Compiled();
  std::vector<NDArray> with_step;
  if (call.dropout_step) {
    with_step.assign(inputs.begin(), inputs.end());
    with_step.push_back(random::NextDropoutStep());
  }
  const std::span<const NDArray> arrays = call.dropout_step ? std::span<const NDArray>(with_step) : inputs;
  std::vector<Tensor> values;
  values.reserve(arrays.size());
  for (const NDArray& array : arrays) values.push_back(array.tensor());
  std::vector<NDArray> outputs;
  outputs.reserve(compiled.executor->outputs().size());
  if (out != nullptr && out->defined()) {
    const Shape& result = compiled.executor->outputs().at(0).shape;
    if (out->shape() != result) {
      throw Error(std::string(op_name) + ": out= has shape " + ShapeToString(out->shape()) + ", the result " +
                  ShapeToString(result));
    }
    detail::ForWriting(out->chunk());  // a recorded result gets memory of its own first
    if (WritesInto(compiled, *out, inputs)) {
      detail::Run(compiled, values, {out->tensor()});
      outputs.push_back(*out);
    } else {
      std::vector<Tensor> results = detail::Run(compiled, values);
      detail::CopyInto(results.at(0), detail::ForWriting(out->chunk()));
      outputs.push_back(*out);
      for (size_t k = 1; k < results.size(); ++k) outputs.emplace_back(std::move(results[k]), ctx);
    }
  } else {
    for (Tensor& tensor : detail::Run(compiled, values)) outputs.emplace_back(std::move(tensor), ctx);
  }
  if (out != nullptr && out->defined()) {
    // The written array now stands for this result: recorded below, or cut from the tape.
    out->chunk().producer = nullptr;
    out->chunk().output_index = 0;
  }
  autograd::RecordOp(*call.op, call.parsed, is_train, arrays, outputs);
  return outputs;
}

}  // namespace

std::vector<NDArray> InvokeAll(std::string_view op_name, const std::vector<NDArray>& inputs, const AttrMap& attrs) {
  return Dispatch(op_name, inputs, attrs, nullptr);
}

NDArray Invoke(std::string_view op_name, const std::vector<NDArray>& inputs, const AttrMap& attrs, NDArray* out) {
  if (out != nullptr && out->defined() && autograd::IsRecording()) {
    if (out->chunk().producer != nullptr) {
      // As MXNet: Backward reads the recorded value, which out= would overwrite.
      throw Error(std::string(op_name) +
                  ": out= is the result of a recorded operator; in-place writes into recorded arrays are not "
                  "supported while recording");
    }
    for (const NDArray& input : inputs) {
      // The tape keeps inputs by handle: overwriting one would make its gradient wrong.
      if (input.chunk_ptr() == out->chunk_ptr()) {
        throw Error(std::string(op_name) + ": out= is one of the inputs, which autograd cannot record");
      }
    }
  }
  std::vector<NDArray> outputs = Dispatch(op_name, inputs, attrs, out);
  if (out != nullptr && !out->defined()) *out = outputs.at(0);
  return outputs.at(0);
}

}  // namespace kiln::nd
