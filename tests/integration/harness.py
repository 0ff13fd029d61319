"""Integration-test harness: a real PostgreSQL, the real function binaries, real HTTP on 127.0.0.1.

Python 3 standard library only; SQL goes through the `psql` CLI.

- Database: a fresh database per test on the cluster named by BP_TEST_PGHOST/BP_TEST_PGPORT
  (scripts/test.sh starts one for the whole run). When those are unset, a private cluster is
  started through scripts/pgcluster.sh for this process, so one test file runs alone:
      BP_BUILD_DIR=build python3 tests/integration/test_full_chain.py
- Cluster: a private cluster that a test may restart or stop.
- Service: one function binary (BP_BUILD_DIR/functions/<name>/bizpulse-<name>) on PORT=0; the
  bound port is read from its "listening" log line. stop() sends SIGTERM and fails the test
  unless the process exits 0 without a sanitizer report.
- wait_until(): poll a condition with a deadline; never sleep-and-hope.
"""

import atexit
import datetime
import http.client
import json
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import uuid
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE_DIR = os.environ.get("BP_SOURCE_DIR") or os.path.dirname(os.path.dirname(HERE))
BUILD_DIR = os.environ.get("BP_BUILD_DIR") or os.path.join(SOURCE_DIR, "build")
PGCLUSTER = os.path.join(SOURCE_DIR, "scripts", "pgcluster.sh")

SANITIZER_MARKERS = ("ERROR: AddressSanitizer", "runtime error:", "ERROR: LeakSanitizer",
                     "WARNING: ThreadSanitizer", "SUMMARY: UndefinedBehaviorSanitizer")


class WaitTimeout(AssertionError):
    pass


def free_port():
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(cond, timeout, what, interval=0.05):
    """Calls cond() until it returns a truthy value, which is returned. Fails with `what` once
    `timeout` seconds pass; the last exception cond() raised, if any, is named."""
    deadline = time.monotonic() + timeout
    last_exc = None
    while True:
        try:
            value = cond()
            if value:
                return value
            last_exc = None
        except (OSError, http.client.HTTPException, subprocess.CalledProcessError) as exc:
            last_exc = exc
        if time.monotonic() >= deadline:
            detail = f" (last error: {last_exc!r})" if last_exc else ""
            raise WaitTimeout(f"timed out after {timeout} s waiting for {what}{detail}")
        time.sleep(interval)
        interval = min(interval * 1.5, 0.5)


def rfc3339(dt):
    """A timezone-aware datetime as RFC 3339 UTC with a Z."""
    return dt.astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_rfc3339(text):
    """The inverse of rfc3339 (any offset; 'Z' for UTC)."""
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))


def utcnow():
    return datetime.datetime.now(datetime.timezone.utc)


def last_closed_minute(margin_s=20):
    """The start of the current minute as it was margin_s seconds ago: every minute before it
    is closed for aggregate (whose grace is 10 s) by the time the test ticks."""
    t = utcnow() - datetime.timedelta(seconds=margin_s)
    return t.replace(second=0, microsecond=0)


def registration_pattern(minutes=300, drop_minutes=20, drop=0.4, gap_at=30):
    """Per-minute counts: 95..105 in a fixed cycle (stddev ~3.2, so no normal minute leaves
    the 3-sigma band), one empty minute at gap_at (inside the first 90 minutes, which get no
    verdict, so it tests zero-filling without opening an incident), and a drop of `drop` for
    the last drop_minutes (60 instead of ~100: far outside the band)."""
    counts = []
    for i in range(minutes):
        if i == gap_at:
            counts.append(0)
        elif i >= minutes - drop_minutes:
            counts.append(round(100 * (1 - drop)))
        else:
            counts.append(95 + (i * 7) % 11)
    return counts


# --------------------------------------------------------------------------- PostgreSQL


class Cluster:
    """A private throwaway cluster (scripts/pgcluster.sh)."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="bp-pg.", dir="/tmp")
        self.running = False
        self._run("start")
        self.running = True
        env = subprocess.run([PGCLUSTER, "env", self.dir], check=True, capture_output=True,
                             text=True).stdout
        values = dict(re.findall(r"export (\w+)=(\S+)", env))
        self.host = values["PGHOST"]
        self.port = int(values["PGPORT"])

    def _run(self, action):
        proc = subprocess.run([PGCLUSTER, action, self.dir], capture_output=True, text=True)
        if proc.returncode != 0:
            raise AssertionError(f"pgcluster.sh {action} failed: {proc.stderr.strip()}")

    def restart(self):
        self._run("restart")

    def stop(self):
        self._run("stop")
        self.running = False

    def start(self):
        self._run("start")
        self.running = True

    def close(self):
        if self.dir:
            self._run("stop")
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None


_shared_cluster = None


def shared_cluster_address():
    """(host, port) of the run's cluster, or of a private one started for this process."""
    global _shared_cluster
    host = os.environ.get("BP_TEST_PGHOST")
    port = os.environ.get("BP_TEST_PGPORT")
    if host and port:
        return host, int(port)
    if _shared_cluster is None:
        _shared_cluster = Cluster()
        atexit.register(_shared_cluster.close)
    return _shared_cluster.host, _shared_cluster.port


# psql prints NULL as this marker (a value no test stores), so None and "" stay apart.
NULL = "\x01NULL\x01"


class Database:
    """A fresh database on a cluster; drop() removes it."""

    def __init__(self, host=None, port=None):
        if host is None:
            host, port = shared_cluster_address()
        self.host, self.port = host, int(port)
        self.name = "bp_" + uuid.uuid4().hex[:12]
        self._admin(f'CREATE DATABASE "{self.name}"')

    def pg_env(self, database=None):
        """libpq variables for this database (what the services get)."""
        return {"PGHOST": self.host, "PGPORT": str(self.port), "PGUSER": "postgres",
                "PGDATABASE": database or self.name}

    def _psql(self, args, query, database=None):
        env = dict(os.environ)
        env.pop("DATABASE_URL", None)
        env.update(self.pg_env(database))
        proc = subprocess.run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1"] + args,
                              input=query.encode(), env=env, capture_output=True)
        if proc.returncode != 0:
            raise AssertionError(f"psql failed: {proc.stderr.decode(errors='replace').strip()}\n"
                                 f"query: {query}")
        return proc.stdout.decode()

    def _admin(self, query):
        self._psql([], query, database="postgres")

    def sql(self, query, **params):
        """Runs query (one or more statements) and returns the rows of every result as lists
        of strings (None for NULL). Parameters are psql variables: write :'name' for a quoted
        literal, :"name" for an identifier."""
        args = ["-A", "-t", "-F", "\x1f", "-0", "-P", "null=" + NULL, "-P", "pager=off"]
        for key, value in params.items():
            args += ["-v", f"{key}={value}"]
        out = self._psql(args, query)
        # -0: every record is NUL-terminated, also the last one of each result.
        return [[None if f == NULL else f for f in rec.split("\x1f")]
                for rec in out.split("\0")[:-1]]

    def value(self, query, **params):
        """The one value of a one-row, one-column query."""
        rows = self.sql(query, **params)
        if len(rows) != 1 or len(rows[0]) != 1:
            raise AssertionError(f"expected one value, got {rows!r} from: {query}")
        return rows[0][0]

    def drop(self):
        try:
            self._admin(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
        except AssertionError:
            pass  # a private cluster may be stopped already

    def insert_minutes(self, start, counts, event_type="user_registration"):
        """Inserts counts[i] events of event_type spread over the minute start + i minutes
        (start: a whole minute, RFC 3339), with country/platform payloads."""
        self.sql("""
            INSERT INTO business_events (event_type, event_timestamp, payload)
            SELECT :'event_type',
                   :'start'::timestamptz + (m.i - 1) * interval '1 minute'
                       + (j * 59.0 / m.c) * interval '1 second',
                   jsonb_build_object('country', (ARRAY['DE','FR','US','BR'])[1 + j % 4],
                                      'platform', (ARRAY['android','ios','web'])[1 + j % 3])
            FROM unnest(:'counts'::int[]) WITH ORDINALITY AS m(c, i),
                 generate_series(0, m.c - 1) AS j
            """, event_type=event_type, start=start,
                 counts="{" + ",".join(str(int(c)) for c in counts) + "}")


def insert_open_incident(db, summary="registrations -40% vs expected"):
    """An open incident of user_registration with a root cause, as detect would store it; its id."""
    return db.value("""
        INSERT INTO incidents (metric_name, series, status, started_at, last_anomaly_at,
            peak_timestamp, peak_value, peak_expected, method, summary, context)
        VALUES ('user_registration', '', 'open', now() - interval '20 minutes',
            now() - interval '1 minute', now() - interval '10 minutes', 60, 100, 'sigma3', :'summary',
            '{"root_cause":[{"series":"country=DE,platform=android","expected":50,"actual":20,"share":0.75}]}')
        RETURNING id""", summary=summary)


def aggregation_mismatches(db, start, to, metric="user_registration",
                           event_type="user_registration"):
    """Minutes in [start, to) where aggregated_metrics (series '') differs from a plain
    COUNT(*) ... GROUP BY minute over business_events, 0 for a minute without events, as
    [minute, expected, actual] rows (actual None: the row is missing)."""
    return db.sql("""
        WITH minutes AS (
            SELECT generate_series(:'start'::timestamptz, :'to'::timestamptz - interval '1 minute',
                                   interval '1 minute') AS ts),
        plain AS (
            SELECT date_trunc('minute', event_timestamp) AS ts, count(*) AS n
            FROM business_events WHERE event_type = :'event_type' GROUP BY 1),
        expected AS (
            SELECT m.ts, coalesce(p.n, 0)::float8 AS n FROM minutes m LEFT JOIN plain p USING (ts)),
        actual AS (
            SELECT metric_timestamp AS ts, metric_value AS v FROM aggregated_metrics
            WHERE metric_name = :'metric' AND series = ''
              AND metric_timestamp >= :'start'::timestamptz AND metric_timestamp < :'to'::timestamptz)
        SELECT to_char(ts AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI"Z"'), e.n, a.v
        FROM expected e FULL JOIN actual a USING (ts)
        WHERE e.n IS DISTINCT FROM a.v
        ORDER BY ts
        """, start=start, to=to, metric=metric, event_type=event_type)


def minutes_between(db, start, to):
    return int(db.value("SELECT extract(epoch FROM :'to'::timestamptz - :'start'::timestamptz)::int / 60",
                        start=start, to=to))


def migrate(db):
    """Applies the schema with `bizpulse-aggregate migrate` (the documented way)."""
    env = dict(os.environ)
    env.pop("DATABASE_URL", None)
    env.update(db.pg_env())
    env["BIZPULSE_METRICS"] = os.path.join(HERE, "metrics.json")
    proc = subprocess.run([binary("aggregate"), "migrate"], env=env, capture_output=True,
                          text=True, timeout=120)
    out = proc.stdout + proc.stderr
    if proc.returncode != 0 or any(m in out for m in SANITIZER_MARKERS):
        raise AssertionError(f"migrate exited {proc.returncode}:\n{out[-4000:]}")


class Session:
    """One psql session kept open, to hold a lock or an uncommitted row while a service runs
    into it (a statement blocked on it is a request in flight at a known point, so a fault can
    be injected exactly there). Statements are sent with run(); close() ends psql (an open
    transaction rolls back). Its connection dies with the cluster, like the services'."""

    def __init__(self, db):
        self.db = db
        env = dict(os.environ)
        env.pop("DATABASE_URL", None)
        env.update(db.pg_env())
        env["PGAPPNAME"] = "bp-test-session"
        self.proc = subprocess.Popen(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1"], env=env,
                                     stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE)

    def run(self, statements):
        """Sends statements and waits until the session has executed them (it is then idle,
        possibly inside its transaction)."""
        self.proc.stdin.write(statements.encode() + b"\n")
        self.proc.stdin.flush()
        # Done when the session is idle with the last statement as its last query (idle alone
        # is also true before psql sent anything).
        last = [x.strip() for x in statements.split(";") if x.strip()][-1]
        wait_until(lambda: self.proc.poll() is not None or self.db.value(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'bp-test-session' "
            "AND state LIKE 'idle%' AND strpos(query, :'last') > 0", last=last) == "1", 30,
            "the psql session to run its statements")
        if self.proc.poll() is not None:
            raise AssertionError("psql session exited: " + self.proc.stderr.read().decode(errors="replace"))

    def close(self):
        if self.proc.poll() is None:
            try:
                self.proc.stdin.close()
            except OSError:
                pass
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc.stderr.close()


def wait_blocked_on_lock(db, count=1, timeout=30):
    """Waits until `count` backends of the services (application_name bizpulse) wait on a lock."""
    wait_until(lambda: int(db.value(
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'bizpulse' "
        "AND wait_event_type = 'Lock'")) >= count, timeout, f"{count} service statement(s) to block on a lock")


def metric_value(text, name, labels=""):
    """The value of one sample in Prometheus text (0 when the sample is absent); labels is the
    exact label text, e.g. 'kind="connect"'."""
    key = f"{name}{{{labels}}}" if labels else name
    for line in text.splitlines():
        if line.startswith(key + " "):
            return float(line[len(key) + 1:])
    return 0.0


# --------------------------------------------------------------------------- HTTP


class Response:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers  # lowercase names
        self.body = body

    def json(self):
        try:
            return json.loads(self.body)
        except ValueError as exc:
            raise AssertionError(f"response is not JSON ({exc}): {self.body[:500]!r}") from None

    def __repr__(self):
        return f"<Response {self.status} {self.body[:300]!r}>"


def http_request(port, method, path, body=None, headers=None, timeout=60):
    """One HTTP/1.1 request to 127.0.0.1:port on a fresh connection."""
    if isinstance(body, (dict, list)):
        body = json.dumps(body).encode()
    elif isinstance(body, str):
        body = body.encode()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        res = conn.getresponse()
        data = res.read()
        return Response(res.status, {k.lower(): v for k, v in res.getheaders()}, data)
    finally:
        conn.close()


def png_size(data):
    """(width, height) of a PNG, or an AssertionError naming what is wrong. The whole file is
    checked, as a strict decoder would: every chunk's CRC, IEND last, and the IDAT data inflates
    (zlib checks its adler32) to exactly one filter byte plus the pixels of each row."""
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise AssertionError(f"not a PNG signature: {data[:16]!r}")
    length, kind = struct.unpack(">I4s", data[8:16])
    if kind != b"IHDR" or length != 13:
        raise AssertionError(f"first chunk is {kind!r} ({length} bytes), not IHDR")
    width, height, depth, colour = struct.unpack(">IIBB", data[16:26])
    channels = {0: 1, 2: 3, 4: 2, 6: 4}.get(colour)
    if depth != 8 or channels is None:
        raise AssertionError(f"unexpected PNG depth {depth} / colour type {colour}")
    pos, idat, last = 8, [], None
    while pos + 12 <= len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length:pos + 12 + length])
        if zlib.crc32(kind + body) != crc:
            raise AssertionError(f"bad CRC on PNG chunk {kind!r} at byte {pos}")
        if kind == b"IDAT":
            idat.append(body)
        last = kind
        pos += 12 + length
    if last != b"IEND" or pos != len(data):
        raise AssertionError(f"PNG does not end with IEND (last chunk {last!r}, {len(data) - pos} bytes left)")
    raw = zlib.decompress(b"".join(idat))
    if len(raw) != height * (1 + width * channels):
        raise AssertionError(f"PNG pixel data is {len(raw)} bytes, not {height} rows of {width} pixels")
    return width, height


def pdf_pages(path):
    """Number of pages pdfinfo reports; fails when pdfinfo rejects the file."""
    proc = subprocess.run(["pdfinfo", path], capture_output=True, text=True)
    if proc.returncode != 0:
        raise AssertionError(f"pdfinfo rejects {path}: {proc.stderr.strip()}")
    m = re.search(r"^Pages:\s+(\d+)", proc.stdout, re.M)
    if not m:
        raise AssertionError(f"pdfinfo printed no page count for {path}:\n{proc.stdout}")
    return int(m.group(1))


# --------------------------------------------------------------------------- services


def binary(name):
    path = os.path.join(BUILD_DIR, "functions", name, f"bizpulse-{name}")
    if not os.access(path, os.X_OK):
        raise AssertionError(f"{path} not built (BP_BUILD_DIR={BUILD_DIR})")
    return path


class Service:
    """One function binary serving on 127.0.0.1 (PORT=0)."""

    def __init__(self, name, db, log_dir, env=None):
        self.name = name
        self.db = db
        self.port = None
        self.proc = None
        self.log_dir = log_dir
        self.stdout_path = os.path.join(log_dir, f"{name}.stdout.log")
        self.stderr_path = os.path.join(log_dir, f"{name}.stderr.log")
        self.env = dict(os.environ)
        for key in list(self.env):
            if key.startswith(("PG", "BIZPULSE_", "K_")) or key == "DATABASE_URL":
                del self.env[key]
        self.env.update(db.pg_env())
        self.env.update({
            "PORT": "0",
            "BIZPULSE_HOST": "127.0.0.1",
            "BIZPULSE_METRICS": os.path.join(HERE, "metrics.json"),
            "BIZPULSE_BACKGROUND_MS": "200",
            "K_SERVICE": f"bizpulse-{name}",
        })
        self.env.update({k: str(v) for k, v in (env or {}).items() if v is not None})
        self._listening = threading.Event()
        self._lines = []
        self._stderr = []
        self._threads = []

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}/"

    def start(self, ready=True, timeout=60):
        self.proc = subprocess.Popen([binary(self.name)], env=self.env, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self._threads = [
            threading.Thread(target=self._read_stdout, daemon=True),
            threading.Thread(target=self._read_stderr, daemon=True),
        ]
        for t in self._threads:
            t.start()
        wait_until(lambda: self._listening.is_set() or self.proc.poll() is not None, timeout,
                   f"{self.name} to log 'listening'")
        if self.port is None:
            self.proc.wait(timeout=10)
            raise AssertionError(f"{self.name} exited {self.proc.returncode} before listening:\n"
                                 + self.tail())
        if ready:
            self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout=60):
        wait_until(lambda: self._alive() and self.get("/readyz").status == 200, timeout,
                   f"{self.name} /readyz to answer 200")

    def _alive(self):
        if self.proc.poll() is not None:
            raise AssertionError(f"{self.name} exited {self.proc.returncode}:\n" + self.tail())
        return True

    def _read_stdout(self):
        with open(self.stdout_path, "ab") as log:
            for raw in self.proc.stdout:
                log.write(raw)
                log.flush()
                line = raw.decode(errors="replace")
                self._lines.append(line)
                # {"message":"listening ...", ..., "port":N}: the message may name the address.
                if self.port is None and "listening" in line:
                    port = None
                    try:
                        obj = json.loads(line)
                        if str(obj.get("message", "")).startswith("listening"):
                            port = int(obj["port"])
                    except (ValueError, KeyError, TypeError):
                        m = re.search(r'"port"\s*:\s*(\d+)', line)
                        port = int(m.group(1)) if m else None
                    if port:
                        self.port = port
                        self._listening.set()

    def _read_stderr(self):
        with open(self.stderr_path, "ab") as log:
            for raw in self.proc.stderr:
                log.write(raw)
                log.flush()
                self._stderr.append(raw.decode(errors="replace"))

    def logs(self):
        """Parsed JSON log lines so far (lines that are not JSON are skipped)."""
        out = []
        for line in list(self._lines):
            try:
                out.append(json.loads(line))
            except ValueError:
                pass
        return out

    def tail(self, n=40):
        text = "".join(self._lines[-n:]) + "".join(self._stderr[-n:])
        return f"--- {self.name} (logs in {self.log_dir}) ---\n{text}"

    def request(self, method, path, body=None, headers=None, timeout=60):
        self._alive()
        return http_request(self.port, method, path, body, headers, timeout)

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def post(self, path, body=None, headers=None, **kw):
        return self.request("POST", path, body, headers, **kw)

    def metric(self, name, labels=""):
        """One sample of this service's /metrics (0 when absent)."""
        return metric_value(self.get("/metrics").body.decode(), name, labels)

    def scheduler_tick(self, when=None, job="bizpulse-tick"):
        """What Cloud Scheduler's HTTP target sends."""
        return self.post("/", b"", {
            "X-CloudScheduler-JobName": job,
            "X-CloudScheduler-ScheduleTime": rfc3339(when or utcnow()),
            "User-Agent": "Google-Cloud-Scheduler",
        })

    def post_cloudevent(self, ce_id, ce_type, data, source="/bizpulse/tests", subject=None,
                        extra=None):
        """A binary-mode CloudEvent with a JSON data body."""
        headers = {"Content-Type": "application/json", "ce-specversion": "1.0", "ce-id": ce_id,
                   "ce-source": source, "ce-type": ce_type, "ce-time": rfc3339(utcnow())}
        if subject:
            headers["ce-subject"] = subject
        headers.update(extra or {})
        return self.post("/", data, headers)

    def stop(self, timeout=40):
        """SIGTERM; asserts exit status 0 and no sanitizer report."""
        if self.proc is None or self._stopped:
            return
        self._stopped = True
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError(f"{self.name} did not exit within {timeout} s of SIGTERM:\n"
                                     + self.tail())
        for t in self._threads:
            t.join(timeout=10)
        for pipe in (self.proc.stdout, self.proc.stderr):
            pipe.close()
        everything = "".join(self._stderr) + "".join(self._lines)
        found = [m for m in SANITIZER_MARKERS if m in everything]
        if found:
            raise AssertionError(f"{self.name}: sanitizer report ({', '.join(found)}):\n"
                                 + "".join(self._stderr)[-8000:])
        if self.proc.returncode != 0:
            raise AssertionError(f"{self.name} exited {self.proc.returncode} after SIGTERM:\n"
                                 + self.tail())

    _stopped = False


# --------------------------------------------------------------------------- test case


class TestCase(unittest.TestCase):
    """Gives each test a fresh migrated database (self.db) and a log directory; services
    started with self.service() are stopped (and checked) when the test ends."""

    migrate_db = True
    private_cluster = False  # a cluster of the test's own (self.cluster), e.g. to restart it

    def setUp(self):
        self.log_dir = os.path.join(BUILD_DIR, "integration-logs", self.id())
        shutil.rmtree(self.log_dir, ignore_errors=True)
        os.makedirs(self.log_dir)
        self.services = []
        self.cluster = None
        if self.private_cluster:
            self.cluster = Cluster()
            self.addCleanup(self.cluster.close)
        self.db = self.make_db(self.cluster)
        if self.migrate_db:
            migrate(self.db)

    def make_db(self, cluster=None):
        db = Database(cluster.host, cluster.port) if cluster else Database()
        self.addCleanup(db.drop)
        return db

    def service(self, name, db=None, start=True, **env):
        svc = Service(name, db or self.db, self.log_dir, env)
        self.services.append(svc)
        self.addCleanup(svc.stop)
        if start:
            svc.start()
        return svc

    def run(self, result=None):
        # On a failure, show the services' last log lines next to the assertion.
        before = len(result.failures) + len(result.errors) if result else 0
        out = super().run(result)
        if result and len(result.failures) + len(result.errors) > before:
            for svc in getattr(self, "services", []):
                if svc.proc is not None:
                    sys.stderr.write(svc.tail(60) + "\n")
        return out

    def assert_json_error(self, res, statuses, what):
        """res has one of statuses and the body {"error":{"code":..,"message":..}}."""
        if isinstance(statuses, int):
            statuses = (statuses,)
        self.assertIn(res.status, statuses, f"{what}: {res!r}")
        self.assertTrue(res.headers.get("content-type", "").startswith("application/json"),
                        f"{what}: content type {res.headers.get('content-type')!r}")
        body = res.json()
        self.assertIsInstance(body.get("error"), dict, f"{what}: {body!r}")
        self.assertIsInstance(body["error"].get("code"), str, f"{what}: {body!r}")
        self.assertTrue(body["error"]["code"], f"{what}: empty code")
        self.assertIsInstance(body["error"].get("message"), str, f"{what}: {body!r}")
        self.assertTrue(body["error"]["message"], f"{what}: empty message")
        return body["error"]


def main():
    unittest.main(verbosity=2)
