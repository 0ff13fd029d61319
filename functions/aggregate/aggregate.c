#include "aggregate.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "counts.h"
#include "points.h"
#include "prefetch.h"
#include "scan.h"
#include "cloudevents.h"
#include "json.h"
#include "log.h"
#include "metrics.h"
#include "outbox.h"
#include "series.h"
#include "timefmt.h"

#define REVISED_MAX 50 /* revised ranges listed in one event; beyond, the event says "truncated" */

/* Two-key advisory locks: (namespace, metric), one try per metric of the tick, in one round
 * trip. Transaction-scoped, so a crash or a lost connection can never leave one held. */
static const bp_db_stmt_t lock_sql = {
    "bp_agg_lock_many",
    "SELECT u.i, pg_try_advisory_xact_lock(hashtext('bizpulse.aggregate'), hashtext(u.n))::int AS got"
    " FROM unnest($1::text[]) WITH ORDINALITY AS u(n, i) ORDER BY u.i",
    1};

static const bp_db_stmt_t watermark_sql = {
    "bp_agg_watermarks",
    "SELECT u.i, extract(epoch FROM w.watermark)::bigint AS wm,"
    " extract(epoch FROM w.counts_from)::bigint AS cf, w.counts::text AS counts, w.counts_key AS ck"
    " FROM unnest($1::text[]) WITH ORDINALITY AS u(n, i) LEFT JOIN metric_watermarks w ON w.metric_name = u.n"
    " ORDER BY u.i",
    1};

static const bp_db_stmt_t first_event_sql = {
    "bp_agg_first_event",
    "SELECT floor(date_part('epoch', min(event_timestamp)))::bigint AS first FROM business_events"
    " WHERE event_type = ANY($1::text[]) AND event_timestamp >= to_timestamp($2::bigint)",
    2};

/* counts.h: the counts describe the minutes just below the watermark they are written with;
 * a watermark that does not move forward keeps none. */
static const bp_db_stmt_t set_watermarks_sql = {
    "bp_agg_set_watermarks",
    "INSERT INTO metric_watermarks (metric_name, watermark, counts_from, counts, counts_key)"
    " SELECT u.n, to_timestamp(u.w), to_timestamp(u.cf), u.c::bigint[], u.k"
    " FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::text[], $5::bigint[]) AS u(n, w, cf, c, k)"
    " ON CONFLICT (metric_name) DO UPDATE"
    "   SET watermark = greatest(metric_watermarks.watermark, EXCLUDED.watermark), updated_at = now(),"
    "       counts_from = CASE WHEN EXCLUDED.watermark >= metric_watermarks.watermark"
    "                     THEN EXCLUDED.counts_from END,"
    "       counts = CASE WHEN EXCLUDED.watermark >= metric_watermarks.watermark THEN EXCLUDED.counts END,"
    "       counts_key = CASE WHEN EXCLUDED.watermark >= metric_watermarks.watermark"
    "                    THEN EXCLUDED.counts_key END",
    5};

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int bp_agg_options_from_env(bp_agg_options_t *opts, bp_err_t *err)
{
    long grace, lateness, lookback, ttl, budget, max_events, max_points;
    int rc;
    if ((rc = bp_config_env_int("BIZPULSE_AGG_GRACE_S", 10, 0, 3600, &grace, err)) != 0 ||
        (rc = bp_config_env_int("BIZPULSE_AGG_LATENESS_S", 300, 0, 7 * 86400, &lateness, err)) != 0 ||
        (rc = bp_config_env_int("BIZPULSE_AGG_LOOKBACK_S", 7 * 86400, 60, 366L * 86400, &lookback, err)) !=
            0 ||
        (rc = bp_config_env_int("BIZPULSE_AGG_SERIES_TTL_S", 86400, 60, 366L * 86400, &ttl, err)) != 0 ||
        (rc = bp_config_env_int("BIZPULSE_AGG_BUDGET_MS", 20000, 100, 600000, &budget, err)) != 0 ||
        (rc = bp_config_env_int("BIZPULSE_AGG_MAX_EVENTS", 2000000, 1000, 1000000000, &max_events, err)) !=
            0 ||
        (rc = bp_config_env_int("BIZPULSE_AGG_MAX_POINTS", 500000, 1000, 1000000000, &max_points, err)) != 0)
        return rc;
    const char *rescan = getenv("BIZPULSE_AGG_RESCAN");
    if (rescan != NULL && *rescan != '\0' && strcmp(rescan, "changed") != 0 && strcmp(rescan, "all") != 0)
        return bp_err_set(err, BP_ECONFIG,
                          "BIZPULSE_AGG_RESCAN must be 'changed' (the default) or 'all', not '%s'", rescan);
    *opts = (bp_agg_options_t){.now = bp_time_now(),
                               .grace_s = grace,
                               .lateness_s = lateness,
                               .lookback_s = lookback,
                               .series_ttl_s = ttl,
                               .budget_ms = budget,
                               .max_events = max_events,
                               .max_points = max_points,
                               .rescan_all = rescan != NULL && strcmp(rescan, "all") == 0};
    return 0;
}

/* The event types a metric reads, as a text[] literal. */
static int types_array(const bp_metric_t *m, bp_buf_t *out)
{
    const char *types[2];
    return bp_db_append_text_array(out, types, bp_config_metric_types(m, types));
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
    /* counts.h. safe_from: where the round's batch began before skip_unchanged() moved it; the
     * minutes from there on were either recomputed here (the scan's tally) or counted at the
     * round's start and found unchanged (head), so their counts are no newer than the stored
     * data, and only those may be stored. counts: the metric's counts for its new watermark,
     * over [counts_from, to), when every minute of it is known (counted). */
    int64_t safe_from, counts_from;
    const bp_counts_t *head;
    bp_buf_t counts;
    bool counted;
} window_t;

static int append_range(window_t *win, int64_t from, int64_t to)
{
    char f[BP_TIME_STRLEN], t[BP_TIME_STRLEN];
    if (win->num_revised++ >= REVISED_MAX)
        return 0;
    return bp_buf_appendf(&win->revised, "%s{\"from\":\"%s\",\"to\":\"%s\"}", win->revised.len ? "," : "",
                          bp_time_format(from, f), bp_time_format(to, t));
}

/* The aggregated event of a metric's window into ev; id (BP_EVENT_ID_MAX bytes) and data are
 * the caller's and back ev's strings. */
#define BP_EVENT_ID_MAX 256
static int build_event(const char *source, const bp_metric_t *m, const window_t *win, const char *trigger,
                       bp_ce_t *ev, char *id, bp_buf_t *data, bp_err_t *err)
{
    char f[BP_TIME_STRLEN], t[BP_TIME_STRLEN], cf[BP_TIME_STRLEN];
    bp_time_format(win->from, f);
    bp_time_format(win->to, t);
    bp_time_format(win->changed_from, cf);
    /* Deterministic: the same window with the same changes (a retried tick) gives the same id,
     * which the outbox's unique (source, id) then drops; different changes, a different id. */
    snprintf(id, BP_EVENT_ID_MAX, "%s/%s/%s/%016" PRIx64, m->name, f, t, win->hash);
    int rc = bp_buf_appendf(data, "{\"metric\":");
    rc = rc ? rc : bp_json_append_str(data, m->name);
    rc = rc ? rc
            : bp_buf_appendf(
                  data,
                  ",\"kind\":\"%s\",\"interval_s\":%d,\"from\":\"%s\",\"to\":\"%s\",\"changed_from\":\"%s\","
                  "\"changed\":%ld,\"revised\":[%s],\"revised_truncated\":%s,\"trigger\":",
                  bp_config_kind_name(m->kind), m->interval_s, f, t, cf, win->changed,
                  win->revised.base ? win->revised.base : "",
                  win->num_revised > REVISED_MAX ? "true" : "false");
    rc = rc ? rc : bp_json_append_str(data, trigger ? trigger : "");
    rc = rc ? rc : bp_buf_append(data, "}", 1);
    if (rc != 0)
        return bp_err_set(err, rc, "cannot build the aggregated event");
    *ev = (bp_ce_t){.id = id,
                    .source = (char *)source,
                    .specversion = "1.0",
                    .type = BP_CE_TYPE_AGGREGATED,
                    .subject = m->name,
                    .data = data->base,
                    .data_len = data->len};
    return 0;
}

/* What changed in a metric's window: how many points, from when, which intervals were revised
 * (older than the previous watermark: late events), the content hash, and the dimension
 * series that had events (*seen points into the scan's strings). */
static int digest(window_t *win, const bp_scan_metric_t *sm, const bp_metric_points_t *mp, int64_t from,
                  int64_t revised_before, const char ***seen, size_t *num_seen)
{
    int64_t iv = sm->m->interval_s;
    int64_t *rev = malloc((mp->num_changed + 1) * sizeof(int64_t));
    *seen = calloc(mp->num_changed + 1, sizeof(char *));
    *num_seen = 0;
    if (rev == NULL || *seen == NULL) {
        free(rev);
        return BP_ENOMEM;
    }
    size_t nrev = 0;
    win->changed = (long)mp->num_changed;
    win->changed_from = win->to;
    /* a sum of per-point hashes: the same changes give the same id in whatever order */
    win->hash = 0;
    for (size_t j = 0; j < mp->n; j++) {
        const bp_point_t *p = &mp->pts[j];
        if (!p->changed)
            continue;
        int64_t ts = from + (int64_t)p->interval * iv;
        const char *series = bp_strtab_str(&sm->series, p->series);
        char s_ts[24], s_v[BP_POINTS_NUM_MAX];
        snprintf(s_ts, sizeof(s_ts), "%" PRId64, ts);
        if (p->value_null)
            snprintf(s_v, sizeof(s_v), "null");
        else
            bp_points_format(p->value, s_v);
        if (ts < win->changed_from)
            win->changed_from = ts;
        if (ts < revised_before)
            rev[nrev++] = ts;
        uint64_t h = 1469598103934665603ULL;
        bp_fnv_str(&h, s_ts);
        bp_fnv_str(&h, series);
        bp_fnv_str(&h, s_v);
        win->hash += h;
        if (series[0] != '\0' && p->events != 0)
            (*seen)[(*num_seen)++] = series;
    }
    /* Contiguous runs of revised intervals become ranges. */
    qsort(rev, nrev, sizeof(int64_t), bp_cmp_i64);
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < nrev;) {
        size_t j = i;
        while (j + 1 < nrev && rev[j + 1] - rev[j] <= iv)
            j++;
        rc = append_range(win, rev[i], rev[j] + iv);
        i = j + 1;
    }
    free(rev);
    return rc;
}

typedef struct {
    const char *key;
    uint64_t rows;
    uint32_t id;
} ranked_t;

static int cmp_ranked(const void *a, const void *b)
{
    const ranked_t *x = a, *y = b;
    if (x->rows != y->rows)
        return x->rows < y->rows ? 1 : -1;
    return strcmp(x->key, y->key);
}

/* The cardinality cap: when the registered series plus this window's new ones exceed
 * max_series, the registered ones stay and the largest new ones (by events in the window) fill
 * the room left; the rest fold into 'other'. Then marks which series to zero-fill: every one
 * with events in the window, and the registered ones seen within the series TTL. */
static int cap_and_grid(bp_scan_metric_t *sm, const bp_series_set_t *known, int64_t fill_since, bool **grid,
                        long *folded, bp_err_t *err)
{
    uint32_t n = sm->series.n;
    ranked_t *fresh = calloc(n + 1, sizeof(ranked_t));
    bool *keep = calloc(n + 1, sizeof(bool));
    int rc = fresh == NULL || keep == NULL ? bp_err_set(err, BP_ENOMEM, "out of memory") : 0;
    size_t nfresh = 0;
    for (uint32_t s = 1; rc == 0 && s < n; s++) {
        keep[s] = bp_series_has(known, bp_strtab_str(&sm->series, s));
        if (!keep[s])
            fresh[nfresh++] = (ranked_t){bp_strtab_str(&sm->series, s), 0, s};
    }
    *folded = 0;
    if (rc == 0 && known->n + nfresh > (size_t)sm->m->max_series) {
        uint64_t *rows = calloc(n + 1, sizeof(uint64_t));
        if (rows == NULL) {
            rc = bp_err_set(err, BP_ENOMEM, "out of memory");
        } else {
            for (uint32_t i = 0; i < sm->num_accs; i++)
                rows[sm->acc_series[i]] += sm->accs[i].rows;
            for (size_t k = 0; k < nfresh; k++)
                fresh[k].rows = rows[fresh[k].id];
            free(rows);
            qsort(fresh, nfresh, sizeof(ranked_t), cmp_ranked);
            size_t room = known->n < (size_t)sm->m->max_series ? (size_t)sm->m->max_series - known->n : 0;
            for (size_t k = 0; k < nfresh; k++)
                keep[fresh[k].id] = k < room;
            *folded = (long)(nfresh > room ? nfresh - room : 0);
            rc = bp_scan_fold(sm, keep, err);
        }
    }
    free(fresh);
    free(keep);
    if (rc != 0)
        return rc;
    for (size_t i = 0; i < known->n; i++) {
        uint32_t id;
        if (known->last_seen[i] >= fill_since &&
            bp_strtab_intern(&sm->series, known->names[i], strlen(known->names[i]), &id, NULL) != 0)
            return bp_err_set(err, BP_ENOMEM, "out of memory");
    }
    if ((*grid = calloc(sm->series.n + 1, sizeof(bool))) == NULL)
        return bp_err_set(err, BP_ENOMEM, "out of memory");
    for (uint32_t i = 0; i < sm->num_accs; i++)
        (*grid)[sm->acc_series[i]] = true;
    for (size_t i = 0; i < known->n; i++) {
        int64_t id = bp_strtab_find(&sm->series, known->names[i], strlen(known->names[i]));
        if (id >= 0 && known->last_seen[i] >= fill_since)
            (*grid)[id] = true;
    }
    return 0;
}

/* The cap and the zero-fill grid of every metric with dimensions in the scan (grids[i] stays
 * NULL for the others), with one read of the series registry. */
static int cap_all(bp_db_t *db, bp_scan_t *scan, const bp_agg_options_t *o, window_t *const *wins,
                   bool **grids, bp_err_t *err)
{
    size_t n = scan->num_metrics, nd = 0;
    bp_series_set_t *known = calloc(n + 1, sizeof(bp_series_set_t));
    const char **names = calloc(n + 1, sizeof(char *));
    int rc = known == NULL || names == NULL ? bp_err_set(err, BP_ENOMEM, "out of memory") : 0;
    for (size_t i = 0; rc == 0 && i < n; i++)
        if (scan->metrics[i].m->num_dimensions > 0)
            names[nd++] = scan->metrics[i].m->name;
    if (rc == 0 && nd > 0)
        rc = bp_series_load(db, names, nd, known, err);
    for (size_t i = 0, k = 0; rc == 0 && i < n; i++)
        if (scan->metrics[i].m->num_dimensions > 0)
            rc = cap_and_grid(&scan->metrics[i], &known[k++], scan->from - o->series_ttl_s, &grids[i],
                              &wins[i]->folded, err);
    for (size_t k = 0; known != NULL && k < nd; k++)
        bp_series_clear(&known[k]);
    free(known);
    free(names);
    return rc;
}

/* A window lays out (grid series) x (intervals) points per metric: thousands of series over a
 * day's batch would be tens of millions. Beyond max_points the window ends earlier (whole
 * intervals, at least one); the next round continues there. */
static void bound_points(bp_scan_t *scan, bool *const *grids, uint64_t max_points)
{
    int64_t nint = (scan->to - scan->from) / scan->interval_s;
    uint64_t per_interval = 0;
    for (size_t i = 0; i < scan->num_metrics; i++) {
        const bp_scan_metric_t *sm = &scan->metrics[i];
        if (grids[i] == NULL) {
            per_interval++;
            continue;
        }
        for (uint32_t s = 0; s < sm->series.n; s++)
            per_interval += s == 0 || grids[i][s];
    }
    if (per_interval * (uint64_t)nint > max_points) {
        int64_t keep = (int64_t)(max_points / per_interval);
        scan->to = scan->from + (keep > 0 ? keep : 1) * scan->interval_s;
    }
}

/* What changed per metric: its digest into wins[i], the dimension series that had events
 * (appended to seen_m/seen_s), its event (into evs/ids/data, counted in *nev). */
static int gather_changes(bp_worker_t *w, const bp_scan_t *scan, const bp_metric_points_t *mp,
                          window_t *const *wins, const int64_t *revised_before, const bp_agg_options_t *o,
                          const char ***seen_m, const char ***seen_s, size_t *nseen, bp_ce_t *evs,
                          char (*ids)[BP_EVENT_ID_MAX], bp_buf_t *data, size_t *nev, bp_err_t *err)
{
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < scan->num_metrics; i++) {
        const bp_metric_t *m = scan->metrics[i].m;
        const char **seen = NULL;
        size_t num_seen = 0;
        window_t *win = wins[i];
        win->intervals = (long)((win->to - win->from) / m->interval_s);
        rc = digest(win, &scan->metrics[i], &mp[i], scan->from, revised_before[i], &seen, &num_seen);
        if (rc != 0) {
            rc = bp_err_set(err, rc, "out of memory digesting the window");
        } else if (num_seen > 0) {
            const char **sm2 = realloc(*seen_m, (*nseen + num_seen) * sizeof(char *));
            if (sm2 != NULL)
                *seen_m = sm2;
            const char **ss2 = sm2 != NULL ? realloc(*seen_s, (*nseen + num_seen) * sizeof(char *)) : NULL;
            if (ss2 != NULL)
                *seen_s = ss2;
            if (sm2 == NULL || ss2 == NULL)
                rc = bp_err_set(err, BP_ENOMEM, "out of memory");
            for (size_t j = 0; rc == 0 && j < num_seen; j++, (*nseen)++) {
                (*seen_m)[*nseen] = m->name;
                (*seen_s)[*nseen] = seen[j];
            }
        }
        free(seen);
        if (rc == 0 && win->changed > 0) {
            bp_buf_init(&data[*nev], 32768);
            rc = build_event(w->app->source, m, win, o->trigger, &evs[*nev], ids[*nev], &data[*nev], err);
            (*nev)++;
        }
    }
    return rc;
}

/* Where the batch that starts at from ends: on the next multiple of the batch length, so
 * metrics that started at different times share windows (and one scan) from their second
 * batch on; or at end, when that is nearer. */
static int64_t batch_end(int64_t from, int64_t end, int interval_s)
{
    int64_t span = BP_AGG_BATCH_INTERVALS * (int64_t)interval_s;
    return end - from > span ? bp_time_floor(from, span) + span : end;
}

/* Catch-up rounds read ahead (prefetch.h): the next round's scan of this group, when there is
 * a next round and time for it. */
typedef struct {
    bp_prefetch_t *pf;
    int64_t end;         /* the group's closed intervals end here */
    int64_t deadline_ms; /* no read-ahead after this (the tick's budget) */
} ahead_t;

/* Where the counts of a window's new watermark start (counts.h), or its start if later. */
static int64_t tail_from(const window_t *win, const bp_metric_t *m, const bp_agg_options_t *o)
{
    int64_t t = bp_time_floor(win->to - o->lateness_s, m->interval_s);
    return t > win->from ? t : win->from;
}

/* Recomputes the windows of metrics ms[0..n) (one interval, one [from, to)) inside the
 * caller's transaction, which holds their locks: one scan of the events (or the one read
 * ahead for exactly this window), the cap, one comparison with what is stored, one write of
 * what changed, one update of the series registry, one insert of the events (one per changed
 * metric). A window may end earlier than asked (scan.h's event limit, bound_points):
 * wins[i]->to and ->done say where it did. ahead may be NULL (no read-ahead). */
static int compute_group(bp_worker_t *w, const bp_metric_t *const *ms, window_t *const *wins,
                         const int64_t *revised_before, size_t n, const bp_agg_options_t *o,
                         const ahead_t *ahead, bp_err_t *err)
{
    bp_db_t *db = w->db;
    bp_scan_t scan;
    bp_metric_points_t *mp = calloc(n + 1, sizeof(bp_metric_points_t));
    bool **grids = calloc(n + 1, sizeof(bool *));
    bp_ce_t *evs = calloc(n + 1, sizeof(bp_ce_t));
    char(*ids)[BP_EVENT_ID_MAX] = calloc(n + 1, BP_EVENT_ID_MAX);
    bp_buf_t *data = calloc(n + 1, sizeof(bp_buf_t));
    const char **seen_m = NULL, **seen_s = NULL;
    size_t nseen = 0, nev = 0;
    int rc = 0;
    /* a read-ahead tallies nothing (its window's counts are then unknown) */
    if (ahead == NULL || !bp_prefetch_take(ahead->pf, ms, n, wins[0]->from, wins[0]->to, &scan)) {
        rc = bp_scan_init(&scan, ms, n, wins[0]->from, wins[0]->to, err);
        scan.max_events = (uint64_t)o->max_events;
        for (size_t i = 0; rc == 0 && i < n && wins[i]->head != NULL; i++)
            rc = bp_counts_want(&scan.tally, ms[i], tail_from(wins[i], ms[i], o), wins[i]->to, err);
        if (rc == 0 && scan.tally.num_minutes > 0)
            rc = bp_counts_zero(&scan.tally, err);
        if (rc == 0)
            rc = bp_scan_run(db, w->app->config, &scan, err);
    }
    if (rc == 0 && (mp == NULL || grids == NULL || evs == NULL || ids == NULL || data == NULL))
        rc = bp_err_set(err, BP_ENOMEM, "out of memory");
    if (rc == 0)
        rc = cap_all(db, &scan, o, wins, grids, err);
    if (rc == 0)
        bound_points(&scan, grids, (uint64_t)o->max_points);
    /* the next round's events are read while this one writes (a failure there only means
     * the next round scans by itself); not the last batch, read in its own round */
    int64_t next_to = ahead != NULL ? batch_end(scan.to, ahead->end, ms[0]->interval_s) : 0;
    if (rc == 0 && ahead != NULL && next_to < ahead->end && mono_ms() < ahead->deadline_ms)
        bp_prefetch_start(ahead->pf, w->app->config, ms, n, scan.to, next_to, (uint64_t)o->max_events);
    for (size_t i = 0; rc == 0 && i < n && scan.to < wins[i]->to; i++) {
        wins[i]->to = scan.to; /* the rest is the next round's */
        wins[i]->done = false;
    }
    for (size_t i = 0; rc == 0 && i < n; i++)
        rc = bp_points_build(&scan, &scan.metrics[i], grids[i], &mp[i], err);
    if (rc == 0)
        rc = bp_points_sync(db, &scan, mp, err);
    if (rc == 0)
        rc = gather_changes(w, &scan, mp, wins, revised_before, o, &seen_m, &seen_s, &nseen, evs, ids, data,
                            &nev, err);
    if (rc == 0)
        rc = bp_series_touch(db, seen_m, seen_s, nseen, scan.to, err);
    if (rc == 0)
        rc = bp_outbox_add_many(db, evs, nev, err);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        window_t *win = wins[i];
        win->counts_from = bp_time_floor(win->to - o->lateness_s, ms[i]->interval_s);
        if (win->head != NULL && win->counts_from >= win->safe_from)
            rc = bp_counts_literal(win->head, &scan.tally, win->from, ms[i], win->counts_from, win->to,
                                   &win->counts, &win->counted);
        if (rc == BP_ETOOBIG) /* counts too long to keep: the next tick recomputes the window */
            rc = 0;
        if (rc != 0)
            rc = bp_err_set(err, rc, "out of memory");
    }
    for (size_t i = 0; i < nev; i++)
        bp_buf_free(&data[i]);
    for (size_t i = 0; grids != NULL && i < n; i++)
        free(grids[i]);
    if (mp != NULL)
        for (size_t i = 0; i < n; i++)
            bp_points_free(&mp[i]);
    free(mp);
    free(grids);
    free(evs);
    free(ids);
    free(data);
    free(seen_m);
    free(seen_s);
    bp_scan_free(&scan);
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
    bool locked, found, work, grouped;
    int64_t wm, end;
    /* stored counts (counts.h) of the minutes [cfrom, wm), taken under the definition ckey;
     * counts is NULL when there are none */
    int64_t cfrom, ckey;
    int64_t *counts; /* owned */
    size_t num_counts;
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

/* Watermarks and stored counts (counts.h) of ts[act[0..na)] into ->found, ->wm, ->counts. */
static int read_watermarks(bp_db_t *db, const char *names, track_t *ts, const size_t *act, size_t na,
                           bp_err_t *err)
{
    const char *p[] = {names};
    PGresult *res = NULL;
    int rc = bp_db_query(db, &watermark_sql, p, &res, err);
    if (rc != 0)
        return rc;
    if ((size_t)PQntuples(res) != na) {
        int got = PQntuples(res);
        PQclear(res);
        return bp_err_set(err, BP_EINTERNAL, "%s returned %d rows for %zu metrics", watermark_sql.name, got,
                          na);
    }
    for (size_t k = 0; rc == 0 && k < na; k++) {
        track_t *t = &ts[act[k]];
        t->found = !bp_db_isnull(res, (int)k, "wm");
        t->wm = t->found ? bp_db_int(res, (int)k, "wm") : 0;
        t->counts = NULL;
        t->num_counts = 0;
        if (t->found && !bp_db_isnull(res, (int)k, "cf") && !bp_db_isnull(res, (int)k, "counts") &&
            !bp_db_isnull(res, (int)k, "ck")) {
            t->cfrom = bp_db_int(res, (int)k, "cf");
            t->ckey = bp_db_int(res, (int)k, "ck");
            int prc = bp_counts_parse(bp_db_text(res, (int)k, "counts"), &t->counts, &t->num_counts);
            if (prc == BP_ENOMEM)
                rc = bp_err_set(err, BP_ENOMEM, "out of memory");
            else if (prc != 0) /* no counts: the window is recomputed whole, and they are rewritten */
                bp_log(BP_LOG_WARNING, "metric_watermarks.counts of %s is not a bigint[] of counts; ignored",
                       t->m->name);
        }
    }
    PQclear(res);
    return rc;
}

/* A tick's first batch of a metric whose stored counts end at its watermark and were taken
 * under its current definition can skip the minutes of its lateness window whose counts have
 * not moved. */
static bool comparable(const track_t *t)
{
    const char *types[2];
    size_t nt = bp_config_metric_types(t->m, types);
    return t->found && t->resume == 0 && t->counts != NULL && t->num_counts % nt == 0 &&
           t->cfrom + 60 * (int64_t)(t->num_counts / nt) == t->wm && t->ckey == bp_counts_key(t->m);
}

/* The first minute of [t->win.from, t->wm) where a count of t's types differs from the stored
 * one (t->wm when none does). */
static int64_t first_moved(const track_t *t, const bp_counts_t *c)
{
    const char *types[2];
    size_t nt = bp_config_metric_types(t->m, types);
    size_t per_type = t->num_counts / nt;
    int64_t minute = t->win.from;
    for (; minute < t->wm; minute += 60) {
        if (minute < t->cfrom)
            return minute;
        size_t at = (size_t)((minute - t->cfrom) / 60);
        for (size_t i = 0; i < nt; i++) {
            int64_t n;
            if (!bp_counts_get(c, types[i], minute, &n) || n != t->counts[i * per_type + at])
                return minute;
        }
    }
    return minute;
}

/* Counts (counts.h) the minutes of the comparable metrics' lateness windows. Then starts each
 * comparable metric's batch at the first interval whose count moved (at its watermark when
 * none did), and metrics of one interval and end at the earliest start inside their own
 * window, so they still share one scan (a metric far behind does not pull the others back).
 * A metric left without work has nothing new and nothing changed. */
static int skip_unchanged(bp_db_t *db, track_t *ts, const size_t *act, size_t na, bp_counts_t *c,
                          bp_err_t *err)
{
    int rc = 0;
    for (size_t k = 0; rc == 0 && k < na; k++) {
        track_t *t = &ts[act[k]];
        if (!t->work)
            continue;
        if (comparable(t))
            rc = bp_counts_want(c, t->m, t->win.from, t->wm, err);
    }
    if (rc == 0)
        rc = bp_counts_measure(db, c, err);
    int64_t *start = calloc(na + 1, sizeof(int64_t));
    if (rc == 0 && start == NULL)
        rc = bp_err_set(err, BP_ENOMEM, "out of memory");
    if (rc != 0) {
        free(start);
        return rc;
    }
    for (size_t k = 0; k < na; k++) {
        track_t *t = &ts[act[k]];
        start[k] = t->win.from;
        if (!t->work || !comparable(t))
            continue;
        start[k] = bp_time_floor(first_moved(t, c), t->m->interval_s);
    }
    for (size_t k = 0; k < na; k++) {
        track_t *t = &ts[act[k]];
        if (!t->work)
            continue;
        int64_t lo = start[k];
        for (size_t j = 0; j < na; j++) {
            const track_t *u = &ts[act[j]];
            if (u->work && u->m->interval_s == t->m->interval_s && u->end == t->end && start[j] < lo &&
                start[j] >= t->win.safe_from)
                lo = start[j];
        }
        int64_t from = lo;
        if (from >= t->end) { /* reported as the empty window at its end */
            t->work = false;
            t->win.from = t->end;
            continue;
        }
        t->win.from = from;
        t->win.to = batch_end(from, t->end, t->m->interval_s);
    }
    free(start);
    return 0;
}

/* Metrics whose batches share interval and window are computed together (one scan). */
static bool same_group(const track_t *a, const track_t *b)
{
    return a->m->interval_s == b->m->interval_s && a->win.from == b->win.from && a->win.to == b->win.to;
}

/* One transaction of a tick, for every metric not done yet: try-lock them all and read their
 * watermarks (one round trip each), recompute one batch (at most BP_AGG_BATCH_INTERVALS
 * intervals) of every locked metric, advance their watermarks in one statement, commit once. */
static int tick_round(bp_worker_t *w, track_t *ts, size_t n, const bp_agg_options_t *o, bp_prefetch_t *pf,
                      int64_t deadline_ms, bp_err_t *err)
{
    bp_db_t *db = w->db;
    size_t na = 0;
    size_t *act = calloc(n + 1, sizeof(size_t));
    const char **names = calloc(n + 1, sizeof(char *));
    int64_t *col = calloc(n + 1, sizeof(int64_t));
    const bp_metric_t **gm = calloc(n + 1, sizeof(bp_metric_t *));
    window_t **gw = calloc(n + 1, sizeof(window_t *));
    int64_t *grev = calloc(n + 1, sizeof(int64_t));
    int64_t *wm_from = calloc(n + 1, sizeof(int64_t)), *wm_key = calloc(n + 1, sizeof(int64_t));
    const char **clits = calloc(n + 1, sizeof(char *));
    bp_counts_t counts = {0};
    bp_buf_t lit, wm_names, wm_values, wm_cfrom, wm_clits, wm_keys;
    bp_buf_init(&lit, 1u << 20);
    bp_buf_init(&wm_names, 1u << 20);
    bp_buf_init(&wm_values, 1u << 20);
    bp_buf_init(&wm_cfrom, 1u << 20);
    bp_buf_init(&wm_clits, 256u << 20);
    bp_buf_init(&wm_keys, 1u << 20);
    int rc = act == NULL || names == NULL || col == NULL || gm == NULL || gw == NULL || grev == NULL ||
                     wm_from == NULL || wm_key == NULL || clits == NULL
                 ? bp_err_set(err, BP_ENOMEM, "out of memory")
                 : 0;
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
    if ((rc = query_per_metric(db, &lock_sql, lit.base, "got", col, na, err)) != 0)
        goto fail;
    for (size_t k = 0; k < na; k++) {
        track_t *t = &ts[act[k]];
        memset(&t->win, 0, sizeof(t->win));
        t->locked = col[k] == 1;
        t->work = t->grouped = false;
    }
    if ((rc = read_watermarks(db, lit.base, ts, act, na, err)) != 0)
        goto fail;
    for (size_t k = 0; rc == 0 && k < na; k++)
        if (ts[act[k]].locked)
            rc = place(db, &ts[act[k]], o, err);
    if (rc != 0)
        goto fail;
    /* A batch per metric; metrics with the same interval and window are computed together
     * (scan.h: one pass over their events). All in this transaction. */
    for (size_t k = 0; k < na; k++) {
        track_t *t = &ts[act[k]];
        if (!t->locked || t->win.from >= t->end)
            continue;
        t->work = true;
        t->win.safe_from = t->win.from;
        t->win.head = &counts;
        t->win.to = batch_end(t->win.from, t->end, t->m->interval_s);
    }
    if (!o->rescan_all && (rc = skip_unchanged(db, ts, act, na, &counts, err)) != 0)
        goto fail;
    for (size_t k = 0; k < na; k++) {
        track_t *t = &ts[act[k]];
        if (!t->work)
            continue;
        t->win.done = t->win.to == t->end;
        bp_buf_init(&t->win.revised, 16384);
        bp_buf_init(&t->win.counts, 64u << 20);
    }
    /* one read-ahead slot: only a round of one group uses it (prefetch.h) */
    bool one_group = true;
    const track_t *lead = NULL;
    for (size_t k = 0; k < na; k++) {
        const track_t *t = &ts[act[k]];
        if (!t->work)
            continue;
        if (lead == NULL)
            lead = t;
        else if (!same_group(t, lead))
            one_group = false;
    }
    for (size_t k = 0; rc == 0 && k < na; k++) {
        track_t *t = &ts[act[k]];
        if (!t->work || t->grouped)
            continue;
        size_t g = 0;
        for (size_t j = k; j < na; j++) {
            track_t *u = &ts[act[j]];
            if (u->work && !u->grouped && same_group(u, t)) {
                u->grouped = true;
                gm[g] = u->m;
                gw[g] = &u->win;
                grev[g++] = u->wm;
            }
        }
        ahead_t ahead = {pf, t->end, deadline_ms};
        rc = compute_group(w, gm, gw, grev, g, o, pf && one_group ? &ahead : NULL, err);
    }
    if (rc != 0)
        goto fail;
    /* Watermarks: past every computed batch; a metric seen for the first time gets one even
     * when it had nothing to do. */
    size_t nw = 0;
    for (size_t k = 0; k < na; k++) {
        track_t *t = &ts[act[k]];
        int64_t to = t->work ? t->win.to : t->end;
        if (!t->locked || (t->found && !t->work && to <= t->wm))
            continue;
        names[nw] = t->m->name;
        col[nw] = to > t->wm ? to : t->wm;
        /* the counts end where the window ended (a watermark kept higher has none) */
        bool counted = t->work && t->win.counted && col[nw] == t->win.to;
        wm_from[nw] = counted ? t->win.counts_from : col[nw];
        wm_key[nw] = bp_counts_key(t->m);
        clits[nw++] = counted ? t->win.counts.base : NULL;
    }
    if (nw > 0) {
        if ((rc = bp_db_append_text_array(&wm_names, names, nw)) != 0 ||
            (rc = bp_db_append_int8_array(&wm_values, col, nw)) != 0 ||
            (rc = bp_db_append_int8_array(&wm_cfrom, wm_from, nw)) != 0 ||
            (rc = bp_db_append_text_array(&wm_clits, clits, nw)) != 0 ||
            (rc = bp_db_append_int8_array(&wm_keys, wm_key, nw)) != 0) {
            rc = bp_err_set(err, rc, "too many metrics");
            goto fail;
        }
        const char *p[] = {wm_names.base, wm_values.base, wm_cfrom.base, wm_clits.base, wm_keys.base};
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
    for (size_t k = 0; k < na; k++) {
        track_t *t = &ts[act[k]];
        bp_buf_free(&t->win.revised);
        bp_buf_free(&t->win.counts);
        t->win.head = NULL; /* &counts, freed below */
        free(t->counts);
        t->counts = NULL;
    }
    bp_counts_free(&counts);
    bp_buf_free(&lit);
    bp_buf_free(&wm_names);
    bp_buf_free(&wm_values);
    bp_buf_free(&wm_cfrom);
    bp_buf_free(&wm_clits);
    bp_buf_free(&wm_keys);
    free(wm_from);
    free(wm_key);
    free(clits);
    free(act);
    free(names);
    free(col);
    free(gm);
    free(gw);
    free(grev);
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
    bp_prefetch_t pf = {0};
    /* Every metric gets at least one round; no new round starts after the budget. */
    for (bool first = true; rc == 0 && pending && (first || mono_ms() - start < opts->budget_ms);
         first = false) {
        rc = tick_round(w, ts, n, opts, &pf, start + opts->budget_ms, err);
        pending = false;
        for (size_t i = 0; i < n; i++)
            pending |= !ts[i].done;
    }
    bp_prefetch_free(&pf);
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
        if (rc == 0) {
            const bp_metric_t *gm[] = {m};
            window_t *gw[] = {&win};
            const int64_t grev[] = {INT64_MAX};
            rc = compute_group(w, gm, gw, grev, 1, opts, NULL, err);
        }
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
