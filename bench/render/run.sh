#!/usr/bin/env bash
# bizpulse render benchmark (issue 6, DESIGN §8): bizpulse's chart vs a bare cairo program (the
# floor) vs the original matplotlib picture, cold start, RSS and charts/s, in one run. Prints a
# table; never fails on a figure. Needs python3-matplotlib (scripts/deps.sh installs it).
#
#   bench/render/run.sh [--quick]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
# A release build of its own inside the checkout (ignored by git), so benchmarks run from
# several checkouts at once do not share or rebuild each other's binaries.
build=${BP_BENCH_BUILD:-$root/build-bench}
if [ ! -f "$build/build.ninja" ]; then
  meson setup "$build" "$root" -Dbuildtype=release -Dtests=false >/dev/null
fi
ninja -C "$build" functions/render/bizpulse-render >/dev/null
exec python3 "$here/run.py" "$build" "$@"
