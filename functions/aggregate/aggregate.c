#include "aggregate.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "cloudevents.h"
#include "json.h"
#include "log.h"
#include "metrics.h"
#include "outbox.h"
#include "timefmt.h"

#define BATCH_INTERVALS 1440 /* a day of minutes per transaction: bounded work, bounded locks */

/* Two-key advisory lock: (namespace, metric). Transaction-scoped, so a crash or a lost
 * connection can never leave it held. */
static const bp_db_stmt_t lock_sql = {
    "bp_agg_lock",
    "SELECT pg_try_advisory_xact_lock(hashtext('bizpulse.aggregate'), hashtext($1))::int AS got", 1};

static const bp_db_stmt_t watermark_sql = {
    "bp_agg_watermark",
    "SELECT extract(epoch FROM watermark)::bigint AS wm FROM metric_watermarks WHERE metric_name = $1", 1};

static const bp_db_stmt_t first_event_sql = {
    "bp_agg_first_event",
    "SELECT floor(date_part('epoch', min(event_timestamp)))::bigint AS first FROM business_events"
    " WHERE event_type = $1 AND event_timestamp >= to_timestamp($2::bigint)",
    2};

/* Recomputes every interval of [$3, $4): intervals without events become 0, not gaps (a drop to
 * zero is the most important drop). Only rows whose value is new or changed are written and
 * returned, so a quiet re-aggregation of the lateness window writes no WAL. Intervals are
 * aligned to the epoch, hence to UTC. */
static const bp_db_stmt_t upsert_count_sql = {
    "bp_agg_upsert_count",
    "INSERT INTO aggregated_metrics AS m (metric_name, series, metric_timestamp, metric_value)"
    " SELECT $1, '', g.ts, coalesce(c.n, 0)"
    " FROM generate_series(to_timestamp($3::bigint), to_timestamp($4::bigint - $5::int), make_interval(secs "
    "=> $5::int)) AS g(ts)"
    " LEFT JOIN (SELECT to_timestamp(floor(date_part('epoch', event_timestamp) / $5::int) * $5::int) AS ts, "
    "count(*) AS n"
    "            FROM business_events"
    "            WHERE event_type = $2 AND event_timestamp >= to_timestamp($3::bigint)"
    "              AND event_timestamp < to_timestamp($4::bigint)"
    "              AND ($6::jsonb IS NULL OR payload @> $6::jsonb)"
    "            GROUP BY 1) c ON c.ts = g.ts"
    " ON CONFLICT (metric_name, series, metric_timestamp) DO UPDATE"
    "   SET metric_value = EXCLUDED.metric_value, updated_at = now()"
    "   WHERE m.metric_value IS DISTINCT FROM EXCLUDED.metric_value"
    " RETURNING extract(epoch FROM metric_timestamp)::bigint AS ts",
    6};

static const bp_db_stmt_t set_watermark_sql = {
    "bp_agg_set_watermark",
    "INSERT INTO metric_watermarks (metric_name, watermark) VALUES ($1, to_timestamp($2::bigint))"
    " ON CONFLICT (metric_name) DO UPDATE"
    "   SET watermark = greatest(metric_watermarks.watermark, EXCLUDED.watermark), updated_at = now()",
    2};

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int bp_agg_options_from_env(bp_agg_options_t *opts, bp_err_t *err)
{
    long grace, lateness, lookback, budget;
    int rc;
    if ((rc = bp_config_env_int("BIZPULSE_AGG_GRACE_S", 10, 0, 3600, &grace, err)) != 0 ||
        (rc = bp_config_env_int("BIZPULSE_AGG_LATENESS_S", 300, 0, 7 * 86400, &lateness, err)) != 0 ||
        (rc = bp_config_env_int("BIZPULSE_AGG_LOOKBACK_S", 7 * 86400, 60, 366L * 86400, &lookback, err)) !=
            0 ||
        (rc = bp_config_env_int("BIZPULSE_AGG_BUDGET_MS", 20000, 100, 600000, &budget, err)) != 0)
        return rc;
    *opts = (bp_agg_options_t){.now = bp_time_now(),
                               .grace_s = grace,
                               .lateness_s = lateness,
                               .lookback_s = lookback,
                               .budget_ms = budget};
    return 0;
}

int bp_agg_check_config(const bp_config_t *cfg, bp_err_t *err)
{
    for (size_t i = 0; i < cfg->num_metrics; i++) {
        const bp_metric_t *m = &cfg->metrics[i];
        if (m->kind != BP_KIND_COUNT)
            return bp_err_set(err, BP_ECONFIG,
                              "%s: metric '%s': kind '%s' is not supported by this version yet "
                              "(only count)",
                              cfg->path, m->name, bp_config_kind_name(m->kind));
        if (m->num_dimensions > 0)
            return bp_err_set(err, BP_ECONFIG,
                              "%s: metric '%s': dimensions are not supported by this version yet", cfg->path,
                              m->name);
    }
    return 0;
}

static int query_int(bp_db_t *db, const bp_db_stmt_t *stmt, const char *const *params, const char *col,
                     int64_t *out, bool *found, bp_err_t *err)
{
    PGresult *res = NULL;
    int rc = bp_db_query(db, stmt, params, &res, err);
    if (rc != 0)
        return rc;
    *found = PQntuples(res) > 0 && !bp_db_isnull(res, 0, col);
    if (*found)
        *out = bp_db_int(res, 0, col);
    PQclear(res);
    return 0;
}

/* The aggregated event's data: what detect needs to find the points to (re)score. */
static int add_event(bp_db_t *db, const char *source, const bp_metric_t *m, int64_t from, int64_t to,
                     int64_t changed_from, long changed, const char *trigger, bp_err_t *err)
{
    char f[BP_TIME_STRLEN], t[BP_TIME_STRLEN], cf[BP_TIME_STRLEN], id[256];
    bp_time_format(from, f);
    bp_time_format(to, t);
    bp_time_format(changed_from, cf);
    /* Deterministic: the same window recomputed (a retried tick) gives the same id, which the
     * outbox's unique (source, id) then drops. */
    snprintf(id, sizeof(id), "%s/%s/%s/%ld", m->name, f, t, changed);
    bp_buf_t data;
    bp_buf_init(&data, 4096);
    int rc = bp_buf_appendf(&data, "{\"metric\":");
    rc = rc ? rc : bp_json_append_str(&data, m->name);
    rc = rc ? rc
            : bp_buf_appendf(&data,
                             ",\"interval_s\":%d,\"from\":\"%s\",\"to\":\"%s\",\"changed_from\":\"%s\","
                             "\"changed\":%ld,\"trigger\":",
                             m->interval_s, f, t, cf, changed);
    rc = rc ? rc : bp_json_append_str(&data, trigger ? trigger : "");
    rc = rc ? rc : bp_buf_append(&data, "}", 1);
    if (rc != 0) {
        bp_buf_free(&data);
        return bp_err_set(err, rc, "cannot build the aggregated event");
    }
    bp_ce_t ev = {.id = id,
                  .source = (char *)source,
                  .specversion = "1.0",
                  .type = BP_CE_TYPE_AGGREGATED,
                  .subject = m->name,
                  .data = data.base,
                  .data_len = data.len};
    rc = bp_outbox_add(db, &ev, NULL, err);
    bp_buf_free(&data);
    return rc;
}

typedef struct {
    int64_t from, to;
    long intervals, changed;
    bool skipped;
    bool done; /* caught up to now − grace */
} batch_t;

/* One transaction: lock, read the watermark, recompute at most BATCH_INTERVALS intervals,
 * advance the watermark, queue the event. */
static int run_batch(bp_worker_t *w, const bp_metric_t *m, const bp_agg_options_t *o, bool first_batch,
                     batch_t *b, bp_err_t *err)
{
    bp_db_t *db = w->db;
    int64_t iv = m->interval_s;
    int64_t end = bp_time_floor(o->now - o->grace_s, iv);
    char s_wm[24], s_to[24], s_iv[16], s_from[24];
    const char *name[] = {m->name};
    memset(b, 0, sizeof(*b));
    PGresult *res = NULL;
    int rc = bp_db_begin(db, err);
    if (rc != 0)
        return rc;
    int64_t got = 0, wm = 0;
    bool found = false;
    if ((rc = query_int(db, &lock_sql, name, "got", &got, &found, err)) != 0)
        goto fail;
    if (!got) {
        b->skipped = b->done = true;
        bp_db_rollback(db);
        return 0;
    }
    if ((rc = query_int(db, &watermark_sql, name, "wm", &wm, &found, err)) != 0)
        goto fail;
    int64_t from;
    if (found) {
        /* Only a tick's first batch looks back for late events; later batches of a catch-up
         * continue exactly where the previous one stopped. */
        from = bp_time_floor(first_batch ? wm - o->lateness_s : wm, iv);
    } else {
        int64_t first = 0;
        bool any = false;
        snprintf(s_from, sizeof(s_from), "%" PRId64, end - o->lookback_s);
        const char *p[] = {m->sel.event_type, s_from};
        if ((rc = query_int(db, &first_event_sql, p, "first", &first, &any, err)) != 0)
            goto fail;
        from = any ? bp_time_floor(first, iv) : end;
    }
    int64_t to = end;
    if (to - from > BATCH_INTERVALS * iv)
        to = from + BATCH_INTERVALS * iv;
    b->from = from;
    b->to = to;
    b->done = to == end;
    if (to > from) {
        snprintf(s_from, sizeof(s_from), "%" PRId64, from);
        snprintf(s_to, sizeof(s_to), "%" PRId64, to);
        snprintf(s_iv, sizeof(s_iv), "%" PRId64, iv);
        const char *p[] = {m->name, m->sel.event_type, s_from, s_to, s_iv, m->sel.filter_json};
        if ((rc = bp_db_query(db, &upsert_count_sql, p, &res, err)) != 0)
            goto fail;
        b->intervals = (long)((to - from) / iv);
        b->changed = PQntuples(res);
        int64_t changed_from = to;
        for (int i = 0; i < PQntuples(res); i++) {
            int64_t ts = bp_db_int(res, i, "ts");
            if (ts < changed_from)
                changed_from = ts;
        }
        PQclear(res);
        res = NULL;
        if (b->changed > 0 &&
            (rc = add_event(db, w->app->source, m, from, to, changed_from, b->changed, o->trigger, err)) != 0)
            goto fail;
    }
    if (to > (found ? wm : 0)) {
        snprintf(s_wm, sizeof(s_wm), "%" PRId64, to);
        const char *p[] = {m->name, s_wm};
        if ((rc = bp_db_query(db, &set_watermark_sql, p, NULL, err)) != 0)
            goto fail;
    }
    return bp_db_commit(db, err);
fail:
    PQclear(res);
    bp_db_rollback(db);
    return rc;
}

static int append_result(bp_buf_t *out, bool comma, const bp_metric_t *m, const batch_t *first,
                         const batch_t *last, long intervals, long changed, int batches)
{
    char f[BP_TIME_STRLEN], t[BP_TIME_STRLEN];
    int rc = bp_buf_appendf(out, "%s{\"metric\":", comma ? "," : "");
    rc = rc ? rc : bp_json_append_str(out, m->name);
    if (first->skipped)
        return rc ? rc : bp_buf_appendf(out, ",\"skipped\":\"locked by another replica\"}");
    return rc ? rc
              : bp_buf_appendf(
                    out,
                    ",\"from\":\"%s\",\"to\":\"%s\",\"intervals\":%ld,\"changed\":%ld,\"batches\":%d,"
                    "\"caught_up\":%s}",
                    bp_time_format(first->from, f), bp_time_format(last->to, t), intervals, changed, batches,
                    last->done ? "true" : "false");
}

int bp_agg_tick(bp_worker_t *w, const bp_agg_options_t *opts, bp_buf_t *out, bp_err_t *err)
{
    const bp_config_t *cfg = w->app->config;
    int64_t start = mono_ms();
    int rc = bp_buf_append(out, "[", 1);
    for (size_t i = 0; rc == 0 && i < cfg->num_metrics; i++) {
        const bp_metric_t *m = &cfg->metrics[i];
        batch_t first = {0}, b = {0};
        long intervals = 0, changed = 0;
        int batches = 0;
        do {
            if ((rc = run_batch(w, m, opts, batches == 0, &b, err)) != 0)
                break;
            if (batches++ == 0)
                first = b;
            intervals += b.intervals;
            changed += b.changed;
        } while (!b.done && mono_ms() - start < opts->budget_ms);
        if (rc != 0)
            break;
        bp_metrics_add("bizpulse_aggregate_intervals_total", "", (double)intervals);
        bp_metrics_add("bizpulse_aggregate_changed_total", "", (double)changed);
        char fields[160];
        snprintf(fields, sizeof(fields), "\"metric\":\"%.100s\",\"intervals\":%ld,\"changed\":%ld", m->name,
                 intervals, changed);
        bp_log_fields(BP_LOG_INFO, fields, "aggregated %s", m->name);
        rc = append_result(out, i > 0, m, &first, &b, intervals, changed, batches);
    }
    if (rc == 0)
        rc = bp_buf_append(out, "]", 1);
    return rc;
}
