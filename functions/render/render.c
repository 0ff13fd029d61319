#include "render.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "chart.h"
#include "inbox.h"
#include "json.h"
#include "metrics.h"
#include "report.h"
#include "timefmt.h"

/* The chart in a report starts this long before the incident ... */
#define REPORT_LEAD_S (6 * 3600)
/* ... and ends this long after its last anomaly (or its resolution), unless that is still in
 * the future: then it ends now. */
#define REPORT_TAIL_S (2 * 3600)
/* and never spans more than a week (a week of minutes still draws in milliseconds). */
#define REPORT_MAX_SPAN (7 * 86400)

#define M_CHARTS "bizpulse_render_charts_total"
#define M_REPORTS "bizpulse_render_reports_total"
#define M_RENDER_SECONDS "bizpulse_render_seconds"

static double mono_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* mkdir -p. */
static int make_dirs(const char *dir, bp_err_t *err)
{
    char path[PATH_MAX];
    if (snprintf(path, sizeof(path), "%s", dir) >= (int)sizeof(path))
        return bp_err_set(err, BP_ECONFIG, "BIZPULSE_REPORT_DIR is too long");
    for (char *p = path + 1;; p++) {
        if (*p != '/' && *p != '\0')
            continue;
        char c = *p;
        *p = '\0';
        if (mkdir(path, 0755) != 0 && errno != EEXIST)
            return bp_err_set(err, BP_EIO, "cannot create report directory %s: %s", path, strerror(errno));
        *p = c;
        if (c == '\0')
            return 0;
    }
}

int bp_render_init(bp_render_t *r, bp_err_t *err)
{
    memset(r, 0, sizeof(*r));
    const char *dir = getenv("BIZPULSE_REPORT_DIR");
    if (dir == NULL || dir[0] == '\0')
        dir = "./reports";
    int rc = make_dirs(dir, err);
    if (rc != 0)
        return rc;
    if (realpath(dir, r->report_dir) == NULL)
        return bp_err_set(err, BP_EIO, "report directory %s: %s", dir, strerror(errno));
    const char *url = getenv("BIZPULSE_PUBLIC_URL");
    r->public_url = url != NULL && url[0] != '\0' ? url : NULL;
    const char *token = getenv("BIZPULSE_RENDER_TOKEN");
    r->token = token != NULL && token[0] != '\0' ? token : NULL;
    bp_metrics_register(M_CHARTS, BP_METRIC_COUNTER, "Charts rendered, by result.");
    bp_metrics_register(M_REPORTS, BP_METRIC_COUNTER, "Incident events handled by render, by outcome.");
    bp_metrics_register(M_RENDER_SECONDS, BP_METRIC_HISTOGRAM, "Time to draw a chart or build a report.");
    return 0;
}

int bp_render_parse_range(const char *from_s, const char *to_s, int64_t now, int64_t *from, int64_t *to,
                          bp_err_t *err)
{
    bp_err_t perr;
    bp_err_clear(&perr);
    *to = now;
    if (to_s != NULL && to_s[0] != '\0' && bp_time_parse_rel(to_s, now, to, &perr) != 0)
        return bp_err_set(err, BP_EINVAL, "parameter 'to': %s", perr.msg);
    *from = *to - BP_RENDER_DEFAULT_SPAN;
    if (from_s != NULL && from_s[0] != '\0' && bp_time_parse_rel(from_s, now, from, &perr) != 0)
        return bp_err_set(err, BP_EINVAL, "parameter 'from': %s", perr.msg);
    if (*from >= *to)
        return bp_err_set(err, BP_EINVAL, "parameter 'from' must be before 'to'");
    if (*to - *from > BP_RENDER_MAX_SPAN)
        return bp_err_set(err, BP_EINVAL, "parameter 'from': the range may span at most %d days",
                          BP_RENDER_MAX_SPAN / 86400);
    return 0;
}

int bp_render_chart_png(bp_worker_t *w, const char *metric, int64_t from, int64_t to, int width, int height,
                        bp_buf_t *out, bp_err_t *err)
{
    bp_chart_point_t *pts = NULL;
    size_t n = 0;
    int rc = bp_store_load_points(w->db, metric, from, to, &pts, &n, err);
    if (rc != 0)
        return rc;
    char title[256];
    snprintf(title, sizeof(title), "Metric Analysis: %s", metric);
    bp_chart_spec_t spec = {.points = pts,
                            .num_points = n,
                            .from = from,
                            .to = to,
                            .width = width,
                            .height = height,
                            .title = title};
    double t0 = mono_now();
    rc = bp_chart_png(&spec, out, err);
    bp_metrics_observe(M_RENDER_SECONDS, "kind=\"chart\"", mono_now() - t0);
    bp_metrics_inc(M_CHARTS, rc == 0 ? "result=\"ok\"" : "result=\"error\"");
    free(pts);
    return rc;
}

/* Percent-encodes s for a URL path segment or query value (RFC 3986 unreserved kept). */
static int append_encoded(bp_buf_t *b, const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++) {
        bool plain = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
                     *p == '-' || *p == '_' || *p == '.' || *p == '~';
        int rc = plain ? bp_buf_append(b, p, 1) : bp_buf_appendf(b, "%%%02X", *p);
        if (rc != 0)
            return rc;
    }
    return 0;
}

int bp_render_report_pdf(bp_worker_t *w, const bp_render_t *r, const bp_store_incident_t *inc,
                         const char *state, bp_buf_t *out, bp_err_t *err)
{
    int64_t now = bp_time_now();
    int64_t end = inc->resolved_at > 0 ? inc->resolved_at : inc->last_anomaly_at;
    int64_t to = end + REPORT_TAIL_S;
    if (to > now)
        to = now > end ? now : end + 60;
    int64_t from = inc->started_at - REPORT_LEAD_S;
    if (to - from > REPORT_MAX_SPAN)
        from = to - REPORT_MAX_SPAN;

    bp_chart_point_t *pts = NULL;
    size_t n = 0;
    int rc = bp_store_load_points(w->db, inc->metric, from, to, &pts, &n, err);
    if (rc != 0)
        return rc;

    /* The live chart's URL, when the function knows where it is reachable from outside. */
    bp_buf_t url;
    bp_buf_init(&url, 2048);
    if (r->public_url != NULL) {
        char f[BP_TIME_STRLEN], t[BP_TIME_STRLEN];
        if (bp_buf_appendf(&url, "%s/charts/", r->public_url) != 0 ||
            append_encoded(&url, inc->metric) != 0 ||
            bp_buf_appendf(&url, ".png?from=%s&to=%s", bp_time_format(from, f), bp_time_format(to, t)) != 0)
            bp_buf_free(&url); /* too long to be useful: leave the line out */
    }

    char title[256];
    snprintf(title, sizeof(title), "Metric Analysis: %s", inc->metric);
    bp_report_t rep = {
        .incident_id = inc->id,
        .metric = inc->metric,
        .series = inc->series,
        .state = state,
        .summary = inc->summary,
        .method = inc->method,
        .started_at = inc->started_at,
        .peak_at = inc->peak_at,
        .peak_value = inc->peak_value,
        .peak_expected = inc->peak_expected,
        .resolved_at = inc->resolved_at,
        .generated_at = now,
        .chart_url = url.base,
        .chart = {.points = pts, .num_points = n, .from = from, .to = to, .title = title},
    };
    double t0 = mono_now();
    rc = bp_report_pdf(&rep, out, err);
    bp_metrics_observe(M_RENDER_SECONDS, "kind=\"report\"", mono_now() - t0);
    bp_buf_free(&url);
    free(pts);
    return rc;
}

int bp_render_write_file(const char *path, const void *data, size_t len, bp_err_t *err)
{
    char tmp[PATH_MAX];
    /* pid and thread id: unique among writers on this host, so two never share a temp file. */
    if (snprintf(tmp, sizeof(tmp), "%s.tmp.%ld.%ld", path, (long)getpid(), (long)gettid()) >=
        (int)sizeof(tmp))
        return bp_err_set(err, BP_EIO, "report path too long: %s", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return bp_err_set(err, BP_EIO, "cannot create %s: %s", tmp, strerror(errno));
    const char *p = data;
    size_t left = len;
    int rc = 0;
    while (rc == 0 && left > 0) {
        ssize_t n = write(fd, p, left);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            rc = bp_err_set(err, BP_EIO, "cannot write %s: %s", tmp, n < 0 ? strerror(errno) : "short write");
        else {
            p += n;
            left -= (size_t)n;
        }
    }
    /* fsync before rename: otherwise a crash can leave the new name pointing at no data. */
    if (rc == 0 && fsync(fd) != 0)
        rc = bp_err_set(err, BP_EIO, "cannot sync %s: %s", tmp, strerror(errno));
    if (close(fd) != 0 && rc == 0)
        rc = bp_err_set(err, BP_EIO, "cannot close %s: %s", tmp, strerror(errno));
    if (rc == 0 && rename(tmp, path) != 0)
        rc = bp_err_set(err, BP_EIO, "cannot rename %s to %s: %s", tmp, path, strerror(errno));
    if (rc != 0)
        unlink(tmp);
    return rc;
}

/* data.incident_id: a positive integer. */
static int parse_incident_id(const bp_ce_t *ev, long long *id, bp_err_t *err)
{
    if (ev->data == NULL)
        return bp_err_set(err, BP_EINVAL, "event %s has no data; expected {\"incident_id\": N}", ev->id);
    cJSON *doc = NULL;
    int rc = bp_json_parse(ev->data, ev->data_len, &doc, err);
    if (rc != 0)
        return rc;
    double v = 0;
    rc = bp_json_num(doc, "incident_id", &v);
    cJSON_Delete(doc);
    /* 2^53: beyond it a JSON number no longer holds every integer exactly. */
    if (rc != 1 || !(v >= 1 && v <= 9007199254740992.0) || v != (double)(long long)v)
        return bp_err_set(err, BP_EINVAL, "event data: 'incident_id' must be a positive integer");
    *id = (long long)v;
    return 0;
}

static const char *count_label(bp_render_outcome_t o)
{
    switch (o) {
    case BP_RENDER_IGNORED:
        return "outcome=\"ignored\"";
    case BP_RENDER_DUPLICATE:
        return "outcome=\"duplicate\"";
    case BP_RENDER_EXISTING:
        return "outcome=\"existing\"";
    default:
        return "outcome=\"written\"";
    }
}

int bp_render_handle_event(bp_worker_t *w, const bp_render_t *r, const bp_ce_t *ev, bp_render_result_t *res,
                           bp_err_t *err)
{
    memset(res, 0, sizeof(*res));
    if (strcmp(ev->type, BP_CE_TYPE_INCIDENT_OPENED) == 0) {
        snprintf(res->state, sizeof(res->state), "opened");
    } else if (strcmp(ev->type, BP_CE_TYPE_INCIDENT_RESOLVED) == 0) {
        snprintf(res->state, sizeof(res->state), "resolved");
    } else {
        res->outcome = BP_RENDER_IGNORED;
        bp_metrics_inc(M_REPORTS, count_label(res->outcome));
        return 0;
    }
    int rc = parse_incident_id(ev, &res->incident_id, err);
    if (rc != 0) {
        bp_metrics_inc(M_REPORTS, "outcome=\"error\"");
        return rc;
    }

    bp_store_incident_t inc = {0};
    bp_buf_t pdf;
    bp_buf_init(&pdf, BP_RENDER_PDF_MAX);
    bool first = false, in_tx = false;
    int found = 0;
    rc = bp_db_begin(w->db, err);
    in_tx = rc == 0;
    /* The claim comes first: a concurrent delivery of the same event waits on its key until we
     * commit or roll back, so two replicas never build the same report. */
    if (rc == 0)
        rc = bp_inbox_claim(w->db, ev, &first, err);
    if (rc == 0 && !first) {
        res->outcome = BP_RENDER_DUPLICATE;
        goto out;
    }
    if (rc == 0) {
        found = bp_store_find_report(w->db, res->incident_id, res->state, res->path, sizeof(res->path), err);
        rc = found < 0 ? found : 0;
    }
    if (rc == 0 && found == 1) {
        res->outcome = BP_RENDER_EXISTING;
        goto out;
    }
    if (rc == 0) {
        rc = bp_store_load_incident(w->db, res->incident_id, &inc, err);
        if (rc == BP_ENOTFOUND) /* the event names an incident that was never committed: never succeeds */
            rc = bp_err_set(err, BP_EINVAL, "incident %lld (event data) does not exist", res->incident_id);
    }
    if (rc == 0)
        rc = bp_render_report_pdf(w, r, &inc, res->state, &pdf, err);
    if (rc == 0 && snprintf(res->path, sizeof(res->path), "%s/incident-%lld-%s.pdf", r->report_dir,
                            res->incident_id, res->state) >= (int)sizeof(res->path))
        rc = bp_err_set(err, BP_EIO, "report path too long");
    /* The file is written before the row: a commit that fails leaves a file a redelivery
     * overwrites, never a row pointing at nothing. */
    if (rc == 0)
        rc = bp_render_write_file(res->path, pdf.base, pdf.len, err);
    if (rc == 0) {
        res->bytes = pdf.len;
        res->outcome = BP_RENDER_WRITTEN;
        rc = bp_store_insert_report(w->db, res->incident_id, res->state, res->path, pdf.len, NULL, err);
    }
out:
    if (rc == 0 && in_tx && res->outcome == BP_RENDER_DUPLICATE) {
        bp_db_rollback(w->db);
    } else if (rc == 0 && in_tx) {
        rc = bp_db_commit(w->db, err);
    } else if (in_tx) {
        bp_db_rollback(w->db);
    }
    bp_metrics_inc(M_REPORTS, rc == 0 ? count_label(res->outcome) : "outcome=\"error\"");
    bp_store_incident_clear(&inc);
    bp_buf_free(&pdf);
    return rc;
}

int bp_render_read_report(bp_worker_t *w, long long id, bp_buf_t *out, bp_err_t *err)
{
    char path[PATH_MAX];
    int found = bp_store_find_report(w->db, id, NULL, path, sizeof(path), err);
    if (found < 0)
        return found;
    if (found == 0)
        return bp_err_set(err, BP_ENOTFOUND, "no report for incident %lld", id);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0 && errno == ENOENT)
        return bp_err_set(err, BP_ENOTFOUND, "the report file of incident %lld is gone", id);
    if (fd < 0)
        return bp_err_set(err, BP_EIO, "cannot open the report of incident %lld: %s", id, strerror(errno));
    int rc = 0;
    for (;;) {
        char chunk[64 * 1024];
        ssize_t n = read(fd, chunk, sizeof(chunk));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            rc = bp_err_set(err, BP_EIO, "cannot read the report of incident %lld: %s", id, strerror(errno));
            break;
        }
        if (n == 0)
            break;
        rc = bp_buf_append(out, chunk, (size_t)n);
        if (rc != 0) {
            bp_err_set(err, rc, "the report of incident %lld is too large to serve", id);
            break;
        }
    }
    close(fd);
    return rc;
}
