// Library GEMM steps of an artifact (proto::KernelCall::gemm, from kir::GemmStep): the
// checks both executors make at load, the host's run through kiln's sgemm, and the call
// cuBLAS's column-major interface takes.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "proto/artifact.pb.h"
#include "runtime/kernel_abi.h"

namespace kiln {

// Checks a library step's product against its buffers: sizes, argument indices, every
// operand within the bytes its buffer gives, and C overlapping neither A nor B. Returns
// the bytes each of call.args() must give (0 for arguments the product does not touch),
// for CheckBufferRef. Throws kiln::Error starting with `what`.
std::vector<uint64_t> CheckGemmCall(const proto::KernelCall& call, const std::string& what);

// Batch items [begin, end) of the product on the host, with `api`'s sgemm; a, b, c point
// at the start of the buffers args[a_arg], args[b_arg], args[c_arg].
void RunGemmOnHost(const proto::GemmCallProto& gemm, const float* a, const float* b, float* c,
                   const KilnRuntimeApi* api, int64_t begin, int64_t end);

// The product as cublasSgemmStridedBatched takes it. cuBLAS is column-major: a row-major
// (m, n) C is a column-major (n, m) C^T = op(B)^T op(A)^T, so B comes first and the
// sizes swap. Offsets are in elements from the start of each operand's buffer.
struct CublasGemmCall {
  bool transpose_first = false;   // CUBLAS_OP_T for the first operand (B), else CUBLAS_OP_N
  bool transpose_second = false;  // the same for the second (A)
  int32_t m = 0, n = 0, k = 0;    // column-major: m rows of C^T (the row-major n), n columns
  int32_t ld_first = 1, ld_second = 1, ldc = 1;
  int64_t first_offset = 0, second_offset = 0, c_offset = 0;
  int64_t stride_first = 0, stride_second = 0, stride_c = 0;
  int32_t batch = 1;
  float alpha = 1, beta = 0;
  bool empty = false;  // m or n is 0: nothing to compute (cuBLAS is not called)
};
// Throws kiln::Error when a size exceeds cuBLAS's 32-bit arguments.
CublasGemmCall PlanCublasGemm(const proto::GemmCallProto& gemm);

// cuBLAS's definition of the call, computed plainly (the emulated device's GEMM, and the
// oracle of the plan's tests): first = B's buffer, second = A's.
void ColumnMajorGemm(const CublasGemmCall& call, const float* first, const float* second, float* c);

}  // namespace kiln
