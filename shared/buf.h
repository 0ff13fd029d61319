/*
 * buf: a growable byte buffer with a ceiling. Every body, JSON text, PNG and PDF that grows
 * lives in one; the ceiling is mandatory so no input can make a buffer grow without bound.
 *
 * The buffer owns `base` (malloc'd); bp_buf_free releases it. The content is always kept
 * NUL-terminated one byte past `len` (not counted), so text can be used as a C string.
 * Not thread-safe; one owner at a time.
 */
#ifndef BP_BUF_H
#define BP_BUF_H

#include <stddef.h>

typedef struct st_bp_buf_t {
    char *base;
    size_t len;
    size_t cap;
    size_t max; /* appends that would pass this size fail with BP_ETOOBIG */
} bp_buf_t;

/* Initialises an empty buffer that may grow to max bytes. Allocates nothing. */
void bp_buf_init(bp_buf_t *b, size_t max);

/* Appends len bytes. Returns 0, BP_ETOOBIG (content unchanged) or BP_ENOMEM. */
int bp_buf_append(bp_buf_t *b, const void *data, size_t len);

/* Appends a printf-formatted string. Same returns as bp_buf_append. */
int bp_buf_appendf(bp_buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Empties the buffer, keeping its memory. */
void bp_buf_reset(bp_buf_t *b);

/* Hands the memory to the caller (who must free() it) and leaves b empty. May return NULL
 * when nothing was ever appended. */
char *bp_buf_release(bp_buf_t *b, size_t *len);

/* Frees the memory; b is left empty and reusable. NULL is allowed. */
void bp_buf_free(bp_buf_t *b);

#endif
