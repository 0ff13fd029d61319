/*
 * ratio: rate-aware scoring for ratio metrics (DESIGN §6): the evidence grows with the
 * denominator. A 30% drop of a success rate over 20 attempts is noise; over 20 000 it is an
 * incident. The expected rate p0 is the volume-weighted rate of the trailing window; the spread
 * combines binomial noise p0(1−p0)/den with the extra, between-interval variance τ² that real
 * rates show (estimated robustly from the same window), so large volumes are not held to a
 * binomial band they never keep:
 *
 *     z = (num − den·p0) / sqrt(den·p0(1−p0) + den²·τ²)
 *
 * (p0(1−p0) becomes p0 for ratios above 1, such as events per session: a Poisson rate.)
 *
 * A point is anomalous when |z| ≥ z_alert (default 5: with 1 440 points a day, a per-point
 * threshold of 3 would page daily on noise). Score = min(1, |z| / (2·z_alert)), so the alert
 * boundary scores 0.5 as the 3σ rule's does. Pure functions: thread-safe.
 */
#ifndef BP_RATIO_H
#define BP_RATIO_H

#include <stdbool.h>
#include <stddef.h>

#define BP_RATIO_WINDOW 180     /* trailing intervals of the baseline */
#define BP_RATIO_MIN_HISTORY 60 /* intervals with a denominator needed before a verdict */

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

#endif
