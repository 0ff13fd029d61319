#include "retention.h"

#include <stdio.h>

static const bp_db_stmt_t outbox_sql = {
    "bp_retention_outbox",
    "DELETE FROM outbox WHERE seq IN (SELECT seq FROM outbox WHERE status = 'sent'"
    " AND sent_at < now() - make_interval(days => $1::int) ORDER BY seq LIMIT $2::int)",
    2};

static const bp_db_stmt_t inbox_sql = {
    "bp_retention_inbox",
    "DELETE FROM processed_events WHERE (source, id) IN (SELECT source, id FROM processed_events"
    " WHERE processed_at < now() - make_interval(days => $1::int) LIMIT $2::int)",
    2};

static int prune(bp_db_t *db, const bp_db_stmt_t *stmt, int days, int max, long *deleted, bp_err_t *err)
{
    char s_days[16], s_max[16];
    long n = 0;
    snprintf(s_days, sizeof(s_days), "%d", days);
    snprintf(s_max, sizeof(s_max), "%d", max);
    const char *p[] = {s_days, s_max};
    int rc = bp_db_exec_count(db, stmt, p, &n, err);
    if (deleted != NULL)
        *deleted = n;
    return rc;
}

int bp_retention_prune(bp_db_t *db, int days, int max, long *sent, long *seen, bp_err_t *err)
{
    int rc = prune(db, &outbox_sql, days, max, sent, err);
    return rc != 0 ? rc : prune(db, &inbox_sql, days, max, seen, err);
}
