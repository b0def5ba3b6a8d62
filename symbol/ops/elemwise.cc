// Elementwise binary operators: same-shape (elemwise_*), broadcasting (broadcast_*),
// with a scalar (_plus_scalar, ...) and add_n.
#include <cmath>

#include "codegen/kir/kir.h"
#include "symbol/op_util.h"

namespace kiln {
namespace {

using op_util::BinaryBroadcastReference;
using op_util::UnaryReference;

double Power(double a, double b) {
  return std::pow(a, b);
}

// The compiled form of each binary operator, on values already in the compute type.
using KirBinary = kir::Expr (*)(kir::Expr, kir::Expr);

kir::Expr KirAdd(kir::Expr a, kir::Expr b) {
  return a + b;
}
kir::Expr KirSub(kir::Expr a, kir::Expr b) {
  return a - b;
}
kir::Expr KirMul(kir::Expr a, kir::Expr b) {
  return a * b;
}
kir::Expr KirDiv(kir::Expr a, kir::Expr b) {
  return a / b;
}
kir::Expr KirRsub(kir::Expr a, kir::Expr b) {
  return b - a;
}
kir::Expr KirRdiv(kir::Expr a, kir::Expr b) {
  return b / a;
}
kir::Expr KirRpow(kir::Expr a, kir::Expr b) {
  return kir::Pow(b, a);
}
// NaN-propagating like the reference: a NaN on the left wins.
kir::Expr KirMax(kir::Expr a, kir::Expr b) {
  return kir::Select(kir::Or(kir::Ne(a, a), kir::Gt(a, b)), a, b);
}
kir::Expr KirMin(kir::Expr a, kir::Expr b) {
  return kir::Select(kir::Or(kir::Ne(a, a), kir::Lt(a, b)), a, b);
}
kir::Expr KirPow(kir::Expr a, kir::Expr b) {
  return kir::Pow(a, b);
}
kir::Expr KirEq(kir::Expr a, kir::Expr b) {
  return kir::Eq(a, b);
}
kir::Expr KirNe(kir::Expr a, kir::Expr b) {
  return kir::Ne(a, b);
}
kir::Expr KirGt(kir::Expr a, kir::Expr b) {
  return kir::Gt(a, b);
}
kir::Expr KirLt(kir::Expr a, kir::Expr b) {
  return kir::Lt(a, b);
}

ScalarFn BinaryScalar(KirBinary fn) {
  return [fn](const Attrs&, const std::vector<kir::Expr>& in, kir::ScalarType type) {
    return kir::Cast(type, fn(kir::Cast(type, in[0]), kir::Cast(type, in[1])));
  };
}

void RegisterSameShape(const char* name, const char* doc, double (*fn)(double, double), KirBinary kir_fn) {
  OpRegistry::Global()
      .Register(name)
      .Describe(doc)
      .Inputs({"lhs", "rhs"})
      .SetInferShape(op_util::SameShapeInfer())
      .SetInplace([](const Attrs&) {
        return std::vector<std::pair<int, int>>{{0, 0}, {1, 0}};
      })
      .SetPattern(OpPattern::kElementwise)
      .SetReference(BinaryBroadcastReference(fn))
      .SetScalarCompute(BinaryScalar(kir_fn));
}

void RegisterBroadcast(const char* name, const char* doc, double (*fn)(double, double), KirBinary kir_fn) {
  OpRegistry::Global()
      .Register(name)
      .Describe(doc)
      .Inputs({"lhs", "rhs"})
      .SetInferShape(op_util::BroadcastInfer())
      .SetPattern(OpPattern::kBroadcast)
      .SetReference(BinaryBroadcastReference(fn))
      .SetScalarCompute(BinaryScalar(kir_fn));
}

// Scalar forms compute in double and store in the input dtype (MXNet computes in the
// input dtype; the results agree to rounding).
void RegisterScalar(const char* name, const char* doc, double (*fn)(double, double), KirBinary kir_fn) {
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
      })
      .SetScalarCompute([kir_fn](const Attrs& attrs, const std::vector<kir::Expr>& in, kir::ScalarType type) {
        return kir::Cast(type, kir_fn(kir::Cast(type, in[0]), kir::Const(attrs.Float("scalar"), type)));
      });
}

const bool kRegistered = [] {
  RegisterSameShape(
      "elemwise_add", "lhs + rhs, same shapes", [](double a, double b) { return a + b; }, KirAdd);
  RegisterSameShape(
      "elemwise_sub", "lhs - rhs, same shapes", [](double a, double b) { return a - b; }, KirSub);
  RegisterSameShape(
      "elemwise_mul", "lhs * rhs, same shapes", [](double a, double b) { return a * b; }, KirMul);
  RegisterSameShape(
      "elemwise_div", "lhs / rhs, same shapes", [](double a, double b) { return a / b; }, KirDiv);

  RegisterBroadcast(
      "broadcast_add", "lhs + rhs with broadcasting", [](double a, double b) { return a + b; }, KirAdd);
  RegisterBroadcast(
      "broadcast_sub", "lhs - rhs with broadcasting", [](double a, double b) { return a - b; }, KirSub);
  RegisterBroadcast(
      "broadcast_mul", "lhs * rhs with broadcasting", [](double a, double b) { return a * b; }, KirMul);
  RegisterBroadcast(
      "broadcast_div", "lhs / rhs with broadcasting", [](double a, double b) { return a / b; }, KirDiv);
  RegisterBroadcast(
      "broadcast_maximum", "max(lhs, rhs) with broadcasting",
      [](double a, double b) { return std::isnan(a) || a > b ? a : b; }, KirMax);
  RegisterBroadcast(
      "broadcast_minimum", "min(lhs, rhs) with broadcasting",
      [](double a, double b) { return std::isnan(a) || a < b ? a : b; }, KirMin);
  RegisterBroadcast("broadcast_power", "lhs ** rhs with broadcasting", Power, KirPow);
  RegisterBroadcast(
      "broadcast_equal", "1 where lhs == rhs else 0", [](double a, double b) { return a == b ? 1.0 : 0.0; }, KirEq);
  RegisterBroadcast(
      "broadcast_not_equal", "1 where lhs != rhs else 0", [](double a, double b) { return a != b ? 1.0 : 0.0; }, KirNe);
  RegisterBroadcast(
      "broadcast_greater", "1 where lhs > rhs else 0", [](double a, double b) { return a > b ? 1.0 : 0.0; }, KirGt);
  RegisterBroadcast(
      "broadcast_lesser", "1 where lhs < rhs else 0", [](double a, double b) { return a < b ? 1.0 : 0.0; }, KirLt);

  RegisterScalar(
      "_plus_scalar", "x + scalar", [](double x, double s) { return x + s; }, KirAdd);
  RegisterScalar(
      "_minus_scalar", "x - scalar", [](double x, double s) { return x - s; }, KirSub);
  RegisterScalar(
      "_rminus_scalar", "scalar - x", [](double x, double s) { return s - x; }, KirRsub);
  RegisterScalar(
      "_mul_scalar", "x * scalar", [](double x, double s) { return x * s; }, KirMul);
  RegisterScalar(
      "_div_scalar", "x / scalar", [](double x, double s) { return x / s; }, KirDiv);
  RegisterScalar(
      "_rdiv_scalar", "scalar / x", [](double x, double s) { return s / x; }, KirRdiv);
  RegisterScalar(
      "_maximum_scalar", "max(x, scalar)", [](double x, double s) { return std::isnan(x) || x > s ? x : s; }, KirMax);
  RegisterScalar(
      "_minimum_scalar", "min(x, scalar)", [](double x, double s) { return std::isnan(x) || x < s ? x : s; }, KirMin);
  RegisterScalar("_power_scalar", "x ** scalar", Power, KirPow);
  RegisterScalar(
      "_rpower_scalar", "scalar ** x", [](double x, double s) { return std::pow(s, x); }, KirRpow);

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
      })
      .SetScalarCompute([](const Attrs&, const std::vector<kir::Expr>& in, kir::ScalarType type) {
        kir::Expr sum = kir::Cast(type, in[0]);
        for (size_t k = 1; k < in.size(); ++k) sum = sum + kir::Cast(type, in[k]);
        return sum;
      });
  return true;
}();

}  // namespace
}  // namespace kiln
