#include "serve/protocol.h"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <simdjson.h>

#include <algorithm>
#include <cstring>
#include <limits>
#include <nlohmann/json.hpp>

#include "runtime/error.h"

namespace kiln::serve {

namespace {

using nlohmann::json;

struct DatatypeEntry {
  DType dtype;
  std::string_view name;
};
constexpr DatatypeEntry kDatatypes[] = {
    {DType::kBool, "BOOL"},     {DType::kUInt8, "UINT8"},  {DType::kUInt16, "UINT16"}, {DType::kUInt32, "UINT32"},
    {DType::kUInt64, "UINT64"}, {DType::kInt8, "INT8"},    {DType::kInt16, "INT16"},   {DType::kInt32, "INT32"},
    {DType::kInt64, "INT64"},   {DType::kFloat16, "FP16"}, {DType::kFloat32, "FP32"},  {DType::kFloat64, "FP64"},
    {DType::kBFloat16, "BF16"},
};

std::string ShapeText(const Shape& shape) {
  return fmt::format("[{}]", fmt::join(shape, ", "));
}

std::string Names(const std::vector<TensorSpec>& specs) {
  std::vector<std::string> names;
  for (const TensorSpec& spec : specs) names.push_back(spec.name);
  return fmt::format("{}", fmt::join(names, ", "));
}

ProtocolError BadRequest(const std::string& message) {
  return ProtocolError(400, message);
}

// simdjson's DOM as nlohmann's, numbers as nlohmann's parser types them (non-negative
// integers unsigned).
json ToJson(simdjson::dom::element element) {
  switch (element.type()) {
    case simdjson::dom::element_type::ARRAY: {
      const simdjson::dom::array array = element.get_array().value_unsafe();
      json out = json::array();
      out.get_ref<json::array_t&>().reserve(array.size());
      for (const simdjson::dom::element item : array) out.push_back(ToJson(item));
      return out;
    }
    case simdjson::dom::element_type::OBJECT: {
      // A copy, not a range over the temporary result (whose value_unsafe() is a reference
      // into it: the optimized build read freed memory).
      const simdjson::dom::object object = element.get_object().value_unsafe();
      json out = json::object();
      for (const simdjson::dom::key_value_pair field : object) {
        out[std::string(field.key)] = ToJson(field.value);
      }
      return out;
    }
    case simdjson::dom::element_type::INT64: {
      const int64_t value = element.get_int64().value_unsafe();
      return value >= 0 ? json(static_cast<uint64_t>(value)) : json(value);
    }
    case simdjson::dom::element_type::UINT64: return element.get_uint64().value_unsafe();
    case simdjson::dom::element_type::DOUBLE: return element.get_double().value_unsafe();
    case simdjson::dom::element_type::STRING: return std::string(element.get_string().value_unsafe());
    case simdjson::dom::element_type::BOOL: return element.get_bool().value_unsafe();
    case simdjson::dom::element_type::NULL_VALUE: return nullptr;
  }
  return nullptr;
}

// JSON text as nlohmann's DOM, parsed by simdjson: an image's request holds hundreds of
// thousands of numbers, and nlohmann's own parser took 31 ms for ResNet-18's 150,528.
// Where simdjson refuses (malformed text, integers beyond 64 bits, which nlohmann reads
// as doubles, nesting deeper than 1024) nlohmann's parser decides, as before. Discarded
// when malformed.
json ParseJson(std::string_view text) {
  simdjson::dom::parser parser;
  simdjson::dom::element root;
  if (parser.parse(text.data(), text.size(), true).get(root) == simdjson::SUCCESS) return ToJson(root);
  return json::parse(text, nullptr, false);
}

// A JSON tensor's "data": flat, or nested arrays in row-major order.
void Flatten(const json& data, std::vector<const json*>& out) {
  if (!data.is_array()) {
    out.push_back(&data);
    return;
  }
  for (const json& element : data) Flatten(element, out);
}

template <typename T>
void SetInteger(Tensor& tensor, int64_t index, const json& value, const std::string& where) {
  const auto out_of_range = [&] {
    return BadRequest(fmt::format("{}: element {} is {}, outside {}'s range [{}, {}]", where, index, value.dump(),
                                  DatatypeName(tensor.dtype()), std::numeric_limits<T>::lowest(),
                                  std::numeric_limits<T>::max()));
  };
  if (value.is_number_unsigned()) {
    const uint64_t v = value.get<uint64_t>();
    if (v > static_cast<uint64_t>(std::numeric_limits<T>::max())) throw out_of_range();
    tensor.data_as<T>()[index] = static_cast<T>(v);
  } else if (value.is_number_integer()) {
    const int64_t v = value.get<int64_t>();
    if constexpr (std::is_unsigned_v<T>) {
      if (v < 0) throw out_of_range();
    } else {
      if (v < static_cast<int64_t>(std::numeric_limits<T>::lowest()) ||
          v > static_cast<int64_t>(std::numeric_limits<T>::max())) {
        throw out_of_range();
      }
    }
    tensor.data_as<T>()[index] = static_cast<T>(v);
  } else {
    throw BadRequest(fmt::format("{}: element {} is {}, expected an integer ({})", where, index, value.dump(),
                                 DatatypeName(tensor.dtype())));
  }
}

void SetElement(Tensor& tensor, int64_t index, const json& value, const std::string& where) {
  switch (tensor.dtype()) {
    case DType::kBool:
      if (!value.is_boolean()) {
        throw BadRequest(
            fmt::format("{}: element {} is {}, expected true or false (BOOL)", where, index, value.dump()));
      }
      tensor.data_as<uint8_t>()[index] = value.get<bool>() ? 1 : 0;
      return;
    case DType::kUInt8: return SetInteger<uint8_t>(tensor, index, value, where);
    case DType::kUInt16: return SetInteger<uint16_t>(tensor, index, value, where);
    case DType::kUInt32: return SetInteger<uint32_t>(tensor, index, value, where);
    case DType::kUInt64: return SetInteger<uint64_t>(tensor, index, value, where);
    case DType::kInt8: return SetInteger<int8_t>(tensor, index, value, where);
    case DType::kInt16: return SetInteger<int16_t>(tensor, index, value, where);
    case DType::kInt32: return SetInteger<int32_t>(tensor, index, value, where);
    case DType::kInt64: return SetInteger<int64_t>(tensor, index, value, where);
    case DType::kFloat16:
    case DType::kBFloat16:
    case DType::kFloat32:
    case DType::kFloat64:
      if (!value.is_number()) {
        throw BadRequest(fmt::format("{}: element {} is {}, expected a number ({})", where, index, value.dump(),
                                     DatatypeName(tensor.dtype())));
      }
      tensor.SetDouble(index, value.get<double>());
      return;
  }
}

json ElementJson(const Tensor& tensor, int64_t index) {
  switch (tensor.dtype()) {
    case DType::kBool: return tensor.data_as<uint8_t>()[index] != 0;
    case DType::kUInt64: return tensor.data_as<uint64_t>()[index];
    case DType::kInt64: return tensor.data_as<int64_t>()[index];
    case DType::kUInt8:
    case DType::kUInt16:
    case DType::kUInt32:
    case DType::kInt8:
    case DType::kInt16:
    case DType::kInt32: return static_cast<int64_t>(tensor.GetDouble(index));
    case DType::kFloat16:
    case DType::kBFloat16:
    case DType::kFloat32:
    case DType::kFloat64: return tensor.GetDouble(index);
  }
  return nullptr;
}

const json* Member(const json& object, const char* key) {
  const auto it = object.find(key);
  return it == object.end() ? nullptr : &*it;
}

// A boolean parameter (the protocol's "parameters" objects), default `fallback`.
bool BoolParameter(const json& owner, const char* key, bool fallback, const std::string& where) {
  const json* parameters = Member(owner, "parameters");
  if (parameters == nullptr) return fallback;
  if (!parameters->is_object()) throw BadRequest(where + ": 'parameters' must be an object");
  const json* value = Member(*parameters, key);
  if (value == nullptr) return fallback;
  if (!value->is_boolean()) {
    throw BadRequest(fmt::format("{}: parameter '{}' is {}, expected true or false", where, key, value->dump()));
  }
  return value->get<bool>();
}

json SpecJson(const TensorSpec& spec) {
  return {{"name", spec.name}, {"datatype", DatatypeName(spec.dtype)}, {"shape", spec.shape}};
}

}  // namespace

std::string_view DatatypeName(DType dtype) {
  for (const DatatypeEntry& entry : kDatatypes) {
    if (entry.dtype == dtype) return entry.name;
  }
  return "UNKNOWN";
}

std::optional<DType> ParseDatatype(std::string_view name) {
  for (const DatatypeEntry& entry : kDatatypes) {
    if (entry.name == name) return entry.dtype;
  }
  return std::nullopt;
}

std::string InputLabel(std::string_view name) {
  return "input '" + Abbreviate(name) + "'";
}

std::string OutputLabel(std::string_view name) {
  return "requested output '" + Abbreviate(name) + "'";
}

TensorMatcher::TensorMatcher(const std::vector<TensorSpec>& inputs, const std::vector<TensorSpec>& outputs)
    : inputs_(inputs), outputs_(outputs), inputs_seen_(inputs.size(), false), outputs_seen_(outputs.size(), false) {}

TensorMatcher::MatchedInput TensorMatcher::Input(const std::string& name, const std::string& datatype,
                                                 const Shape& shape) {
  const std::string where = InputLabel(name);
  const auto spec = std::find_if(inputs_.begin(), inputs_.end(), [&](const TensorSpec& s) { return s.name == name; });
  if (spec == inputs_.end()) {
    throw BadRequest(where + ": the model has no such input (its inputs: " + Names(inputs_) + ")");
  }
  const size_t slot = static_cast<size_t>(spec - inputs_.begin());
  if (inputs_seen_[slot]) throw BadRequest(where + " is given twice");
  inputs_seen_[slot] = true;
  if (datatype != DatatypeName(spec->dtype)) {
    throw BadRequest(fmt::format("{}: datatype {}, the model expects {}", where, datatype, DatatypeName(spec->dtype)));
  }
  const bool shape_matches =
      shape.size() == spec->shape.size() &&
      std::equal(shape.begin(), shape.end(), spec->shape.begin(),
                 [](int64_t given, int64_t expected) { return given >= 0 && (expected == -1 || given == expected); });
  if (!shape_matches) {
    throw BadRequest(
        fmt::format("{}: shape {}, the model expects {}", where, ShapeText(shape), ShapeText(spec->shape)));
  }
  try {
    CheckedByteSize(shape, spec->dtype);
  } catch (const Error& e) {
    throw BadRequest(where + ": " + e.what());
  }
  return {slot, Tensor(shape, spec->dtype)};
}

void TensorMatcher::RequireAllInputs() const {
  std::vector<std::string> missing;
  for (size_t i = 0; i < inputs_.size(); ++i) {
    if (!inputs_seen_[i]) missing.push_back(inputs_[i].name);
  }
  if (!missing.empty()) throw BadRequest(fmt::format("missing input(s): {}", fmt::join(missing, ", ")));
}

size_t TensorMatcher::Output(const std::string& name) {
  const std::string where = OutputLabel(name);
  const auto spec = std::find_if(outputs_.begin(), outputs_.end(), [&](const TensorSpec& s) { return s.name == name; });
  if (spec == outputs_.end()) {
    throw BadRequest(where + ": the model has no such output (its outputs: " + Names(outputs_) + ")");
  }
  const size_t index = static_cast<size_t>(spec - outputs_.begin());
  if (outputs_seen_[index]) throw BadRequest(where + " is requested twice");
  outputs_seen_[index] = true;
  return index;
}

InferRequest ParseInferRequest(std::string_view body, std::optional<size_t> header_length,
                               const std::vector<TensorSpec>& inputs, const std::vector<TensorSpec>& outputs) {
  if (header_length && *header_length > body.size()) {
    throw BadRequest(
        fmt::format("Inference-Header-Content-Length is {}, the body has only {} bytes", *header_length, body.size()));
  }
  const std::string_view header = header_length ? body.substr(0, *header_length) : body;
  std::string_view binary = header_length ? body.substr(*header_length) : std::string_view();
  const json request = ParseJson(header);
  if (request.is_discarded()) throw BadRequest("malformed JSON in the request body");
  if (!request.is_object())
    throw BadRequest("the request must be a JSON object, given " + std::string(request.type_name()));

  InferRequest parsed;
  if (const json* id = Member(request, "id")) {
    if (!id->is_string()) throw BadRequest("'id' must be a string, given " + id->dump());
    parsed.id = id->get<std::string>();
  }
  const json* given_inputs = Member(request, "inputs");
  if (given_inputs == nullptr || !given_inputs->is_array()) {
    throw BadRequest("'inputs': expected an array of tensors (the model's inputs: " + Names(inputs) + ")");
  }
  parsed.inputs.resize(inputs.size());
  TensorMatcher matcher(inputs, outputs);
  for (const json& input : *given_inputs) {
    if (!input.is_object()) throw BadRequest("'inputs': every input must be an object, given " + input.dump());
    const json* name = Member(input, "name");
    if (name == nullptr || !name->is_string()) throw BadRequest("an input has no 'name' string");
    const std::string input_name = name->get<std::string>();
    const std::string where = InputLabel(input_name);
    const json* datatype = Member(input, "datatype");
    if (datatype == nullptr || !datatype->is_string()) throw BadRequest(where + ": no 'datatype' string");
    const json* shape_json = Member(input, "shape");
    if (shape_json == nullptr || !shape_json->is_array()) throw BadRequest(where + ": no 'shape' array");
    Shape shape;
    for (const json& dim : *shape_json) {
      if (!dim.is_number_integer() || dim.get<int64_t>() < 0) {
        throw BadRequest(fmt::format("{}: shape {} must hold non-negative integers", where, shape_json->dump()));
      }
      shape.push_back(dim.get<int64_t>());
    }
    auto [slot, tensor] = matcher.Input(input_name, datatype->get<std::string>(), shape);
    const json* data = Member(input, "data");
    const json* parameters = Member(input, "parameters");
    const json* binary_size =
        parameters != nullptr && parameters->is_object() ? Member(*parameters, "binary_data_size") : nullptr;
    if (binary_size != nullptr) {
      if (data != nullptr) throw BadRequest(where + ": both 'data' and binary data given");
      if (!binary_size->is_number_unsigned()) {
        throw BadRequest(where + ": 'binary_data_size' must be a non-negative integer, given " + binary_size->dump());
      }
      const uint64_t size = binary_size->get<uint64_t>();
      if (size != tensor.nbytes()) {
        throw BadRequest(fmt::format("{}: binary_data_size {}, shape {} of {} takes {} bytes", where, size,
                                     ShapeText(shape), DatatypeName(tensor.dtype()), tensor.nbytes()));
      }
      if (binary.size() < size) {
        throw BadRequest(
            fmt::format("{}: {} bytes of binary data expected, only {} left in the body", where, size, binary.size()));
      }
      if (size > 0) std::memcpy(tensor.data(), binary.data(), size);
      binary.remove_prefix(size);
    } else {
      if (data == nullptr) throw BadRequest(where + ": no 'data' and no binary_data_size");
      std::vector<const json*> elements;
      Flatten(*data, elements);
      if (static_cast<int64_t>(elements.size()) != tensor.size()) {
        throw BadRequest(fmt::format("{}: {} elements given, shape {} holds {}", where, elements.size(),
                                     ShapeText(shape), tensor.size()));
      }
      for (int64_t i = 0; i < tensor.size(); ++i) SetElement(tensor, i, *elements[i], where);
    }
    parsed.inputs[slot] = std::move(tensor);
  }
  matcher.RequireAllInputs();
  if (!binary.empty()) {
    throw BadRequest(fmt::format("{} bytes of binary data after the inputs' binary_data_size", binary.size()));
  }

  const bool binary_default = BoolParameter(request, "binary_data_output", false, "the request");
  const json* requested = Member(request, "outputs");
  if (requested == nullptr) {
    for (const TensorSpec& spec : outputs) parsed.outputs.push_back({spec.name, binary_default});
    return parsed;
  }
  if (!requested->is_array()) throw BadRequest("'outputs' must be an array, given " + requested->dump());
  for (const json& output : *requested) {
    const json* name = output.is_object() ? Member(output, "name") : nullptr;
    if (name == nullptr || !name->is_string()) throw BadRequest("a requested output has no 'name' string");
    const std::string output_name = name->get<std::string>();
    matcher.Output(output_name);
    parsed.outputs.push_back(
        {output_name, BoolParameter(output, "binary_data", binary_default, OutputLabel(output_name))});
  }
  return parsed;
}

InferResponse BuildInferResponse(const std::string& model, const std::string& version, const InferRequest& request,
                                 const std::vector<TensorSpec>& specs, const std::vector<Tensor>& outputs) {
  json response = {{"model_name", model}, {"model_version", version}};
  if (!request.id.empty()) response["id"] = request.id;
  json tensors = json::array();
  std::string binary;
  for (const RequestedOutput& requested : request.outputs) {
    const size_t k = static_cast<size_t>(
        std::find_if(specs.begin(), specs.end(), [&](const TensorSpec& s) { return s.name == requested.name; }) -
        specs.begin());
    const Tensor& tensor = outputs.at(k);
    json entry = {{"name", requested.name}, {"datatype", DatatypeName(tensor.dtype())}, {"shape", tensor.shape()}};
    if (requested.binary) {
      entry["parameters"] = {{"binary_data_size", tensor.nbytes()}};
      binary.append(static_cast<const char*>(tensor.data()), tensor.nbytes());
    } else {
      json data = json::array();
      for (int64_t i = 0; i < tensor.size(); ++i) data.push_back(ElementJson(tensor, i));
      entry["data"] = std::move(data);
    }
    tensors.push_back(std::move(entry));
  }
  response["outputs"] = std::move(tensors);
  InferResponse out;
  out.body = response.dump();
  if (std::any_of(request.outputs.begin(), request.outputs.end(), [](const RequestedOutput& o) { return o.binary; })) {
    out.header_length = out.body.size();
    out.body += binary;
  }
  return out;
}

std::string ModelMetadataJson(const std::string& model, const std::vector<std::string>& versions,
                              const std::vector<TensorSpec>& inputs, const std::vector<TensorSpec>& outputs) {
  json in = json::array();
  for (const TensorSpec& spec : inputs) in.push_back(SpecJson(spec));
  json out = json::array();
  for (const TensorSpec& spec : outputs) out.push_back(SpecJson(spec));
  return json{{"name", model}, {"versions", versions}, {"platform", "kiln"}, {"inputs", in}, {"outputs", out}}.dump();
}

std::string ErrorJson(const std::string& message) {
  return json{{"error", message}}.dump();
}

std::vector<TensorSpec> WithVariableBatch(std::vector<TensorSpec> specs) {
  for (TensorSpec& spec : specs) {
    if (!spec.shape.empty()) spec.shape[0] = -1;
  }
  return specs;
}

}  // namespace kiln::serve
