"""The aggregation engine against a plain-SQL oracle: every metric kind, filters, dimensions,
zero-filling, intervals, late data, concurrent replicas, a PostgreSQL restart mid-catch-up, the
cardinality cap, a partitioned events table, backfill and bad configuration."""

import concurrent.futures
import datetime
import json
import os
import subprocess
import threading
import time

import harness
from harness import rfc3339

MINUTES = 180

METRICS = {"metrics": [
    {"name": "signups_de", "kind": "count", "event_type": "registration_attempt", "filter": {"country": "DE"}},
    {"name": "revenue_eur", "kind": "sum", "event_type": "order_placed", "field": "amount",
     "filter": {"currency": "EUR"}},
    {"name": "success_rate", "kind": "ratio",
     "numerator": {"event_type": "registration_success"},
     "denominator": {"event_type": "registration_attempt"},
     "dimensions": ["country", "platform"]},
    {"name": "active_users", "kind": "distinct", "event_type": "login", "field": "user_id"},
    {"name": "orders_5m", "kind": "count", "event_type": "order_placed", "interval": "5m"},
]}

# The oracle: each metric as the plainest SQL, per (series, interval start).
ORACLE = {
    "signups_de": """
        SELECT '' AS series, date_trunc('minute', event_timestamp) AS ts, count(*)::float8 AS v, NULL, NULL
        FROM business_events WHERE event_type = 'registration_attempt' AND payload->>'country' = 'DE'
        GROUP BY 2""",
    "revenue_eur": """
        SELECT '', date_trunc('minute', event_timestamp),
               coalesce(sum(CASE WHEN payload->>'amount' ~ '^[0-9]+(\\.[0-9]+)?$'
                                 THEN (payload->>'amount')::numeric END), 0)::float8, NULL, NULL
        FROM business_events WHERE event_type = 'order_placed' AND payload->>'currency' = 'EUR' GROUP BY 2""",
    "success_rate": """
        WITH e AS (SELECT date_trunc('minute', event_timestamp) AS ts, event_type,
                          'country=' || (payload->>'country') || ',platform=' || (payload->>'platform') AS s
                   FROM business_events WHERE event_type IN ('registration_attempt', 'registration_success'))
        SELECT CASE WHEN grouping(s) = 1 THEN '' ELSE s END, ts, (count(*) FILTER (WHERE event_type = 'registration_success'))::float8
                      / nullif(count(*) FILTER (WHERE event_type = 'registration_attempt'), 0),
               count(*) FILTER (WHERE event_type = 'registration_success'),
               count(*) FILTER (WHERE event_type = 'registration_attempt')
        FROM e GROUP BY GROUPING SETS ((ts), (s, ts))""",
    "active_users": """
        SELECT '', date_trunc('minute', event_timestamp), count(DISTINCT payload->>'user_id')::float8, NULL, NULL
        FROM business_events WHERE event_type = 'login' GROUP BY 2""",
    "orders_5m": """
        SELECT '', date_bin('5 minutes', event_timestamp, '2000-01-01'), count(*)::float8, NULL, NULL
        FROM business_events WHERE event_type = 'order_placed' GROUP BY 2""",
}


# Kinds with dimensions the first set lacks, a ratio over one event type, an hourly interval.
METRICS_MORE = {"metrics": [
    {"name": "users_by_country", "kind": "distinct", "event_type": "login", "field": "user_id",
     "dimensions": ["country"]},
    {"name": "revenue_by_currency", "kind": "sum", "event_type": "order_placed", "field": "amount",
     "dimensions": ["currency"]},
    {"name": "eur_share", "kind": "ratio",
     "numerator": {"event_type": "order_placed", "filter": {"currency": "EUR"}},
     "denominator": {"event_type": "order_placed"}},
    {"name": "attempts_1h", "kind": "count", "event_type": "registration_attempt", "interval": "1h"},
]}

ORACLE_MORE = {
    "users_by_country": """
        SELECT CASE WHEN grouping(c) = 1 THEN '' ELSE 'country=' || c END, ts,
               count(DISTINCT u)::float8, NULL, NULL
        FROM (SELECT date_trunc('minute', event_timestamp) AS ts, payload->>'country' AS c,
                     payload->>'user_id' AS u FROM business_events WHERE event_type = 'login') e
        GROUP BY GROUPING SETS ((ts), (c, ts))""",
    "revenue_by_currency": """
        SELECT CASE WHEN grouping(c) = 1 THEN '' ELSE 'currency=' || c END, ts,
               coalesce(sum(CASE WHEN a ~ '^[0-9]+(\\.[0-9]+)?$' THEN a::numeric END), 0)::float8, NULL, NULL
        FROM (SELECT date_trunc('minute', event_timestamp) AS ts, payload->>'currency' AS c,
                     payload->>'amount' AS a FROM business_events WHERE event_type = 'order_placed') e
        GROUP BY GROUPING SETS ((ts), (c, ts))""",
    "eur_share": """
        SELECT '', date_trunc('minute', event_timestamp),
               (count(*) FILTER (WHERE payload @> '{"currency": "EUR"}'))::float8 / count(*),
               count(*) FILTER (WHERE payload @> '{"currency": "EUR"}'), count(*)
        FROM business_events WHERE event_type = 'order_placed' GROUP BY 2""",
    "attempts_1h": """
        SELECT '', date_trunc('hour', event_timestamp), count(*)::float8, NULL, NULL
        FROM business_events WHERE event_type = 'registration_attempt' GROUP BY 2""",
}


def write_metrics(test, metrics):
    path = os.path.join(test.log_dir, "metrics.json")
    with open(path, "w") as f:
        json.dump(metrics, f)
    return path


def load_events(db, start, minutes=MINUTES, per_minute=40, seed=0.25, users=50):
    """Deterministic mixed events over [start, start + minutes): 4 types, payloads with country,
    platform, amount (a number, sometimes a numeric string, sometimes junk), currency, user_id;
    one empty minute in the middle."""
    db.sql(f"""
        SELECT setseed({seed});
        INSERT INTO business_events (event_type, event_timestamp, payload)
        SELECT (ARRAY['registration_attempt','registration_success','order_placed','login'])[1 + g % 4],
               '{rfc3339(start)}'::timestamptz + floor(random() * {minutes} * 60) * interval '1 second',
               jsonb_build_object(
                 'country', (ARRAY['DE','FR','US'])[1 + floor(random() * 3)::int],
                 'platform', (ARRAY['android','ios'])[1 + floor(random() * 2)::int],
                 'currency', (ARRAY['EUR','USD'])[1 + floor(random() * 2)::int],
                 'user_id', 'u' || floor(random() * {users}),
                 'amount', CASE WHEN g % 50 = 0 THEN to_jsonb('n/a'::text)
                                WHEN g % 7 = 0 THEN to_jsonb(round((random() * 100)::numeric, 2)::text)
                                ELSE to_jsonb(round((random() * 100)::numeric, 2)) END)
        FROM generate_series(1, {minutes * per_minute}) AS g;
        DELETE FROM business_events
        WHERE event_timestamp >= '{rfc3339(start)}'::timestamptz + interval '{minutes // 2} minutes'
          AND event_timestamp < '{rfc3339(start)}'::timestamptz + interval '{minutes // 2 + 1} minutes';
        """)


def stored(db, metric):
    rows = db.sql(f"""SELECT series, extract(epoch FROM metric_timestamp)::bigint, metric_value, numerator,
                             denominator FROM aggregated_metrics WHERE metric_name = '{metric}'""")
    return {(r[0], int(r[1])): tuple(None if x is None else float(x) for x in r[2:]) for r in rows}


def oracle(db, metric):
    sql = ORACLE[metric] if metric in ORACLE else ORACLE_MORE[metric]
    rows = db.sql(f"SELECT s, extract(epoch FROM ts)::bigint, v, n, d FROM ({sql}) AS o(s, ts, v, n, d)")
    return {(r[0], int(r[1])): tuple(None if x is None else float(x) for x in r[2:]) for r in rows}


def mismatches(db, metric, start, end, interval=60, zero=0.0):
    """Where stored differs from the oracle over [start, end): every interval of the total series
    must be stored (zero-filled); dimension rows the oracle lacks must be zero / null. zero: the
    value of an interval without events (0, or None for a ratio, whose parts are then 0)."""
    got, want = stored(db, metric), oracle(db, metric)
    bad = []
    t0, t1 = int(start.timestamp()), int(end.timestamp())
    for ts in range(t0 - t0 % interval, t1, interval):
        if ts < t0 or ts + interval > t1:
            continue
        w = want.get(("", ts))
        g = got.get(("", ts))
        if g is None:
            bad.append(("missing", "", ts))
        elif not close(g, w if w is not None else ((zero, None, None) if zero is not None else (None, 0.0, 0.0))):
            bad.append(("total", ts, g, w))
    for key, w in want.items():
        if key[0] == "" or not (t0 <= key[1] < t1):
            continue
        g = got.get(key)
        if g is None or not close(g, w):
            bad.append(("series", key, g, w))
    for key, g in got.items():
        if key[0] != "" and key not in want and t0 <= key[1] < t1 and g[2] not in (None, 0.0):
            bad.append(("extra", key, g))
    return bad


def assert_equals_oracle(test, start, end):
    """Every metric of METRICS stored as its ORACLE says over [start, end)."""
    for name in ORACLE:
        interval = 300 if name == "orders_5m" else 60
        zero = None if name == "success_rate" else 0.0
        bad = mismatches(test.db, name, start, end, interval, zero)
        test.assertEqual(bad[:5], [], f"{name}: {len(bad)} mismatches")


def close(a, b):
    for x, y in zip(a, b):
        if (x is None) != (y is None):
            return False
        if x is not None and abs(x - y) > 1e-6 * max(1.0, abs(y)):
            return False
    return True


class Kinds(harness.TestCase):

    def test_every_kind_filter_dimension_and_interval_equals_the_sql_oracle(self):
        end = harness.last_closed_minute()
        start = end - datetime.timedelta(minutes=MINUTES)
        load_events(self.db, start)
        aggregate = self.service("aggregate", BIZPULSE_METRICS=write_metrics(self, METRICS))
        res = aggregate.scheduler_tick()
        self.assertEqual(res.status, 200, res)
        results = {m["metric"]: m for m in res.json()["metrics"]}
        self.assertEqual(set(results), {m["name"] for m in METRICS["metrics"]})
        assert_equals_oracle(self, start, end)
        # A ratio keeps both parts; the empty minute has a count of 0 and a ratio without value.
        mid = int(start.timestamp()) + MINUTES // 2 * 60
        self.assertEqual(stored(self.db, "signups_de")[("", mid)][0], 0.0)
        self.assertEqual(stored(self.db, "success_rate")[("", mid)], (None, 0.0, 0.0))
        series = self.db.sql("SELECT DISTINCT series FROM aggregated_metrics WHERE metric_name = 'success_rate'")
        self.assertEqual(len(series), 1 + 3 * 2, series)
        # One event per metric that changed, naming its window.
        events = self.db.sql("SELECT ce_subject, data::text FROM outbox WHERE ce_type = "
                             "'dev.bizpulse.metrics.aggregated.v1'")
        self.assertEqual(sorted(e[0] for e in events), sorted(ORACLE))
        # A second tick finds nothing new: no writes, no events. Only a minute that closed
        # between the two ticks (a real, empty one) may be written, and only that minute.
        first_to = {m["metric"]: m["to"] for m in res.json()["metrics"]}
        again = aggregate.scheduler_tick().json()["metrics"]
        for m in again:
            newly_closed = (harness.parse_rfc3339(m["to"]) -
                            harness.parse_rfc3339(first_to[m["metric"]])).total_seconds()
            interval = 300 if m["metric"] == "orders_5m" else 60
            self.assertLessEqual(m["changed"], newly_closed // interval, again)
        self.assertEqual(len(self.db.sql("SELECT 1 FROM outbox")),
                         len(ORACLE) + sum(1 for m in again if m["changed"] > 0))


class MoreKinds(harness.TestCase):

    def test_distinct_and_sum_by_dimension_a_one_type_ratio_and_an_hourly_count_equal_the_sql_oracle(self):
        end = harness.last_closed_minute()
        start = end - datetime.timedelta(minutes=MINUTES)
        load_events(self.db, start)
        aggregate = self.service("aggregate", BIZPULSE_METRICS=write_metrics(self, METRICS_MORE))
        res = aggregate.scheduler_tick()
        self.assertEqual(res.status, 200, res)
        for name in ("users_by_country", "revenue_by_currency", "eur_share"):
            zero = None if name == "eur_share" else 0.0
            bad = mismatches(self.db, name, start, end, 60, zero)
            self.assertEqual(bad[:5], [], f"{name}: {len(bad)} mismatches")
        # whole hours only: the window's first and last hours are partial
        hour = datetime.timedelta(hours=1)
        first = start.replace(minute=0, second=0, microsecond=0) + hour
        last = end.replace(minute=0, second=0, microsecond=0)
        self.assertGreaterEqual(last - first, hour)
        bad = mismatches(self.db, "attempts_1h", first, last, 3600)
        self.assertEqual(bad[:5], [], f"attempts_1h: {len(bad)} mismatches")
        # a distinct count by dimension is not the sum of its series: the total counts each user once
        total = stored(self.db, "users_by_country")
        some = next(ts for (s, ts), v in total.items() if s == "" and v[0] > 0)
        parts = sum(v[0] for (s, ts), v in total.items() if s != "" and ts == some)
        self.assertLessEqual(total[("", some)][0], parts)


class BoundedRounds(harness.TestCase):

    def test_a_round_reading_its_event_limit_ends_its_batch_early_and_the_next_continues(self):
        end = harness.last_closed_minute()
        start = end - datetime.timedelta(minutes=MINUTES)
        load_events(self.db, start)  # 7 200 events; the limit below makes ~8 rounds of them
        aggregate = self.service("aggregate", BIZPULSE_METRICS=write_metrics(self, METRICS),
                                 BIZPULSE_AGG_MAX_EVENTS="1000")
        res = aggregate.scheduler_tick()
        self.assertEqual(res.status, 200, res)
        batches = {m["metric"]: m["batches"] for m in res.json()["metrics"]}
        self.assertGreater(batches["signups_de"], 4, batches)
        self.assertTrue(all(m["caught_up"] for m in res.json()["metrics"]), res.json())
        assert_equals_oracle(self, start, end)


class ReadAheadRefused(harness.TestCase):

    def test_a_catch_up_whose_second_connection_is_refused_scans_in_its_rounds_and_finishes(self):
        # A role allowed one connection: the read-ahead's second one is refused (prefetch.h).
        role = "bp_agg_" + str(os.getpid())
        self.db.sql(f'CREATE ROLE "{role}" LOGIN CONNECTION LIMIT 1; GRANT ALL ON SCHEMA public TO "{role}"; '
                    f'GRANT ALL ON ALL TABLES IN SCHEMA public TO "{role}"; '
                    f'GRANT ALL ON ALL SEQUENCES IN SCHEMA public TO "{role}";')
        self.addCleanup(lambda: self.db.sql(f'DROP OWNED BY "{role}"; DROP ROLE "{role}";'))
        end = harness.last_closed_minute()
        minutes = 3 * 1440  # batches end on midnights: the middle ones are read ahead
        start = end - datetime.timedelta(minutes=minutes)
        load_events(self.db, start, minutes=minutes, per_minute=4)
        aggregate = self.service("aggregate", start=False, BIZPULSE_METRICS=write_metrics(self, METRICS),
                                 PGUSER=role, BIZPULSE_LOG_LEVEL="warning")
        proc = subprocess.run([harness.binary("aggregate"), "tick"], env=aggregate.env, capture_output=True,
                              text=True, timeout=120)
        self.assertEqual(proc.returncode, 0, proc.stderr)
        out = json.loads(proc.stdout.strip().splitlines()[-1])  # the result follows the log lines
        self.assertTrue(all(m["caught_up"] for m in out), out)
        self.assertGreaterEqual(max(m["batches"] for m in out), 3, out)
        self.assertIn("read-ahead failed", proc.stdout + proc.stderr)
        assert_equals_oracle(self, start, end)


class BoundedPoints(harness.TestCase):

    def test_many_series_over_a_long_window_are_written_in_several_rounds_all_right(self):
        end = harness.last_closed_minute()
        start = end - datetime.timedelta(minutes=MINUTES)
        load_events(self.db, start, users=400)  # ~400 user series x 180 minutes, zero-filled
        metrics = {"metrics": [{"name": "logins_by_user", "kind": "count", "event_type": "login",
                                "dimensions": ["user_id"], "max_series": 100000}]}
        aggregate = self.service("aggregate", BIZPULSE_METRICS=write_metrics(self, metrics),
                                 BIZPULSE_AGG_MAX_POINTS="20000")
        res = aggregate.scheduler_tick()
        self.assertEqual(res.status, 200, res)
        m = res.json()["metrics"][0]
        self.assertGreater(m["batches"], 3, m)
        self.assertTrue(m["caught_up"], m)
        wrong = self.db.value("""
            WITH o AS (SELECT 'user_id=' || (payload->>'user_id') AS s, date_trunc('minute', event_timestamp) AS ts,
                              count(*)::float8 AS n
                       FROM business_events WHERE event_type = 'login' GROUP BY 1, 2
                       UNION ALL
                       SELECT '', date_trunc('minute', event_timestamp), count(*)::float8
                       FROM business_events WHERE event_type = 'login' GROUP BY 2),
                 a AS (SELECT series, metric_timestamp, metric_value FROM aggregated_metrics
                       WHERE metric_name = 'logins_by_user' AND metric_value > 0)
            SELECT count(*) FROM o FULL JOIN a ON a.series = o.s AND a.metric_timestamp = o.ts
            WHERE a.metric_value IS DISTINCT FROM o.n""")
        self.assertEqual(wrong, "0", "stored counts differ from the events")
        totals = self.db.value("SELECT count(*) FROM aggregated_metrics WHERE metric_name = 'logins_by_user' "
                               "AND series = '' AND metric_timestamp >= :'s'::timestamptz "
                               "AND metric_timestamp < :'e'::timestamptz", s=rfc3339(start), e=rfc3339(end))
        self.assertEqual(totals, str(MINUTES), "every minute's total, zero-filled")
        # every series is zero-filled from the round it first appears in: no interval stored twice
        dup = self.db.value("SELECT count(*) FROM (SELECT series, metric_timestamp FROM aggregated_metrics "
                            "WHERE metric_name = 'logins_by_user' GROUP BY 1, 2 HAVING count(*) > 1) d")
        self.assertEqual(dup, "0")


class LateData(harness.TestCase):

    def test_a_late_event_revises_its_interval_and_the_event_names_the_revised_window(self):
        end = harness.last_closed_minute()
        start = end - datetime.timedelta(minutes=30)
        self.db.insert_minutes(rfc3339(start), [10] * 30)
        aggregate = self.service("aggregate", BIZPULSE_AGG_LATENESS_S=600)
        self.assertEqual(aggregate.scheduler_tick().status, 200)
        late_minute = end - datetime.timedelta(minutes=4)
        self.db.sql(f"""INSERT INTO business_events (event_type, event_timestamp, payload)
                        SELECT 'user_registration', '{rfc3339(late_minute)}'::timestamptz + interval '30 seconds',
                               '{{}}'::jsonb FROM generate_series(1, 3)""")
        res = aggregate.scheduler_tick()
        [m] = res.json()["metrics"]
        self.assertEqual(m["changed"], 1, m)
        self.assertEqual(harness.aggregation_mismatches(self.db, rfc3339(start), rfc3339(end)), [])
        value = self.db.value(f"SELECT metric_value FROM aggregated_metrics WHERE metric_timestamp = "
                              f"'{rfc3339(late_minute)}'")
        self.assertEqual(float(value), 13.0)
        data = json.loads(self.db.value("SELECT data::text FROM outbox ORDER BY seq DESC LIMIT 1"))
        self.assertEqual(data["revised"], [{"from": rfc3339(late_minute),
                                            "to": rfc3339(late_minute + datetime.timedelta(minutes=1))}])
        self.assertEqual(data["changed_from"], rfc3339(late_minute))


    def test_a_lateness_window_longer_than_a_batch_still_counts_late_events(self):
        end = harness.last_closed_minute()
        start = end - datetime.timedelta(days=3)
        self.db.sql(f"""INSERT INTO business_events (event_type, event_timestamp, payload)
                        SELECT 'user_registration', '{rfc3339(start)}'::timestamptz + g * interval '1 minute', '{{}}'
                        FROM generate_series(0, 3 * 1440 - 1) AS g""")
        aggregate = self.service("aggregate", BIZPULSE_AGG_LATENESS_S=2 * 86400)
        self.assertEqual(aggregate.scheduler_tick().status, 200)
        late = end - datetime.timedelta(hours=12)
        self.db.sql(f"""INSERT INTO business_events (event_type, event_timestamp, payload)
                        SELECT 'user_registration', '{rfc3339(late)}'::timestamptz + interval '10 seconds', '{{}}'
                        FROM generate_series(1, 5)""")
        [m] = aggregate.scheduler_tick().json()["metrics"]
        self.assertTrue(m["caught_up"], m)
        self.assertEqual(float(self.db.value(f"SELECT metric_value FROM aggregated_metrics "
                                             f"WHERE metric_timestamp = '{rfc3339(late)}'")), 6.0)
        self.assertEqual(harness.aggregation_mismatches(self.db, rfc3339(start), rfc3339(end)), [])


class UnchangedWindow(harness.TestCase):
    """A tick recomputes its lateness window only from the first minute whose per-type event
    count moved since the metric was aggregated (functions/aggregate/counts.h): a late, deleted
    or retyped event is found by its minute; a payload edited in place needs
    BIZPULSE_AGG_RESCAN=all."""

    LATENESS = 600

    def started(self, minutes, metrics=METRICS, **env):
        """Events over the last `minutes` closed minutes and an aggregate that has ticked once
        over them: (start, end, aggregate)."""
        end = harness.last_closed_minute()
        start = end - datetime.timedelta(minutes=minutes)
        load_events(self.db, start, minutes=minutes)
        aggregate = self.service("aggregate", BIZPULSE_METRICS=write_metrics(self, metrics),
                                 BIZPULSE_AGG_LATENESS_S=self.LATENESS, **env)
        self.tick(aggregate)
        return start, end, aggregate

    def tick(self, aggregate):
        res = aggregate.scheduler_tick()
        self.assertEqual(res.status, 200, res)
        return {m["metric"]: m for m in res.json()["metrics"]}

    def epoch(self, ts):
        return int(self.db.value("SELECT extract(epoch FROM :'t'::timestamptz)::bigint", t=ts))

    def watermarks(self):
        rows = self.db.sql("SELECT metric_name, extract(epoch FROM watermark)::bigint, "
                           "extract(epoch FROM counts_from)::bigint, counts::text FROM metric_watermarks")
        return {r[0]: (int(r[1]), None if r[2] is None else int(r[2]), r[3]) for r in rows}

    # each metric's event types, in the order its counts are stored (a ratio: numerator first)
    TYPES = {"signups_de": ["registration_attempt"], "revenue_eur": ["order_placed"],
             "success_rate": ["registration_success", "registration_attempt"], "active_users": ["login"],
             "orders_5m": ["order_placed"]}

    def oracle_counts(self, types, t0, t1):
        """What counts.h stores: per type, its events per minute of [t0, t1), type after type."""
        rows = self.db.sql(f"""SELECT (SELECT count(*) FROM business_events WHERE event_type = ty.t
                                          AND event_timestamp >= to_timestamp(g.m)
                                          AND event_timestamp < to_timestamp(g.m + 60))
                               FROM unnest(:'types'::text[]) WITH ORDINALITY AS ty(t, i),
                                    generate_series({t0}, {t1} - 60, 60) g(m) ORDER BY ty.i, g.m""",
                           types="{" + ",".join(types) + "}")
        return "{" + ",".join(r[0] for r in rows) + "}"

    def assert_counts_are_the_events(self):
        for name, (wm, cf, counts) in self.watermarks().items():
            interval = 300 if name == "orders_5m" else 60
            self.assertEqual(cf, (wm - self.LATENESS) // interval * interval, name)
            self.assertEqual(counts, self.oracle_counts(self.TYPES[name], cf, wm), name)

    def test_late_deleted_and_retyped_events_are_found_by_their_minute_and_nothing_else_is_recomputed(self):
        start, end, aggregate = self.started(60)
        # Each metric's counts: its event types per minute of the lateness window below its watermark.
        self.assert_counts_are_the_events()

        # Nothing changed: nothing below the watermarks is recomputed.
        marks = self.watermarks()
        for name, m in self.tick(aggregate).items():
            self.assertGreaterEqual(self.epoch(m["from"]), marks[name][0], m)
            self.assertEqual(m["revised_ranges"], 0, m)

        # A late event, a deleted one, one moved to another type: each is found in its minute,
        # and the counts stored after (skipped minutes and recomputed ones) are the events.
        cases = [
            ("late", 420, """INSERT INTO business_events (event_type, event_timestamp, payload)
                             VALUES ('registration_attempt', to_timestamp({t} + 5),
                                     '{{"country": "DE", "platform": "ios"}}')"""),
            ("deleted", 300, """DELETE FROM business_events WHERE id = (SELECT min(id) FROM business_events
                                WHERE event_type = 'login' AND event_timestamp >= to_timestamp({t})
                                  AND event_timestamp < to_timestamp({t} + 60))"""),
            ("retyped", 180, """UPDATE business_events SET event_type = 'refund' WHERE id = (SELECT min(id)
                                FROM business_events WHERE event_type = 'order_placed'
                                  AND event_timestamp >= to_timestamp({t})
                                  AND event_timestamp < to_timestamp({t} + 60))"""),
        ]
        for what, back, sql in cases:
            before = self.watermarks()
            t = before["signups_de"][0] - back
            self.assertEqual(len(self.db.sql(sql.format(t=t) + " RETURNING 1")), 1, what)
            got = self.tick(aggregate)
            # the 1-minute metrics share one scan: all start at the changed minute
            self.assertEqual(self.epoch(got["signups_de"]["from"]), t, (what, got["signups_de"]))
            five = got["orders_5m"]
            if what == "retyped":
                self.assertEqual(self.epoch(five["from"]), t // 300 * 300, (what, five))
            else:
                self.assertGreaterEqual(self.epoch(five["from"]), before["orders_5m"][0], (what, five))
            assert_equals_oracle(self, start, end)
            self.assert_counts_are_the_events()
        self.assertGreater(int(self.db.value("SELECT count(*) FROM outbox WHERE data ? 'revised'")), 0)

        # No counts, or counts that do not end at the watermark (moved by hand): the whole window.
        self.db.sql("UPDATE metric_watermarks SET counts = NULL WHERE metric_name = 'active_users'")
        wm = self.watermarks()["active_users"][0]
        got = self.tick(aggregate)
        self.assertEqual(self.epoch(got["active_users"]["from"]), wm - self.LATENESS, got["active_users"])
        self.db.sql("UPDATE metric_watermarks SET watermark = watermark - interval '2 minutes' "
                    "WHERE metric_name = 'revenue_eur'")
        wm = self.watermarks()["revenue_eur"][0]
        got = self.tick(aggregate)
        self.assertEqual(self.epoch(got["revenue_eur"]["from"]), wm - self.LATENESS, got["revenue_eur"])
        assert_equals_oracle(self, start, end)

    def test_a_ratio_whose_event_moves_from_denominator_to_numerator_type_is_recomputed(self):
        # Only the ratio reads these types: no other metric's change pulls it back.
        only = {"metrics": [m for m in METRICS["metrics"] if m["name"] == "success_rate"]}
        start, end, aggregate = self.started(30, only)
        t = self.watermarks()["success_rate"][0] - 240
        moved = self.db.sql(f"""UPDATE business_events SET event_type = 'registration_success'
                                WHERE id = (SELECT min(id) FROM business_events WHERE event_type = 'registration_attempt'
                                            AND event_timestamp >= to_timestamp({t})
                                            AND event_timestamp < to_timestamp({t} + 60)) RETURNING 1""")
        self.assertEqual(len(moved), 1)
        got = self.tick(aggregate)["success_rate"]
        self.assertEqual(self.epoch(got["from"]), t, got)
        self.assertGreaterEqual(got["changed"], 1, got)
        self.assertEqual(mismatches(self.db, "success_rate", start, end, zero=None)[:5], [])

    def test_a_changed_definition_recomputes_the_whole_window_once(self):
        _, _, aggregate = self.started(30)
        aggregate.stop()
        changed = json.loads(json.dumps(METRICS))
        [m] = [m for m in changed["metrics"] if m["name"] == "orders_5m"]
        m["filter"] = {"currency": "EUR"}
        aggregate = self.service("aggregate", BIZPULSE_METRICS=write_metrics(self, changed),
                                 BIZPULSE_AGG_LATENESS_S=self.LATENESS)
        wm = self.watermarks()["orders_5m"][0]
        got = self.tick(aggregate)
        self.assertEqual(self.epoch(got["orders_5m"]["from"]), (wm - self.LATENESS) // 300 * 300, got["orders_5m"])
        self.assertGreater(got["orders_5m"]["changed"], 0, got["orders_5m"])
        again = self.tick(aggregate)["orders_5m"]
        self.assertGreaterEqual(self.epoch(again["from"]), self.watermarks()["orders_5m"][0] - 300, again)

    def test_a_payload_edited_in_place_needs_rescan_all(self):
        start, end, aggregate = self.started(30)
        t = self.watermarks()["signups_de"][0] - 240
        edited = self.db.sql(f"""UPDATE business_events SET payload = payload || '{{"country": "DE"}}'
                                 WHERE event_type = 'registration_attempt' AND payload->>'country' <> 'DE'
                                   AND event_timestamp >= to_timestamp({t}) AND event_timestamp < to_timestamp({t} + 60)
                                 RETURNING 1""")
        self.assertGreater(len(edited), 0)
        # The counts did not move: the edited minute keeps its old value (documented).
        self.tick(aggregate)
        self.assertNotEqual(mismatches(self.db, "signups_de", start, end), [])
        aggregate.stop()
        full = self.service("aggregate", BIZPULSE_METRICS=aggregate.env["BIZPULSE_METRICS"],
                            BIZPULSE_AGG_LATENESS_S=self.LATENESS, BIZPULSE_AGG_RESCAN="all")
        got = self.tick(full)
        self.assertLessEqual(self.epoch(got["signups_de"]["from"]), t, got["signups_de"])
        assert_equals_oracle(self, start, end)

    def test_a_bad_rescan_setting_is_refused_naming_it(self):
        aggregate = self.service("aggregate", start=False, BIZPULSE_METRICS=write_metrics(self, METRICS),
                                 BIZPULSE_AGG_RESCAN="sometimes")
        proc = subprocess.run([harness.binary("aggregate"), "tick"], env=aggregate.env, capture_output=True,
                              text=True, timeout=60)
        self.assertNotEqual(proc.returncode, 0)
        self.assertIn("BIZPULSE_AGG_RESCAN must be 'changed' (the default) or 'all', not 'sometimes'", proc.stderr)


class Replicas(harness.TestCase):

    def test_two_replicas_ticking_at_once_neither_double_count_nor_deadlock(self):
        end = harness.last_closed_minute()
        start = end - datetime.timedelta(minutes=MINUTES)
        load_events(self.db, start, per_minute=60)
        path = write_metrics(self, METRICS)
        a = self.service("aggregate", BIZPULSE_METRICS=path)
        b = self.service("aggregate", BIZPULSE_METRICS=path)
        statuses = []
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            futures = [pool.submit((a if i % 2 else b).scheduler_tick) for i in range(16)]
            for f in futures:
                res = f.result()
                statuses.append(res.status)
                self.assertEqual(res.status, 200, res)
        assert_equals_oracle(self, start, end)
        # Each (source, id) once: concurrent ticks never queued the same change twice.
        dup = self.db.value("SELECT count(*) - count(DISTINCT (ce_source, ce_id)) FROM outbox")
        self.assertEqual(dup, "0")


class RestartMidCatchUp(harness.TestCase):
    private_cluster = True

    def test_a_postgres_restart_during_a_catch_up_loses_and_doubles_no_interval(self):
        end = harness.last_closed_minute()
        start = end - datetime.timedelta(days=3)
        self.db.sql(f"""INSERT INTO business_events (event_type, event_timestamp, payload)
                        SELECT 'user_registration', '{rfc3339(start)}'::timestamptz + g * interval '7 seconds', '{{}}'
                        FROM generate_series(0, 3 * 86400 / 7 - 1) AS g""")
        # Small batches and budget: the catch-up spans many transactions and ticks.
        aggregate = self.service("aggregate", BIZPULSE_AGG_BUDGET_MS=100)
        stop = threading.Event()

        def restart_soon():
            harness.wait_until(lambda: self.db.value("SELECT count(*) FROM aggregated_metrics") != "0", 30,
                               "the catch-up to start")
            self.cluster.restart()
            stop.set()

        t = threading.Thread(target=restart_soon)
        t.start()
        caught_up = False
        deadline = time.monotonic() + 90
        seen = set()
        while not caught_up and time.monotonic() < deadline:
            try:
                res = aggregate.scheduler_tick()
            except OSError:
                continue
            seen.add(res.status)
            if res.status == 200:
                caught_up = stop.is_set() and res.json()["metrics"][0].get("caught_up", False)
            else:
                self.assert_json_error(res, 503, "tick while the database restarts")
        t.join()
        self.assertTrue(caught_up, f"statuses seen: {seen}")
        self.assertEqual(harness.aggregation_mismatches(self.db, rfc3339(start), rfc3339(end)), [])
        self.assertEqual(self.db.value(f"SELECT count(*) FROM aggregated_metrics WHERE metric_timestamp >= "
                                       f"'{rfc3339(start)}' AND metric_timestamp < '{rfc3339(end)}'"), str(3 * 1440))


class Cardinality(harness.TestCase):

    def test_ten_thousand_values_of_a_dimension_fold_into_other_beyond_the_cap(self):
        end = harness.last_closed_minute()
        start = end - datetime.timedelta(minutes=10)
        self.db.sql(f"""INSERT INTO business_events (event_type, event_timestamp, payload)
                        SELECT 'login', '{rfc3339(start)}'::timestamptz + (g % 600) * interval '1 second',
                               jsonb_build_object('user_id', 'u' || (g % 10000))
                        FROM generate_series(0, 19999) AS g""")
        metrics = {"metrics": [{"name": "logins_by_user", "kind": "count", "event_type": "login",
                                "dimensions": ["user_id"], "max_series": 100}]}
        aggregate = self.service("aggregate", BIZPULSE_METRICS=write_metrics(self, metrics))
        res = aggregate.scheduler_tick()
        self.assertEqual(res.status, 200, res)
        [m] = res.json()["metrics"]
        self.assertEqual(m["folded_series"], 9900, m)
        names = self.db.sql("SELECT DISTINCT series FROM aggregated_metrics WHERE series <> ''")
        self.assertEqual(len(names), 101)  # 100 kept + 'other'
        self.assertIn(["other"], names)
        # Folding loses no event: per minute, the series add up to the total.
        bad = self.db.sql("""SELECT metric_timestamp FROM aggregated_metrics GROUP BY 1
                             HAVING sum(metric_value) FILTER (WHERE series = '')
                                 <> sum(metric_value) FILTER (WHERE series <> '')""")
        self.assertEqual(bad, [])
        self.assertEqual(self.db.value("SELECT sum(metric_value) FROM aggregated_metrics WHERE series = ''"),
                         "20000")
        self.assertIn('bizpulse_aggregate_series_folded_total{metric="logins_by_user"} 9900',
                      aggregate.get("/metrics").body.decode())


class Partitioned(harness.TestCase):
    migrate_db = False

    def test_a_day_partitioned_events_table_is_aggregated_the_same(self):
        end = harness.last_closed_minute()
        start = end - datetime.timedelta(minutes=MINUTES)
        day = datetime.timedelta(days=1)
        parts = "\n".join(
            f"CREATE TABLE business_events_{i} PARTITION OF business_events FOR VALUES FROM "
            f"('{(start - day + i * day).date()}') TO ('{(start + i * day).date()}');" for i in range(3))
        self.db.sql(f"""
            CREATE TABLE business_events (id BIGSERIAL, event_type VARCHAR(100) NOT NULL,
                event_timestamp TIMESTAMPTZ NOT NULL, payload JSONB, is_processed BOOLEAN DEFAULT FALSE,
                PRIMARY KEY (id, event_timestamp)) PARTITION BY RANGE (event_timestamp);
            {parts}""")
        harness.migrate(self.db)
        load_events(self.db, start)
        aggregate = self.service("aggregate", BIZPULSE_METRICS=write_metrics(self, METRICS))
        self.assertEqual(aggregate.scheduler_tick().status, 200)
        assert_equals_oracle(self, start, end)


class CatchUpOverStrayRows(harness.TestCase):
    """A catch-up compares with what is stored (points.h): rows no aggregation wrote are corrected, not
    a reason to stop."""

    def test_a_hand_written_series_row_without_its_total_does_not_stop_a_catch_up(self):
        end = harness.last_closed_minute()
        start = end - datetime.timedelta(minutes=MINUTES)
        load_events(self.db, start)
        # A row no aggregation writes: a series interval whose total row is missing.
        at = start + datetime.timedelta(minutes=20)
        self.db.sql(f"""INSERT INTO aggregated_metrics (metric_name, series, metric_timestamp, metric_value,
                                                        numerator, denominator)
                        VALUES ('success_rate', 'country=DE,platform=ios', '{rfc3339(at)}', 0.5, 999, 1998)""")
        metrics = {"metrics": [m for m in METRICS["metrics"] if m["name"] in ("success_rate", "signups_de")]}
        aggregate = self.service("aggregate", BIZPULSE_METRICS=write_metrics(self, metrics))
        res = aggregate.scheduler_tick()
        self.assertEqual(res.status, 200, res)
        self.assertEqual(mismatches(self.db, "success_rate", start, end, 60, None)[:5], [])
        fixed = self.db.sql("SELECT numerator, denominator FROM aggregated_metrics WHERE metric_name = 'success_rate' "
                            "AND series = 'country=DE,platform=ios' AND metric_timestamp = :'at'::timestamptz",
                            at=rfc3339(at))
        self.assertNotEqual(tuple(float(x) for x in fixed[0]), (999.0, 1998.0), "the stray row was not recomputed")
        # The other metric of the same pass: every interval, once, right.
        self.assertEqual(mismatches(self.db, "signups_de", start, end)[:5], [])
        # (a minute that closed after `end` may be stored too: only [start, end) is known)
        rows = self.db.sql("SELECT count(*) FROM aggregated_metrics WHERE metric_name = 'signups_de' "
                           "AND metric_timestamp >= :'start'::timestamptz AND metric_timestamp < :'end'::timestamptz",
                           start=rfc3339(start), end=rfc3339(end))
        self.assertEqual(int(rows[0][0]), MINUTES)


class Backfill(harness.TestCase):

    def test_backfill_and_run_recompute_a_range_through_the_same_path(self):
        end = harness.last_closed_minute()
        start = end - datetime.timedelta(minutes=60)
        self.db.insert_minutes(rfc3339(start), [4] * 60)
        aggregate = self.service("aggregate", BIZPULSE_ADMIN_TOKEN="adm1n")
        self.assertEqual(aggregate.scheduler_tick().status, 200)
        # Events fixed in the source long after the lateness window: only a recompute sees them.
        self.db.sql(f"UPDATE business_events SET event_type = 'spam' WHERE event_timestamp < "
                    f"'{rfc3339(start + datetime.timedelta(minutes=10))}'")
        body = json.dumps({"metric": "user_registration", "from": rfc3339(start),
                           "to": rfc3339(start + datetime.timedelta(minutes=5))}).encode()
        self.assert_json_error(aggregate.post("/run", body, {"Content-Type": "application/json"}), 401, "no token")
        auth = {"Content-Type": "application/json", "Authorization": "Bearer adm1n"}
        res = aggregate.post("/run", body, auth)
        self.assertEqual(res.status, 200, res)
        self.assertEqual(res.json()["result"]["changed"], 5)
        self.assert_json_error(aggregate.post("/run", json.dumps({"metric": "nope", "from": "-1h", "to": "now"})
                                              .encode(), auth), 404, "unknown metric")
        self.assert_json_error(aggregate.post("/run", json.dumps({"metric": "user_registration", "from": "now",
                                                                  "to": "-1h"}).encode(), auth), 400, "from > to")
        self.assert_json_error(aggregate.post("/run", b"{not json", auth), 400, "malformed JSON")
        env = dict(aggregate.env)
        proc = subprocess.run([harness.binary("aggregate"), "backfill", "--metric", "user_registration", "--from",
                               rfc3339(start), "--to", rfc3339(end)], env=env, capture_output=True, text=True,
                              timeout=60)
        self.assertEqual(proc.returncode, 0, proc.stderr)
        self.assertEqual(json.loads(proc.stdout.strip().splitlines()[-1])["changed"], 5)
        self.assertEqual(harness.aggregation_mismatches(self.db, rfc3339(start), rfc3339(end)), [])


class BadConfig(harness.TestCase):
    migrate_db = False

    def check(self, metrics, *fragments):
        path = os.path.join(self.log_dir, "bad.json")
        with open(path, "w") as f:
            f.write(metrics if isinstance(metrics, str) else json.dumps(metrics))
        proc = subprocess.run([harness.binary("aggregate"), "check-config", path], capture_output=True, text=True,
                              timeout=30)
        self.assertEqual(proc.returncode, 1, proc.stdout)
        for fragment in (path,) + fragments:
            self.assertIn(fragment, proc.stderr)
        # The server refuses the same file at startup, before listening.
        env = dict(os.environ, BIZPULSE_METRICS=path, PORT="0", **self.db.pg_env())
        serve = subprocess.run([harness.binary("aggregate")], env=env, capture_output=True, text=True, timeout=30)
        self.assertEqual(serve.returncode, 1)
        self.assertIn(fragments[0], serve.stderr)

    def test_bad_metric_files_are_refused_naming_file_metric_and_field(self):
        ok = {"name": "a", "kind": "count", "event_type": "e"}
        self.check({"metrics": [dict(ok, kind="cnt")]}, "metric 'a' (#1): field 'kind': unknown kind 'cnt'")
        self.check({"metrics": [{"name": "a", "kind": "count"}]}, "metric 'a' (#1): field 'event_type'")
        self.check({"metrics": [{"name": "r", "kind": "ratio", "numerator": {"event_type": "x"}}]},
                   "metric 'r' (#1): field 'denominator'")
        self.check({"metrics": [ok, ok]}, "metric 'a' (#2): field 'name': duplicate")
        self.check({"metrics": [dict(ok, dimensions="country")]}, "field 'dimensions': must be an array of strings")
        self.check("{\"metrics\": [", "malformed JSON")


if __name__ == "__main__":
    harness.main()
