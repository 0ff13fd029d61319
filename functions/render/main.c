/*
 * bizpulse-render: charts and incident reports (DESIGN §6 render).
 *
 *   bizpulse-render [serve]                                    HTTP server (routes.h)
 *   bizpulse-render chart --metric M [--from T] [--to T] [--width W] [--height H] -o FILE.png
 *   bizpulse-render report --incident ID -o FILE.pdf
 *
 * The subcommands call the same render.h functions as the HTTP routes. Environment: see
 * bp_app_init (BIZPULSE_METRICS, the PG variables or DATABASE_URL) and bp_render_init
 * (BIZPULSE_REPORT_DIR, BIZPULSE_PUBLIC_URL, BIZPULSE_RENDER_TOKEN).
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app.h"
#include "chart.h"
#include "log.h"
#include "render.h"
#include "routes.h"
#include "timefmt.h"

#define CLI_CONNECT_MS 10000

static const bp_http_route_t routes[] = {
    {"GET", "/charts/", "charts", bp_render_route_chart},
    {"GET", "/reports/", "reports", bp_render_route_report},
    {"POST", "/", "events", bp_render_route_event},
};

static void usage(FILE *f)
{
    fprintf(
        f,
        "usage: bizpulse-render [serve]\n"
        "       bizpulse-render chart --metric M [--from T] [--to T] [--width W] [--height H] -o FILE.png\n"
        "       bizpulse-render report --incident ID -o FILE.pdf\n"
        "T is RFC 3339 (2026-11-25T14:05:00Z) or relative (-24h, -30m, -7d, now).\n");
}

typedef struct st_cli_t {
    const char *metric, *from, *to, *output;
    int width, height;
    long long incident;
} cli_t;

static int parse_cli(int argc, char **argv, cli_t *cli)
{
    static const struct option opts[] = {
        {"metric", required_argument, NULL, 'm'},
        {"from", required_argument, NULL, 'f'},
        {"to", required_argument, NULL, 't'},
        {"width", required_argument, NULL, 'W'},
        {"height", required_argument, NULL, 'H'},
        {"incident", required_argument, NULL, 'i'},
        {"output", required_argument, NULL, 'o'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int c;
    while ((c = getopt_long(argc, argv, "o:h", opts, NULL)) != -1) {
        switch (c) {
        case 'm':
            cli->metric = optarg;
            break;
        case 'f':
            cli->from = optarg;
            break;
        case 't':
            cli->to = optarg;
            break;
        case 'W':
            cli->width = atoi(optarg);
            break;
        case 'H':
            cli->height = atoi(optarg);
            break;
        case 'i':
            cli->incident = strtoll(optarg, NULL, 10);
            break;
        case 'o':
            cli->output = optarg;
            break;
        case 'h':
            usage(stdout);
            exit(0);
        default:
            return -1;
        }
    }
    return optind == argc && cli->output != NULL ? 0 : -1;
}

static int run_chart(bp_worker_t *w, const cli_t *cli, bp_err_t *err)
{
    if (cli->metric == NULL)
        return bp_err_set(err, BP_EINVAL, "chart needs --metric");
    if (bp_config_find(w->app->config, cli->metric) == NULL)
        return bp_err_set(err, BP_ENOTFOUND, "unknown metric '%s' (not in %s)", cli->metric,
                          w->app->config->path);
    int64_t from, to;
    int rc = bp_render_parse_range(cli->from, cli->to, bp_time_now(), &from, &to, err);
    bp_buf_t png;
    bp_buf_init(&png, BP_RENDER_PNG_MAX);
    if (rc == 0)
        rc = bp_db_connect_wait(w->db, CLI_CONNECT_MS, err);
    if (rc == 0)
        rc = bp_render_chart_png(w, cli->metric, from, to, cli->width, cli->height, &png, err);
    if (rc == 0)
        rc = bp_render_write_file(cli->output, png.base, png.len, err);
    bp_buf_free(&png);
    return rc;
}

static int run_report(bp_worker_t *w, const cli_t *cli, bp_err_t *err)
{
    if (cli->incident <= 0)
        return bp_err_set(err, BP_EINVAL, "report needs --incident ID (a positive integer)");
    bp_store_incident_t inc = {0};
    bp_buf_t pdf;
    bp_buf_init(&pdf, BP_RENDER_PDF_MAX);
    int rc = bp_db_connect_wait(w->db, CLI_CONNECT_MS, err);
    if (rc == 0)
        rc = bp_store_load_incident(w->db, cli->incident, &inc, err);
    if (rc == 0)
        rc = bp_render_report_pdf(w, w->app->fn, &inc,
                                  strcmp(inc.status, "resolved") == 0 ? "resolved" : "opened", &pdf, err);
    if (rc == 0)
        rc = bp_render_write_file(cli->output, pdf.base, pdf.len, err);
    bp_store_incident_clear(&inc);
    bp_buf_free(&pdf);
    return rc;
}

int main(int argc, char **argv)
{
    const char *cmd = argc > 1 && argv[1][0] != '-' ? argv[1] : "serve";
    bool serve = strcmp(cmd, "serve") == 0;
    if (!serve && strcmp(cmd, "chart") != 0 && strcmp(cmd, "report") != 0) {
        usage(stderr);
        return 2;
    }
    cli_t cli = {0};
    if (!serve && parse_cli(argc - 1, argv + 1, &cli) != 0) {
        usage(stderr);
        return 2;
    }

    bp_app_t app;
    bp_render_t render;
    bp_err_t err;
    bp_err_clear(&err);
    int rc = bp_app_init(&app, "render", &err);
    if (rc == 0)
        rc = bp_render_init(&render, &err);
    app.fn = &render;
    if (rc == 0 && serve) {
        rc = bp_app_serve(&app, routes, sizeof(routes) / sizeof(routes[0]), &err);
    } else if (rc == 0) {
        bp_worker_t *w = bp_worker_new(&app, &err);
        rc = w == NULL                   ? err.code
             : strcmp(cmd, "chart") == 0 ? run_chart(w, &cli, &err)
                                         : run_report(w, &cli, &err);
        bp_worker_free(w);
        if (rc == 0)
            printf("%s\n", cli.output);
    }
    if (rc != 0 && serve)
        bp_log(BP_LOG_ERROR, "%s: %s", cmd, err.msg);
    else if (rc != 0)
        fprintf(stderr, "bizpulse-render %s: %s\n", cmd, err.msg);
    bp_chart_release_caches();
    bp_app_free(&app);
    return rc == 0 ? 0 : 1;
}
