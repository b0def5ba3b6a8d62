// Lazy mode (MXNet's asynchronous engine made into a compiler): operator calls outside
// autograd's recording are deferred into this thread's pending graph; the first read of
// a pending array (tensor(), ToTensor, AsScalar, data<T>, WaitToRead, an eager call that
// takes it, Backward) runs the whole pending graph as one compiled executable: fused and
// memory-planned by the ordinary passes, cached by its structure and shapes. Only the
// results some handle still holds are written; the rest stay inside fused kernels.
//
// Calls are checked when made (shapes inferred, errors at the call site). Calls that
// write memory (out=, an operator that updates an input, Assign, data<T>() for writing)
// or draw random numbers run eagerly, after the pending graph. KILN_EAGER=1 (or
// SetEnabled(false)) makes every call eager.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "graph/attrs.h"
#include "graph/op.h"
#include "ndarray/ndarray.h"
#include "runtime/executor.h"

namespace kiln::nd::lazy {

// Whether calls are deferred (on unless KILN_EAGER is set to something other than 0).
bool Enabled();
// Switching to eager runs what this thread deferred first.
void SetEnabled(bool enabled);
// Sets the mode for a scope and restores the previous one after it.
class ModeScope {
 public:
  explicit ModeScope(bool lazy) : previous_(Enabled()) { SetEnabled(lazy); }
  ~ModeScope() { SetEnabled(previous_); }
  ModeScope(const ModeScope&) = delete;
  ModeScope& operator=(const ModeScope&) = delete;

 private:
  bool previous_;
};

// Defers a checked call of `op` (outputs of `output_specs`, on `ctx`) into this thread's
// pending graph; returns its outputs, pending. Runs the pending graph first when its
// training mode differs from `is_train`.
std::vector<NDArray> Defer(const OpDef& op, const Attrs& attrs, bool is_train, std::span<const NDArray> inputs,
                           std::span<const TensorSpec> output_specs, Context ctx);

// Runs this thread's pending graph (nothing when there is none).
void Flush();
// Runs the pending graph that computes `chunk` (any thread's), if it is still pending.
void Materialize(detail::Chunk& chunk);

struct Stats {
  int64_t deferred = 0;  // calls deferred
  int64_t flushes = 0;   // pending graphs run
  int64_t skipped = 0;   // pending graphs dropped: no handle held any result
};
Stats GetStats();
void ResetStats();

}  // namespace kiln::nd::lazy
