#include "symbol/ops_api.h"

namespace kiln::sym {
namespace {
AttrMap WithNumArgs(const AttrMap& attrs, size_t count) {
  AttrMap result = attrs;
  for (const auto& [key, value] : attrs) {
    if (key == "num_args") return result;
  }
  result.emplace_back("num_args", static_cast<int64_t>(count));
  return result;
}
}  // namespace

#define KILN_SYM_UNARY(fn) \
  Symbol fn(const Symbol& data, const AttrMap& attrs, const std::string& name) { return Symbol::Create(#fn, {data}, attrs, name); }
#define KILN_SYM_BINARY(fn)                                                                     \
  Symbol fn(const Symbol& lhs, const Symbol& rhs, const AttrMap& attrs, const std::string& name) { \
    return Symbol::Create(#fn, {lhs, rhs}, attrs, name);                                        \
  }
#define KILN_SYM_LAYER(fn) KILN_SYM_UNARY(fn)
#define KILN_SYM_VARIADIC(fn)                                                              \
  Symbol fn(const std::vector<Symbol>& inputs, const AttrMap& attrs, const std::string& name) { \
    return Symbol::Create(#fn, inputs, WithNumArgs(attrs, inputs.size()), name);           \
  }
#define KILN_SYM_SOURCE(fn) \
  Symbol fn(const AttrMap& attrs, const std::string& name) { return Symbol::Create(#fn, {}, attrs, name); }
#include "symbol/ops_api.inc"

Symbol where(const Symbol& condition, const Symbol& x, const Symbol& y, const std::string& name) {
  return Symbol::Create("where", {condition, x, y}, {}, name);
}
Symbol LeakyReLU(const Symbol& data, const AttrMap& attrs, const std::string& name) {
  return Symbol::Create("LeakyReLU", {data}, attrs, name);
}
Symbol SoftmaxOutput(const Symbol& data, const Symbol& label, const AttrMap& attrs, const std::string& name) {
  return Symbol::Create("SoftmaxOutput", {data, label}, attrs, name);
}
Symbol LinearRegressionOutput(const Symbol& data, const Symbol& label, const AttrMap& attrs, const std::string& name) {
  return Symbol::Create("LinearRegressionOutput", {data, label}, attrs, name);
}
Symbol LogisticRegressionOutput(const Symbol& data, const Symbol& label, const AttrMap& attrs,
                                const std::string& name) {
  return Symbol::Create("LogisticRegressionOutput", {data, label}, attrs, name);
}
Symbol softmax_cross_entropy(const Symbol& data, const Symbol& label, const std::string& name) {
  return Symbol::Create("softmax_cross_entropy", {data, label}, {}, name);
}

}  // namespace kiln::sym
