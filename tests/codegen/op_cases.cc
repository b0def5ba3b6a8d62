#include "tests/codegen/op_cases.h"

#include <cmath>
#include <map>
#include <optional>
#include <set>

#include "codegen/cuda/cuda_emitter.h"
#include "graph/op.h"
#include "runtime/error.h"
#include "symbol/symbol.h"
#include "tests/op_test_util.h"

namespace kiln::testing {

using golden::json;

namespace {

bool IsIntegral(const Tensor& t) {
  for (int64_t i = 0; i < t.size(); ++i) {
    const double v = t.GetDouble(i);
    if (std::isfinite(v) && v != std::floor(v)) return false;
  }
  return true;
}

// `t` in `dtype`. Small float values become integers of a useful range (x10) rather
// than mostly zeros; integral values (indices, labels) keep their values.
Tensor ConvertTo(const Tensor& t, DType dtype) {
  Tensor out(t.shape(), dtype);
  const bool scale = !IsFloat(dtype) && dtype != DType::kBool && !IsIntegral(t);
  for (int64_t i = 0; i < t.size(); ++i) {
    double v = t.GetDouble(i);
    if (scale && std::isfinite(v)) v = std::round(v * 10);
    if (dtype == DType::kBool) v = v != 0;
    out.SetDouble(i, v);
  }
  return out;
}

// The reference's outputs, or nothing if the reference rejects the case (a dtype the
// operator does not take, a shape its inference refuses).
std::optional<std::vector<Tensor>> TryReference(const std::string& op, const OpCase& c) {
  try {
    return RunOp(op, c.inputs, c.attrs);
  } catch (const Error&) {
    return std::nullopt;
  }
}

double Min(const Tensor& t) {
  double m = INFINITY;
  for (int64_t i = 0; i < t.size(); ++i) m = std::min(m, t.GetDouble(i));
  return std::isfinite(m) ? m : -1;
}

double Max(const Tensor& t) {
  double m = -INFINITY;
  for (int64_t i = 0; i < t.size(); ++i) m = std::max(m, t.GetDouble(i));
  return std::isfinite(m) ? m : 1;
}

// A tensor of `shape` with values in the range of `like` (integral if `like` is).
Tensor RandomLike(const Tensor& like, const Shape& shape, uint64_t seed) {
  const double low = like.size() > 0 ? Min(like) : -1, high = like.size() > 0 ? Max(like) : 1;
  Tensor t = RandomTensor(shape, seed, low, high == low ? low + 1 : high, DType::kFloat64);
  if (IsIntegral(like)) {
    for (int64_t i = 0; i < t.size(); ++i) t.SetDouble(i, std::floor(t.GetDouble(i)));
  }
  return ConvertTo(t, like.dtype());
}

// Shapes for the inputs of an elementwise (all the same) or broadcast operator.
std::vector<std::vector<Shape>> PointwiseShapes(OpPattern pattern, size_t num_inputs) {
  if (pattern == OpPattern::kElementwise) {
    std::vector<std::vector<Shape>> sets;
    for (const Shape& shape : std::vector<Shape>{{1}, {7}, {1031}, {3, 0}, {5, 3, 17}, {129, 513}}) {
      sets.emplace_back(num_inputs, shape);
    }
    return sets;
  }
  if (num_inputs != 2) return {};
  return {{{5, 1, 7}, {1, 3, 7}},
          {{1031}, {1}},
          {{1}, {1031}},
          {{2, 3, 4, 5}, {3, 1, 5}},
          {{0, 3}, {1, 3}},
          {{64, 1}, {1, 1025}},
          {{4, 1, 6, 1, 3}, {1, 5, 1, 2, 1}}};
}

// Cases made for one operator beyond the recorded ones; `seed` advances.
std::vector<OpCase> ExtraCases(const OpDef& op, const std::vector<OpCase>& recorded, uint64_t& seed) {
  std::vector<OpCase> extra;
  if (recorded.empty()) return extra;
  const OpCase& model = recorded.front();
  for (const auto& shapes : PointwiseShapes(op.pattern(), model.inputs.size())) {
    OpCase c{"random shapes", model.attrs, {}};
    for (size_t i = 0; i < shapes.size(); ++i) c.inputs.push_back(RandomLike(model.inputs[i], shapes[i], ++seed));
    c.desc = "shapes";
    for (const auto& s : shapes) c.desc += " " + ShapeToString(s);
    extra.push_back(std::move(c));
  }
  const auto rand = [&](const Shape& shape) { return RandomTensor(shape, ++seed, -1, 1); };
  const std::string name = op.name();
  if (name == "FullyConnected") {
    extra.push_back({"odd sizes 37x123 -> 67", {{"num_hidden", 67}}, {rand({37, 123}), rand({67, 123}), rand({67})}});
    extra.push_back(
        {"large 64x1024 -> 1000", {{"num_hidden", 1000}}, {rand({64, 1024}), rand({1000, 1024}), rand({1000})}});
    extra.push_back({"no bias, 4-d input flattened",
                     {{"num_hidden", 13}, {"no_bias", true}},
                     {rand({3, 2, 5, 7}), rand({13, 70})}});
  } else if (name == "dot") {
    extra.push_back({"odd 33x65 . 65x17", {}, {rand({33, 65}), rand({65, 17})}});
    extra.push_back({"large 256x300 . 300x200", {}, {rand({256, 300}), rand({300, 200})}});
    extra.push_back(
        {"transposed both", {{"transpose_a", true}, {"transpose_b", true}}, {rand({65, 33}), rand({17, 65})}});
  } else if (name == "batch_dot") {
    extra.push_back({"odd 3x33x65 . 3x65x17", {}, {rand({3, 33, 65}), rand({3, 65, 17})}});
    extra.push_back({"transpose_b", {{"transpose_b", true}}, {rand({2, 31, 64}), rand({2, 47, 64})}});
  } else if (name == "Convolution") {
    extra.push_back({"odd 1x3x31x29 k3 pad1 17 filters",
                     {{"kernel", "(3,3)"}, {"pad", "(1,1)"}, {"num_filter", 17}},
                     {rand({1, 3, 31, 29}), rand({17, 3, 3, 3}), rand({17})}});
    extra.push_back({"2x16x14x14 k3 stride2 32 filters",
                     {{"kernel", "(3,3)"}, {"stride", "(2,2)"}, {"num_filter", 32}},
                     {rand({2, 16, 14, 14}), rand({32, 16, 3, 3}), rand({32})}});
    extra.push_back({"depthwise 1x32x15x15 k3",
                     {{"kernel", "(3,3)"}, {"pad", "(1,1)"}, {"num_filter", 32}, {"num_group", 32}},
                     {rand({1, 32, 15, 15}), rand({32, 1, 3, 3}), rand({32})}});
    extra.push_back({"1x1 1x64x9x9 -> 24",
                     {{"kernel", "(1,1)"}, {"num_filter", 24}, {"no_bias", true}},
                     {rand({1, 64, 9, 9}), rand({24, 64, 1, 1})}});
    // Enough work for several tasks on one small image: the filters are split in blocks
    // (100 = 50 + 50) over one panel; and a larger image split in row panels.
    extra.push_back({"filter blocks 1x64x9x9 k3 pad1 -> 100",
                     {{"kernel", "(3,3)"}, {"pad", "(1,1)"}, {"num_filter", 100}},
                     {rand({1, 64, 9, 9}), rand({100, 64, 3, 3}), rand({100})}});
    extra.push_back({"row panels 1x16x40x40 k3 -> 20",
                     {{"kernel", "(3,3)"}, {"num_filter", 20}},
                     {rand({1, 16, 40, 40}), rand({20, 16, 3, 3}), rand({20})}});
  } else if (name == "Pooling") {
    extra.push_back({"max 2x7x33x31 k3 s2",
                     {{"kernel", "(3,3)"}, {"stride", "(2,2)"}, {"pool_type", "max"}},
                     {rand({2, 7, 33, 31})}});
    extra.push_back({"global avg 2x64x7x7",
                     {{"global_pool", true}, {"pool_type", "avg"}, {"kernel", "(1,1)"}},
                     {rand({2, 64, 7, 7})}});
  } else if (op.pattern() == OpPattern::kReduction && model.inputs.size() == 1) {
    OpCase c{"large 257x1031", model.attrs, {RandomLike(model.inputs[0], {257, 1031}, ++seed)}};
    extra.push_back(std::move(c));
  }
  return extra;
}

// The recorded inference cases for one operator, and their dtype variants.
std::vector<OpCase> RecordedCases(const std::string& op_name, const json& doc) {
  std::vector<OpCase> cases;
  for (const json& c : doc["cases"]) {
    if (c.value("expect_error", false) || c.value("is_train", false)) continue;
    if (golden::FindKnownDifference(op_name, c["desc"])) continue;
    OpCase oc{c["desc"], golden::ToAttrMap(c["attrs"]), {}, c.value("random", json())};
    for (const auto& item : c["inputs"]) oc.inputs.push_back(golden::ToTensor(item));
    cases.push_back(std::move(oc));
  }
  return cases;
}

std::vector<OpCase> DtypeVariants(const std::string& op_name, const std::vector<OpCase>& cases) {
  std::vector<OpCase> variants;
  for (const OpCase& c : cases) {
    if (!c.random.is_null() || c.inputs.empty()) continue;
    for (const DType dtype :
         {DType::kFloat64, DType::kFloat16, DType::kBFloat16, DType::kInt32, DType::kInt64, DType::kInt8, DType::kUInt8,
          DType::kInt16, DType::kUInt16, DType::kUInt32, DType::kUInt64, DType::kBool}) {
      OpCase v{c.desc + " as " + std::string(DTypeName(dtype)), c.attrs, {}};
      bool changed = false;
      for (const Tensor& t : c.inputs) {
        // Only float inputs change type; integer inputs (indices) keep theirs.
        const bool convert = t.dtype() == DType::kFloat32;
        v.inputs.push_back(convert ? ConvertTo(t, dtype) : t);
        changed |= convert;
      }
      if (changed && TryReference(op_name, v)) variants.push_back(std::move(v));
    }
  }
  return variants;
}

Tensor Int64Values(const Shape& shape, const std::vector<double>& values) {
  return Values(shape, values, DType::kInt64);
}

// Operators MXNet 1.9's legacy API has no golden cases for (kiln's own operators for
// ONNX, and numpy-mode ones): cases written here, checked against the reference like
// the recorded ones.
std::map<std::string, std::vector<OpCase>> BuiltInCases() {
  std::map<std::string, std::vector<OpCase>> cases;
  // Training steps' Dropout (ops/nn.cc): at inference the identity; its masks are checked
  // by tests/train/train_step_test.
  cases["_dropout_step"] = {
      {"inference", {{"p", 0.5}}, {RandomTensor({3, 4}, 21), Int64Values({1}, {5})}},
  };
  cases["_np_reshape"] = {
      {"to 0-d", {{"newshape", std::vector<int64_t>{}}}, {Values({1}, {3.5})}},
      {"one -1", {{"newshape", std::vector<int64_t>{4, -1}}}, {RandomTensor({2, 3, 4}, 11)}},
      {"from 0-d", {{"newshape", std::vector<int64_t>{1, 1}}}, {Values({}, {2})}},
  };
  cases["take_along_axis"] = {
      {"axis 1", {{"axis", 1}}, {RandomTensor({3, 4}, 12), Int64Values({3, 2}, {0, 3, -1, 2, 1, 1})}},
      {"axis 0, int32 data",
       {{"axis", 0}},
       {Values({2, 3}, {1, 2, 3, 4, 5, 6}, DType::kInt32), Int64Values({1, 3}, {1, 0, -1})}},
  };
  cases["scatter_elements"] = {
      {"axis 1",
       {{"axis", 1}},
       {RandomTensor({2, 4}, 13), Int64Values({2, 2}, {0, 3, 2, -1}), RandomTensor({2, 2}, 14)}},
      {"add with duplicates",
       {{"axis", 0}, {"reduction", "add"}},
       {RandomTensor({3, 2}, 15), Int64Values({2, 2}, {1, 1, 1, 0}), RandomTensor({2, 2}, 16)}},
  };
  cases["scatter_nd_update"] = {
      {"rows", {}, {RandomTensor({4, 3}, 17), Int64Values({1, 2}, {3, 0}), RandomTensor({2, 3}, 18)}},
      {"elements, max",
       {{"reduction", "max"}},
       {RandomTensor({3, 3}, 19), Int64Values({2, 2}, {0, 2, 1, 1}), RandomTensor({2}, 20)}},
  };
  // The backward operators of Convolution and Pooling (ops/nn.cc), which the gradient pass builds.
  const AttrMap conv = {{"kernel", std::vector<int64_t>{3, 2}},
                        {"num_filter", 4},
                        {"num_group", 2},
                        {"stride", std::vector<int64_t>{2, 1}},
                        {"dilate", std::vector<int64_t>{1, 2}},
                        {"pad", std::vector<int64_t>{1, 1}}};
  const AttrMap conv_plain = {{"kernel", std::vector<int64_t>{3, 3}}, {"num_filter", 3}, {"no_bias", true}};
  // float32 runs as GEMMs (im2col / col2im blocks in scratch; 1x1 stride-1 layers in
  // place where whole images make a chunk): 1x1 layers grouped and strided, odd sizes with
  // stride, pad and dilation together, planes cut into blocks of rows (64x64, 96x96 with
  // stride 2), images batched into one product (7x7 planes) with filter blocks, depthwise,
  // an empty batch (the weight gradient is zero).
  const auto conv_attrs = [](std::vector<int64_t> kernel, int64_t filters, int64_t groups, std::vector<int64_t> stride,
                             std::vector<int64_t> pad, std::vector<int64_t> dilate) {
    return AttrMap{{"kernel", kernel}, {"num_filter", filters}, {"num_group", groups}, {"stride", stride},
                   {"pad", pad},       {"dilate", dilate}};
  };
  const AttrMap pointwise = conv_attrs({1, 1}, 6, 3, {1, 1}, {0, 0}, {1, 1});
  const AttrMap projection = conv_attrs({1, 1}, 5, 1, {2, 2}, {0, 0}, {1, 1});
  const AttrMap odd = conv_attrs({3, 3}, 7, 1, {2, 2}, {2, 1}, {2, 1});
  const AttrMap rows = conv_attrs({3, 3}, 8, 1, {1, 1}, {1, 1}, {1, 1});
  const AttrMap strided_rows = conv_attrs({3, 3}, 4, 1, {2, 2}, {1, 1}, {1, 1});
  const AttrMap five = conv_attrs({5, 5}, 8, 1, {1, 1}, {2, 2}, {1, 1});
  const AttrMap small = conv_attrs({3, 3}, 40, 1, {1, 1}, {0, 0}, {1, 1});
  const AttrMap grouped_small = conv_attrs({3, 3}, 10, 2, {1, 1}, {1, 1}, {1, 1});
  const AttrMap depthwise = conv_attrs({3, 3}, 8, 4, {1, 1}, {1, 1}, {1, 1});
  const AttrMap winograd_pad1 = conv_attrs({3, 3}, 16, 1, {1, 1}, {1, 1}, {1, 1});
  const AttrMap winograd_pad0 = conv_attrs({3, 3}, 24, 1, {1, 1}, {0, 0}, {1, 1});
  const AttrMap winograd_pad2 = conv_attrs({3, 3}, 72, 1, {1, 1}, {2, 2}, {1, 1});
  const AttrMap winograd_rows = conv_attrs({3, 3}, 16, 1, {1, 1}, {1, 1}, {1, 1});
  // Each case: out_grad, data (and weight for the data gradient).
  struct ConvGradCase {
    std::string desc;
    AttrMap attrs;
    Shape out_grad, data, weight;
  };
  const std::vector<ConvGradCase> conv_grad_cases = {
      {"1x1, groups", pointwise, {2, 6, 5, 7}, {2, 6, 5, 7}, {6, 2, 1, 1}},
      {"1x1 in place, groups", pointwise, {1, 6, 16, 17}, {1, 6, 16, 17}, {6, 2, 1, 1}},
      {"1x1, stride 2", projection, {3, 5, 5, 4}, {3, 4, 9, 7}, {5, 4, 1, 1}},
      {"odd sizes, stride, pad, dilation", odd, {3, 7, 7, 6}, {3, 5, 13, 11}, {7, 5, 3, 3}},
      {"64x64 planes in blocks of rows", rows, {1, 8, 64, 64}, {1, 32, 64, 64}, {8, 32, 3, 3}},
      {"96x96, stride 2, blocks of rows", strided_rows, {1, 4, 48, 48}, {1, 16, 96, 96}, {4, 16, 3, 3}},
      {"5x5, kernel rows split inside a channel", five, {1, 8, 16, 16}, {1, 7, 16, 16}, {8, 7, 5, 5}},
      {"7x7 planes, images batched, filter blocks", small, {16, 40, 7, 7}, {16, 2, 9, 9}, {40, 2, 3, 3}},
      {"7x7 planes, images batched, groups", grouped_small, {13, 10, 7, 7}, {13, 6, 7, 7}, {10, 3, 3, 3}},
      {"depthwise", depthwise, {2, 8, 6, 6}, {2, 4, 6, 6}, {8, 1, 3, 3}},
      {"empty batch", rows, {0, 8, 5, 5}, {0, 3, 5, 5}, {8, 3, 3, 3}},
      // 3x3 stride 1 with at least 16 filters and channels: Winograd (the weight gradient
      // in its lowering, the data gradient altered into _winograd_conv): odd sizes
      // (partial tiles), pads 0 to 2, images batched into one chunk, chunks of tile
      // rows, blocks of filters and channels.
      {"Winograd, odd sizes", winograd_pad1, {2, 16, 9, 11}, {2, 20, 9, 11}, {16, 20, 3, 3}},
      {"Winograd, pad 0, images batched", winograd_pad0, {12, 24, 5, 5}, {12, 16, 7, 7}, {24, 16, 3, 3}},
      {"Winograd, pad 2, blocks", winograd_pad2, {4, 72, 12, 12}, {4, 80, 10, 10}, {72, 80, 3, 3}},
      {"Winograd, chunks of tile rows", winograd_rows, {1, 16, 40, 39}, {1, 17, 40, 39}, {16, 17, 3, 3}},
  };
  std::vector<OpCase> conv_data_cases = {
      {"groups, stride, dilation, pad",
       conv,
       {RandomTensor({2, 4, 4, 5}, 21), RandomTensor({2, 4, 7, 5}, 22), RandomTensor({4, 2, 3, 2}, 23)}},
      {"float64",
       conv_plain,
       {RandomTensor({1, 3, 3, 4}, 24, -1, 1, DType::kFloat64), RandomTensor({1, 2, 5, 6}, 25, -1, 1, DType::kFloat64),
        RandomTensor({3, 2, 3, 3}, 26, -1, 1, DType::kFloat64)}},
  };
  std::vector<OpCase> conv_weight_cases = {
      {"groups, stride, dilation, pad", conv, {RandomTensor({2, 4, 4, 5}, 27), RandomTensor({2, 4, 7, 5}, 28)}},
      {"float64",
       conv_plain,
       {RandomTensor({1, 3, 3, 4}, 29, -1, 1, DType::kFloat64),
        RandomTensor({1, 2, 5, 6}, 30, -1, 1, DType::kFloat64)}},
  };
  uint64_t conv_seed = 300;
  for (const ConvGradCase& c : conv_grad_cases) {
    const Tensor gy = RandomTensor(c.out_grad, ++conv_seed);
    const Tensor x = RandomTensor(c.data, ++conv_seed);
    conv_data_cases.emplace_back(c.desc, c.attrs, std::vector<Tensor>{gy, x, RandomTensor(c.weight, ++conv_seed)});
    conv_weight_cases.emplace_back(c.desc, c.attrs, std::vector<Tensor>{gy, x});
  }
  cases["_backward_Convolution_data"] = std::move(conv_data_cases);
  // Winograd's filter transform (plain, and flipped for a data gradient) and its
  // convolution on transformed filters: partial tiles, pads 0 to 2, with and without bias,
  // few tiles (the products transposed), blocks of tile rows and of filters.
  cases["_winograd_filters"] = {
      {"filters", {}, {RandomTensor({20, 17, 3, 3}, 41)}},
      {"flipped", {{"flip", true}}, {RandomTensor({16, 24, 3, 3}, 42)}},
      {"F(4x4, 3x3)", {{"tile", 4}}, {RandomTensor({20, 17, 3, 3}, 43)}},
      {"F(2x2, 5x5), flipped", {{"flip", true}}, {RandomTensor({16, 24, 5, 5}, 44)}},
  };
  const auto winograd_conv = [](const std::string& desc, std::vector<int64_t> pad, const Shape& data, int64_t filters,
                                bool bias, uint64_t seed, int64_t tile = 2, int64_t kernel = 3) {
    const Tensor weight = RandomTensor({filters, data[1], kernel, kernel}, seed + 1);
    const Tensor u = RunOp("_winograd_filters", {weight}, {{"tile", tile}})[0];
    std::vector<Tensor> inputs = {RandomTensor(data, seed), u};
    if (bias) inputs.push_back(RandomTensor({filters}, seed + 2));
    return OpCase(desc, {{"tile", tile}, {"pad", std::move(pad)}, {"no_bias", !bias}}, std::move(inputs));
  };
  cases["_winograd_conv"] = {
      winograd_conv("odd sizes, pad 1, bias", {1, 1}, {2, 17, 9, 11}, 20, true, 43),
      winograd_conv("pad 0 and 2", {0, 2}, {1, 16, 12, 9}, 16, false, 46),
      winograd_conv("few tiles: transposed products", {1, 1}, {3, 16, 5, 6}, 40, true, 49),
      winograd_conv("blocks of tile rows and filters", {1, 1}, {1, 32, 30, 30}, 200, false, 52),
      winograd_conv("F(4x4, 3x3), partial tiles, rows of few tiles", {1, 1}, {2, 17, 14, 13}, 20, true, 55, 4),
      winograd_conv("F(4x4, 3x3), rows of 16 tiles", {1, 1}, {1, 16, 64, 64}, 16, false, 58, 4),
      winograd_conv("F(2x2, 5x5), few tiles", {0, 0}, {3, 32, 14, 14}, 24, true, 61, 2, 5),
      winograd_conv("F(2x2, 5x5), pad 2", {2, 2}, {1, 16, 11, 10}, 17, false, 64, 2, 5),
  };
  // BatchNorm's gradient with batch statistics: channels on axis 1 (NCHW) and last,
  // gamma used and fixed, float64.
  const auto bn_grad = [](const std::string& desc, const Shape& data, int64_t axis, bool fix_gamma, uint64_t seed,
                          DType dtype = DType::kFloat32) {
    const int64_t channels = data[axis < 0 ? data.size() + axis : axis];
    return OpCase(desc, {{"axis", axis}, {"eps", 1e-5}, {"fix_gamma", fix_gamma}},
                  {RandomTensor(data, seed, -1, 1, dtype), RandomTensor(data, seed + 1, -2, 3, dtype),
                   RandomTensor({channels}, seed + 2, 0.5, 1.5, dtype)});
  };
  cases["_backward_BatchNorm"] = {
      bn_grad("NCHW", {4, 5, 7, 6}, 1, false, 71),
      bn_grad("channels last, fix_gamma", {3, 4, 9}, -1, true, 74),
      bn_grad("one element per channel and image", {8, 3}, 1, false, 77),
      bn_grad("float64", {2, 3, 5, 5}, 1, false, 80, DType::kFloat64),
  };
  cases["_backward_Convolution_weight"] = std::move(conv_weight_cases);
  // Pooling's output comes from the forward, so that max pooling finds its maxima.
  const auto pool_case = [](const std::string& desc, const AttrMap& attrs, const Shape& data, uint64_t seed) {
    const Tensor x = RandomTensor(data, seed);
    const Tensor y = RunOp("Pooling", {x}, attrs)[0];
    return OpCase(desc, attrs, {RandomTensor(y.shape(), seed + 1), x, y});
  };
  cases["_backward_Pooling"] = {
      pool_case("max, full, pad",
                {{"kernel", std::vector<int64_t>{3, 3}},
                 {"stride", std::vector<int64_t>{2, 2}},
                 {"pad", std::vector<int64_t>{1, 1}},
                 {"pooling_convention", "full"}},
                {2, 3, 7, 6}, 31),
      pool_case("avg, count_include_pad false",
                {{"kernel", std::vector<int64_t>{2, 3}},
                 {"stride", std::vector<int64_t>{1, 2}},
                 {"pad", std::vector<int64_t>{1, 1}},
                 {"pool_type", "avg"},
                 {"count_include_pad", false}},
                {1, 2, 5, 6}, 33),
      pool_case("avg, padding counted",
                {{"kernel", std::vector<int64_t>{3, 3}}, {"pad", std::vector<int64_t>{1, 1}}, {"pool_type", "avg"}},
                {1, 2, 4, 5}, 35),
      pool_case("sum, global", {{"global_pool", true}, {"pool_type", "sum"}}, {2, 2, 3, 4}, 37),
      pool_case("max 2x2 stride 2, odd width",
                {{"kernel", std::vector<int64_t>{2, 2}}, {"stride", std::vector<int64_t>{2, 2}}}, {2, 3, 8, 9}, 39),
      pool_case("avg, global 7x7", {{"global_pool", true}, {"pool_type", "avg"}}, {2, 3, 7, 7}, 41),
      pool_case("float64 max 3x3 stride 2 pad 1",
                {{"kernel", std::vector<int64_t>{3, 3}},
                 {"stride", std::vector<int64_t>{2, 2}},
                 {"pad", std::vector<int64_t>{1, 1}}},
                {2, 2, 9, 8}, 43),
  };
  {
    // Ties: the first tap (row-major) equal to the maximum takes the gradient.
    const AttrMap attrs = {{"kernel", std::vector<int64_t>{3, 3}}, {"stride", std::vector<int64_t>{1, 1}}};
    std::vector<double> values;
    for (int i = 0; i < 2 * 7 * 6; ++i) values.push_back((i * 7) % 5);
    const Tensor x = Values({1, 2, 7, 6}, values);
    const Tensor y = RunOp("Pooling", {x}, attrs)[0];
    cases["_backward_Pooling"].emplace_back("max 3x3 stride 1, ties", attrs,
                                            std::vector<Tensor>{RandomTensor(y.shape(), 45), x, y});
    // float64 (the reference's accumulation order does not matter at this size).
    for (OpCase& c : cases["_backward_Pooling"]) {
      if (c.desc.starts_with("float64")) {
        for (Tensor& t : c.inputs) t = Values(t.shape(), t.ToDoubles(), DType::kFloat64);
        c.inputs[2] = RunOp("Pooling", {c.inputs[1]}, c.attrs)[0];
      }
    }
  }
  // The fused optimizer updates (ops/optimizer.cc): weight, grad and states of `shape`
  // (n >= 1 >= g^2 keeps the centered RMSProp's root real), then lr (and eta).
  const auto update_case = [](const std::string& op, const std::string& desc, const AttrMap& attrs, const Shape& shape,
                              uint64_t seed, DType dtype) {
    std::vector<Tensor> inputs;
    for (const std::string& name : OpRegistry::Global().Get(op).InputNames(ParseAttrs(op, attrs))) {
      if (name == "lr" || name == "eta") {
        inputs.push_back(Values({1}, {name == "lr" ? 0.05 : 0.5}, dtype));
      } else if (name == "weight" || name == "grad") {
        inputs.push_back(RandomTensor(shape, ++seed, -2, 2, dtype));
      } else {
        inputs.push_back(RandomTensor(shape, ++seed, name == "n" ? 1 : 0, name == "n" ? 2 : 1, dtype));
      }
    }
    return OpCase(desc, attrs, std::move(inputs));
  };
  const AttrMap clipped = {{"wd", 0.01}, {"rescale_grad", 0.5}, {"clip_gradient", 0.6}};
  uint64_t update_seed = 40;
  for (const std::string op : {"sgd_update", "sgd_mom_update", "nag_mom_update", "adam_update", "adamw_update",
                               "rmsprop_update", "rmspropalex_update"}) {
    AttrMap tuned = clipped;
    if (op == "sgd_mom_update" || op == "nag_mom_update") tuned.emplace_back("momentum", 0.9);
    if (op.starts_with("rmsprop")) tuned.emplace_back("clip_weights", 1.2);
    cases[op] = {
        update_case(op, "defaults, odd size", {}, {1031}, update_seed += 10, DType::kFloat32),
        update_case(op, "clipping, weight decay", tuned, {5, 207}, update_seed += 10, DType::kFloat32),
        update_case(op, "float64", tuned, {3, 7}, update_seed += 10, DType::kFloat64),
        update_case(op, "0-d", tuned, {}, update_seed += 10, DType::kFloat32),
        update_case(op, "empty", {}, {3, 0}, update_seed += 10, DType::kFloat32),
    };
  }
  return cases;
}

// An executor for the cases' graph, with its feeds.
struct CompiledCases {
  std::unique_ptr<Executor> executor;
  std::map<std::string, Tensor> feeds;
};

CompiledCases Compile(const OpDef& op, const CaseGraph& cases, const CompileFn& compile) {
  CompiledCases compiled;
  compiled.executor = compile(op, cases.graph, cases.options);
  // Labels of loss layers are not inputs at inference.
  for (const auto& spec : compiled.executor->inputs()) compiled.feeds[spec.name] = cases.inputs.at(spec.name);
  return compiled;
}

}  // namespace

CaseGraph BuildCaseGraph(const OpDef& op, const std::vector<OpCase>& cases) {
  CaseGraph built;
  std::vector<Symbol> outputs;
  size_t next_output = 0;
  for (size_t k = 0; k < cases.size(); ++k) {
    const OpCase& c = cases[k];
    const std::string prefix = "c" + std::to_string(k);
    const auto names = op.InputNames(ParseAttrs(op.name(), c.attrs));
    std::vector<Symbol> inputs;
    for (size_t i = 0; i < c.inputs.size(); ++i) {
      const std::string name = prefix + "_" + names.at(i);
      inputs.push_back(Symbol::Variable(name, c.inputs[i].shape(), c.inputs[i].dtype()));
      built.options.input_shapes[name] = c.inputs[i].shape();
      built.options.input_types[name] = c.inputs[i].dtype();
      built.inputs[name] = c.inputs[i];
    }
    outputs.push_back(Symbol::Create(op.name(), inputs, c.attrs, prefix));
    built.first_output.push_back(next_output);
    next_output += outputs.back().num_outputs();
  }
  built.graph = Symbol::Group(outputs).ToGraph();
  return built;
}

Tolerance ToleranceFor(DType dtype, OpPattern pattern) {
  const bool pointwise =
      pattern == OpPattern::kElementwise || pattern == OpPattern::kBroadcast || pattern == OpPattern::kInjective;
  switch (dtype) {
    case DType::kFloat64: return {1e-9, 1e-12};
    case DType::kFloat32: return pointwise ? Tolerance{1e-5, 1e-6} : Tolerance{1e-4, 1e-4};
    case DType::kFloat16: return {4e-3, 2e-3};
    case DType::kBFloat16: return {8e-3, 4e-3};
    default: return {0, 0};
  }
}

// Every operator with recorded cases, with the variants and extra cases.
const std::vector<OpCases>& AllOpCases() {
  static const std::vector<OpCases> all = [] {
    std::vector<OpCases> result;
    uint64_t seed = 1;
    for (const auto& file : golden::LoadGoldenFiles()) {
      const OpDef* op = golden::FindOp(file.doc);
      if (op == nullptr) continue;
      std::vector<OpCase> cases = RecordedCases(op->name(), file.doc);
      auto variants = DtypeVariants(op->name(), cases);
      auto extra = ExtraCases(*op, cases, seed);
      for (auto& c : extra) {
        if (TryReference(op->name(), c)) cases.push_back(std::move(c));
      }
      for (auto& c : variants) cases.push_back(std::move(c));
      if (!cases.empty()) result.push_back({op, std::move(cases)});
    }
    for (auto& [name, cases] : BuiltInCases()) {
      const OpDef& op = OpRegistry::Global().Get(name);
      for (auto& c : cases) {
        if (!TryReference(name, c)) throw Error(name + " case '" + c.desc + "' is rejected by the reference");
      }
      result.push_back({&op, std::move(cases)});
    }
    return result;
  }();
  return all;
}

std::vector<std::string> CheckOp(const OpDef& op, const std::vector<OpCase>& cases, const CompileFn& compile) {
  std::vector<std::string> failures;
  const CaseGraph built = BuildCaseGraph(op, cases);
  CompiledCases compiled;
  try {
    compiled = Compile(op, built, compile);
  } catch (const std::exception& e) {
    return {"compiling " + std::to_string(cases.size()) + " cases: " + e.what()};
  }
  const std::vector<Tensor> actual = compiled.executor->Run(compiled.feeds);
  for (size_t k = 0; k < cases.size(); ++k) {
    const OpCase& c = cases[k];
    const std::vector<Tensor> expected = RunOp(op.name(), c.inputs, c.attrs);
    const size_t end = k + 1 < cases.size() ? built.first_output[k + 1] : actual.size();
    for (size_t i = built.first_output[k], out = 0; i < end; ++i, ++out) {
      const Tensor& want = expected.at(out);
      std::string message;
      if (actual[i].dtype() != want.dtype() || actual[i].shape() != want.shape()) {
        message = "got " + std::string(DTypeName(actual[i].dtype())) + " " + ShapeToString(actual[i].shape()) +
                  ", expected " + std::string(DTypeName(want.dtype())) + " " + ShapeToString(want.shape());
      } else if (!c.random.is_null()) {
        if (auto problem = golden::CheckRandom(c.random, actual[i], c.inputs.empty() ? nullptr : &c.inputs[0]))
          message = *problem;
      } else {
        const Tolerance tol = ToleranceFor(want.dtype(), op.pattern());
        AllClose(actual[i], want, tol.rtol, tol.atol, &message);
      }
      if (!message.empty()) failures.push_back("case '" + c.desc + "' output " + std::to_string(out) + ": " + message);
    }
  }
  return failures;
}

bool AllEmittable(const LoweredGraph& lowered) {
  for (const kir::Kernel& kernel : lowered.kernels) {
    if (!cuda::CudaCanEmit(kernel)) return false;
  }
  return true;
}

CompileOptions ForCuda(CompileOptions options) {
  options.cuda = CompileOptions::Cuda{};
  return options;
}

EmittableCases Emittable(const OpDef& op, const std::vector<OpCase>& cases) {
  const CaseGraph all = BuildCaseGraph(op, cases);
  if (AllEmittable(LowerGraph(all.graph, ForCuda(all.options)))) return {cases, 0};
  EmittableCases result;
  for (const OpCase& c : cases) {
    const CaseGraph one = BuildCaseGraph(op, {c});
    if (AllEmittable(LowerGraph(one.graph, ForCuda(one.options)))) {
      result.cases.push_back(c);
    } else {
      ++result.left_out;
    }
  }
  return result;
}

std::vector<OpCase> OnePerDtype(const std::vector<OpCase>& cases) {
  std::vector<OpCase> picked;
  std::set<std::string> seen;
  for (const OpCase& c : cases) {
    std::string types;
    for (const Tensor& t : c.inputs) types += std::string(DTypeName(t.dtype())) + ",";
    if (seen.insert(types).second) picked.push_back(c);
  }
  return picked;
}

}  // namespace kiln::testing
