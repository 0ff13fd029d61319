#include "chart.h"
#include "pngenc.h"
#include "raster.h"
#include "text.h"
#include "timeaxis.h"
#include "utf8.h"

#include <cairo-svg.h>
#include <fontconfig/fontconfig.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* One pixel column of the decimated series: what the points falling into it span. */
typedef struct st_column_t {
    int count; /* points with a value */
    double min, max;
    bool min_first; /* the minimum comes before the maximum in time (draw order) */
    bool gap;       /* a point without a value fell here: the line breaks */
    double t_only;  /* time of the point when count == 1, so sparse series keep exact x */
    int band_n;
    double band_lo, band_hi;
    int exp_n;
    double exp_sum;
} column_t;

/* A nice tick layout on the value axis: ticks at first, first + step, ... while <= last. */
typedef struct st_ticks_t {
    double first;
    double step;
    double last;
} ticks_t;

typedef struct st_rect_t {
    double x, y, w, h;
} rect_t;

typedef struct st_palette_t {
    unsigned bg, plot_bg, line, anomaly, expected, band, grid, frame, text, muted, incident, incident_text,
        learning;
    double band_alpha, incident_alpha, learning_alpha;
} palette_t;

/* Colours as 0xRRGGBB. Light keeps the original picture's (matplotlib's named colours). */
static const palette_t palettes[] = {
    [BP_CHART_LIGHT] = {.bg = 0xffffff,
                        .plot_bg = 0xffffff,
                        .line = 0x6495ed, /* cornflowerblue */
                        .anomaly = 0xff0000,
                        .expected = 0x4a5f8a,
                        .band = 0x6495ed,
                        .grid = 0xe5e5e5,
                        .frame = 0x333333,
                        .text = 0x222222,
                        .muted = 0x777777,
                        .incident = 0xe74c3c,
                        .incident_text = 0xb03a2e,
                        .learning = 0x9e9e9e,
                        .band_alpha = 0.20,
                        .incident_alpha = 0.11,
                        .learning_alpha = 0.16},
    [BP_CHART_DARK] = {.bg = 0x1b1e24,
                       .plot_bg = 0x1b1e24,
                       .line = 0x7aa5f5,
                       .anomaly = 0xff5c5c,
                       .expected = 0xb8c4dc,
                       .band = 0x7aa5f5,
                       .grid = 0x343a45,
                       .frame = 0x8a919c,
                       .text = 0xe6e8eb,
                       .muted = 0x9aa0a8,
                       .incident = 0xff6b5b,
                       .incident_text = 0xff8f80,
                       .learning = 0xa0a6b0,
                       .band_alpha = 0.24,
                       .incident_alpha = 0.16,
                       .learning_alpha = 0.14},
};

#define MAX_TIME_LABELS 10
#define TITLE_BUF (BP_CHART_TITLE_MAX + 8)

static void set_rgb(cairo_t *cr, unsigned hex)
{
    cairo_set_source_rgb(cr, (hex >> 16 & 0xff) / 255.0, (hex >> 8 & 0xff) / 255.0, (hex & 0xff) / 255.0);
}

static void set_rgba(cairo_t *cr, unsigned hex, double a)
{
    cairo_set_source_rgba(cr, (hex >> 16 & 0xff) / 255.0, (hex >> 8 & 0xff) / 255.0, (hex & 0xff) / 255.0, a);
}

/* 1, 2 or 5 times a power of ten, the smallest such number >= raw. */
static double nice_step(double raw)
{
    if (!(raw > 0) || !isfinite(raw))
        return 1;
    double mag = pow(10, floor(log10(raw)));
    double f = raw / mag;
    double nice = f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10;
    return nice * mag;
}

/* The value axis for data in [lo, hi]: the range padded by 5% (like matplotlib's margins) and
 * ticks on a nice step inside it, about target of them. */
static void value_axis(double lo, double hi, int target, double *axis_lo, double *axis_hi, ticks_t *ticks)
{
    if (hi < lo) {
        double t = lo;
        lo = hi;
        hi = t;
    }
    if (hi == lo) {
        double pad = lo == 0 ? 1 : fabs(lo) * 0.1;
        lo -= pad;
        hi += pad;
    } else {
        double pad = (hi - lo) * 0.05;
        lo -= pad;
        hi += pad;
    }
    *axis_lo = lo;
    *axis_hi = hi;
    if (target < 2)
        target = 2;
    double step = nice_step((hi - lo) / target);
    /* nice_step rounds up (up to 2.5x), which can leave a short axis with a single label:
     * step down through 5, 2, 1 until at least three ticks show. */
    for (int i = 0; i < 3 && floor(hi / step + 1e-9) - ceil(lo / step - 1e-9) + 1 < 3; i++) {
        double mag = pow(10, floor(log10(step) + 1e-9));
        double f = step / mag;
        step = f > 4 ? 2 * mag : f > 1.5 ? mag : 0.5 * mag;
    }
    ticks->step = step;
    ticks->first = ceil(lo / step - 1e-9) * step;
    ticks->last = floor(hi / step + 1e-9) * step;
}

/* Formats a value tick: plain for small numbers, with a k/M/G suffix from 10 000 up, and as
 * many decimals as the step needs (so 0.25-steps print "0.25", 5-steps print "5"). */
static void format_value(double v, double step, double absmax, char *out, size_t outsz)
{
    static const char *const suffixes[] = {"", "k", "M", "G", "T"};
    int si = 0;
    double scale = 1;
    while (absmax >= 10000 && absmax / (scale * 1000) >= 1 && si < 4) {
        scale *= 1000;
        si++;
    }
    if (fabs(v) < step * 1e-6)
        v = 0; /* no "-0" */
    double s = step / scale;
    int decimals = s >= 1 ? 0 : (int)ceil(-log10(s) - 1e-9);
    if (decimals > 6)
        decimals = 6;
    snprintf(out, outsz, "%.*f%s", decimals, v / scale, suffixes[si]);
}

/* What the decimation found, for the axis and the legend. */
typedef struct st_extent_t {
    size_t used; /* points with a value in range */
    double lo, hi;
    bool band, expected, anomaly, learning;
} extent_t;

static void widen(extent_t *e, double v)
{
    if (!isfinite(v))
        return;
    if (e->lo > e->hi) {
        e->lo = e->hi = v;
        return;
    }
    if (v < e->lo)
        e->lo = v;
    if (v > e->hi)
        e->hi = v;
}

/* Buckets the points inside [from, to] into ncols pixel columns, keeping per column the
 * minimum and maximum (and which came first) so spikes survive any amount of decimation, and
 * the band's extremes. Fills *e with the value range (band included) and what is present. */
static void decimate(const bp_chart_point_t *pts, size_t n, int64_t from, int64_t to, column_t *cols,
                     int ncols, extent_t *e)
{
    memset(e, 0, sizeof(*e));
    e->lo = 1;
    e->hi = 0; /* empty */
    double span = (double)(to - from);
    memset(cols, 0, sizeof(*cols) * (size_t)ncols);
    for (size_t i = 0; i < n; i++) {
        const bp_chart_point_t *p = &pts[i];
        if (p->t < from || p->t > to)
            continue;
        int c = (int)((double)(p->t - from) / span * ncols);
        if (c >= ncols)
            c = ncols - 1;
        column_t *col = &cols[c];
        e->learning = e->learning || p->learning;
        if (p->has_band && isfinite(p->lower) && isfinite(p->upper)) {
            if (col->band_n == 0 || p->lower < col->band_lo)
                col->band_lo = p->lower;
            if (col->band_n == 0 || p->upper > col->band_hi)
                col->band_hi = p->upper;
            col->band_n++;
            widen(e, p->lower);
            widen(e, p->upper);
            e->band = true;
        }
        if (p->has_expected && isfinite(p->expected)) {
            col->exp_sum += p->expected;
            col->exp_n++;
            widen(e, p->expected);
            e->expected = true;
        }
        if (!isfinite(p->value)) {
            col->gap = true;
            continue;
        }
        if (col->count == 0) {
            col->min = col->max = p->value;
            col->min_first = true;
            col->t_only = (double)p->t;
        } else if (p->value < col->min) {
            col->min = p->value;
            col->min_first = false; /* the new minimum comes after the current maximum */
        } else if (p->value > col->max) {
            col->max = p->value;
            col->min_first = true;
        }
        col->count++;
        e->anomaly = e->anomaly || p->anomaly;
        widen(e, p->value);
        e->used++;
    }
}

/* x of time t in the plot. */
static double x_of(const rect_t *plot, int64_t from, int64_t to, double t)
{
    return plot->x + (t - (double)from) / (double)(to - from) * plot->w;
}

static double y_of(const rect_t *plot, double lo, double hi, double v)
{
    return plot->y + plot->h - (v - lo) / (hi - lo) * plot->h;
}

/* Rounds a coordinate so a line one layout unit wide (ratio device pixels) covers whole
 * device pixels instead of smearing over two (crisp grid and frame). */
static double crisp(double v, int ratio)
{
    return (floor(v * ratio) + (ratio % 2 == 1 ? 0.5 : 0)) / ratio;
}

/* Everything the drawing steps share. */
typedef struct st_ctx_t {
    cairo_t *cr;
    const bp_chart_spec_t *spec;
    const palette_t *pal;
    rect_t plot;
    int64_t from, to;
    double lo, hi; /* value axis */
    double s;      /* layout scale (1 from 800x400 up) */
    int ratio;
    column_t *cols;
    int ncols;
} ctx_t;

static double col_x(const ctx_t *c, int i)
{
    return c->plot.x + (i + 0.5) * c->plot.w / c->ncols;
}

/* The band as one filled shape per run of columns that have one. */
static void draw_band(ctx_t *c)
{
    cairo_t *cr = c->cr;
    int i = 0;
    while (i < c->ncols) {
        while (i < c->ncols && c->cols[i].band_n == 0)
            i++;
        int start = i;
        /* Columns without points inside a run (a chart wider than its data) are bridged. */
        int end = start;
        for (int k = start; k < c->ncols; k++) {
            if (c->cols[k].band_n > 0)
                end = k;
            else if (c->cols[k].count > 0 || c->cols[k].gap)
                break;
        }
        if (start >= c->ncols)
            break;
        bool first = true;
        for (int k = start; k <= end; k++) {
            if (c->cols[k].band_n == 0)
                continue;
            double x = col_x(c, k), y = y_of(&c->plot, c->lo, c->hi, c->cols[k].band_hi);
            if (first)
                cairo_move_to(cr, x, y);
            else
                cairo_line_to(cr, x, y);
            first = false;
        }
        for (int k = end; k >= start; k--) {
            if (c->cols[k].band_n == 0)
                continue;
            cairo_line_to(cr, col_x(c, k), y_of(&c->plot, c->lo, c->hi, c->cols[k].band_lo));
        }
        cairo_close_path(cr);
        i = end + 1;
    }
    set_rgba(cr, c->pal->band, c->pal->band_alpha);
    cairo_fill(cr);
}

static void draw_expected(ctx_t *c)
{
    cairo_t *cr = c->cr;
    bool started = false;
    for (int k = 0; k < c->ncols; k++) {
        const column_t *col = &c->cols[k];
        if (col->exp_n == 0) {
            if (col->count > 0 || col->gap)
                started = false;
            continue;
        }
        double x = col_x(c, k), y = y_of(&c->plot, c->lo, c->hi, col->exp_sum / col->exp_n);
        if (started)
            cairo_line_to(cr, x, y);
        else
            cairo_move_to(cr, x, y);
        started = true;
    }
    double dash[] = {5 * c->s, 3.5 * c->s};
    cairo_set_dash(cr, dash, 2, 0);
    set_rgb(cr, c->pal->expected);
    cairo_set_line_width(cr, 1.1 * c->s);
    cairo_stroke(cr);
    cairo_set_dash(cr, NULL, 0, 0);
}

/* The metric line as vertices in layout units: per column the first and last of its minimum
 * and maximum (or the one point, at its exact time), a new piece after a gap. Returns how
 * many were written to v (at most 2 * ncols). */
static size_t series_vertices(const ctx_t *c, bp_raster_vertex_t *v)
{
    size_t n = 0;
    bool started = false;
    for (int k = 0; k < c->ncols; k++) {
        const column_t *col = &c->cols[k];
        if (col->count == 0) {
            if (col->gap)
                started = false;
            continue;
        }
        if (col->count == 1) {
            v[n++] = (bp_raster_vertex_t){x_of(&c->plot, c->from, c->to, col->t_only),
                                          y_of(&c->plot, c->lo, c->hi, col->min), !started};
        } else {
            double x = col_x(c, k);
            v[n++] = (bp_raster_vertex_t){
                x, y_of(&c->plot, c->lo, c->hi, col->min_first ? col->min : col->max), !started};
            v[n++] = (bp_raster_vertex_t){
                x, y_of(&c->plot, c->lo, c->hi, col->min_first ? col->max : col->min), false};
        }
        started = !col->gap;
    }
    return n;
}

/* On an image surface the line goes straight into the pixels (raster.h: cairo's stroker was
 * most of the time of a chart); on SVG it stays a cairo path. Both use a round pen. */
static int draw_series(ctx_t *c, bp_err_t *err)
{
    cairo_t *cr = c->cr;
    bp_raster_vertex_t *v = malloc(sizeof(*v) * 2 * (size_t)c->ncols);
    if (v == NULL)
        return bp_err_set(err, BP_ENOMEM, "chart: out of memory");
    size_t n = series_vertices(c, v);
    double width = 1.6 * c->s;
    cairo_surface_t *target = cairo_get_target(cr);
    if (cairo_surface_get_type(target) == CAIRO_SURFACE_TYPE_IMAGE) {
        int ratio = c->ratio;
        for (size_t i = 0; i < n; i++) {
            v[i].x *= ratio;
            v[i].y *= ratio;
        }
        bp_raster_clip_t clip = {(int)lround(c->plot.x * ratio), (int)lround(c->plot.y * ratio),
                                 (int)lround((c->plot.x + c->plot.w) * ratio),
                                 (int)lround((c->plot.y + c->plot.h) * ratio)};
        int rc = bp_raster_polyline(target, &clip, v, n, width * ratio, c->pal->line);
        free(v);
        return rc == 0 ? 0 : bp_err_set(err, rc, "chart: cannot draw the line");
    }
    for (size_t i = 0; i < n; i++) {
        if (v[i].move) {
            cairo_move_to(cr, v[i].x, v[i].y);
            if (i + 1 == n || v[i + 1].move)
                cairo_line_to(cr, v[i].x, v[i].y); /* an isolated point still shows (round cap) */
        } else {
            cairo_line_to(cr, v[i].x, v[i].y);
        }
    }
    free(v);
    set_rgb(cr, c->pal->line);
    cairo_set_line_width(cr, width);
    cairo_set_line_join(cr, CAIRO_LINE_JOIN_ROUND);
    cairo_set_line_cap(cr, CAIRO_LINE_CAP_ROUND);
    cairo_stroke(cr);
    return 0;
}

/* Red filled circles; consecutive markers landing on the same pixel are drawn once. */
static void draw_anomalies(ctx_t *c)
{
    cairo_t *cr = c->cr;
    double r = 4 * c->s;
    double px = -1, py = -1;
    const bp_chart_spec_t *spec = c->spec;
    for (size_t i = 0; i < spec->num_points; i++) {
        const bp_chart_point_t *p = &spec->points[i];
        if (!p->anomaly || p->t < c->from || p->t > c->to || !isfinite(p->value))
            continue;
        double x = x_of(&c->plot, c->from, c->to, (double)p->t);
        double y = y_of(&c->plot, c->lo, c->hi, p->value);
        if (fabs(x - px) < 1 && fabs(y - py) < 1)
            continue;
        cairo_new_sub_path(cr);
        cairo_arc(cr, x, y, r, 0, 2 * M_PI);
        px = x;
        py = y;
    }
    set_rgb(cr, c->pal->anomaly);
    cairo_fill(cr);
}

/* The interval between points, for how far a learning point's shading reaches: the smallest
 * positive gap among the first points (60 s when there are too few). */
static int64_t point_interval(const bp_chart_spec_t *spec)
{
    int64_t best = 0;
    for (size_t i = 1; i < spec->num_points && i < 64; i++) {
        int64_t d = spec->points[i].t - spec->points[i - 1].t;
        if (d > 0 && (best == 0 || d < best))
            best = d;
    }
    return best > 0 ? best : 60;
}

/* Learning periods: grey shading over the runs of learning points, the widest one labelled. */
static void draw_learning(ctx_t *c)
{
    cairo_t *cr = c->cr;
    const bp_chart_spec_t *spec = c->spec;
    int64_t step = point_interval(spec);
    double rx0 = 0, rx1 = 0, label_x = -1, widest = 0;
    bool in_run = false;
    for (size_t i = 0; i <= spec->num_points; i++) {
        const bp_chart_point_t *p = i < spec->num_points ? &spec->points[i] : NULL;
        bool in = p != NULL && p->learning && p->t >= c->from && p->t <= c->to;
        if (in) {
            double x0 = x_of(&c->plot, c->from, c->to, (double)p->t);
            double x1 = x_of(&c->plot, c->from, c->to, (double)(p->t + step));
            if (in_run && x0 <= rx1 + 1) { /* continues the run, also across sub-pixel gaps */
                rx1 = x1;
                continue;
            }
        }
        if (in_run) {
            cairo_rectangle(cr, rx0, c->plot.y, rx1 - rx0, c->plot.h);
            if (rx1 - rx0 > widest) {
                widest = rx1 - rx0;
                label_x = rx0;
            }
            in_run = false;
        }
        if (in) {
            rx0 = x_of(&c->plot, c->from, c->to, (double)p->t);
            rx1 = x_of(&c->plot, c->from, c->to, (double)(p->t + step));
            in_run = true;
        }
    }
    set_rgba(cr, c->pal->learning, c->pal->learning_alpha);
    cairo_fill(cr);
    double fs = 11 * c->s;
    if (label_x >= 0 && widest >= bp_text_width(cr, "learning", fs, false) + 8 * c->s) {
        set_rgb(cr, c->pal->muted);
        bp_text_draw(cr, "learning", label_x + 5 * c->s, c->plot.y + c->plot.h - 7 * c->s, 0, fs, false);
    }
}

/* Incident spans: a shaded band over the plot's height with its label at the top. */
static void draw_spans(ctx_t *c)
{
    cairo_t *cr = c->cr;
    const bp_chart_spec_t *spec = c->spec;
    double fs = 11.5 * c->s;
    for (size_t i = 0; i < spec->num_spans; i++) {
        const bp_chart_span_t *sp = &spec->spans[i];
        if (sp->to < c->from || sp->from > c->to)
            continue;
        double x0 = x_of(&c->plot, c->from, c->to, (double)(sp->from < c->from ? c->from : sp->from));
        double x1 = x_of(&c->plot, c->from, c->to, (double)(sp->to > c->to ? c->to : sp->to));
        if (x1 - x0 < 2 * c->s) { /* a short incident on a long range: still visible */
            double mid = (x0 + x1) / 2;
            x0 = mid - c->s;
            x1 = mid + c->s;
        }
        set_rgba(cr, c->pal->incident, c->pal->incident_alpha);
        cairo_rectangle(cr, x0, c->plot.y, x1 - x0, c->plot.h);
        cairo_fill(cr);
        set_rgba(cr, c->pal->incident, 0.7);
        cairo_set_line_width(cr, 1);
        cairo_move_to(cr, crisp(x0, c->ratio), c->plot.y);
        cairo_line_to(cr, crisp(x0, c->ratio), c->plot.y + c->plot.h);
        cairo_stroke(cr);
        if (sp->label != NULL && sp->label[0] != '\0') {
            char label[128];
            bp_utf8_sanitize(sp->label, label, sizeof(label), false);
            double w = bp_text_width(cr, label, fs, true);
            /* inside the span when it fits, else just right of its start (or left at the edge) */
            double x = x0 + 4 * c->s;
            if (x + w > c->plot.x + c->plot.w - 2 * c->s)
                x = x0 - 4 * c->s - w;
            set_rgb(cr, c->pal->incident_text);
            bp_text_draw(cr, label, x, c->plot.y + 5 * c->s + fs, 0, fs, true);
        }
    }
}

/* Legend entries present in the picture, right-aligned on one line ending at right. */
typedef enum { SW_LINE, SW_DASH_BAND, SW_DOT, SW_SPAN, SW_LEARN } swatch_t;

typedef struct st_legend_item_t {
    swatch_t sw;
    const char *label;
} legend_item_t;

static void draw_legend(ctx_t *c, const extent_t *e, bool spans, double right, double baseline)
{
    cairo_t *cr = c->cr;
    legend_item_t items[5];
    int n = 0;
    items[n++] = (legend_item_t){SW_LINE, "value"};
    if (e->band || e->expected)
        items[n++] = (legend_item_t){SW_DASH_BAND, e->band ? "expected and band" : "expected"};
    if (e->anomaly)
        items[n++] = (legend_item_t){SW_DOT, "anomaly"};
    if (spans)
        items[n++] = (legend_item_t){SW_SPAN, "incident"};
    if (e->learning)
        items[n++] = (legend_item_t){SW_LEARN, "learning"};
    double s = c->s, fs = 12 * s, sw = 22 * s, gap = 6 * s, sep = 16 * s;
    double total = 0;
    for (int i = 0; i < n; i++)
        total += sw + gap + bp_text_width(cr, items[i].label, fs, false) + (i > 0 ? sep : 0);
    double x = right - total;
    if (x < c->plot.x)
        x = c->plot.x;
    double mid = baseline - 4 * s;
    for (int i = 0; i < n; i++) {
        if (i > 0)
            x += sep;
        switch (items[i].sw) {
        case SW_LINE:
            set_rgb(cr, c->pal->line);
            cairo_set_line_width(cr, 1.6 * s);
            cairo_move_to(cr, x, mid);
            cairo_line_to(cr, x + sw, mid);
            cairo_stroke(cr);
            break;
        case SW_DASH_BAND: {
            if (e->band) {
                set_rgba(cr, c->pal->band, c->pal->band_alpha);
                cairo_rectangle(cr, x, mid - 5 * s, sw, 10 * s);
                cairo_fill(cr);
            }
            double dash[] = {5 * s, 3.5 * s};
            cairo_set_dash(cr, dash, 2, 0);
            set_rgb(cr, c->pal->expected);
            cairo_set_line_width(cr, 1.1 * s);
            cairo_move_to(cr, x, mid);
            cairo_line_to(cr, x + sw, mid);
            cairo_stroke(cr);
            cairo_set_dash(cr, NULL, 0, 0);
            break;
        }
        case SW_DOT:
            set_rgb(cr, c->pal->anomaly);
            cairo_new_sub_path(cr);
            cairo_arc(cr, x + sw / 2, mid, 4 * s, 0, 2 * M_PI);
            cairo_fill(cr);
            break;
        case SW_SPAN:
            set_rgba(cr, c->pal->incident, c->pal->incident_alpha * 2);
            cairo_rectangle(cr, x, mid - 6 * s, sw, 12 * s);
            cairo_fill(cr);
            break;
        case SW_LEARN:
            set_rgba(cr, c->pal->learning, c->pal->learning_alpha * 2);
            cairo_rectangle(cr, x, mid - 6 * s, sw, 12 * s);
            cairo_fill(cr);
            break;
        }
        x += sw + gap;
        set_rgb(cr, c->pal->text);
        bp_text_draw(cr, items[i].label, x, baseline, 0, fs, false);
        x += bp_text_width(cr, items[i].label, fs, false);
    }
}

static bool spans_visible(const bp_chart_spec_t *spec, int64_t from, int64_t to)
{
    for (size_t i = 0; i < spec->num_spans; i++) {
        if (spec->spans[i].to >= from && spec->spans[i].from <= to)
            return true;
    }
    return false;
}

/* The whole picture. cairo errors are sticky, so the caller checks cairo_status once. */
static int draw(cairo_t *cr, const bp_chart_spec_t *spec, int w, int h, int ratio, int64_t from, int64_t to,
                bp_err_t *err)
{
    cairo_scale(cr, ratio, ratio);
    ctx_t c = {.cr = cr, .spec = spec, .from = from, .to = to, .ratio = ratio};
    c.pal = &palettes[spec->theme == BP_CHART_DARK ? BP_CHART_DARK : BP_CHART_LIGHT];
    /* Text and lines keep their size from 800x400 up (more room shows more data, like a
     * matplotlib figure at fixed dpi) and shrink below it, down to a floor that stays legible. */
    double s = fmin(1, fmin(w / 800.0, h / 400.0));
    if (s < 0.6)
        s = 0.6;
    c.s = s;
    double tick_font = 13 * s, title_font = 18 * s, tick_len = 5 * s;

    set_rgb(cr, c.pal->bg);
    cairo_paint(cr);

    /* Vertical layout first: it does not depend on label widths. Title row, legend row. */
    double title_base = 20 * s + title_font * 0.8;
    double legend_base = title_base + 12 * s + 13 * s;
    double top = legend_base + 14 * s;
    double bottom = tick_len + 6 * s + 2 * (tick_font * 1.25) + 8 * s + tick_font + 14 * s;
    c.plot = (rect_t){0, top, 0, h - top - bottom};
    if (c.plot.h < 20)
        return bp_err_set(err, BP_EINVAL, "chart height %d leaves no room to plot", h);

    int max_cols = w * ratio; /* never wider than a device pixel: decimate to the image width */
    c.cols = calloc((size_t)max_cols, sizeof(*c.cols));
    if (c.cols == NULL)
        return bp_err_set(err, BP_ENOMEM, "chart: out of memory");

    /* The value range needs a first decimation pass; do it on the image width and redo it
     * below on the plot width once the left margin (from the value labels) is known. */
    extent_t e;
    decimate(spec->points, spec->num_points, from, to, c.cols, max_cols, &e);
    bool have_data = e.used > 0;
    c.lo = 0;
    c.hi = 1;
    ticks_t vt = {0, 1, -1};
    int target = (int)(c.plot.h / (60 * s));
    if (e.lo <= e.hi)
        value_axis(e.lo, e.hi, target > 10 ? 10 : target, &c.lo, &c.hi, &vt);

    char label[64];
    double absmax = fmax(fabs(c.lo), fabs(c.hi));
    double label_w = 0;
    for (int i = 0; vt.first + i * vt.step <= vt.last + vt.step * 1e-9; i++) {
        format_value(vt.first + i * vt.step, vt.step, absmax, label, sizeof(label));
        label_w = fmax(label_w, bp_text_width(cr, label, tick_font, false));
    }
    c.plot.x = fmax(label_w + tick_len + 10 * s, 40 * s) + 12 * s;
    c.plot.w = w - c.plot.x - 30 * s;
    if (c.plot.w < 40) {
        free(c.cols);
        return bp_err_set(err, BP_EINVAL, "chart width %d leaves no room to plot", w);
    }
    c.ncols = (int)(c.plot.w * ratio);
    decimate(spec->points, spec->num_points, from, to, c.cols, c.ncols, &e);

    set_rgb(cr, c.pal->plot_bg);
    cairo_rectangle(cr, c.plot.x, c.plot.y, c.plot.w, c.plot.h);
    cairo_fill(cr);

    /* Shading under everything else, clipped to the plot. */
    cairo_save(cr);
    cairo_rectangle(cr, c.plot.x, c.plot.y, c.plot.w, c.plot.h);
    cairo_clip(cr);
    if (e.learning)
        draw_learning(&c);
    cairo_restore(cr);

    /* Grid and value ticks. */
    cairo_set_line_width(cr, 1);
    for (int i = 0; vt.first + i * vt.step <= vt.last + vt.step * 1e-9; i++) {
        double v = vt.first + i * vt.step;
        double y = crisp(y_of(&c.plot, c.lo, c.hi, v), ratio);
        set_rgb(cr, c.pal->grid);
        cairo_move_to(cr, c.plot.x, y);
        cairo_line_to(cr, c.plot.x + c.plot.w, y);
        cairo_stroke(cr);
        set_rgb(cr, c.pal->frame);
        cairo_move_to(cr, c.plot.x - tick_len, y);
        cairo_line_to(cr, c.plot.x, y);
        cairo_stroke(cr);
        format_value(v, vt.step, absmax, label, sizeof(label));
        set_rgb(cr, c.pal->text);
        bp_text_draw(cr, label, c.plot.x - tick_len - 5 * s, y + tick_font * 0.36, 1, tick_font, false);
    }

    /* Time ticks in the viewer's zone: as many as fit with room for an "Nov 25, 2026" label
     * between them. */
    double date_w = bp_text_width(cr, "Nov 25, 2026", tick_font, false);
    int max_labels = (int)(c.plot.w / (date_w + 24 * s)) + 1;
    if (max_labels > MAX_TIME_LABELS)
        max_labels = MAX_TIME_LABELS;
    bp_timeaxis_t *ax = malloc(sizeof(*ax));
    if (ax == NULL) {
        free(c.cols);
        return bp_err_set(err, BP_ENOMEM, "chart: out of memory");
    }
    bp_timeaxis_build(spec->tz, from, to, max_labels, ax);
    double last_right = -1e9;
    for (int i = 0; i < ax->num_ticks; i++) {
        const bp_timeaxis_tick_t *k = &ax->ticks[i];
        double x = crisp(x_of(&c.plot, from, to, (double)k->t), ratio);
        set_rgb(cr, c.pal->grid);
        cairo_move_to(cr, x, c.plot.y);
        cairo_line_to(cr, x, c.plot.y + c.plot.h);
        cairo_stroke(cr);
        set_rgb(cr, c.pal->frame);
        cairo_move_to(cr, x, c.plot.y + c.plot.h);
        cairo_line_to(cr, x, c.plot.y + c.plot.h + tick_len);
        cairo_stroke(cr);
        /* A DST fall-back repeats a label one step later: skip one that would overlap. */
        double lw = fmax(bp_text_width(cr, k->line1, tick_font, false),
                         bp_text_width(cr, k->line2, tick_font, false));
        if (x - lw / 2 < last_right + 4 * s)
            continue;
        last_right = x + lw / 2;
        double base = c.plot.y + c.plot.h + tick_len + 6 * s + tick_font;
        set_rgb(cr, c.pal->text);
        bp_text_draw(cr, k->line1, x, base, 0.5, tick_font, false);
        if (k->line2[0] != '\0') {
            set_rgb(cr, c.pal->muted);
            bp_text_draw(cr, k->line2, x, base + tick_font * 1.25, 0.5, tick_font, false);
        }
    }
    free(ax);
    char caption[96];
    snprintf(caption, sizeof(caption), "Time (%s)", bp_tz_name(spec->tz));
    set_rgb(cr, c.pal->muted);
    bp_text_draw(cr, caption, c.plot.x + c.plot.w / 2, h - 12 * s, 0.5, tick_font, false);

    /* Data, clipped to the plot. */
    bool spans = spans_visible(spec, from, to);
    cairo_save(cr);
    cairo_rectangle(cr, c.plot.x, c.plot.y, c.plot.w, c.plot.h);
    cairo_clip(cr);
    if (spans)
        draw_spans(&c);
    if (e.band)
        draw_band(&c);
    if (e.expected)
        draw_expected(&c);
    int rc = 0;
    if (have_data) {
        rc = draw_series(&c, err);
        draw_anomalies(&c);
    } else {
        set_rgb(cr, c.pal->muted);
        bp_text_draw(cr, "No data for this range", c.plot.x + c.plot.w / 2, c.plot.y + c.plot.h / 2, 0.5,
                     20 * s, false);
    }
    cairo_restore(cr);
    free(c.cols);
    if (rc != 0)
        return rc;

    /* Frame. */
    set_rgb(cr, c.pal->frame);
    cairo_set_line_width(cr, 1);
    cairo_rectangle(cr, crisp(c.plot.x, ratio), crisp(c.plot.y, ratio), floor(c.plot.w), floor(c.plot.h));
    cairo_stroke(cr);

    /* Title centred over the plot, legend right-aligned under it. */
    char title[TITLE_BUF];
    bp_utf8_sanitize(spec->title != NULL ? spec->title : "", title, BP_CHART_TITLE_MAX + 1, false);
    set_rgb(cr, c.pal->text);
    bp_text_draw(cr, title, c.plot.x + c.plot.w / 2, title_base, 0.5, title_font, true);
    if (have_data)
        draw_legend(&c, &e, spans, c.plot.x + c.plot.w, legend_base);
    return 0;
}

/* Resolves sizes and the time range; BP_EINVAL when out of bounds. */
static int layout(const bp_chart_spec_t *spec, int *w, int *h, int *ratio, int64_t *from, int64_t *to,
                  bp_err_t *err)
{
    *w = spec->width > 0 ? spec->width : BP_CHART_DEFAULT_WIDTH;
    *h = spec->height > 0 ? spec->height : BP_CHART_DEFAULT_HEIGHT;
    if (*w < BP_CHART_MIN_WIDTH || *w > BP_CHART_MAX_WIDTH)
        return bp_err_set(err, BP_EINVAL, "width must be %d..%d, got %d", BP_CHART_MIN_WIDTH,
                          BP_CHART_MAX_WIDTH, *w);
    if (*h < BP_CHART_MIN_HEIGHT || *h > BP_CHART_MAX_HEIGHT)
        return bp_err_set(err, BP_EINVAL, "height must be %d..%d, got %d", BP_CHART_MIN_HEIGHT,
                          BP_CHART_MAX_HEIGHT, *h);
    *ratio = spec->pixel_ratio > 0 ? spec->pixel_ratio : 1;
    if (*ratio > BP_CHART_MAX_PIXEL_RATIO || *w * *ratio > BP_CHART_MAX_WIDTH ||
        *h * *ratio > BP_CHART_MAX_HEIGHT)
        return bp_err_set(err, BP_EINVAL, "chart of %dx%d at pixel ratio %d is over %dx%d pixels", *w, *h,
                          *ratio, BP_CHART_MAX_WIDTH, BP_CHART_MAX_HEIGHT);
    *from = spec->from;
    *to = spec->to;
    if (*from >= *to) {
        if (spec->num_points > 0) {
            *from = spec->points[0].t;
            *to = spec->points[spec->num_points - 1].t;
        } else {
            *to = (int64_t)time(NULL);
            *from = *to - 3600;
        }
        if (*from >= *to) { /* one point: an hour around it */
            *from -= 1800;
            *to += 1800;
        }
    }
    return 0;
}

static int finish(cairo_t *cr, int rc, bp_err_t *err)
{
    cairo_status_t st = cairo_status(cr);
    cairo_destroy(cr);
    if (rc == 0 && st != CAIRO_STATUS_SUCCESS)
        rc = bp_err_set(err, st == CAIRO_STATUS_NO_MEMORY ? BP_ENOMEM : BP_EINTERNAL, "chart: cairo: %s",
                        cairo_status_to_string(st));
    return rc;
}

int bp_chart_draw(const bp_chart_spec_t *spec, cairo_surface_t **out, bp_err_t *err)
{
    *out = NULL;
    int w = 0, h = 0, ratio = 1; /* set by layout; initialised for -O3's flow analysis */
    int64_t from = 0, to = 0;
    int rc = layout(spec, &w, &h, &ratio, &from, &to, err);
    if (rc != 0)
        return rc;
    cairo_surface_t *surface = cairo_image_surface_create(CAIRO_FORMAT_RGB24, w * ratio, h * ratio);
    if (cairo_surface_status(surface) != CAIRO_STATUS_SUCCESS) {
        cairo_surface_destroy(surface);
        return bp_err_set(err, BP_ENOMEM, "chart: cannot create a %dx%d surface", w * ratio, h * ratio);
    }
    cairo_t *cr = cairo_create(surface);
    rc = finish(cr, draw(cr, spec, w, h, ratio, from, to, err), err);
    if (rc != 0) {
        cairo_surface_destroy(surface);
        return rc;
    }
    cairo_surface_flush(surface);
    *out = surface;
    return 0;
}

int bp_chart_png(const bp_chart_spec_t *spec, bp_buf_t *out, bp_err_t *err)
{
    cairo_surface_t *surface = NULL;
    int rc = bp_chart_draw(spec, &surface, err);
    if (rc != 0)
        return rc;
    rc = bp_pngenc_write(surface, out, err);
    cairo_surface_destroy(surface);
    return rc;
}

/* cairo's SVG writer hands us chunks; the buffer's ceiling bounds the total. */
typedef struct st_svg_sink_t {
    bp_buf_t *out;
    int rc;
} svg_sink_t;

static cairo_status_t svg_write(void *closure, const unsigned char *data, unsigned int length)
{
    svg_sink_t *sink = closure;
    int rc = bp_buf_append(sink->out, data, length);
    if (rc != 0) {
        sink->rc = rc;
        return CAIRO_STATUS_WRITE_ERROR;
    }
    return CAIRO_STATUS_SUCCESS;
}

int bp_chart_svg(const bp_chart_spec_t *spec, bp_buf_t *out, bp_err_t *err)
{
    bp_chart_spec_t one = *spec;
    one.pixel_ratio = 1;
    int w = 0, h = 0, ratio = 1; /* set by layout; initialised for -O3's flow analysis */
    int64_t from = 0, to = 0;
    int rc = layout(&one, &w, &h, &ratio, &from, &to, err);
    if (rc != 0)
        return rc;
    svg_sink_t sink = {out, 0};
    cairo_surface_t *surface = cairo_svg_surface_create_for_stream(svg_write, &sink, w, h);
    if (cairo_surface_status(surface) != CAIRO_STATUS_SUCCESS) {
        cairo_surface_destroy(surface);
        return bp_err_set(err, BP_ENOMEM, "chart: cannot create an SVG surface");
    }
    cairo_t *cr = cairo_create(surface);
    rc = finish(cr, draw(cr, &one, w, h, 1, from, to, err), err);
    cairo_surface_finish(surface); /* writes the document out */
    cairo_status_t st = cairo_surface_status(surface);
    cairo_surface_destroy(surface);
    if (rc == 0 && sink.rc == BP_ETOOBIG)
        rc = bp_err_set(err, BP_ETOOBIG, "chart: SVG larger than %zu bytes", out->max);
    else if (rc == 0 && sink.rc != 0)
        rc = bp_err_set(err, sink.rc, "chart: out of memory writing the SVG");
    else if (rc == 0 && st != CAIRO_STATUS_SUCCESS)
        rc = bp_err_set(err, BP_EINTERNAL, "chart: SVG: %s", cairo_status_to_string(st));
    return rc;
}

void bp_chart_release_caches(void)
{
    bp_text_release();
    cairo_debug_reset_static_data();
    FcFini();
}
