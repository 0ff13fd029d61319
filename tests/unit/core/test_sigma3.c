/* The original 3σ rule against hand-computed cases. */
#include "../test.h"
#include "sigma3.h"

/* 10, 20, 10, 20...: mean 15, population σ exactly 5, band [0, 30]. */
static void fill(double *h, size_t n)
{
    for (size_t i = 0; i < n; i++)
        h[i] = i % 2 ? 20 : 10;
}

static void value_exactly_at_mean_plus_three_sigma_is_not_an_anomaly(void)
{
    double h[180];
    fill(h, 180);
    bp_sigma3_t s;
    bp_sigma3_score(h, 180, 30.0, &s);
    CHECK(s.verdict);
    CHECK_NEAR(s.mean, 15.0, 0);
    CHECK_NEAR(s.stddev, 5.0, 0);
    CHECK_NEAR(s.upper, 30.0, 0);
    CHECK_NEAR(s.lower, 0.0, 0);
    CHECK(!s.anomaly);
    CHECK_NEAR(s.score, 0.5, 1e-12);
}

static void value_just_beyond_three_sigma_is_an_anomaly(void)
{
    double h[180];
    fill(h, 180);
    bp_sigma3_t s;
    bp_sigma3_score(h, 180, 30.001, &s);
    CHECK(s.anomaly);
    bp_sigma3_score(h, 180, -0.001, &s);
    CHECK(s.anomaly);
}

static void fewer_than_90_points_give_no_verdict(void)
{
    double h[89];
    fill(h, 89);
    bp_sigma3_t s;
    bp_sigma3_score(h, 89, 1000.0, &s);
    CHECK(!s.verdict);
    CHECK(!s.anomaly);
    CHECK_INT(s.n, 89);
    double h90[90];
    fill(h90, 90);
    bp_sigma3_score(h90, 90, 1000.0, &s);
    CHECK(s.verdict);
    CHECK(s.anomaly);
}

static void only_the_last_180_points_count(void)
{
    double h[300];
    for (size_t i = 0; i < 120; i++)
        h[i] = 1e6; /* outside the window: must not move the mean */
    fill(h + 120, 180);
    bp_sigma3_t s;
    bp_sigma3_score(h, 300, 25.0, &s);
    CHECK_INT(s.n, 180);
    CHECK_NEAR(s.mean, 15.0, 1e-12);
    CHECK(!s.anomaly);
}

static void hand_computed_mean_and_population_sigma(void)
{
    /* 90 points: 45 × 2 and 45 × 8 → mean 5, σ 3 (population). 14 is exactly 3σ; 14.5 beyond. */
    double h[90];
    for (size_t i = 0; i < 90; i++)
        h[i] = i < 45 ? 2 : 8;
    bp_sigma3_t s;
    bp_sigma3_score(h, 90, 14.0, &s);
    CHECK_NEAR(s.mean, 5.0, 0);
    CHECK_NEAR(s.stddev, 3.0, 0);
    CHECK(!s.anomaly);
    bp_sigma3_score(h, 90, 14.5, &s);
    CHECK(s.anomaly);
}

static void flat_history_flags_any_change(void)
{
    double h[100];
    for (size_t i = 0; i < 100; i++)
        h[i] = 7;
    bp_sigma3_t s;
    bp_sigma3_score(h, 100, 7, &s);
    CHECK(!s.anomaly);
    CHECK_NEAR(s.score, 0, 0);
    bp_sigma3_score(h, 100, 8, &s);
    CHECK(s.anomaly);
    CHECK_NEAR(s.score, 1, 0);
}

int main(void)
{
    RUN(value_exactly_at_mean_plus_three_sigma_is_not_an_anomaly);
    RUN(value_just_beyond_three_sigma_is_an_anomaly);
    RUN(fewer_than_90_points_give_no_verdict);
    RUN(only_the_last_180_points_count);
    RUN(hand_computed_mean_and_population_sigma);
    RUN(flat_history_flags_any_change);
    TEST_DONE();
}
