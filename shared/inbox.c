#include "inbox.h"

#include <stdio.h>
#include <stdlib.h>

static const bp_db_stmt_t claim_sql = {"bp_inbox_claim",
                                       "INSERT INTO processed_events (source, id, type) VALUES ($1, $2, $3) "
                                       "ON CONFLICT (source, id) DO NOTHING",
                                       3};

int bp_inbox_claim(bp_db_t *db, const bp_ce_t *ev, bool *first, bp_err_t *err)
{
    const char *params[] = {ev->source, ev->id, ev->type};
    PGresult *res = NULL;
    int rc = bp_db_query(db, &claim_sql, params, &res, err);
    if (rc != 0)
        return rc;
    *first = PQcmdTuples(res)[0] == '1';
    PQclear(res);
    return 0;
}

static const bp_db_stmt_t prune_sql = {
    "bp_inbox_prune",
    "DELETE FROM processed_events WHERE (source, id) IN (SELECT source, id FROM processed_events"
    " WHERE processed_at < now() - make_interval(days => $1::int) LIMIT $2::int)",
    2};

int bp_inbox_prune(bp_db_t *db, int days, int max, long *deleted, bp_err_t *err)
{
    char s_days[16], s_max[16];
    long n = 0;
    snprintf(s_days, sizeof(s_days), "%d", days);
    snprintf(s_max, sizeof(s_max), "%d", max);
    const char *p[] = {s_days, s_max};
    int rc = bp_db_exec_count(db, &prune_sql, p, &n, err);
    if (deleted != NULL)
        *deleted = n;
    return rc;
}
