#include "poisson.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "stats.h"

#define EXACT_BELOW 30.0
#define TAIL_P 3.17e-5 /* one-sided tail of 4 standard deviations */

/* The probability of a count at least as far from the mean m as x, on x's side: P(X >= x) above
 * m, P(X <= x) below, X ~ Poisson(m); exact (m < EXACT_BELOW keeps the sums short). */
static double poisson_tail(double m, double x)
{
    double pmf = exp(-m), below = 0; /* P(X = 0), then P(X < k) as k grows */
    int k = 0;
    for (; k < (int)x && k < 1000; k++) {
        below += pmf;
        pmf *= m / (k + 1);
    }
    return x >= m ? fmax(0, 1 - below) : below + pmf;
}

/* Index of ts t in the ascending array, or -1. */
static long find(const int64_t *ts, size_t n, int64_t t)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (ts[mid] < t)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < n && ts[lo] == t ? (long)lo : -1;
}

/* The median of the same slot on the previous days; NAN with fewer than BP_POISSON_MIN_DAYS. */
static double seasonal(const int64_t *ts, const double *value, size_t n, size_t i, size_t *days)
{
    double v[BP_POISSON_DAYS];
    size_t k = 0;
    for (int d = 1; d <= BP_POISSON_DAYS; d++) {
        long j = find(ts, i, ts[i] - (int64_t)d * 86400);
        if (j >= 0 && !isnan(value[j]))
            v[k++] = value[j];
    }
    (void)n;
    *days = k;
    return k >= BP_POISSON_MIN_DAYS ? bp_stats_median(v, k) : NAN;
}

int bp_poisson_score(const int64_t *ts, const double *value, size_t n, size_t first, bp_point_t *out,
                     size_t *hist_n)
{
    double *mu = malloc((n + 1) * sizeof(double));
    if (mu == NULL)
        return BP_ENOMEM;
    /* Expectations for the points the level and the overdispersion look back on too. */
    size_t from = first > 300 ? first - 300 : 0;
    size_t days = 0;
    for (size_t i = from; i < n; i++)
        mu[i] = seasonal(ts, value, n, i, i >= first ? &hist_n[i - first] : &days);
    /* φ: the median excess of squared residuals over Poisson, relative to μ², over the history. */
    double r[300];
    size_t nr = 0;
    for (size_t i = from; i < first && nr < 300; i++)
        if (!isnan(mu[i]) && mu[i] >= 1 && !isnan(value[i]))
            r[nr++] = ((value[i] - mu[i]) * (value[i] - mu[i]) - mu[i]) / (mu[i] * mu[i]);
    double phi = nr >= 30 ? fmax(0, bp_stats_median(r, nr)) : 0.01;
    for (size_t i = first; i < n; i++) {
        bp_point_t *p = &out[i - first];
        *p = (bp_point_t){.ts = ts[i], .value = value[i]};
        if (isnan(mu[i]) || isnan(value[i]))
            continue;
        /* The level: how the previous few intervals ran against their expectations. */
        double ratios[BP_POISSON_LEVEL_POINTS];
        size_t k = 0;
        for (size_t j = i; j > from && k < BP_POISSON_LEVEL_POINTS; j--) {
            /* anomalous points say nothing about the level: an outage must not make its
             * own recovery look like a spike */
            if (j - 1 >= first && out[j - 1 - first].anomaly)
                continue;
            if (!isnan(mu[j - 1]) && mu[j - 1] >= 1 && !isnan(value[j - 1]))
                ratios[k++] = value[j - 1] / mu[j - 1];
        }
        double level = k >= 3 ? fmin(1.5, fmax(0.5, bp_stats_median(ratios, k))) : 1.0;
        double m = mu[i] * level;
        double sd = sqrt(m + phi * m * m);
        if (sd < 1)
            sd = 1;
        double dev = fabs(value[i] - m);
        p->verdict = true;
        p->expected = m;
        p->lower = fmax(0, m - BP_POISSON_Z * sd);
        p->upper = m + BP_POISSON_Z * sd;
        /* At low counts the normal approximation (and the sd floor) call 1 -> 5 a 4-sigma event;
         * the exact Poisson tail says it happens once in a few hundred intervals. */
        bool far = m < EXACT_BELOW ? poisson_tail(m, value[i]) < TAIL_P : dev > BP_POISSON_Z * sd;
        p->anomaly = far && dev >= fmax(3.0, 0.2 * m);
        p->score = fmin(1.0, dev / sd / (2 * BP_POISSON_Z));
    }
    free(mu);
    return 0;
}
