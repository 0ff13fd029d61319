/*
 * app: what the three functions' `serve` mode has in common, so each main.c only lists its
 * routes: loading the metrics file, the per-worker context (a DB connection and an HTTP client
 * for the outbox), a background thread that connects and migrates the database (retrying with
 * backoff, so the process starts and answers /healthz while PostgreSQL is still coming up),
 * keeps /readyz current, and flushes the outbox every few seconds; and the HTTP server.
 *
 * Ownership: bp_app_t is owned by main (stack); bp_app_free releases what init loaded.
 * Threads: the app struct is read-only after init except `ready` (atomic).
 */
#ifndef BP_APP_H
#define BP_APP_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "config.h"
#include "db/conn.h"
#include "err.h"
#include "http/client.h"
#include "http/server.h"

typedef struct st_bp_app_t bp_app_t;

/* One worker thread's private context (also used by CLI subcommands on the main thread). */
typedef struct st_bp_worker_t {
    bp_app_t *app;
    bp_db_t *db;
    bp_http_client_t *client;
} bp_worker_t;

struct st_bp_app_t {
    const char *service;  /* "aggregate", "detect", "render" */
    bp_config_t *config;  /* the metrics file; owned */
    const char *sink_url; /* K_SINK, or NULL: events then wait in the outbox */
    char source[64];      /* CloudEvents source of what this function emits: "/bizpulse/<service>" */
    void *fn;             /* the function's own state, owned by main.c */
    /* Runs on the background thread after each outbox flush (e.g. render retries email);
     * may be NULL. */
    void (*periodic)(bp_worker_t *w);
    int period_ms;      /* background period; default 2000 (BIZPULSE_BACKGROUND_MS) */
    int retention_days; /* sent and received events kept this long (BIZPULSE_RETENTION_DAYS, 7) */
    atomic_bool ready;
    atomic_bool stop;
    pthread_t bg;
    bool bg_started;
};

/* The CloudEvents `source` of a function's events: "/bizpulse/<service>". */
void bp_app_source(const char *service, char *out, size_t outsz);

/* Sets up logging and libcurl, reads BIZPULSE_METRICS (required) and K_SINK. Returns 0 or
 * BP_ECONFIG/BP_EIO with err. */
int bp_app_init(bp_app_t *app, const char *service, bp_err_t *err);

/* Starts the background thread, serves routes until SIGTERM, stops the thread. Returns what
 * bp_http_serve returns; on BP_EBUSY (drain deadline passed, handlers still running) the caller
 * must _exit at once, without bp_app_free. */
int bp_app_serve(bp_app_t *app, const bp_http_route_t *routes, size_t num_routes, bp_err_t *err);

void bp_app_free(bp_app_t *app);

/* Creates a worker context (connects lazily). NULL with err on allocation failure. */
bp_worker_t *bp_worker_new(bp_app_t *app, bp_err_t *err);
void bp_worker_free(bp_worker_t *w); /* NULL-safe */

/* Sends what the outbox holds (up to 100 events); failures are logged, not returned. */
void bp_worker_flush_outbox(bp_worker_t *w);

/* A time range given by a user: RFC 3339 or relative to now ("-2h", "now"), from before to, at
 * most 366 days apart. BP_EINVAL with err naming 'from' or 'to'. */
int bp_app_parse_range(const char *from_s, const char *to_s, int64_t now, int64_t *from, int64_t *to,
                       bp_err_t *err);

/* The `--metric M --from T1 --to T2` arguments of a CLI subcommand (argv[2..]): the metric must
 * be declared in app's metrics file. BP_EINVAL with err saying which argument is wrong. */
int bp_app_metric_range_args(const bp_app_t *app, int argc, char **argv, int64_t now, const bp_metric_t **m,
                             int64_t *from, int64_t *to, bp_err_t *err);

/* The `migrate` subcommand of every binary: connects (waiting up to 30 s for the database),
 * applies pending migrations, prints {"status":"ok","applied":N,"version":V} on stdout. */
int bp_app_migrate(bp_err_t *err);

/* Checks `Authorization: Bearer <token>` against token in constant time. A NULL or empty
 * token means no check (returns true). */
bool bp_app_authorized(const bp_http_request_t *req, const char *token);

/* given == token, in time that depends only on the token's length. */
bool bp_app_token_equal(const char *given, const char *token);

#endif
