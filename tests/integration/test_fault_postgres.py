"""PostgreSQL stopped in the middle of each function's work — an aggregate catch-up of several
days (after its first day committed), a detect scoring run, a chart and a report build — and
started again: the request in flight and those that follow answer 503 with a JSON error (so
senders retry), /readyz says 503, /metrics counts the database errors, every function recovers
without a restart, and the final database state equals that of the same input run without a
fault, in a second database (aggregated values and scores, incidents, reports, emails).

Each fault is placed exactly: a psql session holds a lock (or an uncommitted row with the key
the service is about to write), the service's statement blocks on it (seen in
pg_stat_activity), and only then the cluster stops. The cluster is private to this test."""

import datetime
import os
import threading

import harness
from smtp_sink import Sink
from harness import rfc3339, wait_until

DAYS = 3
MINUTES = DAYS * 1440
DROP = (MINUTES - 25, MINUTES - 5)  # 20 minutes at 5 instead of ~50, ending 5 minutes ago
FUTURE = 20  # normal minutes after `end`: the minutes that close during the test are normal
AGGREGATED = "dev.bizpulse.metrics.aggregated.v1"


def counts():
    return [5 if DROP[0] <= i < DROP[1] else 45 + (i * 7) % 11 for i in range(MINUTES + FUTURE)]


class InFlight:
    """A request run on a thread, so the test can break the database under it."""

    def __init__(self, fn, *args, **kw):
        self.result = None
        self.error = None
        self.thread = threading.Thread(target=self._run, args=(fn, args, kw), daemon=True)
        self.thread.start()

    def _run(self, fn, args, kw):
        try:
            self.result = fn(*args, **kw)
        except Exception as exc:  # reported by wait()
            self.error = exc

    def wait(self, timeout=60):
        self.thread.join(timeout)
        if self.thread.is_alive():
            raise AssertionError(f"the request did not finish within {timeout} s")
        if self.error is not None:
            raise self.error
        return self.result


class PostgresFaults(harness.TestCase):
    private_cluster = True

    def setUp(self):
        super().setUp()
        self.end = harness.last_closed_minute()
        self.start = self.end - datetime.timedelta(minutes=MINUTES)
        self.sink_port = harness.free_port()
        self.sink = Sink(self.sink_port)
        self.addCleanup(self.sink.stop)

    # ------------------------------------------------------------------ the chain, by hand

    def start_chain(self, db, tag):
        report_dir = os.path.join(self.log_dir, f"reports-{tag}")
        os.makedirs(report_dir)
        aggregate = self.service("aggregate", db)
        detect = self.service("detect", db)
        render = self.service("render", db, BIZPULSE_REPORT_DIR=report_dir,
                              BIZPULSE_SMTP_URL=f"smtp://127.0.0.1:{self.sink_port}",
                              BIZPULSE_MAIL_TO="oncall@example.com", BIZPULSE_SMTP_TIMEOUT_MS="5000")
        return aggregate, detect, render

    def outbox(self, db, ce_type, after=0):
        rows = db.sql("SELECT seq, ce_source, ce_id, ce_subject, data::text FROM outbox "
                      "WHERE ce_type = :'t' AND seq > :'after' ORDER BY seq", t=ce_type, after=after)
        return [{"seq": int(r[0]), "source": r[1], "id": r[2], "subject": r[3], "data": r[4],
                 "type": ce_type} for r in rows]

    def deliver(self, svc, ev):
        return svc.post_cloudevent(ev["id"], ev["type"], ev["data"], source=ev["source"],
                                   subject=ev["subject"])

    def tick_until_caught_up(self, aggregate, when):
        """Ticks (the first with schedule time `when`, as a retried scheduler job) until the
        metric has caught up; only 503 is acceptable on the way."""
        for _ in range(20):
            res = aggregate.scheduler_tick(when)
            self.assertEqual(res.status, 200, res)
            [entry] = res.json()["metrics"]
            if entry.get("caught_up"):
                return
            when = harness.utcnow()
        self.fail("aggregate did not catch up in 20 ticks")

    def deliver_all(self, db, svc, ce_type):
        events = self.outbox(db, ce_type)
        for ev in events:
            res = self.deliver(svc, ev)
            self.assertEqual(res.status, 200, res)
        return events

    def incident_events(self, db):
        return [e for e in self.outbox(db, "dev.bizpulse.incident.opened.v1")
                + self.outbox(db, "dev.bizpulse.incident.resolved.v1")]

    def chart_path(self):
        return (f"/charts/user_registration.png?from={rfc3339(self.end - datetime.timedelta(hours=6))}"
                f"&to={rfc3339(self.end)}")

    def run_clean(self, db):
        aggregate, detect, render = self.start_chain(db, "clean")
        self.tick_until_caught_up(aggregate, harness.utcnow())
        self.deliver_all(db, detect, AGGREGATED)
        res = render.get(self.chart_path())
        self.assertEqual(res.status, 200, res)
        for ev in self.incident_events(db):
            self.assertEqual(self.deliver(render, ev).status, 200)
        self.wait_emails_sent(db)

    def wait_emails_sent(self, db):
        wait_until(lambda: db.value("SELECT count(*) FROM incident_reports WHERE email_status <> 'sent'")
                   == "0", 60, "every report's email to be sent")

    # ------------------------------------------------------------------ the fault

    def break_during(self, db, svc, blocker, request, route):
        """Holds `blocker` in a psql session, starts `request` (which blocks on it), stops the
        cluster: the request answers 503. While the cluster is down /readyz is 503, a new
        request is 503, and /metrics counts both. Starts the cluster again. Returns nothing;
        the caller retries its request as a sender would."""
        session = harness.Session(db)
        try:
            session.run(blocker)
            before_db = svc.metric("bizpulse_db_errors_total", 'kind="transient"') + svc.metric(
                "bizpulse_db_errors_total", 'kind="connect"')
            before_503 = svc.metric("http_requests_total", f'route="{route}",status="503"')
            inflight = InFlight(request)
            harness.wait_blocked_on_lock(db)
            self.cluster.stop()
            res = inflight.wait()
        finally:
            session.close()
        self.assert_json_error(res, 503, f"{route} request in flight when PostgreSQL stopped")
        wait_until(lambda: svc.get("/readyz").status == 503, 30, f"{svc.name} /readyz to turn 503")
        self.assert_json_error(request(), 503, f"{route} request while PostgreSQL is down")
        self.assertGreaterEqual(svc.metric("http_requests_total", f'route="{route}",status="503"'),
                                before_503 + 2)
        after_db = svc.metric("bizpulse_db_errors_total", 'kind="transient"') + svc.metric(
            "bizpulse_db_errors_total", 'kind="connect"')
        self.assertGreater(after_db, before_db, "the database errors are counted in /metrics")
        # The access log line of each 503 says why (written just after the response is sent).
        reasons = wait_until(lambda: (lambda r: r if len(r) >= 2 else None)(
            [str(line.get("error", "")) for line in svc.logs()
             if line.get("route") == route and line.get("status") == 503]), 10, "two 503s in the log")
        self.assertTrue(all("database" in r.lower() or "connection" in r.lower() for r in reasons), reasons)
        self.cluster.start()
        svc.wait_ready(60)

    def run_with_faults(self, db):
        aggregate, detect, render = self.start_chain(db, "faults")

        # aggregate: the first batch of the catch-up commits (batches end on UTC midnights), the
        # second blocks on a row with the key it is about to insert, and the database goes away.
        first_end = self.start.replace(hour=0, minute=0, second=0, microsecond=0) + datetime.timedelta(days=1)
        blocked_at = rfc3339(first_end + datetime.timedelta(minutes=90))
        when = harness.utcnow()
        self.break_during(db, aggregate, "BEGIN; INSERT INTO aggregated_metrics (metric_name, series, "
                          f"metric_timestamp, metric_value) VALUES ('user_registration', '', '{blocked_at}', -1);",
                          lambda: aggregate.scheduler_tick(when), "tick")
        self.assertEqual(db.value("SELECT watermark = :'t'::timestamptz FROM metric_watermarks",
                                  t=rfc3339(first_end)), "t", "the fault should hit after the first batch was committed")
        self.tick_until_caught_up(aggregate, when)

        # detect: scoring reads the history, then blocks writing its scores (EXCLUSIVE lets
        # reads through, not writes).
        events = self.outbox(db, AGGREGATED)
        self.assertTrue(events)
        self.break_during(db, detect, "BEGIN; LOCK TABLE aggregated_metrics IN EXCLUSIVE MODE;",
                          lambda: self.deliver(detect, events[0]), "event")
        for ev in events:  # the sender retries the failed delivery; the rest arrive as usual
            self.assertEqual(self.deliver(detect, ev).status, 200)

        # render, a chart: its query blocks on a table lock.
        self.break_during(db, render, "BEGIN; LOCK TABLE aggregated_metrics IN ACCESS EXCLUSIVE MODE;",
                          lambda: render.get(self.chart_path()), "charts")
        res = render.get(self.chart_path())
        self.assertEqual(res.status, 200, res)
        self.assertEqual(harness.png_size(res.body), (1200, 600))

        # render, a report: built, then its insert blocks on an uncommitted row of the same key.
        incident_events = self.incident_events(db)
        self.assertTrue(incident_events, "detect opened no incident")
        first = incident_events[0]
        incident_id = db.value("SELECT min(id) FROM incidents")
        self.break_during(db, render, "BEGIN; INSERT INTO incident_reports (incident_id, state, path, bytes) "
                          f"VALUES ({int(incident_id)}, 'opened', '/nowhere', 0);",
                          lambda: self.deliver(render, first), "events")
        for ev in incident_events:
            res = self.deliver(render, ev)
            self.assertEqual(res.status, 200, res)
            self.assertEqual(res.json().get("status"), "ok", res)
        self.wait_emails_sent(db)

    # ------------------------------------------------------------------ the comparison

    def state(self, db):
        upto = rfc3339(self.end)
        return {
            # Values and verdicts. The score and band are left out: detect's poisson method
            # estimates its overdispersion from the 300 points before the first point of the
            # window it scores, so a point re-scored in a window cut elsewhere (the catch-up
            # batches follow the clock) gets another band — with or without a fault. Reported
            # as a detect issue (issue 8 fault-injection report).
            "aggregated_metrics": db.sql(
                "SELECT metric_name, series, metric_timestamp, metric_value, events, is_anomaly, "
                "expected, method, anomaly_context->>'state' "
                "FROM aggregated_metrics WHERE metric_timestamp < :'upto'::timestamptz "
                "ORDER BY 1, 2, 3", upto=upto),
            # The same for the band an incident quotes (summary and context).
            "incidents": db.sql(
                "SELECT id, metric_name, series, status, started_at, last_anomaly_at, peak_timestamp, "
                "peak_value, peak_expected, method, split_part(summary, '; outside the expected band', 1), "
                "(context - 'lower' - 'upper')::text, resolved_at IS NULL FROM incidents ORDER BY id"),
            "reports": db.sql(
                "SELECT incident_id, state, bytes > 0, pdf IS NOT NULL, email_status, email_to, email_error "
                "FROM incident_reports ORDER BY 1, 2"),
        }

    def test_postgres_stopped_during_each_function_then_started_leaves_the_state_of_a_clean_run(self):
        clean_db = self.make_db(self.cluster)
        harness.migrate(clean_db)
        for db in (clean_db, self.db):
            db.insert_minutes(rfc3339(self.start), counts())

        self.run_clean(clean_db)
        clean_mails = self.sink.count()
        self.run_with_faults(self.db)

        clean, faulty = self.state(clean_db), self.state(self.db)
        self.assertEqual(len(clean["aggregated_metrics"]), MINUTES)
        self.assertEqual(len(clean["incidents"]), 1, clean["incidents"])
        self.assertEqual(len(clean["reports"]), 1, clean["reports"])
        for table in clean:
            diff = [(c, f) for c, f in zip(clean[table], faulty[table]) if c != f]
            self.assertEqual(len(faulty[table]), len(clean[table]), f"{table}: row count")
            self.assertEqual(diff[:3], [], f"{table} differs from the clean run in {len(diff)} rows "
                             "(clean, faulty)")
        self.assertEqual(harness.aggregation_mismatches(self.db, rfc3339(self.start), rfc3339(self.end)), [])
        # One email per report in each run: nothing lost, nothing sent twice.
        self.assertEqual(clean_mails, 1)
        self.assertEqual(self.sink.count(), 2, [m[0] for m in self.sink.messages])


if __name__ == "__main__":
    harness.main()
