#include "store.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Times travel as epoch seconds both ways (to_timestamp / extract(epoch)), so no time zone
 * or text format is involved. */
static const bp_db_stmt_t points_stmt = {
    "bp_render_points",
    "SELECT extract(epoch FROM metric_timestamp)::bigint AS ts, metric_value, is_anomaly,"
    " expected, lower_bound, upper_bound, coalesce(anomaly_context->>'state' = 'learning', false) AS learning"
    " FROM aggregated_metrics"
    " WHERE metric_name = $1 AND series = $2"
    " AND metric_timestamp >= to_timestamp($3::bigint) AND metric_timestamp <= to_timestamp($4::bigint)"
    " ORDER BY metric_timestamp LIMIT $5::int",
    5,
};

static const bp_db_stmt_t spans_stmt = {
    "bp_render_spans",
    "SELECT id, status = 'open' AS open, extract(epoch FROM started_at)::bigint AS started_at,"
    " extract(epoch FROM resolved_at)::bigint AS resolved_at"
    " FROM (SELECT * FROM incidents WHERE metric_name = $1"
    "   AND started_at <= to_timestamp($3::bigint)"
    "   AND coalesce(resolved_at, 'infinity') >= to_timestamp($2::bigint)"
    "   ORDER BY started_at DESC LIMIT $4::int) latest"
    " ORDER BY started_at",
    4,
};

/* greatest() skips NULLs: an unscored row counts by updated_at alone. */
static const bp_db_stmt_t version_stmt = {
    "bp_render_chart_version",
    "SELECT a.n AS points, a.m AS points_at, i.n AS incidents, i.m AS incidents_at FROM"
    " (SELECT count(*) AS n,"
    "   coalesce((extract(epoch FROM max(greatest(updated_at, scored_at))) * 1000000)::bigint, 0) AS m"
    "   FROM aggregated_metrics WHERE metric_name = $1 AND series = $2"
    "   AND metric_timestamp >= to_timestamp($3::bigint) AND metric_timestamp <= to_timestamp($4::bigint)) a,"
    " (SELECT count(*) AS n, coalesce((extract(epoch FROM max(updated_at)) * 1000000)::bigint, 0) AS m"
    "   FROM incidents WHERE metric_name = $1 AND started_at <= to_timestamp($4::bigint)"
    "   AND coalesce(resolved_at, 'infinity') >= to_timestamp($3::bigint)) i",
    4,
};

static const bp_db_stmt_t series_stmt = {
    "bp_render_series_exists",
    "SELECT EXISTS (SELECT 1 FROM metric_series WHERE metric_name = $1 AND series = $2)"
    " OR EXISTS (SELECT 1 FROM aggregated_metrics WHERE metric_name = $1 AND series = $2) AS found",
    2,
};

static const bp_db_stmt_t incident_stmt = {
    "bp_render_incident",
    "SELECT id, metric_name, series, status, method, summary,"
    " extract(epoch FROM started_at)::bigint AS started_at,"
    " extract(epoch FROM last_anomaly_at)::bigint AS last_anomaly_at,"
    " extract(epoch FROM peak_timestamp)::bigint AS peak_at,"
    " peak_value, peak_expected,"
    " extract(epoch FROM resolved_at)::bigint AS resolved_at,"
    " extract(epoch FROM opened_at)::bigint AS opened_at,"
    " extract(epoch FROM acknowledged_at)::bigint AS acknowledged_at, context::text AS context"
    " FROM incidents WHERE id = $1::bigint",
    1,
};

/* $5 is sent in binary (bp_db_query_bin): the PDF's bytes as they are. */
static const bp_db_stmt_t report_insert_stmt = {
    "bp_render_report_insert",
    "INSERT INTO incident_reports (incident_id, state, path, bytes, pdf)"
    " VALUES ($1::bigint, $2, $3, $4::int, $5::bytea)"
    " ON CONFLICT (incident_id, state) DO NOTHING",
    5,
};

static const bp_db_stmt_t report_get_stmt = {
    "bp_render_report_get",
    "SELECT state, path, bytes FROM incident_reports WHERE incident_id = $1::bigint AND state = $2",
    2,
};

/* "Latest" is by creation; on a tie (one transaction) 'resolved' sorts after 'opened'. */
static const bp_db_stmt_t report_latest_stmt = {
    "bp_render_report_latest",
    "SELECT state, path, bytes FROM incident_reports WHERE incident_id = $1::bigint"
    " ORDER BY created_at DESC, state DESC LIMIT 1",
    1,
};

/* Read in binary (the only column is the bytea): the bytes as they are, not hex text. */
static const bp_db_stmt_t report_pdf_stmt = {
    "bp_render_report_pdf",
    "SELECT pdf FROM incident_reports WHERE incident_id = $1::bigint AND state = $2 AND pdf IS NOT NULL",
    2,
};

static double num_col(const PGresult *res, int row, int col, bool *valid)
{
    *valid = col >= 0 && !PQgetisnull(res, row, col);
    return *valid ? strtod(PQgetvalue(res, row, col), NULL) : NAN;
}

int bp_store_load_points(bp_db_t *db, const char *metric, const char *series, int64_t from, int64_t to,
                         bp_chart_point_t **out, size_t *num, bp_err_t *err)
{
    char from_s[24], to_s[24], limit_s[16];
    snprintf(from_s, sizeof(from_s), "%lld", (long long)from);
    snprintf(to_s, sizeof(to_s), "%lld", (long long)to);
    snprintf(limit_s, sizeof(limit_s), "%d", BP_STORE_MAX_POINTS);
    const char *params[] = {metric, series != NULL ? series : "", from_s, to_s, limit_s};
    *out = NULL;
    *num = 0;
    PGresult *res = NULL;
    int rc = bp_db_query(db, &points_stmt, params, &res, err);
    if (rc != 0)
        return rc;
    int rows = PQntuples(res);
    if (rows == 0) {
        PQclear(res);
        return 0;
    }
    bp_chart_point_t *pts = malloc(sizeof(*pts) * (size_t)rows);
    if (pts == NULL) {
        PQclear(res);
        return bp_err_set(err, BP_ENOMEM, "out of memory for %d points", rows);
    }
    /* Column numbers once, not per row: this loop runs for every point of a week of minutes. */
    int c_ts = PQfnumber(res, "ts"), c_val = PQfnumber(res, "metric_value"),
        c_anom = PQfnumber(res, "is_anomaly"), c_exp = PQfnumber(res, "expected"),
        c_lo = PQfnumber(res, "lower_bound"), c_hi = PQfnumber(res, "upper_bound"),
        c_learn = PQfnumber(res, "learning");
    size_t n = 0;
    for (int i = 0; i < rows; i++) {
        if (PQgetisnull(res, i, c_ts))
            continue;
        bp_chart_point_t *p = &pts[n++];
        bool v_lo, v_hi, valid;
        p->t = strtoll(PQgetvalue(res, i, c_ts), NULL, 10);
        p->value = num_col(res, i, c_val, &valid); /* NULL: a ratio with no denominator */
        p->expected = num_col(res, i, c_exp, &p->has_expected);
        p->lower = num_col(res, i, c_lo, &v_lo);
        p->upper = num_col(res, i, c_hi, &v_hi);
        p->has_band = v_lo && v_hi;
        p->anomaly = !PQgetisnull(res, i, c_anom) && PQgetvalue(res, i, c_anom)[0] == 't';
        p->learning = !PQgetisnull(res, i, c_learn) && PQgetvalue(res, i, c_learn)[0] == 't';
    }
    PQclear(res);
    *out = pts;
    *num = n;
    return 0;
}

static char *dup_col(const PGresult *res, const char *col)
{
    const char *v = bp_db_text(res, 0, col);
    return strdup(v != NULL ? v : "");
}

int bp_store_load_incident(bp_db_t *db, long long id, bp_store_incident_t *inc, bp_err_t *err)
{
    char id_s[24];
    snprintf(id_s, sizeof(id_s), "%lld", id);
    const char *params[] = {id_s};
    memset(inc, 0, sizeof(*inc));
    PGresult *res = NULL;
    int rc = bp_db_query(db, &incident_stmt, params, &res, err);
    if (rc != 0)
        return rc;
    if (PQntuples(res) != 1) {
        PQclear(res);
        return bp_err_set(err, BP_ENOTFOUND, "incident %lld does not exist", id);
    }
    inc->id = bp_db_int(res, 0, "id");
    inc->metric = dup_col(res, "metric_name");
    inc->series = dup_col(res, "series");
    inc->status = dup_col(res, "status");
    inc->method = dup_col(res, "method");
    inc->summary = dup_col(res, "summary");
    inc->started_at = bp_db_int(res, 0, "started_at");
    inc->last_anomaly_at = bp_db_int(res, 0, "last_anomaly_at");
    inc->peak_at = bp_db_int(res, 0, "peak_at");
    inc->peak_value = bp_db_double(res, 0, "peak_value");
    inc->peak_expected = bp_db_double(res, 0, "peak_expected"); /* NAN when NULL */
    inc->resolved_at = bp_db_int(res, 0, "resolved_at");        /* 0 when NULL */
    inc->opened_at = bp_db_int(res, 0, "opened_at");
    inc->acknowledged_at = bp_db_int(res, 0, "acknowledged_at");
    inc->context = dup_col(res, "context");
    PQclear(res);
    if (inc->metric == NULL || inc->series == NULL || inc->status == NULL || inc->method == NULL ||
        inc->summary == NULL || inc->context == NULL) {
        bp_store_incident_clear(inc);
        return bp_err_set(err, BP_ENOMEM, "out of memory loading incident %lld", id);
    }
    return 0;
}

void bp_store_incident_clear(bp_store_incident_t *inc)
{
    if (inc == NULL)
        return;
    free(inc->metric);
    free(inc->series);
    free(inc->status);
    free(inc->method);
    free(inc->summary);
    free(inc->context);
    memset(inc, 0, sizeof(*inc));
}

int bp_store_insert_report(bp_db_t *db, long long incident_id, const char *state, const char *path,
                           const void *pdf, size_t len, bool *added, bp_err_t *err)
{
    /* The int column and libpq's int lengths: BP_RENDER_PDF_MAX keeps reports far below. */
    if (len > INT_MAX)
        return bp_err_set(err, BP_ETOOBIG, "the report of incident %lld is too large to store", incident_id);
    char id_s[24], bytes_s[24];
    snprintf(id_s, sizeof(id_s), "%lld", incident_id);
    snprintf(bytes_s, sizeof(bytes_s), "%zu", len);
    const char *params[] = {id_s, state, path, bytes_s, pdf};
    const int lengths[] = {0, 0, 0, 0, (int)len};
    const int formats[] = {BP_DB_TEXT, BP_DB_TEXT, BP_DB_TEXT, BP_DB_TEXT, BP_DB_BINARY};
    PGresult *res = NULL;
    int rc = bp_db_query_bin(db, &report_insert_stmt, params, lengths, formats, BP_DB_TEXT, &res, err);
    if (rc != 0)
        return rc;
    if (added != NULL)
        *added = strcmp(PQcmdTuples(res), "1") == 0;
    PQclear(res);
    return 0;
}

int bp_store_find_report(bp_db_t *db, long long incident_id, const char *state, bp_store_report_t *out,
                         bp_err_t *err)
{
    char id_s[24];
    snprintf(id_s, sizeof(id_s), "%lld", incident_id);
    const char *params[] = {id_s, state};
    memset(out, 0, sizeof(*out));
    PGresult *res = NULL;
    int rc = bp_db_query(db, state != NULL ? &report_get_stmt : &report_latest_stmt, params, &res, err);
    if (rc != 0)
        return rc;
    if (PQntuples(res) == 0) {
        PQclear(res);
        return 0;
    }
    const char *s = bp_db_text(res, 0, "state"), *p = bp_db_text(res, 0, "path");
    int found = 1;
    if (s == NULL || p == NULL || strlen(s) >= sizeof(out->state) || strlen(p) >= sizeof(out->path)) {
        found = bp_err_set(err, BP_ETOOBIG, "stored report of incident %lld does not fit", incident_id);
    } else {
        memcpy(out->state, s, strlen(s) + 1);
        memcpy(out->path, p, strlen(p) + 1);
        out->bytes = (size_t)bp_db_int(res, 0, "bytes");
    }
    PQclear(res);
    return found;
}

int bp_store_load_report_pdf(bp_db_t *db, long long incident_id, const char *state, bp_buf_t *out,
                             bp_err_t *err)
{
    char id_s[24];
    snprintf(id_s, sizeof(id_s), "%lld", incident_id);
    const char *params[] = {id_s, state};
    PGresult *res = NULL;
    int rc = bp_db_query_bin(db, &report_pdf_stmt, params, NULL, NULL, BP_DB_BINARY, &res, err);
    if (rc != 0)
        return rc;
    int found = 0;
    int col = PQfnumber(res, "pdf");
    if (PQntuples(res) == 1 && col >= 0 && !PQgetisnull(res, 0, col)) {
        found = 1;
        rc = bp_buf_append(out, PQgetvalue(res, 0, col), (size_t)PQgetlength(res, 0, col));
        if (rc != 0)
            found = bp_err_set(err, rc, "the report of incident %lld is too large to load", incident_id);
    }
    PQclear(res);
    return found;
}

int bp_store_load_spans(bp_db_t *db, const char *metric, int64_t from, int64_t to, int64_t now,
                        bp_store_span_t **out, size_t *num, bp_err_t *err)
{
    char from_s[24], to_s[24], limit_s[16];
    snprintf(from_s, sizeof(from_s), "%lld", (long long)from);
    snprintf(to_s, sizeof(to_s), "%lld", (long long)to);
    snprintf(limit_s, sizeof(limit_s), "%d", BP_STORE_MAX_SPANS);
    const char *params[] = {metric, from_s, to_s, limit_s};
    *out = NULL;
    *num = 0;
    PGresult *res = NULL;
    int rc = bp_db_query(db, &spans_stmt, params, &res, err);
    if (rc != 0)
        return rc;
    int rows = PQntuples(res);
    bp_store_span_t *spans = rows > 0 ? calloc((size_t)rows, sizeof(*spans)) : NULL;
    if (rows > 0 && spans == NULL) {
        PQclear(res);
        return bp_err_set(err, BP_ENOMEM, "out of memory for %d incidents", rows);
    }
    for (int i = 0; i < rows; i++) {
        bp_store_span_t *s = &spans[i];
        s->id = bp_db_int(res, i, "id");
        s->open = strcmp(bp_db_text(res, i, "open"), "t") == 0;
        s->from = bp_db_int(res, i, "started_at");
        s->to = s->open || bp_db_isnull(res, i, "resolved_at") ? now : bp_db_int(res, i, "resolved_at");
        snprintf(s->label, sizeof(s->label), "#%lld %s", s->id, s->open ? "open" : "resolved");
    }
    PQclear(res);
    *out = spans;
    *num = (size_t)rows;
    return 0;
}

int bp_store_chart_version(bp_db_t *db, const char *metric, const char *series, int64_t from, int64_t to,
                           char *out, size_t outsz, bp_err_t *err)
{
    char from_s[24], to_s[24];
    snprintf(from_s, sizeof(from_s), "%lld", (long long)from);
    snprintf(to_s, sizeof(to_s), "%lld", (long long)to);
    const char *params[] = {metric, series != NULL ? series : "", from_s, to_s};
    PGresult *res = NULL;
    int rc = bp_db_query(db, &version_stmt, params, &res, err);
    if (rc != 0)
        return rc;
    snprintf(out, outsz, "%lld:%lld:%lld:%lld", bp_db_int(res, 0, "points"), bp_db_int(res, 0, "points_at"),
             bp_db_int(res, 0, "incidents"), bp_db_int(res, 0, "incidents_at"));
    PQclear(res);
    return 0;
}

int bp_store_series_exists(bp_db_t *db, const char *metric, const char *series, bp_err_t *err)
{
    const char *params[] = {metric, series};
    PGresult *res = NULL;
    int rc = bp_db_query(db, &series_stmt, params, &res, err);
    if (rc != 0)
        return rc;
    int found = bp_db_bool(res, 0, "found");
    PQclear(res);
    return found;
}
