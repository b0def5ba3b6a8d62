// A kiln graph written as MXNet model files: the symbol JSON MXNet 1.9.1 writes
// (`attrs` in MXNet's text spelling, inputs as [node, output, 0], arg_nodes,
// node_row_ptr, heads, the mxnet_version attribute) and its parameters as an
// NDArray-list file with arg:/aux: prefixes, as Module.save_checkpoint writes them, so
// that `mx.mod.Module.load(prefix, 0)` and `mx.sym.load` / `mx.nd.load` read them.
// Variables carry their known shape and dtype as __shape__ and __dtype__.
#pragma once

#include <string>

#include "graph/graph.h"

namespace kiln {

// The symbol JSON text.
std::string ExportMxnetSymbol(const Graph& graph);
// PREFIX-symbol.json and, when the graph embeds parameters, PREFIX-0000.params, both
// written atomically. Returns the paths written.
std::vector<std::string> ExportMxnet(const Graph& graph, const std::string& prefix);

}  // namespace kiln
