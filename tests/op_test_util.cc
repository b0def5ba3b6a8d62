#include "tests/op_test_util.h"

#include <cmath>

#include "runtime/error.h"

namespace kiln::testing {
namespace {
std::map<std::string, AttrValue> ToValues(const AttrMap& attrs) {
  std::map<std::string, AttrValue> values;
  for (const auto& [key, arg] : attrs) values[key] = arg.value;
  return values;
}
}  // namespace

std::vector<Tensor> RunOp(const std::string& op_name, const std::vector<Tensor>& inputs, const AttrMap& attr_map,
                          bool is_train, uint64_t seed) {
  const OpDef& op = OpRegistry::Global().Get(op_name);
  const Attrs attrs = op.ParseAttrs(ToValues(attr_map), "test");
  if (inputs.size() != op.NumInputs(attrs)) {
    throw Error(op_name + ": expected " + std::to_string(op.NumInputs(attrs)) + " inputs, given " +
                std::to_string(inputs.size()));
  }
  std::vector<ShapeSlot> in_shapes;
  std::vector<DTypeSlot> in_types;
  for (const auto& t : inputs) {
    in_shapes.emplace_back(t.shape());
    in_types.emplace_back(t.dtype());
  }
  std::vector<ShapeSlot> out_shapes(op.NumOutputs(attrs));
  std::vector<DTypeSlot> out_types(op.NumOutputs(attrs));
  op.InferShape(attrs, in_shapes, out_shapes);
  op.InferType(attrs, in_types, out_types);
  std::vector<Tensor> outputs;
  for (size_t i = 0; i < out_shapes.size(); ++i) {
    if (!out_shapes[i] || !out_types[i]) throw Error(op_name + ": output " + std::to_string(i) + " not inferred");
    outputs.emplace_back(*out_shapes[i], *out_types[i]);
  }
  RefContext ctx;
  ctx.is_train = is_train;
  ctx.seed = seed;
  op.RunReference(attrs, inputs, outputs, ctx);
  return outputs;
}

std::vector<Shape> InferOpShapes(const std::string& op_name, const std::vector<Shape>& inputs,
                                 const AttrMap& attr_map) {
  const OpDef& op = OpRegistry::Global().Get(op_name);
  const Attrs attrs = op.ParseAttrs(ToValues(attr_map), "test");
  std::vector<ShapeSlot> in_shapes(inputs.begin(), inputs.end());
  in_shapes.resize(op.NumInputs(attrs));
  std::vector<ShapeSlot> out_shapes(op.NumOutputs(attrs));
  op.InferShape(attrs, in_shapes, out_shapes);
  std::vector<Shape> result;
  for (size_t i = 0; i < out_shapes.size(); ++i) {
    if (!out_shapes[i]) throw Error(op_name + ": output " + std::to_string(i) + " not inferred");
    result.push_back(*out_shapes[i]);
  }
  return result;
}

Attrs ParseAttrs(const std::string& op, const AttrMap& attrs) {
  return OpRegistry::Global().Get(op).ParseAttrs(ToValues(attrs), "test");
}

std::vector<ShapeSlot> InferShapeSlots(const std::string& op, std::vector<ShapeSlot> inputs, const AttrMap& attrs,
                                       std::vector<ShapeSlot> outputs) {
  const OpDef& def = OpRegistry::Global().Get(op);
  const Attrs parsed = ParseAttrs(op, attrs);
  outputs.resize(def.NumOutputs(parsed));
  def.InferShape(parsed, inputs, outputs);
  inputs.insert(inputs.end(), outputs.begin(), outputs.end());
  return inputs;
}

std::vector<DTypeSlot> InferTypeSlots(const std::string& op, std::vector<DTypeSlot> inputs, const AttrMap& attrs) {
  const OpDef& def = OpRegistry::Global().Get(op);
  const Attrs parsed = ParseAttrs(op, attrs);
  std::vector<DTypeSlot> outputs(def.NumOutputs(parsed));
  def.InferType(parsed, inputs, outputs);
  inputs.insert(inputs.end(), outputs.begin(), outputs.end());
  return inputs;
}

Tensor RandomTensor(const Shape& shape, uint64_t seed, double low, double high, DType dtype) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> dist(low, high);
  Tensor tensor(shape, dtype);
  for (int64_t i = 0; i < tensor.size(); ++i) tensor.SetDouble(i, dist(rng));
  return tensor;
}

Tensor RandomOfDType(const Shape& shape, DType dtype, uint64_t seed, double float_low, double float_high) {
  switch (dtype) {
    case DType::kInt8: return RandomTensor(shape, seed, -128, 128, dtype);
    case DType::kUInt8: return RandomTensor(shape, seed, 0, 256, dtype);
    case DType::kInt16: return RandomTensor(shape, seed, -32768, 32768, dtype);
    case DType::kUInt16: return RandomTensor(shape, seed, 0, 65536, dtype);
    case DType::kInt32: return RandomTensor(shape, seed, -2e9, 2e9, dtype);
    case DType::kUInt32: return RandomTensor(shape, seed, 0, 4e9, dtype);
    case DType::kInt64: return RandomTensor(shape, seed, -9e18, 9e18, dtype);
    case DType::kUInt64: return RandomTensor(shape, seed, 0, 1.8e19, dtype);
    case DType::kBool: return RandomTensor(shape, seed, 0, 2, dtype);
    default: return RandomTensor(shape, seed, float_low, float_high, dtype);
  }
}

Tensor Arange(const Shape& shape, DType dtype) {
  Tensor tensor(shape, dtype);
  for (int64_t i = 0; i < tensor.size(); ++i) tensor.SetDouble(i, static_cast<double>(i));
  return tensor;
}

Tensor Values(const Shape& shape, const std::vector<double>& values, DType dtype) {
  return Tensor::FromDoubles(shape, values, dtype);
}

bool AllClose(const Tensor& actual, const Tensor& expected, double rtol, double atol, std::string* message) {
  const auto say = [&](const std::string& text) {
    if (message) *message = text;
    return false;
  };
  if (actual.shape() != expected.shape()) {
    return say("shape " + ShapeToString(actual.shape()) + " != expected " + ShapeToString(expected.shape()));
  }
  for (int64_t i = 0; i < actual.size(); ++i) {
    const double a = actual.GetDouble(i);
    const double e = expected.GetDouble(i);
    if (std::isnan(a) && std::isnan(e)) continue;
    if (std::isinf(e) && a == e) continue;
    if (!(std::fabs(a - e) <= atol + rtol * std::fabs(e))) {
      return say("element " + std::to_string(i) + ": " + std::to_string(a) + " != expected " + std::to_string(e) +
                 " (rtol " + std::to_string(rtol) + ", atol " + std::to_string(atol) + ")");
    }
  }
  return true;
}

std::string ErrorOf(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "no error";
}

}  // namespace kiln::testing
