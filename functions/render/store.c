#include "store.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Times travel as epoch seconds both ways (to_timestamp / extract(epoch)), so no time zone
 * or text format is involved. */
static const bp_db_stmt_t points_stmt = {
    "bp_render_points",
    "SELECT extract(epoch FROM metric_timestamp)::bigint AS ts, metric_value, is_anomaly"
    " FROM aggregated_metrics"
    " WHERE metric_name = $1 AND series = ''"
    " AND metric_timestamp >= to_timestamp($2::bigint) AND metric_timestamp <= to_timestamp($3::bigint)"
    " ORDER BY metric_timestamp LIMIT $4::int",
    4,
};

static const bp_db_stmt_t incident_stmt = {
    "bp_render_incident",
    "SELECT id, metric_name, series, status, method, summary,"
    " extract(epoch FROM started_at)::bigint AS started_at,"
    " extract(epoch FROM last_anomaly_at)::bigint AS last_anomaly_at,"
    " extract(epoch FROM peak_timestamp)::bigint AS peak_at,"
    " peak_value, peak_expected,"
    " extract(epoch FROM resolved_at)::bigint AS resolved_at"
    " FROM incidents WHERE id = $1::bigint",
    1,
};

static const bp_db_stmt_t report_insert_stmt = {
    "bp_render_report_insert",
    "INSERT INTO incident_reports (incident_id, state, path, bytes) VALUES ($1::bigint, $2, $3, $4::int)"
    " ON CONFLICT (incident_id, state) DO NOTHING",
    4,
};

static const bp_db_stmt_t report_get_stmt = {
    "bp_render_report_get",
    "SELECT path FROM incident_reports WHERE incident_id = $1::bigint AND state = $2",
    2,
};

/* "Latest" is by creation; on a tie (one transaction) 'resolved' sorts after 'opened'. */
static const bp_db_stmt_t report_latest_stmt = {
    "bp_render_report_latest",
    "SELECT path FROM incident_reports WHERE incident_id = $1::bigint"
    " ORDER BY created_at DESC, state DESC LIMIT 1",
    1,
};

int bp_store_load_points(bp_db_t *db, const char *metric, int64_t from, int64_t to, bp_chart_point_t **out,
                         size_t *num, bp_err_t *err)
{
    char from_s[24], to_s[24], limit_s[16];
    snprintf(from_s, sizeof(from_s), "%lld", (long long)from);
    snprintf(to_s, sizeof(to_s), "%lld", (long long)to);
    snprintf(limit_s, sizeof(limit_s), "%d", BP_STORE_MAX_POINTS);
    const char *params[] = {metric, from_s, to_s, limit_s};
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
        c_anom = PQfnumber(res, "is_anomaly");
    size_t n = 0;
    for (int i = 0; i < rows; i++) {
        if (PQgetisnull(res, i, c_ts) || PQgetisnull(res, i, c_val))
            continue; /* the schema says NOT NULL; a NULL would be nothing to draw anyway */
        pts[n].t = strtoll(PQgetvalue(res, i, c_ts), NULL, 10);
        pts[n].value = strtod(PQgetvalue(res, i, c_val), NULL);
        pts[n].anomaly = !PQgetisnull(res, i, c_anom) && PQgetvalue(res, i, c_anom)[0] == 't';
        n++;
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
    PQclear(res);
    if (inc->metric == NULL || inc->series == NULL || inc->status == NULL || inc->method == NULL ||
        inc->summary == NULL) {
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
    memset(inc, 0, sizeof(*inc));
}

int bp_store_insert_report(bp_db_t *db, long long incident_id, const char *state, const char *path,
                           size_t bytes, bool *added, bp_err_t *err)
{
    char id_s[24], bytes_s[24];
    snprintf(id_s, sizeof(id_s), "%lld", incident_id);
    snprintf(bytes_s, sizeof(bytes_s), "%zu", bytes);
    const char *params[] = {id_s, state, path, bytes_s};
    PGresult *res = NULL;
    int rc = bp_db_query(db, &report_insert_stmt, params, &res, err);
    if (rc != 0)
        return rc;
    if (added != NULL)
        *added = strcmp(PQcmdTuples(res), "1") == 0;
    PQclear(res);
    return 0;
}

int bp_store_find_report(bp_db_t *db, long long incident_id, const char *state, char *path, size_t pathsz,
                         bp_err_t *err)
{
    char id_s[24];
    snprintf(id_s, sizeof(id_s), "%lld", incident_id);
    const char *params[] = {id_s, state};
    PGresult *res = NULL;
    int rc = bp_db_query(db, state != NULL ? &report_get_stmt : &report_latest_stmt, params, &res, err);
    if (rc != 0)
        return rc;
    if (PQntuples(res) == 0) {
        PQclear(res);
        return 0;
    }
    const char *p = bp_db_text(res, 0, "path");
    int found = 1;
    if (p == NULL || strlen(p) >= pathsz)
        found = bp_err_set(err, BP_ETOOBIG, "stored report path of incident %lld is too long", incident_id);
    else
        memcpy(path, p, strlen(p) + 1);
    PQclear(res);
    return found;
}
