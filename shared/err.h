/*
 * err: the one list of error codes used across shared/ and the functions.
 *
 * Fallible functions return 0 or a negative BP_E* code and, when given a non-NULL
 * bp_err_t, write a human-readable message into it (a caller-owned buffer, like curl's
 * CURLOPT_ERRORBUFFER). Only shared/http maps codes to HTTP statuses (bp_err_http_status).
 * Thread-safe: no shared state.
 */
#ifndef BP_ERR_H
#define BP_ERR_H

#include <stddef.h>

enum {
    BP_OK = 0,
    BP_EINVAL = -1,     /* bad input from a caller or client: never succeeds on retry (HTTP 400) */
    BP_ENOTFOUND = -2,  /* unknown metric, incident, route (HTTP 404) */
    BP_ETOOBIG = -3,    /* a size ceiling was hit (HTTP 413) */
    BP_EMEDIA = -4,     /* unsupported content type (HTTP 415) */
    BP_EDB = -5,        /* database unreachable or a statement failed transiently (HTTP 503) */
    BP_EIO = -6,        /* file system or network I/O failed (HTTP 503) */
    BP_ENOMEM = -7,     /* allocation failed (HTTP 500) */
    BP_ECONFIG = -8,    /* configuration refused (at startup; met on a request: HTTP 500, retried) */
    BP_EBUSY = -9,      /* capacity exhausted: queue full, lock held (HTTP 503) */
    BP_EINTERNAL = -10, /* a bug or a library failure that retrying will not fix (HTTP 500) */
    BP_EAUTH = -11,     /* missing or wrong bearer token (HTTP 401) */
};

#define BP_ERR_MSG_SIZE 256

typedef struct st_bp_err_t {
    int code;
    char msg[BP_ERR_MSG_SIZE];
} bp_err_t;

/* Records code and a printf-style message into err (ignored when err is NULL); returns code, so
 * failure paths can `return bp_err_set(err, BP_EINVAL, "...")`. */
int bp_err_set(bp_err_t *err, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Resets err to BP_OK with an empty message. */
void bp_err_clear(bp_err_t *err);

/* Short stable name for a code, e.g. "invalid_argument"; used as the JSON error code. */
const char *bp_strerror(int code);

/* The HTTP status a code means under the Knative delivery contract (DESIGN §4). */
int bp_err_http_status(int code);

#endif
