"""Late data can take an incident back: a drop that was only events arriving late opens an
incident, and when the late events land inside the lateness window the rescored episode no
longer holds, so the incident is retracted (resolved, marked, one resolved event). Late data that leaves an
episode standing re-scores it without a second incident or a second event per state; late
anomalies after a resolution already told make a new incident."""

import datetime

import harness
from harness import rfc3339

MINUTES = 240
LATE = 15


class Retraction(harness.TestCase):

    def chain(self, counts):
        """counts[i] events in minute i of the MINUTES before now, aggregated once into detect.
        Returns (start, aggregate, detect)."""
        start = harness.last_closed_minute() - datetime.timedelta(minutes=MINUTES)
        self.db.insert_minutes(rfc3339(start), counts)
        detect = self.service("detect")
        # A grace of 100 s keeps every tick of this test before the end of the data: a minute
        # without events after it would be a drop to zero that keeps the incident alive.
        aggregate = self.service("aggregate", K_SINK=detect.url, BIZPULSE_AGG_LATENESS_S=3600,
                                 BIZPULSE_AGG_GRACE_S=100)
        self.assertEqual(aggregate.scheduler_tick().status, 200)
        return start, aggregate, detect

    def test_an_incident_made_of_late_events_is_retracted_once_they_arrive(self):
        full = [95 + (i * 7) % 11 for i in range(MINUTES)]
        arrived = full[:MINUTES - LATE] + [round(c * 0.5) for c in full[MINUTES - LATE:]]
        start, aggregate, _ = self.chain(arrived)
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

    DROP_AT, DROP = MINUTES - 60, 15  # then 45 normal minutes: the 30th resolves
    RESOLVED = DROP_AT + DROP + 29

    def resolved_drop(self, level):
        """A drop to `level` events a minute, aggregated and detected through to its resolved
        incident. Returns (aggregate, detect, at) where at(i) is minute i's timestamp."""
        start, aggregate, detect = self.chain([level if self.DROP_AT <= i < self.DROP_AT + self.DROP
                                               else 95 + (i * 7) % 11 for i in range(MINUTES)])
        harness.wait_until(lambda: self.db.value("SELECT string_agg(status, ',') FROM incidents") == "resolved", 30,
                           "the drop's incident, resolved")
        at = lambda i: self.db.value("SELECT :'t'::timestamptz", t=rfc3339(start + datetime.timedelta(minutes=i)))
        self.assertEqual(self.db.value("SELECT resolved_at FROM incidents"), at(self.RESOLVED))
        return aggregate, detect, at

    def rescore(self, aggregate, detect):
        """Ticks aggregate over the late events just inserted and waits for detect's run."""
        self.assertEqual(aggregate.scheduler_tick(harness.utcnow() + datetime.timedelta(seconds=1)).status, 200)
        harness.wait_until(lambda: detect.metric("bizpulse_events_in_total", 'type="aggregated",result="ok"') == 2,
                           30, "detect to score the revised window")

    def test_late_events_inside_a_resolved_episode_keep_its_one_incident_and_its_events(self):
        aggregate, detect, at = self.resolved_drop(60)
        before = self.db.sql("SELECT id, started_at, last_anomaly_at, peak_timestamp, resolved_at FROM incidents")
        # A few events of a drop minute arrive late: still a drop, so aggregate's revised
        # window re-scores the whole episode and its recovery.
        self.db.insert_minutes(at(self.DROP_AT + 5), [3])
        self.rescore(aggregate, detect)
        self.assertEqual(self.db.value("SELECT metric_value FROM aggregated_metrics WHERE series = '' AND "
                                       "metric_timestamp = :'t'::timestamptz", t=at(self.DROP_AT + 5)), "63")
        self.assertEqual(self.db.sql("SELECT id, started_at, last_anomaly_at, peak_timestamp, resolved_at "
                                     "FROM incidents"), before)
        self.assertIsNone(self.db.value("SELECT context->>'retracted' FROM incidents"))
        events = self.db.sql("SELECT ce_id FROM outbox WHERE ce_type LIKE 'dev.bizpulse.incident.%' ORDER BY seq")
        states = [e[0].split("/")[2] for e in events]
        self.assertEqual((states.count("opened"), states.count("resolved")), (1, 1), events)

    def test_late_anomalies_after_a_resolution_already_told_open_a_new_incident(self):
        aggregate, detect, at = self.resolved_drop(10)
        # Late events: a few in a drop minute, and spikes just before and after the resolution
        # people were told of. The re-scored episode would not have resolved there; it stays
        # resolved, and the spikes after it are a new incident.
        spikes = (self.RESOLVED - 1, self.RESOLVED + 1, self.RESOLVED + 2)
        self.db.insert_minutes(at(self.DROP_AT + 5), [3])
        for i in spikes:
            self.db.insert_minutes(at(i), [70])
        self.rescore(aggregate, detect)
        anomalies = self.db.sql("SELECT metric_timestamp FROM aggregated_metrics WHERE series = '' AND is_anomaly"
                                " AND metric_timestamp >= :'t'::timestamptz ORDER BY 1", t=at(self.DROP_AT + self.DROP))
        self.assertEqual([r[0] for r in anomalies], [at(i) for i in spikes])
        rows = self.db.sql("SELECT status, started_at, last_anomaly_at, resolved_at, context->>'retracted' "
                           "FROM incidents ORDER BY id")
        self.assertEqual(rows, [["resolved", at(self.DROP_AT), at(spikes[0]), at(self.RESOLVED), None],
                                ["open", at(spikes[1]), at(spikes[2]), None, None]])
        events = [r[0] for r in self.db.sql("SELECT ce_id FROM outbox WHERE ce_type LIKE 'dev.bizpulse.incident.%' "
                                            "ORDER BY seq")]
        self.assertEqual(events, ["incident/1/opened", "incident/1/resolved", "incident/2/opened"])

if __name__ == "__main__":
    harness.main()
