// One function per operator, in the manner of MXNet's mx.sym.<Op>: inputs as symbols,
// attributes as {{"name", value}}, and an optional node name. Inputs an operator needs
// but that are not given (weights, biases, labels) become variables named
// "<name>_<input>".
#pragma once

#include <string>
#include <vector>

#include "symbol/symbol.h"

namespace kiln::sym {

}  // namespace kiln::sym
