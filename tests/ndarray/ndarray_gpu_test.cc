// NDArrays on a GPU without one: gpu(0) and gpu(1) are the CUDA emulation (the CUDA C
// kiln emits, compiled for the CPU), and operator calls on GPU arrays compile their graph
// for CUDA (NVRTC) and run it through a CudaExecutor on the arrays' device memory.
// Results are checked against the same calls on CPU arrays.
#include <catch2/catch.hpp>
#include <cstdio>
#include <string>
#include <vector>

#include "ndarray/autograd.h"
#include "ndarray/invoke.h"
#include "ndarray/ndarray.h"
#include "ndarray/ops_api.h"
#include "runtime/context.h"
#include "runtime/error.h"
#include "tests/codegen/emulated_gpu.h"

using namespace kiln;

namespace {

// gpu(0) and gpu(1) emulated, and operator calls on them run by the emulation; the
// kernel cache drops GPU graphs compiled for other streams.
struct GpuArrays {
  GpuArrays() {
    nd::SetCacheDir("");
    nd::ClearKernelCache();
  }
  ~GpuArrays() { nd::ClearKernelCache(); }
  const testing::EmulatedGpus gpus{2};
};

std::vector<float> Values(int64_t count, float scale) {
  std::vector<float> values;
  for (int64_t i = 0; i < count; ++i) values.push_back(scale * static_cast<float>((i * 7) % 11) - 2.5f);
  return values;
}

void CheckSame(const nd::NDArray& gpu, const nd::NDArray& cpu, double tolerance = 1e-5) {
  REQUIRE(gpu.context().is_gpu());
  REQUIRE(gpu.shape() == cpu.shape());
  REQUIRE(gpu.dtype() == cpu.dtype());
  const Tensor got = gpu.ToTensor();
  const Tensor want = cpu.ToTensor();
  for (int64_t i = 0; i < want.size(); ++i) {
    INFO("element " << i);
    CHECK(got.GetDouble(i) == Approx(want.GetDouble(i)).epsilon(tolerance).margin(tolerance));
  }
}

}  // namespace

TEST_CASE("arrays move between the CPU and GPUs and keep their values", "[ndarray][gpu]") {
  const GpuArrays gpus;
  const nd::NDArray cpu = nd::array(Values(12, 0.5f), {3, 4});
  const nd::NDArray on0 = cpu.CopyTo(nd::Context::gpu(0));
  CHECK(on0.context() == nd::Context::gpu(0));
  CHECK(on0.shape() == Shape{3, 4});
  CHECK(on0.ToTensor().BitwiseEquals(cpu.tensor()));
  const nd::NDArray on1 = on0.CopyTo(nd::Context::gpu(1));
  CHECK(on1.context() == nd::Context::gpu(1));
  CHECK(on1.AsInContext(nd::Context::cpu()).tensor().BitwiseEquals(cpu.tensor()));
  // AsInContext keeps an array already there (the same memory).
  CHECK(on0.AsInContext(nd::Context::gpu(0)).chunk_ptr() == on0.chunk_ptr());
  // Created there directly (MXNet's ctx= arguments).
  CHECK(nd::ones({2, 2}, nd::Context::gpu(0)).ToTensor().BitwiseEquals(nd::ones({2, 2}).tensor()));
  CHECK(nd::arange(0, 5, 1, nd::Context::gpu(1)).ToTensor().BitwiseEquals(nd::arange(0, 5).tensor()));
  CHECK(nd::random::uniform(0, 1, {6}, 42, nd::Context::gpu(0))
            .ToTensor()
            .BitwiseEquals(nd::random::uniform(0, 1, {6}, 42).tensor()));
  CHECK(nd::full({1}, 2.5, nd::Context::gpu(0)).AsScalar<float>() == 2.5f);
  // CopyTo into an existing array, converting the dtype where they differ.
  nd::NDArray target = nd::zeros({3, 4}, nd::Context::gpu(1));
  on0.CopyTo(target);
  CHECK(target.ToTensor().BitwiseEquals(cpu.tensor()));
  nd::NDArray wide = nd::zeros({3, 4}, nd::Context::gpu(0), DType::kFloat64);
  cpu.CopyTo(wide);
  CHECK(wide.ToTensor().BitwiseEquals(cpu.tensor().CastTo(DType::kFloat64)));
  nd::NDArray back = nd::zeros({3, 4});
  on1.CopyTo(back);
  CHECK(back.tensor().BitwiseEquals(cpu.tensor()));
  // Views share device memory: writes through a slice are seen by the whole array.
  nd::NDArray gpu = cpu.CopyTo(nd::Context::gpu(0));
  nd::NDArray rows = gpu.Slice(1, 3);
  CHECK(rows.shape() == Shape{2, 4});
  rows.Assign(9);
  gpu[0].Assign(nd::array({1, 2, 3, 4}, {4}));
  const Tensor after = gpu.ToTensor();
  CHECK(after.GetDouble(0) == 1);
  CHECK(after.GetDouble(3) == 4);
  CHECK(after.GetDouble(4) == 9);
  CHECK(after.GetDouble(11) == 9);
  CHECK(gpu.Reshape({12}).ToTensor().BitwiseEquals(after.Reshaped({12})));
  // Host memory is not a GPU array's: reading it says how.
  CHECK_THROWS_WITH(on0.tensor(),
                    "the array is on gpu(0): read it with ToTensor() or copy it with AsInContext(Context::cpu())");
  CHECK_THROWS_WITH(gpu.data<float>(), Catch::StartsWith("the array is on gpu(0)"));
  CHECK_THROWS_WITH(cpu.device_tensor(), Catch::Contains("not a GPU"));
}

TEST_CASE("operators on GPU arrays run compiled CUDA code there and match the CPU", "[ndarray][gpu]") {
  if (!testing::HaveNvrtc("operators on GPU arrays")) return;
  const GpuArrays gpus;
  const nd::Context gpu = nd::Context::gpu(0);
  const nd::NDArray x = nd::array(Values(24, 0.25f), {4, 6});
  const nd::NDArray w = nd::array(Values(18, -0.5f), {6, 3});
  const nd::NDArray gx = x.CopyTo(gpu), gw = w.CopyTo(gpu);
  // Elementwise with a broadcast scalar, a matrix product (a cuBLAS step), a reduction,
  // softmax.
  CheckSame(gx * 2.0 + 1.0, x * 2.0 + 1.0);
  CheckSame(nd::relu(gx), nd::relu(x));
  CheckSame(nd::dot(gx, gw), nd::dot(x, w));
  CheckSame(nd::sum(gx, {{"axis", 1}}), nd::sum(x, {{"axis", 1}}));
  CheckSame(nd::softmax(gx, {{"axis", -1}}), nd::softmax(x, {{"axis", -1}}));
  CheckSame(gx.T(), x.T());
  // A repeated call reuses its compiled graph.
  const int64_t compiles = nd::GetKernelCacheStats().compiles;
  CheckSame(nd::relu(gx), nd::relu(x));
  CHECK(nd::GetKernelCacheStats().compiles == compiles);
  // out= on the GPU.
  nd::NDArray out = nd::zeros({4, 6}, gpu);
  nd::relu(gx, {}, &out);
  CheckSame(out, nd::relu(x));
  // BatchNorm in training mode updates its moving statistics in the caller's GPU arrays.
  const nd::NDArray gamma = nd::ones({6}), beta = nd::zeros({6});
  nd::NDArray mean = nd::zeros({6}), var = nd::ones({6});
  nd::NDArray gmean = mean.CopyTo(gpu), gvar = var.CopyTo(gpu);
  {
    const nd::autograd::TrainMode train;
    CheckSame(nd::BatchNorm({gx, gamma.CopyTo(gpu), beta.CopyTo(gpu), gmean, gvar}, {{"fix_gamma", false}}),
              nd::BatchNorm({x, gamma, beta, mean, var}, {{"fix_gamma", false}}), 1e-4);
  }
  CheckSame(gmean, mean);
  CheckSame(gvar, var);
  // Mixed contexts and recording are refused by name.
  CHECK_THROWS_WITH(gx + x, Catch::Contains("input 1 is on cpu(0), input 0 on gpu(0)"));
  CHECK_THROWS_WITH(gx + x.CopyTo(nd::Context::gpu(1)), Catch::Contains("input 1 is on gpu(1), input 0 on gpu(0)"));
}

TEST_CASE("autograd on GPU arrays: the tape's gradient compiled for the GPU, equal to the CPU's", "[ndarray][gpu]") {
  if (!testing::HaveNvrtc("autograd on GPU arrays")) return;
  const GpuArrays gpus;
  const nd::Context gpu = nd::Context::gpu(0);
  const nd::NDArray x = nd::array(Values(24, 0.25f), {4, 6});
  nd::NDArray w = nd::array(Values(18, -0.5f), {6, 3});
  nd::NDArray b = nd::array(Values(3, 0.1f), {3});
  const nd::NDArray gx = x.CopyTo(gpu);
  nd::NDArray gw = w.CopyTo(gpu), gb = b.CopyTo(gpu);
  const auto loss = [](const nd::NDArray& in, const nd::NDArray& weight, const nd::NDArray& bias) {
    return nd::sum(nd::relu(nd::broadcast_add(nd::dot(in, weight), bias)) * 2.0);
  };
  w.AttachGrad();
  b.AttachGrad("add");
  gw.AttachGrad();
  gb.AttachGrad("add");
  CHECK(gw.Grad().context() == gpu);
  for (int pass = 0; pass < 2; ++pass) {  // b's gradient adds up
    nd::NDArray y, gy;
    {
      const nd::autograd::Record record;
      y = loss(x, w, b);
      gy = loss(gx, gw, gb);
    }
    CheckSame(gy, y);
    y.Backward();
    gy.Backward();
    CheckSame(gw.Grad(), w.Grad());
    CheckSame(gb.Grad(), b.Grad());
  }
  // Writing into a recorded GPU result after recording gives it memory of its own: the
  // tape keeps the value Backward reads (exp's gradient is exp(x)).
  nd::NDArray gv = gx.CopyTo(gpu);
  gv.AttachGrad();
  nd::NDArray e, total;
  {
    const nd::autograd::Record record;
    e = nd::exp(gv);
    total = nd::sum(e);
  }
  e.Assign(0);
  nd::relu(gx, {}, &e);
  total.Backward();
  CheckSame(gv.Grad(), nd::exp(x), 1e-4);
  nd::NDArray z, gz;
  {
    const nd::autograd::Record record;
    z = nd::relu(nd::dot(x, w));
    gz = nd::relu(nd::dot(gx, gw));
  }
  const nd::NDArray head = nd::array(Values(12, 0.3f), {4, 3});
  CheckSame(nd::autograd::Grad({gz}, {gw}, {head.CopyTo(gpu)}).at(0), nd::autograd::Grad({z}, {w}, {head}).at(0));
  // A head gradient on another context than the tape's is refused by name.
  CHECK_THROWS_WITH(nd::autograd::Grad({gz}, {gw}, {head}), Catch::Contains("reads arrays on gpu(0) and on cpu(0)"));
}
