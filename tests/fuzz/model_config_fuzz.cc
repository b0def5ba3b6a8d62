// A model repository's config.pbtxt (serve/model_repository.h): any text parses to a
// configuration with max_batch_size at least 0, or gives a kiln::Error that names the
// file and what is wrong.
#include <string>

#include "runtime/error.h"
#include "serve/model_repository.h"
#include "tests/fuzz/fuzz_targets.h"

namespace kiln::fuzz {

int FuzzModelConfig(const uint8_t* data, size_t size) {
  try {
    const proto::ModelConfigProto config = serve::ParseModelConfig(AsText(data, size), "config.pbtxt");
    FuzzCheck(config.max_batch_size() >= 0, "a config with a negative max_batch_size");
  } catch (const Error& e) {
    FuzzCheck(std::string_view(e.what()).starts_with("config.pbtxt: "), "a config error that does not name the file");
  }
  return 0;
}

}  // namespace kiln::fuzz
