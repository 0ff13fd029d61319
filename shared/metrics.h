/*
 * metrics: a process-wide registry of Prometheus counters, gauges and histograms, rendered in
 * the text exposition format (version 0.0.4) by GET /metrics.
 *
 * A series is a metric name plus a label set given as preformatted Prometheus label text, e.g.
 * `route="/charts",status="200"` ("" for none). Label values come from code, not from clients
 * (routes are route names, never raw paths), so cardinality stays bounded.
 *
 * Thread-safe: every call takes one internal mutex; callers share nothing else.
 * Names must be registered (bp_metrics_register) before use; using an unregistered name is a
 * programming error (asserted). The registry lives until bp_metrics_free at exit.
 */
#ifndef BP_METRICS_H
#define BP_METRICS_H

#include "buf.h"

typedef enum {
    BP_METRIC_COUNTER,
    BP_METRIC_GAUGE,
    BP_METRIC_HISTOGRAM, /* latency in seconds, fixed buckets 5ms..10s */
} bp_metric_type_t;

/* Registers a metric family with its HELP text. Registering the same name twice is a no-op. */
void bp_metrics_register(const char *name, bp_metric_type_t type, const char *help);

/* Adds v (>= 0) to a counter series, creating it at 0 first. */
void bp_metrics_add(const char *name, const char *labels, double v);

#define bp_metrics_inc(name, labels) bp_metrics_add((name), (labels), 1.0)

/* Sets a gauge series. */
void bp_metrics_set(const char *name, const char *labels, double v);

/* Records one observation into a histogram series. */
void bp_metrics_observe(const char *name, const char *labels, double seconds);

/* Appends the whole registry in Prometheus text format. Returns 0 or BP_ETOOBIG/BP_ENOMEM. */
int bp_metrics_render(bp_buf_t *out);

/* Frees every series; for leak-free exit. */
void bp_metrics_free(void);

#endif
