// Elementwise binary operators: same-shape (elemwise_*), broadcasting (broadcast_*),
// with a scalar (_plus_scalar, ...) and add_n.
#include <cmath>

#include "codegen/kir/kir.h"
#include "symbol/op_util.h"

namespace kiln {
namespace {

using op_util::BinaryBroadcastReference;

// The compiled form of each binary operator, on values already in the compute type.
using KirBinary = kir::Expr (*)(kir::Expr, kir::Expr);

// One binary operator three ways: the reference on floats (in double) and on integers
// (exact, wrapping when stored; see op_util's integer arithmetic), and the kernel IR.
struct BinaryMath {
  double (*real)(double, double);
  int64_t (*integer)(int64_t, int64_t);
  KirBinary kir;
};

int64_t Wrapping(uint64_t v) {
  return static_cast<int64_t>(v);
}

const BinaryMath kAdd{[](double a, double b) { return a + b; },
                      [](int64_t a, int64_t b) { return Wrapping(uint64_t(a) + uint64_t(b)); },
                      [](kir::Expr a, kir::Expr b) { return a + b; }};
const BinaryMath kSub{[](double a, double b) { return a - b; },
                      [](int64_t a, int64_t b) { return Wrapping(uint64_t(a) - uint64_t(b)); },
                      [](kir::Expr a, kir::Expr b) { return a - b; }};
const BinaryMath kMul{[](double a, double b) { return a * b; },
                      [](int64_t a, int64_t b) { return Wrapping(uint64_t(a) * uint64_t(b)); },
                      [](kir::Expr a, kir::Expr b) { return a * b; }};
const BinaryMath kDiv{[](double a, double b) { return a / b; }, op_util::IntDivide,
                      [](kir::Expr a, kir::Expr b) { return a / b; }};
const BinaryMath kPow{[](double a, double b) { return std::pow(a, b); }, op_util::IntPower, kir::Pow};
// NaN-propagating: a NaN on the left wins.
const BinaryMath kMax{
    [](double a, double b) { return std::isnan(a) || a > b ? a : b; },
    [](int64_t a, int64_t b) { return a > b ? a : b; },
    [](kir::Expr a, kir::Expr b) { return kir::Select(kir::Or(kir::Ne(a, a), kir::Gt(a, b)), a, b); }};
const BinaryMath kMin{
    [](double a, double b) { return std::isnan(a) || a < b ? a : b; },
    [](int64_t a, int64_t b) { return a < b ? a : b; },
    [](kir::Expr a, kir::Expr b) { return kir::Select(kir::Or(kir::Ne(a, a), kir::Lt(a, b)), a, b); }};
const BinaryMath kEqual{[](double a, double b) { return a == b ? 1.0 : 0.0; },
                        [](int64_t a, int64_t b) { return int64_t{a == b}; }, kir::Eq};
const BinaryMath kNotEqual{[](double a, double b) { return a != b ? 1.0 : 0.0; },
                           [](int64_t a, int64_t b) { return int64_t{a != b}; }, kir::Ne};
const BinaryMath kGreater{[](double a, double b) { return a > b ? 1.0 : 0.0; },
                          [](int64_t a, int64_t b) { return int64_t{a > b}; }, kir::Gt};
const BinaryMath kLesser{[](double a, double b) { return a < b ? 1.0 : 0.0; },
                         [](int64_t a, int64_t b) { return int64_t{a < b}; }, kir::Lt};

ReferenceFn BinaryReference(const BinaryMath& math) {
  return BinaryBroadcastReference(math.real, math.integer);
}

ScalarFn BinaryScalar(KirBinary fn) {
  return [fn](const Attrs&, const std::vector<kir::Expr>& in, kir::ScalarType type) {
    return kir::Cast(type, fn(kir::Cast(type, in[0]), kir::Cast(type, in[1])));
  };
}

void RegisterSameShape(const char* name, const char* doc, const BinaryMath& math) {
  OpRegistry::Global()
      .Register(name)
      .Describe(doc)
      .Inputs({"lhs", "rhs"})
      .SetInferShape(op_util::SameShapeInfer())
      .SetInplace([](const Attrs&) {
        return std::vector<std::pair<int, int>>{{0, 0}, {1, 0}};
      })
      .SetPattern(OpPattern::kElementwise)
      .SetReference(BinaryReference(math))
      .SetScalarCompute(BinaryScalar(math.kir));
}

void RegisterBroadcast(const char* name, const char* doc, const BinaryMath& math) {
  OpRegistry::Global()
      .Register(name)
      .Describe(doc)
      .Inputs({"lhs", "rhs"})
      .SetInferShape(op_util::BroadcastInfer())
      .SetPattern(OpPattern::kBroadcast)
      .SetReference(BinaryReference(math))
      .SetScalarCompute(BinaryScalar(math.kir));
}

enum class Operands { kTensorFirst, kScalarFirst };

// As MXNet: the scalar is converted to the tensor's dtype (an integer tensor truncates
// it) and the operation computes in that dtype.
void RegisterScalar(const char* name, const char* doc, const BinaryMath& math,
                    Operands order = Operands::kTensorFirst) {
  const bool scalar_first = order == Operands::kScalarFirst;
  OpRegistry::Global()
      .Register(name)
      .Describe(doc)
      .Attr("scalar", AttrType::kFloat, AttrValue{1.0}, "the scalar operand")
      .Attr("is_int", AttrType::kBool, AttrValue{true}, "MXNet 1.9 records whether the scalar was an integer")
      .SetInferShape(op_util::SameShapeInfer())
      .SetInplace(op_util::InplaceIdentity())
      .SetPattern(OpPattern::kElementwise)
      .SetReference([math, scalar_first](const Attrs& attrs, std::span<const Tensor> in, std::span<Tensor> out,
                                         const RefContext&) {
        const double scalar = attrs.Float("scalar");
        if (IsFloat(out[0].dtype())) {
          for (int64_t i = 0; i < out[0].size(); ++i) {
            const double x = in[0].GetDouble(i);
            out[0].SetDouble(i, scalar_first ? math.real(scalar, x) : math.real(x, scalar));
          }
          return;
        }
        const int64_t s = op_util::ScalarToInt(scalar, out[0].dtype());
        for (int64_t i = 0; i < out[0].size(); ++i) {
          const int64_t x = op_util::LoadInt(in[0], i);
          op_util::StoreInt(out[0], i, scalar_first ? math.integer(s, x) : math.integer(x, s));
        }
      })
      .SetScalarCompute(
          [math, scalar_first](const Attrs& attrs, const std::vector<kir::Expr>& in, kir::ScalarType type) {
            const kir::Expr x = kir::Cast(type, in[0]);
            const kir::Expr s = kir::Const(attrs.Float("scalar"), type);
            return kir::Cast(type, scalar_first ? math.kir(s, x) : math.kir(x, s));
          });
}

const bool kRegistered = [] {
  RegisterSameShape("elemwise_add", "lhs + rhs, same shapes", kAdd);
  RegisterSameShape("elemwise_sub", "lhs - rhs, same shapes", kSub);
  RegisterSameShape("elemwise_mul", "lhs * rhs, same shapes", kMul);
  RegisterSameShape("elemwise_div", "lhs / rhs, same shapes", kDiv);

  RegisterBroadcast("broadcast_add", "lhs + rhs with broadcasting", kAdd);
  RegisterBroadcast("broadcast_sub", "lhs - rhs with broadcasting", kSub);
  RegisterBroadcast("broadcast_mul", "lhs * rhs with broadcasting", kMul);
  RegisterBroadcast("broadcast_div", "lhs / rhs with broadcasting", kDiv);
  RegisterBroadcast("broadcast_maximum", "max(lhs, rhs) with broadcasting", kMax);
  RegisterBroadcast("broadcast_minimum", "min(lhs, rhs) with broadcasting", kMin);
  RegisterBroadcast("broadcast_power", "lhs ** rhs with broadcasting", kPow);
  RegisterBroadcast("broadcast_equal", "1 where lhs == rhs else 0", kEqual);
  RegisterBroadcast("broadcast_not_equal", "1 where lhs != rhs else 0", kNotEqual);
  RegisterBroadcast("broadcast_greater", "1 where lhs > rhs else 0", kGreater);
  RegisterBroadcast("broadcast_lesser", "1 where lhs < rhs else 0", kLesser);

  RegisterScalar("_plus_scalar", "x + scalar", kAdd);
  RegisterScalar("_minus_scalar", "x - scalar", kSub);
  RegisterScalar("_rminus_scalar", "scalar - x", kSub, Operands::kScalarFirst);
  RegisterScalar("_mul_scalar", "x * scalar", kMul);
  RegisterScalar("_div_scalar", "x / scalar", kDiv);
  RegisterScalar("_rdiv_scalar", "scalar / x", kDiv, Operands::kScalarFirst);
  RegisterScalar("_maximum_scalar", "max(x, scalar)", kMax);
  RegisterScalar("_minimum_scalar", "min(x, scalar)", kMin);
  RegisterScalar("_power_scalar", "x ** scalar", kPow);
  RegisterScalar("_rpower_scalar", "scalar ** x", kPow, Operands::kScalarFirst);

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
