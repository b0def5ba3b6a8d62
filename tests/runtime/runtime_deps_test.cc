// The deployable runtime stays light: a program that runs artifacts (examples/run_model)
// links neither LLVM nor NVRTC nor the compiler. (Bazel visibility also forbids
// //runtime from depending on symbol/, passes/ or codegen/.)
#include <sys/stat.h>

#include <array>
#include <catch2/catch.hpp>
#include <cstdio>
#include <string>

namespace {
std::string Capture(const std::string& command) {
  std::string output;
  FILE* pipe = ::popen(command.c_str(), "r");
  REQUIRE(pipe != nullptr);
  std::array<char, 4096> buffer{};
  size_t n = 0;
  while ((n = std::fread(buffer.data(), 1, buffer.size(), pipe)) > 0) output.append(buffer.data(), n);
  ::pclose(pipe);
  return output;
}
}  // namespace

TEST_CASE("run_model links no LLVM, NVRTC or compiler library", "[runtime][deps]") {
  const std::string binary = "examples/run_model";
  struct stat info {};
  REQUIRE(::stat(binary.c_str(), &info) == 0);
  const std::string libraries = Capture("ldd " + binary + " 2>&1");
  INFO(libraries);
  CHECK(libraries.find("libLLVM") == std::string::npos);
  CHECK(libraries.find("nvrtc") == std::string::npos);
  CHECK(libraries.find("libprotobuf") != std::string::npos);
  const std::string symbols = Capture("nm -C " + binary + " 2>/dev/null | grep -c -E 'kiln::(InferShape|LowerNode|Symbol::)' || true");
  CHECK(std::stoi(symbols) == 0);
}
