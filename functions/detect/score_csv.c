#include "score_csv.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "sigma3.h"

int bp_score_csv(const char *path, FILE *out, bp_err_t *err)
{
    FILE *in = strcmp(path, "-") == 0 ? stdin : fopen(path, "r");
    if (in == NULL)
        return bp_err_set(err, BP_EIO, "%s: %s", path, strerror(errno));
    /* A ring of the last 180 values, unrolled into `hist` for each score: O(180) per row,
     * constant memory whatever the file size. */
    double ring[BP_SIGMA3_WINDOW], hist[BP_SIGMA3_WINDOW];
    size_t count = 0;
    char line[512];
    long lineno = 0;
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
            if (lineno == 1)
                continue; /* the header */
            rc = bp_err_set(err, BP_EINVAL, "%s:%ld: expected 'timestamp,value'", path, lineno);
            break;
        }
        size_t n = count < BP_SIGMA3_WINDOW ? count : BP_SIGMA3_WINDOW;
        for (size_t i = 0; i < n; i++)
            hist[i] = ring[(count - n + i) % BP_SIGMA3_WINDOW];
        bp_sigma3_t s;
        bp_sigma3_score(hist, n, v, &s);
        *comma = '\0';
        fprintf(out, "%s,%s,%.6f\n", line, comma + 1, s.verdict ? s.score : 0.0);
        ring[count % BP_SIGMA3_WINDOW] = v;
        count++;
    }
    if (rc == 0 && ferror(in))
        rc = bp_err_set(err, BP_EIO, "%s: read error", path);
    if (in != stdin)
        fclose(in);
    return rc;
}
