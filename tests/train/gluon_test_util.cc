#include "tests/train/gluon_test_util.h"

#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "runtime/error.h"
#include "runtime/npz.h"

namespace kiln::testing {

using namespace gluon;

nlohmann::json LoadGluonIndex(const std::string& name) {
  std::ifstream file(std::string(kGluonData) + name);
  if (!file) throw Error("cannot open " + std::string(kGluonData) + name);
  return nlohmann::json::parse(file);
}

std::map<std::string, Tensor> LoadGluonArrays(const std::string& name) {
  return LoadNpz(std::string(kGluonData) + name).AsMap();
}

std::string TempPath(const std::string& name) {
  const char* root = std::getenv("TEST_TMPDIR");
  const auto dir = std::filesystem::path(root ? root : std::filesystem::temp_directory_path().string()) /
                   ("kiln_gluon_test_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  return (dir / name).string();
}

std::shared_ptr<nn::HybridSequential> CnnBn() {
  auto net = std::make_shared<nn::HybridSequential>();
  auto scope = net->NameScope();
  net->Add(nn::Conv2D(4, {3}, {.padding = {1}, .use_bias = false}));
  net->Add(nn::BatchNorm());
  net->Add(nn::Activation("relu"));
  net->Add(nn::MaxPool2D());
  net->Add(nn::Flatten());
  net->Add(nn::Dense(3));
  return net;
}

std::shared_ptr<nn::HybridSequential> TwoLayerMlp(int64_t hidden, const std::string& activation, int64_t outputs) {
  auto net = std::make_shared<nn::HybridSequential>();
  auto scope = net->NameScope();
  net->Add(nn::Dense(hidden, {.activation = activation}));
  net->Add(nn::Dense(outputs));
  return net;
}

std::shared_ptr<nn::HybridSequential> Mlp() {
  auto net = std::make_shared<nn::HybridSequential>();
  auto scope = net->NameScope();
  net->Add(nn::Dense(8, {.activation = "relu"}));
  net->Add(nn::BatchNorm());
  net->Add(nn::Dropout(0.3));
  net->Add(nn::Dense(3));
  return net;
}

}  // namespace kiln::testing
