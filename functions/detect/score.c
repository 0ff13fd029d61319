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
static void ratio_drift(const bp_series_t *s, const double *den, size_t i, double z_alert, bp_point_t *p)
{
    if (!(s->den[i] > 0))
        return;
    size_t w = drift_window(s, i);
    size_t start = i + 1 - w;
    size_t from = start > BP_RATIO_WINDOW ? start - BP_RATIO_WINDOW : 0;
    bp_ratio_drift_t d;
    bp_ratio_drift(s->num + from, den + from, start - from, s->num + start, s->den + start, w, z_alert, &d);
    if (!d.anomaly)
        return;
    /* The point itself must lean the drift's way by a standard deviation: after a recovery the
     * window still remembers the drift, but ordinary points are no evidence of it. */
    double uv = d.p0 <= 1 ? d.p0 * (1 - d.p0) : d.p0;
    double z_point =
        (s->num[i] - s->den[i] * d.p0) / sqrt(fmax(0.25, s->den[i] * uv + s->den[i] * s->den[i] * d.tau2));
    if ((d.z < 0) != (z_point < 0) || fabs(z_point) < 1)
        return;
    p->anomaly = true;
    p->score = fmax(p->score, fmin(1.0, fabs(d.z) / (2 * z_alert)));
    p->drift = true;
    p->drift_n = (int)w;
    p->drift_actual = d.rate;
    p->drift_expected = d.p0;
}

/* The denominators a ratio baseline uses: anomalous intervals left out (an episode must not
 * become its own baseline, or a slow decline's recovery would look like a rise), unless they
 * are half of its window: a shift that lasted that long is the new normal. Walk i = 0, 1, ...:
 * clean_den(i), then clean_mark(i). */
typedef struct {
    double *den_ok; /* den, 0 where the interval was anomalous */
    bool *anomalous;
    size_t in_window; /* anomalous among the BP_RATIO_WINDOW points before i */
} clean_den_t;

static int clean_init(clean_den_t *c, size_t n)
{
    c->den_ok = malloc((n + 1) * sizeof(double));
    c->anomalous = calloc(n + 1, sizeof(bool));
    c->in_window = 0;
    return c->den_ok != NULL && c->anomalous != NULL ? 0 : BP_ENOMEM;
}

static void clean_free(clean_den_t *c)
{
    free(c->den_ok);
    free(c->anomalous);
}

static const double *clean_den(clean_den_t *c, const bp_series_t *s, size_t i)
{
    if (i >= BP_RATIO_WINDOW + 1)
        c->in_window -= c->anomalous[i - BP_RATIO_WINDOW - 1];
    if (i > 0)
        c->in_window += c->anomalous[i - 1];
    return c->in_window * 2 <= BP_RATIO_WINDOW ? c->den_ok : s->den;
}

static void clean_mark(clean_den_t *c, const bp_series_t *s, size_t i, bool anomalous)
{
    c->anomalous[i] = anomalous;
    c->den_ok[i] = anomalous ? 0 : s->den[i];
}

/* The seasonal band knows nothing of volume: a point outside it is news only if it is also
 * beyond the noise of what was counted at the expected value. The band widens to say so. */
static void seasonal_noise_floor(const bp_series_t *s, size_t i, double z_alert, double dispersion,
                                 bp_point_t *p)
{
    double e = p->expected, half;
    if (s->den != NULL && s->num != NULL) {
        double den = s->den[i], r = fmax(0, e);
        if (!(den > 0))
            return;
        double unit_var = r <= 1 ? r * (1 - r) : r;
        double sd = fmax(0.5, sqrt(den * unit_var)); /* in events, as ratio.c keeps it finite */
        if (fabs(s->num[i] - den * r) < z_alert * sd)
            p->anomaly = false;
        half = z_alert * sd / den;
    } else if (s->counts && dispersion >= 0.5) {
        /* Poisson noise, for a series that shows it: a flat or metered count (dispersion well
         * below 1) keeps the detector's band, or a drop from it would hide under the floor. */
        if (!bp_poisson_news(fmax(0, e), 0, s->value[i]))
            p->anomaly = false;
        half = fmax(BP_POISSON_Z * sqrt(fmax(0, e)), fmax(3.0, 0.2 * fabs(e)));
    } else {
        return;
    }
    if (!p->anomaly) {
        p->score = fmin(p->score, 0.49);
        p->lower = fmin(p->lower, fmax(0, e - half));
        p->upper = fmax(p->upper, e + half);
    }
}

/* Replays the history through a fresh detector, then scores the points from `first`. An
 * anomaly is a value outside the detector's band (and beyond the noise floor): its score is
 * tuned for NAB (one alert per anomaly window), while an incident needs every anomalous point
 * of an episode. */
static int score_seasonal(const bp_series_t *s, size_t first, double z_alert, bp_point_t *out, size_t *hist_n)
{
    bp_detector_params_t prm = bp_detector_params_default();
    bool rate = s->num != NULL && s->den != NULL;
    clean_den_t c = {0};
    bp_detector_t *d = bp_detector_new(&prm);
    if (d == NULL || (rate && clean_init(&c, s->n) != 0)) {
        bp_detector_free(d);
        clean_free(&c);
        return BP_ENOMEM;
    }
    bp_verdict_t v;
    /* The dispersion index of a count, Σ(value − forecast)² / Σ forecast over the last
     * DISPERSION_POINTS forecasts: about 1 for Poisson noise. */
    enum { DISPERSION_POINTS = 64 };
    double sq[DISPERSION_POINTS] = {0}, fc[DISPERSION_POINTS] = {0}, sum_sq = 0, sum_fc = 0;
    size_t nd = 0;
    for (size_t i = 0; i < s->n; i++) {
        bp_detector_update(d, s->ts[i], s->value[i], &v);
        double dispersion = sum_fc > 0 ? sum_sq / sum_fc : 1;
        if (s->counts && !v.learning && !isnan(s->value[i]) && v.expected > 0) {
            size_t k = nd++ % DISPERSION_POINTS;
            sum_sq -= sq[k];
            sum_fc -= fc[k];
            sq[k] = (s->value[i] - v.expected) * (s->value[i] - v.expected);
            fc[k] = v.expected;
            sum_sq += sq[k];
            sum_fc += fc[k];
        }
        const double *den = rate ? clean_den(&c, s, i) : NULL;
        if (i < first) {
            if (rate)
                clean_mark(&c, s, i, s->anomaly != NULL && s->anomaly[i]);
            continue;
        }
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
        if (p->anomaly)
            seasonal_noise_floor(s, i, z_alert, dispersion, p);
        /* The band follows a slow decline (robust to trend by design): for a rate, the drift
         * test of the ratio method looks at the last hour as a whole. */
        if (rate) {
            if (p->verdict && !p->anomaly)
                ratio_drift(s, den, i, z_alert, p);
            clean_mark(&c, s, i, p->anomaly);
        }
        uint64_t learnt = bp_detector_points(d); /* this point included, when it was learnt */
        hist_n[i - first] = (size_t)(learnt > 0 ? learnt - 1 : 0);
    }
    bp_detector_free(d);
    clean_free(&c);
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

/* Rate-aware scoring, on clean baselines. */
static int score_ratio(const bp_series_t *s, size_t first, double z_alert, bp_point_t *out, size_t *hist_n)
{
    clean_den_t c;
    if (clean_init(&c, s->n) != 0) {
        clean_free(&c);
        return BP_ENOMEM;
    }
    for (size_t i = 0; i < s->n; i++) {
        const double *den = clean_den(&c, s, i);
        if (i < first) {
            clean_mark(&c, s, i, s->anomaly != NULL && s->anomaly[i]);
            continue;
        }
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
            ratio_drift(s, den, i, z_alert, p);
        clean_mark(&c, s, i, p->anomaly);
    }
    clean_free(&c);
    return 0;
}

int bp_score_series(bp_method_t method, const bp_series_t *s, size_t first, double z_alert, bp_point_t *out,
                    size_t *hist_n)
{
    if (method == BP_METHOD_SEASONAL)
        return score_seasonal(s, first, z_alert, out, hist_n);
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
