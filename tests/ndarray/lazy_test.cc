// Lazy mode (ndarray/lazy.h): deferred calls give the same bits as eager ones, run once
// per read as one compiled graph (results no handle holds are never written), report
// errors at the call, and keep the order of writes: Assign, out=, data<T>() and
// Backward run after what was deferred before them. Arrays pending in one thread are
// read correctly from another (the test runs under TSan with the concurrency tag).
#include "ndarray/lazy.h"

#include <algorithm>
#include <catch2/catch.hpp>
#include <functional>
#include <map>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "codegen/compiler.h"
#include "ndarray/autograd.h"
#include "ndarray/invoke.h"
#include "ndarray/ops_api.h"
#include "runtime/error.h"
#include "symbol/symbol.h"
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

TEST_CASE("a program that never reads keeps a bounded pending graph", "[ndarray][lazy]") {
  MemoryCache memory;
  const nd::lazy::ModeScope lazy(true);
  nd::lazy::Flush();
  nd::lazy::ResetStats();
  const nd::NDArray x = nd::arange(0, 4);
  for (int i = 0; i < 3000; ++i) nd::NDArray discarded = x * 2;
  // Every 1024 calls the graph is run first; nothing was held, so nothing ran.
  CHECK(nd::lazy::GetStats().skipped == 2);
  CHECK(nd::lazy::GetStats().flushes == 0);
  nd::NDArray kept = x + 1;
  CHECK(kept.tensor().ToDoubles() == std::vector<double>{1, 2, 3, 4});
}

TEST_CASE("a pending graph that fails leaves its results rethrowing; the thread goes on", "[ndarray][lazy]") {
  const nd::lazy::ModeScope lazy(true);
  nd::lazy::Flush();
  nd::SetCacheDir("/proc/kiln-no-such-cache");  // storing the compiled graph there fails
  nd::ClearKernelCache();
  const nd::NDArray failed = nd::exp(nd::arange(0, 3)) * 5;
  std::string first;
  try {
    failed.ToTensor();
  } catch (const Error& e) {
    first = e.what();
  }
  CHECK_FALSE(first.empty());
  CHECK_THROWS_WITH(failed.ToTensor(), first);  // the same error, not garbage
  nd::SetCacheDir("");
  const nd::NDArray next = nd::arange(0, 3) + 1;
  CHECK(next.tensor().ToDoubles() == std::vector<double>{1, 2, 3});
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

namespace {

// One call of a random program on the running value v (rows x cols) and the fixed
// operands b (1 x cols) and w (cols x 5).
struct Step {
  enum Kind { kUnary, kBinary, kDot, kSum } kind;
  std::string op;
};

nd::NDArray Call(const std::string& op, const std::vector<nd::NDArray>& inputs, const AttrMap& attrs) {
  return nd::Invoke(op, inputs, attrs);
}
Symbol Call(const std::string& op, const std::vector<Symbol>& inputs, const AttrMap& attrs) {
  return Symbol::Create(op, inputs, attrs);
}

// The program on either NDArrays or Symbols; `cols` tracks v's width.
template <typename T>
T RunProgram(const std::vector<Step>& steps, const T& a, const T& b, const T& w, int64_t cols, int64_t b_cols) {
  T v = a;
  for (const Step& step : steps) {
    switch (step.kind) {
      case Step::kUnary: v = Call(step.op, {v}, {}); break;
      case Step::kBinary: v = cols == b_cols ? Call(step.op, {v, b}, {}) : Call(step.op, {v, v}, {}); break;
      case Step::kDot:
        if (cols == b_cols) {
          v = Call("dot", {v, w}, {});
          cols = 5;
        } else {
          v = Call("_mul_scalar", {v}, {{"scalar", 0.5}});
        }
        break;
      case Step::kSum:
        v = Call("sum", {v}, {{"axis", 1}, {"keepdims", true}});
        cols = 1;
        break;
    }
  }
  return v;
}

}  // namespace

TEST_CASE("random programs: lazy, eager and a compiled graph give the same bits", "[ndarray][lazy]") {
  MemoryCache memory;
  std::mt19937_64 rng(2024);
  const std::vector<std::string> unary = {"relu", "exp", "tanh", "sigmoid", "abs", "negative", "square"};
  const std::vector<std::string> binary = {"broadcast_add", "broadcast_sub", "broadcast_mul", "broadcast_maximum"};
  for (int trial = 0; trial < 12; ++trial) {
    const int64_t rows = 1 + static_cast<int64_t>(rng() % 9), cols = 1 + static_cast<int64_t>(rng() % 17);
    const Tensor a = RandomTensor({rows, cols}, rng()), b = RandomTensor({1, cols}, rng()),
                 w = RandomTensor({cols, 5}, rng());
    std::vector<Step> steps;
    std::string names;
    const int length = 2 + static_cast<int>(rng() % 8);
    for (int s = 0; s < length; ++s) {
      const uint64_t pick = rng() % 10;
      if (pick < 5) {
        steps.push_back({Step::kUnary, unary[rng() % unary.size()]});
      } else if (pick < 8) {
        steps.push_back({Step::kBinary, binary[rng() % binary.size()]});
      } else {
        steps.push_back({pick == 8 ? Step::kDot : Step::kSum, ""});
      }
      names += (steps.back().op.empty() ? (pick == 8 ? "dot" : "sum") : steps.back().op) + " ";
    }
    INFO("trial " << trial << ": " << names << "on (" << rows << ", " << cols << ")");
    const auto program = [&] { return RunProgram(steps, nd::NDArray(a), nd::NDArray(b), nd::NDArray(w), cols, cols); };
    const Tensor eager = Run(false, program);
    CHECK(Run(true, program).BitwiseEquals(eager));
    // The same calls as a Symbol graph, compiled by the ordinary pipeline.
    const Symbol graph =
        RunProgram(steps, Symbol::Variable("a"), Symbol::Variable("b"), Symbol::Variable("w"), cols, cols);
    // Only the variables the program read (ToGraph lists them).
    const Graph compiled = graph.ToGraph();
    const std::map<std::string, Tensor> all = {{"a", a}, {"b", b}, {"w", w}};
    CompileOptions options;
    std::map<std::string, Tensor> inputs;
    for (const std::string& name : compiled.ListInputs()) {
      options.input_shapes[name] = all.at(name).shape();
      inputs[name] = all.at(name);
    }
    const auto executor = CompileJit(compiled, options);
    CHECK(executor->Run(inputs).at(0).BitwiseEquals(eager));
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
