// The libFuzzer entry point of one target; tests/fuzz/BUILD compiles it once per target
// with KILN_FUZZ_FN naming the target's function.
#include "tests/fuzz/fuzz_targets.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  return kiln::fuzz::KILN_FUZZ_FN(data, size);
}
