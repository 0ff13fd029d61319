/*
 * ratio: rate-aware scoring for ratio metrics (DESIGN §6): the evidence grows with the
 * denominator. A 30% drop of a success rate over 20 attempts is noise; over 20 000 it is an
 * incident. The expected rate p0 is the volume-weighted rate of the trailing window; the spread
 * combines binomial noise p0(1−p0)/den with the extra, between-interval variance τ² that real
 * rates show, so large volumes are not held to a binomial band they never keep. τ² comes from
 * the differences of consecutive rates (robustly: medians), so a trend or a level shift inside
 * the window is not mistaken for noise and does not widen the band it should leave:
 *
 *     z = (num − den·p0) / sqrt(den·p0(1−p0) + den²·τ²)
 *
 * (p0(1−p0) becomes p0 for ratios above 1, such as events per session: a Poisson rate.)
 *
 * A point is anomalous when |z| ≥ z_alert (default 5: with 1 440 points a day, a per-point
 * threshold of 3 would page daily on noise). Score = min(1, |z| / (2·z_alert)), so the alert
 * boundary scores 0.5 as the 3σ rule's does.
 *
 * One interval holds little evidence of a small, sustained shift, and a slow decline enters the
 * trailing baseline as it goes. bp_ratio_drift() pools the last few intervals (an hour: see
 * score.c) and tests their rate against the baseline from *before* them: a 10% decline over
 * hours is far outside the pooled band long before any single interval is. It needs a
 * relative effect of at least BP_RATIO_DRIFT_MIN_EFFECT too, so a huge volume does not make a
 * harmless 0.5% wander an incident. Pure functions: thread-safe.
 */
#ifndef BP_RATIO_H
#define BP_RATIO_H

#include <stdbool.h>
#include <stddef.h>

#define BP_RATIO_WINDOW 180            /* trailing intervals of the baseline */
#define BP_RATIO_MIN_HISTORY 60        /* intervals with a denominator needed before a verdict */
#define BP_RATIO_DRIFT_MIN_EFFECT 0.02 /* relative: |rate − p0| ≥ 2% of p0 */

typedef struct st_bp_ratio_verdict_t {
    bool verdict; /* false while learning or when den = 0 (no rate) */
    bool anomaly;
    double p0, tau2, z, score, lower, upper;
    size_t n; /* history points used */
} bp_ratio_verdict_t;

/* Scores (num, den) against the history num_h/den_h [0..n) (oldest first; only the last
 * BP_RATIO_WINDOW are used; entries with den 0 are skipped). */
void bp_ratio_score(const double *num_h, const double *den_h, size_t n, double num, double den,
                    double z_alert, bp_ratio_verdict_t *out);

/* The pooled test of the last w intervals. */
typedef struct st_bp_ratio_drift_t {
    bool verdict; /* false while the baseline is learning or the window has no denominator */
    bool anomaly;
    double p0;   /* the baseline rate, from before the window */
    double rate; /* the window's pooled rate */
    double z;
    double tau2; /* the baseline's extra-binomial variance */
    size_t w;    /* intervals in the window */
} bp_ratio_drift_t;

/* Tests the pooled rate of num_w/den_w [0..w) (the last w intervals, oldest first) against the
 * history num_h/den_h [0..n) that precedes them (only the last BP_RATIO_WINDOW are used). */
void bp_ratio_drift(const double *num_h, const double *den_h, size_t n, const double *num_w,
                    const double *den_w, size_t w, double z_alert, bp_ratio_drift_t *out);

#endif
