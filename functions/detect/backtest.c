#include "backtest.h"

#include <math.h>
#include <stdlib.h>

#include "episode.h"
#include "json.h"
#include "score.h"
#include "timefmt.h"

/* JSON has no NaN: a peak without an expected value (a ratio with no denominator) prints 0. */
static double finite_or_0(double v)
{
    return isfinite(v) ? v : 0;
}

int bp_backtest_run(bp_worker_t *w, const bp_metric_t *m, int64_t from, int64_t to,
                    const bp_detect_options_t *o, bp_buf_t *out, bp_err_t *err)
{
    if (from >= to)
        return bp_err_set(err, BP_EINVAL, "--from must be before --to");
    bp_method_t method;
    if (bp_score_method(m, &method) != 0)
        return bp_err_set(err, BP_ECONFIG, "metric '%s': unknown method '%s'", m->name, m->method);
    bp_detect_range_t range = {.from = from, .to = to};
    bp_point_t *pts = NULL, prior[BP_EPISODE_SPAN_MAX];
    size_t *hist_n = NULL, n = 0, nprior = 0;
    int rc = bp_detect_score_range(w->db, m, (int)method, o->z_alert, &range, &pts, &hist_n, &n, prior,
                                   &nprior, err);
    if (rc != 0)
        return rc;
    bp_episode_params_t prm = {.min_anomalies = o->min_anomalies,
                               .open_span = o->open_span,
                               .resolve_after = o->resolve_after,
                               .recent_from = INT64_MIN};
    bp_episode_t e = {0};
    size_t anomalous = 0, learning = 0, incidents = 0, anomalies_in = 0;
    char a[BP_TIME_STRLEN], b[BP_TIME_STRLEN], c[BP_TIME_STRLEN];
    rc = bp_buf_appendf(out, "{\"metric\":");
    rc = rc ? rc : bp_json_append_str(out, m->name);
    rc = rc ? rc
            : bp_buf_appendf(out, ",\"method\":\"%s\",\"from\":\"%s\",\"to\":\"%s\",\"incidents\":[",
                             bp_score_method_name(method), bp_time_format(from, a), bp_time_format(to, b));
    for (size_t i = 0; rc == 0 && i <= n; i++) {
        int ev = 0;
        if (i < n) {
            anomalous += pts[i].anomaly;
            learning += !pts[i].verdict;
            ev = bp_episode_feed(&e, &pts[i], &prm);
            if (ev & (BP_EPISODE_OPENED | BP_EPISODE_ANOMALY))
                anomalies_in++;
        }
        /* An episode is reported when it resolves, or at the end of the range if still open. */
        bool report = (ev & BP_EPISODE_RESOLVED) || (i == n && e.open);
        if (!report)
            continue;
        rc = bp_buf_appendf(
            out,
            "%s{\"started\":\"%s\",\"ended\":%s%s%s,\"peak_at\":\"%s\",\"peak\":%.6g,\"expected\":%.6g,"
            "\"anomalies\":%zu}",
            incidents ? "," : "", bp_time_format(e.started, a), e.open ? "" : "\"",
            e.open ? "null" : bp_time_format(e.resolved_at, b), e.open ? "" : "\"",
            bp_time_format(e.peak.ts, c), finite_or_0(e.peak.value), finite_or_0(e.peak.expected),
            anomalies_in);
        incidents++;
        anomalies_in = 0;
    }
    double weeks = (double)(to - from) / (7 * 86400.0);
    rc = rc ? rc
            : bp_buf_appendf(out,
                             "],\"points\":%zu,\"anomalous_points\":%zu,\"learning_points\":%zu,"
                             "\"incidents_per_week\":%.2f,\"params\":{\"min_anomalies\":%d,\"open_span\":%d,"
                             "\"resolve_after\":%d,\"z_alert\":%g}}",
                             n, anomalous, learning, (double)incidents / weeks, o->min_anomalies,
                             o->open_span, o->resolve_after, o->z_alert);
    free(pts);
    free(hist_n);
    return rc ? bp_err_set(err, rc, "backtest report too large") : 0;
}
