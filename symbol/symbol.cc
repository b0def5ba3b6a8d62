#include "symbol/symbol.h"

#include <algorithm>
#include <cctype>

#include "passes/graph_io.h"
#include "passes/infer_shape.h"
#include "runtime/error.h"

namespace kiln {
namespace {

thread_local std::map<std::string, int> name_counters;

std::map<std::string, AttrValue> ToValueMap(const AttrMap& attrs) {
  std::map<std::string, AttrValue> values;
  for (const auto& [key, arg] : attrs) values[key] = arg.value;
  return values;
}

NodeEntry SingleOutput(const Symbol& symbol, const std::string& op, const std::string& input) {
  if (symbol.num_outputs() != 1) {
    throw Error("operator " + op + ": input '" + input + "' must be a symbol with one output, given " +
                std::to_string(symbol.num_outputs()) + " outputs");
  }
  return symbol.outputs()[0];
}

}  // namespace

std::string NameManager::Next(const std::string& hint) {
  std::string lower = hint;
  std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char c) { return std::tolower(c); });
  if (!lower.empty() && lower.front() == '_') lower.erase(0, lower.find_first_not_of('_'));
  const int count = name_counters[lower]++;
  return lower + std::to_string(count);
}

void NameManager::Reset() { name_counters.clear(); }

Symbol Symbol::Variable(const std::string& name, std::optional<Shape> shape, std::optional<DType> dtype) {
  if (name.empty()) throw Error("a variable needs a name");
  return Symbol({NodeEntry{Node::Variable(name, std::move(shape), dtype), 0}});
}

Symbol Symbol::Create(const std::string& op_name, const std::vector<Symbol>& inputs, const AttrMap& attrs,
                      const std::string& name) {
  const OpDef& op = OpRegistry::Global().Get(op_name);
  const std::string node_name = name.empty() ? NameManager::Next(op.name()) : name;
  Attrs parsed = op.ParseAttrs(ToValueMap(attrs), node_name);
  const auto input_names = op.InputNames(parsed);
  if (inputs.size() > input_names.size()) {
    throw Error("operator " + op.name() + " (node '" + node_name + "'): expected at most " +
                std::to_string(input_names.size()) + " inputs, given " + std::to_string(inputs.size()));
  }
  std::vector<NodeEntry> entries;
  for (size_t i = 0; i < input_names.size(); ++i) {
    if (i < inputs.size() && inputs[i].num_outputs() > 0) {
      entries.push_back(SingleOutput(inputs[i], op.name(), input_names[i]));
    } else {
      entries.push_back(NodeEntry{Node::Variable(node_name + "_" + input_names[i]), 0});
    }
  }
  NodePtr node = Node::Create(op, node_name, std::move(parsed), std::move(entries));
  std::vector<NodeEntry> outputs;
  for (uint32_t i = 0; i < node->num_outputs(); ++i) outputs.push_back(NodeEntry{node, i});
  return Symbol(std::move(outputs));
}

Symbol Symbol::CreateNamed(const std::string& op_name, const std::map<std::string, Symbol>& inputs,
                           const AttrMap& attrs, const std::string& name) {
  const OpDef& op = OpRegistry::Global().Get(op_name);
  const std::string node_name = name.empty() ? NameManager::Next(op.name()) : name;
  const Attrs parsed = op.ParseAttrs(ToValueMap(attrs), node_name);
  const auto input_names = op.InputNames(parsed);
  for (const auto& [input, symbol] : inputs) {
    if (std::find(input_names.begin(), input_names.end(), input) == input_names.end()) {
      std::string known;
      for (const auto& n : input_names) known += (known.empty() ? "" : ", ") + n;
      throw Error("operator " + op.name() + " (node '" + node_name + "'): unknown input '" + input +
                  "'; inputs are {" + known + "}");
    }
  }
  std::vector<Symbol> positional;
  for (const auto& input : input_names) {
    const auto it = inputs.find(input);
    positional.push_back(it == inputs.end() ? Symbol() : it->second);
  }
  return Create(op_name, positional, attrs, node_name);
}

Symbol Symbol::Group(const std::vector<Symbol>& symbols) {
  std::vector<NodeEntry> outputs;
  for (const auto& symbol : symbols) outputs.insert(outputs.end(), symbol.outputs_.begin(), symbol.outputs_.end());
  return Symbol(std::move(outputs));
}

Symbol Symbol::operator[](size_t index) const {
  if (index >= outputs_.size()) {
    throw Error("output index " + std::to_string(index) + " is out of range: the symbol has " +
                std::to_string(outputs_.size()) + " outputs");
  }
  return Symbol({outputs_[index]});
}

std::string Symbol::name() const {
  if (outputs_.empty()) return "";
  const Node* first = outputs_[0].node.get();
  for (const auto& entry : outputs_) {
    if (entry.node.get() != first) throw Error("a grouped symbol has no single name");
  }
  return first->name;
}

Graph Symbol::ToGraph() const {
  Graph graph;
  graph.outputs = outputs_;
  return graph;
}

Symbol Symbol::FromGraph(const Graph& graph) { return Symbol(graph.outputs); }

std::vector<std::string> Symbol::ListArguments() const { return ToGraph().ListArguments(); }
std::vector<std::string> Symbol::ListOutputs() const { return ToGraph().OutputNames(); }
std::vector<std::string> Symbol::ListAuxiliaryStates() const { return ToGraph().ListAuxiliaryStates(); }
std::vector<std::string> Symbol::ListInputs() const { return ToGraph().ListInputs(); }

namespace {
template <typename Slot>
std::vector<Slot> SlotsOf(const Graph& graph, const std::vector<Slot>& slots, const std::vector<std::string>& names) {
  const IndexedGraph& indexed = graph.indexed();
  std::vector<Slot> result;
  for (const auto& name : names) {
    for (size_t id : indexed.input_node_ids()) {
      if (indexed.node(id).name == name) {
        result.push_back(slots[indexed.entry_id(id, 0)]);
        break;
      }
    }
  }
  return result;
}

template <typename Slot, typename Known, typename Pass>
Symbol::InferResult<Slot> InferAll(const Symbol& symbol, const Known& known, const char* attr, Pass pass) {
  Graph graph = symbol.ToGraph();
  const size_t unknown = pass(graph, known);
  const auto& slots = graph.GetAttr<std::vector<Slot>>(attr);
  Symbol::InferResult<Slot> result;
  result.arguments = SlotsOf(graph, slots, graph.ListArguments());
  result.aux = SlotsOf(graph, slots, graph.ListAuxiliaryStates());
  for (size_t entry : graph.indexed().output_entries()) result.outputs.push_back(slots[entry]);
  result.complete = unknown == 0;
  return result;
}
}  // namespace

Symbol::ShapeResult Symbol::InferShape(const std::map<std::string, Shape>& known) const {
  return InferAll<ShapeSlot>(*this, known, "shape", [](Graph& g, const auto& k) { return kiln::InferShape(g, k); });
}

Symbol::TypeResult Symbol::InferType(const std::map<std::string, DType>& known) const {
  return InferAll<DTypeSlot>(*this, known, "dtype", [](Graph& g, const auto& k) { return kiln::InferType(g, k); });
}

void Symbol::Save(const std::string& path) const { SaveGraphFile(ToGraph(), path); }

Symbol Symbol::Load(const std::string& path) { return FromGraph(LoadGraphFile(path)); }

namespace {
Symbol Binary(const char* op, const Symbol& a, const Symbol& b) { return Symbol::Create(op, {a, b}); }
Symbol Scalar(const char* op, const Symbol& a, double scalar) {
  return Symbol::Create(op, {a}, {{"scalar", scalar}});
}
}  // namespace

Symbol operator+(const Symbol& a, const Symbol& b) { return Binary("broadcast_add", a, b); }
Symbol operator-(const Symbol& a, const Symbol& b) { return Binary("broadcast_sub", a, b); }
Symbol operator*(const Symbol& a, const Symbol& b) { return Binary("broadcast_mul", a, b); }
Symbol operator/(const Symbol& a, const Symbol& b) { return Binary("broadcast_div", a, b); }
Symbol operator+(const Symbol& a, double b) { return Scalar("_plus_scalar", a, b); }
Symbol operator-(const Symbol& a, double b) { return Scalar("_minus_scalar", a, b); }
Symbol operator*(const Symbol& a, double b) { return Scalar("_mul_scalar", a, b); }
Symbol operator/(const Symbol& a, double b) { return Scalar("_div_scalar", a, b); }
Symbol operator+(double a, const Symbol& b) { return Scalar("_plus_scalar", b, a); }
Symbol operator-(double a, const Symbol& b) { return Scalar("_rminus_scalar", b, a); }
Symbol operator*(double a, const Symbol& b) { return Scalar("_mul_scalar", b, a); }
Symbol operator/(double a, const Symbol& b) { return Scalar("_rdiv_scalar", b, a); }
Symbol operator-(const Symbol& a) { return Symbol::Create("negative", {a}); }

}  // namespace kiln
