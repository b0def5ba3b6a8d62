#include "graph/attrs.h"

#include <charconv>
#include <cmath>
#include <sstream>

#include "runtime/error.h"

namespace kiln {
namespace {

std::string Trim(std::string_view text) {
  size_t begin = 0;
  size_t end = text.size();
  while (begin < end && std::isspace(static_cast<unsigned char>(text[begin]))) ++begin;
  while (end > begin && std::isspace(static_cast<unsigned char>(text[end - 1]))) --end;
  return std::string(text.substr(begin, end - begin));
}

bool IsNoneText(std::string_view text) { return Trim(text) == "None"; }

std::optional<int64_t> ParseInt(std::string_view raw) {
  const std::string text = Trim(raw);
  if (text.empty()) return std::nullopt;
  int64_t value = 0;
  const char* first = text.data();
  const char* last = text.data() + text.size();
  if (*first == '+') ++first;
  auto [ptr, ec] = std::from_chars(first, last, value);
  if (ec == std::errc() && ptr == last) return value;
  // MXNet writes some integers as "2L" (Python 2 longs).
  if (ec == std::errc() && ptr + 1 == last && (*ptr == 'L' || *ptr == 'l')) return value;
  return std::nullopt;
}

std::optional<double> ParseFloat(std::string_view raw) {
  const std::string text = Trim(raw);
  if (text.empty()) return std::nullopt;
  if (text == "inf" || text == "+inf" || text == "Infinity") return INFINITY;
  if (text == "-inf" || text == "-Infinity") return -INFINITY;
  if (text == "nan" || text == "NaN") return NAN;
  std::istringstream stream(text);
  stream.imbue(std::locale::classic());
  double value = 0;
  stream >> value;
  if (stream.fail() || !stream.eof()) return std::nullopt;
  return value;
}

std::optional<bool> ParseBool(std::string_view raw) {
  const std::string text = Trim(raw);
  if (text == "True" || text == "true" || text == "1") return true;
  if (text == "False" || text == "false" || text == "0") return false;
  return std::nullopt;
}

// "(2, 2)", "[2,2]", "(2,)", "()", "2" → elements as text.
std::optional<std::vector<std::string>> SplitTuple(std::string_view raw) {
  std::string text = Trim(raw);
  if (!text.empty() && (text.front() == '(' || text.front() == '[')) {
    const char close = text.front() == '(' ? ')' : ']';
    if (text.back() != close) return std::nullopt;
    text = Trim(std::string_view(text).substr(1, text.size() - 2));
  }
  std::vector<std::string> parts;
  if (text.empty()) return parts;
  size_t start = 0;
  while (start <= text.size()) {
    const size_t comma = text.find(',', start);
    const std::string part = Trim(std::string_view(text).substr(start, comma - start));
    if (part.empty()) {
      if (comma == std::string::npos) break;  // trailing comma: "(2,)"
      return std::nullopt;
    }
    parts.push_back(part);
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return parts;
}

std::string Describe(const AttrValue& value) {
  // Abbreviated: a corrupt file's 20,000-character value must not fill the message.
  if (std::holds_alternative<std::string>(value)) return "'" + Abbreviate(std::get<std::string>(value)) + "'";
  return Abbreviate(FormatAttrValue(value), 200);
}

std::string FormatDouble(double value) {
  if (std::isinf(value)) return value > 0 ? "inf" : "-inf";
  std::ostringstream stream;
  stream.imbue(std::locale::classic());
  stream.precision(17);
  stream << value;
  // Round-trip precision but prefer the short form where it is exact.
  std::ostringstream shorter;
  shorter.imbue(std::locale::classic());
  shorter << value;
  // Read back the way ParseFloat reads (std::stod would throw std::out_of_range for a
  // subnormal such as 1e-310, which ParseFloat accepts).
  if (ParseFloat(shorter.str()) == value) return shorter.str();
  return stream.str();
}

}  // namespace

std::string_view AttrTypeName(AttrType type) {
  switch (type) {
    case AttrType::kBool: return "boolean";
    case AttrType::kInt: return "integer";
    case AttrType::kFloat: return "number";
    case AttrType::kString: return "string";
    case AttrType::kInts: return "tuple of integers";
    case AttrType::kFloats: return "tuple of numbers";
    case AttrType::kDType: return "dtype";
  }
  return "unknown";
}

std::string FormatAttrValue(const AttrValue& value) {
  struct Formatter {
    std::string operator()(std::monostate) const { return "None"; }
    std::string operator()(bool v) const { return v ? "True" : "False"; }
    std::string operator()(int64_t v) const { return std::to_string(v); }
    std::string operator()(double v) const { return FormatDouble(v); }
    std::string operator()(const std::string& v) const { return v; }
    std::string operator()(const std::vector<int64_t>& v) const {
      std::string text = "(";
      for (size_t i = 0; i < v.size(); ++i) text += (i ? ", " : "") + std::to_string(v[i]);
      return text + (v.size() == 1 ? ",)" : ")");
    }
    std::string operator()(const std::vector<double>& v) const {
      std::string text = "(";
      for (size_t i = 0; i < v.size(); ++i) text += (i ? ", " : "") + FormatDouble(v[i]);
      return text + (v.size() == 1 ? ",)" : ")");
    }
  };
  return std::visit(Formatter{}, value);
}

AttrValue AttrField::Normalize(const AttrValue& given) const {
  const auto fail = [&](const std::string& why) -> Error {
    std::string expected = std::string(AttrTypeName(type));
    if (!choices.empty()) {
      expected = "one of {";
      for (size_t i = 0; i < choices.size(); ++i) expected += (i ? ", " : "") + choices[i];
      expected += "}";
    }
    if (nullable) expected += " or None";
    return Error("attribute '" + name + "': expected " + expected + ", given " + Describe(given) +
                 (why.empty() ? "" : " (" + why + ")"));
  };
  const auto* text = std::get_if<std::string>(&given);

  if (std::holds_alternative<std::monostate>(given) || (text && type != AttrType::kString && IsNoneText(*text))) {
    if (!nullable) throw fail("None is not allowed");
    return std::monostate{};
  }

  const auto check_range = [&](double v) {
    if (std::isnan(v) && (min || max)) throw fail("not a number");
    if (min && v < *min) throw fail("must be >= " + FormatDouble(*min));
    if (max && v > *max) throw fail("must be <= " + FormatDouble(*max));
  };

  switch (type) {
    case AttrType::kBool: {
      if (const auto* b = std::get_if<bool>(&given)) return *b;
      if (const auto* i = std::get_if<int64_t>(&given); i && (*i == 0 || *i == 1)) return *i == 1;
      if (text) {
        if (auto b = ParseBool(*text)) return *b;
      }
      throw fail("");
    }
    case AttrType::kInt: {
      std::optional<int64_t> value;
      if (const auto* i = std::get_if<int64_t>(&given)) value = *i;
      if (const auto* b = std::get_if<bool>(&given)) value = *b ? 1 : 0;
      if (const auto* d = std::get_if<double>(&given); d && std::isfinite(*d) && std::trunc(*d) == *d &&
                                                        std::fabs(*d) < 9.0e18) {
        value = static_cast<int64_t>(*d);
      }
      if (text) value = ParseInt(*text);
      if (!value) throw fail("");
      check_range(static_cast<double>(*value));
      return *value;
    }
    case AttrType::kFloat: {
      std::optional<double> value;
      if (const auto* d = std::get_if<double>(&given)) value = *d;
      if (const auto* i = std::get_if<int64_t>(&given)) value = static_cast<double>(*i);
      if (text) value = ParseFloat(*text);
      if (!value) throw fail("");
      check_range(*value);
      return *value;
    }
    case AttrType::kString: {
      std::string value;
      if (text) {
        value = *text;
      } else if (std::holds_alternative<bool>(given) || std::holds_alternative<int64_t>(given) ||
                 std::holds_alternative<std::vector<int64_t>>(given)) {
        // Text-typed attributes with a structure of their own (slice's begin, which may
        // hold None entries) take numbers and tuples in MXNet's spelling.
        value = FormatAttrValue(given);
      } else {
        throw fail("");
      }
      if (!choices.empty()) {
        bool found = false;
        for (const auto& choice : choices) found = found || choice == value;
        if (!found) throw fail("");
      }
      return value;
    }
    case AttrType::kInts: {
      std::vector<int64_t> values;
      if (const auto* v = std::get_if<std::vector<int64_t>>(&given)) {
        values = *v;
      } else if (const auto* i = std::get_if<int64_t>(&given)) {
        values = {*i};
      } else if (const auto* f = std::get_if<std::vector<double>>(&given)) {
        for (double d : *f) {
          if (!std::isfinite(d) || std::trunc(d) != d || std::fabs(d) > 9.0e18) throw fail("");
          values.push_back(static_cast<int64_t>(d));
        }
      } else if (text) {
        auto parts = SplitTuple(*text);
        if (!parts) throw fail("");
        for (const auto& part : *parts) {
          auto v = ParseInt(part);
          if (!v) throw fail("");
          values.push_back(*v);
        }
      } else {
        throw fail("");
      }
      for (int64_t v : values) check_range(static_cast<double>(v));
      return values;
    }
    case AttrType::kFloats: {
      std::vector<double> values;
      if (const auto* v = std::get_if<std::vector<double>>(&given)) {
        values = *v;
      } else if (const auto* vi = std::get_if<std::vector<int64_t>>(&given)) {
        values.assign(vi->begin(), vi->end());
      } else if (const auto* d = std::get_if<double>(&given)) {
        values = {*d};
      } else if (const auto* i = std::get_if<int64_t>(&given)) {
        values = {static_cast<double>(*i)};
      } else if (text) {
        auto parts = SplitTuple(*text);
        if (!parts) throw fail("");
        for (const auto& part : *parts) {
          auto v = ParseFloat(part);
          if (!v) throw fail("");
          values.push_back(*v);
        }
      } else {
        throw fail("");
      }
      for (double v : values) check_range(v);
      return values;
    }
    case AttrType::kDType: {
      if (text) {
        if (ParseDType(Trim(*text))) return Trim(*text);
      }
      if (const auto* i = std::get_if<int64_t>(&given); i && IsValidDTypeCode(*i)) {
        return std::string(DTypeName(static_cast<DType>(*i)));
      }
      throw fail("");
    }
  }
  throw fail("");
}

bool Attrs::IsNone(std::string_view name) const {
  return std::holds_alternative<std::monostate>(Get(name));
}

const AttrValue& Attrs::Get(std::string_view name) const {
  const auto it = values_.find(std::string(name));
  if (it == values_.end()) throw Error("attribute '" + std::string(name) + "' is not declared");
  return it->second;
}

namespace {
template <typename T>
const T& GetAs(const Attrs& attrs, std::string_view name) {
  const auto* value = std::get_if<T>(&attrs.Get(name));
  if (value == nullptr) {
    throw Error("attribute '" + std::string(name) + "' is " + FormatAttrValue(attrs.Get(name)) +
                ", not the type asked for");
  }
  return *value;
}
}  // namespace

bool Attrs::Bool(std::string_view name) const { return GetAs<bool>(*this, name); }
int64_t Attrs::Int(std::string_view name) const { return GetAs<int64_t>(*this, name); }
double Attrs::Float(std::string_view name) const { return GetAs<double>(*this, name); }
const std::string& Attrs::Str(std::string_view name) const { return GetAs<std::string>(*this, name); }
const std::vector<int64_t>& Attrs::Ints(std::string_view name) const {
  return GetAs<std::vector<int64_t>>(*this, name);
}
const std::vector<double>& Attrs::Floats(std::string_view name) const {
  return GetAs<std::vector<double>>(*this, name);
}
DType Attrs::GetDType(std::string_view name) const {
  const auto dtype = ParseDType(Str(name));
  if (!dtype) throw Error("attribute '" + std::string(name) + "' is not a dtype");
  return *dtype;
}
std::optional<int64_t> Attrs::OptInt(std::string_view name) const {
  if (IsNone(name)) return std::nullopt;
  return Int(name);
}
std::optional<std::vector<int64_t>> Attrs::OptInts(std::string_view name) const {
  if (IsNone(name)) return std::nullopt;
  return Ints(name);
}

void Attrs::Set(std::string name, AttrValue value, bool explicitly_given) {
  if (explicitly_given) {
    explicit_[name] = true;
  } else {
    explicit_.erase(name);
  }
  values_[std::move(name)] = std::move(value);
}

std::map<std::string, AttrValue> Attrs::ExplicitValues() const {
  std::map<std::string, AttrValue> result;
  for (const auto& [name, value] : values_) {
    if (IsExplicit(name)) result.emplace(name, value);
  }
  return result;
}

}  // namespace kiln
