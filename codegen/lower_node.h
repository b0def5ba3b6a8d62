// Lowers one graph node to a kernel: arguments are the node's inputs (but input 0 when a
// prologue computes it), then any extra inputs its epilogue and prologue read, then its
// outputs, then any scratch buffers its lowering asks for.
#pragma once

#include <functional>
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
};

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

// Throws kiln::Error naming the operator when it has no lowering.
kir::Kernel LowerNode(const OpDef& op, const Attrs& attrs, const NodeSignature& signature,
                      const std::string& kernel_name, bool is_train = false, uint64_t seed = 0,
                      const EpilogueSpec* epilogue = nullptr);

}  // namespace kiln
