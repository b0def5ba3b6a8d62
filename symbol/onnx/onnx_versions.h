// Which version of an ONNX operator a model's opset means, and which versions kiln's
// converters handle. Every converter handles its operator's versions up to the one
// opset kReviewedOnnxOpset means (what the ONNX backend suite checked when kiln imported
// opsets 7 to 17); newer versions only where they are listed in onnx_versions.cc, each
// with why the converter is right for it. A version neither covers is refused, naming
// the operator and the version, never imported on the older version's semantics.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace kiln::onnx_import {

inline constexpr int64_t kReviewedOnnxOpset = 17;

// The newest opset the operator table (tools/onnx/gen_op_versions.py) knows.
int64_t NewestOnnxOpset();
// The version of `op_type` that `opset` means: the newest of the operator's versions
// not after it; 0 for an operator the table does not know.
int64_t OpVersion(std::string_view op_type, int64_t opset);
// Empty when kiln's converter handles the version `opset` means; otherwise why not.
std::string UnhandledVersion(std::string_view op_type, int64_t opset);

}  // namespace kiln::onnx_import
