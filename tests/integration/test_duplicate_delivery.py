"""Delivery is at-least-once: the same CloudEvent (same source and id) delivered again, in either
mode, has no second effect — one incident, one report row, one PDF file."""

import datetime
import json
import os

import harness
from harness import rfc3339

MINUTES = 240
DROP_MINUTES = 15


class DuplicateDelivery(harness.TestCase):

    def outbox(self, ce_type):
        rows = self.db.sql("SELECT ce_source, ce_id, ce_type, ce_subject, data::text FROM outbox "
                           "WHERE ce_type = :'t' ORDER BY seq", t=ce_type)
        return [{"source": r[0], "id": r[1], "type": r[2], "subject": r[3],
                 "data": json.loads(r[4])} for r in rows]

    def deliver(self, svc, event):
        return svc.post_cloudevent(event["id"], event["type"], event["data"],
                                   source=event["source"], subject=event["subject"])

    def deliver_structured(self, svc, event):
        body = {"specversion": "1.0", "id": event["id"], "source": event["source"],
                "type": event["type"], "datacontenttype": "application/json",
                "data": event["data"]}
        if event["subject"]:
            body["subject"] = event["subject"]
        return svc.post("/", body, {"Content-Type": "application/cloudevents+json"})

    def test_the_same_event_delivered_twice_opens_one_incident_and_writes_one_report(self):
        end = harness.last_closed_minute()
        start = end - datetime.timedelta(minutes=MINUTES)
        self.db.insert_minutes(rfc3339(start),
                               harness.registration_pattern(MINUTES, DROP_MINUTES, 0.4, 30))

        # No K_SINK anywhere: each event waits in the outbox, and the test delivers it.
        aggregate = self.service("aggregate")
        res = aggregate.scheduler_tick()
        self.assertEqual(res.status, 200, res)
        [aggregated] = self.outbox("dev.bizpulse.metrics.aggregated.v1")
        self.assertEqual(aggregated["data"].get("metric"), "user_registration", aggregated)

        detect = self.service("detect")
        first = self.deliver(detect, aggregated)
        self.assertEqual(first.status, 200, first)
        self.assertEqual(first.json().get("status"), "ok", first)
        again = self.deliver(detect, aggregated)
        self.assertIn(again.status, (200, 202), again)
        self.assertEqual(again.json().get("status"), "duplicate", again)
        again = self.deliver_structured(detect, aggregated)
        self.assertIn(again.status, (200, 202), again)
        self.assertEqual(again.json().get("status"), "duplicate", again)

        # The same window under a new id is new work, but the episode already has its incident.
        retried = dict(aggregated, id=aggregated["id"] + "-redelivered")
        res = self.deliver(detect, retried)
        self.assertEqual(res.status, 200, res)
        self.assertEqual(res.json().get("status"), "ok", res)

        incidents = self.db.sql("SELECT id, status FROM incidents "
                                "WHERE metric_name = 'user_registration'")
        self.assertEqual(len(incidents), 1, incidents)
        incident_id = incidents[0][0]
        self.assertEqual(incidents[0][1], "open")
        [opened] = self.outbox("dev.bizpulse.incident.opened.v1")
        self.assertEqual(str(opened["data"].get("incident_id")), incident_id, opened)
        self.assertEqual(self.db.value("SELECT count(*) FROM processed_events "
                                       "WHERE source = :'s' AND id = :'i'",
                                       s=aggregated["source"], i=aggregated["id"]), "1")

        report_dir = os.path.join(self.log_dir, "reports")
        os.makedirs(report_dir)
        render = self.service("render", BIZPULSE_REPORT_DIR=report_dir)
        first = self.deliver(render, opened)
        self.assertEqual(first.status, 200, first)
        self.assertNotEqual(first.json().get("status"), "duplicate", first)
        again = self.deliver(render, opened)
        self.assertIn(again.status, (200, 202), again)
        self.assertEqual(again.json().get("status"), "duplicate", again)
        again = self.deliver_structured(render, opened)
        self.assertIn(again.status, (200, 202), again)
        self.assertEqual(again.json().get("status"), "duplicate", again)

        reports = self.db.sql("SELECT incident_id, state, path FROM incident_reports")
        self.assertEqual(len(reports), 1, reports)
        self.assertEqual(reports[0][:2], [incident_id, "opened"])
        self.assertEqual(sorted(os.listdir(report_dir)), [f"incident-{incident_id}-opened.pdf"])
        self.assertGreaterEqual(harness.pdf_pages(reports[0][2]), 1)

        # A forged "resolved" for the still-open incident is refused: the database decides.
        forged = dict(opened, id=f"incident/{incident_id}/resolved", type="dev.bizpulse.incident.resolved.v1",
                      data=dict(opened["data"], state="resolved"))
        err = self.assert_json_error(self.deliver(render, forged), 400, "resolved event for an open incident")
        self.assertIn("still open", err["message"])
        self.assertEqual(self.db.value("SELECT count(*) FROM incident_reports WHERE state = 'resolved'"), "0")


if __name__ == "__main__":
    harness.main()
