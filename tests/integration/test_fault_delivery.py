"""Delivery faults around the chain, on 127.0.0.1:

- the K_SINK receiver down (connection refused), then answering 500/503/404/429, then fine:
  every event waits in the outbox and is delivered once it is back, none twice per (source, id);
- every CloudEvent delivered three times, some out of order, to detect and to render: the same
  final state as one in-order delivery into a second database, one email per incident state;
- SMTP down, then up, with several reports and two render replicas: every report is mailed
  exactly once.
Each failure is visible in the logs and in /metrics."""

import collections
import datetime
import email
import email.policy
import http.server
import json
import os
import threading
import time
import unittest

import harness
from smtp_sink import Sink
from harness import rfc3339, wait_until

AGGREGATED = "dev.bizpulse.metrics.aggregated.v1"
OPENED = "dev.bizpulse.incident.opened.v1"
RESOLVED = "dev.bizpulse.incident.resolved.v1"


class Receiver:
    """A K_SINK on a fixed port: `down` (nothing listens), `error` (every POST gets 500, 503, 404
    or 429 in turn: what a failing or not yet ready broker answers, all retryable per the Knative
    delivery contract) or `ok` (200, and the event is recorded as delivered)."""

    def __init__(self, port):
        self.port = port
        self.mode = "down"
        self.delivered = []  # (source, id, type, data) answered 200
        self.refused = 0  # POSTs answered 500
        self.lock = threading.Lock()
        self.server = None

    def set_mode(self, mode):
        with self.lock:
            self.mode = mode
        if mode != "down" and self.server is None:
            receiver = self

            class Handler(http.server.BaseHTTPRequestHandler):
                def do_POST(self):
                    body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                    with receiver.lock:
                        if receiver.mode == "ok":
                            receiver.delivered.append((self.headers["ce-source"], self.headers["ce-id"],
                                                       self.headers["ce-type"], body))
                            status = 200
                        else:
                            status = (500, 503, 404, 429)[receiver.refused % 4]
                            receiver.refused += 1
                    self.send_response(status)
                    self.send_header("Content-Length", "0")
                    self.end_headers()

                def log_message(self, *args):
                    pass

            self.server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
            threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def count(self):
        with self.lock:
            return len(self.delivered), self.refused

    def stop(self):
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()


class SinkOutage(harness.TestCase):

    def test_events_wait_while_the_sink_is_down_or_failing_and_arrive_once_when_it_is_back(self):
        metrics = os.path.join(self.log_dir, "metrics.json")
        with open(metrics, "w") as f:
            json.dump({"metrics": [
                {"name": "user_registration", "kind": "count", "event_type": "user_registration"},
                {"name": "logins", "kind": "count", "event_type": "login"},
                {"name": "signups_de", "kind": "count", "event_type": "user_registration",
                 "filter": {"country": "DE"}}]}, f)
        end = harness.last_closed_minute()
        start = end - datetime.timedelta(minutes=30)
        self.db.insert_minutes(rfc3339(start), [20] * 30)
        self.db.insert_minutes(rfc3339(start), [10] * 30, event_type="login")

        receiver = Receiver(harness.free_port())
        self.addCleanup(receiver.stop)
        aggregate = self.service("aggregate", BIZPULSE_METRICS=metrics,
                                 K_SINK=f"http://127.0.0.1:{receiver.port}/")
        self.assertEqual(aggregate.scheduler_tick().status, 200)
        # Late events in an aggregated minute (inside the lateness window): a second tick has
        # a change for every metric, so six events in all.
        late = rfc3339(end - datetime.timedelta(minutes=2))
        self.db.insert_minutes(late, [4])
        self.db.insert_minutes(late, [4], event_type="login")
        self.assertEqual(aggregate.scheduler_tick(harness.utcnow() + datetime.timedelta(seconds=1)).status, 200)
        self.assertEqual(self.db.value("SELECT count(*) FROM outbox"), "6")

        def outbox_attempts():
            return [int(a) for [a] in self.db.sql("SELECT attempts FROM outbox WHERE status = 'pending' ORDER BY seq")]

        # Down: every event failed at least once, stays pending with the reason stored.
        wait_until(lambda: (lambda a: len(a) == 6 and min(a) >= 1)(outbox_attempts()), 30,
                   "each event to fail against the dead sink")
        self.assertEqual(self.db.value("SELECT count(*) FROM outbox WHERE last_error IS NULL"), "0")
        retries_down = aggregate.metric("bizpulse_events_out_total", 'result="retry"')
        self.assertGreaterEqual(retries_down, 6)
        self.assertTrue(any("not delivered" in str(l.get("message")) for l in aggregate.logs()))

        # Answering errors: retried (with backoff), still pending, the status recorded.
        attempts_before = outbox_attempts()
        receiver.set_mode("error")
        wait_until(lambda: (lambda a: len(a) == 6 and all(x > y for x, y in zip(a, attempts_before)))(
            outbox_attempts()), 60, "each event to be refused once more")
        self.assertEqual(receiver.count()[0], 0)
        self.assertGreaterEqual(receiver.count()[1], 6)
        self.assertEqual(self.db.value("SELECT count(*) FROM outbox WHERE last_error !~ 'HTTP (500|503|404|429)'"),
                         "0", self.db.sql("SELECT last_error FROM outbox"))
        self.assertGreater(aggregate.metric("bizpulse_events_out_total", 'result="retry"'), retries_down)

        # Fine: everything arrives, once.
        receiver.set_mode("ok")
        wait_until(lambda: self.db.value("SELECT count(*) FROM outbox WHERE status = 'sent'") == "6", 90,
                   "every event to be delivered")
        wait_until(lambda: aggregate.metric("bizpulse_events_out_total", 'result="sent"') == 6, 10,
                   "six sends in /metrics")
        time.sleep(1.0)  # five background periods: a second send of anything would show now
        delivered, _ = receiver.count()
        keys = collections.Counter((s, i) for s, i, _, _ in receiver.delivered)
        self.assertEqual(delivered, 6, receiver.delivered)
        self.assertEqual(max(keys.values()), 1, keys)
        self.assertEqual(sorted(keys), sorted(tuple(r) for r in self.db.sql("SELECT ce_source, ce_id FROM outbox")))
        self.assertEqual({t for _, _, t, _ in receiver.delivered}, {AGGREGATED})
        self.assertEqual(sorted(json.loads(d)["metric"] for _, _, _, d in receiver.delivered),
                         sorted(["user_registration", "logins", "signups_de"] * 2))


class RedeliveryOutOfOrder(harness.TestCase):
    """Aggregated data once per database; then the same aggregated events (windows cut by the
    test) and the incident events detect emits are delivered once in order to one database's
    detect and render, and three times each, some out of order, to the other's."""

    MINUTES, DROP, RECOVERY = 300, 20, 40

    def chain(self, db, tag, smtp_port):
        report_dir = os.path.join(self.log_dir, f"reports-{tag}")
        os.makedirs(report_dir)
        detect = self.service("detect", db)
        render = self.service("render", db, BIZPULSE_REPORT_DIR=report_dir,
                              BIZPULSE_SMTP_URL=f"smtp://127.0.0.1:{smtp_port}",
                              BIZPULSE_MAIL_TO="oncall@example.com", BIZPULSE_SMTP_TIMEOUT_MS="5000")
        return detect, render

    def windows(self, start, end):
        d0 = start + datetime.timedelta(minutes=self.MINUTES)
        d1 = d0 + datetime.timedelta(minutes=self.DROP)
        cuts = [start, d0, d1, end]  # history, drop, recovery
        return [{"id": f"agg-{i}", "source": "/bizpulse/aggregate", "type": AGGREGATED, "subject": None,
                 "data": {"metric": "user_registration", "from": rfc3339(a), "to": rfc3339(b),
                          "changed_from": rfc3339(a)}}
                for i, (a, b) in enumerate(zip(cuts, cuts[1:]))]

    def deliver(self, svc, ev, structured=False):
        if structured:
            body = {"specversion": "1.0", "id": ev["id"], "source": ev["source"], "type": ev["type"],
                    "datacontenttype": "application/json", "data": ev["data"]}
            res = svc.post("/", body, {"Content-Type": "application/cloudevents+json"})
        else:
            res = svc.post_cloudevent(ev["id"], ev["type"], ev["data"], source=ev["source"],
                                      subject=ev["subject"])
        self.assertIn(res.status, (200, 202), res)
        return res.json().get("status")

    def incident_events(self, db):
        rows = db.sql("SELECT ce_source, ce_id, ce_type, ce_subject, data::text FROM outbox "
                      "WHERE ce_type LIKE 'dev.bizpulse.incident.%' ORDER BY seq")
        return [{"source": r[0], "id": r[1], "type": r[2], "subject": r[3], "data": json.loads(r[4])}
                for r in rows]

    def state(self, db, end):
        # Verdicts, not scores and bands: a window scored before the one preceding it sees that
        # one's points unscored (their anomalies not yet known), and poisson's overdispersion is
        # estimated from the points before the window: the band depends on the delivery order
        # (a known detect issue, see test_fault_postgres.py).
        return {
            "points": db.sql("SELECT metric_timestamp, metric_value, is_anomaly, method, "
                             "anomaly_context->>'state' FROM aggregated_metrics "
                             "WHERE metric_timestamp < :'end'::timestamptz ORDER BY 1", end=rfc3339(end)),
            "incidents": db.sql("SELECT id, status, started_at, last_anomaly_at, peak_timestamp, peak_value, "
                                "split_part(summary, '; outside the expected band', 1), "
                                "(context - 'lower' - 'upper')::text, resolved_at IS NULL FROM incidents ORDER BY id"),
            "reports": db.sql("SELECT incident_id, state, email_status, email_to FROM incident_reports "
                              "ORDER BY 1, 2"),
            "incident events": [(e["id"], e["type"]) for e in self.incident_events(db)],
        }

    def test_events_delivered_three_times_and_out_of_order_leave_the_state_of_one_ordered_delivery(self):
        # First arrivals: the drop window, then the history before it (no anomaly there, so
        # the drop scored first sees the same history), then the recovery.
        self.check_order([1, 0, 1, 0, 2, 1, 2, 0, 2])

    def test_a_recovery_window_delivered_before_its_drop_window_leaves_the_state_of_an_ordered_delivery(self):
        # The recovery, scored first, sees the drop's points unscored; the history, then the
        # drop, arrive late and are scored on through the recovery, which gets its ordered
        # verdicts; re-scoring the resolved episode keeps its one incident.
        self.check_order([2, 0, 2, 1, 0, 1, 2, 0, 1])

    def check_order(self, order):
        end = harness.last_closed_minute()
        total = self.MINUTES + self.DROP + self.RECOVERY
        start = end - datetime.timedelta(minutes=total)
        counts = [60 if self.MINUTES <= i < self.MINUTES + self.DROP else 95 + (i * 7) % 11
                  for i in range(total)]
        ordered_db = self.make_db()
        harness.migrate(ordered_db)
        sinks = {}
        for tag, db in (("ordered", ordered_db), ("shuffled", self.db)):
            db.insert_minutes(rfc3339(start), counts)
            aggregate = self.service("aggregate", db)
            self.assertEqual(aggregate.scheduler_tick().status, 200)
            port = harness.free_port()
            sinks[tag] = Sink(port)
            self.addCleanup(sinks[tag].stop)
            sinks[tag].port = port
        windows = self.windows(start, end)

        # In order, once.
        detect, render = self.chain(ordered_db, "ordered", sinks["ordered"].port)
        for ev in windows:
            self.assertEqual(self.deliver(detect, ev), "ok")
        for ev in self.incident_events(ordered_db):
            self.assertEqual(self.deliver(render, ev), "ok")

        # Three times each, the later windows first, binary and structured mode mixed.
        detect, render = self.chain(self.db, "shuffled", sinks["shuffled"].port)
        statuses = [self.deliver(detect, windows[k], structured=i % 2 == 1) for i, k in enumerate(order)]
        self.assertEqual(statuses.count("ok"), 3, statuses)
        self.assertEqual(statuses.count("duplicate"), 6, statuses)
        events = self.incident_events(self.db)
        self.assertTrue(events, "no incident event")
        statuses = [self.deliver(render, ev, structured=i % 2 == 0)
                    for i, ev in enumerate(list(reversed(events)) * 2 + events)]
        self.assertEqual(statuses.count("ok"), len(events), statuses)
        self.assertEqual(render.metric("bizpulse_render_reports_total", 'outcome="duplicate"'),
                         2 * len(events))

        for db, tag in ((ordered_db, "ordered"), (self.db, "shuffled")):
            wait_until(lambda: db.value("SELECT count(*) FROM incident_reports WHERE email_status <> 'sent'")
                       == "0", 60, f"the {tag} reports' emails")
        ordered, shuffled = self.state(ordered_db, end), self.state(self.db, end)
        self.assertEqual([r[1] for r in ordered["incidents"]], ["resolved"], ordered["incidents"])
        self.assertEqual([r[1] for r in ordered["reports"]], ["opened", "resolved"])
        for key in ordered:
            diff = [(o, s) for o, s in zip(ordered[key], shuffled[key]) if o != s]
            self.assertEqual(len(shuffled[key]), len(ordered[key]), f"{key}: {shuffled[key]!r}")
            self.assertEqual(diff[:3], [], f"{key} differs in {len(diff)} rows (ordered, shuffled)")
        time.sleep(1.0)  # background periods in which a second email would go out
        for tag, sink in sinks.items():
            ids = collections.Counter(email.message_from_bytes(m[1], policy=email.policy.default)["Message-ID"]
                                      for m in sink.messages)
            self.assertEqual(len(ids), 2, f"{tag}: {ids}")
            self.assertEqual(max(ids.values()), 1, f"{tag}: {ids}")


class SmtpOutage(harness.TestCase):

    def test_every_report_queued_while_smtp_is_down_is_mailed_exactly_once_when_it_is_up(self):
        port = harness.free_port()
        smtp = {"BIZPULSE_SMTP_URL": f"smtp://127.0.0.1:{port}", "BIZPULSE_MAIL_TO": "oncall@example.com",
                "BIZPULSE_SMTP_TIMEOUT_MS": "3000", "BIZPULSE_MAIL_RETRY_MS": "300"}
        replicas = [self.service("render", BIZPULSE_REPORT_DIR=os.path.join(self.log_dir, f"reports-{i}"), **smtp)
                    for i in range(2)]
        # Two resolved incidents and an open one: five reports, five emails.
        resolved = [self.db.value(
            "INSERT INTO incidents (metric_name, status, started_at, last_anomaly_at, peak_timestamp, "
            "peak_value, method, summary, resolved_at) VALUES ('user_registration', 'resolved', "
            "now() - :'ago'::interval, now() - :'ago'::interval, now() - :'ago'::interval, 1, 'poisson', "
            "'registrations -90%', now()) RETURNING id", ago=f"{h} hours") for h in (5, 3)]
        open_id = harness.insert_open_incident(self.db)
        events = [(i, OPENED, "opened") for i in resolved + [open_id]] + [(i, RESOLVED, "resolved") for i in resolved]
        for n, (incident, ce_type, state) in enumerate(events):
            res = replicas[n % 2].post_cloudevent(f"incident/{incident}/{state}", ce_type,
                                                  {"incident_id": int(incident), "state": state})
            self.assertEqual(res.status, 200, res)

        def states():
            return self.db.sql("SELECT email_status, email_attempts, email_error FROM incident_reports")
        wait_until(lambda: (lambda s: len(s) == 5 and all(int(a) >= 2 for _, a, _ in s))(states()), 60,
                   "every email to fail twice")
        self.assertTrue({s for s, _, _ in states()} <= {"pending", "sending"}, states())
        self.assertTrue(all(e for _, _, e in states()), "the reason of each failure is stored")
        errors = sum(r.metric("bizpulse_render_email_sends_total", 'result="error"') for r in replicas)
        self.assertGreaterEqual(errors, 10)
        self.assertTrue(any("mail" in str(l.get("message", "")).lower() and l.get("severity") in ("WARNING", "ERROR")
                            for r in replicas for l in r.logs()), "no log line about the failed sends")

        sink = Sink(port)
        self.addCleanup(sink.stop)
        wait_until(lambda: self.db.value("SELECT count(*) FROM incident_reports WHERE email_status = 'sent'") == "5",
                   60, "every email once SMTP is up")
        time.sleep(1.0)  # background periods in which a second send would show
        ids = collections.Counter(email.message_from_bytes(m[1], policy=email.policy.default)["Message-ID"]
                                  for m in sink.messages)
        self.assertEqual(sorted(ids), sorted(f"<bizpulse-incident-{i}-{s}@bizpulse>" for i, _, s in events))
        self.assertEqual(max(ids.values()), 1, ids)
        sent = sum(r.metric("bizpulse_render_email_sends_total", 'result="sent"') for r in replicas)
        self.assertEqual(sent, 5)


if __name__ == "__main__":
    harness.main()
