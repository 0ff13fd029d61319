#include "agg_sql.h"

static const bp_db_stmt_t stored_stmt = {
    "bp_agg_stored",
    /* cast: a database adopted from the original system may keep metric_value as numeric */
    "SELECT k.i, extract(epoch FROM a.metric_timestamp)::bigint AS ts, a.metric_value::float8,"
    " a.numerator::float8, a.denominator::float8, a.events::bigint"
    " FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS k(n, s, i)"
    " JOIN aggregated_metrics a ON a.metric_name = k.n AND a.series = k.s"
    " AND a.metric_timestamp >= to_timestamp($3::bigint) AND a.metric_timestamp < to_timestamp($4::bigint)",
    4};

static const bp_db_stmt_t write_stmt = {
    "bp_agg_write",
    "INSERT INTO aggregated_metrics AS m (metric_name, series, metric_timestamp, metric_value, numerator,"
    " denominator, events)"
    " SELECT u.n, u.s, to_timestamp(u.t), u.v, u.nu, u.de, u.e"
    " FROM unnest($1::text[], $2::text[], $3::bigint[], $4::float8[], $5::float8[], $6::float8[], "
    "$7::bigint[])"
    " AS u(n, s, t, v, nu, de, e)"
    " ON CONFLICT (metric_name, series, metric_timestamp) DO UPDATE"
    " SET metric_value = EXCLUDED.metric_value, numerator = EXCLUDED.numerator,"
    " denominator = EXCLUDED.denominator, events = EXCLUDED.events, updated_at = now()",
    7};

const bp_db_stmt_t *bp_agg_sql_stored(void)
{
    return &stored_stmt;
}

const bp_db_stmt_t *bp_agg_sql_write(void)
{
    return &write_stmt;
}

const char *bp_agg_sql_copy(void)
{
    return "COPY aggregated_metrics (metric_name, series, metric_timestamp, metric_value, numerator, "
           "denominator,"
           " events) FROM STDIN";
}
