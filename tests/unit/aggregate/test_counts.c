/* Per-minute counts: tallying by (type, minute), the stored literal (type-major) from two
 * sources, the definition key, and parsing stored literals (a bad one is no counts). */
#include <stdlib.h>
#include <string.h>

#include "counts.h"
#include "../test.h"

static bp_metric_t ratio(void)
{
    bp_metric_t m = {.name = "rate", .kind = BP_KIND_RATIO, .interval_s = 60};
    m.num.event_type = "ok";
    m.den.event_type = "try";
    return m;
}

static void test_a_tally_counts_wanted_minutes_of_wanted_types_only(void)
{
    bp_metric_t m = ratio();
    bp_counts_t c = {0};
    bp_err_t err;
    CHECK_INT(bp_counts_want(&c, &m, 600, 780, &err), 0);
    CHECK_INT(bp_counts_want(&c, &m, 660, 720, &err), 0); /* a repeat is one minute */
    CHECK_INT(bp_counts_zero(&c, &err), 0);
    CHECK_INT(c.num_minutes, 3);
    bp_counts_add(&c, "ok", 2, 600);
    bp_counts_add(&c, "try", 3, 659);
    bp_counts_add(&c, "try", 3, 660);
    bp_counts_add(&c, "other", 5, 661); /* not wanted */
    bp_counts_add(&c, "ok", 2, 599);    /* before */
    bp_counts_add(&c, "ok", 2, 780);    /* after */
    int64_t n = -1;
    CHECK(bp_counts_get(&c, "ok", 600, &n));
    CHECK_INT(n, 1);
    CHECK(bp_counts_get(&c, "try", 600, &n));
    CHECK_INT(n, 1);
    CHECK(bp_counts_get(&c, "try", 660, &n));
    CHECK_INT(n, 1);
    CHECK(bp_counts_get(&c, "ok", 720, &n));
    CHECK_INT(n, 0);
    CHECK(!bp_counts_get(&c, "ok", 780, &n));
    CHECK(!bp_counts_get(&c, "other", 660, &n));
    CHECK(!bp_counts_get(NULL, "ok", 600, &n));
    bp_counts_free(&c);
    bp_counts_free(&c); /* a freed one is empty */
}

static void test_a_literal_is_type_major_takes_early_minutes_from_before_and_fails_on_a_gap(void)
{
    bp_metric_t m = ratio();
    bp_counts_t head = {0}, tally = {0};
    bp_err_t err;
    CHECK_INT(bp_counts_want(&head, &m, 0, 120, &err), 0);
    CHECK_INT(bp_counts_zero(&head, &err), 0);
    bp_counts_add(&head, "try", 3, 70);
    CHECK_INT(bp_counts_want(&tally, &m, 120, 240, &err), 0);
    CHECK_INT(bp_counts_zero(&tally, &err), 0);
    for (int i = 0; i < 7; i++)
        bp_counts_add(&tally, "ok", 2, 200);
    bp_counts_add(&tally, "try", 3, 239);
    bp_buf_t out;
    bp_buf_init(&out, 1024);
    bool counted = false;
    CHECK_INT(bp_counts_literal(&head, &tally, 120, &m, 0, 240, &out, &counted), 0);
    CHECK(counted);
    CHECK_STR(out.base, "{0,0,0,7,0,1,0,1}"); /* ok: 4 minutes, then try: 4 minutes */
    bp_buf_free(&out);
    bp_buf_init(&out, 1024);
    /* split too early: minute 60 is asked of the tally, which did not count it */
    CHECK_INT(bp_counts_literal(&head, &tally, 60, &m, 0, 240, &out, &counted), 0);
    CHECK(!counted);
    CHECK_INT(out.len, 0);
    /* an empty window is an empty array */
    CHECK_INT(bp_counts_literal(&head, &tally, 120, &m, 120, 120, &out, &counted), 0);
    CHECK(counted);
    CHECK_STR(out.base, "{}");
    bp_buf_free(&out);
    bp_counts_free(&head);
    bp_counts_free(&tally);
}

static void test_the_key_changes_with_what_the_points_depend_on_only(void)
{
    bp_metric_t a = ratio(), b = ratio();
    CHECK(bp_counts_key(&a) == bp_counts_key(&b));
    CHECK(bp_counts_key(&a) >= 0);
    b.method = "sigma3"; /* detection only */
    CHECK(bp_counts_key(&a) == bp_counts_key(&b));
    b.interval_s = 300;
    CHECK(bp_counts_key(&a) != bp_counts_key(&b));
    b = ratio();
    b.num.filter_json = "{\"country\":\"DE\"}";
    CHECK(bp_counts_key(&a) != bp_counts_key(&b));
    b = ratio();
    b.den.event_type = "ok"; /* numerator and denominator swapped roles */
    b.num.event_type = "try";
    CHECK(bp_counts_key(&a) != bp_counts_key(&b));
    char *dims[] = {"country", "platform"}, *joined[] = {"countryplatform"};
    b = ratio();
    b.dimensions = dims;
    b.num_dimensions = 2;
    bp_metric_t c = ratio();
    c.dimensions = joined;
    c.num_dimensions = 1;
    CHECK(bp_counts_key(&b) != bp_counts_key(&c));
    CHECK(bp_counts_key(&a) != bp_counts_key(&b));
}

static void test_stored_literals_parse_and_bad_ones_are_refused(void)
{
    int64_t *v = NULL;
    size_t n = 0;
    CHECK_INT(bp_counts_parse("{3,0,12}", &v, &n), 0);
    CHECK_INT(n, 3);
    CHECK_INT(v[0], 3);
    CHECK_INT(v[2], 12);
    free(v);
    CHECK_INT(bp_counts_parse("{}", &v, &n), 0);
    CHECK_INT(n, 0);
    free(v);
    const char *bad[] = {"",     "{",    "3,4",    "{1,,2}", "{1,2",
                         "{-1}", "{1}x", "{NULL}", "{1.5}",  "{99999999999999999999}"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        CHECK_INT(bp_counts_parse(bad[i], &v, &n), BP_EINVAL);
        CHECK(v == NULL);
    }
}

int main(void)
{
    RUN(test_a_tally_counts_wanted_minutes_of_wanted_types_only);
    RUN(test_a_literal_is_type_major_takes_early_minutes_from_before_and_fails_on_a_gap);
    RUN(test_the_key_changes_with_what_the_points_depend_on_only);
    RUN(test_stored_literals_parse_and_bad_ones_are_refused);
    TEST_DONE();
}
