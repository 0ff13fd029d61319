/*
 * rootcause: which dimension values explain an incident's gap (expected − actual) on a metric
 * with dimensions. Each series' expected value during the incident comes from its share of
 * the metric in the 24 hours before the incident (for a ratio: its own rate then, applied to
 * its denominator now), so a series that kept its usual share of a normal dip explains none of
 * it. Series are ranked by their share of the gap; the top one goes into the incident's
 * sentence ("78% of the gap is country=DE, platform=android").
 */
#ifndef BP_ROOTCAUSE_H
#define BP_ROOTCAUSE_H

#include <stdint.h>

#include "buf.h"
#include "config.h"
#include "db/conn.h"
#include "err.h"

#define BP_ROOTCAUSE_TOP 5
#define BP_ROOTCAUSE_BASELINE_S 86400

typedef struct st_bp_contribution_t {
    char series[256];
    double expected, actual, share; /* share of the total gap, in [0, 1] for series that widen it */
} bp_contribution_t;

typedef struct st_bp_rootcause_t {
    bp_contribution_t top[BP_ROOTCAUSE_TOP];
    int n;
    double expected_total, actual_total;
} bp_rootcause_t;

/* Computes the contributions over [from, to) for m (which has dimensions); rc->n is 0 when no
 * series explains anything (no gap, no history). Inside the caller's transaction. */
int bp_rootcause_compute(bp_db_t *db, const bp_metric_t *m, int64_t from, int64_t to, bp_rootcause_t *rc,
                         bp_err_t *err);

/* Appends `"root_cause":[...]` (JSON, without braces) to out. */
int bp_rootcause_json(const bp_rootcause_t *rc, bp_buf_t *out);

/* Appends "; 78% of the gap is country=DE, platform=android" (nothing when rc->n is 0). */
void bp_rootcause_sentence(const bp_rootcause_t *rc, char *out, size_t outsz);

#endif
