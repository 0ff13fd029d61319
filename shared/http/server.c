#include "http/server.h"
#include "config.h"
#include "http/internal.h"
#include "json.h"
#include "log.h"
#include "metrics.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <h2o.h>

#define DEFAULT_PORT 8080
#define DEFAULT_BODY_MAX (1024 * 1024)
#define DEFAULT_RESPONSE_MAX (64 * 1024 * 1024)
#define DEFAULT_WORKERS 4
#define DEFAULT_DRAIN_MS 25000
#define MAX_WORKERS 256
#define METRICS_MAX (16 * 1024 * 1024)
/* Request headers, all names and values together. h2o 2.2.5 itself takes up to ~400 KB
 * (H2O_MAX_REQLEN) and every queued request copies them; no client of ours needs more than a
 * few KB (Knative's queue-proxy adds well under 1 KB). */
#define HEADERS_MAX (64 * 1024)
/* A worker still inside a handler when drain_ms ran out gets this long to come back before
 * bp_http_serve gives up on it. */
#define ABANDON_JOIN_MS 1000

#define M_REQUESTS "http_requests_total"
#define M_DURATION "http_request_duration_seconds"
#define M_BUSY "http_workers_busy"
#define M_WAITING "http_queue_waiting"

typedef struct st_server_t server_t;
typedef struct st_job_t job_t;

/* The one link from a request's pool to its job: h2o frees the pool when the request is
 * disposed (response sent, or client gone), and on_req_dispose then cuts the job loose. */
typedef struct st_job_ref_t {
    job_t *job;
} job_ref_t;

/* A request handed to a worker. The worker only touches `in` and `res`; `req` and `ref` belong
 * to the loop thread, which also frees the job once the worker hands it back. */
struct st_job_t {
    job_t *next; /* worker queue, under server_t.lock */
    h2o_multithread_message_t msg;
    server_t *srv;
    const bp_http_route_t *route;
    h2o_req_t *req; /* NULL once h2o disposed the request */
    job_ref_t *ref;
    uint64_t started_ns;
    bp_http_request_t in; /* strings point into arena */
    bp_http_response_t res;
    char *arena;
};

typedef struct st_worker_t {
    server_t *srv;
    pthread_t tid;
    void *wctx;
    bool started;
} worker_t;

typedef struct st_dispatch_handler_t {
    h2o_handler_t super;
    server_t *srv;
} dispatch_handler_t;

typedef struct st_error_filter_t {
    h2o_filter_t super;
    server_t *srv;
} error_filter_t;

/* Replaces the body of an error h2o produced itself (text/plain) with the JSON prepared in
 * on_setup_error_ostream. */
typedef struct st_error_ostream_t {
    h2o_ostream_t super;
    h2o_iovec_t body;
    bool sent;
} error_ostream_t;

struct st_server_t {
    /* resolved configuration; read-only once workers run */
    const bp_http_server_config_t *cfg;
    const char *host;
    int port;
    size_t body_max;
    size_t response_max;
    int num_workers;
    size_t queue_max;
    int drain_ms;

    /* loop thread only */
    h2o_evloop_t *loop;
    h2o_globalconf_t gconf;
    h2o_context_t ctx;
    bool ctx_ready;
    h2o_accept_ctx_t accept_ctx;
    h2o_socket_t *listener;
    h2o_socket_t *sigsock;
    h2o_multithread_receiver_t receiver;
    bool receiver_ready;
    h2o_req_t *sending; /* the request our own code is starting a response for, see the filter */
    size_t outstanding; /* jobs handed to workers and not yet back */
    bool stopping;
    uint64_t drain_deadline_ns;

    /* shared with workers, under lock */
    pthread_mutex_t lock;
    pthread_cond_t cond;
    job_t *qhead, *qtail;
    size_t qlen;
    int busy;
    bool quit;    /* workers exit once the queue is empty */
    bool abandon; /* workers exit after their current job, leaving the queue */

    worker_t *workers;
};

static const bp_http_route_t builtin_routes[] = {
    {"GET", "/healthz", "healthz", NULL},
    {"GET", "/readyz", "readyz", NULL},
    {"GET", "/metrics", "metrics", NULL},
};

/* Write end of the self-pipe: a signal handler may only do async-signal-safe things, so it
 * writes one byte and the loop thread does the rest. One server per process (header). */
static volatile int signal_pipe_wr = -1;

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static const char *status_reason(int status)
{
    switch (status) {
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 202:
        return "Accepted";
    case 204:
        return "No Content";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 409:
        return "Conflict";
    case 413:
        return "Payload Too Large";
    case 415:
        return "Unsupported Media Type";
    case 422:
        return "Unprocessable Entity";
    case 429:
        return "Too Many Requests";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 502:
        return "Bad Gateway";
    case 503:
        return "Service Unavailable";
    case 504:
        return "Gateway Timeout";
    default:
        return status < 400 ? "OK" : "Error";
    }
}

/* Request accounting: metrics and the access log line, on the loop thread. */

static const bp_http_route_t *match_route(const server_t *srv, const char *method, size_t method_len,
                                          const char *path, size_t path_len, bool *path_known);

/* A NUL-terminated copy of at most max bytes of a client's (unterminated) token: memcpy, not
 * strndup, which may look one byte past the token for a terminator that is not there. */
static char *copy_prefix(const char *s, size_t len, size_t max)
{
    if (len > max)
        len = max;
    char *c = malloc(len + 1);
    if (c != NULL) {
        memcpy(c, s, len);
        c[len] = '\0';
    }
    return c;
}

static void record_request(server_t *srv, const char *method, size_t method_len, const char *path,
                           size_t path_len, const char *route, int status, double seconds,
                           const char *traceparent, bool aborted, const char *error)
{
    char labels[160];
    snprintf(labels, sizeof(labels), "route=\"%s\",status=\"%d\"", route, status);
    bp_metrics_inc(M_REQUESTS, labels);
    snprintf(labels, sizeof(labels), "route=\"%s\"", route);
    bp_metrics_observe(M_DURATION, labels, seconds);

    /* method and path come from the client: escape them. The query is left out: it may carry
     * values nobody wants in a log. */
    bp_buf_t f;
    bp_buf_init(&f, 8192);
    char *m = copy_prefix(method, method_len, 32);
    char *p = copy_prefix(path, path_len, 1024);
    int rc = m != NULL && p != NULL ? 0 : BP_ENOMEM;
    if (rc == 0)
        rc = bp_buf_append(&f, "\"method\":", 9);
    if (rc == 0)
        rc = bp_json_append_str(&f, m);
    if (rc == 0)
        rc = bp_buf_append(&f, ",\"path\":", 8);
    if (rc == 0)
        rc = bp_json_append_str(&f, p);
    if (rc == 0)
        rc = bp_buf_appendf(&f, ",\"route\":\"%s\",\"status\":%d,\"duration_ms\":%.3f%s", route, status,
                            seconds * 1000.0, aborted ? ",\"aborted\":true" : "");
    /* The reason of an error answer, so a 503 in the log says what was unavailable. */
    if (rc == 0 && error != NULL && error[0] != '\0') {
        rc = bp_buf_append(&f, ",\"error\":", 9);
        if (rc == 0)
            rc = bp_json_append_str(&f, error);
    }
    bp_log_level_t level = status >= 500 ? (status == 503 ? BP_LOG_WARNING : BP_LOG_ERROR) : BP_LOG_INFO;
    bp_log_set_traceparent(traceparent);
    bp_log_fields(level, rc == 0 ? f.base : NULL, "%s %s %d", m != NULL ? m : "?", route, status);
    bp_log_set_traceparent(NULL);
    free(m);
    free(p);
    bp_buf_free(&f);
    (void)srv;
}

static const char *h2o_traceparent(h2o_req_t *req, h2o_mem_pool_t *pool)
{
    ssize_t i = h2o_find_header_by_str(&req->headers, H2O_STRLIT("traceparent"), -1);
    if (i < 0)
        return NULL;
    return h2o_strdup(pool, req->headers.entries[i].value.base, req->headers.entries[i].value.len).base;
}

static size_t path_len_of(h2o_req_t *req)
{
    return req->query_at != SIZE_MAX && req->query_at <= req->path.len ? req->query_at : req->path.len;
}

/* Sending responses, on the loop thread. */

static void free_slot(void *p)
{
    free(*(char **)p);
}

/* Starts and finishes a response. body must stay valid until the pool is cleared (copy it
 * there, or hand malloc'd memory over with a shared slot). */
static void send_response(server_t *srv, h2o_req_t *req, int status, const char *ctype,
                          const bp_http_header_t *headers, size_t num_headers, h2o_iovec_t body)
{
    static h2o_generator_t generator = {NULL, NULL};
    req->res.status = status;
    req->res.reason = status_reason(status);
    req->res.content_length = body.len;
    if (ctype != NULL && ctype[0] != '\0') {
        h2o_iovec_t v = h2o_strdup(&req->pool, ctype, SIZE_MAX);
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, v.base, v.len);
    }
    for (size_t i = 0; i < num_headers; i++) {
        h2o_iovec_t n = h2o_strdup(&req->pool, headers[i].name, SIZE_MAX);
        h2o_iovec_t v = h2o_strdup(&req->pool, headers[i].value, SIZE_MAX);
        h2o_add_header_by_str(&req->pool, &req->res.headers, n.base, n.len, 1, NULL, v.base, v.len);
    }
    srv->sending = req; /* tells the error filter this response is ours, not h2o's */
    h2o_start_response(req, &generator);
    srv->sending = NULL;
    h2o_send(req, &body, 1, H2O_SEND_STATE_FINAL);
}

static void send_copy(server_t *srv, h2o_req_t *req, int status, const char *ctype,
                      const bp_http_header_t *headers, size_t num_headers, const char *body, size_t len)
{
    h2o_iovec_t b = h2o_strdup(&req->pool, body, len);
    send_response(srv, req, status, ctype, headers, num_headers, b);
}

/* Answers on the loop thread with a JSON error, and accounts for it. */
static void send_error_now(server_t *srv, h2o_req_t *req, const char *route, uint64_t t0, int status,
                           const char *code, const char *msg, const bp_http_header_t *headers,
                           size_t num_headers)
{
    bp_buf_t b;
    bp_buf_init(&b, 4096);
    int rc = bp_http__append_error_json(&b, code, msg);
    const char *body = rc == 0 ? b.base : "{\"error\":{\"code\":\"internal\",\"message\":\"\"}}";
    /* Logged before sending: once the response is out, h2o may recycle the buffers that
     * req->method and req->path point into (ASan caught a read past one). */
    record_request(srv, req->method.base, req->method.len, req->path.base, path_len_of(req), route, status,
                   (double)(now_ns() - t0) / 1e9, h2o_traceparent(req, &req->pool), false, msg);
    send_copy(srv, req, status, "application/json", headers, num_headers, body, strlen(body));
    bp_buf_free(&b);
}

/* The worker pool: a mutex+condvar FIFO of jobs, drained by cfg->workers threads. */

static void set_pool_gauges(server_t *srv)
{
    /* under srv->lock, so concurrent updates cannot land out of order */
    bp_metrics_set(M_BUSY, "", (double)srv->busy);
    bp_metrics_set(M_WAITING, "", (double)srv->qlen);
}

static void job_free(job_t *job)
{
    if (job == NULL)
        return;
    bp_http__response_free(&job->res);
    free(job->arena);
    free(job);
}

/* Copies what the handler may read out of h2o's request into one malloc'd arena, since the
 * h2o_req_t may be gone (client closed) while the worker still runs. */
static job_t *job_new(server_t *srv, const bp_http_route_t *route, h2o_req_t *req, uint64_t t0)
{
    size_t plen = path_len_of(req);
    size_t qlen = plen < req->path.len ? req->path.len - plen - 1 : 0;
    size_t blen = req->entity.base != NULL ? req->entity.len : 0;
    size_t nh = req->headers.size;
    size_t need = nh * sizeof(bp_http_header_t) + req->method.len + 1 + plen + 1 + qlen + 1 + blen + 1;
    for (size_t i = 0; i < nh; i++)
        need += req->headers.entries[i].name->len + 1 + req->headers.entries[i].value.len + 1;

    job_t *job = calloc(1, sizeof(*job));
    char *arena = malloc(need);
    if (job == NULL || arena == NULL) {
        free(job);
        free(arena);
        return NULL;
    }
    job->srv = srv;
    job->route = route;
    job->started_ns = t0;
    job->arena = arena;
    bp_http__response_init(&job->res, srv->response_max);

    bp_http_header_t *hdrs = (bp_http_header_t *)arena;
    char *p = arena + nh * sizeof(bp_http_header_t);
#define COPY_OUT(dst, src, len)                                                                              \
    do {                                                                                                     \
        if ((len) > 0)                                                                                       \
            memcpy(p, (src), (len));                                                                         \
        p[(len)] = '\0';                                                                                     \
        (dst) = p;                                                                                           \
        p += (len) + 1;                                                                                      \
    } while (0)
    for (size_t i = 0; i < nh; i++) {
        const h2o_header_t *h = &req->headers.entries[i];
        char *name;
        COPY_OUT(name, h->name->base, h->name->len);
        for (char *c = name; *c != '\0'; c++)
            if (*c >= 'A' && *c <= 'Z')
                *c = (char)(*c - 'A' + 'a');
        hdrs[i].name = name;
        COPY_OUT(hdrs[i].value, h->value.base, h->value.len);
    }
    COPY_OUT(job->in.method, req->method.base, req->method.len);
    COPY_OUT(job->in.path, req->path.base, plen);
    COPY_OUT(job->in.query, qlen > 0 ? req->path.base + plen + 1 : "", qlen);
    COPY_OUT(job->in.body, req->entity.base, blen);
#undef COPY_OUT
    job->in.headers = hdrs;
    job->in.num_headers = nh;
    job->in.body_len = blen;
    return job;
}

static job_t *dequeue(server_t *srv)
{
    pthread_mutex_lock(&srv->lock);
    while (srv->qhead == NULL && !srv->quit && !srv->abandon)
        pthread_cond_wait(&srv->cond, &srv->lock);
    job_t *job = NULL;
    if (!srv->abandon && srv->qhead != NULL) {
        job = srv->qhead;
        srv->qhead = job->next;
        if (srv->qhead == NULL)
            srv->qtail = NULL;
        srv->qlen--;
        srv->busy++;
        set_pool_gauges(srv);
    }
    pthread_mutex_unlock(&srv->lock);
    return job;
}

static void *worker_main(void *arg)
{
    worker_t *w = arg;
    server_t *srv = w->srv;
    job_t *job;
    while ((job = dequeue(srv)) != NULL) {
        bp_log_set_traceparent(bp_http_header(&job->in, "traceparent"));
        job->route->handler(w->wctx, &job->in, &job->res);
        if (job->res.status < 100 || job->res.status > 999) {
            bp_log(BP_LOG_ERROR, "handler of route %s left status %d", job->route->name, job->res.status);
            bp_http_respond_error(&job->res, 500, "internal", "handler produced no response");
        }
        bp_log_set_traceparent(NULL);
        bool run_after = job->res.run_after && srv->cfg->after_response != NULL;
        /* After this the loop owns (and may free) the job: touch nothing of it below. */
        h2o_multithread_send_message(&srv->receiver, &job->msg);
        if (run_after)
            srv->cfg->after_response(w->wctx);
        pthread_mutex_lock(&srv->lock);
        srv->busy--;
        set_pool_gauges(srv);
        pthread_mutex_unlock(&srv->lock);
    }
    return NULL;
}

/* The loop side of a job: dispose guard and the hand-back from a worker. */

static void on_req_dispose(void *p)
{
    job_ref_t *ref = p;
    if (ref->job != NULL) {
        ref->job->req = NULL;
        ref->job->ref = NULL;
    }
}

static void finish_job(server_t *srv, job_t *job)
{
    srv->outstanding--;
    int status = job->res.status;
    double secs = (double)(now_ns() - job->started_ns) / 1e9;
    const char *tp = bp_http_header(&job->in, "traceparent");
    h2o_req_t *req = job->req;
    if (req != NULL) {
        job->ref->job = NULL; /* the pool outlives the job from here on */
        size_t len = 0;
        char *body = bp_buf_release(&job->res.body, &len);
        if (body != NULL) {
            char **slot = h2o_mem_alloc_shared(&req->pool, sizeof(*slot), free_slot);
            *slot = body;
        }
        send_response(srv, req, status, job->res.content_type, job->res.headers, job->res.num_headers,
                      h2o_iovec_init(body != NULL ? body : "", len));
    }
    record_request(srv, job->in.method, strlen(job->in.method), job->in.path, strlen(job->in.path),
                   job->route->name, status, secs, tp, req == NULL, job->res.error);
    job_free(job);
}

static void on_jobs_done(h2o_multithread_receiver_t *receiver, h2o_linklist_t *messages)
{
    server_t *srv = H2O_STRUCT_FROM_MEMBER(server_t, receiver, receiver);
    while (!h2o_linklist_is_empty(messages)) {
        job_t *job = H2O_STRUCT_FROM_MEMBER(job_t, msg.link, messages->next);
        h2o_linklist_unlink(&job->msg.link);
        finish_job(srv, job);
    }
}

/* Routing and the built-in endpoints, on the loop thread. */

static bool route_path_matches(const bp_http_route_t *r, const char *path, size_t path_len)
{
    size_t rlen = strlen(r->path);
    /* "/" alone is the exact root (where CloudEvents are POSTed), not a prefix of every path. */
    if (rlen > 1 && r->path[rlen - 1] == '/')
        return path_len >= rlen && memcmp(path, r->path, rlen) == 0;
    return path_len == rlen && memcmp(path, r->path, rlen) == 0;
}

static bool method_is(const char *m, const char *method, size_t method_len)
{
    return strlen(m) == method_len && memcmp(m, method, method_len) == 0;
}

static const bp_http_route_t *match_route(const server_t *srv, const char *method, size_t method_len,
                                          const char *path, size_t path_len, bool *path_known)
{
    *path_known = false;
    for (size_t i = 0; i < sizeof(builtin_routes) / sizeof(builtin_routes[0]); i++) {
        const bp_http_route_t *r = &builtin_routes[i];
        if (route_path_matches(r, path, path_len)) {
            *path_known = true;
            if (method_is(r->method, method, method_len))
                return r;
        }
    }
    for (size_t i = 0; i < srv->cfg->num_routes; i++) {
        const bp_http_route_t *r = &srv->cfg->routes[i];
        if (route_path_matches(r, path, path_len)) {
            *path_known = true;
            if (method_is(r->method, method, method_len))
                return r;
        }
    }
    return NULL;
}

/* "GET, POST" for the 405 Allow header. */
static void allowed_methods(const server_t *srv, const char *path, size_t path_len, char *out, size_t outsz)
{
    size_t n = 0;
    out[0] = '\0';
    for (size_t pass = 0; pass < 2; pass++) {
        const bp_http_route_t *routes = pass == 0 ? builtin_routes : srv->cfg->routes;
        size_t count = pass == 0 ? sizeof(builtin_routes) / sizeof(builtin_routes[0]) : srv->cfg->num_routes;
        for (size_t i = 0; i < count; i++) {
            if (!route_path_matches(&routes[i], path, path_len) || strstr(out, routes[i].method) != NULL)
                continue;
            int w = snprintf(out + n, outsz - n, "%s%s", n > 0 ? ", " : "", routes[i].method);
            if (w < 0 || (size_t)w >= outsz - n)
                return;
            n += (size_t)w;
        }
    }
}

static void serve_builtin(server_t *srv, h2o_req_t *req, const bp_http_route_t *r, uint64_t t0)
{
    int status = 200;
    const char *ctype = "application/json";
    bp_buf_t b;
    bp_buf_init(&b, METRICS_MAX);
    int rc = 0;
    if (strcmp(r->name, "healthz") == 0) {
        rc = bp_buf_appendf(&b, "{\"status\":\"ok\"}");
    } else if (strcmp(r->name, "readyz") == 0) {
        bool ready = srv->cfg->ready == NULL || srv->cfg->ready(srv->cfg->app);
        if (srv->stopping)
            ready = false; /* stop new traffic from being routed here while draining */
        status = ready ? 200 : 503;
        rc = ready ? bp_buf_appendf(&b, "{\"status\":\"ready\"}")
                   : bp_http__append_error_json(&b, "not_ready",
                                                srv->stopping ? "shutting down" : "dependencies not ready");
    } else {
        ctype = "text/plain; version=0.0.4; charset=utf-8";
        rc = bp_metrics_render(&b);
    }
    if (rc != 0) {
        bp_buf_free(&b);
        send_error_now(srv, req, r->name, t0, 500, bp_strerror(rc), "could not render the response", NULL, 0);
        return;
    }
    /* Logged before sending, as in send_error_now. */
    record_request(srv, req->method.base, req->method.len, req->path.base, path_len_of(req), r->name, status,
                   (double)(now_ns() - t0) / 1e9, h2o_traceparent(req, &req->pool), false, NULL);
    send_copy(srv, req, status, ctype, NULL, 0, b.base != NULL ? b.base : "", b.len);
    bp_buf_free(&b);
}

static size_t headers_size(const h2o_req_t *req)
{
    size_t n = 0;
    for (size_t i = 0; i < req->headers.size; i++)
        n += req->headers.entries[i].name->len + req->headers.entries[i].value.len + 4; /* ": " CRLF */
    return n;
}

static int on_req(h2o_handler_t *self, h2o_req_t *req)
{
    server_t *srv = ((dispatch_handler_t *)self)->srv;
    uint64_t t0 = now_ns();
    size_t plen = path_len_of(req);
    if (headers_size(req) > HEADERS_MAX) {
        char msg[96];
        snprintf(msg, sizeof(msg), "request headers exceed %d bytes", HEADERS_MAX);
        send_error_now(srv, req, "unmatched", t0, 431, "headers_too_large", msg, NULL, 0);
        return 0;
    }
    bool path_known;
    const bp_http_route_t *route =
        match_route(srv, req->method.base, req->method.len, req->path.base, plen, &path_known);

    if (route == NULL && !path_known) {
        send_error_now(srv, req, "unmatched", t0, 404, "not_found", "no such route", NULL, 0);
        return 0;
    }
    if (route == NULL) {
        char allow[128];
        allowed_methods(srv, req->path.base, plen, allow, sizeof(allow));
        bp_http_header_t h = {"allow", allow};
        send_error_now(srv, req, "unmatched", t0, 405, "method_not_allowed",
                       "method not allowed on this path", &h, 1);
        return 0;
    }
    if (route->handler == NULL) {
        serve_builtin(srv, req, route, t0);
        return 0;
    }
    /* h2o refuses bodies over max_request_entity_size itself; this covers anything that slips
     * past it (e.g. a protocol that does not check). */
    if (req->entity.base != NULL && req->entity.len > srv->body_max) {
        char msg[96];
        snprintf(msg, sizeof(msg), "request body exceeds %zu bytes", srv->body_max);
        send_error_now(srv, req, route->name, t0, 413, "too_large", msg, NULL, 0);
        return 0;
    }

    job_t *job = job_new(srv, route, req, t0);
    if (job == NULL) {
        send_error_now(srv, req, route->name, t0, 503, "out_of_memory", "cannot queue the request", NULL, 0);
        return 0;
    }
    pthread_mutex_lock(&srv->lock);
    /* Idle workers count as room: a job queued a moment before an idle worker wakes must not
     * make the next one look like overflow. */
    size_t idle = (size_t)(srv->num_workers - srv->busy);
    if (srv->qlen >= srv->queue_max + idle) {
        pthread_mutex_unlock(&srv->lock);
        job_free(job);
        /* Knative's queue-proxy and senders retry a 503: it is the transient answer. */
        send_error_now(srv, req, route->name, t0, 503, "busy", "all workers are busy; retry later", NULL, 0);
        return 0;
    }
    job->req = req;
    job->ref = h2o_mem_alloc_shared(&req->pool, sizeof(*job->ref), on_req_dispose);
    job->ref->job = job;
    if (srv->qtail != NULL)
        srv->qtail->next = job;
    else
        srv->qhead = job;
    srv->qtail = job;
    srv->qlen++;
    set_pool_gauges(srv);
    pthread_cond_signal(&srv->cond);
    pthread_mutex_unlock(&srv->lock);
    srv->outstanding++;
    return 0;
}

/* JSON bodies for the errors h2o sends by itself. */

static void error_ostream_send(h2o_ostream_t *_self, h2o_req_t *req, h2o_iovec_t *bufs, size_t bufcnt,
                               h2o_send_state_t state)
{
    error_ostream_t *self = (error_ostream_t *)_self;
    h2o_iovec_t out = self->body;
    size_t outcnt = 0;
    /* h2o_send_error_generic sends its text in one final call (none for HEAD): swap it for the
     * JSON, whose length went into content-length already. */
    if (bufcnt > 0 && !self->sent) {
        self->sent = true;
        outcnt = 1;
    }
    (void)bufs;
    h2o_ostream_send_next(&self->super, req, &out, outcnt, state);
}

static const char *error_code_for_status(int status)
{
    switch (status) {
    case 400:
        return "bad_request";
    case 404:
        return "not_found";
    case 405:
        return "method_not_allowed";
    case 413:
        return bp_strerror(BP_ETOOBIG);
    case 417:
        return "expectation_failed";
    case 503:
        return "unavailable";
    default:
        return status >= 500 ? "internal" : "bad_request";
    }
}

/* Registered on every path of our host, including fallback_path, which h2o_send_error_generic
 * binds when it rejects a request before routing (h2o 2.2.5 lib/http1.c answers an oversized
 * Content-Length with a text/plain 413 right after the headers, reading none of the body). */
static void on_setup_error_ostream(h2o_filter_t *_self, h2o_req_t *req, h2o_ostream_t **slot)
{
    server_t *srv = ((error_filter_t *)_self)->srv;
    ssize_t ct = h2o_find_header(&req->res.headers, H2O_TOKEN_CONTENT_TYPE, -1);
    if (req == srv->sending || req->res.status < 400 || ct < 0 ||
        req->res.headers.entries[ct].value.len < 10 ||
        strncasecmp(req->res.headers.entries[ct].value.base, "text/plain", 10) != 0) {
        h2o_setup_next_ostream(req, slot);
        return;
    }

    int status = req->res.status;
    char msg[128];
    if (status == 413)
        snprintf(msg, sizeof(msg), "request body exceeds %zu bytes", srv->body_max);
    else
        snprintf(msg, sizeof(msg), "%s", req->res.reason != NULL ? req->res.reason : "error");
    bp_buf_t b;
    bp_buf_init(&b, 1024);
    if (bp_http__append_error_json(&b, error_code_for_status(status), msg) == 0) {
        h2o_iovec_t body = h2o_strdup(&req->pool, b.base, b.len);
        req->res.headers.entries[ct].value = h2o_iovec_init(H2O_STRLIT("application/json"));
        req->res.content_length = body.len;
        error_ostream_t *os = (error_ostream_t *)h2o_add_ostream(req, sizeof(*os), slot);
        os->super.do_send = error_ostream_send;
        os->body = body;
        os->sent = false;
        slot = &os->super.next;
    }
    bp_buf_free(&b);

    size_t plen = req->path.base != NULL ? path_len_of(req) : 0;
    bool path_known;
    const bp_http_route_t *r = req->path.base != NULL ? match_route(srv, req->method.base, req->method.len,
                                                                    req->path.base, plen, &path_known)
                                                      : NULL;
    double secs = 0;
    if (req->timestamps.request_begin_at.tv_sec != 0) {
        struct timeval now;
        gettimeofday(&now, NULL);
        secs = (double)(now.tv_sec - req->timestamps.request_begin_at.tv_sec) +
               (double)(now.tv_usec - req->timestamps.request_begin_at.tv_usec) / 1e6;
        if (secs < 0)
            secs = 0;
    }
    record_request(srv, req->method.base != NULL ? req->method.base : "", req->method.len,
                   req->path.base != NULL ? req->path.base : "", plen, r != NULL ? r->name : "unmatched",
                   status, secs, h2o_traceparent(req, &req->pool), false, NULL);

    h2o_setup_next_ostream(req, slot);
}

/* Listener, signals and lifecycle, on the loop thread. */

static void on_accept(h2o_socket_t *listener, const char *err)
{
    server_t *srv = listener->data;
    if (err != NULL)
        return;
    /* a few per wakeup, so a connection storm cannot starve requests already in progress */
    for (int i = 0; i < 32; i++) {
        h2o_socket_t *sock = h2o_evloop_socket_accept(listener);
        if (sock == NULL)
            return;
        h2o_accept(&srv->accept_ctx, sock);
    }
}

static void on_signal(int sig)
{
    int saved = errno;
    char c = (char)sig;
    if (signal_pipe_wr >= 0 && write(signal_pipe_wr, &c, 1) < 0) {
        /* pipe full: a stop is already pending */
    }
    errno = saved;
}

static void begin_shutdown(server_t *srv)
{
    if (srv->stopping)
        return;
    srv->stopping = true;
    srv->drain_deadline_ns = now_ns() + (uint64_t)srv->drain_ms * 1000000u;
    bp_log_fields(BP_LOG_INFO, NULL, "shutting down: %zu requests in flight", srv->outstanding);
    if (srv->listener != NULL) {
        /* Closing the listening socket makes new connections fail fast (RST), so Knative's
         * queue-proxy routes them elsewhere instead of waiting on our backlog. */
        h2o_socket_read_stop(srv->listener);
        h2o_socket_close(srv->listener);
        srv->listener = NULL;
    }
    /* Requests parsed from now on get "Connection: close" (h2o 2.2.5 lib/http1.c reads this
     * flag). h2o_context_request_shutdown would also arm HTTP/2's GOAWAY timer, which we do not
     * speak and which h2o_context_dispose then finds still linked. */
    srv->ctx.shutdown_requested = 1;
    /* Idle keep-alive connections would sit out the 10 s request timeout: make it fire at
     * once. Requests being processed are not on it; http1 unlinks it before handling. */
    srv->ctx.http1.req_timeout.timeout = 0;
}

static void on_signal_read(h2o_socket_t *sock, const char *err)
{
    server_t *srv = sock->data;
    if (err == NULL)
        h2o_buffer_consume(&sock->input, sock->input->size);
    begin_shutdown(srv);
}

static int resolve_config(server_t *srv, const bp_http_server_config_t *cfg, bp_err_t *err)
{
    long v;
    int rc;
    srv->cfg = cfg;
    srv->host = cfg->host != NULL ? cfg->host : "0.0.0.0";

    srv->port = DEFAULT_PORT;
    if (cfg->port > 0) {
        srv->port = cfg->port;
    } else {
        if ((rc = bp_config_env_int("PORT", srv->port, 0, 65535, &v, err)) != 0)
            return rc;
        srv->port = (int)v;
    }

    srv->body_max = DEFAULT_BODY_MAX;
    if (cfg->body_max > 0) {
        srv->body_max = cfg->body_max;
    } else {
        if ((rc = bp_config_env_int("BIZPULSE_BODY_MAX", (long)srv->body_max, 1, LONG_MAX, &v, err)) != 0)
            return rc;
        srv->body_max = (size_t)v;
    }

    srv->num_workers = DEFAULT_WORKERS;
    if (cfg->workers > 0) {
        srv->num_workers = cfg->workers;
    } else {
        if ((rc = bp_config_env_int("BIZPULSE_WORKERS", srv->num_workers, 1, MAX_WORKERS, &v, err)) != 0)
            return rc;
        srv->num_workers = (int)v;
    }
    if (srv->num_workers > MAX_WORKERS)
        return bp_err_set(err, BP_ECONFIG, "workers=%d: at most %d", srv->num_workers, MAX_WORKERS);

    srv->response_max = cfg->response_max > 0 ? cfg->response_max : DEFAULT_RESPONSE_MAX;
    srv->queue_max = cfg->queue_max > 0 ? (size_t)cfg->queue_max : 4 * (size_t)srv->num_workers;
    srv->drain_ms = cfg->drain_ms > 0 ? cfg->drain_ms : DEFAULT_DRAIN_MS;

    for (size_t i = 0; i < cfg->num_routes; i++) {
        const bp_http_route_t *r = &cfg->routes[i];
        if (r->method == NULL || r->path == NULL || r->path[0] != '/' || r->name == NULL ||
            r->handler == NULL)
            return bp_err_set(err, BP_ECONFIG,
                              "route #%zu: method, path (starting with '/'), name and handler are required",
                              i);
    }
    return 0;
}

/* Returns the listening fd, or a negative BP_E* code. */
static int open_listener(server_t *srv, bp_err_t *err)
{
    char portstr[16];
    snprintf(portstr, sizeof(portstr), "%d", srv->port);
    struct addrinfo hints = {
        .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *res = NULL;
    int gai = getaddrinfo(srv->host, portstr, &hints, &res);
    if (gai != 0)
        return bp_err_set(err, BP_ECONFIG, "bind address %s: %s", srv->host, gai_strerror(gai));

    int fd = -1, saved = 0;
    for (struct addrinfo *ai = res; ai != NULL; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd < 0) {
            saved = errno;
            continue;
        }
        int on = 1;
        /* REUSEADDR: a restarted pod must not wait out TIME_WAIT of its predecessor's port. */
        if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on)) == 0 &&
            setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on)) == 0 &&
            bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && listen(fd, SOMAXCONN) == 0)
            break;
        saved = errno;
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    if (fd < 0)
        return bp_err_set(err, BP_EIO, "cannot listen on %s:%d: %s", srv->host, srv->port, strerror(saved));

    struct sockaddr_storage ss;
    socklen_t sslen = sizeof(ss);
    if (getsockname(fd, (struct sockaddr *)&ss, &sslen) == 0) {
        if (ss.ss_family == AF_INET)
            srv->port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
        else if (ss.ss_family == AF_INET6)
            srv->port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    }
    return fd;
}

static void register_metrics(void)
{
    bp_metrics_register(M_REQUESTS, BP_METRIC_COUNTER, "HTTP requests by route and status.");
    bp_metrics_register(M_DURATION, BP_METRIC_HISTOGRAM,
                        "HTTP request latency by route, from routing to response.");
    bp_metrics_register(M_BUSY, BP_METRIC_GAUGE, "Worker threads running a handler.");
    bp_metrics_register(M_WAITING, BP_METRIC_GAUGE, "Requests queued for a worker.");
    bp_metrics_set(M_BUSY, "", 0);
    bp_metrics_set(M_WAITING, "", 0);
}

static void setup_h2o(server_t *srv)
{
    h2o_config_init(&srv->gconf);
    srv->gconf.max_request_entity_size = srv->body_max;
    srv->gconf.server_name = h2o_iovec_init(H2O_STRLIT("")); /* don't advertise the stack */
    srv->gconf.http1.upgrade_to_http2 = 0;                   /* DESIGN §4: HTTP/1.1 */

    h2o_hostconf_t *hostconf =
        h2o_config_register_host(&srv->gconf, h2o_iovec_init(H2O_STRLIT("default")), 65535);
    h2o_pathconf_t *pathconf = h2o_config_register_path(hostconf, "/", 0);
    dispatch_handler_t *h = (dispatch_handler_t *)h2o_create_handler(pathconf, sizeof(*h));
    h->super.on_req = on_req;
    h->srv = srv;
    h2o_pathconf_t *filtered[] = {pathconf, &hostconf->fallback_path};
    for (size_t i = 0; i < 2; i++) {
        error_filter_t *f = (error_filter_t *)h2o_create_filter(filtered[i], sizeof(*f));
        f->super.on_setup_ostream = on_setup_error_ostream;
        f->srv = srv;
    }

    srv->loop = h2o_evloop_create();
    h2o_context_init(&srv->ctx, srv->loop, &srv->gconf);
    srv->ctx_ready = true;
    srv->accept_ctx.ctx = &srv->ctx;
    srv->accept_ctx.hosts = srv->gconf.hosts;
    h2o_multithread_register_receiver(srv->ctx.queue, &srv->receiver, on_jobs_done);
    srv->receiver_ready = true;
}

static int start_workers(server_t *srv, bp_err_t *err)
{
    /* Signals go to the loop thread only: a worker in the middle of a libpq poll() should not
     * see EINTR because Kubernetes said SIGTERM. Workers inherit this mask. */
    sigset_t block, old;
    sigemptyset(&block);
    sigaddset(&block, SIGTERM);
    sigaddset(&block, SIGINT);
    pthread_sigmask(SIG_BLOCK, &block, &old);
    int rc = 0;
    for (int i = 0; i < srv->num_workers; i++) {
        int e = pthread_create(&srv->workers[i].tid, NULL, worker_main, &srv->workers[i]);
        if (e != 0) {
            rc = bp_err_set(err, BP_EIO, "cannot start worker thread: %s", strerror(e));
            break;
        }
        srv->workers[i].started = true;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return rc;
}

/* Joins every started worker; with a deadline (abandon) only those that return in time.
 * Returns whether all were joined. */
static bool join_workers(server_t *srv, bool abandon)
{
    pthread_mutex_lock(&srv->lock);
    srv->quit = true;
    srv->abandon = abandon;
    pthread_cond_broadcast(&srv->cond);
    pthread_mutex_unlock(&srv->lock);

    bool all = true;
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += ABANDON_JOIN_MS / 1000;
    for (int i = 0; i < srv->num_workers; i++) {
        if (!srv->workers[i].started)
            continue;
        int e = abandon ? pthread_timedjoin_np(srv->workers[i].tid, NULL, &until)
                        : pthread_join(srv->workers[i].tid, NULL);
        if (e == 0)
            srv->workers[i].started = false;
        else
            all = false;
    }
    return all;
}

int bp_http_serve(const bp_http_server_config_t *cfg, bp_err_t *err)
{
    server_t *srv = calloc(1, sizeof(*srv));
    if (srv == NULL)
        return bp_err_set(err, BP_ENOMEM, "out of memory");
    pthread_mutex_init(&srv->lock, NULL);
    pthread_cond_init(&srv->cond, NULL);
    int listen_fd = -1, pipefd[2] = {-1, -1};
    bool signals_set = false, timed_out = false;
    struct sigaction old_term, old_int, old_pipe;

    int rc = resolve_config(srv, cfg, err);
    if (rc != 0)
        goto out;
    register_metrics();
    listen_fd = open_listener(srv, err);
    if (listen_fd < 0) {
        rc = listen_fd;
        goto out;
    }

    srv->workers = calloc((size_t)srv->num_workers, sizeof(*srv->workers));
    if (srv->workers == NULL) {
        rc = bp_err_set(err, BP_ENOMEM, "out of memory");
        goto out;
    }
    for (int i = 0; i < srv->num_workers; i++) {
        srv->workers[i].srv = srv;
        if (cfg->worker_init == NULL)
            continue;
        bp_err_t werr = {0};
        srv->workers[i].wctx = cfg->worker_init(cfg->app, &werr);
        if (srv->workers[i].wctx == NULL && werr.code != 0) {
            rc = bp_err_set(err, werr.code, "worker %d: %s", i, werr.msg);
            goto out;
        }
    }

    if (pipe2(pipefd, O_CLOEXEC | O_NONBLOCK) != 0) {
        rc = bp_err_set(err, BP_EIO, "pipe: %s", strerror(errno));
        goto out;
    }
    setup_h2o(srv);
    srv->listener = h2o_evloop_socket_create(srv->loop, listen_fd, H2O_SOCKET_FLAG_DONT_READ);
    listen_fd = -1; /* owned by the h2o socket now */
    srv->listener->data = srv;
    h2o_socket_read_start(srv->listener, on_accept);
    srv->sigsock = h2o_evloop_socket_create(srv->loop, pipefd[0], 0);
    pipefd[0] = -1;
    srv->sigsock->data = srv;
    h2o_socket_read_start(srv->sigsock, on_signal_read);

    signal_pipe_wr = pipefd[1];
    struct sigaction sa = {.sa_handler = on_signal, .sa_flags = SA_RESTART};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, &old_term);
    sigaction(SIGINT, &sa, &old_int);
    /* A client that hangs up mid-response must cost an EPIPE, not the process. */
    struct sigaction ign = {.sa_handler = SIG_IGN};
    sigemptyset(&ign.sa_mask);
    sigaction(SIGPIPE, &ign, &old_pipe);
    signals_set = true;

    rc = start_workers(srv, err);
    if (rc != 0)
        goto out;

    char fields[256];
    snprintf(fields, sizeof(fields),
             "\"host\":\"%s\",\"port\":%d,\"workers\":%d,\"queue_max\":%zu,\"body_max\":%zu", srv->host,
             srv->port, srv->num_workers, srv->queue_max, srv->body_max);
    bp_log_fields(BP_LOG_INFO, fields, "listening on %s:%d", srv->host, srv->port);

    for (;;) {
        if (srv->stopping && srv->outstanding == 0 && h2o_linklist_is_empty(&srv->ctx.http1._conns))
            break;
        int32_t wait = 1000;
        if (srv->stopping) {
            uint64_t now = now_ns();
            if (now >= srv->drain_deadline_ns) {
                timed_out = true;
                break;
            }
            uint64_t left_ms = (srv->drain_deadline_ns - now) / 1000000u + 1;
            wait = left_ms < 100 ? (int32_t)left_ms : 100;
        }
        if (h2o_evloop_run(srv->loop, wait) != 0 && errno != EINTR) {
            bp_log(BP_LOG_ERROR, "event loop failed: %s", strerror(errno));
            begin_shutdown(srv);
        }
    }
    if (timed_out)
        bp_log(BP_LOG_WARNING, "drain deadline of %d ms passed with %zu requests in flight", srv->drain_ms,
               srv->outstanding);
    rc = 0;

out:
    if (signals_set) {
        sigaction(SIGTERM, &old_term, NULL);
        sigaction(SIGINT, &old_int, NULL);
        sigaction(SIGPIPE, &old_pipe, NULL);
        signal_pipe_wr = -1;
    }
    bool joined = srv->workers == NULL || join_workers(srv, timed_out);
    if (!joined) {
        /* A handler is stuck (a hung DB call, say). Its worker still points at srv and its
         * job, so leave all of it allocated; the caller is about to exit anyway. */
        bp_log(BP_LOG_WARNING, "worker(s) still inside a handler after the drain deadline; leaving them");
        if (pipefd[1] >= 0)
            close(pipefd[1]);
        return rc != 0 ? rc
                       : bp_err_set(err, BP_EBUSY,
                                    "drain deadline passed with handlers still running: exit now, "
                                    "without freeing what they use");
    }
    /* Jobs never picked up (abandoned queue) or never handed back cannot reach a client now. */
    while (srv->qhead != NULL) {
        job_t *job = srv->qhead;
        srv->qhead = job->next;
        if (job->ref != NULL)
            job->ref->job = NULL;
        job_free(job);
    }
    if (srv->workers != NULL) {
        for (int i = 0; i < srv->num_workers; i++)
            if (cfg->worker_free != NULL && srv->workers[i].wctx != NULL)
                cfg->worker_free(srv->workers[i].wctx);
        free(srv->workers);
    }
    if (srv->receiver_ready) {
        /* messages of jobs that finished after the deadline */
        h2o_linklist_t *messages = &srv->receiver._messages;
        while (!h2o_linklist_is_empty(messages)) {
            job_t *job = H2O_STRUCT_FROM_MEMBER(job_t, msg.link, messages->next);
            h2o_linklist_unlink(&job->msg.link);
            if (job->ref != NULL)
                job->ref->job = NULL;
            job_free(job);
        }
        h2o_multithread_unregister_receiver(srv->ctx.queue, &srv->receiver);
    }
    if (srv->listener != NULL)
        h2o_socket_close(srv->listener);
    if (srv->sigsock != NULL)
        h2o_socket_close(srv->sigsock);
    if (srv->ctx_ready && !timed_out) {
        /* With connections still open (drain timed out) their requests point into the
         * context; leave it to process exit rather than free it under them. */
        h2o_multithread_queue_t *queue = srv->ctx.queue;
        h2o_context_dispose(&srv->ctx);
#if H2O_VERSION_MAJOR == 2 && H2O_VERSION_MINOR == 2
        /* h2o 2.2.x's evloop h2o_multithread_destroy_queue closes the queue's pipe but never
         * frees the queue itself (fixed upstream later by adding free(queue)); without this,
         * LeakSanitizer fails every sanitizer test of a function. */
        free(queue);
#else
        (void)queue;
#endif
        h2o_evloop_run(srv->loop, 0); /* frees the sockets closed above */
        h2o_evloop_destroy(srv->loop);
        h2o_config_dispose(&srv->gconf);
    }
    if (srv->ctx_ready && timed_out)
        return rc;
    if (listen_fd >= 0)
        close(listen_fd);
    if (pipefd[0] >= 0)
        close(pipefd[0]);
    if (pipefd[1] >= 0)
        close(pipefd[1]);
    pthread_cond_destroy(&srv->cond);
    pthread_mutex_destroy(&srv->lock);
    free(srv);
    return rc;
}
