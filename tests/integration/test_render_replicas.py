"""Two render replicas on one database, each with a report directory of its own (as two Knative
pods with their own emptyDir): a report built by one is served by the other and e-mailed by the
other with the PDF attached, because its bytes are in PostgreSQL; the file is only a cache, so
the replica that built the report still serves it once its file is deleted."""

import email
import email.policy
import hashlib
import json
import os

import harness
from smtp_sink import Sink
from harness import wait_until

OPENED = "dev.bizpulse.incident.opened.v1"


class RenderReplicas(harness.TestCase):

    def setUp(self):
        super().setUp()
        self.metrics = os.path.join(self.log_dir, "metrics.json")
        with open(self.metrics, "w") as f:
            json.dump({"metrics": [{"name": "user_registration", "kind": "count",
                                    "event_type": "user_registration",
                                    "recipients": ["ops@example.com"]}]}, f)

    def render(self, name, **env):
        """A replica with a report directory of its own."""
        report_dir = os.path.join(self.log_dir, f"reports-{name}")
        os.makedirs(report_dir)
        svc = self.service("render", BIZPULSE_METRICS=self.metrics, BIZPULSE_REPORT_DIR=report_dir, **env)
        return svc, report_dir

    def stored(self, incident):
        """(path, bytes, length(pdf), md5(pdf)) of the incident's one report row."""
        rows = self.db.sql("SELECT path, bytes, length(pdf), md5(pdf) FROM incident_reports "
                           "WHERE incident_id = :'id'", id=incident)
        self.assertEqual(len(rows), 1, rows)
        return rows[0]

    def build_on(self, svc, report_dir, incident, ce_id="built-1"):
        res = svc.post_cloudevent(ce_id, OPENED, {"incident_id": int(incident)},
                                  subject=f"incident/{incident}")
        self.assertEqual(res.status, 200, res)
        body = res.json()
        self.assertEqual(body["status"], "ok", body)
        path = os.path.join(report_dir, f"incident-{incident}-opened.pdf")
        self.assertEqual(body["report"], path)
        return path

    def assert_pdf(self, data, md5, what):
        self.assertEqual(data[:5], b"%PDF-", f"{what}: {data[:40]!r}")
        self.assertEqual(hashlib.md5(data).hexdigest(), md5, f"{what}: not the stored bytes")
        out = os.path.join(self.log_dir, what.replace(" ", "-") + ".pdf")
        with open(out, "wb") as f:
            f.write(data)
        self.assertEqual(harness.pdf_pages(out), 1, what)

    def get_report(self, svc, incident, what):
        res = svc.get(f"/reports/{incident}.pdf")
        self.assertEqual(res.status, 200, f"{what}: {res!r}")
        self.assertEqual(res.headers.get("content-type"), "application/pdf", what)
        return res.body

    def test_a_report_built_by_one_replica_is_served_by_the_other_and_outlives_its_file(self):
        (a, dir_a), (b, dir_b) = self.render("a"), self.render("b")
        incident = harness.insert_open_incident(self.db)
        path_a = self.build_on(a, dir_a, incident)

        stored_path, size, pdf_len, md5 = self.stored(incident)
        self.assertEqual(stored_path, path_a)
        self.assertEqual(int(size), int(pdf_len), "the row holds the whole PDF")
        with open(path_a, "rb") as f:
            self.assertEqual(hashlib.md5(f.read()).hexdigest(), md5, "A's cached file is the stored PDF")

        self.assert_pdf(self.get_report(b, incident, "from b"), md5, "from b")
        self.assertEqual(os.listdir(dir_b), [], "B built nothing and needs no file of its own")

        # Another event for the same incident state, at B: the report A stored stands.
        res = b.post_cloudevent("built-2", OPENED, {"incident_id": int(incident)})
        self.assertEqual(res.status, 200, res)
        self.assertEqual(res.json()["report"], path_a, res.json())
        self.assertEqual(self.db.value("SELECT count(*) FROM incident_reports"), "1")

        os.remove(path_a)  # A's pod restarted: its emptyDir is empty again
        self.assert_pdf(self.get_report(a, incident, "from a without its file"), md5,
                        "from a without its file")
        self.assert_pdf(self.get_report(b, incident, "from b without a's file"), md5,
                        "from b without a's file")

        # A report recorded before the bytes were stored (migration 004), its file gone: 404.
        self.db.sql("UPDATE incident_reports SET pdf = NULL WHERE incident_id = :'id'", id=incident)
        for svc in (a, b):
            err = self.assert_json_error(svc.get(f"/reports/{incident}.pdf"), 404, "no bytes, no file")
            self.assertIn("not stored", err["message"])

    def test_an_email_sent_by_the_other_replica_attaches_the_report_from_the_database(self):
        port = harness.free_port()
        sink = Sink(port)
        self.addCleanup(sink.stop)
        smtp = {"BIZPULSE_SMTP_URL": f"smtp://127.0.0.1:{port}", "BIZPULSE_MAIL_FROM": "bizpulse@example.com",
                "BIZPULSE_SMTP_TIMEOUT_MS": "5000"}
        # A builds the report and queues its email, but its background step (which sends) does
        # not come round during the test: the email is left to B.
        a, dir_a = self.render("a", BIZPULSE_BACKGROUND_MS="3600000", **smtp)
        incident = harness.insert_open_incident(self.db)
        path_a = self.build_on(a, dir_a, incident)
        self.assertEqual(self.db.value("SELECT email_status FROM incident_reports"), "pending")
        _, _, _, md5 = self.stored(incident)
        os.remove(path_a)  # no file anywhere: only the database has the PDF

        b, dir_b = self.render("b", **smtp)
        wait_until(lambda: self.db.value("SELECT email_status FROM incident_reports") == "sent", 30,
                   "B to send the email")
        self.assertEqual(sink.count(), 1, sink.messages)
        rcpt, content = sink.messages[0]
        self.assertEqual(rcpt, ["ops@example.com"])
        msg = email.message_from_bytes(content, policy=email.policy.default)
        self.assertIn("The incident report is attached", msg.get_body(("plain",)).get_content())
        [pdf] = [p for p in msg.iter_attachments() if p.get_content_type() == "application/pdf"]
        self.assertEqual(pdf.get_filename(), f"incident-{incident}-opened.pdf")
        self.assert_pdf(pdf.get_content(), md5, "attached by b")
        self.assertEqual(os.listdir(dir_b), [])


if __name__ == "__main__":
    harness.main()
