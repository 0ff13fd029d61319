/* Rate-aware scoring: the same 30% drop of a success rate is noise over 20 attempts and an
 * incident over 20 000; learning until enough history; ratios above 1 are Poisson rates. */
#include <math.h>
#include <string.h>

#include "../test.h"
#include "incident.h"
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

/* 300 five-minute intervals of 1000 attempts at 0.88 (with the wobble), then a decline of
 * `drop` (relative) built linearly over 48 intervals and held for 24, then recovered. */
#define DN 420
static int64_t dts[DN];
static double dnum[DN], dden[DN], dval[DN];
static bp_point_t dout[DN];
static size_t dhn[DN];

static void decline(double drop)
{
    for (size_t i = 0; i < DN; i++) {
        double f = i < 300 ? 0 : i < 348 ? (double)(i - 300 + 1) / 48 : i < 372 ? 1 : 0;
        dts[i] = 1795000000 + (int64_t)i * 300;
        dden[i] = 1000;
        dnum[i] = round(1000 * (0.88 + ((double)(i % 5) - 2) * 0.005) * (1 - drop * f));
        dval[i] = dnum[i] / dden[i];
    }
}

static void a_slow_10_percent_decline_is_caught_as_a_drift_before_it_is_complete(void)
{
    decline(0.10);
    bp_series_t s = {.ts = dts, .value = dval, .num = dnum, .den = dden, .n = DN};
    CHECK_INT(bp_score_series(BP_METHOD_RATIO, &s, 240, 5.0, dout, dhn), 0);
    size_t first = DN, drift = 0, after = 0;
    for (size_t i = 240; i < DN; i++) {
        const bp_point_t *p = &dout[i - 240];
        if (i < 300)
            CHECK(!p->anomaly);
        if (p->anomaly && first == DN)
            first = i;
        drift += p->drift;
        if (p->drift) {
            CHECK(p->drift_n == 12);
            CHECK(p->drift_actual < p->drift_expected);
        }
        after += i >= 372 + 12 && p->anomaly;
    }
    CHECK(first > 300 && first < 348); /* caught while it builds */
    CHECK(drift > 0);
    CHECK_INT(after, 0); /* an hour after the recovery, nothing is anomalous */
}

static void a_2_percent_wobble_of_the_rate_is_not_a_drift(void)
{
    decline(0.01);
    bp_series_t s = {.ts = dts, .value = dval, .num = dnum, .den = dden, .n = DN};
    bp_score_series(BP_METHOD_RATIO, &s, 240, 5.0, dout, dhn);
    for (size_t i = 240; i < DN; i++)
        CHECK(!dout[i - 240].anomaly);
}

static void a_drift_incident_sentence_gives_the_pooled_numbers_not_a_band_it_never_left(void)
{
    bp_metric_t m = {.name = "signup_rate", .kind = BP_KIND_RATIO};
    bp_point_t p = {.ts = 1795000000,
                    .value = 0.84,
                    .expected = 0.87,
                    .lower = 0.79,
                    .upper = 0.95,
                    .drift = true,
                    .drift_n = 12,
                    .drift_actual = 0.81,
                    .drift_expected = 0.875};
    char out[768];
    bp_incident_summary(&m, "ratio", &p, 1795000000 - 3600, out, sizeof(out));
    CHECK(strstr(out, "signup_rate drifted down: 81.0% vs 87.5% expected (-7%) over the 12 intervals") !=
          NULL);
    CHECK(strstr(out, "outside") == NULL);
    p.drift = false;
    bp_incident_summary(&m, "ratio", &p, 1795000000 - 3600, out, sizeof(out));
    CHECK(strstr(out, "fell to 84.0%") != NULL);
}

/* Three days of 5-minute success rates at 88%, binomial (a small LCG), with 100 attempts an
 * interval at night and 1000 by day. */
#define SN (3 * 288)
static int64_t sts[SN];
static double snum[SN], sden[SN], sval[SN];
static bp_point_t sout[SN];
static size_t shn[SN];
static unsigned seed = 7;

static double binomial(double n, double p)
{
    double k = 0;
    for (int i = 0; i < (int)n; i++) {
        seed = seed * 1103515245u + 12345u;
        k += ((seed >> 8) & 0xffffff) / 16777216.0 < p;
    }
    return k;
}

static void rates(void)
{
    for (size_t i = 0; i < SN; i++) {
        size_t slot = i % 288;
        sts[i] = 1795000000 - 1795000000 % 86400 + (int64_t)i * 300;
        sden[i] = slot < 72 ? 100 : 1000;
        snum[i] = binomial(sden[i], 0.88);
        sval[i] = snum[i] / sden[i];
    }
}

static void seasonal_on_a_rate_ignores_binomial_noise_of_small_denominators_but_sees_a_drop(void)
{
    rates();
    bp_series_t s = {.ts = sts, .value = sval, .num = snum, .den = sden, .n = SN};
    CHECK_INT(bp_score_series(BP_METHOD_SEASONAL, &s, SN - 288, 5.0, sout, shn), 0);
    size_t k = 0;
    for (size_t i = 0; i < 288; i++)
        k += sout[i].anomaly;
    CHECK_INT(k, 0);
    for (size_t i = SN - 100; i < SN - 90; i++) { /* daytime, 30% down */
        snum[i] = round(sden[i] * 0.88 * 0.7);
        sval[i] = snum[i] / sden[i];
    }
    bp_score_series(BP_METHOD_SEASONAL, &s, SN - 288, 5.0, sout, shn);
    CHECK(sout[288 - 100].anomaly && sout[288 - 91].anomaly);
}

static void seasonal_on_a_flat_count_keeps_its_band_so_a_drop_from_60_to_30_is_caught(void)
{
    for (size_t i = 0; i < 720; i++) {
        sts[i] = 1795000000 + (int64_t)i * 60;
        sval[i] = i < 700 ? 60 : 30;
    }
    bp_series_t s = {.ts = sts, .value = sval, .counts = true, .n = 720};
    bp_score_series(BP_METHOD_SEASONAL, &s, 600, 5.0, sout, shn);
    CHECK(sout[100].anomaly); /* 30 vs 60 is under 4 Poisson spreads: a Poisson floor would hide it */
    CHECK(!sout[99].anomaly);
}

int main(void)
{
    RUN(a_30_percent_drop_over_20_attempts_is_noise);
    RUN(the_same_drop_over_20000_attempts_is_an_incident);
    RUN(normal_wobble_at_high_volume_is_not_flagged);
    RUN(too_little_history_or_no_denominator_gives_no_verdict);
    RUN(a_count_moving_0_to_1_is_not_an_anomaly_but_a_drop_to_zero_is);
    RUN(a_slow_10_percent_decline_is_caught_as_a_drift_before_it_is_complete);
    RUN(a_2_percent_wobble_of_the_rate_is_not_a_drift);
    RUN(a_drift_incident_sentence_gives_the_pooled_numbers_not_a_band_it_never_left);
    RUN(seasonal_on_a_rate_ignores_binomial_noise_of_small_denominators_but_sees_a_drop);
    RUN(seasonal_on_a_flat_count_keeps_its_band_so_a_drop_from_60_to_30_is_caught);
    TEST_DONE();
}
