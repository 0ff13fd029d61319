/*
 * http/percent: percent-encoding (RFC 3986 §2.1), once for the project: query parameters and
 * path segments (server), CloudEvents binary-mode header values (cloudevents, HTTP binding
 * §3.1.3.2). Pure functions: thread-safe.
 */
#ifndef BP_HTTP_PERCENT_H
#define BP_HTTP_PERCENT_H

#include <stddef.h>

/* Decodes src[0..len) into out (NUL-terminated, at most outsz bytes with the NUL). '+' stays
 * '+': our query strings are built by programs, and RFC 3339 offsets ("+01:00") must survive.
 * Returns the decoded length, BP_EINVAL for a broken escape or an encoded NUL (the result is
 * used as a C string), BP_ETOOBIG when it does not fit. */
long bp_http_pct_decode(const char *src, size_t len, char *out, size_t outsz);

/* Encodes s for a CloudEvents header value: bytes outside printable ASCII, space, '"' and '%'
 * become %XX. Returns a malloc'd string (caller frees) or NULL when out of memory. */
char *bp_http_pct_encode(const char *s);

#endif
