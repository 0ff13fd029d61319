"""What may wake aggregate: a Cloud Scheduler POST, a PingSource CloudEvent; nothing else; and
with a scheduler token configured, only a caller that presents it."""

import datetime

import harness
from harness import rfc3339


class Triggers(harness.TestCase):

    def setUp(self):
        super().setUp()
        end = harness.last_closed_minute()
        self.db.insert_minutes(rfc3339(end - datetime.timedelta(minutes=30)), [5] * 30)

    def test_a_pingsource_event_triggers_a_tick_like_the_scheduler(self):
        aggregate = self.service("aggregate")
        res = aggregate.post_cloudevent("ping-1", "dev.knative.sources.ping", b'{"tick":1}',
                                        source="/apis/v1/namespaces/bizpulse/pingsources/tick")
        self.assertEqual(res.status, 200, res)
        [m] = res.json()["metrics"]
        self.assertEqual(m["metric"], "user_registration")
        self.assertGreaterEqual(m["changed"], 30)
        self.assertEqual(self.db.value("SELECT sum(metric_value) FROM aggregated_metrics"), "150")

    def test_requests_that_are_not_triggers_are_refused_with_400(self):
        aggregate = self.service("aggregate")
        self.assert_json_error(aggregate.post("/", b"", {}), 400, "a bare POST")
        err = self.assert_json_error(
            aggregate.post_cloudevent("x", "dev.bizpulse.incident.opened.v1", b"{}"), 400, "a foreign event type")
        self.assertIn("dev.knative.sources.ping", err["message"])
        self.assertEqual(self.db.value("SELECT count(*) FROM aggregated_metrics"), "0")

    def test_with_a_scheduler_token_only_callers_presenting_it_trigger_a_tick(self):
        aggregate = self.service("aggregate", BIZPULSE_SCHEDULER_TOKEN="s3cret-token")
        headers = {"X-CloudScheduler-JobName": "tick", "X-CloudScheduler-ScheduleTime": rfc3339(harness.utcnow())}
        self.assert_json_error(aggregate.post("/", b"", headers), 401, "no token")
        self.assert_json_error(aggregate.post("/", b"", dict(headers, Authorization="Bearer s3cret-tokeX")), 401,
                               "wrong token")
        self.assert_json_error(aggregate.post("/", b"", dict(headers, Authorization="Bearer s3cret-token-longer")),
                               401, "longer token")
        self.assertEqual(self.db.value("SELECT count(*) FROM aggregated_metrics"), "0")
        self.assertEqual(aggregate.post("/", b"", dict(headers, Authorization="Bearer s3cret-token")).status, 200)
        self.assertEqual(aggregate.post("/", b"", dict(headers, **{"X-Bizpulse-Scheduler-Token": "s3cret-token"}))
                         .status, 200)
        self.assertEqual(self.db.value("SELECT sum(metric_value) FROM aggregated_metrics"), "150")


if __name__ == "__main__":
    harness.main()
