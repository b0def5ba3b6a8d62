// Parameter files in every format (runtime/param_formats.h: kiln's, MXNet's NDArray
// lists, NumPy's .npz): any bytes parse or give a kiln::Error; what parsed is written in
// its own format and read back unchanged.
#include "runtime/error.h"
#include "runtime/mxnet_params.h"
#include "runtime/npz.h"
#include "runtime/param_formats.h"
#include "tests/fuzz/fuzz_targets.h"

namespace kiln::fuzz {

int FuzzParams(const uint8_t* data, size_t size) {
  ParamList params;
  ParamFormat format = ParamFormat::kKiln;
  try {
    format = DetectParamFormat(AsText(data, size)).value_or(ParamFormat::kKiln);
    params = ParseAnyParams(AsText(data, size), "fuzz.params");
  } catch (const Error&) {
    return 0;
  }
  std::string saved;
  switch (format) {
    case ParamFormat::kMxnet: saved = SerializeMxnetParams(params); break;
    case ParamFormat::kNpz: saved = SerializeNpz(params); break;
    case ParamFormat::kKiln: saved = SerializeParams(params); break;
  }
  const ParamList again = ParseAnyParams(saved, "fuzz.params (saved again)");
  bool same = again.tensors.size() == params.tensors.size();
  // .npz has no unnamed lists: they come back named arr_0, arr_1, ...
  if (format != ParamFormat::kNpz) same = same && again.named == params.named;
  for (size_t i = 0; same && i < params.tensors.size(); ++i) {
    same = (again.tensors[i].first == params.tensors[i].first || !params.named) &&
           again.tensors[i].second.BitwiseEquals(params.tensors[i].second);
  }
  FuzzCheck(same, "a parameter file does not survive being written in its format and read again");
  return 0;
}

}  // namespace kiln::fuzz
