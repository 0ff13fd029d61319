/*
 * http/message: what handlers use to read a request and write a response (declared in
 * http/server.h), apart from the server's event loop. Any thread: each call touches only the
 * request or response it is given.
 */
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "http/internal.h"
#include "http/percent.h"
#include "json.h"

/* Helpers for handlers: any thread, they only touch the request or response they are given. */

const char *bp_http_header(const bp_http_request_t *req, const char *name)
{
    for (size_t i = 0; i < req->num_headers; i++)
        if (strcasecmp(req->headers[i].name, name) == 0)
            return req->headers[i].value;
    return NULL;
}

/* Whether the encoded key src[0..len) decodes to name; a broken key matches nothing. */
static bool key_equals(const char *src, size_t len, const char *name)
{
    size_t nlen = strlen(name);
    if (len < nlen) /* decoding only shrinks */
        return false;
    char stack[128];
    char *buf = len + 1 <= sizeof(stack) ? stack : malloc(len + 1);
    if (buf == NULL)
        return false;
    bool eq = bp_http_pct_decode(src, len, buf, len + 1) >= 0 && strcmp(buf, name) == 0;
    if (buf != stack)
        free(buf);
    return eq;
}

int bp_http_query_param(const bp_http_request_t *req, const char *name, char *out, size_t outsz)
{
    const char *q = req->query != NULL ? req->query : "";
    while (*q != '\0') {
        const char *amp = strchr(q, '&');
        const char *end = amp != NULL ? amp : q + strlen(q);
        const char *eq = memchr(q, '=', (size_t)(end - q));
        const char *key_end = eq != NULL ? eq : end;
        if (key_end > q && key_equals(q, (size_t)(key_end - q), name)) {
            const char *v = eq != NULL ? eq + 1 : end;
            long rc = bp_http_pct_decode(v, (size_t)(end - v), out, outsz);
            return rc >= 0 ? 1 : (int)rc;
        }
        q = amp != NULL ? amp + 1 : end;
    }
    return 0;
}

static void set_content_type(bp_http_response_t *res, const char *ctype)
{
    snprintf(res->content_type, sizeof(res->content_type), "%s", ctype);
}

void bp_http_respond_json(bp_http_response_t *res, int status, const char *json)
{
    res->status = status;
    res->error[0] = '\0';
    set_content_type(res, "application/json");
    bp_buf_reset(&res->body);
    if (bp_buf_append(&res->body, json, strlen(json)) != 0) {
        /* Only possible when out of memory or response_max is absurdly small. */
        res->status = 500;
        bp_buf_reset(&res->body);
    }
}

/* {"error":{"code":...,"message":...}} into out. */
int bp_http__append_error_json(bp_buf_t *out, const char *code, const char *msg)
{
    int rc = bp_buf_append(out, "{\"error\":{\"code\":", 17);
    if (rc == 0)
        rc = bp_json_append_str(out, code);
    if (rc == 0)
        rc = bp_buf_append(out, ",\"message\":", 11);
    if (rc == 0)
        rc = bp_json_append_str(out, msg);
    if (rc == 0)
        rc = bp_buf_append(out, "}}", 2);
    return rc;
}

void bp_http__respond_error_msg(bp_http_response_t *res, int status, const char *code, const char *msg)
{
    res->status = status;
    snprintf(res->error, sizeof(res->error), "%s", msg);
    set_content_type(res, "application/json");
    bp_buf_reset(&res->body);
    if (bp_http__append_error_json(&res->body, code, msg) != 0) {
        res->status = 500;
        bp_buf_reset(&res->body);
    }
}

void bp_http_respond_error(bp_http_response_t *res, int status, const char *code, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    bp_http__respond_error_msg(res, status, code, msg);
}

void bp_http_respond_err(bp_http_response_t *res, const bp_err_t *err)
{
    int code = err != NULL && err->code < 0 ? err->code : BP_EINTERNAL;
    const char *msg = err != NULL && err->msg[0] != '\0' ? err->msg : bp_strerror(code);
    bp_http__respond_error_msg(res, bp_err_http_status(code), bp_strerror(code), msg);
}

void bp_http_respond_outcome(bp_http_response_t *res, int rc, const char *json, bp_err_t *err)
{
    if (rc == 0) {
        bp_http_respond_json(res, 200, json);
        res->run_after = true;
        return;
    }
    if (err->code == BP_OK)
        bp_err_set(err, rc, "cannot build the response");
    bp_http_respond_err(res, err);
}

int bp_http_add_header(bp_http_response_t *res, const char *name, const char *value)
{
    if (res->num_headers >= BP_HTTP_MAX_RES_HEADERS)
        return BP_ETOOBIG;
    char *n = strdup(name);
    char *v = strdup(value);
    if (n == NULL || v == NULL) {
        free(n);
        free(v);
        return BP_ENOMEM;
    }
    for (char *p = n; *p != '\0'; p++) /* h2o sends names as given; HTTP/2 would require lowercase */
        if (*p >= 'A' && *p <= 'Z')
            *p = (char)(*p - 'A' + 'a');
    res->headers[res->num_headers++] = (bp_http_header_t){n, v};
    return 0;
}

void bp_http__response_init(bp_http_response_t *res, size_t max)
{
    memset(res, 0, sizeof(*res));
    res->status = 200;
    bp_buf_init(&res->body, max);
}

void bp_http__response_free(bp_http_response_t *res)
{
    for (size_t i = 0; i < res->num_headers; i++) {
        free(res->headers[i].name);
        free(res->headers[i].value);
    }
    res->num_headers = 0;
    bp_buf_free(&res->body);
}
