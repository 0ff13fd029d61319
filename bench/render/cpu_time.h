/* What the render bench programs (bench_chart.c, floor.c) time with: the process's CPU time,
 * which on a shared machine does not count the time other processes held the core (a chart's
 * wall time does), and the median of a series of such times (sorts it in place). */
#ifndef BP_BENCH_CPU_TIME_H
#define BP_BENCH_CPU_TIME_H

#include <stddef.h>
#include <stdlib.h>
#include <time.h>

static inline double cpu_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static inline int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static inline double median_ms(double *ms, size_t n)
{
    qsort(ms, n, sizeof(*ms), cmp_double);
    return ms[n / 2];
}

#endif
