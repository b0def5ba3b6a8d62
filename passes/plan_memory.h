// Memory planning over the execution plan. Every intermediate buffer (and every kernel's
// scratch) gets a byte offset in one arena, so a run needs a single allocation:
// - liveness over the steps (kernels) in execution order: a buffer lives from the step
//   that writes it to the last step that reads it;
// - views share their source's storage; an output takes an input's storage in place
//   where the step allows it (the registry's in-place pairs) and the input dies there;
// - two allocators, keeping the smaller arena: MXNet's size-keyed free list with a match
//   range (blocks reused by best fit, never split), and greedy-by-size offset packing
//   (TFLite's arena planner: largest first, each at the lowest offset free over its
//   lifetime).
// It reports the lower bound (the largest total of buffers live at one step) and what
// the arena would be without any reuse.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "runtime/kernel_abi.h"  // kArenaAlignment

namespace kiln {

// One kernel of the execution plan, as memory planning sees it.
struct MemoryStep {
  std::vector<size_t> reads;   // entry ids
  std::vector<size_t> writes;  // entry ids
  std::vector<int64_t> scratch_bytes;
  // (read index, write index): the write may take the read's storage if it dies here.
  std::vector<std::pair<int, int>> inplace;
};

struct MemoryProblem {
  std::vector<int64_t> entry_bytes;
  // Entries that live outside the arena (inputs, parameters, outputs).
  std::vector<bool> external;
  // Views: the entry whose storage this one shares (-1: none). Resolved transitively.
  std::vector<int64_t> alias_of;
  std::vector<MemoryStep> steps;
};

enum class MemoryPlanner { kFreeList, kGreedyBySize };
const char* MemoryPlannerName(MemoryPlanner planner);

struct StoragePlan {
  // Per entry: byte offset in the arena, or -1 (external, or never written).
  std::vector<int64_t> entry_offset;
  // Per step: byte offsets of its scratch buffers.
  std::vector<std::vector<int64_t>> scratch_offset;
  int64_t arena_bytes = 0;
  int64_t lower_bound_bytes = 0;
  int64_t no_reuse_bytes = 0;
  MemoryPlanner planner = MemoryPlanner::kFreeList;
  int64_t free_list_bytes = 0;
  int64_t greedy_bytes = 0;
  // (step, read entry, write entry) for every in-place reuse.
  struct Inplace {
    size_t step;
    size_t read;
    size_t write;
  };
  std::vector<Inplace> inplace;
};

// Throws kiln::Error when a buffer or the arena exceeds kiln's size limit.
StoragePlan PlanMemory(const MemoryProblem& problem);

}  // namespace kiln
