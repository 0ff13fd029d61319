/*
 * aggregate: turns business_events into per-interval metric points (DESIGN §6 aggregate).
 *
 * For each declared metric, under a per-metric advisory lock (so N replicas never do the same
 * work, and a metric another replica holds is skipped, not waited for): every closed interval
 * from (watermark − lateness) to (now − grace) is accounted for: the new ones are computed,
 * and those behind the watermark are recomputed from the first minute whose per-type event
 * count moved since they were aggregated (counts.h; all of them with rescan_all); only points
 * that changed are written; the watermark advances; and when something changed, a
 * dev.bizpulse.metrics.aggregated.v1 event goes into the outbox in the same transaction, naming
 * the changed range and the revised windows (intervals that had a different value before,
 * e.g. because late events arrived). Event rows are never written.
 *
 * A tick works in rounds, each one transaction for every metric not caught up yet: try-lock
 * them all and read their watermarks (one round trip each), count the lateness windows of
 * those whose counts can be compared (one more), then give every locked metric a
 * batch of at most BP_AGG_BATCH_INTERVALS intervals. Metrics whose batches share interval and
 * window (all of them, in a steady tick) are computed together: one pass over their events
 * (scan.h), the cardinality cap, one comparison with what is stored and one write (points.h).
 * Then their watermarks advance in one statement and the round commits. No new round starts
 * after budget_ms: the next tick continues from the watermarks. Backfill recomputes a given
 * range of one metric through the same code, without moving the watermark.
 *
 * A round commits or fails as a whole: a database error in it leaves every metric where it was
 * (the next tick redoes the round). Nothing in a round depends on one metric's data alone
 * failing: payload values are cut to a bounded key length (scan.h) before they reach an index.
 */
#ifndef BP_AGGREGATE_H
#define BP_AGGREGATE_H

#include <stdint.h>

#include "app.h"
#include "buf.h"
#include "config.h"
#include "err.h"

#define BP_AGG_BATCH_INTERVALS 1440

typedef struct st_bp_agg_options_t {
    int64_t now;          /* epoch seconds; "now" of this tick */
    int64_t grace_s;      /* an interval is closed once now − grace passes its end */
    int64_t lateness_s;   /* how far behind the watermark late events still count */
    int64_t lookback_s;   /* first run: how far back to start at most */
    int64_t series_ttl_s; /* dimension series without events for this long are no longer zero-filled */
    int64_t budget_ms;    /* stop starting new batches after this long; the next tick continues */
    int64_t max_events;   /* events one pass reads at most (a batch ends early beyond them) */
    int64_t max_points;   /* points one pass lays out at most (series x intervals; likewise) */
    bool rescan_all;      /* recompute the whole lateness window every tick, not only from where
                           * counts.h sees a change (for an event table edited in place) */
    const char *trigger;  /* "scheduler:<job>@<time>", "ping:<id>", "run", "cli"; recorded in events */
} bp_agg_options_t;

/* Reads BIZPULSE_AGG_GRACE_S, _LATENESS_S, _LOOKBACK_S, _SERIES_TTL_S, _BUDGET_MS, _MAX_EVENTS,
 * _MAX_POINTS and _RESCAN (changed | all) into opts (now = current time, trigger = NULL).
 * BP_ECONFIG on a bad value. */
int bp_agg_options_from_env(bp_agg_options_t *opts, bp_err_t *err);

/* Runs one tick over every metric. Appends a JSON array of per-metric results to out
 * ([{"metric":..,"from":..,"to":..,"intervals":N,"changed":K,...} or {"metric":..,"skipped":..}]).
 * Returns 0, or BP_EDB when the database failed (work committed so far stays committed; a
 * retry continues from the watermark). */
int bp_agg_tick(bp_worker_t *w, const bp_agg_options_t *opts, bp_buf_t *out, bp_err_t *err);

/* Recomputes metric m over [from, to) (aligned outward to its interval) in batches, emitting
 * events for what changed; the watermark is left alone. Appends one JSON result object to out.
 * BP_EBUSY when another replica holds the metric (retry later), BP_EINVAL for a bad range. */
int bp_agg_backfill(bp_worker_t *w, const bp_metric_t *m, int64_t from, int64_t to,
                    const bp_agg_options_t *opts, bp_buf_t *out, bp_err_t *err);

#endif
