#include "passes/graph_io.h"

#include <google/protobuf/io/tokenizer.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>
#include <google/protobuf/text_format.h>

#include <set>
#include <sstream>

#include "passes/infer_shape.h"
#include "runtime/error.h"
#include "runtime/file_util.h"
#include "runtime/param_file.h"
#include "runtime/proto_util.h"
#include "runtime/version.h"

namespace kiln {
namespace {

constexpr char kGraphMagic[] = "kiln.graph";

proto::AttrValueProto AttrToProto(const AttrValue& value) {
  proto::AttrValueProto out;
  struct Visitor {
    proto::AttrValueProto& out;
    void operator()(std::monostate) const { out.set_none(true); }
    void operator()(bool v) const { out.set_b(v); }
    void operator()(int64_t v) const { out.set_i(v); }
    void operator()(double v) const { out.set_f(v); }
    void operator()(const std::string& v) const { out.set_s(v); }
    void operator()(const std::vector<int64_t>& v) const {
      auto* list = out.mutable_ints();
      for (int64_t x : v) list->add_values(x);
    }
    void operator()(const std::vector<double>& v) const {
      auto* list = out.mutable_floats();
      for (double x : v) list->add_values(x);
    }
  };
  std::visit(Visitor{out}, value);
  return out;
}

AttrValue AttrFromProto(const proto::AttrValueProto& proto) {
  switch (proto.value_case()) {
    case proto::AttrValueProto::kNone: return std::monostate{};
    case proto::AttrValueProto::kB: return proto.b();
    case proto::AttrValueProto::kI: return proto.i();
    case proto::AttrValueProto::kF: return proto.f();
    case proto::AttrValueProto::kS: return proto.s();
    case proto::AttrValueProto::kInts:
      return std::vector<int64_t>(proto.ints().values().begin(), proto.ints().values().end());
    case proto::AttrValueProto::kFloats:
      return std::vector<double>(proto.floats().values().begin(), proto.floats().values().end());
    case proto::AttrValueProto::VALUE_NOT_SET: break;
  }
  throw Error("attribute has no value");
}

std::string UnknownFieldBytes(const google::protobuf::Message& message) {
  const auto& unknown = message.GetReflection()->GetUnknownFields(message);
  if (unknown.empty()) return "";
  std::string bytes;
  unknown.SerializeToString(&bytes);
  return bytes;
}

}  // namespace

proto::GraphProto GraphToProto(const Graph& graph) {
  proto::GraphProto out;
  out.set_magic(kGraphMagic);
  out.set_format_version(kGraphFormatVersion);
  out.set_producer_version(kKilnVersion);
  const IndexedGraph& indexed = graph.indexed();
  for (size_t id = 0; id < indexed.num_nodes(); ++id) {
    const Node& node = indexed.node(id);
    auto* n = out.add_nodes();
    n->set_name(node.name);
    if (node.is_variable()) {
      if (node.shape) {
        n->set_has_shape(true);
        for (int64_t d : *node.shape) n->add_shape(d);
      }
      if (node.dtype) {
        n->set_has_dtype(true);
        n->set_dtype(static_cast<int32_t>(*node.dtype));
      }
    } else {
      n->set_op(node.op->name());
      for (const auto& [name, value] : node.attrs.ExplicitValues()) {  // std::map: sorted
        auto* attr = n->add_attrs();
        attr->set_name(name);
        *attr->mutable_value() = AttrToProto(value);
      }
      for (const auto& input : node.inputs) {
        auto* ref = n->add_inputs();
        ref->set_node(static_cast<uint32_t>(indexed.node_id(input.node.get())));
        ref->set_index(input.index);
      }
    }
    for (const auto& [key, value] : node.annotations) (*n->mutable_annotations())[key] = value;
    if (!node.unknown_fields.empty()) n->MergeFromString(node.unknown_fields);
  }
  const auto names = graph.OutputNames();
  for (size_t i = 0; i < graph.outputs.size(); ++i) {
    auto* output = out.add_outputs();
    output->set_name(names[i]);
    output->mutable_entry()->set_node(static_cast<uint32_t>(indexed.node_id(graph.outputs[i].node.get())));
    output->mutable_entry()->set_index(graph.outputs[i].index);
  }
  for (const auto& [name, tensor] : graph.params) *out.add_parameters() = TensorToProto(tensor, name);
  if (!graph.unknown_fields.empty()) out.MergeFromString(graph.unknown_fields);
  out.set_complete(true);
  return out;
}

Graph GraphFromProto(const proto::GraphProto& proto, const std::string& source) {
  const std::string where = "'" + source + "'";
  if (proto.magic() != kGraphMagic) throw Error(where + " is not a kiln graph (no 'kiln.graph' magic)");
  if (proto.format_version() == 0 || proto.format_version() > kGraphFormatVersion) {
    throw Error(where + ": graph format version " + std::to_string(proto.format_version()) +
                " is not supported (this kiln " + kKilnVersion + " reads versions 1 to " +
                std::to_string(kGraphFormatVersion) + "; written by kiln " +
                (proto.producer_version().empty() ? "unknown" : proto.producer_version()) + ")");
  }
  std::vector<NodePtr> nodes;
  std::set<std::string> names;
  for (int id = 0; id < proto.nodes_size(); ++id) {
    const auto& n = proto.nodes(id);
    const std::string node_where = where + ": node " + std::to_string(id) + " ('" + n.name() + "')";
    if (n.name().empty()) throw Error(where + ": node " + std::to_string(id) + " has no name");
    if (!names.insert(n.name()).second) throw Error(node_where + ": duplicate node name");
    NodePtr node;
    if (n.op().empty()) {
      if (n.inputs_size() || n.attrs_size()) throw Error(node_where + ": a variable cannot have inputs or attributes");
      std::optional<Shape> shape;
      if (n.has_shape()) {
        shape = Shape(n.shape().begin(), n.shape().end());
        for (int64_t d : *shape) {
          if (d < 0) throw Error(node_where + ": negative dimension in shape " + ShapeToString(*shape));
        }
      }
      std::optional<DType> dtype;
      if (n.has_dtype()) {
        if (!IsValidDTypeCode(n.dtype())) {
          throw Error(node_where + ": unknown dtype code " + std::to_string(n.dtype()) + " (expected 0 to " +
                      std::to_string(kNumDTypes - 1) + ")");
        }
        dtype = static_cast<DType>(n.dtype());
      }
      node = Node::Variable(n.name(), shape, dtype);
    } else {
      const OpDef* op = OpRegistry::Global().Find(n.op());
      if (op == nullptr) throw Error(node_where + ": unknown operator '" + n.op() + "'");
      std::map<std::string, AttrValue> given;
      for (const auto& attr : n.attrs()) {
        if (given.count(attr.name())) throw Error(node_where + ": attribute '" + attr.name() + "' given twice");
        try {
          given[attr.name()] = AttrFromProto(attr.value());
        } catch (const Error& e) {
          throw Error(node_where + ": attribute '" + attr.name() + "': " + e.what());
        }
      }
      Attrs attrs;
      try {
        attrs = op->ParseAttrs(given, n.name());
      } catch (const Error& e) {
        throw Error(where + ": " + e.what());
      }
      std::vector<NodeEntry> inputs;
      for (int i = 0; i < n.inputs_size(); ++i) {
        const auto& ref = n.inputs(i);
        if (ref.node() >= static_cast<uint32_t>(id)) {
          throw Error(node_where + ": input " + std::to_string(i) + " refers to node " + std::to_string(ref.node()) +
                      ", which is not defined before it (nodes must be topologically ordered; a cycle or a "
                      "dangling reference)");
        }
        const NodePtr& input = nodes[ref.node()];
        if (ref.index() >= input->num_outputs()) {
          throw Error(node_where + ": input " + std::to_string(i) + " refers to output " + std::to_string(ref.index()) +
                      " of node '" + input->name + "', which has " + std::to_string(input->num_outputs()) + " outputs");
        }
        inputs.push_back(NodeEntry{input, ref.index()});
      }
      try {
        node = Node::Create(*op, n.name(), std::move(attrs), std::move(inputs));
      } catch (const Error& e) {
        throw Error(where + ": " + e.what());
      }
    }
    node->annotations = std::map<std::string, std::string>(n.annotations().begin(), n.annotations().end());
    node->unknown_fields = UnknownFieldBytes(n);
    nodes.push_back(std::move(node));
  }
  Graph graph;
  if (!proto.complete()) throw Error(where + " is truncated (no end marker)");
  if (proto.outputs_size() == 0) throw Error(where + ": the graph has no outputs");
  for (int i = 0; i < proto.outputs_size(); ++i) {
    const auto& output = proto.outputs(i);
    const auto& ref = output.entry();
    if (ref.node() >= nodes.size()) {
      throw Error(where + ": output " + std::to_string(i) + " ('" + output.name() + "') refers to node " +
                  std::to_string(ref.node()) + ", but the graph has " + std::to_string(nodes.size()) + " nodes");
    }
    if (ref.index() >= nodes[ref.node()]->num_outputs()) {
      throw Error(where + ": output " + std::to_string(i) + " ('" + output.name() + "') refers to output " +
                  std::to_string(ref.index()) + " of node '" + nodes[ref.node()]->name + "', which has " +
                  std::to_string(nodes[ref.node()]->num_outputs()) + " outputs");
    }
    graph.outputs.push_back(NodeEntry{nodes[ref.node()], ref.index()});
    graph.output_names.push_back(output.name());
  }
  for (int i = 0; i < proto.parameters_size(); ++i) {
    const auto& param = proto.parameters(i);
    const std::string what = where + ": parameter " + std::to_string(i) + " ('" + param.name() + "')";
    if (graph.params.count(param.name())) throw Error(what + ": duplicate parameter");
    graph.params[param.name()] = TensorFromProto(param, what);
  }
  graph.unknown_fields = UnknownFieldBytes(proto);
  return graph;
}

std::string SerializeGraph(const Graph& graph) {
  std::string bytes;
  if (!GraphToProto(graph).SerializeToString(&bytes)) throw Error("cannot serialize the graph (over 2 GiB?)");
  return bytes;
}

Graph ParseGraph(std::string_view bytes, const std::string& source) {
  QuietProtobufLogs();
  proto::GraphProto proto;
  if (bytes.size() > static_cast<size_t>(INT32_MAX) ||
      !proto.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
    throw Error("'" + source + "' is not a kiln graph (not a valid protobuf)");
  }
  return GraphFromProto(proto, source);
}

std::string SerializeGraphText(const Graph& graph) {
  std::string text;
  google::protobuf::TextFormat::Printer printer;
  printer.SetUseShortRepeatedPrimitives(true);
  printer.PrintToString(GraphToProto(graph), &text);
  return text;
}

namespace {
// Collects text-format parse errors instead of printing them to stderr.
class ErrorCollector : public google::protobuf::io::ErrorCollector {
 public:
  void AddError(int line, int column, const std::string& message) override {
    if (first.empty())
      first = "line " + std::to_string(line + 1) + ", column " + std::to_string(column + 1) + ": " + message;
  }
  void AddWarning(int, int, const std::string&) override {}
  std::string first;
};
}  // namespace

Graph ParseGraphText(std::string_view text, const std::string& source) {
  QuietProtobufLogs();
  proto::GraphProto proto;
  google::protobuf::TextFormat::Parser parser;
  ErrorCollector errors;
  parser.RecordErrorsTo(&errors);
  // Unknown fields in text cannot be kept (text format has no place for them); reject.
  google::protobuf::io::ArrayInputStream stream(text.data(),
                                                static_cast<int>(std::min<size_t>(text.size(), INT32_MAX)));
  if (!parser.Parse(&stream, &proto)) {
    throw Error("'" + source + "' is not a kiln text graph: " + errors.first);
  }
  return GraphFromProto(proto, source);
}

namespace {
bool IsTextPath(const std::string& path) {
  const auto ends_with = [&](const std::string& suffix) {
    return path.size() >= suffix.size() && path.compare(path.size() - suffix.size(), suffix.size(), suffix) == 0;
  };
  return ends_with(".txt") || ends_with(".pbtxt");
}
}  // namespace

void SaveGraphFile(const Graph& graph, const std::string& path) {
  WriteFileAtomic(path, IsTextPath(path) ? SerializeGraphText(graph) : SerializeGraph(graph));
}

Graph LoadGraphFile(const std::string& path) {
  const std::string bytes = ReadFile(path);
  return IsTextPath(path) ? ParseGraphText(bytes, path) : ParseGraph(bytes, path);
}

namespace {
const std::vector<ShapeSlot>* ShapesOf(const Graph& graph) {
  const auto it = graph.attrs.find("shape");
  return it == graph.attrs.end() ? nullptr : std::any_cast<std::vector<ShapeSlot>>(&it->second);
}
const std::vector<DTypeSlot>* TypesOf(const Graph& graph) {
  const auto it = graph.attrs.find("dtype");
  return it == graph.attrs.end() ? nullptr : std::any_cast<std::vector<DTypeSlot>>(&it->second);
}
std::string EntryAnnotation(const Graph& graph, size_t entry) {
  std::string text;
  if (const auto* shapes = ShapesOf(graph)) text += (*shapes)[entry] ? ShapeToString(*(*shapes)[entry]) : "?";
  if (const auto* types = TypesOf(graph)) {
    text += std::string(text.empty() ? "" : " ") + ((*types)[entry] ? std::string(DTypeName(*(*types)[entry])) : "?");
  }
  return text;
}
}  // namespace

std::string DumpGraph(const Graph& graph) {
  const IndexedGraph& indexed = graph.indexed();
  std::ostringstream out;
  for (size_t id = 0; id < indexed.num_nodes(); ++id) {
    const Node& node = indexed.node(id);
    out << "%" << id << " " << node.name << " = ";
    if (node.is_variable()) {
      out << (graph.params.count(node.name) ? "param" : "input");
    } else {
      out << node.op->name() << "(";
      for (size_t i = 0; i < node.inputs.size(); ++i) {
        out << (i ? ", " : "") << "%" << indexed.node_id(node.inputs[i].node.get());
        if (node.inputs[i].node->num_outputs() > 1) out << "." << node.inputs[i].index;
      }
      out << ")";
      const auto explicit_values = node.attrs.ExplicitValues();
      if (!explicit_values.empty()) {
        out << " {";
        bool first = true;
        for (const auto& [name, value] : explicit_values) {
          out << (first ? "" : ", ") << name << "=" << FormatAttrValue(value);
          first = false;
        }
        out << "}";
      }
    }
    std::string annotation;
    for (uint32_t i = 0; i < node.num_outputs(); ++i) {
      const std::string a = EntryAnnotation(graph, indexed.entry_id(id, i));
      if (!a.empty()) annotation += (annotation.empty() ? "" : "; ") + a;
    }
    if (annotation.empty() && node.is_variable() && node.shape) annotation = ShapeToString(*node.shape);
    if (!annotation.empty()) out << " : " << annotation;
    out << "\n";
  }
  const auto names = graph.OutputNames();
  for (size_t i = 0; i < graph.outputs.size(); ++i) {
    out << "output " << names[i] << " = %" << indexed.node_id(graph.outputs[i].node.get());
    if (graph.outputs[i].node->num_outputs() > 1) out << "." << graph.outputs[i].index;
    out << "\n";
  }
  return out.str();
}

namespace {
std::string DotEscape(const std::string& text) {
  std::string out;
  for (char c : text) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out;
}

// Colors after mx.viz.plot_network's palette, by fusion pattern.
const char* PatternColor(OpPattern pattern) {
  switch (pattern) {
    case OpPattern::kGemm: return "#fb8072";
    case OpPattern::kElementwise: return "#ffffb3";
    case OpPattern::kBroadcast: return "#fdb462";
    case OpPattern::kInjective: return "#b3de69";
    case OpPattern::kReduction: return "#80b1d3";
    case OpPattern::kOpaque: return "#bebada";
  }
  return "#ffffff";
}
}  // namespace

std::string GraphToDot(const Graph& graph, const std::string& title, const std::vector<DotCluster>& clusters) {
  const IndexedGraph& indexed = graph.indexed();
  const auto* shapes = ShapesOf(graph);
  std::ostringstream out;
  out << "digraph \"" << DotEscape(title) << "\" {\n";
  out << "  rankdir=BT;\n  node [fontsize=10, fontname=\"Helvetica\"];\n  edge [fontsize=9];\n";
  for (size_t id = 0; id < indexed.num_nodes(); ++id) {
    const Node& node = indexed.node(id);
    out << "  n" << id << " [";
    if (node.is_variable()) {
      std::string label = DotEscape(node.name);
      if (shapes && (*shapes)[indexed.entry_id(id, 0)])
        label += "\\n" + ShapeToString(*(*shapes)[indexed.entry_id(id, 0)]);
      out << "shape=ellipse, style=filled, fillcolor=\"#8dd3c7\", label=\"" << label << "\"";
    } else {
      std::string label = DotEscape(node.op->name()) + "\\n" + DotEscape(node.name);
      for (const auto& [name, value] : node.attrs.ExplicitValues()) {
        label += "\\n" + DotEscape(name + "=" + FormatAttrValue(value));
      }
      out << "shape=box, style=\"rounded,filled\", fillcolor=\"" << PatternColor(node.op->pattern()) << "\", label=\""
          << label << "\"";
    }
    out << "];\n";
  }
  for (size_t id = 0; id < indexed.num_nodes(); ++id) {
    const Node& node = indexed.node(id);
    for (const auto& input : node.inputs) {
      out << "  n" << indexed.node_id(input.node.get()) << " -> n" << id;
      if (shapes) {
        const auto& shape = (*shapes)[indexed.entry_id(input)];
        if (shape) out << " [label=\"" << ShapeToString(*shape) << "\"]";
      }
      out << ";\n";
    }
  }
  // Fused kernels: a filled box of its own color around the members.
  static const char* kClusterColors[] = {"#fde0dd", "#e0ecf4", "#e5f5e0", "#fff7bc", "#efedf5", "#fee6ce"};
  for (size_t c = 0; c < clusters.size(); ++c) {
    out << "  subgraph cluster_" << c << " {\n    style=filled; color=\"" << kClusterColors[c % 6] << "\"; label=\""
        << DotEscape(clusters[c].label) << "\";\n   ";
    for (const size_t id : clusters[c].nodes) out << " n" << id << ";";
    out << "\n  }\n";
  }
  const auto names = graph.OutputNames();
  for (size_t i = 0; i < graph.outputs.size(); ++i) {
    out << "  out" << i << " [shape=plaintext, label=\"" << DotEscape(names[i]) << "\"];\n";
    out << "  n" << indexed.node_id(graph.outputs[i].node.get()) << " -> out" << i << ";\n";
  }
  out << "}\n";
  return out.str();
}

}  // namespace kiln
