/*
 * sigma3: the original system's rule, kept bit-for-bit for parity (DESIGN §6, weakness 1):
 * a point is anomalous when |value − mean| > 3σ (strict), mean and σ (population standard
 * deviation, ddof = 0) taken over the trailing window of up to 180 points before it, and only
 * when that window has at least 90 points; otherwise there is no verdict.
 * Pure functions, no state: thread-safe.
 */
#ifndef BP_SIGMA3_H
#define BP_SIGMA3_H

#include <stdbool.h>
#include <stddef.h>

#define BP_SIGMA3_WINDOW 180
#define BP_SIGMA3_MIN_POINTS 90

typedef struct st_bp_sigma3_t {
    bool verdict; /* false: fewer than 90 points of history, nothing else below is set */
    bool anomaly;
    size_t n; /* points in the window */
    double mean, stddev, lower, upper;
    double score; /* in [0, 1]: |z| / 6 capped; 0.5 is the 3σ boundary */
} bp_sigma3_t;

/* Scores value against hist[0..n) (the points just before it, oldest first; only the last
 * BP_SIGMA3_WINDOW are used). */
void bp_sigma3_score(const double *hist, size_t n, double value, bp_sigma3_t *out);

#endif
