/*
 * tz: IANA time zones read straight from the system's TZif files (RFC 8536), so a chart can
 * label its axis in the viewer's zone, DST transitions included.
 *
 * Why not localtime_r with TZ switched per request: TZ is process state. Changing it means
 * setenv + tzset, and setenv may reallocate `environ` while another thread reads it (libpq and
 * libcurl call getenv on every connection): a mutex around our own calls would not cover
 * theirs. A zone parsed into a private struct has no shared state at all, costs one ~2 KB file
 * read per request (microseconds, next to a chart's milliseconds), and behaves the same on slim
 * TZif files (no transitions after the last rule change: the POSIX TZ footer string of TZif v2+
 * is evaluated for later times).
 *
 * Thread-safe: a bp_tz_t is read-only after bp_tz_load; share it or not.
 */
#ifndef BP_RENDER_TZ_H
#define BP_RENDER_TZ_H

#include <stdbool.h>
#include <stdint.h>

#include "err.h"

/* Where zones are looked up; TZDIR overrides it, as for glibc. */
#define BP_TZ_DIR "/usr/share/zoneinfo"
#define BP_TZ_NAME_MAX 64

typedef struct st_bp_tz_t bp_tz_t;

/* A broken-down local time. */
typedef struct st_bp_tz_civil_t {
    int year, month, day; /* month 1..12, day 1..31 */
    int hour, min, sec;
    int wday;  /* 0 = Sunday */
    int utoff; /* seconds east of UTC in effect */
    bool isdst;
    char abbr[8]; /* "CET", "CEST", "+0530"... */
} bp_tz_civil_t;

/* Loads the zone called name ("Europe/Berlin", "UTC", "Asia/Kolkata"). NULL, "" and "UTC"
 * give UTC without reading a file. Names are IANA names: letters, digits, '/', '_', '-', '+',
 * no "..", no leading '/'. Returns 0 and *out (bp_tz_free it), or BP_EINVAL with err saying
 * why (unknown zone, malformed name or file). */
int bp_tz_load(const char *name, bp_tz_t **out, bp_err_t *err);

/* Parses TZif bytes (tests, other sources). Same returns as bp_tz_load. */
int bp_tz_parse(const char *name, const unsigned char *data, size_t len, bp_tz_t **out, bp_err_t *err);

void bp_tz_free(bp_tz_t *tz); /* NULL-safe */

/* The zone's name as loaded ("UTC" for UTC). */
const char *bp_tz_name(const bp_tz_t *tz);

/* Local time of instant t (epoch seconds). tz NULL means UTC. */
void bp_tz_civil(const bp_tz_t *tz, int64_t t, bp_tz_civil_t *out);

/* Offset from UTC in seconds at instant t. tz NULL means UTC. */
int bp_tz_offset(const bp_tz_t *tz, int64_t t);

/* The instant at which the local wall clock shows y-m-d h:m:s. In a gap (spring forward) the
 * instant that wall-clock time would have had before the change, i.e. one inside or right after
 * the gap; in a repeated hour (fall back) the first of the two. */
int64_t bp_tz_from_civil(const bp_tz_t *tz, int year, int month, int day, int hour, int min, int sec);

/* Days since 1970-01-01 of a proleptic Gregorian date, and back. */
int64_t bp_tz_days_from_civil(int year, int month, int day);
void bp_tz_civil_from_days(int64_t days, int *year, int *month, int *day);

#endif
