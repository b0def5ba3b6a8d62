#!/usr/bin/env bash
# Coverage-guided fuzzing (libFuzzer, with ASan and UBSan) of every loader and parser
# kiln has: the targets of tests/fuzz/ (docs/RELIABILITY.md). Builds the fuzz binaries
# with --config=fuzz (clang 14) in an output base of their own, runs each target for a
# bounded time over a scratch copy of its seed corpus (the repository is never
# modified) with its dictionary, prints its figures, and ends with the line
#   fuzz: P passed, F failed            (", S skipped" added when some were skipped)
# Exits nonzero when any target crashed or did not build. Without clang 14 and libFuzzer
# (libclang-rt-14-dev) it says so and every target counts as skipped.
#
# Usage: tools/fuzz.sh [--seconds N] [--runs N] [--report FILE] [--keep DIR] [TARGET...]
#   --seconds N    stop each target after N seconds (default 20 unless --runs is given)
#   --runs N       stop each target after N executions (with --seconds: whichever first)
#   --report FILE  rewrite the figures table of FILE (docs/RELIABILITY.md)
#   --keep DIR     keep the grown corpora and the logs in DIR/<target>/
#   TARGET         npy params graph graph_text artifact executor onnx attrs shape cli keys mxnet_symbol
#                  initializer optimizer idx infer_request grpc_infer_request model_config
#                  (all by default)
#
# Crashes are left in a scratch directory that is named in the output, with the
# command that replays them. The build shares the disk cache with the main build but
# not its server: run beside `bazel test //...` if you like (on shared machines, wrap
# it in `flock -o LOCK tools/fuzz.sh ...`; -o keeps the Bazel server it starts from
# inheriting the lock).
set -uo pipefail
cd "$(dirname "$0")/.."

ALL_TARGETS=(npy params graph graph_text artifact executor cuda_executor onnx attrs shape cli keys mxnet_symbol initializer optimizer idx
  infer_request grpc_infer_request model_config)
seconds=""
runs=""
report=""
keep=""
targets=()
command_line="tools/fuzz.sh $*"
while (($#)); do
  case "$1" in
    --seconds) seconds="${2:?--seconds needs a number}"; shift 2 ;;
    --runs) runs="${2:?--runs needs a number}"; shift 2 ;;
    --report) report="${2:?--report needs a file}"; shift 2 ;;
    --keep) keep="${2:?--keep needs a directory}"; shift 2 ;;
    -h|--help) sed -n '2,/^set -uo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    -*) echo "fuzz.sh: unknown option $1" >&2; exit 2 ;;
    *) targets+=("$1"); shift ;;
  esac
done
[[ -z "$seconds" && -z "$runs" ]] && seconds=20
((${#targets[@]})) || targets=("${ALL_TARGETS[@]}")
for target in "${targets[@]}"; do
  if [[ ! " ${ALL_TARGETS[*]} " =~ \ ${target}\  ]]; then
    echo "fuzz.sh: unknown target '$target' (known: ${ALL_TARGETS[*]})" >&2
    exit 2
  fi
done

summary() {  # passed failed skipped
  local line="fuzz: $1 passed, $2 failed"
  (($3)) && line+=", $3 skipped"
  echo "$line"
}

runtime_dir="$(clang-14 -print-runtime-dir 2>/dev/null || true)"
if ! command -v clang-14 >/dev/null || [[ ! -f "$runtime_dir/libclang_rt.fuzzer-x86_64.a" ]]; then
  echo "fuzz: skipped: clang-14 and libFuzzer are needed (Debian: apt-get install clang libclang-rt-14-dev," \
    "which tools/install_deps.sh installs)"
  summary 0 0 "${#targets[@]}"
  exit 0
fi

# An output base of its own, derived from the workspace path: the fuzz build neither
# evicts the gcc build's analysis cache nor waits for its server.
output_base="$HOME/.cache/kiln-fuzz/$(pwd -P | md5sum | cut -c1-16)"
bazel=(bazel --output_base="$output_base")
work="$(mktemp -d "${TMPDIR:-/tmp}/kiln-fuzz.XXXXXX")"
keep_work=0
cleanup() {
  "${bazel[@]}" shutdown >/dev/null 2>&1
  ((keep_work)) || rm -rf "$work"
}
trap cleanup EXIT

labels=()
for target in "${targets[@]}"; do labels+=("//tests/fuzz:${target}_fuzzer"); done
build_start=$SECONDS
"${bazel[@]}" build --config=fuzz --keep_going "${labels[@]}" >"$work/build.log" 2>&1
build_status=$?
echo "fuzz: built ${#targets[@]} fuzz binaries with clang 14 in $((SECONDS - build_start)) s" \
  "(log: bazel --output_base=$output_base)"
bin_dir="$("${bazel[@]}" info --config=fuzz bazel-bin 2>/dev/null)"
if ((build_status)); then
  grep -E '^ERROR|error:' "$work/build.log" | head -20
fi

export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:symbolize=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
command -v llvm-symbolizer-14 >/dev/null && export ASAN_SYMBOLIZER_PATH="$(command -v llvm-symbolizer-14)"

# A figure from libFuzzer's final stats (-print_final_stats=1) in the target's log.
final_stat() { sed -n "s/^stat::$1: *//p" "$dir/log" | tail -1; }

passed=0
failed=0
rows=()
for target in "${targets[@]}"; do
  binary="$bin_dir/tests/fuzz/${target}_fuzzer"
  if ((build_status)) && ! "${bazel[@]}" build --config=fuzz "//tests/fuzz:${target}_fuzzer" >/dev/null 2>&1; then
    echo "fuzz $target: FAILED  (does not build with --config=fuzz)"
    failed=$((failed + 1))
    rows+=("| $target | - | - | - | - | - | does not build |")
    continue
  fi
  dir="$work/$target"
  mkdir -p "$dir/corpus" "$dir/crashes"
  for source in "tests/fuzz/corpus/$target" "tests/fuzz/regressions/$target"; do
    [[ -d "$source" ]] && find "$source" -maxdepth 1 -type f ! -name '.*' -exec cp {} "$dir/corpus/" \;
  done
  seeds="$(find "$dir/corpus" -type f | wc -l)"
  limits=()
  [[ -n "$seconds" ]] && limits+=("-max_total_time=$seconds")
  [[ -n "$runs" ]] && limits+=("-runs=$runs")
  dict=()
  [[ -f "tests/fuzz/dict/$target.dict" ]] && dict=("-dict=tests/fuzz/dict/$target.dict")
  start=$SECONDS
  "$binary" "${limits[@]}" "${dict[@]}" -print_final_stats=1 -rss_limit_mb=2048 -malloc_limit_mb=2048 \
    -timeout=25 -artifact_prefix="$dir/crashes/" "$dir/corpus" >"$dir/log" 2>&1
  status=$?
  elapsed=$((SECONDS - start))

  execs="$(final_stat number_of_executed_units)"
  rate="$(final_stat average_exec_per_sec)"
  cov_line="$(grep -E 'cov: [0-9]+ ft: [0-9]+' "$dir/log" | tail -1)"
  cov="$(sed -E 's/.*cov: ([0-9]+).*/\1/' <<<"$cov_line")"
  ft="$(sed -E 's/.*ft: ([0-9]+).*/\1/' <<<"$cov_line")"
  corpus="$(find "$dir/corpus" -type f | wc -l)"
  crashes="$(find "$dir/crashes" -type f \( -name 'crash-*' -o -name 'leak-*' -o -name 'timeout-*' -o -name 'oom-*' \) |
    wc -l)"
  if ((status == 0 && crashes == 0)); then
    verdict=PASSED
    passed=$((passed + 1))
  else
    verdict=FAILED
    failed=$((failed + 1))
    keep_work=1
  fi
  printf 'fuzz %s: %s  %s execs (%s/s), cov %s, ft %s, corpus %s -> %s, crashes %s  [%s s]\n' "$target" "$verdict" \
    "${execs:-?}" "${rate:-?}" "${cov:-?}" "${ft:-?}" "$seeds" "$corpus" "$crashes" "$elapsed"
  if [[ $verdict == FAILED ]]; then
    grep -E '^SUMMARY:|ERROR: libFuzzer|fuzz invariant broken|^==[0-9]+==ERROR|runtime error:|terminate called' \
      "$dir/log" | head -5 | sed 's/^/    /'
    echo "    log: $dir/log"
    for crash in "$dir"/crashes/*; do
      [[ -f "$crash" ]] || continue
      echo "    replay: $binary $crash"
      echo "    then keep it: cp $crash tests/fuzz/regressions/$target/ (docs/RELIABILITY.md)"
    done
  fi
  rows+=("| $target | ${execs:-?} | ${rate:-?} | ${cov:-?} | ${ft:-?} | $seeds → $corpus | $crashes | ${elapsed} s |")
  if [[ -n "$keep" ]]; then
    mkdir -p "$keep/$target"
    cp -r "$dir/." "$keep/$target/"
  fi
done

if [[ -n "$report" ]]; then
  limit_text="$([[ -n "$runs" ]] && echo "$runs executions")"
  [[ -n "$seconds" ]] && limit_text="${limit_text:+$limit_text or }$seconds s"
  {
    echo "<!-- fuzz:figures:begin (tools/fuzz.sh --report rewrites this table) -->"
    echo "Measured $(date -u +%Y-%m-%d) on $(nproc) cores of $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo |
      head -1), clang 14 with ASan and UBSan, one target at a time, each stopped after $limit_text:"
    echo "\`$command_line\`"
    echo
    echo "| target | executions | exec/s | cov | ft | corpus (seeds → after) | crashes | time |"
    echo "|---|---:|---:|---:|---:|---|---:|---:|"
    printf '%s\n' "${rows[@]}"
    echo "<!-- fuzz:figures:end -->"
  } >"$work/figures.md"
  if [[ -f "$report" ]] && grep -q '<!-- fuzz:figures:begin' "$report"; then
    awk -v figures="$work/figures.md" '
      /<!-- fuzz:figures:begin/ { while ((getline line < figures) > 0) print line; skip = 1; next }
      /<!-- fuzz:figures:end/ { skip = 0; next }
      !skip { print }' "$report" >"$work/report.md" && cat "$work/report.md" >"$report"
  else
    { echo; cat "$work/figures.md"; } >>"$report"
  fi
  echo "fuzz: figures written to $report"
fi

((keep_work)) && echo "fuzz: crashes and logs kept in $work"
summary "$passed" "$failed" 0
((failed == 0))
