/*
 * report: the PDF incident report (libharu), with no database and no files: an incident's
 * facts and its chart in, PDF bytes out. A4, one page unless the root cause is long (then
 * the tables flow onto a second): the title ("Incident #N: <metric>") and the state, the
 * plain-language summary sentence, the chart (band, anomalies, incident span) drawn by
 * bp_chart_draw at print resolution and embedded as raw RGB pixels (DESIGN §8: ~2.5x faster
 * than embedding a PNG, same size), the root-cause table ("What drove it": series, expected,
 * actual, share of the gap), the timeline (first anomaly, opened, peak, acknowledged,
 * resolved), the detection facts (metric, series, peak vs expected, method and parameters,
 * link to the live chart), and a footer with the generation time on every page.
 *
 * Text is UTF-8. When a TrueType CJK font is available (DESIGN §8: only an embedded TrueType
 * font both extracts with pdftotext and shows on machines without CJK fonts) it is embedded and
 * every character comes out; otherwise Helvetica is used and non-ASCII characters print as '?'.
 *
 * Thread-safe: no shared state; each call makes and frees its own HPDF_Doc.
 */
#ifndef BP_RENDER_REPORT_H
#define BP_RENDER_REPORT_H

#include <stdint.h>

#include "buf.h"
#include "chart.h"
#include "err.h"

/* WenQuanYi Zen Hei, Debian's fonts-wqy-zenhei (the .ttc's first face). */
#define BP_REPORT_CJK_FONT "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc"

/* The chart in the report: laid out as 900x450 (so its text prints at ~7 pt over the 495 pt
 * text width) and drawn at pixel ratio 2, 1800x900 pixels: ~260 dpi. */
#define BP_REPORT_CHART_WIDTH 900
#define BP_REPORT_CHART_HEIGHT 450
#define BP_REPORT_CHART_PIXEL_RATIO 2

/* One row of the root-cause table (incident context "root_cause"). */
typedef struct st_bp_report_cause_t {
    const char *series; /* "country=DE,platform=android" */
    double expected;
    double actual;
    double share; /* of the gap, 0..1; NAN when unknown */
} bp_report_cause_t;

#define BP_REPORT_MAX_CAUSES 10

/* Everything the report shows. Strings are UTF-8 and owned by the caller; nothing is kept. */
typedef struct st_bp_report_t {
    long long incident_id;
    const char *metric;
    const char *series; /* dimension combination, "" or NULL for the metric's total */
    const char *state;  /* the incident state this report is for: "opened", "resolved" */
    const char *summary;
    const char *method;        /* detection method, e.g. "sigma3" */
    const char *method_params; /* "window=180, min_history=90", or NULL */
    int64_t started_at;        /* epoch seconds */
    int64_t peak_at;           /* epoch seconds */
    double peak_value;
    double peak_expected;            /* NAN when unknown */
    int64_t opened_at;               /* 0 when unknown */
    int64_t acknowledged_at;         /* 0 when not acknowledged */
    int64_t resolved_at;             /* 0 while open */
    const bp_report_cause_t *causes; /* ranked; at most BP_REPORT_MAX_CAUSES are shown */
    size_t num_causes;
    int64_t generated_at;  /* epoch seconds, shown in the footer */
    const char *chart_url; /* the live chart's URL, or NULL to leave the line out */
    /* The chart; width/height/pixel_ratio 0 mean the BP_REPORT_CHART_* values. */
    bp_chart_spec_t chart;
    /* A TrueType font file (.ttf/.ttc, face 0) for Unicode text. NULL means BP_REPORT_CJK_FONT
     * when that file exists; "" means none (Helvetica). */
    const char *font_path;
} bp_report_t;

/* Builds the PDF and appends it to out, whose ceiling bounds its size (BP_ETOOBIG). Returns 0,
 * or BP_EINVAL (bad chart size), BP_ENOMEM, BP_ETOOBIG, BP_EINTERNAL (libharu or cairo failed;
 * err says which call and libharu's error number). On failure out may hold a partial PDF that
 * the caller must discard. Does NOT write any file. */
int bp_report_pdf(const bp_report_t *r, bp_buf_t *out, bp_err_t *err);

#endif
