"""GET /charts/<metric>.png|.svg against real stored points: every parameter, 400 naming the
bad one, 404 for an unknown metric or series, ETag/304 without redrawing, the bearer token, and
overload answered 503 busy (never a crash) by the fixed worker pool."""

import concurrent.futures
import urllib.parse

import harness
from harness import wait_until

T0 = "2026-03-23T12:00:00Z"  # a week of minutes from here; Europe/Berlin springs forward Mar 29


def seed(db):
    """A week of minutes for user_registration (total and one dimension series): learning
    first, then a band, a drop with anomalies and one resolved incident over it."""
    db.sql("""
        INSERT INTO aggregated_metrics (metric_name, series, metric_timestamp, metric_value,
            is_anomaly, expected, lower_bound, upper_bound, anomaly_context, scored_at)
        SELECT 'user_registration', s, ts,
          CASE WHEN i BETWEEN 9000 AND 9060 THEN 40 ELSE 100 + 30 * sin(i * 2 * pi() / 1440) END,
          i BETWEEN 9000 AND 9060,
          CASE WHEN i < 90 THEN NULL ELSE 100 + 30 * sin(i * 2 * pi() / 1440) END,
          CASE WHEN i < 90 THEN NULL ELSE 85 + 30 * sin(i * 2 * pi() / 1440) END,
          CASE WHEN i < 90 THEN NULL ELSE 115 + 30 * sin(i * 2 * pi() / 1440) END,
          CASE WHEN i < 90 THEN '{"state":"learning"}'::jsonb ELSE '{"state":"scored"}'::jsonb END,
          now()
        FROM generate_series(0, 10079) i, unnest(ARRAY['', 'country=DE,platform=android']) s,
             LATERAL (SELECT :'t0'::timestamptz + i * interval '1 minute' AS ts) x;
        INSERT INTO incidents (metric_name, series, status, started_at, last_anomaly_at,
            peak_timestamp, peak_value, peak_expected, method, summary, resolved_at)
        VALUES ('user_registration', '', 'resolved', :'t0'::timestamptz + interval '9000 minutes',
            :'t0'::timestamptz + interval '9060 minutes', :'t0'::timestamptz + interval '9010 minutes',
            40, 100, 'seasonal', 'registrations -60% vs expected',
            :'t0'::timestamptz + interval '9070 minutes');
        """, t0=T0)


def q(**params):
    return urllib.parse.urlencode(params)


class RenderCharts(harness.TestCase):

    def test_every_parameter_draws_and_bad_ones_are_named(self):
        seed(self.db)
        render = self.service("render")
        day = {"from": "2026-03-28T12:00:00Z", "to": "2026-03-29T12:00:00Z"}
        for extra in ({}, {"tz": "Europe/Berlin"}, {"theme": "dark"}, {"theme": "light"},
                      {"series": "country=DE,platform=android"}, {"title": "注册 ユーザー 가입"},
                      {"width": "640", "height": "320"}, {"tz": "Asia/Kolkata", "title": ""}):
            res = render.get("/charts/user_registration.png?" + q(**day, **extra))
            self.assertEqual(res.status, 200, (extra, res))
            self.assertEqual(res.headers.get("content-type"), "image/png")
            want = (int(extra.get("width", 1200)), int(extra.get("height", 600)))
            self.assertEqual(harness.png_size(res.body), want, extra)
        week = render.get("/charts/user_registration.png?" + q(**{"from": T0, "to": "2026-03-30T12:00:00Z"}))
        self.assertEqual(week.status, 200, week)
        svg = render.get("/charts/user_registration.svg?" + q(**day))
        self.assertEqual(svg.status, 200, svg)
        self.assertEqual(svg.headers.get("content-type"), "image/svg+xml")
        self.assertIn(b"<svg", svg.body[:400])
        empty = render.get("/charts/user_registration.png?" + q(**{"from": "2027-01-01T00:00:00Z",
                                                                    "to": "2027-01-02T00:00:00Z"}))
        self.assertEqual(empty.status, 200, empty)

        for params, name in (({"tz": "Mars/Olympus"}, "tz"), ({"tz": "../../etc/passwd"}, "tz"),
                             ({"theme": "sepia"}, "theme"), ({"width": "99999"}, "width"),
                             ({"height": "10"}, "height"), ({"from": "yesterday"}, "from"),
                             ({"to": "2026-13-01T00:00:00Z"}, "to"), ({"from": "-100d"}, "from"),
                             ({"title": "x" * 300}, "title")):
            res = render.get("/charts/user_registration.png?" + q(**params))
            err = self.assert_json_error(res, 400, params)
            self.assertIn(f"'{name}'", err["message"], params)
        err = self.assert_json_error(render.get("/charts/no_such_metric.png"), 404, "unknown metric")
        self.assertIn("no_such_metric", err["message"])
        err = self.assert_json_error(render.get("/charts/user_registration.png?series=country%3DXX"), 404,
                                     "unknown series")
        self.assertIn("country=XX", err["message"])

    def test_a_poll_with_the_etag_gets_304_until_the_data_changes(self):
        seed(self.db)
        render = self.service("render")
        path = "/charts/user_registration.png?" + q(**{"from": "2026-03-28T12:00:00Z",
                                                       "to": "2026-03-29T12:00:00Z",
                                                       "tz": "Europe/Berlin"})
        first = render.get(path)
        self.assertEqual(first.status, 200, first)
        etag = first.headers.get("etag")
        self.assertTrue(etag and etag.startswith('"'), first.headers)
        self.assertIn("max-age", first.headers.get("cache-control", ""))
        again = render.get(path, headers={"If-None-Match": etag})
        self.assertEqual(again.status, 304, again)
        self.assertEqual(again.body, b"")
        self.assertEqual(again.headers.get("etag"), etag)
        self.assertEqual(render.get(path, headers={"If-None-Match": 'W/"nope", ' + etag}).status, 304)
        # other parameters are another picture
        other = render.get(path + "&theme=dark", headers={"If-None-Match": etag})
        self.assertEqual(other.status, 200)
        self.assertNotEqual(other.headers.get("etag"), etag)
        # detect re-scores a point in the range: a new picture
        self.db.sql("UPDATE aggregated_metrics SET scored_at = now() + interval '1 second', is_anomaly = true "
                    "WHERE metric_name = 'user_registration' AND series = '' "
                    "AND metric_timestamp = '2026-03-29T00:00:00Z'")
        changed = render.get(path, headers={"If-None-Match": etag})
        self.assertEqual(changed.status, 200, changed)
        self.assertNotEqual(changed.headers.get("etag"), etag)
        # a new incident over the range too
        etag = changed.headers["etag"]
        self.db.sql("UPDATE incidents SET updated_at = now() + interval '1 second'")
        self.assertEqual(render.get(path, headers={"If-None-Match": etag}).status, 304,
                         "an incident outside the range does not change the chart")

    def test_the_bearer_token_guards_charts_and_reports(self):
        seed(self.db)
        render = self.service("render", BIZPULSE_RENDER_TOKEN="s3cret-token")
        path = "/charts/user_registration.png?from=-1h"
        self.assert_json_error(render.get(path), 401, "no token")
        res = render.get(path, headers={"Authorization": "Bearer wrong"})
        self.assert_json_error(res, 401, "wrong token")
        self.assertEqual(res.headers.get("www-authenticate"), "Bearer")
        self.assertEqual(render.get(path, headers={"Authorization": "Bearer s3cret-token"}).status, 200)
        self.assert_json_error(render.get("/reports/1.pdf"), 401, "report without token")
        self.assertEqual(render.get("/healthz").status, 200)

    def test_overload_gets_503_busy_and_the_server_keeps_serving(self):
        seed(self.db)
        # one worker, two waiting: the rest of a burst of big charts must be refused quickly
        render = self.service("render", BIZPULSE_WORKERS="1")
        path = "/charts/user_registration.png?" + q(**{"from": T0, "to": "2026-03-30T12:00:00Z",
                                                       "width": "4000", "height": "3000"})
        with concurrent.futures.ThreadPoolExecutor(max_workers=24) as pool:
            results = list(pool.map(lambda _: render.get(path, timeout=120), range(24)))
        statuses = sorted(r.status for r in results)
        self.assertIn(200, statuses, statuses)
        self.assertIn(503, statuses, statuses)
        self.assertEqual(set(statuses), {200, 503}, statuses)
        busy = [r for r in results if r.status == 503]
        self.assertEqual(self.assert_json_error(busy[0], 503, "busy")["code"], "busy")
        self.assertEqual(render.get("/healthz").status, 200)
        self.assertEqual(render.get(path).status, 200, "still drawing after the burst")
        metrics = render.get("/metrics").body.decode()
        self.assertIn("http_workers_busy", metrics)


if __name__ == "__main__":
    harness.main()
