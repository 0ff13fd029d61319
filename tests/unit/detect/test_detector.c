/*
 * Unit tests of the streaming detector (functions/detect/detector.c, included for its
 * statics) on synthetic series with known truth. "Alerts" means a score at or above the
 * default alert_score, the level where the detector itself starts damping.
 */
#include "../../../functions/detect/detector.c"

#include "../test.h"

#define STEP 300 /* 5-minute points */
#define DAY_POINTS 288
#define T0 1700006400 /* a midnight, UTC */

/* A deterministic noise in [-1, 1) (a fixed LCG: every run sees the same series). */
static double noise(uint32_t *state)
{
    *state = *state * 1664525u + 1013904223u;
    return (double)(*state >> 8) / (double)(1u << 23) - 1.0;
}

/* A business-like daily rhythm: 100 at 03:00 (the nightly dip), 1000 at 15:00. */
static double daily(int64_t ts)
{
    double h = (double)((ts % 86400 + 86400) % 86400) / 3600.0;
    return 550 - 450 * cos((h - 3) / 24 * 2 * M_PI);
}

static int64_t at(int i)
{
    return T0 + (int64_t)i * STEP;
}

static double alert_level(void)
{
    return bp_detector_params_default().alert_score;
}

static void a_flat_noisy_series_produces_no_alert(void)
{
    bp_detector_t *d = bp_detector_new(NULL);
    uint32_t rng = 1;
    bp_verdict_t v;
    double max_score = 0;
    for (int i = 0; i < 7 * DAY_POINTS; i++) {
        bp_detector_update(d, at(i), 50 + noise(&rng), &v);
        max_score = fmax(max_score, v.score);
    }
    CHECK(max_score < alert_level());
    bp_detector_free(d);
}

static void a_constant_series_produces_no_alert_and_a_tight_band(void)
{
    bp_detector_t *d = bp_detector_new(NULL);
    bp_verdict_t v;
    double max_score = 0;
    for (int i = 0; i < 3 * DAY_POINTS; i++) {
        bp_detector_update(d, at(i), 45.5, &v);
        max_score = fmax(max_score, v.score);
    }
    CHECK(max_score == 0);
    CHECK_NEAR(v.expected, 45.5, 1e-9);
    CHECK(v.lower <= 45.5 && v.upper >= 45.5 && v.upper - v.lower < 0.01);
    bp_detector_free(d);
}

static void a_spike_is_caught(void)
{
    bp_detector_t *d = bp_detector_new(NULL);
    uint32_t rng = 2;
    bp_verdict_t v;
    for (int i = 0; i < 3 * DAY_POINTS; i++)
        bp_detector_update(d, at(i), 50 + noise(&rng), &v);
    bp_detector_update(d, at(3 * DAY_POINTS), 65, &v);
    CHECK(v.score >= alert_level());
    CHECK(v.upper < 65);
    CHECK_NEAR(v.expected, 50, 1);
    bp_detector_free(d);
}

static void a_drop_to_zero_of_a_busy_series_is_caught_at_once(void)
{
    bp_detector_t *d = bp_detector_new(NULL);
    uint32_t rng = 3;
    bp_verdict_t v;
    for (int i = 0; i < 3 * DAY_POINTS; i++)
        bp_detector_update(d, at(i), floor(2000 + 40 * noise(&rng)), &v);
    bp_detector_update(d, at(3 * DAY_POINTS), 0, &v);
    CHECK(v.score >= alert_level());
    bp_detector_free(d);
}

/* One week of rhythm with 5% noise, then the level drops by 30% and stays there: caught
 * within a few points, and only the first point of the episode keeps a high score. */
static void a_sustained_30_percent_drop_in_a_daily_series_is_caught_within_a_few_points(void)
{
    bp_detector_t *d = bp_detector_new(NULL);
    uint32_t rng = 4;
    bp_verdict_t v;
    int start = 7 * DAY_POINTS + 12 * 12; /* day 8, noon */
    for (int i = 0; i < start; i++)
        bp_detector_update(d, at(i), daily(at(i)) * (1 + 0.05 * noise(&rng)), &v);
    int caught_after = -1, alerts = 0;
    for (int i = start; i < start + DAY_POINTS; i++) {
        bp_detector_update(d, at(i), 0.7 * daily(at(i)) * (1 + 0.05 * noise(&rng)), &v);
        if (v.score >= alert_level()) {
            alerts++;
            if (caught_after < 0)
                caught_after = i - start;
        }
    }
    printf("# 30%% drop caught after %d points, %d alerting points\n", caught_after, alerts);
    CHECK(caught_after >= 0 && caught_after <= 3);
    CHECK(alerts <= 3);
    bp_detector_free(d);
}

/* The nightly dip is 10% of the afternoon peak: after two days of learning it is expected,
 * and the daily profile is what decides. */
static void the_nightly_dip_of_a_seasonal_series_is_not_flagged_after_two_days(void)
{
    bp_detector_t *d = bp_detector_new(NULL);
    uint32_t rng = 5;
    bp_verdict_t v;
    double max_score = 0;
    int daily_method = 0, n = 0;
    for (int i = 0; i < 9 * DAY_POINTS; i++) {
        bp_detector_update(d, at(i), daily(at(i)) * (1 + 0.05 * noise(&rng)), &v);
        if (i >= 2 * DAY_POINTS) {
            max_score = fmax(max_score, v.score);
            daily_method += strcmp(v.method, "daily") == 0 || strcmp(v.method, "weekly") == 0;
            n++;
        }
    }
    CHECK(max_score < alert_level());
    CHECK(daily_method > n * 9 / 10);
    bp_detector_free(d);
}

/* Noise scales with the rhythm (5% of 100 at night, of 1000 in the afternoon): the band is
 * narrower at night than in the afternoon, and a night point 60% above its usual value, far
 * outside the night's noise though inside the afternoon's, is caught. */
static void a_night_time_jump_within_the_day_time_noise_is_caught(void)
{
    bp_detector_t *d = bp_detector_new(NULL);
    uint32_t rng = 13;
    bp_verdict_t v;
    int night = 7 * DAY_POINTS + 3 * 12; /* day 8, 03:00 */
    double afternoon_width = 0;
    for (int i = 0; i < night; i++) {
        bp_detector_update(d, at(i), daily(at(i)) * (1 + 0.05 * noise(&rng)), &v);
        if (i == night - 12 * 12) /* 15:00 the day before */
            afternoon_width = v.upper - v.lower;
    }
    double x = daily(at(night)) * 1.6;
    bp_detector_update(d, at(night), x, &v);
    printf("# night +60%%: %.0f vs %.0f expected, band %.0f-%.0f (afternoon width %.0f), score %.3f\n", x,
           v.expected, v.lower, v.upper, afternoon_width, v.score);
    CHECK(v.upper - v.lower < afternoon_width / 2);
    CHECK(v.upper < x);
    CHECK(v.score >= alert_level());
    bp_detector_free(d);
}

/* A series whose big spikes are part of its life: +100 on 50 +- 1 every `every` points. */
static double spiky(int i, int every, uint32_t *rng)
{
    return 50 + noise(rng) + (i % every == every / 2 ? 100 : 0);
}

/* Spikes every 5 hours: once a few days have shown them, one more is not news. */
static void the_usual_spikes_of_a_spiky_series_stop_alerting(void)
{
    bp_detector_t *d = bp_detector_new(NULL);
    uint32_t rng = 10;
    bp_verdict_t v;
    int late_alerts = 0;
    for (int i = 0; i < 7 * DAY_POINTS; i++) {
        bp_detector_update(d, at(i), spiky(i, 60, &rng), &v);
        late_alerts += i >= 3 * DAY_POINTS && v.score >= alert_level();
    }
    CHECK_INT(late_alerts, 0);
    bp_detector_free(d);
}

/* The same spikes, then a burst of them (every 3 points, 20 times their usual rate): no
 * single spike is unusual, their rate is, and the density channel says so within the burst. */
static void a_burst_of_usual_spikes_is_caught(void)
{
    bp_detector_t *d = bp_detector_new(NULL);
    uint32_t rng = 11;
    bp_verdict_t v;
    int start = 7 * DAY_POINTS + 7;
    for (int i = 0; i < start; i++)
        bp_detector_update(d, at(i), spiky(i, 60, &rng), &v);
    int caught_after = -1;
    for (int i = start; i < start + 24 && caught_after < 0; i++) {
        bp_detector_update(d, at(i), spiky(i - start + 1, 3, &rng), &v);
        if (v.score >= alert_level())
            caught_after = i - start;
    }
    printf("# burst of spikes caught after %d points\n", caught_after);
    CHECK(caught_after >= 0 && caught_after <= 12);
    bp_detector_free(d);
}

/* After an alert, the next day's points are damped (one episode, one alert), even a somewhat
 * stronger one (a score creeping up through an episode), unless one is at least damp_beat
 * times as strong: a far bigger anomaly still gets through. */
static void a_much_stronger_anomaly_passes_the_damping_of_a_weaker_one(void)
{
    bp_detector_t *d = bp_detector_new(NULL);
    uint32_t rng = 12;
    bp_verdict_t v;
    int i = 0;
    for (; i < 3 * DAY_POINTS; i++)
        bp_detector_update(d, at(i), 50 + noise(&rng), &v);
    bp_detector_update(d, at(i++), 58, &v);
    double first = v.score;
    printf("# first alert %.3f\n", first);
    CHECK(first >= alert_level() && first < 0.5);
    bp_detector_update(d, at(i++), 50 + noise(&rng), &v);
    bp_detector_update(d, at(i++), 60, &v); /* a little stronger: still the same episode */
    printf("# then %.3f raw, damped to %.3f\n", v.raw, v.score);
    CHECK(v.score == 0 && v.raw > first);
    bp_detector_update(d, at(i++), 5000, &v);
    CHECK(v.score >= 2 * first);
    bp_detector_free(d);
}

static void learning_is_reported_at_the_start(void)
{
    bp_detector_params_t p = bp_detector_params_default();
    bp_detector_t *d = bp_detector_new(&p);
    bp_verdict_t v;
    bp_detector_update(d, at(0), 10, &v);
    CHECK(v.learning);
    CHECK_STR(v.method, "learning");
    CHECK(v.score == 0);
    CHECK_NEAR(v.expected, 10, 1e-12);
    for (int i = 1; i < p.learning_points; i++) {
        bp_detector_update(d, at(i), i % 2 ? 1000 : -1000, &v); /* wild, but learning */
        CHECK(v.learning && v.score == 0);
    }
    bp_detector_update(d, at(p.learning_points), 0, &v);
    CHECK(!v.learning);
    CHECK(strcmp(v.method, "learning") != 0);
    CHECK_INT(bp_detector_points(d), p.learning_points + 1);
    bp_detector_free(d);
}

static void bands_contain_typical_points(void)
{
    bp_detector_t *d = bp_detector_new(NULL);
    uint32_t rng = 6;
    bp_verdict_t v;
    int inside = 0, n = 0;
    for (int i = 0; i < 9 * DAY_POINTS; i++) {
        double x = daily(at(i)) * (1 + 0.05 * noise(&rng));
        bp_detector_update(d, at(i), x, &v);
        CHECK(v.lower <= v.expected && v.expected <= v.upper);
        if (i >= 3 * DAY_POINTS) {
            inside += v.lower <= x && x <= v.upper;
            n++;
        }
    }
    printf("# %d of %d typical points inside the band\n", inside, n);
    CHECK(inside >= n * 95 / 100);
    bp_detector_free(d);
}

static void the_same_points_give_the_same_verdicts(void)
{
    bp_detector_t *a = bp_detector_new(NULL), *b = bp_detector_new(NULL);
    uint32_t rng = 7;
    int same = 1;
    for (int i = 0; i < 4 * DAY_POINTS; i++) {
        double x = daily(at(i)) * (1 + 0.2 * noise(&rng)) + (i % 500 == 0 ? 3000 : 0);
        bp_verdict_t va, vb;
        bp_detector_update(a, at(i), x, &va);
        bp_detector_update(b, at(i), x, &vb);
        same &= va.score == vb.score && va.raw == vb.raw && va.expected == vb.expected &&
                va.lower == vb.lower && va.upper == vb.upper && va.learning == vb.learning &&
                strcmp(va.method, vb.method) == 0;
    }
    CHECK(same);
    bp_detector_free(a);
    bp_detector_free(b);
}

static void low_count_wiggles_do_not_alert(void)
{
    bp_detector_t *d = bp_detector_new(NULL);
    uint32_t rng = 8;
    bp_verdict_t v;
    double max_score = 0;
    for (int i = 0; i < 7 * DAY_POINTS; i++) {
        double u = noise(&rng);
        bp_detector_update(d, at(i), u > 0.9 ? 2 : u > 0.4 ? 1 : 0, &v);
        max_score = fmax(max_score, v.score);
    }
    CHECK(max_score < alert_level());
    CHECK(v.lower >= 0);
    bp_detector_free(d);
}

static void gaps_irregular_steps_and_bad_values_are_survived(void)
{
    bp_detector_t *d = bp_detector_new(NULL);
    uint32_t rng = 9;
    bp_verdict_t v;
    int64_t ts = T0;
    int finite = 1;
    for (int i = 0; i < 4 * DAY_POINTS; i++) {
        ts += i == 2 * DAY_POINTS ? 86400 : 60 + (int64_t)(240 * (noise(&rng) + 1));
        bp_detector_update(d, ts, i == 100 ? NAN : daily(ts), &v);
        finite &= isfinite(v.score) && isfinite(v.expected) && isfinite(v.lower) && isfinite(v.upper);
        CHECK(v.score >= 0 && v.score <= 1);
    }
    CHECK(finite);
    uint64_t n = bp_detector_points(d);
    CHECK_INT(n, 4 * DAY_POINTS - 1);            /* the NaN was not learnt */
    bp_detector_update(d, ts - 3600, 1e300, &v); /* out of order: scored, not learnt */
    CHECK(v.score >= 0 && v.score <= 1);
    CHECK_INT(bp_detector_points(d), n);
    bp_detector_update(d, ts + 300, -1e308, &v); /* absurd, but finite arithmetic */
    CHECK(v.score >= 0 && v.score <= 1);
    bp_detector_free(d);
}

static void out_of_range_params_are_refused(void)
{
    bp_detector_params_t p = bp_detector_params_default();
    p.level_alpha = 0;
    CHECK(bp_detector_new(&p) == NULL);
    p = bp_detector_params_default();
    p.learning_points = 1;
    CHECK(bp_detector_new(&p) == NULL);
    p = bp_detector_params_default();
    p.surprise_alpha = 1;
    CHECK(bp_detector_new(&p) == NULL);
    p = bp_detector_params_default();
    p.damp_beat = 0.5;
    CHECK(bp_detector_new(&p) == NULL);
    p = bp_detector_params_default();
    p.dens_alpha = 0;
    CHECK(bp_detector_new(&p) == NULL);
    bp_detector_free(NULL);
}

int main(void)
{
    RUN(a_flat_noisy_series_produces_no_alert);
    RUN(a_constant_series_produces_no_alert_and_a_tight_band);
    RUN(a_spike_is_caught);
    RUN(a_drop_to_zero_of_a_busy_series_is_caught_at_once);
    RUN(a_sustained_30_percent_drop_in_a_daily_series_is_caught_within_a_few_points);
    RUN(the_nightly_dip_of_a_seasonal_series_is_not_flagged_after_two_days);
    RUN(a_night_time_jump_within_the_day_time_noise_is_caught);
    RUN(the_usual_spikes_of_a_spiky_series_stop_alerting);
    RUN(a_burst_of_usual_spikes_is_caught);
    RUN(a_much_stronger_anomaly_passes_the_damping_of_a_weaker_one);
    RUN(learning_is_reported_at_the_start);
    RUN(bands_contain_typical_points);
    RUN(the_same_points_give_the_same_verdicts);
    RUN(low_count_wiggles_do_not_alert);
    RUN(gaps_irregular_steps_and_bad_values_are_survived);
    RUN(out_of_range_params_are_refused);
    TEST_DONE();
}
