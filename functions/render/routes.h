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

#include "http/server.h"

void bp_render_route_chart(void *wctx, const bp_http_request_t *req, bp_http_response_t *res);
void bp_render_route_event(void *wctx, const bp_http_request_t *req, bp_http_response_t *res);
void bp_render_route_report(void *wctx, const bp_http_request_t *req, bp_http_response_t *res);

#endif
