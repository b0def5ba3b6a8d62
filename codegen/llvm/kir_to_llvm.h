// Internal to codegen/llvm: kernel IR -> an unoptimized LLVM module. Only forward
// declarations of LLVM types here, so that this header stays light.
#pragma once

#include <memory>
#include <vector>

#include "codegen/kir/kir.h"

namespace llvm {
class LLVMContext;
class Module;
class TargetMachine;
}  // namespace llvm

namespace kiln::llvm_codegen {

// One exported function per kernel, for `machine`'s triple, data layout, CPU and
// features (see llvm_emitter.h for the semantics). Throws kiln::Error for kernels that
// fail kir::Verify, duplicate names, an unknown routine or a local too large for the
// stack.
std::unique_ptr<llvm::Module> BuildModule(const std::vector<kir::Kernel>& kernels, const llvm::TargetMachine& machine,
                                          llvm::LLVMContext& context);

}  // namespace kiln::llvm_codegen
