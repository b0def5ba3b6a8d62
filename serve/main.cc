// kiln-serve: the inference server alone, linking the runtime only (no LLVM, no
// compiler), as a deployment ships it. Options: serve_main.cc.
#include "serve/serve_main.h"

int main(int argc, char** argv) {
  return kiln::serve::ServeMain(argc, argv);
}
