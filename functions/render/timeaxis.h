/*
 * timeaxis: where a chart's time ticks go and what they say, in the viewer's time zone. Ticks
 * sit on round local wall-clock times, from seconds to years: 1/5/10/15/30 s, 1/2/5/10/15/30
 * min, 1/2/3/6/12 h (local hours, so across a DST change the repeated hour is labelled twice
 * and the skipped one is absent), days and 2 days (local midnights), weeks (Mondays), months
 * (1st of 1, 3 or 6 months) and years.
 *
 * Thread-safe: no state.
 */
#ifndef BP_RENDER_TIMEAXIS_H
#define BP_RENDER_TIMEAXIS_H

#include <stdint.h>

#include "tz.h"

#define BP_TIMEAXIS_MAX_TICKS 48
#define BP_TIMEAXIS_LABEL 32

typedef struct st_bp_timeaxis_tick_t {
    int64_t t;
    char line1[BP_TIMEAXIS_LABEL]; /* "14:00", "Nov 25", "Nov", "2026" */
    char line2[BP_TIMEAXIS_LABEL]; /* context under it where it changes ("Nov 25, 2026"); may be "" */
} bp_timeaxis_tick_t;

typedef struct st_bp_timeaxis_t {
    bp_timeaxis_tick_t ticks[BP_TIMEAXIS_MAX_TICKS];
    int num_ticks;
    int64_t step_s; /* nominal step in seconds (a month counts 30 days) */
} bp_timeaxis_t;

/* Ticks for [from, to] in tz (NULL: UTC), at most about max_labels of them (a DST fall-back
 * may add one). from < to. */
void bp_timeaxis_build(const bp_tz_t *tz, int64_t from, int64_t to, int max_labels, bp_timeaxis_t *out);

#endif
