// The graph of one training step: the model's forward outputs, the gradients of its
// losses (the gradient pass), and, with an optimizer, every learned parameter's fused
// update. It is an ordinary graph, so the whole step goes through the same passes,
// fusion and memory planning as inference, and compiles to one executor.
//
// Inputs: the model's data and labels, its learned parameters and auxiliary states
// (BatchNorm writes its moving statistics in place in training mode), then
//   "<param>__<state>"  optimizer states (momentum, Adam's moments)
//   "<param>_grad"      accumulated gradients of parameters with grad_req add
//   "__lr__", "__eta__" the step's learning rate (and AdamW's scheduled multiplier), (1,)
//   "__step__"          int64 (1,): the step's position in Dropout's random streams
// Outputs: the forward outputs, then per parameter either its updated value and states
// ("<param>_next", "<param>__<state>_next") or, without an optimizer, its gradient
// ("<param>_grad": the new one for write, the running sum for add).
#pragma once

#include <map>
#include <string>
#include <vector>

#include "graph/graph.h"
#include "train/optimizer.h"

namespace kiln {

// MXNet's grad_req: whether a parameter's gradient is computed, replaces the last one,
// or is added to it.
enum class GradReq { kNull, kWrite, kAdd };
GradReq ParseGradReq(const std::string& text);  // "null" | "write" | "add"
const char* GradReqName(GradReq req);

inline constexpr const char* kLrInput = "__lr__";
inline constexpr const char* kEtaInput = "__eta__";
inline constexpr const char* kStepInput = "__step__";
std::string StateName(const std::string& param, const std::string& state);  // "w__mom"
std::string NextName(const std::string& name);                              // "w_next"
std::string GradName(const std::string& param);                             // "w_grad"

struct StepGraphOptions {
  // Shapes and dtypes of every input of the model (data, labels, parameters, auxiliary
  // states); the model's embedded parameters are taken as well.
  std::map<std::string, Shape> shapes;
  std::map<std::string, DType> dtypes;
  // Per learned parameter; absent ones are written (MXNet's default).
  std::map<std::string, GradReq> grad_req;
  // Variables that are data, not parameters: never differentiated. By default the
  // variables without embedded values in the model that no loss reads as a label.
  std::vector<std::string> data_names;
  // With an optimizer the step updates the parameters; without, it gives gradients.
  const Optimizer* optimizer = nullptr;
  std::map<std::string, double> wd_mult;  // per parameter, default 1
  std::map<std::string, double> lr_mult;  // per parameter, default 1
};

struct StepGraph {
  Graph graph;  // no embedded parameters: every tensor is an input
  size_t num_forward_outputs = 0;
  std::vector<std::string> data;         // data and label inputs
  std::vector<std::string> params;       // learned parameters, in the model's argument order
  std::vector<std::string> aux;          // auxiliary states
  std::vector<std::string> trained;      // parameters with a gradient (grad_req != null)
  std::vector<std::string> state_names;  // optimizer states per trained parameter, in order
  bool uses_step_counter = false;        // the graph reads "__step__"
  bool uses_eta = false;
};

// Throws kiln::Error naming what is missing (a shape, a parameter of grad_req) or not
// differentiable (the node and its operator).
StepGraph BuildStepGraph(const Graph& model, const StepGraphOptions& options);

}  // namespace kiln
