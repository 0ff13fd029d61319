/*
 * series: a metric's dimension series, kept in metric_series. Two jobs: zero-filling series
 * that went quiet (a dimension value dropping to zero is a drop, not a gap) and the per-metric
 * cardinality cap (a dimension such as user_id must not create a million series: series beyond
 * max_series are folded into 'other').
 *
 * A bp_series_set_t owns its strings; bp_series_clear frees them. Not thread-safe.
 */
#ifndef BP_SERIES_H
#define BP_SERIES_H

#include <stdbool.h>
#include <stdint.h>

#include "db/conn.h"
#include "err.h"

#define BP_SERIES_OTHER "other"

typedef struct st_bp_series_set_t {
    char **names; /* sorted, for bsearch */
    int64_t *last_seen;
    size_t n;
} bp_series_set_t;

/* Loads the registered series of each of metrics[0..n) into out[0..n), in one query. */
int bp_series_load(bp_db_t *db, const char *const *metrics, size_t n, bp_series_set_t *out, bp_err_t *err);

bool bp_series_has(const bp_series_set_t *set, const char *name);

/* Records that series names[i] of metrics[i] (i < n) had events up to `seen` (epoch s),
 * registering new ones, in one statement. */
int bp_series_touch(bp_db_t *db, const char *const *metrics, const char *const *names, size_t n, int64_t seen,
                    bp_err_t *err);

void bp_series_clear(bp_series_set_t *set);

#endif
