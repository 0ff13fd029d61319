#include "incidents_api.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app.h"
#include "cloudevents.h"
#include "json.h"
#include "outbox.h"

#define LIST_MAX 500

/* Rows as JSON built by PostgreSQL: one text value, no per-column formatting here. */
static const bp_db_stmt_t list_sql = {
    "bp_incapi_list",
    "SELECT coalesce(json_agg(i ORDER BY i.id DESC), '[]')::text AS list FROM ("
    " SELECT id, metric_name AS metric, series, status, started_at, opened_at, last_anomaly_at, "
    "peak_timestamp,"
    " peak_value, peak_expected, method, summary, context, acknowledged_at, resolved_at, updated_at"
    " FROM incidents WHERE ($1::text IS NULL OR status = $1) AND ($2::text IS NULL OR metric_name = $2)"
    " ORDER BY id DESC LIMIT $3::int) AS i",
    3};

static const bp_db_stmt_t ack_sql = {
    "bp_incapi_ack",
    "UPDATE incidents SET acknowledged_at = coalesce(acknowledged_at, now()), updated_at = now()"
    " WHERE id = $1::bigint"
    " RETURNING metric_name, series, summary, acknowledged_at = now() AS now_acked,"
    " to_char(started_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') AS started,"
    " to_char(acknowledged_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') AS acked_at",
    1};

void bp_incidents_list(void *wctx, const bp_http_request_t *req, bp_http_response_t *res)
{
    bp_worker_t *w = wctx;
    char status[16], metric[128], limit[16];
    int has_status = bp_http_query_param(req, "status", status, sizeof(status));
    int has_metric = bp_http_query_param(req, "metric", metric, sizeof(metric));
    int has_limit = bp_http_query_param(req, "limit", limit, sizeof(limit));
    if (has_status < 0 || has_metric < 0 || has_limit < 0) {
        bp_http_respond_error(res, 400, "invalid_argument", "a query parameter is too long or badly encoded");
        return;
    }
    if (has_status == 0 || strcmp(status, "all") == 0)
        status[0] = '\0';
    else if (strcmp(status, "open") != 0 && strcmp(status, "resolved") != 0) {
        bp_http_respond_error(res, 400, "invalid_argument",
                              "parameter 'status' must be open, resolved or all");
        return;
    }
    if (has_metric == 0)
        metric[0] = '\0';
    else if (bp_config_find(w->app->config, metric) == NULL) {
        bp_http_respond_error(res, 404, "not_found", "unknown metric '%s'", metric);
        return;
    }
    long n = 100;
    if (has_limit == 1) {
        char *end;
        n = strtol(limit, &end, 10);
        if (*end != '\0' || n < 1 || n > LIST_MAX) {
            bp_http_respond_error(res, 400, "invalid_argument", "parameter 'limit' must be 1 to %d",
                                  LIST_MAX);
            return;
        }
    }
    snprintf(limit, sizeof(limit), "%ld", n);
    const char *p[] = {status[0] ? status : NULL, metric[0] ? metric : NULL, limit};
    PGresult *r = NULL;
    bp_err_t err;
    bp_err_clear(&err);
    if (bp_db_query(w->db, &list_sql, p, &r, &err) != 0) {
        bp_http_respond_err(res, &err);
        return;
    }
    bp_buf_t out;
    bp_buf_init(&out, 16u << 20);
    if (bp_buf_appendf(&out, "{\"incidents\":%s}", bp_db_text(r, 0, "list")) != 0)
        bp_http_respond_error(res, 500, "internal", "incident list too large");
    else
        bp_http_respond_json(res, 200, out.base);
    bp_buf_free(&out);
    PQclear(r);
}

/* "/incidents/<id>/ack" → id; 0 when the path has another shape. */
static long long ack_id(const char *path)
{
    const char *p = path + strlen("/incidents/");
    char *end;
    long long id = strtoll(p, &end, 10);
    return end != p && id > 0 && strcmp(end, "/ack") == 0 ? id : 0;
}

void bp_incidents_ack(void *wctx, const bp_http_request_t *req, bp_http_response_t *res)
{
    bp_worker_t *w = wctx;
    if (strcmp(req->method, "POST") != 0 || ack_id(req->path) == 0) {
        bp_http_respond_error(res, 404, "not_found", "no such route: use POST /incidents/<id>/ack");
        return;
    }
    if (!bp_app_authorized(req, getenv("BIZPULSE_ADMIN_TOKEN"))) {
        bp_http_respond_error(res, 401, "unauthorized",
                              "acknowledging needs Authorization: Bearer <BIZPULSE_ADMIN_TOKEN>");
        return;
    }
    char id[24];
    snprintf(id, sizeof(id), "%lld", ack_id(req->path));
    const char *p[] = {id};
    PGresult *r = NULL;
    bp_err_t err;
    bp_err_clear(&err);
    int rc = bp_db_begin(w->db, &err);
    if (rc == 0)
        rc = bp_db_query(w->db, &ack_sql, p, &r, &err);
    if (rc == 0 && PQntuples(r) == 0) {
        bp_db_rollback(w->db);
        PQclear(r);
        bp_http_respond_error(res, 404, "not_found", "no incident %s", id);
        return;
    }
    bool first = rc == 0 && bp_db_bool(r, 0, "now_acked");
    if (rc == 0 && first) {
        /* One event per state change: the first acknowledgement only. */
        char ce_id[64];
        bp_buf_t data;
        bp_buf_init(&data, 16384);
        snprintf(ce_id, sizeof(ce_id), "incident/%s/acknowledged", id);
        rc = bp_buf_appendf(&data, "{\"incident_id\":%s,\"state\":\"acknowledged\",\"metric\":", id);
        rc = rc ? rc : bp_json_append_str(&data, bp_db_text(r, 0, "metric_name"));
        rc = rc ? rc : bp_buf_appendf(&data, ",\"series\":");
        rc = rc ? rc : bp_json_append_str(&data, bp_db_text(r, 0, "series"));
        /* the same fields as detect's other incident events, plus the acknowledgement */
        rc = rc ? rc
                : bp_buf_appendf(&data, ",\"started_at\":\"%s\",\"acknowledged_at\":\"%s\",\"summary\":",
                                 bp_db_text(r, 0, "started"), bp_db_text(r, 0, "acked_at"));
        rc = rc ? rc : bp_json_append_str(&data, bp_db_text(r, 0, "summary"));
        rc = rc ? rc : bp_buf_append(&data, "}", 1);
        bp_ce_t ev = {.id = ce_id,
                      .source = w->app->source,
                      .specversion = "1.0",
                      .type = BP_CE_TYPE_INCIDENT_UPDATED,
                      .subject = (char *)bp_db_text(r, 0, "metric_name"),
                      .data = data.base,
                      .data_len = data.len};
        if (rc == 0)
            rc = bp_outbox_add(w->db, &ev, NULL, &err);
        else
            bp_err_set(&err, rc, "cannot build the event");
        bp_buf_free(&data);
    }
    if (rc == 0)
        rc = bp_db_commit(w->db, &err);
    else
        bp_db_rollback(w->db);
    if (rc != 0) {
        PQclear(r);
        bp_http_respond_err(res, &err);
        return;
    }
    char body[160];
    snprintf(body, sizeof(body), "{\"status\":\"%s\",\"incident_id\":%s,\"acknowledged_at\":\"%s\"}",
             first ? "acknowledged" : "already_acknowledged", id, bp_db_text(r, 0, "acked_at"));
    PQclear(r);
    bp_http_respond_json(res, 200, body);
    res->run_after = true;
}
