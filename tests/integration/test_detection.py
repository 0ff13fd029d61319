"""Detection on metrics with dimensions and rates: a success-rate drop in one country/platform
opens one incident whose sentence and root-cause table name that combination; the same relative
dip on a single low-volume interval opens nothing."""

import datetime
import json
import os
import random
import subprocess

import harness
from harness import rfc3339

MINUTES = 240
DROP = 20

METRICS = {"metrics": [{
    "name": "registration_success_rate", "kind": "ratio",
    "numerator": {"event_type": "registration_success"},
    "denominator": {"event_type": "registration_attempt"},
    "dimensions": ["country", "platform"]}]}

COMBOS = [("DE", "android"), ("DE", "ios"), ("FR", "android"), ("FR", "ios"), ("US", "android"), ("US", "ios")]


def load(db, start, attempts, last_minute_rate=None, bad=None, bad_rate=None, bad_minutes=0, seed=7):
    """Per minute and combination: attempts[combo] attempts, successes drawn binomially at 88%
    (seeded); for `bad` during the last bad_minutes the rate is bad_rate; with last_minute_rate
    the whole last minute has that rate."""
    rng = random.Random(seed)
    values = []
    for m in range(MINUTES):
        for c, (country, platform) in enumerate(COMBOS):
            rate = 0.88
            if (country, platform) == bad and m >= MINUTES - bad_minutes:
                rate = bad_rate
            if last_minute_rate is not None and m == MINUTES - 1:
                rate = last_minute_rate
            ok = sum(rng.random() < rate for _ in range(attempts[c]))
            values.append(f"({m},'{country}','{platform}',{attempts[c]},{ok})")
    db.sql(f"""
        INSERT INTO business_events (event_type, event_timestamp, payload)
        SELECT t.type, '{rfc3339(start)}'::timestamptz + v.m * interval '1 minute' + (j % 59) * interval '1 second',
               jsonb_build_object('country', v.country, 'platform', v.platform)
        FROM (VALUES {','.join(values)}) AS v(m, country, platform, attempts, ok),
             LATERAL (SELECT 'registration_attempt' AS type, g AS j FROM generate_series(1, v.attempts) g
                      UNION ALL SELECT 'registration_success', g FROM generate_series(1, v.ok) g) AS t""")


class RootCause(harness.TestCase):

    def metrics_file(self):
        path = os.path.join(self.log_dir, "metrics.json")
        with open(path, "w") as f:
            json.dump(METRICS, f)
        return path

    def test_a_rate_drop_in_one_combination_names_it_as_the_root_cause(self):
        end = harness.last_closed_minute()
        # 1 200 attempts a minute; DE/android's success rate falls from 88% to 30%.
        load(self.db, end - datetime.timedelta(minutes=MINUTES), [200] * 6, bad=("DE", "android"), bad_rate=0.3,
             bad_minutes=DROP)
        path = self.metrics_file()
        detect = self.service("detect", BIZPULSE_METRICS=path)
        aggregate = self.service("aggregate", BIZPULSE_METRICS=path, K_SINK=detect.url)
        self.assertEqual(aggregate.scheduler_tick().status, 200)
        harness.wait_until(lambda: self.db.value("SELECT count(*) FROM incidents") == "1", 30, "the incident")
        summary, context = self.db.sql("SELECT summary, context::text FROM incidents")[0]
        self.assertIn("registration_success_rate fell to", summary)
        self.assertIn("of the gap is country=DE, platform=android", summary)
        cause = json.loads(context)["root_cause"]
        self.assertEqual(cause[0]["series"], "country=DE,platform=android", cause)
        self.assertGreater(cause[0]["share"], 0.9, cause)
        # The rate is scored rate-aware; the parts are kept; the incident starts at the drop.
        method, num, den = self.db.sql("SELECT method, numerator, denominator FROM aggregated_metrics "
                                       f"WHERE series = '' AND metric_timestamp < '{rfc3339(end)}' "
                                       "ORDER BY metric_timestamp DESC LIMIT 1")[0]
        self.assertEqual(method, "ratio")
        self.assertEqual(float(den), 1200.0)
        started = self.db.value("SELECT extract(epoch FROM started_at)::bigint FROM incidents")
        self.assertEqual(int(started), int((end - datetime.timedelta(minutes=DROP)).timestamp()))
        # The backtest over the stored history finds the same episode, and only it.
        proc = subprocess.run([harness.binary("detect"), "backtest", "--metric", "registration_success_rate",
                               "--from", rfc3339(end - datetime.timedelta(minutes=MINUTES)), "--to", rfc3339(end)],
                              env=detect.env, capture_output=True, text=True, timeout=60)
        self.assertEqual(proc.returncode, 0, proc.stderr)
        report = json.loads(proc.stdout.strip().splitlines()[-1])
        self.assertEqual(report["method"], "ratio")
        self.assertEqual([i["started"] for i in report["incidents"]], [rfc3339(end - datetime.timedelta(minutes=DROP))])
        self.assertIsNone(report["incidents"][0]["ended"])
        self.assertEqual(report["points"], MINUTES)
        self.assertGreater(report["incidents_per_week"], 0)

    def test_a_30_percent_dip_over_20_attempts_is_noise(self):
        end = harness.last_closed_minute()
        # 20 attempts a minute; in the last minute the success rate falls by 30% (88% -> 62%).
        load(self.db, end - datetime.timedelta(minutes=MINUTES), [4, 4, 3, 3, 3, 3], last_minute_rate=0.62)
        path = self.metrics_file()
        detect = self.service("detect", BIZPULSE_METRICS=path)
        aggregate = self.service("aggregate", BIZPULSE_METRICS=path, K_SINK=detect.url)
        self.assertEqual(aggregate.scheduler_tick().status, 200)
        harness.wait_until(lambda: self.db.value("SELECT count(*) FILTER (WHERE scored_at IS NULL) = 0 AND count(*) >= "
                                                 f"{MINUTES} FROM aggregated_metrics WHERE series = ''") == "t", 30,
                           "every point scored")
        self.assertEqual(self.db.value("SELECT method FROM aggregated_metrics WHERE series = '' "
                                       "ORDER BY metric_timestamp DESC LIMIT 1"), "ratio")
        self.assertEqual(self.db.value("SELECT count(*) FROM incidents"), "0")
        self.assertEqual(self.db.value("SELECT count(*) FROM aggregated_metrics WHERE series = '' AND is_anomaly"), "0")


if __name__ == "__main__":
    harness.main()
