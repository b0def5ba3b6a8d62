// .npy files (runtime/npy.h): any bytes parse to a tensor or give a kiln::Error, and a
// tensor that parsed is written and read back bit for bit.
#include "runtime/error.h"
#include "runtime/npy.h"
#include "tests/fuzz/fuzz_targets.h"

namespace kiln::fuzz {

int FuzzNpy(const uint8_t* data, size_t size) {
  Tensor tensor;
  try {
    tensor = ParseNpy(AsText(data, size), "fuzz.npy");
  } catch (const Error&) {
    return 0;
  }
  const Tensor again = ParseNpy(SerializeNpy(tensor), "fuzz.npy (saved again)");
  FuzzCheck(again.BitwiseEquals(tensor), "an .npy tensor does not survive SerializeNpy and ParseNpy");
  return 0;
}

}  // namespace kiln::fuzz
