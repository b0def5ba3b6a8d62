// The LLVM emitter: hand-built kernels and lowered operators, run in-process (JIT) and
// as shared objects (AOT), against the kir interpreter and the reference.
#include "codegen/llvm/llvm_emitter.h"

#include <algorithm>
#include <atomic>
#include <catch2/catch.hpp>
#include <cmath>
#include <cstring>
#include <functional>
#include <limits>
#include <random>
#include <thread>
#include <tuple>

#include "codegen/kir_interpreter.h"
#include "graph/op.h"
#include "runtime/code_module.h"
#include "runtime/error.h"
#include "tests/codegen/kernel_test_util.h"
#include "tests/lower_test_util.h"
#include "tests/op_test_util.h"

using namespace kiln;
using namespace kiln::testing;
using kir::ScalarType;

namespace {

CpuTarget Cpu(const std::string& name, const std::string& features = "", int opt_level = 2) {
  CpuTarget target;
  target.cpu = name;
  target.features = features;
  target.opt_level = opt_level;
  return target;
}

KernelRunner JitRunner(const CpuTarget& target = {}) {
  return [target](const kir::Kernel& kernel, const std::vector<void*>& buffers) {
    const auto code = JitCompile({kernel}, target);
    const KilnKernelFn fn = code->Find(kernel.name);
    REQUIRE(fn != nullptr);
    RunShares(fn, kernel.parallel_extent, buffers);
  };
}

KernelRunner AotRunner(const CpuTarget& target = {}) {
  return [target](const kir::Kernel& kernel, const std::vector<void*>& buffers) {
    const auto code = LoadSharedObject(CompileSharedObject({kernel}, target));
    const KilnKernelFn fn = code->Find(kernel.name);
    REQUIRE(fn != nullptr);
    RunShares(fn, kernel.parallel_extent, buffers);
  };
}

}  // namespace

TEST_CASE("targets resolve, and bad CPUs and features are clear errors", "[llvm]") {
  const ResolvedTarget host = ResolveTarget({});
  CHECK(host.cpu != "host");
  CHECK_FALSE(host.cpu.empty());
  CHECK_FALSE(host.features.empty());
#if defined(__x86_64__)
  CHECK(host.triple.rfind("x86_64", 0) == 0);
  const ResolvedTarget v3 = ResolveTarget(Cpu("x86-64-v3"));
  CHECK(v3.cpu == "x86-64-v3");
  const auto has = [](const ResolvedTarget& t, const std::string& f) {
    return std::find(t.features.begin(), t.features.end(), f) != t.features.end();
  };
  CHECK(has(v3, "avx2"));
  CHECK(has(v3, "fma"));
  CHECK(has(v3, "f16c"));
  CHECK_FALSE(has(v3, "avx512f"));
  CHECK_FALSE(has(v3, "fast-variable-crosslane-shuffle"));  // a tuning flag, not an ISA feature
  const ResolvedTarget plus = ResolveTarget(Cpu("x86-64", " +avx2, +fma "));
  CHECK(plus.feature_string == "+avx2,+fma");
  CHECK(has(plus, "avx2"));
  CHECK(has(plus, "avx"));  // implied
  CHECK_FALSE(has(ResolveTarget(Cpu("x86-64-v3", "-avx2")), "avx2"));
#endif
  CHECK_THROWS_WITH(ResolveTarget(Cpu("skylak")),
                    Catch::Contains("unknown CPU 'skylak'") && Catch::Contains("did you mean 'skylake'"));
  CHECK_THROWS_AS(JitCompile({}, Cpu("no-such-cpu")), Error);
  CHECK_THROWS_AS(CompileSharedObject({}, Cpu("no-such-cpu")), Error);
  CHECK_THROWS_WITH(ResolveTarget(Cpu("host", "avx2")), Catch::Contains("features are +name or -name"));
  CHECK_THROWS_WITH(ResolveTarget(Cpu("host", "+avx3")),
                    Catch::Contains("unknown CPU feature 'avx3'") && Catch::Contains("did you mean"));
  CHECK_THROWS_WITH(ResolveTarget(Cpu("host", "", 4)), Catch::Contains("opt_level must be 0, 1, 2 or 3, given 4"));
}

TEST_CASE("kernel symbols are C identifiers that never collide with libc", "[llvm]") {
  CHECK(KernelSymbolName("kiln_k3_fc1") == "kiln_k3_fc1");
  CHECK(KernelSymbolName("exp") == "kiln_x_exp");
  CHECK(KernelSymbolName("elemwise_add") == "kiln_x_elemwise__add");
  CHECK(KernelSymbolName("a.b") == "kiln_x_a_x2eb");
  CHECK(KernelSymbolName("kiln_x_a") == "kiln_x_kiln__x__a");
  CHECK(KernelSymbolName("kiln_1-") == "kiln_x_kiln__1_x2d");
  CHECK(KernelSymbolName("a__b") != KernelSymbolName("a_x5fb"));
}

TEST_CASE("casts between every pair of types match the interpreter bit for bit", "[llvm]") {
  for (const ScalarType from : kAllTypes) {
    const Tensor in = SpecialValues(from);
    for (const ScalarType to : kAllTypes) {
      INFO(kir::ScalarTypeName(from) << " -> " << kir::ScalarTypeName(to));
      const kir::Kernel k = MapKernel(from, to, in.size(), [&](kir::Expr x) { return kir::Cast(to, x); });
      const Tensor expected = RunKernel(InterpreterRunner(), k, {in}, to);
      const Tensor jit = RunKernel(JitRunner(), k, {in}, to);
      INFO("expected " << Show(expected) << "\njit      " << Show(jit));
      CHECK(Bitwise(jit, expected));
      if (from == ScalarType::kFloat32 || from == ScalarType::kInt64) {
        CHECK(Bitwise(RunKernel(AotRunner(), k, {in}, to), expected));
      }
    }
  }
  // Spot checks of the interpreter's rules: truncate, NaN -> 0, saturate to int64, wrap.
  const Tensor f = Tensor::FromDoubles({6}, std::vector<double>{kNaN, 3e9, 1e20, 300.7, -1.5, -kInf});
  const Tensor to_i32 = RunKernel(JitRunner(),
                                  MapKernel(ScalarType::kFloat32, ScalarType::kInt32, 6,
                                            [](kir::Expr x) { return kir::Cast(ScalarType::kInt32, x); }),
                                  {f}, ScalarType::kInt32);
  CHECK(to_i32.data_as<int32_t>()[0] == 0);
  CHECK(to_i32.data_as<int32_t>()[1] == static_cast<int32_t>(int64_t{3000000000}));
  CHECK(to_i32.data_as<int32_t>()[2] == -1);  // INT64_MAX wrapped
  CHECK(to_i32.data_as<int32_t>()[5] == 0);   // INT64_MIN wrapped
  const Tensor to_u8 = RunKernel(JitRunner(),
                                 MapKernel(ScalarType::kFloat32, ScalarType::kUInt8, 6,
                                           [](kir::Expr x) { return kir::Cast(ScalarType::kUInt8, x); }),
                                 {f}, ScalarType::kUInt8);
  CHECK(to_u8.data_as<uint8_t>()[3] == 44);
  CHECK(to_u8.data_as<uint8_t>()[4] == 255);
}

TEST_CASE("binary operators match the interpreter on special values of every type", "[llvm]") {
  using kir::BinaryOp;
  for (const ScalarType type : kAllTypes) {
    const Tensor a = SpecialValues(type);
    // b: the same values rotated, zeros replaced (the interpreter throws on integer x / 0).
    Tensor b = a.Clone();
    for (int64_t i = 0; i < b.size(); ++i) {
      b.CopyElement(i, a, (i + 3) % a.size());
      if (!kir::IsFloatType(type) && b.GetDouble(i) == 0) b.SetDouble(i, 1);
    }
    if (type == ScalarType::kInt64) b.data_as<int64_t>()[0] = 3;  // no INT64_MIN / -1 (it traps in the interpreter)
    for (const BinaryOp op : BinaryOpsFor(type)) {
      INFO(kir::ScalarTypeName(type) << " " << kir::BinaryOpName(op));
      const ScalarType out_type = IsComparison(op) ? ScalarType::kBool : type;
      const kir::Kernel k =
          ZipKernel(type, out_type, a.size(), [&](kir::Expr x, kir::Expr y) { return kir::Binary(op, x, y); });
      const Tensor expected = RunKernel(InterpreterRunner(), k, {a, b}, out_type);
      const Tensor jit = RunKernel(JitRunner(), k, {a, b}, out_type);
      INFO("expected " << Show(expected) << "\njit      " << Show(jit));
      if (op == BinaryOp::kPow && type != ScalarType::kBool) {
        // Half types compute powf and round; the interpreter rounds pow's double.
        const double rtol = type == ScalarType::kFloat16 ? 1e-3 : type == ScalarType::kBFloat16 ? 8e-3 : 1e-6;
        KILN_CHECK_CLOSE(jit, expected, rtol, 0);
      } else {
        CHECK(Bitwise(jit, expected));
      }
    }
  }
}

TEST_CASE("unary operators match the interpreter", "[llvm]") {
  using kir::UnaryOp;
  for (const ScalarType type : kAllTypes) {
    Tensor in = SpecialValues(type);
    // -INT64_MIN overflows in the interpreter (undefined behaviour); checked below instead.
    if (type == ScalarType::kInt64) in.data_as<int64_t>()[0] = INT64_MIN + 1;
    for (const UnaryOp op :
         {UnaryOp::kNeg,  UnaryOp::kAbs,   UnaryOp::kExp,   UnaryOp::kLog,   UnaryOp::kSqrt,  UnaryOp::kTanh,
          UnaryOp::kErf,  UnaryOp::kFloor, UnaryOp::kCeil,  UnaryOp::kRound, UnaryOp::kTrunc, UnaryOp::kNot,
          UnaryOp::kSin,  UnaryOp::kCos,   UnaryOp::kTan,   UnaryOp::kAsin,  UnaryOp::kAcos,  UnaryOp::kAtan,
          UnaryOp::kSinh, UnaryOp::kCosh,  UnaryOp::kAsinh, UnaryOp::kAcosh, UnaryOp::kAtanh}) {
      if (op == UnaryOp::kNot && kir::IsFloatType(type)) continue;  // the interpreter reads floats' .i there
      INFO(kir::ScalarTypeName(type) << " " << kir::UnaryOpName(op));
      const ScalarType out_type = op == UnaryOp::kNot ? ScalarType::kBool : type;
      const kir::Kernel k = MapKernel(type, out_type, in.size(), [&](kir::Expr x) { return kir::Unary(op, x); });
      const Tensor expected = RunKernel(InterpreterRunner(), k, {in}, out_type);
      std::vector<KernelRunner> runners = {JitRunner()};
      if (kir::IsFloatType(type)) runners.push_back(AotRunner(Cpu("x86-64")));  // libm and libgcc calls
      for (const auto& runner : runners) {
        const Tensor actual = RunKernel(runner, k, {in}, out_type);
        INFO("expected " << Show(expected) << "\nactual   " << Show(actual));
        const bool libm = op == UnaryOp::kExp || op == UnaryOp::kLog || op == UnaryOp::kTanh || op == UnaryOp::kErf ||
                          op >= UnaryOp::kSin;
        if (libm && kir::IsFloatType(type)) {
          // float32 tanh is computed inline (a series near 0, exp elsewhere): a few ulps.
          const double f32_rtol = op == UnaryOp::kTanh ? 1e-6 : 3e-7;
          const double rtol = type == ScalarType::kFloat16    ? 1e-3
                              : type == ScalarType::kBFloat16 ? 8e-3
                              : type == ScalarType::kFloat32  ? f32_rtol
                                                              : 1e-15;
          KILN_CHECK_CLOSE(actual, expected, rtol, type == ScalarType::kFloat64 ? 1e-300 : 1e-37);
        } else {
          CHECK(Bitwise(actual, expected));
        }
      }
    }
  }
}

TEST_CASE("float32 tanh is within 1e-6 of the exact value everywhere, vectorized or not", "[llvm]") {
  // A dense sweep over [-12, 12] (both sides of the series/exp switch at 0.4), tiny and
  // huge magnitudes; long enough that the loop runs vectorized.
  std::vector<double> values;
  for (int i = -24000; i <= 24000; ++i) values.push_back(i * 0.0005);
  for (const double v : {1e-30, 1e-8, 0.3999999, 0.4, 0.4000001, 44.0, 89.0, 1e30}) {
    values.push_back(v);
    values.push_back(-v);
  }
  const Tensor in = Tensor::FromDoubles({static_cast<int64_t>(values.size())}, values);
  const kir::Kernel k = MapKernel(ScalarType::kFloat32, ScalarType::kFloat32, in.size(),
                                  [](kir::Expr x) { return kir::Unary(kir::UnaryOp::kTanh, x); });
  for (const auto& runner : {JitRunner(), JitRunner(Cpu("x86-64"))}) {
    const Tensor out = RunKernel(runner, k, {in}, ScalarType::kFloat32);
    double worst = 0;
    for (int64_t i = 0; i < in.size(); ++i) {
      const double exact = std::tanh(static_cast<double>(static_cast<float>(values[i])));
      worst = std::max(worst, std::fabs(out.GetDouble(i) - exact) / std::max(std::fabs(exact), 1e-30));
    }
    INFO("worst relative error " << worst);
    CHECK(worst < 1e-6);
  }
}

TEST_CASE("integer negation and abs wrap at the minimum", "[llvm]") {
  const Tensor in = Ints({INT64_MIN, -3}, DType::kInt64);
  for (const auto op : {kir::UnaryOp::kNeg, kir::UnaryOp::kAbs}) {
    const kir::Kernel k =
        MapKernel(ScalarType::kInt64, ScalarType::kInt64, 2, [&](kir::Expr x) { return kir::Unary(op, x); });
    const Tensor out = RunKernel(JitRunner(), k, {in}, ScalarType::kInt64);
    CHECK(out.data_as<int64_t>()[0] == INT64_MIN);
    CHECK(out.data_as<int64_t>()[1] == 3);
  }
}

TEST_CASE("not of a float tests for zero", "[llvm]") {
  const Tensor in = Tensor::FromDoubles({4}, std::vector<double>{0.0, -0.0, 2.0, kNaN});
  const kir::Kernel k = MapKernel(ScalarType::kFloat32, ScalarType::kBool, 4,
                                  [](kir::Expr x) { return kir::Unary(kir::UnaryOp::kNot, x); });
  CHECK(RunKernel(JitRunner(), k, {in}, ScalarType::kBool).ToDoubles() == std::vector<double>{1, 1, 0, 0});
}

TEST_CASE("integer division by zero gives 0 and MIN / -1 wraps", "[llvm]") {
  const auto divide = [](ScalarType type, kir::BinaryOp op, const std::vector<int64_t>& a,
                         const std::vector<int64_t>& b) {
    const kir::Kernel k = ZipKernel(type, type, static_cast<int64_t>(a.size()),
                                    [&](kir::Expr x, kir::Expr y) { return kir::Binary(op, x, y); });
    const DType dtype = ToDType(type);
    const Tensor out = RunKernel(JitRunner(), k, {Ints(a, dtype), Ints(b, dtype)}, type);
    std::vector<int64_t> values;
    for (const double v : out.ToDoubles()) values.push_back(static_cast<int64_t>(v));
    return values;
  };
  using kir::BinaryOp;
  CHECK(divide(ScalarType::kInt32, BinaryOp::kDiv, {7, -7, INT32_MIN, 5, INT32_MIN, -9}, {0, 0, -1, -1, 1, 2}) ==
        std::vector<int64_t>{0, 0, INT32_MIN, -5, INT32_MIN, -4});
  CHECK(divide(ScalarType::kInt32, BinaryOp::kMod, {7, -7, INT32_MIN, 5, -9}, {0, 0, -1, -1, 2}) ==
        std::vector<int64_t>{0, 0, 0, 0, -1});
  CHECK(divide(ScalarType::kInt8, BinaryOp::kDiv, {-128, 100}, {-1, 0}) == std::vector<int64_t>{-128, 0});
  CHECK(divide(ScalarType::kUInt8, BinaryOp::kDiv, {200, 200}, {0, 3}) == std::vector<int64_t>{0, 66});
  CHECK(divide(ScalarType::kUInt8, BinaryOp::kMod, {200, 200}, {0, 3}) == std::vector<int64_t>{0, 2});
  CHECK(divide(ScalarType::kBool, BinaryOp::kDiv, {1, 1}, {0, 1}) == std::vector<int64_t>{0, 1});
  const std::vector<int64_t> big = divide(ScalarType::kInt64, BinaryOp::kDiv, {INT64_MIN, 9}, {-1, 0});
  CHECK(big == std::vector<int64_t>{INT64_MIN, 0});
}

TEST_CASE("unsigned integers divide, order and convert as unsigned", "[llvm]") {
  using kir::BinaryOp;
  constexpr uint64_t kHigh = uint64_t{1} << 63;
  const std::vector<uint64_t> a = {kHigh + 5, UINT64_MAX, 10, kHigh, 7};
  const std::vector<uint64_t> b = {3, kHigh, 3, 1, 0};
  const auto bits = [](const std::vector<uint64_t>& v) { return std::vector<int64_t>(v.begin(), v.end()); };
  const auto run = [&](BinaryOp op, ScalarType out_type) {
    const kir::Kernel k =
        ZipKernel(ScalarType::kUInt64, out_type, 5, [&](kir::Expr x, kir::Expr y) { return kir::Binary(op, x, y); });
    const std::vector<Tensor> inputs = {Ints(bits(a), DType::kUInt64), Ints(bits(b), DType::kUInt64)};
    const Tensor jit = RunKernel(JitRunner(), k, inputs, out_type);
    CHECK(Bitwise(jit, RunKernel(InterpreterRunner(), k, inputs, out_type)));
    return jit;
  };
  const auto u64 = [](const Tensor& t) {
    return std::vector<uint64_t>(t.data_as<uint64_t>(), t.data_as<uint64_t>() + t.size());
  };
  CHECK(u64(run(BinaryOp::kDiv, ScalarType::kUInt64)) == std::vector<uint64_t>{(kHigh + 5) / 3, 1, 3, kHigh, 0});
  CHECK(u64(run(BinaryOp::kMod, ScalarType::kUInt64)) == std::vector<uint64_t>{(kHigh + 5) % 3, kHigh - 1, 1, 0, 0});
  CHECK(u64(run(BinaryOp::kMin, ScalarType::kUInt64)) == std::vector<uint64_t>{3, kHigh, 3, 1, 0});
  CHECK(u64(run(BinaryOp::kMax, ScalarType::kUInt64)) == std::vector<uint64_t>{kHigh + 5, UINT64_MAX, 10, kHigh, 7});
  CHECK(run(BinaryOp::kGT, ScalarType::kBool).ToDoubles() == std::vector<double>{1, 1, 1, 1, 1});
  CHECK(run(BinaryOp::kLE, ScalarType::kBool).ToDoubles() == std::vector<double>{0, 0, 0, 0, 0});

  const Tensor big = Ints({-1, INT64_MIN}, DType::kUInt64);
  const Tensor as_f64 = RunKernel(JitRunner(),
                                  MapKernel(ScalarType::kUInt64, ScalarType::kFloat64, 2,
                                            [](kir::Expr x) { return kir::Cast(ScalarType::kFloat64, x); }),
                                  {big}, ScalarType::kFloat64);
  CHECK(as_f64.ToDoubles() == std::vector<double>{0x1p64, 0x1p63});
  const Tensor u32 = Ints({UINT32_MAX, 3000000000}, DType::kUInt32);
  const Tensor as_f32 = RunKernel(JitRunner(),
                                  MapKernel(ScalarType::kUInt32, ScalarType::kFloat32, 2,
                                            [](kir::Expr x) { return kir::Cast(ScalarType::kFloat32, x); }),
                                  {u32}, ScalarType::kFloat32);
  CHECK(as_f32.ToDoubles() == std::vector<double>{0x1p32, 3e9});
  // Float to uint64: [2^63, 2^64) exactly, saturating above; negative values wrap as for
  // the narrower unsigned types (through int64); NaN is 0.
  const Tensor f = Tensor::FromDoubles({6}, std::vector<double>{1e19, -1.0, 2e19, kNaN, 0x1p63, 12.9}, DType::kFloat64);
  const kir::Kernel to_u64 = MapKernel(ScalarType::kFloat64, ScalarType::kUInt64, 6,
                                       [](kir::Expr x) { return kir::Cast(ScalarType::kUInt64, x); });
  const Tensor converted = RunKernel(JitRunner(), to_u64, {f}, ScalarType::kUInt64);
  CHECK(u64(converted) == std::vector<uint64_t>{10000000000000000000u, UINT64_MAX, UINT64_MAX, 0, kHigh, 12});
  CHECK(Bitwise(converted, RunKernel(InterpreterRunner(), to_u64, {f}, ScalarType::kUInt64)));
}

TEST_CASE("operators on uint64 beyond 2^63: reference, interpreter and JIT agree", "[llvm]") {
  constexpr int64_t kHigh = INT64_MIN;  // the bits of 2^63
  const Tensor a = Ints({kHigh + 5, 3, -1, kHigh, 7, 1}, DType::kUInt64).Reshaped({2, 3});
  const Tensor b = Ints({3, kHigh + 1, 2, 1, 7, -1}, DType::kUInt64).Reshaped({2, 3});
  const std::vector<std::tuple<std::string, std::vector<Tensor>, AttrMap>> cases = {
      {"broadcast_maximum", {a, b}, {}},
      {"broadcast_minimum", {a, b}, {}},
      {"broadcast_greater", {a, b}, {}},
      {"broadcast_lesser_equal", {a, b}, {}},
      {"broadcast_div", {a, b}, {}},
      {"broadcast_mod", {a, b}, {}},
      {"_maximum_scalar", {a}, {{"scalar", 4.0}}},
      {"_mod_scalar", {a}, {{"scalar", 10.0}}},
      {"max", {a}, {{"axis", std::vector<int64_t>{1}}}},
      {"min", {a}, {{"axis", std::vector<int64_t>{0}}}},
      {"argmax", {a}, {{"axis", int64_t{1}}}},
      {"argmin", {a}, {{"axis", int64_t{1}}}},
      {"topk", {a}, {{"k", int64_t{2}}, {"ret_typ", "both"}, {"dtype", "int64"}}},
      {"Cast", {a}, {{"dtype", "float64"}}},
      {"Cast", {a}, {{"dtype", "bfloat16"}}},
  };
  for (const auto& [op, inputs, attrs] : cases) {
    INFO(op);
    const std::vector<Tensor> expected = RunOp(op, inputs, attrs);
    const std::vector<Tensor> interpreted = RunLowered(op, inputs, attrs);
    const std::vector<Tensor> jit = RunLowered(op, inputs, attrs, JitRunner());
    REQUIRE(interpreted.size() == expected.size());
    REQUIRE(jit.size() == expected.size());
    for (size_t i = 0; i < expected.size(); ++i) {
      INFO("output " << i << "\nexpected " << Show(expected[i]) << "\njit      " << Show(jit[i]));
      CHECK(Bitwise(interpreted[i], expected[i]));
      CHECK(Bitwise(jit[i], expected[i]));
    }
  }
  // Spot checks of the reference itself.
  const auto u64 = [](const Tensor& t) {
    return std::vector<uint64_t>(t.data_as<uint64_t>(), t.data_as<uint64_t>() + t.size());
  };
  const uint64_t high = uint64_t{1} << 63;
  CHECK(u64(RunOp("broadcast_maximum", {a, b})[0]) ==
        std::vector<uint64_t>{high + 5, high + 1, UINT64_MAX, high, 7, UINT64_MAX});
  CHECK(u64(RunOp("max", {a}, {{"axis", std::vector<int64_t>{1}}})[0]) == std::vector<uint64_t>{UINT64_MAX, high});
  CHECK(u64(RunOp("broadcast_div", {a, b})[0]) == std::vector<uint64_t>{(high + 5) / 3, 0, UINT64_MAX / 2, high, 1, 0});
}

TEST_CASE("bfloat16 rounds to nearest even and keeps NaNs quiet, as kiln::FloatToBFloat16", "[llvm]") {
  // Float bit patterns: ties both ways, the largest finite values, NaNs with payloads only
  // in the dropped half, then random ones.
  std::vector<uint32_t> patterns = {0x3f808000, 0x3f818000, 0x3f808001, 0x7f7fffff, 0xff7f8000, 0x7f7f7fff,
                                    0x7f800001, 0xff800001, 0x7fc00000, 0x00000001, 0x80008000, 0x00018000};
  std::mt19937 rng(7);
  for (int i = 0; i < 4096; ++i) patterns.push_back(static_cast<uint32_t>(rng()));
  const auto n = static_cast<int64_t>(patterns.size());
  Tensor in({n}, DType::kFloat32);
  std::memcpy(in.data(), patterns.data(), patterns.size() * 4);
  const kir::Kernel k = MapKernel(ScalarType::kFloat32, ScalarType::kBFloat16, n,
                                  [](kir::Expr x) { return kir::Cast(ScalarType::kBFloat16, x); });
  for (const auto& runner : {JitRunner(), AotRunner(Cpu("x86-64")), InterpreterRunner()}) {
    const Tensor out = RunKernel(runner, k, {in}, ScalarType::kBFloat16);
    int wrong = 0;
    for (int64_t i = 0; i < n; ++i) {
      float value;
      std::memcpy(&value, &patterns[i], 4);
      wrong += out.data_as<uint16_t>()[i] != FloatToBFloat16(value);
    }
    CHECK(wrong == 0);
  }
  CHECK(FloatToBFloat16(1.00390625f) == 0x3f80);  // tie, even below
  CHECK(FloatToBFloat16(1.01171875f) == 0x3f82);  // tie, even above
  CHECK(FloatToBFloat16(3.397e38f) == 0x7f80);    // past the largest finite: infinity
  CHECK(FloatToBFloat16(-3.3895e38f) == 0xff7f);  // the lowest finite
  float signaling;
  const uint32_t signaling_bits = 0x7f800001;
  std::memcpy(&signaling, &signaling_bits, 4);
  CHECK(FloatToBFloat16(signaling) == 0x7fc0);  // quiet, not infinity
  CHECK(BFloat16ToFloat(0x3f82) == 1.015625f);
}

TEST_CASE("immediates outside their type compute like the interpreter", "[llvm]") {
  // kir::Const does not wrap: bool 3, i8 300. The interpreter computes with the value.
  const Tensor bools = Ints({0, 1, 1, 0}, DType::kBool);
  const Tensor bytes = Ints({-5, 10, 100, -128}, DType::kInt8);
  const std::vector<std::pair<ScalarType, std::function<kir::Expr(kir::Expr)>>> cases = {
      {ScalarType::kBool, [](kir::Expr x) { return x - kir::IntImm(3, ScalarType::kBool); }},
      {ScalarType::kBool, [](kir::Expr x) { return kir::Min(x, kir::IntImm(3, ScalarType::kBool)); }},
      {ScalarType::kBool,
       [](kir::Expr x) {
         return kir::Select(kir::Lt(x, kir::IntImm(3, ScalarType::kBool)), x, kir::IntImm(0, ScalarType::kBool));
       }},
      {ScalarType::kInt8, [](kir::Expr x) { return x / kir::IntImm(300, ScalarType::kInt8); }},
      {ScalarType::kInt8, [](kir::Expr x) { return x + kir::IntImm(300, ScalarType::kInt8); }},
      {ScalarType::kInt8,
       [](kir::Expr x) { return kir::Select(kir::Lt(x, kir::IntImm(200, ScalarType::kInt8)), x, -x); }},
  };
  for (size_t c = 0; c < cases.size(); ++c) {
    INFO("case " << c);
    const auto& [type, fn] = cases[c];
    const Tensor& in = type == ScalarType::kBool ? bools : bytes;
    const kir::Kernel k = MapKernel(type, type, in.size(), fn);
    const Tensor expected = RunKernel(InterpreterRunner(), k, {in}, type);
    const Tensor actual = RunKernel(JitRunner(), k, {in}, type);
    INFO("expected " << Show(expected) << "\nactual   " << Show(actual));
    CHECK(Bitwise(actual, expected));
  }
  const kir::Kernel widen = MapKernel(ScalarType::kBool, ScalarType::kInt32, 4, [](kir::Expr x) {
    return kir::Cast(ScalarType::kInt32, kir::IntImm(3, ScalarType::kBool)) + kir::Cast(ScalarType::kInt32, x);
  });
  CHECK(RunKernel(JitRunner(), widen, {bools}, ScalarType::kInt32).ToDoubles() == std::vector<double>{3, 4, 4, 3});
}

TEST_CASE("a select evaluates only the arm it picks", "[llvm]") {
  // A padding-style guard: the index is wildly out of range except where the guard holds.
  kir::KernelBuilder b("pad");
  const auto in = b.AddArg("in", ScalarType::kFloat32, 8);
  const auto out = b.AddArg("out", ScalarType::kFloat32, 40);
  const kir::Expr i = kir::Var("i");
  const kir::Expr j = (i - kir::Expr(5)) * kir::Expr(int64_t{1} << 36);
  const kir::Expr inside = kir::And(kir::Ge(j, kir::Expr(0)), kir::Lt(j, kir::Expr(8)));
  const kir::Kernel k =
      b.Finish(kir::For(i, 0, 40, kir::Store(out, i, kir::Select(inside, kir::Load(in, j), kir::FloatImm(-1.0))),
                        kir::LoopKind::kVectorize));
  const Tensor x = RandomTensor({8}, 4);
  for (const auto& runner : {JitRunner(), AotRunner()}) {
    const Tensor y = RunKernel(runner, k, {x}, ScalarType::kFloat32);
    for (int64_t v = 0; v < 40; ++v) {
      CHECK(y.GetDouble(v) == (v == 5 ? x.GetDouble(0) : -1.0));
    }
  }
}

TEST_CASE("a kernel without a parallel loop runs once when begin < end", "[llvm]") {
  kir::KernelBuilder b("count");
  const auto counter = b.AddArg("counter", ScalarType::kInt64, 1);
  const kir::Kernel k = b.Finish(kir::Store(counter, 0, kir::Load(counter, 0) + kir::Expr(1)));
  CHECK(k.parallel_extent == 1);
  for (const bool aot : {false, true}) {
    const auto code = aot ? LoadSharedObject(CompileSharedObject({k}, {})) : JitCompile({k}, {});
    const KilnKernelFn fn = code->Find("count");
    REQUIRE(fn != nullptr);
    int64_t value = 0;
    void* buffers[] = {&value};
    fn(buffers, 0, 0, TestRuntimeApi());
    fn(buffers, 3, 2, TestRuntimeApi());
    CHECK(value == 0);
    fn(buffers, 0, 1, TestRuntimeApi());
    CHECK(value == 1);
    fn(buffers, 5, 9, TestRuntimeApi());
    CHECK(value == 2);
    CHECK(code->Find("absent") == nullptr);
  }
}

namespace {

// rows x 3 -> rows x 3: out = 2 * in + row, with a local accumulator per row (zero on
// entry, read before written) and an unrolled inner loop.
kir::Kernel RowKernel(int64_t rows) {
  kir::KernelBuilder b("rows");
  const auto in = b.AddArg("in", ScalarType::kFloat32, rows * 3);
  const auto out = b.AddArg("out", ScalarType::kFloat32, rows * 4);
  const auto acc = b.AddLocal("acc", ScalarType::kFloat32, 2);
  const kir::Expr r = kir::Var("r");
  const kir::Expr c = kir::Var("c");
  const kir::Expr x = kir::Load(in, r * kir::Expr(3) + c);
  const kir::Expr rf = kir::Cast(ScalarType::kFloat32, r);
  return b.Finish(kir::For(
      r, 0, rows,
      kir::Allocate(
          acc, kir::Block({kir::For(c, 0, 3,
                                    kir::Block({kir::Store(out, r * kir::Expr(4) + c, x * kir::FloatImm(2.0) + rf),
                                                kir::Store(acc, 1, kir::Load(acc, 1) + x)}),
                                    kir::LoopKind::kUnroll),
                           kir::Store(out, r * kir::Expr(4) + kir::Expr(3), kir::Load(acc, 1) + kir::Load(acc, 0))})),
      kir::LoopKind::kParallel));
}

}  // namespace

TEST_CASE("locals, unrolled loops and parallel shares match the interpreter", "[llvm]") {
  const int64_t rows = 1001;
  const kir::Kernel k = RowKernel(rows);
  CHECK(k.parallel_extent == rows);
  const Tensor x = RandomTensor({rows * 3}, 5);
  const Tensor expected = RunKernel(InterpreterRunner(), k, {x}, ScalarType::kFloat32);
  CHECK(Bitwise(RunKernel(JitRunner(), k, {x}, ScalarType::kFloat32), expected));
  CHECK(Bitwise(RunKernel(AotRunner(), k, {x}, ScalarType::kFloat32), expected));
  for (int level = 0; level <= 3; ++level) {
    INFO("O" << level);
    CHECK(Bitwise(RunKernel(JitRunner(Cpu("host", "", level)), k, {x}, ScalarType::kFloat32), expected));
  }
}

TEST_CASE("compiled modules run from many threads at once, in random shares", "[llvm]") {
  const int64_t rows = 997;
  const kir::Kernel k = RowKernel(rows);
  const Tensor x = RandomTensor({rows * 3}, 6);
  const Tensor expected = RunKernel(InterpreterRunner(), k, {x}, ScalarType::kFloat32);
  const std::shared_ptr<const CodeModule> jit = JitCompile({k}, {});
  const std::shared_ptr<const CodeModule> aot = LoadSharedObject(CompileSharedObject({k}, {}));
  constexpr int kThreads = 8;
  std::vector<Tensor> outs;
  for (int t = 0; t < kThreads; ++t) outs.emplace_back(Shape{rows * 4}, DType::kFloat32);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      const KilnKernelFn fn = (t % 2 ? aot : jit)->Find("rows");
      std::mt19937 rng(static_cast<unsigned>(t));
      std::vector<std::pair<int64_t, int64_t>> shares;
      for (int64_t begin = 0; begin < rows;) {
        const int64_t end = std::min<int64_t>(rows, begin + 1 + static_cast<int64_t>(rng() % 97));
        shares.emplace_back(begin, end);
        begin = end;
      }
      std::shuffle(shares.begin(), shares.end(), rng);
      void* buffers[] = {const_cast<void*>(x.data()), outs[static_cast<size_t>(t)].data()};
      for (const auto& [begin, end] : shares) fn(buffers, begin, end, TestRuntimeApi());
    });
  }
  for (auto& thread : threads) thread.join();
  for (int t = 0; t < kThreads; ++t) CHECK(Bitwise(outs[static_cast<size_t>(t)], expected));

  // Compiling on several threads at once.
  std::atomic<int> good{0};
  std::vector<std::thread> compilers;
  for (int t = 0; t < 4; ++t) {
    compilers.emplace_back([&, t] {
      const kir::Kernel mine = RowKernel(50 + t);
      const Tensor in = RandomTensor({(50 + t) * 3}, static_cast<uint64_t>(t));
      Tensor a({(50 + t) * 4}, DType::kFloat32);
      Tensor b({(50 + t) * 4}, DType::kFloat32);
      InterpretKernel(mine, {const_cast<void*>(in.data()), a.data()}, 0, 50 + t, TestRuntimeApi());
      const auto code = JitCompile({mine}, {});
      void* buffers[] = {const_cast<void*>(in.data()), b.data()};
      code->Find("rows")(buffers, 0, 50 + t, TestRuntimeApi());
      if (a.BitwiseEquals(b)) ++good;
    });
  }
  for (auto& thread : compilers) thread.join();
  CHECK(good == 4);
}

namespace {

struct SgemmCall {
  int64_t m, n, k, lda, ldb, ldc;
  float alpha, beta;
  int32_t transpose_a, transpose_b;
  const float* a;
  const float* b;
  float* c;
};
std::vector<SgemmCall> recorded;

void RecordingSgemm(int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda, int32_t transpose_a,
                    const float* b, int64_t ldb, int32_t transpose_b, float beta, float* c, int64_t ldc) {
  recorded.push_back({m, n, k, lda, ldb, ldc, alpha, beta, transpose_a, transpose_b, a, b, c});
  TestRuntimeApi()->sgemm(m, n, k, alpha, a, lda, transpose_a, b, ldb, transpose_b, beta, c, ldc);
}

}  // namespace

TEST_CASE("sgemm is called through the routine table with the interpreter's arguments", "[llvm]") {
  // Per row block: C[r] = 1.5 * A[r] . B^T + 0.5 * C[r], with A 6x5 (2 rows a block), B 4x5.
  const int64_t m = 6, n = 4, kk = 5, block = 2;
  kir::KernelBuilder b("gemm");
  const auto a = b.AddArg("a", ScalarType::kFloat32, m * kk);
  const auto w = b.AddArg("w", ScalarType::kFloat32, n * kk);
  const auto c = b.AddArg("c", ScalarType::kFloat32, m * n);
  const kir::Expr r = kir::Var("r");
  const kir::Kernel k = b.Finish(kir::For(
      r, 0, m / block,
      kir::Call("sgemm",
                {kir::ScalarArg(kir::IntImm(block, ScalarType::kInt32)), kir::ScalarArg(kir::Expr(n)),
                 kir::ScalarArg(kir::Expr(kk)), kir::ScalarArg(kir::FloatImm(1.5, ScalarType::kFloat64)),
                 kir::PointerArg(a, r * kir::Expr(block * kk)), kir::ScalarArg(kir::Expr(kk)),
                 kir::ScalarArg(kir::IntImm(0, ScalarType::kInt32)), kir::PointerArg(w), kir::ScalarArg(kir::Expr(kk)),
                 kir::ScalarArg(kir::IntImm(1, ScalarType::kInt32)), kir::ScalarArg(kir::FloatImm(0.5)),
                 kir::PointerArg(c, r * kir::Expr(block * n)), kir::ScalarArg(kir::Expr(n))}),
      kir::LoopKind::kParallel));
  const Tensor x = RandomTensor({m * kk}, 7);
  const Tensor y = RandomTensor({n * kk}, 8);
  const Tensor c0 = RandomTensor({m * n}, 9);
  Tensor expected = c0.Clone();
  InterpretKernel(k, {const_cast<void*>(x.data()), const_cast<void*>(y.data()), expected.data()}, 0, m / block,
                  TestRuntimeApi());
  const KilnRuntimeApi api = {kKernelAbiVersion, RecordingSgemm, nullptr, nullptr};
  for (const bool aot : {false, true}) {
    INFO((aot ? "aot" : "jit"));
    const auto code = aot ? LoadSharedObject(CompileSharedObject({k}, {})) : JitCompile({k}, {});
    Tensor out = c0.Clone();
    void* buffers[] = {const_cast<void*>(x.data()), const_cast<void*>(y.data()), out.data()};
    recorded.clear();
    code->Find("gemm")(buffers, 0, m / block, &api);
    CHECK(Bitwise(out, expected));
    REQUIRE(recorded.size() == 3);
    const SgemmCall& call = recorded[2];
    CHECK((call.m == block && call.n == n && call.k == kk && call.lda == kk && call.ldb == kk && call.ldc == n));
    CHECK((call.alpha == 1.5f && call.beta == 0.5f && call.transpose_a == 0 && call.transpose_b == 1));
    CHECK(call.a == x.data_as<float>() + 2 * block * kk);
    CHECK(call.b == y.data_as<float>());
    CHECK(call.c == out.data_as<float>() + 2 * block * n);
  }
  kir::KernelBuilder bad("bad");
  const auto o = bad.AddArg("o", ScalarType::kFloat32, 1);
  CHECK_THROWS_WITH(JitCompile({bad.Finish(kir::Call("dgemm", {kir::PointerArg(o)}))}, {}),
                    Catch::Contains("kernel 'bad': unknown routine 'dgemm'"));
  kir::KernelBuilder few("few");
  const auto p = few.AddArg("p", ScalarType::kFloat32, 1);
  CHECK_THROWS_WITH(EmitLLVMIR({few.Finish(kir::Call("sgemm", {kir::PointerArg(p)}))}, {}),
                    Catch::Contains("sgemm takes 13 arguments, given 1"));
  kir::KernelBuilder swapped("swapped");
  const auto q = swapped.AddArg("q", ScalarType::kFloat32, 1);
  std::vector<kir::CallArg> args(13, kir::ScalarArg(kir::Expr(int64_t{1})));
  args[0] = kir::PointerArg(q);
  CHECK_THROWS_WITH(EmitLLVMIR({swapped.Finish(kir::Call("sgemm", args))}, {}),
                    Catch::Contains("sgemm argument 0 must be a scalar"));
}

namespace {

// Inputs for operator `op` of `dtype`: divisors nonzero, powers small, integer values
// small enough that nothing overflows.
std::vector<Tensor> OperatorInputs(const std::string& op, DType dtype, const std::vector<Shape>& shapes,
                                   uint64_t seed) {
  const bool is_float = IsFloat(dtype);
  const bool power = op.find("power") != std::string::npos;
  std::vector<Tensor> inputs;
  for (size_t i = 0; i < shapes.size(); ++i) {
    const bool divisor = (op.find("div") != std::string::npos && (i == 1 || op == "_rdiv_scalar"));
    const bool exponent = power && (i == 1 || op == "_rpower_scalar");
    const uint64_t s = seed * 31 + i;
    if (is_float) {
      inputs.push_back(divisor || (power && !exponent) ? RandomTensor(shapes[i], s, 0.5, 2.0, dtype)
                                                       : RandomTensor(shapes[i], s, -2.0, 2.0, dtype));
      continue;
    }
    int64_t low = dtype == DType::kBool ? 0 : IsUnsigned(dtype) ? 0 : -10;
    int64_t high = dtype == DType::kBool ? 1 : IsUnsigned(dtype) ? 15 : 10;
    if (exponent) {
      low = 0;
      high = dtype == DType::kBool ? 1 : 4;
    } else if (power) {
      low = dtype == DType::kBool || IsUnsigned(dtype) ? 0 : -3;
      high = dtype == DType::kBool ? 1 : 3;
    }
    if (divisor) {
      low = 1;
      high = dtype == DType::kBool ? 1 : 7;
    }
    inputs.push_back(RandomInts(shapes[i], s, low, high, dtype));
  }
  return inputs;
}

// Whether the reference (double, saturating stores) agrees with wrapping integer code.
bool ReferenceComparable(const std::string& op, DType dtype) {
  if (dtype == DType::kBool) return op.find("div") == std::string::npos;  // 1 / 3 is true there
  if (IsUnsigned(dtype)) return op.find("minus") == std::string::npos && op.find("sub") == std::string::npos;
  return true;
}

struct OpCase {
  std::string op;
  std::vector<Shape> shapes;
  bool scalar = false;
};

std::vector<OpCase> ElementwiseCases() {
  std::vector<OpCase> cases;
  for (const char* op : {"elemwise_add", "elemwise_sub", "elemwise_mul", "elemwise_div"}) {
    for (const Shape& shape : {Shape{37}, Shape{3, 17}, Shape{1}}) cases.push_back({op, {shape, shape}});
  }
  cases.push_back({"elemwise_add", {{70001}, {70001}}});
  for (const char* op : {"_mod", "_greater_equal", "_lesser_equal", "_logical_and", "_logical_or", "_logical_xor"}) {
    cases.push_back({op, {{3, 17}, {3, 17}}});
  }
  for (const char* op : {"broadcast_add", "broadcast_sub", "broadcast_mul", "broadcast_div", "broadcast_maximum",
                         "broadcast_minimum", "broadcast_power", "broadcast_equal", "broadcast_not_equal",
                         "broadcast_greater", "broadcast_lesser", "broadcast_greater_equal", "broadcast_lesser_equal",
                         "broadcast_logical_and", "broadcast_logical_or", "broadcast_logical_xor", "broadcast_mod"}) {
    cases.push_back({op, {{3, 1, 5}, {4, 1}}});
    cases.push_back({op, {{2, 33}, {33}}});
    cases.push_back({op, {{17, 1}, {1, 19}}});
  }
  cases.push_back({"broadcast_mul", {{300, 1}, {1, 301}}});
  for (const char* op : {"_plus_scalar", "_minus_scalar", "_rminus_scalar", "_mul_scalar", "_div_scalar",
                         "_rdiv_scalar", "_maximum_scalar", "_minimum_scalar", "_power_scalar", "_rpower_scalar",
                         "_mod_scalar", "_rmod_scalar", "_greater_equal_scalar", "_lesser_equal_scalar",
                         "_logical_and_scalar", "_logical_or_scalar", "_logical_xor_scalar"}) {
    cases.push_back({op, {{5, 13}}, true});
  }
  cases.push_back({"_mul_scalar", {{40000}}, true});
  cases.push_back({"add_n", {{5, 7}, {5, 7}, {5, 7}}});
  return cases;
}

void CheckElementwise(const KernelRunner& runner, const std::vector<DType>& dtypes, bool with_reference) {
  uint64_t seed = 100;
  for (const DType dtype : dtypes) {
    for (const OpCase& c : ElementwiseCases()) {
      ++seed;
      INFO(c.op << " " << DTypeName(dtype) << " " << ShapeToString(c.shapes[0]));
      const std::vector<Tensor> inputs = OperatorInputs(c.op, dtype, c.shapes, seed);
      AttrMap attrs;
      if (c.scalar)
        attrs.push_back({"scalar", c.op.find("power") != std::string::npos ? 2.0 : IsFloat(dtype) ? 2.5 : 3.0});
      if (c.op == "add_n") attrs.push_back({"num_args", int64_t{3}});
      const Tensor actual = RunLowered(c.op, inputs, attrs, runner)[0];
      const Tensor interpreted = RunLowered(c.op, inputs, attrs)[0];
      const bool inexact = c.op.find("power") != std::string::npos;
      const double rtol = dtype == DType::kFloat16 ? 1e-3 : dtype == DType::kBFloat16 ? 8e-3 : 1e-6;
      if (inexact && IsFloat(dtype)) {
        KILN_CHECK_CLOSE(actual, interpreted, rtol, 0);
      } else {
        CHECK(Bitwise(actual, interpreted));
      }
      if (with_reference && ReferenceComparable(c.op, dtype)) {
        const Tensor expected = RunOp(c.op, inputs, attrs)[0];
        // Half types: one ulp of the type apart at most (float32 against double, rounded).
        const double tol = dtype == DType::kFloat16    ? 2e-3
                           : dtype == DType::kBFloat16 ? 8e-3
                           : dtype == DType::kFloat32  ? 1e-5
                           : IsFloat(dtype)            ? 1e-12
                                                       : 0;
        KILN_CHECK_CLOSE(actual, expected, tol, tol);
      }
    }
  }
}

}  // namespace

TEST_CASE("JIT-compiled elementwise operators match the interpreter and the reference for every dtype", "[llvm]") {
  CheckElementwise(
      JitRunner(),
      {DType::kFloat32, DType::kFloat64, DType::kFloat16, DType::kBFloat16, DType::kInt32, DType::kInt64, DType::kInt8,
       DType::kUInt8, DType::kInt16, DType::kUInt16, DType::kUInt32, DType::kUInt64, DType::kBool},
      true);
}

// Special values of every type (zeros of both signs, halves, NaN, infinities, the integer
// extremes; zero divisors and MIN mod -1 for mod) through the rounding operators and mod:
// compiled, interpreted and reference agree bit for bit.
TEST_CASE("rounding operators and mod compile bit for bit on special values", "[llvm]") {
  for (const ScalarType type : kAllTypes) {
    const Tensor a = SpecialValues(type);
    Tensor b = a.Clone();  // the values rotated, zeros kept
    for (int64_t i = 0; i < b.size(); ++i) b.CopyElement(i, a, (i + 3) % a.size());
    if (type == ScalarType::kInt64) b.data_as<int64_t>()[0] = -1;  // INT64_MIN mod -1
    std::vector<std::pair<std::string, std::vector<Tensor>>> cases = {{"broadcast_mod", {a, b}}, {"_mod", {b, a}}};
    for (const char* op : {"floor", "ceil", "round", "rint", "fix", "trunc", "sign", "logical_not"}) {
      cases.push_back({op, {a}});
    }
    for (const auto& [op, inputs] : cases) {
      INFO(op << " " << kir::ScalarTypeName(type));
      const Tensor expected = RunOp(op, inputs)[0];
      const Tensor interpreted = RunLowered(op, inputs)[0];
      const Tensor jit = RunLowered(op, inputs, {}, JitRunner())[0];
      INFO("expected " << Show(expected) << "\njit      " << Show(jit));
      CHECK(Bitwise(interpreted, expected));
      CHECK(Bitwise(jit, expected));
      if (kir::IsFloatType(type)) CHECK(Bitwise(RunLowered(op, inputs, {}, AotRunner(Cpu("x86-64")))[0], expected));
    }
  }
}

TEST_CASE("shared-object elementwise operators match, also for a baseline x86-64 CPU", "[llvm]") {
  CheckElementwise(AotRunner(), {DType::kFloat32, DType::kUInt8}, true);
  // Without F16C, half conversions are library calls (libgcc) that must resolve in both.
  CheckElementwise(AotRunner(Cpu("x86-64")), {DType::kFloat16}, false);
  CheckElementwise(JitRunner(Cpu("x86-64")), {DType::kFloat16}, false);
  // bfloat16 converts by integer arithmetic: no library calls, whatever the CPU.
  CheckElementwise(AotRunner(Cpu("x86-64")), {DType::kBFloat16}, false);
}

TEST_CASE("kernels named like libm functions do not replace them", "[llvm]") {
  const Tensor x = RandomTensor({33}, 11);
  kir::KernelBuilder b1("expf");
  const auto in1 = b1.AddArg("in", ScalarType::kFloat32, 33);
  const auto out1 = b1.AddArg("out", ScalarType::kFloat32, 33);
  const kir::Expr i = kir::Var("i");
  const kir::Kernel k1 =
      b1.Finish(kir::For(i, 0, 33, kir::Store(out1, i, kir::Exp(kir::Load(in1, i))), kir::LoopKind::kVectorize));
  kir::KernelBuilder b2("erff");
  const auto in2 = b2.AddArg("in", ScalarType::kFloat32, 33);
  const auto out2 = b2.AddArg("out", ScalarType::kFloat32, 33);
  const kir::Kernel k2 =
      b2.Finish(kir::For(i, 0, 33, kir::Store(out2, i, kir::Erf(kir::Load(in2, i))), kir::LoopKind::kVectorize));
  for (const bool aot : {false, true}) {
    const auto code = aot ? LoadSharedObject(CompileSharedObject({k1, k2}, {})) : JitCompile({k1, k2}, {});
    for (const auto* k : {&k1, &k2}) {
      Tensor actual({33}, DType::kFloat32);
      Tensor expected({33}, DType::kFloat32);
      InterpretKernel(*k, {const_cast<void*>(x.data()), expected.data()}, 0, 1, TestRuntimeApi());
      void* buffers[] = {const_cast<void*>(x.data()), actual.data()};
      code->Find(k->name)(buffers, 0, 1, TestRuntimeApi());
      KILN_CHECK_CLOSE(actual, expected, 3e-7, 0);
    }
  }
  CHECK_THROWS_WITH(JitCompile({k1, k1}, {}), Catch::Contains("two kernels are named 'expf'"));
}

TEST_CASE("a large f32 add vectorizes for x86-64-v3", "[llvm]") {
  const Tensor big = RandomTensor({100000}, 12);
  const kir::Kernel k = LowerOpForInputs("elemwise_add", {big, big});
  const std::string ir = EmitLLVMIR({k}, Cpu("x86-64-v3"));
  CHECK(ir.find("fadd <8 x float>") != std::string::npos);
  const std::string assembly = EmitAssembly({k}, Cpu("x86-64-v3"));
  CHECK(assembly.find("vaddps") != std::string::npos);
  CHECK(assembly.find("%ymm") != std::string::npos);
  const std::string baseline = EmitAssembly({k}, Cpu("x86-64"));
  CHECK(baseline.find("addps") != std::string::npos);
  CHECK(baseline.find("%ymm") == std::string::npos);
  CHECK(EmitLLVMIR({k}, Cpu("x86-64-v3", "", 0)).find("<8 x float>") == std::string::npos);
}

TEST_CASE("float erf is inline arithmetic that vectorizes and stays within a few ulps", "[llvm]") {
  const int64_t n = 10007;
  Tensor x = RandomTensor({n}, 16, -5.0, 5.0);
  // Zeros, tiny values, the saturation threshold, infinities and NaN.
  const std::vector<float> special = {0.0f,    -0.0f,  1e-30f, -1e-20f,  1e-5f,     3.9199f,
                                      3.9201f, -3.92f, 10.0f,  INFINITY, -INFINITY, NAN};
  for (size_t i = 0; i < special.size(); ++i) x.data_as<float>()[i] = special[i];
  const kir::Kernel k =
      MapKernel(ScalarType::kFloat32, ScalarType::kFloat32, n, [](kir::Expr v) { return kir::Erf(v); });
  const std::string ir = EmitLLVMIR({k}, Cpu("x86-64-v3"));
  CHECK(ir.find("erf") == std::string::npos);  // no libm call
  CHECK(ir.find("<8 x float>") != std::string::npos);
  const Tensor expected = RunKernel(InterpreterRunner(), k, {x}, ScalarType::kFloat32);
  for (const auto& runner : {JitRunner(), AotRunner()}) {
    const Tensor actual = RunKernel(runner, k, {x}, ScalarType::kFloat32);
    // About 5 ulps of float (6e-7 relative) at worst, checked on every element.
    KILN_CHECK_CLOSE(actual, expected, 6e-7, 1e-37);
    CHECK(std::isnan(actual.data_as<float>()[11]));
    CHECK(actual.data_as<float>()[9] == 1.0f);
    CHECK(actual.data_as<float>()[10] == -1.0f);
    CHECK(std::signbit(actual.data_as<float>()[1]));
  }
}

TEST_CASE("exp vectorizes as plain arithmetic, log and pow with glibc's libmvec; all stay accurate", "[llvm]") {
  const int64_t n = 10007;
  const Tensor x = RandomTensor({n}, 13, -80.0, 80.0);
  const Tensor y = RandomTensor({n}, 14, 1e-30, 1e30);
  const Tensor z = RandomTensor({n}, 15, -4.0, 4.0);
  const std::vector<std::pair<Tensor, std::function<kir::Expr(kir::Expr)>>> cases = {
      {x, [](kir::Expr v) { return kir::Exp(v); }},
      {y, [](kir::Expr v) { return kir::Log(v); }},
      {z, [](kir::Expr v) { return kir::Pow(kir::Abs(v), v); }},
  };
  for (const auto& [in, fn] : cases) {
    const kir::Kernel k = MapKernel(ScalarType::kFloat32, ScalarType::kFloat32, n, fn);
    // exp is kiln's own (the same bits in vector lanes and in scalar code), the others
    // glibc's vector functions.
    const bool own = &in == &cases[0].first;
    const std::string ir = EmitLLVMIR({k}, Cpu("x86-64-v3"));
    CHECK(ir.find("<8 x float>") != std::string::npos);
#if defined(__x86_64__) && defined(__GLIBC__)
    CHECK((ir.find("@_ZGVdN8v") != std::string::npos) == !own);
#endif
    const Tensor expected = RunKernel(InterpreterRunner(), k, {in}, ScalarType::kFloat32);
    KILN_CHECK_CLOSE(RunKernel(JitRunner(), k, {in}, ScalarType::kFloat32), expected, 2.5e-7, 1e-37);
    KILN_CHECK_CLOSE(RunKernel(AotRunner(), k, {in}, ScalarType::kFloat32), expected, 2.5e-7, 1e-37);
  }
}

TEST_CASE("independent loops vectorize with strided stores and per-iteration locals", "[llvm]") {
  // out[2i] = x[2i] + x[2i+1], out[2i+1] = x[2i] - x[2i+1], through a local: no form the
  // emitter could prove independent itself.
  const int64_t n = 1000;
  kir::KernelBuilder b("butterfly");
  const auto x = b.AddArg("x", ScalarType::kFloat32, 2 * n);
  const auto out = b.AddArg("out", ScalarType::kFloat32, 2 * n);
  const auto stage = b.AddLocal("stage", ScalarType::kFloat32, 2);
  const kir::Expr i = kir::Var("i");
  const kir::Kernel k = b.Finish(
      kir::For(i, 0, n,
               kir::Allocate(stage, kir::Block({kir::Store(stage, 0, kir::Load(x, i * 2) + kir::Load(x, i * 2 + 1)),
                                                kir::Store(stage, 1, kir::Load(x, i * 2) - kir::Load(x, i * 2 + 1)),
                                                kir::Store(out, i * 2, kir::Load(stage, 0)),
                                                kir::Store(out, i * 2 + 1, kir::Load(stage, 1))})),
               kir::LoopKind::kIndependent));
  const std::string ir = EmitLLVMIR({k}, Cpu("x86-64-v3"));
  CHECK(ir.find("llvm.loop.parallel_accesses") != std::string::npos);
  CHECK(ir.find("<8 x float>") != std::string::npos);
  const Tensor input = RandomTensor({2 * n}, 19);
  Tensor interpreted({2 * n}, DType::kFloat32);
  Tensor in = input.Clone();
  InterpretKernel(k, {in.data(), interpreted.data()}, 0, 1, TestRuntimeApi());
  for (const bool aot : {false, true}) {
    INFO((aot ? "aot" : "jit"));
    const auto code = aot ? LoadSharedObject(CompileSharedObject({k}, {})) : JitCompile({k}, {});
    Tensor compiled({2 * n}, DType::kFloat32);
    void* buffers[] = {in.data(), compiled.data()};
    code->Find("butterfly")(buffers, 0, 1, TestRuntimeApi());
    CHECK(Bitwise(compiled, interpreted));
  }
}

TEST_CASE("in-place elementwise loops vectorize; overlapping buffers still run in order", "[llvm]") {
  const Tensor x = RandomTensor({5000}, 16);
  const Tensor y = RandomTensor({5000}, 17);
  const kir::Kernel add = LowerOpForInputs("elemwise_add", {x, y});
  const std::string ir = EmitLLVMIR({add}, Cpu("x86-64-v3"));
  CHECK(ir.find("llvm.loop.parallel_accesses") != std::string::npos);
  CHECK(ir.find("fadd <8 x float>") != std::string::npos);
  const Tensor expected = RunOp("elemwise_add", {x, y})[0];
  for (const bool aot : {false, true}) {
    INFO((aot ? "aot" : "jit"));
    const auto code = aot ? LoadSharedObject(CompileSharedObject({add}, {})) : JitCompile({add}, {});
    for (const int target : {0, 1}) {
      Tensor lhs = x.Clone();
      Tensor rhs = y.Clone();
      Tensor& out = target == 0 ? lhs : rhs;  // the output is an input's storage
      RunShares(code->Find(add.name), add.parallel_extent, {lhs.data(), rhs.data(), out.data()});
      CHECK(Bitwise(out, expected));
    }
  }
  // out[i] = 2 * in[i] with out one element past in: each result feeds the next, as in
  // the interpreter.
  const int64_t n = 1000;
  const kir::Kernel twice =
      MapKernel(ScalarType::kFloat32, ScalarType::kFloat32, n, [](kir::Expr v) { return v * kir::FloatImm(2.0); });
  const Tensor start = RandomTensor({n + 1}, 18);
  Tensor interpreted = start.Clone();
  InterpretKernel(twice, {interpreted.data_as<float>(), interpreted.data_as<float>() + 1}, 0, 1, TestRuntimeApi());
  for (const bool aot : {false, true}) {
    const auto code = aot ? LoadSharedObject(CompileSharedObject({twice}, {})) : JitCompile({twice}, {});
    Tensor compiled = start.Clone();
    void* buffers[] = {compiled.data_as<float>(), compiled.data_as<float>() + 1};
    code->Find("map")(buffers, 0, 1, TestRuntimeApi());
    CHECK(Bitwise(compiled, interpreted));
  }
}

TEST_CASE("bad kernels and bad code objects are clear errors", "[llvm]") {
  kir::KernelBuilder b("big_local");
  const auto out = b.AddArg("out", ScalarType::kFloat32, 1);
  const auto local = b.AddLocal("tile", ScalarType::kFloat32, 1 << 20);
  const kir::Kernel k = b.Finish(kir::Allocate(local, kir::Store(out, 0, kir::Load(local, 0))));
  CHECK_THROWS_WITH(JitCompile({k}, {}),
                    Catch::Contains("local buffer 'tile' of 4194304 bytes does not fit the stack"));

  kir::Kernel foreign = MapKernel(ScalarType::kFloat32, ScalarType::kFloat32, 4, [](kir::Expr x) { return x; });
  foreign.args.pop_back();
  CHECK_THROWS_WITH(JitCompile({foreign}, {}), Catch::Contains("kernel 'map' is not valid kernel IR"));

  CHECK_THROWS_WITH(LoadSharedObject("garbage bytes, not a library"), Catch::Contains("is not an ELF shared object"));
  CHECK_THROWS_WITH(LoadSharedObject(""), Catch::Contains("(0 bytes) is not an ELF shared object"));
  const std::string library = CompileSharedObject({RowKernel(4)}, {});
  CHECK(library.compare(0, 4,
                        "\x7f"
                        "ELF") == 0);
  CHECK_THROWS_WITH(LoadSharedObject(library.substr(0, 300)),
                    Catch::Contains("cannot load the code object (300 bytes)"));
  std::string relocatable = library;
  relocatable[16] = 1;  // e_type = ET_REL
  CHECK_THROWS_WITH(LoadSharedObject(relocatable), Catch::Contains("not a shared object"));
  std::string foreign_machine = library;
  foreign_machine[18] = 40;  // EM_ARM
  CHECK_THROWS_WITH(LoadSharedObject(foreign_machine), Catch::Contains("is for ELF machine 40"));
  // The same bytes load twice as two independent modules.
  const auto one = LoadSharedObject(library);
  const auto two = LoadSharedObject(library);
  CHECK(one->Find("rows") != nullptr);
  CHECK(one->Find("rows") != two->Find("rows"));
}

TEST_CASE("a chain of 60 operators that each read their operand twice emits in linear time", "[llvm][fusion]") {
  // relu(x) = select(x > 0, x, 0) reads x twice: without shared emission the tree behind
  // 60 of them has 2^60 paths.
  const int64_t n = 37;
  const auto relu_chain = [](kir::Expr x) {
    for (int step = 0; step < 60; ++step) {
      const kir::Expr shifted = x - kir::FloatImm(0.25);
      x = kir::Select(kir::Gt(shifted, kir::FloatImm(0.0)), shifted, shifted * kir::FloatImm(0.5));
    }
    return x;
  };
  const kir::Kernel kernel = MapKernel(ScalarType::kFloat32, ScalarType::kFloat32, n, relu_chain);
  CHECK(kir::Print(kernel).find("let t") != std::string::npos);
  CHECK(kir::Print(kernel).size() < 20000);
  Tensor in({n}, DType::kFloat32);
  for (int64_t i = 0; i < n; ++i) in.data_as<float>()[i] = static_cast<float>(i) - 10.0f;
  const Tensor expected = RunKernel(InterpreterRunner(), kernel, {in}, ScalarType::kFloat32);
  for (const auto& runner : {JitRunner(), AotRunner()}) {
    const Tensor got = RunKernel(runner, kernel, {in}, ScalarType::kFloat32);
    for (int64_t i = 0; i < n; ++i) CHECK(got.data_as<float>()[i] == expected.data_as<float>()[i]);
  }
  // Plain float math for the first elements, as a check of the interpreter itself.
  for (int64_t i = 0; i < n; ++i) {
    float x = static_cast<float>(i) - 10.0f;
    for (int step = 0; step < 60; ++step) {
      const float shifted = x - 0.25f;
      x = shifted > 0 ? shifted : shifted * 0.5f;
    }
    CHECK(expected.data_as<float>()[i] == x);
  }
}

TEST_CASE("kernels built alike are equal whatever was built before them", "[kir]") {
  const auto build = [] {
    return MapKernel(ScalarType::kFloat32, ScalarType::kFloat32, 16, [](kir::Expr x) { return kir::Exp(x) + x; });
  };
  const kir::Kernel first = build();
  kir::Var("unrelated");  // advances the variable counter
  const kir::Kernel second = build();
  CHECK(kir::Fingerprint(first) == kir::Fingerprint(second));
  CHECK(first.body->loop_var->var_id == 1);
  const kir::Kernel other =
      MapKernel(ScalarType::kFloat32, ScalarType::kFloat32, 16, [](kir::Expr x) { return kir::Exp(x) - x; });
  CHECK(kir::Fingerprint(first) != kir::Fingerprint(other));
  const kir::Kernel longer =
      MapKernel(ScalarType::kFloat32, ScalarType::kFloat32, 17, [](kir::Expr x) { return kir::Exp(x) + x; });
  CHECK(kir::Fingerprint(first) != kir::Fingerprint(longer));
}
