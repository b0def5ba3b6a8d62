// Typed operator attributes. An operator declares its attributes once (name, type,
// default, allowed values); every attribute a node carries is validated and normalized
// against that declaration, so reference implementations and code generators read
// typed values, never strings. MXNet's string spellings ("(2, 2)", "True", "None") are
// accepted wherever an attribute is given as text.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "runtime/dtype.h"

namespace kiln {

// std::monostate is MXNet's None (an unset optional attribute).
using AttrValue = std::variant<std::monostate, bool, int64_t, double, std::string,
                               std::vector<int64_t>, std::vector<double>>;

enum class AttrType { kBool, kInt, kFloat, kString, kInts, kFloats, kDType };

std::string_view AttrTypeName(AttrType type);

// MXNet's text spelling of a value: True, 3, 0.5, (2, 2), None.
std::string FormatAttrValue(const AttrValue& value);

// A user-facing constructor for attribute values, so that calls read
// {{"kernel", {3, 3}}, {"num_filter", 64}, {"no_bias", true}}.
struct AttrArg {
  AttrValue value;
  AttrArg(bool v) : value(v) {}                                       // NOLINT
  AttrArg(int v) : value(int64_t{v}) {}                               // NOLINT
  AttrArg(int64_t v) : value(v) {}                                    // NOLINT
  AttrArg(double v) : value(v) {}                                     // NOLINT
  AttrArg(float v) : value(static_cast<double>(v)) {}                 // NOLINT
  AttrArg(const char* v) : value(std::string(v)) {}                   // NOLINT
  AttrArg(std::string v) : value(std::move(v)) {}                     // NOLINT
  AttrArg(std::initializer_list<int64_t> v) : value(std::vector<int64_t>(v)) {}  // NOLINT
  AttrArg(std::vector<int64_t> v) : value(std::move(v)) {}            // NOLINT
  AttrArg(std::vector<double> v) : value(std::move(v)) {}             // NOLINT
  AttrArg(DType v) : value(std::string(DTypeName(v))) {}              // NOLINT
  AttrArg(std::monostate) : value(std::monostate{}) {}                // NOLINT
};
using AttrMap = std::vector<std::pair<std::string, AttrArg>>;

// One declared attribute of an operator.
struct AttrField {
  std::string name;
  AttrType type = AttrType::kInt;
  std::optional<AttrValue> default_value;  // nullopt: required
  bool nullable = false;                   // accepts None
  std::vector<std::string> choices;        // for enumerated strings
  std::optional<double> min;               // for numbers and every element of a tuple
  std::optional<double> max;
  std::string doc;

  // Converts `given` (any AttrValue, or text in MXNet's spelling) to this field's type
  // and checks its range; throws kiln::Error saying what was expected and given.
  AttrValue Normalize(const AttrValue& given) const;
};

// The attributes of one node: every declared field has a value (given or default).
class Attrs {
 public:
  Attrs() = default;

  bool Has(std::string_view name) const { return values_.count(std::string(name)) != 0; }
  bool IsNone(std::string_view name) const;
  bool Bool(std::string_view name) const;
  int64_t Int(std::string_view name) const;
  double Float(std::string_view name) const;
  const std::string& Str(std::string_view name) const;
  const std::vector<int64_t>& Ints(std::string_view name) const;
  const std::vector<double>& Floats(std::string_view name) const;
  DType GetDType(std::string_view name) const;
  std::optional<int64_t> OptInt(std::string_view name) const;
  std::optional<std::vector<int64_t>> OptInts(std::string_view name) const;
  const AttrValue& Get(std::string_view name) const;

  void Set(std::string name, AttrValue value, bool explicitly_given);
  const std::map<std::string, AttrValue>& values() const { return values_; }
  // The attributes the user gave (serialized); the others are defaults.
  bool IsExplicit(const std::string& name) const { return explicit_.count(name) != 0; }
  std::map<std::string, AttrValue> ExplicitValues() const;

  // Equal values, however they were given (a default equals the same value given), so
  // that common subexpression elimination finds equal nodes.
  bool operator==(const Attrs& other) const { return values_ == other.values_; }

 private:
  std::map<std::string, AttrValue> values_;
  std::map<std::string, bool> explicit_;
};

}  // namespace kiln
