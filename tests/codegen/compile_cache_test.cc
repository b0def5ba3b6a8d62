// The on-disk compile cache (codegen/compile_cache.h): a second compile of the same
// lowered graph loads the stored artifact and computes the same outputs; a damaged entry
// is compiled again; another target or optimization level is another entry.
#include "codegen/compile_cache.h"

#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>

#include "tests/op_test_util.h"
#include "tests/test_models.h"

using namespace kiln;
using namespace kiln::testing;

namespace {

std::string TempDir() {
  std::string pattern = (std::filesystem::temp_directory_path() / "kiln_cache_test_XXXXXX").string();
  REQUIRE(::mkdtemp(pattern.data()) != nullptr);
  return pattern;
}

}  // namespace

TEST_CASE("the compile cache stores an artifact once and loads it after", "[codegen][cache]") {
  const std::string dir = TempDir() + "/cache";  // created on first use
  const Graph graph = WithRandomParams(TestMlp(16), {{"data", {2, 12}}}, 1);
  CompileOptions options;
  options.input_shapes = {{"data", {2, 12}}};
  const LoweredGraph lowered = LowerGraph(graph, options);
  const std::map<std::string, Tensor> inputs = {{"data", RandomTensor({2, 12}, 2)}};
  const auto expected = CompileJit(lowered, options.target)->Run(inputs);

  CompileCache cache(dir);
  const auto first = cache.Load(lowered, options.target);
  CHECK_FALSE(first.hit);
  CHECK(std::filesystem::exists(first.path));
  CHECK(first.executor->Run(inputs)[0].BitwiseEquals(expected[0]));
  const auto second = cache.Load(LowerGraph(graph, options), options.target);
  CHECK(second.hit);
  CHECK(second.path == first.path);
  CHECK(second.executor->Run(inputs)[0].BitwiseEquals(expected[0]));

  // A damaged entry (cut short) is compiled again and replaced.
  std::filesystem::resize_file(first.path, std::filesystem::file_size(first.path) / 2);
  const auto repaired = cache.Load(lowered, options.target);
  CHECK_FALSE(repaired.hit);
  CHECK(repaired.executor->Run(inputs)[0].BitwiseEquals(expected[0]));
  CHECK(cache.Load(lowered, options.target).hit);

  CpuTarget other = options.target;
  other.opt_level = 1;
  CHECK(CompileCache::Key(lowered, other) != CompileCache::Key(lowered, options.target));
  std::filesystem::remove_all(std::filesystem::path(dir).parent_path());
}

TEST_CASE("the cache directory follows KILN_CACHE_DIR, XDG_CACHE_HOME and HOME", "[codegen][cache]") {
  ::setenv("KILN_CACHE_DIR", "/tmp/kiln-cache-here", 1);
  CHECK(CompileCache::DefaultDir() == "/tmp/kiln-cache-here");
  ::setenv("KILN_CACHE_DIR", "off", 1);
  CHECK(CompileCache::DefaultDir().empty());
  ::unsetenv("KILN_CACHE_DIR");
  ::setenv("XDG_CACHE_HOME", "/tmp/xdg", 1);
  CHECK(CompileCache::DefaultDir() == "/tmp/xdg/kiln");
  ::unsetenv("XDG_CACHE_HOME");
  ::setenv("HOME", "/home/someone", 1);
  CHECK(CompileCache::DefaultDir() == "/home/someone/.cache/kiln");
}
