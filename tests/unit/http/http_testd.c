/*
 * http_testd: a tiny server on shared/http/server for test_server.py. Routes:
 *   GET  /sleep?ms=N  blocks its worker N ms, then 200 {"slept_ms":N}
 *   POST /echo        echoes the body (content type kept), and asks for after_response
 *   GET  /fail        503 {"error":{"code":"database_unavailable",...}} via bp_http_respond_error
 * Env: PORT, BIZPULSE_WORKERS, BIZPULSE_BODY_MAX as for the functions; TESTD_QUEUE_MAX and
 * TESTD_DRAIN_MS set queue_max and drain_ms. Each worker context is a malloc'd counter, so a
 * missing worker_free shows up as a leak under the sanitizers.
 */
#include "err.h"
#include "http/server.h"
#include "log.h"
#include "metrics.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <time.h>

typedef struct st_testd_worker_t {
    int id;
    unsigned long requests;
} testd_worker_t;

static int next_worker_id;

static void *worker_init(void *app, bp_err_t *err)
{
    (void)app;
    testd_worker_t *w = calloc(1, sizeof(*w));
    if (w == NULL) {
        bp_err_set(err, BP_ENOMEM, "out of memory");
        return NULL;
    }
    w->id = next_worker_id++; /* worker_init runs on one thread, before the workers start */
    return w;
}

static void worker_free(void *wctx)
{
    free(wctx);
}

static void after_response(void *wctx)
{
    testd_worker_t *w = wctx;
    bp_log_fields(BP_LOG_INFO, NULL, "after_response on worker %d", w->id);
}

static void handle_sleep(void *wctx, const bp_http_request_t *req, bp_http_response_t *res)
{
    testd_worker_t *w = wctx;
    w->requests++;
    char ms_text[32];
    int rc = bp_http_query_param(req, "ms", ms_text, sizeof(ms_text));
    if (rc != 1) {
        bp_http_respond_error(res, 400, "invalid_argument", "ms: %s", rc == 0 ? "missing" : bp_strerror(rc));
        return;
    }
    char *end = NULL;
    long ms = strtol(ms_text, &end, 10);
    if (end == ms_text || *end != '\0' || ms < 0 || ms > 60000) {
        bp_http_respond_error(res, 400, "invalid_argument", "ms: expected 0..60000, got '%s'", ms_text);
        return;
    }
    bp_log(BP_LOG_INFO, "sleeping %ld ms", ms);
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0) {
    }
    char json[64];
    snprintf(json, sizeof(json), "{\"slept_ms\":%ld}", ms);
    bp_http_respond_json(res, 200, json);
}

static void handle_echo(void *wctx, const bp_http_request_t *req, bp_http_response_t *res)
{
    testd_worker_t *w = wctx;
    w->requests++;
    const char *ctype = bp_http_header(req, "content-type");
    snprintf(res->content_type, sizeof(res->content_type), "%s",
             ctype != NULL ? ctype : "application/octet-stream");
    if (bp_buf_append(&res->body, req->body, req->body_len) != 0) {
        bp_http_respond_error(res, 500, "internal", "cannot copy the body");
        return;
    }
    bp_http_add_header(res, "X-Echo-Length", "yes");
    res->run_after = true;
}

static void handle_fail(void *wctx, const bp_http_request_t *req, bp_http_response_t *res)
{
    (void)wctx;
    (void)req;
    bp_http_respond_error(res, 503, bp_strerror(BP_EDB), "database is down (%s)", "simulated");
}

static int env_int(const char *name)
{
    const char *v = getenv(name);
    return v != NULL ? atoi(v) : 0;
}

int main(void)
{
    bp_log_init("http_testd");
    static const bp_http_route_t routes[] = {
        {"GET", "/sleep", "sleep", handle_sleep},
        {"POST", "/echo", "echo", handle_echo},
        {"GET", "/fail", "fail", handle_fail},
    };
    bp_http_server_config_t cfg = {
        .service = "http_testd",
        .host = getenv("TESTD_HOST"),
        .routes = routes,
        .num_routes = sizeof(routes) / sizeof(routes[0]),
        .queue_max = env_int("TESTD_QUEUE_MAX"),
        .drain_ms = env_int("TESTD_DRAIN_MS"),
        .worker_init = worker_init,
        .worker_free = worker_free,
        .after_response = after_response,
    };
    bp_err_t err = {0};
    int rc = bp_http_serve(&cfg, &err);
    if (rc == BP_EBUSY) { /* as the functions' main.c do: a handler still runs, leave at once */
        bp_log(BP_LOG_ERROR, "%s", err.msg);
        _exit(1);
    }
    if (rc != 0)
        bp_log(BP_LOG_ERROR, "serve failed: %s: %s", bp_strerror(rc), err.msg);
    else
        bp_log(BP_LOG_INFO, "stopped");
    bp_metrics_free();
    return rc == 0 ? 0 : 1;
}
