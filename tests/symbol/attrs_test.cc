// Typed attributes: MXNet's text spellings, normalization, validation messages.
#include <catch2/catch.hpp>

#include "runtime/error.h"
#include "graph/attrs.h"
#include "graph/op.h"

using namespace kiln;

namespace {
AttrField Field(AttrType type, std::optional<AttrValue> def = std::nullopt, bool nullable = false) {
  AttrField f;
  f.name = "a";
  f.type = type;
  f.default_value = def;
  f.nullable = nullable;
  return f;
}
}  // namespace

TEST_CASE("MXNet text spellings parse to typed values", "[attrs]") {
  const auto ints = Field(AttrType::kInts);
  CHECK(ints.Normalize(std::string("(2, 2)")) == AttrValue(std::vector<int64_t>{2, 2}));
  CHECK(ints.Normalize(std::string("[3,4,5]")) == AttrValue(std::vector<int64_t>{3, 4, 5}));
  CHECK(ints.Normalize(std::string("(7,)")) == AttrValue(std::vector<int64_t>{7}));
  CHECK(ints.Normalize(std::string("()")) == AttrValue(std::vector<int64_t>{}));
  CHECK(ints.Normalize(std::string("4")) == AttrValue(std::vector<int64_t>{4}));
  CHECK(ints.Normalize(std::string("(2L, 3L)")) == AttrValue(std::vector<int64_t>{2, 3}));
  CHECK(ints.Normalize(int64_t{3}) == AttrValue(std::vector<int64_t>{3}));

  const auto b = Field(AttrType::kBool);
  CHECK(b.Normalize(std::string("True")) == AttrValue(true));
  CHECK(b.Normalize(std::string("false")) == AttrValue(false));
  CHECK(b.Normalize(std::string("1")) == AttrValue(true));
  CHECK(b.Normalize(int64_t{0}) == AttrValue(false));

  const auto f = Field(AttrType::kFloat);
  CHECK(f.Normalize(std::string("1e-3")) == AttrValue(0.001));
  CHECK(f.Normalize(int64_t{2}) == AttrValue(2.0));
  CHECK(std::get<double>(f.Normalize(std::string("-inf"))) < -1e300);

  const auto i = Field(AttrType::kInt);
  CHECK(i.Normalize(std::string(" 12 ")) == AttrValue(int64_t{12}));
  CHECK(i.Normalize(3.0) == AttrValue(int64_t{3}));

  const auto dtype = Field(AttrType::kDType);
  CHECK(dtype.Normalize(std::string("float16")) == AttrValue(std::string("float16")));
  CHECK(dtype.Normalize(int64_t{6}) == AttrValue(std::string("int64")));

  CHECK(Field(AttrType::kInts, std::nullopt, true).Normalize(std::string("None")) == AttrValue(std::monostate{}));
}

TEST_CASE("bad attribute values say what was expected and given", "[attrs]") {
  CHECK_THROWS_WITH(Field(AttrType::kInt).Normalize(std::string("2.5")),
                    Catch::Contains("attribute 'a': expected integer, given '2.5'"));
  CHECK_THROWS_WITH(Field(AttrType::kInt).Normalize(2.5), Catch::Contains("given 2.5"));
  CHECK_THROWS_WITH(Field(AttrType::kInts).Normalize(std::string("(2, x)")), Catch::Contains("tuple of integers"));
  CHECK_THROWS_WITH(Field(AttrType::kInts).Normalize(std::string("(2,,3)")), Catch::Contains("tuple of integers"));
  CHECK_THROWS_WITH(Field(AttrType::kBool).Normalize(std::string("yes")), Catch::Contains("expected boolean"));
  CHECK_THROWS_WITH(Field(AttrType::kInt).Normalize(std::monostate{}), Catch::Contains("None is not allowed"));
  CHECK_THROWS_WITH(Field(AttrType::kDType).Normalize(std::string("complex")), Catch::Contains("expected dtype"));
  AttrField ranged = Field(AttrType::kInts);
  ranged.min = 1;
  CHECK_THROWS_WITH(ranged.Normalize(std::string("(3, 0)")), Catch::Contains("must be >= 1"));
  AttrField choice = Field(AttrType::kString);
  choice.choices = {"max", "avg"};
  CHECK_THROWS_WITH(choice.Normalize(std::string("median")),
                    Catch::Contains("expected one of {max, avg}, given 'median'"));
}

TEST_CASE("values print in MXNet's spelling", "[attrs]") {
  CHECK(FormatAttrValue(std::vector<int64_t>{2, 2}) == "(2, 2)");
  CHECK(FormatAttrValue(std::vector<int64_t>{5}) == "(5,)");
  CHECK(FormatAttrValue(true) == "True");
  CHECK(FormatAttrValue(std::monostate{}) == "None");
  CHECK(FormatAttrValue(0.1) == "0.1");
  CHECK(FormatAttrValue(int64_t{-3}) == "-3");
}

TEST_CASE("an operator fills defaults, keeps what was given, rejects the unknown", "[attrs]") {
  const OpDef& conv = OpRegistry::Global().Get("Convolution");
  const Attrs attrs = conv.ParseAttrs({{"kernel", std::string("(3, 3)")}, {"num_filter", int64_t{8}}}, "c1");
  CHECK(attrs.Ints("kernel") == std::vector<int64_t>{3, 3});
  CHECK(attrs.Int("num_group") == 1);
  CHECK(attrs.IsExplicit("kernel"));
  CHECK_FALSE(attrs.IsExplicit("num_group"));
  CHECK(attrs.ExplicitValues().size() == 2);
  CHECK_THROWS_WITH(conv.ParseAttrs({{"kernel", std::string("(3, 3)")}, {"num_filter", int64_t{8}}, {"kernal", int64_t{1}}}, "c1"),
                    Catch::Contains("operator Convolution (node 'c1'): unknown attribute 'kernal'"));
  // MXNet's hidden annotations are dropped, not errors.
  CHECK_NOTHROW(conv.ParseAttrs({{"kernel", std::string("(3, 3)")}, {"num_filter", int64_t{8}}, {"__lr_mult__", std::string("2")}}, "c1"));
}

TEST_CASE("errors abbreviate what a corrupt file gives", "[attrs][regression]") {
  const std::string huge(20000, 'q');
  const OpDef& cast = OpRegistry::Global().Get("Cast");
  try {
    cast.ParseAttrs({{"dtype", huge}}, "node");
    FAIL("a 20,000-character dtype parsed");
  } catch (const Error& e) {
    const std::string message = e.what();
    CHECK(message.size() < 600);
    CHECK_THAT(message, Catch::Contains("(20000 bytes)"));
    CHECK_THAT(message, Catch::Contains("attribute 'dtype'"));
  }
  try {
    cast.ParseAttrs({{huge, std::string("float32")}}, "node");
    FAIL("an unknown 20,000-character attribute name parsed");
  } catch (const Error& e) {
    CHECK(std::string(e.what()).size() < 600);
  }
  CHECK_THROWS_WITH(OpRegistry::Global().Get(huge), Catch::Contains("(20000 bytes)"));
}

TEST_CASE("Reshape says why a -1 cannot be inferred for an empty result", "[attrs][regression]") {
  const OpDef& reshape = OpRegistry::Global().Get("Reshape");
  const Attrs attrs = reshape.ParseAttrs({{"shape", std::string("(0, -1)")}}, "r");
  std::vector<ShapeSlot> in = {Shape{0, 6}};
  std::vector<ShapeSlot> out(1);
  CHECK_THROWS_WITH(reshape.InferShape(attrs, in, out), Catch::Contains("the other dims hold 0 elements"));
  const Attrs flat = reshape.ParseAttrs({{"shape", std::string("(1, -1)")}}, "r");
  out = std::vector<ShapeSlot>(1);
  reshape.InferShape(flat, in, out);
  REQUIRE(out[0]);
  CHECK(*out[0] == Shape{1, 0});
}
