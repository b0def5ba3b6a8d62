// Initializer specs (train/initializer.h), as `kiln train --init` will read them: any
// text either parses or throws kiln::Error. What parses fills a small weight, and its
// canonical spec (ToString) parses to an initializer that fills the same values from the
// same seed.
#include <random>
#include <string>

#include "runtime/error.h"
#include "tests/fuzz/fuzz_targets.h"
#include "train/initializer.h"

namespace kiln::fuzz {

int FuzzInitializer(const uint8_t* data, size_t size) {
  try {
    const auto initializer = MakeInitializer(std::string(AsText(data, size)));
    Tensor first({4, 6}, DType::kFloat32);
    std::mt19937_64 rng(7);
    initializer->InitWeight("fuzz_weight", first, rng);
    const std::string canonical = initializer->ToString();
    std::unique_ptr<Initializer> again;
    try {
      again = MakeInitializer(canonical);
    } catch (const Error& e) {
      FuzzCheck(false, "the canonical spec '" + canonical + "' does not parse: " + e.what());
    }
    Tensor second({4, 6}, DType::kFloat32);
    std::mt19937_64 same(7);
    again->InitWeight("fuzz_weight", second, same);
    FuzzCheck(first.BitwiseEquals(second), "'" + canonical + "' fills other values than the spec it came from");
  } catch (const Error&) {
  }
  return 0;
}

}  // namespace kiln::fuzz
