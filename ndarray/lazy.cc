#include "ndarray/lazy.h"

#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "ndarray/invoke.h"

namespace kiln::nd {
namespace lazy {

// One deferred call: its operator, and where each input comes from: an earlier call of
// the same graph, or a concrete array (held until the graph runs).
struct PendingInput {
  size_t node = 0;
  uint32_t output = 0;
  std::shared_ptr<detail::Chunk> leaf;  // set for a concrete array
};
struct PendingNode {
  const OpDef* op = nullptr;
  Attrs attrs;
  std::vector<PendingInput> inputs;
  // The results' arrays, not held: one no handle holds any more is never written.
  std::vector<std::weak_ptr<detail::Chunk>> outputs;
};

struct PendingGraph {
  std::mutex mutex;
  bool is_train = false;
  std::vector<PendingNode> nodes;
  // Whether `nodes` is non-empty, readable without the lock: every eager call and write
  // asks (Flush), and nearly always nothing is pending.
  std::atomic<bool> has_pending{false};
};

namespace {

std::atomic<bool> g_enabled{[] {
  const char* eager = std::getenv("KILN_EAGER");
  return eager == nullptr || std::strcmp(eager, "0") == 0 || *eager == '\0';
}()};

// Pending calls a graph holds at most: the next call runs them first.
constexpr size_t kMaxPendingCalls = 1024;

std::atomic<int64_t> g_deferred{0};
std::atomic<int64_t> g_flushes{0};
std::atomic<int64_t> g_skipped{0};

// This thread's graph; arrays it computes keep it alive past the thread.
// Runs what a thread left pending when it exits: its results may have been handed to
// other threads, and the graph's concrete inputs may point back at it (a cycle that
// would otherwise keep both alive).
struct ThreadGraphHolder {
  std::shared_ptr<PendingGraph> graph = std::make_shared<PendingGraph>();
  ~ThreadGraphHolder();
};

std::shared_ptr<PendingGraph>& ThreadGraph() {
  thread_local ThreadGraphHolder holder;
  return holder.graph;
}

// Runs `graph` (its mutex held): one compiled executable for every pending call, whose
// outputs are the results still held; each written into its array's memory.
void RunLocked(PendingGraph& graph) {
  if (graph.nodes.empty()) return;
  struct Result {
    size_t node;
    uint32_t output;
    std::shared_ptr<detail::Chunk> chunk;
  };
  std::vector<Result> results;
  for (size_t i = 0; i < graph.nodes.size(); ++i) {
    for (uint32_t k = 0; k < graph.nodes[i].outputs.size(); ++k) {
      if (auto chunk = graph.nodes[i].outputs[k].lock()) results.push_back({i, k, std::move(chunk)});
    }
  }
  if (results.empty()) {
    graph.nodes.clear();
    graph.has_pending.store(false, std::memory_order_release);
    g_skipped.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  // The calls the held results need (earlier ones feed later ones), renumbered.
  std::vector<bool> live(graph.nodes.size(), false);
  for (const Result& result : results) live[result.node] = true;
  for (size_t i = graph.nodes.size(); i-- > 0;) {
    if (!live[i]) continue;
    for (const PendingInput& input : graph.nodes[i].inputs) {
      if (!input.leaf) live[input.node] = true;
    }
  }
  std::vector<size_t> order;  // live calls, in call order
  std::vector<size_t> position(graph.nodes.size(), 0);
  for (size_t i = 0; i < graph.nodes.size(); ++i) {
    if (!live[i]) continue;
    position[i] = order.size();
    order.push_back(i);
  }
  // The concrete inputs, one variable per array; the key spells the whole structure.
  std::vector<std::shared_ptr<detail::Chunk>> leaves;
  std::map<const detail::Chunk*, size_t> leaf_index;
  std::vector<std::string> input_names;
  std::vector<TensorSpec> specs;
  std::string key = graph.is_train ? "lazy|train|" : "lazy|";
  for (const size_t i : order) {
    const PendingNode& node = graph.nodes[i];
    key += node.op->name() + "(" + detail::CanonicalAttrs(node.attrs) + ")";
    for (const PendingInput& input : node.inputs) {
      if (!input.leaf) {
        key += "n" + std::to_string(position[input.node]) + "." + std::to_string(input.output) + ",";
        continue;
      }
      auto [it, added] = leaf_index.emplace(input.leaf.get(), leaves.size());
      if (added) {
        leaves.push_back(input.leaf);
        input_names.push_back("in" + std::to_string(it->second));
        specs.push_back({input_names.back(), input.leaf->data.dtype(), input.leaf->data.shape()});
        key += ShapeToString(specs.back().shape) + std::string(DTypeName(specs.back().dtype));
      }
      key += "v" + std::to_string(it->second) + ",";
    }
    key += ";";
  }
  key += "->";
  for (const Result& result : results) {
    key += std::to_string(position[result.node]) + "." + std::to_string(result.output) + ",";
  }

  const auto build = [&] {
    std::vector<NodeEntry> variables;
    for (const TensorSpec& spec : specs) variables.push_back({Node::Variable(spec.name, spec.shape, spec.dtype), 0});
    std::vector<NodePtr> nodes;
    for (const size_t i : order) {
      const PendingNode& pending = graph.nodes[i];
      std::vector<NodeEntry> inputs;
      for (const PendingInput& input : pending.inputs) {
        inputs.push_back(input.leaf ? variables[leaf_index.at(input.leaf.get())]
                                    : NodeEntry{nodes.at(position[input.node]), input.output});
      }
      nodes.push_back(Node::Create(*pending.op, "n" + std::to_string(nodes.size()), pending.attrs, std::move(inputs)));
    }
    Graph built;
    for (const Result& result : results) built.outputs.push_back({nodes[position[result.node]], result.output});
    return built;
  };
  try {
    const auto compiled = detail::GetOrCompile(key, build, input_names, specs, graph.is_train);
    std::vector<Tensor> values;
    for (const auto& leaf : leaves) values.push_back(leaf->data);
    std::vector<Tensor> outputs;
    for (const Result& result : results) outputs.push_back(result.chunk->data);
    detail::Run(*compiled, values, std::move(outputs));
  } catch (...) {
    // The results stay pending with the error, which every read of them rethrows; the
    // graph starts afresh for the thread's next calls.
    for (const Result& result : results) result.chunk->pending_error = std::current_exception();
    graph.nodes.clear();
    graph.has_pending.store(false, std::memory_order_release);
    throw;
  }
  for (const Result& result : results) result.chunk->pending.store(false, std::memory_order_release);
  graph.nodes.clear();
  graph.has_pending.store(false, std::memory_order_release);
  g_flushes.fetch_add(1, std::memory_order_relaxed);
}

}  // namespace

bool Enabled() {
  return g_enabled.load(std::memory_order_relaxed);
}

void SetEnabled(bool enabled) {
  if (!enabled) Flush();
  g_enabled.store(enabled, std::memory_order_relaxed);
}

std::vector<NDArray> Defer(const OpDef& op, const Attrs& attrs, bool is_train, std::span<const NDArray> inputs,
                           std::span<const TensorSpec> output_specs, Context ctx) {
  const std::shared_ptr<PendingGraph>& graph = ThreadGraph();
  // Inputs pending in another thread's graph are computed first, before this graph's
  // lock is taken (a thread holds one graph's lock at a time).
  for (const NDArray& input : inputs) {
    detail::Chunk& chunk = input.chunk();
    if (chunk.pending_graph != graph) detail::Ready(chunk);
  }
  const std::lock_guard lock(graph->mutex);
  // A program that never reads would grow the graph (and keep its inputs) forever.
  if ((!graph->nodes.empty() && graph->is_train != is_train) || graph->nodes.size() >= kMaxPendingCalls) {
    RunLocked(*graph);
  }
  graph->is_train = is_train;
  PendingNode node;
  node.op = &op;
  node.attrs = attrs;
  for (const NDArray& input : inputs) {
    const detail::Chunk& chunk = input.chunk();
    // Still pending in this graph (stable under its lock): read from its call.
    if (chunk.pending.load(std::memory_order_acquire) && chunk.pending_graph == graph) {
      node.inputs.push_back({chunk.pending_node, chunk.pending_output, nullptr});
    } else {
      node.inputs.push_back({0, 0, input.chunk_ptr()});
    }
  }
  std::vector<NDArray> outputs;
  for (uint32_t k = 0; k < output_specs.size(); ++k) {
    auto chunk = std::make_shared<detail::Chunk>();
    chunk->data = Tensor(output_specs[k].shape, output_specs[k].dtype);
    chunk->ctx = ctx;
    chunk->pending_graph = graph;
    chunk->pending_node = graph->nodes.size();
    chunk->pending_output = k;
    chunk->pending.store(true, std::memory_order_release);
    node.outputs.push_back(chunk);
    outputs.emplace_back(std::move(chunk));
  }
  graph->nodes.push_back(std::move(node));
  graph->has_pending.store(true, std::memory_order_release);
  g_deferred.fetch_add(1, std::memory_order_relaxed);
  return outputs;
}

void Flush() {
  PendingGraph& graph = *ThreadGraph();
  if (!graph.has_pending.load(std::memory_order_acquire)) return;
  const std::lock_guard lock(graph.mutex);
  RunLocked(graph);
}

void Materialize(detail::Chunk& chunk) {
  if (!chunk.pending.load(std::memory_order_acquire) || chunk.pending_graph == nullptr) return;
  PendingGraph& graph = *chunk.pending_graph;
  const std::lock_guard lock(graph.mutex);
  if (!chunk.pending.load(std::memory_order_acquire)) return;
  if (chunk.pending_error) std::rethrow_exception(chunk.pending_error);
  RunLocked(graph);
}

ThreadGraphHolder::~ThreadGraphHolder() {
  try {
    const std::lock_guard lock(graph->mutex);
    RunLocked(*graph);
  } catch (...) {
    // Reads of the results rethrow the error; nothing else can be done at thread exit.
  }
}

Stats GetStats() {
  return {g_deferred.load(std::memory_order_relaxed), g_flushes.load(std::memory_order_relaxed),
          g_skipped.load(std::memory_order_relaxed)};
}

void ResetStats() {
  g_deferred.store(0, std::memory_order_relaxed);
  g_flushes.store(0, std::memory_order_relaxed);
  g_skipped.store(0, std::memory_order_relaxed);
}

}  // namespace lazy

Tensor& detail::ForWriting(Chunk& chunk) {
  lazy::Flush();
  Ready(chunk);
  if (chunk.producer != nullptr) {
    // A recorded result: the tape keeps the value for Backward, so the array gets memory
    // of its own (copy on write) and, now written, stands for no recorded call.
    chunk.data = chunk.data.Clone();
    chunk.producer = nullptr;
    chunk.output_index = 0;
  }
  return chunk.data;
}

DeviceTensor& detail::ForWritingOnDevice(Chunk& chunk) {
  if (chunk.producer != nullptr) {
    // As ForWriting: the tape keeps the recorded value, the array gets memory of its own.
    chunk.device = chunk.device.CopyTo(chunk.ctx);
    chunk.producer = nullptr;
    chunk.output_index = 0;
  }
  return chunk.device;
}

}  // namespace kiln::nd
