/* chart: the PNG itself, tick choice, decimation. Includes the .c files for their statics. */
#include <stdlib.h>

#include "../test.h"
#include "../../../functions/render/chart.c"
#include "../../../functions/render/utf8.c"

#define T0 1795615500 /* 2026-11-25T14:05:00Z */

static uint32_t be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static bp_chart_point_t *day_of_minutes(size_t n)
{
    bp_chart_point_t *p = calloc(n, sizeof(*p));
    for (size_t i = 0; i < n; i++) {
        p[i].t = T0 + (int64_t)i * 60;
        p[i].value = 100 + 30 * sin((double)i / 1440 * 2 * M_PI) + (double)(i * 7919 % 13);
        p[i].anomaly = i >= n - 30 && i < n - 20;
    }
    return p;
}

static void a_day_of_minutes_is_a_1200x600_png(void)
{
    bp_chart_point_t *p = day_of_minutes(1440);
    bp_chart_spec_t spec = {.points = p, .num_points = 1440, .title = "Metric Analysis: user_registration"};
    bp_buf_t png;
    bp_buf_init(&png, 16 << 20);
    bp_err_t err = {0};
    CHECK_INT(bp_chart_png(&spec, &png, &err), 0);
    CHECK(png.len > 33);
    if (png.len > 33) {
        const unsigned char *b = (const unsigned char *)png.base;
        CHECK(memcmp(b, "\x89PNG\r\n\x1a\n", 8) == 0);
        CHECK(memcmp(b + 12, "IHDR", 4) == 0);
        CHECK_INT(be32(b + 16), 1200);
        CHECK_INT(be32(b + 20), 600);
    }
    bp_buf_free(&png);
    free(p);
}

static void an_empty_range_still_renders_a_png(void)
{
    bp_chart_spec_t spec = {.from = T0, .to = T0 + 86400, .title = "Metric Analysis: nothing"};
    bp_buf_t png;
    bp_buf_init(&png, 16 << 20);
    bp_err_t err = {0};
    CHECK_INT(bp_chart_png(&spec, &png, &err), 0);
    CHECK(png.len > 1000);
    CHECK(png.len > 8 && memcmp(png.base, "\x89PNG", 4) == 0);
    bp_buf_free(&png);
}

static void the_png_ceiling_is_enforced(void)
{
    bp_chart_point_t *p = day_of_minutes(1440);
    bp_chart_spec_t spec = {.points = p, .num_points = 1440, .title = "x"};
    bp_buf_t png;
    bp_buf_init(&png, 4096);
    bp_err_t err = {0};
    CHECK_INT(bp_chart_png(&spec, &png, &err), BP_ETOOBIG);
    bp_buf_free(&png);
    free(p);
}

static void sizes_out_of_bounds_are_refused(void)
{
    bp_chart_spec_t spec = {.width = 100, .height = 600};
    cairo_surface_t *s = NULL;
    bp_err_t err = {0};
    CHECK_INT(bp_chart_draw(&spec, &s, &err), BP_EINVAL);
    CHECK(s == NULL);
    spec = (bp_chart_spec_t){.width = 2000, .height = 1000, .pixel_ratio = 3};
    CHECK_INT(bp_chart_draw(&spec, &s, &err), BP_EINVAL);
    spec = (bp_chart_spec_t){.width = 900, .height = 450, .pixel_ratio = 2};
    CHECK_INT(bp_chart_draw(&spec, &s, &err), 0);
    CHECK_INT(cairo_image_surface_get_width(s), 1800);
    CHECK_INT(cairo_image_surface_get_height(s), 900);
    cairo_surface_destroy(s);
}

static void time_steps_give_a_handful_of_round_labels(void)
{
    CHECK_INT(pick_time_step(1800, 10), 300);        /* 30 min: every 5 min */
    CHECK_INT(pick_time_step(3600, 10), 600);        /* 1 h: every 10 min */
    CHECK_INT(pick_time_step(6 * 3600, 10), 3600);   /* 6 h: hourly */
    CHECK_INT(pick_time_step(86400, 10), 3 * 3600);  /* a day: every 3 h */
    CHECK_INT(pick_time_step(7 * 86400, 10), 86400); /* a week: daily */
    CHECK_INT(pick_time_step(86400, 5), 6 * 3600);   /* narrow chart: fewer labels */
    /* Whatever the span, 2..10 labels. */
    for (int64_t span = 60; span < 400LL * 86400; span = span * 3 / 2) {
        int64_t step = pick_time_step(span, 10);
        int64_t labels = span / step + 1;
        CHECK(labels >= 2 && labels <= 10);
    }
}

static void value_ticks_are_nice_and_cover_the_data(void)
{
    double lo, hi;
    ticks_t t;
    value_axis(0, 100, 8, &lo, &hi, &t);
    CHECK_NEAR(t.step, 20, 1e-9);
    CHECK_NEAR(t.first, 0, 1e-9);
    CHECK_NEAR(t.last, 100, 1e-9);
    CHECK(lo < 0 && hi > 100);
    value_axis(0.81, 0.83, 5, &lo, &hi, &t);
    CHECK_NEAR(t.step, 0.005, 1e-12);
    value_axis(42, 42, 8, &lo, &hi, &t); /* a flat line still gets an axis */
    CHECK(lo < 42 && hi > 42 && t.step > 0);
    value_axis(55, 145, 4, &lo, &hi, &t); /* never a lone label */
    CHECK((t.last - t.first) / t.step + 1 >= 3 - 1e-9);
    CHECK_NEAR(nice_step(0.0044), 0.005, 1e-12);
    CHECK_NEAR(nice_step(13.75), 20, 1e-9);
    CHECK_NEAR(nice_step(1), 1, 1e-12);

    char s[32];
    format_value(0.815, 0.005, 0.83, s, sizeof(s));
    CHECK_STR(s, "0.815");
    format_value(12000, 2000, 20000, s, sizeof(s));
    CHECK_STR(s, "12k");
    format_value(2500000, 500000, 3000000, s, sizeof(s));
    CHECK_STR(s, "2.5M");
    format_value(-1e-12, 0.5, 10, s, sizeof(s));
    CHECK_STR(s, "0.0");
    format_value(40, 20, 140, s, sizeof(s));
    CHECK_STR(s, "40");
}

static void time_labels_show_the_date_where_it_changes(void)
{
    char l1[32], l2[32];
    struct tm prev, cur;
    format_time(T0 - 5 * 60 + 3600 * 10, 3 * 3600, NULL, l1, l2, sizeof(l1), &cur); /* 2026-11-26 00:00 */
    CHECK_STR(l1, "00:00");
    CHECK_STR(l2, "Nov 26, 2026");
    prev = cur;
    format_time(T0 - 5 * 60 + 3600 * 13, 3 * 3600, &prev, l1, l2, sizeof(l1), &cur);
    CHECK_STR(l1, "03:00");
    CHECK_STR(l2, "");
    format_time(T0, 86400, NULL, l1, l2, sizeof(l1), &cur);
    CHECK_STR(l1, "Nov 25");
    CHECK_STR(l2, "2026");
}

static void decimation_keeps_a_single_point_spike_and_dip(void)
{
    size_t n = 10080;
    bp_chart_point_t *p = calloc(n, sizeof(*p));
    for (size_t i = 0; i < n; i++) {
        p[i].t = T0 + (int64_t)i * 60;
        p[i].value = 10;
    }
    p[5000].value = 1000;
    p[7000].value = -50;
    column_t cols[1100];
    double lo = 0, hi = 0;
    size_t used = decimate(p, n, p[0].t, p[n - 1].t, cols, 1100, &lo, &hi);
    CHECK_INT(used, n);
    CHECK_NEAR(hi, 1000, 0);
    CHECK_NEAR(lo, -50, 0);
    int spikes = 0, dips = 0, total = 0;
    for (int c = 0; c < 1100; c++) {
        total += cols[c].count;
        spikes += cols[c].max == 1000;
        dips += cols[c].min == -50;
    }
    CHECK_INT(total, n);
    CHECK_INT(spikes, 1);
    CHECK_INT(dips, 1);
    /* Points outside the range and non-finite values are left out. */
    p[10].value = NAN;
    used = decimate(p, n, p[100].t, p[n - 1].t, cols, 1100, &lo, &hi);
    CHECK_INT(used, n - 100);
    free(p);
}

/* The topmost image row below the title and legend (y >= 45) holding a cornflowerblue-ish
 * pixel (the line), or -1. */
static int topmost_line_row(cairo_surface_t *s)
{
    int w = cairo_image_surface_get_width(s), h = cairo_image_surface_get_height(s);
    int stride = cairo_image_surface_get_stride(s);
    const unsigned char *d = cairo_image_surface_get_data(s);
    for (int y = 45; y < h; y++) {
        const uint32_t *row = (const uint32_t *)(const void *)(d + (size_t)y * (size_t)stride);
        for (int x = 0; x < w; x++) {
            int r = row[x] >> 16 & 0xff, g = row[x] >> 8 & 0xff, b = row[x] & 0xff;
            if (b > 220 && r > 80 && r < 130 && g > 130 && g < 170)
                return y;
        }
    }
    return -1;
}

static void a_one_minute_spike_in_a_week_reaches_the_top_of_the_picture(void)
{
    size_t n = 10080;
    bp_chart_point_t *p = calloc(n, sizeof(*p));
    for (size_t i = 0; i < n; i++) {
        p[i].t = T0 + (int64_t)i * 60;
        p[i].value = 10 + (double)(i % 7);
    }
    p[4321].value = 1000;
    bp_chart_spec_t spec = {.points = p, .num_points = n, .title = "spike"};
    cairo_surface_t *s = NULL;
    CHECK_INT(bp_chart_draw(&spec, &s, NULL), 0);
    int top = s != NULL ? topmost_line_row(s) : -1;
    /* The plot starts ~58 px down; the spike is 5% of its height below the top. */
    CHECK(top > 55 && top < 110);
    if (!(top > 55 && top < 110))
        printf("#   topmost line row %d\n", top);
    cairo_surface_destroy(s);
    free(p);
}

static void invalid_utf8_in_a_title_is_replaced_not_fatal(void)
{
    char out[64];
    CHECK(!bp_utf8_sanitize("abc\xff\xfe", out, sizeof(out), false));
    CHECK_STR(out, "abc??");
    CHECK(bp_utf8_sanitize("注册 ok", out, sizeof(out), false));
    CHECK_STR(out, "注册 ok");
    bp_utf8_sanitize("注册 ok", out, sizeof(out), true);
    CHECK_STR(out, "?? ok");
    bp_utf8_sanitize("注册", out, 5, false); /* truncated on a character boundary */
    CHECK_STR(out, "注");
    bp_utf8_sanitize("\xed\xa0\x80x", out, sizeof(out), false); /* a surrogate */
    CHECK_STR(out, "???x");
    bp_chart_spec_t spec = {.from = T0, .to = T0 + 3600, .title = "bad \xc3\x28 title"};
    cairo_surface_t *s = NULL;
    CHECK_INT(bp_chart_draw(&spec, &s, NULL), 0);
    cairo_surface_destroy(s);
}

int main(void)
{
    RUN(a_day_of_minutes_is_a_1200x600_png);
    RUN(an_empty_range_still_renders_a_png);
    RUN(the_png_ceiling_is_enforced);
    RUN(sizes_out_of_bounds_are_refused);
    RUN(time_steps_give_a_handful_of_round_labels);
    RUN(value_ticks_are_nice_and_cover_the_data);
    RUN(time_labels_show_the_date_where_it_changes);
    RUN(decimation_keeps_a_single_point_spike_and_dip);
    RUN(a_one_minute_spike_in_a_week_reaches_the_top_of_the_picture);
    RUN(invalid_utf8_in_a_title_is_replaced_not_fatal);
    bp_chart_release_caches(); /* so LeakSanitizer sees no font cache */
    TEST_DONE();
}
