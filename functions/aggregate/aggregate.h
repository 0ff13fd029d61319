/*
 * aggregate: turns business_events into per-interval metric points (DESIGN §6 aggregate).
 *
 * For each declared metric, under a per-metric advisory lock (so N replicas never do the same
 * work, and a metric another replica holds is skipped, not waited for): every closed interval
 * from (watermark − lateness) to (now − grace) is recomputed by one SQL statement per batch and
 * upserted; only values that changed are written; the watermark advances; and when something
 * changed, a dev.bizpulse.metrics.aggregated.v1 event goes into the outbox in the same
 * transaction. Event rows are never written (no is_processed UPDATE).
 *
 * The walking skeleton handles kind "count" (with an optional payload filter); other kinds are
 * refused by bp_agg_check_config.
 */
#ifndef BP_AGGREGATE_H
#define BP_AGGREGATE_H

#include <stdint.h>

#include "app.h"
#include "buf.h"
#include "config.h"
#include "err.h"

typedef struct st_bp_agg_options_t {
    int64_t now;         /* epoch seconds; "now" of this tick */
    int64_t grace_s;     /* an interval is closed once now − grace passes its end */
    int64_t lateness_s;  /* how far behind the watermark to re-aggregate for late events */
    int64_t lookback_s;  /* first run: how far back to start at most */
    int64_t budget_ms;   /* stop starting new batches after this long; the next tick continues */
    const char *trigger; /* "scheduler:<job>@<time>", "ping:<id>", "cli"; recorded in events */
} bp_agg_options_t;

/* Reads BIZPULSE_AGG_GRACE_S, _LATENESS_S, _LOOKBACK_S, _BUDGET_MS into opts (now = current
 * time, trigger = NULL). BP_ECONFIG on a bad value. */
int bp_agg_options_from_env(bp_agg_options_t *opts, bp_err_t *err);

/* Refuses metrics this version cannot aggregate yet. BP_ECONFIG naming the metric. */
int bp_agg_check_config(const bp_config_t *cfg, bp_err_t *err);

/* Runs one tick over every metric. Appends a JSON array of per-metric results to out
 * ([{"metric":..,"from":..,"to":..,"intervals":N,"changed":K} or {"metric":..,"skipped":..}]).
 * Returns 0, or BP_EDB when the database failed (work committed so far stays committed; a
 * retry continues from the watermark). */
int bp_agg_tick(bp_worker_t *w, const bp_agg_options_t *opts, bp_buf_t *out, bp_err_t *err);

#endif
