"""The delivery machinery under the chain: migrations are applied once even when two processes
start together, and an event whose sink is down waits in the outbox and is delivered, once,
when the sink comes back."""

import datetime
import json
import os
import subprocess
import threading

import harness
from harness import rfc3339

MINUTES = 240
MIGRATE_LOCK_KEY = 7089066844390436197  # shared/db/migrate.c
DROP_MINUTES = 15


class Migrations(harness.TestCase):
    migrate_db = False

    def test_two_processes_migrating_at_once_apply_each_migration_once(self):
        env = dict(os.environ)
        env.pop("DATABASE_URL", None)
        env.update(self.db.pg_env())
        results = [None, None]
        barrier = threading.Barrier(2)

        def run(i):
            barrier.wait()
            results[i] = subprocess.run([harness.binary("aggregate" if i == 0 else "detect"), "migrate"],
                                        env=env, capture_output=True, text=True, timeout=120)

        threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        applied = []
        for proc in results:
            out = proc.stdout + proc.stderr
            self.assertEqual(proc.returncode, 0, out)
            self.assertFalse(any(m in out for m in harness.SANITIZER_MARKERS), out)
            # {"status":"ok","applied":N,"version":V} is the last stdout line
            applied.append(json.loads(proc.stdout.strip().splitlines()[-1])["applied"])
        versions = self.db.sql("SELECT version FROM schema_migrations ORDER BY version")
        self.assertGreaterEqual(len(versions), 1)
        self.assertEqual(sum(applied), len(versions), f"applied per process: {applied}")
        self.assertIn(0, applied, "exactly one process should have found work to do")
        self.assertEqual(self.db.value("SELECT count(*) FROM incidents"), "0")

    def test_a_server_waiting_for_another_migrator_stays_unready_and_still_exits_on_sigterm(self):
        # Another session holds the migration lock (a replica migrating, or a stuck one).
        env = dict(os.environ)
        env.pop("DATABASE_URL", None)
        env.update(self.db.pg_env())
        holder = subprocess.Popen(["psql", "-X", "-q", "-tA", "-v", "ON_ERROR_STOP=1"], env=env, text=True,
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT)
        try:
            holder.stdin.write(f"SELECT 'locked' FROM pg_advisory_lock({MIGRATE_LOCK_KEY});\n")
            holder.stdin.flush()
            self.assertEqual(holder.stdout.readline().strip(), "locked")
            detect = self.service("detect", start=False)
            detect.start(ready=False)
            harness.wait_until(lambda: any("another process is applying migrations" in line.get("message", "")
                                           for line in detect.logs()),
                               30, "detect to log that it waits for the migration lock")
            self.assertEqual(detect.get("/readyz").status, 503)
            self.assertEqual(self.db.value("SELECT to_regclass('incidents') IS NULL"), "t")
            detect.stop(timeout=15)  # asserts exit status 0
        finally:
            holder.stdin.close()
            holder.wait(timeout=30)
            holder.stdout.close()
        # The lock released, the next replica migrates and becomes ready.
        self.service("detect")
        self.assertEqual(self.db.value("SELECT to_regclass('incidents') IS NOT NULL"), "t")


class OutboxRetry(harness.TestCase):

    def test_an_event_for_a_dead_sink_waits_and_is_delivered_once_when_it_returns(self):
        end = harness.last_closed_minute()
        start = end - datetime.timedelta(minutes=MINUTES)
        self.db.insert_minutes(rfc3339(start), harness.registration_pattern(MINUTES, DROP_MINUTES, 0.4, 30))

        render_port = harness.free_port()  # nothing listens there yet
        detect = self.service("detect", K_SINK=f"http://127.0.0.1:{render_port}/")
        aggregate = self.service("aggregate", K_SINK=detect.url)
        self.assertEqual(aggregate.scheduler_tick().status, 200)

        # detect got the aggregated event and opened the incident; its event cannot be sent.
        harness.wait_until(lambda: self.db.value(
            "SELECT count(*) FROM outbox WHERE ce_type = 'dev.bizpulse.incident.opened.v1' "
            "AND status = 'pending' AND attempts >= 1 AND last_error IS NOT NULL") == "1",
            30, "the incident.opened event to fail once and stay pending")
        self.assertEqual(self.db.value("SELECT count(*) FROM incident_reports"), "0")

        render = self.service("render", PORT=render_port,
                              BIZPULSE_REPORT_DIR=os.path.join(self.log_dir, "reports"))
        harness.wait_until(lambda: self.db.value(
            "SELECT count(*) FROM outbox WHERE ce_type = 'dev.bizpulse.incident.opened.v1' "
            "AND status = 'sent'") == "1", 60, "the retried event to be delivered")
        harness.wait_until(lambda: self.db.value("SELECT count(*) FROM incident_reports") == "1", 30,
                           "render to record the report")
        # Delivered once: render processed exactly one event from detect.
        self.assertEqual(self.db.value(
            "SELECT count(*) FROM processed_events WHERE source = '/bizpulse/detect'"), "1")
        self.assertEqual(render.get("/healthz").status, 200)


class Retention(harness.TestCase):

    def test_sent_and_received_events_older_than_the_retention_are_pruned(self):
        self.db.sql("""
            INSERT INTO outbox (ce_source, ce_id, ce_type, data, status, sent_at) VALUES
              ('/bizpulse/detect', 'old-sent', 't', '{}', 'sent', now() - interval '8 days'),
              ('/bizpulse/detect', 'new-sent', 't', '{}', 'sent', now() - interval '1 day'),
              ('/bizpulse/detect', 'old-failed', 't', '{}', 'failed', now() - interval '30 days');
            INSERT INTO processed_events (source, id, type, processed_at) VALUES
              ('/s', 'old', 't', now() - interval '8 days'), ('/s', 'new', 't', now());""")
        self.service("detect", BIZPULSE_RETENTION_DAYS=7)
        harness.wait_until(lambda: self.db.value("SELECT count(*) FROM processed_events") == "1", 30,
                           "old received events to be pruned")
        self.assertEqual(self.db.sql("SELECT id FROM processed_events"), [["new"]])
        harness.wait_until(lambda: self.db.value("SELECT count(*) FROM outbox") == "2", 30, "old sent events pruned")
        self.assertEqual(sorted(r[0] for r in self.db.sql("SELECT ce_id FROM outbox")), ["new-sent", "old-failed"])


if __name__ == "__main__":
    harness.main()
