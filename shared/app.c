#include "app.h"

#include <curl/curl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "db/migrate.h"
#include "log.h"
#include "metrics.h"
#include "outbox.h"
#include "retention.h"
#include "timefmt.h"

#define READY_CHECK_MS 500
#define OUTBOX_BATCH 100
#define PRUNE_MS (10 * 60 * 1000)
#define PRUNE_BATCH 10000

int bp_app_init(bp_app_t *app, const char *service, bp_err_t *err)
{
    memset(app, 0, sizeof(*app));
    app->service = service;
    bp_app_source(service, app->source, sizeof(app->source));
    bp_log_init(service);
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != 0)
        return bp_err_set(err, BP_EINTERNAL, "curl_global_init failed");
    int rc = bp_config_load(getenv("BIZPULSE_METRICS"), &app->config, err);
    if (rc != 0)
        return rc;
    const char *sink = getenv("K_SINK");
    app->sink_url = sink != NULL && sink[0] != '\0' ? sink : NULL;
    long period;
    if ((rc = bp_config_env_int("BIZPULSE_BACKGROUND_MS", 2000, 100, 3600000, &period, err)) != 0)
        return rc;
    app->period_ms = (int)period;
    long days;
    if ((rc = bp_config_env_int("BIZPULSE_RETENTION_DAYS", 7, 1, 3650, &days, err)) != 0)
        return rc;
    app->retention_days = (int)days;
    atomic_init(&app->ready, false);
    atomic_init(&app->stop, false);
    bp_metrics_register("bizpulse_db_errors_total", BP_METRIC_COUNTER, "Database errors by kind.");
    bp_metrics_register("bizpulse_events_in_total", BP_METRIC_COUNTER,
                        "CloudEvents received, by type and result.");
    bp_metrics_register("bizpulse_events_out_total", BP_METRIC_COUNTER,
                        "CloudEvents sent from the outbox, by result.");
    bp_metrics_register("bizpulse_ready", BP_METRIC_GAUGE, "1 when the database is reachable and migrated.");
    return 0;
}

void bp_app_free(bp_app_t *app)
{
    bp_config_free(app->config);
    app->config = NULL;
    curl_global_cleanup();
}

void bp_app_source(const char *service, char *out, size_t outsz)
{
    snprintf(out, outsz, "/bizpulse/%s", service);
}

bp_worker_t *bp_worker_new(bp_app_t *app, bp_err_t *err)
{
    bp_worker_t *w = calloc(1, sizeof(*w));
    if (w == NULL || (w->db = bp_db_new()) == NULL || (w->client = bp_http_client_new()) == NULL) {
        bp_worker_free(w);
        bp_err_set(err, BP_ENOMEM, "out of memory creating a worker");
        return NULL;
    }
    w->app = app;
    return w;
}

void bp_worker_free(bp_worker_t *w)
{
    if (w == NULL)
        return;
    bp_db_free(w->db);
    bp_http_client_free(w->client);
    free(w);
}

void bp_worker_flush_outbox(bp_worker_t *w)
{
    if (w->app->sink_url == NULL)
        return;
    bp_err_t err;
    bp_err_clear(&err);
    if (bp_outbox_flush(w->db, w->client, w->app->sink_url, w->app->source, OUTBOX_BATCH, NULL, &err) != 0)
        bp_log(BP_LOG_WARNING, "outbox flush failed: %s", err.msg);
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* The outbox and the dedup table only grow: each replica trims what is older than
 * BIZPULSE_RETENTION_DAYS now and then, in bounded deletes. */
static void prune(bp_worker_t *w)
{
    long sent = 0, seen = 0;
    bp_err_t err;
    bp_err_clear(&err);
    if (bp_retention_prune(w->db, w->app->retention_days, PRUNE_BATCH, &sent, &seen, &err) != 0)
        bp_log(BP_LOG_WARNING, "pruning old events failed: %s", err.msg);
    else if (sent + seen > 0)
        bp_log(BP_LOG_INFO, "pruned %ld sent and %ld received events older than %d days", sent, seen,
               w->app->retention_days);
}

/* Connects and migrates (retrying: in Knative the database, or the Cloud SQL proxy sidecar,
 * may come up after us), then keeps `ready` current and flushes the outbox. */
static void *background(void *arg)
{
    bp_app_t *app = arg;
    bp_err_t err;
    bp_worker_t *w = bp_worker_new(app, &err);
    if (w == NULL) {
        bp_log(BP_LOG_ERROR, "background thread: %s", err.msg);
        return NULL;
    }
    bool migrated = false, was_ready = false;
    int since_flush = app->period_ms, since_prune = PRUNE_MS; /* prune once at start */
    char last_error[BP_ERR_MSG_SIZE] = "";
    while (!atomic_load(&app->stop)) {
        bp_err_clear(&err);
        bool ready = false;
        int rc;
        if (!migrated) {
            rc = bp_db_migrate_run(w->db, false, NULL, &err);
            migrated = rc == 0;
        }
        if (migrated) {
            int version = 0;
            rc = bp_db_migrate_current(w->db, &version, &err);
            /* A newer schema is fine: migrations stay backward compatible, and during a rolling
             * deploy the old revision keeps serving after the new one migrated. */
            ready = rc == 0 && version >= bp_db_migrate_latest();
            if (rc == 0 && !ready)
                bp_err_set(&err, BP_EINTERNAL, "schema version %d, this binary expects %d", version,
                           bp_db_migrate_latest());
        }
        if (ready != was_ready || (!ready && strcmp(last_error, err.msg) != 0)) {
            if (ready)
                bp_log(BP_LOG_INFO, "ready: database reachable, schema at version %d",
                       bp_db_migrate_latest());
            else
                bp_log(BP_LOG_WARNING, "not ready: %s", err.msg);
            snprintf(last_error, sizeof(last_error), "%s", err.msg);
        }
        was_ready = ready;
        atomic_store(&app->ready, ready);
        bp_metrics_set("bizpulse_ready", "", ready ? 1 : 0);
        since_flush += READY_CHECK_MS;
        if (ready && since_flush >= app->period_ms) {
            since_flush = 0;
            bp_worker_flush_outbox(w);
            if (app->periodic != NULL)
                app->periodic(w);
        }
        since_prune += READY_CHECK_MS;
        if (ready && since_prune >= PRUNE_MS) {
            since_prune = 0;
            prune(w);
        }
        for (int t = 0; t < READY_CHECK_MS && !atomic_load(&app->stop); t += 50)
            sleep_ms(50);
    }
    bp_worker_free(w);
    return NULL;
}

static void *worker_init(void *app, bp_err_t *err)
{
    return bp_worker_new(app, err);
}

static void worker_free(void *wctx)
{
    bp_worker_free(wctx);
}

static void after_response(void *wctx)
{
    bp_worker_flush_outbox(wctx);
}

static bool is_ready(void *app)
{
    return atomic_load(&((bp_app_t *)app)->ready);
}

int bp_app_serve(bp_app_t *app, const bp_http_route_t *routes, size_t num_routes, bp_err_t *err)
{
    bp_http_server_config_t cfg = {
        .service = app->service,
        .host = getenv("BIZPULSE_HOST"),
        .routes = routes,
        .num_routes = num_routes,
        .app = app,
        .worker_init = worker_init,
        .worker_free = worker_free,
        .after_response = after_response,
        .ready = is_ready,
    };
    if (pthread_create(&app->bg, NULL, background, app) != 0)
        return bp_err_set(err, BP_EINTERNAL, "cannot start the background thread");
    app->bg_started = true;
    int rc = bp_http_serve(&cfg, err);
    atomic_store(&app->stop, true);
    if (rc == BP_EBUSY)
        return rc; /* handlers still run: nothing may be joined or freed (see the header) */
    pthread_join(app->bg, NULL);
    app->bg_started = false;
    return rc;
}

int bp_app_parse_range(const char *from_s, const char *to_s, int64_t now, int64_t *from, int64_t *to,
                       bp_err_t *err)
{
    bp_err_t e;
    if (from_s == NULL || to_s == NULL)
        return bp_err_set(err, BP_EINVAL, "'from' and 'to' are required (RFC 3339, or relative such as -2h)");
    if (bp_time_parse_rel(from_s, now, from, &e) != 0)
        return bp_err_set(err, BP_EINVAL, "'from': %s", e.msg);
    if (bp_time_parse_rel(to_s, now, to, &e) != 0)
        return bp_err_set(err, BP_EINVAL, "'to': %s", e.msg);
    if (*from >= *to)
        return bp_err_set(err, BP_EINVAL, "'from' (%.40s) must be before 'to' (%.40s)", from_s, to_s);
    if (*to - *from > 366LL * 86400)
        return bp_err_set(err, BP_EINVAL, "range longer than 366 days: split it");
    return 0;
}

int bp_app_metric_range_args(const bp_app_t *app, int argc, char **argv, int64_t now, const bp_metric_t **m,
                             int64_t *from, int64_t *to, bp_err_t *err)
{
    const char *metric = NULL, *from_s = NULL, *to_s = NULL;
    for (int i = 2; i < argc; i += 2) {
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(argv[i], "--metric") == 0 && v != NULL)
            metric = v;
        else if (strcmp(argv[i], "--from") == 0 && v != NULL)
            from_s = v;
        else if (strcmp(argv[i], "--to") == 0 && v != NULL)
            to_s = v;
        else
            return bp_err_set(err, BP_EINVAL, "unexpected '%s': give --metric M --from T1 --to T2", argv[i]);
    }
    *m = bp_config_find(app->config, metric);
    if (*m == NULL)
        return bp_err_set(err, BP_EINVAL, "--metric '%s' is not in %s", metric ? metric : "",
                          app->config->path);
    return bp_app_parse_range(from_s, to_s, now, from, to, err);
}

int bp_app_migrate(bp_err_t *err)
{
    bp_db_t *db = bp_db_new();
    if (db == NULL)
        return bp_err_set(err, BP_ENOMEM, "out of memory");
    int applied = 0;
    int rc = bp_db_connect_wait(db, 30000, err);
    if (rc == 0)
        rc = bp_db_migrate_run(db, true, &applied, err);
    if (rc == 0)
        printf("{\"status\":\"ok\",\"applied\":%d,\"version\":%d}\n", applied, bp_db_migrate_latest());
    bp_db_free(db);
    return rc;
}

bool bp_app_authorized(const bp_http_request_t *req, const char *token)
{
    if (token == NULL || token[0] == '\0')
        return true;
    const char *h = bp_http_header(req, "authorization");
    if (h == NULL || strncasecmp(h, "Bearer ", 7) != 0)
        return false;
    return bp_app_token_equal(h + 7, token);
}

bool bp_app_token_equal(const char *given, const char *token)
{
    size_t n = strlen(token), m = strlen(given);
    /* Compare every byte whatever the lengths, so timing says nothing about the token. */
    unsigned char diff = (unsigned char)(n != m);
    for (size_t i = 0; i < n; i++)
        diff |= (unsigned char)(token[i] ^ (i < m ? given[i] : 0));
    return diff == 0;
}
