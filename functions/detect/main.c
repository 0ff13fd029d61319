/*
 * bizpulse-detect: scores aggregated points and drives incidents (DESIGN §6).
 *
 *   bizpulse-detect [serve]                HTTP: POST / with dev.bizpulse.metrics.aggregated.v1,
 *                                          GET /incidents?status=&metric=&limit=,
 *                                          POST /incidents/<id>/ack
 *   bizpulse-detect score --csv FILE|-     timestamp,value rows in; timestamp,value,anomaly_score out
 *   bizpulse-detect backtest --metric M --from T1 --to T2   incidents detection would have opened
 *   bizpulse-detect migrate                apply schema migrations and exit
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "app.h"
#include "backtest.h"
#include "cloudevents.h"
#include "detect.h"
#include "incidents_api.h"
#include "log.h"
#include "metrics.h"
#include "score_csv.h"
#include "timefmt.h"

static void handle_event(void *wctx, const bp_http_request_t *req, bp_http_response_t *res)
{
    bp_worker_t *w = wctx;
    bp_err_t err;
    bp_err_clear(&err);
    bp_ce_t ev;
    bp_detect_options_t opts;
    if (bp_ce_decode(req->headers, req->num_headers, req->body, req->body_len, &ev, &err) != 0) {
        bp_metrics_inc("bizpulse_events_in_total", "type=\"invalid\",result=\"rejected\"");
        bp_http_respond_err(res, &err);
        return;
    }
    bp_buf_t out;
    bp_buf_init(&out, 1 << 16);
    int rc = bp_detect_options_from_env(&opts, &err);
    if (rc == 0)
        rc = bp_detect_handle(w, &ev, &opts, &out, &err);
    bp_http_respond_outcome(res, rc, out.base, &err);
    bp_buf_free(&out);
    bp_ce_clear(&ev);
}

static const bp_http_route_t routes[] = {
    {"POST", "/", "event", handle_event},
    {"GET", "/incidents", "incidents", bp_incidents_list},
    {"POST", "/incidents/", "incident_ack", bp_incidents_ack},
};

static int cmd_backtest(bp_app_t *app, int argc, char **argv, bp_err_t *err)
{
    const bp_metric_t *m = NULL;
    bp_detect_options_t opts;
    int64_t from, to;
    int rc = bp_detect_options_from_env(&opts, err);
    if (rc == 0)
        rc = bp_app_metric_range_args(app, argc, argv, opts.now, &m, &from, &to, err);
    if (rc != 0)
        return rc;
    bp_worker_t *w = bp_worker_new(app, err);
    if (w == NULL)
        return err->code;
    bp_buf_t out;
    bp_buf_init(&out, 16u << 20);
    rc = bp_db_connect_wait(w->db, 10000, err);
    if (rc == 0)
        rc = bp_backtest_run(w, m, from, to, &opts, &out, err);
    if (rc == 0)
        printf("%s\n", out.base);
    bp_buf_free(&out);
    bp_worker_free(w);
    return rc;
}

static void usage(FILE *f)
{
    fputs(
        "usage: bizpulse-detect [COMMAND]\n"
        "  serve                                    HTTP server (default): POST / (metrics.aggregated\n"
        "                                           events), GET /incidents, POST /incidents/<id>/ack\n"
        "  score --csv FILE|-                       timestamp,value in; timestamp,value,anomaly_score out\n"
        "  backtest --metric M --from T1 --to T2    incidents detection would have opened over stored data\n"
        "  migrate                                  apply the schema migrations and exit\n"
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
    bp_log_init("detect");
    bp_metrics_register("bizpulse_detect_points_scored_total", BP_METRIC_COUNTER, "Points scored.");
    bp_metrics_register("bizpulse_detect_anomalies_total", BP_METRIC_COUNTER, "Points found anomalous.");
    bp_metrics_register("bizpulse_incidents_total", BP_METRIC_COUNTER, "Incident state changes.");
    int rc;
    if (strcmp(cmd, "migrate") == 0) {
        rc = bp_app_migrate(&err);
    } else if (strcmp(cmd, "score") == 0) {
        if (argc != 4 || strcmp(argv[2], "--csv") != 0) {
            fprintf(stderr, "usage: bizpulse-detect score --csv FILE|-\n");
            return 2;
        }
        rc = bp_score_csv(argv[3], stdout, &err);
    } else if (strcmp(cmd, "serve") == 0 || strcmp(cmd, "backtest") == 0) {
        bp_app_t app;
        rc = bp_app_init(&app, "detect", &err);
        bp_detect_options_t check;
        if (rc == 0) /* refuse bad settings now, not with a 400 on every event later */
            rc = bp_detect_options_from_env(&check, &err);
        if (rc == 0 && strcmp(cmd, "backtest") == 0)
            rc = cmd_backtest(&app, argc, argv, &err);
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
        fprintf(stderr, "bizpulse-detect %s: %s\n", cmd, err.msg);
        return 1;
    }
    return 0;
}
