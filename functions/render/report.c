#include "report.h"
#include "utf8.h"

#include <hpdf.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MAX_PAGES 8

/* One document being built. libharu reports errors through a callback; ours records the first
 * one here and returns, so the failing call returns its status to us (no longjmp) and cleanup
 * stays on one path. */
typedef struct st_pdf_t {
    HPDF_Doc doc;
    HPDF_Page page;
    HPDF_Font font; /* body text */
    HPDF_Font bold; /* headings: Helvetica-Bold, or the Unicode font again (it has one weight) */
    HPDF_Page pages[MAX_PAGES];
    int num_pages;
    bool unicode; /* font has every character (else text is reduced to ASCII) */
    HPDF_STATUS error_no;
    HPDF_STATUS detail_no;
    bp_err_t *err;
} pdf_t;

/* Page geometry, points (A4 portrait is 595 x 842). */
#define MARGIN 50.0
#define TEXT_MAX 2048

/* Colours as 0xRRGGBB. */
#define C_TITLE 0x1a1a1a
#define C_TEXT 0x222222
#define C_LABEL 0x666666
#define C_RULE 0xdddddd
#define C_OPENED 0xc0392b
#define C_RESOLVED 0x1e8449
#define C_BAR 0xf1a9a0
#define C_LINK 0x1f5fbf

static void on_error(HPDF_STATUS error_no, HPDF_STATUS detail_no, void *user_data)
{
    pdf_t *p = user_data;
    /* Reading the finished document back reports end of stream through the same path. */
    if (error_no == HPDF_STREAM_EOF)
        return;
    if (p->error_no == 0) {
        p->error_no = error_no;
        p->detail_no = detail_no;
    }
}

/* Records the failure of `what` (with libharu's error number, when it gave one) into err. */
static int fail(pdf_t *p, const char *what)
{
    int code = p->error_no == HPDF_FAILD_TO_ALLOC_MEM ? BP_ENOMEM : BP_EINTERNAL;
    return bp_err_set(p->err, code, "pdf: %s failed (libharu error 0x%04X, detail %u)", what,
                      (unsigned)p->error_no, (unsigned)p->detail_no);
}

static HPDF_STATUS set_fill(HPDF_Page page, unsigned rgb)
{
    return HPDF_Page_SetRGBFill(page, (rgb >> 16 & 0xff) / 255.0f, (rgb >> 8 & 0xff) / 255.0f,
                                (rgb & 0xff) / 255.0f);
}

static HPDF_STATUS set_stroke(HPDF_Page page, unsigned rgb)
{
    return HPDF_Page_SetRGBStroke(page, (rgb >> 16 & 0xff) / 255.0f, (rgb >> 8 & 0xff) / 255.0f,
                                  (rgb & 0xff) / 255.0f);
}

static void format_time(int64_t t, char *out, size_t n)
{
    time_t tt = (time_t)t;
    struct tm tm;
    gmtime_r(&tt, &tm);
    snprintf(out, n, "%04d-%02d-%02d %02d:%02d UTC", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
             tm.tm_min);
}

/* Counts print whole, rates and averages with four significant digits. */
static void format_number(double v, char *out, size_t n)
{
    if (!isfinite(v))
        snprintf(out, n, "n/a");
    else if (v == floor(v) && fabs(v) < 1e15)
        snprintf(out, n, "%.0f", v);
    else if (fabs(v) >= 1000)
        snprintf(out, n, "%.1f", v);
    else
        snprintf(out, n, "%.4g", v);
}

/* Width of text (already sanitized) in points. */
static double text_width(HPDF_Font font, double size, const char *text)
{
    HPDF_TextWidth tw = HPDF_Font_TextWidth(font, (const HPDF_BYTE *)text, (HPDF_UINT)strlen(text));
    return tw.width * size / 1000.0;
}

/* Writes one line of sanitized text with its baseline at y; align 0 left at x, 1 right at x. */
static int line_out(pdf_t *p, HPDF_Font font, double size, unsigned rgb, double x, double y, double align,
                    const char *text)
{
    if (align != 0)
        x -= align * text_width(font, size, text);
    if (set_fill(p->page, rgb) != HPDF_OK || HPDF_Page_BeginText(p->page) != HPDF_OK)
        return fail(p, "begin text");
    if (HPDF_Page_SetFontAndSize(p->page, font, (HPDF_REAL)size) != HPDF_OK ||
        HPDF_Page_TextOut(p->page, (HPDF_REAL)x, (HPDF_REAL)y, text) != HPDF_OK) {
        HPDF_Page_EndText(p->page);
        return fail(p, "text out");
    }
    if (HPDF_Page_EndText(p->page) != HPDF_OK)
        return fail(p, "end text");
    return 0;
}

/* WenQuanYi Zen Hei has no U+2212 MINUS SIGN, which summary sentences use ("-35%"): it would
 * print as an empty box. Folds it to '-' in place. */
static void fold_missing_glyphs(char *s)
{
    char *o = s;
    for (const char *p = s; *p != '\0';) {
        if (strncmp(p, "\xe2\x88\x92", 3) == 0) {
            *o++ = '-';
            p += 3;
        } else {
            *o++ = *p++;
        }
    }
    *o = '\0';
}

/* Writes text wrapped to width, first baseline at *y, at most max_lines lines (the last one
 * cut); *y ends one leading below the last line. Breaks at spaces, or anywhere in a run with
 * none (CJK sentences have no spaces). */
static int paragraph(pdf_t *p, HPDF_Font font, double size, double leading, unsigned rgb, double x, double *y,
                     double width, int max_lines, const char *text)
{
    char clean[TEXT_MAX], line[TEXT_MAX];
    bp_utf8_sanitize(text != NULL ? text : "", clean, sizeof(clean), !p->unicode);
    if (p->unicode)
        fold_missing_glyphs(clean);
    const char *s = clean;
    size_t left = strlen(clean);
    for (int lines = 0; left > 0 && lines < max_lines; lines++) {
        HPDF_REAL real_width = 0;
        HPDF_UINT n = HPDF_Font_MeasureText(font, (const HPDF_BYTE *)s, (HPDF_UINT)left, (HPDF_REAL)width,
                                            (HPDF_REAL)size, 0, 0, HPDF_TRUE, &real_width);
        if (n == 0)
            n = HPDF_Font_MeasureText(font, (const HPDF_BYTE *)s, (HPDF_UINT)left, (HPDF_REAL)width,
                                      (HPDF_REAL)size, 0, 0, HPDF_FALSE, &real_width);
        if (n == 0)
            n = 1; /* a character wider than the column: print it anyway, never loop */
        while (n < left && ((unsigned char)s[n] & 0xc0) == 0x80)
            n++; /* never cut inside a UTF-8 sequence */
        size_t len = n;
        while (len > 0 && s[len - 1] == ' ')
            len--;
        memcpy(line, s, len);
        line[len] = '\0';
        int rc = line_out(p, font, size, rgb, x, *y, 0, line);
        if (rc != 0)
            return rc;
        *y -= leading;
        s += n;
        left -= n;
        while (left > 0 && *s == ' ') {
            s++;
            left--;
        }
    }
    return 0;
}

static int rule(pdf_t *p, double x1, double y, double x2)
{
    if (set_stroke(p->page, C_RULE) != HPDF_OK || HPDF_Page_SetLineWidth(p->page, 0.6f) != HPDF_OK ||
        HPDF_Page_MoveTo(p->page, (HPDF_REAL)x1, (HPDF_REAL)y) != HPDF_OK ||
        HPDF_Page_LineTo(p->page, (HPDF_REAL)x2, (HPDF_REAL)y) != HPDF_OK ||
        HPDF_Page_Stroke(p->page) != HPDF_OK)
        return fail(p, "rule");
    return 0;
}

/* A label/value row of a two-column table. */
typedef struct st_row_t {
    const char *label;
    const char *value; /* NULL: the row is left out */
} row_t;

static int add_page(pdf_t *p)
{
    if (p->num_pages == MAX_PAGES)
        return bp_err_set(p->err, BP_EINTERNAL, "pdf: more than %d pages", MAX_PAGES);
    p->page = HPDF_AddPage(p->doc);
    if (p->page == NULL || HPDF_Page_SetSize(p->page, HPDF_PAGE_SIZE_A4, HPDF_PAGE_PORTRAIT) != HPDF_OK)
        return fail(p, "add page");
    p->pages[p->num_pages++] = p->page;
    return 0;
}

/* Starts a new page when less than need points are left above the footer; *y then moves to
 * the new page's top. */
static int need_space(pdf_t *p, double *y, double need)
{
    if (*y - need >= MARGIN - 4)
        return 0;
    int rc = add_page(p);
    *y = HPDF_Page_GetHeight(p->page) - MARGIN - 14;
    return rc;
}

static int heading(pdf_t *p, double x, double *y, const char *text)
{
    int rc = need_space(p, y, 50);
    if (rc == 0)
        rc = line_out(p, p->bold, 12, C_TITLE, x, *y, 0, text);
    *y -= 19;
    return rc;
}

/* Label column, value column (wrapped to two lines), a rule under each row. */
static int table(pdf_t *p, const row_t *rows, size_t n, double x, double *y, double width)
{
    double label_w = 100, size = 10, leading = 13;
    int rc = rule(p, x, *y + leading - 2, x + width);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        if (rows[i].value == NULL)
            continue;
        rc = need_space(p, y, 2 * leading + 5);
        if (rc != 0)
            break;
        double top = *y;
        rc = line_out(p, p->bold, size, C_LABEL, x + 4, top - 3, 0, rows[i].label);
        double vy = top - 3;
        if (rc == 0)
            rc = paragraph(p, p->font, size, leading, C_TEXT, x + label_w, &vy, width - label_w, 2,
                           rows[i].value);
        *y = vy - 5;
        if (rc == 0)
            rc = rule(p, x, *y + leading - 2, x + width);
    }
    return rc;
}

static void format_peak(const bp_report_t *r, char *peak, size_t n)
{
    char num[48], expected[48], peak_at[48];
    format_number(r->peak_value, num, sizeof(num));
    format_time(r->peak_at, peak_at, sizeof(peak_at));
    if (isfinite(r->peak_expected)) {
        format_number(r->peak_expected, expected, sizeof(expected));
        if (r->peak_expected != 0)
            snprintf(peak, n, "%s at %s (expected %s, %+.1f%%)", num, peak_at, expected,
                     (r->peak_value - r->peak_expected) / fabs(r->peak_expected) * 100);
        else
            snprintf(peak, n, "%s at %s (expected %s)", num, peak_at, expected);
    } else {
        snprintf(peak, n, "%s at %s", num, peak_at);
    }
}

/* "Live chart: <url>" under the chart, clickable. */
static int live_link(pdf_t *p, const char *url, double x, double *y, double width)
{
    double size = 8.5, label_w = text_width(p->bold, size, "Live chart: ") + 2;
    int rc = line_out(p, p->bold, size, C_LABEL, x, *y, 0, "Live chart: ");
    double top = *y;
    if (rc == 0)
        rc = paragraph(p, p->font, size, 11, C_LINK, x + label_w, y, width - label_w, 2, url);
    HPDF_Rect rect = {(HPDF_REAL)x, (HPDF_REAL)(*y + 8), (HPDF_REAL)(x + width), (HPDF_REAL)(top + size)};
    HPDF_Annotation annot = rc == 0 ? HPDF_Page_CreateURILinkAnnot(p->page, rect, url) : NULL;
    if (rc == 0 && (annot == NULL || HPDF_LinkAnnot_SetBorderStyle(annot, 0, 0, 0) != HPDF_OK))
        rc = fail(p, "link");
    return rc;
}

/* What was detected and how. */
static int facts(pdf_t *p, const bp_report_t *r, double x, double *y, double width)
{
    char peak[512], method[TEXT_MAX];
    format_peak(r, peak, sizeof(peak));
    if (r->method_params != NULL && r->method_params[0] != '\0')
        snprintf(method, sizeof(method), "%s (%s)", r->method != NULL ? r->method : "n/a", r->method_params);
    else
        snprintf(method, sizeof(method), "%s", r->method != NULL ? r->method : "n/a");
    row_t rows[] = {
        {"Metric", r->metric},
        {"Series", r->series != NULL && r->series[0] != '\0' ? r->series : "total"},
        {"Peak", peak},
        {"Method", method},
    };
    return table(p, rows, sizeof(rows) / sizeof(rows[0]), x, y, width);
}

/* Opened, peak, acknowledged, resolved: one row each, "-" for what has not happened. */
static int timeline(pdf_t *p, const bp_report_t *r, double x, double *y, double width)
{
    char started[48], opened[48], peak[48], ack[48], resolved[48];
    format_time(r->started_at, started, sizeof(started));
    if (r->opened_at > 0)
        format_time(r->opened_at, opened, sizeof(opened));
    format_time(r->peak_at, peak, sizeof(peak));
    snprintf(ack, sizeof(ack), "-");
    if (r->acknowledged_at > 0)
        format_time(r->acknowledged_at, ack, sizeof(ack));
    snprintf(resolved, sizeof(resolved), "- (open)");
    if (r->resolved_at > 0)
        format_time(r->resolved_at, resolved, sizeof(resolved));
    row_t rows[] = {
        {"First anomaly", started},
        {"Opened", r->opened_at > 0 ? opened : NULL},
        {"Peak", peak},
        {"Acknowledged", ack},
        {"Resolved", resolved},
    };
    return table(p, rows, sizeof(rows) / sizeof(rows[0]), x, y, width);
}

/* The root-cause table: which dimension series explain the gap, with their numbers. */
static int root_cause(pdf_t *p, const bp_report_t *r, double x, double *y, double width)
{
    double size = 10, leading = 14;
    double col[4] = {x + 4, x + width * 0.62, x + width * 0.80, x + width - 4}; /* right edges after 0 */
    const char *head[4] = {"Series", "Expected", "Actual", "Share of gap"};
    int rc = need_space(p, y, leading * 3);
    for (int k = 0; rc == 0 && k < 4; k++)
        rc = line_out(p, p->bold, size, C_LABEL, col[k], *y, k == 0 ? 0 : 1, head[k]);
    *y -= 4;
    if (rc == 0)
        rc = rule(p, x, *y, x + width);
    *y -= leading;
    for (size_t i = 0; rc == 0 && i < r->num_causes; i++) {
        const bp_report_cause_t *c = &r->causes[i];
        char exp_s[48], act_s[48], share_s[32], series[TEXT_MAX];
        format_number(c->expected, exp_s, sizeof(exp_s));
        format_number(c->actual, act_s, sizeof(act_s));
        if (isfinite(c->share))
            snprintf(share_s, sizeof(share_s), "%.0f%%", c->share * 100);
        else
            snprintf(share_s, sizeof(share_s), "n/a");
        bp_utf8_sanitize(c->series != NULL ? c->series : "", series, sizeof(series), !p->unicode);
        rc = need_space(p, y, leading + 4);
        if (rc == 0) {
            /* the series name is cut to its column rather than wrapped */
            HPDF_REAL real_w = 0;
            HPDF_UINT fit = HPDF_Font_MeasureText(
                p->font, (const HPDF_BYTE *)series, (HPDF_UINT)strlen(series),
                (HPDF_REAL)(col[1] - col[0] - 80), (HPDF_REAL)size, 0, 0, HPDF_FALSE, &real_w);
            while (fit > 0 && fit < strlen(series) && ((unsigned char)series[fit] & 0xc0) == 0x80)
                fit--;
            if (fit < strlen(series))
                series[fit] = '\0';
            rc = line_out(p, p->font, size, C_TEXT, col[0], *y, 0, series);
        }
        if (rc == 0)
            rc = line_out(p, p->font, size, C_TEXT, col[1], *y, 1, exp_s);
        if (rc == 0)
            rc = line_out(p, p->font, size, C_TEXT, col[2], *y, 1, act_s);
        if (rc == 0)
            rc = line_out(p, p->bold, size, C_OPENED, col[3], *y, 1, share_s);
        /* a bar under the share column: its length is the share */
        if (rc == 0 && isfinite(c->share) && c->share > 0) {
            double bw = fmin(c->share, 1) * (col[3] - col[2] - 50);
            if (set_fill(p->page, C_BAR) != HPDF_OK ||
                HPDF_Page_Rectangle(p->page, (HPDF_REAL)(col[2] + 14), (HPDF_REAL)(*y - 1), (HPDF_REAL)bw,
                                    8) != HPDF_OK ||
                HPDF_Page_Fill(p->page) != HPDF_OK)
                rc = fail(p, "share bar");
        }
        *y -= 4;
        if (rc == 0)
            rc = rule(p, x, *y, x + width);
        *y -= leading;
    }
    return rc;
}

/* Draws the chart at print resolution and places it at (x, top) scaled to width; *height gets
 * its height on the page. The pixels go in raw (packed RGB): libharu compresses them itself,
 * and skipping the PNG round trip is the cheaper path (DESIGN §8). */
static int chart_image(pdf_t *p, const bp_report_t *r, double x, double top, double width, double *height)
{
    bp_chart_spec_t spec = r->chart;
    if (spec.width == 0)
        spec.width = BP_REPORT_CHART_WIDTH;
    if (spec.height == 0)
        spec.height = BP_REPORT_CHART_HEIGHT;
    if (spec.pixel_ratio == 0)
        spec.pixel_ratio = BP_REPORT_CHART_PIXEL_RATIO;
    cairo_surface_t *surface = NULL;
    int rc = bp_chart_draw(&spec, &surface, p->err);
    if (rc != 0)
        return rc;
    int w = cairo_image_surface_get_width(surface), h = cairo_image_surface_get_height(surface);
    int stride = cairo_image_surface_get_stride(surface);
    const unsigned char *data = cairo_image_surface_get_data(surface);
    unsigned char *rgb = malloc((size_t)w * (size_t)h * 3);
    if (rgb == NULL) {
        cairo_surface_destroy(surface);
        return bp_err_set(p->err, BP_ENOMEM, "pdf: out of memory converting the chart");
    }
    /* cairo's RGB24 is one native-endian uint32 per pixel, 0x00RRGGBB. */
    unsigned char *o = rgb;
    for (int yy = 0; yy < h; yy++) {
        const uint32_t *row = (const uint32_t *)(const void *)(data + (size_t)yy * (size_t)stride);
        for (int xx = 0; xx < w; xx++) {
            uint32_t px = row[xx];
            *o++ = (unsigned char)(px >> 16);
            *o++ = (unsigned char)(px >> 8);
            *o++ = (unsigned char)px;
        }
    }
    cairo_surface_destroy(surface);
    /* libharu copies the pixels into the image stream, so the buffer can go right away. */
    HPDF_Image image =
        HPDF_LoadRawImageFromMem(p->doc, rgb, (HPDF_UINT)w, (HPDF_UINT)h, HPDF_CS_DEVICE_RGB, 8);
    free(rgb);
    if (image == NULL)
        return fail(p, "load chart image");
    *height = width * h / w;
    if (HPDF_Page_DrawImage(p->page, image, (HPDF_REAL)x, (HPDF_REAL)(top - *height), (HPDF_REAL)width,
                            (HPDF_REAL)*height) != HPDF_OK)
        return fail(p, "draw chart image");
    if (set_stroke(p->page, C_RULE) != HPDF_OK || HPDF_Page_SetLineWidth(p->page, 0.6f) != HPDF_OK ||
        HPDF_Page_Rectangle(p->page, (HPDF_REAL)x, (HPDF_REAL)(top - *height), (HPDF_REAL)width,
                            (HPDF_REAL)*height) != HPDF_OK ||
        HPDF_Page_Stroke(p->page) != HPDF_OK)
        return fail(p, "chart border");
    return 0;
}

/* Picks the fonts: the Unicode TrueType font when there is one, else Helvetica. */
static int load_fonts(pdf_t *p, const char *font_path)
{
    const char *path = font_path;
    if (path == NULL)
        path = access(BP_REPORT_CJK_FONT, R_OK) == 0 ? BP_REPORT_CJK_FONT : "";
    if (path[0] == '\0') {
        p->font = HPDF_GetFont(p->doc, "Helvetica", NULL);
        p->bold = HPDF_GetFont(p->doc, "Helvetica-Bold", NULL);
        if (p->font == NULL || p->bold == NULL)
            return fail(p, "Helvetica");
        p->unicode = false;
        return 0;
    }
    if (HPDF_UseUTFEncodings(p->doc) != HPDF_OK)
        return fail(p, "UTF-8 encodings");
    /* Embedding is what makes the text show on machines without the font (DESIGN §8). */
    const char *name = HPDF_LoadTTFontFromFile2(p->doc, path, 0, HPDF_TRUE);
    if (name == NULL)
        return bp_err_set(p->err, p->error_no == HPDF_FAILD_TO_ALLOC_MEM ? BP_ENOMEM : BP_EINTERNAL,
                          "pdf: cannot load TrueType font %s (libharu error 0x%04X)", path,
                          (unsigned)p->error_no);
    if (HPDF_SetCurrentEncoder(p->doc, "UTF-8") != HPDF_OK)
        return fail(p, "UTF-8 encoder");
    p->font = HPDF_GetFont(p->doc, name, "UTF-8");
    if (p->font == NULL)
        return fail(p, "UTF-8 font");
    p->bold = p->font;
    p->unicode = true;
    return 0;
}

/* The generation time and the incident on every page, with page numbers when there are more. */
static int footers(pdf_t *p, const bp_report_t *r, double x, double width)
{
    char gen_s[48], left[96], right[128];
    format_time(r->generated_at, gen_s, sizeof(gen_s));
    snprintf(left, sizeof(left), "Generated by bizpulse at %s", gen_s);
    int rc = 0;
    for (int i = 0; rc == 0 && i < p->num_pages; i++) {
        p->page = p->pages[i];
        if (p->num_pages > 1)
            snprintf(right, sizeof(right), "incident #%lld, %s - page %d of %d", r->incident_id,
                     r->state != NULL ? r->state : "", i + 1, p->num_pages);
        else
            snprintf(right, sizeof(right), "incident #%lld, %s", r->incident_id,
                     r->state != NULL ? r->state : "");
        rc = line_out(p, p->font, 8, C_LABEL, x, MARGIN - 20, 0, left);
        if (rc == 0)
            rc = line_out(p, p->font, 8, C_LABEL, x + width, MARGIN - 20, 1, right);
        if (rc == 0)
            rc = rule(p, x, MARGIN - 8, x + width);
    }
    return rc;
}

static int build(pdf_t *p, const bp_report_t *r)
{
    /* Before the fonts: libharu picks an embedded font stream's filter when it loads the font,
     * and an uncompressed CJK font (mostly glyph names and empty metrics, its glyphs already
     * cut to those used) costs ~1.2 MB instead of ~0.25 MB. */
    if (HPDF_SetCompressionMode(p->doc, HPDF_COMP_ALL) != HPDF_OK)
        return fail(p, "compression");
    int rc = load_fonts(p, r->font_path);
    if (rc != 0)
        return rc;
    char title[TEXT_MAX], buf[TEXT_MAX];
    snprintf(title, sizeof(title), "Incident #%lld: %s", r->incident_id, r->metric != NULL ? r->metric : "");
    bp_utf8_sanitize(title, buf, sizeof(buf), true);
    time_t gen = (time_t)r->generated_at;
    struct tm tm;
    gmtime_r(&gen, &tm);
    HPDF_Date date = {tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                      tm.tm_sec,         'Z',           0,          0};
    if (HPDF_SetInfoAttr(p->doc, HPDF_INFO_TITLE, buf) != HPDF_OK ||
        HPDF_SetInfoAttr(p->doc, HPDF_INFO_CREATOR, "bizpulse-render") != HPDF_OK ||
        HPDF_SetInfoDateAttr(p->doc, HPDF_INFO_CREATION_DATE, date) != HPDF_OK)
        return fail(p, "document info");

    if ((rc = add_page(p)) != 0)
        return rc;
    double page_w = HPDF_Page_GetWidth(p->page), page_h = HPDF_Page_GetHeight(p->page);
    double x = MARGIN, width = page_w - 2 * MARGIN, y = page_h - MARGIN - 14;

    /* Title and the state this report is for. */
    rc = paragraph(p, p->bold, 20, 24, C_TITLE, x, &y, width, 2, title);
    bool resolved = r->state != NULL && strcmp(r->state, "resolved") == 0;
    snprintf(buf, sizeof(buf), "Incident %s", r->state != NULL ? r->state : "report");
    if (rc == 0)
        rc = line_out(p, p->bold, 11, resolved ? C_RESOLVED : C_OPENED, x, y + 4, 0, buf);
    y -= 18;

    /* The summary sentence: what a reader forwards. */
    if (rc == 0)
        rc = paragraph(p, p->font, 12.5, 17, C_TEXT, x, &y, width, 6, r->summary);
    y -= 8;

    /* The chart: band, anomalies and the incident's span. */
    double chart_h = 0;
    if (rc == 0)
        rc = chart_image(p, r, x, y, width, &chart_h);
    y -= chart_h + 12;
    if (rc == 0 && r->chart_url != NULL)
        rc = live_link(p, r->chart_url, x, &y, width);
    y -= 14;

    if (rc == 0 && r->num_causes > 0) {
        rc = heading(p, x, &y, "What drove it");
        if (rc == 0)
            rc = root_cause(p, r, x, &y, width);
        y -= 10;
    }
    if (rc == 0)
        rc = heading(p, x, &y, "Timeline");
    if (rc == 0)
        rc = timeline(p, r, x, &y, width);
    y -= 12;
    if (rc == 0)
        rc = heading(p, x, &y, "Detection");
    if (rc == 0)
        rc = facts(p, r, x, &y, width);
    if (rc == 0)
        rc = footers(p, r, x, width);
    return rc;
}

/* Copies the finished document out of libharu's memory stream into out. */
static int save(pdf_t *p, bp_buf_t *out)
{
    if (HPDF_SaveToStream(p->doc) != HPDF_OK)
        return fail(p, "save");
    HPDF_UINT32 size = HPDF_GetStreamSize(p->doc);
    if (size > out->max - out->len)
        return bp_err_set(p->err, BP_ETOOBIG, "pdf: %u bytes is over the %zu byte ceiling", (unsigned)size,
                          out->max);
    if (HPDF_ResetStream(p->doc) != HPDF_OK)
        return fail(p, "rewind");
    for (;;) {
        HPDF_BYTE chunk[64 * 1024];
        HPDF_UINT32 n = sizeof(chunk);
        HPDF_STATUS st = HPDF_ReadFromStream(p->doc, chunk, &n);
        if (st != HPDF_OK && st != HPDF_STREAM_EOF)
            return fail(p, "read back");
        int rc = bp_buf_append(out, chunk, n);
        if (rc != 0)
            return bp_err_set(p->err, rc, "pdf: %s",
                              rc == BP_ETOOBIG ? "over the size ceiling" : "out of memory");
        if (st == HPDF_STREAM_EOF)
            return 0;
    }
}

int bp_report_pdf(const bp_report_t *r, bp_buf_t *out, bp_err_t *err)
{
    pdf_t p = {.err = err};
    p.doc = HPDF_New(on_error, &p);
    if (p.doc == NULL)
        return bp_err_set(err, BP_ENOMEM, "pdf: cannot create a document");
    int rc = build(&p, r);
    if (rc == 0)
        rc = save(&p, out);
    HPDF_Free(p.doc);
    return rc;
}
