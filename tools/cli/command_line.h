// The kiln command line's grammar: subcommands, options and their checks, apart from
// what the commands do (tools/kiln.cc), so that tests and the fuzzer (tests/fuzz) can
// parse any argument vector without running anything.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "runtime/tensor.h"

namespace kiln::cli {

// What to run, every option checked: numbers in range, inputs well formed and named
// once, output paths not empty.
struct CommandLine {
  std::string command;  // "compile", "run", ...
  std::string model;    // MODEL or ARTIFACT
  std::string params;   // --params FILE
  std::string output;   // -o/--output, or --output-dir
  // --input NAME:DxD (inspect, viz, export, compile).
  std::map<std::string, Shape> input_shapes;
  // --input NAME=FILE.npy (interpret, run, bench).
  std::map<std::string, std::string> input_files;
  bool json = false;
  bool fusion = false;  // viz --fusion
  bool mxnet = false;   // export --mxnet
  // interpret
  bool train = false;
  uint64_t seed = 0;
  // compile
  std::string target = "cpu";
  std::vector<std::string> cuda_archs;  // --arch
  bool allow_tf32 = false;              // --allow-tf32
  std::string cpu = "host";
  std::string features;
  int opt_level = 2;
  std::optional<int> graph_opt_level;        // --graph-opt: the pass pipeline's level (default: -O)
  std::vector<std::string> passes;           // --passes a,b,c: run these passes instead
  std::vector<std::string> disabled_passes;  // --disable-pass NAME (repeatable)
  std::string dump_after_each;               // --dump-after-each DIR
  bool time_report = false;                  // --time-report
  bool no_embed_params = false;
  bool params_as_inputs = false;
  std::string sign_key;              // --sign: a secret key file
  std::vector<int64_t> batch_sizes;  // --batch-sizes 1,2,4,8
  // run, bench, inspect
  std::vector<std::string> trusted_keys;  // --trusted-key: public key files
  // run, bench
  int threads = 0;
  int iters = 100;
  int warmup = 5;
  bool profile = false;
  // convert: the output's format (mxnet, npz, kiln; empty: by its extension)
  std::string format;
  // train
  std::string data_file;   // --data X.npy
  std::string label_file;  // --label Y.npy
  std::string data_name;   // --data-name
  std::string loss;        // --loss softmax_ce|l2|l1
  std::string init = "xavier(magnitude=2)";
  std::string optimizer = "sgd";
  std::string optimizer_options;  // --opt lr=0.05,momentum=0.9
  int64_t batch_size = 32;
  std::optional<int64_t> steps;
  // --gpu N: kiln train's step, and the GPU that kiln run / bench run GPU artifacts on.
  std::optional<int> gpu;
  std::optional<int64_t> epochs;
  bool no_shuffle = false;
  std::string save_every_step;  // a folder
  // keygen
  std::string key_name;
  bool force = false;
};

// A command to run, or what to print and the status to exit with (help, the version,
// or a usage error: `message` then goes to stderr).
struct ParseOutcome {
  std::optional<CommandLine> command;
  int exit_code = 0;
  std::string message;
};

// `args` as main receives them (args[0] is the program name). Never throws for any
// argument vector.
ParseOutcome ParseCommandLine(const std::vector<std::string>& args);

// "data:1x3x224x224" -> ("data", {1,3,224,224}); throws kiln::Error naming the option.
std::pair<std::string, Shape> ParseInputShape(const std::string& text);
// "data=x.npy" -> ("data", "x.npy"); throws kiln::Error naming the option.
std::pair<std::string, std::string> ParseInputFile(const std::string& text);

}  // namespace kiln::cli
