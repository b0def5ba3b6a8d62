// Whole-file reads and crash-safe writes.
#pragma once

#include <sys/types.h>

#include <string>
#include <string_view>

namespace kiln {

// An owned file descriptor, closed when it goes out of scope.
class UniqueFd {
 public:
  explicit UniqueFd(int fd = -1) : fd_(fd) {}
  ~UniqueFd();
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  int get() const { return fd_; }
  int release() {
    const int fd = fd_;
    fd_ = -1;
    return fd;
  }

 private:
  int fd_;
};

// Reads a file; throws kiln::Error naming the path when it cannot, when it is a
// directory, or when it holds more than kiln reads (kMaxTensorBytes; a FIFO or device,
// whose size is unknown in advance, at most 256 MiB).
std::string ReadFile(const std::string& path);

// Writes to a temporary file beside `path` (PATH.tmp.PID.RANDOM), flushes it to disk and
// renames it over `path`, so a crash leaves either the old file or the new one, never
// half of one. The temporary file is removed on every error; temporary files of `path`
// left by writers that were killed are removed by the next write.
void WriteFileAtomic(const std::string& path, std::string_view bytes, mode_t mode = 0644);

// Creates `dir` and its parents for --output-dir, with an error that names the option.
void CreateOutputDirectory(const std::string& dir);

}  // namespace kiln
