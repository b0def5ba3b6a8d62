#include "ndarray/invoke.h"

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <set>
#include <utility>

#include "codegen/compile_cache.h"
#include "codegen/compiler.h"
#include "graph/op.h"
#include "ndarray/autograd.h"

namespace kiln::nd {
namespace {

struct KernelCache {
  std::mutex mutex;
  std::map<std::string, std::shared_ptr<const detail::CompiledGraph>> entries;
  KernelCacheStats stats;
  std::optional<std::string> dir;  // unset: CompileCache::DefaultDir()
};

KernelCache& Cache() {
  static KernelCache cache;
  return cache;
}

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

namespace detail {

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
  for (const auto& spec : compiled->executor->inputs()) {
    if (mutated.count(spec.name)) compiled->mutated_inputs.push_back(compiled->input_order.size());
    size_t position = 0;
    while (position < input_names.size() && input_names[position] != spec.name) ++position;
    if (position == input_names.size()) throw Error("kernel cache: unknown input '" + spec.name + "'");
    compiled->input_order.push_back(position);
  }
  cache.entries.emplace(key, compiled);
  return compiled;
}

std::vector<Tensor> Run(const CompiledGraph& compiled, const std::vector<Tensor>& values) {
  std::vector<Tensor> inputs;
  inputs.reserve(compiled.input_order.size());
  for (const size_t position : compiled.input_order) inputs.push_back(Aligned(values.at(position)));
  std::vector<Tensor> outputs = compiled.executor->Run(inputs);
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
  return Cache().stats;
}

void ClearKernelCache() {
  const std::lock_guard lock(Cache().mutex);
  Cache().entries.clear();
  Cache().stats = {};
}

std::vector<NDArray> InvokeAll(const std::string& op_name, const std::vector<NDArray>& given_inputs,
                               const AttrMap& attrs) {
  const OpDef* resolved = &OpRegistry::Global().Get(op_name);
  std::map<std::string, AttrValue> given;
  for (const auto& [name, value] : attrs) given[name] = value.value;
  if (resolved->FindField("num_args") != nullptr && !given.count("num_args")) {
    given["num_args"] = static_cast<int64_t>(given_inputs.size());
  }
  Attrs parsed = resolved->ParseAttrs(given, op_name);
  const std::vector<NDArray>* inputs_ptr = &given_inputs;
  std::vector<NDArray> with_step;
  if (resolved->name() == "Dropout" && given_inputs.size() == 1 && parsed.Float("p") > 0 &&
      (autograd::IsTraining() || parsed.Str("mode") == "always")) {
    // One compiled kernel would draw the same mask on every call: _dropout_step reads
    // its position in the random stream from an input, a fresh step per call.
    resolved = &OpRegistry::Global().Get("_dropout_step");
    parsed = resolved->ParseAttrs(given, op_name);
    with_step = {given_inputs[0], random::NextDropoutStep()};
    inputs_ptr = &with_step;
  }
  const OpDef& op = *resolved;
  const std::vector<NDArray>& inputs = *inputs_ptr;
  const std::vector<std::string> names = op.InputNames(parsed);
  if (names.size() != inputs.size()) {
    std::string expected;
    for (const auto& name : names) expected += (expected.empty() ? "" : ", ") + name;
    throw Error(op.name() + ": expects " + std::to_string(names.size()) + " inputs (" + expected + "), given " +
                std::to_string(inputs.size()));
  }
  std::vector<TensorSpec> specs;
  std::vector<std::string> input_names;
  std::vector<Tensor> values;
  for (size_t i = 0; i < inputs.size(); ++i) {
    if (!inputs[i].defined()) throw Error(op.name() + ": argument '" + names[i] + "' is an undefined array");
    inputs[i].context().CheckAvailable();
    input_names.push_back("in" + std::to_string(i));
    specs.push_back({input_names.back(), inputs[i].dtype(), inputs[i].shape()});
    values.push_back(inputs[i].tensor());
  }
  std::vector<Shape> out_shapes;
  std::vector<DType> out_types;
  InferOutputs(op, parsed, inputs, out_shapes, out_types);

  const bool is_train = autograd::IsTraining();
  const std::string key =
      "op:" + op.name() + "|" + detail::CanonicalAttrs(parsed) + "|" + SpecsText(specs) + (is_train ? "|train" : "");
  const auto build = [&] {
    std::vector<NodeEntry> entries;
    for (const auto& spec : specs) entries.push_back({Node::Variable(spec.name, spec.shape, spec.dtype), 0});
    const NodePtr node = Node::Create(op, op.name(), parsed, std::move(entries));
    Graph graph;
    for (uint32_t k = 0; k < node->num_outputs(); ++k) graph.outputs.push_back({node, k});
    return graph;
  };
  const auto compiled = detail::GetOrCompile(key, build, input_names, specs, is_train);
  std::vector<NDArray> outputs;
  for (Tensor& tensor : detail::Run(*compiled, values))
    outputs.emplace_back(std::move(tensor), inputs.empty() ? Context::cpu() : inputs[0].context());
  autograd::RecordOp(op, parsed, is_train, inputs, outputs);
  return outputs;
}

NDArray Invoke(const std::string& op_name, const std::vector<NDArray>& inputs, const AttrMap& attrs, NDArray* out) {
  if (out != nullptr && out->defined() && autograd::IsRecording()) {
    for (const NDArray& input : inputs) {
      // The tape keeps inputs by handle: overwriting one would make its gradient wrong.
      if (input.chunk_ptr() == out->chunk_ptr()) {
        throw Error(op_name + ": out= is one of the inputs, which autograd cannot record");
      }
    }
  }
  std::vector<NDArray> outputs = InvokeAll(op_name, inputs, attrs);
  if (out == nullptr) return outputs.at(0);
  if (!out->defined()) {
    *out = outputs.at(0);
    return *out;
  }
  const NDArray& result = outputs.at(0);
  if (out->shape() != result.shape()) {
    throw Error(op_name + ": out= has shape " + ShapeToString(out->shape()) + ", the result " +
                ShapeToString(result.shape()));
  }
  detail::CopyInto(result.tensor(), out->chunk().data);
  // The written array now stands for the recorded result.
  out->chunk().producer = result.chunk().producer;
  out->chunk().output_index = result.chunk().output_index;
  return *out;
}

}  // namespace kiln::nd
