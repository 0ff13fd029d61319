/*
 * scan: computes every metric of a group over one window in a single pass over the events.
 *
 * PostgreSQL reads the window's events once (an index range scan on event_timestamp) and
 * returns per event only what some metric of the group needs: its type, its timestamp, the
 * payload fields used as dimensions or distinct values, sum fields already normalised to
 * numeric text (numbers and numeric strings; anything else is NULL and does not count) and
 * one boolean per filter (`payload @> filter`, so containment keeps PostgreSQL's meaning). The
 * counting, summing (exactly, decsum.h), distinct sets and dimension keys are done here, in C,
 * for every metric at once: per-metric SQL read the same rows once per metric.
 *
 * The window is read in chunks of whole intervals sized to about 100 k events, so a day's
 * catch-up batch never holds a day of events in one libpq result. When there is more than one
 * chunk, a second thread (internal, joined before bp_scan_run returns) accumulates chunk k
 * while PostgreSQL produces chunk k+1. A scan row's columns are read by position: they are
 * the plan's (type, timestamp, then one per planned column), not names.
 *
 * All metrics of a group share the window and interval. Accumulators are keyed by (series,
 * interval); series id 0 is the total (''). bp_scan_t owns everything it points to except
 * the metrics (the config's); bp_scan_free releases it.
 */
#ifndef BP_SCAN_H
#define BP_SCAN_H

#include <stdint.h>

#include "config.h"
#include "counts.h"
#include "db/conn.h"
#include "decsum.h"
#include "err.h"
#include "table.h"

typedef struct st_bp_acc_t {
    uint64_t rows;     /* events of the metric's event types with this key, filters aside */
    uint64_t a, b;     /* events matching selector A (the metric's; a ratio's numerator), B (denominator) */
    uint64_t distinct; /* distinct non-null field values among the A events */
    bp_decsum_t sum;   /* of the field over the A events */
} bp_acc_t;

typedef struct st_bp_scan_metric_t {
    const bp_metric_t *m;
    bp_strtab_t series; /* dimension keys, "country=DE,platform=ios"; id 0 = '' */
    bp_u64map_t index;  /* (series << 32 | interval) -> accumulator */
    bp_acc_t *accs;
    uint32_t *acc_series, *acc_interval;
    uint32_t num_accs, cap_accs;
    uint32_t *total_acc; /* by interval: the total's accumulator (UINT32_MAX: none yet) */
    uint32_t num_intervals;
    bp_u64map_t values; /* distinct: (accumulator << 32 | value id) */
    /* where its inputs are in a scan row (-1: not used) */
    int a_type, b_type, a_filter, b_filter, field_col, dim_cols[BP_CONFIG_MAX_DIMENSIONS];
} bp_scan_metric_t;

typedef struct st_bp_scan_t {
    int64_t from, to; /* epoch s, aligned to interval_s */
    int interval_s;
    bp_scan_metric_t *metrics;
    size_t num_metrics;
    bp_strtab_t types;   /* the group's event types */
    bp_strtab_t values;  /* distinct values, shared by the group's metrics */
    uint64_t events;     /* read so far (against max_events) */
    bp_counts_t tally;   /* events per (type, minute) the caller asked for (bp_counts_want and
                          * bp_counts_zero before bp_scan_run), counted from the rows read */
    uint64_t max_events; /* bp_scan_run stops after the chunk that reaches it (0: no limit) */
} bp_scan_t;

/* Sets up a scan of metrics[0..n) (same interval) over [from, to). 0 or BP_ENOMEM. */
int bp_scan_init(bp_scan_t *scan, const bp_metric_t *const *metrics, size_t n, int64_t from, int64_t to,
                 bp_err_t *err);

/* Reads the window's events and accumulates every metric. cfg is the whole configuration: the
 * statement's columns come from it, so its text is the same for every group and round (one
 * prepared statement per connection). Stops after the chunk that reaches max_events (whole
 * chunks, whole intervals) and then moves scan->to back to where it stopped: the caller's window ends
 * there, and the next round continues (memory and time of a round stay bounded however dense
 * the events). 0, or the database's error. */
int bp_scan_run(bp_db_t *db, const bp_config_t *cfg, bp_scan_t *scan, bp_err_t *err);

/* Folds every series s of sm with keep[s] false into 'other' (merging sums and distinct sets).
 * keep has sm->series.n entries. 0 or BP_ENOMEM. */
int bp_scan_fold(bp_scan_metric_t *sm, const bool *keep, bp_err_t *err);

/* The accumulator of (series, interval), or NULL when no event landed there. */
const bp_acc_t *bp_scan_acc(const bp_scan_metric_t *sm, uint32_t series, uint32_t interval);

void bp_scan_free(bp_scan_t *scan);

#endif
