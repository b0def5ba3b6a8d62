#include "symbol/onnx/onnx_export.h"

#include <algorithm>
#include <cctype>
#include <cstring>
#include <functional>
#include <numeric>
#include <set>
#include <utility>

#include "graph/op_util.h"
#include "passes/infer_shape.h"
#include "runtime/error.h"
#include "runtime/file_util.h"
#include "runtime/version.h"
#include "symbol/onnx/onnx.pb.h"
#include "symbol/onnx/onnx_tensor.h"

namespace kiln {
namespace {

// ---------------------------------------------------------------------------------
// ONNX attributes and tensors made at export time.

Tensor Transpose2D(const Tensor& t) {
  const int64_t rows = t.shape()[0], cols = t.shape()[1];
  Tensor out({cols, rows}, t.dtype());
  const size_t size = DTypeSize(t.dtype());
  const auto* src = static_cast<const char*>(t.data());
  auto* dst = static_cast<char*>(out.data());
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t c = 0; c < cols; ++c) std::memcpy(dst + (c * rows + r) * size, src + (r * cols + c) * size, size);
  }
  return out;
}

void SetValueInfo(onnx::ValueInfoProto& info, const std::string& name, const Shape& shape, DType dtype) {
  info.set_name(name);
  auto* tensor_type = info.mutable_type()->mutable_tensor_type();
  tensor_type->set_elem_type(DTypeToOnnx(dtype));
  auto* dims = tensor_type->mutable_shape();
  for (const int64_t d : shape) dims->add_dim()->set_dim_value(d);
}

int64_t Rank(const Shape& shape) {
  return static_cast<int64_t>(shape.size());
}

// ---------------------------------------------------------------------------------
// The exporter and what each operator's export function sees of its node.

using EntryKey = std::pair<const Node*, uint32_t>;

class Exporter {
 public:
  Exporter(const Graph& graph, const std::map<std::string, Shape>& input_shapes);
  onnx::ModelProto Run();

  // The ONNX value holding a kiln entry; a variable read becomes a graph input or an
  // initializer.
  std::string Read(const NodeEntry& entry);
  std::string Name(const Node* node, uint32_t index);
  const Shape& ShapeOf(const Node* node, uint32_t index) const;
  DType TypeOf(const Node* node, uint32_t index) const;
  const Tensor* Param(const Node& node) const;
  bool Used(const Node* node, uint32_t index) const { return used_.count({node, index}) != 0; }
  std::string UniqueValue(const std::string& base) { return Unique(base, values_); }
  std::string UniqueNodeName(const std::string& base) { return Unique(base, node_names_); }
  onnx::GraphProto& onnx_graph() { return *model_.mutable_graph(); }

 private:
  static std::string Unique(const std::string& base, std::set<std::string>& taken);
  // Infers shapes and dtypes, notes which entries are read, and checks that every
  // exported input's shape is known.
  void Prepare(const std::map<std::string, Shape>& input_shapes);
  size_t EntryId(const Node* node, uint32_t index) const {
    const IndexedGraph& indexed = graph_.indexed();
    return indexed.entry_id(indexed.node_id(node), index);
  }

  Graph graph_;  // the caller's graph with its inferred shapes and dtypes
  onnx::ModelProto model_;
  std::map<EntryKey, std::string> names_;
  std::set<std::string> values_, node_names_;
  std::set<const Node*> read_;
  std::set<EntryKey> used_;
};

class ExportContext {
 public:
  ExportContext(Exporter& exporter, const Node& node) : exporter_(exporter), node_(node) {}

  const Node& node() const { return node_; }
  const Attrs& attrs() const { return node_.attrs; }
  size_t num_inputs() const { return node_.inputs.size(); }
  std::string In(size_t i) { return exporter_.Read(node_.inputs.at(i)); }
  const Shape& InShape(size_t i) const {
    const NodeEntry& e = node_.inputs.at(i);
    return exporter_.ShapeOf(e.node.get(), e.index);
  }
  DType InType(size_t i) const {
    const NodeEntry& e = node_.inputs.at(i);
    return exporter_.TypeOf(e.node.get(), e.index);
  }
  // Input i's embedded parameter, when it is one (not marked read: the caller may use
  // a transformed copy instead).
  const Tensor* InParam(size_t i) const { return exporter_.Param(*node_.inputs.at(i).node); }
  std::string Out(uint32_t i = 0) { return exporter_.Name(&node_, i); }
  const Shape& OutShape(uint32_t i = 0) const { return exporter_.ShapeOf(&node_, i); }
  DType OutType(uint32_t i = 0) const { return exporter_.TypeOf(&node_, i); }
  bool OutputUsed(uint32_t i) const { return exporter_.Used(&node_, i); }

  // A fresh name for an intermediate value.
  std::string Temp(const std::string& suffix) { return exporter_.UniqueValue(node_.name + "_" + suffix); }
  onnx::NodeProto& Add(const std::string& op_type, const std::vector<std::string>& inputs,
                       const std::vector<std::string>& outputs) {
    onnx::NodeProto& n = *exporter_.onnx_graph().add_node();
    n.set_op_type(op_type);
    n.set_name(exporter_.UniqueNodeName(node_.name));
    for (const auto& in : inputs) n.add_input(in);
    for (const auto& out : outputs) n.add_output(out);
    return n;
  }
  // An initializer named `base` (made unique).
  std::string Initializer(const Tensor& tensor, const std::string& base) {
    const std::string name = exporter_.UniqueValue(base);
    *exporter_.onnx_graph().add_initializer() = TensorToOnnx(tensor, name);
    return name;
  }
  std::string Constant(const Tensor& tensor, const std::string& suffix) {
    return Initializer(tensor, node_.name + "_" + suffix);
  }
  std::string Int64s(const std::vector<int64_t>& values, const std::string& suffix) {
    Tensor t({static_cast<int64_t>(values.size())}, DType::kInt64);
    std::copy(values.begin(), values.end(), t.data_as<int64_t>());
    return Constant(t, suffix);
  }
  std::string Scalar(double value, DType dtype, const std::string& suffix) {
    return Constant(ScalarTensor(value, dtype), suffix);
  }

 private:
  Exporter& exporter_;
  const Node& node_;
};

using ExportFn = std::function<void(ExportContext&)>;

std::map<std::string, ExportFn>& Exporters() {
  static std::map<std::string, ExportFn> exporters;
  return exporters;
}

struct RegisterExporter {
  RegisterExporter(std::initializer_list<std::string> ops, const ExportFn& fn) {
    for (const auto& op : ops) Exporters()[op] = fn;
  }
};

std::string Exporter::Unique(const std::string& base, std::set<std::string>& taken) {
  std::string name = base;
  for (int k = 1; taken.count(name) != 0; ++k) name = base + "_" + std::to_string(k);
  taken.insert(name);
  return name;
}

Exporter::Exporter(const Graph& graph, const std::map<std::string, Shape>& input_shapes) : graph_(graph) {
  Prepare(input_shapes);
}

const Tensor* Exporter::Param(const Node& node) const {
  if (!node.is_variable()) return nullptr;
  const auto it = graph_.params.find(node.name);
  return it == graph_.params.end() ? nullptr : &it->second;
}

void Exporter::Prepare(const std::map<std::string, Shape>& input_shapes) {
  const IndexedGraph& indexed = graph_.indexed();
  std::set<std::string> variables;
  for (const size_t id : indexed.input_node_ids()) {
    if (!variables.insert(indexed.node(id).name).second) {
      throw Error("cannot export to ONNX: two variables are named '" + indexed.node(id).name + "'");
    }
  }
  std::map<std::string, Shape> shapes;
  std::map<std::string, DType> types;
  for (const auto& [name, tensor] : graph_.params) {
    if (variables.count(name) == 0) continue;  // a parameter the graph does not read
    shapes[name] = tensor.shape();
    types[name] = tensor.dtype();
  }
  for (const auto& [name, shape] : input_shapes) {
    const auto param = graph_.params.find(name);
    if (param != graph_.params.end() && param->second.shape() != shape) {
      throw Error("cannot export to ONNX: '" + name + "' is a parameter of shape " +
                  ShapeToString(param->second.shape()) + ", given input shape " + ShapeToString(shape));
    }
    shapes[name] = shape;
  }
  try {
    InferShape(graph_, shapes);
    InferType(graph_, types);
  } catch (const Error& e) {
    throw Error(std::string("cannot export to ONNX: ") + e.what());
  }

  // Variables every reader of which reads as a loss layer's label: not exported, so
  // their shapes do not matter.
  std::map<const Node*, bool> only_label;
  for (size_t id = 0; id < indexed.num_nodes(); ++id) {
    const Node& node = indexed.node(id);
    for (size_t i = 0; i < node.inputs.size(); ++i) {
      const Node* input = node.inputs[i].node.get();
      used_.insert({input, node.inputs[i].index});
      if (!input->is_variable()) continue;
      const bool label = node.op->IsLabelInput(i);
      const auto it = only_label.find(input);
      only_label[input] = label && (it == only_label.end() || it->second);
    }
  }
  for (const NodeEntry& out : graph_.outputs) {
    used_.insert({out.node.get(), out.index});
    only_label[out.node.get()] = false;
  }
  std::vector<std::string> unknown;
  const auto& slots = graph_.GetAttr<std::vector<ShapeSlot>>("shape");
  for (const size_t id : indexed.input_node_ids()) {
    const Node& node = indexed.node(id);
    if (!slots[indexed.entry_id(id, 0)] && !only_label[&node]) unknown.push_back("'" + node.name + "'");
  }
  if (!unknown.empty()) {
    std::string list;
    for (const auto& name : unknown) list += (list.empty() ? "" : ", ") + name;
    throw Error("cannot export to ONNX: the shape of input(s) " + list +
                " cannot be inferred; declare it on the variable or give it in input_shapes");
  }
}

const Shape& Exporter::ShapeOf(const Node* node, uint32_t index) const {
  const ShapeSlot& slot = graph_.GetAttr<std::vector<ShapeSlot>>("shape").at(EntryId(node, index));
  if (!slot) throw Error("the shape of '" + DefaultOutputName(*node, index) + "' is not inferred");
  return *slot;
}

DType Exporter::TypeOf(const Node* node, uint32_t index) const {
  const DTypeSlot& slot = graph_.GetAttr<std::vector<DTypeSlot>>("dtype").at(EntryId(node, index));
  if (!slot) throw Error("the dtype of '" + DefaultOutputName(*node, index) + "' is not inferred");
  return *slot;
}

std::string Exporter::Name(const Node* node, uint32_t index) {
  const auto it = names_.find({node, index});
  if (it != names_.end()) return it->second;
  const std::string name = UniqueValue(DefaultOutputName(*node, index));
  names_[{node, index}] = name;
  return name;
}

std::string Exporter::Read(const NodeEntry& entry) {
  if (entry.node->is_variable()) read_.insert(entry.node.get());
  return Name(entry.node.get(), entry.index);
}

onnx::ModelProto Exporter::Run() {
  model_.set_ir_version(kOnnxExportIrVersion);
  model_.set_producer_name("kiln");
  model_.set_producer_version(kKilnVersion);
  auto* opset = model_.add_opset_import();
  opset->set_domain("");
  opset->set_version(kOnnxExportOpset);
  onnx_graph().set_name("kiln");

  const IndexedGraph& indexed = graph_.indexed();
  // Variables keep their names; graph outputs take theirs, computed directly into them
  // where they are distinct node outputs, through an Identity otherwise.
  for (const size_t id : indexed.input_node_ids()) {
    const Node* node = &indexed.node(id);
    names_[{node, 0}] = node->name;
    values_.insert(node->name);
  }
  const std::vector<std::string> output_names = graph_.OutputNames();
  std::vector<std::pair<NodeEntry, std::string>> identities;
  std::set<std::string> seen_outputs;
  for (size_t i = 0; i < graph_.outputs.size(); ++i) {
    const NodeEntry& entry = graph_.outputs[i];
    const std::string& name = output_names[i];
    if (!seen_outputs.insert(name).second) throw Error("cannot export to ONNX: two outputs are named '" + name + "'");
    if (entry.node->is_variable() && entry.node->name == name) {
      read_.insert(entry.node.get());  // an input that is also an output
      continue;
    }
    if (values_.count(name) != 0) {
      throw Error("cannot export to ONNX: output '" + name + "' has the name of an input or parameter");
    }
    values_.insert(name);
    if (!entry.node->is_variable() && names_.count({entry.node.get(), entry.index}) == 0) {
      names_[{entry.node.get(), entry.index}] = name;
    } else {
      identities.emplace_back(entry, name);
    }
  }

  std::vector<std::string> problems;
  for (const NodePtr& node : TopologicalOrder(graph_.outputs)) {
    if (node->is_variable()) continue;
    const std::string where = node->op->name() + " node '" + node->name + "'";
    const auto it = Exporters().find(node->op->name());
    if (it == Exporters().end()) {
      problems.push_back(where + ": operator " + node->op->name() + " has no ONNX mapping");
      continue;
    }
    try {
      ExportContext ctx(*this, *node);
      it->second(ctx);
    } catch (const Error& e) {
      problems.push_back(where + ": " + e.what());
    }
  }
  if (!problems.empty()) {
    std::string message = "cannot export to ONNX: " + std::to_string(problems.size()) + " node(s) cannot be exported";
    for (const auto& p : problems) message += "\n  " + p;
    throw Error(message);
  }
  for (const auto& [entry, name] : identities) {
    onnx::NodeProto& n = *onnx_graph().add_node();
    n.set_op_type("Identity");
    n.set_name(UniqueNodeName(name + "_identity"));
    n.add_input(Read(entry));
    n.add_output(name);
  }

  for (const size_t id : indexed.input_node_ids()) {
    const Node& node = indexed.node(id);
    if (read_.count(&node) == 0) continue;
    if (const Tensor* param = Param(node)) {
      *onnx_graph().add_initializer() = TensorToOnnx(*param, node.name);
    } else {
      SetValueInfo(*onnx_graph().add_input(), node.name, ShapeOf(&node, 0), TypeOf(&node, 0));
    }
  }
  for (size_t i = 0; i < graph_.outputs.size(); ++i) {
    const NodeEntry& entry = graph_.outputs[i];
    SetValueInfo(*onnx_graph().add_output(), output_names[i], ShapeOf(entry.node.get(), entry.index),
                 TypeOf(entry.node.get(), entry.index));
  }
  return std::move(model_);
}

// ---------------------------------------------------------------------------------
// Helpers shared by the export functions.

std::string Lower(std::string text) {
  std::transform(text.begin(), text.end(), text.begin(), [](unsigned char c) { return std::tolower(c); });
  return text;
}

void Reshape(ExportContext& ctx, const std::string& from, const Shape& shape, const std::string& to) {
  onnx::NodeProto& n = ctx.Add("Reshape", {from, ctx.Int64s(shape, "shape")}, {to});
  // Without allowzero a 0 in the shape would copy the input's dim.
  if (std::find(shape.begin(), shape.end(), 0) != shape.end()) AddIntAttr(n, "allowzero", 1);
}

// Adds `op_type` for kiln output 0 where ONNX computes shape `onnx_shape`; a Reshape
// follows where kiln's differs (MXNet gives (1,) where ONNX gives a scalar).
onnx::NodeProto& AddShaped(ExportContext& ctx, const std::string& op_type, const std::vector<std::string>& inputs,
                           const Shape& onnx_shape) {
  if (onnx_shape == ctx.OutShape()) return ctx.Add(op_type, inputs, {ctx.Out()});
  const std::string result = ctx.Temp(Lower(op_type));
  onnx::NodeProto& n = ctx.Add(op_type, inputs, {result});
  Reshape(ctx, result, ctx.OutShape(), ctx.Out());
  return n;
}

std::string TransposeLastTwo(ExportContext& ctx, size_t input, const std::string& suffix) {
  std::vector<int64_t> perm(ctx.InShape(input).size());
  std::iota(perm.begin(), perm.end(), 0);
  std::swap(perm[perm.size() - 1], perm[perm.size() - 2]);
  const std::string out = ctx.Temp(suffix);
  AddIntsAttr(ctx.Add("Transpose", {ctx.In(input)}, {out}), "perm", perm);
  return out;
}

// A 2-d input transposed: a transposed initializer for a parameter, a Transpose node
// otherwise.
std::string Transposed(ExportContext& ctx, size_t input) {
  const NodeEntry& entry = ctx.node().inputs.at(input);
  if (const Tensor* param = ctx.InParam(input)) return ctx.Initializer(Transpose2D(*param), entry.node->name + "_T");
  return TransposeLastTwo(ctx, input, "transposed");
}

void RequireNchw(const ExportContext& ctx) {
  if (Rank(ctx.InShape(0)) != 4) {
    throw Error("input of shape " + ShapeToString(ctx.InShape(0)) + ": only 2-d windows (N, C, H, W) are exported");
  }
  if (!ctx.attrs().IsNone("layout") && ctx.attrs().Str("layout") != "NCHW") {
    throw Error("layout " + ctx.attrs().Str("layout") + " has no ONNX mapping (ONNX is NCHW)");
  }
}

std::vector<int64_t> OrFill(const std::vector<int64_t>& values, int64_t fill) {
  return values.empty() ? std::vector<int64_t>(2, fill) : values;
}

// ONNX pads are (begins..., ends...); kiln's windows pad both sides alike.
std::vector<int64_t> SymmetricPads(const std::vector<int64_t>& pad) {
  std::vector<int64_t> pads = OrFill(pad, 0);
  pads.insert(pads.end(), pads.begin(), pads.end());
  return pads;
}

// ---------------------------------------------------------------------------------
// Export functions, one kiln operator (or family) each.

const RegisterExporter kConvolution({"Convolution"}, [](ExportContext& ctx) {
  RequireNchw(ctx);
  const Attrs& a = ctx.attrs();
  std::vector<std::string> inputs = {ctx.In(0), ctx.In(1)};
  if (!a.Bool("no_bias")) inputs.push_back(ctx.In(2));
  onnx::NodeProto& n = ctx.Add("Conv", inputs, {ctx.Out()});
  AddIntsAttr(n, "kernel_shape", a.Ints("kernel"));
  AddIntsAttr(n, "strides", OrFill(a.Ints("stride"), 1));
  AddIntsAttr(n, "dilations", OrFill(a.Ints("dilate"), 1));
  AddIntsAttr(n, "pads", SymmetricPads(a.Ints("pad")));
  AddIntAttr(n, "group", a.Int("num_group"));
});

const RegisterExporter kPooling({"Pooling"}, [](ExportContext& ctx) {
  RequireNchw(ctx);
  const Attrs& a = ctx.attrs();
  const std::string& type = a.Str("pool_type");
  if (type != "max" && type != "avg") throw Error("pool_type " + type + " has no ONNX mapping (max and avg do)");
  const bool max = type == "max";
  if (a.Bool("global_pool")) {
    ctx.Add(max ? "GlobalMaxPool" : "GlobalAveragePool", {ctx.In(0)}, {ctx.Out()});
    return;
  }
  const std::string& convention = a.Str("pooling_convention");
  if (convention != "valid" && convention != "full") {
    throw Error("pooling_convention " + convention + " has no ONNX mapping (valid and full do)");
  }
  onnx::NodeProto& n = ctx.Add(max ? "MaxPool" : "AveragePool", {ctx.In(0)}, {ctx.Out()});
  AddIntsAttr(n, "kernel_shape", a.Ints("kernel"));
  AddIntsAttr(n, "strides", OrFill(a.Ints("stride"), 1));
  AddIntsAttr(n, "pads", SymmetricPads(a.Ints("pad")));
  AddIntAttr(n, "ceil_mode", convention == "full" ? 1 : 0);
  // MXNet's None means true.
  if (!max) AddIntAttr(n, "count_include_pad", a.IsNone("count_include_pad") || a.Bool("count_include_pad") ? 1 : 0);
});

const RegisterExporter kFullyConnected({"FullyConnected"}, [](ExportContext& ctx) {
  const Attrs& a = ctx.attrs();
  const bool bias = !a.Bool("no_bias");
  if (a.Bool("flatten")) {
    std::string x = ctx.In(0);
    if (Rank(ctx.InShape(0)) != 2) {
      const std::string flat = ctx.Temp("flat");
      AddIntAttr(ctx.Add("Flatten", {x}, {flat}), "axis", 1);
      x = flat;
    }
    std::vector<std::string> inputs = {x, ctx.In(1)};
    if (bias) inputs.push_back(ctx.In(2));
    AddIntAttr(ctx.Add("Gemm", inputs, {ctx.Out()}), "transB", 1);
    return;
  }
  // Over the last axis: x . weight^T (+ bias).
  const std::string x = ctx.In(0);
  const std::string weight_t = Transposed(ctx, 1);
  if (!bias) {
    ctx.Add("MatMul", {x, weight_t}, {ctx.Out()});
    return;
  }
  const std::string product = ctx.Temp("matmul");
  ctx.Add("MatMul", {x, weight_t}, {product});
  ctx.Add("Add", {product, ctx.In(2)}, {ctx.Out()});
});

struct OpMapping {
  const char* kiln;
  const char* onnx;
};

const bool kUnaryRegistered = [] {
  for (const OpMapping& m : std::vector<OpMapping>{{"relu", "Relu"},
                                                   {"sigmoid", "Sigmoid"},
                                                   {"tanh", "Tanh"},
                                                   {"exp", "Exp"},
                                                   {"log", "Log"},
                                                   {"sqrt", "Sqrt"},
                                                   {"abs", "Abs"},
                                                   {"negative", "Neg"},
                                                   {"erf", "Erf"},
                                                   {"reciprocal", "Reciprocal"},
                                                   {"softsign", "Softsign"},
                                                   {"identity", "Identity"},
                                                   {"BlockGrad", "Identity"}}) {
    const std::string op = m.onnx;
    RegisterExporter({m.kiln}, [op](ExportContext& ctx) { ctx.Add(op, {ctx.In(0)}, {ctx.Out()}); });
  }
  return true;
}();

const RegisterExporter kSquare({"square"}, [](ExportContext& ctx) {
  const std::string x = ctx.In(0);
  ctx.Add("Mul", {x, x}, {ctx.Out()});
});

const RegisterExporter kRsqrt({"rsqrt"}, [](ExportContext& ctx) {
  const std::string root = ctx.Temp("sqrt");
  ctx.Add("Sqrt", {ctx.In(0)}, {root});
  ctx.Add("Reciprocal", {root}, {ctx.Out()});
});

const RegisterExporter kActivation({"Activation"}, [](ExportContext& ctx) {
  static const std::map<std::string, std::string> kOps = {
      {"relu", "Relu"}, {"sigmoid", "Sigmoid"}, {"tanh", "Tanh"}, {"softrelu", "Softplus"}, {"softsign", "Softsign"}};
  const std::string& act = ctx.attrs().Str("act_type");
  const auto it = kOps.find(act);
  if (it == kOps.end()) throw Error("act_type " + act + " has no ONNX mapping");
  ctx.Add(it->second, {ctx.In(0)}, {ctx.Out()});
});

const RegisterExporter kLeakyReLU({"LeakyReLU"}, [](ExportContext& ctx) {
  const std::string& act = ctx.attrs().Str("act_type");
  const double slope = ctx.attrs().Float("slope");
  if (act == "leaky") {
    AddFloatAttr(ctx.Add("LeakyRelu", {ctx.In(0)}, {ctx.Out()}), "alpha", slope);
  } else if (act == "elu") {
    AddFloatAttr(ctx.Add("Elu", {ctx.In(0)}, {ctx.Out()}), "alpha", slope);
  } else if (act == "selu") {
    // ONNX's default alpha and gamma are MXNet's constants as floats.
    ctx.Add("Selu", {ctx.In(0)}, {ctx.Out()});
  } else if (act == "prelu") {
    // One slope per channel (axis 1): ONNX broadcasts the slope from the right.
    const Shape& data = ctx.InShape(0);
    Shape slope_shape = ctx.InShape(1);
    if (slope_shape != Shape{1}) slope_shape.resize(data.size() - 1, 1);
    std::string gamma;
    if (slope_shape == ctx.InShape(1)) {
      gamma = ctx.In(1);
    } else if (const Tensor* param = ctx.InParam(1)) {
      gamma = ctx.Initializer(param->Reshaped(slope_shape), ctx.node().inputs[1].node->name + "_slope");
    } else {
      gamma = ctx.Temp("slope");
      Reshape(ctx, ctx.In(1), slope_shape, gamma);
    }
    ctx.Add("PRelu", {ctx.In(0), gamma}, {ctx.Out()});
  } else {
    throw Error("act_type " + act + " has no ONNX mapping at opset " + std::to_string(kOnnxExportOpset));
  }
});

const RegisterExporter kBatchNorm({"BatchNorm"}, [](ExportContext& ctx) {
  const Attrs& a = ctx.attrs();
  const Shape& data = ctx.InShape(0);
  if (data.size() < 2 || op_util::NormalizeAxis(a.Int("axis"), Rank(data), "axis") != 1) {
    throw Error("axis " + std::to_string(a.Int("axis")) + " of input " + ShapeToString(data) +
                ": ONNX normalizes axis 1 only");
  }
  if (a.Bool("output_mean_var") && (ctx.OutputUsed(1) || ctx.OutputUsed(2))) {
    throw Error("the mean and var outputs are used; ONNX's inference BatchNormalization has Y only");
  }
  // fix_gamma: gamma is taken as 1 whatever it holds.
  std::string scale;
  if (a.Bool("fix_gamma")) {
    Tensor ones(ctx.InShape(1), ctx.InType(1));
    for (int64_t i = 0; i < ones.size(); ++i) ones.SetDouble(i, 1);
    scale = ctx.Constant(ones, "gamma_ones");
  } else {
    scale = ctx.In(1);
  }
  onnx::NodeProto& n = ctx.Add("BatchNormalization", {ctx.In(0), scale, ctx.In(2), ctx.In(3), ctx.In(4)}, {ctx.Out()});
  AddFloatAttr(n, "epsilon", a.Float("eps"));
  AddFloatAttr(n, "momentum", a.Float("momentum"));
});

const bool kBinaryRegistered = [] {
  for (const OpMapping& m : std::vector<OpMapping>{{"broadcast_add", "Add"},
                                                   {"broadcast_sub", "Sub"},
                                                   {"broadcast_mul", "Mul"},
                                                   {"broadcast_div", "Div"},
                                                   {"broadcast_power", "Pow"},
                                                   {"broadcast_maximum", "Max"},
                                                   {"broadcast_minimum", "Min"},
                                                   {"elemwise_add", "Add"},
                                                   {"elemwise_sub", "Sub"},
                                                   {"elemwise_mul", "Mul"},
                                                   {"elemwise_div", "Div"}}) {
    const std::string op = m.onnx;
    RegisterExporter({m.kiln}, [op](ExportContext& ctx) { ctx.Add(op, {ctx.In(0), ctx.In(1)}, {ctx.Out()}); });
  }
  return true;
}();

// The scalar forms: the binary operator with the scalar as a 0-d initializer of the
// input's dtype, on the side the operator puts it.
const bool kScalarRegistered = [] {
  struct ScalarMapping {
    const char* kiln;
    const char* onnx;
    bool scalar_first;
  };
  for (const ScalarMapping& m : std::vector<ScalarMapping>{{"_plus_scalar", "Add", false},
                                                           {"_minus_scalar", "Sub", false},
                                                           {"_rminus_scalar", "Sub", true},
                                                           {"_mul_scalar", "Mul", false},
                                                           {"_div_scalar", "Div", false},
                                                           {"_rdiv_scalar", "Div", true},
                                                           {"_maximum_scalar", "Max", false},
                                                           {"_minimum_scalar", "Min", false},
                                                           {"_power_scalar", "Pow", false},
                                                           {"_rpower_scalar", "Pow", true}}) {
    const std::string op = m.onnx;
    const bool scalar_first = m.scalar_first;
    RegisterExporter({m.kiln}, [op, scalar_first](ExportContext& ctx) {
      const std::string x = ctx.In(0);
      const std::string s = ctx.Scalar(ctx.attrs().Float("scalar"), ctx.InType(0), "scalar");
      ctx.Add(op, scalar_first ? std::vector<std::string>{s, x} : std::vector<std::string>{x, s}, {ctx.Out()});
    });
  }
  return true;
}();

const RegisterExporter kAddN({"add_n"}, [](ExportContext& ctx) {
  std::vector<std::string> inputs;
  for (size_t i = 0; i < ctx.num_inputs(); ++i) inputs.push_back(ctx.In(i));
  ctx.Add("Sum", inputs, {ctx.Out()});
});

const RegisterExporter kFlatten({"Flatten"}, [](ExportContext& ctx) {
  AddIntAttr(ctx.Add("Flatten", {ctx.In(0)}, {ctx.Out()}), "axis", 1);
});

// MXNet's special values (0, -1, -2, -3, -4, reverse) are resolved already: the
// inferred shape is the target.
const RegisterExporter kReshape({"Reshape", "_np_reshape"},
                                [](ExportContext& ctx) { Reshape(ctx, ctx.In(0), ctx.OutShape(), ctx.Out()); });

const RegisterExporter kTranspose({"transpose"}, [](ExportContext& ctx) {
  std::vector<int64_t> perm = ctx.attrs().Ints("axes");
  if (perm.empty()) {
    perm.resize(ctx.InShape(0).size());
    std::iota(perm.rbegin(), perm.rend(), 0);
  }
  for (auto& axis : perm) axis = op_util::NormalizeAxis(axis, Rank(ctx.InShape(0)), "axis");
  AddIntsAttr(ctx.Add("Transpose", {ctx.In(0)}, {ctx.Out()}), "perm", perm);
});

const RegisterExporter kConcat({"Concat"}, [](ExportContext& ctx) {
  std::vector<std::string> inputs;
  for (size_t i = 0; i < ctx.num_inputs(); ++i) inputs.push_back(ctx.In(i));
  AddIntAttr(ctx.Add("Concat", inputs, {ctx.Out()}), "axis",
             op_util::NormalizeAxis(ctx.attrs().Int("dim"), Rank(ctx.OutShape()), "axis"));
});

const RegisterExporter kStack({"stack"}, [](ExportContext& ctx) {
  const int64_t axis = op_util::NormalizeAxis(ctx.attrs().Int("axis"), Rank(ctx.OutShape()), "axis");
  const std::string axes = ctx.Int64s({axis}, "axes");
  std::vector<std::string> parts;
  for (size_t i = 0; i < ctx.num_inputs(); ++i) {
    parts.push_back(ctx.Temp("part"));
    ctx.Add("Unsqueeze", {ctx.In(i), axes}, {parts.back()});
  }
  AddIntAttr(ctx.Add("Concat", parts, {ctx.Out()}), "axis", axis);
});

// softmax and log_softmax with opset 13 semantics (one axis). The temperature divides
// the input; a dtype attribute casts where it loses nothing (before a widening, after a
// narrowing).
void ExportSoftmax(ExportContext& ctx, const std::string& op) {
  const Attrs& a = ctx.attrs();
  if (a.Bool("use_length")) throw Error("use_length has no ONNX mapping");
  const DType in_type = ctx.InType(0), out_type = ctx.OutType();
  const bool cast_first = DTypeSize(out_type) > DTypeSize(in_type);
  std::string x = ctx.In(0);
  if (in_type != out_type && cast_first) {
    const std::string cast = ctx.Temp("cast");
    AddIntAttr(ctx.Add("Cast", {x}, {cast}), "to", DTypeToOnnx(out_type));
    x = cast;
  }
  if (!a.IsNone("temperature") && a.Float("temperature") != 1) {
    const std::string scaled = ctx.Temp("scaled");
    ctx.Add("Div", {x, ctx.Scalar(a.Float("temperature"), cast_first ? out_type : in_type, "temperature")}, {scaled});
    x = scaled;
  }
  const int64_t axis = op_util::NormalizeAxis(a.Int("axis"), Rank(ctx.InShape(0)), "axis");
  if (in_type == out_type || cast_first) {
    AddIntAttr(ctx.Add(op, {x}, {ctx.Out()}), "axis", axis);
    return;
  }
  const std::string result = ctx.Temp(Lower(op));
  AddIntAttr(ctx.Add(op, {x}, {result}), "axis", axis);
  AddIntAttr(ctx.Add("Cast", {result}, {ctx.Out()}), "to", DTypeToOnnx(out_type));
}

const RegisterExporter kSoftmax({"softmax"}, [](ExportContext& ctx) { ExportSoftmax(ctx, "Softmax"); });
const RegisterExporter kLogSoftmax({"log_softmax"}, [](ExportContext& ctx) { ExportSoftmax(ctx, "LogSoftmax"); });

// The forward softmax; the label is not read. multi_output normalizes over axis 1,
// preserve_shape over the last axis, and otherwise over all axes but the first.
const RegisterExporter kSoftmaxOutput({"SoftmaxOutput"}, [](ExportContext& ctx) {
  const Attrs& a = ctx.attrs();
  const Shape& data = ctx.InShape(0);
  if (a.Bool("multi_output") || (!a.Bool("preserve_shape") && data.size() == 2)) {
    AddIntAttr(ctx.Add("Softmax", {ctx.In(0)}, {ctx.Out()}), "axis", 1);
  } else if (a.Bool("preserve_shape")) {
    AddIntAttr(ctx.Add("Softmax", {ctx.In(0)}, {ctx.Out()}), "axis", Rank(data) - 1);
  } else {
    const std::string flat = ctx.Temp("flat"), softmax = ctx.Temp("softmax");
    AddIntAttr(ctx.Add("Flatten", {ctx.In(0)}, {flat}), "axis", 1);
    AddIntAttr(ctx.Add("Softmax", {flat}, {softmax}), "axis", 1);
    Reshape(ctx, softmax, data, ctx.Out());
  }
});

// Opset 11 on: the bounds are inputs, of the data's dtype.
const RegisterExporter kClip({"clip"}, [](ExportContext& ctx) {
  const DType dtype = ctx.InType(0);
  ctx.Add("Clip",
          {ctx.In(0), ctx.Scalar(ctx.attrs().Float("a_min"), dtype, "min"),
           ctx.Scalar(ctx.attrs().Float("a_max"), dtype, "max")},
          {ctx.Out()});
});

const RegisterExporter kDot({"dot"}, [](ExportContext& ctx) {
  if (Rank(ctx.InShape(0)) != 2 || Rank(ctx.InShape(1)) != 2) {
    throw Error("operands " + ShapeToString(ctx.InShape(0)) + " and " + ShapeToString(ctx.InShape(1)) +
                ": only 2-d operands are exported");
  }
  const std::string a = ctx.attrs().Bool("transpose_a") ? TransposeLastTwo(ctx, 0, "lhs_t") : ctx.In(0);
  const std::string b = ctx.attrs().Bool("transpose_b") ? TransposeLastTwo(ctx, 1, "rhs_t") : ctx.In(1);
  ctx.Add("MatMul", {a, b}, {ctx.Out()});
});

// Equal batch axes: numpy's matmul over the last two.
const RegisterExporter kBatchDot({"batch_dot"}, [](ExportContext& ctx) {
  const std::string a = ctx.attrs().Bool("transpose_a") ? TransposeLastTwo(ctx, 0, "lhs_t") : ctx.In(0);
  const std::string b = ctx.attrs().Bool("transpose_b") ? TransposeLastTwo(ctx, 1, "rhs_t") : ctx.In(1);
  ctx.Add("MatMul", {a, b}, {ctx.Out()});
});

// MXNet's legacy reductions: axis None or () reduces everything; exclude reduces the
// axes not listed. ONNX gives a scalar where MXNet gives (1,).
const bool kReduceRegistered = [] {
  for (const OpMapping& m : std::vector<OpMapping>{{"sum", "ReduceSum"},
                                                   {"mean", "ReduceMean"},
                                                   {"max", "ReduceMax"},
                                                   {"min", "ReduceMin"},
                                                   {"prod", "ReduceProd"}}) {
    const std::string op = m.onnx;
    RegisterExporter({m.kiln}, [op](ExportContext& ctx) {
      const Attrs& a = ctx.attrs();
      const Shape& in = ctx.InShape(0);
      const int64_t rank = Rank(in);
      std::vector<bool> reduced(rank, true);
      const auto listed = a.OptInts("axis");
      if (listed && !listed->empty()) {
        reduced.assign(rank, false);
        for (const int64_t axis : *listed) reduced[op_util::NormalizeAxis(axis, rank, "axis")] = true;
        if (a.Bool("exclude")) reduced.flip();
      }
      const bool keepdims = a.Bool("keepdims");
      std::vector<int64_t> axes;
      Shape onnx_shape;
      for (int64_t d = 0; d < rank; ++d) {
        if (reduced[d]) axes.push_back(d);
        if (!reduced[d] || keepdims) onnx_shape.push_back(reduced[d] ? 1 : in[d]);
      }
      // ReduceSum takes the axes as an input from opset 13, the others from opset 18.
      const bool axes_input = op == "ReduceSum";
      std::vector<std::string> inputs = {ctx.In(0)};
      if (axes_input && !axes.empty()) inputs.push_back(ctx.Int64s(axes, "axes"));
      onnx::NodeProto& n = AddShaped(ctx, op, inputs, onnx_shape);
      if (!axes_input && !axes.empty()) AddIntsAttr(n, "axes", axes);
      AddIntAttr(n, "keepdims", keepdims ? 1 : 0);
    });
  }
  return true;
}();

// Inference: the identity, unless the mode drops at inference too.
const RegisterExporter kDropout({"Dropout"}, [](ExportContext& ctx) {
  if (ctx.attrs().Str("mode") == "always" && ctx.attrs().Float("p") > 0) {
    throw Error("mode always drops at inference too; ONNX's inference Dropout does not");
  }
  ctx.Add("Identity", {ctx.In(0)}, {ctx.Out()});
});

const RegisterExporter kCast({"Cast"}, [](ExportContext& ctx) {
  AddIntAttr(ctx.Add("Cast", {ctx.In(0)}, {ctx.Out()}), "to", DTypeToOnnx(ctx.attrs().GetDType("dtype")));
});

const RegisterExporter kExpandDims({"expand_dims"}, [](ExportContext& ctx) {
  const int64_t axis = op_util::NormalizeAxis(ctx.attrs().Int("axis"), Rank(ctx.OutShape()), "axis");
  ctx.Add("Unsqueeze", {ctx.In(0), ctx.Int64s({axis}, "axes")}, {ctx.Out()});
});

// MXNet keeps one axis where every axis is squeezed out: a Reshape then.
const RegisterExporter kSqueeze({"squeeze"}, [](ExportContext& ctx) {
  const Shape& in = ctx.InShape(0);
  const int64_t rank = Rank(in);
  std::vector<int64_t> axes;
  if (const auto listed = ctx.attrs().OptInts("axis")) {
    for (const int64_t axis : *listed) axes.push_back(op_util::NormalizeAxis(axis, rank, "axis"));
    std::sort(axes.begin(), axes.end());
  } else {
    for (int64_t d = 0; d < rank; ++d) {
      if (in[d] == 1) axes.push_back(d);
    }
  }
  if (static_cast<int64_t>(axes.size()) == rank) {
    Reshape(ctx, ctx.In(0), ctx.OutShape(), ctx.Out());
  } else if (axes.empty()) {
    ctx.Add("Identity", {ctx.In(0)}, {ctx.Out()});
  } else {
    ctx.Add("Squeeze", {ctx.In(0), ctx.Int64s(axes, "axes")}, {ctx.Out()});
  }
});

const RegisterExporter kBroadcastTo({"broadcast_to"}, [](ExportContext& ctx) {
  ctx.Add("Expand", {ctx.In(0), ctx.Int64s(ctx.OutShape(), "shape")}, {ctx.Out()});
});

// The range resolved from the inferred output: it starts at begin (from the end when
// negative) and spans the output's extent.
const RegisterExporter kSliceAxis({"slice_axis"}, [](ExportContext& ctx) {
  const Shape& in = ctx.InShape(0);
  const int64_t axis = op_util::NormalizeAxis(ctx.attrs().Int("axis"), Rank(in), "axis");
  int64_t begin = ctx.attrs().Int("begin");
  if (begin < 0) begin += in[axis];
  const int64_t end = begin + ctx.OutShape()[axis];
  ctx.Add("Slice", {ctx.In(0), ctx.Int64s({begin}, "starts"), ctx.Int64s({end}, "ends"), ctx.Int64s({axis}, "axes")},
          {ctx.Out()});
});

// kiln pads the spatial axes (2 on): pad_width is (before, after) per axis.
const RegisterExporter kPad({"Pad"}, [](ExportContext& ctx) {
  const Attrs& a = ctx.attrs();
  const std::vector<int64_t>& widths = a.Ints("pad_width");
  const size_t rank = ctx.InShape(0).size();
  std::vector<int64_t> pads(2 * rank, 0);
  for (size_t d = 2; d < rank; ++d) {
    pads[d] = widths[2 * d];
    pads[d + rank] = widths[2 * d + 1];
  }
  const std::string& mode = a.Str("mode");
  std::vector<std::string> inputs = {ctx.In(0), ctx.Int64s(pads, "pads")};
  if (mode == "constant") inputs.push_back(ctx.Scalar(a.Float("constant_value"), ctx.InType(0), "value"));
  AddStringAttr(ctx.Add("Pad", inputs, {ctx.Out()}), "mode", mode);
});

}  // namespace

onnx::ModelProto ExportOnnx(const Graph& graph, const std::map<std::string, Shape>& input_shapes) {
  if (graph.outputs.empty()) throw Error("cannot export to ONNX: the graph has no outputs");
  return Exporter(graph, input_shapes).Run();
}

void SaveOnnx(const std::string& path, const Graph& graph, const std::map<std::string, Shape>& input_shapes) {
  const onnx::ModelProto model = ExportOnnx(graph, input_shapes);
  std::string bytes;
  if (!model.SerializeToString(&bytes)) throw Error(path + ": the ONNX model does not serialize (over 2 GiB?)");
  WriteFileAtomic(path, bytes);
}

std::vector<std::string> OnnxExportableOps() {
  std::vector<std::string> ops;
  for (const auto& [name, fn] : Exporters()) ops.push_back(name);
  return ops;
}

}  // namespace kiln
