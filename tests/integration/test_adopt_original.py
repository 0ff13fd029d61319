"""bizpulse adopts a database the original system created: its tables, with their original
unique key and rows (is_anomaly NULL), migrate to the current schema, and the chain then works on
them: dimension series beside the total, old rows kept."""

import datetime
import json
import subprocess

import harness
from harness import rfc3339

MINUTES = 240

# The original system's DDL (DESIGN §2), with a constraint name of its own choosing.
ORIGINAL = """
CREATE TABLE business_events (id BIGSERIAL PRIMARY KEY, event_type VARCHAR(100) NOT NULL,
    event_timestamp TIMESTAMPTZ NOT NULL, payload JSONB, is_processed BOOLEAN DEFAULT FALSE);
CREATE INDEX ON business_events (event_timestamp, event_type);
CREATE INDEX ON business_events (is_processed, event_timestamp);
CREATE TABLE aggregated_metrics (id BIGSERIAL PRIMARY KEY, metric_name VARCHAR(100),
    metric_timestamp TIMESTAMPTZ, metric_value NUMERIC, is_anomaly BOOLEAN, anomaly_context JSONB,
    CONSTRAINT uq_metric_minute UNIQUE (metric_name, metric_timestamp));
"""


class AdoptOriginal(harness.TestCase):
    migrate_db = False

    def test_the_original_tables_migrate_and_the_chain_runs_on_them(self):
        self.db.sql(ORIGINAL)
        end = harness.last_closed_minute()
        start = end - datetime.timedelta(minutes=MINUTES)
        old = start - datetime.timedelta(days=2)
        self.db.sql(f"INSERT INTO aggregated_metrics (metric_name, metric_timestamp, metric_value) "
                    f"VALUES ('user_registration', '{rfc3339(old)}', 42)")
        harness.migrate(self.db)
        self.assertEqual(self.db.value("SELECT count(*) FROM pg_constraint WHERE conname = 'uq_metric_minute'"), "0")
        self.db.insert_minutes(rfc3339(start), harness.registration_pattern(MINUTES, 15, 0.4, 30))
        detect = self.service("detect")
        aggregate = self.service("aggregate", K_SINK=detect.url)
        res = aggregate.scheduler_tick()
        self.assertEqual(res.status, 200, res)
        self.assertEqual(harness.aggregation_mismatches(self.db, rfc3339(start), rfc3339(end)), [])
        harness.wait_until(lambda: self.db.value("SELECT count(*) FROM incidents") == "1", 30, "the incident")
        # metric_value is still the original's numeric: recomputing the same events finds nothing changed
        proc = subprocess.run([harness.binary("aggregate"), "backfill", "--metric", "user_registration", "--from",
                               rfc3339(start), "--to", rfc3339(end)], env=dict(aggregate.env), capture_output=True,
                              text=True, timeout=60)
        self.assertEqual(proc.returncode, 0, proc.stderr)
        self.assertEqual(json.loads(proc.stdout.strip().splitlines()[-1])["changed"], 0)
        # The original row is still there, untouched.
        self.assertEqual(self.db.value(f"SELECT metric_value FROM aggregated_metrics "
                                       f"WHERE metric_timestamp = '{rfc3339(old)}'"), "42")


if __name__ == "__main__":
    harness.main()
