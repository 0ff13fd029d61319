#include "mailq.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

static const bp_db_stmt_t enqueue_stmt = {
    "bp_render_mail_enqueue",
    "UPDATE incident_reports SET email_status = 'pending', email_to = $3, email_next_at = now(),"
    " email_attempts = 0, email_error = NULL"
    " WHERE incident_id = $1::bigint AND state = $2 AND email_status = 'none'",
    3,
};

static const bp_db_stmt_t claim_stmt = {
    "bp_render_mail_claim",
    "UPDATE incident_reports r SET email_status = 'sending', email_claim = $1,"
    " email_lease_until = now() + make_interval(secs => $2::int), email_attempts = r.email_attempts + 1"
    " FROM (SELECT incident_id, state FROM incident_reports"
    "   WHERE (email_status = 'pending' AND email_next_at <= now())"
    "      OR (email_status = 'sending' AND email_lease_until < now())"
    "   ORDER BY email_next_at LIMIT $3::int FOR UPDATE SKIP LOCKED) due, incidents i"
    " WHERE r.incident_id = due.incident_id AND r.state = due.state AND i.id = r.incident_id"
    " RETURNING r.incident_id, r.state, r.bytes, r.email_to, r.email_attempts, i.metric_name, i.series,"
    " i.summary",
    3,
};

static const bp_db_stmt_t sent_stmt = {
    "bp_render_mail_sent",
    "UPDATE incident_reports SET email_status = 'sent', email_sent_at = now(), email_error = NULL,"
    " email_lease_until = NULL"
    " WHERE incident_id = $1::bigint AND state = $2 AND email_claim = $3 AND email_status = 'sending'",
    3,
};

static const bp_db_stmt_t failed_stmt = {
    "bp_render_mail_failed",
    "UPDATE incident_reports SET email_status = CASE WHEN $5::bool THEN 'failed' ELSE 'pending' END,"
    " email_error = $4, email_next_at = now() + make_interval(secs => $6::double precision / 1000),"
    " email_lease_until = NULL"
    " WHERE incident_id = $1::bigint AND state = $2 AND email_claim = $3 AND email_status = 'sending'",
    6,
};

static const bp_db_stmt_t count_stmt = {
    "bp_render_mail_count",
    "SELECT email_status, count(*) AS n FROM incident_reports GROUP BY email_status",
    0,
};

int bp_mailq_enqueue(bp_db_t *db, long long incident_id, const char *state, const char *to, bp_err_t *err)
{
    char id_s[24];
    snprintf(id_s, sizeof(id_s), "%lld", incident_id);
    const char *params[] = {id_s, state, to};
    return bp_db_query(db, &enqueue_stmt, params, NULL, err);
}

static char *dup_text(const PGresult *res, int row, const char *col)
{
    const char *v = bp_db_text(res, row, col);
    return strdup(v != NULL ? v : "");
}

void bp_mailq_items_free(bp_mailq_item_t *items, size_t n)
{
    if (items == NULL)
        return;
    for (size_t i = 0; i < n; i++) {
        free(items[i].state);
        free(items[i].to);
        free(items[i].metric);
        free(items[i].series);
        free(items[i].summary);
    }
    free(items);
}

int bp_mailq_claim(bp_db_t *db, int max, int lease_s, bp_mailq_item_t **items, size_t *n, bp_err_t *err)
{
    *items = NULL;
    *n = 0;
    /* The token only has to differ between claims: 16 random bytes as hex. */
    unsigned char rnd[16];
    if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd))
        return bp_err_set(err, BP_EINTERNAL, "no randomness for a mail claim");
    char claim[40];
    for (size_t i = 0; i < sizeof(rnd); i++)
        snprintf(claim + 2 * i, 3, "%02x", rnd[i]);
    char lease[16], limit[16];
    snprintf(lease, sizeof(lease), "%d", lease_s);
    snprintf(limit, sizeof(limit), "%d", max);
    const char *params[] = {claim, lease, limit};
    PGresult *res = NULL;
    int rc = bp_db_query(db, &claim_stmt, params, &res, err);
    if (rc != 0)
        return rc;
    int rows = PQntuples(res);
    bp_mailq_item_t *out = rows > 0 ? calloc((size_t)rows, sizeof(*out)) : NULL;
    if (rows > 0 && out == NULL) {
        PQclear(res);
        return bp_err_set(err, BP_ENOMEM, "out of memory claiming emails");
    }
    for (int i = 0; i < rows; i++) {
        bp_mailq_item_t *it = &out[i];
        it->incident_id = bp_db_int(res, i, "incident_id");
        it->state = dup_text(res, i, "state");
        it->bytes = (size_t)bp_db_int(res, i, "bytes");
        it->to = dup_text(res, i, "email_to");
        it->metric = dup_text(res, i, "metric_name");
        it->series = dup_text(res, i, "series");
        it->summary = dup_text(res, i, "summary");
        it->attempts = (int)bp_db_int(res, i, "email_attempts");
        snprintf(it->claim, sizeof(it->claim), "%s", claim);
        if (it->state == NULL || it->to == NULL || it->metric == NULL || it->series == NULL ||
            it->summary == NULL)
            rc = bp_err_set(err, BP_ENOMEM, "out of memory claiming emails");
    }
    PQclear(res);
    if (rc != 0) { /* the claims expire with their lease and are taken again */
        bp_mailq_items_free(out, (size_t)rows);
        return rc;
    }
    *items = out;
    *n = (size_t)rows;
    return 0;
}

int bp_mailq_sent(bp_db_t *db, const bp_mailq_item_t *it, bp_err_t *err)
{
    char id_s[24];
    snprintf(id_s, sizeof(id_s), "%lld", it->incident_id);
    const char *params[] = {id_s, it->state, it->claim};
    return bp_db_query(db, &sent_stmt, params, NULL, err);
}

int bp_mailq_failed(bp_db_t *db, const bp_mailq_item_t *it, const char *error, long retry_ms, bool final,
                    bp_err_t *err)
{
    char id_s[24], retry_s[24];
    snprintf(id_s, sizeof(id_s), "%lld", it->incident_id);
    snprintf(retry_s, sizeof(retry_s), "%ld", retry_ms);
    const char *params[] = {id_s, it->state, it->claim, error, final ? "true" : "false", retry_s};
    return bp_db_query(db, &failed_stmt, params, NULL, err);
}

int bp_mailq_count(bp_db_t *db, bp_mailq_counts_t *out, bp_err_t *err)
{
    memset(out, 0, sizeof(*out));
    PGresult *res = NULL;
    int rc = bp_db_query(db, &count_stmt, NULL, &res, err);
    if (rc != 0)
        return rc;
    for (int i = 0; i < PQntuples(res); i++) {
        const char *s = bp_db_text(res, i, "email_status");
        long long n = bp_db_int(res, i, "n");
        if (s == NULL)
            continue;
        if (strcmp(s, "pending") == 0)
            out->pending = n;
        else if (strcmp(s, "sending") == 0)
            out->sending = n;
        else if (strcmp(s, "sent") == 0)
            out->sent = n;
        else if (strcmp(s, "failed") == 0)
            out->failed = n;
    }
    PQclear(res);
    return 0;
}
