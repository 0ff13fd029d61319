#include "json.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *bp_json_str(const cJSON *obj, const char *key)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, key);
    return cJSON_IsString(it) ? it->valuestring : NULL;
}

int bp_json_num(const cJSON *obj, const char *key, double *out)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (it == NULL)
        return 0;
    if (!cJSON_IsNumber(it))
        return BP_EINVAL;
    *out = it->valuedouble;
    return 1;
}

/* Length of the valid UTF-8 sequence at s (1..4), or 0 when s starts an invalid one. */
static size_t utf8_seq_len(const unsigned char *s)
{
    unsigned c = s[0];
    size_t n;
    unsigned min;
    if (c < 0x80)
        return 1;
    if ((c & 0xe0) == 0xc0) {
        n = 2;
        min = 0x80;
        c &= 0x1f;
    } else if ((c & 0xf0) == 0xe0) {
        n = 3;
        min = 0x800;
        c &= 0x0f;
    } else if ((c & 0xf8) == 0xf0) {
        n = 4;
        min = 0x10000;
        c &= 0x07;
    } else {
        return 0;
    }
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        c = (c << 6) | (s[i] & 0x3f);
    }
    if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
        return 0;
    return n;
}

int bp_json_append_str(bp_buf_t *out, const char *s)
{
    int rc = bp_buf_append(out, "\"", 1);
    const unsigned char *p = (const unsigned char *)s;
    while (rc == 0 && *p != '\0') {
        unsigned char c = *p;
        if (c == '"' || c == '\\') {
            char esc[2] = {'\\', (char)c};
            rc = bp_buf_append(out, esc, 2);
            p++;
        } else if (c < 0x20) {
            rc = bp_buf_appendf(out, "\\u%04x", c);
            p++;
        } else {
            size_t n = utf8_seq_len(p);
            if (n == 0) {
                rc = bp_buf_append(out, "\xef\xbf\xbd", 3);
                p++;
            } else {
                rc = bp_buf_append(out, p, n);
                p += n;
            }
        }
    }
    if (rc == 0)
        rc = bp_buf_append(out, "\"", 1);
    return rc;
}

int bp_json_parse(const char *text, size_t len, cJSON **out, bp_err_t *err)
{
    const char *end = NULL;
    *out = cJSON_ParseWithLengthOpts(text, len, &end, 0);
    if (*out == NULL) {
        size_t off = (end != NULL && end >= text) ? (size_t)(end - text) : 0;
        return bp_err_set(err, BP_EINVAL, "malformed JSON near byte %zu", off);
    }
    return 0;
}

char *bp_json_print(const cJSON *obj)
{
    return cJSON_PrintUnformatted(obj);
}
