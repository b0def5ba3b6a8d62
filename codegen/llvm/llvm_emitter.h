// The LLVM emitter: kernel IR -> LLVM IR -> machine code for a CPU, either in-process (an
// ORC JIT) or ahead of time (an ELF shared object for an artifact). No LLVM header is
// included here: LLVM stays inside codegen/llvm/*.cc.
//
// What the generated code assumes and guarantees:
// - Each kir::Kernel becomes an exported function with the kernel ABI signature
//   (runtime/kernel_abi.h), named KernelSymbolName(kernel.name) (runtime/code_module.h).
//   The outermost kParallel loop runs the iterations [begin, end) the caller gives; a
//   kernel without one runs its body once when begin < end.
// - Arithmetic is kir's contract (codegen/kir/kir.h); bool is one byte (0/1) in memory.
//   Transcendental functions (exp, log, tanh, erf) come from libm in the operand's
//   precision, so float results may differ from the interpreter's (double, then rounded)
//   in the last bits. Where the CPU has AVX2, exp, log and pow vectorize through glibc's
//   libmvec (shared objects then also need libmvec.so.1); integer pow calls libm's
//   scalar pow, which is exact where libmvec's is up to 4 ulp off.
// - Arguments the memory plan keeps apart (kir::Kernel::noalias) get alias scopes. Others
//   may share storage with an input (in-place execution), so the vectorizer guards
//   loops with runtime overlap checks. Those checks
//   fail for exact in-place storage, so a kVectorize loop of elementwise form (stores at
//   j + invariant, reads of possibly shared buffers at the same index) is versioned: when
//   every output is an input's exact storage or disjoint from it, a copy marked parallel
//   runs; otherwise (partial overlap, never made by kiln's planner) the loop runs in order.
// - kVectorize loops are forced to vectorize (which lets float reductions in them be
//   reassociated), kUnroll loops are unrolled; loads and stores use element alignment.
// - Loads are not bounds-checked (the interpreter's are); a select whose arms load
//   evaluates only the arm it picks, so guarded out-of-range indices are safe.
// - Local buffers (Allocate) live on the stack, zero-filled as in the interpreter, up to
//   1 MiB each.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "codegen/kir/kir.h"
#include "runtime/code_module.h"

namespace kiln {

struct CpuTarget {
  // "host": this machine's CPU and features. Otherwise an LLVM CPU name: "x86-64",
  // "x86-64-v2", "x86-64-v3", "x86-64-v4", "skylake", "znver3", ...
  std::string cpu = "host";
  // Extra features added to (or removed from) the CPU's, e.g. "+avx2,+fma" or "-avx512f".
  std::string features;
  // 0..3, as -O0..-O3.
  int opt_level = 2;
};

// A target with "host" resolved. Throws kiln::Error for an unknown CPU name, a malformed
// or unknown feature, or an opt_level outside 0..3.
struct ResolvedTarget {
  std::string triple;          // e.g. "x86_64-pc-linux-gnu" (this machine's)
  std::string cpu;             // LLVM CPU name, e.g. "sapphirerapids"
  std::string feature_string;  // what LLVM is given, e.g. "+avx2,+fma,-avx512f"
  // The instruction-set features the code may use, LLVM names without '+', sorted
  // ("avx2", "fma", "sse4.2", ...); tuning flags are left out.
  std::vector<std::string> features;
};
ResolvedTarget ResolveTarget(const CpuTarget& target);

// Optimized textual LLVM IR of the kernels (tests, `kiln inspect`).
std::string EmitLLVMIR(const std::vector<kir::Kernel>& kernels, const CpuTarget& target);
// Optimized assembly (AT&T syntax).
std::string EmitAssembly(const std::vector<kir::Kernel>& kernels, const CpuTarget& target);

// Compiles the kernels in-process. The module owns the JIT and its code; Find is
// thread-safe and the functions may run on any number of threads at once.
std::unique_ptr<CodeModule> JitCompile(const std::vector<kir::Kernel>& kernels, const CpuTarget& target);

// The bytes of an ELF shared object exporting the kernels (position-independent code,
// linked with the system compiler driver, cc or else gcc, against libm). Load it with
// LoadSharedObject. Throws kiln::Error when no driver is found or linking fails.
std::string CompileSharedObject(const std::vector<kir::Kernel>& kernels, const CpuTarget& target);

}  // namespace kiln
