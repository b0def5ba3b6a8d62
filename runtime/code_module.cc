#include "runtime/code_module.h"

#include <dlfcn.h>
#include <elf.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <utility>

#include "runtime/error.h"

namespace kiln {
namespace {

constexpr std::string_view kKilnPrefix = "kiln_";
constexpr std::string_view kEscapedPrefix = "kiln_x_";

bool IsIdentifier(std::string_view name) {
  if (name.empty() || std::isdigit(static_cast<unsigned char>(name[0]))) return false;
  for (const char c : name) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_') return false;
  }
  return true;
}

class UniqueFd {
 public:
  explicit UniqueFd(int fd = -1) : fd_(fd) {}
  ~UniqueFd() {
    if (fd_ >= 0) ::close(fd_);
  }
  UniqueFd(UniqueFd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  UniqueFd& operator=(UniqueFd&& other) noexcept {
    std::swap(fd_, other.fd_);
    return *this;
  }
  int get() const { return fd_; }

 private:
  int fd_;
};

void WriteAll(int fd, std::string_view bytes, const std::string& what) {
  while (!bytes.empty()) {
    const ssize_t n = ::write(fd, bytes.data(), bytes.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) throw Error("cannot write the code object to " + what + ": " + std::strerror(errno));
    bytes.remove_prefix(static_cast<size_t>(n));
  }
}

// Rejects bytes that are not a shared object for this machine before dlopen sees them,
// with a message that says what they are instead.
void CheckElfHeader(std::string_view bytes) {
  const std::string size = std::to_string(bytes.size()) + " bytes";
  Elf64_Ehdr header;
  if (bytes.size() < sizeof header || std::memcmp(bytes.data(), ELFMAG, SELFMAG) != 0) {
    throw Error("the code object (" + size + ") is not an ELF shared object");
  }
  std::memcpy(&header, bytes.data(), sizeof header);
  if (header.e_ident[EI_CLASS] != ELFCLASS64 || header.e_ident[EI_DATA] != ELFDATA2LSB) {
    throw Error("the code object (" + size + ") is not a 64-bit little-endian ELF file");
  }
  if (header.e_type != ET_DYN) {
    throw Error("the code object (" + size + ") is an ELF file of type " + std::to_string(header.e_type) +
                ", not a shared object (" + std::to_string(ET_DYN) + ")");
  }
#if defined(__x86_64__)
  constexpr int kHostMachine = EM_X86_64;
#elif defined(__aarch64__)
  constexpr int kHostMachine = EM_AARCH64;
#else
  constexpr int kHostMachine = -1;
#endif
  if (kHostMachine >= 0 && header.e_machine != kHostMachine) {
    throw Error("the code object (" + size + ") is for ELF machine " + std::to_string(header.e_machine) +
                ", this machine is " + std::to_string(kHostMachine));
  }
}

// A loaded shared object. The memfd (or temporary file) stays until after dlclose: glibc
// recognizes an already loaded library by its path, so the path must stay unique while
// the library is loaded.
class SharedObjectModule final : public CodeModule {
 public:
  SharedObjectModule(void* handle, UniqueFd fd, std::string temp_path)
      : handle_(handle), fd_(std::move(fd)), temp_path_(std::move(temp_path)) {}
  ~SharedObjectModule() override {
    ::dlclose(handle_);
    if (!temp_path_.empty()) ::unlink(temp_path_.c_str());
  }

  KilnKernelFn Find(const std::string& name) const override {
    return reinterpret_cast<KilnKernelFn>(::dlsym(handle_, KernelSymbolName(name).c_str()));
  }
  const int64_t* FindAbiRecord(const std::string& name) const override {
    return static_cast<const int64_t*>(::dlsym(handle_, (KernelSymbolName(name) + kAbiRecordSuffix).c_str()));
  }

 private:
  void* handle_;
  UniqueFd fd_;
  std::string temp_path_;
};

void* Open(const std::string& path, size_t size) {
  void* handle = ::dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (handle == nullptr) {
    const char* why = ::dlerror();
    throw Error("cannot load the code object (" + std::to_string(size) + " bytes): " + (why ? why : "unknown error"));
  }
  return handle;
}

}  // namespace

CodeModule::~CodeModule() = default;

std::string KernelSymbolName(std::string_view kernel_name) {
  if (IsIdentifier(kernel_name) && kernel_name.starts_with(kKilnPrefix) && !kernel_name.starts_with(kEscapedPrefix)) {
    return std::string(kernel_name);
  }
  static constexpr char kHex[] = "0123456789abcdef";
  std::string symbol(kEscapedPrefix);
  for (const char c : kernel_name) {
    const auto byte = static_cast<unsigned char>(c);
    if (std::isalnum(byte)) {
      symbol += c;
    } else if (c == '_') {
      symbol += "__";
    } else {
      symbol += "_x";
      symbol += kHex[byte >> 4];
      symbol += kHex[byte & 15];
    }
  }
  return symbol;
}

std::unique_ptr<CodeModule> LoadSharedObject(std::string_view bytes) {
  CheckElfHeader(bytes);
  // An anonymous in-memory file, where /proc lets dlopen reach it.
  UniqueFd memfd(::memfd_create("kiln-code", MFD_CLOEXEC));
  if (memfd.get() >= 0) {
    const std::string path = "/proc/self/fd/" + std::to_string(memfd.get());
    WriteAll(memfd.get(), bytes, "memory");
    if (::access(path.c_str(), R_OK) == 0) {
      void* handle = Open(path, bytes.size());
      return std::make_unique<SharedObjectModule>(handle, std::move(memfd), std::string());
    }
  }
  // A temporary file, removed when the module is destroyed.
  const char* tmpdir = std::getenv("TMPDIR");
  std::string path = std::string(tmpdir && *tmpdir ? tmpdir : "/tmp") + "/kiln-code-XXXXXX";
  UniqueFd file(::mkostemp(path.data(), O_CLOEXEC));
  if (file.get() < 0)
    throw Error("cannot create a temporary file for the code object: " + std::string(std::strerror(errno)));
  try {
    WriteAll(file.get(), bytes, path);
    void* handle = Open(path, bytes.size());
    return std::make_unique<SharedObjectModule>(handle, UniqueFd(), path);
  } catch (...) {
    ::unlink(path.c_str());
    throw;
  }
}

}  // namespace kiln
