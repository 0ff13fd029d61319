"""SIGTERM while requests are in flight (Knative scales a pod down, or rolls a revision): the
requests already running — chart renders at render, a scoring run at detect — complete with 200,
new connections are refused at once, and the process exits 0 well within the grace period.

The requests are held in flight on purpose: a psql session locks the table their statements
need, so they are provably running (blocked in pg_stat_activity) when the signal arrives; the
lock is released only after the test saw new connections refused."""

import datetime
import signal
import socket
import threading
import time

import harness
from harness import rfc3339, wait_until

GRACE_S = 25  # the server's drain deadline (shared/http/server.c DEFAULT_DRAIN_MS)


def refused(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
        return False
    except ConnectionRefusedError:
        return True


class Requests:
    """Requests running on threads; results() waits for all of them."""

    def __init__(self, calls):
        self.results = [None] * len(calls)
        self.threads = [threading.Thread(target=self._run, args=(i, fn), daemon=True)
                        for i, fn in enumerate(calls)]
        for t in self.threads:
            t.start()

    def _run(self, i, fn):
        try:
            self.results[i] = fn()
        except Exception as exc:  # noqa: BLE001 - reported by the test
            self.results[i] = exc

    def wait(self, timeout):
        for t in self.threads:
            t.join(timeout)
            if t.is_alive():
                raise AssertionError(f"a request in flight did not finish within {timeout} s")
        return self.results


class SigtermInFlight(harness.TestCase):

    def setUp(self):
        super().setUp()
        self.end = harness.last_closed_minute()
        self.start = self.end - datetime.timedelta(minutes=240)
        self.db.insert_minutes(rfc3339(self.start), harness.registration_pattern(240, 15, 0.4, 30))
        aggregate = self.service("aggregate")
        self.assertEqual(aggregate.scheduler_tick().status, 200)

    def terminate_while_blocked(self, svc, lock, calls):
        """Runs calls while `lock` blocks them, SIGTERMs svc, checks new connections are
        refused, releases the lock; returns the calls' responses and the exit time."""
        session = harness.Session(self.db)
        self.addCleanup(session.close)
        session.run(lock)
        inflight = Requests(calls)
        harness.wait_blocked_on_lock(self.db, count=len(calls))
        t0 = time.monotonic()
        svc.proc.send_signal(signal.SIGTERM)
        wait_until(lambda: refused(svc.port), 10, "new connections to be refused after SIGTERM")
        self.assertIsNone(svc.proc.poll(), "the process left before its requests finished")
        session.close()
        results = inflight.wait(GRACE_S)
        svc.proc.wait(timeout=GRACE_S)
        elapsed = time.monotonic() - t0
        svc.stop()  # exit status 0 and no sanitizer report, or the test fails
        self.assertLess(elapsed, GRACE_S, "exited only at the drain deadline")
        logs = [l for l in svc.logs() if "shutting down" in str(l.get("message", ""))]
        self.assertTrue(logs, "no shutdown line in the log")
        return results

    def test_chart_renders_in_flight_complete_and_new_connections_are_refused(self):
        render = self.service("render")
        query = f"from={rfc3339(self.start)}&to={rfc3339(self.end)}"
        sizes = [(1200, 600), (4000, 3000), (800, 400)]
        calls = [lambda w=w, h=h: harness.http_request(
            render.port, "GET", f"/charts/user_registration.png?{query}&width={w}&height={h}", timeout=60)
            for w, h in sizes]
        results = self.terminate_while_blocked(
            render, "BEGIN; LOCK TABLE aggregated_metrics IN ACCESS EXCLUSIVE MODE;", calls)
        for (w, h), res in zip(sizes, results):
            self.assertNotIsInstance(res, Exception, res)
            self.assertEqual(res.status, 200, res)
            self.assertEqual(harness.png_size(res.body), (w, h))

    def test_a_detect_run_in_flight_completes_and_commits(self):
        detect = self.service("detect")
        [event] = self.db.sql("SELECT ce_source, ce_id, data::text FROM outbox "
                              "WHERE ce_type = 'dev.bizpulse.metrics.aggregated.v1'")
        calls = [lambda: harness.http_request(detect.port, "POST", "/", event[2].encode(), {
            "Content-Type": "application/json", "ce-specversion": "1.0", "ce-id": event[1],
            "ce-source": event[0], "ce-type": "dev.bizpulse.metrics.aggregated.v1"}, timeout=60)]
        # EXCLUSIVE lets scoring read its history and blocks it writing the scores.
        [res] = self.terminate_while_blocked(detect, "BEGIN; LOCK TABLE aggregated_metrics IN EXCLUSIVE MODE;",
                                             calls)
        self.assertNotIsInstance(res, Exception, res)
        self.assertEqual(res.status, 200, res)
        self.assertEqual(res.json().get("status"), "ok", res)
        # Its work was committed: the event is recorded and the incident opened.
        self.assertEqual(self.db.value("SELECT count(*) FROM processed_events WHERE id = :'id'", id=event[1]), "1")
        self.assertEqual(self.db.value("SELECT count(*) FROM incidents WHERE status = 'open'"), "1")


if __name__ == "__main__":
    harness.main()
