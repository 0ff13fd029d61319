/*
 * prefetch: reads the next catch-up batch's events while the current batch is written.
 *
 * A catch-up round scans a window (scan.h), then writes its points, mostly by COPY: two
 * steps of one PostgreSQL backend, one after the other. The events a round reads do not depend
 * on what rounds write, so the next round's scan can run meanwhile, on a second connection in
 * a thread of its own: PostgreSQL then scans with one core while it writes with the other.
 * The round that follows takes the prefetched scan only if it is for exactly its metrics and
 * window (it still holds their locks then: a metric another replica took in between is
 * skipped, and its prefetch thrown away); otherwise it scans as usual. Only rounds of one
 * group read ahead (one slot), and never the batch that ends at the newest closed interval
 * (read in its own round, so grace keeps its meaning). A catch-up tick holds a second
 * connection meanwhile.
 *
 * A bp_prefetch_t starts zeroed; it owns its connection (opened on first use) and whatever
 * scan is running or waiting; bp_prefetch_free joins and releases all of it. One owner thread.
 */
#ifndef BP_PREFETCH_H
#define BP_PREFETCH_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "config.h"
#include "db/conn.h"
#include "err.h"
#include "scan.h"

typedef struct st_bp_prefetch_t {
    bp_db_t *db;
    const bp_config_t *cfg;
    pthread_t thread;
    bool running;
    const bp_metric_t **ms;
    size_t n;
    int64_t from, to;
    uint64_t max_events;
    bp_scan_t scan;
    int rc;
    bp_err_t err;
} bp_prefetch_t;

/* Starts scanning [from, to) of ms[0..n) in the background (after dropping any earlier one).
 * 0, or BP_ENOMEM/thread failure (then nothing runs and the round scans itself). */
int bp_prefetch_start(bp_prefetch_t *pf, const bp_config_t *cfg, const bp_metric_t *const *ms, size_t n,
                      int64_t from, int64_t to, uint64_t max_events);

/* When the running prefetch is for exactly ms[0..n) over [from, to) and succeeded: waits for
 * it, moves its scan into *out and returns true. Otherwise discards it (if any; a failed one
 * is logged) and returns false: the caller scans itself. A discarded scan is waited for, not
 * cancelled (at most one pass of BIZPULSE_AGG_MAX_EVENTS events). */
bool bp_prefetch_take(bp_prefetch_t *pf, const bp_metric_t *const *ms, size_t n, int64_t from, int64_t to,
                      bp_scan_t *out);

void bp_prefetch_free(bp_prefetch_t *pf);

#endif
