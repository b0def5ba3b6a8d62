// Graphs to and from files: binary protobuf (proto/graph.proto), protobuf text, a
// human-readable listing, and Graphviz DOT. Loading validates everything and reports the
// first problem with the node it is in; any bytes at all give a clean error or a valid
// graph.
#pragma once

#include <string>
#include <string_view>

#include "graph/graph.h"
#include "proto/graph.pb.h"

namespace kiln {

// The graph format version this kiln writes and the newest it reads.
inline constexpr uint32_t kGraphFormatVersion = 1;

proto::GraphProto GraphToProto(const Graph& graph);
// Checks: magic and version, every op known, attributes valid, inputs in range and
// earlier in the list (so acyclic), unique names, outputs valid, parameters' byte sizes.
Graph GraphFromProto(const proto::GraphProto& proto, const std::string& source = "<graph>");

std::string SerializeGraph(const Graph& graph);
Graph ParseGraph(std::string_view bytes, const std::string& source = "<bytes>");
std::string SerializeGraphText(const Graph& graph);
Graph ParseGraphText(std::string_view text, const std::string& source = "<text>");

// Binary protobuf, or protobuf text when the path ends in .txt or .pbtxt; written
// atomically.
void SaveGraphFile(const Graph& graph, const std::string& path);
Graph LoadGraphFile(const std::string& path);

// One line per node in topological order, stable and diff-friendly; shapes and dtypes are
// shown where graph.attrs holds them (after InferShape / InferType).
std::string DumpGraph(const Graph& graph);
// Graphviz DOT in the spirit of mx.viz.plot_network: ops as boxes colored by kind,
// variables as ellipses, edges labeled with shapes where known.
// A fused kernel drawn as a box around its member nodes (`kiln viz --fusion`).
struct DotCluster {
  std::string label;
  std::vector<size_t> nodes;  // node ids of the graph's index
};
std::string GraphToDot(const Graph& graph, const std::string& title = "kiln",
                       const std::vector<DotCluster>& clusters = {});

}  // namespace kiln
