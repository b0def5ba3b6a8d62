// The artifact's file layout (runtime/artifact.h): a header, the message, and a data
// section whose parameters the executor uses in place from a mapping of the file. Every
// field a file could lie in is checked, with the checksum made valid so that the
// layout checks themselves are what refuses it.
#include <catch2/catch.hpp>
#include <cstring>
#include <filesystem>
#include <functional>

#include "codegen/compiler.h"
#include "passes/interpreter.h"
#include "runtime/artifact.h"
#include "runtime/error.h"
#include "runtime/executor.h"
#include "runtime/file_util.h"
#include "runtime/param_file.h"
#include "runtime/signing.h"
#include "symbol/ops_api.h"
#include "tests/op_test_util.h"
#include "tests/test_models.h"

using namespace kiln;
using namespace kiln::testing;

namespace {

std::string TempPath(const std::string& name) {
  const auto dir = std::filesystem::temp_directory_path() / ("kiln_layout_test_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  return (dir / name).string();
}

uint64_t GetU64(std::string_view bytes, size_t at) {
  uint64_t value = 0;
  std::memcpy(&value, bytes.data() + at, 8);  // little-endian hosts only, as kiln is
  return value;
}

void PutU64(std::string& bytes, size_t at, uint64_t value) {
  std::memcpy(bytes.data() + at, &value, 8);
}

// The checksum made valid again after an edit.
std::string Resealed(std::string bytes) {
  PutU64(bytes, 8, ArtifactChecksum(std::string_view(bytes).substr(16)));
  return bytes;
}

// The file with its message edited by `edit` (the data section as it was, the header's
// sizes and the checksum made to fit).
std::string WithMessage(const std::string& file, const std::function<void(proto::ArtifactProto&)>& edit) {
  proto::ArtifactProto message;
  REQUIRE(message.ParseFromArray(file.data() + 64, static_cast<int>(GetU64(file, 16))));
  edit(message);
  const std::string body = message.SerializeAsString();
  const std::string data = file.substr(GetU64(file, 24));
  const uint64_t data_offset = (64 + body.size() + 4095) / 4096 * 4096;
  std::string out = file.substr(0, 64) + body;
  out.resize(data_offset, '\0');
  out += data;
  PutU64(out, 16, body.size());
  PutU64(out, 24, data_offset);
  return Resealed(out);
}

std::string OpenError(const std::string& bytes) {
  try {
    OpenArtifact(bytes, "m.kiln");
  } catch (const Error& e) {
    return e.what();
  }
  return "opened";
}

struct Compiled {
  Graph graph;
  proto::ArtifactProto artifact;
};

Compiled CompiledLeNet() {
  Compiled compiled{WithRandomParams(TestLeNet(), {{"data", {2, 1, 28, 28}}}, 11), {}};
  CompileOptions options;
  options.input_shapes = {{"data", {2, 1, 28, 28}}};
  compiled.artifact = CompileGraph(compiled.graph, options);
  return compiled;
}

}  // namespace

TEST_CASE("artifact data section: parameters and code aligned, the message without them", "[artifact]") {
  const Compiled lenet = CompiledLeNet();
  const proto::ArtifactProto& artifact = lenet.artifact;
  REQUIRE(artifact.param_values_size() > 0);
  const std::string file = SerializeArtifact(artifact);
  CHECK(file.substr(0, 8) == std::string("KILNART\0", 8));
  const uint64_t data_offset = GetU64(file, 24);
  CHECK(data_offset % kArtifactDataSectionAlignment == 0);
  CHECK(data_offset >= 64 + GetU64(file, 16));
  CHECK(GetU64(file, 32) == file.size() - data_offset);

  const ArtifactView view = OpenArtifact(file, "lenet.kiln");
  REQUIRE(view.param_data.size() == static_cast<size_t>(artifact.param_values_size()));
  for (int i = 0; i < artifact.param_values_size(); ++i) {
    const std::string_view bytes = view.param_data[static_cast<size_t>(i)];
    CHECK(view.message.param_values(i).data().empty());
    CHECK(view.message.param_values(i).name() == artifact.param_values(i).name());
    CHECK(bytes == artifact.param_values(i).data());
    CHECK(static_cast<uint64_t>(bytes.data() - file.data()) % kArtifactDataAlignment == 0);
  }
  CHECK(view.code == artifact.code());
  CHECK(view.message.code().empty());
  CHECK_FALSE(view.signature.is_signed);

  // ParseArtifact gives the compiler's form back, and it serializes to the same bytes.
  const proto::ArtifactProto parsed = ParseArtifact(file);
  CHECK(parsed.param_data_size() == 0);
  CHECK(parsed.code() == artifact.code());
  CHECK(SerializeArtifact(parsed) == file);
}

TEST_CASE("Executor::Load maps the artifact and uses its parameters in place", "[artifact]") {
  const Compiled lenet = CompiledLeNet();
  const Tensor data = RandomTensor({2, 1, 28, 28}, 3, 0, 1);
  const auto expected = Interpret(lenet.graph, {{"data", data}});
  uint64_t parameter_bytes = 0;
  for (const auto& value : lenet.artifact.param_values()) parameter_bytes += value.data().size();

  const std::string path = TempPath("lenet.kiln");
  SaveArtifact(path, lenet.artifact);
  CHECK(FileBytes::Open(path)->mapped());
  {
    const auto executor = Executor::Load(path);
    CHECK(executor->mapped_param_bytes() == parameter_bytes);
    // The mapping outlives the file's name: a deployment replacing the file by rename
    // (as SaveArtifact does) does not disturb a loaded model.
    std::filesystem::remove(path);
    KILN_CHECK_CLOSE(executor->Run({{"data", data}})[0], expected[0], 1e-4, 1e-5);
  }

  // A signed artifact's envelope (110 bytes and the key name) moves the data off the
  // 64-byte alignment: its parameters are copied, and the model runs the same.
  const KeyPair key = GenerateKeyPair("layout-test");
  SaveArtifact(path, lenet.artifact, &key);
  const auto signed_executor = Executor::Load(path, {.trusted_keys = {key.public_part()}});
  CHECK(signed_executor->mapped_param_bytes() == 0);
  KILN_CHECK_CLOSE(signed_executor->Run({{"data", data}})[0], expected[0], 1e-4, 1e-5);

  // Rebinding a parameter replaces the mapped one.
  SaveArtifact(path, lenet.artifact);
  const auto executor = Executor::Load(path);
  const Tensor before = executor->Run({{"data", data}})[0];
  const proto::TensorProto& first = lenet.artifact.param_values(0);
  const Tensor zeros(Shape(first.shape().begin(), first.shape().end()), static_cast<DType>(first.dtype()));
  executor->BindParams({{first.name(), zeros}});
  CHECK_FALSE(executor->Run({{"data", data}})[0].BitwiseEquals(before));
  executor->BindParams({{first.name(), TensorFromProto(first, first.name())}});
  CHECK(executor->Run({{"data", data}})[0].BitwiseEquals(before));
}

TEST_CASE("artifact layout errors: old formats, headers, data references", "[artifact][errors]") {
  const Compiled lenet = CompiledLeNet();
  const std::string good = SerializeArtifact(lenet.artifact);
  REQUIRE(OpenError(good) == "opened");

  // Format 1: the message (weights inside) right after magic and checksum.
  proto::ArtifactProto format1 = lenet.artifact;
  format1.set_format_version(1);
  const std::string old = Resealed(std::string(good.substr(0, 16)) + format1.SerializeAsString());
  CHECK_THAT(OpenError(old),
             Catch::Contains("written by an older kiln (artifact format 1") && Catch::Contains("recompile the model"));

  // Header fields, each made inconsistent under a valid checksum.
  const auto with_header = [&](size_t at, uint64_t value) {
    std::string bytes = good;
    PutU64(bytes, at, value);
    return OpenError(Resealed(bytes));
  };
  const uint64_t message_size = GetU64(good, 16);
  const uint64_t data_offset = GetU64(good, 24);
  CHECK_THAT(with_header(16, data_offset), Catch::Contains("inconsistent header"));
  CHECK_THAT(with_header(16, ~uint64_t{0}), Catch::Contains("inconsistent header"));
  CHECK_THAT(with_header(24, data_offset + 1), Catch::Contains("inconsistent header"));
  CHECK_THAT(with_header(24, 0), Catch::Contains("inconsistent header"));
  CHECK_THAT(with_header(24, data_offset + 4096), Catch::Contains("inconsistent header"));
  CHECK_THAT(with_header(32, GetU64(good, 32) - 1), Catch::Contains("inconsistent header"));
  CHECK_THAT(with_header(40, 1), Catch::Contains("inconsistent header"));
  CHECK_THAT(with_header(56, 1), Catch::Contains("inconsistent header"));
  CHECK_THAT(with_header(16, message_size - 1), Catch::Contains("bad message"));
  CHECK_THAT(OpenError(Resealed(good + std::string(64, '\0'))), Catch::Contains("inconsistent header"));
  for (size_t cut : {size_t{16}, size_t{17}, size_t{63}}) {
    CHECK_THAT(OpenError(Resealed(good.substr(0, cut))), Catch::Contains("truncated"));
  }

  // Data references that point outside, off alignment, or at the wrong size.
  const std::string first = lenet.artifact.param_values(0).name();
  const auto with_message = [&](const std::function<void(proto::ArtifactProto&)>& edit) {
    return OpenError(WithMessage(good, edit));
  };
  CHECK(with_message([](proto::ArtifactProto&) {}) == "opened");
  CHECK_THAT(with_message([](proto::ArtifactProto& m) { m.mutable_param_data(0)->set_offset(~uint64_t{0} - 63); }),
             Catch::Contains("parameter '" + first + "': bytes [") && Catch::Contains("outside the data section"));
  CHECK_THAT(with_message([](proto::ArtifactProto& m) { m.mutable_param_data(0)->set_offset(4); }),
             Catch::Contains("offset 4 is not a multiple of 64"));
  CHECK_THAT(
      with_message([](proto::ArtifactProto& m) { m.mutable_param_data(0)->set_size(m.param_data(0).size() + 4); }),
      Catch::Contains("parameter '" + first + "'") && Catch::Contains("needs") &&
          Catch::Contains("the artifact gives"));
  CHECK_THAT(with_message([](proto::ArtifactProto& m) { m.mutable_param_values(0)->add_shape(1 << 30); }),
             Catch::Contains("parameter '" + first + "'"));
  CHECK_THAT(with_message([](proto::ArtifactProto& m) { m.mutable_param_values(0)->set_dtype(42); }),
             Catch::Contains("unknown dtype code 42"));
  CHECK_THAT(with_message([](proto::ArtifactProto& m) { m.mutable_param_data()->RemoveLast(); }),
             Catch::Contains("data references"));
  CHECK_THAT(with_message([](proto::ArtifactProto& m) { m.set_code("inline code"); }), Catch::Contains("bad message"));
  CHECK_THAT(with_message([](proto::ArtifactProto& m) { m.mutable_code_data()->set_size(uint64_t{1} << 40); }),
             Catch::Contains("the code object: bytes [") && Catch::Contains("outside the data section"));
}

TEST_CASE("batch specializations: one artifact, weights stored once, each batch runs its own code", "[artifact]") {
  const Graph graph = WithRandomParams(TestLeNet(), {{"data", {2, 1, 28, 28}}}, 11);
  CompileOptions options;
  options.input_shapes = {{"data", {2, 1, 28, 28}}};
  options.batch_sizes = {8, 1, 3};
  const proto::ArtifactProto artifact = CompileGraph(graph, options);
  CHECK(artifact.batch_size() == 1);
  REQUIRE(artifact.batch_variants_size() == 2);
  CHECK(artifact.batch_variants(0).batch_size() == 3);
  CHECK(artifact.batch_variants(1).batch_size() == 8);
  CHECK(artifact.batch_variants(1).inputs(0).shape(0) == 8);

  // Every variant's weights are the top-level ones' bytes in the file, not copies.
  const std::string file = SerializeArtifact(artifact);
  const ArtifactView view = OpenArtifact(file, "lenet.kiln");
  REQUIRE(view.batch_variants.size() == 2);
  uint64_t all_param_bytes = 0;
  int64_t shared = 0;
  for (const ArtifactView& variant : view.batch_variants) {
    CHECK(variant.code.data() != view.code.data());
    for (size_t i = 0; i < variant.param_data.size(); ++i) {
      all_param_bytes += variant.param_data[i].size();
      for (size_t j = 0; j < view.param_data.size(); ++j) {
        if (variant.message.param_values(static_cast<int>(i)).name() !=
            view.message.param_values(static_cast<int>(j)).name())
          continue;
        if (variant.param_data[i] != view.param_data[j]) continue;
        CHECK(variant.param_data[i].data() == view.param_data[j].data());
        ++shared;
      }
    }
  }
  for (const std::string_view bytes : view.param_data) all_param_bytes += bytes.size();
  CHECK(shared >= 2 * 4);  // LeNet's two convolutions' and dense layers' weights, at least
  CHECK(GetU64(file, 32) < all_param_bytes);
  CHECK(SerializeArtifact(ParseArtifact(file)) == file);

  const std::string path = TempPath("lenet_batches.kiln");
  SaveArtifact(path, artifact);
  const auto executor = Executor::Load(path);
  CHECK(executor->batch_sizes() == std::vector<int64_t>{1, 3, 8});
  CHECK(executor->inputs()[0].shape == Shape{1, 1, 28, 28});
  CHECK(executor->ForBatch(8).outputs()[0].shape == Shape{8, 10});
  // Only the artifact's own batch has an arena at load; the others make theirs when run.
  CHECK(executor->idle_arenas() == 1);
  CHECK(executor->ForBatch(8).idle_arenas() == 0);
  CHECK_THROWS_WITH(executor->ForBatch(5),
                    Catch::Contains("no code for batch size 5") && Catch::Contains("compiled for batch sizes 1, 3, 8"));
  for (const int64_t batch : {1, 3, 8}) {
    INFO("batch " << batch);
    const Tensor data = RandomTensor({batch, 1, 28, 28}, 40 + batch, 0, 1);
    const Graph batched = WithRandomParams(TestLeNet(), {{"data", {batch, 1, 28, 28}}}, 11);
    const std::vector<Tensor> out = executor->Run({{"data", data}});
    REQUIRE(out[0].shape() == Shape{batch, 10});
    KILN_CHECK_CLOSE(out[0], Interpret(batched, {{"data", data}})[0], 1e-4, 1e-5);
  }
  CHECK(executor->ForBatch(8).idle_arenas() == 1);
  CHECK_THROWS_WITH(executor->Run({{"data", RandomTensor({5, 1, 28, 28}, 1)}}),
                    Catch::Contains("no code for batch size 5 (compiled for batch sizes 1, 3, 8)"));
  // A row's result does not depend on the batch it runs in: bit for bit.
  const Tensor data = RandomTensor({8, 1, 28, 28}, 99, 0, 1);
  const Tensor all = executor->Run({{"data", data}})[0];
  for (int64_t row = 0; row < 8; ++row) {
    INFO("row " << row);
    Tensor one({1, 1, 28, 28}, DType::kFloat32);
    std::memcpy(one.data(), data.data_as<float>() + row * 784, 784 * sizeof(float));
    const Tensor got = executor->Run({{"data", one}})[0];
    CHECK(std::memcmp(got.data(), all.data_as<float>() + row * 10, 10 * sizeof(float)) == 0);
  }

  // Sizes that are not batch sizes, and a model whose outputs do not follow axis 0.
  options.batch_sizes = {2, 0};
  CHECK_THROWS_WITH(CompileGraph(graph, options), Catch::Contains("at least 1, given 2,0"));
  options.batch_sizes = {2, 2};
  CHECK_THROWS_WITH(CompileGraph(graph, options), Catch::Contains("distinct"));
  Symbol x = Symbol::Variable("x");
  CompileOptions sum_options;
  sum_options.input_shapes = {{"x", {4, 3}}};
  sum_options.batch_sizes = {1, 2};
  CHECK_THROWS_WITH(CompileGraph(sym::sum(x, {{"axis", int64_t{0}}}, "total").ToGraph(), sum_options),
                    Catch::Contains("output 'total") && Catch::Contains("does not follow"));
}
