// Lowers a fusion group to one kernel. A singleton is its operator's own lowering. A
// group of elementwise and broadcast operators is one loop over the root's output whose
// body composes the members' scalar functions (values pass between members in
// registers, rounded as storing them would round them). A group with a GEMM-like anchor
// is the anchor's lowering with the other members as its epilogue.
#pragma once

#include <string>
#include <vector>

#include "codegen/kir/kir.h"
#include "codegen/lower_node.h"
#include "graph/graph.h"
#include "passes/fusion.h"

namespace kiln {

struct GroupKernel {
  kir::Kernel kernel;
  // Entry ids bound to the kernel's first arguments: what it reads, then what it writes;
  // arguments after those are scratch.
  std::vector<size_t> reads;
  std::vector<size_t> writes;
  // (read argument, write argument) pairs that may share storage when the read entry
  // dies here: the registry's in-place pairs for a singleton; same-shape inputs of a
  // pure elementwise group (each element is read before it is written).
  std::vector<std::pair<int, int>> inplace;
  // Read arguments bound to constants the lowering derived at compile time instead of
  // their entries (LowerContext::replace_input).
  ConstantArgs constants;
};

// `graph` carries "shape" and "dtype". Errors name the node that fails to lower. With
// `params_are_constants`, lowerings see the values of graph.params.
GroupKernel LowerGroup(const Graph& graph, const FusionGroup& group, const std::string& kernel_name, bool is_train,
                       bool params_are_constants = false, LowerTarget target = LowerTarget::kCpu);

// "conv0+bn0+relu0": the members, for profiles and errors.
std::string GroupName(const IndexedGraph& indexed, const FusionGroup& group);

}  // namespace kiln
