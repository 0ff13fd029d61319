/*
 * Unit tests of the CSV scorer (functions/detect/score_csv.c): header, blank lines, CRLF,
 * timestamp forms, and bad rows named by line.
 */
#include "../../../functions/detect/score_csv.c"

#include <unistd.h>

#include "../test.h"

/* Writes text to a temporary file and scores it; out gets the output (NUL-terminated). */
static int score_text(const char *text, char *out, size_t outsz, bp_err_t *err)
{
    char path[] = "/tmp/bp_score_csv_XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0)
        return -100;
    FILE *f = fdopen(fd, "w");
    fputs(text, f);
    fclose(f);
    FILE *o = fmemopen(out, outsz, "w");
    int rc = bp_score_csv(path, o, err);
    fclose(o);
    unlink(path);
    return rc;
}

static int count_lines(const char *s)
{
    int n = 0;
    for (; *s; s++)
        n += *s == '\n';
    return n;
}

static void rows_are_echoed_with_a_score_after_a_header(void)
{
    char out[4096] = {0};
    bp_err_t err = {0};
    int rc = score_text("timestamp,value\r\n2014-04-01 00:00:00,20\r\n\n2014-04-01 00:05:00,21.5\n"
                        "2014-04-01T00:10:00Z,22\n1396311000,23\n",
                        out, sizeof(out), &err);
    CHECK_INT(rc, 0);
    CHECK(strncmp(out, "timestamp,value,anomaly_score\n2014-04-01 00:00:00,20,0.000000\n", 62) == 0);
    CHECK(strstr(out, "2014-04-01 00:05:00,21.5,") != NULL);
    CHECK(strstr(out, "1396311000,23,") != NULL);
    CHECK_INT(count_lines(out), 5);
}

static void a_bad_value_names_its_line(void)
{
    char out[4096] = {0};
    bp_err_t err = {0};
    int rc = score_text("timestamp,value\n2014-04-01 00:00:00,20\n2014-04-01 00:05:00,abc\n", out,
                        sizeof(out), &err);
    CHECK_INT(rc, BP_EINVAL);
    CHECK(strstr(err.msg, ":3:") != NULL);
}

static void a_bad_timestamp_names_its_line(void)
{
    char out[4096] = {0};
    bp_err_t err = {0};
    int rc = score_text("2014-04-01 00:00:00,20\nyesterday,21\n", out, sizeof(out), &err);
    CHECK_INT(rc, BP_EINVAL);
    CHECK(strstr(err.msg, ":2:") != NULL && strstr(err.msg, "yesterday") != NULL);
}

/* Found by fuzz/score_csv.c: an epoch near INT64_MAX overflowed the detector's timestamp
 * arithmetic (signed overflow, UB). */
static void epoch_seconds_beyond_year_9999_are_a_bad_timestamp(void)
{
    char out[4096] = {0};
    bp_err_t err = {0};
    CHECK_INT(score_text("1795000000,1\n253402300799,2\n", out, sizeof(out), &err), 0);
    CHECK_INT(score_text("1795000000,1\n9223372036854775807,2\n", out, sizeof(out), &err), BP_EINVAL);
    CHECK(strstr(err.msg, ":2: bad timestamp") != NULL);
    CHECK_INT(score_text("-62167219201,1\n", out, sizeof(out), &err), BP_EINVAL);
}

static void a_missing_file_is_an_io_error(void)
{
    char out[256] = {0};
    bp_err_t err = {0};
    FILE *o = fmemopen(out, sizeof(out), "w");
    CHECK_INT(bp_score_csv("/nonexistent/bp.csv", o, &err), BP_EIO);
    fclose(o);
}

int main(void)
{
    RUN(rows_are_echoed_with_a_score_after_a_header);
    RUN(a_bad_value_names_its_line);
    RUN(a_bad_timestamp_names_its_line);
    RUN(epoch_seconds_beyond_year_9999_are_a_bad_timestamp);
    RUN(a_missing_file_is_an_io_error);
    TEST_DONE();
}
