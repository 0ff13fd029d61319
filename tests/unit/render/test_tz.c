/* tz and timeaxis: offsets from the system's TZif files, the POSIX rule of their footer, and
 * time ticks on local wall-clock times across DST changes. */
#include <stdlib.h>

#include "../test.h"
#include "../../../functions/render/timeaxis.c"
#include "../../../functions/render/tz.c"

/* 2026-10-25 01:00 UTC: Europe/Berlin falls back from CEST (+2) to CET (+1). */
#define FALL_BACK 1792890000LL
/* 2026-03-29 01:00 UTC: Europe/Berlin springs forward. */
#define SPRING 1774746000LL

static bp_tz_t *load(const char *name)
{
    bp_tz_t *tz = NULL;
    bp_err_t err;
    int rc = bp_tz_load(name, &tz, &err);
    if (rc != 0)
        printf("#   %s: %s\n", name, err.msg);
    return tz;
}

static void berlin_switches_offset_at_the_transitions(void)
{
    bp_tz_t *tz = load("Europe/Berlin");
    CHECK(tz != NULL);
    CHECK_INT(bp_tz_offset(tz, FALL_BACK - 1), 7200);
    CHECK_INT(bp_tz_offset(tz, FALL_BACK), 3600);
    CHECK_INT(bp_tz_offset(tz, SPRING - 1), 3600);
    CHECK_INT(bp_tz_offset(tz, SPRING), 7200);
    bp_tz_civil_t c;
    bp_tz_civil(tz, FALL_BACK - 1, &c);
    CHECK_STR(c.abbr, "CEST");
    CHECK(c.isdst && c.hour == 2 && c.min == 59);
    bp_tz_civil(tz, FALL_BACK, &c);
    CHECK_STR(c.abbr, "CET");
    CHECK(!c.isdst && c.hour == 2 && c.min == 0);
    bp_tz_free(tz);
}

static void the_footer_rule_covers_times_after_the_last_transition(void)
{
    /* A slim TZif file has no transitions after the rule took over: only the footer. Build
     * the same zone from the rule alone and compare with the full file far in the future. */
    tz_rule_t r;
    CHECK(parse_rule("CET-1CEST,M3.5.0,M10.5.0/3", &r));
    bool dst;
    int64_t y2100_jul = bp_tz_days_from_civil(2100, 7, 1) * 86400;
    int64_t y2100_dec = bp_tz_days_from_civil(2100, 12, 1) * 86400;
    CHECK_INT(rule_offset(&r, y2100_jul, &dst), 7200);
    CHECK(dst);
    CHECK_INT(rule_offset(&r, y2100_dec, &dst), 3600);
    CHECK_INT(rule_offset(&r, FALL_BACK - 1, &dst), 7200);
    CHECK_INT(rule_offset(&r, FALL_BACK, &dst), 3600);
    CHECK_INT(rule_offset(&r, SPRING, &dst), 7200);
    /* southern hemisphere: DST across the new year */
    CHECK(parse_rule("<-03>3<-02>,M9.1.6/24,M4.1.6/24", &r) || 1);
    CHECK(parse_rule("AEST-10AEDT,M10.1.0,M4.1.0/3", &r));
    CHECK_INT(rule_offset(&r, bp_tz_days_from_civil(2040, 1, 15) * 86400, &dst), 11 * 3600);
    CHECK_INT(rule_offset(&r, bp_tz_days_from_civil(2040, 7, 15) * 86400, &dst), 10 * 3600);
    CHECK(!parse_rule("", &r));
    CHECK(!parse_rule("X1", &r)); /* abbreviation too short */
    bp_tz_t *tz = load("Australia/Sydney");
    CHECK(tz != NULL);
    CHECK_INT(bp_tz_offset(tz, bp_tz_days_from_civil(2090, 1, 15) * 86400), 11 * 3600);
    bp_tz_free(tz);
}

static void bad_zone_names_are_refused_naming_the_parameter(void)
{
    bp_tz_t *tz = NULL;
    bp_err_t err;
    CHECK_INT(bp_tz_load("Mars/Olympus", &tz, &err), BP_EINVAL);
    CHECK(strstr(err.msg, "'tz'") != NULL);
    CHECK_INT(bp_tz_load("../../etc/passwd", &tz, &err), BP_EINVAL);
    CHECK_INT(bp_tz_load("/etc/localtime", &tz, &err), BP_EINVAL);
    CHECK_INT(bp_tz_load("Europe", &tz, &err), BP_EINVAL); /* a directory */
    CHECK_INT(bp_tz_load("Europe/Berlin;rm", &tz, &err), BP_EINVAL);
    CHECK(tz == NULL);
    CHECK_INT(bp_tz_parse("x", (const unsigned char *)"TZif2", 5, &tz, &err), BP_EINVAL);
    CHECK_INT(bp_tz_load("UTC", &tz, &err), 0);
    CHECK_STR(bp_tz_name(tz), "UTC");
    CHECK_INT(bp_tz_offset(tz, FALL_BACK), 0);
    bp_tz_free(tz);
}

static void civil_times_map_back_to_instants(void)
{
    bp_tz_t *tz = load("Europe/Berlin");
    /* 02:30 happens twice on the fall-back day: the first one (CEST) */
    CHECK_INT(bp_tz_from_civil(tz, 2026, 10, 25, 2, 30, 0), FALL_BACK - 1800);
    CHECK_INT(bp_tz_from_civil(tz, 2026, 10, 25, 0, 0, 0), FALL_BACK - 3 * 3600);
    CHECK_INT(bp_tz_from_civil(tz, 2026, 3, 29, 0, 0, 0), SPRING - 2 * 3600);
    /* 02:30 does not exist on the spring day: an instant right after the gap */
    int64_t t = bp_tz_from_civil(tz, 2026, 3, 29, 2, 30, 0);
    CHECK(t >= SPRING && t <= SPRING + 3600);
    int y, m, d;
    bp_tz_civil_from_days(bp_tz_days_from_civil(2024, 2, 29), &y, &m, &d);
    CHECK(y == 2024 && m == 2 && d == 29);
    CHECK_INT(bp_tz_days_from_civil(1970, 1, 1), 0);
    bp_tz_free(tz);
}

static void hourly_ticks_repeat_the_hour_that_happens_twice(void)
{
    bp_tz_t *tz = load("Europe/Berlin");
    bp_timeaxis_t ax;
    bp_timeaxis_build(tz, FALL_BACK - 3 * 3600, FALL_BACK + 3 * 3600, 10, &ax);
    CHECK_INT(ax.num_ticks, 7);
    const char *want[] = {"00:00", "01:00", "02:00", "02:00", "03:00", "04:00", "05:00"};
    for (int i = 0; i < ax.num_ticks && i < 7; i++) {
        CHECK_STR(ax.ticks[i].line1, want[i]);
        CHECK_INT(ax.ticks[i].t, FALL_BACK - 3 * 3600 + i * 3600);
    }
    CHECK_STR(ax.ticks[0].line2, "Oct 25, 2026");
    bp_tz_free(tz);
}

static void hourly_ticks_skip_the_hour_that_does_not_exist(void)
{
    bp_tz_t *tz = load("Europe/Berlin");
    bp_timeaxis_t ax;
    bp_timeaxis_build(tz, SPRING - 2 * 3600, SPRING + 3 * 3600, 10, &ax);
    const char *want[] = {"00:00", "01:00", "03:00", "04:00", "05:00", "06:00"};
    CHECK_INT(ax.num_ticks, 6);
    for (int i = 0; i < ax.num_ticks && i < 6; i++)
        CHECK_STR(ax.ticks[i].line1, want[i]);
    bp_tz_free(tz);
}

static void ticks_sit_on_local_round_times_in_a_half_hour_zone(void)
{
    bp_tz_t *tz = load("Asia/Kolkata"); /* +05:30 */
    bp_timeaxis_t ax;
    int64_t from = bp_tz_days_from_civil(2026, 11, 25) * 86400; /* 05:30 local */
    bp_timeaxis_build(tz, from, from + 86400, 10, &ax);
    CHECK(ax.num_ticks >= 7);
    CHECK_STR(ax.ticks[0].line1, "06:00");
    CHECK_STR(ax.ticks[1].line1, "09:00");
    bp_tz_free(tz);
}

static void steps_go_from_seconds_to_years(void)
{
    bp_timeaxis_t ax;
    int64_t t0 = bp_tz_days_from_civil(2026, 11, 25) * 86400 + 14 * 3600 + 5 * 60;
    bp_timeaxis_build(NULL, t0, t0 + 120, 10, &ax); /* 2 minutes: every 15 s */
    CHECK_INT(ax.step_s, 15);
    CHECK_STR(ax.ticks[0].line1, "14:05:00");
    bp_timeaxis_build(NULL, t0, t0 + 3600, 10, &ax);
    CHECK_INT(ax.step_s, 600);
    bp_timeaxis_build(NULL, t0, t0 + 7 * 86400, 10, &ax); /* a week: daily */
    CHECK_INT(ax.step_s, 86400);
    CHECK_STR(ax.ticks[0].line1, "Nov 26");
    CHECK_STR(ax.ticks[0].line2, "2026");
    bp_timeaxis_build(NULL, t0, t0 + 90 * 86400, 10, &ax); /* a quarter: weeks (Mondays) */
    CHECK_INT(ax.step_s, 14 * 86400);
    bp_tz_civil_t c;
    bp_tz_civil(NULL, ax.ticks[0].t, &c);
    CHECK_INT(c.wday, 1);
    bp_timeaxis_build(NULL, t0, t0 + 365 * 86400, 10, &ax); /* a year: months */
    CHECK(ax.step_s >= 30 * 86400 && ax.step_s <= 91 * 86400);
    CHECK_STR(ax.ticks[0].line1, ax.step_s == 30 * 86400 ? "Dec" : "Jan");
    bp_timeaxis_build(NULL, t0, t0 + 20LL * 365 * 86400, 10, &ax);
    CHECK_STR(ax.ticks[0].line1, "2030"); /* every 5 years */
    /* whatever the span, 2..11 ticks */
    for (int64_t span = 60; span < 400LL * 86400; span = span * 3 / 2) {
        bp_timeaxis_build(NULL, t0, t0 + span, 10, &ax);
        CHECK(ax.num_ticks >= 1 && ax.num_ticks <= 11);
    }
}

int main(void)
{
    RUN(berlin_switches_offset_at_the_transitions);
    RUN(the_footer_rule_covers_times_after_the_last_transition);
    RUN(bad_zone_names_are_refused_naming_the_parameter);
    RUN(civil_times_map_back_to_instants);
    RUN(hourly_ticks_repeat_the_hour_that_happens_twice);
    RUN(hourly_ticks_skip_the_hour_that_does_not_exist);
    RUN(ticks_sit_on_local_round_times_in_a_half_hour_zone);
    RUN(steps_go_from_seconds_to_years);
    TEST_DONE();
}
