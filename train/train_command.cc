#include "train/train_command.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <random>

#include "graph/op.h"
#include "runtime/error.h"
#include "runtime/file_util.h"
#include "runtime/param_formats.h"
#include "symbol/symbol.h"
#include "train/data/dataset.h"
#include "train/data/metric.h"
#include "train/initializer.h"
#include "train/progress.h"
#include "train/train_step.h"

namespace kiln {
namespace {

// Loss layers --loss adds, by name: the operator and the metric shown while training.
struct LossLayer {
  const char* op;
  const char* metric;
};
const std::map<std::string, LossLayer> kLosses = {
    {"softmax_ce", {"SoftmaxOutput", "acc"}},
    {"l2", {"LinearRegressionOutput", "mse"}},
    {"l1", {"MAERegressionOutput", "mae"}},
};

// Variables that some operator reads as a label (loss layers' label inputs).
std::vector<std::string> LabelVariables(const Graph& graph) {
  std::vector<std::string> labels;
  const IndexedGraph& indexed = graph.indexed();
  for (size_t id = 0; id < indexed.num_nodes(); ++id) {
    const Node& node = indexed.node(id);
    if (node.is_variable()) continue;
    for (size_t i = 0; i < node.inputs.size(); ++i) {
      const Node& input = *node.inputs[i].node;
      if (input.is_variable() && node.op->IsLabelInput(i) &&
          std::find(labels.begin(), labels.end(), input.name) == labels.end()) {
        labels.push_back(input.name);
      }
    }
  }
  return labels;
}

// The metric for the model's loss layers: accuracy for classification, else MSE.
std::string MetricForModel(const Graph& graph) {
  for (const auto& output : graph.outputs) {
    if (!output.node->is_variable() && output.node->op->name() == "SoftmaxOutput") return "acc";
  }
  return "mse";
}

Graph WithLoss(const Graph& model, const std::string& loss) {
  if (loss.empty()) return model;
  const auto it = kLosses.find(loss);
  if (it == kLosses.end()) throw Error("--loss '" + loss + "': expected softmax_ce, l2 or l1");
  if (model.outputs.empty()) throw Error("--loss: the model has no output");
  const Symbol output({model.outputs[0]});
  Graph graph = Symbol::Create(it->second.op, {output}, {}, "loss").ToGraph();
  graph.params = model.params;
  return graph;
}

void SaveTrained(const std::string& path, const std::map<std::string, Tensor>& params,
                 const std::vector<std::string>& aux, const std::string& format_name) {
  ParamFormat format = ParamFormat::kKiln;
  if (!format_name.empty()) {
    const auto named = ParamFormatFromName(format_name);
    if (!named) throw Error("--format '" + format_name + "': expected mxnet, npz or kiln");
    format = *named;
  } else if (path.ends_with(".npz")) {
    format = ParamFormat::kNpz;
  }
  ParamList list;
  for (const auto& [name, value] : params) {
    // MXNet's checkpoints name arguments arg:NAME and auxiliary states aux:NAME.
    const bool is_aux = std::find(aux.begin(), aux.end(), name) != aux.end();
    list.tensors.emplace_back(format == ParamFormat::kMxnet ? (is_aux ? "aux:" : "arg:") + name : name, value);
  }
  SaveParamsAs(path, list, format);
}

}  // namespace

void RunTrainCommand(const TrainCommand& command) {
  if (command.output.empty()) throw Error("train: an output file (-o) is required");
  if (command.batch_size < 1)
    throw Error("--batch-size: expected at least 1, given " + std::to_string(command.batch_size));
  if (command.steps && command.epochs) throw Error("train: give --steps or --epochs, not both");
  if (!command.data.defined() || command.data.ndim() < 1) throw Error("--data: expected an array of samples");
  if (!command.label.defined() || command.label.ndim() < 1) throw Error("--label: expected an array of labels");
  const int64_t samples = command.data.shape()[0];
  if (command.label.shape()[0] != samples) {
    throw Error("--label: " + std::to_string(command.label.shape()[0]) + " labels for " + std::to_string(samples) +
                " samples in --data");
  }
  if (samples < command.batch_size) {
    throw Error("--batch-size " + std::to_string(command.batch_size) + ": larger than the " + std::to_string(samples) +
                " samples");
  }

  Graph graph = WithLoss(command.model, command.loss);
  for (const auto& [name, value] : command.params) graph.params[name] = value;
  const std::vector<std::string> labels = LabelVariables(graph);
  if (labels.empty()) {
    throw Error(
        "train: the model's outputs include no loss layer (SoftmaxOutput, LinearRegressionOutput, "
        "LogisticRegressionOutput, MAERegressionOutput); give --loss softmax_ce|l2|l1");
  }
  if (labels.size() > 1)
    throw Error(
        fmt::format("train: the model reads several labels ({}); kiln train takes one", fmt::join(labels, ", ")));
  const std::string& label_name = labels[0];
  std::string data_name = command.data_name;
  if (data_name.empty()) {
    std::vector<std::string> candidates;
    for (const auto& name : graph.ListArguments()) {
      if (name != label_name && !graph.params.count(name)) candidates.push_back(name);
    }
    if (candidates.size() == 1 || std::count(candidates.begin(), candidates.end(), "data") == 1) {
      data_name = candidates.size() == 1 ? candidates[0] : "data";
    } else {
      throw Error(
          fmt::format("train: cannot tell the data input among the inputs without values {{{}}}; name it with "
                      "--data-name",
                      fmt::join(candidates, ", ")));
    }
  }

  // Shapes of a batch, then of every parameter; initial values for those without one.
  Shape data_shape = command.data.shape();
  Shape label_shape = command.label.shape();
  data_shape[0] = label_shape[0] = command.batch_size;
  const Symbol symbol = Symbol::FromGraph(graph);
  const auto inferred = symbol.InferShape({{data_name, data_shape}, {label_name, label_shape}});
  const auto init = MakeInitializer(command.init);
  std::mt19937_64 rng(command.seed);
  std::map<std::string, Tensor> params =
      InitializeParams(symbol.ListArguments(), inferred.arguments, {data_name, label_name}, graph.params,
                       /*allow_missing=*/true, *init, rng, "train");
  const std::vector<std::string> aux = symbol.ListAuxiliaryStates();
  for (auto& [name, value] : InitializeParams(aux, inferred.aux, {data_name, label_name}, graph.params,
                                              /*allow_missing=*/true, *init, rng, "train")) {
    params[name] = std::move(value);
  }

  TrainStepOptions options;
  options.shapes = {{data_name, data_shape}, {label_name, label_shape}};
  options.dtypes = {{data_name, command.data.dtype()}, {label_name, command.label.dtype()}};
  options.data_names = {data_name, label_name};
  std::string optimizer_options = command.optimizer_options;
  if (optimizer_options.find("rescale_grad") == std::string::npos) {
    optimizer_options += std::string(optimizer_options.empty() ? "" : ",") +
                         "rescale_grad=" + std::to_string(1.0 / static_cast<double>(command.batch_size));
  }
  options.optimizer = ParseOptimizer(command.optimizer, optimizer_options);
  std::vector<std::string> learned;
  for (const auto& name : symbol.ListArguments()) {
    if (params.count(name) && std::find(aux.begin(), aux.end(), name) == aux.end()) learned.push_back(name);
  }
  options.wd_mult = ModuleWdMults(learned);
  options.seed = command.seed;
  options.cache_dir = command.cache_dir;
  options.context = command.context;
  Graph model = graph;
  model.params.clear();
  TrainStep step(model, params, options);
  if (command.progress) {
    const StepMemoryReport memory = step.memory();
    const auto mib = [](int64_t bytes) { return std::to_string(static_cast<double>(bytes) / (1 << 20)).substr(0, 6); };
    std::fprintf(stderr,
                 "training step: %zu kernels%s; arena %s MiB (lower bound %s, without planning %s); parameters and "
                 "states %s MiB\n",
                 memory.num_kernels, memory.from_cache ? " (from the compile cache)" : "",
                 mib(memory.arena_bytes).c_str(), mib(memory.lower_bound_bytes).c_str(),
                 mib(memory.no_reuse_bytes).c_str(), mib(memory.param_bytes).c_str());
  }

  NDArrayIter iter({{data_name, command.data}}, {{label_name, command.label}}, command.batch_size, command.shuffle,
                   "discard", command.seed);
  const int64_t per_epoch = samples / command.batch_size;
  const int64_t total_steps = command.steps ? *command.steps : per_epoch * command.epochs.value_or(1);
  if (total_steps < 1) throw Error("train: nothing to do (" + std::to_string(total_steps) + " steps)");
  if (!command.save_every_step.empty()) CreateOutputDirectory(command.save_every_step);
  const auto metric = MakeMetric(MetricForModel(graph));
  const int64_t epochs = (total_steps + per_epoch - 1) / per_epoch;
  int64_t done = 0;
  for (int64_t epoch = 0; epoch < epochs && done < total_steps; ++epoch) {
    metric->Reset();
    const int64_t this_epoch = std::min(per_epoch, total_steps - done);
    std::optional<ProgressBar> bar;
    if (command.progress) bar.emplace("Epoch " + std::to_string(epoch + 1) + "/" + std::to_string(epochs), this_epoch);
    int64_t in_epoch = 0;
    while (in_epoch < this_epoch) {
      auto batch = iter.Next();
      if (!batch) break;
      const auto outputs = step.Step({{data_name, batch->data.at(0)}, {label_name, batch->label.at(0)}});
      metric->Update(batch->label, {outputs.at(0)});
      ++in_epoch;
      ++done;
      if (!command.save_every_step.empty()) {
        SaveTrained(command.save_every_step + "/step_" + std::to_string(done) + ".params", step.Params(), aux,
                    command.format);
      }
      if (bar) bar->Update(in_epoch, in_epoch * command.batch_size, FormatMetric(*metric));
    }
    if (bar) bar->Finish("train " + FormatMetric(*metric));
    iter.Reset();
  }
  SaveTrained(command.output, step.Params(), aux, command.format);
}

}  // namespace kiln
