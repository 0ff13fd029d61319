/*
 * stats: the small robust statistics the detection methods share. Pure functions.
 */
#ifndef BP_STATS_H
#define BP_STATS_H

#include <stddef.h>

/* The median of v[0..n) (n >= 1). Sorts v in place. */
double bp_stats_median(double *v, size_t n);

#endif
