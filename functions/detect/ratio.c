#include "ratio.h"

#include <math.h>
#include <stdlib.h>

#include "stats.h"

void bp_ratio_score(const double *num_h, const double *den_h, size_t n, double num, double den,
                    double z_alert, bp_ratio_verdict_t *out)
{
    *out = (bp_ratio_verdict_t){0};
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
    out->n = used;
    if (used < BP_RATIO_MIN_HISTORY || sd <= 0 || den <= 0)
        return;
    double p0 = sn / sd;
    /* A success rate is binomial; a ratio above 1 (events per session) is a Poisson rate. */
    double unit_var = p0 <= 1 ? p0 * (1 - p0) : p0;
    /* τ²: the squared residuals' median is ≈ 0.455 σ² for normal residuals; what binomial
     * noise explains (its median share) is removed, never below zero. */
    double r2[BP_RATIO_WINDOW], bin[BP_RATIO_WINDOW];
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (den_h[i] > 0) {
            double r = num_h[i] / den_h[i] - p0;
            r2[k] = r * r;
            bin[k] = unit_var / den_h[i];
            k++;
        }
    }
    double tau2 = bp_stats_median(r2, k) / 0.455 - bp_stats_median(bin, k);
    if (tau2 < 0)
        tau2 = 0;
    double var_count = den * unit_var + den * den * tau2;
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
