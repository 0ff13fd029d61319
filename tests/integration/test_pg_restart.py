"""aggregate survives PostgreSQL going away: it reconnects by itself (no process restart), answers
503 while the database is down (so the scheduler retries), and no minute goes missing."""

import datetime

import harness
from harness import rfc3339, wait_until

MINUTES = 30


class PostgresRestart(harness.TestCase):
    private_cluster = True

    def tick_until_ok(self, aggregate, when, timeout=60):
        """Retries one tick (same schedule time, as Cloud Scheduler does) until it is 200; only
        503 is acceptable meanwhile."""
        seen = []

        def attempt():
            res = aggregate.scheduler_tick(when)
            seen.append(res.status)
            if res.status == 503:
                self.assert_json_error(res, 503, "tick while the database is unavailable")
                return None
            self.assertEqual(res.status, 200, res)
            return res.json()

        body = wait_until(attempt, timeout, "a tick to succeed after the database came back")
        self.assertEqual(body.get("status"), "ok", body)
        [entry] = [m for m in body["metrics"] if m.get("metric") == "user_registration"]
        return entry

    def assert_no_minute_missing(self, start, to):
        self.assertEqual(harness.aggregation_mismatches(self.db, rfc3339(start), to), [])

    def test_the_tick_after_a_postgres_restart_succeeds_and_no_minute_is_missing(self):
        end = harness.last_closed_minute()
        start = end - datetime.timedelta(minutes=MINUTES)
        self.db.insert_minutes(rfc3339(start), [40 + i % 5 for i in range(MINUTES)])
        aggregate = self.service("aggregate", BIZPULSE_AGG_LATENESS_S=300)

        res = aggregate.scheduler_tick()
        self.assertEqual(res.status, 200, res)
        [first] = [m for m in res.json()["metrics"] if m.get("metric") == "user_registration"]
        self.assert_no_minute_missing(start, first["to"])

        self.cluster.restart()
        # Late events for a minute already counted (inside the lateness window): the next tick
        # has real work to do on the new connection.
        late_minute = end - datetime.timedelta(minutes=2)
        self.db.insert_minutes(rfc3339(late_minute), [7])
        second = self.tick_until_ok(aggregate, harness.utcnow())
        self.assertEqual(self.db.value("SELECT :'a'::timestamptz >= :'b'::timestamptz",
                                       a=second["to"], b=first["to"]), "t", second)
        self.assert_no_minute_missing(start, second["to"])
        self.assertEqual(self.db.value(
            "SELECT metric_value FROM aggregated_metrics WHERE metric_name = 'user_registration' "
            "AND series = '' AND metric_timestamp = :'t'::timestamptz", t=rfc3339(late_minute)),
            str(40 + (MINUTES - 2) % 5 + 7))

        # Down for longer: a tick is a transient failure (503), then it recovers.
        self.cluster.stop()
        res = aggregate.scheduler_tick()
        self.assert_json_error(res, 503, "tick while PostgreSQL is stopped")
        wait_until(lambda: aggregate.get("/readyz").status == 503, 30,
                   "/readyz to report the database unreachable")
        self.cluster.start()
        self.db.insert_minutes(rfc3339(late_minute), [3])
        third = self.tick_until_ok(aggregate, harness.utcnow())
        self.assert_no_minute_missing(start, third["to"])
        aggregate.wait_ready(30)


if __name__ == "__main__":
    harness.main()
