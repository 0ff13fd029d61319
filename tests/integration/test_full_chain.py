"""Events in PostgreSQL flow through aggregate -> detect -> render, chained through K_SINK as in
the demo: per-minute counts, an incident for the drop, a PDF report and a PNG chart."""

import datetime
import os
import urllib.parse

import harness
from harness import rfc3339, wait_until

MINUTES = 300
DROP_MINUTES = 20
GAP_AT = 30


class FullChain(harness.TestCase):

    def test_a_scheduler_tick_turns_a_drop_in_events_into_an_incident_report_and_a_chart(self):
        end = harness.last_closed_minute()
        start = end - datetime.timedelta(minutes=MINUTES)
        drop_start = end - datetime.timedelta(minutes=DROP_MINUTES)
        counts = harness.registration_pattern(MINUTES, DROP_MINUTES, 0.4, GAP_AT)
        self.db.insert_minutes(rfc3339(start), counts)
        # Another event type in the same minutes must not be counted.
        self.db.insert_minutes(rfc3339(start), [7] * MINUTES, event_type="login")

        report_dir = os.path.join(self.log_dir, "reports")
        os.makedirs(report_dir)
        render = self.service("render", BIZPULSE_REPORT_DIR=report_dir)
        detect = self.service("detect", K_SINK=render.url)
        aggregate = self.service("aggregate", K_SINK=detect.url)

        res = aggregate.scheduler_tick()
        self.assertEqual(res.status, 200, res)
        body = res.json()
        self.assertEqual(body.get("status"), "ok", body)
        [entry] = [m for m in body["metrics"] if m.get("metric") == "user_registration"]

        # The first run starts at the earliest event and covers every closed minute.
        self.assertEqual(self.db.value("SELECT :'a'::timestamptz = :'b'::timestamptz",
                                       a=entry["from"], b=rfc3339(start)), "t", entry)
        self.assertEqual(self.db.value("SELECT :'a'::timestamptz >= :'b'::timestamptz",
                                       a=entry["to"], b=rfc3339(end)), "t", entry)
        self.assertEqual(entry["intervals"], harness.minutes_between(self.db, entry["from"],
                                                                     entry["to"]), entry)

        # aggregated_metrics equals a plain COUNT(*) per minute, the empty minute included.
        self.assertEqual(harness.aggregation_mismatches(self.db, rfc3339(start), entry["to"]), [])
        self.assertEqual(self.db.value(
            "SELECT count(*) FROM aggregated_metrics WHERE metric_name = 'user_registration' "
            "AND series = '' AND metric_timestamp >= :'to'::timestamptz", to=entry["to"]), "0",
            "an interval that was not closed yet was aggregated")
        self.assertEqual(self.db.value(
            "SELECT metric_value FROM aggregated_metrics WHERE metric_name = 'user_registration' "
            "AND series = '' AND metric_timestamp = :'t'::timestamptz",
            t=rfc3339(start + datetime.timedelta(minutes=GAP_AT))), "0")

        # detect (reached through aggregate's K_SINK) opens one incident, at the drop.
        incident = wait_until(lambda: self.db.sql(
            "SELECT id, status, started_at = :'drop'::timestamptz, summary FROM incidents "
            "WHERE metric_name = 'user_registration'", drop=rfc3339(drop_start)), 60,
            "an incident for user_registration")
        self.assertEqual(len(incident), 1, incident)
        incident_id, status, starts_at_drop, summary = incident[0]
        self.assertEqual(status, "open")
        self.assertEqual(starts_at_drop, "t", "incident does not start at the first dropped minute")
        self.assertTrue(summary)

        # The 3-sigma verdicts: the first dropped minute is an anomaly, no minute before it is.
        self.assertEqual(self.db.sql(
            "SELECT metric_timestamp, metric_value FROM aggregated_metrics "
            "WHERE metric_name = 'user_registration' AND series = '' AND is_anomaly "
            "AND metric_timestamp < :'drop'::timestamptz", drop=rfc3339(drop_start)), [])
        first = self.db.sql(
            "SELECT is_anomaly, anomaly_context IS NOT NULL FROM aggregated_metrics "
            "WHERE metric_name = 'user_registration' AND series = '' "
            "AND metric_timestamp = :'drop'::timestamptz", drop=rfc3339(drop_start))
        self.assertEqual(first, [["t", "t"]])

        # render (reached through detect's K_SINK) writes the PDF once.
        report = wait_until(lambda: self.db.sql(
            "SELECT state, path, bytes FROM incident_reports WHERE incident_id = :'id'",
            id=incident_id), 60, "the incident report")
        self.assertEqual(len(report), 1, report)
        state, path, size = report[0]
        self.assertEqual(state, "opened")
        self.assertTrue(os.path.isfile(path), path)
        self.assertEqual(os.path.getsize(path), int(size))
        self.assertEqual(os.path.abspath(path),
                         os.path.join(report_dir, f"incident-{incident_id}-opened.pdf"))
        self.assertGreaterEqual(harness.pdf_pages(path), 1)

        # Both CloudEvents were received once, and every outbox row was delivered.
        types = {r[0] for r in self.db.sql("SELECT type FROM processed_events")}
        self.assertIn("dev.bizpulse.metrics.aggregated.v1", types)
        self.assertIn("dev.bizpulse.incident.opened.v1", types)
        wait_until(lambda: self.db.value("SELECT count(*) FROM outbox WHERE status <> 'sent'")
                   == "0", 30, "the outbox to be sent")

        # The chart of the same window.
        query = urllib.parse.urlencode({"from": rfc3339(start), "to": rfc3339(end)})
        res = render.get("/charts/user_registration.png?" + query)
        self.assertEqual(res.status, 200, res)
        self.assertEqual(res.headers.get("content-type"), "image/png")
        self.assertEqual(harness.png_size(res.body), (1200, 600))


if __name__ == "__main__":
    harness.main()
