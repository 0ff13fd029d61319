/*
 * chart: the metric chart as a picture (cairo), with no database and no HTTP: points in,
 * pixels, PNG or SVG bytes out. Kept from the original matplotlib picture (issue 3): the metric
 * as a cornflowerblue line, anomalies as red filled circles, the title. Added (issue 6): the
 * expected value (dashed) inside its shaded band, incident spans shaded and labelled, learning
 * periods (a series without enough history for a verdict) marked, a legend of what is shown,
 * time labels in the viewer's time zone on nice ticks from seconds to years (timeaxis.h), nice
 * value ticks with light grid lines, a light and a dark theme, text in any mix of scripts
 * (text.h), and a "No data for this range" notice instead of a blank image.
 *
 * Long ranges: at most two vertices per device pixel column are drawn (the minimum and the
 * maximum of the points falling in it, in time order), so a week of minutes (10 080 points)
 * costs about as much as a day and a one-minute spike still reaches its full height. The band
 * keeps per column the lowest lower and the highest upper bound, so it never looks narrower
 * than it was.
 *
 * Sizes are bounded (BP_CHART_MIN_* .. BP_CHART_MAX_*). Fonts and line widths keep their size
 * from 800x400 layout units up and shrink (to a legible floor) below; pixel_ratio scales the
 * whole picture for print and high-density screens.
 *
 * Thread-safe: no shared state beyond text.h's read-only fonts; each call makes and destroys
 * its own cairo surface.
 */
#ifndef BP_RENDER_CHART_H
#define BP_RENDER_CHART_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cairo.h>

#include "buf.h"
#include "err.h"
#include "tz.h"

#define BP_CHART_DEFAULT_WIDTH 1200
#define BP_CHART_DEFAULT_HEIGHT 600
#define BP_CHART_MIN_WIDTH 300
#define BP_CHART_MIN_HEIGHT 200
#define BP_CHART_MAX_WIDTH 4000
#define BP_CHART_MAX_HEIGHT 3000
#define BP_CHART_MAX_PIXEL_RATIO 3
/* Longest title kept, bytes of UTF-8 (cut on a character boundary). */
#define BP_CHART_TITLE_MAX 200

/* One interval of a series. Zero-initialised means: no value band, not anomalous, scored. */
typedef struct st_bp_chart_point_t {
    int64_t t;       /* interval start, epoch seconds (UTC) */
    double value;    /* NaN: no value (a ratio with no denominator): the line breaks there */
    double expected; /* valid when has_expected */
    double lower;    /* the band, valid when has_band */
    double upper;
    bool has_expected;
    bool has_band;
    bool anomaly;
    bool learning; /* the detector had too little history for a verdict */
} bp_chart_point_t;

/* An incident shown as a shaded span. */
typedef struct st_bp_chart_span_t {
    int64_t from;
    int64_t to;        /* end of the span; for an open incident the caller passes "now" */
    const char *label; /* UTF-8, e.g. "#12 open"; NULL means none */
} bp_chart_span_t;

typedef enum {
    BP_CHART_LIGHT = 0,
    BP_CHART_DARK,
} bp_chart_theme_t;

/* What to draw. The caller owns everything pointed to; nothing is kept after the call. */
typedef struct st_bp_chart_spec_t {
    const bp_chart_point_t *points; /* sorted by t ascending; may be NULL when num_points is 0 */
    size_t num_points;
    const bp_chart_span_t *spans; /* may be NULL when num_spans is 0 */
    size_t num_spans;
    /* Time range of the x axis. When from >= to, the range of the points is used (and one hour
     * around "now" when there are no points either). Points outside the range are not drawn. */
    int64_t from;
    int64_t to;
    int width;  /* layout units; 0 means BP_CHART_DEFAULT_WIDTH */
    int height; /* layout units; 0 means BP_CHART_DEFAULT_HEIGHT */
    /* Device pixels per layout unit, 1..BP_CHART_MAX_PIXEL_RATIO (0 means 1). A 900x450 chart
     * at ratio 2 is 1800x900 pixels with the text and lines of a 900x450 one: what a report
     * printed at ~260 dpi or a high-density screen needs. */
    int pixel_ratio;
    const char *title; /* UTF-8, e.g. "Metric Analysis: user_registration"; NULL means none */
    const bp_tz_t *tz; /* time labels' zone; NULL means UTC */
    bp_chart_theme_t theme;
} bp_chart_spec_t;

/* Draws spec into a new CAIRO_FORMAT_RGB24 image surface of width x height x pixel_ratio^2
 * pixels (the limits apply to both the layout and the pixel size). On success returns 0 and *out (the
 * caller cairo_surface_destroy()s it; it is flushed, so its pixels can be read directly). On
 * failure returns BP_EINVAL (size out of bounds) or BP_ENOMEM/BP_EINTERNAL (cairo failed) with
 * err, and *out is NULL. */
int bp_chart_draw(const bp_chart_spec_t *spec, cairo_surface_t **out, bp_err_t *err);

/* Draws spec and appends the PNG encoding (pngenc.h: a deflate made for charts) to out, whose ceiling
 * bounds the size (BP_ETOOBIG when hit; out then holds a truncated PNG the caller must
 * discard). Returns 0 or a BP_E* code with err. */
int bp_chart_png(const bp_chart_spec_t *spec, bp_buf_t *out, bp_err_t *err);

/* Same picture as SVG (cairo's SVG surface; text as glyph outlines, so no font is needed to
 * view it). pixel_ratio is ignored. Same returns as bp_chart_png. */
int bp_chart_svg(const bp_chart_spec_t *spec, bp_buf_t *out, bp_err_t *err);

/* Frees the font caches cairo and fontconfig keep for the life of the process, so a clean
 * exit shows no leaks under LeakSanitizer. Call once at exit, when no chart is being drawn. */
void bp_chart_release_caches(void);

#endif
