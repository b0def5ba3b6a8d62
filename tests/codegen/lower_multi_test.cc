// Operators whose scalar function gives several outputs at once (the form fused
// optimizer updates take): the generic lowering stores every output.
#include <catch2/catch.hpp>

#include "graph/op.h"
#include "graph/op_util.h"
#include "tests/lower_test_util.h"
#include "tests/op_test_util.h"

using namespace kiln;
using namespace kiln::testing;

namespace {

// A momentum step: velocity' = momentum * velocity - lr * grad; weight' = weight + velocity'.
const bool kRegistered = [] {
  OpRegistry::Global()
      .Register("_test_momentum_step")
      .Describe("test-only: a two-output elementwise update")
      .Attr("lr", AttrType::kFloat, AttrValue{0.1})
      .Attr("momentum", AttrType::kFloat, AttrValue{0.9})
      .Inputs({"weight", "grad", "velocity"})
      .Outputs({"weight", "velocity"})
      .SetInferShape([](const Attrs&, std::vector<ShapeSlot>& in, std::vector<ShapeSlot>& out) {
        out[0] = in[0];
        out[1] = in[0];
      })
      .SetPattern(OpPattern::kElementwise)
      .SetReference([](const Attrs& attrs, std::span<const Tensor> in, std::span<Tensor> out, const RefContext&) {
        for (int64_t i = 0; i < in[0].size(); ++i) {
          const auto v =
              static_cast<float>(static_cast<float>(attrs.Float("momentum")) * static_cast<float>(in[2].GetDouble(i)) -
                                 static_cast<float>(attrs.Float("lr")) * static_cast<float>(in[1].GetDouble(i)));
          out[1].SetDouble(i, v);
          out[0].SetDouble(i, static_cast<float>(in[0].GetDouble(i)) + v);
        }
      })
      .SetScalarComputeMulti([](const Attrs& attrs, const std::vector<kir::Expr>& in, kir::ScalarType type) {
        const kir::Expr velocity =
            kir::FloatImm(attrs.Float("momentum"), type) * in[2] - kir::FloatImm(attrs.Float("lr"), type) * in[1];
        return std::vector<kir::Expr>{in[0] + velocity, velocity};
      });
  return true;
}();

}  // namespace

TEST_CASE("a scalar function with two outputs lowers to one loop storing both", "[lower]") {
  const std::vector<Tensor> inputs = {RandomTensor({3, 7}, 1), RandomTensor({3, 7}, 2), RandomTensor({3, 7}, 3)};
  const auto got = RunLowered("_test_momentum_step", inputs);
  const auto expected = RunOp("_test_momentum_step", inputs);
  REQUIRE(got.size() == 2);
  for (size_t k = 0; k < 2; ++k) CHECK(got[k].BitwiseEquals(expected[k]));
  CHECK(OpRegistry::Global().Get("_test_momentum_step").has_lowering());
}
