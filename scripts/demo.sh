#!/usr/bin/env bash
# The demo (README, command 1): a throwaway PostgreSQL with two days of synthetic registrations
# that drop by 30% for the last 40 minutes; aggregate, detect and render on loopback ports,
# chained through K_SINK as a Knative Broker would; one Cloud Scheduler-style tick; then the
# incident, its PDF report and a PNG chart. Everything it starts is stopped when it ends, also
# on failure or Ctrl-C.
#
# Output: out/demo/chart.png, out/demo/reports/incident-<id>-opened.pdf, logs in out/demo/logs.
set -euo pipefail

started=$SECONDS
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
out="$root/out/demo"
logs="$out/logs"
reports="$out/reports"

pgdir=""
pids=()

# Called from the EXIT trap.
# shellcheck disable=SC2317
cleanup() {
  local status=$?
  local pid deadline
  for pid in "${pids[@]}"; do
    kill -TERM "$pid" 2>/dev/null || true
  done
  deadline=$((SECONDS + 30))
  for pid in "${pids[@]}"; do
    while kill -0 "$pid" 2>/dev/null && [ "$SECONDS" -lt "$deadline" ]; do
      sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
      echo "demo: process $pid ignored SIGTERM for 30 s; killing it" >&2
      kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
  done
  if [ -n "$pgdir" ]; then
    "$root/scripts/pgcluster.sh" stop "$pgdir" || true
    if [ "$status" -ne 0 ] && [ -f "$pgdir/postgres.log" ]; then
      cp "$pgdir/postgres.log" "$logs/postgres.log" 2>/dev/null || true
    fi
    rm -rf "$pgdir"
  fi
  if [ "$status" -ne 0 ]; then
    echo "demo: FAILED (exit $status); logs are in $logs" >&2
  fi
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

fail() {
  echo "demo: $*" >&2
  exit 1
}

step() {
  printf '==> %s\n' "$*"
}

step "installing dependencies (apt, only what is missing)"
./scripts/deps.sh

step "building into build/"
./scripts/build.sh build >/dev/null

rm -rf "$out"
mkdir -p "$logs" "$reports"

step "starting a throwaway PostgreSQL cluster"
pgdir=$(mktemp -d /tmp/bp-pg.XXXXXX)
./scripts/pgcluster.sh start "$pgdir"
eval "$(./scripts/pgcluster.sh env "$pgdir")"
unset DATABASE_URL
createdb bizpulse
export PGDATABASE=bizpulse

export BIZPULSE_METRICS="$root/examples/metrics.json"
bin="$root/build/functions"

step "migrating the schema"
"$bin/aggregate/bizpulse-aggregate" migrate >"$logs/migrate.log" 2>&1 ||
  fail "migrate failed: $(tail -n 5 "$logs/migrate.log")"

step "loading 2 days of user_registration events (30% drop in the last 40 minutes)"
psql -X -q -v ON_ERROR_STOP=1 -v days=2 -v rate=250 -v amplitude=0.4 -v drop_minutes=40 \
  -v seed=0.42 -f scripts/demo_events.sql >"$logs/load.log" 2>&1 ||
  fail "loading events failed: $(tail -n 5 "$logs/load.log")"
events=$(psql -X -At -c "SELECT count(*) FROM business_events")
echo "    $events events"

# start NAME [ENV=VALUE...]: runs bizpulse-NAME on 127.0.0.1, any free port; sets $port.
port=""
start() {
  local name=$1 log="$logs/$1.log" deadline line pid
  shift
  env PORT=0 BIZPULSE_HOST=127.0.0.1 K_SERVICE="bizpulse-$name" "$@" \
    "$bin/$name/bizpulse-$name" >"$log" 2>&1 &
  pid=$!
  pids+=("$pid")
  deadline=$((SECONDS + 30))
  port=""
  while [ -z "$port" ]; do
    kill -0 "$pid" 2>/dev/null || fail "$name exited at startup: $(tail -n 5 "$log")"
    [ "$SECONDS" -lt "$deadline" ] || fail "$name did not log 'listening' within 30 s"
    line=$(grep -m1 -E '"message": ?"listening' "$log" || true)
    port=$(printf '%s' "$line" | grep -oE '"port": ?[0-9]+' | grep -oE '[0-9]+$' || true)
    [ -n "$port" ] || sleep 0.05
  done
  deadline=$((SECONDS + 60))
  until curl -fsS -o /dev/null "http://127.0.0.1:$port/readyz" 2>/dev/null; do
    kill -0 "$pid" 2>/dev/null || fail "$name exited: $(tail -n 5 "$log")"
    [ "$SECONDS" -lt "$deadline" ] || fail "$name not ready (/readyz) within 60 s"
    sleep 0.1
  done
  echo "    $name on http://127.0.0.1:$port/"
}

step "starting render, detect, aggregate (chained through K_SINK)"
start render BIZPULSE_REPORT_DIR="$reports"
render_port=$port
start detect K_SINK="http://127.0.0.1:$render_port/"
detect_port=$port
start aggregate K_SINK="http://127.0.0.1:$detect_port/"
aggregate_port=$port

step "firing one Cloud Scheduler tick at aggregate"
tick_started=$SECONDS
schedule_time=$(date -u +%Y-%m-%dT%H:%M:%SZ)
curl -fsS -X POST "http://127.0.0.1:$aggregate_port/" \
  -H "X-CloudScheduler-JobName: bizpulse-tick" \
  -H "X-CloudScheduler-ScheduleTime: $schedule_time" \
  -H "User-Agent: Google-Cloud-Scheduler" \
  -o "$logs/tick.json" || fail "the tick failed: $(cat "$logs/tick.json" 2>/dev/null)"
echo "    $(cat "$logs/tick.json")"

step "waiting for the incident and its report (up to 60 s)"
deadline=$((SECONDS + 60))
report=""
while [ -z "$report" ]; do
  report=$(psql -X -At -c "SELECT path FROM incident_reports ORDER BY created_at LIMIT 1")
  if [ -z "$report" ]; then
    [ "$SECONDS" -lt "$deadline" ] || fail "no incident report after 60 s"
    sleep 0.2
  fi
done
incident_s=$((SECONDS - tick_started))

step "fetching the chart of the last 6 hours"
curl -fsS -o "$out/chart.png" \
  "http://127.0.0.1:$render_port/charts/user_registration.png?from=-6h&to=now" ||
  fail "chart request failed"

summary=$(psql -X -At -c "SELECT format('incident #%s (%s, since %s): %s', id, status,
                                         to_char(started_at AT TIME ZONE 'UTC', 'HH24:MI \"UTC\"'),
                                         summary)
                          FROM incidents ORDER BY id LIMIT 1")

echo
echo "Chart:    $out/chart.png"
echo "Report:   $report"
echo "Incident: $summary"
echo "Wall time: $((SECONDS - started)) s (tick to report: ${incident_s} s); logs in $logs"
