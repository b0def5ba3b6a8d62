// The counter-based generator of random lowerings (defined in creation.cc, used by
// unary.cc's rrelu and nn.cc's Dropout).
#pragma once

#include <cstdint>
#include <functional>

#include "codegen/kir/kir.h"
#include "graph/op.h"

namespace kiln::lower_random {

enum class Interval { kHalfOpen, kOpen };

kir::Stmt UniformLoop(const LowerContext& ctx, int64_t count, kir::ScalarType type, Interval interval,
                      const std::function<kir::Stmt(const kir::Expr& i, const kir::Expr& u)>& body);

}  // namespace kiln::lower_random
