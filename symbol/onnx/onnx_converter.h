// The ONNX importer's converters: what one converter sees of an ONNX node
// (NodeContext), the registry they join (RegisterConverter), and the helpers they share.
// Internal to symbol/onnx: onnx_import.cc drives the conversion, and the
// onnx_convert_*.cc files hold the converters, one ONNX operator (or family) each.
#pragma once

#include <algorithm>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "graph/graph.h"
#include "graph/op_util.h"
#include "runtime/error.h"
#include "symbol/onnx/onnx.pb.h"

namespace kiln::onnx_import {

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
std::string NodeLabel(const onnx::NodeProto& node);

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
  // Reshape to exactly `shape`. kiln's Reshape reads 0 as "copy the input's dim", so an
  // empty result (a 0 in `shape`) is made as the empty constant it is.
  Value ReshapeTo(const Value& v, const Shape& shape) {
    if (v.shape == shape) return v;
    if (std::find(shape.begin(), shape.end(), 0) != shape.end()) return MakeConstant(Tensor(shape, v.dtype));
    // A 0-d result needs numpy's reshape: MXNet's Reshape reads () as "not given".
    if (shape.empty()) return Apply("_np_reshape", {v}, {{"newshape", shape}});
    return Apply("Reshape", {v}, {{"shape", shape}});
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

using ConvertFn = std::function<std::vector<Value>(NodeContext&)>;

// One ONNX operator type: the attributes it understands (any other is reported as
// unsupported) and its conversion.
struct Converter {
  std::set<std::string> attrs;
  ConvertFn convert;
};

// Every converter, by ONNX operator type.
std::map<std::string, Converter>& Converters();

// Registers a converter from a static initializer:
//   const RegisterConverter kRelu({"Relu"}, {}, [](NodeContext& ctx) { ... });
struct RegisterConverter {
  RegisterConverter(std::initializer_list<std::string> op_types, std::set<std::string> attrs, ConvertFn fn) {
    for (const auto& op : op_types) Converters()[op] = Converter{attrs, fn};
  }
};

// ---------------------------------------------------------------------------------
// Helpers shared by the converters.

// An ONNX operator and the kiln operator it becomes.
struct UnaryMapping {
  const char* onnx;
  const char* kiln;
};

// axis in [-rank, rank) made non-negative; an error naming `what` otherwise.
int64_t NormalizeAxis(int64_t axis, size_t rank, const std::string& what = "axis");
// The product of shape[begin, end).
int64_t Product(const Shape& shape, size_t begin, size_t end);
// v broadcast to `shape` (rank padded on the left), as it is if it already has it.
Value BroadcastTo(NodeContext& ctx, const Value& v, const Shape& shape);
// The node's first input through kiln's `op`.
Value Unary(NodeContext& ctx, const std::string& op, const AttrMap& attrs = {});
// Rounds halves to even (ONNX's Round, numpy's round) in x's float type.
Value RoundHalfToEven(NodeContext& ctx, const Value& x);

// Pads as (begin..., end...) per spatial axis, with auto_pad resolved.
struct Window {
  std::vector<int64_t> kernel, strides, dilations, pad_begin, pad_end;
};

// The window of a Conv or pooling node on `input`, auto_pad resolved to explicit pads.
Window ResolveWindow(const NodeContext& ctx, const Shape& input, std::vector<int64_t> kernel);
// kiln's windows are 2-D with symmetric padding; asymmetric padding goes into an
// explicit Pad node in front.
Value PadForWindow(NodeContext& ctx, const Value& x, Window& w, double pad_value);
// An error unless x is 4-d (N, C, H, W): kiln's windows are 2-D.
void Require2D(const Value& x, const std::string& op);
// Axes of a reduction or squeeze: the attribute before `input_since_opset`, from then
// on input `input_index` (which must be a constant); empty when not given.
std::vector<int64_t> Axes(const NodeContext& ctx, size_t input_index, int64_t input_since_opset);

}  // namespace kiln::onnx_import
