// Matrix products: dot, batch_dot and FullyConnected.
#include <algorithm>
#include <string>

#include "symbol/op_util.h"

namespace kiln {
namespace {

using op_util::AssignShape;
using op_util::ShapeError;

// dot views lhs as a matrix (M, K) and rhs as (K, N), where M and N may span several
// axes (MXNet's N-d dot). transpose_a views lhs as (K, M) instead: K is its first axis
// and M the others; transpose_b views rhs as (N, K): K is its last axis. A 1-d operand
// is a vector whose only axis is K, whatever the transpose flag says.
struct DotDims {
  Shape m_dims;
  Shape n_dims;
  int64_t k = 0;
};

DotDims InferDotDims(const Attrs& attrs, const Shape& lhs, const Shape& rhs) {
  const bool ta = attrs.Bool("transpose_a");
  const bool tb = attrs.Bool("transpose_b");
  if (lhs.empty()) ShapeError("input 'lhs'", "at least 1-d", lhs);
  if (rhs.empty()) ShapeError("input 'rhs'", "at least 1-d", rhs);
  if (lhs.size() == 1 && rhs.size() == 1 && (ta || tb)) {
    throw Error("transpose_a and transpose_b must be False when both inputs are vectors, given lhs " +
                ShapeToString(lhs) + " and rhs " + ShapeToString(rhs));
  }
  DotDims dims;
  int64_t k_rhs = 0;
  if (lhs.size() == 1) {
    dims.k = lhs[0];
  } else if (ta) {
    dims.k = lhs.front();
    dims.m_dims.assign(lhs.begin() + 1, lhs.end());
  } else {
    dims.k = lhs.back();
    dims.m_dims.assign(lhs.begin(), lhs.end() - 1);
  }
  if (rhs.size() == 1) {
    k_rhs = rhs[0];
  } else if (tb) {
    k_rhs = rhs.back();
    dims.n_dims.assign(rhs.begin(), rhs.end() - 1);
  } else {
    k_rhs = rhs.front();
    dims.n_dims.assign(rhs.begin() + 1, rhs.end());
  }
  if (dims.k != k_rhs) {
    const std::string lhs_axis = lhs.size() == 1 ? "its length" : ta ? "its first axis" : "its last axis";
    const std::string rhs_axis = rhs.size() == 1 ? "length" : tb ? "last axis" : "first axis";
    ShapeError("input 'rhs'", rhs_axis + " of size " + std::to_string(dims.k) + " (lhs " + ShapeToString(lhs) +
                                  " contracts " + lhs_axis + ")",
               rhs);
  }
  return dims;
}

Shape DotOutputShape(const DotDims& dims) {
  Shape out = dims.m_dims;
  out.insert(out.end(), dims.n_dims.begin(), dims.n_dims.end());
  // vector . vector gives a 1-element vector, as in MXNet.
  if (out.empty()) out = {1};
  return out;
}

void DotInferShape(const Attrs& attrs, std::vector<ShapeSlot>& in, std::vector<ShapeSlot>& out) {
  if (!in[0] || !in[1]) return;
  AssignShape(out[0], DotOutputShape(InferDotDims(attrs, *in[0], *in[1])), "output");
}

void DotReference(const Attrs& attrs, std::span<const Tensor> in, std::span<Tensor> out, const RefContext&) {
  const DotDims dims = InferDotDims(attrs, in[0].shape(), in[1].shape());
  const bool ta = attrs.Bool("transpose_a");
  const bool tb = attrs.Bool("transpose_b");
  const int64_t m_size = NumElements(dims.m_dims);
  const int64_t n_size = NumElements(dims.n_dims);
  const int64_t k_size = dims.k;
  // For a 1-d operand m_size (or n_size) is 1 and both layouts give the same offset.
  for (int64_t m = 0; m < m_size; ++m) {
    for (int64_t n = 0; n < n_size; ++n) {
      double sum = 0;
      for (int64_t k = 0; k < k_size; ++k) {
        const int64_t a = ta ? k * m_size + m : m * k_size + k;
        const int64_t b = tb ? n * k_size + k : k * n_size + n;
        sum += in[0].GetDouble(a) * in[1].GetDouble(b);
      }
      out[0].SetDouble(m * n_size + n, sum);
    }
  }
}

// batch_dot: equal leading (batch) axes, then a matrix product of the last two axes.
struct BatchDims {
  Shape batch;
  int64_t m = 0;
  int64_t k = 0;
  int64_t n = 0;
};

BatchDims InferBatchDims(const Attrs& attrs, const Shape& lhs, const Shape& rhs) {
  const bool ta = attrs.Bool("transpose_a");
  const bool tb = attrs.Bool("transpose_b");
  if (lhs.size() < 3) ShapeError("input 'lhs'", "at least 3-d (batch..., M, K)", lhs);
  if (rhs.size() != lhs.size()) {
    ShapeError("input 'rhs'", std::to_string(static_cast<int64_t>(lhs.size())) + "-d like lhs " + ShapeToString(lhs), rhs);
  }
  const size_t nd = lhs.size();
  BatchDims dims;
  dims.batch.assign(lhs.begin(), lhs.end() - 2);
  if (!std::equal(dims.batch.begin(), dims.batch.end(), rhs.begin())) {
    ShapeError("input 'rhs'", "the batch axes " + ShapeToString(dims.batch) + " of lhs " + ShapeToString(lhs), rhs);
  }
  dims.m = ta ? lhs[nd - 1] : lhs[nd - 2];
  dims.k = ta ? lhs[nd - 2] : lhs[nd - 1];
  const int64_t k_rhs = tb ? rhs[nd - 1] : rhs[nd - 2];
  dims.n = tb ? rhs[nd - 2] : rhs[nd - 1];
  if (dims.k != k_rhs) {
    ShapeError("input 'rhs'",
               std::string(tb ? "last" : "second-to-last") + " axis of size " + std::to_string(dims.k) + " (lhs " +
                   ShapeToString(lhs) + " contracts its " + (ta ? "second-to-last" : "last") + " axis)",
               rhs);
  }
  return dims;
}

void BatchDotInferShape(const Attrs& attrs, std::vector<ShapeSlot>& in, std::vector<ShapeSlot>& out) {
  if (!in[0] || !in[1]) return;
  const BatchDims dims = InferBatchDims(attrs, *in[0], *in[1]);
  Shape shape = dims.batch;
  shape.push_back(dims.m);
  shape.push_back(dims.n);
  AssignShape(out[0], shape, "output");
}

void BatchDotReference(const Attrs& attrs, std::span<const Tensor> in, std::span<Tensor> out, const RefContext&) {
  const BatchDims dims = InferBatchDims(attrs, in[0].shape(), in[1].shape());
  const bool ta = attrs.Bool("transpose_a");
  const bool tb = attrs.Bool("transpose_b");
  const int64_t batches = NumElements(dims.batch);
  const int64_t lhs_stride = dims.m * dims.k;
  const int64_t rhs_stride = dims.k * dims.n;
  for (int64_t b = 0; b < batches; ++b) {
    for (int64_t m = 0; m < dims.m; ++m) {
      for (int64_t n = 0; n < dims.n; ++n) {
        double sum = 0;
        for (int64_t k = 0; k < dims.k; ++k) {
          const int64_t a = b * lhs_stride + (ta ? k * dims.m + m : m * dims.k + k);
          const int64_t c = b * rhs_stride + (tb ? n * dims.k + k : k * dims.n + n);
          sum += in[0].GetDouble(a) * in[1].GetDouble(c);
        }
        out[0].SetDouble((b * dims.m + m) * dims.n + n, sum);
      }
    }
  }
}

// FullyConnected reads data as rows of `in_features` values: with flatten, axis 0 is
// the batch and every other axis is flattened (a 1-d input is a column, as MXNet
// reads it); without flatten, the last axis is the feature axis.
int64_t FcInFeatures(const Attrs& attrs, const Shape& data) {
  if (data.empty()) ShapeError("input 'data'", "at least 1-d", data);
  if (!attrs.Bool("flatten")) return data.back();
  return NumElements(Shape(data.begin() + 1, data.end()));
}

void FcInferShape(const Attrs& attrs, std::vector<ShapeSlot>& in, std::vector<ShapeSlot>& out) {
  if (!in[0]) return;
  const Shape& data = *in[0];
  const int64_t num_hidden = attrs.Int("num_hidden");
  AssignShape(in[1], {num_hidden, FcInFeatures(attrs, data)}, "input 'weight'");
  if (!attrs.Bool("no_bias")) {
    // MXNet also accepts a (num_hidden, 1) bias: same values, same layout.
    if (!(in[2] && *in[2] == Shape{num_hidden, 1})) AssignShape(in[2], {num_hidden}, "input 'bias'");
  }
  Shape shape;
  if (attrs.Bool("flatten")) {
    shape = {data[0], num_hidden};
  } else {
    shape.assign(data.begin(), data.end() - 1);
    shape.push_back(num_hidden);
  }
  AssignShape(out[0], shape, "output");
}

void FcReference(const Attrs& attrs, std::span<const Tensor> in, std::span<Tensor> out, const RefContext&) {
  const int64_t in_features = FcInFeatures(attrs, in[0].shape());
  const int64_t num_hidden = attrs.Int("num_hidden");
  const int64_t rows = out[0].size() / num_hidden;
  const bool has_bias = !attrs.Bool("no_bias");
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t j = 0; j < num_hidden; ++j) {
      double sum = has_bias ? in[2].GetDouble(j) : 0.0;
      for (int64_t i = 0; i < in_features; ++i) {
        sum += in[0].GetDouble(r * in_features + i) * in[1].GetDouble(j * in_features + i);
      }
      out[0].SetDouble(r * num_hidden + j, sum);
    }
  }
}

void DeclareTransposeFlags(OpDef& op) {
  op.Attr("transpose_a", AttrType::kBool, AttrValue{false}, "use lhs transposed")
      .Attr("transpose_b", AttrType::kBool, AttrValue{false}, "use rhs transposed")
      // A storage-type hint of MXNet's sparse runtime; kiln stores every tensor dense
      // and the values are the same.
      .Attr("forward_stype", AttrType::kString, AttrValue{std::monostate{}}, "MXNet's output storage hint (ignored)")
      .Choices({"None", "default", "csr", "row_sparse"});  // MXNet's JSON spells the default "None"
}

const bool kRegistered = [] {
  OpDef& dot = OpRegistry::Global().Register("dot");
  dot.Describe(
         "Matrix product over the last axis of lhs and the first axis of rhs (N-d operands flatten to "
         "matrices; 1-d operands are vectors)")
      .Inputs({"lhs", "rhs"})
      .SetInferShape(DotInferShape)
      .SetPattern(OpPattern::kGemm)
      .SetReference(DotReference);
  DeclareTransposeFlags(dot);

  OpDef& batch_dot = OpRegistry::Global().Register("batch_dot");
  batch_dot.Describe("Matrix products of the last two axes, batched over equal leading axes")
      .Inputs({"lhs", "rhs"})
      .SetInferShape(BatchDotInferShape)
      .SetPattern(OpPattern::kGemm)
      .SetReference(BatchDotReference);
  DeclareTransposeFlags(batch_dot);

  OpRegistry::Global()
      .Register("FullyConnected")
      .Describe("data . weight^T + bias, with weight (num_hidden, in_features)")
      .Attr("num_hidden", AttrType::kInt, std::nullopt, "number of output features")
      .Range(1)
      .Attr("no_bias", AttrType::kBool, AttrValue{false}, "leave out the bias input")
      .Attr("flatten", AttrType::kBool, AttrValue{true},
            "flatten all axes but the first; otherwise apply to the last axis")
      .Inputs([](const Attrs& attrs) {
        return attrs.Bool("no_bias") ? std::vector<std::string>{"data", "weight"}
                                     : std::vector<std::string>{"data", "weight", "bias"};
      })
      .SetInferShape(FcInferShape)
      .SetPattern(OpPattern::kGemm)
      .SetReference(FcReference);
  return true;
}();

}  // namespace
}  // namespace kiln
