#include "chart.h"
#include "utf8.h"

#include <fontconfig/fontconfig.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* One pixel column of the decimated series: what the points falling into it span. */
typedef struct st_column_t {
    int count;
    double min, max;
    bool min_first; /* the minimum comes before the maximum in time (draw order) */
    double t_only;  /* time of the point when count == 1, so sparse series keep exact x */
} column_t;

/* A nice tick layout on one axis: ticks at first, first + step, ... while <= last. */
typedef struct st_ticks_t {
    double first;
    double step;
    double last;
} ticks_t;

typedef struct st_rect_t {
    double x, y, w, h;
} rect_t;

/* Colours of the original picture (matplotlib's named colours). */
#define RGB(hex) ((hex) >> 16 & 0xff) / 255.0, ((hex) >> 8 & 0xff) / 255.0, ((hex)&0xff) / 255.0
#define COLOR_BG 0xffffff
#define COLOR_LINE 0x6495ed /* cornflowerblue */
#define COLOR_ANOMALY 0xff0000
#define COLOR_GRID 0xe5e5e5
#define COLOR_FRAME 0x333333
#define COLOR_TEXT 0x222222
#define COLOR_MUTED 0x777777

#define FONT_LATIN "DejaVu Sans"
/* cairo's toy font API picks one font per call with no per-glyph fallback, so text that is
 * not plain ASCII is drawn with a CJK font that also covers Latin (issue 6 replaces this with
 * real shaping and fallback). */
#define FONT_CJK "WenQuanYi Zen Hei"

#define MAX_TIME_LABELS 10
#define TITLE_MAX 512

/* Candidate time steps, seconds. Ticks are multiples of the step since the epoch, so every
 * step up to a day lands on round UTC times. */
static const int64_t time_steps[] = {
    1,    5,     10,    15,    30,    60,     120,    300,     600,     900,     1800,     3600,
    7200, 10800, 21600, 43200, 86400, 172800, 604800, 1209600, 2592000, 7776000, 15552000, 31536000,
};

static const char *const month_names[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                          "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

/* The smallest candidate step giving at most max_labels ticks over span seconds. */
static int64_t pick_time_step(int64_t span, int max_labels)
{
    size_t n = sizeof(time_steps) / sizeof(time_steps[0]);
    if (max_labels < 2)
        max_labels = 2;
    for (size_t i = 0; i < n; i++) {
        if (span / time_steps[i] + 1 <= max_labels)
            return time_steps[i];
    }
    int64_t step = time_steps[n - 1];
    while (span / step + 1 > max_labels)
        step *= 2;
    return step;
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

/* Tick label lines for time t. line2 is set only where it adds information: the date under a
 * clock time on the first tick and where the day changes, the year under a date likewise. */
static void format_time(int64_t t, int64_t step, const struct tm *prev, char *line1, char *line2, size_t n,
                        struct tm *cur)
{
    time_t tt = (time_t)t;
    gmtime_r(&tt, cur);
    line2[0] = '\0';
    if (step >= 86400) {
        snprintf(line1, n, "%s %d", month_names[cur->tm_mon], cur->tm_mday);
        if (prev == NULL || prev->tm_year != cur->tm_year)
            snprintf(line2, n, "%d", cur->tm_year + 1900);
        return;
    }
    if (step < 60)
        snprintf(line1, n, "%02d:%02d:%02d", cur->tm_hour, cur->tm_min, cur->tm_sec);
    else
        snprintf(line1, n, "%02d:%02d", cur->tm_hour, cur->tm_min);
    if (prev == NULL || prev->tm_yday != cur->tm_yday || prev->tm_year != cur->tm_year)
        snprintf(line2, n, "%s %d, %d", month_names[cur->tm_mon], cur->tm_mday, cur->tm_year + 1900);
}

/* Buckets the points inside [from, to] into ncols pixel columns, keeping per column the
 * minimum and maximum (and which came first) so spikes survive any amount of decimation.
 * Returns the number of points used; *lo and *hi get their value range (untouched when 0). */
static size_t decimate(const bp_chart_point_t *pts, size_t n, int64_t from, int64_t to, column_t *cols,
                       int ncols, double *lo, double *hi)
{
    size_t used = 0;
    double span = (double)(to - from);
    memset(cols, 0, sizeof(*cols) * (size_t)ncols);
    for (size_t i = 0; i < n; i++) {
        const bp_chart_point_t *p = &pts[i];
        if (p->t < from || p->t > to || !isfinite(p->value))
            continue;
        int c = (int)((double)(p->t - from) / span * ncols);
        if (c >= ncols)
            c = ncols - 1;
        column_t *col = &cols[c];
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
        if (used == 0) {
            *lo = *hi = p->value;
        } else {
            if (p->value < *lo)
                *lo = p->value;
            if (p->value > *hi)
                *hi = p->value;
        }
        used++;
    }
    return used;
}

static void set_font(cairo_t *cr, double size, bool bold, bool wide)
{
    cairo_select_font_face(cr, wide ? FONT_CJK : FONT_LATIN, CAIRO_FONT_SLANT_NORMAL,
                           bold ? CAIRO_FONT_WEIGHT_BOLD : CAIRO_FONT_WEIGHT_NORMAL);
    cairo_set_font_size(cr, size);
}

static double text_width(cairo_t *cr, const char *s)
{
    cairo_text_extents_t ext;
    cairo_text_extents(cr, s, &ext);
    return ext.x_advance;
}

/* Draws s with its baseline at y; ax = 0 left-aligns at x, 0.5 centres, 1 right-aligns. */
static void text_at(cairo_t *cr, const char *s, double x, double y, double ax)
{
    cairo_move_to(cr, x - ax * text_width(cr, s), y);
    cairo_show_text(cr, s);
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

static void draw_series(cairo_t *cr, const rect_t *plot, const column_t *cols, int ncols, int64_t from,
                        int64_t to, double lo, double hi, double s)
{
    bool started = false;
    double colw = plot->w / ncols;
    for (int c = 0; c < ncols; c++) {
        const column_t *col = &cols[c];
        if (col->count == 0)
            continue;
        if (col->count == 1) {
            double x = x_of(plot, from, to, col->t_only);
            double y = y_of(plot, lo, hi, col->min);
            if (started)
                cairo_line_to(cr, x, y);
            else
                cairo_move_to(cr, x, y);
            started = true;
            continue;
        }
        double x = plot->x + (c + 0.5) * colw;
        double y1 = y_of(plot, lo, hi, col->min_first ? col->min : col->max);
        double y2 = y_of(plot, lo, hi, col->min_first ? col->max : col->min);
        if (started)
            cairo_line_to(cr, x, y1);
        else
            cairo_move_to(cr, x, y1);
        cairo_line_to(cr, x, y2);
        started = true;
    }
    if (!started)
        return;
    cairo_set_source_rgb(cr, RGB(COLOR_LINE));
    cairo_set_line_width(cr, 1.6 * s);
    cairo_set_line_join(cr, CAIRO_LINE_JOIN_ROUND);
    cairo_set_line_cap(cr, CAIRO_LINE_CAP_ROUND);
    cairo_stroke(cr);
}

/* Red filled circles; consecutive markers landing on the same pixel are drawn once. */
static void draw_anomalies(cairo_t *cr, const rect_t *plot, const bp_chart_spec_t *spec, int64_t from,
                           int64_t to, double lo, double hi, double s)
{
    double r = 4 * s;
    double px = -1, py = -1;
    for (size_t i = 0; i < spec->num_points; i++) {
        const bp_chart_point_t *p = &spec->points[i];
        if (!p->anomaly || p->t < from || p->t > to || !isfinite(p->value))
            continue;
        double x = x_of(plot, from, to, (double)p->t);
        double y = y_of(plot, lo, hi, p->value);
        if (fabs(x - px) < 1 && fabs(y - py) < 1)
            continue;
        cairo_new_sub_path(cr);
        cairo_arc(cr, x, y, r, 0, 2 * M_PI);
        px = x;
        py = y;
    }
    cairo_set_source_rgb(cr, RGB(COLOR_ANOMALY));
    cairo_fill(cr);
}

static void draw_legend(cairo_t *cr, double right, double baseline, double s)
{
    const char *lv = "value", *la = "anomaly";
    set_font(cr, 12 * s, false, false);
    double wa = text_width(cr, la), wv = text_width(cr, lv);
    double sw = 22 * s, gap = 8 * s, mid = baseline - 4 * s;
    double x = right - (sw + gap + wv + 18 * s + 2 * 4 * s + gap + wa);
    cairo_set_source_rgb(cr, RGB(COLOR_LINE));
    cairo_set_line_width(cr, 1.6 * s);
    cairo_move_to(cr, x, mid);
    cairo_line_to(cr, x + sw, mid);
    cairo_stroke(cr);
    cairo_set_source_rgb(cr, RGB(COLOR_TEXT));
    text_at(cr, lv, x + sw + gap, baseline, 0);
    x += sw + gap + wv + 18 * s;
    cairo_set_source_rgb(cr, RGB(COLOR_ANOMALY));
    cairo_new_sub_path(cr);
    cairo_arc(cr, x + 4 * s, mid, 4 * s, 0, 2 * M_PI);
    cairo_fill(cr);
    cairo_set_source_rgb(cr, RGB(COLOR_TEXT));
    text_at(cr, la, x + 8 * s + gap, baseline, 0);
}

/* The whole picture. cairo errors are sticky, so the caller checks cairo_status once. */
static int draw(cairo_t *cr, const bp_chart_spec_t *spec, int w, int h, int ratio, int64_t from, int64_t to,
                bp_err_t *err)
{
    cairo_scale(cr, ratio, ratio);
    /* Text and lines keep their size from 800x400 up (more room shows more data, like a
     * matplotlib figure at fixed dpi) and shrink below it, down to a floor that stays legible. */
    double s = fmin(1, fmin(w / 800.0, h / 400.0));
    if (s < 0.6)
        s = 0.6;
    double tick_font = 13 * s, title_font = 18 * s, tick_len = 5 * s;

    cairo_set_source_rgb(cr, RGB(COLOR_BG));
    cairo_paint(cr);

    /* Vertical layout first: it does not depend on label widths. */
    double top = 24 * s + title_font + 16 * s;
    double bottom = tick_len + 6 * s + 2 * (tick_font * 1.25) + 8 * s + tick_font + 14 * s;
    rect_t plot = {0, top, 0, h - top - bottom};
    if (plot.h < 20)
        return bp_err_set(err, BP_EINVAL, "chart height %d leaves no room to plot", h);

    int max_cols = w * ratio; /* never wider than a device pixel: decimate to the image width */
    column_t *cols = calloc((size_t)max_cols, sizeof(*cols));
    if (cols == NULL)
        return bp_err_set(err, BP_ENOMEM, "chart: out of memory");

    /* The value range needs a first decimation pass; do it on the image width and redo it
     * below on the plot width once the left margin (from the value labels) is known. */
    double lo = 0, hi = 0;
    size_t used = decimate(spec->points, spec->num_points, from, to, cols, max_cols, &lo, &hi);
    double axis_lo = 0, axis_hi = 1;
    ticks_t vt = {0, 1, -1};
    int target = (int)(plot.h / (60 * s));
    if (used > 0)
        value_axis(lo, hi, target > 10 ? 10 : target, &axis_lo, &axis_hi, &vt);

    char label[64], line2[64];
    double absmax = fmax(fabs(axis_lo), fabs(axis_hi));
    set_font(cr, tick_font, false, false);
    double label_w = 0;
    for (int i = 0; used > 0 && vt.first + i * vt.step <= vt.last + vt.step * 1e-9; i++) {
        format_value(vt.first + i * vt.step, vt.step, absmax, label, sizeof(label));
        label_w = fmax(label_w, text_width(cr, label));
    }
    plot.x = fmax(label_w + tick_len + 10 * s, 40 * s) + 12 * s;
    plot.w = w - plot.x - 30 * s;
    if (plot.w < 40) {
        free(cols);
        return bp_err_set(err, BP_EINVAL, "chart width %d leaves no room to plot", w);
    }
    int ncols = (int)(plot.w * ratio);
    if (used > 0)
        decimate(spec->points, spec->num_points, from, to, cols, ncols, &lo, &hi);

    /* Grid and value ticks. */
    cairo_set_line_width(cr, 1);
    for (int i = 0; used > 0 && vt.first + i * vt.step <= vt.last + vt.step * 1e-9; i++) {
        double v = vt.first + i * vt.step;
        double y = crisp(y_of(&plot, axis_lo, axis_hi, v), ratio);
        cairo_set_source_rgb(cr, RGB(COLOR_GRID));
        cairo_move_to(cr, plot.x, y);
        cairo_line_to(cr, plot.x + plot.w, y);
        cairo_stroke(cr);
        cairo_set_source_rgb(cr, RGB(COLOR_FRAME));
        cairo_move_to(cr, plot.x - tick_len, y);
        cairo_line_to(cr, plot.x, y);
        cairo_stroke(cr);
        format_value(v, vt.step, absmax, label, sizeof(label));
        cairo_set_source_rgb(cr, RGB(COLOR_TEXT));
        text_at(cr, label, plot.x - tick_len - 5 * s, y + tick_font * 0.36, 1);
    }

    /* Time ticks: as many as fit with room for an "Nov 25, 2026" label between them. */
    double date_w = text_width(cr, "Nov 25, 2026");
    int max_labels = (int)(plot.w / (date_w + 24 * s)) + 1;
    if (max_labels > MAX_TIME_LABELS)
        max_labels = MAX_TIME_LABELS;
    int64_t step = pick_time_step(to - from, max_labels);
    int64_t t0 = from % step == 0 ? from : from - ((from % step) + step) % step + step;
    struct tm prev, cur;
    bool have_prev = false;
    for (int64_t t = t0; t <= to; t += step) {
        double x = crisp(x_of(&plot, from, to, (double)t), ratio);
        cairo_set_source_rgb(cr, RGB(COLOR_GRID));
        cairo_move_to(cr, x, plot.y);
        cairo_line_to(cr, x, plot.y + plot.h);
        cairo_stroke(cr);
        cairo_set_source_rgb(cr, RGB(COLOR_FRAME));
        cairo_move_to(cr, x, plot.y + plot.h);
        cairo_line_to(cr, x, plot.y + plot.h + tick_len);
        cairo_stroke(cr);
        format_time(t, step, have_prev ? &prev : NULL, label, line2, sizeof(label), &cur);
        prev = cur;
        have_prev = true;
        double base = plot.y + plot.h + tick_len + 6 * s + tick_font;
        cairo_set_source_rgb(cr, RGB(COLOR_TEXT));
        text_at(cr, label, x, base, 0.5);
        if (line2[0] != '\0') {
            cairo_set_source_rgb(cr, RGB(COLOR_MUTED));
            text_at(cr, line2, x, base + tick_font * 1.25, 0.5);
        }
    }
    cairo_set_source_rgb(cr, RGB(COLOR_MUTED));
    text_at(cr, "Time (UTC)", plot.x + plot.w / 2, h - 12 * s, 0.5);

    /* Data, clipped to the plot. */
    cairo_save(cr);
    cairo_rectangle(cr, plot.x, plot.y, plot.w, plot.h);
    cairo_clip(cr);
    if (used > 0) {
        draw_series(cr, &plot, cols, ncols, from, to, axis_lo, axis_hi, s);
        draw_anomalies(cr, &plot, spec, from, to, axis_lo, axis_hi, s);
    } else {
        set_font(cr, 20 * s, false, false);
        cairo_set_source_rgb(cr, RGB(COLOR_MUTED));
        text_at(cr, "No data for this range", plot.x + plot.w / 2, plot.y + plot.h / 2, 0.5);
    }
    cairo_restore(cr);
    free(cols);

    /* Frame. */
    cairo_set_source_rgb(cr, RGB(COLOR_FRAME));
    cairo_set_line_width(cr, 1);
    cairo_rectangle(cr, crisp(plot.x, ratio), crisp(plot.y, ratio), floor(plot.w), floor(plot.h));
    cairo_stroke(cr);

    /* Title centred over the plot; the legend on its right when both fit. */
    char title[TITLE_MAX];
    bool wide = bp_utf8_sanitize(spec->title != NULL ? spec->title : "", title, sizeof(title), false);
    set_font(cr, title_font, true, wide);
    double title_w = text_width(cr, title);
    double baseline = 24 * s + title_font * 0.8;
    cairo_set_source_rgb(cr, RGB(COLOR_TEXT));
    text_at(cr, title, plot.x + plot.w / 2, baseline, 0.5);
    if (used > 0 && title_w / 2 + 220 * s < plot.w / 2)
        draw_legend(cr, plot.x + plot.w, baseline, s);
    return 0;
}

int bp_chart_draw(const bp_chart_spec_t *spec, cairo_surface_t **out, bp_err_t *err)
{
    *out = NULL;
    int w = spec->width > 0 ? spec->width : BP_CHART_DEFAULT_WIDTH;
    int h = spec->height > 0 ? spec->height : BP_CHART_DEFAULT_HEIGHT;
    if (w < BP_CHART_MIN_WIDTH || w > BP_CHART_MAX_WIDTH)
        return bp_err_set(err, BP_EINVAL, "width must be %d..%d, got %d", BP_CHART_MIN_WIDTH,
                          BP_CHART_MAX_WIDTH, w);
    if (h < BP_CHART_MIN_HEIGHT || h > BP_CHART_MAX_HEIGHT)
        return bp_err_set(err, BP_EINVAL, "height must be %d..%d, got %d", BP_CHART_MIN_HEIGHT,
                          BP_CHART_MAX_HEIGHT, h);

    int ratio = spec->pixel_ratio > 0 ? spec->pixel_ratio : 1;
    if (ratio > BP_CHART_MAX_PIXEL_RATIO || w * ratio > BP_CHART_MAX_WIDTH || h * ratio > BP_CHART_MAX_HEIGHT)
        return bp_err_set(err, BP_EINVAL, "chart of %dx%d at pixel ratio %d is over %dx%d pixels", w, h,
                          ratio, BP_CHART_MAX_WIDTH, BP_CHART_MAX_HEIGHT);

    int64_t from = spec->from, to = spec->to;
    if (from >= to) {
        if (spec->num_points > 0) {
            from = spec->points[0].t;
            to = spec->points[spec->num_points - 1].t;
        } else {
            to = (int64_t)time(NULL);
            from = to - 3600;
        }
        if (from >= to) { /* one point: an hour around it */
            from -= 1800;
            to += 1800;
        }
    }

    cairo_surface_t *surface = cairo_image_surface_create(CAIRO_FORMAT_RGB24, w * ratio, h * ratio);
    if (cairo_surface_status(surface) != CAIRO_STATUS_SUCCESS) {
        cairo_surface_destroy(surface);
        return bp_err_set(err, BP_ENOMEM, "chart: cannot create a %dx%d surface", w * ratio, h * ratio);
    }
    cairo_t *cr = cairo_create(surface);
    int rc = draw(cr, spec, w, h, ratio, from, to, err);
    cairo_status_t st = cairo_status(cr);
    cairo_destroy(cr);
    if (rc == 0 && st != CAIRO_STATUS_SUCCESS)
        rc = bp_err_set(err, st == CAIRO_STATUS_NO_MEMORY ? BP_ENOMEM : BP_EINTERNAL, "chart: cairo: %s",
                        cairo_status_to_string(st));
    if (rc != 0) {
        cairo_surface_destroy(surface);
        return rc;
    }
    cairo_surface_flush(surface);
    *out = surface;
    return 0;
}

/* cairo's PNG writer hands us chunks; the buffer's ceiling bounds the total. */
typedef struct st_png_sink_t {
    bp_buf_t *out;
    int rc;
} png_sink_t;

static cairo_status_t png_write(void *closure, const unsigned char *data, unsigned int length)
{
    png_sink_t *sink = closure;
    int rc = bp_buf_append(sink->out, data, length);
    if (rc != 0) {
        sink->rc = rc;
        return CAIRO_STATUS_WRITE_ERROR;
    }
    return CAIRO_STATUS_SUCCESS;
}

int bp_chart_png(const bp_chart_spec_t *spec, bp_buf_t *out, bp_err_t *err)
{
    cairo_surface_t *surface = NULL;
    int rc = bp_chart_draw(spec, &surface, err);
    if (rc != 0)
        return rc;
    png_sink_t sink = {out, 0};
    cairo_status_t st = cairo_surface_write_to_png_stream(surface, png_write, &sink);
    cairo_surface_destroy(surface);
    if (sink.rc == BP_ETOOBIG)
        return bp_err_set(err, BP_ETOOBIG, "chart: PNG larger than %zu bytes", out->max);
    if (sink.rc != 0)
        return bp_err_set(err, sink.rc, "chart: out of memory writing the PNG");
    if (st != CAIRO_STATUS_SUCCESS)
        return bp_err_set(err, BP_EINTERNAL, "chart: PNG encoding: %s", cairo_status_to_string(st));
    return 0;
}

void bp_chart_release_caches(void)
{
    cairo_debug_reset_static_data();
    FcFini();
}
