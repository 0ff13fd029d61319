/*
 * points: what a window stores per metric, from a scan (scan.h), and keeping the table in step
 * with it.
 *
 * bp_points_build lays out the rows a metric stores for a window: its total for every
 * interval (an interval without events is a 0, not a gap; a ratio's is NULL with parts 0/0);
 * for count, sum and distinct also every series marked in `grid` for every interval (zero-
 * filled, so a series falling to 0 is a drop); for a ratio the grid's dimension rows with events
 * (one without either part says nothing, so it is not added; but where a grid series has a
 * stored row whose events went away, deleted or edited, it is rewritten as no data: NULL, 0/0).
 *
 * bp_points_sync reads what is stored for those rows (one statement for every metric of the
 * scan), marks the points whose value, parts or event count differ or are missing, and writes
 * exactly those: new ones by COPY when there are many (a catch-up), the rest by upsert, both in
 * bounded pieces. The caller holds the metrics' locks, so nothing else writes these rows in
 * between (a row written by hand meanwhile fails the COPY: the round rolls back, the next
 * one compares it).
 *
 * bp_metric_points_t owns its arrays; bp_points_free releases them.
 */
#ifndef BP_POINTS_H
#define BP_POINTS_H

#include <stdbool.h>
#include <stdint.h>

#include "db/conn.h"
#include "err.h"
#include "scan.h"

typedef struct st_bp_point_t {
    uint32_t series, interval;
    double value, num, den;
    int64_t events;
    bool value_null, parts_null, changed, stored;
    bool if_stored; /* written only over a stored row (a ratio's dimension row without events) */
} bp_point_t;

typedef struct st_bp_metric_points_t {
    bp_point_t *pts;
    size_t n, num_changed;
} bp_metric_points_t;

/* grid: by series id (sm->series.n entries), which series to zero-fill (a ratio: to compare);
 * NULL for a metric without dimensions. 0 or BP_ENOMEM. */
int bp_points_build(const bp_scan_t *scan, const bp_scan_metric_t *sm, const bool *grid,
                    bp_metric_points_t *out, bp_err_t *err);

/* mp has scan->num_metrics entries, built. 0 or the database's error. */
int bp_points_sync(bp_db_t *db, const bp_scan_t *scan, bp_metric_points_t *mp, bp_err_t *err);

void bp_points_free(bp_metric_points_t *mp);

/* v as text that reads back as exactly v (whole numbers as integers, the common case, without
 * printf's float formatting). out holds BP_POINTS_NUM_MAX bytes; returns the length. */
#define BP_POINTS_NUM_MAX 32
size_t bp_points_format(double v, char *out);

#endif
