// The command line of kiln-serve, shared by `kiln serve`.
#pragma once

namespace kiln::serve {

// Parses the options, serves until SIGTERM or SIGINT, and returns the exit status.
int ServeMain(int argc, char** argv);

}  // namespace kiln::serve
