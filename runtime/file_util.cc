#include "runtime/file_util.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <random>

#include "runtime/error.h"
#include "runtime/tensor.h"

namespace kiln {

UniqueFd::~UniqueFd() {
  if (fd_ >= 0) ::close(fd_);
}

namespace {
// What can be read from a FIFO or a device (which has no size to check first).
constexpr size_t kMaxStreamBytes = size_t{256} << 20;

}  // namespace

std::string ReadFile(const std::string& path) {
  if (path.empty()) throw Error("cannot open '': no file name given");
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0) throw Error("cannot open '" + path + "': " + std::strerror(errno));
  struct stat info {};
  if (::fstat(fd.get(), &info) != 0) throw Error("cannot read '" + path + "': " + std::strerror(errno));
  if (S_ISDIR(info.st_mode)) throw Error("'" + path + "' is a directory, not a file");
  // A regular file is read to its size (checked against the limit before anything is
  // allocated); anything else (a pipe, /dev/zero) up to kMaxStreamBytes.
  const bool regular = S_ISREG(info.st_mode);
  const uint64_t limit = regular ? kMaxTensorBytes : kMaxStreamBytes;
  if (regular && static_cast<uint64_t>(info.st_size) > limit) {
    throw Error("'" + path + "' is " + std::to_string(info.st_size) + " bytes, more than kiln reads (" +
                std::to_string(limit) + ")");
  }
  std::string contents;
  contents.resize(regular ? static_cast<size_t>(info.st_size) + 1 : size_t{1} << 16);
  size_t filled = 0;
  for (;;) {
    if (filled == contents.size()) {
      if (contents.size() >= limit) {
        char probe = 0;
        if (::read(fd.get(), &probe, 1) <= 0) break;
        throw Error("'" + path + "' gives more than " + std::to_string(limit) + " bytes" +
                    (regular ? "" : " (it is not a regular file); save the data to a file"));
      }
      contents.resize(static_cast<size_t>(std::min<uint64_t>(limit, contents.size() * 2)));
    }
    const ssize_t n = ::read(fd.get(), contents.data() + filled, contents.size() - filled);
    if (n < 0) {
      if (errno == EINTR) continue;
      throw Error("cannot read '" + path + "': " + std::strerror(errno));
    }
    if (n == 0) break;
    filled += static_cast<size_t>(n);
  }
  contents.resize(filled);
  return contents;
}

std::shared_ptr<const FileBytes> FileBytes::Open(const std::string& path) {
  if (path.empty()) throw Error("cannot open '': no file name given");
  std::shared_ptr<FileBytes> file(new FileBytes());  // private constructor
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0) throw Error("cannot open '" + path + "': " + std::strerror(errno));
  struct stat info {};
  if (::fstat(fd.get(), &info) != 0) throw Error("cannot read '" + path + "': " + std::strerror(errno));
  if (!S_ISREG(info.st_mode) || info.st_size == 0) {
    // Directories, pipes and devices get ReadFile's checks and messages; an empty file
    // has nothing to map.
    file->copy_ = ReadFile(path);
    file->data_ = file->copy_.data();
    file->size_ = file->copy_.size();
    return file;
  }
  if (static_cast<uint64_t>(info.st_size) > kMaxTensorBytes) {
    throw Error("'" + path + "' is " + std::to_string(info.st_size) + " bytes, more than kiln reads (" +
                std::to_string(kMaxTensorBytes) + ")");
  }
  const auto size = static_cast<size_t>(info.st_size);
  // MAP_POPULATE: one call maps every page the page cache holds, instead of a fault per
  // page when the checksum first reads it.
  void* const memory = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE | MAP_POPULATE, fd.get(), 0);
  if (memory == MAP_FAILED) throw Error("cannot map '" + path + "': " + std::strerror(errno));
  file->data_ = static_cast<const char*>(memory);
  file->size_ = size;
  file->mapped_ = true;
  return file;
}

FileBytes::~FileBytes() {
  if (mapped_) ::munmap(const_cast<char*>(data_), size_);
}

namespace {

// Temporary files are named TARGET.tmp.PID.RANDOM.
std::string TempPrefix(const std::string& path) {
  return path + ".tmp.";
}

// Removes the temporary files of earlier writes of `path` whose writer is gone (killed
// mid-write, say): their PID names no living process. Best effort, never throws.
void RemoveStaleTemps(const std::string& path) {
  std::error_code error;
  const std::filesystem::path target(path);
  const std::filesystem::path dir = target.has_parent_path() ? target.parent_path() : ".";
  const std::string prefix = target.filename().string() + ".tmp.";
  for (std::filesystem::directory_iterator it(dir, error), end; !error && it != end; it.increment(error)) {
    const std::string name = it->path().filename().string();
    if (!name.starts_with(prefix)) continue;
    const std::string rest = name.substr(prefix.size());  // PID.RANDOM
    const size_t dot = rest.find('.');
    if (dot == 0 || dot == std::string::npos || dot > 9 || rest.find_first_not_of("0123456789.") != std::string::npos ||
        rest.find('.', dot + 1) != std::string::npos) {
      continue;
    }
    const pid_t pid = static_cast<pid_t>(std::stol(rest.substr(0, dot)));
    if (pid <= 0 || pid == ::getpid()) continue;
    if (::kill(pid, 0) != 0 && errno == ESRCH) std::filesystem::remove(it->path(), error);
  }
}

}  // namespace

void WriteFileAtomic(const std::string& path, std::string_view bytes, mode_t mode) {
  if (path.empty()) throw Error("cannot write a file with an empty name");
  RemoveStaleTemps(path);
  std::random_device random;
  const std::string temp = TempPrefix(path) + std::to_string(::getpid()) + "." + std::to_string(random());
  UniqueFd fd(::open(temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode));
  if (fd.get() < 0) {
    const int error = errno;
    std::error_code ignored;
    const auto dir = std::filesystem::path(path).parent_path();
    if (error == ENOENT && !dir.empty() && !std::filesystem::is_directory(dir, ignored)) {
      throw Error("cannot write '" + path + "': the directory '" + dir.string() + "' does not exist");
    }
    throw Error("cannot write '" + path + "': " + std::strerror(error));
  }
  const auto fail = [&](const char* what) {
    const std::string reason = std::strerror(errno);
    ::unlink(temp.c_str());
    throw Error(std::string("cannot ") + what + " '" + path + "': " + reason);
  };
  size_t written = 0;
  while (written < bytes.size()) {
    const ssize_t n = ::write(fd.get(), bytes.data() + written, bytes.size() - written);
    if (n < 0) {
      if (errno == EINTR) continue;
      fail("write");
    }
    written += static_cast<size_t>(n);
  }
  if (::fsync(fd.get()) != 0) fail("sync");
  if (::close(fd.release()) != 0) fail("close");
  if (std::rename(temp.c_str(), path.c_str()) != 0) fail("write");
}

void CreateOutputDirectory(const std::string& dir) {
  std::error_code error;
  std::filesystem::create_directories(dir, error);
  if (error || !std::filesystem::is_directory(dir, error)) {
    throw Error("--output-dir '" + dir + "': cannot create the directory" +
                (error ? ": " + error.message() : std::string(": a file of that name exists")));
  }
}

std::string DefaultCacheDir() {
  if (const char* dir = std::getenv("KILN_CACHE_DIR"); dir != nullptr && *dir != '\0') {
    return std::string(dir) == "off" ? "" : dir;
  }
  if (const char* xdg = std::getenv("XDG_CACHE_HOME"); xdg != nullptr && *xdg != '\0') {
    return std::string(xdg) + "/kiln";
  }
  if (const char* home = std::getenv("HOME"); home != nullptr && *home != '\0') {
    return std::string(home) + "/.cache/kiln";
  }
  return "";
}

}  // namespace kiln
