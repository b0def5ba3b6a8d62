#include "symbol/onnx/onnx_versions.h"

#include <algorithm>
#include <map>
#include <set>
#include <vector>

namespace kiln::onnx_import {
namespace {

#include "symbol/onnx/onnx_op_versions.inc"

// Versions after kReviewedOnnxOpset that kiln's converters handle, and why.
const std::map<std::string, std::set<int64_t>, std::less<>> kNewerVersions = {
    // Opset 22 only added bfloat16 (and float8) types: kiln refuses those types where
    // it meets them, and imports the rest as before.
    {"Conv", {22}},
    {"ConvTranspose", {22}},
    {"EyeLike", {22}},
    // Range-27 added float16/bfloat16 and stash_type, which the converter reads.
    {"Range", {27}},
    // LpPool-18 added ceil_mode (and dilations, 11 already had them listed): handled.
    {"LpPool", {18, 22}},
    // GroupNormalization-21 made scale and bias per channel (18: per group) and added
    // stash_type: the converter reads both versions.
    {"GroupNormalization", {18, 21}},
    {"MaxPool", {22}},
    {"GlobalAveragePool", {22}},
    {"GlobalMaxPool", {22}},
    {"Dropout", {22}},
    {"Elu", {22}},
    {"HardSigmoid", {22}},
    {"InstanceNormalization", {22}},
    {"Round", {22}},
    {"Selu", {22}},
    {"Softplus", {22}},
    {"ThresholdedRelu", {22}},
    {"Softsign", {22}},
    {"LpNormalization", {22}},
    {"Sin", {22}},
    {"Cos", {22}},
    {"Tan", {22}},
    {"Asin", {22}},
    {"Acos", {22}},
    {"Atan", {22}},
    {"Sinh", {22}},
    {"Cosh", {22}},
    {"Asinh", {22}},
    {"Acosh", {22}},
    {"Atanh", {22}},
    // IsNaN-20 and IsInf-20 added float8 and bfloat16 types.
    {"IsNaN", {20}},
    {"IsInf", {20}},
    // AveragePool-19 added `dilations`, which the converter does not list: a node using
    // it is reported as an unsupported attribute.
    {"AveragePool", {19, 22}},
    // Types only (float8, int4, uint4, float4e2m1 ...); Cast-19's `saturate` and
    // Split-18's `num_outputs` are attributes the converters do not list.
    {"Cast", {19, 21, 23, 24, 25}},
    {"Identity", {19, 21, 23, 24, 25}},
    {"Reshape", {19, 21, 23, 24, 25}},
    {"Shape", {19, 21, 23, 24, 25}},
    {"Size", {19, 21, 23, 24, 25}},
    {"Flatten", {21, 23, 24, 25}},
    {"Squeeze", {21, 23, 24, 25}},
    {"Unsqueeze", {21, 23, 24, 25}},
    {"Transpose", {21, 23, 24, 25}},
    {"ConstantOfShape", {20, 21, 23, 24, 25}},
    {"Constant", {19, 21, 23, 24, 25}},
    {"Equal", {19}},  // strings
    {"Split", {18}},
    // Version 18 made the axes an input, which the Reduce converters read from opset 18
    // on (Axes(ctx, 1, 18)); ReduceMax/ReduceMin-20 added bool.
    {"ReduceMean", {18}},
    {"ReduceProd", {18}},
    {"ReduceMax", {18, 20}},
    {"ReduceMin", {18, 20}},
    {"ReduceL1", {18}},
    {"ReduceL2", {18}},
    {"ReduceLogSum", {18}},
    {"ReduceLogSumExp", {18}},
    {"ReduceSumSquare", {18}},
    // Converters written after opset 17, for every version their operator has (22:
    // types only).
    {"HardSwish", {22}},
    {"Gelu", {20}},
    // Resize-18 added antialias, axes and keep_aspect_ratio_policy; 19 the
    // half_pixel_symmetric mode: the converter implements both.
    {"Resize", {18, 19}},
    {"Swish", {24}},
    {"CastLike", {19, 21, 23, 24, 25}},  // types only; round_mode (25) concerns float8e8m0
    {"Mish", {18, 22}},
    {"NegativeLogLikelihoodLoss", {22}},  // 22: types only (bfloat16)
    {"RMSNormalization", {23}},
    // Attention-24 added the nonpad_kv_seqlen input and masks shorter than the keys.
    {"Attention", {23, 24}},
    // Version 18 added the max and min reductions, which the converters handle.
    {"ScatterElements", {18}},
    {"ScatterND", {18}},
    // Pad-18 added an `axes` input and Pad-19 the `wrap` mode, both handled (padding
    // by gathers); 21 and later, types.
    {"Pad", {18, 19, 21, 23, 24, 25}},
    {"TopK", {24}},  // types only (bfloat16)
};

}  // namespace

int64_t NewestOnnxOpset() {
  return kNewestOnnxOpset;
}

int64_t OpVersion(std::string_view op_type, int64_t opset) {
  const auto it = kOnnxOpVersions.find(op_type);
  if (it == kOnnxOpVersions.end()) return 0;
  int64_t version = 0;
  for (const int64_t since : it->second) {
    if (since <= opset) version = std::max(version, since);
  }
  return version;
}

std::string UnhandledVersion(std::string_view op_type, int64_t opset) {
  const int64_t version = OpVersion(op_type, opset);
  const int64_t reviewed = OpVersion(op_type, kReviewedOnnxOpset);
  if (version <= reviewed) return "";
  if (const auto it = kNewerVersions.find(op_type); it != kNewerVersions.end() && it->second.count(version) != 0) {
    return "";
  }
  return std::string(op_type) + "-" + std::to_string(version) + " (what opset " + std::to_string(opset) +
         " means) is not supported: kiln's converter handles " + std::string(op_type) + " up to version " +
         std::to_string(reviewed) + "; export with an opset before " + std::to_string(version);
}

}  // namespace kiln::onnx_import
