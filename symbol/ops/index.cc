// Index-driven gathers: Embedding (rows of a weight table), one_hot and pick.
#include <cmath>

#include "symbol/op_util.h"

namespace kiln {
namespace {

using op_util::AssignShape;
using op_util::AssignType;
using op_util::ShapeError;

// Indices arrive in any numeric dtype; like MXNet, a float index truncates toward zero
// and an out-of-range one is clipped to [0, n).
int64_t ClipIndex(double value, int64_t n) {
  if (!(value >= 0)) return 0;  // negative or NaN
  if (value >= static_cast<double>(n - 1)) return n - 1;
  return static_cast<int64_t>(value);
}

// The numeric dtypes MXNet offers for these outputs (no bool).
void RejectBool(const Attrs& attrs) {
  if (attrs.GetDType("dtype") == DType::kBool) {
    throw Error("attribute 'dtype': expected one of {float16, float32, float64, uint8, int8, int32, int64}, given bool");
  }
}

void RegisterEmbedding() {
  OpRegistry::Global()
      .Register("Embedding")
      .Describe("Looks up rows of weight (input_dim, output_dim) for every index in data")
      .Attr("input_dim", AttrType::kInt, std::nullopt, "vocabulary size: rows of weight")
      .Range(1)
      .Attr("output_dim", AttrType::kInt, std::nullopt, "embedding size: columns of weight")
      .Range(1)
      .Attr("dtype", AttrType::kDType, AttrValue{std::string("float32")}, "weight dtype where not given")
      .Attr("sparse_grad", AttrType::kBool, AttrValue{false}, "row-sparse gradient in MXNet; no effect here")
      .SetValidate(RejectBool)
      .Inputs({"data", "weight"})
      .SetInferShape([](const Attrs& attrs, std::vector<ShapeSlot>& in, std::vector<ShapeSlot>& out) {
        const int64_t output_dim = attrs.Int("output_dim");
        AssignShape(in[1], {attrs.Int("input_dim"), output_dim}, "input 'weight' (input_dim, output_dim)");
        if (!in[0]) return;
        Shape shape = *in[0];
        shape.push_back(output_dim);
        AssignShape(out[0], shape, "output");
      })
      // As MXNet: a given weight dtype wins over the attribute, and the output follows the
      // weight; the indices keep their own dtype.
      .SetInferType([](const Attrs& attrs, std::vector<DTypeSlot>& in, std::vector<DTypeSlot>& out) {
        if (!in[1]) in[1] = out[0] ? *out[0] : attrs.GetDType("dtype");
        AssignType(out[0], *in[1], "output (the dtype of input 'weight')");
      })
      .SetPattern(OpPattern::kInjective)
      .SetReference([](const Attrs& attrs, std::span<const Tensor> in, std::span<Tensor> out, const RefContext&) {
        const int64_t rows = attrs.Int("input_dim");
        const int64_t cols = attrs.Int("output_dim");
        for (int64_t i = 0; i < in[0].size(); ++i) {
          const int64_t row = ClipIndex(in[0].GetDouble(i), rows);
          for (int64_t c = 0; c < cols; ++c) out[0].SetDouble(i * cols + c, in[1].GetDouble(row * cols + c));
        }
      });
}

void RegisterOneHot() {
  OpRegistry::Global()
      .Register("one_hot")
      .Describe("on_value at each index along a new last axis of size depth, off_value elsewhere")
      .Attr("depth", AttrType::kInt, std::nullopt, "size of the new last axis")
      .Range(0)
      .Attr("on_value", AttrType::kFloat, AttrValue{1.0}, "value at the index")
      .Attr("off_value", AttrType::kFloat, AttrValue{0.0}, "value elsewhere")
      .Attr("dtype", AttrType::kDType, AttrValue{std::string("float32")}, "output dtype")
      .SetValidate(RejectBool)
      .Inputs({"indices"})
      .SetInferShape([](const Attrs& attrs, std::vector<ShapeSlot>& in, std::vector<ShapeSlot>& out) {
        if (!in[0]) return;
        Shape shape = *in[0];
        shape.push_back(attrs.Int("depth"));
        AssignShape(out[0], shape, "output");
      })
      .SetInferType([](const Attrs& attrs, std::vector<DTypeSlot>&, std::vector<DTypeSlot>& out) {
        AssignType(out[0], attrs.GetDType("dtype"), "output");
      })
      .SetPattern(OpPattern::kInjective)
      // Unlike Embedding, an out-of-range index is not clipped: its row is all off_value
      // (MXNet's behaviour). A float index truncates toward zero.
      .SetReference([](const Attrs& attrs, std::span<const Tensor> in, std::span<Tensor> out, const RefContext&) {
        const int64_t depth = attrs.Int("depth");
        const double on = attrs.Float("on_value");
        const double off = attrs.Float("off_value");
        for (int64_t i = 0; i < in[0].size(); ++i) {
          const double index = std::trunc(in[0].GetDouble(i));
          for (int64_t d = 0; d < depth; ++d) out[0].SetDouble(i * depth + d, index == static_cast<double>(d) ? on : off);
        }
      });
}

// pick's shapes: data without the axis (or with it as 1 under keepdims) for the output;
// the index has data's shape without the axis, or with it as 1.
Shape WithoutAxis(const Shape& shape, size_t axis, bool keep) {
  Shape result = shape;
  if (keep) {
    result[axis] = 1;
  } else {
    result.erase(result.begin() + static_cast<int64_t>(axis));
  }
  return result;
}

void RegisterPick() {
  OpRegistry::Global()
      .Register("pick")
      .Describe("Picks data's element at index along axis for every other position")
      .Attr("axis", AttrType::kInt, AttrValue{int64_t{-1}}, "the axis to pick along")
      .Nullable()
      .Attr("keepdims", AttrType::kBool, AttrValue{false}, "keep the axis as size 1")
      .Attr("mode", AttrType::kString, AttrValue{std::string("clip")}, "out-of-range indices: clip or wrap")
      .Choices({"clip", "wrap"})
      // MXNet 1.9 declares axis=None (pick from the flattened input) but rejects it.
      .SetValidate([](const Attrs& attrs) {
        if (attrs.IsNone("axis")) throw Error("attribute 'axis': None is not supported by pick; give an axis");
      })
      .Inputs({"data", "index"})
      .SetInferShape([](const Attrs& attrs, std::vector<ShapeSlot>& in, std::vector<ShapeSlot>& out) {
        if (!in[0]) return;
        const Shape& data = *in[0];
        if (data.empty()) ShapeError("input 'data'", "at least 1-d", data);
        const auto axis = static_cast<size_t>(
            op_util::NormalizeAxis(attrs.Int("axis"), static_cast<int64_t>(data.size()), "attribute 'axis'"));
        if (data[axis] == 0) ShapeError("input 'data'", "a nonzero size along axis " + std::to_string(axis), data);
        AssignShape(out[0], WithoutAxis(data, axis, attrs.Bool("keepdims")), "output");
        const Shape index = WithoutAxis(data, axis, false);
        const Shape kept = WithoutAxis(data, axis, true);
        if (!in[1]) {
          in[1] = index;
        } else if (*in[1] != index && *in[1] != kept) {
          ShapeError("input 'index'",
                     "shape " + ShapeToString(index) + " or " + ShapeToString(kept) + " for data " +
                         ShapeToString(data) + " and axis " + std::to_string(axis),
                     *in[1]);
        }
      })
      // The output has data's dtype; the index may be any numeric dtype.
      .SetInferType([](const Attrs&, std::vector<DTypeSlot>& in, std::vector<DTypeSlot>& out) {
        if (!in[0] && out[0]) in[0] = out[0];
        if (in[0]) AssignType(out[0], *in[0], "output");
      })
      .SetPattern(OpPattern::kInjective)
      .SetReference([](const Attrs& attrs, std::span<const Tensor> in, std::span<Tensor> out, const RefContext&) {
        const Shape& shape = in[0].shape();
        const auto axis = static_cast<size_t>(
            op_util::NormalizeAxis(attrs.Int("axis"), static_cast<int64_t>(shape.size()), "axis"));
        const int64_t n = shape[axis];
        int64_t inner = 1;
        for (size_t d = axis + 1; d < shape.size(); ++d) inner *= shape[d];
        const bool wrap = attrs.Str("mode") == "wrap";
        // Output element (o, i) of the (outer, inner) view reads data (o, picked, i).
        for (int64_t flat = 0; flat < out[0].size(); ++flat) {
          const int64_t o = flat / inner;
          const int64_t i = flat % inner;
          const double value = in[1].GetDouble(flat);
          int64_t picked = ClipIndex(value, n);
          if (wrap && std::isfinite(value)) {
            const double wrapped = std::fmod(std::trunc(value), static_cast<double>(n));
            picked = static_cast<int64_t>(wrapped < 0 ? wrapped + static_cast<double>(n) : wrapped);
          }
          out[0].SetDouble(flat, in[0].GetDouble((o * n + picked) * inner + i));
        }
      });
}

const bool kRegistered = [] {
  RegisterEmbedding();
  RegisterOneHot();
  RegisterPick();
  return true;
}();

}  // namespace
}  // namespace kiln
