// The CUDA C emitter (codegen/cuda): hand-built kernels run through the emulation
// harness against the kir interpreter bit for bit (the arithmetic contract of every type),
// the thread binding and launch configurations, refusals, and NVRTC (skipped where the
// CUDA toolkit is absent).
#include "codegen/cuda/cuda_emitter.h"

#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "codegen/cuda/cuda_emulation.h"
#include "codegen/cuda/nvrtc_compiler.h"
#include "codegen/kir_interpreter.h"
#include "runtime/code_module.h"
#include "runtime/cuda_device.h"
#include "runtime/error.h"
#include "tests/codegen/kernel_test_util.h"
#include "tests/lower_test_util.h"
#include "tests/op_test_util.h"

using namespace kiln;
using namespace kiln::testing;
using kir::ScalarType;

namespace {

// Runs kernels through their emulated CUDA C, built once per batch of kernels: the
// runner looks the kernel up in `code` by name.
struct EmulatedKernels {
  explicit EmulatedKernels(const std::vector<kir::Kernel>& kernels)
      : code(LoadSharedObject(cuda::BuildEmulatedSharedObject(kernels))) {}

  KernelRunner Runner() const {
    return [this](const kir::Kernel& kernel, const std::vector<void*>& buffers) {
      const KilnKernelFn fn = code->Find(kernel.name);
      REQUIRE(fn != nullptr);
      RunShares(fn, kernel.parallel_extent, buffers);
    };
  }

  std::unique_ptr<CodeModule> code;
};

kir::Kernel Named(kir::Kernel kernel, const std::string& name) {
  kernel.name = name;
  return kernel;
}

// The kernel most lowerings make for same-shape elementwise work: chunks in parallel, an
// independent loop over each chunk's elements (the last chunk shorter).
kir::Kernel ChunkedCopy(int64_t count, int64_t chunk) {
  kir::KernelBuilder b("chunked");
  const auto in = b.AddArg("in", ScalarType::kFloat32, count);
  const auto out = b.AddArg("out", ScalarType::kFloat32, count);
  const kir::Expr c = kir::Var("chunk"), j = kir::Var("j");
  const kir::Expr first = c * kir::Expr(chunk);
  const kir::Expr i = first + j;
  kir::Kernel kernel = b.Finish(
      kir::For(c, 0, (count + chunk - 1) / chunk,
               kir::For(j, 0, kir::Min(kir::Expr(chunk), kir::Expr(count) - first),
                        kir::Store(out, i, kir::Load(in, i) * kir::FloatImm(2.0)), kir::LoopKind::kIndependent),
               kir::LoopKind::kParallel));
  kernel.parallel_extent = (count + chunk - 1) / chunk;
  return kernel;
}

}  // namespace

TEST_CASE("casts between every pair of types match the interpreter bit for bit", "[cuda]") {
  std::vector<kir::Kernel> kernels;
  for (const ScalarType from : kAllTypes) {
    for (const ScalarType to : kAllTypes) {
      kernels.push_back(
          Named(MapKernel(from, to, SpecialValues(from).size(), [&](kir::Expr x) { return kir::Cast(to, x); }),
                std::string("cast_") + kir::ScalarTypeName(from) + "_" + kir::ScalarTypeName(to)));
    }
  }
  const EmulatedKernels emulated(kernels);
  size_t k = 0;
  for (const ScalarType from : kAllTypes) {
    const Tensor in = SpecialValues(from);
    for (const ScalarType to : kAllTypes) {
      const kir::Kernel& kernel = kernels[k++];
      INFO(kernel.name);
      const Tensor expected = RunKernel(InterpreterRunner(), kernel, {in}, to);
      const Tensor actual = RunKernel(emulated.Runner(), kernel, {in}, to);
      INFO("expected " << Show(expected) << "\ncuda     " << Show(actual));
      CHECK(Bitwise(actual, expected));
    }
  }
}

TEST_CASE("binary and unary operators match the interpreter on special values of every type", "[cuda]") {
  using kir::BinaryOp;
  using kir::UnaryOp;
  struct Check {
    kir::Kernel kernel;
    std::vector<Tensor> inputs;
    ScalarType out_type;
    bool approximate;  // transcendental functions: CUDA's, within a few ulp
  };
  std::vector<Check> checks;
  for (const ScalarType type : kAllTypes) {
    const Tensor a = SpecialValues(type);
    // b: the same values rotated; integer zeros and -1 kept (x / 0 = 0 and MIN / -1 wraps
    // in both), but for int64 MIN / -1, which traps in the interpreter.
    Tensor b = a.Clone();
    for (int64_t i = 0; i < b.size(); ++i) b.CopyElement(i, a, (i + 3) % a.size());
    if (type == ScalarType::kInt64) b.data_as<int64_t>()[0] = 3;
    for (const BinaryOp op : BinaryOpsFor(type)) {
      const ScalarType out_type = IsComparison(op) ? ScalarType::kBool : type;
      checks.push_back(
          {Named(ZipKernel(type, out_type, a.size(), [&](kir::Expr x, kir::Expr y) { return kir::Binary(op, x, y); }),
                 std::string("binary_") + kir::ScalarTypeName(type) + "_" + std::to_string(static_cast<int>(op))),
           {a, b},
           out_type,
           op == BinaryOp::kPow && type != ScalarType::kBool});
    }
    Tensor in = a.Clone();
    if (type == ScalarType::kInt64) in.data_as<int64_t>()[0] = INT64_MIN + 1;  // -MIN overflows in the interpreter
    for (const UnaryOp op : {UnaryOp::kNeg, UnaryOp::kAbs, UnaryOp::kExp, UnaryOp::kLog, UnaryOp::kSqrt, UnaryOp::kTanh,
                             UnaryOp::kErf, UnaryOp::kFloor, UnaryOp::kCeil, UnaryOp::kRound, UnaryOp::kTrunc,
                             UnaryOp::kNot, UnaryOp::kSin, UnaryOp::kAtan, UnaryOp::kAsinh}) {
      if (!kir::IsFloatType(type) && op != UnaryOp::kNeg && op != UnaryOp::kAbs && op != UnaryOp::kNot &&
          op != UnaryOp::kFloor) {
        continue;
      }
      const ScalarType out_type = op == UnaryOp::kNot ? ScalarType::kBool : type;
      const bool exact = op == UnaryOp::kNeg || op == UnaryOp::kAbs || op == UnaryOp::kNot || op == UnaryOp::kFloor ||
                         op == UnaryOp::kCeil || op == UnaryOp::kRound || op == UnaryOp::kTrunc || op == UnaryOp::kSqrt;
      checks.push_back(
          {Named(MapKernel(type, out_type, in.size(), [&](kir::Expr x) { return kir::Unary(op, x); }),
                 std::string("unary_") + kir::ScalarTypeName(type) + "_" + std::to_string(static_cast<int>(op))),
           {in},
           out_type,
           !exact});
    }
  }
  std::vector<kir::Kernel> kernels;
  for (const Check& c : checks) kernels.push_back(c.kernel);
  const EmulatedKernels emulated(kernels);
  for (const Check& c : checks) {
    INFO(c.kernel.name << "\n" << kir::Print(c.kernel));
    const Tensor expected = RunKernel(InterpreterRunner(), c.kernel, c.inputs, c.out_type);
    const Tensor actual = RunKernel(emulated.Runner(), c.kernel, c.inputs, c.out_type);
    INFO("expected " << Show(expected) << "\ncuda     " << Show(actual));
    if (c.approximate) {
      // float16 and bfloat16 round a float result once, the interpreter a double's.
      const double rtol = c.out_type == ScalarType::kFloat16    ? 1e-3
                          : c.out_type == ScalarType::kBFloat16 ? 8e-3
                          : c.out_type == ScalarType::kFloat32  ? 1e-6
                                                                : 1e-14;
      KILN_CHECK_CLOSE(actual, expected, rtol, 1e-300);
    } else {
      CHECK(Bitwise(actual, expected));
    }
  }
}

TEST_CASE("integer division by zero gives 0 and MIN / -1 wraps", "[cuda]") {
  std::vector<kir::Kernel> kernels;
  const std::vector<ScalarType> types = {ScalarType::kInt8,  ScalarType::kInt16,  ScalarType::kInt32,
                                         ScalarType::kInt64, ScalarType::kUInt32, ScalarType::kUInt64};
  for (const ScalarType type : types) {
    for (const kir::BinaryOp op : {kir::BinaryOp::kDiv, kir::BinaryOp::kMod}) {
      kernels.push_back(Named(ZipKernel(type, type, 6, [&](kir::Expr x, kir::Expr y) { return kir::Binary(op, x, y); }),
                              std::string("div_") + kir::ScalarTypeName(type) + std::to_string(static_cast<int>(op))));
    }
  }
  const EmulatedKernels emulated(kernels);
  size_t k = 0;
  for (const ScalarType type : types) {
    const DType dtype = ToDType(type);
    const int64_t min = type == ScalarType::kInt8    ? INT8_MIN
                        : type == ScalarType::kInt16 ? INT16_MIN
                        : type == ScalarType::kInt32 ? INT32_MIN
                                                     : INT64_MIN;
    const Tensor a = Ints({min, min, 5, -7, 0, 9}, dtype);
    const Tensor b = Ints({-1, 0, 0, -1, 0, -2}, dtype);
    for (const kir::BinaryOp op : {kir::BinaryOp::kDiv, kir::BinaryOp::kMod}) {
      const kir::Kernel& kernel = kernels[k++];
      INFO(kernel.name);
      const Tensor expected = RunKernel(InterpreterRunner(), kernel, {a, b}, type);
      const Tensor actual = RunKernel(emulated.Runner(), kernel, {a, b}, type);
      INFO("expected " << Show(expected) << "\ncuda     " << Show(actual));
      CHECK(Bitwise(actual, expected));
      CHECK(actual.GetDouble(1) == 0);  // x / 0 and x % 0
      if (!kir::IsUnsignedType(type)) {
        CHECK(actual.GetDouble(0) == (op == kir::BinaryOp::kDiv ? static_cast<double>(min) : 0.0));  // MIN op -1
      }
    }
  }
}

TEST_CASE("a select evaluates only the arm it picks, even for shared values", "[cuda]") {
  // out[i] = i < 4 ? in[i * 2^40] + in[i * 2^40] : 0: the load is far out of range for
  // i >= 1 and shared by the sum; reading it would fault.
  kir::KernelBuilder b("guarded");
  const auto in = b.AddArg("in", ScalarType::kFloat32, 8);
  const auto out = b.AddArg("out", ScalarType::kFloat32, 8);
  const kir::Expr i = kir::Var("i");
  const kir::Expr far = kir::Load(in, i * kir::Expr(int64_t{1} << 40));
  kir::Kernel kernel = b.Finish(
      kir::For(i, 0, 8, kir::Store(out, i, kir::Select(kir::Lt(i, kir::Expr(1)), far + far, kir::FloatImm(-1.0))),
               kir::LoopKind::kParallel));
  kernel.parallel_extent = 8;
  const EmulatedKernels emulated({kernel});
  const Tensor x = Tensor::FromDoubles({8}, std::vector<double>{3, 1, 1, 1, 1, 1, 1, 1});
  const Tensor y = RunKernel(emulated.Runner(), kernel, {x}, ScalarType::kFloat32);
  CHECK(y.ToDoubles() == std::vector<double>{6, -1, -1, -1, -1, -1, -1, -1});
}

TEST_CASE("parallel loops bind to threads; independent inner loops bind with them", "[cuda]") {
  const kir::Kernel chunked = ChunkedCopy(1000, 64);  // 16 chunks, the last of 40
  const cuda::CudaModuleSource module = cuda::EmitCudaModule({chunked});
  REQUIRE(module.kernels.size() == 1);
  const cuda::CudaKernelInfo& info = module.kernels[0];
  CHECK(info.has_parallel_loop);
  // Elementwise: four elements a thread (float4), so a quarter of the chunk's threads.
  CHECK(info.float4);
  CHECK(info.inner_threads == 16);
  CHECK(info.entry == "cuda_" + KernelSymbolName("chunked"));
  CHECK(module.source.find("extern \"C\" __global__ void " + info.entry +
                           "(float* a0, float* a1, long long begin, "
                           "long long end)") != std::string::npos);
  // Every element once, over uneven shares of the chunks and grid-stride rounds.
  const EmulatedKernels emulated({chunked});
  const Tensor x = RandomTensor({1000}, 5);
  const Tensor y = RunKernel(emulated.Runner(), chunked, {x}, ScalarType::kFloat32);
  CHECK(Bitwise(y, RunKernel(InterpreterRunner(), chunked, {x}, ScalarType::kFloat32)));

  // A serial inner loop stays in its thread.
  kir::KernelBuilder b("rows");
  const auto in = b.AddArg("in", ScalarType::kFloat32, 12);
  const auto out = b.AddArg("out", ScalarType::kFloat32, 3);
  const kir::Expr r = kir::Var("r"), c = kir::Var("c");
  const auto acc = b.AddLocal("acc", ScalarType::kFloat32, 1);
  kir::Kernel rows = b.Finish(kir::For(
      r, 0, 3,
      kir::Allocate(acc, kir::Block({kir::For(c, 0, 4,
                                              kir::Store(acc, kir::Expr(0),
                                                         kir::Load(acc, kir::Expr(0)) + kir::Load(in, r * 4 + c))),
                                     kir::Store(out, r, kir::Load(acc, kir::Expr(0)))})),
      kir::LoopKind::kParallel));
  rows.parallel_extent = 3;
  CHECK(cuda::EmitCudaModule({rows}).kernels[0].inner_threads == 1);
  const EmulatedKernels rows_emulated({rows});
  const Tensor m = RandomTensor({12}, 6);
  CHECK(Bitwise(RunKernel(rows_emulated.Runner(), rows, {m}, ScalarType::kFloat32),
                RunKernel(InterpreterRunner(), rows, {m}, ScalarType::kFloat32)));
}

TEST_CASE("elementwise kernels move float32 data 16 bytes at a time, falling back where unaligned or partial",
          "[cuda]") {
  // out[i] = in[i + shift] * 2 + in[i % 3] (a broadcast read, one element at a time) +
  // (i % 2 == 0 ? in[i + shift] : 0) (a guarded read), over chunks of 64 of `count`.
  const auto make = [](const std::string& name, int64_t count, int64_t shift) {
    kir::KernelBuilder b(name);
    const auto in = b.AddArg("in", ScalarType::kFloat32, count + shift);
    const auto out = b.AddArg("out", ScalarType::kFloat32, count);
    const kir::Expr c = kir::Var("chunk"), j = kir::Var("j");
    const kir::Expr first = c * kir::Expr(int64_t{64});
    const kir::Expr i = first + j;
    const kir::Expr value = kir::Load(in, i + kir::Expr(shift)) * kir::FloatImm(2.0) +
                            kir::Load(in, i % kir::Expr(int64_t{3})) +
                            kir::Select(kir::Eq(i % kir::Expr(int64_t{2}), kir::Expr(int64_t{0})),
                                        kir::Load(in, kir::Expr(shift) + i), kir::FloatImm(0.0));
    kir::Kernel kernel = b.Finish(kir::For(c, 0, (count + 63) / 64,
                                           kir::For(j, 0, kir::Min(kir::Expr(int64_t{64}), kir::Expr(count) - first),
                                                    kir::Store(out, i, value), kir::LoopKind::kIndependent),
                                           kir::LoopKind::kParallel));
    kernel.parallel_extent = (count + 63) / 64;
    return kernel;
  };
  // Aligned with whole quads; a last chunk of 2 elements (a partial quad); every read
  // one float off alignment (scalar fallback throughout).
  const std::vector<kir::Kernel> kernels = {make("aligned", 1024, 0), make("partial", 1026, 0),
                                            make("shifted", 1000, 1)};
  const cuda::CudaModuleSource module = cuda::EmitCudaModule(kernels);
  for (const auto& info : module.kernels) {
    CHECK(info.float4);
    CHECK(info.inner_threads == 16);
  }
  CHECK(module.source.find("*(const kiln_f4*)") != std::string::npos);
  CHECK(module.source.find("*(kiln_f4*)") != std::string::npos);
  const EmulatedKernels emulated(kernels);
  for (size_t k = 0; k < kernels.size(); ++k) {
    INFO(kernels[k].name);
    const Tensor x = RandomTensor({kernels[k].args[0]->size}, 20 + k);
    CHECK(Bitwise(RunKernel(emulated.Runner(), kernels[k], {x}, ScalarType::kFloat32),
                  RunKernel(InterpreterRunner(), kernels[k], {x}, ScalarType::kFloat32)));
  }

  // Not moved: a float64 store, a strided store, an inner bound that is no multiple of 4.
  kir::KernelBuilder b("strided");
  const auto in = b.AddArg("in", ScalarType::kFloat32, 128);
  const auto out = b.AddArg("out", ScalarType::kFloat32, 128);
  const kir::Expr c = kir::Var("chunk"), j = kir::Var("j");
  kir::Kernel strided = b.Finish(kir::For(
      c, 0, 2,
      kir::For(j, 0, 64, kir::Store(out, j * kir::Expr(int64_t{2}) + c, kir::Load(in, j * kir::Expr(int64_t{2}) + c)),
               kir::LoopKind::kIndependent),
      kir::LoopKind::kParallel));
  strided.parallel_extent = 2;
  const auto strided_info = cuda::EmitCudaModule({strided}).kernels[0];
  CHECK_FALSE(strided_info.float4);
  CHECK(strided_info.inner_threads == 64);
  CHECK_FALSE(cuda::EmitCudaModule({ChunkedCopy(1000, 62)}).kernels[0].float4);

  // Two stores where the second reads what the first wrote (m = 2x; w = w + m): the four
  // elements' loads would come before the first store, so the body keeps its order.
  kir::KernelBuilder ordered("ordered");
  const auto x = ordered.AddArg("x", ScalarType::kFloat32, 64);
  const auto m = ordered.AddArg("m", ScalarType::kFloat32, 64);
  const auto w = ordered.AddArg("w", ScalarType::kFloat32, 64);
  kir::Kernel chained =
      ordered.Finish(kir::For(c, 0, 1,
                              kir::For(j, 0, 64,
                                       kir::Block({kir::Store(m, j, kir::Load(x, j) * kir::FloatImm(2.0)),
                                                   kir::Store(w, j, kir::Load(w, j) + kir::Load(m, j))}),
                                       kir::LoopKind::kIndependent),
                              kir::LoopKind::kParallel));
  chained.parallel_extent = 1;
  chained.noalias = {true, true, true};
  CHECK_FALSE(cuda::EmitCudaModule({chained}).kernels[0].float4);
}

TEST_CASE("launch configurations cover the work in whole warps", "[cuda]") {
  proto::CudaKernelProto serial;
  CHECK(ConfigureCudaLaunch(serial, 0, 1).grid == 1);
  CHECK(ConfigureCudaLaunch(serial, 0, 1).block == 1);
  CHECK(ConfigureCudaLaunch(serial, 1, 1).grid == 0);  // an empty share launches nothing

  proto::CudaKernelProto parallel;
  parallel.set_has_parallel_loop(true);
  parallel.set_inner_threads(1);
  const auto small = ConfigureCudaLaunch(parallel, 10, 110);  // 100 threads: 4 warps
  CHECK(small.block == 128);
  CHECK(small.grid == 1);
  CHECK(small.work_items == 100);
  const auto large = ConfigureCudaLaunch(parallel, 0, 1000000);
  CHECK(large.block == 256);
  CHECK(large.grid == (1000000 + 255) / 256);
  const auto huge = ConfigureCudaLaunch(parallel, 0, int64_t{1} << 32);
  CHECK(huge.grid == kCudaMaxBlocks);  // grid-stride loops take the rest

  parallel.set_inner_threads(64);
  const auto bound = ConfigureCudaLaunch(parallel, 0, 16);
  CHECK(bound.work_items == 1024);
  CHECK(bound.block == 256);
  CHECK(bound.grid == 4);
  CHECK(ConfigureCudaLaunch(parallel, 0, 16, 128, 2).grid == 2);

  // The emitter's launch form is what the runtime reads.
  const auto form = cuda::LaunchForm(cuda::EmitCudaModule({ChunkedCopy(1000, 64)}).kernels[0]);
  CHECK(form.has_parallel_loop());
  CHECK(form.inner_threads() == 16);  // 64 elements a chunk, four a thread
  CHECK(form.entry() == "cuda_" + KernelSymbolName("chunked"));
}

TEST_CASE("kernels calling library routines are refused by name", "[cuda]") {
  kir::KernelBuilder b("with_gemm");
  const auto a = b.AddArg("a", ScalarType::kFloat32, 4);
  const auto c = b.AddArg("c", ScalarType::kFloat32, 4);
  const kir::Kernel kernel = b.Finish(kir::Call(
      kRoutineSgemm, {kir::ScalarArg(kir::Expr(2)), kir::ScalarArg(kir::Expr(2)), kir::ScalarArg(kir::Expr(1)),
                      kir::ScalarArg(kir::FloatImm(1.0)), kir::PointerArg(a), kir::ScalarArg(kir::Expr(1)),
                      kir::ScalarArg(kir::IntImm(0, ScalarType::kInt32)), kir::PointerArg(a),
                      kir::ScalarArg(kir::Expr(2)), kir::ScalarArg(kir::IntImm(0, ScalarType::kInt32)),
                      kir::ScalarArg(kir::FloatImm(0.0)), kir::PointerArg(c), kir::ScalarArg(kir::Expr(2))}));
  CHECK_FALSE(cuda::CudaCanEmit(kernel));
  CHECK_THROWS_WITH(cuda::EmitCudaModule({kernel}),
                    Catch::Contains("kernel with_gemm calls the routine 'sgemm'") && Catch::Contains("cuBLAS"));
}

TEST_CASE("NVRTC compiles the emitted CUDA C to PTX and cubins, cached on disk", "[cuda][nvrtc]") {
  const cuda::Nvrtc* nvrtc = cuda::Nvrtc::Find();
  if (nvrtc == nullptr) {
    std::printf("SKIPPED: NVRTC: %s\n", cuda::Nvrtc::LoadError().c_str());
    return;
  }
  const cuda::CudaModuleSource module = cuda::EmitCudaModule({ChunkedCopy(1000, 64)});
  const std::string cache = std::filesystem::temp_directory_path() / ("kiln_nvrtc_test_" + std::to_string(getpid()));
  const cuda::NvrtcOutput first = nvrtc->Compile(module.source, "chunked.cu", "sm_80", cache);
  CHECK_FALSE(first.cached);
  CHECK(first.ptx.find(".entry " + module.kernels[0].entry) != std::string::npos);
  // The elementwise kernel's float4 path: 16-byte loads and stores.
  CHECK(first.ptx.find(".v4.f32") != std::string::npos);
  CHECK(first.ptx.find("st.global.v4.f32") != std::string::npos);
  CHECK(first.cubin.substr(0, 4) ==
        "\x7f"
        "ELF");
  const auto report = cuda::ParsePtxasReport(first.log);
  REQUIRE(report.size() == 1);
  CHECK(report[0].entry == module.kernels[0].entry);
  CHECK(report[0].arch == "sm_80");
  CHECK(report[0].registers > 0);
  CHECK(report[0].spill_store_bytes == 0);
  const cuda::NvrtcOutput second = nvrtc->Compile(module.source, "chunked.cu", "sm_80", cache);
  CHECK(second.cached);
  CHECK(second.cubin == first.cubin);
  CHECK_FALSE(nvrtc->Compile(module.source, "chunked.cu", "sm_90", cache).cached);  // another key
  std::filesystem::remove_all(cache);

  CHECK_THROWS_WITH(nvrtc->Compile(module.source, "chunked.cu", "sm_xx"), Catch::Contains("unknown CUDA architecture"));
  CHECK_THROWS_WITH(nvrtc->Compile("this is not CUDA", "bad.cu", "compute_80"),
                    Catch::Contains("NVRTC could not compile bad.cu") && Catch::Contains("error"));
}

TEST_CASE("ptxas reports are parsed per kernel", "[cuda]") {
  const std::string log =
      "ptxas info    : 0 bytes gmem\n"
      "ptxas info    : Compiling entry function 'cuda_kiln_a' for 'sm_90'\n"
      "ptxas info    : Function properties for cuda_kiln_a\n"
      "    16 bytes stack frame, 8 bytes spill stores, 4 bytes spill loads\n"
      "ptxas info    : Used 40 registers, used 0 barriers, 380 bytes cmem[0]\n"
      "ptxas info    : Compiling entry function 'cuda_kiln_b' for 'sm_90'\n"
      "ptxas info    : Used 8 registers\n";
  const auto report = cuda::ParsePtxasReport(log);
  REQUIRE(report.size() == 2);
  CHECK(report[0].entry == "cuda_kiln_a");
  CHECK(report[0].registers == 40);
  CHECK(report[0].stack_bytes == 16);
  CHECK(report[0].spill_store_bytes == 8);
  CHECK(report[0].spill_load_bytes == 4);
  CHECK(report[1].registers == 8);
  CHECK(report[1].spill_store_bytes == 0);
}
