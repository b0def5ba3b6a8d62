"""Who may depend on the compiler side (symbol/, passes/, codegen/): everyone but runtime/.

The runtime is what a deployed server ships; Bazel refuses any dependency of //runtime on
these packages, which keeps it free of LLVM, NVRTC and the compiler.
"""

COMPILER_VISIBILITY = [
    "//codegen:__subpackages__",
    "//examples:__subpackages__",
    "//passes:__subpackages__",
    "//symbol:__subpackages__",
    "//tests:__subpackages__",
    "//tools:__subpackages__",
]
