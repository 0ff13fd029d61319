#include "cloudevents.h"
#include "http/percent.h"
#include "json.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define CT_STRUCTURED "application/cloudevents+json"
#define CT_BATCH "application/cloudevents-batch+json"

void bp_ce_clear(bp_ce_t *ev)
{
    if (ev == NULL)
        return;
    free(ev->id);
    free(ev->source);
    free(ev->specversion);
    free(ev->type);
    free(ev->subject);
    free(ev->time);
    free(ev->datacontenttype);
    free(ev->data);
    memset(ev, 0, sizeof(*ev));
}

static const char *find_header(const bp_http_header_t *h, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (strcasecmp(h[i].name, name) == 0)
            return h[i].value;
    return NULL;
}

/* Does the media type (before any ';' parameters) equal want? */
static int media_is(const char *ct, const char *want)
{
    if (ct == NULL)
        return 0;
    while (*ct == ' ')
        ct++;
    size_t n = strlen(want);
    return strncasecmp(ct, want, n) == 0 && (ct[n] == '\0' || ct[n] == ';' || ct[n] == ' ');
}

/* Binary mode header values are percent-encoded (HTTP binding §3.1.3.2). */
static int percent_decode(const char *s, char **out)
{
    size_t n = strlen(s);
    char *d = malloc(n + 1);
    if (d == NULL)
        return BP_ENOMEM;
    long rc = bp_http_pct_decode(s, n, d, n + 1);
    if (rc < 0) {
        free(d);
        return (int)rc;
    }
    *out = d;
    return 0;
}

static int check_required(const bp_ce_t *ev, bp_err_t *err)
{
    static const char *const names[] = {"id", "source", "specversion", "type"};
    const char *const vals[] = {ev->id, ev->source, ev->specversion, ev->type};
    for (size_t i = 0; i < 4; i++)
        if (vals[i] == NULL || vals[i][0] == '\0')
            return bp_err_set(err, BP_EINVAL,
                              "CloudEvent attribute '%s' is missing or empty (CloudEvents 1.0 §3.1)",
                              names[i]);
    if (strcmp(ev->specversion, "1.0") != 0)
        return bp_err_set(err, BP_EINVAL, "CloudEvent specversion '%.20s' is not supported: only 1.0",
                          ev->specversion);
    /* datacontenttype is a media type (CloudEvents 1.0 §3.1.1, RFC 2046) and goes out verbatim
     * as Content-Type when the event is sent in binary mode: a control byte (a structured
     * event's "\r\n") would break or inject a header line. */
    for (const unsigned char *p = (const unsigned char *)ev->datacontenttype; p != NULL && *p != '\0'; p++)
        if ((*p < 0x20 && *p != '\t') || *p == 0x7f)
            return bp_err_set(err, BP_EINVAL,
                              "CloudEvent attribute 'datacontenttype' contains control character 0x%02x", *p);
    return 0;
}

static int decode_binary(const bp_http_header_t *h, size_t n, const char *body, size_t len, bp_ce_t *ev,
                         bp_err_t *err)
{
    static const struct {
        const char *header;
        size_t off;
    } attrs[] = {
        {"ce-id", offsetof(bp_ce_t, id)},
        {"ce-source", offsetof(bp_ce_t, source)},
        {"ce-specversion", offsetof(bp_ce_t, specversion)},
        {"ce-type", offsetof(bp_ce_t, type)},
        {"ce-subject", offsetof(bp_ce_t, subject)},
        {"ce-time", offsetof(bp_ce_t, time)},
    };
    for (size_t i = 0; i < sizeof(attrs) / sizeof(attrs[0]); i++) {
        const char *v = find_header(h, n, attrs[i].header);
        if (v == NULL)
            continue;
        char **slot = (char **)((char *)ev + attrs[i].off);
        int rc = percent_decode(v, slot);
        if (rc == BP_ENOMEM)
            return bp_err_set(err, rc, "out of memory");
        if (rc != 0)
            return bp_err_set(err, BP_EINVAL, "header %s: broken percent-encoding", attrs[i].header);
    }
    const char *ct = find_header(h, n, "content-type");
    if (ct != NULL && (ev->datacontenttype = strdup(ct)) == NULL)
        return bp_err_set(err, BP_ENOMEM, "out of memory");
    if (len > 0) {
        if ((ev->data = malloc(len + 1)) == NULL)
            return bp_err_set(err, BP_ENOMEM, "out of memory");
        memcpy(ev->data, body, len);
        ev->data[len] = '\0';
        ev->data_len = len;
    }
    return check_required(ev, err);
}

static int b64val(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

static int base64_decode(const char *s, char **out, size_t *outlen)
{
    size_t n = strlen(s);
    char *d = malloc(n / 4 * 3 + 4);
    if (d == NULL)
        return BP_ENOMEM;
    size_t o = 0;
    unsigned acc = 0;
    int bits = 0;
    size_t i = 0;
    for (; i < n && s[i] != '='; i++) {
        int v = b64val((unsigned char)s[i]);
        if (v < 0) {
            free(d);
            return BP_EINVAL;
        }
        acc = (acc << 6) | (unsigned)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            d[o++] = (char)((acc >> bits) & 0xff);
        }
    }
    for (; i < n; i++) {
        if (s[i] != '=') {
            free(d);
            return BP_EINVAL;
        }
    }
    d[o] = '\0';
    *out = d;
    *outlen = o;
    return 0;
}

static int take_str(const cJSON *root, const char *key, char **slot, bp_err_t *err)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(root, key);
    if (it == NULL || cJSON_IsNull(it))
        return 0;
    if (!cJSON_IsString(it))
        return bp_err_set(err, BP_EINVAL, "CloudEvent attribute '%s' must be a string", key);
    if ((*slot = strdup(it->valuestring)) == NULL)
        return bp_err_set(err, BP_ENOMEM, "out of memory");
    return 0;
}

static int decode_structured(const char *body, size_t len, bp_ce_t *ev, bp_err_t *err)
{
    cJSON *root = NULL;
    bp_err_t jerr;
    if (bp_json_parse(body, len, &root, &jerr) != 0)
        return bp_err_set(err, BP_EINVAL, "structured CloudEvent: %s", jerr.msg);
    int rc = 0;
    if (cJSON_IsArray(root)) {
        rc = bp_err_set(err, BP_EINVAL, "a JSON array is a batch of events; batch mode is not supported");
        goto out;
    }
    if (!cJSON_IsObject(root)) {
        rc = bp_err_set(err, BP_EINVAL, "structured CloudEvent must be a JSON object");
        goto out;
    }
    if ((rc = take_str(root, "id", &ev->id, err)) != 0 ||
        (rc = take_str(root, "source", &ev->source, err)) != 0 ||
        (rc = take_str(root, "specversion", &ev->specversion, err)) != 0 ||
        (rc = take_str(root, "type", &ev->type, err)) != 0 ||
        (rc = take_str(root, "subject", &ev->subject, err)) != 0 ||
        (rc = take_str(root, "time", &ev->time, err)) != 0 ||
        (rc = take_str(root, "datacontenttype", &ev->datacontenttype, err)) != 0)
        goto out;
    const cJSON *data = cJSON_GetObjectItemCaseSensitive(root, "data");
    const cJSON *b64 = cJSON_GetObjectItemCaseSensitive(root, "data_base64");
    if (data != NULL && b64 != NULL) {
        rc = bp_err_set(err, BP_EINVAL, "CloudEvent has both 'data' and 'data_base64'");
        goto out;
    }
    if (b64 != NULL) {
        if (!cJSON_IsString(b64) || base64_decode(b64->valuestring, &ev->data, &ev->data_len) != 0) {
            rc = bp_err_set(err, BP_EINVAL, "CloudEvent 'data_base64' is not valid base64");
            goto out;
        }
    } else if (data != NULL && !cJSON_IsNull(data)) {
        /* A string datum is kept as its text; anything else as its JSON. */
        ev->data = cJSON_IsString(data) ? strdup(data->valuestring) : bp_json_print(data);
        if (ev->data == NULL) {
            rc = bp_err_set(err, BP_ENOMEM, "out of memory");
            goto out;
        }
        ev->data_len = strlen(ev->data);
    }
    rc = check_required(ev, err);
out:
    cJSON_Delete(root);
    return rc;
}

int bp_ce_decode(const bp_http_header_t *headers, size_t num_headers, const char *body, size_t body_len,
                 bp_ce_t *ev, bp_err_t *err)
{
    memset(ev, 0, sizeof(*ev));
    const char *ct = find_header(headers, num_headers, "content-type");
    int rc;
    if (media_is(ct, CT_BATCH))
        rc = bp_err_set(err, BP_EINVAL, "batch mode (%s) is not supported: send one event per request",
                        CT_BATCH);
    else if (media_is(ct, CT_STRUCTURED))
        rc = decode_structured(body, body_len, ev, err);
    else if (find_header(headers, num_headers, "ce-specversion") != NULL ||
             find_header(headers, num_headers, "ce-id"))
        rc = decode_binary(headers, num_headers, body, body_len, ev, err);
    else if (ct == NULL || media_is(ct, "application/json"))
        rc = bp_err_set(
            err, BP_EINVAL,
            "not a CloudEvent: no ce-specversion/ce-id headers (binary mode) and Content-Type is not %s",
            CT_STRUCTURED);
    else
        rc = bp_err_set(
            err, BP_EMEDIA,
            "Content-Type '%.60s' is not accepted: send a CloudEvent in binary mode (ce-* headers) or "
            "structured mode (%s)",
            ct, CT_STRUCTURED);
    if (rc != 0)
        bp_ce_clear(ev);
    return rc;
}

int bp_ce_encode_binary(const bp_ce_t *ev, bp_http_header_t *out, size_t max)
{
    /* In binary mode datacontenttype becomes the Content-Type, and a CloudEvents media type
     * there makes the receiver read the body as a structured event or a batch (HTTP binding
     * §3.1.1, §3.2): such an event can only travel in structured mode, which we do not send. */
    if (media_is(ev->datacontenttype, CT_STRUCTURED) || media_is(ev->datacontenttype, CT_BATCH))
        return BP_EINVAL;
    const struct {
        const char *name;
        const char *value;
        int encode;
    } items[] = {
        {"ce-id", ev->id, 1},
        {"ce-source", ev->source, 1},
        {"ce-specversion", ev->specversion ? ev->specversion : "1.0", 1},
        {"ce-type", ev->type, 1},
        {"ce-subject", ev->subject, 1},
        {"ce-time", ev->time, 1},
        {"content-type", ev->datacontenttype ? ev->datacontenttype : "application/json", 0},
    };
    size_t n = 0;
    for (size_t i = 0; i < sizeof(items) / sizeof(items[0]); i++) {
        if (items[i].value == NULL)
            continue;
        if (n == max) {
            bp_ce_free_headers(out, n);
            return BP_ETOOBIG;
        }
        out[n].name = strdup(items[i].name);
        out[n].value = items[i].encode ? bp_http_pct_encode(items[i].value) : strdup(items[i].value);
        n++;
        if (out[n - 1].name == NULL || out[n - 1].value == NULL) {
            bp_ce_free_headers(out, n);
            return BP_ENOMEM;
        }
    }
    return (int)n;
}

void bp_ce_free_headers(bp_http_header_t *hdrs, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(hdrs[i].name);
        free(hdrs[i].value);
        hdrs[i].name = hdrs[i].value = NULL;
    }
}
