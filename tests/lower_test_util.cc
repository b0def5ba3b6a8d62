#include "tests/lower_test_util.h"

#include <catch2/catch.hpp>

#include "codegen/kir_interpreter.h"
#include "graph/op.h"
#include "runtime/error.h"
#include "tests/op_test_util.h"

namespace kiln::testing {
namespace {

void NaiveSgemm(int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda, int32_t transpose_a,
                const float* b, int64_t ldb, int32_t transpose_b, float beta, float* c, int64_t ldc) {
  for (int64_t i = 0; i < m; ++i) {
    for (int64_t j = 0; j < n; ++j) {
      double sum = 0;
      for (int64_t p = 0; p < k; ++p) {
        const double av = transpose_a ? a[p * lda + i] : a[i * lda + p];
        // transpose_b 2: kiln::PackGemmB's panels of 32 columns.
        const double bv = transpose_b == 2 ? b[j / 32 * 32 * k + p * 32 + j % 32]
                          : transpose_b    ? b[j * ldb + p]
                                           : b[p * ldb + j];
        sum += av * bv;
      }
      const double prior = beta == 0.0f ? 0.0 : static_cast<double>(beta) * c[i * ldc + j];
      c[i * ldc + j] = static_cast<float>(alpha * sum + prior);
    }
  }
}

// sconv and sconv_t from their definition: C[i][q] (or C^T[q][i]) = sum over the taps p
// of filter i's value at p, `filter(i, p)`, times the im2col element, read from x where it
// falls inside.
template <class Filter>
void NaiveConvProduct(int64_t m, int64_t col0, int64_t cols, const Filter& filter, const float* x, int64_t channels,
                      int64_t height, int64_t width, int64_t kernel_h, int64_t kernel_w, int64_t stride_h,
                      int64_t stride_w, int64_t dilate_h, int64_t dilate_w, int64_t pad_h, int64_t pad_w, int64_t out_w,
                      float* c, int64_t ldc, bool transposed) {
  const int64_t k = channels * kernel_h * kernel_w;
  for (int64_t i = 0; i < m; ++i) {
    for (int64_t q = 0; q < cols; ++q) {
      const int64_t oh = (col0 + q) / out_w, ow = (col0 + q) % out_w;
      double sum = 0;
      for (int64_t p = 0; p < k; ++p) {
        const int64_t ch = p / (kernel_h * kernel_w);
        const int64_t ih = oh * stride_h - pad_h + p / kernel_w % kernel_h * dilate_h;
        const int64_t iw = ow * stride_w - pad_w + p % kernel_w * dilate_w;
        if (ih < 0 || ih >= height || iw < 0 || iw >= width) continue;
        sum += double(filter(i, p)) * x[(ch * height + ih) * width + iw];
      }
      (transposed ? c[q * ldc + i] : c[i * ldc + q]) = static_cast<float>(sum);
    }
  }
}

// A row-major, or in kiln::PackFilters' panels of 12 rows (lda 0).
void NaiveSconv(int64_t m, int64_t col0, int64_t cols, const float* a, int64_t lda, const float* x, int64_t channels,
                int64_t height, int64_t width, int64_t kernel_h, int64_t kernel_w, int64_t stride_h, int64_t stride_w,
                int64_t dilate_h, int64_t dilate_w, int64_t pad_h, int64_t pad_w, int64_t out_w, float* c,
                int64_t ldc) {
  const int64_t k = channels * kernel_h * kernel_w;
  const auto filter = [&](int64_t i, int64_t p) {
    return lda == 0 ? a[i / 12 * 12 * k + p * 12 + i % 12] : a[i * lda + p];
  };
  NaiveConvProduct(m, col0, cols, filter, x, channels, height, width, kernel_h, kernel_w, stride_h, stride_w, dilate_h,
                   dilate_w, pad_h, pad_w, out_w, c, ldc, false);
}

// C^T, W^T in kiln::PackGemmB's 32-column panels.
void NaiveSconvT(int64_t m, int64_t col0, int64_t cols, const float* a, int64_t, const float* x, int64_t channels,
                 int64_t height, int64_t width, int64_t kernel_h, int64_t kernel_w, int64_t stride_h, int64_t stride_w,
                 int64_t dilate_h, int64_t dilate_w, int64_t pad_h, int64_t pad_w, int64_t out_w, float* c,
                 int64_t ldc) {
  const int64_t k = channels * kernel_h * kernel_w;
  const auto filter = [&](int64_t f, int64_t p) { return a[f / 32 * 32 * k + p * 32 + f % 32]; };
  NaiveConvProduct(m, col0, cols, filter, x, channels, height, width, kernel_h, kernel_w, stride_h, stride_w, dilate_h,
                   dilate_w, pad_h, pad_w, out_w, c, ldc, true);
}

const KilnRuntimeApi kTestApi = {kKernelAbiVersion, NaiveSgemm, NaiveSconv, NaiveSconvT};

NodeSignature SignatureFor(const OpDef& op, const Attrs& attrs, const std::vector<Tensor>& inputs) {
  NodeSignature signature;
  std::vector<ShapeSlot> in_shapes;
  std::vector<DTypeSlot> in_types;
  for (const auto& t : inputs) {
    in_shapes.emplace_back(t.shape());
    in_types.emplace_back(t.dtype());
    signature.input_shapes.push_back(t.shape());
    signature.input_types.push_back(t.dtype());
  }
  std::vector<ShapeSlot> out_shapes(op.NumOutputs(attrs));
  std::vector<DTypeSlot> out_types(op.NumOutputs(attrs));
  op.InferShape(attrs, in_shapes, out_shapes);
  op.InferType(attrs, in_types, out_types);
  for (size_t i = 0; i < out_shapes.size(); ++i) {
    if (!out_shapes[i] || !out_types[i]) throw Error(op.name() + ": output " + std::to_string(i) + " not inferred");
    signature.output_shapes.push_back(*out_shapes[i]);
    signature.output_types.push_back(*out_types[i]);
  }
  return signature;
}

}  // namespace

const KilnRuntimeApi* TestRuntimeApi() {
  return &kTestApi;
}

KernelRunner InterpreterRunner() {
  return [](const kir::Kernel& kernel, const std::vector<void*>& buffers) {
    const int64_t extent = kernel.parallel_extent;
    // Three uneven tasks (or fewer when the extent is small).
    const int64_t cut1 = extent / 3;
    const int64_t cut2 = extent - extent / 5;
    InterpretKernel(kernel, buffers, 0, cut1, TestRuntimeApi());
    InterpretKernel(kernel, buffers, cut1, cut2, TestRuntimeApi());
    InterpretKernel(kernel, buffers, cut2, extent, TestRuntimeApi());
  };
}

kir::Kernel LowerOpForInputs(const std::string& op_name, const std::vector<Tensor>& inputs, const AttrMap& attrs,
                             bool is_train, uint64_t seed, const std::vector<size_t>& constants,
                             ConstantArgs* replaced) {
  const OpDef& op = OpRegistry::Global().Get(op_name);
  const Attrs parsed = ParseAttrs(op_name, attrs);
  NodeSignature signature = SignatureFor(op, parsed, inputs);
  ConstantArgs unused;
  if (!constants.empty()) {
    signature.constant_inputs.assign(inputs.size(), nullptr);
    for (const size_t i : constants) signature.constant_inputs.at(i) = &inputs[i];
  }
  return LowerNode(op, parsed, signature, op_name, is_train, seed, nullptr, replaced != nullptr ? replaced : &unused);
}

std::vector<Tensor> RunLowered(const std::string& op_name, const std::vector<Tensor>& inputs, const AttrMap& attrs,
                               const KernelRunner& runner, bool is_train, uint64_t seed,
                               const std::vector<size_t>& constants) {
  const OpDef& op = OpRegistry::Global().Get(op_name);
  const Attrs parsed = ParseAttrs(op_name, attrs);
  const NodeSignature signature = SignatureFor(op, parsed, inputs);
  ConstantArgs replaced;
  const kir::Kernel kernel = LowerOpForInputs(op_name, inputs, attrs, is_train, seed, constants, &replaced);
  // Inputs are copied so that kernels updating auxiliary states in place act on the
  // caller's tensors, as the reference does (Tensor copies share buffers).
  std::vector<Tensor> outputs;
  for (size_t i = 0; i < signature.output_shapes.size(); ++i) {
    outputs.emplace_back(signature.output_shapes[i], signature.output_types[i]);
  }
  std::vector<Tensor> scratch;
  std::vector<void*> buffers;
  for (const auto& t : inputs) buffers.push_back(const_cast<void*>(t.data()));
  for (auto& t : outputs) buffers.push_back(t.data());
  for (auto& [arg, constant] : replaced) buffers.at(static_cast<size_t>(arg)) = constant.second.data();
  for (size_t k = buffers.size(); k < kernel.args.size(); ++k) {
    // Scratch: filled with a pattern so that a kernel reading it before writing shows.
    Tensor t({kernel.args[k]->size * kir::ScalarTypeBytes(kernel.args[k]->type)}, DType::kUInt8);
    for (int64_t b = 0; b < t.size(); ++b) t.data_as<uint8_t>()[b] = 0xA5;
    scratch.push_back(t);
    buffers.push_back(scratch.back().data());
  }
  runner(kernel, buffers);
  return outputs;
}

kir::Kernel CheckLoweredBitwise(const std::string& op, const std::vector<Tensor>& inputs, const AttrMap& attrs) {
  const std::vector<Tensor> expected = RunOp(op, inputs, attrs);
  const std::vector<Tensor> actual = RunLowered(op, inputs, attrs);
  REQUIRE(actual.size() == expected.size());
  for (size_t k = 0; k < actual.size(); ++k) {
    INFO("output " << k << ": " << ShapeToString(actual[k].shape()) << " expected "
                   << ShapeToString(expected[k].shape()));
    KILN_CHECK_CLOSE(actual[k], expected[k], 0, 0);
    CHECK(actual[k].BitwiseEquals(expected[k]));
  }
  return LowerOpForInputs(op, inputs, attrs);
}

}  // namespace kiln::testing
