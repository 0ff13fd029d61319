#include "ratio.h"

#include <math.h>
#include <stdlib.h>

#include "stats.h"

/* A success rate is binomial; a ratio above 1 (events per session) is a Poisson rate. */
static double unit_variance(double p0)
{
    return p0 <= 1 ? p0 * (1 - p0) : p0;
}

/* The pooled rate p0 and the extra-binomial variance τ² of the last BP_RATIO_WINDOW entries of
 * the history; returns how many entries had a denominator (p0, τ² unset when none did). */
static size_t baseline(const double *num_h, const double *den_h, size_t n, double *p0, double *tau2)
{
    if (n > BP_RATIO_WINDOW) {
        num_h += n - BP_RATIO_WINDOW;
        den_h += n - BP_RATIO_WINDOW;
        n = BP_RATIO_WINDOW;
    }
    double sn = 0, sd = 0;
    size_t used = 0;
    for (size_t i = 0; i < n; i++) {
        if (den_h[i] > 0) {
            sn += num_h[i];
            sd += den_h[i];
            used++;
        }
    }
    if (used == 0 || sd <= 0)
        return 0;
    *p0 = sn / sd;
    double unit_var = unit_variance(*p0);
    /* The difference of two consecutive rates has variance 2τ² plus both binomial variances,
     * whatever the level or a slow trend does; the squared differences' median is ≈ 0.455 of
     * that for normal noise. What binomial noise explains is removed, never below zero. */
    double d2[BP_RATIO_WINDOW], bin[BP_RATIO_WINDOW];
    size_t k = 0;
    long prev = -1;
    for (size_t i = 0; i < n; i++) {
        if (den_h[i] <= 0)
            continue;
        if (prev >= 0) {
            double d = num_h[i] / den_h[i] - num_h[prev] / den_h[prev];
            d2[k] = d * d;
            bin[k] = unit_var / den_h[i] + unit_var / den_h[prev];
            k++;
        }
        prev = (long)i;
    }
    *tau2 = k > 0 ? (bp_stats_median(d2, k) / 0.455 - bp_stats_median(bin, k)) / 2 : 0;
    if (*tau2 < 0)
        *tau2 = 0;
    return used;
}

void bp_ratio_score(const double *num_h, const double *den_h, size_t n, double num, double den,
                    double z_alert, bp_ratio_verdict_t *out)
{
    *out = (bp_ratio_verdict_t){0};
    double p0 = 0, tau2 = 0;
    out->n = baseline(num_h, den_h, n, &p0, &tau2);
    if (out->n < BP_RATIO_MIN_HISTORY || den <= 0)
        return;
    double var_count = den * unit_variance(p0) + den * den * tau2;
    /* A rate pinned at 0 or 1 with no spread: any move is news, but keep z finite. */
    if (var_count < 0.25)
        var_count = 0.25;
    double z = (num - den * p0) / sqrt(var_count);
    double half = z_alert * sqrt(var_count) / den;
    out->verdict = true;
    out->p0 = p0;
    out->tau2 = tau2;
    out->z = z;
    out->anomaly = fabs(z) >= z_alert;
    out->score = fmin(1.0, fabs(z) / (2 * z_alert));
    out->lower = fmax(0.0, p0 - half);
    out->upper = p0 <= 1 ? fmin(1.0, p0 + half) : p0 + half;
}

void bp_ratio_drift(const double *num_h, const double *den_h, size_t n, const double *num_w,
                    const double *den_w, size_t w, double z_alert, bp_ratio_drift_t *out)
{
    *out = (bp_ratio_drift_t){.w = w};
    double p0 = 0, tau2 = 0;
    size_t used = baseline(num_h, den_h, n, &p0, &tau2);
    double sn = 0, sd = 0, sd2 = 0, base_den = 0;
    for (size_t i = 0; i < w; i++) {
        if (den_w[i] > 0) {
            sn += num_w[i];
            sd += den_w[i];
            sd2 += den_w[i] * den_w[i];
        }
    }
    if (used < BP_RATIO_MIN_HISTORY || sd <= 0)
        return;
    size_t from = n > BP_RATIO_WINDOW ? n - BP_RATIO_WINDOW : 0;
    for (size_t i = from; i < n; i++)
        base_den += den_h[i] > 0 ? den_h[i] : 0;
    /* The window's own noise, each interval's extra variance, and the baseline's uncertainty
     * (the baseline is an estimate too: it matters once the window is a sizeable part of it). */
    double uv = unit_variance(p0);
    double var = sd * uv + sd2 * tau2 + sd * sd * uv / base_den;
    if (var < 0.25)
        var = 0.25;
    out->verdict = true;
    out->p0 = p0;
    out->tau2 = tau2;
    out->rate = sn / sd;
    out->z = (sn - sd * p0) / sqrt(var);
    out->anomaly = fabs(out->z) >= z_alert && fabs(out->rate - p0) >= BP_RATIO_DRIFT_MIN_EFFECT * p0;
}
