// Running the host's tools from the compiler: a private temporary directory and a child
// process with its output in a log (the C driver that links kernels into a shared
// object; the C++ compiler that builds the CUDA emulation).
#pragma once

#include <filesystem>
#include <string>
#include <vector>

namespace kiln {

// A private temporary directory under $TMPDIR (or /tmp), removed with everything in it.
class TempDir {
 public:
  // `purpose` goes into the message when the directory cannot be made.
  explicit TempDir(const std::string& purpose = "the compiler's files");
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  std::string File(const std::string& name) const { return (path_ / name).string(); }

 private:
  std::filesystem::path path_;
};

void WriteBytes(const std::string& path, const std::string& bytes);
std::string ReadBytes(const std::string& path);

// Runs `argv` (found on PATH) with stdout and stderr to `log`; the exit status (128 plus
// the signal for a killed child), or -1 when the program does not exist.
int RunProcess(const std::vector<std::string>& argv, const std::string& log);

// `argv` joined by spaces, for messages.
std::string CommandLine(const std::vector<std::string>& argv);

}  // namespace kiln
