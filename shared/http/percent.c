#include "http/percent.h"

#include <stdlib.h>
#include <string.h>

#include "err.h"

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

long bp_http_pct_decode(const char *src, size_t len, char *out, size_t outsz)
{
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        char c = src[i];
        if (c == '%') {
            int hi = i + 2 < len ? hexval(src[i + 1]) : -1;
            int lo = hi >= 0 ? hexval(src[i + 2]) : -1;
            if (hi < 0 || lo < 0 || (hi == 0 && lo == 0))
                return BP_EINVAL;
            c = (char)(hi << 4 | lo);
            i += 2;
        } else if (c == '\0') {
            return BP_EINVAL;
        }
        if (o + 1 >= outsz)
            return BP_ETOOBIG;
        out[o++] = c;
    }
    if (outsz == 0)
        return BP_ETOOBIG;
    out[o] = '\0';
    return (long)o;
}

char *bp_http_pct_encode(const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    char *d = malloc(strlen(s) * 3 + 1), *o = d;
    if (d == NULL)
        return NULL;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p <= 0x20 || *p >= 0x7f || *p == '"' || *p == '%') {
            *o++ = '%';
            *o++ = hex[*p >> 4];
            *o++ = hex[*p & 15];
        } else {
            *o++ = (char)*p;
        }
    }
    *o = '\0';
    return d;
}
