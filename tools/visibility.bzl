"""The layering of kiln's packages, enforced by Bazel visibility (docs/ARCHITECTURE.md).

Each package may be depended on only by the layers above it, so a dependency that points
down-to-up (the graph core on an operator, the passes on the Symbol API) fails to build.
Bazel already refuses cycles between targets; these lists also refuse cycles between
folders. The runtime is what a deployed server ships: it is public, and nothing of the
compiler is visible to it, which keeps it free of LLVM, NVRTC and the compiler.
"""

# Tests, tools and examples sit on top of everything.
_TOP = [
    "//examples:__subpackages__",
    "//tests:__subpackages__",
    "//tools:__subpackages__",
]

# Layer 7: training (optimizers, compiled steps, data), on the compile driver.
_TRAIN = ["//train:__subpackages__"]

# Layer 7 too: the NDArray API (eager arrays, compiled per call, autograd).
_NDARRAY = ["//ndarray:__subpackages__"]
NDARRAY_VISIBILITY = _NDARRAY + _TOP

# Layer 6: the compile driver and the Symbol API (with its importers).
SYMBOL_VISIBILITY = ["//symbol:__subpackages__"] + _TRAIN + _NDARRAY + _TOP
CODEGEN_VISIBILITY = ["//codegen:__pkg__"] + _TRAIN + _NDARRAY + _TOP

# Layer 5: graph passes (read the registry, never the operator files).
PASSES_VISIBILITY = ["//passes:__pkg__"] + SYMBOL_VISIBILITY + CODEGEN_VISIBILITY

# Layer 4: the operator definitions (the Symbol API links them for its users).
OPS_VISIBILITY = ["//ops:__pkg__"] + SYMBOL_VISIBILITY

# Layer 3: lowering helpers, used by the operators and the compile driver (fusion).
LOWER_VISIBILITY = ["//codegen/lower:__pkg__", "//ops:__pkg__"] + CODEGEN_VISIBILITY

# Layer 2: the graph core (attributes, operator registry, graph IR).
GRAPH_VISIBILITY = ["//graph:__pkg__"] + LOWER_VISIBILITY + OPS_VISIBILITY + PASSES_VISIBILITY

# Layer 1: the kernel IR and its emitters, LLVM and CUDA C (which know nothing of graphs).
EMITTERS = ["//codegen/llvm:__pkg__", "//codegen/cuda:__pkg__"]
KIR_VISIBILITY = ["//codegen/kir:__pkg__"] + EMITTERS + GRAPH_VISIBILITY

# The LLVM emitter: only the compile driver calls it.
