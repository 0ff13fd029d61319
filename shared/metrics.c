#include "metrics.h"
#include "err.h"

#include <assert.h>
#include <math.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Prometheus' default buckets: they span a fast /healthz (5 ms) to a slow PDF render (10 s). */
static const double bucket_bounds[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
#define NUM_BUCKETS (sizeof(bucket_bounds) / sizeof(bucket_bounds[0]))

/* One label set of a family. Histogram buckets are stored per bucket (not cumulative) and summed
 * when rendered, so observe is one increment. */
typedef struct st_series_t {
    char *labels;
    double value; /* counter, gauge */
    uint64_t buckets[NUM_BUCKETS];
    uint64_t count;
    double sum;
} series_t;

typedef struct st_family_t {
    char *name;
    char *help;
    bp_metric_type_t type;
    series_t *series;
    size_t num_series;
    size_t cap_series;
} family_t;

/* The registry. Cardinality is small (route x status, a few dozen series), so linear lookups
 * under one mutex cost less than the lock itself. */
static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static family_t *families;
static size_t num_families;
static size_t cap_families;

static family_t *find_family(const char *name)
{
    for (size_t i = 0; i < num_families; i++)
        if (strcmp(families[i].name, name) == 0)
            return &families[i];
    return NULL;
}

/* Returns the series, creating it; NULL only when out of memory (the sample is then dropped:
 * metrics never fail the request they describe). */
static series_t *find_series(family_t *f, const char *labels)
{
    if (labels == NULL)
        labels = "";
    for (size_t i = 0; i < f->num_series; i++)
        if (strcmp(f->series[i].labels, labels) == 0)
            return &f->series[i];
    if (f->num_series == f->cap_series) {
        size_t cap = f->cap_series ? f->cap_series * 2 : 8;
        series_t *p = realloc(f->series, cap * sizeof(*p));
        if (p == NULL)
            return NULL;
        f->series = p;
        f->cap_series = cap;
    }
    char *l = strdup(labels);
    if (l == NULL)
        return NULL;
    series_t *s = &f->series[f->num_series++];
    memset(s, 0, sizeof(*s));
    s->labels = l;
    return s;
}

void bp_metrics_register(const char *name, bp_metric_type_t type, const char *help)
{
    pthread_mutex_lock(&registry_lock);
    family_t *f = find_family(name);
    if (f != NULL) {
        assert(f->type == type && "metric registered twice with different types");
        goto out;
    }
    if (num_families == cap_families) {
        size_t cap = cap_families ? cap_families * 2 : 16;
        family_t *p = realloc(families, cap * sizeof(*p));
        if (p == NULL)
            goto out;
        families = p;
        cap_families = cap;
    }
    char *n = strdup(name);
    char *h = strdup(help != NULL ? help : "");
    if (n == NULL || h == NULL) {
        free(n);
        free(h);
        goto out;
    }
    families[num_families++] = (family_t){.name = n, .help = h, .type = type};
out:
    pthread_mutex_unlock(&registry_lock);
}

/* Looks up a registered family of the given type; with the lock held. */
static family_t *family_of(const char *name, bp_metric_type_t type)
{
    family_t *f = find_family(name);
    assert(f != NULL && "metric used before bp_metrics_register");
    assert(f->type == type && "metric used as the wrong type");
    return f != NULL && f->type == type ? f : NULL; /* with NDEBUG: drop the sample */
}

void bp_metrics_add(const char *name, const char *labels, double v)
{
    assert(v >= 0 && "counters only go up");
    pthread_mutex_lock(&registry_lock);
    family_t *f = family_of(name, BP_METRIC_COUNTER);
    series_t *s = f != NULL ? find_series(f, labels) : NULL;
    if (s != NULL)
        s->value += v;
    pthread_mutex_unlock(&registry_lock);
}

void bp_metrics_set(const char *name, const char *labels, double v)
{
    pthread_mutex_lock(&registry_lock);
    family_t *f = family_of(name, BP_METRIC_GAUGE);
    series_t *s = f != NULL ? find_series(f, labels) : NULL;
    if (s != NULL)
        s->value = v;
    pthread_mutex_unlock(&registry_lock);
}

void bp_metrics_observe(const char *name, const char *labels, double seconds)
{
    pthread_mutex_lock(&registry_lock);
    family_t *f = family_of(name, BP_METRIC_HISTOGRAM);
    series_t *s = f != NULL ? find_series(f, labels) : NULL;
    if (s != NULL) {
        for (size_t i = 0; i < NUM_BUCKETS; i++) {
            if (seconds <= bucket_bounds[i]) {
                s->buckets[i]++;
                break;
            }
        }
        s->count++;
        s->sum += seconds;
    }
    pthread_mutex_unlock(&registry_lock);
}

static const char *type_name(bp_metric_type_t type)
{
    switch (type) {
    case BP_METRIC_COUNTER:
        return "counter";
    case BP_METRIC_GAUGE:
        return "gauge";
    default:
        return "histogram";
    }
}

/* Sample values as the text format wants them: Go ParseFloat syntax, with NaN/+Inf/-Inf spelled
 * out; whole numbers without an exponent so counters read naturally. */
static int append_value(bp_buf_t *out, double v)
{
    if (isnan(v))
        return bp_buf_append(out, "NaN", 3);
    if (isinf(v))
        return v > 0 ? bp_buf_append(out, "+Inf", 4) : bp_buf_append(out, "-Inf", 4);
    if (v == floor(v) && fabs(v) < 1e15)
        return bp_buf_appendf(out, "%.0f", v);
    return bp_buf_appendf(out, "%.17g", v);
}

/* HELP text escapes only backslash and newline (exposition format 0.0.4). */
static int append_help(bp_buf_t *out, const char *help)
{
    int rc = 0;
    for (const char *p = help; rc == 0 && *p != '\0'; p++) {
        if (*p == '\\')
            rc = bp_buf_append(out, "\\\\", 2);
        else if (*p == '\n')
            rc = bp_buf_append(out, "\\n", 2);
        else
            rc = bp_buf_append(out, p, 1);
    }
    return rc;
}

/* name{labels} or name{labels,extra} or name{extra} or plain name. */
static int append_series_name(bp_buf_t *out, const char *name, const char *suffix, const char *labels,
                              const char *extra)
{
    int rc = bp_buf_appendf(out, "%s%s", name, suffix);
    bool has_labels = labels[0] != '\0', has_extra = extra != NULL;
    if (rc == 0 && (has_labels || has_extra))
        rc = bp_buf_appendf(out, "{%s%s%s}", labels, has_labels && has_extra ? "," : "",
                            has_extra ? extra : "");
    if (rc == 0)
        rc = bp_buf_append(out, " ", 1);
    return rc;
}

static int render_histogram(bp_buf_t *out, const family_t *f, const series_t *s)
{
    int rc = 0;
    uint64_t cumulative = 0;
    char le[48];
    for (size_t i = 0; rc == 0 && i < NUM_BUCKETS; i++) {
        cumulative += s->buckets[i];
        snprintf(le, sizeof(le), "le=\"%g\"", bucket_bounds[i]);
        rc = append_series_name(out, f->name, "_bucket", s->labels, le);
        if (rc == 0)
            rc = bp_buf_appendf(out, "%llu\n", (unsigned long long)cumulative);
    }
    if (rc == 0)
        rc = append_series_name(out, f->name, "_bucket", s->labels, "le=\"+Inf\"");
    if (rc == 0)
        rc = bp_buf_appendf(out, "%llu\n", (unsigned long long)s->count);
    if (rc == 0)
        rc = append_series_name(out, f->name, "_sum", s->labels, NULL);
    if (rc == 0)
        rc = append_value(out, s->sum);
    if (rc == 0)
        rc = bp_buf_append(out, "\n", 1);
    if (rc == 0)
        rc = append_series_name(out, f->name, "_count", s->labels, NULL);
    if (rc == 0)
        rc = bp_buf_appendf(out, "%llu\n", (unsigned long long)s->count);
    return rc;
}

int bp_metrics_render(bp_buf_t *out)
{
    int rc = 0;
    pthread_mutex_lock(&registry_lock);
    for (size_t i = 0; rc == 0 && i < num_families; i++) {
        const family_t *f = &families[i];
        rc = bp_buf_appendf(out, "# HELP %s ", f->name);
        if (rc == 0)
            rc = append_help(out, f->help);
        if (rc == 0)
            rc = bp_buf_appendf(out, "\n# TYPE %s %s\n", f->name, type_name(f->type));
        for (size_t j = 0; rc == 0 && j < f->num_series; j++) {
            const series_t *s = &f->series[j];
            if (f->type == BP_METRIC_HISTOGRAM) {
                rc = render_histogram(out, f, s);
            } else {
                rc = append_series_name(out, f->name, "", s->labels, NULL);
                if (rc == 0)
                    rc = append_value(out, s->value);
                if (rc == 0)
                    rc = bp_buf_append(out, "\n", 1);
            }
        }
    }
    pthread_mutex_unlock(&registry_lock);
    return rc;
}

void bp_metrics_free(void)
{
    pthread_mutex_lock(&registry_lock);
    for (size_t i = 0; i < num_families; i++) {
        family_t *f = &families[i];
        for (size_t j = 0; j < f->num_series; j++)
            free(f->series[j].labels);
        free(f->series);
        free(f->name);
        free(f->help);
    }
    free(families);
    families = NULL;
    num_families = 0;
    cap_families = 0;
    pthread_mutex_unlock(&registry_lock);
}
