/*
 * agg_sql: the aggregation statements. One upsert per (metric kind × with/without dimensions)
 * computes every interval of a window for a metric — total series and dimension series — in a
 * single pass over business_events, zero-fills, folds series beyond the cardinality cap into
 * 'other', and writes only rows whose value changed (RETURNING them).
 *
 * The statement texts are assembled once from constant fragments (never from input: metric
 * names, event types, filters, fields and dimension names all travel as parameters). Built on
 * first use, then read-only: thread-safe.
 *
 * Upsert parameters, in order (bp_agg_sql_upsert_params fills them):
 *   $1 metric  $2 from (epoch s)  $3 to (epoch s, exclusive)  $4 interval (s)
 *   $5 event types text[]  $6 filter A jsonb  $7 event type A  $8 filter B jsonb
 *   $9 event type B  $10 payload field  $11..$14 dimension names (NULL when unused)
 *   $15 allowed series text[] (NULL: no folding)  $16 dimension series to zero-fill text[]
 * Result columns: ts (epoch s), series, metric_value, events.
 * The insert variant (bp_agg_sql_insert) is the same statement without ON CONFLICT: for a window
 * that holds no row yet (bp_agg_sql_vacant says so, under the metric's lock), where a plain
 * insert costs ~1.5x less per row than the upsert's speculative insertion. Same parameters and
 * result; a row that exists after all makes it fail (unique violation).
 * Vacant parameters: $1 metric  $2 from  $3 to; result column vacant: 1 when no total-series
 * row of the metric starts in [from, to), else 0.
 * Prescan parameters: $1 event types text[]  $2 from  $3 to  $4..$7 dimension names; result
 * columns: series, n (events), largest first.
 */
#ifndef BP_AGG_SQL_H
#define BP_AGG_SQL_H

#include "config.h"
#include "db/conn.h"

#define BP_AGG_UPSERT_NPARAMS 16

const bp_db_stmt_t *bp_agg_sql_upsert(const bp_metric_t *m);
const bp_db_stmt_t *bp_agg_sql_insert(const bp_metric_t *m);
const bp_db_stmt_t *bp_agg_sql_vacant(void);
const bp_db_stmt_t *bp_agg_sql_prescan(void);

#endif
