/*
 * bench_live: how fast the live methods score stored history, as a backtest of a week does
 * (bp_score_series over every point; a live tick scores one point the same way). Prints
 * points/s, never pass/fail:
 *  - poisson on 1-minute counts (7 days scored after 1 of history), a quiet series (peak 8 a
 *    minute: its slots and level pool neighbours) and a busy one (peak 150);
 *  - ratio on 5-minute success rates (1 day scored after 1 of history), with the drift test.
 * Single-threaded; best of 3. Uses only bp_series_t fields every version has, so the same file
 * builds against an older library for a before/after in one run.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "score.h"

#define DAY_MIN 1440
#define DAYS 8

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static uint32_t rng = 12345;

static double uniform(void)
{
    rng = rng * 1664525u + 1013904223u;
    return ((double)(rng >> 8) + 0.5) / (1 << 24);
}

/* Poisson (Knuth below 30, normal above): the bench needs counts, not exact tails. */
static double poisson(double lam)
{
    if (lam >= 30)
        return round(lam + sqrt(lam) * sqrt(-2 * log(uniform())) * cos(2 * M_PI * uniform()));
    double limit = exp(-lam), p = uniform();
    int k = 0;
    while (p > limit) {
        k++;
        p *= uniform();
    }
    return k;
}

static double rhythm(size_t i, size_t per_day)
{
    double h = (double)(i % per_day) * 24.0 / (double)per_day;
    return 0.1 + 0.9 * (0.5 - 0.5 * cos(2 * M_PI * (h - 4) / 24));
}

/* Best of 3: points scored per second. */
static double run(bp_method_t method, const bp_series_t *s, size_t first)
{
    size_t n = s->n - first;
    bp_point_t *out = malloc(n * sizeof(*out));
    size_t *hn = malloc(n * sizeof(*hn));
    double best = 0;
    for (int r = 0; out != NULL && hn != NULL && r < 3; r++) {
        double t0 = now_s();
        if (bp_score_series(method, s, first, 5.0, out, hn) != 0)
            break;
        double pps = (double)n / (now_s() - t0);
        if (pps > best)
            best = pps;
    }
    free(out);
    free(hn);
    return best;
}

int main(void)
{
    size_t n = DAYS * DAY_MIN;
    int64_t *ts = malloc(n * sizeof(int64_t));
    double *v = malloc(n * sizeof(double)), *num = malloc(n * sizeof(double)),
           *den = malloc(n * sizeof(double));
    if (ts == NULL || v == NULL || num == NULL || den == NULL)
        return 1;
    for (double peak = 8; peak <= 150; peak = peak < 150 ? 150 : 1e9) {
        for (size_t i = 0; i < n; i++) {
            ts[i] = 1795000000 - 1795000000 % 86400 + (int64_t)i * 60;
            v[i] = poisson(peak * rhythm(i, DAY_MIN));
        }
        bp_series_t s = {.ts = ts, .value = v, .n = n};
        printf("poisson, 1-minute counts, peak %3.0f/min: %.0f points/s (7 days after 1 of history)\n", peak,
               run(BP_METHOD_POISSON, &s, DAY_MIN));
    }
    size_t m = 2 * 288;
    for (size_t i = 0; i < m; i++) {
        ts[i] = 1795000000 - 1795000000 % 86400 + (int64_t)i * 300;
        den[i] = poisson(1000 * rhythm(i, 288));
        num[i] = 0;
        for (int k = 0; k < (int)den[i]; k++)
            num[i] += uniform() < 0.88;
        v[i] = den[i] > 0 ? num[i] / den[i] : NAN;
    }
    bp_series_t r = {.ts = ts, .value = v, .num = num, .den = den, .n = m};
    printf("ratio, 5-minute rates, ~1000 attempts at peak: %.0f points/s (1 day after 1 of history)\n",
           run(BP_METHOD_RATIO, &r, 288));
    free(ts);
    free(v);
    free(num);
    free(den);
    return 0;
}
