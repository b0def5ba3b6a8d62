// Randomized graphs (seeded) from the registry's operators: -O0 against -O2. Without
// the passes that change arithmetic (constant and BatchNorm folding) the results agree
// bit for bit; with every pass, within 1e-4 of the unoptimized graph on smooth graphs.
// Every memory plan also passes the independent checker.
#include <catch2/catch.hpp>
#include <cmath>
#include <cstring>
#include <random>

#include "codegen/compiler.h"
#include "graph/op.h"
#include "runtime/error.h"
#include "symbol/symbol.h"
#include "tests/graph_runner.h"
#include "tests/op_test_util.h"

using namespace kiln;
using namespace kiln::testing;

namespace {

const Shape kShape = {2, 3, 4, 4};
const Shape kChannels = {1, 3, 1, 1};

// Elementwise and broadcast operators with a scalar function that take one or two
// float32 inputs of kShape with default attributes: the registry's, not a list.
struct ScalarOps {
  std::vector<std::string> unary, binary;
};

const ScalarOps& RegistryScalarOps() {
  static const ScalarOps ops = [] {
    ScalarOps found;
    for (const OpDef* op : OpRegistry::Global().List()) {
      if (!op->scalar_compute()) continue;
      Attrs attrs;
      try {
        attrs = op->ParseAttrs({}, "probe");
      } catch (const Error&) {
        continue;  // required attributes
      }
      if (op->RandomAtInference(attrs)) continue;
      const size_t inputs = op->NumInputs(attrs);
      if (inputs < 1 || inputs > 2) continue;
      std::vector<DTypeSlot> in_types(inputs, DType::kFloat32), out_types(op->NumOutputs(attrs));
      std::vector<ShapeSlot> in_shapes(inputs, kShape), out_shapes(op->NumOutputs(attrs));
      try {
        op->InferShape(attrs, in_shapes, out_shapes);
        op->InferType(attrs, in_types, out_types);
      } catch (const Error&) {
        continue;
      }
      if (out_shapes.size() != 1 || out_shapes[0] != kShape || out_types[0] != DType::kFloat32) continue;
      (inputs == 1 ? found.unary : found.binary).push_back(op->name());
    }
    return found;
  }();
  return ops;
}

struct Generated {
  Graph graph;
  std::map<std::string, Tensor> inputs;
  std::string description;
};

class GraphGenerator {
 public:
  GraphGenerator(uint64_t seed, bool smooth) : rng_(seed), seed_(seed), smooth_(smooth) {}

  Generated Make() {
    std::vector<Symbol> entries = {Symbol::Variable("data")};
    const int count = Uniform(3, 9);
    for (int i = 0; i < count; ++i) entries.push_back(Next(entries, "n" + std::to_string(i)));
    std::vector<Symbol> outputs = {entries.back()};
    if (Uniform(0, 2) == 0) outputs.push_back(entries[static_cast<size_t>(Uniform(1, count))]);
    Generated g;
    g.graph = (outputs.size() == 1 ? outputs[0] : Symbol::Group(outputs)).ToGraph();
    for (const auto& [name, shape] : params_) {
      const bool variance = name.find("_var") != std::string::npos;
      g.graph.params[name] = RandomTensor(shape, seed_ * 131 + g.graph.params.size(), variance ? 0.5 : -0.5,
                                          variance ? 1.5 : 0.5);
    }
    g.inputs["data"] = RandomTensor(kShape, seed_, -1.5, 1.5);
    g.description = description_;
    return g;
  }

 private:
  int Uniform(int low, int high) { return std::uniform_int_distribution<int>(low, high - 1)(rng_); }
  const Symbol& Pick(const std::vector<Symbol>& entries) { return entries[static_cast<size_t>(Uniform(0, static_cast<int>(entries.size())))]; }

  Symbol Param(const std::string& name, const Shape& shape) {
    params_[name] = shape;
    return Symbol::Variable(name);
  }

  Symbol Next(const std::vector<Symbol>& entries, const std::string& name) {
    const ScalarOps& ops = RegistryScalarOps();
    static const std::vector<std::string> kSmoothUnary = {"relu", "sigmoid", "tanh", "negative", "square", "abs"};
    static const std::vector<std::string> kSmoothBinary = {"broadcast_add", "broadcast_sub", "broadcast_mul",
                                                           "elemwise_add", "broadcast_maximum"};
    const auto& unary = smooth_ ? kSmoothUnary : ops.unary;
    const auto& binary = smooth_ ? kSmoothBinary : ops.binary;
    const Symbol& x = Pick(entries);
    const int kind = Uniform(0, 15);
    std::string op;
    Symbol made;
    switch (kind) {
      case 0: case 1: case 2: case 3:
        op = unary[static_cast<size_t>(Uniform(0, static_cast<int>(unary.size())))];
        made = Symbol::Create(op, {x}, {}, name);
        break;
      case 4: case 5: case 6: {
        op = binary[static_cast<size_t>(Uniform(0, static_cast<int>(binary.size())))];
        // The second operand: another entry, or a per-channel constant where it broadcasts.
        const bool broadcasts = op.rfind("broadcast_", 0) == 0;
        const Symbol y = broadcasts && Uniform(0, 2) == 0 ? Param(name + "_c", kChannels) : Pick(entries);
        made = Symbol::Create(op, {x, y}, {}, name);
        break;
      }
      case 7:
        op = "Convolution";
        made = Symbol::Create(op, {x, Param(name + "_weight", {3, 3, 3, 3}), Param(name + "_bias", {3})},
                              {{"kernel", {3, 3}}, {"pad", {1, 1}}, {"num_filter", 3}}, name);
        break;
      case 8:
        op = "FullyConnected";
        made = Symbol::Create(op, {x, Param(name + "_weight", {4, 4}), Param(name + "_bias", {4})},
                              {{"num_hidden", 4}, {"flatten", false}}, name);
        break;
      case 9:
        op = "BatchNorm";
        made = Symbol::Create(op, {x, Param(name + "_gamma", {3}), Param(name + "_beta", {3}),
                                   Param(name + "_mean", {3}), Param(name + "_var", {3})},
                              {{"fix_gamma", Uniform(0, 2) == 0}}, name);
        break;
      case 10:
        op = "Pooling";
        made = Symbol::Create(op, {x},
                              {{"kernel", {3, 3}}, {"pad", {1, 1}}, {"pool_type", Uniform(0, 2) ? "max" : "avg"}},
                              name);
        break;
      case 11:
        op = "transpose";
        made = Symbol::Create(op, {x}, {{"axes", {0, 1, 3, 2}}}, name);
        break;
      case 12:
        op = "Reshape";
        made = Symbol::Create(op, {Symbol::Create("Reshape", {x}, {{"shape", {2, 3, 16}}}, name + "_flat")},
                              {{"shape", {2, 3, 4, 4}}}, name);
        break;
      case 13: {
        // x - mean(f(x)) over the last axis: a reduction with a fused producer.
        op = "mean";
        const Symbol y = Pick(entries);
        const Symbol f = Symbol::Create(smooth_ ? "square" : unary[static_cast<size_t>(Uniform(0, static_cast<int>(unary.size())))],
                                        {y}, {}, name + "_f");
        made = Symbol::Create("broadcast_sub",
                              {x, Symbol::Create("mean", {f}, {{"axis", {3}}, {"keepdims", true}}, name + "_mean")}, {},
                              name);
        break;
      }
      default:
        op = Uniform(0, 2) ? "Dropout" : "identity";
        made = Symbol::Create(op, {x}, {}, name);
        break;
    }
    description_ += (description_.empty() ? "" : " ") + op;
    return made;
  }

  std::mt19937_64 rng_;
  uint64_t seed_;
  bool smooth_;
  std::map<std::string, Shape> params_;
  std::string description_;
};

LoweredGraph Lower(const Generated& g, int level, std::vector<std::string> disabled = {}) {
  CompileOptions options;
  options.input_shapes = {{"data", kShape}};
  options.graph_opt_level = level;
  options.passes.disabled.insert(disabled.begin(), disabled.end());
  options.passes.verify = true;
  LoweredGraph lowered = LowerGraph(g.graph, options);
  const std::string problem = CheckMemoryPlan(lowered.memory_problem, lowered.memory_plan);
  INFO(problem);
  REQUIRE(problem.empty());
  return lowered;
}

bool SameBitsOrBothNaN(const Tensor& a, const Tensor& b) {
  if (a.shape() != b.shape() || a.dtype() != b.dtype()) return false;
  for (int64_t i = 0; i < a.size(); ++i) {
    const double x = a.GetDouble(i), y = b.GetDouble(i);
    if (std::isnan(x) && std::isnan(y)) continue;
    if (std::memcmp(&x, &y, sizeof x) != 0) return false;
  }
  return true;
}

}  // namespace

TEST_CASE("the registry offers the generator enough scalar operators", "[passes][random]") {
  CHECK(RegistryScalarOps().unary.size() >= 30);
  CHECK(RegistryScalarOps().binary.size() >= 10);
}

TEST_CASE("2000 random graphs: -O2 without the arithmetic folds equals -O0 bit for bit", "[passes][random]") {
  int fused_kernels = 0, kernels = 0;
  for (uint64_t seed = 1; seed <= 2000; ++seed) {
    const Generated g = GraphGenerator(seed, /*smooth=*/false).Make();
    INFO("seed " << seed << ": " << g.description);
    const auto plain = RunWithInterpreter(Lower(g, 0), g.inputs);
    const LoweredGraph optimized = Lower(g, 2, {"fold_constants", "fold_batchnorm"});
    const auto got = RunWithInterpreter(optimized, g.inputs);
    REQUIRE(got.size() == plain.size());
    for (size_t i = 0; i < got.size(); ++i) REQUIRE(SameBitsOrBothNaN(got[i], plain[i]));
    kernels += optimized.artifact.report().kernels_before_fusion();
    fused_kernels += optimized.artifact.kernels_size();
  }
  // Fusion did something across the corpus (outputs, pooling, views and opaque operators
  // bound it: about 17% fewer kernels).
  CHECK(fused_kernels < kernels * 9 / 10);
}

TEST_CASE("500 random smooth graphs: every pass at -O2 within 1e-4 of -O0", "[passes][random]") {
  for (uint64_t seed = 5001; seed <= 5500; ++seed) {
    const Generated g = GraphGenerator(seed, /*smooth=*/true).Make();
    INFO("seed " << seed << ": " << g.description);
    const auto plain = RunWithInterpreter(Lower(g, 0), g.inputs);
    const auto got = RunWithInterpreter(Lower(g, 2), g.inputs);
    for (size_t i = 0; i < got.size(); ++i) KILN_CHECK_CLOSE(got[i], plain[i], 1e-4, 1e-5);
  }
}
