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
#include "runtime/tensor.h"
#include "graph/attrs.h"

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
  kir::KernelBuilder* builder = nullptr;
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

kir::ScalarType ToScalarType(DType dtype);

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
  bool has_lowering() const { return lower_ || scalar_compute_; }
  bool RandomAtInference(const Attrs& attrs) const { return random_at_inference_ && random_at_inference_(attrs); }

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
  // Gradients arrive with training: they will be registered here, next to the forward
  // definition, as a function from the forward node and its output gradients to input
  // gradients.
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
