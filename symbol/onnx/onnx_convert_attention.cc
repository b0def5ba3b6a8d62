// ONNX converters for transformer layers, composed of kiln operators: RMSNormalization
// and Attention (scaled dot-product attention with masks, a key/value cache and grouped
// query heads).
#include <cmath>
#include <limits>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "symbol/onnx/onnx_converter.h"
#include "symbol/onnx/onnx_tensor.h"

namespace kiln::onnx_import {
namespace {

// A floating point type an attribute names by its ONNX code (stash_type,
// softmax_precision), or an error naming the attribute.
DType FloatTypeAttr(const NodeContext& ctx, const std::string& name, int64_t fallback) {
  const int64_t code = ctx.Int(name, fallback);
  const std::optional<DType> dtype = DTypeFromOnnx(static_cast<int32_t>(code));
  if (!dtype || !IsFloat(*dtype)) {
    throw Error("attribute '" + name + "' is " + std::to_string(code) +
                ", expected a floating point type kiln has (1 float, 10 float16, 11 double)");
  }
  return *dtype;
}

Value CastTo(NodeContext& ctx, const Value& v, DType dtype) {
  return v.dtype == dtype ? v : ctx.Apply("Cast", {v}, {{"dtype", dtype}});
}

// RMSNormalization (opset 23): X / sqrt(mean(X^2 over the axes from `axis` on) + epsilon)
// in stash_type, back in X's type, times Scale (broadcast).
const RegisterConverter kRmsNorm({"RMSNormalization"}, {"axis", "epsilon", "stash_type"}, [](NodeContext& ctx) {
  const Value& x = ctx.In(0);
  if (!IsFloat(x.dtype)) throw Error("X must be floating point, given " + std::string(DTypeName(x.dtype)));
  const int64_t rank = static_cast<int64_t>(x.shape.size());
  const int64_t axis = NormalizeAxis(ctx.Int("axis", -1), x.shape.size());
  std::vector<int64_t> axes;
  for (int64_t a = axis; a < rank; ++a) axes.push_back(a);
  const Value xs = CastTo(ctx, x, FloatTypeAttr(ctx, "stash_type", 1));
  const Value mean_square = ctx.Apply("mean", {ctx.Apply("square", {xs})}, {{"axis", axes}, {"keepdims", true}});
  const Value inv_rms =
      ctx.Apply("rsqrt", {ctx.Apply("_plus_scalar", {mean_square}, {{"scalar", ctx.Float("epsilon", 1e-5)}})});
  const Value normalized = CastTo(ctx, ctx.Apply("broadcast_mul", {xs, inv_rms}), x.dtype);
  return std::vector<Value>{ctx.Apply("broadcast_mul", {normalized, CastTo(ctx, ctx.In(1), x.dtype)})};
});

// Q, K or V as (batch, heads, sequence, head size): 4-d as given, 3-d (batch, sequence,
// heads * head size) split into `heads`.
Value ToHeads(NodeContext& ctx, const Value& v, const std::string& what, std::optional<int64_t> heads) {
  if (v.shape.size() == 4) {
    if (heads && *heads != v.shape[1]) {
      throw Error(what + " " + ShapeToString(v.shape) + " has " + std::to_string(v.shape[1]) +
                  " heads, the attribute gives " + std::to_string(*heads));
    }
    return v;
  }
  const std::string attr = what == "Q" ? "q_num_heads" : "kv_num_heads";
  if (!heads) throw Error("attribute '" + attr + "' is required for 3-d " + what + " " + ShapeToString(v.shape));
  if (*heads <= 0 || v.shape[2] % *heads != 0) {
    throw Error("attribute '" + attr + "' is " + std::to_string(*heads) + ": it must divide the hidden size " +
                std::to_string(v.shape[2]) + " of " + what + " " + ShapeToString(v.shape));
  }
  const Value split = ctx.ReshapeTo(v, {v.shape[0], v.shape[1], *heads, v.shape[2] / *heads});
  return ctx.Apply("transpose", {split}, {{"axes", std::vector<int64_t>{0, 2, 1, 3}}});
}

// A tensor of `shape` and `dtype` filled with `value`.
Value Filled(NodeContext& ctx, const Shape& shape, DType dtype, double value) {
  Tensor t(shape, dtype);
  for (int64_t i = 0; i < t.size(); ++i) t.SetDouble(i, value);
  return ctx.MakeConstant(std::move(t));
}

// 0 where `keep` is nonzero, -inf elsewhere, in `dtype`: a mask made an additive bias.
Value MaskBias(NodeContext& ctx, const Value& keep, DType dtype) {
  const Value zeros = ctx.Apply("zeros_like", {CastTo(ctx, keep, dtype)});
  const Value minus_inf = ctx.Apply("_plus_scalar", {zeros}, {{"scalar", -std::numeric_limits<double>::infinity()}});
  return ctx.Apply("where", {keep, zeros, minus_inf});
}

// `bias` plus `more` (which broadcast together).
Value AddBias(NodeContext& ctx, const std::optional<Value>& bias, const Value& more) {
  return bias ? ctx.Apply("broadcast_add", {*bias, more}) : more;
}

// Attention (opsets 23 and 24): softmax(softcap(Q K^T * scale) + bias) V per head, the bias
// from attn_mask, is_causal and nonpad_kv_seqlen; past keys and values go in front of K
// and V (and out as present_key, present_value); grouped K and V heads are repeated for
// the query heads they serve.
const RegisterConverter kAttention(
    {"Attention"},
    {"is_causal", "kv_num_heads", "q_num_heads", "qk_matmul_output_mode", "scale", "softcap", "softmax_precision"},
    [](NodeContext& ctx) {
      const int64_t mode = ctx.Int("qk_matmul_output_mode", 0);
      if (mode < 0 || mode > 3) {
        throw Error("attribute 'qk_matmul_output_mode' is " + std::to_string(mode) +
                    ", expected 0 (Q K^T), 1 (after softcap), 2 (after the mask) or 3 (after softmax)");
      }
      const size_t rank = ctx.In(0).shape.size();
      if (rank != 3 && rank != 4) throw Error("Q must be 3-d or 4-d, given " + ShapeToString(ctx.In(0).shape));
      for (size_t i = 1; i < 3; ++i) {
        if (ctx.In(i).shape.size() != rank) {
          throw Error(std::string(i == 1 ? "K " : "V ") + ShapeToString(ctx.In(i).shape) + " must be " +
                      std::to_string(rank) + "-d like Q " + ShapeToString(ctx.In(0).shape));
        }
      }
      const auto heads_attr = [&](const std::string& name) {
        return ctx.HasAttr(name) ? std::optional<int64_t>(ctx.Int(name)) : std::nullopt;
      };
      const Value q = ToHeads(ctx, ctx.In(0), "Q", heads_attr("q_num_heads"));
      Value k = ToHeads(ctx, ctx.In(1), "K", heads_attr("kv_num_heads"));
      Value v = ToHeads(ctx, ctx.In(2), "V", heads_attr("kv_num_heads"));
      const DType dtype = q.dtype;
      if (!IsFloat(dtype)) throw Error("Q must be floating point, given " + std::string(DTypeName(dtype)));
      const int64_t batch = q.shape[0], q_heads = q.shape[1], q_length = q.shape[2], head_size = q.shape[3];
      const int64_t kv_heads = k.shape[1];
      if (k.shape[0] != batch || v.shape[0] != batch || v.shape[1] != kv_heads || v.shape[2] != k.shape[2] ||
          k.shape[3] != head_size) {
        throw Error("Q " + ShapeToString(q.shape) + ", K " + ShapeToString(k.shape) + " and V " +
                    ShapeToString(v.shape) +
                    " (as batch, heads, sequence, head size) must agree in batch and head size (Q, K) and in heads "
                    "and sequence (K, V)");
      }
      if (kv_heads <= 0 || q_heads % kv_heads != 0) {
        throw Error("Q has " + std::to_string(q_heads) + " heads, K and V " + std::to_string(kv_heads) +
                    ": the query heads must be a multiple of the key/value heads");
      }

      // The key/value cache.
      const bool has_past_key = ctx.num_inputs() > 4 && ctx.Has(4);
      const bool has_past_value = ctx.num_inputs() > 5 && ctx.Has(5);
      if (has_past_key != has_past_value) throw Error("past_key and past_value must be given together");
      int64_t past_length = 0;
      if (has_past_key) {
        const Value& past_key = ctx.In(4);
        const Value& past_value = ctx.In(5);
        past_length = past_key.shape.size() == 4 ? past_key.shape[2] : -1;
        const Shape key_shape = {batch, kv_heads, past_length, head_size};
        const Shape value_shape = {batch, kv_heads, past_length, v.shape[3]};
        if (past_key.shape != key_shape || past_value.shape != value_shape) {
          throw Error("past_key " + ShapeToString(past_key.shape) + " and past_value " +
                      ShapeToString(past_value.shape) + " must be (batch, kv heads, past length, head size) like " +
                      ShapeToString(key_shape) + " and " + ShapeToString(value_shape));
        }
        k = ctx.Apply("Concat", {past_key, k}, {{"num_args", 2}, {"dim", 2}});
        v = ctx.Apply("Concat", {past_value, v}, {{"num_args", 2}, {"dim", 2}});
      }
      const Value present_key = k, present_value = v;
      const int64_t total = k.shape[2];
      if (q_heads != kv_heads) {
        // Grouped query attention: kv head h serves query heads h * group .. (h + 1) * group - 1.
        const int64_t group = q_heads / kv_heads;
        k = ctx.Apply("repeat", {k}, {{"repeats", group}, {"axis", 1}});
        v = ctx.Apply("repeat", {v}, {{"repeats", group}, {"axis", 1}});
      }

      // Q K^T * scale, with sqrt(|scale|) on each side as the spec does against overflow
      // (and the sign on Q's).
      const double scale = ctx.HasAttr("scale") ? ctx.Float("scale") : 1.0 / std::sqrt(static_cast<double>(head_size));
      const double root = std::sqrt(std::fabs(scale));
      const Value q_scaled = ctx.Apply("_mul_scalar", {q}, {{"scalar", scale < 0 ? -root : root}});
      const Value k_scaled = ctx.Apply("_mul_scalar", {k}, {{"scalar", root}});
      Value qk = ctx.Apply("batch_dot", {q_scaled, k_scaled}, {{"transpose_b", true}});
      const Value qk_raw = qk;
      const double softcap = ctx.Float("softcap", 0.0);
      if (softcap > 0) {
        const Value capped = ctx.Apply("tanh", {ctx.Apply("_div_scalar", {qk}, {{"scalar", softcap}})});
        qk = ctx.Apply("_mul_scalar", {capped}, {{"scalar", softcap}});
      }
      const Value qk_capped = qk;

      // The bias: attn_mask, is_causal and nonpad_kv_seqlen, each 0 or -inf (a float mask
      // as given), added together.
      const Shape scores = {batch, q_heads, q_length, total};
      std::optional<Value> bias;
      if (ctx.num_inputs() > 3 && ctx.Has(3)) {
        const Value& mask = ctx.In(3);
        if (mask.shape.empty() || mask.shape.size() > 4) {
          throw Error("attn_mask " + ShapeToString(mask.shape) + " must be 1-d to 4-d, broadcastable to " +
                      ShapeToString(scores));
        }
        Value b = mask.dtype == DType::kBool ? MaskBias(ctx, mask, dtype) : CastTo(ctx, mask, dtype);
        const int64_t given = mask.shape.back();
        for (size_t d = 0; d < mask.shape.size(); ++d) {
          const int64_t want = scores[4 - mask.shape.size() + d];
          const bool last = d + 1 == mask.shape.size();
          if (mask.shape[d] != 1 && mask.shape[d] != want && !(last && given < want)) {
            throw Error("attn_mask " + ShapeToString(mask.shape) + " does not broadcast to " + ShapeToString(scores) +
                        " (batch, q heads, q length, past + kv length)");
          }
        }
        if (given < total) {
          // A mask shorter than the keys leaves out the ones after it (a last axis of 1
          // too, as ONNX's reference reads it).
          Shape rest = mask.shape;
          rest.back() = total - given;
          b = ctx.Apply("Concat", {b, Filled(ctx, rest, dtype, -std::numeric_limits<double>::infinity())},
                        {{"num_args", 2}, {"dim", static_cast<int64_t>(mask.shape.size()) - 1}});
        }
        bias = b;
      }
      if (ctx.Int("is_causal", 0) != 0) {
        // Query i sees the past and keys up to i of the new ones.
        Tensor causal({q_length, total}, dtype);
        for (int64_t i = 0; i < q_length; ++i) {
          for (int64_t j = 0; j < total; ++j) {
            causal.SetDouble(i * total + j, j > i + past_length ? -std::numeric_limits<double>::infinity() : 0.0);
          }
        }
        bias = AddBias(ctx, bias, ctx.MakeConstant(std::move(causal)));
      }
      if (ctx.num_inputs() > 6 && ctx.Has(6)) {
        const Value& lengths = ctx.In(6);
        if (lengths.shape != Shape{batch} || IsFloat(lengths.dtype) || lengths.dtype == DType::kBool) {
          throw Error("nonpad_kv_seqlen must be integers of shape (" + std::to_string(batch) + ",), given " +
                      std::string(DTypeName(lengths.dtype)) + " " + ShapeToString(lengths.shape));
        }
        Tensor positions({1, 1, 1, total}, lengths.dtype);
        for (int64_t j = 0; j < total; ++j) op_util::StoreInt(positions, j, j);
        const Value keep = ctx.Apply(
            "broadcast_lesser", {ctx.MakeConstant(std::move(positions)), ctx.ReshapeTo(lengths, {batch, 1, 1, 1})});
        bias = AddBias(ctx, bias, MaskBias(ctx, keep, dtype));
      }
      if (bias) qk = ctx.Apply("broadcast_add", {qk, *bias});
      const Value qk_biased = qk;

      const DType softmax_type = ctx.HasAttr("softmax_precision") ? FloatTypeAttr(ctx, "softmax_precision", 1) : dtype;
      const Value weights = CastTo(ctx, ctx.Apply("softmax", {CastTo(ctx, qk, softmax_type)}, {{"axis", -1}}), dtype);
      Value y = ctx.Apply("batch_dot", {weights, v});
      if (rank == 3) {
        y = ctx.Apply("transpose", {y}, {{"axes", std::vector<int64_t>{0, 2, 1, 3}}});
        y = ctx.ReshapeTo(y, {batch, q_length, q_heads * v.shape[3]});
      }

      const Value qk_output = mode == 0 ? qk_raw : mode == 1 ? qk_capped : mode == 2 ? qk_biased : weights;
      return std::vector<Value>{y, present_key, present_value, BroadcastTo(ctx, qk_output, scores)};
    });

}  // namespace
}  // namespace kiln::onnx_import
