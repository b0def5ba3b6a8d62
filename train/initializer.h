// Parameter initializers with MXNet 1.9.1's names, arguments and formulas (mx.init).
// Draws come from a caller-owned std::mt19937_64 through kiln's own uniform and normal
// transforms, so a seed gives the same parameters with every standard library.
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "runtime/tensor.h"

namespace kiln {

class Initializer {
 public:
  virtual ~Initializer() = default;

  // MXNet's rule by name (Initializer._legacy_init): "...bias", "...beta",
  // "...moving_mean", "...moving_inv_var", "...moving_avg" and "...min" are zero;
  // "...gamma", "...moving_var" and "...max" are one; "...weight" gets InitWeight.
  // Suffixes are tested in MXNet's order. Any other name throws kiln::Error.
  void Init(const std::string& name, Tensor& array, std::mt19937_64& rng) const;

  // Fills `array` (any floating or integer dtype; written through double) with this
  // initializer's values regardless of its name. `name` is only for error messages.
  virtual void InitWeight(const std::string& name, Tensor& array, std::mt19937_64& rng) const = 0;

  // The canonical spec, e.g. "xavier(rnd_type=uniform, factor_type=avg, magnitude=3)";
  // MakeInitializer(ToString()) gives an equal initializer.
  virtual std::string ToString() const = 0;
};

// Parses "name" or "name(arg=value, ...)" (positional arguments in MXNet's constructor
// order are accepted too; string values may be quoted). Names, case-insensitive:
// zero|zeros, one|ones, constant(value), uniform(scale=0.07), normal(sigma=0.01),
// xavier(rnd_type=uniform, factor_type=avg, magnitude=3),
// msra_prelu|msraprelu(factor_type=avg, slope=0.25), orthogonal(scale=1.414,
// rand_type=uniform). Throws kiln::Error naming the spec, the argument, and the expected
// and given values.
std::unique_ptr<Initializer> MakeInitializer(const std::string& spec);

// Xavier's scale sqrt(magnitude / factor) for `shape` (MXNet: fan_in = prod(shape[1:]),
// fan_out = shape[0] * prod(shape[2:])); factor_type is "avg", "in" or "out". Throws for
// fewer than two dimensions, as MXNet does.
double XavierScale(const Shape& shape, const std::string& factor_type, double magnitude,
                   const std::string& name = "array");

// A graph's parameters or auxiliary states, as Module.init_params and `kiln train` make
// them. For each of `names` (with `shapes`, one each, as shape inference gives them) but
// the data and labels in `inputs`: a copy of `given`'s value where it has one (its shape
// must match), else a float32 tensor that `initializer` fills by its rule by name (Init:
// weights drawn from `rng` in the order of `names`, moving_mean zero, moving_var one...).
// With `allow_missing` false, a `given` that is not empty must hold every name. Throws
// kiln::Error starting with `context` for a shape not inferred, a given value of another
// shape or a missing one.
std::map<std::string, Tensor> InitializeParams(const std::vector<std::string>& names,
                                               const std::vector<std::optional<Shape>>& shapes,
                                               const std::vector<std::string>& inputs,
                                               const std::map<std::string, Tensor>& given, bool allow_missing,
                                               const Initializer& initializer, std::mt19937_64& rng,
                                               const std::string& context);

}  // namespace kiln
