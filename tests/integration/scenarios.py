"""Synthetic business events with a daily and weekly rhythm, for the scenario suite
(test_scenarios.py), and the measuring tools the suite shares.

Everything is deterministic: per-interval counts are drawn in Python from random.Random(seed)
(Poisson volumes, binomial successes), and PostgreSQL expands them into event rows with
generate_series in one INSERT per batch, spread evenly inside their interval.

Rhythm (UTC, so the seasonal detector's time-of-day/day-of-week slots see it):
  daily   0.1 at 04:00 rising to 1.0 at 16:00 (a raised cosine), times
  weekly  0.75 on Saturdays, 0.7 on Sundays, 1.0 otherwise.
Registration attempts are split by country (DE 30%, FR 20%, US 35%, BR 15%) x platform
(android 50%, ios 35%, web 15%); success rates are 86% / 90% / 89% by platform.
"""

import datetime
import json
import math
import os
import random
import subprocess

import harness

UTC = datetime.timezone.utc
COUNTRIES = (("DE", 0.30), ("FR", 0.20), ("US", 0.35), ("BR", 0.15))
PLATFORMS = (("android", 0.50), ("ios", 0.35), ("web", 0.15))
SUCCESS = {"android": 0.86, "ios": 0.90, "web": 0.89}
AGGREGATED = "dev.bizpulse.metrics.aggregated.v1"


def daily(ts, phase_s=0):
    """Time-of-day factor in [0.1, 1]: trough at 04:00, peak at 16:00 (ts + phase_s, UTC)."""
    h = ((ts + phase_s) % 86400) / 3600.0
    return 0.1 + 0.9 * (0.5 - 0.5 * math.cos(2 * math.pi * (h - 4) / 24))


def weekly(ts):
    wd = datetime.datetime.fromtimestamp(ts, UTC).weekday()
    return {5: 0.75, 6: 0.7}.get(wd, 1.0)


def rhythm(ts, phase_s=0):
    return daily(ts, phase_s) * weekly(ts + phase_s)


def anchor(now=None):
    """The most recent Thursday 00:00 UTC at least a day before now: historical scenarios end
    there, so the same weekdays (and the same verdicts) come out whatever the day of the run."""
    now = now or harness.utcnow()
    day = (now - datetime.timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    return day - datetime.timedelta(days=(day.weekday() - 3) % 7)


def ts_of(dt):
    return int(dt.timestamp())


class Events:
    """Per-interval counts of (event_type, country, platform), drawn from one seeded RNG, and
    their expansion into business_events."""

    def __init__(self, seed):
        self.rng = random.Random(seed)
        self.rows = []  # (ts, width_s, event_type, country or None, platform or None, count)

    def poisson(self, lam):
        if lam <= 0:
            return 0
        if lam >= 30:
            return max(0, round(self.rng.gauss(lam, math.sqrt(lam))))
        limit, k, p = math.exp(-lam), 0, self.rng.random()
        while p > limit:
            k += 1
            p *= self.rng.random()
        return k

    def binomial(self, n, p):
        if n < 40:
            return sum(self.rng.random() < p for _ in range(n))
        return min(n, max(0, round(self.rng.gauss(n * p, math.sqrt(n * p * (1 - p))))))

    def add(self, ts, width, event_type, count, country=None, platform=None):
        if count > 0:
            self.rows.append((ts, width, event_type, country, platform, int(count)))

    def registrations(self, start, end, interval, peak, success=None, volume=None, phase_s=0):
        """Attempts (Poisson around peak x rhythm x share) and successes (binomial) per interval
        and country x platform. success(ts, country, platform, base_rate) and
        volume(ts, country, platform) change the truth for a scenario."""
        for ts in range(start, end, interval):
            base = peak * rhythm(ts, phase_s)
            for country, cs in COUNTRIES:
                for platform, ps in PLATFORMS:
                    lam = base * cs * ps * (volume(ts, country, platform) if volume else 1.0)
                    attempts = self.poisson(lam)
                    rate = SUCCESS[platform]
                    if success:
                        rate = success(ts, country, platform, rate)
                    self.add(ts, interval, "registration_attempt", attempts, country, platform)
                    self.add(ts, interval, "registration_success", self.binomial(attempts, rate), country, platform)

    def counts(self, event_type, start, end, interval, peak, factor=None, flat=False, phase_s=0):
        """A count per interval: Poisson around peak x rhythm x factor(ts), or exactly
        peak x factor(ts) when flat."""
        for ts in range(start, end, interval):
            f = factor(ts) if factor else 1.0
            if flat:
                self.add(ts, interval, event_type, round(peak * f))
            else:
                self.add(ts, interval, event_type, self.poisson(peak * rhythm(ts, phase_s) * f))

    def insert(self, db, rows=None):
        """Inserts rows (default: all drawn so far) as business_events, count events spread
        evenly over each row's interval."""
        rows = self.rows if rows is None else rows
        for i in range(0, len(rows), 40000):
            chunk = rows[i:i + 40000]

            def arr(k, quote=False):
                vals = []
                for r in chunk:
                    v = r[k]
                    vals.append("NULL" if v is None else (f'"{v}"' if quote else str(v)))
                return "'{" + ",".join(vals) + "}'"

            db.sql(f"""
                INSERT INTO business_events (event_type, event_timestamp, payload)
                SELECT v.t, to_timestamp(v.ts + (j - 0.5) * v.w / v.c),
                       CASE WHEN v.country IS NULL THEN '{{}}'::jsonb
                            ELSE jsonb_build_object('country', v.country, 'platform', v.platform) END
                FROM unnest({arr(0)}::bigint[], {arr(1)}::int[], {arr(2, True)}::text[],
                            {arr(3, True)}::text[], {arr(4, True)}::text[], {arr(5)}::int[])
                         AS v(ts, w, t, country, platform, c),
                     generate_series(1, v.c) AS j""")
        return sum(r[5] for r in rows)


# --------------------------------------------------------------------------- binaries


def cli_env(db, metrics_path, **extra):
    env = dict(os.environ)
    for key in list(env):
        if key.startswith(("PG", "BIZPULSE_", "K_")) or key == "DATABASE_URL":
            del env[key]
    env.update(db.pg_env())
    env["BIZPULSE_METRICS"] = metrics_path
    env.update({k: str(v) for k, v in extra.items() if v is not None})
    return env


def run(args, env, what, timeout=120):
    proc = subprocess.run(args, env=env, capture_output=True, text=True, timeout=timeout)
    out = proc.stdout + proc.stderr
    if proc.returncode != 0 or any(m in out for m in harness.SANITIZER_MARKERS):
        raise AssertionError(f"{what} exited {proc.returncode}:\n{out[-4000:]}")
    return proc.stdout


def backfill(db, metrics_path, metric, start, end):
    run([harness.binary("aggregate"), "backfill", "--metric", metric, "--from", rfc(start), "--to", rfc(end)],
        cli_env(db, metrics_path), f"backfill {metric}")


def backtest(db, metrics_path, metric, start, end, **sensitivity):
    out = run([harness.binary("detect"), "backtest", "--metric", metric, "--from", rfc(start), "--to", rfc(end)],
              cli_env(db, metrics_path, **sensitivity), f"backtest {metric}")
    return json.loads(out.strip().splitlines()[-1])


def rfc(ts):
    return harness.rfc3339(datetime.datetime.fromtimestamp(ts, UTC))


def parse_ts(s):
    return None if s is None else ts_of(datetime.datetime.strptime(s, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC))


def overlaps(incident, lo, hi, end):
    """Whether a backtest incident ({"started","ended"}) overlaps [lo, hi)."""
    started = parse_ts(incident["started"])
    ended = parse_ts(incident["ended"]) if incident["ended"] else end
    return started < hi and ended >= lo


def detection_delay(db, metrics_path, metric, frm, truth_from, truth_to, interval):
    """Intervals of the anomaly that had to close before the backtest opened an incident
    overlapping it: the smallest k such that a backtest ending at truth_from + k intervals has
    one (binary search: detection is causal). None when none opens while the anomaly lasts
    (e.g. only on its recovery)."""
    hi_k = (truth_to - truth_from) // interval

    def caught(k):
        to = truth_from + k * interval
        return any(overlaps(i, truth_from, to, to) for i in backtest(db, metrics_path, metric, frm, to)["incidents"])

    if not caught(hi_k):
        return None
    lo, hi = 1, hi_k
    while lo < hi:
        mid = (lo + hi) // 2
        if caught(mid):
            hi = mid
        else:
            lo = mid + 1
    return lo


def per_week(n, seconds):
    return n / (seconds / (7 * 86400.0))


# --------------------------------------------------------------------------- summary table


RESULTS = []


def record(scenario, method, caught, delay, root_cause, false_per_week, note=""):
    RESULTS.append({"scenario": scenario, "method": method, "caught": caught, "delay": delay,
                    "root_cause": root_cause, "false_per_week": false_per_week, "note": note})


def table():
    head = ("scenario", "method", "caught", "intervals to detect", "root cause", "false inc/week", "note")
    rows = []
    for r in sorted(RESULTS, key=lambda r: (r["scenario"], r["method"])):
        caught = {True: "yes", False: "NO", None: "-"}.get(r["caught"], str(r["caught"]))
        delay = "-" if r["delay"] is None else str(r["delay"])
        fpw = "-" if r["false_per_week"] is None else f"{r['false_per_week']:.2f}"
        rows.append((r["scenario"], r["method"], caught, delay, r["root_cause"] or "-", fpw, r["note"]))
    widths = [max(len(str(x[i])) for x in rows + [head]) for i in range(len(head))]
    line = lambda cells: " | ".join(str(c).ljust(w) for c, w in zip(cells, widths)).rstrip()
    out = [line(head), "-+-".join("-" * w for w in widths)] + [line(r) for r in rows]
    return "\n".join(out)
