/* The seasonal Poisson test of counts: the same time on previous days is the expectation, the
 * level follows a quiet day but not an outage, and low-count wiggles are not news. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#include "../test.h"
#include "poisson.h"

#define IV 300 /* 5-minute intervals */
#define PER_DAY (86400 / IV)
#define DAYS 4

/* A daily rhythm between ~10 and ~190 per interval, a deterministic wobble of +-3%. */
static double rhythm(size_t i)
{
    double phase = (double)(i % PER_DAY) / PER_DAY;
    double base = 100 - 90 * cos(2 * 3.141592653589793 * phase);
    return round(base * (1 + 0.03 * (double)((int)(i * 7919 % 7) - 3) / 3));
}

static size_t build(int64_t *ts, double *v)
{
    size_t n = DAYS * PER_DAY;
    for (size_t i = 0; i < n; i++) {
        ts[i] = 1795000000 - 1795000000 % 86400 + (int64_t)i * IV;
        v[i] = rhythm(i);
    }
    return n;
}

static size_t anomalies(const bp_point_t *p, size_t n)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        k += p[i].anomaly;
    return k;
}

static int64_t ts[DAYS * PER_DAY];
static double v[DAYS * PER_DAY];
static bp_point_t out[PER_DAY];
static size_t hn[PER_DAY];

static void an_ordinary_day_has_no_anomaly(void)
{
    size_t n = build(ts, v);
    CHECK_INT(bp_poisson_score(ts, v, n, n - PER_DAY, out, hn), 0);
    CHECK_INT(anomalies(out, PER_DAY), 0);
    CHECK(out[0].verdict);
    CHECK_INT(hn[0], DAYS - 1);
}

static void an_outage_at_the_peak_is_anomalous_for_as_long_as_it_lasts(void)
{
    size_t n = build(ts, v);
    size_t peak = n - PER_DAY + PER_DAY / 2;
    for (size_t i = peak; i < peak + 12; i++)
        v[i] = 0;
    bp_poisson_score(ts, v, n, n - PER_DAY, out, hn);
    for (size_t i = peak; i < peak + 12; i++)
        CHECK(out[i - (n - PER_DAY)].anomaly);
    CHECK_INT(anomalies(out, PER_DAY), 12);
}

static void a_quiet_day_at_60_percent_is_absorbed_by_the_level(void)
{
    size_t n = build(ts, v);
    for (size_t i = n - PER_DAY; i < n; i++)
        v[i] = round(v[i] * 0.6);
    bp_poisson_score(ts, v, n, n - PER_DAY, out, hn);
    /* the first intervals, at night, may be scored before the level settles */
    CHECK(anomalies(out, PER_DAY) <= 2);
}

static void low_counts_moving_by_one_or_two_are_not_anomalies(void)
{
    size_t n = build(ts, v);
    for (size_t i = 0; i < n; i++)
        v[i] = (double)(i % 3 == 0); /* 0, 1 */
    for (size_t i = n - PER_DAY; i < n; i += 7)
        v[i] = 2;
    bp_poisson_score(ts, v, n, n - PER_DAY, out, hn);
    CHECK_INT(anomalies(out, PER_DAY), 0);
}

static void without_a_day_of_history_there_is_no_verdict_and_one_day_gives_a_wider_band(void)
{
    size_t n = build(ts, v);
    bp_poisson_score(ts, v, PER_DAY - 1, 0, out, hn);
    CHECK(!out[0].verdict);
    CHECK_INT(hn[0], 0);
    /* One previous day: a verdict, but the expectation rests on one day's events. */
    size_t at = PER_DAY + PER_DAY / 2;
    bp_poisson_score(ts, v, at + 1, at, out, hn);
    CHECK(out[0].verdict);
    CHECK_INT(hn[0], 1);
    double one_day = out[0].upper - out[0].lower;
    bp_poisson_score(ts, v, n - PER_DAY + PER_DAY / 2 + 1, n - PER_DAY + PER_DAY / 2, out, hn);
    CHECK_INT(hn[0], DAYS - 1);
    CHECK(out[0].upper - out[0].lower < one_day);
}

/* A deterministic Poisson draw (Knuth) from a small LCG. */
static unsigned lcg = 12345;
static double draw(double lam)
{
    double limit = exp(-lam), p = 1;
    int k = -1;
    do {
        lcg = lcg * 1103515245u + 12345u;
        p *= ((lcg >> 8) & 0xffffff) / 16777216.0 + 1e-9;
        k++;
    } while (p > limit);
    return k;
}

#define NIGHT_DAYS 8
#define MIN_PER_DAY 1440
static int64_t nts[NIGHT_DAYS * MIN_PER_DAY];
static double nv[NIGHT_DAYS * MIN_PER_DAY];
static bp_point_t nout[MIN_PER_DAY];
static size_t nhn[MIN_PER_DAY];

static void a_quiet_series_of_0_to_3_a_minute_has_no_anomaly_and_a_nonzero_expectation(void)
{
    size_t n = NIGHT_DAYS * MIN_PER_DAY;
    for (size_t i = 0; i < n; i++) {
        nts[i] = 1795000000 - 1795000000 % 86400 + (int64_t)i * 60;
        nv[i] = draw(0.8);
    }
    bp_poisson_score(nts, nv, n, n - MIN_PER_DAY, nout, nhn);
    size_t zero = 0;
    for (size_t i = 0; i < MIN_PER_DAY; i++)
        zero += nout[i].expected < 0.3;
    CHECK_INT(anomalies(nout, MIN_PER_DAY), 0);
    /* a median of seven same-minute counts is often 0; pooled neighbours are not */
    CHECK_INT(zero, 0);
}

static void an_outage_of_a_quiet_series_is_caught_by_its_sum_within_minutes(void)
{
    size_t n = NIGHT_DAYS * MIN_PER_DAY;
    for (size_t i = 0; i < n; i++) {
        nts[i] = 1795000000 - 1795000000 % 86400 + (int64_t)i * 60;
        nv[i] = draw(7);
    }
    size_t at = n - MIN_PER_DAY + 600; /* 30 minutes of nothing */
    for (size_t i = at; i < at + 30; i++)
        nv[i] = 0;
    bp_poisson_score(nts, nv, n, n - MIN_PER_DAY, nout, nhn);
    size_t first = 0, drift = 0;
    for (size_t i = at; i < at + 30; i++) {
        /* one empty minute where 7 are expected is not news by itself */
        CHECK(nout[i - (n - MIN_PER_DAY)].anomaly == nout[i - (n - MIN_PER_DAY)].drift);
        if (nout[i - (n - MIN_PER_DAY)].anomaly && first == 0)
            first = i - at + 1;
        drift += nout[i - (n - MIN_PER_DAY)].drift;
    }
    /* 11 here: the overdispersion now also counts the outage's first unflagged zeros */
    CHECK(first > 0 && first <= 12);
    CHECK(drift >= 10);
    CHECK_INT(anomalies(nout, MIN_PER_DAY), drift);
}

/* The demo's case: a few hundred a minute with a daily rhythm, one previous day of history, then -30%
 * for 40 minutes, all of day 2 scored in one window as a catch-up does (with no history
 * before the window, a fixed overdispersion made the band +-50% wide and the drop passed). */
static int64_t bts[2 * MIN_PER_DAY];
static double bv[2 * MIN_PER_DAY];
static bp_point_t bout[MIN_PER_DAY];
static size_t bhn[MIN_PER_DAY];

static void a_30_percent_drop_of_a_busy_count_is_caught_with_one_day_of_history(void)
{
    size_t n = 2 * MIN_PER_DAY, at = n - 40, first = MIN_PER_DAY;
    for (size_t i = 0; i < n; i++) {
        bts[i] = 1795000000 - 1795000000 % 86400 + (int64_t)i * 60;
        double lam = 400 * (1 + 0.4 * sin(2 * 3.141592653589793 * (double)(i % MIN_PER_DAY) / MIN_PER_DAY));
        bv[i] = round(lam + sqrt(lam) * (draw(100) - 100) / 10); /* ~Poisson(lam) */
        if (i >= at)
            bv[i] = round(bv[i] * 0.7);
    }
    bp_poisson_score(bts, bv, n, first, bout, bhn);
    size_t before = anomalies(bout, at - first), caught = 0;
    for (size_t i = at; i < n && caught == 0; i++)
        if (bout[i - first].anomaly)
            caught = i - at + 1;
    CHECK(before <= 1); /* 1400 Poisson draws hold a 4-sigma one now and then */
    CHECK(caught >= 1 && caught <= 2);
    CHECK_INT(bhn[0], 1);
}

int main(void)
{
    RUN(an_ordinary_day_has_no_anomaly);
    RUN(an_outage_at_the_peak_is_anomalous_for_as_long_as_it_lasts);
    RUN(a_quiet_day_at_60_percent_is_absorbed_by_the_level);
    RUN(low_counts_moving_by_one_or_two_are_not_anomalies);
    RUN(without_a_day_of_history_there_is_no_verdict_and_one_day_gives_a_wider_band);
    RUN(a_quiet_series_of_0_to_3_a_minute_has_no_anomaly_and_a_nonzero_expectation);
    RUN(an_outage_of_a_quiet_series_is_caught_by_its_sum_within_minutes);
    RUN(a_30_percent_drop_of_a_busy_count_is_caught_with_one_day_of_history);
    TEST_DONE();
}
