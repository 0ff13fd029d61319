#include "poisson.h"

#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "stats.h"

#define EXACT_BELOW 30.0
#define TAIL_P 3.17e-5 /* one-sided tail of 4 standard deviations */

/* The probability of a count at least as far from the mean m as x, on x's side: P(X >= x) above
 * m, P(X <= x) below, X negative binomial with mean m and variance m + c·m² (Poisson when c is
 * 0); exact (m < EXACT_BELOW keeps the sums short). c carries the overdispersion and how
 * uncertain m itself is: a night's rate known from 30 events is not known to 1%. */
static double count_tail(double m, double c, double x)
{
    double pmf, below = 0; /* P(X = 0), then P(X < k) as k grows */
    double r = c > 1e-9 ? 1 / c : 0, q = r > 0 ? m / (m + r) : 0;
    pmf = r > 0 ? exp(r * log1p(-q)) : exp(-m);
    int k = 0;
    for (; k < (int)x && k < 1000; k++) {
        below += pmf;
        pmf *= r > 0 ? (k + r) / (k + 1) * q : m / (k + 1);
    }
    return x >= m ? fmax(0, 1 - below) : below + pmf;
}

bool bp_poisson_news(double m, double c, double x)
{
    double sd = fmax(1, sqrt(m + c * m * m)), dev = fabs(x - m);
    bool far = m < EXACT_BELOW ? count_tail(m, c, x) < TAIL_P : dev > BP_POISSON_Z * sd;
    return far && dev >= fmax(3.0, 0.2 * m);
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

/* The rate per interval around index j (only indexes before i): the slot and its
 * BP_POISSON_SLOT_MIN_W neighbours on each side, widened symmetrically (up to BP_POISSON_SLOT_S
 * each side) until they hold BP_POISSON_SLOT_EVENTS. Symmetric, so no lag on a ramp; a few
 * neighbours even for a busy series, because one day's single minute carries its own Poisson
 * noise into the expectation (with one day of history that noise alone hid a 30% drop); at
 * night, 0-3 events a minute say little one by one, and a median of seven such integers is
 * often 0. events gets the sum. */
static double slot_rate(const int64_t *ts, const double *value, size_t i, size_t j, double *events)
{
    double sum = value[j];
    size_t cnt = 1;
    for (size_t w = 1; sum < BP_POISSON_SLOT_EVENTS || w <= BP_POISSON_SLOT_MIN_W; w++) {
        bool any = false;
        if (j >= w && ts[j - w] >= ts[j] - BP_POISSON_SLOT_S) {
            any = true;
            if (!isnan(value[j - w])) {
                sum += value[j - w];
                cnt++;
            }
        }
        if (j + w < i && ts[j + w] <= ts[j] + BP_POISSON_SLOT_S) {
            any = true;
            if (!isnan(value[j + w])) {
                sum += value[j + w];
                cnt++;
            }
        }
        if (!any)
            break;
    }
    *events = sum;
    return sum / (double)cnt;
}

/* The median of the same slot's rate on the previous days; NAN with fewer than
 * BP_POISSON_MIN_DAYS. events gets the events the rates rest on. */
static double seasonal(const int64_t *ts, const double *value, size_t i, size_t *days, double *events)
{
    double v[BP_POISSON_DAYS];
    size_t k = 0;
    *events = 0;
    for (int d = 1; d <= BP_POISSON_DAYS; d++) {
        long j = find(ts, i, ts[i] - (int64_t)d * 86400);
        if (j >= 0 && !isnan(value[j])) {
            double e;
            v[k++] = slot_rate(ts, value, i, (size_t)j, &e);
            *events += e;
        }
    }
    *days = k;
    return k >= BP_POISSON_MIN_DAYS ? bp_stats_median(v, k) : NAN;
}

/* The clamp keeps an outage from becoming the level, but a quiet series' intervals are each
 * too small to be news (0 where 4 are expected happens once in 55). While the series runs
 * beyond the clamp (pinned), the run of such intervals ending at i is tested as a whole against
 * the sum of their expectations: 30 minutes of zeros where 8 a minute come is an incident. A
 * quiet holiday (60%) stays inside the clamp, so it never gets here. */
static void pinned_run(const double *value, const double *expect, const signed char *pinned, size_t lo,
                       size_t i, double c, bp_point_t *p)
{
    double sv = 0, sm = 0;
    size_t k = 0;
    for (size_t j = i + 1; j > lo && k < BP_POISSON_PINNED_MAX && pinned[j - 1] == pinned[i]; j--) {
        if (isnan(expect[j - 1]))
            break;
        sv += value[j - 1];
        sm += expect[j - 1];
        k++;
    }
    double dev = sv - sm;
    /* the point itself must lean the run's way: after a recovery the run is over anyway */
    if ((dev < 0) != (value[i] < expect[i]) || value[i] == expect[i])
        return;
    if (fabs(dev) < BP_POISSON_Z * sqrt(sm + c * sm * sm) || fabs(dev) < fmax(3.0, 0.2 * sm))
        return;
    p->anomaly = true;
    p->score = fmax(p->score, 0.5);
    p->drift = true;
    p->drift_n = (int)k;
    p->drift_actual = sv / (double)k;
    p->drift_expected = sm / (double)k;
}

/* φ for point i: the median excess over the BP_POISSON_PHI_POINTS points before it (anomalous
 * ones left out), so a point's band does not depend on where its window starts: a catch-up
 * scoring two days at once learns φ from the first hours as a tick would (a fixed 0.01 there
 * made a busy series' band +-50% wide and hid a 30% drop). Too few points: a cautious 0.01. */
static double overdispersion(const double *resid, size_t from, size_t first, size_t i, const bp_point_t *out)
{
    double r[BP_POISSON_PHI_POINTS];
    size_t nr = 0;
    for (size_t j = i; j > from && nr < BP_POISSON_PHI_POINTS; j--) {
        if (isnan(resid[j - 1]) || (j - 1 >= first && out[j - 1 - first].anomaly))
            continue;
        r[nr++] = resid[j - 1];
    }
    return nr >= 30 ? fmax(0, bp_stats_median(r, nr)) : 0.01;
}

int bp_poisson_score(const int64_t *ts, const double *value, size_t n, size_t first, bp_point_t *out,
                     size_t *hist_n)
{
    double *mu = malloc((n + 1) * sizeof(double));
    double *mu_events = malloc((n + 1) * sizeof(double));
    double *expect = malloc((n + 1) * sizeof(double)); /* μ × level */
    signed char *pinned = malloc(n + 1);               /* beyond the level's clamp: -1 below, 1 above */
    double *resid = malloc((n + 1) * sizeof(double));
    if (mu == NULL || mu_events == NULL || expect == NULL || pinned == NULL || resid == NULL) {
        free(resid);
        free(mu);
        free(mu_events);
        free(expect);
        free(pinned);
        return BP_ENOMEM;
    }
    /* Expectations for the points the level and the overdispersion look back on too. */
    size_t from = first > BP_POISSON_PHI_POINTS ? first - BP_POISSON_PHI_POINTS : 0;
    size_t days = 0;
    for (size_t i = from; i < n; i++)
        mu[i] = seasonal(ts, value, i, i >= first ? &hist_n[i - first] : &days, &mu_events[i]);
    /* Each point's excess of squared residual over Poisson, relative to μ² (NAN where none). */
    for (size_t i = from; i < n; i++)
        resid[i] = !isnan(mu[i]) && mu[i] >= 1 && !isnan(value[i])
                       ? ((value[i] - mu[i]) * (value[i] - mu[i]) - mu[i]) / (mu[i] * mu[i])
                       : NAN;
    /* Points before `first` get an expectation too (not a verdict): the pinned-level test
     * below looks back over them. */
    size_t lo = first > BP_POISSON_PINNED_MAX ? first - BP_POISSON_PINNED_MAX : 0;
    if (lo < from)
        lo = from;
    for (size_t i = lo; i < n; i++) {
        bp_point_t *p = i >= first ? &out[i - first] : NULL;
        if (p != NULL)
            *p = (bp_point_t){.ts = ts[i], .value = value[i]};
        expect[i] = NAN;
        pinned[i] = 0;
        if (isnan(mu[i]) || isnan(value[i]))
            continue;
        /* The level: how the previous intervals ran against their expectations. A busy series
         * needs only the last BP_POISSON_LEVEL_POINTS (the median of their ratios: robust, and
         * quick to follow a quiet day) when they expected BP_POISSON_LEVEL_MEDIAN_EVENTS; a
         * quieter one looks further back, up to BP_POISSON_LEVEL_MAX points, until
         * BP_POISSON_LEVEL_EVENTS were expected, and pools them (a median of six ratios of 3s
         * and 5s is no level: it wandered from 0.38 to 0.88 within minutes). */
        double ratios[BP_POISSON_LEVEL_POINTS], sv = 0, sm = 0, sv_recent = 0, sm_recent = 0;
        size_t k = 0, seen = 0;
        for (size_t j = i; j > from && seen < BP_POISSON_LEVEL_MAX; j--) {
            /* anomalous points say nothing about the level: an outage must not make its
             * own recovery look like a spike */
            if (j - 1 >= first && out[j - 1 - first].anomaly)
                continue;
            if (isnan(mu[j - 1]) || isnan(value[j - 1]))
                continue;
            if (seen == BP_POISSON_LEVEL_POINTS && sm >= BP_POISSON_LEVEL_MEDIAN_EVENTS)
                break;
            if (seen >= BP_POISSON_LEVEL_POINTS && sm >= BP_POISSON_LEVEL_EVENTS)
                break;
            if (seen < BP_POISSON_LEVEL_POINTS && mu[j - 1] >= 1)
                ratios[k++] = value[j - 1] / mu[j - 1];
            if (seen < BP_POISSON_LEVEL_POINTS) {
                sv_recent += value[j - 1];
                sm_recent += mu[j - 1];
            }
            sv += value[j - 1];
            sm += mu[j - 1];
            seen++;
        }
        double level = 1.0;
        if (seen == BP_POISSON_LEVEL_POINTS && sm >= BP_POISSON_LEVEL_MEDIAN_EVENTS && k >= 3)
            level = bp_stats_median(ratios, k);
        else if (seen >= 3) /* pooled, and pulled toward 1 by a few events' worth */
            level = (sv + BP_POISSON_LEVEL_PRIOR) / (sm + BP_POISSON_LEVEL_PRIOR);
        /* Beyond the clamp: the level, or (quicker, for a quiet series whose level pools many
         * intervals) the last few intervals pooled with the level's prior. */
        double recent = (sv_recent + BP_POISSON_LEVEL_PRIOR) / (sm_recent + BP_POISSON_LEVEL_PRIOR);
        pinned[i] = level < 0.5 || (seen >= 3 && recent < 0.5)   ? -1
                    : level > 1.5 || (seen >= 3 && recent > 1.5) ? 1
                                                                 : 0;
        level = fmin(1.5, fmax(0.5, level));
        double m = mu[i] * level;
        expect[i] = m;
        if (p == NULL)
            continue;
        /* Relative variance of the expectation: overdispersion, plus how few events the level
         * and the same-slot rates rest on. */
        double c = overdispersion(resid, from, first, i, out) + 1 / (sm + BP_POISSON_LEVEL_PRIOR) +
                   1 / (mu_events[i] + 1);
        double sd = sqrt(m + c * m * m);
        if (sd < 1)
            sd = 1;
        double dev = fabs(value[i] - m);
        p->verdict = true;
        p->expected = m;
        p->lower = fmax(0, m - BP_POISSON_Z * sd);
        p->upper = m + BP_POISSON_Z * sd;
        /* At low counts the normal approximation (and the sd floor) call 1 -> 5 a 4-sigma event;
         * the exact tail says it happens once in a few hundred intervals. */
        p->anomaly = bp_poisson_news(m, c, value[i]);
        p->score = fmin(1.0, dev / sd / (2 * BP_POISSON_Z));
        if (!p->anomaly && pinned[i] != 0)
            pinned_run(value, expect, pinned, lo, i, c, p);
    }
    free(resid);
    free(mu);
    free(mu_events);
    free(expect);
    free(pinned);
    return 0;
}
