/* Rate-aware scoring: the same 30% drop of a success rate is noise over 20 attempts and an
 * incident over 20 000; learning until enough history; ratios above 1 are Poisson rates. */
#include "../test.h"
#include "ratio.h"
#include "score.h"

/* History: rate 0.88 with a realistic 1-point wobble, at a given volume. */
static void history(double *num, double *den, size_t n, double volume)
{
    for (size_t i = 0; i < n; i++) {
        den[i] = volume;
        num[i] = volume * (0.88 + ((double)(i % 5) - 2) * 0.005);
    }
}

static void a_30_percent_drop_over_20_attempts_is_noise(void)
{
    double num[180], den[180];
    history(num, den, 180, 20);
    bp_ratio_verdict_t v;
    bp_ratio_score(num, den, 180, 20 * 0.88 * 0.7, 20, 5.0, &v);
    CHECK(v.verdict);
    CHECK(!v.anomaly);
    CHECK_NEAR(v.p0, 0.88, 1e-9);
    CHECK(v.score < 0.5);
}

static void the_same_drop_over_20000_attempts_is_an_incident(void)
{
    double num[180], den[180];
    history(num, den, 180, 20000);
    bp_ratio_verdict_t v;
    bp_ratio_score(num, den, 180, 20000 * 0.88 * 0.7, 20000, 5.0, &v);
    CHECK(v.verdict);
    CHECK(v.anomaly);
    CHECK(v.z < -5);
    CHECK(v.lower > 0.8 && v.upper < 0.95);
}

static void normal_wobble_at_high_volume_is_not_flagged(void)
{
    double num[180], den[180];
    history(num, den, 180, 20000);
    bp_ratio_verdict_t v;
    bp_ratio_score(num, den, 180, 20000 * 0.89, 20000, 5.0, &v);
    CHECK(v.verdict && !v.anomaly);
}

static void too_little_history_or_no_denominator_gives_no_verdict(void)
{
    double num[180], den[180];
    history(num, den, 180, 100);
    bp_ratio_verdict_t v;
    bp_ratio_score(num, den, BP_RATIO_MIN_HISTORY - 1, 10, 100, 5.0, &v);
    CHECK(!v.verdict);
    bp_ratio_score(num, den, 180, 0, 0, 5.0, &v);
    CHECK(!v.verdict);
}

static void a_count_moving_0_to_1_is_not_an_anomaly_but_a_drop_to_zero_is(void)
{
    /* Mostly 0 with rare 1s: σ tiny, so the bare 3σ rule would flag every 1. */
    int64_t ts[200];
    double v[200];
    for (size_t i = 0; i < 200; i++) {
        ts[i] = (int64_t)i * 60;
        v[i] = i % 50 == 0 ? 1 : 0;
    }
    v[199] = 1;
    bp_series_t s = {.ts = ts, .value = v, .n = 200};
    bp_point_t p[1];
    size_t hn[1];
    bp_score_series(BP_METHOD_SIGMA3, &s, 199, 5.0, p, hn);
    CHECK(p[0].anomaly); /* the original rule, for parity */
    bp_score_series(BP_METHOD_AUTO_COUNT, &s, 199, 5.0, p, hn);
    CHECK(p[0].verdict && !p[0].anomaly);
    /* A busy series (≈200/min) dropping to zero is news. */
    for (size_t i = 0; i < 200; i++)
        v[i] = 200 + (double)(i % 7);
    v[199] = 0;
    bp_score_series(BP_METHOD_AUTO_COUNT, &s, 199, 5.0, p, hn);
    CHECK(p[0].anomaly);
    CHECK_INT(hn[0], 180);
}

int main(void)
{
    RUN(a_30_percent_drop_over_20_attempts_is_noise);
    RUN(the_same_drop_over_20000_attempts_is_an_incident);
    RUN(normal_wobble_at_high_volume_is_not_flagged);
    RUN(too_little_history_or_no_denominator_gives_no_verdict);
    RUN(a_count_moving_0_to_1_is_not_an_anomaly_but_a_drop_to_zero_is);
    TEST_DONE();
}
