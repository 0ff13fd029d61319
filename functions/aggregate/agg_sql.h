/*
 * agg_sql: the statements that store a window's points (scan.h computes them).
 *
 * Stored: $1 metric names text[], $2 series text[] (pairs), $3 from, $4 to (epoch s). Result,
 * in binary: i (the pair's 1-based position), ts (epoch s), metric_value, numerator,
 * denominator (float8, NULL allowed), events (int8). One index range probe per pair on the
 * (metric_name, series, metric_timestamp) key.
 *
 * Write: $1 names text[], $2 series text[], $3 ts bigint[], $4 value float8[], $5 numerator
 * float8[], $6 denominator float8[], $7 events bigint[]: one upsert of every changed point of
 * a window, all metrics at once.
 *
 * Copy: the COPY ... FROM STDIN text for new points of a catch-up (bp_db_copy_begin); rows in
 * COPY text format, the write statement's columns in its order.
 *
 * Texts are constants: every value travels as a parameter (or as COPY data).
 */
#ifndef BP_AGG_SQL_H
#define BP_AGG_SQL_H

#include "db/conn.h"

const bp_db_stmt_t *bp_agg_sql_stored(void);
const bp_db_stmt_t *bp_agg_sql_write(void);
const char *bp_agg_sql_copy(void);

#endif
