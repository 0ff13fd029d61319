/*
 * decsum: exact sums of decimal numbers, as PostgreSQL's sum(numeric) computes them, without
 * PostgreSQL. A sum metric adds payload amounts such as 19.99; adding them as doubles would
 * drift from the SQL answer (and from one re-aggregation to the next in the last digit, which
 * would make an unchanged interval look revised). Values with at most 38 significant digits
 * (after aligning scales) are summed exactly in a 128-bit integer; a sum that outgrows that
 * continues in long double, which is then no longer exact (1e300-sized amounts; documented).
 *
 * A bp_decsum_t is a plain value: no allocation, copy it freely.
 */
#ifndef BP_DECSUM_H
#define BP_DECSUM_H

#include <stdbool.h>
#include <stddef.h>

typedef struct st_bp_decsum_t {
    __int128 mant;      /* exact sum = mant / 10^scale, while !inexact */
    long double approx; /* the sum once inexact */
    int scale;
    bool inexact;
    bool any; /* at least one value added */
} bp_decsum_t;

#define BP_DECSUM_INIT ((bp_decsum_t){0})

/* Adds the decimal text [s, s+len): optional sign, digits with an optional '.', an optional
 * exponent ("1e3", "-0.5E-2"); surrounding blanks allowed. Returns false (sum unchanged) for
 * anything else. */
bool bp_decsum_add(bp_decsum_t *sum, const char *s, size_t len);

/* into += from. */
void bp_decsum_merge(bp_decsum_t *into, const bp_decsum_t *from);

/* The sum as the nearest double (as PostgreSQL's numeric -> float8 gives it); 0 for no values. */
double bp_decsum_value(const bp_decsum_t *sum);

#endif
