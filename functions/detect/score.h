/*
 * score: picks and runs the scoring method of a metric over one series, the code shared by
 * live detection (detect.c), `score --csv` and backtests. Methods (metrics file "method"):
 *   "sigma3"  the original rule, bit-for-bit (sigma3.h);
 *   "ratio"   rate-aware, weighted by the denominator (ratio.h); "auto" for ratio metrics. A
 *             point inside its own band is anomalous too when the last hour's intervals pooled
 *             (BP_SCORE_DRIFT_S, 6 to 60 intervals) left the rate's band on the same side: a
 *             sustained drift (bp_point_t.drift), such as a 10% decline over hours;
 *   "poisson" the count's expected value from the same time on previous days, scaled by the
 *             current level, with Poisson-plus-overdispersion noise (poisson.h); "auto" for count
 *             metrics (until a day is stored, the 3σ rule with a Poisson floor);
 *   "sigma3+poisson" the 3σ rule plus a Poisson noise floor (a move smaller than the count's
 *             own noise, such as 0 → 1, is never an anomaly); "auto" is the plain 3σ rule for sum
 *             and distinct metrics;
 *   "seasonal" (opt-in, experimental) the streaming detector of `score --csv` (detector.h):
 *             time-of-day / day-of-week baselines; a point outside its band is anomalous when it
 *             is also beyond the noise of what was counted (binomial at the interval's
 *             denominator for a ratio, Poisson for a count): the band is tuned on NAB. It
 *             replays BP_SCORE_SEASONAL_DAYS of stored history first. Not the default yet: its
 *             band is tuned on NAB and flags a few percent of ordinary points.
 * Pure functions over arrays: thread-safe.
 */
#ifndef BP_SCORE_H
#define BP_SCORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "incident.h"

/* A series as stored: one entry per interval, oldest first. */
typedef struct st_bp_series_t {
    const int64_t *ts;
    const double *value; /* NAN where the value is NULL (a ratio without denominator) */
    const double *num;   /* ratio parts; NULL for other kinds */
    const double *den;
    bool counts;         /* values are event counts (count metrics): Poisson noise applies */
    const bool *anomaly; /* stored verdicts of the points before `first` (NULL: none); ratio
                          * baselines leave anomalous intervals out */
    size_t n;
} bp_series_t;

typedef enum {
    BP_METHOD_SIGMA3,
    BP_METHOD_RATIO,
    BP_METHOD_AUTO_COUNT, /* 3σ + Poisson floor */
    BP_METHOD_SEASONAL,   /* detector.h */
    BP_METHOD_POISSON,    /* poisson.h: "auto" for counts */
} bp_method_t;

#define BP_SCORE_SEASONAL_DAYS 8
#define BP_SCORE_DRIFT_S 3600 /* the drift test pools the last hour of intervals ... */
#define BP_SCORE_DRIFT_MIN 6  /* ... but at least this many ... */
#define BP_SCORE_DRIFT_MAX 60 /* ... and at most this many */

/* The method for m, or BP_EINVAL-like -1 when m->method names none (checked at startup). */
int bp_score_method(const bp_metric_t *m, bp_method_t *out);

const char *bp_score_method_name(bp_method_t method);

/* Points of history the method needs before the first scored point, for a metric with this
 * interval. */
size_t bp_score_history(bp_method_t method, int interval_s);

/* Scores s->...[first..n) against everything before each point; writes n − first points to out
 * and, in hist_n, how many history points each verdict rested on. Returns 0 or BP_ENOMEM. */
int bp_score_series(bp_method_t method, const bp_series_t *s, size_t first, double z_alert, bp_point_t *out,
                    size_t *hist_n);

#endif
