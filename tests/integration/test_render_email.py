"""Report emails through a real SMTP server on 127.0.0.1 (aiosmtpd, started here): recipients
from the metrics file and BIZPULSE_MAIL_TO, the subject, a PDF attachment pdfinfo accepts;
exactly one email per incident state with duplicate events and with two render replicas; SMTP
down, then up: retried with backoff, the state visible in /metrics, then exactly one email."""

import concurrent.futures
import email
import email.policy
import json
import os
import subprocess
import time

import harness
from smtp_sink import Sink
from harness import wait_until

OPENED = "dev.bizpulse.incident.opened.v1"


# A summary with a CJK phrase and a minus sign: the mail must carry both intact.
SUMMARY = "registrations −40% vs expected; started 14:05 UTC (注册)."


class RenderEmail(harness.TestCase):

    def setUp(self):
        super().setUp()
        self.metrics = os.path.join(self.log_dir, "metrics.json")
        with open(self.metrics, "w") as f:
            json.dump({"metrics": [{"name": "user_registration", "kind": "count",
                                    "event_type": "user_registration",
                                    "recipients": ["ops@example.com", "pm@example.com"]}]}, f)
        self.mail_dir = os.path.join(self.log_dir, "mail")
        os.makedirs(self.mail_dir)
        self.port = harness.free_port()
        self.sinks = []

    def sink(self):
        s = Sink(self.port, self.mail_dir)
        self.sinks.append(s)
        self.addCleanup(s.stop)
        return s

    def render(self, **env):
        report_dir = os.path.join(self.log_dir, "reports")
        os.makedirs(report_dir, exist_ok=True)
        return self.service("render", BIZPULSE_METRICS=self.metrics, BIZPULSE_REPORT_DIR=report_dir,
                            BIZPULSE_SMTP_URL=f"smtp://127.0.0.1:{self.port}",
                            BIZPULSE_MAIL_FROM="bizpulse@example.com",
                            BIZPULSE_MAIL_TO="oncall@example.com, ops@example.com",
                            BIZPULSE_PUBLIC_URL="https://bizpulse.example.com",
                            BIZPULSE_SMTP_TIMEOUT_MS="5000", **env)

    def email_state(self, incident):
        return self.db.sql("SELECT email_status, email_attempts, email_error FROM incident_reports "
                           "WHERE incident_id = :'id'", id=incident)

    def check_message(self, rcpt, path, incident):
        self.assertEqual(sorted(rcpt), ["oncall@example.com", "ops@example.com", "pm@example.com"])
        with open(path, "rb") as f:
            msg = email.message_from_binary_file(f, policy=email.policy.default)
        self.assertEqual(msg["Subject"], f"[bizpulse] Incident #{incident} opened: user_registration")
        self.assertEqual(msg["From"], "bizpulse@example.com")
        self.assertIn(f"<bizpulse-incident-{incident}-opened@bizpulse>", msg["Message-ID"])
        body = msg.get_body(("plain",)).get_content()
        self.assertIn("registrations −40% vs expected", body)
        self.assertIn("https://bizpulse.example.com/charts/user_registration.png", body)
        [pdf] = [p for p in msg.iter_attachments() if p.get_content_type() == "application/pdf"]
        self.assertEqual(pdf.get_filename(), f"incident-{incident}-opened.pdf")
        out = os.path.join(self.log_dir, "attached.pdf")
        with open(out, "wb") as f:
            f.write(pdf.get_content())
        self.assertEqual(harness.pdf_pages(out), 1)
        text = subprocess.run(["pdftotext", "-enc", "UTF-8", out, "-"], capture_output=True,
                              text=True).stdout
        self.assertIn("country=DE,platform=android", text)

    def test_duplicate_events_send_one_email_with_the_report_attached(self):
        sink = self.sink()
        render = self.render()
        incident = harness.insert_open_incident(self.db, SUMMARY)
        data = {"incident_id": int(incident), "state": "opened"}
        for ce_id in ("e-1", "e-1", "e-2"):  # a redelivery, then another id for the same state
            res = render.post_cloudevent(ce_id, OPENED, data, subject=f"incident/{incident}")
            self.assertEqual(res.status, 200, res)
        wait_until(lambda: self.email_state(incident)[0][0] == "sent", 30, "the email to be sent")
        time.sleep(1.0)  # several background periods: nothing more may go out
        self.assertEqual(sink.count(), 1, sink.messages)
        self.check_message(*sink.messages[0], incident)
        metrics = render.get("/metrics").body.decode()
        self.assertIn('bizpulse_render_emails{status="sent"} 1', metrics)

    def test_two_replicas_receiving_the_event_send_one_email(self):
        sink = self.sink()
        a, b = self.render(), self.render()
        incident = harness.insert_open_incident(self.db, SUMMARY)
        data = {"incident_id": int(incident), "state": "opened"}
        with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
            futures = [pool.submit(svc.post_cloudevent, f"r-{i}", OPENED, data)
                       for i, svc in enumerate((a, b, a, b))]
            self.assertEqual([f.result().status for f in futures], [200] * 4)
        wait_until(lambda: sink.count() >= 1, 30, "an email")
        wait_until(lambda: self.email_state(incident)[0][0] == "sent", 30, "the sent state")
        time.sleep(1.0)
        self.assertEqual(sink.count(), 1, sink.messages)
        self.assertEqual(self.db.value("SELECT count(*) FROM incident_reports"), "1")

    def test_smtp_down_then_up_retries_and_sends_exactly_once(self):
        render = self.render(BIZPULSE_MAIL_RETRY_MS="300")
        incident = harness.insert_open_incident(self.db, SUMMARY)
        res = render.post_cloudevent("down-1", OPENED, {"incident_id": int(incident)})
        self.assertEqual(res.status, 200, res)
        state = wait_until(lambda: (lambda s: s if s and s[0][1] and int(s[0][1]) >= 2 else None)(
            self.email_state(incident)), 30, "two failed attempts")
        status, attempts, error = state[0]
        self.assertEqual(status, "pending")
        self.assertTrue(error, "the reason is stored")
        metrics = wait_until(lambda: (lambda m: m if 'bizpulse_render_emails{status="pending"} 1' in m else None)(
            render.get("/metrics").body.decode()), 10, "the pending email in /metrics")
        self.assertIn('bizpulse_render_email_sends_total{result="error"}', metrics)
        sink = self.sink()
        wait_until(lambda: self.email_state(incident)[0][0] == "sent", 60, "the email after SMTP is back")
        time.sleep(1.0)
        self.assertEqual(sink.count(), 1, sink.messages)
        self.check_message(*sink.messages[0], incident)
        self.assertIsNone(self.email_state(incident)[0][2], "the error is cleared once sent")


if __name__ == "__main__":
    harness.main()
