#include "tests/graph_runner.h"

#include <algorithm>
#include <cstring>
#include <limits>
#include <set>

#include "codegen/kir_interpreter.h"
#include "runtime/error.h"
#include "runtime/gemm_step.h"
#include "runtime/param_file.h"
#include "tests/lower_test_util.h"

namespace kiln::testing {

std::vector<Tensor> RunWithInterpreter(const LoweredGraph& lowered, const std::map<std::string, Tensor>& inputs,
                                       const std::map<std::string, Tensor>& bound) {
  const proto::ArtifactProto& artifact = lowered.artifact;
  std::vector<Tensor> input_values;
  for (const auto& spec : artifact.inputs()) input_values.push_back(inputs.at(spec.name()));
  std::vector<Tensor> params;
  for (int i = 0; i < artifact.params_size(); ++i) {
    params.push_back(i < artifact.param_values_size()
                         ? TensorFromProto(artifact.param_values(i), artifact.params(i).name())
                         : bound.at(artifact.params(i).name()));
  }
  std::vector<Tensor> outputs;
  for (const auto& spec : artifact.outputs()) {
    outputs.emplace_back(Shape(spec.shape().begin(), spec.shape().end()), static_cast<DType>(spec.dtype()));
  }
  std::vector<char> arena(artifact.arena_bytes() + 64, static_cast<char>(0xFF));  // NaN bytes
  const auto pointer = [&](const proto::BufferRef& ref) -> void* {
    switch (ref.kind()) {
      case proto::BufferRef::ARENA: return arena.data() + ref.offset();
      case proto::BufferRef::INPUT: return input_values.at(ref.index()).data();
      case proto::BufferRef::PARAM: return params.at(ref.index()).data();
      case proto::BufferRef::OUTPUT: return outputs.at(ref.index()).data();
      default: throw Error("unknown buffer kind");
    }
  };
  // Library steps have no kernel of their own: lowered.kernels holds the others, in order.
  size_t kernel = 0;
  for (const auto& call : artifact.kernels()) {
    std::vector<void*> buffers;
    for (const auto& arg : call.args()) buffers.push_back(pointer(arg));
    if (call.has_gemm()) {
      const proto::GemmCallProto& gemm = call.gemm();
      RunGemmOnHost(gemm, static_cast<const float*>(buffers.at(gemm.a_arg())),
                    static_cast<const float*>(buffers.at(gemm.b_arg())), static_cast<float*>(buffers.at(gemm.c_arg())),
                    TestRuntimeApi(), 0, gemm.batch());
      continue;
    }
    InterpretKernel(lowered.kernels.at(kernel++), buffers, 0, call.parallel_extent(), TestRuntimeApi());
  }
  return outputs;
}

namespace {

int64_t Aligned(int64_t bytes) {
  return (bytes + kArenaAlignment - 1) / kArenaAlignment * kArenaAlignment;
}

}  // namespace

std::string CheckMemoryPlan(const MemoryProblem& problem, const StoragePlan& plan) {
  const auto root = [&](size_t entry) {
    while (problem.alias_of[entry] >= 0) entry = static_cast<size_t>(problem.alias_of[entry]);
    return entry;
  };
  // Alias classes in the arena, with their lifetimes.
  struct Class {
    size_t first = SIZE_MAX, last = 0;
    int64_t bytes = 0;
    int64_t offset = -1;
  };
  std::map<size_t, Class> classes;
  for (size_t step = 0; step < problem.steps.size(); ++step) {
    const MemoryStep& s = problem.steps[step];
    for (const auto* list : {&s.reads, &s.writes}) {
      for (const size_t entry : *list) {
        const size_t r = root(entry);
        if (problem.external[r]) continue;
        Class& c = classes[r];
        c.first = std::min(c.first, step);
        c.last = std::max(c.last, step);
        c.bytes = std::max(c.bytes, problem.entry_bytes[entry]);
        if (plan.entry_offset[entry] < 0) return "entry " + std::to_string(entry) + " has no offset";
        if (c.offset >= 0 && c.offset != plan.entry_offset[entry]) {
          return "entry " + std::to_string(entry) + " is a view of entry " + std::to_string(r) + " at another offset";
        }
        c.offset = plan.entry_offset[entry];
      }
    }
  }
  // In-place reuses the plan claims, each checked against the step's allowance.
  std::set<std::pair<size_t, size_t>> donations;  // (read class, write class)
  for (const auto& inplace : plan.inplace) {
    const MemoryStep& s = problem.steps.at(inplace.step);
    bool allowed = false;
    for (const auto& [read, write] : s.inplace) {
      allowed = allowed || (s.reads.at(static_cast<size_t>(read)) == inplace.read &&
                            s.writes.at(static_cast<size_t>(write)) == inplace.write);
    }
    if (!allowed) return "in-place at step " + std::to_string(inplace.step) + " is not allowed by the step";
    const size_t read_class = root(inplace.read);
    if (classes.at(read_class).last != inplace.step) {
      return "in-place at step " + std::to_string(inplace.step) + ": the read entry lives on";
    }
    if (problem.entry_bytes[inplace.read] < problem.entry_bytes[inplace.write]) {
      return "in-place at step " + std::to_string(inplace.step) + ": the write is larger than the read";
    }
    donations.emplace(read_class, root(inplace.write));
  }
  // Every class fits, and two that overlap in memory do not overlap in time, except a
  // donation at the step where one ends and the other begins.
  std::vector<std::pair<size_t, Class>> list(classes.begin(), classes.end());
  for (const auto& [r, c] : list) {
    if (c.offset + c.bytes > plan.arena_bytes) return "entry " + std::to_string(r) + " ends past the arena";
  }
  // Donation chains: a class that took another's storage may pass it on; classes in one
  // chain share memory one after another.
  for (size_t a = 0; a < list.size(); ++a) {
    for (size_t b = a + 1; b < list.size(); ++b) {
      const Class& x = list[a].second;
      const Class& y = list[b].second;
      const bool memory = x.offset < y.offset + y.bytes && y.offset < x.offset + x.bytes;
      const bool time = x.first <= y.last && y.first <= x.last;
      if (!memory || !time) continue;
      const bool handover = (donations.count({list[a].first, list[b].first}) && x.last == y.first) ||
                            (donations.count({list[b].first, list[a].first}) && y.last == x.first);
      if (!handover) {
        return "entries " + std::to_string(list[a].first) + " and " + std::to_string(list[b].first) +
               " overlap in the arena while both live";
      }
    }
  }
  // Scratch: alone at its step.
  for (size_t step = 0; step < problem.steps.size(); ++step) {
    const auto& sizes = problem.steps[step].scratch_bytes;
    for (size_t i = 0; i < sizes.size(); ++i) {
      const int64_t offset = plan.scratch_offset.at(step).at(i);
      const int64_t end = offset + Aligned(sizes[i]);
      if (end > plan.arena_bytes) return "scratch of step " + std::to_string(step) + " ends past the arena";
      for (const auto& [r, c] : list) {
        if (c.first <= step && step <= c.last && offset < c.offset + c.bytes && c.offset < end) {
          return "scratch of step " + std::to_string(step) + " overlaps entry " + std::to_string(r);
        }
      }
      for (size_t j = 0; j < i; ++j) {
        const int64_t other = plan.scratch_offset[step][j];
        if (offset < other + Aligned(sizes[j]) && other < end) return "two scratch buffers overlap";
      }
    }
  }
  // The lower bound: bytes live per step, a donated storage counted once.
  int64_t bound = 0;
  for (size_t step = 0; step < problem.steps.size(); ++step) {
    int64_t live = 0;
    for (const int64_t bytes : problem.steps[step].scratch_bytes) live += Aligned(bytes);
    for (const auto& [r, c] : list) {
      if (c.first <= step && step <= c.last) live += Aligned(c.bytes);
    }
    for (const auto& [read, write] : donations) {
      if (classes.at(read).last == step)
        live -= std::min(Aligned(classes.at(read).bytes), Aligned(classes.at(write).bytes));
    }
    bound = std::max(bound, live);
  }
  if (plan.arena_bytes < bound) return "the arena is below the lower bound";
  if (plan.lower_bound_bytes != bound) {
    return "the reported lower bound " + std::to_string(plan.lower_bound_bytes) + " is not " + std::to_string(bound);
  }
  return "";
}

}  // namespace kiln::testing
