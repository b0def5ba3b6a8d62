// The binary interface between generated kernels and the runtime. Plain C types: the
// code object (JIT or a shared object inside an artifact) and the runtime agree on
// nothing else.
//
// A kernel is   void kernel(void* const* buffers, int64_t begin, int64_t end,
//                           const KilnRuntimeApi* api);
// `buffers` are the kernel's arguments in kir::Kernel::args order; [begin, end) is the
// share of the kernel's parallel loop this call runs (0..parallel_extent in total).
// Routines that kernels call (GEMM) are reached through `api`, so code objects have no
// undefined symbols of kiln's to resolve.
//
// Beside every kernel the code object exports its ABI record, a constant
//   int64_t SYMBOL.abi[2 + n] = {n, parallel_extent, bytes(arg 0), ..., bytes(arg n-1)}
// ('.' cannot occur in a kernel symbol, so records never collide with kernels): what
// the code itself reads and writes. The executor checks the artifact's plan against it,
// whatever the artifact's metadata says.
#pragma once

#include <cstdint>
#include <string_view>

extern "C" {

struct KilnRuntimeApi {
  uint32_t abi_version;
  // C[m, n] = alpha * sum_k op(A)[m, k] * op(B)[k, n] + beta * C[m, n], row-major, with
  // op(X) = X or X^T; lda/ldb/ldc are row strides in elements. transpose_b ==
  // kSgemmPackedB (2): B is packed by kiln::PackGemmB (runtime/kernels/gemm.h) and b
  // points at the panel of C's first column; ldb is unused. Single-threaded: kernels
  // split work across threads themselves.
  void (*sgemm)(int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda, int32_t transpose_a,
                const float* b, int64_t ldb, int32_t transpose_b, float beta, float* c, int64_t ldc);
  // C[m, cols] = A[m, K] im2col(x)[K, col0 .. col0 + cols) for one image's channels x of
  // a 2-D convolution (kiln::SgemmConv, runtime/kernels/gemm.h); A row-major with row
  // stride lda, or packed by kiln::PackFilters when lda == 0.
  void (*sconv)(int64_t m, int64_t col0, int64_t cols, const float* a, int64_t lda, const float* x, int64_t channels,
                int64_t height, int64_t width, int64_t kernel_h, int64_t kernel_w, int64_t stride_h, int64_t stride_w,
                int64_t dilate_h, int64_t dilate_w, int64_t pad_h, int64_t pad_w, int64_t out_w, float* c, int64_t ldc);
  // The same product transposed, C^T[cols, m] (kiln::SgemmConvT): a is W^T packed by
  // kiln::PackGemmB, lda unused; the positions are the GEMM's rows.
  void (*sconv_t)(int64_t m, int64_t col0, int64_t cols, const float* a, int64_t lda, const float* x, int64_t channels,
                  int64_t height, int64_t width, int64_t kernel_h, int64_t kernel_w, int64_t stride_h, int64_t stride_w,
                  int64_t dilate_h, int64_t dilate_w, int64_t pad_h, int64_t pad_w, int64_t out_w, float* c,
                  int64_t ldc);
};

typedef void (*KilnKernelFn)(void* const* buffers, int64_t begin, int64_t end, const KilnRuntimeApi* api);

}  // extern "C"

namespace kiln {
// 2: kernels carry ABI records. 3: the sconv and sconv_t routines, sgemm's packed B.
inline constexpr uint32_t kKernelAbiVersion = 3;
// sgemm's transpose_b for a B packed by kiln::PackGemmB.
inline constexpr int32_t kSgemmPackedB = 2;
inline constexpr const char* kAbiRecordSuffix = ".abi";
// Arena offsets are multiples of this (the planner aligns every block).
inline constexpr int64_t kArenaAlignment = 64;
// Slots of KilnRuntimeApi the emitter calls, by kir routine name.
inline constexpr const char* kRoutineSgemm = "sgemm";
inline constexpr const char* kRoutineSconv = "sconv";
inline constexpr const char* kRoutineSconvT = "sconv_t";

// Every routine's slot and arguments, declared once for the emitter, the kir
// interpreter and the lowerings: 'l' int64, 'i' int32, 'f' float, 'p' a float pointer.
struct RoutineSignature {
  const char* name;
  int slot;  // index of the function pointer among KilnRuntimeApi's pointers
  const char* args;
};
inline constexpr RoutineSignature kRoutines[] = {
    {kRoutineSgemm, 0, "lllfpliplifpl"},
    {kRoutineSconv, 1, "lllplpllllllllllllpl"},
    {kRoutineSconvT, 2, "lllplpllllllllllllpl"},
};
// nullptr for a name that is not a routine.
inline const RoutineSignature* FindRoutine(std::string_view name) {
  for (const RoutineSignature& routine : kRoutines) {
    if (name == routine.name) return &routine;
  }
  return nullptr;
}
}  // namespace kiln
