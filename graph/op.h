// The operator registry. Each operator is defined once (one file per family under
// symbol/ops/) with its attributes, inputs and outputs, shape and dtype inference,
// in-place options, fusion pattern and reference implementation. Passes, emitters and
// tools ask the registry; none of them switches on operator names.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "codegen/kir/kir.h"
#include "graph/attrs.h"
#include "runtime/tensor.h"

namespace kiln {

// How an operator may be fused (TVM's OpPatternKind).
enum class OpPattern {
  kElementwise,  // out[i] = f(in[i]), same shapes
  kBroadcast,    // elementwise with broadcasting
  kInjective,    // each output element reads one input element (reshape, transpose, slice)
  kReduction,    // reduces axes
  kGemm,         // matrix products and convolutions: fuse elementwise epilogues
  kOpaque,       // never fused
};
std::string_view OpPatternName(OpPattern pattern);

// A shape or dtype slot during inference: nullopt while unknown.
using ShapeSlot = std::optional<Shape>;
using DTypeSlot = std::optional<DType>;

// Shape inference reads the known slots and fills the unknown ones, forward (outputs
// from inputs) and, where an operator allows, backward (a weight's shape from the data
// shape, as MXNet's infer_shape does). It throws kiln::Error when shapes conflict; the
// pass adds the node's name.
using InferShapeFn =
    std::function<void(const Attrs& attrs, std::vector<ShapeSlot>& inputs, std::vector<ShapeSlot>& outputs)>;
using InferTypeFn =
    std::function<void(const Attrs& attrs, std::vector<DTypeSlot>& inputs, std::vector<DTypeSlot>& outputs)>;

// What a reference implementation may know besides its inputs.
struct RefContext {
  bool is_train = false;
  // Deterministic per node: derived from the run's seed and the node's name.
  uint64_t seed = 0;
};

// The oracle: plain loops, double accumulation. Outputs arrive allocated with their
// inferred shapes and dtypes. Auxiliary inputs (BatchNorm's moving statistics) are
// updated in place in training mode: a Tensor shares its buffer.
using ReferenceFn = std::function<void(const Attrs& attrs, std::span<const Tensor> inputs, std::span<Tensor> outputs,
                                       const RefContext& ctx)>;

// The processor lowerings compile for. The CPU's kernels call kiln's sgemm inside their
// parallel loops, on blocks that fit its caches; on CUDA a product inside a kernel has no
// fast form, so GEMM-like lowerings hand their products to cuBLAS as library steps of
// their own (kir::GemmStep) between kernels.
enum class LowerTarget { kCpu, kCuda };

// What an operator's lowering sees: flat kernel-IR buffers for its inputs and outputs
// with their static shapes and dtypes, and a way to ask for scratch memory.
struct LowerContext {
  std::vector<kir::Buffer> inputs;
  std::vector<kir::Buffer> outputs;
  std::vector<Shape> input_shapes;
  std::vector<Shape> output_shapes;
  std::vector<DType> input_types;
  std::vector<DType> output_types;
  bool is_train = false;
  uint64_t seed = 0;  // per node, as RefContext::seed
  LowerTarget target = LowerTarget::kCpu;
  // Products go to the library as steps (kir::GemmStep) rather than sgemm calls in loops.
  bool LibrarySteps() const { return target == LowerTarget::kCuda; }
  // The least elements worth a parallel loop: on the CPU, what pays for waking its
  // threads; on CUDA any (a loop that is not parallel runs on one GPU thread).
  int64_t MinParallelWork() const { return target == LowerTarget::kCuda ? 1 : int64_t{16384}; }
  kir::KernelBuilder* builder = nullptr;
  // Fused elementwise work after output 0 (operators that declare SetAcceptsEpilogue):
  // the value to store for the element at flat index `index`, given the value the
  // operator computed there (in output 0's compute type). Unset: store the value.
  // Lowerings that know it also give `inner` = index % inner_extent for an extent that
  // is a product of output 0's last dimensions (a GEMM's column): broadcast operands
  // (biases) are then read without dividing the flat index.
  struct EpilogueIndex {
    kir::Expr flat;
    kir::Expr inner;
    int64_t inner_extent = 0;
  };
  std::function<kir::Expr(const kir::Expr& value, const EpilogueIndex& index)> epilogue;
  kir::Expr Epilogue(const kir::Expr& value, const kir::Expr& index, kir::Expr inner = kir::Expr(),
                     int64_t inner_extent = 0) const {
    return epilogue ? epilogue(value, {index, std::move(inner), inner_extent}) : value;
  }
  // Fused elementwise work before input 0 (operators that declare SetAcceptsPrologue):
  // input 0's element at flat index `index`, in input 0's compute type, computed from
  // other buffers instead of loaded. Lowerings read input 0 only through LoadInput0.
  std::function<kir::Expr(const kir::Expr& index)> prologue;
  kir::Expr LoadInput0(const kir::Expr& index, kir::ScalarType type) const {
    return kir::Cast(type, prologue ? prologue(index) : kir::Load(inputs[0], index));
  }
  // Inputs whose values are known at compile time (parameters embedded in the artifact),
  // nullptr for the others; empty when the caller supports no constants.
  std::vector<const Tensor*> constant_inputs;
  const Tensor* ConstantInput(size_t i) const { return i < constant_inputs.size() ? constant_inputs[i] : nullptr; }
  // Makes the kernel read `value`, a constant derived from input i at compile time (e.g.
  // filters packed for a GEMM routine), in input i's place; returns its buffer, which
  // becomes inputs[i]. The artifact stores it instead of the input where nothing else
  // reads that. Set whenever constant_inputs is.
  std::function<kir::Buffer(size_t input, const std::string& suffix, Tensor value)> replace_input;
  // A temporary global buffer for this kernel (planned in the arena, not kept between
  // kernels), e.g. an im2col matrix.
  kir::Buffer Scratch(const std::string& name, kir::ScalarType type, int64_t size) const {
    return builder->AddArg(name, type, size);
  }
};
// Lowers one node to a kernel body. The outermost loop may be kir::LoopKind::kParallel.
using LowerFn = std::function<kir::Stmt(const Attrs& attrs, LowerContext& ctx)>;
// Elementwise and broadcast operators give their scalar computation instead: the output
// element from the input elements (already loaded and converted to `type`, the output's
// computation type). The generic lowering builds the loops and the broadcasting, and
// fusion composes these functions.
using ScalarFn =
    std::function<kir::Expr(const Attrs& attrs, const std::vector<kir::Expr>& inputs, kir::ScalarType type)>;

// Operators with several outputs computed per element (fused optimizer updates) give
// every output element from the input elements at once.
using MultiScalarFn = std::function<std::vector<kir::Expr>(const Attrs& attrs, const std::vector<kir::Expr>& inputs,
                                                           kir::ScalarType type)>;

kir::ScalarType ToScalarType(DType dtype);

// --- facts the graph passes ask for ---

// The pattern with these attributes and mode, where it differs from the declared one
// (Dropout is elementwise at inference).
using PatternFn = std::function<OpPattern(const Attrs& attrs, bool is_train)>;
// Whether output 0 equals input 0 (when their shapes and dtypes agree): identity,
// BlockGrad, Dropout at inference, transpose by the identity permutation, x * 1.
using IdentityFn =
    std::function<bool(const Attrs& attrs, const std::vector<Shape>& input_shapes, DType dtype, bool is_train)>;
// The permutation of a transpose-like operator: output axis i is input axis perm[i].
using PermutationFn = std::function<std::vector<int64_t>(const Attrs& attrs, size_t ndim)>;
// An injective operator's source element: the multi-index into input 0 that output
// element `out_index` copies (transpose permutes it; a view re-divides the flat index).
// Fusion evaluates such operators inside elementwise groups.
using IndexMapFn = std::function<std::vector<kir::Expr>(
    const Attrs& attrs, const Shape& in_shape, const Shape& out_shape, const std::vector<kir::Expr>& out_index)>;
// Inputs an operator writes (BatchNorm's moving statistics in training, optimizer state).
using MutatedInputsFn = std::function<std::vector<int>(const Attrs& attrs, bool is_train)>;

// A per-channel affine map y[.., c, ..] = x[.., c, ..] * scale[c] + shift[c] along
// `axis` of input 0, which an operator computes at inference when its other inputs are
// constants (BatchNorm): passes fold it into a producer or into a scale-and-shift.
struct ChannelAffine {
  int64_t axis = 1;
  std::vector<double> scale;
  std::vector<double> shift;
};
// `params[i]` is the value of input i + 1, or nullptr where it is not a constant.
using AffineFn = std::function<std::optional<ChannelAffine>(const Attrs& attrs, std::span<const Tensor* const> params,
                                                            const Shape& data_shape, bool is_train)>;

// How a GEMM-like operator absorbs a per-channel scale and shift of its output:
// scaling the weight's slices along `weight_axis` scales output channel `output_axis`
// (negative: from the end), and the shift adds to the bias input, which `no_bias_attr`
// switches on where it is absent.
struct ChannelScaling {
  int weight_input = 1;
  int64_t weight_axis = 0;
  int bias_input = 2;
  std::string no_bias_attr = "no_bias";
  int64_t output_axis = 1;
};

// Inputs whose transpose the operator can take as a flag (dot's transpose_a/b) when
// both operands are matrices: (input index, boolean attribute).
using TransposeFlags = std::vector<std::pair<int, std::string>>;

// The gradient: filled by the training issue, registered next to the forward definition.
struct GradientContext;
using GradientFn = std::function<void(GradientContext& context)>;

// An equivalent form an operator is better computed as, decided from its inputs' shapes,
// dtypes and which of them are constants (in the manner of TVM's alter_op_layout): a 3x3
// convolution with run-time filters becomes a filter transform and a Winograd
// convolution. The pass alter_operators asks every node; the function sets the
// replacements of the node's outputs (graph/alter.h) or leaves the node as it is.
struct AlterContext;
using AlterFn = std::function<void(AlterContext& context)>;

using NamesFn = std::function<std::vector<std::string>(const Attrs& attrs)>;
// (input index, output index) pairs whose storage may be shared.
using InplaceFn = std::function<std::vector<std::pair<int, int>>(const Attrs& attrs)>;
// Cross-attribute checks that a single field cannot express.
using ValidateFn = std::function<void(const Attrs& attrs)>;

class OpDef {
 public:
  explicit OpDef(std::string name) : name_(std::move(name)) {}

  // --- declaration (builder style, used by the registration files) ---
  OpDef& Describe(std::string text);
  OpDef& Attr(std::string name, AttrType type, std::optional<AttrValue> default_value, std::string doc = "");
  // Modifiers of the attribute declared last.
  OpDef& Nullable();
  OpDef& Choices(std::vector<std::string> choices);
  OpDef& Range(std::optional<double> min, std::optional<double> max = std::nullopt);

  OpDef& Inputs(std::vector<std::string> names);
  OpDef& Inputs(NamesFn names);
  // Indices of inputs that are auxiliary states (not learned, updated in training).
  OpDef& AuxInputs(std::vector<int> indices);
  // Inputs read only for the gradient (the labels of loss layers): inference runs
  // without them.
  OpDef& LabelInputs(std::vector<int> indices);
  OpDef& Outputs(std::vector<std::string> names);
  OpDef& Outputs(NamesFn names);
  OpDef& SetInferShape(InferShapeFn fn);
  OpDef& SetInferType(InferTypeFn fn);
  OpDef& SetInplace(InplaceFn fn);
  OpDef& SetPattern(OpPattern pattern);
  OpDef& SetReference(ReferenceFn fn);
  OpDef& SetLower(LowerFn fn);
  OpDef& SetScalarCompute(ScalarFn fn);
  OpDef& SetValidate(ValidateFn fn);
  // Another name the operator answers to (SliceChannel for split).
  OpDef& Alias(std::string alias);
  // Whether, with these attributes, inference draws from the random stream (sampling,
  // Dropout's "always" mode): such nodes are never folded into constants.
  OpDef& SetRandomAtInference(std::function<bool(const Attrs&)> fn);
  OpDef& SetScalarComputeMulti(MultiScalarFn fn);
  // Output 0 is input 0's bytes under another shape (Reshape, Flatten, expand_dims,
  // squeeze): no kernel, the output aliases the input's storage.
  OpDef& SetView();
  OpDef& SetPatternFn(PatternFn fn);
  OpDef& SetIdentityWhen(IdentityFn fn);
  // `attr`: the attribute that holds the permutation (passes write merged ones there).
  OpDef& SetPermutation(PermutationFn fn, std::string attr = "axes");
  OpDef& SetMutatedInputs(MutatedInputsFn fn);
  OpDef& SetIndexMap(IndexMapFn fn);
  OpDef& SetInferenceAffine(AffineFn fn);
  OpDef& SetChannelScaling(ChannelScaling scaling);
  OpDef& SetTransposeFlags(TransposeFlags flags);
  // The lowering applies LowerContext::epilogue to every element of output 0 while it is
  // still in cache (GEMM-like operators), so elementwise consumers fuse into it.
  OpDef& SetAcceptsEpilogue();
  // With input 1 a single-element constant, the operator is `op`(input 0, scalar=value)
  // (broadcast_power(x, 2) is _power_scalar(x, 2), which code generation specializes).
  OpDef& SetScalarForm(std::string op);
  // The lowering reads input 0 only through LowerContext::LoadInput0 (reductions), so
  // elementwise producers of input 0 fuse into it.
  OpDef& SetAcceptsPrologue();
  OpDef& SetGradient(GradientFn fn);
  OpDef& SetAlter(AlterFn fn);

  // --- queries ---
  const std::string& name() const { return name_; }
  const std::string& description() const { return description_; }
  const std::vector<AttrField>& attr_fields() const { return fields_; }
  const AttrField* FindField(const std::string& name) const;
  OpPattern pattern() const { return pattern_; }
  const std::vector<std::string>& aliases() const { return aliases_; }

  std::vector<std::string> InputNames(const Attrs& attrs) const;
  std::vector<std::string> OutputNames(const Attrs& attrs) const;
  size_t NumInputs(const Attrs& attrs) const { return InputNames(attrs).size(); }
  size_t NumOutputs(const Attrs& attrs) const { return OutputNames(attrs).size(); }
  bool IsAuxInput(size_t index, const Attrs& attrs) const;
  bool IsLabelInput(size_t index) const;
  std::vector<std::pair<int, int>> InplacePairs(const Attrs& attrs) const;

  // Validates and normalizes given attributes (values or MXNet text); fills defaults.
  // Errors name the operator, the node and the attribute.
  Attrs ParseAttrs(const std::map<std::string, AttrValue>& given, const std::string& node_name) const;

  void InferShape(const Attrs& attrs, std::vector<ShapeSlot>& inputs, std::vector<ShapeSlot>& outputs) const;
  void InferType(const Attrs& attrs, std::vector<DTypeSlot>& inputs, std::vector<DTypeSlot>& outputs) const;
  void RunReference(const Attrs& attrs, std::span<const Tensor> inputs, std::span<Tensor> outputs,
                    const RefContext& ctx) const;
  bool has_reference() const { return static_cast<bool>(reference_); }
  // Lowering: a LowerFn, or a ScalarFn for elementwise/broadcast operators.
  const LowerFn& lower() const { return lower_; }
  const ScalarFn& scalar_compute() const { return scalar_compute_; }
  bool has_lowering() const { return lower_ || scalar_compute_ || scalar_compute_multi_ || is_view_; }
  bool RandomAtInference(const Attrs& attrs) const { return random_at_inference_ && random_at_inference_(attrs); }
  const MultiScalarFn& scalar_compute_multi() const { return scalar_compute_multi_; }
  // Elementwise and broadcast operators with a scalar function: fusion composes them.
  bool has_scalar_compute() const { return static_cast<bool>(scalar_compute_) || scalar_compute_multi_; }

  bool is_view() const { return is_view_; }
  OpPattern PatternFor(const Attrs& attrs, bool is_train) const {
    return pattern_fn_ ? pattern_fn_(attrs, is_train) : pattern_;
  }
  bool IsIdentity(const Attrs& attrs, const std::vector<Shape>& input_shapes, DType dtype, bool is_train) const {
    return identity_when_ && identity_when_(attrs, input_shapes, dtype, is_train);
  }
  std::optional<std::vector<int64_t>> Permutation(const Attrs& attrs, size_t ndim) const;
  const std::string& permutation_attr() const { return permutation_attr_; }
  std::vector<int> MutatedInputs(const Attrs& attrs, bool is_train) const;
  const IndexMapFn& index_map() const { return index_map_; }
  std::optional<ChannelAffine> InferenceAffine(const Attrs& attrs, std::span<const Tensor* const> params,
                                               const Shape& data_shape, bool is_train) const;
  const std::optional<ChannelScaling>& channel_scaling() const { return channel_scaling_; }
  const TransposeFlags& transpose_flags() const { return transpose_flags_; }
  bool accepts_epilogue() const { return accepts_epilogue_; }
  const std::string& scalar_form() const { return scalar_form_; }
  bool accepts_prologue() const { return accepts_prologue_; }
  const GradientFn& gradient() const { return gradient_; }
  const AlterFn& alter() const { return alter_; }

 private:
  std::string name_;
  std::string description_;
  std::vector<AttrField> fields_;
  NamesFn input_names_ = [](const Attrs&) { return std::vector<std::string>{"data"}; };
  NamesFn output_names_ = [](const Attrs&) { return std::vector<std::string>{"output"}; };
  std::vector<int> aux_inputs_;
  std::vector<int> label_inputs_;
  InferShapeFn infer_shape_;
  InferTypeFn infer_type_;
  InplaceFn inplace_;
  OpPattern pattern_ = OpPattern::kOpaque;
  ReferenceFn reference_;
  LowerFn lower_;
  ScalarFn scalar_compute_;
  ValidateFn validate_;
  std::vector<std::string> aliases_;
  std::function<bool(const Attrs&)> random_at_inference_;
  MultiScalarFn scalar_compute_multi_;
  bool is_view_ = false;
  PatternFn pattern_fn_;
  IdentityFn identity_when_;
  PermutationFn permutation_;
  std::string permutation_attr_;
  MutatedInputsFn mutated_inputs_;
  IndexMapFn index_map_;
  AffineFn inference_affine_;
  std::optional<ChannelScaling> channel_scaling_;
  TransposeFlags transpose_flags_;
  bool accepts_epilogue_ = false;
  std::string scalar_form_;
  bool accepts_prologue_ = false;
  GradientFn gradient_;
  AlterFn alter_;
};

class OpRegistry {
 public:
  static OpRegistry& Global();

  OpDef& Register(const std::string& name);
  // nullptr when unknown.
  const OpDef* Find(const std::string& name) const;
  // Throws kiln::Error naming the unknown operator (and a close match where one exists).
  const OpDef& Get(const std::string& name) const;
  // Sorted by name, aliases excluded.
  std::vector<const OpDef*> List() const;

 private:
  std::map<std::string, std::unique_ptr<OpDef>> ops_;
};

}  // namespace kiln

#define KILN_OP_CONCAT_INNER(a, b) a##b
#define KILN_OP_CONCAT(a, b) KILN_OP_CONCAT_INNER(a, b)
// Registers an operator at static initialization: KILN_REGISTER_OP("relu").Describe(...)...;
#define KILN_REGISTER_OP(name)                                                              \
  [[maybe_unused]] static ::kiln::OpDef& KILN_OP_CONCAT(kiln_registered_op_, __COUNTER__) = \
      ::kiln::OpRegistry::Global().Register(name)
