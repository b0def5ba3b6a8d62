// Softmax and the output (loss) layers: softmax, log_softmax, SoftmaxOutput,
// Linear/Logistic/MAERegressionOutput, softmax_cross_entropy. Forward only; the loss
// layers' gradients arrive with training.
#include <algorithm>
#include <cmath>
#include <limits>

#include "symbol/op_util.h"

namespace kiln {
namespace {

using op_util::AssignShape;
using op_util::AssignType;
using op_util::ShapeError;

std::string Name(DType dtype) { return std::string(DTypeName(dtype)); }

void RequireFloat(const DTypeSlot& slot, const std::string& what) {
  if (slot && !IsFloat(*slot)) {
    throw Error(what + ": expected a floating-point dtype (float16, float32, float64), given " + Name(*slot));
  }
}

// The loss layers: data, label and output share one floating-point dtype, as in MXNet
// (an int32 label next to float32 data is an error there too).
void SameFloatType(const std::vector<std::string>& input_names, std::vector<DTypeSlot>& inputs,
                   std::vector<DTypeSlot>& outputs) {
  DTypeSlot known;
  for (const auto& slot : inputs) known = known ? known : slot;
  for (const auto& slot : outputs) known = known ? known : slot;
  if (!known) return;
  for (size_t i = 0; i < inputs.size(); ++i) AssignType(inputs[i], *known, "input '" + input_names[i] + "'");
  AssignType(outputs[0], *known, "output");
  RequireFloat(inputs[0], "input '" + input_names[0] + "'");
}

// Out-of-range class indices are clipped to [0, classes): MXNet reads past the row
// there (undefined results); clipping is MXNet's rule elsewhere (Embedding, pick).
int64_t ClipIndex(double value, int64_t classes) {
  if (!(value >= 0)) return 0;  // negative or NaN
  if (value >= static_cast<double>(classes - 1)) return classes - 1;
  return static_cast<int64_t>(value);  // truncates toward zero, as MXNet's cast does
}

// Softmax (or log-softmax) of x / temperature over the middle index of an
// (outer, classes, inner) view. valid(o, i) gives how many leading classes take part
// (use_length); the others are written as 0. The row is read before any write, so `out`
// may share `in`'s storage.
void SoftmaxRows(const Tensor& in, Tensor& out, int64_t outer, int64_t classes, int64_t inner, double temperature,
                 bool log, const std::function<int64_t(int64_t, int64_t)>& valid) {
  std::vector<double> row(static_cast<size_t>(classes));
  for (int64_t o = 0; o < outer; ++o) {
    for (int64_t i = 0; i < inner; ++i) {
      const int64_t base = o * classes * inner + i;
      const int64_t n = valid ? valid(o, i) : classes;
      for (int64_t c = 0; c < classes; ++c) row[c] = in.GetDouble(base + c * inner) / temperature;
      double max = -std::numeric_limits<double>::infinity();
      for (int64_t c = 0; c < n; ++c) max = std::max(max, row[c]);
      double sum = 0;
      for (int64_t c = 0; c < n; ++c) sum += std::exp(row[c] - max);
      for (int64_t c = 0; c < classes; ++c) {
        double value = 0;
        if (c < n) value = log ? row[c] - max - std::log(sum) : std::exp(row[c] - max) / sum;
        out.SetDouble(base + c * inner, value);
      }
    }
  }
}

int64_t Product(const Shape& shape, size_t begin, size_t end) {
  int64_t product = 1;
  for (size_t d = begin; d < end; ++d) product *= shape[d];
  return product;
}

bool UseLength(const Attrs& attrs) { return !attrs.IsNone("use_length") && attrs.Bool("use_length"); }

void RegisterSoftmax(const char* name, const char* doc, bool log) {
  OpRegistry::Global()
      .Register(name)
      .Describe(doc)
      .Attr("axis", AttrType::kInt, AttrValue{int64_t{-1}}, "the axis to normalize over")
      .Attr("temperature", AttrType::kFloat, AttrValue{}, "divides the input; None means 1")
      .Attr("dtype", AttrType::kDType, AttrValue{}, "output dtype (float16, float32, float64); None: the input's")
      .Attr("use_length", AttrType::kBool, AttrValue{false}, "mask the axis beyond a per-row length input")
      .Nullable()
      .SetValidate([log](const Attrs& attrs) {
        if (!attrs.IsNone("temperature") && attrs.Float("temperature") == 0) {
          throw Error("attribute 'temperature': must be nonzero (None means 1), given 0");
        }
        if (!attrs.IsNone("dtype") && !IsFloat(attrs.GetDType("dtype"))) {
          throw Error("attribute 'dtype': expected one of {float16, float32, float64} or None, given " +
                      attrs.Str("dtype"));
        }
        // MXNet 1.9 declares no length input for log_softmax, so it cannot run this either.
        if (log && UseLength(attrs)) throw Error("attribute 'use_length': log_softmax does not support use_length=True");
      })
      .Inputs([](const Attrs& attrs) {
        return UseLength(attrs) ? std::vector<std::string>{"data", "length"} : std::vector<std::string>{"data"};
      })
      .SetInferShape([](const Attrs& attrs, std::vector<ShapeSlot>& in, std::vector<ShapeSlot>& out) {
        if (!in[0] && out[0]) in[0] = out[0];
        if (!in[0]) return;
        const Shape& data = *in[0];
        if (data.empty()) ShapeError("input 'data'", "at least 1-d", data);
        const int64_t axis = op_util::NormalizeAxis(attrs.Int("axis"), static_cast<int64_t>(data.size()),
                                                    "attribute 'axis'");
        AssignShape(out[0], data, "output");
        if (UseLength(attrs)) {
          Shape length = data;
          length.erase(length.begin() + axis);
          AssignShape(in[1], length, "input 'length' (data shape without axis " + std::to_string(axis) + ")");
        }
      })
      .SetInferType([](const Attrs& attrs, std::vector<DTypeSlot>& in, std::vector<DTypeSlot>& out) {
        if (UseLength(attrs) && in[1] && (IsFloat(*in[1]) || *in[1] == DType::kBool)) {
          throw Error("input 'length': expected an integer dtype, given " + Name(*in[1]));
        }
        if (!attrs.IsNone("dtype")) {
          AssignType(out[0], attrs.GetDType("dtype"), "output");
        } else if (in[0]) {
          AssignType(out[0], *in[0], "output");
        } else if (out[0]) {
          in[0] = out[0];
        }
        RequireFloat(in[0], "input 'data'");
      })
      // Same storage only while the dtype stays the same.
      .SetInplace([](const Attrs& attrs) {
        return attrs.IsNone("dtype") ? std::vector<std::pair<int, int>>{{0, 0}} : std::vector<std::pair<int, int>>{};
      })
      .SetPattern(OpPattern::kOpaque)
      .SetReference([log](const Attrs& attrs, std::span<const Tensor> in, std::span<Tensor> out, const RefContext&) {
        const Shape& shape = in[0].shape();
        const size_t axis = static_cast<size_t>(op_util::NormalizeAxis(attrs.Int("axis"),
                                                                       static_cast<int64_t>(shape.size()), "axis"));
        const int64_t classes = shape[axis];
        const int64_t inner = Product(shape, axis + 1, shape.size());
        const double temperature = attrs.IsNone("temperature") ? 1.0 : attrs.Float("temperature");
        std::function<int64_t(int64_t, int64_t)> valid;
        if (UseLength(attrs)) {
          // A length past the axis is clipped (MXNet reads out of bounds there).
          valid = [&, classes, inner](int64_t o, int64_t i) {
            const double length = in[1].GetDouble(o * inner + i);
            return length <= 0 ? int64_t{0} : static_cast<int64_t>(std::min(length, static_cast<double>(classes)));
          };
        }
        SoftmaxRows(in[0], out[0], Product(shape, 0, axis), classes, inner, temperature, log, valid);
      });
}

// SoftmaxOutput's accepted label shapes, the first being the one it infers: data's shape
// without the class axis, or data's own shape (probability labels). With multi_output
// the class axis is 1 and the spatial dims may also come flattened, (N, H*W), which is
// the inferred form.
std::vector<Shape> SoftmaxOutputLabelShapes(const Attrs& attrs, const Shape& data) {
  if (attrs.Bool("multi_output")) {
    Shape spatial = {data[0]};
    spatial.insert(spatial.end(), data.begin() + 2, data.end());
    return {{data[0], Product(data, 2, data.size())}, spatial, data};
  }
  return {Shape(data.begin(), data.end() - 1), data};
}

void RegisterSoftmaxOutput() {
  OpRegistry::Global()
      .Register("SoftmaxOutput")
      .Alias("Softmax")
      .Describe("Softmax with a cross-entropy loss gradient; the forward output is the softmax")
      .Attr("grad_scale", AttrType::kFloat, AttrValue{1.0}, "scales the gradient")
      .Attr("ignore_label", AttrType::kFloat, AttrValue{-1.0}, "label ignored in the gradient when use_ignore")
      .Attr("multi_output", AttrType::kBool, AttrValue{false}, "softmax over axis 1 of (N, C, ...)")
      .Attr("use_ignore", AttrType::kBool, AttrValue{false}, "skip ignore_label in the gradient")
      .Attr("preserve_shape", AttrType::kBool, AttrValue{false}, "softmax over the last axis")
      .Attr("normalization", AttrType::kString, AttrValue{std::string("null")}, "gradient normalization")
      .Choices({"null", "batch", "valid"})
      .Attr("out_grad", AttrType::kBool, AttrValue{false}, "multiply the gradient by the output gradient")
      .Attr("smooth_alpha", AttrType::kFloat, AttrValue{0.0}, "label smoothing in the gradient")
      .Inputs({"data", "label"})
      .LabelInputs({1})
      .SetInferShape([](const Attrs& attrs, std::vector<ShapeSlot>& in, std::vector<ShapeSlot>& out) {
        if (!in[0] && out[0]) in[0] = out[0];
        if (!in[0]) return;
        const Shape& data = *in[0];
        if (data.size() < 2) ShapeError("input 'data'", "at least 2-d (N, C, ...)", data);
        AssignShape(out[0], data, "output");
        const std::vector<Shape> labels = SoftmaxOutputLabelShapes(attrs, data);
        if (!in[1]) {
          in[1] = labels[0];
        } else if (std::find(labels.begin(), labels.end(), *in[1]) == labels.end()) {
          std::string expected = "shape";
          for (size_t i = 0; i < labels.size(); ++i) expected += (i ? " or " : " ") + ShapeToString(labels[i]);
          ShapeError("input 'label'", expected + " for data " + ShapeToString(data), *in[1]);
        }
      })
      .SetInferType([](const Attrs&, std::vector<DTypeSlot>& in, std::vector<DTypeSlot>& out) {
        SameFloatType({"data", "label"}, in, out);
      })
      .SetInplace(op_util::InplaceIdentity())
      .SetPattern(OpPattern::kOpaque)
      // As MXNet computes it: multi_output normalizes over axis 1, preserve_shape over the
      // last axis, and otherwise over everything but axis 0 (data flattened to (N, -1)).
      .SetReference([](const Attrs& attrs, std::span<const Tensor> in, std::span<Tensor> out, const RefContext&) {
        const Shape& shape = in[0].shape();
        const int64_t total = NumElements(shape);
        int64_t outer = shape[0];
        int64_t classes = total / std::max<int64_t>(outer, 1);
        int64_t inner = 1;
        if (attrs.Bool("multi_output")) {
          classes = shape[1];
          inner = Product(shape, 2, shape.size());
        } else if (attrs.Bool("preserve_shape")) {
          classes = shape.back();
          outer = Product(shape, 0, shape.size() - 1);
        }
        SoftmaxRows(in[0], out[0], outer, classes, inner, 1.0, false, nullptr);
      });
}

// MXNet's rule: the label defaults to data's shape, except (N,) for (N, 1) data; a given
// label needs data's first dimension and element count.
void RegressionShape(const Attrs&, std::vector<ShapeSlot>& in, std::vector<ShapeSlot>& out) {
  if (!in[0] && out[0]) in[0] = out[0];
  if (!in[0]) return;
  const Shape& data = *in[0];
  if (data.empty()) ShapeError("input 'data'", "at least 1-d", data);
  AssignShape(out[0], data, "output");
  if (!in[1]) {
    in[1] = data.size() == 2 && data[1] == 1 ? Shape{data[0]} : data;
  } else if (in[1]->empty() || (*in[1])[0] != data[0] || NumElements(*in[1]) != NumElements(data)) {
    ShapeError("input 'label'",
               "shape " + ShapeToString(data) + " (or another with " + std::to_string(data[0]) + " rows and " +
                   std::to_string(NumElements(data)) + " elements) for data " + ShapeToString(data),
               *in[1]);
  }
}

void RegisterRegression(const char* name, const char* doc, double (*forward)(double)) {
  OpRegistry::Global()
      .Register(name)
      .Describe(doc)
      .Attr("grad_scale", AttrType::kFloat, AttrValue{1.0}, "scales the gradient")
      .Inputs({"data", "label"})
      .LabelInputs({1})
      .SetInferShape(RegressionShape)
      .SetInferType([](const Attrs&, std::vector<DTypeSlot>& in, std::vector<DTypeSlot>& out) {
        SameFloatType({"data", "label"}, in, out);
      })
      .SetInplace(op_util::InplaceIdentity())
      .SetPattern(OpPattern::kOpaque)
      .SetReference([forward](const Attrs&, std::span<const Tensor> in, std::span<Tensor> out, const RefContext&) {
        for (int64_t i = 0; i < out[0].size(); ++i) out[0].SetDouble(i, forward(in[0].GetDouble(i)));
      });
}

void RegisterSoftmaxCrossEntropy() {
  OpRegistry::Global()
      .Register("softmax_cross_entropy")
      .Describe("Sum over the batch of -log(softmax(data)[label]); data (N, C), label (N,) class indices")
      .Inputs({"data", "label"})
      // MXNet requires the label's shape to be given; it is inferred here, (N,), as
      // SoftmaxOutput's is.
      .SetInferShape([](const Attrs&, std::vector<ShapeSlot>& in, std::vector<ShapeSlot>& out) {
        AssignShape(out[0], {1}, "output");
        if (!in[0]) return;
        const Shape& data = *in[0];
        if (data.size() != 2 || data[1] < 1) ShapeError("input 'data'", "2-d (N, C) with C >= 1", data);
        AssignShape(in[1], {data[0]}, "input 'label' (one class index per row of data " + ShapeToString(data) + ")");
      })
      .SetInferType([](const Attrs&, std::vector<DTypeSlot>& in, std::vector<DTypeSlot>& out) {
        SameFloatType({"data", "label"}, in, out);
      })
      .SetPattern(OpPattern::kOpaque)
      .SetReference([](const Attrs&, std::span<const Tensor> in, std::span<Tensor> out, const RefContext&) {
        const int64_t rows = in[0].shape()[0];
        const int64_t classes = in[0].shape()[1];
        double loss = 0;
        for (int64_t r = 0; r < rows; ++r) {
          double max = -std::numeric_limits<double>::infinity();
          for (int64_t c = 0; c < classes; ++c) max = std::max(max, in[0].GetDouble(r * classes + c));
          double sum = 0;
          for (int64_t c = 0; c < classes; ++c) sum += std::exp(in[0].GetDouble(r * classes + c) - max);
          const int64_t label = ClipIndex(in[1].GetDouble(r), classes);
          loss += max + std::log(sum) - in[0].GetDouble(r * classes + label);
        }
        out[0].SetDouble(0, loss);
      });
}

const bool kRegistered = [] {
  RegisterSoftmax("softmax", "exp(x/t) normalized to sum 1 along axis", false);
  RegisterSoftmax("log_softmax", "log of softmax along axis", true);
  RegisterSoftmaxOutput();
  RegisterRegression("LinearRegressionOutput", "Identity forward; squared-error loss gradient",
                     [](double x) { return x; });
  RegisterRegression("MAERegressionOutput", "Identity forward; absolute-error loss gradient",
                     [](double x) { return x; });
  RegisterRegression("LogisticRegressionOutput", "Sigmoid forward; logistic loss gradient",
                     [](double x) { return 1.0 / (1.0 + std::exp(-x)); });
  RegisterSoftmaxCrossEntropy();
  return true;
}();

}  // namespace
}  // namespace kiln
