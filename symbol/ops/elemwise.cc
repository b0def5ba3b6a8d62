// Elementwise binary operators: same-shape (elemwise_*), broadcasting (broadcast_*),
// with a scalar (_plus_scalar, ...) and add_n.
#include <cmath>

#include "symbol/op_util.h"

namespace kiln {
namespace {

using op_util::BinaryBroadcastReference;
using op_util::UnaryReference;

double Power(double a, double b) { return std::pow(a, b); }

void RegisterSameShape(const char* name, const char* doc, double (*fn)(double, double)) {
  OpRegistry::Global()
      .Register(name)
      .Describe(doc)
      .Inputs({"lhs", "rhs"})
      .SetInferShape(op_util::SameShapeInfer())
      .SetInplace([](const Attrs&) { return std::vector<std::pair<int, int>>{{0, 0}, {1, 0}}; })
      .SetPattern(OpPattern::kElementwise)
      .SetReference(BinaryBroadcastReference(fn));
}

void RegisterBroadcast(const char* name, const char* doc, double (*fn)(double, double)) {
  OpRegistry::Global()
      .Register(name)
      .Describe(doc)
      .Inputs({"lhs", "rhs"})
      .SetInferShape(op_util::BroadcastInfer())
      .SetPattern(OpPattern::kBroadcast)
      .SetReference(BinaryBroadcastReference(fn));
}

// Scalar forms compute in double and store in the input dtype (MXNet computes in the
// input dtype; the results agree to rounding).
void RegisterScalar(const char* name, const char* doc, double (*fn)(double, double)) {
  OpRegistry::Global()
      .Register(name)
      .Describe(doc)
      .Attr("scalar", AttrType::kFloat, AttrValue{1.0}, "the scalar operand")
      .Attr("is_int", AttrType::kBool, AttrValue{true}, "MXNet 1.9 records whether the scalar was an integer")
      .SetInferShape(op_util::SameShapeInfer())
      .SetInplace(op_util::InplaceIdentity())
      .SetPattern(OpPattern::kElementwise)
      .SetReference([fn](const Attrs& attrs, std::span<const Tensor> in, std::span<Tensor> out, const RefContext&) {
        const double scalar = attrs.Float("scalar");
        for (int64_t i = 0; i < out[0].size(); ++i) out[0].SetDouble(i, fn(in[0].GetDouble(i), scalar));
      });
}

const bool kRegistered = [] {
  RegisterSameShape("elemwise_add", "lhs + rhs, same shapes", [](double a, double b) { return a + b; });
  RegisterSameShape("elemwise_sub", "lhs - rhs, same shapes", [](double a, double b) { return a - b; });
  RegisterSameShape("elemwise_mul", "lhs * rhs, same shapes", [](double a, double b) { return a * b; });
  RegisterSameShape("elemwise_div", "lhs / rhs, same shapes", [](double a, double b) { return a / b; });

  RegisterBroadcast("broadcast_add", "lhs + rhs with broadcasting", [](double a, double b) { return a + b; });
  RegisterBroadcast("broadcast_sub", "lhs - rhs with broadcasting", [](double a, double b) { return a - b; });
  RegisterBroadcast("broadcast_mul", "lhs * rhs with broadcasting", [](double a, double b) { return a * b; });
  RegisterBroadcast("broadcast_div", "lhs / rhs with broadcasting", [](double a, double b) { return a / b; });
  RegisterBroadcast("broadcast_maximum", "max(lhs, rhs) with broadcasting",
                    [](double a, double b) { return std::isnan(a) || a > b ? a : b; });
  RegisterBroadcast("broadcast_minimum", "min(lhs, rhs) with broadcasting",
                    [](double a, double b) { return std::isnan(a) || a < b ? a : b; });
  RegisterBroadcast("broadcast_power", "lhs ** rhs with broadcasting", Power);
  RegisterBroadcast("broadcast_equal", "1 where lhs == rhs else 0", [](double a, double b) { return a == b ? 1.0 : 0.0; });
  RegisterBroadcast("broadcast_not_equal", "1 where lhs != rhs else 0",
                    [](double a, double b) { return a != b ? 1.0 : 0.0; });
  RegisterBroadcast("broadcast_greater", "1 where lhs > rhs else 0", [](double a, double b) { return a > b ? 1.0 : 0.0; });
  RegisterBroadcast("broadcast_lesser", "1 where lhs < rhs else 0", [](double a, double b) { return a < b ? 1.0 : 0.0; });

  RegisterScalar("_plus_scalar", "x + scalar", [](double x, double s) { return x + s; });
  RegisterScalar("_minus_scalar", "x - scalar", [](double x, double s) { return x - s; });
  RegisterScalar("_rminus_scalar", "scalar - x", [](double x, double s) { return s - x; });
  RegisterScalar("_mul_scalar", "x * scalar", [](double x, double s) { return x * s; });
  RegisterScalar("_div_scalar", "x / scalar", [](double x, double s) { return x / s; });
  RegisterScalar("_rdiv_scalar", "scalar / x", [](double x, double s) { return s / x; });
  RegisterScalar("_maximum_scalar", "max(x, scalar)", [](double x, double s) { return std::isnan(x) || x > s ? x : s; });
  RegisterScalar("_minimum_scalar", "min(x, scalar)", [](double x, double s) { return std::isnan(x) || x < s ? x : s; });
  RegisterScalar("_power_scalar", "x ** scalar", Power);
  RegisterScalar("_rpower_scalar", "scalar ** x", [](double x, double s) { return std::pow(s, x); });

  OpRegistry::Global()
      .Register("add_n")
      .Describe("Sum of num_args inputs of one shape")
      .Alias("ElementWiseSum")
      .Attr("num_args", AttrType::kInt, std::nullopt, "number of inputs")
      .Range(1)
      .Inputs([](const Attrs& attrs) {
        std::vector<std::string> names;
        for (int64_t i = 0; i < attrs.Int("num_args"); ++i) names.push_back("arg" + std::to_string(i));
        return names;
      })
      .SetInferShape(op_util::SameShapeInfer())
      .SetInplace(op_util::InplaceIdentity())
      .SetPattern(OpPattern::kElementwise)
      .SetReference([](const Attrs&, std::span<const Tensor> in, std::span<Tensor> out, const RefContext&) {
        for (int64_t i = 0; i < out[0].size(); ++i) {
          double sum = 0;
          for (const auto& tensor : in) sum += tensor.GetDouble(i);
          out[0].SetDouble(i, sum);
        }
      });
  return true;
}();

}  // namespace
}  // namespace kiln
