"""Incidents for people: listing by status and metric, and acknowledging (idempotent, one
event, token-protected when configured)."""

import datetime
import json

import harness
from harness import rfc3339

MINUTES = 240


class IncidentsApi(harness.TestCase):

    def test_list_and_acknowledge_an_incident(self):
        end = harness.last_closed_minute()
        self.db.insert_minutes(rfc3339(end - datetime.timedelta(minutes=MINUTES)),
                               harness.registration_pattern(MINUTES, 15, 0.4, 30))
        detect = self.service("detect", BIZPULSE_ADMIN_TOKEN="adm1n")
        aggregate = self.service("aggregate", K_SINK=detect.url)
        self.assertEqual(aggregate.scheduler_tick().status, 200)
        harness.wait_until(lambda: self.db.value("SELECT count(*) FROM incidents") == "1", 30, "the incident")
        incident_id = int(self.db.value("SELECT id FROM incidents"))

        listed = detect.get("/incidents?status=open").json()["incidents"]
        self.assertEqual([i["id"] for i in listed], [incident_id])
        self.assertEqual(listed[0]["metric"], "user_registration")
        self.assertTrue(listed[0]["summary"])
        self.assertEqual(detect.get("/incidents?status=resolved").json()["incidents"], [])
        self.assertEqual(len(detect.get("/incidents?metric=user_registration&limit=5").json()["incidents"]), 1)
        self.assert_json_error(detect.get("/incidents?status=maybe"), 400, "bad status")
        self.assert_json_error(detect.get("/incidents?limit=0"), 400, "bad limit")
        self.assert_json_error(detect.get("/incidents?metric=nope"), 404, "unknown metric")

        path = f"/incidents/{incident_id}/ack"
        self.assert_json_error(detect.post(path), 401, "ack without the token")
        self.assert_json_error(detect.post(path, headers={"Authorization": "Bearer wrong"}), 401, "wrong token")
        auth = {"Authorization": "Bearer adm1n"}
        first = detect.post(path, headers=auth)
        self.assertEqual(first.status, 200, first)
        self.assertEqual(first.json()["status"], "acknowledged")
        again = detect.post(path, headers=auth)
        self.assertEqual(again.json()["status"], "already_acknowledged")
        self.assertEqual(again.json()["acknowledged_at"], first.json()["acknowledged_at"])
        self.assertEqual(self.db.value(
            "SELECT count(*) FROM outbox WHERE ce_type = 'dev.bizpulse.incident.updated.v1' "
            f"AND ce_id = 'incident/{incident_id}/acknowledged'"), "1")
        acked = json.loads(self.db.value(f"SELECT data::text FROM outbox WHERE ce_id = 'incident/{incident_id}/acknowledged'"))
        opened = json.loads(self.db.value(f"SELECT data::text FROM outbox WHERE ce_id = 'incident/{incident_id}/opened'"))
        self.assertEqual(acked["state"], "acknowledged")
        for key in ("incident_id", "metric", "series", "started_at"):
            self.assertEqual(acked[key], opened[key], key)
        self.assertTrue(acked["summary"])
        self.assertIsNotNone(detect.get("/incidents").json()["incidents"][0]["acknowledged_at"])
        self.assert_json_error(detect.post("/incidents/999999/ack", headers=auth), 404, "unknown incident")
        self.assert_json_error(detect.post("/incidents/abc/ack", headers=auth), 404, "malformed path")


if __name__ == "__main__":
    harness.main()
