#!/usr/bin/env bash
# bizpulse load benchmark (issue 8, "Load"): wrk against render (chart cold and warm) and detect
# (aggregated CloudEvents) at rising concurrency on loopback, ~10 s per level. Prints
# throughput, p50/p99 latency, non-2xx answers by status, socket errors and RSS over time; never
# fails on a figure. Installs wrk (apt) when missing: only this bench needs it.
#
#   bench/load/run.sh [--quick] [--levels 1,2,4,8,16,64] [--seconds 10] [--only "render warm"]
#
# BP_BUILD_DIR=DIR uses binaries already built there; otherwise a release build goes to
# /tmp/bench-load-build.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
if ! command -v wrk >/dev/null; then
  apt-get install -y wrk >/dev/null
fi
build=${BP_BUILD_DIR:-/tmp/bench-load-build}
if [ -z "${BP_BUILD_DIR:-}" ]; then
  if [ ! -f "$build/build.ninja" ]; then
    meson setup "$build" "$root" -Dbuildtype=release -Dtests=false >/dev/null
  fi
  ninja -C "$build" functions/aggregate/bizpulse-aggregate functions/detect/bizpulse-detect \
    functions/render/bizpulse-render >/dev/null
fi
exec python3 "$here/run.py" "$build" "$@"
