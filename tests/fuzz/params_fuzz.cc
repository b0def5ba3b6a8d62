// Parameter files (runtime/param_file.h): any bytes parse or give a kiln::Error; what
// parsed is written and read back unchanged.
#include "runtime/error.h"
#include "runtime/param_file.h"
#include "tests/fuzz/fuzz_targets.h"

namespace kiln::fuzz {

int FuzzParams(const uint8_t* data, size_t size) {
  ParamList params;
  try {
    params = ParseParams(AsText(data, size), "fuzz.params");
  } catch (const Error&) {
    return 0;
  }
  const ParamList again = ParseParams(SerializeParams(params), "fuzz.params (saved again)");
  bool same = again.named == params.named && again.tensors.size() == params.tensors.size();
  for (size_t i = 0; same && i < params.tensors.size(); ++i) {
    same = again.tensors[i].first == params.tensors[i].first &&
           again.tensors[i].second.BitwiseEquals(params.tensors[i].second);
  }
  FuzzCheck(same, "a parameter file does not survive SerializeParams and ParseParams");
  return 0;
}

}  // namespace kiln::fuzz
