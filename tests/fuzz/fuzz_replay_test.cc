// Replays every seed (tests/fuzz/corpus/<target>/) and every crash the fuzzers found
// (tests/fuzz/regressions/<target>/) through the fuzz targets with the normal build:
// each must return normally, so that a fixed crash stays fixed.
#include <algorithm>
#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "tests/fuzz/fuzz_targets.h"

namespace kiln::fuzz {
namespace {

std::vector<std::filesystem::path> FilesIn(const std::filesystem::path& dir) {
  std::vector<std::filesystem::path> files;
  if (!std::filesystem::is_directory(dir)) return files;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    if (entry.is_regular_file() && entry.path().filename().string().front() != '.') files.push_back(entry.path());
  }
  std::sort(files.begin(), files.end());
  return files;
}

void Replay(const std::string& target) {
  const auto it = std::find_if(std::begin(kFuzzTargets), std::end(kFuzzTargets),
                               [&](const FuzzTarget& t) { return t.name == target; });
  REQUIRE(it != std::end(kFuzzTargets));
  const auto seeds = FilesIn("tests/fuzz/corpus/" + target);
  const auto regressions = FilesIn("tests/fuzz/regressions/" + target);
  CHECK(!seeds.empty());
  for (const auto* files : {&seeds, &regressions}) {
    for (const auto& path : *files) {
      INFO(path.string());
      std::ifstream in(path, std::ios::binary);
      REQUIRE(in);
      const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
      int status = -1;
      REQUIRE_NOTHROW(status = it->fn(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()));
      CHECK(status == 0);
    }
  }
}

}  // namespace

TEST_CASE("fuzz replay: npy") {
  Replay("npy");
}
TEST_CASE("fuzz replay: params") {
  Replay("params");
}
TEST_CASE("fuzz replay: graph") {
  Replay("graph");
}
TEST_CASE("fuzz replay: graph_text") {
  Replay("graph_text");
}
TEST_CASE("fuzz replay: artifact") {
  Replay("artifact");
}
TEST_CASE("fuzz replay: executor") {
  Replay("executor");
}
TEST_CASE("fuzz replay: cuda_executor") {
  Replay("cuda_executor");
}
TEST_CASE("fuzz replay: onnx") {
  Replay("onnx");
}
TEST_CASE("fuzz replay: attrs") {
  Replay("attrs");
}
TEST_CASE("fuzz replay: shape") {
  Replay("shape");
}
TEST_CASE("fuzz replay: cli") {
  Replay("cli");
}
TEST_CASE("fuzz replay: keys") {
  Replay("keys");
}
TEST_CASE("fuzz replay: mxnet_symbol") {
  Replay("mxnet_symbol");
}

TEST_CASE("fuzz replay: initializer") {
  Replay("initializer");
}

TEST_CASE("fuzz replay: optimizer") {
  Replay("optimizer");
}

TEST_CASE("fuzz replay: idx") {
  Replay("idx");
}

TEST_CASE("fuzz replay: infer_request") {
  Replay("infer_request");
}

TEST_CASE("fuzz replay: grpc_infer_request") {
  Replay("grpc_infer_request");
}

TEST_CASE("fuzz replay: model_config") {
  Replay("model_config");
}

TEST_CASE("fuzz replay: every target has a test case here") {
  CHECK(std::size(kFuzzTargets) == 19);
}

}  // namespace kiln::fuzz
