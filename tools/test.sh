#!/usr/bin/env bash
# Runs kiln's whole test suite and ends with one line "N passed, N failed, N skipped"
# counted from the Catch2 test cases that really ran (a test binary that crashed or
# timed out before its summary counts as one failed case).
# Usage: tools/test.sh [extra bazel flags, e.g. --config=asan]
set -uo pipefail
cd "$(dirname "$0")/.."

tools/install_deps.sh || exit 1
bazel test //... "$@"
bazel_status=$?

passed=0
failed=0
skipped=0
testlogs="$(bazel info bazel-testlogs "$@" 2>/dev/null)"
while IFS= read -r -d '' log; do
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
    echo "no Catch2 summary in ${log#"$testlogs"/} (crashed, timed out or not built)"
    failed=$((failed + 1))
  fi
done < <(find "$testlogs" -name test.log -print0 2>/dev/null)

if [[ $bazel_status -ne 0 && $failed -eq 0 ]]; then
  # The build itself failed: nothing ran that could be counted as a failure.
  failed=1
fi
passed=$((passed - skipped))
echo "${passed} passed, ${failed} failed, ${skipped} skipped"
[[ $bazel_status -eq 0 && $failed -eq 0 ]]
