// The fused optimizer updates (ops/optimizer.cc) against MXNet 1.9.1's operators, on the
// cases tools/golden/gen_optimizer_golden.py recorded in tests/data/mxnet/optimizer_ops:
// the reference against MXNet, the lowered kernel (kir interpreter) against the
// reference bit for bit, the JIT-compiled graph against the reference; and their shape
// and dtype errors.
#include <catch2/catch.hpp>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "codegen/compiler.h"
#include "graph/op.h"
#include "runtime/error.h"
#include "runtime/npy.h"
#include "symbol/symbol.h"
#include "tests/lower_test_util.h"
#include "tests/op_test_util.h"

using namespace kiln;
using namespace kiln::testing;
using json = nlohmann::json;

namespace {

const std::string kDataDir = "tests/data/mxnet/optimizer_ops/";

const std::vector<std::string> kOps = {"sgd_update",   "sgd_mom_update", "nag_mom_update",    "adam_update",
                                       "adamw_update", "rmsprop_update", "rmspropalex_update"};

struct Case {
  std::string name;
  std::string op;
  std::string desc;
  AttrMap attrs;
  std::vector<Tensor> inputs;
  std::vector<Tensor> expected;  // MXNet's
};

std::vector<Case> LoadCases() {
  std::ifstream in(kDataDir + "index.json");
  REQUIRE(in);
  const json index = json::parse(in);
  std::vector<Case> cases;
  for (const json& c : index["cases"]) {
    Case loaded{c["name"], c["op"], c["desc"], {}, {}, {}};
    for (const auto& [key, value] : c["attrs"].items()) loaded.attrs.emplace_back(key, value.get<double>());
    const std::string folder = kDataDir + loaded.name + "/";
    for (const json& input : c["inputs"])
      loaded.inputs.push_back(LoadNpy(folder + "in_" + input.get<std::string>() + ".npy"));
    for (const json& output : c["outputs"]) {
      loaded.expected.push_back(LoadNpy(folder + "out_" + output.get<std::string>() + ".npy"));
    }
    cases.push_back(std::move(loaded));
  }
  return cases;
}

const std::vector<Case>& Cases() {
  static const std::vector<Case> cases = LoadCases();
  return cases;
}

std::vector<Tensor> Clones(const std::vector<Tensor>& tensors) {
  std::vector<Tensor> copies;
  for (const Tensor& t : tensors) copies.push_back(t.Clone());
  return copies;
}

// The inputs of an update of `op` on (3, 4): random weight and grad, states in their
// valid ranges, lr (and eta).
std::vector<Tensor> UpdateInputs(const std::string& op, DType dtype = DType::kFloat32) {
  const OpDef& def = OpRegistry::Global().Get(op);
  const auto names = def.InputNames(ParseAttrs(op, {}));
  std::vector<Tensor> inputs;
  uint64_t seed = 100;
  for (const std::string& name : names) {
    if (name == "lr" || name == "eta") {
      inputs.push_back(Values({1}, {name == "lr" ? 0.05 : 0.5}, dtype));
    } else {
      const bool non_negative = name == "var" || name == "n";
      inputs.push_back(RandomTensor({3, 4}, ++seed, non_negative ? 1.0 : -1.0, 2.0, dtype));
    }
  }
  return inputs;
}

}  // namespace

TEST_CASE("the recorded cases cover every optimizer update", "[optimizer_ops]") {
  std::set<std::string> ops;
  for (const Case& c : Cases()) ops.insert(c.op);
  CHECK(ops == std::set<std::string>(kOps.begin(), kOps.end()));
}

TEST_CASE("optimizer updates: the reference matches MXNet 1.9.1", "[optimizer_ops][mxnet]") {
  for (const Case& c : Cases()) {
    INFO(c.name << " (" << c.op << ", " << c.desc << ")");
    const std::vector<Tensor> before = Clones(c.inputs);
    const std::vector<Tensor> got = RunOp(c.op, c.inputs, c.attrs);
    REQUIRE(got.size() == c.expected.size());
    for (size_t k = 0; k < got.size(); ++k) {
      INFO("output " << k);
      KILN_CHECK_CLOSE(got[k], c.expected[k], 1e-6, 0.0);
    }
    // Functional: the inputs are left as they were.
    for (size_t k = 0; k < before.size(); ++k) CHECK(c.inputs[k].BitwiseEquals(before[k]));
  }
}

TEST_CASE("optimizer updates: the lowered kernel equals the reference bit for bit", "[optimizer_ops][lower]") {
  for (const Case& c : Cases()) {
    INFO(c.name << " (" << c.op << ", " << c.desc << ")");
    const std::vector<Tensor> expected = RunOp(c.op, c.inputs, c.attrs);
    const std::vector<Tensor> got = RunLowered(c.op, c.inputs, c.attrs);
    REQUIRE(got.size() == expected.size());
    for (size_t k = 0; k < got.size(); ++k) {
      INFO("output " << k);
      CHECK(got[k].BitwiseEquals(expected[k]));
    }
  }
}

TEST_CASE("optimizer updates: JIT-compiled graphs match the reference", "[optimizer_ops][jit]") {
  // Every case in one graph, compiled once; LLVM may contract a * b + c into one fused
  // multiply-add, so agreement is to a few ulps rather than bitwise.
  std::vector<Symbol> outputs;
  std::map<std::string, Tensor> feeds;
  CompileOptions options;
  for (const Case& c : Cases()) {
    const auto names = OpRegistry::Global().Get(c.op).InputNames(ParseAttrs(c.op, c.attrs));
    std::vector<Symbol> inputs;
    for (size_t i = 0; i < c.inputs.size(); ++i) {
      const std::string name = c.name + "_" + names[i];
      inputs.push_back(Symbol::Variable(name, c.inputs[i].shape(), c.inputs[i].dtype()));
      options.input_shapes[name] = c.inputs[i].shape();
      options.input_types[name] = c.inputs[i].dtype();
      feeds[name] = c.inputs[i];
    }
    outputs.push_back(Symbol::Create(c.op, inputs, c.attrs, c.name));
  }
  const auto executor = CompileJit(Symbol::Group(outputs).ToGraph(), options);
  const std::vector<Tensor> got = executor->Run(feeds);
  size_t next = 0;
  for (const Case& c : Cases()) {
    INFO(c.name << " (" << c.op << ", " << c.desc << ")");
    for (const Tensor& expected : RunOp(c.op, c.inputs, c.attrs)) {
      REQUIRE(next < got.size());
      const bool f64 = expected.dtype() == DType::kFloat64;
      KILN_CHECK_CLOSE(got[next++], expected, f64 ? 1e-12 : 1e-6, f64 ? 1e-15 : 1e-7);
    }
  }
  CHECK(next == got.size());
}

TEST_CASE("optimizer updates between other kernels", "[optimizer_ops][jit]") {
  // The weight and momentum come from kernels and die at the update, whose outputs feed
  // further kernels: were the update to take its inputs' storage, the momentum (stored
  // after the weight) would read the updated weight for its weight decay.
  const Symbol w = Symbol::Variable("w", Shape{1031}), g = Symbol::Variable("g", Shape{1031});
  const Symbol mom = Symbol::Variable("mom", Shape{1031}), lr = Symbol::Variable("lr", Shape{1});
  const AttrMap attrs = {{"momentum", 0.9}, {"wd", 0.01}};
  const Symbol update = Symbol::Create("sgd_mom_update", {w * 2.0, g, mom * 0.5, lr}, attrs, "update");
  const auto executor = CompileJit(Symbol::Group({update[0] + 1.0, update[1] + 1.0}).ToGraph(), CompileOptions());

  const Tensor w0 = RandomTensor({1031}, 1), g0 = RandomTensor({1031}, 2), mom0 = RandomTensor({1031}, 3);
  const Tensor rate = Values({1}, {0.1});
  const std::vector<Tensor> got = executor->Run({{"w", w0}, {"g", g0}, {"mom", mom0}, {"lr", rate}});
  const auto scaled = [](const Tensor& x, double s) { return RunOp("_mul_scalar", {x}, {{"scalar", s}})[0]; };
  const std::vector<Tensor> updated = RunOp("sgd_mom_update", {scaled(w0, 2.0), g0, scaled(mom0, 0.5), rate}, attrs);
  REQUIRE(got.size() == 2);
  for (size_t k = 0; k < 2; ++k) {
    KILN_CHECK_CLOSE(got[k], RunOp("_plus_scalar", {updated[k]}, {{"scalar", 1.0}})[0], 1e-6, 1e-6);
  }
}

TEST_CASE("optimizer updates: every input and output has the weight's shape; rates one element",
          "[optimizer_ops][shape]") {
  CHECK(InferOpShapes("adam_update", {{3, 4}, {3, 4}, {3, 4}, {3, 4}, {1}}) ==
        std::vector<Shape>{{3, 4}, {3, 4}, {3, 4}});
  // A rate of any single-element shape is accepted; an unknown one is (1).
  CHECK_NOTHROW(InferOpShapes("sgd_update", {{5}, {5}, {}}));
  const auto slots = InferShapeSlots(
      "adamw_update", {Shape{2, 3}, std::nullopt, std::nullopt, std::nullopt, std::nullopt, std::nullopt});
  CHECK(slots[1] == Shape{2, 3});
  CHECK(slots[4] == Shape{1});
  CHECK(slots[5] == Shape{1});
  // The weight's shape from a state's, when the weight's is unknown.
  CHECK(InferShapeSlots("sgd_mom_update", {std::nullopt, std::nullopt, Shape{7}, Shape{1}})[0] == Shape{7});

  CHECK_THROWS_WITH(InferOpShapes("sgd_mom_update", {{3, 4}, {3, 4}, {3, 5}, {1}}),
                    Catch::Contains("input 'mom': expected shape (3,4) as input 'weight', given (3,5)"));
  CHECK_THROWS_WITH(InferOpShapes("sgd_update", {{3, 4}, {4, 3}, {1}}),
                    Catch::Contains("input 'grad': expected shape (3,4) as input 'weight', given (4,3)"));
  CHECK_THROWS_WITH(InferOpShapes("rmspropalex_update", {{6}, {6}, {6}, {6}, {2, 3}, {1}}),
                    Catch::Contains("input 'delta': expected shape (6) as input 'weight', given (2,3)"));
  CHECK_THROWS_WITH(InferOpShapes("sgd_update", {{3, 4}, {3, 4}, {2}}),
                    Catch::Contains("input 'lr': expected a single element (shape (1)), given (2)"));
  CHECK_THROWS_WITH(InferOpShapes("adamw_update", {{3}, {3}, {3}, {3}, {1}, {1, 2}}),
                    Catch::Contains("input 'eta': expected a single element (shape (1)), given (1,2)"));
}

TEST_CASE("optimizer updates take float32 or float64, one dtype for all", "[optimizer_ops][dtype]") {
  for (const std::string& op : kOps) {
    INFO(op);
    const size_t inputs = OpRegistry::Global().Get(op).NumInputs(ParseAttrs(op, {}));
    const auto f64 = InferTypeSlots(op, std::vector<DTypeSlot>(inputs, DType::kFloat64));
    for (const DTypeSlot& slot : f64) CHECK(slot == DType::kFloat64);
    CHECK_THROWS_WITH(InferTypeSlots(op, std::vector<DTypeSlot>(inputs, DType::kInt32)),
                      Catch::Contains("input 'weight': expected float32 or float64, given int32"));
    CHECK_THROWS_WITH(InferTypeSlots(op, std::vector<DTypeSlot>(inputs, DType::kFloat16)),
                      Catch::Contains("expected float32 or float64, given float16"));
  }
  std::vector<DTypeSlot> mixed = {DType::kFloat32, DType::kFloat32, DType::kFloat64};
  CHECK_THROWS_WITH(InferTypeSlots("sgd_update", mixed),
                    Catch::Contains("input 'lr': expected dtype float32, given float64"));
}

TEST_CASE("optimizer updates: MXNet's attributes and defaults, no gradient", "[optimizer_ops][registry]") {
  const Attrs adam = ParseAttrs("adam_update", {});
  CHECK(adam.Float("beta1") == 0.9);
  CHECK(adam.Float("beta2") == 0.999);
  CHECK(adam.Float("epsilon") == 1e-8);
  CHECK(adam.Float("wd") == 0);
  CHECK(adam.Float("rescale_grad") == 1);
  CHECK(adam.Float("clip_gradient") == -1);
  CHECK(adam.Bool("lazy_update"));
  const Attrs alex = ParseAttrs("rmspropalex_update", {});
  CHECK(alex.Float("gamma1") == 0.95);
  CHECK(alex.Float("gamma2") == 0.9);
  CHECK(alex.Float("clip_weights") == -1);
  CHECK(ParseAttrs("sgd_mom_update", {}).Float("momentum") == 0);
  // lr is an input, not an attribute: a schedule changes it without recompiling.
  CHECK_THROWS_AS(ParseAttrs("sgd_update", {{"lr", 0.1}}), Error);
  for (const std::string& op : kOps) {
    INFO(op);
    const OpDef& def = OpRegistry::Global().Get(op);
    CHECK_FALSE(def.gradient());
    CHECK(def.pattern() == OpPattern::kElementwise);
    CHECK(def.OutputNames(ParseAttrs(op, {})).front() == "weight");
  }
  // MXNet's _adamw_update takes rescale_grad as an input: not the same operator.
  CHECK(OpRegistry::Global().Find("_adamw_update") == nullptr);
}

TEST_CASE("optimizer updates: rates are read at run time", "[optimizer_ops][lower]") {
  // One kernel, two learning rates: the lowering reads lr from its input.
  for (const std::string& op : kOps) {
    INFO(op);
    std::vector<Tensor> inputs = UpdateInputs(op);
    const auto names = OpRegistry::Global().Get(op).InputNames(ParseAttrs(op, {}));
    const size_t lr = static_cast<size_t>(std::find(names.begin(), names.end(), "lr") - names.begin());
    const std::vector<Tensor> slow = RunLowered(op, inputs);
    inputs[lr] = Values({1}, {0.2});
    const std::vector<Tensor> fast = RunLowered(op, inputs);
    CHECK_FALSE(slow[0].BitwiseEquals(fast[0]));
    CHECK(fast[0].BitwiseEquals(RunOp(op, inputs)[0]));
  }
}

TEST_CASE("optimizer updates in float64 compute in double", "[optimizer_ops][lower]") {
  for (const std::string& op : kOps) {
    INFO(op);
    const std::vector<Tensor> inputs = UpdateInputs(op, DType::kFloat64);
    const AttrMap attrs = {{"wd", 0.01}, {"clip_gradient", 0.5}};
    const std::vector<Tensor> expected = RunOp(op, inputs, attrs);
    const std::vector<Tensor> got = RunLowered(op, inputs, attrs);
    for (size_t k = 0; k < got.size(); ++k) CHECK(got[k].BitwiseEquals(expected[k]));
    // Not float32 arithmetic in disguise.
    std::vector<Tensor> as_float;
    for (const Tensor& t : inputs) as_float.push_back(t.CastTo(DType::kFloat32));
    CHECK_FALSE(RunOp(op, as_float, attrs)[0].CastTo(DType::kFloat64).BitwiseEquals(expected[0]));
  }
}
