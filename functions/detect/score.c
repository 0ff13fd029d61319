#include "score.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "detector.h"
#include "err.h"
#include "poisson.h"
#include "ratio.h"
#include "sigma3.h"

int bp_score_method(const bp_metric_t *m, bp_method_t *out)
{
    const char *name = m->method ? m->method : "auto";
    if (strcmp(name, "sigma3") == 0)
        *out = BP_METHOD_SIGMA3;
    else if (strcmp(name, "ratio") == 0 && m->kind == BP_KIND_RATIO)
        *out = BP_METHOD_RATIO;
    else if (strcmp(name, "seasonal") == 0)
        *out = BP_METHOD_SEASONAL;
    else if (strcmp(name, "sigma3+poisson") == 0)
        *out = BP_METHOD_AUTO_COUNT;
    else if (strcmp(name, "poisson") == 0 && m->kind == BP_KIND_COUNT)
        *out = BP_METHOD_POISSON;
    else if (strcmp(name, "auto") == 0)
        *out = m->kind == BP_KIND_RATIO   ? BP_METHOD_RATIO
               : m->kind == BP_KIND_COUNT ? BP_METHOD_POISSON
                                          : BP_METHOD_SIGMA3;
    else
        return -1;
    return 0;
}

const char *bp_score_method_name(bp_method_t method)
{
    switch (method) {
    case BP_METHOD_SIGMA3:
        return "sigma3";
    case BP_METHOD_RATIO:
        return "ratio";
    case BP_METHOD_AUTO_COUNT:
        return "sigma3+poisson";
    case BP_METHOD_SEASONAL:
        return "seasonal";
    case BP_METHOD_POISSON:
        return "poisson";
    default:
        return "sigma3";
    }
}

size_t bp_score_history(bp_method_t method, int interval_s)
{
    if (method == BP_METHOD_SEASONAL)
        return (size_t)(BP_SCORE_SEASONAL_DAYS * 86400 / interval_s);
    if (method == BP_METHOD_POISSON) /* the same slot a week back, and the level before it */
        return (size_t)((BP_POISSON_DAYS * 86400 + 300 * interval_s) / interval_s);
    /* ratio: the baseline of the drift test ends where its window starts */
    return method == BP_METHOD_RATIO ? BP_RATIO_WINDOW + BP_SCORE_DRIFT_MAX : BP_SIGMA3_WINDOW;
}

/* Replays the history through a fresh detector, then scores the points from `first`. An
 * anomaly is a value outside the detector's band: its score is tuned for NAB (one alert per
 * anomaly window), while an incident needs every anomalous point of an episode. */
static int score_seasonal(const bp_series_t *s, size_t first, bp_point_t *out, size_t *hist_n)
{
    bp_detector_params_t prm = bp_detector_params_default();
    bp_detector_t *d = bp_detector_new(&prm);
    if (d == NULL)
        return BP_ENOMEM;
    bp_verdict_t v;
    for (size_t i = 0; i < s->n; i++) {
        bp_detector_update(d, s->ts[i], s->value[i], &v);
        if (i < first)
            continue;
        bp_point_t *p = &out[i - first];
        bool has = !isnan(s->value[i]);
        *p = (bp_point_t){.ts = s->ts[i],
                          .value = s->value[i],
                          .verdict = has && !v.learning,
                          .anomaly = has && !v.learning && (s->value[i] < v.lower || s->value[i] > v.upper),
                          .expected = v.expected,
                          .lower = v.lower,
                          .upper = v.upper,
                          .score = v.raw};
        uint64_t learnt = bp_detector_points(d); /* this point included, when it was learnt */
        hist_n[i - first] = (size_t)(learnt > 0 ? learnt - 1 : 0);
    }
    bp_detector_free(d);
    return 0;
}

/* The values before index i that have one (ratios can be NULL), last `max` of them, into buf. */
static size_t history(const bp_series_t *s, size_t i, size_t max, double *buf)
{
    size_t k = 0;
    for (size_t j = i; j > 0 && k < max; j--)
        if (!isnan(s->value[j - 1]))
            buf[max - 1 - k++] = s->value[j - 1];
    memmove(buf, buf + (max - k), k * sizeof(double));
    return k;
}

/* Intervals in the drift test's window ending at point i: those of the last BP_SCORE_DRIFT_S,
 * at least BP_SCORE_DRIFT_MIN (coarse intervals) and at most BP_SCORE_DRIFT_MAX. */
static size_t drift_window(const bp_series_t *s, size_t i)
{
    size_t w = 1;
    while (w < BP_SCORE_DRIFT_MAX && w <= i &&
           (w < BP_SCORE_DRIFT_MIN || s->ts[i - w] > s->ts[i] - BP_SCORE_DRIFT_S))
        w++;
    return w;
}

/* A point inside its own band is still anomalous when the last hour as a whole left the rate's
 * pooled band on the same side (a slow decline): p gets the drift and its numbers. */
static void ratio_drift(const bp_series_t *s, const double *den, size_t i, double z_alert, double z_point,
                        bp_point_t *p)
{
    size_t w = drift_window(s, i);
    size_t start = i + 1 - w;
    size_t from = start > BP_RATIO_WINDOW ? start - BP_RATIO_WINDOW : 0;
    bp_ratio_drift_t d;
    bp_ratio_drift(s->num + from, den + from, start - from, s->num + start, s->den + start, w, z_alert, &d);
    /* The point itself must lean the drift's way by a standard deviation: after a recovery the
     * window still remembers the drift, but ordinary points are no evidence of it. */
    if (!d.anomaly || (d.z < 0) != (z_point < 0) || fabs(z_point) < 1)
        return;
    p->anomaly = true;
    p->score = fmax(p->score, fmin(1.0, fabs(d.z) / (2 * z_alert)));
    p->drift = true;
    p->drift_n = (int)w;
    p->drift_actual = d.rate;
    p->drift_expected = d.p0;
}

/* Rate-aware scoring. The baseline leaves out anomalous intervals (an episode must not become
 * its own baseline, or a slow decline's recovery would look like a rise), unless they are half
 * of its window: a shift that lasted that long is the new normal. */
static int score_ratio(const bp_series_t *s, size_t first, double z_alert, bp_point_t *out, size_t *hist_n)
{
    double *den_ok = malloc((s->n + 1) * sizeof(double)); /* den, 0 where the interval was anomalous */
    bool *anomalous = calloc(s->n + 1, sizeof(bool));
    if (den_ok == NULL || anomalous == NULL) {
        free(den_ok);
        free(anomalous);
        return BP_ENOMEM;
    }
    size_t in_window = 0; /* anomalous among the BP_RATIO_WINDOW points before i */
    for (size_t i = 0; i < s->n; i++) {
        if (i >= BP_RATIO_WINDOW + 1)
            in_window -= anomalous[i - BP_RATIO_WINDOW - 1];
        if (i > 0)
            in_window += anomalous[i - 1];
        if (i < first) {
            anomalous[i] = s->anomaly != NULL && s->anomaly[i];
            den_ok[i] = anomalous[i] ? 0 : s->den[i];
            continue;
        }
        const double *den = in_window * 2 <= BP_RATIO_WINDOW ? den_ok : s->den;
        size_t from = i > BP_RATIO_WINDOW ? i - BP_RATIO_WINDOW : 0;
        bp_ratio_verdict_t v;
        bp_ratio_score(s->num + from, den + from, i - from, s->num[i], s->den[i], z_alert, &v);
        bp_point_t *p = &out[i - first];
        *p = (bp_point_t){.ts = s->ts[i],
                          .value = s->value[i],
                          .verdict = v.verdict,
                          .anomaly = v.anomaly,
                          .expected = v.p0,
                          .lower = v.lower,
                          .upper = v.upper,
                          .score = v.score};
        hist_n[i - first] = v.n;
        if (v.verdict && !v.anomaly)
            ratio_drift(s, den, i, z_alert, v.z, p);
        anomalous[i] = p->anomaly;
        den_ok[i] = p->anomaly ? 0 : s->den[i];
    }
    free(den_ok);
    free(anomalous);
    return 0;
}

int bp_score_series(bp_method_t method, const bp_series_t *s, size_t first, double z_alert, bp_point_t *out,
                    size_t *hist_n)
{
    if (method == BP_METHOD_SEASONAL)
        return score_seasonal(s, first, out, hist_n);
    if (method == BP_METHOD_POISSON) {
        if (bp_poisson_score(s->ts, s->value, s->n, first, out, hist_n) != 0)
            return BP_ENOMEM;
        /* Points without a day of history yet: the 3σ rule with its Poisson floor, and the
         * method name says so in their context. */
        for (size_t i = first; i < s->n; i++) {
            if (out[i - first].verdict || isnan(s->value[i]))
                continue;
            bp_series_t upto = *s; /* scores exactly point i */
            upto.n = i + 1;
            bp_score_series(BP_METHOD_AUTO_COUNT, &upto, i, z_alert, &out[i - first], &hist_n[i - first]);
        }
        return 0;
    }
    if (method == BP_METHOD_RATIO)
        return score_ratio(s, first, z_alert, out, hist_n);
    double hist[BP_SIGMA3_WINDOW];
    for (size_t i = first; i < s->n; i++) {
        bp_point_t *p = &out[i - first];
        *p = (bp_point_t){.ts = s->ts[i], .value = s->value[i]};
        size_t n = history(s, i, BP_SIGMA3_WINDOW, hist);
        hist_n[i - first] = n;
        if (isnan(s->value[i]))
            continue;
        bp_sigma3_t r;
        bp_sigma3_score(hist, n, s->value[i], &r);
        p->verdict = r.verdict;
        p->anomaly = r.anomaly;
        p->expected = r.mean;
        p->lower = r.lower;
        p->upper = r.upper;
        p->score = r.score;
        if (method == BP_METHOD_AUTO_COUNT && r.verdict) {
            /* Counts carry their own Poisson noise (σ ≈ √μ): a move within 3√(μ+1) of the
             * expected count is not news however flat the history was. */
            double floor = 3 * sqrt(fmax(r.mean, 0) + 1);
            if (fabs(s->value[i] - r.mean) <= floor) {
                p->anomaly = false;
                p->score = fmin(p->score, 0.49);
            }
            if (p->lower > r.mean - floor)
                p->lower = r.mean - floor;
            if (p->upper < r.mean + floor)
                p->upper = r.mean + floor;
        }
    }
    return 0;
}
