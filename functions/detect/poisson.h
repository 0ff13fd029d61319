/*
 * poisson: the default scoring of count metrics. The expected count of an interval is the
 * median of the same time of day on the previous days (up to BP_POISSON_DAYS; the daily rhythm,
 * and no lag on a morning ramp), scaled by how the last few intervals ran against their own
 * expectations, anomalous ones left out (a quiet holiday or a busy campaign day shifts the level;
 * the scale is clamped to [0.5, 1.5], so an outage never becomes the new normal). The spread is Poisson noise plus the
 * extra, overdispersed variance the series shows: sd = sqrt(μ + φμ²). A point is anomalous when
 * it is BP_POISSON_Z spreads away AND at least 20% (and 3 events) off: a 0 → 1 wiggle at night is
 * not news; a busy series dropping to zero is.
 * Pure functions over arrays: thread-safe.
 */
#ifndef BP_POISSON_H
#define BP_POISSON_H

#include <stddef.h>
#include <stdint.h>

#include "incident.h"

#define BP_POISSON_DAYS 7
#define BP_POISSON_MIN_DAYS 2 /* same-slot values needed before a verdict */
#define BP_POISSON_Z 4.0
#define BP_POISSON_LEVEL_POINTS 6

/* Scores points first..n-1 of the series ts/value (ascending, NAN = no value) into out;
 * hist_n[i] = same-slot days the verdict rested on. Points without enough days are left with
 * verdict false (the caller may fall back to another method for them). Returns 0 or BP_ENOMEM. */
int bp_poisson_score(const int64_t *ts, const double *value, size_t n, size_t first, bp_point_t *out,
                     size_t *hist_n);

#endif
