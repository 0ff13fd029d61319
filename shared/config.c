#include "config.h"
#include "json.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CONFIG_FILE_MAX (4 << 20)
#define METRIC_NAME_MAX 100

static const char *const kind_names[] = {"count", "sum", "ratio", "distinct"};

const char *bp_config_kind_name(bp_metric_kind_t kind)
{
    return kind_names[kind];
}

static void free_sel(bp_event_sel_t *s)
{
    free(s->event_type);
    free(s->filter_json);
}

static void free_strv(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

void bp_config_free(bp_config_t *cfg)
{
    if (cfg == NULL)
        return;
    for (size_t i = 0; i < cfg->num_metrics; i++) {
        bp_metric_t *m = &cfg->metrics[i];
        free(m->name);
        free_sel(&m->sel);
        free_sel(&m->num);
        free_sel(&m->den);
        free(m->field);
        free(m->method);
        free_strv(m->dimensions, m->num_dimensions);
        free_strv(m->recipients, m->num_recipients);
    }
    free(cfg->metrics);
    free(cfg->path);
    free(cfg);
}

/* Where messages point: "file: metric 'x' (#2): field 'kind': ..." */
typedef struct {
    const char *file;
    const char *metric;
    size_t index;
    bp_err_t *err;
} ctx_t;

static int fail(ctx_t *c, const char *field, const char *what)
{
    if (c->metric != NULL)
        return bp_err_set(c->err, BP_ECONFIG, "%s: metric '%s' (#%zu): field '%s': %s", c->file, c->metric,
                          c->index + 1, field, what);
    return bp_err_set(c->err, BP_ECONFIG, "%s: metric #%zu: field '%s': %s", c->file, c->index + 1, field,
                      what);
}

static int dup_str(ctx_t *c, const char *field, const char *s, char **out)
{
    *out = strdup(s);
    return *out == NULL ? fail(c, field, "out of memory") : 0;
}

static int parse_strv(ctx_t *c, const cJSON *obj, const char *field, char ***out, size_t *n)
{
    const cJSON *arr = cJSON_GetObjectItemCaseSensitive(obj, field);
    *out = NULL;
    *n = 0;
    if (arr == NULL)
        return 0;
    if (!cJSON_IsArray(arr))
        return fail(c, field, "must be an array of strings");
    int len = cJSON_GetArraySize(arr);
    if (len == 0)
        return 0;
    *out = calloc((size_t)len, sizeof(char *));
    if (*out == NULL)
        return fail(c, field, "out of memory");
    const cJSON *it;
    cJSON_ArrayForEach(it, arr)
    {
        if (!cJSON_IsString(it) || it->valuestring[0] == '\0')
            return fail(c, field, "must be an array of non-empty strings");
        for (size_t j = 0; j < *n; j++)
            if (strcmp((*out)[j], it->valuestring) == 0)
                return fail(c, field, "lists the same value twice");
        if (dup_str(c, field, it->valuestring, &(*out)[*n]) != 0)
            return BP_ECONFIG;
        (*n)++;
    }
    return 0;
}

/* An event selector: {"event_type": "...", "filter": {...}} at obj (or the metric itself). */
static int parse_sel(ctx_t *c, const cJSON *obj, const char *prefix, bp_event_sel_t *sel)
{
    char field[64];
    snprintf(field, sizeof(field), "%s%s", prefix, "event_type");
    const cJSON *et = cJSON_GetObjectItemCaseSensitive(obj, "event_type");
    if (et == NULL)
        return fail(c, field, "missing: which event_type does this metric read?");
    if (!cJSON_IsString(et) || et->valuestring[0] == '\0' || strlen(et->valuestring) > 100)
        return fail(c, field, "must be a non-empty string of at most 100 characters");
    if (dup_str(c, field, et->valuestring, &sel->event_type) != 0)
        return BP_ECONFIG;
    snprintf(field, sizeof(field), "%s%s", prefix, "filter");
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(obj, "filter");
    if (f == NULL)
        return 0;
    if (!cJSON_IsObject(f))
        return fail(c, field, "must be an object of payload fields and values, e.g. {\"currency\": \"EUR\"}");
    if (f->child == NULL)
        return 0;
    sel->filter_json = bp_json_print(f);
    return sel->filter_json == NULL ? fail(c, field, "out of memory") : 0;
}

static int parse_interval(ctx_t *c, const cJSON *m, int *out)
{
    const cJSON *iv = cJSON_GetObjectItemCaseSensitive(m, "interval");
    *out = 60;
    if (iv == NULL)
        return 0;
    if (cJSON_IsString(iv)) {
        static const struct {
            const char *s;
            int v;
        } allowed[] = {{"1m", 60}, {"5m", 300}, {"1h", 3600}};
        for (size_t i = 0; i < sizeof(allowed) / sizeof(allowed[0]); i++) {
            if (strcmp(iv->valuestring, allowed[i].s) == 0) {
                *out = allowed[i].v;
                return 0;
            }
        }
    } else if (cJSON_IsNumber(iv) &&
               (iv->valuedouble == 60 || iv->valuedouble == 300 || iv->valuedouble == 3600)) {
        *out = (int)iv->valuedouble;
        return 0;
    }
    return fail(c, "interval", "must be \"1m\", \"5m\" or \"1h\" (or 60, 300, 3600 seconds)");
}

static int valid_name(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > METRIC_NAME_MAX)
        return 0;
    for (const char *p = s; *p; p++) {
        char ch = *p;
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '_' ||
              ch == '-' || ch == '.'))
            return 0;
    }
    return 1;
}

static int parse_metric(ctx_t *c, const cJSON *m, bp_metric_t *out)
{
    if (!cJSON_IsObject(m))
        return fail(c, "metrics", "each entry must be an object");
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(m, "name");
    if (name == NULL)
        return fail(c, "name", "missing");
    if (!cJSON_IsString(name) || !valid_name(name->valuestring))
        return fail(c, "name",
                    "must be 1-100 characters of letters, digits, '_', '-', '.' (it appears in URLs)");
    if (dup_str(c, "name", name->valuestring, &out->name) != 0)
        return BP_ECONFIG;
    c->metric = out->name;

    const char *kind = bp_json_str(m, "kind");
    if (kind == NULL)
        return fail(c, "kind", "missing: one of count, sum, ratio, distinct");
    size_t k;
    for (k = 0; k < sizeof(kind_names) / sizeof(kind_names[0]); k++)
        if (strcmp(kind, kind_names[k]) == 0)
            break;
    if (k == sizeof(kind_names) / sizeof(kind_names[0])) {
        char what[160];
        snprintf(what, sizeof(what), "unknown kind '%.40s' (count, sum, ratio, distinct)", kind);
        return fail(c, "kind", what);
    }
    out->kind = (bp_metric_kind_t)k;

    int rc;
    if (out->kind == BP_KIND_RATIO) {
        const cJSON *num = cJSON_GetObjectItemCaseSensitive(m, "numerator");
        const cJSON *den = cJSON_GetObjectItemCaseSensitive(m, "denominator");
        if (!cJSON_IsObject(num))
            return fail(c, "numerator", "a ratio needs a numerator object with an event_type");
        if (!cJSON_IsObject(den))
            return fail(c, "denominator", "a ratio needs a denominator object with an event_type");
        if ((rc = parse_sel(c, num, "numerator.", &out->num)) != 0 ||
            (rc = parse_sel(c, den, "denominator.", &out->den)) != 0)
            return rc;
    } else {
        if ((rc = parse_sel(c, m, "", &out->sel)) != 0)
            return rc;
        if (out->kind == BP_KIND_SUM || out->kind == BP_KIND_DISTINCT) {
            const char *field = bp_json_str(m, "field");
            if (field == NULL || field[0] == '\0')
                return fail(c, "field", "missing: which payload field to sum or count distinct values of");
            if (dup_str(c, "field", field, &out->field) != 0)
                return BP_ECONFIG;
        }
    }
    if ((rc = parse_strv(c, m, "dimensions", &out->dimensions, &out->num_dimensions)) != 0 ||
        (rc = parse_strv(c, m, "recipients", &out->recipients, &out->num_recipients)) != 0 ||
        (rc = parse_interval(c, m, &out->interval_s)) != 0)
        return rc;
    if (out->num_dimensions > BP_CONFIG_MAX_DIMENSIONS)
        return fail(c, "dimensions", "at most 4 dimensions per metric");
    for (size_t i = 0; i < out->num_dimensions; i++)
        if (strchr(out->dimensions[i], '=') != NULL || strchr(out->dimensions[i], ',') != NULL)
            return fail(c, "dimensions", "a dimension name may not contain '=' or ','");
    out->max_series = 1000;
    const cJSON *ms = cJSON_GetObjectItemCaseSensitive(m, "max_series");
    if (ms != NULL) {
        if (!cJSON_IsNumber(ms) || ms->valuedouble < 1 || ms->valuedouble > 100000 ||
            ms->valuedouble != (int)ms->valuedouble)
            return fail(c, "max_series", "must be an integer from 1 to 100000");
        out->max_series = (int)ms->valuedouble;
    }
    const cJSON *method = cJSON_GetObjectItemCaseSensitive(m, "method");
    if (method != NULL && !cJSON_IsString(method))
        return fail(c, "method", "must be a string such as \"auto\" or \"sigma3\"");
    return dup_str(c, "method", method ? method->valuestring : "auto", &out->method);
}

int bp_config_parse(const char *name, const char *text, size_t len, bp_config_t **out, bp_err_t *err)
{
    *out = NULL;
    cJSON *root = NULL;
    bp_err_t jerr;
    if (bp_json_parse(text, len, &root, &jerr) != 0)
        return bp_err_set(err, BP_ECONFIG, "%s: %s", name, jerr.msg);
    int rc = 0;
    bp_config_t *cfg = calloc(1, sizeof(*cfg));
    if (cfg == NULL || (cfg->path = strdup(name)) == NULL) {
        rc = bp_err_set(err, BP_ENOMEM, "out of memory");
        goto out;
    }
    const cJSON *metrics = cJSON_GetObjectItemCaseSensitive(root, "metrics");
    if (!cJSON_IsArray(metrics) || cJSON_GetArraySize(metrics) == 0) {
        rc = bp_err_set(err, BP_ECONFIG,
                        "%s: the top level must be {\"metrics\": [ ...at least one metric... ]}", name);
        goto out;
    }
    size_t n = (size_t)cJSON_GetArraySize(metrics);
    cfg->metrics = calloc(n, sizeof(*cfg->metrics));
    if (cfg->metrics == NULL) {
        rc = bp_err_set(err, BP_ENOMEM, "out of memory");
        goto out;
    }
    const cJSON *m;
    cJSON_ArrayForEach(m, metrics)
    {
        ctx_t c = {.file = name, .index = cfg->num_metrics, .err = err};
        rc = parse_metric(&c, m, &cfg->metrics[cfg->num_metrics]);
        cfg->num_metrics++; /* counted even on failure so bp_config_free frees the partial one */
        if (rc != 0)
            goto out;
        for (size_t j = 0; j + 1 < cfg->num_metrics; j++) {
            if (strcmp(cfg->metrics[j].name, c.metric) == 0) {
                rc = fail(&c, "name", "duplicate: another metric already has this name");
                goto out;
            }
        }
    }
out:
    cJSON_Delete(root);
    if (rc != 0) {
        bp_config_free(cfg);
        return rc;
    }
    *out = cfg;
    return 0;
}

int bp_config_load(const char *path, bp_config_t **out, bp_err_t *err)
{
    *out = NULL;
    if (path == NULL || path[0] == '\0')
        return bp_err_set(err, BP_ECONFIG, "BIZPULSE_METRICS is not set: it must name the metrics JSON file");
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return bp_err_set(err, BP_ECONFIG, "%s: cannot open: %s", path, strerror(errno));
    bp_buf_t b;
    bp_buf_init(&b, CONFIG_FILE_MAX);
    char chunk[8192];
    size_t got;
    int rc = 0;
    while (rc == 0 && (got = fread(chunk, 1, sizeof(chunk), f)) > 0)
        rc = bp_buf_append(&b, chunk, got);
    if (rc == 0 && ferror(f))
        rc = bp_err_set(err, BP_ECONFIG, "%s: read failed", path);
    else if (rc != 0)
        rc = bp_err_set(err, BP_ECONFIG, "%s: larger than %d bytes", path, CONFIG_FILE_MAX);
    fclose(f);
    if (rc == 0)
        rc = bp_config_parse(path, b.base ? b.base : "", b.len, out, err);
    bp_buf_free(&b);
    return rc;
}

size_t bp_config_metric_types(const bp_metric_t *m, const char *out[2])
{
    if (m->kind != BP_KIND_RATIO) {
        out[0] = m->sel.event_type;
        return 1;
    }
    out[0] = m->num.event_type;
    out[1] = m->den.event_type;
    return strcmp(out[0], out[1]) == 0 ? 1 : 2;
}

const bp_metric_t *bp_config_find(const bp_config_t *cfg, const char *name)
{
    if (cfg == NULL || name == NULL)
        return NULL;
    for (size_t i = 0; i < cfg->num_metrics; i++)
        if (strcmp(cfg->metrics[i].name, name) == 0)
            return &cfg->metrics[i];
    return NULL;
}

int bp_config_env_int(const char *name, long def, long min, long max, long *out, bp_err_t *err)
{
    const char *s = getenv(name);
    if (s == NULL || s[0] == '\0') {
        *out = def;
        return 0;
    }
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno != 0 || *end != '\0' || v < min || v > max)
        return bp_err_set(err, BP_ECONFIG, "%s=%.32s: must be an integer from %ld to %ld", name, s, min, max);
    *out = v;
    return 0;
}
