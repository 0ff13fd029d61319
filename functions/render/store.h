/*
 * store: what render reads from and writes to PostgreSQL (schema in shared/sql/): a metric's
 * points for a chart, an incident row, and the incident_reports records with their PDF bytes.
 * Every statement is parameterised and named; they sit together at the top of store.c.
 *
 * Errors are those of bp_db_query (BP_EDB when the database is unreachable: HTTP 503).
 * Not thread-safe beyond bp_db_t's rule: one connection per thread.
 */
#ifndef BP_RENDER_STORE_H
#define BP_RENDER_STORE_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "chart.h"
#include "db/conn.h"
#include "err.h"

/* Most points one chart query returns: 90 days of minutes fit (129 600). */
#define BP_STORE_MAX_POINTS 200000

/* An incidents row. Strings are malloc'd and owned by the struct (bp_store_incident_clear). */
typedef struct st_bp_store_incident_t {
    long long id;
    char *metric;
    char *series;
    char *status; /* "open" or "resolved" */
    char *method;
    char *summary;
    int64_t started_at;
    int64_t last_anomaly_at;
    int64_t peak_at;
    double peak_value;
    double peak_expected; /* NAN when NULL */
    int64_t resolved_at;  /* 0 when NULL */
    int64_t opened_at;
    int64_t acknowledged_at; /* 0 when NULL */
    char *context;           /* the context JSON text ("" when NULL) */
} bp_store_incident_t;

/* An incident as a span on a chart. */
typedef struct st_bp_store_span_t {
    long long id;
    int64_t from;
    int64_t to; /* resolved_at; for an open incident the `now` given to bp_store_load_spans */
    bool open;
    char label[32]; /* "#12 open", "#12 resolved" */
} bp_store_span_t;

/* Most incident spans one chart shows (the latest ones). */
#define BP_STORE_MAX_SPANS 64

/* Points of one series of the metric ('' is the total) with from <= t <= to, in time order, at
 * most BP_STORE_MAX_POINTS, with the detector's verdict: expected value and band when scored,
 * learning when anomaly_context says so, a NULL value as NaN. On success *out is a malloc'd
 * array (caller frees; NULL when *num is 0). */
int bp_store_load_points(bp_db_t *db, const char *metric, const char *series, int64_t from, int64_t to,
                         bp_chart_point_t **out, size_t *num, bp_err_t *err);

/* The metric's incidents overlapping [from, to], oldest first, at most BP_STORE_MAX_SPANS.
 * *out is malloc'd (caller frees; NULL when *num is 0). */
int bp_store_load_spans(bp_db_t *db, const char *metric, int64_t from, int64_t to, int64_t now,
                        bp_store_span_t **out, size_t *num, bp_err_t *err);

/* A short text that changes whenever what a chart of (metric, series, [from, to]) shows can
 * change: row count and latest update/score time of the points, count and latest update of
 * the overlapping incidents. One indexed aggregate query, no rows transferred: what makes an
 * ETag cheap enough to compute before deciding to draw. out gets at most outsz - 1 bytes. */
int bp_store_chart_version(bp_db_t *db, const char *metric, const char *series, int64_t from, int64_t to,
                           char *out, size_t outsz, bp_err_t *err);

/* 1 when the metric has (or had) the dimension series, 0 when not. */
int bp_store_series_exists(bp_db_t *db, const char *metric, const char *series, bp_err_t *err);

/* Loads incident id into inc. BP_ENOTFOUND when there is no such row. On failure inc holds
 * nothing to free. */
int bp_store_load_incident(bp_db_t *db, long long id, bp_store_incident_t *inc, bp_err_t *err);

void bp_store_incident_clear(bp_store_incident_t *inc); /* NULL-safe; frees the strings */

/* Records the report of (incident, state): where this replica caches it (path) and its bytes
 * (pdf, len), the copy every replica reads (migration 004). A record already there is kept (the
 * first writer wins; a concurrent writer's INSERT waits for that commit and adds nothing).
 * *added (may be NULL) says whether this call added it. */
int bp_store_insert_report(bp_db_t *db, long long incident_id, const char *state, const char *path,
                           const void *pdf, size_t len, bool *added, bp_err_t *err);

/* A stored report's record, without its bytes. */
typedef struct st_bp_store_report_t {
    char state[16];      /* "opened", "resolved" */
    char path[PATH_MAX]; /* where the replica that built it cached it: maybe not this pod */
    size_t bytes;        /* the PDF's size */
} bp_store_report_t;

/* The record of (incident, state), or with state NULL the latest one of the incident. Returns
 * 1 and fills *out when found, 0 when there is none; BP_ETOOBIG when a stored value does not
 * fit *out. Reads no PDF bytes. */
int bp_store_find_report(bp_db_t *db, long long incident_id, const char *state, bp_store_report_t *out,
                         bp_err_t *err);

/* Appends the stored PDF of (incident, state) to out (whose ceiling bounds it). Returns 1 when
 * appended, 0 when there is no such report or it has no bytes (recorded before migration 004:
 * only its file exists); BP_ETOOBIG/BP_ENOMEM (out unchanged) or bp_db_query's errors. */
int bp_store_load_report_pdf(bp_db_t *db, long long incident_id, const char *state, bp_buf_t *out,
                             bp_err_t *err);

#endif
