#include "outbox.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "log.h"
#include "metrics.h"

static const bp_db_stmt_t add_sql = {
    "bp_outbox_add",
    "INSERT INTO outbox (ce_source, ce_id, ce_type, ce_subject, data) VALUES ($1, $2, $3, $4, $5::jsonb) "
    "ON CONFLICT (ce_source, ce_id) DO NOTHING",
    5};

static const bp_db_stmt_t add_many_sql = {"bp_outbox_add_many",
                                          "INSERT INTO outbox (ce_source, ce_id, ce_type, ce_subject, data)"
                                          " SELECT u.src, u.id, u.type, u.subject, u.data::jsonb"
                                          " FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], "
                                          "$5::text[]) AS u(src, id, type, subject, data)"
                                          " ON CONFLICT (ce_source, ce_id) DO NOTHING",
                                          5};

/* One row at a time, locked, so concurrent flushers (replicas, the background thread and a
 * worker) never send the same row at once; SKIP LOCKED lets them work on different rows. */
static const bp_db_stmt_t next_sql = {
    "bp_outbox_next",
    "SELECT seq, ce_source, ce_id, ce_type, ce_subject, data::text AS data, attempts,"
    " to_char(ce_time AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"') AS ce_time"
    " FROM outbox WHERE status = 'pending' AND ce_source = $1 AND next_attempt_at <= now()"
    " ORDER BY seq LIMIT 1 FOR UPDATE SKIP LOCKED",
    1};

static const bp_db_stmt_t sent_sql = {
    "bp_outbox_sent",
    "UPDATE outbox SET status = 'sent', sent_at = now(), attempts = attempts + 1, last_error = NULL"
    " WHERE seq = $1::bigint",
    1};

/* Backoff 1 s doubling to 5 min; a 4xx answer ($3 = 'failed') stops retries for good. */
static const bp_db_stmt_t failed_sql = {
    "bp_outbox_failed",
    "UPDATE outbox SET attempts = attempts + 1, last_error = $2, status = $3,"
    " next_attempt_at = now() + least(interval '5 minutes', interval '1 second' * power(2, least(attempts, "
    "20)))"
    " WHERE seq = $1::bigint",
    3};

int bp_outbox_add(bp_db_t *db, const bp_ce_t *ev, bool *added, bp_err_t *err)
{
    const char *params[] = {ev->source, ev->id, ev->type, ev->subject, ev->data ? ev->data : "null"};
    PGresult *res = NULL;
    int rc = bp_db_query(db, &add_sql, params, &res, err);
    if (rc != 0)
        return rc;
    if (added != NULL)
        *added = PQcmdTuples(res)[0] == '1';
    PQclear(res);
    return 0;
}

int bp_outbox_add_many(bp_db_t *db, const bp_ce_t *evs, size_t n, bp_err_t *err)
{
    if (n == 0)
        return 0;
    if (n == 1)
        return bp_outbox_add(db, &evs[0], NULL, err);
    const char **col = calloc(n, sizeof(char *));
    bp_buf_t arr[5];
    for (int k = 0; k < 5; k++)
        bp_buf_init(&arr[k], 256u << 20);
    int rc = col == NULL ? BP_ENOMEM : 0;
    for (int k = 0; rc == 0 && k < 5; k++) {
        for (size_t i = 0; i < n; i++) {
            const bp_ce_t *ev = &evs[i];
            col[i] = k == 0   ? ev->source
                     : k == 1 ? ev->id
                     : k == 2 ? ev->type
                     : k == 3 ? ev->subject
                              : (ev->data ? ev->data : "null");
        }
        rc = bp_db_append_text_array(&arr[k], col, n);
    }
    if (rc != 0) {
        rc = bp_err_set(err, rc, "too many events for one outbox insert");
    } else {
        const char *params[] = {arr[0].base, arr[1].base, arr[2].base, arr[3].base, arr[4].base};
        rc = bp_db_query(db, &add_many_sql, params, NULL, err);
    }
    for (int k = 0; k < 5; k++)
        bp_buf_free(&arr[k]);
    free(col);
    return rc;
}

/* Sends one due row. Returns 1 when one was sent, 0 when none is due, BP_EIO when the sink
 * failed (row rescheduled), or a DB error. */
static int flush_one(bp_db_t *db, bp_http_client_t *client, const char *sink_url, const char *source,
                     bp_err_t *err)
{
    PGresult *res = NULL;
    const char *src[] = {source};
    int rc = bp_db_begin(db, err);
    if (rc == 0)
        rc = bp_db_query(db, &next_sql, src, &res, err);
    if (rc != 0)
        goto fail;
    if (PQntuples(res) == 0) {
        PQclear(res);
        return bp_db_commit(db, err);
    }
    bp_ce_t ev = {
        .id = (char *)bp_db_text(res, 0, "ce_id"),
        .source = (char *)bp_db_text(res, 0, "ce_source"),
        .specversion = "1.0",
        .type = (char *)bp_db_text(res, 0, "ce_type"),
        .subject = (char *)bp_db_text(res, 0, "ce_subject"),
        .time = (char *)bp_db_text(res, 0, "ce_time"),
        .datacontenttype = "application/json",
        .data = (char *)bp_db_text(res, 0, "data"),
    };
    ev.data_len = strlen(ev.data);
    const char *seq = bp_db_text(res, 0, "seq");
    int status = 0;
    bp_err_t serr;
    bp_err_clear(&serr);
    int sent = bp_http_client_send_ce(client, sink_url, &ev, &status, &serr);
    if (sent == 0) {
        const char *params[] = {seq};
        rc = bp_db_query(db, &sent_sql, params, NULL, err);
        bp_metrics_inc("bizpulse_events_out_total", "result=\"sent\"");
    } else {
        const char *params[] = {seq, serr.msg, sent == BP_EINVAL ? "failed" : "pending"};
        bp_log(BP_LOG_WARNING, "outbox: event %s not delivered (HTTP %d): %s", ev.id, status, serr.msg);
        rc = bp_db_query(db, &failed_sql, params, NULL, err);
        bp_metrics_inc("bizpulse_events_out_total",
                       sent == BP_EINVAL ? "result=\"rejected\"" : "result=\"retry\"");
    }
    PQclear(res);
    res = NULL;
    if (rc == 0)
        rc = bp_db_commit(db, err);
    if (rc != 0)
        goto fail;
    return sent == 0 ? 1 : BP_EIO;
fail:
    PQclear(res);
    bp_db_rollback(db);
    return rc;
}

int bp_outbox_flush(bp_db_t *db, bp_http_client_t *client, const char *sink_url, const char *source, int max,
                    int *sent, bp_err_t *err)
{
    int count = 0, rc = 0;
    if (sink_url != NULL && sink_url[0] != '\0') {
        while (count < max) {
            rc = flush_one(db, client, sink_url, source, err);
            if (rc != 1)
                break;
            count++;
        }
        /* A sink failure is not the caller's error: the row is rescheduled. */
        if (rc == BP_EIO || rc == 1)
            rc = 0;
    }
    if (sent != NULL)
        *sent = count;
    return rc;
}
