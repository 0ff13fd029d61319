/*
 * detector: the streaming anomaly detector of one series (DESIGN §6 "seasonal"), used by
 * `bizpulse-detect score --csv` and by the live path.
 *
 * Each point is scored against what the series' own history predicts, then learnt: one pass,
 * O(1) work per point, a fixed amount of memory per series whatever its length (one
 * allocation of about 32 KB, sized for a weekly profile at 5-minute resolution). The same
 * points in the same order give bit-identical verdicts, so the live path can replay a
 * series' stored history and then score the new points.
 *
 * How a point is scored (details in detector.c):
 *  - three forecasters run side by side: a robust level (no seasonality), a time-of-day
 *    profile and a time-of-week profile, each profile plus a fast level of deviation from it
 *    (trend, level shift). Slots are keyed on the timestamp, so gaps and irregular steps are
 *    fine. Learning clips errors to a few spreads unless they persist, so a spike or an
 *    outage does not poison the baselines while a real level shift is taken in; the
 *    forecaster with the best recent error likelihood decides the expected value and band;
 *    a profile's spread also follows its slot (a busy afternoon is noisier than the night);
 *  - the error, in spreads, becomes a surprise (decades of improbability) over one point and
 *    over a short run of points (level shifts, drops to zero); the point's evidence is how
 *    rare that surprise is for this series under the deciding forecaster (a decaying
 *    histogram of that forecaster's past surprises), so a heavy-tailed series must do
 *    something unusual *for it* to alert;
 *  - a second channel, density, weighs a short average of (capped) surprises against its
 *    long-run mean and spread: a burst of moderately surprising points, a change of spike
 *    rate or of noise, that no single point shows; the score is the stronger evidence;
 *  - once a point alerts, the points of the next damp_seconds score 0 unless they score
 *    damp_beat times as much: the score says "a new anomaly starts here" (what NAB rewards
 *    and an incident needs); verdict.raw keeps the undamped score; the band and expected
 *    value are not affected;
 *  - counts (every value so far a non-negative integer) get a Poisson floor on the spread,
 *    so 0 -> 1 wiggles of a low-volume series do not alert.
 *
 * Timestamps are int64 seconds (UTC). Points must come in non-decreasing time order; a point
 * older than the previous one is scored but not learnt (see bp_detector_update).
 *
 * Threads: a bp_detector_t is not thread-safe; use one per series per thread. The params
 * functions are pure.
 */
#ifndef BP_DETECTOR_H
#define BP_DETECTOR_H

#include <stdbool.h>
#include <stdint.h>

typedef struct st_bp_detector_t bp_detector_t;

/* Tuning knobs. One set for every series: take bp_detector_params_default() and change a
 * field only with a reason. Counts are in points, durations in seconds. */
typedef struct st_bp_detector_params_t {
    int learning_points;    /* points before the first non-learning verdict (>= 2) */
    double level_alpha;     /* EWMA weight of the level of the seasonal forecasters */
    double fast_alpha;      /* EWMA weight of the level of the non-seasonal forecaster */
    double season_gamma;    /* weight of a new observation in its time-of-day/week slot */
    double spread_alpha;    /* EWMA weight of the robust spread (mean absolute error) */
    double clip;            /* learning clips errors to +- clip spreads */
    double sustain;         /* ... unless the short run of errors is this many spreads */
    double run_alpha;       /* EWMA weight of the short run of errors (level shifts) */
    double surprise_alpha;  /* decay per point of the histogram of the series' surprises */
    double surprise_prior;  /* weight (points) of the ideal model's surprises in it */
    double seasonal_margin; /* a seasonal forecaster decides only when its cost is lower by this */
    double select_alpha;    /* EWMA weight of the cost (error log-likelihood) that picks the forecaster */
    int slot_boot;          /* visits of a profile slot learnt as a plain mean, unclipped */
    double score_bits;      /* surprise (in -log10 p) that maps to score 1 */
    double alert_score;     /* a score at or above this is an alert and starts damping */
    int64_t damp_seconds;   /* how long later points of the same episode are damped */
    double damp_factor;     /* damped score = score x damp_factor, unless ... */
    double damp_beat;       /* ... it is at least damp_beat x the alert's score (>= 1) */
    double count_floor;     /* Poisson floor for counts: spread >= count_floor x sqrt(mean + 1) */
    double band_z;          /* band half-width in spreads (mean absolute errors) */
    double dens_alpha;      /* EWMA weight of the short average of capped surprises */
    double dens_long_alpha; /* EWMA weight of the long-run mean/variance of that average */
    double dens_cap;        /* surprises are capped at this many decades in the average */
} bp_detector_params_t;

/* The verdict on one point. method points to a static string: "learning", "level",
 * "daily" or "weekly". */
typedef struct st_bp_verdict_t {
    double score;        /* in [0, 1]: how strongly a new anomaly starts at this point; 0 while learning */
    double raw;          /* in [0, 1]: the same before damping repeated alerts */
    double expected;     /* forecast for this point (before it was learnt) */
    double lower, upper; /* band: values between are typical; lower <= expected <= upper */
    bool learning;       /* too little history: score is 0, expected/band are a rough fallback */
    const char *method;
} bp_verdict_t;

/* The defaults, the parameters measured on NAB (see the closing note of issue 5). */
bp_detector_params_t bp_detector_params_default(void);

/* A new detector with no history. p NULL means the defaults; p is copied. Returns NULL when
 * out of memory or when p is out of range (an alpha outside (0, 1], a count or width <= 0).
 * Free with bp_detector_free. */
bp_detector_t *bp_detector_new(const bp_detector_params_t *p);

/* Scores (ts, value) against the history, fills *out, then learns the point. A value that is
 * not finite (NaN, inf) is scored 0 with the current forecast and not learnt; a point older
 * than the latest one learnt is scored but not learnt. Never fails. */
void bp_detector_update(bp_detector_t *d, int64_t ts, double value, bp_verdict_t *out);

/* Points learnt so far. */
uint64_t bp_detector_points(const bp_detector_t *d);

/* No operation when d is NULL. */
void bp_detector_free(bp_detector_t *d);

#endif
