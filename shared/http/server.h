/*
 * http/server: the one HTTP server of all three functions, on libh2o-evloop, keeping the
 * Knative runtime contract (DESIGN §4).
 *
 * Threads. One event-loop thread owns every socket and h2o object; it never blocks. Each
 * request that matches a route is copied into a bp_http_request_t and queued to a fixed pool
 * of worker threads, which run the route's handler (libpq, cairo, libcurl may block there);
 * the response comes back to the loop through an h2o multithread queue. So a slow chart or a
 * stalled database never stalls /healthz, /metrics or other requests. When every worker is
 * busy and `queue_max` requests already wait, new ones get 503 {"error":{"code":"busy"}}.
 * Gauges http_workers_busy and http_queue_waiting show how close that is.
 *
 * Built in, answered on the loop thread: GET /healthz (always 200 while the process runs),
 * GET /readyz (200 when cfg->ready(cfg->app) is true, else 503), GET /metrics (Prometheus text
 * of shared/metrics, including http_requests_total{route,status} and
 * http_request_duration_seconds{route}).
 *
 * Errors are JSON `{"error":{"code":"...","message":"..."}}`: unknown route 404, wrong method
 * 405 (with Allow), body over `body_max` 413 (also for what h2o itself rejects: a Content-Length
 * over the cap is refused right after the headers, without reading the body; a chunked body
 * is buffered up to the cap, then refused), request headers over 64 KiB in total 431, handler
 * failures as the handler says. Not JSON: a request h2o cannot parse at all (broken request
 * line, more than 100 headers, ~400 KB of headers) gets h2o 2.2.5's plain-text 400 and the
 * connection is closed; lib/http1.c writes that static response straight to the socket before
 * any request object exists, so no filter of ours can see it. A client that has not sent a
 * whole request within 10 s of its first byte (h2o's request timeout) is disconnected without
 * a response. Every request is logged as one JSON line (an error answer with its message in
 * "error") with the trace id of its `traceparent` header; the worker thread's log trace id is
 * set while the handler runs.
 *
 * Shutdown: SIGTERM or SIGINT stops accepting (the listener closes), requests in flight and
 * queued finish, idle keep-alive connections are closed, /readyz turns 503, then bp_http_serve
 * returns 0 — or after `drain_ms` it returns 0 anyway, leaving any worker still stuck in a
 * handler running (and its memory allocated): the caller should then exit promptly.
 *
 * Only one server per process (signal handlers are process-wide). While serving, SIGTERM and
 * SIGINT handlers are installed and SIGPIPE is ignored; the previous dispositions are restored
 * on return. Worker threads run with SIGTERM/SIGINT blocked.
 */
#ifndef BP_HTTP_SERVER_H
#define BP_HTTP_SERVER_H

#include <stdbool.h>
#include <stddef.h>

#include "buf.h"
#include "err.h"

typedef struct st_bp_http_header_t {
    char *name; /* lowercase */
    char *value;
} bp_http_header_t;

/* A request as a handler sees it: plain copies owned by the server, valid only during the
 * handler call. Strings are NUL-terminated. */
typedef struct st_bp_http_request_t {
    const char *method;
    const char *path;  /* raw path without the query string, e.g. "/charts/x.png" */
    const char *query; /* raw query string without '?', "" when none */
    const bp_http_header_t *headers;
    size_t num_headers;
    const char *body; /* NUL-terminated copy of the entity body ("" when none) */
    size_t body_len;
} bp_http_request_t;

#define BP_HTTP_MAX_RES_HEADERS 8

/* What a handler fills. The server initialises it to status 200, no headers, an empty body
 * (with a ceiling of cfg->response_max) and frees everything after sending. */
typedef struct st_bp_http_response_t {
    int status;
    char content_type[96];                             /* "" sends no Content-Type */
    bp_http_header_t headers[BP_HTTP_MAX_RES_HEADERS]; /* malloc'd strings, freed by the server */
    size_t num_headers;
    bp_buf_t body;
    bool run_after;  /* when set, cfg->after_response runs on this worker once the response is
                        handed to the loop (e.g. flush the outbox without delaying the reply) */
    char error[256]; /* message of an error response (bp_http_respond_error*), for the access log
                        line: without it a 503 says nothing of why in the logs */
} bp_http_response_t;

/* Runs on a worker thread. wctx is that worker's context (from cfg->worker_init). Must always
 * leave a complete response in res (bp_http_respond_* help). */
typedef void (*bp_http_handler_t)(void *wctx, const bp_http_request_t *req, bp_http_response_t *res);

typedef struct st_bp_http_route_t {
    const char *method; /* "GET", "POST", ... */
    const char *path;   /* exact path, or a prefix when it ends with '/' (e.g. "/charts/");
                           "/" alone is exact */
    const char *name;   /* metrics/log label, e.g. "charts" */
    bp_http_handler_t handler;
} bp_http_route_t;

typedef struct st_bp_http_server_config_t {
    const char *service; /* e.g. "detect"; for logs */
    const char *host;    /* bind address; NULL means 0.0.0.0 */
    int port;            /* 0 means $PORT or 8080 */
    const bp_http_route_t *routes;
    size_t num_routes;
    size_t body_max;     /* request body ceiling; 0 means BIZPULSE_BODY_MAX or 1 MiB */
    size_t response_max; /* response body ceiling; 0 means 64 MiB */
    int workers;         /* worker threads; 0 means BIZPULSE_WORKERS or 4 */
    int queue_max;       /* requests waiting for a worker before 503; 0 means 4 x workers */
    int drain_ms;        /* SIGTERM grace; 0 means 25000 (Knative's default is 30 s) */
    void *app;           /* passed to the callbacks below */
    /* Creates one worker's private context (a DB connection, a CURL handle...). May be NULL.
     * Returning NULL with err set aborts startup. */
    void *(*worker_init)(void *app, bp_err_t *err);
    void (*worker_free)(void *wctx);
    void (*after_response)(void *wctx);
    bool (*ready)(void *app); /* NULL means always ready */
} bp_http_server_config_t;

/* Binds, starts the workers, serves until SIGTERM/SIGINT, drains and returns 0; or returns
 * BP_ECONFIG (bad PORT/BIZPULSE_* value, bad route), BP_EIO (bind or thread start failed) or
 * the code worker_init set, with err set; or BP_EBUSY when the drain deadline passed with a
 * handler still running: its thread still uses the app's state, so the caller must exit at once
 * (_exit) without freeing anything. Calls worker_init for every worker on the calling
 * thread before serving and worker_free after the workers stopped. Writes the port actually
 * bound to the log ("listening" line with "port"), so tests may pass port 0 via PORT=0. */
int bp_http_serve(const bp_http_server_config_t *cfg, bp_err_t *err);

/* Case-insensitive header lookup; NULL when absent. */
const char *bp_http_header(const bp_http_request_t *req, const char *name);

/* Looks up a query parameter and percent-decodes it into out (NUL-terminated). Keys are
 * decoded before comparing; the first occurrence wins; "k" alone means an empty value. '+' is
 * NOT turned into a space (this is not form decoding), so an unencoded "+01:00" survives.
 * Returns 1 when found, 0 when absent, BP_ETOOBIG when it does not fit, BP_EINVAL when the
 * encoding is broken (including a %00, which a C string cannot hold). */
int bp_http_query_param(const bp_http_request_t *req, const char *name, char *out, size_t outsz);

/* Sets status, content type "application/json" and the body text (copied). */
void bp_http_respond_json(bp_http_response_t *res, int status, const char *json);

/* Sets a JSON error body {"error":{"code":code,"message":msg}} with the message escaped. */
void bp_http_respond_error(bp_http_response_t *res, int status, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* How most handlers end: rc 0 answers 200 with the JSON text json and sets run_after (the
 * work committed, so the outbox has something to send); otherwise the error err describes,
 * or rc with a generic message when err holds no code (a response that could not be built). */
void bp_http_respond_outcome(bp_http_response_t *res, int rc, const char *json, bp_err_t *err);

/* Maps err to its status (bp_err_http_status) and code (bp_strerror) and responds with it. */
void bp_http_respond_err(bp_http_response_t *res, const bp_err_t *err);

/* Adds a response header (both strings copied, the name lowercased). Returns BP_ETOOBIG when
 * full, BP_ENOMEM. */
int bp_http_add_header(bp_http_response_t *res, const char *name, const char *value);

#endif
