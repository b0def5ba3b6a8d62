#include "passes/plan_memory.h"

#include <algorithm>
#include <functional>
#include <map>
#include <numeric>
#include <string>

#include "runtime/error.h"
#include "runtime/tensor.h"

namespace kiln {
namespace {

int64_t Align(int64_t bytes) {
  if (bytes < 0 || bytes > static_cast<int64_t>(kMaxTensorBytes)) {
    throw Error("a buffer of " + std::to_string(bytes) + " bytes cannot be planned (limit " +
                std::to_string(kMaxTensorBytes) + ")");
  }
  return (bytes + kArenaAlignment - 1) / kArenaAlignment * kArenaAlignment;
}

// A region of the arena with one lifetime: the entries that share it (views, in-place
// outputs), or one step's scratch buffer.
struct Storage {
  int64_t bytes = 0;  // aligned
  size_t first = 0;   // steps, inclusive
  size_t last = 0;
  int64_t offset = -1;
};

// Union-find over entries: views and in-place outputs join their source's storage.
class Storages {
 public:
  explicit Storages(size_t entries) : parent_(entries) { std::iota(parent_.begin(), parent_.end(), 0); }
  size_t Find(size_t entry) {
    while (parent_[entry] != entry) entry = parent_[entry] = parent_[parent_[entry]];
    return entry;
  }
  void Join(size_t entry, size_t into) { parent_[Find(entry)] = Find(into); }

 private:
  std::vector<size_t> parent_;
};

// MXNet's free list: blocks keyed by size, reused by best fit among blocks at most
// kMatchRange times larger, else the largest smaller free block grows; never split.
int64_t PlanFreeList(std::vector<Storage>& storages, size_t num_steps) {
  constexpr int64_t kMatchRange = 16;
  std::vector<int64_t> block_size;
  std::multimap<int64_t, size_t> free_blocks;
  std::vector<size_t> block_of(storages.size());
  std::vector<std::vector<size_t>> starting(num_steps), ending(num_steps);
  for (size_t s = 0; s < storages.size(); ++s) {
    starting[storages[s].first].push_back(s);
    ending[storages[s].last].push_back(s);
  }
  for (size_t step = 0; step < num_steps; ++step) {
    for (const size_t s : starting[step]) {
      const int64_t bytes = storages[s].bytes;
      auto fit = free_blocks.lower_bound(bytes);
      size_t block;
      if (fit != free_blocks.end() && fit->first <= bytes * kMatchRange) {
        block = fit->second;
        free_blocks.erase(fit);
      } else if (fit != free_blocks.begin() && !free_blocks.empty()) {
        const auto smaller = std::prev(fit);
        block = smaller->second;
        free_blocks.erase(smaller);
        block_size[block] = bytes;
      } else {
        block = block_size.size();
        block_size.push_back(bytes);
      }
      block_of[s] = block;
    }
    for (const size_t s : ending[step]) free_blocks.emplace(block_size[block_of[s]], block_of[s]);
  }
  std::vector<int64_t> block_offset(block_size.size());
  int64_t total = 0;
  for (size_t b = 0; b < block_size.size(); ++b) {
    block_offset[b] = total;
    total += block_size[b];
  }
  for (size_t s = 0; s < storages.size(); ++s) storages[s].offset = block_offset[block_of[s]];
  return total;
}

// TFLite's greedy by size: in `order` (largest first), each storage at the lowest offset
// that no storage already placed and alive at the same time covers.
int64_t PlaceGreedy(std::vector<Storage>& storages, const std::vector<size_t>& order) {
  std::vector<size_t> placed;
  int64_t total = 0;
  for (const size_t s : order) {
    Storage& storage = storages[s];
    std::vector<std::pair<int64_t, int64_t>> taken;  // [offset, end) of overlapping lifetimes
    for (const size_t p : placed) {
      const Storage& other = storages[p];
      if (other.first <= storage.last && storage.first <= other.last) {
        taken.emplace_back(other.offset, other.offset + other.bytes);
      }
    }
    std::sort(taken.begin(), taken.end());
    int64_t offset = 0;
    for (const auto& [begin, end] : taken) {
      if (begin - offset >= storage.bytes) break;
      offset = std::max(offset, end);
    }
    storage.offset = offset;
    total = std::max(total, offset + storage.bytes);
    placed.push_back(s);
  }
  return total;
}

// Greedy placement under a few orders (by size; by size times lifetime; by size within
// the steps of the highest demand first), keeping the smallest arena.
int64_t PlanGreedyBySize(std::vector<Storage>& storages, const std::vector<int64_t>& live) {
  const auto lifetime = [&](size_t s) { return static_cast<int64_t>(storages[s].last - storages[s].first + 1); };
  const auto peak = [&](size_t s) {
    int64_t most = 0;
    for (size_t step = storages[s].first; step <= storages[s].last; ++step) most = std::max(most, live[step]);
    return most;
  };
  using Key = std::function<std::pair<int64_t, int64_t>(size_t)>;
  const std::vector<Key> keys = {
      [&](size_t s) { return std::pair{storages[s].bytes, -static_cast<int64_t>(storages[s].first)}; },
      [&](size_t s) { return std::pair{storages[s].bytes * lifetime(s), storages[s].bytes}; },
      [&](size_t s) { return std::pair{peak(s), storages[s].bytes}; },
  };
  int64_t best = -1;
  std::vector<Storage> best_storages;
  for (const Key& key : keys) {
    std::vector<size_t> order(storages.size());
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return key(a) > key(b); });
    std::vector<Storage> trial = storages;
    const int64_t total = PlaceGreedy(trial, order);
    if (best < 0 || total < best) {
      best = total;
      best_storages = std::move(trial);
    }
  }
  storages = std::move(best_storages);
  return std::max<int64_t>(best, 0);
}

}  // namespace

const char* MemoryPlannerName(MemoryPlanner planner) {
  return planner == MemoryPlanner::kFreeList ? "free_list" : "greedy_by_size";
}

StoragePlan PlanMemory(const MemoryProblem& problem) {
  const size_t num_entries = problem.entry_bytes.size();
  const size_t num_steps = problem.steps.size();
  Storages sets(num_entries);
  for (size_t entry = 0; entry < num_entries; ++entry) {
    if (problem.alias_of[entry] >= 0) sets.Join(entry, static_cast<size_t>(problem.alias_of[entry]));
  }
  const auto is_arena = [&](size_t entry) { return !problem.external[sets.Find(entry)]; };
  std::vector<size_t> alias_root(num_entries);
  for (size_t entry = 0; entry < num_entries; ++entry) alias_root[entry] = sets.Find(entry);

  // Last reader of every storage (views included), before any in-place joining.
  constexpr size_t kNever = SIZE_MAX;
  std::vector<size_t> last_read(num_entries, kNever);
  for (size_t step = 0; step < num_steps; ++step) {
    for (const size_t entry : problem.steps[step].reads) last_read[sets.Find(entry)] = step;
  }
  // Lifetimes of the alias classes (views with their source), for the lower bound.
  std::map<size_t, Storage> classes;
  for (size_t step = 0; step < num_steps; ++step) {
    for (const auto* list : {&problem.steps[step].reads, &problem.steps[step].writes}) {
      for (const size_t entry : *list) {
        if (!is_arena(entry)) continue;
        const auto [it, inserted] = classes.emplace(sets.Find(entry), Storage{0, step, step, -1});
        it->second.bytes = std::max(it->second.bytes, Align(problem.entry_bytes[entry]));
        it->second.last = std::max(it->second.last, step);
      }
    }
  }
  StoragePlan plan;
  // In place: the read's storage dies at this step and fits the write.
  for (size_t step = 0; step < num_steps; ++step) {
    const MemoryStep& s = problem.steps[step];
    std::vector<bool> donated(s.reads.size(), false);
    std::vector<bool> placed(s.writes.size(), false);
    for (const auto& [read, write] : s.inplace) {
      if (read < 0 || write < 0 || static_cast<size_t>(read) >= s.reads.size() ||
          static_cast<size_t>(write) >= s.writes.size() || donated[read] || placed[write]) {
        continue;
      }
      const size_t in = s.reads[read];
      const size_t out = s.writes[write];
      const size_t in_set = sets.Find(in);
      if (!is_arena(in) || !is_arena(out) || sets.Find(out) != out || last_read[in_set] != step) continue;
      // Every entry of the read's storage (views included) must be as large as the write.
      if (problem.entry_bytes[in] < problem.entry_bytes[out]) continue;
      // The same storage read through another argument must not be donated twice.
      bool read_twice = false;
      for (size_t k = 0; k < s.reads.size(); ++k) {
        read_twice = read_twice || (static_cast<int>(k) != read && donated[k] && sets.Find(s.reads[k]) == in_set);
      }
      if (read_twice) continue;
      sets.Join(out, in);
      if (last_read[out] != kNever) last_read[in_set] = std::max(step, last_read[out]);
      donated[read] = placed[write] = true;
      plan.inplace.push_back({step, in, out});
    }
  }

  // Storages with lifetimes.
  std::vector<Storage> storages;
  std::map<size_t, size_t> storage_of_set;
  const auto touch = [&](size_t entry, size_t step) {
    if (!is_arena(entry)) return;
    const size_t set = sets.Find(entry);
    const auto [it, inserted] = storage_of_set.emplace(set, storages.size());
    if (inserted) storages.push_back({0, step, step, -1});
    Storage& storage = storages[it->second];
    storage.bytes = std::max(storage.bytes, Align(problem.entry_bytes[entry]));
    storage.first = std::min(storage.first, step);
    storage.last = std::max(storage.last, step);
  };
  std::vector<std::vector<size_t>> scratch_storage(num_steps);
  for (size_t step = 0; step < num_steps; ++step) {
    const MemoryStep& s = problem.steps[step];
    for (const size_t entry : s.writes) {
      touch(entry, step);
      if (is_arena(entry)) plan.no_reuse_bytes += Align(problem.entry_bytes[entry]);
    }
    for (const size_t entry : s.reads) touch(entry, step);
    for (const int64_t bytes : s.scratch_bytes) {
      scratch_storage[step].push_back(storages.size());
      storages.push_back({Align(bytes), step, step, -1});
      plan.no_reuse_bytes += Align(bytes);
    }
  }

  // The lower bound: the most bytes of buffers live at one step (scratch included); a
  // buffer handed over in place counts once at the step of the handover.
  std::vector<int64_t> live(num_steps, 0);
  for (const auto& [set, storage] : classes) {
    for (size_t step = storage.first; step <= storage.last; ++step) live[step] += storage.bytes;
  }
  for (size_t step = 0; step < num_steps; ++step) {
    for (const int64_t bytes : problem.steps[step].scratch_bytes) live[step] += Align(bytes);
  }
  for (const auto& inplace : plan.inplace) {
    // Classes are keyed by their alias roots before the in-place joins.
    const Storage& read = classes.at(alias_root[inplace.read]);
    const Storage& write = classes.at(alias_root[inplace.write]);
    live[inplace.step] -= std::min(read.bytes, write.bytes);
  }
  for (const int64_t bytes : live) plan.lower_bound_bytes = std::max(plan.lower_bound_bytes, bytes);

  std::vector<Storage> free_list = storages;
  std::vector<Storage> greedy = storages;
  plan.free_list_bytes = PlanFreeList(free_list, num_steps);
  plan.greedy_bytes = PlanGreedyBySize(greedy, live);
  const bool use_greedy = plan.greedy_bytes < plan.free_list_bytes;
  plan.planner = use_greedy ? MemoryPlanner::kGreedyBySize : MemoryPlanner::kFreeList;
  const std::vector<Storage>& chosen = use_greedy ? greedy : free_list;
  plan.arena_bytes = std::min(plan.free_list_bytes, plan.greedy_bytes);
  if (plan.arena_bytes > static_cast<int64_t>(kMaxTensorBytes)) {
    throw Error("the memory plan needs " + std::to_string(plan.arena_bytes) +
                " bytes of intermediate storage, more than kiln's limit of " + std::to_string(kMaxTensorBytes));
  }
  plan.entry_offset.assign(num_entries, -1);
  for (size_t entry = 0; entry < num_entries; ++entry) {
    if (!is_arena(entry)) continue;
    const auto it = storage_of_set.find(sets.Find(entry));
    if (it != storage_of_set.end()) plan.entry_offset[entry] = chosen[it->second].offset;
  }
  plan.scratch_offset.resize(num_steps);
  for (size_t step = 0; step < num_steps; ++step) {
    for (const size_t s : scratch_storage[step]) plan.scratch_offset[step].push_back(chosen[s].offset);
  }
  return plan;
}

}  // namespace kiln
