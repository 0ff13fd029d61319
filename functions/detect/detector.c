#include "detector.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Profiles: a day in at most 288 slots (5 minutes), a week in at most 2016; a series with
 * coarser steps uses fewer slots of the same arrays, one with steps of 6 hours or more none. */
#define DAY_SLOTS_MAX 288
#define WEEK_SLOTS_MAX 2016
#define DAY_SECONDS 86400
#define WEEK_SECONDS (7 * 86400)
/* The step is the median of the first positive timestamp differences. */
#define STEP_SAMPLES 9
#define LOG10E 0.43429448190325176
#define SURPRISE_BINS 64
#define SLOT_SPREAD_VISITS 2
/* A surprise up to this factor above one in the history counts as seen: the largest of a
 * series' usual spikes is otherwise "unseen" every time it grows a little. */
#define SURPRISE_SLACK 1.1
#define SURPRISE_MAX 300.0 /* decades: pow(10, -u) stays a normal double */

enum { M_LEVEL, M_DAY, M_WEEK, M_COUNT };
static const char *const method_names[M_COUNT] = {"level", "daily", "weekly"};

/* A forecaster: level (plus, for M_DAY/M_WEEK, the profile slot of the point). */
typedef struct st_model_t {
    double level;
    double spread; /* EWMA of the absolute error, learnt with clipped errors */
    double run;    /* EWMA of the error in spreads (signed, clipped) */
    double cost;   /* EWMA of the Laplace negative log-likelihood of the errors: model choice */
    uint64_t n;    /* errors learnt */
} model_t;

/* A decaying histogram of surprises (bins in surprise_bin()). */
typedef struct st_hist_t {
    double bin[SURPRISE_BINS];
    double total, weight; /* sum of bins; weight of the next point (grows: decay) */
} hist_t;

/* A seasonal profile: offset from the level per slot, and how often the slot was seen. */
typedef struct st_profile_t {
    int64_t period, slot_seconds;
    int slots;     /* 0: not configured (step not known yet, or too coarse) */
    double *value; /* typical value of the slot, before the model's level */
    uint8_t *seen; /* saturates at 255 */
    float *spread; /* typical absolute error in the slot (see slot_spread()) */
} profile_t;

struct st_bp_detector_t {
    bp_detector_params_t p;
    uint64_t n; /* points learnt */
    int64_t last_ts;
    int64_t dts[STEP_SAMPLES];
    int ndts;
    bool counts; /* every value so far a non-negative integer */
    model_t m[M_COUNT];
    profile_t day, week;
    /* How surprising this series usually is, per forecaster: a decaying histogram of its
     * past surprises, so a point is scored by how rare its surprise is for this series under
     * the forecaster that decides (heavy-tailed series have frequent big errors, which then
     * score low). A seasonal forecaster's surprises are learnt only from mature profile
     * slots: its clumsy first visits would otherwise make real anomalies look usual. */
    hist_t hist[M_COUNT];
    int64_t damp_until;
    double damp_peak;
    bool damping;
    /* Density channel: a short average of capped surprises against the long-run mean and
     * variance of that average, for a burst of moderately surprising points (a change of
     * spike rate, of noise) that no single point shows. */
    double dens_short, dens_mean, dens_var;
    uint64_t dens_n;
    double day_value[DAY_SLOTS_MAX];
    double week_value[WEEK_SLOTS_MAX];
    uint8_t day_seen[DAY_SLOTS_MAX];
    uint8_t week_seen[WEEK_SLOTS_MAX];
    float day_spread[DAY_SLOTS_MAX];
    float week_spread[WEEK_SLOTS_MAX];
};

bp_detector_params_t bp_detector_params_default(void)
{
    return (bp_detector_params_t){
        .learning_points = 24,
        .level_alpha = 0.25,
        .fast_alpha = 0.3,
        .season_gamma = 0.25,
        .spread_alpha = 0.01,
        .clip = 2.0,
        .sustain = 1.5,
        .run_alpha = 0.25,
        .surprise_alpha = 0.003,
        .surprise_prior = 20,
        .seasonal_margin = 0.1,
        .select_alpha = 0.002,
        .slot_boot = 3,
        .score_bits = 30.0,
        .alert_score = 0.12,
        .damp_seconds = 24 * 3600,
        .damp_factor = 0,
        .damp_beat = 2,
        .count_floor = 0.5,
        .band_z = 4.0,
        .dens_alpha = 0.05,
        .dens_long_alpha = 0.002,
        .dens_cap = 3.0,
    };
}

static bool alpha_ok(double a)
{
    return a > 0 && a <= 1;
}

bp_detector_t *bp_detector_new(const bp_detector_params_t *p)
{
    bp_detector_params_t params = p != NULL ? *p : bp_detector_params_default();
    if (params.learning_points < 2 || !alpha_ok(params.level_alpha) || !alpha_ok(params.fast_alpha) ||
        !alpha_ok(params.season_gamma) || !alpha_ok(params.spread_alpha) || !alpha_ok(params.run_alpha) ||
        !alpha_ok(params.select_alpha) || !(params.surprise_alpha > 0 && params.surprise_alpha < 1) ||
        !(params.surprise_prior > 0) || params.slot_boot < 1 || !alpha_ok(params.dens_alpha) ||
        !alpha_ok(params.dens_long_alpha) || !(params.dens_cap > 0) || !(params.damp_beat >= 1) ||
        !(params.sustain > 0) || !(params.clip > 0) || !(params.score_bits > 0) ||
        !(params.alert_score > 0) || !(params.damp_factor >= 0 && params.damp_factor <= 1) ||
        params.damp_seconds < 0 || !(params.count_floor >= 0) || !(params.band_z > 0))
        return NULL;
    bp_detector_t *d = calloc(1, sizeof(*d));
    if (d == NULL)
        return NULL;
    d->p = params;
    d->counts = true;
    for (int i = 0; i < M_COUNT; i++)
        d->hist[i].weight = 1;
    d->day.value = d->day_value;
    d->day.seen = d->day_seen;
    d->week.value = d->week_value;
    d->week.seen = d->week_seen;
    d->day.spread = d->day_spread;
    d->week.spread = d->week_spread;
    return d;
}

void bp_detector_free(bp_detector_t *d)
{
    free(d);
}

uint64_t bp_detector_points(const bp_detector_t *d)
{
    return d->n;
}

static double clampd(double v, double lo, double hi)
{
    return v < lo ? lo : v > hi ? hi : v;
}

/* Sizes the profiles once the step is known: slots no finer than 5 minutes, none at all
 * when a day would have fewer than 4 points. */
static void configure_profiles(bp_detector_t *d, int64_t step)
{
    if (step < 300)
        step = 300;
    if (DAY_SECONDS / step < 4)
        return;
    d->day.period = DAY_SECONDS;
    d->day.slots = (int)(DAY_SECONDS / step);
    if (d->day.slots > DAY_SLOTS_MAX)
        d->day.slots = DAY_SLOTS_MAX;
    d->day.slot_seconds = (DAY_SECONDS + d->day.slots - 1) / d->day.slots;
    d->week.period = WEEK_SECONDS;
    d->week.slots = d->day.slots * 7;
    if (d->week.slots > WEEK_SLOTS_MAX)
        d->week.slots = WEEK_SLOTS_MAX;
    d->week.slot_seconds = (WEEK_SECONDS + d->week.slots - 1) / d->week.slots;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static void learn_step(bp_detector_t *d, int64_t ts)
{
    if (d->ndts >= STEP_SAMPLES || d->n == 0 || ts <= d->last_ts)
        return;
    d->dts[d->ndts++] = ts - d->last_ts;
    if (d->ndts == STEP_SAMPLES) {
        int64_t sorted[STEP_SAMPLES];
        memcpy(sorted, d->dts, sizeof(sorted));
        qsort(sorted, STEP_SAMPLES, sizeof(sorted[0]), cmp_i64);
        configure_profiles(d, sorted[STEP_SAMPLES / 2]);
    }
}

static int slot_of(const profile_t *pr, int64_t ts)
{
    int64_t r = ts % pr->period;
    if (r < 0)
        r += pr->period;
    int s = (int)(r / pr->slot_seconds);
    return s < pr->slots ? s : pr->slots - 1;
}

/* The spread of a seasonal forecaster in slot s: errors scale with the slot (a busy afternoon
 * is noisier than the night), so after SLOT_SPREAD_VISITS visits the slot's own error scale
 * counts, as the geometric mean with the forecaster's overall spread (a few visits make a
 * noisy estimate: half the weight goes to the steadier overall figure). */
static double slot_spread(const profile_t *pr, int s, double overall)
{
    if (pr->seen[s] < SLOT_SPREAD_VISITS)
        return overall;
    return sqrt(overall * (double)pr->spread[s]);
}

/* Histogram position of a surprise u >= 0: quarter decades up to 8, then 8 bins per
 * doubling up to 128 (the last bin holds everything above). */
static double surprise_bin(double u)
{
    double pos = u < 8 ? u / 0.25 : 32 + 8 * log2(u / 8);
    return pos < SURPRISE_BINS - 1 ? pos : SURPRISE_BINS - 1;
}

/* -log10 of the probability of a surprise of at least u in histogram h: its tail, plus a
 * prior of surprise_prior points drawn from the ideal model (where a surprise of u decades
 * has probability 10^-u) that extrapolates beyond what was seen. */
static double rarity(const bp_detector_t *d, const hist_t *h, double u)
{
    double pos = surprise_bin(u / SURPRISE_SLACK);
    int b = (int)pos;
    double above = 0;
    for (int i = b + 1; i < SURPRISE_BINS; i++)
        above += h->bin[i];
    if (b < SURPRISE_BINS - 1)
        above += h->bin[b] * ((b + 1) - pos); /* the part of u's bin above it */
    else if (b == SURPRISE_BINS - 1)
        above += h->bin[b]; /* the last bin: everything that big counts as at least u */
    double n0 = d->p.surprise_prior;
    double total = h->total / h->weight;
    double pr = (above / h->weight + n0 * pow(10, -u)) / (total + n0);
    return -log10(pr);
}

static void hist_learn(hist_t *h, double u, double alpha)
{
    int b = (int)surprise_bin(u);
    h->bin[b] += h->weight;
    h->total += h->weight;
    /* Decay by weighting later points more; renormalise before overflow. */
    h->weight /= 1 - alpha;
    if (h->weight > 1e200) {
        for (int i = 0; i < SURPRISE_BINS; i++)
            h->bin[i] /= h->weight;
        h->total /= h->weight;
        h->weight = 1;
    }
}

/* -log10 of the upper Gaussian tail beyond z (0 for z <= 0); the asymptotic form where erfc
 * underflows. */
static double gauss_tail_bits(double z)
{
    if (!(z > 0))
        return 0;
    if (z < 30)
        return -log10(0.5 * erfc(z / M_SQRT2));
    return z * z / 2 * LOG10E + log10(z * 2.5066282746310002); /* sqrt(2 pi) */
}

void bp_detector_update(bp_detector_t *d, int64_t ts, double value, bp_verdict_t *out)
{
    const bp_detector_params_t *p = &d->p;
    double f[M_COUNT];
    bool usable[M_COUNT] = {true, false, false};
    int slot[M_COUNT] = {-1, -1, -1};
    profile_t *prof[M_COUNT] = {NULL, &d->day, &d->week};

    if (d->n == 0 && isfinite(value))
        d->m[M_LEVEL].level = value; /* the seasonal models' levels are deviations: 0 */
    for (int i = 0; i < M_COUNT; i++) {
        f[i] = d->m[M_LEVEL].level;
        if (prof[i] != NULL && prof[i]->slots > 0) {
            slot[i] = slot_of(prof[i], ts);
            if (prof[i]->seen[slot[i]] > 0) {
                f[i] = prof[i]->value[slot[i]] + d->m[i].level;
                usable[i] = true;
            }
        }
    }

    /* The forecaster that decides: the smallest recent error, a seasonal one only when clearly
     * better than the simpler one (weekly against daily, daily against level). */
    int best = M_LEVEL;
    if (usable[M_DAY] && d->m[M_DAY].cost < d->m[M_LEVEL].cost - p->seasonal_margin)
        best = M_DAY;
    if (usable[M_WEEK] && d->m[M_WEEK].cost < d->m[best].cost - p->seasonal_margin)
        best = M_WEEK;

    double expected = f[best];
    double floor_abs = 1e-9 * (1 + fabs(expected)) + 1e-3 * d->m[M_LEVEL].spread;
    if (d->counts && p->count_floor > 0)
        floor_abs = fmax(floor_abs, p->count_floor * sqrt(fmax(expected, 0) + 1));
    double spread[M_COUNT];
    for (int i = 0; i < M_COUNT; i++)
        spread[i] =
            fmax(i == M_LEVEL || !usable[i] ? d->m[i].spread : slot_spread(prof[i], slot[i], d->m[i].spread),
                 floor_abs);

    out->expected = expected;
    out->lower = expected - p->band_z * spread[best];
    out->upper = expected + p->band_z * spread[best];
    if (d->counts && out->lower < 0)
        out->lower = 0;
    out->score = out->raw = 0;
    out->learning = d->n < (uint64_t)p->learning_points;
    out->method = out->learning ? "learning" : method_names[best];

    if (!isfinite(value) || (d->n > 0 && ts < d->last_ts))
        return;

    double e[M_COUNT], z[M_COUNT];
    for (int i = 0; i < M_COUNT; i++) {
        e[i] = value - f[i];
        z[i] = e[i] / spread[i];
    }

    /* Surprise: one point against a Laplace tail (errors are heavy-tailed), and the short run
     * of errors (a level shift, an outage) against the Gaussian tail of its mean. */
    double run_sd = sqrt(p->run_alpha / (2 - p->run_alpha));
    double runs[M_COUNT], us[M_COUNT];
    for (int i = 0; i < M_COUNT; i++) {
        runs[i] = d->m[i].run + p->run_alpha * (clampd(z[i], -p->clip, p->clip) - d->m[i].run);
        us[i] = fmax(fabs(z[i]), fabs(runs[i]) / run_sd) * LOG10E;
        if (!(us[i] < SURPRISE_MAX)) /* also NaN, from absurd values (1e308 - -1e308) */
            us[i] = SURPRISE_MAX;
    }
    double surprise = us[best];
    /* How rare under the deciding forecaster's own surprises; while it has none yet (a
     * seasonal profile chosen before any slot matured), the level forecaster's stand in. */
    const hist_t *h = &d->hist[best];
    if (h->total / h->weight < 0.5)
        h = &d->hist[M_LEVEL];
    double bits = rarity(d, h, surprise);
    /* Density: the short average of capped surprises, as a Gaussian tail against its own
     * long-run mean and variance (the evidence of many points, not of the latest one). */
    double dens = d->dens_short + p->dens_alpha * (fmin(surprise, p->dens_cap) - d->dens_short);
    if (d->dens_n > 0 && !out->learning) {
        double zd = (dens - d->dens_mean) / (sqrt(d->dens_var) + 0.01 * p->dens_cap);
        bits = fmax(bits, gauss_tail_bits(zd));
    }

    if (!out->learning) {
        out->raw = clampd(bits / p->score_bits, 0, 1);
        out->score = out->raw;
        /* An alert damps the points after it for damp_seconds (not extended by them): a
         * later point passes undamped only when it scores damp_beat times the alert's score
         * (a score creeping up through an episode is the same episode, not a new one). */
        bool damped = d->damping && ts <= d->damp_until;
        if (damped && out->raw < d->damp_peak * p->damp_beat)
            out->score = out->raw * p->damp_factor;
        else if (out->raw >= p->alert_score) {
            d->damping = true;
            d->damp_peak = out->raw;
            d->damp_until = ts + p->damp_seconds;
        }
    }

    /* Learn. Early on the weights are 1/n so the first points give running means. */
    double boot = 1.0 / (double)(d->n + 1);
    double sa = fmax(p->spread_alpha, boot);
    for (int i = 0; i < M_COUNT; i++) {
        model_t *m = &d->m[i];
        /* While learning nothing is clipped: there is no spread to trust yet. */
        double lim = out->learning ? INFINITY : p->clip * spread[i];
        double ec = clampd(e[i], -lim, lim);
        double run_i = runs[i];
        if (!out->learning && (i == M_LEVEL || (usable[i] && prof[i]->seen[slot[i]] >= p->slot_boot)))
            hist_learn(&d->hist[i], us[i], p->surprise_alpha);
        /* A sustained error (the short run agrees) is a level shift: learn it unclipped. */
        double el = fabs(run_i) >= p->sustain && run_i * e[i] > 0 ? e[i] : ec;
        m->cost += fmax(p->select_alpha, boot) * (log(spread[i]) + fmin(fabs(z[i]), 2 * p->clip) - m->cost);
        m->spread += sa * (fabs(ec) - m->spread);
        m->run = run_i;
        m->n++;
        if (i == M_LEVEL) {
            m->level += fmax(p->fast_alpha, boot) * el;
            continue;
        }
        if (slot[i] < 0)
            continue;
        /* Seasonal: the profile holds the typical value of each slot; the level of the model
         * is the recent deviation from the profile (a shift, a trend), which the profile takes
         * in over a few periods. */
        profile_t *pr = prof[i];
        int s = slot[i];
        if (pr->seen[s] < p->slot_boot) {
            /* the first visits of a slot: running mean, unclipped (nothing to trust yet) */
            pr->value[s] += (value - m->level - pr->value[s]) / (pr->seen[s] + 1);
        } else {
            pr->value[s] += p->season_gamma * (m->level + el);
            m->level += p->level_alpha * el;
        }
        /* The slot's own error scale, from the clipped error: the first visit starts it no
         * smaller than the forecaster's spread, so one lucky visit cannot make it tight. */
        if (pr->seen[s] == 0)
            pr->spread[s] = (float)fmax(fabs(ec), m->spread);
        else
            pr->spread[s] += (float)(p->season_gamma * (fabs(ec) - pr->spread[s]));
        if (pr->seen[s] < 255)
            pr->seen[s]++;
    }
    d->dens_short = dens;
    if (!out->learning) {
        double la = fmax(p->dens_long_alpha, 1.0 / (double)(d->dens_n + 1));
        double dd = d->dens_short - d->dens_mean;
        d->dens_mean += la * dd;
        d->dens_var = (1 - la) * (d->dens_var + la * dd * dd);
        d->dens_n++;
    }
    if (d->counts && !(value >= 0 && value == floor(value)))
        d->counts = false;
    learn_step(d, ts);
    d->n++;
    d->last_ts = ts;
}
