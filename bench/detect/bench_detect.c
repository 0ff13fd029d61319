/*
 * bench_detect: how fast the streaming detector scores (DESIGN §8: >= 5 M points/s per core).
 * Prints figures, never pass/fail:
 *  - points/s on one core over synthetic 5-minute series (daily rhythm + noise + spikes),
 *    many series of one week each, as the live path replays them;
 *  - with a NAB directory argument (default ../shared/datasets/nab-train when present): the
 *    time to score every row of data/<category>/<file>.csv, parsing excluded and included
 *    (the latter through bp_score_csv into /dev/null, as `bizpulse-detect score` does).
 * Single-threaded; run on an idle machine and take the best of a few runs.
 */
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "detector.h"
#include "score_csv.h"

#define SERIES 200
#define POINTS (7 * 288)

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static double bench_synthetic(void)
{
    double *values = malloc(sizeof(double) * POINTS);
    if (values == NULL)
        return 0;
    uint32_t rng = 12345;
    for (int i = 0; i < POINTS; i++) {
        rng = rng * 1664525u + 1013904223u;
        double h = (double)(i % 288) / 12.0;
        values[i] = 550 - 450 * cos((h - 3) / 24 * 2 * M_PI) + 30 * ((double)(rng >> 8) / (1 << 24) - 0.5) +
                    (i % 997 == 0 ? 2000 : 0);
    }
    double sink = 0;
    double t0 = now_s();
    for (int s = 0; s < SERIES; s++) {
        bp_detector_t *d = bp_detector_new(NULL);
        if (d == NULL)
            break;
        bp_verdict_t v;
        for (int i = 0; i < POINTS; i++) {
            bp_detector_update(d, 1700006400 + (int64_t)i * 300, values[i] + s, &v);
            sink += v.score;
        }
        bp_detector_free(d);
    }
    double dt = now_s() - t0;
    free(values);
    double pps = (double)SERIES * POINTS / dt;
    printf("synthetic: %d series x %d points in %.3f s: %.2f M points/s per core (checksum %.3f)\n", SERIES,
           POINTS, dt, pps / 1e6, sink);
    return pps;
}

/* Loads one NAB CSV as epoch seconds + values (bench only: fixed "YYYY-MM-DD HH:MM:SS"). */
static size_t load(const char *path, int64_t **ts, double **vals)
{
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return 0;
    size_t cap = 1024, n = 0;
    *ts = malloc(cap * sizeof(**ts));
    *vals = malloc(cap * sizeof(**vals));
    char line[256];
    while (*ts != NULL && *vals != NULL && fgets(line, sizeof(line), f) != NULL) {
        int y, mo, d, h, mi, s;
        char *comma = strrchr(line, ',');
        if (comma == NULL || sscanf(line, "%d-%d-%d %d:%d:%d", &y, &mo, &d, &h, &mi, &s) != 6)
            continue;
        if (n == cap) {
            cap *= 2;
            int64_t *t2 = realloc(*ts, cap * sizeof(**ts));
            double *v2 = realloc(*vals, cap * sizeof(**vals));
            if (t2 != NULL)
                *ts = t2;
            if (v2 != NULL)
                *vals = v2;
            if (t2 == NULL || v2 == NULL)
                break;
        }
        struct tm tm = {
            .tm_year = y - 1900, .tm_mon = mo - 1, .tm_mday = d, .tm_hour = h, .tm_min = mi, .tm_sec = s};
        (*ts)[n] = (int64_t)timegm(&tm);
        (*vals)[n] = strtod(comma + 1, NULL);
        n++;
    }
    fclose(f);
    return n;
}

static void bench_nab(const char *dir)
{
    char data[1024];
    snprintf(data, sizeof(data), "%s/data", dir);
    DIR *cats = opendir(data);
    if (cats == NULL) {
        printf("nab: %s not found, skipped\n", data);
        return;
    }
    size_t rows = 0, files = 0;
    double score_s = 0, csv_s = 0;
    struct dirent *c;
    while ((c = readdir(cats)) != NULL) {
        if (c->d_name[0] == '.')
            continue;
        char catdir[1536];
        snprintf(catdir, sizeof(catdir), "%s/%s", data, c->d_name);
        DIR *fs = opendir(catdir);
        if (fs == NULL)
            continue;
        struct dirent *e;
        while ((e = readdir(fs)) != NULL) {
            size_t len = strlen(e->d_name);
            if (len < 4 || strcmp(e->d_name + len - 4, ".csv") != 0)
                continue;
            char path[2048];
            snprintf(path, sizeof(path), "%s/%s", catdir, e->d_name);
            int64_t *ts = NULL;
            double *vals = NULL;
            size_t n = load(path, &ts, &vals);
            bp_detector_t *d = bp_detector_new(NULL);
            if (d != NULL && n > 0) {
                bp_verdict_t v;
                double t0 = now_s();
                for (size_t i = 0; i < n; i++)
                    bp_detector_update(d, ts[i], vals[i], &v);
                score_s += now_s() - t0;
                rows += n;
                files++;
            }
            bp_detector_free(d);
            free(ts);
            free(vals);
            FILE *devnull = fopen("/dev/null", "w");
            if (devnull != NULL) {
                double t0 = now_s();
                bp_err_t err;
                if (bp_score_csv(path, devnull, &err) != 0)
                    printf("nab: %s: %s\n", path, err.msg);
                csv_s += now_s() - t0;
                fclose(devnull);
            }
        }
        closedir(fs);
    }
    closedir(cats);
    printf("nab: %zu files, %zu rows: scoring %.1f ms (%.2f M points/s), with CSV parse + print %.1f ms\n",
           files, rows, score_s * 1e3, score_s > 0 ? (double)rows / score_s / 1e6 : 0, csv_s * 1e3);
}

int main(int argc, char **argv)
{
    double best = 0;
    for (int r = 0; r < 3; r++) {
        double pps = bench_synthetic();
        if (pps > best)
            best = pps;
    }
    printf("synthetic best: %.2f M points/s per core (%.0f ns/point)\n", best / 1e6,
           best > 0 ? 1e9 / best : 0);
    bench_nab(argc > 1 ? argv[1] : "../shared/datasets/nab-train");
    return 0;
}
