/* The incident lifecycle as a state machine: opening needs enough recent evidence, the peak is
 * the deepest point, resolution needs a run of scored normal points; learning points do nothing. */
#include <stdint.h>

#include "../test.h"
#include "episode.h"

static const bp_episode_params_t prm = {
    .min_anomalies = 2, .open_span = 5, .resolve_after = 3, .recent_from = INT64_MIN};

static int feed(bp_episode_t *e, int64_t ts, double value, double expected, int anomaly,
                const bp_episode_params_t *p)
{
    bp_point_t pt = {
        .ts = ts, .value = value, .expected = expected, .verdict = true, .anomaly = anomaly != 0};
    return bp_episode_feed(e, &pt, p);
}

static void one_anomaly_alone_opens_nothing_two_within_the_span_open(void)
{
    bp_episode_t e = {0};
    CHECK_INT(feed(&e, 60, 50, 100, 1, &prm), 0);
    CHECK_INT(feed(&e, 120, 100, 100, 0, &prm), 0);
    CHECK_INT(feed(&e, 180, 40, 100, 1, &prm), BP_EPISODE_OPENED);
    CHECK(e.open);
    CHECK_INT(e.started, 60); /* the first anomaly of the span */
    CHECK_INT(e.peak.ts, 180);
}

static void anomalies_far_apart_never_open(void)
{
    bp_episode_t e = {0};
    for (int i = 0; i < 50; i++)
        CHECK_INT(feed(&e, i * 60, i % 6 == 0 ? 10 : 100, 100, i % 6 == 0, &prm), 0);
    CHECK(!e.open);
}

static void the_peak_follows_the_deepest_point_and_resolution_needs_a_run_of_normal_points(void)
{
    bp_episode_t e = {0};
    feed(&e, 0, 60, 100, 1, &prm);
    CHECK_INT(feed(&e, 60, 70, 100, 1, &prm), BP_EPISODE_OPENED);
    CHECK_INT(e.peak.ts, 0);
    CHECK_INT(feed(&e, 120, 20, 100, 1, &prm), BP_EPISODE_ANOMALY | BP_EPISODE_PEAK);
    CHECK_INT(feed(&e, 180, 100, 100, 0, &prm), 0);
    CHECK_INT(feed(&e, 240, 100, 100, 0, &prm), 0);
    CHECK_INT(feed(&e, 300, 90, 100, 1, &prm), BP_EPISODE_ANOMALY); /* resets the run */
    bp_point_t learning = {.ts = 360, .value = 100};
    CHECK_INT(bp_episode_feed(&e, &learning, &prm), 0);
    CHECK_INT(feed(&e, 420, 100, 100, 0, &prm), 0);
    CHECK_INT(feed(&e, 480, 100, 100, 0, &prm), 0);
    CHECK_INT(feed(&e, 540, 100, 100, 0, &prm), BP_EPISODE_RESOLVED);
    CHECK(!e.open);
    CHECK_INT(e.resolved_at, 540);
    CHECK_INT(e.last_anomaly, 300);
}

static void old_points_prime_the_span_but_only_recent_ones_open(void)
{
    bp_episode_params_t recent = prm;
    recent.recent_from = 1000;
    bp_episode_t e = {0};
    bp_point_t old = {.ts = 900, .value = 10, .expected = 100, .verdict = true, .anomaly = true};
    bp_episode_prime(&e, &old, &recent);
    CHECK_INT(feed(&e, 960, 10, 100, 1, &recent), 0); /* not recent */
    CHECK_INT(feed(&e, 1020, 10, 100, 1, &recent), BP_EPISODE_OPENED);
    CHECK_INT(e.started, 900);
}

static void a_replayed_episode_matches_the_incident_it_overlaps_or_touches_and_no_other(void)
{
    /* a resolved incident 600..1200, then an open one from 3000 */
    const bp_episode_known_t known[] = {{.started = 600, .end = 1200}, {.started = 3000, .end = INT64_MAX}};
    bp_episode_t e = {0};
    feed(&e, 540, 10, 100, 1, &prm);
    CHECK_INT(feed(&e, 600, 10, 100, 1, &prm), BP_EPISODE_OPENED);
    CHECK_INT(bp_episode_match(&e, known, 2), 0); /* started earlier than stored: same episode */
    bp_episode_t late = {.open = true, .started = 1200, .last_anomaly = 1260};
    CHECK_INT(bp_episode_match(&late, known, 2), 0); /* touches the resolution */
    bp_episode_t after = {.open = true, .started = 1260, .last_anomaly = 1320};
    CHECK_INT(bp_episode_match(&after, known, 2), -1); /* after it resolved: a new episode */
    bp_episode_t before = {.open = true, .started = 300, .last_anomaly = 540};
    CHECK_INT(bp_episode_match(&before, known, 2), -1);
    bp_episode_t open = {.open = true, .started = 5000, .last_anomaly = 5060};
    CHECK_INT(bp_episode_match(&open, known, 2), 1); /* an open incident covers all that follows */
    CHECK_INT(bp_episode_match(&open, known, 0), -1);
}

int main(void)
{
    RUN(one_anomaly_alone_opens_nothing_two_within_the_span_open);
    RUN(anomalies_far_apart_never_open);
    RUN(the_peak_follows_the_deepest_point_and_resolution_needs_a_run_of_normal_points);
    RUN(old_points_prime_the_span_but_only_recent_ones_open);
    RUN(a_replayed_episode_matches_the_incident_it_overlaps_or_touches_and_no_other);
    TEST_DONE();
}
