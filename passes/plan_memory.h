// Memory planning, in the manner of nnvm's PlanMemory: walk the nodes in topological
// order with per-entry reference counts; an output may take an input's storage in place
// when the operator allows it and that input dies there; freed blocks go to a
// size-keyed free list and are reused by the best fit. Every block then gets an offset
// in one arena, so a run needs a single allocation.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "graph/graph.h"
#include "runtime/kernel_abi.h"  // kArenaAlignment

namespace kiln {

struct StoragePlan {
  // Per entry id: byte offset in the arena, or -1 for entries that live outside it
  // (graph inputs, parameters, outputs: the `external` entries).
  std::vector<int64_t> entry_offset;
  // Per node id: byte offsets of its kernel's scratch buffers.
  std::vector<std::vector<int64_t>> scratch_offset;
  int64_t arena_bytes = 0;
  // What the arena would be without any reuse, for reports.
  int64_t unshared_bytes = 0;
  // Entries that took an input's storage in place.
  int64_t inplace_count = 0;
};

// `entry_bytes` gives each entry's size; `external` marks entries not to plan;
// `scratch_bytes(node_id)` gives the sizes of a node's scratch buffers.
StoragePlan PlanMemory(const Graph& graph, const std::vector<int64_t>& entry_bytes, const std::vector<bool>& external,
                       const std::function<std::vector<int64_t>(size_t node_id)>& scratch_bytes);

}  // namespace kiln
