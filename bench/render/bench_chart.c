/* bizpulse's chart in process: bp_chart_png (decimation, band, ticks, the line rasteriser, the chart PNG
 * encoder) on the points of a CSV at 1200x600.
 *
 *   bench_chart CSV OUT.png ITERATIONS            prints the median CPU milliseconds per chart, the
 *                                                 PNG size, and the medians of the two phases:
 *                                                 drawing and PNG encoding (medians, as the
 *                                                 machine may be shared)
 *   bench_chart CSV OUT.png SECONDS THREADS -t    prints charts per second over THREADS threads */
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "chart.h"
#include "cpu_time.h"
#include "pngenc.h"

static bp_chart_point_t *pts;
static size_t npts;
static atomic_long done;
static double stop_at;

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int one(bp_buf_t *png)
{
    bp_chart_spec_t spec = {.points = pts, .num_points = npts, .title = "Metric Analysis: user_registration"};
    bp_buf_reset(png);
    return bp_chart_png(&spec, png, NULL);
}

static void *worker(void *arg)
{
    (void)arg;
    bp_buf_t png;
    bp_buf_init(&png, 16 << 20);
    while (now_ms() < stop_at) {
        if (one(&png) == 0)
            atomic_fetch_add(&done, 1);
    }
    bp_buf_free(&png);
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc < 4)
        return 2;
    FILE *f = fopen(argv[1], "r");
    if (f == NULL)
        return 1;
    pts = calloc(200000, sizeof(*pts));
    char line[256];
    while (fgets(line, sizeof(line), f) != NULL && npts < 200000) {
        long long t;
        double v;
        int a;
        if (sscanf(line, "%lld,%lf,%d", &t, &v, &a) == 3)
            pts[npts++] = (bp_chart_point_t){.t = t, .value = v, .anomaly = a != 0};
    }
    fclose(f);
    bp_buf_t png;
    bp_buf_init(&png, 16 << 20);
    if (one(&png) != 0) /* warm: fonts resolved once per process */
        return 1;
    FILE *o = fopen(argv[2], "wb");
    if (o != NULL) {
        fwrite(png.base, 1, png.len, o);
        fclose(o);
    }
    if (argc == 6 && strcmp(argv[5], "-t") == 0) {
        int threads = atoi(argv[4]);
        pthread_t th[64];
        stop_at = now_ms() + atof(argv[3]) * 1000;
        double t0 = now_ms();
        for (int i = 0; i < threads && i < 64; i++)
            pthread_create(&th[i], NULL, worker, NULL);
        for (int i = 0; i < threads && i < 64; i++)
            pthread_join(th[i], NULL);
        printf("%.1f\n", atomic_load(&done) / ((now_ms() - t0) / 1000));
    } else {
        int iters = atoi(argv[3]);
        if (iters < 1 || iters > 100000)
            return 2;
        double *ms = malloc(sizeof(*ms) * 3 * (size_t)iters), *draw = ms + iters, *encode = ms + 2 * iters;
        bp_chart_spec_t spec = {
            .points = pts, .num_points = npts, .title = "Metric Analysis: user_registration"};
        for (int i = 0; i < iters; i++) {
            double t0 = cpu_ms();
            one(&png);
            ms[i] = cpu_ms() - t0;
            /* the same work as bp_chart_png, timed by phase */
            cairo_surface_t *surface = NULL;
            bp_buf_reset(&png);
            t0 = cpu_ms();
            int rc = bp_chart_draw(&spec, &surface, NULL);
            double t1 = cpu_ms();
            if (rc == 0)
                rc = bp_pngenc_write(surface, &png, NULL);
            encode[i] = cpu_ms() - t1;
            draw[i] = t1 - t0;
            cairo_surface_destroy(surface);
            if (rc != 0)
                return 1;
        }
        printf("%.3f %zu %.3f %.3f\n", median_ms(ms, (size_t)iters), png.len, median_ms(draw, (size_t)iters),
               median_ms(encode, (size_t)iters));
        free(ms);
    }
    bp_buf_free(&png);
    free(pts);
    bp_chart_release_caches();
    return 0;
}
