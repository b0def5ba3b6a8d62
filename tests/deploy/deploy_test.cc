// deploy/'s manifests: yamllint (deploy/.yamllint), then tests/deploy/check_manifests.py
// (kinds and fields, probes on the protocol's health endpoints, every kiln-serve option
// the containers pass is one kiln-serve accepts). yamllint is installed in /opt/kiln-py by
// tools/install_python_deps.sh; without it the test says it skipped and why.
#include <catch2/catch.hpp>
#include <cstdlib>
#include <filesystem>
#include <string>

#include "runtime/file_util.h"

namespace {

constexpr const char* kPython = "/opt/kiln-py/bin/python";

TEST_CASE("deploy/'s manifests lint clean and match kiln-serve's options", "[deploy]") {
  const char* tmp = std::getenv("TEST_TMPDIR");
  const std::string log = std::string(tmp != nullptr ? tmp : "/tmp") + "/deploy.log";
  if (!std::filesystem::exists(kPython) ||
      std::system((std::string(kPython) + " -c 'import yamllint, yaml' > " + log + " 2>&1").c_str()) != 0) {
    WARN("SKIPPED: yamllint cannot be imported by " << kPython << " (tools/install_python_deps.sh)");
    return;
  }
  const int lint =
      std::system((std::string(kPython) + " -m yamllint -s -c deploy/.yamllint deploy > " + log + " 2>&1").c_str());
  INFO(kiln::ReadFile(log));
  CHECK(lint == 0);
  const int check = std::system(
      (std::string(kPython) + " tests/deploy/check_manifests.py deploy serve/kiln-serve > " + log + " 2>&1").c_str());
  const std::string output = kiln::ReadFile(log);
  INFO(output);
  CHECK(check == 0);
  CHECK(output.find(": ok") != std::string::npos);
}

}  // namespace
