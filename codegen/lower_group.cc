#include "codegen/lower_group.h"

#include <algorithm>
#include <functional>
#include <map>
#include <set>

#include "codegen/lower/lower_util.h"
#include "codegen/lower_node.h"
#include "passes/interpreter.h"
#include "runtime/error.h"

namespace kiln {
namespace {

using kir::Expr;

struct GroupTypes {
  const IndexedGraph& indexed;
  const std::vector<ShapeSlot>& shapes;
  const std::vector<DTypeSlot>& dtypes;
  const std::map<std::string, Tensor>* params;  // compile-time constants, or nullptr
  const Shape& shape(size_t entry) const { return *shapes[entry]; }
  DType dtype(size_t entry) const { return *dtypes[entry]; }
};

NodeSignature SignatureOf(const GroupTypes& types, size_t id) {
  const Node& node = types.indexed.node(id);
  NodeSignature signature;
  for (const auto& input : node.inputs) {
    signature.input_shapes.push_back(types.shape(types.indexed.entry_id(input)));
    signature.input_types.push_back(types.dtype(types.indexed.entry_id(input)));
    if (types.params != nullptr) {
      const Node& source = *input.node;
      const auto it = source.is_variable() ? types.params->find(source.name) : types.params->end();
      signature.constant_inputs.push_back(it != types.params->end() ? &it->second : nullptr);
    }
  }
  for (uint32_t i = 0; i < node.num_outputs(); ++i) {
    signature.output_shapes.push_back(types.shape(types.indexed.entry_id(id, i)));
    signature.output_types.push_back(types.dtype(types.indexed.entry_id(id, i)));
  }
  return signature;
}

// The value of every member at one position of the root's output, built once per member
// (members read by several others are shared subexpressions).
class GroupValues {
 public:
  using Load = std::function<Expr(size_t entry)>;  // an external entry at this position
  GroupValues(const GroupTypes& types, const std::set<size_t>& members, int64_t anchor, Expr anchor_value, Load load)
      : types_(types),
        members_(members),
        anchor_(anchor),
        anchor_value_(std::move(anchor_value)),
        load_(std::move(load)) {
    for (const size_t id : members_) owner_[types_.indexed.entry_id(id, 0)] = id;
  }

  // In the compute type of the entry's dtype, as a reader of the stored entry sees it.
  Expr Entry(size_t entry) {
    if (const auto it = values_.find(entry); it != values_.end()) return it->second;
    const auto owner = owner_.find(entry);
    Expr value;
    if (owner == owner_.end()) {
      value = load_(entry);
    } else if (static_cast<int64_t>(owner->second) == anchor_) {
      value = anchor_value_;
    } else {
      const size_t id = owner->second;
      const Node& node = types_.indexed.node(id);
      std::vector<Expr> inputs;
      for (const auto& input : node.inputs) inputs.push_back(Entry(types_.indexed.entry_id(input)));
      const DType dtype = types_.dtype(entry);
      if (!node.op->scalar_compute()) {
        throw Error("node '" + node.name + "' (" + node.op->name() + ") has no scalar function to fuse");
      }
      value = lower::AsStored(node.op->scalar_compute()(node.attrs, inputs, lower::ComputeType(dtype)), dtype);
    }
    values_.emplace(entry, value);
    return value;
  }

 private:
  const GroupTypes& types_;
  const std::set<size_t>& members_;
  int64_t anchor_;
  Expr anchor_value_;
  Load load_;
  std::map<size_t, size_t> owner_;  // member output entry -> member node id
  std::map<size_t, Expr> values_;
};

// Entries read by members (other than the anchor) that no member produces, in the order
// first read.
std::vector<size_t> ExternalReads(const GroupTypes& types, const FusionGroup& group) {
  std::set<size_t> produced;
  for (const size_t id : group.nodes) produced.insert(types.indexed.entry_id(id, 0));
  std::vector<size_t> reads;
  for (const size_t id : group.nodes) {
    if (static_cast<int64_t>(id) == group.anchor) continue;
    for (const auto& input : types.indexed.node(id).inputs) {
      const size_t entry = types.indexed.entry_id(input);
      if (!produced.count(entry) && std::find(reads.begin(), reads.end(), entry) == reads.end()) {
        reads.push_back(entry);
      }
    }
  }
  return reads;
}

std::string ArgName(const IndexedGraph& indexed, size_t entry) {
  for (size_t id = indexed.num_nodes(); id-- > 0;) {
    if (indexed.entry_id(id, 0) <= entry) {
      const Node& node = indexed.node(id);
      return node.num_outputs() == 1 ? node.name : node.name + "_" + std::to_string(entry - indexed.entry_id(id, 0));
    }
  }
  return "entry" + std::to_string(entry);
}

// What the loop-based group lowerings share: one argument per external read, then the
// root's output.
struct GroupLoop {
  GroupLoop(const GroupTypes& types, const FusionGroup& group, const std::string& kernel_name)
      : builder(kernel_name), root_entry(types.indexed.entry_id(group.root(), 0)), out_shape(types.shape(root_entry)) {
    result.reads = ExternalReads(types, group);
    result.writes = {root_entry};
    for (const size_t entry : result.reads) {
      buffers[entry] = builder.AddArg(ArgName(types.indexed, entry), ToScalarType(types.dtype(entry)),
                                      NumElements(types.shape(entry)));
    }
    out = builder.AddArg(ArgName(types.indexed, root_entry), ToScalarType(types.dtype(root_entry)),
                         NumElements(out_shape));
  }
  GroupKernel Finish(kir::Stmt body) {
    result.kernel = builder.Finish(std::move(body));
    return std::move(result);
  }

  kir::KernelBuilder builder;
  GroupKernel result;
  size_t root_entry;
  Shape out_shape;
  std::map<size_t, kir::Buffer> buffers;
  kir::Buffer out;
};

GroupKernel LowerElementwiseGroup(const GroupTypes& types, const FusionGroup& group, const std::string& kernel_name) {
  GroupLoop loop(types, group, kernel_name);
  GroupKernel& result = loop.result;
  const size_t root_entry = loop.root_entry;
  const Shape& out_shape = loop.out_shape;
  const auto& buffers = loop.buffers;
  const kir::Buffer& out = loop.out;
  bool flat = true;  // every input is the output's shape or a single element
  for (size_t k = 0; k < result.reads.size(); ++k) {
    const size_t entry = result.reads[k];
    const Shape& shape = types.shape(entry);
    flat = flat && (shape == out_shape || NumElements(shape) == 1);
    if (shape == out_shape && kir::ScalarTypeBytes(ToScalarType(types.dtype(entry))) ==
                                  kir::ScalarTypeBytes(ToScalarType(types.dtype(root_entry)))) {
      result.inplace.emplace_back(static_cast<int>(k), 0);
    }
  }
  const std::set<size_t> members(group.nodes.begin(), group.nodes.end());
  const auto value_at = [&](const std::function<Expr(const Shape&)>& index_of) {
    GroupValues values(types, members, -1, Expr(), [&](size_t entry) {
      return lower::LoadAs(buffers.at(entry), index_of(types.shape(entry)), lower::ComputeType(types.dtype(entry)));
    });
    return values.Entry(root_entry);
  };
  kir::Stmt body;
  if (flat) {
    body = lower::ChunkedLoop(NumElements(out_shape), [&](const Expr& i) {
      return lower::StoreFrom(out, i,
                              value_at([&](const Shape& shape) { return shape == out_shape ? i : Expr(int64_t{0}); }));
    });
  } else {
    result.inplace.clear();  // broadcast reads revisit elements
    body = lower::LoopNest(out_shape, [&](const std::vector<Expr>& index) {
      return lower::StoreFrom(out, lower::FlatIndex(index, out_shape),
                              value_at([&](const Shape& shape) { return lower::BroadcastIndex(index, shape); }));
    });
  }
  return loop.Finish(std::move(body));
}

// A group with injective members: each member is evaluated at a multi-index of its own
// output, which its readers derive from theirs (broadcasting for elementwise readers,
// the index map for injective ones). A member read at two positions is computed twice.
class PositionedValues {
 public:
  using Position = std::vector<Expr>;
  PositionedValues(const GroupTypes& types, const FusionGroup& group, const std::map<size_t, kir::Buffer>& buffers)
      : types_(types), buffers_(buffers) {
    for (const size_t id : group.nodes) owner_[types.indexed.entry_id(id, 0)] = id;
  }

  Expr At(size_t entry, const Position& position) {
    for (const auto& [key, value] : memo_) {
      if (key.first == entry && SamePosition(key.second, position)) return value;
    }
    const Shape& shape = types_.shape(entry);
    const DType dtype = types_.dtype(entry);
    Expr value;
    const auto owner = owner_.find(entry);
    if (owner == owner_.end()) {
      value = lower::LoadAs(buffers_.at(entry), lower::FlatIndex(position, shape), lower::ComputeType(dtype));
    } else {
      const Node& node = types_.indexed.node(owner->second);
      std::vector<Expr> inputs;
      for (const auto& input : node.inputs) {
        const size_t in_entry = types_.indexed.entry_id(input);
        const Shape& in_shape = types_.shape(in_entry);
        if (node.op->index_map() && !node.op->scalar_compute()) {
          inputs.push_back(At(in_entry, node.op->index_map()(node.attrs, in_shape, shape, position)));
        } else {
          // NumPy broadcasting: trailing dims align; size-1 dims read index 0.
          Position in_position;
          const size_t offset = shape.size() - in_shape.size();
          for (size_t d = 0; d < in_shape.size(); ++d) {
            in_position.push_back(in_shape[d] == 1 ? Expr(int64_t{0}) : position[d + offset]);
          }
          inputs.push_back(At(in_entry, in_position));
        }
      }
      if (node.op->scalar_compute()) {
        value = lower::AsStored(node.op->scalar_compute()(node.attrs, inputs, lower::ComputeType(dtype)), dtype);
      } else {
        value = inputs.at(0);  // injective: the source element itself
      }
    }
    memo_.emplace_back(std::pair{entry, position}, value);
    return value;
  }

 private:
  // Structural: index maps build fresh expressions for the same element.
  static bool SameExpr(const Expr& a, const Expr& b) {
    if (a.get() == b.get()) return true;
    if (a->kind != b->kind || a->type != b->type || a->int_value != b->int_value || a->var_id != b->var_id ||
        a->binary != b->binary || a->unary != b->unary || a->buffer != b->buffer ||
        a->operands.size() != b->operands.size() || !(a->float_value == b->float_value)) {
      return false;
    }
    for (size_t i = 0; i < a->operands.size(); ++i) {
      if (!SameExpr(a->operands[i], b->operands[i])) return false;
    }
    return true;
  }
  static bool SamePosition(const Position& a, const Position& b) {
    if (a.size() != b.size()) return false;
    for (size_t d = 0; d < a.size(); ++d) {
      if (!SameExpr(a[d], b[d])) return false;
    }
    return true;
  }

  const GroupTypes& types_;
  const std::map<size_t, kir::Buffer>& buffers_;
  std::map<size_t, size_t> owner_;
  std::vector<std::pair<std::pair<size_t, Position>, Expr>> memo_;
};

GroupKernel LowerPositionedGroup(const GroupTypes& types, const FusionGroup& group, const std::string& kernel_name) {
  GroupLoop loop(types, group, kernel_name);
  kir::Stmt body = lower::LoopNest(loop.out_shape, [&](const std::vector<Expr>& index) {
    PositionedValues values(types, group, loop.buffers);
    return lower::StoreFrom(loop.out, lower::FlatIndex(index, loop.out_shape), values.At(loop.root_entry, index));
  });
  return loop.Finish(std::move(body));  // no in-place: elements are read at other positions than written
}

GroupKernel LowerAnchoredGroup(const GroupTypes& types, const FusionGroup& group, const std::string& kernel_name,
                               bool is_train, LowerTarget target) {
  const IndexedGraph& indexed = types.indexed;
  const auto anchor = static_cast<size_t>(group.anchor);
  const Node& node = indexed.node(anchor);
  const bool has_prologue = !group.prologue.empty();
  GroupKernel result;
  for (size_t i = has_prologue ? 1 : 0; i < node.inputs.size(); ++i)
    result.reads.push_back(indexed.entry_id(node.inputs[i]));
  const std::vector<size_t> extra = ExternalReads(types, group);
  result.reads.insert(result.reads.end(), extra.begin(), extra.end());
  const size_t root_entry = indexed.entry_id(group.root(), 0);
  result.writes = {root_entry};

  NodeSignature signature = SignatureOf(types, anchor);
  const Shape out_shape = signature.output_shapes[0];
  const Shape in_shape = signature.input_shapes[0];
  EpilogueSpec spec;
  for (const size_t entry : extra) {
    spec.inputs.push_back({ArgName(indexed, entry), ToScalarType(types.dtype(entry)), NumElements(types.shape(entry))});
  }
  // Members after the anchor and members before it (its prologue), evaluated at the
  // output's and at input 0's elements respectively.
  std::set<size_t> after(group.nodes.begin(), group.nodes.end());
  const std::set<size_t> before(group.prologue.begin(), group.prologue.end());
  for (const size_t id : before) after.erase(id);
  const auto loader = [&types, extra](const std::vector<kir::Buffer>& buffers, const LowerContext::EpilogueIndex& index,
                                      const Shape& at_shape) {
    return [&types, extra, buffers, index, at_shape](size_t entry) {
      const auto k = static_cast<size_t>(std::find(extra.begin(), extra.end(), entry) - extra.begin());
      if (k == extra.size())
        throw Error("fusion: '" + ArgName(types.indexed, entry) + "' is not an input of the group");
      const Expr at =
          lower::BroadcastFromFlat(index.flat, index.inner, index.inner_extent, at_shape, types.shape(entry));
      return lower::LoadAs(buffers.at(k), at, lower::ComputeType(types.dtype(entry)));
    };
  };
  if (group.root() != anchor) {
    spec.fn = [&types, &after, &group, &loader, out_shape, root_entry](const std::vector<kir::Buffer>& buffers,
                                                                       const Expr& value,
                                                                       const LowerContext::EpilogueIndex& index) {
      GroupValues values(types, after, group.anchor, value, loader(buffers, index, out_shape));
      return values.Entry(root_entry);
    };
  }
  if (has_prologue) {
    const size_t input0 = indexed.entry_id(node.inputs[0]);
    spec.prologue = [&types, &before, &loader, in_shape, input0](const std::vector<kir::Buffer>& buffers,
                                                                 const Expr& index) {
      GroupValues values(types, before, -1, Expr(), loader(buffers, {index, Expr(), 0}, in_shape));
      return values.Entry(input0);
    };
  }
  result.kernel = LowerNode(*node.op, node.attrs, signature, kernel_name, is_train, NodeSeed(0, node.name), &spec,
                            &result.constants, target);
  return result;
}

}  // namespace

std::string GroupName(const IndexedGraph& indexed, const FusionGroup& group) {
  std::string name;
  for (const size_t id : group.nodes) name += (name.empty() ? "" : "+") + indexed.node(id).name;
  return name;
}

GroupKernel LowerGroup(const Graph& graph, const FusionGroup& group, const std::string& kernel_name, bool is_train,
                       bool params_are_constants, LowerTarget target) {
  const GroupTypes types{graph.indexed(), graph.GetAttr<std::vector<ShapeSlot>>("shape"),
                         graph.GetAttr<std::vector<DTypeSlot>>("dtype"),
                         params_are_constants ? &graph.params : nullptr};
  const IndexedGraph& indexed = types.indexed;
  const size_t root = group.root();
  const Node& root_node = indexed.node(root);
  try {
    if (group.nodes.size() == 1) {
      GroupKernel result;
      for (const auto& input : root_node.inputs) result.reads.push_back(indexed.entry_id(input));
      for (uint32_t i = 0; i < root_node.num_outputs(); ++i) result.writes.push_back(indexed.entry_id(root, i));
      result.inplace = root_node.op->InplacePairs(root_node.attrs);
      result.kernel = LowerNode(*root_node.op, root_node.attrs, SignatureOf(types, root), kernel_name, is_train,
                                NodeSeed(0, root_node.name), nullptr, &result.constants, target);
      return result;
    }
    if (group.anchor >= 0) return LowerAnchoredGroup(types, group, kernel_name, is_train, target);
    return group.injective ? LowerPositionedGroup(types, group, kernel_name)
                           : LowerElementwiseGroup(types, group, kernel_name);
  } catch (const Error& e) {
    const Node& named = group.anchor >= 0 ? indexed.node(static_cast<size_t>(group.anchor)) : root_node;
    throw Error("node '" + named.name + "' (" + named.op->name() + ")" +
                (group.nodes.size() > 1 ? " fused as " + GroupName(indexed, group) : std::string()) + ": " + e.what());
  }
}

}  // namespace kiln
