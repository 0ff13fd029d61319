/*
 * The small parsers every function applies to outside input, besides the big ones:
 *  - time ranges: bp_app_parse_range (POST /run of aggregate, the CLI) and
 *    bp_render_parse_range (chart from/to), over bp_time_parse_rel;
 *  - query strings: bp_http_query_param (every GET route);
 *  - the bearer token check: bp_app_authorized / bp_app_token_equal (charts, reports,
 *    admin routes), which must agree with strcmp whatever the bytes;
 *  - JSON string escaping (bp_json_append_str), which puts user input into every error
 *    message: the result must parse as JSON whatever the bytes, and give back the input when
 *    it was valid UTF-8.
 *
 * Input: NUL-separated fields "from\0to\0query\0token\0authorization"; missing ones are
 * empty.
 */
#include "app.h"
#include "buf.h"
#include "fuzz.h"
#include "json.h"
#include "render.h"
#include "timefmt.h"

#define NOW 1795000000LL

static void check_range(const char *from_s, const char *to_s)
{
    int64_t from = 0, to = 0;
    bp_err_t err;
    bp_err_clear(&err);
    if (bp_app_parse_range(from_s, to_s, NOW, &from, &to, &err) == 0)
        FUZZ_CHECK(from < to && to - from <= 366LL * 86400, "app range %lld..%lld", (long long)from,
                   (long long)to);
    else
        FUZZ_CHECK(err.code == BP_EINVAL && err.msg[0] != '\0', "app range error %d", err.code);
    bp_err_clear(&err);
    if (bp_render_parse_range(from_s, to_s, NOW, &from, &to, &err) == 0)
        FUZZ_CHECK(from < to && to - from <= BP_RENDER_MAX_SPAN, "render range %lld..%lld", (long long)from,
                   (long long)to);
    else
        FUZZ_CHECK(err.code == BP_EINVAL && err.msg[0] != '\0', "render range error %d", err.code);
    int64_t t;
    if (bp_time_parse(from_s, &t, NULL) == 0) {
        /* What we print, we must read back: RFC 3339 out, the same instant in. */
        char buf[BP_TIME_STRLEN];
        int64_t back;
        FUZZ_CHECK(bp_time_parse(bp_time_format(t, buf), &back, NULL) == 0 && back == t,
                   "'%s' -> %lld -> '%s'", from_s, (long long)t, buf);
    }
}

static void check_query(const char *query)
{
    static const char *const names[] = {"from", "to", "series", "tz", "width", "title", ""};
    bp_http_request_t req = {.method = "GET", .path = "/", .query = query, .body = ""};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        char out[64];
        int rc = bp_http_query_param(&req, names[i], out, sizeof(out));
        FUZZ_CHECK(rc == 0 || rc == 1 || rc == BP_ETOOBIG || rc == BP_EINVAL, "query_param %d", rc);
        if (rc == 1)
            FUZZ_CHECK(strlen(out) < sizeof(out), "value overflows");
    }
}

static void check_token(const char *token, const char *given)
{
    FUZZ_CHECK(bp_app_token_equal(given, token) == (strcmp(given, token) == 0), "token_equal('%s','%s')",
               given, token);
    char *auth = malloc(strlen(given) + 8);
    if (auth == NULL)
        return;
    memcpy(auth, "Bearer ", 7);
    strcpy(auth + 7, given);
    bp_http_header_t h = {.name = "authorization", .value = auth};
    bp_http_request_t req = {
        .method = "GET", .path = "/", .query = "", .headers = &h, .num_headers = 1, .body = ""};
    bool want = token[0] == '\0' || strcmp(given, token) == 0;
    FUZZ_CHECK(bp_app_authorized(&req, token) == want, "authorized('%s') with token '%s'", given, token);
    h.value = (char *)given; /* without the scheme: refused unless no token is set */
    if (token[0] != '\0' && strncasecmp(given, "Bearer ", 7) != 0)
        FUZZ_CHECK(!bp_app_authorized(&req, token), "'%s' without 'Bearer ' accepted", given);
    free(auth);
}

/* Is s valid UTF-8 (RFC 3629: no overlongs, no surrogates, at most U+10FFFF)? */
static bool valid_utf8(const unsigned char *s)
{
    while (*s) {
        unsigned c = *s, n, min;
        if (c < 0x80) {
            s++;
            continue;
        } else if ((c & 0xe0) == 0xc0) {
            n = 1, min = 0x80, c &= 0x1f;
        } else if ((c & 0xf0) == 0xe0) {
            n = 2, min = 0x800, c &= 0x0f;
        } else if ((c & 0xf8) == 0xf0) {
            n = 3, min = 0x10000, c &= 0x07;
        } else {
            return false;
        }
        for (unsigned i = 1; i <= n; i++) {
            if ((s[i] & 0xc0) != 0x80)
                return false;
            c = c << 6 | (s[i] & 0x3f);
        }
        if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
            return false;
        s += n + 1;
    }
    return true;
}

static void check_json_escape(const char *s)
{
    bp_buf_t b;
    bp_buf_init(&b, 1 << 20);
    int rc = bp_json_append_str(&b, s);
    FUZZ_CHECK(rc == 0, "append_str failed: %d", rc);
    cJSON *doc = NULL;
    bp_err_t err;
    FUZZ_CHECK(bp_json_parse(b.base, b.len, &doc, &err) == 0 && cJSON_IsString(doc),
               "not a JSON string: %.*s", (int)b.len, b.base);
    if (valid_utf8((const unsigned char *)s))
        FUZZ_CHECK(strcmp(doc->valuestring, s) == 0, "'%s' came back as '%s'", s, doc->valuestring);
    cJSON_Delete(doc);
    bp_buf_free(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* fuzz_strndup's NUL plus the separators: each field is a C string inside one buffer. */
    char *buf = malloc(size + 6);
    if (buf == NULL)
        return 0;
    if (size > 0)
        memcpy(buf, data, size);
    memset(buf + size, 0, 6);
    const char *fields[5];
    const char *p = buf;
    for (size_t i = 0; i < 5; i++) {
        fields[i] = p;
        if (p < buf + size)
            p += strlen(p) + 1;
        else
            p = buf + size; /* an empty string */
    }
    check_range(fields[0], fields[1]);
    check_query(fields[2]);
    check_token(fields[3], fields[4]);
    check_json_escape(fields[2]);
    check_json_escape(fields[4]);
    free(buf);
    return 0;
}
