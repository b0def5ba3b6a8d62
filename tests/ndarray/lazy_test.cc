// Lazy mode (ndarray/lazy.h): deferred calls give the same bits as eager ones, run once
// per read as one compiled graph (results no handle holds are never written), report
// errors at the call, and keep the order of writes: Assign, out=, data<T>() and
// Backward run after what was deferred before them. Arrays pending in one thread are
// read correctly from another (the test runs under TSan with the concurrency tag).
#include "ndarray/lazy.h"

#include <catch2/catch.hpp>
#include <functional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "ndarray/autograd.h"
#include "ndarray/invoke.h"
#include "ndarray/ops_api.h"
#include "runtime/error.h"
#include "tests/op_test_util.h"

using namespace kiln;
using kiln::testing::RandomTensor;

namespace {

struct MemoryCache {
  MemoryCache() { nd::SetCacheDir(""); }
  ~MemoryCache() { nd::SetCacheDir(""); }
};

// The seed's hand-written batch normalization (training mode, NCHW), returning the output.
nd::NDArray BatchNorm(const nd::NDArray& x, const nd::NDArray& gamma, const nd::NDArray& beta, double eps) {
  const nd::NDArray mean = nd::mean(x, {{"axis", std::vector<int64_t>{0, 2, 3}}, {"keepdims", true}});
  const nd::NDArray centered = nd::broadcast_sub(x, mean);
  const nd::NDArray variance =
      nd::mean(centered * centered, {{"axis", std::vector<int64_t>{0, 2, 3}}, {"keepdims", true}});
  const nd::NDArray normalized = nd::broadcast_div(centered, nd::sqrt(variance + eps));
  return nd::broadcast_add(nd::broadcast_mul(normalized, gamma), beta);
}

Tensor Run(bool lazy, const std::function<nd::NDArray()>& program) {
  const nd::lazy::ModeScope mode(lazy);
  return program().ToTensor();
}

}  // namespace

TEST_CASE("a deferred program gives the eager bits, computed once at the read", "[ndarray][lazy]") {
  MemoryCache memory;
  const nd::NDArray x(RandomTensor({4, 3, 5, 6}, 1));
  const nd::NDArray gamma(RandomTensor({1, 3, 1, 1}, 2));
  const nd::NDArray beta(RandomTensor({1, 3, 1, 1}, 3));
  const auto program = [&] { return nd::relu(BatchNorm(x, gamma, beta, 1e-5)); };
  const Tensor eager = Run(false, program);

  const nd::lazy::ModeScope lazy(true);
  nd::lazy::ResetStats();
  const nd::NDArray y = program();
  CHECK(y.shape() == Shape{4, 3, 5, 6});  // known at the call
  CHECK(nd::lazy::GetStats().deferred == 10);
  CHECK(nd::lazy::GetStats().flushes == 0);
  CHECK(y.ToTensor().BitwiseEquals(eager));
  CHECK(nd::lazy::GetStats().flushes == 1);
  // Read again: nothing runs.
  CHECK(y.ToTensor().BitwiseEquals(eager));
  CHECK(y.Reshape({360}).tensor().BitwiseEquals(eager.Reshaped({360})));
  CHECK(nd::lazy::GetStats().flushes == 1);
}

TEST_CASE("results no handle holds are dropped; held intermediates are written", "[ndarray][lazy]") {
  MemoryCache memory;
  const nd::lazy::ModeScope lazy(true);
  const nd::NDArray x = nd::arange(0, 8);
  nd::lazy::ResetStats();
  { nd::NDArray unused = nd::exp(x) * 3; }
  nd::lazy::Flush();
  CHECK(nd::lazy::GetStats().skipped == 1);
  CHECK(nd::lazy::GetStats().flushes == 0);
  const nd::NDArray doubled = x * 2;
  const nd::NDArray result = nd::sum(doubled + 1);
  CHECK(result.AsScalar<double>() == 64.0);  // 2 * 28 + 8
  CHECK(doubled.tensor().ToDoubles() == std::vector<double>{0, 2, 4, 6, 8, 10, 12, 14});
}

TEST_CASE("a deferred call reports shape errors where it is made", "[ndarray][lazy]") {
  const nd::lazy::ModeScope lazy(true);
  const nd::NDArray a = nd::ones({2, 3});
  const nd::NDArray b = nd::ones({4, 5});
  CHECK_THROWS_WITH(nd::elemwise_add(a, b), Catch::Contains("elemwise_add") && Catch::Contains("(4,5)"));
  CHECK_THROWS_WITH(nd::dot(a, b), Catch::Contains("dot"));
}

TEST_CASE("writes run after the deferred calls that read the old values", "[ndarray][lazy]") {
  MemoryCache memory;
  const nd::lazy::ModeScope lazy(true);
  nd::NDArray x = nd::arange(0, 4);
  const nd::NDArray before_assign = x + 1;
  x.Assign(10.0);
  CHECK(before_assign.tensor().ToDoubles() == std::vector<double>{1, 2, 3, 4});

  const nd::NDArray before_out = x * 2;
  nd::NDArray source = nd::ones({4});
  nd::relu(source, {}, &x);  // out=: eager, after what was deferred
  CHECK(before_out.tensor().ToDoubles() == std::vector<double>{20, 20, 20, 20});
  CHECK(x.tensor().ToDoubles() == std::vector<double>{1, 1, 1, 1});

  const nd::NDArray before_write = x - 1;
  x.data<float>()[0] = 7;
  CHECK(before_write.tensor().ToDoubles() == std::vector<double>{0, 0, 0, 0});
  CHECK(x.tensor().ToDoubles()[0] == 7);

  // An SGD step reads the gradient the next Backward overwrites.
  nd::NDArray w = nd::ones({3});
  w.AttachGrad();
  {
    nd::autograd::Record record;
    nd::sum(w * w).Backward();
  }
  const nd::NDArray updated = w - w.Grad() * 0.5;  // deferred: 1 - 2 * 0.5
  {
    nd::autograd::Record record;
    nd::sum(w * w * w).Backward();
  }
  CHECK(updated.tensor().ToDoubles() == std::vector<double>{0, 0, 0});
  CHECK(w.Grad().tensor().ToDoubles() == std::vector<double>{3, 3, 3});
}

TEST_CASE("random programs: lazy and eager give the same bits", "[ndarray][lazy]") {
  MemoryCache memory;
  std::mt19937_64 rng(2024);
  const std::vector<std::string> unary = {"relu", "exp", "tanh", "sigmoid", "abs", "negative", "square"};
  const std::vector<std::string> binary = {"broadcast_add", "broadcast_sub", "broadcast_mul", "broadcast_maximum"};
  for (int trial = 0; trial < 12; ++trial) {
    const int64_t rows = 1 + static_cast<int64_t>(rng() % 9), cols = 1 + static_cast<int64_t>(rng() % 17);
    const nd::NDArray a(RandomTensor({rows, cols}, rng()));
    const nd::NDArray b(RandomTensor({1, cols}, rng()));
    const nd::NDArray w(RandomTensor({cols, 5}, rng()));
    std::vector<std::function<nd::NDArray(const nd::NDArray&)>> steps;
    std::string names;
    const int length = 2 + static_cast<int>(rng() % 8);
    for (int s = 0; s < length; ++s) {
      const uint64_t pick = rng() % 10;
      if (pick < 5) {
        const std::string op = unary[rng() % unary.size()];
        names += op + " ";
        steps.push_back([op](const nd::NDArray& v) { return nd::Invoke(op, {v}); });
      } else if (pick < 8) {
        const std::string op = binary[rng() % binary.size()];
        names += op + " ";
        steps.push_back([op, &b](const nd::NDArray& v) {
          return v.shape()[1] == b.shape()[1] ? nd::Invoke(op, {v, b}) : nd::Invoke(op, {v, v});
        });
      } else if (pick == 8) {
        names += "dot ";
        steps.push_back([&w](const nd::NDArray& v) { return v.shape()[1] == w.shape()[0] ? nd::dot(v, w) : v * 0.5; });
      } else {
        names += "sum ";
        steps.push_back([](const nd::NDArray& v) { return nd::sum(v, {{"axis", 1}, {"keepdims", true}}); });
      }
    }
    const auto program = [&] {
      nd::NDArray v = a;
      for (const auto& step : steps) v = step(v);
      return v;
    };
    INFO("trial " << trial << ": " << names << "on (" << rows << ", " << cols << ")");
    CHECK(Run(true, program).BitwiseEquals(Run(false, program)));
  }
}

TEST_CASE("an array deferred on one thread is read on another", "[ndarray][lazy][concurrency]") {
  MemoryCache memory;
  const nd::lazy::ModeScope lazy(true);
  nd::NDArray pending;
  std::thread producer([&] { pending = nd::relu(nd::arange(-4, 4)) * 2; });
  producer.join();
  std::vector<double> seen;
  std::thread consumer([&] { seen = (pending + 1).tensor().ToDoubles(); });
  consumer.join();
  CHECK(seen == std::vector<double>{1, 1, 1, 1, 1, 3, 5, 7});
}

TEST_CASE("deferred views, several outputs and float64 agree with eager execution", "[ndarray][lazy]") {
  MemoryCache memory;
  const nd::NDArray x(RandomTensor({4, 6}, 31));
  const nd::NDArray d(RandomTensor({3, 5}, 32, -1, 1, DType::kFloat64));
  const auto program = [&] {
    const nd::NDArray flat = nd::Flatten(nd::Reshape(x * 2, {{"shape", std::vector<int64_t>{2, 2, 6}}}));
    const std::vector<nd::NDArray> halves = nd::InvokeAll("split", {flat}, {{"num_outputs", 2}, {"axis", 1}});
    const nd::NDArray wide = nd::sum(nd::exp(d), {{"axis", 0}});
    return nd::broadcast_add(halves[1] - halves[0], nd::Cast(nd::sum(wide), {{"dtype", "float32"}}));
  };
  CHECK(Run(true, program).BitwiseEquals(Run(false, program)));
}
