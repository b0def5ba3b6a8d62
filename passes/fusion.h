// Fusion groups: the partition of a graph's operator nodes that code generation lowers
// one kernel per group. Written by the "fuse" pass as graph attribute "fusion_groups";
// without it, every operator node is its own group.
#pragma once

#include <cstdint>
#include <vector>

#include "graph/graph.h"

namespace kiln {

struct FusionGroup {
  // Operator node ids of the indexed graph, in topological order. The last is the root:
  // the only member whose output leaves the group; every other member's readers are
  // members, which is why no path between two members can leave the group (no cycle).
  std::vector<size_t> nodes;
  // A GEMM-like member (SetAcceptsEpilogue) whose lowering applies the others as its
  // epilogue, or -1: then every member has a scalar function and the group is one loop.
  int64_t anchor = -1;
  // Members the anchor reads as its input 0 (SetAcceptsPrologue), computed at each of the
  // input's elements as the anchor loads it; they read only inputs from outside the group
  // and each other. Every other member is evaluated at the output's elements.
  std::vector<size_t> prologue;
  // Some member is injective (a transpose, a view): members are evaluated at positions
  // the index maps give, not all at the root's element (no anchor then).
  bool injective = false;

  size_t root() const { return nodes.back(); }
};
using FusionGroups = std::vector<FusionGroup>;

// Every operator node alone, in topological order (-O0 and -O1).
FusionGroups SingletonGroups(const IndexedGraph& indexed);

}  // namespace kiln
