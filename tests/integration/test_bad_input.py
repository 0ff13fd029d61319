"""Bad input over HTTP gets the status the Knative delivery contract asks for (it decides
retries) and a JSON error body {"error":{"code":..,"message":..}} (DESIGN §4, §5)."""

import json
import urllib.parse

import harness

AGGREGATED = "dev.bizpulse.metrics.aggregated.v1"
BODY_MAX = 4096


def structured(**attrs):
    event = {"specversion": "1.0", "id": "bad-input-1", "source": "/bizpulse/tests",
             "type": AGGREGATED, "datacontenttype": "application/json",
             "data": {"metric": "user_registration", "from": "2026-01-01T00:00:00Z",
                      "to": "2026-01-01T00:05:00Z"}}
    for key, value in attrs.items():
        if value is None:
            event.pop(key, None)
        else:
            event[key] = value
    return event


def binary_headers(**attrs):
    headers = {"Content-Type": "application/json", "ce-specversion": "1.0", "ce-id": "bad-input-2",
               "ce-source": "/bizpulse/tests", "ce-type": AGGREGATED}
    for key, value in attrs.items():
        name = "ce-" + key
        if value is None:
            headers.pop(name, None)
        else:
            headers[name] = value
    return headers


CE_JSON = {"Content-Type": "application/cloudevents+json"}
WINDOW = {"metric": "user_registration", "from": "2026-01-01T00:00:00Z",
          "to": "2026-01-01T00:05:00Z"}


class BadInput(harness.TestCase):

    def check(self, svc, what, statuses, method, path, body=None, headers=None):
        with self.subTest(what):
            res = svc.request(method, path, body, headers)
            self.assert_json_error(res, statuses, what)

    def test_detect_answers_bad_events_with_the_status_that_stops_or_allows_retries(self):
        detect = self.service("detect", BIZPULSE_BODY_MAX=BODY_MAX)

        self.check(detect, "plain text without ce- headers is 400 or 415", (400, 415),
                   "POST", "/", "hello", {"Content-Type": "text/plain"})
        self.check(detect, "structured event without id is 400", 400,
                   "POST", "/", structured(id=None), CE_JSON)
        self.check(detect, "structured event without source is 400", 400,
                   "POST", "/", structured(source=None), CE_JSON)
        self.check(detect, "structured event without type is 400", 400,
                   "POST", "/", structured(type=None), CE_JSON)
        self.check(detect, "structured event with specversion 0.3 is 400", 400,
                   "POST", "/", structured(specversion="0.3"), CE_JSON)
        self.check(detect, "malformed JSON is 400", 400,
                   "POST", "/", '{"specversion": "1.0", "id": ', CE_JSON)
        self.check(detect, "a batch is refused with 400", 400,
                   "POST", "/", [structured()],
                   {"Content-Type": "application/cloudevents-batch+json"})
        self.check(detect, "binary event without ce-source is 400", 400,
                   "POST", "/", WINDOW, binary_headers(source=None))
        self.check(detect, "binary event without ce-id is 400", 400,
                   "POST", "/", WINDOW, binary_headers(id=None))
        self.check(detect, "binary event with malformed JSON data is 400", 400,
                   "POST", "/", "{not json", binary_headers())
        self.check(detect, "an event for an unknown metric is 404", 404,
                   "POST", "/", dict(WINDOW, metric="no_such_metric"),
                   binary_headers(id="bad-input-unknown-metric"))
        padded = structured(data=dict(WINDOW, padding="x" * (BODY_MAX + 1000)))
        self.assertGreater(len(json.dumps(padded)), BODY_MAX)
        self.check(detect, "a body over BIZPULSE_BODY_MAX is 413", 413,
                   "POST", "/", padded, CE_JSON)
        self.check(detect, "an unknown route is 404", 404, "GET", "/no/such/route")
        self.check(detect, "POST to an unknown route is 404", 404,
                   "POST", "/no/such/route", WINDOW, binary_headers(id="bad-input-route"))

        # None of the refused events was recorded as processed; a good one still is taken.
        self.assertEqual(self.db.value("SELECT count(*) FROM processed_events "
                                       "WHERE id IN ('bad-input-1', 'bad-input-2')"), "0")
        res = detect.post("/", WINDOW, binary_headers(id="bad-input-good"))
        self.assertEqual(res.status, 200, res)
        self.assertEqual(res.json().get("status"), "ok", res)

    def test_render_refuses_bad_chart_requests_with_400_or_404(self):
        render = self.service("render", BIZPULSE_REPORT_DIR=self.log_dir)

        def chart(metric, **params):
            return f"/charts/{metric}.png?" + urllib.parse.urlencode(params)

        self.check(render, "a chart of an unknown metric is 404", 404,
                   "GET", chart("no_such_metric", **{"from": "-6h", "to": "now"}))
        self.check(render, "a chart with from after to is 400", 400,
                   "GET", chart("user_registration", **{"from": "2026-01-02T00:00:00Z",
                                                        "to": "2026-01-01T00:00:00Z"}))
        self.check(render, "a chart with an unparseable from is 400", 400,
                   "GET", chart("user_registration", **{"from": "yesterday-ish", "to": "now"}))
        self.check(render, "an unknown route is 404", 404, "GET", "/no/such/route")
        self.check(render, "plain text without ce- headers is 400 or 415", (400, 415),
                   "POST", "/", "hello", {"Content-Type": "text/plain"})

        res = render.get(chart("user_registration", **{"from": "-6h", "to": "now"}))
        self.assertEqual(res.status, 200, res)
        self.assertEqual(harness.png_size(res.body), (1200, 600))


if __name__ == "__main__":
    harness.main()
