// Shape and dtype inference passes. They fill graph.attrs["shape"] (std::vector<ShapeSlot>)
// and graph.attrs["dtype"] (std::vector<DTypeSlot>), indexed by entry id, iterating forward
// and backward until nothing changes (so that weight shapes follow from data shapes).
#pragma once

#include <map>
#include <optional>
#include <string>

#include "graph/graph.h"

namespace kiln {

// `known` gives variables' shapes (overriding their declared shapes only where equal; a
// conflict is an error). Returns the number of entries still unknown. Errors name the
// node, its operator and the argument.
size_t InferShape(Graph& graph, const std::map<std::string, Shape>& known = {});
// Variables whose dtype nothing determines get `default_dtype` (MXNet's simple_bind
// default, float32), unless it is nullopt.
size_t InferType(Graph& graph, const std::map<std::string, DType>& known = {},
                 std::optional<DType> default_dtype = DType::kFloat32);

// Convenience lookups after inference.
const ShapeSlot& EntryShape(const Graph& graph, const NodeEntry& entry);
const DTypeSlot& EntryType(const Graph& graph, const NodeEntry& entry);

}  // namespace kiln
