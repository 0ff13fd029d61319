/*
 * poisson: the default scoring of count metrics. The expected count of an interval is the
 * median of the same time of day on the previous days (up to BP_POISSON_DAYS, at least one; the
 * daily rhythm, and no lag on a morning ramp), scaled by how the last few intervals ran against
 * their own expectations, anomalous ones left out (a quiet holiday or a busy campaign day shifts
 * the level; the scale is clamped to [0.5, 1.5], so an outage never becomes the new normal).
 * Quiet series pool: a day's same-slot rate widens to neighbouring slots until it rests on
 * BP_POISSON_SLOT_EVENTS, and the level looks back until BP_POISSON_LEVEL_EVENTS were expected.
 * The spread is Poisson noise plus the overdispersion the series shows plus the uncertainty of
 * the expectation itself (few events, or one day of history, make it wide): variance
 * μ + cμ². A point is anomalous when it is BP_POISSON_Z spreads away (below 30 expected events:
 * the exact negative binomial tail of that variance) AND at least 20% (and 3 events) off: a
 * 0 → 1 wiggle at night is not news; a busy series dropping to zero is. While the series runs
 * beyond the clamp (the level, or the last BP_POISSON_LEVEL_POINTS intervals pooled, below half
 * or above 1.5× of what is expected), the run of such intervals is tested as a whole: a quiet
 * series' outage is news once its sum is (its points carry bp_point_t.drift).
 * Pure functions over arrays: thread-safe.
 */
#ifndef BP_POISSON_H
#define BP_POISSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "incident.h"

#define BP_POISSON_DAYS 7
#define BP_POISSON_MIN_DAYS 1 /* same-slot values needed before a verdict */
#define BP_POISSON_Z 4.0
#define BP_POISSON_LEVEL_POINTS 6          /* the level: these many intervals ... */
#define BP_POISSON_LEVEL_MEDIAN_EVENTS 120 /* ... when they expected this many events ... */
#define BP_POISSON_LEVEL_MAX 60            /* ... or up to this many for a quieter series ... */
#define BP_POISSON_LEVEL_EVENTS 100        /* ... until this many events were expected (±10%) */
#define BP_POISSON_LEVEL_PRIOR 10.0        /* events' worth of "level 1" a quiet level is pulled toward */
#define BP_POISSON_SLOT_EVENTS 20          /* a same-slot rate rests on at least this many events ... */
#define BP_POISSON_SLOT_MIN_W 2            /* ... and at least this many neighbours each side ... */
#define BP_POISSON_SLOT_S 1800             /* ... from at most this far on each side of the slot */
#define BP_POISSON_PHI_POINTS 300          /* overdispersion: from this many points before each */
#define BP_POISSON_PINNED_MAX 60           /* intervals a pinned-level run is summed over, at most */

/* Whether a count x is news against an expected m with relative variance c (variance m + c·m²):
 * BP_POISSON_Z spreads away (the exact tail below 30 expected events) and at least 20% and 3
 * events off. The rule of bp_poisson_score, for methods that bring their own expectation. */
bool bp_poisson_news(double m, double c, double x);

/* Scores points first..n-1 of the series ts/value (ascending, NAN = no value) into out;
 * hist_n[i] = same-slot days the verdict rested on. Points without enough days are left with
 * verdict false (the caller may fall back to another method for them). Returns 0 or BP_ENOMEM. */
int bp_poisson_score(const int64_t *ts, const double *value, size_t n, size_t first, bp_point_t *out,
                     size_t *hist_n);

#endif
