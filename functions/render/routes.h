/*
 * routes: render's HTTP handlers (DESIGN §6 render), thin: they parse the request, call
 * render.h and map its result to a status and body. Each runs on a server worker thread with
 * wctx = that worker's bp_worker_t, whose app->fn is the bp_render_t. main.c lists the routes.
 *
 *   GET  /charts/<metric>.png?from=&to=&series=&tz=&width=&height=&theme=&title=   image/png
 *   GET  /charts/<metric>.svg?(same parameters)                                     image/svg+xml
 *   POST /                                               incident CloudEvents -> PDF report
 *   GET  /reports/<incident>.pdf                         the latest stored report
 *
 * Errors are JSON (DESIGN §4): 400 naming the bad parameter or event field, 401 without the
 * bearer token when BIZPULSE_RENDER_TOKEN is set (charts and reports; events come from the
 * broker), 404 unknown metric, series or report, 503 when the database is unreachable.
 * Charts carry an ETag and Cache-Control; If-None-Match with the current ETag gets 304 after
 * one cheap query, without drawing.
 */
#ifndef BP_RENDER_ROUTES_H
#define BP_RENDER_ROUTES_H

#include <stdint.h>

#include "chart.h"
#include "http/server.h"
#include "render.h"
#include "tz.h"

#define BP_RENDER_NAME_MAX 256
#define BP_RENDER_PARAM_MAX 128

/* A chart request as parsed from its path and query string, before anything touches the
 * configuration, the database or the time zone files. chart's strings point into this struct,
 * so it must not be copied while chart is in use; chart.tz is left NULL (the caller loads
 * tz_name). */
typedef struct st_bp_render_chart_req_t {
    char metric[BP_RENDER_NAME_MAX]; /* percent-decoded; not yet checked against the config */
    char from[BP_RENDER_PARAM_MAX];
    char to[BP_RENDER_PARAM_MAX];
    char series[BP_RENDER_NAME_MAX];
    char tz_name[BP_TZ_NAME_MAX + 8];
    char title[BP_CHART_TITLE_MAX + 1];
    bp_render_chart_t chart;
} bp_render_chart_req_t;

/* Parses GET /charts/<metric>.png|.svg?from=&to=&series=&tz=&width=&height=&theme=&title=
 * into out, relative times counting from now. Returns 0; BP_ENOTFOUND (404) when the path has
 * another shape; BP_EINVAL (400) naming the parameter that is malformed, too long or out of
 * range. Reads only req: no I/O, no allocation. */
int bp_render_chart_req_parse(const bp_http_request_t *req, int64_t now, bp_render_chart_req_t *out,
                              bp_err_t *err);

void bp_render_route_chart(void *wctx, const bp_http_request_t *req, bp_http_response_t *res);
void bp_render_route_event(void *wctx, const bp_http_request_t *req, bp_http_response_t *res);
void bp_render_route_report(void *wctx, const bp_http_request_t *req, bp_http_response_t *res);

#endif
