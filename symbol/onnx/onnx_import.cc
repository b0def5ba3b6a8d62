#include "symbol/onnx/onnx_import.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <functional>
#include <limits>
#include <numeric>
#include <set>

#include "graph/op_util.h"
#include "runtime/error.h"
#include "runtime/file_util.h"
#include "runtime/proto_util.h"
#include "symbol/onnx/onnx.pb.h"
#include "symbol/onnx/onnx_converter.h"
#include "symbol/onnx/onnx_tensor.h"
#include "symbol/onnx/onnx_versions.h"

namespace kiln {
namespace onnx_import {

// How messages and kiln node names refer to an ONNX node.
std::string NodeLabel(const onnx::NodeProto& node) {
  if (!node.name().empty()) return node.name();
  return node.output_size() > 0 && !node.output(0).empty() ? node.output(0) : node.op_type();
}

int64_t NodeContext::Int(const std::string& name, std::optional<int64_t> fallback) const {
  if (!HasAttr(name) && fallback) return *fallback;
  return Attr(name, onnx::AttributeProto::INT).i();
}
double NodeContext::Float(const std::string& name, std::optional<double> fallback) const {
  if (!HasAttr(name) && fallback) return *fallback;
  return Attr(name, onnx::AttributeProto::FLOAT).f();
}

std::string NodeContext::Str(const std::string& name, std::optional<std::string> fallback) const {
  if (!HasAttr(name) && fallback) return *fallback;
  return Attr(name, onnx::AttributeProto::STRING).s();
}

std::vector<int64_t> NodeContext::Ints(const std::string& name, std::optional<std::vector<int64_t>> fallback) const {
  if (!HasAttr(name) && fallback) return *fallback;
  const auto& attr = Attr(name, onnx::AttributeProto::INTS);
  return {attr.ints().begin(), attr.ints().end()};
}

std::vector<double> NodeContext::Floats(const std::string& name) const {
  const auto& attr = Attr(name, onnx::AttributeProto::FLOATS);
  return {attr.floats().begin(), attr.floats().end()};
}
const onnx::TensorProto& NodeContext::TensorAttr(const std::string& name) const {
  return Attr(name, onnx::AttributeProto::TENSOR).t();
}

std::map<std::string, Converter>& Converters() {
  static std::map<std::string, Converter> converters;
  return converters;
}

class Importer {
 public:
  Importer(const onnx::ModelProto& model, const OnnxImportOptions& options) : model_(model), options_(options) {
    if (!options.external_data_dir.empty()) external_data_ = std::make_unique<ExternalData>(options.external_data_dir);
  }

  Graph Run();

  std::vector<Value> Apply(const std::string& op, const std::vector<Value>& inputs, const AttrMap& attrs,
                           const std::string& base_name);
  Value MakeConstant(Tensor tensor, const std::string& base_name) {
    Value v;
    v.shape = tensor.shape();
    v.dtype = tensor.dtype();
    v.name = base_name;
    v.constant = std::move(tensor);
    return v;
  }

 private:
  NodeEntry Materialize(const Value& v);
  std::string UniqueName(const std::string& base);
  void AddInputs(const onnx::GraphProto& graph, std::vector<std::string>& problems);
  int64_t DefaultOpset() const;

  const onnx::ModelProto& model_;
  const OnnxImportOptions& options_;
  std::unique_ptr<ExternalData> external_data_;  // null: external tensors are an error
  Graph graph_;
  std::map<std::string, Value> values_;
  std::set<std::string> used_names_;
  // Constants already made parameters, by their storage.
  std::map<const void*, NodeEntry> parameters_;
};

std::string Importer::UniqueName(const std::string& base) {
  std::string name = base.empty() ? "node" : base;
  for (int k = 1; used_names_.count(name) != 0; ++k) name = base + "_" + std::to_string(k);
  used_names_.insert(name);
  return name;
}

NodeEntry Importer::Materialize(const Value& v) {
  if (v.entry) return *v.entry;
  const Tensor& t = *v.constant;
  const void* key = t.size() > 0 ? t.data() : nullptr;
  if (key != nullptr) {
    const auto it = parameters_.find(key);
    if (it != parameters_.end() && it->second.node->shape == t.shape() && it->second.node->dtype == t.dtype()) {
      return it->second;
    }
  }
  const std::string name = UniqueName(v.name.empty() ? "constant" : v.name);
  const NodeEntry entry{Node::Variable(name, t.shape(), t.dtype()), 0};
  graph_.params[name] = t;
  if (key != nullptr) parameters_[key] = entry;
  return entry;
}

std::vector<Value> Importer::Apply(const std::string& op_name, const std::vector<Value>& inputs, const AttrMap& attrs,
                                   const std::string& base_name) {
  const OpDef& op = OpRegistry::Global().Get(op_name);
  std::map<std::string, AttrValue> given;
  for (const auto& [key, arg] : attrs) given[key] = arg.value;
  const Attrs parsed = op.ParseAttrs(given, base_name);
  std::vector<ShapeSlot> in_shapes;
  std::vector<DTypeSlot> in_types;
  bool all_constant = true;
  for (const Value& v : inputs) {
    in_shapes.emplace_back(v.shape);
    in_types.emplace_back(v.dtype);
    all_constant &= v.constant.has_value();
  }
  if (in_shapes.size() != op.NumInputs(parsed)) {
    throw Error(op_name + " takes " + std::to_string(op.NumInputs(parsed)) + " inputs, given " +
                std::to_string(in_shapes.size()));
  }
  std::vector<ShapeSlot> out_shapes(op.NumOutputs(parsed));
  std::vector<DTypeSlot> out_types(op.NumOutputs(parsed));
  op.InferShape(parsed, in_shapes, out_shapes);
  op.InferType(parsed, in_types, out_types);
  std::vector<Value> outputs(out_shapes.size());
  for (size_t i = 0; i < outputs.size(); ++i) {
    if (!out_shapes[i] || !out_types[i]) throw Error(op_name + ": output " + std::to_string(i) + " not inferred");
    outputs[i].shape = *out_shapes[i];
    outputs[i].dtype = *out_types[i];
    outputs[i].name = base_name;
  }
  // Constant folding: the reference computes what depends on constants alone (not
  // random draws: their values belong to each run).
  if (all_constant && op.has_reference() && !op.RandomAtInference(parsed)) {
    std::vector<Tensor> in_tensors;
    for (const Value& v : inputs) in_tensors.push_back(*v.constant);
    std::vector<Tensor> out_tensors;
    for (const Value& v : outputs) out_tensors.emplace_back(v.shape, v.dtype);
    op.RunReference(parsed, in_tensors, out_tensors, RefContext{});
    for (size_t i = 0; i < outputs.size(); ++i) outputs[i].constant = std::move(out_tensors[i]);
    return outputs;
  }
  std::vector<NodeEntry> entries;
  for (const Value& v : inputs) entries.push_back(Materialize(v));
  const NodePtr node = Node::Create(op, UniqueName(base_name), parsed, std::move(entries));
  for (uint32_t i = 0; i < outputs.size(); ++i) outputs[i].entry = NodeEntry{node, i};
  return outputs;
}

Value NodeContext::Apply(const std::string& op, const std::vector<Value>& inputs, const AttrMap& attrs) {
  return ApplyAll(op, inputs, attrs).at(0);
}

std::vector<Value> NodeContext::ApplyAll(const std::string& op, const std::vector<Value>& inputs,
                                         const AttrMap& attrs) {
  return importer_.Apply(op, inputs, attrs, NodeLabel(node_));
}

Value NodeContext::MakeConstant(Tensor tensor) {
  return importer_.MakeConstant(std::move(tensor), NodeLabel(node_));
}

int64_t Importer::DefaultOpset() const {
  for (const auto& entry : model_.opset_import()) {
    if (entry.domain().empty() || entry.domain() == "ai.onnx") return entry.version();
  }
  // IR version 3 and later must name their opsets; older models meant opset 1.
  return 1;
}

void Importer::AddInputs(const onnx::GraphProto& graph, std::vector<std::string>& problems) {
  std::set<std::string> given;
  for (const auto& init : graph.initializer()) {
    try {
      values_[init.name()] =
          MakeConstant(TensorFromOnnx(init, "initializer '" + init.name() + "'", external_data_.get()), init.name());
    } catch (const Error& e) {
      problems.push_back(e.what());
    }
  }
  for (const auto& input : graph.input()) {
    if (values_.count(input.name()) != 0) continue;  // an initializer listed as an input
    given.insert(input.name());
    const std::string what = "graph input '" + input.name() + "'";
    if (const auto it = options_.constant_inputs.find(input.name()); it != options_.constant_inputs.end()) {
      const auto declared = DTypeFromOnnx(input.type().tensor_type().elem_type());
      if (declared && *declared != it->second.dtype()) {
        problems.push_back(what + " is " + std::string(DTypeName(*declared)) + ", its constant value " +
                           std::string(DTypeName(it->second.dtype())));
      } else {
        values_[input.name()] = MakeConstant(it->second, input.name());
      }
      continue;
    }
    if (!input.type().has_tensor_type()) {
      problems.push_back(what + ": only tensor inputs are supported");
      continue;
    }
    const auto& tensor_type = input.type().tensor_type();
    const auto dtype = DTypeFromOnnx(tensor_type.elem_type());
    if (!dtype) {
      problems.push_back(what + ": element type " + OnnxTypeName(tensor_type.elem_type()) + " is not supported");
      continue;
    }
    Shape shape;
    for (const auto& dim : tensor_type.shape().dim()) shape.push_back(dim.has_dim_value() ? dim.dim_value() : 1);
    const auto override_it = options_.input_shapes.find(input.name());
    if (override_it != options_.input_shapes.end()) {
      if (tensor_type.has_shape() && override_it->second.size() != shape.size()) {
        problems.push_back(what + ": the model declares rank " + std::to_string(shape.size()) + " " +
                           ShapeToString(shape) + ", given shape " + ShapeToString(override_it->second));
        continue;
      }
      shape = override_it->second;
    } else if (!tensor_type.has_shape()) {
      problems.push_back(what + ": the model gives no shape; pass one (--input " + input.name() + ":2x3)");
      continue;
    }
    Value v;
    v.shape = shape;
    v.dtype = *dtype;
    v.name = input.name();
    v.entry = NodeEntry{Node::Variable(UniqueName(input.name()), shape, *dtype), 0};
    values_[input.name()] = v;
  }
  std::vector<std::string> named;
  for (const auto& [name, shape] : options_.input_shapes) named.push_back(name);
  for (const auto& [name, value] : options_.constant_inputs) named.push_back(name);
  for (const auto& name : named) {
    if (given.count(name) == 0) {
      std::string inputs;
      for (const auto& n : given) inputs += (inputs.empty() ? "" : ", ") + n;
      problems.push_back("--input '" + name + "' is not an input of the model (its inputs: " + inputs + ")");
    }
  }
}

Graph Importer::Run() {
  const int64_t opset = DefaultOpset();
  if (opset < kMinOnnxOpset || opset > kMaxOnnxOpset) {
    throw Error("ONNX opset " + std::to_string(opset) + " is not supported (kiln imports opsets " +
                std::to_string(kMinOnnxOpset) + " to " + std::to_string(kMaxOnnxOpset) + ")");
  }
  const onnx::GraphProto& graph = model_.graph();
  std::vector<std::string> problems;
  AddInputs(graph, problems);
  // Values that could not be converted: nodes reading them are skipped, so that every
  // problem of the model is reported at once rather than the first one, and nothing
  // follows from it. Initializers and graph inputs without a value were reported above.
  std::set<std::string> poisoned;
  for (const auto& init : graph.initializer()) {
    if (values_.count(init.name()) == 0) poisoned.insert(init.name());
  }
  for (const auto& input : graph.input()) {
    if (values_.count(input.name()) == 0) poisoned.insert(input.name());
  }
  for (const auto& node : graph.node()) {
    const std::string where = node.op_type() + " node '" + NodeLabel(node) + "' (opset " + std::to_string(opset) + ")";
    const auto fail = [&](const std::string& reason) {
      problems.push_back(where + ": " + reason);
      for (const auto& out : node.output()) poisoned.insert(out);
    };
    if (!node.domain().empty() && node.domain() != "ai.onnx") {
      fail("operator domain '" + node.domain() + "' is not supported");
      continue;
    }
    const auto conv = Converters().find(node.op_type());
    if (conv == Converters().end()) {
      fail("operator not supported");
      continue;
    }
    if (const std::string unhandled = UnhandledVersion(node.op_type(), opset); !unhandled.empty()) {
      fail(unhandled);
      continue;
    }
    std::vector<std::string> bad_attrs;
    for (const auto& attr : node.attribute()) {
      if (conv->second.attrs.count(attr.name()) == 0) bad_attrs.push_back(attr.name());
    }
    if (!bad_attrs.empty()) {
      std::string list;
      for (const auto& a : bad_attrs) list += (list.empty() ? "" : ", ") + a;
      fail("attribute(s) not supported: " + list);
      continue;
    }
    std::vector<std::optional<Value>> inputs;
    bool skip = false;
    for (const auto& name : node.input()) {
      if (name.empty()) {
        inputs.emplace_back();
        continue;
      }
      if (poisoned.count(name) != 0) {
        skip = true;
        break;
      }
      const auto it = values_.find(name);
      if (it == values_.end()) {
        fail("input '" + name + "' is not defined before this node");
        skip = true;
        break;
      }
      inputs.emplace_back(it->second);
    }
    if (skip) {
      for (const auto& out : node.output()) poisoned.insert(out);
      continue;
    }
    try {
      NodeContext ctx(*this, node, std::move(inputs), opset);
      std::vector<Value> outputs = conv->second.convert(ctx);
      for (int i = 0; i < node.output_size(); ++i) {
        if (node.output(i).empty()) continue;
        if (static_cast<size_t>(i) >= outputs.size()) {
          fail("output " + std::to_string(i) + " ('" + node.output(i) + "') is not supported");
          break;
        }
        outputs[i].name = node.output(i);
        values_[node.output(i)] = outputs[i];
      }
    } catch (const std::exception& e) {
      // kiln::Error, and std::out_of_range and the like from malformed nodes: reported
      // with the rest, never thrown past the importer.
      fail(e.what());
    }
  }
  for (const auto& output : graph.output()) {
    const auto it = values_.find(output.name());
    if (it == values_.end()) {
      if (poisoned.count(output.name()) == 0)
        problems.push_back("graph output '" + output.name() + "' is not computed");
      continue;
    }
    const Value& v = it->second;
    NodeEntry entry = v.entry ? *v.entry : Materialize(v);
    if (entry.node->is_variable()) {
      // Outputs are operator results: a constant or input output goes through identity.
      const NodePtr node = Node::Create(OpRegistry::Global().Get("identity"), UniqueName(output.name() + "_identity"),
                                        OpRegistry::Global().Get("identity").ParseAttrs({}, output.name()), {entry});
      entry = NodeEntry{node, 0};
    }
    graph_.outputs.push_back(entry);
    graph_.output_names.push_back(output.name());
  }
  if (!problems.empty()) {
    std::string message = "cannot import the ONNX model: " + std::to_string(problems.size()) + " problem(s)";
    for (const auto& p : problems) message += "\n  " + p;
    throw Error(message);
  }
  if (graph_.outputs.empty()) throw Error("the ONNX model has no outputs");
  // Keep only the parameters the graph reads (folding leaves some unused).
  std::set<std::string> used;
  for (const auto& node : TopologicalOrder(graph_.outputs)) {
    if (node->is_variable()) used.insert(node->name);
  }
  for (auto it = graph_.params.begin(); it != graph_.params.end();) {
    it = used.count(it->first) != 0 ? std::next(it) : graph_.params.erase(it);
  }
  return std::move(graph_);
}

// ---------------------------------------------------------------------------------
// Helpers shared by the converters.

int64_t NormalizeAxis(int64_t axis, size_t rank, const std::string& what) {
  // op_util's lets a 0-d tensor have axis 0 (MXNet's rule); ONNX axes need a dimension.
  if (rank == 0) throw Error(what + " " + std::to_string(axis) + " on a 0-d input");
  return op_util::NormalizeAxis(axis, static_cast<int64_t>(rank), what);
}

int64_t Product(const Shape& shape, size_t begin, size_t end) {
  int64_t p = 1;
  for (size_t i = begin; i < end; ++i) p *= shape[i];
  return p;
}

Value BroadcastTo(NodeContext& ctx, const Value& v, const Shape& shape) {
  if (v.shape == shape) return v;
  if (shape.size() < v.shape.size()) {
    throw Error("cannot broadcast " + ShapeToString(v.shape) + " to the lower rank " + ShapeToString(shape));
  }
  // broadcast_to reads a 0 in its shape as "keep the input's dim"; empty results are
  // constants anyway.
  if (std::find(shape.begin(), shape.end(), 0) != shape.end()) return ctx.MakeConstant(Tensor(shape, v.dtype));
  Shape padded(shape.size() - v.shape.size(), 1);
  padded.insert(padded.end(), v.shape.begin(), v.shape.end());
  return ctx.Apply("broadcast_to", {ctx.ReshapeTo(v, padded)}, {{"shape", shape}});
}

Value Unary(NodeContext& ctx, const std::string& op, const AttrMap& attrs) {
  return ctx.Apply(op, {ctx.In(0)}, attrs);
}

Window ResolveWindow(const NodeContext& ctx, const Shape& input, std::vector<int64_t> kernel) {
  const size_t spatial = input.size() - 2;
  if (kernel.size() != spatial) {
    throw Error("kernel_shape " + ShapeToString(kernel) + " does not match the " + std::to_string(spatial) +
                " spatial dims of input " + ShapeToString(input));
  }
  Window w;
  w.kernel = kernel;
  w.strides = ctx.Ints("strides", std::vector<int64_t>(spatial, 1));
  w.dilations = ctx.Ints("dilations", std::vector<int64_t>(spatial, 1));
  if (w.strides.size() != spatial || w.dilations.size() != spatial) throw Error("strides/dilations rank mismatch");
  // SAME padding divides by the strides: reject what is not positive before that.
  for (size_t i = 0; i < spatial; ++i) {
    if (w.strides[i] < 1 || w.dilations[i] < 1 || kernel[i] < 1) {
      throw Error("kernel_shape " + ShapeToString(kernel) + ", strides " + ShapeToString(w.strides) +
                  " and dilations " + ShapeToString(w.dilations) + " must be positive");
    }
  }
  const std::string auto_pad = ctx.Str("auto_pad", std::string("NOTSET"));
  if (auto_pad == "NOTSET") {
    const auto pads = ctx.Ints("pads", std::vector<int64_t>(2 * spatial, 0));
    if (pads.size() != 2 * spatial)
      throw Error("pads has " + std::to_string(pads.size()) + " values, expected " + std::to_string(2 * spatial));
    w.pad_begin.assign(pads.begin(), pads.begin() + spatial);
    w.pad_end.assign(pads.begin() + spatial, pads.end());
  } else if (auto_pad == "VALID") {
    w.pad_begin.assign(spatial, 0);
    w.pad_end.assign(spatial, 0);
  } else if (auto_pad == "SAME_UPPER" || auto_pad == "SAME_LOWER") {
    for (size_t i = 0; i < spatial; ++i) {
      const int64_t in = input[i + 2];
      const int64_t out = (in + w.strides[i] - 1) / w.strides[i];
      const int64_t total = std::max<int64_t>(0, (out - 1) * w.strides[i] + (kernel[i] - 1) * w.dilations[i] + 1 - in);
      const int64_t small = total / 2;
      w.pad_begin.push_back(auto_pad == "SAME_UPPER" ? small : total - small);
      w.pad_end.push_back(total - w.pad_begin.back());
    }
  } else {
    throw Error("auto_pad '" + auto_pad + "' is not one of NOTSET, VALID, SAME_UPPER, SAME_LOWER");
  }
  return w;
}

// kiln's windows are 2-D with symmetric padding; asymmetric padding goes into an
// explicit Pad node in front.
Value PadForWindow(NodeContext& ctx, const Value& x, Window& w, double pad_value) {
  if (w.pad_begin == w.pad_end) return x;
  if (x.shape.size() != 4) throw Error("asymmetric padding is supported for 2-D windows only");
  Value padded = ctx.Apply(
      "Pad", {x},
      {{"mode", "constant"},
       {"constant_value", pad_value},
       {"pad_width", std::vector<int64_t>{0, 0, 0, 0, w.pad_begin[0], w.pad_end[0], w.pad_begin[1], w.pad_end[1]}}});
  std::fill(w.pad_begin.begin(), w.pad_begin.end(), 0);
  std::fill(w.pad_end.begin(), w.pad_end.end(), 0);
  return padded;
}

void Require2D(const Value& x, const std::string& op) {
  if (x.shape.size() != 4) {
    throw Error(op + " on input of shape " + ShapeToString(x.shape) + ": kiln supports 2-D windows (N, C, H, W) only");
  }
}

std::vector<int64_t> Axes(const NodeContext& ctx, size_t input_index, int64_t input_since_opset) {
  if (ctx.opset() >= input_since_opset) {
    return ctx.Has(input_index) ? ctx.ConstInts(input_index, "axes") : std::vector<int64_t>{};
  }
  return ctx.Ints("axes", std::vector<int64_t>{});
}
}  // namespace onnx_import

using onnx_import::Converters;
using onnx_import::Importer;

std::vector<std::string> SupportedOnnxOps() {
  std::vector<std::string> ops;
  for (const auto& [name, conv] : Converters()) ops.push_back(name);
  return ops;
}

namespace {

// ONNX (proto2) stores names as bytes; kiln graphs (proto3) as UTF-8, so a name that
// is not UTF-8 would save into a graph file that does not load.
bool IsUtf8(std::string_view text) {
  size_t i = 0;
  while (i < text.size()) {
    const auto c = static_cast<unsigned char>(text[i]);
    const size_t length = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xE ? 3 : (c >> 3) == 0x1E ? 4 : 0;
    if (length == 0 || i + length > text.size()) return false;
    uint32_t code = length == 1 ? c : c & (0x7F >> length);
    for (size_t k = 1; k < length; ++k) {
      const auto next = static_cast<unsigned char>(text[i + k]);
      if ((next & 0xC0) != 0x80) return false;
      code = (code << 6) | (next & 0x3F);
    }
    static constexpr uint32_t kSmallest[] = {0, 0, 0x80, 0x800, 0x10000};
    if (code < kSmallest[length] || code > 0x10FFFF || (code >= 0xD800 && code <= 0xDFFF)) return false;
    i += length;
  }
  return true;
}

void CheckUtf8(const std::string& text, const std::string& what) {
  if (IsUtf8(text)) return;
  std::string shown;  // bytes above ASCII as \xNN, so that the message itself is text
  for (const char c : Abbreviate(text)) {
    const auto byte = static_cast<unsigned char>(c);
    static const char kHex[] = "0123456789abcdef";
    shown += byte < 0x80 ? std::string(1, c) : std::string("\\x") + kHex[byte >> 4] + kHex[byte & 15];
  }
  throw Error(what + " '" + shown + "' is not valid UTF-8 (kiln stores names as UTF-8)");
}

void CheckNamesAreUtf8(const Graph& graph) {
  for (const NodePtr& node : TopologicalOrder(graph.outputs)) {
    CheckUtf8(node->name, node->is_variable() ? "input name" : "node name");
    for (const auto& [name, value] : node->attrs.values()) {
      if (const auto* text = std::get_if<std::string>(&value)) CheckUtf8(*text, "attribute '" + name + "' of node");
    }
  }
  for (const auto& name : graph.output_names) CheckUtf8(name, "output name");
}

}  // namespace

Graph ImportOnnxModel(const onnx::ModelProto& model, const OnnxImportOptions& options) {
  if (!model.has_graph()) throw Error("the ONNX model has no graph");
  Graph graph = Importer(model, options).Run();
  CheckNamesAreUtf8(graph);
  return graph;
}

Graph ImportOnnx(const std::string& path, const OnnxImportOptions& options) {
  OnnxImportOptions with_dir = options;
  if (with_dir.external_data_dir.empty()) {
    const std::filesystem::path parent = std::filesystem::path(path).parent_path();
    with_dir.external_data_dir = parent.empty() ? "." : parent.string();
  }
  return ImportOnnxBytes(ReadFile(path), with_dir, path);
}

Graph ImportOnnxBytes(std::string_view bytes, const OnnxImportOptions& options, const std::string& source) {
  onnx::ModelProto model;
  QuietProtobufLogs();
  if (bytes.size() > static_cast<size_t>(std::numeric_limits<int>::max()) ||
      !model.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
    throw Error(source + ": not a valid ONNX model (the protobuf does not parse; truncated or not ONNX)");
  }
  if (!model.has_graph() || model.ir_version() <= 0) {
    throw Error(source + ": not an ONNX model (no graph or IR version)");
  }
  try {
    return ImportOnnxModel(model, options);
  } catch (const Error& e) {
    throw Error(source + ": " + e.what());
  }
}

}  // namespace kiln
