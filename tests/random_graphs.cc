#include "tests/random_graphs.h"

#include "graph/op.h"
#include "runtime/error.h"
#include "tests/op_test_util.h"

namespace kiln::testing {

const Shape kShape = {2, 3, 4, 4};
const Shape kChannels = {1, 3, 1, 1};

const ScalarOps& RegistryScalarOps() {
  static const ScalarOps ops = [] {
    ScalarOps found;
    for (const OpDef* op : OpRegistry::Global().List()) {
      if (!op->scalar_compute()) continue;
      Attrs attrs;
      try {
        attrs = op->ParseAttrs({}, "probe");
      } catch (const Error&) {
        continue;  // required attributes
      }
      if (op->RandomAtInference(attrs)) continue;
      const size_t inputs = op->NumInputs(attrs);
      if (inputs < 1 || inputs > 2) continue;
      std::vector<DTypeSlot> in_types(inputs, DType::kFloat32), out_types(op->NumOutputs(attrs));
      std::vector<ShapeSlot> in_shapes(inputs, kShape), out_shapes(op->NumOutputs(attrs));
      try {
        op->InferShape(attrs, in_shapes, out_shapes);
        op->InferType(attrs, in_types, out_types);
      } catch (const Error&) {
        continue;
      }
      if (out_shapes.size() != 1 || out_shapes[0] != kShape || out_types[0] != DType::kFloat32) continue;
      (inputs == 1 ? found.unary : found.binary).push_back(op->name());
    }
    return found;
  }();
  return ops;
}

}  // namespace kiln::testing
