// The Symbol API, after MXNet's: a Symbol is a list of output entries of a graph of
// operator nodes. Operators are applied with Symbol::Create (or the one-function-per-
// operator wrappers in symbol/ops_api.h); inputs an operator needs but was not given
// become variables named the MXNet way ("fc1_weight", "bn1_moving_mean").
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "graph/graph.h"
#include "graph/attrs.h"

namespace kiln {

class Symbol {
 public:
  Symbol() = default;
  explicit Symbol(std::vector<NodeEntry> outputs) : outputs_(std::move(outputs)) {}

  static Symbol Variable(const std::string& name, std::optional<Shape> shape = std::nullopt,
                         std::optional<DType> dtype = std::nullopt);
  // Applies `op_name`. Inputs are positional; missing trailing inputs become variables
  // "<name>_<input name>". An empty name gets a unique one ("fullyconnected0").
  static Symbol Create(const std::string& op_name, const std::vector<Symbol>& inputs, const AttrMap& attrs = {},
                       const std::string& name = "");
  // Like Create, with inputs by name ({"data", x}, {"weight", w}); the rest are made.
  static Symbol CreateNamed(const std::string& op_name, const std::map<std::string, Symbol>& inputs,
                            const AttrMap& attrs = {}, const std::string& name = "");
  static Symbol Group(const std::vector<Symbol>& symbols);

  // Output `index` as a symbol of its own.
  Symbol operator[](size_t index) const;
  size_t num_outputs() const { return outputs_.size(); }
  const std::vector<NodeEntry>& outputs() const { return outputs_; }
  // The name of the single node this symbol is an output of.
  std::string name() const;

  std::vector<std::string> ListArguments() const;
  std::vector<std::string> ListOutputs() const;
  std::vector<std::string> ListAuxiliaryStates() const;
  std::vector<std::string> ListInputs() const;

  template <typename Slot>
  struct InferResult {
    std::vector<Slot> arguments;  // in ListArguments() order
    std::vector<Slot> outputs;
    std::vector<Slot> aux;        // in ListAuxiliaryStates() order
    bool complete = false;        // everything known
  };
  using ShapeResult = InferResult<ShapeSlot>;
  using TypeResult = InferResult<DTypeSlot>;
  // Shapes of everything from the shapes given (MXNet's infer_shape / infer_shape_partial).
  ShapeResult InferShape(const std::map<std::string, Shape>& known) const;
  TypeResult InferType(const std::map<std::string, DType>& known) const;

  Graph ToGraph() const;
  static Symbol FromGraph(const Graph& graph);

  // Files: binary protobuf, or protobuf text when the path ends in .txt or .pbtxt.
  void Save(const std::string& path) const;
  static Symbol Load(const std::string& path);

  // Arithmetic: elementwise with broadcasting between symbols, scalar forms otherwise.
  friend Symbol operator+(const Symbol& a, const Symbol& b);
  friend Symbol operator-(const Symbol& a, const Symbol& b);
  friend Symbol operator*(const Symbol& a, const Symbol& b);
  friend Symbol operator/(const Symbol& a, const Symbol& b);
  friend Symbol operator+(const Symbol& a, double b);
  friend Symbol operator-(const Symbol& a, double b);
  friend Symbol operator*(const Symbol& a, double b);
  friend Symbol operator/(const Symbol& a, double b);
  friend Symbol operator+(double a, const Symbol& b);
  friend Symbol operator-(double a, const Symbol& b);
  friend Symbol operator*(double a, const Symbol& b);
  friend Symbol operator/(double a, const Symbol& b);
  friend Symbol operator-(const Symbol& a);

 private:
  std::vector<NodeEntry> outputs_;
};

// MXNet's NameManager: unique names "<op in lower case><counter>" per thread.
class NameManager {
 public:
  static std::string Next(const std::string& hint);
  // Restarts the counters (tests that compare names).
  static void Reset();
};

}  // namespace kiln
