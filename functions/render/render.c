#include "render.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "chart.h"
#include "inbox.h"
#include "json.h"
#include "mailq.h"
#include "log.h"
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
#define M_EMAILS "bizpulse_render_emails"
#define M_EMAIL_SENDS "bizpulse_render_email_sends_total"
#define M_CACHE_ERRORS "bizpulse_render_report_cache_errors_total"
/* Emails claimed per background step; each may block up to the SMTP timeout. */
#define MAIL_BATCH 10
#define MAIL_RETRY_MAX_MS (3600L * 1000)

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

static const char *env_or_null(const char *name)
{
    const char *v = getenv(name);
    return v != NULL && v[0] != '\0' ? v : NULL;
}

static int mail_init(bp_render_t *r, bp_err_t *err)
{
    r->mail.url = env_or_null("BIZPULSE_SMTP_URL");
    if (r->mail.url != NULL && strncmp(r->mail.url, "smtp://", 7) != 0 &&
        strncmp(r->mail.url, "smtps://", 8) != 0)
        return bp_err_set(err, BP_ECONFIG, "BIZPULSE_SMTP_URL must start with smtp:// or smtps://");
    r->mail.user = env_or_null("BIZPULSE_SMTP_USER");
    r->mail.password = env_or_null("BIZPULSE_SMTP_PASSWORD");
    r->mail.from = env_or_null("BIZPULSE_MAIL_FROM");
    if (r->mail.from == NULL)
        r->mail.from = "bizpulse@localhost";
    r->mail_to = env_or_null("BIZPULSE_MAIL_TO");
    long starttls = 0;
    int rc = bp_config_env_int("BIZPULSE_SMTP_STARTTLS", 0, 0, 1, &starttls, err);
    if (rc == 0)
        rc = bp_config_env_int("BIZPULSE_SMTP_TIMEOUT_MS", 30000, 100, 600000, &r->mail.timeout_ms, err);
    if (rc == 0)
        rc =
            bp_config_env_int("BIZPULSE_MAIL_RETRY_MS", 30000, 10, MAIL_RETRY_MAX_MS, &r->mail_retry_ms, err);
    if (rc == 0)
        rc = bp_config_env_int("BIZPULSE_MAIL_MAX_ATTEMPTS", 10, 1, 1000, &r->mail_max_attempts, err);
    r->mail.starttls = starttls == 1;
    /* Longer than a send can take, so a live sender never loses its claim. */
    r->mail_lease_s = r->mail.timeout_ms / 1000 * 2 + 10;
    return rc;
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
    rc = mail_init(r, err);
    if (rc != 0)
        return rc;
    bp_metrics_register(M_CHARTS, BP_METRIC_COUNTER, "Charts rendered, by result.");
    bp_metrics_register(M_REPORTS, BP_METRIC_COUNTER, "Incident events handled by render, by outcome.");
    bp_metrics_register(M_RENDER_SECONDS, BP_METRIC_HISTOGRAM, "Time to draw a chart or build a report.");
    bp_metrics_register(M_EMAILS, BP_METRIC_GAUGE,
                        "Report emails by status (pending, sending, sent, failed).");
    bp_metrics_register(M_EMAIL_SENDS, BP_METRIC_COUNTER, "SMTP send attempts, by result.");
    bp_metrics_register(M_CACHE_ERRORS, BP_METRIC_COUNTER,
                        "Reports stored in PostgreSQL but not cached in BIZPULSE_REPORT_DIR (disk full, "
                        "unwritable).");
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

/* Chart spans from the stored incidents; open ones reach the chart's right edge, so the
 * picture depends only on the stored data and the parameters (what the ETag hashes). */
static int load_spans(bp_worker_t *w, const char *metric, int64_t from, int64_t to, bp_store_span_t **rows,
                      bp_chart_span_t **spans, size_t *n, bp_err_t *err)
{
    *spans = NULL;
    int rc = bp_store_load_spans(w->db, metric, from, to, to, rows, n, err);
    if (rc != 0 || *n == 0)
        return rc;
    *spans = calloc(*n, sizeof(**spans));
    if (*spans == NULL) {
        free(*rows);
        *rows = NULL;
        return bp_err_set(err, BP_ENOMEM, "out of memory for incident spans");
    }
    for (size_t i = 0; i < *n; i++)
        (*spans)[i] =
            (bp_chart_span_t){.from = (*rows)[i].from, .to = (*rows)[i].to, .label = (*rows)[i].label};
    return 0;
}

static void default_title(const char *metric, const char *series, char *out, size_t outsz)
{
    if (series != NULL && series[0] != '\0')
        snprintf(out, outsz, "Metric Analysis: %s (%s)", metric, series);
    else
        snprintf(out, outsz, "Metric Analysis: %s", metric);
}

/* FNV-1a, 64 bits: not cryptographic; an ETag only has to change when its input does. */
static uint64_t fnv1a(uint64_t h, const void *data, size_t len)
{
    const unsigned char *p = data;
    for (size_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= 1099511628211ULL;
    }
    return h;
}

static uint64_t fnv1a_str(uint64_t h, const char *s)
{
    return fnv1a(h, s != NULL ? s : "", s != NULL ? strlen(s) + 1 : 1); /* the NUL separates fields */
}

int bp_render_chart_etag(bp_worker_t *w, const bp_render_chart_t *q, char *etag, size_t etagsz, bp_err_t *err)
{
    char version[128];
    int rc =
        bp_store_chart_version(w->db, q->metric, q->series, q->from, q->to, version, sizeof(version), err);
    if (rc != 0)
        return rc;
    char nums[160];
    snprintf(nums, sizeof(nums), "%lld|%lld|%d|%d|%d|%d", (long long)q->from, (long long)q->to, q->width,
             q->height, (int)q->theme, (int)q->format);
    uint64_t h = 14695981039346656037ULL;
    h = fnv1a_str(h, BP_RENDER_LOOK_VERSION);
    h = fnv1a_str(h, q->metric);
    h = fnv1a_str(h, q->series);
    h = fnv1a_str(h, bp_tz_name(q->tz));
    h = fnv1a_str(h, q->title != NULL ? q->title : "(default)");
    h = fnv1a_str(h, nums);
    h = fnv1a_str(h, version);
    snprintf(etag, etagsz, "\"%016llx\"", (unsigned long long)h);
    return 0;
}

int bp_render_chart(bp_worker_t *w, const bp_render_chart_t *q, bp_buf_t *out, bp_err_t *err)
{
    bp_chart_point_t *pts = NULL;
    bp_store_span_t *rows = NULL;
    bp_chart_span_t *spans = NULL;
    size_t n = 0, nspans = 0;
    int rc = bp_store_load_points(w->db, q->metric, q->series, q->from, q->to, &pts, &n, err);
    if (rc == 0)
        rc = load_spans(w, q->metric, q->from, q->to, &rows, &spans, &nspans, err);
    char title[BP_CHART_TITLE_MAX + 64];
    if (q->title != NULL)
        snprintf(title, sizeof(title), "%s", q->title);
    else
        default_title(q->metric, q->series, title, sizeof(title));
    bp_chart_spec_t spec = {.points = pts,
                            .num_points = n,
                            .spans = spans,
                            .num_spans = nspans,
                            .from = q->from,
                            .to = q->to,
                            .width = q->width,
                            .height = q->height,
                            .title = title,
                            .tz = q->tz,
                            .theme = q->theme};
    if (rc == 0) {
        double t0 = mono_now();
        rc = q->format == BP_RENDER_SVG ? bp_chart_svg(&spec, out, err) : bp_chart_png(&spec, out, err);
        bp_metrics_observe(M_RENDER_SECONDS, "kind=\"chart\"", mono_now() - t0);
        bp_metrics_inc(M_CHARTS, rc == 0 ? "result=\"ok\"" : "result=\"error\"");
    }
    free(pts);
    free(rows);
    free(spans);
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

/* What the report takes from the incident's context JSON: the root cause rows (strings point
 * into doc) and the method parameters as "k=v, k=v". Missing or malformed parts are left out:
 * the report still has everything else. */
typedef struct st_context_t {
    cJSON *doc;
    bp_report_cause_t causes[BP_REPORT_MAX_CAUSES];
    size_t num_causes;
    char params[512];
} context_t;

static double json_number(const cJSON *obj, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

static void parse_context(const char *text, context_t *ctx)
{
    memset(ctx, 0, sizeof(*ctx));
    if (text == NULL || text[0] == '\0')
        return;
    ctx->doc = cJSON_Parse(text);
    const cJSON *rc = cJSON_GetObjectItemCaseSensitive(ctx->doc, "root_cause");
    for (const cJSON *item = cJSON_IsArray(rc) ? rc->child : NULL; item != NULL; item = item->next) {
        const cJSON *series = cJSON_GetObjectItemCaseSensitive(item, "series");
        if (!cJSON_IsString(series) || ctx->num_causes == BP_REPORT_MAX_CAUSES)
            continue;
        ctx->causes[ctx->num_causes++] = (bp_report_cause_t){.series = series->valuestring,
                                                             .expected = json_number(item, "expected"),
                                                             .actual = json_number(item, "actual"),
                                                             .share = json_number(item, "share")};
    }
    const cJSON *params = cJSON_GetObjectItemCaseSensitive(ctx->doc, "method_params");
    size_t len = 0;
    for (const cJSON *item = cJSON_IsObject(params) ? params->child : NULL; item != NULL; item = item->next) {
        char value[64];
        if (cJSON_IsNumber(item))
            snprintf(value, sizeof(value), "%g", item->valuedouble);
        else if (cJSON_IsString(item))
            snprintf(value, sizeof(value), "%s", item->valuestring);
        else if (cJSON_IsBool(item))
            snprintf(value, sizeof(value), "%s", cJSON_IsTrue(item) ? "true" : "false");
        else
            continue;
        int n = snprintf(ctx->params + len, sizeof(ctx->params) - len, "%s%s=%s", len > 0 ? ", " : "",
                         item->string, value);
        if (n < 0 || (size_t)n >= sizeof(ctx->params) - len) {
            ctx->params[len] = '\0'; /* what fits, whole entries only */
            break;
        }
        len += (size_t)n;
    }
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
    bp_store_span_t *rows = NULL;
    bp_chart_span_t *spans = NULL;
    size_t n = 0, nspans = 0;
    int rc = bp_store_load_points(w->db, inc->metric, inc->series, from, to, &pts, &n, err);
    if (rc == 0)
        rc = load_spans(w, inc->metric, from, to, &rows, &spans, &nspans, err);
    if (rc != 0) {
        free(pts);
        return rc;
    }

    /* The live chart's URL, when the function knows where it is reachable from outside. */
    bp_buf_t url;
    bp_buf_init(&url, 2048);
    if (r->public_url != NULL) {
        char f[BP_TIME_STRLEN], t[BP_TIME_STRLEN];
        bool ok =
            bp_buf_appendf(&url, "%s/charts/", r->public_url) == 0 &&
            append_encoded(&url, inc->metric) == 0 &&
            bp_buf_appendf(&url, ".png?from=%s&to=%s", bp_time_format(from, f), bp_time_format(to, t)) == 0;
        if (ok && inc->series[0] != '\0')
            ok = bp_buf_appendf(&url, "&series=") == 0 && append_encoded(&url, inc->series) == 0;
        if (!ok)
            bp_buf_free(&url); /* too long to be useful: leave the line out */
    }

    context_t ctx;
    parse_context(inc->context, &ctx);
    char title[BP_CHART_TITLE_MAX + 64];
    default_title(inc->metric, inc->series, title, sizeof(title));
    bp_report_t rep = {
        .incident_id = inc->id,
        .metric = inc->metric,
        .series = inc->series,
        .state = state,
        .summary = inc->summary,
        .method = inc->method,
        .method_params = ctx.params,
        .started_at = inc->started_at,
        .peak_at = inc->peak_at,
        .peak_value = inc->peak_value,
        .peak_expected = inc->peak_expected,
        .opened_at = inc->opened_at,
        .acknowledged_at = inc->acknowledged_at,
        .resolved_at = inc->resolved_at,
        .causes = ctx.causes,
        .num_causes = ctx.num_causes,
        .generated_at = now,
        .chart_url = url.base,
        .chart = {.points = pts,
                  .num_points = n,
                  .spans = spans,
                  .num_spans = nspans,
                  .from = from,
                  .to = to,
                  .title = title},
    };
    double t0 = mono_now();
    rc = bp_report_pdf(&rep, out, err);
    bp_metrics_observe(M_RENDER_SECONDS, "kind=\"report\"", mono_now() - t0);
    cJSON_Delete(ctx.doc);
    bp_buf_free(&url);
    free(pts);
    free(rows);
    free(spans);
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

/* This pod's copy of the report of (id, state): the same name on every replica, in its own
 * report_dir (the path recorded in the row is the builder's, maybe another pod's). Returns 0,
 * or -1 when the path does not fit. */
static int cache_path(const bp_render_t *r, long long id, const char *state, char *out, size_t outsz)
{
    return snprintf(out, outsz, "%s/incident-%lld-%s.pdf", r->report_dir, id, state) < (int)outsz ? 0 : -1;
}

/* Appends the cached file to out when it exists and has the recorded size (written atomically,
 * so a complete file has it). Returns 1 when read, 0 when there is no usable copy (out is left
 * as it was given: empty). A file that cannot be read is logged and treated as absent: the
 * database has the bytes. */
static int read_cache(const char *path, size_t bytes, bp_buf_t *out)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno != ENOENT)
            bp_log(BP_LOG_WARNING, "cannot open cached report %s: %s", path, strerror(errno));
        return 0;
    }
    struct stat st;
    int rc = fstat(fd, &st) == 0 && (size_t)st.st_size == bytes ? 0 : -1;
    while (rc == 0) {
        char chunk[64 * 1024];
        ssize_t n = read(fd, chunk, sizeof(chunk));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            if (n < 0)
                bp_log(BP_LOG_WARNING, "cannot read cached report %s: %s", path, strerror(errno));
            rc = n < 0 ? -1 : 1;
            break;
        }
        if (bp_buf_append(out, chunk, (size_t)n) != 0)
            rc = -1;
    }
    close(fd);
    if (rc == 1 && out->len == bytes)
        return 1;
    bp_buf_reset(out);
    return 0;
}

/* The report of (id, state), recorded as bytes long, into out (empty; its ceiling bounds the
 * size): this pod's cached file when it has one, else the bytes stored in the database.
 * BP_ENOTFOUND when neither exists (a report recorded before migration 004 whose file is on
 * another pod or gone). */
static int load_report(bp_worker_t *w, const bp_render_t *r, long long id, const char *state, size_t bytes,
                       bp_buf_t *out, bp_err_t *err)
{
    char path[PATH_MAX];
    if (cache_path(r, id, state, path, sizeof(path)) == 0 && read_cache(path, bytes, out) == 1)
        return 0;
    int found = bp_store_load_report_pdf(w->db, id, state, out, err);
    if (found < 0)
        return found;
    if (found == 0)
        return bp_err_set(err, BP_ENOTFOUND,
                          "the report of incident %lld %s is not stored (recorded before "
                          "reports were kept in the database, and its file is gone)",
                          id, state);
    return 0;
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

/* Marks the new report's email pending when SMTP is configured and someone should get it. */
static int enqueue_email(bp_worker_t *w, const bp_render_t *r, const bp_store_incident_t *inc,
                         const char *state, bp_err_t *err)
{
    if (r->mail.url == NULL)
        return 0;
    const char *to[BP_MAIL_MAX_RECIPIENTS];
    size_t n = 0;
    const bp_metric_t *m = bp_config_find(w->app->config, inc->metric);
    for (size_t i = 0; m != NULL && i < m->num_recipients && n < BP_MAIL_MAX_RECIPIENTS; i++)
        to[n++] = m->recipients[i];
    char defaults[4096];
    snprintf(defaults, sizeof(defaults), "%s", r->mail_to != NULL ? r->mail_to : "");
    n = bp_mail_split(defaults, to, n, BP_MAIL_MAX_RECIPIENTS);
    if (n == 0)
        return 0;
    bp_buf_t list;
    bp_buf_init(&list, 16384);
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < n; i++)
        rc = bp_buf_appendf(&list, "%s%s", i > 0 ? "," : "", to[i]);
    if (rc == 0)
        rc = bp_mailq_enqueue(w->db, inc->id, state, list.base, err);
    else
        rc = bp_err_set(err, rc, "too many recipients for incident %lld", inc->id);
    bp_buf_free(&list);
    return rc;
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
    bp_store_report_t rec;
    bp_buf_t pdf;
    bp_buf_init(&pdf, BP_RENDER_PDF_MAX);
    bool first = false, in_tx = false, added = false;
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
        found = bp_store_find_report(w->db, res->incident_id, res->state, &rec, err);
        rc = found < 0 ? found : 0;
    }
    if (rc == 0 && found == 1) {
        res->outcome = BP_RENDER_EXISTING;
        snprintf(res->path, sizeof(res->path), "%s", rec.path);
        goto out;
    }
    if (rc == 0) {
        rc = bp_store_load_incident(w->db, res->incident_id, &inc, err);
        if (rc == BP_ENOTFOUND) /* the event names an incident that was never committed: never succeeds */
            rc = bp_err_set(err, BP_EINVAL, "incident %lld (event data) does not exist", res->incident_id);
        /* The database, not the event, says what happened: a "resolved" event for an incident
         * still open (forged, or misrouted) must not mail anyone a resolution. */
        else if (rc == 0 && strcmp(res->state, "resolved") == 0 && strcmp(inc.status, "resolved") != 0)
            rc = bp_err_set(err, BP_EINVAL, "incident %lld is still open: no resolved report",
                            res->incident_id);
    }
    if (rc == 0)
        rc = bp_render_report_pdf(w, r, &inc, res->state, &pdf, err);
    if (rc == 0 && cache_path(r, res->incident_id, res->state, res->path, sizeof(res->path)) != 0)
        rc = bp_err_set(err, BP_EIO, "report path too long");
    /* The bytes go into the row, in this transaction: the database is what every replica
     * reads; the file is written only once they are committed (below). */
    if (rc == 0)
        rc = bp_store_insert_report(w->db, res->incident_id, res->state, res->path, pdf.base, pdf.len, &added,
                                    err);
    if (rc == 0 && !added) {
        /* An event with another id for the same incident state, handled by another replica
         * (or worker) meanwhile, committed first: its report and email stand. */
        res->outcome = BP_RENDER_EXISTING;
        found = bp_store_find_report(w->db, res->incident_id, res->state, &rec, err);
        rc = found < 0 ? found : 0;
        snprintf(res->path, sizeof(res->path), "%s", found == 1 ? rec.path : "");
        goto out;
    }
    if (rc == 0) {
        res->bytes = pdf.len;
        res->outcome = BP_RENDER_WRITTEN;
        rc = enqueue_email(w, r, &inc, res->state, err);
    }
out:
    if (rc == 0 && in_tx && res->outcome == BP_RENDER_DUPLICATE) {
        bp_db_rollback(w->db);
    } else if (rc == 0 && in_tx) {
        rc = bp_db_commit(w->db, err);
    } else if (in_tx) {
        bp_db_rollback(w->db);
    }
    /* The local copy, only of committed bytes. Failing to write it loses nothing: reads fall
     * back to the database. */
    if (rc == 0 && res->outcome == BP_RENDER_WRITTEN) {
        bp_err_t ferr;
        bp_err_clear(&ferr);
        if (bp_render_write_file(res->path, pdf.base, pdf.len, &ferr) != 0) {
            /* Counted too: a full or read-only volume is otherwise only a log line, while
             * every read of the report then goes to the database. */
            bp_metrics_inc(M_CACHE_ERRORS, "");
            bp_log(BP_LOG_WARNING, "report of incident %lld %s stored, but not cached: %s", res->incident_id,
                   res->state, ferr.msg);
        }
    }
    bp_metrics_inc(M_REPORTS, rc == 0 ? count_label(res->outcome) : "outcome=\"error\"");
    bp_store_incident_clear(&inc);
    bp_buf_free(&pdf);
    return rc;
}

int bp_render_read_report(bp_worker_t *w, long long id, bp_buf_t *out, bp_err_t *err)
{
    bp_store_report_t rec;
    int found = bp_store_find_report(w->db, id, NULL, &rec, err);
    if (found < 0)
        return found;
    if (found == 0)
        return bp_err_set(err, BP_ENOTFOUND, "no report for incident %lld", id);
    return load_report(w, w->app->fn, id, rec.state, rec.bytes, out, err);
}

/* Sends one claimed email and records the outcome. */
static void send_one(bp_worker_t *w, const bp_render_t *r, const bp_mailq_item_t *it)
{
    char to_buf[16384];
    snprintf(to_buf, sizeof(to_buf), "%s", it->to);
    const char *to[BP_MAIL_MAX_RECIPIENTS];
    size_t n = bp_mail_split(to_buf, to, 0, BP_MAIL_MAX_RECIPIENTS);

    char subject[512], name[64], msgid[128], link[1024] = "";
    snprintf(subject, sizeof(subject), "[bizpulse] Incident #%lld %s: %s%s%s%s", it->incident_id, it->state,
             it->metric, it->series[0] != '\0' ? " (" : "", it->series, it->series[0] != '\0' ? ")" : "");
    snprintf(name, sizeof(name), "incident-%lld-%s.pdf", it->incident_id, it->state);
    snprintf(msgid, sizeof(msgid), "<bizpulse-incident-%lld-%s@bizpulse>", it->incident_id, it->state);
    bp_err_t err, dberr;
    bp_err_clear(&err);
    bp_err_clear(&dberr);
    /* The PDF whichever replica built it: this pod's cached file, else the database's bytes. */
    bp_buf_t pdf;
    bp_buf_init(&pdf, BP_RENDER_PDF_MAX);
    int load_rc = load_report(w, r, it->incident_id, it->state, it->bytes, &pdf, &err);
    if (load_rc == BP_ENOTFOUND) {
        /* A report from before the bytes were stored, its file gone: it never comes back, and
         * the alert matters more than its attachment. */
        bp_log(BP_LOG_WARNING, "email for incident %lld %s goes without its report: %s", it->incident_id,
               it->state, err.msg);
        bp_err_clear(&err);
        load_rc = 0;
    }
    bp_buf_t text;
    bp_buf_init(&text, 64 * 1024);
    int rc = bp_buf_appendf(&text, "%s\n\n", it->summary);
    if (rc == 0 && r->public_url != NULL) {
        bp_buf_t url;
        bp_buf_init(&url, sizeof(link));
        if (bp_buf_appendf(&url, "%s/charts/", r->public_url) == 0 && append_encoded(&url, it->metric) == 0 &&
            bp_buf_appendf(&url, ".png?from=-24h") == 0 &&
            (it->series[0] == '\0' ||
             (bp_buf_appendf(&url, "&series=") == 0 && append_encoded(&url, it->series) == 0)))
            snprintf(link, sizeof(link), "%s", url.base);
        bp_buf_free(&url);
        if (link[0] != '\0')
            rc = bp_buf_appendf(&text, "Live chart: %s\nReport: %s/reports/%lld.pdf\n\n", link, r->public_url,
                                it->incident_id);
    }
    if (rc == 0 && pdf.len > 0)
        rc = bp_buf_appendf(&text, "The incident report is attached (%s).\n", name);
    else if (rc == 0)
        rc = bp_buf_appendf(&text, "The incident report (%s) is no longer stored, so it is not attached.\n",
                            name);
    if (rc == 0)
        rc = bp_buf_appendf(&text, "-- \nbizpulse\n");

    bp_mail_t m = {.to = to,
                   .num_to = n,
                   .subject = subject,
                   .text = text.base != NULL ? text.base : "",
                   .attach = pdf.len > 0 ? pdf.base : NULL,
                   .attach_len = pdf.len,
                   .attach_name = name,
                   .message_id = msgid};
    if (load_rc != 0) /* the database is unreachable: retried like SMTP trouble */
        rc = load_rc;
    else if (rc != 0)
        rc = bp_err_set(&err, rc, "cannot build the message");
    else
        rc = bp_mail_send(&r->mail, &m, &err);
    bp_buf_free(&text);
    bp_buf_free(&pdf);
    int db_rc;
    if (rc == 0) {
        bp_metrics_inc(M_EMAIL_SENDS, "result=\"sent\"");
        bp_log(BP_LOG_INFO, "email sent: incident %lld %s to %zu recipient(s), attempt %d", it->incident_id,
               it->state, n, it->attempts);
        db_rc = bp_mailq_sent(w->db, it, &dberr);
    } else {
        /* BP_EINVAL (a message that can never go out) is final; SMTP trouble is retried. */
        bool final = rc == BP_EINVAL || it->attempts >= r->mail_max_attempts;
        long delay = r->mail_retry_ms;
        for (int i = 1; i < it->attempts && delay < MAIL_RETRY_MAX_MS; i++)
            delay *= 2;
        if (delay > MAIL_RETRY_MAX_MS)
            delay = MAIL_RETRY_MAX_MS;
        bp_metrics_inc(M_EMAIL_SENDS, "result=\"error\"");
        bp_log(BP_LOG_WARNING, "email for incident %lld %s failed (attempt %d%s): %s", it->incident_id,
               it->state, it->attempts, final ? ", giving up" : "", err.msg);
        db_rc = bp_mailq_failed(w->db, it, err.msg, delay, final, &dberr);
    }
    if (db_rc != 0) /* the lease expires and another attempt follows: at least once, see mailq.h */
        bp_log(BP_LOG_WARNING, "cannot record the email outcome of incident %lld: %s", it->incident_id,
               dberr.msg);
}

void bp_render_periodic(bp_worker_t *w)
{
    const bp_render_t *r = w->app->fn;
    bp_err_t err;
    bp_err_clear(&err);
    if (r->mail.url != NULL) {
        bp_mailq_item_t *items = NULL;
        size_t n = 0;
        if (bp_mailq_claim(w->db, MAIL_BATCH, (int)r->mail_lease_s, &items, &n, &err) != 0)
            bp_log(BP_LOG_WARNING, "cannot claim emails: %s", err.msg);
        for (size_t i = 0; i < n; i++)
            send_one(w, r, &items[i]);
        bp_mailq_items_free(items, n);
    }
    bp_mailq_counts_t counts;
    if (bp_mailq_count(w->db, &counts, &err) == 0) {
        bp_metrics_set(M_EMAILS, "status=\"pending\"", (double)counts.pending);
        bp_metrics_set(M_EMAILS, "status=\"sending\"", (double)counts.sending);
        bp_metrics_set(M_EMAILS, "status=\"sent\"", (double)counts.sent);
        bp_metrics_set(M_EMAILS, "status=\"failed\"", (double)counts.failed);
    }
}
