// The NDArray API against MXNet 1.9.1's values (tests/data/mxnet/ndarray/golden.json,
// written by tools/golden/gen_ndarray_golden.py): the seed's snippets, autograd,
// views, persistence, the kernel cache and errors.
#include "ndarray/ndarray.h"

#include <catch2/catch.hpp>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "examples/ndarray_linear_regression.h"
#include "ndarray/autograd.h"
#include "ndarray/invoke.h"
#include "ndarray/lazy.h"
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

TEST_CASE("Backward releases the recorded graph unless retain_graph is set", "[ndarray]") {
  MemoryCache memory;
  nd::NDArray x = nd::arange(0, 3);
  x.AttachGrad();
  nd::NDArray y;
  {
    nd::autograd::Record record;
    y = nd::sum(x * x);
  }
  const std::weak_ptr<const nd::autograd::TapeNode> tape = y.chunk().producer;
  y.Backward(nd::NDArray(), /*retain_graph=*/true);
  y.Backward();  // the graph was kept for this one
  CHECK(x.Grad().tensor().ToDoubles() == std::vector<double>{0, 2, 4});
  CHECK(tape.expired());  // released: nothing else held the recorded calls
  CHECK_THROWS_WITH(y.Backward(), Catch::Contains("retain_graph"));
}

TEST_CASE("writes into recorded results keep the values Backward reads", "[ndarray]") {
  MemoryCache memory;
  nd::NDArray a = nd::array({0.5f, -1.0f, 2.0f}, {3});
  a.AttachGrad();
  nd::NDArray h, y;
  {
    nd::autograd::Record record;
    h = nd::tanh(a);
    y = nd::sum(h * h);
    // As MXNet: no in-place write into a recorded array while recording.
    CHECK_THROWS_WITH(nd::relu(a, {}, &h), Catch::Contains("recorded"));
  }
  std::vector<double> expected;
  for (const double v : a.tensor().ToDoubles())
    expected.push_back(2 * std::tanh(v) * (1 - std::tanh(v) * std::tanh(v)));
  h.Assign(7.0);  // after recording: h gets memory of its own, the tape keeps tanh(a)
  CHECK(h.tensor().ToDoubles() == std::vector<double>{7, 7, 7});
  y.Backward();
  const std::vector<double> grad = a.Grad().tensor().ToDoubles();
  for (size_t i = 0; i < grad.size(); ++i) CHECK(grad[i] == Approx(expected[i]).epsilon(1e-6));
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
  const nd::lazy::ModeScope eager(false);  // one kernel per call
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
  // No machine here has eight GPUs (ndarray_gpu_test runs arrays on emulated ones).
  CHECK_THROWS_WITH(nd::zeros({2}, nd::Context::gpu(7)), Catch::StartsWith("no CUDA device: "));
  CHECK_THROWS_WITH(nd::zeros({2}).CopyTo(nd::Context::gpu(7)), Catch::StartsWith("no CUDA device: "));
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

TEST_CASE("BatchNorm in training mode updates its moving statistics once", "[ndarray]") {
  MemoryCache memory;
  const json& c = Golden()["batchnorm_op"];
  const kiln::AttrMap attrs{{"fix_gamma", false}, {"eps", 1e-5}, {"momentum", 0.9}};
  const nd::NDArray x = FromGolden(c["x"]);
  nd::NDArray gamma = FromGolden(c["gamma"]);
  nd::NDArray moving_mean = FromGolden(c["moving_mean_in"]);
  nd::NDArray moving_var = FromGolden(c["moving_var_in"]);
  gamma.AttachGrad();
  nd::NDArray loss;
  {
    nd::autograd::Record record;
    const nd::NDArray out = nd::BatchNorm({x, gamma, FromGolden(c["beta"]), moving_mean, moving_var}, attrs);
    RequireMatches(out, c["out"]);
    loss = nd::sum(out * x);
  }
  RequireMatches(moving_mean, c["moving_mean"]);
  RequireMatches(moving_var, c["moving_var"]);
  // Backward recomputes the forward: the moving statistics are not updated again.
  loss.Backward();
  RequireMatches(moving_mean, c["moving_mean"]);
  RequireMatches(moving_var, c["moving_var"]);

  // Moving statistics that are a view at an unaligned offset are updated too.
  // (taken before recording: a slice taken while recording is a copy, as in MXNet).
  nd::NDArray storage = nd::zeros({5});
  nd::NDArray view = storage.Slice(1, 5);
  view.Assign(FromGolden(c["moving_mean_in"]));
  {
    nd::autograd::Record record;
    nd::BatchNorm({x, gamma, FromGolden(c["beta"]), view, FromGolden(c["moving_var_in"])}, attrs);
  }
  RequireMatches(storage.Slice(1, 5), c["moving_mean"]);
  // Predict mode leaves them alone.
  nd::BatchNorm({x, gamma, FromGolden(c["beta"]), moving_mean, moving_var}, attrs);
  RequireMatches(moving_mean, c["moving_mean"]);
}

namespace {

struct BatchNormResult {
  nd::NDArray y, moving_mean, moving_var;
};

// The seed's batch_norm, written with nd:: operators.
BatchNormResult batch_norm(const nd::NDArray& X, const nd::NDArray& gamma, const nd::NDArray& beta,
                           const nd::NDArray& moving_mean, const nd::NDArray& moving_var, double eps, double momentum) {
  if (!nd::autograd::IsTraining()) {
    const nd::NDArray X_hat = (X - moving_mean) / nd::sqrt(moving_var + eps);
    return {gamma * X_hat + beta, moving_mean, moving_var};
  }
  REQUIRE((X.ndim() == 2 || X.ndim() == 4));
  const kiln::AttrMap axes =
      X.ndim() == 2 ? kiln::AttrMap{{"axis", 0}} : kiln::AttrMap{{"axis", {0, 2, 3}}, {"keepdims", true}};
  const nd::NDArray mean = nd::mean(X, axes);
  const nd::NDArray var = nd::mean(nd::square(X - mean), axes);
  const nd::NDArray X_hat = (X - mean) / nd::sqrt(var + eps);
  return {gamma * X_hat + beta, momentum * moving_mean + (1.0 - momentum) * mean,
          momentum * moving_var + (1.0 - momentum) * var};
}

void CheckBatchNorm(const json& c, const Shape& stat_shape) {
  const nd::NDArray X = FromGolden(c["x"]);
  nd::NDArray gamma = FromGolden(c["gamma"]);
  nd::NDArray beta = FromGolden(c["beta"]);
  gamma.AttachGrad();
  beta.AttachGrad();
  BatchNormResult trained;
  nd::NDArray loss;
  {
    nd::autograd::Record record;
    trained = batch_norm(X, gamma, beta, nd::zeros(stat_shape), nd::ones(stat_shape), 1e-5, 0.9);
    loss = nd::sum(trained.y * X);
  }
  loss.Backward();
  RequireMatches(trained.y, c["train_y"]);
  RequireMatches(trained.moving_mean, c["moving_mean"]);
  RequireMatches(trained.moving_var, c["moving_var"]);
  RequireMatches(gamma.Grad(), c["gamma_grad"]);
  RequireMatches(beta.Grad(), c["beta_grad"]);
  const BatchNormResult tested = batch_norm(X, gamma, beta, trained.moving_mean, trained.moving_var, 1e-5, 0.9);
  RequireMatches(tested.y, c["test_y"]);
}

}  // namespace

TEST_CASE("the seed's batch_norm by hand, training and test mode", "[ndarray]") {
  MemoryCache memory;
  SECTION("4-d") {
    CheckBatchNorm(Golden()["batch_norm_4d"], {1, 3, 1, 1});
  }
  SECTION("2-d") {
    CheckBatchNorm(Golden()["batch_norm_2d"], {3});
  }
}

namespace {

// The seed's dropout by hand: keep with probability 1 - p, scaled by 1 / (1 - p).
nd::NDArray dropout(const nd::NDArray& X, double drop_prob) {
  const double keep_prob = 1 - drop_prob;
  if (keep_prob == 0) return nd::zeros(X.shape());
  const nd::NDArray mask = nd::random::uniform(0, 1, X.shape()) < keep_prob;
  return mask * X / keep_prob;
}

// The fraction of nonzero elements, and that every nonzero one equals `scale`.
double KeptFraction(const nd::NDArray& y, double scale) {
  int64_t kept = 0;
  for (const double v : y.tensor().ToDoubles()) {
    if (v == 0) continue;
    ++kept;
    REQUIRE(v == Approx(scale));
  }
  return static_cast<double>(kept) / static_cast<double>(y.size());
}

}  // namespace

TEST_CASE("the seed's dropout by hand keeps 1 - p, scaled by 1 / (1 - p)", "[ndarray]") {
  MemoryCache memory;
  nd::random::seed(3);
  const nd::NDArray x = nd::ones({100, 100});
  CHECK(KeptFraction(dropout(x, 0.3), 1 / 0.7) == Approx(0.7).margin(0.02));
  CHECK(KeptFraction(dropout(x, 0.0), 1) == 1);
  CHECK(KeptFraction(dropout(x, 1.0), 1) == 0);
}

TEST_CASE("Dropout draws a fresh mask per call, repeated by random::seed", "[ndarray]") {
  MemoryCache memory;
  const nd::NDArray x = nd::ones({50, 40});
  const double p = 0.4;
  // Outside training mode it is the identity.
  CHECK(nd::Dropout(x, {{"p", p}}).tensor().BitwiseEquals(x.tensor()));
  nd::random::seed(11);
  nd::NDArray first, second;
  {
    nd::autograd::TrainMode train;
    first = nd::Dropout(x, {{"p", p}});
    second = nd::Dropout(x, {{"p", p}});
  }
  CHECK_FALSE(first.tensor().BitwiseEquals(second.tensor()));
  CHECK(KeptFraction(first, 1 / (1 - p)) == Approx(1 - p).margin(0.03));
  CHECK(KeptFraction(second, 1 / (1 - p)) == Approx(1 - p).margin(0.03));
  nd::random::seed(11);
  {
    nd::autograd::TrainMode train;
    CHECK(nd::Dropout(x, {{"p", p}}).tensor().BitwiseEquals(first.tensor()));
    CHECK(nd::Dropout(x, {{"p", p}}).tensor().BitwiseEquals(second.tensor()));
  }
  nd::random::seed(12);
  {
    nd::autograd::TrainMode train;
    CHECK_FALSE(nd::Dropout(x, {{"p", p}}).tensor().BitwiseEquals(first.tensor()));
  }

  // The gradient is the call's own mask / (1 - p): with x of ones, the output itself.
  nd::NDArray data = nd::ones({50, 40});
  data.AttachGrad();
  for (int call = 0; call < 2; ++call) {
    nd::NDArray y, loss;
    {
      nd::autograd::Record record;
      y = nd::Dropout(data, {{"p", p}});
      loss = nd::sum(y);
    }
    loss.Backward();
    CHECK(data.Grad().tensor().ToDoubles() == y.tensor().ToDoubles());
  }
}

TEST_CASE("the seed's sgd loop trains a linear model as MXNet does", "[ndarray]") {
  MemoryCache memory;
  const json& c = Golden()["sgd"];
  const nd::NDArray features = FromGolden(c["features"]);
  const nd::NDArray labels = FromGolden(c["labels"]);
  nd::NDArray w = FromGolden(c["w0"]);
  nd::NDArray b = FromGolden(c["b0"]);
  w.AttachGrad();
  b.AttachGrad();
  for (int epoch = 0; epoch < 3; ++epoch) {
    for (int64_t i = 0; i < 40; i += 10) {
      const nd::NDArray X = features.Slice(i, i + 10);
      const nd::NDArray y = labels.Slice(i, i + 10);
      nd::NDArray l;
      {
        nd::autograd::Record record;
        l = nd::square(nd::dot(X, w) + b - y.Reshape({-1, 1})) / 2;
      }
      l.Backward();
      kiln::examples::sgd({w, b}, 0.1, 10);  // the seed's param[:] = param - lr * grad / batch
    }
    const double loss = nd::mean(nd::square(nd::dot(features, w) + b - labels) / 2).AsScalar<double>();
    CHECK(loss == Approx(c["losses"][epoch].get<double>()).epsilon(1e-4));
  }
  RequireMatches(w, c["w"]);
  RequireMatches(b, c["b"]);
}

TEST_CASE("the linear regression example recovers w and b", "[ndarray]") {
  MemoryCache memory;
  const kiln::examples::LinearRegressionResult result = kiln::examples::TrainLinearRegression();
  REQUIRE(result.epoch_losses.size() == 3);
  CHECK(result.epoch_losses.back() < result.epoch_losses.front());
  CHECK(result.w[0] == Approx(2).margin(0.01));
  CHECK(result.w[1] == Approx(-3.4).margin(0.01));
  CHECK(result.b == Approx(4.2).margin(0.01));
}

TEST_CASE("dispatch overhead of a cached small operator", "[ndarray][timing]") {
  MemoryCache memory;
  const nd::lazy::ModeScope eager(false);  // each call runs its kernel
  const nd::NDArray x = nd::arange(0, 10);
  const nd::NDArray y = nd::ones({10});
  nd::elemwise_add(x, y);  // compiles the kernel
  constexpr int kCalls = 10000;
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < kCalls; ++i) nd::elemwise_add(x, y);
  const std::chrono::duration<double, std::micro> elapsed = std::chrono::steady_clock::now() - start;
  // Reported, not asserted: timings depend on the machine.
  WARN("elemwise_add on 10 elements, cached: " << elapsed.count() / kCalls << " us per call over " << kCalls
                                               << " calls");
  // out= reuses the output buffer: the kernel writes into z's memory.
  nd::NDArray z = nd::zeros({10});
  const void* buffer = z.tensor().data();
  const auto start_out = std::chrono::steady_clock::now();
  for (int i = 0; i < kCalls; ++i) nd::elemwise_add(x, y, {}, &z);
  const std::chrono::duration<double, std::micro> elapsed_out = std::chrono::steady_clock::now() - start_out;
  CHECK(z.tensor().data() == buffer);
  CHECK(z.tensor().ToDoubles() == nd::elemwise_add(x, y).tensor().ToDoubles());
  WARN("elemwise_add on 10 elements, cached, out=: " << elapsed_out.count() / kCalls << " us per call");
}

TEST_CASE("repeated calls hit the per-thread table, which ClearKernelCache empties", "[ndarray]") {
  MemoryCache memory;
  const nd::lazy::ModeScope eager(false);  // one kernel per call
  nd::ClearKernelCache();
  const nd::NDArray x = nd::arange(0, 6).Reshape({2, 3});
  const std::vector<double> first = nd::_plus_scalar(x, {{"scalar", 2}}).tensor().ToDoubles();
  CHECK(nd::GetKernelCacheStats().compiles == 1);
  // Other attribute values, shapes or dtypes are other calls.
  CHECK(nd::_plus_scalar(x, {{"scalar", 3}}).tensor().ToDoubles()[0] == 3);
  CHECK(nd::_plus_scalar(x.Reshape({3, 2}), {{"scalar", 2}}).shape() == Shape{3, 2});
  CHECK(
      nd::_plus_scalar(nd::arange(0, 6, 1, nd::Context::cpu(), kiln::DType::kFloat64).Reshape({2, 3}), {{"scalar", 2}})
          .dtype() == kiln::DType::kFloat64);
  CHECK(nd::GetKernelCacheStats().compiles == 4);
  const int64_t hits = nd::GetKernelCacheStats().hits;
  CHECK(nd::_plus_scalar(x, {{"scalar", 2}}).tensor().ToDoubles() == first);
  CHECK(nd::GetKernelCacheStats().hits == hits + 1);
  CHECK(nd::GetKernelCacheStats().compiles == 4);
  nd::ClearKernelCache();
  CHECK(nd::_plus_scalar(x, {{"scalar", 2}}).tensor().ToDoubles() == first);
  CHECK(nd::GetKernelCacheStats().compiles == 1);
  CHECK(nd::GetKernelCacheStats().hits == 0);
  // A cached call still checks out=, and in-place (out= an input) is still right.
  nd::NDArray wrong = nd::zeros({3});
  CHECK_THROWS_AS(nd::_plus_scalar(x, {{"scalar", 2}}, &wrong), kiln::Error);
  nd::NDArray inplace = x.Detach().CopyTo(nd::Context::cpu());
  nd::_plus_scalar(inplace, {{"scalar", 2}}, &inplace);
  CHECK(inplace.tensor().ToDoubles() == first);
}
