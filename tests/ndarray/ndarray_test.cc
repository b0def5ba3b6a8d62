// The NDArray API against MXNet 1.9.1's values (tests/data/mxnet/ndarray/golden.json,
// written by tools/golden/gen_ndarray_golden.py): the seed's snippets, autograd,
// views, persistence, the kernel cache and errors.
#include "ndarray/ndarray.h"

#include <catch2/catch.hpp>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "ndarray/autograd.h"
#include "ndarray/invoke.h"
#include "ndarray/ops_api.h"
#include "runtime/error.h"
#include "runtime/npy.h"

namespace nd = kiln::nd;
using json = nlohmann::json;
using kiln::Shape;

namespace {

const json& Golden() {
  static const json doc = [] {
    std::ifstream in("tests/data/mxnet/ndarray/golden.json");
    REQUIRE(in.good());
    return json::parse(in);
  }();
  return doc;
}

// A golden entry as an array.
nd::NDArray FromGolden(const json& entry) {
  const std::vector<float> values(entry["values"].begin(), entry["values"].end());
  return nd::array(values, entry["shape"].get<Shape>());
}

// `array` equals the golden entry in shape and, to 1e-5, in value.
void RequireMatches(const nd::NDArray& array, const json& entry) {
  REQUIRE(array.shape() == entry["shape"].get<Shape>());
  const std::vector<double> actual = array.tensor().ToDoubles();
  const std::vector<double> expected = entry["values"].get<std::vector<double>>();
  for (size_t i = 0; i < expected.size(); ++i) {
    INFO("element " << i);
    REQUIRE(actual[i] == Approx(expected[i]).margin(1e-5));
  }
}

// Kernels in memory only, unless a test asks for the disk cache.
struct MemoryCache {
  MemoryCache() { nd::SetCacheDir(""); }
};

}  // namespace

TEST_CASE("2 * dot(x.T, x) and its gradient 4x", "[ndarray]") {
  MemoryCache memory;
  const json& c = Golden()["dot_grad"];
  nd::NDArray x = nd::arange(0, 4).Reshape({4, 1});
  RequireMatches(x, c["x"]);
  x.AttachGrad();
  nd::NDArray y;
  {
    nd::autograd::Record record;
    CHECK(nd::autograd::IsRecording());
    CHECK(nd::autograd::IsTraining());
    y = 2 * nd::dot(x.T(), x);
  }
  CHECK_FALSE(nd::autograd::IsRecording());
  y.Backward();
  RequireMatches(y, c["y"]);
  RequireMatches(x.Grad(), c["grad"]);
  // autograd::Grad gives the same without touching .Grad().
  x.Grad().Assign(0);
  nd::NDArray y2;
  {
    nd::autograd::Record record;
    y2 = 2 * nd::dot(x.T(), x);
  }
  const auto grads = nd::autograd::Grad({y2}, {x});
  RequireMatches(grads.at(0), c["grad"]);
  CHECK(x.Grad().tensor().ToDoubles() == std::vector<double>(4, 0.0));
}

TEST_CASE("the seed's convolution and pooling", "[ndarray]") {
  MemoryCache memory;
  const json& conv = Golden()["convolution"];
  const nd::NDArray out =
      nd::Convolution(FromGolden(conv["data"]), FromGolden(conv["weight"]), FromGolden(conv["bias"]),
                      {{"kernel", {2, 2}}, {"num_filter", 1}, {"stride", {2, 2}}, {"pad", {1, 1}}});
  RequireMatches(out, conv["out"]);

  const json& pool = Golden()["pooling"];
  const nd::NDArray data = nd::arange(0, 18).Reshape({1, 2, 3, 3});
  RequireMatches(data, pool["data"]);
  RequireMatches(nd::Pooling(data, {{"pool_type", "max"}, {"kernel", {2, 2}}, {"stride", {1, 1}}}), pool["max"]);
  RequireMatches(nd::Pooling(data, {{"pool_type", "avg"}, {"kernel", {2, 2}}, {"stride", {1, 1}}}), pool["avg"]);
}

TEST_CASE("a dense layer by hand: relu(dot(x, w) + b) and its gradients", "[ndarray]") {
  MemoryCache memory;
  const json& c = Golden()["dense"];
  const nd::NDArray x = FromGolden(c["x"]);
  nd::NDArray w = FromGolden(c["w"]);
  nd::NDArray b = FromGolden(c["b"]);
  w.AttachGrad();
  b.AttachGrad("write");
  nd::NDArray out;
  nd::NDArray loss;
  {
    nd::autograd::Record record;
    out = nd::relu(nd::dot(x, w) + b);
    loss = nd::sum(out);
  }
  loss.Backward();
  RequireMatches(out, c["out"]);
  RequireMatches(w.Grad(), c["w_grad"]);
  RequireMatches(b.Grad(), c["b_grad"]);

  // The same computation again reuses the compiled gradient graph.
  const auto before = nd::GetKernelCacheStats();
  {
    nd::autograd::Record record;
    loss = nd::sum(nd::relu(nd::dot(x, w) + b));
  }
  loss.Backward();
  CHECK(nd::GetKernelCacheStats().compiles == before.compiles);
  RequireMatches(w.Grad(), c["w_grad"]);
}

TEST_CASE("grad_req add accumulates over backward calls", "[ndarray]") {
  MemoryCache memory;
  const json& c = Golden()["grad_add"];
  nd::NDArray x = FromGolden(c["x"]);
  x.AttachGrad(nd::GradReq::kAdd);
  for (int i = 0; i < 2; ++i) {
    nd::NDArray y;
    {
      nd::autograd::Record record;
      y = nd::sum(x * x);
    }
    y.Backward();
  }
  RequireMatches(x.Grad(), c["grad"]);
}

TEST_CASE("training and predict mode scopes", "[ndarray]") {
  CHECK_FALSE(nd::autograd::IsTraining());
  {
    nd::autograd::Record record(/*train_mode=*/false);
    CHECK(nd::autograd::IsRecording());
    CHECK_FALSE(nd::autograd::IsTraining());
    {
      nd::autograd::TrainMode train;
      CHECK(nd::autograd::IsTraining());
      nd::autograd::PredictMode predict;
      CHECK_FALSE(nd::autograd::IsTraining());
    }
    nd::autograd::Pause pause;
    CHECK_FALSE(nd::autograd::IsRecording());
  }
  CHECK_FALSE(nd::autograd::IsRecording());
}

TEST_CASE("broadcasting arithmetic and comparisons as MXNet", "[ndarray]") {
  MemoryCache memory;
  const json& c = Golden()["broadcast"];
  const nd::NDArray a = FromGolden(c["a"]);
  const nd::NDArray b = FromGolden(c["b"]);
  RequireMatches(a + b, c["add"]);
  RequireMatches(a - b, c["sub"]);
  RequireMatches(a * b, c["mul"]);
  RequireMatches(a / b, c["div"]);
  RequireMatches(2 - a * 3 + 1 / (a + 1), c["scalar"]);
  RequireMatches(-a, c["neg"]);
  RequireMatches(a > b, c["gt"]);
  RequireMatches(a == b, c["eq"]);
  RequireMatches(a <= b, c["le"]);
  RequireMatches(a != b, c["ne"]);
  CHECK((a >= 3.0).tensor().ToDoubles() == std::vector<double>{0, 0, 0, 1, 1, 1});
}

TEST_CASE("indexing, slicing and assignment share memory", "[ndarray]") {
  MemoryCache memory;
  nd::NDArray x = nd::arange(0, 6).Reshape({3, 2});
  nd::NDArray row = x[1];
  CHECK(row.shape() == Shape{2});
  CHECK(row.tensor().ToDoubles() == std::vector<double>{2, 3});
  row.Assign(7);
  CHECK(x.tensor().ToDoubles() == std::vector<double>{0, 1, 7, 7, 4, 5});
  nd::NDArray rows = x.Slice(1, 3);
  CHECK(rows.shape() == Shape{2, 2});
  rows.Assign(nd::array({9, 8}, {2}));  // broadcast, as x[1:3] = [9, 8]
  CHECK(x.tensor().ToDoubles() == std::vector<double>{0, 1, 9, 8, 9, 8});
  x[-1].Assign(nd::array({1, 2}, {2}));
  CHECK(x.tensor().ToDoubles() == std::vector<double>{0, 1, 9, 8, 1, 2});
  // A copy shares the data; CopyTo does not.
  nd::NDArray alias = x;
  nd::NDArray copy = x.CopyTo(nd::Context::cpu());
  x.Assign(0);
  CHECK(alias.tensor().ToDoubles() == std::vector<double>(6, 0.0));
  CHECK(copy.tensor().ToDoubles() == std::vector<double>{0, 1, 9, 8, 1, 2});
  copy.CopyTo(x);
  CHECK_THROWS_AS(x[2].AsScalar<float>(), kiln::Error);  // a row of two: not a scalar
}

TEST_CASE("creation, scalars, data access and random draws", "[ndarray]") {
  MemoryCache memory;
  CHECK(nd::zeros({2, 3}).tensor().ToDoubles() == std::vector<double>(6, 0.0));
  CHECK(nd::ones({2}).tensor().ToDoubles() == std::vector<double>{1, 1});
  CHECK(nd::full({2}, 2.5).tensor().ToDoubles() == std::vector<double>{2.5, 2.5});
  CHECK(nd::arange(1, 2, 0.25).tensor().ToDoubles() == std::vector<double>{1, 1.25, 1.5, 1.75});
  nd::NDArray s = nd::sum(nd::arange(0, 5));
  CHECK(s.AsScalar<double>() == 10);
  nd::NDArray x = nd::zeros({3}, nd::Context::cpu(), kiln::DType::kInt32);
  x.data<int32_t>()[1] = 5;
  CHECK(x.ToTensor().ToDoubles() == std::vector<double>{0, 5, 0});
  CHECK_THROWS_AS(x.data<float>(), kiln::Error);
  CHECK(x.AsInContext(nd::Context::cpu()).tensor().data() == x.tensor().data());

  const nd::NDArray u1 = nd::random::uniform(-1, 1, {1000}, 42);
  const nd::NDArray u2 = nd::random::uniform(-1, 1, {1000}, 42);
  CHECK(u1.tensor().BitwiseEquals(u2.tensor()));
  double mean = 0;
  for (double v : u1.tensor().ToDoubles()) {
    REQUIRE(v >= -1);
    REQUIRE(v < 1);
    mean += v / 1000;
  }
  CHECK(std::abs(mean) < 0.1);
  nd::random::seed(7);
  const nd::NDArray n1 = nd::random::normal(2, 0.5, {2000});
  nd::random::seed(7);
  const nd::NDArray n2 = nd::random::normal(2, 0.5, {2000});
  CHECK(n1.tensor().BitwiseEquals(n2.tensor()));
  CHECK(nd::mean(n1).AsScalar<double>() == Approx(2).margin(0.05));
}

TEST_CASE("out= writes into an existing array", "[ndarray]") {
  MemoryCache memory;
  const nd::NDArray x = nd::array({1, 2, 3}, {3});
  const nd::NDArray y = nd::array({10, 20, 30}, {3});
  nd::NDArray z = nd::zeros({3});
  const void* before = z.tensor().data();
  nd::elemwise_add(x, y, {}, &z);
  CHECK(z.tensor().data() == before);
  CHECK(z.tensor().ToDoubles() == std::vector<double>{11, 22, 33});
  nd::NDArray wrong = nd::zeros({2});
  CHECK_THROWS_AS(nd::elemwise_add(x, y, {}, &wrong), kiln::Error);
  // Generic invocation by name.
  CHECK(nd::Invoke("_mul_scalar", {x}, {{"scalar", 2}}).tensor().ToDoubles() == std::vector<double>{2, 4, 6});
}

TEST_CASE("save and load in MXNet's format", "[ndarray]") {
  MemoryCache memory;
  const std::string dir = std::getenv("TEST_TMPDIR") ? std::getenv("TEST_TMPDIR") : "/tmp";
  const nd::NDArray a = nd::arange(0, 6).Reshape({2, 3});
  const nd::NDArray b = nd::arange(0, 3, 1, nd::Context::cpu(), kiln::DType::kInt32);
  nd::Save(dir + "/list.params", std::vector<nd::NDArray>{a, b});
  const nd::Loaded list = nd::Load(dir + "/list.params");
  REQUIRE(list.list.size() == 2);
  CHECK(list.named.empty());
  CHECK(list.list[0].tensor().BitwiseEquals(a.tensor()));
  CHECK(list.list[1].tensor().BitwiseEquals(b.tensor()));
  nd::Save(dir + "/dict.params", std::map<std::string, nd::NDArray>{{"a", a}, {"b", b}});
  const nd::Loaded dict = nd::Load(dir + "/dict.params");
  REQUIRE(dict.named.size() == 2);
  CHECK(dict.named.at("b").tensor().BitwiseEquals(b.tensor()));

  // Written by MXNet 1.9.1 (tools/mxnet/gen_params_testdata.py), values beside it as .npy.
  const nd::Loaded mxnet = nd::Load("tests/data/mxnet/list.params");
  REQUIRE(mxnet.list.size() == 2);
  for (size_t i = 0; i < 2; ++i) {
    const kiln::Tensor expected = kiln::LoadNpy("tests/data/mxnet/list/" + std::to_string(i) + ".npy");
    CHECK(mxnet.list[i].tensor().BitwiseEquals(expected));
  }
}

TEST_CASE("the kernel cache compiles each kernel once", "[ndarray]") {
  MemoryCache memory;
  nd::ClearKernelCache();
  const nd::NDArray x = nd::arange(0, 12).Reshape({3, 4});
  const nd::NDArray first = nd::relu(x - 5);
  const auto after_first = nd::GetKernelCacheStats();
  CHECK(after_first.compiles == 2);
  const nd::NDArray second = nd::relu(nd::arange(5, 17).Reshape({3, 4}) - 5);
  const auto after_second = nd::GetKernelCacheStats();
  CHECK(after_second.compiles == 2);
  CHECK(after_second.hits == after_first.hits + 2);
  // Another shape (two kernels) or other attributes (one: relu's is cached) compile again.
  nd::relu(nd::arange(0, 5) - 5);
  nd::relu(x - 6);
  CHECK(nd::GetKernelCacheStats().compiles == 5);

  // With a cache directory, a kernel compiled before is loaded from disk.
  const char* tmp = std::getenv("TEST_TMPDIR");
  nd::SetCacheDir(std::string(tmp ? tmp : "/tmp") + "/kiln-nd-cache");
  nd::ClearKernelCache();
  nd::sigmoid(x);
  nd::ClearKernelCache();
  nd::sigmoid(x);
  CHECK(nd::GetKernelCacheStats().disk_hits == 1);
  CHECK(nd::GetKernelCacheStats().compiles == 0);
  nd::SetCacheDir("");
}

TEST_CASE("errors name the operator, the argument and the shapes", "[ndarray]") {
  MemoryCache memory;
  const nd::NDArray data = nd::zeros({1, 1, 3, 3});
  const nd::NDArray weight = nd::zeros({1, 1, 3, 3});
  const nd::NDArray bias = nd::zeros({1});
  try {
    nd::Convolution(data, weight, bias, {{"kernel", {2, 2}}, {"num_filter", 1}});
    FAIL("no error");
  } catch (const kiln::Error& e) {
    const std::string message = e.what();
    INFO(message);
    CHECK(message.find("Convolution") != std::string::npos);
    CHECK(message.find("weight") != std::string::npos);
    CHECK(message.find("(1,1,2,2)") != std::string::npos);
    CHECK(message.find("(1,1,3,3)") != std::string::npos);
  }
  try {
    nd::dot(nd::zeros({2, 3}), nd::zeros({2, 3}));
    FAIL("no error");
  } catch (const kiln::Error& e) {
    INFO(e.what());
    CHECK(std::string(e.what()).find("dot") != std::string::npos);
    CHECK(std::string(e.what()).find("(2,3)") != std::string::npos);
  }
  CHECK_THROWS_WITH(nd::zeros({2}, nd::Context::gpu(0)), "no CUDA backend in this build: gpu(0)");
  CHECK_THROWS_WITH(nd::zeros({2}).CopyTo(nd::Context::gpu(1)), "no CUDA backend in this build: gpu(1)");
  CHECK_THROWS_AS(nd::Invoke("no_such_op", {data}), kiln::Error);
  CHECK_THROWS_AS(nd::Invoke("elemwise_add", {data}), kiln::Error);
}

TEST_CASE("BatchNorm runs with batch statistics in training mode only", "[ndarray]") {
  MemoryCache memory;
  const nd::NDArray data = nd::arange(0, 8).Reshape({4, 2});
  const nd::NDArray gamma = nd::ones({2});
  const nd::NDArray beta = nd::zeros({2});
  const nd::NDArray moving_mean = nd::zeros({2});
  const nd::NDArray moving_var = nd::ones({2});
  const std::vector<nd::NDArray> inputs{data, gamma, beta, moving_mean, moving_var};
  const kiln::AttrMap attrs{{"fix_gamma", false}, {"eps", 1e-5}};
  // Inference: (x - 0) / sqrt(1 + eps).
  const std::vector<double> predicted = nd::BatchNorm(inputs, attrs).tensor().ToDoubles();
  CHECK(predicted[7] == Approx(7 / std::sqrt(1 + 1e-5)));
  nd::NDArray trained;
  {
    nd::autograd::Record record;  // training mode: the batch's mean and variance
    trained = nd::BatchNorm(inputs, attrs);
  }
  // Column 1 is 1, 3, 5, 7: mean 4, variance 5.
  CHECK(trained.tensor().ToDoubles()[7] == Approx(3 / std::sqrt(5 + 1e-5)));
}
