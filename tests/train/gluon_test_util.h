// Shared by the Gluon tests: the files tools/golden/gen_gluon_golden.py and
// gen_gluon_names.py record from MXNet 1.9.1, and the nets they build, made with kiln.
#pragma once

#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "runtime/tensor.h"
#include "train/gluon/nn.h"

namespace kiln::testing {

inline constexpr const char* kGluonData = "tests/data/mxnet/gluon/";

// tests/data/mxnet/gluon/NAME (a .json index).
nlohmann::json LoadGluonIndex(const std::string& name);
// The arrays of tests/data/mxnet/gluon/NAME (an .npz), by name.
std::map<std::string, Tensor> LoadGluonArrays(const std::string& name);
// A fresh path under the test's temporary directory.
std::string TempPath(const std::string& name);

// The generator's cnn_bn net (a Trainer case) and mlp (a layer case).
std::shared_ptr<gluon::nn::HybridSequential> CnnBn();
std::shared_ptr<gluon::nn::HybridSequential> Mlp();
// Dense(hidden, activation), Dense(outputs) in a scope (the generator's mlp_huber is
// TwoLayerMlp(12, "tanh", 2)).
std::shared_ptr<gluon::nn::HybridSequential> TwoLayerMlp(int64_t hidden, const std::string& activation,
                                                         int64_t outputs);

}  // namespace kiln::testing
