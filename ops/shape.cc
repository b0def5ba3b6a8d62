// Shape operators: reshaping, transposing, slicing, joining, splitting, tiling,
// broadcasting, padding and where.
#include <algorithm>
#include <cctype>
#include <charconv>
#include <functional>
#include <optional>
#include <string>

#include "codegen/kir/kir.h"
#include "codegen/lower/lower_util.h"
#include "graph/gradient.h"
#include "graph/op_util.h"

namespace kiln {
namespace {

using op_util::AssignShape;
using op_util::ForEachIndex;
using op_util::NormalizeAxis;
using op_util::ShapeError;

std::string IntsToString(const std::vector<int64_t>& values) {
  return FormatAttrValue(AttrValue{values});
}

// Names arg0, arg1, ... for operators over num_args inputs (MXNet's names).
NamesFn NumberedNames(const char* prefix, const char* count_attr) {
  return [prefix, count_attr](const Attrs& attrs) {
    std::vector<std::string> names;
    for (int64_t i = 0; i < attrs.Int(count_attr); ++i) names.push_back(prefix + std::to_string(i));
    return names;
  };
}

// An axis of `data`, which must have one (NormalizeAxis lets 0-d inputs through for
// reductions).
int64_t InputAxis(int64_t axis, const Shape& data, const std::string& what) {
  if (data.empty()) ShapeError("input 'data'", "at least 1-d", data);
  return NormalizeAxis(axis, static_cast<int64_t>(data.size()), what);
}

// Operators whose output holds the input's elements in the same order.
void CopyReference(const Attrs&, std::span<const Tensor> in, std::span<Tensor> out, const RefContext&) {
  for (int64_t i = 0; i < out[0].size(); ++i) out[0].CopyElement(i, in[0], i);
}

// Flat offset of a multi-index in a row-major shape.
int64_t FlatIndex(const Shape& shape, const std::vector<int64_t>& index) {
  int64_t flat = 0;
  for (size_t d = 0; d < shape.size(); ++d) flat = flat * shape[d] + index[d];
  return flat;
}

// --- Reshape ---------------------------------------------------------------------------

// MXNet's special values in `shape`, matched left to right against the input dims:
//    0  copy the next input dim;
//   -1  infer this dim from the remaining size (at most once);
//   -2  copy all remaining input dims;
//   -3  merge the next two input dims into one;
//   -4  split the next input dim into the two entries that follow (one may be -1).
// A positive entry and -1 also step over one input dim, which is what later 0s copy.
// reverse=True matches from the right: `shape` and the input are reversed, matched, and
// the result reversed back (so -4's two sizes are then the entries before it).
// MXNet 1.9 writes the inferred -1 at the entry's index in `shape` rather than in the
// output, which goes wrong when -2 or -4 come before it; kiln infers it in place.
Shape InferReshape(const std::vector<int64_t>& spec_given, const Shape& data_given, bool reverse) {
  std::vector<int64_t> spec = spec_given;
  Shape data = data_given;
  if (reverse) {
    std::reverse(spec.begin(), spec.end());
    std::reverse(data.begin(), data.end());
  }
  const std::string what = "attribute 'shape' " + IntsToString(spec_given) + (reverse ? " (reverse=True)" : "") +
                           " for input " + ShapeToString(data_given);
  size_t src = 0;
  const auto next_dim = [&](const char* entry) {
    if (src >= data.size()) throw Error(what + ": " + entry + " needs an input dim, but none is left");
    return data[src++];
  };
  Shape out;
  std::optional<size_t> infer_at;
  for (size_t i = 0; i < spec.size(); ++i) {
    const int64_t v = spec[i];
    if (v == 0) {
      out.push_back(next_dim("0"));
    } else if (v == -1) {
      if (infer_at) throw Error(what + ": only one dim can be -1");
      infer_at = out.size();
      out.push_back(1);
      ++src;
    } else if (v == -2) {
      while (src < data.size()) out.push_back(data[src++]);
    } else if (v == -3) {
      const int64_t d1 = next_dim("-3");
      const int64_t d2 = next_dim("-3");
      out.push_back(d1 * d2);
    } else if (v == -4) {
      if (i + 2 >= spec.size()) {
        throw Error(what + ": -4 must come with the two sizes it splits into (after it; before it with reverse=True)");
      }
      const int64_t d0 = next_dim("-4");
      int64_t d1 = spec[++i];
      int64_t d2 = spec[++i];
      if (d1 < -1 || d1 == 0 || d2 < -1 || d2 == 0 || (d1 == -1 && d2 == -1)) {
        throw Error(what + ": -4 splits into two sizes that are positive or -1 (not both -1), given " +
                    std::to_string(d1) + " and " + std::to_string(d2));
      }
      if (d1 == -1 && d0 % d2 == 0) d1 = d0 / d2;
      if (d2 == -1 && d0 % d1 == 0) d2 = d0 / d1;
      if (d1 * d2 != d0) {
        throw Error(what + ": -4 cannot split input dim " + std::to_string(d0) + " into " + std::to_string(d1) + " x " +
                    std::to_string(d2));
      }
      out.push_back(d1);
      out.push_back(d2);
    } else {
      out.push_back(v);
      ++src;
    }
  }
  const int64_t total = NumElements(data);
  if (infer_at) {
    const int64_t known = NumElements(out);
    if (known == 0) {
      throw Error(what + ": cannot infer the -1 dim: the other dims hold 0 elements, so any size would fit " +
                  "(give every dim)");
    }
    if (total % known != 0) {
      throw Error(what + ": cannot infer the -1 dim: " + std::to_string(total) + " elements do not divide into " +
                  "the other dims (product " + std::to_string(known) + ")");
    }
    out[*infer_at] = total / known;
  }
  if (reverse) std::reverse(out.begin(), out.end());
  if (NumElements(out) != total) {
    throw Error(what + ": the result " + ShapeToString(out) + " has " + std::to_string(NumElements(out)) +
                " elements, the input " + std::to_string(total));
  }
  return out;
}

// The deprecated target_shape: entries copied as given, one 0 inferred from the size;
// keep_highest keeps the input's first dim.
Shape InferTargetShape(const Attrs& attrs, const Shape& data) {
  Shape out = attrs.Ints("target_shape");
  const bool keep_highest = attrs.Bool("keep_highest");
  if (keep_highest) {
    if (data.empty()) ShapeError("input 'data'", "at least 1-d with keep_highest=True", data);
    out[0] = data[0];
  }
  const std::string what =
      "attribute 'target_shape' " + IntsToString(attrs.Ints("target_shape")) + " for input " + ShapeToString(data);
  std::optional<size_t> infer_at;
  for (size_t i = keep_highest ? 1 : 0; i < out.size(); ++i) {
    if (out[i] != 0) continue;
    if (infer_at) throw Error(what + ": only one dim can be 0 (inferred)");
    infer_at = i;
    out[i] = 1;
  }
  const int64_t total = NumElements(data);
  if (infer_at) {
    const int64_t known = NumElements(out);
    if (known == 0 || total % known != 0) throw Error(what + ": cannot infer the 0 dim");
    out[*infer_at] = total / known;
  }
  if (NumElements(out) != total) {
    throw Error(what + ": the result " + ShapeToString(out) + " has " + std::to_string(NumElements(out)) +
                " elements, the input " + std::to_string(total));
  }
  return out;
}

void ReshapeInferShape(const Attrs& attrs, std::vector<ShapeSlot>& in, std::vector<ShapeSlot>& out) {
  if (!in[0]) return;
  const Shape shape = attrs.Ints("shape").empty() ? InferTargetShape(attrs, *in[0])
                                                  : InferReshape(attrs.Ints("shape"), *in[0], attrs.Bool("reverse"));
  AssignShape(out[0], shape, "output");
}

// numpy's reshape (MXNet's _np_reshape): newshape exactly, one -1 inferred; () is a
// 0-d result and a 0 is an empty axis (not "copy", as in Reshape).
void NpReshapeInferShape(const Attrs& attrs, std::vector<ShapeSlot>& in, std::vector<ShapeSlot>& out) {
  if (!in[0]) return;
  const std::vector<int64_t>& spec = attrs.Ints("newshape");
  Shape shape(spec.begin(), spec.end());
  std::optional<size_t> infer_at;
  int64_t known = 1;
  for (size_t i = 0; i < spec.size(); ++i) {
    if (spec[i] == -1 && !infer_at) {
      infer_at = i;
    } else if (spec[i] < 0) {
      throw Error("attribute 'newshape' " + IntsToString(spec) + ": expected sizes >= 0 and at most one -1");
    } else {
      known *= spec[i];
    }
  }
  const int64_t total = NumElements(*in[0]);
  if (infer_at) {
    if (known == 0 || total % known != 0) {
      throw Error("attribute 'newshape' " + IntsToString(spec) + ": cannot infer the -1 for input " +
                  ShapeToString(*in[0]) + " of " + std::to_string(total) + " elements");
    }
    shape[*infer_at] = total / known;
  }
  if (NumElements(shape) != total) {
    ShapeError("input 'a'", std::to_string(NumElements(shape)) + " elements for newshape " + IntsToString(spec),
               *in[0]);
  }
  AssignShape(out[0], shape, "output");
}

// --- transpose, expand_dims, squeeze, Flatten -------------------------------------------

std::vector<int64_t> TransposeAxes(const Attrs& attrs, int64_t ndim) {
  std::vector<int64_t> axes = attrs.Ints("axes");
  if (axes.empty()) {
    for (int64_t d = ndim - 1; d >= 0; --d) axes.push_back(d);
    return axes;
  }
  if (static_cast<int64_t>(axes.size()) != ndim) {
    throw Error("attribute 'axes' " + IntsToString(axes) + ": expected " + std::to_string(ndim) +
                " axes (a permutation of the input's axes), given " + std::to_string(axes.size()));
  }
  std::vector<bool> seen(ndim, false);
  for (auto& axis : axes) {
    axis = NormalizeAxis(axis, ndim, "attribute 'axes'");
    if (seen[axis])
      throw Error("attribute 'axes' " + IntsToString(attrs.Ints("axes")) + ": axis " + std::to_string(axis) +
                  " appears twice");
    seen[axis] = true;
  }
  return axes;
}

void TransposeInferShape(const Attrs& attrs, std::vector<ShapeSlot>& in, std::vector<ShapeSlot>& out) {
  if (!in[0]) return;
  const Shape& data = *in[0];
  const auto axes = TransposeAxes(attrs, static_cast<int64_t>(data.size()));
  Shape shape;
  for (int64_t axis : axes) shape.push_back(data[axis]);
  AssignShape(out[0], shape, "output");
}

void TransposeReference(const Attrs& attrs, std::span<const Tensor> in, std::span<Tensor> out, const RefContext&) {
  const Shape& data = in[0].shape();
  const auto axes = TransposeAxes(attrs, in[0].ndim());
  std::vector<int64_t> src(data.size());
  ForEachIndex(out[0].shape(), [&](int64_t flat, const std::vector<int64_t>& index) {
    for (size_t d = 0; d < axes.size(); ++d) src[axes[d]] = index[d];
    out[0].CopyElement(flat, in[0], FlatIndex(data, src));
  });
}

void ExpandDimsInferShape(const Attrs& attrs, std::vector<ShapeSlot>& in, std::vector<ShapeSlot>& out) {
  if (!in[0]) return;
  Shape shape = *in[0];
  const int64_t ndim = static_cast<int64_t>(shape.size());
  const int64_t axis = attrs.Int("axis");
  if (axis < -ndim - 1 || axis > ndim) {
    throw Error("attribute 'axis': expected " + std::to_string(-ndim - 1) + " <= axis <= " + std::to_string(ndim) +
                " for " + std::to_string(ndim) + "-d input " + ShapeToString(shape) + ", given " +
                std::to_string(axis));
  }
  shape.insert(shape.begin() + (axis < 0 ? axis + ndim + 1 : axis), 1);
  AssignShape(out[0], shape, "output");
}

void SqueezeInferShape(const Attrs& attrs, std::vector<ShapeSlot>& in, std::vector<ShapeSlot>& out) {
  if (!in[0]) return;
  const Shape& data = *in[0];
  const int64_t ndim = static_cast<int64_t>(data.size());
  std::vector<bool> drop(ndim, false);
  if (const auto axes = attrs.OptInts("axis")) {
    for (int64_t given : *axes) {
      const int64_t axis = InputAxis(given, data, "attribute 'axis'");
      if (drop[axis])
        throw Error("attribute 'axis' " + IntsToString(*axes) + ": axis " + std::to_string(axis) + " appears twice");
      if (data[axis] != 1) {
        throw Error("attribute 'axis': cannot squeeze axis " + std::to_string(given) + " of input " +
                    ShapeToString(data) + ": its size is " + std::to_string(data[axis]) + ", not 1");
      }
      drop[axis] = true;
    }
  } else {
    for (int64_t d = 0; d < ndim; ++d) drop[d] = data[d] == 1;
  }
  Shape shape;
  for (int64_t d = 0; d < ndim; ++d) {
    if (!drop[d]) shape.push_back(data[d]);
  }
  // MXNet keeps one axis when every axis is squeezed out.
  if (shape.empty()) shape = {1};
  AssignShape(out[0], shape, "output");
}

void FlattenInferShape(const Attrs&, std::vector<ShapeSlot>& in, std::vector<ShapeSlot>& out) {
  if (!in[0]) return;
  const Shape& data = *in[0];
  if (data.empty()) ShapeError("input 'data'", "at least 1-d", data);
  AssignShape(out[0], {data[0], NumElements(Shape(data.begin() + 1, data.end()))}, "output");
}

// --- Concat, stack, split ----------------------------------------------------------------

void ConcatInferShape(const Attrs& attrs, std::vector<ShapeSlot>& in, std::vector<ShapeSlot>& out) {
  for (const auto& slot : in) {
    if (!slot) return;
  }
  const Shape& first = *in[0];
  if (first.empty()) ShapeError("input 'arg0'", "at least 1-d", first);
  const int64_t ndim = static_cast<int64_t>(first.size());
  const int64_t axis = NormalizeAxis(attrs.Int("dim"), ndim, "attribute 'dim'");
  Shape shape = first;
  for (size_t i = 1; i < in.size(); ++i) {
    const Shape& s = *in[i];
    bool fits = static_cast<int64_t>(s.size()) == ndim;
    for (int64_t d = 0; fits && d < ndim; ++d) fits = d == axis || s[d] == first[d];
    if (!fits) {
      ShapeError("input 'arg" + std::to_string(i) + "'",
                 "the shape of arg0 " + ShapeToString(first) + " except along dim " + std::to_string(axis), s);
    }
    shape[axis] += s[axis];
  }
  AssignShape(out[0], shape, "output");
}

void ConcatReference(const Attrs& attrs, std::span<const Tensor> in, std::span<Tensor> out, const RefContext&) {
  const Shape& shape = out[0].shape();
  const int64_t axis = NormalizeAxis(attrs.Int("dim"), out[0].ndim(), "attribute 'dim'");
  std::vector<int64_t> src;
  ForEachIndex(shape, [&](int64_t flat, const std::vector<int64_t>& index) {
    src = index;
    size_t which = 0;
    while (src[axis] >= in[which].shape()[axis]) src[axis] -= in[which++].shape()[axis];
    out[0].CopyElement(flat, in[which], FlatIndex(in[which].shape(), src));
  });
}

int64_t StackAxis(const Attrs& attrs, int64_t in_ndim) {
  return NormalizeAxis(attrs.Int("axis"), in_ndim + 1, "attribute 'axis'");
}

void StackInferShape(const Attrs& attrs, std::vector<ShapeSlot>& in, std::vector<ShapeSlot>& out) {
  // All inputs share one shape: any known one gives the others and the output (as MXNet).
  ShapeSlot known;
  for (const auto& slot : in) known = known ? known : slot;
  if (!known) return;
  const Shape first = *known;
  for (size_t i = 0; i < in.size(); ++i) AssignShape(in[i], first, "input 'arg" + std::to_string(i) + "'");
  Shape shape = first;
  shape.insert(shape.begin() + StackAxis(attrs, static_cast<int64_t>(first.size())), static_cast<int64_t>(in.size()));
  AssignShape(out[0], shape, "output");
}

void StackReference(const Attrs& attrs, std::span<const Tensor> in, std::span<Tensor> out, const RefContext&) {
  const Shape& part = in[0].shape();
  const int64_t axis = StackAxis(attrs, in[0].ndim());
  std::vector<int64_t> src;
  ForEachIndex(out[0].shape(), [&](int64_t flat, const std::vector<int64_t>& index) {
    src = index;
    src.erase(src.begin() + axis);
    out[0].CopyElement(flat, in[index[axis]], FlatIndex(part, src));
  });
}

int64_t SplitAxis(const Attrs& attrs, const Shape& data) {
  return InputAxis(attrs.Int("axis"), data, "attribute 'axis'");
}

void SplitInferShape(const Attrs& attrs, std::vector<ShapeSlot>& in, std::vector<ShapeSlot>& out) {
  if (!in[0]) return;
  const Shape& data = *in[0];
  const int64_t axis = SplitAxis(attrs, data);
  const int64_t parts = attrs.Int("num_outputs");
  if (data[axis] % parts != 0) {
    ShapeError("input 'data'", "axis " + std::to_string(axis) + " divisible by num_outputs=" + std::to_string(parts),
               data);
  }
  Shape shape = data;
  if (attrs.Bool("squeeze_axis")) {
    if (data[axis] != parts) {
      ShapeError(
          "input 'data'",
          "axis " + std::to_string(axis) + " of size num_outputs=" + std::to_string(parts) + " (squeeze_axis=True)",
          data);
    }
    shape.erase(shape.begin() + axis);
  } else {
    shape[axis] /= parts;
  }
  for (size_t i = 0; i < out.size(); ++i) AssignShape(out[i], shape, "output " + std::to_string(i));
}

void SplitReference(const Attrs& attrs, std::span<const Tensor> in, std::span<Tensor> out, const RefContext&) {
  const Shape& data = in[0].shape();
  const int64_t axis = SplitAxis(attrs, data);
  const int64_t chunk = data[axis] / attrs.Int("num_outputs");
  const bool squeeze = attrs.Bool("squeeze_axis");
  std::vector<int64_t> src;
  for (size_t part = 0; part < out.size(); ++part) {
    ForEachIndex(out[part].shape(), [&](int64_t flat, const std::vector<int64_t>& index) {
      src = index;
      if (squeeze) src.insert(src.begin() + axis, 0);
      src[axis] += static_cast<int64_t>(part) * chunk;
      out[part].CopyElement(flat, in[0], FlatIndex(data, src));
    });
  }
}

// --- slice, slice_axis ----------------------------------------------------------------

// slice's begin, end and step are tuples whose entries may be None, as MXNet writes
// them: "(0, None)". A typed integer tuple cannot hold None, so these attributes are
// declared as strings and read through this parser: a parenthesized or bracketed
// tuple (or one bare integer) of integers and Nones; None is std::nullopt.
std::vector<std::optional<int64_t>> ParseSliceTuple(const Attrs& attrs, const std::string& name) {
  const std::string& text = attrs.Str(name);
  const auto fail = [&]() {
    return Error("attribute '" + name + "': expected a tuple of integers or None, e.g. (0, None), given '" + text +
                 "'");
  };
  const auto trim = [](std::string_view s) {
    while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
    while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
    return s;
  };
  std::string_view body = trim(text);
  if (!body.empty() && (body.front() == '(' || body.front() == '[')) {
    if (body.back() != (body.front() == '(' ? ')' : ']')) throw fail();
    body = trim(body.substr(1, body.size() - 2));
  }
  std::vector<std::optional<int64_t>> values;
  while (!body.empty()) {
    const size_t comma = body.find(',');
    const std::string_view part = trim(body.substr(0, comma));
    if (part == "None") {
      values.emplace_back(std::nullopt);
    } else {
      const std::string_view digits = !part.empty() && part.front() == '+' ? part.substr(1) : part;
      int64_t value = 0;
      const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), value);
      if (digits.empty() || ec != std::errc() || end != digits.data() + digits.size()) throw fail();
      values.emplace_back(value);
    }
    if (comma == std::string_view::npos) break;
    body = trim(body.substr(comma + 1));  // a trailing comma ends the tuple: "(2,)"
  }
  return values;
}

struct SliceRange {
  int64_t start = 0;
  int64_t step = 1;
  int64_t size = 0;
};

// Python's slice rules for one axis of length `len`: negative indices count from the
// end, out-of-range indices clamp, None means the whole axis in the step's direction.
SliceRange PythonSlice(std::optional<int64_t> begin, std::optional<int64_t> end, int64_t step, int64_t len) {
  SliceRange range;
  range.step = step;
  const auto clamp = [&](std::optional<int64_t> index, int64_t missing) {
    if (!index) return missing;
    int64_t i = *index < 0 ? *index + len : *index;
    if (step > 0) return std::clamp<int64_t>(i, 0, len);
    return std::clamp<int64_t>(i, -1, len - 1);
  };
  range.start = clamp(begin, step > 0 ? 0 : len - 1);
  const int64_t stop = clamp(end, step > 0 ? len : -1);
  if (step > 0) {
    range.size = stop > range.start ? (stop - range.start - 1) / step + 1 : 0;
  } else {
    range.size = range.start > stop ? (range.start - stop - 1) / -step + 1 : 0;
  }
  return range;
}

void ValidateSlice(const Attrs& attrs) {
  const auto begin = ParseSliceTuple(attrs, "begin");
  const auto end = ParseSliceTuple(attrs, "end");
  const auto step = ParseSliceTuple(attrs, "step");
  if (begin.size() != end.size()) {
    throw Error("attributes 'begin' " + attrs.Str("begin") + " and 'end' " + attrs.Str("end") +
                " must have the same length");
  }
  if (!step.empty() && step.size() != begin.size()) {
    throw Error("attribute 'step' " + attrs.Str("step") + ": expected " + std::to_string(begin.size()) +
                " entries like 'begin', or none");
  }
  for (const auto& s : step) {
    if (s && *s == 0) throw Error("attribute 'step' " + attrs.Str("step") + ": a step cannot be 0");
  }
}

// One range per input axis; axes past the given tuples are taken whole.
std::vector<SliceRange> SliceRanges(const Attrs& attrs, const Shape& data) {
  const auto begin = ParseSliceTuple(attrs, "begin");
  const auto end = ParseSliceTuple(attrs, "end");
  const auto step = ParseSliceTuple(attrs, "step");
  if (begin.size() > data.size()) {
    ShapeError("input 'data'", "at least " + std::to_string(begin.size()) + "-d for begin " + attrs.Str("begin"), data);
  }
  std::vector<SliceRange> ranges;
  for (size_t d = 0; d < data.size(); ++d) {
    if (d < begin.size()) {
      const int64_t s = d < step.size() && step[d] ? *step[d] : 1;
      ranges.push_back(PythonSlice(begin[d], end[d], s, data[d]));
    } else {
      ranges.push_back(SliceRange{0, 1, data[d]});
    }
  }
  return ranges;
}

Shape RangesShape(const std::vector<SliceRange>& ranges) {
  Shape shape;
  for (const auto& range : ranges) shape.push_back(range.size);
  return shape;
}

void SliceReferenceFromRanges(const std::vector<SliceRange>& ranges, const Tensor& in, Tensor& out) {
  std::vector<int64_t> src(ranges.size());
  ForEachIndex(out.shape(), [&](int64_t flat, const std::vector<int64_t>& index) {
    for (size_t d = 0; d < ranges.size(); ++d) src[d] = ranges[d].start + index[d] * ranges[d].step;
    out.CopyElement(flat, in, FlatIndex(in.shape(), src));
  });
}

// slice_axis follows MXNet: after adding the axis length to negative indices,
// 0 <= begin < end <= length must hold (no clamping); end None is the length.
std::vector<SliceRange> SliceAxisRanges(const Attrs& attrs, const Shape& data) {
  const int64_t axis = InputAxis(attrs.Int("axis"), data, "attribute 'axis'");
  const int64_t len = data[axis];
  int64_t begin = attrs.Int("begin");
  int64_t end = attrs.OptInt("end").value_or(len);
  if (begin < 0) begin += len;
  if (end < 0) end += len;
  if (!(0 <= begin && begin < end && end <= len)) {
    throw Error("attributes 'begin' " + std::to_string(attrs.Int("begin")) + " and 'end' " +
                FormatAttrValue(attrs.Get("end")) + ": expected 0 <= begin < end <= " + std::to_string(len) +
                " on axis " + std::to_string(axis) + " of input " + ShapeToString(data) + " (negative values count " +
                "from the end), given begin " + std::to_string(begin) + ", end " + std::to_string(end));
  }
  std::vector<SliceRange> ranges;
  for (size_t d = 0; d < data.size(); ++d) ranges.push_back(SliceRange{0, 1, data[d]});
  ranges[axis] = SliceRange{begin, 1, end - begin};
  return ranges;
}

using RangesFn = std::vector<SliceRange> (*)(const Attrs&, const Shape&);

InferShapeFn SliceInfer(RangesFn ranges) {
  return [ranges](const Attrs& attrs, std::vector<ShapeSlot>& in, std::vector<ShapeSlot>& out) {
    if (!in[0]) return;
    AssignShape(out[0], RangesShape(ranges(attrs, *in[0])), "output");
  };
}

ReferenceFn SliceReference(RangesFn ranges) {
  return [ranges](const Attrs& attrs, std::span<const Tensor> in, std::span<Tensor> out, const RefContext&) {
    SliceReferenceFromRanges(ranges(attrs, in[0].shape()), in[0], out[0]);
  };
}

// --- tile, repeat, broadcast_to ----------------------------------------------------------

// tile pads the shorter of the input shape and reps with leading 1s.
void TileShapes(const Attrs& attrs, const Shape& data, Shape* padded_in, Shape* out) {
  const auto& reps = attrs.Ints("reps");
  const size_t ndim = std::max(data.size(), reps.size());
  padded_in->assign(ndim - data.size(), 1);
  padded_in->insert(padded_in->end(), data.begin(), data.end());
  out->clear();
  for (size_t d = 0; d < ndim; ++d) {
    const int64_t rep = d < ndim - reps.size() ? 1 : reps[d - (ndim - reps.size())];
    out->push_back(op_util::CheckedMultiply((*padded_in)[d], rep,
                                            "attribute 'reps': axis " + std::to_string(d) + " of the output"));
  }
}

void TileInferShape(const Attrs& attrs, std::vector<ShapeSlot>& in, std::vector<ShapeSlot>& out) {
  if (!in[0]) return;
  Shape padded;
  Shape shape;
  TileShapes(attrs, *in[0], &padded, &shape);
  AssignShape(out[0], shape, "output");
}

void TileReference(const Attrs& attrs, std::span<const Tensor> in, std::span<Tensor> out, const RefContext&) {
  Shape padded;
  Shape shape;
  TileShapes(attrs, in[0].shape(), &padded, &shape);
  std::vector<int64_t> src(padded.size());
  ForEachIndex(shape, [&](int64_t flat, const std::vector<int64_t>& index) {
    for (size_t d = 0; d < padded.size(); ++d) src[d] = index[d] % padded[d];
    out[0].CopyElement(flat, in[0], FlatIndex(padded, src));
  });
}

// With axis None, repeat works on the flattened input and gives a 1-d output.
void RepeatInferShape(const Attrs& attrs, std::vector<ShapeSlot>& in, std::vector<ShapeSlot>& out) {
  if (!in[0]) return;
  const Shape& data = *in[0];
  const int64_t repeats = attrs.Int("repeats");
  Shape shape;
  if (const auto axis = attrs.OptInt("axis")) {
    shape = data;
    const int64_t a = InputAxis(*axis, data, "attribute 'axis'");
    shape[a] = op_util::CheckedMultiply(shape[a], repeats, "attribute 'repeats': the output's axis");
  } else {
    shape = {op_util::CheckedMultiply(NumElements(data), repeats, "attribute 'repeats': the output's size")};
  }
  AssignShape(out[0], shape, "output");
}

void RepeatReference(const Attrs& attrs, std::span<const Tensor> in, std::span<Tensor> out, const RefContext&) {
  const int64_t repeats = attrs.Int("repeats");
  const auto axis = attrs.OptInt("axis");
  if (!axis) {
    for (int64_t i = 0; i < out[0].size(); ++i) out[0].CopyElement(i, in[0], i / repeats);
    return;
  }
  const int64_t a = InputAxis(*axis, in[0].shape(), "attribute 'axis'");
  std::vector<int64_t> src;
  ForEachIndex(out[0].shape(), [&](int64_t flat, const std::vector<int64_t>& index) {
    src = index;
    src[a] /= repeats;
    out[0].CopyElement(flat, in[0], FlatIndex(in[0].shape(), src));
  });
}

// broadcast_to: the target has the input's rank; a 0 keeps the input's dim, and only
// size-1 dims may grow.
void BroadcastToInferShape(const Attrs& attrs, std::vector<ShapeSlot>& in, std::vector<ShapeSlot>& out) {
  if (!in[0]) return;
  const Shape& data = *in[0];
  const auto& target = attrs.Ints("shape");
  const std::string expected = "a shape that broadcasts to attribute 'shape' " + IntsToString(target) +
                               " (same rank; each dim equal to the target's or 1)";
  if (target.size() != data.size()) ShapeError("input 'data'", expected, data);
  Shape shape = target;
  for (size_t d = 0; d < data.size(); ++d) {
    if (shape[d] == 0) shape[d] = data[d];
    if (data[d] != shape[d] && data[d] != 1) ShapeError("input 'data'", expected, data);
  }
  AssignShape(out[0], shape, "output");
}

void BroadcastToReference(const Attrs&, std::span<const Tensor> in, std::span<Tensor> out, const RefContext&) {
  ForEachIndex(out[0].shape(), [&](int64_t flat, const std::vector<int64_t>& index) {
    out[0].CopyElement(flat, in[0], op_util::BroadcastOffset(in[0].shape(), index));
  });
}

// --- where -------------------------------------------------------------------------------

// x, y and the output share one shape; the condition has that shape too, or is 1-d
// and picks whole rows (x.shape[0] entries), as MXNet allows.
void WhereInferShape(const Attrs&, std::vector<ShapeSlot>& in, std::vector<ShapeSlot>& out) {
  ShapeSlot known = in[1] ? in[1] : in[2] ? in[2] : out[0];
  if (!known) return;
  AssignShape(in[1], *known, "input 'x'");
  AssignShape(in[2], *known, "input 'y'");
  AssignShape(out[0], *known, "output");
  if (in[0] && *in[0] != *known && !(known->size() >= 1 && *in[0] == Shape{(*known)[0]})) {
    ShapeError("input 'condition'",
               "the shape of x " + ShapeToString(*known) +
                   (known->empty() ? "" : " or (" + std::to_string((*known)[0]) + ",) to pick rows"),
               *in[0]);
  }
}

void WhereInferType(const Attrs&, std::vector<DTypeSlot>& in, std::vector<DTypeSlot>& out) {
  const DTypeSlot known = in[1] ? in[1] : in[2] ? in[2] : out[0];
  if (!known) return;
  op_util::AssignType(in[1], *known, "input 'x'");
  op_util::AssignType(in[2], *known, "input 'y'");
  op_util::AssignType(out[0], *known, "output");
}

void WhereReference(const Attrs&, std::span<const Tensor> in, std::span<Tensor> out, const RefContext&) {
  const bool by_row = in[0].shape() != in[1].shape();
  const int64_t row = by_row ? out[0].size() / std::max<int64_t>(in[1].shape()[0], 1) : 1;
  for (int64_t i = 0; i < out[0].size(); ++i) {
    const bool pick_x = in[0].GetDouble(by_row ? i / row : i) != 0;
    out[0].CopyElement(i, pick_x ? in[1] : in[2], i);
  }
}

// --- Pad ---------------------------------------------------------------------------------

// MXNet's Pad pads the spatial axes of 4-d (N,C,H,W) or 5-d (N,C,D,H,W) data: pad_width
// holds (before, after) for every axis, zeros for N and C. A negative width crops, as
// MXNet's kernels do. Reflect mirrors about the edge element without repeating it
// (NumPy's reflect), so its widths must be smaller than the axis.
enum class PadMode { kConstant, kEdge, kReflect };

PadMode GetPadMode(const Attrs& attrs) {
  const std::string& mode = attrs.Str("mode");
  return mode == "edge" ? PadMode::kEdge : mode == "reflect" ? PadMode::kReflect : PadMode::kConstant;
}

void ValidatePad(const Attrs& attrs) {
  const auto& widths = attrs.Ints("pad_width");
  if (widths.size() != 8 && widths.size() != 10) {
    throw Error("attribute 'pad_width' " + IntsToString(widths) +
                ": expected 8 entries for 4-d data or 10 for 5-d data (before, after for each axis), given " +
                std::to_string(widths.size()));
  }
  if (widths[0] != 0 || widths[1] != 0 || widths[2] != 0 || widths[3] != 0) {
    throw Error("attribute 'pad_width' " + IntsToString(widths) +
                ": the widths of axes 0 and 1 (N and C) must be 0; Pad pads the spatial axes only");
  }
}

void PadInferShape(const Attrs& attrs, std::vector<ShapeSlot>& in, std::vector<ShapeSlot>& out) {
  if (!in[0]) return;
  const Shape& data = *in[0];
  const auto& widths = attrs.Ints("pad_width");
  if (data.size() != 4 && data.size() != 5) ShapeError("input 'data'", "4-d (N,C,H,W) or 5-d (N,C,D,H,W)", data);
  if (widths.size() != 2 * data.size()) {
    ShapeError("input 'data'",
               std::to_string(widths.size() / 2) + "-d to match attribute 'pad_width' " + IntsToString(widths), data);
  }
  const PadMode mode = GetPadMode(attrs);
  Shape shape = data;
  for (size_t d = 2; d < data.size(); ++d) {
    const int64_t before = widths[2 * d];
    const int64_t after = widths[2 * d + 1];
    const std::string what = "attribute 'pad_width' " + IntsToString(widths) + ": widths (" + std::to_string(before) +
                             ", " + std::to_string(after) + ") of axis " + std::to_string(d) + " (size " +
                             std::to_string(data[d]) + ") of input " + ShapeToString(data);
    if (mode == PadMode::kReflect && (before >= data[d] || after >= data[d])) {
      throw Error(what + ": reflect padding must be smaller than the axis");
    }
    shape[d] = data[d] + before + after;
    if (shape[d] < 0) throw Error(what + ": they crop the axis below size 0");
  }
  if (mode == PadMode::kEdge && NumElements(data) == 0 && NumElements(shape) > 0) {
    ShapeError("input 'data'", "non-empty to edge-pad to " + ShapeToString(shape), data);
  }
  AssignShape(out[0], shape, "output");
}

// MXNet's Pad kernels take floating-point data only.
void PadInferType(const Attrs&, std::vector<DTypeSlot>& in, std::vector<DTypeSlot>& out) {
  const DTypeSlot known = in[0] ? in[0] : out[0];
  if (!known) return;
  if (!IsFloat(*known)) {
    throw Error("input 'data': expected a floating-point dtype (float16, bfloat16, float32, float64), given " +
                std::string(DTypeName(*known)));
  }
  op_util::AssignType(in[0], *known, "input 'data'");
  op_util::AssignType(out[0], *known, "output");
}

// The input index that output index `o` of an axis of size n padded by `before` reads;
// -1 for the constant.
int64_t PadSource(int64_t o, int64_t before, int64_t n, PadMode mode) {
  int64_t i = o - before;
  switch (mode) {
    case PadMode::kEdge: return std::clamp<int64_t>(i, 0, n - 1);
    case PadMode::kReflect:
      if (i < 0) i = -i;
      return i >= n ? 2 * (n - 1) - i : i;
    case PadMode::kConstant: break;
  }
  return i >= 0 && i < n ? i : -1;
}

void PadReference(const Attrs& attrs, std::span<const Tensor> in, std::span<Tensor> out, const RefContext&) {
  const Shape& data = in[0].shape();
  const auto& widths = attrs.Ints("pad_width");
  const PadMode mode = GetPadMode(attrs);
  const double value = attrs.Float("constant_value");
  std::vector<int64_t> src(data.size());
  ForEachIndex(out[0].shape(), [&](int64_t flat, const std::vector<int64_t>& index) {
    bool inside = true;
    for (size_t d = 0; d < data.size(); ++d) {
      src[d] = PadSource(index[d], widths[2 * d], data[d], mode);
      inside = inside && src[d] >= 0;
    }
    out[0].SetDouble(flat, inside ? in[0].GetDouble(FlatIndex(data, src)) : value);
  });
}

// --- Lowering ---------------------------------------------------------------------------
//
// Every shape operator but where lowers to copies between strided views of its inputs and
// outputs (a broadcast or repeated axis reads with stride 0). A copy drops size-1 axes and
// merges axes contiguous in both views, so that a reshape is one flat run; what remains is
// rows (all axes but the innermost, decoded from one row number) of an innermost run cut
// into chunks of at most kChunk elements. The kernel's parallel loop runs over the rows of
// all its copies together, so tasks never share an output element.

using kir::Expr;
using kir::Stmt;

constexpr int64_t kChunk = 16384;

std::vector<int64_t> RowMajorStrides(const Shape& shape) {
  std::vector<int64_t> strides(shape.size(), 1);
  for (int64_t d = static_cast<int64_t>(shape.size()) - 2; d >= 0; --d) strides[d] = strides[d + 1] * shape[d + 1];
  return strides;
}

struct CopyDim {
  int64_t size;
  int64_t src_stride;
  int64_t dst_stride;
};

// dst[dst_offset + sum_d i_d * dst_stride_d] = src[src_offset + sum_d i_d * src_stride_d]
// for every index i of the dims' sizes.
struct StridedCopy {
  kir::Buffer src;
  kir::Buffer dst;
  int64_t src_offset = 0;
  int64_t dst_offset = 0;
  std::vector<CopyDim> dims;
};

StridedCopy ContiguousCopy(const kir::Buffer& src, const kir::Buffer& dst, int64_t count) {
  return {src, dst, 0, 0, {{count, 1, 1}}};
}

// A copy of a view of `shape` with the given input strides into a contiguous output.
StridedCopy GatherCopy(const kir::Buffer& src, const kir::Buffer& dst, const Shape& shape, int64_t src_offset,
                       const std::vector<int64_t>& src_strides) {
  StridedCopy copy{src, dst, src_offset, 0, {}};
  const auto dst_strides = RowMajorStrides(shape);
  for (size_t d = 0; d < shape.size(); ++d) copy.dims.push_back({shape[d], src_strides[d], dst_strides[d]});
  return copy;
}

// A contiguous input of `shape` into a view of the output.
StridedCopy ScatterCopy(const kir::Buffer& src, const kir::Buffer& dst, const Shape& shape, int64_t dst_offset,
                        const std::vector<int64_t>& dst_strides) {
  StridedCopy copy{src, dst, 0, dst_offset, {}};
  const auto src_strides = RowMajorStrides(shape);
  for (size_t d = 0; d < shape.size(); ++d) copy.dims.push_back({shape[d], src_strides[d], dst_strides[d]});
  return copy;
}

class CopyRows {
 public:
  explicit CopyRows(const StridedCopy& copy) : copy_(copy) {
    for (const CopyDim& dim : copy.dims) {
      if (dim.size == 0) empty_ = true;
      if (dim.size == 1) continue;
      if (!dims_.empty() && dims_.back().src_stride == dim.src_stride * dim.size &&
          dims_.back().dst_stride == dim.dst_stride * dim.size) {
        dims_.back() = {dims_.back().size * dim.size, dim.src_stride, dim.dst_stride};
      } else {
        dims_.push_back(dim);
      }
    }
    if (dims_.empty()) dims_.push_back({1, 1, 1});
    run_ = dims_.back();
    dims_.pop_back();
    if (run_.size > kChunk) {
      dims_.push_back({(run_.size + kChunk - 1) / kChunk, run_.src_stride * kChunk, run_.dst_stride * kChunk});
      chunked_ = true;
    }
    rows_ = empty_ ? 0 : 1;
    for (const CopyDim& dim : dims_) rows_ *= dim.size;
  }

  int64_t rows() const { return rows_; }

  Stmt Row(const Expr& row) const {
    Expr src(copy_.src_offset);
    Expr dst(copy_.dst_offset);
    Expr last_index(int64_t{0});
    int64_t below = 1;
    for (int64_t d = static_cast<int64_t>(dims_.size()) - 1; d >= 0; --d) {
      Expr index = below == 1 ? row : row / Expr(below);
      if (d > 0) index = index % Expr(dims_[d].size);
      if (d == static_cast<int64_t>(dims_.size()) - 1) last_index = index;
      src = src + index * Expr(dims_[d].src_stride);
      dst = dst + index * Expr(dims_[d].dst_stride);
      below *= dims_[d].size;
    }
    // The last chunk of a run is shorter.
    const Expr extent =
        chunked_ ? kir::Min(Expr(kChunk), Expr(run_.size) - last_index * Expr(kChunk)) : Expr(run_.size);
    const Expr j = kir::Var("j");
    // base + j for unit strides: the form in which an emitter sees iterations independent.
    const auto at = [&](const Expr& base, int64_t stride) { return base + (stride == 1 ? j : j * Expr(stride)); };
    return kir::For(j, Expr(int64_t{0}), extent,
                    kir::Store(copy_.dst, at(dst, run_.dst_stride), kir::Load(copy_.src, at(src, run_.src_stride))),
                    kir::LoopKind::kVectorize);
  }

 private:
  StridedCopy copy_;
  std::vector<CopyDim> dims_;  // the row dims, outermost first
  CopyDim run_{1, 1, 1};       // the innermost run
  bool chunked_ = false;
  bool empty_ = false;
  int64_t rows_ = 0;
};

// One kernel for several copies: copy k owns the parallel iterations [start_k, end_k).
Stmt LowerCopies(const std::vector<StridedCopy>& copies) {
  std::vector<CopyRows> parts;
  for (const auto& copy : copies) {
    CopyRows part(copy);
    if (part.rows() > 0) parts.push_back(std::move(part));
  }
  if (parts.empty()) return kir::Block({});
  const Expr row = kir::Var("row");
  int64_t total = 0;
  for (const auto& part : parts) total += part.rows();
  Stmt body;
  int64_t end = total;
  for (auto it = parts.rbegin(); it != parts.rend(); ++it) {
    const int64_t start = end - it->rows();
    const Stmt rows = it->Row(start == 0 ? row : row - Expr(start));
    body = body ? kir::If(kir::Lt(row, Expr(end)), rows, body) : rows;
    end = start;
  }
  return kir::For(row, Expr(int64_t{0}), Expr(total), body, kir::LoopKind::kParallel);
}

Stmt CopyLower(const Attrs&, LowerContext& ctx) {
  return LowerCopies({ContiguousCopy(ctx.inputs[0], ctx.outputs[0], NumElements(ctx.output_shapes[0]))});
}

Stmt TransposeLower(const Attrs& attrs, LowerContext& ctx) {
  const Shape& data = ctx.input_shapes[0];
  const auto axes = TransposeAxes(attrs, static_cast<int64_t>(data.size()));
  const auto in_strides = RowMajorStrides(data);
  std::vector<int64_t> src_strides;
  for (int64_t axis : axes) src_strides.push_back(in_strides[axis]);
  return LowerCopies({GatherCopy(ctx.inputs[0], ctx.outputs[0], ctx.output_shapes[0], 0, src_strides)});
}

Stmt ConcatLower(const Attrs& attrs, LowerContext& ctx) {
  const Shape& shape = ctx.output_shapes[0];
  const int64_t axis = NormalizeAxis(attrs.Int("dim"), static_cast<int64_t>(shape.size()), "attribute 'dim'");
  const auto out_strides = RowMajorStrides(shape);
  std::vector<StridedCopy> copies;
  int64_t offset = 0;
  for (size_t k = 0; k < ctx.inputs.size(); ++k) {
    copies.push_back(
        ScatterCopy(ctx.inputs[k], ctx.outputs[0], ctx.input_shapes[k], offset * out_strides[axis], out_strides));
    offset += ctx.input_shapes[k][axis];
  }
  return LowerCopies(copies);
}

Stmt StackLower(const Attrs& attrs, LowerContext& ctx) {
  Shape part = ctx.input_shapes[0];
  const int64_t axis = StackAxis(attrs, static_cast<int64_t>(part.size()));
  part.insert(part.begin() + axis, 1);
  const auto out_strides = RowMajorStrides(ctx.output_shapes[0]);
  std::vector<StridedCopy> copies;
  for (size_t k = 0; k < ctx.inputs.size(); ++k) {
    copies.push_back(
        ScatterCopy(ctx.inputs[k], ctx.outputs[0], part, static_cast<int64_t>(k) * out_strides[axis], out_strides));
  }
  return LowerCopies(copies);
}

Stmt SplitLower(const Attrs& attrs, LowerContext& ctx) {
  const Shape& data = ctx.input_shapes[0];
  const int64_t axis = SplitAxis(attrs, data);
  const int64_t chunk = data[axis] / attrs.Int("num_outputs");
  const auto in_strides = RowMajorStrides(data);
  // With squeeze_axis the chunk is 1: the output holds the part's elements in its order.
  Shape part = data;
  part[axis] = chunk;
  std::vector<StridedCopy> copies;
  for (size_t k = 0; k < ctx.outputs.size(); ++k) {
    copies.push_back(GatherCopy(ctx.inputs[0], ctx.outputs[k], part, static_cast<int64_t>(k) * chunk * in_strides[axis],
                                in_strides));
  }
  return LowerCopies(copies);
}

LowerFn SliceLower(RangesFn ranges_of) {
  return [ranges_of](const Attrs& attrs, LowerContext& ctx) {
    const Shape& data = ctx.input_shapes[0];
    const auto ranges = ranges_of(attrs, data);
    const auto in_strides = RowMajorStrides(data);
    int64_t offset = 0;
    std::vector<int64_t> src_strides;
    for (size_t d = 0; d < ranges.size(); ++d) {
      offset += ranges[d].start * in_strides[d];
      src_strides.push_back(ranges[d].step * in_strides[d]);
    }
    return LowerCopies({GatherCopy(ctx.inputs[0], ctx.outputs[0], RangesShape(ranges), offset, src_strides)});
  };
}

// Output axis d of size padded_d * reps_d is (rep, position): the input repeats with
// stride 0 along rep.
Stmt TileLower(const Attrs& attrs, LowerContext& ctx) {
  Shape padded;
  Shape shape;
  TileShapes(attrs, ctx.input_shapes[0], &padded, &shape);
  if (NumElements(shape) == 0) return kir::Block({});
  const auto in_strides = RowMajorStrides(padded);
  const auto out_strides = RowMajorStrides(shape);
  StridedCopy copy{ctx.inputs[0], ctx.outputs[0], 0, 0, {}};
  for (size_t d = 0; d < shape.size(); ++d) {
    copy.dims.push_back({shape[d] / padded[d], 0, padded[d] * out_strides[d]});
    copy.dims.push_back({padded[d], in_strides[d], out_strides[d]});
  }
  return LowerCopies({copy});
}

// The repeated axis is (position, repeat): the input repeats with stride 0 along repeat.
Stmt RepeatLower(const Attrs& attrs, LowerContext& ctx) {
  const Shape& data = ctx.input_shapes[0];
  const int64_t repeats = attrs.Int("repeats");
  StridedCopy copy{ctx.inputs[0], ctx.outputs[0], 0, 0, {}};
  if (const auto axis = attrs.OptInt("axis")) {
    const int64_t a = InputAxis(*axis, data, "attribute 'axis'");
    const auto in_strides = RowMajorStrides(data);
    const auto out_strides = RowMajorStrides(ctx.output_shapes[0]);
    for (int64_t d = 0; d < static_cast<int64_t>(data.size()); ++d) {
      if (d != a) {
        copy.dims.push_back({data[d], in_strides[d], out_strides[d]});
      } else {
        copy.dims.push_back({data[d], in_strides[d], repeats * out_strides[d]});
        copy.dims.push_back({repeats, 0, out_strides[d]});
      }
    }
  } else {
    copy.dims = {{NumElements(data), 1, repeats}, {repeats, 0, 1}};
  }
  return LowerCopies({copy});
}

// The condition's non-zero (NaN counts) picks x; a 1-d condition picks whole rows.
Stmt WhereLower(const Attrs&, LowerContext& ctx) {
  const Shape& shape = ctx.output_shapes[0];
  const int64_t size = NumElements(shape);
  if (size == 0) return kir::Block({});
  const kir::ScalarType cond_type = lower::ComputeType(ctx.input_types[0]);
  const auto pick = [&](const Expr& c, const Expr& i) {
    const Expr chosen = kir::Ne(lower::LoadAs(ctx.inputs[0], c, cond_type), kir::Const(0, cond_type));
    return kir::Store(ctx.outputs[0], i, kir::Select(chosen, kir::Load(ctx.inputs[1], i), kir::Load(ctx.inputs[2], i)));
  };
  if (ctx.input_shapes[0] == ctx.input_shapes[1])
    return lower::ChunkedLoop(size, [&](const Expr& i) { return pick(i, i); });
  const int64_t row = size / shape[0];
  return lower::LoopNest(
      {shape[0], row}, [&](const std::vector<Expr>& index) { return pick(index[0], index[0] * Expr(row) + index[1]); });
}

// Pad: one row per output position but the last axis. The row's position maps to an input
// row (constant mode: or to the constant), and the row itself is three loops with constant
// bounds: the left padding, the run copied from the input row, the right padding.
Stmt PadLower(const Attrs& attrs, LowerContext& ctx) {
  const Shape& data = ctx.input_shapes[0];
  const Shape& shape = ctx.output_shapes[0];
  if (NumElements(shape) == 0) return kir::Block({});
  const auto& widths = attrs.Ints("pad_width");
  const PadMode mode = GetPadMode(attrs);
  const DType dtype = ctx.output_types[0];
  // The value the reference stores (float16 rounds through float32, as SetDouble does).
  Tensor stored({1}, dtype);
  stored.SetDouble(0, attrs.Float("constant_value"));
  const Expr value = kir::Const(stored.GetDouble(0), lower::ComputeType(dtype));
  const kir::Buffer& src = ctx.inputs[0];
  const kir::Buffer& dst = ctx.outputs[0];
  const auto in_strides = RowMajorStrides(data);

  const size_t last = data.size() - 1;
  const int64_t width = shape[last];
  const int64_t rows = NumElements(shape) / width;
  const Expr row = kir::Var("row");
  Expr src_row(int64_t{0});
  Expr inside;  // constant mode: whether the row lies inside the input (undefined: always)
  int64_t below = 1;
  for (int64_t d = static_cast<int64_t>(last) - 1; d >= 0; --d) {
    Expr i = below == 1 ? row : row / Expr(below);
    if (d > 0) i = i % Expr(shape[d]);
    below *= shape[d];
    const int64_t before = widths[2 * d];
    const int64_t n = data[d];
    if (before != 0 || widths[2 * d + 1] != 0) {
      i = i - Expr(before);
      if (mode == PadMode::kEdge) {
        i = kir::Max(kir::Min(i, Expr(n - 1)), Expr(int64_t{0}));
      } else if (mode == PadMode::kReflect) {
        i = kir::Select(kir::Lt(i, Expr(int64_t{0})), -i, i);
        i = kir::Select(kir::Ge(i, Expr(n)), Expr(2 * (n - 1)) - i, i);
      } else {
        const Expr in_range = kir::And(kir::Ge(i, Expr(int64_t{0})), kir::Lt(i, Expr(n)));
        inside = inside.defined() ? kir::And(inside, in_range) : in_range;
      }
    }
    src_row = src_row + i * Expr(in_strides[d]);
  }

  // The last axis: output columns [lo, hi) copy input columns [lo - before, hi - before).
  const int64_t n = data[last];
  const int64_t before = widths[2 * last];
  const int64_t lo = std::clamp<int64_t>(before, 0, width);
  const int64_t hi = std::clamp<int64_t>(before + n, lo, width);
  const Expr dst_row = row * Expr(width);
  const auto part = [&](int64_t begin, int64_t end, const std::function<Expr(const Expr& col)>& element) {
    const Expr col = kir::Var("col");
    return kir::For(col, Expr(begin), Expr(end - begin), lower::StoreFrom(dst, dst_row + col, element(col)),
                    kir::LoopKind::kVectorize);
  };
  const auto load = [&](const Expr& col) { return kir::Load(src, src_row + col); };
  const auto fill = [&](const Expr&) { return value; };
  std::function<Expr(const Expr&)> left = fill;
  std::function<Expr(const Expr&)> right = fill;
  if (mode == PadMode::kEdge) {
    left = [&](const Expr&) { return load(Expr(int64_t{0})); };
    right = [&](const Expr&) { return load(Expr(n - 1)); };
  } else if (mode == PadMode::kReflect) {
    left = [&](const Expr& col) { return load(Expr(before) - col); };
    right = [&](const Expr& col) { return load(Expr(2 * (n - 1) + before) - col); };
  }
  std::vector<Stmt> parts;
  if (lo > 0) parts.push_back(part(0, lo, left));
  if (hi > lo) parts.push_back(part(lo, hi, [&](const Expr& col) { return load(col - Expr(before)); }));
  if (width > hi) parts.push_back(part(hi, width, right));
  Stmt body = kir::Block(parts);
  if (inside.defined()) body = kir::If(inside, body, part(0, width, fill));
  const auto kind =
      rows > 1 && rows * width >= ctx.MinParallelWork() ? kir::LoopKind::kParallel : kir::LoopKind::kSerial;
  return kir::For(row, Expr(int64_t{0}), Expr(rows), body, kind);
}

// --- Gradients ---------------------------------------------------------------------------

std::vector<int64_t> Dims(const Shape& shape) {
  return {shape.begin(), shape.end()};
}

NodeEntry Zeros(GradientContext& ctx, const Shape& shape, DType dtype) {
  return ctx.Apply("zeros", {}, {{"shape", Dims(shape)}, {"dtype", dtype}});
}

NodeEntry Reshaped(GradientContext& ctx, const NodeEntry& x, const Shape& shape) {
  return ctx.Apply("_np_reshape", {x}, {{"newshape", Dims(shape)}});
}

// Concat along `axis`, leaving out empty parts (zeros of a zero-size axis).
NodeEntry ConcatParts(GradientContext& ctx, const std::vector<std::pair<NodeEntry, int64_t>>& parts, size_t axis) {
  std::vector<NodeEntry> kept;
  for (const auto& [part, size] : parts) {
    if (size > 0) kept.push_back(part);
  }
  if (kept.size() == 1) return kept[0];
  return ctx.Apply("Concat", kept,
                   {{"num_args", static_cast<int64_t>(kept.size())}, {"dim", static_cast<int64_t>(axis)}});
}

// The gradient `g` of a slice `range` along `axis` (g's shape `shape`), placed into zeros
// of length `len` there: reversed for a negative step, interleaved with step - 1 zeros,
// then padded with zeros before and after.
NodeEntry PlaceAlong(GradientContext& ctx, NodeEntry g, Shape shape, size_t axis, const SliceRange& range, int64_t len,
                     DType dtype) {
  Shape full = shape;
  full[axis] = len;
  if (range.size == 0) return Zeros(ctx, full, dtype);
  if (range.size == len && range.step == 1) return g;
  int64_t first = range.start;
  int64_t step = range.step;
  if (step < 0) {
    // Ascending positions: g reversed along the axis (a slice of step -1).
    std::string begin = "(";
    std::string steps = "(";
    for (size_t d = 0; d <= axis; ++d) {
      begin += "None,";
      steps += d == axis ? "-1," : "None,";
    }
    g = ctx.Apply("slice", {g}, {{"begin", begin + ")"}, {"end", begin + ")"}, {"step", steps + ")"}});
    first = range.start + (range.size - 1) * step;
    step = -step;
  }
  const int64_t n = range.size;
  int64_t span = n;
  if (step > 1) {
    Shape column = shape;
    column.insert(column.begin() + static_cast<int64_t>(axis) + 1, 1);
    Shape gaps = column;
    gaps[axis + 1] = step - 1;
    const NodeEntry expanded = Reshaped(ctx, g, column);
    const NodeEntry joined = ctx.Apply("Concat", {expanded, Zeros(ctx, gaps, dtype)},
                                       {{"num_args", int64_t{2}}, {"dim", static_cast<int64_t>(axis + 1)}});
    Shape merged = shape;
    merged[axis] = n * step;
    span = (n - 1) * step + 1;
    g = ctx.Apply("slice_axis", {Reshaped(ctx, joined, merged)},
                  {{"axis", static_cast<int64_t>(axis)}, {"begin", int64_t{0}}, {"end", span}});
  }
  Shape before = shape;
  before[axis] = first;
  Shape after = shape;
  after[axis] = len - first - span;
  return ConcatParts(
      ctx, {{Zeros(ctx, before, dtype), before[axis]}, {g, span}, {Zeros(ctx, after, dtype), after[axis]}}, axis);
}

GradientFn SliceGradient(RangesFn ranges_of) {
  return [ranges_of](GradientContext& ctx) {
    const Shape& in = ctx.input_shapes[0];
    const auto ranges = ranges_of(ctx.attrs, in);
    NodeEntry g = ctx.OutputGrad(0);
    Shape shape = ctx.output_shapes[0];
    for (size_t d = 0; d < ranges.size(); ++d) {
      if (ranges[d].step == 1 && ranges[d].size == in[d]) continue;
      g = PlaceAlong(ctx, g, shape, d, ranges[d], in[d], ctx.input_types[0]);
      shape[d] = in[d];
    }
    ctx.SetInputGrad(0, g);
  };
}

void ConcatGradient(GradientContext& ctx) {
  const Shape& out = ctx.output_shapes[0];
  const int64_t axis = NormalizeAxis(ctx.attrs.Int("dim"), static_cast<int64_t>(out.size()), "attribute 'dim'");
  const NodeEntry g = ctx.OutputGrad(0);
  int64_t offset = 0;
  for (size_t i = 0; i < ctx.inputs.size(); ++i) {
    const int64_t size = ctx.input_shapes[i][axis];
    if (size == 0) {
      ctx.SetInputGrad(i, Zeros(ctx, ctx.input_shapes[i], ctx.input_types[i]));
    } else if (ctx.inputs.size() == 1) {
      ctx.SetInputGrad(i, g);
    } else {
      ctx.SetInputGrad(i, ctx.Apply("slice_axis", {g}, {{"axis", axis}, {"begin", offset}, {"end", offset + size}}));
    }
    offset += size;
  }
}

// The output gradients joined again, zeros where none flows.
void SplitGradient(GradientContext& ctx) {
  const Shape& data = ctx.input_shapes[0];
  const int64_t axis = SplitAxis(ctx.attrs, data);
  const bool squeeze = ctx.attrs.Bool("squeeze_axis");
  std::vector<NodeEntry> parts;
  for (size_t i = 0; i < ctx.output_shapes.size(); ++i) {
    NodeEntry part = ctx.OutputGrad(i);
    if (squeeze) part = ctx.Apply("expand_dims", {part}, {{"axis", axis}});
    parts.push_back(part);
  }
  ctx.SetInputGrad(0, parts.size() == 1 ? Reshaped(ctx, parts[0], data)
                                        : ctx.Apply("Concat", parts,
                                                    {{"num_args", static_cast<int64_t>(parts.size())}, {"dim", axis}}));
}

void StackGradient(GradientContext& ctx) {
  const int64_t axis = StackAxis(ctx.attrs, static_cast<int64_t>(ctx.input_shapes[0].size()));
  const auto parts =
      ctx.ApplyAll("split", {ctx.OutputGrad(0)},
                   {{"num_outputs", static_cast<int64_t>(ctx.inputs.size())}, {"axis", axis}, {"squeeze_axis", true}});
  for (size_t i = 0; i < parts.size(); ++i) ctx.SetInputGrad(i, parts[i]);
}

// Each output axis d is (reps[d], padded[d]): the gradient sums over the repetitions.
void TileGradient(GradientContext& ctx) {
  Shape padded;
  Shape out;
  TileShapes(ctx.attrs, ctx.input_shapes[0], &padded, &out);
  Shape split;
  std::vector<int64_t> axes;
  for (size_t d = 0; d < padded.size(); ++d) {
    axes.push_back(static_cast<int64_t>(split.size()));
    split.push_back(padded[d] == 0 ? 0 : out[d] / padded[d]);
    split.push_back(padded[d]);
  }
  if (NumElements(out) == 0) {
    ctx.SetInputGrad(0, Zeros(ctx, ctx.input_shapes[0], ctx.input_types[0]));
    return;
  }
  const NodeEntry summed = ctx.Apply("sum", {Reshaped(ctx, ctx.OutputGrad(0), split)}, {{"axis", axes}});
  ctx.SetInputGrad(0, Reshaped(ctx, summed, ctx.input_shapes[0]));
}

// Each element's repeats are adjacent: a new axis of size `repeats` after it, summed.
void RepeatGradient(GradientContext& ctx) {
  const Shape& data = ctx.input_shapes[0];
  const int64_t repeats = ctx.attrs.Int("repeats");
  if (repeats == 0 || NumElements(data) == 0) {
    ctx.SetInputGrad(0, Zeros(ctx, data, ctx.input_types[0]));
    return;
  }
  Shape split;
  int64_t axis = 0;
  if (const auto given = ctx.attrs.OptInt("axis")) {
    const int64_t a = InputAxis(*given, data, "attribute 'axis'");
    split = data;
    split.insert(split.begin() + a + 1, repeats);
    axis = a + 1;
  } else {
    split = {NumElements(data), repeats};
    axis = 1;
  }
  const NodeEntry summed =
      ctx.Apply("sum", {Reshaped(ctx, ctx.OutputGrad(0), split)}, {{"axis", std::vector<int64_t>{axis}}});
  ctx.SetInputGrad(0, Reshaped(ctx, summed, data));
}

// Constant padding's gradient crops what was padded (and pads with zeros what was
// cropped): Pad with the negated widths.
void PadGradient(GradientContext& ctx) {
  if (GetPadMode(ctx.attrs) != PadMode::kConstant) {
    throw Error("Pad: the gradient of mode '" + ctx.attrs.Str("mode") +
                "' is not supported; expected mode 'constant', given '" + ctx.attrs.Str("mode") + "'");
  }
  std::vector<int64_t> widths = ctx.attrs.Ints("pad_width");
  for (int64_t& w : widths) w = -w;
  ctx.SetInputGrad(
      0, ctx.Apply("Pad", {ctx.OutputGrad(0)}, {{"mode", "constant"}, {"pad_width", widths}, {"constant_value", 0.0}}));
}

// The condition gets none; x and y the gradient where each was chosen.
void WhereGradient(GradientContext& ctx) {
  const NodeEntry g = ctx.OutputGrad(0);
  const NodeEntry zeros = ctx.Apply("zeros_like", {g});
  ctx.SetInputGrad(1, ctx.Apply("where", {ctx.inputs[0], g, zeros}));
  ctx.SetInputGrad(2, ctx.Apply("where", {ctx.inputs[0], zeros, g}));
}

// A view's element: the same flat index, divided by the input's shape.
std::vector<Expr> ViewIndexMap(const Attrs&, const Shape& in_shape, const Shape& out_shape,
                               const std::vector<Expr>& out_index) {
  const Expr flat = lower::FlatIndex(out_index, out_shape);
  std::vector<Expr> in_index(in_shape.size());
  int64_t stride = 1;
  for (size_t d = in_shape.size(); d-- > 0;) {
    Expr coordinate = stride == 1 ? flat : flat / Expr(stride);
    if (d > 0) coordinate = coordinate % Expr(in_shape[d]);
    in_index[d] = in_shape[d] == 1 ? Expr(int64_t{0}) : coordinate;
    stride *= in_shape[d];
  }
  return in_index;
}

// A view: output 0 is input 0's bytes under another shape (no kernel where the storage
// can be shared; a copy otherwise).
OpDef& AsView(OpDef& op) {
  return op.SetInplace(op_util::InplaceIdentity())
      .SetPattern(OpPattern::kInjective)
      .SetReference(CopyReference)
      .SetView()
      .SetIndexMap(ViewIndexMap)
      .SetLower(CopyLower)
      // The gradient is the output's, viewed in the input's shape.
      .SetGradient([](GradientContext& ctx) {
        const Shape& in = ctx.input_shapes[0];
        ctx.SetInputGrad(0, ctx.Apply("_np_reshape", {ctx.OutputGrad(0)},
                                      {{"newshape", std::vector<int64_t>(in.begin(), in.end())}}));
      });
}

const bool kRegistered = [] {
  OpRegistry& registry = OpRegistry::Global();

  AsView(
      registry.Register("Reshape")
          .Describe("Reshape with MXNet's special values 0, -1, -2, -3, -4 in `shape`")
          .Alias("reshape")
          .Attr("shape", AttrType::kInts, AttrValue{std::vector<int64_t>{}}, "the target shape, with special values")
          .Range(-4)
          .Attr("reverse", AttrType::kBool, AttrValue{false}, "match special values from the right")
          .Attr("target_shape", AttrType::kInts, AttrValue{std::vector<int64_t>{}},
                "deprecated: the target shape, one 0 inferred; used when `shape` is empty")
          .Range(0)
          .Attr("keep_highest", AttrType::kBool, AttrValue{false}, "deprecated: with target_shape, keep the first dim")
          .SetValidate([](const Attrs& attrs) {
            if (attrs.Ints("shape").empty() && attrs.Ints("target_shape").empty()) {
              throw Error("attribute 'shape' is required: give the target shape");
            }
          })
          .SetInferShape(ReshapeInferShape));

  AsView(registry.Register("_np_reshape")
             .Describe("numpy's reshape: newshape exactly (one -1 inferred; () for a 0-d result, 0 for an empty axis)")
             .Attr("newshape", AttrType::kInts, std::nullopt, "the target shape")
             .Attr("order", AttrType::kString, AttrValue{std::string("C")}, "element order: C (row-major) only")
             .Choices({"C"})
             .Inputs({"a"})
             .SetInferShape(NpReshapeInferShape));

  AsView(registry.Register("Flatten")
             .Describe("Collapse all axes but the first: (d0, d1, ..., dk) -> (d0, d1*...*dk)")
             .Alias("flatten")
             .SetInferShape(FlattenInferShape));

  registry.Register("transpose")
      .Describe("Permute axes; output axis i is input axis axes[i] (empty axes: reverse them)")
      .Attr("axes", AttrType::kInts, AttrValue{std::vector<int64_t>{}}, "the permutation")
      .SetInferShape(TransposeInferShape)
      .SetPermutation([](const Attrs& attrs, size_t ndim) { return TransposeAxes(attrs, static_cast<int64_t>(ndim)); })
      .SetIndexMap([](const Attrs& attrs, const Shape& in_shape, const Shape&, const std::vector<Expr>& out_index) {
        const std::vector<int64_t> axes = TransposeAxes(attrs, static_cast<int64_t>(in_shape.size()));
        std::vector<Expr> in_index(in_shape.size());
        for (size_t d = 0; d < axes.size(); ++d) in_index[static_cast<size_t>(axes[d])] = out_index[d];
        return in_index;
      })
      .SetIdentityWhen([](const Attrs& attrs, const std::vector<Shape>& in, DType, bool) {
        const std::vector<int64_t> axes = TransposeAxes(attrs, static_cast<int64_t>(in[0].size()));
        for (size_t d = 0; d < axes.size(); ++d) {
          if (axes[d] != static_cast<int64_t>(d)) return false;
        }
        return true;
      })
      .SetPattern(OpPattern::kInjective)
      .SetReference(TransposeReference)
      .SetLower(TransposeLower)
      // The inverse permutation takes the gradient back.
      .SetGradient([](GradientContext& ctx) {
        const auto axes = TransposeAxes(ctx.attrs, static_cast<int64_t>(ctx.input_shapes[0].size()));
        std::vector<int64_t> inverse(axes.size());
        for (size_t i = 0; i < axes.size(); ++i) inverse[axes[i]] = static_cast<int64_t>(i);
        ctx.SetInputGrad(0, ctx.Apply("transpose", {ctx.OutputGrad(0)}, {{"axes", inverse}}));
      });

  AsView(registry.Register("expand_dims")
             .Describe("Insert a size-1 axis at `axis`")
             .Attr("axis", AttrType::kInt, std::nullopt, "where the new axis goes, in [-ndim-1, ndim]")
             .SetInferShape(ExpandDimsInferShape));

  AsView(registry.Register("squeeze")
             .Describe("Remove size-1 axes (all of them, or those in `axis`)")
             .Attr("axis", AttrType::kInts, AttrValue{std::monostate{}}, "the axes to remove; None: every size-1 axis")
             .SetInferShape(SqueezeInferShape));

  registry.Register("Concat")
      .Describe("Join num_args inputs along `dim`")
      .Alias("concat")
      .Attr("num_args", AttrType::kInt, std::nullopt, "number of inputs")
      .Range(1, op_util::kMaxArity)
      .Attr("dim", AttrType::kInt, AttrValue{int64_t{1}}, "the axis to join along")
      .Inputs(NumberedNames("arg", "num_args"))
      .SetInferShape(ConcatInferShape)
      .SetPattern(OpPattern::kInjective)
      .SetReference(ConcatReference)
      .SetLower(ConcatLower)
      .SetGradient(ConcatGradient);

  registry.Register("stack")
      .Describe("Join num_args inputs of one shape along a new axis")
      .Attr("num_args", AttrType::kInt, std::nullopt, "number of inputs")
      .Range(1, op_util::kMaxArity)
      .Attr("axis", AttrType::kInt, AttrValue{int64_t{0}}, "where the new axis goes in the output")
      .Inputs(NumberedNames("arg", "num_args"))
      .SetInferShape(StackInferShape)
      .SetPattern(OpPattern::kInjective)
      .SetReference(StackReference)
      .SetLower(StackLower)
      .SetGradient(StackGradient);

  registry.Register("split")
      .Describe("Split along `axis` into num_outputs equal parts")
      .Alias("SliceChannel")
      .Attr("num_outputs", AttrType::kInt, std::nullopt, "number of parts")
      .Range(1, op_util::kMaxArity)
      .Attr("axis", AttrType::kInt, AttrValue{int64_t{1}}, "the axis to split")
      .Attr("squeeze_axis", AttrType::kBool, AttrValue{false}, "drop the split axis (its size must equal num_outputs)")
      .Outputs(NumberedNames("output", "num_outputs"))
      .SetInferShape(SplitInferShape)
      .SetPattern(OpPattern::kInjective)
      .SetReference(SplitReference)
      .SetLower(SplitLower)
      .SetGradient(SplitGradient);

  registry.Register("slice")
      .Describe("Python-style slicing of the leading axes: begin, end, step per axis; None entries take the default")
      .Attr("begin", AttrType::kString, std::nullopt, "tuple of start indices or None, e.g. (0, None)")
      .Attr("end", AttrType::kString, std::nullopt, "tuple of stop indices (exclusive) or None")
      .Attr("step", AttrType::kString, AttrValue{std::string("()")}, "tuple of steps or None (1); empty: all 1")
      .SetValidate(ValidateSlice)
      .SetInferShape(SliceInfer(SliceRanges))
      .SetPattern(OpPattern::kInjective)
      .SetReference(SliceReference(SliceRanges))
      .SetLower(SliceLower(SliceRanges))
      .SetGradient(SliceGradient(SliceRanges));

  registry.Register("slice_axis")
      .Describe("Take [begin, end) along one axis")
      .Attr("axis", AttrType::kInt, std::nullopt, "the axis to slice")
      .Attr("begin", AttrType::kInt, std::nullopt, "start index; negative counts from the end")
      .Attr("end", AttrType::kInt, std::nullopt, "stop index (exclusive); negative counts from the end; None: the end")
      .Nullable()
      .SetInferShape(SliceInfer(SliceAxisRanges))
      .SetPattern(OpPattern::kInjective)
      .SetReference(SliceReference(SliceAxisRanges))
      .SetLower(SliceLower(SliceAxisRanges))
      .SetGradient(SliceGradient(SliceAxisRanges));

  registry.Register("tile")
      .Describe("Repeat the whole input reps[i] times along axis i")
      .Attr("reps", AttrType::kInts, std::nullopt, "repetitions per axis (aligned to the trailing axes)")
      .Range(1)
      .SetInferShape(TileInferShape)
      .SetPattern(OpPattern::kInjective)
      .SetReference(TileReference)
      .SetLower(TileLower)
      .SetGradient(TileGradient);

  registry.Register("repeat")
      .Describe("Repeat each element `repeats` times along `axis` (None: of the flattened input)")
      .Attr("repeats", AttrType::kInt, std::nullopt, "repetitions of each element")
      .Range(0)
      .Attr("axis", AttrType::kInt, AttrValue{std::monostate{}}, "the axis; None flattens the input")
      .SetInferShape(RepeatInferShape)
      .SetPattern(OpPattern::kInjective)
      .SetReference(RepeatReference)
      .SetLower(RepeatLower)
      .SetGradient(RepeatGradient);

  registry.Register("broadcast_to")
      .Describe("Broadcast size-1 axes to `shape` (0 keeps the input's dim)")
      .Attr("shape", AttrType::kInts, AttrValue{std::vector<int64_t>{}}, "the target shape; 0 keeps a dim")
      .Range(0)
      .SetInferShape(BroadcastToInferShape)
      .SetPattern(OpPattern::kBroadcast)
      .SetReference(BroadcastToReference)
      // Same-rank NumPy broadcasting: the generic lowering reads each element's source.
      .SetScalarCompute(
          [](const Attrs&, const std::vector<kir::Expr>& in, kir::ScalarType type) { return kir::Cast(type, in[0]); })
      .SetGradient([](GradientContext& ctx) {
        ctx.SetInputGrad(0, ctx.SumToShape(ctx.OutputGrad(0), ctx.output_shapes[0], ctx.input_shapes[0]));
      });

  registry.Register("Pad")
      .Describe("Pad the spatial axes of 4-d or 5-d data with a constant, the edge values or their reflection")
      .Alias("pad")
      .Attr("mode", AttrType::kString, std::nullopt, "constant, edge or reflect")
      .Choices({"constant", "edge", "reflect"})
      .Attr("pad_width", AttrType::kInts, std::nullopt,
            "(before, after) for every axis, 0 for N and C; a negative width crops")
      .Attr("constant_value", AttrType::kFloat, AttrValue{0.0}, "the padding value in constant mode")
      .SetValidate(ValidatePad)
      .SetInferShape(PadInferShape)
      .SetInferType(PadInferType)
      .SetPattern(OpPattern::kInjective)
      .SetReference(PadReference)
      .SetLower(PadLower)
      .SetGradient(PadGradient);

  registry.Register("where")
      .Describe("x where condition is non-zero, else y; a 1-d condition picks whole rows")
      .Inputs({"condition", "x", "y"})
      .SetInferShape(WhereInferShape)
      .SetInferType(WhereInferType)
      .SetPattern(OpPattern::kBroadcast)
      .SetReference(WhereReference)
      .SetLower(WhereLower)
      .SetGradient(WhereGradient);
  return true;
}();

}  // namespace
}  // namespace kiln
