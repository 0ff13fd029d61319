/* The floor (DESIGN §8): a bare cairo program drawing the original picture — white background,
 * the metric as a cornflowerblue polyline through every point, red anomaly circles, a title,
 * a frame with a few labelled ticks — and writing it with cairo_surface_write_to_png, as any
 * straightforward C port of the matplotlib service would.
 *
 *   floor CSV OUT.png ITERATIONS   prints the median CPU milliseconds per chart */
#include <cairo.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cpu_time.h"

typedef struct {
    double t, v;
    int anomaly;
} pt_t;

static void chart(const pt_t *p, size_t n, const char *out)
{
    int w = 1200, h = 600;
    double px = 70, py = 50, pw = w - 100, ph = h - 110;
    cairo_surface_t *s = cairo_image_surface_create(CAIRO_FORMAT_RGB24, w, h);
    cairo_t *cr = cairo_create(s);
    cairo_set_source_rgb(cr, 1, 1, 1);
    cairo_paint(cr);
    double lo = p[0].v, hi = p[0].v;
    for (size_t i = 1; i < n; i++) {
        lo = fmin(lo, p[i].v);
        hi = fmax(hi, p[i].v);
    }
    double pad = (hi - lo) * 0.05 + 1e-9;
    lo -= pad;
    hi += pad;
    double t0 = p[0].t, t1 = p[n - 1].t;
    cairo_select_font_face(cr, "DejaVu Sans", CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_NORMAL);
    cairo_set_font_size(cr, 12);
    cairo_set_line_width(cr, 1);
    char label[64];
    for (int k = 0; k <= 5; k++) {
        double y = py + ph - k * ph / 5;
        cairo_set_source_rgb(cr, 0.9, 0.9, 0.9);
        cairo_move_to(cr, px, y);
        cairo_line_to(cr, px + pw, y);
        cairo_stroke(cr);
        cairo_set_source_rgb(cr, 0.13, 0.13, 0.13);
        snprintf(label, sizeof(label), "%.0f", lo + k * (hi - lo) / 5);
        cairo_move_to(cr, px - 40, y + 4);
        cairo_show_text(cr, label);
        double x = px + k * pw / 5;
        time_t tt = (time_t)(t0 + k * (t1 - t0) / 5);
        struct tm tm;
        gmtime_r(&tt, &tm);
        strftime(label, sizeof(label), "%m-%d %H:%M", &tm);
        cairo_move_to(cr, x - 35, py + ph + 20);
        cairo_show_text(cr, label);
    }
    cairo_set_source_rgb(cr, 0.392, 0.584, 0.929);
    cairo_set_line_width(cr, 1.6);
    for (size_t i = 0; i < n; i++) {
        double x = px + (p[i].t - t0) / (t1 - t0) * pw, y = py + ph - (p[i].v - lo) / (hi - lo) * ph;
        if (i == 0)
            cairo_move_to(cr, x, y);
        else
            cairo_line_to(cr, x, y);
    }
    cairo_stroke(cr);
    cairo_set_source_rgb(cr, 1, 0, 0);
    for (size_t i = 0; i < n; i++) {
        if (!p[i].anomaly)
            continue;
        double x = px + (p[i].t - t0) / (t1 - t0) * pw, y = py + ph - (p[i].v - lo) / (hi - lo) * ph;
        cairo_new_sub_path(cr);
        cairo_arc(cr, x, y, 4, 0, 2 * M_PI);
    }
    cairo_fill(cr);
    cairo_set_source_rgb(cr, 0.2, 0.2, 0.2);
    cairo_rectangle(cr, px, py, pw, ph);
    cairo_stroke(cr);
    cairo_select_font_face(cr, "DejaVu Sans", CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_BOLD);
    cairo_set_font_size(cr, 18);
    cairo_move_to(cr, w / 2.0 - 170, 32);
    cairo_show_text(cr, "Metric Analysis: user_registration");
    cairo_destroy(cr);
    cairo_surface_write_to_png(s, out);
    cairo_surface_destroy(s);
}

int main(int argc, char **argv)
{
    if (argc != 4)
        return 2;
    FILE *f = fopen(argv[1], "r");
    if (f == NULL)
        return 1;
    pt_t *p = malloc(sizeof(*p) * 200000);
    size_t n = 0;
    char line[256];
    while (fgets(line, sizeof(line), f) != NULL && n < 200000) {
        if (sscanf(line, "%lf,%lf,%d", &p[n].t, &p[n].v, &p[n].anomaly) == 3)
            n++;
    }
    fclose(f);
    int iters = atoi(argv[3]);
    if (iters < 1 || iters > 100000)
        return 2;
    double *ms = malloc(sizeof(*ms) * (size_t)iters);
    for (int i = 0; i < iters; i++) {
        double t0 = cpu_ms();
        chart(p, n, argv[2]);
        ms[i] = cpu_ms() - t0;
    }
    printf("%.3f\n", median_ms(ms, (size_t)iters));
    free(ms);
    free(p);
    return 0;
}
