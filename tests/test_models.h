// Small models built with the Symbol API, shared by tests: an MLP and LeNet, and a way
// to give a symbol random parameters.
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include "graph/graph.h"
#include "symbol/symbol.h"

namespace kiln::testing {

// data -> fc1 (hidden) -> relu -> fc2 (10) -> SoftmaxOutput.
Symbol TestMlp(int64_t hidden = 64);
// LeNet with BatchNorm, tanh, max and avg pooling, sigmoid, and a dense layer of `hidden`.
Symbol TestLeNet(int64_t hidden = 120);

// The symbol's graph with random parameters embedded: weights uniform in [-0.3, 0.3),
// auxiliary states (moving statistics) in [0.5, 1.5); the given inputs and labels stay
// inputs.
Graph WithRandomParams(const Symbol& net, const std::map<std::string, Shape>& input_shapes, uint64_t seed);

}  // namespace kiln::testing
