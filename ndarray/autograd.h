// Autograd for NDArrays (MXNet's mx.autograd): operator calls made while recording are
// kept on a tape; Backward turns the tape from the heads back to the leaves into a
// Graph, asks passes/gradient.h for its gradient (each operator's registered gradient,
// the same ones compiled training uses) and runs the compiled gradient graph, cached by
// the tape's structure and shapes, on the tape's context (a tape on a GPU runs its
// gradient there; a tape that mixes contexts is an error).
//
//   w.AttachGrad();
//   { nd::autograd::Record record; loss = nd::sum(nd::relu(nd::dot(x, w))); }
//   loss.Backward();   // w.Grad()
#pragma once

#include <memory>
#include <optional>
#include <span>
#include <vector>

#include "graph/attrs.h"
#include "graph/op.h"
#include "ndarray/ndarray.h"

namespace kiln::nd::autograd {

bool IsRecording();
// Whether operators run in training mode (BatchNorm's batch statistics, Dropout).
bool IsTraining();

// Sets the recording and training states (nullopt: unchanged) and restores the previous
// ones at the end of the scope.
class StateScope {
 public:
  StateScope(std::optional<bool> recording, std::optional<bool> training);
  ~StateScope();
  StateScope(const StateScope&) = delete;
  StateScope& operator=(const StateScope&) = delete;

 private:
  bool was_recording_;
  bool was_training_;
};
// Records operator calls (mx.autograd.record), in training mode by default.
class Record : public StateScope {
 public:
  explicit Record(bool train_mode = true) : StateScope(true, train_mode) {}
};
// Stops recording inside a Record scope (mx.autograd.pause).
class Pause : public StateScope {
 public:
  explicit Pause(bool train_mode = false) : StateScope(false, train_mode) {}
};
class TrainMode : public StateScope {
 public:
  TrainMode() : StateScope(std::nullopt, true) {}
};
class PredictMode : public StateScope {
 public:
  PredictMode() : StateScope(std::nullopt, false) {}
};

// One input of a recorded call: the output of another recorded call, or a leaf array.
struct TapeInput {
  std::shared_ptr<const TapeNode> producer;  // null for a leaf
  uint32_t index = 0;
  std::shared_ptr<detail::Chunk> leaf;  // the leaf's handle (its gradient lives there)
  NDArray value;                        // the value the call read (untracked, on its context)
};
// One recorded operator call.
struct TapeNode {
  const OpDef* op = nullptr;
  Attrs attrs;
  bool is_train = false;
  std::vector<TapeInput> inputs;
  // The values the call produced (untracked): Backward feeds them to the gradient
  // instead of computing the forward again.
  std::vector<NDArray> outputs;
};

// Records a call (by ndarray/invoke.cc) when recording and an input is tracked: it has
// an attached gradient or was itself recorded.
void RecordOp(const OpDef& op, const Attrs& attrs, bool is_train, std::span<const NDArray> inputs,
              std::vector<NDArray>& outputs);

// The gradients of the heads (weighted by `head_grads`, ones where absent) with respect
// to `variables`, leaves of the recorded computation; .Grad() is left alone.
std::vector<NDArray> Grad(const std::vector<NDArray>& heads, const std::vector<NDArray>& variables,
                          const std::vector<NDArray>& head_grads = {}, bool train_mode = true);
// Writes or adds (by grad_req) the gradients of the heads into every leaf with an
// attached gradient that they were recorded from. Without `retain_graph` the heads are
// cut from the tape afterwards (MXNet's default): the recorded calls and the values they
// kept are freed once no other array refers to them, and a second Backward of the same
// heads is an error.
void Backward(const std::vector<NDArray>& heads, const std::vector<NDArray>& head_grads = {}, bool retain_graph = false,
              bool train_mode = true);

}  // namespace kiln::nd::autograd
