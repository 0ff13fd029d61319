/*
 * detect: handles one dev.bizpulse.metrics.aggregated.v1 event (DESIGN §6 detect): scores the
 * metric's points in the event's window with the 3σ rule, stores each verdict on its row
 * (is_anomaly, anomaly_score, expected, lower/upper bound, method, anomaly_context JSON), and
 * drives the metric's incident (incident.h) — all in one transaction together with the dedup
 * claim of the event, so a redelivered event changes nothing and emits nothing.
 */
#ifndef BP_DETECT_H
#define BP_DETECT_H

#include <stdint.h>

#include "app.h"
#include "buf.h"
#include "cloudevents.h"
#include "err.h"

typedef struct st_bp_detect_options_t {
    int64_t now;
    int64_t alert_window_s; /* anomalies older than now − this are recorded but open nothing */
    int min_anomalies;      /* anomalous points among the last open_span needed to open */
    int open_span;
    int resolve_after;  /* normal points after the last anomaly that resolve an incident */
    double z_alert;     /* ratio metrics: |z| that makes a point anomalous (default 5) */
    const char *source; /* CloudEvents source of the incident events */
    const char *method; /* set per metric by bp_detect_handle, for the incident's summary */
} bp_detect_options_t;

typedef struct st_bp_detect_range_t {
    int64_t from, to; /* epoch s; points with from <= ts < to are scored */
} bp_detect_range_t;

struct st_bp_point_t;
struct st_bp_metric_t;
struct st_bp_db_t;

/* Loads the total series over the range plus the history the method needs, scores every point
 * of the range into *out (*n points, malloc'd, with *hist_n the history each rested on; the
 * caller frees both), and copies into prior[0..*nprior) (room for BP_EPISODE_SPAN_MAX) the
 * stored verdicts of the points just before the range. Writes nothing. BP_EDB, BP_ETOOBIG. */
int bp_detect_score_range(struct st_bp_db_t *db, const struct st_bp_metric_t *m, int method, double z_alert,
                          const bp_detect_range_t *r, struct st_bp_point_t **out, size_t **hist_n, size_t *n,
                          struct st_bp_point_t *prior, size_t *nprior, bp_err_t *err);

/* Reads BIZPULSE_DETECT_* env into opts (now = current time). */
int bp_detect_options_from_env(bp_detect_options_t *opts, bp_err_t *err);

/* Handles ev. Appends the JSON response body to out. Returns 0 (also for a duplicate, with
 * "status":"duplicate"), BP_EINVAL (bad data), BP_ENOTFOUND (unknown metric), BP_EDB. */
int bp_detect_handle(bp_worker_t *w, const bp_ce_t *ev, const bp_detect_options_t *opts, bp_buf_t *out,
                     bp_err_t *err);

#endif
