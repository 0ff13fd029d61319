/*
 * The metrics-file parser (shared/config.c, bp_config_parse) on arbitrary bytes.
 *
 * Checks what config.h promises: either a whole, valid configuration (at least one metric,
 * unique URL-safe names each found by bp_config_find, the fields its kind needs, at most
 * BP_CONFIG_MAX_DIMENSIONS dimensions, an allowed interval) or BP_ECONFIG with a message
 * naming the file, and nothing allocated left behind either way.
 */
#include "config.h"
#include "fuzz.h"

static void check_metric(const bp_config_t *cfg, const bp_metric_t *m)
{
    size_t n = strlen(m->name);
    FUZZ_CHECK(n > 0 && n <= 100 &&
                   strspn(m->name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.") == n,
               "metric name '%s' accepted", m->name);
    FUZZ_CHECK(bp_config_find(cfg, m->name) == m, "bp_config_find('%s') finds another metric", m->name);
    FUZZ_CHECK(bp_config_kind_name(m->kind) != NULL, "kind %d has no name", (int)m->kind);
    if (m->kind == BP_KIND_RATIO)
        FUZZ_CHECK(m->num.event_type && m->num.event_type[0] && m->den.event_type && m->den.event_type[0],
                   "ratio '%s' without numerator/denominator event types", m->name);
    else
        FUZZ_CHECK(m->sel.event_type && m->sel.event_type[0], "metric '%s' without event_type", m->name);
    if (m->kind == BP_KIND_SUM || m->kind == BP_KIND_DISTINCT)
        FUZZ_CHECK(m->field && m->field[0], "metric '%s' without field", m->name);
    FUZZ_CHECK(m->num_dimensions <= BP_CONFIG_MAX_DIMENSIONS, "%zu dimensions", m->num_dimensions);
    for (size_t i = 0; i < m->num_dimensions; i++)
        FUZZ_CHECK(m->dimensions[i][0] && !strpbrk(m->dimensions[i], "=,"), "dimension '%s' accepted",
                   m->dimensions[i]);
    FUZZ_CHECK(m->interval_s == 60 || m->interval_s == 300 || m->interval_s == 3600, "interval %d",
               m->interval_s);
    FUZZ_CHECK(m->max_series >= 1 && m->max_series <= 100000, "max_series %d", m->max_series);
    FUZZ_CHECK(m->method != NULL, "metric '%s' without method", m->name);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    bp_config_t *cfg = NULL;
    bp_err_t err;
    bp_err_clear(&err);
    /* Not NUL-terminated on purpose: bp_config_parse takes a length. */
    int rc = bp_config_parse("fuzz.json", (const char *)data, size, &cfg, &err);
    if (rc == 0) {
        FUZZ_CHECK(cfg != NULL && cfg->num_metrics > 0, "an empty configuration accepted");
        FUZZ_CHECK(strcmp(cfg->path, "fuzz.json") == 0, "path '%s'", cfg->path);
        for (size_t i = 0; i < cfg->num_metrics; i++)
            check_metric(cfg, &cfg->metrics[i]);
        bp_config_free(cfg);
    } else {
        FUZZ_CHECK(cfg == NULL, "a refused configuration was returned");
        FUZZ_CHECK(rc == BP_ECONFIG || rc == BP_ENOMEM, "unexpected code %d", rc);
        FUZZ_CHECK(strncmp(err.msg, "fuzz.json: ", 11) == 0, "message does not name the file: %s", err.msg);
    }
    return 0;
}
