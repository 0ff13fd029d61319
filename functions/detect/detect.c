#include "detect.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "inbox.h"
#include "incident.h"
#include "json.h"
#include "log.h"
#include "metrics.h"
#include "episode.h"
#include "score.h"
#include "timefmt.h"

#define MAX_POINTS (400 * 1000) /* a year of minutes plus history: the ceiling of one event */

/* Serialises detect runs of one metric across replicas: the incident decision reads then
 * writes, so two concurrent runs could both open one. Transaction-scoped. */
static const bp_db_stmt_t lock_sql = {
    "bp_det_lock", "SELECT pg_advisory_xact_lock(hashtext('bizpulse.detect'), hashtext($1))", 1};

static const bp_db_stmt_t points_sql = {
    "bp_det_points",
    "SELECT extract(epoch FROM metric_timestamp)::bigint AS ts, metric_value AS value, numerator, "
    "denominator,"
    " is_anomaly, expected, (anomaly_context->>'state') = 'scored' AS scored"
    " FROM aggregated_metrics"
    " WHERE metric_name = $1 AND series = '' AND metric_timestamp >= to_timestamp($2::bigint)"
    " AND metric_timestamp < to_timestamp($3::bigint) ORDER BY metric_timestamp",
    3};

/* The last point already scored at or after $2: a window delivered late (after a later one,
 * or revised data) is scored on through it, so the later points get the verdicts they would
 * have had in order (they saw this window's points unscored) and the incident decision sees
 * the whole story again (incident.c recognises the episodes it already told). */
static const bp_db_stmt_t scored_after_sql = {
    "bp_det_scored_after",
    "SELECT extract(epoch FROM max(metric_timestamp))::bigint AS ts FROM aggregated_metrics"
    " WHERE metric_name = $1 AND series = '' AND metric_timestamp >= to_timestamp($2::bigint)"
    " AND scored_at IS NOT NULL",
    2};

/* One statement for the whole window: arrays in, one UPDATE out. $11 is the method's name;
 * $12..$15 say which points a sustained drift made anomalous, with the drift's numbers. */
static const bp_db_stmt_t store_sql = {
    "bp_det_store",
    "UPDATE aggregated_metrics m SET is_anomaly = u.anomaly, anomaly_score = u.score, expected = u.mean,"
    " lower_bound = u.lower, upper_bound = u.upper, method = $11::text, scored_at = now(),"
    " anomaly_context = CASE WHEN u.verdict THEN jsonb_build_object('method', $11::text, 'state', 'scored',"
    "   'expected', u.mean, 'lower', u.lower, 'upper', u.upper, 'score', u.score, 'window', u.n,"
    "   'reason', CASE WHEN u.drift THEN format('the last %s intervals together are %s vs %s expected"
    " (%s%%): a sustained drift beyond their pooled band (%s, %s points of history); value %s alone is"
    " inside its band [%s, %s]',"
    "     u.drift_n, round(u.drift_actual::numeric, 4), round(u.drift_expected::numeric, 4),"
    "     to_char(100 * (u.drift_actual - u.drift_expected) / nullif(abs(u.drift_expected), 0), 'FMSG990.0'),"
    "     $11::text, u.n, round(m.metric_value::numeric, 4), round(u.lower::numeric, 4),"
    "     round(u.upper::numeric, 4))"
    "   ELSE format('value %s is %s the expected band [%s, %s] (%s, %s points of history)',"
    "     round(m.metric_value::numeric, 4), CASE WHEN u.anomaly THEN 'outside' ELSE 'inside' END,"
    "     round(u.lower::numeric, 4), round(u.upper::numeric, 4), $11::text, u.n) END)"
    "   || CASE WHEN $11::text = 'sigma3' THEN jsonb_build_object('mean', u.mean, 'stddev', u.sd) ELSE '{}' "
    "END"
    "   || CASE WHEN u.drift THEN jsonb_build_object('drift', jsonb_build_object('intervals', u.drift_n,"
    "     'actual', u.drift_actual, 'expected', u.drift_expected)) ELSE '{}' END"
    "  WHEN m.metric_value IS NULL THEN jsonb_build_object('method', $11::text, 'state', 'no_data',"
    "   'reason', 'no value for this interval (a ratio without denominator)')"
    "  ELSE jsonb_build_object('method', $11::text, 'state', 'learning', 'window', u.n,"
    "   'reason', format('learning: %s points of history so far; %s gives verdicts after more', u.n, "
    "$11::text)) END"
    " FROM unnest($2::bigint[], $3::bool[], $4::float8[], $5::float8[], $6::float8[], $7::float8[],"
    "             $8::float8[], $9::int[], $10::bool[], $12::bool[], $13::int[], $14::float8[], "
    "$15::float8[])"
    "   AS u(ts, anomaly, score, mean, sd, lower, upper, n, verdict, drift, drift_n, drift_actual, "
    "drift_expected)"
    " WHERE m.metric_name = $1 AND m.series = '' AND m.metric_timestamp = to_timestamp(u.ts)",
    15};

int bp_detect_options_from_env(bp_detect_options_t *o, bp_err_t *err)
{
    long window, min, span, resolve, z10;
    int rc;
    if ((rc = bp_config_env_int("BIZPULSE_DETECT_ALERT_WINDOW_S", 3600, 60, 366L * 86400, &window, err)) !=
            0 ||
        (rc = bp_config_env_int("BIZPULSE_DETECT_MIN_ANOMALIES", 2, 1, 100, &min, err)) != 0 ||
        (rc = bp_config_env_int("BIZPULSE_DETECT_OPEN_SPAN", 5, 1, BP_EPISODE_SPAN_MAX, &span, err)) != 0 ||
        (rc = bp_config_env_int("BIZPULSE_DETECT_RESOLVE_AFTER", 30, 1, 100000, &resolve, err)) != 0 ||
        (rc = bp_config_env_int("BIZPULSE_DETECT_RATIO_Z_X10", 50, 10, 500, &z10, err)) != 0)
        return rc;
    if (min > span)
        return bp_err_set(err, BP_ECONFIG,
                          "BIZPULSE_DETECT_MIN_ANOMALIES (%ld) exceeds BIZPULSE_DETECT_OPEN_SPAN (%ld)", min,
                          span);
    *o = (bp_detect_options_t){.now = bp_time_now(),
                               .alert_window_s = window,
                               .min_anomalies = (int)min,
                               .open_span = (int)span,
                               .resolve_after = (int)resolve,
                               .z_alert = (double)z10 / 10.0};
    return 0;
}

typedef struct {
    char *metric;
    int64_t from, to;
} request_t;

static int parse_data(const bp_ce_t *ev, request_t *r, bp_err_t *err)
{
    if (ev->data == NULL)
        return bp_err_set(err, BP_EINVAL, "the aggregated event has no data");
    cJSON *root = NULL;
    bp_err_t jerr;
    if (bp_json_parse(ev->data, ev->data_len, &root, &jerr) != 0)
        return bp_err_set(err, BP_EINVAL, "event data: %s", jerr.msg);
    const char *metric = bp_json_str(root, "metric");
    const char *from = bp_json_str(root, "changed_from");
    const char *to = bp_json_str(root, "to");
    if (from == NULL)
        from = bp_json_str(root, "from");
    int rc = 0;
    bp_err_t terr;
    if (metric == NULL || from == NULL || to == NULL)
        rc = bp_err_set(err, BP_EINVAL, "event data needs string fields 'metric', 'from' and 'to'");
    else if (bp_time_parse(from, &r->from, &terr) != 0 || bp_time_parse(to, &r->to, &terr) != 0)
        rc = bp_err_set(err, BP_EINVAL, "event data: %s", terr.msg);
    else if (r->from > r->to)
        rc = bp_err_set(err, BP_EINVAL, "event data: 'from' (%s) is after 'to' (%s)", from, to);
    else if ((r->metric = strdup(metric)) == NULL)
        rc = bp_err_set(err, BP_ENOMEM, "out of memory");
    cJSON_Delete(root);
    return rc;
}

/* Postgres array literal builders: numbers only, so no quoting is needed. */
static int arr_num(bp_buf_t *b, size_t i, bool isnull, double v)
{
    int rc = bp_buf_append(b, i == 0 ? "{" : ",", 1);
    return rc ? rc : isnull ? bp_buf_append(b, "NULL", 4) : bp_buf_appendf(b, "%.17g", v);
}

static int store(bp_db_t *db, const char *metric, const char *method, const bp_point_t *pts,
                 const size_t *n_hist, size_t n, bp_err_t *err)
{
    enum { TS, ANOM, SCORE, MEAN, SD, LOWER, UPPER, N, VERDICT, DRIFT, DRIFT_N, DRIFT_ACT, DRIFT_EXP, NARR };
    bp_buf_t a[NARR];
    int rc = 0;
    for (int k = 0; k < NARR; k++)
        bp_buf_init(&a[k], 64u << 20);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        const bp_point_t *p = &pts[i];
        bool nv = !p->verdict;
        double sd = (p->upper - p->lower) / 6.0;
        if ((rc = arr_num(&a[TS], i, false, (double)p->ts)) != 0 ||
            (rc = bp_buf_appendf(&a[ANOM], "%s%s", i ? "," : "{", p->anomaly ? "t" : "f")) != 0 ||
            (rc = arr_num(&a[SCORE], i, nv, p->score)) != 0 ||
            (rc = arr_num(&a[MEAN], i, nv, p->expected)) != 0 || (rc = arr_num(&a[SD], i, nv, sd)) != 0 ||
            (rc = arr_num(&a[LOWER], i, nv, p->lower)) != 0 ||
            (rc = arr_num(&a[UPPER], i, nv, p->upper)) != 0 ||
            (rc = arr_num(&a[N], i, false, (double)n_hist[i])) != 0 ||
            (rc = bp_buf_appendf(&a[VERDICT], "%s%s", i ? "," : "{", p->verdict ? "t" : "f")) != 0 ||
            (rc = bp_buf_appendf(&a[DRIFT], "%s%s", i ? "," : "{", p->drift ? "t" : "f")) != 0 ||
            (rc = arr_num(&a[DRIFT_N], i, !p->drift, (double)p->drift_n)) != 0 ||
            (rc = arr_num(&a[DRIFT_ACT], i, !p->drift, p->drift_actual)) != 0 ||
            (rc = arr_num(&a[DRIFT_EXP], i, !p->drift, p->drift_expected)) != 0)
            break;
    }
    for (int k = 0; rc == 0 && k < NARR; k++)
        rc = bp_buf_append(&a[k], "}", 1);
    if (rc != 0) {
        rc = bp_err_set(err, rc, "scored window too large to store");
    } else {
        const char *p[] = {metric,     a[TS].base,    a[ANOM].base,    a[SCORE].base,     a[MEAN].base,
                           a[SD].base, a[LOWER].base, a[UPPER].base,   a[N].base,         a[VERDICT].base,
                           method,     a[DRIFT].base, a[DRIFT_N].base, a[DRIFT_ACT].base, a[DRIFT_EXP].base};
        rc = bp_db_query(db, &store_sql, p, NULL, err);
    }
    for (int k = 0; k < NARR; k++)
        bp_buf_free(&a[k]);
    return rc;
}

int bp_detect_score_range(bp_db_t *db, const bp_metric_t *m, int method_id, double z_alert,
                          const bp_detect_range_t *r, bp_point_t **out, size_t **hist_n, size_t *n,
                          bp_point_t *prior, size_t *nprior, bp_err_t *err)
{
    bp_method_t method = (bp_method_t)method_id;
    char s_from[24], s_to[24];
    snprintf(s_from, sizeof(s_from), "%" PRId64,
             r->from - (int64_t)bp_score_history(method, m->interval_s) * m->interval_s);
    snprintf(s_to, sizeof(s_to), "%" PRId64, r->to);
    const char *p[] = {m->name, s_from, s_to};
    PGresult *res = NULL;
    int rc = bp_db_query(db, &points_sql, p, &res, err);
    if (rc != 0)
        return rc;
    size_t rows = (size_t)PQntuples(res);
    if (rows > MAX_POINTS) {
        PQclear(res);
        return bp_err_set(err, BP_ETOOBIG, "window of %zu points exceeds %d", rows, MAX_POINTS);
    }
    int64_t *ts = malloc((rows + 1) * sizeof(int64_t));
    double *values = malloc((rows + 1) * sizeof(double));
    double *num = malloc((rows + 1) * sizeof(double));
    double *den = malloc((rows + 1) * sizeof(double));
    bool *anom = malloc((rows + 1) * sizeof(bool));
    bp_point_t *pts = calloc(rows + 1, sizeof(bp_point_t));
    size_t *hn = calloc(rows + 1, sizeof(size_t));
    if (ts == NULL || values == NULL || num == NULL || den == NULL || anom == NULL || pts == NULL ||
        hn == NULL) {
        rc = bp_err_set(err, BP_ENOMEM, "out of memory");
        goto out;
    }
    size_t first = rows;
    for (size_t i = 0; i < rows; i++) {
        ts[i] = bp_db_int(res, (int)i, "ts");
        values[i] = bp_db_double(res, (int)i, "value"); /* NAN when NULL */
        num[i] = bp_db_isnull(res, (int)i, "numerator") ? 0 : bp_db_double(res, (int)i, "numerator");
        den[i] = bp_db_isnull(res, (int)i, "denominator") ? 0 : bp_db_double(res, (int)i, "denominator");
        /* NULL in rows the original system wrote and in rows not scored yet */
        anom[i] = bp_db_bool(res, (int)i, "is_anomaly");
        if (first == rows && ts[i] >= r->from)
            first = i;
    }
    *nprior = 0;
    for (size_t i = first > BP_EPISODE_SPAN_MAX ? first - BP_EPISODE_SPAN_MAX : 0; i < first; i++)
        prior[(*nprior)++] = (bp_point_t){.ts = ts[i],
                                          .value = values[i],
                                          .expected = bp_db_double(res, (int)i, "expected"),
                                          .verdict = bp_db_bool(res, (int)i, "scored"),
                                          .anomaly = anom[i]};
    /* Poisson ignores anomalous points for its level, but can only tell them apart inside the
     * window it scores: a stored anomaly before the window (an outage scored by the previous
     * run, i.e. always with one-minute ticks) would drag the level down and make the recovery
     * look like a spike, and a point would get another verdict when scored in a window cut
     * elsewhere (a retried or batched catch-up). So the stored anomalies of the history count
     * as missing values (after prior[] took the real ones, for the incident decision). */
    for (size_t i = 0; method == BP_METHOD_POISSON && i < first; i++)
        if (anom[i])
            values[i] = NAN;
    bp_series_t series = {.ts = ts,
                          .value = values,
                          .num = m->kind == BP_KIND_RATIO ? num : NULL,
                          .den = m->kind == BP_KIND_RATIO ? den : NULL,
                          .counts = m->kind == BP_KIND_COUNT,
                          .anomaly = anom,
                          .n = rows};
    if (bp_score_series(method, &series, first, z_alert, pts, hn) != 0) {
        rc = bp_err_set(err, BP_ENOMEM, "out of memory scoring the window");
        goto out;
    }
    *out = pts;
    *hist_n = hn;
    *n = rows - first;
    pts = NULL;
    hn = NULL;
out:
    PQclear(res);
    free(ts);
    free(values);
    free(num);
    free(den);
    free(anom);
    free(pts);
    free(hn);
    return rc;
}

/* Scoring on stops at the ceiling of one event: a window that late (a replayed backfill) is
 * scored alone, as it always was, and the points after it keep their verdicts. */
static int extend_late(bp_db_t *db, const bp_metric_t *m, bp_method_t method, bp_detect_range_t *range,
                       bp_err_t *err)
{
    char s_to[24];
    snprintf(s_to, sizeof(s_to), "%" PRId64, range->to);
    const char *p[] = {m->name, s_to};
    PGresult *res = NULL;
    int rc = bp_db_query(db, &scored_after_sql, p, &res, err);
    if (rc != 0)
        return rc;
    if (!bp_db_isnull(res, 0, "ts")) {
        int64_t to = bp_db_int(res, 0, "ts") + m->interval_s;
        int64_t points =
            (to - range->from) / m->interval_s + (int64_t)bp_score_history(method, m->interval_s);
        if (points <= MAX_POINTS)
            range->to = to;
        else
            bp_log(BP_LOG_WARNING, "%s: late window not scored on through the %" PRId64 " points after it",
                   m->name, (to - range->to) / m->interval_s);
    }
    PQclear(res);
    return 0;
}

int bp_detect_handle(bp_worker_t *w, const bp_ce_t *ev, const bp_detect_options_t *opts, bp_buf_t *out,
                     bp_err_t *err)
{
    if (strcmp(ev->type, BP_CE_TYPE_AGGREGATED) != 0)
        return bp_err_set(err, BP_EINVAL, "event type '%.80s' is not handled by detect (expected %s)",
                          ev->type, BP_CE_TYPE_AGGREGATED);
    request_t r = {0};
    bp_detect_range_t range;
    bp_detect_options_t o = *opts;
    o.source = w->app->source;
    opts = &o;
    int rc = parse_data(ev, &r, err);
    if (rc != 0)
        return rc;
    bp_point_t *pts = NULL;
    size_t *hist_n = NULL, n = 0;
    bp_incident_change_t change = {0};
    bp_point_t prior[BP_EPISODE_SPAN_MAX];
    size_t nprior = 0;
    bool first = false;
    const bp_metric_t *m = bp_config_find(w->app->config, r.metric);
    if (m == NULL) {
        rc = bp_err_set(err, BP_ENOTFOUND, "unknown metric '%.100s': not in %s", r.metric,
                        w->app->config->path);
        goto out;
    }
    const char *name[] = {m->name};
    bp_method_t method;
    if (bp_score_method(m, &method) != 0) {
        rc = bp_err_set(err, BP_ECONFIG, "metric '%s': unknown method '%s'", m->name, m->method);
        goto out;
    }
    o.method = bp_score_method_name(method);
    range = (bp_detect_range_t){.from = r.from, .to = r.to};
    if ((rc = bp_db_begin(w->db, err)) != 0)
        goto out;
    if ((rc = bp_inbox_claim(w->db, ev, &first, err)) != 0)
        goto rollback;
    if (!first) {
        bp_metrics_inc("bizpulse_events_in_total", "type=\"aggregated\",result=\"duplicate\"");
        rc = bp_db_commit(w->db, err);
        if (rc == 0)
            rc = bp_buf_appendf(out, "{\"status\":\"duplicate\"}");
        goto out;
    }
    if ((rc = bp_db_query(w->db, &lock_sql, name, NULL, err)) != 0 ||
        (rc = extend_late(w->db, m, method, &range, err)) != 0 ||
        (rc = bp_detect_score_range(w->db, m, method, opts->z_alert, &range, &pts, &hist_n, &n, prior,
                                    &nprior, err)) != 0 ||
        (n > 0 && (rc = store(w->db, m->name, bp_score_method_name(method), pts, hist_n, n, err)) != 0) ||
        (rc = bp_incident_apply(w->db, m, prior, nprior, pts, n, opts, &change, err)) != 0 ||
        (rc = bp_db_commit(w->db, err)) != 0)
        goto rollback;
    size_t anomalies = 0, learning = 0;
    for (size_t i = 0; i < n; i++) {
        anomalies += pts[i].anomaly;
        learning += !pts[i].verdict;
    }
    bp_metrics_inc("bizpulse_events_in_total", "type=\"aggregated\",result=\"ok\"");
    bp_metrics_add("bizpulse_detect_points_scored_total", "", (double)n);
    bp_metrics_add("bizpulse_detect_anomalies_total", "", (double)anomalies);
    rc = bp_buf_appendf(
        out,
        "{\"status\":\"ok\",\"metric\":\"%s\",\"scored\":%zu,\"anomalies\":%zu,\"learning\":%zu,"
        "\"incident\":",
        m->name, n, anomalies, learning);
    if (rc == 0 && change.id != 0)
        rc = bp_buf_appendf(out, "{\"id\":%lld,\"state\":\"%s\"}}", change.id, change.state);
    else if (rc == 0)
        rc = bp_buf_appendf(out, "null}");
    goto out;
rollback:
    bp_db_rollback(w->db);
out:
    free(pts);
    free(hist_n);
    free(r.metric);
    return rc;
}
