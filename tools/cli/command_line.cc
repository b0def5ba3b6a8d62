#include "tools/cli/command_line.h"

#include <CLI/CLI.hpp>
#include <algorithm>
#include <charconv>
#include <limits>
#include <sstream>

#include "runtime/error.h"
#include "runtime/thread_pool.h"
#include "runtime/version.h"

namespace kiln::cli {
namespace {

// A whole number from `lo` to `hi`, checked on the text before CLI11 converts it, so
// that "abc" is called what it is rather than "not in range".
template <typename Int>
CLI::Validator WholeNumber(Int lo, Int hi) {
  const std::string range = std::to_string(lo) + " to " + std::to_string(hi);
  return CLI::Validator(
      [lo, hi, range](std::string& text) -> std::string {
        Int value{};
        const char* end = text.data() + text.size();
        const auto [stop, error] = std::from_chars(text.data(), end, value);
        if (text.empty() || stop != end || error == std::errc::invalid_argument) {
          return "expected a whole number from " + range + ", given '" + Abbreviate(text) + "'";
        }
        if (error == std::errc::result_out_of_range || value < lo || value > hi) {
          return "expected " + range + ", given " + Abbreviate(text);
        }
        return {};
      },
      "INT in [" + range + "]");
}

const CLI::Validator kNotEmpty(
    [](std::string& text) -> std::string { return text.empty() ? "the path is empty" : std::string(); }, "PATH");

// A pass name (--passes items, --disable-pass).
const CLI::Validator kPassName(
    [](std::string& text) -> std::string { return text.empty() ? "empty pass name" : std::string(); }, "PASS");

// A path every use of `command` needs (MODEL, ARTIFACT, -o): required and not empty.
void AddRequiredPath(CLI::App* command, const std::string& name, std::string& path, const std::string& help) {
  command->add_option(name, path, help)->required()->check(kNotEmpty);
}

void AddInputShapes(CLI::App* command, std::vector<std::string>& texts, const std::string& example) {
  command->add_option("--input", texts, "Input shape NAME:DxDxD (repeatable), e.g. " + example);
}

void AddInputFiles(CLI::App* command, std::vector<std::string>& texts, const std::string& help) {
  command->add_option("--input", texts, help);
}

void AddTrustedKeys(CLI::App* command, CommandLine& line) {
  command
      ->add_option("--trusted-key", line.trusted_keys,
                   "Public key file (kiln keygen's NAME.pub, repeatable): refuse artifacts not signed by one")
      ->check(kNotEmpty);
}

template <typename Value, typename Parse>
std::map<std::string, Value> ParseUnique(const std::vector<std::string>& texts, Parse parse) {
  std::map<std::string, Value> parsed;
  for (const auto& text : texts) {
    auto [name, value] = parse(text);
    if (!parsed.emplace(name, std::move(value)).second) {
      throw Error("--input '" + Abbreviate(name) + "' is given more than once");
    }
  }
  return parsed;
}

}  // namespace

std::pair<std::string, Shape> ParseInputShape(const std::string& text) {
  const std::string quoted = "--input '" + Abbreviate(text) + "'";
  const auto colon = text.rfind(':');
  if (colon == std::string::npos || colon == 0) {
    throw Error(quoted + ": expected NAME:DIMxDIMx... (e.g. data:1x3x224x224)");
  }
  Shape shape;
  const std::string dims = text.substr(colon + 1);
  size_t start = 0;
  while (start <= dims.size()) {
    const size_t x = dims.find('x', start);
    const std::string dim = dims.substr(start, x == std::string::npos ? std::string::npos : x - start);
    int64_t value = 0;
    const auto [stop, error] = std::from_chars(dim.data(), dim.data() + dim.size(), value);
    if (dim.empty() || stop != dim.data() + dim.size() || error != std::errc() || value < 0) {
      throw Error(quoted + ": bad dimension '" + Abbreviate(dim) + "' (a whole number from 0 to " +
                  std::to_string(std::numeric_limits<int64_t>::max()) + ")");
    }
    shape.push_back(value);
    if (x == std::string::npos) break;
    start = x + 1;
  }
  // The element count itself is checked (overflow, kMaxTensorBytes) where the shape is
  // used, with the node it reaches.
  return {text.substr(0, colon), shape};
}

std::pair<std::string, std::string> ParseInputFile(const std::string& text) {
  const auto eq = text.find('=');
  if (eq == std::string::npos || eq == 0 || eq + 1 == text.size()) {
    throw Error("--input '" + Abbreviate(text) + "': expected NAME=FILE.npy");
  }
  return {text.substr(0, eq), text.substr(eq + 1)};
}

ParseOutcome ParseCommandLine(const std::vector<std::string>& args) {
  CommandLine line;
  std::vector<std::string> inputs;

  CLI::App app{"kiln: an ahead-of-time compiler for neural-network graphs"};
  app.set_version_flag("--version", std::string("kiln ") + kKilnVersion);
  app.require_subcommand(1);

  auto* ops = app.add_subcommand("ops", "List every registered operator and its fusion pattern");
  ops->add_flag("--json", line.json, "Print JSON");

  auto* inspect =
      app.add_subcommand("inspect", "Print a model's, an artifact's or a parameter file's contents, shapes and sizes");
  AddRequiredPath(inspect, "MODEL", line.model,
                  "Graph file (.kiln-graph binary, .pbtxt/.txt text), ONNX model (.onnx), artifact (.kiln) or "
                  "parameter file (MXNet .params, NumPy .npz, kiln's)");
  inspect->add_option("--params", line.params, "Parameter file to bind (else embedded parameters)");
  AddInputShapes(inspect, inputs, "data:1x3x224x224");
  inspect->add_flag("--json", line.json, "Print JSON");
  AddTrustedKeys(inspect, line);

  auto* viz = app.add_subcommand("viz", "Write a Graphviz DOT picture of a model");
  AddRequiredPath(viz, "MODEL", line.model, "Graph file or ONNX model");
  AddRequiredPath(viz, "-o,--output", line.output, "Output .dot file");
  viz->add_option("--params", line.params, "Parameter file");
  AddInputShapes(viz, inputs, "data:1x3x224x224");
  viz->add_flag("--fusion", line.fusion, "Draw the graph as -O2 compiles it, each fused kernel in a colored box");

  auto* interpret = app.add_subcommand("interpret", "Run a model with the reference interpreter (the oracle)");
  AddRequiredPath(interpret, "MODEL", line.model, "Graph file or ONNX model");
  interpret->add_option("--params", line.params, "Parameter file");
  AddInputFiles(interpret, inputs, "Input NAME=FILE.npy (repeatable)");
  interpret->add_option("--output-dir", line.output, "Write each output as DIR/NAME.npy")->check(kNotEmpty);
  interpret->add_flag("--train", line.train, "Training mode (BatchNorm batch statistics, Dropout)");
  interpret->add_option("--seed", line.seed, "Seed for random operators and Dropout")
      ->check(WholeNumber<uint64_t>(0, std::numeric_limits<uint64_t>::max()));

  auto* export_onnx = app.add_subcommand("export", "Write a model as ONNX (opset 17), or as MXNet model files");
  AddRequiredPath(export_onnx, "MODEL", line.model, "Graph file, ONNX model or MXNet symbol JSON");
  AddRequiredPath(export_onnx, "-o,--output", line.output,
                  "Output .onnx file; with --mxnet a prefix: PREFIX-symbol.json and PREFIX-0000.params");
  export_onnx->add_flag("--mxnet", line.mxnet,
                        "Write MXNet's symbol JSON and .params (Module.load(PREFIX, 0) reads them)");
  export_onnx->add_option("--params", line.params, "Parameter file");
  AddInputShapes(export_onnx, inputs, "data:1x3x224x224");

  auto* compile = app.add_subcommand("compile", "Compile a model into an artifact (.kiln)");
  AddRequiredPath(compile, "MODEL", line.model,
                  "Graph file with embedded parameters (or see --params), or ONNX model (.onnx)");
  AddRequiredPath(compile, "-o,--output", line.output, "Output artifact");
  compile->add_option("--params", line.params, "Parameter file");
  AddInputShapes(compile, inputs, "data:8x3x224x224");
  compile->add_option("--target", line.target, "Target: cpu (default) or cuda (NVIDIA GPUs: CUDA C through NVRTC)");
  compile
      ->add_option("--arch", line.cuda_archs,
                   "--target cuda: cubins for these GPU architectures, e.g. sm_80,sm_90 (default: the local GPU's; "
                   "PTX for compute_80 always)")
      ->delimiter(',');
  compile->add_flag("--allow-tf32", line.allow_tf32,
                    "--target cuda: cuBLAS may use TF32 tensor cores for float32 products (10 mantissa bits; "
                    "default: float32 throughout)");
  compile->add_option("--cpu", line.cpu,
                      "CPU to compile for: host (default), x86-64-v2, x86-64-v3, skylake-avx512, ...");
  compile->add_option("--features", line.features, "Extra CPU features, LLVM style: +avx2,+fma");
  compile->add_option("-O,--opt-level", line.opt_level, "Optimization level 0-3 (-O0 ... -O3)")
      ->check(WholeNumber(0, 3));
  compile
      ->add_option("--graph-opt", line.graph_opt_level,
                   "Graph pass pipeline level 0-3 (default: the -O level): 0 none, 1 simplification, 2-3 fusion")
      ->check(WholeNumber(0, 3));
  std::string pass_list;
  compile->add_option("--passes", pass_list, "Run these graph passes, comma-separated, instead of the level's");
  compile->add_option("--disable-pass", line.disabled_passes, "Leave out this graph pass (repeatable)")
      ->check(kPassName);
  compile->add_flag("--time-report", line.time_report,
                    "Print where compilation spent its time: import, each stage and graph pass, LLVM, writing");
  compile
      ->add_option("--dump-after-each", line.dump_after_each,
                   "Write the graph (text and DOT) before the passes and after each pass into DIR")
      ->check(kNotEmpty);
  compile->add_flag("--no-embed-params", line.no_embed_params,
                    "Leave parameters out of the artifact (bind them at load: kiln run --params)");
  compile->add_flag("--params-as-inputs", line.params_as_inputs,
                    "Compile a model whose weights have no values: they become runtime inputs");
  compile->add_option("--sign", line.sign_key, "Sign the artifact with this secret key file (kiln keygen)")
      ->check(kNotEmpty);
  std::string batch_list;
  compile
      ->add_option("--batch-sizes", batch_list,
                   "Compile one specialization per batch size (axis 0 of the inputs) into the artifact, e.g. 1,2,4,8 "
                   "(kiln serve batches requests with them)")
      ->check(kNotEmpty);

  // Listed for --help only: main() hands `kiln serve ...` to kiln-serve's command line.
  app.add_subcommand("serve", "Serve artifacts over the Open Inference Protocol (KServe v2): kiln serve --help")
      ->prefix_command();

  auto* run = app.add_subcommand("run", "Run an artifact on .npy inputs");
  AddRequiredPath(run, "ARTIFACT", line.model, "Compiled artifact");
  AddInputFiles(run, inputs, "Input NAME=FILE.npy (repeatable)");
  run->add_option("--output-dir", line.output, "Write each output as DIR/NAME.npy")->check(kNotEmpty);
  run->add_option("--params", line.params, "Parameter file to bind (artifacts compiled with --no-embed-params)");
  run->add_option("--threads", line.threads, "Threads (0: all cores)")->check(WholeNumber(0, kMaxThreads));
  run->add_option("--gpu", line.gpu, "GPU artifacts: run on GPU N (default 0)")->check(CLI::Range(0, 1023));
  AddTrustedKeys(run, line);

  auto* bench = app.add_subcommand("bench", "Measure an artifact's latency and throughput");
  AddRequiredPath(bench, "ARTIFACT", line.model, "Compiled artifact");
  AddInputFiles(bench, inputs, "Input NAME=FILE.npy (others: random)");
  bench->add_option("--params", line.params, "Parameter file to bind (artifacts compiled with --no-embed-params)");
  bench->add_option("--threads", line.threads, "Threads (0: all cores)")->check(WholeNumber(0, kMaxThreads));
  bench->add_option("--gpu", line.gpu, "GPU artifacts: run on GPU N (default 0)")->check(CLI::Range(0, 1023));
  bench->add_option("--iters", line.iters, "Timed runs")->check(WholeNumber(1, 1000000));
  bench->add_option("--warmup", line.warmup, "Untimed runs first (the first run is always made and reported apart)")
      ->check(WholeNumber(0, 1000000));
  bench->add_flag("--json", line.json, "Print JSON");
  bench->add_flag("--profile", line.profile, "Also time every kernel (the graph node it computes), slowest first");
  AddTrustedKeys(bench, line);

  auto* convert = app.add_subcommand(
      "convert", "Copy a parameter file's arrays into another format: MXNet's .params, NumPy's .npz, kiln's");
  AddRequiredPath(convert, "FILE", line.model, "Parameter file (MXNet .params or nd.save file, .npz, kiln's)");
  AddRequiredPath(convert, "-o,--output", line.output, "Output file");
  convert
      ->add_option("--format", line.format,
                   "mxnet, npz or kiln (default: by the output's extension: .params, .npz, .kiln-params)")
      ->check(CLI::IsMember({"mxnet", "npz", "kiln"}));

  auto* train = app.add_subcommand(
      "train",
      "Train a model (kiln graph, ONNX, MXNet symbol JSON) with a loss layer on .npy data; write its parameters");
  AddRequiredPath(train, "MODEL", line.model, "Graph file, ONNX model or MXNet symbol JSON");
  AddRequiredPath(train, "--data", line.data_file, "Samples, .npy (first axis: the samples)");
  AddRequiredPath(train, "--label", line.label_file, "Labels, .npy (one per sample)");
  train->add_option("--params", line.params, "Initial parameters (kiln's, MXNet .params or .npz); others: --init");
  train->add_option("--data-name", line.data_name, "The model's data input (default: the one input without a value)");
  train->add_option("--loss", line.loss, "Add a loss on the first output: softmax_ce, l2 or l1")
      ->check(CLI::IsMember({"softmax_ce", "l2", "l1"}));
  train->add_option("--init", line.init, "Initializer for parameters without a value, e.g. 'xavier(magnitude=2)'");
  train->add_option("--optimizer", line.optimizer, "sgd, nag, adam, adamw or rmsprop")
      ->check(CLI::IsMember({"sgd", "nag", "adam", "adamw", "rmsprop"}));
  train->add_option("--opt", line.optimizer_options,
                    "Optimizer options, e.g. lr=0.05,momentum=0.9,wd=0.0005 (rescale_grad defaults to 1/batch)");
  train->add_option("--batch-size", line.batch_size, "Samples per step")->check(WholeNumber<int64_t>(1, 1 << 24));
  auto* steps = train->add_option("--steps", line.steps, "Steps to train")->check(WholeNumber<int64_t>(1, 1LL << 40));
  train->add_option("--epochs", line.epochs, "Epochs to train (default: one)")
      ->check(WholeNumber<int64_t>(1, 1 << 20))
      ->excludes(steps);
  train->add_flag("--no-shuffle", line.no_shuffle, "Take the samples in order");
  train
      ->add_option("--gpu", line.gpu,
                   "Train on GPU N: the step compiled for CUDA, parameters kept in device memory (default: the CPU)")
      ->check(CLI::Range(0, 1023));
  train->add_option("--seed", line.seed, "Seed for the initializer, the shuffling and Dropout")
      ->check(WholeNumber<uint64_t>(0, std::numeric_limits<uint64_t>::max()));
  AddRequiredPath(train, "-o,--output", line.output,
                  "Trained parameters and auxiliary states: .npz (NumPy), or kiln's format (--format mxnet: MXNet's)");
  train->add_option("--format", line.format, "mxnet, npz or kiln (default: npz for .npz, else kiln)")
      ->check(CLI::IsMember({"mxnet", "npz", "kiln"}));
  train->add_option("--save-every-step", line.save_every_step, "Also write DIR/step_N.params after every step")
      ->check(kNotEmpty);

  auto* keygen = app.add_subcommand("keygen", "Make an Ed25519 key pair for signing artifacts: NAME and NAME.pub");
  AddRequiredPath(keygen, "-o,--output", line.output, "Secret key file NAME (the public key goes to NAME.pub)");
  keygen->add_option("--name", line.key_name, "A label for people, stored in both files (default: the file name)");
  keygen->add_flag("--force", line.force, "Overwrite existing key files");

  // -O2 style flags: CLI11 wants "-O 2"; accept the compiler spelling too.
  std::vector<std::string> rewritten = args.empty() ? std::vector<std::string>{"kiln"} : args;
  for (auto& arg : rewritten) {
    if (arg.size() == 3 && arg[0] == '-' && arg[1] == 'O' && arg[2] >= '0' && arg[2] <= '3') {
      arg = "--opt-level=" + arg.substr(2);
    }
  }
  std::vector<char*> pointers;
  for (auto& arg : rewritten) pointers.push_back(arg.data());

  ParseOutcome outcome;
  try {
    app.parse(static_cast<int>(pointers.size()), pointers.data());
  } catch (const CLI::ParseError& e) {
    std::ostringstream out;
    std::ostringstream err;
    const int code = app.exit(e, out, err);
    if (code == 0) {  // --help or --version
      outcome.message = out.str();
      return outcome;
    }
    outcome.exit_code = 2;
    outcome.message = std::string("kiln: error: ") + Abbreviate(e.what(), 400) + " (kiln --help lists the options)\n";
    return outcome;
  }

  try {
    for (const CLI::App* sub : app.get_subcommands()) line.command = sub->get_name();
    if (line.command == "interpret" || line.command == "run" || line.command == "bench") {
      line.input_files = ParseUnique<std::string>(inputs, ParseInputFile);
    } else {
      line.input_shapes = ParseUnique<Shape>(inputs, ParseInputShape);
    }
    if (compile->count("--passes") > 0 && pass_list.empty()) throw Error("--passes: empty pass list");
    // Split here, not with CLI11's delimiter, which drops empty items ("fuse,,dce").
    for (size_t begin = 0; !pass_list.empty() && begin <= pass_list.size();) {
      const size_t end = std::min(pass_list.find(',', begin), pass_list.size());
      if (end == begin) throw Error("--passes '" + Abbreviate(pass_list) + "': empty pass name");
      line.passes.push_back(pass_list.substr(begin, end - begin));
      begin = end + 1;
    }
    // "1,2,4": distinct whole numbers from 1 to 2^20.
    for (size_t begin = 0; !batch_list.empty() && begin <= batch_list.size();) {
      const size_t end = std::min(batch_list.find(',', begin), batch_list.size());
      const std::string item = batch_list.substr(begin, end - begin);
      int64_t size = 0;
      const auto [last, error] = std::from_chars(item.data(), item.data() + item.size(), size);
      if (error != std::errc() || last != item.data() + item.size() || size < 1 || size > (1 << 20)) {
        throw Error("--batch-sizes '" + Abbreviate(batch_list) + "': '" + Abbreviate(item) +
                    "' is not a batch size (a whole number from 1 to 1048576)");
      }
      if (std::find(line.batch_sizes.begin(), line.batch_sizes.end(), size) != line.batch_sizes.end()) {
        throw Error("--batch-sizes '" + Abbreviate(batch_list) + "': " + item + " is given twice");
      }
      line.batch_sizes.push_back(size);
      begin = end + 1;
    }
    if (line.command == "compile" && line.target != "cpu" && line.target != "cuda") {
      throw Error("--target '" + Abbreviate(line.target) + "': expected cpu or cuda");
    }
    if (line.command == "compile" && line.target != "cuda" && !line.cuda_archs.empty()) {
      throw Error("--arch is for --target cuda");
    }
    if (line.command == "compile" && line.target != "cuda" && line.allow_tf32) {
      throw Error("--allow-tf32 is for --target cuda");
    }
    if (line.command == "keygen" && line.key_name.empty()) {
      line.key_name = line.output.substr(line.output.find_last_of('/') + 1);
    }
  } catch (const Error& e) {
    outcome.exit_code = 2;
    outcome.message = std::string("kiln: error: ") + e.what() + "\n";
    return outcome;
  }
  outcome.command = std::move(line);
  return outcome;
}

}  // namespace kiln::cli
