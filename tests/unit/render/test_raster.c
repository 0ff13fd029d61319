/* raster: the line's pixels against exact coverage, against cairo's own stroke of the same
 * polyline, and the clip, dots and breaks. */
#include <stdlib.h>

#include "../test.h"
#include "../../../functions/render/raster.c"

static cairo_surface_t *white(int w, int h)
{
    cairo_surface_t *s = cairo_image_surface_create(CAIRO_FORMAT_RGB24, w, h);
    cairo_t *cr = cairo_create(s);
    cairo_set_source_rgb(cr, 1, 1, 1);
    cairo_paint(cr);
    cairo_destroy(cr);
    cairo_surface_flush(s);
    return s;
}

/* Darkness 0 (white) .. 255 (black) of the green channel at x, y. */
static int ink_at(cairo_surface_t *s, int x, int y)
{
    const unsigned char *d = cairo_image_surface_get_data(s);
    uint32_t p =
        ((const uint32_t *)(const void *)(d + (size_t)y * (size_t)cairo_image_surface_get_stride(s)))[x];
    return 255 - (int)(p >> 8 & 0xff);
}

static void a_horizontal_line_covers_its_exact_area(void)
{
    cairo_surface_t *s = white(30, 21);
    bp_raster_vertex_t v[] = {{2, 10.5, true}, {28, 10.5, false}};
    bp_raster_clip_t clip = {0, 0, 30, 21};
    CHECK_INT(bp_raster_polyline(s, &clip, v, 2, 1.6, 0x000000), 0);
    /* 1.6 px wide centred on row 10: row 10 fully, rows 9 and 11 by 0.3, rows 8 and 12 not */
    CHECK_INT(ink_at(s, 15, 10), 255);
    CHECK_NEAR(ink_at(s, 15, 9), 0.3 * 255, 2);
    CHECK_NEAR(ink_at(s, 15, 11), 0.3 * 255, 2);
    CHECK_INT(ink_at(s, 15, 8), 0);
    CHECK_INT(ink_at(s, 15, 12), 0);
    CHECK(ink_at(s, 28, 10) > 0);   /* the round cap reaches past the end... */
    CHECK_INT(ink_at(s, 0, 10), 0); /* ...by half the width, not more */
    cairo_surface_destroy(s);
}

static long total_ink(cairo_surface_t *s)
{
    long sum = 0;
    for (int y = 0; y < cairo_image_surface_get_height(s); y++)
        for (int x = 0; x < cairo_image_surface_get_width(s); x++)
            sum += ink_at(s, x, y);
    return sum;
}

static void a_zigzag_looks_like_cairos_round_stroke(void)
{
    enum { W = 200, H = 120, N = 150 };
    bp_raster_vertex_t v[N];
    for (int i = 0; i < N; i++) /* steep teeth, shallow stretches and a spike */
        v[i] = (bp_raster_vertex_t){10 + i * 1.2, i == 70 ? 5 : 60 + (i % 3 == 0 ? 30 : -20) * sin(i * 0.3),
                                    i == 0};
    cairo_surface_t *ours = white(W, H), *ref = white(W, H);
    bp_raster_clip_t clip = {0, 0, W, H};
    CHECK_INT(bp_raster_polyline(ours, &clip, v, N, 1.6, 0x000000), 0);
    cairo_t *cr = cairo_create(ref);
    for (int i = 0; i < N; i++)
        cairo_line_to(cr, v[i].x, v[i].y);
    cairo_set_source_rgb(cr, 0, 0, 0);
    cairo_set_line_width(cr, 1.6);
    cairo_set_line_join(cr, CAIRO_LINE_JOIN_ROUND);
    cairo_set_line_cap(cr, CAIRO_LINE_CAP_ROUND);
    cairo_stroke(cr);
    cairo_destroy(cr);
    cairo_surface_flush(ref);
    long a = total_ink(ours), b = total_ink(ref), diff = 0;
    int worst = 0, wx = 0, wy = 0;
    for (int y = 0; y < H; y++) {
        for (int x = 0; x < W; x++) {
            int d = abs(ink_at(ours, x, y) - ink_at(ref, x, y));
            diff += d;
            if (d > worst) {
                worst = d;
                wx = x;
                wy = y;
            }
        }
    }
    /* The same ink within 6% and pixel by pixel within 8% of it; where two teeth nearly touch
     * the coverages are max-combined (cairo unites the areas), so a pixel there may be lighter,
     * but none is on in one picture and off in the other. */
    CHECK(labs(a - b) < b * 6 / 100);
    CHECK(diff < b * 8 / 100);
    CHECK(worst < 160);
    printf("#   ink %ld vs cairo %ld, sum of differences %ld, worst pixel %d at %d,%d\n", a, b, diff, worst,
           wx, wy);
    CHECK(ink_at(ours, (int)(10 + 70 * 1.2), 6) > 128); /* the spike reaches its top */
    cairo_surface_destroy(ours);
    cairo_surface_destroy(ref);
}

static void nothing_is_drawn_outside_the_clip(void)
{
    cairo_surface_t *s = white(40, 40);
    bp_raster_vertex_t v[] = {{-5, 20.5, true}, {45, 20.5, false}, {45, -3, false}};
    bp_raster_clip_t clip = {10, 15, 30, 25};
    CHECK_INT(bp_raster_polyline(s, &clip, v, 3, 3, 0x000000), 0);
    long outside = 0;
    for (int y = 0; y < 40; y++)
        for (int x = 0; x < 40; x++)
            if (x < 10 || x >= 30 || y < 15 || y >= 25)
                outside += ink_at(s, x, y);
    CHECK_INT(outside, 0);
    CHECK_INT(ink_at(s, 10, 20), 255);
    CHECK_INT(ink_at(s, 29, 20), 255);
    cairo_surface_destroy(s);
}

static void vertices_far_outside_the_surface_are_clipped_not_overflowed(void)
{
    cairo_surface_t *s = white(40, 40);
    bp_raster_vertex_t v[] = {{-1e300, 20.5, true}, {20.5, 1e300, false}, {1e300, -1e300, false}};
    bp_raster_clip_t clip = {0, 0, 40, 40};
    CHECK_INT(bp_raster_polyline(s, &clip, v, 3, 2, 0x000000), 0);
    cairo_surface_destroy(s);
}

static void a_lone_vertex_is_a_dot_and_a_move_breaks_the_line(void)
{
    cairo_surface_t *s = white(40, 20);
    bp_raster_vertex_t v[] = {{5.5, 10.5, true}, {15.5, 10.5, true}, {25.5, 10.5, false}, {35.5, 10.5, true}};
    bp_raster_clip_t clip = {0, 0, 40, 20};
    CHECK_INT(bp_raster_polyline(s, &clip, v, 4, 1.6, 0x000000), 0);
    CHECK_INT(ink_at(s, 5, 10), 255);  /* the first dot */
    CHECK_INT(ink_at(s, 10, 10), 0);   /* the break */
    CHECK_INT(ink_at(s, 20, 10), 255); /* the segment */
    CHECK_INT(ink_at(s, 30, 10), 0);   /* the break */
    CHECK_INT(ink_at(s, 35, 10), 255); /* the last dot */
    cairo_surface_destroy(s);
}

static void a_non_image_surface_is_refused(void)
{
    cairo_surface_t *s = cairo_recording_surface_create(CAIRO_CONTENT_COLOR, NULL);
    bp_raster_vertex_t v[] = {{1, 1, true}};
    bp_raster_clip_t clip = {0, 0, 10, 10};
    CHECK_INT(bp_raster_polyline(s, &clip, v, 1, 1, 0), BP_EINVAL);
    cairo_surface_destroy(s);
}

int main(void)
{
    RUN(a_horizontal_line_covers_its_exact_area);
    RUN(a_zigzag_looks_like_cairos_round_stroke);
    RUN(nothing_is_drawn_outside_the_clip);
    RUN(vertices_far_outside_the_surface_are_clipped_not_overflowed);
    RUN(a_lone_vertex_is_a_dot_and_a_move_breaks_the_line);
    RUN(a_non_image_surface_is_refused);
    cairo_debug_reset_static_data();
    TEST_DONE();
}
