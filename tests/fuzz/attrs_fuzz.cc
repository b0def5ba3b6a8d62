// Attribute values in MXNet's text spelling (symbol/attrs.h): "(3, 3)", "True", "0.5",
// "None", "2L", "[1,2]". The first byte picks the declared field (type, nullable, a
// range, choices), the rest is the text. A value that normalizes is a fixed point of
// Normalize, and its printed spelling (FormatAttrValue: graph dumps, the ONNX exporter's
// names, error messages) normalizes back to the same value.
#include <cmath>
#include <string>
#include <variant>
#include <vector>

#include "graph/attrs.h"
#include "runtime/error.h"
#include "tests/fuzz/fuzz_targets.h"

namespace kiln::fuzz {
namespace {

bool SameDouble(double a, double b) {
  return a == b || (std::isnan(a) && std::isnan(b));
}

bool Same(const AttrValue& a, const AttrValue& b) {
  if (a.index() != b.index()) return false;
  if (const auto* x = std::get_if<double>(&a)) return SameDouble(*x, std::get<double>(b));
  if (const auto* x = std::get_if<std::vector<double>>(&a)) {
    const auto& y = std::get<std::vector<double>>(b);
    if (x->size() != y.size()) return false;
    for (size_t i = 0; i < x->size(); ++i) {
      if (!SameDouble((*x)[i], y[i])) return false;
    }
    return true;
  }
  return a == b;
}

}  // namespace

int FuzzAttrs(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const uint8_t mode = data[0];
  AttrField field;
  field.name = "fuzz";
  field.type = static_cast<AttrType>((mode & 7) % 7);
  field.nullable = (mode & 8) != 0;
  if (mode & 16) {
    field.min = -8;
    field.max = 1e6;
  }
  if ((mode & 32) && field.type == AttrType::kString) field.choices = {"max", "avg", "sum", "None"};
  const std::string text(AsText(data + 1, size - 1));

  AttrValue value;
  try {
    value = field.Normalize(text);
  } catch (const Error&) {
    return 0;
  }
  const std::string spelled = FormatAttrValue(value);
  FuzzCheck(Same(field.Normalize(value), value), "Normalize is not idempotent on '" + text + "'");
  FuzzCheck(Same(field.Normalize(spelled), value),
            "'" + text + "' normalizes to " + spelled + ", which reads back as another value");
  return 0;
}

}  // namespace kiln::fuzz
