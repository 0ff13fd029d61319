"""The report store failing. Reports live in PostgreSQL (incident_reports.pdf), so the "disk full /
unwritable report directory" of a file-based design is the INSERT of the report failing: a
revoked privilege (500: no retry cures it until someone fixes it, but Knative retries a 500
too), a statement_timeout while the row is locked (503, transient). Either way the event is
answered with a JSON error that names the cause, the log and /metrics show it, nothing is
recorded (not the report, not the event id: the retry is new work, not a duplicate), and the
redelivered event succeeds once the store is back.

render also writes to disk: its cache copy of each PDF in BIZPULSE_REPORT_DIR (a temp file,
fsync, rename). That directory becoming unusable after startup loses nothing: the report is
stored, the failure is logged and counted, and the report is served from the database."""

import os
import shutil
import uuid

import harness

OPENED = "dev.bizpulse.incident.opened.v1"


class ReportStoreFailure(harness.TestCase):

    def setUp(self):
        super().setUp()
        # A role of its own (roles are cluster-wide; other tests share the cluster).
        self.role = "bp_render_" + uuid.uuid4().hex[:8]
        self.db.sql(f'CREATE ROLE "{self.role}" LOGIN; '
                    f'GRANT ALL ON SCHEMA public TO "{self.role}"; '
                    f'GRANT ALL ON ALL TABLES IN SCHEMA public TO "{self.role}"; '
                    f'GRANT ALL ON ALL SEQUENCES IN SCHEMA public TO "{self.role}";')
        self.addCleanup(self.drop_role)
        self.report_dir = os.path.join(self.log_dir, "reports")
        self.incident = harness.insert_open_incident(self.db)

    def drop_role(self):
        try:
            self.db.sql(f'DROP OWNED BY "{self.role}"; DROP ROLE "{self.role}";')
        except AssertionError:
            pass

    def render(self):
        return self.service("render", PGUSER=self.role, BIZPULSE_REPORT_DIR=self.report_dir)

    def deliver(self, render, ce_id="incident-opened-1"):
        return render.post_cloudevent(ce_id, OPENED, {"incident_id": int(self.incident)},
                                      subject=f"incident/{self.incident}")

    def assert_nothing_recorded(self):
        self.assertEqual(self.db.value("SELECT count(*) FROM incident_reports"), "0")
        self.assertEqual(self.db.value("SELECT count(*) FROM processed_events"), "0")
        self.assertEqual(self.db.value("SELECT status FROM incidents WHERE id = :'id'", id=self.incident), "open")

    def assert_redelivery_stores_the_report(self, render):
        res = self.deliver(render)
        self.assertEqual(res.status, 200, res)
        self.assertEqual(res.json().get("status"), "ok", res)
        self.assertEqual(self.db.value("SELECT count(*) FROM incident_reports WHERE pdf IS NOT NULL "
                                       "AND length(pdf) = bytes"), "1")
        self.assertEqual(render.metric("bizpulse_render_reports_total", 'outcome="written"'), 1)

    def error_logged(self, render, status, needle):
        return [l for l in render.logs() if l.get("route") == "events" and l.get("status") == status
                and needle in str(l.get("error", ""))]

    def test_a_revoked_insert_privilege_is_a_json_error_logged_and_counted_and_the_retry_succeeds(self):
        self.db.sql(f'REVOKE INSERT ON incident_reports FROM "{self.role}"')
        render = self.render()
        res = self.deliver(render)
        err = self.assert_json_error(res, 500, "report insert without the privilege")
        self.assertIn("permission denied", err["message"])
        self.assertIn("incident_reports", err["message"])
        harness.wait_until(lambda: self.error_logged(render, 500, "permission denied"), 10,
                           "the access log line with the cause")
        self.assertEqual(render.metric("bizpulse_render_reports_total", 'outcome="error"'), 1)
        self.assertGreaterEqual(render.metric("bizpulse_db_errors_total", 'kind="statement"'), 1)
        self.assert_nothing_recorded()

        self.db.sql(f'GRANT INSERT ON incident_reports TO "{self.role}"')
        self.assert_redelivery_stores_the_report(render)

    def test_a_statement_timeout_on_the_locked_row_is_a_503_and_the_retry_succeeds(self):
        self.db.sql(f"ALTER ROLE \"{self.role}\" SET statement_timeout = '1s'")
        render = self.render()
        session = harness.Session(self.db)
        self.addCleanup(session.close)
        # Another writer holds the row's key: the insert waits, and the timeout cancels it.
        session.run(f"BEGIN; INSERT INTO incident_reports (incident_id, state, path, bytes) "
                    f"VALUES ({int(self.incident)}, 'opened', '/elsewhere', 0);")
        res = self.deliver(render)
        err = self.assert_json_error(res, 503, "report insert cancelled by statement_timeout")
        self.assertIn("statement timeout", err["message"])
        harness.wait_until(lambda: self.error_logged(render, 503, "statement timeout"), 10,
                           "the access log line with the cause")
        self.assertEqual(render.metric("bizpulse_render_reports_total", 'outcome="error"'), 1)
        self.assertGreaterEqual(render.metric("bizpulse_db_errors_total", 'kind="transient"'), 1)
        session.close()  # the other writer rolls back
        self.assert_nothing_recorded()
        self.assert_redelivery_stores_the_report(render)

    def test_an_unusable_report_directory_loses_nothing_and_is_counted(self):
        render = self.render()
        # The volume goes away under the running process: the directory is now a file.
        shutil.rmtree(self.report_dir)
        with open(self.report_dir, "w") as f:
            f.write("not a directory")
        res = self.deliver(render)
        self.assertEqual(res.status, 200, res)
        self.assertEqual(res.json().get("status"), "ok", res)
        self.assertEqual(render.metric("bizpulse_render_report_cache_errors_total"), 1)
        harness.wait_until(lambda: [l for l in render.logs() if l.get("severity") == "WARNING"
                                    and "not cached" in str(l.get("message"))], 10, "the warning")
        # Stored, and served from the database.
        res = render.get(f"/reports/{self.incident}.pdf")
        self.assertEqual(res.status, 200, res)
        self.assertEqual(res.body[:5], b"%PDF-")
        self.assertEqual(str(len(res.body)), self.db.value("SELECT bytes FROM incident_reports"))

        # Back to a directory: the next report is cached, and nothing but the PDF is left there
        # (no temp file).
        os.remove(self.report_dir)
        os.makedirs(self.report_dir)
        resolved_incident = self.db.value(
            "UPDATE incidents SET status = 'resolved', resolved_at = now() WHERE id = :'id' RETURNING id",
            id=self.incident)
        res = render.post_cloudevent("incident-resolved-1", "dev.bizpulse.incident.resolved.v1",
                                     {"incident_id": int(resolved_incident)})
        self.assertEqual(res.status, 200, res)
        self.assertEqual(os.listdir(self.report_dir), [f"incident-{self.incident}-resolved.pdf"])
        self.assertEqual(render.metric("bizpulse_render_report_cache_errors_total"), 1)


if __name__ == "__main__":
    harness.main()
