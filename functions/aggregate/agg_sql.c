#include "agg_sql.h"

/* A dimension's part of a series key: "name=value", the value escaped so that ',' and '='
 * inside payload values cannot make two different combinations print the same key. NULL when
 * the dimension name is NULL, which concat_ws skips. */
#define DIM(d)                                                                                               \
    d " || '=' || replace(replace(replace(coalesce(e.payload ->> " d ", '(none)'), '%', '%25'), ',', "       \
      "'%2C'), '=', '%3D')"

#define KEY(a, b, c, d) "concat_ws(',', " DIM(a) ", " DIM(b) ", " DIM(c) ", " DIM(d) ")"

/* Numbers, and strings that are plainly numbers; anything else does not count toward a sum. */
#define NUMVAL(f)                                                                                            \
    "CASE jsonb_typeof(e.payload -> " f ") WHEN 'number' THEN (e.payload ->> " f ")::numeric"                \
    " WHEN 'string' THEN CASE WHEN e.payload ->> " f " ~ "                                                   \
    "'^\\s*[-+]?([0-9]+\\.?[0-9]*|\\.[0-9]+)([eE][-+]?[0-9]{1,3})?\\s*$'"                                    \
    " THEN (e.payload ->> " f ")::numeric END END"

/* A metric's series key and summand, from its md row. */
#define MKEY KEY("md.d1", "md.d2", "md.d3", "md.d4")
#define MNUM NUMVAL("md.field")

static const char upsert_text[] =
    "WITH md AS ("
    " SELECT m.i::int AS i, m.name, m.kind, m.iv, m.t0, nullif(m.field, '') AS field,"
    " nullif(m.d1, '') AS d1, nullif(m.d2, '') AS d2, nullif(m.d3, '') AS d3, nullif(m.d4, '') AS d4,"
    " m.d1 <> '' AS dims, nullif(m.allowed, '')::text[] AS allowed, m.fill::text[] AS fill"
    " FROM unnest($4::text[], $5::text[], $6::int[], $7::bigint[], $8::text[], $9::text[], $10::text[],"
    " $11::text[], $12::text[], $13::text[], $14::text[])"
    " WITH ORDINALITY AS m(name, kind, iv, t0, field, d1, d2, d3, d4, allowed, fill, i)"
    "), part AS MATERIALIZED ("
    " SELECT p.den, p.event_type, nullif(p.filter, '')::jsonb AS filter, md.*"
    " FROM unnest($15::int[], $16::bool[], $17::text[], $18::text[]) AS p(i, den, event_type, filter)"
    " JOIN md ON md.i = p.i"
    /* One row per event and metric part it matches: business_events is read once for the
     * whole group, however many metrics read the same event types. */
    "), ev AS ("
    " SELECT md.i, md.den, floor(date_part('epoch', e.event_timestamp) / md.iv)::bigint * md.iv AS ts,"
    " CASE WHEN NOT md.dims THEN ''::text WHEN md.allowed IS NULL THEN " MKEY " WHEN " MKEY
    " = ANY(md.allowed) THEN " MKEY " ELSE 'other' END AS series,"
    " CASE WHEN md.kind = 'sum' THEN " MNUM " END AS x,"
    " CASE WHEN md.kind = 'distinct' THEN e.payload ->> md.field END AS dv"
    " FROM business_events e"
    /* a CASE, not an OR: the planner's guess for `filter IS NULL OR payload @> filter` is a
     * thousandth of the rows, which makes it sort what it should hash */
    " JOIN part md ON md.event_type = e.event_type"
    " AND CASE WHEN md.filter IS NULL THEN true ELSE coalesce(e.payload @> md.filter, false) END"
    " WHERE e.event_type = ANY($1::text[])"
    " AND e.event_timestamp >= to_timestamp($2::bigint) AND e.event_timestamp < to_timestamp($3::bigint)"
    " AND e.event_timestamp >= to_timestamp(md.t0)"
    /* Distinct values are counted in two steps (group by value, then count the groups) so that
     * every step is a plain hash aggregate: count(DISTINCT) would sort the whole batch. */
    "), l1 AS ("
    " SELECT i, ts, series, dv, count(*) FILTER (WHERE NOT den) AS na, count(*) FILTER (WHERE den) AS nb,"
    " sum(x) AS sx FROM ev GROUP BY i, ts, series, dv"
    /* a dimension metric's total, over all its series (distinct values once) */
    "), tot AS ("
    " SELECT i, ts, dv, sum(na) AS na, sum(nb) AS nb, sum(sx) AS sx FROM l1 WHERE series <> ''"
    " GROUP BY i, ts, dv"
    "), agg AS ("
    " SELECT i, ts, series, sum(na) AS na, sum(nb) AS nb, sum(sx) AS sx, count(dv) AS nd"
    " FROM l1 GROUP BY i, ts, series"
    " UNION ALL SELECT i, ts, ''::text, sum(na), sum(nb), sum(sx), count(dv) FROM tot GROUP BY i, ts"
    "), ser AS ("
    " SELECT i, ''::text AS series FROM md"
    " UNION SELECT md.i, f.series FROM md CROSS JOIN LATERAL unnest(md.fill) AS f(series) WHERE md.dims"
    " UNION SELECT i, series FROM agg"
    "), grid AS ("
    /* over bigint, not timestamptz: the planner then knows the row count, and does not
     * JIT-compile a tick because it guessed a thousand times too many rows */
    " SELECT s.i, g AS ts, s.series FROM ser s JOIN md ON md.i = s.i"
    " CROSS JOIN LATERAL generate_series(md.t0, $3::bigint - md.iv, md.iv::bigint) AS g"
    "), res AS ("
    " SELECT coalesce(a.i, g.i) AS i, coalesce(a.ts, g.ts) AS ts, coalesce(a.series, g.series) AS series,"
    " coalesce(a.na, 0) AS na, coalesce(a.nb, 0) AS nb, coalesce(a.sx, 0) AS sx, coalesce(a.nd, 0) AS nd"
    " FROM grid g FULL JOIN agg a ON a.i = g.i AND a.ts = g.ts AND a.series = g.series"
    ")"
    " INSERT INTO aggregated_metrics AS m (metric_name, series, metric_timestamp, metric_value, numerator,"
    " denominator, events)"
    " SELECT md.name, r.series, to_timestamp(r.ts),"
    " CASE md.kind WHEN 'count' THEN r.na::float8"
    /* beyond float8's range the interval has no usable value */
    " WHEN 'sum' THEN CASE WHEN abs(r.sx) < 1e300 THEN r.sx::float8 END"
    " WHEN 'ratio' THEN CASE WHEN r.nb > 0 THEN r.na::float8 / r.nb END"
    " ELSE r.nd::float8 END,"
    " CASE WHEN md.kind = 'ratio' THEN r.na::float8 END, CASE WHEN md.kind = 'ratio' THEN r.nb::float8 END,"
    " CASE WHEN md.kind = 'ratio' THEN r.nb ELSE r.na END"
    " FROM res r JOIN md ON md.i = r.i"
    /* A dimension series of a ratio with neither part says nothing: not stored (a third of the
     * rows of a typical ratio with two dimensions); its total still is. */
    " WHERE md.kind <> 'ratio' OR r.series = '' OR r.na > 0 OR r.nb > 0"
    " ON CONFLICT (metric_name, series, metric_timestamp) DO UPDATE"
    " SET metric_value = EXCLUDED.metric_value, numerator = EXCLUDED.numerator,"
    " denominator = EXCLUDED.denominator, events = EXCLUDED.events, updated_at = now()"
    /* a steady tick re-reads the lateness window: unchanged rows are not rewritten (no WAL) */
    " WHERE (m.metric_value, m.numerator, m.denominator, m.events)"
    " IS DISTINCT FROM (EXCLUDED.metric_value, EXCLUDED.numerator, EXCLUDED.denominator, EXCLUDED.events)"
    " RETURNING array_position($4::text[], m.metric_name::text) AS i,"
    " extract(epoch FROM m.metric_timestamp)::bigint AS ts, m.series, m.metric_value, m.events";

static const bp_db_stmt_t upsert_stmt = {"bp_agg_upsert_group", upsert_text, BP_AGG_UPSERT_NPARAMS};

#define PRESCAN_KEY KEY("$4::text", "$5::text", "$6::text", "$7::text")

static const char prescan_text[] =
    "SELECT " PRESCAN_KEY " AS series, count(*) AS n FROM business_events e"
    " WHERE e.event_type = ANY($1::text[])"
    " AND e.event_timestamp >= to_timestamp($2::bigint) AND e.event_timestamp < to_timestamp($3::bigint)"
    " GROUP BY 1 ORDER BY 2 DESC, 1";

static const bp_db_stmt_t prescan_stmt = {"bp_agg_prescan", prescan_text, 7};

const bp_db_stmt_t *bp_agg_sql_upsert(void)
{
    return &upsert_stmt;
}

const bp_db_stmt_t *bp_agg_sql_prescan(void)
{
    return &prescan_stmt;
}
