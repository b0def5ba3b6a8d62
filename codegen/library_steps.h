// Library steps of kernels (kir::GemmStep) as artifacts record them and as the host runs
// them: shared by the compile driver and the kir interpreter.
#pragma once

#include "codegen/kir/kir.h"
#include "proto/artifact.pb.h"

namespace kiln {

// A library GEMM step as the artifact records it: its buffers by argument index.
proto::GemmCallProto GemmCallOf(const kir::GemmStepArgs& gemm);

}  // namespace kiln
