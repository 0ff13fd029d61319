/*
 * counts: per-minute event counts, which tell a tick what in its lateness window changed.
 *
 * A tick must account for late events anywhere in (watermark − lateness, watermark). Reading
 * every event of that window again on each tick costs most of a tick; counting them does not:
 * the (event_type, event_timestamp) index answers a count per (type, minute) without touching
 * the rows. Each metric keeps, with its watermark, the counts of its event types per minute of
 * the window as they were when it was last aggregated (metric_watermarks.counts). The next tick
 * measures them again and recomputes only from the first minute whose count moved: an event
 * inserted late, deleted, or moved to another type or minute changes a count. An event whose
 * payload is rewritten in place does not (business events are an append-only log; `backfill`
 * or BIZPULSE_AGG_RESCAN=all cover a table that is edited).
 *
 * The counts stored with a watermark come from two places, neither newer than the data it
 * vouches for: minutes the round recomputed are tallied by the scan itself, from the rows it
 * aggregated (bp_counts_add); minutes it skipped were measured at the round's start and found
 * unchanged since the data was last aggregated (bp_counts_measure).
 *
 * bp_counts_t owns its arrays; bp_counts_free releases them. Minutes are epoch seconds,
 * multiples of 60.
 */
#ifndef BP_COUNTS_H
#define BP_COUNTS_H

#include <stdbool.h>
#include <stdint.h>

#include "buf.h"
#include "config.h"
#include "db/conn.h"
#include "err.h"
#include "table.h"

typedef struct st_bp_counts_t {
    bp_strtab_t types; /* the types measured */
    int64_t *minutes;  /* wanted, then (after bp_counts_measure) sorted and distinct */
    size_t num_minutes, cap_minutes;
    int64_t *n; /* after bp_counts_measure: n[type * num_minutes + minute index] */
} bp_counts_t;

/* Asks for the counts of m's event types over the minutes of [from, to). 0 or BP_ENOMEM. */
int bp_counts_want(bp_counts_t *c, const bp_metric_t *m, int64_t from, int64_t to, bp_err_t *err);

/* Counts every wanted (type, minute) in one statement (nothing when nothing is wanted). 0 or
 * the database's error. */
int bp_counts_measure(bp_db_t *db, bp_counts_t *c, bp_err_t *err);

/* Sets every wanted (type, minute) to 0, for tallying with bp_counts_add. 0 or BP_ENOMEM. */
int bp_counts_zero(bp_counts_t *c, bp_err_t *err);

/* Counts one event of type [type, type + len) at epoch second t, when that (type, minute) is
 * wanted. */
void bp_counts_add(bp_counts_t *c, const char *type, size_t len, int64_t t);

/* The events of m's types in the minute starting at t into *out; false when not measured
 * (or c is NULL). */
bool bp_counts_get(const bp_counts_t *c, const bp_metric_t *m, int64_t t, int64_t *out);

/* Appends m's counts over [from, to) as a bigint[] literal ("{12,0,7}"), the minutes before
 * split from before and the others from after; false (nothing appended) when a minute was not
 * counted there. BP_ENOMEM through *rc. */
bool bp_counts_literal(const bp_counts_t *before, const bp_counts_t *after, int64_t split,
                       const bp_metric_t *m, int64_t from, int64_t to, bp_buf_t *out, int *rc);

/* Parses a stored bigint[] literal into a new array (*out, caller frees; *len items).
 * BP_EINVAL when it is not one, BP_ENOMEM. */
int bp_counts_parse(const char *lit, int64_t **out, size_t *len);

void bp_counts_free(bp_counts_t *c);

#endif
