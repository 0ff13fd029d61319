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

/* One document being built. libharu reports errors through a callback; ours records the first
 * one here and returns, so the failing call returns its status to us (no longjmp) and cleanup
 * stays on one path. */
typedef struct st_pdf_t {
    HPDF_Doc doc;
    HPDF_Page page;
    HPDF_Font font; /* body text */
    HPDF_Font bold; /* headings: Helvetica-Bold, or the Unicode font again (it has one weight) */
    bool unicode;   /* font has every character (else text is reduced to ASCII) */
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

/* The facts table: label column, value column (wrapped to two lines), a rule under each row. */
static int facts(pdf_t *p, const bp_report_t *r, double x, double *y, double width)
{
    char started[48], peak[512], status[96], resolved[48], num[48], expected[48];
    format_time(r->started_at, started, sizeof(started));
    format_number(r->peak_value, num, sizeof(num));
    char peak_at[48];
    format_time(r->peak_at, peak_at, sizeof(peak_at));
    if (isfinite(r->peak_expected)) {
        format_number(r->peak_expected, expected, sizeof(expected));
        if (r->peak_expected != 0)
            snprintf(peak, sizeof(peak), "%s at %s (expected %s, %+.1f%%)", num, peak_at, expected,
                     (r->peak_value - r->peak_expected) / fabs(r->peak_expected) * 100);
        else
            snprintf(peak, sizeof(peak), "%s at %s (expected %s)", num, peak_at, expected);
    } else {
        snprintf(peak, sizeof(peak), "%s at %s", num, peak_at);
    }
    if (r->resolved_at > 0) {
        format_time(r->resolved_at, resolved, sizeof(resolved));
        snprintf(status, sizeof(status), "resolved at %s", resolved);
    } else {
        snprintf(status, sizeof(status), "open");
    }
    struct {
        const char *label;
        const char *value;
    } rows[] = {
        {"Metric", r->metric},
        {"Series", r->series != NULL && r->series[0] != '\0' ? r->series : "total"},
        {"Status", status},
        {"Started", started},
        {"Peak", peak},
        {"Method", r->method != NULL ? r->method : "n/a"},
        {"Live chart", r->chart_url},
    };
    double label_w = 90, size = 10, leading = 13;
    int rc = rule(p, x, *y + leading - 2, x + width);
    for (size_t i = 0; rc == 0 && i < sizeof(rows) / sizeof(rows[0]); i++) {
        if (rows[i].value == NULL)
            continue;
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

static int build(pdf_t *p, const bp_report_t *r)
{
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
    if (HPDF_SetCompressionMode(p->doc, HPDF_COMP_ALL) != HPDF_OK)
        return fail(p, "compression");

    p->page = HPDF_AddPage(p->doc);
    if (p->page == NULL)
        return fail(p, "add page");
    if (HPDF_Page_SetSize(p->page, HPDF_PAGE_SIZE_A4, HPDF_PAGE_PORTRAIT) != HPDF_OK)
        return fail(p, "page size");
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
    y -= 14;
    if (rc == 0)
        rc = facts(p, r, x, &y, width);
    y -= 12;

    double chart_h = 0;
    if (rc == 0)
        rc = chart_image(p, r, x, y, width, &chart_h);
    y -= chart_h + 14;
    if (rc == 0) {
        char gen_s[48];
        format_time(r->generated_at, gen_s, sizeof(gen_s));
        snprintf(buf, sizeof(buf), "Generated by bizpulse at %s", gen_s);
        rc = line_out(p, p->font, 8, C_LABEL, x, MARGIN - 20, 0, buf);
    }
    if (rc == 0) {
        snprintf(buf, sizeof(buf), "incident #%lld, %s", r->incident_id, r->state != NULL ? r->state : "");
        rc = line_out(p, p->font, 8, C_LABEL, x + width, MARGIN - 20, 1, buf);
    }
    if (rc == 0)
        rc = rule(p, x, MARGIN - 8, x + width);
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
