// Lowers one graph node to a kernel: arguments are the node's inputs, then its outputs,
// then any scratch buffers its lowering asks for.
#pragma once

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

// Throws kiln::Error naming the operator when it has no lowering.
kir::Kernel LowerNode(const OpDef& op, const Attrs& attrs, const NodeSignature& signature,
                      const std::string& kernel_name, bool is_train = false, uint64_t seed = 0);

}  // namespace kiln
