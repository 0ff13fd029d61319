#include "aggregate.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "agg_sql.h"
#include "cloudevents.h"
#include "json.h"
#include "log.h"
#include "metrics.h"
#include "outbox.h"
#include "series.h"
#include "timefmt.h"

#define REVISED_MAX 50 /* revised ranges listed in one event; beyond, the event says "truncated" */

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
    " WHERE event_type = ANY($1::text[]) AND event_timestamp >= to_timestamp($2::bigint)",
    2};

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
    long grace, lateness, lookback, ttl, budget;
    int rc;
    if ((rc = bp_config_env_int("BIZPULSE_AGG_GRACE_S", 10, 0, 3600, &grace, err)) != 0 ||
        (rc = bp_config_env_int("BIZPULSE_AGG_LATENESS_S", 300, 0, 7 * 86400, &lateness, err)) != 0 ||
        (rc = bp_config_env_int("BIZPULSE_AGG_LOOKBACK_S", 7 * 86400, 60, 366L * 86400, &lookback, err)) !=
            0 ||
        (rc = bp_config_env_int("BIZPULSE_AGG_SERIES_TTL_S", 86400, 60, 366L * 86400, &ttl, err)) != 0 ||
        (rc = bp_config_env_int("BIZPULSE_AGG_BUDGET_MS", 20000, 100, 600000, &budget, err)) != 0)
        return rc;
    *opts = (bp_agg_options_t){.now = bp_time_now(),
                               .grace_s = grace,
                               .lateness_s = lateness,
                               .lookback_s = lookback,
                               .series_ttl_s = ttl,
                               .budget_ms = budget};
    return 0;
}

/* The event types a metric reads, as a text[] literal. */
static int types_array(const bp_metric_t *m, bp_buf_t *out)
{
    const char *types[2] = {m->sel.event_type, NULL};
    size_t n = 1;
    if (m->kind == BP_KIND_RATIO) {
        types[0] = m->num.event_type;
        types[1] = m->den.event_type;
        n = strcmp(types[0], types[1]) == 0 ? 1 : 2;
    }
    return bp_db_append_text_array(out, types, n);
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

/* What recomputing one window produced. */
typedef struct {
    int64_t from, to;
    long intervals, changed, folded;
    int64_t changed_from;
    uint64_t hash;    /* of the changed rows: the event id is deterministic in them */
    bp_buf_t revised; /* JSON array body of revised ranges */
    int num_revised;
    bool skipped, done;
} window_t;

static void fnv(uint64_t *h, const char *s)
{
    for (; *s; s++)
        *h = (*h ^ (unsigned char)*s) * 1099511628211ULL;
    *h = (*h ^ 0xff) * 1099511628211ULL;
}

static int append_range(window_t *win, int64_t from, int64_t to)
{
    char f[BP_TIME_STRLEN], t[BP_TIME_STRLEN];
    if (win->num_revised++ >= REVISED_MAX)
        return 0;
    return bp_buf_appendf(&win->revised, "%s{\"from\":\"%s\",\"to\":\"%s\"}", win->revised.len ? "," : "",
                          bp_time_format(from, f), bp_time_format(to, t));
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* Reads the upsert's RETURNING rows: how many changed, from when, which revised (older than the
 * previous watermark), the content hash, and the dimension series that had events. */
static int digest(window_t *win, PGresult *res, int64_t interval, int64_t revised_before, const char ***seen,
                  size_t *num_seen)
{
    int n = PQntuples(res);
    int64_t *rev = malloc(((size_t)n + 1) * sizeof(int64_t));
    *seen = calloc((size_t)n + 1, sizeof(char *));
    if (rev == NULL || *seen == NULL) {
        free(rev);
        return BP_ENOMEM;
    }
    size_t nrev = 0;
    int cts = PQfnumber(res, "ts"), cs = PQfnumber(res, "series"), cv = PQfnumber(res, "metric_value"),
        ce = PQfnumber(res, "events");
    win->changed = n;
    win->changed_from = win->to;
    win->hash = 1469598103934665603ULL;
    for (int i = 0; i < n; i++) {
        int64_t ts = strtoll(PQgetvalue(res, i, cts), NULL, 10);
        const char *series = PQgetvalue(res, i, cs);
        if (ts < win->changed_from)
            win->changed_from = ts;
        if (ts < revised_before)
            rev[nrev++] = ts;
        fnv(&win->hash, PQgetvalue(res, i, cts));
        fnv(&win->hash, series);
        fnv(&win->hash, PQgetisnull(res, i, cv) ? "null" : PQgetvalue(res, i, cv));
        if (series[0] != '\0' && strcmp(PQgetvalue(res, i, ce), "0") != 0)
            (*seen)[(*num_seen)++] = series;
    }
    /* Contiguous runs of revised intervals become ranges. */
    qsort(rev, nrev, sizeof(int64_t), cmp_i64);
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < nrev;) {
        size_t j = i;
        while (j + 1 < nrev && rev[j + 1] - rev[j] <= interval)
            j++;
        rc = append_range(win, rev[i], rev[j] + interval);
        i = j + 1;
    }
    free(rev);
    return rc;
}

static int add_event(bp_db_t *db, const char *source, const bp_metric_t *m, const window_t *win,
                     const char *trigger, bp_err_t *err)
{
    char f[BP_TIME_STRLEN], t[BP_TIME_STRLEN], cf[BP_TIME_STRLEN], id[256];
    bp_time_format(win->from, f);
    bp_time_format(win->to, t);
    bp_time_format(win->changed_from, cf);
    /* Deterministic: the same window with the same changes (a retried tick) gives the same id,
     * which the outbox's unique (source, id) then drops; different changes, a different id. */
    snprintf(id, sizeof(id), "%s/%s/%s/%016" PRIx64, m->name, f, t, win->hash);
    bp_buf_t data;
    bp_buf_init(&data, 32768);
    int rc = bp_buf_appendf(&data, "{\"metric\":");
    rc = rc ? rc : bp_json_append_str(&data, m->name);
    rc = rc ? rc
            : bp_buf_appendf(
                  &data,
                  ",\"kind\":\"%s\",\"interval_s\":%d,\"from\":\"%s\",\"to\":\"%s\",\"changed_from\":\"%s\","
                  "\"changed\":%ld,\"revised\":[%s],\"revised_truncated\":%s,\"trigger\":",
                  bp_config_kind_name(m->kind), m->interval_s, f, t, cf, win->changed,
                  win->revised.base ? win->revised.base : "",
                  win->num_revised > REVISED_MAX ? "true" : "false");
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

/* The series allowed through when the cap is reached: every known one, then the largest new
 * ones (by events in this window) until max_series, then 'other' for the rest. */
static int choose_allowed(bp_db_t *db, const bp_metric_t *m, const bp_series_set_t *known, const char *types,
                          const char *s_from, const char *s_to, bp_buf_t *allowed, long *folded,
                          bp_err_t *err)
{
    const char *p[] = {types, s_from, s_to, NULL, NULL, NULL, NULL};
    for (size_t i = 0; i < m->num_dimensions; i++)
        p[3 + i] = m->dimensions[i];
    PGresult *res = NULL;
    int rc = bp_db_query(db, bp_agg_sql_prescan(), p, &res, err);
    if (rc != 0)
        return rc;
    size_t n = (size_t)PQntuples(res), room = known->n < (size_t)m->max_series ? m->max_series - known->n : 0;
    const char **names = calloc(known->n + n + 2, sizeof(char *));
    if (names == NULL) {
        PQclear(res);
        return bp_err_set(err, BP_ENOMEM, "out of memory");
    }
    size_t k = 0;
    for (size_t i = 0; i < known->n; i++)
        names[k++] = known->names[i];
    *folded = 0;
    for (size_t i = 0; i < n; i++) {
        const char *s = PQgetvalue(res, (int)i, 0);
        if (bp_series_has(known, s))
            continue;
        if (room > 0) {
            names[k++] = s;
            room--;
        } else {
            (*folded)++;
        }
    }
    names[k++] = BP_SERIES_OTHER;
    rc = bp_db_append_text_array(allowed, names, k);
    free(names);
    PQclear(res);
    return rc != 0 ? bp_err_set(err, rc, "too many series") : 0;
}

/* Recomputes [win->from, win->to) of m inside the caller's transaction (which holds the metric's
 * lock): the upsert, the cardinality cap, the series registry, the event. */
static int compute_window(bp_worker_t *w, const bp_metric_t *m, const bp_agg_options_t *o,
                          int64_t revised_before, window_t *win, bp_err_t *err)
{
    bp_db_t *db = w->db;
    char s_from[24], s_to[24], s_iv[16];
    snprintf(s_from, sizeof(s_from), "%" PRId64, win->from);
    snprintf(s_to, sizeof(s_to), "%" PRId64, win->to);
    snprintf(s_iv, sizeof(s_iv), "%d", m->interval_s);
    bp_buf_t types, fill, allowed;
    bp_buf_init(&types, 4096);
    bp_buf_init(&fill, 64u << 20);
    bp_buf_init(&allowed, 64u << 20);
    bp_series_set_t known = {0};
    PGresult *res = NULL;
    const char **seen = NULL;
    size_t num_seen = 0;
    bool dims = m->num_dimensions > 0;
    int rc = types_array(m, &types);
    if (rc != 0) {
        rc = bp_err_set(err, rc, "event types too long");
        goto out;
    }
    if (dims) {
        if ((rc = bp_series_load(db, m->name, &known, err)) != 0)
            goto out;
        /* Zero-fill the series that had events recently; older ones have gone away. */
        const char **recent = calloc(known.n + 1, sizeof(char *));
        size_t nr = 0;
        if (recent == NULL) {
            rc = bp_err_set(err, BP_ENOMEM, "out of memory");
            goto out;
        }
        for (size_t i = 0; i < known.n; i++)
            if (known.last_seen[i] >= win->from - o->series_ttl_s)
                recent[nr++] = known.names[i];
        rc = bp_db_append_text_array(&fill, recent, nr);
        free(recent);
        if (rc == 0 && known.n >= (size_t)m->max_series) {
            long folded = 0;
            rc = choose_allowed(db, m, &known, types.base, s_from, s_to, &allowed, &folded, err);
            win->folded = folded;
        }
    } else {
        rc = bp_buf_append(&fill, "{}", 2);
    }
    if (rc != 0) {
        if (err == NULL || err->code == BP_OK)
            rc = bp_err_set(err, rc, "cannot prepare the window");
        goto out;
    }
    const char *p[BP_AGG_UPSERT_NPARAMS] = {m->name,
                                            s_from,
                                            s_to,
                                            s_iv,
                                            types.base,
                                            m->kind == BP_KIND_RATIO ? m->num.filter_json
                                                                     : m->sel.filter_json,
                                            m->kind == BP_KIND_RATIO ? m->num.event_type : m->sel.event_type,
                                            m->den.filter_json,
                                            m->den.event_type,
                                            m->field,
                                            NULL,
                                            NULL,
                                            NULL,
                                            NULL,
                                            allowed.base,
                                            fill.base};
    for (size_t i = 0; i < m->num_dimensions; i++)
        p[10 + i] = m->dimensions[i];
    /* Optimistic: below the cap nothing is folded, in one pass. Only if this window brings more
     * new series than the cap has room for is it redone with folding. */
    if (dims && allowed.base == NULL && (rc = bp_db_exec_static(db, "SAVEPOINT bp_agg_window", err)) != 0)
        goto out;
    if ((rc = bp_db_query(db, bp_agg_sql_upsert(m), p, &res, err)) != 0)
        goto out;
    if (dims && allowed.base == NULL) {
        size_t fresh = 0;
        for (int i = 0; i < PQntuples(res); i++) {
            const char *s = PQgetvalue(res, i, PQfnumber(res, "series"));
            fresh += s[0] != '\0' && !bp_series_has(&known, s);
        }
        /* fresh counts rows, not series: an overestimate, which only costs a redo */
        if (known.n + fresh > (size_t)m->max_series) {
            long folded = 0;
            PQclear(res);
            res = NULL;
            if ((rc = bp_db_exec_static(db, "ROLLBACK TO SAVEPOINT bp_agg_window", err)) != 0 ||
                (rc = choose_allowed(db, m, &known, types.base, s_from, s_to, &allowed, &folded, err)) != 0)
                goto out;
            win->folded = folded;
            p[14] = allowed.base;
            if ((rc = bp_db_query(db, bp_agg_sql_upsert(m), p, &res, err)) != 0)
                goto out;
        }
    }
    win->intervals = (long)((win->to - win->from) / m->interval_s);
    if ((rc = digest(win, res, m->interval_s, revised_before, &seen, &num_seen)) != 0) {
        rc = bp_err_set(err, rc, "cannot digest the window");
        goto out;
    }
    if (dims && (rc = bp_series_touch(db, m->name, seen, num_seen, win->to, err)) != 0)
        goto out;
    if (win->changed > 0)
        rc = add_event(db, w->app->source, m, win, o->trigger, err);
out:
    free(seen);
    PQclear(res);
    bp_series_clear(&known);
    bp_buf_free(&types);
    bp_buf_free(&fill);
    bp_buf_free(&allowed);
    return rc;
}

/* One transaction of a tick: lock, read the watermark, recompute at most a batch of
 * intervals, advance the watermark. */
static int tick_batch(bp_worker_t *w, const bp_metric_t *m, const bp_agg_options_t *o, int64_t resume,
                      window_t *win, bp_err_t *err)
{
    bp_db_t *db = w->db;
    int64_t iv = m->interval_s;
    int64_t end = bp_time_floor(o->now - o->grace_s, iv);
    const char *name[] = {m->name};
    int rc = bp_db_begin(db, err);
    if (rc != 0)
        return rc;
    int64_t got = 0, wm = 0;
    bool found = false;
    if ((rc = query_int(db, &lock_sql, name, "got", &got, &found, err)) != 0)
        goto fail;
    if (!got) {
        win->skipped = win->done = true;
        bp_db_rollback(db);
        return 0;
    }
    if ((rc = query_int(db, &watermark_sql, name, "wm", &wm, &found, err)) != 0)
        goto fail;
    if (found) {
        /* A tick's first batch looks back for late events from the watermark; later batches
         * continue exactly where the previous one stopped (resume), which may still be behind
         * the watermark when the lateness window is longer than one batch. */
        win->from = resume > 0 ? resume : bp_time_floor(wm - o->lateness_s, iv);
    } else {
        bp_buf_t types;
        bp_buf_init(&types, 4096);
        char s_since[24];
        snprintf(s_since, sizeof(s_since), "%" PRId64, end - o->lookback_s);
        int64_t first = 0;
        bool any = false;
        rc = types_array(m, &types);
        const char *p[] = {types.base, s_since};
        if (rc == 0)
            rc = query_int(db, &first_event_sql, p, "first", &first, &any, err);
        bp_buf_free(&types);
        if (rc != 0)
            goto fail;
        win->from = any ? bp_time_floor(first, iv) : end;
        wm = win->from;
    }
    win->to = end;
    if (win->to - win->from > BP_AGG_BATCH_INTERVALS * iv)
        win->to = win->from + BP_AGG_BATCH_INTERVALS * iv;
    win->done = win->to == end;
    if (win->to > win->from && (rc = compute_window(w, m, o, wm, win, err)) != 0)
        goto fail;
    if (!found || win->to > wm) {
        char s_wm[24];
        snprintf(s_wm, sizeof(s_wm), "%" PRId64, win->to > wm ? win->to : wm);
        const char *p[] = {m->name, s_wm};
        if ((rc = bp_db_query(db, &set_watermark_sql, p, NULL, err)) != 0)
            goto fail;
    }
    return bp_db_commit(db, err);
fail:
    bp_db_rollback(db);
    return rc;
}

typedef struct {
    int64_t from, to;
    long intervals, changed, folded;
    int batches, revised;
    bool skipped, done;
} summary_t;

static void add_up(summary_t *s, const window_t *win)
{
    if (s->batches++ == 0) {
        s->from = win->from;
        s->skipped = win->skipped;
    }
    if (win->to > s->to)
        s->to = win->to;
    s->intervals += win->intervals;
    s->changed += win->changed;
    s->folded += win->folded;
    s->revised += win->num_revised;
    s->done = win->done;
}

static int append_result(bp_buf_t *out, bool comma, const bp_metric_t *m, const summary_t *s)
{
    char f[BP_TIME_STRLEN], t[BP_TIME_STRLEN];
    int rc = bp_buf_appendf(out, "%s{\"metric\":", comma ? "," : "");
    rc = rc ? rc : bp_json_append_str(out, m->name);
    if (s->skipped)
        return rc ? rc : bp_buf_appendf(out, ",\"skipped\":\"locked by another replica\"}");
    return rc ? rc
              : bp_buf_appendf(
                    out,
                    ",\"from\":\"%s\",\"to\":\"%s\",\"intervals\":%ld,\"changed\":%ld,\"revised_ranges\":%d,"
                    "\"folded_series\":%ld,\"batches\":%d,\"caught_up\":%s}",
                    bp_time_format(s->from, f), bp_time_format(s->to, t), s->intervals, s->changed,
                    s->revised, s->folded, s->batches, s->done ? "true" : "false");
}

static void record(const bp_metric_t *m, const summary_t *s)
{
    char labels[160], fields[256];
    snprintf(labels, sizeof(labels), "metric=\"%s\"", m->name); /* names are [A-Za-z0-9_.-] */
    bp_metrics_add("bizpulse_aggregate_intervals_total", labels, (double)s->intervals);
    bp_metrics_add("bizpulse_aggregate_changed_total", labels, (double)s->changed);
    if (s->folded > 0)
        bp_metrics_add("bizpulse_aggregate_series_folded_total", labels, (double)s->folded);
    snprintf(fields, sizeof(fields), "\"metric\":\"%s\",\"intervals\":%ld,\"changed\":%ld,\"batches\":%d",
             m->name, s->intervals, s->changed, s->batches);
    bp_log_fields(BP_LOG_INFO, fields, "aggregated %s", m->name);
}

int bp_agg_tick(bp_worker_t *w, const bp_agg_options_t *opts, bp_buf_t *out, bp_err_t *err)
{
    const bp_config_t *cfg = w->app->config;
    int64_t start = mono_ms();
    int rc = bp_buf_append(out, "[", 1);
    for (size_t i = 0; rc == 0 && i < cfg->num_metrics; i++) {
        const bp_metric_t *m = &cfg->metrics[i];
        summary_t s = {0};
        window_t win;
        do {
            memset(&win, 0, sizeof(win));
            bp_buf_init(&win.revised, 16384);
            rc = tick_batch(w, m, opts, s.batches == 0 ? 0 : s.to, &win, err);
            if (rc == 0)
                add_up(&s, &win);
            bp_buf_free(&win.revised);
        } while (rc == 0 && !win.done && mono_ms() - start < opts->budget_ms);
        if (rc != 0)
            break;
        record(m, &s);
        rc = append_result(out, i > 0, m, &s);
    }
    if (rc == 0)
        rc = bp_buf_append(out, "]", 1);
    return rc;
}

int bp_agg_backfill(bp_worker_t *w, const bp_metric_t *m, int64_t from, int64_t to,
                    const bp_agg_options_t *opts, bp_buf_t *out, bp_err_t *err)
{
    int64_t iv = m->interval_s;
    from = bp_time_floor(from, iv);
    to = bp_time_floor(to + iv - 1, iv);
    int64_t closed = bp_time_floor(opts->now - opts->grace_s, iv);
    if (to > closed)
        to = closed; /* open intervals are the tick's business */
    if (from >= to)
        return bp_err_set(err, BP_EINVAL,
                          "backfill range is empty once aligned to %d s intervals and cut at now - grace",
                          m->interval_s);
    const char *name[] = {m->name};
    summary_t s = {0};
    int rc = 0;
    for (int64_t at = from; rc == 0 && at < to;) {
        window_t win = {.from = at,
                        .to = at + BP_AGG_BATCH_INTERVALS * iv < to ? at + BP_AGG_BATCH_INTERVALS * iv : to};
        bp_buf_init(&win.revised, 16384);
        int64_t got = 0;
        bool found = false;
        rc = bp_db_begin(w->db, err);
        if (rc == 0)
            rc = query_int(w->db, &lock_sql, name, "got", &got, &found, err);
        if (rc == 0 && !got)
            rc = bp_err_set(err, BP_EBUSY,
                            "metric '%s' is being aggregated by another replica; retry shortly", m->name);
        if (rc == 0)
            rc = compute_window(w, m, opts, INT64_MAX, &win, err);
        if (rc == 0)
            rc = bp_db_commit(w->db, err);
        else
            bp_db_rollback(w->db);
        win.done = win.to == to;
        if (rc == 0)
            add_up(&s, &win);
        at = win.to;
        bp_buf_free(&win.revised);
    }
    if (rc != 0)
        return rc;
    record(m, &s);
    return append_result(out, false, m, &s);
}
