// Whole-file reads and crash-safe writes.
#pragma once

#include <sys/types.h>

#include <memory>
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

// A whole file's bytes, read-only, for as long as the object lives: a regular file is
// mapped (its pages shared with the page cache and faulted in at open, so nothing is
// copied), anything else (a pipe, a device) read into memory under ReadFile's limits.
// Files kiln writes are replaced by rename, which leaves a mapping of the old file
// intact; truncating a mapped file in place would make reads of the lost pages fault.
class FileBytes {
 public:
  // Throws kiln::Error naming the path, as ReadFile does.
  static std::shared_ptr<const FileBytes> Open(const std::string& path);
  ~FileBytes();
  FileBytes(const FileBytes&) = delete;
  FileBytes& operator=(const FileBytes&) = delete;

  std::string_view bytes() const { return {data_, size_}; }
  // True when the bytes are a mapping of the file rather than a copy.
  bool mapped() const { return mapped_; }

 private:
  FileBytes() = default;
  const char* data_ = nullptr;
  size_t size_ = 0;
  bool mapped_ = false;
  std::string copy_;  // the bytes of a file that is not mapped
};

// Writes to a temporary file beside `path` (PATH.tmp.PID.RANDOM), flushes it to disk and
// renames it over `path`, so a crash leaves either the old file or the new one, never
// half of one. The temporary file is removed on every error; temporary files of `path`
// left by writers that were killed are removed by the next write.
void WriteFileAtomic(const std::string& path, std::string_view bytes, mode_t mode = 0644);

// Creates `dir` and its parents for --output-dir, with an error that names the option.
void CreateOutputDirectory(const std::string& dir);

// Where kiln caches compiled code: $KILN_CACHE_DIR, else $XDG_CACHE_HOME/kiln, else
// $HOME/.cache/kiln; empty when none of them is set, or KILN_CACHE_DIR is "off".
std::string DefaultCacheDir();

}  // namespace kiln
