#include "score_csv.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "detector.h"
#include "timefmt.h"

/* A timestamp as RFC 3339, as a zone-less "YYYY-MM-DD HH:MM:SS" (UTC), or as epoch seconds.
 * Epoch seconds are held to the years RFC 3339 can write (BP_TIME_MIN..BP_TIME_MAX), like the
 * other forms: the detector adds and subtracts timestamps, which overflowed near INT64_MAX. */
static int parse_ts(const char *s, int64_t *out)
{
    if (bp_time_parse(s, out, NULL) == 0)
        return 0;
    char buf[64];
    size_t len = strlen(s);
    if (len > 0 && len + 2 <= sizeof(buf)) {
        memcpy(buf, s, len);
        buf[len] = 'Z';
        buf[len + 1] = '\0';
        if (bp_time_parse(buf, out, NULL) == 0)
            return 0;
    }
    char *end = NULL;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (end != s && *end == '\0' && errno == 0 && v >= BP_TIME_MIN && v <= BP_TIME_MAX) {
        *out = v;
        return 0;
    }
    return -1;
}

int bp_score_csv(const char *path, FILE *out, bp_err_t *err)
{
    FILE *in = strcmp(path, "-") == 0 ? stdin : fopen(path, "r");
    if (in == NULL)
        return bp_err_set(err, BP_EIO, "%s: %s", path, strerror(errno));
    bp_detector_t *det = bp_detector_new(NULL);
    if (det == NULL) {
        if (in != stdin)
            fclose(in);
        return bp_err_set(err, BP_ENOMEM, "out of memory");
    }
    char line[512];
    long lineno = 0;
    bool data_seen = false;
    int rc = 0;
    fprintf(out, "timestamp,value,anomaly_score\n");
    while (fgets(line, sizeof(line), in) != NULL) {
        lineno++;
        size_t len = strcspn(line, "\r\n");
        if (line[len] == '\0' && !feof(in)) {
            rc = bp_err_set(err, BP_EINVAL, "%s:%ld: line longer than %zu bytes", path, lineno,
                            sizeof(line) - 2);
            break;
        }
        line[len] = '\0';
        if (len == 0)
            continue;
        char *comma = strrchr(line, ',');
        char *end = NULL;
        double v = comma ? strtod(comma + 1, &end) : 0;
        if (comma == NULL || end == comma + 1 || *end != '\0') {
            if (!data_seen && lineno == 1)
                continue; /* the header */
            rc = bp_err_set(err, BP_EINVAL, "%s:%ld: expected 'timestamp,value'", path, lineno);
            break;
        }
        *comma = '\0';
        int64_t ts;
        if (parse_ts(line, &ts) != 0) {
            rc = bp_err_set(err, BP_EINVAL, "%s:%ld: bad timestamp '%s'", path, lineno, line);
            break;
        }
        data_seen = true;
        bp_verdict_t verdict;
        bp_detector_update(det, ts, v, &verdict);
        if (fprintf(out, "%s,%s,%.6f\n", line, comma + 1, verdict.score) < 0) {
            rc = bp_err_set(err, BP_EIO, "write error");
            break;
        }
    }
    if (rc == 0 && ferror(in))
        rc = bp_err_set(err, BP_EIO, "%s: read error", path);
    bp_detector_free(det);
    if (in != stdin)
        fclose(in);
    return rc;
}
