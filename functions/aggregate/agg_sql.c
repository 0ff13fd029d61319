#include "agg_sql.h"

#include <assert.h>
#include <pthread.h>
#include <stdio.h>

#define SQL_MAX 6144

/* A dimension's part of a series key: "name=value", the value escaped so that ',' and '='
 * inside payload values cannot make two different combinations print the same key. NULL when
 * the dimension parameter is NULL, which concat_ws skips. */
#define DIM(n)                                                                                               \
    "$" #n "::text || '=' || replace(replace(replace(coalesce(e.payload ->> $" #n "::text, '(none)'), '%', " \
    "'%25'), ',', '%2C'), '=', '%3D')"

#define KEY(a, b, c, d) "concat_ws(',', " DIM(a) ", " DIM(b) ", " DIM(c) ", " DIM(d) ")"

#define MATCH_A "(event_type = $7::text AND ($6::jsonb IS NULL OR payload @> $6::jsonb))"
#define MATCH_B "(event_type = $9::text AND ($8::jsonb IS NULL OR payload @> $8::jsonb))"
/* Numbers, and strings that are plainly numbers; anything else does not count toward a sum. */
#define NUMVAL                                                                                               \
    "CASE jsonb_typeof(payload -> $10::text) WHEN 'number' THEN (payload ->> $10::text)::numeric"            \
    " WHEN 'string' THEN CASE WHEN payload ->> $10::text ~ "                                                 \
    "'^\\s*[-+]?([0-9]+\\.?[0-9]*|\\.[0-9]+)([eE][-+]?[0-9]{1,3})?\\s*$'"                                    \
    " THEN (payload ->> $10::text)::numeric END END"

typedef struct {
    const char *aggs;  /* agg columns: value, num, den, events */
    const char *value; /* final float8 value from a.* */
    const char *parts; /* final num, den columns */
    const char *keep;  /* which result rows are stored */
} kind_sql_t;

/* Zero-fill the total, the series seen lately, and every series seen anywhere in this window
 * (so a series is dense from the first window it appears in). */
#define SERIES_DIMS "SELECT ''::text AS series UNION SELECT unnest($16::text[]) UNION SELECT series FROM agg"
#define SERIES_TOTAL "SELECT ''::text AS series"
/* A dimension series of a ratio with neither part says nothing: not stored (a third of the rows
 * of a typical ratio with two dimensions); its total still is. So a ratio's grid is its total
 * only: zero-filling its dimension series made rows that KEEP_RATIO then dropped (5x the rows
 * it keeps, sorted for the join, in a day's batch of a ratio with two dimensions). */
#define KEEP_RATIO "(series = '' OR num > 0 OR den > 0)"

static const kind_sql_t kinds[] = {
    [BP_KIND_COUNT] = {"count(*) FILTER (WHERE " MATCH_A
                       ") AS value, NULL::bigint AS num, NULL::bigint AS den,"
                       " count(*) FILTER (WHERE " MATCH_A ") AS events",
                       "coalesce(a.value, 0)::float8", "NULL::float8 AS num, NULL::float8 AS den", "true"},
    [BP_KIND_SUM] = {"sum(" NUMVAL ") FILTER (WHERE " MATCH_A
                     ") AS value, NULL::bigint AS num, NULL::bigint AS den,"
                     " count(*) FILTER (WHERE " MATCH_A ") AS events",
                     /* beyond float8's range the interval has no usable value */
                     "CASE WHEN abs(coalesce(a.value, 0)) < 1e300 THEN coalesce(a.value, 0)::float8 END",
                     "NULL::float8 AS num, NULL::float8 AS den", "true"},
    [BP_KIND_RATIO] = {"NULL::numeric AS value, count(*) FILTER (WHERE " MATCH_A ") AS num,"
                       " count(*) FILTER (WHERE " MATCH_B ") AS den, count(*) FILTER (WHERE " MATCH_B
                       ") AS events",
                       "CASE WHEN coalesce(a.den, 0) > 0 THEN a.num::float8 / a.den END",
                       "coalesce(a.num, 0)::float8 AS num, coalesce(a.den, 0)::float8 AS den", KEEP_RATIO},
    [BP_KIND_DISTINCT] = {"count(DISTINCT payload ->> $10::text) FILTER (WHERE " MATCH_A ") AS value,"
                          " NULL::bigint AS num, NULL::bigint AS den, count(*) FILTER (WHERE " MATCH_A
                          ") AS events",
                          "coalesce(a.value, 0)::float8", "NULL::float8 AS num, NULL::float8 AS den", "true"},
};

static const char upsert_fmt[] =
    "WITH ev AS ("
    " SELECT to_timestamp(floor(date_part('epoch', e.event_timestamp) / $4::int) * $4::int) AS ts,"
    " %s AS series, e.event_type, e.payload"
    " FROM business_events e%s"
    " WHERE e.event_type = ANY($5::text[])"
    " AND e.event_timestamp >= to_timestamp($2::bigint) AND e.event_timestamp < to_timestamp($3::bigint)"
    "), agg AS ("
    " SELECT ts, %s AS series, %s FROM ev GROUP BY %s"
    "), grid AS ("
    /* over bigint, not timestamptz: the planner then knows the row count, and does not
     * JIT-compile a tick because it guessed a thousand times too many rows */
    " SELECT to_timestamp(g) AS ts, s.series"
    " FROM generate_series($2::bigint, $3::bigint - $4::int, $4::int) AS g CROSS JOIN (%s) AS s"
    "), res AS ("
    " SELECT coalesce(a.ts, g.ts) AS ts, coalesce(a.series, g.series) AS series, %s AS value, %s,"
    " coalesce(a.events, 0) AS events"
    " FROM grid g FULL JOIN agg a ON a.ts = g.ts AND a.series = g.series"
    ")"
    " INSERT INTO aggregated_metrics AS m (metric_name, series, metric_timestamp, metric_value, numerator, "
    "denominator, events)"
    " SELECT $1, series, ts, value, num, den, events FROM res"
    /* every parameter is referenced with its type in every variant, so all variants prepare */
    " WHERE num_nonnulls($6::jsonb, $7::text, $8::jsonb, $9::text, $10::text, $11::text, $12::text, "
    "$13::text, $14::text, $15::text[], $16::text[]) >= 0 AND %s"
    "%s RETURNING extract(epoch FROM metric_timestamp)::bigint AS ts, series, metric_value, events";

/* The upsert's conflict clause; the insert variant has none. */
static const char on_conflict[] =
    " ON CONFLICT (metric_name, series, metric_timestamp) DO UPDATE"
    " SET metric_value = EXCLUDED.metric_value, numerator = EXCLUDED.numerator,"
    " denominator = EXCLUDED.denominator, events = EXCLUDED.events, updated_at = now()"
    " WHERE (m.metric_value, m.numerator, m.denominator, m.events)"
    " IS DISTINCT FROM (EXCLUDED.metric_value, EXCLUDED.numerator, EXCLUDED.denominator, EXCLUDED.events)";

#define FOLDED_KEY "CASE WHEN $15::text[] IS NULL OR k.key = ANY($15::text[]) THEN k.key ELSE 'other' END"

/* [kind][has dimensions][0 upsert, 1 plain insert] */
static char upsert_text[4][2][2][SQL_MAX];
static char upsert_names[4][2][2][40];
static bp_db_stmt_t upsert_stmts[4][2][2];
static pthread_once_t once = PTHREAD_ONCE_INIT;

static const char prescan_text[] =
    "SELECT k.key AS series, count(*) AS n FROM business_events e"
    " CROSS JOIN LATERAL (SELECT " KEY(4, 5, 6, 7) " AS key) AS k"
                                                   " WHERE e.event_type = ANY($1::text[])"
                                                   " AND e.event_timestamp >= to_timestamp($2::bigint) AND "
                                                   "e.event_timestamp < to_timestamp($3::bigint)"
                                                   " GROUP BY 1 ORDER BY 2 DESC, 1";

static const bp_db_stmt_t prescan_stmt = {"bp_agg_prescan", prescan_text, 7};

/* The dimension key is computed once per event, in a lateral subquery. */
#define LATERAL_KEY " CROSS JOIN LATERAL (SELECT " KEY(11, 12, 13, 14) " AS key) AS k"

static void build(void)
{
    static const char *const kind_names[] = {"count", "sum", "ratio", "distinct"};
    for (int k = 0; k < 4; k++) {
        for (int dims = 0; dims < 2; dims++) {
            for (int plain = 0; plain < 2; plain++) {
                char *text = upsert_text[k][dims][plain], *name = upsert_names[k][dims][plain];
                int n = snprintf(
                    text, SQL_MAX, upsert_fmt, dims ? FOLDED_KEY : "''::text", dims ? LATERAL_KEY : "",
                    dims ? "CASE WHEN grouping(series) = 1 THEN ''::text ELSE series END" : "''::text",
                    kinds[k].aggs, dims ? "GROUPING SETS ((ts), (ts, series))" : "ts",
                    dims && k != BP_KIND_RATIO ? SERIES_DIMS : SERIES_TOTAL, kinds[k].value, kinds[k].parts,
                    kinds[k].keep, plain ? "" : on_conflict);
                assert(n < SQL_MAX && "SQL_MAX too small for the aggregation statement");
                (void)n;
                snprintf(name, sizeof(upsert_names[k][dims][plain]), "bp_agg_%s_%s%s",
                         plain ? "insert" : "upsert", kind_names[k], dims ? "_dims" : "");
                upsert_stmts[k][dims][plain] = (bp_db_stmt_t){name, text, BP_AGG_UPSERT_NPARAMS};
            }
        }
    }
}

const bp_db_stmt_t *bp_agg_sql_upsert(const bp_metric_t *m)
{
    pthread_once(&once, build);
    return &upsert_stmts[m->kind][m->num_dimensions > 0][0];
}

const bp_db_stmt_t *bp_agg_sql_insert(const bp_metric_t *m)
{
    pthread_once(&once, build);
    return &upsert_stmts[m->kind][m->num_dimensions > 0][1];
}

/* Every aggregation stores the total series for every interval of its window (zero-filled), so
 * a window without a single total row has no rows at all. */
static const bp_db_stmt_t vacant_stmt = {
    "bp_agg_vacant",
    "SELECT (NOT EXISTS (SELECT 1 FROM aggregated_metrics WHERE metric_name = $1 AND series = ''"
    " AND metric_timestamp >= to_timestamp($2::bigint) AND metric_timestamp < to_timestamp($3::bigint)))::int"
    " AS vacant",
    3};

const bp_db_stmt_t *bp_agg_sql_vacant(void)
{
    return &vacant_stmt;
}

const bp_db_stmt_t *bp_agg_sql_prescan(void)
{
    return &prescan_stmt;
}
