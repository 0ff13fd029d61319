#include "utf8.h"

#include <string.h>

/* Length of the valid UTF-8 sequence starting at p, or 0 when it is not one (RFC 3629: no
 * overlong forms, no surrogates, nothing above U+10FFFF). */
static size_t seq_len(const unsigned char *p)
{
    if (p[0] < 0x80)
        return 1;
    size_t len;
    unsigned min_second = 0x80, max_second = 0xbf;
    if (p[0] >= 0xc2 && p[0] <= 0xdf) {
        len = 2;
    } else if (p[0] >= 0xe0 && p[0] <= 0xef) {
        len = 3;
        if (p[0] == 0xe0)
            min_second = 0xa0;
        else if (p[0] == 0xed)
            max_second = 0x9f;
    } else if (p[0] >= 0xf0 && p[0] <= 0xf4) {
        len = 4;
        if (p[0] == 0xf0)
            min_second = 0x90;
        else if (p[0] == 0xf4)
            max_second = 0x8f;
    } else {
        return 0;
    }
    if (p[1] < min_second || p[1] > max_second)
        return 0; /* also stops at the NUL terminator */
    for (size_t k = 2; k < len; k++) {
        if ((p[k] & 0xc0) != 0x80)
            return 0;
    }
    return len;
}

bool bp_utf8_sanitize(const char *s, char *out, size_t outsz, bool ascii_only)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t o = 0;
    bool wide = false;
    while (*p != '\0') {
        size_t len = seq_len(p);
        bool keep = len == 1 || (len > 1 && !ascii_only);
        size_t need = keep ? len : 1;
        if (o + need + 1 > outsz)
            break;
        if (keep) {
            memcpy(out + o, p, len);
            wide = wide || len > 1;
        } else {
            out[o] = '?';
        }
        o += need;
        p += len > 0 ? len : 1;
    }
    out[o] = '\0';
    return wide;
}
