#!/usr/bin/env bash
# Builds the libFuzzer harnesses (fuzz/, clang, -Dfuzz=true) and runs each for a bounded time
# under ASan + UBSan + LeakSanitizer, starting from its corpus in fuzz/corpus/<name>/ (which
# replays every regression input first). Exits non-zero when a harness crashed, leaked,
# tripped UBSan or an invariant, or timed out on an input; the input is saved and the command
# to reproduce it printed. Prints one line of figures per harness. fuzz/<name>.dict, when
# present, gives libFuzzer the tokens it cannot learn from comparisons (cJSON is not
# instrumented).
#
#   scripts/fuzz.sh [-t SECONDS] [-j JOBS] [--merge] [HARNESS...]
#
#   -t SECONDS   fuzzing time per harness (default 60)
#   -j JOBS      harnesses run at once (default: the number of cores)
#   --merge      afterwards, add the new inputs that reach new coverage to fuzz/corpus/<name>/
#                (libFuzzer -merge=1: only what adds coverage); without it the repository is
#                left untouched and new inputs stay in BUILDDIR/fuzz-out/
#   HARNESS      cloudevents config chart_query score_csv params tz (default: all)
#
#   BP_FUZZ_BUILD_DIR   build directory (default build-fuzz); configured with CC=clang
#
# scripts/test.sh runs this as its `fuzz` pass; bench/fuzz/run.sh runs it longer with --merge.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

seconds=60
jobs=$(nproc 2>/dev/null || echo 2)
merge=0
harnesses=()
while [ $# -gt 0 ]; do
  case "$1" in
    -t) seconds=$2; shift 2 ;;
    -j) jobs=$2; shift 2 ;;
    --merge) merge=1; shift ;;
    -h|--help) sed -n '2,19p' "$0"; exit 0 ;;
    -*) echo "fuzz.sh: unknown option $1" >&2; exit 2 ;;
    *) harnesses+=("$1"); shift ;;
  esac
done
if [ "${#harnesses[@]}" -eq 0 ]; then
  harnesses=(cloudevents config chart_query score_csv params tz)
fi

builddir=${BP_FUZZ_BUILD_DIR:-build-fuzz}
if ! command -v clang >/dev/null 2>&1; then
  echo "fuzz.sh: clang not found; scripts/deps.sh installs it (clang, libclang-rt-dev)" >&2
  exit 1
fi
if [ -f "$builddir/build.ninja" ]; then
  ./scripts/build.sh "$builddir"
else
  CC=clang ./scripts/build.sh "$builddir" -Dfuzz=true -Dtests=false
fi

out="$builddir/fuzz-out"
mkdir -p "$out"
# Every finding is fatal; leaks are checked after each input (libFuzzer's -detect_leaks).
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1:print_summary=1:strict_string_checks=1:detect_stack_use_after_return=1:check_initialization_order=1"
export UBSAN_OPTIONS="halt_on_error=1:abort_on_error=1:print_stacktrace=1:print_summary=1"
if command -v llvm-symbolizer >/dev/null 2>&1; then
  ASAN_SYMBOLIZER_PATH=$(command -v llvm-symbolizer)
  export ASAN_SYMBOLIZER_PATH
fi
# chart_query loads the zones its inputs name, from the system's tzdata.
export TZDIR=${TZDIR:-/usr/share/zoneinfo}

run_one() {
  local h=$1
  local bin="$builddir/fuzz/fuzz_$h" work="$out/$h"
  rm -rf "$work" "$out/$h.artifacts" "$out/$h.rc"
  mkdir -p "$work" "$out/$h.artifacts"
  # New inputs go to the first directory (scratch); the repository corpus is only read.
  # -timeout: one input taking this long is a finding (a hang); generous because the
  # machine is shared.
  local dict=()
  if [ -f "fuzz/$h.dict" ]; then
    dict=(-dict="fuzz/$h.dict")
  fi
  local rc=0
  "$bin" "${dict[@]}" -max_total_time="$seconds" -timeout=25 -rss_limit_mb=1024 -print_final_stats=1 \
    -artifact_prefix="$out/$h.artifacts/" "$work" "fuzz/corpus/$h" >"$out/$h.log" 2>&1 || rc=$?
  echo "$rc" >"$out/$h.rc"
}

status=0
for h in "${harnesses[@]}"; do
  if [ ! -x "$builddir/fuzz/fuzz_$h" ]; then
    echo "fuzz.sh: no harness '$h' in $builddir/fuzz" >&2
    exit 2
  fi
  while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do
    wait -n || true
  done
  echo "fuzz: $h for ${seconds}s"
  run_one "$h" &
done
wait

results=()
for h in "${harnesses[@]}"; do
  rc=$(cat "$out/$h.rc" 2>/dev/null || echo 1)
  log="$out/$h.log"
  stat() { sed -n "s/^stat::$1: *//p" "$log" | tail -1; }
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | cut -d' ' -f2)
  corp=$(grep -o 'corp: [0-9]*/[0-9]*[a-zA-Z]*' "$log" | tail -1 | cut -d' ' -f2)
  line=$(printf '%-12s %10s execs %7s exec/s  cov %5s  corpus %-10s peak %4s MB' "$h" \
    "$(stat number_of_executed_units)" "$(stat average_exec_per_sec)" "${cov:-?}" "${corp:-?}" \
    "$(stat peak_rss_mb)")
  if [ "$rc" -ne 0 ]; then
    status=1
    art=$(find "$out/$h.artifacts" -type f | head -1)
    echo "=== fuzz: $h FAILED (exit $rc) ==="
    grep -E 'ERROR|runtime error|invariant broken|SUMMARY|#[0-9]+ 0x' "$log" | head -30 || true
    echo "log: $log"
    if [ -n "$art" ]; then
      echo "input: $art"
      echo "reproduce: $builddir/fuzz/fuzz_$h $art"
      echo "then fix the library, and keep the input: cp $art fuzz/corpus/$h/regress-<what>"
    fi
    results+=("$line  FAILED")
  else
    results+=("$line  ok")
    if [ "$merge" -eq 1 ]; then
      before=$(find "fuzz/corpus/$h" -type f | wc -l)
      "$builddir/fuzz/fuzz_$h" -merge=1 "fuzz/corpus/$h" "$out/$h" >"$out/$h.merge.log" 2>&1
      after=$(find "fuzz/corpus/$h" -type f | wc -l)
      results+=("             merged into fuzz/corpus/$h: $before -> $after inputs")
    fi
  fi
done

echo "=== fuzz: ${seconds}s per harness, $jobs at once ==="
printf '%s\n' "${results[@]}"
exit "$status"
