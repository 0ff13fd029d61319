#!/usr/bin/env python3
"""bizpulse load benchmark (issue 8, "Load"). usage: run.py BUILD_DIR [--quick] [--levels L]
[--seconds S] [--only render cold|render warm|detect]

One throwaway PostgreSQL cluster, one day of user_registration events (~144 k, aggregated by
`bizpulse-aggregate tick`), then the real binaries serving on 127.0.0.1 with the worker counts of
knative/base (render 2, detect 4), and wrk at each concurrency level:

- render cold: GET /charts/user_registration.png (1 440 points, 1200x600) with a `to` that
  changes every request: every answer is a new drawing;
- render warm: the same URL with If-None-Match of its ETag: 304 after one aggregate query;
- detect: POST of a metrics.aggregated CloudEvent (10-minute window) with a new id each time:
  dedup insert, scoring, commit.

Prints per level: requests/s (all answers), 2xx/s (2xx and 304 only), p50/p99 latency, answers that are not 2xx/304 by status, socket
errors (connect/read/write/timeout: a reset or crash shows here) and the server's RSS, plus the
RSS sampled every 0.5 s over the whole run. Never fails on a figure; fails only when a server
dies."""
import datetime
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
PGCLUSTER = os.path.join(ROOT, "scripts", "pgcluster.sh")
TOKEN = "bench-load-token"


def parse_args(argv):
    if len(argv) < 2:
        raise SystemExit(__doc__)
    opts = {"build": argv[1], "levels": [1, 2, 4, 8, 16, 64], "seconds": 10}
    args = argv[2:]
    while args:
        a = args.pop(0)
        if a == "--quick":
            opts["levels"], opts["seconds"] = [1, 4, 16], 3
        elif a == "--levels":
            opts["levels"] = [int(x) for x in args.pop(0).split(",")]
        elif a == "--only":
            opts["only"] = args.pop(0)
        elif a == "--seconds":
            opts["seconds"] = int(args.pop(0))
        else:
            raise SystemExit(f"unknown option {a}\n{__doc__}")
    return opts


class Cluster:
    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="bp-load.", dir="/tmp")
        subprocess.run([PGCLUSTER, "start", self.dir], check=True, capture_output=True)
        env = subprocess.run([PGCLUSTER, "env", self.dir], check=True, capture_output=True, text=True).stdout
        v = dict(re.findall(r"export (\w+)=(\S+)", env))
        self.env = {"PGHOST": v["PGHOST"], "PGPORT": v["PGPORT"], "PGUSER": "postgres", "PGDATABASE": "postgres"}

    def psql(self, sql):
        env = dict(os.environ, **self.env)
        subprocess.run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-c", sql], env=env, check=True,
                       capture_output=True)

    def stop(self):
        subprocess.run([PGCLUSTER, "stop", self.dir], capture_output=True)
        shutil.rmtree(self.dir, ignore_errors=True)


class Server:
    def __init__(self, build, name, env):
        self.name = name
        exe = os.path.join(build, "functions", name, f"bizpulse-{name}")
        # stdout (one JSON log line per request) goes to a file: a pipe drained by Python
        # could fill under load and stall the server's event loop on its log write.
        self.log = tempfile.NamedTemporaryFile(prefix=f"bp-load-{name}.", suffix=".log", delete=False)
        self.proc = subprocess.Popen([exe, "serve"], env=env, stdout=self.log, stderr=subprocess.STDOUT)
        self.port = None
        deadline = time.monotonic() + 60
        while self.port is None and self.alive() and time.monotonic() < deadline:
            with open(self.log.name, errors="replace") as f:
                m = re.search(r'"message":"listening[^\n]*"port":(\d+)', f.read())
            if m:
                self.port = int(m.group(1))
            else:
                time.sleep(0.05)
        if self.port is None:
            raise SystemExit(f"{name} did not start; log: {self.log.name}")
        self.rss = []  # (seconds since start, MB)

    def served_latency(self):
        """p50 and p99 (ms) of the 2xx/304 answers logged since the last call, as the server
        measured them (routing to response: queue wait + handler), or None when none."""
        ms = []
        with open(self.log.name, "rb") as f:
            f.seek(getattr(self, "log_offset", 0))
            for line in f:
                if b'"status":200' in line or b'"status":304' in line:
                    m = re.search(rb'"duration_ms":([0-9.]+)', line)
                    if m:
                        ms.append(float(m.group(1)))
            self.log_offset = f.tell()
        if not ms:
            return None
        ms.sort()
        return ms[len(ms) // 2], ms[min(len(ms) - 1, int(len(ms) * 0.99))]

    def rss_mb(self):
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        return 0.0

    def alive(self):
        return self.proc.poll() is None

    def stop(self):
        if self.alive():
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        return self.proc.returncode


def get(port, path, headers=None):
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def wrk(port, script, conns, seconds, env):
    threads = min(conns, 2)
    cmd = ["wrk", f"-t{threads}", f"-c{conns}", f"-d{seconds}s", "--timeout", "10s", "-s",
           os.path.join(HERE, script), f"http://127.0.0.1:{port}"]
    out = subprocess.run(cmd, env=dict(os.environ, BP_LOAD_DIR=HERE, **env), capture_output=True, text=True,
                         timeout=seconds + 60)
    m = re.search(r"WRKJSON (\{.*\})", out.stdout)
    if not m:
        raise SystemExit(f"wrk printed no summary:\n{out.stdout}\n{out.stderr}")
    return json.loads(m.group(1))


def wait_idle(port, timeout=60):
    """Until the server's pool is empty (http_workers_busy and http_queue_waiting 0): wrk quits
    with requests in flight that the server still runs, and the next level must not start
    against them (it would see 503 busy below the pool's size)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        _, _, body = get(port, "/metrics")
        text = body.decode()
        busy = re.search(r"^http_workers_busy(?:\{\})? (\S+)$", text, re.M)
        waiting = re.search(r"^http_queue_waiting(?:\{\})? (\S+)$", text, re.M)
        if busy and waiting and float(busy.group(1)) == 0 and float(waiting.group(1)) == 0:
            return
        time.sleep(0.05)
    raise SystemExit(f"the server on port {port} stayed busy for {timeout} s after wrk stopped")


def sampler(servers, stop, t0):
    while not stop.wait(0.5):
        for s in servers:
            if s.alive():
                s.rss.append((time.monotonic() - t0, s.rss_mb()))


def main():
    opts = parse_args(sys.argv)
    cluster = Cluster()
    servers = []
    try:
        cluster.psql("CREATE DATABASE bench")
        pg = dict(cluster.env, PGDATABASE="bench")
        base_env = {k: v for k, v in os.environ.items()
                    if not k.startswith(("PG", "BIZPULSE_", "K_")) and k != "DATABASE_URL"}
        base_env.update(pg)
        base_env.update({"BIZPULSE_METRICS": os.path.join(HERE, "metrics.json"), "PORT": "0",
                         "BIZPULSE_HOST": "127.0.0.1"})
        agg = os.path.join(opts["build"], "functions", "aggregate", "bizpulse-aggregate")
        subprocess.run([agg, "migrate"], env=base_env, check=True, capture_output=True)

        now = datetime.datetime.now(datetime.timezone.utc).replace(second=0, microsecond=0)
        start = now - datetime.timedelta(days=1, minutes=30)
        # ~100 events a minute for a day, a daily rhythm and a 40% drop in the last hour
        cluster_sql = f"""
            INSERT INTO business_events (event_type, event_timestamp, payload)
            SELECT 'user_registration', '{start.isoformat()}'::timestamptz + m * interval '1 minute'
                       + (j * 59.0 / 100) * interval '1 second',
                   jsonb_build_object('country', (ARRAY['DE','FR','US','BR'])[1 + j % 4],
                                      'platform', (ARRAY['android','ios','web'])[1 + j % 3])
            FROM generate_series(0, 1439) AS m,
                 generate_series(0, (CASE WHEN m > 1380 THEN 60 ELSE 100 END
                                     + 20 * sin(m * 2 * pi() / 1440))::int - 1) AS j"""
        pg_env = dict(os.environ, **pg)
        subprocess.run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-c", cluster_sql], env=pg_env, check=True,
                       capture_output=True)
        subprocess.run([agg, "tick"], env=dict(base_env, BIZPULSE_AGG_BUDGET_MS="600000"), check=True,
                       capture_output=True)
        events = subprocess.run(["psql", "-X", "-At", "-c", "SELECT count(*) FROM business_events"], env=pg_env,
                                capture_output=True, text=True).stdout.strip()

        render = Server(opts["build"], "render", dict(base_env, BIZPULSE_WORKERS="2", BIZPULSE_RENDER_TOKEN=TOKEN,
                                                      BIZPULSE_REPORT_DIR=os.path.join(cluster.dir, "reports")))
        detect = Server(opts["build"], "detect", dict(base_env, BIZPULSE_WORKERS="4"))
        servers = [render, detect]

        end = now - datetime.timedelta(minutes=30)
        frm = (end - datetime.timedelta(hours=30)).strftime("%Y-%m-%dT%H:%M:%SZ")
        chart = f"/charts/user_registration.png?from={frm}&width=1200&height=600"
        warm_url = chart + "&to=" + end.strftime("%Y-%m-%dT%H:%M:%SZ")
        status, headers, body = get(render.port, warm_url, {"Authorization": f"Bearer {TOKEN}"})
        etag = {k.lower(): v for k, v in headers.items()}.get("etag")
        if status != 200 or body[:4] != b"\x89PNG" or not etag:
            raise SystemExit(f"the warm-up chart failed: {status} {body[:200]!r}")
        win_to = now - datetime.timedelta(minutes=60)
        window = json.dumps({"metric": "user_registration",
                             "from": (win_to - datetime.timedelta(minutes=10)).strftime("%Y-%m-%dT%H:%M:%SZ"),
                             "to": win_to.strftime("%Y-%m-%dT%H:%M:%SZ")})

        scenarios = [
            ("render cold", render, "render_cold.lua",
             {"BP_LOAD_PATH": chart, "BP_LOAD_TOKEN": TOKEN, "BP_LOAD_TO": str(int(end.timestamp()))}),
            ("render warm (304)", render, "render_warm.lua",
             {"BP_LOAD_PATH": warm_url, "BP_LOAD_TOKEN": TOKEN, "BP_LOAD_ETAG": etag}),
            ("detect event", detect, "detect_event.lua", {"BP_LOAD_BODY": window}),
        ]
        if opts.get("only"):
            scenarios = [sc for sc in scenarios if sc[0].startswith(opts["only"])]
        t0 = time.monotonic()
        stop = threading.Event()
        threading.Thread(target=sampler, args=(servers, stop, t0), daemon=True).start()
        print(f"bizpulse load: {events} events, render BIZPULSE_WORKERS=2 (queue 8), detect 4 (queue 16); "
              f"{opts['seconds']} s per level; {os.cpu_count()} CPUs; "
              f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC")
        print(f"{'scenario':<18} {'conns':>5} {'req/s':>8} {'2xx/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} "
              f"{'non-2xx':<22} {'sock err':>8} {'RSS MB':>7} {'server p50/p99 ms':>18}")
        results = []
        for name, srv, script, env in scenarios:
            rss_first = srv.rss_mb()
            for conns in opts["levels"]:
                wait_idle(srv.port)
                srv.served_latency()  # skip what came before this level
                # event ids unique across levels too (wrk's counters restart every run)
                r = wrk(srv.port, script, conns, opts["seconds"], dict(env, BP_LOAD_RUN=f"{os.getpid()}-{conns}"))
                if not srv.alive():
                    raise SystemExit(f"{srv.name} died under {name} at {conns} connections: "
                                     f"exit {srv.proc.returncode}, log {srv.log.name}")
                rps = r["requests"] / (r["duration_us"] / 1e6)
                bad = {c: n for c, n in r["codes"].items() if not (200 <= int(c.split(":")[0]) < 300 or int(c.split(":")[0]) == 304)}
                sock = r["connect"] + r["read"] + r["write"] + r["timeout"]
                rss = srv.rss_mb()
                wait_idle(srv.port)
                served = srv.served_latency()
                results.append((name, conns, rps, r, bad, sock, rss))
                good = sum(n for c, n in r["codes"].items() if 200 <= int(c.split(":")[0]) < 300 or int(c.split(":")[0]) == 304)
                print(f"{name:<18} {conns:>5} {rps:>8.1f} {good / (r['duration_us'] / 1e6):>8.1f} {r['p50_us'] / 1000:>8.1f} {r['p99_us'] / 1000:>8.1f} "
                      f"{r['max_us'] / 1000:>8.1f} {json.dumps(bad) if bad else '0':<22} {sock:>8} {rss:>7.1f} "
                      f"{'%.1f/%.1f' % served if served else '-':>18}",
                      flush=True)
            print(f"{'':<18} RSS {name}: {rss_first:.1f} MB before the levels, {srv.rss_mb():.1f} MB after")
        stop.set()
        for s in servers:
            samples = s.rss
            if samples:
                n = len(samples)
                thirds = [samples[0], samples[n // 3], samples[2 * n // 3], samples[-1]]
                print(f"RSS {s.name} over {samples[-1][0]:.0f} s ({n} samples): "
                      + ", ".join(f"{t:.0f}s {mb:.1f} MB" for t, mb in thirds)
                      + f"; max {max(mb for _, mb in samples):.1f} MB")
        # detect recorded every event exactly once: what it said 2xx to is in processed_events
        ok = sum(n for name, _, _, r, _, _, _ in results if name == "detect event"
                 for c, n in r["codes"].items() if 200 <= int(c.split(":")[0]) < 300)
        stored = subprocess.run(["psql", "-X", "-At", "-c",
                                 "SELECT count(*) FROM processed_events WHERE source = '/bizpulse/bench/load'"],
                                env=pg_env, capture_output=True, text=True).stdout.strip()
        # wrk stops each level with up to `conns` requests in flight: the server may commit
        # those without wrk counting the answer, never the other way round.
        in_flight = sum(opts["levels"])
        verdict = "consistent" if ok <= int(stored or 0) <= ok + in_flight else "MISMATCH"
        print(f"detect: {ok} events answered 2xx, {stored} recorded in processed_events "
              f"(at most {in_flight} were in flight when wrk stopped): {verdict}")
        for s in servers:
            rc = s.stop()
            print(f"{s.name}: exit {rc} after SIGTERM")
    finally:
        for s in servers:
            if s.alive():
                s.proc.kill()
            if os.environ.get("BP_LOAD_KEEP_LOGS"):
                print(f"{s.name} log: {s.log.name}")
            else:
                os.unlink(s.log.name)
        cluster.stop()


if __name__ == "__main__":
    main()
