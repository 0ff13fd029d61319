#include "buf.h"
#include "err.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void bp_buf_init(bp_buf_t *b, size_t max)
{
    b->base = NULL;
    b->len = 0;
    b->cap = 0;
    b->max = max;
}

static int reserve(bp_buf_t *b, size_t extra)
{
    if (extra > b->max || b->len > b->max - extra)
        return BP_ETOOBIG;
    size_t need = b->len + extra + 1; /* + the NUL kept after the content */
    if (need <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < need)
        cap *= 2;
    char *p = realloc(b->base, cap);
    if (p == NULL)
        return BP_ENOMEM;
    b->base = p;
    b->cap = cap;
    return 0;
}

int bp_buf_append(bp_buf_t *b, const void *data, size_t len)
{
    int rc = reserve(b, len);
    if (rc != 0)
        return rc;
    if (len > 0)
        memcpy(b->base + b->len, data, len);
    b->len += len;
    b->base[b->len] = '\0';
    return 0;
}

int bp_buf_appendf(bp_buf_t *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return BP_EINVAL;
    int rc = reserve(b, (size_t)n);
    if (rc != 0)
        return rc;
    va_start(ap, fmt);
    vsnprintf(b->base + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return 0;
}

void bp_buf_reset(bp_buf_t *b)
{
    b->len = 0;
    if (b->base != NULL)
        b->base[0] = '\0';
}

char *bp_buf_release(bp_buf_t *b, size_t *len)
{
    char *p = b->base;
    if (len != NULL)
        *len = b->len;
    b->base = NULL;
    b->len = 0;
    b->cap = 0;
    return p;
}

void bp_buf_free(bp_buf_t *b)
{
    if (b == NULL)
        return;
    free(b->base);
    b->base = NULL;
    b->len = 0;
    b->cap = 0;
}
