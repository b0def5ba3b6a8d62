// The counter-based generator of random lowerings (defined in creation.cc, used by
// unary.cc's rrelu and nn.cc's Dropout).
#pragma once

#include <cstdint>
#include <functional>

#include "codegen/kir/kir.h"
#include "graph/op.h"

namespace kiln::lower_random {

enum class Interval { kHalfOpen, kOpen };

// A loop over `count` draws u of `type` in [0, 1) (or (0, 1)): element i draws from
// counter stream_offset + i of the node's stream, so a run-time offset (a training
// step's counter) gives fresh draws without recompiling; unset, the offset is 0.
kir::Stmt UniformLoop(const LowerContext& ctx, int64_t count, kir::ScalarType type, Interval interval,
                      const std::function<kir::Stmt(const kir::Expr& i, const kir::Expr& u)>& body,
                      const kir::Expr& stream_offset = kir::Expr());

}  // namespace kiln::lower_random
