// Reductions: sum, mean, prod, max, min over MXNet's axis/keepdims/exclude, and argmax,
// argmin along one axis or over the flattened input.
#include <cmath>
#include <cstdint>
#include <string>

#include "symbol/op_util.h"

namespace kiln {
namespace {

enum class Reduce { kSum, kMean, kProd, kMax, kMin };

using op_util::LoadInt;
using op_util::StoreInt;

// MXNet 1.9 (legacy, not numpy) semantics: axis None or () reduces every axis, with or
// without exclude; otherwise the listed axes are reduced, or with exclude all the others.
std::vector<bool> ReducedAxes(const std::optional<std::vector<int64_t>>& axes, bool exclude, const Shape& in) {
  const int64_t ndim = static_cast<int64_t>(in.size());
  if (!axes || axes->empty()) return std::vector<bool>(ndim, true);
  std::vector<bool> reduced(ndim, false);
  for (const int64_t axis : *axes) {
    if (ndim == 0) throw Error("attribute 'axis': a 0-d input has no axis " + std::to_string(axis));
    const int64_t a = op_util::NormalizeAxis(axis, ndim, "attribute 'axis'");
    if (reduced[a])
      throw Error("attribute 'axis': " + FormatAttrValue(*axes) + " names axis " + std::to_string(a) + " twice");
    reduced[a] = true;
  }
  if (exclude) reduced.flip();
  return reduced;
}

// Reduced axes drop out (or stay as 1 with keepdims); a reduction to nothing gives (1,),
// as MXNet does.
Shape ReducedShape(const Shape& in, const std::vector<bool>& reduced, bool keepdims) {
  Shape out;
  for (size_t d = 0; d < in.size(); ++d) {
    if (!reduced[d]) {
      out.push_back(in[d]);
    } else if (keepdims) {
      out.push_back(1);
    }
  }
  if (out.empty() && !keepdims) out = {1};
  return out;
}

// max, min and the arg forms have no value over zero elements.
void CheckNonEmpty(const Shape& in, const std::vector<bool>& reduced, const std::string& op) {
  for (size_t d = 0; d < in.size(); ++d) {
    if (reduced[d] && in[d] == 0) {
      op_util::ShapeError("input 'data'", "no zero-size reduced axis (" + op + " of zero elements has no value)", in);
    }
  }
}

// Calls fn(output flat index, flat input offsets reduced into it in row-major order).
void ForEachGroup(const Shape& in, const std::vector<bool>& reduced,
                  const std::function<void(int64_t, const std::vector<int64_t>&)>& fn) {
  Shape kept = in;
  Shape inner = in;
  for (size_t d = 0; d < in.size(); ++d) (reduced[d] ? kept[d] : inner[d]) = 1;
  const std::vector<int64_t> strides = Strides(in);
  std::vector<int64_t> offsets;
  op_util::ForEachIndex(kept, [&](int64_t out_index, const std::vector<int64_t>& k) {
    offsets.clear();
    op_util::ForEachIndex(inner, [&](int64_t, const std::vector<int64_t>& r) {
      int64_t offset = 0;
      for (size_t d = 0; d < in.size(); ++d) offset += (k[d] + r[d]) * strides[d];
      offsets.push_back(offset);
    });
    fn(out_index, offsets);
  });
}

template <typename T>
T Load(const Tensor& t, int64_t i);
template <>
double Load<double>(const Tensor& t, int64_t i) {
  return t.GetDouble(i);
}
template <>
int64_t Load<int64_t>(const Tensor& t, int64_t i) {
  return LoadInt(t, i);
}

// Position in `offsets` of the first largest (or smallest) element. A NaN beats every
// number and the first NaN wins, as in MXNet: argmax([1, nan, 3]) = argmin(...) = 1.
template <typename T>
int64_t ExtremePosition(const Tensor& in, const std::vector<int64_t>& offsets, bool largest) {
  int64_t best = 0;
  T best_value = Load<T>(in, offsets[0]);
  for (size_t i = 1; i < offsets.size() && !std::isnan(best_value); ++i) {
    const T v = Load<T>(in, offsets[i]);
    if (std::isnan(v) || (largest ? v > best_value : v < best_value)) {
      best = static_cast<int64_t>(i);
      best_value = v;
    }
  }
  return best;
}

int64_t ExtremeOf(const Tensor& in, const std::vector<int64_t>& offsets, bool largest) {
  return IsFloat(in.dtype()) ? ExtremePosition<double>(in, offsets, largest)
                             : ExtremePosition<int64_t>(in, offsets, largest);
}

void ReduceGroup(Reduce kind, const Tensor& in, const std::vector<int64_t>& offsets, Tensor& out, int64_t o) {
  const bool is_float = IsFloat(in.dtype());
  if (kind == Reduce::kMax || kind == Reduce::kMin) {
    const int64_t at = offsets[ExtremeOf(in, offsets, kind == Reduce::kMax)];
    if (is_float) {
      out.SetDouble(o, in.GetDouble(at));
    } else {
      StoreInt(out, o, LoadInt(in, at));
    }
    return;
  }
  const bool prod = kind == Reduce::kProd;
  if (is_float) {
    double acc = prod ? 1.0 : 0.0;
    for (const int64_t i : offsets) acc = prod ? acc * in.GetDouble(i) : acc + in.GetDouble(i);
    out.SetDouble(o, acc);
  } else {
    // Unsigned arithmetic wraps without undefined behaviour; storing keeps the low bits.
    uint64_t acc = prod ? 1 : 0;
    for (const int64_t i : offsets) {
      const auto v = static_cast<uint64_t>(LoadInt(in, i));
      acc = prod ? acc * v : acc + v;
    }
    StoreInt(out, o, static_cast<int64_t>(acc));
  }
  if (kind != Reduce::kMean) return;
  // MXNet divides the sum already stored in the output dtype: a float16 sum can overflow
  // to inf, and integer means truncate toward zero (mean of int32 [-1, -2] is -1).
  const auto count = static_cast<int64_t>(offsets.size());
  if (is_float) {
    out.SetDouble(o, out.GetDouble(o) / static_cast<double>(count));
  } else {
    if (count == 0) throw Error("mean of zero integer elements divides by zero");
    StoreInt(out, o, LoadInt(out, o) / count);
  }
}

void RegisterReduce(const char* name, const char* doc, Reduce kind, const char* alias) {
  OpDef& op =
      OpRegistry::Global()
          .Register(name)
          .Describe(doc)
          .Attr("axis", AttrType::kInts, AttrValue{std::monostate{}},
                "axes to reduce; None or () reduces all, negative values count from the end")
          .Attr("keepdims", AttrType::kBool, AttrValue{false}, "keep reduced axes as size 1")
          .Attr("exclude", AttrType::kBool, AttrValue{false}, "reduce the axes not listed in axis")
          .SetInferShape([kind, name = std::string(name)](const Attrs& attrs, std::vector<ShapeSlot>& inputs,
                                                          std::vector<ShapeSlot>& outputs) {
            if (!inputs[0]) return;
            const auto reduced = ReducedAxes(attrs.OptInts("axis"), attrs.Bool("exclude"), *inputs[0]);
            if (kind == Reduce::kMax || kind == Reduce::kMin) CheckNonEmpty(*inputs[0], reduced, name);
            op_util::AssignShape(outputs[0], ReducedShape(*inputs[0], reduced, attrs.Bool("keepdims")), "output");
          })
          .SetPattern(OpPattern::kReduction)
          .SetReference(
              [kind](const Attrs& attrs, std::span<const Tensor> in, std::span<Tensor> out, const RefContext&) {
                const auto reduced = ReducedAxes(attrs.OptInts("axis"), attrs.Bool("exclude"), in[0].shape());
                ForEachGroup(in[0].shape(), reduced, [&](int64_t o, const std::vector<int64_t>& offsets) {
                  ReduceGroup(kind, in[0], offsets, out[0], o);
                });
              });
  if (alias != nullptr) op.Alias(alias);
}

// argmax/argmin reduce one axis, or with axis None the flattened input.
std::vector<bool> ArgReducedAxes(const Attrs& attrs, const Shape& in) {
  const auto axis = attrs.OptInt("axis");
  if (!axis) return ReducedAxes(std::nullopt, false, in);
  return ReducedAxes(std::vector<int64_t>{*axis}, false, in);
}

// The index has the input's dtype, as in MXNet 1.9 (float32 for float32 data, and an int8
// index wraps past 127).
void RegisterArg(const char* name, const char* doc, bool largest) {
  OpRegistry::Global()
      .Register(name)
      .Describe(doc)
      .Attr("axis", AttrType::kInt, AttrValue{std::monostate{}}, "the axis to reduce; None reduces the flattened input")
      .Attr("keepdims", AttrType::kBool, AttrValue{false}, "keep the reduced axis as size 1")
      .SetInferShape([name = std::string(name)](const Attrs& attrs, std::vector<ShapeSlot>& inputs,
                                                std::vector<ShapeSlot>& outputs) {
        if (!inputs[0]) return;
        const auto reduced = ArgReducedAxes(attrs, *inputs[0]);
        CheckNonEmpty(*inputs[0], reduced, name);
        op_util::AssignShape(outputs[0], ReducedShape(*inputs[0], reduced, attrs.Bool("keepdims")), "output");
      })
      .SetPattern(OpPattern::kReduction)
      .SetReference(
          [largest](const Attrs& attrs, std::span<const Tensor> in, std::span<Tensor> out, const RefContext&) {
            ForEachGroup(in[0].shape(), ArgReducedAxes(attrs, in[0].shape()),
                         [&](int64_t o, const std::vector<int64_t>& offsets) {
                           StoreInt(out[0], o, ExtremeOf(in[0], offsets, largest));
                         });
          });
}

const bool kRegistered = [] {
  RegisterReduce("sum", "Sum over axes", Reduce::kSum, "sum_axis");
  RegisterReduce("mean", "Mean over axes (the sum in the data dtype, divided by the count)", Reduce::kMean, nullptr);
  RegisterReduce("prod", "Product over axes", Reduce::kProd, nullptr);
  RegisterReduce("max", "Maximum over axes; NaN if any element is NaN", Reduce::kMax, "max_axis");
  RegisterReduce("min", "Minimum over axes; NaN if any element is NaN", Reduce::kMin, "min_axis");
  RegisterArg("argmax", "Index of the first maximum along an axis (a NaN counts as the maximum)", true);
  RegisterArg("argmin", "Index of the first minimum along an axis (a NaN counts as the minimum)", false);
  return true;
}();

}  // namespace
}  // namespace kiln
