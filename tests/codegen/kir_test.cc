// The kernel IR: construction checks, printing, verification, and the kir interpreter
// on elementwise lowerings.
#include "codegen/kir/kir.h"

#include <catch2/catch.hpp>
#include <cmath>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "codegen/kir_interpreter.h"
#include "tests/lower_test_util.h"
#include "tests/op_test_util.h"

using namespace kiln;
using namespace kiln::testing;

TEST_CASE("kir builds, prints and verifies a kernel", "[kir]") {
  kir::KernelBuilder b("add");
  const auto x = b.AddArg("x", kir::ScalarType::kFloat32, 8);
  const auto y = b.AddArg("y", kir::ScalarType::kFloat32, 8);
  const kir::Expr i = kir::Var("i");
  const kir::Kernel k =
      b.Finish(kir::For(i, 0, 8, kir::Store(y, i, kir::Load(x, i) + kir::FloatImm(1.0)), kir::LoopKind::kParallel));
  CHECK(k.parallel_extent == 8);
  CHECK(kir::Print(k) == "kernel add(x: f32[8], y: f32[8]):\n  parallel for i in [0, +8):\n    y[i] = (x[i] + 1f32)\n");
  CHECK_THROWS_WITH(kir::Load(x, kir::FloatImm(0.0)), Catch::Contains("must be i64"));
  CHECK_THROWS_WITH(kir::Load(x, i) + kir::Expr(1), Catch::Contains("have types f32 and i64"));
  CHECK_THROWS_WITH(kir::Store(y, i, kir::IntImm(1)), Catch::Contains("store of i64 into f32"));
}

TEST_CASE("the 16-bit, unsigned and bfloat16 types: names, sizes, constants and wrapping", "[kir]") {
  using kir::ScalarType;
  CHECK(std::string(kir::ScalarTypeName(ScalarType::kInt16)) == "i16");
  CHECK(std::string(kir::ScalarTypeName(ScalarType::kUInt16)) == "u16");
  CHECK(std::string(kir::ScalarTypeName(ScalarType::kUInt32)) == "u32");
  CHECK(std::string(kir::ScalarTypeName(ScalarType::kUInt64)) == "u64");
  CHECK(std::string(kir::ScalarTypeName(ScalarType::kBFloat16)) == "bf16");
  CHECK(kir::ScalarTypeBytes(ScalarType::kBFloat16) == 2);
  CHECK(kir::ScalarTypeBytes(ScalarType::kUInt32) == 4);
  CHECK(kir::IsFloatType(ScalarType::kBFloat16));
  CHECK(kir::IsUnsignedType(ScalarType::kUInt64));
  CHECK_FALSE(kir::IsUnsignedType(ScalarType::kInt16));
  CHECK_FALSE(kir::IsUnsignedType(ScalarType::kBool));
  // Integers wrap to their width; unsigned ones below 64 bits are held zero-extended,
  // uint64 as its bits.
  CHECK(kir::WrapTo(ScalarType::kInt16, 40000) == 40000 - 65536);
  CHECK(kir::WrapTo(ScalarType::kUInt16, -1) == 65535);
  CHECK(kir::WrapTo(ScalarType::kUInt32, -1) == 4294967295);
  CHECK(kir::WrapTo(ScalarType::kUInt64, -1) == -1);
  CHECK(kir::IntToDouble(ScalarType::kUInt64, -1) == 0x1p64);
  CHECK(kir::FloatToInt(ScalarType::kUInt64, 1e19) == static_cast<int64_t>(10000000000000000000u));
  CHECK(kir::FloatToInt(ScalarType::kUInt64, 1e30) == -1);  // saturates at 2^64 - 1
  CHECK(kir::FloatToInt(ScalarType::kUInt64, -2.0) == -2);  // through int64, as the narrower ones
  CHECK(kir::FloatToInt(ScalarType::kUInt16, 70000.0) == 70000 - 65536);
  CHECK(kir::Const(1e19, ScalarType::kUInt64)->int_value == static_cast<int64_t>(10000000000000000000u));
  CHECK(kir::Print(kir::FloatImm(1.5, ScalarType::kBFloat16)) == "1.5bf16");
  CHECK(kir::Print(kir::IntImm(3, ScalarType::kUInt16)) == "3:u16");
}

TEST_CASE("verification rejects foreign buffers and nested parallel loops", "[kir]") {
  kir::KernelBuilder other("other");
  const auto foreign = other.AddArg("foreign", kir::ScalarType::kFloat32, 4);
  kir::KernelBuilder b("k");
  const auto out = b.AddArg("out", kir::ScalarType::kFloat32, 4);
  const kir::Expr i = kir::Var("i");
  CHECK_THROWS_WITH(b.Finish(kir::For(i, 0, 4, kir::Store(out, i, kir::Load(foreign, i)))),
                    Catch::Contains("'foreign' is neither an argument nor an allocated local"));
  kir::KernelBuilder c("k2");
  const auto out2 = c.AddArg("out", kir::ScalarType::kFloat32, 4);
  const kir::Expr j = kir::Var("j");
  CHECK_THROWS_WITH(
      c.Finish(kir::For(i, 0, 2,
                        kir::For(j, 0, 2, kir::Store(out2, i * 2 + j, kir::FloatImm(0.0)), kir::LoopKind::kParallel))),
      Catch::Contains("parallel loop must be the outermost"));
}

TEST_CASE("the interpreter checks bounds", "[kir]") {
  kir::KernelBuilder b("oob");
  const auto out = b.AddArg("out", kir::ScalarType::kFloat32, 4);
  const kir::Expr i = kir::Var("i");
  const kir::Kernel k = b.Finish(kir::For(i, 0, 5, kir::Store(out, i, kir::FloatImm(1.0))));
  std::vector<float> data(4);
  CHECK_THROWS_WITH(InterpretKernel(k, {data.data()}, 0, 1, TestRuntimeApi()), Catch::Contains("index 4 out of range"));
}

TEST_CASE("the interpreter checks an independent loop's claim", "[kir]") {
  kir::KernelBuilder b("independent");
  const auto x = b.AddArg("x", kir::ScalarType::kFloat32, 8);
  const auto out = b.AddArg("out", kir::ScalarType::kFloat32, 8);
  const auto stage = b.AddLocal("stage", kir::ScalarType::kFloat32, 2);
  const kir::Expr i = kir::Var("i");
  const auto run = [&](kir::Stmt body) {
    const kir::Kernel k = b.Finish(kir::For(i, 0, 4, std::move(body), kir::LoopKind::kIndependent));
    std::vector<float> xs = {1, 2, 3, 4, 5, 6, 7, 8};
    std::vector<float> outs(8);
    InterpretKernel(k, {xs.data(), outs.data()}, 0, 1, TestRuntimeApi());
    return outs;
  };
  // Stride-2 stores and a local of each iteration's own: independent.
  const std::vector<float> sums =
      run(kir::Allocate(stage, kir::Block({kir::Store(stage, 0, kir::Load(x, i * 2) + kir::Load(x, i * 2 + 1)),
                                           kir::Store(stage, 1, kir::Load(x, i * 2) - kir::Load(x, i * 2 + 1)),
                                           kir::Store(out, i * 2, kir::Load(stage, 0)),
                                           kir::Store(out, i * 2 + 1, kir::Load(stage, 1))})));
  CHECK(sums == std::vector<float>{3, -1, 7, -1, 11, -1, 15, -1});
  // Two iterations write one element.
  CHECK_THROWS_WITH(run(kir::Store(out, i / 2, kir::FloatImm(1.0))),
                    Catch::Contains("independent loop 'i': iterations 0 and 1 both write out[0]"));
  // An iteration reads what the next writes (any such pair may be named).
  CHECK_THROWS_WITH(
      run(kir::Store(out, i + 1, kir::Load(out, i))),
      Catch::Matches("independent loop 'i': iteration ([0-2]) writes out\\[[1-3]\\], which iteration [1-3] reads"));
}

TEST_CASE("a local accumulator sums a row", "[kir]") {
  kir::KernelBuilder b("rowsum");
  const auto x = b.AddArg("x", kir::ScalarType::kFloat32, 6);
  const auto y = b.AddArg("y", kir::ScalarType::kFloat32, 2);
  const auto acc = b.AddLocal("acc", kir::ScalarType::kFloat32, 1);
  const kir::Expr r = kir::Var("r");
  const kir::Expr c = kir::Var("c");
  const kir::Kernel k = b.Finish(kir::For(
      r, 0, 2,
      kir::Allocate(acc, kir::Block({kir::Store(acc, 0, kir::FloatImm(0.0)),
                                     kir::For(c, 0, 3, kir::Store(acc, 0, kir::Load(acc, 0) + kir::Load(x, r * 3 + c))),
                                     kir::Store(y, r, kir::Load(acc, 0))})),
      kir::LoopKind::kParallel));
  std::vector<float> xs = {1, 2, 3, 4, 5, 6};
  std::vector<float> ys(2);
  InterpretKernel(k, {xs.data(), ys.data()}, 0, 2, TestRuntimeApi());
  CHECK(ys == std::vector<float>{6, 15});
}

TEST_CASE("elementwise lowering matches the reference, with broadcasting", "[lower]") {
  const Tensor a = RandomTensor({3, 1, 5}, 1);
  const Tensor b = RandomTensor({4, 1}, 2);
  for (const char* op : {"broadcast_add", "broadcast_mul", "broadcast_maximum", "broadcast_greater"}) {
    INFO(op);
    KILN_CHECK_CLOSE(RunLowered(op, {a, b})[0], RunOp(op, {a, b})[0], 1e-6, 1e-6);
  }
  const Tensor big = RandomTensor({70000}, 3);
  KILN_CHECK_CLOSE(RunLowered("elemwise_mul", {big, big})[0], RunOp("elemwise_mul", {big, big})[0], 1e-6, 0);
}

TEST_CASE("floor, ceil, round and trunc print and round as C does", "[kir]") {
  const std::vector<double> x = {-2.5, -0.5, 0.5, 2.5, -0.0, -2.7, 2.7, INFINITY};
  // C's floor, ceil, round (halves away from zero) and trunc, signed zeros included.
  const std::vector<std::pair<std::function<kir::Expr(kir::Expr)>, std::vector<double>>> cases = {
      {kir::Floor, {-3, -1, 0, 2, -0.0, -3, 2, INFINITY}},
      {kir::Ceil, {-2, -0.0, 1, 3, -0.0, -2, 3, INFINITY}},
      {kir::Round, {-3, -1, 1, 3, -0.0, -3, 3, INFINITY}},
      {kir::Trunc, {-2, -0.0, 0, 2, -0.0, -2, 2, INFINITY}},
  };
  for (const auto& [fn, expected] : cases) {
    kir::KernelBuilder b("round");
    const auto in = b.AddArg("x", kir::ScalarType::kFloat64, 8);
    const auto out = b.AddArg("y", kir::ScalarType::kFloat64, 8);
    const kir::Expr i = kir::Var("i");
    const kir::Kernel k = b.Finish(kir::For(i, 0, 8, kir::Store(out, i, fn(kir::Load(in, i)))));
    INFO(kir::Print(k));
    std::vector<double> xs = x;
    std::vector<double> ys(8);
    InterpretKernel(k, {xs.data(), ys.data()}, 0, 1, TestRuntimeApi());
    for (size_t j = 0; j < ys.size(); ++j) {
      INFO(j);
      CHECK(ys[j] == expected[j]);
      CHECK(std::signbit(ys[j]) == std::signbit(expected[j]));
    }
  }
  CHECK(kir::Print(kir::Trunc(kir::FloatImm(1.5))) == "trunc(1.5f32)");
  CHECK(kir::Trunc(kir::IntImm(3, kir::ScalarType::kInt8)).type() == kir::ScalarType::kInt8);
}

TEST_CASE("mod, comparison and logical lowerings match the reference, zeros and nan included", "[lower]") {
  const double nan = std::nan("");
  const Tensor a = Values({12}, {-7, -7, 7, 7, -6, -6, 0, -0.0, 5.5, nan, INFINITY, -1});
  const Tensor b = Values({12}, {3, -3, 3, -3, 3, -3, 0, -3, -2, 1, 2, INFINITY});
  for (const DType dtype : {DType::kFloat32, DType::kFloat64, DType::kFloat16, DType::kInt8, DType::kUInt8,
                            DType::kInt32, DType::kInt64, DType::kBool}) {
    Tensor x(a.shape(), dtype);
    Tensor y(b.shape(), dtype);
    for (int64_t i = 0; i < a.size(); ++i) {
      // Integers get the finite values (uint8 wraps the negative ones); bool is != 0.
      const double u = std::isfinite(a.GetDouble(i)) || IsFloat(dtype) ? a.GetDouble(i) : 2;
      const double v = std::isfinite(b.GetDouble(i)) || IsFloat(dtype) ? b.GetDouble(i) : 2;
      x.SetDouble(i, dtype == DType::kUInt8 ? static_cast<uint8_t>(static_cast<int>(u)) : u);
      y.SetDouble(i, dtype == DType::kUInt8 ? static_cast<uint8_t>(static_cast<int>(v)) : v);
    }
    for (const char* op : {"broadcast_mod", "broadcast_greater_equal", "broadcast_lesser_equal",
                           "broadcast_logical_and", "broadcast_logical_or", "broadcast_logical_xor", "_mod"}) {
      INFO(op << " " << DTypeName(dtype));
      const Tensor expected = RunOp(op, {x, y})[0];
      const Tensor actual = RunLowered(op, {x, y})[0];
      CHECK(actual.dtype() == dtype);
      KILN_CHECK_CLOSE(actual, expected, 0, 0);
      bool same_signs = true;
      for (int64_t i = 0; i < x.size(); ++i) {
        same_signs = same_signs && (std::isnan(expected.GetDouble(i)) ||
                                    std::signbit(actual.GetDouble(i)) == std::signbit(expected.GetDouble(i)));
      }
      CHECK(same_signs);
    }
    for (const double scalar : {3.0, -3.0, 0.0, 2.5, 300.0}) {
      for (const char* op : {"_mod_scalar", "_rmod_scalar", "_greater_equal_scalar", "_lesser_equal_scalar",
                             "_logical_and_scalar", "_logical_or_scalar", "_logical_xor_scalar"}) {
        INFO(op << " " << DTypeName(dtype) << " scalar " << scalar);
        KILN_CHECK_CLOSE(RunLowered(op, {x}, {{"scalar", scalar}})[0], RunOp(op, {x}, {{"scalar", scalar}})[0], 0, 0);
      }
    }
  }
}

TEST_CASE("a kernel with library steps runs as its sequence of kernels and steps", "[kir][steps]") {
  kir::KernelBuilder b("fc");
  const auto x = b.AddArg("x", kir::ScalarType::kFloat32, 6);   // (2, 3)
  const auto w = b.AddArg("w", kir::ScalarType::kFloat32, 12);  // (3, 4)
  const auto y = b.AddArg("y", kir::ScalarType::kFloat32, 8);   // (2, 4)
  kir::GemmStepArgs gemm;
  gemm.a = x;
  gemm.b = w;
  gemm.c = y;
  gemm.m = 2;
  gemm.n = 4;
  gemm.k = 3;
  gemm.lda = 3;
  gemm.ldb = 4;
  gemm.ldc = 4;
  const kir::Expr i = kir::Var("i");
  const kir::Stmt relu =
      kir::For(i, 0, 8, kir::Store(y, i, kir::Max(kir::Load(y, i), kir::FloatImm(0.0))), kir::LoopKind::kParallel);
  const kir::Kernel kernel = b.Finish(kir::Block({kir::GemmStep(gemm), relu}));
  CHECK(kir::HasLibrarySteps(kernel));
  const std::vector<kir::KernelStep> steps = kir::SplitSteps(kernel);
  REQUIRE(steps.size() == 2);
  REQUIRE(steps[0].gemm);
  CHECK((steps[0].gemm->m == 2 && steps[0].gemm->n == 4 && steps[0].gemm->k == 3 && steps[0].gemm->c == y));
  REQUIRE(steps[1].kernel);
  CHECK(steps[1].kernel->name == "fc_s1");
  CHECK(steps[1].kernel->parallel_extent == 8);
  CHECK(steps[1].kernel->args.size() == 3);
  // The interpreter runs the whole sequence: the product, then the relu.
  std::vector<float> xs = {1, -2, 3, 0.5f, 1, -1}, ws(12), ys(8, 7.0f);
  for (size_t k = 0; k < ws.size(); ++k) ws[k] = static_cast<float>(k) - 5.0f;
  InterpretKernel(kernel, {xs.data(), ws.data(), ys.data()}, 0, 1, TestRuntimeApi());
  for (int r = 0; r < 2; ++r) {
    for (int c = 0; c < 4; ++c) {
      float sum = 0;
      for (int p = 0; p < 3; ++p) sum += xs[r * 3 + p] * ws[p * 4 + c];
      CHECK(ys[r * 4 + c] == Approx(std::max(sum, 0.0f)));
    }
  }
  // Without steps a kernel is itself alone.
  CHECK(kir::SplitSteps(steps[1].kernel.value()).size() == 1);

  // Steps lie at the top level, inside their buffers, with constant arguments.
  kir::KernelBuilder nested("nested");
  const auto a2 = nested.AddArg("a", kir::ScalarType::kFloat32, 6);
  gemm.a = a2;
  gemm.b = nested.AddArg("b", kir::ScalarType::kFloat32, 12);
  gemm.c = nested.AddArg("c", kir::ScalarType::kFloat32, 8);
  CHECK_THROWS_WITH(nested.Finish(kir::For(kir::Var("t"), 0, 2, kir::GemmStep(gemm))),
                    Catch::Contains("must be a top-level statement"));
  kir::KernelBuilder outside("outside");
  gemm.a = outside.AddArg("a", kir::ScalarType::kFloat32, 5);
  gemm.b = outside.AddArg("b", kir::ScalarType::kFloat32, 12);
  gemm.c = outside.AddArg("c", kir::ScalarType::kFloat32, 8);
  CHECK_THROWS_WITH(outside.Finish(kir::GemmStep(gemm)), Catch::Contains("operand A reaches element 6 of 'a'"));
  kir::KernelBuilder typed("typed");
  gemm.a = typed.AddArg("a", kir::ScalarType::kFloat64, 6);
  gemm.b = typed.AddArg("b", kir::ScalarType::kFloat32, 12);
  gemm.c = typed.AddArg("c", kir::ScalarType::kFloat32, 8);
  CHECK_THROWS_WITH(typed.Finish(kir::GemmStep(gemm)), Catch::Contains("must be a float32 kernel argument"));
}
