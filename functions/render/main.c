/*
 * bizpulse-render: charts and incident reports (DESIGN §6 render).
 *
 *   bizpulse-render [serve]                                    HTTP server (routes.h)
 *   bizpulse-render chart --metric M [--from T] [--to T] [--series S] [--tz Z] [--theme light|dark]
 *                         [--title T] [--width W] [--height H] -o FILE.png|FILE.svg
 *   bizpulse-render chart --csv FILE [same options] -o FILE.png   (no database: timestamp,value[,anomaly])
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
#include <unistd.h>

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
        "       bizpulse-render chart --metric M [--from T] [--to T] [--series S] [--tz ZONE]\n"
        "                             [--theme light|dark] [--title TEXT] [--width W] [--height H] -o "
        "FILE.png|.svg\n"
        "       bizpulse-render chart --csv FILE [--tz ZONE] [--theme ...] [--title ...] -o FILE.png|.svg\n"
        "       bizpulse-render report --incident ID -o FILE.pdf\n"
        "T is RFC 3339 (2026-11-25T14:05:00Z) or relative (-24h, -30m, -7d, now).\n");
}

typedef struct st_cli_t {
    const char *metric, *from, *to, *output, *series, *tz, *theme, *title, *csv;
    int width, height;
    long long incident;
} cli_t;

static int parse_cli(int argc, char **argv, cli_t *cli)
{
    static const struct option opts[] = {
        {"metric", required_argument, NULL, 'm'}, {"from", required_argument, NULL, 'f'},
        {"to", required_argument, NULL, 't'},     {"width", required_argument, NULL, 'W'},
        {"height", required_argument, NULL, 'H'}, {"incident", required_argument, NULL, 'i'},
        {"series", required_argument, NULL, 's'}, {"tz", required_argument, NULL, 'z'},
        {"theme", required_argument, NULL, 'T'},  {"title", required_argument, NULL, 'l'},
        {"csv", required_argument, NULL, 'c'},    {"output", required_argument, NULL, 'o'},
        {"help", no_argument, NULL, 'h'},         {NULL, 0, NULL, 0},
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
        case 's':
            cli->series = optarg;
            break;
        case 'z':
            cli->tz = optarg;
            break;
        case 'T':
            cli->theme = optarg;
            break;
        case 'l':
            cli->title = optarg;
            break;
        case 'c':
            cli->csv = optarg;
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

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

/* The chart options shared by the database and the CSV mode. */
static int chart_options(const cli_t *cli, bp_render_chart_t *q, bp_tz_t **tz, bp_err_t *err)
{
    q->series = cli->series != NULL ? cli->series : "";
    q->width = cli->width;
    q->height = cli->height;
    q->title = cli->title;
    q->format = ends_with(cli->output, ".svg") ? BP_RENDER_SVG : BP_RENDER_PNG;
    if (cli->theme != NULL && strcmp(cli->theme, "dark") == 0)
        q->theme = BP_CHART_DARK;
    else if (cli->theme != NULL && strcmp(cli->theme, "light") != 0)
        return bp_err_set(err, BP_EINVAL, "--theme must be light or dark");
    int rc = bp_tz_load(cli->tz, tz, err);
    q->tz = *tz;
    return rc;
}

static int run_chart(bp_worker_t *w, const cli_t *cli, bp_err_t *err)
{
    if (cli->metric == NULL)
        return bp_err_set(err, BP_EINVAL, "chart needs --metric (or --csv)");
    if (bp_config_find(w->app->config, cli->metric) == NULL)
        return bp_err_set(err, BP_ENOTFOUND, "unknown metric '%s' (not in %s)", cli->metric,
                          w->app->config->path);
    bp_render_chart_t q = {.metric = cli->metric};
    bp_tz_t *tz = NULL;
    int rc = chart_options(cli, &q, &tz, err);
    if (rc == 0)
        rc = bp_render_parse_range(cli->from, cli->to, bp_time_now(), &q.from, &q.to, err);
    bp_buf_t out;
    bp_buf_init(&out, BP_RENDER_PNG_MAX);
    if (rc == 0)
        rc = bp_db_connect_wait(w->db, CLI_CONNECT_MS, err);
    if (rc == 0)
        rc = bp_render_chart(w, &q, &out, err);
    if (rc == 0)
        rc = bp_render_write_file(cli->output, out.base, out.len, err);
    bp_buf_free(&out);
    bp_tz_free(tz);
    return rc;
}

/* chart --csv: the picture without a database or a metrics file, for benchmarks (cold start
 * to first PNG bytes) and for looking at a data set. Rows: timestamp (epoch seconds or RFC
 * 3339), value, and optionally 1/true for an anomaly; a header line is skipped. */
static int run_chart_csv(const cli_t *cli, bp_err_t *err)
{
    FILE *f = fopen(cli->csv, "r");
    if (f == NULL)
        return bp_err_set(err, BP_EIO, "cannot open %s", cli->csv);
    bp_chart_point_t *pts = NULL;
    size_t n = 0, cap = 0;
    char line[512];
    int rc = 0;
    while (rc == 0 && fgets(line, sizeof(line), f) != NULL) {
        char *ts = strtok(line, ",\r\n"), *val = strtok(NULL, ",\r\n"), *anom = strtok(NULL, ",\r\n");
        if (ts == NULL || val == NULL)
            continue;
        char *end;
        double v = strtod(val, &end);
        if (end == val)
            continue; /* the header */
        int64_t t = strtoll(ts, &end, 10);
        if (*end != '\0' && bp_time_parse(ts, &t, NULL) != 0)
            continue;
        if (n == cap) {
            cap = cap == 0 ? 4096 : cap * 2;
            bp_chart_point_t *grown = realloc(pts, cap * sizeof(*pts));
            if (grown == NULL) {
                rc = bp_err_set(err, BP_ENOMEM, "out of memory reading %s", cli->csv);
                break;
            }
            pts = grown;
        }
        pts[n++] = (bp_chart_point_t){
            .t = t, .value = v, .anomaly = anom != NULL && (anom[0] == '1' || anom[0] == 't')};
    }
    fclose(f);
    bp_render_chart_t q = {.metric = "csv"};
    bp_tz_t *tz = NULL;
    if (rc == 0)
        rc = chart_options(cli, &q, &tz, err);
    char title[BP_CHART_TITLE_MAX + 64];
    snprintf(title, sizeof(title), "Metric Analysis: %s", cli->metric != NULL ? cli->metric : cli->csv);
    bp_chart_spec_t spec = {.points = pts,
                            .num_points = n,
                            .width = q.width,
                            .height = q.height,
                            .title = q.title != NULL ? q.title : title,
                            .tz = tz,
                            .theme = q.theme};
    bp_buf_t out;
    bp_buf_init(&out, BP_RENDER_PNG_MAX);
    if (rc == 0)
        rc = q.format == BP_RENDER_SVG ? bp_chart_svg(&spec, &out, err) : bp_chart_png(&spec, &out, err);
    if (rc == 0)
        rc = bp_render_write_file(cli->output, out.base, out.len, err);
    bp_buf_free(&out);
    bp_tz_free(tz);
    free(pts);
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
    const char *cmd = argc > 1 ? argv[1] : "serve";
    if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 || strcmp(cmd, "help") == 0) {
        usage(stdout);
        return 0;
    }
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
    if (cli.csv != NULL && strcmp(cmd, "chart") == 0) {
        bp_err_t err;
        bp_err_clear(&err);
        int rc = run_chart_csv(&cli, &err);
        if (rc != 0)
            fprintf(stderr, "bizpulse-render chart: %s\n", err.msg);
        bp_chart_release_caches();
        return rc == 0 ? 0 : 1;
    }

    bp_app_t app;
    bp_render_t render;
    bp_err_t err;
    bp_err_clear(&err);
    int rc = bp_app_init(&app, "render", &err);
    if (rc == 0)
        rc = bp_render_init(&render, &err);
    app.fn = &render;
    app.periodic = bp_render_periodic;
    if (rc == 0 && serve) {
        rc = bp_app_serve(&app, routes, sizeof(routes) / sizeof(routes[0]), &err);
        if (rc == BP_EBUSY) { /* a handler outlived the drain deadline and still uses app: leave now */
            bp_log(BP_LOG_ERROR, "%s", err.msg);
            _exit(1);
        }
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
