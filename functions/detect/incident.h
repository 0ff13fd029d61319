/*
 * incident: one metric's incident lifecycle, driven by scored points (DESIGN §6): open when
 * enough recent evidence exists and no incident is open (the database allows one open
 * incident per metric), track the peak while it lasts, resolve after a run of normal points.
 * A re-scored range (a late window, revised data) replays episodes already told: one that
 * overlaps a resolved incident continues it, with no second opened or resolved event.
 * Every state change queues its CloudEvent (dev.bizpulse.incident.opened.v1 /
 * .resolved.v1, id "incident/<id>/<state>") in the outbox, inside the caller's transaction.
 */
#ifndef BP_INCIDENT_H
#define BP_INCIDENT_H

#include <stdbool.h>
#include <stdint.h>

#include "config.h"
#include "db/conn.h"
#include "detect.h"
#include "err.h"

/* One scored point, as the lifecycle needs it. */
typedef struct st_bp_point_t {
    int64_t ts;
    double value;
    bool verdict;
    bool anomaly;
    double expected, lower, upper, score;
    /* Set when the pooled test of the last drift_n intervals (a sustained drift, score.h), not
     * the point alone, made it anomalous: their mean value was drift_actual against
     * drift_expected. */
    bool drift;
    int drift_n;
    double drift_actual, drift_expected;
} bp_point_t;

typedef struct st_bp_incident_change_t {
    long long id;      /* 0 when nothing changed */
    const char *state; /* "opened", "updated", "resolved" */
} bp_incident_change_t;

/* Applies the points of one scored window (ascending ts) to the metric's incident, through the
 * episode state machine (episode.h). prior[0..nprior) are the stored verdicts just before the
 * window (for the opening rule). Runs inside the caller's transaction, which must hold the
 * metric's detect lock. change says what happened last (opened, updated, resolved, retracted). */
int bp_incident_apply(bp_db_t *db, const bp_metric_t *m, const bp_point_t *prior, size_t nprior,
                      const bp_point_t *pts, size_t n, const bp_detect_options_t *opts,
                      bp_incident_change_t *change, bp_err_t *err);

/* The plain sentence of an incident, e.g. "user_registration fell to 302 (−30% vs 431
 * expected) at 2026-11-25 14:05 UTC; outside the 3σ band 395–467 of the trailing 180 points".
 * Writes into out (NUL-terminated, truncated to outsz). */
void bp_incident_summary(const bp_metric_t *m, const char *method, const bp_point_t *peak, int64_t started,
                         char *out, size_t outsz);

#endif
