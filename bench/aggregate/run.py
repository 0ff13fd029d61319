#!/usr/bin/env python3
"""bizpulse aggregate benchmark (issue 4, DESIGN §8). Prints figures, never pass/fail.

Started by run.sh, which builds, starts the throwaway PostgreSQL cluster and stops it again;
this script only talks to that cluster (PG* in the environment) through psql and to the
bizpulse-aggregate binary it is given. See bench/README.md.
"""
import argparse
import datetime
import http.client
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
DAY = 86400
SPAN = 7 * DAY
GRACE = 10
LATENESS = 300
LATE_EVENTS = 10  # the late-arrivals run: ~1% of a minute's events, before each tick
ONE_METRIC = "user_registration"

OUT = None  # directory for the details (plans, per-statement figures, raw JSON)


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def detail(name, text):
    with open(os.path.join(OUT, name), "a") as f:
        f.write(text if text.endswith("\n") else text + "\n")


def psql(sql, *, env=None, check=True):
    """Runs SQL (one or more statements) with psql; returns stdout rows as lists of fields."""
    if env is None:
        env = dict(os.environ, PGUSER="bench")  # its own role: pg_stat_statements tells it from bizpulse
    p = subprocess.run(["psql", "-X", "-q", "-At", "-F", "\t", "-v", "ON_ERROR_STOP=1", "-f", "-"],
                       input=sql, capture_output=True, text=True, env=env)
    if check and p.returncode != 0:
        raise RuntimeError(f"psql failed: {p.stderr.strip()}\n--- SQL ---\n{sql[:2000]}")
    return [line.split("\t") for line in p.stdout.splitlines() if line != ""]


def one(sql):
    rows = psql(sql)
    return rows[-1][0] if rows else None


def lsn():
    # insert position: exact even with synchronous_commit = off (the write position may lag)
    return one("SELECT pg_current_wal_insert_lsn()")


def wal_since(start):
    return int(float(one(f"SELECT pg_wal_lsn_diff(pg_current_wal_insert_lsn(), '{start}')")))


def metric_types(path):
    with open(path) as f:
        cfg = json.load(f)
    names, types = [], set()
    for m in cfg["metrics"]:
        names.append(m["name"])
        if m["kind"] == "ratio":
            types.add(m["numerator"]["event_type"])
            types.add(m["denominator"]["event_type"])
        else:
            types.add(m["event_type"])
    return names, sorted(types)


def metric_type_map(path):
    """name -> the event types it reads, in the order its counts are stored (counts.h: a
    ratio's numerator type, then its denominator type when different)."""
    with open(path) as f:
        cfg = json.load(f)
    out = {}
    for m in cfg["metrics"]:
        if m["kind"] == "ratio":
            num, den = m["numerator"]["event_type"], m["denominator"]["event_type"]
            out[m["name"]] = [num] if num == den else [num, den]
        else:
            out[m["name"]] = [m["event_type"]]
    return out


def sql_array(items):
    return "ARRAY[" + ",".join("'" + i.replace("'", "''") + "'" for i in items) + "]::text[]"


def fmt_n(x, digits=0):
    if x is None:
        return "-"
    if isinstance(x, str):
        return x
    if abs(x) >= 100 or digits == 0:
        return f"{x:,.0f}"
    return f"{x:,.{digits}f}"


def fmt_rate(x):
    if x is None:
        return "-"
    if x >= 1e6:
        return f"{x / 1e6:.2f} M/s"
    if x >= 1e3:
        return f"{x / 1e3:.1f} k/s"
    return f"{x:.0f} /s"


def fmt_ms(x):
    if x is None:
        return "-"
    if x >= 1000:
        return f"{x / 1000:.2f} s"
    if x >= 10:
        return f"{x:.1f} ms"
    return f"{x:.2f} ms"


def fmt_bytes(x):
    if x is None:
        return "-"
    if x >= 10 * 1024 * 1024:
        return f"{x / 1024 / 1024:.1f} MiB"
    if x >= 10 * 1024:
        return f"{x / 1024:.1f} KiB"
    return f"{x:.1f} B" if x < 100 else f"{x:,.0f} B"


# ---------------------------------------------------------------------------------------------
# Load


def load(args, res):
    log(f"loading {args.events:,} events over 7 days ending now")
    psql(open(os.path.join(HERE, "bench.sql")).read())
    psql("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
    # Indexes and the primary key are built after the load (much faster than maintaining them
    # row by row); their definitions come from the catalog, i.e. from bizpulse's migrations.
    idx = psql("""SELECT i.relname, pg_get_indexdef(i.oid), c.conname, pg_get_constraintdef(c.oid)
                  FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid
                  LEFT JOIN pg_constraint c ON c.conindid = i.oid AND c.conrelid = x.indrelid
                  WHERE x.indrelid = 'business_events'::regclass ORDER BY 1""")
    drops, creates = [], []
    for name, idef, con, cdef in idx:
        if con:
            drops.append(f'ALTER TABLE business_events DROP CONSTRAINT "{con}";')
            creates.append(f'ALTER TABLE business_events ADD CONSTRAINT "{con}" {cdef};')
        else:
            drops.append(f'DROP INDEX "{name}";')
            creates.append(idef + ";")
    res["indexes"] = [i[0] for i in idx]
    t0 = time.perf_counter()
    row = psql(f"""TRUNCATE business_events;
        {' '.join(drops)}
        SELECT setseed(0.42);
        SELECT extract(epoch FROM now())::bigint AS t1 \\gset
        SELECT bench_insert(to_timestamp(:t1 - {SPAN}), to_timestamp(:t1), {args.events}), :t1;""")
    res["load_to"] = int(row[-1][1])
    res["load_from"] = res["load_to"] - SPAN
    t1 = time.perf_counter()
    psql("SET maintenance_work_mem = '1GB';\n" + "\n".join(creates))
    t2 = time.perf_counter()
    psql("VACUUM ANALYZE business_events; CHECKPOINT;")
    t3 = time.perf_counter()
    r = psql("""SELECT count(*), avg(pg_column_size(e.*)), avg(pg_column_size(e.payload)),
                       pg_relation_size('business_events'), pg_indexes_size('business_events'),
                       pg_size_pretty(pg_relation_size('business_events')),
                       pg_size_pretty(pg_indexes_size('business_events'))
                FROM business_events e""")[0]
    res.update(rows=int(r[0]), row_bytes=float(r[1]), payload_bytes=float(r[2]), heap=r[5], index_size=r[6],
               load_s=t1 - t0, index_s=t2 - t1, vacuum_s=t3 - t2)
    mix = psql("SELECT event_type, count(*) FROM business_events GROUP BY 1 ORDER BY 2 DESC")
    detail("load.txt", "event mix:\n" + "\n".join(f"  {t:24s} {int(n):>10,}" for t, n in mix))
    log(f"loaded {res['rows']:,} rows in {t1 - t0:.1f} s, indexes {t2 - t1:.1f} s, vacuum {t3 - t2:.1f} s; "
        f"avg row {res['row_bytes']:.1f} B")


# ---------------------------------------------------------------------------------------------
# Floor


def floor_query(t_from, t_to, types=None):
    where = f"event_timestamp >= to_timestamp({t_from}) AND event_timestamp < to_timestamp({t_to})"
    if types:
        where += f" AND event_type = ANY({sql_array(types)})"
    return (f"SELECT count(*) FROM (SELECT date_bin('1 minute', event_timestamp, 'epoch'), event_type, count(*)"
            f" FROM business_events WHERE {where} GROUP BY 1, 2) s")


def time_server(q, reps, settings=""):
    """Median server-side time of q in ms (no client transfer: the rows are counted)."""
    return float(one(f"{settings} SELECT bench_time_ms($q${q}$q$, {reps})"))


def count_rows(t_from, t_to, types=None):
    w = f"event_timestamp >= to_timestamp({t_from}) AND event_timestamp < to_timestamp({t_to})"
    if types:
        w += f" AND event_type = ANY({sql_array(types)})"
    return int(one(f"SELECT count(*) FROM business_events WHERE {w}"))


def measure_floor(args, res):
    f, t = res["load_from"], res["load_to"]
    log("floor: GROUP BY over the 7 days (parallel allowed, then one core)")
    q = floor_query(f, t)
    detail("floor.txt", "floor query: " + q + "\n" + "\n".join(
        r[0] for r in psql("EXPLAIN (ANALYZE, BUFFERS) " + q)) + "\n")
    res["floor_7d_ms"] = time_server(q, 3)
    res["floor_7d_1core_ms"] = time_server(q, 3, "SET max_parallel_workers_per_gather = 0;")
    res["floor_7d_rows"] = count_rows(f, t)
    # One minute and the steady tick's window (lateness + one new minute) in the middle of the data.
    m = (t - 3 * DAY) // 60 * 60
    reps = 21
    res["floor_1min_ms"] = time_server(floor_query(m, m + 60), reps)
    res["floor_1min_rows"] = count_rows(m, m + 60)
    res["floor_tick_all_ms"] = time_server(floor_query(m - LATENESS, m + 60), reps)
    res["floor_tick_all_rows"] = count_rows(m - LATENESS, m + 60)
    res["floor_tick_one_ms"] = time_server(floor_query(m - LATENESS, m + 60, [ONE_METRIC]), reps)
    res["floor_tick_one_rows"] = count_rows(m - LATENESS, m + 60, [ONE_METRIC])
    _, types20 = metric_types(os.path.join(HERE, "metrics-20.json"))
    res["floor_tick_20_ms"] = time_server(floor_query(m - LATENESS, m + 60, types20), reps)
    detail("floor.txt", "one-minute floor: " + floor_query(m, m + 60) + "\n" + "\n".join(
        r[0] for r in psql("EXPLAIN (ANALYZE, BUFFERS) " + floor_query(m, m + 60))) + "\n")
    log(f"floor: 7 days {res['floor_7d_ms']:.0f} ms ({res['floor_7d_1core_ms']:.0f} ms on one core), "
        f"1 minute {res['floor_1min_ms']:.2f} ms")


# ---------------------------------------------------------------------------------------------
# bizpulse


def binary_of(args, variant):
    """The bizpulse-aggregate a variant runs: 'baseline' is another build (--baseline), e.g. the
    previous commit's, measured against the same data in the same run."""
    return args.baseline if variant == "baseline" else args.binary


def agg_env(args, metrics, variant):
    env = dict(os.environ)
    env.update(BIZPULSE_METRICS=os.path.join(HERE, metrics), BIZPULSE_AGG_LOOKBACK_S=str(8 * DAY),
               BIZPULSE_AGG_BUDGET_MS="600000", BIZPULSE_AGG_GRACE_S=str(GRACE),
               BIZPULSE_AGG_LATENESS_S=str(LATENESS), BIZPULSE_LOG_LEVEL="warning", BIZPULSE_HOST="127.0.0.1")
    env.pop("K_SINK", None)
    if variant == "jit-off":
        env["PGOPTIONS"] = (env.get("PGOPTIONS", "") + " -c jit=off").strip()
    return env


def reset_state():
    psql("TRUNCATE aggregated_metrics, metric_watermarks, metric_series, outbox; CHECKPOINT;")


# Statement kinds of the aggregation engine (functions/aggregate: scan.c, agg_sql.c, points.c,
# series.c, aggregate.c; shared/outbox.c), by the start of their text. First match wins.
KINDS = [
    ("scan", "SELECT e.event_type, e.event_timestamp%"),
    # counts.h: per-minute counts that let a tick skip the unchanged part of its lateness window
    ("counts", "SELECT p.i, (SELECT count(*) FROM business_events%"),
    # pg_stat_statements shows constants as $n: extract($5 FROM ...)
    ("stored-read", "SELECT k.i, extract(%"),
    ("write upsert", "INSERT INTO aggregated_metrics%"),
    ("copy", "COPY aggregated_metrics%"),
    ("series", "%metric_series%"),
    ("outbox", "%outbox%"),
    ("watermarks", "%metric_watermarks%"),
    ("locks", "%pg_try_advisory_xact_lock%"),
]
WRITE_KINDS = ("write upsert", "copy")


def stmt_stats():
    """What bizpulse executed since the last reset, by statement kind (pg_stat_statements)."""
    case = " ".join(f"WHEN query LIKE '{pat}' THEN '{kind}'" for kind, pat in KINDS)
    rows = psql(rf"""SELECT CASE {case}
                        ELSE 'other: ' || left(regexp_replace(query, '\s+', ' ', 'g'), 60) END AS what,
                   sum(calls), sum(total_exec_time + total_plan_time), sum(rows), sum(total_plan_time)
            FROM pg_stat_statements
            WHERE userid = (SELECT oid FROM pg_roles WHERE rolname = 'postgres')  -- bizpulse, not this driver
            GROUP BY 1 ORDER BY 3 DESC""")
    return [(w, int(c), float(ms), int(r), float(pl)) for w, c, ms, r, pl in rows]


def kind_ms(stats, *kinds):
    return sum(s[2] for s in stats if s[0] in kinds)


def stats_text(stats, per=1):
    lines = [f"    {'statement (time = planning + execution)':58s} {'calls':>7s} {'total ms':>10s} {'ms/call':>9s}"
             f" {'plan ms':>9s} {'rows':>9s}"]
    for w, c, ms, r, pl in stats:
        lines.append(f"    {w[:58]:58s} {c // per:>7d} {ms / per:>10.2f} {ms / max(c, 1):>9.3f} {pl / per:>9.2f}"
                     f" {r // per:>9d}")
    return "\n".join(lines)


def catchup(args, res, metrics, variant):
    names, types = metric_types(os.path.join(HERE, metrics))
    key = f"catchup_{len(names)}_{variant}"
    log(f"bizpulse catch-up, {len(names)} metric(s), {variant}")
    reset_state()
    psql("SELECT pg_stat_statements_reset()")
    start = lsn()
    t0 = time.perf_counter()
    p = subprocess.run([binary_of(args, variant), "tick"], env=agg_env(args, metrics, variant), capture_output=True,
                       text=True)
    secs = time.perf_counter() - t0
    wal = wal_since(start)
    if p.returncode != 0:
        raise RuntimeError(f"tick failed: {p.stderr}")
    out = json.loads(p.stdout)
    detail(f"{key}.json", p.stdout)
    stats = stmt_stats()
    caught = all(m.get("caught_up") for m in out)
    f = min(m["from"] for m in out)
    t = max(m["to"] for m in out)
    tf, tt = (int(one(f"SELECT extract(epoch FROM '{x}'::timestamptz)::bigint")) for x in (f, t))
    events = count_rows(tf, tt)
    matched = count_rows(tf, tt, types)
    stored = int(one("SELECT count(*) FROM aggregated_metrics"))
    sql_ms = sum(x[2] for x in stats)
    res[key] = dict(secs=secs, events=events, matched=matched, rate=events / secs, matched_rate=matched / secs,
                    wal=wal, wal_per_event=wal / events, caught_up=caught, batches=sum(m["batches"] for m in out),
                    stored=stored, sql_ms=sql_ms, scan_ms=kind_ms(stats, "scan"),
                    write_ms=kind_ms(stats, *WRITE_KINDS), metrics=len(names))
    detail("statements.txt", f"== catch-up, {len(names)} metric(s), {variant}: {secs:.2f} s, "
           f"{len(out)} metrics, {res[key]['batches']} batches, {stored:,} rows in aggregated_metrics\n"
           + stats_text(stats) + "\n")
    log(f"  {secs:.2f} s, {events / secs / 1e6:.2f} M events/s, {wal / events:.1f} B WAL/event, caught up: {caught}")


class Server:
    def __init__(self, args, metrics, variant, piddir):
        self.env = agg_env(args, metrics, variant)
        self.env["PORT"] = "0"
        self.env["BIZPULSE_LOG_LEVEL"] = "info"
        self.proc = subprocess.Popen([binary_of(args, variant), "serve"], env=self.env, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True)
        with open(os.path.join(piddir, "serve.pid"), "w") as f:
            f.write(str(self.proc.pid))
        self.port = None
        deadline = time.time() + 30
        while time.time() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                break
            m = re.search(r'"port":(\d+)', line)
            if m and "listening" in line:
                self.port = int(m.group(1))
                break
        if self.port is None:
            self.stop()
            raise RuntimeError("bizpulse-aggregate serve did not start")
        # drain its log so it never blocks on a full pipe
        import threading
        threading.Thread(target=lambda: [None for _ in self.proc.stdout], daemon=True).start()
        self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=600)
        self.seq = 0

    def tick(self):
        self.seq += 1
        self.conn.request("POST", "/", body=b"", headers={
            "X-CloudScheduler-JobName": "bench",
            "X-CloudScheduler-ScheduleTime": f"2000-01-01T00:00:{self.seq:02d}Z#{time.time_ns()}",
            "Content-Length": "0"})
        r = self.conn.getresponse()
        body = r.read()
        if r.status != 200:
            raise RuntimeError(f"tick: HTTP {r.status}: {body[:500]!r}")
        return json.loads(body)["metrics"]

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class Steady:
    """Keeps events arriving at the loaded rate up to now and, before each measured tick, puts
    the metrics back to the state a tick ending one minute earlier leaves: watermark one minute
    back, their counts (counts.h) of the lateness window below it, and no stored points for the
    newest closed minute. Every tick then does exactly a steady tick's work (one new minute,
    the lateness window checked) without waiting a wall-clock minute between ticks.

    The newest minute's events are inserted once and read by every tick after the first (the
    floor, measured over the same window just before each tick, reads them in the same state).
    With first_reader, they are instead deleted and redrawn before each tick (then VACUUMed,
    outside the measurement), so the tick is the first to read them and sets their hint bits:
    what a tick pays when nothing else read the newest rows before it. That churn splits the
    index pages of the minute, which then lies in the next ticks' lateness window: run it last."""

    def __init__(self, res, vacuum=True):
        self.vacuum = vacuum
        self.first_reader = False
        self.late = 0  # events arriving late (into the lateness window) before each tick
        self.rate = res["rows"] / SPAN
        self.filled = res["load_to"]

    def prepare(self, names, types_of):
        e = int(one(f"SELECT (floor((extract(epoch FROM now()) - {GRACE}) / 60) * 60)::bigint"))
        wm, cf = e - 60, e - 60 - LATENESS
        upto = wm if self.first_reader else e
        sql = []
        if upto > self.filled:
            n = round((upto - self.filled) * self.rate)
            sql.append(f"SELECT bench_insert(to_timestamp({self.filled}), to_timestamp({upto}), {n});")
            self.filled = upto
        if self.first_reader:
            sql.append(f"DELETE FROM business_events WHERE event_timestamp >= to_timestamp({wm});")
            if self.vacuum:  # also invalidates the server's cached plans of business_events
                sql.append("VACUUM business_events;")
            sql.append(f"SELECT bench_insert(to_timestamp({wm}), to_timestamp({e}), {round(60 * self.rate)});")
        if sql:
            psql("\n".join(sql))
        # The state a tick ending at e - 60 leaves: the watermark, the per-minute counts of each
        # of a metric's types over the lateness window below it, type after type (1-minute
        # metrics; counts_key, the definition's, stays as the ticks wrote it), no points at e - 60.
        values = ",".join(f"('{n}', {sql_array(types_of[n])})" for n in names)
        psql(f"""DELETE FROM aggregated_metrics WHERE metric_name = ANY({sql_array(names)})
                   AND metric_timestamp >= to_timestamp({wm});
                 VACUUM aggregated_metrics;
                 UPDATE metric_watermarks w SET watermark = to_timestamp({wm}), counts_from = to_timestamp({cf}),
                   counts = (SELECT coalesce(array_agg(c ORDER BY ty.i, g.m), '{{}}')
                             FROM unnest(v.types) WITH ORDINALITY AS ty(t, i), generate_series({cf}, {wm} - 60, 60) g(m),
                             LATERAL (SELECT count(*) c FROM business_events e WHERE e.event_type = ty.t
                                      AND e.event_timestamp >= to_timestamp(g.m)
                                      AND e.event_timestamp < to_timestamp(g.m + 60)) x)
                 FROM (VALUES {values}) v(name, types) WHERE w.metric_name = v.name;""")
        if self.late:  # after the counts: late for the tick
            psql(f"SELECT bench_insert(to_timestamp({cf}), to_timestamp({wm}), {self.late})")
        return e


def steady(args, res, metrics, variant, mode, st, piddir, first_reader=False, late=0):
    """Steady ticks; the floor is measured over each tick's own window and types just before
    it (same rows, same state). first_reader: the tick is the first to read the new minute.
    late: events that arrive late, spread over the lateness window, before each tick."""
    names, types = metric_types(os.path.join(HERE, metrics))
    key = f"tick_{len(names)}_{variant}_{mode}" + ("_first" if first_reader else "") + ("_late" if late else "")
    st.first_reader = first_reader
    st.late = late
    log(f"steady ticks, {len(names)} metric(s), {variant}, {mode}: {args.ticks} ticks after 3 warm-up")
    server = Server(args, metrics, variant, piddir) if mode == "http" else None
    env = agg_env(args, metrics, variant)
    ms, wal, intervals, changed, rows_all, rows_matched, floors = [], [], [], [], [], [], []
    try:
        for i in range(3 + args.ticks):
            if i == 3:
                psql("SELECT pg_stat_statements_reset()")
            e = st.prepare(names, metric_type_map(os.path.join(HERE, metrics)))
            if i >= 3 and not first_reader:
                floors.append(time_server(floor_query(e - 60 - LATENESS, e, types), 5, "SET jit = off;"))
            start = lsn()
            t0 = time.perf_counter()
            if server:
                out = server.tick()
            else:
                p = subprocess.run([binary_of(args, variant), "tick"], env=env, capture_output=True, text=True)
                if p.returncode != 0:
                    raise RuntimeError(f"tick failed: {p.stderr}")
                out = json.loads(p.stdout)
            dt = (time.perf_counter() - t0) * 1000
            w = wal_since(start)
            if i < 3:
                continue
            ms.append(dt)
            wal.append(w)
            intervals.append(sum(m["intervals"] for m in out))
            changed.append(sum(m["changed"] for m in out))
            rows_all.append(count_rows(e - 60 - LATENESS, e))
            rows_matched.append(count_rows(e - 60 - LATENESS, e, types))
            if i == 3:
                detail(f"{key}.json", json.dumps(out))
    finally:
        if server:
            server.stop()
    stats = stmt_stats()
    n = len(ms)
    new_events = round(60 * st.rate)
    res[key] = dict(median_ms=statistics.median(ms), p90_ms=sorted(ms)[int(0.9 * (n - 1))], min_ms=min(ms),
                    wal=statistics.median(wal), wal_per_new_event=statistics.median(wal) / new_events,
                    intervals=statistics.median(intervals), changed=statistics.median(changed),
                    rows=statistics.median(rows_all), matched=statistics.median(rows_matched),
                    sql_ms=sum(s[2] for s in stats) / n, scan_ms=kind_ms(stats, "scan") / n,
                    counts_ms=kind_ms(stats, "counts") / n, write_ms=kind_ms(stats, *WRITE_KINDS) / n,
                    floor_ms=statistics.median(floors) if floors else None, metrics=len(names), ticks=n)
    detail("statements.txt", f"== steady tick, {len(names)} metric(s), {variant}, {mode}: median "
           f"{res[key]['median_ms']:.1f} ms over {n} ticks; per tick:\n" + stats_text(stats, n) + "\n")
    log(f"  median {res[key]['median_ms']:.1f} ms (SQL {res[key]['sql_ms']:.1f} ms), "
        f"{res[key]['wal']:.0f} B WAL/tick, {res[key]['intervals']:.0f} intervals, {res[key]['changed']:.0f} changed")


# ---------------------------------------------------------------------------------------------
# EXPLAIN


def explain_run(args, res, st):
    """The real statements' plans with their real parameters: one catch-up of about a day and one
    steady tick of the 20 metrics (CLI), with auto_explain (ANALYZE, BUFFERS) switched on for
    bizpulse's role in the bench database. A separate run from the timed ones: instrumentation
    slows every statement. PostgreSQL 15's auto_explain does not log parameters; the scan's
    window and types are read from the plan's constants (plan_window). The settings go on the
    role, not in PGOPTIONS: bizpulse's connections pass libpq's `options` (shared/db/conn.c),
    which replaces PGOPTIONS."""
    log("EXPLAIN: auto_explain of one catch-up (about a day) and one steady tick, 20 metrics (untimed)")
    names, _ = metric_types(os.path.join(HERE, "metrics-20.json"))
    su = one("SELECT rolsuper FROM pg_roles WHERE rolname = 'postgres'")
    if su != "t":
        raise RuntimeError("bizpulse's role 'postgres' is not a superuser: session_preload_libraries needs one")
    db = one("SELECT current_database()")
    role = f'ALTER ROLE postgres IN DATABASE "{db}"'
    psql("\n".join(f"{role} SET {k} = '{v}';" for k, v in AUTO_EXPLAIN))
    env = agg_env(args, "metrics-20.json", "default")
    rows, text = [], []

    def run_tick(label):
        start = os.path.getsize(args.server_log)
        p = subprocess.run([args.binary, "tick"], env=env, capture_output=True, text=True)
        if p.returncode != 0:
            raise RuntimeError(f"tick failed: {p.stderr}")
        plans = plans_from_log(args.server_log, start, os.path.getsize(args.server_log))
        for pl in plans:
            text.append(f"===== {label}: {pl['kind']}, auto_explain duration {pl['ms']:.3f} ms\n"
                        f"Query Text: {pl['query']}\n" + "\n".join(pl["plan"]) + "\n")
        scans = [pl for pl in plans if pl["kind"] == "scan" and pl["params"]]
        if not scans:
            raise RuntimeError(f"no scan plan of the {label} in {args.server_log}")
        return scans, [pl for pl in plans if pl["kind"] == "counts"]

    def compare(what, group, window=None, extra=()):
        """The floor over the same rows (or window), measured before the next change to
        business_events; extra: statements counted with the group (the tick's counts)."""
        f = min(int(c["params"]["2"]) for c in group) if window is None else window[0]
        t = max(int(c["params"]["3"]) for c in group) if window is None else window[1]
        group = list(group) + list(extra)
        # one group normally (every metric of metrics-20.json has the same interval and window)
        ty = sorted({x for c in group if c["params"] for x in c["params"]["1"].strip("{}").split(",")})
        floor = time_server(floor_query(f, t, ty), 3 if t - f > 3600 else 11, "SET jit = off;")
        rows.append(dict(what=what, span_s=t - f, events=sum(c["rows"] for c in group), types=len(ty),
                         nodes=", ".join(sorted({n for c in group for n in c["nodes"]})),
                         ms=sum(c["ms"] for c in group), node_ms=sum(c["node_ms"] for c in group),
                         floor_ms=floor, floor_events=count_rows(f, t, ty)))

    try:
        x = (res["load_to"] - DAY) // 60 * 60
        psql(f"""DELETE FROM aggregated_metrics WHERE metric_name = ANY({sql_array(names)})
                   AND metric_timestamp >= to_timestamp({x});
                 UPDATE metric_watermarks SET watermark = to_timestamp({x}) WHERE metric_name = ANY({sql_array(names)});""")
        chunks, _ = run_tick("catch-up")
        med = sorted(chunks, key=lambda c: c["rows"])[len(chunks) // 2]
        compare(f"catch-up chunk (median of {len(chunks)} by events)", [med])
        compare(f"catch-up, all {len(chunks)} chunks", chunks)
        e = st.prepare(names, metric_type_map(os.path.join(HERE, "metrics-20.json")))
        scans, counts = run_tick("steady tick")
        compare("steady tick: its scan alone", scans)
        compare("steady tick: counts + scan vs the window (lateness 5 + 1 min)", scans,
                (e - 60 - LATENESS, e), counts)
    finally:
        psql(f"{role} RESET ALL;")
        detail("explain.txt", "\n".join(text))
    res["explain"] = rows
    res["explain_tick_window"] = [e - 60 - LATENESS, e]


AUTO_EXPLAIN = [("session_preload_libraries", "auto_explain"), ("auto_explain.log_min_duration", "0"),
                ("auto_explain.log_analyze", "on"), ("auto_explain.log_buffers", "on"),
                ("auto_explain.log_nested_statements", "off")]
LOG_HEAD = re.compile(r"^.*?\[(\d+)\] ([A-Z]+):  (.*)$")


def stmt_kind(query):
    for kind, pat in KINDS:
        core = pat.strip("%")
        if (pat.startswith("%") and core in query) or (not pat.startswith("%") and query.startswith(core)):
            return kind
    return "other"


def plan_window(plan):
    """A scan plan's window and types, from its constants: bizpulse's sessions plan every
    execution with its parameters (plan_cache_mode = force_custom_plan, shared/db/conn.c), so
    to_timestamp($2), to_timestamp($3) and $1 appear folded into the index condition."""
    text = "\n".join(plan)
    lo = re.search(r"event_timestamp >= '([^']+)'::timestamp with time zone", text)
    hi = re.search(r"event_timestamp < '([^']+)'::timestamp with time zone", text)
    ty = re.search(r"event_type\)?(?:::text)? = ANY \('(\{[^']*\})'::text\[\]\)", text)
    if not (lo and hi and ty):
        return {}
    # timezone = UTC (pgcluster.sh): '2026-11-26 02:03:00+00'
    f, t = (int(datetime.datetime.fromisoformat(x).timestamp()) for x in (lo[1], hi[1]))
    return {"1": ty[1], "2": f, "3": t}


def plans_from_log(path, start, end):
    """auto_explain's plans in the server log between byte offsets start and end."""
    with open(path, "rb") as f:
        f.seek(start)
        text = f.read(end - start).decode(errors="replace")
    entries = []
    for line in text.splitlines():
        m = LOG_HEAD.match(line)
        if m:
            entries.append({"pid": m[1], "level": m[2], "msg": m[3], "more": []})
        elif entries and line.startswith("\t"):
            entries[-1]["more"].append(line[1:])
    plans = []
    for i, e in enumerate(entries):
        m = re.match(r"duration: ([\d.]+) ms  plan:", e["msg"]) if e["level"] == "LOG" else None
        if not m:
            continue
        more = e["more"]
        query = more[0][len("Query Text: "):] if more and more[0].startswith("Query Text: ") else ""
        plan = more[1:]
        top = re.search(r"actual time=[\d.]+\.\.([\d.]+) rows=(\d+)", plan[0]) if plan else None
        nodes = {f"{a} {b}" for a, b in re.findall(r"(Index Only Scan|Index Scan) using (\S+) on business_events\b",
                                                   "\n".join(plan))}
        nodes |= {f"Bitmap Index Scan {b}" for b in re.findall(r"Bitmap Index Scan on (business_events\S*)",
                                                                 "\n".join(plan))}
        nodes |= {"Seq Scan" for _ in re.findall(r"Seq Scan on business_events\b", "\n".join(plan))}
        plans.append(dict(kind=stmt_kind(query), ms=float(m[1]), query=query, params=plan_window(plan) if stmt_kind(query) == "scan" else {}, plan=plan,
                          rows=int(top[2]) if top else 0, node_ms=float(top[1]) if top else 0.0, nodes=nodes))
    return plans


# ---------------------------------------------------------------------------------------------
# The original algorithm


def original(args, res):
    log("original algorithm: 5 single-minute ticks, then a catch-up of one day "
        f"(stopped after {args.original_budget:.0f} s)")
    psql("TRUNCATE bench_original_log; CHECKPOINT;")
    m = (res["load_to"] - 2 * DAY) // 60 * 60
    for i in range(5):
        psql(f"CALL bench_original('tick', '{ONE_METRIC}', to_timestamp({m + 60 * i}), to_timestamp({m + 60 * (i + 1)}), 1e9)")
    d0 = (res["load_from"] + DAY) // 60 * 60
    t0 = time.perf_counter()
    start = lsn()
    psql(f"CALL bench_original('catchup', '{ONE_METRIC}', to_timestamp({d0}), to_timestamp({d0 + DAY}), {args.original_budget})")
    secs = time.perf_counter() - t0
    wal = wal_since(start)
    tick = psql("""SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY ms), sum(wal), sum(events_all), sum(counted), sum(updated)
                   FROM bench_original_log WHERE run = 'tick'""")[0]
    cu = psql("""SELECT count(*), sum(ms), sum(events_all), sum(counted), sum(wal)
                 FROM bench_original_log WHERE run = 'catchup'""")[0]
    minutes = int(cu[0])
    res["orig_tick_ms"] = float(tick[0])
    res["orig_tick_wal_per_event"] = float(tick[1]) / float(tick[2])
    res["orig_tick_rows"] = float(tick[2]) / 5
    res["orig_catchup_minutes"] = minutes
    res["orig_catchup_secs"] = secs
    res["orig_catchup_events"] = int(cu[2])
    res["orig_catchup_rate"] = int(cu[2]) / secs
    res["orig_catchup_counted_rate"] = int(cu[3]) / secs
    res["orig_catchup_wal_per_event"] = wal / max(int(cu[2]), 1)
    log(f"  tick {res['orig_tick_ms']:.1f} ms; catch-up {minutes} minutes in {secs:.1f} s = "
        f"{res['orig_catchup_rate']:.0f} events/s, {res['orig_catchup_wal_per_event']:.0f} B WAL/event")


# ---------------------------------------------------------------------------------------------
# Report


def report(args, res, machine):
    L = []
    p = L.append
    p("")
    p(f"bizpulse aggregate benchmark — {machine['date']}")
    p(f"machine: {machine['nproc']} CPUs ({machine['cpu']}), {machine['mem']} RAM; {machine['pg']}; "
      f"load average at start {machine['load_start']}, at end {loadavg()} (other work on the machine skews figures)")
    p(f"server: {machine['settings']}")
    p(f"bizpulse: {machine['commit']}, release build; metrics files bench/aggregate/metrics-1.json, metrics-20.json")
    p(f"data: {res['rows']:,} events over 7 days, 20 event types, avg row {res['row_bytes']:.1f} B "
      f"(pg_column_size of the row; payload {res['payload_bytes']:.1f} B), heap {res['heap']}, indexes {res['index_size']}"
      f"; load {res['load_s']:.0f} s + indexes {res['index_s']:.0f} s + VACUUM ANALYZE {res['vacuum_s']:.0f} s")
    p("")
    floor_1core_rate = res["floor_7d_rows"] / (res["floor_7d_1core_ms"] / 1000)
    floor_rate = res["floor_7d_rows"] / (res["floor_7d_ms"] / 1000)
    rows = []  # (what, value, unit-ish detail, target/ratio)
    rows.append(("FLOOR  GROUP BY minute, type: 7 days", fmt_rate(floor_rate),
                 f"{fmt_ms(res['floor_7d_ms'])} for {res['floor_7d_rows']:,} events (parallel allowed)", ""))
    rows.append(("FLOOR  same, one core", fmt_rate(floor_1core_rate), fmt_ms(res["floor_7d_1core_ms"]),
                 "(DESIGN anchor 3.4 M/s)"))
    rows.append(("FLOOR  one minute, all types", fmt_ms(res["floor_1min_ms"]), f"{res['floor_1min_rows']:,} events",
                 "(anchor ~0.7 ms / 1.9 k)"))
    rows.append(("FLOOR  tick window (lateness 5 + 1 min), all types", fmt_ms(res["floor_tick_all_ms"]),
                 f"{res['floor_tick_all_rows']:,} events", ""))
    rows.append(("FLOOR  tick window, the 20 metrics' 16 types", fmt_ms(res["floor_tick_20_ms"]), "", ""))
    rows.append(("FLOOR  tick window, user_registration only", fmt_ms(res["floor_tick_one_ms"]),
                 f"{res['floor_tick_one_rows']:,} events", ""))
    for n in (1, 20):
        for v in args.variants:
            c = res.get(f"catchup_{n}_{v}")
            if not c:
                continue
            tgt = (f"{c['rate'] / 1e6:.2f}× the 1 M/s target ({c['rate'] / 1.5e6:.2f}× 1.5 M/s); "
                   f"{floor_1core_rate / c['rate']:.1f}× the 1-core floor's time")
            rows.append((f"BIZPULSE catch-up 7 d, {n} metric{'s' if n > 1 else ''} [{v}]", fmt_rate(c["rate"]),
                         f"{c['secs']:.2f} s, {c['batches']} batches, SQL {c['sql_ms'] / 1000:.2f} s "
                         f"(scan {c['scan_ms'] / 1000:.2f} s, write {c['write_ms'] / 1000:.2f} s); reads {fmt_rate(c['matched_rate'])} of its types; "
                         f"{c['stored']:,} rows stored{'' if c['caught_up'] else '; NOT caught up'}", tgt))
    for n in (1, 20):
        for v in args.variants:
            for mode in ("http", "cli", "http_late", "http_first"):
                t = res.get(f"tick_{n}_{v}_{mode}")
                if not t:
                    continue
                # the floor over each tick's own window, measured just before it (else: at load)
                fl = t["floor_ms"] or res["floor_tick_one_ms" if n == 1 else "floor_tick_20_ms"]
                if mode == "http_late":
                    mode = f"http, {LATE_EVENTS} late events before each tick, spread over the lateness window"
                if mode == "http_first":  # no floor over its rows: it would read them first
                    mode = "http, the tick first to read the new minute; floor: at load"
                rows.append((f"BIZPULSE steady tick, {n} metric{'s' if n > 1 else ''} [{v}, {mode}]", fmt_ms(t["median_ms"]),
                             f"p90 {fmt_ms(t['p90_ms'])}; SQL {fmt_ms(t['sql_ms'])} (counts {fmt_ms(t['counts_ms'])} + "
                             f"scan {fmt_ms(t['scan_ms'])}, write {fmt_ms(t['write_ms'])}); {t['intervals']:.0f} "
                             f"intervals recomputed, {t['changed']:.0f} changed; {t['rows']:,.0f} events in window",
                             f"aggregation queries (counts + scan) {(t['counts_ms'] + t['scan_ms']) / fl:.2f}× floor "
                             f"(target ≤ 1.5×); whole tick {t['median_ms'] / fl:.1f}×, its SQL {t['sql_ms'] / fl:.1f}×"
                             + ("; anchor 36 ms" if n == 20 else "")))
    rows.append(("ORIGINAL one-minute tick (count+upsert+UPDATE)", fmt_ms(res["orig_tick_ms"]),
                 f"{res['orig_tick_rows']:,.0f} events marked per minute", f"{res['orig_tick_ms'] / res['floor_1min_ms']:.0f}× the 1-minute floor"))
    rows.append(("ORIGINAL catch-up, one day", fmt_rate(res["orig_catchup_rate"]),
                 f"{res['orig_catchup_minutes']} of 1440 minutes in {res['orig_catchup_secs']:.1f} s"
                 f" ({fmt_rate(res['orig_catchup_counted_rate'])} of user_registration)", "(anchor ~9-27 k/s)"))
    p(table(["measurement", "result", "detail", "vs target / floor"], rows))
    p("")
    wal_rows = []
    for n in (1, 20):
        for v in args.variants:
            c = res.get(f"catchup_{n}_{v}")
            if c:
                wal_rows.append((f"bizpulse catch-up, {n} metric(s) [{v}]", fmt_bytes(c["wal_per_event"]),
                                 fmt_bytes(c["wal"]), vs_original(res["orig_catchup_wal_per_event"], c["wal_per_event"])
                                 + ("; reference design ~10 B" if n == 20 else "")))
    for n in (1, 20):
        for v in args.variants:
            t = res.get(f"tick_{n}_{v}_http")
            if t:
                wal_rows.append((f"bizpulse steady tick, {n} metric(s) [{v}] (per new event)", fmt_bytes(t["wal_per_new_event"]),
                                 f"{fmt_bytes(t['wal'])} per tick", vs_original(res["orig_tick_wal_per_event"],
                                                                                t["wal_per_new_event"])))
    wal_rows.append(("original one-minute tick", fmt_bytes(res["orig_tick_wal_per_event"]), "", ""))
    wal_rows.append(("original catch-up", fmt_bytes(res["orig_catchup_wal_per_event"]), "", ""))
    p(table(["WAL written", "per event", "total", "note"], wal_rows))
    p("")
    ex = [(e["what"], f"{e['span_s'] / 3600:.1f} h" if e["span_s"] >= 3600 else f"{e['span_s'] / 60:.0f} min",
           f"{e['events']:,}" + ("" if e["events"] == e["floor_events"] else f" (floor {e['floor_events']:,})"),
           e["nodes"] or "?", fmt_ms(e["node_ms"]), fmt_ms(e["ms"]), fmt_ms(e["floor_ms"]),
           f"{e['node_ms'] / e['floor_ms']:.1f}×", f"{e['ms'] / e['floor_ms']:.1f}×")
          for e in res["explain"]]
    p("The scan statement (bp_agg_scan: every metric's events of a window in one pass) as bizpulse ran it, "
      "20 metrics: EXPLAIN (ANALYZE, BUFFERS) by auto_explain in a separate untimed run (instrumentation included), "
      f"vs the floor GROUP BY over the same rows and types (jit off, as bizpulse's sessions); plans in {OUT}/explain.txt")
    p("(scan node: the plan's top node, reading and projecting the rows; executor: auto_explain's duration, "
      "ExecutorRun including sending the rows to bizpulse)")
    p(table(["scan", "window", "events", "business_events access", "scan node", "executor", "floor", "node ×floor",
             "executor ×floor"], ex))
    p("")
    p(f"details (statements per kind, plans, raw tick JSON): {OUT}")
    return "\n".join(L)


def vs_original(orig, ours):
    r = orig / max(ours, 1e-9)
    return f"{r:,.0f}× less than the original" if r >= 1 else f"{1 / r:.1f}× MORE than the original"


def loadavg():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def table(header, rows):
    cols = len(header)
    w = [max(len(str(r[i])) for r in [header] + rows) for i in range(cols)]
    line = "+".join("-" * (x + 2) for x in w)
    out = ["|".join(f" {str(h):{w[i]}s} " for i, h in enumerate(header)), line]
    for r in rows:
        out.append("|".join(f" {str(c):{w[i]}s} " for i, c in enumerate(r)))
    return "\n".join(out)


def main():
    global OUT
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=10_000_000)
    ap.add_argument("--ticks", type=int, default=20, help="measured steady ticks per case (median)")
    ap.add_argument("--no-tick-vacuum", action="store_true",
                    help="do not VACUUM the redrawn minute's dead rows before each tick: the server keeps its "
                         "cached plans, as a live one does; the tick prunes them instead")
    ap.add_argument("--original-budget", type=float, default=None,
                    help="seconds the original's one-day catch-up may run (default 30 s per M events, 20..120)")
    ap.add_argument("--variants", default="default,jit-off",
                    help="bizpulse connection variants: default, jit-off (PGOPTIONS=-c jit=off), baseline (--baseline)")
    ap.add_argument("--baseline", help="another bizpulse-aggregate binary, measured as the variant 'baseline'")
    ap.add_argument("--binary", required=True)
    ap.add_argument("--server-log", required=True, help="the bench cluster's log (auto_explain writes plans there)")
    ap.add_argument("--out", required=True)
    ap.add_argument("--piddir", required=True)
    ap.add_argument("--machine", required=True, help="JSON with the machine description")
    args = ap.parse_args()
    args.variants = [v for v in args.variants.split(",") if v]
    if args.baseline and "baseline" not in args.variants:
        args.variants.append("baseline")
    if args.original_budget is None:
        args.original_budget = min(120, max(20, 30 * args.events / 1e6))
    OUT = args.out
    os.makedirs(OUT, exist_ok=True)
    machine = json.loads(args.machine)
    machine["load_start"] = loadavg()
    machine["settings"] = ", ".join(f"{k}={v}" for k, v in psql(
        """SELECT name, current_setting(name) FROM pg_settings WHERE name IN
           ('shared_buffers', 'work_mem', 'jit', 'max_parallel_workers_per_gather', 'fsync', 'synchronous_commit',
            'full_page_writes', 'autovacuum', 'max_wal_size') ORDER BY 1"""))
    res = {}
    t_start = time.perf_counter()
    load(args, res)
    measure_floor(args, res)
    for v in args.variants:
        catchup(args, res, "metrics-1.json", v)
    for v in args.variants:
        catchup(args, res, "metrics-20.json", v)
    # the last catch-up left every metric caught up: now steady ticks
    st = Steady(res, vacuum=not args.no_tick_vacuum)
    for n in ("metrics-1.json", "metrics-20.json"):
        for v in args.variants:
            steady(args, res, n, v, "http", st, args.piddir)
        steady(args, res, n, args.variants[0], "cli", st, args.piddir)
    explain_run(args, res, st)
    steady(args, res, "metrics-20.json", args.variants[0], "http", st, args.piddir, late=LATE_EVENTS)
    steady(args, res, "metrics-20.json", args.variants[0], "http", st, args.piddir, first_reader=True)
    original(args, res)
    res["total_s"] = time.perf_counter() - t_start
    with open(os.path.join(OUT, "results.json"), "w") as f:
        json.dump(res, f, indent=1)
    text = report(args, res, machine)
    text += f"\ntotal benchmark time {res['total_s'] / 60:.1f} min (events={args.events:,})\n"
    detail("table.txt", text)
    print(text)


if __name__ == "__main__":
    main()
