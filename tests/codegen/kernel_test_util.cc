#include "tests/codegen/kernel_test_util.h"

#include <cmath>
#include <random>

namespace kiln::testing {

using kir::ScalarType;

// Runs `fn` over [0, extent) in three uneven shares, with an empty and a reversed range
// between them that must do nothing.
void RunShares(KilnKernelFn fn, int64_t extent, const std::vector<void*>& buffers, const KilnRuntimeApi* api) {
  void* const* args = buffers.data();
  const int64_t cut1 = extent / 3;
  const int64_t cut2 = extent - extent / 5;
  fn(args, 0, cut1, api);
  fn(args, cut1, cut1, api);
  fn(args, cut1, cut2, api);
  fn(args, cut2, cut1, api);
  fn(args, cut2, extent, api);
}

DType ToDType(ScalarType type) {
  switch (type) {
    case ScalarType::kBool: return DType::kBool;
    case ScalarType::kInt8: return DType::kInt8;
    case ScalarType::kUInt8: return DType::kUInt8;
    case ScalarType::kInt32: return DType::kInt32;
    case ScalarType::kInt64: return DType::kInt64;
    case ScalarType::kFloat16: return DType::kFloat16;
    case ScalarType::kFloat32: return DType::kFloat32;
    case ScalarType::kFloat64: return DType::kFloat64;
    case ScalarType::kInt16: return DType::kInt16;
    case ScalarType::kUInt16: return DType::kUInt16;
    case ScalarType::kUInt32: return DType::kUInt32;
    case ScalarType::kUInt64: return DType::kUInt64;
    case ScalarType::kBFloat16: return DType::kBFloat16;
  }
  return DType::kFloat32;
}

const std::vector<kir::ScalarType> kAllTypes = {
    ScalarType::kBool,     ScalarType::kInt8,    ScalarType::kUInt8,  ScalarType::kInt16,  ScalarType::kUInt16,
    ScalarType::kInt32,    ScalarType::kUInt32,  ScalarType::kInt64,  ScalarType::kUInt64, ScalarType::kFloat16,
    ScalarType::kBFloat16, ScalarType::kFloat32, ScalarType::kFloat64};

// Runs `kernel` (inputs, then one output of `out_type`) and returns the output.
Tensor RunKernel(const KernelRunner& runner, const kir::Kernel& kernel, const std::vector<Tensor>& inputs,
                 ScalarType out_type) {
  Tensor out({kernel.args.back()->size}, ToDType(out_type));
  std::vector<void*> buffers;
  for (const auto& t : inputs) buffers.push_back(const_cast<void*>(t.data()));
  buffers.push_back(out.data());
  runner(kernel, buffers);
  return out;
}

// out[i] = fn(in[i]) in a vectorized loop.
kir::Kernel MapKernel(ScalarType in_type, ScalarType out_type, int64_t n,
                      const std::function<kir::Expr(kir::Expr)>& fn) {
  kir::KernelBuilder b("map");
  const auto in = b.AddArg("in", in_type, n);
  const auto out = b.AddArg("out", out_type, n);
  const kir::Expr i = kir::Var("i");
  return b.Finish(kir::For(i, 0, n, kir::Store(out, i, fn(kir::Load(in, i))), kir::LoopKind::kVectorize));
}

// out[i] = fn(a[i], b[i]) in a vectorized loop.
kir::Kernel ZipKernel(ScalarType in_type, ScalarType out_type, int64_t n,
                      const std::function<kir::Expr(kir::Expr, kir::Expr)>& fn) {
  kir::KernelBuilder b("zip");
  const auto x = b.AddArg("a", in_type, n);
  const auto y = b.AddArg("b", in_type, n);
  const auto out = b.AddArg("out", out_type, n);
  const kir::Expr i = kir::Var("i");
  return b.Finish(
      kir::For(i, 0, n, kir::Store(out, i, fn(kir::Load(x, i), kir::Load(y, i))), kir::LoopKind::kVectorize));
}

// A tensor holding `values` converted to `dtype` as C++ does (values must fit).
Tensor Ints(const std::vector<int64_t>& values, DType dtype) {
  Tensor t({static_cast<int64_t>(values.size())}, dtype);
  for (size_t i = 0; i < values.size(); ++i) {
    const int64_t v = values[i];
    switch (dtype) {
      case DType::kBool: t.data_as<uint8_t>()[i] = v != 0; break;
      case DType::kInt8: t.data_as<int8_t>()[i] = static_cast<int8_t>(v); break;
      case DType::kUInt8: t.data_as<uint8_t>()[i] = static_cast<uint8_t>(v); break;
      case DType::kInt16: t.data_as<int16_t>()[i] = static_cast<int16_t>(v); break;
      case DType::kUInt16: t.data_as<uint16_t>()[i] = static_cast<uint16_t>(v); break;
      case DType::kInt32: t.data_as<int32_t>()[i] = static_cast<int32_t>(v); break;
      case DType::kUInt32: t.data_as<uint32_t>()[i] = static_cast<uint32_t>(v); break;
      case DType::kInt64:
      case DType::kUInt64: t.data_as<int64_t>()[i] = v; break;  // uint64: the bits
      default: t.SetDouble(static_cast<int64_t>(i), static_cast<double>(v));
    }
  }
  return t;
}

Tensor RandomInts(const Shape& shape, uint64_t seed, int64_t low, int64_t high, DType dtype) {
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<int64_t> dist(low, high);
  Tensor t(shape, dtype);
  for (int64_t i = 0; i < t.size(); ++i) t.SetDouble(i, static_cast<double>(dist(rng)));
  return t;
}

// Special values of each type, as a tensor.
Tensor SpecialValues(ScalarType type) {
  const DType dtype = ToDType(type);
  switch (type) {
    case ScalarType::kBool: return Ints({0, 1, 1, 0, 1}, dtype);
    case ScalarType::kInt8: return Ints({-128, -1, 0, 1, 7, 100, 127, -100, 3}, dtype);
    case ScalarType::kUInt8: return Ints({0, 1, 7, 100, 200, 255, 128, 3}, dtype);
    case ScalarType::kInt16: return Ints({INT16_MIN, -1, 0, 1, 7, 255, 256, INT16_MAX, -300, 181}, dtype);
    case ScalarType::kUInt16: return Ints({0, 1, 7, 255, 256, 40000, UINT16_MAX, 32768, 3}, dtype);
    case ScalarType::kUInt32:
      return Ints({0, 1, 7, 65536, int64_t{1} << 31, UINT32_MAX, 3000000000, 16777217, 3}, dtype);
    case ScalarType::kUInt64:  // bit patterns: -1 is 2^64 - 1, INT64_MIN is 2^63
      return Ints({0, 1, INT64_MAX, INT64_MIN, -1, (int64_t{1} << 60) + (int64_t{1} << 36) + 1, (int64_t{1} << 53) + 1,
                   INT64_MIN + (int64_t{1} << 40) + 1, 7, 3},
                  dtype);
    case ScalarType::kInt32: return Ints({INT32_MIN, -1, 0, 1, 16777217, INT32_MAX, -7, 100000, 46341}, dtype);
    case ScalarType::kInt64:
      return Ints({INT64_MIN, -1, 0, 1, (int64_t{1} << 60) + (int64_t{1} << 36) + 1, INT64_MAX, -7, int64_t{1} << 53,
                   (int64_t{1} << 53) + 1},
                  dtype);
    default:
      return Tensor::FromDoubles(
          {30},
          // 1 + 2^-8 and 1 + 3 * 2^-8 are bfloat16 ties (to even: down, up); 3.397e38
          // rounds to bfloat16's infinity; 1e19 and -1e19 convert to uint64 (or not).
          std::vector<double>{
              0.0,   -0.0,       1.5,        -1.5,     2.5,    -2.5,
              127.9, 128.0,      255.9,      300.7,    -300.7, 3e9,
              -3e9,  1e20,       -1e20,      kInf,     -kInf,  kNaN,
              1e-40, 65504,      65520,      1e5,      0.1,    1.0 + std::ldexp(1.0, -11) + std::ldexp(1.0, -30),
              -7.25, 1.00390625, 1.01171875, 3.397e38, 1e19,   -1e19},
          dtype);
  }
}

// Identical values: bit for bit, except that any two NaNs agree (their sign and payload
// depend on how a NaN was made).
bool Bitwise(const Tensor& a, const Tensor& b) {
  if (!IsFloat(a.dtype()) || a.dtype() != b.dtype() || a.shape() != b.shape()) return a.BitwiseEquals(b);
  for (int64_t i = 0; i < a.size(); ++i) {
    const double x = a.GetDouble(i);
    const double y = b.GetDouble(i);
    if (std::isnan(x) && std::isnan(y)) continue;
    if (x != y || std::signbit(x) != std::signbit(y)) return false;
  }
  return true;
}

bool IsComparison(kir::BinaryOp op) {
  using kir::BinaryOp;
  return op == BinaryOp::kLT || op == BinaryOp::kLE || op == BinaryOp::kGT || op == BinaryOp::kGE ||
         op == BinaryOp::kEQ || op == BinaryOp::kNE;
}

std::vector<kir::BinaryOp> BinaryOpsFor(ScalarType type) {
  using kir::BinaryOp;
  std::vector<BinaryOp> ops;
  for (const BinaryOp op : {BinaryOp::kAdd, BinaryOp::kSub, BinaryOp::kMul, BinaryOp::kDiv, BinaryOp::kMod,
                            BinaryOp::kMin, BinaryOp::kMax, BinaryOp::kPow, BinaryOp::kLT, BinaryOp::kLE, BinaryOp::kGT,
                            BinaryOp::kGE, BinaryOp::kEQ, BinaryOp::kNE, BinaryOp::kAnd, BinaryOp::kOr}) {
    if (op == BinaryOp::kPow && !kir::IsFloatType(type) && type != ScalarType::kBool) continue;
    if ((op == BinaryOp::kAnd || op == BinaryOp::kOr) && kir::IsFloatType(type)) continue;
    ops.push_back(op);
  }
  return ops;
}

std::string Show(const Tensor& t) {
  std::string s;
  for (int64_t i = 0; i < t.size(); ++i) s += (i ? " " : "") + std::to_string(t.GetDouble(i));
  return s;
}

}  // namespace kiln::testing
