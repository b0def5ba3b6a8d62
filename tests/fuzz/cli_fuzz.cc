// The kiln command line's argument parsing (tools/cli/command_line): the bytes are the
// arguments, separated by NUL bytes, after the program name. Parsing never throws and
// never runs anything; what it accepts is checked as the commands rely on it.
#include <string>
#include <vector>

#include "tests/fuzz/fuzz_targets.h"
#include "tools/cli/command_line.h"

namespace kiln::fuzz {

int FuzzCommandLine(const uint8_t* data, size_t size) {
  constexpr size_t kMaxArgs = 64;
  std::vector<std::string> args = {"kiln"};
  std::string current;
  for (const char c : AsText(data, size)) {
    if (c != '\0') {
      current += c;
      continue;
    }
    args.push_back(current);
    current.clear();
    if (args.size() > kMaxArgs) return 0;
  }
  args.push_back(current);

  const cli::ParseOutcome outcome = cli::ParseCommandLine(args);
  if (!outcome.command) {
    FuzzCheck(!outcome.message.empty(), "a refused command line without a message");
    FuzzCheck(outcome.exit_code != 0 || outcome.message.find("kiln") != std::string::npos,
              "help or version without text");
    FuzzCheck(outcome.message.size() < 64 * 1024 || outcome.exit_code == 0, "an error message over 64 KiB");
    return 0;
  }
  const cli::CommandLine& line = *outcome.command;
  FuzzCheck(outcome.exit_code == 0, "a parsed command with a failure status");
  FuzzCheck(!line.command.empty(), "a parsed command without a name");
  FuzzCheck(line.command == "ops" || !line.model.empty() || line.command == "keygen", "an empty model path");
  FuzzCheck(line.threads >= 0 && line.iters >= 1 && line.warmup >= 0 && line.opt_level >= 0 && line.opt_level <= 3,
            "a number outside its range");
  for (const auto& [name, shape] : line.input_shapes) {
    FuzzCheck(!name.empty(), "an --input shape without a name");
    for (const int64_t d : shape) FuzzCheck(d >= 0, "a negative --input dimension");
  }
  for (const auto& [name, file] : line.input_files) FuzzCheck(!name.empty() && !file.empty(), "an empty --input");
  return 0;
}

}  // namespace kiln::fuzz
