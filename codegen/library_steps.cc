#include "codegen/library_steps.h"

namespace kiln {

proto::GemmCallProto GemmCallOf(const kir::GemmStepArgs& g) {
  proto::GemmCallProto gemm;
  gemm.set_m(g.m);
  gemm.set_n(g.n);
  gemm.set_k(g.k);
  gemm.set_batch(g.batch);
  gemm.set_a_arg(static_cast<uint32_t>(g.a->id));
  gemm.set_b_arg(static_cast<uint32_t>(g.b->id));
  gemm.set_c_arg(static_cast<uint32_t>(g.c->id));
  gemm.set_a_offset(g.a_offset);
  gemm.set_b_offset(g.b_offset);
  gemm.set_c_offset(g.c_offset);
  gemm.set_lda(g.lda);
  gemm.set_ldb(g.ldb);
  gemm.set_ldc(g.ldc);
  gemm.set_stride_a(g.stride_a);
  gemm.set_stride_b(g.stride_b);
  gemm.set_stride_c(g.stride_c);
  gemm.set_transpose_a(g.transpose_a);
  gemm.set_transpose_b(g.transpose_b);
  gemm.set_alpha(static_cast<float>(g.alpha));
  gemm.set_beta(static_cast<float>(g.beta));
  return gemm;
}

}  // namespace kiln
