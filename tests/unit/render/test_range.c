/* render: the from/to rules of GET /charts/<metric>.png and the atomic report write. */
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../test.h"
#include "render.h"

#define NOW 1795615500 /* 2026-11-25T14:05:00Z */

static void no_from_or_to_means_the_last_24_hours(void)
{
    int64_t from = 0, to = 0;
    CHECK_INT(bp_render_parse_range(NULL, "", NOW, &from, &to, NULL), 0);
    CHECK_INT(to, NOW);
    CHECK_INT(from, NOW - 86400);
}

static void relative_and_rfc3339_times_are_accepted(void)
{
    int64_t from = 0, to = 0;
    CHECK_INT(bp_render_parse_range("-7d", "now", NOW, &from, &to, NULL), 0);
    CHECK_INT(from, NOW - 7 * 86400);
    CHECK_INT(to, NOW);
    CHECK_INT(
        bp_render_parse_range("2026-11-25T00:00:00Z", "2026-11-25T12:00:00+01:00", NOW, &from, &to, NULL), 0);
    CHECK_INT(to - from, 11 * 3600);
    /* only "to" given: the day before it */
    CHECK_INT(bp_render_parse_range(NULL, "-1h", NOW, &from, &to, NULL), 0);
    CHECK_INT(to, NOW - 3600);
    CHECK_INT(from, NOW - 3600 - 86400);
}

static void bad_ranges_name_the_parameter(void)
{
    int64_t from, to;
    bp_err_t err;
    CHECK_INT(bp_render_parse_range("yesterday", NULL, NOW, &from, &to, &err), BP_EINVAL);
    CHECK(strstr(err.msg, "'from'") != NULL);
    CHECK_INT(bp_render_parse_range(NULL, "2026-13-01T00:00:00Z", NOW, &from, &to, &err), BP_EINVAL);
    CHECK(strstr(err.msg, "'to'") != NULL);
    CHECK_INT(bp_render_parse_range("-1h", "-2h", NOW, &from, &to, &err), BP_EINVAL);
    CHECK(strstr(err.msg, "'from' must be before 'to'") != NULL);
    CHECK_INT(bp_render_parse_range("-1h", "-1h", NOW, &from, &to, &err), BP_EINVAL);
    CHECK_INT(bp_render_parse_range("-91d", NULL, NOW, &from, &to, &err), BP_EINVAL);
    CHECK(strstr(err.msg, "90 days") != NULL);
}

static void a_written_file_replaces_the_old_one_whole(void)
{
    char dir[] = "/tmp/bp-render-test-XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    char path[256];
    snprintf(path, sizeof(path), "%s/incident-1-opened.pdf", dir);
    CHECK_INT(bp_render_write_file(path, "first", 5, NULL), 0);
    CHECK_INT(bp_render_write_file(path, "second!", 7, NULL), 0);
    struct stat st;
    CHECK_INT(stat(path, &st), 0);
    CHECK_INT(st.st_size, 7);
    bp_err_t err;
    char bad[300];
    snprintf(bad, sizeof(bad), "%s/missing/x.pdf", dir);
    CHECK_INT(bp_render_write_file(bad, "x", 1, &err), BP_EIO);
    unlink(path);
    rmdir(dir);
}

int main(void)
{
    RUN(no_from_or_to_means_the_last_24_hours);
    RUN(relative_and_rfc3339_times_are_accepted);
    RUN(bad_ranges_name_the_parameter);
    RUN(a_written_file_replaces_the_old_one_whole);
    TEST_DONE();
}
