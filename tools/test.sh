#!/usr/bin/env bash
# Runs kiln's whole test suite and ends with one line "N passed, N failed, N skipped"
# counted from the Catch2 test cases that really ran (a test binary that crashed or
# timed out before its summary counts as one failed case), plus one case per fuzz target
# (tools/fuzz.sh runs each for a bounded time).
# Usage: tools/test.sh [extra bazel flags]
#   --config=asan  the suite under AddressSanitizer and UndefinedBehaviorSanitizer
#   --config=tsan  the tests tagged "concurrency" under ThreadSanitizer
# With extra flags the fuzz targets are not run (they have their own sanitizers).
set -uo pipefail
cd "$(dirname "$0")/.."

tools/install_deps.sh || exit 1
bazel test //... "$@"
bazel_status=$?

# The tests this run covers: all of them, or those of the tag filter a config sets.
query='tests(//...)'
if [[ " $* " == *" --config=tsan "* ]]; then query='attr(tags, "\bconcurrency\b", tests(//...))'; fi
mapfile -t labels < <(bazel query "$query" 2>/dev/null)

passed=0
failed=0
skipped=0
testlogs="$(bazel info bazel-testlogs "$@" 2>/dev/null)"
for label in "${labels[@]}"; do
  package="${label#//}"
  log="$testlogs/${package%%:*}/${label##*:}/test.log"
  if [[ ! -f "$log" ]]; then
    echo "no test log for $label (not built)"
    failed=$((failed + 1))
    continue
  fi
  summary="$(grep -E '^(All tests passed|test cases:|No tests ran)' "$log" | tail -1)"
  # A test that cannot run here says so in a warning: "  SKIPPED: why".
  skips="$(grep -c '^ *SKIPPED:' "$log" || true)"
  skipped=$((skipped + skips))
  if [[ "$summary" =~ ^All\ tests\ passed.*\ ([0-9]+)\ test\ case ]]; then
    passed=$((passed + BASH_REMATCH[1]))
  elif [[ "$summary" =~ ^test\ cases:\ +([0-9]+) ]]; then
    p=0; f=0
    [[ "$summary" =~ ([0-9]+)\ passed ]] && p=${BASH_REMATCH[1]}
    [[ "$summary" =~ ([0-9]+)\ failed ]] && f=${BASH_REMATCH[1]}
    passed=$((passed + p)); failed=$((failed + f))
  else
    echo "no Catch2 summary for $label (crashed, timed out or not built)"
    failed=$((failed + 1))
  fi
done

if [[ $bazel_status -ne 0 && $failed -eq 0 ]]; then
  # The build itself failed: nothing ran that could be counted as a failure.
  failed=1
fi
passed=$((passed - skipped))

# Fuzzing: every loader and parser for a short while (tools/fuzz.sh, docs/RELIABILITY.md);
# without clang 14 and libFuzzer its targets count as skipped.
if (($# == 0)); then
  fuzz_log="$(mktemp)"
  tools/fuzz.sh --seconds "${KILN_FUZZ_SECONDS:-10}" | tee "$fuzz_log"
  fuzz_summary="$(grep -E '^fuzz: [0-9]+ passed' "$fuzz_log" | tail -1)"
  rm -f "$fuzz_log"
  if [[ "$fuzz_summary" =~ ^fuzz:\ ([0-9]+)\ passed,\ ([0-9]+)\ failed(,\ ([0-9]+)\ skipped)? ]]; then
    passed=$((passed + BASH_REMATCH[1]))
    failed=$((failed + BASH_REMATCH[2]))
    skipped=$((skipped + ${BASH_REMATCH[4]:-0}))
  else
    echo "tools/fuzz.sh printed no summary"
    failed=$((failed + 1))
  fi
fi
echo "${passed} passed, ${failed} failed, ${skipped} skipped"
[[ $bazel_status -eq 0 && $failed -eq 0 ]]
