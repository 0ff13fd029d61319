#!/usr/bin/env bash
# bizpulse aggregate benchmark (issue 4, DESIGN §8): floor vs bizpulse vs the original algorithm,
# time and WAL, in one run against a throwaway PostgreSQL cluster. Prints a table; never fails
# on a figure. See bench/README.md.
#
#   bench/aggregate/run.sh [--events N] [--ticks N] [--original-budget S] [--variants default,jit-off]
#                          [--set name=value]...    extra PostgreSQL settings for the bench cluster
#
# 10 M events (the default) take ~3 min on 2 cores; --events 1000000 under 1 min.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
# the checkout's own build (a shared /tmp directory would benchmark whichever checkout set it up)
build=$root/build-bench
settings=()
pass=()
while [ $# -gt 0 ]; do
  case "$1" in
    --set) settings+=("$2"); shift 2 ;;
    --set=*) settings+=("${1#--set=}"); shift ;;
    -h|--help) sed -n 2,10p "$0"; exit 0 ;;
    *) pass+=("$1"); shift ;;
  esac
done

command -v psql >/dev/null || { echo "run.sh: psql not found (scripts/deps.sh installs it)" >&2; exit 1; }
if [ ! -f "$build/build.ninja" ]; then
  meson setup "$build" "$root" -Dbuildtype=release >/dev/null
fi
ninja -C "$build" functions/aggregate/bizpulse-aggregate >/dev/null
binary=$build/functions/aggregate/bizpulse-aggregate

work=$(mktemp -d /tmp/bp-bench.XXXXXX)
out=$(mktemp -d /tmp/bp-bench-out.XXXXXX)
cleanup() {
  local rc=$?
  if [ -f "$work/serve.pid" ]; then
    pid=$(cat "$work/serve.pid")
    if kill -0 "$pid" 2>/dev/null; then kill "$pid" 2>/dev/null || true; fi
  fi
  "$root/scripts/pgcluster.sh" stop "$work" || true
  rm -rf "$work"
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

"$root/scripts/pgcluster.sh" start "$work" >/dev/null
eval "$("$root/scripts/pgcluster.sh" env "$work")"
export PGDATABASE=postgres
# pgcluster.sh's settings (fsync, synchronous_commit and full_page_writes off) stay; the bench
# adds a realistic cache, pg_stat_statements (per-statement times), no autovacuum (so nothing
# else writes WAL or competes during a measurement), and room for the load's WAL.
mem_kb=$(awk '/MemTotal/ {print $2}' /proc/meminfo)
sb_mb=$((mem_kb / 1024 / 4)); [ "$sb_mb" -gt 4096 ] && sb_mb=4096
{
  echo "ALTER SYSTEM SET shared_buffers = '${sb_mb}MB';"
  echo "ALTER SYSTEM SET shared_preload_libraries = 'pg_stat_statements';"
  echo "ALTER SYSTEM SET autovacuum = off;"
  echo "ALTER SYSTEM SET max_wal_size = '8GB';"
  for s in "${settings[@]+"${settings[@]}"}"; do
    echo "ALTER SYSTEM SET ${s%%=*} = '${s#*=}';"
  done
} | psql -X -q -v ON_ERROR_STOP=1 >/dev/null
"$root/scripts/pgcluster.sh" restart "$work" >/dev/null
# a module's settings can be set once it is loaded: planning time per statement, too
psql -X -q -v ON_ERROR_STOP=1 -c "ALTER SYSTEM SET pg_stat_statements.track_planning = on" -c "SELECT pg_reload_conf()" >/dev/null
psql -X -q -v ON_ERROR_STOP=1 -c "CREATE ROLE bench SUPERUSER LOGIN" -c "CREATE DATABASE bizpulse_bench" >/dev/null
export PGDATABASE=bizpulse_bench
BIZPULSE_METRICS="$here/metrics-20.json" BIZPULSE_LOG_LEVEL=warning "$binary" migrate >/dev/null

machine=$(python3 - "$root" <<'PY'
import json, os, subprocess, sys, time
root = sys.argv[1]
cpu = "?"
for line in open("/proc/cpuinfo"):
    if line.startswith("model name"):
        cpu = line.split(":", 1)[1].strip(); break
mem = int(next(l for l in open("/proc/meminfo") if l.startswith("MemTotal")).split()[1]) / 1024 / 1024
pg = subprocess.run(["psql", "-XAtc", "SHOW server_version"], capture_output=True, text=True).stdout.strip()
commit = subprocess.run(["git", "-C", root, "describe", "--always", "--dirty"], capture_output=True, text=True).stdout.strip()
print(json.dumps({"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "nproc": os.cpu_count(), "cpu": cpu,
                  "mem": f"{mem:.0f} GiB", "pg": "PostgreSQL " + pg, "commit": commit}))
PY
)

# the server log: run.py reads the plans auto_explain writes there (a separate, untimed run)
python3 "$here/run.py" --binary "$binary" --server-log "$work/postgres.log" --out "$out" --piddir "$work" \
  --machine "$machine" "${pass[@]+"${pass[@]}"}"
