// Compiled kernels, looked up by kernel name: an in-process JIT module (made by the LLVM
// emitter) or a shared object loaded from an artifact's bytes. Runtime-light: libc and
// libdl only.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "runtime/kernel_abi.h"

namespace kiln {

class CodeModule {
 public:
  CodeModule() = default;
  virtual ~CodeModule();
  CodeModule(const CodeModule&) = delete;
  CodeModule& operator=(const CodeModule&) = delete;

  // The kernel named `name` (a kir::Kernel name, not its symbol), or nullptr when the
  // module has none. Thread-safe; the pointer lives as long as the module.
  virtual KilnKernelFn Find(const std::string& name) const = 0;
  // The ABI record the code exports for kernel `name` (see kernel_abi.h), or nullptr.
  virtual const int64_t* FindAbiRecord(const std::string& name) const = 0;
};

// The symbol a kernel is exported under. A C identifier that starts with "kiln_" (what
// the compiler names kernels) is its own symbol; any other name becomes "kiln_x_" plus
// the name with '_' written "__" and every byte that is not a letter or digit "_xHH".
// The mapping is one to one, and generated symbols never collide with libc or libm
// names (a kernel called "exp" must not replace the exp the code calls).
std::string KernelSymbolName(std::string_view kernel_name);

// Loads an ELF shared object from memory (memfd_create + dlopen of /proc/self/fd/N, or a
// temporary file where that is unavailable), RTLD_NOW | RTLD_LOCAL; the module unloads
// it when destroyed. Throws kiln::Error when the bytes are not a loadable shared object
// for this machine or when a symbol it needs is missing.
std::unique_ptr<CodeModule> LoadSharedObject(std::string_view bytes);

}  // namespace kiln
