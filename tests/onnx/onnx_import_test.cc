// The ONNX importer on models built here: what it folds, how it reports what it cannot
// import, and that malformed files give clean errors. Operator semantics are checked
// against ONNX's own expected outputs by onnx_conformance_test.
#include "symbol/onnx/onnx_import.h"

#include <unistd.h>

#include <catch2/catch.hpp>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <map>
#include <random>
#include <string>

#include "codegen/compiler.h"
#include "passes/interpreter.h"
#include "runtime/artifact.h"
#include "runtime/error.h"
#include "runtime/executor.h"
#include "runtime/file_util.h"
#include "symbol/onnx/onnx.pb.h"
#include "symbol/onnx/onnx_tensor.h"
#include "symbol/onnx/onnx_versions.h"
#include "tests/onnx/onnx_test_util.h"
#include "tests/op_test_util.h"

using namespace kiln;
using namespace kiln::testing;

namespace {

using ModelBuilder = OnnxModelBuilder;

std::string TempPath(const std::string& name) {
  const char* tmp = std::getenv("TEST_TMPDIR");
  return std::string(tmp != nullptr ? tmp : "/tmp") + "/" + std::to_string(::getpid()) + "_" + name;
}

size_t CountOps(const Graph& graph) {
  size_t ops = 0;
  for (const auto& node : TopologicalOrder(graph.outputs)) ops += node->is_variable() ? 0 : 1;
  return ops;
}

// x.view(x.size(0), -1) as exporters write it: Shape, Gather, Unsqueeze, Concat, Reshape.
ModelBuilder FlattenByShapeModel() {
  ModelBuilder b(13);
  b.Input("x", {1, 2, 3, 4}, onnx::TensorProto::FLOAT, /*symbolic_batch=*/true);
  b.Initializer("zero", Tensor::FromDoubles({}, std::vector<double>{0}, DType::kInt64));
  b.Initializer("axes0", Int64Vector({0}));
  b.Initializer("minus_one", Int64Vector({-1}));
  b.Node("Shape", {"x"}, {"shape"});
  AddIntAttr(b.Node("Gather", {"shape", "zero"}, {"batch"}), "axis", 0);
  b.Node("Unsqueeze", {"batch", "axes0"}, {"batch1"});
  AddIntAttr(b.Node("Concat", {"batch1", "minus_one"}, {"target"}), "axis", 0);
  b.Node("Reshape", {"x", "target"}, {"flat"});
  b.Node("Relu", {"flat"}, {"y"});
  b.Output("y");
  return b;
}

}  // namespace

TEST_CASE("shape computations of exporters fold at import", "[onnx][import]") {
  const ModelBuilder b = FlattenByShapeModel();
  for (const int64_t batch : {1, 5}) {
    const Graph graph = ImportOnnxModel(b.model, {{{"x", {batch, 2, 3, 4}}}});
    // Only the reshape and the relu remain: Shape, Gather, Unsqueeze, Concat folded.
    CHECK(CountOps(graph) == 2);
    CHECK(graph.params.empty());
    const Tensor x = RandomTensor({batch, 2, 3, 4}, 3);
    const auto out = Interpret(graph, {{"x", x}});
    REQUIRE(out.size() == 1);
    CHECK(out[0].shape() == Shape{batch, 24});
    for (int64_t i = 0; i < x.size(); ++i) CHECK(out[0].GetDouble(i) == std::max(0.0, x.GetDouble(i)));
  }
  // The symbolic batch defaults to 1.
  const Graph graph = ImportOnnxModel(b.model);
  const auto out = Interpret(graph, {{"x", RandomTensor({1, 2, 3, 4}, 1)}});
  CHECK(out[0].shape() == Shape{1, 24});
}

TEST_CASE("initializers become parameters and folded constants stay out of the graph", "[onnx][import]") {
  ModelBuilder b(13);
  b.Input("x", {2, 3});
  b.Initializer("w", RandomTensor({4, 3}, 1));
  b.Initializer("b", RandomTensor({4}, 2));
  b.Initializer("unused", RandomTensor({7}, 3));
  auto& gemm = b.Node("Gemm", {"x", "w", "b"}, {"y"}, "dense");
  AddIntAttr(gemm, "transB", 1);
  b.Output("y");
  const Graph graph = ImportOnnxModel(b.model);
  CHECK(graph.params.size() == 2);
  CHECK(graph.params.count("w") == 1);
  CHECK(graph.params.count("unused") == 0);
  CHECK(graph.OutputNames() == std::vector<std::string>{"y"});
  // y = x w^T + b.
  const Tensor x = RandomTensor({2, 3}, 4);
  const Tensor y = Interpret(graph, {{"x", x}})[0];
  const Tensor& w = graph.params.at("w");
  const Tensor& bias = graph.params.at("b");
  for (int64_t i = 0; i < 2; ++i) {
    for (int64_t j = 0; j < 4; ++j) {
      double expected = bias.GetDouble(j);
      for (int64_t k = 0; k < 3; ++k) expected += x.GetDouble(i * 3 + k) * w.GetDouble(j * 3 + k);
      CHECK(y.GetDouble(i * 4 + j) == Approx(expected).epsilon(1e-5));
    }
  }
}

TEST_CASE("every unsupported node is listed in one error", "[onnx][import]") {
  ModelBuilder b(13);
  b.Input("x", {2, 3});
  b.Node("Relu", {"x"}, {"a"});
  b.Node("NonZero", {"a"}, {"nz"}, "find_them");
  b.Node("Unique", {"a"}, {"h"}, "unique_values");
  auto& softmax = b.Node("Softmax", {"a"}, {"s"}, "soft");
  AddIntAttr(softmax, "not_an_attribute", 1);
  b.Node("Relu", {"nz"}, {"after"}, "downstream");  // reads a failed value: not reported again
  b.Output("after");
  b.Output("h");
  b.Output("s");
  try {
    ImportOnnxModel(b.model);
    FAIL("import succeeded");
  } catch (const Error& e) {
    const std::string message = e.what();
    CHECK_THAT(message, Catch::Contains("3 problem(s)"));
    CHECK_THAT(message, Catch::Contains("NonZero node 'find_them' (opset 13): operator not supported"));
    CHECK_THAT(message, Catch::Contains("Unique node 'unique_values' (opset 13): operator not supported"));
    CHECK_THAT(message,
               Catch::Contains("Softmax node 'soft' (opset 13): attribute(s) not supported: not_an_attribute"));
    CHECK_THAT(message, !Catch::Contains("downstream"));
  }
}

TEST_CASE("unsupported forms of supported operators name the node and the reason", "[onnx][import]") {
  SECTION("a shape that is not a constant") {
    ModelBuilder b(13);
    b.Input("x", {2, 3});
    b.Input("shape", {2}, onnx::TensorProto::INT64);
    b.Node("Reshape", {"x", "shape"}, {"y"}, "reshape_it");
    b.Output("y");
    CHECK_THROWS_WITH(ImportOnnxModel(b.model),
                      Catch::Contains("Reshape node 'reshape_it'") && Catch::Contains("must be a constant"));
  }
  SECTION("a 3-d convolution") {
    ModelBuilder b(13);
    b.Input("x", {1, 2, 5, 5, 5});
    b.Initializer("w", RandomTensor({3, 2, 3, 3, 3}, 1));
    b.Node("Conv", {"x", "w"}, {"y"}, "conv3d");
    b.Output("y");
    CHECK_THROWS_WITH(ImportOnnxModel(b.model), Catch::Contains("Conv node 'conv3d'") && Catch::Contains("2-D"));
  }
  SECTION("an unsupported element type") {
    ModelBuilder b(13);
    b.Input("x", {2}, onnx::TensorProto::COMPLEX64);
    b.Node("Relu", {"x"}, {"y"});
    b.Output("y");
    CHECK_THROWS_WITH(ImportOnnxModel(b.model), Catch::Contains("graph input 'x'") && Catch::Contains("COMPLEX64"));
  }
  SECTION("a given shape of the wrong rank, and a shape for an input the model lacks") {
    ModelBuilder b(13);
    b.Input("x", {2, 3});
    b.Node("Relu", {"x"}, {"y"});
    b.Output("y");
    CHECK_THROWS_WITH(ImportOnnxModel(b.model, {{{"x", {2, 3, 4}}}}), Catch::Contains("declares rank 2"));
    CHECK_THROWS_WITH(ImportOnnxModel(b.model, {{{"data", {2, 3}}}}),
                      Catch::Contains("'data' is not an input of the model (its inputs: x)"));
  }
}

TEST_CASE("opsets outside 7 to 27 are refused clearly", "[onnx][import]") {
  for (const int64_t opset : {6, 28}) {
    ModelBuilder b(opset);
    b.Input("x", {2});
    b.Node("Relu", {"x"}, {"y"});
    b.Output("y");
    CHECK_THROWS_WITH(ImportOnnxModel(b.model),
                      Catch::Contains("opset " + std::to_string(opset)) && Catch::Contains("7 to 27"));
  }
}

// Beyond opset 17 an operator imports only in the versions its converter was reviewed
// for (symbol/onnx/onnx_versions.cc): Relu has not changed since 14, Conv-22 only added
// types; Split-18 and Pad-18's axes input are handled, and an operator whose newer
// version nobody reviewed is refused naming that version.
TEST_CASE("newer opsets: each operator's version is known and checked", "[onnx][import][opset]") {
  for (const int64_t opset : {18, 22, 27}) {
    ModelBuilder b(opset);
    b.Input("x", {2, 3});
    b.Node("Relu", {"x"}, {"y"});
    b.Output("y");
    const Tensor x = RandomTensor({2, 3}, 4, -1, 1);
    CHECK(Interpret(ImportOnnxModel(b.model), {{"x", x}})[0].shape() == Shape{2, 3});
  }
  CHECK(onnx_import::OpVersion("Relu", 27) == 14);
  CHECK(onnx_import::OpVersion("Conv", 21) == 11);
  CHECK(onnx_import::OpVersion("Conv", 22) == 22);
  CHECK(onnx_import::UnhandledVersion("Conv", 22).empty());
  CHECK(onnx_import::UnhandledVersion("ReduceMean", 18).empty());
  CHECK(onnx_import::UnhandledVersion("Range", 27).empty());
  CHECK_THAT(onnx_import::UnhandledVersion("DFT", 20),
             Catch::Contains("DFT-20 (what opset 20 means) is not supported") && Catch::Contains("up to version 17"));

  ModelBuilder pad(18);
  pad.Input("x", {2, 3});
  pad.Initializer("pads", Int64Vector({1, 1}));
  pad.Initializer("value", ScalarTensor(0.0, DType::kFloat32));
  pad.Initializer("axes", Int64Vector({1}));
  pad.Node("Pad", {"x", "pads", "value", "axes"}, {"y"});
  pad.Output("y");
  const Tensor x = Values({2, 3}, {1, 2, 3, 4, 5, 6});
  const Tensor padded = Interpret(ImportOnnxModel(pad.model), {{"x", x}})[0];
  KILN_CHECK_CLOSE(padded, Values({2, 5}, {0, 1, 2, 3, 0, 0, 4, 5, 6, 0}), 0, 0);
}

TEST_CASE("both forms of Squeeze, Unsqueeze and Clip import alike", "[onnx][import]") {
  const Tensor x = RandomTensor({2, 1, 3}, 5, -2, 2);
  std::vector<Tensor> results;
  for (const int64_t opset : {11, 13}) {
    ModelBuilder b(opset);
    b.Input("x", {2, 1, 3});
    auto& squeeze =
        b.Node("Squeeze", opset >= 13 ? std::vector<std::string>{"x", "axes1"} : std::vector<std::string>{"x"}, {"s"});
    auto& unsqueeze = b.Node(
        "Unsqueeze", opset >= 13 ? std::vector<std::string>{"s", "axes0"} : std::vector<std::string>{"s"}, {"u"});
    if (opset >= 13) {
      b.Initializer("axes1", Int64Vector({1}));
      b.Initializer("axes0", Int64Vector({0}));
    } else {
      AddIntsAttr(squeeze, "axes", {1});
      AddIntsAttr(unsqueeze, "axes", {0});
    }
    // Clip: inputs since opset 11 (attributes before).
    b.Initializer("lo", Tensor::FromDoubles({}, std::vector<double>{-0.5}));
    b.Initializer("hi", Tensor::FromDoubles({}, std::vector<double>{0.75}));
    b.Node("Clip", {"u", "lo", "hi"}, {"y"});
    b.Output("y");
    const Graph graph = ImportOnnxModel(b.model);
    results.push_back(Interpret(graph, {{"x", x}})[0]);
    CHECK(results.back().shape() == Shape{1, 2, 3});
  }
  KILN_CHECK_CLOSE(results[0], results[1], 0, 0);
  for (int64_t i = 0; i < x.size(); ++i) CHECK(results[0].GetDouble(i) == std::clamp(x.GetDouble(i), -0.5, 0.75));
}

TEST_CASE("Softmax before opset 13 normalizes over the flattened trailing axes", "[onnx][import]") {
  const Tensor x = RandomTensor({2, 3, 4}, 9);
  for (const int64_t opset : {11, 13}) {
    ModelBuilder b(opset);
    b.Input("x", {2, 3, 4});
    AddIntAttr(b.Node("Softmax", {"x"}, {"y"}), "axis", 1);
    b.Output("y");
    const Tensor y = Interpret(ImportOnnxModel(b.model), {{"x", x}})[0];
    // Opset 11: each of the 2 rows of 12 sums to 1; opset 13: each (n, :, w) column does.
    if (opset == 11) {
      for (int64_t n = 0; n < 2; ++n) {
        double sum = 0;
        for (int64_t k = 0; k < 12; ++k) sum += y.GetDouble(n * 12 + k);
        CHECK(sum == Approx(1.0));
      }
    } else {
      for (int64_t n = 0; n < 2; ++n) {
        for (int64_t w = 0; w < 4; ++w) {
          double sum = 0;
          for (int64_t c = 0; c < 3; ++c) sum += y.GetDouble(n * 12 + c * 4 + w);
          CHECK(sum == Approx(1.0));
        }
      }
    }
  }
}

TEST_CASE("asymmetric SAME padding goes into a Pad node", "[onnx][import]") {
  ModelBuilder b(13);
  b.Input("x", {1, 1, 6, 6});
  b.Initializer("w", RandomTensor({2, 1, 2, 2}, 1));
  auto& conv = b.Node("Conv", {"x", "w"}, {"y"});
  auto* attr = conv.add_attribute();
  attr->set_name("auto_pad");
  attr->set_type(onnx::AttributeProto::STRING);
  attr->set_s("SAME_UPPER");
  b.Output("y");
  const Graph graph = ImportOnnxModel(b.model);
  bool has_pad = false;
  for (const auto& node : TopologicalOrder(graph.outputs)) has_pad |= !node->is_variable() && node->op->name() == "Pad";
  CHECK(has_pad);
  // SAME: the output keeps the input's size; with a 2x2 kernel the extra row and column
  // of zeros go at the end, so y[5][5] sees only x[5][5].
  const Tensor x = RandomTensor({1, 1, 6, 6}, 2);
  const Tensor y = Interpret(graph, {{"x", x}})[0];
  REQUIRE(y.shape() == Shape{1, 2, 6, 6});
  const Tensor& w = graph.params.at("w");
  CHECK(y.GetDouble(35) == Approx(x.GetDouble(35) * w.GetDouble(0)).epsilon(1e-6));
}

TEST_CASE("malformed and truncated files give clean errors", "[onnx][import]") {
  const std::string missing = TempPath("missing.onnx");
  CHECK_THROWS_AS(ImportOnnx(missing), Error);

  const std::string garbage = TempPath("garbage.onnx");
  WriteFileAtomic(garbage, "this is not a protobuf \xff\xff\xff");
  CHECK_THROWS_WITH(ImportOnnx(garbage), Catch::Contains("garbage.onnx") && Catch::Contains("ONNX"));

  // Every truncation and random corruptions of a valid model: an error or a graph,
  // never a crash or another exception type.
  const ModelBuilder b = FlattenByShapeModel();
  const std::string bytes = b.model.SerializeAsString();
  const std::string path = TempPath("cut.onnx");
  int errors = 0;
  for (size_t cut = 0; cut < bytes.size(); ++cut) {
    WriteFileAtomic(path, bytes.substr(0, cut));
    try {
      ImportOnnx(path);
    } catch (const Error&) {
      ++errors;
    }
  }
  CHECK(errors > static_cast<int>(bytes.size()) / 2);
  std::mt19937 rng(7);
  for (int trial = 0; trial < 2000; ++trial) {
    std::string corrupt = bytes;
    for (int k = 0; k < 3; ++k) corrupt[rng() % corrupt.size()] = static_cast<char>(rng());
    WriteFileAtomic(path, corrupt);
    try {
      ImportOnnx(path);
    } catch (const Error&) {
    }
  }
}

TEST_CASE("inputs can be fixed to constants at import", "[onnx][import]") {
  ModelBuilder b(13);
  b.Input("x", {2, 6});
  b.Input("shape", {3}, onnx::TensorProto::INT64);
  b.Node("Reshape", {"x", "shape"}, {"y"}, "reshape_it");
  b.Output("y");
  OnnxImportOptions options;
  options.constant_inputs["shape"] = Int64Vector({3, 2, 2});
  const Graph graph = ImportOnnxModel(b.model, options);
  CHECK(graph.ListInputs() == std::vector<std::string>{"x"});
  const Tensor x = RandomTensor({2, 6}, 8);
  const Tensor y = Interpret(graph, {{"x", x}})[0];
  CHECK(y.shape() == Shape{3, 2, 2});
  options.constant_inputs["shape"] = Tensor::FromDoubles({3}, std::vector<double>{3, 2, 2});
  CHECK_THROWS_WITH(ImportOnnxModel(b.model, options), Catch::Contains("graph input 'shape' is int64"));
  options.constant_inputs.clear();
  options.constant_inputs["nope"] = Int64Vector({1});
  CHECK_THROWS_WITH(ImportOnnxModel(b.model, options), Catch::Contains("'nope' is not an input of the model"));
}

TEST_CASE("Constant's integer forms keep int64 values exactly", "[onnx][import]") {
  const int64_t big = (int64_t{1} << 53) + 1;  // not a double
  ModelBuilder b(13);
  b.Input("x", {2}, onnx::TensorProto::INT64);
  AddIntAttr(b.Node("Constant", {}, {"one"}), "value_int", big);
  AddIntsAttr(b.Node("Constant", {}, {"two"}), "value_ints", {big, -big});
  b.Node("Add", {"x", "one"}, {"y"});
  b.Node("Add", {"x", "two"}, {"z"});
  b.Output("y");
  b.Output("z");
  const auto out = Interpret(ImportOnnxModel(b.model), {{"x", Int64Vector({0, 2})}});
  REQUIRE(out.size() == 2);
  CHECK(out[0].data_as<int64_t>()[0] == big);
  CHECK(out[0].data_as<int64_t>()[1] == big + 2);
  CHECK(out[1].data_as<int64_t>()[0] == big);
  CHECK(out[1].data_as<int64_t>()[1] == -big + 2);
}

TEST_CASE("an initializer's declared size is checked before anything is allocated", "[onnx][import][regression]") {
  // 2^31 x 2^31 float32 (16 EiB), then 2^30 floats (4 GiB) declared with 8 bytes of data:
  // errors naming the tensor, without allocating (the fuzzer's malloc limit and ASan
  // would report an attempt).
  for (const auto& dims : {std::vector<int64_t>{int64_t{1} << 31, int64_t{1} << 31}, std::vector<int64_t>{1 << 30}}) {
    ModelBuilder b(13);
    b.Input("x", {2});
    onnx::TensorProto& init = *b.model.mutable_graph()->add_initializer();
    init.set_name("huge");
    init.set_data_type(onnx::TensorProto::FLOAT);
    for (const int64_t d : dims) init.add_dims(d);
    init.set_raw_data(std::string(8, '\0'));
    b.Node("Add", {"x", "huge"}, {"y"});
    b.Output("y");
    CHECK_THROWS_WITH(ImportOnnxModel(b.model), Catch::Contains("initializer 'huge'"));
  }
  // Typed values: the count is checked the same way.
  ModelBuilder b(13);
  b.Input("x", {2});
  onnx::TensorProto& init = *b.model.mutable_graph()->add_initializer();
  init.set_name("short");
  init.set_data_type(onnx::TensorProto::FLOAT);
  init.add_dims(int64_t{1} << 30);
  init.add_float_data(1.0f);
  b.Node("Add", {"x", "short"}, {"y"});
  b.Output("y");
  CHECK_THROWS_WITH(ImportOnnxModel(b.model),
                    Catch::Contains("initializer 'short': 1 values for shape (1073741824) (1073741824 elements)"));
}

TEST_CASE("a failed input or initializer is reported once, not again by every reader", "[onnx][import][regression]") {
  ModelBuilder b(13);
  b.Input("x", {2, 3});
  b.Input("bad", {2, 3}, onnx::TensorProto::COMPLEX64);
  b.Node("Add", {"x", "bad"}, {"a"}, "reads_bad");
  b.Node("Relu", {"a"}, {"y"}, "downstream");
  b.Output("y");
  try {
    ImportOnnxModel(b.model);
    FAIL("import succeeded");
  } catch (const Error& e) {
    const std::string message = e.what();
    CHECK_THAT(message, Catch::Contains("graph input 'bad': element type COMPLEX64 is not supported"));
    CHECK_THAT(message, Catch::Contains("1 problem(s)"));
    CHECK_THAT(message, !Catch::Contains("is not defined before this node"));
    CHECK_THAT(message, !Catch::Contains("reads_bad"));
  }
}

TEST_CASE("Reshape to an empty result, and a -1 an empty result cannot fix", "[onnx][import][regression]") {
  // (0, 6) -> [1, -1] is (1, 0), as ONNX Runtime says.
  ModelBuilder b(13);
  b.Input("x", {0, 6});
  b.Initializer("target", Int64Vector({1, -1}));
  b.Node("Reshape", {"x", "target"}, {"y"});
  b.Output("y");
  const Graph graph = ImportOnnxModel(b.model);
  const auto outputs = Interpret(graph, {{"x", Tensor({0, 6}, DType::kFloat32)}});
  REQUIRE(outputs.size() == 1);
  CHECK(outputs[0].shape() == Shape{1, 0});

  // (0, 6) -> [0, -1] with allowzero=1: any size fits the -1. The message says so and
  // calls the shape an input, as ONNX does.
  ModelBuilder ambiguous(14);
  ambiguous.Input("x", {0, 6});
  ambiguous.Initializer("target", Int64Vector({0, -1}));
  AddIntAttr(ambiguous.Node("Reshape", {"x", "target"}, {"y"}), "allowzero", 1);
  ambiguous.Output("y");
  try {
    ImportOnnxModel(ambiguous.model);
    FAIL("import succeeded");
  } catch (const Error& e) {
    const std::string message = e.what();
    CHECK_THAT(message, Catch::Contains("shape input (0,-1)"));
    CHECK_THAT(message, Catch::Contains("any size would fit"));
    CHECK_THAT(message, !Catch::Contains("attribute"));
  }
}

TEST_CASE("names that are not UTF-8 are refused at import (a kiln graph stores UTF-8)", "[onnx][import]") {
  // Found by the fuzzer: an output named "o\xf2tput" imported, then its saved graph did
  // not load.
  ModelBuilder b(13);
  b.Input("x", {2, 3});
  b.Node("Relu", {"x"}, {"o\xf2tput"}, "relu");
  b.Output("o\xf2tput");
  CHECK_THROWS_WITH(ImportOnnxModel(b.model), Catch::Contains("'o\\xf2tput' is not valid UTF-8"));
  ModelBuilder ok(13);
  ok.Input("x", {2, 3});
  ok.Node("Relu", {"x"}, {"\xc3\xa9t\xc3\xa9"}, "\xe2\x82\xac");  // "été", "€"
  ok.Output("\xc3\xa9t\xc3\xa9");
  CHECK_NOTHROW(ImportOnnxModel(ok.model));
}

// Models over 2 GB keep their initializers in files beside them (external data). A
// model written that way here: MatMul's weights at an offset in one data file.
TEST_CASE("initializers stored in external files beside the model load", "[onnx][external]") {
  const auto dir = std::filesystem::temp_directory_path() / ("kiln_onnx_external_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir / "data");
  const Tensor weights = RandomTensor({3, 4}, 21);
  std::string file(16, '\x7f');  // what the offset skips
  file.append(static_cast<const char*>(weights.data()), weights.nbytes());
  WriteFileAtomic((dir / "data" / "weights.bin").string(), file);

  const auto model_with = [&](const std::string& location, const std::string& offset, const std::string& length) {
    OnnxModelBuilder b;
    b.Input("x", {2, 3});
    b.Initializer("w", weights);
    onnx::TensorProto& w = *b.model.mutable_graph()->mutable_initializer(0);
    w.clear_raw_data();
    w.set_data_location(onnx::TensorProto::EXTERNAL);
    const auto add = [&](const char* key, const std::string& value) {
      if (value.empty()) return;
      auto* entry = w.add_external_data();
      entry->set_key(key);
      entry->set_value(value);
    };
    add("location", location);
    add("offset", offset);
    add("length", length);
    b.Node("MatMul", {"x", "w"}, {"y"});
    b.Output("y");
    const std::string path = (dir / "model.onnx").string();
    WriteFileAtomic(path, b.model.SerializeAsString());
    return path;
  };
  const Tensor x = RandomTensor({2, 3}, 22);
  const std::string good = model_with("data/weights.bin", "16", std::to_string(weights.nbytes()));
  const Graph graph = ImportOnnx(good);
  const Tensor y = Interpret(graph, {{"x", x}})[0];
  REQUIRE(y.shape() == Shape{2, 4});
  for (int64_t i = 0; i < 2; ++i) {
    for (int64_t j = 0; j < 4; ++j) {
      double sum = 0;
      for (int64_t k = 0; k < 3; ++k) sum += x.GetDouble(i * 3 + k) * weights.GetDouble(k * 4 + j);
      CHECK(y.GetDouble(i * 4 + j) == Approx(sum).epsilon(1e-5));
    }
  }
  // From bytes alone there is no directory to read the data from.
  CHECK_THROWS_WITH(ImportOnnxBytes(ReadFile(good)), Catch::Contains("stored in an external file"));

  const auto error = [&](const std::string& location, const std::string& offset, const std::string& length) {
    try {
      ImportOnnx(model_with(location, offset, length));
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("imported");
  };
  CHECK_THAT(error("../weights.bin", "", ""), Catch::Contains("leaves the model's directory"));
  CHECK_THAT(error("/etc/passwd", "", ""), Catch::Contains("leaves the model's directory"));
  CHECK_THAT(error("data/missing.bin", "", ""), Catch::Contains("cannot open") && Catch::Contains("missing.bin"));
  CHECK_THAT(error("data/weights.bin", "40", ""), Catch::Contains("lies beyond 'data/weights.bin'"));
  CHECK_THAT(error("data/weights.bin", "16", "8"), Catch::Contains("length 8 differs from the 48 bytes"));
  CHECK_THAT(error("data/weights.bin", "x", ""), Catch::Contains("offset 'x' is not a whole number"));
  CHECK_THAT(error("", "", ""), Catch::Contains("without a location"));
  std::filesystem::remove_all(dir);
}

// The losses, RMSNormalization and Attention are compositions of kiln operators; the
// conformance suite checks their results. Here: malformed nodes are refused naming the
// attribute or input, and what the suite does not reach.
TEST_CASE("losses, RMSNormalization and Attention refuse malformed nodes by name", "[onnx][import]") {
  const auto error_of = [](const ModelBuilder& b) {
    try {
      ImportOnnxModel(b.model);
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("import succeeded");
  };
  SECTION("NegativeLogLikelihoodLoss: reduction and target shape") {
    ModelBuilder b(13);
    b.Input("x", {3, 5});
    b.Input("t", {3}, onnx::TensorProto::INT64);
    AddStringAttr(b.Node("NegativeLogLikelihoodLoss", {"x", "t"}, {"y"}, "nll"), "reduction", "avg");
    b.Output("y");
    CHECK_THAT(error_of(b), Catch::Contains("NegativeLogLikelihoodLoss node 'nll'") &&
                                Catch::Contains("attribute 'reduction' is 'avg', expected one of none, sum, mean"));
    ModelBuilder shape(13);
    shape.Input("x", {3, 5, 2});
    shape.Input("t", {3, 5}, onnx::TensorProto::INT64);
    shape.Node("NegativeLogLikelihoodLoss", {"x", "t"}, {"y"});
    shape.Output("y");
    CHECK_THAT(error_of(shape), Catch::Contains("target (input 1) must have shape (3,2) for input (3,5,2)"));
  }
  SECTION("RMSNormalization: a stash_type that is no float type") {
    ModelBuilder b(23);
    b.Input("x", {2, 4});
    b.Input("scale", {4});
    AddIntAttr(b.Node("RMSNormalization", {"x", "scale"}, {"y"}), "stash_type", 7);
    b.Output("y");
    CHECK_THAT(error_of(b), Catch::Contains("attribute 'stash_type' is 7, expected a floating point type"));
  }
  SECTION("Attention: 3-d inputs without head counts, half a cache, an unknown output mode") {
    ModelBuilder heads(23);
    for (const char* name : {"q", "k", "v"}) heads.Input(name, {1, 2, 8});
    heads.Node("Attention", {"q", "k", "v"}, {"y"});
    heads.Output("y");
    CHECK_THAT(error_of(heads), Catch::Contains("attribute 'q_num_heads' is required for 3-d Q (1,2,8)"));

    ModelBuilder cache(23);
    for (const char* name : {"q", "k", "v"}) cache.Input(name, {1, 2, 3, 4});
    cache.Input("past_key", {1, 2, 5, 4});
    cache.Node("Attention", {"q", "k", "v", "", "past_key"}, {"y"});
    cache.Output("y");
    CHECK_THAT(error_of(cache), Catch::Contains("past_key and past_value must be given together"));

    ModelBuilder mode(23);
    for (const char* name : {"q", "k", "v"}) mode.Input(name, {1, 2, 3, 4});
    AddIntAttr(mode.Node("Attention", {"q", "k", "v"}, {"y", "", "", "qk"}), "qk_matmul_output_mode", 4);
    mode.Output("y");
    mode.Output("qk");
    CHECK_THAT(error_of(mode), Catch::Contains("attribute 'qk_matmul_output_mode' is 4"));
  }
}

TEST_CASE("Attention: a bool mask with is_causal, and the raw Q K^T output under softcap", "[onnx][import]") {
  const Tensor q = RandomTensor({1, 1, 3, 2}, 11);
  const Tensor k = RandomTensor({1, 1, 3, 2}, 12);
  const Tensor v = RandomTensor({1, 1, 3, 2}, 13);
  // ONNX's reference turns a bool mask into NaN under is_causal (0 * -inf); a mask that
  // keeps everything must leave the causal attention as it is.
  std::vector<Tensor> results;
  for (const bool with_mask : {false, true}) {
    ModelBuilder b(23);
    for (const char* name : {"q", "k", "v"}) b.Input(name, {1, 1, 3, 2});
    std::vector<std::string> inputs = {"q", "k", "v"};
    if (with_mask) {
      b.Input("mask", {3, 3}, onnx::TensorProto::BOOL);
      inputs.push_back("mask");
    }
    AddIntAttr(b.Node("Attention", inputs, {"y"}), "is_causal", 1);
    b.Output("y");
    std::map<std::string, Tensor> feeds = {{"q", q}, {"k", k}, {"v", v}};
    if (with_mask) {
      Tensor mask({3, 3}, DType::kBool);
      for (int64_t i = 0; i < mask.size(); ++i) mask.SetDouble(i, 1);
      feeds["mask"] = mask;
    }
    results.push_back(Interpret(ImportOnnxModel(b.model), feeds)[0]);
  }
  KILN_CHECK_CLOSE(results[0], results[1], 1e-6, 1e-6);
  // The first query sees only the first key: its output is that value row.
  CHECK(results[0].GetDouble(0) == Approx(v.GetDouble(0)).epsilon(1e-5));
  CHECK(results[0].GetDouble(1) == Approx(v.GetDouble(1)).epsilon(1e-5));

  // qk_matmul_output_mode 0 is Q K^T * scale before the softcap, as the spec says (ONNX's
  // reference gives the capped values).
  ModelBuilder b(23);
  for (const char* name : {"q", "k", "v"}) b.Input(name, {1, 1, 3, 2});
  AddFloatAttr(b.Node("Attention", {"q", "k", "v"}, {"y", "", "", "qk"}), "softcap", 0.5);
  b.Output("qk");
  const Tensor qk = Interpret(ImportOnnxModel(b.model), {{"q", q}, {"k", k}, {"v", v}})[0];
  REQUIRE(qk.shape() == Shape{1, 1, 3, 3});
  for (int64_t i = 0; i < 3; ++i) {
    for (int64_t j = 0; j < 3; ++j) {
      const double dot = q.GetDouble(2 * i) * k.GetDouble(2 * j) + q.GetDouble(2 * i + 1) * k.GetDouble(2 * j + 1);
      CHECK(qk.GetDouble(3 * i + j) == Approx(dot / std::sqrt(2.0)).epsilon(1e-5));
    }
  }
}

namespace {

// numpy's einsum by brute force over every assignment of the labels (letters only, an
// explicit output).
Tensor BruteForceEinsum(const std::string& equation, const std::vector<Tensor>& operands) {
  const auto arrow = equation.find("->");
  std::vector<std::string> terms(1);
  for (const char c : equation.substr(0, arrow)) {
    if (c == ',') {
      terms.emplace_back();
    } else {
      terms.back() += c;
    }
  }
  const std::string out = equation.substr(arrow + 2);
  std::map<char, int64_t> sizes;
  for (size_t t = 0; t < terms.size(); ++t) {
    for (size_t i = 0; i < terms[t].size(); ++i) sizes[terms[t][i]] = operands[t].shape()[i];
  }
  std::vector<char> labels;
  for (const auto& [label, size] : sizes) labels.push_back(label);
  Shape out_shape;
  for (const char c : out) out_shape.push_back(sizes[c]);
  Tensor result(out_shape, DType::kFloat64);
  std::map<char, int64_t> at;
  const std::function<void(size_t)> visit = [&](size_t k) {
    if (k == labels.size()) {
      double product = 1;
      for (size_t t = 0; t < terms.size(); ++t) {
        int64_t flat = 0;
        for (size_t i = 0; i < terms[t].size(); ++i) flat = flat * operands[t].shape()[i] + at[terms[t][i]];
        product *= operands[t].GetDouble(flat);
      }
      int64_t flat = 0;
      for (size_t i = 0; i < out.size(); ++i) flat = flat * out_shape[i] + at[out[i]];
      result.SetDouble(flat, result.GetDouble(flat) + product);
      return;
    }
    for (int64_t v = 0; v < sizes[labels[k]]; ++v) {
      at[labels[k]] = v;
      visit(k + 1);
    }
  };
  visit(0);
  return result;
}

}  // namespace

TEST_CASE("Einsum: contractions, diagonals, sums and transposes match a brute-force einsum", "[onnx][import][einsum]") {
  const std::vector<std::pair<std::string, std::vector<Shape>>> cases = {
      {"ij,jk,kl->il", {{2, 3}, {3, 4}, {4, 2}}},  // a chain of three operands
      {"ii->", {{4, 4}}},                          // the trace
      {"i,j->ij", {{3}, {4}}},                     // an outer product
      {"bij,bkj->bik", {{2, 3, 4}, {2, 5, 4}}},    // batched, contracted last axes
      {"iij,jk->ik", {{3, 3, 2}, {2, 4}}},         // a diagonal, then a product
      {"abc,cb->a", {{2, 3, 4}, {4, 3}}},          // two contracted labels
      {"ijk->kji", {{2, 3, 4}}},                   // a transpose
      {"ij,ij->i", {{3, 5}, {3, 5}}},              // rows' inner products
  };
  uint64_t seed = 40;
  for (const auto& [equation, shapes] : cases) {
    INFO(equation);
    ModelBuilder b(13);
    std::vector<std::string> names;
    std::map<std::string, Tensor> feeds;
    std::vector<Tensor> operands;
    for (size_t i = 0; i < shapes.size(); ++i) {
      names.push_back("x" + std::to_string(i));
      b.Input(names.back(), shapes[i]);
      operands.push_back(RandomTensor(shapes[i], ++seed, -1, 1));
      feeds[names.back()] = operands.back();
    }
    AddStringAttr(b.Node("Einsum", names, {"y"}), "equation", equation);
    b.Output("y");
    const Tensor actual = Interpret(ImportOnnxModel(b.model), feeds)[0];
    const Tensor expected = BruteForceEinsum(equation, operands);
    REQUIRE(actual.shape() == expected.shape());
    KILN_CHECK_CLOSE(actual, expected.CastTo(DType::kFloat32), 1e-5, 1e-5);
  }
  ModelBuilder bad(13);
  bad.Input("x", {2, 3});
  AddStringAttr(bad.Node("Einsum", {"x"}, {"y"}), "equation", "ijk->i");
  bad.Output("y");
  CHECK_THROWS_WITH(ImportOnnxModel(bad.model), Catch::Contains("'ijk' has 3 labels for an operand of rank 2"));
}

TEST_CASE("0-d and empty tensors go through import, compilation, artifacts and the runtime", "[onnx][import][scalar]") {
  ModelBuilder b(18);
  b.Input("x", {2, 3});
  b.Input("s", {});  // a 0-d input
  b.Input("e", {0, 6});
  AddIntAttr(b.Node("ReduceSum", {"x"}, {"total"}), "keepdims", 0);  // every axis: 0-d
  b.Node("Add", {"total", "s"}, {"shifted"});
  b.Initializer("shape", Int64Vector({1, -1}));
  b.Node("Reshape", {"e", "shape"}, {"flat"});  // (0, 6) -> (1, 0)
  b.Node("Relu", {"e"}, {"empty_relu"});
  b.Output("shifted");
  b.Output("flat");
  b.Output("empty_relu");
  const Graph graph = ImportOnnxModel(b.model);
  const Tensor x = Values({2, 3}, {1, 2, 3, 4, 5, 6});
  const Tensor s = Values({}, {0.5});
  const std::map<std::string, Tensor> feeds = {{"x", x}, {"s", s}, {"e", Tensor({0, 6}, DType::kFloat32)}};
  const auto check = [](const std::vector<Tensor>& out) {
    REQUIRE(out.size() == 3);
    CHECK(out[0].shape() == Shape{});
    CHECK(out[0].GetDouble(0) == 21.5);
    CHECK(out[1].shape() == Shape{1, 0});
    CHECK(out[2].shape() == Shape{0, 6});
  };
  check(Interpret(graph, feeds));
  const auto jit = CompileJit(graph, CompileOptions{});
  check(jit->Run(feeds));
  CHECK(jit->inputs().size() == 3);
  const auto path = std::filesystem::temp_directory_path() / ("kiln_scalar_" + std::to_string(::getpid()) + ".kiln");
  SaveArtifact(path.string(), CompileGraph(graph, CompileOptions{}));
  check(Executor::Load(path.string())->Run(feeds));
  std::filesystem::remove(path);
}

TEST_CASE("int16, uint16, uint32, uint64 and bfloat16 tensors import from every field", "[onnx][import][dtype]") {
  const auto typed = [](int32_t type) {
    onnx::TensorProto proto;
    proto.set_data_type(type);
    proto.add_dims(2);
    return proto;
  };
  onnx::TensorProto i16 = typed(onnx::TensorProto::INT16);
  i16.add_int32_data(-32768);
  i16.add_int32_data(7);
  CHECK(TensorFromOnnx(i16, "i16").ToDoubles() == std::vector<double>{-32768, 7});
  onnx::TensorProto u16 = typed(onnx::TensorProto::UINT16);
  u16.add_int32_data(65535);
  u16.add_int32_data(1);
  CHECK(TensorFromOnnx(u16, "u16").ToDoubles() == std::vector<double>{65535, 1});
  onnx::TensorProto bf16 = typed(onnx::TensorProto::BFLOAT16);  // int32_data holds the bits
  bf16.add_int32_data(0x3fc0);
  bf16.add_int32_data(0xc020);
  const Tensor halves = TensorFromOnnx(bf16, "bf16");
  CHECK(halves.dtype() == DType::kBFloat16);
  CHECK(halves.ToDoubles() == std::vector<double>{1.5, -2.5});
  onnx::TensorProto u32 = typed(onnx::TensorProto::UINT32);  // uint64_data holds the values
  u32.add_uint64_data(4294967295u);
  u32.add_uint64_data(3);
  CHECK(TensorFromOnnx(u32, "u32").ToDoubles() == std::vector<double>{4294967295.0, 3});
  onnx::TensorProto u64 = typed(onnx::TensorProto::UINT64);
  u64.add_uint64_data(UINT64_MAX);
  u64.add_uint64_data((uint64_t{1} << 63) + 1);
  const Tensor wide = TensorFromOnnx(u64, "u64");
  CHECK(wide.data_as<uint64_t>()[0] == UINT64_MAX);
  CHECK(wide.data_as<uint64_t>()[1] == (uint64_t{1} << 63) + 1);
  u64.add_uint64_data(5);
  CHECK_THROWS_WITH(TensorFromOnnx(u64, "u64"), Catch::Contains("3 values for shape (2)"));
  // raw_data, and back: the exporter's element types are the importer's.
  for (const Tensor& t : {TensorFromOnnx(i16, "i16"), halves, wide}) {
    const onnx::TensorProto proto = TensorToOnnx(t, "t");
    CHECK(DTypeFromOnnx(proto.data_type()) == t.dtype());
    CHECK(TensorFromOnnx(proto, "t").BitwiseEquals(t));
  }
}

TEST_CASE("uint64 beyond int64's range and bfloat16 compute through import and compilation", "[onnx][import][dtype]") {
  ModelBuilder b(13);
  b.Input("x", {3}, onnx::TensorProto::UINT64);
  Tensor c({3}, DType::kUInt64);
  const uint64_t high = (uint64_t{1} << 63) + 1;
  c.data_as<uint64_t>()[0] = high;
  c.data_as<uint64_t>()[1] = 3;
  c.data_as<uint64_t>()[2] = UINT64_MAX;
  b.Initializer("c", c);
  b.Node("Max", {"x", "c"}, {"max"});
  b.Node("Div", {"x", "c"}, {"quotient"});
  b.Node("Less", {"x", "c"}, {"less"});
  AddIntAttr(b.Node("Cast", {"x"}, {"as_bf16"}), "to", onnx::TensorProto::BFLOAT16);
  b.Output("max");
  b.Output("quotient");
  b.Output("less");
  b.Output("as_bf16");
  const Graph graph = ImportOnnxModel(b.model);
  Tensor x({3}, DType::kUInt64);
  x.data_as<uint64_t>()[0] = 5;
  x.data_as<uint64_t>()[1] = UINT64_MAX - 1;
  x.data_as<uint64_t>()[2] = UINT64_MAX;
  const auto check = [&](const std::vector<Tensor>& out) {
    REQUIRE(out.size() == 4);
    CHECK(out[0].data_as<uint64_t>()[0] == high);
    CHECK(out[0].data_as<uint64_t>()[1] == UINT64_MAX - 1);
    CHECK(out[0].data_as<uint64_t>()[2] == UINT64_MAX);
    CHECK(out[1].data_as<uint64_t>()[0] == 0);
    CHECK(out[1].data_as<uint64_t>()[1] == (UINT64_MAX - 1) / 3);
    CHECK(out[1].data_as<uint64_t>()[2] == 1);
    CHECK(out[2].dtype() == DType::kBool);
    CHECK(out[2].ToDoubles() == std::vector<double>{1, 0, 0});
    CHECK(out[3].dtype() == DType::kBFloat16);
    CHECK(out[3].ToDoubles() == std::vector<double>{5, 0x1p64, 0x1p64});
  };
  check(Interpret(graph, {{"x", x}}));
  check(CompileJit(graph, CompileOptions{})->Run({{"x", x}}));
}

TEST_CASE("MaxPool's Indices output counts over batch and channels; dilated windows", "[onnx][import][pool]") {
  ModelBuilder b(12);
  b.Input("x", {2, 3, 5, 4});
  auto& pool = b.Node("MaxPool", {"x"}, {"y", "indices"});
  AddIntsAttr(pool, "kernel_shape", {2, 2});
  AddIntsAttr(pool, "dilations", {2, 1});
  AddIntsAttr(pool, "strides", {1, 2});
  AddIntsAttr(pool, "pads", {1, 0, 0, 0});
  b.Output("y");
  b.Output("indices");
  const Tensor x = RandomTensor({2, 3, 5, 4}, 77, -1, 1);
  const auto out = Interpret(ImportOnnxModel(b.model), {{"x", x}});
  // Output rows: (5 + 1 - 3) / 1 + 1 = 4; columns (4 - 2) / 2 + 1 = 2.
  REQUIRE(out[0].shape() == Shape{2, 3, 4, 2});
  REQUIRE(out[1].dtype() == DType::kInt64);
  for (int64_t nc = 0; nc < 6; ++nc) {
    for (int64_t r = 0; r < 4; ++r) {
      for (int64_t c = 0; c < 2; ++c) {
        double best = -INFINITY;
        int64_t where = -1;
        for (int64_t i = 0; i < 2; ++i) {
          for (int64_t j = 0; j < 2; ++j) {
            const int64_t h = r + 2 * i - 1, w = 2 * c + j;
            if (h < 0 || h >= 5) continue;
            const int64_t flat = nc * 20 + h * 4 + w;
            if (x.GetDouble(flat) > best) {
              best = x.GetDouble(flat);
              where = flat;
            }
          }
        }
        const int64_t k = (nc * 4 + r) * 2 + c;
        CHECK(out[0].GetDouble(k) == best);
        CHECK(out[1].data_as<int64_t>()[k] == where);
      }
    }
  }
}
