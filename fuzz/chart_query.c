/*
 * The chart request parser of render (functions/render/routes.c, bp_render_chart_req_parse:
 * path and query string of GET /charts/<metric>.png into a bp_render_chart_t; percent-decoding
 * in shared/http/percent.c), then the time zone lookup (bp_tz_load) the route does next.
 *
 * Input: the path (up to the first '?', "/charts/" prepended when missing so most inputs get
 * past the path check), then the query string. Checks what routes.h promises: 404 for a path
 * of another shape, else 400 naming a parameter, or a request whose sizes, theme and range are
 * within bounds; and that no tz name escapes the zone directory.
 */
#include "fuzz.h"
#include "routes.h"

/* A fixed minute, so relative times ("-24h") are reproducible. */
#define NOW 1795000000LL

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = fuzz_strndup(data, size);
    if (text == NULL)
        return 0;
    char *query = strchr(text, '?');
    if (query != NULL)
        *query++ = '\0';
    char *path = NULL;
    if (strncmp(text, "/charts/", 8) == 0) {
        path = strdup(text);
    } else {
        path = malloc(strlen(text) + 9);
        if (path != NULL) {
            memcpy(path, "/charts/", 8);
            strcpy(path + 8, text);
        }
    }
    if (path == NULL) {
        free(text);
        return 0;
    }
    bp_http_request_t req = {.method = "GET", .path = path, .query = query ? query : "", .body = ""};
    bp_render_chart_req_t cr;
    bp_err_t err;
    bp_err_clear(&err);
    int rc = bp_render_chart_req_parse(&req, NOW, &cr, &err);
    if (rc == 0) {
        const bp_render_chart_t *q = &cr.chart;
        FUZZ_CHECK(q->metric == cr.metric && cr.metric[0] != '\0' && strchr(cr.metric, '/') == NULL,
                   "metric name '%s'", cr.metric);
        FUZZ_CHECK(q->from < q->to && q->to - q->from <= BP_RENDER_MAX_SPAN, "range %lld..%lld",
                   (long long)q->from, (long long)q->to);
        FUZZ_CHECK(q->width == 0 || (q->width >= BP_CHART_MIN_WIDTH && q->width <= BP_CHART_MAX_WIDTH),
                   "width %d", q->width);
        FUZZ_CHECK(q->height == 0 || (q->height >= BP_CHART_MIN_HEIGHT && q->height <= BP_CHART_MAX_HEIGHT),
                   "height %d", q->height);
        FUZZ_CHECK(q->theme == BP_CHART_LIGHT || q->theme == BP_CHART_DARK, "theme %d", (int)q->theme);
        FUZZ_CHECK(q->title == NULL || q->title == cr.title, "title points elsewhere");
        FUZZ_CHECK(q->tz == NULL, "tz set by the parser");
        bp_tz_t *tz = NULL;
        bp_err_t tzerr;
        bp_err_clear(&tzerr);
        if (bp_tz_load(cr.tz_name, &tz, &tzerr) == 0) {
            /* Only IANA names: anything reaching outside the zone directory is refused. */
            FUZZ_CHECK(strstr(cr.tz_name, "..") == NULL && cr.tz_name[0] != '/', "tz '%s' loaded",
                       cr.tz_name);
            bp_tz_civil_t civ;
            bp_tz_civil(tz, q->from, &civ);
            bp_tz_civil(tz, q->to, &civ);
            bp_tz_free(tz);
        } else {
            FUZZ_CHECK(tzerr.code == BP_EINVAL || tzerr.code == BP_ENOMEM, "tz error %d", tzerr.code);
        }
    } else {
        FUZZ_CHECK(rc == BP_EINVAL || rc == BP_ENOTFOUND, "unexpected code %d", rc);
        FUZZ_CHECK(err.msg[0] != '\0', "error %d without a message", rc);
        /* A 400 names the parameter to fix (routes.h). */
        FUZZ_CHECK(rc != BP_EINVAL || strncmp(err.msg, "parameter '", 11) == 0, "400 without a parameter: %s",
                   err.msg);
    }
    free(path);
    free(text);
    return 0;
}
