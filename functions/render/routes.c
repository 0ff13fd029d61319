#include "routes.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app.h"
#include "chart.h"
#include "http/percent.h"
#include "json.h"
#include "log.h"
#include "render.h"
#include "timefmt.h"
#include "tz.h"

/* The <name> of prefix<name>suffix in path, percent-decoded (metric names may be any UTF-8).
 * Returns 0, or -1 when path has another shape, the name is empty, contains '/' or a NUL, or
 * does not fit. */
static int name_from_path(const char *path, const char *prefix, const char *suffix, char *out, size_t outsz)
{
    size_t plen = strlen(prefix), slen = strlen(suffix), len = strlen(path);
    if (len <= plen + slen || strncmp(path, prefix, plen) != 0 || strcmp(path + len - slen, suffix) != 0)
        return -1;
    long n = bp_http_pct_decode(path + plen, len - plen - slen, out, outsz);
    return n > 0 && strchr(out, '/') == NULL ? 0 : -1;
}

/* A query parameter into out ("" when absent). BP_EINVAL naming it when broken or too long. */
static int param(const bp_http_request_t *req, const char *name, char *out, size_t outsz, bp_err_t *err)
{
    int rc = bp_http_query_param(req, name, out, outsz);
    if (rc == 1)
        return 0;
    out[0] = '\0';
    if (rc == 0)
        return 0;
    return bp_err_set(err, BP_EINVAL, "parameter '%s': %s", name,
                      rc == BP_ETOOBIG ? "value too long" : "broken percent-encoding");
}

/* An optional integer size parameter within [min, max]; 0 when absent. */
static int size_param(const bp_http_request_t *req, const char *name, int min, int max, int *out,
                      bp_err_t *err)
{
    char text[16];
    *out = 0;
    if (param(req, name, text, sizeof(text), err) != 0)
        return BP_EINVAL;
    if (text[0] == '\0')
        return 0;
    char *end;
    long v = strtol(text, &end, 10);
    if (*end != '\0' || end == text || v < min || v > max)
        return bp_err_set(err, BP_EINVAL, "parameter '%s' must be an integer from %d to %d", name, min, max);
    *out = (int)v;
    return 0;
}

int bp_render_chart_req_parse(const bp_http_request_t *req, int64_t now, bp_render_chart_req_t *out,
                              bp_err_t *err)
{
    memset(out, 0, sizeof(*out));
    bp_render_chart_t *q = &out->chart;
    q->format = BP_RENDER_PNG;
    if (name_from_path(req->path, "/charts/", ".svg", out->metric, sizeof(out->metric)) == 0)
        q->format = BP_RENDER_SVG;
    else if (name_from_path(req->path, "/charts/", ".png", out->metric, sizeof(out->metric)) != 0)
        return bp_err_set(err, BP_ENOTFOUND, "charts are at /charts/<metric>.png or .svg");
    char theme[16];
    if (param(req, "from", out->from, sizeof(out->from), err) != 0 ||
        param(req, "to", out->to, sizeof(out->to), err) != 0 ||
        param(req, "series", out->series, sizeof(out->series), err) != 0 ||
        param(req, "tz", out->tz_name, sizeof(out->tz_name), err) != 0 ||
        param(req, "theme", theme, sizeof(theme), err) != 0 ||
        param(req, "title", out->title, sizeof(out->title), err) != 0 ||
        size_param(req, "width", BP_CHART_MIN_WIDTH, BP_CHART_MAX_WIDTH, &q->width, err) != 0 ||
        size_param(req, "height", BP_CHART_MIN_HEIGHT, BP_CHART_MAX_HEIGHT, &q->height, err) != 0)
        return BP_EINVAL;
    q->metric = out->metric;
    q->series = out->series;
    if (strcmp(theme, "dark") == 0)
        q->theme = BP_CHART_DARK;
    else if (theme[0] != '\0' && strcmp(theme, "light") != 0)
        return bp_err_set(err, BP_EINVAL, "parameter 'theme' must be light or dark");
    char has_title[2];
    if (bp_http_query_param(req, "title", has_title, sizeof(has_title)) != 0)
        q->title = out->title; /* given, even empty: an empty title draws none */
    return bp_render_parse_range(out->from, out->to, now, &q->from, &q->to, err);
}

static bool authorized(const bp_worker_t *w, const bp_http_request_t *req, bp_http_response_t *res)
{
    const bp_render_t *r = w->app->fn;
    if (bp_app_authorized(req, r->token))
        return true;
    bp_http_respond_error(res, 401, "unauthorized", "missing or wrong bearer token");
    bp_http_add_header(res, "www-authenticate", "Bearer");
    return false;
}

/* Responds with err after dropping whatever partial body a failed render left. */
static void respond_failure(bp_http_response_t *res, const bp_err_t *err)
{
    bp_buf_reset(&res->body);
    bp_http_respond_err(res, err);
}

/* If-None-Match (RFC 9110 §13.1.2): "*" or a list of entity tags, compared weakly (a W/
 * prefix is ignored). */
static bool etag_matches(const char *header, const char *etag)
{
    if (header == NULL)
        return false;
    size_t elen = strlen(etag);
    const char *p = header;
    while (*p != '\0') {
        while (*p == ' ' || *p == '\t' || *p == ',')
            p++;
        if (*p == '*')
            return true;
        if (strncmp(p, "W/", 2) == 0)
            p += 2;
        const char *end = p;
        if (*end == '"') {
            const char *close = strchr(end + 1, '"');
            end = close != NULL ? close + 1 : end + strlen(end);
        } else {
            while (*end != '\0' && *end != ',')
                end++;
        }
        if ((size_t)(end - p) == elen && strncmp(p, etag, elen) == 0)
            return true;
        p = end;
    }
    return false;
}

/* Relative times (-24h, now) count from the current minute, not second: a dashboard polling
 * every few seconds then asks for the same range, gets the same ETag and a 304 until the next
 * minute brings a new point anyway. */
#define RELATIVE_QUANTUM_S 60

void bp_render_route_chart(void *wctx, const bp_http_request_t *req, bp_http_response_t *res)
{
    bp_worker_t *w = wctx;
    if (!authorized(w, req, res))
        return;
    bp_err_t err;
    bp_err_clear(&err);
    int64_t now = bp_time_now();
    now -= now % RELATIVE_QUANTUM_S;
    bp_render_chart_req_t cr;
    if (bp_render_chart_req_parse(req, now, &cr, &err) != 0) {
        respond_failure(res, &err);
        return;
    }
    const bp_metric_t *m = bp_config_find(w->app->config, cr.metric);
    if (m == NULL) {
        bp_http_respond_error(res, 404, "not_found", "unknown metric '%s'", cr.metric);
        return;
    }
    bp_render_chart_t q = cr.chart;
    q.metric = m->name;
    const char *series = cr.series;
    bp_tz_t *tz = NULL;
    if (bp_tz_load(cr.tz_name, &tz, &err) != 0) {
        respond_failure(res, &err);
        return;
    }
    q.tz = tz;
    char etag[32];
    int rc = 0;
    if (series[0] != '\0') {
        rc = bp_store_series_exists(w->db, m->name, series, &err);
        if (rc == 0)
            rc = bp_err_set(&err, BP_ENOTFOUND, "metric '%s' has no series '%s'", m->name, series);
        else if (rc == 1)
            rc = 0;
    }
    if (rc == 0)
        rc = bp_render_chart_etag(w, &q, etag, sizeof(etag), &err);
    if (rc == 0 && etag_matches(bp_http_header(req, "if-none-match"), etag)) {
        res->status = 304;
    } else if (rc == 0) {
        rc = bp_render_chart(w, &q, &res->body, &err);
        res->status = 200;
        snprintf(res->content_type, sizeof(res->content_type), "%s",
                 q.format == BP_RENDER_SVG ? "image/svg+xml" : "image/png");
    }
    bp_tz_free(tz);
    if (rc != 0) {
        respond_failure(res, &err);
        return;
    }
    bp_http_add_header(res, "etag", etag);
    /* private: the chart may sit behind a bearer token; short: new points arrive every minute,
     * and revalidating costs the server one aggregate query. */
    bp_http_add_header(res, "cache-control", "private, max-age=10");
}

static const char *outcome_status(bp_render_outcome_t o)
{
    switch (o) {
    case BP_RENDER_IGNORED:
        return "ignored";
    case BP_RENDER_DUPLICATE:
        return "duplicate";
    default:
        return "ok";
    }
}

void bp_render_route_event(void *wctx, const bp_http_request_t *req, bp_http_response_t *res)
{
    bp_worker_t *w = wctx;
    bp_err_t err;
    bp_err_clear(&err);
    bp_ce_t ev = {0};
    if (bp_ce_decode(req->headers, req->num_headers, req->body, req->body_len, &ev, &err) != 0) {
        bp_http_respond_err(res, &err);
        return;
    }
    bp_render_result_t result;
    int rc = bp_render_handle_event(w, w->app->fn, &ev, &result, &err);
    if (rc != 0) {
        bp_log(rc == BP_EINVAL ? BP_LOG_WARNING : BP_LOG_ERROR, "event %s (%s) failed: %s", ev.id, ev.type,
               err.msg);
        bp_ce_clear(&ev);
        respond_failure(res, &err);
        return;
    }
    bp_buf_t body;
    bp_buf_init(&body, 8192);
    rc = bp_buf_appendf(&body, "{\"status\":\"%s\"", outcome_status(result.outcome));
    if (rc == 0 && result.outcome == BP_RENDER_IGNORED) {
        char reason[200];
        snprintf(reason, sizeof(reason), "event type %.120s is not handled by render", ev.type);
        rc = bp_buf_appendf(&body, ",\"reason\":");
        if (rc == 0)
            rc = bp_json_append_str(&body, reason);
    }
    if (rc == 0 && (result.outcome == BP_RENDER_WRITTEN || result.outcome == BP_RENDER_EXISTING)) {
        rc = bp_buf_appendf(&body, ",\"incident_id\":%lld,\"state\":\"%s\",\"report\":", result.incident_id,
                            result.state);
        if (rc == 0)
            rc = bp_json_append_str(&body, result.path);
    }
    if (rc == 0)
        rc = bp_buf_append(&body, "}", 1);
    if (result.outcome == BP_RENDER_WRITTEN)
        bp_log(BP_LOG_INFO, "report written: incident %lld %s, %zu bytes, %s", result.incident_id,
               result.state, result.bytes, result.path);
    if (rc == 0)
        bp_http_respond_json(res, 200, body.base);
    else
        bp_http_respond_error(res, 500, "internal", "cannot build the response");
    bp_buf_free(&body);
    bp_ce_clear(&ev);
}

void bp_render_route_report(void *wctx, const bp_http_request_t *req, bp_http_response_t *res)
{
    bp_worker_t *w = wctx;
    if (!authorized(w, req, res))
        return;
    char id_s[24];
    char *end = NULL;
    long long id = 0;
    if (name_from_path(req->path, "/reports/", ".pdf", id_s, sizeof(id_s)) == 0)
        id = strtoll(id_s, &end, 10);
    if (end == NULL || *end != '\0' || id <= 0 || id_s[0] == '+' || id_s[0] == ' ') {
        bp_http_respond_error(res, 404, "not_found", "reports are at /reports/<incident id>.pdf");
        return;
    }
    bp_err_t err;
    bp_err_clear(&err);
    if (bp_render_read_report(w, id, &res->body, &err) != 0) {
        respond_failure(res, &err);
        return;
    }
    res->status = 200;
    snprintf(res->content_type, sizeof(res->content_type), "application/pdf");
    char disposition[64];
    snprintf(disposition, sizeof(disposition), "inline; filename=\"incident-%lld.pdf\"", id);
    bp_http_add_header(res, "content-disposition", disposition);
}
