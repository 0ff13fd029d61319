/*
 * timefmt: time as the project handles it: int64 seconds since the Unix epoch, UTC. Metric
 * intervals are whole minutes or hours, so sub-second precision is never needed after
 * parsing. Parses RFC 3339 ("2026-11-25T14:05:00Z", "...+01:00", fractions ignored) and the
 * relative forms dashboards use ("now", "-24h", "-30m", "-7d", "-90s").
 * Thread-safe.
 */
#ifndef BP_TIMEFMT_H
#define BP_TIMEFMT_H

/* The seconds RFC 3339 can write (four-digit years): 0000-01-01T00:00:00Z .. 9999-12-31T23:59:59Z. */
#define BP_TIME_MIN (-62167219200LL)
#define BP_TIME_MAX 253402300799LL

#include <stdint.h>

#include "err.h"

#define BP_TIME_STRLEN 32

/* RFC 3339 text to epoch seconds (fraction truncated toward the past). BP_EINVAL otherwise. */
int bp_time_parse(const char *s, int64_t *out, bp_err_t *err);

/* Like bp_time_parse, but also accepts "now" and -N{s,m,h,d} relative to now_s. */
int bp_time_parse_rel(const char *s, int64_t now_s, int64_t *out, bp_err_t *err);

/* Formats as "YYYY-MM-DDTHH:MM:SSZ" into out (at least BP_TIME_STRLEN bytes); returns out.
 * The year always has four digits; instants before 0000-01-01 or after 9999-12-31T23:59:59Z,
 * which RFC 3339 cannot write, are clamped to those. */
char *bp_time_format(int64_t t, char *out);

int64_t bp_time_now(void);

/* Start of the interval containing t, intervals aligned to the epoch (so UTC-aligned). */
int64_t bp_time_floor(int64_t t, int64_t interval_s);

#endif
