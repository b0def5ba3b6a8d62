// Embedding, one_hot, pick and take. Expected values marked "MXNet" were printed by MXNet
// 1.9.1 (mx.nd.<op>) and pasted here.
#include <catch2/catch.hpp>
#include <cmath>

#include "runtime/error.h"
#include "symbol/ops_api.h"
#include "tests/op_test_util.h"

using namespace kiln;
using namespace kiln::testing;

namespace {

// MXNet's arange(15).reshape(5, 3) * 0.5.
Tensor Weight(DType dtype = DType::kFloat32) {
  Tensor weight({5, 3}, dtype);
  for (int64_t i = 0; i < weight.size(); ++i) weight.SetDouble(i, static_cast<double>(i) * 0.5);
  return weight;
}

const AttrMap kEmbed = {{"input_dim", 5}, {"output_dim", 3}};

}  // namespace

TEST_CASE("Embedding looks up rows and clips out-of-range indices", "[index]") {
  // MXNet: 7 clips to row 4, -2 to row 0.
  const auto out = RunOp("Embedding", {Values({2, 2}, {0, 4, 7, -2}), Weight()}, kEmbed);
  KILN_CHECK_CLOSE(out[0], Values({2, 2, 3}, {0, 0.5, 1, 6, 6.5, 7, 6, 6.5, 7, 0, 0.5, 1}), 0, 0);
  // MXNet: float indices truncate toward zero (1.7 -> 1, -0.5 -> 0, 3.9 -> 3).
  const auto truncated = RunOp("Embedding", {Values({4}, {1.7, -0.5, 2.5, 3.9}), Weight()}, kEmbed);
  KILN_CHECK_CLOSE(truncated[0], Values({4, 3}, {1.5, 2, 2.5, 0, 0.5, 1, 3, 3.5, 4, 4.5, 5, 5.5}), 0, 0);
  // MXNet: int64 indices into a float16 table give float16.
  const auto half = RunOp("Embedding", {Values({2}, {3, 1}, DType::kInt64), Weight(DType::kFloat16)},
                          {{"input_dim", 5}, {"output_dim", 3}, {"dtype", "float16"}});
  CHECK(half[0].dtype() == DType::kFloat16);
  KILN_CHECK_CLOSE(half[0], Values({2, 3}, {4.5, 5, 5.5, 1.5, 2, 2.5}), 0, 0);
  // A 0-d index gives one row.
  KILN_CHECK_CLOSE(RunOp("Embedding", {Values({}, {2}, DType::kInt32), Weight()}, kEmbed)[0], Values({3}, {3, 3.5, 4}),
                   0, 0);
}

TEST_CASE("Embedding shapes", "[index]") {
  const auto shapes = InferShapeSlots("Embedding", {Shape{2, 4}, std::nullopt}, kEmbed);
  CHECK(*shapes[1] == Shape{5, 3});
  CHECK(*shapes[2] == Shape{2, 4, 3});
  CHECK(InferOpShapes("Embedding", {{7}}, kEmbed)[0] == Shape{7, 3});
  // The weight's shape follows from the attributes alone; the output waits for data.
  const auto no_data = InferShapeSlots("Embedding", {std::nullopt, std::nullopt}, kEmbed);
  CHECK(*no_data[1] == Shape{5, 3});
  CHECK(!no_data[2]);
  CHECK_THROWS_WITH(InferShapeSlots("Embedding", {Shape{2}, Shape{4, 3}}, kEmbed),
                    Catch::Contains("input 'weight'") && Catch::Contains("(5,3)") && Catch::Contains("given (4,3)"));
}

TEST_CASE("Embedding dtypes and attributes", "[index]") {
  // MXNet: any index dtype; the weight takes `dtype` unless given, the output follows the weight.
  auto types = InferTypeSlots("Embedding", {DType::kInt32, std::nullopt}, kEmbed);
  CHECK(types[0] == DType::kInt32);
  CHECK(types[1] == DType::kFloat32);
  CHECK(types[2] == DType::kFloat32);
  types = InferTypeSlots("Embedding", {DType::kUInt8, DType::kFloat16}, kEmbed);
  CHECK(types[2] == DType::kFloat16);
  types = InferTypeSlots("Embedding", {DType::kFloat32, DType::kFloat32}, {{"input_dim", 5}, {"output_dim", 3}, {"dtype", "float16"}});
  CHECK(types[2] == DType::kFloat32);
  types = InferTypeSlots("Embedding", {DType::kInt64, std::nullopt}, {{"input_dim", 5}, {"output_dim", 3}, {"dtype", "int8"}});
  CHECK(types[1] == DType::kInt8);
  CHECK(types[2] == DType::kInt8);

  CHECK_THROWS_WITH(ParseAttrs("Embedding", {{"input_dim", 5}}), Catch::Contains("'output_dim'") && Catch::Contains("missing"));
  CHECK_THROWS_WITH(ParseAttrs("Embedding", {{"input_dim", 0}, {"output_dim", 3}}),
                    Catch::Contains("'input_dim'") && Catch::Contains(">= 1"));
  CHECK_THROWS_WITH(ParseAttrs("Embedding", {{"input_dim", 5}, {"output_dim", 3}, {"dtype", "bool"}}),
                    Catch::Contains("'dtype'") && Catch::Contains("given bool"));
  CHECK(ParseAttrs("Embedding", {{"input_dim", 5}, {"output_dim", 3}, {"sparse_grad", "True"}}).Bool("sparse_grad"));
  CHECK(OpRegistry::Global().Get("Embedding").InputNames(ParseAttrs("Embedding", kEmbed)) ==
        std::vector<std::string>{"data", "weight"});
}

TEST_CASE("one_hot", "[index]") {
  // MXNet: 4 and -1 are out of range and give all-off rows; 2.7 -> 2, -0.5 -> 0.
  const auto out = RunOp("one_hot", {Values({7}, {0, 3, 4, -1, 2.7, -0.5, 1.2})},
                         {{"depth", 4}, {"on_value", 5.0}, {"off_value", -2.0}});
  KILN_CHECK_CLOSE(out[0],
                   Values({7, 4}, {5,  -2, -2, -2, -2, -2, -2, 5,  -2, -2, -2, -2, -2, -2,
                                   -2, -2, -2, -2, 5,  -2, 5,  -2, -2, -2, -2, 5,  -2, -2}),
                   0, 0);
  // MXNet: int32 indices, int32 output.
  const auto ints = RunOp("one_hot", {Values({2, 2}, {1, 0, 2, 9}, DType::kInt32)},
                          {{"depth", 3}, {"on_value", 8.0}, {"off_value", 1.0}, {"dtype", "int32"}});
  CHECK(ints[0].dtype() == DType::kInt32);
  KILN_CHECK_CLOSE(ints[0], Values({2, 2, 3}, {1, 8, 1, 8, 1, 1, 1, 1, 8, 1, 1, 1}), 0, 0);
  // on_value is cast to the output dtype (MXNet: 2.5 -> 2 in int32).
  KILN_CHECK_CLOSE(RunOp("one_hot", {Values({1}, {1})}, {{"depth", 2}, {"on_value", 2.5}, {"dtype", "int32"}})[0],
                   Values({1, 2}, {0, 2}), 0, 0);

  CHECK(InferOpShapes("one_hot", {{2, 3}}, {{"depth", 4}})[0] == Shape{2, 3, 4});
  CHECK(InferOpShapes("one_hot", {{2}}, {{"depth", 0}})[0] == Shape{2, 0});
  CHECK(InferTypeSlots("one_hot", {DType::kFloat64}, {{"depth", 4}})[1] == DType::kFloat32);
  CHECK(InferTypeSlots("one_hot", {DType::kFloat32}, {{"depth", 4}, {"dtype", "uint8"}})[1] == DType::kUInt8);
  CHECK(OpRegistry::Global().Get("one_hot").InputNames(ParseAttrs("one_hot", {{"depth", 1}})) ==
        std::vector<std::string>{"indices"});
  CHECK_THROWS_WITH(ParseAttrs("one_hot", {}), Catch::Contains("'depth'") && Catch::Contains("missing"));
  CHECK_THROWS_WITH(ParseAttrs("one_hot", {{"depth", -1}}), Catch::Contains("'depth'") && Catch::Contains(">= 0"));
  CHECK_THROWS_WITH(ParseAttrs("one_hot", {{"depth", 3}, {"dtype", "bool"}}), Catch::Contains("'dtype'"));
}

TEST_CASE("pick", "[index]") {
  const Tensor x = Arange({2, 3, 4});
  // MXNet: clip mode, axis 1 (5 -> 2, -1 -> 0).
  KILN_CHECK_CLOSE(RunOp("pick", {x, Values({2, 4}, {0, 2, 1, 5, -1, 1, 2, 0})}, {{"axis", 1}})[0],
                   Values({2, 4}, {0, 9, 6, 11, 12, 17, 22, 15}), 0, 0);
  // MXNet: wrap mode (-1 -> 2, 5 -> 2, -4 -> 2).
  KILN_CHECK_CLOSE(
      RunOp("pick", {x, Values({2, 4}, {0, 2, 1, 5, -1, 1, 2, -4})}, {{"axis", 1}, {"mode", "wrap"}})[0],
      Values({2, 4}, {0, 9, 6, 11, 20, 17, 22, 23}), 0, 0);
  // MXNet: the last axis with keepdims.
  KILN_CHECK_CLOSE(RunOp("pick", {x, Values({2, 3}, {0, 2, 1, 3, 1, 2})}, {{"axis", -1}, {"keepdims", true}})[0],
                   Values({2, 3, 1}, {0, 6, 9, 15, 17, 22}), 0, 0);
  // MXNet: axis 0.
  KILN_CHECK_CLOSE(RunOp("pick", {x, Values({3, 4}, {1, 0, 1, 0, 0, 1, 1, 1, 1, 1, 0, 0})}, {{"axis", 0}})[0],
                   Values({3, 4}, {12, 1, 14, 3, 4, 17, 18, 19, 20, 21, 10, 11}), 0, 0);
  // The output keeps data's dtype whatever the index's.
  const auto f64 = RunOp("pick", {x.CastTo(DType::kFloat64), Values({2, 4}, {1, 0, 1, 0, 0, 1, 1, 1}, DType::kInt64)},
                         {{"axis", 1}});
  CHECK(f64[0].dtype() == DType::kFloat64);
  CHECK(InferTypeSlots("pick", {DType::kInt32, DType::kFloat64})[2] == DType::kInt32);

  auto shapes = InferShapeSlots("pick", {Shape{2, 3, 4}, std::nullopt});
  CHECK(*shapes[1] == Shape{2, 3});
  CHECK(*shapes[2] == Shape{2, 3});
  shapes = InferShapeSlots("pick", {Shape{2, 3, 4}, std::nullopt}, {{"axis", 1}, {"keepdims", true}});
  CHECK(*shapes[1] == Shape{2, 4});
  CHECK(*shapes[2] == Shape{2, 1, 4});
  // MXNet also accepts the index with the axis kept as 1.
  CHECK_NOTHROW(InferShapeSlots("pick", {Shape{2, 3, 4}, Shape{2, 1, 4}}, {{"axis", 1}}));
  CHECK_THROWS_WITH(InferShapeSlots("pick", {Shape{2, 3, 4}, Shape{2, 5}}, {{"axis", 1}}),
                    Catch::Contains("input 'index'") && Catch::Contains("(2,4)") && Catch::Contains("given (2,5)"));
  CHECK_THROWS_WITH(InferShapeSlots("pick", {Shape{2, 3, 4}, std::nullopt}, {{"axis", 3}}), Catch::Contains("out of range"));
  CHECK_THROWS_WITH(InferShapeSlots("pick", {Shape{2, 0}, std::nullopt}, {{"axis", 1}}), Catch::Contains("nonzero size"));
  CHECK_THROWS_WITH(ParseAttrs("pick", {{"axis", "None"}}), Catch::Contains("'axis'") && Catch::Contains("None"));
  CHECK_THROWS_WITH(ParseAttrs("pick", {{"mode", "raise"}}), Catch::Contains("'mode'") && Catch::Contains("clip, wrap"));
}

TEST_CASE("take gathers along an axis, clipping or wrapping indices", "[index][take]") {
  const Tensor x = Arange({3, 4});
  // MXNet: take(arange(12).reshape(3, 4), [[0, 2], [5, -1]]): 5 clips to row 2, -1 to row 0.
  const auto rows = RunOp("take", {x, Values({2, 2}, {0, 2, 5, -1})});
  REQUIRE(rows[0].shape() == Shape{2, 2, 4});
  KILN_CHECK_CLOSE(rows[0], Values({2, 2, 4}, {0, 1, 2, 3, 8, 9, 10, 11, 8, 9, 10, 11, 0, 1, 2, 3}), 0, 0);
  const Tensor y = Arange({2, 3, 4});
  // MXNet: axis 1, mode wrap: -1 -> 2, 4 -> 1.
  KILN_CHECK_CLOSE(
      RunOp("take", {y, Values({3}, {-1, 4, 2})}, {{"axis", 1}, {"mode", "wrap"}})[0],
      Values({2, 3, 4}, {8, 9, 10, 11, 4, 5, 6, 7, 8, 9, 10, 11, 20, 21, 22, 23, 16, 17, 18, 19, 20, 21, 22, 23}), 0,
      0);
  // MXNet: axis -1 (3 and -1 -> 0).
  KILN_CHECK_CLOSE(RunOp("take", {y, Values({2}, {3, -1})}, {{"axis", -1}})[0],
                   Values({2, 3, 2}, {3, 0, 7, 4, 11, 8, 15, 12, 19, 16, 23, 20}), 0, 0);

  // MXNet: float indices truncate toward zero; wrap takes the truncated index modulo 5.
  const Tensor v = Values({5}, {10, 11, 12, 13, 14});
  const Tensor f = Values({6}, {2.7, -0.5, -1.5, 1.9, -5.5, 7.2});
  KILN_CHECK_CLOSE(RunOp("take", {v, f})[0], Values({6}, {12, 10, 10, 11, 10, 14}), 0, 0);
  KILN_CHECK_CLOSE(RunOp("take", {v, f}, {{"mode", "wrap"}})[0], Values({6}, {12, 10, 14, 11, 10, 12}), 0, 0);
  // MXNet: int64 indices are exact beyond 2^53 (2^60 + 3, -(2^60) - 3, 2^53 + 1).
  Tensor big({3}, DType::kInt64);
  big.data_as<int64_t>()[0] = (int64_t{1} << 60) + 3;
  big.data_as<int64_t>()[1] = -(int64_t{1} << 60) - 3;
  big.data_as<int64_t>()[2] = (int64_t{1} << 53) + 1;
  KILN_CHECK_CLOSE(RunOp("take", {v, big}, {{"mode", "wrap"}})[0], Values({3}, {14, 11, 13}), 0, 0);
  KILN_CHECK_CLOSE(RunOp("take", {v, big})[0], Values({3}, {14, 10, 14}), 0, 0);
  // Non-finite float indices clip (MXNet's x86 conversion makes them INT64_MIN: row 0
  // under clip, INT64_MIN mod n under wrap); wrap keeps the clipped row.
  const Tensor odd = Values({3}, {NAN, INFINITY, -INFINITY});
  KILN_CHECK_CLOSE(RunOp("take", {v, odd})[0], Values({3}, {10, 14, 10}), 0, 0);
  KILN_CHECK_CLOSE(RunOp("take", {v, odd}, {{"mode", "wrap"}})[0], Values({3}, {10, 14, 10}), 0, 0);

  // The output keeps a's dtype whatever the indices' (MXNet: int64 a, int32 indices -> int64).
  const auto ints = RunOp(
      "take", {Values({2, 2}, {5, -6, 7, -8}, DType::kInt64), Values({3}, {1, 0, 1}, DType::kUInt8)}, {{"axis", 1}});
  CHECK(ints[0].dtype() == DType::kInt64);
  KILN_CHECK_CLOSE(ints[0], Values({2, 3}, {-6, 5, -6, -8, 7, -8}, DType::kInt64), 0, 0);
  const auto half = RunOp("take", {x.CastTo(DType::kFloat16), Values({1}, {2}, DType::kBool)});
  CHECK(half[0].dtype() == DType::kFloat16);
  KILN_CHECK_CLOSE(half[0], Values({1, 4}, {4, 5, 6, 7}), 0, 0);  // a bool index is 0 or 1
  // A 0-d index drops the axis (NumPy's take); no indices give an empty output.
  KILN_CHECK_CLOSE(RunOp("take", {x, Values({}, {2})}, {{"axis", 1}})[0], Values({3}, {2, 6, 10}), 0, 0);
  CHECK(RunOp("take", {x, Tensor({0}, DType::kInt32)}, {{"axis", 1}})[0].shape() == Shape{3, 0});
}

TEST_CASE("take shapes, dtypes and attributes", "[index][take]") {
  CHECK(InferOpShapes("take", {{3, 4}, {2, 5}})[0] == Shape{2, 5, 4});
  CHECK(InferOpShapes("take", {{2, 3, 4, 5}, {6}}, {{"axis", 2}})[0] == Shape{2, 3, 6, 5});
  CHECK(InferOpShapes("take", {{2, 3, 4}, {1, 1}}, {{"axis", -1}})[0] == Shape{2, 3, 1, 1});
  CHECK(InferOpShapes("take", {{7}, {}})[0] == Shape{});
  // Empty indices from an empty axis are fine; taking from it is not.
  CHECK(InferOpShapes("take", {{3, 0}, {0}}, {{"axis", 1}})[0] == Shape{3, 0});
  CHECK_THROWS_WITH(
      InferOpShapes("take", {{3, 0}, {2}}, {{"axis", 1}}),
      Catch::Contains("input 'a'") && Catch::Contains("nonzero size along axis 1") && Catch::Contains("given (3,0)"));
  // The output waits for both inputs; a bad axis is reported as soon as a is known.
  const auto partial = InferShapeSlots("take", {Shape{3, 4}, std::nullopt});
  CHECK(!partial[1]);
  CHECK(!partial[2]);
  CHECK_THROWS_WITH(InferShapeSlots("take", {Shape{2, 3}, std::nullopt}, {{"axis", 2}}),
                    Catch::Contains("'axis'") && Catch::Contains("out of range") && Catch::Contains("2-d"));
  CHECK_THROWS_WITH(InferOpShapes("take", {{2, 3}, {2}}, {{"axis", -3}}), Catch::Contains("out of range"));
  CHECK_THROWS_WITH(InferOpShapes("take", {{}, {2}}), Catch::Contains("input 'a'") && Catch::Contains("at least 1-d"));

  auto types = InferTypeSlots("take", {DType::kFloat16, DType::kInt32});
  CHECK(types[2] == DType::kFloat16);
  types = InferTypeSlots("take", {DType::kInt32, DType::kFloat32});
  CHECK(types[1] == DType::kFloat32);
  CHECK(types[2] == DType::kInt32);

  const Attrs defaults = ParseAttrs("take", {});
  CHECK(defaults.Int("axis") == 0);
  CHECK(defaults.Str("mode") == "clip");
  CHECK(OpRegistry::Global().Get("take").InputNames(defaults) == std::vector<std::string>{"a", "indices"});
  // MXNet's raise fails at run time on an out-of-range index: no compiled equivalent.
  CHECK_THROWS_WITH(ParseAttrs("take", {{"mode", "raise"}}),
                    Catch::Contains("'mode'") && Catch::Contains("'raise'") && Catch::Contains("clip"));
  CHECK_THROWS_WITH(ParseAttrs("take", {{"mode", "nearest"}}), Catch::Contains("'mode'"));
  CHECK_THROWS_WITH(ParseAttrs("take", {{"axis", "one"}}), Catch::Contains("'axis'"));
}

TEST_CASE("sym::take builds a take node", "[index][take]") {
  const Symbol gather = sym::take(Symbol::Variable("x"), Symbol::Variable("idx"), {{"axis", 1}}, "gather");
  CHECK(gather.ListArguments() == std::vector<std::string>{"x", "idx"});
  const auto shapes = gather.InferShape({{"x", {2, 5, 3}}, {"idx", {4}}});
  CHECK(*shapes.outputs[0] == Shape{2, 4, 3});
}

TEST_CASE("index ops are injective", "[index]") {
  for (const char* op : {"Embedding", "one_hot", "pick", "take"}) {
    CHECK(OpRegistry::Global().Get(op).pattern() == OpPattern::kInjective);
  }
}
