/*
 * config: the metrics file (BIZPULSE_METRICS, DESIGN §3) and the environment knobs shared by
 * the functions.
 *
 * A bad metrics file is refused as a whole with BP_ECONFIG and a message naming the file, the
 * metric and the field ("metrics.json: metric 'signup' (#2): field 'kind': unknown kind
 * 'cnt' (count, sum, ratio, distinct)").
 *
 * Ownership: bp_config_load returns one allocation tree freed by bp_config_free; metric
 * pointers stay valid until then. Read-only after load, so threads may share it.
 */
#ifndef BP_CONFIG_H
#define BP_CONFIG_H

#include <stddef.h>

#include "err.h"

typedef enum {
    BP_KIND_COUNT,
    BP_KIND_SUM,
    BP_KIND_RATIO,
    BP_KIND_DISTINCT,
} bp_metric_kind_t;

/* Which events a metric reads: one event type, optionally restricted to payloads containing
 * the filter object (JSONB containment, `payload @> filter`). */
typedef struct st_bp_event_sel_t {
    char *event_type;
    char *filter_json; /* canonical JSON object text, or NULL for no filter */
} bp_event_sel_t;

#define BP_CONFIG_MAX_DIMENSIONS 4

typedef struct st_bp_metric_t {
    char *name;
    bp_metric_kind_t kind;
    bp_event_sel_t sel; /* count, sum, distinct */
    bp_event_sel_t num; /* ratio */
    bp_event_sel_t den; /* ratio */
    char *field;        /* sum, distinct: payload field */
    char **dimensions;
    size_t num_dimensions;
    int interval_s;    /* 60 (default), 300 or 3600 */
    int max_series;    /* dimension series kept before folding into 'other' (default 1000) */
    char *method;      /* detection method: "auto" (default), "sigma3", ... */
    char **recipients; /* report email addresses; may be empty */
    size_t num_recipients;
} bp_metric_t;

typedef struct st_bp_config_t {
    char *path;
    bp_metric_t *metrics;
    size_t num_metrics;
} bp_config_t;

/* Reads and validates the file at path. Returns 0 and *out, or BP_ECONFIG/BP_EIO with err. */
int bp_config_load(const char *path, bp_config_t **out, bp_err_t *err);

/* Same, from text already in memory (name is used in messages). */
int bp_config_parse(const char *name, const char *text, size_t len, bp_config_t **out, bp_err_t *err);

/* The distinct event types metric m reads (a ratio's numerator and denominator may differ)
 * into out; returns how many (1 or 2). The strings are m's. */
size_t bp_config_metric_types(const bp_metric_t *m, const char *out[2]);

/* The metric called name, or NULL. */
const bp_metric_t *bp_config_find(const bp_config_t *cfg, const char *name);

const char *bp_config_kind_name(bp_metric_kind_t kind);

void bp_config_free(bp_config_t *cfg); /* NULL-safe */

/* Integer environment variable within [min, max]; def when unset. A set but invalid value is
 * BP_ECONFIG naming the variable. */
int bp_config_env_int(const char *name, long def, long min, long max, long *out, bp_err_t *err);

#endif
