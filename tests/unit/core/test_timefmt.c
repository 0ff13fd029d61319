/* RFC 3339 and relative times, independent of the process's TZ. */
#include <stdlib.h>

#include "../test.h"
#include "timefmt.h"

static void rfc3339_with_zone_offsets_and_fractions_parses_to_utc(void)
{
    int64_t t = 0;
    setenv("TZ", "Asia/Tokyo", 1); /* must not matter */
    CHECK_INT(bp_time_parse("2026-11-25T14:05:00Z", &t, NULL), 0);
    CHECK_INT(t, 1795615500);
    CHECK_INT(bp_time_parse("2026-11-25T15:05:00.999+01:00", &t, NULL), 0);
    CHECK_INT(t, 1795615500);
    CHECK_INT(bp_time_parse("1970-01-01T00:00:00Z", &t, NULL), 0);
    CHECK_INT(t, 0);
    CHECK_INT(bp_time_parse("2024-02-29T00:00:00Z", &t, NULL), 0);
    char buf[BP_TIME_STRLEN];
    CHECK_STR(bp_time_format(1795615500, buf), "2026-11-25T14:05:00Z");
}

static void malformed_times_are_refused(void)
{
    const char *bad[] = {"",
                         "2026-11-25",
                         "2026-13-01T00:00:00Z",
                         "2026-11-25T24:00:00Z",
                         "2025-02-29T00:00:00Z",
                         "2026-11-25T14:05:00",
                         "2026-11-25T14:05:00Zjunk",
                         "yesterday",
                         "-5x",
                         "-"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int64_t t;
        bp_err_t err;
        CHECK_INT(bp_time_parse_rel(bad[i], 0, &t, &err), BP_EINVAL);
    }
}

static void relative_times_count_back_from_now(void)
{
    int64_t t;
    CHECK_INT(bp_time_parse_rel("-24h", 100000, &t, NULL), 0);
    CHECK_INT(t, 100000 - 86400);
    CHECK_INT(bp_time_parse_rel("-30m", 100000, &t, NULL), 0);
    CHECK_INT(t, 100000 - 1800);
    CHECK_INT(bp_time_parse_rel("now", 100000, &t, NULL), 0);
    CHECK_INT(t, 100000);
    CHECK_INT(bp_time_parse_rel("-99999999999d", 0, &t, NULL), BP_EINVAL);
}

/* Found by fuzz/params.c: strftime's %Y wrote year 24 as "24", which reads back as another
 * date or not at all. */
static void format_writes_four_digit_years_and_clamps_what_rfc3339_cannot_write(void)
{
    char buf[BP_TIME_STRLEN];
    int64_t t = 0, back = 0;
    CHECK_INT(bp_time_parse("0024-02-09T23:59:59Z", &t, NULL), 0);
    CHECK_STR(bp_time_format(t, buf), "0024-02-09T23:59:59Z");
    CHECK_INT(bp_time_parse(buf, &back, NULL), 0);
    CHECK_INT(back, t);
    CHECK_STR(bp_time_format(-62167219200LL, buf), "0000-01-01T00:00:00Z");
    CHECK_STR(bp_time_format(INT64_MIN, buf), "0000-01-01T00:00:00Z");
    CHECK_STR(bp_time_format(INT64_MAX, buf), "9999-12-31T23:59:59Z");
}

static void floor_aligns_to_utc_intervals_also_before_1970(void)
{
    CHECK_INT(bp_time_floor(1795615559, 60), 1795615500);
    CHECK_INT(bp_time_floor(1795615500, 3600), 1795615200);
    CHECK_INT(bp_time_floor(-1, 60), -60);
}

int main(void)
{
    RUN(rfc3339_with_zone_offsets_and_fractions_parses_to_utc);
    RUN(malformed_times_are_refused);
    RUN(relative_times_count_back_from_now);
    RUN(format_writes_four_digit_years_and_clamps_what_rfc3339_cannot_write);
    RUN(floor_aligns_to_utc_intervals_also_before_1970);
    TEST_DONE();
}
