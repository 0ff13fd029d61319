"""Late data can take an incident back: a drop that was only events arriving late opens an
incident, and when the late events land inside the lateness window the rescored episode no
longer holds, so the incident is retracted (resolved, marked, one resolved event)."""

import datetime

import harness
from harness import rfc3339

MINUTES = 240
LATE = 15


class Retraction(harness.TestCase):

    def test_an_incident_made_of_late_events_is_retracted_once_they_arrive(self):
        end = harness.last_closed_minute()
        start = end - datetime.timedelta(minutes=MINUTES)
        full = [95 + (i * 7) % 11 for i in range(MINUTES)]
        arrived = full[:MINUTES - LATE] + [round(c * 0.5) for c in full[MINUTES - LATE:]]
        self.db.insert_minutes(rfc3339(start), arrived)
        detect = self.service("detect")
        # A grace of 100 s keeps every tick of this test before the end of the data: a minute
        # without events after it would be a drop to zero that keeps the incident alive.
        aggregate = self.service("aggregate", K_SINK=detect.url, BIZPULSE_AGG_LATENESS_S=3600,
                                 BIZPULSE_AGG_GRACE_S=100)
        self.assertEqual(aggregate.scheduler_tick().status, 200)
        harness.wait_until(lambda: self.db.value("SELECT count(*) FROM incidents WHERE status = 'open'") == "1", 30,
                           "the incident")
        # The other half of those minutes arrives late.
        late_start = start + datetime.timedelta(minutes=MINUTES - LATE)
        self.db.insert_minutes(rfc3339(late_start), [c - round(c * 0.5) for c in full[MINUTES - LATE:]])
        self.assertEqual(aggregate.scheduler_tick().status, 200)
        harness.wait_until(lambda: self.db.value("SELECT status FROM incidents") == "resolved", 30,
                           "the incident to be retracted")
        self.assertEqual(self.db.value("SELECT context->>'retracted' FROM incidents"), "true")
        self.assertEqual(self.db.value("SELECT count(*) FROM aggregated_metrics WHERE series = '' AND is_anomaly"), "0")
        events = self.db.sql("SELECT ce_id FROM outbox WHERE ce_type = 'dev.bizpulse.incident.resolved.v1'")
        self.assertEqual(len(events), 1, events)
        self.assertTrue(events[0][0].endswith("/resolved/retracted"), events)


if __name__ == "__main__":
    harness.main()
