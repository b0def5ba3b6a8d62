#include "symbol/onnx/onnx_import.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <numeric>
#include <set>

#include "runtime/error.h"
#include "runtime/file_util.h"
#include "runtime/proto_util.h"
#include "symbol/onnx/onnx.pb.h"
#include "symbol/onnx/onnx_tensor.h"
#include "symbol/op_util.h"

namespace kiln {
namespace {

// An ONNX value as the importer knows it: an entry of the kiln graph, or a constant
// (initializers, Constant nodes and whatever is computed from constants alone), or
// both once a constant has been made a parameter. Shapes are always known.
struct Value {
  std::optional<NodeEntry> entry;
  std::optional<Tensor> constant;
  Shape shape;
  DType dtype = DType::kFloat32;
  std::string name;  // the ONNX name, for parameters and messages
};

class Importer;

// How messages and kiln node names refer to an ONNX node.
std::string NodeLabel(const onnx::NodeProto& node) {
  if (!node.name().empty()) return node.name();
  return node.output_size() > 0 && !node.output(0).empty() ? node.output(0) : node.op_type();
}

// What a converter sees of one ONNX node.
class NodeContext {
 public:
  NodeContext(Importer& importer, const onnx::NodeProto& node, std::vector<std::optional<Value>> inputs, int64_t opset)
      : importer_(importer), node_(node), inputs_(std::move(inputs)), opset_(opset) {
    for (const auto& attr : node.attribute()) attrs_[attr.name()] = &attr;
  }

  int64_t opset() const { return opset_; }
  const onnx::NodeProto& node() const { return node_; }
  size_t num_inputs() const { return inputs_.size(); }
  bool Has(size_t i) const { return i < inputs_.size() && inputs_[i].has_value(); }
  const Value& In(size_t i) const {
    if (!Has(i)) throw Error("input " + std::to_string(i) + " is required");
    return *inputs_[i];
  }
  // A constant input (weights, shapes, axes): the value, or an error naming it.
  const Tensor& Const(size_t i, const std::string& what) const {
    const Value& v = In(i);
    if (!v.constant) throw Error(what + " (input " + std::to_string(i) + " '" + v.name + "') must be a constant");
    return *v.constant;
  }
  std::vector<int64_t> ConstInts(size_t i, const std::string& what) const {
    const Tensor& t = Const(i, what);
    std::vector<int64_t> values(t.size());
    for (int64_t k = 0; k < t.size(); ++k) values[k] = op_util::LoadInt(t, k);
    return values;
  }

  bool HasAttr(const std::string& name) const { return attrs_.count(name) != 0; }
  int64_t Int(const std::string& name, std::optional<int64_t> fallback = std::nullopt) const;
  double Float(const std::string& name, std::optional<double> fallback = std::nullopt) const;
  std::string Str(const std::string& name, std::optional<std::string> fallback = std::nullopt) const;
  std::vector<int64_t> Ints(const std::string& name, std::optional<std::vector<int64_t>> fallback = std::nullopt) const;
  std::vector<double> Floats(const std::string& name) const;
  const onnx::TensorProto& TensorAttr(const std::string& name) const;

  // Applies a kiln operator (constants in, constants out: it runs at import time).
  Value Apply(const std::string& op, const std::vector<Value>& inputs, const AttrMap& attrs = {});
  std::vector<Value> ApplyAll(const std::string& op, const std::vector<Value>& inputs, const AttrMap& attrs = {});
  Value MakeConstant(Tensor tensor);
  Value ReshapeTo(const Value& v, const Shape& shape) {
    return v.shape == shape ? v : Apply("Reshape", {v}, {{"shape", shape}});
  }

 private:
  const onnx::AttributeProto& Attr(const std::string& name, onnx::AttributeProto::AttributeType type) const {
    const auto it = attrs_.find(name);
    if (it == attrs_.end()) throw Error("attribute '" + name + "' is required");
    if (it->second->type() != type) {
      throw Error("attribute '" + name + "' has type " + onnx::AttributeProto::AttributeType_Name(it->second->type()) +
                  ", expected " + onnx::AttributeProto::AttributeType_Name(type));
    }
    return *it->second;
  }

  Importer& importer_;
  const onnx::NodeProto& node_;
  std::vector<std::optional<Value>> inputs_;
  int64_t opset_;
  std::map<std::string, const onnx::AttributeProto*> attrs_;
};

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

using ConvertFn = std::function<std::vector<Value>(NodeContext&)>;

// One ONNX operator type: the attributes it understands (any other is reported as
// unsupported) and its conversion.
struct Converter {
  std::set<std::string> attrs;
  ConvertFn convert;
};

std::map<std::string, Converter>& Converters() {
  static std::map<std::string, Converter> converters;
  return converters;
}

struct RegisterConverter {
  RegisterConverter(std::initializer_list<std::string> op_types, std::set<std::string> attrs, ConvertFn fn) {
    for (const auto& op : op_types) Converters()[op] = Converter{attrs, fn};
  }
};

class Importer {
 public:
  Importer(const onnx::ModelProto& model, const OnnxImportOptions& options) : model_(model), options_(options) {}

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
  // random operators: their values belong to each run).
  if (all_constant && op.has_reference() && op_name.rfind("random_", 0) != 0 && op_name != "Dropout") {
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
      values_[init.name()] = MakeConstant(TensorFromOnnx(init, "initializer '" + init.name() + "'"), init.name());
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
  // problem of the model is reported at once rather than the first one.
  std::set<std::string> poisoned;
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

Tensor ScalarTensor(double value, DType dtype) {
  Tensor t(Shape{}, dtype);
  t.SetDouble(0, value);
  return t;
}

int64_t NormalizeAxis(int64_t axis, size_t rank, const std::string& what = "axis") {
  const int64_t r = static_cast<int64_t>(rank);
  if (axis < -r || axis >= r) {
    throw Error(what + " " + std::to_string(axis) + " is out of range for rank " + std::to_string(rank));
  }
  return axis < 0 ? axis + r : axis;
}

int64_t Product(const Shape& shape, size_t begin, size_t end) {
  int64_t p = 1;
  for (size_t i = begin; i < end; ++i) p *= shape[i];
  return p;
}

Shape BroadcastShape(const Shape& a, const Shape& b) {
  Shape out(std::max(a.size(), b.size()));
  for (size_t i = 0; i < out.size(); ++i) {
    const int64_t da = i < out.size() - a.size() ? 1 : a[i - (out.size() - a.size())];
    const int64_t db = i < out.size() - b.size() ? 1 : b[i - (out.size() - b.size())];
    if (da != db && da != 1 && db != 1) {
      throw Error("shapes " + ShapeToString(a) + " and " + ShapeToString(b) + " cannot be broadcast");
    }
    out[i] = da == 1 ? db : da;
  }
  return out;
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

Value Unary(NodeContext& ctx, const std::string& op, const AttrMap& attrs = {}) {
  return ctx.Apply(op, {ctx.In(0)}, attrs);
}

// Pads as (begin..., end...) per spatial axis, with auto_pad resolved.
struct Window {
  std::vector<int64_t> kernel, strides, dilations, pad_begin, pad_end;
};

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

// ---------------------------------------------------------------------------------
// Converters, one ONNX operator (or family) each.

const RegisterConverter kConv({"Conv"}, {"auto_pad", "dilations", "group", "kernel_shape", "pads", "strides"},
                              [](NodeContext& ctx) {
                                const Value& x = ctx.In(0);
                                const Value& weight = ctx.In(1);
                                Require2D(x, "Conv");
                                if (weight.shape.size() != x.shape.size()) {
                                  throw Error("weight " + ShapeToString(weight.shape) + " must be " +
                                              std::to_string(x.shape.size()) + "-d like input " +
                                              ShapeToString(x.shape));
                                }
                                const std::vector<int64_t> kernel(weight.shape.begin() + 2, weight.shape.end());
                                Window w = ResolveWindow(ctx, x.shape, ctx.Ints("kernel_shape", kernel));
                                const Value input = PadForWindow(ctx, x, w, 0.0);
                                std::vector<Value> inputs = {input, weight};
                                if (ctx.Has(2)) inputs.push_back(ctx.In(2));
                                return std::vector<Value>{ctx.Apply("Convolution", inputs,
                                                                    {{"kernel", w.kernel},
                                                                     {"stride", w.strides},
                                                                     {"dilate", w.dilations},
                                                                     {"pad", w.pad_begin},
                                                                     {"num_filter", weight.shape[0]},
                                                                     {"num_group", ctx.Int("group", 1)},
                                                                     {"no_bias", !ctx.Has(2)}})};
                              });

std::vector<Value> ConvertPool(NodeContext& ctx, const std::string& pool_type) {
  const Value& x = ctx.In(0);
  Require2D(x, ctx.node().op_type());
  if (ctx.opset() >= 8 && ctx.node().output_size() > 1 && !ctx.node().output(1).empty()) {
    throw Error("the Indices output is not supported");
  }
  if (ctx.Int("storage_order", 0) != 0) throw Error("storage_order 1 (column major) is not supported");
  Window w = ResolveWindow(ctx, x.shape, ctx.Ints("kernel_shape"));
  for (const int64_t d : w.dilations) {
    if (d != 1) throw Error("dilations " + ShapeToString(w.dilations) + " are not supported for pooling");
  }
  const bool count_include_pad = ctx.Int("count_include_pad", 0) != 0;
  // Asymmetric pads go into a Pad node, so the pooling sees none; an average that
  // leaves the pads out then is the padded sum over the count of real elements, the
  // same pooling of ones (a constant, folded).
  const bool divide_by_count = pool_type == "avg" && !count_include_pad && w.pad_begin != w.pad_end;
  Window ones_window = w;
  const Value input = PadForWindow(ctx, x, w, pool_type == "max" ? -std::numeric_limits<double>::infinity() : 0.0);
  AttrMap attrs = {{"kernel", w.kernel},
                   {"stride", w.strides},
                   {"pad", w.pad_begin},
                   {"pool_type", pool_type},
                   {"pooling_convention", ctx.Int("ceil_mode", 0) != 0 ? "full" : "valid"}};
  if (pool_type == "avg") attrs.emplace_back("count_include_pad", count_include_pad || divide_by_count);
  const Value y = ctx.Apply("Pooling", {input}, attrs);
  if (!divide_by_count) return {y};
  Tensor ones({1, 1, x.shape[2], x.shape[3]}, x.dtype);
  for (int64_t i = 0; i < ones.size(); ++i) ones.SetDouble(i, 1);
  const Value count =
      ctx.Apply("Pooling", {PadForWindow(ctx, ctx.MakeConstant(std::move(ones)), ones_window, 0.0)}, attrs);
  return {ctx.Apply("broadcast_div", {y, count})};
}

const RegisterConverter kMaxPool({"MaxPool"},
                                 {"auto_pad", "ceil_mode", "dilations", "kernel_shape", "pads", "storage_order",
                                  "strides"},
                                 [](NodeContext& ctx) { return ConvertPool(ctx, "max"); });
const RegisterConverter kAveragePool({"AveragePool"},
                                     {"auto_pad", "ceil_mode", "count_include_pad", "kernel_shape", "pads", "strides"},
                                     [](NodeContext& ctx) { return ConvertPool(ctx, "avg"); });

const RegisterConverter kGlobalPool({"GlobalAveragePool", "GlobalMaxPool"}, {}, [](NodeContext& ctx) {
  Require2D(ctx.In(0), ctx.node().op_type());
  const std::string type = ctx.node().op_type() == "GlobalMaxPool" ? "max" : "avg";
  return std::vector<Value>{
      ctx.Apply("Pooling", {ctx.In(0)}, {{"global_pool", true}, {"pool_type", type}, {"kernel", {1, 1}}})};
});

const RegisterConverter kGemm({"Gemm"}, {"alpha", "beta", "transA", "transB", "broadcast"}, [](NodeContext& ctx) {
  const Value& a = ctx.In(0);
  const Value& b = ctx.In(1);
  const double alpha = ctx.Float("alpha", 1.0), beta = ctx.Float("beta", 1.0);
  const bool trans_a = ctx.Int("transA", 0) != 0, trans_b = ctx.Int("transB", 0) != 0;
  if (a.shape.size() != 2 || b.shape.size() != 2) {
    throw Error("A " + ShapeToString(a.shape) + " and B " + ShapeToString(b.shape) + " must be 2-d");
  }
  const int64_t n = trans_b ? b.shape[0] : b.shape[1];
  const bool has_c = ctx.Has(2) && beta != 0;
  // The common case, a dense layer: FullyConnected with the weight (N, K), folded.
  if (!trans_a && b.constant && (!has_c || (ctx.In(2).constant && ctx.In(2).shape.size() <= 1))) {
    Value weight = trans_b ? b : ctx.Apply("transpose", {b});
    if (alpha != 1) weight = ctx.Apply("_mul_scalar", {weight}, {{"scalar", alpha}});
    std::vector<Value> inputs = {a, weight};
    if (has_c) {
      Value bias = BroadcastTo(ctx, ctx.In(2), {n});
      if (beta != 1) bias = ctx.Apply("_mul_scalar", {bias}, {{"scalar", beta}});
      inputs.push_back(bias);
    }
    return std::vector<Value>{ctx.Apply("FullyConnected", inputs, {{"num_hidden", n}, {"no_bias", !has_c}})};
  }
  Value y = ctx.Apply("dot", {a, b}, {{"transpose_a", trans_a}, {"transpose_b", trans_b}});
  if (alpha != 1) y = ctx.Apply("_mul_scalar", {y}, {{"scalar", alpha}});
  if (has_c) {
    Value c = ctx.In(2);
    if (beta != 1) c = ctx.Apply("_mul_scalar", {c}, {{"scalar", beta}});
    y = ctx.Apply("broadcast_add", {y, c});
  }
  return std::vector<Value>{y};
});

// numpy matmul: 1-d operands are promoted and their axis removed again; batch axes
// broadcast.
const RegisterConverter kMatMul({"MatMul"}, {}, [](NodeContext& ctx) {
  Value a = ctx.In(0), b = ctx.In(1);
  if (a.shape.empty() || b.shape.empty()) throw Error("MatMul of a scalar");
  const bool a_vector = a.shape.size() == 1, b_vector = b.shape.size() == 1;
  if (a_vector) a = ctx.ReshapeTo(a, {1, a.shape[0]});
  if (b_vector) b = ctx.ReshapeTo(b, {b.shape[0], 1});
  const int64_t m = a.shape[a.shape.size() - 2], k = a.shape.back();
  const int64_t n = b.shape.back();
  if (b.shape[b.shape.size() - 2] != k) {
    throw Error("inner dimensions differ: A " + ShapeToString(ctx.In(0).shape) + ", B " +
                ShapeToString(ctx.In(1).shape));
  }
  const Shape a_batch(a.shape.begin(), a.shape.end() - 2), b_batch(b.shape.begin(), b.shape.end() - 2);
  const Shape batch = BroadcastShape(a_batch, b_batch);
  Value y;
  if (b_batch.empty()) {
    if (b.constant) {
      // A dense layer over the last axis: FullyConnected keeps the leading axes.
      const Value weight = ctx.Apply("transpose", {b});
      y = ctx.Apply("FullyConnected", {a, weight}, {{"num_hidden", n}, {"no_bias", true}, {"flatten", false}});
    } else {
      const Value flat = ctx.ReshapeTo(a, {Product(a.shape, 0, a.shape.size() - 1), k});
      Shape out = a.shape;
      out.back() = n;
      y = ctx.ReshapeTo(ctx.Apply("dot", {flat, b}), out);
    }
  } else {
    const int64_t count = Product(batch, 0, batch.size());
    Shape a_full = batch, b_full = batch;
    a_full.insert(a_full.end(), {m, k});
    b_full.insert(b_full.end(), {k, n});
    const Value a3 = ctx.ReshapeTo(BroadcastTo(ctx, a, a_full), {count, m, k});
    const Value b3 = ctx.ReshapeTo(BroadcastTo(ctx, b, b_full), {count, k, n});
    Shape out = batch;
    out.insert(out.end(), {m, n});
    y = ctx.ReshapeTo(ctx.Apply("batch_dot", {a3, b3}), out);
  }
  Shape final_shape = y.shape;
  if (b_vector) final_shape.pop_back();
  if (a_vector) final_shape.erase(final_shape.end() - (b_vector ? 1 : 2));
  return std::vector<Value>{ctx.ReshapeTo(y, final_shape)};
});

struct UnaryMapping {
  const char* onnx;
  const char* kiln;
};

const bool kUnaryRegistered = [] {
  for (const UnaryMapping& m : std::vector<UnaryMapping>{{"Relu", "relu"},
                                                         {"Sigmoid", "sigmoid"},
                                                         {"Tanh", "tanh"},
                                                         {"Exp", "exp"},
                                                         {"Log", "log"},
                                                         {"Sqrt", "sqrt"},
                                                         {"Neg", "negative"},
                                                         {"Abs", "abs"},
                                                         {"Erf", "erf"},
                                                         {"Reciprocal", "reciprocal"},
                                                         {"Softsign", "softsign"},
                                                         {"Floor", "floor"},
                                                         {"Ceil", "ceil"},
                                                         {"Sign", "sign"}}) {
    const std::string kiln = m.kiln;
    RegisterConverter({m.onnx}, {"consumed_inputs"},
                      [kiln](NodeContext& ctx) { return std::vector<Value>{Unary(ctx, kiln)}; });
  }
  return true;
}();

const RegisterConverter kLeakyRelu({"LeakyRelu"}, {"alpha"}, [](NodeContext& ctx) {
  return std::vector<Value>{Unary(ctx, "LeakyReLU", {{"act_type", "leaky"}, {"slope", ctx.Float("alpha", 0.01)}})};
});

const RegisterConverter kIdentity({"Identity"}, {}, [](NodeContext& ctx) { return std::vector<Value>{ctx.In(0)}; });

// Inference only: Dropout passes its input through (the mask, if asked for, is all
// true: bool since opset 10, the input's type before).
const RegisterConverter kDropout({"Dropout"}, {"ratio", "seed", "is_test"}, [](NodeContext& ctx) {
  if (ctx.num_inputs() > 2 && ctx.Has(2)) {
    const Tensor& training = ctx.Const(2, "training_mode");
    if (training.size() > 0 && training.GetDouble(0) != 0) throw Error("training_mode true is not supported");
  }
  Tensor mask(ctx.In(0).shape, ctx.opset() >= 10 ? DType::kBool : ctx.In(0).dtype);
  for (int64_t i = 0; i < mask.size(); ++i) mask.SetDouble(i, 1);
  return std::vector<Value>{ctx.In(0), ctx.MakeConstant(std::move(mask))};
});

const RegisterConverter kClip({"Clip"}, {"min", "max"}, [](NodeContext& ctx) {
  const double inf = std::numeric_limits<double>::infinity();
  const Value& x = ctx.In(0);
  const auto bound = [&](size_t i, const std::string& what) -> std::optional<Value> {
    if (ctx.opset() < 11 || !ctx.Has(i)) return std::nullopt;
    if (ctx.Const(i, what).size() != 1) throw Error(what + " must have one element");
    return ctx.ReshapeTo(ctx.In(i), {});
  };
  const std::optional<Value> min = bound(1, "min"), max = bound(2, "max");
  if (!IsFloat(x.dtype)) {
    if (ctx.opset() < 11) throw Error("Clip before opset 11 takes floating point inputs only");
    // Integer bounds exactly, and only those given: clip's double bounds would round
    // int64 beyond 2^53 and clamp what lies beyond them. max after min: min > max
    // gives max, as ONNX (and numpy) do.
    Value y = x;
    if (min) y = ctx.Apply("broadcast_maximum", {y, ctx.Apply("Cast", {*min}, {{"dtype", x.dtype}})});
    if (max) y = ctx.Apply("broadcast_minimum", {y, ctx.Apply("Cast", {*max}, {{"dtype", x.dtype}})});
    return std::vector<Value>{y};
  }
  double low = -inf, high = inf;
  if (ctx.opset() < 11) {
    low = ctx.Float("min", -inf);
    high = ctx.Float("max", inf);
  } else {
    if (min) low = min->constant->GetDouble(0);
    if (max) high = max->constant->GetDouble(0);
  }
  if (low > high) {
    // ONNX (like numpy) then gives max everywhere.
    low = high;
  }
  const double lowest = -std::numeric_limits<double>::max();
  return std::vector<Value>{
      ctx.Apply("clip", {x}, {{"a_min", std::max(low, lowest)}, {"a_max", std::min(high, -lowest)}})};
});

std::vector<Value> ConvertSoftmax(NodeContext& ctx, const std::string& op) {
  const Value& x = ctx.In(0);
  if (ctx.opset() >= 13) {
    return {ctx.Apply(op, {x}, {{"axis", NormalizeAxis(ctx.Int("axis", -1), x.shape.size())}})};
  }
  // Before opset 13 the input is seen as 2-d: [prod(dims < axis), prod(dims >= axis)].
  const int64_t axis = NormalizeAxis(ctx.Int("axis", 1), x.shape.size());
  const Value flat = ctx.ReshapeTo(x, {Product(x.shape, 0, axis), Product(x.shape, axis, x.shape.size())});
  return {ctx.ReshapeTo(ctx.Apply(op, {flat}, {{"axis", 1}}), x.shape)};
}

const RegisterConverter kSoftmax({"Softmax"}, {"axis"},
                                 [](NodeContext& ctx) { return ConvertSoftmax(ctx, "softmax"); });
const RegisterConverter kLogSoftmax({"LogSoftmax"}, {"axis"},
                                    [](NodeContext& ctx) { return ConvertSoftmax(ctx, "log_softmax"); });

const RegisterConverter kBatchNorm({"BatchNormalization"},
                                   {"epsilon", "momentum", "spatial", "training_mode", "is_test", "consumed_inputs"},
                                   [](NodeContext& ctx) {
                                     if (ctx.Int("training_mode", 0) != 0)
                                       throw Error("training_mode 1 is not supported");
                                     if (ctx.Int("spatial", 1) != 1) throw Error("spatial 0 is not supported");
                                     for (int i = 1; i < ctx.node().output_size(); ++i) {
                                       if (!ctx.node().output(i).empty()) {
                                         throw Error("outputs beyond Y (training statistics) are not supported");
                                       }
                                     }
                                     std::vector<Value> inputs;
                                     for (size_t i = 0; i < 5; ++i) inputs.push_back(ctx.In(i));
                                     return std::vector<Value>{ctx.Apply("BatchNorm", inputs,
                                                                         {{"eps", ctx.Float("epsilon", 1e-5)},
                                                                          {"momentum", ctx.Float("momentum", 0.9)},
                                                                          {"fix_gamma", false},
                                                                          {"use_global_stats", true}})};
                                   });

// Binary arithmetic with multidirectional broadcasting (opset 7 on; the legacy
// broadcast/axis attributes of opset 6 and before are not accepted).
const bool kBinaryRegistered = [] {
  for (const UnaryMapping& m : std::vector<UnaryMapping>{{"Add", "broadcast_add"},
                                                         {"Sub", "broadcast_sub"},
                                                         {"Mul", "broadcast_mul"},
                                                         {"Div", "broadcast_div"},
                                                         {"Pow", "broadcast_power"},
                                                         {"Equal", "broadcast_equal"},
                                                         {"Greater", "broadcast_greater"},
                                                         {"Less", "broadcast_lesser"},
                                                         {"GreaterOrEqual", "broadcast_greater_equal"},
                                                         {"LessOrEqual", "broadcast_lesser_equal"},
                                                         {"And", "broadcast_logical_and"},
                                                         {"Or", "broadcast_logical_or"},
                                                         {"Xor", "broadcast_logical_xor"}}) {
    const std::string kiln = m.kiln;
    RegisterConverter({m.onnx}, {}, [kiln](NodeContext& ctx) {
      Value a = ctx.In(0);
      Value b = ctx.In(1);
      // Pow's exponent may have another type; everything else has one type. An integer
      // base with a float exponent computes in float and truncates back (pow(4, 0.5)
      // is 2), as ONNX Runtime does.
      const DType out_type = a.dtype;
      if (!IsFloat(a.dtype) && IsFloat(b.dtype)) a = ctx.Apply("Cast", {a}, {{"dtype", DType::kFloat64}});
      if (b.dtype != a.dtype) b = ctx.Apply("Cast", {b}, {{"dtype", a.dtype}});
      Value y = ctx.Apply(kiln, {a, b});
      if (y.dtype != out_type) y = ctx.Apply("Cast", {y}, {{"dtype", out_type}});
      // Comparisons and logical operators give bool in ONNX, the operand type in kiln.
      if (ctx.node().op_type() != "Pow" && kiln != "broadcast_add" && kiln != "broadcast_sub" &&
          kiln != "broadcast_mul" && kiln != "broadcast_div") {
        y = ctx.Apply("Cast", {y}, {{"dtype", DType::kBool}});
      }
      return std::vector<Value>{y};
    });
  }
  // Variadic: folded pairwise.
  for (const UnaryMapping& m : std::vector<UnaryMapping>{
           {"Max", "broadcast_maximum"}, {"Min", "broadcast_minimum"}, {"Sum", "broadcast_add"}}) {
    const std::string kiln = m.kiln;
    RegisterConverter({m.onnx}, {}, [kiln](NodeContext& ctx) {
      Value y = ctx.In(0);
      for (size_t i = 1; i < ctx.num_inputs(); ++i) y = ctx.Apply(kiln, {y, ctx.In(i)});
      return std::vector<Value>{y};
    });
  }
  return true;
}();

const RegisterConverter kFlatten({"Flatten"}, {"axis"}, [](NodeContext& ctx) {
  const Value& x = ctx.In(0);
  const int64_t rank = static_cast<int64_t>(x.shape.size());
  int64_t axis = ctx.Int("axis", 1);
  if (axis < -rank || axis > rank)
    throw Error("axis " + std::to_string(axis) + " out of range for rank " + std::to_string(rank));
  if (axis < 0) axis += rank;
  return std::vector<Value>{ctx.ReshapeTo(x, {Product(x.shape, 0, axis), Product(x.shape, axis, rank)})};
});

const RegisterConverter kReshape({"Reshape"}, {"allowzero", "shape"}, [](NodeContext& ctx) {
  const Value& x = ctx.In(0);
  const std::vector<int64_t> spec = ctx.opset() >= 5 ? ctx.ConstInts(1, "shape") : ctx.Ints("shape");
  const bool allow_zero = ctx.Int("allowzero", 0) != 0;
  Shape out(spec.size());
  int64_t infer = -1, known = 1;
  for (size_t i = 0; i < spec.size(); ++i) {
    if (spec[i] == -1) {
      if (infer >= 0) throw Error("shape " + ShapeToString(spec) + " has more than one -1");
      infer = static_cast<int64_t>(i);
      continue;
    }
    if (spec[i] == 0 && !allow_zero) {
      if (i >= x.shape.size()) throw Error("shape " + ShapeToString(spec) + " copies a dim (0) the input lacks");
      out[i] = x.shape[i];
    } else if (spec[i] < 0) {
      throw Error("shape " + ShapeToString(spec) + " has a negative dim");
    } else {
      out[i] = spec[i];
    }
    known *= out[i];
  }
  const int64_t total = Product(x.shape, 0, x.shape.size());
  if (infer >= 0) {
    if (known == 0 || total % known != 0) {
      throw Error("cannot reshape " + ShapeToString(x.shape) + " to " + ShapeToString(spec));
    }
    out[infer] = total / known;
  }
  return std::vector<Value>{ctx.ReshapeTo(x, out)};
});

const RegisterConverter kTranspose({"Transpose"}, {"perm"}, [](NodeContext& ctx) {
  const Value& x = ctx.In(0);
  std::vector<int64_t> perm(x.shape.size());
  std::iota(perm.rbegin(), perm.rend(), 0);
  perm = ctx.Ints("perm", perm);
  return std::vector<Value>{ctx.Apply("transpose", {x}, {{"axes", perm}})};
});

const RegisterConverter kConcat({"Concat"}, {"axis"}, [](NodeContext& ctx) {
  std::vector<Value> inputs;
  for (size_t i = 0; i < ctx.num_inputs(); ++i) inputs.push_back(ctx.In(i));
  if (inputs.empty()) throw Error("no inputs");
  const int64_t axis = NormalizeAxis(ctx.Int("axis", 1), inputs.at(0).shape.size());
  return std::vector<Value>{
      ctx.Apply("Concat", inputs, {{"dim", axis}, {"num_args", static_cast<int64_t>(inputs.size())}})};
});

const RegisterConverter kGather({"Gather"}, {"axis"}, [](NodeContext& ctx) {
  const Value& data = ctx.In(0);
  const int64_t axis = NormalizeAxis(ctx.Int("axis", 0), data.shape.size());
  // ONNX allows negative indices in [-n, n): the wrap mode maps them.
  return std::vector<Value>{ctx.Apply("take", {data, ctx.In(1)}, {{"axis", axis}, {"mode", "wrap"}})};
});

Shape SqueezeShape(const Shape& in, std::vector<int64_t> axes) {
  for (auto& a : axes) a = NormalizeAxis(a, in.size());
  Shape out;
  for (size_t i = 0; i < in.size(); ++i) {
    const bool listed = std::find(axes.begin(), axes.end(), static_cast<int64_t>(i)) != axes.end();
    if (listed && in[i] != 1)
      throw Error("cannot squeeze axis " + std::to_string(i) + " of size " + std::to_string(in[i]));
    if (!(listed || (axes.empty() && in[i] == 1))) out.push_back(in[i]);
  }
  return out;
}

const RegisterConverter kSqueeze({"Squeeze"}, {"axes"}, [](NodeContext& ctx) {
  const Value& x = ctx.In(0);
  return std::vector<Value>{ctx.ReshapeTo(x, SqueezeShape(x.shape, Axes(ctx, 1, 13)))};
});

const RegisterConverter kUnsqueeze({"Unsqueeze"}, {"axes"}, [](NodeContext& ctx) {
  const Value& x = ctx.In(0);
  std::vector<int64_t> axes = Axes(ctx, 1, 13);
  const size_t rank = x.shape.size() + axes.size();
  for (auto& a : axes) a = NormalizeAxis(a, rank);
  std::sort(axes.begin(), axes.end());
  if (std::adjacent_find(axes.begin(), axes.end()) != axes.end()) throw Error("repeated axes");
  Shape out;
  size_t next = 0;
  for (size_t i = 0; i < rank; ++i) {
    out.push_back(std::binary_search(axes.begin(), axes.end(), static_cast<int64_t>(i)) ? 1 : x.shape.at(next++));
  }
  return std::vector<Value>{ctx.ReshapeTo(x, out)};
});

std::vector<Value> ConvertReduce(NodeContext& ctx, const std::string& op, int64_t axes_input_since) {
  const Value& x = ctx.In(0);
  std::vector<int64_t> axes = Axes(ctx, 1, axes_input_since);
  const bool keepdims = ctx.Int("keepdims", 1) != 0;
  if (axes.empty() && ctx.Int("noop_with_empty_axes", 0) != 0) return {x};
  for (auto& a : axes) a = NormalizeAxis(a, x.shape.size());
  AttrMap attrs = {{"keepdims", keepdims}};
  if (!axes.empty()) attrs.emplace_back("axis", axes);
  return {ctx.Apply(op, {x}, attrs)};
}

const RegisterConverter kReduceMean({"ReduceMean"}, {"axes", "keepdims", "noop_with_empty_axes"},
                                    [](NodeContext& ctx) { return ConvertReduce(ctx, "mean", 18); });
const RegisterConverter kReduceSum({"ReduceSum"}, {"axes", "keepdims", "noop_with_empty_axes"},
                                   [](NodeContext& ctx) { return ConvertReduce(ctx, "sum", 13); });
const RegisterConverter kReduceMax({"ReduceMax"}, {"axes", "keepdims", "noop_with_empty_axes"},
                                   [](NodeContext& ctx) { return ConvertReduce(ctx, "max", 18); });
const RegisterConverter kReduceMin({"ReduceMin"}, {"axes", "keepdims", "noop_with_empty_axes"},
                                   [](NodeContext& ctx) { return ConvertReduce(ctx, "min", 18); });
const RegisterConverter kReduceProd({"ReduceProd"}, {"axes", "keepdims", "noop_with_empty_axes"},
                                    [](NodeContext& ctx) { return ConvertReduce(ctx, "prod", 18); });

const RegisterConverter kConstant(
    {"Constant"}, {"value", "value_float", "value_floats", "value_int", "value_ints"}, [](NodeContext& ctx) {
      if (ctx.HasAttr("value")) {
        return std::vector<Value>{ctx.MakeConstant(TensorFromOnnx(ctx.TensorAttr("value"), "value"))};
      }
      if (ctx.HasAttr("value_float")) {
        return std::vector<Value>{ctx.MakeConstant(ScalarTensor(ctx.Float("value_float"), DType::kFloat32))};
      }
      if (ctx.HasAttr("value_int")) {
        return std::vector<Value>{
            ctx.MakeConstant(ScalarTensor(static_cast<double>(ctx.Int("value_int")), DType::kInt64))};
      }
      if (ctx.HasAttr("value_floats")) {
        const auto values = ctx.Floats("value_floats");
        return std::vector<Value>{ctx.MakeConstant(Tensor::FromDoubles({static_cast<int64_t>(values.size())}, values))};
      }
      const auto ints = ctx.Ints("value_ints");
      Tensor t({static_cast<int64_t>(ints.size())}, DType::kInt64);
      std::copy(ints.begin(), ints.end(), t.data_as<int64_t>());
      return std::vector<Value>{ctx.MakeConstant(std::move(t))};
    });

const RegisterConverter kConstantOfShape({"ConstantOfShape"}, {"value"}, [](NodeContext& ctx) {
  const Shape shape = ctx.ConstInts(0, "shape");
  if (std::any_of(shape.begin(), shape.end(), [](int64_t d) { return d < 0; })) {
    throw Error("shape " + ShapeToString(shape) + " has a negative dim");
  }
  Tensor fill =
      ctx.HasAttr("value") ? TensorFromOnnx(ctx.TensorAttr("value"), "value") : ScalarTensor(0.0, DType::kFloat32);
  if (fill.size() != 1) throw Error("value must have one element, given " + std::to_string(fill.size()));
  Tensor t(shape, fill.dtype());
  // Integers exactly: through a double, int64 beyond 2^53 would round.
  for (int64_t i = 0; i < t.size(); ++i) {
    if (IsFloat(fill.dtype())) {
      t.SetDouble(i, fill.GetDouble(0));
    } else {
      op_util::StoreInt(t, i, op_util::LoadInt(fill, 0));
    }
  }
  return std::vector<Value>{ctx.MakeConstant(std::move(t))};
});

const RegisterConverter kShape({"Shape"}, {"start", "end"}, [](NodeContext& ctx) {
  const Shape& shape = ctx.In(0).shape;
  const int64_t rank = static_cast<int64_t>(shape.size());
  const auto clamp = [&](int64_t v) { return std::clamp(v < 0 ? v + rank : v, int64_t{0}, rank); };
  const int64_t start = clamp(ctx.Int("start", 0)), end = clamp(ctx.Int("end", rank));
  Tensor t({std::max<int64_t>(0, end - start)}, DType::kInt64);
  for (int64_t i = start; i < end; ++i) t.data_as<int64_t>()[i - start] = shape[i];
  return std::vector<Value>{ctx.MakeConstant(std::move(t))};
});

const RegisterConverter kCast({"Cast"}, {"to", "saturate"}, [](NodeContext& ctx) {
  const auto dtype = DTypeFromOnnx(static_cast<int32_t>(ctx.Int("to")));
  if (!dtype) throw Error("cast to " + OnnxTypeName(static_cast<int32_t>(ctx.Int("to"))) + " is not supported");
  return std::vector<Value>{Unary(ctx, "Cast", {{"dtype", *dtype}})};
});

const RegisterConverter kExpand({"Expand"}, {}, [](NodeContext& ctx) {
  const Value& x = ctx.In(0);
  return std::vector<Value>{BroadcastTo(ctx, x, BroadcastShape(x.shape, ctx.ConstInts(1, "shape")))};
});

std::string TupleText(const std::vector<std::optional<int64_t>>& values) {
  std::string text = "(";
  for (size_t i = 0; i < values.size(); ++i) {
    text += (i ? ", " : "") + (values[i] ? std::to_string(*values[i]) : std::string("None"));
  }
  return text + (values.size() == 1 ? ",)" : ")");
}

const RegisterConverter kSlice({"Slice"}, {"starts", "ends", "axes"}, [](NodeContext& ctx) {
  const Value& x = ctx.In(0);
  const size_t rank = x.shape.size();
  std::vector<int64_t> starts, ends, axes, steps;
  if (ctx.opset() >= 10) {
    starts = ctx.ConstInts(1, "starts");
    ends = ctx.ConstInts(2, "ends");
    if (ctx.Has(3)) axes = ctx.ConstInts(3, "axes");
    if (ctx.Has(4)) steps = ctx.ConstInts(4, "steps");
  } else {
    starts = ctx.Ints("starts");
    ends = ctx.Ints("ends");
    axes = ctx.Ints("axes", std::vector<int64_t>{});
  }
  if (axes.empty()) {
    axes.resize(starts.size());
    std::iota(axes.begin(), axes.end(), 0);
  }
  if (steps.empty()) steps.assign(starts.size(), 1);
  if (ends.size() != starts.size() || axes.size() != starts.size() || steps.size() != starts.size()) {
    throw Error("starts, ends, axes and steps differ in length");
  }
  std::vector<std::optional<int64_t>> begin(rank), end(rank), step(rank);
  for (size_t i = 0; i < starts.size(); ++i) {
    const int64_t axis = NormalizeAxis(axes[i], rank);
    const int64_t dim = x.shape[axis];
    if (steps[i] == 0) throw Error("step 0 on axis " + std::to_string(axis));
    // ONNX clamps starts into [0, dim] ([0, dim - 1] for a negative step: unlike
    // numpy, a start before the beginning still takes element 0) and ends into [0, dim]
    // ([-1, dim - 1]). MXNet's slice takes them in range, with None for the end "past
    // the beginning" in a negative step.
    const auto resolve = [&](int64_t v, bool is_end) -> std::optional<int64_t> {
      if (v < 0) v += dim;
      if (steps[i] > 0) return std::clamp<int64_t>(v, 0, dim);
      if (v < 0) return is_end ? std::nullopt : std::optional<int64_t>(0);
      return std::min<int64_t>(v, dim - 1);
    };
    begin[axis] = resolve(starts[i], false);
    end[axis] = resolve(ends[i], true);
    step[axis] = steps[i];
  }
  return std::vector<Value>{
      ctx.Apply("slice", {x}, {{"begin", TupleText(begin)}, {"end", TupleText(end)}, {"step", TupleText(step)}})};
});

// Pads of N-d tensors as (begin..., end...). kiln's Pad (MXNet's) pads H and W of 4-d
// and D, H, W of 5-d tensors.
const RegisterConverter kPad({"Pad"}, {"mode", "pads", "value"}, [](NodeContext& ctx) {
  const Value& x = ctx.In(0);
  const std::string mode = ctx.Str("mode", std::string("constant"));
  std::vector<int64_t> pads;
  double value = 0;
  if (ctx.opset() >= 11) {
    pads = ctx.ConstInts(1, "pads");
    if (ctx.Has(2)) value = ctx.Const(2, "constant_value").GetDouble(0);
  } else {
    pads = ctx.Ints("pads");
    value = ctx.Float("value", 0.0);
  }
  const size_t rank = x.shape.size();
  if (pads.size() != 2 * rank) {
    throw Error("pads has " + std::to_string(pads.size()) + " values, expected " + std::to_string(2 * rank));
  }
  if (std::all_of(pads.begin(), pads.end(), [](int64_t p) { return p == 0; })) return std::vector<Value>{x};
  if (std::any_of(pads.begin(), pads.end(), [](int64_t p) { return p < 0; })) {
    throw Error("negative pads (cropping) " + ShapeToString(pads) + " are not supported");
  }
  if ((rank != 4 && rank != 5) || pads[0] != 0 || pads[1] != 0 || pads[rank] != 0 || pads[rank + 1] != 0) {
    throw Error("pads " + ShapeToString(pads) + " on a rank-" + std::to_string(rank) +
                " input: kiln pads the spatial axes of 4-d and 5-d inputs only");
  }
  std::vector<int64_t> width;
  for (size_t i = 0; i < rank; ++i) width.insert(width.end(), {pads[i], pads[i + rank]});
  return std::vector<Value>{ctx.Apply("Pad", {x}, {{"mode", mode}, {"pad_width", width}, {"constant_value", value}})};
});

// LayerNormalization (opset 17) in primitives: kiln normalizes with reductions.
const RegisterConverter kLayerNorm({"LayerNormalization"}, {"axis", "epsilon", "stash_type"}, [](NodeContext& ctx) {
  const Value& x = ctx.In(0);
  if (ctx.Int("stash_type", 1) != 1) throw Error("stash_type other than 1 (float) is not supported");
  const int64_t axis = NormalizeAxis(ctx.Int("axis", -1), x.shape.size());
  std::vector<int64_t> axes;
  for (int64_t a = axis; a < static_cast<int64_t>(x.shape.size()); ++a) axes.push_back(a);
  const AttrMap reduce = {{"axis", axes}, {"keepdims", true}};
  const Value mean = ctx.Apply("mean", {x}, reduce);
  const Value centered = ctx.Apply("broadcast_sub", {x, mean});
  const Value variance = ctx.Apply("mean", {ctx.Apply("square", {centered})}, reduce);
  const Value inv_std =
      ctx.Apply("rsqrt", {ctx.Apply("_plus_scalar", {variance}, {{"scalar", ctx.Float("epsilon", 1e-5)}})});
  Value y = ctx.Apply("broadcast_mul", {ctx.Apply("broadcast_mul", {centered, inv_std}), ctx.In(1)});
  if (ctx.Has(2)) y = ctx.Apply("broadcast_add", {y, ctx.In(2)});
  return std::vector<Value>{y, mean, inv_std};
});

// ONNX gives int64 indices; kiln's argmax/argmin give them as floats (MXNet's way).
std::vector<Value> ConvertArg(NodeContext& ctx, const std::string& op) {
  const Value& x = ctx.In(0);
  if (ctx.Int("select_last_index", 0) != 0) throw Error("select_last_index 1 is not supported");
  const int64_t axis = NormalizeAxis(ctx.Int("axis", 0), x.shape.size());
  const Value index = ctx.Apply(op, {x}, {{"axis", axis}, {"keepdims", ctx.Int("keepdims", 1) != 0}});
  return {ctx.Apply("Cast", {index}, {{"dtype", DType::kInt64}})};
}

const RegisterConverter kArgMax({"ArgMax"}, {"axis", "keepdims", "select_last_index"},
                                [](NodeContext& ctx) { return ConvertArg(ctx, "argmax"); });
const RegisterConverter kArgMin({"ArgMin"}, {"axis", "keepdims", "select_last_index"},
                                [](NodeContext& ctx) { return ConvertArg(ctx, "argmin"); });

const RegisterConverter kMean({"Mean"}, {}, [](NodeContext& ctx) {
  Value sum = ctx.In(0);
  for (size_t i = 1; i < ctx.num_inputs(); ++i) sum = ctx.Apply("broadcast_add", {sum, ctx.In(i)});
  return std::vector<Value>{ctx.Apply("_div_scalar", {sum}, {{"scalar", static_cast<double>(ctx.num_inputs())}})};
});

const RegisterConverter kSize({"Size"}, {}, [](NodeContext& ctx) {
  return std::vector<Value>{ctx.MakeConstant(
      ScalarTensor(static_cast<double>(Product(ctx.In(0).shape, 0, ctx.In(0).shape.size())), DType::kInt64))};
});

const RegisterConverter kWhere({"Where"}, {}, [](NodeContext& ctx) {
  const Shape shape = BroadcastShape(BroadcastShape(ctx.In(0).shape, ctx.In(1).shape), ctx.In(2).shape);
  return std::vector<Value>{ctx.Apply("where", {BroadcastTo(ctx, ctx.In(0), shape), BroadcastTo(ctx, ctx.In(1), shape),
                                                BroadcastTo(ctx, ctx.In(2), shape)})};
});

const RegisterConverter kTile({"Tile"}, {}, [](NodeContext& ctx) {
  const auto reps = ctx.ConstInts(1, "repeats");
  if (reps.size() != ctx.In(0).shape.size()) throw Error("repeats must have one value per axis");
  return std::vector<Value>{ctx.Apply("tile", {ctx.In(0)}, {{"reps", reps}})};
});

const RegisterConverter kElu({"Elu"}, {"alpha"}, [](NodeContext& ctx) {
  return std::vector<Value>{Unary(ctx, "LeakyReLU", {{"act_type", "elu"}, {"slope", ctx.Float("alpha", 1.0)}})};
});

// Range of constants, folded (start + k * delta for k < ceil((limit - start) / delta)).
const RegisterConverter kRange({"Range"}, {}, [](NodeContext& ctx) {
  const Tensor& start = ctx.Const(0, "start");
  const double first = start.GetDouble(0), limit = ctx.Const(1, "limit").GetDouble(0);
  const double delta = ctx.Const(2, "delta").GetDouble(0);
  if (delta == 0) throw Error("delta 0");
  const int64_t count = std::max<int64_t>(0, static_cast<int64_t>(std::ceil((limit - first) / delta)));
  Tensor t({count}, start.dtype());
  for (int64_t k = 0; k < count; ++k) t.SetDouble(k, first + k * delta);
  return std::vector<Value>{ctx.MakeConstant(std::move(t))};
});

const RegisterConverter kSoftplus({"Softplus"}, {}, [](NodeContext& ctx) {
  return std::vector<Value>{Unary(ctx, "Activation", {{"act_type", "softrelu"}})};
});

// kiln's selu (MXNet's) has the constants of the SELU paper, ONNX's defaults.
const RegisterConverter kSelu({"Selu"}, {"alpha", "gamma"}, [](NodeContext& ctx) {
  const double alpha = ctx.Float("alpha", 1.67326319217681884765625);
  const double gamma = ctx.Float("gamma", 1.05070102214813232421875);
  if (std::fabs(alpha - 1.6732632423543772) > 1e-6 || std::fabs(gamma - 1.0507009873554805) > 1e-6) {
    throw Error("alpha " + std::to_string(alpha) + " and gamma " + std::to_string(gamma) +
                " other than SELU's constants are not supported");
  }
  return std::vector<Value>{Unary(ctx, "LeakyReLU", {{"act_type", "selu"}})};
});

// PRelu with any slope that broadcasts to x: x where x >= 0, else slope * x (a
// select, so that x = inf gives inf rather than inf - inf).
const RegisterConverter kPRelu({"PRelu"}, {}, [](NodeContext& ctx) {
  const Value& x = ctx.In(0);
  const Value scaled = BroadcastTo(ctx, ctx.Apply("broadcast_mul", {x, ctx.In(1)}), x.shape);
  const Value positive = ctx.Apply("_greater_equal_scalar", {x}, {{"scalar", 0.0}});
  return std::vector<Value>{ctx.Apply("where", {positive, x, scaled})};
});

const RegisterConverter kHardSigmoid({"HardSigmoid"}, {"alpha", "beta"}, [](NodeContext& ctx) {
  const Value scaled = Unary(ctx, "_mul_scalar", {{"scalar", ctx.Float("alpha", 0.2)}});
  const Value shifted = ctx.Apply("_plus_scalar", {scaled}, {{"scalar", ctx.Float("beta", 0.5)}});
  return std::vector<Value>{ctx.Apply("clip", {shifted}, {{"a_min", 0.0}, {"a_max", 1.0}})};
});

// Split into the given sizes (attribute before opset 13, input since), or equal parts.
const RegisterConverter kSplit({"Split"}, {"axis", "split"}, [](NodeContext& ctx) {
  const Value& x = ctx.In(0);
  const int64_t axis = NormalizeAxis(ctx.Int("axis", 0), x.shape.size());
  std::vector<int64_t> sizes = ctx.opset() >= 13 ? (ctx.Has(1) ? ctx.ConstInts(1, "split") : std::vector<int64_t>{})
                                                 : ctx.Ints("split", std::vector<int64_t>{});
  const int64_t parts = ctx.node().output_size();
  if (sizes.empty()) {
    if (parts == 0 || x.shape[axis] % parts != 0) {
      throw Error("axis " + std::to_string(axis) + " of size " + std::to_string(x.shape[axis]) +
                  " does not split into " + std::to_string(parts) + " equal parts");
    }
    sizes.assign(parts, x.shape[axis] / parts);
  }
  if (static_cast<int64_t>(sizes.size()) != parts) throw Error("split sizes do not match the outputs");
  std::vector<Value> outputs;
  int64_t begin = 0;
  for (const int64_t size : sizes) {
    outputs.push_back(ctx.Apply("slice_axis", {x}, {{"axis", axis}, {"begin", begin}, {"end", begin + size}}));
    begin += size;
  }
  if (begin != x.shape[axis])
    throw Error("split sizes add up to " + std::to_string(begin) + ", not " + std::to_string(x.shape[axis]));
  return outputs;
});

// DepthToSpace and SpaceToDepth are a reshape, a transpose and a reshape.
const RegisterConverter kDepthToSpace({"DepthToSpace"}, {"blocksize", "mode"}, [](NodeContext& ctx) {
  const Value& x = ctx.In(0);
  if (x.shape.size() != 4) throw Error("input must be 4-d (N, C, H, W)");
  const int64_t b = ctx.Int("blocksize"), n = x.shape[0], c = x.shape[1], h = x.shape[2], w = x.shape[3];
  if (b <= 0 || c % (b * b) != 0) throw Error("channels " + std::to_string(c) + " not divisible by blocksize^2");
  const bool crd = ctx.Str("mode", std::string("DCR")) == "CRD";
  const Value split = ctx.ReshapeTo(x, crd ? Shape{n, c / (b * b), b, b, h, w} : Shape{n, b, b, c / (b * b), h, w});
  const std::vector<int64_t> perm =
      crd ? std::vector<int64_t>{0, 1, 4, 2, 5, 3} : std::vector<int64_t>{0, 3, 4, 1, 5, 2};
  return std::vector<Value>{
      ctx.ReshapeTo(ctx.Apply("transpose", {split}, {{"axes", perm}}), {n, c / (b * b), h * b, w * b})};
});

const RegisterConverter kSpaceToDepth({"SpaceToDepth"}, {"blocksize"}, [](NodeContext& ctx) {
  const Value& x = ctx.In(0);
  if (x.shape.size() != 4) throw Error("input must be 4-d (N, C, H, W)");
  const int64_t b = ctx.Int("blocksize"), n = x.shape[0], c = x.shape[1], h = x.shape[2], w = x.shape[3];
  if (b <= 0 || h % b != 0 || w % b != 0) throw Error("H and W must be divisible by blocksize");
  const Value split = ctx.ReshapeTo(x, {n, c, h / b, b, w / b, b});
  return std::vector<Value>{
      ctx.ReshapeTo(ctx.Apply("transpose", {split}, {{"axes", std::vector<int64_t>{0, 3, 5, 1, 2, 4}}}),
                    {n, c * b * b, h / b, w / b})};
});

// InstanceNormalization: per (image, channel) statistics over the spatial axes.
const RegisterConverter kInstanceNorm({"InstanceNormalization"}, {"epsilon"}, [](NodeContext& ctx) {
  const Value& x = ctx.In(0);
  if (x.shape.size() < 3) throw Error("input must have spatial axes");
  std::vector<int64_t> axes;
  for (size_t a = 2; a < x.shape.size(); ++a) axes.push_back(static_cast<int64_t>(a));
  const AttrMap reduce = {{"axis", axes}, {"keepdims", true}};
  const Value mean = ctx.Apply("mean", {x}, reduce);
  const Value centered = ctx.Apply("broadcast_sub", {x, mean});
  const Value variance = ctx.Apply("mean", {ctx.Apply("square", {centered})}, reduce);
  const Value inv_std =
      ctx.Apply("rsqrt", {ctx.Apply("_plus_scalar", {variance}, {{"scalar", ctx.Float("epsilon", 1e-5)}})});
  Shape channel(x.shape.size(), 1);
  channel[1] = x.shape[1];
  const Value scale = ctx.ReshapeTo(ctx.In(1), channel);
  const Value bias = ctx.ReshapeTo(ctx.In(2), channel);
  const Value normalized = ctx.Apply("broadcast_mul", {centered, inv_std});
  return std::vector<Value>{ctx.Apply("broadcast_add", {ctx.Apply("broadcast_mul", {normalized, scale}), bias})};
});

// Reductions that are a reduction of a pointwise function (and maybe one after).
struct ComposedReduce {
  const char* onnx;
  const char* before;  // applied to the input ("" for none)
  const char* reduce;
  const char* after;  // applied to the result
};

const bool kComposedReduceRegistered = [] {
  for (const ComposedReduce& r : std::vector<ComposedReduce>{{"ReduceL1", "abs", "sum", ""},
                                                             {"ReduceL2", "square", "sum", "sqrt"},
                                                             {"ReduceSumSquare", "square", "sum", ""},
                                                             {"ReduceLogSum", "", "sum", "log"}}) {
    const std::string before = r.before, reduce = r.reduce, after = r.after;
    RegisterConverter({r.onnx}, {"axes", "keepdims", "noop_with_empty_axes"},
                      [before, reduce, after](NodeContext& ctx) {
                        const Value& x = ctx.In(0);
                        std::vector<int64_t> axes = Axes(ctx, 1, 18);
                        if (axes.empty() && ctx.Int("noop_with_empty_axes", 0) != 0) return std::vector<Value>{x};
                        for (auto& a : axes) a = NormalizeAxis(a, x.shape.size());
                        AttrMap attrs = {{"keepdims", ctx.Int("keepdims", 1) != 0}};
                        if (!axes.empty()) attrs.emplace_back("axis", axes);
                        Value y = ctx.Apply(reduce, {before.empty() ? x : ctx.Apply(before, {x})}, attrs);
                        if (!after.empty()) y = ctx.Apply(after, {y});
                        return std::vector<Value>{y};
                      });
  }
  return true;
}();

// log(sum(exp(x))) computed as max + log(sum(exp(x - max))), which cannot overflow;
// an infinite max is not subtracted (inf - inf would make the -inf and inf results
// NaN).
const RegisterConverter kReduceLogSumExp(
    {"ReduceLogSumExp"}, {"axes", "keepdims", "noop_with_empty_axes"}, [](NodeContext& ctx) {
      const Value& x = ctx.In(0);
      std::vector<int64_t> axes = Axes(ctx, 1, 18);
      for (auto& a : axes) a = NormalizeAxis(a, x.shape.size());
      AttrMap keep = {{"keepdims", true}};
      if (!axes.empty()) keep.emplace_back("axis", axes);
      const Value max = ctx.Apply("max", {x}, keep);
      const Value finite =
          ctx.Apply("_lesser_equal_scalar", {ctx.Apply("broadcast_sub", {max, max})}, {{"scalar", 0.0}});
      const Value peak = ctx.Apply("where", {finite, max, finite});
      const Value shifted = ctx.Apply("broadcast_sub", {x, peak});
      const Value sum = ctx.Apply("sum", {ctx.Apply("exp", {shifted})}, keep);
      Value y = ctx.Apply("broadcast_add", {ctx.Apply("log", {sum}), peak});
      if (ctx.Int("keepdims", 1) == 0) {
        Shape out;
        for (size_t i = 0; i < x.shape.size(); ++i) {
          const bool reduced =
              axes.empty() || std::find(axes.begin(), axes.end(), static_cast<int64_t>(i)) != axes.end();
          if (!reduced) out.push_back(x.shape[i]);
        }
        y = ctx.ReshapeTo(y, out);
      }
      return std::vector<Value>{y};
    });

// x where x > alpha, else 0.
const RegisterConverter kThresholdedRelu({"ThresholdedRelu"}, {"alpha"}, [](NodeContext& ctx) {
  const Value& x = ctx.In(0);
  Tensor alpha({1}, x.dtype);
  alpha.SetDouble(0, ctx.Float("alpha", 1.0));
  const Value mask = ctx.Apply("broadcast_greater", {x, ctx.MakeConstant(std::move(alpha))});
  // A select (the mask is the zero), as x * mask gives NaN for x = -inf.
  return std::vector<Value>{ctx.Apply("where", {mask, x, mask})};
});

const RegisterConverter kNot({"Not"}, {}, [](NodeContext& ctx) {
  return std::vector<Value>{ctx.Apply("Cast", {Unary(ctx, "logical_not")}, {{"dtype", DType::kBool}})};
});

// ONNX Mod: fmod 0 takes the divisor's sign (Python's %, kiln's mod); fmod 1 the
// dividend's (C's fmod), which is x - trunc(x / y) * y.
const RegisterConverter kMod({"Mod"}, {"fmod"}, [](NodeContext& ctx) {
  const Value& a = ctx.In(0);
  const Value& b = ctx.In(1);
  if (ctx.Int("fmod", 0) == 0) return std::vector<Value>{ctx.Apply("broadcast_mod", {a, b})};
  if (!IsFloat(a.dtype)) {
    // Integers: C's % truncates; a - trunc-div(a, b) * b with kiln's truncating division.
    const Value quotient = ctx.Apply("broadcast_div", {a, b});
    return std::vector<Value>{ctx.Apply("broadcast_sub", {a, ctx.Apply("broadcast_mul", {quotient, b})})};
  }
  throw Error("fmod 1 on floating point inputs is not supported");
});

// ONNX Round rounds halves to even: floor(x + 0.5), less one where that was a tie that
// landed on an odd number. From 2^mantissa on every value is an integer and x + 0.5
// itself rounds (to even: odd x would gain one), so those stay as they are.
const RegisterConverter kRound({"Round"}, {}, [](NodeContext& ctx) {
  const Value& x = ctx.In(0);
  const Value shifted = ctx.Apply("_plus_scalar", {x}, {{"scalar", 0.5}});
  const Value down = ctx.Apply("floor", {shifted});
  const Value tie = ctx.Apply("broadcast_equal", {down, shifted});
  const Value odd = ctx.Apply("_mod_scalar", {down}, {{"scalar", 2.0}});
  const Value rounded = ctx.Apply("broadcast_sub", {down, ctx.Apply("broadcast_mul", {tie, odd})});
  const int mantissa = x.dtype == DType::kFloat16 ? 10 : x.dtype == DType::kFloat64 ? 52 : 23;
  const Value integral =
      ctx.Apply("_greater_equal_scalar", {ctx.Apply("abs", {x})}, {{"scalar", std::ldexp(1.0, mantissa)}});
  return std::vector<Value>{ctx.Apply("where", {integral, x, rounded})};
});

}  // namespace

std::vector<std::string> SupportedOnnxOps() {
  std::vector<std::string> ops;
  for (const auto& [name, conv] : Converters()) ops.push_back(name);
  return ops;
}

Graph ImportOnnxModel(const onnx::ModelProto& model, const OnnxImportOptions& options) {
  if (!model.has_graph()) throw Error("the ONNX model has no graph");
  return Importer(model, options).Run();
}

Graph ImportOnnx(const std::string& path, const OnnxImportOptions& options) {
  const std::string bytes = ReadFile(path);
  onnx::ModelProto model;
  QuietProtobufLogs();
  if (!model.ParseFromString(bytes)) {
    throw Error(path + ": not a valid ONNX model (the protobuf does not parse; truncated or not ONNX)");
  }
  if (!model.has_graph() || model.ir_version() <= 0) {
    throw Error(path + ": not an ONNX model (no graph or IR version)");
  }
  try {
    return ImportOnnxModel(model, options);
  } catch (const Error& e) {
    throw Error(path + ": " + e.what());
  }
}

}  // namespace kiln
