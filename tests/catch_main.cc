// Catch2's main, compiled once for every test binary. tools/test.sh counts test cases
// from the summary line Catch2 prints at the end of each test's log.
#define CATCH_CONFIG_MAIN
#include <catch2/catch.hpp>
