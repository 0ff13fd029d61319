/*
 * counts: per-minute event counts, which tell a tick what in its lateness window changed.
 *
 * A tick must account for late events anywhere in (watermark − lateness, watermark). Reading
 * every event of that window again on each tick costs most of a tick; counting them does not:
 * the (event_type, event_timestamp) index answers a count per (type, minute) without touching
 * the rows. Each metric keeps, with its watermark, the counts of each of its event types per
 * minute of the window as they were when it was last aggregated (metric_watermarks.counts),
 * and a key of its definition (bp_counts_key). The next tick measures the counts again and
 * recomputes only from the first minute where one moved: an event inserted late, deleted, or
 * moved to another type or minute moves one. What leaves every count as it was is not seen: a
 * payload rewritten in place, or an event deleted and another of the same type inserted in
 * the same minute between two ticks (business events are an append-only log; for a table
 * corrected in place, BIZPULSE_AGG_RESCAN=all recomputes the whole window every tick, and
 * `backfill` recomputes any range). A changed definition changes the key, and the whole
 * window is recomputed once.
 *
 * The counts stored with a watermark come from two places, neither newer than the data it
 * vouches for: minutes the round recomputed are tallied by the scan itself, from the rows it
 * aggregated (bp_counts_add, on the scan's consumer thread); minutes it skipped were measured
 * at the round's start and found unchanged since the data was last aggregated
 * (bp_counts_measure).
 *
 * Stored form: one bigint[] per metric, type-major (every minute of its first type, then of its
 * second, in bp_config_metric_types order). bp_counts_t owns its arrays; a zeroed one is empty
 * and bp_counts_free releases it. Minutes are epoch seconds, multiples of 60.
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

typedef struct st_bp_counts_want_t {
    uint32_t type;    /* id in types */
    int64_t from, to; /* minutes [from, to) */
} bp_counts_want_t;

typedef struct st_bp_counts_t {
    bp_counts_want_t *wants; /* what bp_counts_measure counts */
    size_t num_wants, cap_wants;
    bp_strtab_t types; /* the types counted */
    int64_t *minutes;  /* wanted, then (after _measure or _zero) sorted and distinct */
    size_t num_minutes, cap_minutes;
    int64_t *n; /* after _measure or _zero: n[type * num_minutes + minute index]; -1 unknown */
} bp_counts_t;

/* Asks for the counts of m's event types over the minutes of [from, to). 0 or BP_ENOMEM. */
int bp_counts_want(bp_counts_t *c, const bp_metric_t *m, int64_t from, int64_t to, bp_err_t *err);

/* Counts every wanted (type, minute) in one statement (nothing when nothing is wanted). 0,
 * BP_ENOMEM, BP_ETOOBIG (too many to send) or the database's error. */
int bp_counts_measure(bp_db_t *db, bp_counts_t *c, bp_err_t *err);

/* Sets every wanted (type, minute) to 0, for tallying with bp_counts_add. 0 or BP_ENOMEM. */
int bp_counts_zero(bp_counts_t *c, bp_err_t *err);

/* Counts one event of type [type, type + len) at epoch second t, when that (type, minute) is
 * wanted. */
void bp_counts_add(bp_counts_t *c, const char *type, size_t len, int64_t t);

/* The events of type in the minute starting at t into *out; false when not counted (or c is
 * NULL). */
bool bp_counts_get(const bp_counts_t *c, const char *type, int64_t t, int64_t *out);

/* Appends m's counts over [from, to) in the stored form ("{12,0,7,3,1,0}"), the minutes before
 * split from before and the others from after, and sets *counted; when a minute was not counted
 * there, appends nothing and sets it false. 0, or BP_ENOMEM / BP_ETOOBIG from out. */
int bp_counts_literal(const bp_counts_t *before, const bp_counts_t *after, int64_t split,
                      const bp_metric_t *m, int64_t from, int64_t to, bp_buf_t *out, bool *counted);

/* What m's stored points depend on besides the events (kind, types, filters, field,
 * dimensions, interval, series cap), as a number stored with the counts. */
int64_t bp_counts_key(const bp_metric_t *m);

/* Parses a stored bigint[] literal of counts into a new array (*out, caller frees; *len
 * items). BP_EINVAL when it is not one, BP_ENOMEM. */
int bp_counts_parse(const char *lit, int64_t **out, size_t *len);

void bp_counts_free(bp_counts_t *c);

#endif
