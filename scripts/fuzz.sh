#!/usr/bin/env bash
# Builds the libFuzzer harnesses of tests/fuzz (clang, -fsanitize=fuzzer,address,undefined) into
# build-fuzz/ and runs each for a fixed time from its committed seed corpus
# (tests/fuzz/corpus/<name>; the fuzzer adds its finds to build-fuzz/corpus/<name>, never to the
# source tree). Prints, per harness, the executions and libFuzzer's coverage figures (cov: edges,
# ft: features). A crash, a leak, a sanitizer report or a timeout fails the script; the input
# that caused it is kept as build-fuzz/artifacts/<name>/crash-* (rerun it with
# build-fuzz/tests/fuzz/fuzz_<name> FILE).
#   scripts/fuzz.sh                 every harness for 10 s (what CI runs)
#   scripts/fuzz.sh -t 600 gguf     one harness for 10 minutes
#   scripts/fuzz.sh --seeds         regenerate the binary seeds (tests/fuzz/make_corpus.c) first
#   scripts/fuzz.sh --build-only    build, run nothing
# Environment: VKLM_FUZZ_BUILD (default build-fuzz), VKLM_FUZZ_JOBS (build jobs, default nproc).
set -euo pipefail
cd "$(dirname "$0")/.."
secs=10
seeds=0
build_only=0
names=()
while [ $# -gt 0 ]; do
  case "$1" in
    -t|--time) secs="$2"; shift 2 ;;
    --seeds) seeds=1; shift ;;
    --build-only) build_only=1; shift ;;
    -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
    -*) echo "fuzz.sh: unknown option $1" >&2; exit 2 ;;
    *) names+=("$1"); shift ;;
  esac
done
case "$secs" in ''|*[!0-9]*) echo "fuzz.sh: -t needs whole seconds" >&2; exit 2 ;; esac
build="${VKLM_FUZZ_BUILD:-build-fuzz}"
if ! command -v clang >/dev/null; then
  echo "fuzz.sh: clang is needed (apt-get install clang)" >&2
  exit 2
fi
CC=clang cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DVKLM_FUZZ=ON >/dev/null
cmake --build "$build" -j"${VKLM_FUZZ_JOBS:-$(nproc)}" >/dev/null
if [ "$seeds" = 1 ]; then
  "$build/tests/fuzz/make_corpus" tests/fuzz/corpus
fi
[ "$build_only" = 1 ] && exit 0
if [ ${#names[@]} -eq 0 ]; then
  for f in tests/fuzz/fuzz_*.c; do n=$(basename "$f" .c); names+=("${n#fuzz_}"); done
fi
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:allocator_may_return_null=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}"
failed=0
printf '%-16s %10s %8s %8s %8s  %s\n' harness execs exec/s cov ft result
for n in "${names[@]}"; do
  bin="$build/tests/fuzz/fuzz_$n"
  [ -x "$bin" ] || { echo "fuzz.sh: no harness $n" >&2; failed=1; continue; }
  work="$build/corpus/$n"
  art="$build/artifacts/$n"
  mkdir -p "$work" "$art"
  log="$build/fuzz_$n.log"
  rc=0
  "$bin" -max_total_time="$secs" -timeout=20 -rss_limit_mb=3072 -max_len=65536 \
    -print_final_stats=1 -artifact_prefix="$art/" "$work" "tests/fuzz/corpus/$n" >"$log" 2>&1 || rc=$?
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | cut -d' ' -f2)
  ft=$(grep -o 'ft: [0-9]*' "$log" | tail -1 | cut -d' ' -f2)
  res=ok
  if [ "$rc" != 0 ]; then
    res="FAILED (rc $rc, log $log)"
    failed=1
    grep -m5 -E 'ERROR|runtime error|SUMMARY|Test unit written' "$log" >&2 || true
  fi
  printf '%-16s %10s %8s %8s %8s  %s\n' "$n" "${execs:-?}" "${rate:-?}" "${cov:-?}" "${ft:-?}" "$res"
done
exit "$failed"
