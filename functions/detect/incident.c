#include "incident.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "cloudevents.h"
#include "json.h"
#include "log.h"
#include "metrics.h"
#include "outbox.h"
#include "episode.h"
#include "rootcause.h"
#include "timefmt.h"

#define INCIDENT_COLUMNS                                                                                     \
    "SELECT id, extract(epoch FROM last_anomaly_at)::bigint AS last_anomaly,"                                \
    " extract(epoch FROM started_at)::bigint AS started, peak_value, peak_expected,"                         \
    " extract(epoch FROM peak_timestamp)::bigint AS peak_ts,"                                                \
    " extract(epoch FROM resolved_at)::bigint AS resolved,"                                                  \
    " (context->>'lower')::float8 AS peak_lower, (context->>'upper')::float8 AS peak_upper, summary,"        \
    " (context->'drift'->>'intervals')::int AS drift_n, (context->'drift'->>'actual')::float8 AS "           \
    "drift_actual,"                                                                                          \
    " (context->'drift'->>'expected')::float8 AS drift_expected"

static const bp_db_stmt_t open_incident_sql = {
    "bp_inc_open", INCIDENT_COLUMNS " FROM incidents WHERE metric_name = $1 AND status = 'open' FOR UPDATE",
    1};

/* Resolved incidents a re-scored range [$2, $3] may replay (retracted ones no longer hold).
 * Bounded: a range holds few episodes, and one missed here only costs a duplicate incident. */
#define KNOWN_MAX 16
static const bp_db_stmt_t known_sql = {
    "bp_inc_known",
    INCIDENT_COLUMNS " FROM incidents WHERE metric_name = $1 AND status = 'resolved'"
                     " AND NOT coalesce((context->>'retracted')::bool, false)"
                     " AND started_at <= to_timestamp($3::bigint) AND resolved_at >= to_timestamp($2::bigint)"
                     " ORDER BY started_at LIMIT 16",
    3};

static const bp_db_stmt_t insert_sql = {
    "bp_inc_insert",
    "INSERT INTO incidents (metric_name, status, started_at, last_anomaly_at, peak_timestamp, peak_value,"
    " peak_expected, method, summary, context)"
    " VALUES ($1, 'open', to_timestamp($2::bigint), to_timestamp($3::bigint), to_timestamp($4::bigint),"
    " $5::float8, $6::float8, $9, $7, $8::jsonb) RETURNING id",
    9};

static const bp_db_stmt_t update_sql = {
    "bp_inc_update",
    "UPDATE incidents SET last_anomaly_at = greatest(last_anomaly_at, to_timestamp($2::bigint)),"
    " peak_timestamp = to_timestamp($3::bigint), peak_value = $4::float8, peak_expected = $5::float8,"
    " summary = $6, context = $7::jsonb, updated_at = now() WHERE id = $1::bigint",
    7};

/* Late data rescored the episode away: resolved, marked as retracted, so no one chases it. */
static const bp_db_stmt_t retract_sql = {
    "bp_inc_retract",
    "UPDATE incidents SET status = 'resolved', resolved_at = now(), updated_at = now(),"
    " context = coalesce(context, '{}') || '{\"retracted\": true}' WHERE id = $1::bigint RETURNING summary",
    1};

static const bp_db_stmt_t resolve_sql = {
    "bp_inc_resolve",
    "UPDATE incidents SET status = 'resolved', updated_at = now(),"
    /* the data's time, not the clock's: a catch-up resolves episodes of hours ago */
    " resolved_at = least(now(), to_timestamp($2::bigint)) WHERE id = $1::bigint",
    2};

/* A value as people read it: a rate as a percentage, anything else with 4 significant digits. */
static void fmt_value(const bp_metric_t *m, double v, char *out, size_t outsz)
{
    if (m->kind == BP_KIND_RATIO)
        snprintf(out, outsz, "%.1f%%", v * 100);
    else
        snprintf(out, outsz, "%.4g", v);
}

void bp_incident_summary(const bp_metric_t *m, const char *method, const bp_point_t *peak, int64_t started,
                         char *out, size_t outsz)
{
    char at[BP_TIME_STRLEN], since[BP_TIME_STRLEN], v[32], e[32], lo[32], hi[32];
    bp_time_format(peak->ts, at);
    bp_time_format(started, since);
    at[16] = since[16] = '\0'; /* "2026-11-25T14:05" */
    fmt_value(m, peak->value, v, sizeof(v));
    fmt_value(m, peak->expected, e, sizeof(e));
    fmt_value(m, peak->lower, lo, sizeof(lo));
    fmt_value(m, peak->upper, hi, sizeof(hi));
    double pct = peak->expected != 0 ? (peak->value - peak->expected) / fabs(peak->expected) * 100.0 : 0;
    if (peak->drift) {
        /* No single interval left its band: the sentence gives the pooled numbers that did. */
        char da[32], de[32];
        fmt_value(m, peak->drift_actual, da, sizeof(da));
        fmt_value(m, peak->drift_expected, de, sizeof(de));
        double dpct = peak->drift_expected != 0
                          ? (peak->drift_actual - peak->drift_expected) / fabs(peak->drift_expected) * 100.0
                          : 0;
        snprintf(
            out, outsz,
            "%s drifted %s: %s vs %s expected (%+.0f%%) over the %d intervals to %s UTC, anomalous since %s "
            "UTC; a sustained drift, each interval inside its own band (%s)",
            m->name, peak->drift_actual < peak->drift_expected ? "down" : "up", da, de, dpct, peak->drift_n,
            at + 11, since + 11, method);
        return;
    }
    snprintf(out, outsz,
             "%s %s to %s vs %s expected (%+.0f%%) at %s UTC, anomalous since %s UTC; outside the expected "
             "band %s to %s "
             "(%s)",
             m->name, peak->value < peak->expected ? "fell" : "rose", v, e, pct, at + 11, since + 11, lo, hi,
             method);
}

/* Queues the incident's event; state is "opened", "resolved" or "updated/<peak ts>". */
static int emit(bp_db_t *db, const char *source, long long id, const char *state, const char *type,
                const char *metric, int64_t started, const char *summary, bp_err_t *err)
{
    char ce_id[64], t[BP_TIME_STRLEN];
    snprintf(ce_id, sizeof(ce_id), "incident/%lld/%s", id, state);
    bp_buf_t data;
    bp_buf_init(&data, 16384);
    /* "updated/<peak ts>" names the event; the state itself is the part before the slash */
    int rc = bp_buf_appendf(&data, "{\"incident_id\":%lld,\"state\":\"%.*s\",\"metric\":", id,
                            (int)strcspn(state, "/"), state);
    rc = rc ? rc : bp_json_append_str(&data, metric);
    rc = rc ? rc
            : bp_buf_appendf(
                  &data, ",\"series\":\"\",\"started_at\":\"%s\",\"summary\":", bp_time_format(started, t));
    rc = rc ? rc : bp_json_append_str(&data, summary);
    rc = rc ? rc : bp_buf_append(&data, "}", 1);
    if (rc == 0) {
        bp_ce_t ev = {.id = ce_id,
                      .source = (char *)source,
                      .specversion = "1.0",
                      .type = (char *)type,
                      .subject = (char *)metric,
                      .data = data.base,
                      .data_len = data.len};
        rc = bp_outbox_add(db, &ev, NULL, err);
    } else {
        bp_err_set(err, rc, "cannot build the incident event");
    }
    bp_buf_free(&data);
    return rc;
}

static const bp_db_stmt_t normal_since_sql = {
    "bp_inc_normal_since",
    "SELECT count(*) AS n FROM aggregated_metrics WHERE metric_name = $1 AND series = ''"
    " AND metric_timestamp > to_timestamp($2::bigint) AND metric_timestamp < to_timestamp($3::bigint)"
    " AND NOT is_anomaly AND anomaly_context->>'state' = 'scored'",
    3};

typedef struct {
    bp_db_t *db;
    const bp_metric_t *m;
    const bp_detect_options_t *o;
    bp_episode_t e;
    long long id;
    char summary[768];
    /* The open episode replays an incident already resolved (a re-scored range): its resolution
     * and the anomalies up to known_last were told already. */
    bool replay;
    int64_t known_last, known_end;
} ctx_t;

/* Loads row i of an INCIDENT_COLUMNS result as the current, open episode. */
static void load(ctx_t *c, PGresult *res, int i)
{
    c->id = bp_db_int(res, i, "id");
    c->e.open = true;
    c->e.started = bp_db_int(res, i, "started");
    c->e.last_anomaly = bp_db_int(res, i, "last_anomaly");
    c->e.peak = (bp_point_t){.ts = bp_db_int(res, i, "peak_ts"),
                             .value = bp_db_double(res, i, "peak_value"),
                             .expected = bp_db_double(res, i, "peak_expected"),
                             .lower = bp_db_double(res, i, "peak_lower"),
                             .upper = bp_db_double(res, i, "peak_upper"),
                             .verdict = true,
                             .anomaly = true,
                             .drift = !bp_db_isnull(res, i, "drift_n")};
    if (c->e.peak.drift) {
        c->e.peak.drift_n = (int)bp_db_int(res, i, "drift_n");
        c->e.peak.drift_actual = bp_db_double(res, i, "drift_actual");
        c->e.peak.drift_expected = bp_db_double(res, i, "drift_expected");
    }
    snprintf(c->summary, sizeof(c->summary), "%s", bp_db_text(res, i, "summary"));
}

static double deviation(const bp_point_t *p)
{
    return fabs(p->value - p->expected);
}

/* An episode just opened in a re-scored range: when a resolved incident covers it, that
 * incident continues (no second one, no second opened event). Keeps the stored story: its
 * start, and its peak unless this episode went deeper. Returns whether it matched; peak_moved
 * says the peak changed. */
static bool replay(ctx_t *c, PGresult *known, const bp_episode_known_t *spans, size_t nknown,
                   bool *peak_moved)
{
    int k = bp_episode_match(&c->e, spans, nknown);
    if (k < 0)
        return false;
    bp_episode_t now = c->e;
    load(c, known, k);
    c->replay = true;
    c->known_last = c->e.last_anomaly;
    c->known_end = bp_db_int(known, k, "resolved");
    c->e.ring_len = now.ring_len;
    c->e.ring_head = now.ring_head;
    memcpy(c->e.ring, now.ring, sizeof(now.ring));
    c->e.normal_after = 0;
    if (now.last_anomaly > c->e.last_anomaly)
        c->e.last_anomaly = now.last_anomaly;
    *peak_moved = deviation(&now.peak) > deviation(&c->e.peak);
    if (*peak_moved)
        c->e.peak = now.peak;
    return true;
}

/* The incident's sentence and context JSON for its current state (root cause included for a
 * metric with dimensions). ctx->summary gets the sentence; json must be freed. */
static int describe(ctx_t *c, bp_buf_t *json, bp_err_t *err)
{
    const bp_metric_t *m = c->m;
    char why[320] = "";
    bp_rootcause_t cause = {0};
    bool dims = m->num_dimensions > 0;
    int rc;
    if (dims) {
        if ((rc = bp_rootcause_compute(c->db, m, c->e.started, c->e.last_anomaly + m->interval_s, &cause,
                                       err)) != 0)
            return rc;
        bp_rootcause_sentence(&cause, why, sizeof(why));
    }
    bp_incident_summary(m, c->o->method, &c->e.peak, c->e.started, c->summary,
                        sizeof(c->summary) - sizeof(why));
    strcat(c->summary, why);
    const bp_point_t *pk = &c->e.peak;
    bp_buf_init(json, 65536);
    rc = bp_buf_appendf(
        json,
        "{\"method\":\"%s\",\"lower\":%.17g,\"upper\":%.17g,\"method_params\":{\"min_anomalies\":%d,"
        "\"open_span\":%d,\"resolve_after\":%d,\"z_alert\":%g,\"alert_window_s\":%lld}",
        c->o->method, isfinite(pk->lower) ? pk->lower : 0, isfinite(pk->upper) ? pk->upper : 0,
        c->o->min_anomalies, c->o->open_span, c->o->resolve_after, c->o->z_alert,
        (long long)c->o->alert_window_s);
    if (rc == 0 && pk->drift)
        rc = bp_buf_appendf(json, ",\"drift\":{\"intervals\":%d,\"actual\":%.17g,\"expected\":%.17g}",
                            pk->drift_n, pk->drift_actual, pk->drift_expected);
    if (rc == 0 && dims)
        rc = bp_buf_append(json, ",", 1) ? BP_ETOOBIG : bp_rootcause_json(&cause, json);
    if (rc == 0)
        rc = bp_buf_append(json, "}", 1);
    if (rc != 0)
        bp_buf_free(json);
    return rc ? bp_err_set(err, rc, "incident context too large") : 0;
}

static void numbers(const ctx_t *c, char s[5][32])
{
    snprintf(s[0], 32, "%" PRId64, c->e.started);
    snprintf(s[1], 32, "%" PRId64, c->e.last_anomaly);
    snprintf(s[2], 32, "%" PRId64, c->e.peak.ts);
    snprintf(s[3], 32, "%.17g", c->e.peak.value);
    snprintf(s[4], 32, "%.17g", c->e.peak.expected);
}

static int persist_open(ctx_t *c, bp_err_t *err)
{
    bp_buf_t json;
    char s[5][32];
    int rc = describe(c, &json, err);
    if (rc != 0)
        return rc;
    numbers(c, s);
    const char *p[] = {c->m->name, s[0], s[1], s[2], s[3], s[4], c->summary, json.base, c->o->method};
    PGresult *res = NULL;
    rc = bp_db_query(c->db, &insert_sql, p, &res, err);
    bp_buf_free(&json);
    if (rc != 0)
        return rc;
    c->id = bp_db_int(res, 0, "id");
    PQclear(res);
    bp_metrics_inc("bizpulse_incidents_total", "state=\"opened\"");
    return emit(c->db, c->o->source, c->id, "opened", BP_CE_TYPE_INCIDENT_OPENED, c->m->name, c->e.started,
                c->summary, err);
}

/* Writes the episode's progress; with a new peak, one updated event named by that peak. */
static int persist_update(ctx_t *c, bool peak_moved, bp_err_t *err)
{
    bp_buf_t json;
    char s[5][32], s_id[24];
    int rc = describe(c, &json, err);
    if (rc != 0)
        return rc;
    numbers(c, s);
    snprintf(s_id, sizeof(s_id), "%lld", c->id);
    const char *p[] = {s_id, s[1], s[2], s[3], s[4], c->summary, json.base};
    rc = bp_db_query(c->db, &update_sql, p, NULL, err);
    bp_buf_free(&json);
    if (rc == 0 && peak_moved) {
        char state[48];
        snprintf(state, sizeof(state), "updated/%" PRId64, c->e.peak.ts);
        rc = emit(c->db, c->o->source, c->id, state, BP_CE_TYPE_INCIDENT_UPDATED, c->m->name, c->e.started,
                  c->summary, err);
    }
    return rc;
}

static int persist_resolve(ctx_t *c, bp_err_t *err)
{
    char s_id[24], s_at[24];
    snprintf(s_id, sizeof(s_id), "%lld", c->id);
    snprintf(s_at, sizeof(s_at), "%" PRId64, c->e.resolved_at);
    const char *p[] = {s_id, s_at};
    int rc = bp_db_query(c->db, &resolve_sql, p, NULL, err);
    if (rc == 0)
        rc = emit(c->db, c->o->source, c->id, "resolved", BP_CE_TYPE_INCIDENT_RESOLVED, c->m->name,
                  c->e.started, c->summary, err);
    bp_metrics_inc("bizpulse_incidents_total", "state=\"resolved\"");
    return rc;
}

/* Late (revised) data was rescored: if the window covers the whole episode and none of it is
 * anomalous any more, the incident no longer holds. Returns 1 when it was retracted. */
static int maybe_retract(ctx_t *c, const bp_point_t *pts, size_t n, bp_err_t *err)
{
    if (n == 0 || pts[0].ts > c->e.started || pts[n - 1].ts < c->e.last_anomaly)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (pts[i].anomaly && pts[i].ts >= c->e.started && pts[i].ts <= c->e.last_anomaly)
            return 0;
    char s_id[24];
    snprintf(s_id, sizeof(s_id), "%lld", c->id);
    const char *p[] = {s_id};
    PGresult *res = NULL;
    int rc = bp_db_query(c->db, &retract_sql, p, &res, err);
    if (rc != 0)
        return rc;
    snprintf(c->summary, sizeof(c->summary), "retracted: %s", bp_db_text(res, 0, "summary"));
    PQclear(res);
    rc = emit(c->db, c->o->source, c->id, "resolved/retracted", BP_CE_TYPE_INCIDENT_RESOLVED, c->m->name,
              c->e.started, c->summary, err);
    bp_metrics_inc("bizpulse_incidents_total", "state=\"retracted\"");
    return rc ? rc : 1;
}

int bp_incident_apply(bp_db_t *db, const bp_metric_t *m, const bp_point_t *prior, size_t nprior,
                      const bp_point_t *pts, size_t n, const bp_detect_options_t *o,
                      bp_incident_change_t *change, bp_err_t *err)
{
    change->id = 0;
    change->state = NULL;
    ctx_t c = {.db = db, .m = m, .o = o};
    const char *name[] = {m->name};
    PGresult *res = NULL, *known = NULL;
    bp_episode_known_t spans[KNOWN_MAX];
    size_t nknown = 0;
    int rc = bp_db_query(db, &open_incident_sql, name, &res, err);
    if (rc != 0)
        return rc;
    if (PQntuples(res) > 0)
        load(&c, res, 0);
    PQclear(res);
    bp_episode_params_t prm = {.min_anomalies = o->min_anomalies,
                               .open_span = o->open_span,
                               .resolve_after = o->resolve_after,
                               .recent_from = o->now - o->alert_window_s};
    if (c.e.open && (rc = maybe_retract(&c, pts, n, err)) != 0) {
        if (rc != 1)
            return rc;
        /* The episode is gone; the rest of the window may still hold a new one. */
        change->id = c.id;
        change->state = "retracted";
        c.id = 0;
        memset(&c.e, 0, sizeof(c.e));
        rc = 0;
    }
    if (c.e.open) {
        /* Normal points already stored between the last anomaly and this window count toward
         * resolution: a steady tick brings only a few points at a time. */
        /* Points up to the last anomaly are already part of the known episode. */
        while (n > 0 && pts[0].ts <= c.e.last_anomaly) {
            pts++;
            n--;
        }
        if (n == 0)
            return 0;
        char s_last[24], s_first[24];
        snprintf(s_last, sizeof(s_last), "%" PRId64, c.e.last_anomaly);
        snprintf(s_first, sizeof(s_first), "%" PRId64, pts[0].ts);
        const char *p[] = {m->name, s_last, s_first};
        if ((rc = bp_db_query(db, &normal_since_sql, p, &res, err)) != 0)
            return rc;
        c.e.normal_after = (int)bp_db_int(res, 0, "n");
        PQclear(res);
    } else {
        for (size_t i = 0; i < nprior; i++)
            bp_episode_prime(&c.e, &prior[i], &prm);
        if (n > 0) {
            char s_from[24], s_to[24];
            snprintf(s_from, sizeof(s_from), "%" PRId64, nprior > 0 ? prior[0].ts : pts[0].ts);
            snprintf(s_to, sizeof(s_to), "%" PRId64, pts[n - 1].ts);
            const char *p[] = {m->name, s_from, s_to};
            if ((rc = bp_db_query(db, &known_sql, p, &known, err)) != 0)
                return rc;
            nknown = (size_t)PQntuples(known);
            if (nknown > KNOWN_MAX)
                nknown = KNOWN_MAX;
            for (size_t k = 0; k < nknown; k++)
                spans[k] = (bp_episode_known_t){.started = bp_db_int(known, (int)k, "started"),
                                                .end = bp_db_int(known, (int)k, "resolved")};
        }
    }
    bool dirty = false, peak_moved = false;
    for (size_t i = 0; i < n && rc == 0; i++) {
        if (c.replay && c.e.open && pts[i].ts > c.known_end) {
            /* The replayed incident was told resolved at known_end and stays so: anomalies
             * after it make a new episode, from evidence after it only. */
            if (dirty && (rc = persist_update(&c, peak_moved, err)) != 0)
                break;
            if (dirty) {
                change->id = c.id;
                change->state = "updated";
            }
            memset(&c.e, 0, sizeof(c.e));
            dirty = peak_moved = c.replay = false;
        }
        int ev = bp_episode_feed(&c.e, &pts[i], &prm);
        if ((ev & BP_EPISODE_OPENED) && replay(&c, known, spans, nknown, &peak_moved)) {
            dirty = peak_moved || c.e.last_anomaly > c.known_last;
        } else if (ev & BP_EPISODE_OPENED) {
            c.replay = false;
            rc = persist_open(&c, err);
            change->id = c.id;
            change->state = "opened";
        }
        if (ev & BP_EPISODE_ANOMALY) {
            /* a replayed incident already tells of its anomalies up to known_last */
            if (c.replay && c.e.last_anomaly < c.known_last)
                c.e.last_anomaly = c.known_last;
            dirty |= !c.replay || pts[i].ts > c.known_last || (ev & BP_EPISODE_PEAK) != 0;
            peak_moved |= (ev & BP_EPISODE_PEAK) != 0;
        }
        if ((ev & BP_EPISODE_RESOLVED) && rc == 0) {
            if (dirty)
                rc = persist_update(&c, peak_moved, err);
            /* a replayed incident was resolved once, with its own resolved event */
            if (rc == 0 && !c.replay)
                rc = persist_resolve(&c, err);
            if (dirty || !c.replay) {
                change->id = c.id;
                change->state = c.replay ? "updated" : "resolved";
            }
            dirty = peak_moved = c.replay = false;
        }
    }
    if (rc == 0 && c.e.open && dirty) {
        rc = persist_update(&c, peak_moved, err);
        if (change->state == NULL || strcmp(change->state, "opened") != 0) {
            change->id = c.id;
            change->state = "updated";
        }
    }
    PQclear(known);
    return rc;
}
