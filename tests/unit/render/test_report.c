/* report: the PDF's shape and ceilings. With `--write FILE` it writes the sample report to
 * FILE instead, for check_report_text.sh (pdftotext, pdfinfo). chart.c and utf8.c are linked
 * (their statics would clash with report.c's if included). */
#include <stdlib.h>

#include "../test.h"
#include "../../../functions/render/report.c"

#define T0 1795615500 /* 2026-11-25T14:05:00Z */

/* The sentence check_report_text.sh looks for; keep the two in step. */
#define SUMMARY "注册成功率 registration success rate dropped 31% vs expected; started 14:05 UTC."

static bp_chart_point_t points[1440];
static const bp_report_cause_t causes[] = {
    {"country=DE,platform=android", 402, 151, 0.78},
    {"country=日本,platform=ios", 80, 61, 0.09},
};

static bp_report_t sample(const char *font_path)
{
    for (size_t i = 0; i < 1440; i++) {
        points[i].t = T0 - 6 * 3600 + (int64_t)i * 60;
        points[i].value = 600 + 80 * sin((double)i / 1440 * 2 * M_PI) - (i > 360 ? 190 : 0);
        points[i].anomaly = i > 360 && i < 380;
    }
    return (bp_report_t){
        .incident_id = 7,
        .metric = "registration_success_rate",
        .state = "opened",
        .summary = SUMMARY,
        .method = "sigma3",
        .started_at = T0,
        .peak_at = T0 + 600,
        .peak_value = 412,
        .peak_expected = 598.5,
        .generated_at = T0 + 3600,
        .chart_url = "http://render.example/charts/registration_success_rate.png?from=-24h",
        .causes = causes,
        .num_causes = 2,
        .method_params = "window=180, min_history=90",
        .opened_at = T0 + 120,
        .chart = {.points = points,
                  .num_points = 1440,
                  .title = "Metric Analysis: registration_success_rate"},
        .font_path = font_path,
    };
}

/* The PDF trailer may be followed by an end-of-line. */
static bool ends_with_eof(const bp_buf_t *b)
{
    size_t n = b->len;
    while (n > 0 && (b->base[n - 1] == '\n' || b->base[n - 1] == '\r'))
        n--;
    return n >= 5 && memcmp(b->base + n - 5, "%%EOF", 5) == 0;
}

static void a_report_is_a_complete_pdf_with_the_chart_embedded(void)
{
    bp_report_t r = sample(NULL);
    bp_buf_t pdf;
    bp_buf_init(&pdf, 32 << 20);
    bp_err_t err = {0};
    CHECK_INT(bp_report_pdf(&r, &pdf, &err), 0);
    CHECK(pdf.len > 5 && memcmp(pdf.base, "%PDF-", 5) == 0);
    CHECK(ends_with_eof(&pdf));
    /* Dictionaries are not compressed: the raw 1800x900 RGB image is there. */
    CHECK(memmem(pdf.base, pdf.len, "/Subtype /Image", 15) != NULL);
    CHECK(memmem(pdf.base, pdf.len, "/Width 1800", 11) != NULL);
    CHECK(memmem(pdf.base, pdf.len, "/DeviceRGB", 10) != NULL);
    bp_buf_free(&pdf);
}

static void without_a_unicode_font_the_report_falls_back_to_helvetica(void)
{
    bp_report_t r = sample("");
    bp_buf_t pdf;
    bp_buf_init(&pdf, 32 << 20);
    bp_err_t err = {0};
    CHECK_INT(bp_report_pdf(&r, &pdf, &err), 0);
    CHECK(pdf.len > 5 && memcmp(pdf.base, "%PDF-", 5) == 0);
    CHECK(ends_with_eof(&pdf));
    CHECK(memmem(pdf.base, pdf.len, "/Helvetica", 10) != NULL);
    bp_buf_free(&pdf);
}

static void a_missing_font_file_is_an_error_not_a_crash(void)
{
    bp_report_t r = sample("/nonexistent/font.ttf");
    bp_buf_t pdf;
    bp_buf_init(&pdf, 32 << 20);
    bp_err_t err = {0};
    CHECK_INT(bp_report_pdf(&r, &pdf, &err), BP_EINTERNAL);
    CHECK(strstr(err.msg, "/nonexistent/font.ttf") != NULL);
    bp_buf_free(&pdf);
}

static void the_pdf_ceiling_is_enforced(void)
{
    bp_report_t r = sample("");
    bp_buf_t pdf;
    bp_buf_init(&pdf, 10000);
    bp_err_t err = {0};
    CHECK_INT(bp_report_pdf(&r, &pdf, &err), BP_ETOOBIG);
    bp_buf_free(&pdf);
}

static void numbers_print_whole_or_with_four_digits(void)
{
    char s[32];
    format_number(412, s, sizeof(s));
    CHECK_STR(s, "412");
    format_number(0.81234, s, sizeof(s));
    CHECK_STR(s, "0.8123");
    format_number(1234.56, s, sizeof(s));
    CHECK_STR(s, "1234.6");
    format_number(NAN, s, sizeof(s));
    CHECK_STR(s, "n/a");
}

static void a_minus_sign_the_cjk_font_lacks_prints_as_a_hyphen(void)
{
    char s[] = "registrations \xe2\x88\x92"
               "35% \xe6\xb3\xa8\xe2\x88\x92";
    fold_missing_glyphs(s);
    CHECK_STR(s, "registrations -35% \xe6\xb3\xa8-");
}

static int write_sample(const char *path)
{
    bp_report_t r = sample(NULL);
    bp_buf_t pdf;
    bp_buf_init(&pdf, 32 << 20);
    bp_err_t err = {0};
    int rc = bp_report_pdf(&r, &pdf, &err);
    FILE *f = rc == 0 ? fopen(path, "wb") : NULL;
    if (f == NULL || fwrite(pdf.base, 1, pdf.len, f) != pdf.len || fclose(f) != 0) {
        fprintf(stderr, "cannot write %s: %s\n", path, rc != 0 ? err.msg : "I/O error");
        rc = 1;
    }
    bp_buf_free(&pdf);
    bp_chart_release_caches();
    return rc == 0 ? 0 : 1;
}

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "--write") == 0)
        return write_sample(argv[2]);
    RUN(a_report_is_a_complete_pdf_with_the_chart_embedded);
    RUN(without_a_unicode_font_the_report_falls_back_to_helvetica);
    RUN(a_missing_font_file_is_an_error_not_a_crash);
    RUN(the_pdf_ceiling_is_enforced);
    RUN(numbers_print_whole_or_with_four_digits);
    RUN(a_minus_sign_the_cjk_font_lacks_prints_as_a_hyphen);
    bp_chart_release_caches();
    TEST_DONE();
}
