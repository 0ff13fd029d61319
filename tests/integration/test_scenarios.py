"""Business scenarios with known truth (issue 5, "Business-scenario suite"): synthetic events
with a daily and weekly rhythm (scenarios.py), aggregated by the real aggregate, judged by the
real detect, for the default method (`auto`) and the opt-in `seasonal` one.

  1 a 30% drop of registration success in one country      caught, root cause names the country
  2 a total outage (a count drops to zero)                 caught
  3 a slow 10% decline over hours                          caught
  4 a holiday-like quiet day (volume down, same shape)     no incident
  5 a low-volume night (counts of 0-3)                     no incident from 0 -> 1 wiggles
 5b a low-volume outage (8 a minute -> 0 for 30 min)       caught
  6 late events arriving 5 minutes after the tick (live)   no false incident; a real drop caught
  7 a flat series                                          no incident; a drop from it caught
  8 a series with too little history (live)                learning, no incident

Historical scenarios (1-5, 7) end at a fixed weekday (scenarios.anchor), are aggregated with one
`backfill` per metric and judged with `backtest` (the scorer and episode state machine of the
live path); time to detection is the number of anomalous intervals that had to close before
the incident opened. Scenario 1 also runs the detect service over the same history for the
incident's root cause. 6 and 8 run the services. A summary table is printed at the end.

Where a method misses a requirement, the test states the requirement and is marked
expectedFailure with what detection lacks.
"""

import datetime
import json
import os
import sys
import tempfile
import time
import unittest

import harness
import scenarios as sc

H = 3600
DAY = 86400
M5 = 300
M1 = 60
MAX_FALSE_PER_WEEK = 1.0  # a metric that pages more than once a week on noise is not trusted
SLACK = 1800  # an incident opening within 30 min after the truth ends belongs to it

TIMINGS = []


def metric(name, kind, interval, method="auto", **kw):
    d = {"name": name, "kind": kind, "interval": interval, "method": method}
    d.update(kw)
    return d


def count(name, event_type, interval, method="auto"):
    return metric(name, "count", interval, method, event_type=event_type)


def rate(name, interval, method="auto"):
    return metric(name, "ratio", interval, method, numerator={"event_type": "registration_success"},
                  denominator={"event_type": "registration_attempt"}, dimensions=["country", "platform"])



def write_metrics(metrics):
    fd, path = tempfile.mkstemp(prefix="bp-scen-metrics.", suffix=".json")
    with os.fdopen(fd, "w") as f:
        json.dump({"metrics": metrics}, f)
    return path


def both(name):
    return [(name, "auto"), (name + "_seasonal", "seasonal")]


class Historical(unittest.TestCase):
    """A class-wide database with the scenario's history, aggregated once; each test judges one
    (scenario, method)."""

    METRICS = []

    @classmethod
    def setUpClass(cls):
        t0 = time.monotonic()
        cls.db = harness.Database()
        harness.migrate(cls.db)
        cls.metrics_path = write_metrics(cls.METRICS)
        cls.end = sc.ts_of(sc.anchor())
        cls.events = cls.generate()
        for m in cls.METRICS:
            sc.backfill(cls.db, cls.metrics_path, m["name"], cls.data_start(m), cls.end)
        cls.results = {}
        TIMINGS.append((cls.__name__ + " setup", time.monotonic() - t0, cls.events))

    @classmethod
    def tearDownClass(cls):
        cls.db.drop()
        os.unlink(cls.metrics_path)

    @classmethod
    def data_start(cls, m):
        raise NotImplementedError

    def judge(self, scenario, metric, method, interval, eval_from, truth=None):
        """Backtests metric over [eval_from, end) once; returns (caught, delay, false incidents
        per series-week, report, false incidents). truth = (from, to) of what happened, or None
        where nothing did. An incident overlapping [from, to + SLACK) catches the truth; every
        other one is false."""
        key = (metric, eval_from)
        if key not in self.results:
            rep = sc.backtest(self.db, self.metrics_path, metric, eval_from, self.end)
            self.assertEqual(rep["method"], method, rep)
            caught = delay = None
            false = rep["incidents"]
            if truth:
                # Incidents overlapping the truth (or opening on its recovery) are not false; it
                # is caught when one opens while it lasts.
                hit = [i for i in rep["incidents"] if sc.overlaps(i, truth[0], truth[1] + SLACK, self.end)]
                false = [i for i in rep["incidents"] if i not in hit]
                if hit:
                    delay = sc.detection_delay(self.db, self.metrics_path, metric, eval_from, truth[0], truth[1],
                                               interval)
                caught = delay is not None
            fpw = sc.per_week(len(false), self.end - eval_from)
            self.results[key] = (caught, delay, fpw, rep, false)
            sc.record(scenario, method, caught, delay, self.root_causes.get(metric), fpw,
                      f"{len(false)} false in {(self.end - eval_from) / DAY:.1f} d; "
                      f"{rep['anomalous_points']}/{rep['points']} points anomalous")
        return self.results[key]

    root_causes = {}

    def assert_caught(self, judged, method, what, max_delay):
        caught, delay, fpw, rep, false = judged
        self.assertTrue(caught, f"{method}: {what} opened no incident: {rep}")
        self.assertLessEqual(delay, max_delay, f"{method}: {what} took {delay} intervals to detect")

    def assert_rarely_false(self, judged, method):
        caught, delay, fpw, rep, false = judged
        self.assertLessEqual(fpw, MAX_FALSE_PER_WEEK, f"{method}: {fpw:.2f} false incidents per week: {false}")


# --------------------------------------------------------------------------- 2, 4, 5, 7


class CountsWeek(Historical):
    """Eight days (Thursday 00:00 to Thursday 00:00 UTC) of orders, sessions and logins with
    their daily/weekly rhythm, and half a day of a flat heartbeat:
      orders      5m, peak 150/interval; outage (zero) on the last day 14:00-14:30;
      sessions    5m, peak 200/interval; the last day (a Wednesday) is a holiday: 60% volume all
                  day, same shape;
      logins      1m, peak 8/minute, 0-3 at night; nothing happens;
      heartbeats  1m, exactly 60/minute for the last 12 h, 30/minute for the last 20 minutes;
      checkins    1m, like logins (peak 8/minute), none on the last day 13:00-13:30.
    Judged over the last 7 days (the first day is history)."""

    METRICS = ([count(n, "order_placed", "5m", m) for n, m in both("orders")]
               + [count(n, "session_started", "5m", m) for n, m in both("sessions")]
               + [count(n, "login", "1m", m) for n, m in both("logins")]
               + [count(n, "heartbeat", "1m", m) for n, m in both("heartbeats")]
               + [count(n, "checkin", "1m", m) for n, m in both("checkins")])

    @classmethod
    def data_start(cls, m):
        return cls.end - (12 * H if m["name"].startswith("heartbeats") else 8 * DAY)

    @classmethod
    def generate(cls):
        end, start = cls.end, cls.end - 8 * DAY
        cls.last_day = end - DAY
        cls.outage = (cls.last_day + 14 * H, cls.last_day + 14 * H + 30 * 60)
        cls.flat_drop = (end - 20 * 60, end)
        ev = sc.Events(seed=20240605)
        ev.counts("order_placed", start, end, M5, 150,
                  factor=lambda ts: 0.0 if cls.outage[0] <= ts < cls.outage[1] else 1.0)
        ev.counts("session_started", start, end, M5, 200, factor=lambda ts: 0.6 if ts >= cls.last_day else 1.0)
        ev.counts("login", start, end, M1, 8)
        ev.counts("heartbeat", end - 12 * H, end, M1, 60, flat=True,
                  factor=lambda ts: 0.5 if ts >= cls.flat_drop[0] else 1.0)
        # drawn last, so the series above keep their draws
        cls.quiet_truth = (cls.last_day + 13 * H, cls.last_day + 13 * H + 30 * 60)
        ev.counts("checkin", start, end, M1, 8,
                  factor=lambda ts: 0.0 if cls.quiet_truth[0] <= ts < cls.quiet_truth[1] else 1.0)
        return ev.insert(cls.db)

    # 2: a total outage ------------------------------------------------------------------

    def judge_outage(self, name, method):
        return self.judge("2 outage: orders -> 0, 30 min", name, method, M5, self.end - 7 * DAY, self.outage)

    def outage_caught(self, name, method):
        self.assert_caught(self.judge_outage(name, method), method, "the outage", 3)

    def outage_false(self, name, method):
        self.assert_rarely_false(self.judge_outage(name, method), method)

    # auto for counts expects the same time of day of the previous days (the 3-sigma rule over
    # 180 points, 15 hours at 5-minute intervals, missed this outage at the daily peak).
    def test_2_outage_auto_caught(self):
        self.outage_caught("orders", "poisson")

    def test_2_outage_auto_false_incidents(self):
        self.outage_false("orders", "poisson")

    def test_2_outage_seasonal_caught(self):
        self.outage_caught("orders_seasonal", "seasonal")

    # seasonal's band is tuned on NAB (one alert per anomaly window) and flags a few percent
    # of ordinary Poisson points (3 false incidents a week here before): for a count that shows
    # Poisson noise, a point outside the band must also be Poisson news at its expected value.
    def test_2_outage_seasonal_false_incidents(self):
        self.outage_false("orders_seasonal", "seasonal")

    # 4: a holiday-like quiet day ---------------------------------------------------------

    def holiday(self, name, method):
        return self.judge("4 holiday: sessions at 60% all day", name, method, M5, self.end - 7 * DAY)

    def holiday_quiet(self, name, method):
        caught, delay, fpw, rep, false = self.holiday(name, method)
        on_holiday = [i for i in rep["incidents"] if sc.overlaps(i, self.last_day, self.end, self.end)]
        self.assertEqual(on_holiday, [], f"{method}: the quiet day opened incidents")

    def holiday_false(self, name, method):
        self.assert_rarely_false(self.holiday(name, method), method)

    def test_4_holiday_auto_no_incident(self):
        self.holiday_quiet("sessions", "poisson")

    def test_4_holiday_auto_false_incidents(self):
        self.holiday_false("sessions", "poisson")

    def test_4_holiday_seasonal_no_incident(self):
        self.holiday_quiet("sessions_seasonal", "seasonal")

    # As for orders: the Poisson floor on seasonal's band (see test_2; 4 a week before).
    def test_4_holiday_seasonal_false_incidents(self):
        self.holiday_false("sessions_seasonal", "seasonal")

    # 5: a low-volume night ---------------------------------------------------------------

    def low_volume_quiet(self, name, method):
        caught, delay, fpw, rep, false = self.judge("5 low volume: logins 0-3/min at night", name, method, M1,
                                                    self.end - 7 * DAY)
        self.assertEqual(rep["incidents"], [], f"{method}: low-count noise opened incidents")

    # Nothing happens to logins. The Poisson test once opened 4 incidents a week here (45
    # anomalous minutes of 10 080): the median of seven same-minute counts of 0-3 is often 0,
    # and a level from six such minutes is noise. Quiet slots now pool neighbouring minutes (20
    # events per day's rate), a quiet level pools up to an hour, and the tail is negative
    # binomial with the uncertainty of both.
    def test_5_low_volume_auto_no_incident(self):
        self.low_volume_quiet("logins", "poisson")

    # The same for seasonal: its own floor (0.5*sqrt(mean+1)) leaves a band too narrow for
    # counts of 0-10 (7 a week before); the exact Poisson tail decides (see test_2).
    def test_5_low_volume_seasonal_no_incident(self):
        self.low_volume_quiet("logins_seasonal", "seasonal")

    # 5b: a low-volume outage -------------------------------------------------------------

    def quiet_outage(self, name, method):
        return self.judge("5b low-volume outage: checkins 8/min -> 0, 30 min", name, method, M1,
                          self.end - 7 * DAY, self.quiet_truth)

    def quiet_outage_caught(self, name, method):
        # One empty minute where ~7 are expected happens by chance once in a thousand minutes,
        # so no single minute is news: the evidence is the run's sum, and it takes minutes to
        # be beyond doubt.
        self.assert_caught(self.quiet_outage(name, method), method, "the outage", 20)

    def quiet_outage_false(self, name, method):
        self.assert_rarely_false(self.quiet_outage(name, method), method)

    def test_5b_quiet_outage_auto_caught(self):
        self.quiet_outage_caught("checkins", "poisson")

    def test_5b_quiet_outage_auto_false_incidents(self):
        self.quiet_outage_false("checkins", "poisson")

    # seasonal's band learns the outage as a level shift within minutes, and each empty minute
    # is within Poisson noise of the expected 7, so its Poisson floor (which keeps scenarios 2,
    # 4 and 5 free of false incidents) hides it. Before that floor it caught this outage among
    # 8 false incidents a week. Detection lacks, for seasonal, an evidence sum over a run that
    # does not also sum the band's own errors (tried: it opened false incidents on orders and
    # logins).
    @unittest.expectedFailure
    def test_5b_quiet_outage_seasonal_caught(self):
        self.quiet_outage_caught("checkins_seasonal", "seasonal")

    def test_5b_quiet_outage_seasonal_false_incidents(self):
        self.quiet_outage_false("checkins_seasonal", "seasonal")

    # 7: a flat series --------------------------------------------------------------------

    def flat(self, name, method):
        return self.judge("7 flat: heartbeats 60/min -> 30", name, method, M1, self.end - 12 * H, self.flat_drop)

    def flat_quiet(self, name, method):
        caught, delay, fpw, rep, false = self.flat(name, method)
        self.assertEqual(false, [], f"{method}: the flat series opened incidents")

    def flat_caught(self, name, method):
        self.assert_caught(self.flat(name, method), method, "the drop from flat", 3)

    def test_7_flat_auto_no_false_incident(self):
        self.flat_quiet("heartbeats", "poisson")

    def test_7_flat_auto_drop_caught(self):
        self.flat_caught("heartbeats", "poisson")

    def test_7_flat_seasonal_no_false_incident(self):
        self.flat_quiet("heartbeats_seasonal", "seasonal")

    def test_7_flat_seasonal_drop_caught(self):
        self.flat_caught("heartbeats_seasonal", "seasonal")


# --------------------------------------------------------------------------- 1, 3


def seasonal_twin(m):
    t = dict(m)
    t["name"] += "_seasonal"
    t["method"] = "seasonal"
    return t


class RateDrop(Historical):
    """36 hours (to Thursday 00:00 UTC) of registrations by country x platform at 5-minute
    intervals, peak 1000 attempts per interval; on the last day 14:00-16:00 the success rate in
    DE (every platform) falls by 30% (86-90% -> 60-63%). Judged over the last day; the detect
    service also scores the whole history (alert window 366 days) for the incident's root
    cause."""

    METRICS = [rate("reg_rate", "5m"), seasonal_twin(rate("reg_rate", "5m"))]

    @classmethod
    def data_start(cls, m):
        return cls.end - 36 * H

    @classmethod
    def generate(cls):
        end = cls.end
        cls.truth = (end - 10 * H, end - 8 * H)
        ev = sc.Events(seed=1405)
        ev.registrations(end - 36 * H, end, M5, 1000,
                         success=lambda ts, c, p, r: r * 0.7 if c == "DE" and cls.truth[0] <= ts < cls.truth[1] else r)
        return ev.insert(cls.db)

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        t0 = time.monotonic()
        cls.log_dir = os.path.join(harness.BUILD_DIR, "integration-logs", "test_scenarios.RateDrop")
        os.makedirs(cls.log_dir, exist_ok=True)
        cls.detect = harness.Service("detect", cls.db, cls.log_dir,
                                     {"BIZPULSE_METRICS": cls.metrics_path, "BIZPULSE_DETECT_ALERT_WINDOW_S": 366 * DAY})
        cls.detect.start()
        cls.live = {}
        try:
            for m in cls.METRICS:
                res = cls.detect.post_cloudevent(f"scen-{m['name']}", sc.AGGREGATED, {
                    "metric": m["name"], "from": sc.rfc(cls.end - 36 * H), "to": sc.rfc(cls.end)})
                if res.status != 200:
                    raise AssertionError(f"detect answered {res!r}")
                rows = cls.db.sql("SELECT extract(epoch FROM started_at)::bigint, context::text FROM incidents "
                                  "WHERE metric_name = :'m' AND started_at < to_timestamp(:'hi') "
                                  "AND coalesce(last_anomaly_at, started_at) >= to_timestamp(:'lo') ORDER BY started_at",
                                  m=m["name"], lo=cls.truth[0], hi=cls.truth[1] + SLACK)
                cause = json.loads(rows[0][1]).get("root_cause", []) if rows else []
                cls.live[m["name"]] = cause
                cls.root_causes[m["name"]] = (f"{cause[0]['series']} {cause[0]['share']:.0%}" if cause else "none")
        finally:
            cls.detect.stop()
        TIMINGS.append(("RateDrop live detect", time.monotonic() - t0, 0))

    def drop(self, name, method):
        return self.judge("1 rate -30% in DE", name, method, M5, self.end - DAY, self.truth)

    def caught(self, name, method):
        self.assert_caught(self.drop(name, method), method, "the drop", 3)
        cause = self.live[name]
        self.assertTrue(cause, f"{method}: the live incident has no root cause")
        self.assertIn("country=DE", cause[0]["series"], cause)
        de = sum(c["share"] for c in cause if "country=DE" in c["series"])
        self.assertGreater(de, 0.8, f"{method}: the DE series explain only {de:.0%} of the gap: {cause}")

    def false_incidents(self, name, method):
        self.assert_rarely_false(self.drop(name, method), method)

    def rolled_up(self, name):
        cause = self.live[name]
        self.assertTrue(cause, "no root cause")
        self.assertEqual(cause[0]["series"], "country=DE", cause)
        self.assertGreater(cause[0]["share"], 0.8, cause)

    def test_1_rate_drop_auto_caught_with_root_cause(self):
        self.caught("reg_rate", "ratio")

    def test_1_rate_drop_auto_false_incidents(self):
        self.false_incidents("reg_rate", "ratio")

    def test_1_rate_drop_seasonal_caught_with_root_cause(self):
        self.caught("reg_rate_seasonal", "seasonal")

    # seasonal scores the rate as a plain value: its band does not widen when the denominator
    # is small, so at night (~100 attempts per interval, binomial noise 3x the daytime one) an
    # ordinary 80% opened an incident. A point outside its band must now also be z_alert
    # binomial spreads from the expected rate at the interval's own denominator.
    def test_1_rate_drop_seasonal_false_incidents(self):
        self.false_incidents("reg_rate_seasonal", "seasonal")

    # The drop is in one country on every platform (DE/android ~50%, DE/ios ~35%, DE/web
    # ~15% of the gap): the sentence must name "country=DE", which explains all of it.
    def test_1_rate_drop_root_cause_is_the_country_alone(self):
        self.rolled_up("reg_rate")


class SlowDecline(Historical):
    """36 hours (to Thursday 00:00 UTC) of registrations at 5-minute intervals, peak 1000
    attempts; on the last day the success rate declines linearly by 10% (relative) from 10:00
    to 14:00, stays there until 16:00 and is back after."""

    METRICS = [dict(rate("decline_rate", "5m"), dimensions=[]),
               seasonal_twin(dict(rate("decline_rate", "5m"), dimensions=[]))]

    @classmethod
    def data_start(cls, m):
        return cls.end - 36 * H

    @classmethod
    def generate(cls):
        end = cls.end
        cls.truth = (end - 14 * H, end - 8 * H)
        ramp = 4 * H

        def success(ts, c, p, r):
            if not cls.truth[0] <= ts < cls.truth[1]:
                return r
            return r * (1 - 0.10 * min(1.0, (ts - cls.truth[0] + M5) / ramp))

        ev = sc.Events(seed=1000)
        ev.registrations(end - 36 * H, end, M5, 1000, success=success)
        return ev.insert(cls.db)

    def decline(self, name, method):
        return self.judge("3 slow -10% over 4 h", name, method, M5, self.end - DAY, self.truth)

    def caught(self, name, method):
        # 4 h of decline are 48 intervals: caught before it is complete.
        self.assert_caught(self.decline(name, method), method, "the decline", 48)

    def false_incidents(self, name, method):
        self.assert_rarely_false(self.decline(name, method), method)

    # No single interval of a decline that builds over 4 hours gets 5 sigma from the trailing
    # baseline (0 of 288 points were anomalous before the drift test): ratio also pools the last
    # hour of intervals against the baseline before them, and the extra-binomial variance comes
    # from consecutive differences, so the trend does not widen the band it should leave.
    def test_3_slow_decline_auto_caught(self):
        self.caught("decline_rate", "ratio")

    def test_3_slow_decline_auto_false_incidents(self):
        self.false_incidents("decline_rate", "ratio")

    # seasonal learns the slow decline as a level shift (robust to trend by design) and
    # alerted only when the rate jumped back at 16:00; on a rate it now runs ratio's drift
    # test (the last hour pooled) too.
    def test_3_slow_decline_seasonal_caught(self):
        self.caught("decline_rate_seasonal", "seasonal")

    # As in scenario 1: seasonal's band on a rate ignored the denominator (a night incident).
    def test_3_slow_decline_seasonal_false_incidents(self):
        self.false_incidents("decline_rate_seasonal", "seasonal")



# --------------------------------------------------------------------------- 6, 8 (live)


class LateEvents(harness.TestCase):
    """6: the live path. signups (1m, auto), ~120 a minute; 25% of every minute's events arrive
    5 minutes late. Four hours of history, then 20 ticks, one per (simulated) minute: before
    each tick the events that have arrived by then are inserted, and `bizpulse-aggregate tick`
    runs with its grace set so that exactly the minutes up to the simulated time are closed;
    its aggregated event goes to the detect service (K_SINK). The lateness window (300 s)
    re-aggregates the late minutes and detect rescores them. From tick 12 on, signups really
    fall by half."""

    LATE_SHARE = 0.25
    LATE_S = 300
    TICKS = 20
    DROP_TICK = 12

    def test_6_late_events_live(self):
        t_start = time.monotonic()
        path = write_metrics([count("signups_live", "signup", "1m")])
        self.addCleanup(os.unlink, path)
        now = harness.utcnow().replace(second=0, microsecond=0)
        t0 = sc.ts_of(now) - 25 * 60
        hist = t0 - 4 * H
        drop = t0 + self.DROP_TICK * 60 - 60  # the first dropped minute closes at tick DROP_TICK
        phase = (15 * H - t0 % DAY) % DAY  # the sequence runs at the afternoon peak of the rhythm
        ev = sc.Events(seed=606)
        arrivals = []  # (arrival ts, row)
        for ts in range(hist, t0 + self.TICKS * 60, M1):
            c = ev.poisson(120 * sc.rhythm(ts, phase) * (0.5 if ts >= drop else 1.0))
            late = c - ev.binomial(c, 1 - self.LATE_SHARE)
            arrivals.append((ts + M1, (ts, M1, "signup", None, None, c - late)))
            arrivals.append((ts + M1 + self.LATE_S, (ts, M1, "signup", None, None, late)))
        arrivals = [a for a in arrivals if a[1][5] > 0]
        detect = self.service("detect", BIZPULSE_METRICS=path)
        opened_at = None
        false = []
        inserted = 0
        for k in range(self.TICKS + 1):
            t = t0 + k * 60
            lo = -1 if k == 0 else t - 60
            inserted += ev.insert(self.db, [r for a, r in arrivals if lo < a <= t])
            # Closed: every minute ending at or before t, none after (grace in [now - t - 60, now - t)).
            grace = int(time.time()) - t - 2
            self.assertGreaterEqual(grace, 10)
            sc.run([harness.binary("aggregate"), "tick"],
                   sc.cli_env(self.db, path, K_SINK=detect.url, BIZPULSE_AGG_GRACE_S=grace,
                              BIZPULSE_AGG_LATENESS_S=self.LATE_S), f"tick {k}")
            rows = self.db.sql("SELECT id, extract(epoch FROM started_at)::bigint, status FROM incidents ORDER BY id")
            for inc_id, started, status in rows:
                if int(started) < drop and inc_id not in [f[0] for f in false]:
                    false.append((inc_id, sc.rfc(int(started)), status, k))
            if opened_at is None and any(int(s) >= drop for _, s, _ in rows):
                opened_at = k
        delay = None if opened_at is None else opened_at - self.DROP_TICK + 1
        end = t0 + self.TICKS * 60
        sc.record("6 late events: 25% 5 min late (live)", "poisson", opened_at is not None, delay, None,
                  sc.per_week(len(false), end - hist),
                  f"{len(false)} false in {(end - hist) / H:.1f} h, {self.TICKS} ticks; real -50% from tick {self.DROP_TICK}")
        TIMINGS.append(("LateEvents", time.monotonic() - t_start, inserted))
        # Every arrived event is counted, also the late ones (the lateness window re-aggregated them).
        self.assertEqual(harness.aggregation_mismatches(self.db, sc.rfc(hist), sc.rfc(end), "signups_live", "signup"),
                         [])
        # No incident from events not yet arrived: none opened (and none retracted) before the drop.
        self.assertEqual(false, [], "late events opened an incident")
        opened = self.db.sql("SELECT ce_id FROM outbox WHERE ce_type = 'dev.bizpulse.incident.opened.v1'")
        self.assertEqual(len(opened), 1, opened)
        # The rescored points before the drop are all normal.
        self.assertEqual(self.db.value("SELECT count(*) FROM aggregated_metrics WHERE series = '' AND is_anomaly "
                                       "AND metric_timestamp < to_timestamp(:'d')", d=drop), "0")
        # The real drop is caught within 3 ticks.
        self.assertIsNotNone(delay, "the real drop opened no incident")
        self.assertLessEqual(delay, 3)


class TooLittleHistory(harness.TestCase):
    """8: 20 minutes of a new metric, ending in what looks like an outage (a count at zero, a
    success rate at 30%): every point is reported as learning, and no incident opens."""

    def test_8_too_little_history_is_learning(self):
        t_start = time.monotonic()
        metrics = [count("fresh_count", "fresh_event", "1m"), count("fresh_seasonal", "fresh_event", "1m", "seasonal"),
                   rate("fresh_rate", "1m")]
        path = write_metrics(metrics)
        self.addCleanup(os.unlink, path)
        end = sc.ts_of(harness.last_closed_minute())
        start = end - 20 * 60
        bad = end - 5 * 60
        ev = sc.Events(seed=8)
        ev.counts("fresh_event", start, end, M1, 100, flat=True, factor=lambda ts: 0.0 if ts >= bad else 1.0)
        ev.registrations(start, end, M1, 200, phase_s=(15 * H - start % DAY) % DAY,
                         success=lambda ts, c, p, r: 0.3 if ts >= bad else r)
        inserted = ev.insert(self.db)
        detect = self.service("detect", BIZPULSE_METRICS=path)
        aggregate = self.service("aggregate", BIZPULSE_METRICS=path, K_SINK=detect.url)
        self.assertEqual(aggregate.scheduler_tick().status, 200)
        harness.wait_until(lambda: self.db.value(
            "SELECT count(*) FROM aggregated_metrics WHERE series = '' AND scored_at IS NOT NULL "
            "AND metric_timestamp >= to_timestamp(:'s') AND metric_timestamp < to_timestamp(:'e')",
            s=start, e=end) == str(20 * len(metrics)), 60, "every point scored")
        TIMINGS.append(("TooLittleHistory", time.monotonic() - t_start, inserted))
        for m in metrics:
            states = self.db.sql(
                "SELECT anomaly_context->>'state', count(*), count(*) FILTER (WHERE is_anomaly) FROM aggregated_metrics "
                "WHERE metric_name = :'m' AND series = '' AND metric_timestamp >= to_timestamp(:'s') "
                "AND metric_timestamp < to_timestamp(:'e') GROUP BY 1", m=m["name"], s=start, e=end)
            incidents = self.db.value("SELECT count(*) FROM incidents WHERE metric_name = :'m'", m=m["name"])
            learning = sum(int(n) for s, n, a in states if s == "learning")
            sc.record("8 too little history: 20 min (live)", m["method"] + (" (ratio)" if m["kind"] == "ratio" else ""),
                      None, None, None, None, f"{learning}/20 points learning, {incidents} incidents")
            with self.subTest(metric=m["name"]):
                self.assertEqual(states, [["learning", "20", "0"]], m["name"])
                self.assertEqual(incidents, "0")
        res = detect.get("/incidents")
        self.assertEqual(res.status, 200, res)
        self.assertNotIn("fresh_", res.body.decode(), res.body)


def tearDownModule():
    sys.stdout.write("\n\nBusiness scenarios (issue 5)\n" + sc.table() + "\n\n")
    for what, secs, events in TIMINGS:
        sys.stdout.write(f"  {what}: {secs:.1f} s" + (f", {events} events" if events else "") + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    harness.main()
