#include "graph/op.h"

#include <algorithm>

#include "runtime/error.h"

namespace kiln {

std::string_view OpPatternName(OpPattern pattern) {
  switch (pattern) {
    case OpPattern::kElementwise: return "elementwise";
    case OpPattern::kBroadcast: return "broadcast";
    case OpPattern::kInjective: return "injective";
    case OpPattern::kReduction: return "reduction";
    case OpPattern::kGemm: return "gemm";
    case OpPattern::kOpaque: return "opaque";
  }
  return "unknown";
}

OpDef& OpDef::SetScalarComputeMulti(MultiScalarFn fn) {
  scalar_compute_multi_ = std::move(fn);
  return *this;
}

OpDef& OpDef::SetView() {
  is_view_ = true;
  return *this;
}

OpDef& OpDef::SetPatternFn(PatternFn fn) {
  pattern_fn_ = std::move(fn);
  return *this;
}

OpDef& OpDef::SetIdentityWhen(IdentityFn fn) {
  identity_when_ = std::move(fn);
  return *this;
}

OpDef& OpDef::SetPermutation(PermutationFn fn, std::string attr) {
  permutation_ = std::move(fn);
  permutation_attr_ = std::move(attr);
  return *this;
}

OpDef& OpDef::SetMutatedInputs(MutatedInputsFn fn) {
  mutated_inputs_ = std::move(fn);
  return *this;
}

OpDef& OpDef::SetIndexMap(IndexMapFn fn) {
  index_map_ = std::move(fn);
  return *this;
}

OpDef& OpDef::SetInferenceAffine(AffineFn fn) {
  inference_affine_ = std::move(fn);
  return *this;
}

OpDef& OpDef::SetChannelScaling(ChannelScaling scaling) {
  channel_scaling_ = std::move(scaling);
  return *this;
}

OpDef& OpDef::SetTransposeFlags(TransposeFlags flags) {
  transpose_flags_ = std::move(flags);
  return *this;
}

OpDef& OpDef::SetAcceptsEpilogue() {
  accepts_epilogue_ = true;
  return *this;
}

OpDef& OpDef::SetScalarForm(std::string op) {
  scalar_form_ = std::move(op);
  return *this;
}

OpDef& OpDef::SetAcceptsPrologue() {
  accepts_prologue_ = true;
  return *this;
}

OpDef& OpDef::SetGradient(GradientFn fn) {
  gradient_ = std::move(fn);
  return *this;
}

OpDef& OpDef::SetAlter(AlterFn fn) {
  alter_ = std::move(fn);
  return *this;
}

std::optional<std::vector<int64_t>> OpDef::Permutation(const Attrs& attrs, size_t ndim) const {
  if (!permutation_) return std::nullopt;
  return permutation_(attrs, ndim);
}

std::vector<int> OpDef::MutatedInputs(const Attrs& attrs, bool is_train) const {
  return mutated_inputs_ ? mutated_inputs_(attrs, is_train) : std::vector<int>{};
}

std::optional<ChannelAffine> OpDef::InferenceAffine(const Attrs& attrs, std::span<const Tensor* const> params,
                                                    const Shape& data_shape, bool is_train) const {
  if (!inference_affine_) return std::nullopt;
  return inference_affine_(attrs, params, data_shape, is_train);
}

OpDef& OpDef::Describe(std::string text) {
  description_ = std::move(text);
  return *this;
}

OpDef& OpDef::Attr(std::string name, AttrType type, std::optional<AttrValue> default_value, std::string doc) {
  AttrField field;
  field.name = std::move(name);
  field.type = type;
  field.default_value = std::move(default_value);
  field.nullable = field.default_value && std::holds_alternative<std::monostate>(*field.default_value);
  field.doc = std::move(doc);
  fields_.push_back(std::move(field));
  return *this;
}

OpDef& OpDef::Nullable() {
  fields_.back().nullable = true;
  return *this;
}

OpDef& OpDef::Choices(std::vector<std::string> choices) {
  fields_.back().choices = std::move(choices);
  return *this;
}

OpDef& OpDef::Range(std::optional<double> min, std::optional<double> max) {
  fields_.back().min = min;
  fields_.back().max = max;
  return *this;
}

OpDef& OpDef::Inputs(std::vector<std::string> names) {
  input_names_ = [names = std::move(names)](const Attrs&) { return names; };
  return *this;
}

OpDef& OpDef::Inputs(NamesFn names) {
  input_names_ = std::move(names);
  return *this;
}

OpDef& OpDef::AuxInputs(std::vector<int> indices) {
  aux_inputs_ = std::move(indices);
  return *this;
}

OpDef& OpDef::LabelInputs(std::vector<int> indices) {
  label_inputs_ = std::move(indices);
  return *this;
}

OpDef& OpDef::Outputs(std::vector<std::string> names) {
  output_names_ = [names = std::move(names)](const Attrs&) { return names; };
  return *this;
}

OpDef& OpDef::Outputs(NamesFn names) {
  output_names_ = std::move(names);
  return *this;
}

OpDef& OpDef::SetInferShape(InferShapeFn fn) {
  infer_shape_ = std::move(fn);
  return *this;
}

OpDef& OpDef::SetInferType(InferTypeFn fn) {
  infer_type_ = std::move(fn);
  return *this;
}

OpDef& OpDef::SetInplace(InplaceFn fn) {
  inplace_ = std::move(fn);
  return *this;
}

OpDef& OpDef::SetPattern(OpPattern pattern) {
  pattern_ = pattern;
  return *this;
}

OpDef& OpDef::SetReference(ReferenceFn fn) {
  reference_ = std::move(fn);
  return *this;
}

OpDef& OpDef::SetLower(LowerFn fn) {
  lower_ = std::move(fn);
  return *this;
}

OpDef& OpDef::SetScalarCompute(ScalarFn fn) {
  scalar_compute_ = std::move(fn);
  return *this;
}

kir::ScalarType ToScalarType(DType dtype) {
  switch (dtype) {
    case DType::kFloat32: return kir::ScalarType::kFloat32;
    case DType::kFloat64: return kir::ScalarType::kFloat64;
    case DType::kFloat16: return kir::ScalarType::kFloat16;
    case DType::kUInt8: return kir::ScalarType::kUInt8;
    case DType::kInt32: return kir::ScalarType::kInt32;
    case DType::kInt8: return kir::ScalarType::kInt8;
    case DType::kInt64: return kir::ScalarType::kInt64;
    case DType::kBool: return kir::ScalarType::kBool;
    case DType::kInt16: return kir::ScalarType::kInt16;
    case DType::kUInt16: return kir::ScalarType::kUInt16;
    case DType::kUInt32: return kir::ScalarType::kUInt32;
    case DType::kUInt64: return kir::ScalarType::kUInt64;
    case DType::kBFloat16: return kir::ScalarType::kBFloat16;
  }
  throw Error("invalid dtype");
}

OpDef& OpDef::SetValidate(ValidateFn fn) {
  validate_ = std::move(fn);
  return *this;
}

OpDef& OpDef::Alias(std::string alias) {
  aliases_.push_back(std::move(alias));
  return *this;
}

OpDef& OpDef::SetRandomAtInference(std::function<bool(const Attrs&)> fn) {
  random_at_inference_ = std::move(fn);
  return *this;
}

const AttrField* OpDef::FindField(const std::string& name) const {
  for (const auto& field : fields_) {
    if (field.name == name) return &field;
  }
  return nullptr;
}

std::vector<std::string> OpDef::InputNames(const Attrs& attrs) const {
  return input_names_(attrs);
}

std::vector<std::string> OpDef::OutputNames(const Attrs& attrs) const {
  return output_names_(attrs);
}

bool OpDef::IsAuxInput(size_t index, const Attrs&) const {
  return std::find(aux_inputs_.begin(), aux_inputs_.end(), static_cast<int>(index)) != aux_inputs_.end();
}

bool OpDef::IsLabelInput(size_t index) const {
  return std::find(label_inputs_.begin(), label_inputs_.end(), static_cast<int>(index)) != label_inputs_.end();
}

std::vector<std::pair<int, int>> OpDef::InplacePairs(const Attrs& attrs) const {
  return inplace_ ? inplace_(attrs) : std::vector<std::pair<int, int>>{};
}

Attrs OpDef::ParseAttrs(const std::map<std::string, AttrValue>& given, const std::string& node_name) const {
  const std::string where = "operator " + name_ + " (node '" + Abbreviate(node_name, 120) + "')";
  Attrs attrs;
  for (const auto& [key, value] : given) {
    // Names starting with "__" are MXNet's hidden annotations (__shape__, __lr_mult__);
    // they are not operator parameters and are dropped here.
    if (key.rfind("__", 0) == 0) continue;
    const AttrField* field = FindField(key);
    if (field == nullptr) {
      std::string known;
      for (const auto& f : fields_) known += (known.empty() ? "" : ", ") + f.name;
      throw Error(where + ": unknown attribute '" + Abbreviate(key) + "'; known attributes: {" + known + "}");
    }
    try {
      attrs.Set(key, field->Normalize(value), true);
    } catch (const Error& e) {
      throw Error(where + ": " + e.what());
    }
  }
  for (const auto& field : fields_) {
    if (attrs.Has(field.name)) continue;
    if (!field.default_value) {
      throw Error(where + ": required attribute '" + field.name + "' (" + std::string(AttrTypeName(field.type)) +
                  ") is missing");
    }
    attrs.Set(field.name, *field.default_value, false);
  }
  if (validate_) {
    try {
      validate_(attrs);
    } catch (const Error& e) {
      throw Error(where + ": " + e.what());
    }
  }
  return attrs;
}

void OpDef::InferShape(const Attrs& attrs, std::vector<ShapeSlot>& inputs, std::vector<ShapeSlot>& outputs) const {
  if (!infer_shape_) throw Error("operator " + name_ + " has no shape inference");
  infer_shape_(attrs, inputs, outputs);
}

void OpDef::InferType(const Attrs& attrs, std::vector<DTypeSlot>& inputs, std::vector<DTypeSlot>& outputs) const {
  if (infer_type_) {
    infer_type_(attrs, inputs, outputs);
    return;
  }
  // Default: every input and output shares one dtype.
  DTypeSlot known;
  for (const auto& slot : inputs) known = known ? known : slot;
  for (const auto& slot : outputs) known = known ? known : slot;
  if (!known) return;
  const auto unify = [&](std::vector<DTypeSlot>& slots, const std::vector<std::string>& names, const char* kind) {
    for (size_t i = 0; i < slots.size(); ++i) {
      if (slots[i] && *slots[i] != *known) {
        throw Error(std::string(kind) + " '" + (i < names.size() ? names[i] : std::to_string(i)) +
                    "': expected dtype " + std::string(DTypeName(*known)) + ", given " +
                    std::string(DTypeName(*slots[i])));
      }
      slots[i] = known;
    }
  };
  unify(inputs, InputNames(attrs), "input");
  unify(outputs, OutputNames(attrs), "output");
}

void OpDef::RunReference(const Attrs& attrs, std::span<const Tensor> inputs, std::span<Tensor> outputs,
                         const RefContext& ctx) const {
  if (!reference_) throw Error("operator " + name_ + " has no reference implementation");
  reference_(attrs, inputs, outputs, ctx);
}

OpRegistry& OpRegistry::Global() {
  static OpRegistry registry;
  return registry;
}

OpDef& OpRegistry::Register(const std::string& name) {
  auto [it, inserted] = ops_.try_emplace(name, nullptr);
  if (!inserted) throw Error("operator " + name + " registered twice");
  it->second = std::make_unique<OpDef>(name);
  return *it->second;
}

const OpDef* OpRegistry::Find(const std::string& name) const {
  const auto it = ops_.find(name);
  if (it != ops_.end()) return it->second.get();
  // Aliases point at their operator.
  for (const auto& [op_name, op] : ops_) {
    for (const auto& alias : op->aliases()) {
      if (alias == name) return op.get();
    }
  }
  return nullptr;
}

const OpDef& OpRegistry::Get(const std::string& name) const {
  if (const OpDef* op = Find(name)) return *op;
  throw Error("unknown operator '" + Abbreviate(name) + "'");
}

std::vector<const OpDef*> OpRegistry::List() const {
  std::vector<const OpDef*> result;
  for (const auto& [name, op] : ops_) result.push_back(op.get());
  return result;
}

}  // namespace kiln
