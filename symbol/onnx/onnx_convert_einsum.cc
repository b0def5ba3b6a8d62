// ONNX Einsum (opset 12) in kiln operators: per operand, repeated labels become
// diagonals and labels no one else needs are summed out; operands are then contracted
// pairwise, left to right, as batched matrix products (batch labels, the operand's own
// labels, the contracted labels); a final transpose puts the labels in output order.
// Ellipses stand for the leading axes they cover and broadcast like numpy's.
#include <algorithm>
#include <cctype>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "symbol/onnx/onnx_converter.h"

namespace kiln::onnx_import {
namespace {

// A label: a letter's code, or kEllipsisLabel + k for the k-th axis an ellipsis covers
// (counted from the right end of the ellipsis, so that shorter ones align right).
using Label = int;
constexpr Label kEllipsisLabel = 1000;

// An operand under its labels, one per axis.
struct Term {
  Value value;
  std::vector<Label> labels;
};

// The labels of one term of the equation for an operand of rank `rank`.
std::vector<Label> ParseTerm(const std::string& term, size_t rank, size_t* ellipsis_rank) {
  std::vector<Label> labels;
  const auto dots = term.find("...");
  size_t letters = 0;
  for (const char c : term) letters += std::isalpha(static_cast<unsigned char>(c)) ? 1 : 0;
  if (dots == std::string::npos ? letters != rank : letters > rank) {
    throw Error("equation term '" + term + "' has " + std::to_string(letters) + " labels for an operand of rank " +
                std::to_string(rank));
  }
  for (size_t i = 0; i < term.size(); ++i) {
    const char c = term[i];
    if (term.compare(i, 3, "...") == 0) {
      const size_t covered = rank - letters;
      *ellipsis_rank = std::max(*ellipsis_rank, covered);
      for (size_t k = covered; k-- > 0;) labels.push_back(kEllipsisLabel + static_cast<Label>(k));
      i += 2;
    } else if (std::isalpha(static_cast<unsigned char>(c))) {
      labels.push_back(c);
    } else {
      throw Error("equation term '" + term + "': unexpected character '" + std::string(1, c) + "'");
    }
  }
  return labels;
}

std::vector<std::string> SplitTerms(const std::string& text) {
  std::vector<std::string> terms(1);
  for (const char c : text) {
    if (c == ',') {
      terms.emplace_back();
    } else {
      terms.back() += c;
    }
  }
  return terms;
}

size_t IndexOf(const std::vector<Label>& labels, Label label) {
  return static_cast<size_t>(std::find(labels.begin(), labels.end(), label) - labels.begin());
}

Term Transposed(NodeContext& ctx, const Term& t, const std::vector<Label>& order) {
  std::vector<int64_t> perm;
  for (const Label l : order) perm.push_back(static_cast<int64_t>(IndexOf(t.labels, l)));
  bool identity = true;
  for (size_t i = 0; i < perm.size(); ++i) identity = identity && perm[i] == static_cast<int64_t>(i);
  if (identity) return {t.value, order};
  return {ctx.Apply("transpose", {t.value}, {{"axes", perm}}), order};
}

// The diagonal over a label that appears twice: both axes moved last, flattened, and
// every (n + 1)-th element taken.
Term Diagonal(NodeContext& ctx, const Term& t, Label label) {
  std::vector<Label> order;
  for (const Label l : t.labels) {
    if (l != label) order.push_back(l);
  }
  const size_t first = IndexOf(t.labels, label);
  const size_t second = first + 1 + IndexOf(std::vector<Label>(t.labels.begin() + first + 1, t.labels.end()), label);
  std::vector<int64_t> perm;
  for (size_t i = 0; i < t.labels.size(); ++i) {
    if (i != first && i != second) perm.push_back(static_cast<int64_t>(i));
  }
  perm.push_back(static_cast<int64_t>(first));
  perm.push_back(static_cast<int64_t>(second));
  const Value moved = ctx.Apply("transpose", {t.value}, {{"axes", perm}});
  const int64_t n = t.value.shape[first];
  if (t.value.shape[second] != n) {
    throw Error("label '" + std::string(1, static_cast<char>(label)) + "' has sizes " + std::to_string(n) + " and " +
                std::to_string(t.value.shape[second]) + " in one operand");
  }
  Shape flat(moved.shape.begin(), moved.shape.end() - 2);
  flat.push_back(n * n);
  Tensor diagonal({n}, DType::kInt64);
  for (int64_t k = 0; k < n; ++k) diagonal.data_as<int64_t>()[k] = k * (n + 1);
  const Value taken = ctx.Apply("take", {ctx.ReshapeTo(moved, flat), ctx.MakeConstant(std::move(diagonal))},
                                {{"axis", static_cast<int64_t>(flat.size() - 1)}});
  order.push_back(label);
  return {taken, order};
}

// Sums out the labels of t that `keep` does not hold.
Term SumOut(NodeContext& ctx, const Term& t, const std::set<Label>& keep) {
  std::vector<int64_t> axes;
  std::vector<Label> kept;
  Shape shape;
  for (size_t i = 0; i < t.labels.size(); ++i) {
    if (keep.count(t.labels[i]) == 0) {
      axes.push_back(static_cast<int64_t>(i));
    } else {
      kept.push_back(t.labels[i]);
      shape.push_back(t.value.shape[i]);
    }
  }
  if (axes.empty()) return t;
  const Value summed = ctx.Apply("sum", {t.value}, {{"axis", axes}, {"keepdims", false}});
  return {ctx.ReshapeTo(summed, shape), kept};
}

// The size of each label, checked to agree across operands (1 broadcasts).
void RecordSizes(const Term& t, std::map<Label, int64_t>* sizes) {
  for (size_t i = 0; i < t.labels.size(); ++i) {
    const int64_t size = t.value.shape[i];
    auto [it, inserted] = sizes->emplace(t.labels[i], size);
    if (inserted || it->second == size || size == 1) continue;
    if (it->second == 1) {
      it->second = size;
    } else {
      throw Error("label sizes disagree: " + std::to_string(it->second) + " and " + std::to_string(size));
    }
  }
}

// t with its labels in `order` and broadcast to the sizes in `sizes`.
Value Arranged(NodeContext& ctx, const Term& t, const std::vector<Label>& order,
               const std::map<Label, int64_t>& sizes) {
  const Term moved = Transposed(ctx, t, order);
  Shape full;
  for (const Label l : order) full.push_back(sizes.at(l));
  return BroadcastTo(ctx, moved.value, full);
}

int64_t SizeOf(const std::vector<Label>& labels, const std::map<Label, int64_t>& sizes) {
  int64_t n = 1;
  for (const Label l : labels) n *= sizes.at(l);
  return n;
}

// a and b contracted over their shared labels that `needed` lacks; shared labels it
// holds are batch labels.
Term Contract(NodeContext& ctx, const Term& a, const Term& b, const std::set<Label>& needed) {
  std::map<Label, int64_t> sizes;
  RecordSizes(a, &sizes);
  RecordSizes(b, &sizes);
  std::vector<Label> batch, left, contracted, right;
  for (const Label l : a.labels) {
    const bool shared = IndexOf(b.labels, l) < b.labels.size();
    if (!shared) {
      left.push_back(l);
    } else if (needed.count(l) != 0) {
      batch.push_back(l);
    } else {
      contracted.push_back(l);
    }
  }
  for (const Label l : b.labels) {
    if (IndexOf(a.labels, l) == a.labels.size()) right.push_back(l);
  }
  const int64_t nb = SizeOf(batch, sizes), nl = SizeOf(left, sizes), nk = SizeOf(contracted, sizes),
                nr = SizeOf(right, sizes);
  std::vector<Label> a_order = batch, b_order = batch;
  a_order.insert(a_order.end(), left.begin(), left.end());
  a_order.insert(a_order.end(), contracted.begin(), contracted.end());
  b_order.insert(b_order.end(), contracted.begin(), contracted.end());
  b_order.insert(b_order.end(), right.begin(), right.end());
  const Value lhs = ctx.ReshapeTo(Arranged(ctx, a, a_order, sizes), {nb, nl, nk});
  const Value rhs = ctx.ReshapeTo(Arranged(ctx, b, b_order, sizes), {nb, nk, nr});
  const Value product = ctx.Apply("batch_dot", {lhs, rhs});
  std::vector<Label> labels = batch;
  labels.insert(labels.end(), left.begin(), left.end());
  labels.insert(labels.end(), right.begin(), right.end());
  Shape shape;
  for (const Label l : labels) shape.push_back(sizes.at(l));
  return {ctx.ReshapeTo(product, shape), labels};
}

const RegisterConverter kEinsum({"Einsum"}, {"equation"}, [](NodeContext& ctx) {
  std::string equation;
  for (const char c : ctx.Str("equation")) {
    if (c != ' ') equation += c;
  }
  const auto arrow = equation.find("->");
  const std::vector<std::string> inputs = SplitTerms(equation.substr(0, arrow));
  if (inputs.size() != ctx.num_inputs()) {
    throw Error("equation '" + equation + "' names " + std::to_string(inputs.size()) + " operands, given " +
                std::to_string(ctx.num_inputs()));
  }
  size_t ellipsis_rank = 0;
  std::vector<Term> terms;
  std::map<Label, int> count;
  for (size_t i = 0; i < inputs.size(); ++i) {
    terms.push_back({ctx.In(i), ParseTerm(inputs[i], ctx.In(i).shape.size(), &ellipsis_rank)});
    for (const Label l : terms.back().labels) ++count[l];
  }
  // The output's labels: as written, or (implicit) the ellipsis then the letters that
  // appear once, in alphabetical order.
  std::vector<Label> output;
  if (arrow != std::string::npos) {
    const std::string out = equation.substr(arrow + 2);
    size_t unused = 0;
    const size_t letters = static_cast<size_t>(
        std::count_if(out.begin(), out.end(), [](char c) { return std::isalpha(static_cast<unsigned char>(c)); }));
    output = ParseTerm(out, letters + (out.find("...") == std::string::npos ? 0 : ellipsis_rank), &unused);
  } else {
    for (size_t k = ellipsis_rank; k-- > 0;) output.push_back(kEllipsisLabel + static_cast<Label>(k));
    for (const auto& [label, n] : count) {
      if (label < kEllipsisLabel && n == 1) output.push_back(label);
    }
  }
  for (const Label l : output) {
    if (count.count(l) == 0)
      throw Error("output label '" + std::string(1, static_cast<char>(l)) + "' is in no operand");
  }

  // Per operand: diagonals, then labels nobody else needs summed out.
  for (size_t i = 0; i < terms.size(); ++i) {
    for (bool repeated = true; repeated;) {
      repeated = false;
      std::set<Label> seen;
      for (const Label l : terms[i].labels) {
        if (!seen.insert(l).second) {
          terms[i] = Diagonal(ctx, terms[i], l);
          repeated = true;
          break;
        }
      }
    }
    std::set<Label> keep(output.begin(), output.end());
    for (size_t j = 0; j < terms.size(); ++j) {
      if (j != i) keep.insert(terms[j].labels.begin(), terms[j].labels.end());
    }
    terms[i] = SumOut(ctx, terms[i], keep);
  }
  Term result = terms[0];
  for (size_t i = 1; i < terms.size(); ++i) {
    std::set<Label> needed(output.begin(), output.end());
    for (size_t j = i + 1; j < terms.size(); ++j) needed.insert(terms[j].labels.begin(), terms[j].labels.end());
    result = Contract(ctx, result, terms[i], needed);
    result = SumOut(ctx, result, needed);
  }
  result = SumOut(ctx, result, std::set<Label>(output.begin(), output.end()));
  return std::vector<Value>{Transposed(ctx, result, output).value};
});

}  // namespace
}  // namespace kiln::onnx_import
