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

#define BATCH_WORK_MEM "128MB" /* for batches longer than an hour; see tick_round */
#define GENERIC_MAX_S 900      /* windows up to this long run on generic plans; see tick_round */
#define REVISED_MAX 50         /* revised ranges listed in one event; beyond, the event says "truncated" */

/* Two-key advisory locks: (namespace, metric), one try per metric of the tick, in one round
 * trip. Transaction-scoped, so a crash or a lost connection can never leave one held. */
static const bp_db_stmt_t lock_sql = {
    "bp_agg_lock_many",
    "SELECT u.i, pg_try_advisory_xact_lock(hashtext('bizpulse.aggregate'), hashtext(u.n))::int AS got"
    " FROM unnest($1::text[]) WITH ORDINALITY AS u(n, i) ORDER BY u.i",
    1};

static const bp_db_stmt_t watermark_sql = {
    "bp_agg_watermarks",
    "SELECT u.i, extract(epoch FROM w.watermark)::bigint AS wm"
    " FROM unnest($1::text[]) WITH ORDINALITY AS u(n, i) LEFT JOIN metric_watermarks w ON w.metric_name = u.n"
    " ORDER BY u.i",
    1};

static const bp_db_stmt_t first_event_sql = {
    "bp_agg_first_event",
    "SELECT floor(date_part('epoch', min(event_timestamp)))::bigint AS first FROM business_events"
    " WHERE event_type = ANY($1::text[]) AND event_timestamp >= to_timestamp($2::bigint)",
    2};

static const bp_db_stmt_t set_watermarks_sql = {
    "bp_agg_set_watermarks",
    "INSERT INTO metric_watermarks (metric_name, watermark)"
    " SELECT u.n, to_timestamp(u.w) FROM unnest($1::text[], $2::bigint[]) AS u(n, w)"
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
 * previous watermark), the content hash, and the dimension series that had events (*seen points
 * into res). */
static int digest(window_t *win, const PGresult *res, int64_t interval, int64_t revised_before,
                  const char ***seen, size_t *num_seen)
{
    size_t n = (size_t)PQntuples(res);
    int64_t *rev = malloc((n + 1) * sizeof(int64_t));
    *seen = calloc(n + 1, sizeof(char *));
    *num_seen = 0;
    if (rev == NULL || *seen == NULL) {
        free(rev);
        return BP_ENOMEM;
    }
    size_t nrev = 0;
    int cts = PQfnumber(res, "ts"), cs = PQfnumber(res, "series"), cv = PQfnumber(res, "metric_value"),
        ce = PQfnumber(res, "events");
    win->changed = (long)n;
    win->changed_from = win->to;
    /* a sum of per-row hashes: the same changes give the same id in whatever order they return */
    win->hash = 0;
    for (int i = 0; i < (int)n; i++) {
        int64_t ts = strtoll(PQgetvalue(res, i, cts), NULL, 10);
        const char *series = PQgetvalue(res, i, cs);
        if (ts < win->changed_from)
            win->changed_from = ts;
        if (ts < revised_before)
            rev[nrev++] = ts;
        uint64_t h = 1469598103934665603ULL;
        fnv(&h, PQgetvalue(res, i, cts));
        fnv(&h, series);
        fnv(&h, PQgetisnull(res, i, cv) ? "null" : PQgetvalue(res, i, cv));
        win->hash += h;
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

static int append_ints(bp_buf_t *b, const int64_t *v, size_t n)
{
    int rc = bp_buf_append(b, "{", 1);
    for (size_t i = 0; rc == 0 && i < n; i++)
        rc = bp_buf_appendf(b, "%s%" PRId64, i ? "," : "", v[i]);
    return rc ? rc : bp_buf_append(b, "}", 1);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* How many distinct series the upsert returned that are not in known. Counting rows instead
 * overestimates a day's batch by its 1440 intervals, and the redo with folding that follows
 * costs a second upsert of the batch. 0 or BP_ENOMEM. */
static int count_fresh(const PGresult *res, const bp_series_set_t *known, size_t *fresh)
{
    int n = PQntuples(res), cs = PQfnumber(res, "series");
    const char **names = malloc(((size_t)n + 1) * sizeof(char *));
    if (names == NULL)
        return BP_ENOMEM;
    size_t nf = 0;
    for (int i = 0; i < n; i++) {
        const char *s = PQgetvalue(res, i, cs);
        if (s[0] != '\0' && !bp_series_has(known, s))
            names[nf++] = s;
    }
    qsort(names, nf, sizeof(char *), cmp_str);
    *fresh = 0;
    for (size_t i = 0; i < nf; i++)
        *fresh += i == 0 || strcmp(names[i], names[i - 1]) != 0;
    free(names);
    return 0;
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
    /* A catch-up batch past everything stored so far inserts its rows without ON CONFLICT
     * (agg_sql.h). Tick windows revise stored intervals: always the upsert. */
    const bp_db_stmt_t *stmt = bp_agg_sql_upsert(m);
    bool vacant = false;
    if (win->to - win->from > GENERIC_MAX_S) {
        int64_t v = 0;
        bool found = false;
        const char *vp[] = {m->name, s_from, s_to};
        if ((rc = query_int(db, bp_agg_sql_vacant(), vp, "vacant", &v, &found, err)) != 0)
            goto out;
        vacant = found && v == 1;
        if (vacant)
            stmt = bp_agg_sql_insert(m);
    }
    /* Optimistic: below the cap nothing is folded, in one pass. Only if this window brings more
     * new series than the cap has room for is it redone with folding. */
    if (((dims && allowed.base == NULL) || vacant) &&
        (rc = bp_db_exec_static(db, "SAVEPOINT bp_agg_window", err)) != 0)
        goto out;
    rc = bp_db_query(db, stmt, p, &res, err);
    if (rc == BP_EINTERNAL && vacant) {
        /* A row that only a hand could have put there (every aggregation writes the total of
         * each interval it writes anything for): the upsert takes it into account. */
        char f[BP_TIME_STRLEN], t[BP_TIME_STRLEN];
        bp_log(BP_LOG_WARNING,
               "metric %s: aggregated_metrics has rows in [%s, %s) but no total series there; recomputing "
               "with the upsert (%s)",
               m->name, bp_time_format(win->from, f), bp_time_format(win->to, t), err ? err->msg : "");
        if ((rc = bp_db_exec_static(db, "ROLLBACK TO SAVEPOINT bp_agg_window", err)) != 0)
            goto out;
        stmt = bp_agg_sql_upsert(m);
        rc = bp_db_query(db, stmt, p, &res, err);
        if (rc == 0)
            bp_err_clear(err); /* the insert's unique violation is handled */
    }
    if (rc != 0)
        goto out;
    if (dims && allowed.base == NULL) {
        size_t fresh = 0;
        if ((rc = count_fresh(res, &known, &fresh)) != 0) {
            rc = bp_err_set(err, rc, "out of memory");
            goto out;
        }
        if (known.n + fresh > (size_t)m->max_series) {
            long folded = 0;
            PQclear(res);
            res = NULL;
            if ((rc = bp_db_exec_static(db, "ROLLBACK TO SAVEPOINT bp_agg_window", err)) != 0 ||
                (rc = choose_allowed(db, m, &known, types.base, s_from, s_to, &allowed, &folded, err)) != 0)
                goto out;
            win->folded = folded;
            p[14] = allowed.base;
            if ((rc = bp_db_query(db, stmt, p, &res, err)) != 0)
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

/* A metric's progress through one tick. */
typedef struct {
    const bp_metric_t *m;
    summary_t s;
    int64_t resume; /* where its next batch starts; 0 before its first */
    /* this round: */
    bool locked, found, work;
    int64_t wm, end;
    window_t win;
    bool done;
} track_t;

/* Runs a one-row-per-input-metric statement ($1 = the names) and reads column col of each row
 * into out (INT64_MIN for NULL). */
static int query_per_metric(bp_db_t *db, const bp_db_stmt_t *stmt, const char *names, const char *col,
                            int64_t *out, size_t n, bp_err_t *err)
{
    const char *p[] = {names};
    PGresult *res = NULL;
    int rc = bp_db_query(db, stmt, p, &res, err);
    if (rc != 0)
        return rc;
    if ((size_t)PQntuples(res) != n) {
        int got = PQntuples(res);
        PQclear(res);
        return bp_err_set(err, BP_EINTERNAL, "%s returned %d rows for %zu metrics", stmt->name, got, n);
    }
    for (size_t i = 0; i < n; i++)
        out[i] = bp_db_isnull(res, (int)i, col) ? INT64_MIN : bp_db_int(res, (int)i, col);
    PQclear(res);
    return 0;
}

/* Where a locked metric's batch starts this round (t->win.from) and where its closed intervals
 * end (t->end). */
static int place(bp_db_t *db, track_t *t, const bp_agg_options_t *o, bp_err_t *err)
{
    int64_t iv = t->m->interval_s;
    t->end = bp_time_floor(o->now - o->grace_s, iv);
    if (t->found) {
        /* A tick's first batch looks back for late events from the watermark; later batches
         * continue exactly where the previous one stopped (resume), which may still be behind
         * the watermark when the lateness window is longer than one batch. */
        t->win.from = t->resume > 0 ? t->resume : bp_time_floor(t->wm - o->lateness_s, iv);
        return 0;
    }
    bp_buf_t types;
    bp_buf_init(&types, 4096);
    char s_since[24];
    snprintf(s_since, sizeof(s_since), "%" PRId64, t->end - o->lookback_s);
    int64_t first = 0;
    bool any = false;
    int rc = types_array(t->m, &types);
    const char *p[] = {types.base, s_since};
    if (rc == 0)
        rc = query_int(db, &first_event_sql, p, "first", &first, &any, err);
    bp_buf_free(&types);
    t->win.from = any ? bp_time_floor(first, iv) : t->end;
    t->wm = t->win.from;
    return rc;
}

/* One transaction of a tick, for every metric not done yet: try-lock them all and read their
 * watermarks (one round trip each), recompute one batch (at most BP_AGG_BATCH_INTERVALS
 * intervals) of every locked metric, advance their watermarks in one statement, commit once. */
static int tick_round(bp_worker_t *w, track_t *ts, size_t n, const bp_agg_options_t *o, bp_err_t *err)
{
    bp_db_t *db = w->db;
    size_t na = 0;
    size_t *act = calloc(n + 1, sizeof(size_t));
    const char **names = calloc(n + 1, sizeof(char *));
    int64_t *col = calloc(n + 1, sizeof(int64_t));
    bp_buf_t lit, wm_names, wm_values;
    bp_buf_init(&lit, 1u << 20);
    bp_buf_init(&wm_names, 1u << 20);
    bp_buf_init(&wm_values, 1u << 20);
    int rc = act == NULL || names == NULL || col == NULL ? bp_err_set(err, BP_ENOMEM, "out of memory") : 0;
    for (size_t i = 0; rc == 0 && i < n; i++)
        if (!ts[i].done) {
            act[na] = i;
            names[na++] = ts[i].m->name;
        }
    if (rc == 0 && (rc = bp_db_append_text_array(&lit, names, na)) != 0)
        rc = bp_err_set(err, rc, "too many metrics");
    if (rc != 0)
        goto out;
    if ((rc = bp_db_begin(db, err)) != 0)
        goto out;
    /* Planning is half of what a steady tick's statements cost with custom plans (the
     * connection's default, shared/db): a tick's windows of a few intervals run on each
     * statement's generic plan, planned once per connection. It reads the window through
     * (event_timestamp, event_type), every event type of it: 2-4x cheaper than a custom plan
     * with its planning at 1 M events a week, about even at 10 M (README). Catch-up batches go
     * back to custom plans below: there the generic plan was 2-7x slower. SET LOCAL: the
     * transaction's end restores the default. */
    if ((rc = bp_db_exec_static(db, "SET LOCAL plan_cache_mode = force_generic_plan", err)) != 0)
        goto fail;
    if ((rc = query_per_metric(db, &lock_sql, lit.base, "got", col, na, err)) != 0)
        goto fail;
    for (size_t k = 0; k < na; k++) {
        track_t *t = &ts[act[k]];
        memset(&t->win, 0, sizeof(t->win));
        t->locked = col[k] == 1;
        t->work = false;
    }
    if ((rc = query_per_metric(db, &watermark_sql, lit.base, "wm", col, na, err)) != 0)
        goto fail;
    for (size_t k = 0; rc == 0 && k < na; k++) {
        track_t *t = &ts[act[k]];
        t->found = col[k] != INT64_MIN;
        t->wm = t->found ? col[k] : 0;
        if (t->locked)
            rc = place(db, t, o, err);
    }
    if (rc != 0)
        goto fail;
    /* A batch per metric, each its own statement (agg_sql.h); all in this transaction. */
    bool big = false, custom = false;
    for (size_t k = 0; k < na; k++) {
        track_t *t = &ts[act[k]];
        if (!t->locked || t->win.from >= t->end)
            continue;
        int64_t iv = t->m->interval_s;
        t->work = true;
        t->win.to = t->end - t->win.from > BP_AGG_BATCH_INTERVALS * iv
                        ? t->win.from + BP_AGG_BATCH_INTERVALS * iv
                        : t->end;
        t->win.done = t->win.to == t->end;
        big |= t->win.to - t->win.from > 3600;
        custom |= t->win.to - t->win.from > GENERIC_MAX_S;
        bp_buf_init(&t->win.revised, 16384);
    }
    /* A catch-up batch aggregates a day of events per metric (hundreds of thousands of rows at
     * 10 M events a week): with the default work_mem (4 MB) its sorts (count(DISTINCT)) and
     * hash tables spill to disk. SET LOCAL: the transaction's end restores it. */
    if (big && (rc = bp_db_exec_static(db, "SET LOCAL work_mem = '" BATCH_WORK_MEM "'", err)) != 0)
        goto fail;
    if (custom && (rc = bp_db_exec_static(db, "SET LOCAL plan_cache_mode = force_custom_plan", err)) != 0)
        goto fail;
    for (size_t k = 0; rc == 0 && k < na; k++) {
        track_t *t = &ts[act[k]];
        if (t->work)
            rc = compute_window(w, t->m, o, t->wm, &t->win, err);
    }
    if (rc != 0)
        goto fail;
    /* Watermarks: past every computed batch; a metric seen for the first time gets one even
     * when it had nothing to do. */
    size_t nw = 0;
    for (size_t k = 0; k < na; k++) {
        track_t *t = &ts[act[k]];
        int64_t to = t->work ? t->win.to : t->end;
        if (!t->locked || (t->found && to <= t->wm))
            continue;
        names[nw] = t->m->name;
        col[nw++] = to > t->wm ? to : t->wm;
    }
    if (nw > 0) {
        if ((rc = bp_db_append_text_array(&wm_names, names, nw)) != 0 ||
            (rc = append_ints(&wm_values, col, nw)) != 0) {
            rc = bp_err_set(err, rc, "too many metrics");
            goto fail;
        }
        const char *p[] = {wm_names.base, wm_values.base};
        if ((rc = bp_db_query(db, &set_watermarks_sql, p, NULL, err)) != 0)
            goto fail;
    }
    if ((rc = bp_db_commit(db, err)) != 0)
        goto out;
    /* Committed: account for this round. */
    for (size_t k = 0; k < na; k++) {
        track_t *t = &ts[act[k]];
        if (!t->locked) {
            t->win.skipped = t->win.done = true;
        } else if (!t->work) { /* nothing to recompute */
            t->win.to = t->end;
            t->win.done = true;
        }
        add_up(&t->s, &t->win);
        t->resume = t->win.to;
        t->done = t->win.done;
    }
    goto out;
fail:
    bp_db_rollback(db);
out:
    for (size_t k = 0; k < na; k++)
        bp_buf_free(&ts[act[k]].win.revised);
    bp_buf_free(&lit);
    bp_buf_free(&wm_names);
    bp_buf_free(&wm_values);
    free(act);
    free(names);
    free(col);
    return rc;
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
    size_t n = cfg->num_metrics;
    track_t *ts = calloc(n + 1, sizeof(track_t));
    if (ts == NULL)
        return bp_err_set(err, BP_ENOMEM, "out of memory");
    for (size_t i = 0; i < n; i++)
        ts[i].m = &cfg->metrics[i];
    int rc = 0;
    bool pending = n > 0;
    /* Every metric gets at least one round; no new round starts after the budget. */
    for (bool first = true; rc == 0 && pending && (first || mono_ms() - start < opts->budget_ms);
         first = false) {
        rc = tick_round(w, ts, n, opts, err);
        pending = false;
        for (size_t i = 0; i < n; i++)
            pending |= !ts[i].done;
    }
    if (rc == 0)
        rc = bp_buf_append(out, "[", 1);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        record(ts[i].m, &ts[i].s);
        rc = append_result(out, i > 0, ts[i].m, &ts[i].s);
    }
    if (rc == 0)
        rc = bp_buf_append(out, "]", 1);
    free(ts);
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
    bp_buf_t lit;
    bp_buf_init(&lit, 4096);
    if ((rc = bp_db_append_text_array(&lit, name, 1)) != 0) {
        bp_buf_free(&lit);
        return bp_err_set(err, rc, "metric name too long");
    }
    for (int64_t at = from; rc == 0 && at < to;) {
        window_t win = {.from = at,
                        .to = at + BP_AGG_BATCH_INTERVALS * iv < to ? at + BP_AGG_BATCH_INTERVALS * iv : to};
        bp_buf_init(&win.revised, 16384);
        int64_t got = 0;
        rc = bp_db_begin(w->db, err);
        if (rc == 0)
            rc = query_per_metric(w->db, &lock_sql, lit.base, "got", &got, 1, err);
        if (rc == 0 && got != 1)
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
    bp_buf_free(&lit);
    if (rc != 0)
        return rc;
    record(m, &s);
    return append_result(out, false, m, &s);
}
