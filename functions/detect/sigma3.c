#include "sigma3.h"

#include <math.h>

void bp_sigma3_score(const double *hist, size_t n, double value, bp_sigma3_t *out)
{
    *out = (bp_sigma3_t){0};
    if (n > BP_SIGMA3_WINDOW) {
        hist += n - BP_SIGMA3_WINDOW;
        n = BP_SIGMA3_WINDOW;
    }
    out->n = n;
    if (n < BP_SIGMA3_MIN_POINTS)
        return;
    /* Two passes (mean, then squared deviations): the one-pass sum-of-squares formula loses
     * precision on large, flat series and would flip verdicts near the boundary. */
    double sum = 0;
    for (size_t i = 0; i < n; i++)
        sum += hist[i];
    double mean = sum / (double)n, ss = 0;
    for (size_t i = 0; i < n; i++)
        ss += (hist[i] - mean) * (hist[i] - mean);
    double sd = sqrt(ss / (double)n);
    out->verdict = true;
    out->mean = mean;
    out->stddev = sd;
    out->lower = mean - 3 * sd;
    out->upper = mean + 3 * sd;
    double dev = fabs(value - mean);
    out->anomaly = dev > 3 * sd;
    if (sd > 0)
        out->score = fmin(1.0, dev / sd / 6.0);
    else
        out->score = dev > 0 ? 1.0 : 0.0;
}
