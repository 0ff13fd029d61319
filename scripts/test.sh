#!/usr/bin/env bash
# The test command (README, .ci/run): installs what is missing, builds, runs the unit and
# integration suites against one throwaway PostgreSQL cluster, then builds again with
# AddressSanitizer + UndefinedBehaviorSanitizer and runs the whole suite once more, any
# sanitizer finding (leaks included) failing its test; last, builds the libFuzzer harnesses
# (clang) and fuzzes each parser of outside input for a bounded time from its corpus
# (scripts/fuzz.sh), any crash, leak, UB or broken invariant failing the pass. Exits non-zero
# when anything failed.
#
#   ./scripts/test.sh                 all three passes
#   BP_TEST_PASSES=plain ./scripts/test.sh     only the plain pass (or: asan, fuzz, "plain fuzz"...)
#   BP_FUZZ_SECONDS=N                 fuzzing time per harness in the fuzz pass (default 45;
#                                     six harnesses, as many at once as there are cores)
#   MESON_TESTTHREADS=N               parallel tests (default: max(4, cores); the
#                                     integration tests mostly wait on I/O)
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

passes=${BP_TEST_PASSES:-plain asan fuzz}
cores=$(nproc 2>/dev/null || echo 2)
export MESON_TESTTHREADS=${MESON_TESTTHREADS:-$((cores < 4 ? 4 : cores))}

./scripts/deps.sh

pgdir=$(mktemp -d /tmp/bp-pg.XXXXXX)
# Called from the EXIT trap.
# shellcheck disable=SC2317
cleanup() {
  "$root/scripts/pgcluster.sh" stop "$pgdir" || true
  rm -rf "$pgdir"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

./scripts/pgcluster.sh start "$pgdir"
eval "$(./scripts/pgcluster.sh env "$pgdir")"
export BP_TEST_PGHOST="$PGHOST" BP_TEST_PGPORT="$PGPORT"
# The tests name their databases themselves; nothing should fall back to these.
unset PGHOST PGPORT PGUSER DATABASE_URL

status=0
summary=()

run_pass() {
  local name=$1 dir=$2
  shift 2
  echo "=== $name: build ($dir) ==="
  if ! ./scripts/build.sh "$dir" "$@"; then
    summary+=("$name: BUILD FAILED")
    status=1
    return
  fi
  echo "=== $name: meson test ==="
  if meson test -C "$dir" --print-errorlogs "${test_args[@]}"; then
    summary+=("$name: ok")
  else
    summary+=("$name: FAILED (log: $dir/meson-logs/testlog.txt)")
    status=1
  fi
}

for pass in $passes; do
  case "$pass" in
    plain)
      test_args=()
      run_pass plain build -Dsanitize_all=false
      ;;
    asan)
      # Every finding is fatal and leaks are reported at exit. meson test would set milder
      # defaults only when these are unset.
      export ASAN_OPTIONS="detect_leaks=1:halt_on_error=1:abort_on_error=1:print_summary=1:strict_string_checks=1:detect_stack_use_after_return=1:check_initialization_order=1:strict_init_order=1"
      export UBSAN_OPTIONS="halt_on_error=1:abort_on_error=1:print_stacktrace=1:print_summary=1"
      if [ -f "$root/tests/lsan.supp" ]; then
        export LSAN_OPTIONS="suppressions=$root/tests/lsan.supp:print_suppressions=0"
      fi
      test_args=(--timeout-multiplier 3)
      run_pass asan build-asan -Dsanitize_all=true
      unset ASAN_OPTIONS UBSAN_OPTIONS LSAN_OPTIONS
      ;;
    fuzz)
      echo "=== fuzz: build (build-fuzz) and run ==="
      if BP_FUZZ_BUILD_DIR=build-fuzz ./scripts/fuzz.sh -t "${BP_FUZZ_SECONDS:-45}"; then
        summary+=("fuzz: ok")
      else
        summary+=("fuzz: FAILED (logs and inputs: build-fuzz/fuzz-out/)")
        status=1
      fi
      ;;
    *)
      echo "test.sh: unknown pass '$pass' (plain, asan, fuzz)" >&2
      exit 2
      ;;
  esac
done

echo "=== summary ==="
printf '%s\n' "${summary[@]}"
exit "$status"
