#!/usr/bin/env bash
# A throwaway PostgreSQL cluster for the demo and the tests: initdb in DIR, trust auth, listening
# only on a unix socket in DIR (no TCP), fsync off. Nothing outside DIR is touched.
#
#   pgcluster.sh start DIR [PORT]   create (first time) and start; waits until it accepts
#                                   connections; PORT defaults to a free one, kept in DIR/port
#   pgcluster.sh stop DIR           stop if running (safe to repeat, safe on a missing DIR)
#   pgcluster.sh restart DIR        fast restart (drops every connection), waits until ready
#   pgcluster.sh env DIR            prints `export PGHOST=... PGPORT=... PGUSER=postgres`
#
# initdb and postgres refuse to run as root; as root the binaries run as `postgres` via runuser
# and DIR is chowned to it. Keep DIR short (e.g. mktemp -d /tmp/bp-pg.XXXXXX): a unix socket
# path is limited to 107 bytes.
set -euo pipefail

usage() {
  echo "usage: $0 start DIR [PORT] | stop DIR | restart DIR | env DIR" >&2
  exit 2
}

find_bindir() {
  if [ -n "${PG_BINDIR:-}" ]; then
    echo "$PG_BINDIR"
    return
  fi
  local d
  for d in /usr/lib/postgresql/15/bin /usr/lib/postgresql/*/bin; do
    if [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ]; then
      echo "$d"
      return
    fi
  done
  if command -v pg_config >/dev/null 2>&1 && [ -x "$(pg_config --bindir)/initdb" ]; then
    pg_config --bindir
    return
  fi
  echo "pgcluster.sh: no PostgreSQL server binaries (initdb, pg_ctl) found; run scripts/deps.sh" >&2
  exit 1
}

# Runs a PostgreSQL binary as the cluster's owner, from inside DIR (postgres may not be able to
# read the caller's working directory).
as_owner() {
  if [ "$(id -u)" -eq 0 ]; then
    (cd "$dir" && runuser -u postgres -- "$@")
  else
    (cd "$dir" && "$@")
  fi
}

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

is_running() {
  [ -f "$dir/data/postmaster.pid" ] && as_owner "$bindir/pg_ctl" -D "$dir/data" status >/dev/null 2>&1
}

wait_ready() {
  local port deadline
  port=$(cat "$dir/port")
  deadline=$((SECONDS + ${PGCLUSTER_TIMEOUT:-60}))
  until pg_isready -q -h "$dir" -p "$port" -U postgres -d postgres; do
    if [ "$SECONDS" -ge "$deadline" ]; then
      echo "pgcluster.sh: server in $dir not ready after ${PGCLUSTER_TIMEOUT:-60} s; log follows" >&2
      tail -n 30 "$dir/postgres.log" >&2 || true
      exit 1
    fi
    sleep 0.1
  done
}

cmd_start() {
  local port="${1:-}"
  mkdir -p "$dir"
  # Root must be able to reach the socket; postgres must own what it writes.
  chmod 0755 "$dir"
  if [ "$(id -u)" -eq 0 ]; then
    chown postgres: "$dir"
  fi
  if [ ! -f "$dir/data/PG_VERSION" ]; then
    if [ -z "$port" ]; then
      port=$(free_port)
    fi
    echo "$port" >"$dir/port"
    as_owner "$bindir/initdb" -D "$dir/data" -U postgres -A trust -E UTF8 --locale=C.UTF-8 \
      --no-instructions >"$dir/initdb.log" 2>&1 || {
      echo "pgcluster.sh: initdb failed; log follows" >&2
      cat "$dir/initdb.log" >&2
      exit 1
    }
    # Settings live in the cluster's config, so `restart` keeps them. Durability is not wanted
    # here: these clusters die with the test run.
    cat >>"$dir/data/postgresql.conf" <<EOF

# pgcluster.sh
port = $port
listen_addresses = ''
unix_socket_directories = '$dir'
unix_socket_permissions = 0777
fsync = off
synchronous_commit = off
full_page_writes = off
shared_buffers = 64MB
max_connections = 200
max_wal_size = 1GB
logging_collector = off
log_min_messages = warning
timezone = 'UTC'
EOF
  elif [ -n "$port" ] && [ "$port" != "$(cat "$dir/port")" ]; then
    echo "pgcluster.sh: cluster in $dir already uses port $(cat "$dir/port")" >&2
    exit 1
  fi
  if ! is_running; then
    as_owner "$bindir/pg_ctl" -D "$dir/data" -l "$dir/postgres.log" -w -t 60 start >/dev/null
  fi
  wait_ready
}

cmd_stop() {
  [ -d "$dir/data" ] || return 0
  if is_running; then
    as_owner "$bindir/pg_ctl" -D "$dir/data" -m fast -w -t 30 stop >/dev/null 2>&1 ||
      as_owner "$bindir/pg_ctl" -D "$dir/data" -m immediate -w -t 30 stop >/dev/null 2>&1 || true
  fi
}

cmd_restart() {
  [ -f "$dir/data/PG_VERSION" ] || {
    echo "pgcluster.sh: no cluster in $dir" >&2
    exit 1
  }
  as_owner "$bindir/pg_ctl" -D "$dir/data" -l "$dir/postgres.log" -m fast -w -t 60 restart >/dev/null
  wait_ready
}

cmd_env() {
  [ -f "$dir/port" ] || {
    echo "pgcluster.sh: no cluster in $dir" >&2
    exit 1
  }
  echo "export PGHOST=$dir"
  echo "export PGPORT=$(cat "$dir/port")"
  echo "export PGUSER=postgres"
}

[ $# -ge 2 ] || usage
action=$1
dir=$2
shift 2
case "$dir" in
  /*) ;;
  *) dir="$PWD/$dir" ;;
esac
bindir=$(find_bindir)

case "$action" in
  start) cmd_start "$@" ;;
  stop) cmd_stop ;;
  restart) cmd_restart ;;
  env) cmd_env ;;
  *) usage ;;
esac
