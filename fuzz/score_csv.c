/*
 * The CSV reader of `bizpulse-detect score` (functions/detect/score_csv.c) with the live
 * detector behind it, on arbitrary files.
 *
 * bp_score_csv reads a path, so each input goes into a memfd opened by path
 * (/proc/self/fd/N): no disk, and the reader runs exactly as on a user's file. The output
 * goes to another memfd and is checked against score_csv.h: a header, then one
 * "timestamp,value,score" row per data row with a score in [0,1]; a failure is BP_EINVAL or
 * BP_EIO with a message naming the file and line.
 */
#include <stdbool.h>
#include <sys/mman.h>
#include <unistd.h>

#include "fuzz.h"
#include "score_csv.h"

static int in_fd = -1;

static void check_output(FILE *out)
{
    rewind(out);
    char line[1024];
    bool first = true;
    while (fgets(line, sizeof(line), out) != NULL) {
        if (first) {
            FUZZ_CHECK(strcmp(line, "timestamp,value,anomaly_score\n") == 0, "header '%s'", line);
            first = false;
            continue;
        }
        char *comma = strrchr(line, ',');
        FUZZ_CHECK(comma != NULL, "row without a score: '%s'", line);
        char *end;
        double score = strtod(comma + 1, &end);
        FUZZ_CHECK(*end == '\n' && score >= 0 && score <= 1, "score '%s' out of [0,1]", comma + 1);
    }
    FUZZ_CHECK(!first, "no header written");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* The input fd is kept across inputs (re-creating it per input would dominate the run);
     * truncating it leaves no state from the previous input. */
    if (in_fd < 0) {
        in_fd = memfd_create("fuzz-score-in", MFD_CLOEXEC);
        if (in_fd < 0)
            abort();
    }
    if (ftruncate(in_fd, 0) != 0 || pwrite(in_fd, data, size, 0) != (ssize_t)size)
        abort();
    char path[64];
    snprintf(path, sizeof(path), "/proc/self/fd/%d", in_fd);
    int out_fd = memfd_create("fuzz-score-out", MFD_CLOEXEC);
    if (out_fd < 0)
        abort();
    FILE *out = fdopen(out_fd, "w+");
    if (out == NULL)
        abort();
    bp_err_t err;
    bp_err_clear(&err);
    int rc = bp_score_csv(path, out, &err);
    if (rc == 0) {
        check_output(out);
    } else {
        FUZZ_CHECK(rc == BP_EINVAL || rc == BP_ENOMEM, "unexpected code %d (%s)", rc, err.msg);
        FUZZ_CHECK(strncmp(err.msg, path, strlen(path)) == 0, "message does not name the file: %s", err.msg);
    }
    fclose(out);
    return 0;
}
