// The graph verifier: run between passes (tests, debug builds) so that a pass that
// breaks a graph is named at once instead of miscompiling later.
#pragma once

#include <string>

#include "graph/graph.h"

namespace kiln {

// Checks that the graph is well formed (input counts and output indices as the registry
// declares them, unique variable names), acyclic, that every embedded parameter a variable
// reads has the variable's declared shape and dtype, and, when the graph carries "shape" and "dtype"
// attributes, that they are complete and agree with the registry's inference. Throws
// kiln::Error beginning "after pass '<pass>': " and naming the node.
void VerifyGraph(const Graph& graph, const std::string& pass);

}  // namespace kiln
