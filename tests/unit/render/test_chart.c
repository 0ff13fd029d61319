/* chart: the PNG itself, tick choice, decimation. Includes the .c files for their statics. */
#include <stdlib.h>

#include "../test.h"
#include "../../../functions/render/chart.c"
#include "../../../functions/render/utf8.c"
#include "../../../functions/render/pngenc.c"
#include "../../../functions/render/raster.c"
#include "../../../functions/render/text.c"
#include "../../../functions/render/timeaxis.c"
#include "../../../functions/render/tz.c"

#define T0 1795615500 /* 2026-11-25T14:05:00Z */

static uint32_t png_be32(const unsigned char *p)
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
        CHECK_INT(png_be32(b + 16), 1200);
        CHECK_INT(png_be32(b + 20), 600);
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
    static column_t cols[1100];
    extent_t e;
    decimate(p, n, p[0].t, p[n - 1].t, cols, 1100, &e);
    CHECK_INT(e.used, n);
    CHECK_NEAR(e.hi, 1000, 0);
    CHECK_NEAR(e.lo, -50, 0);
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
    p[200].value = NAN;
    decimate(p, n, p[100].t, p[n - 1].t, cols, 1100, &e);
    CHECK_INT(e.used, n - 101);
    int gaps = 0;
    for (int c = 0; c < 1100; c++)
        gaps += cols[c].gap;
    CHECK_INT(gaps, 1); /* the line breaks where a value is missing */
    free(p);
}

/* The topmost image row below the title and legend (y >= 70) holding a cornflowerblue-ish
 * pixel (the line), or -1. */
static int topmost_line_row(cairo_surface_t *s)
{
    int w = cairo_image_surface_get_width(s), h = cairo_image_surface_get_height(s);
    int stride = cairo_image_surface_get_stride(s);
    const unsigned char *d = cairo_image_surface_get_data(s);
    for (int y = 70; y < h; y++) {
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
    /* The plot starts ~73 px down; the spike is 5% of its height below the top. */
    CHECK(top > 72 && top < 120);
    if (!(top > 72 && top < 120))
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

/* The band's extremes per column survive decimation and widen the value axis. */
static void the_band_keeps_its_widest_extent_and_widens_the_axis(void)
{
    size_t n = 10080;
    bp_chart_point_t *p = calloc(n, sizeof(*p));
    for (size_t i = 0; i < n; i++) {
        p[i].t = T0 + (int64_t)i * 60;
        p[i].value = 100;
        p[i].has_expected = p[i].has_band = i >= 90;
        p[i].expected = 100;
        p[i].lower = 90;
        p[i].upper = 110;
        p[i].learning = i < 90;
    }
    p[3000].upper = 500;
    static column_t cols[600];
    extent_t e;
    decimate(p, n, p[0].t, p[n - 1].t, cols, 600, &e);
    CHECK(e.band && e.expected && e.learning && !e.anomaly);
    CHECK_NEAR(e.hi, 500, 0);
    CHECK_NEAR(e.lo, 90, 0);
    CHECK(cols[0].band_n == 0); /* learning: no band yet */
    free(p);
}

/* Pixels of a colour close to rgb within the plot rows. */
static int count_color(cairo_surface_t *s, unsigned rgb, int tol)
{
    int w = cairo_image_surface_get_width(s), h = cairo_image_surface_get_height(s);
    int stride = cairo_image_surface_get_stride(s), n = 0;
    const unsigned char *d = cairo_image_surface_get_data(s);
    for (int y = 0; y < h; y++) {
        const uint32_t *row = (const uint32_t *)(const void *)(d + (size_t)y * (size_t)stride);
        for (int x = 0; x < w; x++) {
            int dr = (int)(row[x] >> 16 & 0xff) - (int)(rgb >> 16 & 0xff);
            int dg = (int)(row[x] >> 8 & 0xff) - (int)(rgb >> 8 & 0xff);
            int db = (int)(row[x] & 0xff) - (int)(rgb & 0xff);
            n += abs(dr) <= tol && abs(dg) <= tol && abs(db) <= tol;
        }
    }
    return n;
}

static void the_dark_theme_paints_a_dark_background(void)
{
    bp_chart_point_t *p = day_of_minutes(1440);
    bp_chart_spec_t spec = {.points = p, .num_points = 1440, .title = "dark", .theme = BP_CHART_DARK};
    cairo_surface_t *s = NULL;
    CHECK_INT(bp_chart_draw(&spec, &s, NULL), 0);
    int w = cairo_image_surface_get_width(s), h = cairo_image_surface_get_height(s);
    CHECK(count_color(s, palettes[BP_CHART_DARK].bg, 2) > w * h / 2);
    cairo_surface_destroy(s);
    free(p);
}

static void an_incident_span_is_shaded_over_its_time(void)
{
    bp_chart_point_t *p = day_of_minutes(1440);
    bp_chart_span_t span = {.from = T0 + 600 * 60, .to = T0 + 700 * 60, .label = "#3 open"};
    bp_chart_spec_t spec = {.points = p, .num_points = 1440, .title = "x"};
    cairo_surface_t *plain = NULL, *shaded = NULL;
    CHECK_INT(bp_chart_draw(&spec, &plain, NULL), 0);
    spec.spans = &span;
    spec.num_spans = 1;
    CHECK_INT(bp_chart_draw(&spec, &shaded, NULL), 0);
    /* light red tint: more reddish-white pixels with the span than without */
    int before = count_color(plain, 0xfcebea, 6), after = count_color(shaded, 0xfcebea, 6);
    CHECK(after > before + 5000);
    if (!(after > before + 5000))
        printf("#   tinted pixels %d -> %d\n", before, after);
    cairo_surface_destroy(plain);
    cairo_surface_destroy(shaded);
    free(p);
}

/* Han, kana and hangul are drawn with the CJK font, not as boxes: the title's ink differs from
 * that of a string of the same length in a missing-glyph font. Checked through the fallback
 * choice, which is what decides. */
static void cjk_characters_fall_back_to_a_font_that_has_them(void)
{
    cairo_surface_t *s = cairo_image_surface_create(CAIRO_FORMAT_RGB24, 10, 10);
    cairo_t *cr = cairo_create(s);
    CHECK(bp_text_width(cr, "注册", 18, false) > 0);
    CHECK_INT(font_for('A'), 0);
    CHECK_INT(font_for(0x00e9), 0); /* é: DejaVu has it */
    CHECK_INT(font_for(0x6ce8), 1); /* 注 */
    CHECK_INT(font_for(0x30e6), 1); /* ユ */
    CHECK_INT(font_for(0xac00), 1); /* 가 */
    cairo_destroy(cr);
    cairo_surface_destroy(s);
}

static void an_svg_chart_is_an_svg_document(void)
{
    bp_chart_point_t *p = day_of_minutes(1440);
    bp_chart_spec_t spec = {.points = p, .num_points = 1440, .title = "svg"};
    bp_buf_t svg;
    bp_buf_init(&svg, 8 << 20);
    CHECK_INT(bp_chart_svg(&spec, &svg, NULL), 0);
    CHECK(svg.len > 100 && strstr(svg.base, "<svg") != NULL && strstr(svg.base, "</svg>") != NULL);
    CHECK(strstr(svg.base, "width=\"1200\"") != NULL || strstr(svg.base, "width=\"1200pt\"") != NULL);
    bp_buf_free(&svg);
    free(p);
}

int main(void)
{
    RUN(a_day_of_minutes_is_a_1200x600_png);
    RUN(an_empty_range_still_renders_a_png);
    RUN(the_png_ceiling_is_enforced);
    RUN(sizes_out_of_bounds_are_refused);
    RUN(value_ticks_are_nice_and_cover_the_data);
    RUN(decimation_keeps_a_single_point_spike_and_dip);
    RUN(a_one_minute_spike_in_a_week_reaches_the_top_of_the_picture);
    RUN(invalid_utf8_in_a_title_is_replaced_not_fatal);
    RUN(the_band_keeps_its_widest_extent_and_widens_the_axis);
    RUN(the_dark_theme_paints_a_dark_background);
    RUN(an_incident_span_is_shaded_over_its_time);
    RUN(cjk_characters_fall_back_to_a_font_that_has_them);
    RUN(an_svg_chart_is_an_svg_document);
    bp_chart_release_caches(); /* so LeakSanitizer sees no font cache */
    TEST_DONE();
}
