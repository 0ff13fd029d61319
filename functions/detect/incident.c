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
#include "rootcause.h"
#include "timefmt.h"

static const bp_db_stmt_t open_incident_sql = {
    "bp_inc_open",
    "SELECT id, extract(epoch FROM last_anomaly_at)::bigint AS last_anomaly,"
    " extract(epoch FROM started_at)::bigint AS started, peak_value, peak_expected,"
    " extract(epoch FROM peak_timestamp)::bigint AS peak_ts,"
    " (context->>'lower')::float8 AS peak_lower, (context->>'upper')::float8 AS peak_upper"
    " FROM incidents WHERE metric_name = $1 AND status = 'open' FOR UPDATE",
    1};

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
    "UPDATE incidents SET status = 'resolved', resolved_at = now(), updated_at = now() WHERE id = $1::bigint",
    1};

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

static double deviation(const bp_point_t *p)
{
    return fabs(p->value - p->expected);
}

/* Index of the first point at which the trailing `span` points hold `min` anomalies, looking
 * only at recent points; -1 when there is none. */
static long find_opening(const bp_point_t *pts, size_t n, const bp_detect_options_t *o)
{
    int64_t recent = o->now - o->alert_window_s;
    for (size_t i = 0; i < n; i++) {
        if (!pts[i].anomaly || pts[i].ts < recent)
            continue;
        int count = 0;
        for (size_t j = i + 1 > (size_t)o->open_span ? i + 1 - (size_t)o->open_span : 0; j <= i; j++)
            count += pts[j].anomaly;
        if (count >= o->min_anomalies)
            return (long)i;
    }
    return -1;
}

int bp_incident_apply(bp_db_t *db, const bp_metric_t *m, const bp_point_t *pts, size_t n,
                      const bp_detect_options_t *o, bp_incident_change_t *change, bp_err_t *err)
{
    change->id = 0;
    change->state = NULL;
    const char *name[] = {m->name};
    PGresult *res = NULL;
    int rc = bp_db_query(db, &open_incident_sql, name, &res, err);
    if (rc != 0)
        return rc;
    long long id = 0;
    int64_t started = 0, last_anomaly = 0;
    bp_point_t peak = {0};
    bool have_peak = false;
    if (PQntuples(res) > 0) {
        id = bp_db_int(res, 0, "id");
        started = bp_db_int(res, 0, "started");
        last_anomaly = bp_db_int(res, 0, "last_anomaly");
        peak.ts = bp_db_int(res, 0, "peak_ts");
        peak.value = bp_db_double(res, 0, "peak_value");
        peak.expected = bp_db_double(res, 0, "peak_expected");
        peak.lower = bp_db_double(res, 0, "peak_lower");
        peak.upper = bp_db_double(res, 0, "peak_upper");
        have_peak = true;
    }
    PQclear(res);

    /* Revised (late) points were rescored: if the window covers the whole episode and none of
     * it is anomalous any more, the incident no longer holds. */
    if (id != 0 && n > 0 && pts[0].ts <= started && pts[n - 1].ts >= last_anomaly) {
        bool holds = false;
        for (size_t i = 0; i < n && !holds; i++)
            holds = pts[i].anomaly && pts[i].ts >= started && pts[i].ts <= last_anomaly;
        if (!holds) {
            char s_id[24];
            snprintf(s_id, sizeof(s_id), "%lld", id);
            const char *p[] = {s_id};
            if ((rc = bp_db_query(db, &retract_sql, p, &res, err)) != 0)
                return rc;
            char summary[768];
            snprintf(summary, sizeof(summary), "retracted: %s", bp_db_text(res, 0, "summary"));
            PQclear(res);
            if ((rc = emit(db, o->source, id, "resolved/retracted", BP_CE_TYPE_INCIDENT_RESOLVED, m->name,
                           started, summary, err)) != 0)
                return rc;
            change->id = id;
            change->state = "retracted";
            bp_metrics_inc("bizpulse_incidents_total", "state=\"retracted\"");
            return 0;
        }
    }
    size_t scan_from = 0;
    if (id == 0) {
        long open_at = find_opening(pts, n, o);
        if (open_at < 0)
            return 0;
        /* The episode starts at the first anomaly of the span that opened it. */
        size_t first =
            (size_t)open_at + 1 > (size_t)o->open_span ? (size_t)open_at + 1 - (size_t)o->open_span : 0;
        while (!pts[first].anomaly)
            first++;
        started = pts[first].ts;
        scan_from = first;
    }
    bool new_anomaly = false, peak_moved = false;
    for (size_t i = scan_from; i < n; i++) {
        if (!pts[i].anomaly || (id != 0 && pts[i].ts <= last_anomaly))
            continue;
        new_anomaly = true;
        if (pts[i].ts > last_anomaly)
            last_anomaly = pts[i].ts;
        if (!have_peak || deviation(&pts[i]) > deviation(&peak)) {
            peak = pts[i];
            peak_moved = have_peak;
            have_peak = true;
        }
    }
    char summary[768], why[320] = "";
    bp_rootcause_t cause = {0};
    bool dims = m->num_dimensions > 0 && (id == 0 || new_anomaly);
    if (dims) {
        if ((rc = bp_rootcause_compute(db, m, started, last_anomaly + m->interval_s, &cause, err)) != 0)
            return rc;
        bp_rootcause_sentence(&cause, why, sizeof(why));
    }
    bp_incident_summary(m, o->method, &peak, started, summary, sizeof(summary) - sizeof(why));
    strcat(summary, why);
    char s_started[24], s_last[24], s_peak_ts[24], s_peak[32], s_exp[32], s_id[24];
    snprintf(s_started, sizeof(s_started), "%" PRId64, started);
    snprintf(s_last, sizeof(s_last), "%" PRId64, last_anomaly);
    snprintf(s_peak_ts, sizeof(s_peak_ts), "%" PRId64, peak.ts);
    snprintf(s_peak, sizeof(s_peak), "%.17g", peak.value);
    snprintf(s_exp, sizeof(s_exp), "%.17g", peak.expected);
    bp_buf_t ctx;
    bp_buf_init(&ctx, 65536);
    rc = bp_buf_appendf(
        &ctx,
        "{\"method\":\"%s\",\"lower\":%.17g,\"upper\":%.17g,\"method_params\":{\"min_anomalies\":%d,"
        "\"open_span\":%d,\"resolve_after\":%d,\"z_alert\":%g}",
        o->method, isfinite(peak.lower) ? peak.lower : 0, isfinite(peak.upper) ? peak.upper : 0,
        o->min_anomalies, o->open_span, o->resolve_after, o->z_alert);
    if (rc == 0 && dims)
        rc = bp_buf_append(&ctx, ",", 1) ? BP_ETOOBIG : bp_rootcause_json(&cause, &ctx);
    if (rc == 0)
        rc = bp_buf_append(&ctx, "}", 1);
    if (rc != 0) {
        bp_buf_free(&ctx);
        return bp_err_set(err, rc, "incident context too large");
    }
    if (id == 0) {
        const char *p[] = {m->name, s_started, s_last,   s_peak_ts, s_peak,
                           s_exp,   summary,   ctx.base, o->method};
        if ((rc = bp_db_query(db, &insert_sql, p, &res, err)) == 0) {
            id = bp_db_int(res, 0, "id");
            PQclear(res);
            rc =
                emit(db, o->source, id, "opened", BP_CE_TYPE_INCIDENT_OPENED, m->name, started, summary, err);
        }
        change->id = id;
        change->state = "opened";
        bp_metrics_inc("bizpulse_incidents_total", "state=\"opened\"");
    } else if (new_anomaly) {
        snprintf(s_id, sizeof(s_id), "%lld", id);
        const char *p[] = {s_id, s_last, s_peak_ts, s_peak, s_exp, summary, ctx.base};
        rc = bp_db_query(db, &update_sql, p, NULL, err);
        /* One event per state change: a new, deeper peak (id names it, so a redelivery adds
         * nothing). */
        if (rc == 0 && peak_moved) {
            char state[48];
            snprintf(state, sizeof(state), "updated/%" PRId64, peak.ts);
            rc = emit(db, o->source, id, state, BP_CE_TYPE_INCIDENT_UPDATED, m->name, started, summary, err);
        }
        change->id = id;
        change->state = "updated";
    }
    bp_buf_free(&ctx);
    if (rc != 0)
        return rc;
    /* Resolved once enough scored points after the last anomaly are all normal. */
    int normal_after = 0;
    for (size_t i = 0; i < n; i++)
        if (pts[i].ts > last_anomaly && pts[i].verdict)
            normal_after++;
    if (normal_after >= o->resolve_after) {
        snprintf(s_id, sizeof(s_id), "%lld", id);
        const char *p[] = {s_id};
        if ((rc = bp_db_query(db, &resolve_sql, p, NULL, err)) != 0 ||
            (rc = emit(db, o->source, id, "resolved", BP_CE_TYPE_INCIDENT_RESOLVED, m->name, started, summary,
                       err)) != 0)
            return rc;
        change->id = id;
        change->state = "resolved";
        bp_metrics_inc("bizpulse_incidents_total", "state=\"resolved\"");
    }
    return 0;
}
