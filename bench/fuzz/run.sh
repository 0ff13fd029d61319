#!/usr/bin/env bash
# Longer fuzzing than the test pass: each harness in fuzz/ for SECONDS (default 600), then the
# new inputs that reach new coverage are merged into fuzz/corpus/<name>/ (libFuzzer -merge=1),
# ready to commit. Prints executions, exec/s, coverage and corpus size per harness; a finding
# fails the run and prints the input and how to reproduce it. No PostgreSQL needed.
#
#   bench/fuzz/run.sh [SECONDS] [HARNESS...]      e.g. bench/fuzz/run.sh 3600 cloudevents
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
seconds=${1:-600}
if [ $# -gt 0 ]; then
  shift
fi
exec "$root/scripts/fuzz.sh" -t "$seconds" --merge "$@"
