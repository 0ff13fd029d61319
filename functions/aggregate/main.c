/*
 * bizpulse-aggregate: turns business_events into per-interval metrics (DESIGN §6).
 *
 *   bizpulse-aggregate [serve]       HTTP: POST / from Cloud Scheduler or a PingSource;
 *                                    POST /run {"metric","from","to"} recomputes a range
 *   bizpulse-aggregate tick          one tick now, result as JSON on stdout
 *   bizpulse-aggregate backfill --metric M --from T1 --to T2   recompute a range (RFC 3339)
 *   bizpulse-aggregate migrate       apply schema migrations and exit
 *   bizpulse-aggregate check-config  validate BIZPULSE_METRICS (or the file given) and exit
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "aggregate.h"
#include "app.h"
#include "cloudevents.h"
#include "json.h"
#include "log.h"
#include "metrics.h"
#include "timefmt.h"

/* Which trigger woke us, as text for the emitted events; BP_EINVAL when the request is none of
 * the accepted triggers. */
static int describe_trigger(const bp_http_request_t *req, char *out, size_t outsz, bp_err_t *err)
{
    const char *job = bp_http_header(req, "x-cloudscheduler-jobname");
    if (job != NULL) {
        const char *at = bp_http_header(req, "x-cloudscheduler-scheduletime");
        snprintf(out, outsz, "scheduler:%.100s@%.40s", job, at ? at : "");
        return 0;
    }
    bp_ce_t ev;
    bp_err_t why;
    int rc = bp_ce_decode(req->headers, req->num_headers, req->body, req->body_len, &ev, &why);
    if (rc != 0)
        return bp_err_set(err, rc,
                          "expected a Cloud Scheduler POST (X-CloudScheduler-JobName header) or a PingSource "
                          "CloudEvent: %s",
                          why.msg);
    if (strcmp(ev.type, BP_CE_TYPE_PING) != 0) {
        rc = bp_err_set(err, BP_EINVAL, "CloudEvent type '%.80s' does not trigger aggregation (expected %s)",
                        ev.type, BP_CE_TYPE_PING);
    } else {
        snprintf(out, outsz, "ping:%.100s", ev.id);
    }
    bp_ce_clear(&ev);
    return rc;
}

/* With BIZPULSE_SCHEDULER_TOKEN set (aggregate reachable from outside the cluster for Cloud
 * Scheduler), every trigger must carry it: as a bearer token, or in X-Bizpulse-Scheduler-Token for
 * scheduler jobs that already use Authorization for OIDC. */
static bool scheduler_authorized(const bp_http_request_t *req)
{
    const char *token = getenv("BIZPULSE_SCHEDULER_TOKEN");
    if (token == NULL || token[0] == '\0')
        return true;
    const char *h = bp_http_header(req, "x-bizpulse-scheduler-token");
    if (h != NULL && bp_app_token_equal(h, token))
        return true;
    return bp_app_authorized(req, token);
}

static void handle_tick(void *wctx, const bp_http_request_t *req, bp_http_response_t *res)
{
    bp_worker_t *w = wctx;
    bp_err_t err;
    bp_err_clear(&err);
    char trigger[200];
    bp_agg_options_t opts;
    if (!scheduler_authorized(req)) {
        bp_http_respond_error(
            res, 401, "unauthorized",
            "this aggregate requires the scheduler token: send Authorization: Bearer <token> or "
            "X-Bizpulse-Scheduler-Token: <token>");
        return;
    }
    if (describe_trigger(req, trigger, sizeof(trigger), &err) != 0 ||
        bp_agg_options_from_env(&opts, &err) != 0) {
        bp_http_respond_err(res, &err);
        return;
    }
    opts.trigger = trigger;
    bp_buf_t out;
    bp_buf_init(&out, 1 << 20);
    int rc = bp_buf_appendf(&out, "{\"status\":\"ok\",\"metrics\":");
    if (rc == 0)
        rc = bp_agg_tick(w, &opts, &out, &err);
    if (rc == 0)
        rc = bp_buf_append(&out, "}", 1);
    bp_http_respond_outcome(res, rc, out.base, &err);
    bp_buf_free(&out);
}

/* Manual recompute of one metric's range, e.g. after fixing events in the source table. With
 * BIZPULSE_ADMIN_TOKEN set it needs that bearer token. */
static void handle_run(void *wctx, const bp_http_request_t *req, bp_http_response_t *res)
{
    bp_worker_t *w = wctx;
    bp_err_t err;
    bp_err_clear(&err);
    if (!bp_app_authorized(req, getenv("BIZPULSE_ADMIN_TOKEN"))) {
        bp_http_respond_error(res, 401, "unauthorized",
                              "POST /run needs Authorization: Bearer <BIZPULSE_ADMIN_TOKEN>");
        return;
    }
    cJSON *body = NULL;
    bp_agg_options_t opts;
    int64_t from = 0, to = 0;
    const bp_metric_t *m = NULL;
    bp_buf_t out;
    bp_buf_init(&out, 1 << 16);
    int rc = bp_json_parse(req->body, req->body_len, &body, &err);
    if (rc == 0 && !cJSON_IsObject(body))
        rc = bp_err_set(&err, BP_EINVAL, "body must be a JSON object {\"metric\":..,\"from\":..,\"to\":..}");
    if (rc == 0 && bp_json_str(body, "metric") == NULL)
        rc = bp_err_set(&err, BP_EINVAL, "field 'metric' (string) is required");
    if (rc == 0 && (m = bp_config_find(w->app->config, bp_json_str(body, "metric"))) == NULL)
        rc = bp_err_set(&err, BP_ENOTFOUND, "unknown metric '%.100s'", bp_json_str(body, "metric"));
    if (rc == 0)
        rc = bp_agg_options_from_env(&opts, &err);
    if (rc == 0)
        rc = bp_app_parse_range(bp_json_str(body, "from"), bp_json_str(body, "to"), opts.now, &from, &to,
                                &err);
    if (rc == 0) {
        opts.trigger = "run";
        rc = bp_buf_appendf(&out, "{\"status\":\"ok\",\"result\":");
    }
    if (rc == 0)
        rc = bp_agg_backfill(w, m, from, to, &opts, &out, &err);
    if (rc == 0)
        rc = bp_buf_append(&out, "}", 1);
    bp_http_respond_outcome(res, rc, out.base, &err);
    bp_buf_free(&out);
    cJSON_Delete(body);
}

static const bp_http_route_t routes[] = {
    {"POST", "/", "tick", handle_tick},
    {"POST", "/run", "run", handle_run},
};

static int cmd_tick(bp_app_t *app, bp_err_t *err)
{
    bp_worker_t *w = bp_worker_new(app, err);
    if (w == NULL)
        return err->code;
    bp_agg_options_t opts;
    bp_buf_t out;
    bp_buf_init(&out, 1 << 20);
    int rc = bp_agg_options_from_env(&opts, err);
    if (rc == 0) {
        opts.trigger = "cli";
        rc = bp_db_connect_wait(w->db, 10000, err);
    }
    if (rc == 0)
        rc = bp_agg_tick(w, &opts, &out, err);
    if (rc == 0) {
        printf("%s\n", out.base);
        bp_worker_flush_outbox(w);
    }
    bp_buf_free(&out);
    bp_worker_free(w);
    return rc;
}

static int cmd_backfill(bp_app_t *app, int argc, char **argv, bp_err_t *err)
{
    const bp_metric_t *m = NULL;
    bp_agg_options_t opts;
    int64_t from, to;
    int rc = bp_agg_options_from_env(&opts, err);
    if (rc == 0)
        rc = bp_app_metric_range_args(app, argc, argv, opts.now, &m, &from, &to, err);
    if (rc != 0)
        return rc;
    opts.trigger = "cli";
    bp_worker_t *w = bp_worker_new(app, err);
    if (w == NULL)
        return err->code;
    bp_buf_t out;
    bp_buf_init(&out, 1 << 16);
    rc = bp_db_connect_wait(w->db, 10000, err);
    if (rc == 0)
        rc = bp_agg_backfill(w, m, from, to, &opts, &out, err);
    if (rc == 0) {
        printf("%s\n", out.base);
        bp_worker_flush_outbox(w);
    }
    bp_buf_free(&out);
    bp_worker_free(w);
    return rc;
}

static void usage(FILE *f)
{
    fputs("usage: bizpulse-aggregate [COMMAND]\n"
          "  serve                                    HTTP server (default): POST / (Cloud Scheduler or\n"
          "                                           PingSource), POST /run, /healthz, /readyz, /metrics\n"
          "  tick                                     one tick now; JSON result on stdout\n"
          "  backfill --metric M --from T1 --to T2    recompute a range (RFC 3339 or -2h)\n"
          "  migrate                                  apply the schema migrations and exit\n"
          "  check-config [FILE]                      validate the metrics file (default $BIZPULSE_METRICS)\n"
          "Configuration is environment only; see README.md.\n",
          f);
}

int main(int argc, char **argv)
{
    const char *cmd = argc > 1 ? argv[1] : "serve";
    if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 || strcmp(cmd, "help") == 0) {
        usage(stdout);
        return 0;
    }
    bp_err_t err;
    bp_err_clear(&err);
    bp_log_init("aggregate");
    bp_metrics_register("bizpulse_aggregate_intervals_total", BP_METRIC_COUNTER, "Intervals recomputed.");
    bp_metrics_register("bizpulse_aggregate_changed_total", BP_METRIC_COUNTER,
                        "Intervals whose stored value was new or changed.");
    bp_metrics_register("bizpulse_aggregate_series_folded_total", BP_METRIC_COUNTER,
                        "Dimension series folded into 'other' by the cardinality cap (per window).");
    int rc;
    if (strcmp(cmd, "migrate") == 0) {
        rc = bp_app_migrate(&err);
    } else if (strcmp(cmd, "check-config") == 0) {
        bp_config_t *cfg = NULL;
        rc = bp_config_load(argc > 2 ? argv[2] : getenv("BIZPULSE_METRICS"), &cfg, &err);
        if (rc == 0)
            printf("%s: %zu metric(s) OK\n", cfg->path, cfg->num_metrics);
        bp_config_free(cfg);
    } else if (strcmp(cmd, "serve") == 0 || strcmp(cmd, "tick") == 0 || strcmp(cmd, "backfill") == 0) {
        bp_app_t app;
        rc = bp_app_init(&app, "aggregate", &err);
        if (rc == 0 && strcmp(cmd, "tick") == 0)
            rc = cmd_tick(&app, &err);
        else if (rc == 0 && strcmp(cmd, "backfill") == 0)
            rc = cmd_backfill(&app, argc, argv, &err);
        else if (rc == 0)
            rc = bp_app_serve(&app, routes, sizeof(routes) / sizeof(routes[0]), &err);
        if (rc == BP_EBUSY) { /* a handler outlived the drain deadline and still uses app: leave now */
            bp_log(BP_LOG_ERROR, "%s", err.msg);
            _exit(1);
        }
        bp_app_free(&app);
    } else {
        usage(stderr);
        return 2;
    }
    bp_metrics_free();
    if (rc != 0) {
        bp_log(BP_LOG_ERROR, "%s: %s", cmd, err.msg);
        fprintf(stderr, "bizpulse-aggregate %s: %s\n", cmd, err.msg);
        return 1;
    }
    return 0;
}
