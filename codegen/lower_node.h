// Lowers one graph node to a kernel: arguments are the node's inputs (but input 0 when a
// prologue computes it), then any extra inputs its epilogue and prologue read, then its
// outputs, then any scratch buffers its lowering asks for.
#pragma once

#include <functional>
#include <map>
#include <string>
#include <vector>

#include "codegen/kir/kir.h"
#include "graph/op.h"

namespace kiln {

struct NodeSignature {
  std::vector<Shape> input_shapes;
  std::vector<DType> input_types;
  std::vector<Shape> output_shapes;
  std::vector<DType> output_types;
  // Per input: its value when known at compile time, else nullptr (may be empty).
  std::vector<const Tensor*> constant_inputs;
};

// Kernel arguments a lowering replaced by compile-time constants (LowerContext::
// replace_input): argument index -> (name suffix, value).
using ConstantArgs = std::map<int, std::pair<std::string, Tensor>>;

// Elementwise work fused around a node: the extra buffers it reads, and given those
// buffers the epilogue after output 0 (LowerContext::epilogue) and the prologue that
// computes input 0 (LowerContext::prologue).
struct EpilogueSpec {
  struct Input {
    std::string name;
    kir::ScalarType type;
    int64_t size;
  };
  std::vector<Input> inputs;
  // Unset: no epilogue.
  std::function<kir::Expr(const std::vector<kir::Buffer>& buffers, const kir::Expr& value,
                          const LowerContext::EpilogueIndex& index)>
      fn;
  // Computes the node's input 0 (LowerContext::prologue): it then has no argument.
  std::function<kir::Expr(const std::vector<kir::Buffer>& buffers, const kir::Expr& index)> prologue;
};

// Throws kiln::Error naming the operator when it has no lowering. With `constants`, the
// lowering may read constants derived from signature.constant_inputs; they are listed
// there.
kir::Kernel LowerNode(const OpDef& op, const Attrs& attrs, const NodeSignature& signature,
                      const std::string& kernel_name, bool is_train = false, uint64_t seed = 0,
                      const EpilogueSpec* epilogue = nullptr, ConstantArgs* constants = nullptr,
                      LowerTarget target = LowerTarget::kCpu);

}  // namespace kiln
