#include "passes/plan_memory.h"

#include <map>
#include <string>

#include "runtime/error.h"
#include "runtime/tensor.h"

namespace kiln {
namespace {

// Blocks are never split or merged (as in nnvm); a reused block grows to the largest
// request it serves.
class BlockAllocator {
 public:
  int Allocate(int64_t bytes) {
    // Best fit among free blocks at most 16x larger (nnvm's match range); else grow the
    // largest free block smaller than the request; else a new block.
    auto fit = free_.lower_bound(bytes);
    if (fit != free_.end() && fit->first <= bytes * kMatchRange) return Take(fit);
    if (fit != free_.begin() && !free_.empty()) {
      auto smaller = std::prev(fit);
      const int block = smaller->second;
      free_.erase(smaller);
      sizes_[block] = bytes;
      return block;
    }
    sizes_.push_back(bytes);
    return static_cast<int>(sizes_.size()) - 1;
  }

  void Release(int block) { free_.emplace(sizes_[block], block); }
  int64_t size(int block) const { return sizes_[block]; }
  const std::vector<int64_t>& sizes() const { return sizes_; }

 private:
  static constexpr int64_t kMatchRange = 16;

  int Take(std::multimap<int64_t, int>::iterator it) {
    const int block = it->second;
    free_.erase(it);
    return block;
  }

  std::vector<int64_t> sizes_;
  std::multimap<int64_t, int> free_;
};

int64_t Align(int64_t bytes) {
  if (bytes < 0 || bytes > static_cast<int64_t>(kMaxTensorBytes)) {
    throw Error("a buffer of " + std::to_string(bytes) + " bytes cannot be planned (limit " +
                std::to_string(kMaxTensorBytes) + ")");
  }
  return (bytes + kArenaAlignment - 1) / kArenaAlignment * kArenaAlignment;
}

}  // namespace

StoragePlan PlanMemory(const Graph& graph, const std::vector<int64_t>& entry_bytes, const std::vector<bool>& external,
                       const std::function<std::vector<int64_t>(size_t node_id)>& scratch_bytes) {
  const IndexedGraph& indexed = graph.indexed();
  const size_t num_entries = indexed.num_entries();
  std::vector<int> refcount(num_entries, 0);
  for (size_t id = 0; id < indexed.num_nodes(); ++id) {
    for (const auto& input : indexed.node(id).inputs) ++refcount[indexed.entry_id(input)];
  }

  BlockAllocator allocator;
  std::vector<int> entry_block(num_entries, -1);
  std::vector<std::vector<int>> scratch_block(indexed.num_nodes());
  StoragePlan plan;

  for (size_t id = 0; id < indexed.num_nodes(); ++id) {
    const Node& node = indexed.node(id);
    if (node.is_variable()) continue;
    std::vector<bool> donated(node.inputs.size(), false);
    const auto inplace = node.op->InplacePairs(node.attrs);
    for (uint32_t out = 0; out < node.num_outputs(); ++out) {
      const size_t entry = indexed.entry_id(id, out);
      if (external[entry]) continue;
      plan.unshared_bytes += Align(entry_bytes[entry]);
      for (const auto& [in, o] : inplace) {
        if (o != static_cast<int>(out) || in >= static_cast<int>(node.inputs.size()) || donated[in]) continue;
        const size_t in_entry = indexed.entry_id(node.inputs[in]);
        const int block = entry_block[in_entry];
        if (block < 0 || refcount[in_entry] != 1 || allocator.size(block) < entry_bytes[entry]) continue;
        entry_block[entry] = block;
        donated[in] = true;
        ++plan.inplace_count;
        break;
      }
      if (entry_block[entry] < 0) entry_block[entry] = allocator.Allocate(entry_bytes[entry]);
    }
    // Scratch lives while the kernel runs: it may not share with inputs or outputs.
    for (const int64_t bytes : scratch_bytes(id)) {
      scratch_block[id].push_back(allocator.Allocate(bytes));
      plan.unshared_bytes += Align(bytes);
    }
    for (const int block : scratch_block[id]) allocator.Release(block);
    for (size_t i = 0; i < node.inputs.size(); ++i) {
      const size_t in_entry = indexed.entry_id(node.inputs[i]);
      if (--refcount[in_entry] == 0 && entry_block[in_entry] >= 0 && !donated[i]) {
        allocator.Release(entry_block[in_entry]);
      }
    }
    // Outputs nobody reads are dead at once.
    for (uint32_t out = 0; out < node.num_outputs(); ++out) {
      const size_t entry = indexed.entry_id(id, out);
      if (refcount[entry] == 0 && entry_block[entry] >= 0) allocator.Release(entry_block[entry]);
    }
  }

  std::vector<int64_t> block_offset;
  for (const int64_t size : allocator.sizes()) {
    block_offset.push_back(plan.arena_bytes);
    // Every block is below kMaxTensorBytes (2^40), so the sum cannot overflow before
    // it passes the limit.
    plan.arena_bytes += Align(size);
    if (plan.arena_bytes > static_cast<int64_t>(kMaxTensorBytes)) {
      throw Error("the memory plan needs more than kiln's limit of " + std::to_string(kMaxTensorBytes) +
                  " bytes of intermediate storage");
    }
  }
  plan.entry_offset.assign(num_entries, -1);
  for (size_t entry = 0; entry < num_entries; ++entry) {
    if (entry_block[entry] >= 0) plan.entry_offset[entry] = block_offset[entry_block[entry]];
  }
  plan.scratch_offset.resize(indexed.num_nodes());
  for (size_t id = 0; id < indexed.num_nodes(); ++id) {
    for (const int block : scratch_block[id]) plan.scratch_offset[id].push_back(block_offset[block]);
  }
  return plan;
}

}  // namespace kiln
