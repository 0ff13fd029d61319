/*
 * agg_sql: the aggregation statements. One upsert computes every interval of a window for a
 * whole group of metrics (any kinds, with or without dimensions) in a single pass over
 * business_events: each event row is joined to the metric parts (a count's, sum's or distinct's
 * selector; a ratio's numerator and denominator) whose event type and filter it matches, the
 * matches are counted per (metric, interval, series) — total series and dimension series —
 * then zero-filled, folded into 'other' past a metric's cardinality cap, and upserted; only
 * rows whose value changed are written and RETURNed.
 *
 * The statement text is constant: metric names, kinds, event types, filters, fields, dimension
 * names and series lists all travel as parameters (arrays with one element per metric or per
 * metric part). Thread-safe (read-only data).
 *
 * Upsert parameters, in order (all arrays are PostgreSQL array literals):
 *   $1 every event type the group reads text[]   $2 scan from (epoch s)   $3 to (epoch s, exclusive)
 *   per metric i = 1..n, one element each:
 *   $4 names text[]   $5 kinds text[] (bp_config_kind_name)   $6 intervals (s) int[]
 *   $7 from (epoch s, >= $2) bigint[]   $8 payload field text[] ('' when none)
 *   $9..$12 dimension 1..4 names text[] ('' when unused)
 *   $13 allowed series text[]: per metric a text[] literal, or '' for no folding
 *   $14 dimension series to zero-fill text[]: per metric a text[] literal ('{}' when none)
 *   per metric part, one element each:
 *   $15 metric number int[] (1-based index into $4)   $16 is the denominator bool[]
 *   $17 event type text[]   $18 filter text[] (JSON object, '' when none)
 * Result columns: i (metric number), ts (epoch s), series, metric_value, events.
 *
 * Prescan parameters: $1 event types text[]  $2 from  $3 to  $4..$7 dimension names; result
 * columns: series, n (events), largest first.
 */
#ifndef BP_AGG_SQL_H
#define BP_AGG_SQL_H

#include "config.h"
#include "db/conn.h"

#define BP_AGG_UPSERT_NPARAMS 18

const bp_db_stmt_t *bp_agg_sql_upsert(void);
const bp_db_stmt_t *bp_agg_sql_prescan(void);

#endif
